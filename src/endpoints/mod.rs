//! gatehouse's own endpoints under `auth_prefix` (SPEC §4). Each file turns HTTP into a
//! typed call on the accounts layer; none touches sled, argon2 or JWT directly. Bodies
//! are read through [`body`] (at most 16 KiB, JSON or form). Endpoints see only an
//! [`EndpointContext`] (accounts, metrics, the snapshot's routes and identity header
//! names, the peer and client address), never the gateway itself.
//!
//! The routes are one table, [`ROUTES`] (path, methods, [`Endpoint`]): [`dispatch`] routes
//! by it and [`openapi`] documents it, so the two cannot drift apart.
//!
//! | path            | method    | file          |
//! |-----------------|-----------|---------------|
//! | `/login`        | POST      | `login.rs`    |
//! | `/token`        | POST      | `token.rs`    |
//! | `/refresh`      | POST      | `refresh.rs`  |
//! | `/logout`       | POST      | `logout.rs`   |
//! | `/revoke`       | POST      | `revoke.rs` (RFC 7009) |
//! | `/introspect`   | POST      | `introspect.rs` (RFC 7662; callers are service clients) |
//! | `/me`           | GET, HEAD | `me.rs`       |
//! | `/verify`       | any       | `verify.rs` (only 200, 401, 403; 503 when stale) |
//! | `/forward-auth` | any       | `verify.rs` (as `/verify`, but 302 to sign in for a browser navigation) |
//! | `/password`     | POST      | `password.rs` |
//! | `/register`     | POST      | `register.rs` (404 while registration is off) |
//! | `/openapi.json` | GET, HEAD | `openapi.rs` (OpenAPI 3.1 document of this table) |
//! | `/sign_in`      | GET, HEAD, POST | `sign_in.rs` (browser page; 404 while `[browser]` is off) |
//! | `/sign_out`     | GET, HEAD, POST | `sign_out.rs` (browser page; 404 while `[browser]` is off) |
//!
//! Service clients authenticate (token endpoint's `client_credentials` grant, introspection)
//! by HTTP Basic or in the form body, parsed in one place: [`client_auth`].
//!
//! The browser pages (SPEC §10) answer HTML; what they share — security headers, cookies,
//! the same-origin check, the `rd` validator — is [`browser`], their templates are in
//! `templates/` (askama: compiled in, HTML-escaped by construction).
//!
//! While the store is out of reach, every endpoint that must write answers 503
//! `unavailable` with `Retry-After` ([`AccountError::Unavailable`]), never 401, and
//! acknowledges nothing it could not write (SPEC §8).
//!
//! At the root, outside `auth_prefix`, [`well_known`] serves the JWKS and the discovery
//! document (SPEC §9), GET and HEAD, from precomputed bytes; the pipeline diverts those
//! exact paths to it before any route is matched.

pub mod body;
pub mod browser;
mod client_auth;
mod introspect;
mod login;
mod logout;
mod me;
pub mod openapi;
mod password;
mod refresh;
mod register;
mod revoke;
mod sign_in;
mod sign_out;
mod token;
mod verify;
pub mod well_known;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::access::{Assertions, IdentityHeaders, Verdict};
use crate::accounts::{AccountError, Accounts, Identity, TokenPair};
use crate::error::GatewayError;
use crate::http::{json_response, Body, Published};
use crate::routing::RouteTable;
use crate::telemetry::metrics::{LoginOutcome, Metrics};

/// What an endpoint may use: handed over by the pipeline, nothing more.
pub struct EndpointContext<'a> {
    pub accounts: &'a Accounts,
    pub metrics: &'a Metrics,
    /// `server.auth_prefix` (the pages' form actions and redirect rules use it).
    pub auth_prefix: &'a str,
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
    /// The OpenAPI document `GET /auth/openapi.json` serves, built once at start.
    pub openapi: &'a Published,
    /// The snapshot's `[browser]` settings (SPEC §10).
    pub browser: &'a crate::config::BrowserSettings,
}

impl EndpointContext<'_> {
    /// The caller's identity from a required bearer token.
    pub fn authenticate(&self, headers: &http::HeaderMap) -> Result<Identity, GatewayError> {
        crate::access::authenticate(self.accounts, headers)
    }
}

/// Which handler serves a route of [`ROUTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Login,
    Token,
    Refresh,
    Logout,
    Revoke,
    Introspect,
    Me,
    Verify,
    ForwardAuth,
    Password,
    Register,
    OpenApi,
    SignIn,
    SignOut,
}

/// The methods a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Methods {
    /// Only these (upper case, as on the wire); any other is 405 with `Allow: allow`,
    /// which is `methods` joined by `", "` (a unit test holds them together).
    Only {
        methods: &'static [&'static str],
        allow: &'static str,
    },
    /// Every method (forward-auth decides about the original request, whatever the
    /// proxy's own method is).
    Any,
}

impl Methods {
    const GET_HEAD: Methods = Methods::Only {
        methods: &["GET", "HEAD"],
        allow: "GET, HEAD",
    };
    const POST: Methods = Methods::Only {
        methods: &["POST"],
        allow: "POST",
    };
    const GET_HEAD_POST: Methods = Methods::Only {
        methods: &["GET", "HEAD", "POST"],
        allow: "GET, HEAD, POST",
    };

    /// 405 unless this route takes `method`.
    fn check(self, method: &Method) -> Result<(), GatewayError> {
        match self {
            Methods::Any => Ok(()),
            Methods::Only { methods, allow } => {
                if methods.contains(&method.as_str()) {
                    Ok(())
                } else {
                    Err(GatewayError::MethodNotAllowed(allow))
                }
            }
        }
    }
}

/// One endpoint: its path below `auth_prefix`, its methods, its handler.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub path: &'static str,
    pub methods: Methods,
    pub endpoint: Endpoint,
}

/// Every endpoint under `auth_prefix` (SPEC §4): the one table [`dispatch`] routes by and
/// [`openapi`] documents, so the router and `GET /auth/openapi.json` cannot disagree about
/// which paths and methods exist (tests/openapi_document.rs checks the served document
/// against it and against the real router).
pub const ROUTES: &[Route] = &[
    Route {
        path: "/login",
        methods: Methods::POST,
        endpoint: Endpoint::Login,
    },
    Route {
        path: "/token",
        methods: Methods::POST,
        endpoint: Endpoint::Token,
    },
    Route {
        path: "/refresh",
        methods: Methods::POST,
        endpoint: Endpoint::Refresh,
    },
    Route {
        path: "/logout",
        methods: Methods::POST,
        endpoint: Endpoint::Logout,
    },
    Route {
        path: "/revoke",
        methods: Methods::POST,
        endpoint: Endpoint::Revoke,
    },
    Route {
        path: "/introspect",
        methods: Methods::POST,
        endpoint: Endpoint::Introspect,
    },
    Route {
        path: "/me",
        methods: Methods::GET_HEAD,
        endpoint: Endpoint::Me,
    },
    Route {
        path: "/verify",
        methods: Methods::Any,
        endpoint: Endpoint::Verify,
    },
    Route {
        path: "/forward-auth",
        methods: Methods::Any,
        endpoint: Endpoint::ForwardAuth,
    },
    Route {
        path: "/password",
        methods: Methods::POST,
        endpoint: Endpoint::Password,
    },
    Route {
        path: "/register",
        methods: Methods::POST,
        endpoint: Endpoint::Register,
    },
    Route {
        path: "/openapi.json",
        methods: Methods::GET_HEAD,
        endpoint: Endpoint::OpenApi,
    },
    Route {
        path: "/sign_in",
        methods: Methods::GET_HEAD_POST,
        endpoint: Endpoint::SignIn,
    },
    Route {
        path: "/sign_out",
        methods: Methods::GET_HEAD_POST,
        endpoint: Endpoint::SignOut,
    },
];

/// The route at `sub_path`, if any (exact match).
pub fn route(sub_path: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|route| route.path == sub_path)
}

/// Routes `sub_path` (the normalized path below `auth_prefix`) to its endpoint by
/// [`ROUTES`]: 404 for a path not there (and for `/register` while registration is off,
/// and the browser pages while `[browser]` is off, whatever the method), 405 for a method the route does not take. `verdict` is the
/// access line's: `/auth/verify` fills in its decision and user.
pub async fn dispatch(
    context: &EndpointContext<'_>,
    sub_path: &str,
    request: Request<Incoming>,
    verdict: &mut Verdict,
) -> Result<Response<Body>, GatewayError> {
    let route = route(sub_path).ok_or(GatewayError::NotFound)?;
    if route.endpoint == Endpoint::Register && !context.accounts.registration_enabled() {
        return Err(GatewayError::NotFound);
    }
    if matches!(route.endpoint, Endpoint::SignIn | Endpoint::SignOut) && !context.browser.enabled {
        return Err(GatewayError::NotFound);
    }
    route.methods.check(request.method())?;
    match route.endpoint {
        Endpoint::Login => login::handle(context, request, verdict).await,
        Endpoint::Token => token::handle(context, request, verdict).await,
        Endpoint::Refresh => refresh::handle(context, request).await,
        Endpoint::Logout => logout::handle(context, request).await,
        Endpoint::Revoke => revoke::handle(context, request).await,
        Endpoint::Introspect => introspect::handle(context, request).await,
        Endpoint::Me => me::handle(context, &request),
        Endpoint::Verify => verify::handle(context, &request, verdict, verify::Mode::Verify),
        Endpoint::ForwardAuth => {
            verify::handle(context, &request, verdict, verify::Mode::ForwardAuth)
        }
        Endpoint::Password => password::handle(context, request).await,
        Endpoint::Register => register::handle(context, request).await,
        Endpoint::OpenApi => openapi::serve(context.openapi, request.method(), request.headers()),
        Endpoint::SignIn => sign_in::handle(context, request, verdict).await,
        Endpoint::SignOut => sign_out::handle(context, request).await,
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
        AccountError::InvalidClient => GatewayError::InvalidClient,
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
        // A service client's wrong secret is its wrong password.
        Err(AccountError::InvalidCredentials | AccountError::InvalidClient) => {
            LoginOutcome::InvalidCredentials
        }
        Err(AccountError::AccountDisabled) => LoginOutcome::Disabled,
        Err(AccountError::TooManyAttempts { .. }) => LoginOutcome::Throttled,
        Err(AccountError::Policy(_)) => LoginOutcome::InvalidRequest,
        Err(_) => LoginOutcome::Error,
    }
}
