//! `/auth/verify`: forward-auth for proxies that already sit at the edge (nginx
//! `auth_request`, Traefik ForwardAuth, Caddy `forward_auth`).
//!
//! With `X-Forwarded-Method` / `X-Forwarded-Uri` from a trusted proxy (§3.2: from anyone
//! else they were stripped in phase 2), the route rules are applied to that request exactly
//! as the proxy path would; without them, a valid token is all that is asked. 200 carries
//! the identity headers for the proxy to copy upstream.

use http::{Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;

use super::EndpointContext;
use crate::error::GatewayError;
use crate::http::{empty_response, Body};
use crate::proxy::forwarded::{X_FORWARDED_METHOD, X_FORWARDED_URI};
use crate::proxy::{normalized_path, Record};

pub fn handle(
    context: &EndpointContext<'_>,
    request: &Request<Incoming>,
) -> Result<Response<Body>, GatewayError> {
    let headers = request.headers();
    let original_uri = match headers.get(&X_FORWARDED_URI) {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| text.parse::<Uri>().ok())
                .ok_or_else(|| {
                    GatewayError::invalid_request("X-Forwarded-Uri is not a request target")
                })?,
        ),
        None => None,
    };
    let method = match headers.get(&X_FORWARDED_METHOD) {
        Some(value) => Method::from_bytes(value.as_bytes())
            .map_err(|_| GatewayError::invalid_request("X-Forwarded-Method is not a method"))?,
        None => Method::GET,
    };
    let identity = match &original_uri {
        Some(uri) => {
            let path = normalized_path(uri)?;
            let mut record = Record::detached();
            context
                .gateway
                .decide(context.snapshot, &method, &path, headers, &mut record)?
                .identity
        }
        None => Some(context.gateway.authenticate(headers)?),
    };
    let mut response = empty_response(StatusCode::OK);
    if let Some(identity) = identity {
        context
            .snapshot
            .identity
            .stamp(response.headers_mut(), &identity);
    }
    Ok(response)
}
