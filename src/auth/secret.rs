//! Where the signing secret comes from, first found (SPEC §2 `[tokens]`): the
//! `GATEHOUSE_SECRET` environment variable (its bytes as given), `secret_file` (its bytes,
//! one trailing newline removed), else one generated at first start and kept in the store.

use crate::config::Config;

/// Shortest secret accepted: 256 bits, the HS256 key size (RFC 7518 §3.2).
pub const MIN_SECRET_LEN: usize = 32;

/// The signing secret for this config.
pub fn resolve(config: &Config) -> Result<Vec<u8>, String> {
    let (secret, source) = if let Some(value) = std::env::var_os("GATEHOUSE_SECRET") {
        (value.into_encoded_bytes(), "GATEHOUSE_SECRET".to_string())
    } else if let Some(path) = &config.tokens.secret_file {
        let mut bytes = std::fs::read(path)
            .map_err(|err| format!("tokens.secret_file: cannot read {}: {err}", path.display()))?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        (bytes, format!("tokens.secret_file ({})", path.display()))
    } else {
        tracing::warn!("no GATEHOUSE_SECRET or tokens.secret_file: using a generated secret; replicas must share one secret");
        let mut bytes = vec![0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        (bytes, "generated".to_string())
    };
    if secret.len() < MIN_SECRET_LEN {
        return Err(format!(
            "the signing secret from {source} is {} bytes; at least {MIN_SECRET_LEN} are required (e.g. `openssl rand -base64 48`)",
            secret.len()
        ));
    }
    Ok(secret)
}
