//! The user directory: creating, changing and removing users, and ending their sessions,
//! through the store, with the in-memory [`View`] following the store's change feed.
//! Service clients live in the same store records (kind client); their verbs are in
//! [`super::clients`], and the user verbs here never touch them: a client's name is "no
//! such user" to them and left out of [`Directory::list`], while [`Directory::add`]
//! still refuses it (one name namespace).
//! Both the running gateway (its `/auth/*` endpoints and admin socket) and the CLI working
//! on a stopped gateway's store go through here, so the rules are the same either way.
//!
//! Every write goes to the store first (durable when it returns, one published change
//! when it changed anything); then [`Directory::applied`] applies the feed up to that
//! change before the caller acknowledges. Changes to a user are typed ([`UserChange`]) and
//! applied by the store inside its transaction, so concurrent writers need no lock here.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::feed::Follower;
use super::view::View;
use super::AccountError;
use crate::auth::now_secs;
use crate::auth::password::{Password, PasswordHasher};
use crate::store::{
    Conflict, PrincipalKind, Purged, RevokedRecord, Store, StoreError, StoreResult, UserChange,
    UserRecord, UserState, Written,
};

pub use crate::names::{canonical_username, MAX_USERNAME_LEN};
use crate::names::{Role, ROLE_RULE, USERNAME_RULE};

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

/// Users and their sessions, store and view together.
pub struct Directory {
    store: Arc<dyn Store>,
    hasher: Arc<PasswordHasher>,
    view: View,
    follower: Follower,
    /// Seconds an ended session or revoked id must be remembered after its end: the
    /// access-token lifetime plus the leeway.
    grace: u64,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("users", &self.view.user_count())
            .finish_non_exhaustive()
    }
}

impl Directory {
    /// Loads the view from the store and follows its feed from there. Sessions made
    /// under an older user generation, or of a disabled user (a password change or
    /// disable interrupted by a crash before its sessions were ended), are ended now.
    pub async fn open(
        store: Arc<dyn Store>,
        hasher: Arc<PasswordHasher>,
        grace: u64,
    ) -> StoreResult<Self> {
        let loaded = store.load(now_secs(), grace).await?;
        let view = View::default();
        let follower = Follower::start(&view, &loaded, grace);
        let now = now_secs();
        let users: HashMap<&str, &UserState> = loaded
            .users
            .iter()
            .map(|user| (user.id.as_str(), user))
            .collect();
        for session in loaded.sessions.iter().filter(|s| s.ended_at.is_none()) {
            let stale = users
                .get(session.user_id.as_str())
                .is_some_and(|user| !user.enabled || user.generation != session.generation);
            if stale {
                store
                    .end_session(&session.user_id, &session.family, now)
                    .await?;
            }
        }
        follower.catch_up(store.as_ref(), &view, None).await?;
        drop(loaded);
        release_freed_memory().await;
        Ok(Directory {
            store,
            hasher,
            view,
            follower,
            grace,
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

    /// The view's position in the store's change feed.
    pub fn follower(&self) -> &Follower {
        &self.follower
    }

    /// Completes a store write: applies the feed up to the change it published, so the
    /// view shows it before the caller acknowledges.
    pub async fn applied<T>(&self, written: StoreResult<Written<T>>) -> Result<T, AccountError> {
        let written = written?;
        if let Some(seq) = written.seq {
            self.follower
                .catch_up(self.store.as_ref(), &self.view, Some(seq))
                .await?;
        }
        Ok(written.value)
    }

    /// Applies whatever the feed holds that the view has not seen (the background task;
    /// changes written by other processes sharing the store).
    pub async fn follow(&self) {
        self.follower.poll(self.store.as_ref(), &self.view).await;
    }

    /// A user (never a service client) by name.
    async fn find_by_name(&self, name: &str) -> Result<UserRecord, AccountError> {
        let not_found = || AccountError::NoSuchUser(name.to_string());
        let canonical = canonical_username(name).ok_or_else(not_found)?;
        self.store
            .find_user_by_name(&canonical)
            .await?
            .filter(|user| user.kind == PrincipalKind::User)
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
        if self.store.find_user_by_name(&canonical).await?.is_some() {
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
            kind: PrincipalKind::User,
        };
        self.applied(self.store.insert_user(&user).await).await?;
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
    /// bumps the generation ([`UserChange::SetPassword`]), then ends every session of the
    /// user. Access tokens issued before fail by `iat` or by their ended session; a token
    /// of a session made in the same second but before the change fails by its session.
    pub async fn change_password(
        &self,
        user_id: &str,
        password: Password,
    ) -> Result<UserRecord, AccountError> {
        let hash = self.hasher.hash(password).await?;
        let change = UserChange::SetPassword {
            hash,
            changed_at: now_secs(),
        };
        let updated = self
            .update(user_id, change)
            .await?
            .ok_or_else(|| AccountError::NoSuchUser(user_id.to_string()))?;
        self.end_sessions_of(user_id).await?;
        Ok(updated)
    }

    /// Stores a hash made with the current parameters after a successful login against a
    /// hash made under older parameters or imported from another system, unless
    /// the password changed meanwhile ([`UserChange::Rehash`]). Best effort: the login
    /// succeeds either way.
    pub async fn rehash(&self, user: &UserRecord, password: Password) {
        let result = async {
            let to = self.hasher.hash(password).await?;
            let from = user.password_hash.clone();
            self.update(&user.id, UserChange::Rehash { from, to }).await
        }
        .await;
        match result {
            Ok(_) => {
                tracing::info!(user = %user.username, "password hash replaced by argon2id with the current parameters")
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
        self.update(&user.id, UserChange::SetEnabled(enabled))
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
        self.update(&user.id, UserChange::SetRoles(roles.clone()))
            .await?
            .ok_or_else(|| AccountError::NoSuchUser(username.to_string()))?;
        Ok(roles)
    }

    /// Deletes a user by name; its tokens fail from the next request on.
    pub async fn remove(&self, username: &str) -> Result<(), AccountError> {
        let user = self.find_by_name(username).await?;
        let removed = self.applied(self.store.remove_user(&user.id).await).await?;
        if removed.is_none() {
            return Err(AccountError::NoSuchUser(username.to_string()));
        }
        self.applied(self.store.remove_sessions_of(&user.id).await)
            .await?;
        Ok(())
    }

    /// Every user (service clients left out), sorted by name.
    pub async fn list(&self) -> Result<Vec<UserSummary>, AccountError> {
        let mut users = self.store.list_users().await?;
        users.retain(|user| user.kind == PrincipalKind::User);
        users.sort_by(|a, b| a.canonical.cmp(&b.canonical));
        Ok(users.iter().map(UserSummary::from).collect())
    }

    /// Ends one login session: its refresh tokens and access tokens stop working.
    pub async fn end_session(&self, user_id: &str, family: &str) -> Result<(), AccountError> {
        let ended = self.store.end_session(user_id, family, now_secs()).await;
        self.applied(ended).await?;
        Ok(())
    }

    /// Ends every live session of a user.
    pub async fn end_sessions_of(&self, user_id: &str) -> Result<(), AccountError> {
        let sessions = self.store.sessions_of(user_id).await?;
        for session in sessions.into_iter().filter(|s| s.ended_at.is_none()) {
            self.end_session(user_id, &session.family).await?;
        }
        Ok(())
    }

    /// Refuses one access token until `until` (logout).
    pub async fn revoke(&self, jti: &str, until: u64) -> Result<(), AccountError> {
        let record = RevokedRecord {
            jti: jti.to_string(),
            expires_at: until,
        };
        self.applied(self.store.insert_revoked(&record).await).await
    }

    /// Removes expired records (and old feed entries) from the store, and what has
    /// expired from the view.
    pub async fn purge(&self) -> Result<(), AccountError> {
        let now = now_secs();
        let purged = self.store.remove_expired(now, self.grace).await?;
        self.view.forget_expired(now);
        if purged != Purged::default() {
            tracing::debug!(?purged, "expired token records removed");
        }
        release_freed_memory().await;
        Ok(())
    }

    /// Applies one typed change to a user in the store, then the feed to the view.
    pub(super) async fn update(
        &self,
        user_id: &str,
        change: UserChange,
    ) -> Result<Option<UserRecord>, AccountError> {
        self.applied(self.store.update_user(user_id, change).await)
            .await
    }
}

/// Hands the heap's free pages back after a load or a purge (both free much at once on a
/// big store; [`crate::memory`]), on the blocking pool: it locks the allocator's arenas
/// one by one for a few milliseconds.
async fn release_freed_memory() {
    // Whether it gave anything back is logged there; nothing here depends on it.
    let _ = tokio::task::spawn_blocking(crate::memory::release_freed).await;
}

pub(super) fn check_roles(roles: &[String]) -> Result<(), AccountError> {
    match roles.iter().find(|role| !Role::is_valid(role)) {
        Some(role) => Err(AccountError::Policy(format!(
            "`{role}` is not a role name; {ROLE_RULE}"
        ))),
        None => Ok(()),
    }
}

pub(super) fn dedup(roles: Vec<String>) -> Vec<String> {
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
            StoreError::Conflict(Conflict::UsernameTaken) => AccountError::UsernameTaken,
            // Nothing was written (or not acknowledged): the caller answers 503, never 401.
            StoreError::Unavailable(detail) => AccountError::Unavailable(detail),
            other => AccountError::Internal(other.to_string()),
        }
    }
}
