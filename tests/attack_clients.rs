//! Attacks on service clients (issue #14, SPEC §4 "Service clients"): a name that differs
//! only in case, a token of a client removed and added again under the same name, forged
//! client tokens without (or with a stale) secret marker, a client's secret used as a
//! password, and failures that do not tell an unknown client from a wrong secret.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use common::accounts::{admin, login, post_json, PASSWORD};
use common::*;
use gatehouse::accounts::{AccountError, Accounts};
use gatehouse::admin::protocol::{Reply, Request};
use zeroize::Zeroizing;

const ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn add_client(gateway: &TestGateway, name: &str, roles: &[&str]) -> (String, Reply) {
    let reply = admin(
        gateway,
        Request::ClientAdd {
            name: name.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        },
    )
    .await;
    assert!(reply.ok, "client add {name}: {reply:?}");
    (client_id(gateway, name).await, reply)
}

async fn client_id(gateway: &TestGateway, name: &str) -> String {
    let reply = admin(gateway, Request::ClientList).await;
    reply
        .clients
        .expect("a list")
        .into_iter()
        .find(|c| c.name.eq_ignore_ascii_case(name))
        .map(|c| c.id)
        .expect("listed")
}

/// A token signed with the gateway's own key (what a holder of the signing secret could
/// make) for client `id` named `name`, with `sid`.
fn client_token(gateway: &TestGateway, id: &str, name: &str, sid: Option<&str>) -> String {
    let mut claims = TestGateway::claims(name, &[]);
    claims["sub"] = id.into();
    claims["client_id"] = name.into();
    claims["jti"] = format!(
        "{}-{}",
        claims["jti"].as_str().unwrap_or("j"),
        sid.unwrap_or("none")
    )
    .into();
    if let Some(sid) = sid {
        claims["sid"] = sid.into();
    }
    gateway.mint(&claims)
}

async fn me(gateway: &TestGateway, token: &str) -> Response {
    gateway.get("/auth/me", &[&bearer(token)]).await
}

#[tokio::test]
async fn a_client_token_counts_only_with_the_marker_of_the_current_secret() {
    let gateway = TestGateway::start("").await;
    let (id, _) = add_client(&gateway, "ci-bot", &["deploy"]).await;

    // The signature alone is not enough: without the marker, or with another one, refused.
    for sid in [
        None,
        Some("client.1"),
        Some("client.00"),
        Some("s1"),
        Some(""),
    ] {
        let response = me(&gateway, &client_token(&gateway, &id, "ci-bot", sid)).await;
        response.assert_status(401);
        assert_eq!(response.error_code(), "invalid_token", "{sid:?}");
    }
    // The current marker: accepted, and the identity is the view's, not the token's
    // (a forged username or roles change nothing).
    let mut claims = TestGateway::claims("admin", &["admin"]);
    claims["sub"] = id.as_str().into();
    claims["sid"] = "client.0".into();
    let forged_name = gateway.mint(&claims);
    let response = me(&gateway, &forged_name).await;
    response.assert_status(200);
    assert_eq!(response.json()["username"], "ci-bot");
    assert_eq!(response.json()["roles"], serde_json::json!(["deploy"]));

    // After a rotation the old marker is refused and only the next one counts.
    let rotated = admin(
        &gateway,
        Request::ClientRotate {
            name: "CI-BOT".into(),
        },
    )
    .await;
    assert!(rotated.ok, "{rotated:?}");
    me(&gateway, &forged_name).await.assert_status(401);
    me(
        &gateway,
        &client_token(&gateway, &id, "ci-bot", Some("client.1")),
    )
    .await
    .assert_status(200);
}

#[tokio::test]
async fn a_client_removed_and_added_again_under_the_same_name_does_not_inherit_its_tokens() {
    let gateway = TestGateway::start("").await;
    let (first_id, _) = add_client(&gateway, "ci-bot", &[]).await;
    let old = client_token(&gateway, &first_id, "ci-bot", Some("client.0"));
    me(&gateway, &old).await.assert_status(200);
    let removed = admin(
        &gateway,
        Request::ClientRemove {
            name: "ci-bot".into(),
        },
    )
    .await;
    assert!(removed.ok, "{removed:?}");
    me(&gateway, &old).await.assert_status(401);

    // Same name (other case), same generation 0: a new id, so the old token stays dead.
    let (second_id, _) = add_client(&gateway, "CI-Bot", &[]).await;
    assert_ne!(first_id, second_id);
    let response = me(&gateway, &old).await;
    response.assert_status(401);
    assert_eq!(response.error_code(), "invalid_token");
    me(
        &gateway,
        &client_token(&gateway, &second_id, "CI-Bot", Some("client.0")),
    )
    .await
    .assert_status(200);
}

#[tokio::test]
async fn names_that_differ_only_in_case_are_one_principal_for_users_and_clients() {
    let gateway = TestGateway::start("[registration]\nenabled = true\n").await;
    let (_, added) = add_client(&gateway, "CI-Bot", &[]).await;
    let secret = added.secret.expect("the secret");
    for name in ["ci-bot", "CI-BOT"] {
        let again = admin(
            &gateway,
            Request::ClientAdd {
                name: name.into(),
                roles: vec![],
            },
        )
        .await;
        assert!(!again.ok && again.secret.is_none(), "{again:?}");
        let user = admin(
            &gateway,
            Request::Add {
                username: name.into(),
                roles: vec![],
                password: PASSWORD.to_string().into(),
            },
        )
        .await;
        assert!(!user.ok, "{user:?}");
    }
    // Self-registration under the client's name (any case): 409, as for a user's name.
    let response = post_json(
        &gateway,
        "/auth/register",
        &serde_json::json!({"username": "ci-BOT", "password": PASSWORD}),
        &[],
    )
    .await;
    response.assert_status(409);
    assert_eq!(response.error_code(), "username_taken");

    // The client's name and secret are no login: the same 401 as an unknown user.
    let as_client = login(&gateway, "ci-bot", secret.as_str()).await;
    let unknown = login(&gateway, "nobody-here", secret.as_str()).await;
    as_client.assert_status(401);
    unknown.assert_status(401);
    assert_eq!(as_client.body, unknown.body);
    assert_eq!(
        as_client.header("www-authenticate"),
        unknown.header("www-authenticate")
    );
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::test]
async fn an_unknown_client_and_a_wrong_secret_fail_alike() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "[store]\npath = \"{}\"\n[login]\nmax_failures = 100000\nmax_failures_per_address = 100000\n[upstreams.default]\nurl = \"http://127.0.0.1:9\"\n",
        dir.path().join("data").display()
    );
    let config = gatehouse::config::parse(&text).expect("config");
    let store = gatehouse::store::open(&config.store).await.expect("store");
    let accounts = Accounts::open(store, &config).await.expect("accounts");
    let added = accounts
        .directory()
        .add_client("ci-bot", vec![])
        .await
        .expect("add");
    let wrong = Zeroizing::new(format!("{}x", &added.secret[..42]));
    let unknown = accounts
        .client_credentials("no-such-client", added.secret.clone(), ADDRESS)
        .await
        .map(|_| ());
    let bad = accounts
        .client_credentials("ci-bot", wrong.clone(), ADDRESS)
        .await
        .map(|_| ());
    assert_eq!(unknown, Err(AccountError::InvalidClient));
    assert_eq!(bad, unknown, "one error for both: it never says which");
    assert_eq!(
        unknown.as_ref().map_err(ToString::to_string),
        bad.as_ref().map_err(ToString::to_string)
    );

    // Both take the same path (a store lookup, then one SHA-256 and a constant-time
    // comparison); a generous bound keeps this robust on a busy machine.
    let mut unknown_times = Vec::new();
    let mut wrong_times = Vec::new();
    for _ in 0..200 {
        let start = Instant::now();
        let _ = accounts
            .authenticate_client("no-such-client", wrong.clone(), ADDRESS)
            .await;
        unknown_times.push(start.elapsed());
        let start = Instant::now();
        let _ = accounts
            .authenticate_client("ci-bot", wrong.clone(), ADDRESS)
            .await;
        wrong_times.push(start.elapsed());
    }
    let (unknown_median, wrong_median) = (median(unknown_times), median(wrong_times));
    println!("median: unknown client {unknown_median:?}, wrong secret {wrong_median:?}");
    let (fast, slow) = if unknown_median < wrong_median {
        (unknown_median, wrong_median)
    } else {
        (wrong_median, unknown_median)
    };
    assert!(
        slow < fast * 5 + Duration::from_micros(200),
        "unknown {unknown_median:?} vs wrong secret {wrong_median:?}"
    );
}
