//! Brute-force regulation (SPEC §2 `[login]`, §4 "Login lockout"): failures are counted
//! per canonical username (`max_failures`) and, separately, per client address
//! (`max_failures_per_address`); past its limit within `window`, the key is locked for
//! `lockout` and attempts get 429 `too_many_attempts` — even with the right password. When
//! the lockout ends, the failures before it no longer count. A success resets the
//! username's count. `gatehouse user unlock` ends a username's lockout early.
//! Registrations are regulated per address with the same window and address limit.
//!
//! Threat model and choices:
//! - **Concurrent guesses.** Counting failures only after argon2 answers would let a
//!   burst of parallel attempts all pass the check before the first failure is recorded.
//!   So [`LoginThrottle::check`] counts every admitted attempt at once (a provisional
//!   failure); a success gives the attempt back. An attempt that dies on an internal error
//!   stays counted, which errs on the safe side.
//! - **Both keys are judged on every attempt.** An attempt refused because its address is
//!   locked still locks its username when that one is over its limit too (and the other
//!   way round). Otherwise the second key would keep its old failures past the first
//!   key's lockout and lock the right password out again the moment that one ended.
//! - **One person's typos must not lock out a whole NAT.** The per-address limit is its
//!   own (default 50, ten times the per-username one).
//! - **Case and spelling.** The username key is the canonical (lower-case) name; a name
//!   that is not a valid username has no username key and is regulated by address only.
//! - **Address rotation must not grow memory without limit.** Each map is split into
//!   [`SHARDS`] shards of at most [`SHARD_CAPACITY`] entries. A full shard first drops
//!   entries whose window and lockout are over, then the entry with the oldest activity.
//!   So each map holds at most 65,536 entries (≈ 6 MiB), and an eviction costs one scan
//!   of one shard (1,024 entries). An attacker who controls enough addresses to churn a
//!   shard can thereby shorten other addresses' lockouts — never a username's beyond the
//!   same bound, and never raise anyone's allowance past its limit per window while their
//!   entry lives.
//! - **Operators see lockouts.** Each lockout's start is logged once (WARN, with the
//!   username or address and until when) and counted in `gatehouse_lockouts_total`.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::future::ready;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::BoxFuture;

use super::login::LoginThrottle;
use crate::config::LoginSettings;
use crate::telemetry::metrics::{LockoutKind, Metrics};

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

/// Why [`Counters::admit`] refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Refused {
    /// How long the key stays locked.
    wait: Duration,
    /// This attempt started the lockout (log and count it once).
    started: bool,
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

    fn shard(&self, key: &K) -> std::sync::MutexGuard<'_, HashMap<K, Counter>> {
        let index = (self.hasher.hash_one(key) as usize) % SHARDS;
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits an attempt (counting it) or refuses it: the key is locked, or has reached
    /// `limit` within the window (then the lockout starts now).
    fn admit(
        &self,
        key: &K,
        limit: u32,
        settings: &LoginSettings,
        now: Instant,
    ) -> Result<(), Refused> {
        let mut shard = self.shard(key);
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
                return Err(Refused {
                    wait: until - now,
                    started: false,
                });
            }
            // The lockout is over: the failures before it no longer count.
            counter.locked_until = None;
            counter.attempts = 0;
            counter.window_start = now;
        }
        if now.duration_since(counter.window_start) >= settings.window {
            counter.attempts = 0;
            counter.window_start = now;
        }
        if counter.attempts >= limit {
            counter.locked_until = Some(now + settings.lockout);
            return Err(Refused {
                wait: settings.lockout,
                started: true,
            });
        }
        counter.attempts += 1;
        Ok(())
    }

    /// Gives back an admitted attempt (it succeeded, or another key refused it).
    fn give_back(&self, key: &K) {
        if let Some(counter) = self.shard(key).get_mut(key) {
            counter.attempts = counter.attempts.saturating_sub(1);
        }
    }

    /// Forgets a key's failures (a successful login resets the username) unless it is
    /// locked.
    fn reset(&self, key: &K) {
        let mut shard = self.shard(key);
        if shard.get(key).is_some_and(|c| c.locked_until.is_none()) {
            shard.remove(key);
        }
    }

    /// Forgets a key's failures and lockout; true when there was anything to forget.
    fn forget(&self, key: &K) -> bool {
        self.shard(key)
            .remove(key)
            .is_some_and(|c| c.attempts > 0 || c.locked_until.is_some())
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
    registrations: Counters<IpAddr>,
    metrics: Option<Arc<Metrics>>,
}

impl MemoryThrottle {
    pub fn new(settings: LoginSettings) -> Self {
        MemoryThrottle {
            settings,
            usernames: Counters::new(),
            addresses: Counters::new(),
            registrations: Counters::new(),
            metrics: None,
        }
    }

    /// Counts each lockout's start in `gatehouse_lockouts_total`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
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
        let settings = &self.settings;
        let address =
            self.addresses
                .admit(&client, settings.max_failures_per_address, settings, now);
        if let Err(refused) = address {
            self.started(refused, LockoutKind::Address, &client.to_string());
        }
        let username = username.map(|name| {
            let key = name.to_string();
            let admitted = self
                .usernames
                .admit(&key, settings.max_failures, settings, now);
            (key, admitted)
        });
        if let Some((name, Err(refused))) = &username {
            self.started(*refused, LockoutKind::Username, name);
        }
        match (address, username) {
            (Ok(()), None | Some((_, Ok(())))) => Ok(()),
            (Ok(()), Some((_, Err(refused)))) => {
                self.addresses.give_back(&client);
                Err(refused.wait)
            }
            (Err(refused), Some((name, Ok(())))) => {
                self.usernames.give_back(&name);
                Err(refused.wait)
            }
            (Err(refused), None) => Err(refused.wait),
            (Err(by_address), Some((_, Err(by_name)))) => Err(by_address.wait.max(by_name.wait)),
        }
    }

    /// Logs and counts a lockout that this attempt started.
    fn started(&self, refused: Refused, kind: LockoutKind, who: &str) {
        if !refused.started {
            return;
        }
        let until = humantime::format_rfc3339_seconds(SystemTime::now() + refused.wait);
        match kind {
            LockoutKind::Username => tracing::warn!(
                username = %who,
                until = %until,
                "login lockout started: too many failed logins for this username; `gatehouse user unlock` ends it early"
            ),
            LockoutKind::Address => tracing::warn!(
                address = %who,
                until = %until,
                "login lockout started: too many failed logins from this address (login.max_failures_per_address)"
            ),
        }
        if let Some(metrics) = &self.metrics {
            metrics.lockout_started(kind);
        }
    }

    fn check_registration_at(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let client = canonical_ip(client);
        let settings = &self.settings;
        self.registrations
            .admit(&client, settings.max_failures_per_address, settings, now)
            .map_err(|refused| {
                if refused.started {
                    tracing::warn!(
                        address = %client,
                        "registration limit reached for this address (login.max_failures_per_address per login.window)"
                    );
                }
                refused.wait
            })
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

// The counting itself is synchronous (in memory); the trait's futures are ready at once.
impl MemoryThrottle {
    /// [`LoginThrottle::record_failure`]: nothing to do, the attempt was counted when it
    /// was admitted.
    pub fn record_failure(&self, _username: Option<&str>, _client: IpAddr) {}

    /// [`LoginThrottle::record_success`]: gives the address its attempt back and resets
    /// the username's count.
    pub fn record_success(&self, username: Option<&str>, client: IpAddr) {
        self.addresses.give_back(&canonical_ip(client));
        if let Some(name) = username {
            self.usernames.reset(&name.to_string());
        }
    }

    /// [`LoginThrottle::unlock`].
    pub fn unlock(&self, username: &str) -> bool {
        self.usernames.forget(&username.to_string())
    }
}

impl LoginThrottle for MemoryThrottle {
    fn check<'a>(
        &'a self,
        username: Option<&'a str>,
        client: IpAddr,
    ) -> BoxFuture<'a, Result<(), Duration>> {
        Box::pin(ready(self.check_at(username, client, Instant::now())))
    }

    fn record_failure<'a>(
        &'a self,
        username: Option<&'a str>,
        client: IpAddr,
    ) -> BoxFuture<'a, ()> {
        MemoryThrottle::record_failure(self, username, client);
        Box::pin(ready(()))
    }

    fn record_success<'a>(
        &'a self,
        username: Option<&'a str>,
        client: IpAddr,
    ) -> BoxFuture<'a, ()> {
        MemoryThrottle::record_success(self, username, client);
        Box::pin(ready(()))
    }

    fn unlock<'a>(&'a self, username: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(ready(MemoryThrottle::unlock(self, username)))
    }

    fn check_registration(&self, client: IpAddr) -> BoxFuture<'_, Result<(), Duration>> {
        Box::pin(ready(self.check_registration_at(client, Instant::now())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LoginSettings {
        LoginSettings {
            max_failures: 3,
            max_failures_per_address: 3,
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

    #[test]
    fn after_a_lockout_the_earlier_failures_no_longer_count() {
        // The field-trial case: lockout shorter than the window, and the address tripping
        // first while the username was at its limit too. The username must not lock the
        // right password out again when the address's lockout ends.
        let settings = LoginSettings {
            max_failures: 3,
            max_failures_per_address: 3,
            window: Duration::from_secs(900),
            lockout: Duration::from_secs(2),
        };
        let throttle = MemoryThrottle::new(settings);
        let now = Instant::now();
        for _ in 0..3 {
            assert!(throttle.check_at(Some("erin"), ip(1), now).is_ok());
        }
        assert!(throttle.check_at(Some("erin"), ip(1), now).is_err());
        let after = now + Duration::from_secs(3);
        assert!(
            throttle.check_at(Some("erin"), ip(1), after).is_ok(),
            "the lockout is over: a fresh attempt is admitted"
        );
        throttle.record_success(Some("erin"), ip(1));
        // And a fresh budget: three more failures before the next lockout.
        for _ in 0..3 {
            assert!(throttle.check_at(Some("erin"), ip(1), after).is_ok());
        }
        assert!(throttle.check_at(Some("erin"), ip(1), after).is_err());
    }

    #[test]
    fn the_per_address_limit_is_separate_from_the_per_username_one() {
        let settings = LoginSettings {
            max_failures: 2,
            max_failures_per_address: 5,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(120),
        };
        let throttle = MemoryThrottle::new(settings);
        let now = Instant::now();
        // One person's typos lock their own username only...
        for _ in 0..2 {
            assert!(throttle.check_at(Some("typo"), ip(7), now).is_ok());
        }
        assert!(throttle.check_at(Some("typo"), ip(7), now).is_err());
        // ...not their neighbours behind the same address.
        assert!(throttle.check_at(Some("neighbour"), ip(7), now).is_ok());
        throttle.record_success(Some("neighbour"), ip(7));
        // The address is limited at its own, higher limit.
        for name in ["a", "b", "c"] {
            assert!(throttle.check_at(Some(name), ip(7), now).is_ok());
        }
        assert!(throttle.check_at(Some("d"), ip(7), now).is_err());
    }

    #[test]
    fn unlock_ends_a_username_lockout_early() {
        let throttle = MemoryThrottle::new(settings());
        let now = Instant::now();
        for _ in 0..3 {
            assert!(throttle.check_at(Some("frank"), ip(1), now).is_ok());
        }
        assert!(throttle.check_at(Some("frank"), ip(2), now).is_err());
        assert!(throttle.unlock("frank"));
        assert!(throttle.check_at(Some("frank"), ip(2), now).is_ok());
        assert!(!throttle.unlock("nobody"), "nothing to unlock");
    }

    #[test]
    fn a_lockout_start_is_counted_once() {
        let metrics = Arc::new(Metrics::new());
        let throttle = MemoryThrottle::new(settings()).with_metrics(metrics.clone());
        let now = Instant::now();
        for _ in 0..3 {
            assert!(throttle.check_at(Some("gina"), ip(1), now).is_ok());
        }
        for _ in 0..4 {
            assert!(throttle.check_at(Some("gina"), ip(2), now).is_err());
        }
        let text = metrics.render();
        assert!(
            text.contains("gatehouse_lockouts_total{kind=\"username\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("gatehouse_lockouts_total{kind=\"address\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn registrations_are_limited_per_address() {
        let throttle = MemoryThrottle::new(settings());
        let now = Instant::now();
        for _ in 0..3 {
            assert!(throttle.check_registration_at(ip(1), now).is_ok());
        }
        assert!(throttle.check_registration_at(ip(1), now).is_err());
        assert!(throttle.check_registration_at(ip(2), now).is_ok());
        // Logins from that address are not affected.
        assert!(throttle.check_at(Some("hal"), ip(1), now).is_ok());
    }
}
