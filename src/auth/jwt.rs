//! Access tokens: HS256/384/512 JWTs signed and checked with keys and a `Validation`
//! built once at start (SPEC §4).
//!
//! Threat model: the token is attacker-controlled input. Its size is capped before any
//! decoding; only the configured algorithm is accepted (`none`, a swap to another HMAC
//! size or to an asymmetric algorithm are all refused by `jsonwebtoken`'s algorithm list
//! before the signature is looked at); `iss`, `aud`, `exp`, `nbf`, `sub` are required.
//! `iat` in the future beyond the leeway is refused too (a token minted with a skewed or
//! forged clock).
//!
//! The crypto backend is aws-lc-rs, installed explicitly; a key set is proved by a
//! sign-and-verify round trip when it is built.
//!
//! Verified tokens are remembered (keyed by their exact bytes, like Envoy's `jwt_authn`
//! cache) so a client presenting the same token again skips the HMAC and the JSON parse;
//! `exp` is re-checked on every hit. Only tokens that passed every check enter the cache,
//! so a forger cannot fill it; it holds at most [`CACHE_CAPACITY`] entries. The checks
//! against the store (revocation, user state) are not cached: they run on every request.

// foldhash, not SipHash: the keys are verified signatures (unforgeable, so no crafted
// collisions get in), and SipHash was 3% of a proxied request's instructions.
use foldhash::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::TokenSettings;
use crate::error::TokenRejection;

/// Tokens longer than this are refused unread. Ours are ~400 bytes; 8 KiB leaves room for
/// many roles while keeping hostile input cheap to refuse.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Verified tokens remembered at most (≈ 1 KiB each).
pub const CACHE_CAPACITY: usize = 16 * 1024;

/// The claims of a gatehouse access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user's stable opaque id.
    pub sub: String,
    pub username: String,
    pub roles: Vec<String>,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    /// Unique id; logout revokes by it.
    pub jti: String,
    /// The login session (refresh-token family) this token belongs to, so logout and
    /// password changes can end the session it came from. Absent in foreign tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// Whether every byte is in RFC 6750 §2.1 `b64token` (token68): ALPHA DIGIT - . _ ~ + / =.
pub fn is_token68(token: &str) -> bool {
    token.bytes().all(|b| TOKEN68[usize::from(b)])
}

static TOKEN68: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=');
        byte += 1;
    }
    table
};

/// A verified token (whole) and its claims.
type Remembered = (Box<str>, Arc<AccessClaims>);

/// Signs and checks access tokens.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    header: Header,
    validation: Validation,
    issuer: String,
    audience: String,
    access_ttl: Duration,
    leeway: u64,
    /// Keyed by the signature segment (short to hash); the whole token is compared on a hit.
    verified: RwLock<HashMap<Box<str>, Remembered>>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("algorithm", &self.header.alg)
            .field("kid", &self.header.kid)
            .finish_non_exhaustive()
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenKeys {
    /// Builds the keys from the secret and the `[tokens]` settings, then proves them: one
    /// token is signed and verified with them here, so a key set that cannot sign or verify
    /// is an error at start rather than a failure on a request.
    pub fn new(secret: &[u8], settings: &TokenSettings) -> Result<Self, String> {
        install_crypto_backend();
        let mut header = Header::new(settings.algorithm);
        header.typ = Some("JWT".into());
        header.kid = Some(key_id(secret));
        let mut validation = Validation::new(settings.algorithm);
        validation.algorithms = vec![settings.algorithm];
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = settings.leeway.as_secs();
        let keys = TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            header,
            validation,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            access_ttl: settings.access_ttl,
            leeway: settings.leeway.as_secs(),
            verified: RwLock::new(HashMap::default()),
        };
        keys.self_test()?;
        Ok(keys)
    }

    /// Signs one token and verifies it (bypassing the cache, which it must not enter).
    fn self_test(&self) -> Result<(), String> {
        let (token, claims) = self
            .issue("self-test", "self-test", &[], None)
            .map_err(|err| format!("tokens: the signing key cannot sign a token: {err}"))?;
        let data =
            jsonwebtoken::decode::<AccessClaims>(&token, &self.decoding, &self.validation)
                .map_err(|err| format!("tokens: a freshly signed token does not verify: {err}"))?;
        if data.claims != claims {
            return Err("tokens: a freshly signed token verifies with other claims".into());
        }
        Ok(())
    }

    /// How long an access token lives.
    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    /// Mints an access token for a user.
    pub fn issue(
        &self,
        sub: &str,
        username: &str,
        roles: &[String],
        session: Option<&str>,
    ) -> Result<(String, AccessClaims), jsonwebtoken::errors::Error> {
        let now = now_secs();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: sub.to_string(),
            username: username.to_string(),
            roles: roles.to_vec(),
            iat: now,
            nbf: now,
            exp: now + self.access_ttl.as_secs(),
            jti: crate::auth::random_id(16),
            sid: session.map(str::to_string),
        };
        let token = jsonwebtoken::encode(&self.header, &claims, &self.encoding)?;
        Ok((token, claims))
    }

    /// Checks a token's form, algorithm, signature and registered claims. The store-backed
    /// checks (user, revocation, password change) are the accounts layer's.
    pub fn verify(&self, token: &str) -> Result<Arc<AccessClaims>, TokenRejection> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenRejection::Oversized);
        }
        let now = now_secs();
        let signature = token.rsplit('.').next().unwrap_or(token);
        let remembered = read(&self.verified)
            .get(signature)
            .filter(|(whole, _)| whole.as_ref() == token)
            .map(|(_, claims)| claims.clone());
        if let Some(claims) = remembered {
            // `nbf` and `iat` were in the past (within leeway) when it was verified and
            // stay so; only expiry can change.
            return if claims.exp.saturating_add(self.leeway) < now {
                Err(TokenRejection::Expired)
            } else {
                Ok(claims)
            };
        }
        if !is_token68(token) {
            return Err(TokenRejection::Malformed);
        }
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map_err(|err| self.classify(token, err.kind()))?;
        let claims = Arc::new(data.claims);
        if claims.iat > now + self.leeway {
            return Err(TokenRejection::NotYetValid);
        }
        self.remember(token, &claims, now);
        Ok(claims)
    }

    fn remember(&self, token: &str, claims: &Arc<AccessClaims>, now: u64) {
        let mut verified = write(&self.verified);
        if verified.len() >= CACHE_CAPACITY {
            let leeway = self.leeway;
            verified.retain(|_, (_, c)| c.exp.saturating_add(leeway) >= now);
            if verified.len() >= CACHE_CAPACITY {
                verified.clear();
            }
        }
        let signature = token.rsplit('.').next().unwrap_or(token);
        verified.insert(signature.into(), (token.into(), claims.clone()));
    }

    fn classify(&self, token: &str, kind: &ErrorKind) -> TokenRejection {
        match kind {
            ErrorKind::InvalidSignature => TokenRejection::BadSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                TokenRejection::WrongAlgorithm
            }
            ErrorKind::ExpiredSignature => TokenRejection::Expired,
            ErrorKind::ImmatureSignature => TokenRejection::NotYetValid,
            ErrorKind::InvalidIssuer => TokenRejection::WrongIssuer,
            ErrorKind::InvalidAudience => TokenRejection::WrongAudience,
            // `alg: "none"` and unknown algorithms fail header parsing; say so precisely.
            _ if !header_alg_is(token, self.header.alg) => TokenRejection::WrongAlgorithm,
            _ => TokenRejection::Malformed,
        }
    }
}

/// Makes aws-lc-rs jsonwebtoken's process-wide crypto backend. jsonwebtoken 10 picks its
/// backend from crate features and panics on first use when it cannot (none enabled, or
/// both `aws_lc_rs` and `rust_crypto` through feature unification); naming the provider
/// here makes that a compile error instead (this path exists only with `aws_lc_rs`). An
/// error means a backend is installed already, which [`TokenKeys::self_test`] then checks.
fn install_crypto_backend() {
    let _already_installed = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// True when the token's header can be read and names `expected` (error path only).
fn header_alg_is(token: &str, expected: Algorithm) -> bool {
    let Some(encoded) = token.split('.').next() else {
        return false;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded) else {
        return true; // not a readable header at all: malformed, not an algorithm question
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(value) => value.get("alg").and_then(|alg| alg.as_str()) == Some(alg_name(expected)),
        Err(_) => true,
    }
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        _ => "",
    }
}

/// A key id that names the secret without revealing it: the first 8 bytes of its SHA-256.
fn key_id(secret: &[u8]) -> String {
    let digest = Sha256::digest(secret);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> TokenSettings {
        TokenSettings {
            issuer: "gatehouse".into(),
            audience: "gatehouse".into(),
            algorithm: Algorithm::HS256,
            secret_file: None,
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(3600),
            leeway: Duration::from_secs(30),
        }
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn issued_tokens_verify() {
        let keys = TokenKeys::new(SECRET, &settings()).expect("keys");
        let (token, claims) = keys
            .issue("u1", "alice", &["admin".into()], None)
            .expect("issue");
        assert_eq!(keys.verify(&token), Ok(Arc::new(claims.clone())));
        // Again, from the cache.
        assert_eq!(keys.verify(&token), Ok(Arc::new(claims)));
    }

    #[test]
    fn building_the_keys_proves_them_with_a_round_trip() {
        let mut keys = TokenKeys::new(SECRET, &settings()).expect("keys");
        assert_eq!(keys.self_test(), Ok(()));
        assert!(
            read(&keys.verified).is_empty(),
            "the self-test token is not remembered"
        );
        // A key set whose halves do not match fails the self-test with an error (which
        // `new` returns), not a panic.
        keys.decoding = DecodingKey::from_secret(b"another-secret-another-secret-xx");
        let err = keys.self_test().expect_err("mismatched keys");
        assert!(err.contains("does not verify"), "{err}");
        assert!(
            !err.contains("0123456789abcdef"),
            "secret in the error: {err}"
        );
    }

    /// Signs `claims` with the keys; decodes into an untyped value, so only the library's
    /// checks run (the typed `AccessClaims` refuses wrong types too and would mask them).
    fn library_verdict(
        keys: &TokenKeys,
        validation: &Validation,
        claims: &serde_json::Value,
    ) -> Result<(), ErrorKind> {
        let token = jsonwebtoken::encode(&keys.header, claims, &keys.encoding).expect("sign");
        jsonwebtoken::decode::<serde_json::Value>(&token, &keys.decoding, validation)
            .map(|_| ())
            .map_err(|err| err.into_kind())
    }

    fn valid_claims() -> serde_json::Value {
        let now = now_secs();
        serde_json::json!({
            "iss": "gatehouse", "aud": "gatehouse", "sub": "u1",
            "iat": now, "nbf": now, "exp": now + 600,
        })
    }

    #[test]
    fn registered_claims_of_the_wrong_type_are_refused_by_the_library() {
        let keys = TokenKeys::new(SECRET, &settings()).expect("keys");
        assert_eq!(
            library_verdict(&keys, &keys.validation, &valid_claims()),
            Ok(())
        );
        // All five are required, and a required claim that does not parse is missing.
        for (claim, value) in [
            ("exp", serde_json::json!("9999999999")),
            ("nbf", serde_json::json!("0")),
            ("aud", serde_json::json!(7)),
            ("iss", serde_json::json!(7)),
            ("sub", serde_json::json!(7)),
        ] {
            let mut claims = valid_claims();
            claims[claim] = value;
            assert_eq!(
                library_verdict(&keys, &keys.validation, &claims),
                Err(ErrorKind::MissingRequiredClaim(claim.into())),
                "{claim}: {}",
                claims[claim]
            );
        }
    }

    /// CVE-2026-25537: jsonwebtoken before 10.3 skipped an `exp` or `nbf` of the wrong JSON
    /// type when it was validated but not required (9.3.1 accepts both tokens below).
    /// gatehouse requires both, so it was not exposed; this pins the patched library should
    /// the required list ever shrink.
    #[test]
    fn a_wrong_typed_exp_or_nbf_is_refused_even_when_not_required() {
        let keys = TokenKeys::new(SECRET, &settings()).expect("keys");
        let mut lenient = keys.validation.clone();
        lenient.required_spec_claims.clear();
        for claim in ["exp", "nbf"] {
            let mut claims = valid_claims();
            claims[claim] = serde_json::json!("9999999999");
            assert_eq!(
                library_verdict(&keys, &lenient, &claims),
                Err(ErrorKind::InvalidClaimFormat(claim.into())),
                "{claim}"
            );
        }
    }

    #[test]
    fn other_secret_is_a_bad_signature() {
        let keys = TokenKeys::new(SECRET, &settings()).expect("keys");
        let other = TokenKeys::new(b"another-secret-another-secret-xx", &settings()).expect("keys");
        let (token, _) = other.issue("u1", "alice", &[], None).expect("issue");
        assert_eq!(keys.verify(&token), Err(TokenRejection::BadSignature));
    }

    #[test]
    fn none_algorithm_is_refused_as_wrong_algorithm() {
        let keys = TokenKeys::new(SECRET, &settings()).expect("keys");
        let (token, _) = keys.issue("u1", "alice", &[], None).expect("issue");
        let payload = token.split('.').nth(1).expect("payload");
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(
            keys.verify(&format!("{header}.{payload}.")),
            Err(TokenRejection::WrongAlgorithm)
        );
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let mut short = settings();
        short.access_ttl = Duration::from_secs(0);
        short.leeway = Duration::from_secs(0);
        let keys = TokenKeys::new(SECRET, &short).expect("keys");
        let (token, _) = keys.issue("u1", "alice", &[], None).expect("issue");
        assert!(keys.verify(&token).is_ok());
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(keys.verify(&token), Err(TokenRejection::Expired));
    }

    #[test]
    fn a_tampered_copy_of_a_remembered_token_is_still_refused() {
        let keys = TokenKeys::new(SECRET, &settings()).expect("keys");
        let (token, _) = keys.issue("u1", "alice", &[], None).expect("issue");
        assert!(keys.verify(&token).is_ok());
        // Another canonical last character (a 32-byte signature's last base64url character
        // carries 4 bits: A, E, I, M, Q, …): the copy always differs from the original.
        let (kept, last) = token.split_at(token.len() - 1);
        let tampered = format!("{kept}{}", if last == "A" { 'Q' } else { 'A' });
        assert_ne!(tampered, token);
        assert!(keys.verify(&tampered).is_err());
    }

    #[test]
    fn bytes_outside_token68_are_malformed_even_next_to_a_remembered_token() {
        let keys = TokenKeys::new(SECRET, &settings()).expect("keys");
        let (token, _) = keys.issue("u1", "alice", &[], None).expect("issue");
        assert!(keys.verify(&token).is_ok());
        for odd in [" ", "!", "\"", "%", ","] {
            let (head, signature) = token.rsplit_once('.').expect("three segments");
            let spliced = format!("{head}{odd}.{signature}");
            assert_eq!(
                keys.verify(&spliced),
                Err(TokenRejection::Malformed),
                "{odd:?}"
            );
        }
    }

    #[test]
    fn oversized_tokens_are_refused_unread() {
        let keys = TokenKeys::new(SECRET, &settings()).expect("keys");
        assert_eq!(
            keys.verify(&"a".repeat(MAX_TOKEN_LEN + 1)),
            Err(TokenRejection::Oversized)
        );
    }
}
