//! `POST /auth/introspect` (RFC 7662, SPEC §4) against an in-process gateway with a real
//! sled store: callers authenticate as service clients (made by the real `gatehouse client
//! add`); an active token is described with the principal's current state; every other
//! token — garbage, expired, forged, revoked, logged out, of a removed user, a refresh
//! token — is answered exactly `{"active":false}`, byte for byte; a caller that is not an
//! authenticated client gets 401 `invalid_client`; 503 while the view is stale.

mod common;

use std::time::Duration;

use common::accounts::*;
use common::*;
use gatehouse::admin::protocol::Request;

const INACTIVE: &[u8] = br#"{"active":false}"#;

/// A gateway and a resource server's client credentials.
async fn start(extra: &str) -> (TestGateway, String) {
    let gateway = TestGateway::start(extra).await;
    let secret = add_client(&gateway, "orders-api", &[]).await;
    (gateway, secret)
}

async fn introspect(gateway: &TestGateway, secret: &str, token: &str) -> Response {
    post_form(
        gateway,
        "/auth/introspect",
        &format!("token={}", form_value(token)),
        &[&client_basic("orders-api", secret, true)],
    )
    .await
}

#[track_caller]
fn assert_inactive(response: &Response, what: &str) {
    response.assert_status(200);
    assert_eq!(
        response.body,
        INACTIVE,
        "{what}: {}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.header("cache-control"), Some("no-store"));
}

fn members(value: &serde_json::Value) -> Vec<&str> {
    value
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect()
}

#[tokio::test]
async fn an_active_user_token_is_described_with_current_roles() {
    let (gateway, secret) = start("").await;
    let alice = gateway.user("alice", &["staff"]).await;
    let response = introspect(&gateway, &secret, &alice.token).await;
    response.assert_status(200);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let body = response.json();
    let claims = claims_of(&alice.token);
    assert_eq!(
        members(&body),
        [
            "active",
            "exp",
            "iat",
            "iss",
            "roles",
            "sub",
            "token_type",
            "username"
        ],
        "a shared-secret user token carries no client_id: {body}"
    );
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], alice.sub.as_str());
    assert_eq!(body["username"], "alice");
    assert_eq!(body["roles"], serde_json::json!(["staff"]));
    assert_eq!(body["exp"], claims["exp"]);
    assert_eq!(body["iat"], claims["iat"]);
    assert_eq!(body["iss"], "gatehouse");
    assert_eq!(body["token_type"], "Bearer");

    // Roles are the user's current ones, as route rules see them.
    let reply = admin(
        &gateway,
        Request::Roles {
            username: "alice".into(),
            roles: vec!["staff".into(), "auditor".into()],
        },
    )
    .await;
    assert!(reply.ok, "{reply:?}");
    let body = introspect(&gateway, &secret, &alice.token).await.json();
    assert_eq!(body["roles"], serde_json::json!(["staff", "auditor"]));
}

#[tokio::test]
async fn a_client_token_names_its_client() {
    let (gateway, secret) = start("").await;
    let bot_secret = add_client(&gateway, "ci-bot", &["deploy"]).await;
    let access = client_token_ok(&gateway, "ci-bot", &bot_secret).await;
    let body = introspect(&gateway, &secret, &access).await.json();
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["client_id"], "ci-bot");
    assert_eq!(body["username"], "ci-bot");
    assert_eq!(body["roles"], serde_json::json!(["deploy"]));
    assert_eq!(body["sub"], claims_of(&access)["sub"]);
    // The caller may introspect its own token too.
    let own = client_token_ok(&gateway, "orders-api", &secret).await;
    assert_eq!(
        introspect(&gateway, &secret, &own).await.json()["client_id"],
        "orders-api"
    );

    // Rotating the client's secret ends the token at once.
    let out = binary::run_blocking(vec![
        "-c".into(),
        gateway.config_path.display().to_string(),
        "client".into(),
        "rotate".into(),
        "ci-bot".into(),
    ])
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_inactive(
        &introspect(&gateway, &secret, &access).await,
        "rotated client",
    );
}

#[tokio::test]
async fn every_token_that_would_not_pass_is_exactly_inactive() {
    let (gateway, secret) = start("").await;
    let alice = gateway.user("alice", &["staff"]).await;
    let session = login_ok(&gateway, "alice", PASSWORD).await;

    for garbage in ["x", "not.a.jwt", "a.b.c", &"A".repeat(9000), "é"] {
        assert_inactive(&introspect(&gateway, &secret, garbage).await, garbage);
    }
    let mut expired = TestGateway::claims_for(&alice);
    expired["iat"] = (now() - 4000).into();
    expired["nbf"] = (now() - 4000).into();
    expired["exp"] = (now() - 3600).into();
    assert_inactive(
        &introspect(&gateway, &secret, &gateway.mint(&expired)).await,
        "expired",
    );
    let forged = mint_with(
        jsonwebtoken::Algorithm::HS256,
        b"another-secret-another-secret-another!",
        &TestGateway::claims_for(&alice),
    );
    assert_inactive(&introspect(&gateway, &secret, &forged).await, "forged");
    assert_inactive(
        &introspect(&gateway, &secret, &token(&session, "refresh_token")).await,
        "a refresh token is no access token",
    );

    // Revoked by RFC 7009.
    let revoked = login_ok(&gateway, "alice", PASSWORD).await;
    let revoked = token(&revoked, "access_token");
    post_form(
        &gateway,
        "/auth/revoke",
        &format!("token={}", form_value(&revoked)),
        &[],
    )
    .await
    .assert_status(200);
    assert_inactive(&introspect(&gateway, &secret, &revoked).await, "revoked");

    // Logged out.
    let access = token(&session, "access_token");
    assert_eq!(
        introspect(&gateway, &secret, &access).await.json()["active"],
        true
    );
    gateway
        .request("POST", "/auth/logout", &[&bearer(&access)], b"")
        .await
        .assert_status(204);
    assert_inactive(&introspect(&gateway, &secret, &access).await, "logged out");

    // A removed user.
    let bob = gateway.user("bob", &[]).await;
    let reply = admin(
        &gateway,
        Request::Remove {
            username: "bob".into(),
        },
    )
    .await;
    assert!(reply.ok, "{reply:?}");
    assert_inactive(
        &introspect(&gateway, &secret, &bob.token).await,
        "removed user",
    );
}

#[tokio::test]
async fn revoking_the_refresh_token_makes_the_sessions_access_token_inactive() {
    let (gateway, secret) = start("").await;
    add_user(&gateway, "alice", &[], PASSWORD).await;
    let session = login_ok(&gateway, "alice", PASSWORD).await;
    let access = token(&session, "access_token");
    assert_eq!(
        introspect(&gateway, &secret, &access).await.json()["active"],
        true
    );
    post_form(
        &gateway,
        "/auth/revoke",
        &format!(
            "token={}&token_type_hint=refresh_token",
            form_value(&token(&session, "refresh_token"))
        ),
        &[],
    )
    .await
    .assert_status(200);
    assert_inactive(
        &introspect(&gateway, &secret, &access).await,
        "the session ended with its refresh token",
    );
}

#[tokio::test]
async fn callers_must_authenticate_as_a_service_client() {
    let (gateway, secret) = start("").await;
    let alice = gateway.user("alice", &[]).await;
    let form = format!("token={}", form_value(&alice.token));
    let check = |response: Response, what: &str| {
        assert_invalid_client_challenge(&response, what);
        assert!(
            !String::from_utf8_lossy(&response.body).contains("alice"),
            "{what}: the token's owner is not revealed"
        );
    };
    check(
        post_form(&gateway, "/auth/introspect", &form, &[]).await,
        "no client authentication",
    );
    check(
        post_form(
            &gateway,
            "/auth/introspect",
            &form,
            &[&client_basic("orders-api", "wrong-secret", true)],
        )
        .await,
        "wrong secret",
    );
    check(
        post_form(
            &gateway,
            "/auth/introspect",
            &form,
            &[&client_basic("alice", PASSWORD, true)],
        )
        .await,
        "a user is no client",
    );
    check(
        post_form(
            &gateway,
            "/auth/introspect",
            &form,
            &[&bearer(&alice.token)],
        )
        .await,
        "a bearer token is no client authentication",
    );

    // The body method works as at the token endpoint; both at once is invalid_request.
    let body_auth = post_form(
        &gateway,
        "/auth/introspect",
        &format!("{form}&client_id=orders-api&client_secret={secret}"),
        &[],
    )
    .await;
    body_auth.assert_status(200);
    assert_eq!(body_auth.json()["active"], true);
    let both = post_form(
        &gateway,
        "/auth/introspect",
        &format!("{form}&client_secret={secret}"),
        &[&client_basic("orders-api", &secret, true)],
    )
    .await;
    both.assert_status(400);
    assert_eq!(both.error_code(), "invalid_request");
}

#[tokio::test]
async fn failed_caller_secrets_count_toward_the_lockout() {
    let (gateway, secret) = start("[login]\nmax_failures = 2\n").await;
    let alice = gateway.user("alice", &[]).await;
    for _ in 0..2 {
        introspect(&gateway, "wrong-secret", &alice.token)
            .await
            .assert_status(401);
    }
    let locked = introspect(&gateway, &secret, &alice.token).await;
    locked.assert_status(429);
    assert_eq!(locked.error_code(), "too_many_attempts");
    assert!(locked.header("retry-after").is_some());
}

#[tokio::test]
async fn malformed_requests() {
    let (gateway, secret) = start("").await;
    let basic = client_basic("orders-api", &secret, true);
    let missing = post_form(
        &gateway,
        "/auth/introspect",
        "token_type_hint=access_token",
        &[&basic],
    )
    .await;
    missing.assert_status(400);
    assert_eq!(missing.error_code(), "invalid_request");
    let empty = post_form(&gateway, "/auth/introspect", "token=", &[&basic]).await;
    empty.assert_status(400);
    let json = post_json(
        &gateway,
        "/auth/introspect",
        &serde_json::json!({ "token": "x" }),
        &[&basic],
    )
    .await;
    json.assert_status(400);
    let get = gateway.get("/auth/introspect?token=x", &[&basic]).await;
    get.assert_status(405);
    assert_eq!(get.header("allow"), Some("POST"));
}

#[tokio::test]
async fn key_pair_user_tokens_carry_gatehouse_as_client_id() {
    let keys = tempfile::tempdir().expect("tempdir");
    let tokens = es256_tokens(keys.path());
    let gateway = TestGateway::start_with_tokens("", &tokens, "").await;
    let secret = add_client(&gateway, "orders-api", &[]).await;
    let alice = gateway.user("alice", &[]).await;
    let body = introspect(&gateway, &secret, &alice.token).await.json();
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(
        body["client_id"], "gatehouse",
        "what the token's claim says"
    );
    assert_eq!(body["iss"], "http://127.0.0.1:8080");
    assert_eq!(claims_of(&alice.token)["client_id"], "gatehouse");
}

/// SPEC §8: with the store out of reach the answer turns 503 `unavailable` (the caller's
/// secret cannot be checked, and past `max_stale` no token can be vouched for) — and is
/// never `{"active":false}` for a token that is good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_replica_answers_unavailable_not_inactive() {
    let (gateway, store) = TestGateway::start_flaky("", "max_stale = \"1s\"").await;
    let secret = add_client(&gateway, "orders-api", &[]).await;
    let alice = gateway.user("alice", &[]).await;
    assert_eq!(
        introspect(&gateway, &secret, &alice.token).await.json()["active"],
        true
    );
    store.set_down(true);
    let deadline = std::time::Instant::now() + DEADLINE;
    let stale = loop {
        let response = introspect(&gateway, &secret, &alice.token).await;
        if response.status == 503 {
            break response;
        }
        response.assert_status(200);
        assert_eq!(
            response.json()["active"],
            true,
            "until it is stale the view still vouches for the token; never inactive"
        );
        assert!(std::time::Instant::now() < deadline, "never 503");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(stale.error_code(), "unavailable");
    assert!(stale.header("retry-after").is_some());
    store.set_down(false);
}
