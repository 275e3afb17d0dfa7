//! Where the signing secret comes from, first found (SPEC §2 `[tokens]`): the
//! `GATEHOUSE_SECRET` environment variable (its bytes as given), `secret_file` (its bytes,
//! one trailing newline removed), else one generated at first start and kept in the store,
//! so tokens issued before a restart still validate after it.
//!
//! A secret shorter than [`MIN_SECRET_LEN`] is refused at start, whatever its source. The
//! secret itself never reaches a log line or an error message: only its source and length.

use crate::config::TokenSettings;

/// Shortest secret accepted: 256 bits, the HS256 key size (RFC 7518 §3.2).
pub const MIN_SECRET_LEN: usize = 32;

/// Size of a generated secret: 512 bits, enough for HS512 (RFC 7518 §3.2).
pub const GENERATED_SECRET_LEN: usize = 64;

/// A fresh random secret for the store to keep.
pub fn generate() -> Vec<u8> {
    let mut bytes = vec![0u8; GENERATED_SECRET_LEN];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    bytes
}

/// The signing secret for these settings. `kept` is called only when neither the
/// environment nor a file gives one: it returns the secret kept in the store, generating
/// and keeping one at first start.
pub fn resolve(
    settings: &TokenSettings,
    kept: impl FnOnce() -> Result<Vec<u8>, String>,
) -> Result<Vec<u8>, String> {
    let (secret, source) = if let Some(value) = std::env::var_os("GATEHOUSE_SECRET") {
        (value.into_encoded_bytes(), "GATEHOUSE_SECRET".to_string())
    } else if let Some(path) = &settings.secret_file {
        let mut bytes = std::fs::read(path)
            .map_err(|err| format!("tokens.secret_file: cannot read {}: {err}", path.display()))?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        (bytes, format!("tokens.secret_file ({})", path.display()))
    } else {
        let secret = kept()?;
        tracing::warn!(
            "no GATEHOUSE_SECRET or tokens.secret_file: signing with the secret generated and kept in the store; replicas must share one secret"
        );
        (secret, "the store".to_string())
    };
    if secret.len() < MIN_SECRET_LEN {
        return Err(format!(
            "the signing secret from {source} is {} bytes; at least {MIN_SECRET_LEN} are required (e.g. `openssl rand -base64 48`)",
            secret.len()
        ));
    }
    Ok(secret)
}
