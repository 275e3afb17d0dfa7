//! Brute-force regulation (SPEC §2 `[login]`, §4 "Login lockout"): failures are counted
//! per canonical username (`max_failures`) and, separately, per client address
//! (`max_failures_per_address`); past its limit within `window`, the key is locked for
//! `lockout` and attempts get 429 `too_many_attempts` — even with the right password. When
//! the lockout ends, the failures before it no longer count. A success resets the
//! username's count. `gatehouse user unlock` ends a username's lockout early.
//! Registrations are regulated per address with the same window and address limit.
//!
//! Two regulators obey one rulebook, [`crate::store::counters`] (pure functions over a
//! counter state with wall-clock milliseconds; read its docs for the rules: every
//! admitted attempt counts at once, both keys are judged on every attempt, the failures
//! before a lockout no longer count after it):
//! - [`MemoryThrottle`]: the counts of one process, in memory (the sled store: SPEC says
//!   lockouts live in the running gateway's memory).
//! - [`SharedThrottle`]: the counts in the store, shared by every replica (PostgreSQL,
//!   SPEC §8: "login failures counted on any replica count toward the same lockout").
//!   Each check is one store transaction over the (at most two) counter rows involved
//!   ([`Store::counters`]), before any password hashing. **Never fail open**: when the
//!   store cannot be reached the attempt is refused with 503 `unavailable`
//!   ([`AccountError::Unavailable`]), never admitted uncounted.
//!
//! [`for_store`] picks the one the store supports.
//!
//! Threat model and choices:
//! - **One person's typos must not lock out a whole NAT.** The per-address limit is its
//!   own (default 50, ten times the per-username one).
//! - **Case and spelling.** The username key is the canonical (lower-case) name; a name
//!   that is not a valid username has no username key and is regulated by address only.
//!   IPv4-mapped IPv6 counts as IPv4, and IPv6 clients count per /64.
//! - **Address rotation must not grow memory without limit.** Each in-memory map is split
//!   into [`SHARDS`] shards of at most [`SHARD_CAPACITY`] entries. A full shard first drops
//!   entries whose window and lockout are over, then the entry with the oldest activity.
//!   So each map holds at most 65,536 entries (≈ 6 MiB), and an eviction costs one scan
//!   of one shard (1,024 entries). An attacker who controls enough addresses to churn a
//!   shard can thereby shorten other addresses' lockouts — never a username's beyond the
//!   same bound, and never raise anyone's allowance past its limit per window while their
//!   entry lives. (Shared counters are rows in the database; finished rows are swept with
//!   the other expired records.)
//! - **Operators see lockouts.** Each lockout's start is logged once (WARN, with the
//!   username or address and until when) and counted in `gatehouse_lockouts_total`, by
//!   whichever process's attempt started it.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::future::ready;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;

use super::login::LoginThrottle;
use super::AccountError;
use crate::config::LoginSettings;
use crate::store::counters::{
    admit_login, canonical_ip, now_millis, Admission, CounterOp, CounterOutcome, CounterState,
    Millis,
};
use crate::store::{Store, StoreError};
use crate::telemetry::metrics::{LockoutKind, Metrics};

/// Shards per map.
pub const SHARDS: usize = 64;
/// Entries per shard.
pub const SHARD_CAPACITY: usize = 1024;

/// The regulator for this store: [`SharedThrottle`] when the store shares login counters
/// between processes ([`Store::shares_login_counters`]), else [`MemoryThrottle`].
pub fn for_store(
    store: &Arc<dyn Store>,
    settings: LoginSettings,
    metrics: Option<Arc<Metrics>>,
) -> Arc<dyn LoginThrottle> {
    if store.shares_login_counters() {
        Arc::new(SharedThrottle {
            store: store.clone(),
            settings,
            metrics,
        })
    } else {
        let throttle = MemoryThrottle::new(settings);
        Arc::new(match metrics {
            Some(metrics) => throttle.with_metrics(metrics),
            None => throttle,
        })
    }
}

/// 429 `too_many_attempts`, with the wait in whole seconds (at least one).
fn too_many(wait: Duration) -> AccountError {
    AccountError::TooManyAttempts {
        retry_after_secs: wait.as_secs().max(1),
    }
}

/// Logs and counts a login lockout that this attempt started.
fn login_lockout_started(metrics: Option<&Metrics>, kind: LockoutKind, who: &str, wait: Duration) {
    let until = humantime::format_rfc3339_seconds(SystemTime::now() + wait);
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
    if let Some(metrics) = metrics {
        metrics.lockout_started(kind);
    }
}

/// Logs a registration limit that this attempt reached.
fn registration_limit_reached(address: IpAddr) {
    tracing::warn!(
        address = %address,
        "registration limit reached for this address (login.max_failures_per_address per login.window)"
    );
}

/// One bounded, sharded map of counters.
struct Counters<K> {
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<K, CounterState>>>,
}

impl<K: Hash + Eq + Clone> Counters<K> {
    fn new() -> Self {
        Counters {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, key: &K) -> MutexGuard<'_, HashMap<K, CounterState>> {
        let index = (self.hasher.hash_one(key) as usize) % SHARDS;
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

/// The key's state in its (locked) shard, made when missing; a full shard evicts first.
fn entry<'s, K: Hash + Eq + Clone>(
    shard: &'s mut HashMap<K, CounterState>,
    key: &K,
    settings: &LoginSettings,
    now: Millis,
) -> &'s mut CounterState {
    if !shard.contains_key(key) && shard.len() >= SHARD_CAPACITY {
        evict(shard, settings, now);
    }
    shard
        .entry(key.clone())
        .or_insert_with(|| CounterState::new(now))
}

/// Drops finished entries; if none, the least recently seen one.
fn evict<K: Hash + Eq + Clone>(
    shard: &mut HashMap<K, CounterState>,
    settings: &LoginSettings,
    now: Millis,
) {
    shard.retain(|_, state| !state.finished(settings, now));
    if shard.len() >= SHARD_CAPACITY {
        if let Some(oldest) = shard
            .iter()
            .min_by_key(|(_, state)| state.last_seen)
            .map(|(k, _)| k.clone())
        {
            shard.remove(&oldest);
        }
    }
}

/// The in-memory regulator. Per process: each process keeps its own counts (replicas on
/// PostgreSQL use [`SharedThrottle`]).
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

    /// [`admit_login`] over this process's maps. The address's shard is locked before
    /// the username's, always in that order (and never the other way round), so two
    /// attempts cannot deadlock.
    fn check_at(
        &self,
        username: Option<&str>,
        client: IpAddr,
        now: Millis,
    ) -> Result<(), Duration> {
        let client = canonical_ip(client);
        let settings = &self.settings;
        let name = username.map(str::to_string);
        let admission = {
            let mut addresses = self.addresses.shard(&client);
            let address = entry(&mut addresses, &client, settings, now);
            let mut names = name.as_ref().map(|key| (self.usernames.shard(key), key));
            let name_state = names
                .as_mut()
                .map(|(shard, key)| entry(shard, *key, settings, now));
            admit_login(address, name_state, settings, now)
        };
        match admission {
            Admission::Admitted => Ok(()),
            Admission::Refused {
                wait,
                address_started,
                username_started,
            } => {
                let metrics = self.metrics.as_deref();
                if address_started {
                    login_lockout_started(metrics, LockoutKind::Address, &client.to_string(), wait);
                }
                if let (true, Some(name)) = (username_started, &name) {
                    login_lockout_started(metrics, LockoutKind::Username, name, wait);
                }
                Err(wait)
            }
        }
    }

    fn check_registration_at(&self, client: IpAddr, now: Millis) -> Result<(), Duration> {
        let client = canonical_ip(client);
        let settings = &self.settings;
        let mut shard = self.registrations.shard(&client);
        entry(&mut shard, &client, settings, now)
            .admit(settings.max_failures_per_address, settings, now)
            .map_err(|refused| {
                if refused.started {
                    registration_limit_reached(client);
                }
                refused.wait
            })
    }

    /// [`LoginThrottle::record_success`]: gives the address its attempt back and forgets
    /// the username's failures unless it is locked.
    pub fn record_success(&self, username: Option<&str>, client: IpAddr) {
        let client = canonical_ip(client);
        if let Some(state) = self.addresses.shard(&client).get_mut(&client) {
            state.give_back();
        }
        if let Some(name) = username {
            let key = name.to_string();
            let mut shard = self.usernames.shard(&key);
            if shard
                .get(&key)
                .is_some_and(|state| !state.survives_success())
            {
                shard.remove(&key);
            }
        }
    }

    /// [`LoginThrottle::unlock`].
    pub fn unlock(&self, username: &str) -> bool {
        let key = username.to_string();
        self.usernames
            .shard(&key)
            .remove(&key)
            .is_some_and(|state| state.holds_anything())
    }
}

// The counting itself is synchronous (in memory); the trait's futures are ready at once.
impl LoginThrottle for MemoryThrottle {
    fn check<'a>(
        &'a self,
        username: Option<&'a str>,
        client: IpAddr,
    ) -> BoxFuture<'a, Result<(), AccountError>> {
        Box::pin(ready(
            self.check_at(username, client, now_millis())
                .map_err(too_many),
        ))
    }

    fn record_success<'a>(
        &'a self,
        username: Option<&'a str>,
        client: IpAddr,
    ) -> BoxFuture<'a, ()> {
        MemoryThrottle::record_success(self, username, client);
        Box::pin(ready(()))
    }

    fn unlock<'a>(&'a self, username: &'a str) -> BoxFuture<'a, Result<bool, AccountError>> {
        Box::pin(ready(Ok(MemoryThrottle::unlock(self, username))))
    }

    fn check_registration(&self, client: IpAddr) -> BoxFuture<'_, Result<(), AccountError>> {
        Box::pin(ready(
            self.check_registration_at(client, now_millis())
                .map_err(too_many),
        ))
    }
}

/// The regulator whose counts live in the store, shared by every process on it (SPEC §8).
/// Every method is one [`Store::counters`] transaction; the lockout arithmetic is the
/// same rulebook as [`MemoryThrottle`]'s, applied by the store inside that transaction.
pub struct SharedThrottle {
    store: Arc<dyn Store>,
    settings: LoginSettings,
    metrics: Option<Arc<Metrics>>,
}

impl SharedThrottle {
    /// A regulator over `store`, which must share login counters
    /// ([`Store::shares_login_counters`]; [`for_store`] checks it).
    pub fn new(store: Arc<dyn Store>, settings: LoginSettings) -> Self {
        SharedThrottle {
            store,
            settings,
            metrics: None,
        }
    }

    /// Counts each lockout's start (by an attempt on this process) in
    /// `gatehouse_lockouts_total`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    async fn run(&self, op: CounterOp) -> Result<CounterOutcome, AccountError> {
        self.store
            .counters(op, self.settings, now_millis())
            .await
            .map_err(|err| match err {
                StoreError::Unavailable(detail) => AccountError::Unavailable(detail),
                other => AccountError::Internal(format!("login counters: {other}")),
            })
    }

    /// An admission's verdict: refused attempts log and count the lockouts they started.
    fn verdict(
        &self,
        outcome: CounterOutcome,
        username: Option<&str>,
        address: IpAddr,
    ) -> Result<(), AccountError> {
        match outcome {
            CounterOutcome::Admission(Admission::Admitted) => Ok(()),
            CounterOutcome::Admission(Admission::Refused {
                wait,
                address_started,
                username_started,
            }) => {
                let metrics = self.metrics.as_deref();
                let address = canonical_ip(address).to_string();
                if address_started {
                    login_lockout_started(metrics, LockoutKind::Address, &address, wait);
                }
                if let (true, Some(name)) = (username_started, username) {
                    login_lockout_started(metrics, LockoutKind::Username, name, wait);
                }
                Err(too_many(wait))
            }
            // Never fail open: an answer that is not a verdict admits nothing.
            other => Err(AccountError::Internal(format!(
                "login counters: unexpected answer {other:?} to an admission"
            ))),
        }
    }
}

impl LoginThrottle for SharedThrottle {
    fn check<'a>(
        &'a self,
        username: Option<&'a str>,
        client: IpAddr,
    ) -> BoxFuture<'a, Result<(), AccountError>> {
        Box::pin(async move {
            let op = CounterOp::AdmitLogin {
                username: username.map(str::to_string),
                address: client,
            };
            let outcome = self.run(op).await?;
            self.verdict(outcome, username, client)
        })
    }

    fn record_success<'a>(
        &'a self,
        username: Option<&'a str>,
        client: IpAddr,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let op = CounterOp::LoginSucceeded {
                username: username.map(str::to_string),
                address: client,
            };
            // The password was right; failing the login now would help nobody. The
            // attempt stays counted, which errs on the safe side.
            if let Err(err) = self.run(op).await {
                tracing::warn!(
                    error = %err,
                    "could not give back a successful login's attempt to the shared counters; it stays counted"
                );
            }
        })
    }

    fn unlock<'a>(&'a self, username: &'a str) -> BoxFuture<'a, Result<bool, AccountError>> {
        Box::pin(async move {
            let op = CounterOp::Unlock {
                username: username.to_string(),
            };
            match self.run(op).await? {
                CounterOutcome::Unlocked(forgotten) => Ok(forgotten),
                other => Err(AccountError::Internal(format!(
                    "login counters: unexpected answer {other:?} to an unlock"
                ))),
            }
        })
    }

    fn check_registration(&self, client: IpAddr) -> BoxFuture<'_, Result<(), AccountError>> {
        Box::pin(async move {
            let outcome = self
                .run(CounterOp::AdmitRegistration { address: client })
                .await?;
            match outcome {
                CounterOutcome::Admission(Admission::Admitted) => Ok(()),
                CounterOutcome::Admission(Admission::Refused {
                    wait,
                    address_started,
                    ..
                }) => {
                    if address_started {
                        registration_limit_reached(canonical_ip(client));
                    }
                    Err(too_many(wait))
                }
                other => Err(AccountError::Internal(format!(
                    "login counters: unexpected answer {other:?} to a registration"
                ))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Some wall-clock time, in milliseconds.
    const T0: Millis = 1_800_000_000_000;

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
        let now = T0;
        for _ in 0..3 {
            assert!(throttle.check_at(Some("alice"), ip(1), now).is_ok());
        }
        let wait = throttle.check_at(Some("alice"), ip(2), now).unwrap_err();
        assert_eq!(wait, Duration::from_secs(120));
        // Still locked later in the lockout, from any address.
        assert!(throttle
            .check_at(Some("alice"), ip(3), now + 100000)
            .is_err());
        // Over after it.
        assert!(throttle
            .check_at(Some("alice"), ip(4), now + 121000)
            .is_ok());
    }

    #[test]
    fn an_address_is_limited_across_usernames() {
        let throttle = MemoryThrottle::new(settings());
        let now = T0;
        for name in ["a", "b", "c"] {
            assert!(throttle.check_at(Some(name), ip(9), now).is_ok());
        }
        assert!(throttle.check_at(Some("d"), ip(9), now).is_err());
        assert!(throttle.check_at(Some("d"), ip(10), now).is_ok());
    }

    #[test]
    fn concurrent_attempts_count_before_they_fail() {
        let throttle = MemoryThrottle::new(settings());
        let now = T0;
        // Three admitted, none answered yet: the fourth is refused.
        for _ in 0..3 {
            assert!(throttle.check_at(Some("bob"), ip(1), now).is_ok());
        }
        assert!(throttle.check_at(Some("bob"), ip(2), now).is_err());
    }

    #[test]
    fn a_success_resets_the_username_and_returns_the_address_attempt() {
        let throttle = MemoryThrottle::new(settings());
        let now = T0;
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
        let now = T0;
        for _ in 0..3 {
            assert!(throttle.check_at(Some("dave"), ip(1), now).is_ok());
        }
        let later = now + 61_000;
        assert!(throttle.check_at(Some("dave"), ip(1), later).is_ok());
    }

    #[test]
    fn rotating_addresses_cannot_grow_memory_without_bound() {
        let throttle = MemoryThrottle::new(settings());
        let now = T0;
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
        let now = T0;
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
        let now = T0;
        for _ in 0..3 {
            assert!(throttle.check_at(Some("erin"), ip(1), now).is_ok());
        }
        assert!(throttle.check_at(Some("erin"), ip(1), now).is_err());
        let after = now + 3000;
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
        let now = T0;
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
        let now = T0;
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
        let now = T0;
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
        let now = T0;
        for _ in 0..3 {
            assert!(throttle.check_registration_at(ip(1), now).is_ok());
        }
        assert!(throttle.check_registration_at(ip(1), now).is_err());
        assert!(throttle.check_registration_at(ip(2), now).is_ok());
        // Logins from that address are not affected.
        assert!(throttle.check_at(Some("hal"), ip(1), now).is_ok());
    }

    /// A store that shares login counters the way a database backend does: rows by key,
    /// each operation applied under one lock (the transaction), the rest delegated to a
    /// real sled store. `reachable = false` answers every counter operation as a database
    /// that cannot be reached.
    struct RowStore {
        inner: crate::store::SledStore,
        rows: Mutex<crate::store::counters::Rows>,
        reachable: std::sync::atomic::AtomicBool,
        _dir: tempfile::TempDir,
    }

    impl RowStore {
        fn open() -> Arc<Self> {
            let dir = tempfile::tempdir().unwrap();
            Arc::new(RowStore {
                inner: crate::store::SledStore::open(dir.path()).unwrap(),
                rows: Mutex::new(Default::default()),
                reachable: true.into(),
                _dir: dir,
            })
        }
    }

    use crate::store::{
        BoxFuture as StoreFuture, Feed, Loaded, Purged, RefreshRecord, RevokedRecord, Seq,
        SessionRecord, StoreResult, Taken, UserChange, UserRecord, Written,
    };

    impl Store for RowStore {
        fn shares_login_counters(&self) -> bool {
            true
        }
        fn counters(
            &self,
            op: CounterOp,
            settings: LoginSettings,
            now: Millis,
        ) -> StoreFuture<'_, StoreResult<CounterOutcome>> {
            if !self.reachable.load(std::sync::atomic::Ordering::SeqCst) {
                return Box::pin(ready(Err(StoreError::Unavailable(
                    "connection refused".into(),
                ))));
            }
            let mut table = self.rows.lock().unwrap();
            let mut rows: crate::store::counters::Rows = op
                .keys()
                .into_iter()
                .map(|key| {
                    let state = table.get(&key).copied().flatten();
                    (key, state)
                })
                .collect();
            let outcome = op.apply(&mut rows, &settings, now);
            for (key, state) in rows {
                match state {
                    Some(state) => table.insert(key, Some(state)),
                    None => table.remove(&key),
                };
            }
            Box::pin(ready(Ok(outcome)))
        }
        fn find_user(&self, id: &str) -> StoreFuture<'_, StoreResult<Option<UserRecord>>> {
            self.inner.find_user(id)
        }
        fn find_user_by_name(
            &self,
            canonical: &str,
        ) -> StoreFuture<'_, StoreResult<Option<UserRecord>>> {
            self.inner.find_user_by_name(canonical)
        }
        fn list_users(&self) -> StoreFuture<'_, StoreResult<Vec<UserRecord>>> {
            self.inner.list_users()
        }
        fn insert_user(&self, user: &UserRecord) -> StoreFuture<'_, StoreResult<Written<()>>> {
            self.inner.insert_user(user)
        }
        fn insert_users(&self, users: &[UserRecord]) -> StoreFuture<'_, StoreResult<Written<()>>> {
            self.inner.insert_users(users)
        }
        fn update_user(
            &self,
            id: &str,
            change: UserChange,
        ) -> StoreFuture<'_, StoreResult<Written<Option<UserRecord>>>> {
            self.inner.update_user(id, change)
        }
        fn remove_user(
            &self,
            id: &str,
        ) -> StoreFuture<'_, StoreResult<Written<Option<UserRecord>>>> {
            self.inner.remove_user(id)
        }
        fn insert_session(
            &self,
            session: &SessionRecord,
            token: &RefreshRecord,
        ) -> StoreFuture<'_, StoreResult<Written<()>>> {
            self.inner.insert_session(session, token)
        }
        fn insert_browser_session(
            &self,
            session: &SessionRecord,
        ) -> StoreFuture<'_, StoreResult<Written<()>>> {
            self.inner.insert_browser_session(session)
        }
        fn touch_session(
            &self,
            user_id: &str,
            family: &str,
            last_seen: u64,
        ) -> StoreFuture<'_, StoreResult<Written<bool>>> {
            self.inner.touch_session(user_id, family, last_seen)
        }
        fn find_refresh(
            &self,
            token_hash: &[u8; 32],
        ) -> StoreFuture<'_, StoreResult<Option<RefreshRecord>>> {
            self.inner.find_refresh(token_hash)
        }
        fn take_refresh(
            &self,
            token_hash: &[u8; 32],
            now: u64,
            next_hash: &[u8; 32],
            next_expires_at: u64,
        ) -> StoreFuture<'_, StoreResult<Written<Taken>>> {
            self.inner
                .take_refresh(token_hash, now, next_hash, next_expires_at)
        }
        fn sessions_of(&self, user_id: &str) -> StoreFuture<'_, StoreResult<Vec<SessionRecord>>> {
            self.inner.sessions_of(user_id)
        }
        fn end_session(
            &self,
            user_id: &str,
            family: &str,
            now: u64,
        ) -> StoreFuture<'_, StoreResult<Written<Option<SessionRecord>>>> {
            self.inner.end_session(user_id, family, now)
        }
        fn remove_sessions_of(
            &self,
            user_id: &str,
        ) -> StoreFuture<'_, StoreResult<Written<usize>>> {
            self.inner.remove_sessions_of(user_id)
        }
        fn insert_revoked(
            &self,
            record: &RevokedRecord,
        ) -> StoreFuture<'_, StoreResult<Written<()>>> {
            self.inner.insert_revoked(record)
        }
        fn find_secret(&self) -> StoreFuture<'_, StoreResult<Option<Vec<u8>>>> {
            self.inner.find_secret()
        }
        fn insert_secret(&self, secret: &[u8]) -> StoreFuture<'_, StoreResult<Written<Vec<u8>>>> {
            self.inner.insert_secret(secret)
        }
        fn load(&self, now: u64, grace: u64) -> StoreFuture<'_, StoreResult<Loaded>> {
            self.inner.load(now, grace)
        }
        fn changes_since(&self, cursor: Seq, limit: usize) -> StoreFuture<'_, StoreResult<Feed>> {
            self.inner.changes_since(cursor, limit)
        }
        fn remove_expired(&self, now: u64, grace: u64) -> StoreFuture<'_, StoreResult<Purged>> {
            self.inner.remove_expired(now, grace)
        }
        fn export(&self) -> StoreFuture<'_, StoreResult<crate::store::Snapshot>> {
            self.inner.export()
        }
        fn import(
            &self,
            snapshot: crate::store::Snapshot,
        ) -> StoreFuture<'_, StoreResult<Written<()>>> {
            self.inner.import(snapshot)
        }
        fn flush(&self) -> StoreFuture<'_, StoreResult<()>> {
            self.inner.flush()
        }
    }

    /// Two regulators on one store (what replicas on one database are), the first one
    /// counting lockouts in `metrics`.
    struct Replicas {
        store: Arc<RowStore>,
        a: Arc<dyn LoginThrottle>,
        b: Arc<dyn LoginThrottle>,
        metrics: Arc<Metrics>,
    }

    fn two_replicas(settings: LoginSettings) -> Replicas {
        let store = RowStore::open();
        let dyn_store: Arc<dyn Store> = store.clone();
        let metrics = Arc::new(Metrics::new());
        Replicas {
            a: for_store(&dyn_store, settings, Some(metrics.clone())),
            b: for_store(&dyn_store, settings, None),
            store,
            metrics,
        }
    }

    #[tokio::test]
    async fn failures_on_two_replicas_add_up_to_one_lockout_and_unlock_ends_it_for_both() {
        let Replicas { a, b, metrics, .. } = two_replicas(settings());
        // Two failures on A, one on B: the limit of three is reached across both.
        assert!(a.check(Some("ivy"), ip(1)).await.is_ok());
        assert!(b.check(Some("ivy"), ip(2)).await.is_ok());
        assert!(a.check(Some("ivy"), ip(3)).await.is_ok());
        let refused = a.check(Some("ivy"), ip(4)).await;
        assert_eq!(
            refused,
            Err(AccountError::TooManyAttempts {
                retry_after_secs: 120
            })
        );
        assert!(matches!(
            b.check(Some("ivy"), ip(5)).await,
            Err(AccountError::TooManyAttempts { .. })
        ));
        assert!(
            metrics
                .render()
                .contains("gatehouse_lockouts_total{kind=\"username\"} 1"),
            "the replica whose attempt started the lockout counts it"
        );
        assert_eq!(b.unlock("ivy").await, Ok(true));
        assert_eq!(a.unlock("ivy").await, Ok(false), "nothing left to forget");
        assert!(a.check(Some("ivy"), ip(4)).await.is_ok());
        // A success on B forgets the username's failures for A too.
        b.record_success(Some("ivy"), ip(4)).await;
        for _ in 0..3 {
            assert!(a.check(Some("ivy"), ip(6)).await.is_ok());
        }
        assert!(a.check(Some("ivy"), ip(6)).await.is_err());
    }

    #[tokio::test]
    async fn an_unreachable_counter_store_admits_nothing() {
        let Replicas { store, a, .. } = two_replicas(settings());
        store
            .reachable
            .store(false, std::sync::atomic::Ordering::SeqCst);
        assert!(matches!(
            a.check(Some("jack"), ip(1)).await,
            Err(AccountError::Unavailable(_))
        ));
        assert!(matches!(
            a.check_registration(ip(1)).await,
            Err(AccountError::Unavailable(_))
        ));
        assert!(matches!(
            a.unlock("jack").await,
            Err(AccountError::Unavailable(_))
        ));
        // A success that cannot be recorded is only logged.
        a.record_success(Some("jack"), ip(1)).await;
    }

    #[tokio::test]
    async fn registrations_are_limited_per_address_across_replicas() {
        let Replicas { a, b, .. } = two_replicas(settings());
        assert!(a.check_registration(ip(1)).await.is_ok());
        assert!(b.check_registration(ip(1)).await.is_ok());
        assert!(a.check_registration(ip(1)).await.is_ok());
        assert!(matches!(
            b.check_registration(ip(1)).await,
            Err(AccountError::TooManyAttempts { .. })
        ));
        assert!(b.check_registration(ip(2)).await.is_ok());
    }

    #[test]
    fn a_store_without_shared_counters_gets_the_memory_throttle() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(crate::store::SledStore::open(dir.path()).unwrap());
        assert!(!store.shares_login_counters());
        let throttle = for_store(&store, settings(), None);
        // The memory throttle answers without a runtime (its futures are ready at once).
        let first = futures_util::FutureExt::now_or_never(throttle.check(Some("kim"), ip(1)));
        assert_eq!(first, Some(Ok(())));
    }

    proptest::proptest! {
        /// One rulebook: any sequence of attempts, successes and unlocks gets the same
        /// answers from the in-memory regulator and from shared counters.
        #[test]
        fn memory_and_shared_counters_answer_alike(
            steps in proptest::collection::vec((0u8..4, 0u8..3, 0u8..3, 0u64..40_000), 1..80)
        ) {
            let settings = LoginSettings {
                max_failures: 3,
                max_failures_per_address: 4,
                window: Duration::from_secs(60),
                lockout: Duration::from_secs(30),
            };
            let memory = MemoryThrottle::new(settings);
            let store = RowStore::open();
            let names = ["lee", "max", "ned"];
            let mut now = T0;
            for (action, name, address, advance) in steps {
                now += advance;
                let name = names[usize::from(name)];
                let address = ip(address);
                let rows_op = |op: CounterOp| {
                    futures_util::FutureExt::now_or_never(store.counters(op, settings, now))
                        .unwrap()
                        .unwrap()
                };
                match action {
                    0 | 1 => {
                        let username = (action == 0).then_some(name);
                        let by_memory = memory.check_at(username, address, now);
                        let by_rows = rows_op(CounterOp::AdmitLogin {
                            username: username.map(str::to_string),
                            address,
                        });
                        let by_rows = match by_rows {
                            CounterOutcome::Admission(Admission::Admitted) => Ok(()),
                            CounterOutcome::Admission(Admission::Refused { wait, .. }) => Err(wait),
                            other => panic!("{other:?}"),
                        };
                        proptest::prop_assert_eq!(by_memory, by_rows);
                    }
                    2 => {
                        memory.record_success(Some(name), address);
                        rows_op(CounterOp::LoginSucceeded {
                            username: Some(name.to_string()),
                            address,
                        });
                    }
                    _ => {
                        let by_memory = memory.unlock(name);
                        let by_rows = rows_op(CounterOp::Unlock {
                            username: name.to_string(),
                        });
                        proptest::prop_assert_eq!(CounterOutcome::Unlocked(by_memory), by_rows);
                    }
                }
            }
        }
    }
}
