//! Persistence of accounts and token state, behind a narrow trait ([`Store`]) so the
//! accounts layer does not know which database sits under it. [`SledStore`] is the
//! embedded backend; a PostgreSQL backend for multi-replica deployments will sit beside it.
//!
//! Record kinds, one sled `Tree` each (see [`sled_store`] for keys):
//! users (+ a unique index of canonical names), refresh tokens (only the SHA-256 of the
//! token), login sessions (refresh-token families), revoked access-token ids, and meta
//! (the generated signing secret). Every value is encoded as a version byte followed by
//! serde_json (`codec`), so later formats can migrate record by record.
//!
//! Contract of every write verb: it returns only once the write is durable (flushed), so
//! the caller may acknowledge it (SPEC §7: a crash loses no acknowledged write). The
//! store holds no policy: which user may log in, when a token is too old, how long things
//! live are the accounts layer's rules. The two exceptions are atomic by necessity:
//! [`Store::insert_session`] (compare the user's generation, then insert) and
//! [`Store::take_refresh`] (rotation with reuse detection, RFC 9700 §4.14.2), each one
//! transaction.

mod codec;
pub mod sled_store;

use serde::{Deserialize, Serialize};

pub use sled_store::SledStore;

/// A store failure. `Conflict` is an expected outcome (a unique name taken, a stale
/// generation); the others are faults.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness or compare-and-set condition failed; nothing was written.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// A record could not be decoded (unknown version or damaged data).
    #[error("corrupt record in {tree}: {detail}")]
    Corrupt { tree: &'static str, detail: String },
    /// The database itself failed (I/O, lock).
    #[error("store: {0}")]
    Backend(String),
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// A user account.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserRecord {
    /// Stable opaque id: the `sub` of the user's tokens. Never reused, so tokens of a
    /// removed user never match a later user of the same name.
    pub id: String,
    /// The name as created (what is displayed and put in tokens).
    pub username: String,
    /// Lower-case name: the unique key; names compare case-insensitively everywhere.
    pub canonical: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub roles: Vec<String>,
    pub enabled: bool,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds of the last password change (or creation): access tokens issued
    /// earlier are refused.
    pub password_changed_at: u64,
    /// Bumped by every change that ends the user's sessions (password, disable). A login
    /// session records the generation it was made under; one made under an older
    /// generation is refused, which closes the race between a login in flight and a
    /// password change.
    pub generation: u64,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("roles", &self.roles)
            .field("enabled", &self.enabled)
            .field("created", &self.created)
            .field("password_changed_at", &self.password_changed_at)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// One refresh token. The token itself is never stored, only its SHA-256.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefreshRecord {
    /// SHA-256 of the token (also the key); compared in constant time on lookup.
    pub token_hash: [u8; 32],
    /// The login session (family) it descends from.
    pub family: String,
    pub user_id: String,
    /// Unix seconds.
    pub expires_at: u64,
    /// Already exchanged for a successor: presenting it again is reuse.
    pub spent: bool,
}

impl std::fmt::Debug for RefreshRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshRecord")
            .field("family", &self.family)
            .field("user_id", &self.user_id)
            .field("expires_at", &self.expires_at)
            .field("spent", &self.spent)
            .finish_non_exhaustive()
    }
}

/// A login session: every refresh token descended from one login, and the access tokens
/// issued with them (their `sid` claim).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionRecord {
    /// The session id (`sid` claim).
    pub family: String,
    pub user_id: String,
    /// Unix seconds.
    pub created: u64,
    /// The user's [`UserRecord::generation`] when the session was made.
    pub generation: u64,
    /// Expiry of the newest refresh token (Unix seconds).
    pub expires_at: u64,
    /// When the session was ended (logout, reuse detected, password change, disable).
    pub ended_at: Option<u64>,
}

/// An access-token id revoked before its expiry (logout).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RevokedRecord {
    pub jti: String,
    /// Unix seconds after which the token is dead anyway and the record can go.
    pub expires_at: u64,
}

/// What [`Store::take_refresh`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// The token was live: it is now spent, its successor is stored, and the session's
    /// expiry moved to the successor's.
    Rotated(SessionRecord),
    /// The token was already spent: its whole session is now ended (RFC 9700 §4.14.2).
    Reused(SessionRecord),
    /// Unknown, expired, or its session is ended or gone. Nothing changed.
    Invalid,
}

/// What [`Store::remove_expired`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub refresh_tokens: usize,
    pub sessions: usize,
    pub revoked: usize,
}

/// The persistence interface the accounts layer depends on. Verbs: find, list, insert,
/// update, take, end, remove. Every write is durable when it returns.
pub trait Store: Send + Sync + 'static {
    /// A user by id.
    fn find_user(&self, id: &str) -> StoreResult<Option<UserRecord>>;
    /// A user by canonical (lower-case) name.
    fn find_user_by_name(&self, canonical: &str) -> StoreResult<Option<UserRecord>>;
    /// Every user.
    fn list_users(&self) -> StoreResult<Vec<UserRecord>>;
    /// Adds a user; `Conflict` when the canonical name is taken.
    fn insert_user(&self, user: &UserRecord) -> StoreResult<()>;
    /// Read-modify-write of one user, atomically; `None` when there is no such user.
    /// `change` may run more than once (transaction retries), so it must be pure.
    fn update_user(
        &self,
        id: &str,
        change: &dyn Fn(&mut UserRecord),
    ) -> StoreResult<Option<UserRecord>>;
    /// Deletes a user and its name; returns what was removed.
    fn remove_user(&self, id: &str) -> StoreResult<Option<UserRecord>>;

    /// Starts a login session with its first refresh token, in one transaction that
    /// first checks the user still exists, is enabled and is at `session.generation`
    /// (else `Conflict`, nothing written).
    fn insert_session(&self, session: &SessionRecord, token: &RefreshRecord) -> StoreResult<()>;
    /// A refresh token by hash (constant-time confirmed).
    fn find_refresh(&self, token_hash: &[u8; 32]) -> StoreResult<Option<RefreshRecord>>;
    /// Single-use exchange of a refresh token, in one transaction (RFC 6749 §6,
    /// RFC 9700 §4.14.2): a live token is marked spent and a successor with
    /// `next_hash`/`next_expires_at` is stored in its family; a spent one ends its family.
    fn take_refresh(
        &self,
        token_hash: &[u8; 32],
        now: u64,
        next_hash: &[u8; 32],
        next_expires_at: u64,
    ) -> StoreResult<Taken>;
    /// Every session of one user.
    fn sessions_of(&self, user_id: &str) -> StoreResult<Vec<SessionRecord>>;
    /// Every session (for loading the in-memory view at start).
    fn list_sessions(&self) -> StoreResult<Vec<SessionRecord>>;
    /// Marks a session ended at `now` (idempotent); `None` when there is no such session.
    fn end_session(
        &self,
        user_id: &str,
        family: &str,
        now: u64,
    ) -> StoreResult<Option<SessionRecord>>;
    /// Deletes every session of a user (the user is gone).
    fn remove_sessions_of(&self, user_id: &str) -> StoreResult<usize>;

    /// Records a revoked access-token id.
    fn insert_revoked(&self, record: &RevokedRecord) -> StoreResult<()>;
    /// Every revoked id still recorded.
    fn list_revoked(&self) -> StoreResult<Vec<RevokedRecord>>;

    /// The signing secret generated at first start, if any.
    fn find_secret(&self) -> StoreResult<Option<Vec<u8>>>;
    /// Keeps `secret` unless one is kept already; returns the one kept (first wins).
    fn insert_secret(&self, secret: &[u8]) -> StoreResult<Vec<u8>>;

    /// Removes refresh tokens past their expiry (or whose session is gone), sessions
    /// whose `expires_at` (live) or `ended_at` (ended) lies more than `grace` seconds
    /// before `now`, and revoked ids past their expiry.
    fn remove_expired(&self, now: u64, grace: u64) -> StoreResult<Purged>;

    /// Makes every earlier write durable (shutdown).
    fn flush(&self) -> StoreResult<()>;
}

/// Opens the embedded store at `path` off the async workers (sled's open reads and locks
/// files). The error names the path and, when another process holds it, says so.
pub async fn open(path: &std::path::Path) -> Result<std::sync::Arc<dyn Store>, String> {
    let path = path.to_path_buf();
    let opened = tokio::task::spawn_blocking(move || SledStore::open(&path))
        .await
        .map_err(|err| format!("store: the open task failed: {err}"))?;
    match opened {
        Ok(store) => Ok(std::sync::Arc::new(store)),
        Err(err) if sled_store::is_locked(&err) => Err(format!(
            "store.path: {err}; is another gatehouse serving this store?"
        )),
        Err(err) => Err(format!("store.path: {err}")),
    }
}
