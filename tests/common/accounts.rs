//! Account helpers for tests: real users in a real store, created through the running
//! gateway's admin socket (the same path `gatehouse user add` takes) and logged in through
//! `/auth/login`, so their tokens pass every SPEC §4 check (user exists, enabled, not
//! revoked). Also a driver for the real binary (`serve` with a JSON log read for its
//! addresses, `user …` commands with a password on stdin) for CLI and crash tests.
//!
//! Free functions and a separate type only, so this file can be included both as
//! `common::accounts` and by `#[path]` without duplicate definitions.

#![allow(dead_code)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use gatehouse::admin::protocol::{Reply, Request};

use crate::common::{bearer, Response, TestGateway, TestUser};

/// A password that meets the default policy.
pub const PASSWORD: &str = "correct horse battery";

/// Generous deadline for anything a healthy gateway does at once.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The store directory of an in-process test gateway.
pub fn store_path(gateway: &TestGateway) -> PathBuf {
    gateway.dir.path().join("data")
}

/// Sends an admin request to the running gateway's socket.
pub async fn admin(gateway: &TestGateway, request: Request) -> Reply {
    let socket = gatehouse::admin::socket::socket_path(&store_path(gateway));
    tokio::task::spawn_blocking(move || gatehouse::admin::socket::connect(&socket, &request))
        .await
        .expect("join")
        .expect("admin socket")
        .expect("a gateway answers on the admin socket")
}

/// Adds a user through the admin socket; panics unless it worked.
pub async fn add_user(gateway: &TestGateway, username: &str, roles: &[&str], password: &str) {
    let reply = admin(
        gateway,
        Request::Add {
            username: username.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            password: password.to_string().into(),
        },
    )
    .await;
    assert!(reply.ok, "user add {username}: {reply:?}");
}

/// A real user with `roles` and the access token of a fresh login.
pub async fn create_user(gateway: &TestGateway, username: &str, roles: &[&str]) -> TestUser {
    add_user(gateway, username, roles, PASSWORD).await;
    let tokens = login_ok(gateway, username, PASSWORD).await;
    let token = tokens["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    TestUser {
        username: username.to_string(),
        sub: claims_of(&token)["sub"].as_str().expect("sub").to_string(),
        token,
    }
}

/// The (unverified) claims of a JWT, for assertions.
pub fn claims_of(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// `POST path` with a JSON body and extra header lines.
pub async fn post_json(
    gateway: &TestGateway,
    path: &str,
    body: &serde_json::Value,
    headers: &[&str],
) -> Response {
    let mut all = vec!["Content-Type: application/json"];
    all.extend_from_slice(headers);
    gateway
        .request("POST", path, &all, body.to_string().as_bytes())
        .await
}

/// `POST path` with a form body and extra header lines.
pub async fn post_form(
    gateway: &TestGateway,
    path: &str,
    form: &str,
    headers: &[&str],
) -> Response {
    let mut all = vec!["Content-Type: application/x-www-form-urlencoded"];
    all.extend_from_slice(headers);
    gateway.request("POST", path, &all, form.as_bytes()).await
}

/// `POST /auth/login` with JSON credentials.
pub async fn login(gateway: &TestGateway, username: &str, password: &str) -> Response {
    post_json(
        gateway,
        "/auth/login",
        &serde_json::json!({ "username": username, "password": password }),
        &[],
    )
    .await
}

/// A login that must succeed; returns the token response.
pub async fn login_ok(gateway: &TestGateway, username: &str, password: &str) -> serde_json::Value {
    let response = login(gateway, username, password).await;
    assert_eq!(
        response.status,
        200,
        "login {username}: {}",
        String::from_utf8_lossy(&response.body)
    );
    response.json()
}

/// `GET /auth/me` with a bearer token; the status.
pub async fn me_status(gateway: &TestGateway, token: &str) -> u16 {
    gateway.get("/auth/me", &[&bearer(token)]).await.status
}

/// `POST /auth/refresh` with JSON.
pub async fn refresh(gateway: &TestGateway, refresh_token: &str) -> Response {
    post_json(
        gateway,
        "/auth/refresh",
        &serde_json::json!({ "refresh_token": refresh_token }),
        &[],
    )
    .await
}

// ---------------------------------------------------------------------------------------
// The real binary.

/// The binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gatehouse"))
}

/// A config for the binary: listeners on `127.0.0.1:0` (the JSON log tells the ports),
/// the store in `dir/data`, low argon2 cost, an upstream nobody listens on, plus `extra`.
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

/// What a finished CLI command printed.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `gatehouse -c CONFIG ARGS…`, writing `stdin` to it; `envs` are set, and
/// `GATEHOUSE_SECRET` / `GATEHOUSE_CONFIG` / `RUST_LOG` removed unless given.
pub fn run_cli(config: &Path, args: &[&str], stdin: &str, envs: &[(&str, &str)]) -> Output {
    let mut child = Command::new(binary())
        .arg("-c")
        .arg(config)
        .args(args)
        .env_remove("GATEHOUSE_SECRET")
        .env_remove("GATEHOUSE_CONFIG")
        .env_remove("RUST_LOG")
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gatehouse");
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

/// A `gatehouse serve` child process.
pub struct Served {
    pub child: Child,
    pub addr: SocketAddr,
    pub ops_addr: SocketAddr,
    pub stderr_path: PathBuf,
}

impl Served {
    /// Starts `gatehouse -c CONFIG serve` with `envs` (and no inherited secret) and waits
    /// until its log says where it serves.
    pub async fn start(dir: &Path, config: &Path, envs: &[(&str, &str)]) -> Served {
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let number = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log_name = format!("serve-{number}.log");
        let stderr_path = dir.join(log_name);
        let stderr = std::fs::File::create(&stderr_path).expect("log file");
        let child = Command::new(binary())
            .arg("-c")
            .arg(config)
            .arg("serve")
            .env_remove("GATEHOUSE_SECRET")
            .env_remove("GATEHOUSE_CONFIG")
            .env_remove("RUST_LOG")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn gatehouse serve");
        let mut served = Served {
            child,
            addr: "127.0.0.1:0".parse().expect("addr"),
            ops_addr: "127.0.0.1:0".parse().expect("addr"),
            stderr_path,
        };
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some((addr, ops)) = served.serving_addrs() {
                served.addr = addr;
                served.ops_addr = ops;
                return served;
            }
            if let Ok(Some(status)) = served.child.try_wait() {
                panic!("gatehouse exited with {status}; log:\n{}", served.log());
            }
            assert!(
                Instant::now() < deadline,
                "not serving in time; log:\n{}",
                served.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn serving_addrs(&self) -> Option<(SocketAddr, SocketAddr)> {
        self.log().lines().find_map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).ok()?;
            if value["message"] != "gatehouse serving" {
                return None;
            }
            Some((
                value["addr"].as_str()?.parse().ok()?,
                value["ops_addr"].as_str()?.parse().ok()?,
            ))
        })
    }

    /// Everything written to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// `kill -9 PID`: no chance to flush or clean up.
    pub fn kill_9(&mut self) {
        let status = Command::new("kill")
            .args(["-9", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -9 failed");
        let _ = self.child.wait();
    }

    /// `kill -TERM PID` and wait for the exit code.
    pub async fn terminate(&mut self) -> Option<i32> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Sends a request with `Connection: close` and returns the parsed response.
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

impl Drop for Served {
    fn drop(&mut self) {
        // Only the process this test started, by its own handle.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The real binary in front of `upstream`: [`crate::common::config_text`] with a JSON log
/// (so [`Served`] finds its addresses) and `extra` appended, the harness secret in
/// `dir/secret`, and `users` (name, roles) added with `gatehouse user add` before it
/// starts. Returns it and each user's access token from `/auth/login`, in order.
pub async fn serve_with_users(
    dir: &Path,
    upstream: SocketAddr,
    extra: &str,
    users: &[(&str, &[&str])],
) -> (Served, Vec<String>) {
    std::fs::write(dir.join("secret"), format!("{}\n", crate::common::SECRET)).expect("secret");
    let text = crate::common::config_text(
        &upstream.to_string(),
        dir,
        "",
        &format!("[log]\nformat = \"json\"\n\n{extra}"),
    );
    let config = write_config(dir, &text);
    for (username, roles) in users {
        cli_add_user(&config, username, roles, PASSWORD);
    }
    let served = Served::start(dir, &config, &[]).await;
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
