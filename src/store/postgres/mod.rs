//! The PostgreSQL backend (SPEC §8): the same [`Store`] contract as sled
//! (`tests/store_contract.rs` runs on both), for any number of gatehouse processes on one
//! database. Concerns, one file each: [`conninfo`] (the connection string: `sslmode`,
//! redaction), [`tls`] (rustls to the database), [`schema`] (numbered migrations under an
//! advisory lock), [`listen`] (the LISTEN connection that wakes feed followers), `import` (`store import`:
//! binary COPY in chunks, one transaction); the other verbs are here.
//!
//! Tables (`migrations/0001_init.sql`): `users` (unique `canonical`), `sessions` keyed by
//! (user id, family), `refresh_tokens` (SHA-256 only), `revoked`, `meta` (the generated
//! secret; the secret's fingerprint), `changes(seq, at, change jsonb)` and the one-row
//! `feed_head(seq, trimmed)`; `login_counters` (`0002`, the lockout counts every replica
//! shares: [`counters`]); `users.kind` (`0003`: `user` or `client`, service clients being
//! principals in the users table); `sessions.cookie_hash`, `last_seen`, `remember_me`
//! (`0004`: browser sessions, SPEC §10; all NULL for a token session).
//!
//! **Sequence numbers in commit order.** Every publishing transaction ends with
//! `UPDATE feed_head SET seq = seq + 1 RETURNING seq` and the insert of its change row
//! under that number, after all its other writes. The row lock that UPDATE takes is held
//! until commit, so the next writer gets its number only once this one has committed:
//! numbers become visible strictly in order, and a reader that sees change `n + 1` has
//! seen `n`. A plain SEQUENCE is not enough: `nextval` is not transactional, so writer A
//! could take 5, writer B 6, B commit first, a reader see 6, move its cursor past 5 and
//! skip A's change for good. Taking the lock last keeps the serialized part short (one
//! statement and the commit) and the lock order the same everywhere (data rows, then
//! `feed_head`), so writers do not deadlock. A trigger on `changes` sends
//! `NOTIFY gatehouse_changes` (delivered at commit). Writes run at READ COMMITTED (a
//! writer waiting on the lock then sees the committed head); `load` and `changes_since`
//! read at REPEATABLE READ so their lists, head and trim marker are one snapshot.
//!
//! **Refresh rotation across processes.** `take_refresh` locks the token's row
//! (`SELECT … FOR UPDATE`), decides as sled does, and spends it with a conditional
//! `UPDATE … WHERE NOT spent RETURNING`: of several presentations at once, on any number
//! of processes, exactly one rotates; the others then see it spent (reuse: the family
//! ends).
//!
//! **Failures.** A connection-level failure (refused, closed, pool wait timed out, no
//! answer within the operation timeout) is [`StoreError::Unavailable`] (callers answer
//! 503); an SQL error is [`StoreError::Backend`]. Every message goes through
//! [`Conninfo::scrub`], and the connection string is only ever shown [`redact`]ed.
//! Numbers are `bigint`: a `u64` beyond `i64::MAX` is refused as a backend error.

pub mod conninfo;
mod counters;
mod import;
pub mod listen;
pub mod schema;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use subtle::ConstantTimeEq;
use tokio::sync::Notify;
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;
use tokio_util::sync::CancellationToken;

pub use conninfo::{redact, Conninfo, SslMode};
pub use schema::{MigrateError, Migrated, LATEST};

use super::{
    BoxFuture, BrowserSessionRecord, Change, ChangeKind, Conflict, CounterOp, CounterOutcome, Feed,
    Loaded, PrincipalKind, Purged, RefreshRecord, RevokedRecord, Seq, SessionChange, SessionRecord,
    Snapshot, Store, StoreError, StoreResult, Taken, UserChange, UserRecord, UserState, Written,
    FEED_RETENTION,
};

/// How the store connects: pool size and timeouts.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Connections in the pool (`store.pool_size`).
    pub pool_size: usize,
    /// Establishing one connection (TCP, TLS, authentication), unless the connection
    /// string sets `connect_timeout`.
    pub connect_timeout: Duration,
    /// Waiting for a free pooled connection.
    pub wait_timeout: Duration,
    /// One whole verb; past it the verb is `Unavailable` (a frozen server answers nothing).
    pub op_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(5),
            op_timeout: Duration::from_secs(10),
        }
    }
}

/// The PostgreSQL-backed [`Store`]. Cheap to clone; the LISTEN task ends when the last
/// clone is dropped.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    info: Arc<Conninfo>,
    /// Shown in logs and `Debug`.
    shown: String,
    signal: Arc<Notify>,
    stop: CancellationToken,
    op_timeout: Duration,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("database", &self.inner.shown)
            .finish_non_exhaustive()
    }
}

/// A driver error in words, without the connection string (the driver never quotes it;
/// callers scrub the password anyway).
pub(crate) fn describe(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    match std::error::Error::source(err) {
        Some(source) => format!("{err}: {source}"),
        None => err.to_string(),
    }
}

/// Whether `err` means the database could not be reached or the connection was lost
/// (retry later) rather than a statement failing.
fn unreachable(err: &tokio_postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    if let Some(code) = err.code() {
        let code = code.code();
        // 08: connection exception; 57P: operator intervention (shutdown, terminated,
        // cannot connect now); 53300: too many connections.
        return code.starts_with("08") || code.starts_with("57P") || code == "53300";
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    let text = err.to_string();
    text.starts_with("error connecting")
        || text.starts_with("timeout")
        || text.starts_with("error communicating")
        || text.starts_with("error performing TLS")
}

/// Unix seconds by the store's clock (stamps changes for trimming).
/// The one-row `feed_head` table lost its row (migration 1 creates it; nothing deletes it).
fn missing_head() -> StoreError {
    StoreError::Corrupt {
        tree: "feed_head",
        detail: "the feed_head row is missing".into(),
    }
}

fn clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A `u64` as `bigint`.
fn int(value: u64) -> StoreResult<i64> {
    i64::try_from(value)
        .map_err(|_| StoreError::Backend(format!("{value} is beyond PostgreSQL's bigint")))
}

/// A `bigint` as `u64`.
fn uint(table: &'static str, value: i64) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        tree: table,
        detail: format!("negative number {value}"),
    })
}

/// One column, typed; a type mismatch is a corrupt record, never a panic.
fn col<'a, T: tokio_postgres::types::FromSql<'a>>(
    table: &'static str,
    row: &'a Row,
    name: &str,
) -> StoreResult<T> {
    row.try_get(name).map_err(|err| StoreError::Corrupt {
        tree: table,
        detail: format!("{name}: {err}"),
    })
}

const USERS: &str = "users";
const SESSIONS: &str = "sessions";
const REFRESH: &str = "refresh_tokens";
const REVOKED: &str = "revoked";
const CHANGES: &str = "changes";
const META: &str = "meta";
const SECRET_KEY: &str = "signing_secret";

const USER_COLUMNS: &str =
    "id, username, canonical, password_hash, roles, enabled, created, password_changed_at, generation, kind";
const SESSION_COLUMNS: &str =
    "user_id, family, created, generation, expires_at, ended_at, cookie_hash, last_seen, remember_me";
/// [`SESSION_COLUMNS`] of `sessions s` in a join.
const LOAD_SESSION_COLUMNS: &str = "s.user_id, s.family, s.created, s.generation, s.expires_at, \
     s.ended_at, s.cookie_hash, s.last_seen, s.remember_me";
const REFRESH_COLUMNS: &str = "token_hash, family, user_id, expires_at, spent";

fn user_of(row: &Row) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        id: col(USERS, row, "id")?,
        username: col(USERS, row, "username")?,
        canonical: col(USERS, row, "canonical")?,
        password_hash: col(USERS, row, "password_hash")?,
        roles: col(USERS, row, "roles")?,
        enabled: col(USERS, row, "enabled")?,
        created: uint(USERS, col(USERS, row, "created")?)?,
        password_changed_at: uint(USERS, col(USERS, row, "password_changed_at")?)?,
        generation: uint(USERS, col(USERS, row, "generation")?)?,
        kind: {
            let kind: String = col(USERS, row, "kind")?;
            PrincipalKind::parse(&kind).ok_or_else(|| StoreError::Corrupt {
                tree: USERS,
                detail: format!("kind: `{kind}` is neither user nor client"),
            })?
        },
    })
}

fn session_of(row: &Row) -> StoreResult<SessionRecord> {
    Ok(SessionRecord {
        family: col(SESSIONS, row, "family")?,
        user_id: col(SESSIONS, row, "user_id")?,
        created: uint(SESSIONS, col(SESSIONS, row, "created")?)?,
        generation: uint(SESSIONS, col(SESSIONS, row, "generation")?)?,
        expires_at: uint(SESSIONS, col(SESSIONS, row, "expires_at")?)?,
        ended_at: col::<Option<i64>>(SESSIONS, row, "ended_at")?
            .map(|at| uint(SESSIONS, at))
            .transpose()?,
        browser: browser_of(row)?,
    })
}

/// The browser part of a session row: all three columns, or none (a token session).
fn browser_of(row: &Row) -> StoreResult<Option<BrowserSessionRecord>> {
    let hash: Option<Vec<u8>> = col(SESSIONS, row, "cookie_hash")?;
    let last_seen: Option<i64> = col(SESSIONS, row, "last_seen")?;
    let remember_me: Option<bool> = col(SESSIONS, row, "remember_me")?;
    match (hash, last_seen, remember_me) {
        (None, None, None) => Ok(None),
        (Some(hash), Some(last_seen), Some(remember_me)) => Ok(Some(BrowserSessionRecord {
            cookie_hash: hash.try_into().map_err(|_| StoreError::Corrupt {
                tree: SESSIONS,
                detail: "cookie_hash: not 32 bytes".into(),
            })?,
            last_seen: uint(SESSIONS, last_seen)?,
            remember_me,
        })),
        _ => Err(StoreError::Corrupt {
            tree: SESSIONS,
            detail: "cookie_hash, last_seen, remember_me: some set, some not".into(),
        }),
    }
}

/// `cookie_hash`, `last_seen`, `remember_me` as bound to a statement.
type BrowserColumns = (Option<Vec<u8>>, Option<i64>, Option<bool>);

/// The browser columns' values of a session (NULLs for a token session).
fn browser_columns(session: &SessionRecord) -> StoreResult<BrowserColumns> {
    Ok(match &session.browser {
        None => (None, None, None),
        Some(browser) => (
            Some(browser.cookie_hash.to_vec()),
            Some(int(browser.last_seen)?),
            Some(browser.remember_me),
        ),
    })
}

fn refresh_of(row: &Row) -> StoreResult<RefreshRecord> {
    let hash: Vec<u8> = col(REFRESH, row, "token_hash")?;
    Ok(RefreshRecord {
        token_hash: hash.try_into().map_err(|_| StoreError::Corrupt {
            tree: REFRESH,
            detail: "a token hash is not 32 bytes".into(),
        })?,
        family: col(REFRESH, row, "family")?,
        user_id: col(REFRESH, row, "user_id")?,
        expires_at: uint(REFRESH, col(REFRESH, row, "expires_at")?)?,
        spent: col(REFRESH, row, "spent")?,
    })
}

fn revoked_of(row: &Row) -> StoreResult<RevokedRecord> {
    Ok(RevokedRecord {
        jti: col(REVOKED, row, "jti")?,
        expires_at: uint(REVOKED, col(REVOKED, row, "expires_at")?)?,
    })
}

/// Why [`PostgresStore::open`] or [`migrate`] failed; the message is redacted.
#[derive(Debug)]
pub enum OpenFailure {
    /// The connection string cannot be used (parse, TLS roots).
    Config(String),
    /// The schema is newer than this binary, or migrating failed.
    Migrate(MigrateError),
    /// The database could not be reached.
    Unavailable(String),
}

impl std::fmt::Display for OpenFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenFailure::Config(text) => write!(f, "{text}"),
            OpenFailure::Migrate(err) => write!(f, "{err}"),
            OpenFailure::Unavailable(text) => write!(f, "the database cannot be reached: {text}"),
        }
    }
}

impl std::error::Error for OpenFailure {}

/// The driver's configuration and TLS connector for `conn`.
fn prepare(
    conn: &str,
    options: &PostgresOptions,
) -> Result<
    (
        Arc<Conninfo>,
        tokio_postgres::Config,
        tokio_postgres_rustls::MakeRustlsConnect,
    ),
    OpenFailure,
> {
    let info = Arc::new(Conninfo::parse(conn).map_err(OpenFailure::Config)?);
    let mut config: tokio_postgres::Config = info.driver.parse().map_err(|err| {
        OpenFailure::Config(format!(
            "the connection string {} is not valid: {}",
            redact(conn),
            info.scrub(&describe(&err))
        ))
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(options.connect_timeout);
    }
    if config.get_application_name().is_none() {
        config.application_name("gatehouse");
    }
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(30));
    let tls = tls::client_config(&info).map_err(|err| OpenFailure::Config(info.scrub(&err)))?;
    Ok((
        info,
        config,
        tokio_postgres_rustls::MakeRustlsConnect::new(tls),
    ))
}

/// Connects once (not pooled) and brings the schema to [`LATEST`]: `gatehouse migrate`,
/// and [`PostgresStore::open`] before it serves.
pub async fn migrate(conn: &str, options: &PostgresOptions) -> Result<Migrated, OpenFailure> {
    let (info, config, tls) = prepare(conn, options)?;
    let map = |err: tokio_postgres::Error| {
        let text = info.scrub(&describe(&err));
        if unreachable(&err) {
            StoreError::Unavailable(text)
        } else {
            StoreError::Backend(text)
        }
    };
    let (mut client, connection) = config.connect(tls).await.map_err(|err| {
        OpenFailure::Unavailable(format!("{}: {}", redact(conn), info.scrub(&describe(&err))))
    })?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let applied = tokio::time::timeout(options.op_timeout.max(Duration::from_secs(60)), async {
        schema::apply(&mut client, map).await
    })
    .await;
    drop(client);
    let _ = driver.await;
    match applied {
        Ok(Ok(migrated)) => Ok(migrated),
        Ok(Err(MigrateError::Failed(StoreError::Unavailable(text)))) => {
            Err(OpenFailure::Unavailable(text))
        }
        Ok(Err(err)) => Err(OpenFailure::Migrate(err)),
        Err(_) => Err(OpenFailure::Unavailable(
            "the migration did not finish within a minute".into(),
        )),
    }
}

impl PostgresStore {
    /// Migrates the schema (see [`migrate`]), then opens the pool and starts the LISTEN
    /// connection. Must run inside a tokio runtime.
    pub async fn open(conn: &str, options: PostgresOptions) -> Result<Self, OpenFailure> {
        let migrated = migrate(conn, &options).await?;
        if migrated.from != migrated.to {
            tracing::info!(
                from = migrated.from,
                to = migrated.to,
                database = %redact(conn),
                "database schema migrated"
            );
        }
        Self::connect(conn, options)
    }

    /// Opens the pool and starts the LISTEN connection without touching the schema.
    pub fn connect(conn: &str, options: PostgresOptions) -> Result<Self, OpenFailure> {
        let (info, config, tls) = prepare(conn, &options)?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.wait_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|err| OpenFailure::Config(format!("connection pool: {err}")))?;
        let signal = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let scrub_info = info.clone();
        tokio::spawn(listen::run(
            config,
            tls,
            signal.clone(),
            stop.clone(),
            move |text| scrub_info.scrub(text),
        ));
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                pool,
                shown: redact(conn),
                info,
                signal,
                stop,
                op_timeout: options.op_timeout,
            }),
        })
    }

    /// The database, password masked.
    pub fn shown(&self) -> &str {
        &self.inner.shown
    }

    /// Runs one verb with the operation timeout.
    fn run<'a, T: Send + 'a>(
        &'a self,
        verb: impl std::future::Future<Output = StoreResult<T>> + Send + 'a,
    ) -> BoxFuture<'a, StoreResult<T>> {
        Box::pin(within(self.inner.op_timeout, verb))
    }
}

/// `work`'s result, or [`StoreError::Unavailable`] when it takes longer than `limit`.
async fn within<T>(
    limit: Duration,
    work: impl std::future::Future<Output = StoreResult<T>>,
) -> StoreResult<T> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Unavailable(format!(
            "the database did not answer within {limit:?}"
        ))),
    }
}

type Client = deadpool_postgres::Object;
type Transaction<'a> = deadpool_postgres::Transaction<'a>;

/// The statement that publishes a change: the next number (the `feed_head` row lock,
/// held to commit, orders writers) and the change row, in one round trip.
const PUBLISH: &str = "WITH head AS (UPDATE feed_head SET seq = seq + 1 RETURNING seq) \
     INSERT INTO changes (seq, at, change) SELECT seq, $1, $2::text::jsonb FROM head \
     RETURNING seq";

impl Inner {
    fn pg(&self, err: tokio_postgres::Error) -> StoreError {
        let text = self.info.scrub(&describe(&err));
        if unreachable(&err) {
            StoreError::Unavailable(text)
        } else {
            StoreError::Backend(text)
        }
    }

    async fn client(&self) -> StoreResult<Client> {
        self.pool.get().await.map_err(|err| match err {
            deadpool_postgres::PoolError::Backend(err) => self.pg(err),
            deadpool_postgres::PoolError::Timeout(kind) => StoreError::Unavailable(format!(
                "no database connection within the pool's timeout ({kind:?})"
            )),
            deadpool_postgres::PoolError::Closed => {
                StoreError::Unavailable("the connection pool is closed".into())
            }
            other => StoreError::Backend(self.info.scrub(&other.to_string())),
        })
    }

    async fn begin<'c>(&self, client: &'c mut Client) -> StoreResult<Transaction<'c>> {
        client.transaction().await.map_err(|err| self.pg(err))
    }

    async fn snapshot<'c>(&self, client: &'c mut Client) -> StoreResult<Transaction<'c>> {
        client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(|err| self.pg(err))
    }

    async fn commit(&self, tx: Transaction<'_>) -> StoreResult<()> {
        tx.commit().await.map_err(|err| self.pg(err))
    }

    async fn query(
        &self,
        tx: &Transaction<'_>,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> StoreResult<Vec<Row>> {
        let statement = tx.prepare_cached(sql).await.map_err(|err| self.pg(err))?;
        tx.query(&statement, params)
            .await
            .map_err(|err| self.pg(err))
    }

    async fn query_opt(
        &self,
        tx: &Transaction<'_>,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> StoreResult<Option<Row>> {
        Ok(self.query(tx, sql, params).await?.into_iter().next())
    }

    /// Every row of a query, each decoded by `decode`.
    async fn all<T>(
        &self,
        tx: &Transaction<'_>,
        sql: &str,
        decode: impl Fn(&Row) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        self.query(tx, sql, &[]).await?.iter().map(decode).collect()
    }

    async fn execute(
        &self,
        tx: &Transaction<'_>,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> StoreResult<u64> {
        let statement = tx.prepare_cached(sql).await.map_err(|err| self.pg(err))?;
        tx.execute(&statement, params)
            .await
            .map_err(|err| self.pg(err))
    }

    /// Appends `kind` to the change log; the last statement of a publishing transaction.
    async fn publish(&self, tx: &Transaction<'_>, kind: &ChangeKind) -> StoreResult<Seq> {
        let json = serde_json::to_string(kind).map_err(|err| StoreError::Corrupt {
            tree: CHANGES,
            detail: err.to_string(),
        })?;
        let row = self
            .query_opt(tx, PUBLISH, &[&int(clock())?, &json])
            .await?
            .ok_or_else(missing_head)?;
        uint(CHANGES, col(CHANGES, &row, "seq")?)
    }

    /// One read outside an explicit transaction (autocommit).
    async fn read(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> StoreResult<Vec<Row>> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(|err| self.pg(err))?;
        client
            .query(&statement, params)
            .await
            .map_err(|err| self.pg(err))
    }

    async fn find_user(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        self.read(&sql, &[&id])
            .await?
            .first()
            .map(user_of)
            .transpose()
    }

    async fn find_user_by_name(&self, canonical: &str) -> StoreResult<Option<UserRecord>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE canonical = $1");
        self.read(&sql, &[&canonical])
            .await?
            .first()
            .map(user_of)
            .transpose()
    }

    async fn list_users(&self) -> StoreResult<Vec<UserRecord>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY id COLLATE \"C\"");
        self.read(&sql, &[]).await?.iter().map(user_of).collect()
    }

    /// What a failed user INSERT means: a unique violation is the conflict it names (a
    /// concurrent insert of the same name or id committed first), anything else a fault.
    fn user_insert_failure(&self, err: tokio_postgres::Error) -> StoreError {
        if let Some(db) = err.as_db_error() {
            if *db.code() == SqlState::UNIQUE_VIOLATION {
                return StoreError::Conflict(if db.constraint() == Some("users_canonical_key") {
                    Conflict::UsernameTaken
                } else {
                    Conflict::UserIdTaken
                });
            }
        }
        self.pg(err)
    }

    /// Inserts one user row. The database's own error comes back as is (inside `Ok`), so
    /// `insert_user` can tell which unique constraint a concurrent insert hit.
    async fn insert_user_row(
        &self,
        tx: &Transaction<'_>,
        user: &UserRecord,
    ) -> StoreResult<Result<u64, tokio_postgres::Error>> {
        let sql = format!(
            "INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        );
        let statement = tx.prepare_cached(&sql).await.map_err(|err| self.pg(err))?;
        Ok(tx
            .execute(
                &statement,
                &[
                    &user.id,
                    &user.username,
                    &user.canonical,
                    &user.password_hash,
                    &user.roles,
                    &user.enabled,
                    &int(user.created)?,
                    &int(user.password_changed_at)?,
                    &int(user.generation)?,
                    &user.kind.as_str(),
                ],
            )
            .await)
    }

    async fn insert_user(&self, user: &UserRecord) -> StoreResult<Written<()>> {
        let change = ChangeKind::UserPut(UserState::from(user));
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        if self
            .query_opt(
                &tx,
                "SELECT 1 FROM users WHERE canonical = $1",
                &[&user.canonical],
            )
            .await?
            .is_some()
        {
            return Err(StoreError::Conflict(Conflict::UsernameTaken));
        }
        if self
            .query_opt(&tx, "SELECT 1 FROM users WHERE id = $1", &[&user.id])
            .await?
            .is_some()
        {
            return Err(StoreError::Conflict(Conflict::UserIdTaken));
        }
        let inserted = self.insert_user_row(&tx, user).await?;
        if let Err(err) = inserted {
            // A concurrent insert of the same name or id committed first.
            return Err(self.user_insert_failure(err));
        }
        let seq = self.publish(&tx, &change).await?;
        self.commit(tx).await?;
        Ok(Written {
            value: (),
            seq: Some(seq),
        })
    }

    /// One `INSERT … SELECT FROM UNNEST(arrays)` for the whole list (one round trip
    /// however many users; roles travel as one JSON array per user, since PostgreSQL
    /// arrays cannot be ragged), after the same checks as `insert_user`.
    async fn insert_users(&self, users: &[UserRecord]) -> StoreResult<Written<()>> {
        if users.is_empty() {
            return Ok(Written::unchanged(()));
        }
        let mut names = std::collections::HashSet::new();
        let mut ids = std::collections::HashSet::new();
        for user in users {
            if !names.insert(user.canonical.as_str()) {
                return Err(StoreError::Conflict(Conflict::UsernameTaken));
            }
            if !ids.insert(user.id.as_str()) {
                return Err(StoreError::Conflict(Conflict::UserIdTaken));
            }
        }
        let column = |f: fn(&UserRecord) -> String| users.iter().map(f).collect::<Vec<_>>();
        let id = column(|u| u.id.clone());
        let username = column(|u| u.username.clone());
        let canonical = column(|u| u.canonical.clone());
        let password_hash = column(|u| u.password_hash.clone());
        let kind = column(|u| u.kind.as_str().to_string());
        let roles = users
            .iter()
            .map(|u| serde_json::to_string(&u.roles))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| StoreError::Backend(err.to_string()))?;
        let enabled: Vec<bool> = users.iter().map(|u| u.enabled).collect();
        let numbers = |f: fn(&UserRecord) -> u64| {
            users
                .iter()
                .map(|u| int(f(u)))
                .collect::<StoreResult<Vec<_>>>()
        };
        let created = numbers(|u| u.created)?;
        let changed = numbers(|u| u.password_changed_at)?;
        let generation = numbers(|u| u.generation)?;
        let change = ChangeKind::UsersPut {
            users: users.iter().map(UserState::from).collect(),
        };
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        if self
            .query_opt(
                &tx,
                "SELECT 1 FROM users WHERE canonical = ANY($1) LIMIT 1",
                &[&canonical],
            )
            .await?
            .is_some()
        {
            return Err(StoreError::Conflict(Conflict::UsernameTaken));
        }
        if self
            .query_opt(
                &tx,
                "SELECT 1 FROM users WHERE id = ANY($1) LIMIT 1",
                &[&id],
            )
            .await?
            .is_some()
        {
            return Err(StoreError::Conflict(Conflict::UserIdTaken));
        }
        let sql = format!(
            "INSERT INTO users ({USER_COLUMNS}) \
             SELECT id, username, canonical, password_hash, \
                    ARRAY(SELECT jsonb_array_elements_text(roles::jsonb)), \
                    enabled, created, password_changed_at, generation, kind \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                         $6::bool[], $7::bigint[], $8::bigint[], $9::bigint[], $10::text[]) \
                  AS t({USER_COLUMNS})"
        );
        let statement = tx.prepare_cached(&sql).await.map_err(|err| self.pg(err))?;
        let inserted = tx
            .execute(
                &statement,
                &[
                    &id,
                    &username,
                    &canonical,
                    &password_hash,
                    &roles,
                    &enabled,
                    &created,
                    &changed,
                    &generation,
                    &kind,
                ],
            )
            .await;
        if let Err(err) = inserted {
            // A concurrent insert of one of these names or ids committed first.
            return Err(self.user_insert_failure(err));
        }
        let seq = self.publish(&tx, &change).await?;
        self.commit(tx).await?;
        Ok(Written {
            value: (),
            seq: Some(seq),
        })
    }

    async fn update_user(
        &self,
        id: &str,
        change: &UserChange,
    ) -> StoreResult<Written<Option<UserRecord>>> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1 FOR UPDATE");
        let Some(row) = self.query_opt(&tx, &sql, &[&id]).await? else {
            return Ok(Written::unchanged(None));
        };
        let mut user = user_of(&row)?;
        if !change.apply(&mut user) {
            return Ok(Written::unchanged(Some(user)));
        }
        self.execute(
            &tx,
            "UPDATE users SET password_hash = $2, roles = $3, enabled = $4, \
             password_changed_at = $5, generation = $6 WHERE id = $1",
            &[
                &id,
                &user.password_hash,
                &user.roles,
                &user.enabled,
                &int(user.password_changed_at)?,
                &int(user.generation)?,
            ],
        )
        .await?;
        let seq = self
            .publish(&tx, &ChangeKind::UserPut(UserState::from(&user)))
            .await?;
        self.commit(tx).await?;
        Ok(Written {
            value: Some(user),
            seq: Some(seq),
        })
    }

    async fn remove_user(&self, id: &str) -> StoreResult<Written<Option<UserRecord>>> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let sql = format!("DELETE FROM users WHERE id = $1 RETURNING {USER_COLUMNS}");
        let Some(row) = self.query_opt(&tx, &sql, &[&id]).await? else {
            return Ok(Written::unchanged(None));
        };
        let user = user_of(&row)?;
        let seq = self
            .publish(&tx, &ChangeKind::UserRemoved { id: id.to_string() })
            .await?;
        self.commit(tx).await?;
        Ok(Written {
            value: Some(user),
            seq: Some(seq),
        })
    }

    async fn insert_session(
        &self,
        session: &SessionRecord,
        token: Option<&RefreshRecord>,
    ) -> StoreResult<Written<()>> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        // FOR SHARE: a concurrent password change or disable waits for us, or we for it
        // (and then see its new generation).
        let user = self
            .query_opt(
                &tx,
                "SELECT enabled, generation FROM users WHERE id = $1 FOR SHARE",
                &[&session.user_id],
            )
            .await?;
        match user {
            None => return Err(StoreError::Conflict(Conflict::NoSuchUser)),
            Some(row) => {
                if !col::<bool>(USERS, &row, "enabled")? {
                    return Err(StoreError::Conflict(Conflict::UserDisabled));
                }
                if uint(USERS, col(USERS, &row, "generation")?)? != session.generation {
                    return Err(StoreError::Conflict(Conflict::StaleGeneration));
                }
            }
        }
        // Token before session: the same row order as take_refresh. A browser session
        // has none.
        if let Some(token) = token {
            let sql = format!(
                "INSERT INTO refresh_tokens ({REFRESH_COLUMNS}) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (token_hash) DO UPDATE SET family = EXCLUDED.family, \
                 user_id = EXCLUDED.user_id, expires_at = EXCLUDED.expires_at, spent = EXCLUDED.spent"
            );
            self.execute(
                &tx,
                &sql,
                &[
                    &&token.token_hash[..],
                    &token.family,
                    &token.user_id,
                    &int(token.expires_at)?,
                    &token.spent,
                ],
            )
            .await?;
        }
        self.put_session(&tx, session).await?;
        let seq = self
            .publish(&tx, &ChangeKind::SessionPut(session.clone()))
            .await?;
        self.commit(tx).await?;
        Ok(Written {
            value: (),
            seq: Some(seq),
        })
    }

    /// Inserts or replaces a session row.
    async fn put_session(&self, tx: &Transaction<'_>, session: &SessionRecord) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (user_id, family) DO UPDATE SET created = EXCLUDED.created, \
             generation = EXCLUDED.generation, expires_at = EXCLUDED.expires_at, \
             ended_at = EXCLUDED.ended_at, cookie_hash = EXCLUDED.cookie_hash, \
             last_seen = EXCLUDED.last_seen, remember_me = EXCLUDED.remember_me"
        );
        let (cookie_hash, last_seen, remember_me) = browser_columns(session)?;
        self.execute(
            tx,
            &sql,
            &[
                &session.user_id,
                &session.family,
                &int(session.created)?,
                &int(session.generation)?,
                &int(session.expires_at)?,
                &session.ended_at.map(int).transpose()?,
                &cookie_hash,
                &last_seen,
                &remember_me,
            ],
        )
        .await?;
        Ok(())
    }

    async fn find_refresh(&self, token_hash: &[u8; 32]) -> StoreResult<Option<RefreshRecord>> {
        let sql = format!("SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE token_hash = $1");
        let Some(row) = self
            .read(&sql, &[&&token_hash[..]])
            .await?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let record = refresh_of(&row)?;
        Ok(bool::from(record.token_hash.ct_eq(token_hash)).then_some(record))
    }

    async fn take_refresh(
        &self,
        token_hash: &[u8; 32],
        now: u64,
        next_hash: &[u8; 32],
        next_expires_at: u64,
    ) -> StoreResult<Written<Taken>> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        // The token's row lock: concurrent presentations of one token (from any process)
        // queue here, and each sees what the one before it committed.
        let sql = format!(
            "SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE"
        );
        let Some(row) = self.query_opt(&tx, &sql, &[&&token_hash[..]]).await? else {
            return Ok(Written::unchanged(Taken::Invalid));
        };
        let token = refresh_of(&row)?;
        if !bool::from(token.token_hash.ct_eq(token_hash)) {
            return Ok(Written::unchanged(Taken::Invalid));
        }
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND family = $2 FOR UPDATE"
        );
        let Some(row) = self
            .query_opt(&tx, &sql, &[&token.user_id, &token.family])
            .await?
        else {
            return Ok(Written::unchanged(Taken::Invalid));
        };
        let mut session = session_of(&row)?;
        if session.ended_at.is_some() {
            return Ok(Written::unchanged(Taken::Invalid));
        }
        if token.spent {
            // RFC 9700 §4.14.2: a spent token presented again means one of two parties
            // holds a stolen copy; end the whole family.
            session.ended_at = Some(now);
            self.put_session(&tx, &session).await?;
            let seq = self
                .publish(&tx, &ChangeKind::SessionPut(session.clone()))
                .await?;
            self.commit(tx).await?;
            return Ok(Written {
                value: Taken::Reused(session),
                seq: Some(seq),
            });
        }
        if token.expires_at <= now {
            return Ok(Written::unchanged(Taken::Invalid));
        }
        // The conditional spend: succeeds for exactly one presentation.
        let spent = self
            .query_opt(
                &tx,
                "UPDATE refresh_tokens SET spent = true WHERE token_hash = $1 AND NOT spent \
                 RETURNING token_hash",
                &[&&token_hash[..]],
            )
            .await?;
        if spent.is_none() {
            return Ok(Written::unchanged(Taken::Invalid));
        }
        let sql = format!(
            "INSERT INTO refresh_tokens ({REFRESH_COLUMNS}) VALUES ($1, $2, $3, $4, false) \
             ON CONFLICT (token_hash) DO UPDATE SET family = EXCLUDED.family, \
             user_id = EXCLUDED.user_id, expires_at = EXCLUDED.expires_at, spent = false"
        );
        self.execute(
            &tx,
            &sql,
            &[
                &&next_hash[..],
                &token.family,
                &token.user_id,
                &int(next_expires_at)?,
            ],
        )
        .await?;
        session.expires_at = session.expires_at.max(next_expires_at);
        self.put_session(&tx, &session).await?;
        let seq = self
            .publish(&tx, &ChangeKind::SessionPut(session.clone()))
            .await?;
        self.commit(tx).await?;
        Ok(Written {
            value: Taken::Rotated(session),
            seq: Some(seq),
        })
    }

    async fn sessions_of(&self, user_id: &str) -> StoreResult<Vec<SessionRecord>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 ORDER BY family COLLATE \"C\""
        );
        self.read(&sql, &[&user_id])
            .await?
            .iter()
            .map(session_of)
            .collect()
    }

    async fn end_session(
        &self,
        user_id: &str,
        family: &str,
        now: u64,
    ) -> StoreResult<Written<Option<SessionRecord>>> {
        self.change_session(user_id, family, SessionChange::End { at: now })
            .await
    }

    async fn touch_session(
        &self,
        user_id: &str,
        family: &str,
        last_seen: u64,
    ) -> StoreResult<Written<bool>> {
        let written = self
            .change_session(user_id, family, SessionChange::Touch { last_seen })
            .await?;
        Ok(Written {
            value: written.seq.is_some(),
            seq: written.seq,
        })
    }

    /// Applies `change` to one session ([`SessionChange::apply`]) under a row lock, in one
    /// transaction with its feed entry; the session as it is now, or `None` when there is
    /// none.
    async fn change_session(
        &self,
        user_id: &str,
        family: &str,
        change: SessionChange,
    ) -> StoreResult<Written<Option<SessionRecord>>> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND family = $2 FOR UPDATE"
        );
        let Some(row) = self.query_opt(&tx, &sql, &[&user_id, &family]).await? else {
            return Ok(Written::unchanged(None));
        };
        let mut session = session_of(&row)?;
        if !change.apply(&mut session) {
            return Ok(Written::unchanged(Some(session)));
        }
        self.put_session(&tx, &session).await?;
        let seq = self
            .publish(&tx, &ChangeKind::SessionPut(session.clone()))
            .await?;
        self.commit(tx).await?;
        Ok(Written {
            value: Some(session),
            seq: Some(seq),
        })
    }

    async fn remove_sessions_of(&self, user_id: &str) -> StoreResult<Written<usize>> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        let removed = self
            .execute(&tx, "DELETE FROM sessions WHERE user_id = $1", &[&user_id])
            .await?;
        if removed == 0 {
            return Ok(Written::unchanged(0));
        }
        let seq = self
            .publish(
                &tx,
                &ChangeKind::SessionsRemoved {
                    user_id: user_id.to_string(),
                },
            )
            .await?;
        self.commit(tx).await?;
        Ok(Written {
            value: usize::try_from(removed).unwrap_or(usize::MAX),
            seq: Some(seq),
        })
    }

    async fn insert_revoked(&self, record: &RevokedRecord) -> StoreResult<Written<()>> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        self.execute(
            &tx,
            "INSERT INTO revoked (jti, expires_at) VALUES ($1, $2) \
             ON CONFLICT (jti) DO UPDATE SET expires_at = EXCLUDED.expires_at",
            &[&record.jti, &int(record.expires_at)?],
        )
        .await?;
        let seq = self
            .publish(&tx, &ChangeKind::Revoked(record.clone()))
            .await?;
        self.commit(tx).await?;
        Ok(Written {
            value: (),
            seq: Some(seq),
        })
    }

    async fn find_secret(&self) -> StoreResult<Option<Vec<u8>>> {
        let rows = self
            .read("SELECT value FROM meta WHERE key = $1", &[&SECRET_KEY])
            .await?;
        rows.first().map(|row| col(META, row, "value")).transpose()
    }

    async fn insert_secret(&self, secret: &[u8]) -> StoreResult<Written<Vec<u8>>> {
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        // A concurrent first insert makes ours wait, then do nothing.
        let inserted = self
            .query_opt(
                &tx,
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING \
                 RETURNING key",
                &[&SECRET_KEY, &secret],
            )
            .await?;
        if inserted.is_none() {
            let row = self
                .query_opt(&tx, "SELECT value FROM meta WHERE key = $1", &[&SECRET_KEY])
                .await?
                .ok_or_else(|| StoreError::Corrupt {
                    tree: META,
                    detail: "the kept secret vanished".into(),
                })?;
            return Ok(Written::unchanged(col(META, &row, "value")?));
        }
        let seq = self.publish(&tx, &ChangeKind::SecretKept).await?;
        self.commit(tx).await?;
        Ok(Written {
            value: secret.to_vec(),
            seq: Some(seq),
        })
    }

    async fn load(&self, now: u64, grace: u64) -> StoreResult<Loaded> {
        let (now_i, grace_i) = (int(now)?, int(grace)?);
        let mut client = self.client().await?;
        let tx = self.snapshot(&mut client).await?;
        let head = self
            .query_opt(&tx, "SELECT seq FROM feed_head", &[])
            .await?
            .ok_or_else(missing_head)?;
        let cursor = uint("feed_head", col("feed_head", &head, "seq")?)?;
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY id COLLATE \"C\"");
        let users = self
            .all(&tx, &sql, |row| {
                user_of(row).map(|user| UserState::from(&user))
            })
            .await?;
        // `store::load_keeps` in SQL: one pass over the sessions, the user joined for
        // the live ones; only the kept rows cross the wire. `ended_at >= now - grace` is
        // `ended_at + grace >= now` without the overflow.
        let sql = format!(
            "SELECT {LOAD_SESSION_COLUMNS} FROM sessions s LEFT JOIN users u ON u.id = s.user_id \
             WHERE (s.ended_at IS NOT NULL AND s.ended_at >= $1::bigint - $2::bigint) \
                OR (s.ended_at IS NULL AND u.id IS NOT NULL \
                    AND (NOT u.enabled OR u.generation <> s.generation \
                         OR (s.cookie_hash IS NOT NULL AND s.expires_at > $1::bigint))) \
             ORDER BY s.user_id COLLATE \"C\", s.family COLLATE \"C\""
        );
        let sessions = self
            .query(&tx, &sql, &[&now_i, &grace_i])
            .await?
            .iter()
            .map(session_of)
            .collect::<StoreResult<Vec<_>>>()?;
        let revoked = self
            .all(
                &tx,
                "SELECT jti, expires_at FROM revoked ORDER BY jti COLLATE \"C\"",
                revoked_of,
            )
            .await?;
        self.commit(tx).await?;
        Ok(Loaded {
            users,
            sessions,
            revoked,
            cursor,
        })
    }

    async fn changes_since(&self, cursor: Seq, limit: usize) -> StoreResult<Feed> {
        let mut client = self.client().await?;
        let tx = self.snapshot(&mut client).await?;
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        let rows = self
            .query(
                &tx,
                "SELECT seq, at, change::text AS change FROM changes WHERE seq > $1 \
                 ORDER BY seq LIMIT $2",
                &[&int(cursor)?, &limit],
            )
            .await?;
        let head = self
            .query_opt(&tx, "SELECT seq, trimmed FROM feed_head", &[])
            .await?
            .ok_or_else(missing_head)?;
        self.commit(tx).await?;
        let seq = uint("feed_head", col("feed_head", &head, "seq")?)?;
        let trimmed = uint("feed_head", col("feed_head", &head, "trimmed")?)?;
        // One snapshot: the log, the head and the trim marker agree. A cursor beyond the
        // head comes from another log (a store restored from elsewhere): reload too.
        if trimmed > cursor || cursor > seq {
            return Ok(Feed::Trimmed);
        }
        let mut changes = Vec::with_capacity(rows.len());
        for row in &rows {
            let text: String = col(CHANGES, row, "change")?;
            changes.push(Change {
                seq: uint(CHANGES, col(CHANGES, row, "seq")?)?,
                at: uint(CHANGES, col(CHANGES, row, "at")?)?,
                kind: serde_json::from_str(&text).map_err(|err| StoreError::Corrupt {
                    tree: CHANGES,
                    detail: err.to_string(),
                })?,
            });
        }
        let next = changes.last().map_or(cursor, |change| change.seq);
        Ok(Feed::Changes { changes, next })
    }

    async fn remove_expired(&self, now: u64, grace: u64) -> StoreResult<Purged> {
        let (now_i, grace_i) = (int(now)?, int(grace)?);
        let mut client = self.client().await?;
        let tx = self.begin(&mut client).await?;
        // Tokens before sessions: the row order of take_refresh and insert_session, so a
        // purge and a rotation never deadlock. A token goes when it expired, or when its
        // session is gone or goes in this purge.
        let refresh_tokens = self
            .execute(
                &tx,
                "DELETE FROM refresh_tokens r WHERE r.expires_at < $1::bigint OR NOT EXISTS \
                 (SELECT 1 FROM sessions s WHERE s.user_id = r.user_id AND s.family = r.family \
                 AND coalesce(s.ended_at, s.expires_at) + $2::bigint >= $1::bigint)",
                &[&now_i, &grace_i],
            )
            .await?;
        let sessions = self
            .execute(
                &tx,
                "DELETE FROM sessions WHERE coalesce(ended_at, expires_at) + $2::bigint < $1::bigint",
                &[&now_i, &grace_i],
            )
            .await?;
        let revoked = self
            .execute(&tx, "DELETE FROM revoked WHERE expires_at < $1", &[&now_i])
            .await?;
        self.sweep_counters(&tx, now).await?;
        // Trim the oldest changes (a prefix of the log: up to the first one still young),
        // recording the bound in the same transaction. Locking feed_head keeps writers
        // out meanwhile, so the head read here is the last number given out.
        let head = self
            .query_opt(&tx, "SELECT seq FROM feed_head FOR UPDATE", &[])
            .await?
            .ok_or_else(missing_head)?;
        let head: i64 = col("feed_head", &head, "seq")?;
        let trimmed = self
            .query(
                &tx,
                "WITH bound AS (SELECT coalesce(min(seq), $2::bigint + 1) AS seq FROM changes \
                 WHERE at + $3::bigint >= $1::bigint) \
                 DELETE FROM changes WHERE seq < (SELECT seq FROM bound) RETURNING seq",
                &[&now_i, &head, &int(FEED_RETENTION)?],
            )
            .await?;
        let mut last: i64 = 0;
        for row in &trimmed {
            last = last.max(col(CHANGES, row, "seq")?);
        }
        if last > 0 {
            self.execute(
                &tx,
                "UPDATE feed_head SET trimmed = greatest(trimmed, $1::bigint)",
                &[&last],
            )
            .await?;
        }
        self.commit(tx).await?;
        let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Ok(Purged {
            refresh_tokens: count(refresh_tokens),
            sessions: count(sessions),
            revoked: count(revoked),
            changes: trimmed.len(),
        })
    }

    /// One REPEATABLE READ snapshot of every table (see [`Store::export`]).
    async fn export(&self) -> StoreResult<Snapshot> {
        let mut client = self.client().await?;
        let tx = self.snapshot(&mut client).await?;
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY id COLLATE \"C\"");
        let users = self.all(&tx, &sql, user_of).await?;
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions");
        let sessions = self.all(&tx, &sql, session_of).await?;
        let sql = format!("SELECT {REFRESH_COLUMNS} FROM refresh_tokens");
        let refresh_tokens = self.all(&tx, &sql, refresh_of).await?;
        let revoked = self
            .all(&tx, "SELECT jti, expires_at FROM revoked", revoked_of)
            .await?;
        let secret = match self
            .query_opt(&tx, "SELECT value FROM meta WHERE key = $1", &[&SECRET_KEY])
            .await?
        {
            Some(row) => Some(zeroize::Zeroizing::new(col::<Vec<u8>>(
                META, &row, "value",
            )?)),
            None => None,
        };
        self.commit(tx).await?;
        Ok(Snapshot {
            users,
            sessions,
            refresh_tokens,
            revoked,
            secret,
        }
        .without_orphans())
    }
}

impl Store for PostgresStore {
    fn find_user(&self, id: &str) -> BoxFuture<'_, StoreResult<Option<UserRecord>>> {
        let id = id.to_string();
        self.run(async move { self.inner.find_user(&id).await })
    }

    fn find_user_by_name(&self, canonical: &str) -> BoxFuture<'_, StoreResult<Option<UserRecord>>> {
        let canonical = canonical.to_string();
        self.run(async move { self.inner.find_user_by_name(&canonical).await })
    }

    fn list_users(&self) -> BoxFuture<'_, StoreResult<Vec<UserRecord>>> {
        self.run(self.inner.list_users())
    }

    fn insert_user(&self, user: &UserRecord) -> BoxFuture<'_, StoreResult<Written<()>>> {
        let user = user.clone();
        self.run(async move { self.inner.insert_user(&user).await })
    }

    fn insert_users(&self, users: &[UserRecord]) -> BoxFuture<'_, StoreResult<Written<()>>> {
        let users = users.to_vec();
        self.run(async move { self.inner.insert_users(&users).await })
    }

    fn update_user(
        &self,
        id: &str,
        change: UserChange,
    ) -> BoxFuture<'_, StoreResult<Written<Option<UserRecord>>>> {
        let id = id.to_string();
        self.run(async move { self.inner.update_user(&id, &change).await })
    }

    fn remove_user(&self, id: &str) -> BoxFuture<'_, StoreResult<Written<Option<UserRecord>>>> {
        let id = id.to_string();
        self.run(async move { self.inner.remove_user(&id).await })
    }

    fn insert_session(
        &self,
        session: &SessionRecord,
        token: &RefreshRecord,
    ) -> BoxFuture<'_, StoreResult<Written<()>>> {
        let (session, token) = (session.clone(), token.clone());
        self.run(async move { self.inner.insert_session(&session, Some(&token)).await })
    }

    fn insert_browser_session(
        &self,
        session: &SessionRecord,
    ) -> BoxFuture<'_, StoreResult<Written<()>>> {
        let session = session.clone();
        self.run(async move {
            if session.browser.is_none() {
                return Err(StoreError::Backend(
                    "insert_browser_session: not a browser session".into(),
                ));
            }
            self.inner.insert_session(&session, None).await
        })
    }

    fn touch_session(
        &self,
        user_id: &str,
        family: &str,
        last_seen: u64,
    ) -> BoxFuture<'_, StoreResult<Written<bool>>> {
        let (user_id, family) = (user_id.to_string(), family.to_string());
        self.run(async move { self.inner.touch_session(&user_id, &family, last_seen).await })
    }

    fn find_refresh(
        &self,
        token_hash: &[u8; 32],
    ) -> BoxFuture<'_, StoreResult<Option<RefreshRecord>>> {
        let token_hash = *token_hash;
        self.run(async move { self.inner.find_refresh(&token_hash).await })
    }

    fn take_refresh(
        &self,
        token_hash: &[u8; 32],
        now: u64,
        next_hash: &[u8; 32],
        next_expires_at: u64,
    ) -> BoxFuture<'_, StoreResult<Written<Taken>>> {
        let (token_hash, next_hash) = (*token_hash, *next_hash);
        self.run(async move {
            self.inner
                .take_refresh(&token_hash, now, &next_hash, next_expires_at)
                .await
        })
    }

    fn sessions_of(&self, user_id: &str) -> BoxFuture<'_, StoreResult<Vec<SessionRecord>>> {
        let user_id = user_id.to_string();
        self.run(async move { self.inner.sessions_of(&user_id).await })
    }

    fn end_session(
        &self,
        user_id: &str,
        family: &str,
        now: u64,
    ) -> BoxFuture<'_, StoreResult<Written<Option<SessionRecord>>>> {
        let (user_id, family) = (user_id.to_string(), family.to_string());
        self.run(async move { self.inner.end_session(&user_id, &family, now).await })
    }

    fn remove_sessions_of(&self, user_id: &str) -> BoxFuture<'_, StoreResult<Written<usize>>> {
        let user_id = user_id.to_string();
        self.run(async move { self.inner.remove_sessions_of(&user_id).await })
    }

    fn insert_revoked(&self, record: &RevokedRecord) -> BoxFuture<'_, StoreResult<Written<()>>> {
        let record = record.clone();
        self.run(async move { self.inner.insert_revoked(&record).await })
    }

    fn find_secret(&self) -> BoxFuture<'_, StoreResult<Option<Vec<u8>>>> {
        self.run(self.inner.find_secret())
    }

    fn insert_secret(&self, secret: &[u8]) -> BoxFuture<'_, StoreResult<Written<Vec<u8>>>> {
        let secret = zeroize::Zeroizing::new(secret.to_vec());
        self.run(async move { self.inner.insert_secret(&secret).await })
    }

    fn load(&self, now: u64, grace: u64) -> BoxFuture<'_, StoreResult<Loaded>> {
        self.run(self.inner.load(now, grace))
    }

    fn changes_since(&self, cursor: Seq, limit: usize) -> BoxFuture<'_, StoreResult<Feed>> {
        self.run(self.inner.changes_since(cursor, limit))
    }

    fn remove_expired(&self, now: u64, grace: u64) -> BoxFuture<'_, StoreResult<Purged>> {
        self.run(self.inner.remove_expired(now, grace))
    }

    /// A committed PostgreSQL transaction is durable already (WAL flushed at commit).
    fn export(&self) -> BoxFuture<'_, StoreResult<Snapshot>> {
        self.run(self.inner.export())
    }

    fn import(&self, snapshot: Snapshot) -> BoxFuture<'_, StoreResult<Written<()>>> {
        // Not `run`: a large import takes longer than one operation timeout; each of its
        // steps gets one instead (see `import`).
        Box::pin(async move { self.inner.import(&snapshot).await })
    }

    fn flush(&self) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async { Ok(()) })
    }

    fn change_signal(&self) -> Option<Arc<Notify>> {
        Some(self.inner.signal.clone())
    }

    fn is_remote(&self) -> bool {
        true
    }

    fn keeps_secret_fingerprint(&self) -> bool {
        true
    }

    fn keep_secret_fingerprint(&self, fingerprint: &str) -> BoxFuture<'_, StoreResult<String>> {
        let fingerprint = fingerprint.to_string();
        self.run(async move { self.inner.keep_fingerprint(&fingerprint).await })
    }

    fn find_secret_fingerprint(&self) -> BoxFuture<'_, StoreResult<Option<String>>> {
        self.run(self.inner.find_fingerprint())
    }

    fn forget_secret_fingerprint(&self) -> BoxFuture<'_, StoreResult<bool>> {
        self.run(self.inner.forget_fingerprint())
    }

    fn shares_login_counters(&self) -> bool {
        true
    }

    fn counters(
        &self,
        op: CounterOp,
        settings: crate::config::LoginSettings,
        now: super::counters::Millis,
    ) -> BoxFuture<'_, StoreResult<CounterOutcome>> {
        self.run(async move { self.inner.counters(&op, &settings, now).await })
    }
}
