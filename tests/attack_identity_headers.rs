//! Forged identity and forwarding headers (SPEC §3.2): no client can make an upstream
//! believe in an identity gatehouse did not establish, in any spelling, on any route.

mod common;

use common::{bearer, TestGateway};

const ROUTES: &str = r#"
[[routes]]
path = "/public/**"
access = "public"
"#;

const FORGERIES: [&str; 10] = [
    "X-Auth-User: root",
    "x-auth-user: root",
    "X-AUTH-USER: root",
    "X_Auth_User: root",
    "x_auth-user: root",
    "X-Auth-Subject: sub-root",
    "X_AUTH_SUBJECT: sub-root",
    "X-Auth-Roles: admin",
    "x_auth_roles: admin",
    "X-Auth-Roles: admin,superuser",
];

fn assert_no_forged_identity(seen: &common::Received) {
    for (name, value) in &seen.headers {
        let folded = name.to_ascii_lowercase().replace('_', "-");
        if ["x-auth-user", "x-auth-subject", "x-auth-roles"].contains(&folded.as_str()) {
            assert!(
                !value.contains("root") && !value.contains("admin"),
                "forged {name}: {value} reached the upstream"
            );
        }
    }
}

#[tokio::test]
async fn forged_identity_headers_never_reach_the_upstream_on_public_routes() {
    let gateway = TestGateway::start(ROUTES).await;
    let response = gateway.get("/public/x", &FORGERIES).await;
    assert_eq!(response.status, 200);
    let seen = gateway.upstream.last().expect("forwarded");
    assert_no_forged_identity(&seen);
    assert!(
        seen.header("x-auth-user").is_none(),
        "anonymous requests carry no identity"
    );
}

#[tokio::test]
async fn forged_identity_headers_are_replaced_by_the_verified_identity() {
    let gateway = TestGateway::start(ROUTES).await;
    let alice = gateway.user("alice", &["reader"]).await;
    let auth = bearer(&alice.token);
    let mut headers: Vec<&str> = FORGERIES.to_vec();
    headers.push(&auth);
    let response = gateway.get("/api/data", &headers).await;
    assert_eq!(response.status, 200);
    let seen = gateway.upstream.last().expect("forwarded");
    assert_no_forged_identity(&seen);
    assert_eq!(seen.all("x-auth-user"), ["alice"]);
    assert_eq!(seen.all("x-auth-subject"), [alice.sub.as_str()]);
    assert_eq!(seen.all("x-auth-roles"), ["reader"]);
}

#[tokio::test]
async fn a_valid_token_on_a_public_route_yields_identity_and_a_bad_one_is_ignored() {
    let gateway = TestGateway::start(ROUTES).await;
    let alice = gateway.user("alice", &[]).await;
    let response = gateway.get("/public/x", &[&bearer(&alice.token)]).await;
    assert_eq!(response.status, 200);
    assert_eq!(
        gateway
            .upstream
            .last()
            .expect("forwarded")
            .header("x-auth-user"),
        Some("alice")
    );

    let response = gateway
        .get(
            "/public/x",
            &["Authorization: Bearer not.a.token", "X-Auth-User: root"],
        )
        .await;
    assert_eq!(response.status, 200);
    let seen = gateway.upstream.last().expect("forwarded");
    assert!(seen.header("x-auth-user").is_none());
}

#[tokio::test]
async fn configured_identity_header_names_are_the_ones_stripped() {
    let gateway = TestGateway::start(&format!("[headers]\nuser = \"X-Remote-User\"\nsubject = \"X-Remote-Id\"\nroles = \"X-Remote-Groups\"\n{ROUTES}")).await;
    let response = gateway
        .get(
            "/public/x",
            &[
                "X-Remote-User: root",
                "x_remote_groups: admin",
                "X-Remote-Id: 0",
            ],
        )
        .await;
    assert_eq!(response.status, 200);
    let seen = gateway.upstream.last().expect("forwarded");
    assert!(seen.header("x-remote-user").is_none());
    assert!(seen.header("x_remote_groups").is_none());
    assert!(seen.header("x-remote-id").is_none());
}

#[tokio::test]
async fn client_forwarding_headers_are_ignored_from_untrusted_peers() {
    let gateway = TestGateway::start(ROUTES).await;
    let response = gateway
        .get(
            "/public/x",
            &[
                "X-Forwarded-For: 203.0.113.7",
                "X-Forwarded-Proto: https",
                "X-Forwarded-Host: evil.example",
                "X_Forwarded_For: 203.0.113.8",
                "Forwarded: for=203.0.113.9;proto=https",
                "X-Real-IP: 203.0.113.10",
            ],
        )
        .await;
    assert_eq!(response.status, 200);
    let seen = gateway.upstream.last().expect("forwarded");
    assert_eq!(seen.all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen.all("x-forwarded-proto"), ["http"]);
    assert_eq!(seen.all("x-forwarded-host"), ["gateway.test"]);
    assert!(seen.header("forwarded").is_none());
    assert!(seen.header("x_forwarded_for").is_none());
    assert!(seen.header("x-real-ip").is_none());
}

#[tokio::test]
async fn trusted_proxies_forwarding_headers_are_kept_and_appended() {
    let gateway = TestGateway::start(&format!(
        "[headers]\ntrusted_proxies = [\"127.0.0.0/8\"]\n{ROUTES}"
    ))
    .await;
    let response = gateway
        .get(
            "/public/x",
            &[
                "X-Forwarded-For: 203.0.113.7",
                "X-Forwarded-Proto: https",
                "X-Forwarded-Host: app.example",
                "X-Auth-User: root",
            ],
        )
        .await;
    assert_eq!(response.status, 200);
    let seen = gateway.upstream.last().expect("forwarded");
    assert_eq!(seen.all("x-forwarded-for"), ["203.0.113.7, 127.0.0.1"]);
    assert_eq!(seen.all("x-forwarded-proto"), ["https"]);
    assert_eq!(seen.all("x-forwarded-host"), ["app.example"]);
    assert!(
        seen.header("x-auth-user").is_none(),
        "even trusted proxies cannot assert identity"
    );
}
