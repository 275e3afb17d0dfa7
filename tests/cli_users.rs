//! `gatehouse user …` (SPEC §1) driven through the real binary: on a stopped gateway's
//! store (the CLI opens it itself) and on a serving one (the CLI goes through the admin
//! socket and the change applies from the next request).

mod common;

use common::accounts;

use accounts::*;
use common::binary::*;

fn setup(extra: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &binary_config(dir.path(), extra));
    (dir, config)
}

fn list_json(config: &std::path::Path) -> serde_json::Value {
    let out = run_cli(config, &["user", "list", "--json"], "", &[]);
    assert_eq!(out.code, 0, "{out:?}");
    serde_json::from_str(&out.stdout).expect("list --json is JSON")
}

#[test]
fn user_commands_work_on_the_store_of_a_stopped_gateway() {
    let (_dir, config) = setup("");
    cli_add_user(&config, "Alice", &["admin", "dev"], PASSWORD);
    cli_add_user(&config, "bob", &[], PASSWORD);

    let text = run_cli(&config, &["user", "list"], "", &[]);
    assert_eq!(text.code, 0, "{text:?}");
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", text.stdout);
    let alice: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(
        &alice[..3],
        &["Alice", "admin,dev", "enabled"],
        "{}",
        lines[0]
    );
    assert!(
        alice[3].ends_with('Z') && alice[3].contains('T'),
        "{}",
        lines[0]
    );
    assert!(lines[1].starts_with("bob - enabled "), "{}", lines[1]);

    let list = list_json(&config);
    assert_eq!(list[0]["username"], "Alice");
    assert_eq!(list[0]["roles"], serde_json::json!(["admin", "dev"]));
    assert_eq!(list[0]["enabled"], true);
    let created = list[0]["created"].as_str().expect("created");
    assert!(humantime::parse_rfc3339(created).is_ok(), "{created}");

    for args in [
        vec!["user", "disable", "ALICE"],
        vec!["user", "roles", "alice", "ops"],
    ] {
        let out = run_cli(&config, &args, "", &[]);
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "a confirmation on stderr");
        assert!(out.stdout.is_empty(), "stdout stays clean: {out:?}");
    }
    let list = list_json(&config);
    assert_eq!(list[0]["enabled"], false);
    assert_eq!(list[0]["roles"], serde_json::json!(["ops"]));

    assert_eq!(
        run_cli(&config, &["user", "enable", "alice"], "", &[]).code,
        0
    );
    assert_eq!(
        run_cli(&config, &["user", "roles", "alice"], "", &[]).code,
        0
    );
    let out = run_cli(
        &config,
        &["user", "passwd", "alice", "--password-stdin"],
        "another password\r\n",
        &[],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let list = list_json(&config);
    assert_eq!(list[0]["enabled"], true);
    assert_eq!(list[0]["roles"], serde_json::json!([]));

    assert_eq!(
        run_cli(&config, &["user", "remove", "bob"], "", &[]).code,
        0
    );
    assert_eq!(list_json(&config).as_array().map(Vec::len), Some(1));
}

#[test]
fn user_command_failures_exit_1_with_a_message_and_usage_errors_exit_2() {
    let (_dir, config) = setup("");
    cli_add_user(&config, "carol", &[], PASSWORD);
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec!["user", "add", "CAROL", "--password-stdin"],
            "password-one\n",
            "exists",
        ),
        (
            vec!["user", "add", "bad name", "--password-stdin"],
            "password-one\n",
            "username",
        ),
        (
            vec!["user", "add", "dave", "--password-stdin"],
            "short\n",
            "at least 8",
        ),
        (vec!["user", "add", "dave", "--password-stdin"], "", "stdin"),
        (
            vec![
                "user",
                "add",
                "dave",
                "--role",
                "bad role",
                "--password-stdin",
            ],
            "password-one\n",
            "role",
        ),
        (vec!["user", "disable", "nobody"], "", "no user"),
        (
            vec!["user", "passwd", "nobody", "--password-stdin"],
            "password-one\n",
            "no user",
        ),
        (vec!["user", "remove", "nobody"], "", "no user"),
        (vec!["user", "roles", "nobody", "x"], "", "no user"),
    ];
    for (args, stdin, needle) in cases {
        let out = run_cli(&config, &args, stdin, &[]);
        assert_eq!(out.code, 1, "{args:?}: {out:?}");
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("password-one"), "{}", out.stderr);
    }
    // Without a terminal and without --password-stdin there is nobody to ask.
    let out = run_cli(&config, &["user", "add", "erin"], "", &[]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("--password-stdin"), "{}", out.stderr);
    assert_eq!(run_cli(&config, &["user", "add"], "", &[]).code, 2);
    assert_eq!(run_cli(&config, &["user", "frobnicate"], "", &[]).code, 2);
    assert_eq!(list_json(&config).as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn user_commands_apply_at_once_to_a_serving_gateway() {
    let (dir, config) = setup("");
    let served = Gatehouse::start(dir.path(), &config, &[]).await;
    let cli = |args: Vec<&'static str>, stdin: &'static str| {
        let config = config.clone();
        async move {
            tokio::task::spawn_blocking(move || run_cli(&config, &args, stdin, &[]))
                .await
                .expect("join")
        }
    };

    let out = cli(
        vec!["user", "add", "Frank", "--role", "dev", "--password-stdin"],
        "correct horse battery\n",
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}\nlog:\n{}", served.log());
    let tokens = served.login_ok("frank", PASSWORD).await;
    let access = tokens["access_token"].as_str().expect("token").to_string();
    assert_eq!(served.me(&access).await.status, 200);

    // Roles: the next request sees them.
    assert_eq!(
        cli(vec!["user", "roles", "frank", "admin"], "").await.code,
        0
    );
    assert_eq!(
        served.me(&access).await.json()["roles"],
        serde_json::json!(["admin"])
    );

    // Disable: the very next request with the old token is refused.
    assert_eq!(cli(vec!["user", "disable", "frank"], "").await.code, 0);
    let refused = served.me(&access).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.error_code(), "invalid_token");
    assert_eq!(cli(vec!["user", "enable", "frank"], "").await.code, 0);

    // Passwd: every earlier token stops working; the new password works.
    let tokens = served.login_ok("frank", PASSWORD).await;
    let access = tokens["access_token"].as_str().expect("token").to_string();
    let out = cli(
        vec!["user", "passwd", "frank", "--password-stdin"],
        "new password here\n",
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(served.me(&access).await.status, 401);
    let tokens = served.login_ok("frank", "new password here").await;
    let access = tokens["access_token"].as_str().expect("token").to_string();

    // List while serving.
    let out = cli(vec!["user", "list", "--json"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    let list: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(list[0]["username"], "Frank");

    // Remove.
    assert_eq!(cli(vec!["user", "remove", "frank"], "").await.code, 0);
    assert_eq!(served.me(&access).await.status, 401);
    let out = cli(vec!["user", "remove", "frank"], "").await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("no user"), "{}", out.stderr);
}

#[cfg(unix)]
#[tokio::test]
async fn the_admin_socket_is_private_and_removed_on_shutdown() {
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    let (dir, config) = setup("");
    let data = dir.path().join("data");
    let socket = data.join("admin.sock");
    let mut served = Gatehouse::start(dir.path(), &config, &[]).await;
    let meta = std::fs::symlink_metadata(&socket).expect("socket exists while serving");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let dir_mode = std::fs::metadata(&data).expect("data").permissions().mode();
    assert_eq!(dir_mode & 0o777, 0o700);

    assert_eq!(served.terminate().await, Some(0), "log:\n{}", served.log());
    assert!(!socket.exists(), "socket removed on shutdown");
    // With the gateway gone the CLI opens the store itself.
    cli_add_user(&config, "gina", &[], PASSWORD);
}

#[tokio::test]
async fn a_stale_socket_left_by_a_killed_gateway_does_not_block_the_cli_or_a_restart() {
    let (dir, config) = setup("");
    let mut served = Gatehouse::start(dir.path(), &config, &[]).await;
    served.kill_9();
    assert!(
        dir.path().join("data/admin.sock").exists(),
        "a stale socket is left"
    );
    // Nobody answers on it: the CLI falls back to the store.
    cli_add_user(&config, "hank", &[], PASSWORD);
    // A new gateway replaces the stale socket and serves the user.
    let served = Gatehouse::start(dir.path(), &config, &[]).await;
    served.login_ok("hank", PASSWORD).await;
    let out = tokio::task::spawn_blocking(move || {
        run_cli(&config, &["user", "disable", "hank"], "", &[])
    })
    .await
    .expect("join");
    assert_eq!(out.code, 0, "{out:?}");
    let denied = served
        .post_json(
            "/auth/login",
            &serde_json::json!({"username": "hank", "password": PASSWORD}),
            &[],
        )
        .await;
    assert_eq!(denied.status, 403);
}
