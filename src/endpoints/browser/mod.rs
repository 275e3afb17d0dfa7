//! What the browser pages (`sign_in.rs`, `sign_out.rs`, SPEC §10) share: the security
//! headers of every page answer, cookies (reading one out of `Cookie`, writing
//! `Set-Cookie`), the pre-session cookie, the same-origin check, and [`redirect`], the
//! `rd` validator.
//!
//! * **Headers** (OWASP Secure Headers, Clickjacking Defense cheat sheets): a
//!   `Content-Security-Policy` that allows no script at all (`default-src 'none'`; the one
//!   inline style by its hash, CSP3 §8.3), no framing (`frame-ancestors 'none'`, with
//!   `X-Frame-Options: DENY` for older browsers, RFC 7034), `base-uri 'none'`, and
//!   `form-action` limited to the page's own origin, `public_url`'s and the origin the
//!   form's validated `rd` points at — Chromium applies `form-action` to the redirects
//!   that follow a form submission too, so the 303 to `rd` must be allowed by it;
//!   `X-Content-Type-Options: nosniff`, `Cache-Control: no-store` (a page holds a CSRF
//!   token), `Referrer-Policy: same-origin` (the query can hold `rd`).
//! * **Cookies** (RFC 6265bis): every cookie is `Secure; HttpOnly; SameSite=Lax; Path=/`.
//!   The pre-session cookie (`csrf_cookie_name()`) has the shape of a session cookie
//!   value (`accounts::browser::new_cookie_value`, 256 random bits) and is host-only,
//!   never `Domain=`; the
//!   session cookie carries `Domain=` only with `cookie_domain`, `Max-Age` only for
//!   remember-me. Clearing repeats the attributes with `Max-Age=0`, so the browser
//!   matches the same cookie.
//! * **Same origin** (OWASP CSRF Prevention cheat sheet, "Fetch Metadata" and "Verifying
//!   Origin"): `Sec-Fetch-Site` `same-origin` or `none` when the header is present (a
//!   present header is never overridden by `Origin`), else an `Origin` exactly equal to
//!   `public_url`'s ASCII serialization. Neither header → refused.

pub mod redirect;

use std::sync::OnceLock;

use base64::Engine as _;
use http::{header, HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use url::Url;

use crate::error::GatewayError;
use crate::http::{bytes_response, Body};

/// The pages' one stylesheet, inlined (no extra request, nothing to serve) and allowed by
/// its hash in the CSP.
pub const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d1f23}\
main{max-width:22rem;margin:4rem auto;padding:2rem;background:#fff;border-radius:.5rem;box-shadow:0 1px 4px rgba(0,0,0,.15)}\
h1{font-size:1.4rem;margin-top:0}label{display:block;margin-bottom:.25rem}\
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem}\
.check label{display:inline}button{padding:.5rem 1.25rem;font-size:1rem}\
.error{color:#a11;font-weight:600}";

static SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// `'sha256-…'` of [`STYLE`], computed once.
fn style_source() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    SOURCE.get_or_init(|| {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(STYLE.as_bytes());
        format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        )
    })
}

/// The `Content-Security-Policy` of a page whose forms may end up on `form_origins`
/// (ASCII-serialized origins; `'self'` is always allowed).
pub fn content_security_policy(form_origins: &[String]) -> String {
    let mut form_action = String::from("'self'");
    for origin in form_origins {
        if !form_action.split(' ').any(|known| known == origin) {
            form_action.push(' ');
            form_action.push_str(origin);
        }
    }
    format!(
        "default-src 'none'; style-src {}; img-src 'self'; base-uri 'none'; form-action {form_action}; frame-ancestors 'none'",
        style_source()
    )
}

/// Puts the page security headers on `headers` (see the module docs).
pub fn secure(headers: &mut HeaderMap, form_origins: &[String]) {
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy(form_origins)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// A rendered page with its status and every security header.
pub fn page(status: StatusCode, html: String, form_origins: &[String]) -> Response<Body> {
    let mut response = bytes_response(status, html, "text/html; charset=utf-8");
    secure(response.headers_mut(), form_origins);
    response
}

/// A 303 See Other to `location` with the page headers (RFC 9110 §15.4.4: the browser
/// follows it with a GET, never re-posting the form).
pub fn see_other(location: &Url, form_origins: &[String]) -> Response<Body> {
    let mut response = crate::http::empty_response(StatusCode::SEE_OTHER);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(location.as_str()) {
        headers.insert(header::LOCATION, value);
    }
    secure(headers, form_origins);
    response
}

/// An endpoint's error as its SPEC §5 JSON answer carrying the page headers too. An
/// internal error stays an error, so the funnel logs its detail.
pub fn with_page_headers(
    result: Result<Response<Body>, GatewayError>,
    form_origins: &[String],
) -> Result<Response<Body>, GatewayError> {
    match result {
        Err(GatewayError::Internal(detail)) => Err(GatewayError::Internal(detail)),
        Err(err) => {
            let mut response = err.into_response();
            secure(response.headers_mut(), form_origins);
            Ok(response)
        }
        Ok(response) => Ok(response),
    }
}

/// The value of the first cookie called `name` in the request's `Cookie` header(s).
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

/// A `Set-Cookie` value: `Secure; HttpOnly; SameSite=Lax; Path=/`, `Domain` and `Max-Age`
/// when given. `value` is ours (base64url) or empty; `domain` is validated configuration.
pub fn set_cookie(
    name: &str,
    value: &str,
    domain: Option<&str>,
    max_age_secs: Option<u64>,
) -> Option<HeaderValue> {
    let mut cookie = format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax");
    if let Some(domain) = domain {
        cookie.push_str("; Domain=");
        cookie.push_str(domain);
    }
    if let Some(seconds) = max_age_secs {
        cookie.push_str(&format!("; Max-Age={seconds}"));
    }
    HeaderValue::from_str(&cookie).ok()
}

/// The same-origin check of SPEC §10 (see the module docs).
pub fn same_origin(headers: &HeaderMap, public_url: &Url) -> bool {
    if let Some(site) = headers.get(&SEC_FETCH_SITE) {
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    headers.get(header::ORIGIN).is_some_and(|origin| {
        origin.as_bytes() == public_url.origin().ascii_serialization().as_bytes()
    })
}

/// The origins a page's forms may reach: `public_url`'s and, when it differs, `target`'s.
pub fn form_origins(public_url: &Url, target: Option<&Url>) -> Vec<String> {
    let mut origins = vec![public_url.origin().ascii_serialization()];
    if let Some(target) = target {
        let origin = target.origin().ascii_serialization();
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    origins
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn cookies_are_found_by_exact_name() {
        let map = headers(&[
            ("cookie", "a=1; __Host-gatehouse_csrf=xyz ; b=2"),
            ("cookie", "__Host-gatehouse_session=s"),
        ]);
        assert_eq!(cookie(&map, "__Host-gatehouse_csrf"), Some("xyz"));
        assert_eq!(cookie(&map, "__Host-gatehouse_session"), Some("s"));
        assert_eq!(cookie(&map, "gatehouse_csrf"), None);
        assert_eq!(cookie(&map, "c"), None);
    }

    #[test]
    fn set_cookie_has_the_attributes() {
        let plain = set_cookie("__Host-x", "v", None, None).expect("value");
        assert_eq!(plain, "__Host-x=v; Path=/; Secure; HttpOnly; SameSite=Lax");
        let wide = set_cookie("__Secure-x", "", Some("example.com"), Some(0)).expect("value");
        assert_eq!(
            wide,
            "__Secure-x=; Path=/; Secure; HttpOnly; SameSite=Lax; Domain=example.com; Max-Age=0"
        );
    }

    #[test]
    fn same_origin_prefers_fetch_metadata_then_origin() {
        let public = Url::parse("https://app.example.com").expect("url");
        assert!(same_origin(
            &headers(&[("sec-fetch-site", "same-origin")]),
            &public
        ));
        assert!(same_origin(
            &headers(&[("sec-fetch-site", "none")]),
            &public
        ));
        assert!(!same_origin(
            &headers(&[
                ("sec-fetch-site", "cross-site"),
                ("origin", "https://app.example.com")
            ]),
            &public
        ));
        assert!(!same_origin(
            &headers(&[("sec-fetch-site", "same-site")]),
            &public
        ));
        assert!(same_origin(
            &headers(&[("origin", "https://app.example.com")]),
            &public
        ));
        assert!(!same_origin(
            &headers(&[("origin", "https://evil.com")]),
            &public
        ));
        assert!(!same_origin(&headers(&[("origin", "null")]), &public));
        assert!(!same_origin(
            &headers(&[("origin", "https://app.example.com/")]),
            &public
        ));
        assert!(!same_origin(&HeaderMap::new(), &public));
    }

    #[test]
    fn the_policy_allows_no_script_and_lists_form_origins_once() {
        let csp = content_security_policy(&[
            "https://app.example.com".into(),
            "https://app.example.com".into(),
            "https://app2.example.com".into(),
        ]);
        assert!(csp.starts_with("default-src 'none'; style-src 'sha256-"));
        assert!(!csp.contains("script-src"));
        assert!(csp.contains(
            "form-action 'self' https://app.example.com https://app2.example.com; frame-ancestors 'none'"
        ));
    }
}
