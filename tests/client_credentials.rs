//! `grant_type=client_credentials` at `POST /auth/token` (RFC 6749 §4.4, SPEC §4) against
//! an in-process gateway with a real sled store and a real echo upstream; clients are made
//! by the real `gatehouse client add` through the gateway's admin socket.
//!
//! Client authentication (RFC 6749 §2.3.1): HTTP Basic with form-encoded id and secret,
//! or `client_id` + `client_secret` in the body; every failure is 401 `invalid_client`
//! with `WWW-Authenticate: Basic realm="gatehouse"` and one body, two methods at once 400
//! `invalid_request`; failures count toward the login lockout. The token: no refresh token,
//! `Cache-Control: no-store`, and it passes route rules with the client's roles, the
//! upstream seeing the client's name as the user — with a shared secret and a key pair.

mod common;

use common::accounts::*;
use common::*;

/// A protected route that needs the `deploy` role.
const ROUTES: &str = r#"
[[routes]]
path = "/deploy/**"
roles = ["deploy"]
"#;

fn assert_invalid_client(response: &Response, what: &str) {
    assert_invalid_client_challenge(response, what);
    assert_eq!(response.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn basic_authentication_gets_an_access_token_and_no_refresh_token() {
    let gateway = TestGateway::start(ROUTES).await;
    let secret = add_client(&gateway, "ci-bot", &["deploy"]).await;
    let response = client_token(&gateway, "", &[&client_basic("ci-bot", &secret, true)]).await;
    response.assert_status(200);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert_eq!(response.header("pragma"), Some("no-cache"));
    let body = response.json();
    let members: Vec<&str> = body
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        members,
        ["access_token", "expires_in", "token_type"],
        "RFC 6749 §4.4.3: no refresh token"
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900, "tokens.access_ttl's default");
    let claims = claims_of(&token(&body, "access_token"));
    assert_eq!(claims["username"], "ci-bot");
    assert_eq!(claims["client_id"], "ci-bot");
    assert_eq!(claims["roles"], serde_json::json!(["deploy"]));
    assert_ne!(claims["sub"], "ci-bot", "sub is the client's opaque id");
}

#[tokio::test]
async fn the_token_passes_route_rules_and_names_the_client_upstream() {
    let gateway = TestGateway::start(ROUTES).await;
    let secret = add_client(&gateway, "ci-bot", &["deploy"]).await;
    let other = add_client(&gateway, "reporter", &["read"]).await;
    let access = client_token_ok(&gateway, "ci-bot", &secret).await;
    let sub = claims_of(&access)["sub"].as_str().expect("sub").to_string();

    gateway
        .get("/deploy/run", &[&bearer(&access)])
        .await
        .assert_status(200);
    let seen = gateway.upstream.last().expect("forwarded");
    assert_eq!(seen.header("x-auth-user"), Some("ci-bot"));
    assert_eq!(seen.header("x-auth-subject"), Some(sub.as_str()));
    assert_eq!(seen.header("x-auth-roles"), Some("deploy"));
    assert!(seen.header("authorization").is_none());

    let me = gateway.get("/auth/me", &[&bearer(&access)]).await;
    me.assert_status(200);
    assert_eq!(me.json()["username"], "ci-bot");

    // A client without the role is refused by the route rule.
    let reporter = client_token_ok(&gateway, "reporter", &other).await;
    let refused = gateway.get("/deploy/run", &[&bearer(&reporter)]).await;
    refused.assert_status(403);
    assert_eq!(refused.error_code(), "insufficient_scope");
}

#[tokio::test]
async fn body_authentication_works_and_scope_is_ignored() {
    let gateway = TestGateway::start(ROUTES).await;
    let secret = add_client(&gateway, "ci-bot", &["deploy"]).await;
    let response = client_token(
        &gateway,
        &format!("&client_id=ci-bot&client_secret={secret}&scope=anything+else"),
        &[],
    )
    .await;
    response.assert_status(200);
    let body = response.json();
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(body.get("scope").is_none(), "{body}");
    gateway
        .get("/deploy/x", &[&bearer(&token(&body, "access_token"))])
        .await
        .assert_status(200);

    // Basic with the same client_id in the body (RFC 6749 §3.2.1) is one method.
    client_token(
        &gateway,
        "&client_id=ci-bot",
        &[&client_basic("ci-bot", &secret, true)],
    )
    .await
    .assert_status(200);
}

#[tokio::test]
async fn form_encoded_ids_with_special_characters_authenticate() {
    let gateway = TestGateway::start(ROUTES).await;
    let secret = add_client(&gateway, "ci.bot@example.com", &["deploy"]).await;
    for form in [true, false] {
        let response = client_token(
            &gateway,
            "",
            &[&client_basic("ci.bot@example.com", &secret, form)],
        )
        .await;
        response.assert_status(200);
        let access = token(&response.json(), "access_token");
        assert_eq!(claims_of(&access)["username"], "ci.bot@example.com");
    }
    // `%40` in the body's client_id, and the name in another case (names compare
    // case-insensitively everywhere, SPEC §4).
    client_token(
        &gateway,
        &format!("&client_id=CI.Bot%40example.com&client_secret={secret}"),
        &[],
    )
    .await
    .assert_status(200);
}

#[tokio::test]
async fn failed_client_authentication_is_invalid_client_with_one_body() {
    let gateway = TestGateway::start(ROUTES).await;
    let secret = add_client(&gateway, "ci-bot", &["deploy"]).await;
    add_user(&gateway, "alice", &["deploy"], PASSWORD).await;

    let wrong = client_token(
        &gateway,
        "",
        &[&client_basic("ci-bot", "not-the-secret", true)],
    )
    .await;
    assert_invalid_client(&wrong, "wrong secret");
    let unknown = client_token(&gateway, "", &[&client_basic("nobody", &secret, true)]).await;
    assert_invalid_client(&unknown, "unknown client");
    assert_eq!(
        wrong.body, unknown.body,
        "nothing tells whether the client exists"
    );
    assert_invalid_client(
        &client_token(&gateway, "", &[&client_basic("alice", PASSWORD, true)]).await,
        "a user's name and password are no client",
    );
    assert_invalid_client(&client_token(&gateway, "", &[]).await, "no authentication");
    assert_invalid_client(
        &client_token(&gateway, "&client_id=ci-bot", &[]).await,
        "client_id without a secret",
    );
    assert_invalid_client(
        &client_token(&gateway, "", &["Authorization: Bearer abc.def.ghi"]).await,
        "another scheme",
    );
    assert_invalid_client(
        &client_token(&gateway, "", &["Authorization: Basic %%%not-base64"]).await,
        "bad base64",
    );
    assert_invalid_client(
        &client_token(&gateway, "", &["Authorization: Basic /w=="]).await,
        "not UTF-8",
    );
    for body in [&wrong, &unknown] {
        let text = String::from_utf8_lossy(&body.body);
        assert!(
            !text.contains(&secret) && !text.contains("ci-bot"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn two_authentication_methods_are_invalid_request() {
    let gateway = TestGateway::start(ROUTES).await;
    let secret = add_client(&gateway, "ci-bot", &["deploy"]).await;
    let basic = client_basic("ci-bot", &secret, true);
    let both = client_token(
        &gateway,
        &format!("&client_id=ci-bot&client_secret={secret}"),
        &[&basic],
    )
    .await;
    both.assert_status(400);
    assert_eq!(both.error_code(), "invalid_request");
    let other_id = client_token(&gateway, "&client_id=someone-else", &[&basic]).await;
    other_id.assert_status(400);
    assert_eq!(other_id.error_code(), "invalid_request");
    let two_headers = client_token(&gateway, "", &[&basic, &basic]).await;
    two_headers.assert_status(400);
    assert_eq!(two_headers.error_code(), "invalid_request");
}

#[tokio::test]
async fn failed_secrets_count_toward_the_lockout() {
    let gateway = TestGateway::start(&format!(
        "{ROUTES}\n[login]\nmax_failures = 2\nmax_failures_per_address = 50\n"
    ))
    .await;
    let secret = add_client(&gateway, "ci-bot", &["deploy"]).await;
    for attempt in 0..2 {
        assert_invalid_client(
            &client_token(&gateway, "", &[&client_basic("ci-bot", "wrong", true)]).await,
            &format!("failure {attempt}"),
        );
    }
    let locked = client_token(&gateway, "", &[&client_basic("ci-bot", &secret, true)]).await;
    locked.assert_status(429);
    assert_eq!(locked.error_code(), "too_many_attempts");
    let retry_after: u64 = locked
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(retry_after > 0 && retry_after <= 15 * 60, "{retry_after}");
    // `gatehouse user unlock` ends it early for a client's name too.
    let out = binary::run_blocking(vec![
        "-c".into(),
        gateway.config_path.display().to_string(),
        "user".into(),
        "unlock".into(),
        "ci-bot".into(),
    ])
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    client_token(&gateway, "", &[&client_basic("ci-bot", &secret, true)])
        .await
        .assert_status(200);
}

#[tokio::test]
async fn password_grant_with_a_client_secret_is_not_a_login() {
    let gateway = TestGateway::start(ROUTES).await;
    let secret = add_client(&gateway, "ci-bot", &["deploy"]).await;
    let response = post_form(
        &gateway,
        "/auth/token",
        &format!("grant_type=password&username=ci-bot&password={secret}"),
        &[],
    )
    .await;
    response.assert_status(400);
    assert_eq!(response.error_code(), "invalid_grant");
    let unsupported = post_form(&gateway, "/auth/token", "grant_type=implicit", &[]).await;
    unsupported.assert_status(400);
    assert_eq!(unsupported.error_code(), "unsupported_grant_type");
    assert!(
        String::from_utf8_lossy(&unsupported.body).contains("client_credentials"),
        "the description names every grant"
    );
}

#[tokio::test]
async fn key_pair_tokens_for_clients_work_the_same() {
    let keys = tempfile::tempdir().expect("tempdir");
    let gateway = TestGateway::start_with_tokens("", &es256_tokens(keys.path()), ROUTES).await;
    let secret = add_client(&gateway, "ci-bot", &["deploy"]).await;
    let access = client_token_ok(&gateway, "ci-bot", &secret).await;
    let header = jsonwebtoken::decode_header(&access).expect("a JWT header");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let claims = claims_of(&access);
    assert_eq!(claims["client_id"], "ci-bot");
    assert_eq!(claims["iss"], "http://127.0.0.1:8080");
    gateway
        .get("/deploy/run", &[&bearer(&access)])
        .await
        .assert_status(200);
    assert_eq!(
        gateway
            .upstream
            .last()
            .expect("forwarded")
            .header("x-auth-user"),
        Some("ci-bot")
    );
}
