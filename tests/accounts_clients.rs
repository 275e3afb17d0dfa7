//! Service clients in the accounts layer, without HTTP, on a real sled store (issue #14,
//! SPEC §4 "Service clients"): the client-credentials use case and its token, rotate and
//! remove ending every earlier token at once (same second included), the one name
//! namespace shared with users, user verbs leaving clients alone, and failures counting
//! toward the login lockout.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use base64::Engine as _;
use gatehouse::accounts::{AccountError, Accounts, MemoryThrottle};
use gatehouse::store::{PrincipalKind, Store};
use zeroize::Zeroizing;

const PASSWORD: &str = "correct horse battery";
const ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn config(dir: &std::path::Path, extra: &str) -> gatehouse::Config {
    let text = format!(
        "[store]\npath = \"{}\"\n[passwords]\nmemory_kib = 64\niterations = 1\n{extra}[upstreams.default]\nurl = \"http://127.0.0.1:9\"\n",
        dir.join("data").display()
    );
    gatehouse::config::parse(&text).expect("valid config")
}

async fn open(dir: &std::path::Path, extra: &str) -> (Arc<dyn Store>, Accounts) {
    let config = config(dir, extra);
    let store = gatehouse::store::open(&config.store).await.expect("store");
    let accounts = Accounts::open(store.clone(), &config)
        .await
        .expect("accounts")
        .with_throttle(Arc::new(MemoryThrottle::new(config.login)));
    (store, accounts)
}

fn z(text: &str) -> Zeroizing<String> {
    Zeroizing::new(text.to_string())
}

fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json")
}

#[tokio::test]
async fn a_new_client_gets_a_token_that_names_it_and_carries_its_roles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, accounts) = open(dir.path(), "").await;
    let directory = accounts.directory().clone();
    let added = directory
        .add_client("CI-Bot", vec!["deploy".into(), "deploy".into()])
        .await
        .expect("add");
    assert_eq!(added.secret.len(), 43);
    assert_eq!(added.client.name, "CI-Bot");
    assert_eq!(added.client.roles, ["deploy"]);
    assert!(
        !format!("{added:?}").contains(added.secret.as_str()),
        "Debug never shows the secret"
    );
    let stored = store
        .find_user_by_name("ci-bot")
        .await
        .expect("find")
        .expect("stored");
    assert_eq!(stored.kind, PrincipalKind::Client);
    assert!(stored
        .password_hash
        .starts_with("$gatehouse-client-sha256$"));
    assert!(!stored.password_hash.contains(added.secret.as_str()));

    // Names compare case-insensitively, as usernames do.
    let token = accounts
        .client_credentials("ci-bot", added.secret.clone(), ADDRESS)
        .await
        .expect("client credentials");
    assert_eq!(token.token_type, "Bearer");
    assert_eq!(token.expires_in, 900);
    let body = serde_json::to_value(&token).expect("json");
    assert_eq!(
        body.as_object().map(|o| {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            keys
        }),
        Some(vec![
            &"access_token".to_string(),
            &"expires_in".to_string(),
            &"token_type".to_string()
        ]),
        "no refresh token"
    );
    let claims = claims(&token.access_token);
    assert_eq!(claims["sub"], added.client.id.as_str());
    assert_eq!(claims["username"], "CI-Bot");
    assert_eq!(claims["client_id"], "CI-Bot");
    assert_eq!(claims["roles"], serde_json::json!(["deploy"]));
    assert!(claims["sid"].is_string(), "{claims}");

    let identity = accounts
        .authenticate(&token.access_token)
        .expect("the token is valid");
    assert!(identity.is_client());
    assert_eq!(identity.client_id(), Some("CI-Bot"));
    assert_eq!(identity.username(), "CI-Bot");
    assert_eq!(identity.sub(), added.client.id);
    assert_eq!(identity.roles(), ["deploy"]);

    accounts
        .authenticate_client("CI-BOT", added.secret.clone(), ADDRESS)
        .await
        .expect("authenticate");
    let listed = directory.list_clients().await.expect("list");
    assert_eq!(listed, vec![added.client.clone()]);
}

#[tokio::test]
async fn wrong_secrets_unknown_names_and_users_all_fail_as_invalid_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, accounts) = open(dir.path(), "").await;
    let directory = accounts.directory().clone();
    let added = directory.add_client("ci", vec![]).await.expect("add");
    directory
        .add("alice", vec![], z(PASSWORD))
        .await
        .expect("user");
    for (name, secret) in [
        ("ci", "not-the-secret"),
        ("ci", ""),
        ("nobody", added.secret.as_str()),
        ("alice", PASSWORD),
        ("not a name!", added.secret.as_str()),
    ] {
        assert_eq!(
            accounts
                .client_credentials(name, z(secret), ADDRESS)
                .await
                .map(|_| ()),
            Err(AccountError::InvalidClient),
            "{name}"
        );
        assert_eq!(
            accounts.authenticate_client(name, z(secret), ADDRESS).await,
            Err(AccountError::InvalidClient),
            "{name}"
        );
    }
    let long = format!("{}{}", added.secret.as_str(), "x".repeat(300));
    assert_eq!(
        accounts.authenticate_client("ci", z(&long), ADDRESS).await,
        Err(AccountError::InvalidClient)
    );
}

#[tokio::test]
async fn rotate_and_remove_end_every_earlier_token_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, accounts) = open(dir.path(), "").await;
    let directory = accounts.directory().clone();
    let added = directory.add_client("ci", vec![]).await.expect("add");
    let first = accounts
        .client_credentials("ci", added.secret.clone(), ADDRESS)
        .await
        .expect("token")
        .access_token;
    assert!(accounts.authenticate(&first).is_ok());

    // Rotation in the same second as the token: it still ends it.
    let rotated = directory.rotate_client("ci").await.expect("rotate");
    assert_ne!(*rotated.secret, *added.secret);
    assert_eq!(rotated.client.id, added.client.id);
    assert!(
        accounts.authenticate(&first).is_err(),
        "old token after rotate"
    );
    assert_eq!(
        accounts
            .authenticate_client("ci", added.secret.clone(), ADDRESS)
            .await,
        Err(AccountError::InvalidClient),
        "old secret after rotate"
    );
    let second = accounts
        .client_credentials("ci", rotated.secret.clone(), ADDRESS)
        .await
        .expect("token with the new secret")
        .access_token;
    assert!(accounts.authenticate(&second).is_ok());

    directory.remove_client("ci").await.expect("remove");
    assert!(
        accounts.authenticate(&second).is_err(),
        "token after remove"
    );
    assert_eq!(
        accounts
            .authenticate_client("ci", rotated.secret.clone(), ADDRESS)
            .await,
        Err(AccountError::InvalidClient)
    );
    assert_eq!(
        directory.remove_client("ci").await,
        Err(AccountError::NoSuchClient("ci".into()))
    );
    assert_eq!(
        directory.rotate_client("ci").await.map(|_| ()),
        Err(AccountError::NoSuchClient("ci".into()))
    );

    // The same name again is another client: the old tokens stay dead.
    let again = directory.add_client("CI", vec![]).await.expect("add again");
    assert_ne!(again.client.id, added.client.id);
    assert!(accounts.authenticate(&second).is_err());
    assert!(accounts.authenticate(&first).is_err());
}

#[tokio::test]
async fn users_and_clients_share_one_namespace_and_user_verbs_leave_clients_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, accounts) = open(dir.path(), "").await;
    let directory = accounts.directory().clone();
    let client = directory
        .add_client("ci-bot", vec!["deploy".into()])
        .await
        .expect("add");
    directory
        .add("alice", vec![], z(PASSWORD))
        .await
        .expect("user");

    assert_eq!(
        directory.add("CI-BOT", vec![], z(PASSWORD)).await,
        Err(AccountError::UsernameTaken)
    );
    assert_eq!(
        directory.add_client("Alice", vec![]).await.map(|_| ()),
        Err(AccountError::UsernameTaken)
    );
    assert_eq!(
        directory.add_client("ci-bot", vec![]).await.map(|_| ()),
        Err(AccountError::UsernameTaken)
    );
    assert!(matches!(
        directory.add_client("Gatehouse", vec![]).await,
        Err(AccountError::Policy(_))
    ));
    assert!(matches!(
        directory.add_client("bad name", vec![]).await,
        Err(AccountError::Policy(_))
    ));
    assert!(matches!(
        directory.add_client("ok", vec!["bad role!".into()]).await,
        Err(AccountError::Policy(_))
    ));
    assert_eq!(
        accounts
            .register("ci-bot", z(PASSWORD), ADDRESS)
            .await
            .map(|_| ()),
        Err(AccountError::UsernameTaken)
    );

    let no_user = Err(AccountError::NoSuchUser("ci-bot".into()));
    assert_eq!(directory.set_password("ci-bot", z(PASSWORD)).await, no_user);
    assert_eq!(directory.set_enabled("ci-bot", false).await, no_user);
    assert_eq!(directory.set_enabled("ci-bot", true).await, no_user);
    assert_eq!(
        directory.set_roles("ci-bot", vec![]).await.map(|_| ()),
        no_user
    );
    assert_eq!(directory.remove("ci-bot").await, no_user);
    assert_eq!(
        directory.remove_client("alice").await,
        Err(AccountError::NoSuchClient("alice".into()))
    );
    let users: Vec<String> = directory
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(users, ["alice"]);
    let clients: Vec<String> = directory
        .list_clients()
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(clients, ["ci-bot"]);

    // The client is untouched by all of that: its secret still works.
    let stored = store
        .find_user(&client.client.id)
        .await
        .expect("find")
        .expect("still there");
    assert_eq!((stored.enabled, stored.generation), (true, 0));
    assert_eq!(stored.roles, ["deploy"]);

    // A client's name and secret are no login; a client token changes no password.
    assert_eq!(
        accounts
            .login("ci-bot", client.secret.clone(), ADDRESS)
            .await
            .map(|_| ()),
        Err(AccountError::InvalidCredentials)
    );
    let token = accounts
        .client_credentials("ci-bot", client.secret.clone(), ADDRESS)
        .await
        .expect("token");
    let identity = accounts.authenticate(&token.access_token).expect("valid");
    assert_eq!(
        accounts
            .change_password(&identity, client.secret.clone(), z("another long password"))
            .await
            .map(|_| ()),
        Err(AccountError::InvalidCredentials)
    );
    assert!(accounts.authenticate(&token.access_token).is_ok());
}

#[tokio::test]
async fn client_authentication_failures_count_toward_the_lockout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, accounts) = open(
        dir.path(),
        "[login]\nmax_failures = 3\nmax_failures_per_address = 100\nwindow = \"1m\"\nlockout = \"1m\"\n",
    )
    .await;
    let added = accounts
        .directory()
        .add_client("ci", vec![])
        .await
        .expect("add");
    for _ in 0..3 {
        assert_eq!(
            accounts
                .authenticate_client("ci", z("wrong"), ADDRESS)
                .await,
            Err(AccountError::InvalidClient)
        );
    }
    assert!(
        matches!(
            accounts
                .client_credentials("CI", added.secret.clone(), ADDRESS)
                .await,
            Err(AccountError::TooManyAttempts { .. })
        ),
        "locked out by name, the right secret included"
    );
    assert!(accounts.throttle().unlock("ci").await.expect("unlock"));
    accounts
        .client_credentials("ci", added.secret.clone(), ADDRESS)
        .await
        .expect("after unlock");
}
