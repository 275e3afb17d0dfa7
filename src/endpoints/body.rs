//! Bounded request-body reading for gatehouse's own endpoints (SPEC §7: at most 16 KiB).
//!
//! Threat model: bodies are attacker-controlled. A declared `Content-Length` over the cap
//! is refused with 413 before a byte is read; a chunked body is counted while streaming
//! and refused the moment it passes the cap (the rest is never read); a body that trickles
//! is cut off after [`BODY_TIMEOUT`]. Parsing failures answer 400 `invalid_request` with a
//! fixed description: serde's own messages can quote the offending value, which may be a
//! password.
//!
//! What is accepted (SPEC §4 `/auth/login`): a body declared as `application/json` that is
//! a JSON object whose values are all strings, or one declared as
//! `application/x-www-form-urlencoded` whose names and values decode to UTF-8. A body
//! without one of those content types, a JSON array (serde would read it as a struct by
//! position), a number or `null` where a string belongs, and a form whose escapes decode
//! to bytes that are not UTF-8 (serde_urlencoded would quietly turn them into U+FFFD) are
//! all 400 `invalid_request` — never read as credentials that then fail as 401.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap};
use http_body::Body as _;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use crate::error::GatewayError;

/// Largest body an endpoint reads (SPEC §7).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Time allowed for the whole body to arrive once the head is in.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Which encodings an endpoint takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    /// `application/json` or `application/x-www-form-urlencoded`.
    JsonOrForm,
    /// `application/x-www-form-urlencoded` only (the OAuth token endpoint, RFC 6749 §4.3.2).
    FormOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Json,
    Form,
}

/// The body's encoding from `Content-Type` (media type only, parameters ignored,
/// case-insensitive per RFC 9110 §8.3.1).
fn encoding(headers: &HeaderMap) -> Option<Encoding> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let media_type = value.split(';').next().unwrap_or("").trim();
    if media_type.eq_ignore_ascii_case("application/json") {
        Some(Encoding::Json)
    } else if media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Some(Encoding::Form)
    } else {
        None
    }
}

/// Reads the whole body, at most [`MAX_BODY_BYTES`].
pub async fn read_bytes(headers: &HeaderMap, mut body: Incoming) -> Result<Bytes, GatewayError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64)
        || body.size_hint().lower() > MAX_BODY_BYTES as u64
    {
        return Err(GatewayError::PayloadTooLarge);
    }
    let read = async {
        let mut buffer = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame
                .map_err(|_| GatewayError::invalid_request("the request body could not be read"))?;
            if let Ok(data) = frame.into_data() {
                if buffer.len() + data.len() > MAX_BODY_BYTES {
                    return Err(GatewayError::PayloadTooLarge);
                }
                buffer.extend_from_slice(&data);
            }
        }
        Ok(buffer.freeze())
    };
    tokio::time::timeout(BODY_TIMEOUT, read)
        .await
        .map_err(|_| GatewayError::invalid_request("the request body did not arrive in time"))?
}

/// Reads and parses the body as `T`. `expected` is the 400 description: it says what to
/// send and never echoes what was sent. A body without a `Content-Type` is refused.
pub async fn parse<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Incoming,
    accepts: Accepts,
    expected: &'static str,
) -> Result<T, GatewayError> {
    declared_encoding(headers, accepts)?;
    let bytes = read_bytes(headers, body).await?;
    decode_body(headers, &bytes, accepts, expected)
}

/// The pure half of [`parse`]: decodes bytes already read, by the declared encoding.
/// Total on any input (fuzzed: `fuzz/fuzz_targets/body_parse.rs`).
pub fn decode_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    bytes: &[u8],
    accepts: Accepts,
    expected: &'static str,
) -> Result<T, GatewayError> {
    decode(bytes, declared_encoding(headers, accepts)?, expected)
}

/// Like [`parse`], but an empty body is `None`.
pub async fn parse_optional<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Incoming,
    accepts: Accepts,
    expected: &'static str,
) -> Result<Option<T>, GatewayError> {
    let bytes = read_bytes(headers, body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    decode_body(headers, &bytes, accepts, expected).map(Some)
}

/// The encoding the `Content-Type` names, or an error when there is none or it names
/// one this endpoint does not take.
fn declared_encoding(headers: &HeaderMap, accepts: Accepts) -> Result<Encoding, GatewayError> {
    match (encoding(headers), accepts) {
        (Some(Encoding::Form), _) => Ok(Encoding::Form),
        (Some(Encoding::Json), Accepts::JsonOrForm) => Ok(Encoding::Json),
        (_, Accepts::FormOnly) => Err(GatewayError::invalid_request(
            "send the parameters as application/x-www-form-urlencoded (RFC 6749 §4.3.2)",
        )),
        (None, Accepts::JsonOrForm) => Err(GatewayError::invalid_request(
            "send the body as application/json or application/x-www-form-urlencoded",
        )),
    }
}

fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    encoding: Encoding,
    expected: &'static str,
) -> Result<T, GatewayError> {
    let parsed = match encoding {
        Encoding::Json => decode_json_object_of_strings(bytes),
        // Repeated parameters are refused (RFC 6749 §3.1): serde_urlencoded reports a
        // duplicate field for them.
        Encoding::Form if form_decodes_to_utf8(bytes) => serde_urlencoded::from_bytes(bytes).ok(),
        Encoding::Form => None,
    };
    parsed.ok_or_else(|| GatewayError::invalid_request(expected))
}

/// A JSON object whose values are all strings, as `T`; `None` for anything else (an
/// array, which serde would map onto a struct by position; numbers, booleans, `null`,
/// nested objects).
fn decode_json_object_of_strings<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(bytes).ok()?;
    if !object.values().all(serde_json::Value::is_string) {
        return None;
    }
    serde_json::from_value(serde_json::Value::Object(object)).ok()
}

/// True when every name and value of a form body is UTF-8 once `+` and `%XX` are decoded
/// (the URL Standard decodes the rest lossily, which would turn a bad byte into U+FFFD).
fn form_decodes_to_utf8(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok()
        && bytes
            .split(|b| *b == b'&')
            .flat_map(|pair| pair.splitn(2, |b| *b == b'='))
            .all(|part| {
                let spaced: Vec<u8> = part
                    .iter()
                    .map(|b| if *b == b'+' { b' ' } else { *b })
                    .collect();
                let decoded: Vec<u8> = percent_encoding::percent_decode(&spaced).collect();
                std::str::from_utf8(&decoded).is_ok()
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Pair {
        a: String,
        b: Option<String>,
    }

    #[test]
    fn content_types_are_matched_on_the_media_type_only() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "Application/JSON; charset=utf-8".parse().expect("value"),
        );
        assert_eq!(encoding(&headers), Some(Encoding::Json));
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().expect("value"));
        assert_eq!(encoding(&headers), None);
    }

    #[test]
    fn form_and_json_decode_to_the_same_shape() {
        let form: Pair = decode(b"a=1&b=x%20y", Encoding::Form, "e").expect("form");
        let json: Pair = decode(br#"{"a":"1","b":"x y"}"#, Encoding::Json, "e").expect("json");
        assert_eq!(form, json);
    }

    #[test]
    fn malformed_bodies_never_echo_their_content() {
        let err = decode::<Pair>(br#"{"a": 12345678}"#, Encoding::Json, "send a").unwrap_err();
        assert_eq!(err.description(), "send a");
        assert!(decode::<Pair>(b"a=1&a=2", Encoding::Form, "e").is_err());
        assert!(decode::<Pair>(b"\xff\xfe", Encoding::Json, "e").is_err());
    }

    #[test]
    fn only_a_json_object_of_strings_is_taken() {
        assert!(decode::<Pair>(br#"["1", "x"]"#, Encoding::Json, "e").is_err());
        assert!(decode::<Pair>(br#"{"a":"1","b":null}"#, Encoding::Json, "e").is_err());
        assert!(decode::<Pair>(br#"{"a":"1","extra":5}"#, Encoding::Json, "e").is_err());
        assert!(decode::<Pair>(br#"{"a":"1","extra":{"x":"y"}}"#, Encoding::Json, "e").is_err());
        assert!(decode::<Pair>(br#"{"a":"1","extra":"fine"}"#, Encoding::Json, "e").is_ok());
    }

    #[test]
    fn a_form_must_decode_to_utf8() {
        assert!(decode::<Pair>(b"a=%FF%FE", Encoding::Form, "e").is_err());
        assert!(decode::<Pair>(b"a%C3=1", Encoding::Form, "e").is_err());
        assert!(decode::<Pair>(b"a=\xff", Encoding::Form, "e").is_err());
        let ok: Pair = decode(b"a=%C3%A9+x", Encoding::Form, "e").expect("utf-8");
        assert_eq!(ok.a, "\u{e9} x");
    }

    #[test]
    fn a_body_without_a_content_type_is_refused() {
        let err = decode_body::<Pair>(&HeaderMap::new(), br#"{"a":"1"}"#, Accepts::JsonOrForm, "e")
            .unwrap_err();
        assert!(matches!(err, GatewayError::InvalidRequest(_)));
        assert!(decode_body::<Pair>(&HeaderMap::new(), b"a=1", Accepts::FormOnly, "e").is_err());
    }
}
