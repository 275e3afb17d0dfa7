//! Path tricks from published gateway bypass advisories (SPEC §3.1): every one is either
//! refused with 400 before the upstream sees anything, or forwarded as exactly the
//! normalized path that was authorized.

mod common;

use common::TestGateway;

const ROUTES: &str = r#"
[[routes]]
path = "/public/**"
access = "public"

[[routes]]
path = "/admin/**"
roles = ["admin"]

[[routes]]
path = "/internal/**"
access = "deny"
"#;

async fn assert_refused_unforwarded(gateway: &TestGateway, target: &str) {
    let before = gateway.upstream.count();
    let response = gateway.get(target, &[]).await;
    assert_eq!(
        response.status,
        400,
        "{target}: {:?}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.error_code(), "invalid_request", "{target}");
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(
        gateway.upstream.count(),
        before,
        "{target} reached the upstream"
    );
}

#[tokio::test]
async fn dot_segments_rising_above_root_are_refused_in_every_encoding() {
    let gateway = TestGateway::start(ROUTES).await;
    for target in [
        "/..",
        "/../admin",
        "/public/../../admin",
        "/%2e%2e/admin",
        "/%2E%2E/admin",
        "/.%2e/admin",
        "/%2e./admin",
        "/public/%2e%2e/%2e%2e/admin",
        "/public/..%2F..%2Fadmin",
    ] {
        assert_refused_unforwarded(&gateway, target).await;
    }
}

#[tokio::test]
async fn encoded_separators_backslashes_and_controls_are_refused() {
    let gateway = TestGateway::start(ROUTES).await;
    for target in [
        "/public/..%2fadmin",
        "/public%2F..%2Fadmin",
        "/public/%5c..%5cadmin",
        "/public\\..\\admin",
        "/public/%23/../admin",
        "/public/%00",
        "/public/%0d%0a",
        "/public/%zz",
        "/public/%2",
        "/public/%",
        "/public/..;/admin/x",
        "/public/%2e%2e;/admin",
    ] {
        assert_refused_unforwarded(&gateway, target).await;
    }
}

#[tokio::test]
async fn dot_segments_inside_a_public_prefix_cannot_reach_a_protected_path() {
    let gateway = TestGateway::start(ROUTES).await;
    for target in [
        "/public/../admin/users",
        "/public/%2e%2e/admin/users",
        "/public/./../admin/users",
        "/public/.%2E/admin/users",
        "//public/../admin/users",
    ] {
        let before = gateway.upstream.count();
        let response = gateway.get(target, &[]).await;
        assert_eq!(
            response.status, 401,
            "{target} must be judged as /admin/users"
        );
        assert_eq!(response.error_code(), "unauthorized");
        assert_eq!(
            gateway.upstream.count(),
            before,
            "{target} reached the upstream"
        );
    }
}

#[tokio::test]
async fn dot_segments_cannot_escape_into_a_denied_prefix() {
    let gateway = TestGateway::start(ROUTES).await;
    let admin = gateway.user("root", &["admin"]).await;
    for target in [
        "/public/../internal/secrets",
        "/admin/../internal/x",
        "/public/%2e%2e/internal/x",
    ] {
        let before = gateway.upstream.count();
        let response = gateway.get(target, &[&common::bearer(&admin.token)]).await;
        assert_eq!(response.status, 403, "{target}");
        assert_eq!(response.error_code(), "forbidden");
        assert_eq!(gateway.upstream.count(), before);
    }
}

#[tokio::test]
async fn the_upstream_sees_exactly_the_normalized_path_and_original_query() {
    let gateway = TestGateway::start(ROUTES).await;
    let cases = [
        ("/public//a///b", "/public/a/b"),
        ("/public/./a/./b/", "/public/a/b/"),
        ("/public/x/../a", "/public/a"),
        ("/public/%7euser/%41%62c", "/public/~user/Abc"),
        ("/public/a%3ab", "/public/a%3Ab"),
        ("/public/q?x=%2e%2e/../&y=1", "/public/q?x=%2e%2e/../&y=1"),
    ];
    for (sent, expected) in cases {
        let response = gateway.get(sent, &[]).await;
        assert_eq!(response.status, 200, "{sent}");
        assert_eq!(
            gateway.upstream.last().expect("forwarded").target,
            expected,
            "{sent}"
        );
    }
}

#[tokio::test]
async fn case_and_double_slash_variants_do_not_dodge_route_rules() {
    let gateway = TestGateway::start(ROUTES).await;
    // Route patterns are case-sensitive: /ADMIN is not /admin/**, so it falls through to
    // the default rule, which still demands a token.
    for target in [
        "/ADMIN/users",
        "/Admin/users",
        "//admin/users",
        "/admin//users",
        "/internal/../admin/x",
    ] {
        let before = gateway.upstream.count();
        let response = gateway.get(target, &[]).await;
        assert_eq!(response.status, 401, "{target}");
        assert_eq!(gateway.upstream.count(), before);
    }
    let response = gateway.get("//internal//x", &[]).await;
    assert_eq!(response.status, 403);
}

#[tokio::test]
async fn absolute_form_targets_are_normalized_and_their_authority_replaces_host() {
    let gateway = TestGateway::start(ROUTES).await;
    let response = gateway
        .raw(b"GET http://other.example/public/a/../b HTTP/1.1\r\nHost: gateway.test\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(response.status, 200);
    let seen = gateway.upstream.last().expect("forwarded");
    assert_eq!(seen.target, "/public/b");
    assert_eq!(seen.header("host"), Some("other.example"));

    let before = gateway.upstream.count();
    let response = gateway
        .raw(b"GET http://other.example/public/../admin/x HTTP/1.1\r\nHost: gateway.test\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(response.status, 401);
    assert_eq!(gateway.upstream.count(), before);
}

#[tokio::test]
async fn targets_that_are_not_paths_are_refused() {
    let gateway = TestGateway::start(ROUTES).await;
    for request in [
        &b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..],
        &b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n"
            [..],
        &b"GET ftp://example.com/public/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..],
    ] {
        let response = gateway.raw(request).await;
        assert_eq!(response.status, 400, "{}", String::from_utf8_lossy(request));
    }
    assert_eq!(gateway.upstream.count(), 0);
}

#[tokio::test]
async fn a_raw_fragment_is_never_forwarded() {
    // The HTTP parser cuts the fragment off before gatehouse sees the target, so what is
    // matched and what is forwarded are the same path without it.
    let gateway = TestGateway::start(ROUTES).await;
    let response = gateway
        .raw(b"GET /public/x#/../../admin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(
        gateway.upstream.last().expect("forwarded").target,
        "/public/x"
    );
    let response = gateway
        .raw(b"GET /admin/x#/../../public HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(response.status, 401);
    assert_eq!(gateway.upstream.count(), 1);
}
