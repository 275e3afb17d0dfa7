//! The `Cookie` request header (RFC 6265 §4.2, §5.4): finding gatehouse's session cookie,
//! and removing gatehouse's own cookies before a request is forwarded.
//!
//! A browser sends `Cookie: a=1; b=2` — one field over HTTP/1.1; over HTTP/2 it may split
//! the pairs into several `cookie` fields (RFC 9113 §8.2.3), so every field is read, in
//! order. A pair is `name=value`: the name compared exactly (cookie names are
//! case-sensitive), whitespace around the pair ignored, a value in double quotes
//! unquoted (RFC 6265 §4.1.1). The first pair with the name wins: a browser sends the
//! cookie with the longest path first (§5.4 step 2), and `__Host-`/`__Secure-` cookies
//! cannot be planted by another site or over plain HTTP (RFC 6265bis §4.1.3), so the
//! first one is the one gatehouse set.
//!
//! Forwarding (SPEC §10): the session cookie and the CSRF pre-session cookie, in both
//! name forms, are gatehouse's credentials, not the upstream's — an upstream (or its logs)
//! must never see them. They are removed from every forwarded request, `[browser]`
//! enabled or not; every other pair is kept byte for byte and in order. A field that held
//! only gatehouse cookies goes; when something was removed, or there were several fields,
//! what is left travels as one field joined by `"; "` (the only form HTTP/1.1 allows,
//! RFC 6265 §5.4, RFC 9113 §8.2.3). A request without gatehouse cookies in a single field
//! is not touched (no allocation).
//!
//! Never logs a cookie value.

use http::header::{self, HeaderMap, HeaderValue};

/// gatehouse's cookies, both name forms (`__Host-` without `cookie_domain`, `__Secure-`
/// with it): the session cookie and the CSRF pre-session cookie. Removed from every
/// forwarded request whatever the current `[browser]` settings (a reload may have changed
/// the form; a client may send either).
pub const GATEHOUSE_COOKIES: [&str; 4] = [
    "__Host-gatehouse_session",
    "__Secure-gatehouse_session",
    "__Host-gatehouse_csrf",
    "__Secure-gatehouse_csrf",
];

/// The value of the first cookie named `name` (exactly), if it is valid UTF-8.
pub fn find<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|field| pairs(field.as_bytes()))
        .find_map(|pair| match split_pair(pair) {
            Some((pair_name, value)) if pair_name == name.as_bytes() => Some(value),
            _ => None,
        })
        .and_then(|value| std::str::from_utf8(unquote(value)).ok())
}

/// Removes every cookie whose name is in `names` from the `Cookie` field(s): see the
/// module doc.
pub fn strip(headers: &mut HeaderMap, names: &[&str]) {
    let mut fields = headers.get_all(header::COOKIE).iter();
    let Some(first) = fields.next() else {
        return;
    };
    let several = fields.next().is_some();
    if !several && !pairs(first.as_bytes()).any(|pair| named(pair, names)) {
        return;
    }
    let kept = without(headers, names);
    headers.remove(header::COOKIE);
    if !kept.is_empty() {
        headers.insert(header::COOKIE, kept);
    }
}

/// The `Cookie` field(s) without the cookies named in `names`, as one value (`"; "`
/// between pairs; empty when nothing is left): what forward-auth hands a proxy to send
/// upstream instead of the browser's `Cookie` (SPEC §10; docs/browser.md).
pub fn without(headers: &HeaderMap, names: &[&str]) -> HeaderValue {
    let mut kept: Vec<u8> = Vec::new();
    for field in headers.get_all(header::COOKIE) {
        for pair in pairs(field.as_bytes()).filter(|pair| !named(pair, names)) {
            if !kept.is_empty() {
                kept.extend_from_slice(b"; ");
            }
            kept.extend_from_slice(pair);
        }
    }
    // The kept bytes came from header values and "; ": always a valid value.
    HeaderValue::from_bytes(&kept).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn named(pair: &[u8], names: &[&str]) -> bool {
    split_pair(pair).is_some_and(|(name, _)| names.iter().any(|n| n.as_bytes() == name))
}

/// The non-empty `;`-separated pairs of one field, surrounding whitespace trimmed.
fn pairs(field: &[u8]) -> impl Iterator<Item = &[u8]> {
    field
        .split(|byte| *byte == b';')
        .map(trim)
        .filter(|pair| !pair.is_empty())
}

/// `name=value`, both trimmed; `None` without `=` (RFC 6265 §5.2 ignores such a pair).
fn split_pair(pair: &[u8]) -> Option<(&[u8], &[u8])> {
    let equals = pair.iter().position(|byte| *byte == b'=')?;
    Some((trim(&pair[..equals]), trim(&pair[equals + 1..])))
}

fn unquote(value: &[u8]) -> &[u8] {
    match value {
        [b'"', inner @ .., b'"'] => inner,
        _ => value,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: [&str; 4] = GATEHOUSE_COOKIES;

    #[test]
    fn every_cookie_name_the_settings_use_is_stripped() {
        let mut settings = crate::config::BrowserSettings::default();
        for domain in [None, Some("example.com".to_string())] {
            settings.cookie_domain = domain;
            assert!(GATEHOUSE_COOKIES.contains(&settings.cookie_name()));
            assert!(GATEHOUSE_COOKIES.contains(&settings.csrf_cookie_name()));
        }
    }

    fn cookies(fields: &[&'static str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for field in fields {
            map.append(header::COOKIE, HeaderValue::from_static(field));
        }
        map
    }

    fn fields(map: &HeaderMap) -> Vec<&str> {
        map.get_all(header::COOKIE)
            .iter()
            .map(|value| value.to_str().unwrap_or("?"))
            .collect()
    }

    #[test]
    fn find_takes_the_first_exact_name_over_every_field() {
        let map = cookies(&[
            "a=1;__host-gatehouse_session=lower; __Host-gatehouse_session_x=longer",
            "b=2;  __Host-gatehouse_session = first ; __Host-gatehouse_session=second",
        ]);
        assert_eq!(find(&map, "__Host-gatehouse_session"), Some("first"));
        assert_eq!(find(&map, "a"), Some("1"));
        assert_eq!(find(&map, "missing"), None);
        let quoted = cookies(&["s=\"abc\""]);
        assert_eq!(find(&quoted, "s"), Some("abc"));
        let bare = cookies(&["flag; s=v"]);
        assert_eq!(find(&bare, "flag"), None);
        assert_eq!(find(&bare, "s"), Some("v"));
        assert_eq!(find(&HeaderMap::new(), "s"), None);
    }

    #[test]
    fn strip_removes_only_ours_and_keeps_the_rest_byte_for_byte() {
        let mut map = cookies(&[
            "theme=dark; __Host-gatehouse_session=secret; x=\"a b\";__Secure-gatehouse_csrf=c",
        ]);
        strip(&mut map, &OURS);
        assert_eq!(fields(&map), ["theme=dark; x=\"a b\""]);
    }

    #[test]
    fn strip_drops_the_header_when_nothing_is_left() {
        let mut map = cookies(&["__Host-gatehouse_session=s", "__Host-gatehouse_csrf=c"]);
        strip(&mut map, &OURS);
        assert!(map.get(header::COOKIE).is_none());
    }

    #[test]
    fn strip_joins_several_fields_into_one() {
        let mut map = cookies(&["a=1", "__Secure-gatehouse_session=s", "b=2"]);
        strip(&mut map, &OURS);
        assert_eq!(fields(&map), ["a=1; b=2"]);
    }

    #[test]
    fn strip_leaves_a_field_without_our_cookies_untouched() {
        let mut map = cookies(&["a=1;b=2;;  c"]);
        strip(&mut map, &OURS);
        assert_eq!(fields(&map), ["a=1;b=2;;  c"]);
        let mut none = HeaderMap::new();
        strip(&mut none, &OURS);
        assert!(none.is_empty());
    }

    #[test]
    fn without_hands_back_the_rest_as_one_value() {
        let map = cookies(&["a=1; __Host-gatehouse_session=s", "b=2"]);
        assert_eq!(without(&map, &OURS), "a=1; b=2");
        let only = cookies(&["__Host-gatehouse_csrf=c"]);
        assert_eq!(without(&only, &OURS), "");
        assert_eq!(without(&HeaderMap::new(), &OURS), "");
    }

    #[test]
    fn strip_keeps_look_alike_names() {
        let mut map = cookies(&[
            "__host-gatehouse_session=1; __Host-gatehouse_session2=2; gatehouse_session=3; __Host-gatehouse_session=4",
        ]);
        strip(&mut map, &OURS);
        assert_eq!(
            fields(&map),
            ["__host-gatehouse_session=1; __Host-gatehouse_session2=2; gatehouse_session=3"]
        );
    }
}
