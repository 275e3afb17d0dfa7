//! `POST /auth/refresh`: a refresh token (JSON or form) → a new token pair with a new
//! refresh token (SPEC §4). Refresh tokens are single-use; a spent one presented again
//! ends its whole login session (RFC 9700 §4.14.2). Every refusal is 401
//! `invalid_grant`.

use http::{Request, Response};
use hyper::body::Incoming;
use serde::Deserialize;

use super::body::{self, Accepts};
use super::{account_error, token_response, EndpointContext};
use crate::accounts::AccountError;
use crate::error::GatewayError;
use crate::http::Body;

const EXPECTED: &str = "send refresh_token as a JSON object or as a form field";

#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: String,
}

/// Serves `POST /auth/refresh`: rotation, with every refusal a 401 `invalid_grant`.
pub async fn handle(
    context: &EndpointContext<'_>,
    request: Request<Incoming>,
) -> Result<Response<Body>, GatewayError> {
    let (parts, body) = request.into_parts();
    let form: RefreshRequest =
        body::parse(&parts.headers, body, Accepts::JsonOrForm, EXPECTED).await?;
    context
        .accounts
        .refresh(&form.refresh_token)
        .await
        .map(token_response)
        .map_err(|err| match err {
            AccountError::InvalidGrant => GatewayError::RefreshRejected,
            other => account_error(other),
        })
}
