//! The README quick start's demo upstream, `examples/echo.rs`, as a newcomer runs it: the
//! built example binary on `127.0.0.1:0` behind the real gatehouse binary. An
//! authenticated request's echo shows the `X-Auth-User` gatehouse set; requests for
//! `/data/db` or any other file path get echo JSON, never file contents (the quick start
//! once used `python3 -m http.server`, which served the store's secret to the network).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::binary::{binary_config, cli_add_user, write_config, Gatehouse};
use common::{bearer, DEADLINE};

/// The example binary: `cargo test` builds examples next to the test binaries' `deps/`.
fn echo_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("examples").join("echo"))
        .expect("the test binary has a target directory");
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build --example echo` (a plain `cargo test` \
         builds it; `cargo test --test quickstart_echo` alone does not)",
        path.display()
    );
    path
}

/// A running `echo` example; killed (by its own handle) when dropped.
struct Echo {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Echo {
    /// Starts the example in `cwd`, adjusted by `adjust` (arguments or `ECHO_LISTEN`), and
    /// reads the bound address from its first stdout line.
    fn start(cwd: &Path, adjust: impl FnOnce(&mut Command)) -> Echo {
        let mut command = Command::new(echo_binary());
        command
            .current_dir(cwd)
            .env_remove("ECHO_LISTEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        adjust(&mut command);
        let mut child = command.spawn().expect("spawn the echo example");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let line = match receiver.recv_timeout(DEADLINE) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("the echo example printed no address within {DEADLINE:?}");
            }
        };
        let addr = line
            .trim()
            .strip_prefix("echo listening on http://")
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from echo: {line:?}"));
        Echo { child, addr }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A gatehouse binary in front of `echo`, with `extra` routes.
async fn gateway(dir: &Path, echo: &Echo, extra: &str) -> Gatehouse {
    let text = binary_config(dir, extra).replace(
        "url = \"http://127.0.0.1:9\"",
        &format!("url = \"http://{}\"", echo.addr),
    );
    assert!(text.contains(&echo.addr.to_string()), "upstream replaced");
    let config = write_config(dir, &text);
    Gatehouse::start(dir, &config, &[("GATEHOUSE_SECRET", common::SECRET)]).await
}

fn echoed(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|err| panic!("not echo JSON ({err}): {:?}", String::from_utf8_lossy(body)))
}

#[tokio::test]
async fn an_authenticated_request_through_gatehouse_reaches_echo_with_x_auth_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let echo = Echo::start(dir.path(), |command| {
        command.args(["--listen", "127.0.0.1:0"]);
    });
    let served = gateway(
        dir.path(),
        &echo,
        "[[routes]]\npath = \"/health\"\naccess = \"public\"\n",
    )
    .await;
    let config = dir.path().join("gateway.toml");

    // A public route: forwarded, no identity.
    let public = served.request("GET", "/health", &[], b"").await;
    assert_eq!(public.status, 200, "{}", served.log());
    let json = echoed(&public.body);
    assert_eq!(json["path"], "/health");
    assert!(json["headers"].get("x-auth-user").is_none(), "{json}");

    // A protected one without a token: gatehouse answers, echo never sees it.
    let anonymous = served.request("GET", "/anything", &[], b"").await;
    assert_eq!(anonymous.status, 401);

    cli_add_user(&config, "alice", &["admin"], "s3cret-passw0rd");
    let tokens = served.login_ok("alice", "s3cret-passw0rd").await;
    let token = tokens["access_token"].as_str().expect("access_token");
    let response = served
        .request(
            "GET",
            "/admin/x?page=2",
            &[&bearer(token), "X-Auth-User: mallory"],
            b"",
        )
        .await;
    assert_eq!(response.status, 200, "{}", served.log());
    let json = echoed(&response.body);
    assert_eq!(json["method"], "GET");
    assert_eq!(json["path"], "/admin/x");
    assert_eq!(json["query"], "page=2");
    assert_eq!(json["headers"]["x-auth-user"], "alice", "{json}");
    assert_eq!(json["headers"]["x-auth-roles"], "admin", "{json}");
}

#[tokio::test]
async fn file_paths_get_echo_json_never_file_contents() {
    // The echo runs in a directory that looks like a repository checkout with a store in it,
    // as it does in the quick start.
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = "SIGNING-SECRET-MARKER-6b1f";
    std::fs::create_dir_all(dir.path().join("data")).expect("mkdir data");
    std::fs::write(dir.path().join("data/db"), marker).expect("data/db");
    std::fs::write(dir.path().join("data/conf"), marker).expect("data/conf");
    std::fs::write(dir.path().join("Cargo.toml"), marker).expect("Cargo.toml");
    // ECHO_LISTEN instead of --listen.
    let echo = Echo::start(dir.path(), |command| {
        command.env("ECHO_LISTEN", "127.0.0.1:0");
    });
    let gateway_dir = tempfile::tempdir().expect("tempdir");
    let served = gateway(
        gateway_dir.path(),
        &echo,
        "[[routes]]\npath = \"/**\"\naccess = \"public\"\n",
    )
    .await;

    let paths = [
        "/data/db",
        "/data/conf",
        "/data/",
        "/Cargo.toml",
        "/",
        "/examples/echo.rs",
    ];
    for path in paths {
        for (via, addr) in [("echo", echo.addr), ("gatehouse", served.addr)] {
            let response = common::request(addr, "GET", path, &[], b"").await;
            let text = String::from_utf8_lossy(&response.body).to_string();
            assert_eq!(response.status, 200, "{via} {path}: {text}");
            assert!(!text.contains(marker), "{via} {path} served a file: {text}");
            let json = echoed(&response.body);
            assert_eq!(json["path"], path, "{via}: {json}");
            assert_eq!(
                response.header("content-type"),
                Some("application/json"),
                "{via} {path}"
            );
        }
    }
}
