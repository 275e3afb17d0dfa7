//! Browser sign-in end to end in a REAL browser (SPEC §10, issue #15): Debian's headless
//! Chromium driven over WebDriver (tests/common/chromium.rs) against the in-process gateway
//! and the real echo upstream, whose JSON page shows the headers it received.
//!
//! First the harness proves itself: JavaScript runs (or, switched off, does not), cookies
//! are read back from the browser, and Chromium keeps `Secure` / `__Host-` cookies from
//! `http://127.0.0.1:PORT` (a secure context), which is why these tests need no TLS; and a
//! browser leaves no process behind, also when its test panics.
//!
//! Then the flows a person goes through, each in a fresh browser profile, with
//! `public_url` rewritten to the listener's real address and reloaded (SPEC §6): a
//! protected page sends them to the sign-in page, typing and clicking brings them back to
//! the original path and query with identity headers upstream; the cookie's flags as the
//! browser keeps them (with and without remember-me), invisible to scripts; sign-out
//! through the confirmation form, after which the old cookie value replayed outside the
//! browser is refused; a wrong password (one generic message, no cookie); the whole
//! sign-in with JavaScript switched off; open-redirect values in `rd` landing on
//! `public_url`'s `/`, an allowed other host reached (the page's CSP `form-action` lets
//! that redirect through); and script in `rd` or the username never running.
//!
//! Chromium must be installed (`apt-get install -y chromium chromium-driver`; `.ci/run`
//! does it). Without it these tests FAIL, they do not skip.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::accounts::{add_user, PASSWORD};
use common::chromium::{describe, get_with_cookie, Browser};
use common::TestGateway;

/// A public route to the echo upstream, for the harness's own pages.
const HARNESS_ROUTES: &str = r#"
[[routes]]
path = "/harness/**"
access = "public"
"#;

/// `http://127.0.0.1:PORT` of a gateway: the origin the browser uses.
fn origin(gateway: &TestGateway) -> String {
    format!("http://{}", gateway.addr)
}

/// Whether `pid` is gone (or a zombie waiting for a parent that is not ours to reap).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_runs_javascript_and_reads_secure_cookies_over_loopback_http() {
    let gateway = TestGateway::start(HARNESS_ROUTES).await;
    let browser = Browser::start().await;
    browser
        .goto(&format!("{}/harness/browser-page", origin(&gateway)))
        .await;

    assert_eq!(browser.text_of("#js").await, "on", "the page's script ran");
    let seen_by_script = browser.text_of("#cookies").await;
    assert!(
        seen_by_script.contains("harness_visible=1"),
        "scripts see the plain cookie: {seen_by_script:?}"
    );
    assert!(
        !seen_by_script.contains("harness_hidden"),
        "scripts never see an HttpOnly cookie: {seen_by_script:?}"
    );
    assert_eq!(browser.document_cookie().await, seen_by_script);

    // WebDriver sees every cookie with its attributes; Chromium kept the `__Host-`,
    // `Secure` one although the origin is plain http: 127.0.0.1 is a secure context.
    let Some(hidden) = browser.cookie("__Host-harness_hidden").await else {
        panic!("no __Host- cookie kept: {:?}", browser.cookies().await);
    };
    assert_eq!(hidden.secure(), Some(true), "{}", describe(&hidden));
    assert_eq!(hidden.http_only(), Some(true), "{}", describe(&hidden));
    assert_eq!(
        hidden.same_site().map(|s| s.to_string()).as_deref(),
        Some("Lax"),
        "{}",
        describe(&hidden)
    );
    assert_eq!(hidden.path(), Some("/"), "{}", describe(&hidden));
    assert_eq!(hidden.expires_datetime(), None, "a session cookie");

    // The echo upstream's JSON page, as a person sees it, lists what it received.
    browser
        .goto(&format!("{}/harness/echo?x=1", origin(&gateway)))
        .await;
    let echo: serde_json::Value = serde_json::from_str(&browser.text().await).expect("JSON page");
    assert_eq!(echo["target"], "/harness/echo?x=1");
    let headers = echo["headers"].as_array().expect("headers");
    let cookie_sent = headers
        .iter()
        .find(|pair| pair[0] == "cookie")
        .and_then(|pair| pair[1].as_str())
        .unwrap_or_default();
    assert!(
        cookie_sent.contains("__Host-harness_hidden=1"),
        "the browser sends the secure cookie back over http://127.0.0.1: {cookie_sent:?}"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_can_switch_javascript_off() {
    let gateway = TestGateway::start(HARNESS_ROUTES).await;
    let browser = Browser::start_without_javascript().await;
    browser
        .goto(&format!("{}/harness/browser-page", origin(&gateway)))
        .await;
    assert_eq!(
        browser.text_of("#js").await,
        "off",
        "the page's script must not run"
    );
    assert_eq!(browser.text_of("#cookies").await, "");
    // Cookies from the response are still kept: only scripts are off.
    assert!(browser.cookie("harness_visible").await.is_some());
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_leaves_no_browser_process_behind_even_when_a_test_panics() {
    let seen: Arc<Mutex<Vec<u32>>> = Arc::default();
    let record = seen.clone();
    let outcome = tokio::spawn(async move {
        let browser = Browser::start().await;
        browser.goto("about:blank").await;
        *record.lock().expect("lock") = browser.processes();
        panic!("a test failing while its browser runs (on purpose)");
    })
    .await;
    assert!(outcome.is_err_and(|error| error.is_panic()));
    let pids = seen.lock().expect("lock").clone();
    assert!(
        pids.len() >= 2,
        "chromedriver and Chromium were running: {pids:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&pid| !gone(pid)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left: Vec<u32> = pids.into_iter().filter(|&pid| !gone(pid)).collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

/// The sign-in user of the flows.
const USER: &str = "alice";

/// `[browser]` on (SPEC §10) with `public_url` = `origin`, plus the harness's public route.
fn browser_config(origin: &str, browser_extra: &str) -> String {
    format!(
        "[browser]\nenabled = true\npublic_url = \"{origin}\"\n{browser_extra}\n{HARNESS_ROUTES}"
    )
}

/// A gateway with `[browser]` on whose `public_url` is the origin the browser uses: the
/// port is only known once it listens, so it starts with a placeholder and the real one is
/// written and reloaded (browser settings are reloadable, SPEC §6); and a user `alice`
/// (role `staff`) with the harness password.
async fn signin_gateway(browser_extra: &str) -> TestGateway {
    let gateway = TestGateway::start(&browser_config("http://127.0.0.1:1", browser_extra)).await;
    gateway
        .rewrite_config("", &browser_config(&origin(&gateway), browser_extra))
        .expect("reload with the real public_url");
    add_user(&gateway, USER, &["staff"], PASSWORD).await;
    gateway
}

/// The session cookie's name without `cookie_domain` (SPEC §10).
const SESSION_COOKIE: &str = "__Host-gatehouse_session";

/// On the sign-in page: the SPEC's labelled fields, typed into key by key, then the
/// submit button clicked, as a person does it.
async fn sign_in(browser: &Browser, username: &str, password: &str, remember_me: bool) {
    browser
        .wait_for_url("the sign-in page", |url| url.path() == "/auth/sign_in")
        .await;
    let user_field = browser.element("input[name=username]").await;
    assert_eq!(
        user_field
            .attr("autocomplete")
            .await
            .expect("attr")
            .as_deref(),
        Some("username")
    );
    let password_field = browser.element("input[name=password]").await;
    assert_eq!(
        password_field
            .attr("autocomplete")
            .await
            .expect("attr")
            .as_deref(),
        Some("current-password")
    );
    assert_eq!(
        password_field.attr("type").await.expect("attr").as_deref(),
        Some("password")
    );
    for name in ["username", "password"] {
        let id = browser
            .element(&format!("input[name={name}]"))
            .await
            .attr("id")
            .await
            .expect("attr")
            .unwrap_or_else(|| panic!("the {name} field has an id for its label"));
        browser.element(&format!("label[for='{id}']")).await;
    }
    browser.type_into("input[name=username]", username).await;
    browser.type_into("input[name=password]", password).await;
    if remember_me {
        browser.click("input[name=remember_me]").await;
    }
    browser
        .click("form button[type=submit], form input[type=submit], form button:not([type])")
        .await;
}

/// Opens `path_and_query` signed out, signs in on the page the gateway sends the browser
/// to, and waits until it is back on that path; returns the URL it landed on.
async fn sign_in_from(
    browser: &Browser,
    origin: &str,
    path_and_query: &str,
    remember_me: bool,
) -> url::Url {
    let path = path_and_query.split('?').next().unwrap_or(path_and_query);
    browser.goto(&format!("{origin}{path_and_query}")).await;
    sign_in(browser, USER, PASSWORD, remember_me).await;
    browser
        .wait_for_url("the original URL", |url| url.path() == path)
        .await
}

/// The echo upstream's JSON page the browser shows: what the upstream received.
async fn echo_page(browser: &Browser) -> serde_json::Value {
    let text = browser.text().await;
    match serde_json::from_str(&text) {
        Ok(echo) => echo,
        Err(_) => panic!(
            "not the echo upstream's page at {}: {text}",
            browser.url().await
        ),
    }
}

/// A header of the echo page (names are lower case there).
fn echoed<'a>(echo: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    echo["headers"]
        .as_array()?
        .iter()
        .find(|pair| pair[0] == name)
        .and_then(|pair| pair[1].as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_page_sign_in_lands_on_the_original_url_with_identity_headers() {
    let gateway = signin_gateway("").await;
    let origin = origin(&gateway);
    let browser = Browser::start().await;
    let wanted = "/reports/q3?year=2026&sort=-date&q=a%20b";
    browser.goto(&format!("{origin}{wanted}")).await;

    // Sent to sign in (302), with where it was going in `rd`.
    let at = browser
        .wait_for_url("the sign-in page", |url| url.path() == "/auth/sign_in")
        .await;
    assert_eq!(at.origin().ascii_serialization(), origin, "{at}");
    let rd = at
        .query_pairs()
        .find(|(name, _)| name == "rd")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_else(|| panic!("no rd in {at}"));
    assert!(rd.ends_with(wanted), "rd {rd:?} names {wanted}");
    assert_eq!(
        gateway.upstream.count(),
        0,
        "nothing reached the upstream yet"
    );
    assert!(browser.cookie(SESSION_COOKIE).await.is_none());

    sign_in(&browser, USER, PASSWORD, false).await;

    // Back on the original URL, path AND query, with the identity headers upstream.
    let back = browser
        .wait_for_url("the original URL", |url| url.path() == "/reports/q3")
        .await;
    assert_eq!(back.query(), Some("year=2026&sort=-date&q=a%20b"), "{back}");
    let echo = echo_page(&browser).await;
    assert_eq!(echo["target"], wanted);
    assert_eq!(echoed(&echo, "x-auth-user"), Some(USER), "{echo}");
    assert_eq!(echoed(&echo, "x-auth-roles"), Some("staff"), "{echo}");
    assert!(
        echoed(&echo, "x-auth-subject").is_some_and(|sub| !sub.is_empty()),
        "{echo}"
    );
    let forwarded_cookies = echoed(&echo, "cookie").unwrap_or_default();
    assert!(
        !forwarded_cookies.contains("gatehouse_"),
        "gatehouse's own cookies are removed before forwarding: {forwarded_cookies:?}"
    );

    // The cookie as the browser keeps it (SPEC §10).
    let Some(cookie) = browser.cookie(SESSION_COOKIE).await else {
        panic!("no session cookie: {:?}", browser.cookies().await);
    };
    assert_eq!(cookie.http_only(), Some(true), "{}", describe(&cookie));
    assert_eq!(cookie.secure(), Some(true), "{}", describe(&cookie));
    assert_eq!(
        cookie.same_site().map(|s| s.to_string()).as_deref(),
        Some("Lax"),
        "{}",
        describe(&cookie)
    );
    assert_eq!(cookie.path(), Some("/"), "{}", describe(&cookie));
    assert_eq!(
        cookie.expires_datetime(),
        None,
        "no expiry without remember-me: {}",
        describe(&cookie)
    );
    assert!(
        cookie.value().len() >= 43,
        "≥ 256 bits of id ({} characters)",
        cookie.value().len()
    );
    // Scripts cannot read it (HttpOnly), although they run on this page.
    let script_view = browser.document_cookie().await;
    assert!(
        !script_view.contains("gatehouse_"),
        "document.cookie shows gatehouse's cookies: {script_view:?}"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_ends_the_session_and_the_old_cookie_replayed_is_refused() {
    let gateway = signin_gateway("").await;
    let origin = origin(&gateway);
    let browser = Browser::start().await;
    sign_in_from(&browser, &origin, "/private/page", false).await;
    let old = browser
        .cookie(SESSION_COOKIE)
        .await
        .expect("session cookie")
        .value()
        .to_string();
    let replay = format!("{SESSION_COOKIE}={old}");

    // The value alone, outside the browser, is a credential while the session lives.
    let before = get_with_cookie(gateway.addr, "/private/api", &replay, false).await;
    before.assert_status(200);
    assert_eq!(
        gateway
            .upstream
            .last()
            .expect("forwarded")
            .header("x-auth-user"),
        Some(USER)
    );

    // Sign out through the confirmation form (SPEC §10: GET shows it, POST ends it).
    browser.goto(&format!("{origin}/auth/sign_out")).await;
    browser.element("form").await;
    let after_get = get_with_cookie(gateway.addr, "/private/api", &replay, false).await;
    after_get.assert_status(200);
    browser
        .click("form button[type=submit], form input[type=submit], form button:not([type])")
        .await;
    browser
        .wait_for_url("the sign-in page after signing out", |url| {
            url.path() == "/auth/sign_in"
        })
        .await;
    assert!(
        browser.cookie(SESSION_COOKIE).await.is_none(),
        "the cookie is cleared: {:?}",
        browser.cookies().await
    );

    // The old value replayed: no credential any more (SPEC §10: ended on the server).
    let api = get_with_cookie(gateway.addr, "/private/api", &replay, false).await;
    api.assert_status(401);
    assert_eq!(api.error_code(), "unauthorized");
    let page = get_with_cookie(gateway.addr, "/private/page", &replay, true).await;
    page.assert_status(302);
    let location = page.header("location").expect("Location");
    assert!(
        location.starts_with(&format!("{origin}/auth/sign_in?rd=")),
        "{location}"
    );
    // And the browser itself is sent to sign in again.
    let forwarded = gateway.upstream.count();
    browser.goto(&format!("{origin}/private/page")).await;
    browser
        .wait_for_url("the sign-in page", |url| url.path() == "/auth/sign_in")
        .await;
    assert_eq!(gateway.upstream.count(), forwarded, "nothing forwarded");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remember_me_gives_the_cookie_an_expiry() {
    let gateway = signin_gateway("remember_me = \"14d\"").await;
    let origin = origin(&gateway);
    let browser = Browser::start().await;
    sign_in_from(&browser, &origin, "/inbox", true).await;
    let cookie = browser
        .cookie(SESSION_COOKIE)
        .await
        .expect("session cookie");
    let expires = cookie
        .expires_datetime()
        .unwrap_or_else(|| panic!("remember-me sets an expiry: {}", describe(&cookie)))
        .unix_timestamp();
    let expected = common::now() as i64 + 14 * 24 * 3600;
    assert!(
        (expires - expected).abs() <= 120,
        "expires in 14 days: {} vs {expected}",
        describe(&cookie)
    );
    assert_eq!(cookie.http_only(), Some(true), "{}", describe(&cookie));
    assert_eq!(cookie.secure(), Some(true), "{}", describe(&cookie));
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_shows_one_generic_message_and_sets_no_cookie() {
    let gateway = signin_gateway("").await;
    let origin = origin(&gateway);
    let browser = Browser::start().await;
    browser.goto(&format!("{origin}/auth/sign_in")).await;
    let pristine = browser.text().await;

    sign_in(&browser, USER, "not the password", false).await;
    let wrong_password = wait_for_text_change(&browser, &pristine).await;
    assert_eq!(browser.url().await.path(), "/auth/sign_in");
    assert!(browser.cookie(SESSION_COOKIE).await.is_none());

    browser.goto(&format!("{origin}/auth/sign_in")).await;
    sign_in(&browser, "nobody-here", "not the password", false).await;
    let unknown_user = wait_for_text_change(&browser, &pristine).await;
    assert_eq!(
        wrong_password, unknown_user,
        "one generic message, whichever part was wrong"
    );
    assert!(!wrong_password.contains("nobody-here"));
    assert!(browser.cookie(SESSION_COOKIE).await.is_none());
    assert_eq!(gateway.upstream.count(), 0);
    browser.close().await;
}

/// Waits (deadline) until the page's text differs from `before`; returns it.
async fn wait_for_text_change(browser: &Browser, before: &str) -> String {
    let deadline = Instant::now() + common::DEADLINE;
    loop {
        let text = browser.text().await;
        if text != before && !text.is_empty() {
            return text;
        }
        assert!(Instant::now() < deadline, "the page never changed: {text}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_works_with_javascript_switched_off() {
    let gateway = signin_gateway("").await;
    let origin = origin(&gateway);
    let browser = Browser::start_without_javascript().await;
    browser
        .goto(&format!("{origin}/harness/browser-page"))
        .await;
    assert_eq!(
        browser.text_of("#js").await,
        "off",
        "JavaScript is really off"
    );

    let back = sign_in_from(&browser, &origin, "/docs/page?id=7", false).await;
    assert_eq!(back.query(), Some("id=7"));
    let echo = echo_page(&browser).await;
    assert_eq!(echoed(&echo, "x-auth-user"), Some(USER), "{echo}");
    assert!(browser.cookie(SESSION_COOKIE).await.is_some());
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_redirect_through_rd_lands_on_public_url_root() {
    let gateway = signin_gateway("").await;
    let origin = origin(&gateway);
    let browser = Browser::start().await;
    for evil in [
        "//evil.example/steal",
        "/\\evil.example",
        "https://evil.example/",
        "/auth/sign_out",
    ] {
        let rd: String = url::form_urlencoded::byte_serialize(evil.as_bytes()).collect();
        browser
            .goto(&format!("{origin}/auth/sign_in?rd={rd}"))
            .await;
        sign_in(&browser, USER, PASSWORD, false).await;
        let landed = browser
            .wait_for_url("somewhere after signing in", |url| {
                url.path() != "/auth/sign_in"
            })
            .await;
        assert_eq!(
            landed.as_str(),
            format!("{origin}/"),
            "rd {evil:?} must land on public_url's /"
        );
        assert_eq!(echo_page(&browser).await["target"], "/", "rd {evil:?}");
        // Signed out for the next value, so the form is shown again.
        browser
            .client
            .delete_all_cookies()
            .await
            .expect("delete cookies");
    }
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_in_rd_or_username_never_runs_on_the_sign_in_page() {
    let gateway = signin_gateway("").await;
    let origin = origin(&gateway);
    let browser = Browser::start().await;
    let probe = "\"><script>window.xss=1</script><img src=x onerror=\"window.xss=2\">";
    let rd: String =
        url::form_urlencoded::byte_serialize(format!("/a{probe}").as_bytes()).collect();
    browser
        .goto(&format!("{origin}/auth/sign_in?rd={rd}"))
        .await;
    browser.element("input[name=username]").await;
    let ran = browser
        .client
        .execute("return typeof window.xss;", Vec::new())
        .await
        .expect("script");
    assert_eq!(ran, "undefined", "rd's script ran");
    // A username shown back after a failure is escaped too.
    sign_in(&browser, probe, "wrong", false).await;
    browser.element("input[name=username]").await;
    let ran = browser
        .client
        .execute("return typeof window.xss;", Vec::new())
        .await
        .expect("script");
    assert_eq!(ran, "undefined", "username's script ran");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rd_to_an_allowed_other_host_is_followed_after_sign_in() {
    // The echo upstream under another host name stands for a second application: the
    // 303 answering the form's POST must get there (CSP `form-action` governs that
    // redirect too, so the page's policy has to allow that origin).
    let gateway = signin_gateway("").await;
    let origin = origin(&gateway);
    let other = format!("localhost:{}", gateway.upstream.addr.port());
    gateway
        .rewrite_config(
            "",
            &browser_config(&origin, &format!("allowed_redirect_hosts = [\"{other}\"]")),
        )
        .expect("reload");
    let target = format!("http://{other}/second-app?x=1");
    let rd: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
    let browser = Browser::start().await;
    browser
        .goto(&format!("{origin}/auth/sign_in?rd={rd}"))
        .await;
    sign_in(&browser, USER, PASSWORD, false).await;
    let landed = browser
        .wait_for_url("the allowed other host", |url| url.path() == "/second-app")
        .await;
    assert_eq!(landed.as_str(), target);
    assert_eq!(echo_page(&browser).await["target"], "/second-app?x=1");
    browser.close().await;
}
