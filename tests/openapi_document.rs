//! `GET /auth/openapi.json` (SPEC §4 last row) kept honest against the router: the served
//! document names exactly the endpoints of SPEC §4's table, every documented path and
//! method is routed (never 404/405), every other method of a documented path is 405 with
//! an `Allow` that names exactly the documented methods, and nothing else under
//! `auth_prefix` answers. Served like the well-known documents: `application/json`, a
//! strong `ETag` with 304, `HEAD`, other methods 405, never forwarded. The document's
//! validity (openapi-spec-validator) and the responses' conformance (schemathesis) are
//! tests/openapi_fuzz.rs.

mod common;

use std::collections::BTreeSet;

use common::{Response, TestGateway};

/// SPEC §4's endpoint table, below `auth_prefix`, word for word, and SPEC §10's
/// `/forward-auth` and pages.
const SPEC_ENDPOINTS: [&str; 14] = [
    "/login",
    "/token",
    "/refresh",
    "/logout",
    "/me",
    "/verify",
    "/password",
    "/register",
    "/revoke",
    "/introspect",
    "/openapi.json",
    "/forward-auth",
    "/sign_in",
    "/sign_out",
];

/// The methods an OpenAPI path item can name.
const OPENAPI_METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
];

/// Registration and browser sign-in on (so `/auth/register` and the pages are routed),
/// and a public catch-all so a request that escaped to the proxy would be forwarded and
/// counted.
const CONFIG: &str = r#"
[registration]
enabled = true

[browser]
enabled = true
public_url = "https://app.example.com"

[[routes]]
path = "/**"
access = "public"
"#;

async fn served_document(gateway: &TestGateway) -> (Response, serde_json::Value) {
    let response = gateway.get("/auth/openapi.json", &[]).await;
    response.assert_status(200);
    let document = response.json();
    (response, document)
}

/// `(path, METHODS)` of the document.
fn documented(document: &serde_json::Value) -> Vec<(String, BTreeSet<String>)> {
    document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .expect("a path item")
                .keys()
                .map(|method| method.to_ascii_uppercase())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

#[tokio::test]
async fn the_document_is_served_as_json_with_an_etag_head_304_and_405() {
    let gateway = TestGateway::start(CONFIG).await;
    let (response, document) = served_document(&gateway).await;
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.header("cache-control"), Some("no-cache"));
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["servers"], serde_json::json!([{ "url": "/" }]));
    let etag = response.header("etag").expect("an ETag").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

    let head = gateway
        .request("HEAD", "/auth/openapi.json", &[], b"")
        .await;
    head.assert_status(200);
    assert_eq!(
        head.header("content-length"),
        Some(response.body.len().to_string().as_str())
    );
    assert_eq!(head.header("etag"), Some(etag.as_str()));

    let again = gateway
        .get("/auth/openapi.json", &[&format!("If-None-Match: {etag}")])
        .await;
    again.assert_status(304);
    assert!(again.body.is_empty());

    let post = gateway
        .request("POST", "/auth/openapi.json", &[], b"")
        .await;
    post.assert_status(405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    assert_eq!(post.error_code(), "method_not_allowed");

    // The same bytes every time (built once at start).
    let (second, _) = served_document(&gateway).await;
    assert_eq!(second.body, response.body);
    assert_eq!(gateway.upstream.count(), 0, "never forwarded");
}

#[tokio::test]
async fn the_document_follows_auth_prefix() {
    let gateway = TestGateway::start_with(r#"auth_prefix = "/gate""#, CONFIG).await;
    let response = gateway.get("/gate/openapi.json", &[]).await;
    response.assert_status(200);
    let paths: BTreeSet<String> = documented(&response.json())
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    assert!(paths.contains("/gate/login"), "{paths:?}");
    assert!(
        paths.iter().all(|path| path.starts_with("/gate/")),
        "{paths:?}"
    );
}

/// Every documented path and method reaches its endpoint; every other method of that
/// path is 405 naming exactly the documented ones; a path not documented is 404.
#[tokio::test]
async fn every_documented_operation_is_routed_and_nothing_else_is() {
    let gateway = TestGateway::start(CONFIG).await;
    let (_, document) = served_document(&gateway).await;
    let operations = documented(&document);
    assert!(operations.len() >= 10, "{operations:?}");
    for (path, methods) in &operations {
        for method in OPENAPI_METHODS {
            let response = gateway.request(method, path, &[], b"").await;
            if methods.contains(method) {
                assert!(
                    response.status != 404 && response.status != 405,
                    "{method} {path} is documented but answered {}",
                    response.status
                );
            } else {
                assert_eq!(
                    response.status, 405,
                    "{method} {path} is not documented but answered {}",
                    response.status
                );
                let allow: BTreeSet<String> = response
                    .header("allow")
                    .expect("405 carries Allow")
                    .split(',')
                    .map(|method| method.trim().to_owned())
                    .collect();
                assert_eq!(&allow, methods, "Allow of {path}");
            }
        }
    }
    for path in [
        "/auth/nothing",
        "/auth/openapi.yaml",
        "/auth/login/x",
        "/auth/",
    ] {
        for method in ["GET", "POST"] {
            let response = gateway.request(method, path, &[], b"").await;
            assert_eq!(response.status, 404, "{method} {path}");
        }
    }
    assert_eq!(
        gateway.upstream.count(),
        0,
        "own endpoints are never forwarded"
    );
}

/// The document's paths and the router's table are SPEC §4's endpoints, no more, no fewer.
#[tokio::test]
async fn the_document_and_the_router_name_exactly_the_spec_endpoints() {
    let spec: BTreeSet<String> = SPEC_ENDPOINTS
        .iter()
        .map(|path| format!("/auth{path}"))
        .collect();
    let routed: BTreeSet<String> = gatehouse::endpoints::ROUTES
        .iter()
        .map(|route| format!("/auth{}", route.path))
        .collect();
    let gateway = TestGateway::start(CONFIG).await;
    let (_, document) = served_document(&gateway).await;
    let paths: BTreeSet<String> = documented(&document)
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    assert_eq!(paths, routed, "the document is the router's table");
    assert_eq!(
        routed,
        spec,
        "the router serves SPEC §4's endpoints: missing {:?}, extra {:?}",
        spec.difference(&routed).collect::<Vec<_>>(),
        routed.difference(&spec).collect::<Vec<_>>()
    );
}

/// SPEC §4's methods: POST for the endpoints that take a body, GET/HEAD for `/me` and the
/// document, every method for forward-auth; GET/HEAD/POST for SPEC §10's pages.
#[tokio::test]
async fn documented_methods_are_the_spec_methods() {
    let gateway = TestGateway::start(CONFIG).await;
    let (_, document) = served_document(&gateway).await;
    for (path, methods) in documented(&document) {
        let sub = path.strip_prefix("/auth").expect("under /auth");
        let expected: BTreeSet<String> = match sub {
            "/me" | "/openapi.json" => ["GET", "HEAD"].map(String::from).into(),
            "/verify" | "/forward-auth" => OPENAPI_METHODS.map(String::from).into(),
            "/sign_in" | "/sign_out" => ["GET", "HEAD", "POST"].map(String::from).into(),
            _ => ["POST".to_owned()].into(),
        };
        assert_eq!(methods, expected, "{path}");
    }
}
