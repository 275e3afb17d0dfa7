//! The upstream identity assertion (SPEC §9): with `[assertion] enabled`, every request
//! forwarded with an identity carries `assertion.header` = a short-lived JWT signed by the
//! active key, which the upstream verifies with the published JWKS instead of trusting the
//! plain identity headers on faith (like Pomerium's `X-Pomerium-Jwt-Assertion`).
//!
//! ```text
//! header {"alg", "kid", "typ": "gatehouse-assertion+jwt"}
//! claims {"iss": tokens.issuer, "aud": the upstream's assertion_audience, "sub",
//!         "username", "roles": [..] (current, never null), "sid"?, "jti",
//!         "iat", "nbf" = iat, "exp" = iat + ttl}
//! ```
//!
//! Strip, then stamp: the header is removed from every client request in phase 2 together
//! with the identity headers ([`super::IdentityHeaders`], enabled or not), and set here
//! only from a verified [`Identity`] — never on anonymous requests. `/auth/verify` answers
//! with it too (forward-auth, like Pomerium's verify endpoint), for the upstream of the
//! route it decided (`upstreams.default` without a forwarded URI), and with an empty value
//! without an identity, as it does for the identity headers.
//!
//! Kinds never mix (RFC 8725 §3.11, §3.12): an assertion is not an access token — its
//! `typ` is not `at+jwt` (which the key-pair [`KeySet`](crate::auth::keys::KeySet)
//! requires) and its `aud` is an upstream's, never `tokens.audience` (validation refuses
//! that) — and an access token is not an assertion: a verifier pins `typ`
//! ([`ASSERTION_TYP`]), `aud`, `iss` and the JWKS URL (docs/assertion.md).
//!
//! Cache: signing (ECDSA, EdDSA, RSA) stays off the per-request path. One assertion is
//! kept per (session — or token, without one —, audience, `kid`) and reused while more
//! than half its `ttl` remains, so an upstream always receives at least `ttl`/2 of
//! validity. An entry also records the identity it states (`sub`, `username`, `roles`)
//! and is re-minted when that changes (roles are the user's current ones); a key swap
//! changes the `kid`, so the new key signs at once. The cache is sharded (reads take one
//! shard's read lock) and bounded ([`ASSERTION_CACHE_CAPACITY`]): a full shard drops the
//! entries due for renewal, then one more. It lives in [`Assertions`], which the
//! pipeline's snapshot holds, so a reload starts it afresh.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use foldhash::HashMap;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::accounts::Identity;
use crate::auth::keys::{SigningKey, TokenKeys};
use crate::auth::now_secs;
use crate::config::{AssertionSettings, UpstreamSettings};
use crate::error::GatewayError;

/// The JOSE `typ` of an assertion (RFC 7515 §4.1.9, RFC 8725 §3.11).
pub const ASSERTION_TYP: &str = "gatehouse-assertion+jwt";

/// Assertions kept at most, over all shards (≈ 1 KiB each).
pub const ASSERTION_CACHE_CAPACITY: usize = 16 * 1024;

const SHARDS: usize = 16;
const SHARD_CAPACITY: usize = ASSERTION_CACHE_CAPACITY / SHARDS;

/// The claims of an assertion, as signed (and as a verifier parses them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssertionClaims {
    pub iss: String,
    /// The upstream's `assertion_audience`.
    pub aud: String,
    /// The user's stable opaque id.
    pub sub: String,
    pub username: String,
    /// The user's current roles; `[]`, never null.
    pub roles: Vec<String>,
    /// The login session, when the token has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub jti: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
}

/// `[assertion]` compiled for one snapshot: the settings, each upstream's audience (by
/// upstream index, as routes name them) and the cache.
pub struct Assertions {
    enabled: bool,
    header: HeaderName,
    /// Seconds.
    ttl: u64,
    audiences: Vec<Arc<str>>,
    cache: AssertionCache,
}

impl std::fmt::Debug for Assertions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assertions")
            .field("enabled", &self.enabled)
            .field("header", &self.header)
            .field("ttl", &self.ttl)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl Assertions {
    /// `upstreams` in the order route decisions index them.
    pub fn new(settings: &AssertionSettings, upstreams: &[UpstreamSettings]) -> Self {
        Assertions {
            enabled: settings.enabled,
            header: settings.header.clone(),
            ttl: settings.ttl.as_secs(),
            audiences: upstreams
                .iter()
                .map(|upstream| Arc::from(upstream.assertion_audience.as_str()))
                .collect(),
            cache: AssertionCache::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The header assertions travel in.
    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// The `aud` of assertions for upstream number `upstream`.
    pub fn audience(&self, upstream: usize) -> Option<&str> {
        self.audiences.get(upstream).map(|audience| &**audience)
    }

    /// The assertion for `identity` going to upstream number `upstream`: `None` when
    /// assertions are off or there is no identity. From the cache while fresh, else
    /// signed with the active key now. A signing failure is an internal error: a request
    /// is never forwarded without the assertion the upstream was promised.
    pub fn value_for(
        &self,
        keys: &TokenKeys,
        identity: Option<&Identity>,
        upstream: usize,
    ) -> Result<Option<HeaderValue>, GatewayError> {
        let Some(identity) = identity.filter(|_| self.enabled) else {
            return Ok(None);
        };
        let audience = self
            .audiences
            .get(upstream)
            .ok_or_else(|| GatewayError::Internal("assertion for a missing upstream".into()))?;
        let ring = keys.keyring();
        self.value(
            ring.signing(),
            &keys.rules().issuer,
            identity,
            audience,
            now_secs(),
        )
        .map(Some)
    }

    /// Sets the assertion header (after the strip of phase 2): `value` from
    /// [`Self::value_for`].
    pub fn stamp(&self, headers: &mut HeaderMap, value: Option<HeaderValue>) {
        if let Some(value) = value {
            headers.insert(self.header.clone(), value);
        }
    }

    /// The cache, then signing; see the module doc.
    fn value(
        &self,
        signing: &SigningKey,
        issuer: &str,
        identity: &Identity,
        audience: &Arc<str>,
        now: u64,
    ) -> Result<HeaderValue, GatewayError> {
        let key = CacheKey {
            credential: credential(identity),
            audience,
            kid: signing.kid(),
        };
        let hash = self.cache.hash(&key);
        if let Some(value) = self.cache.lookup(hash, &key, identity, now) {
            return Ok(value);
        }
        let (token, claims) = mint(signing, issuer, identity, audience, self.ttl, now)
            .map_err(|err| GatewayError::Internal(format!("signing an assertion failed: {err}")))?;
        let value = HeaderValue::from_str(&token)
            .map_err(|_| GatewayError::Internal("an assertion is not a header value".into()))?;
        let renew_at = claims.exp.saturating_sub(self.ttl / 2);
        self.cache
            .remember(hash, &key, identity, value.clone(), renew_at, now);
        Ok(value)
    }

    /// Assertions signed so far (not served from the cache): tests, metrics.
    pub fn minted(&self) -> u64 {
        self.cache.minted.load(Ordering::Relaxed)
    }

    /// Assertions kept now.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}

/// Signs an assertion for `identity` and `audience` at Unix second `now`.
pub fn mint(
    signing: &SigningKey,
    issuer: &str,
    identity: &Identity,
    audience: &str,
    ttl: u64,
    now: u64,
) -> Result<(String, AssertionClaims), jsonwebtoken::errors::Error> {
    let claims = AssertionClaims {
        iss: issuer.to_string(),
        aud: audience.to_string(),
        sub: identity.sub().to_string(),
        username: identity.username().to_string(),
        roles: identity.roles().to_vec(),
        sid: identity.sid().map(str::to_string),
        jti: crate::auth::random_id(16),
        iat: now,
        nbf: now,
        exp: now.saturating_add(ttl),
    };
    let token = signing.sign_typed(ASSERTION_TYP, &claims)?;
    Ok((token, claims))
}

/// What an assertion is shared by: the login session (every token of it states the same
/// identity), else the one token.
#[derive(Hash, PartialEq, Eq, Clone, Copy)]
enum Credential<'a> {
    Session(&'a str),
    Token(&'a str),
}

fn credential(identity: &Identity) -> Credential<'_> {
    match identity.sid() {
        Some(sid) => Credential::Session(sid),
        None => Credential::Token(identity.jti()),
    }
}

#[derive(Hash)]
struct CacheKey<'a> {
    credential: Credential<'a>,
    audience: &'a str,
    kid: &'a str,
}

/// One kept assertion: its key, the identity it states, when to renew it.
struct Entry {
    session: bool,
    credential: Box<str>,
    audience: Arc<str>,
    kid: Box<str>,
    sub: Box<str>,
    username: Box<str>,
    roles: Box<[String]>,
    /// Unix second from which it is re-minted (`exp` − `ttl`/2).
    renew_at: u64,
    value: HeaderValue,
}

impl Entry {
    fn is_for(&self, key: &CacheKey<'_>, identity: &Identity, now: u64) -> bool {
        let credential = match key.credential {
            Credential::Session(sid) => self.session && &*self.credential == sid,
            Credential::Token(jti) => !self.session && &*self.credential == jti,
        };
        credential
            && now < self.renew_at
            && &*self.audience == key.audience
            && &*self.kid == key.kid
            && &*self.sub == identity.sub()
            && &*self.username == identity.username()
            && &*self.roles == identity.roles()
    }
}

/// Entries by a keyed hash of [`CacheKey`] (the whole key is compared on a hit), in
/// shards picked by the same hash.
struct AssertionCache {
    shards: [RwLock<HashMap<u64, Entry>>; SHARDS],
    hasher: foldhash::fast::RandomState,
    minted: AtomicU64,
}

impl AssertionCache {
    fn new() -> Self {
        AssertionCache {
            shards: std::array::from_fn(|_| RwLock::new(HashMap::default())),
            hasher: foldhash::fast::RandomState::default(),
            minted: AtomicU64::new(0),
        }
    }

    fn hash(&self, key: &CacheKey<'_>) -> u64 {
        self.hasher.hash_one(key)
    }

    fn shard(&self, hash: u64) -> &RwLock<HashMap<u64, Entry>> {
        // The top bits: the map itself uses the low ones.
        &self.shards[(hash >> 60) as usize % SHARDS]
    }

    fn lookup(
        &self,
        hash: u64,
        key: &CacheKey<'_>,
        identity: &Identity,
        now: u64,
    ) -> Option<HeaderValue> {
        read(self.shard(hash))
            .get(&hash)
            .filter(|entry| entry.is_for(key, identity, now))
            .map(|entry| entry.value.clone())
    }

    fn remember(
        &self,
        hash: u64,
        key: &CacheKey<'_>,
        identity: &Identity,
        value: HeaderValue,
        renew_at: u64,
        now: u64,
    ) {
        self.minted.fetch_add(1, Ordering::Relaxed);
        let (session, credential) = match key.credential {
            Credential::Session(sid) => (true, sid),
            Credential::Token(jti) => (false, jti),
        };
        let entry = Entry {
            session,
            credential: credential.into(),
            audience: Arc::from(key.audience),
            kid: key.kid.into(),
            sub: identity.sub().into(),
            username: identity.username().into(),
            roles: identity.roles().into(),
            renew_at,
            value,
        };
        let mut shard = write(self.shard(hash));
        if shard.len() >= SHARD_CAPACITY && !shard.contains_key(&hash) {
            shard.retain(|_, kept| now < kept.renew_at);
            if shard.len() >= SHARD_CAPACITY {
                if let Some(victim) = shard.keys().next().copied() {
                    shard.remove(&victim);
                }
            }
        }
        shard.insert(hash, entry);
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|shard| read(shard).len()).sum()
    }
}

// A poisoned lock only means another thread panicked while holding it; a shard is always
// left consistent (single inserts, retain, remove), so keep serving.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::Engine as _;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};

    use super::*;
    use crate::accounts::view::UserView;
    use crate::auth::keys::{generate, KeyMaterial, VerifiedToken};
    use crate::config::{KeyFileSettings, KeyState, TokenSettings};
    use crate::error::TokenRejection;

    const ORDERS: &str = "http://10.0.0.7:8000";
    const BILLING: &str = "https://billing.internal";
    const ISSUER: &str = "https://gw.example";
    const NOW: u64 = 1_900_000_000;

    /// An ES256 key pair: the signing key and what an upstream verifies with.
    struct Pair {
        signing: SigningKey,
        decoding: DecodingKey,
    }

    fn pair() -> Pair {
        let (pem, _kid) = generate(Algorithm::ES256, 2048).expect("generate");
        let material =
            Arc::new(KeyMaterial::from_pem(pem.as_bytes(), Algorithm::ES256).expect("load"));
        Pair {
            decoding: material.decoding_key().expect("public key"),
            signing: SigningKey::pair(material).expect("signing key"),
        }
    }

    fn user(username: &str, roles: &[&str]) -> Arc<UserView> {
        Arc::new(UserView {
            username: username.into(),
            roles: roles.iter().map(|role| role.to_string()).collect(),
            enabled: true,
            password_changed_at: 0,
            generation: 0,
            kind: crate::store::PrincipalKind::User,
            client_sid: None,
            headers: std::sync::OnceLock::new(),
        })
    }

    fn identity(user: Arc<UserView>, sid: Option<&str>, jti: &str) -> Identity {
        Identity::new(
            user,
            Arc::new(VerifiedToken {
                sub: "u-1".into(),
                sid: sid.map(str::to_string),
                jti: jti.into(),
                iat: NOW,
                exp: NOW + 900,
            }),
        )
    }

    fn upstream(name: &str, audience: &str) -> UpstreamSettings {
        UpstreamSettings {
            name: name.into(),
            authority: "127.0.0.1:1".into(),
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            assertion_audience: audience.into(),
        }
    }

    fn assertions(enabled: bool) -> Assertions {
        Assertions::new(
            &AssertionSettings {
                enabled,
                header: HeaderName::from_static("x-gatehouse-assertion"),
                ttl: Duration::from_secs(60),
            },
            &[upstream("default", ORDERS), upstream("billing", BILLING)],
        )
    }

    fn value(
        assertions: &Assertions,
        signing: &SigningKey,
        who: &Identity,
        upstream: usize,
        now: u64,
    ) -> String {
        let audience = assertions.audiences[upstream].clone();
        let value = assertions
            .value(signing, ISSUER, who, &audience, now)
            .expect("value");
        value.to_str().expect("ascii").to_string()
    }

    /// Verifies as an upstream would: pinned key, algorithm, `iss`, `aud`, `typ`.
    fn verify_as_upstream(
        key: &DecodingKey,
        token: &str,
        audience: &str,
    ) -> Result<AssertionClaims, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|err| err.to_string())?;
        if header.typ.as_deref() != Some(ASSERTION_TYP) {
            return Err(format!("typ {:?}", header.typ));
        }
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[audience]);
        validation.validate_exp = false; // the fixed test clock is in the future anyway
        jsonwebtoken::decode::<AssertionClaims>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|err| err.to_string())
    }

    #[test]
    fn an_assertion_states_the_identity_for_one_audience() {
        let assertions = assertions(true);
        let key = pair();
        let who = identity(user("Alice", &["admin", "reader"]), Some("s-1"), "j-1");
        let token = value(&assertions, &key.signing, &who, 1, NOW);
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.typ.as_deref(), Some(ASSERTION_TYP));
        assert_eq!(header.kid.as_deref(), Some(key.signing.kid()));
        assert_eq!(header.alg, Algorithm::ES256);
        let claims = verify_as_upstream(&key.decoding, &token, BILLING).expect("verifies");
        assert_eq!(claims.iss, ISSUER);
        assert_eq!(claims.aud, BILLING);
        assert_eq!(claims.sub, "u-1");
        assert_eq!(claims.username, "Alice");
        assert_eq!(claims.roles, ["admin", "reader"]);
        assert_eq!(claims.sid.as_deref(), Some("s-1"));
        assert_eq!((claims.iat, claims.nbf, claims.exp), (NOW, NOW, NOW + 60));
        assert!(claims.jti.len() >= 16, "{}", claims.jti);
        assert!(
            verify_as_upstream(&key.decoding, &token, ORDERS).is_err(),
            "a verifier pinning another upstream's audience refuses it"
        );
    }

    #[test]
    fn roles_are_an_array_even_when_empty_and_sid_only_with_a_session() {
        let assertions = assertions(true);
        let who = identity(user("bob", &[]), None, "j-1");
        let token = value(&assertions, &pair().signing, &who, 0, NOW);
        let payload = token.split('.').nth(1).expect("payload");
        let json: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .expect("base64"),
        )
        .expect("json");
        assert_eq!(json["roles"], serde_json::json!([]));
        assert!(json.get("sid").is_none(), "{json}");
    }

    /// `[tokens]` with one active ES256 key written to `dir`.
    fn key_pair_settings(dir: &tempfile::TempDir) -> TokenSettings {
        let (pem, _) = generate(Algorithm::ES256, 2048).expect("generate");
        let file = dir.path().join("active.pem");
        crate::auth::keys::files::write_private_key(&file, &pem).expect("write");
        TokenSettings {
            issuer: ISSUER.into(),
            audience: "gatehouse".into(),
            algorithm: Algorithm::ES256,
            secret_file: None,
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(3600),
            leeway: Duration::from_secs(30),
            keys: vec![KeyFileSettings {
                file,
                state: KeyState::Active,
            }],
        }
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn nothing_without_an_identity_or_when_disabled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = TokenKeys::new(SECRET, &key_pair_settings(&dir)).expect("keys");
        let who = identity(user("alice", &[]), Some("s-1"), "j-1");
        assert!(matches!(
            assertions(true).value_for(&keys, None, 0),
            Ok(None)
        ));
        assert!(matches!(
            assertions(false).value_for(&keys, Some(&who), 0),
            Ok(None)
        ));
        let value = assertions(true)
            .value_for(&keys, Some(&who), 0)
            .expect("mint")
            .expect("a value");
        let header = jsonwebtoken::decode_header(value.to_str().expect("ascii")).expect("header");
        assert_eq!(header.kid.as_deref(), Some(keys.keyring().signing().kid()));
    }

    #[test]
    fn a_fresh_assertion_is_reused_until_half_its_ttl_is_left() {
        let assertions = assertions(true);
        let key = pair();
        let who = identity(user("alice", &["admin"]), Some("s-1"), "j-1");
        let first = value(&assertions, &key.signing, &who, 0, NOW);
        assert_eq!(value(&assertions, &key.signing, &who, 0, NOW), first);
        assert_eq!(value(&assertions, &key.signing, &who, 0, NOW + 29), first);
        assert_eq!(assertions.minted(), 1, "signed once");
        // Another token of the same session states the same identity: shared.
        let same_session = identity(user("alice", &["admin"]), Some("s-1"), "j-2");
        assert_eq!(
            value(&assertions, &key.signing, &same_session, 0, NOW + 29),
            first
        );
        assert_eq!(assertions.minted(), 1);
        // 30 s of 60 left: renewed.
        let renewed = value(&assertions, &key.signing, &who, 0, NOW + 30);
        assert_ne!(renewed, first);
        assert_eq!(assertions.minted(), 2);
        assert_eq!(value(&assertions, &key.signing, &who, 0, NOW + 31), renewed);
    }

    #[test]
    fn each_audience_session_and_key_gets_its_own_assertion() {
        let assertions = assertions(true);
        let key = pair();
        let who = identity(user("alice", &[]), Some("s-1"), "j-1");
        let orders = value(&assertions, &key.signing, &who, 0, NOW);
        let billing = value(&assertions, &key.signing, &who, 1, NOW);
        assert_ne!(orders, billing);
        let other_session = identity(user("alice", &[]), Some("s-2"), "j-1");
        assert_ne!(
            value(&assertions, &key.signing, &other_session, 0, NOW),
            orders
        );
        // Without a session, by token id: a token whose id is some session's id is
        // still another credential.
        let token_only = identity(user("alice", &[]), None, "s-1");
        assert_ne!(
            value(&assertions, &key.signing, &token_only, 0, NOW),
            orders
        );
        // A swapped key (another kid) signs at once.
        let rotated = pair();
        let after_swap = value(&assertions, &rotated.signing, &who, 0, NOW);
        assert_ne!(after_swap, orders);
        assert_eq!(
            jsonwebtoken::decode_header(&after_swap)
                .expect("header")
                .kid
                .as_deref(),
            Some(rotated.signing.kid())
        );
        verify_as_upstream(&rotated.decoding, &after_swap, ORDERS).expect("the new key's");
        assert_eq!(assertions.minted(), 5);
    }

    #[test]
    fn a_change_of_roles_or_username_is_stated_at_once() {
        let assertions = assertions(true);
        let key = pair();
        let before = identity(user("alice", &["reader"]), Some("s-1"), "j-1");
        let first = value(&assertions, &key.signing, &before, 0, NOW);
        let promoted = identity(user("alice", &["reader", "admin"]), Some("s-1"), "j-1");
        let token = value(&assertions, &key.signing, &promoted, 0, NOW + 1);
        assert_ne!(token, first);
        assert_eq!(
            verify_as_upstream(&key.decoding, &token, ORDERS)
                .expect("verifies")
                .roles,
            ["reader", "admin"]
        );
        let renamed = identity(user("Alice2", &["reader", "admin"]), Some("s-1"), "j-1");
        let token = value(&assertions, &key.signing, &renamed, 0, NOW + 2);
        assert_eq!(
            verify_as_upstream(&key.decoding, &token, ORDERS)
                .expect("verifies")
                .username,
            "Alice2"
        );
        assert_eq!(assertions.minted(), 3);
    }

    #[test]
    fn the_cache_is_bounded() {
        let assertions = assertions(true);
        let key = pair();
        for i in 0..ASSERTION_CACHE_CAPACITY + 500 {
            let who = identity(user("alice", &[]), Some(&format!("s-{i}")), "j");
            value(&assertions, &key.signing, &who, 0, NOW);
        }
        assert!(
            assertions.cached() <= ASSERTION_CACHE_CAPACITY,
            "{}",
            assertions.cached()
        );
        assert!(
            assertions.cached() > ASSERTION_CACHE_CAPACITY / 2,
            "{}",
            assertions.cached()
        );
    }

    #[test]
    fn an_assertion_is_not_an_access_token_nor_the_other_way_round() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = TokenKeys::new(SECRET, &key_pair_settings(&dir)).expect("keys");
        let ring = keys.keyring();
        let who = identity(user("alice", &["admin"]), Some("s-1"), "j-1");
        // As an access token: its `typ` is not `at+jwt`, refused before any crypto (and
        // its `aud` is an upstream's, never `tokens.audience`: validation sees to that).
        let (assertion, _) = mint(
            ring.signing(),
            ISSUER,
            &who,
            ORDERS,
            60,
            crate::auth::now_secs(),
        )
        .expect("mint");
        assert_eq!(keys.verify(&assertion), Err(TokenRejection::Malformed));
        // As an assertion: an access token has another `typ` (and `aud`).
        let (access, _) = keys.issue("u-1", "alice", &[], Some("s-1")).expect("issue");
        let public = ring
            .signing()
            .material()
            .expect("a key pair")
            .decoding_key()
            .expect("public key");
        let err = verify_as_upstream(&public, &access, ORDERS).expect_err("not an assertion");
        assert!(err.contains("typ"), "{err}");
    }
}
