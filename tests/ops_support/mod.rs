//! Support for the tests that drive the REAL binary (`CARGO_BIN_EXE_gatehouse`): a config
//! written to a temp dir, listen addresses picked by binding `127.0.0.1:0` and releasing
//! them, stderr captured to a file so a test can read the log while the process runs,
//! signals sent with `kill -SIG PID`, and an HTTP/1.1 client that reports a refused
//! connection instead of panicking (draining gateways refuse connections on purpose).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The signing secret given to the binary through `GATEHOUSE_SECRET` (≥ 32 bytes); the
/// same bytes as the in-process harness uses, so tokens minted there verify here too.
pub const SECRET: &str = "test-secret-test-secret-test-secret!";

/// Generous deadline for anything a healthy gateway does at once.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The path of the binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gatehouse"))
}

/// A free TCP address on 127.0.0.1: bound to port 0, then released for the binary to bind.
pub fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr")
}

/// A gateway config for the binary: `[server]` with the given addresses and
/// `server_extra`, a store in `dir/data`, the default upstream, then `extra` (which may
/// carry `[log]`, `[headers]`, more `[upstreams.*]` and `[[routes]]`).
pub fn config_text(
    listen: SocketAddr,
    ops: SocketAddr,
    dir: &Path,
    upstream: SocketAddr,
    server_extra: &str,
    extra: &str,
) -> String {
    format!(
        r#"
[server]
listen = "{listen}"
ops_listen = "{ops}"
{server_extra}

[store]
path = "{data}"

[passwords]
memory_kib = 64
iterations = 1

[upstreams.default]
url = "http://{upstream}"
connect_timeout = "1s"
timeout = "10s"

{extra}
"#,
        data = dir.join("data").display(),
    )
}

/// A running `gatehouse serve` child process.
pub struct Gatehouse {
    pub child: Child,
    pub addr: SocketAddr,
    pub ops_addr: SocketAddr,
    pub config_path: PathBuf,
    pub stderr_path: PathBuf,
}

impl Gatehouse {
    /// Writes `config` to `dir/gateway.toml` and starts `gatehouse -c it serve` with
    /// `GATEHOUSE_SECRET` set and `RUST_LOG` unset (the config's `[log]` decides).
    pub fn spawn(dir: &Path, config: &str, addr: SocketAddr, ops_addr: SocketAddr) -> Gatehouse {
        Self::spawn_with(dir, config, addr, ops_addr, |_| {})
    }

    /// As [`Self::spawn`], letting the caller adjust the command (env, user …).
    pub fn spawn_with(
        dir: &Path,
        config: &str,
        addr: SocketAddr,
        ops_addr: SocketAddr,
        adjust: impl FnOnce(&mut Command),
    ) -> Gatehouse {
        let config_path = dir.join("gateway.toml");
        std::fs::write(&config_path, config).expect("write config");
        let stderr_path = dir.join("gatehouse.stderr");
        let stderr = std::fs::File::create(&stderr_path).expect("create stderr file");
        let mut command = Command::new(binary());
        command
            .arg("-c")
            .arg(&config_path)
            .arg("serve")
            .env("GATEHOUSE_SECRET", SECRET)
            .env_remove("RUST_LOG")
            .env_remove("GATEHOUSE_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr));
        adjust(&mut command);
        Self::launch(command, addr, ops_addr, config_path, stderr_path)
    }

    /// Starts a prepared command (e.g. the binary under `setpriv`, as a container runs
    /// it) whose stderr goes to `stderr_path`.
    pub fn launch(
        mut command: Command,
        addr: SocketAddr,
        ops_addr: SocketAddr,
        config_path: PathBuf,
        stderr_path: PathBuf,
    ) -> Gatehouse {
        let child = command.spawn().expect("spawn gatehouse");
        Gatehouse {
            child,
            addr,
            ops_addr,
            config_path,
            stderr_path,
        }
    }

    /// The process id, for `kill`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `/readyz` answers 200; panics with the log if it does not in time.
    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if status_of(self.ops_addr, "/readyz").await == Some(200) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "gatehouse exited with {status} before it was ready; log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "gatehouse not ready within {DEADLINE:?}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Sends a signal (`TERM`, `INT`, `HUP`) with `kill -SIG PID`.
    pub fn signal(&self, name: &str) {
        send_signal(self.pid(), name);
    }

    /// Everything the process has written to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Polls the log until it contains `needle`.
    pub async fn wait_for_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        self.log().contains(needle)
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the process to exit; `None` if it still runs after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Gatehouse {
    fn drop(&mut self) {
        // Only the process this test started, by its own handle.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `kill -SIG PID` through the system's `kill`, as an operator would.
pub fn send_signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed: {status}");
}

/// `GET path` with `Connection: close`; `None` when the connection is refused or no
/// response head arrives within 10 s.
pub async fn status_of(addr: SocketAddr, path: &str) -> Option<u16> {
    get(addr, path, &[]).await.map(|(status, _, _)| status)
}

/// `GET path` with extra header lines; `(status, head, body)` or `None` when refused.
pub async fn get(addr: SocketAddr, path: &str, headers: &[&str]) -> Option<(u16, String, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: gateway.test\r\nConnection: close\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    let split = out.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, head, out[split + 4..].to_vec()))
}

/// A keep-alive HTTP/1.1 connection that sends one request at a time and reads exactly one
/// `Content-Length` response back, so a test can prove the same connection survives.
pub struct KeepAlive {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl KeepAlive {
    pub async fn connect(addr: SocketAddr) -> KeepAlive {
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

/// Runs `gatehouse ARGS…` to completion (blocking pool) and returns its exit code and
/// stderr.
pub async fn run_cli(args: Vec<String>, envs: Vec<(String, String)>) -> (i32, String) {
    tokio::task::spawn_blocking(move || {
        let output = Command::new(binary())
            .args(&args)
            .env_remove("GATEHOUSE_CONFIG")
            .envs(envs)
            .stdin(Stdio::null())
            .output()
            .expect("run gatehouse");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    })
    .await
    .expect("join")
}
