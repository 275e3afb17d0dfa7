//! Pure primitives for authentication: access-token keys ([`keys`]: signing key, key set
//! by `kid`, verified-token cache), argon2id password hashing, secret source selection,
//! random identifiers and refresh-token hashes, the clock in Unix seconds.
//! No HTTP, no store rules.

pub mod keys;
pub mod password;
pub mod secret;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `bytes` of OS randomness, base64url without padding.
pub fn random_id(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buffer);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buffer)
}

/// Bytes of randomness in a refresh token: 256 bits (SPEC §4, RFC 9700 §4.14).
pub const REFRESH_TOKEN_BYTES: usize = 32;

/// Longest refresh token we look at; ours are 43 characters.
pub const MAX_REFRESH_TOKEN_LEN: usize = 256;

/// A new opaque refresh token and the SHA-256 the store keeps instead of it.
pub fn new_refresh_token() -> (String, [u8; 32]) {
    let token = random_id(REFRESH_TOKEN_BYTES);
    let hash = refresh_token_hash(&token);
    (token, hash)
}

/// SHA-256 of a refresh token: the only form in which the store holds it, so a copy of the
/// store does not yield usable tokens.
pub fn refresh_token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}
