//! `gatehouse client …` (SPEC §1, §4 "Service clients", issue #14) driven through the real
//! binary: on a stopped gateway's store and on a serving one (through its admin socket:
//! the change applies from the next request). Tokens come from the accounts layer's
//! client-credentials use case (`Accounts::client_credentials`, what `/auth/token` with
//! `grant_type=client_credentials` calls), run in this process on the store while no
//! gateway holds it; the binary then judges them.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use common::accounts::PASSWORD;
use common::binary::*;
use common::{bearer, config_text, EchoUpstream, SECRET};
use gatehouse::accounts::{AccountError, Accounts};
use zeroize::Zeroizing;

const ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

const ROUTES: &str = r#"
[[routes]]
path = "/deploy/**"
roles = ["deploy"]

[[routes]]
path = "/admin/**"
roles = ["admin"]
"#;

fn setup(upstream: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("secret"), format!("{SECRET}\n")).expect("secret");
    let text = config_text(
        upstream,
        dir.path(),
        "",
        &format!("[log]\nformat = \"json\"\n{ROUTES}"),
    );
    let config = write_config(dir.path(), &text);
    (dir, config)
}

fn cli(config: &Path, args: &[&str]) -> Output {
    run_cli(config, args, "", &[])
}

/// `client add` / `client rotate`: exit 0, the secret alone on stdout, the id on stderr.
fn secret_of(out: &Output) -> Zeroizing<String> {
    assert_eq!(out.code, 0, "{out:?}");
    let secret = out.stdout.trim_end_matches('\n');
    assert_eq!(secret.len(), 43, "one 256-bit base64url secret: {out:?}");
    assert!(!secret.contains('\n'));
    assert!(
        !out.stderr.contains(secret),
        "the secret only on stdout, once"
    );
    Zeroizing::new(secret.to_string())
}

fn list_json(config: &Path) -> serde_json::Value {
    let out = cli(config, &["client", "list", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    serde_json::from_str(&out.stdout).expect("list --json is JSON")
}

/// Runs `check` on the accounts layer of the store at `config` (no gateway may hold it),
/// then releases the store.
async fn with_accounts<T>(config: &Path, check: impl AsyncFnOnce(&Accounts) -> T) -> T {
    let config = gatehouse::config::load(config).expect("config");
    let store = gatehouse::store::open(&config.store)
        .await
        .expect("open the store");
    let accounts = Accounts::open(store.clone(), &config)
        .await
        .expect("accounts");
    let result = check(&accounts).await;
    accounts.flush().await.expect("flush");
    drop(accounts);
    drop(store);
    result
}

async fn token_for(config: &Path, name: &str, secret: &Zeroizing<String>) -> String {
    let secret = secret.clone();
    with_accounts(config, async move |accounts: &Accounts| {
        accounts
            .client_credentials(name, secret, ADDRESS)
            .await
            .expect("client credentials")
            .access_token
    })
    .await
}

#[tokio::test]
async fn client_commands_work_on_the_store_of_a_stopped_gateway() {
    let (_dir, config) = setup("127.0.0.1:9");
    let added = cli(
        &config,
        &[
            "client", "add", "CI-Bot", "--role", "deploy", "--role", "ops",
        ],
    );
    let secret = secret_of(&added);
    let listed = list_json(&config);
    let id = listed[0]["id"].as_str().expect("id").to_string();
    assert!(added.stderr.contains(&id), "the id on stderr: {added:?}");
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(listed[0]["name"], "CI-Bot");
    assert_eq!(listed[0]["roles"], serde_json::json!(["deploy", "ops"]));
    let created = listed[0]["created"].as_str().expect("created");
    assert!(humantime::parse_rfc3339(created).is_ok(), "{created}");
    let text = cli(&config, &["client", "list"]);
    assert_eq!(text.code, 0, "{text:?}");
    assert_eq!(
        text.stdout.split_whitespace().collect::<Vec<_>>()[..3],
        ["CI-Bot", id.as_str(), "deploy,ops"],
        "{}",
        text.stdout
    );
    for out in [&text, &cli(&config, &["client", "list", "--json"])] {
        assert!(!out.stdout.contains(secret.as_str()), "no secret in list");
        assert!(!out.stdout.contains("sha256"), "no hash in list");
    }
    let export = cli(&config, &["store", "export"]);
    assert_eq!(export.code, 0, "{export:?}");
    assert!(
        !export.stdout.contains(secret.as_str()),
        "only the hash is stored"
    );
    assert!(
        export.stdout.contains(r#"{"type":"client""#),
        "{}",
        export.stdout
    );

    // One namespace with users; user verbs and user list leave the client alone.
    cli_add_user(&config, "alice", &[], PASSWORD);
    let failures: Vec<(Vec<&str>, &str, &str)> = vec![
        (vec!["client", "add", "ci-bot"], "", "exists"),
        (vec!["client", "add", "ALICE"], "", "exists"),
        (vec!["client", "add", "bad name"], "", "username"),
        (vec!["client", "add", "x", "--role", "bad role"], "", "role"),
        (vec!["client", "add", "gatehouse"], "", "reserved"),
        (
            vec!["user", "add", "ci-bot", "--password-stdin"],
            "password-one\n",
            "exists",
        ),
        (vec!["user", "disable", "ci-bot"], "", "no user"),
        (vec!["user", "roles", "ci-bot", "x"], "", "no user"),
        (vec!["user", "remove", "ci-bot"], "", "no user"),
        (
            vec!["user", "passwd", "ci-bot", "--password-stdin"],
            "password-one\n",
            "no user",
        ),
        (vec!["client", "remove", "alice"], "", "no service client"),
        (vec!["client", "rotate", "nobody"], "", "no service client"),
    ];
    for (args, stdin, needle) in failures {
        let out = run_cli(&config, &args, stdin, &[]);
        assert_eq!(out.code, 1, "{args:?}: {out:?}");
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    }
    assert_eq!(cli(&config, &["client", "add"]).code, 2);
    let users = cli(&config, &["user", "list", "--json"]);
    let users: serde_json::Value = serde_json::from_str(&users.stdout).expect("json");
    assert_eq!(users.as_array().map(Vec::len), Some(1), "{users}");
    assert_eq!(users[0]["username"], "alice");

    // The secret works; rotate: a new one works, the old one and its token do not.
    let token = token_for(&config, "ci-bot", &secret).await;
    let rotated = secret_of(&cli(&config, &["client", "rotate", "CI-BOT"]));
    assert_ne!(*rotated, *secret);
    let (old_secret, new_secret) = (secret.clone(), rotated.clone());
    with_accounts(&config, async move |accounts: &Accounts| {
        assert!(accounts.authenticate(&token).is_err(), "old token");
        assert_eq!(
            accounts
                .authenticate_client("ci-bot", old_secret, ADDRESS)
                .await,
            Err(AccountError::InvalidClient)
        );
        accounts
            .authenticate_client("ci-bot", new_secret, ADDRESS)
            .await
            .expect("the new secret");
    })
    .await;

    let removed = cli(&config, &["client", "remove", "ci-bot"]);
    assert_eq!(removed.code, 0, "{removed:?}");
    assert!(removed.stdout.is_empty());
    assert_eq!(list_json(&config), serde_json::json!([]));
    with_accounts(&config, async move |accounts: &Accounts| {
        assert_eq!(
            accounts
                .authenticate_client("ci-bot", rotated, ADDRESS)
                .await,
            Err(AccountError::InvalidClient)
        );
    })
    .await;
}

#[tokio::test]
async fn client_commands_apply_at_once_to_a_serving_gateway() {
    let upstream = EchoUpstream::start().await;
    let (dir, config) = setup(&upstream.addr.to_string());
    let secret = secret_of(&cli(
        &config,
        &["client", "add", "ci-bot", "--role", "deploy"],
    ));
    let id = list_json(&config)[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let token = token_for(&config, "ci-bot", &secret).await;

    let mut served = Gatehouse::start(dir.path(), &config, &[]).await;
    // /auth/me: the client's id, name and roles.
    let me = served.me(&token).await;
    assert_eq!(me.status, 200, "{:?}\n{}", me.json(), served.log());
    let body = me.json();
    assert_eq!(body["sub"], id.as_str());
    assert_eq!(body["username"], "ci-bot");
    assert_eq!(body["roles"], serde_json::json!(["deploy"]));
    // Route rules and identity headers treat it like a user: the user header is its name.
    let allowed = served
        .request("GET", "/deploy/run", &[&bearer(&token)], b"")
        .await;
    assert_eq!(allowed.status, 200);
    let seen = upstream.last().expect("forwarded");
    assert_eq!(seen.header("x-auth-user"), Some("ci-bot"));
    assert_eq!(seen.header("x-auth-subject"), Some(id.as_str()));
    assert_eq!(seen.header("x-auth-roles"), Some("deploy"));
    let refused = served
        .request("GET", "/admin/x", &[&bearer(&token)], b"")
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.error_code(), "insufficient_scope");

    // Rotate through the running gateway: the very next request with the token is refused.
    let rotate_config = config.clone();
    let rotated = tokio::task::spawn_blocking(move || {
        run_cli(&rotate_config, &["client", "rotate", "ci-bot"], "", &[])
    })
    .await
    .expect("join");
    let rotated = secret_of(&rotated);
    let after = served.me(&token).await;
    assert_eq!(after.status, 401);
    assert_eq!(after.error_code(), "invalid_token");
    let listed = tokio::task::spawn_blocking({
        let config = config.clone();
        move || cli(&config, &["client", "list"])
    })
    .await
    .expect("join");
    assert!(listed.stdout.starts_with("ci-bot "), "{listed:?}");
    assert!(!listed.stdout.contains(rotated.as_str()));
    served.terminate().await;

    // A token under the new secret, then `client remove` while serving: refused at once.
    let token = token_for(&config, "ci-bot", &rotated).await;
    let served = Gatehouse::start(dir.path(), &config, &[]).await;
    assert_eq!(served.me(&token).await.status, 200);
    let remove_config = config.clone();
    let removed = tokio::task::spawn_blocking(move || {
        run_cli(&remove_config, &["client", "remove", "ci-bot"], "", &[])
    })
    .await
    .expect("join");
    assert_eq!(removed.code, 0, "{removed:?}");
    let after = served.me(&token).await;
    assert_eq!(after.status, 401);
    assert_eq!(after.error_code(), "invalid_token");
    let log = served.log();
    assert!(!log.contains(rotated.as_str()), "no secret in the log");
    assert!(!log.contains(token.as_str()), "no token in the log");
}
