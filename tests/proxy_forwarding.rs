//! Forwarding (SPEC §3.5): method, body and query kept, hop-by-hop headers removed,
//! forwarding headers set, Authorization withheld unless configured, 502/504, bodies
//! streamed, upgrades spliced, h2c accepted.

mod common;

use std::time::Duration;

use common::{bearer, TestGateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PUBLIC: &str = "[[routes]]\npath = \"/public/**\"\naccess = \"public\"\n";

#[tokio::test]
async fn method_query_body_and_host_are_forwarded() {
    let gateway = TestGateway::start(PUBLIC).await;
    let response = gateway
        .request(
            "PUT",
            "/public/items?id=7&x=a%20b",
            &["Content-Type: text/plain"],
            b"hello body",
        )
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-upstream"), Some("echo"));
    let seen = gateway.upstream.last().expect("forwarded");
    assert_eq!(seen.method, "PUT");
    assert_eq!(seen.target, "/public/items?id=7&x=a%20b");
    assert_eq!(seen.body_len, 10);
    assert_eq!(seen.header("host"), Some("gateway.test"));
    assert_eq!(seen.header("x-forwarded-host"), Some("gateway.test"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert!(seen.header("x-request-id").is_some());
    assert_eq!(response.header("x-request-id"), seen.header("x-request-id"));
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_including_those_named_in_connection() {
    let gateway = TestGateway::start(PUBLIC).await;
    let response = gateway
        .get(
            "/public/x",
            &[
                "Connection: X-Hop-Secret, close",
                "X-Hop-Secret: 1",
                "Keep-Alive: timeout=5",
                "TE: trailers",
                "Proxy-Authorization: Basic eA==",
                "X-End-To-End: kept",
            ],
        )
        .await;
    assert_eq!(response.status, 200);
    let seen = gateway.upstream.last().expect("forwarded");
    for gone in ["x-hop-secret", "keep-alive", "te", "proxy-authorization"] {
        assert!(seen.header(gone).is_none(), "{gone} was forwarded");
    }
    assert_eq!(seen.header("x-end-to-end"), Some("kept"));
}

#[tokio::test]
async fn every_connection_field_counts_and_repeated_headers_keep_their_order() {
    let gateway = TestGateway::start(PUBLIC).await;
    // The harness's own `Connection: close` is a third field.
    let response = gateway
        .get(
            "/public/x",
            &[
                "X-Dup: a",
                "Connection: X-Hop-One",
                "X-Hop-One: 1",
                "x-dup: b",
                "connection: keep-alive, X-HOP-TWO",
                "X-Hop-Two: 2",
                "Upgrade: websocket",
                "X-Dup: c",
            ],
        )
        .await;
    assert_eq!(response.status, 200);
    let seen = gateway.upstream.last().expect("forwarded");
    for gone in ["x-hop-one", "x-hop-two", "upgrade"] {
        assert!(seen.header(gone).is_none(), "{gone} was forwarded");
    }
    assert_eq!(seen.all("x-dup"), ["a", "b", "c"]);
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
}

#[tokio::test]
async fn the_target_sent_is_the_normalized_path_and_the_original_query() {
    let gateway = TestGateway::start(PUBLIC).await;
    for (sent, forwarded) in [
        // Already normal: the client's own target, kept as it came.
        ("/public/items?id=7&x=a%20b", "/public/items?id=7&x=a%20b"),
        ("http://other.example/public/c?q=1", "/public/c?q=1"),
        ("http://other.example/public/c", "/public/c"),
        // Not normal: rebuilt from the normalized path, the query unchanged.
        ("/public/a/./../d?x=%2e%2e/y", "/public/d?x=%2e%2e/y"),
        ("http://other.example/public//e/?k", "/public/e/?k"),
    ] {
        let response = gateway.get(sent, &[]).await;
        assert_eq!(response.status, 200, "{sent}");
        let seen = gateway.upstream.last().expect("forwarded");
        assert_eq!(seen.target, forwarded, "{sent}");
    }
}

#[tokio::test]
async fn authorization_is_withheld_from_the_upstream_unless_configured() {
    let gateway = TestGateway::start("").await;
    let alice = gateway.user("alice", &[]).await;
    assert_eq!(
        gateway.get("/api", &[&bearer(&alice.token)]).await.status,
        200
    );
    assert!(gateway
        .upstream
        .last()
        .expect("forwarded")
        .header("authorization")
        .is_none());

    let gateway = TestGateway::start("[headers]\nforward_authorization = true\n").await;
    let alice = gateway.user("alice", &[]).await;
    assert_eq!(
        gateway.get("/api", &[&bearer(&alice.token)]).await.status,
        200
    );
    let expected = format!("Bearer {}", alice.token);
    assert_eq!(
        gateway
            .upstream
            .last()
            .expect("forwarded")
            .header("authorization"),
        Some(expected.as_str())
    );
}

#[tokio::test]
async fn an_unreachable_upstream_is_502_with_the_json_body() {
    let dead = common::ClosedPort::reserve();
    let gateway = TestGateway::start(&format!(
        "[upstreams.dead]\nurl = \"http://127.0.0.1:{}\"\nconnect_timeout = \"500ms\"\n\n[[routes]]\npath = \"/dead/**\"\naccess = \"public\"\nupstream = \"dead\"\n",
        dead.addr.port()
    ))
    .await;
    let response = gateway.get("/dead/x", &[]).await;
    assert_eq!(response.status, 502);
    assert_eq!(response.error_code(), "bad_gateway");
    assert_eq!(response.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn a_slow_upstream_is_504_after_its_timeout() {
    let gateway = TestGateway::start(
        "[upstreams.slow]\nurl = \"http://{UPSTREAM}\"\ntimeout = \"300ms\"\n\n[[routes]]\npath = \"/slow/**\"\naccess = \"public\"\nupstream = \"slow\"\n",
    )
    .await;
    let started = std::time::Instant::now();
    let response = gateway.get("/slow/3000", &[]).await;
    assert_eq!(response.status, 504);
    assert_eq!(response.error_code(), "gateway_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the timeout, not the upstream, ended it"
    );
    assert_eq!(gateway.get("/slow/10", &[]).await.status, 200);
}

#[tokio::test]
async fn large_bodies_stream_both_ways() {
    let gateway = TestGateway::start(PUBLIC).await;
    // Upload 64 MiB chunked without the test holding it in memory.
    let mut stream = tokio::net::TcpStream::connect(gateway.addr)
        .await
        .expect("connect");
    stream
        .write_all(b"POST /public/drain HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .expect("head");
    let chunk = vec![b'u'; 1 << 20];
    for _ in 0..64 {
        stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .expect("size");
        stream.write_all(&chunk).await.expect("chunk");
        stream.write_all(b"\r\n").await.expect("crlf");
    }
    stream.write_all(b"0\r\n\r\n").await.expect("end");
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.expect("read");
    let response = common::parse_response(&out);
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["body_len"], 64 << 20);

    // Download 32 MiB.
    let response = gateway.get("/public/download/33554432", &[]).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), 32 << 20);
}

#[tokio::test]
async fn websocket_upgrades_are_spliced_after_authorization() {
    let gateway = TestGateway::start("").await;
    let alice = gateway.user("alice", &[]).await;
    // Unauthorized upgrade: refused, never forwarded.
    let response = gateway
        .raw(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        .await;
    assert_eq!(response.status, 401);
    assert_eq!(gateway.upstream.count(), 0);

    let mut stream = tokio::net::TcpStream::connect(gateway.addr)
        .await
        .expect("connect");
    let head = format!(
        "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nAuthorization: Bearer {}\r\n\r\n",
        alice.token
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut buffer = vec![0u8; 4096];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buffer).await.expect("read");
        assert!(n > 0, "closed before the 101");
        got.extend_from_slice(&buffer[..n]);
    }
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 101"), "{text}");
    assert!(text.contains("upgrade: websocket"), "{text}");
    stream
        .write_all(b"ping over the splice")
        .await
        .expect("write");
    let mut echoed = vec![0u8; 20];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed))
        .await
        .expect("echo in time")
        .expect("echo");
    assert_eq!(&echoed, b"ping over the splice");
    let seen = gateway.upstream.last().expect("forwarded");
    assert_eq!(seen.header("x-auth-user"), Some("alice"));
    assert_eq!(seen.header("upgrade"), Some("websocket"));
}

#[tokio::test]
async fn h2c_prior_knowledge_clients_are_served() {
    let gateway = TestGateway::start(PUBLIC).await;
    let stream = tokio::net::TcpStream::connect(gateway.addr)
        .await
        .expect("connect");
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(connection);
    let request = http::Request::builder()
        .uri(format!("http://{}/public/h2?x=1", gateway.addr))
        .header("x-auth-user", "root")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let seen = gateway.upstream.last().expect("forwarded");
    assert_eq!(seen.target, "/public/h2?x=1");
    assert!(seen.header("x-auth-user").is_none());
    assert_eq!(seen.header("host"), Some(gateway.addr.to_string().as_str()));
}

#[tokio::test]
async fn keep_alive_clients_are_served_many_requests_on_one_connection() {
    let gateway = TestGateway::start(PUBLIC).await;
    let mut stream = tokio::net::TcpStream::connect(gateway.addr)
        .await
        .expect("connect");
    for i in 0..5 {
        stream
            .write_all(format!("GET /public/{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .expect("write");
        let mut got = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let n = stream.read(&mut buffer).await.expect("read");
            assert!(n > 0);
            got.extend_from_slice(&buffer[..n]);
            if got.ends_with(b"}") {
                break;
            }
        }
        assert!(got.starts_with(b"HTTP/1.1 200"));
    }
    assert_eq!(gateway.upstream.count(), 5);
}
