//! The embedded backend: one sled database in `store.path` (a directory created with mode
//! 0700; the admin socket lives there too), one `Tree` per record kind:
//!
//! | tree             | key                      | value                               |
//! |------------------|--------------------------|-------------------------------------|
//! | `users`          | user id                  | v1 [`UserRecord`]                   |
//! | `usernames`      | canonical (lower) name   | user id (raw UTF-8; unique index)   |
//! | `refresh_tokens` | SHA-256 of token (32 B)  | v1 [`RefreshRecord`]                |
//! | `sessions`       | `<user id>/<session id>` | v1 [`SessionRecord`]                |
//! | `revoked`        | access-token `jti`       | v1 [`RevokedRecord`]                |
//! | `changes`        | sequence number (u64 BE) | v1 `{"at": secs, "kind": …}`        |
//! | `meta`           | `signing_secret`         | v1 `{"secret": base64}`             |
//! |                  | `secret_fingerprint`     | v1 `{"fingerprint": text}`          |
//! |                  | `feed_head`              | v1 last sequence number given out   |
//! |                  | `feed_trimmed`           | v1 highest sequence number trimmed  |
//!
//! Sessions are keyed under their user so a password change or a disable finds all of a
//! user's sessions with one prefix scan. A browser session (SPEC §10) is a session record
//! with its `browser` part (cookie SHA-256, last use, remember-me) and no refresh token;
//! a token session's record has no such field, as before browser sessions existed.
//!
//! Writes: each write verb is one sled transaction over its data trees plus `meta` and
//! `changes`, which reads `feed_head`, appends the change under the next number and
//! stores the new head, so data and change commit together (sled makes a committed
//! multi-tree transaction visible at once). Writers are also serialized by a mutex around
//! the transaction (not the fsync), so numbers are handed out in commit order. Then the
//! verb flushes (fsync) before returning: callers acknowledge only durable writes.
//! [`Store::changes_since`] returns only changes up to the highest number known flushed,
//! so the feed never shows a change a crash could still take back.
//!
//! Export reads every tree under the writer lock (sled has no snapshot across trees; no
//! publishing write commits meanwhile). Import checks the store is empty under the same
//! lock, writes every record in one transaction (held in memory until it commits: fine
//! for the sizes a single-process store reaches) and, instead of one change per record,
//! takes one sequence number and records the log as trimmed through it, so a follower
//! reloads in full.
//!
//! The signing secret's fingerprint is kept here too ([`Store::keeps_secret_fingerprint`]):
//! one process has no replica to disagree with, but a restart with a changed or missing
//! secret would silently log everyone out (SPEC §8 "Secret"; `accounts` refuses it).
//!
//! sled is synchronous: every verb runs on tokio's blocking pool, here and only here.
//!
//! sled lets one process open a database; a second `open` fails with "could not acquire
//! lock" ([`is_locked`]), which is how the CLI learns that a gateway holds the store.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;
use subtle::ConstantTimeEq;

use super::codec::{decode, encode};
use super::{
    load_keeps_parts, BoxFuture, Change, ChangeKind, Conflict, Feed, Loaded, Purged, RefreshRecord,
    RevokedRecord, Seq, SessionChange, SessionRecord, Snapshot, Store, StoreError, StoreResult,
    Taken, UserChange, UserRecord, UserState, Written, FEED_RETENTION,
};

const USERS: &str = "users";
const USERNAMES: &str = "usernames";
const REFRESH: &str = "refresh_tokens";
const SESSIONS: &str = "sessions";
const REVOKED: &str = "revoked";
const CHANGES: &str = "changes";
const META: &str = "meta";
const SECRET_KEY: &[u8] = b"signing_secret";
const FINGERPRINT_KEY: &[u8] = b"secret_fingerprint";
const FEED_HEAD: &[u8] = b"feed_head";
const FEED_TRIMMED: &[u8] = b"feed_trimmed";

/// The sled-backed [`Store`]. Cheap to clone: the handles are shared.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    db: sled::Db,
    users: sled::Tree,
    usernames: sled::Tree,
    refresh: sled::Tree,
    sessions: sled::Tree,
    revoked: sled::Tree,
    changes: sled::Tree,
    meta: sled::Tree,
    /// Held around each publishing transaction: one writer hands out numbers at a time.
    writer: Mutex<()>,
    /// Every change up to this number is flushed to disk.
    durable: AtomicU64,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct SecretRecord {
    secret: String,
}

#[derive(Serialize, Deserialize)]
struct FingerprintRecord {
    fingerprint: String,
}

/// What [`load_keeps_parts`] reads of a session record, borrowed from the encoded bytes
/// (serde ignores the other fields).
#[derive(Deserialize)]
struct SessionHead<'a> {
    #[serde(borrow)]
    user_id: std::borrow::Cow<'a, str>,
    generation: u64,
    expires_at: u64,
    ended_at: Option<u64>,
    #[serde(default)]
    browser: Option<serde::de::IgnoredAny>,
}

/// A change as written to the `changes` tree (its number is the key).
#[derive(Serialize)]
struct ChangeOut<'a> {
    at: u64,
    kind: &'a ChangeKind,
}

#[derive(Deserialize)]
struct ChangeIn {
    at: u64,
    kind: ChangeKind,
}

fn backend(err: sled::Error) -> StoreError {
    StoreError::Backend(err.to_string())
}

/// True when an open failed because another process holds the database.
pub fn is_locked(err: &StoreError) -> bool {
    matches!(err, StoreError::Backend(text) if text.contains(LOCK_HELD))
}

/// How sled words an `Other` I/O error when another handle holds the database's lock file.
const LOCK_HELD: &str = "could not acquire lock";

/// Creates `path` (and parents) with mode 0700, and tightens an existing directory that
/// others could read: it holds password hashes and the admin socket.
pub fn prepare_dir(path: &Path) -> StoreResult<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|err| {
                StoreError::Backend(format!("cannot create {}: {err}", path.display()))
            })?;
        let metadata = std::fs::metadata(path).map_err(|err| {
            StoreError::Backend(format!("cannot inspect {}: {err}", path.display()))
        })?;
        if metadata.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(
                |err| {
                    StoreError::Backend(format!(
                        "{} is readable by others and cannot be restricted to 0700: {err}",
                        path.display()
                    ))
                },
            )?;
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(path)
        .map_err(|err| StoreError::Backend(format!("cannot create {}: {err}", path.display())))?;
    Ok(())
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn abort<T>(err: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(err))
}

fn conflict<T>(conflict: Conflict) -> TxResult<T> {
    abort(StoreError::Conflict(conflict))
}

fn tx_decode<T: serde::de::DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> TxResult<T> {
    decode(tree, bytes).map_err(ConflictableTransactionError::Abort)
}

fn tx_encode(value: &impl Serialize) -> TxResult<Vec<u8>> {
    encode(value).map_err(ConflictableTransactionError::Abort)
}

fn tx_error(err: TransactionError<StoreError>) -> StoreError {
    match err {
        TransactionError::Abort(err) => err,
        TransactionError::Storage(err) => backend(err),
    }
}

fn session_key(user_id: &str, family: &str) -> Vec<u8> {
    format!("{user_id}/{family}").into_bytes()
}

fn user_prefix(user_id: &str) -> Vec<u8> {
    format!("{user_id}/").into_bytes()
}

/// Reads and decodes one value inside a transaction.
fn tx_get<T: serde::de::DeserializeOwned>(
    tree: &TransactionalTree,
    name: &'static str,
    key: &[u8],
) -> TxResult<Option<T>> {
    match tree.get(key)? {
        Some(bytes) => Ok(Some(tx_decode(name, &bytes)?)),
        None => Ok(None),
    }
}

/// Inserts a user and its name inside a transaction, refusing a taken name or id.
fn insert_new_user(
    users: &TransactionalTree,
    usernames: &TransactionalTree,
    user: &UserRecord,
    value: &[u8],
) -> TxResult<()> {
    if usernames.get(user.canonical.as_bytes())?.is_some() {
        return conflict(Conflict::UsernameTaken);
    }
    if users.get(user.id.as_bytes())?.is_some() {
        return conflict(Conflict::UserIdTaken);
    }
    usernames.insert(user.canonical.as_bytes(), user.id.as_bytes())?;
    users.insert(user.id.as_bytes(), value)?;
    Ok(())
}

/// Unix seconds by the store's clock (stamps changes for trimming).
fn clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Appends `kind` to the change log inside the caller's transaction, under the number
/// after `feed_head`; returns that number.
fn publish(
    meta: &TransactionalTree,
    changes: &TransactionalTree,
    kind: &ChangeKind,
) -> TxResult<Seq> {
    let head: Seq = tx_get(meta, META, FEED_HEAD)?.unwrap_or(0);
    let seq = head + 1;
    meta.insert(FEED_HEAD, tx_encode(&seq)?)?;
    changes.insert(
        &seq.to_be_bytes()[..],
        tx_encode(&ChangeOut { at: clock(), kind })?,
    )?;
    Ok(seq)
}

fn seq_of(key: &[u8]) -> StoreResult<Seq> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| StoreError::Corrupt {
        tree: CHANGES,
        detail: format!("a key of {} bytes is no sequence number", key.len()),
    })?;
    Ok(Seq::from_be_bytes(bytes))
}

impl SledStore {
    /// Opens (creating if needed) the store at `path`. Blocking: call it off the async
    /// workers (`store::open` does).
    pub fn open(path: &Path) -> StoreResult<Self> {
        prepare_dir(path)?;
        let db = open_db(path).map_err(|err| {
            StoreError::Backend(format!(
                "cannot open the store at {}: {err}",
                path.display()
            ))
        })?;
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        let inner = Inner {
            path: path.to_path_buf(),
            users: tree(USERS)?,
            usernames: tree(USERNAMES)?,
            refresh: tree(REFRESH)?,
            sessions: tree(SESSIONS)?,
            revoked: tree(REVOKED)?,
            changes: tree(CHANGES)?,
            meta: tree(META)?,
            writer: Mutex::new(()),
            durable: AtomicU64::new(0),
            db,
        };
        // What sled recovered from disk is durable.
        let head = inner.head()?;
        inner.durable.store(head, Ordering::Release);
        Ok(SledStore {
            inner: Arc::new(inner),
        })
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `op` on the blocking pool.
    fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Inner) -> StoreResult<T> + Send + 'static,
    ) -> BoxFuture<'static, StoreResult<T>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || op(&inner))
                .await
                .map_err(|err| StoreError::Backend(format!("the store task failed: {err}")))?
        })
    }
}

impl Inner {
    fn head(&self) -> StoreResult<Seq> {
        match self.meta.get(FEED_HEAD).map_err(backend)? {
            Some(bytes) => decode(META, &bytes),
            None => Ok(0),
        }
    }

    fn trimmed(&self) -> StoreResult<Seq> {
        match self.meta.get(FEED_TRIMMED).map_err(backend)? {
            Some(bytes) => decode(META, &bytes),
            None => Ok(0),
        }
    }

    fn flush(&self) -> StoreResult<()> {
        self.db.flush().map(|_| ()).map_err(backend)
    }

    /// Runs one publishing transaction under the writer lock, then makes it durable and
    /// lets the feed show it. `txn` returns the verb's value and the number of the change
    /// it published, if it changed anything.
    fn write<T>(
        &self,
        txn: impl FnOnce() -> Result<(T, Option<Seq>), TransactionError<StoreError>>,
    ) -> StoreResult<Written<T>> {
        let (value, seq) = {
            let _writer = self
                .writer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            txn().map_err(tx_error)?
        };
        if let Some(seq) = seq {
            // A flush persists everything committed before it, so every number up to
            // ours (handed out in commit order) is durable once it returns.
            self.flush()?;
            self.durable.fetch_max(seq, Ordering::AcqRel);
        }
        Ok(Written { value, seq })
    }

    fn all<T: serde::de::DeserializeOwned>(
        tree: &sled::Tree,
        name: &'static str,
    ) -> StoreResult<Vec<T>> {
        tree.iter()
            .values()
            .map(|value| decode(name, &value.map_err(backend)?))
            .collect()
    }

    fn find_user(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        match self.users.get(id).map_err(backend)? {
            Some(bytes) => Ok(Some(decode(USERS, &bytes)?)),
            None => Ok(None),
        }
    }

    fn find_user_by_name(&self, canonical: &str) -> StoreResult<Option<UserRecord>> {
        match self.usernames.get(canonical).map_err(backend)? {
            Some(id) => self.find_user(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    fn insert_user(&self, user: &UserRecord) -> StoreResult<Written<()>> {
        let value = encode(user)?;
        let change = ChangeKind::UserPut(UserState::from(user));
        self.write(|| {
            (&self.users, &self.usernames, &self.meta, &self.changes).transaction(
                |(users, usernames, meta, changes)| {
                    insert_new_user(users, usernames, user, &value)?;
                    Ok(((), Some(publish(meta, changes, &change)?)))
                },
            )
        })
    }

    fn insert_users(&self, list: &[UserRecord]) -> StoreResult<Written<()>> {
        if list.is_empty() {
            return Ok(Written::unchanged(()));
        }
        let values = list
            .iter()
            .map(|user| Ok((user, encode(user)?)))
            .collect::<StoreResult<Vec<_>>>()?;
        let change = ChangeKind::UsersPut {
            users: list.iter().map(UserState::from).collect(),
        };
        self.write(|| {
            (&self.users, &self.usernames, &self.meta, &self.changes).transaction(
                |(users, usernames, meta, changes)| {
                    for (user, value) in &values {
                        // A name given twice in the list finds its first insert here.
                        insert_new_user(users, usernames, user, value)?;
                    }
                    Ok(((), Some(publish(meta, changes, &change)?)))
                },
            )
        })
    }

    fn update_user(
        &self,
        id: &str,
        change: &UserChange,
    ) -> StoreResult<Written<Option<UserRecord>>> {
        self.write(|| {
            (&self.users, &self.meta, &self.changes).transaction(|(users, meta, changes)| {
                let Some(mut user) = tx_get::<UserRecord>(users, USERS, id.as_bytes())? else {
                    return Ok((None, None));
                };
                if !change.apply(&mut user) {
                    return Ok((Some(user), None));
                }
                users.insert(id.as_bytes(), tx_encode(&user)?)?;
                let seq = publish(meta, changes, &ChangeKind::UserPut(UserState::from(&user)))?;
                Ok((Some(user), Some(seq)))
            })
        })
    }

    fn remove_user(&self, id: &str) -> StoreResult<Written<Option<UserRecord>>> {
        let change = ChangeKind::UserRemoved { id: id.to_string() };
        self.write(|| {
            (&self.users, &self.usernames, &self.meta, &self.changes).transaction(
                |(users, usernames, meta, changes)| {
                    let Some(user) = tx_get::<UserRecord>(users, USERS, id.as_bytes())? else {
                        return Ok((None, None));
                    };
                    users.remove(id.as_bytes())?;
                    if usernames.get(user.canonical.as_bytes())?.as_deref() == Some(id.as_bytes()) {
                        usernames.remove(user.canonical.as_bytes())?;
                    }
                    Ok((Some(user), Some(publish(meta, changes, &change)?)))
                },
            )
        })
    }

    fn insert_session(
        &self,
        session: &SessionRecord,
        token: Option<&RefreshRecord>,
    ) -> StoreResult<Written<()>> {
        let session_value = encode(session)?;
        let token_value = token.map(encode).transpose()?;
        let key = session_key(&session.user_id, &session.family);
        let change = ChangeKind::SessionPut(session.clone());
        self.write(|| {
            (
                &self.users,
                &self.sessions,
                &self.refresh,
                &self.meta,
                &self.changes,
            )
                .transaction(|(users, sessions, refresh, meta, changes)| {
                    match tx_get::<UserRecord>(users, USERS, session.user_id.as_bytes())? {
                        None => return conflict(Conflict::NoSuchUser),
                        Some(user) if !user.enabled => return conflict(Conflict::UserDisabled),
                        Some(user) if user.generation != session.generation => {
                            return conflict(Conflict::StaleGeneration)
                        }
                        Some(_) => {}
                    }
                    sessions.insert(key.as_slice(), session_value.clone())?;
                    if let (Some(token), Some(value)) = (token, &token_value) {
                        refresh.insert(&token.token_hash[..], value.clone())?;
                    }
                    Ok(((), Some(publish(meta, changes, &change)?)))
                })
        })
    }

    fn touch_session(
        &self,
        user_id: &str,
        family: &str,
        last_seen: u64,
    ) -> StoreResult<Written<bool>> {
        let written = self.change_session(user_id, family, SessionChange::Touch { last_seen })?;
        Ok(Written {
            value: written.seq.is_some(),
            seq: written.seq,
        })
    }

    /// Applies `change` to one session ([`SessionChange::apply`]) in one transaction with
    /// its feed entry; the session as it is now, or `None` when there is none.
    fn change_session(
        &self,
        user_id: &str,
        family: &str,
        change: SessionChange,
    ) -> StoreResult<Written<Option<SessionRecord>>> {
        let key = session_key(user_id, family);
        self.write(|| {
            (&self.sessions, &self.meta, &self.changes).transaction(|(sessions, meta, changes)| {
                let Some(mut session) = tx_get::<SessionRecord>(sessions, SESSIONS, &key)? else {
                    return Ok((None, None));
                };
                if !change.apply(&mut session) {
                    return Ok((Some(session), None));
                }
                sessions.insert(key.as_slice(), tx_encode(&session)?)?;
                let seq = publish(meta, changes, &ChangeKind::SessionPut(session.clone()))?;
                Ok((Some(session), Some(seq)))
            })
        })
    }

    fn find_refresh(&self, token_hash: &[u8; 32]) -> StoreResult<Option<RefreshRecord>> {
        let Some(bytes) = self.refresh.get(token_hash).map_err(backend)? else {
            return Ok(None);
        };
        let record: RefreshRecord = decode(REFRESH, &bytes)?;
        if bool::from(record.token_hash.ct_eq(token_hash)) {
            Ok(Some(record))
        } else {
            Ok(None)
        }
    }

    fn take_refresh(
        &self,
        token_hash: &[u8; 32],
        now: u64,
        next_hash: &[u8; 32],
        next_expires_at: u64,
    ) -> StoreResult<Written<Taken>> {
        self.write(|| {
            (&self.refresh, &self.sessions, &self.meta, &self.changes).transaction(
                |(refresh, sessions, meta, changes)| {
                    let Some(mut token) = tx_get::<RefreshRecord>(refresh, REFRESH, token_hash)?
                    else {
                        return Ok((Taken::Invalid, None));
                    };
                    if !bool::from(token.token_hash.ct_eq(token_hash)) {
                        return Ok((Taken::Invalid, None));
                    }
                    let key = session_key(&token.user_id, &token.family);
                    let Some(mut session) = tx_get::<SessionRecord>(sessions, SESSIONS, &key)?
                    else {
                        return Ok((Taken::Invalid, None));
                    };
                    if session.ended_at.is_some() {
                        return Ok((Taken::Invalid, None));
                    }
                    if token.spent {
                        // RFC 9700 §4.14.2: a spent token presented again means one of two
                        // parties holds a stolen copy; end the whole family.
                        session.ended_at = Some(now);
                        sessions.insert(key.as_slice(), tx_encode(&session)?)?;
                        let seq = publish(meta, changes, &ChangeKind::SessionPut(session.clone()))?;
                        return Ok((Taken::Reused(session), Some(seq)));
                    }
                    if token.expires_at <= now {
                        return Ok((Taken::Invalid, None));
                    }
                    token.spent = true;
                    refresh.insert(&token_hash[..], tx_encode(&token)?)?;
                    let next = RefreshRecord {
                        token_hash: *next_hash,
                        family: token.family.clone(),
                        user_id: token.user_id.clone(),
                        expires_at: next_expires_at,
                        spent: false,
                    };
                    refresh.insert(&next_hash[..], tx_encode(&next)?)?;
                    session.expires_at = session.expires_at.max(next_expires_at);
                    sessions.insert(key.as_slice(), tx_encode(&session)?)?;
                    let seq = publish(meta, changes, &ChangeKind::SessionPut(session.clone()))?;
                    Ok((Taken::Rotated(session), Some(seq)))
                },
            )
        })
    }

    fn sessions_of(&self, user_id: &str) -> StoreResult<Vec<SessionRecord>> {
        self.sessions
            .scan_prefix(user_prefix(user_id))
            .values()
            .map(|value| decode(SESSIONS, &value.map_err(backend)?))
            .collect()
    }

    fn end_session(
        &self,
        user_id: &str,
        family: &str,
        now: u64,
    ) -> StoreResult<Written<Option<SessionRecord>>> {
        self.change_session(user_id, family, SessionChange::End { at: now })
    }

    fn remove_sessions_of(&self, user_id: &str) -> StoreResult<Written<usize>> {
        let change = ChangeKind::SessionsRemoved {
            user_id: user_id.to_string(),
        };
        self.write(|| {
            let keys = self
                .sessions
                .scan_prefix(user_prefix(user_id))
                .keys()
                .collect::<Result<Vec<_>, _>>()
                .map_err(TransactionError::Storage)?;
            if keys.is_empty() {
                return Ok((0, None));
            }
            (&self.sessions, &self.meta, &self.changes).transaction(|(sessions, meta, changes)| {
                for key in &keys {
                    sessions.remove(key.clone())?;
                }
                Ok((keys.len(), Some(publish(meta, changes, &change)?)))
            })
        })
    }

    fn insert_revoked(&self, record: &RevokedRecord) -> StoreResult<Written<()>> {
        let value = encode(record)?;
        let change = ChangeKind::Revoked(record.clone());
        self.write(|| {
            (&self.revoked, &self.meta, &self.changes).transaction(|(revoked, meta, changes)| {
                revoked.insert(record.jti.as_bytes(), value.clone())?;
                Ok(((), Some(publish(meta, changes, &change)?)))
            })
        })
    }

    fn find_secret(&self) -> StoreResult<Option<Vec<u8>>> {
        match self.meta.get(SECRET_KEY).map_err(backend)? {
            Some(bytes) => decode_secret(&bytes).map(Some),
            None => Ok(None),
        }
    }

    fn insert_secret(&self, secret: &[u8]) -> StoreResult<Written<Vec<u8>>> {
        let value = encode(&SecretRecord {
            secret: base64::engine::general_purpose::STANDARD.encode(secret),
        })?;
        let written = self.write(|| {
            (&self.meta, &self.changes).transaction(|(meta, changes)| {
                if let Some(existing) = meta.get(SECRET_KEY)? {
                    return Ok((Some(existing), None));
                }
                meta.insert(SECRET_KEY, value.clone())?;
                Ok((None, Some(publish(meta, changes, &ChangeKind::SecretKept)?)))
            })
        })?;
        let kept = match &written.value {
            Some(existing) => decode_secret(existing)?,
            None => secret.to_vec(),
        };
        Ok(Written {
            value: kept,
            seq: written.seq,
        })
    }

    /// First kept wins; publishes no change, but is flushed before it returns like every
    /// other write.
    fn keep_fingerprint(&self, fingerprint: &str) -> StoreResult<String> {
        let value = encode(&FingerprintRecord {
            fingerprint: fingerprint.to_string(),
        })?;
        let previous = self
            .meta
            .compare_and_swap(FINGERPRINT_KEY, None as Option<&[u8]>, Some(value))
            .map_err(backend)?;
        match previous {
            Ok(()) => {
                self.flush()?;
                Ok(fingerprint.to_string())
            }
            Err(existing) => match existing.current {
                Some(bytes) => decode::<FingerprintRecord>(META, &bytes).map(|r| r.fingerprint),
                None => Err(StoreError::Corrupt {
                    tree: META,
                    detail: "the kept fingerprint vanished".into(),
                }),
            },
        }
    }

    fn find_fingerprint(&self) -> StoreResult<Option<String>> {
        match self.meta.get(FINGERPRINT_KEY).map_err(backend)? {
            Some(bytes) => decode::<FingerprintRecord>(META, &bytes).map(|r| Some(r.fingerprint)),
            None => Ok(None),
        }
    }

    fn forget_fingerprint(&self) -> StoreResult<bool> {
        let removed = self.meta.remove(FINGERPRINT_KEY).map_err(backend)?;
        self.flush()?;
        Ok(removed.is_some())
    }

    fn load(&self, now: u64, grace: u64) -> StoreResult<Loaded> {
        // No publishing transaction can commit while the writer lock is held, so the
        // lists and the cursor describe one state.
        let _writer = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let cursor = self.head()?;
        let users: Vec<UserState> = self
            .users
            .iter()
            .values()
            .map(|value| {
                decode::<UserRecord>(USERS, &value.map_err(backend)?)
                    .map(|user| UserState::from(&user))
            })
            .collect::<StoreResult<_>>()?;
        let states: std::collections::HashMap<&str, (bool, u64)> = users
            .iter()
            .map(|user| (user.id.as_str(), (user.enabled, user.generation)))
            .collect();
        // Filtered while iterating: each record is first read as its few deciding fields
        // (borrowed, nothing allocated) and decoded whole only when it is kept.
        let mut sessions = Vec::new();
        for value in self.sessions.iter().values() {
            let value = value.map_err(backend)?;
            let head: SessionHead<'_> = decode(SESSIONS, &value)?;
            let user = states.get(head.user_id.as_ref()).copied();
            if load_keeps_parts(
                head.ended_at,
                head.generation,
                head.expires_at,
                head.browser.is_some(),
                user,
                now,
                grace,
            ) {
                sessions.push(decode(SESSIONS, &value)?);
            }
        }
        Ok(Loaded {
            users,
            sessions,
            revoked: Self::all(&self.revoked, REVOKED)?,
            cursor,
        })
    }

    fn export(&self) -> StoreResult<Snapshot> {
        // As in `load`: no publishing transaction commits while the writer lock is held,
        // so the trees are read as of one state. (sled has no snapshot across trees; the
        // purge removes without the lock, but only dead records, and what it leaves
        // pointing nowhere `without_orphans` drops.) Writers wait for the scan.
        let _writer = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let snapshot = Snapshot {
            users: Self::all(&self.users, USERS)?,
            sessions: Self::all(&self.sessions, SESSIONS)?,
            refresh_tokens: Self::all(&self.refresh, REFRESH)?,
            revoked: Self::all(&self.revoked, REVOKED)?,
            secret: self.find_secret()?.map(zeroize::Zeroizing::new),
        };
        Ok(snapshot.without_orphans())
    }

    /// True when no tree holds a record (the change log and its counters aside).
    fn is_empty(&self) -> StoreResult<bool> {
        Ok(self.users.is_empty()
            && self.usernames.is_empty()
            && self.sessions.is_empty()
            && self.refresh.is_empty()
            && self.revoked.is_empty()
            && !self.meta.contains_key(SECRET_KEY).map_err(backend)?)
    }

    fn import(&self, snapshot: &Snapshot) -> StoreResult<Written<()>> {
        let users = snapshot
            .users
            .iter()
            .map(|user| Ok((user.id.clone().into_bytes(), encode(user)?)))
            .collect::<StoreResult<Vec<(Vec<u8>, Vec<u8>)>>>()?;
        let sessions = snapshot
            .sessions
            .iter()
            .map(|session| {
                Ok((
                    session_key(&session.user_id, &session.family),
                    encode(session)?,
                ))
            })
            .collect::<StoreResult<Vec<(Vec<u8>, Vec<u8>)>>>()?;
        let refresh = snapshot
            .refresh_tokens
            .iter()
            .map(|token| Ok((token.token_hash.to_vec(), encode(token)?)))
            .collect::<StoreResult<Vec<(Vec<u8>, Vec<u8>)>>>()?;
        let revoked = snapshot
            .revoked
            .iter()
            .map(|record| Ok((record.jti.clone().into_bytes(), encode(record)?)))
            .collect::<StoreResult<Vec<(Vec<u8>, Vec<u8>)>>>()?;
        let secret = match &snapshot.secret {
            Some(secret) => Some(zeroize::Zeroizing::new(encode(&SecretRecord {
                secret: base64::engine::general_purpose::STANDARD.encode(secret),
            })?)),
            None => None,
        };
        let seq = {
            // Every publishing writer holds this lock, so the store stays empty between
            // the check and the commit (the purge only removes).
            let _writer = self
                .writer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if !self.is_empty()? {
                return Err(StoreError::Conflict(Conflict::NotEmpty));
            }
            if snapshot.is_empty() {
                return Ok(Written::unchanged(()));
            }
            (
                &self.users,
                &self.usernames,
                &self.sessions,
                &self.refresh,
                &self.revoked,
                &self.meta,
            )
                .transaction(
                    |(users_tx, usernames_tx, sessions_tx, refresh_tx, revoked_tx, meta)| {
                        for ((key, value), user) in users.iter().zip(&snapshot.users) {
                            users_tx.insert(key.as_slice(), value.as_slice())?;
                            usernames_tx.insert(user.canonical.as_bytes(), key.as_slice())?;
                        }
                        for (key, value) in &sessions {
                            sessions_tx.insert(key.as_slice(), value.as_slice())?;
                        }
                        for (key, value) in &refresh {
                            refresh_tx.insert(key.as_slice(), value.as_slice())?;
                        }
                        for (key, value) in &revoked {
                            revoked_tx.insert(key.as_slice(), value.as_slice())?;
                        }
                        if let Some(secret) = &secret {
                            meta.insert(SECRET_KEY, secret.as_slice())?;
                        }
                        // One number for the whole import, recorded as trimmed: every follower
                        // behind it reloads in full (see `Store::import`).
                        let head: Seq = tx_get(meta, META, FEED_HEAD)?.unwrap_or(0);
                        let seq = head + 1;
                        meta.insert(FEED_HEAD, tx_encode(&seq)?)?;
                        meta.insert(FEED_TRIMMED, tx_encode(&seq)?)?;
                        Ok(seq)
                    },
                )
                .map_err(tx_error)?
        };
        self.flush()?;
        self.durable.fetch_max(seq, Ordering::AcqRel);
        Ok(Written {
            value: (),
            seq: Some(seq),
        })
    }

    fn changes_since(&self, cursor: Seq, limit: usize) -> StoreResult<Feed> {
        let durable = self.durable.load(Ordering::Acquire);
        let mut changes = Vec::new();
        let from = cursor.saturating_add(1).to_be_bytes();
        for entry in self.changes.range(&from[..]..) {
            let (key, value) = entry.map_err(backend)?;
            let seq = seq_of(&key)?;
            if seq > durable {
                break;
            }
            let stored: ChangeIn = decode(CHANGES, &value)?;
            changes.push(Change {
                seq,
                at: stored.at,
                kind: stored.kind,
            });
            if changes.len() >= limit.max(1) {
                break;
            }
        }
        // Read after the scan: the trim records its bound before it removes anything, so
        // a scan that a trim cut into sees the bound here. A cursor beyond the head comes
        // from another log (a store restored from elsewhere): reload too.
        if self.trimmed()? > cursor || cursor > self.head()? {
            return Ok(Feed::Trimmed);
        }
        let next = changes.last().map_or(cursor, |change| change.seq);
        Ok(Feed::Changes { changes, next })
    }

    fn remove_expired(&self, now: u64, grace: u64) -> StoreResult<Purged> {
        let mut purged = Purged::default();
        let mut walked = 0usize;
        // The walk pulls every page of two big trees through sled's cache; what it
        // evicts is freed in between what stays, so hand it back as it goes.
        let mut walk = || {
            walked += 1;
            if walked.is_multiple_of(PURGE_RELEASE_EVERY) {
                crate::memory::release_freed();
            }
        };
        for entry in self.sessions.iter() {
            walk();
            let (key, value) = entry.map_err(backend)?;
            let session: SessionRecord = decode(SESSIONS, &value)?;
            let dead_after = match session.ended_at {
                Some(ended) => ended.saturating_add(grace),
                None => session.expires_at.saturating_add(grace),
            };
            if dead_after < now {
                self.sessions.remove(key).map_err(backend)?;
                purged.sessions += 1;
            }
        }
        for entry in self.refresh.iter() {
            walk();
            let (key, value) = entry.map_err(backend)?;
            let token: RefreshRecord = decode(REFRESH, &value)?;
            let session_gone = !self
                .sessions
                .contains_key(session_key(&token.user_id, &token.family))
                .map_err(backend)?;
            if token.expires_at < now || session_gone {
                self.refresh.remove(key).map_err(backend)?;
                purged.refresh_tokens += 1;
            }
        }
        for entry in self.revoked.iter() {
            let (key, value) = entry.map_err(backend)?;
            let revoked: RevokedRecord = decode(REVOKED, &value)?;
            if revoked.expires_at < now {
                self.revoked.remove(key).map_err(backend)?;
                purged.revoked += 1;
            }
        }
        purged.changes = self.trim(now)?;
        if purged != Purged::default() {
            self.flush()?;
        }
        Ok(purged)
    }

    /// Removes changes older than [`FEED_RETENTION`], recording the highest removed
    /// number first (see `changes_since`).
    fn trim(&self, now: u64) -> StoreResult<usize> {
        let mut old = Vec::new();
        for entry in self.changes.iter() {
            let (key, value) = entry.map_err(backend)?;
            let stored: ChangeIn = decode(CHANGES, &value)?;
            if stored.at.saturating_add(FEED_RETENTION) >= now {
                break;
            }
            old.push(seq_of(&key)?);
        }
        let Some(&last) = old.last() else {
            return Ok(0);
        };
        let _writer = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if last > self.trimmed()? {
            self.meta
                .insert(FEED_TRIMMED, encode(&last)?)
                .map_err(backend)?;
        }
        for seq in &old {
            self.changes.remove(seq.to_be_bytes()).map_err(backend)?;
        }
        Ok(old.len())
    }
}

impl Store for SledStore {
    fn find_user(&self, id: &str) -> BoxFuture<'_, StoreResult<Option<UserRecord>>> {
        let id = id.to_string();
        self.run(move |store| store.find_user(&id))
    }

    fn find_user_by_name(&self, canonical: &str) -> BoxFuture<'_, StoreResult<Option<UserRecord>>> {
        let canonical = canonical.to_string();
        self.run(move |store| store.find_user_by_name(&canonical))
    }

    fn list_users(&self) -> BoxFuture<'_, StoreResult<Vec<UserRecord>>> {
        self.run(|store| Inner::all(&store.users, USERS))
    }

    fn insert_user(&self, user: &UserRecord) -> BoxFuture<'_, StoreResult<Written<()>>> {
        let user = user.clone();
        self.run(move |store| store.insert_user(&user))
    }

    fn insert_users(&self, users: &[UserRecord]) -> BoxFuture<'_, StoreResult<Written<()>>> {
        let users = users.to_vec();
        self.run(move |store| store.insert_users(&users))
    }

    fn update_user(
        &self,
        id: &str,
        change: UserChange,
    ) -> BoxFuture<'_, StoreResult<Written<Option<UserRecord>>>> {
        let id = id.to_string();
        self.run(move |store| store.update_user(&id, &change))
    }

    fn remove_user(&self, id: &str) -> BoxFuture<'_, StoreResult<Written<Option<UserRecord>>>> {
        let id = id.to_string();
        self.run(move |store| store.remove_user(&id))
    }

    fn insert_session(
        &self,
        session: &SessionRecord,
        token: &RefreshRecord,
    ) -> BoxFuture<'_, StoreResult<Written<()>>> {
        let (session, token) = (session.clone(), token.clone());
        self.run(move |store| store.insert_session(&session, Some(&token)))
    }

    fn insert_browser_session(
        &self,
        session: &SessionRecord,
    ) -> BoxFuture<'_, StoreResult<Written<()>>> {
        let session = session.clone();
        if session.browser.is_none() {
            return Box::pin(std::future::ready(Err(StoreError::Backend(
                "insert_browser_session: not a browser session".into(),
            ))));
        }
        self.run(move |store| store.insert_session(&session, None))
    }

    fn touch_session(
        &self,
        user_id: &str,
        family: &str,
        last_seen: u64,
    ) -> BoxFuture<'_, StoreResult<Written<bool>>> {
        let (user_id, family) = (user_id.to_string(), family.to_string());
        self.run(move |store| store.touch_session(&user_id, &family, last_seen))
    }

    fn find_refresh(
        &self,
        token_hash: &[u8; 32],
    ) -> BoxFuture<'_, StoreResult<Option<RefreshRecord>>> {
        let token_hash = *token_hash;
        self.run(move |store| store.find_refresh(&token_hash))
    }

    fn take_refresh(
        &self,
        token_hash: &[u8; 32],
        now: u64,
        next_hash: &[u8; 32],
        next_expires_at: u64,
    ) -> BoxFuture<'_, StoreResult<Written<Taken>>> {
        let (token_hash, next_hash) = (*token_hash, *next_hash);
        self.run(move |store| store.take_refresh(&token_hash, now, &next_hash, next_expires_at))
    }

    fn sessions_of(&self, user_id: &str) -> BoxFuture<'_, StoreResult<Vec<SessionRecord>>> {
        let user_id = user_id.to_string();
        self.run(move |store| store.sessions_of(&user_id))
    }

    fn end_session(
        &self,
        user_id: &str,
        family: &str,
        now: u64,
    ) -> BoxFuture<'_, StoreResult<Written<Option<SessionRecord>>>> {
        let (user_id, family) = (user_id.to_string(), family.to_string());
        self.run(move |store| store.end_session(&user_id, &family, now))
    }

    fn remove_sessions_of(&self, user_id: &str) -> BoxFuture<'_, StoreResult<Written<usize>>> {
        let user_id = user_id.to_string();
        self.run(move |store| store.remove_sessions_of(&user_id))
    }

    fn insert_revoked(&self, record: &RevokedRecord) -> BoxFuture<'_, StoreResult<Written<()>>> {
        let record = record.clone();
        self.run(move |store| store.insert_revoked(&record))
    }

    fn find_secret(&self) -> BoxFuture<'_, StoreResult<Option<Vec<u8>>>> {
        self.run(|store| store.find_secret())
    }

    fn insert_secret(&self, secret: &[u8]) -> BoxFuture<'_, StoreResult<Written<Vec<u8>>>> {
        let secret = zeroize::Zeroizing::new(secret.to_vec());
        self.run(move |store| store.insert_secret(&secret))
    }

    fn keeps_secret_fingerprint(&self) -> bool {
        true
    }

    fn keep_secret_fingerprint(&self, fingerprint: &str) -> BoxFuture<'_, StoreResult<String>> {
        let fingerprint = fingerprint.to_string();
        self.run(move |store| store.keep_fingerprint(&fingerprint))
    }

    fn find_secret_fingerprint(&self) -> BoxFuture<'_, StoreResult<Option<String>>> {
        self.run(|store| store.find_fingerprint())
    }

    fn forget_secret_fingerprint(&self) -> BoxFuture<'_, StoreResult<bool>> {
        self.run(|store| store.forget_fingerprint())
    }

    fn load(&self, now: u64, grace: u64) -> BoxFuture<'_, StoreResult<Loaded>> {
        self.run(move |store| store.load(now, grace))
    }

    fn changes_since(&self, cursor: Seq, limit: usize) -> BoxFuture<'_, StoreResult<Feed>> {
        self.run(move |store| store.changes_since(cursor, limit))
    }

    fn remove_expired(&self, now: u64, grace: u64) -> BoxFuture<'_, StoreResult<Purged>> {
        self.run(move |store| store.remove_expired(now, grace))
    }

    fn export(&self) -> BoxFuture<'_, StoreResult<Snapshot>> {
        self.run(|store| store.export())
    }

    fn import(&self, snapshot: Snapshot) -> BoxFuture<'_, StoreResult<Written<()>>> {
        self.run(move |store| store.import(&snapshot))
    }

    fn flush(&self) -> BoxFuture<'_, StoreResult<()>> {
        self.run(|store| store.flush())
    }
}

fn decode_secret(bytes: &[u8]) -> StoreResult<Vec<u8>> {
    let record: SecretRecord = decode(META, bytes)?;
    base64::engine::general_purpose::STANDARD
        .decode(record.secret)
        .map_err(|err| StoreError::Corrupt {
            tree: META,
            detail: format!("signing secret: {err}"),
        })
}

/// Records the purge walks between two hand-backs of freed memory ([`crate::memory`]):
/// each takes a few milliseconds, and the walk of a million-session store ~25 s.
const PURGE_RELEASE_EVERY: usize = 100_000;

/// sled's page cache, in bytes of serialized pages (held in memory at about twice that).
/// The view answers requests, so the cache serves only logins, refreshes and writes. On a
/// store of 100,000 users and 1,000,000 sessions (benches/RESULTS.md, issue #17 target 2):
/// 64 → 32 MiB took the resident size once idle from ~290 to ~235 MiB; 32 → 16 MiB took
/// the start's peak (a second or two as the load ends or the first purge begins its walk)
/// from 222–304 to 218–278 MiB and the size once idle to 172–228 MiB, with start to ready
/// unchanged within noise.
const CACHE_CAPACITY: u64 = 16 * 1024 * 1024;

/// Opens the sled database, waiting up to 2 s for its lock file: a `Db` dropped a moment
/// ago in this process releases the lock only when its background flusher thread ends.
fn open_db(path: &Path) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_CAPACITY)
            .open()
        {
            // sled reports the held lock as an `Other` error naming it.
            Err(sled::Error::Io(err))
                if err.to_string().contains(LOCK_HELD) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

// The behaviour every backend owes is tested once for all in `tests/store_contract.rs`;
// what is particular to sled is tested here.
#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, name: &str) -> UserRecord {
        UserRecord {
            id: id.into(),
            username: name.into(),
            canonical: name.to_lowercase(),
            password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
            roles: vec![],
            enabled: true,
            created: 1,
            password_changed_at: 1,
            generation: 0,
            kind: crate::store::PrincipalKind::User,
        }
    }

    /// Records and feed entries written before service clients existed have no
    /// `principal`: they decode as users, and users are still written without it.
    #[test]
    fn records_and_changes_from_before_clients_decode_as_users() {
        let old = br#"{"id":"u1","username":"Alice","canonical":"alice","password_hash":"h","roles":[],"enabled":true,"created":1,"password_changed_at":1,"generation":0}"#;
        let mut bytes = vec![super::super::codec::CURRENT];
        bytes.extend_from_slice(old);
        let record: UserRecord = decode(USERS, &bytes).expect("decode");
        assert_eq!(record.kind, crate::store::PrincipalKind::User);
        assert_eq!(
            encode(&record).expect("encode"),
            bytes,
            "users are written as before"
        );
        let change = br#"{"kind":"user_put","id":"u1","username":"Alice","canonical":"alice","roles":[],"enabled":true,"created":1,"password_changed_at":1,"generation":0}"#;
        let change: ChangeKind = serde_json::from_slice(change).expect("old change");
        assert!(
            matches!(change, ChangeKind::UserPut(state) if state.kind == crate::store::PrincipalKind::User)
        );
        let client = UserRecord {
            kind: crate::store::PrincipalKind::Client,
            ..record
        };
        let again: UserRecord = decode(USERS, &encode(&client).expect("encode")).expect("decode");
        assert_eq!(again, client);
        let published =
            serde_json::to_string(&ChangeKind::UserPut(UserState::from(&client))).expect("json");
        assert!(published.contains(r#""principal":"client""#), "{published}");
        let back: ChangeKind = serde_json::from_str(&published).expect("round trip");
        assert_eq!(back, ChangeKind::UserPut(UserState::from(&client)));
    }

    #[tokio::test]
    async fn a_dropped_store_can_be_reopened_at_once_in_the_same_process() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data");
        for round in 0..5 {
            let store = SledStore::open(&path).expect("open");
            store
                .insert_user(&user(&format!("u{round}"), &format!("n{round}")))
                .await
                .expect("insert");
            drop(store);
        }
        let store = SledStore::open(&path).expect("open");
        assert_eq!(store.list_users().await.expect("list").len(), 5);
    }

    #[test]
    fn a_second_open_of_a_held_store_says_it_is_locked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data");
        let _held = SledStore::open(&path).expect("open");
        let err = SledStore::open(&path).expect_err("locked");
        assert!(is_locked(&err), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn the_store_directory_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let _store = SledStore::open(&dir.path().join("data")).expect("open");
        let mode = std::fs::metadata(dir.path().join("data"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
