//! Signals against the REAL binary (SPEC §6): SIGTERM / SIGINT drain (readiness 503, no
//! new connections, in-flight requests and open WebSockets finish within `shutdown_grace`,
//! exit 0) and SIGHUP reload (routes, upstreams, headers and log level swapped without
//! dropping a connection; a broken file is logged and the running config stays; each
//! changed restart-only key is named in a WARN line); `server.watch_config` reloads a
//! changed file by itself.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::binary::Gatehouse;
use common::{config_text, get, status_of, EchoUpstream, KeepAlive, DEADLINE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ROUTES_A: &str = r#"
[[routes]]
path = "/a/**"
access = "public"

[[routes]]
path = "/b/**"
access = "deny"

[[routes]]
path = "/slow/**"
access = "public"

[[routes]]
path = "/ws"
access = "public"
"#;

struct Running {
    gatehouse: Gatehouse,
    upstream: EchoUpstream,
    dir: tempfile::TempDir,
}

async fn start(server_extra: &str, extra: &str) -> Running {
    let upstream = EchoUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut gatehouse = Gatehouse::serve(dir.path(), upstream.addr, server_extra, extra, &[]).await;
    gatehouse.wait_ready().await;
    Running {
        gatehouse,
        upstream,
        dir,
    }
}

impl Running {
    /// Rewrites the config file in place (the same port-0 listen keys: listeners are not
    /// reloaded, the running ones stay) and sends SIGHUP.
    fn reload_with(&self, upstream: SocketAddr, server_extra: &str, extra: &str) {
        let text = config_text(&upstream.to_string(), self.dir.path(), server_extra, extra);
        std::fs::write(&self.gatehouse.config_path, text).expect("rewrite config");
        self.gatehouse.signal("HUP");
    }
}

/// Polls until a fresh connection to `addr` is refused.
async fn wait_refused(addr: SocketAddr) -> bool {
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        if TcpStream::connect(addr).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// Polls `/readyz` until it answers `want`.
async fn wait_readyz(ops: SocketAddr, want: u16) -> bool {
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        if status_of(ops, "/readyz").await == Some(want) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// Polls a fresh `GET path` until it answers `want`.
async fn wait_status(addr: SocketAddr, path: &str, want: u16) -> bool {
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        if status_of(addr, path).await == Some(want) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// Opens a WebSocket-style upgrade through the gateway to the echo upstream's `/ws`.
async fn open_websocket(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: gateway.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .expect("write upgrade");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(DEADLINE, stream.read(&mut byte))
            .await
            .expect("upgrade answer in time")
            .expect("read upgrade answer");
        assert_eq!(read, 1, "connection closed during the upgrade: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "expected 101, got {head}");
    stream
}

/// Sends `message` over the spliced connection and reads the echo.
async fn echo(stream: &mut TcpStream, message: &[u8]) -> Vec<u8> {
    stream.write_all(message).await.expect("write");
    let mut got = vec![0u8; message.len()];
    tokio::time::timeout(DEADLINE, stream.read_exact(&mut got))
        .await
        .expect("echo in time")
        .expect("read echo");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_readiness_503_refuses_new_connections_finishes_in_flight_and_exits_zero() {
    let mut running = start(r#"shutdown_grace = "30s""#, ROUTES_A).await;
    let addr = running.gatehouse.addr;
    let ops = running.gatehouse.ops_addr;

    // A slow request in flight when the signal arrives.
    let slow = tokio::spawn(async move { get(addr, "/slow/3000", &[]).await });
    let upstream = running.upstream.clone();
    assert!(
        common::eventually(DEADLINE, || upstream.count() >= 1).await,
        "the slow request never reached the upstream"
    );

    running.gatehouse.signal("TERM");
    assert!(
        wait_readyz(ops, 503).await,
        "readiness did not turn 503 while draining"
    );
    assert!(
        wait_refused(addr).await,
        "new connections were still accepted while draining"
    );
    assert!(
        running.gatehouse.running(),
        "exited before the in-flight request finished"
    );

    let answer = slow
        .await
        .expect("join")
        .expect("the in-flight request got an answer");
    assert_eq!(
        answer.0, 200,
        "the in-flight request was not completed: {answer:?}"
    );

    let status = running
        .gatehouse
        .wait_exit(DEADLINE)
        .await
        .expect("gatehouse exits after draining");
    assert_eq!(status.code(), Some(0), "log:\n{}", running.gatehouse.log());
    assert!(running.gatehouse.log().contains("all connections drained"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_drains_and_exits_zero() {
    let mut running = start("", ROUTES_A).await;
    assert_eq!(status_of(running.gatehouse.addr, "/a/x").await, Some(200));
    running.gatehouse.signal("INT");
    let status = running
        .gatehouse
        .wait_exit(DEADLINE)
        .await
        .expect("gatehouse exits on SIGINT");
    assert_eq!(status.code(), Some(0), "log:\n{}", running.gatehouse.log());
    assert!(running.gatehouse.log().contains("SIGINT"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_waits_for_an_open_websocket_within_the_grace() {
    let mut running = start(r#"shutdown_grace = "60s""#, ROUTES_A).await;
    let mut socket = open_websocket(running.gatehouse.addr).await;
    assert_eq!(echo(&mut socket, b"before").await, b"before");

    running.gatehouse.signal("TERM");
    assert!(wait_readyz(running.gatehouse.ops_addr, 503).await);
    assert!(wait_refused(running.gatehouse.addr).await);

    // Draining, yet the spliced connection still carries data both ways…
    assert_eq!(
        echo(&mut socket, b"during the drain").await,
        b"during the drain"
    );
    // …and the process waits for it.
    assert!(
        running
            .gatehouse
            .wait_exit(Duration::from_millis(300))
            .await
            .is_none(),
        "gatehouse exited while a WebSocket was still open within the grace"
    );

    drop(socket);
    let status = running
        .gatehouse
        .wait_exit(DEADLINE)
        .await
        .expect("gatehouse exits once the WebSocket closed");
    assert_eq!(status.code(), Some(0), "log:\n{}", running.gatehouse.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_a_websocket_still_open_when_the_grace_ends() {
    let mut running = start(r#"shutdown_grace = "1s""#, ROUTES_A).await;
    let mut socket = open_websocket(running.gatehouse.addr).await;
    assert_eq!(echo(&mut socket, b"hello").await, b"hello");

    let signalled = Instant::now();
    running.gatehouse.signal("TERM");
    let status = running
        .gatehouse
        .wait_exit(DEADLINE)
        .await
        .expect("gatehouse exits when the grace ends, WebSocket or not");
    assert_eq!(status.code(), Some(0), "log:\n{}", running.gatehouse.log());
    assert!(
        signalled.elapsed() >= Duration::from_millis(900),
        "exited after {:?}, before the 1s grace",
        signalled.elapsed()
    );
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(DEADLINE, socket.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the WebSocket was not closed at exit");
    assert!(running.gatehouse.log().contains("shutdown grace elapsed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_routes_upstreams_headers_and_log_level_without_dropping_connections() {
    let mut running = start("", &format!("{ROUTES_A}\n[log]\nlevel = \"info\"\n")).await;
    let addr = running.gatehouse.addr;
    let second = EchoUpstream::start().await;

    // Before: /a public, /b denied, X-Team is an ordinary header, access lines at info.
    let mut kept = KeepAlive::connect(addr).await;
    let (status, _, body) = kept.get("/a/one", &["X-Team: red"]).await.expect("answer");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("x-team"));
    assert_eq!(status_of(addr, "/b/one").await, Some(403));
    assert!(running.gatehouse.wait_for_log("/a/one").await);

    // A slow request in flight across the reload.
    let slow = tokio::spawn(async move { get(addr, "/slow/1500", &[]).await });
    let first = running.upstream.clone();
    assert!(common::eventually(DEADLINE, || first.count() >= 2).await);

    let swapped = r#"
[[routes]]
path = "/a/**"
access = "deny"

[[routes]]
path = "/b/**"
access = "public"

[headers]
user = "X-Team"

[log]
level = "warn"
"#;
    running.reload_with(second.addr, "", swapped);
    assert!(
        wait_status(addr, "/b/two", 200).await,
        "the new routes never applied"
    );

    // Routes and upstream swapped: /b now reaches the second upstream.
    let before = second.count();
    assert_eq!(status_of(addr, "/b/three").await, Some(200));
    assert_eq!(
        second.count(),
        before + 1,
        "the new upstream did not get the request"
    );
    // The connection opened before the reload is still served, under the new rules.
    let (status, _, _) = kept
        .get("/a/two", &[])
        .await
        .expect("kept-alive connection survived");
    assert_eq!(status, 403);
    // Headers swapped: X-Team is now the identity header, stripped from clients.
    let (status, _, body) = kept
        .get("/b/four", &["X-Team: forged"])
        .await
        .expect("answer");
    assert_eq!(status, 200);
    assert!(
        !String::from_utf8_lossy(&body).contains("forged"),
        "a forged identity header was forwarded"
    );
    // Log level swapped: no access line at warn.
    assert!(
        !running.gatehouse.log().contains("/b/four"),
        "access line still written at level warn"
    );
    // The request in flight across the reload completed.
    let answer = slow.await.expect("join").expect("slow request answered");
    assert_eq!(answer.0, 200);
    assert!(running.gatehouse.running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_broken_file_logs_it_and_keeps_the_running_config() {
    let mut running = start("", ROUTES_A).await;
    let addr = running.gatehouse.addr;
    assert_eq!(status_of(addr, "/a/x").await, Some(200));

    std::fs::write(
        &running.gatehouse.config_path,
        "[server]\nlisten = \"127.0.0.1:1\"\nbogus_key = 1\n[[routes]]\npath = \"/a/**\"\naccess = \"deny\"\n",
    )
    .expect("write broken config");
    running.gatehouse.signal("HUP");
    assert!(
        running
            .gatehouse
            .wait_for_log("the new configuration was refused")
            .await,
        "the refusal was not logged:\n{}",
        running.gatehouse.log()
    );
    assert!(
        running.gatehouse.log().contains("bogus_key"),
        "the log does not say what is wrong"
    );
    assert!(
        running.gatehouse.running(),
        "a broken file stopped the gateway"
    );
    assert_eq!(
        status_of(addr, "/a/x").await,
        Some(200),
        "the running routes were replaced"
    );
    assert_eq!(status_of(addr, "/b/x").await, Some(403));

    // Fixed file, next SIGHUP: applied.
    let fixed = ROUTES_A.replace(
        "path = \"/b/**\"\naccess = \"deny\"",
        "path = \"/b/**\"\naccess = \"public\"",
    );
    assert_ne!(fixed, ROUTES_A);
    running.reload_with(running.upstream.addr, "", &fixed);
    assert!(
        wait_status(addr, "/b/x", 200).await,
        "a later valid reload was not applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_names_each_changed_restart_only_key_in_a_warn_line_and_applies_the_rest() {
    let running = start("", ROUTES_A).await;
    let addr = running.gatehouse.addr;
    assert_eq!(status_of(addr, "/b/x").await, Some(403));

    // Two restart-only keys changed, and one route: the route applies, the keys are named.
    let routes = ROUTES_A.replace(
        "path = \"/b/**\"\naccess = \"deny\"",
        "path = \"/b/**\"\naccess = \"public\"",
    );
    let text = config_text(
        &running.upstream.addr.to_string(),
        running.dir.path(),
        "",
        &format!("[login]\nmax_failures = 9\n{routes}"),
    )
    .replacen("[tokens]\n", "[tokens]\naccess_ttl = \"5m\"\n", 1);
    std::fs::write(&running.gatehouse.config_path, text).expect("rewrite config");
    running.gatehouse.signal("HUP");
    assert!(
        wait_status(addr, "/b/x", 200).await,
        "the route change was not applied"
    );
    let log = &running.gatehouse;
    for key in ["tokens.access_ttl", "login.max_failures"] {
        let warning = format!("{key} changed: needs a restart; the running value stays");
        assert!(
            log.wait_for_log(&warning).await,
            "no {warning:?} in:\n{}",
            log.log()
        );
    }
    let warn_lines: Vec<String> = log
        .log()
        .lines()
        .filter(|line| line.contains("needs a restart"))
        .map(str::to_string)
        .collect();
    assert_eq!(warn_lines.len(), 2, "only the changed keys: {warn_lines:?}");
    assert!(
        warn_lines.iter().all(|line| line.contains("WARN")),
        "{warn_lines:?}"
    );
    assert!(
        log.log().contains("configuration reloaded"),
        "{}",
        log.log()
    );
}

/// `gatehouse reload` (SPEC §1): the same reload as SIGHUP, through the admin socket, for
/// images without `kill`; exit 0 when applied, 1 with the reasons when refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gatehouse_reload_applies_the_file_and_refuses_a_bad_one_with_its_reasons() {
    let running = start("", ROUTES_A).await;
    let addr = running.gatehouse.addr;
    let config = running.gatehouse.config_path.display().to_string();
    let reload =
        || common::binary::run_blocking(vec!["-c".into(), config.clone(), "reload".into()]);
    let write = |server_extra: &str, extra: &str| {
        let text = config_text(
            &running.upstream.addr.to_string(),
            running.dir.path(),
            server_extra,
            extra,
        );
        std::fs::write(&running.gatehouse.config_path, text).expect("rewrite config");
    };
    assert_eq!(status_of(addr, "/b/x").await, Some(403));

    // Applied: the answer comes after the swap, so the next request sees it.
    let opened = ROUTES_A.replace(
        "path = \"/b/**\"\naccess = \"deny\"",
        "path = \"/b/**\"\naccess = \"public\"",
    );
    write("", &format!("[login]\nmax_failures = 9\n{opened}"));
    let out = reload().await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("configuration reloaded"), "{out:?}");
    assert!(
        out.stderr
            .contains("warning: login.max_failures changed: needs a restart"),
        "{out:?}"
    );
    assert_eq!(status_of(addr, "/b/x").await, Some(200));

    // Refused by the gateway (a file the text alone cannot show is missing): exit 1 with
    // the reason, and the running config stays.
    write(
        "tls_cert = \"absent-cert.pem\"\ntls_key = \"absent-key.pem\"",
        ROUTES_A,
    );
    let out = reload().await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("server.tls_cert: cannot read "),
        "{out:?}"
    );
    assert!(out.stderr.contains("the running one stays"), "{out:?}");
    assert_eq!(
        status_of(addr, "/b/x").await,
        Some(200),
        "the bad file applied"
    );

    // A file that does not parse: exit 1 naming the key; still the running config.
    write(
        "",
        &format!("{ROUTES_A}\n[[routes]]\npath = \"/c\"\naccess = \"maybe\"\n"),
    );
    let out = reload().await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("routes[4].access: "), "{out:?}");
    assert_eq!(
        status_of(addr, "/b/x").await,
        Some(200),
        "the bad file applied"
    );
    assert!(running.gatehouse.log().contains("admin command applied"));
}

#[test]
fn gatehouse_reload_without_a_running_gateway_exits_1_saying_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config =
        common::binary::write_config(dir.path(), &common::binary::binary_config(dir.path(), ""));
    let out = common::binary::run_cli(&config, &["reload"], "", &[]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("no gateway answers on "), "{out:?}");
}

/// `[server] watch_config = true` (issue 16): a changed file is reloaded without a signal
/// (polled every second), through the same reload as SIGHUP: the new route applies, a
/// changed restart-only key is named in a WARN line, and a broken file is logged while the
/// running config stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_config_reloads_a_changed_file_without_a_signal() {
    let mut running = start("watch_config = true\n", ROUTES_A).await;
    let addr = running.gatehouse.addr;
    assert_eq!(status_of(addr, "/b/x").await, Some(403));

    let routes = ROUTES_A.replace(
        "path = \"/b/**\"\naccess = \"deny\"",
        "path = \"/b/**\"\naccess = \"public\"",
    );
    let text = config_text(
        &running.upstream.addr.to_string(),
        running.dir.path(),
        "watch_config = true\n",
        &format!("[login]\nmax_failures = 9\n{routes}"),
    );
    std::fs::write(&running.gatehouse.config_path, text).expect("rewrite config");
    assert!(
        wait_status(addr, "/b/x", 200).await,
        "the changed route was not applied without a signal:\n{}",
        running.gatehouse.log()
    );
    let log = &running.gatehouse;
    assert!(
        log.wait_for_log("login.max_failures changed: needs a restart; the running value stays")
            .await,
        "{}",
        log.log()
    );
    assert!(
        log.log()
            .contains("watch_config: the configuration file changed; reloading"),
        "{}",
        log.log()
    );

    std::fs::write(
        &running.gatehouse.config_path,
        "[server]\nwatch_config = true\nbogus_key = 1\n",
    )
    .expect("write broken config");
    assert!(
        log.wait_for_log("watch_config: the new configuration was refused")
            .await,
        "{}",
        log.log()
    );
    assert!(
        running.gatehouse.running(),
        "a broken file stopped the gateway"
    );
    assert_eq!(
        status_of(addr, "/b/x").await,
        Some(200),
        "the running routes stay"
    );
}
