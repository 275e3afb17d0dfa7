//! Hop-by-hop headers (RFC 9110 §7.6.1): meaningful for one connection only, so never
//! passed on in either direction — the fixed list plus every name the `Connection` header
//! lists. An HTTP/1.1 upgrade (WebSocket) is the one exception, re-stated explicitly.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Version;

const FIXED: [HeaderName; 7] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Removes hop-by-hop headers, including those named in `Connection`. One pass over the
/// names present (usually none are hop-by-hop), so the common case removes nothing and
/// allocates nothing.
pub fn remove_hop_headers(headers: &mut HeaderMap) {
    let mut doomed: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        let Ok(text) = value.to_str() else { continue };
        for token in text.split(',').map(str::trim) {
            // The usual tokens name no header of their own.
            if token.is_empty()
                || token.eq_ignore_ascii_case("keep-alive")
                || token.eq_ignore_ascii_case("close")
                || token.eq_ignore_ascii_case("upgrade")
            {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.to_ascii_lowercase().as_bytes()) {
                doomed.push(name);
            }
        }
    }
    for name in headers.keys() {
        if FIXED.contains(name) || name == KEEP_ALIVE || name == PROXY_CONNECTION {
            doomed.push(name.clone());
        }
    }
    for name in doomed {
        headers.remove(&name);
    }
}

/// The protocol a client asks to upgrade to (HTTP/1.1 `Connection: upgrade` +
/// `Upgrade: X`), if any.
pub fn requested_upgrade(version: Version, headers: &HeaderMap) -> Option<HeaderValue> {
    if version != Version::HTTP_11 {
        return None;
    }
    let connection_upgrade = headers.get_all(header::CONNECTION).iter().any(|value| {
        value
            .to_str()
            .map(|text| {
                text.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
            .unwrap_or(false)
    });
    if !connection_upgrade {
        return None;
    }
    headers.get(header::UPGRADE).cloned()
}

/// Puts the upgrade request back after hop-by-hop removal.
pub fn restore_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_named_headers_go_too() {
        let mut map = HeaderMap::new();
        map.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, X-Secret-Hop"),
        );
        map.insert("x-secret-hop", HeaderValue::from_static("1"));
        map.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        map.insert(header::TE, HeaderValue::from_static("trailers"));
        map.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_headers(&mut map);
        let left: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-kept"]);
    }

    #[test]
    fn websocket_upgrade_is_detected() {
        let mut map = HeaderMap::new();
        map.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        map.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(
            requested_upgrade(Version::HTTP_11, &map),
            Some(HeaderValue::from_static("websocket"))
        );
        assert_eq!(requested_upgrade(Version::HTTP_2, &map), None);
    }
}
