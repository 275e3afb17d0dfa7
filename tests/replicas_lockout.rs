//! Replicas on one PostgreSQL database (SPEC §4 "Login lockout", §8): real `gatehouse
//! serve` processes on a throwaway cluster (`common::postgres`).
//!
//! - Login failures counted on any replica count toward the same lockout (429 on every
//!   replica), and `gatehouse user unlock` — writing to the database, no running gateway
//!   or socket needed — ends it on every replica.
//! - The registration limit per address is shared.
//! - The signing secret: a replica whose configured secret differs from the one the
//!   others use refuses to start (exit 1, the fingerprint mismatch said); one with the same
//!   secret serves; `gatehouse migrate --reset-secret-fingerprint` lets a deliberately
//!   rotated secret in; with no secret configured, replicas share the generated one (a
//!   token from one verifies on the other).

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::accounts::PASSWORD;
use common::binary::{binary_config, run_cli, write_config, Gatehouse};
use common::postgres::PgCluster;
use common::DEADLINE;

const SECRET_A: &str = "replica-secret-aaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SECRET_B: &str = "replica-secret-bbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// A fresh database on the binary's shared cluster.
async fn database() -> String {
    tokio::task::spawn_blocking(|| PgCluster::shared().create_database())
        .await
        .expect("create database")
}

/// A replica's config in its own directory (its own `store.path`, so no two processes
/// share an admin socket): the PostgreSQL store (the URL comes from
/// `GATEHOUSE_STORE_URL`), plus `extra`.
fn replica_config(dir: &Path, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    let text = binary_config(dir, extra).replacen(
        "[store]\n",
        "[store]\nbackend = \"postgres\"\nmax_stale = \"30s\"\n",
        1,
    );
    write_config(dir, &text)
}

/// `gatehouse serve` on `url` with `envs`, ready.
async fn replica(dir: &Path, config: &Path, url: &str, envs: &[(&str, &str)]) -> Gatehouse {
    let mut all = vec![("GATEHOUSE_STORE_URL", url)];
    all.extend_from_slice(envs);
    let mut replica = Gatehouse::start(dir, config, &all).await;
    replica.wait_ready().await;
    replica
}

/// `gatehouse serve` that must refuse to start: its exit code and log.
async fn refused_start(dir: &Path, config: &Path, url: &str, secret: &str) -> (i32, String) {
    let log_path = dir.join("refused.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut child = Gatehouse::command(config)
        .env("GATEHOUSE_STORE_URL", url)
        .env("GATEHOUSE_SECRET", secret)
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "a replica with another secret kept running; log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    (
        status.code().unwrap_or(-1),
        std::fs::read_to_string(&log_path).unwrap_or_default(),
    )
}

async fn login(replica: &Gatehouse, username: &str, password: &str) -> common::Response {
    replica
        .post_json(
            "/auth/login",
            &serde_json::json!({ "username": username, "password": password }),
            &[],
        )
        .await
}

/// `GET /auth/me` on `replica` until it answers 200 (the login session made on another
/// replica reaches this one through the change feed within a second, SPEC §8), or the
/// deadline: the last status.
async fn me_eventually(replica: &Gatehouse, token: &str) -> common::Response {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let response = replica.me(token).await;
        if response.status == 200 || Instant::now() > deadline {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `gatehouse_lockouts_total{kind="username"}` on one replica.
async fn username_lockouts(replica: &Gatehouse) -> u64 {
    let (_, _, body) = common::get(replica.ops_addr, "/metrics", &[])
        .await
        .expect("metrics");
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|line| line.strip_prefix("gatehouse_lockouts_total{kind=\"username\"} "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_on_two_replicas_add_up_to_one_lockout_and_the_cli_unlocks_it_for_both() {
    let url = database().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let login_rules = "[login]\nmax_failures = 3\nlockout = \"10m\"\n";
    let config_a = replica_config(&dir.path().join("a"), login_rules);
    let config_b = replica_config(&dir.path().join("b"), login_rules);
    // The operator's CLI: its own directory, no gateway there, only the database.
    let config_cli = replica_config(&dir.path().join("cli"), login_rules);
    let env = [("GATEHOUSE_STORE_URL", url.as_str())];
    let added = run_cli(
        &config_cli,
        &["user", "add", "alice", "--password-stdin"],
        &format!("{PASSWORD}\n"),
        &env,
    );
    assert_eq!(added.code, 0, "{added:?}");
    let secret = [("GATEHOUSE_SECRET", SECRET_A)];
    let a = replica(&dir.path().join("a"), &config_a, &url, &secret).await;
    let b = replica(&dir.path().join("b"), &config_b, &url, &secret).await;

    // Two failures on A, one on B: three in all, the limit.
    for (replica, name) in [(&a, "alice"), (&b, "ALICE"), (&a, "Alice")] {
        let response = login(replica, name, "wrong password").await;
        assert_eq!(response.status, 401, "{:?}", response.body);
    }
    // The next attempt is refused on either replica, even with the right password.
    let refused_b = login(&b, "alice", PASSWORD).await;
    assert_eq!(
        refused_b.status,
        429,
        "B: {}",
        String::from_utf8_lossy(&refused_b.body)
    );
    let retry_after: u64 = refused_b
        .header("retry-after")
        .and_then(|value| value.parse().ok())
        .expect("Retry-After");
    assert!((590..=600).contains(&retry_after), "{retry_after}");
    let refused_a = login(&a, "alice", PASSWORD).await;
    assert_eq!(
        refused_a.status,
        429,
        "A: {}",
        String::from_utf8_lossy(&refused_a.body)
    );
    // The lockout started once, on B, and B logged and counted it.
    assert!(b.wait_for_log("login lockout started").await, "{}", b.log());
    assert!(!a.log().contains("login lockout started"), "{}", a.log());
    assert_eq!(
        (username_lockouts(&a).await, username_lockouts(&b).await),
        (0, 1)
    );

    // The CLI ends it in the database, with no gateway on its store path.
    let unlocked = tokio::task::spawn_blocking(move || {
        run_cli(
            &config_cli,
            &["user", "unlock", "alice"],
            "",
            &[("GATEHOUSE_STORE_URL", &url)],
        )
    })
    .await
    .expect("join");
    assert_eq!(unlocked.code, 0, "{unlocked:?}");
    assert!(
        unlocked
            .stderr
            .contains("login failures and lockout of alice cleared"),
        "{unlocked:?}"
    );
    a.login_ok("alice", PASSWORD).await;
    b.login_ok("alice", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registration_limit_per_address_is_shared_by_the_replicas() {
    let url = database().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = "[login]\nmax_failures_per_address = 2\n\n[registration]\nenabled = true\n";
    let config_a = replica_config(&dir.path().join("a"), rules);
    let config_b = replica_config(&dir.path().join("b"), rules);
    let secret = [("GATEHOUSE_SECRET", SECRET_A)];
    let a = replica(&dir.path().join("a"), &config_a, &url, &secret).await;
    let b = replica(&dir.path().join("b"), &config_b, &url, &secret).await;
    let register = |replica: &Gatehouse, name: &str| {
        let body = serde_json::json!({ "username": name, "password": PASSWORD });
        let replica_addr = replica.addr;
        async move {
            common::request(
                replica_addr,
                "POST",
                "/auth/register",
                &["Content-Type: application/json"],
                body.to_string().as_bytes(),
            )
            .await
            .status
        }
    };
    assert_eq!(register(&a, "reg1").await, 201);
    assert_eq!(register(&b, "reg2").await, 201);
    assert_eq!(
        register(&a, "reg3").await,
        429,
        "the third from this address, on A"
    );
    assert_eq!(register(&b, "reg4").await, 429, "and on B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_another_secret_refuses_to_start_until_the_fingerprint_is_reset() {
    let url = database().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config_a = replica_config(&dir.path().join("a"), "");
    let config_b = replica_config(&dir.path().join("b"), "");
    let config_c = replica_config(&dir.path().join("c"), "");
    let mut a = replica(
        &dir.path().join("a"),
        &config_a,
        &url,
        &[("GATEHOUSE_SECRET", SECRET_A)],
    )
    .await;

    let (code, log) = refused_start(&dir.path().join("b"), &config_b, &url, SECRET_B).await;
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains(
            "signing secret differs from the one the other replicas use (fingerprint mismatch)"
        ),
        "{log}"
    );
    assert!(!log.contains(SECRET_A) && !log.contains(SECRET_B), "{log}");

    // The same secret: it serves, and the replicas accept each other's tokens.
    let mut c = replica(
        &dir.path().join("c"),
        &config_c,
        &url,
        &[("GATEHOUSE_SECRET", SECRET_A)],
    )
    .await;
    let added = run_cli(
        &config_c,
        &["user", "add", "bob", "--password-stdin"],
        &format!("{PASSWORD}\n"),
        &[("GATEHOUSE_STORE_URL", url.as_str())],
    );
    assert_eq!(added.code, 0, "{added:?}");
    let token = a.login_ok("bob", PASSWORD).await["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_eq!(me_eventually(&c, &token).await.status, 200);

    // A deliberate rotation: every replica stopped, the fingerprint forgotten, then the
    // replicas start with the new secret.
    assert_eq!(a.terminate().await, Some(0));
    assert_eq!(c.terminate().await, Some(0));
    let reset = run_cli(
        &config_b,
        &["migrate", "--reset-secret-fingerprint"],
        "",
        &[("GATEHOUSE_STORE_URL", url.as_str())],
    );
    assert_eq!(reset.code, 0, "{reset:?}");
    assert!(reset.stdout.contains("fingerprint"), "{reset:?}");
    let b = replica(
        &dir.path().join("b"),
        &config_b,
        &url,
        &[("GATEHOUSE_SECRET", SECRET_B)],
    )
    .await;
    let old = b.me(&token).await;
    assert_eq!(old.status, 401, "a token of the old secret");
    assert!(
        !String::from_utf8_lossy(&old.body).contains("revoked"),
        "refused for its signature: {}",
        String::from_utf8_lossy(&old.body)
    );
    let (code, log) = refused_start(&dir.path().join("a"), &config_a, &url, SECRET_A).await;
    assert_eq!(code, 1, "the old secret is the odd one out now: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_without_a_configured_secret_share_the_generated_one() {
    let url = database().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config_a = replica_config(&dir.path().join("a"), "");
    let config_b = replica_config(&dir.path().join("b"), "");
    let a = replica(&dir.path().join("a"), &config_a, &url, &[]).await;
    let b = replica(&dir.path().join("b"), &config_b, &url, &[]).await;
    let added = run_cli(
        &config_a,
        &["user", "add", "carol", "--password-stdin"],
        &format!("{PASSWORD}\n"),
        &[("GATEHOUSE_STORE_URL", url.as_str())],
    );
    assert_eq!(added.code, 0, "{added:?}");
    let token = a.login_ok("carol", PASSWORD).await["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let me = me_eventually(&b, &token).await;
    assert_eq!(me.status, 200, "{}", String::from_utf8_lossy(&me.body));
    let token_b = b.login_ok("carol", PASSWORD).await["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_eq!(me_eventually(&a, &token_b).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_a_login_is_refused_with_503_and_counts_nothing() {
    let cluster = tokio::task::spawn_blocking(PgCluster::start)
        .await
        .expect("cluster");
    let url = cluster.create_database();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = replica_config(dir.path(), "[login]\nmax_failures = 1\n");
    let added = run_cli(
        &config,
        &["user", "add", "dora", "--password-stdin"],
        &format!("{PASSWORD}\n"),
        &[("GATEHOUSE_STORE_URL", url.as_str())],
    );
    assert_eq!(added.code, 0, "{added:?}");
    let a = replica(dir.path(), &config, &url, &[("GATEHOUSE_SECRET", SECRET_A)]).await;
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.stop();
        cluster
    })
    .await
    .expect("stop");
    // The counters cannot be consulted: neither the right password nor a wrong one gets
    // through (never admitted uncounted), and neither is a 401.
    for password in [PASSWORD, "wrong password", "another wrong one"] {
        let response = login(&a, "dora", password).await;
        assert_eq!(
            response.status,
            503,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        assert!(response.header("retry-after").is_some());
        assert_eq!(response.json()["error"], "unavailable");
    }
    // (Kept until the end: dropping the cluster stops it.)
    let _cluster = tokio::task::spawn_blocking(move || {
        cluster.restart();
        cluster
    })
    .await
    .expect("restart");
    // Back: the refused attempts counted nothing (the limit is one failure).
    let deadline = Instant::now() + DEADLINE;
    loop {
        let response = login(&a, "dora", PASSWORD).await;
        if response.status == 200 {
            break;
        }
        assert_eq!(
            response.status,
            503,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        assert!(
            Instant::now() < deadline,
            "the database did not come back: {}\nlog:\n{}",
            String::from_utf8_lossy(&response.body),
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
