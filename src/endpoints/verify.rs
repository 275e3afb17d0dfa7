//! `/auth/verify` and `/auth/forward-auth`: forward-auth for proxies that already sit at
//! the edge (nginx `auth_request`, Traefik ForwardAuth, Caddy `forward_auth`), SPEC §4,
//! §10. Both decide alike; they differ only for a browser navigation without a
//! credential when `[browser]` is enabled ([`Mode`]): `/auth/verify` keeps the 401 nginx
//! needs and adds `Location: <sign-in URL>` (nginx's `error_page 401` turns it into the
//! redirect), `/auth/forward-auth` answers the 302 itself (Traefik and Caddy pass a
//! non-2xx answer to the client as it is). The session cookie authenticates both, like
//! a bearer token ([`access::credentials`](crate::access::credentials)).
//!
//! - **Trusted proxy** (`headers.trusted_proxies`): the original request's method and URI,
//!   from `X-Forwarded-Method` / `X-Forwarded-Uri` or `X-Original-Method` /
//!   `X-Original-URI` (nginx ingress style), are decided exactly as the proxy path would
//!   decide them ([`access::decide`](fn@crate::access::decide)), public and deny
//!   routes included. When both families name the method (or the URI) they must agree,
//!   byte for byte, else 403 `invalid_request`: a proxy that sets one family may pass a
//!   client's copy of the other through, so neither may silently win. Without a forwarded
//!   URI the method is ignored and a valid token is all that is asked.
//! - **Any other peer**: those headers are refused with 403 `forbidden` and a WARN naming
//!   the fix. Phase 2 of the pipeline stripped them, but noted first that they were there
//!   ([`EndpointContext::untrusted_original_request`]); ignoring them would decide about
//!   `/auth/verify` instead of the request the proxy is asking about.
//! - **Fail closed in the proxy's vocabulary**: the answer is only 200, 401 or 403 (nginx
//!   turns anything else into 500) — and 302 from `/auth/forward-auth` for a browser
//!   navigation —, or 503 `unavailable` while this replica is past
//!   `store.max_stale` (SPEC §4, §8). A malformed forwarded method or URI, several copies of
//!   one, or any other malformed input (two `Authorization` headers, ...) is 403
//!   `invalid_request`; an internal fault is logged and answered 403.
//! - **200 carries every configured identity header**, empty without an identity
//!   (anonymous on a public route), so a proxy that copies them never passes a client's own
//!   copy through. With `[assertion] enabled` (SPEC §9) the assertion header too: an
//!   assertion for the upstream of the route decided (`upstreams.default` when no
//!   original URI is named), or empty. (SPEC leaves this open; Pomerium's forward-auth
//!   answers with its assertion the same way.)
//! - **200 carries `X-Gatehouse-Cookie`**: the request's `Cookie` header without
//!   gatehouse's session and CSRF cookies ([`cookie::without`]; empty when nothing is
//!   left). gatehouse removes its cookies from what it forwards itself (SPEC §10), but
//!   behind a proxy it forwards nothing: the proxy sends this value upstream as `Cookie`
//!   instead of the browser's (nginx `auth_request_set` + `proxy_set_header Cookie`, Caddy
//!   `copy_headers X-Gatehouse-Cookie>Cookie`; docs/browser.md), so an upstream never sees
//!   the session cookie. Always present, so an empty value means "no cookies", never
//!   "keep the browser's".
//!
//! The decision and user land in the request's [`Verdict`], so the access line and the
//! `gatehouse_requests_total{decision}` counter show what forward-auth decided.

use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;

use super::EndpointContext;
use crate::access::{self, cookie, navigation, Verdict};
use crate::accounts::Identity;
use crate::error::GatewayError;
use crate::http::{
    empty_response, Body, X_FORWARDED_METHOD, X_FORWARDED_URI, X_ORIGINAL_METHOD, X_ORIGINAL_URI,
};
use crate::routing::normalized_path;
use crate::telemetry::metrics::Decision;

/// Which forward-auth endpoint is answering: they differ only for a browser navigation
/// without a credential (SPEC §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `/auth/verify`: 401, plus `Location: <sign-in URL>` (nginx `error_page 401`).
    Verify,
    /// `/auth/forward-auth`: 302 to the sign-in URL (Traefik ForwardAuth, Caddy
    /// `forward_auth` hand a non-2xx answer to the browser as it is).
    ForwardAuth,
}

/// On every 200: the request's `Cookie` without gatehouse's own cookies (empty when none
/// is left), for the proxy to send upstream instead (module doc).
pub static X_GATEHOUSE_COOKIE: HeaderName = HeaderName::from_static("x-gatehouse-cookie");

pub fn handle(
    context: &EndpointContext<'_>,
    request: &Request<Incoming>,
    verdict: &mut Verdict,
    mode: Mode,
) -> Result<Response<Body>, GatewayError> {
    let headers = request.headers();
    let decided = original_request(context, headers, verdict).and_then(|original| {
        decide(context, headers, &original, verdict)
            .map_err(|err| sign_in_instead(context, request, &original, err, mode))
    });
    match decided {
        Ok((identity, upstream)) => answer(context, headers, identity.as_ref(), upstream)
            .map_err(|err| fail_closed(err, verdict)),
        Err(err) => Err(fail_closed(err, verdict)),
    }
}

/// The request a proxy asks about: its method (when named) and URI (when named).
struct Original {
    method: Option<Method>,
    uri: Option<Uri>,
}

/// Reads the original request's method and URI off the forwarded headers; refuses them
/// from an untrusted peer, and refuses malformed or conflicting ones.
fn original_request(
    context: &EndpointContext<'_>,
    headers: &HeaderMap,
    verdict: &mut Verdict,
) -> Result<Original, GatewayError> {
    if context.untrusted_original_request {
        verdict.decided(Decision::Rejected, None);
        tracing::warn!(
            peer = %context.peer,
            "forward-auth refused (403): X-Forwarded-Method/-Uri or X-Original-Method/-URI \
             came from a peer that is not a trusted proxy, so the route rules cannot be \
             applied; add the proxy's address to headers.trusted_proxies"
        );
        return Err(GatewayError::Forbidden);
    }
    let method = original(
        headers,
        (&X_FORWARDED_METHOD, "X-Forwarded-Method"),
        (&X_ORIGINAL_METHOD, "X-Original-Method"),
    )?;
    let uri = original(
        headers,
        (&X_FORWARDED_URI, "X-Forwarded-Uri"),
        (&X_ORIGINAL_URI, "X-Original-URI"),
    )?;
    let method = method
        .map(|value| {
            Method::from_bytes(value.as_bytes())
                .map_err(|_| invalid("the forwarded method is not an HTTP method"))
        })
        .transpose()?;
    let uri = uri
        .map(|uri| {
            uri.to_str()
                .ok()
                .filter(|text| !text.is_empty())
                .and_then(|text| text.parse::<Uri>().ok())
                .ok_or_else(|| invalid("the forwarded URI is not a request target"))
        })
        .transpose()?;
    Ok(Original { method, uri })
}

/// Who may pass (and to which upstream), or why not.
fn decide(
    context: &EndpointContext<'_>,
    headers: &HeaderMap,
    original: &Original,
    verdict: &mut Verdict,
) -> Result<(Option<Identity>, usize), GatewayError> {
    let Some(uri) = &original.uri else {
        // No original request named: a valid credential is all that is asked.
        verdict.decided(Decision::Unauthenticated, None);
        let identity = access::authenticate_request(context.accounts, context.browser, headers)?;
        verdict.decided(Decision::Authenticated, Some(&identity));
        // No route: the assertion is for `upstreams.default` (index 0).
        return Ok((Some(identity), 0));
    };
    let method = original.method.clone().unwrap_or(Method::GET);
    let path = normalized_path(uri)?;
    let route = context.routes.decide(&method, &path);
    let allowed = access::decide(context.accounts, context.browser, &route, headers, verdict)?;
    Ok((allowed.identity, allowed.upstream))
}

/// With `[browser] enabled`, a browser navigation without a credential (401
/// `unauthorized`) is pointed at the sign-in page (SPEC §10): `Location` on the 401
/// (`/auth/verify`) or a 302 (`/auth/forward-auth`). Navigation-ness is the original
/// request's: the forwarded method (else this request's own) and the browser's
/// `Sec-Fetch-*` / `Accept` headers, which proxies pass through to forward-auth. `rd` is
/// the forwarded URI on the trusted proxy's `X-Forwarded-Proto` / `X-Forwarded-Host`, or
/// on `public_url` when the proxy sends no origin (or no URI: then `public_url` + `/`).
fn sign_in_instead(
    context: &EndpointContext<'_>,
    request: &Request<Incoming>,
    original: &Original,
    err: GatewayError,
    mode: Mode,
) -> GatewayError {
    let browser = context.browser;
    let method = original.method.as_ref().unwrap_or(request.method());
    let headers = request.headers();
    if !navigation::wants_sign_in(&err, browser, method, headers) {
        return err;
    }
    let target = match &original.uri {
        Some(uri) => match normalized_path(uri) {
            Ok(path) => navigation::original_url(
                browser,
                navigation::forwarded_origin(headers),
                &path,
                uri.query(),
            ),
            Err(_) => return err,
        },
        None => navigation::original_url(browser, None, "/", None),
    };
    match (
        navigation::sign_in_location(browser, context.auth_prefix, &target),
        mode,
    ) {
        (Some(location), Mode::Verify) => GatewayError::UnauthorizedSignIn(location),
        (Some(location), Mode::ForwardAuth) => GatewayError::SignIn(location),
        (None, _) => err,
    }
}

/// The one value given for the original method or URI, by either family of headers.
/// Several copies of a header, or the two families disagreeing, are refused.
fn original<'h>(
    headers: &'h HeaderMap,
    forwarded: (&HeaderName, &str),
    alternative: (&HeaderName, &str),
) -> Result<Option<&'h HeaderValue>, GatewayError> {
    let single = |(name, shown): (&HeaderName, &str)| {
        let mut values = headers.get_all(name).iter();
        let first = values.next();
        match values.next() {
            Some(_) => Err(invalid(format!("send exactly one {shown} header"))),
            None => Ok(first),
        }
    };
    match (single(forwarded)?, single(alternative)?) {
        (Some(a), Some(b)) if a != b => Err(invalid(format!(
            "{} and {} disagree",
            forwarded.1, alternative.1
        ))),
        (a, b) => Ok(a.or(b)),
    }
}

fn invalid(description: impl Into<String>) -> GatewayError {
    GatewayError::InvalidForwardedRequest(description.into())
}

/// 200 with every identity header (and the assertion header when enabled): the
/// identity's values, or empty.
fn answer(
    context: &EndpointContext<'_>,
    request_headers: &HeaderMap,
    identity: Option<&Identity>,
    upstream: usize,
) -> Result<Response<Body>, GatewayError> {
    let names = context.identity_headers;
    let assertions = context.assertions;
    let assertion = assertions.value_for(context.accounts.keys(), identity, upstream)?;
    let mut response = empty_response(StatusCode::OK);
    let headers = response.headers_mut();
    for name in [&names.user, &names.subject, &names.roles] {
        headers.insert(name.clone(), HeaderValue::from_static(""));
    }
    if assertions.enabled() {
        headers.insert(assertions.header().clone(), HeaderValue::from_static(""));
    }
    if let Some(identity) = identity {
        names.stamp(headers, identity);
    }
    assertions.stamp(headers, assertion);
    headers.insert(
        X_GATEHOUSE_COOKIE.clone(),
        cookie::without(request_headers, &cookie::GATEHOUSE_COOKIES),
    );
    Ok(response)
}

/// Keeps a refusal within what a forward-auth proxy understands: 401 and 403 pass as
/// they are, and so does 503 `unavailable` (SPEC §4: a replica past `store.max_stale`
/// cannot vouch for anyone; still closed); a malformed request becomes 403
/// `invalid_request`; anything else 403 `forbidden`.
fn fail_closed(err: GatewayError, verdict: &mut Verdict) -> GatewayError {
    match err {
        GatewayError::Unauthorized
        | GatewayError::SignIn(_)
        | GatewayError::UnauthorizedSignIn(_)
        | GatewayError::InvalidToken(_)
        | GatewayError::InsufficientScope
        | GatewayError::Forbidden => err,
        GatewayError::Unavailable => {
            verdict.decided(Decision::Unavailable, None);
            err
        }
        GatewayError::InvalidForwardedRequest(_) => {
            verdict.decided(Decision::Rejected, None);
            err
        }
        GatewayError::InvalidRequest(description) => {
            verdict.decided(Decision::Rejected, None);
            GatewayError::InvalidForwardedRequest(description)
        }
        GatewayError::Internal(detail) => {
            tracing::error!(error = %detail, "forward-auth failed; answering 403");
            verdict.decided(Decision::Rejected, None);
            GatewayError::Forbidden
        }
        GatewayError::CrossSiteForm
        | GatewayError::PayloadTooLarge
        | GatewayError::NotFound
        | GatewayError::MethodNotAllowed(_)
        | GatewayError::InvalidCredentials
        | GatewayError::AccountDisabled
        | GatewayError::TooManyAttempts { .. }
        | GatewayError::InvalidGrant
        | GatewayError::RefreshRejected
        | GatewayError::UnsupportedGrantType
        | GatewayError::InvalidClient
        | GatewayError::UsernameTaken
        | GatewayError::BadGateway
        | GatewayError::GatewayTimeout => {
            verdict.decided(Decision::Rejected, None);
            GatewayError::Forbidden
        }
    }
}
