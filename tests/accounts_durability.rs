//! Durability and secrets with the real binary (SPEC §2 `[tokens]`, §7): acknowledged
//! writes survive `kill -9`; tokens survive a restart with the secret generated and kept
//! in the store; a short secret is refused at start; a changed or forgotten secret over
//! a store served with one is refused until `migrate --reset-secret-fingerprint`. One test runs the default argon2
//! parameters.

mod common;

use common::accounts;

use std::time::{Duration, Instant};

use accounts::*;
use common::bearer;
use common::binary::*;

fn setup(extra: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &binary_config(dir.path(), extra));
    (dir, config)
}

fn field(value: &serde_json::Value, name: &str) -> String {
    value[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {value}"))
        .to_string()
}

#[tokio::test]
async fn a_user_added_by_the_cli_is_there_when_a_gateway_starts() {
    let (dir, config) = setup("");
    cli_add_user(&config, "alice", &["admin"], PASSWORD);
    let served = Gatehouse::start(dir.path(), &config, &[]).await;
    let tokens = served.login_ok("alice", PASSWORD).await;
    let me = served.me(&field(&tokens, "access_token")).await;
    assert_eq!(me.json()["roles"], serde_json::json!(["admin"]));
}

#[tokio::test]
async fn writes_a_gateway_acknowledged_survive_kill_9() {
    let (dir, config) = setup("[registration]\nenabled = true\n");
    let mut served = Gatehouse::start(dir.path(), &config, &[]).await;
    cli_add_user(&config, "alice", &[], PASSWORD);

    // A registration, a logout, a reuse-detected session and a password change, each
    // answered before the kill.
    let registered = served
        .post_json(
            "/auth/register",
            &serde_json::json!({"username": "bob", "password": PASSWORD}),
            &[],
        )
        .await;
    assert_eq!(registered.status, 201);
    let logged_out = served.login_ok("alice", PASSWORD).await;
    let response = served
        .post_json(
            "/auth/logout",
            &serde_json::json!({"refresh_token": field(&logged_out, "refresh_token")}),
            &[],
        )
        .await;
    assert_eq!(response.status, 204);
    let revoked_by_bearer = served.login_ok("alice", PASSWORD).await;
    let response = served
        .request(
            "POST",
            "/auth/logout",
            &[&bearer(&field(&revoked_by_bearer, "access_token"))],
            b"",
        )
        .await;
    assert_eq!(response.status, 204);
    let before_change = served.login_ok("alice", PASSWORD).await;
    let response = served
        .post_json(
            "/auth/password",
            &serde_json::json!({"current_password": PASSWORD, "new_password": "changed password"}),
            &[&bearer(&field(&before_change, "access_token"))],
        )
        .await;
    response.assert_status(200);
    let after_change = response.json();

    served.kill_9();
    let served = Gatehouse::start(dir.path(), &config, &[]).await;

    // Registration and password change stuck.
    served.login_ok("bob", PASSWORD).await;
    let old_password = served
        .post_json(
            "/auth/login",
            &serde_json::json!({"username": "alice", "password": PASSWORD}),
            &[],
        )
        .await;
    assert_eq!(old_password.status, 401);
    served.login_ok("alice", "changed password").await;
    // Revocations stuck.
    for dead in [&logged_out, &revoked_by_bearer, &before_change] {
        let refreshed = served
            .post_json(
                "/auth/refresh",
                &serde_json::json!({"refresh_token": field(dead, "refresh_token")}),
                &[],
            )
            .await;
        assert_eq!(refreshed.status, 401);
        assert_eq!(served.me(&field(dead, "access_token")).await.status, 401);
    }
    // The session made by the password change lives on, signed with the kept secret.
    assert_eq!(
        served
            .me(&field(&after_change, "access_token"))
            .await
            .status,
        200
    );
    let refreshed = served
        .post_json(
            "/auth/refresh",
            &serde_json::json!({"refresh_token": field(&after_change, "refresh_token")}),
            &[],
        )
        .await;
    assert_eq!(refreshed.status, 200, "log:\n{}", served.log());
}

#[tokio::test]
async fn a_refresh_rotation_acknowledged_before_kill_9_stays_spent() {
    let (dir, config) = setup("");
    cli_add_user(&config, "carol", &[], PASSWORD);
    let mut served = Gatehouse::start(dir.path(), &config, &[]).await;
    let first = served.login_ok("carol", PASSWORD).await;
    let rotated = served
        .post_json(
            "/auth/refresh",
            &serde_json::json!({"refresh_token": field(&first, "refresh_token")}),
            &[],
        )
        .await;
    assert_eq!(rotated.status, 200);
    let second = rotated.json();
    served.kill_9();
    let served = Gatehouse::start(dir.path(), &config, &[]).await;
    // Replaying the spent token after the restart is still reuse: the family ends.
    let replay = served
        .post_json(
            "/auth/refresh",
            &serde_json::json!({"refresh_token": field(&first, "refresh_token")}),
            &[],
        )
        .await;
    assert_eq!(replay.status, 401);
    let successor = served
        .post_json(
            "/auth/refresh",
            &serde_json::json!({"refresh_token": field(&second, "refresh_token")}),
            &[],
        )
        .await;
    assert_eq!(successor.status, 401);
}

#[tokio::test]
async fn tokens_survive_a_restart_with_the_generated_secret() {
    let (dir, config) = setup("");
    cli_add_user(&config, "dave", &[], PASSWORD);
    let mut served = Gatehouse::start(dir.path(), &config, &[]).await;
    assert!(
        served.log().contains("replicas must share one secret"),
        "a generated secret is warned about:\n{}",
        served.log()
    );
    let tokens = served.login_ok("dave", PASSWORD).await;
    assert_eq!(served.terminate().await, Some(0));
    let served = Gatehouse::start(dir.path(), &config, &[]).await;
    assert_eq!(served.me(&field(&tokens, "access_token")).await.status, 200);
    // The secret never reaches the log.
    assert!(!served.log().contains("signing_secret"), "{}", served.log());
}

/// `gatehouse serve` with `envs` (no inherited secret) that must exit on its own: its
/// exit code and log. Panics if it keeps running past the deadline.
async fn refused_start(
    dir: &std::path::Path,
    config: &std::path::Path,
    envs: &[(&str, &str)],
) -> (i32, String) {
    let log_path = dir.join("refused.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut child = Gatehouse::command(config)
        .envs(envs.iter().copied())
        .stderr(std::process::Stdio::from(log))
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "serve kept running; log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    (
        status.code().unwrap_or(-1),
        std::fs::read_to_string(&log_path).unwrap_or_default(),
    )
}

/// Issue #16: a restart that forgets `GATEHOUSE_SECRET`, or gives another one, would log
/// everyone out; over a store served with a configured secret it exits 1 saying why and
/// how to rotate on purpose. The same secret serves; after `gatehouse migrate
/// --reset-secret-fingerprint` a new secret serves and the old tokens are refused.
#[tokio::test]
async fn a_changed_or_missing_secret_is_refused_until_the_fingerprint_is_reset() {
    let (dir, config) = setup("");
    cli_add_user(&config, "erin", &[], PASSWORD);
    let env_secret = (
        "GATEHOUSE_SECRET",
        "an-environment-secret-of-40-bytes-length!",
    );
    let other_secret = (
        "GATEHOUSE_SECRET",
        "another-environment-secret-of-46-bytes-length!",
    );
    let mut served = Gatehouse::start(dir.path(), &config, &[env_secret]).await;
    let tokens = served.login_ok("erin", PASSWORD).await;
    assert_eq!(served.terminate().await, Some(0));

    // Forgotten: no secret configured, none generated in the store.
    let (code, log) = refused_start(dir.path(), &config, &[]).await;
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("no GATEHOUSE_SECRET or tokens.secret_file is configured, but this store was served with a configured signing secret"),
        "{log}"
    );
    assert!(
        log.contains("gatehouse migrate --reset-secret-fingerprint"),
        "the way to rotate on purpose is said: {log}"
    );
    // Another one.
    let (code, log) = refused_start(dir.path(), &config, &[other_secret]).await;
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("the signing secret differs from the one this store was served with (fingerprint mismatch)"),
        "{log}"
    );
    assert!(
        !log.contains(env_secret.1) && !log.contains(other_secret.1),
        "no secret in the log: {log}"
    );

    // The same secret: it serves, and the token still verifies (nothing was generated by
    // the refused starts).
    let mut served = Gatehouse::start(dir.path(), &config, &[env_secret]).await;
    assert_eq!(served.me(&field(&tokens, "access_token")).await.status, 200);
    assert_eq!(served.terminate().await, Some(0));

    // A deliberate rotation: the gateway stopped, the fingerprint forgotten.
    let reset = run_cli(&config, &["migrate", "--reset-secret-fingerprint"], "", &[]);
    assert_eq!(reset.code, 0, "{reset:?}");
    assert!(
        reset.stdout.contains("fingerprint is forgotten"),
        "{reset:?}"
    );
    let mut served = Gatehouse::start(dir.path(), &config, &[other_secret]).await;
    let me = served.me(&field(&tokens, "access_token")).await;
    assert_eq!(me.status, 401, "a token of the old secret");
    assert_eq!(me.error_code(), "invalid_token");
    let fresh = served.login_ok("erin", PASSWORD).await;
    assert_eq!(served.me(&field(&fresh, "access_token")).await.status, 200);
    assert_eq!(served.terminate().await, Some(0));
    // The new secret is the kept one now: the old one is refused in turn.
    let (code, log) = refused_start(dir.path(), &config, &[env_secret]).await;
    assert_eq!(code, 1, "{log}");

    // Without the reset, migrate on sled says it has no schema.
    let plain = run_cli(&config, &["migrate"], "", &[]);
    assert_eq!(plain.code, 1, "{plain:?}");
    assert!(
        plain.stderr.contains("--reset-secret-fingerprint"),
        "{plain:?}"
    );
}

/// The reset needs the gateway stopped: sled lets one process open the store.
#[tokio::test]
async fn the_fingerprint_reset_refuses_while_a_gateway_holds_the_store() {
    let (dir, config) = setup("");
    let secret = (
        "GATEHOUSE_SECRET",
        "an-environment-secret-of-40-bytes-length!",
    );
    let mut served = Gatehouse::start(dir.path(), &config, &[secret]).await;
    let reset = run_cli(&config, &["migrate", "--reset-secret-fingerprint"], "", &[]);
    assert_eq!(reset.code, 1, "{reset:?}");
    assert!(reset.stderr.contains("stop the gateway first"), "{reset:?}");
    assert_eq!(served.terminate().await, Some(0));
}

#[test]
fn a_secret_shorter_than_32_bytes_is_refused_at_start() {
    let (dir, config) = setup("");
    let out = run_cli(
        &config,
        &["serve"],
        "",
        &[("GATEHOUSE_SECRET", "only-31-bytes-of-secret-here!!!")],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("GATEHOUSE_SECRET"), "{}", out.stderr);
    assert!(out.stderr.contains("at least 32"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("only-31-bytes"),
        "the secret is not echoed: {}",
        out.stderr
    );

    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "short\n").expect("write secret");
    let text = binary_config(
        dir.path(),
        &format!("[tokens]\nsecret_file = \"{}\"\n", secret_file.display()),
    );
    let config = write_config(dir.path(), &text);
    let out = run_cli(&config, &["serve"], "", &[]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("secret_file") && out.stderr.contains("at least 32"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn default_argon2_parameters_work_and_unknown_users_take_as_long_as_wrong_passwords() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No [passwords] section: OWASP's minimum (19 MiB, t=2, p=1).
    // Ten deliberate failures follow: lift the brute-force limit so they are all judged.
    let text = binary_config(dir.path(), "[login]\nmax_failures = 1000\n")
        .replace("[passwords]\nmemory_kib = 64\niterations = 1\n", "");
    assert!(!text.contains("[passwords]"));
    let config = write_config(dir.path(), &text);
    cli_add_user(&config, "frank", &[], PASSWORD);
    let served = Gatehouse::start(dir.path(), &config, &[]).await;
    let tokens = served.login_ok("frank", PASSWORD).await;
    assert!(claims_of(&field(&tokens, "access_token"))["sub"].is_string());

    async fn timed(served: &Gatehouse, username: &str) -> (Duration, Vec<u8>) {
        let started = Instant::now();
        let response = served
            .post_json(
                "/auth/login",
                &serde_json::json!({"username": username, "password": "wrong password"}),
                &[],
            )
            .await;
        assert_eq!(response.status, 401);
        (started.elapsed(), response.body)
    }
    // Interleaved samples; the fastest of each is the least disturbed by other work on
    // the machine, and both must have paid for a full argon2id verification.
    let mut wrong = Duration::MAX;
    let mut unknown = Duration::MAX;
    for _ in 0..5 {
        let (time, body_wrong) = timed(&served, "frank").await;
        wrong = wrong.min(time);
        let (time, body_unknown) = timed(&served, "nobody-here").await;
        unknown = unknown.min(time);
        assert_eq!(body_wrong, body_unknown);
    }
    let (wrong, unknown) = (wrong.as_secs_f64(), unknown.as_secs_f64());
    assert!(
        unknown > wrong * 0.5 && unknown < wrong * 2.0,
        "wrong password {wrong:.4}s vs unknown user {unknown:.4}s"
    );
}
