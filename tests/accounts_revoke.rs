//! `POST /auth/revoke` (RFC 7009, SPEC §4) against an in-process gateway with a real sled
//! store: a refresh token ends its whole session, an access token stops working while its
//! session goes on, and every other input — unknown, garbled, already revoked, a wrong
//! hint — is answered 200 and changes nothing; only a missing `token` is 400.

mod common;

use common::accounts;

use accounts::*;
use common::*;

async fn revoke(gateway: &TestGateway, form: &str) -> Response {
    post_form(gateway, "/auth/revoke", form, &[]).await
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_whole_session_only() {
    let gateway = TestGateway::start("").await;
    add_user(&gateway, "alice", &[], PASSWORD).await;
    let session = login_ok(&gateway, "alice", PASSWORD).await;
    let other = login_ok(&gateway, "alice", PASSWORD).await;
    let response = revoke(
        &gateway,
        &format!(
            "token={}&token_type_hint=refresh_token",
            form_value(&token(&session, "refresh_token"))
        ),
    )
    .await;
    response.assert_status(200);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert!(response.body.is_empty(), "RFC 7009 §2.2: no content needed");
    assert_eq!(
        refresh(&gateway, &token(&session, "refresh_token"))
            .await
            .status,
        401
    );
    assert_eq!(
        me_status(&gateway, &token(&session, "access_token")).await,
        401,
        "the session's access token ends with it"
    );
    assert_eq!(
        me_status(&gateway, &token(&other, "access_token")).await,
        200
    );
    refresh(&gateway, &token(&other, "refresh_token"))
        .await
        .assert_status(200);
}

#[tokio::test]
async fn revoking_an_access_token_stops_it_and_leaves_its_session() {
    let gateway = TestGateway::start("").await;
    add_user(&gateway, "bob", &[], PASSWORD).await;
    let session = login_ok(&gateway, "bob", PASSWORD).await;
    let access = token(&session, "access_token");
    assert_eq!(me_status(&gateway, &access).await, 200);
    // The hint is wrong on purpose: RFC 7009 §2.1 has the server look further.
    revoke(
        &gateway,
        &format!(
            "token={}&token_type_hint=refresh_token",
            form_value(&access)
        ),
    )
    .await
    .assert_status(200);
    let me = gateway.get("/auth/me", &[&bearer(&access)]).await;
    assert_eq!(me.status, 401);
    assert_eq!(me.error_code(), "invalid_token");
    let renewed = refresh(&gateway, &token(&session, "refresh_token")).await;
    renewed.assert_status(200);
    assert_eq!(
        me_status(&gateway, &token(&renewed.json(), "access_token")).await,
        200,
        "the session goes on: only the access token was revoked"
    );
    // Again: still 200, still revoked.
    revoke(&gateway, &format!("token={}", form_value(&access)))
        .await
        .assert_status(200);
    assert_eq!(me_status(&gateway, &access).await, 401);
}

#[tokio::test]
async fn unknown_and_garbled_tokens_are_answered_200_and_change_nothing() {
    let gateway = TestGateway::start("").await;
    add_user(&gateway, "carol", &[], PASSWORD).await;
    let session = login_ok(&gateway, "carol", PASSWORD).await;
    let access = token(&session, "access_token");
    let (head, _) = access.rsplit_once('.').expect("a JWT");
    let forged_signature = format!("{head}.AAAA");
    let long = "a".repeat(10_000);
    for junk in [
        "not-a-token",
        "a.b.c",
        forged_signature.as_str(),
        long.as_str(),
        "%00%0d%0a",
    ] {
        let response = revoke(
            &gateway,
            &format!("token={}&token_type_hint=access_token", form_value(junk)),
        )
        .await;
        assert_eq!(response.status, 200, "{junk:.40}");
    }
    revoke(&gateway, "token=x&token_type_hint=no_such_type")
        .await
        .assert_status(200);
    assert_eq!(me_status(&gateway, &access).await, 200);
    refresh(&gateway, &token(&session, "refresh_token"))
        .await
        .assert_status(200);
}

#[tokio::test]
async fn a_request_without_a_token_is_400_and_only_post_forms_are_taken() {
    let gateway = TestGateway::start("").await;
    for form in ["", "token=", "token_type_hint=access_token"] {
        let response = revoke(&gateway, form).await;
        assert_eq!(response.status, 400, "{form:?}");
        assert_eq!(response.error_code(), "invalid_request");
    }
    let json = post_json(
        &gateway,
        "/auth/revoke",
        &serde_json::json!({"token": "x"}),
        &[],
    )
    .await;
    assert_eq!(json.status, 400, "RFC 7009 §2.1: form-encoded");
    let get = gateway.get("/auth/revoke", &[]).await;
    assert_eq!(get.status, 405);
    assert_eq!(get.header("allow"), Some("POST"));
}
