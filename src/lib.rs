//! gatehouse: an authentication gateway. A reverse proxy that puts username/password
//! login and JWT bearer-token checks in front of HTTP services that have none.
//!
//! ```text
//! main → cli → app → { server, proxy, endpoints, admin, ops } → accounts → { auth, store }
//!                      shared below all of them: config, error, http, telemetry
//! ```
//!
//! Every request runs the pipeline in [`proxy`]: normalize the path, strip forgeable
//! headers, divert `/auth/*` to [`endpoints`], match the route, check the token, forward.

#![forbid(unsafe_code)]

pub mod accounts;
pub mod admin;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod endpoints;
pub mod error;
pub mod http;
pub mod ops;
pub mod proxy;
pub mod server;
pub mod store;
pub mod telemetry;

pub use app::{App, AppHandle};
pub use config::Config;
