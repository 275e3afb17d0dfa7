//! Bodies of gatehouse's own endpoints: any Content-Type and any bytes, decoded as the
//! login/token shapes in both `Accepts` modes, never panic; a refusal is always 400
//! `invalid_request` (never a 500).
#![no_main]

use gatehouse::endpoints::body::{decode_body, Accepts};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Credentials {
    username: String,
    password: String,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct TokenRequest {
    grant_type: Option<String>,
    username: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
}

fuzz_target!(|data: &[u8]| {
    // First line: the Content-Type (absent when empty); the rest: the body.
    let (content_type, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let mut headers = HeaderMap::new();
    if !content_type.is_empty() {
        let Ok(value) = HeaderValue::from_bytes(content_type) else {
            return;
        };
        headers.insert(header::CONTENT_TYPE, value);
    }
    for accepts in [Accepts::JsonOrForm, Accepts::FormOnly] {
        if let Err(err) = decode_body::<Credentials>(&headers, body, accepts, "expected") {
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        }
        if let Err(err) = decode_body::<TokenRequest>(&headers, body, accepts, "expected") {
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        }
    }
});
