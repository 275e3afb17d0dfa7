//! `POST /auth/register`: self-registration, off unless `[registration] enabled = true`
//! (then 404, as if the endpoint did not exist). JSON `{"username","password"}` (a form
//! works too) → 201 `{"username","roles"}` with the `[registration]` roles; 409
//! `username_taken` (names compare case-insensitively); 400 when the username or the
//! password breaks the rules; 429 `too_many_attempts` when one address registers more
//! than `login.max_failures_per_address` times within `login.window`.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::body::{self, Accepts};
use super::login::Credentials;
use super::{account_error, EndpointContext};
use crate::error::GatewayError;
use crate::http::{json_response, Body};

const EXPECTED: &str = "send username and password as a JSON object";

/// Serves `POST /auth/register` (dispatch answers 404 while registration is off).
pub async fn handle(
    context: &EndpointContext<'_>,
    request: Request<Incoming>,
) -> Result<Response<Body>, GatewayError> {
    let (parts, body) = request.into_parts();
    let client = context.client_ip;
    let registration: Credentials =
        body::parse(&parts.headers, body, Accepts::JsonOrForm, EXPECTED).await?;
    let user = context
        .accounts
        .register(&registration.username, registration.password, client)
        .await
        .map_err(account_error)?;
    Ok(json_response(
        StatusCode::CREATED,
        &serde_json::json!({ "username": user.username, "roles": user.roles }),
    ))
}
