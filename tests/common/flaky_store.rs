//! A store that can be switched off: every verb delegates to a real [`SledStore`] until
//! [`FlakyStore::set_down`] makes each one answer [`StoreError::Unavailable`], as the
//! PostgreSQL backend does when its database is unreachable. It says it is remote, so
//! the gateway over it tracks staleness (SPEC §8 "Outage"), and it has a change signal
//! ([`FlakyStore::notify`]) as PostgreSQL's LISTEN connection does. [`FlakyStore::inner`] writes
//! behind the gateway's back while it is down, as another replica would.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use gatehouse::store::{
    BoxFuture, Feed, Loaded, Purged, RefreshRecord, RevokedRecord, Seq, SessionRecord, SledStore,
    Snapshot, Store, StoreError, StoreResult, Taken, UserChange, UserRecord, Written,
};

pub struct FlakyStore {
    inner: Arc<SledStore>,
    down: AtomicBool,
    /// Its [`Store::change_signal`], as a LISTEN connection would notify it.
    signal: Arc<tokio::sync::Notify>,
}

impl FlakyStore {
    /// Opens the sled store in `path` (where the config's `store.path` points, so the
    /// admin socket sits beside it).
    pub fn open(path: &std::path::Path) -> Arc<FlakyStore> {
        Arc::new(FlakyStore {
            inner: Arc::new(SledStore::open(path).expect("open sled")),
            down: AtomicBool::new(false),
            signal: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// What a NOTIFY would do: wakes the followers of the feed.
    pub fn notify(&self) {
        self.signal.notify_one();
    }

    /// Every verb fails as unreachable (`true`) or works again.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// The real store underneath, reachable whatever the switch says.
    pub fn inner(&self) -> &SledStore {
        &self.inner
    }

    fn check(&self) -> StoreResult<()> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable(
                "connection refused (test switch)".into(),
            ))
        } else {
            Ok(())
        }
    }
}

/// Delegates one verb unless the switch is down.
macro_rules! verb {
    ($self:ident, $call:expr) => {
        match $self.check() {
            Ok(()) => $call,
            Err(err) => Box::pin(std::future::ready(Err(err))),
        }
    };
}

impl Store for FlakyStore {
    fn find_user(&self, id: &str) -> BoxFuture<'_, StoreResult<Option<UserRecord>>> {
        verb!(self, self.inner.find_user(id))
    }
    fn find_user_by_name(&self, canonical: &str) -> BoxFuture<'_, StoreResult<Option<UserRecord>>> {
        verb!(self, self.inner.find_user_by_name(canonical))
    }
    fn list_users(&self) -> BoxFuture<'_, StoreResult<Vec<UserRecord>>> {
        verb!(self, self.inner.list_users())
    }
    fn insert_user(&self, user: &UserRecord) -> BoxFuture<'_, StoreResult<Written<()>>> {
        verb!(self, self.inner.insert_user(user))
    }
    fn insert_users(&self, users: &[UserRecord]) -> BoxFuture<'_, StoreResult<Written<()>>> {
        verb!(self, self.inner.insert_users(users))
    }
    fn update_user(
        &self,
        id: &str,
        change: UserChange,
    ) -> BoxFuture<'_, StoreResult<Written<Option<UserRecord>>>> {
        verb!(self, self.inner.update_user(id, change))
    }
    fn remove_user(&self, id: &str) -> BoxFuture<'_, StoreResult<Written<Option<UserRecord>>>> {
        verb!(self, self.inner.remove_user(id))
    }
    fn insert_session(
        &self,
        session: &SessionRecord,
        token: &RefreshRecord,
    ) -> BoxFuture<'_, StoreResult<Written<()>>> {
        verb!(self, self.inner.insert_session(session, token))
    }
    fn insert_browser_session(
        &self,
        session: &SessionRecord,
    ) -> BoxFuture<'_, StoreResult<Written<()>>> {
        verb!(self, self.inner.insert_browser_session(session))
    }
    fn touch_session(
        &self,
        user_id: &str,
        family: &str,
        last_seen: u64,
    ) -> BoxFuture<'_, StoreResult<Written<bool>>> {
        verb!(self, self.inner.touch_session(user_id, family, last_seen))
    }
    fn find_refresh(
        &self,
        token_hash: &[u8; 32],
    ) -> BoxFuture<'_, StoreResult<Option<RefreshRecord>>> {
        verb!(self, self.inner.find_refresh(token_hash))
    }
    fn take_refresh(
        &self,
        token_hash: &[u8; 32],
        now: u64,
        next_hash: &[u8; 32],
        next_expires_at: u64,
    ) -> BoxFuture<'_, StoreResult<Written<Taken>>> {
        verb!(
            self,
            self.inner
                .take_refresh(token_hash, now, next_hash, next_expires_at)
        )
    }
    fn sessions_of(&self, user_id: &str) -> BoxFuture<'_, StoreResult<Vec<SessionRecord>>> {
        verb!(self, self.inner.sessions_of(user_id))
    }
    fn end_session(
        &self,
        user_id: &str,
        family: &str,
        now: u64,
    ) -> BoxFuture<'_, StoreResult<Written<Option<SessionRecord>>>> {
        verb!(self, self.inner.end_session(user_id, family, now))
    }
    fn remove_sessions_of(&self, user_id: &str) -> BoxFuture<'_, StoreResult<Written<usize>>> {
        verb!(self, self.inner.remove_sessions_of(user_id))
    }
    fn insert_revoked(&self, record: &RevokedRecord) -> BoxFuture<'_, StoreResult<Written<()>>> {
        verb!(self, self.inner.insert_revoked(record))
    }
    fn find_secret(&self) -> BoxFuture<'_, StoreResult<Option<Vec<u8>>>> {
        verb!(self, self.inner.find_secret())
    }
    fn export(&self) -> BoxFuture<'_, StoreResult<Snapshot>> {
        verb!(self, self.inner.export())
    }
    fn import(&self, snapshot: Snapshot) -> BoxFuture<'_, StoreResult<Written<()>>> {
        verb!(self, self.inner.import(snapshot))
    }
    fn insert_secret(&self, secret: &[u8]) -> BoxFuture<'_, StoreResult<Written<Vec<u8>>>> {
        verb!(self, self.inner.insert_secret(secret))
    }
    fn load(&self, now: u64, grace: u64) -> BoxFuture<'_, StoreResult<Loaded>> {
        verb!(self, self.inner.load(now, grace))
    }
    fn changes_since(&self, cursor: Seq, limit: usize) -> BoxFuture<'_, StoreResult<Feed>> {
        verb!(self, self.inner.changes_since(cursor, limit))
    }
    fn remove_expired(&self, now: u64, grace: u64) -> BoxFuture<'_, StoreResult<Purged>> {
        verb!(self, self.inner.remove_expired(now, grace))
    }
    fn flush(&self) -> BoxFuture<'_, StoreResult<()>> {
        verb!(self, self.inner.flush())
    }
    fn change_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.signal.clone())
    }
    fn is_remote(&self) -> bool {
        true
    }
}
