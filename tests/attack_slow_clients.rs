//! Slow and greedy clients (SPEC §7): slowloris heads and silent connections are cut by
//! `header_timeout` without delaying others, idle keep-alive connections close after
//! `idle_timeout`, and past `max_connections` new connections wait without hurting the
//! ones already served (spliced WebSockets hold their slot too).

mod common;

use std::time::{Duration, Instant};

use common::TestGateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PUBLIC: &str = "[[routes]]\npath = \"/**\"\naccess = \"public\"\n";

/// Reads until the peer closes; returns how long that took (capped).
async fn time_until_closed(stream: &mut TcpStream, cap: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(
            cap.saturating_sub(started.elapsed()),
            stream.read(&mut buffer),
        )
        .await
        {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

async fn one_request(stream: &mut TcpStream, path: &str) -> Vec<u8> {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut got = Vec::new();
    let mut buffer = [0u8; 8192];
    while !got.ends_with(b"}") {
        let n = stream.read(&mut buffer).await.expect("read");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buffer[..n]);
    }
    got
}

#[tokio::test]
async fn a_dribbled_request_head_is_cut_off_by_header_timeout_while_others_are_served() {
    let gateway =
        TestGateway::start_with("header_timeout = \"1s\"\nidle_timeout = \"30s\"", PUBLIC).await;
    let mut slow = TcpStream::connect(gateway.addr).await.expect("connect");
    let dribbler = tokio::spawn(async move {
        let started = Instant::now();
        for byte in b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n" {
            if slow.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let closed = time_until_closed(&mut slow, Duration::from_secs(10)).await;
        (started.elapsed(), closed)
    });
    // Meanwhile a normal client is served promptly.
    let started = Instant::now();
    let response = gateway.get("/fast", &[]).await;
    assert_eq!(response.status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "normal clients are not delayed"
    );
    let (elapsed, _) = dribbler.await.expect("dribbler");
    assert!(
        elapsed < Duration::from_secs(5),
        "slowloris connection lived {elapsed:?}"
    );
    assert_eq!(
        gateway.upstream.count(),
        1,
        "the dribbled request never reached the upstream"
    );
}

#[tokio::test]
async fn a_connection_that_never_sends_a_byte_is_closed_after_header_timeout() {
    let gateway =
        TestGateway::start_with("header_timeout = \"500ms\"\nidle_timeout = \"30s\"", PUBLIC).await;
    let mut silent = TcpStream::connect(gateway.addr).await.expect("connect");
    let closed = time_until_closed(&mut silent, Duration::from_secs(10)).await;
    let closed = closed.expect("the server closed the silent connection");
    assert!(closed < Duration::from_secs(5), "{closed:?}");
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_after_idle_timeout() {
    let gateway =
        TestGateway::start_with("header_timeout = \"5s\"\nidle_timeout = \"1s\"", PUBLIC).await;
    let mut stream = TcpStream::connect(gateway.addr).await.expect("connect");
    let first = one_request(&mut stream, "/a").await;
    assert!(first.starts_with(b"HTTP/1.1 200"));
    let closed = time_until_closed(&mut stream, Duration::from_secs(10))
        .await
        .expect("closed");
    assert!(
        closed >= Duration::from_millis(500),
        "closed too early: {closed:?}"
    );
    assert!(
        closed < Duration::from_secs(5),
        "closed too late: {closed:?}"
    );
}

#[tokio::test]
async fn a_slow_upstream_response_is_not_cut_by_idle_timeout() {
    let gateway = TestGateway::start_with("idle_timeout = \"500ms\"", PUBLIC).await;
    let response = gateway.get("/slow/1500", &[]).await;
    assert_eq!(response.status, 200, "in-flight requests are not idle");
}

#[tokio::test]
async fn past_max_connections_new_connections_wait_and_served_ones_keep_working() {
    let gateway =
        TestGateway::start_with("max_connections = 2\nidle_timeout = \"30s\"", PUBLIC).await;
    let mut first = TcpStream::connect(gateway.addr).await.expect("connect");
    let mut second = TcpStream::connect(gateway.addr).await.expect("connect");
    assert!(one_request(&mut first, "/1")
        .await
        .starts_with(b"HTTP/1.1 200"));
    assert!(one_request(&mut second, "/2")
        .await
        .starts_with(b"HTTP/1.1 200"));

    // The third waits in the backlog: no answer while both slots are held.
    let mut third = waiting_in_backlog(&gateway).await;

    // Connections already served are unaffected.
    assert!(one_request(&mut first, "/1-again")
        .await
        .starts_with(b"HTTP/1.1 200"));

    // Freeing a slot lets the waiting connection in.
    drop(second);
    served_once_a_slot_frees(&mut third).await;
}

/// A connection whose request gets no answer for half a second: it waits in the backlog.
async fn waiting_in_backlog(gateway: &TestGateway) -> TcpStream {
    let mut waiting = TcpStream::connect(gateway.addr)
        .await
        .expect("kernel accepts into backlog");
    waiting
        .write_all(b"GET /waiting HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buffer = [0u8; 1024];
    let early = tokio::time::timeout(Duration::from_millis(500), waiting.read(&mut buffer)).await;
    assert!(early.is_err(), "served beyond max_connections");
    waiting
}

async fn served_once_a_slot_frees(waiting: &mut TcpStream) {
    let mut buffer = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), waiting.read(&mut buffer))
        .await
        .expect("served once a slot frees")
        .expect("read");
    assert!(buffer[..n].starts_with(b"HTTP/1.1 200"));
}

/// Opens a WebSocket-style upgrade through the gateway and proves the splice works.
async fn spliced(gateway: &TestGateway) -> TcpStream {
    let mut stream = TcpStream::connect(gateway.addr).await.expect("connect");
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        )
        .await
        .expect("write");
    let mut got = Vec::new();
    let mut buffer = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buffer).await.expect("read");
        assert!(n > 0, "closed before the 101");
        got.extend_from_slice(&buffer[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    stream.write_all(b"ping").await.expect("write");
    let mut echo = [0u8; 4];
    stream.read_exact(&mut echo).await.expect("echo");
    stream
}

#[tokio::test]
async fn spliced_upgrades_count_against_max_connections() {
    let gateway =
        TestGateway::start_with("max_connections = 2\nidle_timeout = \"30s\"", PUBLIC).await;
    let first = spliced(&gateway).await;
    let _second = spliced(&gateway).await;

    // Two open WebSockets hold both slots: a third connection waits in the backlog.
    let mut third = waiting_in_backlog(&gateway).await;

    // Closing one WebSocket frees its slot.
    drop(first);
    served_once_a_slot_frees(&mut third).await;
}
