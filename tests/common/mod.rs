//! The one test harness: a real echo upstream that records what it received, a real
//! gateway started in process on `127.0.0.1:0` listeners with a temp sled store
//! ([`TestGateway`]; or over a [`flaky_store::FlakyStore`] that can be switched to
//! "unreachable"), the real binary as a child process ([`binary`]), and a raw HTTP/1.1
//! client that sends bytes exactly as written (attack inputs must not be "fixed" by a
//! client library on the way), for any listener of either; a throwaway PostgreSQL
//! ([`postgres`]) for the PostgreSQL store, a real nginx ([`nginx`]) to put in front, and
//! the real JWT peers (PyJWT, jwcrypto, npm jose, HAProxy: [`interop`]) for published keys,
//! the browser pages at the HTTP level ([`browser`]: a browser imitated by its headers), and
//! a real headless Chromium driven over WebDriver ([`chromium`]) for the browser flows.

#![allow(dead_code, unused_imports)]

pub mod accounts;
pub mod binary;
pub mod browser;
pub mod chromium;
pub mod flaky_store;
pub mod interop;
pub mod nginx;
pub mod postgres;
pub mod upstream;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use upstream::{EchoUpstream, Received};

/// The HS256 secret the harness writes to `secret_file` (≥ 32 bytes), for the in-process
/// gateway and the binary alike, so tokens minted here verify in either.
pub const SECRET: &str = "test-secret-test-secret-test-secret!";

/// Generous deadline for anything a healthy gateway does at once.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A gateway under test with its upstream.
pub struct TestGateway {
    pub addr: std::net::SocketAddr,
    pub ops_addr: std::net::SocketAddr,
    pub upstream: EchoUpstream,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    handle: Option<gatehouse::AppHandle>,
    /// A store given by the test instead of the one `[store]` names.
    store: Option<std::sync::Arc<dyn gatehouse::store::Store>>,
}

/// Config text for a test gateway; `{UPSTREAM}` in `extra` becomes the echo upstream's address. `extra` is appended: it may add
/// `[headers]`, `[registration]`, `[log]`, `[login]`, `[upstreams.NAME]` and `[[routes]]`.
pub fn config_text(
    upstream: &str,
    dir: &std::path::Path,
    server_extra: &str,
    extra: &str,
) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
ops_listen = "127.0.0.1:0"
{server_extra}

[store]
path = "{dir}/data"

[tokens]
secret_file = "{dir}/secret"

[passwords]
memory_kib = 64
iterations = 1

[upstreams.default]
url = "http://{upstream}"
connect_timeout = "1s"
timeout = "5s"

{extra}
"#,
        dir = dir.display(),
        extra = extra.replace("{UPSTREAM}", upstream),
    )
}

/// Config text with `tokens_extra` added to its `[tokens]` table.
fn with_tokens(text: &str, tokens_extra: &str) -> String {
    text.replacen("[tokens]\n", &format!("[tokens]\n{tokens_extra}\n"), 1)
}

impl TestGateway {
    /// Starts an upstream and a gateway in front of it.
    pub async fn start(extra: &str) -> TestGateway {
        Self::start_with("", extra).await
    }

    /// As [`Self::start`], with extra `[server]` keys.
    pub async fn start_with(server_extra: &str, extra: &str) -> TestGateway {
        let mut gateway = Self::prepare(server_extra, extra).await;
        gateway.boot().await;
        gateway
    }

    /// As [`Self::start_with`], with extra `[tokens]` keys too (e.g.
    /// `issuer = "https://gw.example"`).
    pub async fn start_with_tokens(
        server_extra: &str,
        tokens_extra: &str,
        extra: &str,
    ) -> TestGateway {
        let mut gateway = Self::prepare(server_extra, extra).await;
        let text = std::fs::read_to_string(&gateway.config_path).expect("read config");
        std::fs::write(&gateway.config_path, with_tokens(&text, tokens_extra))
            .expect("write config");
        gateway.boot().await;
        gateway
    }

    /// As [`Self::start`], over a [`flaky_store::FlakyStore`] on the config's store
    /// path, which the test can switch to answer "unreachable" (SPEC §8 outage).
    /// `store_extra` is added to `[store]` (e.g. `max_stale = "1s"`).
    pub async fn start_flaky(
        extra: &str,
        store_extra: &str,
    ) -> (TestGateway, std::sync::Arc<flaky_store::FlakyStore>) {
        let mut gateway = Self::prepare("", extra).await;
        let text = std::fs::read_to_string(&gateway.config_path).expect("read config");
        let text = text.replacen("[store]\n", &format!("[store]\n{store_extra}\n"), 1);
        std::fs::write(&gateway.config_path, text).expect("write config");
        let store = flaky_store::FlakyStore::open(&gateway.dir.path().join("data"));
        gateway.store = Some(store.clone());
        gateway.boot().await;
        (gateway, store)
    }

    /// The upstream, the temp dir with its secret and config; not started.
    pub async fn prepare(server_extra: &str, extra: &str) -> TestGateway {
        let upstream = EchoUpstream::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("secret"), format!("{SECRET}\n")).expect("secret");
        let config_path = dir.path().join("gateway.toml");
        let text = config_text(&upstream.addr.to_string(), dir.path(), server_extra, extra);
        std::fs::write(&config_path, text).expect("write config");
        TestGateway {
            addr: "127.0.0.1:0".parse().expect("addr"),
            ops_addr: "127.0.0.1:0".parse().expect("addr"),
            upstream,
            dir,
            config_path,
            handle: None,
            store: None,
        }
    }

    async fn boot(&mut self) {
        let config = gatehouse::config::load(&self.config_path).expect("valid config");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let ops = std::net::TcpListener::bind("127.0.0.1:0").expect("bind ops");
        let log = gatehouse::telemetry::LogControl::inert();
        let handle = match &self.store {
            Some(store) => {
                gatehouse::App::start_with_store(
                    &self.config_path,
                    config,
                    listener,
                    ops,
                    log,
                    store.clone(),
                )
                .await
            }
            None => gatehouse::App::start(&self.config_path, config, listener, ops, log).await,
        }
        .expect("gateway starts");
        self.addr = handle.addr;
        self.ops_addr = handle.ops_addr;
        self.handle = Some(handle);
    }

    /// Rewrites the config file (same placeholders as [`config_text`]) and reloads.
    pub fn rewrite_config(&self, server_extra: &str, extra: &str) -> Result<(), String> {
        self.rewrite_config_with_tokens(server_extra, "", extra)
    }

    /// As [`Self::rewrite_config`], with extra `[tokens]` keys too.
    pub fn rewrite_config_with_tokens(
        &self,
        server_extra: &str,
        tokens_extra: &str,
        extra: &str,
    ) -> Result<(), String> {
        let text = config_text(
            &self.upstream.addr.to_string(),
            self.dir.path(),
            server_extra,
            extra,
        );
        std::fs::write(&self.config_path, with_tokens(&text, tokens_extra)).expect("write config");
        self.handle.as_ref().expect("running").reload().map(drop)
    }

    /// Stops the gateway (drain + flush).
    pub async fn stop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.shutdown().await;
        }
    }

    /// Sends raw bytes to the main listener; reads the whole answer until the server closes.
    pub async fn raw(&self, request: &[u8]) -> Response {
        raw(self.addr, request).await
    }

    /// `GET path` with extra header lines (each `Name: value`).
    pub async fn get(&self, path: &str, headers: &[&str]) -> Response {
        self.request("GET", path, headers, b"").await
    }

    /// A request with `Connection: close`, a Host and a Content-Length.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[&str],
        body: &[u8],
    ) -> Response {
        request(self.addr, method, path, headers, body).await
    }

    /// A token signed with the harness secret for arbitrary claims (forgeries included).
    pub fn mint(&self, claims: &serde_json::Value) -> String {
        mint_with(jsonwebtoken::Algorithm::HS256, SECRET.as_bytes(), claims)
    }

    /// Standard claims for `username` with `roles`, valid now.
    pub fn claims(username: &str, roles: &[&str]) -> serde_json::Value {
        let now = now();
        serde_json::json!({
            "iss": "gatehouse", "aud": "gatehouse", "sub": format!("sub-{username}"),
            "username": username, "roles": roles, "iat": now, "nbf": now, "exp": now + 600,
            "jti": format!("jti-{now}-{username}"),
        })
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        // Dropping the handle's sender stops the accept loops.
        self.handle.take();
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Signs claims with any algorithm/secret.
pub fn mint_with(
    alg: jsonwebtoken::Algorithm,
    secret: &[u8],
    claims: &serde_json::Value,
) -> String {
    let mut header = jsonwebtoken::Header::new(alg);
    header.typ = Some("JWT".into());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("sign")
}

/// A parsed HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Everything read, for tests that look at framing.
    pub raw: Vec<u8>,
}

impl Response {
    /// First value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }

    /// The SPEC §5 `error` code.
    pub fn error_code(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// A request with `Connection: close`, a Host and (for bodies, POST and PUT) a
/// Content-Length, to any listener.
pub async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &[u8],
) -> Response {
    let mut text =
        format!("{method} {path} HTTP/1.1\r\nHost: gateway.test\r\nConnection: close\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    raw(addr, &bytes).await
}

/// Sends raw bytes and reads until the server closes (10 s cap).
pub async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> Response {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    parse_response(&read_to_close(&mut stream).await)
}

/// As [`raw`], but `None` when the connection is refused or no response head arrives
/// (draining gateways refuse connections on purpose).
pub async fn try_raw(addr: std::net::SocketAddr, request: &[u8]) -> Option<Response> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream.write_all(request).await.ok()?;
    try_parse_response(&read_to_close(&mut stream).await)
}

async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    out
}

/// `GET path` with extra header lines and `Connection: close` to any listener;
/// `(status, head, body)`, or `None` when refused (see [`try_raw`]).
pub async fn get(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[&str],
) -> Option<(u16, String, Vec<u8>)> {
    let mut text = format!("GET {path} HTTP/1.1\r\nHost: gateway.test\r\nConnection: close\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    let response = try_raw(addr, text.as_bytes()).await?;
    let split = response.raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&response.raw[..split]).to_string();
    Some((response.status, head, response.body))
}

/// The status of `GET path`, or `None` when refused.
pub async fn status_of(addr: std::net::SocketAddr, path: &str) -> Option<u16> {
    get(addr, path, &[]).await.map(|(status, _, _)| status)
}

/// Parses one HTTP/1.1 response (Content-Length, chunked, or until close).
pub fn parse_response(bytes: &[u8]) -> Response {
    try_parse_response(bytes)
        .unwrap_or_else(|| panic!("no response in {:?}", String::from_utf8_lossy(bytes)))
}

/// As [`parse_response`]; `None` without a response head and status line.
pub fn try_parse_response(bytes: &[u8]) -> Option<Response> {
    let split = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &bytes[split + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Some(Response {
        status,
        headers,
        body,
        raw: bytes.to_vec(),
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&data[..end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        data = &data[end + 2..];
        if size == 0 || data.len() < size {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
}

/// Polls `check` until it is true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

/// A keep-alive HTTP/1.1 connection that sends one request at a time and reads exactly one
/// `Content-Length` response back, so a test can prove the same connection survives.
pub struct KeepAlive {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl KeepAlive {
    pub async fn connect(addr: std::net::SocketAddr) -> KeepAlive {
        KeepAlive {
            stream: TcpStream::connect(addr).await.expect("connect"),
            buffer: Vec::new(),
        }
    }

    /// `GET path` on this connection; `(status, head, body)`, or `None` if the connection
    /// was closed.
    pub async fn get(&mut self, path: &str, headers: &[&str]) -> Option<(u16, String, Vec<u8>)> {
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: gateway.test\r\n");
        for header in headers {
            request.push_str(header);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        self.stream.write_all(request.as_bytes()).await.ok()?;
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(split) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buffer[..split]).to_string();
                let length: usize = head
                    .lines()
                    .filter_map(|line| line.split_once(':'))
                    .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, value)| value.trim().parse().ok())
                    .unwrap_or(0);
                if self.buffer.len() >= split + 4 + length {
                    let body = self.buffer[split + 4..split + 4 + length].to_vec();
                    self.buffer.drain(..split + 4 + length);
                    let status = head.split_whitespace().nth(1)?.parse().ok()?;
                    return Some((status, head, body));
                }
            }
            let mut chunk = [0u8; 8192];
            let read = tokio::time::timeout_at(deadline.into(), self.stream.read(&mut chunk))
                .await
                .ok()?
                .ok()?;
            if read == 0 {
                return None;
            }
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }
}

/// An address on 127.0.0.1 where nothing listens, reserved while this value lives: a
/// socket bound to port 0 that never listens, so connecting to it is refused and no other
/// process can take the port meanwhile (no bind-and-release race).
pub struct ClosedPort {
    pub addr: std::net::SocketAddr,
    _socket: tokio::net::TcpSocket,
}

impl ClosedPort {
    pub fn reserve() -> ClosedPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind 127.0.0.1:0");
        ClosedPort {
            addr: socket.local_addr().expect("local addr"),
            _socket: socket,
        }
    }
}

/// A user the gateway knows, with a valid access token.
pub struct TestUser {
    pub username: String,
    pub sub: String,
    pub token: String,
}

impl TestGateway {
    /// A real user with `roles` (created through the admin socket, as `gatehouse user add`
    /// does) and the access token of a fresh `/auth/login`.
    pub async fn user(&self, username: &str, roles: &[&str]) -> TestUser {
        accounts::create_user(self, username, roles).await
    }

    /// Claims for an existing user (forgeries start from these).
    pub fn claims_for(user: &TestUser) -> serde_json::Value {
        let mut claims = Self::claims(&user.username, &[]);
        claims["sub"] = serde_json::Value::String(user.sub.clone());
        claims
    }
}

/// `Authorization: Bearer …` as a header line.
pub fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

impl TestGateway {
    /// `gatehouse_parked_connections` from the ops listener's `/metrics`.
    pub async fn parked_connections(&self) -> i64 {
        let response = request(self.ops_addr, "GET", "/metrics", &[], b"").await;
        assert_eq!(response.status, 200, "scrape /metrics");
        let text = String::from_utf8_lossy(&response.body);
        text.lines()
            .find_map(|line| line.strip_prefix("gatehouse_parked_connections "))
            .and_then(|value| value.trim().parse().ok())
            .expect("gatehouse_parked_connections in /metrics")
    }

    /// Polls `/metrics` until exactly `count` connections are parked (10 s deadline), so a
    /// test can see parking happen instead of sleeping past the park delay.
    pub async fn wait_for_parked(&self, count: i64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let parked = self.parked_connections().await;
            if parked == count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{parked} parked connections, never {count}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
