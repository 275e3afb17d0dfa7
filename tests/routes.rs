//! Route rules (SPEC §2 "Routes"): first match wins, methods, public / authenticated /
//! deny, roles, named upstreams, default deny for anonymous requests.

mod common;

use common::{bearer, TestGateway};

const ROUTES: &str = r#"
[[routes]]
path = "/health"
access = "public"

[[routes]]
path = "/static/**"
methods = ["GET", "HEAD"]
access = "public"

[[routes]]
path = "/admin/**"
roles = ["admin", "ops"]

[[routes]]
path = "/internal/**"
access = "deny"

[[routes]]
path = "/files/*.txt"
access = "public"
"#;

#[tokio::test]
async fn unmatched_requests_need_a_token() {
    let gateway = TestGateway::start(ROUTES).await;
    let response = gateway.get("/anything", &[]).await;
    assert_eq!(response.status, 401);
    assert_eq!(response.error_code(), "unauthorized");
    assert_eq!(
        response.header("www-authenticate"),
        Some("Bearer realm=\"gatehouse\"")
    );
    assert!(response.json()["error_description"].is_string());
    assert_eq!(gateway.upstream.count(), 0);
}

#[tokio::test]
async fn public_routes_pass_without_a_token() {
    let gateway = TestGateway::start(ROUTES).await;
    assert_eq!(gateway.get("/health", &[]).await.status, 200);
    assert_eq!(gateway.get("/static", &[]).await.status, 200);
    assert_eq!(gateway.get("/static/", &[]).await.status, 200);
    assert_eq!(gateway.get("/static/a/b.css", &[]).await.status, 200);
    assert_eq!(gateway.get("/files/readme.txt", &[]).await.status, 200);
    assert_eq!(gateway.upstream.count(), 5);
    // `*` stays inside one segment; `/health` is not a prefix.
    assert_eq!(gateway.get("/files/a/b.txt", &[]).await.status, 401);
    assert_eq!(gateway.get("/health/x", &[]).await.status, 401);
    assert_eq!(gateway.get("/staticx", &[]).await.status, 401);
    assert_eq!(gateway.upstream.count(), 5);
}

#[tokio::test]
async fn methods_limit_a_route_and_other_methods_fall_through() {
    let gateway = TestGateway::start(ROUTES).await;
    assert_eq!(
        gateway
            .request("HEAD", "/static/a.css", &[], b"")
            .await
            .status,
        200
    );
    let post = gateway.request("POST", "/static/a.css", &[], b"x").await;
    assert_eq!(post.status, 401, "POST is not public on /static/**");
    assert_eq!(gateway.upstream.count(), 1);
}

#[tokio::test]
async fn roles_are_required_where_configured() {
    let gateway = TestGateway::start(ROUTES).await;
    let reader = gateway.user("reader", &["reader"]).await;
    let operator = gateway.user("operator", &["ops"]).await;
    let response = gateway.get("/admin/users", &[&bearer(&reader.token)]).await;
    assert_eq!(response.status, 403);
    assert_eq!(response.error_code(), "insufficient_scope");
    let challenge = response.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert_eq!(gateway.upstream.count(), 0);
    let response = gateway
        .get("/admin/users", &[&bearer(&operator.token)])
        .await;
    assert_eq!(response.status, 200, "one of the roles is enough");
    assert_eq!(
        gateway
            .upstream
            .last()
            .expect("forwarded")
            .header("x-auth-roles"),
        Some("ops")
    );
}

#[tokio::test]
async fn deny_routes_refuse_everyone() {
    let gateway = TestGateway::start(ROUTES).await;
    let admin = gateway.user("root", &["admin"]).await;
    for headers in [vec![], vec![bearer(&admin.token)]] {
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let response = gateway.get("/internal/metrics", &headers).await;
        assert_eq!(response.status, 403);
        assert_eq!(response.error_code(), "forbidden");
    }
    assert_eq!(gateway.upstream.count(), 0);
}

#[tokio::test]
async fn first_match_wins() {
    let gateway = TestGateway::start(
        r#"
[[routes]]
path = "/docs/private/**"
access = "deny"

[[routes]]
path = "/docs/**"
access = "public"
"#,
    )
    .await;
    assert_eq!(gateway.get("/docs/private/x", &[]).await.status, 403);
    assert_eq!(gateway.get("/docs/public/x", &[]).await.status, 200);
}

#[tokio::test]
async fn named_upstreams_receive_their_routes() {
    let billing = common::EchoUpstream::start().await;
    let gateway = TestGateway::start(&format!(
        "[upstreams.billing]\nurl = \"http://{}\"\n\n[[routes]]\npath = \"/billing/**\"\naccess = \"public\"\nupstream = \"billing\"\n\n[[routes]]\npath = \"/**\"\naccess = \"public\"\n",
        billing.addr
    ))
    .await;
    assert_eq!(gateway.get("/billing/invoices", &[]).await.status, 200);
    assert_eq!(gateway.get("/other", &[]).await.status, 200);
    assert_eq!(billing.count(), 1);
    assert_eq!(billing.last().expect("billing").target, "/billing/invoices");
    assert_eq!(gateway.upstream.count(), 1);
}

#[tokio::test]
async fn auth_prefix_is_never_forwarded() {
    let gateway = TestGateway::start("[[routes]]\npath = \"/**\"\naccess = \"public\"\n").await;
    for target in [
        "/auth",
        "/auth/",
        "/auth/nope",
        "/auth/../auth/x",
        "/x/../auth/admin",
    ] {
        let response = gateway.get(target, &[]).await;
        assert_eq!(response.status, 404, "{target}");
        assert_eq!(response.error_code(), "not_found");
    }
    assert_eq!(
        gateway.get("/authors", &[]).await.status,
        200,
        "/authors is not below /auth"
    );
    assert_eq!(gateway.upstream.count(), 1);
}
