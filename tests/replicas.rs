//! Issue #12 end to end: several `gatehouse serve` processes (the real binary) on one real
//! PostgreSQL act as one gateway (SPEC §8), in front of a real upstream.
//!
//! - A change acknowledged by the CLI (which writes to the database itself) or by any
//!   replica (logout, password change) is enforced by the others within 1 s; the time
//!   from the acknowledgement to the first request each replica refuses (or allows) is
//!   measured and printed.
//! - 30 concurrent presentations of one refresh token over three replicas: exactly one
//!   rotates; the rest are reuse, which ends the session.
//! - Outage with a real database, killed (SIGKILL) or frozen (SIGSTOP) mid-test: served
//!   from memory until `max_stale`, then 503 `unavailable`; writes 503 with `Retry-After`
//!   (never 401) and nothing acknowledged is lost; `/readyz` 503, `/healthz` 200; ready
//!   again by itself once the database is back. A replica started while the database is
//!   down waits, not ready, and starts by itself.
//! - The LISTEN connection terminated by the server: propagation goes on.
//! - `store export` / `store import` between sled and PostgreSQL, both ways: passwords,
//!   refresh tokens, access tokens and the generated secret carry over.
//! - The shipped `deploy/compose/nginx.conf` (a real nginx) in front of two replicas:
//!   requests spread over both and all succeed; with one replica gone nginx keeps
//!   answering.
//!
//! Clusters: tests that kill, freeze or stop the database start their own; the others
//! share one (a database each).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::accounts::PASSWORD;
use common::binary::{binary_config, run_cli, write_config, Gatehouse, Output};
use common::postgres::PgCluster;
use common::{bearer, config_text, request, status_of, EchoUpstream, Response, SECRET};

/// How long a change may take to reach every replica (SPEC §8).
const PROPAGATION: Duration = Duration::from_secs(1);

/// How long the tests poll for something that should happen within [`PROPAGATION`], so a
/// late change fails on the assertion with its measured time rather than on a timeout.
const POLL_FOR: Duration = Duration::from_secs(5);

/// `store.max_stale` in the outage tests.
const MAX_STALE: Duration = Duration::from_secs(2);

const ROUTES: &str = r#"
[login]
max_failures = 10000
max_failures_per_address = 100000

[[routes]]
path = "/pub/**"
access = "public"

[[routes]]
path = "/admin/**"
roles = ["admin"]

[[routes]]
path = "/api/**"
access = "authenticated"
"#;

/// Adds `keys` to the `[store]` table of a config text.
fn with_store(text: &str, keys: &str) -> String {
    assert!(text.contains("[store]\n"), "a [store] table");
    text.replacen("[store]\n", &format!("[store]\n{keys}\n"), 1)
}

fn postgres_keys(url: &str, extra: &str) -> String {
    format!("backend = \"postgres\"\nurl = \"{url}\"\n{extra}")
}

/// A config in `dir` (created) for a replica on database `url` in front of `upstream`:
/// the harness secret in `dir/secret`, `dir/data` for its admin socket, a JSON log, the
/// test routes, `store_extra` added to `[store]`.
fn replica_config(dir: &Path, upstream: SocketAddr, url: &str, store_extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("replica dir");
    std::fs::write(dir.join("secret"), format!("{SECRET}\n")).expect("secret");
    let text = config_text(
        &upstream.to_string(),
        dir,
        "shutdown_grace = \"1s\"",
        &format!("[log]\nformat = \"json\"\n{ROUTES}"),
    );
    write_config(dir, &with_store(&text, &postgres_keys(url, store_extra)))
}

/// N replicas on one database, a real upstream, and a config for the CLI whose
/// `store.path` no gateway serves (so the CLI writes to the database itself).
struct Fleet {
    dir: tempfile::TempDir,
    upstream: EchoUpstream,
    url: String,
    store_extra: String,
    cli: PathBuf,
    replicas: Vec<Gatehouse>,
}

impl Fleet {
    async fn start(url: &str, count: usize, store_extra: &str) -> Fleet {
        let upstream = EchoUpstream::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let cli = replica_config(&dir.path().join("cli"), upstream.addr, url, store_extra);
        let mut fleet = Fleet {
            dir,
            upstream,
            url: url.to_string(),
            store_extra: store_extra.to_string(),
            cli,
            replicas: Vec::new(),
        };
        for _ in 0..count {
            fleet.add_replica().await;
        }
        for replica in &mut fleet.replicas {
            replica.wait_ready().await;
        }
        fleet
    }

    /// Starts one more replica (not waiting for readiness).
    async fn add_replica(&mut self) {
        let dir = self.dir.path().join(format!("r{}", self.replicas.len()));
        let config = replica_config(&dir, self.upstream.addr, &self.url, &self.store_extra);
        let replica = Gatehouse::start(&dir, &config, &[]).await;
        self.replicas.push(replica);
    }

    /// `gatehouse user …` through the CLI config (straight to the database); must succeed.
    async fn cli(&self, args: &[&str], stdin: &str) -> Output {
        let config = self.cli.clone();
        let owned: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let stdin = stdin.to_string();
        let out = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = owned.iter().map(String::as_str).collect();
            run_cli(&config, &args, &stdin, &[])
        })
        .await
        .expect("join");
        assert_eq!(out.code, 0, "gatehouse {args:?}: {out:?}");
        out
    }

    async fn add_user(&self, username: &str) {
        self.cli(
            &["user", "add", username, "--password-stdin"],
            &format!("{PASSWORD}\n"),
        )
        .await;
    }

    fn logs(&self) -> String {
        self.replicas
            .iter()
            .enumerate()
            .map(|(i, r)| format!("--- replica {i}:\n{}\n", r.log()))
            .collect()
    }
}

/// A database of its own on the cluster every test of this binary shares.
async fn shared_database() -> String {
    tokio::task::spawn_blocking(|| PgCluster::shared().create_database())
        .await
        .expect("create database")
}

/// A cluster of its own (the test kills, freezes or stops it) and a database on it.
async fn own_cluster() -> (std::sync::Arc<PgCluster>, String) {
    tokio::task::spawn_blocking(|| {
        let cluster = std::sync::Arc::new(PgCluster::start());
        let url = cluster.create_database();
        (cluster, url)
    })
    .await
    .expect("start cluster")
}

async fn blocking(cluster: &std::sync::Arc<PgCluster>, action: fn(&PgCluster)) {
    let cluster = cluster.clone();
    tokio::task::spawn_blocking(move || action(&cluster))
        .await
        .expect("join");
}

async fn post_json(
    addr: SocketAddr,
    path: &str,
    body: serde_json::Value,
    auth: &[&str],
) -> Response {
    let mut headers = vec!["Content-Type: application/json"];
    headers.extend_from_slice(auth);
    request(addr, "POST", path, &headers, body.to_string().as_bytes()).await
}

async fn login(addr: SocketAddr, username: &str, password: &str) -> Response {
    post_json(
        addr,
        "/auth/login",
        serde_json::json!({ "username": username, "password": password }),
        &[],
    )
    .await
}

/// Logs in on `addr`; `(access token, refresh token)`.
async fn login_ok(addr: SocketAddr, username: &str) -> (String, String) {
    let response = login(addr, username, PASSWORD).await;
    response.assert_status(200);
    tokens(&response)
}

fn tokens(response: &Response) -> (String, String) {
    let body = response.json();
    (
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string(),
        body["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_string(),
    )
}

async fn refresh(addr: SocketAddr, refresh_token: &str) -> Response {
    post_json(
        addr,
        "/auth/refresh",
        serde_json::json!({ "refresh_token": refresh_token }),
        &[],
    )
    .await
}

/// `GET path` with a bearer token; the status.
async fn get_status(addr: SocketAddr, path: &str, token: &str) -> u16 {
    request(addr, "GET", path, &[&bearer(token)], b"")
        .await
        .status
}

/// Polls `probe` on every replica in `on` at once until it is true on each; returns each
/// replica's time from `since` to the first true answer. Panics after [`POLL_FOR`].
async fn until_each<F, Fut>(
    fleet: &Fleet,
    on: &[usize],
    since: Instant,
    what: &str,
    probe: F,
) -> Vec<Duration>
where
    F: Fn(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let polls = on.iter().map(|&i| {
        let addr = fleet.replicas[i].addr;
        let probe = &probe;
        async move {
            loop {
                if probe(addr).await {
                    return Some(since.elapsed());
                }
                if since.elapsed() > POLL_FOR {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    let times = futures_util::future::join_all(polls).await;
    let mut out = Vec::new();
    for (&i, time) in on.iter().zip(times) {
        let time = time.unwrap_or_else(|| {
            panic!(
                "{what}: replica {i} did not apply it within {POLL_FOR:?}\n{}",
                fleet.logs()
            )
        });
        println!("propagation: {what}: replica {i} after {time:?}");
        out.push(time);
    }
    out
}

/// [`until_each`], asserting each replica took less than [`PROPAGATION`].
async fn within_a_second<F, Fut>(fleet: &Fleet, on: &[usize], since: Instant, what: &str, probe: F)
where
    F: Fn(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for (&i, time) in on
        .iter()
        .zip(until_each(fleet, on, since, what, probe).await)
    {
        assert!(
            time < PROPAGATION,
            "{what}: replica {i} applied it after {time:?} (SPEC §8: within 1 s)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_one_database_act_as_one_gateway() {
    let url = shared_database().await;
    let fleet = Fleet::start(&url, 3, "").await;
    let all = [0, 1, 2];
    let addr = |i: usize| fleet.replicas[i].addr;

    // A user added with the CLI (no gateway involved) logs in on every replica.
    fleet.add_user("ann").await;
    let acked = Instant::now();
    within_a_second(&fleet, &all, acked, "user add (CLI)", |addr| async move {
        login(addr, "ann", PASSWORD).await.status == 200
    })
    .await;
    for user in ["bob", "cy", "dee"] {
        fleet.add_user(user).await;
    }
    for user in ["bob", "cy", "dee"] {
        until_each(
            &fleet,
            &all,
            Instant::now(),
            "user add",
            |addr| async move { login(addr, user, PASSWORD).await.status == 200 },
        )
        .await;
    }

    // `user disable` with the CLI: ann's token stops working everywhere.
    let (ann, _) = login_ok(addr(0), "ann").await;
    for i in all {
        assert_eq!(
            get_status(addr(i), "/api/x", &ann).await,
            200,
            "replica {i}"
        );
    }
    fleet.cli(&["user", "disable", "ann"], "").await;
    let acked = Instant::now();
    let token = ann.as_str();
    within_a_second(
        &fleet,
        &all,
        acked,
        "user disable (CLI)",
        |addr| async move { get_status(addr, "/api/x", token).await == 401 },
    )
    .await;
    for i in all {
        assert_eq!(
            login(addr(i), "ann", PASSWORD).await.error_code(),
            "account_disabled",
            "replica {i}"
        );
    }

    // A logout on replica 0 ends the session on 1 and 2.
    let (bob, bob_refresh) = login_ok(addr(0), "bob").await;
    for i in all {
        assert_eq!(
            get_status(addr(i), "/api/x", &bob).await,
            200,
            "replica {i}"
        );
    }
    let response = post_json(
        addr(0),
        "/auth/logout",
        serde_json::json!({ "refresh_token": bob_refresh }),
        &[&bearer(&bob)],
    )
    .await;
    let acked = Instant::now();
    response.assert_status(204);
    let token = bob.as_str();
    within_a_second(
        &fleet,
        &[1, 2],
        acked,
        "logout on replica 0",
        |addr| async move { get_status(addr, "/api/x", token).await == 401 },
    )
    .await;
    let response = refresh(addr(1), &bob_refresh).await;
    response.assert_status(401);
    assert_eq!(response.error_code(), "invalid_grant");

    // A password change on replica 1: tokens issued before stop working on 0 and 2; the
    // new session works there.
    let (cy_old, _) = login_ok(addr(0), "cy").await;
    for i in all {
        assert_eq!(
            get_status(addr(i), "/api/x", &cy_old).await,
            200,
            "replica {i}"
        );
    }
    let response = post_json(
        addr(1),
        "/auth/password",
        serde_json::json!({ "current_password": PASSWORD, "new_password": "a brand new passphrase" }),
        &[&bearer(&cy_old)],
    )
    .await;
    let acked = Instant::now();
    response.assert_status(200);
    let (cy_new, _) = tokens(&response);
    let (old, new) = (cy_old.as_str(), cy_new.as_str());
    within_a_second(
        &fleet,
        &[0, 2],
        acked,
        "password change on replica 1",
        |addr| async move {
            get_status(addr, "/api/x", old).await == 401
                && get_status(addr, "/api/x", new).await == 200
        },
    )
    .await;
    for i in all {
        assert_eq!(
            login(addr(i), "cy", PASSWORD).await.status,
            401,
            "replica {i}: old password"
        );
    }
    login(addr(2), "cy", "a brand new passphrase")
        .await
        .assert_status(200);

    // `user roles` with the CLI: the admin route opens on every replica.
    let (dee, _) = login_ok(addr(2), "dee").await;
    for i in all {
        assert_eq!(
            get_status(addr(i), "/admin/x", &dee).await,
            403,
            "replica {i}"
        );
    }
    fleet.cli(&["user", "roles", "dee", "admin"], "").await;
    let acked = Instant::now();
    let token = dee.as_str();
    within_a_second(&fleet, &all, acked, "user roles (CLI)", |addr| async move {
        get_status(addr, "/admin/x", token).await == 200
    })
    .await;
    let forwarded = fleet.upstream.received();
    assert!(
        forwarded
            .iter()
            .any(|r| r.header("x-auth-roles") == Some("admin")),
        "the upstream saw the new role"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refresh_token_sent_thirty_times_over_three_replicas_rotates_exactly_once() {
    const TRIES: usize = 30;
    let url = shared_database().await;
    let fleet = Fleet::start(&url, 3, "").await;
    fleet.add_user("eve").await;
    until_each(
        &fleet,
        &[0],
        Instant::now(),
        "user add",
        |addr| async move { login(addr, "eve", PASSWORD).await.status == 200 },
    )
    .await;
    let (_, refresh_token) = login_ok(fleet.replicas[0].addr, "eve").await;

    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(TRIES));
    let tries = (0..TRIES).map(|n| {
        let addr = fleet.replicas[n % 3].addr;
        let barrier = barrier.clone();
        let token = refresh_token.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            refresh(addr, &token).await
        })
    });
    let mut winners = Vec::new();
    for (n, answer) in futures_util::future::join_all(tries)
        .await
        .into_iter()
        .enumerate()
    {
        let response = answer.expect("join");
        match response.status {
            200 => winners.push((n % 3, tokens(&response))),
            401 => assert_eq!(response.error_code(), "invalid_grant", "try {n}"),
            other => panic!(
                "try {n}: {other} {}",
                String::from_utf8_lossy(&response.body)
            ),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one rotation: {winners:?}");
    // The others were reuse: the session has ended, the winner's new token included.
    let (replica, (_, new_refresh)) = &winners[0];
    let elsewhere = fleet.replicas[(replica + 1) % 3].addr;
    let response = refresh(elsewhere, new_refresh).await;
    response.assert_status(401);
    assert_eq!(response.error_code(), "invalid_grant");
}

/// The outage rules while the database is away (killed or frozen), for a fleet whose
/// replicas last heard from it at `lost` or later: protected routes served from memory
/// until `max_stale`, then 503 `unavailable`; public routes forwarded; every write 503
/// with `Retry-After` within the operation bound; `/readyz` 503, `/healthz` 200.
async fn outage_rules(fleet: &Fleet, token: &str, refresh_token: &str, lost: Instant) {
    for (i, replica) in fleet.replicas.iter().enumerate() {
        let status = get_status(replica.addr, "/api/x", token).await;
        if lost.elapsed() < MAX_STALE - Duration::from_millis(500) {
            assert_eq!(
                status, 200,
                "replica {i}: served from memory before max_stale"
            );
        }
    }
    // Every write, on every replica, at once (against a frozen database each waits for
    // the operation bound).
    type Pending<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send + 'a>>;
    let mut names = Vec::new();
    let mut answers: Vec<Pending<'_>> = Vec::new();
    for (i, replica) in fleet.replicas.iter().enumerate() {
        let addr = replica.addr;
        let logout = serde_json::json!({ "refresh_token": refresh_token });
        names.extend([(i, "login"), (i, "refresh"), (i, "logout")]);
        answers.push(Box::pin(login(addr, "erin", PASSWORD)));
        answers.push(Box::pin(refresh(addr, refresh_token)));
        answers.push(Box::pin(async move {
            post_json(addr, "/auth/logout", logout, &[]).await
        }));
    }
    for ((i, what), response) in names
        .into_iter()
        .zip(futures_util::future::join_all(answers).await)
    {
        assert_eq!(
            response.status,
            503,
            "replica {i} {what}: {}",
            String::from_utf8_lossy(&response.body)
        );
        assert_eq!(response.error_code(), "unavailable", "replica {i} {what}");
        assert!(
            response.header("retry-after").is_some(),
            "replica {i} {what}: Retry-After"
        );
    }
    let times = until_each(
        fleet,
        &[0, 1],
        lost,
        "stale: 503 on a protected route",
        |addr| async move {
            let response = request(addr, "GET", "/api/x", &[&bearer(token)], b"").await;
            response.status == 503
                && response.error_code() == "unavailable"
                && response.header("retry-after").is_some()
        },
    )
    .await;
    for time in times {
        assert!(
            time >= MAX_STALE - Duration::from_millis(500),
            "stale only after max_stale: {time:?}"
        );
    }
    for (i, replica) in fleet.replicas.iter().enumerate() {
        let response = request(replica.addr, "GET", "/pub/x", &[], b"").await;
        assert_eq!(
            response.status, 200,
            "replica {i}: public routes are still forwarded"
        );
        assert_eq!(
            status_of(replica.ops_addr, "/readyz").await,
            Some(503),
            "replica {i}"
        );
        assert_eq!(
            status_of(replica.ops_addr, "/healthz").await,
            Some(200),
            "replica {i}"
        );
    }
}

/// Once the database is back: every replica ready by itself; a user created before the
/// outage logs in; the refresh token that got 503 meanwhile was not spent; the changes
/// acknowledged just before the outage (fay disabled, gus logged out) are enforced by
/// every replica.
async fn after_outage(fleet: &mut Fleet, before: &Before) {
    for replica in &mut fleet.replicas {
        replica.wait_ready().await;
    }
    for (i, replica) in fleet.replicas.iter().enumerate() {
        assert_eq!(
            login(replica.addr, "erin", PASSWORD).await.status,
            200,
            "replica {i}"
        );
        assert_eq!(
            get_status(replica.addr, "/api/x", &before.fay).await,
            401,
            "replica {i}: fay disabled"
        );
        assert_eq!(
            get_status(replica.addr, "/api/x", &before.gus).await,
            401,
            "replica {i}: gus logged out"
        );
        assert_eq!(
            login(replica.addr, "fay", PASSWORD).await.error_code(),
            "account_disabled",
            "replica {i}"
        );
    }
    refresh(fleet.replicas[1].addr, &before.erin_refresh)
        .await
        .assert_status(200);
    let response = refresh(fleet.replicas[1].addr, &before.gus_refresh).await;
    response.assert_status(401);
    for (i, replica) in fleet.replicas.iter().enumerate() {
        assert!(
            replica
                .wait_for_log("\"fresh again: the store answers")
                .await
        );
        let log = replica.log();
        let stale = log
            .lines()
            .filter(|l| l.contains("\"stale: no word from the store"))
            .count();
        let fresh = log
            .lines()
            .filter(|l| l.contains("\"fresh again: the store answers"))
            .count();
        assert_eq!(
            (stale, fresh),
            (1, 1),
            "replica {i}: each transition logged once:\n{log}"
        );
    }
}

/// What the outage tests set up before the database goes away: erin's session (used
/// during the outage), fay's token (fay disabled with the CLI right before), gus's
/// session (logged out on replica 0 right before).
struct Before {
    erin: String,
    erin_refresh: String,
    fay: String,
    gus: String,
    gus_refresh: String,
}

async fn before_outage(fleet: &Fleet) -> Before {
    for user in ["erin", "fay", "gus"] {
        fleet.add_user(user).await;
    }
    for user in ["erin", "fay", "gus"] {
        until_each(
            fleet,
            &[0, 1],
            Instant::now(),
            "user add",
            |addr| async move { login(addr, user, PASSWORD).await.status == 200 },
        )
        .await;
    }
    let (erin, erin_refresh) = login_ok(fleet.replicas[0].addr, "erin").await;
    let (fay, _) = login_ok(fleet.replicas[1].addr, "fay").await;
    let (gus, gus_refresh) = login_ok(fleet.replicas[0].addr, "gus").await;
    fleet.cli(&["user", "disable", "fay"], "").await;
    post_json(
        fleet.replicas[0].addr,
        "/auth/logout",
        serde_json::json!({ "refresh_token": gus_refresh }),
        &[&bearer(&gus)],
    )
    .await
    .assert_status(204);
    Before {
        erin,
        erin_refresh,
        fay,
        gus,
        gus_refresh,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_killed_and_restarted_mid_test() {
    let (cluster, url) = own_cluster().await;
    let mut fleet = Fleet::start(
        &url,
        2,
        &format!("max_stale = \"{}s\"", MAX_STALE.as_secs()),
    )
    .await;
    let before = before_outage(&fleet).await;

    blocking(&cluster, PgCluster::kill).await;
    let lost = Instant::now();
    outage_rules(&fleet, &before.erin, &before.erin_refresh, lost).await;

    blocking(&cluster, PgCluster::restart).await;
    after_outage(&mut fleet, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_frozen_and_thawed_mid_test() {
    let (cluster, url) = own_cluster().await;
    let mut fleet = Fleet::start(
        &url,
        2,
        &format!("max_stale = \"{}s\"", MAX_STALE.as_secs()),
    )
    .await;
    let before = before_outage(&fleet).await;

    blocking(&cluster, PgCluster::freeze).await;
    let lost = Instant::now();
    for (i, replica) in fleet.replicas.iter().enumerate() {
        assert_eq!(
            get_status(replica.addr, "/api/x", &before.erin).await,
            200,
            "replica {i}: served from memory while the database is frozen"
        );
    }
    // A write to a frozen database waits for at most max_stale, then answers 503.
    let started = Instant::now();
    let response = login(fleet.replicas[0].addr, "erin", PASSWORD).await;
    let waited = started.elapsed();
    println!(
        "a login against the frozen database answered {} after {waited:?}",
        response.status
    );
    assert_eq!(response.status, 503);
    assert!(
        waited < MAX_STALE + Duration::from_secs(2),
        "bounded wait: {waited:?}"
    );
    // The rules again, the protected route now stale.
    outage_rules(&fleet, &before.erin, &before.erin_refresh, lost).await;

    blocking(&cluster, PgCluster::thaw).await;
    after_outage(&mut fleet, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_started_while_the_database_is_down_waits_and_starts_by_itself() {
    let (cluster, url) = own_cluster().await;
    // Trust authentication ignores the password; it is there to be kept out of the log.
    const DB_PASSWORD: &str = "db-password-never-logged";
    let url = url.replacen("postgres@", &format!("postgres:{DB_PASSWORD}@"), 1);
    let upstream = EchoUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cli = replica_config(&dir.path().join("cli"), upstream.addr, &url, "");
    let out = run_cli(
        &cli,
        &["user", "add", "hal", "--password-stdin"],
        &format!("{PASSWORD}\n"),
        &[],
    );
    assert_eq!(out.code, 0, "{out:?}");
    blocking(&cluster, PgCluster::stop).await;

    let replica_dir = dir.path().join("r0");
    let config = replica_config(&replica_dir, upstream.addr, &url, "");
    let mut replica = Gatehouse::start_waiting(&replica_dir, &config, &[]).await;
    for _ in 0..3 {
        assert_eq!(
            status_of(replica.ops_addr, "/readyz").await,
            Some(503),
            "not ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(replica.running(), "it waits rather than exiting");
    assert!(!replica.log().contains("gatehouse serving"));

    blocking(&cluster, PgCluster::restart).await;
    replica.wait_serving().await;
    replica.wait_ready().await;
    assert_eq!(login(replica.addr, "hal", PASSWORD).await.status, 200);
    let log = replica.log();
    let count = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(count("the store cannot be reached; waiting"), 1, "{log}");
    assert_eq!(count("the store answers: starting"), 1, "{log}");
    assert!(
        !log.contains(DB_PASSWORD),
        "the database password is never logged:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propagation_goes_on_after_the_server_terminates_the_listen_connections() {
    let url = shared_database().await;
    let db = url.rsplit('/').next().expect("db").to_string();
    let fleet = Fleet::start(&url, 2, "").await;
    let cluster = PgCluster::shared();
    let listeners = {
        let db = db.clone();
        move || {
            let db = db.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    PgCluster::shared().sql(
                        "postgres",
                        &format!(
                            "SELECT pid FROM pg_stat_activity WHERE datname = '{db}' \
                             AND query LIKE 'LISTEN%' ORDER BY pid"
                        ),
                    )
                })
                .await
                .expect("join")
            }
        }
    };
    // Both replicas listen (the CLI config's store is not running).
    let deadline = Instant::now() + POLL_FOR;
    let before = loop {
        let pids = listeners().await;
        if pids.lines().count() == 2 {
            break pids;
        }
        assert!(
            Instant::now() < deadline,
            "two LISTEN connections: {pids:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for user in ["ida", "jon"] {
        fleet.add_user(user).await;
    }
    for user in ["ida", "jon"] {
        until_each(
            &fleet,
            &[0, 1],
            Instant::now(),
            "user add",
            |addr| async move { login(addr, user, PASSWORD).await.status == 200 },
        )
        .await;
    }
    let (ida, _) = login_ok(fleet.replicas[1].addr, "ida").await;
    let (jon, jon_refresh) = login_ok(fleet.replicas[0].addr, "jon").await;

    let terminated = cluster.sql(
        "postgres",
        &format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = '{db}' AND query LIKE 'LISTEN%'"
        ),
    );
    assert_eq!(terminated, "2");

    // A disable on replica 0 (the CLI with its config goes through its admin socket).
    let a_config = fleet.replicas[0].config_path.clone();
    let out = tokio::task::spawn_blocking(move || {
        run_cli(&a_config, &["user", "disable", "ida"], "", &[])
    })
    .await
    .expect("join");
    assert_eq!(out.code, 0, "{out:?}");
    let acked = Instant::now();
    let token = ida.as_str();
    within_a_second(
        &fleet,
        &[1],
        acked,
        "disable on replica 0 after LISTEN was terminated",
        |addr| async move { get_status(addr, "/api/x", token).await == 401 },
    )
    .await;

    // The LISTEN connections come back (new ones), and carry the next change.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let after = listeners().await;
        if after.lines().count() == 2 && before.lines().all(|pid| !after.lines().any(|p| p == pid))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "both replicas listen again: {before:?} -> {after:?}\n{}",
            fleet.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    post_json(
        fleet.replicas[0].addr,
        "/auth/logout",
        serde_json::json!({ "refresh_token": jon_refresh }),
        &[&bearer(&jon)],
    )
    .await
    .assert_status(204);
    let acked = Instant::now();
    let token = jon.as_str();
    within_a_second(
        &fleet,
        &[1],
        acked,
        "logout on replica 0 after LISTEN came back",
        |addr| async move { get_status(addr, "/api/x", token).await == 401 },
    )
    .await;
}

/// A config in `dir` (created) for the binary with a generated secret (no `[tokens]`):
/// sled in `dir/data`, or PostgreSQL at `url`.
fn generated_secret_config(dir: &Path, url: Option<&str>) -> PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    let text = binary_config(dir, "");
    let text = match url {
        Some(url) => with_store(&text, &postgres_keys(url, "")),
        None => text,
    };
    write_config(dir, &text)
}

async fn cli_at(config: &Path, args: &[&str]) -> Output {
    let config = config.to_path_buf();
    let owned: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = owned.iter().map(String::as_str).collect();
        run_cli(&config, &args, "", &[])
    })
    .await
    .expect("join");
    assert_eq!(out.code, 0, "gatehouse {args:?}: {out:?}");
    out
}

async fn me_status(addr: SocketAddr, token: &str) -> u16 {
    get_status(addr, "/auth/me", token).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_import_carry_a_gateway_from_sled_to_postgresql_and_back() {
    let dir = tempfile::tempdir().expect("tempdir");

    // A sled gateway with a generated secret, a user and a session.
    let sled_dir = dir.path().join("sled");
    let sled = generated_secret_config(&sled_dir, None);
    common::binary::cli_add_user(&sled, "kim", &[], PASSWORD);
    let mut gateway = Gatehouse::start(&sled_dir, &sled, &[]).await;
    gateway.wait_ready().await;
    let (access, refresh_token) = login_ok(gateway.addr, "kim").await;
    assert_eq!(me_status(gateway.addr, &access).await, 200);
    // Exported while it runs.
    let export = cli_at(&sled, &["store", "export"]).await;
    let from_sled = dir.path().join("from-sled.jsonl");
    std::fs::write(&from_sled, &export.stdout).expect("write export");
    assert!(gateway.terminate().await == Some(0), "{}", gateway.log());

    // Imported into an empty, migrated PostgreSQL database; two replicas serve it.
    let url = shared_database().await;
    let pg_cli = generated_secret_config(&dir.path().join("pg-cli"), Some(&url));
    cli_at(&pg_cli, &["migrate"]).await;
    cli_at(
        &pg_cli,
        &["store", "import", from_sled.to_str().expect("utf-8")],
    )
    .await;
    let mut replicas = Vec::new();
    for n in 0..2 {
        let replica_dir = dir.path().join(format!("pg-{n}"));
        let config = generated_secret_config(&replica_dir, Some(&url));
        let mut replica = Gatehouse::start(&replica_dir, &config, &[]).await;
        replica.wait_ready().await;
        replicas.push(replica);
    }
    for (n, replica) in replicas.iter().enumerate() {
        assert_eq!(
            me_status(replica.addr, &access).await,
            200,
            "replica {n}: the old access token (the secret came along)"
        );
        assert_eq!(
            login(replica.addr, "kim", PASSWORD).await.status,
            200,
            "replica {n}: the old password"
        );
    }
    let response = refresh(replicas[1].addr, &refresh_token).await;
    response.assert_status(200);
    let (access_pg, refresh_pg) = tokens(&response);
    assert_eq!(me_status(replicas[0].addr, &access_pg).await, 200);
    let (access_kept, refresh_kept) = login_ok(replicas[0].addr, "kim").await;
    // The rotation counts everywhere: the sled-era token is spent now, and presenting it
    // again is reuse, which ends that session (kept: the one just logged in).
    let response = refresh(replicas[0].addr, &refresh_token).await;
    response.assert_status(401);
    assert_eq!(response.error_code(), "invalid_grant");

    // And back: PostgreSQL → a new sled store.
    let export = cli_at(&pg_cli, &["store", "export"]).await;
    let from_pg = dir.path().join("from-pg.jsonl");
    std::fs::write(&from_pg, &export.stdout).expect("write export");
    drop(replicas);
    let back_dir = dir.path().join("sled-again");
    let back = generated_secret_config(&back_dir, None);
    cli_at(
        &back,
        &["store", "import", from_pg.to_str().expect("utf-8")],
    )
    .await;
    let mut gateway = Gatehouse::start(&back_dir, &back, &[]).await;
    gateway.wait_ready().await;
    assert_eq!(
        me_status(gateway.addr, &access_kept).await,
        200,
        "the PostgreSQL-era access token"
    );
    assert_eq!(
        login(gateway.addr, "kim", PASSWORD).await.status,
        200,
        "the old password"
    );
    refresh(gateway.addr, &refresh_kept)
        .await
        .assert_status(200);
    // The session that ended on PostgreSQL stays ended.
    assert_eq!(me_status(gateway.addr, &access_pg).await, 401);
    let response = refresh(gateway.addr, &refresh_pg).await;
    response.assert_status(401);
    assert_eq!(response.error_code(), "invalid_grant");
}

/// Issue #14: a service client moves from sled to PostgreSQL with `store export` /
/// `store import`: its `{"type":"client"}` line is carried byte for byte, its secret (only
/// its hash travels) and the tokens issued on sled keep working on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_client_moves_from_sled_to_postgresql_with_its_secret_and_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sled = generated_secret_config(&dir.path().join("sled"), None);
    let added = cli_at(&sled, &["client", "add", "ci-bot", "--role", "deploy"]).await;
    let secret = zeroize::Zeroizing::new(added.stdout.trim().to_string());
    let address = std::net::IpAddr::from([127, 0, 0, 1]);
    let open = |config: PathBuf| async move {
        let config = gatehouse::config::load(&config).expect("config");
        let store = gatehouse::store::open(&config.store).await.expect("store");
        gatehouse::accounts::Accounts::open(store, &config)
            .await
            .expect("accounts")
    };
    let on_sled = open(sled.clone()).await;
    let token = on_sled
        .client_credentials("ci-bot", secret.clone(), address)
        .await
        .expect("client credentials on sled")
        .access_token;
    drop(on_sled);
    let export = cli_at(&sled, &["store", "export"]).await;
    let client_line = |file: &str| {
        file.lines()
            .find(|line| line.starts_with(r#"{"type":"client""#))
            .map(str::to_string)
            .expect("a client line")
    };
    let from_sled = dir.path().join("from-sled.jsonl");
    std::fs::write(&from_sled, &export.stdout).expect("write export");

    let url = shared_database().await;
    let pg = generated_secret_config(&dir.path().join("pg"), Some(&url));
    cli_at(
        &pg,
        &["store", "import", from_sled.to_str().expect("utf-8")],
    )
    .await;
    let again = cli_at(&pg, &["store", "export"]).await;
    assert_eq!(client_line(&again.stdout), client_line(&export.stdout));
    let listed = cli_at(&pg, &["client", "list"]).await;
    assert!(listed.stdout.starts_with("ci-bot "), "{listed:?}");

    let on_pg = open(pg.clone()).await;
    let identity = on_pg.authenticate(&token).expect("the sled-era token");
    assert_eq!(identity.client_id(), Some("ci-bot"));
    on_pg
        .authenticate_client("ci-bot", secret.clone(), address)
        .await
        .expect("the secret");
    cli_at(&pg, &["client", "rotate", "ci-bot"]).await;
    let deadline = Instant::now() + POLL_FOR;
    while on_pg.authenticate(&token).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the rotation never reached the view"
        );
        on_pg.directory().follow().await;
    }
}

/// `deploy/compose/nginx.conf` as shipped, pointed at these replicas: each `server
/// gatehouse-N:8080` line names replica N's address, `listen 8080` becomes `listen`, and
/// the pid, logs and temp dirs go into `dir` (the shipped file leaves them to the
/// container's defaults).
fn compose_nginx_config(dir: &Path, listen: SocketAddr, replicas: &[SocketAddr]) -> String {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/compose/nginx.conf"),
    )
    .expect("read deploy/compose/nginx.conf");
    let mut text = shipped.clone();
    for (n, addr) in replicas.iter().enumerate() {
        let line = format!("server gatehouse-{}:8080 ", n + 1);
        assert!(text.contains(&line), "the shipped file has `{line}`");
        text = text.replacen(&line, &format!("server {addr} "), 1);
    }
    assert!(
        !text.contains("gatehouse-"),
        "every server line was replaced:\n{text}"
    );
    assert!(text.contains("listen 8080;"));
    text = text.replacen("listen 8080;", &format!("listen {listen};"), 1);
    let dir = dir.display();
    assert!(text.contains("http {\n"));
    text = text.replacen(
        "http {\n",
        &format!(
            "http {{\n    access_log {dir}/access.log;\n    client_body_temp_path {dir}/client_body;\n    \
             proxy_temp_path {dir}/proxy;\n    fastcgi_temp_path {dir}/fastcgi;\n    \
             uwsgi_temp_path {dir}/uwsgi;\n    scgi_temp_path {dir}/scgi;\n"
        ),
        1,
    );
    format!("pid {dir}/nginx.pid;\nerror_log {dir}/error.log info;\n{text}")
}

/// The replica's count of requests it served on an authenticated route (its metrics).
async fn authenticated_requests(ops: SocketAddr) -> u64 {
    let (status, _, body) = common::get(ops, "/metrics", &[])
        .await
        .expect("metrics answer");
    assert_eq!(status, 200);
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|line| {
            line.starts_with("gatehouse_requests_total{") && line.contains("authenticated\"")
        })
        .filter(|line| !line.contains("unauthenticated"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_nginx_config_balances_two_replicas_and_survives_one_stopping() {
    const REQUESTS: u64 = 12;
    let url = shared_database().await;
    let mut fleet = Fleet::start(&url, 2, "").await;
    fleet.add_user("lea").await;
    until_each(
        &fleet,
        &[0, 1],
        Instant::now(),
        "user add",
        |addr| async move { login(addr, "lea", PASSWORD).await.status == 200 },
    )
    .await;
    let dir = common::nginx::nginx_dir();
    // nginx cannot say which port a `:0` listener got: the one bind-and-release left.
    let listen = common::binary::third_party_listen_addr();
    let addrs: Vec<SocketAddr> = fleet.replicas.iter().map(|r| r.addr).collect();
    let mut nginx = common::nginx::Nginx::start(
        dir.path(),
        &compose_nginx_config(dir.path(), listen, &addrs),
    );
    nginx.wait_listening(listen).await;

    // Log in through nginx; then the requests go to both replicas, and all succeed.
    let (token, _) = login_ok(listen, "lea").await;
    let before = [
        authenticated_requests(fleet.replicas[0].ops_addr).await,
        authenticated_requests(fleet.replicas[1].ops_addr).await,
    ];
    for n in 0..REQUESTS {
        let response = request(listen, "GET", "/api/x", &[&bearer(&token)], b"").await;
        assert_eq!(
            response.status,
            200,
            "request {n}: {}\nnginx error.log:\n{}",
            String::from_utf8_lossy(&response.body),
            nginx.error_log()
        );
    }
    let served = [
        authenticated_requests(fleet.replicas[0].ops_addr).await - before[0],
        authenticated_requests(fleet.replicas[1].ops_addr).await - before[1],
    ];
    println!(
        "through nginx: replica 0 served {}, replica 1 {}",
        served[0], served[1]
    );
    assert_eq!(served[0] + served[1], REQUESTS, "{served:?}");
    assert!(
        served[0] > 0 && served[1] > 0,
        "both replicas served: {served:?}"
    );

    // One replica stops: the service keeps answering, GETs and a login alike.
    fleet.replicas[0].kill_9();
    for n in 0..REQUESTS {
        let response = request(listen, "GET", "/api/x", &[&bearer(&token)], b"").await;
        assert_eq!(
            response.status,
            200,
            "request {n} with replica 0 gone: {}\nnginx error.log:\n{}",
            String::from_utf8_lossy(&response.body),
            nginx.error_log()
        );
    }
    login_ok(listen, "lea").await;
}

/// Issue #14: a service client added with the CLI on the database gets tokens that every
/// replica accepts (route rules and the user header as for a user); `client rotate` and
/// `client remove` with the CLI end them on every replica within 1 s. The tokens come over
/// HTTP from replica 0 (`grant_type=client_credentials`); both replicas judge them, and both
/// refuse the old secret after the rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_rotate_and_remove_end_its_tokens_on_every_replica_within_a_second() {
    let url = shared_database().await;
    let fleet = Fleet::start(&url, 2, "").await;
    let all = [0, 1];
    let secret = |out: &Output| zeroize::Zeroizing::new(out.stdout.trim().to_string());
    let added = secret(
        &fleet
            .cli(&["client", "add", "ci-bot", "--role", "admin"], "")
            .await,
    );
    // Tokens come over HTTP from replica 0 (`grant_type=client_credentials`, HTTP Basic);
    // every check below also asks replica 1.
    let token_from = |replica: usize, secret: zeroize::Zeroizing<String>| {
        let addr = fleet.replicas[replica].addr;
        async move {
            use base64::Engine as _;
            let basic = base64::engine::general_purpose::STANDARD
                .encode(format!("ci-bot:{}", secret.as_str()));
            let authorization = format!("Authorization: Basic {basic}");
            request(
                addr,
                "POST",
                "/auth/token",
                &[
                    "Content-Type: application/x-www-form-urlencoded",
                    &authorization,
                ],
                b"grant_type=client_credentials",
            )
            .await
        }
    };
    let issue = |secret: zeroize::Zeroizing<String>| async move {
        let response = token_from(0, secret).await;
        response.assert_status(200);
        response.json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    };

    let first = issue(added.clone()).await;
    let token = first.as_str();
    until_each(
        &fleet,
        &all,
        Instant::now(),
        "client add (CLI)",
        |addr| async move { get_status(addr, "/admin/x", token).await == 200 },
    )
    .await;
    let me = request(
        fleet.replicas[1].addr,
        "GET",
        "/auth/me",
        &[&bearer(token)],
        b"",
    )
    .await;
    me.assert_status(200);
    assert_eq!(me.json()["username"], "ci-bot");
    assert_eq!(
        fleet
            .upstream
            .last()
            .and_then(|seen| seen.header("x-auth-user").map(str::to_string)),
        Some("ci-bot".to_string())
    );

    let rotated = secret(&fleet.cli(&["client", "rotate", "ci-bot"], "").await);
    let acked = Instant::now();
    within_a_second(
        &fleet,
        &all,
        acked,
        "client rotate (CLI)",
        |addr| async move { get_status(addr, "/admin/x", token).await == 401 },
    )
    .await;
    let listed = fleet.cli(&["client", "list"], "").await;
    assert!(
        !listed.stdout.contains(rotated.as_str()),
        "list shows no secret"
    );

    // The old secret fails now; a token under the new one works everywhere.
    for replica in all {
        let refused = token_from(replica, added.clone()).await;
        refused.assert_status(401);
        assert_eq!(refused.json()["error"], "invalid_client");
    }
    let second = issue(rotated).await;
    let token = second.as_str();
    until_each(
        &fleet,
        &all,
        Instant::now(),
        "token after rotate",
        |addr| async move { get_status(addr, "/admin/x", token).await == 200 },
    )
    .await;

    fleet.cli(&["client", "remove", "ci-bot"], "").await;
    let acked = Instant::now();
    within_a_second(
        &fleet,
        &all,
        acked,
        "client remove (CLI)",
        |addr| async move { get_status(addr, "/admin/x", token).await == 401 },
    )
    .await;
    assert_eq!(
        get_status(fleet.replicas[0].addr, "/admin/x", &first).await,
        401
    );
}

/// One in-process replica's accounts layer on database `url`, following the feed in the
/// background as `serve` does (until the returned sender is dropped or set).
async fn accounts_replica(
    dir: &Path,
    url: &str,
) -> (
    std::sync::Arc<gatehouse::accounts::Accounts>,
    gatehouse::config::BrowserSettings,
    tokio::sync::watch::Sender<bool>,
) {
    let text = format!(
        "[store]\nbackend = \"postgres\"\nurl = \"{url}\"\npath = \"{}\"\n\
         [passwords]\nmemory_kib = 64\niterations = 1\n\
         [upstreams.default]\nurl = \"http://127.0.0.1:9\"\n\
         [browser]\nenabled = true\npublic_url = \"https://app.example.com\"\ninactivity = \"10m\"\n",
        dir.display()
    );
    let config = gatehouse::config::parse(&text).expect("valid config");
    let store = gatehouse::store::open(&config.store).await.expect("store");
    let accounts = std::sync::Arc::new(
        gatehouse::accounts::Accounts::open(store, &config)
            .await
            .expect("accounts"),
    );
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(gatehouse::accounts::maintain(accounts.clone(), shutdown));
    (accounts, config.browser.clone(), stop)
}

/// Polls `probe` until it is true; the time it took, asserted under [`PROPAGATION`].
async fn within_a_second_here(what: &str, probe: impl Fn() -> bool) -> Duration {
    let since = Instant::now();
    loop {
        if probe() {
            let time = since.elapsed();
            println!("propagation: {what}: after {time:?}");
            assert!(
                time < PROPAGATION,
                "{what}: after {time:?} (SPEC §10: on every replica within 1 s)"
            );
            return time;
        }
        assert!(
            since.elapsed() < POLL_FOR,
            "{what}: not within {POLL_FOR:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_session_ended_on_one_replica_is_refused_on_another_within_a_second() {
    use gatehouse::accounts::browser::cookie_hash;
    let url = shared_database().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, browser, _stop_a) = accounts_replica(&dir.path().join("a"), &url).await;
    let (b, _, _stop_b) = accounts_replica(&dir.path().join("b"), &url).await;
    let client = std::net::IpAddr::from([127, 0, 0, 1]);
    let pw = |text: &str| zeroize::Zeroizing::new(text.to_string());
    a.directory()
        .add("alice", vec![], pw(PASSWORD))
        .await
        .expect("add");

    // Signed in on A: B accepts the cookie within a second.
    let cookie = a
        .sign_in("alice", pw(PASSWORD), false, client, &browser)
        .await
        .expect("sign in")
        .cookie_value;
    assert!(a.authenticate_session(&cookie, &browser).is_ok());
    within_a_second_here("sign-in on A reaches B", || {
        b.authenticate_session(&cookie, &browser).is_ok()
    })
    .await;

    // A use recorded on A moves B's idle deadline (the touch goes through the feed).
    let signed_in = a
        .authenticate_session(&cookie, &browser)
        .expect("live")
        .iat();
    let used = signed_in + 60;
    a.authenticate_session_at(&cookie, &browser, used)
        .expect("used on A");
    within_a_second_here("last use on A reaches B", || {
        b.directory()
            .view()
            .browser_session(&cookie_hash(&cookie))
            .is_some_and(|entry| entry.recorded() == used)
    })
    .await;

    // Signed out on B: A refuses within a second.
    b.sign_out(&cookie).await.expect("sign out on B");
    assert!(b.authenticate_session(&cookie, &browser).is_err());
    within_a_second_here("sign-out on B reaches A", || {
        a.authenticate_session(&cookie, &browser).is_err()
    })
    .await;

    // Disabled on B: A refuses within a second, and enabling does not revive it.
    let cookie = a
        .sign_in("alice", pw(PASSWORD), false, client, &browser)
        .await
        .expect("sign in")
        .cookie_value;
    within_a_second_here("second sign-in reaches B", || {
        b.authenticate_session(&cookie, &browser).is_ok()
    })
    .await;
    b.directory()
        .set_enabled("alice", false)
        .await
        .expect("disable");
    within_a_second_here("disable on B reaches A", || {
        a.authenticate_session(&cookie, &browser).is_err()
    })
    .await;
    b.directory()
        .set_enabled("alice", true)
        .await
        .expect("enable");
    let alice = b
        .directory()
        .store()
        .find_user_by_name("alice")
        .await
        .expect("find")
        .expect("alice")
        .id;
    within_a_second_here("enable on B reaches A", || {
        a.directory()
            .view()
            .user(&alice)
            .is_some_and(|user| user.enabled)
    })
    .await;
    assert!(
        a.authenticate_session(&cookie, &browser).is_err(),
        "user enable does not bring the session back"
    );
}
