//! Hop-by-hop headers (RFC 9110 §7.6.1): meaningful for one connection only, so never
//! passed on in either direction — the fixed list plus every name the `Connection` header
//! lists. An HTTP/1.1 upgrade (WebSocket) is the one exception, re-stated explicitly.
//!
//! [`strip`] does it in one pass over the map: nothing is looked up by name unless the
//! pass saw a hop-by-hop header, so a request without any (the usual case) costs one walk
//! over its names and allocates nothing; a response's `Connection: keep-alive` costs one
//! removal.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Version;

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The fixed hop-by-hop names, in [`hop_index`]'s order.
fn fixed() -> [&'static HeaderName; 9] {
    [
        &header::CONNECTION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
        &header::PROXY_AUTHORIZATION,
        &header::PROXY_AUTHENTICATE,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
    ]
}

/// Where `Connection` and `Upgrade` are in [`fixed`].
const CONNECTION_INDEX: usize = 0;
const UPGRADE_INDEX: usize = 4;

/// The index in [`fixed`] of a hop-by-hop name: one switch on the (lowercase) text, so a
/// name that is none costs a length comparison or two.
fn hop_index(name: &HeaderName) -> Option<usize> {
    Some(match name.as_str() {
        "connection" => CONNECTION_INDEX,
        "te" => 1,
        "trailer" => 2,
        "transfer-encoding" => 3,
        "upgrade" => UPGRADE_INDEX,
        "proxy-authorization" => 5,
        "proxy-authenticate" => 6,
        "keep-alive" => 7,
        "proxy-connection" => 8,
        _ => return None,
    })
}

/// Removes hop-by-hop headers, including those named in `Connection`, and returns the
/// protocol of a requested upgrade (HTTP/1.1 `Connection: upgrade` + `Upgrade: X`) when
/// `request` is `Some(version)` of a request that may ask for one (HTTP/1.1 only). The
/// upgrade is removed with the rest: [`restore_upgrade`] puts it back once the request
/// is allowed to carry it. Responses pass `None`.
pub fn strip(headers: &mut HeaderMap, request: Option<Version>) -> Option<HeaderValue> {
    let mut present: u16 = 0;
    let mut connection_values = 0usize;
    for (name, _) in headers.iter() {
        if let Some(index) = hop_index(name) {
            present |= 1 << index;
            if index == CONNECTION_INDEX {
                connection_values += 1;
            }
        }
    }
    if present == 0 {
        return None;
    }
    let mut upgrade_requested = false;
    if present & (1 << CONNECTION_INDEX) != 0 {
        if connection_values == 1 {
            if let Some(value) = headers.remove(header::CONNECTION) {
                upgrade_requested = remove_listed(&value, headers);
            }
        } else {
            // Several `Connection` fields (rare): keep them all before removing the name.
            let values: Vec<HeaderValue> = headers
                .get_all(header::CONNECTION)
                .iter()
                .cloned()
                .collect();
            headers.remove(header::CONNECTION);
            for value in &values {
                upgrade_requested |= remove_listed(value, headers);
            }
        }
    }
    let may_upgrade = upgrade_requested && request == Some(Version::HTTP_11);
    let mut protocol = None;
    for (index, name) in fixed().into_iter().enumerate() {
        if index == CONNECTION_INDEX || present & (1 << index) == 0 {
            continue;
        }
        let removed = headers.remove(name);
        if index == UPGRADE_INDEX && may_upgrade {
            protocol = removed;
        }
    }
    protocol
}

/// Removes the headers one `Connection` field names; true when it lists `upgrade`.
fn remove_listed(value: &HeaderValue, headers: &mut HeaderMap) -> bool {
    // What nearly every upstream response says: nothing listed, nothing to split.
    if value.as_bytes().eq_ignore_ascii_case(b"keep-alive") {
        return false;
    }
    let mut upgrade = false;
    for token in value.as_bytes().split(|byte| *byte == b',') {
        let token = token.trim_ascii();
        // The usual tokens name no header of their own.
        if token.is_empty()
            || token.eq_ignore_ascii_case(b"keep-alive")
            || token.eq_ignore_ascii_case(b"close")
        {
            continue;
        }
        if token.eq_ignore_ascii_case(b"upgrade") {
            upgrade = true;
            continue;
        }
        // Any case: the lookup folds it; a token that is no header name removes nothing.
        if let Ok(name) = HeaderName::from_bytes(token) {
            headers.remove(name);
        }
    }
    upgrade
}

/// Puts the upgrade request back after hop-by-hop removal.
pub fn restore_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names left, sorted (a removal may reorder the names; the values of one name
    /// keep their order).
    fn names(map: &HeaderMap) -> Vec<&str> {
        let mut names: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names
    }

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
        assert_eq!(strip(&mut map, Some(Version::HTTP_11)), None);
        assert_eq!(names(&map), ["x-kept"]);
    }

    #[test]
    fn every_connection_field_is_read_and_every_fixed_name_goes() {
        let mut map = HeaderMap::new();
        map.append(header::CONNECTION, HeaderValue::from_static("x-one"));
        map.append(
            header::CONNECTION,
            HeaderValue::from_static("X-TWO , ,keep-alive"),
        );
        for name in ["x-one", "x-two", "x-three", "trailer", "transfer-encoding"] {
            map.append(name, HeaderValue::from_static("1"));
        }
        for name in [
            "proxy-authorization",
            "proxy-authenticate",
            "proxy-connection",
        ] {
            map.append(name, HeaderValue::from_static("1"));
        }
        map.append(header::UPGRADE, HeaderValue::from_static("h2c"));
        map.append("x-kept", HeaderValue::from_static("a"));
        map.append("x-kept", HeaderValue::from_static("b"));
        assert_eq!(strip(&mut map, Some(Version::HTTP_11)), None);
        assert_eq!(names(&map), ["x-kept", "x-three"]);
        let kept: Vec<&HeaderValue> = map.get_all("x-kept").iter().collect();
        assert_eq!(
            kept,
            ["a", "b"],
            "repeated end-to-end headers keep their order"
        );
    }

    #[test]
    fn a_map_without_hop_headers_is_left_alone() {
        let mut map = HeaderMap::new();
        map.append(header::HOST, HeaderValue::from_static("a"));
        map.append(header::ACCEPT, HeaderValue::from_static("1"));
        map.append(header::ACCEPT, HeaderValue::from_static("2"));
        let before = map.clone();
        assert_eq!(strip(&mut map, Some(Version::HTTP_11)), None);
        assert_eq!(map, before);
    }

    #[test]
    fn websocket_upgrade_is_detected() {
        let upgrade = || {
            let mut map = HeaderMap::new();
            map.insert(
                header::CONNECTION,
                HeaderValue::from_static("keep-alive, Upgrade"),
            );
            map.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            map.insert("x-kept", HeaderValue::from_static("1"));
            map
        };
        let mut map = upgrade();
        assert_eq!(
            strip(&mut map, Some(Version::HTTP_11)),
            Some(HeaderValue::from_static("websocket"))
        );
        assert_eq!(names(&map), ["x-kept"], "restored only by restore_upgrade");
        for version in [Some(Version::HTTP_2), Some(Version::HTTP_10), None] {
            let mut map = upgrade();
            assert_eq!(strip(&mut map, version), None, "{version:?}");
            assert_eq!(names(&map), ["x-kept"]);
        }
        // Upgrade without Connection: upgrade is no upgrade request.
        let mut map = HeaderMap::new();
        map.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(strip(&mut map, Some(Version::HTTP_11)), None);
        assert!(map.is_empty());
    }
}
