//! gatehouse's own endpoints under `auth_prefix` (SPEC §4). Each file turns HTTP into a
//! typed call on the accounts layer; none touches sled, argon2 or JWT directly. Bodies
//! are read through [`body`] (at most 16 KiB, JSON or form). Endpoints see only an
//! [`EndpointContext`] (accounts, metrics, the snapshot's routes and identity header
//! names, the peer and client address), never the gateway itself.
//!
//! | path        | method    | file          |
//! |-------------|-----------|---------------|
//! | `/login`    | POST      | `login.rs`    |
//! | `/token`    | POST      | `token.rs`    |
//! | `/refresh`  | POST      | `refresh.rs`  |
//! | `/logout`   | POST      | `logout.rs`   |
//! | `/revoke`   | POST      | `revoke.rs` (RFC 7009) |
//! | `/introspect` | POST    | `introspect.rs` (RFC 7662; callers are service clients) |
//! | `/me`       | GET, HEAD | `me.rs`       |
//! | `/verify`   | any       | `verify.rs` (only 200, 401, 403; 503 when stale) |
//!
//! | `/password` | POST      | `password.rs` |
//! | `/register` | POST      | `register.rs` (404 while registration is off) |
//!
//! Service clients authenticate (token endpoint's `client_credentials` grant, introspection)
//! by HTTP Basic or in the form body, parsed in one place: [`client_auth`].
//!
//! While the store is out of reach, every endpoint that must write answers 503
//! `unavailable` with `Retry-After` ([`AccountError::Unavailable`]), never 401, and
//! acknowledges nothing it could not write (SPEC §8).
//!
//! At the root, outside `auth_prefix`, [`well_known`] serves the JWKS and the discovery
//! document (SPEC §9), GET and HEAD, from precomputed bytes; the pipeline diverts those
//! exact paths to it before any route is matched.

pub mod body;
mod client_auth;
mod introspect;
mod login;
mod logout;
mod me;
mod password;
mod refresh;
mod register;
mod revoke;
mod token;
mod verify;
pub mod well_known;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::access::{Assertions, IdentityHeaders, Verdict};
use crate::accounts::{AccountError, Accounts, Identity, TokenPair};
use crate::error::GatewayError;
use crate::http::{json_response, Body};
use crate::routing::RouteTable;
use crate::telemetry::metrics::{LoginOutcome, Metrics};

/// What an endpoint may use: handed over by the pipeline, nothing more.
pub struct EndpointContext<'a> {
    pub accounts: &'a Accounts,
    pub metrics: &'a Metrics,
    /// The snapshot's route table (`/auth/verify` decides with it).
    pub routes: &'a RouteTable,
    /// The snapshot's identity header names (`/auth/verify` answers with them).
    pub identity_headers: &'a IdentityHeaders,
    /// The snapshot's assertion settings and cache (`/auth/verify` answers with one).
    pub assertions: &'a Assertions,
    /// The connection's peer.
    pub peer: std::net::IpAddr,
    /// The client's address for brute-force counting: the peer, or — when the peer is a
    /// trusted proxy — the `X-Forwarded-For` entry that proxy appended.
    pub client_ip: std::net::IpAddr,
    /// An untrusted peer sent headers naming an original request for forward-auth
    /// (`X-Forwarded-Method/-Uri`, `X-Original-Method/-URI`); seen before phase 2
    /// stripped them, so `/auth/verify` can refuse instead of ignoring them.
    pub untrusted_original_request: bool,
}

impl EndpointContext<'_> {
    /// The caller's identity from a required bearer token.
    pub fn authenticate(&self, headers: &http::HeaderMap) -> Result<Identity, GatewayError> {
        crate::access::authenticate(self.accounts, headers)
    }
}

/// Routes `sub_path` (the normalized path below `auth_prefix`) to its endpoint. `verdict`
/// is the access line's: `/auth/verify` fills in its decision and user.
pub async fn dispatch(
    context: &EndpointContext<'_>,
    sub_path: &str,
    request: Request<Incoming>,
    verdict: &mut Verdict,
) -> Result<Response<Body>, GatewayError> {
    let method = request.method().clone();
    match sub_path {
        "/me" => only(&method, &[Method::GET, Method::HEAD], "GET, HEAD")
            .and_then(|()| me::handle(context, &request)),
        "/verify" => verify::handle(context, &request, verdict),
        "/login" => {
            only(&method, &[Method::POST], "POST")?;
            login::handle(context, request, verdict).await
        }
        "/token" => {
            only(&method, &[Method::POST], "POST")?;
            token::handle(context, request, verdict).await
        }
        "/refresh" => {
            only(&method, &[Method::POST], "POST")?;
            refresh::handle(context, request).await
        }
        "/logout" => {
            only(&method, &[Method::POST], "POST")?;
            logout::handle(context, request).await
        }
        "/revoke" => {
            only(&method, &[Method::POST], "POST")?;
            revoke::handle(context, request).await
        }
        "/introspect" => {
            only(&method, &[Method::POST], "POST")?;
            introspect::handle(context, request).await
        }
        "/password" => {
            only(&method, &[Method::POST], "POST")?;
            password::handle(context, request).await
        }
        "/register" if context.accounts.registration_enabled() => {
            only(&method, &[Method::POST], "POST")?;
            register::handle(context, request).await
        }
        _ => Err(GatewayError::NotFound),
    }
}

/// The token response for a fresh pair, with the user it was issued to put on the access
/// line (login and token endpoints): the new access token is read back through the same
/// check as any bearer token, a cost that vanishes next to the password hash a login pays.
fn issued(context: &EndpointContext<'_>, verdict: &mut Verdict, pair: TokenPair) -> Response<Body> {
    if let Ok(identity) = context.accounts.authenticate(&pair.access_token) {
        verdict.user = Some(identity.user.clone());
    }
    token_response(pair)
}

/// The token response (RFC 6749 §5.1): never cached (`Cache-Control: no-store`, and
/// `Pragma: no-cache` for HTTP/1.0 caches).
fn token_response(tokens: impl serde::Serialize) -> Response<Body> {
    let mut response = json_response(StatusCode::OK, &tokens);
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// The SPEC §5 outcome of an account error, for endpoints without their own mapping.
fn account_error(err: AccountError) -> GatewayError {
    match err {
        AccountError::InvalidCredentials
        | AccountError::NoSuchUser(_)
        | AccountError::NoSuchClient(_) => GatewayError::InvalidCredentials,
        // Until the client-credentials grant maps it to 401 `invalid_client` (GRANT).
        AccountError::InvalidClient => GatewayError::InvalidCredentials,
        AccountError::AccountDisabled => GatewayError::AccountDisabled,
        AccountError::TooManyAttempts { retry_after_secs } => {
            GatewayError::TooManyAttempts { retry_after_secs }
        }
        AccountError::InvalidGrant => GatewayError::InvalidGrant,
        AccountError::UsernameTaken => GatewayError::UsernameTaken,
        AccountError::Policy(rule) => GatewayError::InvalidRequest(rule),
        AccountError::Unavailable(_) => GatewayError::Unavailable,
        AccountError::Internal(detail) => GatewayError::Internal(detail),
    }
}

/// The `gatehouse_logins_total{outcome}` label of a login attempt.
fn login_outcome<T>(result: &Result<T, AccountError>) -> LoginOutcome {
    match result {
        Ok(_) => LoginOutcome::Success,
        Err(AccountError::InvalidCredentials) => LoginOutcome::InvalidCredentials,
        Err(AccountError::AccountDisabled) => LoginOutcome::Disabled,
        Err(AccountError::TooManyAttempts { .. }) => LoginOutcome::Throttled,
        Err(AccountError::Policy(_)) => LoginOutcome::InvalidRequest,
        Err(_) => LoginOutcome::Error,
    }
}

/// 405 unless the method is one of `allowed`.
fn only(
    method: &Method,
    allowed: &[Method],
    allow_header: &'static str,
) -> Result<(), GatewayError> {
    if allowed.contains(method) {
        Ok(())
    } else {
        Err(GatewayError::MethodNotAllowed(allow_header))
    }
}
