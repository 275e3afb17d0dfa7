//! Where the signing secret comes from, first found (SPEC §2 `[tokens]`): the
//! `GATEHOUSE_SECRET` environment variable (its bytes as given), `secret_file` (its bytes,
//! one trailing newline removed), else one generated at first start and kept in the store,
//! so tokens issued before a restart still validate after it.
//!
//! A secret shorter than [`MIN_SECRET_LEN`] is refused at start, whatever its source. The
//! secret itself never reaches a log line or an error message: only its source and length.
//!
//! Replicas sharing a store must sign with one secret (SPEC §8): [`fingerprint`] gives
//! what the store keeps to compare them by, an HMAC of a fixed label keyed by the secret
//! (never the secret nor a plain hash of it).

use crate::config::{Problem, TokenSettings};

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

/// The secret configured outside the store: `GATEHOUSE_SECRET`, else `secret_file`, else
/// `None`. A source that gives no usable secret (file unreadable, fewer than
/// [`MIN_SECRET_LEN`] bytes) is a [`Problem`] naming it; the shared config loader runs this,
/// so `check-config` and reload refuse what `serve` refuses.
pub fn configured(settings: &TokenSettings) -> Result<Option<Vec<u8>>, Problem> {
    let (secret, path, source) = if let Some(value) = std::env::var_os("GATEHOUSE_SECRET") {
        (
            value.into_encoded_bytes(),
            "GATEHOUSE_SECRET",
            String::new(),
        )
    } else if let Some(path) = &settings.secret_file {
        let mut bytes = std::fs::read(path).map_err(|err| Problem {
            path: "tokens.secret_file".into(),
            problem: format!("cannot read {}: {err}", path.display()),
        })?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        (
            bytes,
            "tokens.secret_file",
            format!(" in {}", path.display()),
        )
    } else {
        return Ok(None);
    };
    if secret.len() < MIN_SECRET_LEN {
        return Err(Problem {
            path: path.into(),
            problem: too_short(&source, secret.len()),
        });
    }
    Ok(Some(secret))
}

fn too_short(source: &str, len: usize) -> String {
    format!(
        "the signing secret{source} is {len} bytes; at least {MIN_SECRET_LEN} are required (e.g. `openssl rand -base64 48`)"
    )
}

/// The signing secret for these settings. `kept` is called only when neither the
/// environment nor a file gives one: it returns the secret kept in the store, generating
/// and keeping one at first start.
pub fn resolve(
    settings: &TokenSettings,
    kept: impl FnOnce() -> Result<Vec<u8>, String>,
) -> Result<Vec<u8>, String> {
    if let Some(secret) = configured(settings).map_err(|problem| problem.to_string())? {
        return Ok(secret);
    }
    let secret = kept()?;
    tracing::warn!(
        "no GATEHOUSE_SECRET or tokens.secret_file: signing with the secret generated and kept in the store; replicas must share one secret"
    );
    if secret.len() < MIN_SECRET_LEN {
        return Err(format!(
            "store: {}",
            too_short(" kept in the store", secret.len())
        ));
    }
    Ok(secret)
}

/// The label [`fingerprint`] authenticates.
const FINGERPRINT_LABEL: &[u8] = b"gatehouse signing-secret fingerprint v1";

/// A fingerprint of the signing secret, for replicas to tell whether they sign with the
/// same one (SPEC §8; the store keeps the first replica's): HMAC-SHA256 keyed by the
/// secret over a fixed label (RFC 2104, computed by the same JWT library that signs the
/// tokens with this secret), base64url. It reveals nothing about the secret — not even a
/// plain hash of it that could be checked against guesses offline without the key
/// doing the work — and is the same for the same secret on every replica and after every
/// restart.
pub fn fingerprint(secret: &[u8]) -> Result<String, String> {
    jsonwebtoken::crypto::sign(
        FINGERPRINT_LABEL,
        &jsonwebtoken::EncodingKey::from_secret(secret),
        jsonwebtoken::Algorithm::HS256,
    )
    .map_err(|err| format!("cannot compute the signing secret's fingerprint: {err}"))
}

#[cfg(test)]
mod fingerprint_tests {
    use super::*;

    #[test]
    fn a_fingerprint_is_stable_distinct_and_not_a_plain_hash() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let one = fingerprint(secret).unwrap();
        assert_eq!(
            one,
            fingerprint(secret).unwrap(),
            "the same secret, the same fingerprint"
        );
        assert_ne!(
            one,
            fingerprint(b"0123456789abcdef0123456789abcdeF").unwrap()
        );
        let plain = <sha2::Sha256 as sha2::Digest>::digest(secret);
        let plain =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, plain);
        assert_ne!(one, plain);
        // RFC 2104 HMAC-SHA256 of the label keyed by the secret, base64url: checked
        // against Python's hmac module.
        assert_eq!(one, "Z2C5HhEuTibUWpcIusC_Fv7xrtDVQXZ20CjiHtm0RzY");
    }
}
