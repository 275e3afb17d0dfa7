//! Malformed and hostile request framing (SPEC §5, §7): oversized heads get 431, smuggling
//! shapes get 400 or a closed connection and are never forwarded as two requests, and
//! nothing yields a 500.

mod common;

use common::TestGateway;

const PUBLIC: &str = "[[routes]]\npath = \"/**\"\naccess = \"public\"\n";

#[tokio::test]
async fn oversized_request_heads_get_431() {
    let gateway = TestGateway::start(PUBLIC).await;
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(70_000)
    );
    assert_eq!(gateway.raw(big.as_bytes()).await.status, 431);
    let mut many = String::from("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for i in 0..300 {
        many.push_str(&format!("X-H{i}: 1\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(gateway.raw(many.as_bytes()).await.status, 431);
    assert_eq!(gateway.upstream.count(), 0);
}

/// Each shape must get 400, or exactly one response after which the connection closes
/// (hyper lets Transfer-Encoding win over Content-Length and disables keep-alive, as
/// RFC 9112 §6.3 allows). Either way the upstream never sees the smuggled request.
#[tokio::test]
async fn smuggling_shapes_are_refused_and_never_become_two_requests() {
    let gateway = TestGateway::start(PUBLIC).await;
    let shapes: [(&[u8], bool); 6] = [
        (b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", false),
        (b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", false),
        (b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcdGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", true),
        (b"GET /a HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n Transfer-Encoding: chunked\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", true),
        (b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", true),
        (b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", true),
    ];
    for (shape, must_be_400) in shapes {
        let started = std::time::Instant::now();
        let response = gateway.raw(shape).await;
        let text = String::from_utf8_lossy(shape);
        if must_be_400 {
            assert_eq!(response.status, 400, "{text}");
        } else {
            assert!(response.status == 400 || response.status == 200, "{text}");
        }
        let responses = response
            .raw
            .windows(9)
            .filter(|w| w == b"HTTP/1.1 ")
            .count();
        assert_eq!(responses, 1, "a second response came back for {text}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "connection left open for {text}"
        );
    }
    assert!(
        gateway
            .upstream
            .received()
            .iter()
            .all(|r| !r.target.contains("smuggled")),
        "a smuggled request reached the upstream"
    );
    assert!(gateway
        .upstream
        .received()
        .iter()
        .all(|r| r.header("content-length").is_none() || r.header("transfer-encoding").is_none()));
}

#[tokio::test]
async fn non_utf8_header_values_and_odd_methods_never_yield_500() {
    let gateway = TestGateway::start(PUBLIC).await;
    let cases: [&[u8]; 5] = [
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: \xff\xfe\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n",
        b"BREW / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
    ];
    for case in cases {
        let response = gateway.raw(case).await;
        assert!(
            response.status < 500,
            "{} -> {}",
            String::from_utf8_lossy(case),
            response.status
        );
    }
}

#[tokio::test]
async fn garbage_instead_of_http_closes_the_connection_without_forwarding() {
    let gateway = TestGateway::start(PUBLIC).await;
    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
        b"HELLO\r\n\r\n",
        b"GET\r\n\r\n",
        b"\r\n\r\n\r\n",
    ] {
        let mut stream = tokio::net::TcpStream::connect(gateway.addr)
            .await
            .expect("connect");
        tokio::io::AsyncWriteExt::write_all(&mut stream, garbage)
            .await
            .expect("write");
        let mut out = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut out),
        )
        .await;
        assert!(
            out.is_empty() || out.starts_with(b"HTTP/1.1 400"),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
    }
    assert_eq!(gateway.upstream.count(), 0);
}

/// RFC 9112 §3.2: an HTTP/1.1 request with no Host, or with two, is 400 and never
/// forwarded (the duplicate used to reach the upstream twice).
#[tokio::test]
async fn a_missing_or_repeated_host_is_400_and_never_forwarded() {
    let gateway = TestGateway::start(PUBLIC).await;
    let shapes: [&[u8]; 4] = [
        b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: a.example\r\nhost: a.example\r\nConnection: close\r\n\r\n",
        b"GET http://a.example/a HTTP/1.1\r\nConnection: close\r\n\r\n",
    ];
    for shape in shapes {
        let response = gateway.raw(shape).await;
        let text = String::from_utf8_lossy(shape);
        response.assert_status(400);
        assert_eq!(response.error_code(), "invalid_request", "{text}");
    }
    // Not the auth endpoints either.
    let response = gateway
        .raw(b"GET /auth/me HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n")
        .await;
    response.assert_status(400);
    assert_eq!(gateway.upstream.count(), 0);
    // One Host, and HTTP/1.0 without one, are served.
    let response = gateway
        .raw(b"GET /a HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
        .await;
    response.assert_status(200);
    let response = gateway.raw(b"GET /a HTTP/1.0\r\n\r\n").await;
    response.assert_status(200);
    assert_eq!(gateway.upstream.count(), 2);
    let received = gateway.upstream.received();
    assert_eq!(received[0].all("host"), vec!["a.example"]);
    // Without a Host the upstream gets its own authority, and no X-Forwarded-Host.
    let authority = gateway.upstream.addr.to_string();
    assert_eq!(received[1].all("host"), vec![authority.as_str()]);
    assert!(received[1].all("x-forwarded-host").is_empty());
}
