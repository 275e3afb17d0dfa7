//! Attacks on the browser pages (SPEC §10), through the real HTTP path of the in-process
//! gateway:
//!
//! * **open redirect**: the inputs of the oauth2-proxy, Authelia and caddy-security
//!   advisories (`/\evil.com`, `//evil.com`, `/%09/evil.com`, `https:evil.com`,
//!   `/.//evil.com`, user info, CR/LF, non-ASCII, IP literals, look-alike hosts), posted as
//!   `rd` straight to `POST /auth/sign_in` (not only through the form's GET), never leave
//!   `public_url`'s origin or the listed hosts in `Location`;
//! * **CSRF**: no token, a wrong token, the token of another pre-session, a cross-site or
//!   same-site `Sec-Fetch-Site`, a wrong, `null` or absent `Origin` without fetch
//!   metadata — each 403 `forbidden` before any password is checked (so they do not count
//!   towards the lockout either); a GET never signs out, nor does a cross-site POST;
//! * **session fixation**: a session cookie the client brings is never the one issued; a
//!   new id at every sign-in; a pre-session cookie of the attacker's making is replaced;
//! * **lockout shared with `/auth/login`**: failures on either count on both, and then
//!   both answer 429 with `Retry-After`, even with the right password;
//! * **reflected XSS**: probes through `rd`, the username and the path never come back
//!   unescaped.

mod common;

use common::accounts::{add_user, login, PASSWORD};
use common::browser::{
    await_signed_in, body, form_body, input_value, post, section, session_cookie, set_cookie,
    sign_in, sign_in_form, signed_in, submit, SignInForm, PUBLIC_URL, SAME_ORIGIN,
};
use common::{Response, TestGateway};

const HOME: &str = "https://app.example.com/";

/// Posts the form with a hand-written `rd` as the sign-in answer's target.
async fn location_for(gateway: &TestGateway, form: &SignInForm, rd: &str) -> String {
    let cookie = format!("Cookie: {}", form.cookie);
    let mut headers = SAME_ORIGIN.to_vec();
    headers.push(&cookie);
    let body = form_body(&[
        ("csrf", &form.csrf),
        ("rd", rd),
        ("username", "alice"),
        ("password", PASSWORD),
    ]);
    let response = post(gateway, "/auth/sign_in", &body, &headers).await;
    response.assert_status(303);
    response
        .header("location")
        .unwrap_or_else(|| panic!("Location for {rd:?}"))
        .to_string()
}

/// Percent-encodes for a query string.
fn query(value: &str) -> String {
    common::accounts::form_value(value)
}

const EVIL: &[&str] = &[
    "/\\evil.com",
    "\\/evil.com",
    "/\\/evil.com/",
    "//evil.com",
    "//evil.com/%2F..",
    "///evil.com",
    "/.//evil.com",
    "/./\\evil.com",
    "/%09/evil.com",
    "/%5C/evil.com",
    "/%2F/evil.com",
    "/\t/evil.com",
    "https:evil.com",
    "https:/evil.com",
    "https:\\\\evil.com",
    "https:///evil.com",
    "HTTPS://evil.com",
    "evil.com",
    "//evil.com@app.example.com",
    "https://evil.com@app.example.com/",
    "https://app.example.com@evil.com/",
    "https://app.example.com:pw@evil.com/",
    "https://user@app.example.com/",
    "https://evil.com#@app.example.com/",
    "https://evil.com\\@app.example.com/",
    "/\r\nLocation: https://evil.com",
    "https://app.example.com/\r\nSet-Cookie: x=1",
    "/%0d%0aLocation:%20https://evil.com",
    "https://app.exаmple.com/",
    "https://evil.com。app.example.com/",
    "/ünicode",
    "https://127.0.0.1/",
    "https://2130706433/",
    "https://[::1]/",
    "https://0x7f.0.0.1/",
    "https://app.example.com.evil.com/",
    "https://evilapp.example.com/",
    "https://app.example.com:8443/",
    "http://app.example.com/",
    "https://example.com/",
    "https://x.example.org.evil.com/",
    "javascript:alert(document.domain)",
    "JaVaScRiPt://%0aalert(1)",
    "data:text/html,<script>alert(1)</script>",
    "ftp://app.example.com/",
    "/auth/sign_out",
    "/auth/sign_in?rd=//evil.com",
    "/%61uth/sign_out",
];

#[tokio::test]
async fn open_redirect_inputs_never_leave_the_allowed_origins() {
    let gateway = TestGateway::start(&section(
        "allowed_redirect_hosts = [\"app2.example.com\", \".example.org\"]",
    ))
    .await;
    add_user(&gateway, "alice", &[], PASSWORD).await;
    for rd in EVIL {
        // Through the form's GET: the hidden rd is already the safe target…
        let form = sign_in_form(&gateway, &format!("?rd={}", query(rd)), &[]).await;
        assert_eq!(form.rd, HOME, "GET rd={rd:?}");
        // …and posted by hand, the answer still goes home.
        assert_eq!(
            location_for(&gateway, &form, rd).await,
            HOME,
            "POST rd={rd:?}"
        );
    }
    let form = sign_in_form(&gateway, "", &[]).await;
    for (rd, expected) in [
        ("/deep/link?q=1", "https://app.example.com/deep/link?q=1"),
        ("https://app2.example.com/x", "https://app2.example.com/x"),
        ("https://a.b.example.org/y", "https://a.b.example.org/y"),
        ("https://APP.example.com:443/z", "https://app.example.com/z"),
    ] {
        assert_eq!(location_for(&gateway, &form, rd).await, expected, "{rd:?}");
    }
    // The page after a listed-host rd lets its form reach that origin (Chromium applies
    // form-action to the 303 that follows the POST).
    let form = sign_in_form(&gateway, "?rd=https%3A%2F%2Fapp2.example.com%2Fx", &[]).await;
    let csp = form.page.header("content-security-policy").expect("CSP");
    assert!(
        csp.contains("form-action 'self' https://app.example.com https://app2.example.com;"),
        "{csp}"
    );
}

fn assert_forbidden(response: &Response, what: &str) {
    assert_eq!(response.status, 403, "{what}: {}", body(response));
    assert_eq!(response.error_code(), "forbidden", "{what}");
    let description = response.json()["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        description.contains("open the page again"),
        "{what}: the refusal says what to do: {description}"
    );
    assert!(
        set_cookie(response, "__Host-gatehouse_session").is_none(),
        "{what}"
    );
}

#[tokio::test]
async fn sign_in_csrf_is_refused_before_any_password_is_checked() {
    // Three failures would lock alice out: the refused forms must not count.
    let gateway = TestGateway::start(&format!(
        "{}[login]\nmax_failures = 3\nmax_failures_per_address = 3\n",
        section("")
    ))
    .await;
    add_user(&gateway, "alice", &[], PASSWORD).await;
    let form = sign_in_form(&gateway, "", &[]).await;
    let other = sign_in_form(&gateway, "", &[]).await;
    let cookie = format!("Cookie: {}", form.cookie);
    let fields = |csrf: &str| {
        form_body(&[
            ("csrf", csrf),
            ("username", "alice"),
            ("password", "wrong password"),
        ])
    };
    let with = |extra: &[&'static str]| -> Vec<String> {
        let mut all: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        all.push(cookie.clone());
        all
    };
    let cases: Vec<(&str, String, Vec<String>)> = vec![
        (
            "no token",
            form_body(&[("username", "alice"), ("password", "x")]),
            with(SAME_ORIGIN),
        ),
        ("empty token", fields(""), with(SAME_ORIGIN)),
        (
            "wrong token",
            fields("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            with(SAME_ORIGIN),
        ),
        (
            "another pre-session's token",
            fields(&other.csrf),
            with(SAME_ORIGIN),
        ),
        (
            "the cookie value as token",
            fields(form.cookie.split('=').nth(1).unwrap_or("")),
            with(SAME_ORIGIN),
        ),
        (
            "no pre-session cookie",
            fields(&form.csrf),
            SAME_ORIGIN.iter().map(|s| s.to_string()).collect(),
        ),
        (
            "cross-site",
            fields(&form.csrf),
            with(&[
                "Sec-Fetch-Site: cross-site",
                "Origin: https://app.example.com",
            ]),
        ),
        (
            "same-site",
            fields(&form.csrf),
            with(&["Sec-Fetch-Site: same-site"]),
        ),
        (
            "wrong Origin",
            fields(&form.csrf),
            with(&["Origin: https://evil.com"]),
        ),
        ("null Origin", fields(&form.csrf), with(&["Origin: null"])),
        (
            "look-alike Origin",
            fields(&form.csrf),
            with(&["Origin: https://app.example.com.evil.com"]),
        ),
        (
            "neither Sec-Fetch-Site nor Origin",
            fields(&form.csrf),
            with(&[]),
        ),
    ];
    for (what, body, headers) in &cases {
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        assert_forbidden(&post(&gateway, "/auth/sign_in", body, &headers).await, what);
    }
    // None of those counted as a failure: the right password still works, and with only
    // an Origin (a browser without fetch metadata) too.
    let body = form_body(&[
        ("csrf", &form.csrf),
        ("username", "alice"),
        ("password", PASSWORD),
    ]);
    let response = post(
        &gateway,
        "/auth/sign_in",
        &body,
        &[&format!("Origin: {PUBLIC_URL}"), &cookie],
    )
    .await;
    response.assert_status(303);
}

#[tokio::test]
async fn sign_out_needs_a_post_from_this_site_with_the_token() {
    let gateway = TestGateway::start(&section("")).await;
    add_user(&gateway, "alice", &[], PASSWORD).await;
    let session = session_cookie(&sign_in(&gateway, "alice", PASSWORD, false).await);
    let cookie = format!("Cookie: {session}");
    assert!(await_signed_in(&gateway, &cookie, true).await);
    // A GET (a link, an <img>, a prefetch) never signs out.
    for _ in 0..2 {
        assert!(signed_in(&gateway, &cookie).await);
    }
    let csrf = input_value(
        &body(&gateway.get("/auth/sign_out", &[&cookie]).await),
        "csrf",
    )
    .expect("csrf");
    for (what, form, headers) in [
        (
            "no token",
            String::new(),
            vec![SAME_ORIGIN[0], cookie.as_str()],
        ),
        (
            "wrong token",
            form_body(&[("csrf", "x")]),
            vec![SAME_ORIGIN[0], cookie.as_str()],
        ),
        (
            "cross-site",
            form_body(&[("csrf", &csrf)]),
            vec!["Sec-Fetch-Site: cross-site", cookie.as_str()],
        ),
        (
            "wrong Origin",
            form_body(&[("csrf", &csrf)]),
            vec!["Origin: https://evil.com", cookie.as_str()],
        ),
    ] {
        let response = post(&gateway, "/auth/sign_out", &form, &headers).await;
        assert_forbidden(&response, what);
    }
    assert!(signed_in(&gateway, &cookie).await, "still signed in");
}

#[tokio::test]
async fn no_session_fixation_a_new_id_at_every_sign_in() {
    let gateway = TestGateway::start(&section("")).await;
    add_user(&gateway, "alice", &[], PASSWORD).await;
    // The attacker plants a session id and a pre-session of their own.
    let planted_session = "__Host-gatehouse_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let planted_pre = "__Host-gatehouse_csrf=attacker-chosen";
    let page = gateway
        .get(
            "/auth/sign_in",
            &[&format!("Cookie: {planted_session}; {planted_pre}")],
        )
        .await;
    let fresh = set_cookie(&page, "__Host-gatehouse_csrf").expect("a pre-session of ours");
    assert!(!fresh.contains("attacker-chosen"));
    let form = SignInForm {
        cookie: format!(
            "{planted_session}; {}",
            fresh.split(';').next().unwrap_or_default()
        ),
        csrf: input_value(&body(&page), "csrf").expect("csrf"),
        rd: input_value(&body(&page), "rd").expect("rd"),
        page,
    };
    let first = submit(
        &gateway,
        &form,
        &[("username", "alice"), ("password", PASSWORD)],
    )
    .await;
    first.assert_status(303);
    let first = session_cookie(&first);
    assert_ne!(first, planted_session);
    let second = session_cookie(&sign_in(&gateway, "alice", PASSWORD, false).await);
    let third = session_cookie(&sign_in(&gateway, "alice", PASSWORD, true).await);
    assert_ne!(first, second);
    assert_ne!(second, third);
    assert_ne!(first, third);
}

#[tokio::test]
async fn the_lockout_is_shared_with_the_login_endpoint() {
    let limits = "[login]\nmax_failures = 3\nmax_failures_per_address = 100\nwindow = \"1m\"\nlockout = \"2m\"\n";
    let gateway = TestGateway::start(&format!("{}{limits}", section(""))).await;
    add_user(&gateway, "alice", &[], PASSWORD).await;
    add_user(&gateway, "bob", &[], PASSWORD).await;

    // Two failures on /auth/login, one on the page: alice is locked out on both.
    for _ in 0..2 {
        assert_eq!(login(&gateway, "alice", "wrong password").await.status, 401);
    }
    sign_in(&gateway, "alice", "wrong password", false)
        .await
        .assert_status(401);
    let page = sign_in(&gateway, "alice", PASSWORD, false).await;
    page.assert_status(429);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let retry: u64 = page
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=120).contains(&retry), "{retry}");
    assert!(body(&page).contains("Too many failed attempts"));
    assert!(set_cookie(&page, "__Host-gatehouse_session").is_none());
    assert_eq!(login(&gateway, "alice", PASSWORD).await.status, 429);

    // The other way round: failures on the page lock /auth/login.
    for _ in 0..3 {
        sign_in(&gateway, "bob", "wrong password", false)
            .await
            .assert_status(401);
    }
    assert_eq!(login(&gateway, "bob", PASSWORD).await.status, 429);
    sign_in(&gateway, "bob", PASSWORD, false)
        .await
        .assert_status(429);
}

const PROBES: &[&str] = &[
    "<script>alert(1)</script>",
    "\"><svg onload=alert(1)>",
    "'><img src=x onerror=alert(1)>",
    "javascript:alert(1)",
];

fn assert_inert(html: &str, what: &str) {
    // Escaped text may still read "onload=" (harmless outside a tag), and a text field's
    // value may read "javascript:"; what must never appear is markup, or a javascript:
    // URL where a browser would follow it.
    for needle in [
        "<script",
        "<svg",
        "<img",
        "href=\"javascript:",
        "src=\"javascript:",
        "action=\"javascript:",
    ] {
        assert!(!html.contains(needle), "{what}: {needle} in {html}");
    }
}

#[tokio::test]
async fn reflected_xss_probes_never_come_back_unescaped() {
    let gateway = TestGateway::start(&section("")).await;
    for probe in PROBES {
        // Through rd (query and form), with a path prefix so a path-shaped rd is kept.
        for rd in [probe.to_string(), format!("/x{probe}")] {
            let form = sign_in_form(&gateway, &format!("?rd={}", query(&rd)), &[]).await;
            assert_inert(&body(&form.page), &format!("GET rd={rd:?}"));
            // Through the username on the 401 page, with the rd posted by hand.
            let cookie = format!("Cookie: {}", form.cookie);
            let mut headers = SAME_ORIGIN.to_vec();
            headers.push(&cookie);
            let fields = form_body(&[
                ("csrf", &form.csrf),
                ("rd", &rd),
                ("username", probe),
                ("password", "wrong password"),
            ]);
            let failed = post(&gateway, "/auth/sign_in", &fields, &headers).await;
            failed.assert_status(401);
            let html = body(&failed);
            assert_inert(&html, &format!("POST username={probe:?}"));
            assert_eq!(input_value(&html, "username").as_deref(), Some(*probe));
        }
        // Through the path.
        let response = gateway
            .get(&format!("/auth/sign_in/{}", query(probe)), &[])
            .await;
        // 404 (no such page), or 400 where the probe holds an encoded `/` (SPEC §3.1).
        assert!(matches!(response.status, 400 | 404), "{}", response.status);
        assert_inert(&body(&response), &format!("path {probe:?}"));
    }
}
