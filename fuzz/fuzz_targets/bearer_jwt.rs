//! The bearer-token path: an arbitrary Authorization value goes through header parsing and
//! JWT verification without a panic, and nothing unsigned is ever accepted.
#![no_main]

use std::time::Duration;

use gatehouse::auth::keys::TokenKeys;
use gatehouse::config::TokenSettings;
use gatehouse::access::bearer_token;
use http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, value);
    let settings = TokenSettings {
        issuer: "gatehouse".into(),
        audience: "gatehouse".into(),
        algorithm: jsonwebtoken::Algorithm::HS256,
        secret_file: None,
        access_ttl: Duration::from_secs(900),
        refresh_ttl: Duration::from_secs(3600),
        leeway: Duration::from_secs(30),
        keys: Vec::new(),
    };
    let keys = TokenKeys::new(b"fuzz-secret-fuzz-secret-fuzz-secret!", &settings).expect("keys");
    if let Ok(Some(token)) = bearer_token(&headers) {
        assert!(
            keys.verify(token).is_err(),
            "the fuzzer cannot sign with our secret"
        );
    }
});
