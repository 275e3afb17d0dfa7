//! Access logs (SPEC §6, §2 `[log]`): one access line per request, text or JSON, with
//! method, path, status, duration, user (or `-`), upstream and the request id; `RUST_LOG`
//! wins over `[log] level`; never a token, password or query string. The request id is
//! the client's `X-Request-Id` when sane, else a fresh one, and is sent upstream and back.

mod common;

use std::net::SocketAddr;

use common::binary::Gatehouse;
use common::{get, TestGateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ROUTES: &str = r#"
[registration]
enabled = true

[[routes]]
path = "/pub/**"
access = "public"
"#;

const PASSWORD: &str = "correct horse battery staple";

async fn start(
    log: &str,
    envs: &[(&str, &str)],
) -> (Gatehouse, common::EchoUpstream, tempfile::TempDir) {
    let upstream = common::EchoUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut gatehouse = Gatehouse::serve(
        dir.path(),
        upstream.addr,
        "",
        &format!("{ROUTES}\n[log]\n{log}\n"),
        envs,
    )
    .await;
    gatehouse.wait_ready().await;
    (gatehouse, upstream, dir)
}

/// `POST path` with a JSON body; `(status, body)`.
async fn post_json(
    addr: SocketAddr,
    path: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let body = body.to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: gateway.test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(common::DEADLINE, stream.read_to_end(&mut out)).await;
    let response = common::parse_response(&out);
    let json = serde_json::from_slice(&response.body).unwrap_or(serde_json::Value::Null);
    (response.status, json)
}

/// Registers `username` and logs in; the access token.
async fn token_for(addr: SocketAddr, username: &str) -> String {
    let credentials = serde_json::json!({"username": username, "password": PASSWORD});
    let (status, body) = post_json(addr, "/auth/register", &credentials).await;
    assert_eq!(status, 201, "register: {body}");
    let (status, body) = post_json(addr, "/auth/login", &credentials).await;
    assert_eq!(status, 200, "login: {body}");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

fn access_lines(lines: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    lines
        .iter()
        .filter(|line| line["target"] == "gatehouse::access")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_access_lines_from_the_binary_carry_every_field_and_no_secret() {
    let (gatehouse, upstream, _dir) = start("format = \"json\"\nlevel = \"info\"", &[]).await;
    let addr = gatehouse.addr;
    let token = token_for(addr, "alice").await;

    let (status, head, _) = get(
        addr,
        "/pub/x?token=QUERYSECRET",
        &["X-Request-Id: client-chosen-id-1"],
    )
    .await
    .expect("answer");
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("x-request-id: client-chosen-id-1"),
        "{head}"
    );
    assert_eq!(
        upstream.last().expect("forwarded").header("x-request-id"),
        Some("client-chosen-id-1")
    );
    let authorization = format!("Authorization: Bearer {token}");
    let (status, _, _) = get(
        addr,
        "/private/data",
        &[&authorization, "X-Request-Id: as-alice"],
    )
    .await
    .expect("answer");
    assert_eq!(status, 200);
    let (status, _, _) = get(addr, "/private/data", &["X-Request-Id: anonymous"])
        .await
        .expect("answer");
    assert_eq!(status, 401);
    let (status, _, _) = get(
        addr,
        "/private/data",
        &["Authorization: Bearer garbage.TOKENGARBAGE.value"],
    )
    .await
    .expect("answer");
    assert_eq!(status, 401);

    // Lines are written by a background thread: wait until all six are there.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while gatehouse.log().matches("gatehouse::access").count() < 6
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let log = gatehouse.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"))
        })
        .collect();
    let access = access_lines(&lines);
    // register, login, four requests: one line each.
    assert_eq!(access.len(), 6, "one access line per request:\n{log}");
    for line in &access {
        for field in [
            "method",
            "path",
            "status",
            "duration_ms",
            "user",
            "upstream",
            "request_id",
        ] {
            assert!(
                !line[field].is_null(),
                "access line without {field}: {line}"
            );
        }
        assert!(line["status"].is_u64(), "status is a number: {line}");
        assert!(line["duration_ms"].is_f64(), "duration is a number: {line}");
    }
    let by_id = |id: &str| {
        access
            .iter()
            .find(|line| line["request_id"] == id)
            .copied()
            .unwrap_or_else(|| panic!("no access line for {id}:\n{log}"))
    };
    let public = by_id("client-chosen-id-1");
    assert_eq!(public["method"], "GET");
    assert_eq!(public["path"], "/pub/x", "the query string is not logged");
    assert_eq!(public["status"], 200);
    assert_eq!(public["user"], "-");
    assert_eq!(public["upstream"], "default");
    let alice = by_id("as-alice");
    assert_eq!(alice["user"], "alice");
    assert_eq!(alice["upstream"], "default");
    let anonymous = by_id("anonymous");
    assert_eq!(anonymous["status"], 401);
    assert_eq!(
        (anonymous["user"].as_str(), anonymous["upstream"].as_str()),
        (Some("-"), Some("-"))
    );
    // A generated request id when the client sent none.
    assert!(access.iter().any(|line| line["status"] == 401
        && line["request_id"] != "anonymous"
        && line["request_id"].as_str().is_some_and(|id| !id.is_empty())));

    for secret in [
        token.as_str(),
        PASSWORD,
        "QUERYSECRET",
        "TOKENGARBAGE",
        common::SECRET,
    ] {
        assert!(!log.contains(secret), "a secret reached the log: {secret}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_access_lines_carry_the_same_fields() {
    let (gatehouse, _upstream, _dir) = start("format = \"text\"", &[]).await;
    let (status, _, _) = get(
        gatehouse.addr,
        "/pub/text-line",
        &["X-Request-Id: text-id-7"],
    )
    .await
    .expect("answer");
    assert_eq!(status, 200);
    assert!(gatehouse.wait_for_log("request_id=text-id-7").await);
    let log = gatehouse.log();
    let line = log
        .lines()
        .find(|line| line.contains("request_id=text-id-7"))
        .unwrap_or_else(|| panic!("no access line:\n{log}"));
    for part in [
        "gatehouse::access",
        "method=GET",
        "path=/pub/text-line",
        "status=200",
        "duration_ms=",
        "user=",
        "upstream=",
        "default",
    ] {
        assert!(line.contains(part), "{part:?} missing in {line}");
    }
    assert!(
        serde_json::from_str::<serde_json::Value>(line).is_err(),
        "text format wrote JSON"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_wins_over_the_configured_level() {
    // Config says error, RUST_LOG says info: access lines are written.
    let (louder, _u1, _d1) = start(
        "format = \"json\"\nlevel = \"error\"",
        &[("RUST_LOG", "info")],
    )
    .await;
    assert_eq!(
        get(louder.addr, "/pub/a", &["X-Request-Id: louder"])
            .await
            .expect("answer")
            .0,
        200
    );
    assert!(
        louder.wait_for_log("\"louder\"").await,
        "RUST_LOG=info did not win:\n{}",
        louder.log()
    );

    // Config says info, RUST_LOG says warn: no access line. (The harness learns the
    // ports from the "gatehouse serving" line, INFO in gatehouse::app: RUST_LOG keeps that
    // one target at info; the access lines, gatehouse::access, are at warn.)
    let (quieter, _u2, _d2) = start(
        "format = \"json\"\nlevel = \"info\"",
        &[("RUST_LOG", "warn,gatehouse::app=info")],
    )
    .await;
    assert_eq!(
        get(quieter.addr, "/pub/b", &["X-Request-Id: quieter"])
            .await
            .expect("answer")
            .0,
        200
    );
    // Stop it so everything queued is written before looking for what must be absent.
    let mut quieter = quieter;
    quieter.signal("TERM");
    assert!(quieter
        .wait_exit(std::time::Duration::from_secs(30))
        .await
        .is_some());
    assert!(
        !quieter.log().contains("quieter"),
        "RUST_LOG=warn did not win:\n{}",
        quieter.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_generated_sent_upstream_and_returned_when_the_client_gave_none() {
    let gateway = TestGateway::start(ROUTES).await;

    let response = gateway.get("/pub/no-id", &[]).await;
    assert_eq!(response.status, 200);
    let returned = response
        .header("x-request-id")
        .expect("a request id is returned")
        .to_string();
    assert!(returned.len() >= 8, "a fresh, unguessable id: {returned}");
    let sent = gateway.upstream.last().expect("forwarded");
    assert_eq!(
        sent.all("x-request-id"),
        vec![returned.as_str()],
        "upstream got the same id once"
    );

    let again = gateway.get("/pub/no-id", &[]).await;
    assert_ne!(
        again.header("x-request-id"),
        Some(returned.as_str()),
        "ids are per request"
    );

    let kept = gateway
        .get("/pub/with-id", &["X-Request-Id: trace-abc-123"])
        .await;
    assert_eq!(kept.header("x-request-id"), Some("trace-abc-123"));
    assert_eq!(
        gateway
            .upstream
            .last()
            .expect("forwarded")
            .header("x-request-id"),
        Some("trace-abc-123")
    );

    // An id that is not a sane token is replaced, not forwarded.
    let long = format!("X-Request-Id: {}", "x".repeat(300));
    let replaced = gateway.get("/pub/bad-id", &[&long]).await;
    let id = replaced.header("x-request-id").expect("id");
    assert!(id.len() < 300);
    assert_eq!(
        gateway
            .upstream
            .last()
            .expect("forwarded")
            .header("x-request-id"),
        Some(id)
    );
}

/// The `/auth/login` access line carries the user it logged in; a failed login is one
/// INFO line with the canonical username (never the password, never the raw input).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_lines_name_the_user_and_failures_the_canonical_username() {
    let (gatehouse, _upstream, _dir) = start("format = \"json\"\nlevel = \"info\"", &[]).await;
    let addr = gatehouse.addr;
    token_for(addr, "Alice").await;
    let wrong = serde_json::json!({"username": "ALICE", "password": "wrong-PASSWORD-77"});
    let (status, _) = post_json(addr, "/auth/login", &wrong).await;
    assert_eq!(status, 401);
    let unknown = serde_json::json!({"username": "Nobody.Here", "password": "wrong-PASSWORD-77"});
    let (status, _) = post_json(addr, "/auth/login", &unknown).await;
    assert_eq!(status, 401);

    let complete = || {
        let log = gatehouse.log();
        log.matches("gatehouse::access").count() >= 4 && log.matches("login failed").count() >= 2
    };
    assert!(
        common::eventually(common::DEADLINE, complete).await,
        "{}",
        gatehouse.log()
    );
    let log = gatehouse.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let logins: Vec<&serde_json::Value> = access_lines(&lines)
        .into_iter()
        .filter(|line| line["path"] == "/auth/login")
        .collect();
    let ok = logins
        .iter()
        .find(|line| line["status"] == 200)
        .expect("the successful login's access line");
    assert_eq!(ok["user"], "Alice", "{ok}");
    let failures: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|line| line["message"] == "login failed: wrong password or unknown user")
        .collect();
    let names: Vec<&str> = failures
        .iter()
        .filter_map(|line| line["username"].as_str())
        .collect();
    assert_eq!(names, vec!["alice", "nobody.here"], "{log}");
    assert!(!log.contains("wrong-PASSWORD-77") && !log.contains(PASSWORD));
}

/// A 504 is logged (WARN) with the request id and the upstream, so the access line's 504
/// can be followed to its cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_timeout_is_logged_with_its_request_id() {
    let upstream = common::EchoUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = "[upstreams.slow]\nurl = \"http://{UPSTREAM}\"\ntimeout = \"300ms\"\n\n\
                 [[routes]]\npath = \"/slow/**\"\naccess = \"public\"\nupstream = \"slow\"\n\n\
                 [log]\nformat = \"json\"\nlevel = \"info\"\n";
    let mut gatehouse = Gatehouse::serve(dir.path(), upstream.addr, "", extra, &[]).await;
    gatehouse.wait_ready().await;
    let (status, _, _) = get(gatehouse.addr, "/slow/2000", &["X-Request-Id: slow-one"])
        .await
        .expect("answer");
    assert_eq!(status, 504);
    let logged = || {
        gatehouse.log().lines().any(|line| {
            line.contains("upstream timed out")
                && line.contains("slow-one")
                && line.contains("\"WARN\"")
        })
    };
    assert!(
        common::eventually(common::DEADLINE, logged).await,
        "{}",
        gatehouse.log()
    );
}
