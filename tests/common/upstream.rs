//! A real HTTP upstream for tests: answers every request with JSON describing what it
//! received (method, target, headers, body length) and records it, so a test can prove
//! that a refused request never reached it.
//!
//! Special paths: `/slow/<ms>` waits before answering (upstream timeout tests);
//! `/ws` accepts an HTTP/1.1 upgrade and echoes bytes back (WebSocket-like splice tests);
//! `/drain` reads the whole body and reports its length (streaming uploads);
//! `/download/<bytes>` streams that many bytes back; a path ending in `/browser-page` is a
//! small HTML page for the browser harness (tests/common/chromium.rs): a script that marks
//! the page and lists `document.cookie`, so a test can tell JavaScript ran (or did not) and
//! what scripts can read, and two cookies set with it, one script-visible and one
//! `__Host-` + `Secure; HttpOnly` (does the browser keep such cookies over this origin?).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// The request-target exactly as it arrived (path and query).
    pub target: String,
    /// Every header, names lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body_len: u64,
    /// The gateway's end of the upstream connection: tells connections apart.
    pub peer: std::net::SocketAddr,
}

impl Received {
    /// Every value of a header.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.all(name).first().copied()
    }
}

/// The running echo upstream.
#[derive(Clone)]
pub struct EchoUpstream {
    pub addr: std::net::SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

type EchoBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

impl EchoUpstream {
    pub async fn start() -> EchoUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    continue;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        handle(request, peer, log.clone())
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        EchoUpstream { addr, received }
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.received.lock().expect("lock").len()
    }

    /// The last request received.
    pub fn last(&self) -> Option<Received> {
        self.received.lock().expect("lock").last().cloned()
    }
}

async fn handle(
    mut request: Request<Incoming>,
    peer: std::net::SocketAddr,
    log: Arc<Mutex<Vec<Received>>>,
) -> Result<Response<EchoBody>, Infallible> {
    let target = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).to_string(),
            )
        })
        .collect();
    let method = request.method().to_string();
    let path = request.uri().path().to_string();

    if path == "/ws" {
        let upgrade = hyper::upgrade::on(&mut request);
        log.lock().expect("lock").push(Received {
            method,
            target,
            headers,
            body_len: 0,
            peer,
        });
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let mut io = TokioIo::new(upgraded);
                let mut buffer = [0u8; 1024];
                while let Ok(n) = io.read(&mut buffer).await {
                    if n == 0 || io.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        let response = Response::builder()
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(Full::new(Bytes::new()).boxed())
            .expect("response");
        return Ok(response);
    }

    let mut body_len = 0u64;
    let mut body = request.into_body();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    body_len += data.len() as u64;
                }
            }
            Err(_) => break,
        }
    }
    let record = Received {
        method: method.clone(),
        target: target.clone(),
        headers: headers.clone(),
        body_len,
        peer,
    };
    log.lock().expect("lock").push(record);

    if let Some(ms) = path
        .rsplit_once("/slow/")
        .map(|(_, rest)| rest)
        .and_then(|s| s.parse::<u64>().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(size) = path
        .rsplit_once("/download/")
        .map(|(_, rest)| rest)
        .and_then(|s| s.parse::<u64>().ok())
    {
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        let chunks = size / chunk.len() as u64;
        let stream = futures_util::stream::iter(
            (0..chunks).map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone()))),
        );
        return Ok(Response::new(StreamBody::new(stream).boxed()));
    }
    if path.ends_with("/browser-page") {
        let response = Response::builder()
            .status(200)
            .header("content-type", "text/html; charset=utf-8")
            .header("set-cookie", "harness_visible=1; Path=/; SameSite=Lax")
            .header(
                "set-cookie",
                "__Host-harness_hidden=1; Secure; HttpOnly; Path=/; SameSite=Lax",
            )
            .body(Full::new(Bytes::from_static(BROWSER_PAGE.as_bytes())).boxed())
            .expect("response");
        return Ok(response);
    }
    let echo = serde_json::json!({
        "method": method,
        "target": target,
        "headers": headers,
        "body_len": body_len,
    });
    let response = Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("x-upstream", "echo")
        .body(Full::new(Bytes::from(echo.to_string())).boxed())
        .expect("response");
    Ok(response)
}

/// The `/browser-page` document: `#js` says "off" until a script says "on", and `#cookies`
/// shows what `document.cookie` lets scripts read.
const BROWSER_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>browser page</title></head>
<body><p id="js">off</p><p id="cookies"></p>
<script>
document.getElementById("js").textContent = "on";
document.getElementById("cookies").textContent = document.cookie;
</script></body></html>
"#;
