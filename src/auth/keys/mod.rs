//! Access tokens (SPEC §4): signed with a [`SigningKey`], verified with the key a
//! [`KeySet`] finds by `kid`, remembered in a [`VerifiedCache`] once verified.
//! [`TokenKeys`] ties them together and can swap signing key and key set as one on reload.
//!
//! ```text
//! verify(token): size cap → cache (hit: re-check exp, done)
//!                → token68 alphabet → KeySet: header check (kid → key, alg, no
//!                  jku/x5u/jwk/x5c/crit, typ), before any crypto → signature → claims
//!                → iat not in the future → remember
//! ```
//!
//! Threat model: the token is attacker-controlled input. Its size is capped before any
//! decoding; its header is checked before any key is used ([`set`]); only the key's own
//! algorithm is accepted; `iss`, `aud`, `exp`, `nbf`, `sub` are required; `iat` in the
//! future beyond the leeway is refused too (a token minted with a skewed or forged clock).
//! Only tokens that passed every check are cached ([`cache`]).
//!
//! The crypto backend is aws-lc-rs, installed explicitly; keys are proved by a
//! sign-and-verify round trip before they are used ([`Keyring::new`]), at start and on
//! every swap.

pub mod cache;
pub mod claims;
pub mod set;
pub mod signing;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

pub use cache::{Lookup, VerifiedCache, CACHE_CAPACITY};
pub use claims::{AccessClaims, ClaimRules, VerifiedToken};
pub use set::{KeySet, VerifyingKey};
pub use signing::SigningKey;

use crate::auth::now_secs;
use crate::config::TokenSettings;
use crate::error::TokenRejection;
use crate::http::Published;

/// Tokens longer than this are refused unread. Ours are ~400 bytes; 8 KiB leaves room for
/// many roles while keeping hostile input cheap to refuse.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

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

/// The key that signs and the keys that verify, replaced together, with the public keys
/// as served at `/.well-known/jwks.json` (computed here, once per key set: every swap
/// republishes, no request serializes them).
#[derive(Debug)]
pub struct Keyring {
    signing: SigningKey,
    verifying: KeySet,
    published: Published,
}

impl Keyring {
    /// Pairs a signing key with a key set and proves them: one token is signed and
    /// verified here (bypassing any cache), so keys that cannot sign, or whose tokens the
    /// set does not verify, are an error now rather than a failure on a request.
    pub fn new(signing: SigningKey, verifying: KeySet, rules: &ClaimRules) -> Result<Self, String> {
        let published = Published::json(&verifying.jwks());
        let ring = Keyring {
            signing,
            verifying,
            published,
        };
        ring.self_test(rules)?;
        Ok(ring)
    }

    fn self_test(&self, rules: &ClaimRules) -> Result<(), String> {
        let (token, claims) = issue(&self.signing, rules, "self-test", "self-test", &[], None)
            .map_err(|err| format!("tokens: the signing key cannot sign a token: {err}"))?;
        let verified = self.verifying.verify(&token).map_err(|rejection| {
            format!(
                "tokens: a freshly signed token does not verify: {}",
                rejection.as_str()
            )
        })?;
        if verified != claims {
            return Err("tokens: a freshly signed token verifies with other claims".into());
        }
        Ok(())
    }

    pub fn signing(&self) -> &SigningKey {
        &self.signing
    }

    pub fn verifying(&self) -> &KeySet {
        &self.verifying
    }

    /// The JWK set of [`KeySet::jwks`] as served (SPEC §9), with its ETag.
    pub fn published(&self) -> &Published {
        &self.published
    }
}

/// Signs and checks access tokens. The keys sit behind one atomic pointer: a reload
/// builds a new [`Keyring`] and [`swap`](TokenKeys::swap)s it in whole; requests in flight
/// finish with the ring they loaded. A cache hit does not touch the ring at all.
pub struct TokenKeys {
    ring: ArcSwap<Keyring>,
    rules: ClaimRules,
    cache: VerifiedCache,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ring = self.ring.load();
        f.debug_struct("TokenKeys")
            .field("algorithm", &ring.signing.algorithm())
            .field("kid", &ring.signing.kid())
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    /// Builds the keys from the shared secret and the `[tokens]` settings (HS256/384/512),
    /// proved by a round trip ([`Keyring::new`]).
    pub fn new(secret: &[u8], settings: &TokenSettings) -> Result<Self, String> {
        install_crypto_backend();
        let rules = ClaimRules::new(settings);
        let ring = Keyring::new(
            SigningKey::hmac(secret, settings.algorithm)?,
            KeySet::hmac(secret, settings.algorithm, &rules)?,
            &rules,
        )?;
        Ok(TokenKeys {
            ring: ArcSwap::from_pointee(ring),
            cache: VerifiedCache::new(rules.leeway),
            rules,
        })
    }

    /// Replaces signing key and key set at once (reload). Every remembered token is
    /// forgotten, so a token of a key that is gone stops working at once; verifications
    /// that were under way with the old keys are not remembered ([`cache`]).
    pub fn swap(&self, ring: Keyring) {
        self.ring.store(Arc::new(ring));
        self.cache.invalidate();
    }

    /// The keys in use now.
    pub fn keyring(&self) -> Arc<Keyring> {
        self.ring.load_full()
    }

    /// The claim rules every key verifies with.
    pub fn rules(&self) -> &ClaimRules {
        &self.rules
    }

    /// How long an access token lives.
    pub fn access_ttl(&self) -> Duration {
        self.rules.access_ttl
    }

    /// Mints an access token for a user with the current signing key.
    pub fn issue(
        &self,
        sub: &str,
        username: &str,
        roles: &[String],
        session: Option<&str>,
    ) -> Result<(String, AccessClaims), jsonwebtoken::errors::Error> {
        issue(
            &self.ring.load().signing,
            &self.rules,
            sub,
            username,
            roles,
            session,
        )
    }

    /// Checks a token's form, header, signature and registered claims. The store-backed
    /// checks (user, revocation, password change) are the accounts layer's.
    pub fn verify(&self, token: &str) -> Result<Arc<VerifiedToken>, TokenRejection> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenRejection::Oversized);
        }
        let now = now_secs();
        let epoch = match self.cache.lookup(token, now) {
            Lookup::Hit(verified) => return Ok(verified),
            Lookup::Expired => return Err(TokenRejection::Expired),
            Lookup::Miss { epoch } => epoch,
        };
        if !is_token68(token) {
            return Err(TokenRejection::Malformed);
        }
        let claims = self.ring.load().verifying.verify(token)?;
        if claims.iat > now + self.rules.leeway {
            return Err(TokenRejection::NotYetValid);
        }
        let verified = Arc::new(VerifiedToken::from(claims));
        self.cache.remember(token, &verified, epoch, now);
        Ok(verified)
    }

    /// The public JWK set of the keys in use (`{"keys":[]}` for a shared secret).
    pub fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        self.ring.load().verifying.jwks()
    }

    /// The verified-token cache (tests, metrics).
    pub fn cache(&self) -> &VerifiedCache {
        &self.cache
    }
}

fn issue(
    signing: &SigningKey,
    rules: &ClaimRules,
    sub: &str,
    username: &str,
    roles: &[String],
    session: Option<&str>,
) -> Result<(String, AccessClaims), jsonwebtoken::errors::Error> {
    let now = now_secs();
    let claims = AccessClaims {
        iss: rules.issuer.clone(),
        aud: rules.audience.clone(),
        sub: sub.to_string(),
        username: username.to_string(),
        roles: roles.to_vec(),
        iat: now,
        nbf: now,
        exp: now + rules.access_ttl.as_secs(),
        jti: crate::auth::random_id(16),
        sid: session.map(str::to_string),
    };
    let token = signing.sign(&claims)?;
    Ok((token, claims))
}

/// Makes aws-lc-rs jsonwebtoken's process-wide crypto backend. jsonwebtoken 10 picks its
/// backend from crate features and panics on first use when it cannot (none enabled, or
/// both `aws_lc_rs` and `rust_crypto` through feature unification); naming the provider
/// here makes that a compile error instead (this path exists only with `aws_lc_rs`). An
/// error means a backend is installed already, which [`Keyring::new`]'s round trip then
/// checks.
fn install_crypto_backend() {
    let _already_installed = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use jsonwebtoken::Algorithm;

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
    const OTHER: &[u8] = b"another-secret-another-secret-xx";

    fn ring(secret: &[u8]) -> Keyring {
        let rules = ClaimRules::new(&settings());
        Keyring::new(
            SigningKey::hmac(secret, Algorithm::HS256).expect("signing"),
            KeySet::hmac(secret, Algorithm::HS256, &rules).expect("set"),
            &rules,
        )
        .expect("ring")
    }

    #[test]
    fn issued_tokens_verify() {
        let keys = TokenKeys::new(SECRET, &settings()).expect("keys");
        let (token, claims) = keys
            .issue("u1", "alice", &["admin".into()], Some("s1"))
            .expect("issue");
        let expected = Arc::new(VerifiedToken::from(claims));
        assert_eq!(expected.sid.as_deref(), Some("s1"));
        assert_eq!(keys.verify(&token), Ok(expected.clone()));
        // Again, from the cache.
        assert_eq!(keys.cache().len(), 1);
        assert_eq!(keys.verify(&token), Ok(expected));
    }

    #[test]
    fn building_the_keys_proves_them_with_a_round_trip() {
        let keys = TokenKeys::new(SECRET, &settings()).expect("keys");
        assert!(
            keys.cache().is_empty(),
            "the self-test token is not remembered"
        );
        // A signing key whose tokens the set does not verify fails the self-test with an
        // error (which `new` returns), not a panic.
        let rules = ClaimRules::new(&settings());
        let err = Keyring::new(
            SigningKey::hmac(SECRET, Algorithm::HS256).expect("signing"),
            KeySet::hmac(OTHER, Algorithm::HS256, &rules).expect("set"),
            &rules,
        )
        .expect_err("mismatched keys");
        assert!(err.contains("does not verify"), "{err}");
        assert!(
            !err.contains("0123456789abcdef"),
            "secret in the error: {err}"
        );
        assert!(
            !err.contains("another-secret"),
            "secret in the error: {err}"
        );
    }

    #[test]
    fn a_swap_replaces_signing_and_verification_at_once() {
        let keys = TokenKeys::new(SECRET, &settings()).expect("keys");
        let (old, _) = keys.issue("u1", "alice", &[], None).expect("issue");
        assert!(keys.verify(&old).is_ok());
        assert_eq!(keys.cache().len(), 1);
        let old_kid = keys.keyring().signing().kid().to_string();

        keys.swap(ring(OTHER));

        assert!(
            keys.cache().is_empty(),
            "the old key's tokens are forgotten"
        );
        assert_eq!(
            keys.verify(&old),
            Err(TokenRejection::BadSignature),
            "a token of a key that is gone stops working at once, cached or not"
        );
        let (new, _) = keys.issue("u1", "alice", &[], None).expect("issue");
        let kid = jsonwebtoken::decode_header(&new).expect("header").kid;
        assert_ne!(kid.as_deref(), Some(old_kid.as_str()));
        assert_eq!(kid.as_deref(), Some(keys.keyring().signing().kid()));
        assert!(keys.verify(&new).is_ok());
    }

    #[test]
    fn the_jwk_set_is_empty_with_a_shared_secret() {
        let keys = TokenKeys::new(SECRET, &settings()).expect("keys");
        assert_eq!(
            serde_json::to_string(&keys.jwks()).expect("json"),
            r#"{"keys":[]}"#
        );
    }

    #[test]
    fn the_published_jwk_set_is_precomputed_and_republished_by_a_swap() {
        let keys = TokenKeys::new(SECRET, &settings()).expect("keys");
        let before = keys.keyring();
        assert_eq!(&before.published().body[..], br#"{"keys":[]}"#);
        keys.swap(ring(OTHER));
        let after = keys.keyring();
        // Same (empty) set: same bytes, same tag; a new ring built them anew.
        assert_eq!(after.published().body, before.published().body);
        assert_eq!(after.published().etag, before.published().etag);
        assert!(!std::ptr::eq(after.published(), before.published()));
    }

    #[test]
    fn other_secret_is_a_bad_signature() {
        let keys = TokenKeys::new(SECRET, &settings()).expect("keys");
        let other = TokenKeys::new(OTHER, &settings()).expect("keys");
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
