//! The container (SPEC §6), verified without a Docker engine:
//!
//! * the Dockerfile states the contract (builder stage with `cargo build --release
//!   --locked`, small runtime image, fixed non-root uid, `/data` volume, config at
//!   `/etc/gatehouse/gateway.toml` via `GATEHOUSE_CONFIG`, `EXPOSE 8080 9091`,
//!   `HEALTHCHECK` via `gatehouse healthcheck`), and every file it copies from the build
//!   context exists and is not excluded by `.dockerignore`;
//! * the shipped container config passes `check-config`;
//! * the binary runs the way the image runs it: as uid/gid 10001 (when the test runs as
//!   root), config read-only and root-owned, only the data directory writable (by that uid,
//!   mode 0700), configured by `GATEHOUSE_CONFIG` alone; users are administered the way
//!   `docker exec … gatehouse user add` would, `gatehouse healthcheck` with no arguments
//!   passes, and SIGTERM (`docker stop`) exits 0.

mod common;

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::binary::{binary, Gatehouse};
use common::{get, DEADLINE, SECRET};

/// The uid and gid the Dockerfile runs as.
const IMAGE_UID: u32 = 10001;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dockerfile() -> String {
    std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile at the repository root")
}

/// Dockerfile instructions with line continuations joined: `(INSTRUCTION, arguments)`.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') && current.is_empty()
            || trimmed.is_empty() && current.is_empty()
        {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        joined.push(std::mem::take(&mut current));
    }
    joined
        .into_iter()
        .filter_map(|line| {
            let (keyword, rest) = line.split_once(char::is_whitespace)?;
            Some((keyword.to_ascii_uppercase(), rest.trim().to_string()))
        })
        .collect()
}

/// Whether `.dockerignore` keeps `path` out of the build context. Its patterns are rooted
/// at the context, `**/` matches any number of directories, `*` stays inside one name, and
/// excluding a directory excludes everything below it (the subset of Docker's rules the
/// file uses).
fn dockerignored(path: &str) -> bool {
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).expect(".dockerignore");
    let segments: Vec<&str> = path.split('/').collect();
    ignore
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .any(|pattern| {
            let anywhere = pattern.starts_with("**/");
            let pattern = pattern.trim_start_matches("**/").trim_end_matches('/');
            let starts = if anywhere { 0..segments.len() } else { 0..1 };
            starts.into_iter().any(|start| {
                (start + 1..=segments.len()).any(|end| {
                    let candidate = segments[start..end].join("/");
                    match pattern.strip_prefix('*') {
                        Some(suffix) => !candidate.contains('/') && candidate.ends_with(suffix),
                        None => candidate == pattern,
                    }
                })
            })
        })
}

#[test]
fn dockerfile_builds_in_a_builder_stage_and_runs_unprivileged_with_the_container_contract() {
    let text = dockerfile();
    let steps = instructions(&text);
    let args = |keyword: &str| -> Vec<String> {
        steps
            .iter()
            .filter(|(k, _)| k == keyword)
            .map(|(_, a)| a.clone())
            .collect()
    };

    let froms = args("FROM");
    assert!(
        froms.len() >= 2,
        "a builder stage and a runtime stage: {froms:?}"
    );
    assert!(
        froms[0].contains(" AS builder") || froms[0].contains(" as builder"),
        "{froms:?}"
    );
    assert!(
        froms[0].starts_with("rust:"),
        "the builder is a Rust image: {froms:?}"
    );
    let runtime = froms.last().expect("runtime stage");
    assert!(
        runtime.contains("distroless") || runtime.contains("slim"),
        "the runtime image is small: {runtime}"
    );
    assert!(
        !runtime.starts_with("rust:"),
        "the toolchain does not ship: {runtime}"
    );
    assert!(
        args("RUN")
            .iter()
            .any(|run| run.contains("cargo build --release --locked")),
        "the builder runs `cargo build --release --locked`"
    );

    // Everything after the last FROM is the image that runs.
    let last_from = steps.iter().rposition(|(k, _)| k == "FROM").expect("FROM");
    let runtime_steps = &steps[last_from..];
    let in_runtime = |keyword: &str| -> Vec<&str> {
        runtime_steps
            .iter()
            .filter(|(k, _)| k == keyword)
            .map(|(_, a)| a.as_str())
            .collect()
    };
    assert_eq!(
        in_runtime("USER"),
        vec![format!("{IMAGE_UID}:{IMAGE_UID}").as_str()]
    );
    assert!(
        in_runtime("VOLUME").iter().any(|v| v.contains("\"/data\"")),
        "VOLUME /data"
    );
    let exposed: Vec<&str> = in_runtime("EXPOSE")
        .iter()
        .flat_map(|e| e.split_whitespace())
        .collect();
    assert!(
        exposed.contains(&"8080") && exposed.contains(&"9091"),
        "EXPOSE 8080 9091: {exposed:?}"
    );
    assert!(
        in_runtime("ENV")
            .iter()
            .any(|env| env.contains("GATEHOUSE_CONFIG=/etc/gatehouse/gateway.toml")),
        "ENV GATEHOUSE_CONFIG=/etc/gatehouse/gateway.toml"
    );
    let healthcheck = in_runtime("HEALTHCHECK").join(" ");
    let command = healthcheck
        .split_once("CMD")
        .map(|(_, command)| command.trim())
        .expect("HEALTHCHECK CMD");
    let command: Vec<String> = serde_json::from_str(command).expect("HEALTHCHECK CMD in exec form");
    assert_eq!(command, vec!["gatehouse", "healthcheck"]);

    // The container config lands at /etc/gatehouse/gateway.toml, /data belongs to the uid.
    let copies = in_runtime("COPY");
    assert!(
        copies
            .iter()
            .any(|c| c.contains("deploy/gateway.container.toml")
                && c.ends_with("/etc/gatehouse/gateway.toml")),
        "{copies:?}"
    );
    assert!(
        copies
            .iter()
            .any(|c| c.contains(&format!("--chown={IMAGE_UID}:{IMAGE_UID}"))
                && c.ends_with(" /data")),
        "{copies:?}"
    );

    // Every file copied from the build context exists and survives .dockerignore.
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "src/main.rs",
        "src/lib.rs",
        "deploy/gateway.container.toml",
    ] {
        assert!(repo().join(needed).is_file(), "{needed} is missing");
        assert!(
            !dockerignored(needed),
            "{needed} is excluded by .dockerignore"
        );
    }
    // Targets the manifest names must be in the context too, or cargo refuses the manifest.
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(repo().join("Cargo.toml")).expect("Cargo.toml"))
            .expect("Cargo.toml parses");
    for (kind, dir) in [
        ("bench", "benches"),
        ("test", "tests"),
        ("example", "examples"),
    ] {
        for target in manifest
            .get(kind)
            .and_then(|t| t.as_array())
            .into_iter()
            .flatten()
        {
            let path = target
                .get("path")
                .and_then(|p| p.as_str())
                .map(str::to_string)
                .or_else(|| {
                    target
                        .get("name")
                        .and_then(|n| n.as_str())
                        .map(|n| format!("{dir}/{n}.rs"))
                })
                .expect("target path");
            assert!(
                !dockerignored(&path),
                "[[{kind}]] {path} is excluded by .dockerignore"
            );
        }
    }
    for excluded in [
        "target/release/gatehouse",
        "fuzz/target/debug/x",
        "data/db",
        ".git/HEAD",
        "tls/key.pem",
    ] {
        assert!(
            dockerignored(excluded),
            "{excluded} would be sent to the build"
        );
    }
}

#[test]
fn the_container_config_is_valid_and_listens_on_all_interfaces_with_the_store_in_data() {
    let config = repo().join("deploy/gateway.container.toml");
    let text = std::fs::read_to_string(&config).expect("deploy/gateway.container.toml");
    for expected in [
        r#"listen = "0.0.0.0:8080""#,
        r#"ops_listen = "0.0.0.0:9091""#,
        r#"path = "/data""#,
    ] {
        assert!(text.contains(expected), "{expected} missing");
    }
    let output = Command::new(binary())
        .arg("check-config")
        .arg("-c")
        .arg(&config)
        .output()
        .expect("run check-config");
    assert!(
        output.status.success(),
        "check-config failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// As root: the command runs as uid/gid 10001 with no supplementary groups (what `USER
/// 10001:10001` does). Otherwise the current user stands in for it.
fn as_image_user(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("setpriv");
        command
            .arg(format!("--reuid={IMAGE_UID}"))
            .arg(format!("--regid={IMAGE_UID}"))
            .arg("--clear-groups")
            .arg("--")
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn uid_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|line| line.starts_with("Uid:"))?
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_runs_as_the_image_does_unprivileged_with_a_read_only_config() {
    let upstream = common::EchoUpstream::start().await;
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");

    // The image's file system: /usr/local/bin/gatehouse, /etc/gatehouse/gateway.toml, /data.
    let bin = root.path().join("usr/local/bin");
    let etc = root.path().join("etc/gatehouse");
    let data = root.path().join("data");
    for dir in [&bin, &etc] {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    let program = bin.join("gatehouse");
    std::fs::copy(binary(), &program).expect("copy binary");
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::create_dir(&data).expect("mkdir data");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    if is_root() {
        std::os::unix::fs::chown(&data, Some(IMAGE_UID), Some(IMAGE_UID)).expect("chown data");
    } else {
        eprintln!("not root: the uid switch is not exercised; everything else is");
    }

    // The shipped container config, listening on port 0 of 127.0.0.1 (where the gateway
    // serves is learned from its log, below).
    let shipped =
        std::fs::read_to_string(repo().join("deploy/gateway.container.toml")).expect("config");
    let mut config = shipped.clone();
    for (from, to) in [
        (
            "\"0.0.0.0:8080\"".to_string(),
            "\"127.0.0.1:0\"".to_string(),
        ),
        (
            "\"0.0.0.0:9091\"".to_string(),
            "\"127.0.0.1:0\"".to_string(),
        ),
        (
            "path = \"/data\"".to_string(),
            format!("path = \"{}\"", data.display()),
        ),
        (
            "\"http://app:8000\"".to_string(),
            format!("\"http://{}\"", upstream.addr),
        ),
    ] {
        assert!(
            config.contains(&from),
            "the container config no longer has {from}"
        );
        config = config.replace(&from, &to);
    }
    // Argon2 at test cost; everything else as shipped.
    config.push_str("\n[passwords]\nmemory_kib = 64\niterations = 1\n");
    let config_path = etc.join("gateway.toml");
    std::fs::write(&config_path, &config).expect("write config");
    std::fs::set_permissions(&config_path, std::fs::Permissions::from_mode(0o444)).expect("chmod");

    let env = |command: &mut Command| {
        command
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("GATEHOUSE_CONFIG", &config_path)
            .env("GATEHOUSE_SECRET", SECRET)
            .current_dir(root.path());
    };
    let stderr_path = root.path().join("gatehouse.stderr");
    let mut command = as_image_user(&program);
    env(&mut command);
    command
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut gatehouse = Gatehouse::launch(command, config_path.clone(), stderr_path).await;
    gatehouse.wait_ready().await;
    let addr = gatehouse.addr;
    // The image's argument-less HEALTHCHECK reads ops_listen from the config, as a real
    // image's config names its real port: write the port the gateway reported into it (the
    // running gateway does not re-read the file; listeners are never reloaded).
    let learned = config.replace(
        "ops_listen = \"127.0.0.1:0\"",
        &format!("ops_listen = \"{}\"", gatehouse.ops_addr),
    );
    assert_ne!(learned, config, "no ops_listen to fill in");
    config = learned;
    std::fs::set_permissions(&config_path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::write(&config_path, &config).expect("write config");
    std::fs::set_permissions(&config_path, std::fs::Permissions::from_mode(0o444)).expect("chmod");
    if is_root() {
        assert_eq!(
            uid_of(gatehouse.pid()),
            Some(IMAGE_UID),
            "the gateway runs as the image's uid"
        );
    }

    // `docker exec <container> gatehouse user add …` : the same user, env and config.
    let mut add = as_image_user(&program);
    env(&mut add);
    add.args([
        "user",
        "add",
        "alice",
        "--role",
        "staff",
        "--password-stdin",
    ]);
    let added = run_with_stdin(add, "correct horse battery\n").await;
    assert!(
        added.0,
        "user add failed: {}\nlog:\n{}",
        added.1,
        gatehouse.log()
    );

    // Login and a proxied request: the store in /data works for the unprivileged uid.
    let token = login(addr, "alice", "correct horse battery").await;
    let (status, _, _) = get(
        addr,
        "/service/data",
        &[&format!("Authorization: Bearer {token}")],
    )
    .await
    .expect("answer");
    assert_eq!(status, 200, "log:\n{}", gatehouse.log());
    assert_eq!(
        upstream.last().expect("forwarded").header("x-auth-user"),
        Some("alice")
    );

    // The image's HEALTHCHECK: no arguments, config from GATEHOUSE_CONFIG.
    let mut probe = as_image_user(&program);
    env(&mut probe);
    probe.arg("healthcheck");
    assert!(
        run_with_stdin(probe, "").await.0,
        "HEALTHCHECK failed while serving"
    );

    // What the gateway wrote, it wrote in /data, as the image's uid; the config is untouched.
    let entries: Vec<_> = std::fs::read_dir(&data)
        .expect("read data")
        .flatten()
        .collect();
    assert!(
        !entries.is_empty(),
        "nothing was stored in the data directory"
    );
    if is_root() {
        for entry in &entries {
            let owner = entry.metadata().expect("metadata").uid();
            assert_eq!(
                owner,
                IMAGE_UID,
                "{} is not owned by the image's uid",
                entry.path().display()
            );
        }
    }
    assert_eq!(
        std::fs::read_to_string(&config_path).expect("config"),
        config
    );
    let top: Vec<String> = std::fs::read_dir(root.path())
        .expect("read root")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    let mut top_sorted = top.clone();
    top_sorted.sort();
    assert_eq!(
        top_sorted,
        ["data", "etc", "gatehouse.stderr", "usr"],
        "wrote outside /data"
    );

    // `docker stop`: SIGTERM, exit 0; the healthcheck then fails.
    gatehouse.signal("TERM");
    let status = gatehouse
        .wait_exit(DEADLINE)
        .await
        .expect("exits on SIGTERM");
    assert_eq!(status.code(), Some(0), "log:\n{}", gatehouse.log());
    let mut probe = as_image_user(&program);
    env(&mut probe);
    probe.arg("healthcheck");
    assert!(
        !run_with_stdin(probe, "").await.0,
        "HEALTHCHECK passed with the gateway stopped"
    );
    // JSON logs, as the container config asks.
    let log = gatehouse.log();
    assert!(
        log.lines()
            .filter(|l| !l.trim().is_empty())
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "the container config logs JSON:\n{log}"
    );
}

/// Runs a command to completion with `input` on stdin: `(success, stderr)`.
async fn run_with_stdin(mut command: Command, input: &str) -> (bool, String) {
    let input = input.to_string();
    tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input.as_bytes());
        }
        let output = child.wait_with_output().expect("wait");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    })
    .await
    .expect("join")
}

async fn login(addr: std::net::SocketAddr, username: &str, password: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let body = serde_json::json!({"username": username, "password": password}).to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "POST /auth/login HTTP/1.1\r\nHost: gateway.test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut out)).await;
    let response = common::parse_response(&out);
    assert_eq!(
        response.status,
        200,
        "login: {}",
        String::from_utf8_lossy(&response.body)
    );
    response.json()["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}
