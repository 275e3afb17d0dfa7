//! The schema: numbered SQL files (`migrations/NNNN_name.sql`, embedded at build time)
//! and the `schema_migrations(version, applied_at)` table that records which ran.
//!
//! [`apply`] runs in one transaction that first takes a transaction-level advisory lock,
//! so replicas (and `gatehouse migrate`) starting together queue up: the first applies
//! what is missing, the others then find nothing to do. PostgreSQL's DDL is
//! transactional, so a failed migration leaves the schema as it was. A database whose
//! version is newer than this binary knows is refused (SPEC §8: "a binary older than the
//! schema refuses to start").
//!
//! Adding a migration: a new file with the next number, a line in [`MIGRATIONS`]; never
//! edit one that was released.

use tokio_postgres::Client;

/// One migration: its number and SQL.
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "login_counters",
        sql: include_str!("migrations/0002_login_counters.sql"),
    },
    Migration {
        version: 3,
        name: "principal_kind",
        sql: include_str!("migrations/0003_principal_kind.sql"),
    },
    Migration {
        version: 4,
        name: "browser_sessions",
        sql: include_str!("migrations/0004_browser_sessions.sql"),
    },
];

/// The schema version this binary creates and understands.
pub const LATEST: i32 = 4;

/// The advisory lock key every gatehouse migration takes ("gatehous" in ASCII).
const LOCK_KEY: i64 = 0x6761_7465_686f_7573;

/// What [`apply`] did: the version found and the version now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    pub from: i32,
    pub to: i32,
}

/// Why [`apply`] failed.
#[derive(Debug)]
pub enum MigrateError {
    /// The database's schema is newer than this binary: upgrade gatehouse.
    TooNew { found: i32, known: i32 },
    /// Any other failure (the message is already redacted).
    Failed(crate::store::StoreError),
}

impl std::fmt::Display for MigrateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MigrateError::TooNew { found, known } => write!(
                f,
                "the database schema is version {found}, this gatehouse knows up to {known}; \
                 upgrade gatehouse"
            ),
            MigrateError::Failed(err) => write!(f, "migration failed: {err}"),
        }
    }
}

impl std::error::Error for MigrateError {}

/// Brings the schema to [`LATEST`] (see the module docs). `map` turns a driver error
/// into a (redacted) store error.
pub async fn apply(
    client: &mut Client,
    map: impl Fn(tokio_postgres::Error) -> crate::store::StoreError,
) -> Result<Migrated, MigrateError> {
    let fail = |err| MigrateError::Failed(map(err));
    let tx = client.transaction().await.map_err(fail)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(fail)?;
    // Checked rather than CREATE ... IF NOT EXISTS, whose NOTICE the driver would log at
    // every start; the lock makes check-then-create safe.
    let exists = tx
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await
        .map_err(fail)?;
    if !exists.try_get::<_, bool>(0).map_err(fail)? {
        tx.batch_execute(
            "CREATE TABLE schema_migrations (
                 version    integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(fail)?;
    }
    let row = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(fail)?;
    let found: i32 = row.try_get(0).map_err(fail)?;
    if found > LATEST {
        return Err(MigrateError::TooNew {
            found,
            known: LATEST,
        });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
        tx.batch_execute(migration.sql).await.map_err(|err| {
            MigrateError::Failed(crate::store::StoreError::Backend(format!(
                "{:04}_{}: {}",
                migration.version,
                migration.name,
                map(err)
            )))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&migration.version],
        )
        .await
        .map_err(fail)?;
    }
    tx.commit().await.map_err(fail)?;
    Ok(Migrated {
        from: found,
        to: LATEST.max(found),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version as usize, index + 1, "{}", migration.name);
            assert!(!migration.sql.trim().is_empty());
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(LATEST));
    }
}
