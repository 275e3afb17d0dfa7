//! Persistence of accounts and token state, behind a narrow async trait ([`Store`]) so
//! the accounts layer does not know which database sits under it, and a change feed
//! ([`feed`]) through which every process keeps its in-memory view current. [`SledStore`]
//! is the embedded backend (one process); [`PostgresStore`] the one for replicas (SPEC §8),
//! beside it and passing the same contract suite (`tests/store_contract.rs`). [`open`]
//! chooses between them.
//!
//! [`snapshot`] is the whole store as one value and its JSON Lines file format, what
//! `gatehouse store export` / `store import` carry between stores and backends.
//!
//! Record kinds (see [`sled_store`] for the sled layout): users and service clients (one
//! record type, told apart by [`PrincipalKind`]; + a unique index of canonical names
//! shared by both), refresh tokens (only the SHA-256 of the token), login sessions
//! (refresh-token families, and browser sessions: SHA-256 of the cookie value, last use,
//! remember-me, SPEC §10), revoked access-token ids, meta (the generated signing
//! secret, the signing secret's fingerprint, the feed's counters) and the change log. Every value is encoded as a version
//! byte followed by serde_json (`codec`), so later formats can migrate record by record.
//!
//! Contract of every write verb:
//! - it returns only once the write is durable, so the caller may acknowledge it (SPEC §7:
//!   a crash loses no acknowledged write);
//! - when it changed anything, it appended exactly one [`Change`] to the feed *in the same
//!   transaction* as the data, and returns that change's sequence number in
//!   [`Written::seq`]; a change is never visible without its data, nor before a change
//!   with a smaller number. The writer applies the feed up to that number before it
//!   acknowledges (see `accounts::feed`).
//!
//! The store holds no policy: which user may log in, when a token is too old, how long
//! things live are the accounts layer's rules. The exceptions are atomic by necessity and
//! written down once here for every backend: [`UserChange::apply`] (the generation bump
//! rules), [`Store::insert_session`] (compare the user's state, then insert) and
//! [`Store::take_refresh`] (rotation with reuse detection, RFC 9700 §4.14.2), each one
//! transaction. Likewise the login counters shared by replicas ([`Store::counters`]): the
//! lockout rulebook ([`counters`]) runs inside the backend's transaction.
//!
//! Async without a macro crate: every verb returns a [`BoxFuture`] (`Pin<Box<dyn Future +
//! Send>>`), which is what `Arc<dyn Store>` needs (native `async fn` in traits is not
//! object-safe) and costs one allocation per call on paths that do I/O anyway. A verb's
//! future borrows only the store, never its arguments, so callers may pass temporaries.

mod codec;
pub mod counters;
pub mod feed;
pub mod postgres;
pub mod sled_store;
pub mod snapshot;

pub use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use counters::{CounterOp, CounterOutcome};
pub use feed::{Change, ChangeKind, Feed, Seq, FEED_RETENTION};
pub use postgres::PostgresStore;
pub use sled_store::SledStore;
pub use snapshot::Snapshot;

/// Why a conditional write did not happen. An expected outcome, not a fault: nothing was
/// written and no change was published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// [`Store::insert_user`]: another user or service client has this canonical name.
    #[error("username taken")]
    UsernameTaken,
    /// [`Store::insert_user`]: a user with this id exists.
    #[error("user id taken")]
    UserIdTaken,
    /// [`Store::insert_session`]: the user no longer exists.
    #[error("the user no longer exists")]
    NoSuchUser,
    /// [`Store::insert_session`]: the user is disabled.
    #[error("the user is disabled")]
    UserDisabled,
    /// [`Store::insert_session`]: the user's generation moved on since the password was
    /// verified (a password change or a disable in between).
    #[error("the user changed since (stale generation)")]
    StaleGeneration,
    /// [`Store::import`]: the store holds records already (a user, session, refresh
    /// token, revoked id or generated secret).
    #[error("the store is not empty")]
    NotEmpty,
}

/// A store failure. `Conflict` is an expected outcome; the others are faults.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness or compare-and-set condition failed; nothing was written.
    #[error("conflict: {0}")]
    Conflict(Conflict),
    /// A record could not be decoded (unknown version or damaged data).
    #[error("corrupt record in {tree}: {detail}")]
    Corrupt { tree: &'static str, detail: String },
    /// The database itself failed (I/O, lock).
    #[error("store: {0}")]
    Backend(String),
    /// The database cannot be reached (connection refused, timed out, lost): the write
    /// did not happen and may be retried; callers answer 503 `unavailable` with
    /// `Retry-After` (SPEC §8), never 401.
    #[error("the store cannot be reached: {0}")]
    Unavailable(String),
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// The result of a write verb: what it returns, and the sequence number of the change it
/// published (`None` when it changed nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written<T> {
    pub value: T,
    pub seq: Option<Seq>,
}

impl<T> Written<T> {
    /// A write that changed nothing.
    pub fn unchanged(value: T) -> Self {
        Written { value, seq: None }
    }
}

/// What kind of principal a [`UserRecord`] is. Service clients (machine callers of the
/// client-credentials grant, SPEC §4) live in the users table as principals of kind
/// `Client` (precedent: Keycloak's service-account users), so users and clients share one
/// name namespace (the unique canonical name) and every replica's view follows both
/// through the same feed. Serialized as the field `"principal"` (the feed's changes are
/// tagged by `"kind"` already): `"user"` / `"client"`, left out for users; absent
/// (records, feed entries and export lines written before clients existed) means `User`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    #[default]
    User,
    Client,
}

impl PrincipalKind {
    /// True for [`PrincipalKind::User`] (serde: the field is left out for users, so user
    /// records are written as before clients existed).
    pub fn is_user(&self) -> bool {
        *self == PrincipalKind::User
    }

    /// `user` or `client` (the PostgreSQL column's values).
    pub fn as_str(&self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Client => "client",
        }
    }

    /// The inverse of [`Self::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "user" => Some(PrincipalKind::User),
            "client" => Some(PrincipalKind::Client),
            _ => None,
        }
    }
}

/// How a service client's `password_hash` starts: the SHA-256 of its secret in hex follows
/// (written and checked by `accounts::clients`). Not a PHC string, so nothing mistakes it
/// for a password hash, and no password verifier accepts it.
pub const CLIENT_SECRET_HASH_PREFIX: &str = "$gatehouse-client-sha256$";

/// A user account, or a service client ([`PrincipalKind::Client`]): for a client,
/// `password_hash` holds the SHA-256 of its secret (`$gatehouse-client-sha256$<hex>`,
/// never a PHC string, see `auth::client_secret`), `password_changed_at` when that secret
/// was set, and `generation` is bumped by every rotation.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserRecord {
    /// Stable opaque id: the `sub` of the user's tokens. Never reused, so tokens of a
    /// removed user never match a later user of the same name.
    pub id: String,
    /// The name as created (what is displayed and put in tokens).
    pub username: String,
    /// Lower-case name: the unique key; names compare case-insensitively everywhere.
    pub canonical: String,
    /// argon2id PHC string, or the foreign hash an import brought (bcrypt, Django
    /// pbkdf2_sha256, another argon2) until the user's next successful login replaces it.
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
    /// A user or a service client.
    #[serde(
        rename = "principal",
        default,
        skip_serializing_if = "PrincipalKind::is_user"
    )]
    pub kind: PrincipalKind,
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
            .field("kind", &self.kind)
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
    /// A browser session (SPEC §10): signed in through the form, authenticated by a
    /// cookie, no refresh token; `expires_at` is its absolute expiry. Left out when
    /// `None`, so records and feed entries of token sessions read and write as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<BrowserSessionRecord>,
}

/// What a browser session has beyond a login session (SPEC §10).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BrowserSessionRecord {
    /// SHA-256 of the session cookie's value; the value itself is never stored. Written
    /// as 64 hex digits (records, feed entries, export lines).
    #[serde(with = "hex32")]
    pub cookie_hash: [u8; 32],
    /// Unix seconds of the last recorded use (recorded coarsely, see
    /// [`Store::touch_session`]); the sign-in time at first.
    pub last_seen: u64,
    /// Signed in with "remember me": no inactivity limit, only `expires_at`.
    pub remember_me: bool,
}

/// `[u8; 32]` as 64 lower-case hex digits in serde formats.
mod hex32 {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        serializer.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(deserializer)?;
        let invalid = || D::Error::custom("expected 64 hex digits");
        if text.len() != 64 || !text.is_ascii() {
            return Err(invalid());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| invalid())?;
        }
        Ok(out)
    }
}

impl std::fmt::Debug for BrowserSessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserSessionRecord")
            .field("last_seen", &self.last_seen)
            .field("remember_me", &self.remember_me)
            .finish_non_exhaustive()
    }
}

/// An access-token id revoked before its expiry (logout).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RevokedRecord {
    pub jti: String,
    /// Unix seconds after which the token is dead anyway and the record can go.
    pub expires_at: u64,
}

/// A user as the change feed publishes it and the in-memory view needs it: everything
/// of a [`UserRecord`] but the password hash, which never leaves the store except to
/// verify a password.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserState {
    pub id: String,
    pub username: String,
    pub canonical: String,
    pub roles: Vec<String>,
    pub enabled: bool,
    pub created: u64,
    pub password_changed_at: u64,
    pub generation: u64,
    #[serde(
        rename = "principal",
        default,
        skip_serializing_if = "PrincipalKind::is_user"
    )]
    pub kind: PrincipalKind,
}

impl From<&UserRecord> for UserState {
    fn from(user: &UserRecord) -> Self {
        UserState {
            id: user.id.clone(),
            username: user.username.clone(),
            canonical: user.canonical.clone(),
            roles: user.roles.clone(),
            enabled: user.enabled,
            created: user.created,
            password_changed_at: user.password_changed_at,
            generation: user.generation,
            kind: user.kind,
        }
    }
}

/// One change to a user, applied by the store inside its transaction
/// ([`Store::update_user`]). The rules of which change ends the user's sessions (bumps
/// [`UserRecord::generation`]) live here, once, for every backend.
#[derive(Clone, PartialEq, Eq)]
pub enum UserChange {
    /// A new password (`user passwd`, `/auth/password`): the hash, the change time (access
    /// tokens issued earlier are refused) and a generation bump (sessions made earlier
    /// are refused).
    SetPassword { hash: String, changed_at: u64 },
    /// A rehash after a login under older argon2 parameters or with an imported foreign
    /// hash (`user import`): the hash is replaced only
    /// while it is still `from` (the password did not change meanwhile). Not a password
    /// change: no generation bump, no change time.
    Rehash { from: String, to: String },
    /// Enable or disable. Disabling an enabled user bumps the generation (its sessions
    /// end and stay dead if it is enabled again); enabling does not.
    SetEnabled(bool),
    /// Replaces the roles.
    SetRoles(Vec<String>),
}

impl std::fmt::Debug for UserChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserChange::SetPassword { changed_at, .. } => f
                .debug_struct("SetPassword")
                .field("changed_at", changed_at)
                .finish_non_exhaustive(),
            UserChange::Rehash { .. } => f.debug_struct("Rehash").finish_non_exhaustive(),
            UserChange::SetEnabled(enabled) => f.debug_tuple("SetEnabled").field(enabled).finish(),
            UserChange::SetRoles(roles) => f.debug_tuple("SetRoles").field(roles).finish(),
        }
    }
}

impl UserChange {
    /// Applies the change to `user`; false when it left the record as it was (then the
    /// store writes nothing and publishes no change).
    pub fn apply(&self, user: &mut UserRecord) -> bool {
        match self {
            UserChange::SetPassword { hash, changed_at } => {
                user.password_hash.clone_from(hash);
                user.password_changed_at = *changed_at;
                user.generation += 1;
                true
            }
            UserChange::Rehash { from, to } => {
                if user.password_hash != *from || user.password_hash == *to {
                    return false;
                }
                user.password_hash.clone_from(to);
                true
            }
            UserChange::SetEnabled(enabled) => {
                if user.enabled == *enabled {
                    return false;
                }
                if user.enabled && !enabled {
                    user.generation += 1;
                }
                user.enabled = *enabled;
                true
            }
            UserChange::SetRoles(roles) => {
                if user.roles == *roles {
                    return false;
                }
                user.roles.clone_from(roles);
                true
            }
        }
    }
}

/// One change to a login session, applied by the store inside its transaction
/// ([`Store::end_session`], [`Store::touch_session`]): the rules live here, once for every
/// backend, as [`UserChange`]'s do. An ended session never changes again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionChange {
    /// Ends the session at this Unix second.
    End { at: u64 },
    /// Moves a browser session's last use forward (never back; a token session has none).
    Touch { last_seen: u64 },
}

impl SessionChange {
    /// Applies the change to `session`; false when it left the record as it was (then the
    /// store writes nothing and publishes no change).
    pub fn apply(&self, session: &mut SessionRecord) -> bool {
        if session.ended_at.is_some() {
            return false;
        }
        match self {
            SessionChange::End { at } => {
                session.ended_at = Some(*at);
                true
            }
            SessionChange::Touch { last_seen } => match &mut session.browser {
                Some(browser) if browser.last_seen < *last_seen => {
                    browser.last_seen = *last_seen;
                    true
                }
                _ => false,
            },
        }
    }
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
    /// Change-log entries older than [`FEED_RETENTION`].
    pub changes: usize,
}

/// Everything the in-memory view is built from, read as of one feed position: a view
/// loaded from it and then fed every change after `cursor` is current (list, then watch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    pub users: Vec<UserState>,
    /// Only the sessions a view needs ([`load_keeps`]), not every session: a store with a
    /// million live refresh sessions loads the few it must remember (issue #17).
    pub sessions: Vec<SessionRecord>,
    pub revoked: Vec<RevokedRecord>,
    /// The sequence number of the last change reflected in the lists.
    pub cursor: Seq,
}

/// Whether [`Store::load`] at `now` with `grace` returns `session`, whose user is `user`
/// (`None`: gone) — the sessions a view built from the load needs
/// (`accounts::view::View::replace`), written down once for every backend:
/// - ended, and ended no more than `grace` seconds before `now` (its access tokens may
///   still be unexpired);
/// - live, of a user that exists but is disabled or has moved to another generation
///   since (the view counts it as ended from `now`; the accounts layer ends it at start);
/// - a live browser session of its user's current generation, not yet past its expiry
///   (its cookie is authenticated from the view, SPEC §10).
///
/// Left out: live token sessions of their enabled user's current generation (their
/// tokens pass on the user's state alone, nothing about the session is checked),
/// sessions ended more than `grace` ago, expired browser sessions, and sessions whose
/// user is gone (every check fails on the missing user). PostgreSQL says the same in SQL.
pub fn load_keeps(session: &SessionRecord, user: Option<&UserState>, now: u64, grace: u64) -> bool {
    load_keeps_parts(
        session.ended_at,
        session.generation,
        session.expires_at,
        session.browser.is_some(),
        user.map(|user| (user.enabled, user.generation)),
        now,
        grace,
    )
}

/// [`load_keeps`] on the parts it reads: a backend may decide from these before it
/// decodes a whole record. `user`: the user's `(enabled, generation)`.
pub(crate) fn load_keeps_parts(
    ended_at: Option<u64>,
    generation: u64,
    expires_at: u64,
    browser: bool,
    user: Option<(bool, u64)>,
    now: u64,
    grace: u64,
) -> bool {
    match (ended_at, user) {
        (Some(ended_at), _) => ended_at.saturating_add(grace) >= now,
        (None, None) => false,
        (None, Some((enabled, current))) if !enabled || current != generation => true,
        (None, Some(_)) => browser && expires_at > now,
    }
}

/// The persistence interface the accounts layer depends on. Verbs: find, list, load,
/// insert, update, take, end, remove, export, import; and the feed. Every write is durable
/// when its future resolves and publishes one change when it changed anything (see the
/// module docs; `import` marks the log trimmed instead). Methods that take no `now` use the
/// store's clock only to stamp changes.
pub trait Store: Send + Sync + 'static {
    /// A user by id.
    fn find_user(&self, id: &str) -> BoxFuture<'_, StoreResult<Option<UserRecord>>>;
    /// A user by canonical (lower-case) name.
    fn find_user_by_name(&self, canonical: &str) -> BoxFuture<'_, StoreResult<Option<UserRecord>>>;
    /// Every user.
    fn list_users(&self) -> BoxFuture<'_, StoreResult<Vec<UserRecord>>>;
    /// Adds a user; `Conflict::UsernameTaken` when the canonical name is taken,
    /// `Conflict::UserIdTaken` when the id is. Publishes [`ChangeKind::UserPut`].
    fn insert_user(&self, user: &UserRecord) -> BoxFuture<'_, StoreResult<Written<()>>>;
    /// Adds many users in one transaction, all or none (`gatehouse user import`):
    /// `Conflict::UsernameTaken` when a canonical name is taken or given twice,
    /// `Conflict::UserIdTaken` when an id is. Publishes ONE [`ChangeKind::UsersPut`] with
    /// every user; nothing for an empty list.
    fn insert_users(&self, users: &[UserRecord]) -> BoxFuture<'_, StoreResult<Written<()>>>;
    /// Applies `change` to one user atomically ([`UserChange::apply`]); the user as it is
    /// now, or `None` when there is no such user. Publishes [`ChangeKind::UserPut`] when
    /// the record changed.
    fn update_user(
        &self,
        id: &str,
        change: UserChange,
    ) -> BoxFuture<'_, StoreResult<Written<Option<UserRecord>>>>;
    /// Deletes a user and its name; returns what was removed. Publishes
    /// [`ChangeKind::UserRemoved`].
    fn remove_user(&self, id: &str) -> BoxFuture<'_, StoreResult<Written<Option<UserRecord>>>>;

    /// Starts a login session with its first refresh token, in one transaction that
    /// first checks the user still exists, is enabled and is at `session.generation`
    /// (else the matching `Conflict`, nothing written). Publishes
    /// [`ChangeKind::SessionPut`].
    fn insert_session(
        &self,
        session: &SessionRecord,
        token: &RefreshRecord,
    ) -> BoxFuture<'_, StoreResult<Written<()>>>;
    /// Starts a browser session (SPEC §10; `session.browser` is `Some`), without a
    /// refresh token, in one transaction that first checks the user exactly as
    /// [`Self::insert_session`] does. Publishes [`ChangeKind::SessionPut`].
    fn insert_browser_session(
        &self,
        session: &SessionRecord,
    ) -> BoxFuture<'_, StoreResult<Written<()>>>;
    /// Moves a live browser session's `last_seen` forward to `last_seen`; true when it
    /// did. Nothing changes (and nothing is published) when the session is missing,
    /// ended, not a browser session, or already seen at or after `last_seen`.
    /// Publishes [`ChangeKind::SessionPut`] with the updated session.
    fn touch_session(
        &self,
        user_id: &str,
        family: &str,
        last_seen: u64,
    ) -> BoxFuture<'_, StoreResult<Written<bool>>>;
    /// A refresh token by hash (constant-time confirmed).
    fn find_refresh(
        &self,
        token_hash: &[u8; 32],
    ) -> BoxFuture<'_, StoreResult<Option<RefreshRecord>>>;
    /// Single-use exchange of a refresh token, in one transaction (RFC 6749 §6,
    /// RFC 9700 §4.14.2): a live token is marked spent and a successor with
    /// `next_hash`/`next_expires_at` is stored in its family; a spent one ends its family.
    /// Publishes [`ChangeKind::SessionPut`] unless the result is `Invalid`.
    fn take_refresh(
        &self,
        token_hash: &[u8; 32],
        now: u64,
        next_hash: &[u8; 32],
        next_expires_at: u64,
    ) -> BoxFuture<'_, StoreResult<Written<Taken>>>;
    /// Every session of one user.
    fn sessions_of(&self, user_id: &str) -> BoxFuture<'_, StoreResult<Vec<SessionRecord>>>;
    /// Marks a session ended at `now` (idempotent); `None` when there is no such session.
    /// Publishes [`ChangeKind::SessionPut`] when it ended it.
    fn end_session(
        &self,
        user_id: &str,
        family: &str,
        now: u64,
    ) -> BoxFuture<'_, StoreResult<Written<Option<SessionRecord>>>>;
    /// Deletes every session of a user (the user is gone); how many. Publishes
    /// [`ChangeKind::SessionsRemoved`] when there were any.
    fn remove_sessions_of(&self, user_id: &str) -> BoxFuture<'_, StoreResult<Written<usize>>>;

    /// Records a revoked access-token id. Publishes [`ChangeKind::Revoked`].
    fn insert_revoked(&self, record: &RevokedRecord) -> BoxFuture<'_, StoreResult<Written<()>>>;

    /// The signing secret generated at first start, if any.
    fn find_secret(&self) -> BoxFuture<'_, StoreResult<Option<Vec<u8>>>>;
    /// Keeps `secret` unless one is kept already; returns the one kept (first wins).
    /// Publishes [`ChangeKind::SecretKept`] (without the secret) when it kept this one.
    fn insert_secret(&self, secret: &[u8]) -> BoxFuture<'_, StoreResult<Written<Vec<u8>>>>;

    /// Whether this backend keeps a fingerprint of the signing secret for every process
    /// and restart on it to compare against ([`Self::keep_secret_fingerprint`]): both
    /// backends do (PostgreSQL: replicas must agree; sled: a restart with a changed or
    /// missing secret is refused). `false` (the default, test doubles): nothing to compare.
    fn keeps_secret_fingerprint(&self) -> bool {
        false
    }
    /// The kept fingerprint, if any, without keeping one.
    fn find_secret_fingerprint(&self) -> BoxFuture<'_, StoreResult<Option<String>>> {
        Box::pin(std::future::ready(Ok(None)))
    }
    /// Keeps `fingerprint` (of the signing secret in use; never the secret nor a plain
    /// hash of it) unless one is kept already, and returns the one kept (first wins), so
    /// a replica can tell whether its secret is the one the others use (SPEC §8). The
    /// default (a backend without [`Self::keeps_secret_fingerprint`]) keeps nothing and
    /// returns the given one. Publishes no change.
    fn keep_secret_fingerprint(&self, fingerprint: &str) -> BoxFuture<'_, StoreResult<String>> {
        Box::pin(std::future::ready(Ok(fingerprint.to_string())))
    }
    /// Forgets the kept fingerprint (the operator rotates the secret on purpose:
    /// `gatehouse migrate --reset-secret-fingerprint`); true when one was kept. Publishes
    /// no change.
    fn forget_secret_fingerprint(&self) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(std::future::ready(Ok(false)))
    }

    /// Whether this backend keeps login counters shared by every process on it
    /// ([`Self::counters`]; SPEC §8). `false` (the default, sled): lockouts live in the
    /// one process's memory (`accounts::throttle::MemoryThrottle`).
    fn shares_login_counters(&self) -> bool {
        false
    }
    /// Performs one login-throttle operation atomically: in one transaction, reads the
    /// rows of [`CounterOp::keys`] for update (creating missing ones when
    /// [`CounterOp::creates_rows`]), applies [`CounterOp::apply`] with `settings` at
    /// `now` (wall-clock milliseconds), writes back the rows it left `Some` and deletes
    /// the ones it left `None`. Lock the rows in the order of `keys()`. Publishes no
    /// change (nothing in the view depends on counters). The default (a backend without
    /// [`Self::shares_login_counters`]) refuses.
    fn counters(
        &self,
        op: CounterOp,
        settings: crate::config::LoginSettings,
        now: counters::Millis,
    ) -> BoxFuture<'_, StoreResult<CounterOutcome>> {
        let _ = (op, settings, now);
        Box::pin(std::future::ready(Err(StoreError::Backend(
            "this store keeps no shared login counters".into(),
        ))))
    }

    /// Users, revoked ids and the sessions a view built at `now` needs ([`load_keeps`]
    /// with `grace`), as of one feed position (start, and a replica that fell behind a
    /// trimmed log). A backend filters while it reads: the sessions left out are never
    /// all in memory at once.
    fn load(&self, now: u64, grace: u64) -> BoxFuture<'_, StoreResult<Loaded>>;
    /// Up to `limit` changes with a sequence number above `cursor`, in order, or
    /// [`Feed::Trimmed`] when the log no longer holds all of them. Only durable changes
    /// are returned.
    fn changes_since(&self, cursor: Seq, limit: usize) -> BoxFuture<'_, StoreResult<Feed>>;

    /// Removes refresh tokens past their expiry (or whose session is gone), sessions
    /// whose `expires_at` (live) or `ended_at` (ended) lies more than `grace` seconds
    /// before `now`, revoked ids past their expiry, and change-log entries older than
    /// [`FEED_RETENTION`]. Publishes no change: it removes only what every view forgets
    /// by the clock on its own.
    fn remove_expired(&self, now: u64, grace: u64) -> BoxFuture<'_, StoreResult<Purged>>;

    /// Every record of the store as of one moment (`gatehouse store export`, SPEC §1): no
    /// write is half in it. Records that point nowhere (a session whose user is gone, a
    /// refresh token whose session is gone; dead, awaiting the purge) are left out, see
    /// [`Snapshot::without_orphans`]. Order of the lists is not significant. Carries the
    /// generated secret: callers must guard it like the secret.
    fn export(&self) -> BoxFuture<'_, StoreResult<Snapshot>>;
    /// Loads `snapshot` into this store, all or nothing, in one transaction
    /// (`gatehouse store import`, SPEC §1, §8 "Moving"):
    /// - refuses with `Conflict::NotEmpty` (nothing written) when the store holds any
    ///   user, session, refresh token, revoked id or generated secret — checked inside
    ///   the same transaction (PostgreSQL: under a lock that keeps writers out). A store
    ///   with the schema and an old change log but no records counts as empty;
    /// - writes every record as given (ids, generations, hashes, the secret kept as the
    ///   generated one), so tokens issued before the export keep working after it;
    /// - publishes no per-record changes. Instead it consumes one sequence number `n`
    ///   and records the log as trimmed through `n`, in the same transaction: every
    ///   follower whose cursor lies below `n` gets [`Feed::Trimmed`] and reloads in full,
    ///   and [`Store::load`] afterwards returns a cursor of at least `n`. It returns
    ///   `Written { seq: Some(n) }` (a writer catching up to `n` reloads, too).
    ///
    /// An empty snapshot writes nothing and returns `seq: None`.
    fn import(&self, snapshot: Snapshot) -> BoxFuture<'_, StoreResult<Written<()>>>;

    /// Makes every earlier write durable (shutdown).
    fn flush(&self) -> BoxFuture<'_, StoreResult<()>>;

    /// A wake-up for followers of the feed: notified whenever the backend learns that
    /// new changes may be waiting (PostgreSQL: a NOTIFY on its LISTEN connection), so a
    /// follower polls at once instead of at its next tick. `None` (the default): the
    /// backend has no such signal and followers rely on polling alone. A missed signal
    /// costs only latency: followers poll by cursor regardless (LISTEN can die silently).
    fn change_signal(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }

    /// Whether the data lives in a database out of this process (PostgreSQL), which can
    /// become unreachable while the process runs: then the accounts layer tracks how long
    /// it has gone without hearing from it, and past `store.max_stale` protected routes
    /// answer 503 (SPEC §8 "Outage"). `false` (the default): an embedded store, never
    /// stale, nothing tracked.
    fn is_remote(&self) -> bool {
        false
    }
}

/// Why [`open`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// Another process holds the store (sled: its lock file).
    Locked(String),
    /// The database cannot be reached (yet): `serve` waits for it, not ready, and
    /// retries (SPEC §8: a replica started while the database is down becomes ready when
    /// it comes); every other failure ends the start at once.
    Unavailable(String),
    /// Anything else: the message says what.
    Failed(String),
    /// PostgreSQL: anything else (connection string, schema newer than this binary, a
    /// failed migration); the message says what and never shows the password.
    Database(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Locked(err) => write!(
                f,
                "store.path: {err}; is another gatehouse serving this store?"
            ),
            OpenError::Unavailable(err) => {
                write!(f, "store: the database cannot be reached: {err}")
            }
            OpenError::Failed(err) => write!(f, "store.path: {err}"),
            OpenError::Database(err) => write!(f, "store: {err}"),
        }
    }
}

/// Opens the store `[store]` names. The one place the backend is chosen. PostgreSQL:
/// the schema is migrated first (under a lock; a schema newer than this binary is refused),
/// and one verb waits at most `store.max_stale` (capped at the driver's default bound).
pub async fn open(
    settings: &crate::config::StoreSettings,
) -> Result<std::sync::Arc<dyn Store>, OpenError> {
    if settings.backend == crate::config::StoreBackend::Postgres {
        // `store.path` is still the admin socket's directory (private, as with sled).
        sled_store::prepare_dir(&settings.path)
            .map_err(|err| OpenError::Failed(err.to_string()))?;
        let conn = settings.postgres.connection_string().map_err(|problem| {
            OpenError::Database(format!("{}: {}", problem.path, problem.problem))
        })?;
        let defaults = postgres::PostgresOptions::default();
        let options = postgres::PostgresOptions {
            pool_size: settings.postgres.pool_size,
            // A write waits for the database no longer than a replica would keep serving
            // without hearing from it (a frozen database: 503 after that, not a request
            // hanging for the default bound).
            op_timeout: settings.max_stale.min(defaults.op_timeout),
            ..defaults
        };
        return match PostgresStore::open(&conn, options).await {
            Ok(store) => Ok(std::sync::Arc::new(store)),
            Err(postgres::OpenFailure::Unavailable(err)) => Err(OpenError::Unavailable(err)),
            Err(err) => Err(OpenError::Database(err.to_string())),
        };
    }
    let path = settings.path.clone();
    let opened = tokio::task::spawn_blocking(move || SledStore::open(&path))
        .await
        .map_err(|err| OpenError::Failed(format!("the open task failed: {err}")))?;
    match opened {
        Ok(store) => Ok(std::sync::Arc::new(store)),
        Err(err) if sled_store::is_locked(&err) => Err(OpenError::Locked(err.to_string())),
        Err(err) => Err(OpenError::Failed(err.to_string())),
    }
}
