//! The in-process view of what every request checks (SPEC §4 validation): for each user
//! id its name, current roles, enabled flag, last password change and generation; the
//! revoked access-token ids; the ended login sessions. Loaded from the store at start and
//! kept in step with every store write by [`super::Directory`], so a bearer check is a few
//! hash lookups under read locks, never a disk read.
//!
//! Consistency rule: the store is written (durably) first, the view second, and the write
//! is acknowledged only after both. A request racing an admin change sees either the old
//! or the new state; every request that starts after the acknowledgement sees the new one.

// foldhash, not SipHash: keys are ids we generated (users, jti, sid), looked up on every
// proxied request; SipHash over them was measurable (benches/RESULTS.md).
use foldhash::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use http::HeaderValue;

use crate::auth::keys::VerifiedToken;
use crate::error::TokenRejection;
use crate::store::UserRecord;

/// What a request needs to know about a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    pub username: String,
    pub roles: Vec<String>,
    pub enabled: bool,
    /// Unix seconds; tokens with an earlier `iat` are refused.
    pub password_changed_at: u64,
    pub generation: u64,
    /// The identity header values, built once per user change rather than per request.
    pub headers: IdentityValues,
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
        UserView {
            username: record.username.clone(),
            roles: record.roles.clone(),
            enabled: record.enabled,
            password_changed_at: record.password_changed_at,
            generation: record.generation,
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
    /// user exists and is enabled, token issued at or after the last password change.
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
        Ok(user)
    }

    /// The current state of one user.
    pub fn user(&self, id: &str) -> Option<Arc<UserView>> {
        read(&self.users).get(id).cloned()
    }

    /// Records a user's new state (after the store has it).
    pub fn put_user(&self, record: &UserRecord) {
        write(&self.users).insert(record.id.clone(), Arc::new(UserView::from(record)));
    }

    /// Forgets a removed user: every token naming it fails from now on.
    pub fn remove_user(&self, id: &str) {
        write(&self.users).remove(id);
    }

    /// Refuses an access token id until `until`.
    pub fn revoke(&self, jti: &str, until: u64) {
        write(&self.revoked).insert(jti.to_string(), until);
    }

    /// Refuses every access token of a session until `until`.
    pub fn end_session(&self, sid: &str, until: u64) {
        write(&self.ended).insert(sid.to_string(), until);
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

    fn record(changed: u64) -> UserRecord {
        UserRecord {
            id: "u1".into(),
            username: "Alice".into(),
            canonical: "alice".into(),
            password_hash: String::new(),
            roles: vec!["new".into()],
            enabled: true,
            created: 1,
            password_changed_at: changed,
            generation: 0,
        }
    }

    #[test]
    fn current_roles_come_from_the_view_not_the_token() {
        let view = View::default();
        view.put_user(&record(100));
        let user = view.check(&claims(100)).expect("valid");
        assert_eq!(user.roles, vec!["new".to_string()]);
    }

    #[test]
    fn a_token_from_the_same_second_as_the_password_change_still_works() {
        let view = View::default();
        view.put_user(&record(100));
        assert!(view.check(&claims(100)).is_ok());
        assert_eq!(view.check(&claims(99)), Err(TokenRejection::Revoked));
    }

    #[test]
    fn revoked_ids_ended_sessions_and_missing_users_are_refused() {
        let view = View::default();
        assert_eq!(view.check(&claims(100)), Err(TokenRejection::Revoked));
        view.put_user(&record(1));
        view.end_session("s1", 200);
        assert_eq!(view.check(&claims(100)), Err(TokenRejection::Revoked));
        view.forget_expired(201);
        assert!(view.check(&claims(100)).is_ok());
        view.revoke("j1", 300);
        assert_eq!(view.check(&claims(100)), Err(TokenRejection::Revoked));
    }
}
