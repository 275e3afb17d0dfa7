//! `POST /auth/token`: the OAuth 2.0 token endpoint, form-encoded only (RFC 6749 §3.2).
//!
//! Grants: `password` (resource owner password credentials, RFC 6749 §4.3.2) and
//! `refresh_token` (§6). `client_id` is accepted and ignored (public clients, §2.1);
//! unknown parameters are ignored (§3.2); a repeated parameter is `invalid_request`
//! (§3.1). Errors are RFC 6749 §5.2's, all 400: `invalid_request` (missing or malformed
//! parameter), `invalid_grant` (wrong credentials, disabled account, bad refresh token:
//! one answer for all), `unsupported_grant_type`; plus 429 from login regulation.

use http::{Request, Response};
use hyper::body::Incoming;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::body::{self, Accepts};
use super::{issued, login_outcome, EndpointContext};
use crate::access::Verdict;
use crate::accounts::AccountError;
use crate::error::GatewayError;
use crate::http::Body;

const EXPECTED: &str =
    "the token request must be form-encoded parameters, each at most once (RFC 6749 §3.1)";

#[derive(Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    username: Option<String>,
    password: Option<Zeroizing<String>>,
    refresh_token: Option<String>,
}

/// RFC 6749 §5.2: every grant failure is `invalid_grant`; faults stay faults.
fn grant_error(err: AccountError) -> GatewayError {
    match err {
        AccountError::TooManyAttempts { retry_after_secs } => {
            GatewayError::TooManyAttempts { retry_after_secs }
        }
        AccountError::Unavailable(_) => GatewayError::Unavailable,
        AccountError::Internal(detail) => GatewayError::Internal(detail),
        AccountError::InvalidCredentials
        | AccountError::AccountDisabled
        | AccountError::InvalidGrant
        | AccountError::NoSuchUser(_)
        | AccountError::NoSuchClient(_)
        | AccountError::InvalidClient
        | AccountError::UsernameTaken
        | AccountError::Policy(_) => GatewayError::InvalidGrant,
    }
}

/// Serves `POST /auth/token`; see the module docs for the grants and errors.
pub async fn handle(
    context: &EndpointContext<'_>,
    request: Request<Incoming>,
    verdict: &mut Verdict,
) -> Result<Response<Body>, GatewayError> {
    let (parts, body) = request.into_parts();
    let client = context.client_ip;
    let form: TokenRequest = body::parse(&parts.headers, body, Accepts::FormOnly, EXPECTED).await?;
    let accounts = &context.accounts;
    match form.grant_type.as_deref() {
        None | Some("") => Err(GatewayError::invalid_request(
            "grant_type is required (password or refresh_token)",
        )),
        // RFC 6749 §4.3.2.
        Some("password") => {
            let (Some(username), Some(password)) = (form.username, form.password) else {
                context
                    .metrics
                    .login(crate::telemetry::metrics::LoginOutcome::InvalidRequest);
                return Err(GatewayError::invalid_request(
                    "the password grant needs username and password",
                ));
            };
            let result = accounts.login(&username, password, client).await;
            context.metrics.login(login_outcome(&result));
            result
                .map(|pair| issued(context, verdict, pair))
                .map_err(grant_error)
        }
        // RFC 6749 §6.
        Some("refresh_token") => {
            let Some(refresh_token) = form.refresh_token else {
                return Err(GatewayError::invalid_request(
                    "the refresh_token grant needs refresh_token",
                ));
            };
            accounts
                .refresh(&refresh_token)
                .await
                .map(|pair| issued(context, verdict, pair))
                .map_err(grant_error)
        }
        Some(_) => Err(GatewayError::UnsupportedGrantType),
    }
}
