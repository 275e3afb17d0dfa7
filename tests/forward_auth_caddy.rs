//! Forward-auth with a REAL Caddy and the REAL gatehouse binary (SPEC §4 `/auth/verify`):
//! Caddy's `forward_auth` asks gatehouse about each request (it sends `X-Forwarded-Method`
//! / `X-Forwarded-Uri`, honoured because Caddy's address is in `trusted_proxies`), copies
//! the identity headers from the answer, and proxies to the echo upstream. The Caddyfile
//! is the one the README shows, with addresses filled in (plus test-only global options:
//! no admin endpoint, no automatic HTTPS).
//!
//! What the recipe must guarantee, on every Caddy it supports (Debian's 2.6.2 here): the
//! upstream never sees a client-forged `X-Auth-*` header (any case, `_` for `-`), never a
//! literal `{http.reverse_proxy.header.…}` placeholder, never the client's
//! `Authorization`, and sees the identity on authenticated requests.
//!
//! Caddy must be installed (`apt-get install -y caddy`; `.ci/run` does it). Without it this
//! test FAILS, it does not skip: a forward-auth contract nobody ran is not verified.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::accounts::claims_of;
use common::binary::{serve_with_users, stop_gracefully, third_party_listen_addr};
use common::{get, EchoUpstream, Received, DEADLINE};

const GATEWAY_CONFIG: &str = r#"
[headers]
trusted_proxies = ["127.0.0.1/32"]

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

/// Caddy in front of `upstream`, asking `gatehouse` before each request: the README's
/// site block, with test-only global options.
fn caddyfile(listen: SocketAddr, gatehouse: SocketAddr, upstream: SocketAddr) -> String {
    let port = listen.port();
    let host = listen.ip();
    format!(
        r#"{{
	admin off
	auto_https off
}}

http://:{port} {{
	bind {host}

	@no_user header X-Auth-User ""
	@no_subject header X-Auth-Subject ""
	@no_roles header X-Auth-Roles ""

	route {{
		request_header -*_*
		request_header -X-Auth-User
		request_header -X-Auth-Subject
		request_header -X-Auth-Roles
		forward_auth {gatehouse} {{
			uri /auth/verify
			copy_headers X-Auth-User X-Auth-Subject X-Auth-Roles
		}}
		request_header @no_user -X-Auth-User
		request_header @no_subject -X-Auth-Subject
		request_header @no_roles -X-Auth-Roles
		reverse_proxy {upstream} {{
			header_up -Authorization
		}}
	}}
}}
"#
    )
}

fn find_caddy() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/local/bin"].map(PathBuf::from))
        .map(|dir| dir.join("caddy"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "caddy is not installed, so the Caddy forward-auth integration test cannot \
                 run. Install it with `apt-get update && RUNLEVEL=1 apt-get install -y caddy` \
                 (Debian/Ubuntu; RUNLEVEL=1 keeps the package from starting its own service; \
                 .ci/run does this when caddy is missing)."
            )
        })
}

/// The Caddy process this test started, with its state (data, config, autosave) kept in
/// the test's temp dir; stopped (TERM, then KILL) when dropped.
struct Caddy {
    child: Child,
    log_path: PathBuf,
}

impl Caddy {
    fn start(dir: &Path, caddyfile: &str) -> Caddy {
        let config_path = dir.join("Caddyfile");
        std::fs::write(&config_path, caddyfile).expect("write Caddyfile");
        let log_path = dir.join("caddy.log");
        let log = std::fs::File::create(&log_path).expect("caddy log");
        let child = Command::new(find_caddy())
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .arg("--adapter")
            .arg("caddyfile")
            .env("HOME", dir)
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start caddy");
        Caddy { child, log_path }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    async fn wait_listening(&mut self, addr: SocketAddr) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("caddy exited with {status}; log:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "caddy did not listen; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        stop_gracefully(&mut self.child);
    }
}

/// No identity header in any spelling, and no unexpanded Caddy placeholder anywhere.
#[track_caller]
fn assert_anonymous(seen: &Received) {
    for (name, value) in &seen.headers {
        let folded = name.to_ascii_lowercase().replace('_', "-");
        assert!(
            !folded.starts_with("x-auth-"),
            "identity header {name}: {value:?} reached the upstream on an anonymous request: {:?}",
            seen.headers
        );
        assert!(
            !value.contains("{http."),
            "a literal Caddy placeholder reached the upstream: {name}: {value}"
        );
    }
    assert!(
        seen.all("authorization").is_empty(),
        "Authorization reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_forward_auth_lets_gatehouse_decide_and_copies_only_its_identity_upstream() {
    let upstream = EchoUpstream::start().await;
    let gatehouse_dir = tempfile::tempdir().expect("tempdir");
    let (gatehouse, tokens) = serve_with_users(
        gatehouse_dir.path(),
        upstream.addr,
        GATEWAY_CONFIG,
        &[("alice", &["staff"]), ("root", &["admin"]), ("nobody", &[])],
    )
    .await;
    let [alice, root, nobody] = <[String; 3]>::try_from(tokens).expect("three tokens");
    let alice_sub = claims_of(&alice)["sub"].as_str().expect("sub").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    // Caddy (admin endpoint off) cannot say which port a `:0` listener got: the one
    // bind-and-release left.
    let listen = third_party_listen_addr();
    let mut caddy = Caddy::start(
        dir.path(),
        &caddyfile(listen, gatehouse.addr, upstream.addr),
    );
    caddy.wait_listening(listen).await;
    let as_alice = format!("Authorization: Bearer {alice}");
    let as_root = format!("Authorization: Bearer {root}");
    let as_nobody = format!("Authorization: Bearer {nobody}");
    let forged = [
        "X-Auth-User: admin",
        "x_auth_user: admin",
        "X-Auth_Roles: admin",
        "X-AUTH-SUBJECT: forged-sub",
    ];

    // Public route, anonymous, with forged identity headers: forwarded without any of them
    // and without a literal placeholder.
    let (status, _, _) = get(listen, "/public/page", &forged).await.expect("answer");
    assert_eq!(status, 200, "caddy log:\n{}", caddy.log());
    let seen = upstream.last().expect("forwarded");
    assert_eq!(seen.target, "/public/page");
    assert_anonymous(&seen);

    // Authenticated: the identity gatehouse established arrives, the forgeries do not,
    // and neither does the client's Authorization.
    let mut headers = vec![as_alice.as_str()];
    headers.extend(forged);
    let (status, _, _) = get(listen, "/app/data?page=2", &headers)
        .await
        .expect("answer");
    assert_eq!(status, 200, "caddy log:\n{}", caddy.log());
    let seen = upstream.last().expect("forwarded");
    assert_eq!(seen.target, "/app/data?page=2");
    assert_eq!(seen.all("x-auth-user"), vec!["alice"]);
    assert_eq!(seen.all("x-auth-subject"), vec![alice_sub.as_str()]);
    assert_eq!(seen.all("x-auth-roles"), vec!["staff"]);
    for (name, _) in &seen.headers {
        assert!(!name.contains('_'), "{name} reached the upstream");
    }
    assert!(
        seen.all("authorization").is_empty(),
        "the client's Authorization reached the upstream: {:?}",
        seen.headers
    );
    // Public route with a token: the identity arrives too.
    let (status, _, _) = get(listen, "/public/page", &[&as_alice])
        .await
        .expect("answer");
    assert_eq!(status, 200);
    assert_eq!(
        upstream.last().expect("forwarded").all("x-auth-user"),
        vec!["alice"]
    );

    // Refusals never reach the upstream: no token 401, bad token 401, deny 403, a role
    // route without the role 403.
    let before = upstream.count();
    let cases: [(&str, &[&str], u16); 5] = [
        ("/app/data", &[], 401),
        ("/app/data", &["Authorization: Bearer not.a.token"], 401),
        ("/closed/x", &[&as_root], 403),
        ("/admin/panel", &[&as_nobody], 403),
        ("/admin/panel", &[&as_alice], 403),
    ];
    for (path, headers, expected) in cases {
        let (status, _, _) = get(listen, path, headers).await.expect("answer");
        assert_eq!(status, expected, "{path}; caddy log:\n{}", caddy.log());
    }
    assert_eq!(
        upstream.count(),
        before,
        "a refused request reached the upstream"
    );
    // …and with the role: 200, as root.
    let (status, _, _) = get(listen, "/admin/panel", &[&as_root])
        .await
        .expect("answer");
    assert_eq!(status, 200);
    let seen = upstream.last().expect("forwarded");
    assert_eq!(seen.all("x-auth-user"), vec!["root"]);
    assert_eq!(seen.all("x-auth-roles"), vec!["admin"]);
    // A user without roles: an authenticated request arrives with no roles header at all
    // (the empty one is dropped), user and subject set.
    let (status, _, _) = get(listen, "/app/x", &[&as_nobody]).await.expect("answer");
    assert_eq!(status, 200);
    let seen = upstream.last().expect("forwarded");
    assert_eq!(seen.all("x-auth-user"), vec!["nobody"]);
    assert!(seen.all("x-auth-roles").is_empty(), "{:?}", seen.headers);
    drop(gatehouse);
}

/// docs/browser.md's Caddy site block, with addresses filled in (plus the test-only
/// global options): `/auth/*` to gatehouse, everything else through
/// `forward_auth … /auth/forward-auth`, gatehouse's cookies replaced by
/// `X-Gatehouse-Cookie`.
fn browser_caddyfile(listen: SocketAddr, gatehouse: SocketAddr, upstream: SocketAddr) -> String {
    let port = listen.port();
    let host = listen.ip();
    format!(
        r#"{{
	admin off
	auto_https off
}}

http://:{port} {{
	bind {host}

	@no_user header X-Auth-User ""
	@no_subject header X-Auth-Subject ""
	@no_roles header X-Auth-Roles ""
	@no_cookie header Cookie ""

	handle /auth/* {{
		reverse_proxy {gatehouse}
	}}
	handle {{
		route {{
			request_header -*_*
			request_header -X-Auth-User
			request_header -X-Auth-Subject
			request_header -X-Auth-Roles
			forward_auth {gatehouse} {{
				uri /auth/forward-auth
				copy_headers X-Auth-User X-Auth-Subject X-Auth-Roles X-Gatehouse-Cookie>Cookie
			}}
			request_header @no_user -X-Auth-User
			request_header @no_subject -X-Auth-Subject
			request_header @no_roles -X-Auth-Roles
			request_header @no_cookie -Cookie
			reverse_proxy {upstream} {{
				header_up -Authorization
			}}
		}}
	}}
}}
"#
    )
}

/// SPEC §10 through the docs/browser.md Caddy recipe: `/auth/forward-auth`'s 302 reaches
/// the browser, an API request keeps its 401, and a signed-in browser reaches the
/// upstream with its identity and its other cookies, without gatehouse's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_browser_recipe_redirects_navigations_and_forwards_signed_in_browsers() {
    let listen = third_party_listen_addr();
    let (gateway, store) = common::TestGateway::start_flaky(
        &format!("{GATEWAY_CONFIG}\n[browser]\nenabled = true\npublic_url = \"http://{listen}\"\n"),
        "",
    )
    .await;
    let upstream = &gateway.upstream;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut caddy = Caddy::start(
        dir.path(),
        &browser_caddyfile(listen, gateway.addr, upstream.addr),
    );
    caddy.wait_listening(listen).await;
    let site = format!("http://{listen}");
    let host = listen.to_string();
    let navigate = [
        "Sec-Fetch-Mode: navigate",
        "Sec-Fetch-Dest: document",
        "Accept: text/html,*/*;q=0.8",
    ];

    let response = request_to(listen, "GET", "/app/page?x=1", &host, &navigate).await;
    assert_eq!(response.status, 302, "caddy log:\n{}", caddy.log());
    let location = response.header("location").expect("Location").to_string();
    let url = url::Url::parse(&location).expect("a URL");
    assert_eq!(url.path(), "/auth/sign_in", "{location}");
    let rd: Vec<String> = url
        .query_pairs()
        .filter(|(name, _)| name == "rd")
        .map(|(_, value)| value.into_owned())
        .collect();
    assert_eq!(rd, vec![format!("{site}/app/page?x=1")]);
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
    assert_eq!(upstream.count(), 0, "nothing reached the upstream");

    // A signed-in browser: the upstream sees the identity and the other cookies only.
    gateway.user("alice", &["staff"]).await;
    let session = common::accounts::browser_session(&gateway, &store, "alice").await;
    let cookie = format!(
        "{}; theme=dark",
        session.replace("Cookie: ", "Cookie: lang=en; ")
    );
    let mut headers = navigate.to_vec();
    headers.extend([cookie.as_str(), "X-Auth-User: mallory"]);
    let response = request_to(listen, "GET", "/app/page?x=1", &host, &headers).await;
    assert_eq!(response.status, 200, "caddy log:\n{}", caddy.log());
    let seen = upstream.last().expect("the upstream got the request");
    assert_eq!(seen.all("x-auth-user"), vec!["alice"]);
    assert_eq!(seen.all("cookie"), vec!["lang=en; theme=dark"]);
    // Only the session cookie: no Cookie header (and no placeholder) reaches the upstream.
    let mut headers = navigate.to_vec();
    headers.push(session.as_str());
    let response = request_to(listen, "GET", "/app/other", &host, &headers).await;
    assert_eq!(response.status, 200);
    let seen = upstream.last().expect("forwarded");
    assert!(seen.all("cookie").is_empty(), "{:?}", seen.headers);
    drop(caddy);
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
