//! gatehouse's own endpoints under `auth_prefix` (SPEC §4). Each file turns HTTP into a
//! typed call on the accounts layer; none touches sled, argon2 or JWT directly.

mod me;
mod verify;

use http::{Method, Request, Response};
use hyper::body::Incoming;

use crate::error::GatewayError;
use crate::http::Body;
use crate::proxy::{ConnInfo, Gateway, Snapshot};

/// What an endpoint may use.
pub struct EndpointContext<'a> {
    pub gateway: &'a Gateway,
    pub snapshot: &'a Snapshot,
    pub conn: ConnInfo,
    /// The peer is a trusted proxy: its `X-Forwarded-*` headers were kept.
    pub trusted: bool,
}

/// Routes `sub_path` (the normalized path below `auth_prefix`) to its endpoint.
pub async fn dispatch(
    context: &EndpointContext<'_>,
    sub_path: &str,
    request: Request<Incoming>,
) -> Result<Response<Body>, GatewayError> {
    let method = request.method().clone();
    match sub_path {
        "/me" => only(&method, &[Method::GET, Method::HEAD], "GET, HEAD")
            .and_then(|()| me::handle(context, &request)),
        "/verify" => verify::handle(context, &request),
        _ => Err(GatewayError::NotFound),
    }
}

/// 405 unless the method is one of `allowed`.
fn only(
    method: &Method,
    allowed: &[Method],
    allow_header: &'static str,
) -> Result<(), GatewayError> {
    if allowed.contains(method) {
        Ok(())
    } else {
        Err(GatewayError::MethodNotAllowed(allow_header))
    }
}
