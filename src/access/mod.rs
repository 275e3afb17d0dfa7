//! Access decisions (SPEC §2 "Routes", §3.2, §4): who is calling and whether they may.
//!
//! - [`credentials`]: reading a credential off a request (a bearer token, or the browser
//!   session cookie) and turning it into a verified [`Identity`](crate::accounts::Identity);
//! - [`cookie`]: the `Cookie` header — finding the session cookie, and removing
//!   gatehouse's own cookies before a request is forwarded;
//! - [`navigation`]: is a request a browser navigation (SPEC §10), and where the sign-in
//!   redirect sends it;
//! - [`mod@decide`]: the ONE decision — the route table's answer ([`RouteTable::decide`],
//!   where the default for unmatched requests is written) followed by the credential
//!   check — used by the pipeline, `/auth/verify` and (its route-level part)
//!   `gatehouse explain`;
//! - [`identity`]: strip, then stamp — identity headers (and the assertion header)
//!   removed from every request and set only from a verified identity;
//! - [`assertion`]: the signed identity assertion for upstreams (SPEC §9), minted with
//!   the active key and cached.
//!
//! Below the pipeline and the endpoints; above accounts and the routing types.
//!
//! [`RouteTable::decide`]: crate::routing::RouteTable::decide

pub mod assertion;
pub mod cookie;
pub mod credentials;
pub mod decide;
pub mod identity;
pub mod navigation;

pub use assertion::{Assertions, ASSERTION_TYP};
pub use credentials::{authenticate, authenticate_request, bearer_token};
pub use decide::{decide, Allowed, Verdict};
pub use identity::IdentityHeaders;
