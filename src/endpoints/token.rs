//! `POST /auth/token`: the OAuth 2.0 token endpoint, form-encoded only (RFC 6749 §3.2).
//!
//! Grants: `password` (resource owner password credentials, RFC 6749 §4.3.2),
//! `refresh_token` (§6) and `client_credentials` (§4.4, service clients). For the first
//! two `client_id` is accepted and ignored (public clients, §2.1). Unknown parameters are
//! ignored (§3.2); a repeated parameter is `invalid_request` (§3.1). Errors are RFC 6749
//! §5.2's: 400 `invalid_request` (missing or malformed parameter), `invalid_grant` (wrong
//! credentials, disabled account, bad refresh token: one answer for all),
//! `unsupported_grant_type`; plus 429 from login regulation.
//!
//! `client_credentials` (§4.4.2): the client authenticates by HTTP Basic or with
//! `client_id` + `client_secret` in the form ([`super::client_auth`]). A failed
//! authentication — unknown client, wrong secret, removed client, none or an unsupported
//! method — is 401 `invalid_client` with `WWW-Authenticate: Basic realm="gatehouse"`
//! (§5.2), the same body whatever the cause; two methods at once are 400
//! `invalid_request`. Failures count toward the login lockout under the client's name and
//! the caller's address (429 `too_many_attempts` + `Retry-After` once over). Success is the
//! §4.4.3 response `{"access_token","token_type":"Bearer","expires_in"}` with
//! `Cache-Control: no-store` and `Pragma: no-cache`, and no refresh token (§4.4.3: "SHOULD
//! NOT be included"; a client simply authenticates again). `scope` is accepted and
//! ignored: gatehouse has roles, not scopes, and a client's token always carries all of
//! the client's roles (§3.3 lets the server ignore the requested scope; the response then
//! names none, as §5.1 allows when it is not narrowed).

use http::{Request, Response};
use hyper::body::Incoming;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::body::{self, Accepts};
use super::client_auth::{self, client_error, ClientCredentials};
use super::{issued, login_outcome, token_response, EndpointContext};
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
    /// The client-credentials grant's client, when it authenticates in the body.
    client_id: Option<String>,
    client_secret: Option<Zeroizing<String>>,
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
            "grant_type is required (password, refresh_token or client_credentials)",
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
        // RFC 6749 §4.4.
        Some("client_credentials") => {
            let credentials =
                client_auth::credentials(&parts.headers, form.client_id, form.client_secret)?;
            client_credentials(context, verdict, credentials).await
        }
        Some(_) => Err(GatewayError::UnsupportedGrantType),
    }
}

/// The client-credentials grant (RFC 6749 §4.4.2) for the presented `credentials`: the
/// §4.4.3 response, or 401 `invalid_client` / 429 / 503. Counted as a login attempt in the
/// metrics; the client's name goes on the access line.
async fn client_credentials(
    context: &EndpointContext<'_>,
    verdict: &mut Verdict,
    credentials: ClientCredentials,
) -> Result<Response<Body>, GatewayError> {
    let result = context
        .accounts
        .client_credentials(&credentials.id, credentials.secret, context.client_ip)
        .await;
    context.metrics.login(login_outcome(&result));
    let token = result.map_err(client_error)?;
    if let Ok(identity) = context.accounts.authenticate(&token.access_token) {
        verdict.user = Some(identity.user.clone());
    }
    Ok(token_response(token))
}
