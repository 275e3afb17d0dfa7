//! Forward-auth with a REAL nginx and the REAL gatehouse binary (SPEC §4 `/auth/verify`):
//! nginx `auth_request` asks gatehouse about each request (passing `X-Forwarded-Method` /
//! `X-Forwarded-Uri`, honoured because nginx's address is in `trusted_proxies`), copies the
//! identity headers from the answer with `auth_request_set`, drops the client's
//! `Authorization`, and proxies to the echo upstream. The nginx config is the one the
//! README shows, with addresses filled in. With the shipped `trusted_proxies = []` the
//! same recipe must fail closed: 403 for everything, and a WARN naming the fix.
//!
//! nginx must be installed (`apt-get install -y nginx`; `.ci/run` does it). Without it
//! this test FAILS, it does not skip: a forward-auth contract nobody ran is not verified.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::accounts::claims_of;
use common::binary::{serve_with_users, third_party_listen_addr, Gatehouse};
use common::nginx::{nginx_dir, Nginx};
use common::{get, EchoUpstream, DEADLINE};

const TRUSTED: &str = r#"
[headers]
trusted_proxies = ["127.0.0.1/32"]
"#;

const ROUTES: &str = r#"
[[routes]]
path = "/public/**"
access = "public"

[[routes]]
path = "/closed/**"
access = "deny"

[[routes]]
path = "/admin/**"
roles = ["admin"]
"#;

/// The gatehouse binary in front of a fresh echo upstream, with users alice (staff),
/// root (admin) and nobody (no roles); their tokens in that order.
async fn start_gatehouse(dir: &Path, headers: &str) -> (Gatehouse, EchoUpstream, [String; 3]) {
    let upstream = EchoUpstream::start().await;
    let (served, tokens) = serve_with_users(
        dir,
        upstream.addr,
        &format!("{headers}\n{ROUTES}"),
        &[("alice", &["staff"]), ("root", &["admin"]), ("nobody", &[])],
    )
    .await;
    let tokens = <[String; 3]>::try_from(tokens).expect("three tokens");
    (served, upstream, tokens)
}

/// nginx in front of `upstream`, asking `gatehouse` before each request.
fn nginx_config(
    dir: &Path,
    listen: SocketAddr,
    gatehouse: SocketAddr,
    upstream: SocketAddr,
) -> String {
    let dir = dir.display();
    format!(
        r#"
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    server {{
        listen {listen};

        location = /_gatehouse_verify {{
            internal;
            proxy_pass http://{gatehouse}/auth/verify;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Forwarded-Method $request_method;
            proxy_set_header X-Forwarded-Uri $request_uri;
        }}

        location / {{
            auth_request /_gatehouse_verify;
            auth_request_set $auth_user $upstream_http_x_auth_user;
            auth_request_set $auth_subject $upstream_http_x_auth_subject;
            auth_request_set $auth_roles $upstream_http_x_auth_roles;
            proxy_set_header X-Auth-User $auth_user;
            proxy_set_header X-Auth-Subject $auth_subject;
            proxy_set_header X-Auth-Roles $auth_roles;
            proxy_set_header Authorization "";
            proxy_http_version 1.1;
            proxy_pass http://{upstream};
        }}
    }}
}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_lets_gatehouse_decide_and_copies_the_identity_upstream() {
    let gatehouse_dir = tempfile::tempdir().expect("tempdir");
    let (gatehouse, upstream, [alice, root, nobody]) =
        start_gatehouse(gatehouse_dir.path(), TRUSTED).await;
    let dir = nginx_dir();
    // nginx cannot say which port a `:0` listener got: the one bind-and-release left.
    let listen = third_party_listen_addr();
    let mut nginx = Nginx::start(
        dir.path(),
        &nginx_config(dir.path(), listen, gatehouse.addr, upstream.addr),
    );
    nginx.wait_listening(listen).await;
    let as_alice = format!("Authorization: Bearer {alice}");
    let as_root = format!("Authorization: Bearer {root}");
    let as_nobody = format!("Authorization: Bearer {nobody}");
    let alice_sub = claims_of(&alice)["sub"].as_str().expect("sub").to_string();

    // No token: nginx answers 401 from gatehouse's verdict; the upstream is never asked.
    let before = upstream.count();
    let (status, _, _) = get(listen, "/app/data", &[]).await.expect("nginx answers");
    assert_eq!(status, 401, "nginx error.log:\n{}", nginx.error_log());
    assert_eq!(
        upstream.count(),
        before,
        "an unauthenticated request reached the upstream"
    );

    // A bad token: 401 too.
    let (status, _, _) = get(listen, "/app/data", &["Authorization: Bearer not.a.token"])
        .await
        .expect("answer");
    assert_eq!(status, 401);
    assert_eq!(upstream.count(), before);

    // Valid token: 200, and the upstream saw the identity gatehouse established, not the
    // one the client tried to forge, and not the client's Authorization.
    let (status, _, _) = get(
        listen,
        "/app/data?page=2",
        &[&as_alice, "X-Auth-User: mallory"],
    )
    .await
    .expect("answer");
    assert_eq!(status, 200, "nginx error.log:\n{}", nginx.error_log());
    let seen = upstream.last().expect("the upstream got the request");
    assert_eq!(seen.target, "/app/data?page=2");
    assert_eq!(seen.all("x-auth-user"), vec!["alice"]);
    assert_eq!(seen.header("x-auth-roles"), Some("staff"));
    assert_eq!(seen.header("x-auth-subject"), Some(alice_sub.as_str()));
    assert!(
        seen.all("authorization").is_empty(),
        "the client's Authorization reached the upstream: {:?}",
        seen.headers
    );

    // Deny route: 403 even with a token, never forwarded.
    let before = upstream.count();
    let (status, _, _) = get(listen, "/closed/x", &[&as_root]).await.expect("answer");
    assert_eq!(status, 403);
    // Role-protected path without the role (none, or the wrong one): 403, never forwarded.
    for token in [&as_nobody, &as_alice] {
        let (status, _, _) = get(listen, "/admin/panel", &[token]).await.expect("answer");
        assert_eq!(status, 403);
    }
    // A client naming another request in X-Original-URI cannot choose what is decided.
    let (status, _, _) = get(
        listen,
        "/admin/panel",
        &[&as_alice, "X-Original-URI: /public/x"],
    )
    .await
    .expect("answer");
    assert_eq!(status, 403);
    assert_eq!(
        upstream.count(),
        before,
        "a refused request reached the upstream"
    );
    // …and with the role: 200. The route rules saw nginx's original URI.
    let (status, _, _) = get(listen, "/admin/panel", &[&as_root])
        .await
        .expect("answer");
    assert_eq!(status, 200);
    assert_eq!(
        upstream.last().expect("forwarded").header("x-auth-user"),
        Some("root")
    );

    // Public path without a token: forwarded, and a forged identity header is not.
    let (status, _, _) = get(
        listen,
        "/public/page",
        &["X-Auth-User: mallory", "X_Auth_User: mallory"],
    )
    .await
    .expect("answer");
    assert_eq!(status, 200, "nginx error.log:\n{}", nginx.error_log());
    let seen = upstream.last().expect("forwarded");
    assert_eq!(seen.target, "/public/page");
    for name in [
        "x-auth-user",
        "x-auth-subject",
        "x-auth-roles",
        "x_auth_user",
    ] {
        assert!(
            seen.all(name).is_empty(),
            "{name} forwarded on an anonymous request: {:?}",
            seen.headers
        );
    }
    // Public path with a token: the identity arrives.
    let (status, _, _) = get(listen, "/public/page", &[&as_alice])
        .await
        .expect("answer");
    assert_eq!(status, 200);
    assert_eq!(
        upstream.last().expect("forwarded").header("x-auth-user"),
        Some("alice")
    );
    drop(gatehouse);
}

/// The field-trial defect: the README recipe with the shipped `trusted_proxies = []` made
/// verify ignore the forwarded URI (deny routes answered 200, roles were not checked,
/// public routes demanded a token). It must fail closed instead, and say why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_recipe_without_trusted_proxies_fails_closed_and_says_why() {
    let gatehouse_dir = tempfile::tempdir().expect("tempdir");
    let (gatehouse, upstream, [alice, root, _]) = start_gatehouse(gatehouse_dir.path(), "").await;
    let dir = nginx_dir();
    // nginx cannot say which port a `:0` listener got: the one bind-and-release left.
    let listen = third_party_listen_addr();
    let mut nginx = Nginx::start(
        dir.path(),
        &nginx_config(dir.path(), listen, gatehouse.addr, upstream.addr),
    );
    nginx.wait_listening(listen).await;
    let as_alice = format!("Authorization: Bearer {alice}");
    let as_root = format!("Authorization: Bearer {root}");

    for (path, headers) in [
        ("/closed/x", vec![as_root.as_str()]),
        ("/admin/panel", vec![as_alice.as_str()]),
        ("/app/data", vec![as_alice.as_str()]),
        ("/public/page", vec![]),
    ] {
        let (status, _, _) = get(listen, path, &headers).await.expect("answer");
        assert_eq!(
            status,
            403,
            "{path} through nginx with trusted_proxies = []; nginx error.log:\n{}",
            nginx.error_log()
        );
    }
    assert_eq!(upstream.count(), 0, "a request reached the upstream");
    let deadline = Instant::now() + DEADLINE;
    while !gatehouse.log().contains("headers.trusted_proxies") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let log = gatehouse.log();
    assert!(
        log.lines()
            .any(|line| line.contains("WARN") && line.contains("headers.trusted_proxies")),
        "no WARN naming the fix:\n{log}"
    );
    assert!(
        !log.contains(&alice) && !log.contains(&root),
        "a token was logged"
    );
}

/// docs/browser.md's nginx recipe, with addresses filled in (plain HTTP on loopback).
fn browser_nginx_config(
    dir: &Path,
    listen: SocketAddr,
    gatehouse: SocketAddr,
    upstream: SocketAddr,
) -> String {
    let dir = dir.display();
    format!(
        r#"
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    server {{
        listen {listen};

        location /auth/ {{
            proxy_pass http://{gatehouse};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}

        location = /_gatehouse_verify {{
            internal;
            proxy_pass http://{gatehouse}/auth/verify;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Forwarded-Method $request_method;
            proxy_set_header X-Forwarded-Uri $request_uri;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
        }}

        location @gatehouse_sign_in {{
            if ($gatehouse_sign_in = "") {{
                return 401;
            }}
            return 302 $gatehouse_sign_in;
        }}

        location / {{
            auth_request /_gatehouse_verify;
            auth_request_set $gatehouse_sign_in $upstream_http_location;
            error_page 401 = @gatehouse_sign_in;

            auth_request_set $auth_user $upstream_http_x_auth_user;
            auth_request_set $auth_subject $upstream_http_x_auth_subject;
            auth_request_set $auth_roles $upstream_http_x_auth_roles;
            auth_request_set $auth_cookie $upstream_http_x_gatehouse_cookie;
            proxy_set_header X-Auth-User $auth_user;
            proxy_set_header X-Auth-Subject $auth_subject;
            proxy_set_header X-Auth-Roles $auth_roles;
            proxy_set_header Cookie $auth_cookie;
            proxy_set_header Authorization "";
            proxy_http_version 1.1;
            proxy_pass http://{upstream};
        }}
    }}
}}
"#
    )
}

/// What Chrome sends for a typed URL or a followed link.
const NAVIGATE: [&str; 3] = [
    "Sec-Fetch-Mode: navigate",
    "Sec-Fetch-Dest: document",
    "Accept: text/html,application/xhtml+xml,*/*;q=0.8",
];

/// The `rd` parameter of a sign-in URL, decoded.
fn rd_of(location: &str) -> String {
    let url = url::Url::parse(location).expect("Location is a URL");
    url.query_pairs()
        .find(|(name, _)| name == "rd")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_else(|| panic!("no rd in {location}"))
}

/// SPEC §10 through the docs/browser.md nginx recipe: a browser navigation without a
/// credential is redirected to gatehouse's sign-in page on the site's own origin (and
/// that page is served through nginx), an API request keeps its 401, and a browser with a
/// session cookie reaches the upstream with the identity and without gatehouse's cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_browser_recipe_redirects_navigations_and_forwards_signed_in_browsers() {
    let listen = third_party_listen_addr();
    let (gateway, store) = common::TestGateway::start_flaky(
        &format!(
            "{TRUSTED}\n[browser]\nenabled = true\npublic_url = \"http://{listen}\"\n{ROUTES}"
        ),
        "",
    )
    .await;
    let upstream = &gateway.upstream;
    let dir = nginx_dir();
    let mut nginx = Nginx::start(
        dir.path(),
        &browser_nginx_config(dir.path(), listen, gateway.addr, upstream.addr),
    );
    nginx.wait_listening(listen).await;
    let site = format!("http://{listen}");
    let host = listen.to_string();

    // A navigation without a cookie: 302 to the sign-in page, rd = the page asked for.
    let response = request_to(listen, "GET", "/app/page?x=1", &host, &NAVIGATE).await;
    assert_eq!(
        response.status,
        302,
        "nginx error.log:\n{}",
        nginx.error_log()
    );
    let location = response.header("location").expect("Location").to_string();
    assert!(
        location.starts_with(&format!("{site}/auth/sign_in?")),
        "{location}"
    );
    assert_eq!(rd_of(&location), format!("{site}/app/page?x=1"));
    // The API request: 401, no redirect.
    let response = request_to(
        listen,
        "GET",
        "/app/page",
        &host,
        &["Accept: application/json"],
    )
    .await;
    assert_eq!(response.status, 401);
    assert!(response.header("location").is_none());
    // A POST navigation: 401 too.
    let response = request_to(listen, "POST", "/app/form", &host, &NAVIGATE).await;
    assert_eq!(response.status, 401);
    assert_eq!(upstream.count(), 0, "nothing reached the upstream");
    // /auth/ (the sign-in page) is gatehouse's, through nginx on the site's origin:
    // gatehouse answers it (its X-Request-Id on the answer), no auth_request first.
    let response = request_to(listen, "GET", "/auth/sign_in", &host, &NAVIGATE).await;
    assert!(
        response.header("x-request-id").is_some() && response.status < 500,
        "{} {:?}; nginx error.log:\n{}",
        response.status,
        response.headers,
        nginx.error_log()
    );

    // A signed-in browser: the upstream sees the identity and the other cookies only.
    gateway.user("alice", &["staff"]).await;
    let session = common::accounts::browser_session(&gateway, &store, "alice").await;
    let alice_sub = gateway
        .get("/auth/verify", &[session.as_str()])
        .await
        .header("x-auth-subject")
        .expect("subject")
        .to_string();
    let cookie = format!(
        "{}; theme=dark",
        session.replace("Cookie: ", "Cookie: lang=en; ")
    );
    let mut headers = NAVIGATE.to_vec();
    headers.extend([cookie.as_str(), "X-Auth-User: mallory"]);
    let response = request_to(listen, "GET", "/app/page?x=1", &host, &headers).await;
    assert_eq!(
        response.status,
        200,
        "nginx error.log:\n{}",
        nginx.error_log()
    );
    let seen = upstream.last().expect("the upstream got the request");
    assert_eq!(seen.target, "/app/page?x=1");
    assert_eq!(seen.all("x-auth-user"), vec!["alice"]);
    assert_eq!(seen.header("x-auth-roles"), Some("staff"));
    assert_eq!(seen.header("x-auth-subject"), Some(alice_sub.as_str()));
    assert_eq!(seen.all("cookie"), vec!["lang=en; theme=dark"]);
    // Only the session cookie: no Cookie header reaches the upstream at all.
    let mut headers = NAVIGATE.to_vec();
    headers.push(session.as_str());
    let response = request_to(listen, "GET", "/app/other", &host, &headers).await;
    assert_eq!(response.status, 200);
    let seen = upstream.last().expect("forwarded");
    assert_eq!(seen.target, "/app/other");
    assert!(seen.all("cookie").is_empty(), "{:?}", seen.headers);
    // The role rules apply to the session: 403, not a redirect.
    let response = request_to(listen, "GET", "/admin/panel", &host, &headers).await;
    assert_eq!(response.status, 403);
    drop(nginx);
}

/// `method path` to `addr` with `Host: host`, extra header lines and `Connection: close`
/// (the harness's `request` always says `Host: gateway.test`).
async fn request_to(
    addr: SocketAddr,
    method: &str,
    path: &str,
    host: &str,
    headers: &[&str],
) -> common::Response {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    if method == "POST" {
        text.push_str("Content-Length: 0\r\n");
    }
    text.push_str("\r\n");
    common::raw(addr, text.as_bytes()).await
}
