//! Following the store's change feed: the only way the in-memory [`View`] changes.
//!
//! Flow: at start the view is built from one [`Store::load`] (its state and the feed
//! position it reflects); from then on [`Follower::catch_up`] reads
//! [`Store::changes_since`] the cursor and applies each change in order. Two callers
//! drive it:
//! - a writer, right after its store write returns the change's number, catches up to
//!   that number before acknowledging (the admin socket's "applied before answering",
//!   and a logout or a password change that fails the very next request);
//! - the background task in [`super::maintain`] every [`FOLLOW_EVERY`], which picks up
//!   changes written by anyone else sharing the store (other replicas, once the
//!   PostgreSQL backend exists).
//!
//! One async mutex guards the cursor, so changes are applied once each and in order
//! whoever drives. When the log was trimmed past the cursor, the view is reloaded in
//! full and follows on from the new cursor.
//!
//! Staleness (SPEC §8): every successful read of the feed (or load) stamps the time the
//! follower last heard from the store, in one atomic, so "how long since" is a clock
//! read and an atomic load ([`Follower::silent_for`]) that the request path can afford.
//! A poll that hangs (a frozen database) stops the stamps just as a failing one does.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::view::View;
use crate::auth::now_secs;
use crate::store::{Feed, Loaded, Seq, Store, StoreError, StoreResult};

/// How many changes one read of the feed asks for.
pub const FEED_BATCH: usize = 512;

/// How often the background task polls the feed for changes written elsewhere.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// The view's position in the store's change feed.
#[derive(Debug)]
pub struct Follower {
    cursor: tokio::sync::Mutex<Seq>,
    /// Seconds an ended session is remembered after its end (see `Directory::grace`).
    grace: u64,
    /// The last poll failed (so a failure and the recovery are each logged once).
    failing: AtomicBool,
    /// What [`Self::heard`] measures from.
    epoch: Instant,
    /// Milliseconds after `epoch` of the last successful read of the store.
    heard_ms: AtomicU64,
}

impl Follower {
    /// Builds `view` from `loaded` and starts following after its cursor.
    pub fn start(view: &View, loaded: &Loaded, grace: u64) -> Self {
        view.replace(loaded, now_secs(), grace);
        Follower {
            cursor: tokio::sync::Mutex::new(loaded.cursor),
            grace,
            failing: AtomicBool::new(false),
            epoch: Instant::now(),
            heard_ms: AtomicU64::new(0),
        }
    }

    /// Stamps now as the last time the store answered.
    fn heard(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.heard_ms.fetch_max(now, Ordering::Relaxed);
    }

    /// How long since the store last answered a read of the feed (zero right after).
    pub fn silent_for(&self) -> Duration {
        let heard = Duration::from_millis(self.heard_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(heard)
    }

    /// The last change applied.
    pub async fn cursor(&self) -> Seq {
        *self.cursor.lock().await
    }

    /// Applies every change the feed has now, or, with `through`, at least every change up
    /// to that number (a writer's own). Returns how many changes were applied.
    pub async fn catch_up(
        &self,
        store: &dyn Store,
        view: &View,
        through: Option<Seq>,
    ) -> StoreResult<usize> {
        let mut cursor = self.cursor.lock().await;
        let mut applied = 0;
        loop {
            if through.is_some_and(|target| *cursor >= target) {
                return Ok(applied);
            }
            let feed = store.changes_since(*cursor, FEED_BATCH).await?;
            self.heard();
            match feed {
                Feed::Trimmed => {
                    tracing::warn!(
                        cursor = *cursor,
                        "the store's change log was trimmed past this view's position; reloading it in full"
                    );
                    let now = now_secs();
                    let loaded = store.load(now, self.grace).await?;
                    view.replace(&loaded, now, self.grace);
                    *cursor = loaded.cursor;
                }
                Feed::Changes { changes, next } => {
                    let now = now_secs();
                    for change in &changes {
                        view.apply(&change.kind, now, self.grace);
                    }
                    *cursor = next;
                    applied += changes.len();
                    if changes.len() < FEED_BATCH {
                        return match through {
                            Some(target) if *cursor < target => Err(StoreError::Backend(format!(
                                "the change feed ends at {} before change {target}",
                                *cursor
                            ))),
                            _ => Ok(applied),
                        };
                    }
                }
            }
        }
    }

    /// One background poll: applies what is new, logging a failure (the store out of
    /// reach) and the recovery after it once each.
    pub async fn poll(&self, store: &dyn Store, view: &View) {
        match self.catch_up(store, view, None).await {
            Ok(_) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("following the store's change feed again");
                }
            }
            Err(err) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %err, "cannot read the store's change feed; the in-memory view may fall behind");
                }
            }
        }
    }
}
