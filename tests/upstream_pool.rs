//! The upstream connection pool: keep-alive connections are reused, a streaming response
//! keeps its connection to itself, connections the upstream closed are never used again,
//! and an HTTP/1.0 upstream does not change how gatehouse answers its own client.
//! (HTTP/2 clients' Host: tests/proxy_forwarding.rs, h2c.)

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::TestGateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PUBLIC: &str = "[[routes]]\npath = \"/**\"\naccess = \"public\"\n";

fn connections_used(gateway: &TestGateway) -> usize {
    let peers: HashSet<_> = gateway.upstream.received().iter().map(|r| r.peer).collect();
    peers.len()
}

#[tokio::test]
async fn sequential_requests_reuse_one_upstream_connection() {
    let gateway = TestGateway::start(PUBLIC).await;
    for i in 0..10 {
        gateway
            .get(&format!("/seq/{i}"), &[])
            .await
            .assert_status(200);
    }
    assert_eq!(gateway.upstream.count(), 10);
    assert_eq!(
        connections_used(&gateway),
        1,
        "{:?}",
        gateway.upstream.received()
    );
}

#[tokio::test]
async fn a_streaming_response_keeps_its_connection_and_others_are_served_meanwhile() {
    let gateway = TestGateway::start(PUBLIC).await;
    // A large download the client does not read: its upstream connection stays busy.
    let mut stalled = TcpStream::connect(gateway.addr).await.expect("connect");
    stalled
        .write_all(b"GET /download/67108864 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut first = [0u8; 64];
    let read = stalled.read(&mut first).await.expect("response starts");
    assert!(first[..read].starts_with(b"HTTP/1.1 200"));
    for i in 0..3 {
        let response = tokio::time::timeout(
            Duration::from_secs(5),
            gateway.get(&format!("/meanwhile/{i}"), &[]),
        )
        .await
        .expect("not queued behind the stalled download");
        response.assert_status(200);
    }
    assert_eq!(
        connections_used(&gateway),
        2,
        "the download's connection and one reused by the others"
    );
}

/// An upstream that answers one request per connection with keep-alive framing, then
/// closes the connection shortly after, as servers do at their keep-alive timeout.
async fn closing_upstream() -> std::net::SocketAddr {
    one_answer_per_connection(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await
}

/// An upstream that reads one request head per connection, writes `answer`, and closes.
async fn one_answer_per_connection(answer: &'static [u8]) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let _ = stream.write_all(answer).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn connections_the_upstream_closed_are_not_reused() {
    let closing = closing_upstream().await;
    let extra = format!(
        "[upstreams.closing]\nurl = \"http://{closing}\"\n\n[[routes]]\npath = \"/**\"\naccess = \"public\"\nupstream = \"closing\"\n"
    );
    let gateway = TestGateway::start(&extra).await;
    for i in 0..5 {
        let response = gateway.get(&format!("/c/{i}"), &[]).await;
        response.assert_status(200);
        assert_eq!(response.body, b"ok");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn an_http10_upstream_answer_reaches_an_http11_client_as_http11_on_a_kept_connection() {
    let old = one_answer_per_connection(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
    let extra = format!(
        "[upstreams.old]\nurl = \"http://{old}\"\n\n[[routes]]\npath = \"/**\"\naccess = \"public\"\nupstream = \"old\"\n"
    );
    let gateway = TestGateway::start(&extra).await;
    let mut stream = TcpStream::connect(gateway.addr).await.expect("connect");
    for path in ["/one", "/two"] {
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .expect("write (the connection is still open)");
        let mut got = Vec::new();
        let mut buffer = [0u8; 1024];
        while !got.ends_with(b"ok") {
            let read = stream.read(&mut buffer).await.expect("read");
            assert!(read > 0, "closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buffer[..read]);
        }
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    }
}

/// A client keep-alive connection that sends requests one after another (as a load
/// generator does): after its first response it is busy, not parked between requests
/// (src/server/conn/), which is the path a benchmark measures.
struct BusyClient {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
    gateway: std::net::SocketAddr,
}

impl BusyClient {
    async fn connect(gateway: &TestGateway) -> BusyClient {
        let stream = TcpStream::connect(gateway.addr).await.expect("connect");
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("handshake");
        tokio::spawn(connection.with_upgrades());
        BusyClient {
            sender,
            gateway: gateway.addr,
        }
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> http::Response<hyper::body::Incoming> {
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.gateway.to_string())
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .expect("request");
        self.sender
            .ready()
            .await
            .expect("the connection is still open");
        tokio::time::timeout(Duration::from_secs(10), self.sender.send_request(request))
            .await
            .expect("answered in time")
            .expect("response")
    }

    /// Status and whole body.
    async fn call(&mut self, method: &str, path: &str, body: Vec<u8>) -> (u16, bytes::Bytes) {
        use http_body_util::BodyExt;
        let response = self.send(method, path, body).await;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.expect("body");
        (status, body.to_bytes())
    }
}

#[tokio::test]
async fn a_busy_client_connection_streams_both_ways_and_upgrades_on_one_upstream_connection() {
    let gateway = TestGateway::start(PUBLIC).await;
    let mut client = BusyClient::connect(&gateway).await;
    for i in 0..10 {
        let (status, _) = client.call("GET", &format!("/busy/{i}"), Vec::new()).await;
        assert_eq!(status, 200);
    }
    let (status, body) = client.call("POST", "/drain", vec![b'u'; 3 << 20]).await;
    assert_eq!(status, 200);
    let echo: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(echo["body_len"], 3 << 20);
    let (status, body) = client.call("GET", "/download/8388608", Vec::new()).await;
    assert_eq!((status, body.len()), (200, 8 << 20));
    let (status, _) = client.call("GET", "/after-the-bodies", Vec::new()).await;
    assert_eq!(status, 200);
    assert_eq!(gateway.upstream.count(), 13);
    assert_eq!(
        connections_used(&gateway),
        1,
        "{:?}",
        gateway.upstream.received()
    );

    // The same client connection switches protocols: the upstream connection goes with it.
    let request = http::Request::builder()
        .uri("/ws")
        .header("host", "x")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    client.sender.ready().await.expect("ready");
    let response = client.sender.send_request(request).await.expect("101");
    assert_eq!(response.status(), 101);
    let upgraded = tokio::time::timeout(Duration::from_secs(5), hyper::upgrade::on(response))
        .await
        .expect("upgraded in time")
        .expect("upgraded");
    let mut upgraded = hyper_util::rt::TokioIo::new(upgraded);
    upgraded.write_all(b"over the splice").await.expect("write");
    let mut echoed = [0u8; 15];
    tokio::time::timeout(Duration::from_secs(5), upgraded.read_exact(&mut echoed))
        .await
        .expect("echo in time")
        .expect("echo");
    assert_eq!(&echoed, b"over the splice");
    assert_eq!(connections_used(&gateway), 1);

    // That connection is the splice's now; the next client gets a new one.
    let mut next = BusyClient::connect(&gateway).await;
    for i in 0..3 {
        let (status, _) = next.call("GET", &format!("/next/{i}"), Vec::new()).await;
        assert_eq!(status, 200);
    }
    assert_eq!(connections_used(&gateway), 2);
}

#[tokio::test]
async fn a_closed_client_connection_hands_its_upstream_connection_to_the_next() {
    let gateway = TestGateway::start(PUBLIC).await;
    for round in 0..3 {
        let mut client = BusyClient::connect(&gateway).await;
        for i in 0..5 {
            let (status, _) = client
                .call("GET", &format!("/round/{round}/{i}"), Vec::new())
                .await;
            assert_eq!(status, 200);
        }
        drop(client);
        // The gateway notices the close and hands the connection back.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(gateway.upstream.count(), 15);
    assert_eq!(
        connections_used(&gateway),
        1,
        "{:?}",
        gateway.upstream.received()
    );
}

#[tokio::test]
async fn a_busy_client_connection_survives_upstream_closes_timeouts_and_refusals() {
    let closing = closing_upstream().await;
    let dead = common::ClosedPort::reserve();
    let extra = format!(
        "[upstreams.closing]\nurl = \"http://{closing}\"\n\n\
         [upstreams.dead]\nurl = \"http://127.0.0.1:{}\"\nconnect_timeout = \"500ms\"\n\n\
         [upstreams.slow]\nurl = \"http://{{UPSTREAM}}\"\ntimeout = \"300ms\"\n\n\
         [[routes]]\npath = \"/closing/**\"\naccess = \"public\"\nupstream = \"closing\"\n\n\
         [[routes]]\npath = \"/dead/**\"\naccess = \"public\"\nupstream = \"dead\"\n\n\
         [[routes]]\npath = \"/slow/**\"\naccess = \"public\"\nupstream = \"slow\"\n\n{PUBLIC}",
        dead.addr.port()
    );
    let gateway = TestGateway::start(&extra).await;
    let mut client = BusyClient::connect(&gateway).await;
    for i in 0..4 {
        // The closing upstream ends each connection 100 ms after its answer.
        let (status, body) = client
            .call("GET", &format!("/closing/{i}"), Vec::new())
            .await;
        assert_eq!((status, &body[..]), (200, &b"ok"[..]));
        let (status, _) = client.call("GET", &format!("/echo/{i}"), Vec::new()).await;
        assert_eq!(status, 200);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for _ in 0..2 {
        let (status, _) = client.call("GET", "/dead/x", Vec::new()).await;
        assert_eq!(status, 502);
        let (status, _) = client.call("GET", "/slow/3000", Vec::new()).await;
        assert_eq!(status, 504);
        let (status, _) = client.call("GET", "/slow/10", Vec::new()).await;
        assert_eq!(status, 200);
    }
}
