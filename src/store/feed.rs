//! The change feed: an ordered log of what every durable write did, so that every
//! process holding an in-memory view (the writer itself, and each replica on the
//! PostgreSQL backend) can keep it current by applying the changes in order
//! (list once with [`super::Store::load`], then watch with
//! [`super::Store::changes_since`], as Kubernetes informers do).
//!
//! Ordering and visibility: each change gets the next sequence number ([`Seq`], from 1,
//! no gaps) inside the same transaction as the data it describes, so a reader never sees
//! a change without its data, and never sees change `n + 1` while change `n` is still
//! invisible. A cursor is the last sequence number applied (0: none); `changes_since`
//! returns what lies above it.
//!
//! Trimming: changes older than [`FEED_RETENTION`] are removed by the periodic purge
//! ([`super::Store::remove_expired`]). A reader whose cursor lies below a removed change
//! gets [`Feed::Trimmed`] and must reload in full (`load`, which returns a fresh cursor).
//! The backend remembers the highest trimmed sequence number to tell this reliably.
//!
//! What a change carries: enough for the view (users without their password hash,
//! sessions, revoked ids); never a password hash, a refresh token or the signing secret.

use serde::{Deserialize, Serialize};

use super::{RevokedRecord, SessionRecord, UserState};

/// A position in the change log: the sequence number of a change (the first is 1).
pub type Seq = u64;

/// How long a change stays in the log: one hour. A process that has not read the feed
/// for longer reloads in full. Replicas poll far more often than this (SPEC §8 wants
/// changes enforced within a second), so only a process that was cut off for long pays
/// for a reload.
pub const FEED_RETENTION: u64 = 3600;

/// One published change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub seq: Seq,
    /// Unix seconds when it was written (by the store's clock); what trimming goes by.
    pub at: u64,
    pub kind: ChangeKind,
}

/// What changed. State, not intent: applying a change sets what it names to the state it
/// carries, so applying the log in order yields the store's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChangeKind {
    /// A user was created or changed (`insert_user`, `update_user`).
    UserPut(UserState),
    /// Many users were created at once (`insert_users`, `gatehouse user import`): one
    /// change for one write, however many users.
    UsersPut { users: Vec<UserState> },
    /// A user was removed (`remove_user`).
    UserRemoved { id: String },
    /// A session was started, refreshed or ended (`insert_session`, `take_refresh`,
    /// `end_session`); `ended_at` says whether its tokens are dead.
    SessionPut(SessionRecord),
    /// Every session of a removed user was deleted (`remove_sessions_of`).
    SessionsRemoved { user_id: String },
    /// An access-token id was revoked until `expires_at` (`insert_revoked`).
    Revoked(RevokedRecord),
    /// A generated signing secret was kept (`insert_secret`); the secret itself is not
    /// in the feed.
    SecretKept,
}

/// The answer to [`super::Store::changes_since`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feed {
    /// The changes after the cursor, in order (at most the limit asked for; fewer means
    /// the reader is caught up), and the cursor to ask from next.
    Changes { changes: Vec<Change>, next: Seq },
    /// Changes after the cursor were trimmed from the log: reload in full.
    Trimmed,
}
