//! `POST /auth/password`: the caller changes their own password (SPEC §4). Needs a valid
//! bearer token and JSON `{"current_password","new_password"}` (a form works too). The
//! new password must meet the length policy (400); the current one must verify (401
//! `invalid_credentials`). On success every token and session issued before ends and the
//! answer is a token response for a fresh session.

use http::{Request, Response};
use hyper::body::Incoming;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::body::{self, Accepts};
use super::{account_error, token_response, EndpointContext};
use crate::error::GatewayError;
use crate::http::Body;

const EXPECTED: &str = "send current_password and new_password as a JSON object";

#[derive(Deserialize)]
struct PasswordChange {
    current_password: Zeroizing<String>,
    new_password: Zeroizing<String>,
}

/// Serves `POST /auth/password`: bearer first (401), then policy (400), then the current password (401).
pub async fn handle(
    context: &EndpointContext<'_>,
    request: Request<Incoming>,
) -> Result<Response<Body>, GatewayError> {
    let (parts, body) = request.into_parts();
    let identity = context.authenticate(&parts.headers)?;
    let change: PasswordChange =
        body::parse(&parts.headers, body, Accepts::JsonOrForm, EXPECTED).await?;
    context
        .accounts
        .change_password(&identity, change.current_password, change.new_password)
        .await
        .map(token_response)
        .map_err(account_error)
}
