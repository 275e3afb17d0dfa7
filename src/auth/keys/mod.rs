//! Access tokens (SPEC §4, §9): signed with a [`SigningKey`], verified with the key a
//! [`KeySet`] finds by `kid`, remembered in a [`VerifiedCache`] once verified.
//! [`TokenKeys`] ties them together and can swap signing key and key set as one on reload.
//!
//! Two kinds of keys: the shared secret (HS256/384/512, `typ: "JWT"`), or the key pairs of
//! `[[tokens.keys]]` (ES256, EdDSA, RS256; [`material`] reads a file, [`files`] the
//! configured list): the `active` key signs (`typ: "at+jwt"`, claims plus `client_id`),
//! the next, active and retired keys verify by exact `kid` and are published
//! ([`TokenKeys::jwks`]; as served at `/.well-known/jwks.json`, the bytes and `ETag` are
//! computed once per keyring, [`Keyring::published`]). [`Keyring::load`] builds either from `[tokens]`; [`check`] is the
//! config loader's file check (check-config, serve and reload refuse the same keys);
//! [`TokenKeys::reload`] re-reads the key files on reload and swaps them in when they
//! changed (rotation next → active → retired; a key removed stops verifying at once).
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
//! sign-and-verify round trip before they are used ([`Keyring::new`]; with key pairs every
//! key that holds a private key, not only the active one), at start, by check-config and
//! on every reload.

pub mod cache;
pub mod claims;
pub mod files;
pub mod material;
pub mod set;
pub mod signing;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

pub use cache::{Lookup, VerifiedCache, CACHE_CAPACITY};
pub use claims::{AccessClaims, ClaimRules, VerifiedToken, USER_CLIENT_ID};
pub use files::ConfiguredKey;
pub use material::{generate, is_pair_algorithm, KeyMaterial};
pub use set::{KeySet, VerifyingKey};
pub use signing::SigningKey;

use std::path::PathBuf;

use jsonwebtoken::Algorithm;

use crate::auth::now_secs;
use crate::config::{KeyState, Problem, TokenSettings};
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
    entries: Vec<KeyEntry>,
    published: Published,
}

/// What a keyring holds, for `gatehouse keys list`, logs and reload: one entry per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    pub kid: String,
    pub algorithm: Algorithm,
    pub state: KeyState,
    /// The key file; `None` for the shared secret.
    pub file: Option<PathBuf>,
    /// Whether the file holds the private key (a retired key may be public only).
    pub private: bool,
}

impl Keyring {
    /// Pairs a signing key with a key set and proves them: one token is signed and
    /// verified here (bypassing any cache), so keys that cannot sign, or whose tokens the
    /// set does not verify, are an error now rather than a failure on a request.
    pub fn new(signing: SigningKey, verifying: KeySet, rules: &ClaimRules) -> Result<Self, String> {
        let entries = vec![KeyEntry {
            kid: signing.kid().to_string(),
            algorithm: signing.algorithm(),
            state: KeyState::Active,
            file: None,
            private: true,
        }];
        let published = Published::json(&verifying.jwks());
        let ring = Keyring {
            signing,
            verifying,
            entries,
            published,
        };
        self_test(&ring.signing, &ring.verifying, rules)?;
        Ok(ring)
    }

    /// The keyring of `[tokens]`: the shared secret for HS*, else the `[[tokens.keys]]`
    /// files read now ([`files::load`]; every problem, each naming its file).
    pub fn load(
        secret: &[u8],
        settings: &TokenSettings,
        rules: &ClaimRules,
    ) -> Result<Self, String> {
        install_crypto_backend();
        if !is_pair_algorithm(settings.algorithm) {
            return Keyring::new(
                SigningKey::hmac(secret, settings.algorithm)?,
                KeySet::hmac(secret, settings.algorithm, rules)?,
                rules,
            );
        }
        let keys = files::load(settings).map_err(|problems| {
            problems
                .iter()
                .map(Problem::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        Keyring::pairs(keys, rules)
    }

    /// The keyring of the `[[tokens.keys]]` key pairs: the `active` one signs, all of them
    /// verify. Every key that holds a private key signs one token that the set must verify
    /// (a broken `next` key fails now, not when it becomes active).
    pub fn pairs(keys: Vec<ConfiguredKey>, rules: &ClaimRules) -> Result<Self, String> {
        install_crypto_backend();
        let mut active = keys.iter().filter(|key| key.state == KeyState::Active);
        let (Some(signer), None) = (active.next(), active.next()) else {
            return Err("tokens.keys: exactly one key must have state = \"active\"".into());
        };
        let signing = SigningKey::pair(signer.material.clone())?;
        let materials: Vec<_> = keys.iter().map(|key| key.material.clone()).collect();
        let verifying = KeySet::pairs(&materials, rules)?;
        for key in keys.iter().filter(|key| key.material.can_sign()) {
            let signer = SigningKey::pair(key.material.clone())?;
            self_test(&signer, &verifying, rules)
                .map_err(|why| format!("{} ({}): {why}", key.file.display(), key.state.as_str()))?;
        }
        let entries = keys
            .iter()
            .map(|key| KeyEntry {
                kid: key.material.kid().to_string(),
                algorithm: key.material.algorithm(),
                state: key.state,
                file: Some(key.file.clone()),
                private: key.material.can_sign(),
            })
            .collect();
        let published = Published::json(&verifying.jwks());
        Ok(Keyring {
            signing,
            verifying,
            entries,
            published,
        })
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

    /// The keys, in `[[tokens.keys]]` order (the shared secret: one `active` entry).
    pub fn entries(&self) -> &[KeyEntry] {
        &self.entries
    }

    /// The keys and states in one line for logs: `active kid1, next kid2`.
    pub fn describe(&self) -> String {
        self.entries
            .iter()
            .map(|entry| format!("{} {}", entry.state.as_str(), entry.kid))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether both hold the same keys in the same states (a reload that changes no key
    /// swaps nothing, so the verified-token cache stays warm).
    fn same_keys(&self, other: &Keyring) -> bool {
        let key = |entry: &KeyEntry| (entry.kid.clone(), entry.algorithm, entry.state);
        self.entries
            .iter()
            .map(key)
            .eq(other.entries.iter().map(key))
    }
}

/// Signs one token with `signing` and verifies it with `verifying`, bypassing any cache.
fn self_test(signing: &SigningKey, verifying: &KeySet, rules: &ClaimRules) -> Result<(), String> {
    let (token, claims) = issue(signing, rules, "self-test", "self-test", &[], None, None)
        .map_err(|err| format!("tokens: the signing key cannot sign a token: {err}"))?;
    let verified = verifying.verify(&token).map_err(|rejection| {
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

/// The config loader's check of the key files (SPEC §2: `check-config` refuses what
/// `serve` would): with a key-pair algorithm, every `[[tokens.keys]]` file is read and
/// the keyring built and self-tested; each problem names its key path and file.
pub fn check(settings: &TokenSettings) -> Vec<Problem> {
    if !is_pair_algorithm(settings.algorithm) || settings.keys.is_empty() {
        return Vec::new();
    }
    match files::load(settings) {
        Err(problems) => problems,
        Ok(keys) => match Keyring::pairs(keys, &ClaimRules::new(settings)) {
            Ok(_) => Vec::new(),
            Err(problem) => vec![Problem {
                path: "tokens.keys".into(),
                problem,
            }],
        },
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
    /// Builds the keys of the `[tokens]` settings: the shared secret (HS256/384/512) or
    /// the `[[tokens.keys]]` files (ES256, EdDSA, RS256), proved by round trips
    /// ([`Keyring::load`]).
    pub fn new(secret: &[u8], settings: &TokenSettings) -> Result<Self, String> {
        let rules = ClaimRules::new(settings);
        let ring = Keyring::load(secret, settings, &rules)?;
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

    /// Reload (SIGHUP, `gatehouse reload`): re-reads the `[[tokens.keys]]` files of the
    /// new `[tokens]` and swaps the keyring in when its keys or states changed; returns
    /// the new keys ([`Keyring::describe`]) then, `None` when nothing changed or nothing
    /// here reloads. An error (a key file that does not load or fails its round trip)
    /// changes nothing: the running keys stay.
    ///
    /// The shared secret and `tokens.algorithm` are read at start only (restart-only
    /// keys, named by the reload's WARN lines): with HS* or another algorithm than the
    /// running one this does nothing. The claim rules (issuer, audience, lifetimes) stay
    /// those the gateway started with.
    pub fn reload(&self, settings: &TokenSettings) -> Result<Option<String>, String> {
        let running = self.ring.load();
        if !running.signing.is_pair() || settings.algorithm != running.signing.algorithm() {
            return Ok(None);
        }
        let keys = files::load(settings).map_err(|problems| {
            problems
                .iter()
                .map(Problem::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let ring = Keyring::pairs(keys, &self.rules)?;
        if ring.same_keys(&running) {
            return Ok(None);
        }
        let described = ring.describe();
        self.swap(ring);
        Ok(Some(described))
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
            None,
        )
    }

    /// Mints an access token for a service client (client-credentials grant, SPEC §4):
    /// `sub` its id, `username` and `client_id` its name (with every algorithm, shared
    /// secret included: the token was issued to that client), `sid` the marker of the
    /// client's current secret (`accounts::clients`), so a rotation ends it.
    pub fn issue_for_client(
        &self,
        sub: &str,
        name: &str,
        roles: &[String],
        sid: &str,
    ) -> Result<(String, AccessClaims), jsonwebtoken::errors::Error> {
        issue(
            &self.ring.load().signing,
            &self.rules,
            sub,
            name,
            roles,
            Some(sid),
            Some(name),
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

/// Mints the claims of SPEC §4 (plus `client_id` with a key pair, §9; a service client's
/// name as `client_id` whatever the algorithm) and signs them.
fn issue(
    signing: &SigningKey,
    rules: &ClaimRules,
    sub: &str,
    username: &str,
    roles: &[String],
    session: Option<&str>,
    client: Option<&str>,
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
        client_id: match client {
            Some(name) => Some(name.to_string()),
            None => signing.is_pair().then(|| USER_CLIENT_ID.to_string()),
        },
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
            keys: Vec::new(),
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

    // ---- key pairs (SPEC §9) ----

    use crate::config::KeyFileSettings;

    fn pair_settings(alg: Algorithm, keys: &[(&std::path::Path, KeyState)]) -> TokenSettings {
        TokenSettings {
            issuer: "https://gw.example".into(),
            algorithm: alg,
            keys: keys
                .iter()
                .map(|(file, state)| KeyFileSettings {
                    file: file.to_path_buf(),
                    state: *state,
                })
                .collect(),
            ..settings()
        }
    }

    /// A new key file for `alg` in `dir`; its path and kid.
    fn key_file(dir: &tempfile::TempDir, name: &str, alg: Algorithm) -> (PathBuf, String) {
        let (pem, kid) = generate(alg, 2048).expect("generate");
        let path = dir.path().join(name);
        files::write_private_key(&path, &pem).expect("write");
        (path, kid)
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn decode_segment(segment: &str) -> serde_json::Value {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(segment)
                .expect("base64url"),
        )
        .expect("json")
    }

    /// `token` with its header replaced by `header` (signature kept).
    fn with_header(token: &str, header: &serde_json::Value) -> String {
        let (_, rest) = token.split_once('.').expect("segments");
        format!("{}.{rest}", b64(header.to_string().as_bytes()))
    }

    /// A token of `claims` under `header`, HMAC-SHA256'd with `key` (the "public key as
    /// HMAC secret" attack).
    fn hmac_token(header: &serde_json::Value, claims: &serde_json::Value, key: &[u8]) -> String {
        let message = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &jsonwebtoken::EncodingKey::from_secret(key),
            Algorithm::HS256,
        )
        .expect("sign");
        format!("{message}.{signature}")
    }

    #[test]
    fn key_pair_tokens_carry_alg_kid_at_jwt_client_id_and_sid() {
        let dir = tempfile::tempdir().expect("dir");
        for alg in material::PAIR_ALGORITHMS {
            let (file, kid) = key_file(&dir, &format!("{alg:?}.pem"), alg);
            let keys = TokenKeys::new(b"", &pair_settings(alg, &[(&file, KeyState::Active)]))
                .expect("keys");
            let (token, claims) = keys
                .issue("u1", "alice", &["admin".into()], Some("s1"))
                .expect("issue");
            let header = decode_segment(token.split('.').next().expect("header"));
            assert_eq!(
                header,
                serde_json::json!({"alg": format!("{alg:?}"), "kid": kid, "typ": "at+jwt"})
            );
            let payload = decode_segment(token.split('.').nth(1).expect("payload"));
            assert_eq!(payload["client_id"], "gatehouse");
            assert_eq!(payload["sid"], "s1");
            assert_eq!(payload["iss"], "https://gw.example");
            assert_eq!(claims.client_id.as_deref(), Some("gatehouse"));
            assert_eq!(keys.verify(&token).map(|v| v.sub.clone()), Ok("u1".into()));
            let jwks = serde_json::to_value(keys.jwks()).expect("json");
            assert_eq!(jwks["keys"][0]["kid"], kid.as_str());
            let entries = keys.keyring().entries().to_vec();
            assert_eq!(entries.len(), 1);
            assert_eq!(entries[0].state, KeyState::Active);
            assert_eq!(entries[0].file.as_deref(), Some(file.as_path()));
        }
    }

    #[test]
    fn shared_secret_tokens_keep_typ_jwt_and_no_client_id() {
        let keys = TokenKeys::new(SECRET, &settings()).expect("keys");
        let (token, claims) = keys.issue("u1", "alice", &[], Some("s1")).expect("issue");
        let header = decode_segment(token.split('.').next().expect("header"));
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["alg"], "HS256");
        assert!(claims.client_id.is_none());
        let payload = decode_segment(token.split('.').nth(1).expect("payload"));
        assert!(payload.get("client_id").is_none(), "{payload}");
    }

    #[test]
    fn client_tokens_carry_the_client_name_as_client_id_with_every_algorithm() {
        let keys = TokenKeys::new(SECRET, &settings()).expect("keys");
        let (token, claims) = keys
            .issue_for_client("c1", "ci-bot", &["deploy".into()], "client.3")
            .expect("issue");
        let payload = decode_segment(token.split('.').nth(1).expect("payload"));
        assert_eq!(payload["client_id"], "ci-bot");
        assert_eq!(payload["username"], "ci-bot");
        assert_eq!(payload["sub"], "c1");
        assert_eq!(payload["sid"], "client.3");
        assert_eq!(claims.client_id.as_deref(), Some("ci-bot"));
        let dir = tempfile::tempdir().expect("dir");
        let (file, _) = key_file(&dir, "ec.pem", Algorithm::ES256);
        let pair = TokenKeys::new(
            b"",
            &pair_settings(Algorithm::ES256, &[(&file, KeyState::Active)]),
        )
        .expect("keys");
        let (token, _) = pair
            .issue_for_client("c1", "ci-bot", &[], "client.0")
            .expect("issue");
        let payload = decode_segment(token.split('.').nth(1).expect("payload"));
        assert_eq!(payload["client_id"], "ci-bot");
        assert_eq!(pair.verify(&token).map(|v| v.sub.clone()), Ok("c1".into()));
    }

    /// The header check refuses, before any crypto, every token that does not name one
    /// of our keys with that key's own algorithm and `typ`.
    #[test]
    fn key_pair_attack_basics_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let (ec, ec_kid) = key_file(&dir, "ec.pem", Algorithm::ES256);
        let (other_ec, _) = key_file(&dir, "other-ec.pem", Algorithm::ES256);
        let (ed, ed_kid) = key_file(&dir, "ed.pem", Algorithm::EdDSA);
        let ours = TokenKeys::new(
            b"",
            &pair_settings(Algorithm::ES256, &[(&ec, KeyState::Active)]),
        )
        .expect("keys");
        let stranger = TokenKeys::new(
            b"",
            &pair_settings(Algorithm::ES256, &[(&other_ec, KeyState::Active)]),
        )
        .expect("keys");
        let eddsa = TokenKeys::new(
            b"",
            &pair_settings(Algorithm::EdDSA, &[(&ed, KeyState::Active)]),
        )
        .expect("keys");
        let (token, claims) = ours.issue("u1", "alice", &[], Some("s1")).expect("issue");
        assert!(ours.verify(&token).is_ok());
        let claims = serde_json::to_value(&claims).expect("claims");

        // Signed by a key that is not configured: unknown kid.
        let (foreign, _) = stranger.issue("u1", "alice", &[], None).expect("issue");
        assert_eq!(ours.verify(&foreign), Err(TokenRejection::BadSignature));
        // Our kid put on a stranger's signature: the signature fails.
        let relabelled = with_header(
            &foreign,
            &serde_json::json!({"alg": "ES256", "kid": ec_kid, "typ": "at+jwt"}),
        );
        assert_eq!(ours.verify(&relabelled), Err(TokenRejection::BadSignature));
        // No kid at all: no key (the shared-secret fallback is for HS* only).
        let no_kid = with_header(
            &token,
            &serde_json::json!({"alg": "ES256", "typ": "at+jwt"}),
        );
        assert_eq!(ours.verify(&no_kid), Err(TokenRejection::BadSignature));
        for kid in [
            serde_json::json!("../../etc/passwd"),
            serde_json::json!(format!("{ec_kid}\r\n")),
            serde_json::json!("x".repeat(2048)),
            serde_json::json!(7),
            serde_json::json!(null),
        ] {
            let odd = with_header(
                &token,
                &serde_json::json!({"alg": "ES256", "kid": kid, "typ": "at+jwt"}),
            );
            assert!(ours.verify(&odd).is_err(), "kid {kid}");
        }
        // Another algorithm on our key: refused whatever the signature.
        for alg in ["EdDSA", "RS256", "HS256", "ES384", "none", "es256"] {
            let swapped = with_header(
                &token,
                &serde_json::json!({"alg": alg, "kid": ec_kid, "typ": "at+jwt"}),
            );
            assert_eq!(
                ours.verify(&swapped),
                Err(TokenRejection::WrongAlgorithm),
                "{alg}"
            );
        }
        // An ES256 header on an EdDSA key (the in-family swap of the other direction).
        let onto_ed = with_header(
            &token,
            &serde_json::json!({"alg": "ES256", "kid": ed_kid, "typ": "at+jwt"}),
        );
        assert_eq!(eddsa.verify(&onto_ed), Err(TokenRejection::WrongAlgorithm));
        // HS256 with our public key as the HMAC secret, in several encodings.
        let jwk = serde_json::to_value(&ours.jwks().keys[0]).expect("jwk");
        let pem = std::fs::read(&ec).expect("pem");
        for secret in [
            jwk.to_string().into_bytes(),
            jwk["x"].as_str().expect("x").as_bytes().to_vec(),
            pem,
        ] {
            for header in [
                serde_json::json!({"alg": "HS256", "kid": ec_kid, "typ": "at+jwt"}),
                serde_json::json!({"alg": "HS256", "typ": "JWT"}),
            ] {
                let forged = hmac_token(&header, &claims, &secret);
                assert!(ours.verify(&forged).is_err(), "{header}");
            }
        }
        // `typ` must be at+jwt (or application/at+jwt): not JWT, none, or an assertion's.
        for typ in [
            Some("JWT"),
            None,
            Some("gatehouse-assertion+jwt"),
            Some("at+jwt+x"),
        ] {
            let mut header = serde_json::json!({"alg": "ES256", "kid": ec_kid});
            if let Some(typ) = typ {
                header["typ"] = typ.into();
            }
            assert_eq!(
                ours.verify(&with_header(&token, &header)),
                Err(TokenRejection::Malformed),
                "{typ:?}"
            );
        }
        // Key-naming members are refused on key pairs too.
        for (member, value) in [
            ("jku", serde_json::json!("http://127.0.0.1:1/jwks.json")),
            ("jwk", jwk.clone()),
            ("x5u", serde_json::json!("http://127.0.0.1:1/cert.pem")),
            ("x5c", serde_json::json!(["MIIB"])),
            ("crit", serde_json::json!(["exp"])),
        ] {
            let mut header = serde_json::json!({"alg": "ES256", "kid": ec_kid, "typ": "at+jwt"});
            header[member] = value;
            assert_eq!(
                ours.verify(&with_header(&token, &header)),
                Err(TokenRejection::Malformed),
                "{member}"
            );
        }
    }

    #[test]
    fn the_media_type_form_of_at_jwt_is_accepted() {
        let dir = tempfile::tempdir().expect("dir");
        let (file, kid) = key_file(&dir, "ed.pem", Algorithm::EdDSA);
        let material = Arc::new(KeyMaterial::load(&file, Algorithm::EdDSA).expect("load"));
        let keys = TokenKeys::new(
            b"",
            &pair_settings(Algorithm::EdDSA, &[(&file, KeyState::Active)]),
        )
        .expect("keys");
        let signer = SigningKey::pair(material).expect("signer");
        let (_, claims) = keys.issue("u1", "alice", &[], None).expect("issue");
        for typ in ["application/at+jwt", "AT+JWT", "Application/At+Jwt"] {
            let token = signer.sign_typed(typ, &claims).expect("sign");
            assert_eq!(
                jsonwebtoken::decode_header(&token)
                    .expect("h")
                    .kid
                    .as_deref(),
                Some(kid.as_str())
            );
            assert!(keys.verify(&token).is_ok(), "{typ}");
        }
    }

    #[test]
    fn rotation_by_reload_keeps_old_tokens_until_their_key_is_removed() {
        let dir = tempfile::tempdir().expect("dir");
        let (a, kid_a) = key_file(&dir, "a.pem", Algorithm::ES256);
        let (b, kid_b) = key_file(&dir, "b.pem", Algorithm::ES256);
        let keys = TokenKeys::new(
            b"",
            &pair_settings(Algorithm::ES256, &[(&a, KeyState::Active)]),
        )
        .expect("keys");
        let (old, _) = keys.issue("u1", "alice", &[], None).expect("issue");
        assert!(keys.verify(&old).is_ok());

        // Nothing changed: no swap, the cache stays warm.
        assert_eq!(
            keys.reload(&pair_settings(Algorithm::ES256, &[(&a, KeyState::Active)])),
            Ok(None)
        );
        assert_eq!(keys.cache().len(), 1);

        // 1. b as next: published, old tokens verify, a still signs.
        let next = pair_settings(
            Algorithm::ES256,
            &[(&a, KeyState::Active), (&b, KeyState::Next)],
        );
        assert!(keys.reload(&next).expect("reload").is_some());
        assert_eq!(keys.jwks().keys.len(), 2);
        assert!(keys.verify(&old).is_ok());
        assert_eq!(keys.keyring().signing().kid(), kid_a);

        // 2. b active, a retired: new tokens by b, old ones still verify.
        let rotated = pair_settings(
            Algorithm::ES256,
            &[(&b, KeyState::Active), (&a, KeyState::Retired)],
        );
        let described = keys.reload(&rotated).expect("reload").expect("changed");
        assert_eq!(described, format!("active {kid_b}, retired {kid_a}"));
        assert!(keys.verify(&old).is_ok());
        let (new, _) = keys.issue("u1", "alice", &[], None).expect("issue");
        assert_eq!(
            jsonwebtoken::decode_header(&new)
                .expect("header")
                .kid
                .as_deref(),
            Some(kid_b.as_str())
        );

        // A broken file refuses the reload; the running keys stay.
        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
        )
        .expect("write");
        let err = keys
            .reload(&pair_settings(
                Algorithm::ES256,
                &[(&b, KeyState::Active), (&broken, KeyState::Next)],
            ))
            .expect_err("broken");
        assert!(err.contains("tokens.keys[1].file"), "{err}");
        assert!(err.contains("broken.pem"), "{err}");
        assert!(keys.verify(&old).is_ok());
        assert_eq!(keys.keyring().signing().kid(), kid_b);

        // 3. a removed: its tokens stop at once (cached or not); b's keep working.
        keys.reload(&pair_settings(Algorithm::ES256, &[(&b, KeyState::Active)]))
            .expect("reload");
        assert_eq!(keys.verify(&old), Err(TokenRejection::BadSignature));
        assert!(keys.verify(&new).is_ok());
        assert_eq!(keys.jwks().keys.len(), 1);
    }

    #[test]
    fn reload_leaves_the_shared_secret_and_another_algorithm_to_a_restart() {
        let keys = TokenKeys::new(SECRET, &settings()).expect("keys");
        let dir = tempfile::tempdir().expect("dir");
        let (a, _) = key_file(&dir, "a.pem", Algorithm::ES256);
        assert_eq!(
            keys.reload(&pair_settings(Algorithm::ES256, &[(&a, KeyState::Active)])),
            Ok(None)
        );
        assert_eq!(keys.keyring().signing().algorithm(), Algorithm::HS256);
        let pairs = TokenKeys::new(
            b"",
            &pair_settings(Algorithm::ES256, &[(&a, KeyState::Active)]),
        )
        .expect("keys");
        let (ed, _) = key_file(&dir, "ed.pem", Algorithm::EdDSA);
        assert_eq!(
            pairs.reload(&pair_settings(Algorithm::EdDSA, &[(&ed, KeyState::Active)])),
            Ok(None)
        );
        assert_eq!(pairs.keyring().signing().algorithm(), Algorithm::ES256);
    }

    #[test]
    fn the_file_check_names_every_bad_file_by_its_key_path() {
        let dir = tempfile::tempdir().expect("dir");
        let (ec, _) = key_file(&dir, "ec.pem", Algorithm::ES256);
        let (ed, _) = key_file(&dir, "ed.pem", Algorithm::EdDSA);
        let missing = dir.path().join("missing.pem");
        // A public key as the next key.
        let material = KeyMaterial::load(&ec, Algorithm::ES256).expect("load");
        let public = dir.path().join("public.pem");
        let jwk = serde_json::to_value(material.jwk()).expect("jwk");
        let point = [
            &[0x04u8][..],
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(jwk["x"].as_str().expect("x"))
                .expect("x"),
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(jwk["y"].as_str().expect("y"))
                .expect("y"),
        ]
        .concat();
        let spki = [
            &[
                0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, 0x06,
                0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
            ][..],
            &point,
        ]
        .concat();
        std::fs::write(&public, material::encode_pem("PUBLIC KEY", &spki)).expect("write");
        let settings = pair_settings(
            Algorithm::ES256,
            &[
                (&ec, KeyState::Active),
                (&ed, KeyState::Next),
                (&missing, KeyState::Retired),
                (&public, KeyState::Next),
                (&ec, KeyState::Retired),
            ],
        );
        let problems = check(&settings);
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "tokens.keys[1].file",
                "tokens.keys[2].file",
                "tokens.keys[3].file",
                "tokens.keys[4].file"
            ],
            "{problems:?}"
        );
        assert!(problems[0].problem.contains("ed.pem"), "{problems:?}");
        assert!(problems[0].problem.contains("Ed25519"), "{problems:?}");
        assert!(problems[1].problem.contains("missing.pem"), "{problems:?}");
        assert!(problems[2].problem.contains("public key"), "{problems:?}");
        assert!(
            problems[3].problem.contains("tokens.keys[0]"),
            "{problems:?}"
        );
        // The same public key is fine as a retired key.
        let retired = pair_settings(
            Algorithm::ES256,
            &[(&ed, KeyState::Retired), (&public, KeyState::Retired)],
        );
        assert!(
            !check(&retired).is_empty(),
            "the Ed25519 file is still wrong"
        );
        let fine = pair_settings(
            Algorithm::ES256,
            &[(&ec, KeyState::Active), (&public, KeyState::Retired)],
        );
        assert!(check(&fine).iter().any(|p| p.problem.contains("same key")));
        let (other, _) = key_file(&dir, "other.pem", Algorithm::ES256);
        let fine = pair_settings(
            Algorithm::ES256,
            &[(&other, KeyState::Active), (&public, KeyState::Retired)],
        );
        assert_eq!(check(&fine), Vec::new());
        let keys = TokenKeys::new(b"", &fine).expect("keys");
        assert_eq!(keys.jwks().keys.len(), 2);
        assert!(!keys.keyring().entries()[1].private);
    }

    #[test]
    fn the_published_jwk_set_is_computed_once_per_key_set_and_republished_by_a_swap() {
        let shared = TokenKeys::new(SECRET, &settings()).expect("keys");
        assert_eq!(&shared.keyring().published().body[..], br#"{"keys":[]}"#);

        let dir = tempfile::tempdir().expect("dir");
        let (a, a_kid) = key_file(&dir, "a.pem", Algorithm::ES256);
        let (b, b_kid) = key_file(&dir, "b.pem", Algorithm::ES256);
        let keys = TokenKeys::new(
            b"",
            &pair_settings(Algorithm::ES256, &[(&a, KeyState::Active)]),
        )
        .expect("keys");
        let kids = |ring: &Keyring| -> Vec<String> {
            let published: serde_json::Value =
                serde_json::from_slice(&ring.published().body).expect("json");
            assert_eq!(
                published,
                serde_json::to_value(ring.verifying().jwks()).expect("json"),
                "the served bytes are the key set's JWKS"
            );
            published["keys"]
                .as_array()
                .expect("keys")
                .iter()
                .map(|key| key["kid"].as_str().expect("kid").to_string())
                .collect()
        };
        let before = keys.keyring();
        assert_eq!(kids(&before), vec![a_kid.clone()]);

        let next = Keyring::load(
            b"",
            &pair_settings(
                Algorithm::ES256,
                &[(&a, KeyState::Retired), (&b, KeyState::Active)],
            ),
            keys.rules(),
        )
        .expect("ring");
        keys.swap(next);
        let after = keys.keyring();
        assert_eq!(kids(&after), vec![a_kid, b_kid]);
        assert_ne!(after.published().etag, before.published().etag);
        // Unchanged until the next swap: the same bytes on every request.
        assert_eq!(keys.keyring().published().etag, after.published().etag);
    }
}
