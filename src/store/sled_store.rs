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
//! | `meta`           | `signing_secret`         | v1 `{"secret": base64}`             |
//!
//! Sessions are keyed under their user so a password change or a disable finds all of a
//! user's sessions with one prefix scan. Every write verb calls `flush()` (fsync) before
//! returning: callers acknowledge only durable writes.
//!
//! sled lets one process open a database; a second `open` fails with "could not acquire
//! lock" ([`is_locked`]), which is how the CLI learns that a gateway holds the store.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;
use subtle::ConstantTimeEq;

use super::codec::{decode, encode};
use super::{
    Purged, RefreshRecord, RevokedRecord, SessionRecord, Store, StoreError, StoreResult, Taken,
    UserRecord,
};

const USERS: &str = "users";
const USERNAMES: &str = "usernames";
const REFRESH: &str = "refresh_tokens";
const SESSIONS: &str = "sessions";
const REVOKED: &str = "revoked";
const META: &str = "meta";
const SECRET_KEY: &[u8] = b"signing_secret";

/// The sled-backed [`Store`].
pub struct SledStore {
    path: PathBuf,
    db: sled::Db,
    users: sled::Tree,
    usernames: sled::Tree,
    refresh: sled::Tree,
    sessions: sled::Tree,
    revoked: sled::Tree,
    meta: sled::Tree,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct SecretRecord {
    secret: String,
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

impl SledStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> StoreResult<Self> {
        prepare_dir(path)?;
        let db = open_db(path).map_err(|err| {
            StoreError::Backend(format!(
                "cannot open the store at {}: {err}",
                path.display()
            ))
        })?;
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        Ok(SledStore {
            path: path.to_path_buf(),
            users: tree(USERS)?,
            usernames: tree(USERNAMES)?,
            refresh: tree(REFRESH)?,
            sessions: tree(SESSIONS)?,
            revoked: tree(REVOKED)?,
            meta: tree(META)?,
            db,
        })
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn durable(&self) -> StoreResult<()> {
        self.db.flush().map(|_| ()).map_err(backend)
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
}

impl Store for SledStore {
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

    fn list_users(&self) -> StoreResult<Vec<UserRecord>> {
        Self::all(&self.users, USERS)
    }

    fn insert_user(&self, user: &UserRecord) -> StoreResult<()> {
        let value = encode(user)?;
        (&self.users, &self.usernames)
            .transaction(|(users, usernames)| {
                if usernames.get(user.canonical.as_bytes())?.is_some() {
                    return abort(StoreError::Conflict("username taken"));
                }
                if users.get(user.id.as_bytes())?.is_some() {
                    return abort(StoreError::Conflict("user id taken"));
                }
                usernames.insert(user.canonical.as_bytes(), user.id.as_bytes())?;
                users.insert(user.id.as_bytes(), value.clone())?;
                Ok(())
            })
            .map_err(tx_error)?;
        self.durable()
    }

    fn update_user(
        &self,
        id: &str,
        change: &dyn Fn(&mut UserRecord),
    ) -> StoreResult<Option<UserRecord>> {
        let updated = self
            .users
            .transaction(|users| {
                let Some(mut user) = tx_get::<UserRecord>(users, USERS, id.as_bytes())? else {
                    return Ok(None);
                };
                change(&mut user);
                users.insert(id.as_bytes(), tx_encode(&user)?)?;
                Ok(Some(user))
            })
            .map_err(tx_error)?;
        if updated.is_some() {
            self.durable()?;
        }
        Ok(updated)
    }

    fn remove_user(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        let removed = (&self.users, &self.usernames)
            .transaction(|(users, usernames)| {
                let Some(user) = tx_get::<UserRecord>(users, USERS, id.as_bytes())? else {
                    return Ok(None);
                };
                users.remove(id.as_bytes())?;
                if usernames.get(user.canonical.as_bytes())?.as_deref() == Some(id.as_bytes()) {
                    usernames.remove(user.canonical.as_bytes())?;
                }
                Ok(Some(user))
            })
            .map_err(tx_error)?;
        if removed.is_some() {
            self.durable()?;
        }
        Ok(removed)
    }

    fn insert_session(&self, session: &SessionRecord, token: &RefreshRecord) -> StoreResult<()> {
        let session_value = encode(session)?;
        let token_value = encode(token)?;
        let key = session_key(&session.user_id, &session.family);
        (&self.users, &self.sessions, &self.refresh)
            .transaction(|(users, sessions, refresh)| {
                let user = tx_get::<UserRecord>(users, USERS, session.user_id.as_bytes())?;
                match user {
                    Some(user) if user.enabled && user.generation == session.generation => {}
                    _ => return abort(StoreError::Conflict("the user changed")),
                }
                sessions.insert(key.as_slice(), session_value.clone())?;
                refresh.insert(&token.token_hash[..], token_value.clone())?;
                Ok(())
            })
            .map_err(tx_error)?;
        self.durable()
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
    ) -> StoreResult<Taken> {
        let taken = (&self.refresh, &self.sessions)
            .transaction(|(refresh, sessions)| {
                let Some(mut token) = tx_get::<RefreshRecord>(refresh, REFRESH, token_hash)? else {
                    return Ok(Taken::Invalid);
                };
                if !bool::from(token.token_hash.ct_eq(token_hash)) {
                    return Ok(Taken::Invalid);
                }
                let key = session_key(&token.user_id, &token.family);
                let Some(mut session) = tx_get::<SessionRecord>(sessions, SESSIONS, &key)? else {
                    return Ok(Taken::Invalid);
                };
                if session.ended_at.is_some() {
                    return Ok(Taken::Invalid);
                }
                if token.spent {
                    // RFC 9700 §4.14.2: a spent token presented again means one of two
                    // parties holds a stolen copy; end the whole family.
                    session.ended_at = Some(now);
                    sessions.insert(key.as_slice(), tx_encode(&session)?)?;
                    return Ok(Taken::Reused(session));
                }
                if token.expires_at <= now {
                    return Ok(Taken::Invalid);
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
                Ok(Taken::Rotated(session))
            })
            .map_err(tx_error)?;
        if taken != Taken::Invalid {
            self.durable()?;
        }
        Ok(taken)
    }

    fn sessions_of(&self, user_id: &str) -> StoreResult<Vec<SessionRecord>> {
        self.sessions
            .scan_prefix(user_prefix(user_id))
            .values()
            .map(|value| decode(SESSIONS, &value.map_err(backend)?))
            .collect()
    }

    fn list_sessions(&self) -> StoreResult<Vec<SessionRecord>> {
        Self::all(&self.sessions, SESSIONS)
    }

    fn end_session(
        &self,
        user_id: &str,
        family: &str,
        now: u64,
    ) -> StoreResult<Option<SessionRecord>> {
        let key = session_key(user_id, family);
        let (session, changed) = self
            .sessions
            .transaction(|sessions| {
                let Some(mut session) = tx_get::<SessionRecord>(sessions, SESSIONS, &key)? else {
                    return Ok((None, false));
                };
                if session.ended_at.is_some() {
                    return Ok((Some(session), false));
                }
                session.ended_at = Some(now);
                sessions.insert(key.as_slice(), tx_encode(&session)?)?;
                Ok((Some(session), true))
            })
            .map_err(tx_error)?;
        if changed {
            self.durable()?;
        }
        Ok(session)
    }

    fn remove_sessions_of(&self, user_id: &str) -> StoreResult<usize> {
        let mut removed = 0;
        for key in self.sessions.scan_prefix(user_prefix(user_id)).keys() {
            self.sessions
                .remove(key.map_err(backend)?)
                .map_err(backend)?;
            removed += 1;
        }
        if removed > 0 {
            self.durable()?;
        }
        Ok(removed)
    }

    fn insert_revoked(&self, record: &RevokedRecord) -> StoreResult<()> {
        self.revoked
            .insert(record.jti.as_bytes(), encode(record)?)
            .map_err(backend)?;
        self.durable()
    }

    fn list_revoked(&self) -> StoreResult<Vec<RevokedRecord>> {
        Self::all(&self.revoked, REVOKED)
    }

    fn find_secret(&self) -> StoreResult<Option<Vec<u8>>> {
        match self.meta.get(SECRET_KEY).map_err(backend)? {
            Some(bytes) => decode_secret(&bytes).map(Some),
            None => Ok(None),
        }
    }

    fn insert_secret(&self, secret: &[u8]) -> StoreResult<Vec<u8>> {
        let value = encode(&SecretRecord {
            secret: base64::engine::general_purpose::STANDARD.encode(secret),
        })?;
        let swapped = self
            .meta
            .compare_and_swap(SECRET_KEY, None as Option<&[u8]>, Some(value))
            .map_err(backend)?;
        match swapped {
            Ok(()) => {
                self.durable()?;
                Ok(secret.to_vec())
            }
            Err(existing) => match existing.current {
                Some(bytes) => decode_secret(&bytes),
                None => Err(StoreError::Backend("the kept secret vanished".into())),
            },
        }
    }

    fn remove_expired(&self, now: u64, grace: u64) -> StoreResult<Purged> {
        let mut purged = Purged::default();
        for entry in self.sessions.iter() {
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
        if purged != Purged::default() {
            self.durable()?;
        }
        Ok(purged)
    }

    fn flush(&self) -> StoreResult<()> {
        self.durable()
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

/// Opens the sled database, waiting up to 2 s for its lock file: a `Db` dropped a moment
/// ago in this process releases the lock only when its background flusher thread ends.
fn open_db(path: &Path) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match sled::Config::new()
            .path(path)
            .cache_capacity(64 * 1024 * 1024)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(&dir.path().join("data")).expect("open");
        (dir, store)
    }

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
        }
    }

    fn session(user_id: &str, family: &str, expires_at: u64) -> SessionRecord {
        SessionRecord {
            family: family.into(),
            user_id: user_id.into(),
            created: 1,
            generation: 0,
            expires_at,
            ended_at: None,
        }
    }

    fn token(hash: u8, user_id: &str, family: &str, expires_at: u64) -> RefreshRecord {
        RefreshRecord {
            token_hash: [hash; 32],
            family: family.into(),
            user_id: user_id.into(),
            expires_at,
            spent: false,
        }
    }

    #[test]
    fn usernames_are_unique_by_canonical_name() {
        let (_dir, store) = store();
        store.insert_user(&user("u1", "Alice")).expect("insert");
        assert!(matches!(
            store.insert_user(&user("u2", "ALICE")),
            Err(StoreError::Conflict(_))
        ));
        let found = store
            .find_user_by_name("alice")
            .expect("find")
            .expect("some");
        assert_eq!(found.username, "Alice");
        store.remove_user("u1").expect("remove");
        assert!(store.find_user_by_name("alice").expect("find").is_none());
        store
            .insert_user(&user("u2", "alice"))
            .expect("name free again");
    }

    #[test]
    fn rotation_spends_the_token_and_reuse_ends_the_family() {
        let (_dir, store) = store();
        store.insert_user(&user("u1", "alice")).expect("insert");
        store
            .insert_session(&session("u1", "f1", 100), &token(1, "u1", "f1", 100))
            .expect("session");
        let rotated = store
            .take_refresh(&[1; 32], 10, &[2; 32], 200)
            .expect("take");
        assert!(matches!(rotated, Taken::Rotated(ref s) if s.expires_at == 200));
        assert!(
            store
                .find_refresh(&[1; 32])
                .expect("find")
                .expect("some")
                .spent
        );
        // Replaying the spent token ends the family, so the successor is dead too.
        assert!(matches!(
            store
                .take_refresh(&[1; 32], 11, &[3; 32], 300)
                .expect("take"),
            Taken::Reused(_)
        ));
        assert_eq!(
            store
                .take_refresh(&[2; 32], 12, &[4; 32], 400)
                .expect("take"),
            Taken::Invalid
        );
    }

    #[test]
    fn expired_and_unknown_tokens_are_invalid() {
        let (_dir, store) = store();
        store.insert_user(&user("u1", "alice")).expect("insert");
        store
            .insert_session(&session("u1", "f1", 100), &token(1, "u1", "f1", 100))
            .expect("session");
        assert_eq!(
            store
                .take_refresh(&[1; 32], 100, &[2; 32], 200)
                .expect("take"),
            Taken::Invalid
        );
        assert_eq!(
            store
                .take_refresh(&[9; 32], 1, &[2; 32], 200)
                .expect("take"),
            Taken::Invalid
        );
    }

    #[test]
    fn sessions_need_the_users_current_generation() {
        let (_dir, store) = store();
        store.insert_user(&user("u1", "alice")).expect("insert");
        store
            .update_user("u1", &|u| u.generation += 1)
            .expect("update");
        assert!(matches!(
            store.insert_session(&session("u1", "f1", 100), &token(1, "u1", "f1", 100)),
            Err(StoreError::Conflict(_))
        ));
    }

    #[test]
    fn purge_removes_expired_records_only() {
        let (_dir, store) = store();
        store.insert_user(&user("u1", "alice")).expect("insert");
        store
            .insert_session(&session("u1", "old", 10), &token(1, "u1", "old", 10))
            .expect("session");
        store
            .insert_session(&session("u1", "new", 1000), &token(2, "u1", "new", 1000))
            .expect("session");
        store
            .insert_revoked(&RevokedRecord {
                jti: "j".into(),
                expires_at: 10,
            })
            .expect("revoke");
        let purged = store.remove_expired(100, 5).expect("purge");
        assert_eq!(
            purged,
            Purged {
                refresh_tokens: 1,
                sessions: 1,
                revoked: 1
            }
        );
        assert_eq!(store.sessions_of("u1").expect("list").len(), 1);
    }

    #[test]
    fn the_first_kept_secret_wins() {
        let (_dir, store) = store();
        assert!(store.find_secret().expect("find").is_none());
        assert_eq!(store.insert_secret(b"first").expect("insert"), b"first");
        assert_eq!(store.insert_secret(b"second").expect("insert"), b"first");
        assert_eq!(
            store.find_secret().expect("find").as_deref(),
            Some(&b"first"[..])
        );
    }

    #[test]
    fn a_dropped_store_can_be_reopened_at_once_in_the_same_process() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data");
        for round in 0..5 {
            let store = SledStore::open(&path).expect("open");
            store
                .insert_user(&user(&format!("u{round}"), &format!("n{round}")))
                .expect("insert");
            drop(store);
        }
        let store = SledStore::open(&path).expect("open");
        assert_eq!(store.list_users().expect("list").len(), 5);
    }

    #[cfg(unix)]
    #[test]
    fn the_store_directory_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let (dir, _store) = store();
        let mode = std::fs::metadata(dir.path().join("data"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
