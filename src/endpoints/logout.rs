//! `POST /auth/logout`: ends a login session (SPEC §4). Takes a refresh token (JSON or
//! form `refresh_token`) and/or a bearer access token; the session either belongs to
//! ends (all its refresh tokens and access tokens), and the presented access token is
//! revoked by its `jti`. 204 on success, including for tokens that were already invalid
//! (logout is idempotent, as revocation is in RFC 7009 §2.2); 400 when neither is given.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;

use super::body::{self, Accepts};
use super::{account_error, EndpointContext};
use crate::error::GatewayError;
use crate::http::{empty_response, Body};

const EXPECTED: &str = "send refresh_token as a JSON object or form field, and/or a bearer token";

#[derive(Deserialize)]
struct LogoutRequest {
    refresh_token: Option<String>,
}

/// Serves `POST /auth/logout`: 204 once the session is ended, 400 without any token.
pub async fn handle(
    context: &EndpointContext<'_>,
    request: Request<Incoming>,
) -> Result<Response<Body>, GatewayError> {
    let (parts, body) = request.into_parts();
    let access_token = crate::access::bearer_token(&parts.headers)?;
    let form: Option<LogoutRequest> =
        body::parse_optional(&parts.headers, body, Accepts::JsonOrForm, EXPECTED).await?;
    let refresh_token = form
        .and_then(|form| form.refresh_token)
        .filter(|token| !token.is_empty());
    if refresh_token.is_none() && access_token.is_none() {
        return Err(GatewayError::invalid_request(
            "send the session's refresh_token and/or its access token as a bearer token",
        ));
    }
    context
        .accounts
        .logout(refresh_token.as_deref(), access_token)
        .await
        .map_err(account_error)?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}
