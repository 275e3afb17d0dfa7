//! Body type and response builders shared by the proxy, the `/auth` endpoints and the ops
//! listener, so every response gatehouse writes itself is built the same way; header
//! names and header-map helpers more than one layer needs; [`Published`], a document
//! served as precomputed bytes with its strong `ETag` (the JWKS and discovery, SPEC §9).

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};

/// The one response body type: streamed upstream bodies and our own small bodies alike.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// A body from bytes we already hold.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A body with nothing in it.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Serializes a value that cannot fail to serialize (plain structs and `json!` values).
pub fn json_bytes(value: &impl serde::Serialize) -> Bytes {
    match serde_json::to_vec(value) {
        Ok(bytes) => Bytes::from(bytes),
        Err(_) => Bytes::from_static(b"{}"),
    }
}

/// A response with a body and its content type.
pub fn bytes_response(
    status: StatusCode,
    body: impl Into<Bytes>,
    content_type: &'static str,
) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A JSON response.
pub fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    bytes_response(status, json_bytes(value), "application/json")
}

/// A response with no body.
pub fn empty_response(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(empty());
    *response.status_mut() = status;
    response
}

/// Forward-auth: the original request's method and URI (Traefik, Caddy style).
pub static X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
pub static X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
/// Forward-auth: the original request's method and URI (nginx ingress style).
pub static X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
pub static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");

/// Removes every header whose name satisfies `doomed`, all values of it. Allocates only
/// when something is removed.
pub fn remove_where(headers: &mut HeaderMap, doomed: impl Fn(&HeaderName) -> bool) {
    let mut found: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        if doomed(name) {
            found.push(name.clone());
        }
    }
    for name in found {
        headers.remove(&name);
    }
}

/// A document served as bytes computed once (per key set, per start), never per request:
/// the body and its strong entity tag (RFC 9110 §8.8.3), the base64url SHA-256 of the
/// body in quotes, so equal bytes give the same tag on every replica and after every
/// restart, and any change to the bytes gives another tag.
#[derive(Debug, Clone)]
pub struct Published {
    pub body: Bytes,
    pub etag: HeaderValue,
}

impl Published {
    /// The JSON serialization of `value`, tagged.
    pub fn json(value: &impl serde::Serialize) -> Published {
        Published::bytes(json_bytes(value))
    }

    /// `body` as is, tagged.
    pub fn bytes(body: Bytes) -> Published {
        use base64::Engine as _;
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(&body);
        let tag = format!(
            "\"{}\"",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
        );
        // base64url and quotes are visible ASCII: always a valid header value.
        let etag =
            HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"-\""));
        Published { body, etag }
    }
}

/// A header map of static `(name, value)` pairs, repeated names appended (unit tests).
#[cfg(test)]
pub fn header_map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    map
}
