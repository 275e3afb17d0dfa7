//! `/auth/login` and `/auth/token` (SPEC §4, RFC 6749 §4.3, §5.2, §6) against an
//! in-process gateway with a real sled store; plus the bounded body reader (SPEC §7).

mod common;

use common::accounts;

use std::time::Duration;

use accounts::*;
use common::*;
use gatehouse::admin::protocol::Request;

#[tokio::test]
async fn login_with_json_answers_an_uncacheable_token_response() {
    let gateway = TestGateway::start("").await;
    add_user(&gateway, "alice", &["admin", "dev"], PASSWORD).await;
    let response = login(&gateway, "alice", PASSWORD).await;
    response.assert_status(200);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["refresh_expires_in"], 7 * 86_400);
    let refresh = body["refresh_token"].as_str().expect("refresh_token");
    assert!(refresh.len() >= 43, "at least 256 bits: {}", refresh.len());
    let access = body["access_token"].as_str().expect("access_token");
    let claims = claims_of(access);
    assert_eq!(claims["username"], "alice");
    assert_eq!(claims["roles"], serde_json::json!(["admin", "dev"]));
    for claim in ["iss", "aud", "sub", "iat", "nbf", "exp", "jti", "sid"] {
        assert!(!claims[claim].is_null(), "claim {claim} missing: {claims}");
    }
    assert_eq!(me_status(&gateway, access).await, 200);
}

#[tokio::test]
async fn login_with_a_form_body_works_too() {
    let gateway = TestGateway::start("").await;
    add_user(&gateway, "bob", &[], PASSWORD).await;
    let response = post_form(
        &gateway,
        "/auth/login",
        "username=bob&password=correct+horse+battery",
        &[],
    )
    .await;
    response.assert_status(200);
    assert!(response.json()["access_token"].is_string());
}

#[tokio::test]
async fn usernames_match_case_insensitively_and_display_as_created() {
    let gateway = TestGateway::start("").await;
    add_user(&gateway, "Alice.Smith@example", &[], PASSWORD).await;
    let tokens = login_ok(&gateway, "aLiCe.sMiTh@EXAMPLE", PASSWORD).await;
    let access = tokens["access_token"].as_str().expect("token");
    assert_eq!(claims_of(access)["username"], "Alice.Smith@example");
    let me = gateway.get("/auth/me", &[&bearer(access)]).await;
    assert_eq!(me.json()["username"], "Alice.Smith@example");
}

#[tokio::test]
async fn wrong_password_unknown_user_and_impossible_name_get_the_identical_401() {
    let gateway = TestGateway::start("").await;
    add_user(&gateway, "alice", &[], PASSWORD).await;
    let wrong = login(&gateway, "alice", "not the password").await;
    let unknown = login(&gateway, "mallory", "not the password").await;
    let impossible = login(&gateway, "no such user!", "not the password").await;
    for response in [&wrong, &unknown, &impossible] {
        assert_eq!(response.status, 401);
        assert_eq!(response.error_code(), "invalid_credentials");
        assert_eq!(
            response.header("www-authenticate"),
            Some(r#"Bearer realm="gatehouse""#)
        );
    }
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(wrong.body, impossible.body);
    let text = String::from_utf8_lossy(&wrong.body);
    assert!(
        !text.contains("alice") && !text.contains("not the password"),
        "{text}"
    );
}

#[tokio::test]
async fn a_disabled_account_is_403_only_after_the_correct_password() {
    let gateway = TestGateway::start("").await;
    add_user(&gateway, "carol", &[], PASSWORD).await;
    let reply = admin(
        &gateway,
        Request::Disable {
            username: "carol".into(),
        },
    )
    .await;
    assert!(reply.ok, "{reply:?}");
    let wrong = login(&gateway, "carol", "not the password").await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.error_code(), "invalid_credentials");
    let right = login(&gateway, "carol", PASSWORD).await;
    assert_eq!(right.status, 403);
    assert_eq!(right.error_code(), "account_disabled");
}

#[tokio::test]
async fn malformed_login_requests_are_400_invalid_request_and_never_echo_the_body() {
    let gateway = TestGateway::start("").await;
    let cases: Vec<(&str, &[u8])> = vec![
        ("application/json", br#"{"username":"alice"}"#),
        (
            "application/json",
            br#"{"username":"alice","password":12345678}"#,
        ),
        (
            "application/json",
            br#"{"username":"alice","password":"secret-pw"#,
        ),
        ("application/json", b"\xff\xfe\x00"),
        ("application/json", b""),
        ("application/x-www-form-urlencoded", b"username=alice"),
        (
            "application/x-www-form-urlencoded",
            b"username=a&username=b&password=secret-pw",
        ),
        ("text/plain", b"username=alice&password=secret-pw"),
    ];
    for (content_type, body) in cases {
        let header = format!("Content-Type: {content_type}");
        let response = gateway
            .request("POST", "/auth/login", &[&header], body)
            .await;
        assert_eq!(
            response.status,
            400,
            "{content_type} {:?}: {}",
            String::from_utf8_lossy(body),
            String::from_utf8_lossy(&response.body)
        );
        assert_eq!(response.error_code(), "invalid_request");
        let text = String::from_utf8_lossy(&response.body);
        assert!(
            !text.contains("secret-pw") && !text.contains("12345678"),
            "{text}"
        );
    }
}

/// Field trial: these used to be read as credentials and fail as 401
/// `invalid_credentials`; SPEC §4 makes them 400 `invalid_request` — a client bug must
/// not look like a wrong password (and must not count toward a lockout).
#[tokio::test]
async fn bodies_that_are_not_an_object_of_strings_or_not_declared_are_400() {
    let gateway = TestGateway::start("").await;
    add_user(&gateway, "dave", &[], PASSWORD).await;
    let json = serde_json::json!({"username": "dave", "password": PASSWORD}).to_string();
    let array = serde_json::json!(["dave", PASSWORD]).to_string();
    let extra =
        serde_json::json!({"username": "dave", "password": PASSWORD, "remember": true}).to_string();
    let cases: Vec<(Option<&str>, Vec<u8>)> = vec![
        (None, json.clone().into_bytes()),
        (
            None,
            format!("username=dave&password={PASSWORD}").into_bytes(),
        ),
        (Some("application/json"), array.into_bytes()),
        (Some("application/json"), extra.into_bytes()),
        (
            Some("application/json"),
            br#"{"username":"dave","password":"x","n":null}"#.to_vec(),
        ),
        (
            Some("application/x-www-form-urlencoded"),
            b"username=dave%FF&password=whatever-pw".to_vec(),
        ),
        (
            Some("application/x-www-form-urlencoded"),
            b"username=dave&password=\xff\xfe-whatever".to_vec(),
        ),
    ];
    for (content_type, body) in cases {
        let header = content_type.map(|value| format!("Content-Type: {value}"));
        let headers: Vec<&str> = header.iter().map(String::as_str).collect();
        let response = gateway
            .request("POST", "/auth/login", &headers, &body)
            .await;
        assert_eq!(
            response.status,
            400,
            "{content_type:?} {:?}: {}",
            String::from_utf8_lossy(&body),
            String::from_utf8_lossy(&response.body)
        );
        assert_eq!(response.error_code(), "invalid_request");
    }
    // The same credentials, declared, still work (and nothing above counted as a failure).
    let response = gateway
        .request(
            "POST",
            "/auth/login",
            &["Content-Type: application/json"],
            json.as_bytes(),
        )
        .await;
    response.assert_status(200);
}

#[tokio::test]
async fn a_declared_body_over_16_kib_is_refused_413_before_it_is_sent() {
    let gateway = TestGateway::start("").await;
    // Only the head is sent: the answer must come without the gateway waiting for the
    // megabyte it was promised.
    let head = b"POST /auth/login HTTP/1.1\r\nHost: gateway.test\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n";
    let response = tokio::time::timeout(Duration::from_secs(5), gateway.raw(head))
        .await
        .expect("answered without the body");
    assert_eq!(response.status, 413);
    assert_eq!(response.error_code(), "payload_too_large");
}

#[tokio::test]
async fn a_chunked_body_is_cut_off_once_it_passes_16_kib() {
    let gateway = TestGateway::start("").await;
    let mut request = b"POST /auth/login HTTP/1.1\r\nHost: gateway.test\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    let chunk = vec![b' '; 4096];
    for _ in 0..5 {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(&chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let response = gateway.raw(&request).await;
    assert_eq!(response.status, 413);
    assert_eq!(response.error_code(), "payload_too_large");
    // Exactly 16 KiB is still read.
    let exact = serde_json::json!({"username": "x", "password": "y".repeat(16 * 1024 - 30)});
    let mut text = exact.to_string();
    while text.len() < 16 * 1024 {
        text.push(' ');
    }
    let response = gateway
        .request(
            "POST",
            "/auth/login",
            &["Content-Type: application/json"],
            text.as_bytes(),
        )
        .await;
    response.assert_status(401);
}

#[tokio::test]
async fn auth_endpoints_take_only_their_methods() {
    let gateway = TestGateway::start("").await;
    for path in [
        "/auth/login",
        "/auth/token",
        "/auth/refresh",
        "/auth/logout",
        "/auth/password",
    ] {
        let response = gateway.get(path, &[]).await;
        assert_eq!(response.status, 405, "{path}");
        assert_eq!(response.header("allow"), Some("POST"), "{path}");
    }
    assert_eq!(gateway.get("/auth/nothing-here", &[]).await.status, 404);
}

#[tokio::test]
async fn login_outcomes_are_counted_in_the_metrics() {
    let gateway = TestGateway::start("").await;
    add_user(&gateway, "erin", &[], PASSWORD).await;
    login_ok(&gateway, "erin", PASSWORD).await;
    login(&gateway, "erin", "wrong password").await;
    login(&gateway, "nobody", "wrong password").await;
    post_json(&gateway, "/auth/login", &serde_json::json!({}), &[]).await;
    let metrics = common::raw(
        gateway.ops_addr,
        b"GET /metrics HTTP/1.1\r\nHost: ops\r\nConnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    assert!(
        text.contains(r#"gatehouse_logins_total{outcome="success"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"gatehouse_logins_total{outcome="invalid_credentials"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"gatehouse_logins_total{outcome="invalid_request"} 1"#),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------
// /auth/token (RFC 6749)

#[tokio::test]
async fn the_password_grant_answers_a_token_response_and_ignores_client_id() {
    let gateway = TestGateway::start("").await;
    add_user(&gateway, "frank", &["ops"], PASSWORD).await;
    let response = post_form(
        &gateway,
        "/auth/token",
        "grant_type=password&username=FRANK&password=correct%20horse%20battery&client_id=cli&scope=x",
        &[],
    )
    .await;
    response.assert_status(200);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let body = response.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(
        claims_of(body["access_token"].as_str().expect("token"))["roles"],
        serde_json::json!(["ops"])
    );
}

#[tokio::test]
async fn the_refresh_token_grant_rotates_like_the_refresh_endpoint() {
    let gateway = TestGateway::start("").await;
    add_user(&gateway, "gina", &[], PASSWORD).await;
    let tokens = login_ok(&gateway, "gina", PASSWORD).await;
    let old = tokens["refresh_token"].as_str().expect("refresh");
    let form = format!("grant_type=refresh_token&refresh_token={old}&client_id=cli");
    let response = post_form(&gateway, "/auth/token", &form, &[]).await;
    response.assert_status(200);
    let new = response.json()["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    assert_ne!(new, old);
    // The spent one is an invalid grant (RFC 6749 §5.2: 400 on this endpoint).
    let again = post_form(&gateway, "/auth/token", &form, &[]).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.error_code(), "invalid_grant");
}

#[tokio::test]
async fn token_endpoint_errors_follow_rfc6749_section_5_2() {
    let gateway = TestGateway::start("").await;
    add_user(&gateway, "hank", &[], PASSWORD).await;
    let cases: &[(&str, u16, &str)] = &[
        ("username=hank&password=x", 400, "invalid_request"),
        ("grant_type=", 400, "invalid_request"),
        // A supported grant (SPEC §4) without client authentication (RFC 6749 §5.2).
        ("grant_type=client_credentials", 401, "invalid_client"),
        (
            "grant_type=authorization_code&code=x",
            400,
            "unsupported_grant_type",
        ),
        ("grant_type=password&username=hank", 400, "invalid_request"),
        ("grant_type=password&password=x", 400, "invalid_request"),
        (
            "grant_type=password&username=hank&password=wrong-password",
            400,
            "invalid_grant",
        ),
        (
            "grant_type=password&username=nobody&password=wrong-password",
            400,
            "invalid_grant",
        ),
        (
            "grant_type=password&grant_type=password&username=hank&password=x",
            400,
            "invalid_request",
        ),
        ("grant_type=refresh_token", 400, "invalid_request"),
        (
            "grant_type=refresh_token&refresh_token=not-a-token",
            400,
            "invalid_grant",
        ),
    ];
    for (form, status, code) in cases {
        let response = post_form(&gateway, "/auth/token", form, &[]).await;
        assert_eq!(
            response.status,
            *status,
            "{form}: {}",
            String::from_utf8_lossy(&response.body)
        );
        assert_eq!(response.error_code(), *code, "{form}");
        assert_eq!(response.header("cache-control"), Some("no-store"), "{form}");
    }
    // Form-encoded only (RFC 6749 §4.3.2).
    let json = post_json(
        &gateway,
        "/auth/token",
        &serde_json::json!({"grant_type": "password", "username": "hank", "password": PASSWORD}),
        &[],
    )
    .await;
    assert_eq!(json.status, 400);
    assert_eq!(json.error_code(), "invalid_request");
}

#[tokio::test]
async fn a_disabled_account_gets_invalid_grant_from_the_token_endpoint() {
    let gateway = TestGateway::start("").await;
    add_user(&gateway, "ivan", &[], PASSWORD).await;
    let reply = admin(
        &gateway,
        Request::Disable {
            username: "ivan".into(),
        },
    )
    .await;
    assert!(reply.ok);
    let response = post_form(
        &gateway,
        "/auth/token",
        "grant_type=password&username=ivan&password=correct+horse+battery",
        &[],
    )
    .await;
    assert_eq!(response.status, 400);
    assert_eq!(response.error_code(), "invalid_grant");
}
