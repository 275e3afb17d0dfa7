//! gatehouse: an authentication gateway. A reverse proxy that puts username/password
//! login and JWT bearer-token checks in front of HTTP services that have none.
//!
//! # Layers
//!
//! Dependencies point one way, downwards: a module imports only from modules in rows
//! below its own; modules in one row do not import each other. `tests/layers.rs` reads
//! this diagram and fails when a module names one in its own row or above.
//!
//! ```text
//! main
//! cli                      clap commands, prompts, printing
//! app                      assembles a running gateway; reload; shutdown order
//! server  ops  admin       accept loops + TLS; /healthz /readyz /metrics; `user …`, `client …` channel
//! gateway                  Gateway::handle: the one funnel and the phase list
//! endpoints  proxy         /auth/* endpoints, /.well-known/*; forwarding (forwarded, hop, upstream, splice)
//! access                   credentials, the one decide(), identity headers strip/stamp, assertion
//! accounts                 use cases and the in-memory view
//! auth  store              crypto primitives; durable state
//! telemetry                tracing, access log, metrics
//! config                   gateway.toml → Config; into_parts() → (Startup, Reloadable)
//! routing  names           policy types: path, patterns, route table; Username, Role
//! error                    GatewayError: the closed set of outcomes (SPEC §5)
//! http  memory             body type, response builders, shared header names; freed heap back to the OS
//! ```
//!
//! Every request runs the pipeline in [`gateway`]: normalize the path, strip forgeable
//! headers, divert `/auth/*` and the `/.well-known/` documents to [`endpoints`], decide access ([`access`]), forward
//! ([`proxy`]).

// `deny`, not `forbid`: `memory` alone allows `unsafe`, for one call into glibc
// (tests/layers.rs checks that no other file does).
#![deny(unsafe_code)]

pub mod access;
pub mod accounts;
pub mod admin;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod endpoints;
pub mod error;
pub mod gateway;
pub mod http;
pub mod memory;
pub mod names;
pub mod ops;
pub mod proxy;
pub mod routing;
pub mod server;
pub mod store;
pub mod telemetry;

pub use app::{App, AppHandle};
pub use config::Config;
