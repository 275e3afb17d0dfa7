//! SPEC §8 "Outage", over any backend that reports `StoreError::Unavailable`: a
//! [`FlakyStore`] (a real sled store behind a switch) stands in for a database that goes
//! away. While it is away, every endpoint that must write answers 503 `unavailable` with
//! `Retry-After` (never 401) and acknowledges nothing; protected routes keep being served
//! from memory until `store.max_stale`, then answer 503 while public routes are still
//! forwarded (anonymously), `/readyz` is 503 and `/healthz` 200; when it comes back the
//! change written meanwhile is applied, readiness returns, and each transition was logged
//! once. A gateway started while the store is down waits, not ready, and starts by itself.
//! (The real-PostgreSQL kill/SIGSTOP/restart tests build on these.)

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::accounts::{login, login_ok, post_form, post_json, refresh, PASSWORD};
use common::flaky_store::FlakyStore;
use common::{bearer, request, Response, TestGateway, DEADLINE};
use gatehouse::store::{Store, UserChange};

const MAX_STALE: Duration = Duration::from_secs(3);

const ROUTES: &str = r#"
[headers]
trusted_proxies = ["127.0.0.1"]

[registration]
enabled = true

[[routes]]
path = "/pub/**"
access = "public"

[[routes]]
path = "/api/**"
access = "authenticated"
"#;

/// Every log line of this test binary, captured once for all its tests (each test looks
/// for messages only it causes).
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || LogSink(sink.clone()))
            .try_init();
        buffer
    })
}

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How many captured lines contain `message`.
fn logged(message: &str) -> usize {
    let text = String::from_utf8_lossy(&logs().lock().expect("log buffer")).into_owned();
    text.lines().filter(|line| line.contains(message)).count()
}

/// Polls until `message` was logged `count` times (a transition is logged by a task a
/// few milliseconds after it is visible), then checks it stays at that.
async fn wait_logged(message: &str, count: usize) {
    let deadline = Instant::now() + DEADLINE;
    while logged(message) < count && Instant::now() < deadline {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(logged(message), count, "times logged: {message}");
}

#[track_caller]
fn assert_unavailable(response: &Response, what: &str) {
    assert_eq!(
        response.status,
        503,
        "{what}: {}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.error_code(), "unavailable", "{what}");
    let retry: u64 = response
        .header("retry-after")
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("{what}: a Retry-After in seconds"));
    assert!(retry >= 1, "{what}: Retry-After {retry}");
    assert!(
        response.header("www-authenticate").is_none(),
        "{what}: a 503, not an authentication challenge"
    );
}

async fn ops(gateway: &TestGateway, path: &str) -> Response {
    request(gateway.ops_addr, "GET", path, &[], b"").await
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_answer_503_then_protected_routes_go_stale_and_everything_recovers() {
    logs();
    let (gateway, store) = TestGateway::start_flaky(ROUTES, "max_stale = \"3s\"").await;
    let alice = gateway.user("alice", &["staff"]).await;
    let tokens = login_ok(&gateway, "alice", PASSWORD).await;
    let refresh_token = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    let auth = bearer(&alice.token);
    gateway
        .get("/api/orders", &[&auth])
        .await
        .assert_status(200);
    ops(&gateway, "/readyz").await.assert_status(200);
    let sessions_before = store
        .inner()
        .sessions_of(&alice.sub)
        .await
        .expect("sessions");

    store.set_down(true);
    let down_at = Instant::now();

    // Within max_stale: served from memory.
    gateway
        .get("/api/orders", &[&auth])
        .await
        .assert_status(200);
    let last = gateway.upstream.last().expect("forwarded");
    assert_eq!(last.header("x-auth-user"), Some("alice"));

    // Every endpoint that must write: 503 + Retry-After, never 401.
    assert_unavailable(&login(&gateway, "alice", PASSWORD).await, "login");
    assert_unavailable(
        &login(&gateway, "alice", "wrong password!").await,
        "bad login",
    );
    let grant = format!("grant_type=password&username=alice&password={PASSWORD}");
    let grant = grant.replace(' ', "+");
    assert_unavailable(
        &post_form(&gateway, "/auth/token", &grant, &[]).await,
        "token",
    );
    assert_unavailable(&refresh(&gateway, &refresh_token).await, "refresh");
    let logout = serde_json::json!({ "refresh_token": refresh_token });
    assert_unavailable(
        &post_json(&gateway, "/auth/logout", &logout, &[&auth]).await,
        "logout",
    );
    let change = serde_json::json!({
        "current_password": PASSWORD, "new_password": "another long passphrase"
    });
    assert_unavailable(
        &post_json(&gateway, "/auth/password", &change, &[&auth]).await,
        "password",
    );
    let register = serde_json::json!({ "username": "bob", "password": PASSWORD });
    assert_unavailable(
        &post_json(&gateway, "/auth/register", &register, &[]).await,
        "register",
    );

    // Another replica writes while this one cannot reach the store.
    let written = store
        .inner()
        .update_user(
            &alice.sub,
            UserChange::SetRoles(vec!["staff".into(), "auditor".into()]),
        )
        .await
        .expect("write behind the gateway's back");
    assert!(written.seq.is_some());

    // Past max_stale: protected routes 503, public ones forwarded anonymously.
    let stale = loop {
        let response = gateway.get("/api/orders", &[&auth]).await;
        if response.status != 200 {
            break response;
        }
        assert!(down_at.elapsed() < DEADLINE, "never went stale");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stale_after = down_at.elapsed();
    assert_unavailable(&stale, "protected GET when stale");
    assert!(
        stale_after >= MAX_STALE - Duration::from_millis(500),
        "stale after {stale_after:?}, before max_stale"
    );
    let forwarded = gateway.upstream.count();
    gateway.get("/pub/page", &[&auth]).await.assert_status(200);
    assert_eq!(
        gateway.upstream.count(),
        forwarded + 1,
        "public route forwarded"
    );
    let last = gateway.upstream.last().expect("forwarded");
    assert_eq!(last.header("x-auth-user"), None, "forwarded anonymously");
    assert_unavailable(&gateway.get("/auth/verify", &[&auth]).await, "verify");
    let asked = |uri: &str| format!("X-Forwarded-Uri: {uri}");
    let verify = gateway
        .get("/auth/verify", &[&auth, &asked("/api/orders")])
        .await;
    assert_unavailable(&verify, "verify of a protected route");
    // Forward-auth decides a public route as proxying does: pass, anonymously.
    let verify = gateway
        .get("/auth/verify", &[&auth, &asked("/pub/page")])
        .await;
    verify.assert_status(200);
    assert_eq!(verify.header("x-auth-user"), Some(""));
    assert_unavailable(&gateway.get("/auth/me", &[&auth]).await, "me");
    let ready = ops(&gateway, "/readyz").await;
    assert_eq!(ready.status, 503);
    assert_eq!(String::from_utf8_lossy(&ready.body), "stale\n");
    ops(&gateway, "/healthz").await.assert_status(200);
    // The transition is logged and the gauge set together, by the watcher.
    wait_logged("stale: no word from the store", 1).await;
    let scrape = ops(&gateway, "/metrics").await;
    let text = String::from_utf8_lossy(&scrape.body);
    assert_eq!(metric(&text, "gatehouse_store_stale "), Some(1.0), "{text}");
    let refused = metric(
        &text,
        "gatehouse_requests_total{decision=\"unavailable\",status=\"5xx\"} ",
    );
    // The protected GET and `/auth/verify` (`/auth/me` counts as an auth endpoint).
    assert!(refused.is_some_and(|count| count >= 2.0), "{text}");

    // The store comes back: ready again, the change made meanwhile applied.
    store.set_down(false);
    let deadline = Instant::now() + DEADLINE;
    while ops(&gateway, "/readyz").await.status != 200 {
        assert!(Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gateway
        .get("/api/orders", &[&auth])
        .await
        .assert_status(200);
    let last = gateway.upstream.last().expect("forwarded");
    assert_eq!(last.header("x-auth-roles"), Some("staff,auditor"));
    wait_logged("fresh again: the store answers", 1).await;
    wait_logged("cannot read the store's change feed", 1).await;
    wait_logged("following the store's change feed again", 1).await;
    assert_eq!(logged("stale: no word from the store"), 1);
    let scrape = ops(&gateway, "/metrics").await;
    let text = String::from_utf8_lossy(&scrape.body);
    assert_eq!(metric(&text, "gatehouse_store_stale "), Some(0.0), "{text}");

    // Nothing refused was half done: no session from the refused login, the refresh
    // token unspent, the session not logged out, the password unchanged, no bob.
    let sessions_after = store
        .inner()
        .sessions_of(&alice.sub)
        .await
        .expect("sessions");
    assert_eq!(sessions_after, sessions_before);
    assert!(store
        .inner()
        .find_user_by_name("bob")
        .await
        .expect("find")
        .is_none());
    refresh(&gateway, &refresh_token).await.assert_status(200);
    login_ok(&gateway, "alice", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_started_while_the_store_is_down_waits_not_ready_then_starts_by_itself() {
    logs();
    let gateway = TestGateway::prepare("", ROUTES).await;
    let store = FlakyStore::open(&gateway.dir.path().join("data"));
    store.set_down(true);
    let config = gatehouse::config::load(&gateway.config_path).expect("config");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let ops_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind ops");
    let addr = listener.local_addr().expect("addr");
    let ops_addr = ops_listener.local_addr().expect("ops addr");
    let starting = tokio::spawn({
        let config_path = gateway.config_path.clone();
        let store: Arc<dyn Store> = store.clone();
        async move {
            gatehouse::App::start_with_store(
                &config_path,
                config,
                listener,
                ops_listener,
                gatehouse::telemetry::LogControl::inert(),
                store,
            )
            .await
        }
    });
    // Up but not ready for as long as the store stays away.
    let waiting_since = Instant::now();
    let mut answers = 0;
    while waiting_since.elapsed() < Duration::from_millis(700) {
        let ready = request(ops_addr, "GET", "/readyz", &[], b"").await;
        assert_eq!(ready.status, 503);
        assert_eq!(String::from_utf8_lossy(&ready.body), "starting\n");
        request(ops_addr, "GET", "/healthz", &[], b"")
            .await
            .assert_status(200);
        answers += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(answers >= 2);
    assert!(!starting.is_finished(), "started without its store");
    wait_logged("the store cannot be reached; waiting for it", 1).await;

    store.set_down(false);
    let handle = tokio::time::timeout(DEADLINE, starting)
        .await
        .expect("starts once the store answers")
        .expect("join")
        .expect("gateway starts");
    assert_eq!(handle.addr, addr);
    request(ops_addr, "GET", "/readyz", &[], b"")
        .await
        .assert_status(200);
    request(addr, "GET", "/pub/page", &[], b"")
        .await
        .assert_status(200);
    wait_logged("the store answers: starting", 1).await;
    assert_eq!(logged("the store cannot be reached; waiting for it"), 1);
    handle.shutdown().await;
}

#[tokio::test]
async fn an_embedded_store_is_never_stale() {
    let gateway = TestGateway::start(ROUTES).await;
    let scrape = ops(&gateway, "/metrics").await;
    let text = String::from_utf8_lossy(&scrape.body);
    assert_eq!(metric(&text, "gatehouse_store_stale "), Some(0.0), "{text}");
    ops(&gateway, "/readyz").await.assert_status(200);
}

/// The follower waits on `Store::change_signal` besides its 250 ms tick: with the clock
/// paused (no tick can come), a change written elsewhere reaches the view once the
/// signal is notified.
#[tokio::test(start_paused = true)]
async fn a_change_signal_applies_a_change_without_waiting_for_the_tick() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "[store]\npath = \"{}\"\n[passwords]\nmemory_kib = 64\niterations = 1\n[upstreams.default]\nurl = \"http://127.0.0.1:9\"\n",
        dir.path().join("data").display()
    );
    let config = gatehouse::config::parse(&text).expect("config");
    let store = FlakyStore::open(&dir.path().join("data"));
    let accounts = Arc::new(
        gatehouse::accounts::Accounts::open(store.clone(), &config)
            .await
            .expect("accounts"),
    );
    accounts
        .directory()
        .add(
            "carol",
            vec![],
            zeroize::Zeroizing::new(PASSWORD.to_string()),
        )
        .await
        .expect("add");
    let id = store
        .inner()
        .find_user_by_name("carol")
        .await
        .expect("find")
        .expect("carol")
        .id;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let maintain = tokio::spawn(gatehouse::accounts::maintain(accounts.clone(), stopped));
    let roles = || {
        accounts
            .directory()
            .view()
            .user(&id)
            .map(|user| user.roles.clone())
    };
    // Let the first tick (at once) pass: on the paused clock this returns once the
    // runtime is idle, 10 ms later, still 240 ms before the next tick.
    tokio::time::sleep(Duration::from_millis(10)).await;
    // Written by someone else: the view does not know until it follows the feed.
    store
        .inner()
        .update_user(&id, UserChange::SetRoles(vec!["auditor".into()]))
        .await
        .expect("write elsewhere");
    let paused_at = tokio::time::Instant::now();
    store.notify();
    let deadline = Instant::now() + DEADLINE;
    while roles() != Some(vec!["auditor".to_string()]) {
        assert!(
            Instant::now() < deadline,
            "the signal never applied the change"
        );
        // Busy, so the paused clock cannot auto-advance to the next tick.
        tokio::task::yield_now().await;
    }
    assert_eq!(tokio::time::Instant::now(), paused_at, "applied by a tick");
    let _ = stop.send(true);
    maintain.await.expect("maintain stops");
}
