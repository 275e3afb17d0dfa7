//! The login-lockout rulebook (SPEC §2 `[login]`, §4 "Login lockout") as pure functions
//! over a small serializable counter state with wall-clock milliseconds, so that the
//! in-memory throttle of one process (`accounts::throttle::MemoryThrottle`) and counters
//! shared by replicas through the store (SPEC §8: "login failures counted on any replica
//! count toward the same lockout") obey one set of rules. It lives in the store layer
//! because a backend that shares the counters must apply the rules *inside* its
//! transaction (read the rows for update, decide, write back): a read-decide-write split
//! over the network would let parallel guesses on several replicas all pass.
//!
//! The rules:
//! - **Every admitted attempt counts at once** (a provisional failure); a success gives it
//!   back. Counting only after argon2 answered would let a burst of parallel attempts all
//!   pass the check before the first failure is recorded.
//! - **A key at its limit within `window` locks** for `lockout`, and the attempt that found
//!   it there starts the lockout (reported once, so it is logged and counted once).
//! - **When the lockout ends the earlier failures no longer count**: a fresh window.
//! - **Both keys are judged on every attempt** ([`admit_login`]): an attempt refused
//!   because its address is locked still locks its username when that one is over its
//!   limit too (and the other way round); otherwise the second key would keep its old
//!   failures past the first key's lockout and lock the right password out again the
//!   moment that one ended. The key that admitted an attempt another key refused gets it
//!   back.
//! - **A success** returns the address's attempt and forgets the username's failures,
//!   unless the username is locked (a success racing a lockout does not end it).
//! - **Unlock** (`gatehouse user unlock`) forgets a username's failures and lockout.
//!
//! Times are wall-clock milliseconds since the Unix epoch, so that replicas agree on them;
//! a clock that steps back is treated as no time passing (never as a huge elapsed time).
//!
//! [`CounterOp`] names one login-throttle operation with the (at most two) counter rows it
//! involves ([`CounterOp::keys`]); [`CounterOp::apply`] performs it on those rows'
//! states. A backend reads the rows for update, calls `apply`, writes back or deletes,
//! in one transaction (`Store::counters`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::LoginSettings;

/// Wall-clock milliseconds since the Unix epoch.
pub type Millis = u64;

/// Now, in [`Millis`].
pub fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn millis(duration: Duration) -> Millis {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The counts of one key (a username, an address, an address's registrations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterState {
    /// When the current window began.
    pub window_start: Millis,
    /// Failed or still-running attempts in the current window.
    pub attempts: u32,
    /// Locked until then, when set.
    pub locked_until: Option<Millis>,
    /// The last attempt (the in-memory map evicts the least recently seen).
    pub last_seen: Millis,
}

/// Why an attempt was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// How long the key stays locked.
    pub wait: Duration,
    /// This attempt started the lockout (log and count it once).
    pub started: bool,
}

impl CounterState {
    /// A key seen for the first time.
    pub fn new(now: Millis) -> Self {
        CounterState {
            window_start: now,
            attempts: 0,
            locked_until: None,
            last_seen: now,
        }
    }

    /// Admits an attempt (counting it) or refuses it: the key is locked, or has reached
    /// `limit` within the window (then the lockout starts now).
    pub fn admit(
        &mut self,
        limit: u32,
        settings: &LoginSettings,
        now: Millis,
    ) -> Result<(), Refused> {
        self.last_seen = self.last_seen.max(now);
        if let Some(until) = self.locked_until {
            if until > now {
                return Err(Refused {
                    wait: Duration::from_millis(until - now),
                    started: false,
                });
            }
            // The lockout is over: the failures before it no longer count.
            self.locked_until = None;
            self.attempts = 0;
            self.window_start = now;
        }
        if now.saturating_sub(self.window_start) >= millis(settings.window) {
            self.attempts = 0;
            self.window_start = now;
        }
        if self.attempts >= limit {
            self.locked_until = Some(now.saturating_add(millis(settings.lockout)));
            return Err(Refused {
                wait: settings.lockout,
                started: true,
            });
        }
        self.attempts += 1;
        Ok(())
    }

    /// Gives back an admitted attempt (it succeeded, or another key refused it).
    pub fn give_back(&mut self) {
        self.attempts = self.attempts.saturating_sub(1);
    }

    /// After a successful login, for the username: whether the state must be kept (it
    /// is locked); otherwise it is forgotten.
    pub fn survives_success(&self) -> bool {
        self.locked_until.is_some()
    }

    /// Whether forgetting this state forgets anything (failures or a lockout).
    pub fn holds_anything(&self) -> bool {
        self.attempts > 0 || self.locked_until.is_some()
    }

    /// After this time the state counts for nothing (its window and lockout are over)
    /// and may be dropped.
    pub fn expires_at(&self, settings: &LoginSettings) -> Millis {
        let window_end = self.window_start.saturating_add(millis(settings.window));
        window_end.max(self.locked_until.unwrap_or(0))
    }

    /// Whether the state counts for nothing any more at `now`.
    pub fn finished(&self, settings: &LoginSettings, now: Millis) -> bool {
        self.expires_at(settings) <= now
    }
}

/// The outcome of one login admission ([`admit_login`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The attempt is counted against both keys; go on and verify the password.
    Admitted,
    /// The attempt is refused (429 `too_many_attempts`) for `wait`; the flags say which
    /// lockout this very attempt started (log and count each once).
    Refused {
        wait: Duration,
        address_started: bool,
        username_started: bool,
    },
}

/// Judges a login attempt against both keys (see the module docs): `address` always,
/// `username` when the presented name is a valid username.
pub fn admit_login(
    address: &mut CounterState,
    username: Option<&mut CounterState>,
    settings: &LoginSettings,
    now: Millis,
) -> Admission {
    let by_address = address.admit(settings.max_failures_per_address, settings, now);
    let (by_name, username) = match username {
        Some(state) => (
            Some(state.admit(settings.max_failures, settings, now)),
            Some(state),
        ),
        None => (None, None),
    };
    let refused = |wait, address: Option<Refused>, name: Option<Refused>| Admission::Refused {
        wait,
        address_started: address.is_some_and(|r| r.started),
        username_started: name.is_some_and(|r| r.started),
    };
    match (by_address, by_name) {
        (Ok(()), None | Some(Ok(()))) => Admission::Admitted,
        (Ok(()), Some(Err(by_name))) => {
            address.give_back();
            refused(by_name.wait, None, Some(by_name))
        }
        (Err(by_address), Some(Ok(()))) => {
            if let Some(state) = username {
                state.give_back();
            }
            refused(by_address.wait, Some(by_address), None)
        }
        (Err(by_address), None) => refused(by_address.wait, Some(by_address), None),
        (Err(by_address), Some(Err(by_name))) => refused(
            by_address.wait.max(by_name.wait),
            Some(by_address),
            Some(by_name),
        ),
    }
}

/// IPv4-mapped IPv6 counts as its IPv4 address; an IPv6 client counts per /64, the
/// smallest block one subscriber is usually given (so rotating within it does not help).
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
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

/// One login-throttle operation, as a backend that shares counters performs it
/// atomically. `username` is the canonical (lower-case) name; addresses are canonicalised
/// here ([`canonical_ip`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CounterOp {
    /// Before any password work: admit the attempt or refuse it ([`admit_login`]).
    AdmitLogin {
        username: Option<String>,
        address: IpAddr,
    },
    /// After a correct password: the address gets its attempt back, the username's
    /// failures are forgotten unless it is locked.
    LoginSucceeded {
        username: Option<String>,
        address: IpAddr,
    },
    /// `gatehouse user unlock`: forget the username's failures and lockout.
    Unlock { username: String },
    /// Before a self-registration: counted per address with the address limit.
    AdmitRegistration { address: IpAddr },
}

/// What a [`CounterOp`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterOutcome {
    /// [`CounterOp::AdmitLogin`]: the verdict. [`CounterOp::AdmitRegistration`]: the
    /// verdict with `address_started` for the registration lockout.
    Admission(Admission),
    /// [`CounterOp::Unlock`]: whether there was anything to forget.
    Unlocked(bool),
    /// [`CounterOp::LoginSucceeded`].
    Done,
}

/// The row key of a username's counter.
pub fn username_key(canonical: &str) -> String {
    format!("username:{canonical}")
}

/// The row key of an address's login counter.
pub fn address_key(address: IpAddr) -> String {
    format!("address:{}", canonical_ip(address))
}

/// The row key of an address's registration counter.
pub fn registration_key(address: IpAddr) -> String {
    format!("registration:{}", canonical_ip(address))
}

/// The states of the rows one operation involves, by key; `None`: no row. After
/// [`CounterOp::apply`], `None` means delete the row.
pub type Rows = BTreeMap<String, Option<CounterState>>;

impl CounterOp {
    /// The row keys this operation reads and writes (one or two), in a fixed order
    /// (sorted), so that concurrent transactions lock them in the same order.
    pub fn keys(&self) -> Vec<String> {
        let mut keys = match self {
            CounterOp::AdmitLogin { username, address }
            | CounterOp::LoginSucceeded { username, address } => {
                let mut keys = vec![address_key(*address)];
                keys.extend(username.as_deref().map(username_key));
                keys
            }
            CounterOp::Unlock { username } => vec![username_key(username)],
            CounterOp::AdmitRegistration { address } => vec![registration_key(*address)],
        };
        keys.sort();
        keys
    }

    /// Whether the operation creates rows that do not exist yet (an admission counts
    /// the attempt); the others only change or delete existing rows.
    pub fn creates_rows(&self) -> bool {
        matches!(
            self,
            CounterOp::AdmitLogin { .. } | CounterOp::AdmitRegistration { .. }
        )
    }

    /// Performs the operation on `rows` (which must hold an entry, possibly `None`, for
    /// every key of [`Self::keys`]; a missing entry counts as `None`), leaving in it what
    /// to write back.
    pub fn apply(&self, rows: &mut Rows, settings: &LoginSettings, now: Millis) -> CounterOutcome {
        match self {
            CounterOp::AdmitLogin { username, address } => {
                let address_key = address_key(*address);
                let mut address = rows
                    .get(&address_key)
                    .copied()
                    .flatten()
                    .unwrap_or_else(|| CounterState::new(now));
                let name_key = username.as_deref().map(username_key);
                let mut name = name_key.as_ref().map(|key| {
                    rows.get(key)
                        .copied()
                        .flatten()
                        .unwrap_or_else(|| CounterState::new(now))
                });
                let admission = admit_login(&mut address, name.as_mut(), settings, now);
                rows.insert(address_key, Some(address));
                if let Some(key) = name_key {
                    rows.insert(key, name);
                }
                CounterOutcome::Admission(admission)
            }
            CounterOp::LoginSucceeded { username, address } => {
                if let Some(Some(state)) = rows.get_mut(&address_key(*address)) {
                    state.give_back();
                }
                if let Some(key) = username.as_deref().map(username_key) {
                    if let Some(entry) = rows.get_mut(&key) {
                        if !entry.is_some_and(|state| state.survives_success()) {
                            *entry = None;
                        }
                    }
                }
                CounterOutcome::Done
            }
            CounterOp::Unlock { username } => {
                let forgotten = rows
                    .get_mut(&username_key(username))
                    .and_then(Option::take)
                    .is_some_and(|state| state.holds_anything());
                CounterOutcome::Unlocked(forgotten)
            }
            CounterOp::AdmitRegistration { address } => {
                let key = registration_key(*address);
                let mut state = rows
                    .get(&key)
                    .copied()
                    .flatten()
                    .unwrap_or_else(|| CounterState::new(now));
                let verdict = state.admit(settings.max_failures_per_address, settings, now);
                rows.insert(key, Some(state));
                CounterOutcome::Admission(match verdict {
                    Ok(()) => Admission::Admitted,
                    Err(refused) => Admission::Refused {
                        wait: refused.wait,
                        address_started: refused.started,
                        username_started: false,
                    },
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LoginSettings {
        LoginSettings {
            max_failures: 3,
            max_failures_per_address: 5,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(120),
        }
    }

    const T0: Millis = 1_800_000_000_000;

    fn admit(rows: &mut Rows, name: &str, last: u8, now: Millis) -> Admission {
        let op = CounterOp::AdmitLogin {
            username: Some(name.into()),
            address: IpAddr::from([192, 0, 2, last]),
        };
        match op.apply(rows, &settings(), now) {
            CounterOutcome::Admission(admission) => admission,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_operation_on_rows_locks_after_the_limit_and_reports_the_start_once() {
        let mut rows = Rows::new();
        for _ in 0..3 {
            assert_eq!(admit(&mut rows, "alice", 1, T0), Admission::Admitted);
        }
        assert_eq!(
            admit(&mut rows, "alice", 1, T0),
            Admission::Refused {
                wait: Duration::from_secs(120),
                address_started: false,
                username_started: true,
            }
        );
        assert_eq!(
            admit(&mut rows, "alice", 2, T0 + 1_000),
            Admission::Refused {
                wait: Duration::from_secs(119),
                address_started: false,
                username_started: false,
            }
        );
        // The refused attempts were given back to their addresses.
        assert_eq!(
            rows[&address_key(IpAddr::from([192, 0, 2, 1]))].map(|s| s.attempts),
            Some(3)
        );
        assert_eq!(
            rows[&address_key(IpAddr::from([192, 0, 2, 2]))].map(|s| s.attempts),
            Some(0)
        );
    }

    #[test]
    fn a_success_forgets_an_unlocked_username_and_unlock_reports_what_it_forgot() {
        let mut rows = Rows::new();
        assert_eq!(admit(&mut rows, "bob", 1, T0), Admission::Admitted);
        let success = CounterOp::LoginSucceeded {
            username: Some("bob".into()),
            address: IpAddr::from([192, 0, 2, 1]),
        };
        assert_eq!(
            success.apply(&mut rows, &settings(), T0),
            CounterOutcome::Done
        );
        assert_eq!(
            rows[&username_key("bob")],
            None,
            "forgotten: delete the row"
        );
        assert_eq!(
            rows[&address_key(IpAddr::from([192, 0, 2, 1]))].map(|s| s.attempts),
            Some(0)
        );
        let unlock = CounterOp::Unlock {
            username: "bob".into(),
        };
        assert_eq!(
            unlock.apply(&mut rows, &settings(), T0),
            CounterOutcome::Unlocked(false)
        );
        for _ in 0..4 {
            admit(&mut rows, "bob", 1, T0);
        }
        assert_eq!(
            unlock.apply(&mut rows, &settings(), T0),
            CounterOutcome::Unlocked(true)
        );
        assert_eq!(admit(&mut rows, "bob", 1, T0), Admission::Admitted);
    }

    #[test]
    fn keys_are_sorted_and_canonical() {
        let op = CounterOp::AdmitLogin {
            username: Some("zed".into()),
            address: "::ffff:192.0.2.7".parse().unwrap_or(IpAddr::from([0; 4])),
        };
        assert_eq!(op.keys(), vec!["address:192.0.2.7", "username:zed"]);
        let op = CounterOp::AdmitRegistration {
            address: "2001:db8:0:1:aaaa::9"
                .parse()
                .unwrap_or(IpAddr::from([0; 4])),
        };
        assert_eq!(op.keys(), vec!["registration:2001:db8:0:1::"]);
    }

    #[test]
    fn a_clock_stepping_back_is_no_time_passing() {
        let mut state = CounterState::new(T0);
        let settings = settings();
        for _ in 0..3 {
            assert!(state.admit(3, &settings, T0).is_ok());
        }
        assert!(state.admit(3, &settings, T0 - 10_000).is_err());
        assert_eq!(state.last_seen, T0);
    }

    #[test]
    fn a_state_expires_after_its_window_and_lockout() {
        let settings = settings();
        let mut state = CounterState::new(T0);
        assert!(state.admit(1, &settings, T0).is_ok());
        assert_eq!(state.expires_at(&settings), T0 + 60_000);
        assert!(state.admit(1, &settings, T0).is_err());
        assert_eq!(state.expires_at(&settings), T0 + 120_000);
        assert!(!state.finished(&settings, T0 + 119_999));
        assert!(state.finished(&settings, T0 + 120_000));
    }
}
