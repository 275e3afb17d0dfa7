//! `POST /auth/revoke`: OAuth 2.0 token revocation (RFC 7009, SPEC §4). A form with
//! `token` (an access or a refresh token) and an optional `token_type_hint`; a refresh
//! token ends its whole login session, an access token stops working. The answer is 200
//! with an empty body whatever the token was — unknown, expired, revoked before, or of
//! another gateway (RFC 7009 §2.2: the caller learns nothing about the token) — and 400
//! `invalid_request` without `token`. No client authentication: gatehouse's tokens are
//! bearer tokens of public clients (SPEC §4 names none; the discovery document says
//! `"none"`).

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;

use super::body::{self, Accepts};
use super::{account_error, EndpointContext};
use crate::error::GatewayError;
use crate::http::{empty_response, Body};

const EXPECTED: &str = "send token (and optionally token_type_hint) as form fields";

#[derive(Deserialize)]
struct RevokeRequest {
    token: String,
    /// `access_token` or `refresh_token`; read and not needed: the token's shape says
    /// which lookup can match (RFC 7009 §2.1 lets the server search every type).
    #[serde(default)]
    #[allow(dead_code)]
    token_type_hint: Option<String>,
}

/// Serves `POST /auth/revoke`: 200 once the token (if it was one of ours) is revoked.
pub async fn handle(
    context: &EndpointContext<'_>,
    request: Request<Incoming>,
) -> Result<Response<Body>, GatewayError> {
    let (parts, body) = request.into_parts();
    let form: RevokeRequest =
        body::parse(&parts.headers, body, Accepts::FormOnly, EXPECTED).await?;
    if form.token.is_empty() {
        return Err(GatewayError::invalid_request(
            "token is empty: send the token to revoke",
        ));
    }
    context
        .accounts
        .revoke(&form.token)
        .await
        .map_err(account_error)?;
    let mut response = empty_response(StatusCode::OK);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
