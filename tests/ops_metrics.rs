//! `/metrics` on the ops listener (SPEC §6): after real traffic, the Prometheus text holds
//! requests by access decision and status class, token rejections by reason, the upstream
//! latency histogram, login outcomes and open connections, with the exact counts the
//! traffic implies, and no label value taken from a raw path or a username; the parked
//! connections gauge follows idle keep-alive connections as they park, resume and close.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{bearer, get, mint_with, ClosedPort, KeepAlive, TestGateway, DEADLINE};

/// One sample: metric name and sorted labels.
type Series = (String, BTreeSet<(String, String)>);

/// Parses the text exposition into `(name, labels) -> value`.
fn parse(text: &str) -> BTreeMap<Series, f64> {
    let mut samples = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').expect("closing brace");
                let labels = inner
                    .split(',')
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (key, value) = pair.split_once('=').expect("label pair");
                        (key.to_string(), value.trim_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
            None => (series.to_string(), BTreeSet::new()),
        };
        samples.insert((name, labels), value.parse().expect("numeric value"));
    }
    samples
}

fn value(samples: &BTreeMap<Series, f64>, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples.get(&(name.to_string(), labels)).copied()
}

async fn scrape(gateway: &TestGateway) -> (String, String) {
    let (status, head, body) = get(gateway.ops_addr, "/metrics", &[])
        .await
        .expect("scrape");
    assert_eq!(status, 200);
    (head, String::from_utf8(body).expect("utf-8 metrics"))
}

fn routes(dead: std::net::SocketAddr) -> String {
    format!(
        r#"
[upstreams.dead]
url = "http://{dead}"
connect_timeout = "1s"

[[routes]]
path = "/pub/**"
access = "public"

[[routes]]
path = "/closed/**"
access = "deny"

[[routes]]
path = "/admin/**"
roles = ["admin"]

[[routes]]
path = "/gone/**"
access = "public"
upstream = "dead"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_rejections_latency_and_connections_after_traffic() {
    let dead = ClosedPort::reserve();
    let gateway = TestGateway::start(&routes(dead.addr)).await;
    let alice = gateway.user("alice", &["staff"]).await;
    let mut expired = TestGateway::claims_for(&alice);
    expired["exp"] = serde_json::json!(common::now() - 3600);
    expired["iat"] = serde_json::json!(common::now() - 7200);
    expired["nbf"] = serde_json::json!(common::now() - 7200);
    let expired = gateway.mint(&expired);
    let foreign = mint_with(
        jsonwebtoken::Algorithm::HS256,
        b"another-secret-another-secret-another!",
        &TestGateway::claims_for(&alice),
    );
    assert_ne!(foreign, alice.token);

    // public 2xx ×2
    assert_eq!(gateway.get("/pub/one", &[]).await.status, 200);
    assert_eq!(gateway.get("/pub/two?x=1", &[]).await.status, 200);
    // unauthenticated 4xx ×3: no token, bad signature, expired
    assert_eq!(gateway.get("/private/alice", &[]).await.status, 401);
    assert_eq!(
        gateway.get("/private", &[&bearer(&foreign)]).await.status,
        401
    );
    assert_eq!(
        gateway.get("/private", &[&bearer(&expired)]).await.status,
        401
    );
    // denied 4xx ×2: deny route, missing role
    assert_eq!(gateway.get("/closed/x", &[]).await.status, 403);
    assert_eq!(
        gateway
            .get("/admin/x", &[&bearer(&alice.token)])
            .await
            .status,
        403
    );
    // authenticated 2xx ×1
    assert_eq!(
        gateway
            .get("/private/data", &[&bearer(&alice.token)])
            .await
            .status,
        200
    );
    // rejected 4xx ×1: malformed path
    assert_eq!(gateway.get("/a/%2F/b", &[]).await.status, 400);
    // public 5xx ×1: upstream unreachable
    assert_eq!(gateway.get("/gone/x", &[]).await.status, 502);

    let (head, text) = scrape(&gateway).await;
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    assert!(
        text.trim_end().ends_with("# EOF"),
        "not a complete exposition"
    );
    let samples = parse(&text);
    let requests = |decision: &str, status: &str| {
        value(
            &samples,
            "gatehouse_requests_total",
            &[("decision", decision), ("status", status)],
        )
    };
    assert_eq!(requests("public", "2xx"), Some(2.0), "{text}");
    assert_eq!(requests("unauthenticated", "4xx"), Some(3.0), "{text}");
    assert_eq!(requests("denied", "4xx"), Some(2.0), "{text}");
    assert_eq!(requests("authenticated", "2xx"), Some(1.0), "{text}");
    assert_eq!(requests("rejected", "4xx"), Some(1.0), "{text}");
    assert_eq!(requests("public", "5xx"), Some(1.0), "{text}");

    let rejections = |reason: &str| {
        value(
            &samples,
            "gatehouse_token_rejections_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(rejections("bad_signature"), Some(1.0), "{text}");
    assert_eq!(rejections("expired"), Some(1.0), "{text}");

    // Every forwarded request was timed, per configured upstream name.
    let count = |upstream: &str| {
        value(
            &samples,
            "gatehouse_upstream_duration_seconds_count",
            &[("upstream", upstream)],
        )
    };
    assert_eq!(count("default"), Some(3.0), "{text}");
    assert_eq!(count("dead"), Some(1.0), "{text}");
    let inf = value(
        &samples,
        "gatehouse_upstream_duration_seconds_bucket",
        &[("upstream", "default"), ("le", "+Inf")],
    );
    assert_eq!(inf, Some(3.0), "{text}");

    // Login outcomes are exported from the start (zero until someone logs in).
    for outcome in [
        "success",
        "invalid_credentials",
        "disabled",
        "throttled",
        "invalid_request",
        "error",
    ] {
        assert!(
            value(&samples, "gatehouse_logins_total", &[("outcome", outcome)]).is_some(),
            "no login series for {outcome}:\n{text}"
        );
    }

    // Bounded labels: no raw path, query or username anywhere.
    for leaked in ["/pub", "/private", "alice", "x=1", "/closed"] {
        assert!(
            !text.contains(leaked),
            "{leaked:?} leaked into a label:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_connections_gauge_follows_client_connections() {
    let dead = ClosedPort::reserve();
    let gateway = TestGateway::start(&routes(dead.addr)).await;
    let open = |text: &str| value(&parse(text), "gatehouse_open_connections", &[]);

    let mut first = KeepAlive::connect(gateway.addr).await;
    let mut second = KeepAlive::connect(gateway.addr).await;
    assert_eq!(first.get("/pub/a", &[]).await.expect("answer").0, 200);
    assert_eq!(second.get("/pub/b", &[]).await.expect("answer").0, 200);
    let (_, text) = scrape(&gateway).await;
    assert_eq!(
        open(&text),
        Some(2.0),
        "two keep-alive connections are open:\n{text}"
    );

    drop(first);
    drop(second);
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let (_, text) = scrape(&gateway).await;
        if open(&text) == Some(0.0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gauge never returned to 0:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Polls `/metrics` until the unlabelled series `name` reads `want`.
async fn wait_for_gauge(gateway: &TestGateway, name: &str, want: f64) {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let (_, text) = scrape(gateway).await;
        if value(&parse(&text), name, &[]) == Some(want) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} never reached {want}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Sends one request on a kept-alive socket and reads its answer (the echo's JSON body).
async fn exchange(stream: &mut tokio::net::TcpStream, request: &[u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request).await.expect("write");
    let mut got = Vec::new();
    let mut buffer = [0u8; 4096];
    while !(got.starts_with(b"HTTP/1.1 200") && got.ends_with(b"}")) {
        let read = tokio::time::timeout(DEADLINE, stream.read(&mut buffer))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(read > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buffer[..read]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_connections_gauge_follows_parking_resuming_and_closing() {
    let dead = ClosedPort::reserve();
    let gateway = TestGateway::start(&routes(dead.addr)).await;
    let (_, text) = scrape(&gateway).await;
    let parked = value(&parse(&text), "gatehouse_parked_connections", &[]);
    assert_eq!(parked, Some(0.0), "exported from the start:\n{text}");

    // One request and silence: both connections park right after their answer.
    let mut first = tokio::net::TcpStream::connect(gateway.addr)
        .await
        .expect("connect");
    let mut second = tokio::net::TcpStream::connect(gateway.addr)
        .await
        .expect("connect");
    exchange(&mut first, b"GET /pub/a HTTP/1.1\r\nHost: x\r\n\r\n").await;
    exchange(&mut second, b"GET /pub/b HTTP/1.1\r\nHost: x\r\n\r\n").await;
    wait_for_gauge(&gateway, "gatehouse_parked_connections", 2.0).await;

    // The first resumes; a request with a body keeps it served (never parked again).
    exchange(
        &mut first,
        b"POST /pub/c HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
    )
    .await;
    let (_, text) = scrape(&gateway).await;
    let parked = value(&parse(&text), "gatehouse_parked_connections", &[]);
    assert_eq!(parked, Some(1.0), "resumed before it was answered:\n{text}");

    // A parked connection that closes, then a served one: back to zero, and it stays.
    drop(second);
    wait_for_gauge(&gateway, "gatehouse_parked_connections", 0.0).await;
    drop(first);
    wait_for_gauge(&gateway, "gatehouse_open_connections", 0.0).await;
    let (_, text) = scrape(&gateway).await;
    let parked = value(&parse(&text), "gatehouse_parked_connections", &[]);
    assert_eq!(parked, Some(0.0), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_on_the_ops_listener_only() {
    let dead = ClosedPort::reserve();
    let gateway = TestGateway::start(&routes(dead.addr)).await;
    let on_main = gateway.get("/metrics", &[]).await;
    assert_eq!(
        on_main.status, 401,
        "the main listener treats /metrics as any other path"
    );
    assert!(!String::from_utf8_lossy(&on_main.body).contains("gatehouse_requests"));
    let (_, text) = scrape(&gateway).await;
    assert!(text.contains("# TYPE gatehouse_requests counter"), "{text}");
}

/// `POST path` with a JSON body; the status.
async fn post_json(gateway: &TestGateway, path: &str, body: serde_json::Value) -> u16 {
    let body = body.to_string();
    gateway
        .request(
            "POST",
            path,
            &["Content-Type: application/json"],
            body.as_bytes(),
        )
        .await
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_outcomes_are_counted_without_usernames() {
    let gateway = TestGateway::start("[registration]\nenabled = true\n").await;
    let good = serde_json::json!({"username": "bob-the-user", "password": "correct horse battery"});
    let bad = serde_json::json!({"username": "bob-the-user", "password": "wrong horse battery"});
    assert_eq!(
        post_json(&gateway, "/auth/register", good.clone()).await,
        201
    );
    assert_eq!(post_json(&gateway, "/auth/login", good).await, 200);
    assert_eq!(post_json(&gateway, "/auth/login", bad.clone()).await, 401);
    assert_eq!(post_json(&gateway, "/auth/login", bad).await, 401);

    let (_, text) = scrape(&gateway).await;
    let samples = parse(&text);
    let logins = |outcome: &str| value(&samples, "gatehouse_logins_total", &[("outcome", outcome)]);
    assert_eq!(logins("success"), Some(1.0), "{text}");
    assert_eq!(logins("invalid_credentials"), Some(2.0), "{text}");
    assert_eq!(logins("throttled"), Some(0.0), "{text}");
    assert!(
        !text.contains("bob-the-user"),
        "a username leaked into a label"
    );
    // The endpoints count as their own decision.
    let endpoint = value(
        &samples,
        "gatehouse_requests_total",
        &[("decision", "auth_endpoint"), ("status", "4xx")],
    );
    assert_eq!(endpoint, Some(2.0), "{text}");
}

/// A bad token on a public route: the request passes anonymously (200, no identity), and
/// the refused token is still counted by reason (field trial: it was not counted at all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_on_a_public_route_is_counted_as_a_rejection() {
    let dead = ClosedPort::reserve();
    let gateway = TestGateway::start(&routes(dead.addr)).await;
    let alice = gateway.user("alice", &["staff"]).await;
    let foreign = mint_with(
        jsonwebtoken::Algorithm::HS256,
        b"another-secret-another-secret-another!",
        &TestGateway::claims_for(&alice),
    );
    let response = gateway.get("/pub/x", &[&bearer(&foreign)]).await;
    response.assert_status(200);
    let forwarded = gateway.upstream.last().expect("forwarded");
    assert_eq!(forwarded.header("x-auth-user"), None);
    let malformed = gateway.get("/pub/y", &["Authorization: Bearer"]).await;
    malformed.assert_status(200);
    let (_, text) = scrape(&gateway).await;
    let samples = parse(&text);
    let rejections = |reason: &str| {
        value(
            &samples,
            "gatehouse_token_rejections_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(rejections("bad_signature"), Some(1.0), "{text}");
    assert_eq!(rejections("malformed"), Some(1.0), "{text}");
}
