//! `POST /auth/login`: username and password (JSON or form) → token response (SPEC §4).
//!
//! 401 `invalid_credentials` has one body whether the user is unknown or the password
//! wrong (the accounts layer makes the timing match too); 403 `account_disabled` only
//! after a correct password; 429 `too_many_attempts` when regulation refuses. Every
//! outcome is counted in `gatehouse_logins_total`.

use http::{Request, Response};
use hyper::body::Incoming;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::body::{self, Accepts};
use super::{account_error, issued, login_outcome, EndpointContext};
use crate::access::Verdict;
use crate::error::GatewayError;
use crate::http::Body;

const EXPECTED: &str =
    "send username and password as a JSON object or as form fields (application/x-www-form-urlencoded)";

/// A username and password, as `/auth/login` and `/auth/register` take them.
#[derive(Deserialize)]
pub(super) struct Credentials {
    pub(super) username: String,
    pub(super) password: Zeroizing<String>,
}

/// Serves `POST /auth/login`; see the module docs for the outcomes.
pub async fn handle(
    context: &EndpointContext<'_>,
    request: Request<Incoming>,
    verdict: &mut Verdict,
) -> Result<Response<Body>, GatewayError> {
    let metrics = &context.metrics;
    let (parts, body) = request.into_parts();
    let client = context.client_ip;
    let credentials: Credentials =
        match body::parse(&parts.headers, body, Accepts::JsonOrForm, EXPECTED).await {
            Ok(credentials) => credentials,
            Err(err) => {
                metrics.login(crate::telemetry::metrics::LoginOutcome::InvalidRequest);
                return Err(err);
            }
        };
    let result = context
        .accounts
        .login(&credentials.username, credentials.password, client)
        .await;
    metrics.login(login_outcome(&result));
    result
        .map(|pair| issued(context, verdict, pair))
        .map_err(account_error)
}
