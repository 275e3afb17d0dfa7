//! `POST /auth/introspect`: OAuth 2.0 token introspection (RFC 7662, SPEC §4), for
//! resource servers that would rather ask gatehouse than verify tokens themselves.
//!
//! Request (§2.1): a form with `token`; `token_type_hint` is accepted and not needed (only
//! access tokens can be active: §2.1 lets the server search every type, and a refresh
//! token is never a credential a resource server should accept). The caller must
//! authenticate as a service client (§2.1: "the endpoint MUST also require some form of
//! authorization"), by HTTP Basic or with `client_id` + `client_secret` in the form, as at
//! the token endpoint ([`super::client_auth`]); otherwise 401 `invalid_client` with
//! `WWW-Authenticate: Basic realm="gatehouse"` (two methods at once: 400
//! `invalid_request`). Failed client secrets count toward the login lockout like failed
//! passwords (429 `too_many_attempts` once over). Any authenticated client may introspect
//! any token: introspection answers only what a bearer of the token could learn from
//! `/auth/me`. Without `token`: 400 `invalid_request`. Other methods: 405 with
//! `Allow: POST`.
//!
//! Response (§2.2), `Cache-Control: no-store` (it describes a credential) and
//! `Pragma: no-cache`: a token that passes the full bearer validation of every protected
//! request ([`Accounts::authenticate`](crate::accounts::Accounts::authenticate):
//! signature, algorithm, `iss`, `aud`, times with leeway, not revoked, its session not
//! ended, its principal present, enabled and unchanged since) is
//! `{"active":true,"sub","username","roles","client_id"?,"exp","iat","iss","token_type":"Bearer"}`
//! with the principal's *current* username and roles (as route rules see them);
//! `client_id` is the client's name for a service client's token, `gatehouse` for a user's
//! token signed with a key pair (what such a token's own `client_id` claim says), and
//! absent for a user's token signed with a shared secret (which carries none). Anything
//! else — garbage, expired, revoked, logged out, a removed or disabled user, a rotated or
//! removed client, a refresh token — is exactly `{"active":false}` (§2.2: no more is to
//! be said about an inactive token, and no reason is given).
//!
//! While the in-memory view is stale (SPEC §8: a PostgreSQL replica that has not heard
//! from the database for `store.max_stale`) it cannot know whether a token was revoked
//! elsewhere, so the answer is 503 `unavailable` rather than a verdict either way.

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;
use zeroize::Zeroizing;

use super::body::{self, Accepts};
use super::client_auth::{self, client_error, ClientCredentials};
use super::EndpointContext;
use crate::accounts::Identity;
use crate::error::GatewayError;
use crate::http::{bytes_response, json_response, Body};

const EXPECTED: &str =
    "send token (and optionally token_type_hint) as form fields, each at most once (RFC 7662 §2.1)";

/// The whole body for an inactive token (RFC 7662 §2.2), byte for byte.
const INACTIVE: &[u8] = br#"{"active":false}"#;

#[derive(Deserialize)]
struct IntrospectRequest {
    token: Option<String>,
    /// Read and not needed (see the module doc).
    #[serde(default)]
    #[allow(dead_code)]
    token_type_hint: Option<String>,
    /// The caller, when it authenticates in the body (`client_secret_post`).
    client_id: Option<String>,
    client_secret: Option<Zeroizing<String>>,
}

/// Serves `POST /auth/introspect`; see the module doc.
pub async fn handle(
    context: &EndpointContext<'_>,
    request: Request<Incoming>,
) -> Result<Response<Body>, GatewayError> {
    let (parts, body) = request.into_parts();
    let form: IntrospectRequest =
        body::parse(&parts.headers, body, Accepts::FormOnly, EXPECTED).await?;
    let caller = client_auth::credentials(&parts.headers, form.client_id, form.client_secret)?;
    authenticate_caller(context, caller).await?;
    let token = form
        .token
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            GatewayError::invalid_request("token is required: send the token to introspect")
        })?;
    if context.accounts.stale() {
        return Err(GatewayError::Unavailable);
    }
    let mut response = match context.accounts.authenticate(&token) {
        Ok(identity) => json_response(StatusCode::OK, &active(context, &identity)),
        Err(_) => bytes_response(StatusCode::OK, INACTIVE, "application/json"),
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// Checks the calling service client's secret (401 `invalid_client` when it fails).
async fn authenticate_caller(
    context: &EndpointContext<'_>,
    caller: ClientCredentials,
) -> Result<(), GatewayError> {
    context
        .accounts
        .authenticate_client(&caller.id, caller.secret, context.client_ip)
        .await
        .map_err(client_error)
}

/// The RFC 7662 §2.2 members of an active token.
fn active(context: &EndpointContext<'_>, identity: &Identity) -> serde_json::Value {
    let keys = context.accounts.keys();
    let mut members = json!({
        "active": true,
        "sub": identity.sub(),
        "username": identity.username(),
        "roles": identity.roles(),
        "exp": identity.exp(),
        "iat": identity.iat(),
        "iss": keys.rules().issuer,
        "token_type": "Bearer",
    });
    let client_id = identity.client_id().or_else(|| {
        keys.keyring()
            .signing()
            .is_pair()
            .then_some(crate::auth::keys::USER_CLIENT_ID)
    });
    if let (Some(client_id), Some(object)) = (client_id, members.as_object_mut()) {
        object.insert("client_id".into(), client_id.into());
    }
    members
}
