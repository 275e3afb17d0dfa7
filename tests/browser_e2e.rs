//! Browser sign-in end to end in a REAL browser (SPEC §10, issue #15): Debian's headless
//! Chromium driven over WebDriver (tests/common/chromium.rs) against the in-process gateway
//! and the real echo upstream, whose JSON page shows the headers it received.
//!
//! First the harness proves itself: JavaScript runs (or, switched off, does not), cookies
//! are read back from the browser, and Chromium keeps `Secure` / `__Host-` cookies from
//! `http://127.0.0.1:PORT` (a secure context), which is why these tests need no TLS; and a
//! browser leaves no process behind, also when its test panics.
//!
//! Chromium must be installed (`apt-get install -y chromium chromium-driver`; `.ci/run`
//! does it). Without it these tests FAIL, they do not skip.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::chromium::{describe, Browser};
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
