//! The verified-token cache: tokens that passed every check of
//! [`super::TokenKeys::verify`] are remembered, so a client presenting the same token again
//! skips the header parse, the signature check and the claims parse (like Envoy's
//! `jwt_authn` cache). `exp` is re-checked on every hit: `nbf` and `iat` were in the past
//! (within leeway) when the token was verified and stay so; only expiry can change.
//!
//! Threat model: only tokens that passed every check enter, so a forger cannot fill it; it
//! holds at most [`CACHE_CAPACITY`] entries. Entries are keyed by the token's last 16
//! bytes — the tail of its signature segment, 96 bits the signer chose, found without a
//! search for the last `.` — and the whole token is compared on a hit, so a token that
//! shares a remembered tail (or signature) but differs anywhere else is verified afresh. The store-backed
//! checks (revocation, user state) are not cached: they run on every request.
//!
//! Key swaps: [`VerifiedCache::invalidate`] empties the cache and moves it to a new epoch
//! under its write lock; a verification that started under the old key set carries the
//! epoch it read ([`Lookup::Miss`]) and is not remembered once the epoch moved on. So no
//! entry verified by a key that was swapped out survives the swap, and a hit costs no
//! more than a map lookup (benches/RESULTS.md: the hot path).

// foldhash, not SipHash: the keys are the tails of verified signatures (unforgeable, so
// no crafted collisions get in), and SipHash was 3% of a proxied request's instructions.
use foldhash::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::claims::VerifiedToken;

/// Verified tokens remembered at most (≈ 1 KiB each).
pub const CACHE_CAPACITY: usize = 16 * 1024;

/// A verified token (whole) and what it established.
type Remembered = (Box<str>, Arc<VerifiedToken>);

/// Remembers verified tokens; see the module doc.
#[derive(Debug)]
pub struct VerifiedCache {
    inner: RwLock<Inner>,
    leeway: u64,
}

#[derive(Debug, Default)]
struct Inner {
    /// Keyed by [`key_of`] the token; the whole token is compared on a hit.
    verified: HashMap<u128, Remembered>,
    /// Moves on with every key swap; entries of an older epoch are never inserted.
    epoch: u64,
}

/// What the cache knows about a token.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Verified before and not expired.
    Hit(Arc<VerifiedToken>),
    /// Verified before and expired since (beyond the leeway).
    Expired,
    /// Not remembered: verify it, then [`VerifiedCache::remember`] it with this epoch.
    Miss { epoch: u64 },
}

impl VerifiedCache {
    /// An empty cache; `leeway` (seconds) is allowed past `exp`.
    pub fn new(leeway: u64) -> Self {
        VerifiedCache {
            inner: RwLock::new(Inner::default()),
            leeway,
        }
    }

    /// Looks `token` up at Unix second `now`.
    pub fn lookup(&self, token: &str, now: u64) -> Lookup {
        let inner = read(&self.inner);
        let remembered = inner
            .verified
            .get(&key_of(token))
            .filter(|(whole, _)| whole.as_ref() == token);
        match remembered {
            Some((_, verified)) if verified.exp.saturating_add(self.leeway) < now => {
                Lookup::Expired
            }
            Some((_, verified)) => Lookup::Hit(verified.clone()),
            None => Lookup::Miss { epoch: inner.epoch },
        }
    }

    /// Remembers a token that passed every check, unless the keys were swapped since its
    /// lookup returned `epoch`. When full, expired entries go first, then all.
    pub(super) fn remember(
        &self,
        token: &str,
        verified: &Arc<VerifiedToken>,
        epoch: u64,
        now: u64,
    ) {
        let mut inner = write(&self.inner);
        if inner.epoch != epoch {
            return;
        }
        if inner.verified.len() >= CACHE_CAPACITY {
            let leeway = self.leeway;
            inner
                .verified
                .retain(|_, (_, v)| v.exp.saturating_add(leeway) >= now);
            if inner.verified.len() >= CACHE_CAPACITY {
                inner.verified.clear();
            }
        }
        inner
            .verified
            .insert(key_of(token), (token.into(), verified.clone()));
    }

    /// Forgets every token (the key set was replaced) and starts a new epoch.
    pub(super) fn invalidate(&self) {
        let mut inner = write(&self.inner);
        inner.verified.clear();
        inner.epoch = inner.epoch.wrapping_add(1);
    }

    /// How many tokens are remembered.
    pub fn len(&self) -> usize {
        read(&self.inner).verified.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Bytes of a token's end in its key.
const KEY_BYTES: usize = 16;

/// A token's cache key: its last [`KEY_BYTES`] bytes (zero-padded in front when shorter).
/// Tokens sharing them share an entry; the whole token decides a hit.
fn key_of(token: &str) -> u128 {
    let bytes = token.as_bytes();
    let tail = &bytes[bytes.len().saturating_sub(KEY_BYTES)..];
    let mut key = [0u8; KEY_BYTES];
    key[KEY_BYTES - tail.len()..].copy_from_slice(tail);
    u128::from_le_bytes(key)
}

// A poisoned lock only means another thread panicked while holding it; the map is always
// left consistent (single inserts, retain, clear), so keep serving.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(exp: u64) -> Arc<VerifiedToken> {
        Arc::new(VerifiedToken {
            sub: "u1".into(),
            sid: None,
            jti: "j1".into(),
            iat: 0,
            exp,
        })
    }

    #[test]
    fn a_remembered_token_is_a_hit_until_it_expires_beyond_the_leeway() {
        let cache = VerifiedCache::new(30);
        let Lookup::Miss { epoch } = cache.lookup("h.p.s", 100) else {
            panic!("empty cache")
        };
        cache.remember("h.p.s", &verified(100), epoch, 100);
        assert_eq!(cache.lookup("h.p.s", 130), Lookup::Hit(verified(100)));
        assert_eq!(cache.lookup("h.p.s", 131), Lookup::Expired);
    }

    #[test]
    fn the_whole_token_must_match_not_only_its_signature() {
        let cache = VerifiedCache::new(0);
        cache.remember("h.p.s", &verified(100), 0, 0);
        assert_eq!(cache.lookup("h.other.s", 0), Lookup::Miss { epoch: 0 });
    }

    #[test]
    fn tokens_sharing_a_key_are_told_apart_by_the_whole_token() {
        let cache = VerifiedCache::new(0);
        let signature = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
        let first = format!("h.p1.{signature}");
        let second = format!("h.p2.{signature}");
        assert_eq!(key_of(&first), key_of(&second));
        assert_ne!(
            key_of("h.p.s"),
            key_of("xh.p.s"),
            "short tokens are padded, not cut"
        );
        cache.remember(&first, &verified(100), 0, 0);
        assert_eq!(cache.lookup(&first, 0), Lookup::Hit(verified(100)));
        assert_eq!(cache.lookup(&second, 0), Lookup::Miss { epoch: 0 });
        // The later one takes the entry; the earlier is verified afresh next time.
        cache.remember(&second, &verified(200), 0, 0);
        assert_eq!(cache.lookup(&second, 0), Lookup::Hit(verified(200)));
        assert_eq!(cache.lookup(&first, 0), Lookup::Miss { epoch: 0 });
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_verification_started_before_a_key_swap_is_not_remembered() {
        let cache = VerifiedCache::new(0);
        let Lookup::Miss { epoch } = cache.lookup("h.p.s", 0) else {
            panic!("empty cache")
        };
        cache.remember("h.p.old", &verified(100), epoch, 0);
        cache.invalidate();
        assert!(cache.is_empty(), "a swap forgets every token");
        // The verification that looked up under the old epoch finishes after the swap.
        cache.remember("h.p.s", &verified(100), epoch, 0);
        assert!(cache.is_empty(), "verified by a key that may be gone");
        let Lookup::Miss { epoch } = cache.lookup("h.p.s", 0) else {
            panic!("not remembered")
        };
        cache.remember("h.p.s", &verified(100), epoch, 0);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_full_cache_drops_expired_entries_first_then_everything() {
        let cache = VerifiedCache::new(0);
        for i in 0..CACHE_CAPACITY {
            let exp = if i % 2 == 0 { 10 } else { 1000 };
            cache.remember(&format!("h.p.{i}"), &verified(exp), 0, 0);
        }
        assert_eq!(cache.len(), CACHE_CAPACITY);
        cache.remember("h.p.new", &verified(1000), 0, 500);
        assert_eq!(cache.len(), CACHE_CAPACITY / 2 + 1, "expired ones went");
        for i in 0..CACHE_CAPACITY {
            cache.remember(&format!("h.q.{i}"), &verified(1000), 0, 500);
        }
        assert!(cache.len() <= CACHE_CAPACITY);
    }
}
