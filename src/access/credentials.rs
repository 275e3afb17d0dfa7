//! Credentials on a request: the bearer token (RFC 6750 §2.1) and, with `[browser]
//! enabled`, the browser session cookie (SPEC §10). Parsing here; verifying is the
//! accounts layer's ([`Accounts::authenticate`], [`Accounts::authenticate_session`]).
//! Never logs a credential.
//!
//! Which credential counts ([`credential`]): a request with an `Authorization` header is
//! judged by it alone — a bad bearer token is 401 `invalid_token` even when a valid
//! session cookie rides along, and another scheme is no credential; the cookie is not
//! consulted (so an API client is never silently authenticated by a browser's ambient
//! cookie, and a script cannot mix the two). Without one, and only with `[browser]
//! enabled`, the session cookie (`BrowserSettings::cookie_name`, [`super::cookie::find`]).
//! An invalid, ended or expired session cookie is no credential (401 `unauthorized`, or
//! the sign-in redirect for a browser navigation): the browser is simply signed out.
//! Bearer requests pay nothing for this: the `Cookie` header is parsed only when there is
//! no `Authorization` header and browser sign-in is on.

use http::header;
use http::{HeaderMap, HeaderValue};

use crate::accounts::{Accounts, Identity};
use crate::config::BrowserSettings;
use crate::error::GatewayError;

/// The credential a request presents (see the module doc for which one counts).
#[derive(Clone, Copy)]
pub enum Credential<'h> {
    /// `Authorization: Bearer <token>`.
    Bearer(&'h str),
    /// The browser session cookie's value.
    Session(&'h str),
    /// Nothing usable: no `Authorization` (or another scheme) and no session cookie.
    None,
}

/// The request's credential: the `Authorization` header alone when there is one (errors
/// as [`bearer_token`]); else, with `[browser] enabled`, the session cookie.
pub fn credential<'h>(
    headers: &'h HeaderMap,
    browser: &BrowserSettings,
) -> Result<Credential<'h>, GatewayError> {
    // One lookup: an `Authorization` header (any scheme) decides alone.
    if let Some(value) = single_authorization(headers)? {
        return Ok(bearer_of(value)?.map_or(Credential::None, Credential::Bearer));
    }
    if !browser.enabled {
        return Ok(Credential::None);
    }
    Ok(super::cookie::find(headers, browser.cookie_name())
        .map_or(Credential::None, Credential::Session))
}

/// The caller's identity from a required credential — a bearer token, or (with
/// `[browser] enabled` and no `Authorization` header) the session cookie: 401
/// `unauthorized` without a usable one (an invalid session cookie included), 401
/// `invalid_token` for a bearer token that does not verify, 503 `unavailable` while the
/// view is stale (as [`authenticate`]).
pub fn authenticate_request(
    accounts: &Accounts,
    browser: &BrowserSettings,
    headers: &HeaderMap,
) -> Result<Identity, GatewayError> {
    if accounts.stale() {
        return Err(GatewayError::Unavailable);
    }
    match credential(headers, browser)? {
        Credential::Bearer(token) => accounts
            .authenticate(token)
            .map_err(GatewayError::InvalidToken),
        Credential::Session(value) => accounts
            .authenticate_session(value, browser)
            .map_err(|_| GatewayError::Unauthorized),
        Credential::None => Err(GatewayError::Unauthorized),
    }
}

/// The caller's identity from a required bearer token: 401 without one, 401
/// `invalid_token` for one that does not verify; 503 `unavailable` while the in-memory
/// view is stale (SPEC §8: it may miss a logout or a disable made elsewhere, so it
/// vouches for no one).
pub fn authenticate(accounts: &Accounts, headers: &HeaderMap) -> Result<Identity, GatewayError> {
    if accounts.stale() {
        return Err(GatewayError::Unavailable);
    }
    let token = bearer_token(headers)?.ok_or(GatewayError::Unauthorized)?;
    accounts
        .authenticate(token)
        .map_err(GatewayError::InvalidToken)
}

/// The request's one `Authorization` header, if any; 400 `invalid_request` when there are
/// several (RFC 6750 §3.1; for client credentials RFC 6749 §5.2 "multiple credentials").
pub fn single_authorization(headers: &HeaderMap) -> Result<Option<&HeaderValue>, GatewayError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(GatewayError::invalid_request(
            "send exactly one Authorization header",
        ));
    }
    Ok(Some(value))
}

/// The bearer token of a request: `Ok(None)` when there is no Authorization header or it
/// uses another scheme; an error when there are several (RFC 6750 §3.1 `invalid_request`)
/// or the Bearer credentials are empty or not a token68.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, GatewayError> {
    match single_authorization(headers)? {
        Some(value) => bearer_of(value),
        None => Ok(None),
    }
}

/// The bearer token of one `Authorization` value: `Ok(None)` for another scheme, an error
/// when the Bearer credentials are empty or not text (as [`bearer_token`]).
fn bearer_of(value: &HeaderValue) -> Result<Option<&str>, GatewayError> {
    let malformed = || GatewayError::InvalidToken(crate::error::TokenRejection::Malformed);
    let bytes = value.as_bytes();
    let Some(space) = bytes.iter().position(|b| *b == b' ') else {
        return if bytes.eq_ignore_ascii_case(b"bearer") {
            Err(malformed())
        } else {
            Ok(None)
        };
    };
    if !bytes[..space].eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    let credentials = &bytes[space + 1..];
    let start = credentials
        .iter()
        .position(|b| *b != b' ')
        .unwrap_or(credentials.len());
    let end = credentials
        .iter()
        .rposition(|b| *b != b' ')
        .map_or(start, |i| i + 1);
    let token = &credentials[start..end];
    // The token68 alphabet is checked by `TokenKeys::verify`, only for tokens it has not
    // verified before: a token equal to a verified one is well-formed (measured: the
    // per-byte check was 5% of a proxied request's instructions).
    if token.is_empty() {
        return Err(malformed());
    }
    std::str::from_utf8(token)
        .map(Some)
        .map_err(|_| malformed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_single() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bEaReR abc.def.ghi"),
        );
        assert_eq!(bearer_token(&headers).ok().flatten(), Some("abc.def.ghi"));
        headers.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert!(matches!(
            bearer_token(&headers),
            Err(GatewayError::InvalidRequest(_))
        ));
        let mut basic = HeaderMap::new();
        basic.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcjpwYXNz"),
        );
        assert_eq!(bearer_token(&basic).ok().flatten(), None);
    }

    #[test]
    fn an_authorization_header_of_any_scheme_decides_alone_and_only_once() {
        let browser = BrowserSettings {
            enabled: true,
            ..BrowserSettings::default()
        };
        let cookie = format!("{}=session-value", browser.cookie_name());
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&cookie).expect("cookie"),
        );
        assert!(matches!(
            credential(&headers, &browser),
            Ok(Credential::Session("session-value"))
        ));
        // Another scheme: no credential, the cookie is not consulted.
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcjpwYXNz"),
        );
        assert!(matches!(
            credential(&headers, &browser),
            Ok(Credential::None)
        ));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer a.b.c"),
        );
        assert!(matches!(
            credential(&headers, &browser),
            Ok(Credential::Bearer("a.b.c"))
        ));
        headers.append(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer a.b.c"),
        );
        assert!(matches!(
            credential(&headers, &browser),
            Err(GatewayError::InvalidRequest(_))
        ));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert!(matches!(
            credential(&headers, &browser),
            Err(GatewayError::InvalidToken(_))
        ));
    }
}
