//! What the PostgreSQL store owes beyond the shared contract (`store_contract.rs` runs that
//! on both backends): several stores (processes) on one database see each other's
//! changes, woken by LISTEN/NOTIFY; concurrent writers from several stores never make the
//! feed show a gap or a number before a smaller one; the LISTEN connection comes back
//! after the server terminates it; migrations are idempotent, safe when run at once, and
//! a schema newer than the binary is refused (also by `gatehouse migrate`, tested against
//! the real binary); a database that is down, killed or frozen makes verbs `Unavailable`
//! (never another error), and they work again once it is back; the connection string's
//! password appears in no error and no output. Real PostgreSQL throughout
//! (`common::postgres`).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::binary::{run_cli, write_config};
use common::postgres::PgCluster;
use gatehouse::store::postgres::{self, MigrateError, OpenFailure, PostgresOptions};
use gatehouse::store::{ChangeKind, Feed, PostgresStore, RevokedRecord, Seq, Store, StoreError};

const DEADLINE: Duration = Duration::from_secs(10);

async fn database() -> String {
    tokio::task::spawn_blocking(|| PgCluster::shared().create_database())
        .await
        .expect("create database")
}

async fn open(url: &str) -> PostgresStore {
    PostgresStore::open(url, PostgresOptions::default())
        .await
        .expect("open")
}

fn revoked(jti: &str) -> RevokedRecord {
    RevokedRecord {
        jti: jti.into(),
        expires_at: 4_000_000_000,
    }
}

/// Consumes wake-ups already delivered (the one sent when LISTEN starts, and any stored
/// permit), so the next one observed is caused by what the test does next.
async fn settle(signal: &tokio::sync::Notify) {
    // The first wake-up: LISTEN is up.
    tokio::time::timeout(DEADLINE, signal.notified())
        .await
        .expect("the LISTEN connection comes up and wakes followers");
    while tokio::time::timeout(Duration::from_millis(150), signal.notified())
        .await
        .is_ok()
    {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_database_see_each_others_changes_and_are_woken() {
    let url = database().await;
    let a = open(&url).await;
    let b = open(&url).await;
    let signal = b.change_signal().expect("PostgreSQL has a change signal");
    settle(&signal).await;
    let cursor = b.load(0, 0).await.expect("load").cursor;

    let woken = signal.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    let started = Instant::now();
    let seq = a
        .insert_revoked(&revoked("from-a"))
        .await
        .expect("revoke")
        .seq
        .expect("a change");
    tokio::time::timeout(DEADLINE, woken)
        .await
        .expect("b's change signal fires for a's write");
    println!("NOTIFY reached the other store in {:?}", started.elapsed());

    let Feed::Changes { changes, next } = b.changes_since(cursor, 100).await.expect("feed") else {
        panic!("trimmed");
    };
    assert_eq!(next, seq);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].kind, ChangeKind::Revoked(revoked("from-a")));
    // And the other way round, through the data too.
    b.insert_revoked(&revoked("from-b")).await.expect("revoke");
    let loaded = a.load(0, 0).await.expect("load");
    let jtis: Vec<&str> = loaded.revoked.iter().map(|r| r.jti.as_str()).collect();
    assert_eq!(jtis, ["from-a", "from-b"]);
    assert_eq!(loaded.cursor, seq + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_in_two_stores_never_show_a_gap_or_a_number_out_of_order() {
    const PER_STORE: usize = 150;
    let url = database().await;
    let stores: Vec<Arc<dyn Store>> = vec![Arc::new(open(&url).await), Arc::new(open(&url).await)];
    let reader = open(&url).await;
    let start = reader.load(0, 0).await.expect("load").cursor;

    let mut writers = Vec::new();
    for (s, store) in stores.iter().enumerate() {
        for i in 0..PER_STORE {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                let jti = format!("s{s}-{i}");
                let seq = store
                    .insert_revoked(&revoked(&jti))
                    .await
                    .expect("revoke")
                    .seq
                    .expect("a change");
                (seq, jti)
            }));
        }
    }
    // A reader polling throughout: each batch continues exactly where the last ended.
    let total = (2 * PER_STORE) as Seq;
    let mut cursor = start;
    let mut seen: Vec<(Seq, String)> = Vec::new();
    let mut polls = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while cursor < start + total {
        assert!(
            Instant::now() < deadline,
            "the reader got stuck at {cursor}"
        );
        let Feed::Changes { changes, next } =
            reader.changes_since(cursor, 1000).await.expect("feed")
        else {
            panic!("trimmed");
        };
        polls += 1;
        for (offset, change) in changes.iter().enumerate() {
            assert_eq!(
                change.seq,
                cursor + 1 + offset as Seq,
                "seen after {cursor}: {:?}",
                changes.iter().map(|c| c.seq).collect::<Vec<_>>()
            );
            match &change.kind {
                ChangeKind::Revoked(record) => seen.push((change.seq, record.jti.clone())),
                other => panic!("unexpected {other:?}"),
            }
        }
        cursor = next;
        tokio::task::yield_now().await;
    }
    let mut returned = Vec::new();
    for writer in writers {
        returned.push(writer.await.expect("join"));
    }
    returned.sort();
    assert_eq!(seen, returned, "each writer's number names its own change");
    assert!(
        polls > 1,
        "the reader polled while the writers wrote ({polls} polls)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listen_connection_comes_back_after_the_server_terminates_it() {
    let url = database().await;
    let writer = open(&url).await;
    let follower = open(&url).await;
    let signal = follower.change_signal().expect("signal");
    settle(&signal).await;
    let cluster = PgCluster::shared();
    let db = url.rsplit('/').next().expect("db name").to_string();
    let listeners = |cluster: &PgCluster| {
        cluster.sql(
            "postgres",
            &format!(
                "SELECT pid FROM pg_stat_activity WHERE datname = '{db}' \
                 AND query LIKE 'LISTEN%' ORDER BY pid"
            ),
        )
    };
    let before = listeners(cluster);
    assert_eq!(before.lines().count(), 2, "one LISTEN connection per store");
    let terminated = cluster.sql(
        "postgres",
        &format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = '{db}' AND query LIKE 'LISTEN%'"
        ),
    );
    assert_eq!(terminated, "2");

    // Propagation resumes: a write wakes the follower again (each try waits briefly, as
    // the reconnection takes a backoff step).
    let deadline = Instant::now() + DEADLINE;
    let mut n = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "no wake-up after the LISTEN connection was terminated"
        );
        let woken = signal.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        writer
            .insert_revoked(&revoked(&format!("after-{n}")))
            .await
            .expect("revoke");
        n += 1;
        if tokio::time::timeout(Duration::from_millis(500), woken)
            .await
            .is_ok()
        {
            break;
        }
    }
    // The writer's own LISTEN connection reconnects on its own schedule: poll for it.
    let deadline = Instant::now() + DEADLINE;
    let after = loop {
        let after = listeners(cluster);
        if after.lines().count() == 2 {
            break after;
        }
        assert!(
            Instant::now() < deadline,
            "both stores listen again: {after:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        before.lines().all(|pid| !after.lines().any(|p| p == pid)),
        "new connections: {before:?} -> {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_idempotent_and_safe_when_run_at_once() {
    let url = database().await;
    let runs = (0..4).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { postgres::migrate(&url, &PostgresOptions::default()).await })
    });
    let mut created = 0;
    for run in runs.collect::<Vec<_>>() {
        let migrated = run.await.expect("join").expect("migrate");
        assert_eq!(migrated.to, postgres::LATEST);
        if migrated.from == 0 {
            created += 1;
        } else {
            assert_eq!(migrated.from, postgres::LATEST);
        }
    }
    assert_eq!(created, 1, "exactly one of the four created the schema");
    let again = postgres::migrate(&url, &PostgresOptions::default())
        .await
        .expect("migrate again");
    assert_eq!((again.from, again.to), (postgres::LATEST, postgres::LATEST));
    let versions = PgCluster::shared().sql(
        &url,
        "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations",
    );
    let expected: Vec<String> = (1..=postgres::LATEST).map(|v| v.to_string()).collect();
    assert_eq!(versions, expected.join(","));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_newer_than_the_binary_is_refused() {
    let url = database().await;
    postgres::migrate(&url, &PostgresOptions::default())
        .await
        .expect("migrate");
    let newer = postgres::LATEST + 1;
    PgCluster::shared().sql(
        &url,
        &format!("INSERT INTO schema_migrations (version) VALUES ({newer})"),
    );
    match postgres::migrate(&url, &PostgresOptions::default()).await {
        Err(OpenFailure::Migrate(MigrateError::TooNew { found, known })) => {
            assert_eq!((found, known), (newer, postgres::LATEST));
        }
        other => panic!("expected TooNew, got {other:?}"),
    }
    let err = PostgresStore::open(&url, PostgresOptions::default())
        .await
        .expect_err("refused");
    assert_eq!(
        err.to_string(),
        format!(
            "the database schema is version {newer}, this gatehouse knows up to {}; upgrade gatehouse",
            postgres::LATEST
        )
    );
}

fn postgres_config(dir: &std::path::Path, url_line: &str) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            "[store]\nbackend = \"postgres\"\npath = \"{}\"\n{url_line}\n\n\
             [upstreams.default]\nurl = \"http://127.0.0.1:9\"\n",
            dir.join("data").display()
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gatehouse_migrate_creates_the_schema_and_says_so() {
    let url = database().await;
    let with_password = url.replacen("postgres@", "postgres:hunter2-secret@", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = postgres_config(dir.path(), &format!("url = \"{with_password}\""));
    let first = tokio::task::spawn_blocking({
        let config = config.clone();
        move || run_cli(&config, &["migrate"], "", &[])
    })
    .await
    .expect("join");
    assert_eq!(first.code, 0, "{first:?}");
    assert!(
        first.stdout.contains(&format!(
            "schema migrated from version 0 to {}",
            postgres::LATEST
        )),
        "{first:?}"
    );
    assert!(first.stdout.contains("postgres:***@127.0.0.1"), "{first:?}");
    let tables = PgCluster::shared().sql(
        &url,
        "SELECT count(*) FROM information_schema.tables WHERE table_name IN \
         ('users', 'sessions', 'refresh_tokens', 'revoked', 'meta', 'changes', 'feed_head')",
    );
    assert_eq!(tables, "7");
    // Again, with the URL from the environment (which wins over the file's).
    let second = tokio::task::spawn_blocking({
        let config = postgres_config(dir.path(), "url = \"postgres://nobody@127.0.0.1:9/none\"");
        let url = with_password.clone();
        move || run_cli(&config, &["migrate"], "", &[("GATEHOUSE_STORE_URL", &url)])
    })
    .await
    .expect("join");
    assert_eq!(second.code, 0, "{second:?}");
    assert!(second.stdout.contains("already"), "{second:?}");
    for output in [&first, &second] {
        assert!(!output.stdout.contains("hunter2"), "{output:?}");
        assert!(!output.stderr.contains("hunter2"), "{output:?}");
    }

    // A newer schema: refused, with the reason, exit 1.
    PgCluster::shared().sql(&url, "INSERT INTO schema_migrations (version) VALUES (999)");
    let refused = tokio::task::spawn_blocking(move || {
        run_cli(
            &config,
            &["migrate"],
            "",
            &[("GATEHOUSE_STORE_URL", &with_password)],
        )
    })
    .await
    .expect("join");
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("the database schema is version 999")
            && refused.stderr.contains("upgrade gatehouse"),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_appears_in_no_error() {
    // Nobody listens on this port: a connection failure, which is "unavailable".
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let options = PostgresOptions {
        connect_timeout: Duration::from_secs(2),
        ..PostgresOptions::default()
    };
    for url in [
        format!("postgres://gh:pa55-w0rd-xyz@127.0.0.1:{port}/gh?sslmode=disable"),
        format!("host=127.0.0.1 port={port} user=gh password='pa55-w0rd-xyz' dbname=gh"),
        format!("postgres://gh@127.0.0.1:{port}/gh?password=pa55-w0rd-xyz"),
    ] {
        let err = PostgresStore::open(&url, options.clone())
            .await
            .expect_err("nobody listens");
        assert!(matches!(err, OpenFailure::Unavailable(_)), "{err:?}");
        let text = format!("{err} {err:?}");
        assert!(!text.contains("pa55-w0rd-xyz"), "{text}");
        // A pool opened without migrating fails per verb, as unavailable.
        let store = PostgresStore::connect(&url, options.clone()).expect("connect lazily");
        let failed = store.find_user("u1").await.expect_err("down");
        assert!(matches!(failed, StoreError::Unavailable(_)), "{failed:?}");
        assert!(!format!("{failed} {failed:?} {store:?}").contains("pa55-w0rd-xyz"));
    }
    // A bad connection string is reported without quoting it.
    let err = PostgresStore::open(
        "postgres://gh:pa55-w0rd-xyz@127.0.0.1/gh?sslmode=sometimes",
        options.clone(),
    )
    .await
    .expect_err("bad sslmode");
    assert!(!err.to_string().contains("pa55-w0rd-xyz"), "{err}");
    assert!(err.to_string().contains("sslmode"), "{err}");
}

/// A verb that fails must fail as `Unavailable`, within the operation timeout.
async fn assert_unavailable(store: &PostgresStore, limit: Duration) {
    let started = Instant::now();
    let result = store.insert_revoked(&revoked("while-down")).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert!(
        started.elapsed() < limit + Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// The store works again: a write succeeds within the deadline.
async fn assert_recovers(store: &PostgresStore, jti: &str) -> Seq {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match store.insert_revoked(&revoked(jti)).await {
            Ok(written) => return written.seq.expect("a change"),
            Err(StoreError::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("not back: {err:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_down_killed_or_frozen_is_unavailable_and_the_store_recovers() {
    let cluster = tokio::task::spawn_blocking(PgCluster::start)
        .await
        .expect("cluster");
    let url = cluster.url_for("postgres");
    let op_timeout = Duration::from_secs(2);
    let options = PostgresOptions {
        op_timeout,
        connect_timeout: Duration::from_secs(1),
        wait_timeout: Duration::from_secs(1),
        ..PostgresOptions::default()
    };
    let store = PostgresStore::open(&url, options).await.expect("open");
    let first = assert_recovers(&store, "before").await;
    let cluster = Arc::new(cluster);

    // Stopped.
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.stop())
        .await
        .expect("stop");
    assert_unavailable(&store, op_timeout).await;
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.restart())
        .await
        .expect("restart");
    let second = assert_recovers(&store, "after-stop").await;
    assert_eq!(second, first + 1, "nothing lost, nothing skipped");

    // Killed (SIGKILL, no clean shutdown).
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.kill())
        .await
        .expect("kill");
    assert_unavailable(&store, op_timeout).await;
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.restart())
        .await
        .expect("restart");
    let third = assert_recovers(&store, "after-kill").await;
    assert_eq!(third, second + 1);

    // Frozen (SIGSTOP): connections stay open, nothing answers.
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.freeze())
        .await
        .expect("freeze");
    assert_unavailable(&store, op_timeout).await;
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.thaw())
        .await
        .expect("thaw");
    let fourth = assert_recovers(&store, "after-freeze").await;
    // The write that timed out while frozen may have gone through after the thaw: it was
    // reported unavailable (not acknowledged), so either is right, but none is lost.
    assert!(
        fourth == third + 1 || fourth == third + 2,
        "{third} -> {fourth}"
    );
    let loaded = store.load(0, 0).await.expect("load");
    for jti in ["before", "after-stop", "after-kill", "after-freeze"] {
        assert!(loaded.revoked.iter().any(|r| r.jti == jti), "{jti} lost");
    }
}

/// A CA and a server certificate for `localhost` it signed (PEM: CA, chain, key).
fn certificates() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key")).expect("ca");
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("cert");
    (ca.pem(), cert.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_is_honoured() {
    let (ca, cert, key) = certificates();
    let (other_ca, _, _) = certificates();
    let cluster = tokio::task::spawn_blocking(move || PgCluster::start_with_tls(&cert, &key))
        .await
        .expect("cluster");
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).expect("ca file");
    let other_ca_file = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca_file, other_ca).expect("other ca file");
    let port = cluster.port();
    let options = PostgresOptions {
        connect_timeout: Duration::from_secs(5),
        ..PostgresOptions::default()
    };
    // How many of this database's connections are encrypted, and how many there are.
    let encrypted = |db: &str| {
        cluster.sql(
            "postgres",
            &format!(
                "SELECT count(*) FILTER (WHERE s.ssl) || '/' || count(*) FROM pg_stat_activity a \
                 JOIN pg_stat_ssl s USING (pid) WHERE a.datname = '{db}'"
            ),
        )
    };
    let mut n = 0;
    let mut database = || {
        n += 1;
        let name = format!("tls_{n}");
        cluster.sql("postgres", &format!("CREATE DATABASE {name}"));
        name
    };
    let ca = ca_file.display().to_string();
    let other = other_ca_file.display().to_string();

    // Connections that must work, and whether they are encrypted.
    for (conn, tls) in [
        (format!("postgres://postgres@127.0.0.1:{port}/DB?sslmode=disable"), false),
        (format!("postgres://postgres@127.0.0.1:{port}/DB"), true),
        (format!("postgres://postgres@127.0.0.1:{port}/DB?sslmode=require"), true),
        (
            format!("host=127.0.0.1 port={port} user=postgres dbname=DB sslmode=verify-ca sslrootcert='{ca}'"),
            true,
        ),
        (
            format!("postgres://postgres@localhost:{port}/DB?sslmode=verify-full&sslrootcert={ca}"),
            true,
        ),
    ] {
        let db = database();
        let conn = conn.replace("DB", &db);
        let store = PostgresStore::open(&conn, options.clone())
            .await
            .unwrap_or_else(|err| panic!("{conn}: {err}"));
        store.insert_revoked(&revoked("j")).await.expect("write");
        let counts = encrypted(&db);
        let (secure, total) = counts.split_once('/').expect("counts");
        assert_ne!(total, "0", "{conn}");
        if tls {
            assert_eq!(secure, total, "{conn}: every connection encrypted");
        } else {
            assert_eq!(secure, "0", "{conn}: none encrypted");
        }
    }

    // Connections that must be refused: the wrong CA, or a name the certificate lacks.
    for conn in [
        format!(
            "postgres://postgres@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={other}"
        ),
        format!(
            "postgres://postgres@localhost:{port}/postgres?sslmode=verify-ca&sslrootcert={other}"
        ),
        format!(
            "postgres://postgres@127.0.0.1:{port}/postgres?sslmode=verify-full&sslrootcert={ca}"
        ),
    ] {
        let err = PostgresStore::open(&conn, options.clone())
            .await
            .expect_err("the certificate is not trusted for this");
        assert!(
            err.to_string().contains("certificate") || err.to_string().contains("TLS"),
            "{conn}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_presented_to_several_stores_at_once_rotates_exactly_once() {
    use gatehouse::store::{RefreshRecord, SessionRecord, Taken, UserRecord};
    let url = database().await;
    let stores: Vec<Arc<dyn Store>> = vec![
        Arc::new(open(&url).await),
        Arc::new(open(&url).await),
        Arc::new(open(&url).await),
    ];
    stores[0]
        .insert_user(&UserRecord {
            id: "u1".into(),
            username: "alice".into(),
            canonical: "alice".into(),
            password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
            roles: vec![],
            enabled: true,
            created: 1,
            password_changed_at: 1,
            generation: 0,
            kind: gatehouse::store::PrincipalKind::User,
        })
        .await
        .expect("user");
    stores[1]
        .insert_session(
            &SessionRecord {
                family: "f1".into(),
                user_id: "u1".into(),
                created: 1,
                generation: 0,
                expires_at: 1000,
                ended_at: None,
                browser: None,
            },
            &RefreshRecord {
                token_hash: [1; 32],
                family: "f1".into(),
                user_id: "u1".into(),
                expires_at: 1000,
                spent: false,
            },
        )
        .await
        .expect("session");
    let attempts = (0..30u8).map(|i| {
        let store = stores[usize::from(i) % stores.len()].clone();
        tokio::spawn(async move {
            store
                .take_refresh(&[1; 32], 10, &[100 + i; 32], 2000)
                .await
                .expect("take")
                .value
        })
    });
    let mut rotated = 0;
    let mut reused = 0;
    for attempt in attempts.collect::<Vec<_>>() {
        match attempt.await.expect("join") {
            Taken::Rotated(_) => rotated += 1,
            Taken::Reused(_) => reused += 1,
            Taken::Invalid => {}
        }
    }
    assert_eq!(rotated, 1, "exactly one presentation rotates");
    assert!(reused >= 1, "a replay after the rotation ends the family");
    let sessions = stores[2].sessions_of("u1").await.expect("sessions");
    assert!(sessions[0].ended_at.is_some());
}

/// A snapshot of `users` users and `sessions` token sessions (one refresh token each),
/// spread over the users; the records are small, only their number matters.
fn big_snapshot(users: usize, sessions: usize) -> gatehouse::store::Snapshot {
    use gatehouse::store::{RefreshRecord, SessionRecord, Snapshot, UserRecord};
    let users: Vec<UserRecord> = (0..users)
        .map(|i| UserRecord {
            id: format!("u{i:06}"),
            username: format!("User{i}"),
            canonical: format!("user{i}"),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
                .into(),
            roles: vec!["reader".into()],
            enabled: i % 7 != 0,
            created: 1_700_000_000,
            password_changed_at: 1_700_000_000,
            generation: 1,
            kind: Default::default(),
        })
        .collect();
    let mut session_list = Vec::with_capacity(sessions);
    let mut refresh_tokens = Vec::with_capacity(sessions);
    for i in 0..sessions {
        let user_id = users[i % users.len()].id.clone();
        let family = format!("f{i:07}");
        let mut token_hash = [0u8; 32];
        token_hash[..8].copy_from_slice(&(i as u64).to_be_bytes());
        refresh_tokens.push(RefreshRecord {
            token_hash,
            family: family.clone(),
            user_id: user_id.clone(),
            expires_at: 4_000_000_000,
            spent: false,
        });
        session_list.push(SessionRecord {
            family,
            user_id,
            created: 1_700_000_000,
            generation: 1,
            expires_at: 4_000_000_000,
            ended_at: (i % 20 == 0).then_some(1_700_000_100),
            browser: None,
        });
    }
    Snapshot {
        users,
        sessions: session_list,
        refresh_tokens,
        revoked: vec![revoked("j-imported")],
        secret: Some(zeroize::Zeroizing::new(b"imported-secret".to_vec())),
    }
}

/// The snapshot's lists in one order, to compare an export with what was imported.
fn sorted(mut snapshot: gatehouse::store::Snapshot) -> gatehouse::store::Snapshot {
    snapshot.users.sort_by(|a, b| a.id.cmp(&b.id));
    snapshot
        .sessions
        .sort_by(|a, b| (&a.user_id, &a.family).cmp(&(&b.user_id, &b.family)));
    snapshot
        .refresh_tokens
        .sort_by_key(|token| token.token_hash);
    snapshot.revoked.sort_by(|a, b| a.jti.cmp(&b.jti));
    snapshot
}

/// `store import` of a store far larger than one operation timeout allows row by row
/// (issue #17: a million sessions failed with "the database did not answer within
/// 10s"): the timeout bounds each chunk, not the whole import, so it completes and
/// exports the same. A bad row in the last chunk, after several chunks went in, still
/// imports nothing: one transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_import_completes_in_chunks_and_a_late_bad_row_imports_nothing() {
    let url = database().await;
    let options = PostgresOptions {
        op_timeout: Duration::from_secs(3),
        ..PostgresOptions::default()
    };
    let store = PostgresStore::open(&url, options).await.expect("open");
    let snapshot = big_snapshot(2_000, 100_000);

    // A duplicate refresh token hash as the very last row: the primary key refuses it
    // only after five chunks of sessions and tokens are in.
    let mut bad = snapshot.clone();
    let mut duplicate = bad.refresh_tokens[0].clone();
    duplicate.family = bad.sessions[1].family.clone();
    bad.refresh_tokens.push(duplicate);
    let err = store
        .import(bad)
        .await
        .expect_err("a duplicate key fails the import");
    assert!(
        matches!(err, StoreError::Backend(_)),
        "an SQL error, not an outage: {err:?}"
    );
    assert!(
        store.export().await.expect("export").is_empty(),
        "nothing of the failed import is left"
    );
    assert_eq!(store.find_secret().await.expect("secret"), None);

    let written = store
        .import(snapshot.clone())
        .await
        .expect("the large import completes");
    assert!(written.seq.is_some());
    let exported = store.export().await.expect("export");
    assert_eq!(exported.sessions.len(), 100_000);
    assert_eq!(sorted(exported), sorted(snapshot));
    assert!(
        store
            .find_user_by_name("user1999")
            .await
            .expect("find")
            .is_some_and(|user| user.id == "u001999" && user.roles == ["reader"]),
        "an imported user is found by name"
    );
}
