//! The user directory: creating, changing and removing users, and ending their sessions,
//! with the store and the in-memory [`View`] kept in step. Both the running gateway (its
//! `/auth/*` endpoints and admin socket) and the CLI working on a stopped gateway's store
//! go through here, so the rules are the same either way.
//!
//! Writes to users are serialized by one async mutex: store write, then view update, in
//! that order, so the view never holds an older state than the store. Store calls run on
//! the blocking pool (each write ends with an fsync).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::view::View;
use super::AccountError;
use crate::auth::now_secs;
use crate::auth::password::{Password, PasswordHasher};
use crate::store::{Store, StoreError, StoreResult, UserRecord};

/// Longest username (SPEC §4).
pub const MAX_USERNAME_LEN: usize = 64;

/// The canonical (lower-case) form of a username, or `None` when it is not 1–64
/// characters of `A-Z a-z 0-9 . _ @ -` (SPEC §4). Names compare by this form everywhere.
pub fn canonical_username(name: &str) -> Option<String> {
    let valid = (1..=MAX_USERNAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'));
    valid.then(|| name.to_ascii_lowercase())
}

const USERNAME_RULE: &str = "a username is 1-64 characters of A-Z a-z 0-9 . _ @ -";

/// What `user list` shows of a user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserSummary {
    /// As created.
    pub username: String,
    pub roles: Vec<String>,
    pub enabled: bool,
    /// Unix seconds.
    pub created: u64,
}

impl From<&UserRecord> for UserSummary {
    fn from(user: &UserRecord) -> Self {
        UserSummary {
            username: user.username.clone(),
            roles: user.roles.clone(),
            enabled: user.enabled,
            created: user.created,
        }
    }
}

/// Runs a store call on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    store: &Arc<dyn Store>,
    call: impl FnOnce(&dyn Store) -> StoreResult<T> + Send + 'static,
) -> Result<T, AccountError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || call(store.as_ref()))
        .await
        .map_err(|err| AccountError::Internal(format!("store task failed: {err}")))?
        .map_err(AccountError::from)
}

/// Users and their sessions, store and view together.
pub struct Directory {
    store: Arc<dyn Store>,
    hasher: Arc<PasswordHasher>,
    view: View,
    /// Seconds an ended session or revoked id must be remembered after its end: the
    /// access-token lifetime plus the leeway.
    grace: u64,
    writes: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("users", &self.view.user_count())
            .finish_non_exhaustive()
    }
}

impl Directory {
    /// Loads the view from the store. Sessions made under an older user generation (a
    /// password change or disable interrupted by a crash before its sessions were ended)
    /// are ended now.
    pub fn open(
        store: Arc<dyn Store>,
        hasher: Arc<PasswordHasher>,
        grace: u64,
    ) -> StoreResult<Self> {
        let view = View::default();
        let now = now_secs();
        for user in store.list_users()? {
            view.put_user(&user);
        }
        for revoked in store.list_revoked()? {
            if revoked.expires_at >= now {
                view.revoke(&revoked.jti, revoked.expires_at);
            }
        }
        for session in store.list_sessions()? {
            let ended_at = match session.ended_at {
                Some(ended_at) => ended_at,
                None => match view.user(&session.user_id) {
                    Some(user) if user.enabled && user.generation == session.generation => continue,
                    // A missing user fails every check on its own.
                    None => continue,
                    Some(_) => {
                        store.end_session(&session.user_id, &session.family, now)?;
                        now
                    }
                },
            };
            let until = ended_at.saturating_add(grace);
            if until >= now {
                view.end_session(&session.family, until);
            }
        }
        Ok(Directory {
            store,
            hasher,
            view,
            grace,
            writes: tokio::sync::Mutex::new(()),
        })
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The password hasher.
    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// The in-memory view requests are checked against.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// Seconds ended sessions and revocations are remembered.
    pub fn grace(&self) -> u64 {
        self.grace
    }

    async fn find_by_name(&self, name: &str) -> Result<UserRecord, AccountError> {
        let not_found = || AccountError::NoSuchUser(name.to_string());
        let canonical = canonical_username(name).ok_or_else(not_found)?;
        blocking(&self.store, move |store| {
            store.find_user_by_name(&canonical)
        })
        .await?
        .ok_or_else(not_found)
    }

    /// Creates a user (CLI `user add`, `/auth/register`).
    pub async fn add(
        &self,
        username: &str,
        roles: Vec<String>,
        password: Password,
    ) -> Result<UserSummary, AccountError> {
        let canonical = canonical_username(username)
            .ok_or_else(|| AccountError::Policy(USERNAME_RULE.into()))?;
        check_roles(&roles)?;
        self.hasher
            .check_policy(&password)
            .map_err(AccountError::Policy)?;
        let lookup = canonical.clone();
        if blocking(&self.store, move |store| store.find_user_by_name(&lookup))
            .await?
            .is_some()
        {
            return Err(AccountError::UsernameTaken);
        }
        let password_hash = self.hasher.hash(password).await?;
        let now = now_secs();
        let user = UserRecord {
            id: uuid::Uuid::new_v4().to_string(),
            username: username.to_string(),
            canonical,
            password_hash,
            roles: dedup(roles),
            enabled: true,
            created: now,
            password_changed_at: now,
            generation: 0,
        };
        let _guard = self.writes.lock().await;
        let record = user.clone();
        blocking(&self.store, move |store| store.insert_user(&record)).await?;
        self.view.put_user(&user);
        Ok(UserSummary::from(&user))
    }

    /// Sets a new password by name (CLI `user passwd`): every earlier token and session
    /// of the user ends.
    pub async fn set_password(
        &self,
        username: &str,
        password: Password,
    ) -> Result<(), AccountError> {
        self.hasher
            .check_policy(&password)
            .map_err(AccountError::Policy)?;
        let user = self.find_by_name(username).await?;
        self.change_password(&user.id, password).await.map(|_| ())
    }

    /// Replaces a user's password hash (policy already checked): stamps the change time,
    /// bumps the generation, then ends every session of the user. Access tokens issued
    /// before fail by `iat` or by their ended session; a token of a session made in the
    /// same second but before the change fails by its session.
    pub async fn change_password(
        &self,
        user_id: &str,
        password: Password,
    ) -> Result<UserRecord, AccountError> {
        let password_hash = self.hasher.hash(password).await?;
        let now = now_secs();
        let updated = self
            .update(user_id, move |user| {
                user.password_hash = password_hash.clone();
                user.password_changed_at = now;
                user.generation += 1;
            })
            .await?
            .ok_or_else(|| AccountError::NoSuchUser(user_id.to_string()))?;
        self.end_sessions_of(user_id).await?;
        Ok(updated)
    }

    /// Stores a hash made with the current parameters after a successful login, unless
    /// the password changed meanwhile. Best effort: the login succeeds either way.
    pub async fn rehash(&self, user: &UserRecord, password: Password) {
        let result = async {
            let new_hash = self.hasher.hash(password).await?;
            let old_hash = user.password_hash.clone();
            self.update(&user.id, move |record| {
                if record.password_hash == old_hash {
                    record.password_hash = new_hash.clone();
                }
            })
            .await
        }
        .await;
        match result {
            Ok(_) => {
                tracing::info!(user = %user.username, "password rehashed with the current argon2 parameters")
            }
            Err(err) => {
                tracing::warn!(user = %user.username, error = %err, "could not rehash a password")
            }
        }
    }

    /// Enables or disables a user by name. Disabling ends every session: the user's
    /// tokens fail from the next request on, and stay dead if the user is enabled again.
    pub async fn set_enabled(&self, username: &str, enabled: bool) -> Result<(), AccountError> {
        let user = self.find_by_name(username).await?;
        self.update(&user.id, move |record| {
            if record.enabled && !enabled {
                record.generation += 1;
            }
            record.enabled = enabled;
        })
        .await?
        .ok_or_else(|| AccountError::NoSuchUser(username.to_string()))?;
        if !enabled {
            self.end_sessions_of(&user.id).await?;
        }
        Ok(())
    }

    /// Replaces a user's roles by name; route checks and the roles header use them from
    /// the next request on.
    pub async fn set_roles(
        &self,
        username: &str,
        roles: Vec<String>,
    ) -> Result<Vec<String>, AccountError> {
        check_roles(&roles)?;
        let roles = dedup(roles);
        let user = self.find_by_name(username).await?;
        let new_roles = roles.clone();
        self.update(&user.id, move |record| record.roles = new_roles.clone())
            .await?
            .ok_or_else(|| AccountError::NoSuchUser(username.to_string()))?;
        Ok(roles)
    }

    /// Deletes a user by name; its tokens fail from the next request on.
    pub async fn remove(&self, username: &str) -> Result<(), AccountError> {
        let user = self.find_by_name(username).await?;
        let id = user.id.clone();
        {
            let _guard = self.writes.lock().await;
            let removed = blocking(&self.store, move |store| store.remove_user(&id)).await?;
            if removed.is_none() {
                return Err(AccountError::NoSuchUser(username.to_string()));
            }
            self.view.remove_user(&user.id);
        }
        let id = user.id.clone();
        blocking(&self.store, move |store| store.remove_sessions_of(&id)).await?;
        Ok(())
    }

    /// Every user, sorted by name.
    pub async fn list(&self) -> Result<Vec<UserSummary>, AccountError> {
        let mut users = blocking(&self.store, |store| store.list_users()).await?;
        users.sort_by(|a, b| a.canonical.cmp(&b.canonical));
        Ok(users.iter().map(UserSummary::from).collect())
    }

    /// Ends one login session: its refresh tokens and access tokens stop working.
    pub async fn end_session(&self, user_id: &str, family: &str) -> Result<(), AccountError> {
        let now = now_secs();
        // View first: requests in flight stop passing before the store write finishes.
        self.view
            .end_session(family, now.saturating_add(self.grace));
        let (user_id, family) = (user_id.to_string(), family.to_string());
        blocking(&self.store, move |store| {
            store.end_session(&user_id, &family, now)
        })
        .await?;
        Ok(())
    }

    /// Ends every live session of a user.
    pub async fn end_sessions_of(&self, user_id: &str) -> Result<(), AccountError> {
        let id = user_id.to_string();
        let sessions = blocking(&self.store, move |store| store.sessions_of(&id)).await?;
        for session in sessions.into_iter().filter(|s| s.ended_at.is_none()) {
            self.end_session(user_id, &session.family).await?;
        }
        Ok(())
    }

    /// Refuses one access token until `until` (logout).
    pub async fn revoke(&self, jti: &str, until: u64) -> Result<(), AccountError> {
        self.view.revoke(jti, until);
        let record = crate::store::RevokedRecord {
            jti: jti.to_string(),
            expires_at: until,
        };
        blocking(&self.store, move |store| store.insert_revoked(&record)).await
    }

    /// Removes expired records from the store and the view.
    pub async fn purge(&self) -> Result<(), AccountError> {
        let now = now_secs();
        let grace = self.grace;
        let purged = blocking(&self.store, move |store| store.remove_expired(now, grace)).await?;
        self.view.forget_expired(now);
        if purged != crate::store::Purged::default() {
            tracing::debug!(?purged, "expired token records removed");
        }
        Ok(())
    }

    /// Read-modify-write of one user, then the view.
    async fn update(
        &self,
        user_id: &str,
        change: impl Fn(&mut UserRecord) + Send + Sync + 'static,
    ) -> Result<Option<UserRecord>, AccountError> {
        let _guard = self.writes.lock().await;
        let id = user_id.to_string();
        let updated = blocking(&self.store, move |store| store.update_user(&id, &change)).await?;
        if let Some(user) = &updated {
            self.view.put_user(user);
        }
        Ok(updated)
    }
}

fn check_roles(roles: &[String]) -> Result<(), AccountError> {
    match roles
        .iter()
        .find(|role| !crate::proxy::identity::is_valid_role(role))
    {
        Some(role) => Err(AccountError::Policy(format!(
            "`{role}` is not a role name; use 1-64 of A-Z a-z 0-9 . _ : -"
        ))),
        None => Ok(()),
    }
}

fn dedup(roles: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(roles.len());
    for role in roles {
        if !out.contains(&role) {
            out.push(role);
        }
    }
    out
}

impl From<StoreError> for AccountError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict("username taken") => AccountError::UsernameTaken,
            other => AccountError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_spec_alphabet_and_fold_case() {
        assert_eq!(
            canonical_username("Alice.B_c@d-1").as_deref(),
            Some("alice.b_c@d-1")
        );
        assert!(canonical_username("").is_none());
        assert!(canonical_username("has space").is_none());
        assert!(canonical_username("ünïcode").is_none());
        assert!(canonical_username(&"a".repeat(64)).is_some());
        assert!(canonical_username(&"a".repeat(65)).is_none());
    }
}
