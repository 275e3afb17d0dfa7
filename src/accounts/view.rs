//! The in-process view of what every request checks (SPEC §4 validation): for each user
//! id (service clients included: principals of kind client) its name, current roles,
//! enabled flag, last password change and generation; the
//! revoked access-token ids; the ended login sessions; the live browser sessions by the
//! SHA-256 of their cookie value (SPEC §10). Built from the store's
//! [`Loaded`] state at start (whose sessions are only the ones kept here, filtered by the
//! store as it reads: `store::load_keeps`, so a million live refresh sessions are never
//! all in memory) and changed only by applying the store's change feed
//! ([`View::apply`], driven by [`super::feed::Follower`]), so a bearer check is a few
//! hash lookups under read locks, never a disk read, and every process that follows the
//! feed holds the same view.
//!
//! Consistency rule: the store is written (durably) first; the writer then applies the
//! feed up to its own change, and only then acknowledges. A request racing an admin
//! change sees either the old or the new state; every request that starts after the
//! acknowledgement sees the new one.
//!
//! Browser sessions ([`BrowserEntry`], keyed by the cookie value's SHA-256): only what
//! authenticating a cookie needs, so that is one hash and one map lookup (plus the
//! user's). Ended and removed sessions leave the index as their change is applied;
//! expired ones when [`View::forget_expired`] runs (and are refused by the clock before
//! that). Memory per session, for issue #17 (1,000,000 sessions): the map slot (32-byte
//! key + 8-byte `Arc` + ~1 control byte, at the table's ⅞ load ≈ 47 B), the entry (16 B
//! `Arc` header + 40 B of counters and flags + the `VerifiedToken`: three `String`s of
//! 24 B each with their heap parts, a user id and the 22-character session id twice,
//! ≈ 130 B with allocator rounding, + 16 B of times) ≈ 300 B, i.e. about 300 MB per
//! million live sessions.

// foldhash, not SipHash: keys are ids we generated (users, jti, sid), looked up on every
// proxied request; SipHash over them was measurable (benches/RESULTS.md).
use foldhash::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use http::HeaderValue;

use crate::auth::keys::VerifiedToken;
use crate::error::TokenRejection;
use crate::store::{ChangeKind, Loaded, PrincipalKind, SessionRecord, UserRecord, UserState};

/// What a request needs to know about a user.
#[derive(Debug, Clone)]
pub struct UserView {
    pub username: String,
    pub roles: Vec<String>,
    pub enabled: bool,
    /// Unix seconds; tokens with an earlier `iat` are refused.
    pub password_changed_at: u64,
    pub generation: u64,
    /// A user or a service client.
    pub kind: PrincipalKind,
    /// A service client's tokens carry this `sid` (the marker of its current secret,
    /// [`session_marker`]); any other is refused, so a rotation ends
    /// every earlier token at once, in the same second too. `None` for users.
    pub client_sid: Option<String>,
    /// The identity header values ([`Self::headers`]): built by the first request that
    /// forwards for this user, then kept until the user changes. Not at load: a store of
    /// 100,000 users would hold ~20 MiB of values most of them never use (issue #17
    /// target 2); boxed so a user not yet seen costs 16 bytes here, not 120.
    pub(crate) headers: OnceLock<Box<IdentityValues>>,
}

impl UserView {
    /// This user's identity header values; `id` is the user's id (the view's key and the
    /// tokens' `sub`), which the view does not repeat in the value.
    pub fn headers(&self, id: &str) -> &IdentityValues {
        self.headers.get_or_init(|| {
            Box::new(IdentityValues {
                subject: HeaderValue::from_str(id).ok(),
                user: HeaderValue::from_str(&self.username).ok(),
                roles: HeaderValue::from_str(&self.roles.join(",")).ok(),
            })
        })
    }
}

/// Equal when the user's fields are: the header values are derived from them (and the
/// id), built or not.
impl PartialEq for UserView {
    fn eq(&self, other: &Self) -> bool {
        self.username == other.username
            && self.roles == other.roles
            && self.enabled == other.enabled
            && self.password_changed_at == other.password_changed_at
            && self.generation == other.generation
            && self.kind == other.kind
            && self.client_sid == other.client_sid
    }
}

impl Eq for UserView {}

/// The `sid` of a service client's tokens under generation `generation` of its secret
/// (what [`View::check`] compares; `accounts::clients` writes it into the tokens). The `.`
/// keeps it apart from login-session ids (base64url, no dot).
pub fn session_marker(generation: u64) -> String {
    format!("client.{generation}")
}

/// A user's identity header values; `None` where a value cannot be a header value (such
/// a header is left out rather than sent mangled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityValues {
    pub subject: Option<HeaderValue>,
    pub user: Option<HeaderValue>,
    /// The roles joined with `,`.
    pub roles: Option<HeaderValue>,
}

impl From<&UserRecord> for UserView {
    fn from(record: &UserRecord) -> Self {
        UserView::from(&UserState::from(record))
    }
}

impl From<&UserState> for UserView {
    fn from(record: &UserState) -> Self {
        UserView {
            username: record.username.clone(),
            roles: record.roles.clone(),
            enabled: record.enabled,
            password_changed_at: record.password_changed_at,
            generation: record.generation,
            kind: record.kind,
            client_sid: (record.kind == PrincipalKind::Client)
                .then(|| session_marker(record.generation)),
            headers: OnceLock::new(),
        }
    }
}

/// One live browser session: what authenticating its cookie needs (SPEC §10).
#[derive(Debug)]
pub struct BrowserEntry {
    /// The session as the identity carries it: `sub` the user id, `sid` and `jti` the
    /// session id, `iat` the sign-in time, `exp` the absolute expiry. Built once, shared
    /// by every request of the session.
    pub token: Arc<VerifiedToken>,
    /// The user's generation the session was made under: a password change or a disable
    /// moves the user's on, and the session is refused from then on.
    pub generation: u64,
    /// No inactivity limit, only the absolute expiry.
    pub remember_me: bool,
    /// The last use recorded in the store (Unix seconds), moved by the feed.
    recorded: AtomicU64,
    /// The last use this process saw (Unix seconds).
    used: AtomicU64,
    /// A background write of the last use is in flight.
    touching: AtomicBool,
}

impl BrowserEntry {
    fn new(session: &SessionRecord, last_seen: u64, remember_me: bool) -> Self {
        BrowserEntry {
            token: Arc::new(VerifiedToken {
                sub: session.user_id.clone(),
                sid: Some(session.family.clone()),
                jti: session.family.clone(),
                iat: session.created,
                exp: session.expires_at,
            }),
            generation: session.generation,
            remember_me,
            recorded: AtomicU64::new(last_seen),
            used: AtomicU64::new(last_seen),
            touching: AtomicBool::new(false),
        }
    }

    /// The user id.
    pub fn user_id(&self) -> &str {
        &self.token.sub
    }

    /// The session id.
    pub fn sid(&self) -> &str {
        &self.token.jti
    }

    /// The absolute expiry (Unix seconds).
    pub fn expires_at(&self) -> u64 {
        self.token.exp
    }

    /// The last use recorded in the store (Unix seconds).
    pub fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }

    /// The last use known here: this process's, or a later one recorded by another.
    pub fn last_used(&self) -> u64 {
        self.used
            .load(Ordering::Relaxed)
            .max(self.recorded.load(Ordering::Relaxed))
    }

    /// Notes a use at `now`.
    pub fn use_at(&self, now: u64) {
        self.used.fetch_max(now, Ordering::Relaxed);
    }

    /// Claims the one background write of the last use; false when one is in flight.
    pub fn start_touch(&self) -> bool {
        !self.touching.swap(true, Ordering::AcqRel)
    }

    /// Releases the claim of [`Self::start_touch`]; `recorded`: the time the store now
    /// holds, when the write succeeded.
    pub fn end_touch(&self, recorded: Option<u64>) {
        if let Some(at) = recorded {
            self.recorded.fetch_max(at, Ordering::Relaxed);
        }
        self.touching.store(false, Ordering::Release);
    }
}

/// Users, revocations, ended sessions and live browser sessions, in memory.
#[derive(Debug, Default)]
pub struct View {
    users: RwLock<HashMap<String, Arc<UserView>>>,
    /// `jti` → Unix second after which the token is dead anyway.
    revoked: RwLock<HashMap<String, u64>>,
    /// Session id (`sid`) → Unix second after which no token of it can be valid.
    ended: RwLock<HashMap<String, u64>>,
    /// SHA-256 of a session cookie value → the live browser session.
    browser: RwLock<HashMap<[u8; 32], Arc<BrowserEntry>>>,
}

// A poisoned lock only means another thread panicked while holding it; the maps are
// always left consistent (single inserts/removes), so keep serving.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl View {
    /// The store-backed part of token validation: `jti` not revoked, session not ended,
    /// user exists and is enabled, token issued at or after the last password change; for
    /// a service client, the token's `sid` is the marker of its current secret.
    /// One rejection reason for all, so a response never tells which.
    pub fn check(&self, claims: &VerifiedToken) -> Result<Arc<UserView>, TokenRejection> {
        if read(&self.revoked).contains_key(&claims.jti) {
            return Err(TokenRejection::Revoked);
        }
        if let Some(sid) = &claims.sid {
            if read(&self.ended).contains_key(sid) {
                return Err(TokenRejection::Revoked);
            }
        }
        let user = read(&self.users)
            .get(&claims.sub)
            .cloned()
            .ok_or(TokenRejection::Revoked)?;
        if !user.enabled || claims.iat < user.password_changed_at {
            return Err(TokenRejection::Revoked);
        }
        if let Some(expected) = &user.client_sid {
            // A service client's token is valid only under its current secret.
            if claims.sid.as_deref() != Some(expected.as_str()) {
                return Err(TokenRejection::Revoked);
            }
        }
        Ok(user)
    }

    /// The current state of one user.
    pub fn user(&self, id: &str) -> Option<Arc<UserView>> {
        read(&self.users).get(id).cloned()
    }

    /// Applies one change of the store's feed. `now` and `grace` decide what is already
    /// past remembering: an ended session is remembered `grace` seconds after its end,
    /// a revoked id until it expires.
    pub fn apply(&self, change: &ChangeKind, now: u64, grace: u64) {
        match change {
            ChangeKind::UserPut(user) => {
                write(&self.users).insert(user.id.clone(), Arc::new(UserView::from(user)));
            }
            ChangeKind::UsersPut { users } => {
                let mut view = write(&self.users);
                for user in users {
                    view.insert(user.id.clone(), Arc::new(UserView::from(user)));
                }
            }
            // Every token naming a removed user fails from now on.
            ChangeKind::UserRemoved { id } => {
                write(&self.users).remove(id);
            }
            ChangeKind::SessionPut(session) => {
                if let Some(browser) = &session.browser {
                    let mut index = write(&self.browser);
                    if session.ended_at.is_some() {
                        index.remove(&browser.cookie_hash);
                    } else {
                        match index.get(&browser.cookie_hash) {
                            // A recorded use (touch): the entry and its local use stay.
                            Some(entry) if entry.sid() == session.family => {
                                entry
                                    .recorded
                                    .fetch_max(browser.last_seen, Ordering::Relaxed);
                            }
                            _ => {
                                index.insert(
                                    browser.cookie_hash,
                                    Arc::new(BrowserEntry::new(
                                        session,
                                        browser.last_seen,
                                        browser.remember_me,
                                    )),
                                );
                            }
                        }
                    }
                }
                if let Some(ended_at) = session.ended_at {
                    let until = ended_at.saturating_add(grace);
                    if until >= now {
                        write(&self.ended).insert(session.family.clone(), until);
                    }
                }
            }
            ChangeKind::Revoked(revoked) => {
                if revoked.expires_at >= now {
                    write(&self.revoked).insert(revoked.jti.clone(), revoked.expires_at);
                }
            }
            // The user is gone already (its tokens fail on that); its browser sessions
            // leave the index.
            ChangeKind::SessionsRemoved { user_id } => {
                write(&self.browser).retain(|_, entry| entry.user_id() != user_id);
            }
            // The secret is not ours.
            ChangeKind::SecretKept => {}
        }
    }

    /// Replaces everything with a full load (start, or a feed trimmed past our cursor).
    /// A live session made under an older user generation, or of a disabled user (a
    /// password change or disable whose sessions were not all ended yet), counts as
    /// ended from `now`. `loaded.sessions` may hold more than is kept (the store filtered
    /// them with `store::load_keeps` at an earlier or equal `now`); the rest is skipped.
    pub fn replace(&self, loaded: &Loaded, now: u64, grace: u64) {
        let users: HashMap<String, Arc<UserView>> = loaded
            .users
            .iter()
            .map(|user| (user.id.clone(), Arc::new(UserView::from(user))))
            .collect();
        let revoked: HashMap<String, u64> = loaded
            .revoked
            .iter()
            .filter(|revoked| revoked.expires_at >= now)
            .map(|revoked| (revoked.jti.clone(), revoked.expires_at))
            .collect();
        let mut ended: HashMap<String, u64> = HashMap::default();
        let mut browser: HashMap<[u8; 32], Arc<BrowserEntry>> = HashMap::default();
        let previous = read(&self.browser).clone();
        for session in &loaded.sessions {
            let ended_at = match session.ended_at {
                Some(ended_at) => ended_at,
                None => match users.get(&session.user_id) {
                    Some(user) if user.enabled && user.generation == session.generation => {
                        if let Some(record) = &session.browser {
                            let entry =
                                BrowserEntry::new(session, record.last_seen, record.remember_me);
                            // This process's own later use survives a reload.
                            if let Some(old) = previous.get(&record.cookie_hash) {
                                if old.sid() == session.family {
                                    entry.use_at(old.last_used());
                                }
                            }
                            if session.expires_at > now {
                                browser.insert(record.cookie_hash, Arc::new(entry));
                            }
                        }
                        continue;
                    }
                    // A missing user fails every check on its own.
                    None => continue,
                    Some(_) => now,
                },
            };
            let until = ended_at.saturating_add(grace);
            if until >= now {
                ended.insert(session.family.clone(), until);
            }
        }
        *write(&self.users) = users;
        *write(&self.revoked) = revoked;
        *write(&self.ended) = ended;
        *write(&self.browser) = browser;
    }

    /// The live browser session whose cookie value has this SHA-256, if any (its expiry
    /// and its user's state are the caller's to check).
    pub fn browser_session(&self, cookie_hash: &[u8; 32]) -> Option<Arc<BrowserEntry>> {
        read(&self.browser).get(cookie_hash).cloned()
    }

    /// Number of live browser sessions indexed (tests, logs).
    pub fn browser_session_count(&self) -> usize {
        read(&self.browser).len()
    }

    /// True when the session was ended.
    pub fn session_ended(&self, sid: &str) -> bool {
        read(&self.ended).contains_key(sid)
    }

    /// Drops revocations and ended sessions whose tokens have all expired.
    pub fn forget_expired(&self, now: u64) {
        write(&self.revoked).retain(|_, until| *until >= now);
        write(&self.ended).retain(|_, until| *until >= now);
        write(&self.browser).retain(|_, entry| entry.expires_at() > now);
    }

    /// Number of users known (for logs).
    pub fn user_count(&self) -> usize {
        read(&self.users).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(iat: u64) -> VerifiedToken {
        VerifiedToken {
            sub: "u1".into(),
            sid: Some("s1".into()),
            jti: "j1".into(),
            iat,
            exp: iat + 60,
        }
    }

    fn record(changed: u64) -> ChangeKind {
        ChangeKind::UserPut(UserState {
            id: "u1".into(),
            username: "Alice".into(),
            canonical: "alice".into(),
            roles: vec!["new".into()],
            enabled: true,
            created: 1,
            password_changed_at: changed,
            generation: 0,
            kind: crate::store::PrincipalKind::User,
        })
    }

    fn ended(sid: &str, at: u64) -> ChangeKind {
        ChangeKind::SessionPut(crate::store::SessionRecord {
            family: sid.into(),
            user_id: "u1".into(),
            created: 1,
            generation: 0,
            expires_at: at + 1000,
            ended_at: Some(at),
            browser: None,
        })
    }

    fn revoked(jti: &str, until: u64) -> ChangeKind {
        ChangeKind::Revoked(crate::store::RevokedRecord {
            jti: jti.into(),
            expires_at: until,
        })
    }

    #[test]
    fn current_roles_come_from_the_view_not_the_token() {
        let view = View::default();
        view.apply(&record(100), 100, 0);
        let user = view.check(&claims(100)).expect("valid");
        assert_eq!(user.roles, vec!["new".to_string()]);
    }

    #[test]
    fn identity_values_are_built_on_first_use_and_follow_a_change_of_the_user() {
        let view = View::default();
        view.apply(&record(100), 100, 0);
        let user = view.check(&claims(100)).expect("valid");
        assert!(
            user.headers.get().is_none(),
            "built before any request needed them"
        );
        let values = user.headers("u1");
        assert_eq!(
            values.subject.as_ref().map(|v| v.as_bytes()),
            Some(&b"u1"[..])
        );
        assert_eq!(
            values.user.as_ref().map(|v| v.as_bytes()),
            Some(&b"Alice"[..])
        );
        assert_eq!(
            values.roles.as_ref().map(|v| v.as_bytes()),
            Some(&b"new"[..])
        );
        assert!(
            user.headers.get().is_some(),
            "not kept for the next request"
        );

        let ChangeKind::UserPut(mut renamed) = record(100) else {
            unreachable!()
        };
        renamed.username = "Alicia".into();
        renamed.roles = vec!["a".into(), "b".into()];
        view.apply(&ChangeKind::UserPut(renamed), 100, 0);
        let user = view.check(&claims(100)).expect("valid");
        let values = user.headers("u1");
        assert_eq!(
            values.user.as_ref().map(|v| v.as_bytes()),
            Some(&b"Alicia"[..])
        );
        assert_eq!(
            values.roles.as_ref().map(|v| v.as_bytes()),
            Some(&b"a,b"[..])
        );
    }

    #[test]
    fn a_token_from_the_same_second_as_the_password_change_still_works() {
        let view = View::default();
        view.apply(&record(100), 100, 0);
        assert!(view.check(&claims(100)).is_ok());
        assert_eq!(view.check(&claims(99)), Err(TokenRejection::Revoked));
    }

    #[test]
    fn revoked_ids_ended_sessions_and_missing_users_are_refused() {
        let view = View::default();
        assert_eq!(view.check(&claims(100)), Err(TokenRejection::Revoked));
        view.apply(&record(1), 100, 0);
        view.apply(&ended("s1", 150), 100, 50);
        assert_eq!(view.check(&claims(100)), Err(TokenRejection::Revoked));
        view.forget_expired(201);
        assert!(view.check(&claims(100)).is_ok());
        view.apply(&revoked("j1", 300), 100, 0);
        assert_eq!(view.check(&claims(100)), Err(TokenRejection::Revoked));
    }

    #[test]
    fn a_batch_of_users_is_applied_whole() {
        let ChangeKind::UserPut(alice) = record(1) else {
            unreachable!()
        };
        let mut bob = alice.clone();
        bob.id = "u2".into();
        bob.username = "bob".into();
        bob.canonical = "bob".into();
        let view = View::default();
        view.apply(
            &ChangeKind::UsersPut {
                users: vec![alice, bob],
            },
            100,
            0,
        );
        assert_eq!(view.user_count(), 2);
        assert!(view.check(&claims(100)).is_ok());
        assert_eq!(
            view.user("u2").map(|user| user.username.clone()),
            Some("bob".to_string())
        );
    }

    #[test]
    fn a_removed_user_fails_every_token() {
        let view = View::default();
        view.apply(&record(1), 100, 0);
        assert!(view.check(&claims(100)).is_ok());
        view.apply(&ChangeKind::UserRemoved { id: "u1".into() }, 100, 0);
        assert_eq!(view.check(&claims(100)), Err(TokenRejection::Revoked));
    }

    #[test]
    fn a_full_load_counts_live_sessions_of_an_older_generation_as_ended() {
        let ChangeKind::UserPut(mut user) = record(1) else {
            unreachable!()
        };
        user.generation = 1;
        let session = |sid: &str, generation: u64| crate::store::SessionRecord {
            family: sid.into(),
            user_id: "u1".into(),
            created: 1,
            generation,
            expires_at: 1000,
            ended_at: None,
            browser: None,
        };
        let loaded = Loaded {
            users: vec![user],
            sessions: vec![session("s1", 0), session("current", 1)],
            revoked: vec![],
            cursor: 7,
        };
        let view = View::default();
        view.apply(&revoked("j1", 300), 100, 0);
        view.replace(&loaded, 100, 50);
        assert!(view.session_ended("s1"));
        assert!(!view.session_ended("current"));
        assert_eq!(view.check(&claims(100)), Err(TokenRejection::Revoked));
        let mut fresh = claims(100);
        fresh.sid = Some("current".into());
        assert!(
            view.check(&fresh).is_ok(),
            "the reload replaced the revocations too"
        );
    }

    fn browser_session(
        family: &str,
        hash: u8,
        ended_at: Option<u64>,
        last_seen: u64,
    ) -> ChangeKind {
        ChangeKind::SessionPut(SessionRecord {
            family: family.into(),
            user_id: "u1".into(),
            created: 100,
            generation: 0,
            expires_at: 1000,
            ended_at,
            browser: Some(crate::store::BrowserSessionRecord {
                cookie_hash: [hash; 32],
                last_seen,
                remember_me: false,
            }),
        })
    }

    #[test]
    fn browser_sessions_are_indexed_by_cookie_hash_until_ended_removed_or_expired() {
        let view = View::default();
        view.apply(&record(1), 100, 0);
        view.apply(&browser_session("b1", 1, None, 100), 100, 0);
        view.apply(&browser_session("b2", 2, None, 100), 100, 0);
        let entry = view.browser_session(&[1; 32]).expect("indexed");
        assert_eq!((entry.user_id(), entry.sid()), ("u1", "b1"));
        assert_eq!(entry.token.sid.as_deref(), Some("b1"));
        assert_eq!((entry.token.iat, entry.expires_at()), (100, 1000));
        assert!(view.browser_session(&[3; 32]).is_none());
        // A recorded use moves `recorded` forward and keeps the entry (and its local use).
        entry.use_at(150);
        view.apply(&browser_session("b1", 1, None, 160), 170, 0);
        let same = view.browser_session(&[1; 32]).expect("indexed");
        assert!(Arc::ptr_eq(&entry, &same));
        assert_eq!((same.recorded(), same.last_used()), (160, 160));
        // Ended: out of the index (and remembered as ended for its tokens).
        view.apply(&browser_session("b1", 1, Some(200), 160), 200, 50);
        assert!(view.browser_session(&[1; 32]).is_none());
        assert!(view.session_ended("b1"));
        // Removed with its user.
        view.apply(
            &ChangeKind::SessionsRemoved {
                user_id: "u1".into(),
            },
            200,
            0,
        );
        assert_eq!(view.browser_session_count(), 0);
        // Expired: forgotten by the clock.
        view.apply(&browser_session("b3", 3, None, 100), 100, 0);
        view.forget_expired(999);
        assert_eq!(view.browser_session_count(), 1);
        view.forget_expired(1000);
        assert_eq!(view.browser_session_count(), 0);
    }

    #[test]
    fn a_full_load_indexes_only_live_browser_sessions_of_the_current_generation() {
        let ChangeKind::UserPut(mut user) = record(1) else {
            unreachable!()
        };
        user.generation = 1;
        let session = |family: &str, hash: u8, generation: u64, ended_at: Option<u64>| {
            let ChangeKind::SessionPut(mut session) = browser_session(family, hash, ended_at, 100)
            else {
                unreachable!()
            };
            session.generation = generation;
            session
        };
        let loaded = Loaded {
            users: vec![user],
            sessions: vec![
                session("old", 1, 0, None),
                session("live", 2, 1, None),
                session("ended", 3, 1, Some(150)),
            ],
            revoked: vec![],
            cursor: 3,
        };
        let view = View::default();
        view.replace(&loaded, 200, 50);
        assert!(view.browser_session(&[1; 32]).is_none(), "older generation");
        assert!(view.browser_session(&[2; 32]).is_some());
        assert!(view.browser_session(&[3; 32]).is_none(), "ended");
        assert_eq!(view.browser_session_count(), 1);
    }

    /// The store's filter (`store::load_keeps`) leaves out only sessions that
    /// [`View::replace`] would skip: a view from the filtered load equals one from all.
    #[test]
    fn a_view_from_the_filtered_load_equals_one_from_every_session() {
        let (now, grace) = (1000, 100);
        let user = |id: &str, enabled: bool| UserState {
            id: id.into(),
            username: id.into(),
            canonical: id.into(),
            roles: vec![],
            enabled,
            created: 1,
            password_changed_at: 1,
            generation: 1,
            kind: PrincipalKind::User,
        };
        let users = vec![user("on", true), user("off", false)];
        let mut sessions = Vec::new();
        let mut hash = 0u8;
        for user_id in ["on", "off", "gone"] {
            for generation in [0, 1] {
                for ended_at in [None, Some(now - grace - 1), Some(now - grace), Some(now)] {
                    for expires_at in [None, Some(now), Some(now + 1)] {
                        hash += 1;
                        sessions.push(SessionRecord {
                            family: format!("s{hash}"),
                            user_id: user_id.into(),
                            created: 1,
                            generation,
                            expires_at: expires_at.unwrap_or(now + 500),
                            ended_at,
                            browser: expires_at.map(|_| crate::store::BrowserSessionRecord {
                                cookie_hash: [hash; 32],
                                last_seen: 1,
                                remember_me: false,
                            }),
                        });
                    }
                }
            }
        }
        let states: HashMap<&str, &UserState> =
            users.iter().map(|user| (user.id.as_str(), user)).collect();
        let filtered: Vec<SessionRecord> = sessions
            .iter()
            .filter(|session| {
                crate::store::load_keeps(
                    session,
                    states.get(session.user_id.as_str()).copied(),
                    now,
                    grace,
                )
            })
            .cloned()
            .collect();
        assert!(filtered.len() < sessions.len());
        let load = |sessions: &[SessionRecord], now: u64| {
            let view = View::default();
            view.replace(
                &Loaded {
                    users: users.clone(),
                    sessions: sessions.to_vec(),
                    revoked: vec![],
                    cursor: 1,
                },
                now,
                grace,
            );
            view
        };
        // The follower reads the clock again after the load: `replace` may see a later
        // `now` than the filter did, never an earlier one.
        for replace_at in [now, now + 1, now + grace] {
            let (all, kept) = (load(&sessions, replace_at), load(&filtered, replace_at));
            assert_eq!(all.browser_session_count(), kept.browser_session_count());
            for session in &sessions {
                assert_eq!(
                    all.session_ended(&session.family),
                    kept.session_ended(&session.family),
                    "{session:?} at {replace_at}"
                );
                if let Some(browser) = &session.browser {
                    assert_eq!(
                        all.browser_session(&browser.cookie_hash).is_some(),
                        kept.browser_session(&browser.cookie_hash).is_some(),
                        "{session:?} at {replace_at}"
                    );
                }
            }
        }
    }

    fn client(generation: u64) -> ChangeKind {
        ChangeKind::UserPut(UserState {
            id: "c1".into(),
            username: "ci-bot".into(),
            canonical: "ci-bot".into(),
            roles: vec!["deploy".into()],
            enabled: true,
            created: 1,
            password_changed_at: 100,
            generation,
            kind: PrincipalKind::Client,
        })
    }

    fn client_claims(sid: Option<&str>) -> VerifiedToken {
        VerifiedToken {
            sub: "c1".into(),
            sid: sid.map(str::to_string),
            jti: "j9".into(),
            iat: 100,
            exp: 160,
        }
    }

    #[test]
    fn a_client_token_is_valid_only_under_the_current_generation_marker() {
        let view = View::default();
        view.apply(&client(0), 100, 0);
        let marker0 = session_marker(0);
        let user = view
            .check(&client_claims(Some(&marker0)))
            .expect("current marker");
        assert_eq!(user.username, "ci-bot");
        assert_eq!(user.kind, PrincipalKind::Client);
        assert_eq!(
            view.check(&client_claims(None)),
            Err(TokenRejection::Revoked),
            "no sid"
        );
        assert_eq!(
            view.check(&client_claims(Some("s1"))),
            Err(TokenRejection::Revoked),
            "a user session id"
        );
        // A rotation in the same second (iat == password_changed_at) still ends it.
        view.apply(&client(1), 100, 0);
        assert_eq!(
            view.check(&client_claims(Some(&marker0))),
            Err(TokenRejection::Revoked)
        );
        let marker1 = session_marker(1);
        assert!(view.check(&client_claims(Some(&marker1))).is_ok());
        view.apply(&ChangeKind::UserRemoved { id: "c1".into() }, 100, 0);
        assert_eq!(
            view.check(&client_claims(Some(&marker1))),
            Err(TokenRejection::Revoked)
        );
    }
}
