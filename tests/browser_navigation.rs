//! Browsers vs APIs (SPEC §10 "Browsers are sent to sign in"), at the HTTP level against
//! the in-process gateway and the echo upstream: with `[browser] enabled`, a request that
//! needs a credential and has none is answered 302 to `public_url` +
//! `/auth/sign_in?rd=<the original URL>` exactly when it is a browser navigation (GET or
//! HEAD, and `Sec-Fetch-Mode: navigate` with `Sec-Fetch-Dest` absent or `document`, or —
//! without Fetch Metadata — an `Accept` listing `text/html`); every other client keeps the
//! JSON 401 of SPEC §5, byte for byte what it got before. The same rule gives
//! `/auth/verify` its `Location` and `/auth/forward-auth` its 302. gatehouse's own cookies
//! never reach an upstream.

mod common;

use common::accounts::browser_session;
use common::{bearer, Response, TestGateway};

const PUBLIC_URL: &str = "https://app.example.com";

const ROUTES: &str = r#"
[[routes]]
path = "/public/**"
access = "public"

[[routes]]
path = "/admin/**"
roles = ["admin"]
"#;

/// What Chrome sends for a typed URL or a followed link.
const NAVIGATE: &[&str] = &[
    "Sec-Fetch-Mode: navigate",
    "Sec-Fetch-Dest: document",
    "Sec-Fetch-Site: none",
    "Sec-Fetch-User: ?1",
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
];

fn browser_section(extra: &str) -> String {
    format!("[browser]\nenabled = true\npublic_url = \"{PUBLIC_URL}\"\n{extra}\n{ROUTES}")
}

async fn browser_gateway() -> TestGateway {
    TestGateway::start(&browser_section("")).await
}

/// The `rd` of a sign-in `Location`, decoded; panics unless the location is the sign-in
/// page under `PUBLIC_URL`.
fn rd_of(location: &str) -> String {
    let url = url::Url::parse(location).expect("Location is a URL");
    assert_eq!(url.origin().ascii_serialization(), PUBLIC_URL, "{location}");
    assert_eq!(url.path(), "/auth/sign_in", "{location}");
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert_eq!(pairs.len(), 1, "{location}");
    assert_eq!(pairs[0].0, "rd", "{location}");
    pairs[0].1.clone()
}

#[track_caller]
fn assert_sign_in_redirect(response: &Response, rd: &str) {
    response.assert_status(302);
    let location = response.header("location").expect("a Location");
    assert_eq!(rd_of(location), rd);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert!(
        response.header("www-authenticate").is_none(),
        "a redirect is not a challenge"
    );
}

#[track_caller]
fn assert_json_401(response: &Response, code: &str) {
    response.assert_status(401);
    assert_eq!(response.error_code(), code);
    assert!(
        response.header("location").is_none(),
        "no redirect for this client: {:?}",
        response.headers
    );
    assert!(response
        .header("www-authenticate")
        .is_some_and(|value| value.starts_with("Bearer realm=\"gatehouse\"")));
    assert_eq!(response.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn a_top_level_navigation_without_a_credential_is_sent_to_sign_in() {
    let gateway = browser_gateway().await;
    let response = gateway.get("/app/./docs//page?x=1&y=%2F", NAVIGATE).await;
    // The normalized path (what was matched), the query as the browser sent it.
    assert_sign_in_redirect(&response, "http://gateway.test/app/docs/page?x=1&y=%2F");
    assert!(response.body.is_empty(), "a redirect has no body");
    // Navigation without Sec-Fetch-Dest, and HEAD, too.
    let response = gateway
        .get("/app/page", &["Sec-Fetch-Mode: navigate"])
        .await;
    assert_sign_in_redirect(&response, "http://gateway.test/app/page");
    let response = gateway.request("HEAD", "/app/page", NAVIGATE, b"").await;
    assert_sign_in_redirect(&response, "http://gateway.test/app/page");
    // An older browser without Fetch Metadata: Accept lists text/html.
    let response = gateway
        .get("/app/page", &["Accept: text/html, */*;q=0.1"])
        .await;
    assert_sign_in_redirect(&response, "http://gateway.test/app/page");
    assert_eq!(gateway.upstream.count(), 0, "nothing was forwarded");
}

#[tokio::test]
async fn everything_that_is_not_a_navigation_keeps_the_json_401() {
    let gateway = browser_gateway().await;
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "iframe navigation",
            "GET",
            &[
                "Sec-Fetch-Mode: navigate",
                "Sec-Fetch-Dest: iframe",
                "Accept: text/html",
            ],
        ),
        (
            "fetch()",
            "GET",
            &[
                "Sec-Fetch-Mode: cors",
                "Sec-Fetch-Dest: empty",
                "Accept: */*",
            ],
        ),
        (
            "no-cors image",
            "GET",
            &[
                "Sec-Fetch-Mode: no-cors",
                "Sec-Fetch-Dest: image",
                "Accept: image/avif,image/webp,*/*",
            ],
        ),
        (
            "XHR without Fetch Metadata",
            "GET",
            &["Accept: */*", "X-Requested-With: XMLHttpRequest"],
        ),
        ("curl", "GET", &["User-Agent: curl/8.5.0", "Accept: */*"]),
        ("no Accept at all", "GET", &[]),
        ("API client", "GET", &["Accept: application/json"]),
        ("text/html refused", "GET", &["Accept: text/html;q=0, */*"]),
        (
            "form POST navigation",
            "POST",
            &[
                "Sec-Fetch-Mode: navigate",
                "Sec-Fetch-Dest: document",
                "Accept: text/html",
            ],
        ),
        (
            "DELETE with Accept text/html",
            "DELETE",
            &["Accept: text/html"],
        ),
    ];
    for (what, method, headers) in cases {
        let response = gateway.request(method, "/app/page", headers, b"").await;
        response.assert_status(401);
        assert_json_401(&response, "unauthorized");
        assert_eq!(
            response.json()["error_description"],
            "a valid bearer token is required",
            "{what}: the 401 body is unchanged"
        );
    }
    assert_eq!(gateway.upstream.count(), 0);
}

#[tokio::test]
async fn a_bad_bearer_token_is_judged_alone_even_on_a_navigation() {
    let gateway = browser_gateway().await;
    let mut headers = NAVIGATE.to_vec();
    headers.push("Authorization: Bearer not.a.token");
    let response = gateway.get("/app/page", &headers).await;
    assert_json_401(&response, "invalid_token");
    // Another scheme is no credential, but the request has an Authorization header: it
    // is judged by it alone (SPEC §10: only a request with no Authorization is sent to
    // sign in).
    let mut basic = NAVIGATE.to_vec();
    basic.push("Authorization: Basic dXNlcjpwYXNz");
    let response = gateway.get("/app/page", &basic).await;
    assert_json_401(&response, "unauthorized");
}

#[tokio::test]
async fn other_refusals_and_public_routes_are_not_redirected() {
    let gateway = browser_gateway().await;
    let staff = gateway.user("alice", &["staff"]).await;
    let mut headers = NAVIGATE.to_vec();
    let as_alice = bearer(&staff.token);
    headers.push(&as_alice);
    let response = gateway.get("/admin/panel", &headers).await;
    response.assert_status(403);
    assert!(response.header("location").is_none());
    // A public route needs no credential: forwarded, not redirected.
    let response = gateway.get("/public/page", NAVIGATE).await;
    response.assert_status(200);
    assert_eq!(gateway.upstream.count(), 1);
}

#[tokio::test]
async fn with_browser_sign_in_off_a_navigation_gets_the_json_401() {
    let gateway = TestGateway::start(ROUTES).await;
    for headers in [NAVIGATE, &["Accept: text/html"][..]] {
        let response = gateway.get("/app/page", headers).await;
        assert_json_401(&response, "unauthorized");
    }
    let response = gateway.get("/auth/verify", NAVIGATE).await;
    assert_json_401(&response, "unauthorized");
    let response = gateway.get("/auth/forward-auth", NAVIGATE).await;
    assert_json_401(&response, "unauthorized");
}

#[tokio::test]
async fn a_session_cookie_that_is_not_valid_is_no_credential() {
    let gateway = browser_gateway().await;
    let forged = "Cookie: __Host-gatehouse_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let mut headers = NAVIGATE.to_vec();
    headers.push(forged);
    let response = gateway.get("/app/page", &headers).await;
    assert_sign_in_redirect(&response, "http://gateway.test/app/page");
    let response = gateway.get("/app/page", &[forged, "Accept: */*"]).await;
    assert_json_401(&response, "unauthorized");
    // On a public route it is ignored: forwarded anonymously, and without the cookie.
    let response = gateway
        .get(
            "/public/page",
            &["Cookie: theme=dark; __Host-gatehouse_session=x; lang=en"],
        )
        .await;
    response.assert_status(200);
    let seen = gateway.upstream.last().expect("forwarded");
    assert_eq!(seen.all("cookie"), vec!["theme=dark; lang=en"]);
    assert!(seen.header("x-auth-user").is_none());
}

#[tokio::test]
async fn gatehouse_cookies_never_reach_the_upstream_and_others_arrive_unchanged() {
    let gateway = browser_gateway().await;
    let cases: &[(&[&str], Option<&str>)] = &[
        (
            &["Cookie: a=1; __Host-gatehouse_session=s; b=\"x y\";__Host-gatehouse_csrf=c; c=3"],
            Some("a=1; b=\"x y\"; c=3"),
        ),
        (
            &["Cookie: __Secure-gatehouse_session=s; __Secure-gatehouse_csrf=c"],
            None,
        ),
        // Several Cookie fields (as HTTP/2 sends them) arrive as one.
        (
            &[
                "Cookie: a=1",
                "Cookie: __Host-gatehouse_session=s",
                "Cookie: b=2",
            ],
            Some("a=1; b=2"),
        ),
        // Look-alike names are other people's cookies.
        (
            &["Cookie: gatehouse_session=1;__host-gatehouse_session=2"],
            Some("gatehouse_session=1;__host-gatehouse_session=2"),
        ),
    ];
    for (headers, expected) in cases {
        gateway
            .get("/public/page", headers)
            .await
            .assert_status(200);
        let seen = gateway.upstream.last().expect("forwarded");
        let cookies = seen.all("cookie");
        match expected {
            Some(expected) => assert_eq!(cookies, vec![*expected], "{headers:?}"),
            None => assert!(cookies.is_empty(), "{headers:?}: {cookies:?}"),
        }
    }
    // Also with browser sign-in off: the names are gatehouse's whatever the settings.
    let plain = TestGateway::start(ROUTES).await;
    plain
        .get("/public/x", &["Cookie: __Host-gatehouse_session=s; keep=1"])
        .await
        .assert_status(200);
    let seen = plain.upstream.last().expect("forwarded");
    assert_eq!(seen.all("cookie"), vec!["keep=1"]);
}

#[tokio::test]
async fn the_original_url_follows_a_trusted_proxy_and_only_a_trusted_one() {
    let trusted = TestGateway::start(&format!(
        "[headers]\ntrusted_proxies = [\"127.0.0.1/32\"]\n{}",
        browser_section("")
    ))
    .await;
    let mut headers = NAVIGATE.to_vec();
    headers.extend([
        "X-Forwarded-Proto: https",
        "X-Forwarded-Host: app.example.com",
    ]);
    let response = trusted.get("/app/page?q=1", &headers).await;
    assert_sign_in_redirect(&response, "https://app.example.com/app/page?q=1");
    // From an untrusted peer the same headers are not believed.
    let untrusted = browser_gateway().await;
    let response = untrusted.get("/app/page?q=1", &headers).await;
    assert_sign_in_redirect(&response, "http://gateway.test/app/page?q=1");
    // A Host that is not a plain authority is not echoed: public_url stands in.
    let response = untrusted
        .raw(
            b"GET /app/page HTTP/1.1\r\nHost: evil.com@x\r\nConnection: close\r\n\
              Sec-Fetch-Mode: navigate\r\n\r\n",
        )
        .await;
    assert_sign_in_redirect(&response, "https://app.example.com/app/page");
}

#[tokio::test]
async fn verify_adds_location_and_forward_auth_redirects_for_a_navigation() {
    let gateway = TestGateway::start(&format!(
        "[headers]\ntrusted_proxies = [\"127.0.0.1/32\"]\n{}",
        browser_section("")
    ))
    .await;
    let mut headers = NAVIGATE.to_vec();
    headers.extend([
        "X-Forwarded-Method: GET",
        "X-Forwarded-Uri: /app/page?x=1",
        "X-Forwarded-Proto: https",
        "X-Forwarded-Host: app.example.com",
    ]);
    // /auth/verify: still 401 (nginx), with the sign-in page in Location.
    let response = gateway.get("/auth/verify", &headers).await;
    response.assert_status(401);
    assert_eq!(response.error_code(), "unauthorized");
    assert!(response.header("www-authenticate").is_some());
    let location = response.header("location").expect("Location on the 401");
    assert_eq!(rd_of(location), "https://app.example.com/app/page?x=1");
    // /auth/forward-auth: the 302 itself.
    let response = gateway.get("/auth/forward-auth", &headers).await;
    assert_sign_in_redirect(&response, "https://app.example.com/app/page?x=1");
    // Without the proxy's origin headers: public_url + the forwarded URI.
    let response = gateway
        .get(
            "/auth/forward-auth",
            &["Sec-Fetch-Mode: navigate", "X-Forwarded-Uri: /app/other"],
        )
        .await;
    assert_sign_in_redirect(&response, "https://app.example.com/app/other");
    // The original method decides: a forwarded POST is no navigation.
    let mut post = headers.clone();
    post[NAVIGATE.len()] = "X-Forwarded-Method: POST";
    for endpoint in ["/auth/verify", "/auth/forward-auth"] {
        assert_json_401(&gateway.get(endpoint, &post).await, "unauthorized");
        // An API request: the 401 as ever.
        let api = gateway
            .get(
                endpoint,
                &["Accept: application/json", "X-Forwarded-Uri: /app/page"],
            )
            .await;
        assert_json_401(&api, "unauthorized");
        // A public route: 200 with empty identity headers.
        let public = gateway
            .get(
                endpoint,
                &["Sec-Fetch-Mode: navigate", "X-Forwarded-Uri: /public/x"],
            )
            .await;
        public.assert_status(200);
        assert_eq!(public.header("x-auth-user"), Some(""));
        // A valid bearer token: 200 with the identity.
    }
    let alice = gateway.user("alice", &["staff"]).await;
    let as_alice = bearer(&alice.token);
    for endpoint in ["/auth/verify", "/auth/forward-auth"] {
        let response = gateway
            .get(endpoint, &[as_alice.as_str(), "X-Forwarded-Uri: /app/page"])
            .await;
        response.assert_status(200);
        assert_eq!(response.header("x-auth-user"), Some("alice"));
    }
}

/// A gateway with `[browser]` enabled over a store the test can write to directly.
async fn browser_gateway_with_store(
    headers: &str,
) -> (TestGateway, std::sync::Arc<common::flaky_store::FlakyStore>) {
    TestGateway::start_flaky(&format!("{headers}\n{}", browser_section("")), "").await
}

#[tokio::test]
async fn a_valid_session_cookie_authenticates_like_a_bearer_token() {
    let (gateway, store) = browser_gateway_with_store("").await;
    gateway.user("alice", &["staff"]).await;
    let session = browser_session(&gateway, &store, "alice").await;
    let session_pair = session.trim_start_matches("Cookie: ");
    let cookie = format!("Cookie: theme=dark; {session_pair}; lang=en");
    // A navigation and an API call alike: forwarded with the identity, without the cookie.
    for extra in [NAVIGATE, &["Accept: application/json"][..]] {
        let mut headers = extra.to_vec();
        headers.push(&cookie);
        let response = gateway.get("/app/page?x=1", &headers).await;
        response.assert_status(200);
        let seen = gateway.upstream.last().expect("forwarded");
        assert_eq!(seen.target, "/app/page?x=1");
        assert_eq!(seen.all("x-auth-user"), vec!["alice"]);
        assert_eq!(seen.header("x-auth-roles"), Some("staff"));
        assert_eq!(seen.all("cookie"), vec!["theme=dark; lang=en"]);
    }
    // Route rules and roles apply as to a token: 403, never a redirect.
    let mut headers = NAVIGATE.to_vec();
    headers.push(&cookie);
    let response = gateway.get("/admin/panel", &headers).await;
    response.assert_status(403);
    assert_eq!(response.error_code(), "insufficient_scope");
    assert!(response.header("location").is_none());
    // A public route yields the identity too.
    gateway
        .get("/public/x", &[&cookie])
        .await
        .assert_status(200);
    let seen = gateway.upstream.last().expect("forwarded");
    assert_eq!(seen.header("x-auth-user"), Some("alice"));
    assert_eq!(seen.all("cookie"), vec!["theme=dark; lang=en"]);
    // An Authorization header is judged alone: the cookie is not consulted.
    for (authorization, code) in [
        ("Authorization: Bearer not.a.token", "invalid_token"),
        ("Authorization: Basic dXNlcjpwYXNz", "unauthorized"),
    ] {
        let mut headers = NAVIGATE.to_vec();
        headers.extend([cookie.as_str(), authorization]);
        assert_json_401(&gateway.get("/app/page", &headers).await, code);
    }
    // The same value under the other name form is not this gateway's session cookie.
    let other_form = cookie.replace("__Host-", "__Secure-");
    let response = gateway
        .get("/app/page", &[other_form.as_str(), "Accept: */*"])
        .await;
    assert_json_401(&response, "unauthorized");
}

#[tokio::test]
async fn verify_and_forward_auth_accept_the_session_cookie_and_hand_back_the_other_cookies() {
    let (gateway, store) =
        browser_gateway_with_store("[headers]\ntrusted_proxies = [\"127.0.0.1/32\"]").await;
    gateway.user("alice", &["staff"]).await;
    let session = browser_session(&gateway, &store, "alice").await;
    let cookie = format!("{session}; a=1");
    for endpoint in ["/auth/verify", "/auth/forward-auth"] {
        let response = gateway
            .get(endpoint, &[cookie.as_str(), "X-Forwarded-Uri: /app/page"])
            .await;
        response.assert_status(200);
        assert_eq!(response.header("x-auth-user"), Some("alice"));
        assert_eq!(response.header("x-gatehouse-cookie"), Some("a=1"));
        // Roles as for a token: 403 on the admin route, never a redirect.
        let mut headers = NAVIGATE.to_vec();
        headers.extend([cookie.as_str(), "X-Forwarded-Uri: /admin/x"]);
        let response = gateway.get(endpoint, &headers).await;
        response.assert_status(403);
        assert!(response.header("location").is_none());
        // Without an original URI a valid session is all that is asked.
        let response = gateway.get(endpoint, &[session.as_str()]).await;
        response.assert_status(200);
        assert_eq!(response.header("x-auth-user"), Some("alice"));
        assert_eq!(response.header("x-gatehouse-cookie"), Some(""));
    }
}

#[tokio::test]
async fn an_ended_session_sends_the_browser_back_to_sign_in_and_the_api_gets_401() {
    let (gateway, store) = browser_gateway_with_store("").await;
    gateway.user("alice", &["staff"]).await;
    let cookie = browser_session(&gateway, &store, "alice").await;
    let mut navigate = NAVIGATE.to_vec();
    navigate.push(&cookie);
    gateway.get("/app/page", &navigate).await.assert_status(200);
    let reply = common::accounts::admin(
        &gateway,
        gatehouse::admin::protocol::Request::Disable {
            username: "alice".into(),
        },
    )
    .await;
    assert!(reply.ok, "{reply:?}");
    let response = gateway.get("/app/page", &navigate).await;
    assert_sign_in_redirect(&response, "http://gateway.test/app/page");
    let response = gateway
        .get("/app/page", &[cookie.as_str(), "Accept: application/json"])
        .await;
    assert_json_401(&response, "unauthorized");
    // Public routes: forwarded anonymously, the dead cookie removed all the same.
    gateway
        .get("/public/x", &[&cookie])
        .await
        .assert_status(200);
    let seen = gateway.upstream.last().expect("forwarded");
    assert!(seen.header("x-auth-user").is_none());
    assert!(seen.all("cookie").is_empty());
}
