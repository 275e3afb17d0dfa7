//! The login counters shared by replicas (`login_counters`, migration 0002) and the
//! signing secret's fingerprint (`meta`), for [`super::PostgresStore`].
//!
//! **One attempt, one transaction.** [`Inner::counters`] locks the (at most two) rows of an
//! operation one by one in the sorted order of [`CounterOp::keys`] — an admission with
//! `INSERT … ON CONFLICT DO UPDATE … RETURNING` (creates a missing row or locks the
//! existing one, and reads it, in one statement), the other operations with
//! `SELECT … FOR UPDATE` — applies the rulebook ([`CounterOp::apply`]) and writes back
//! or deletes what changed before it commits. Parallel attempts on any number of replicas
//! queue on the rows, so a burst of guesses cannot all pass the check before the first is
//! counted, and the fixed lock order keeps two attempts that share a key from
//! deadlocking. Rows whose window and lockout are over are swept with the other expired
//! records ([`Inner::sweep_counters`]).

use super::{col, int, uint, Inner, Transaction, META};
use crate::config::LoginSettings;
use crate::store::counters::{CounterOp, CounterOutcome, CounterState, Millis, Rows};
use crate::store::{StoreError, StoreResult};

const COUNTERS: &str = "login_counters";
/// The `meta` key of the signing secret's fingerprint.
pub(super) const FINGERPRINT_KEY: &str = "secret_fingerprint";

fn counter_of(row: &tokio_postgres::Row) -> StoreResult<CounterState> {
    let attempts: i32 = col(COUNTERS, row, "attempts")?;
    Ok(CounterState {
        window_start: uint(COUNTERS, col(COUNTERS, row, "window_start")?)?,
        attempts: u32::try_from(attempts).map_err(|_| StoreError::Corrupt {
            tree: COUNTERS,
            detail: format!("negative attempts {attempts}"),
        })?,
        locked_until: col::<Option<i64>>(COUNTERS, row, "locked_until")?
            .map(|at| uint(COUNTERS, at))
            .transpose()?,
        last_seen: uint(COUNTERS, col(COUNTERS, row, "last_seen")?)?,
    })
}

impl Inner {
    /// [`crate::store::Store::counters`]: see the module docs.
    pub(super) async fn counters(
        &self,
        op: &CounterOp,
        settings: &LoginSettings,
        now: Millis,
    ) -> StoreResult<CounterOutcome> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let mut rows = Rows::new();
        for key in op.keys() {
            let state = self.lock_counter(&tx, &key, op.creates_rows(), now).await?;
            rows.insert(key, state);
        }
        let before = rows.clone();
        let outcome = op.apply(&mut rows, settings, now);
        for (key, state) in &rows {
            let was = before.get(key).copied().flatten();
            match state {
                Some(state) if was != Some(*state) => {
                    self.write_counter(&tx, key, state, settings).await?;
                }
                None if was.is_some() => {
                    self.execute(&tx, "DELETE FROM login_counters WHERE key = $1", &[key])
                        .await?;
                }
                _ => {}
            }
        }
        self.commit(tx).await?;
        Ok(outcome)
    }

    /// Locks one counter row and reads it; with `create`, a missing row is made fresh
    /// (and locked) first.
    async fn lock_counter(
        &self,
        tx: &Transaction<'_>,
        key: &str,
        create: bool,
        now: Millis,
    ) -> StoreResult<Option<CounterState>> {
        let row = if create {
            let now = int(now)?;
            // The no-op update takes the row lock on an existing row and returns it.
            self.query_opt(
                tx,
                "INSERT INTO login_counters \
                   (key, window_start, attempts, locked_until, last_seen, expires_at) \
                 VALUES ($1, $2, 0, NULL, $2, $2) \
                 ON CONFLICT (key) DO UPDATE SET attempts = login_counters.attempts \
                 RETURNING window_start, attempts, locked_until, last_seen",
                &[&key, &now],
            )
            .await?
        } else {
            self.query_opt(
                tx,
                "SELECT window_start, attempts, locked_until, last_seen \
                 FROM login_counters WHERE key = $1 FOR UPDATE",
                &[&key],
            )
            .await?
        };
        row.as_ref().map(counter_of).transpose()
    }

    async fn write_counter(
        &self,
        tx: &Transaction<'_>,
        key: &str,
        state: &CounterState,
        settings: &LoginSettings,
    ) -> StoreResult<()> {
        let attempts = i32::try_from(state.attempts).unwrap_or(i32::MAX);
        let locked_until = state.locked_until.map(int).transpose()?;
        self.execute(
            tx,
            "INSERT INTO login_counters \
               (key, window_start, attempts, locked_until, last_seen, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (key) DO UPDATE SET window_start = EXCLUDED.window_start, \
               attempts = EXCLUDED.attempts, locked_until = EXCLUDED.locked_until, \
               last_seen = EXCLUDED.last_seen, expires_at = EXCLUDED.expires_at",
            &[
                &key,
                &int(state.window_start)?,
                &attempts,
                &locked_until,
                &int(state.last_seen)?,
                &int(state.expires_at(settings))?,
            ],
        )
        .await?;
        Ok(())
    }

    /// Deletes the counters that count for nothing any more at `now` (Unix seconds);
    /// how many.
    pub(super) async fn sweep_counters(&self, tx: &Transaction<'_>, now: u64) -> StoreResult<u64> {
        let now_ms = int(now.saturating_mul(1000))?;
        self.execute(
            tx,
            "DELETE FROM login_counters WHERE expires_at <= $1",
            &[&now_ms],
        )
        .await
    }

    /// [`crate::store::Store::keep_secret_fingerprint`]: the first kept wins. A
    /// concurrent first insert makes ours wait for its commit, then do nothing; the read
    /// that follows (a new statement at READ COMMITTED) sees the winner.
    pub(super) async fn keep_fingerprint(&self, fingerprint: &str) -> StoreResult<String> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        self.execute(
            &tx,
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            &[&FINGERPRINT_KEY, &fingerprint.as_bytes()],
        )
        .await?;
        let row = self
            .query_opt(
                &tx,
                "SELECT value FROM meta WHERE key = $1",
                &[&FINGERPRINT_KEY],
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                tree: META,
                detail: "the kept fingerprint vanished".into(),
            })?;
        self.commit(tx).await?;
        let kept: Vec<u8> = col(META, &row, "value")?;
        String::from_utf8(kept).map_err(|_| StoreError::Corrupt {
            tree: META,
            detail: "the kept fingerprint is not text".into(),
        })
    }

    /// [`crate::store::Store::find_secret_fingerprint`].
    pub(super) async fn find_fingerprint(&self) -> StoreResult<Option<String>> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let row = self
            .query_opt(
                &tx,
                "SELECT value FROM meta WHERE key = $1",
                &[&FINGERPRINT_KEY],
            )
            .await?;
        self.commit(tx).await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let kept: Vec<u8> = col(META, &row, "value")?;
        String::from_utf8(kept)
            .map(Some)
            .map_err(|_| StoreError::Corrupt {
                tree: META,
                detail: "the kept fingerprint is not text".into(),
            })
    }

    /// [`crate::store::Store::forget_secret_fingerprint`].
    pub(super) async fn forget_fingerprint(&self) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let removed = self
            .execute(&tx, "DELETE FROM meta WHERE key = $1", &[&FINGERPRINT_KEY])
            .await?;
        self.commit(tx).await?;
        Ok(removed > 0)
    }
}
