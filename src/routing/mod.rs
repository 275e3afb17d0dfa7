//! Policy types at the bottom (SPEC §2 "Routes", §3.1): the normalized request path,
//! route patterns and the compiled route table. Config compiles into them; the pipeline,
//! `/auth/verify` and `gatehouse explain` read them. They import nothing from gatehouse
//! but each other and [`crate::error`] (a refused request-target is SPEC §5's 400).
//!
//! - [`path`]: the one normalization (SPEC §3.1); what is matched is what is forwarded;
//! - [`pattern`]: the pattern language, matching and covering;
//! - [`table`]: [`RouteTable`], first match wins, the default for unmatched requests,
//!   shadowing.

pub mod path;
pub mod pattern;
pub mod table;

pub use path::{is_under, normalize, normalized_path, NormalizedPath, PathRejection};
pub use pattern::{Pattern, PatternError};
pub use table::{Access, Route, RouteDecision, RouteTable, UNMATCHED};
