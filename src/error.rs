//! The closed set of outcomes a client can be told about (SPEC §5), and the one place that
//! maps each to a status, an `error` code, a description and extra headers.
//!
//! Handlers return `Result<_, GatewayError>`; only the outer funnel renders it, so every
//! error body in the product has the same JSON shape and no handler can forget the
//! `WWW-Authenticate` header of a 401 (RFC 6750 §3).

use http::{header, HeaderValue, Response, StatusCode};

use crate::http::{json_bytes, Body};

/// Why a presented access token was refused. Kept apart from [`GatewayError`] so metrics
/// can count rejections by reason without parsing descriptions (it is the `reason` label
/// of `gatehouse_token_rejections_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenRejection {
    /// Larger than the cap we are willing to decode.
    Oversized,
    /// Not a well-formed JWT, or a header/claim of the wrong type.
    Malformed,
    /// `alg` other than the configured one (including `none`).
    WrongAlgorithm,
    /// Signature does not verify with the configured key.
    BadSignature,
    Expired,
    /// `nbf` or `iat` lies in the future beyond the leeway.
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    /// Its `jti` was revoked (logout), its user is gone or disabled, or it predates the
    /// user's last password change. One reason so responses never reveal which.
    Revoked,
}

impl TokenRejection {
    /// Stable label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRejection::Oversized => "oversized",
            TokenRejection::Malformed => "malformed",
            TokenRejection::WrongAlgorithm => "wrong_algorithm",
            TokenRejection::BadSignature => "bad_signature",
            TokenRejection::Expired => "expired",
            TokenRejection::NotYetValid => "not_yet_valid",
            TokenRejection::WrongIssuer => "wrong_issuer",
            TokenRejection::WrongAudience => "wrong_audience",
            TokenRejection::Revoked => "revoked",
        }
    }

    fn description(self) -> &'static str {
        match self {
            TokenRejection::Expired => "the access token has expired",
            TokenRejection::NotYetValid => "the access token is not valid yet",
            TokenRejection::Revoked => "the access token has been revoked",
            TokenRejection::Oversized
            | TokenRejection::Malformed
            | TokenRejection::WrongAlgorithm
            | TokenRejection::BadSignature
            | TokenRejection::WrongIssuer
            | TokenRejection::WrongAudience => "the access token is invalid",
        }
    }
}

/// The `Retry-After` of a 503 `unavailable`, in seconds: a replica polls the database
/// every few hundred milliseconds and reconnects on its own, so a client may try again
/// soon; a longer outage just answers 503 again.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 2;

/// Every outcome gatehouse reports to a client as an error (SPEC §4, §5).
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    #[error("a bearer token is required")]
    Unauthorized,
    /// [`GatewayError::Unauthorized`] for a browser navigation with `[browser] enabled`
    /// (SPEC §10): 302 to the sign-in page, the `Location` given (`public_url` +
    /// `<auth_prefix>/sign_in?rd=<the original URL>`); also `GET /auth/forward-auth`'s
    /// answer for one.
    #[error("sign in first")]
    SignIn(HeaderValue),
    /// [`GatewayError::Unauthorized`] from `/auth/verify` for a browser navigation (SPEC
    /// §10): still 401 (nginx `auth_request` accepts only 2xx, 401, 403), plus `Location`:
    /// the sign-in page, which nginx's `error_page 401` redirects to.
    #[error("a bearer token is required")]
    UnauthorizedSignIn(HeaderValue),
    #[error("invalid token: {}", .0.as_str())]
    InvalidToken(TokenRejection),
    #[error("token lacks a required role")]
    InsufficientScope,
    #[error("access to this path is denied")]
    Forbidden,
    /// A browser form (sign-in, sign-out) posted without its CSRF token or from another
    /// site (SPEC §10): 403 `forbidden`, with a description that says what to do.
    #[error("the form was not sent from this site's own page")]
    CrossSiteForm,
    #[error("{0}")]
    InvalidRequest(String),
    /// A malformed request to forward-auth (`/auth/verify`), which answers only 401 or 403
    /// (nginx turns anything else into 500): 403 `invalid_request`.
    #[error("{0}")]
    InvalidForwardedRequest(String),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("account disabled")]
    AccountDisabled,
    #[error("too many attempts")]
    TooManyAttempts { retry_after_secs: u64 },
    /// RFC 6749 §5.2 `invalid_grant` from the token endpoint (400).
    #[error("invalid grant")]
    InvalidGrant,
    /// `invalid_grant` from `/auth/refresh`, which SPEC §4 answers with 401.
    #[error("invalid refresh token")]
    RefreshRejected,
    #[error("unsupported grant type")]
    UnsupportedGrantType,
    /// RFC 6749 §5.2 `invalid_client`: a service client's authentication failed (unknown
    /// client, wrong secret, removed or disabled client, no or an unsupported client
    /// authentication). 401 with `WWW-Authenticate: Basic` (the scheme clients
    /// authenticate with); one answer for every cause, so nothing tells whether a client
    /// of that name exists.
    #[error("client authentication failed")]
    InvalidClient,
    #[error("username taken")]
    UsernameTaken,
    #[error("upstream unreachable")]
    BadGateway,
    #[error("upstream timed out")]
    GatewayTimeout,
    /// The store cannot be reached, or this replica has gone more than `store.max_stale`
    /// without hearing from it (SPEC §5, §8): 503 with `Retry-After`, never a 401.
    #[error("the store is unavailable")]
    Unavailable,
    /// A fault of ours (store I/O, a task that died). The detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    /// Shorthand for a 400 with a description that says what to fix.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        GatewayError::InvalidRequest(description.into())
    }

    /// The HTTP status. Exhaustive with no `_` arm: a new outcome forces a decision here.
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::Unauthorized => StatusCode::UNAUTHORIZED,
            GatewayError::SignIn(_) => StatusCode::FOUND,
            GatewayError::UnauthorizedSignIn(_) => StatusCode::UNAUTHORIZED,
            GatewayError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            GatewayError::InsufficientScope => StatusCode::FORBIDDEN,
            GatewayError::Forbidden | GatewayError::CrossSiteForm => StatusCode::FORBIDDEN,
            GatewayError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            GatewayError::InvalidForwardedRequest(_) => StatusCode::FORBIDDEN,
            GatewayError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::NotFound => StatusCode::NOT_FOUND,
            GatewayError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            GatewayError::AccountDisabled => StatusCode::FORBIDDEN,
            GatewayError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::InvalidGrant => StatusCode::BAD_REQUEST,
            GatewayError::RefreshRejected => StatusCode::UNAUTHORIZED,
            GatewayError::UnsupportedGrantType => StatusCode::BAD_REQUEST,
            GatewayError::InvalidClient => StatusCode::UNAUTHORIZED,
            GatewayError::UsernameTaken => StatusCode::CONFLICT,
            GatewayError::BadGateway => StatusCode::BAD_GATEWAY,
            GatewayError::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `error` code of the JSON body (SPEC §5; RFC 6749 §5.2 and RFC 6750 §3 names).
    /// Exhaustive with no `_` arm, as every mapping here.
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::Unauthorized => "unauthorized",
            GatewayError::SignIn(_) => "unauthorized",
            GatewayError::UnauthorizedSignIn(_) => "unauthorized",
            GatewayError::InvalidToken(_) => "invalid_token",
            GatewayError::InsufficientScope => "insufficient_scope",
            GatewayError::Forbidden | GatewayError::CrossSiteForm => "forbidden",
            GatewayError::InvalidRequest(_) => "invalid_request",
            GatewayError::InvalidForwardedRequest(_) => "invalid_request",
            GatewayError::PayloadTooLarge => "payload_too_large",
            GatewayError::NotFound => "not_found",
            GatewayError::MethodNotAllowed(_) => "method_not_allowed",
            GatewayError::InvalidCredentials => "invalid_credentials",
            GatewayError::AccountDisabled => "account_disabled",
            GatewayError::TooManyAttempts { .. } => "too_many_attempts",
            GatewayError::InvalidGrant => "invalid_grant",
            GatewayError::RefreshRejected => "invalid_grant",
            GatewayError::UnsupportedGrantType => "unsupported_grant_type",
            GatewayError::InvalidClient => "invalid_client",
            GatewayError::UsernameTaken => "username_taken",
            GatewayError::BadGateway => "bad_gateway",
            GatewayError::GatewayTimeout => "gateway_timeout",
            GatewayError::Unavailable => "unavailable",
            GatewayError::Internal(_) => "internal_error",
        }
    }

    /// The human sentence of the JSON body. Never holds a token, a password, or whether a
    /// username exists.
    pub fn description(&self) -> &str {
        match self {
            GatewayError::Unauthorized => "a valid bearer token is required",
            GatewayError::SignIn(_) | GatewayError::UnauthorizedSignIn(_) => {
                "sign in to continue: a valid session or bearer token is required"
            }
            GatewayError::InvalidToken(reason) => reason.description(),
            GatewayError::InsufficientScope => "the token lacks a role this route requires",
            GatewayError::Forbidden => "access to this path is denied",
            GatewayError::CrossSiteForm => {
                "this form did not come from this site's own page (it may be stale, or sent \
                 from another site): open the page again and resubmit"
            }
            GatewayError::InvalidRequest(text) => text,
            GatewayError::InvalidForwardedRequest(text) => text,
            GatewayError::PayloadTooLarge => "the request body is larger than 16 KiB",
            GatewayError::NotFound => "no such endpoint",
            GatewayError::MethodNotAllowed(_) => "this endpoint does not take that method",
            GatewayError::InvalidCredentials => "invalid username or password",
            GatewayError::AccountDisabled => "this account is disabled",
            GatewayError::TooManyAttempts { .. } => "too many failed attempts; try again later",
            GatewayError::InvalidGrant => "the grant is invalid, expired or revoked",
            GatewayError::RefreshRejected => "the refresh token is invalid, expired or revoked",
            GatewayError::UnsupportedGrantType => {
                "grant_type must be password, refresh_token or client_credentials"
            }
            GatewayError::InvalidClient => {
                "client authentication failed: send the client's id and secret by HTTP Basic or as client_id and client_secret"
            }
            GatewayError::UsernameTaken => "that username is taken",
            GatewayError::BadGateway => "the upstream service could not be reached",
            GatewayError::GatewayTimeout => "the upstream service did not answer in time",
            GatewayError::Unavailable => "the account store is out of reach; try again shortly",
            GatewayError::Internal(_) => "an internal error occurred",
        }
    }

    /// Renders the SPEC §5 JSON body with its headers: the extra headers of each outcome
    /// (exhaustive, no `_` arm), then `Cache-Control: no-store` on all. The sign-in
    /// redirect (302) has no body.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let body = json_bytes(&serde_json::json!({
            "error": self.code(),
            "error_description": self.description(),
        }));
        // A redirect is not an error for the browser that follows it: no body.
        let mut response = if matches!(self, GatewayError::SignIn(_)) {
            crate::http::empty_response(status)
        } else {
            crate::http::bytes_response(status, body, "application/json")
        };
        let headers = response.headers_mut();
        match &self {
            GatewayError::Unauthorized
            | GatewayError::InvalidCredentials
            | GatewayError::RefreshRejected => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="gatehouse""#),
                );
            }
            GatewayError::SignIn(location) => {
                headers.insert(header::LOCATION, location.clone());
            }
            GatewayError::UnauthorizedSignIn(location) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="gatehouse""#),
                );
                headers.insert(header::LOCATION, location.clone());
            }
            GatewayError::InvalidToken(reason) => {
                let value = format!(
                    r#"Bearer realm="gatehouse", error="invalid_token", error_description="{}""#,
                    reason.description()
                );
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            GatewayError::InsufficientScope => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        r#"Bearer realm="gatehouse", error="insufficient_scope", error_description="the token lacks a role this route requires""#,
                    ),
                );
            }
            // RFC 6749 §5.2: the scheme the client authenticates with.
            GatewayError::InvalidClient => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Basic realm="gatehouse""#),
                );
            }
            GatewayError::TooManyAttempts { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            GatewayError::Unavailable => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(UNAVAILABLE_RETRY_AFTER_SECS),
                );
            }
            GatewayError::MethodNotAllowed(allow) => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            GatewayError::InvalidRequest(_) => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            GatewayError::Forbidden
            | GatewayError::CrossSiteForm
            | GatewayError::InvalidForwardedRequest(_)
            | GatewayError::PayloadTooLarge
            | GatewayError::NotFound
            | GatewayError::AccountDisabled
            | GatewayError::InvalidGrant
            | GatewayError::UnsupportedGrantType
            | GatewayError::UsernameTaken
            | GatewayError::BadGateway
            | GatewayError::GatewayTimeout
            | GatewayError::Internal(_) => {}
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}
