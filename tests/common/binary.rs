//! The REAL binary under test (`CARGO_BIN_EXE_gatehouse`), for every test that spawns it:
//! configs written to a temp dir, one-shot commands (`user …`, `healthcheck`, …) with a
//! clean environment and a password on stdin, and [`Gatehouse`], a `gatehouse serve` child
//! process whose listeners are bound on `127.0.0.1:0` and whose real addresses are read
//! from its own "gatehouse serving" log line (JSON or text format), never guessed by
//! binding a port and releasing it. Its stderr goes to a file so a test can read the log
//! while the process runs; signals are sent with `kill -SIG PID`, as an operator would.

#![allow(dead_code)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::common::accounts::PASSWORD;
use crate::common::{bearer, config_text, status_of, Response, DEADLINE, SECRET};

/// The binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gatehouse"))
}

/// A config for the binary without an upstream to reach: listeners on `127.0.0.1:0`, the
/// store in `dir/data` (no `[tokens]`: the secret is generated there unless the test sets
/// `GATEHOUSE_SECRET`), low argon2 cost, a JSON log, an upstream nobody listens on, plus
/// `extra`. A gateway in front of a real upstream uses [`crate::common::config_text`].
pub fn binary_config(dir: &Path, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
ops_listen = "127.0.0.1:0"
shutdown_grace = "2s"

[store]
path = "{data}"

[passwords]
memory_kib = 64
iterations = 1

[log]
format = "json"

[upstreams.default]
url = "http://127.0.0.1:9"
connect_timeout = "1s"

{extra}
"#,
        data = dir.join("data").display()
    )
}

/// Writes `dir/gateway.toml` and returns its path.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `gatehouse ARGS…` to completion, writing `stdin` to it. `GATEHOUSE_SECRET`,
/// `GATEHOUSE_CONFIG` and `RUST_LOG` are removed; `adjust` may set them again, or the
/// working directory.
pub fn run(args: &[&str], stdin: &str, adjust: impl FnOnce(&mut Command)) -> Output {
    let mut command = Command::new(binary());
    command
        .args(args)
        .env_remove("GATEHOUSE_SECRET")
        .env_remove("GATEHOUSE_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    adjust(&mut command);
    let mut child = command.spawn().expect("spawn gatehouse");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let output = child.wait_with_output().expect("wait");
    Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).to_string(),
    }
}

/// Runs `gatehouse -c CONFIG ARGS…` (see [`run`]) with `envs` set.
pub fn run_cli(config: &Path, args: &[&str], stdin: &str, envs: &[(&str, &str)]) -> Output {
    let mut all = vec!["-c", config.to_str().expect("utf-8 config path")];
    all.extend_from_slice(args);
    run(&all, stdin, |command| {
        command.envs(envs.iter().copied());
    })
}

/// [`run`] with no input on the blocking pool, for async tests whose runtime serves a
/// gateway while the command runs.
pub async fn run_blocking(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args, "", |_| {})
    })
    .await
    .expect("join")
}

/// `gatehouse user add NAME --password-stdin [--role R]…` that must succeed.
pub fn cli_add_user(config: &Path, username: &str, roles: &[&str], password: &str) {
    let mut args = vec!["user", "add", username, "--password-stdin"];
    for role in roles {
        args.push("--role");
        args.push(role);
    }
    let out = run_cli(config, &args, &format!("{password}\n"), &[]);
    assert_eq!(out.code, 0, "user add {username}: {out:?}");
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

/// Stops a child process that may have children of its own (nginx's master, Caddy):
/// SIGTERM so it can stop them, up to 10 s, then SIGKILL. A process already gone is left
/// alone.
pub fn stop_gracefully(child: &mut Child) {
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    send_signal(child.id(), "TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A listen address for a THIRD-PARTY proxy (nginx, Caddy) in the forward-auth tests:
/// bound on port 0 and released for the proxy to bind. This is the one bind-and-release
/// left, and only because those proxies cannot report the port a `:0` listener got;
/// gatehouse itself always binds port 0 and says where it serves.
pub fn third_party_listen_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr")
}

/// A running `gatehouse serve` child process; killed (by its own handle) when dropped.
pub struct Gatehouse {
    pub child: Child,
    /// The main listener, as the process reported it.
    pub addr: SocketAddr,
    /// The ops listener, as the process reported it.
    pub ops_addr: SocketAddr,
    pub config_path: PathBuf,
    pub stderr_path: PathBuf,
}

impl Gatehouse {
    /// `gatehouse -c CONFIG serve` with `GATEHOUSE_SECRET`, `GATEHOUSE_CONFIG` and
    /// `RUST_LOG` removed (the config's `[log]` decides), for [`Self::launch`]; the caller
    /// may adjust it (env, working directory).
    pub fn command(config: &Path) -> Command {
        Self::command_through(Command::new(binary()), config)
    }

    /// [`Self::command`] run through a wrapper that execs the binary (`taskset -c N
    /// gatehouse`, …): `command` is the wrapper, already naming the binary last.
    pub fn command_through(mut command: Command, config: &Path) -> Command {
        command
            .arg("-c")
            .arg(config)
            .arg("serve")
            .env_remove("GATEHOUSE_SECRET")
            .env_remove("GATEHOUSE_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        command
    }

    /// Starts `gatehouse -c CONFIG serve` with `envs` (and no inherited secret), its log in
    /// a fresh file in `dir`, and waits until the log says where it serves.
    pub async fn start(dir: &Path, config: &Path, envs: &[(&str, &str)]) -> Gatehouse {
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let number = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut command = Self::command(config);
        command.envs(envs.iter().copied());
        Self::launch(
            command,
            config.to_path_buf(),
            dir.join(format!("serve-{number}.log")),
        )
        .await
    }

    /// The binary in front of `upstream`: [`config_text`] (listeners on port 0, the
    /// harness [`SECRET`] in `dir/secret`) with `server_extra` and `extra`, written to
    /// `dir/gateway.toml`, started with `envs`.
    pub async fn serve(
        dir: &Path,
        upstream: SocketAddr,
        server_extra: &str,
        extra: &str,
        envs: &[(&str, &str)],
    ) -> Gatehouse {
        std::fs::write(dir.join("secret"), format!("{SECRET}\n")).expect("secret");
        let text = config_text(&upstream.to_string(), dir, server_extra, extra);
        let config = write_config(dir, &text);
        Self::start(dir, &config, envs).await
    }

    /// Starts a prepared command (e.g. the binary under `setpriv`, as a container runs it)
    /// whose config listens on port 0, with stderr to `stderr_path`, and waits until its
    /// log says where it serves. The "gatehouse serving" line is at INFO in
    /// `gatehouse::app`: a test that filters logging must keep that line.
    pub async fn launch(
        mut command: Command,
        config_path: PathBuf,
        stderr_path: PathBuf,
    ) -> Gatehouse {
        let stderr = std::fs::File::create(&stderr_path).expect("create stderr file");
        command.stderr(Stdio::from(stderr));
        let child = command.spawn().expect("spawn gatehouse");
        let mut gatehouse = Gatehouse {
            child,
            addr: "127.0.0.1:0".parse().expect("addr"),
            ops_addr: "127.0.0.1:0".parse().expect("addr"),
            config_path,
            stderr_path,
        };
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some((addr, ops)) = serving_addrs(&gatehouse.log()) {
                gatehouse.addr = addr;
                gatehouse.ops_addr = ops;
                return gatehouse;
            }
            if let Ok(Some(status)) = gatehouse.child.try_wait() {
                panic!(
                    "gatehouse exited with {status} before serving; log:\n{}",
                    gatehouse.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "gatehouse did not say where it serves within {DEADLINE:?}; log:\n{}",
                gatehouse.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts `gatehouse -c CONFIG serve` while its store cannot be reached (SPEC §8: it
    /// waits, not ready): returns once the log's "waiting for it" WARN line names the ops
    /// address, which probes can reach meanwhile. The main address is known only once it
    /// serves: [`Self::wait_serving`].
    pub async fn start_waiting(dir: &Path, config: &Path, envs: &[(&str, &str)]) -> Gatehouse {
        let mut command = Self::command(config);
        command.envs(envs.iter().copied());
        let stderr_path = dir.join("serve-waiting.log");
        let stderr = std::fs::File::create(&stderr_path).expect("create stderr file");
        command.stderr(Stdio::from(stderr));
        let mut gatehouse = Gatehouse {
            child: command.spawn().expect("spawn gatehouse"),
            addr: "127.0.0.1:0".parse().expect("addr"),
            ops_addr: "127.0.0.1:0".parse().expect("addr"),
            config_path: config.to_path_buf(),
            stderr_path,
        };
        let deadline = Instant::now() + DEADLINE;
        loop {
            let waiting = gatehouse.log().lines().find_map(|line| {
                let value = serde_json::from_str::<serde_json::Value>(line).ok()?;
                let message = value["message"].as_str()?;
                if !message.starts_with("the store cannot be reached; waiting") {
                    return None;
                }
                value["ops_addr"].as_str()?.parse::<SocketAddr>().ok()
            });
            if let Some(ops) = waiting {
                gatehouse.ops_addr = ops;
                return gatehouse;
            }
            assert!(
                gatehouse.running() && Instant::now() < deadline,
                "gatehouse did not say it waits for its store; log:\n{}",
                gatehouse.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the log says where it serves (after [`Self::start_waiting`]).
    pub async fn wait_serving(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some((addr, ops)) = serving_addrs(&self.log()) {
                assert_eq!(ops, self.ops_addr, "the ops listener stays where it was");
                self.addr = addr;
                return;
            }
            assert!(
                self.running() && Instant::now() < deadline,
                "gatehouse did not start serving; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
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

    /// `kill -9 PID`: no chance to flush or clean up.
    pub fn kill_9(&mut self) {
        self.signal("9");
        let _ = self.child.wait();
    }

    /// `kill -TERM PID` and wait for the exit code.
    pub async fn terminate(&mut self) -> Option<i32> {
        self.signal("TERM");
        self.wait_exit(DEADLINE)
            .await
            .and_then(|status| status.code())
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
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends a request with `Connection: close` to the main listener.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[&str],
        body: &[u8],
    ) -> Response {
        crate::common::request(self.addr, method, path, headers, body).await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
        headers: &[&str],
    ) -> Response {
        let mut all = vec!["Content-Type: application/json"];
        all.extend_from_slice(headers);
        self.request("POST", path, &all, body.to_string().as_bytes())
            .await
    }

    /// A login that must succeed; the token response.
    pub async fn login_ok(&self, username: &str, password: &str) -> serde_json::Value {
        let response = self
            .post_json(
                "/auth/login",
                &serde_json::json!({ "username": username, "password": password }),
                &[],
            )
            .await;
        assert_eq!(
            response.status,
            200,
            "login {username}: {}\nlog:\n{}",
            String::from_utf8_lossy(&response.body),
            self.log()
        );
        response.json()
    }

    /// `GET /auth/me` with a bearer token; the response.
    pub async fn me(&self, token: &str) -> Response {
        self.request("GET", "/auth/me", &[&bearer(token)], b"")
            .await
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

/// The main and ops addresses from the "gatehouse serving" line of a log, in either
/// format: JSON (`"addr"` / `"ops_addr"` fields) or text (`addr=… ops_addr=…`).
fn serving_addrs(log: &str) -> Option<(SocketAddr, SocketAddr)> {
    log.lines().find_map(|line| {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(line) {
            if value["message"] != "gatehouse serving" {
                return None;
            }
            return Some((
                value["addr"].as_str()?.parse().ok()?,
                value["ops_addr"].as_str()?.parse().ok()?,
            ));
        }
        if !line.contains(" gatehouse serving ") {
            return None;
        }
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|part| part.strip_prefix(name))
                .and_then(|value| value.parse().ok())
        };
        Some((field("addr=")?, field("ops_addr=")?))
    })
}

/// The real binary in front of `upstream`: [`config_text`] with a JSON log and `extra`
/// appended, the harness secret in `dir/secret`, and `users` (name, roles) added with
/// `gatehouse user add` before it starts. Returns it and each user's access token from
/// `/auth/login`, in order.
pub async fn serve_with_users(
    dir: &Path,
    upstream: SocketAddr,
    extra: &str,
    users: &[(&str, &[&str])],
) -> (Gatehouse, Vec<String>) {
    std::fs::write(dir.join("secret"), format!("{SECRET}\n")).expect("secret");
    let text = config_text(
        &upstream.to_string(),
        dir,
        "",
        &format!("[log]\nformat = \"json\"\n\n{extra}"),
    );
    let config = write_config(dir, &text);
    for (username, roles) in users {
        cli_add_user(&config, username, roles, PASSWORD);
    }
    let served = Gatehouse::start(dir, &config, &[]).await;
    let mut tokens = Vec::new();
    for (username, _) in users {
        let body = served.login_ok(username, PASSWORD).await;
        tokens.push(
            body["access_token"]
                .as_str()
                .expect("access_token")
                .to_string(),
        );
    }
    (served, tokens)
}
