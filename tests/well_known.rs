//! The documents at the root (SPEC §9): `/.well-known/jwks.json` and the RFC 8414 metadata
//! at `/.well-known/openid-configuration` and `/.well-known/oauth-authorization-server`.
//! Served by gatehouse, never forwarded (the echo upstream must see zero requests for
//! them, even behind a public catch-all route), never subject to routes, no token needed;
//! `Cache-Control` from `tokens.jwks.max_age`, a strong `ETag` with 304 on `If-None-Match`,
//! `Access-Control-Allow-Origin: *`; `HEAD` too, other methods 405.

mod common;

use common::{bearer, Response, TestGateway};

const JWKS: &str = "/.well-known/jwks.json";
const OPENID: &str = "/.well-known/openid-configuration";
const OAUTH: &str = "/.well-known/oauth-authorization-server";

/// Every request below may be forwarded unless gatehouse serves it itself.
const PUBLIC_CATCH_ALL: &str = r#"
[[routes]]
path = "/**"
access = "public"
"#;

/// The raw bytes after the response head.
fn body_bytes(response: &Response) -> &[u8] {
    let split = response
        .raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    &response.raw[split + 4..]
}

#[track_caller]
fn assert_document_headers(response: &Response, max_age: u64) {
    assert_eq!(
        response.header("content-type"),
        Some("application/json"),
        "{:?}",
        response.headers
    );
    assert_eq!(
        response.header("cache-control"),
        Some(format!("public, max-age={max_age}").as_str())
    );
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    let etag = response.header("etag").expect("an ETag");
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        "a strong entity tag: {etag}"
    );
}

#[tokio::test]
async fn the_jwks_is_served_at_the_root_with_cache_etag_and_cors_headers() {
    let gateway = TestGateway::start(PUBLIC_CATCH_ALL).await;
    let response = gateway.get(JWKS, &[]).await;
    response.assert_status(200);
    assert_document_headers(&response, 300);
    assert_eq!(
        response.body, br#"{"keys":[]}"#,
        "a shared secret (HS256) is never published"
    );
    assert_eq!(
        response.header("content-length"),
        Some(response.body.len().to_string().as_str())
    );
    // Stable: the same bytes and tag on every request.
    let again = gateway.get(JWKS, &[]).await;
    assert_eq!(again.body, response.body);
    assert_eq!(again.header("etag"), response.header("etag"));
    assert_eq!(gateway.upstream.count(), 0, "never forwarded");
    // The catch-all route does forward everything else.
    gateway
        .get("/.well-known/other", &[])
        .await
        .assert_status(200);
    assert_eq!(gateway.upstream.count(), 1);
}

#[tokio::test]
async fn if_none_match_with_the_current_tag_answers_304_without_a_body() {
    let gateway = TestGateway::start(PUBLIC_CATCH_ALL).await;
    let first = gateway.get(JWKS, &[]).await;
    let etag = first.header("etag").expect("etag").to_string();
    for value in [
        etag.clone(),
        format!("W/{etag}"),
        format!(r#""stale", {etag}"#),
        "*".to_string(),
    ] {
        for method in ["GET", "HEAD"] {
            let header = format!("If-None-Match: {value}");
            let response = gateway.request(method, JWKS, &[&header], b"").await;
            response.assert_status(304);
            assert_eq!(response.header("etag"), Some(etag.as_str()), "{value}");
            assert_eq!(
                response.header("cache-control"),
                Some("public, max-age=300")
            );
            assert_eq!(response.header("access-control-allow-origin"), Some("*"));
            assert!(
                body_bytes(&response).is_empty(),
                "a 304 has no body: {:?}",
                String::from_utf8_lossy(&response.raw)
            );
            assert_ne!(response.header("content-length"), Some("0"), "{value}");
        }
    }
    // Another tag: the document itself.
    let response = gateway
        .get(JWKS, &[r#"If-None-Match: "stale", W/"older""#])
        .await;
    response.assert_status(200);
    assert_eq!(response.body, first.body);
    assert_eq!(gateway.upstream.count(), 0);
}

#[tokio::test]
async fn head_answers_the_headers_of_get_without_a_body() {
    let gateway =
        TestGateway::start_with_tokens("", r#"issuer = "https://gw.example""#, PUBLIC_CATCH_ALL)
            .await;
    for path in [JWKS, OPENID, OAUTH] {
        let get = gateway.get(path, &[]).await;
        get.assert_status(200);
        let head = gateway.request("HEAD", path, &[], b"").await;
        head.assert_status(200);
        assert_document_headers(&head, 300);
        assert_eq!(head.header("etag"), get.header("etag"), "{path}");
        assert_eq!(
            head.header("content-length"),
            Some(get.body.len().to_string().as_str()),
            "{path}: the length a GET would have"
        );
        assert!(body_bytes(&head).is_empty(), "{path}");
    }
    assert_eq!(gateway.upstream.count(), 0);
}

#[tokio::test]
async fn other_methods_are_405_with_allow_and_the_error_shape() {
    let gateway =
        TestGateway::start_with_tokens("", r#"issuer = "https://gw.example""#, PUBLIC_CATCH_ALL)
            .await;
    for path in [JWKS, OPENID, OAUTH] {
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let response = gateway.request(method, path, &[], b"{}").await;
            response.assert_status(405);
            assert_eq!(
                response.header("allow"),
                Some("GET, HEAD"),
                "{method} {path}"
            );
            assert_eq!(response.header("content-type"), Some("application/json"));
            assert_eq!(response.error_code(), "method_not_allowed");
            assert!(response.json()["error_description"].is_string());
        }
    }
    assert_eq!(gateway.upstream.count(), 0, "never forwarded");
}

#[tokio::test]
async fn discovery_is_one_document_at_both_paths_with_the_issuer_byte_for_byte() {
    let issuer = "https://login.example.com:8443";
    let gateway = TestGateway::start_with_tokens(
        r#"auth_prefix = "/gate""#,
        &format!("issuer = \"{issuer}\""),
        PUBLIC_CATCH_ALL,
    )
    .await;

    let openid = gateway.get(OPENID, &[]).await;
    openid.assert_status(200);
    assert_document_headers(&openid, 300);
    let oauth = gateway.get(OAUTH, &[]).await;
    oauth.assert_status(200);
    assert_eq!(openid.body, oauth.body, "the same document at both paths");
    assert_eq!(openid.header("etag"), oauth.header("etag"));
    assert_ne!(
        openid.header("etag"),
        gateway.get(JWKS, &[]).await.header("etag"),
        "another document, another tag"
    );
    // `issuer` byte for byte, as written in the file: in the raw JSON text too.
    let raw = String::from_utf8(openid.body.clone()).expect("utf-8");
    assert!(raw.contains(&format!(r#""issuer":"{issuer}""#)), "{raw}");
    let document = openid.json();
    assert_eq!(document["issuer"], issuer);
    assert_eq!(
        document["jwks_uri"],
        format!("{issuer}/.well-known/jwks.json")
    );
    assert_eq!(document["token_endpoint"], format!("{issuer}/gate/token"));
    assert_eq!(
        document["revocation_endpoint"],
        format!("{issuer}/gate/revoke")
    );
    assert_eq!(
        document["introspection_endpoint"],
        format!("{issuer}/gate/introspect")
    );
    assert_eq!(
        document["grant_types_supported"],
        serde_json::json!(["password", "refresh_token", "client_credentials"])
    );
    assert_eq!(
        document["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(
        document["introspection_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(document["response_types_supported"], serde_json::json!([]));
    assert_eq!(
        document["id_token_signing_alg_values_supported"],
        serde_json::json!(["HS256"])
    );
    assert_eq!(gateway.upstream.count(), 0, "never forwarded");
}

#[tokio::test]
async fn discovery_answers_404_without_a_url_issuer_and_is_still_not_forwarded() {
    // The default issuer, "gatehouse", is no URL: no document can name URLs from it.
    let gateway = TestGateway::start(PUBLIC_CATCH_ALL).await;
    for path in [OPENID, OAUTH] {
        let response = gateway.get(path, &[]).await;
        response.assert_status(404);
        assert_eq!(response.error_code(), "not_found");
    }
    gateway.get(JWKS, &[]).await.assert_status(200);
    assert_eq!(gateway.upstream.count(), 0, "never forwarded");
}

#[tokio::test]
async fn routes_do_not_apply_to_the_documents() {
    let deny_all = r#"
[[routes]]
path = "/**"
access = "deny"
"#;
    let gateway =
        TestGateway::start_with_tokens("", r#"issuer = "http://127.0.0.1:8080""#, deny_all).await;
    for path in [JWKS, OPENID, OAUTH] {
        gateway.get(path, &[]).await.assert_status(200);
    }
    assert_eq!(gateway.get("/anything", &[]).await.status, 403);
    assert_eq!(gateway.get("/.well-known/other", &[]).await.status, 403);
    assert_eq!(gateway.upstream.count(), 0);

    // Every other path needs a token (no route matches): the documents need none, and a
    // bad token presented to them is ignored rather than refused.
    let protected = TestGateway::start("").await;
    assert_eq!(protected.get("/anything", &[]).await.status, 401);
    protected.get(JWKS, &[]).await.assert_status(200);
    protected
        .get(JWKS, &[&bearer("not-a-token")])
        .await
        .assert_status(200);
    assert_eq!(protected.upstream.count(), 0);
}

#[tokio::test]
async fn path_variants_are_normalized_first_and_only_the_exact_paths_are_served() {
    let gateway = TestGateway::start(PUBLIC_CATCH_ALL).await;
    let jwks = gateway.get(JWKS, &[]).await.body;
    // Equivalent after RFC 3986 normalization: the JWKS itself, from gatehouse.
    for variant in [
        "/.well-known/./jwks.json",
        "/.well-known/x/../jwks.json",
        "//.well-known//jwks.json",
        "/.well-known/jwks%2Ejson",
        "/%2Ewell-known/jwks.json",
        "/.well-known/jwks.json?x=1",
    ] {
        let response = gateway.get(variant, &[]).await;
        response.assert_status(200);
        assert_eq!(response.body, jwks, "{variant}");
    }
    assert_eq!(gateway.upstream.count(), 0);
    // Refused before anything is served or forwarded.
    for refused in [
        "/.well-known%2Fjwks.json",
        "/.well-known/jwks.json%00",
        "/.well-known/jwks.json%5C",
        "/.well-known/../../jwks.json",
        "/.well-known/jwks.json%zz",
    ] {
        let response = gateway.get(refused, &[]).await;
        assert_eq!(response.status, 400, "{refused}");
        assert_eq!(response.error_code(), "invalid_request", "{refused}");
    }
    assert_eq!(gateway.upstream.count(), 0);
    // Other paths are not the documents: they go through the routes (here: forwarded) and
    // the upstream sees the normalized path, never the JWKS path.
    for (sent, forwarded) in [
        ("/.well-known/jwks.json/../x", "/.well-known/x"),
        ("/.well-known/jwks.json/", "/.well-known/jwks.json/"),
        ("/.WELL-KNOWN/jwks.json", "/.WELL-KNOWN/jwks.json"),
        ("/.well-known/jwks.json.bak", "/.well-known/jwks.json.bak"),
    ] {
        let before = gateway.upstream.count();
        gateway.get(sent, &[]).await.assert_status(200);
        assert_eq!(gateway.upstream.count(), before + 1, "{sent}");
        let seen = gateway.upstream.last().expect("forwarded");
        assert_eq!(seen.target, forwarded, "{sent}");
    }
}

#[tokio::test]
async fn an_absolute_form_target_is_served_like_its_path() {
    let gateway = TestGateway::start(PUBLIC_CATCH_ALL).await;
    let response = gateway
        .raw(
            b"GET http://gw.example/.well-known/jwks.json HTTP/1.1\r\nHost: gw.example\r\nConnection: close\r\n\r\n",
        )
        .await;
    response.assert_status(200);
    assert_eq!(response.body, br#"{"keys":[]}"#);
    assert_eq!(gateway.upstream.count(), 0);
}

#[tokio::test]
async fn max_age_comes_from_the_config_and_a_reload_changes_it() {
    let gateway = TestGateway::start(
        r#"
[tokens.jwks]
max_age = "1m"
"#,
    )
    .await;
    let before = gateway.get(JWKS, &[]).await;
    assert_document_headers(&before, 60);

    gateway
        .rewrite_config(
            "",
            r#"
[tokens.jwks]
max_age = "0s"
"#,
        )
        .expect("reload");
    let after = gateway.get(JWKS, &[]).await;
    assert_document_headers(&after, 0);
    assert_eq!(after.header("etag"), before.header("etag"), "same keys");

    // Back to the default.
    gateway.rewrite_config("", "").expect("reload");
    assert_document_headers(&gateway.get(JWKS, &[]).await, 300);
}

#[test]
fn a_bad_max_age_is_refused_with_its_key_path() {
    let base = "[upstreams.default]\nurl = \"http://127.0.0.1:3000\"\n";
    for (text, expected) in [
        ("[tokens.jwks]\nmax_age = \"soon\"\n", "tokens.jwks.max_age"),
        ("[tokens.jwks]\nmax_age = 300\n", "tokens.jwks.max_age"),
        ("[tokens.jwks]\nmaxage = \"5m\"\n", "tokens.jwks.maxage"),
    ] {
        let problems = gatehouse::config::parse(&format!("{base}{text}")).expect_err(text);
        assert!(
            problems.iter().any(|problem| problem.path == expected),
            "{text}: {problems:?}"
        );
    }
    let config = gatehouse::config::parse(&format!("{base}[tokens.jwks]\nmax_age = \"2h\"\n"))
        .expect("valid");
    assert_eq!(config.jwks.max_age, std::time::Duration::from_secs(7200));
    let config = gatehouse::config::parse(base).expect("valid");
    assert_eq!(config.jwks.max_age, std::time::Duration::from_secs(300));
}

#[tokio::test]
async fn the_documents_are_counted_like_gatehouses_own_endpoints() {
    let gateway = TestGateway::start(PUBLIC_CATCH_ALL).await;
    let count = |text: &str, status: &str| -> f64 {
        text.lines()
            .filter(|line| {
                line.starts_with("gatehouse_requests_total{")
                    && line.contains(r#"decision="auth_endpoint""#)
                    && line.contains(&format!(r#"status="{status}""#))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    gateway.get(JWKS, &[]).await.assert_status(200);
    gateway.get(JWKS, &[]).await.assert_status(200);
    gateway.get(OPENID, &[]).await.assert_status(404);
    let (status, _, body) = common::get(gateway.ops_addr, "/metrics", &[])
        .await
        .expect("metrics");
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    assert_eq!(count(&text, "2xx"), 2.0, "{text}");
    assert_eq!(count(&text, "4xx"), 1.0, "{text}");
}

#[tokio::test]
async fn h2c_clients_get_the_documents_and_head_has_no_body() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let gateway = TestGateway::start(PUBLIC_CATCH_ALL).await;
    let stream = tokio::net::TcpStream::connect(gateway.addr)
        .await
        .expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    let mut length = None;
    for method in ["GET", "HEAD"] {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{JWKS}", gateway.addr))
            .body(Empty::<bytes::Bytes>::new())
            .expect("request");
        let response = sender.send_request(request).await.expect("response");
        assert_eq!(response.status(), 200, "{method}");
        assert_eq!(response.headers()["access-control-allow-origin"], "*");
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        match method {
            "GET" => {
                assert_eq!(&body[..], br#"{"keys":[]}"#);
                length = Some(body.len());
            }
            _ => {
                assert!(body.is_empty(), "HEAD has no body");
                assert_eq!(
                    headers["content-length"],
                    length.expect("GET first").to_string().as_str()
                );
            }
        }
    }
    assert_eq!(gateway.upstream.count(), 0);
}
