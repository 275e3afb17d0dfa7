//! `GET /auth/me`: who the bearer token says the caller is, with current roles.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::EndpointContext;
use crate::error::GatewayError;
use crate::http::{json_response, Body};

pub fn handle(
    context: &EndpointContext<'_>,
    request: &Request<Incoming>,
) -> Result<Response<Body>, GatewayError> {
    let identity = context.authenticate(request.headers())?;
    let mut response = json_response(
        StatusCode::OK,
        &json!({
            "sub": identity.sub(),
            "username": identity.username(),
            "roles": identity.roles(),
            "iat": identity.iat(),
            "exp": identity.exp(),
        }),
    );
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}
