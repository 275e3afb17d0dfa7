//! Sessions and account changes against an in-process gateway with a real sled store:
//! refresh rotation and reuse detection (RFC 9700 §4.14.2), logout, password change,
//! registration, and admin changes (disable, roles, passwd, remove) applied from the very
//! next request (SPEC §1, §4).

mod common;

use common::accounts;

use accounts::*;
use common::*;
use gatehouse::admin::protocol::Request;

const ADMIN_ROUTE: &str = "[[routes]]\npath = \"/admin/**\"\nroles = [\"admin\"]\n";

// ---------------------------------------------------------------------------------------
// /auth/refresh

#[tokio::test]
async fn refresh_returns_a_new_pair_and_the_refresh_token_is_single_use() {
    let gateway = TestGateway::start("").await;
    add_user(&gateway, "alice", &[], PASSWORD).await;
    let first = login_ok(&gateway, "alice", PASSWORD).await;
    let response = refresh(&gateway, &token(&first, "refresh_token")).await;
    response.assert_status(200);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let second = response.json();
    assert_ne!(
        token(&second, "refresh_token"),
        token(&first, "refresh_token")
    );
    assert_eq!(
        me_status(&gateway, &token(&second, "access_token")).await,
        200
    );
    // Same login session: the sid carries over.
    assert_eq!(
        claims_of(&token(&second, "access_token"))["sid"],
        claims_of(&token(&first, "access_token"))["sid"]
    );
    let again = refresh(&gateway, &token(&first, "refresh_token")).await;
    assert_eq!(again.status, 401);
    assert_eq!(again.error_code(), "invalid_grant");
    assert!(again.header("www-authenticate").is_some());
}

#[tokio::test]
async fn reusing_a_spent_refresh_token_ends_the_whole_login_session() {
    let gateway = TestGateway::start("").await;
    add_user(&gateway, "alice", &[], PASSWORD).await;
    let first = login_ok(&gateway, "alice", PASSWORD).await;
    let other_session = login_ok(&gateway, "alice", PASSWORD).await;
    let second = refresh(&gateway, &token(&first, "refresh_token"))
        .await
        .json();
    let third = refresh(&gateway, &token(&second, "refresh_token"))
        .await
        .json();

    // An attacker replays the first (spent) token.
    let replay = refresh(&gateway, &token(&first, "refresh_token")).await;
    assert_eq!(replay.status, 401);
    assert_eq!(replay.error_code(), "invalid_grant");

    // Every token descended from that login is dead: the newest refresh token and the
    // access tokens issued with the family.
    assert_eq!(
        refresh(&gateway, &token(&third, "refresh_token"))
            .await
            .status,
        401
    );
    assert_eq!(
        me_status(&gateway, &token(&third, "access_token")).await,
        401
    );
    assert_eq!(
        me_status(&gateway, &token(&first, "access_token")).await,
        401
    );
    // Another login of the same user is untouched.
    assert_eq!(
        me_status(&gateway, &token(&other_session, "access_token")).await,
        200
    );
    assert_eq!(
        refresh(&gateway, &token(&other_session, "refresh_token"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn refresh_failures_are_401_invalid_grant_and_malformed_bodies_400() {
    let gateway = TestGateway::start("").await;
    for bad in ["", "nope", &"x".repeat(5000)] {
        let response = refresh(&gateway, bad).await;
        assert_eq!(response.status, 401, "{bad:.20}");
        assert_eq!(response.error_code(), "invalid_grant");
    }
    let missing = post_json(&gateway, "/auth/refresh", &serde_json::json!({}), &[]).await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.error_code(), "invalid_request");
}

#[tokio::test]
async fn refresh_takes_a_form_body_and_issues_the_users_current_roles() {
    let gateway = TestGateway::start("").await;
    add_user(&gateway, "bob", &["dev"], PASSWORD).await;
    let tokens = login_ok(&gateway, "bob", PASSWORD).await;
    let reply = admin(
        &gateway,
        Request::Roles {
            username: "bob".into(),
            roles: vec!["ops".into()],
        },
    )
    .await;
    assert!(reply.ok, "{reply:?}");
    let form = format!("refresh_token={}", token(&tokens, "refresh_token"));
    let response = post_form(&gateway, "/auth/refresh", &form, &[]).await;
    response.assert_status(200);
    let claims = claims_of(&token(&response.json(), "access_token"));
    assert_eq!(claims["roles"], serde_json::json!(["ops"]));
}

// ---------------------------------------------------------------------------------------
// /auth/logout

#[tokio::test]
async fn logout_with_the_refresh_token_ends_that_session_only() {
    let gateway = TestGateway::start("").await;
    add_user(&gateway, "carol", &[], PASSWORD).await;
    let session = login_ok(&gateway, "carol", PASSWORD).await;
    let other = login_ok(&gateway, "carol", PASSWORD).await;
    let response = post_json(
        &gateway,
        "/auth/logout",
        &serde_json::json!({"refresh_token": token(&session, "refresh_token")}),
        &[],
    )
    .await;
    assert_eq!(response.status, 204);
    assert_eq!(
        refresh(&gateway, &token(&session, "refresh_token"))
            .await
            .status,
        401
    );
    assert_eq!(
        me_status(&gateway, &token(&session, "access_token")).await,
        401
    );
    assert_eq!(
        me_status(&gateway, &token(&other, "access_token")).await,
        200
    );
}

#[tokio::test]
async fn logout_with_a_bearer_token_revokes_it_and_ends_its_session() {
    let gateway = TestGateway::start("").await;
    add_user(&gateway, "dave", &[], PASSWORD).await;
    let session = login_ok(&gateway, "dave", PASSWORD).await;
    let access = token(&session, "access_token");
    let response = gateway
        .request("POST", "/auth/logout", &[&bearer(&access)], b"")
        .await;
    response.assert_status(204);
    let me = gateway.get("/auth/me", &[&bearer(&access)]).await;
    assert_eq!(me.status, 401);
    assert_eq!(me.error_code(), "invalid_token");
    assert!(me
        .header("www-authenticate")
        .is_some_and(|v| v.contains(r#"error="invalid_token""#)));
    assert_eq!(
        refresh(&gateway, &token(&session, "refresh_token"))
            .await
            .status,
        401
    );
    // Logging out again is harmless.
    let again = gateway
        .request("POST", "/auth/logout", &[&bearer(&access)], b"")
        .await;
    assert_eq!(again.status, 204);
}

#[tokio::test]
async fn logout_without_any_token_is_400() {
    let gateway = TestGateway::start("").await;
    let empty = gateway.request("POST", "/auth/logout", &[], b"").await;
    assert_eq!(empty.status, 400);
    assert_eq!(empty.error_code(), "invalid_request");
    let blank = post_json(&gateway, "/auth/logout", &serde_json::json!({}), &[]).await;
    assert_eq!(blank.status, 400);
    assert_eq!(blank.error_code(), "invalid_request");
}

// ---------------------------------------------------------------------------------------
// /auth/password

#[tokio::test]
async fn a_password_change_starts_a_fresh_session_and_ends_every_earlier_one() {
    let gateway = TestGateway::start("").await;
    add_user(&gateway, "erin", &[], PASSWORD).await;
    let first = login_ok(&gateway, "erin", PASSWORD).await;
    let second = login_ok(&gateway, "erin", PASSWORD).await;
    let response = post_json(
        &gateway,
        "/auth/password",
        &serde_json::json!({"current_password": PASSWORD, "new_password": "a brand new secret"}),
        &[&bearer(&token(&first, "access_token"))],
    )
    .await;
    response.assert_status(200);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let fresh = response.json();
    // The fresh token was issued in the same second as the change, right after it.
    assert_eq!(
        me_status(&gateway, &token(&fresh, "access_token")).await,
        200
    );
    assert_eq!(
        refresh(&gateway, &token(&fresh, "refresh_token"))
            .await
            .status,
        200
    );
    for old in [&first, &second] {
        assert_eq!(me_status(&gateway, &token(old, "access_token")).await, 401);
        assert_eq!(
            refresh(&gateway, &token(old, "refresh_token")).await.status,
            401
        );
    }
    assert_eq!(login(&gateway, "erin", PASSWORD).await.status, 401);
    login_ok(&gateway, "erin", "a brand new secret").await;
}

#[tokio::test]
async fn password_change_failures_are_401_or_400() {
    let gateway = TestGateway::start("").await;
    add_user(&gateway, "frank", &[], PASSWORD).await;
    let session = login_ok(&gateway, "frank", PASSWORD).await;
    let auth = bearer(&token(&session, "access_token"));
    let change = |current: &str, new: &str| serde_json::json!({"current_password": current, "new_password": new});

    let no_token = post_json(
        &gateway,
        "/auth/password",
        &change(PASSWORD, "long enough"),
        &[],
    )
    .await;
    assert_eq!(no_token.status, 401);
    assert_eq!(no_token.error_code(), "unauthorized");

    let wrong = post_json(
        &gateway,
        "/auth/password",
        &change("wrong one", "long enough"),
        &[&auth],
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.error_code(), "invalid_credentials");

    let short = post_json(
        &gateway,
        "/auth/password",
        &change(PASSWORD, "short"),
        &[&auth],
    )
    .await;
    assert_eq!(short.status, 400);
    assert_eq!(short.error_code(), "invalid_request");
    assert!(short.json()["error_description"]
        .as_str()
        .unwrap_or("")
        .contains('8'));

    let long = post_json(
        &gateway,
        "/auth/password",
        &change(PASSWORD, &"x".repeat(257)),
        &[&auth],
    )
    .await;
    assert_eq!(long.status, 400);

    let missing = post_json(
        &gateway,
        "/auth/password",
        &serde_json::json!({"new_password": "long enough"}),
        &[&auth],
    )
    .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.error_code(), "invalid_request");

    // Nothing changed.
    assert_eq!(
        me_status(&gateway, &token(&session, "access_token")).await,
        200
    );
    login_ok(&gateway, "frank", PASSWORD).await;
}

// ---------------------------------------------------------------------------------------
// /auth/register

#[tokio::test]
async fn registration_is_404_while_it_is_off() {
    let gateway = TestGateway::start("").await;
    let response = post_json(
        &gateway,
        "/auth/register",
        &serde_json::json!({"username": "gina", "password": PASSWORD}),
        &[],
    )
    .await;
    assert_eq!(response.status, 404);
    assert_eq!(login(&gateway, "gina", PASSWORD).await.status, 401);
}

#[tokio::test]
async fn registration_creates_a_user_with_the_configured_roles() {
    let gateway =
        TestGateway::start("[registration]\nenabled = true\nroles = [\"member\"]\n").await;
    let response = post_json(
        &gateway,
        "/auth/register",
        &serde_json::json!({"username": "Gina", "password": PASSWORD}),
        &[],
    )
    .await;
    response.assert_status(201);
    assert_eq!(
        response.json(),
        serde_json::json!({"username": "Gina", "roles": ["member"]})
    );
    let tokens = login_ok(&gateway, "gina", PASSWORD).await;
    assert_eq!(
        claims_of(&token(&tokens, "access_token"))["roles"],
        serde_json::json!(["member"])
    );
}

#[tokio::test]
async fn registration_refuses_taken_names_and_policy_violations() {
    let gateway = TestGateway::start("[registration]\nenabled = true\n").await;
    let register =
        |name: &str, password: &str| serde_json::json!({"username": name, "password": password});
    assert_eq!(
        post_json(&gateway, "/auth/register", &register("hank", PASSWORD), &[])
            .await
            .status,
        201
    );
    let taken = post_json(&gateway, "/auth/register", &register("HANK", PASSWORD), &[]).await;
    assert_eq!(taken.status, 409);
    assert_eq!(taken.error_code(), "username_taken");
    for (name, password) in [
        ("has space", PASSWORD),
        ("", PASSWORD),
        (&"a".repeat(65) as &str, PASSWORD),
        ("ok-name", "short"),
        ("ok-name", &"p".repeat(257) as &str),
    ] {
        let response = post_json(&gateway, "/auth/register", &register(name, password), &[]).await;
        assert_eq!(response.status, 400, "{name:.10} / {}", password.len());
        assert_eq!(response.error_code(), "invalid_request");
    }
    // 8 characters of 2 bytes each meet an 8-character minimum.
    assert_eq!(
        post_json(
            &gateway,
            "/auth/register",
            &register("utf8", "éééééééé"),
            &[]
        )
        .await
        .status,
        201
    );
}

// ---------------------------------------------------------------------------------------
// Admin changes apply from the next request (SPEC §1).

#[tokio::test]
async fn a_disabled_users_tokens_fail_on_the_very_next_request() {
    let gateway = TestGateway::start("").await;
    let user = create_user(&gateway, "ivan", &[]).await;
    let auth = bearer(&user.token);
    assert_eq!(gateway.get("/anything", &[&auth]).await.status, 200);
    let reply = admin(
        &gateway,
        Request::Disable {
            username: "IVAN".into(),
        },
    )
    .await;
    assert!(reply.ok, "{reply:?}");
    let refused = gateway.get("/anything", &[&auth]).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.error_code(), "invalid_token");
    // Enabling again does not bring old sessions back; a new login works.
    let reply = admin(
        &gateway,
        Request::Enable {
            username: "ivan".into(),
        },
    )
    .await;
    assert!(reply.ok);
    assert_eq!(gateway.get("/anything", &[&auth]).await.status, 401);
    let fresh = login_ok(&gateway, "ivan", PASSWORD).await;
    assert_eq!(
        gateway
            .get("/anything", &[&bearer(&token(&fresh, "access_token"))])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn role_changes_apply_to_route_checks_and_the_roles_header_at_once() {
    let gateway = TestGateway::start(ADMIN_ROUTE).await;
    let user = create_user(&gateway, "judy", &["dev"]).await;
    let auth = bearer(&user.token);
    let denied = gateway.get("/admin/panel", &[&auth]).await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.error_code(), "insufficient_scope");
    let reply = admin(
        &gateway,
        Request::Roles {
            username: "judy".into(),
            roles: vec!["admin".into(), "dev".into()],
        },
    )
    .await;
    assert!(reply.ok, "{reply:?}");
    assert_eq!(gateway.get("/admin/panel", &[&auth]).await.status, 200);
    let seen = gateway.upstream.last().expect("forwarded");
    assert_eq!(seen.header("x-auth-roles"), Some("admin,dev"));
    assert_eq!(seen.header("x-auth-user"), Some("judy"));
    let me = gateway.get("/auth/me", &[&auth]).await.json();
    assert_eq!(me["roles"], serde_json::json!(["admin", "dev"]));
    // No roles at all.
    let reply = admin(
        &gateway,
        Request::Roles {
            username: "judy".into(),
            roles: vec![],
        },
    )
    .await;
    assert!(reply.ok);
    assert_eq!(gateway.get("/admin/panel", &[&auth]).await.status, 403);
}

#[tokio::test]
async fn an_admin_password_reset_ends_every_earlier_token() {
    let gateway = TestGateway::start("").await;
    let user = create_user(&gateway, "karl", &[]).await;
    let session = login_ok(&gateway, "karl", PASSWORD).await;
    let reply = admin(
        &gateway,
        Request::Passwd {
            username: "karl".into(),
            password: "reset by the admin".to_string().into(),
        },
    )
    .await;
    assert!(reply.ok, "{reply:?}");
    assert_eq!(me_status(&gateway, &user.token).await, 401);
    assert_eq!(
        refresh(&gateway, &token(&session, "refresh_token"))
            .await
            .status,
        401
    );
    let fresh = login_ok(&gateway, "karl", "reset by the admin").await;
    assert_eq!(
        me_status(&gateway, &token(&fresh, "access_token")).await,
        200
    );
}

#[tokio::test]
async fn a_removed_user_stays_locked_out_even_if_the_name_is_taken_again() {
    let gateway = TestGateway::start("").await;
    let user = create_user(&gateway, "lena", &[]).await;
    let reply = admin(
        &gateway,
        Request::Remove {
            username: "lena".into(),
        },
    )
    .await;
    assert!(reply.ok, "{reply:?}");
    assert_eq!(me_status(&gateway, &user.token).await, 401);
    assert_eq!(login(&gateway, "lena", PASSWORD).await.status, 401);
    add_user(&gateway, "lena", &[], PASSWORD).await;
    assert_eq!(me_status(&gateway, &user.token).await, 401);
    login_ok(&gateway, "lena", PASSWORD).await;
}

#[tokio::test]
async fn me_reports_the_stable_id_current_name_roles_and_token_times() {
    let gateway = TestGateway::start("").await;
    let user = create_user(&gateway, "Mona", &["x"]).await;
    let me = gateway.get("/auth/me", &[&bearer(&user.token)]).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.header("cache-control"), Some("no-store"));
    let body = me.json();
    assert_eq!(body["sub"], user.sub.as_str());
    assert_eq!(body["username"], "Mona");
    assert_eq!(body["roles"], serde_json::json!(["x"]));
    assert!(body["exp"].as_u64() > body["iat"].as_u64());
    let unauthenticated = gateway.get("/auth/me", &[]).await;
    assert_eq!(unauthenticated.status, 401);
    assert_eq!(unauthenticated.error_code(), "unauthorized");
}

#[tokio::test]
async fn verify_answers_with_current_identity_headers() {
    let gateway = TestGateway::start("").await;
    let user = create_user(&gateway, "nina", &["a"]).await;
    let response = gateway.get("/auth/verify", &[&bearer(&user.token)]).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-auth-user"), Some("nina"));
    assert_eq!(response.header("x-auth-roles"), Some("a"));
    let reply = admin(
        &gateway,
        Request::Disable {
            username: "nina".into(),
        },
    )
    .await;
    assert!(reply.ok);
    assert_eq!(
        gateway
            .get("/auth/verify", &[&bearer(&user.token)])
            .await
            .status,
        401
    );
}
