//! The browser pages at the HTTP level (SPEC §10 "Pages", "Cookie", "Pages' headers"):
//! `GET/POST /auth/sign_in` and `GET/POST /auth/sign_out` against the in-process gateway.
//! 404 while `[browser]` is off; the form's fields, labels and `autocomplete`; the
//! remember-me box and its `0s` switch; the page security headers on every answer; the
//! cookies with their exact attributes (`__Host-`, and `__Secure-` with `Domain=` when
//! `cookie_domain` is set; `Max-Age` only for remember-me); 303 to the validated `rd`;
//! the 401 page with one generic message; the 403 page for a disabled account; sign-out
//! ending the session on the server; the login metrics. The attacks (open redirect,
//! CSRF, fixation, lockout, XSS) are tests/attack_browser.rs.

mod common;

use common::accounts::{add_user, admin, PASSWORD};
use common::browser::{
    await_signed_in, body, cookie_value, form_body, input_value, post, section, session_cookie,
    set_cookie, set_cookies, sign_in, sign_in_form, submit, PUBLIC_URL, SAME_ORIGIN,
};
use common::{Response, TestGateway};
use gatehouse::admin::protocol::Request;

/// Asserts SPEC §10's page headers.
fn assert_page_headers(response: &Response) {
    let csp = response
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("CSP on {} {:?}", response.status, response.headers));
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        csp.contains("form-action 'self' https://app.example.com"),
        "{csp}"
    );
    assert!(!csp.contains("script-src"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(response.header("x-frame-options"), Some("DENY"));
    assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert_eq!(response.header("referrer-policy"), Some("same-origin"));
}

fn assert_html(response: &Response) {
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_page_headers(response);
    assert!(!body(response).contains("<script"), "no script on a page");
}

#[tokio::test]
async fn the_pages_are_404_while_browser_sign_in_is_off() {
    let gateway = TestGateway::start("").await;
    for (method, path) in [
        ("GET", "/auth/sign_in"),
        ("HEAD", "/auth/sign_in"),
        ("POST", "/auth/sign_in"),
        ("GET", "/auth/sign_out"),
        ("POST", "/auth/sign_out"),
        ("DELETE", "/auth/sign_in"),
    ] {
        let response = gateway.request(method, path, SAME_ORIGIN, b"").await;
        assert_eq!(response.status, 404, "{method} {path}");
        if method != "HEAD" {
            assert_eq!(response.error_code(), "not_found");
        }
    }
}

#[tokio::test]
async fn the_sign_in_form_has_labelled_fields_autocomplete_and_a_pre_session_cookie() {
    let gateway = TestGateway::start(&section("")).await;
    let form = sign_in_form(&gateway, "", &[]).await;
    let page = &form.page;
    assert_html(page);
    let html = body(page);
    for needle in [
        r#"<label for="username">"#,
        r#"<label for="password">"#,
        r#"<label for="remember_me">"#,
        r#"autocomplete="username""#,
        r#"autocomplete="current-password""#,
        r#"type="password""#,
        r#"name="remember_me" type="checkbox""#,
        r#"method="post" action="/auth/sign_in""#,
    ] {
        assert!(html.contains(needle), "{needle} in {html}");
    }
    assert_eq!(form.rd, format!("{PUBLIC_URL}/"), "rd defaults to /");
    assert!(form.csrf.len() >= 43, "{}", form.csrf);
    let set = set_cookie(page, "__Host-gatehouse_csrf").expect("pre-session cookie");
    assert_eq!(
        set,
        format!(
            "__Host-gatehouse_csrf={}; Path=/; Secure; HttpOnly; SameSite=Lax",
            cookie_value(&set)
        ),
        "a session cookie (no Max-Age), host-only"
    );
    assert!(cookie_value(&set).len() >= 43, "256 bits");
    assert_ne!(cookie_value(&set), form.csrf, "the token is not the cookie");

    // With its cookie, the browser keeps it and gets the same token.
    let cookie = format!("Cookie: {}", form.cookie);
    let again = sign_in_form(&gateway, "?rd=/x", &[&cookie]).await;
    assert!(
        set_cookies(&again.page).is_empty(),
        "{:?}",
        again.page.headers
    );
    assert_eq!(again.csrf, form.csrf);
    assert_eq!(again.rd, format!("{PUBLIC_URL}/x"));

    // Another browser gets another pre-session.
    let other = sign_in_form(&gateway, "", &[]).await;
    assert_ne!(other.cookie, form.cookie);
    assert_ne!(other.csrf, form.csrf);

    let head = gateway.request("HEAD", "/auth/sign_in", &[], b"").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_page_headers(&head);
}

#[tokio::test]
async fn the_remember_me_box_is_hidden_when_it_is_0s() {
    let gateway = TestGateway::start(&section("remember_me = \"0s\"")).await;
    let form = sign_in_form(&gateway, "", &[]).await;
    let html = body(&form.page);
    assert!(!html.contains("remember_me"), "{html}");
    assert!(html.contains(r#"autocomplete="current-password""#));
    // Ticking it anyway changes nothing: no Max-Age.
    add_user(&gateway, "alice", &[], PASSWORD).await;
    let response = sign_in(&gateway, "alice", PASSWORD, true).await;
    response.assert_status(303);
    let set = set_cookie(&response, "__Host-gatehouse_session").expect("session cookie");
    assert!(!set.contains("Max-Age"), "{set}");
}

#[tokio::test]
async fn signing_in_sets_the_host_cookie_and_goes_to_rd() {
    let gateway = TestGateway::start(&section("")).await;
    add_user(&gateway, "alice", &[], PASSWORD).await;
    let form = sign_in_form(&gateway, "?rd=%2Fapp%2Fpage%3Fx%3D1%23top", &[]).await;
    let response = submit(
        &gateway,
        &form,
        &[("username", "alice"), ("password", PASSWORD)],
    )
    .await;
    response.assert_status(303);
    assert_eq!(
        response.header("location"),
        Some("https://app.example.com/app/page?x=1#top")
    );
    assert_page_headers(&response);
    let session = set_cookie(&response, "__Host-gatehouse_session").expect("session cookie");
    let value = cookie_value(&session);
    assert!(value.len() >= 43, "≥ 256 bits: {}", value.len());
    assert_eq!(
        session,
        format!("__Host-gatehouse_session={value}; Path=/; Secure; HttpOnly; SameSite=Lax"),
        "no Domain, no Max-Age without remember-me"
    );
    assert!(!value.contains('.'), "an opaque id, never a JWT");
    let cleared = set_cookie(&response, "__Host-gatehouse_csrf").expect("pre-session cleared");
    assert!(cleared.starts_with("__Host-gatehouse_csrf=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");

    // The sign-out page sees the session.
    let cookie = format!("Cookie: __Host-gatehouse_session={value}");
    assert!(await_signed_in(&gateway, &cookie, true).await);

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
}

#[tokio::test]
async fn remember_me_gives_the_cookie_its_lifetime() {
    let gateway = TestGateway::start(&section("remember_me = \"3d\"")).await;
    add_user(&gateway, "alice", &[], PASSWORD).await;
    let response = sign_in(&gateway, "alice", PASSWORD, true).await;
    response.assert_status(303);
    let session = set_cookie(&response, "__Host-gatehouse_session").expect("session cookie");
    assert!(session.ends_with("; Max-Age=259200"), "{session}");
}

#[tokio::test]
async fn with_cookie_domain_the_cookie_is_secure_prefixed_with_domain() {
    let gateway = TestGateway::start(&section("cookie_domain = \"example.com\"")).await;
    add_user(&gateway, "alice", &[], PASSWORD).await;
    let form = sign_in_form(&gateway, "", &[]).await;
    let pre = set_cookie(&form.page, "__Secure-gatehouse_csrf").expect("pre-session cookie");
    assert!(
        !pre.contains("Domain"),
        "the pre-session stays host-only: {pre}"
    );
    let response = submit(
        &gateway,
        &form,
        &[
            ("username", "alice"),
            ("password", PASSWORD),
            ("remember_me", "on"),
        ],
    )
    .await;
    response.assert_status(303);
    let session = set_cookie(&response, "__Secure-gatehouse_session").expect("session cookie");
    let value = cookie_value(&session);
    assert_eq!(
        session,
        format!(
            "__Secure-gatehouse_session={value}; Path=/; Secure; HttpOnly; SameSite=Lax; Domain=example.com; Max-Age=1209600"
        )
    );
    assert!(set_cookie(&response, "__Host-gatehouse_session").is_none());

    // Sign-out clears it with the same attributes.
    let cookie = format!("Cookie: __Secure-gatehouse_session={value}");
    let page = gateway.get("/auth/sign_out", &[&cookie]).await;
    let csrf = input_value(&body(&page), "csrf").expect("csrf");
    let mut headers = SAME_ORIGIN.to_vec();
    headers.push(&cookie);
    let out = post(
        &gateway,
        "/auth/sign_out",
        &form_body(&[("csrf", &csrf)]),
        &headers,
    )
    .await;
    out.assert_status(303);
    assert_eq!(
        set_cookie(&out, "__Secure-gatehouse_session").as_deref(),
        Some(
            "__Secure-gatehouse_session=; Path=/; Secure; HttpOnly; SameSite=Lax; Domain=example.com; Max-Age=0"
        )
    );
}

#[tokio::test]
async fn a_failed_sign_in_is_401_with_the_form_and_one_generic_message() {
    let gateway = TestGateway::start(&section("")).await;
    add_user(&gateway, "alice", &[], PASSWORD).await;
    let mut pages = Vec::new();
    for (username, password) in [("alice", "wrong password"), ("nobody", "wrong password")] {
        let form = sign_in_form(&gateway, "?rd=/after", &[]).await;
        let response = submit(
            &gateway,
            &form,
            &[("username", username), ("password", password)],
        )
        .await;
        response.assert_status(401);
        assert_html(&response);
        assert!(response.header("www-authenticate").is_some());
        assert!(set_cookie(&response, "__Host-gatehouse_session").is_none());
        let html = body(&response);
        assert!(html.contains("Invalid username or password."), "{html}");
        assert!(!html.contains(password), "the password is never shown back");
        assert_eq!(
            input_value(&html, "rd").as_deref(),
            Some("https://app.example.com/after")
        );
        assert_eq!(input_value(&html, "username").as_deref(), Some(username));
        // The form can be sent again with the same pre-session.
        assert_eq!(input_value(&html, "csrf"), Some(form.csrf.clone()));
        pages.push(html.replace(username, "USER").replace(&form.csrf, "CSRF"));
    }
    assert_eq!(
        pages[0], pages[1],
        "unknown user and wrong password look the same"
    );
}

#[tokio::test]
async fn a_disabled_account_sees_403_only_after_the_correct_password() {
    let gateway = TestGateway::start(&section("")).await;
    add_user(&gateway, "carol", &[], PASSWORD).await;
    let reply = admin(
        &gateway,
        Request::Disable {
            username: "carol".into(),
        },
    )
    .await;
    assert!(reply.ok, "{reply:?}");
    sign_in(&gateway, "carol", "wrong password", false)
        .await
        .assert_status(401);
    let right = sign_in(&gateway, "carol", PASSWORD, false).await;
    right.assert_status(403);
    assert_html(&right);
    assert!(body(&right).contains("This account is disabled."));
    assert!(set_cookie(&right, "__Host-gatehouse_session").is_none());
}

#[tokio::test]
async fn signing_out_ends_the_session_clears_the_cookie_and_goes_to_sign_in() {
    let gateway = TestGateway::start(&section("")).await;
    add_user(&gateway, "alice", &[], PASSWORD).await;
    let session = session_cookie(&sign_in(&gateway, "alice", PASSWORD, false).await);
    let cookie = format!("Cookie: {session}");
    assert!(await_signed_in(&gateway, &cookie, true).await);

    let page = gateway.get("/auth/sign_out", &[&cookie]).await;
    page.assert_status(200);
    assert_html(&page);
    let html = body(&page);
    assert!(html.contains("Do you want to sign out?"), "{html}");
    assert!(
        html.contains(r#"method="post" action="/auth/sign_out""#),
        "{html}"
    );
    let csrf = input_value(&html, "csrf").expect("csrf");

    let mut headers = SAME_ORIGIN.to_vec();
    headers.push(&cookie);
    let out = post(
        &gateway,
        "/auth/sign_out",
        &form_body(&[("csrf", &csrf)]),
        &headers,
    )
    .await;
    out.assert_status(303);
    assert_eq!(
        out.header("location"),
        Some("https://app.example.com/auth/sign_in")
    );
    assert_page_headers(&out);
    assert_eq!(
        set_cookie(&out, "__Host-gatehouse_session").as_deref(),
        Some("__Host-gatehouse_session=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0")
    );

    // The old cookie, replayed, names no session any more.
    assert!(!await_signed_in(&gateway, &cookie, false).await);
    let page = gateway.get("/auth/sign_out", &[&cookie]).await;
    assert!(
        body(&page).contains("You are not signed in."),
        "{}",
        body(&page)
    );

    // Signing out again is harmless.
    let again = post(
        &gateway,
        "/auth/sign_out",
        &form_body(&[("csrf", &csrf)]),
        &headers,
    )
    .await;
    again.assert_status(303);
}

#[tokio::test]
async fn sign_out_without_a_session_binds_its_form_to_a_pre_session() {
    let gateway = TestGateway::start(&section("")).await;
    let page = gateway.get("/auth/sign_out", &[]).await;
    page.assert_status(200);
    assert!(body(&page).contains("You are not signed in."));
    let set = set_cookie(&page, "__Host-gatehouse_csrf").expect("pre-session cookie");
    let csrf = input_value(&body(&page), "csrf").expect("csrf");
    let cookie = format!("Cookie: {}", set.split(';').next().unwrap_or_default());
    let mut headers = SAME_ORIGIN.to_vec();
    headers.push(&cookie);
    let out = post(
        &gateway,
        "/auth/sign_out",
        &form_body(&[("csrf", &csrf)]),
        &headers,
    )
    .await;
    out.assert_status(303);
}

#[tokio::test]
async fn page_errors_carry_the_page_headers_and_bodies_are_capped() {
    let gateway = TestGateway::start(&section("")).await;
    let forbidden = post(&gateway, "/auth/sign_in", "csrf=x", &[]).await;
    forbidden.assert_status(403);
    assert_eq!(forbidden.error_code(), "forbidden");
    assert_page_headers(&forbidden);
    let form = sign_in_form(&gateway, "", &[]).await;
    let big = "a".repeat(17 * 1024);
    let cookie = format!("Cookie: {}", form.cookie);
    let mut headers = SAME_ORIGIN.to_vec();
    headers.push(&cookie);
    let response = post(
        &gateway,
        "/auth/sign_in",
        &form_body(&[("csrf", &form.csrf), ("username", &big)]),
        &headers,
    )
    .await;
    response.assert_status(413);
    assert_page_headers(&response);
    let response = gateway
        .request("PUT", "/auth/sign_in", SAME_ORIGIN, b"")
        .await;
    response.assert_status(405);
    assert_eq!(response.header("allow"), Some("GET, HEAD, POST"));
}

/// The whole browser round trip at the HTTP level: a navigation to a protected page is
/// sent to the sign-in page with `rd`, the form posts back to that very URL, the cookie
/// then carries the identity upstream; after sign-out the same cookie is sent to sign in
/// again. (Needs NAVIGATION's pipeline.)
#[tokio::test]
async fn protected_page_to_sign_in_and_back_with_the_identity_upstream() {
    // The harness addresses the gateway as `Host: gateway.test`: the original URL is on
    // that host, which rd may go back to only because it is listed.
    let gateway = TestGateway::start(&section("allowed_redirect_hosts = [\"gateway.test\"]")).await;
    add_user(&gateway, "alice", &[], PASSWORD).await;
    let navigate = [
        "Sec-Fetch-Mode: navigate",
        "Sec-Fetch-Dest: document",
        "Sec-Fetch-Site: none",
        "Accept: text/html",
    ];
    let first = gateway.get("/private/page?x=1", &navigate).await;
    first.assert_status(302);
    let location = first.header("location").expect("Location").to_string();
    let query = location
        .strip_prefix(&format!("{PUBLIC_URL}/auth/sign_in"))
        .unwrap_or_else(|| panic!("{location}"));
    let form = sign_in_form(&gateway, query, &[]).await;
    assert_eq!(form.rd, "http://gateway.test/private/page?x=1");
    let signed_in = submit(
        &gateway,
        &form,
        &[("username", "alice"), ("password", PASSWORD)],
    )
    .await;
    signed_in.assert_status(303);
    assert_eq!(
        signed_in.header("location"),
        Some("http://gateway.test/private/page?x=1")
    );
    let cookie = format!("Cookie: {}", session_cookie(&signed_in));
    let mut headers = navigate.to_vec();
    headers.push(&cookie);
    let deadline = std::time::Instant::now() + common::DEADLINE;
    let back = loop {
        let back = gateway.get("/private/page?x=1", &headers).await;
        if back.status == 200 || std::time::Instant::now() > deadline {
            break back;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    back.assert_status(200);
    let seen = gateway
        .upstream
        .last()
        .expect("the upstream got the request");
    assert_eq!(seen.header("x-auth-user"), Some("alice"));

    let page = gateway.get("/auth/sign_out", &[&cookie]).await;
    let csrf = input_value(&body(&page), "csrf").expect("csrf");
    let mut out_headers = SAME_ORIGIN.to_vec();
    out_headers.push(&cookie);
    post(
        &gateway,
        "/auth/sign_out",
        &form_body(&[("csrf", &csrf)]),
        &out_headers,
    )
    .await
    .assert_status(303);
    let replay = gateway.get("/private/page?x=1", &headers).await;
    replay.assert_status(302);
}
