//! Pure primitives for authentication: JWT signing and checking, random identifiers.
//! No HTTP, no store rules.

pub mod jwt;
pub mod secret;

use base64::Engine as _;
use rand::RngCore;

/// `bytes` of OS randomness, base64url without padding.
pub fn random_id(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buffer);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buffer)
}
