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
