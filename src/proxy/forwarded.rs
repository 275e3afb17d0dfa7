//! The forwarding trust boundary (SPEC §3.2, §3.5): what a client says about where a
//! request came from is believed only when the peer is a trusted proxy.
//!
//! From an untrusted peer, `Forwarded`, `X-Forwarded-*` and `X-Real-IP` (any spelling)
//! are dropped and rewritten from what gatehouse saw itself. From a trusted proxy they
//! are kept, and the peer is appended to `X-Forwarded-For`.
//!
//! Forward-auth (`/auth/verify`) is told the original request's method and URI in
//! `X-Forwarded-Method` / `X-Forwarded-Uri` or `X-Original-Method` / `X-Original-URI`:
//! [`names_original_request`] spots them (before the strip erases them) so that verify can
//! refuse them from an untrusted peer instead of silently ignoring the route rules.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

use crate::http::remove_where;

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The names that tell forward-auth which request to decide about.
const ORIGINAL_REQUEST: [&str; 4] = [
    "x-forwarded-method",
    "x-forwarded-uri",
    "x-original-method",
    "x-original-uri",
];

/// True when `peer` lies in one of the trusted CIDRs.
pub fn is_trusted(peer: IpAddr, trusted: &[IpNet]) -> bool {
    let peer = canonical(peer);
    trusted.iter().any(|net| net.contains(&peer))
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// An address as a header value. IPv4 (the common case, once per request) is written by
/// hand: `Display` through `fmt` costs more than the rest of the forwarding phase.
fn ip_header_value(ip: IpAddr) -> HeaderValue {
    match ip {
        IpAddr::V4(v4) => {
            let mut text = [0u8; 15];
            let mut len = 0;
            for (index, octet) in v4.octets().into_iter().enumerate() {
                if index > 0 {
                    text[len] = b'.';
                    len += 1;
                }
                if octet >= 100 {
                    text[len] = b'0' + octet / 100;
                    len += 1;
                }
                if octet >= 10 {
                    text[len] = b'0' + (octet / 10) % 10;
                    len += 1;
                }
                text[len] = b'0' + octet % 10;
                len += 1;
            }
            HeaderValue::from_bytes(&text[..len])
                .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
        }
        IpAddr::V6(_) => HeaderValue::from_str(&ip.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
    }
}

/// Drops client-written forwarding headers (any case, `_` for `-`).
pub fn strip_untrusted(headers: &mut HeaderMap) {
    remove_where(headers, is_client_forwarding);
}

/// True for a forwarding header a client may have written (any case, `_` for `-`):
/// what [`strip_untrusted`] drops.
pub fn is_client_forwarding(name: &HeaderName) -> bool {
    let name = name.as_str();
    name == "forwarded"
        || name == "x-real-ip"
        || name == "x_real_ip"
        || name.starts_with("x-forwarded")
        || name.starts_with("x_forwarded")
}

/// True when a header names the original request's method or URI for forward-auth
/// (`X-Forwarded-Method`, `X-Forwarded-Uri`, `X-Original-Method`, `X-Original-URI`; any
/// case, `_` for `-`). Only asked about requests to gatehouse's own endpoints.
pub fn names_original_request(headers: &HeaderMap) -> bool {
    headers.keys().any(|name| {
        let name = name.as_str();
        ORIGINAL_REQUEST.iter().any(|target| {
            name.len() == target.len()
                && name
                    .bytes()
                    .zip(target.bytes())
                    .all(|(a, b)| a == b || (a == b'_' && b == b'-'))
        })
    })
}

/// The client address a trusted proxy reported: the last `X-Forwarded-For` entry, which
/// the proxy itself appended. Only call this for a trusted peer.
pub fn reported_client(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all(&X_FORWARDED_FOR).iter().next_back()?;
    let entry = last.to_str().ok()?.rsplit(',').next()?.trim();
    entry.parse().ok()
}

/// The peer's address as an `X-Forwarded-For` entry (IPv4-mapped IPv6 written as IPv4):
/// written once per connection, handed to every [`stamp`] of its requests.
pub fn peer_value(peer: IpAddr) -> HeaderValue {
    ip_header_value(canonical(peer))
}

/// Sets `X-Forwarded-For` (appended), `-Proto` and `-Host` for the upstream. `peer` is
/// [`peer_value`] of the connection's peer.
pub fn stamp(
    headers: &mut HeaderMap,
    peer: &HeaderValue,
    trusted: bool,
    https: bool,
    host: Option<&HeaderValue>,
) {
    // From an untrusted peer the header was stripped: nothing to look up.
    let existing = trusted
        .then(|| headers.get(&X_FORWARDED_FOR))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .filter(|existing| !existing.trim().is_empty());
    let value = match existing {
        Some(existing) => {
            let mut joined = Vec::with_capacity(existing.len() + 2 + peer.len());
            joined.extend_from_slice(existing.as_bytes());
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(peer.as_bytes());
            HeaderValue::from_bytes(&joined).ok()
        }
        None => Some(peer.clone()),
    };
    if let Some(value) = value {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    if !(trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
        let proto = if https { "https" } else { "http" };
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    }
    if !(trusted && headers.contains_key(&X_FORWARDED_HOST)) {
        if let Some(host) = host {
            headers.insert(X_FORWARDED_HOST.clone(), host.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_ipv4_is_trusted_like_ipv4() {
        let nets = vec!["10.0.0.0/8".parse::<IpNet>().expect("net")];
        assert!(is_trusted("::ffff:10.1.2.3".parse().expect("ip"), &nets));
        assert!(!is_trusted("11.1.2.3".parse().expect("ip"), &nets));
    }

    #[test]
    fn untrusted_forwarding_headers_are_replaced() {
        let mut map = HeaderMap::new();
        map.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        map.insert("x_forwarded_proto", HeaderValue::from_static("https"));
        map.insert("forwarded", HeaderValue::from_static("for=1.2.3.4"));
        strip_untrusted(&mut map);
        stamp(
            &mut map,
            &peer_value("127.0.0.1".parse().expect("ip")),
            false,
            false,
            None,
        );
        assert_eq!(map.get("x-forwarded-for").expect("xff"), "127.0.0.1");
        assert_eq!(map.get("x-forwarded-proto").expect("proto"), "http");
        assert!(map.get("forwarded").is_none());
        assert!(map.get("x_forwarded_proto").is_none());
    }

    #[test]
    fn original_request_headers_are_spotted_in_every_spelling() {
        for name in [
            "x-forwarded-uri",
            "x_forwarded_method",
            "x-original-uri",
            "x_original-method",
        ] {
            let mut map = HeaderMap::new();
            map.insert("accept", HeaderValue::from_static("*/*"));
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_static("/x"),
            );
            assert!(names_original_request(&map), "{name}");
        }
        let mut map = HeaderMap::new();
        map.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        map.insert("x-original-urix", HeaderValue::from_static("/x"));
        assert!(!names_original_request(&map));
    }

    #[test]
    fn addresses_are_written_as_display_would() {
        for text in [
            "0.0.0.0",
            "1.2.3.4",
            "10.20.30.40",
            "192.168.100.255",
            "255.255.255.255",
            "::1",
            "2001:db8::7",
        ] {
            let ip: IpAddr = text.parse().expect("ip");
            assert_eq!(ip_header_value(ip), text);
        }
    }

    #[test]
    fn trusted_proxies_chain_is_appended() {
        let mut map = HeaderMap::new();
        map.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        stamp(
            &mut map,
            &peer_value("::ffff:10.0.0.2".parse().expect("ip")),
            true,
            false,
            None,
        );
        assert_eq!(
            map.get("x-forwarded-for").expect("xff"),
            "203.0.113.9, 10.0.0.2"
        );
        assert_eq!(reported_client(&map), Some("10.0.0.2".parse().expect("ip")));
    }
}
