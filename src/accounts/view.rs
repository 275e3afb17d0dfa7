//! The in-process view of what every request checks (SPEC §4 validation): for each user
//! id (service clients included: principals of kind client) its name, current roles,
//! enabled flag, last password change and generation; the
//! revoked access-token ids; the ended login sessions. Built from the store's
//! [`Loaded`] state at start and changed only by applying the store's change feed
//! ([`View::apply`], driven by [`super::feed::Follower`]), so a bearer check is a few
//! hash lookups under read locks, never a disk read, and every process that follows the
//! feed holds the same view.
//!
//! Consistency rule: the store is written (durably) first; the writer then applies the
//! feed up to its own change, and only then acknowledges. A request racing an admin
//! change sees either the old or the new state; every request that starts after the
//! acknowledgement sees the new one.

// foldhash, not SipHash: keys are ids we generated (users, jti, sid), looked up on every
// proxied request; SipHash over them was measurable (benches/RESULTS.md).
use foldhash::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use http::HeaderValue;

use crate::auth::keys::VerifiedToken;
use crate::error::TokenRejection;
use crate::store::{ChangeKind, Loaded, PrincipalKind, UserRecord, UserState};

/// What a request needs to know about a user.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// The identity header values, built once per user change rather than per request.
    pub headers: IdentityValues,
}

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
            headers: IdentityValues {
                subject: HeaderValue::from_str(&record.id).ok(),
                user: HeaderValue::from_str(&record.username).ok(),
                roles: HeaderValue::from_str(&record.roles.join(",")).ok(),
            },
        }
    }
}

/// Users, revocations and ended sessions, in memory.
#[derive(Debug, Default)]
pub struct View {
    users: RwLock<HashMap<String, Arc<UserView>>>,
    /// `jti` → Unix second after which the token is dead anyway.
    revoked: RwLock<HashMap<String, u64>>,
    /// Session id (`sid`) → Unix second after which no token of it can be valid.
    ended: RwLock<HashMap<String, u64>>,
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
            // The user is gone already (its tokens fail on that); the secret is not ours.
            ChangeKind::SessionsRemoved { .. } | ChangeKind::SecretKept => {}
        }
    }

    /// Replaces everything with a full load (start, or a feed trimmed past our cursor).
    /// A live session made under an older user generation, or of a disabled user (a
    /// password change or disable whose sessions were not all ended yet), counts as
    /// ended from `now`.
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
        for session in &loaded.sessions {
            let ended_at = match session.ended_at {
                Some(ended_at) => ended_at,
                None => match users.get(&session.user_id) {
                    Some(user) if user.enabled && user.generation == session.generation => continue,
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
    }

    /// True when the session was ended.
    pub fn session_ended(&self, sid: &str) -> bool {
        read(&self.ended).contains_key(sid)
    }

    /// Drops revocations and ended sessions whose tokens have all expired.
    pub fn forget_expired(&self, now: u64) {
        write(&self.revoked).retain(|_, until| *until >= now);
        write(&self.ended).retain(|_, until| *until >= now);
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
