//! Brute-force regulation (SPEC §2 `[login]`): failures are counted per canonical username
//! and, separately, per client address; past `max_failures` within `window`, the key is
//! locked for `lockout` and attempts get 429 `too_many_attempts` — even with the right
//! password. A success resets the username's count.
//!
//! Threat model and choices:
//! - **Concurrent guesses.** Counting failures only after argon2 answers would let a
//!   burst of parallel attempts all pass the check before the first failure is recorded.
//!   So [`LoginThrottle::check`] counts every admitted attempt at once (a provisional
//!   failure); a success gives the attempt back. An attempt that dies on an internal error
//!   stays counted, which errs on the safe side.
//! - **Case and spelling.** The username key is the canonical (lower-case) name; a name
//!   that is not a valid username has no username key and is regulated by address only.
//! - **Address rotation must not grow memory without limit.** Each map is split into
//!   [`SHARDS`] shards of at most [`SHARD_CAPACITY`] entries. A full shard first drops
//!   entries whose window and lockout are over, then the entry with the oldest activity.
//!   So each of the two maps holds at most 65,536 entries (≈ 6 MiB), and an eviction costs
//!   one scan of one shard (1,024 entries). An attacker who controls enough addresses to
//!   churn a shard can thereby shorten other addresses' lockouts — never a username's
//!   beyond the same bound, and never raise anyone's allowance past `max_failures` per
//!   window while their entry lives.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::login::LoginThrottle;
use crate::config::LoginSettings;

/// Shards per map.
pub const SHARDS: usize = 64;
/// Entries per shard.
pub const SHARD_CAPACITY: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct Counter {
    window_start: Instant,
    /// Failed or still-running attempts in the current window.
    attempts: u32,
    locked_until: Option<Instant>,
    last_seen: Instant,
}

/// One bounded, sharded map of counters.
struct Counters<K> {
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<K, Counter>>>,
}

impl<K: Hash + Eq + Clone> Counters<K> {
    fn new() -> Self {
        Counters {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, key: &K) -> &Mutex<HashMap<K, Counter>> {
        let index = (self.hasher.hash_one(key) as usize) % SHARDS;
        &self.shards[index]
    }

    /// Admits an attempt (counting it) or says how long the key stays locked.
    fn admit(&self, key: &K, settings: &LoginSettings, now: Instant) -> Result<(), Duration> {
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        if !shard.contains_key(key) && shard.len() >= SHARD_CAPACITY {
            evict(&mut shard, settings, now);
        }
        let counter = shard.entry(key.clone()).or_insert(Counter {
            window_start: now,
            attempts: 0,
            locked_until: None,
            last_seen: now,
        });
        counter.last_seen = now;
        if let Some(until) = counter.locked_until {
            if until > now {
                return Err(until - now);
            }
            counter.locked_until = None;
            counter.attempts = 0;
            counter.window_start = now;
        }
        if now.duration_since(counter.window_start) >= settings.window {
            counter.attempts = 0;
            counter.window_start = now;
        }
        if counter.attempts >= settings.max_failures {
            counter.locked_until = Some(now + settings.lockout);
            return Err(settings.lockout);
        }
        counter.attempts += 1;
        Ok(())
    }

    /// Gives back an admitted attempt that succeeded.
    fn give_back(&self, key: &K) {
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(counter) = shard.get_mut(key) {
            counter.attempts = counter.attempts.saturating_sub(1);
        }
    }

    /// Forgets a key's failures (a successful login resets the username).
    fn reset(&self, key: &K) {
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        if shard.get(key).is_some_and(|c| c.locked_until.is_none()) {
            shard.remove(key);
        }
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

/// Drops finished entries; if none, the least recently seen one.
fn evict<K: Hash + Eq + Clone>(
    shard: &mut HashMap<K, Counter>,
    settings: &LoginSettings,
    now: Instant,
) {
    shard.retain(|_, c| {
        let locked = c.locked_until.is_some_and(|until| until > now);
        let in_window = now.duration_since(c.window_start) < settings.window;
        locked || in_window
    });
    if shard.len() >= SHARD_CAPACITY {
        if let Some(oldest) = shard
            .iter()
            .min_by_key(|(_, c)| c.last_seen)
            .map(|(k, _)| k.clone())
        {
            shard.remove(&oldest);
        }
    }
}

/// The in-memory regulator. Per process: replicas each keep their own counts (a shared
/// store-backed one can implement the same trait).
pub struct MemoryThrottle {
    settings: LoginSettings,
    usernames: Counters<String>,
    addresses: Counters<IpAddr>,
}

impl MemoryThrottle {
    pub fn new(settings: LoginSettings) -> Self {
        MemoryThrottle {
            settings,
            usernames: Counters::new(),
            addresses: Counters::new(),
        }
    }

    /// Entries held (username, address), for tests of the memory bound.
    pub fn sizes(&self) -> (usize, usize) {
        (self.usernames.len(), self.addresses.len())
    }

    fn check_at(
        &self,
        username: Option<&str>,
        client: IpAddr,
        now: Instant,
    ) -> Result<(), Duration> {
        let client = canonical_ip(client);
        self.addresses.admit(&client, &self.settings, now)?;
        if let Some(name) = username {
            if let Err(wait) = self.usernames.admit(&name.to_string(), &self.settings, now) {
                self.addresses.give_back(&client);
                return Err(wait);
            }
        }
        Ok(())
    }
}

/// IPv4-mapped IPv6 counts as its IPv4 address; an IPv6 client counts per /64, the
/// smallest block one subscriber is usually given (so rotating within it does not help).
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
        v4 => v4,
    }
}

impl LoginThrottle for MemoryThrottle {
    fn check(&self, username: Option<&str>, client: IpAddr) -> Result<(), Duration> {
        self.check_at(username, client, Instant::now())
    }

    fn record_failure(&self, _username: Option<&str>, _client: IpAddr) {
        // Already counted when the attempt was admitted.
    }

    fn record_success(&self, username: Option<&str>, client: IpAddr) {
        self.addresses.give_back(&canonical_ip(client));
        if let Some(name) = username {
            self.usernames.reset(&name.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LoginSettings {
        LoginSettings {
            max_failures: 3,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(120),
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn the_attempt_after_max_failures_is_locked_out_even_when_right() {
        let throttle = MemoryThrottle::new(settings());
        let now = Instant::now();
        for _ in 0..3 {
            assert!(throttle.check_at(Some("alice"), ip(1), now).is_ok());
            throttle.record_failure(Some("alice"), ip(1));
        }
        let wait = throttle.check_at(Some("alice"), ip(2), now).unwrap_err();
        assert_eq!(wait, Duration::from_secs(120));
        // Still locked later in the lockout, from any address.
        assert!(throttle
            .check_at(Some("alice"), ip(3), now + Duration::from_secs(100))
            .is_err());
        // Over after it.
        assert!(throttle
            .check_at(Some("alice"), ip(4), now + Duration::from_secs(121))
            .is_ok());
    }

    #[test]
    fn an_address_is_limited_across_usernames() {
        let throttle = MemoryThrottle::new(settings());
        let now = Instant::now();
        for name in ["a", "b", "c"] {
            assert!(throttle.check_at(Some(name), ip(9), now).is_ok());
        }
        assert!(throttle.check_at(Some("d"), ip(9), now).is_err());
        assert!(throttle.check_at(Some("d"), ip(10), now).is_ok());
    }

    #[test]
    fn concurrent_attempts_count_before_they_fail() {
        let throttle = MemoryThrottle::new(settings());
        let now = Instant::now();
        // Three admitted, none answered yet: the fourth is refused.
        for _ in 0..3 {
            assert!(throttle.check_at(Some("bob"), ip(1), now).is_ok());
        }
        assert!(throttle.check_at(Some("bob"), ip(2), now).is_err());
    }

    #[test]
    fn a_success_resets_the_username_and_returns_the_address_attempt() {
        let throttle = MemoryThrottle::new(settings());
        let now = Instant::now();
        for _ in 0..2 {
            assert!(throttle.check_at(Some("carol"), ip(1), now).is_ok());
        }
        assert!(throttle.check_at(Some("carol"), ip(1), now).is_ok());
        throttle.record_success(Some("carol"), ip(1));
        assert!(
            throttle.check_at(Some("carol"), ip(5), now).is_ok(),
            "username reset"
        );
    }

    #[test]
    fn the_window_expires() {
        let throttle = MemoryThrottle::new(settings());
        let now = Instant::now();
        for _ in 0..3 {
            assert!(throttle.check_at(Some("dave"), ip(1), now).is_ok());
        }
        let later = now + Duration::from_secs(61);
        assert!(throttle.check_at(Some("dave"), ip(1), later).is_ok());
    }

    #[test]
    fn rotating_addresses_cannot_grow_memory_without_bound() {
        let throttle = MemoryThrottle::new(settings());
        let now = Instant::now();
        for i in 0..200_000u32 {
            let address = IpAddr::from(i.to_be_bytes());
            let _ = throttle.check_at(None, address, now);
        }
        let (_, addresses) = throttle.sizes();
        assert!(addresses <= SHARDS * SHARD_CAPACITY, "{addresses}");
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        let throttle = MemoryThrottle::new(settings());
        let now = Instant::now();
        for i in 0..3u16 {
            let address = IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, i]);
            assert!(throttle.check_at(None, address, now).is_ok());
        }
        let same_64 = IpAddr::from([0x2001, 0xdb8, 0, 1, 0xffff, 0, 0, 9]);
        assert!(throttle.check_at(None, same_64, now).is_err());
    }
}
