//! `gatehouse store export` / `store import FILE` with the real binary (SPEC §1, §8
//! "Moving"): an export taken while a gateway serves the store (through its admin socket)
//! and from the stopped store, restored into a fresh store, where a new gateway lets the
//! user log in with the old password, rotates the old live refresh token, still refuses
//! the revoked access token and the reused refresh token, and still accepts an access token
//! signed before the export with the store's generated secret (the secret travels). Import
//! refuses a store a gateway is serving and a non-empty store, changing nothing; a
//! malformed line is reported with its number and nothing is imported. Never the secret
//! on stderr or in the log.

mod common;

use base64::Engine as _;

use common::accounts::PASSWORD;
use common::bearer;
use common::binary::*;

fn setup(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    write_config(dir, &binary_config(dir, ""))
}

fn field(value: &serde_json::Value, name: &str) -> String {
    value[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {value}"))
        .to_string()
}

/// `store export` that must succeed: the file.
fn export(config: &std::path::Path) -> Output {
    let out = run_cli(config, &["store", "export"], "", &[]);
    assert_eq!(out.code, 0, "store export: {out:?}");
    out
}

/// The record lines of an export (the header carries its creation time).
fn records(file: &str) -> Vec<String> {
    file.lines().skip(1).map(String::from).collect()
}

/// The generated secret as the export carries it (base64).
fn secret_line(file: &str) -> String {
    let line = file
        .lines()
        .find(|line| line.contains(r#""type":"secret""#))
        .unwrap_or_else(|| panic!("no secret line in:\n{file}"));
    let value: serde_json::Value = serde_json::from_str(line).expect("json");
    field(&value, "secret")
}

#[tokio::test]
async fn an_export_of_a_serving_gateway_restores_users_sessions_revocations_and_the_secret() {
    let root = tempfile::tempdir().expect("tempdir");
    let source = setup(&root.path().join("a"));
    cli_add_user(&source, "alice", &["admin"], PASSWORD);
    cli_add_user(&source, "bob", &[], PASSWORD);
    let mut served = Gatehouse::start(&root.path().join("a"), &source, &[]).await;

    // A session rotated once (a spent and a live refresh token), and an access token
    // revoked by logout.
    let first = served.login_ok("alice", PASSWORD).await;
    let rotated = served
        .post_json(
            "/auth/refresh",
            &serde_json::json!({"refresh_token": field(&first, "refresh_token")}),
            &[],
        )
        .await;
    assert_eq!(rotated.status, 200);
    let rotated = rotated.json();
    let revoked = served.login_ok("bob", PASSWORD).await;
    let logout = served
        .request(
            "POST",
            "/auth/logout",
            &[&bearer(&field(&revoked, "access_token"))],
            b"",
        )
        .await;
    assert_eq!(logout.status, 204);

    // While it serves: through the admin socket.
    let live = export(&source);
    assert!(
        live.stdout.starts_with(r#"{"gatehouse_export":1,"#),
        "{}",
        live.stdout
    );
    assert!(
        live.stderr.contains("warning") && live.stderr.contains("signing secret"),
        "{}",
        live.stderr
    );
    let secret = secret_line(&live.stdout);
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(&secret)
            .expect("base64")
            .len(),
        64,
        "the generated secret"
    );
    assert!(!live.stderr.contains(&secret));
    assert!(served.wait_for_log("\"op\":\"export\"").await);
    assert!(!served.log().contains(&secret), "the secret is in the log");
    let kinds = |file: &str, kind: &str| {
        file.lines()
            .filter(|line| line.contains(&format!(r#""type":"{kind}""#)))
            .count()
    };
    assert_eq!(kinds(&live.stdout, "user"), 2);
    assert_eq!(kinds(&live.stdout, "session"), 2);
    assert_eq!(kinds(&live.stdout, "refresh_token"), 3);
    assert_eq!(kinds(&live.stdout, "revoked"), 1);

    // Stopped: the same records, read from the store directly.
    assert_eq!(served.terminate().await, Some(0));
    let stopped = export(&source);
    assert_eq!(records(&stopped.stdout), records(&live.stdout));

    let target_dir = root.path().join("b");
    let target = setup(&target_dir);
    let file = root.path().join("backup.jsonl");
    std::fs::write(&file, &live.stdout).expect("write backup");
    let imported = run_cli(
        &target,
        &["store", "import", file.to_str().expect("utf-8")],
        "",
        &[],
    );
    assert_eq!(imported.code, 0, "{imported:?}");
    assert!(imported.stderr.contains("2 users"), "{}", imported.stderr);
    assert!(!imported.stderr.contains(&secret));

    let mut restored = Gatehouse::start(&target_dir, &target, &[]).await;
    restored.wait_ready().await;
    // Signed with the generated secret before the export: still good.
    let me = restored.me(&field(&rotated, "access_token")).await;
    assert_eq!(me.status, 200, "{}", restored.log());
    assert_eq!(me.json()["roles"], serde_json::json!(["admin"]));
    // The old password.
    restored.login_ok("bob", PASSWORD).await;
    // The revoked access token stays revoked.
    assert_eq!(
        restored.me(&field(&revoked, "access_token")).await.status,
        401
    );
    // The live refresh token rotates.
    let again = restored
        .post_json(
            "/auth/refresh",
            &serde_json::json!({"refresh_token": field(&rotated, "refresh_token")}),
            &[],
        )
        .await;
    assert_eq!(again.status, 200, "{}", restored.log());
    // The token spent before the export is reuse: refused, and its family ends.
    let reused = restored
        .post_json(
            "/auth/refresh",
            &serde_json::json!({"refresh_token": field(&first, "refresh_token")}),
            &[],
        )
        .await;
    assert_eq!(reused.status, 401);
    assert_eq!(
        restored
            .me(&field(&again.json(), "access_token"))
            .await
            .status,
        401,
        "reuse ended the imported session"
    );

    // A serving gateway's store: refused, stop it first.
    let refused = run_cli(
        &target,
        &["store", "import", file.to_str().expect("utf-8")],
        "",
        &[],
    );
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.contains("stop it first"),
        "{}",
        refused.stderr
    );
    assert_eq!(restored.terminate().await, Some(0));

    // A stopped, non-empty store: refused, and nothing changes.
    let before = export(&target);
    let refused = run_cli(
        &target,
        &["store", "import", file.to_str().expect("utf-8")],
        "",
        &[],
    );
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("not empty"), "{}", refused.stderr);
    assert_eq!(records(&export(&target).stdout), records(&before.stdout));
}

#[tokio::test]
async fn a_malformed_line_is_reported_by_number_and_nothing_is_imported() {
    let root = tempfile::tempdir().expect("tempdir");
    let source = setup(&root.path().join("a"));
    cli_add_user(&source, "alice", &[], PASSWORD);
    cli_add_user(&source, "bob", &[], PASSWORD);
    let good = export(&source).stdout;
    let stderr = export(&source).stderr;
    assert!(
        stderr.contains("no generated signing secret") && !stderr.contains("can sign tokens"),
        "no gateway ran: no generated secret yet, and the warning says so: {stderr}"
    );

    let mut lines: Vec<&str> = good.lines().collect();
    lines[2] = r#"{"type":"user","id":"x"}"#;
    let bad = root.path().join("bad.jsonl");
    std::fs::write(&bad, lines.join("\n") + "\n").expect("write");
    let target = setup(&root.path().join("b"));
    let out = run_cli(
        &target,
        &["store", "import", bad.to_str().expect("utf-8")],
        "",
        &[],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("line 3"), "{}", out.stderr);
    assert!(
        out.stderr.contains("nothing was imported"),
        "{}",
        out.stderr
    );

    // Cut short: refused too.
    let cut = root.path().join("cut.jsonl");
    std::fs::write(&cut, good.lines().take(2).collect::<Vec<_>>().join("\n")).expect("write");
    let out = run_cli(
        &target,
        &["store", "import", cut.to_str().expect("utf-8")],
        "",
        &[],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("truncated"), "{}", out.stderr);

    // Nothing was imported: the store is still empty, so the good file (from stdin) loads.
    let out = run_cli(&target, &["store", "import", "-"], &good, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let list = run_cli(&target, &["user", "list"], "", &[]);
    assert_eq!(list.stdout.lines().count(), 2, "{list:?}");
}

#[test]
fn usage_and_missing_stores_exit_as_the_spec_says() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = setup(root.path());
    let out = run_cli(&config, &["store", "import"], "", &[]);
    assert_eq!(out.code, 2, "{out:?}");
    let out = run_cli(&config, &["store", "export"], "", &[]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("no store at"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    assert!(
        !root.path().join("data").exists(),
        "export created no store"
    );
}
