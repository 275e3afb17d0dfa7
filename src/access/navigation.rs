//! Is this request a browser navigation (SPEC §10)? Only those are sent to the sign-in
//! page (302, or `Location` on `/auth/verify`); everything else that lacks a credential —
//! APIs, `curl`, `fetch`/XHR, images, iframes — keeps the JSON 401, so a script never
//! follows a redirect into an HTML form it cannot use.
//!
//! The rule, in order:
//! 1. the method is `GET` or `HEAD` (a POST is never replayed through a sign-in page);
//! 2. with Fetch Metadata (W3C "Fetch Metadata Request Headers": `Sec-Fetch-Mode`, sent by
//!    every current browser): `Sec-Fetch-Mode: navigate` and `Sec-Fetch-Dest` absent or
//!    `document` — a top-level navigation, not an `<iframe>`/`<embed>` load (`iframe`,
//!    `embed`, `object` destinations keep the 401: a sign-in form must never render inside
//!    another site's frame);
//! 3. without Fetch Metadata (older browsers, proxies that drop it): an `Accept` header
//!    that lists `text/html` (RFC 9110 §12.5.1), parsed as a list of media ranges with
//!    parameters — `text/html;q=0` means "not acceptable" (§12.4.2) and does not count,
//!    nor does `*/*` or `text/*` alone (what `curl` and XHR send).
//!
//! Malformed or repeated Fetch Metadata headers are not a navigation (fail towards the
//! JSON 401, which is what every non-browser client gets anyway).
//!
//! Where a navigation is sent ([`sign_in_location`]): `public_url` with the path
//! `<auth_prefix>/sign_in` and the query `rd=<the original URL>` (percent-encoded as
//! `application/x-www-form-urlencoded`, so the whole URL is one parameter value). The
//! original URL ([`original_url`]) is `scheme://host` + the normalized path (what was
//! matched) + `?` + the query as the browser sent it. The sign-in page validates `rd`
//! before it redirects anywhere (SPEC §10 "Redirect target"): an original host that is
//! neither `public_url`'s nor allowed ends on `/`, so a forged `Host` here cannot become
//! an open redirect. A `Host` that is not a plain authority (letters, digits, `.`, `-`,
//! `:`, `[`, `]`) is not used at all: `public_url`'s origin stands in.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Method;

use crate::config::BrowserSettings;
use crate::error::GatewayError;

static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");
static SEC_FETCH_DEST: HeaderName = HeaderName::from_static("sec-fetch-dest");

/// True when `method` and `headers` describe a browser navigation (module doc).
pub fn is_browser_navigation(method: &Method, headers: &HeaderMap) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    let dest_is_document = match single(headers, &SEC_FETCH_DEST) {
        Single::Absent => true,
        Single::One(dest) => token_is(dest, b"document"),
        Single::Several => false,
    };
    match single(headers, &SEC_FETCH_MODE) {
        Single::One(mode) => token_is(mode, b"navigate") && dest_is_document,
        Single::Several => false,
        Single::Absent => dest_is_document && accepts_html(headers),
    }
}

/// True when refusal `err` should send the browser to sign in (SPEC §10): `[browser]`
/// enabled, the request needs a credential and has none — 401 `unauthorized` and no
/// `Authorization` header at all (a request with one is judged by it alone: a bad or
/// other-scheme credential keeps its 401) — and it is a browser navigation.
pub fn wants_sign_in(
    err: &GatewayError,
    browser: &BrowserSettings,
    method: &Method,
    headers: &HeaderMap,
) -> bool {
    matches!(err, GatewayError::Unauthorized)
        && browser.enabled
        && !headers.contains_key(header::AUTHORIZATION)
        && is_browser_navigation(method, headers)
}

/// The sign-in page for a navigation to `original` (module doc); `None` only if the URL
/// cannot be a header value (it always can: the url crate serializes ASCII).
pub fn sign_in_location(
    browser: &BrowserSettings,
    auth_prefix: &str,
    original: &str,
) -> Option<HeaderValue> {
    let mut url = browser.public_url.clone();
    url.set_path(&format!("{auth_prefix}/sign_in"));
    url.set_query(None);
    url.set_fragment(None);
    url.query_pairs_mut().append_pair("rd", original);
    HeaderValue::from_str(url.as_str()).ok()
}

/// The URL a browser asked for: `scheme://authority` + `path` + `?query`, with
/// `public_url`'s origin standing in when `origin` is `None` or its authority is not a
/// plain `host[:port]` (module doc).
pub fn original_url(
    browser: &BrowserSettings,
    origin: Option<(&str, &[u8])>,
    path: &str,
    query: Option<&str>,
) -> String {
    let mut url = match origin {
        Some((scheme, authority)) if plain_authority(authority) => {
            let mut text = String::with_capacity(scheme.len() + authority.len() + 3);
            text.push_str(scheme);
            text.push_str("://");
            text.extend(authority.iter().map(|byte| char::from(*byte)));
            text
        }
        _ => browser.origin(),
    };
    url.push_str(path);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// Where a proxied request was addressed: `https` when the connection is TLS or a
/// trusted proxy says so in `X-Forwarded-Proto`, else `http`; the authority from a
/// trusted proxy's `X-Forwarded-Host`, else `Host`. Call it after phase 2 of the
/// pipeline, which dropped `X-Forwarded-*` from untrusted peers (so what is left was
/// written by a trusted proxy).
pub fn request_origin(headers: &HeaderMap, https: bool) -> (&'static str, Option<&[u8]>) {
    let forwarded_https = first_element(headers, &X_FORWARDED_PROTO)
        .is_some_and(|proto| proto.eq_ignore_ascii_case(b"https"));
    let scheme = if https || forwarded_https {
        "https"
    } else {
        "http"
    };
    let host = first_element(headers, &X_FORWARDED_HOST)
        .or_else(|| headers.get(header::HOST).map(|host| trim(host.as_bytes())));
    (scheme, host)
}

/// The original request's origin as a trusted proxy states it for forward-auth:
/// `X-Forwarded-Proto` (`http` or `https`) and `X-Forwarded-Host`, both needed. Only
/// meaningful after phase 2 (see [`request_origin`]).
pub fn forwarded_origin(headers: &HeaderMap) -> Option<(&'static str, &[u8])> {
    let proto = first_element(headers, &X_FORWARDED_PROTO)?;
    let scheme = if proto.eq_ignore_ascii_case(b"https") {
        "https"
    } else if proto.eq_ignore_ascii_case(b"http") {
        "http"
    } else {
        return None;
    };
    Some((scheme, first_element(headers, &X_FORWARDED_HOST)?))
}

/// The first element of a comma-separated header (the one the client-facing proxy
/// wrote), trimmed; `None` when absent or empty.
fn first_element<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h [u8]> {
    let value = headers.get(name)?.as_bytes();
    let first = trim(value.split(|byte| *byte == b',').next()?);
    (!first.is_empty()).then_some(first)
}

/// Letters, digits, `.`, `-`, `:`, `[`, `]`: a host, an IP literal, a port — nothing
/// that could carry user info, a path or a second URL.
fn plain_authority(authority: &[u8]) -> bool {
    !authority.is_empty()
        && authority.len() <= 255
        && authority
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || b".-:[]".contains(byte))
}

/// True when the `Accept` header(s) list `text/html` with a non-zero quality.
pub fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .any(|value| list_accepts_html(value.as_bytes()))
}

enum Single<'h> {
    Absent,
    One(&'h [u8]),
    Several,
}

fn single<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Single<'h> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Single::Absent,
        (Some(value), None) => Single::One(value.as_bytes()),
        (Some(_), Some(_)) => Single::Several,
    }
}

/// A structured-header token compared case-insensitively, surrounding whitespace ignored.
fn token_is(value: &[u8], expected: &[u8]) -> bool {
    trim(value).eq_ignore_ascii_case(expected)
}

fn trim(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// One `Accept` field value: `#( media-range [ weight ] )`, commas inside quoted
/// parameter values not splitting (RFC 9110 §5.6.1, §5.6.4).
fn list_accepts_html(value: &[u8]) -> bool {
    split_outside_quotes(value, b',').any(media_range_is_html)
}

/// `text/html` (case-insensitive) with no `q` parameter, or one above zero. An
/// unparsable `q` does not count.
fn media_range_is_html(element: &[u8]) -> bool {
    let mut parts = split_outside_quotes(element, b';');
    let Some(media) = parts.next() else {
        return false;
    };
    if !trim(media).eq_ignore_ascii_case(b"text/html") {
        return false;
    }
    for parameter in parts {
        let parameter = trim(parameter);
        let Some(equals) = parameter.iter().position(|b| *b == b'=') else {
            continue;
        };
        let (name, value) = (trim(&parameter[..equals]), trim(&parameter[equals + 1..]));
        if name.eq_ignore_ascii_case(b"q") {
            return quality_above_zero(value);
        }
    }
    true
}

/// RFC 9110 §12.4.2: `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`.
fn quality_above_zero(value: &[u8]) -> bool {
    match value {
        [b'1'] => true,
        [b'1', b'.', rest @ ..] => rest.len() <= 3 && rest.iter().all(|b| *b == b'0'),
        [b'0'] => false,
        [b'0', b'.', rest @ ..] => {
            rest.len() <= 3
                && rest.iter().all(u8::is_ascii_digit)
                && rest.iter().any(|b| *b != b'0')
        }
        _ => false,
    }
}

/// Splits `bytes` at `separator`, except inside a quoted string (with `\` escapes).
fn split_outside_quotes(bytes: &[u8], separator: u8) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(bytes);
    std::iter::from_fn(move || {
        let text = rest?;
        let mut quoted = false;
        let mut escaped = false;
        for (index, byte) in text.iter().enumerate() {
            if escaped {
                escaped = false;
            } else if quoted && *byte == b'\\' {
                escaped = true;
            } else if *byte == b'"' {
                quoted = !quoted;
            } else if !quoted && *byte == separator {
                rest = Some(&text[index + 1..]);
                return Some(&text[..index]);
            }
        }
        rest = None;
        Some(text)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    fn nav(method: Method, pairs: &[(&'static str, &'static str)]) -> bool {
        is_browser_navigation(&method, &headers(pairs))
    }

    const CHROME_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,\
                                 image/avif,image/webp,*/*;q=0.8";

    #[test]
    fn a_top_level_navigation_is_one_with_or_without_dest() {
        assert!(nav(
            Method::GET,
            &[
                ("sec-fetch-mode", "navigate"),
                ("sec-fetch-dest", "document"),
                ("accept", CHROME_ACCEPT),
            ],
        ));
        assert!(nav(Method::GET, &[("sec-fetch-mode", "navigate")]));
        assert!(nav(Method::HEAD, &[("sec-fetch-mode", "Navigate")]));
    }

    #[test]
    fn fetch_metadata_decides_over_accept() {
        for (mode, dest) in [
            ("navigate", "iframe"),
            ("navigate", "embed"),
            ("cors", "empty"),
            ("no-cors", "image"),
            ("same-origin", "empty"),
            ("websocket", "websocket"),
        ] {
            let mut map = headers(&[("accept", CHROME_ACCEPT)]);
            map.insert(&SEC_FETCH_MODE, HeaderValue::from_static(mode));
            map.insert(&SEC_FETCH_DEST, HeaderValue::from_static(dest));
            assert!(
                !is_browser_navigation(&Method::GET, &map),
                "{mode}/{dest} is not a navigation"
            );
        }
    }

    #[test]
    fn only_get_and_head_navigate() {
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
            assert!(!nav(
                method.clone(),
                &[("sec-fetch-mode", "navigate"), ("accept", "text/html")]
            ));
        }
    }

    #[test]
    fn without_fetch_metadata_accept_must_list_text_html() {
        assert!(nav(Method::GET, &[("accept", CHROME_ACCEPT)]));
        assert!(nav(Method::GET, &[("accept", "TEXT/HTML")]));
        assert!(nav(
            Method::GET,
            &[("accept", "application/json, text/html;q=0.1")]
        ));
        assert!(nav(
            Method::GET,
            &[("accept", "text/html ; level=1 ; q=1.000")]
        ));
        assert!(nav(
            Method::GET,
            &[("accept", "a/b"), ("accept", "text/html")]
        ));
        // A quoted comma does not start a new element.
        assert!(!nav(Method::GET, &[("accept", "a/b;x=\"y,text/html\"")]));
        for accept in [
            "*/*",
            "text/*",
            "application/json",
            "text/html;q=0",
            "text/html; q=0.000",
            "text/html;Q=0.0",
            "text/html;q=abc",
            "text/html;q=2",
            "text/htmlx",
            "",
        ] {
            assert!(
                !nav(Method::GET, &[("accept", accept)]),
                "Accept: {accept:?} is not a navigation"
            );
        }
        assert!(!nav(Method::GET, &[]));
        // A destination other than a document, even without a mode.
        assert!(!nav(
            Method::GET,
            &[("sec-fetch-dest", "image"), ("accept", "text/html")]
        ));
    }

    #[test]
    fn repeated_fetch_metadata_is_not_a_navigation() {
        assert!(!nav(
            Method::GET,
            &[
                ("sec-fetch-mode", "navigate"),
                ("sec-fetch-mode", "navigate"),
            ],
        ));
        assert!(!nav(
            Method::GET,
            &[
                ("sec-fetch-mode", "navigate"),
                ("sec-fetch-dest", "document"),
                ("sec-fetch-dest", "document"),
            ],
        ));
    }

    fn browser(public_url: &str) -> BrowserSettings {
        BrowserSettings {
            enabled: true,
            public_url: url::Url::parse(public_url).expect("url"),
            ..BrowserSettings::default()
        }
    }

    #[test]
    fn the_sign_in_location_carries_the_whole_original_url_as_rd() {
        let settings = browser("https://app.example.com");
        let original = original_url(
            &settings,
            Some(("https", b"app.example.com")),
            "/docs/a b",
            Some("x=1&y=%2F"),
        );
        assert_eq!(original, "https://app.example.com/docs/a b?x=1&y=%2F");
        let location = sign_in_location(&settings, "/auth", &original).expect("location");
        assert_eq!(
            location,
            "https://app.example.com/auth/sign_in?rd=https%3A%2F%2Fapp.example.com%2Fdocs%2Fa+b%3Fx%3D1%26y%3D%252F"
        );
        let parsed = url::Url::parse(location.to_str().expect("ascii")).expect("a URL");
        let rd: Vec<_> = parsed.query_pairs().collect();
        assert_eq!(rd.len(), 1);
        assert_eq!(rd[0].0, "rd");
        assert_eq!(rd[0].1, original);
    }

    #[test]
    fn a_host_that_is_not_a_plain_authority_is_replaced_by_public_url() {
        let settings = browser("http://127.0.0.1:8080");
        for host in [
            &b"evil.com/x"[..],
            b"user@evil.com",
            b"evil.com?",
            b"evil.com#",
            b"ev\\il.com",
            b"",
            b"\xc3\xa9vil.com",
        ] {
            assert_eq!(
                original_url(&settings, Some(("http", host)), "/p", None),
                "http://127.0.0.1:8080/p",
                "{host:?}"
            );
        }
        assert_eq!(
            original_url(&settings, Some(("http", b"[::1]:81")), "/", Some("")),
            "http://[::1]:81/?"
        );
        assert_eq!(
            original_url(&settings, None, "/p", None),
            "http://127.0.0.1:8080/p"
        );
    }

    #[test]
    fn the_origin_comes_from_the_connection_or_a_trusted_proxy() {
        let plain = headers(&[("host", "app.test:8080")]);
        assert_eq!(
            request_origin(&plain, false),
            ("http", Some(&b"app.test:8080"[..]))
        );
        assert_eq!(request_origin(&plain, true).0, "https");
        let proxied = headers(&[
            ("host", "internal:8080"),
            ("x-forwarded-proto", "HTTPS, http"),
            ("x-forwarded-host", " app.example.com , other"),
        ]);
        assert_eq!(
            request_origin(&proxied, false),
            ("https", Some(&b"app.example.com"[..]))
        );
        assert_eq!(
            forwarded_origin(&proxied),
            Some(("https", &b"app.example.com"[..]))
        );
        assert_eq!(forwarded_origin(&plain), None);
        let odd = headers(&[("x-forwarded-proto", "ftp"), ("x-forwarded-host", "a")]);
        assert_eq!(forwarded_origin(&odd), None);
        assert_eq!(request_origin(&HeaderMap::new(), false), ("http", None));
    }

    #[test]
    fn quality_values_follow_rfc_9110() {
        for (value, above) in [
            ("1", true),
            ("1.", true),
            ("1.000", true),
            ("1.001", false),
            ("0", false),
            ("0.", false),
            ("0.001", true),
            ("0.5", true),
            ("0.0000", false),
            (".5", false),
        ] {
            assert_eq!(quality_above_zero(value.as_bytes()), above, "q={value}");
        }
    }
}
