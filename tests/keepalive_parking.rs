//! Idle keep-alive connections are parked after about a second (hyper's buffers freed,
//! the socket kept: benches/RESULTS.md, memory) and resume without the client noticing:
//! the next request on the same socket is served, whole, even when it is split across
//! reads, pipelined or larger than the first read; `idle_timeout` and shutdown still apply
//! to parked connections; a connection whose last request had a body is served on; an
//! upgrade on a resumed connection is spliced and closes cleanly. Attack cases: a refused
//! request's unread body (whole, or still arriving when the connection could park) is
//! never read as a request of its own (hyper drains or closes; parking must not undo that).
//! Parking is watched on `gatehouse_parked_connections` (ops listener): it counts a parked
//! connection from when hyper lets go of it until it resumes or closes.

mod common;

use std::time::{Duration, Instant};

use common::TestGateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PUBLIC: &str = "[[routes]]\npath = \"/**\"\naccess = \"public\"\n";
/// Longer than the park delay (1 s) plus one clock period (0.5 s): for connections that
/// must NOT park, how long they are given to do it wrongly.
const PARK_WINDOW: Duration = Duration::from_millis(1800);

/// Reads until `count` whole responses from the echo upstream (JSON bodies) have arrived.
async fn read_responses(stream: &mut TcpStream, count: usize) -> String {
    let mut got = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if text.matches("HTTP/1.1 ").count() == count && text.ends_with('}') {
            return text;
        }
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .expect("a response within 10 s")
            .expect("read");
        assert!(read > 0, "closed after: {text}");
        got.extend_from_slice(&buffer[..read]);
    }
}

async fn send(stream: &mut TcpStream, bytes: &[u8]) {
    stream.write_all(bytes).await.expect("write");
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
}

async fn start() -> TestGateway {
    TestGateway::start_with("idle_timeout = \"30s\"", PUBLIC).await
}

#[tokio::test]
async fn a_parked_connection_serves_its_next_requests() {
    let gateway = start().await;
    let mut stream = TcpStream::connect(gateway.addr).await.expect("connect");
    for path in ["/first", "/after-parking", "/after-parking-again"] {
        send(&mut stream, &get(path)).await;
        let response = read_responses(&mut stream, 1).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(
            response.contains(&format!("\"target\":\"{path}\"")),
            "{response}"
        );
        gateway.wait_for_parked(1).await;
    }
    assert_eq!(gateway.upstream.count(), 3);
    drop(stream);
    gateway.wait_for_parked(0).await;
}

#[tokio::test]
async fn back_to_back_requests_on_one_connection_are_all_answered() {
    let gateway = start().await;
    let mut stream = TcpStream::connect(gateway.addr).await.expect("connect");
    for round in 0..3 {
        for i in 0..20 {
            send(&mut stream, &get(&format!("/burst/{round}/{i}"))).await;
            let response = read_responses(&mut stream, 1).await;
            assert!(
                response.contains(&format!("/burst/{round}/{i}\"")),
                "{response}"
            );
        }
        gateway.wait_for_parked(1).await;
    }
    assert_eq!(gateway.upstream.count(), 60);
}

#[tokio::test]
async fn a_request_split_across_reads_after_parking_is_read_whole() {
    let gateway = start().await;
    let mut stream = TcpStream::connect(gateway.addr).await.expect("connect");
    send(&mut stream, &get("/first")).await;
    read_responses(&mut stream, 1).await;
    gateway.wait_for_parked(1).await;
    send(&mut stream, b"GET /spl").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    send(&mut stream, b"it?q=1 HTTP/1.1\r\nHost: x\r\n").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    send(&mut stream, b"\r\n").await;
    let response = read_responses(&mut stream, 1).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let seen = gateway.upstream.last().expect("forwarded");
    assert_eq!(seen.target, "/split?q=1");
}

#[tokio::test]
async fn pipelined_and_large_requests_after_parking_are_all_answered_in_order() {
    let gateway = start().await;
    let mut stream = TcpStream::connect(gateway.addr).await.expect("connect");
    send(&mut stream, &get("/first")).await;
    read_responses(&mut stream, 1).await;
    gateway.wait_for_parked(1).await;
    // Far more than a parked connection reads at once, then a second request behind it.
    let large = format!(
        "GET /large HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n\r\n",
        "p".repeat(6000)
    );
    let mut both = large.into_bytes();
    both.extend_from_slice(&get("/behind"));
    send(&mut stream, &both).await;
    let responses = read_responses(&mut stream, 2).await;
    let large_at = responses
        .find("\"target\":\"/large\"")
        .expect("/large answered");
    let behind_at = responses
        .find("\"target\":\"/behind\"")
        .expect("/behind answered");
    assert!(large_at < behind_at, "answered in order: {responses}");
    let seen = gateway.upstream.received();
    let padding = seen[1].header("x-padding").expect("padding forwarded");
    assert_eq!(padding.len(), 6000);
}

#[tokio::test]
async fn parked_connections_still_close_at_idle_timeout() {
    let gateway = TestGateway::start_with("idle_timeout = \"3s\"", PUBLIC).await;
    let mut stream = TcpStream::connect(gateway.addr).await.expect("connect");
    send(&mut stream, &get("/a")).await;
    read_responses(&mut stream, 1).await;
    let started = Instant::now();
    gateway.wait_for_parked(1).await;
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
        .await
        .expect("closed within 10 s");
    assert!(matches!(read, Ok(0) | Err(_)), "nothing but EOF: {read:?}");
    let closed = started.elapsed();
    assert!(
        closed >= Duration::from_millis(2500),
        "closed too early: {closed:?}"
    );
    assert!(
        closed < Duration::from_secs(6),
        "closed too late: {closed:?}"
    );
    gateway.wait_for_parked(0).await;
}

#[tokio::test]
async fn a_connection_whose_last_request_had_a_body_keeps_working_after_idling() {
    let gateway = start().await;
    let mut stream = TcpStream::connect(gateway.addr).await.expect("connect");
    send(
        &mut stream,
        b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    let response = read_responses(&mut stream, 1).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    tokio::time::sleep(PARK_WINDOW).await;
    assert_eq!(
        gateway.parked_connections().await,
        0,
        "served on, not parked"
    );
    send(&mut stream, &get("/next")).await;
    let response = read_responses(&mut stream, 1).await;
    assert!(response.contains("\"target\":\"/next\""), "{response}");
    assert_eq!(gateway.upstream.count(), 2);
}

#[tokio::test]
async fn shutdown_closes_parked_connections_at_once() {
    let mut gateway =
        TestGateway::start_with("idle_timeout = \"30s\"\nshutdown_grace = \"20s\"", PUBLIC).await;
    let mut stream = TcpStream::connect(gateway.addr).await.expect("connect");
    send(&mut stream, &get("/a")).await;
    read_responses(&mut stream, 1).await;
    gateway.wait_for_parked(1).await;
    let started = Instant::now();
    gateway.stop().await;
    let stopped = started.elapsed();
    assert!(
        stopped < Duration::from_secs(5),
        "drain waited on a parked connection: {stopped:?}"
    );
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
        .await
        .expect("closed");
    assert!(matches!(read, Ok(0) | Err(_)), "nothing but EOF: {read:?}");
}

#[tokio::test]
async fn a_websocket_upgrade_on_a_resumed_connection_is_spliced_and_closes_cleanly() {
    let gateway = start().await;
    let mut stream = TcpStream::connect(gateway.addr).await.expect("connect");
    send(&mut stream, &get("/first")).await;
    read_responses(&mut stream, 1).await;
    gateway.wait_for_parked(1).await;
    send(
        &mut stream,
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await;
    let mut got = Vec::new();
    let mut buffer = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut buffer).await.expect("read");
        assert!(read > 0, "closed before the 101");
        got.extend_from_slice(&buffer[..read]);
    }
    let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    send(&mut stream, b"ping after parking").await;
    let mut echoed = [0u8; 18];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed))
        .await
        .expect("echo in time")
        .expect("echo");
    assert_eq!(&echoed, b"ping after parking");
    assert_eq!(
        gateway.parked_connections().await,
        0,
        "resumed, then spliced"
    );
    // Closing our side ends the splice, and the gateway's close reaches us (no socket
    // left half-open by the held-back shutdown of a parked connection).
    stream.shutdown().await.expect("shutdown");
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
        .await
        .expect("the gateway closed its side");
    assert!(matches!(read, Ok(0) | Err(_)), "nothing but EOF: {read:?}");
}

/// A refused POST whose body smuggles a request; `split` sends the body's second half only
/// after the connection had time to park.
async fn refused_post_with_a_smuggled_request(split: bool) {
    // Every path needs a token: the POST is refused before its body is read.
    let gateway = TestGateway::start_with("idle_timeout = \"30s\"", "").await;
    let smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        smuggled.len()
    );
    let (now, later) = smuggled.split_at(if split { 10 } else { smuggled.len() });
    let mut stream = TcpStream::connect(gateway.addr).await.expect("connect");
    send(&mut stream, head.as_bytes()).await;
    send(&mut stream, now).await;
    let mut got = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("HTTP/1.1 401") {
        let read = stream.read(&mut buffer).await.expect("read");
        assert!(read > 0, "closed before the 401");
        got.extend_from_slice(&buffer[..read]);
    }
    tokio::time::sleep(PARK_WINDOW).await;
    assert_eq!(gateway.parked_connections().await, 0, "never parked");
    // The rest of the body may meet a closed socket: that is one of the right outcomes.
    let _ = stream.write_all(later).await;
    let more = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buffer)).await;
    if let Ok(Ok(read)) = more {
        let text = String::from_utf8_lossy(&buffer[..read]);
        assert!(!text.contains("HTTP/1.1"), "a second response: {text}");
    }
    assert_eq!(
        gateway.upstream.count(),
        0,
        "{:?}",
        gateway.upstream.received()
    );
}

#[tokio::test]
async fn an_unread_request_body_is_never_replayed_as_a_request_after_idling() {
    refused_post_with_a_smuggled_request(false).await;
}

#[tokio::test]
async fn a_request_body_still_arriving_when_the_connection_could_park_is_never_replayed() {
    refused_post_with_a_smuggled_request(true).await;
}
