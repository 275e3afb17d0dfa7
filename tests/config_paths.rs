//! Relative file paths in `gateway.toml` (`store.path`, `tokens.secret_file`,
//! `server.tls_cert`, `server.tls_key`) resolve against the directory that holds the file,
//! never the working directory (SPEC §2). Driven through the real binary from working
//! directories other than the config's, with `-c` absolute or relative and with a relative
//! `GATEHOUSE_CONFIG`; SIGHUP re-reads the same file the same way.

mod common;

use std::path::Path;
use std::time::Instant;

use common::binary::{run, Gatehouse, Output};
use common::{get, EchoUpstream, DEADLINE, SECRET};

const PASSWORD: &str = "correct horse battery";

/// A config whose store is the relative `data`, listeners on port 0, plus `extra`.
fn relative_config(upstream: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
ops_listen = "127.0.0.1:0"
shutdown_grace = "2s"

[store]
path = "data"

[passwords]
memory_kib = 64
iterations = 1

[upstreams.default]
url = "http://{upstream}"
connect_timeout = "1s"

{extra}
"#
    )
}

/// `gatehouse ARGS…` run in `cwd`, `stdin` written to it; `GATEHOUSE_CONFIG` only as given.
fn gatehouse_in(cwd: &Path, args: &[&str], config_env: Option<&str>, stdin: &str) -> Output {
    run(args, stdin, |command| {
        command.current_dir(cwd);
        if let Some(config) = config_env {
            command.env("GATEHOUSE_CONFIG", config);
        }
    })
}

/// `root/conf/gateway.toml` (relative store) and two unrelated working directories.
fn layout() -> (tempfile::TempDir, std::path::PathBuf) {
    let root = tempfile::tempdir().expect("tempdir");
    for dir in ["conf", "one", "two"] {
        std::fs::create_dir(root.path().join(dir)).expect("mkdir");
    }
    let config = root.path().join("conf/gateway.toml");
    std::fs::write(&config, relative_config("127.0.0.1:9", "")).expect("write config");
    (root, config)
}

#[test]
fn user_commands_find_the_store_next_to_the_config_from_any_working_directory() {
    let (root, config) = layout();
    let config = config.to_str().expect("utf-8 path");
    let add = gatehouse_in(
        &root.path().join("one"),
        &["-c", config, "user", "add", "alice", "--password-stdin"],
        None,
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(add.code, 0, "user add: {}", add.stderr);

    assert!(
        root.path().join("conf/data").is_dir(),
        "the store is created next to gateway.toml"
    );
    assert!(
        !root.path().join("one/data").exists(),
        "no store in the working directory"
    );

    let list = gatehouse_in(
        &root.path().join("two"),
        &["-c", config, "user", "list"],
        None,
        "",
    );
    assert_eq!(list.code, 0, "user list: {}", list.stderr);
    assert!(list.stdout.starts_with("alice "), "{}", list.stdout);
    assert!(!root.path().join("two/data").exists());
}

#[test]
fn a_relative_gatehouse_config_is_found_from_the_cwd_and_its_store_next_to_it() {
    let (root, _config) = layout();
    // The config file itself is relative to the working directory …
    let add = gatehouse_in(
        root.path(),
        &["user", "add", "bob", "--password-stdin"],
        Some("conf/gateway.toml"),
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(add.code, 0, "user add: {}", add.stderr);
    // … and the store relative to the file's directory.
    assert!(root.path().join("conf/data").is_dir());
    assert!(!root.path().join("data").exists());

    let list = gatehouse_in(
        &root.path().join("conf"),
        &["user", "list"],
        Some("gateway.toml"),
        "",
    );
    assert_eq!(list.code, 0, "user list: {}", list.stderr);
    assert!(list.stdout.starts_with("bob "), "{}", list.stdout);
    let list = gatehouse_in(
        &root.path().join("one"),
        &["user", "list"],
        Some("../conf/gateway.toml"),
        "",
    );
    assert!(list.stdout.starts_with("bob "), "{}", list.stdout);
}

/// `gatehouse -c conf/gateway.toml serve` started in `root`.
async fn serve_relative(root: &Path, config: &str) -> Gatehouse {
    let config_path = root.join("conf/gateway.toml");
    std::fs::write(&config_path, config).expect("write config");
    let mut command = Gatehouse::command(Path::new("conf/gateway.toml"));
    command.current_dir(root);
    Gatehouse::launch(command, config_path, root.join("gatehouse.stderr")).await
}

#[tokio::test]
async fn serve_reads_the_secret_file_and_store_next_to_the_config_and_sighup_rereads_it() {
    let upstream = EchoUpstream::start().await;
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(root.path().join("conf")).expect("mkdir");
    std::fs::write(root.path().join("conf/secret"), format!("{SECRET}\n")).expect("secret");
    let text = relative_config(
        &upstream.addr.to_string(),
        "[tokens]\nsecret_file = \"secret\"\n",
    );
    let mut gateway = serve_relative(root.path(), &text).await;
    // Started in `root`, where no `secret` exists: an unreadable secret_file stops the
    // start, so ready means conf/secret was read.
    gateway.wait_ready().await;
    let log = gateway.log();
    assert!(!log.contains("no GATEHOUSE_SECRET"), "{log}");
    assert!(root.path().join("conf/data").is_dir(), "{log}");
    assert!(!root.path().join("data").exists(), "{log}");

    let (status, _, _) = get(gateway.addr, "/open/x", &[]).await.expect("answer");
    assert_eq!(status, 401, "no route yet: a token is required");

    // SIGHUP re-reads conf/gateway.toml (a relative -c path) with the same resolution.
    // (The same port-0 listen keys: listeners are not reloaded, the running ones stay.)
    let reloaded = format!("{text}\n[[routes]]\npath = \"/open/**\"\naccess = \"public\"\n");
    std::fs::write(&gateway.config_path, reloaded).expect("rewrite config");
    gateway.signal("HUP");
    let deadline = Instant::now() + DEADLINE;
    loop {
        let status = get(gateway.addr, "/open/x", &[]).await.map(|(s, _, _)| s);
        if status == Some(200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reload never applied (last status {status:?}); log:\n{}",
            gateway.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(!gateway.log().contains("refused"), "{}", gateway.log());
}

#[tokio::test]
async fn serve_finds_relative_tls_files_next_to_the_config() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(root.path().join("conf/tls")).expect("mkdir");
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .expect("generate certificate");
    std::fs::write(root.path().join("conf/tls/cert.pem"), generated.cert.pem()).expect("cert");
    std::fs::write(
        root.path().join("conf/tls/key.pem"),
        generated.signing_key.serialize_pem(),
    )
    .expect("key");
    let text = relative_config("127.0.0.1:9", "").replace(
        "shutdown_grace = \"2s\"",
        "shutdown_grace = \"2s\"\ntls_cert = \"tls/cert.pem\"\ntls_key = \"tls/key.pem\"",
    );
    let mut gateway = serve_relative(root.path(), &text).await;
    // Started in `root`, where no `tls/` exists: it starts only if the files were found
    // next to the config.
    gateway.wait_ready().await;
    assert!(
        gateway.wait_for_log("https=true").await,
        "{}",
        gateway.log()
    );
}
