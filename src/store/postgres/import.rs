//! `gatehouse store import` into PostgreSQL (SPEC §1, §8 "Moving"): a snapshot of any
//! size, all or nothing.
//!
//! One transaction, as [`Store::import`](crate::store::Store::import) promises. The rows go in with
//! binary `COPY … FROM STDIN` in chunks of [`CHUNK`] rows, not one `INSERT` per row.
//! A million sessions took one round trip each, and the whole verb ran under the
//! operation timeout, so a large store could not be moved at all ("the database did not
//! answer within 10s; nothing was imported": issue #17, `benches/load/scale.sh`).
//! Here the operation timeout bounds each step instead: the lock and emptiness check,
//! each chunk, the closing statements and the commit. A database that stops answering
//! still fails the import within one timeout, and a large snapshot that keeps making
//! progress completes. A failure at any step drops the transaction, so nothing is imported.

use std::future::Future;

use deadpool_postgres::Transaction;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::{
    browser_columns, col, int, missing_head, uint, within, Inner, REFRESH_COLUMNS, SECRET_KEY,
    SESSION_COLUMNS, USER_COLUMNS,
};
use crate::store::{
    Conflict, RefreshRecord, RevokedRecord, SessionRecord, Snapshot, StoreError, StoreResult,
    UserRecord, Written,
};

/// Rows per `COPY`: one operation timeout covers one chunk.
const CHUNK: usize = 20_000;

/// One row's values for a binary `COPY`, in the column order of its statement.
type CopyRow = Vec<Box<dyn ToSql + Sync + Send>>;

impl Inner {
    /// All or nothing into an empty store (see [`Store::import`](crate::store::Store::import)):
    /// the record tables are locked against writers (EXCLUSIVE: reads go on), so the
    /// emptiness checked is the emptiness written into.
    pub(super) async fn import(&self, snapshot: &Snapshot) -> StoreResult<Written<()>> {
        let mut client = self.step(self.client()).await?;
        let tx = self.step(self.begin(&mut client)).await?;
        self.step(self.lock_empty(&tx)).await?;
        if snapshot.is_empty() {
            return Ok(Written::unchanged(()));
        }
        self.copy(
            &tx,
            "users",
            USER_COLUMNS,
            USER_TYPES,
            &snapshot.users,
            user_row,
        )
        .await?;
        self.copy(
            &tx,
            "sessions",
            SESSION_COLUMNS,
            SESSION_TYPES,
            &snapshot.sessions,
            session_row,
        )
        .await?;
        self.copy(
            &tx,
            "refresh_tokens",
            REFRESH_COLUMNS,
            REFRESH_TYPES,
            &snapshot.refresh_tokens,
            refresh_row,
        )
        .await?;
        self.copy(
            &tx,
            "revoked",
            "jti, expires_at",
            REVOKED_TYPES,
            &snapshot.revoked,
            revoked_row,
        )
        .await?;
        let seq = self
            .step(async {
                if let Some(secret) = &snapshot.secret {
                    self.execute(
                        &tx,
                        "INSERT INTO meta (key, value) VALUES ($1, $2)",
                        &[&SECRET_KEY, &secret.as_slice()],
                    )
                    .await?;
                }
                // One number for the whole import, recorded as trimmed: every follower
                // behind it reloads in full (see `Store::import`).
                let row = self
                    .query_opt(
                        &tx,
                        "UPDATE feed_head SET seq = seq + 1, trimmed = seq + 1 RETURNING seq",
                        &[],
                    )
                    .await?
                    .ok_or_else(missing_head)?;
                uint("feed_head", col("feed_head", &row, "seq")?)
            })
            .await?;
        self.step(self.commit(tx)).await?;
        Ok(Written {
            value: (),
            seq: Some(seq),
        })
    }

    /// Runs one step of a long verb within the operation timeout.
    async fn step<T>(&self, work: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        within(self.op_timeout, work).await
    }

    /// Locks the record tables and refuses a store that holds any record.
    async fn lock_empty(&self, tx: &Transaction<'_>) -> StoreResult<()> {
        self.execute(
            tx,
            "LOCK TABLE users, sessions, refresh_tokens, revoked, meta IN EXCLUSIVE MODE",
            &[],
        )
        .await?;
        let occupied = self
            .query_opt(
                tx,
                "SELECT 1 WHERE EXISTS (SELECT 1 FROM users) OR EXISTS (SELECT 1 FROM sessions) \
                 OR EXISTS (SELECT 1 FROM refresh_tokens) OR EXISTS (SELECT 1 FROM revoked) \
                 OR EXISTS (SELECT 1 FROM meta WHERE key = $1)",
                &[&SECRET_KEY],
            )
            .await?;
        match occupied {
            Some(_) => Err(StoreError::Conflict(Conflict::NotEmpty)),
            None => Ok(()),
        }
    }

    /// Writes `records` into `table` with binary `COPY`, [`CHUNK`] rows per statement,
    /// each chunk within the operation timeout.
    async fn copy<R>(
        &self,
        tx: &Transaction<'_>,
        table: &str,
        columns: &str,
        types: &[Type],
        records: &[R],
        row: fn(&R) -> StoreResult<CopyRow>,
    ) -> StoreResult<()> {
        let sql = format!("COPY {table} ({columns}) FROM STDIN (FORMAT binary)");
        for chunk in records.chunks(CHUNK) {
            self.step(async {
                let sink = tx.copy_in(&sql).await.map_err(|err| self.pg(err))?;
                let writer = BinaryCopyInWriter::new(sink, types);
                let mut writer = std::pin::pin!(writer);
                for record in chunk {
                    let values = row(record)?;
                    let values: Vec<&(dyn ToSql + Sync)> = values
                        .iter()
                        .map(|value| &**value as &(dyn ToSql + Sync))
                        .collect();
                    writer
                        .as_mut()
                        .write(&values)
                        .await
                        .map_err(|err| self.pg(err))?;
                }
                writer.finish().await.map_err(|err| self.pg(err))?;
                Ok(())
            })
            .await?;
        }
        Ok(())
    }
}

/// The types of [`USER_COLUMNS`], in order.
const USER_TYPES: &[Type] = &[
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT_ARRAY,
    Type::BOOL,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
];

fn user_row(user: &UserRecord) -> StoreResult<CopyRow> {
    Ok(vec![
        Box::new(user.id.clone()),
        Box::new(user.username.clone()),
        Box::new(user.canonical.clone()),
        Box::new(user.password_hash.clone()),
        Box::new(user.roles.clone()),
        Box::new(user.enabled),
        Box::new(int(user.created)?),
        Box::new(int(user.password_changed_at)?),
        Box::new(int(user.generation)?),
        Box::new(user.kind.as_str()),
    ])
}

/// The types of [`SESSION_COLUMNS`], in order.
const SESSION_TYPES: &[Type] = &[
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::BYTEA,
    Type::INT8,
    Type::BOOL,
];

fn session_row(session: &SessionRecord) -> StoreResult<CopyRow> {
    let (cookie_hash, last_seen, remember_me) = browser_columns(session)?;
    Ok(vec![
        Box::new(session.user_id.clone()),
        Box::new(session.family.clone()),
        Box::new(int(session.created)?),
        Box::new(int(session.generation)?),
        Box::new(int(session.expires_at)?),
        Box::new(session.ended_at.map(int).transpose()?),
        Box::new(cookie_hash),
        Box::new(last_seen),
        Box::new(remember_me),
    ])
}

/// The types of [`REFRESH_COLUMNS`], in order.
const REFRESH_TYPES: &[Type] = &[Type::BYTEA, Type::TEXT, Type::TEXT, Type::INT8, Type::BOOL];

fn refresh_row(token: &RefreshRecord) -> StoreResult<CopyRow> {
    Ok(vec![
        Box::new(token.token_hash.to_vec()),
        Box::new(token.family.clone()),
        Box::new(token.user_id.clone()),
        Box::new(int(token.expires_at)?),
        Box::new(token.spent),
    ])
}

/// The types of `revoked (jti, expires_at)`.
const REVOKED_TYPES: &[Type] = &[Type::TEXT, Type::INT8];

fn revoked_row(record: &RevokedRecord) -> StoreResult<CopyRow> {
    Ok(vec![
        Box::new(record.jti.clone()),
        Box::new(int(record.expires_at)?),
    ])
}
