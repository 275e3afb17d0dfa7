//! A REAL browser for the end-to-end tests (issue #15): Debian's headless Chromium driven
//! over W3C WebDriver (the `fantoccini` client against Debian's `chromedriver`), so the
//! sign-in flows are checked by the software people use, cookie rules included (`__Host-`
//! prefix, `Secure`, `HttpOnly`, `SameSite`, RFC 6265bis), not by a client written to agree
//! with gatehouse.
//!
//! [`Browser::start`] starts one `chromedriver --port=0` (it reports the port it bound on
//! stdout, so nothing is guessed), waits with a deadline until its `/status` says ready, and
//! opens one session: `--headless=new --no-sandbox --disable-dev-shm-usage` and a fresh
//! profile in a temp dir, with first-run, sync, updates, background networking, crash
//! uploads, translation, password saving and HTTPS upgrades turned off, so the browser
//! talks to nobody but the loopback servers of the test. `HOME`, `TMPDIR` and the XDG dirs
//! point into the same temp dir, so nothing is left in the real home or `/tmp`. Nothing is downloaded:
//! a missing `chromium` / `chromedriver` FAILS the test with a message naming the Debian
//! packages (`.ci/run` installs them), it never skips.
//! [`Browser::start_without_javascript`] is the same with JavaScript switched off by the
//! content-settings preference, as a person who disabled it has it.
//!
//! Clean-up: chromedriver runs in a process group of its own, which Chromium's processes
//! inherit; dropping the [`Browser`] (also while a test panics) kills that group, then any
//! crash handler still named after the temp dir (Chromium starts those in sessions of
//! their own), and waits until none of them is left. [`Browser::processes`] lists them, so
//! a test can prove it.

#![allow(dead_code)]

use std::io::BufRead as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use http_body_util::BodyExt as _;

use crate::common::{raw, DEADLINE};

/// What to do when the browser or its driver is missing.
const INSTALL: &str = "Install Debian's packages with `apt-get update && apt-get install -y \
                       chromium chromium-driver` (.ci/run does this when they are missing)";

/// Finds `name` on `PATH` or in `/usr/bin`, or fails the test naming the package.
fn find(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` (Debian package `{package}`) is not installed, so the browser \
                 tests cannot run. {INSTALL}."
            )
        })
}

/// Debian's Chromium (`/usr/bin/chromium`, package `chromium`).
pub fn find_chromium() -> PathBuf {
    find("chromium", "chromium")
}

/// Debian's chromedriver (`/usr/bin/chromedriver`, package `chromium-driver`).
pub fn find_chromedriver() -> PathBuf {
    find("chromedriver", "chromium-driver")
}

/// Chromium's command line: headless, no sandbox (root in a container has none to give),
/// a fresh profile, and nothing that would reach beyond the loopback servers of the test.
fn chromium_args(profile: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--no-proxy-server",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-breakpad",
        "--disable-crash-reporter",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--metrics-recording-only",
        "--password-store=basic",
        "--window-size=1024,768",
        // Translation, password checks, HTTPS upgrades of http:// navigations (the
        // loopback origins of the tests are http://127.0.0.1:PORT) and other features that
        // would call out or change what the test asked for.
        "--disable-features=Translate,OptimizationHints,MediaRouter,HttpsUpgrades,\
         HttpsFirstBalancedModeAutoEnable,PasswordLeakDetection,AutofillServerCommunication,\
         InterestFeedContentSuggestions,PrivacySandboxSettings4",
    ]
    .map(String::from)
    .to_vec();
    args.push(format!("--user-data-dir={}", profile.display()));
    args
}

/// The WebDriver capabilities of one session.
fn capabilities(chromium: &Path, profile: &Path, javascript: bool) -> fantoccini::wd::Capabilities {
    let mut prefs = serde_json::json!({
        "credentials_enable_service": false,
        "profile.password_manager_enabled": false,
        "translate.enabled": false,
    });
    if !javascript {
        // 2 = block: the content setting a person changes under "Site settings".
        prefs["profile.managed_default_content_settings.javascript"] = 2.into();
        prefs["profile.default_content_setting_values.javascript"] = 2.into();
    }
    let value = serde_json::json!({
        "browserName": "chrome",
        "acceptInsecureCerts": false,
        "pageLoadStrategy": "normal",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": chromium_args(profile),
            "prefs": prefs,
            "excludeSwitches": ["enable-automation"],
        },
    });
    match value {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("capabilities are an object"),
    }
}

/// A running chromedriver in a process group of its own (Chromium joins it).
struct Driver {
    child: Child,
    port: u16,
    /// `HOME`, XDG dirs, the profile and chromedriver's log, all removed on drop.
    dir: tempfile::TempDir,
}

impl Driver {
    /// `chromedriver --port=0`; the port is the one it reports on stdout.
    fn start() -> Driver {
        let chromedriver = find_chromedriver();
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&home).expect("home dir");
        std::fs::create_dir_all(&tmp).expect("tmp dir");
        let mut child = Command::new(&chromedriver)
            .arg("--port=0")
            .arg(format!(
                "--log-path={}",
                dir.path().join("chromedriver.log").display()
            ))
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("TMPDIR", &tmp)
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("all_proxy")
            .env_remove("ALL_PROXY")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("start {}: {error}. {INSTALL}.", chromedriver.display())
            });
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        // Reads the announcement, then keeps draining stdout so chromedriver never blocks.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    let _ = sender.send(rest.trim_end_matches('.').trim().parse::<u16>().ok());
                }
            }
        });
        let mut driver = Driver {
            child,
            port: 0,
            dir,
        };
        match receiver.recv_timeout(DEADLINE) {
            Ok(Some(port)) => driver.port = port,
            other => panic!(
                "chromedriver did not say where it listens ({other:?}); its log:\n{}",
                driver.log()
            ),
        }
        driver
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default()
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Polls `GET /status` until `"ready": true`, or fails at the deadline. (chromedriver
    /// keeps connections open whatever the request says, so this reads by Content-Length
    /// with hyper's client instead of reading until close.)
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Empty<bytes::Bytes>>();
        let uri: hyper::Uri = format!("{}/status", self.url())
            .parse()
            .expect("status URI");
        loop {
            let attempt = tokio::time::timeout(Duration::from_secs(2), async {
                let response = client.get(uri.clone()).await.ok()?;
                let ok = response.status() == 200;
                let body = response.into_body().collect().await.ok()?.to_bytes();
                let status: serde_json::Value = serde_json::from_slice(&body).ok()?;
                Some(ok && status["value"]["ready"] == true)
            })
            .await;
            if let Ok(Some(true)) = attempt {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "chromedriver exited with {status}; its log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver never became ready; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Every live process this driver brought: its process group (chromedriver, Chromium
    /// and its helpers) and anything else whose command line names the temp dir (crash
    /// handlers, which Chromium starts in sessions of their own).
    fn processes(&self) -> Vec<u32> {
        let group = self.child.id();
        let marker = self.dir.path().to_string_lossy().into_owned();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                // Fields after the parenthesised name: state ppid pgrp ...
                let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
                let mut fields = after.split_whitespace();
                let state = fields.next().unwrap_or("Z");
                let pgrp = fields.nth(1).and_then(|f| f.parse::<u32>().ok());
                if state == "Z" || state == "X" {
                    return false;
                }
                if pgrp == Some(group) {
                    return true;
                }
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                String::from_utf8_lossy(&cmdline).contains(&marker)
            })
            .collect()
    }
}

impl Drop for Driver {
    /// SIGKILL to the whole group and to stragglers named after the temp dir, then wait
    /// (bounded) until none is left, so no test run leaves a browser behind.
    fn drop(&mut self) {
        let group = self.child.id();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{group}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = self.processes();
            if left.is_empty() || Instant::now() >= deadline {
                break;
            }
            for pid in left {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One headless Chromium with a fresh profile, driven over WebDriver; everything it
/// started is killed when it is dropped.
pub struct Browser {
    pub client: Client,
    /// Declared after `client`: dropped last, so the session's connection goes first.
    driver: Driver,
}

impl Browser {
    /// Chromium with JavaScript on.
    pub async fn start() -> Browser {
        Self::launch(true).await
    }

    /// Chromium with JavaScript blocked for every site.
    pub async fn start_without_javascript() -> Browser {
        Self::launch(false).await
    }

    async fn launch(javascript: bool) -> Browser {
        let chromium = find_chromium();
        let mut driver = Driver::start();
        driver.wait_ready().await;
        let profile = driver.dir.path().join("profile");
        std::fs::create_dir_all(&profile).expect("profile dir");
        let client = tokio::time::timeout(
            DEADLINE,
            fantoccini::ClientBuilder::new(
                hyper_util::client::legacy::connect::HttpConnector::new(),
            )
            .capabilities(capabilities(&chromium, &profile, javascript))
            .connect(&driver.url()),
        )
        .await
        .unwrap_or_else(|_| panic!("no WebDriver session in time; log:\n{}", driver.log()))
        .unwrap_or_else(|error| {
            panic!(
                "WebDriver session with {} failed: {error}; log:\n{}",
                chromium.display(),
                driver.log()
            )
        });
        Browser { client, driver }
    }

    /// Every live process this browser started (see [`Driver::processes`]).
    pub fn processes(&self) -> Vec<u32> {
        self.driver.processes()
    }

    /// Ends the WebDriver session politely, then kills what is left (drop).
    pub async fn close(self) {
        let Browser { client, driver } = self;
        let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        drop(driver);
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|error| panic!("open {url}: {error}"));
    }

    /// The address bar.
    pub async fn url(&self) -> url::Url {
        self.client.current_url().await.expect("current URL")
    }

    /// Waits (deadline) until the address bar satisfies `check`; returns it.
    pub async fn wait_for_url(&self, what: &str, check: impl Fn(&url::Url) -> bool) -> url::Url {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let url = self.url().await;
            if check(&url) {
                return url;
            }
            assert!(
                Instant::now() < deadline,
                "the browser never got to {what}; it is at {url}; page:\n{}",
                self.text().await
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The element `css` selects, waiting for it (deadline).
    pub async fn element(&self, css: &str) -> fantoccini::elements::Element {
        let found = self
            .client
            .wait()
            .at_most(DEADLINE)
            .every(Duration::from_millis(25))
            .for_element(Locator::Css(css))
            .await;
        match found {
            Ok(element) => element,
            Err(error) => panic!(
                "no `{css}` ({error}) at {}; page:\n{}",
                self.url().await,
                self.text().await
            ),
        }
    }

    /// Clicks into the field `css` and types `text`, key by key as a person would.
    pub async fn type_into(&self, css: &str, text: &str) {
        let field = self.element(css).await;
        field.click().await.expect("focus field");
        field.send_keys(text).await.expect("type");
    }

    /// Clicks the element `css`.
    pub async fn click(&self, css: &str) {
        self.element(css)
            .await
            .click()
            .await
            .unwrap_or_else(|error| panic!("click `{css}`: {error}"));
    }

    /// The text of the element `css`.
    pub async fn text_of(&self, css: &str) -> String {
        self.element(css).await.text().await.expect("element text")
    }

    /// What the page shows (the `body` text; empty when there is none).
    pub async fn text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The page's source.
    pub async fn source(&self) -> String {
        self.client.source().await.unwrap_or_default()
    }

    /// Every cookie the browser holds for the current page, as WebDriver reports them
    /// (`HttpOnly` ones included).
    pub async fn cookies(&self) -> Vec<fantoccini::cookies::Cookie<'static>> {
        self.client.get_all_cookies().await.expect("cookies")
    }

    /// The cookie `name` for the current page, if the browser holds one.
    pub async fn cookie(&self, name: &str) -> Option<fantoccini::cookies::Cookie<'static>> {
        self.cookies()
            .await
            .into_iter()
            .find(|cookie| cookie.name() == name)
    }

    /// `document.cookie` as the page's scripts see it (JavaScript on).
    pub async fn document_cookie(&self) -> String {
        self.client
            .execute("return document.cookie;", Vec::new())
            .await
            .expect("run script")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// Reads a cookie's attributes as text, for messages and asserts.
pub fn describe(cookie: &fantoccini::cookies::Cookie<'_>) -> String {
    format!(
        "{} (path {:?}, domain {:?}, secure {:?}, httpOnly {:?}, sameSite {:?}, expires {:?})",
        cookie.name(),
        cookie.path(),
        cookie.domain(),
        cookie.secure(),
        cookie.http_only(),
        cookie.same_site(),
        cookie.expires_datetime().map(|at| at.unix_timestamp()),
    )
}

/// `GET path` to `addr` with only a `Cookie` header and browser-like navigation headers,
/// for replaying a cookie value outside the browser.
pub async fn get_with_cookie(
    addr: std::net::SocketAddr,
    path: &str,
    cookie: &str,
    navigation: bool,
) -> crate::common::Response {
    let mut text =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nCookie: {cookie}\r\n");
    if navigation {
        text.push_str(
            "Accept: text/html,application/xhtml+xml\r\nSec-Fetch-Mode: navigate\r\n\
             Sec-Fetch-Dest: document\r\nSec-Fetch-Site: none\r\n",
        );
    } else {
        text.push_str("Accept: application/json\r\n");
    }
    text.push_str("\r\n");
    raw(addr, text.as_bytes()).await
}
