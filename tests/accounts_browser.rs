//! Browser sessions at the accounts level (SPEC §10), on a real sled store in a temp dir:
//! sign-in starts a new session every time; the cookie authenticates from memory; idle,
//! absolute and remember-me expiry; sign-out, a password change, a disable and a removal
//! end it, and `user enable` does not bring it back; sign-in has the same errors and
//! lockout as login, counted together; the last use reaches the store in the background;
//! the store keeps the cookie's hash, never the cookie; `[browser]` reloads (SPEC §6).

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse::accounts::{AccountError, Accounts};
use gatehouse::config::BrowserSettings;
use gatehouse::error::TokenRejection;
use gatehouse::store::Store;
use sha2::Digest as _;

const PASSWORD: &str = "correct horse battery";
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn pw(text: &str) -> zeroize::Zeroizing<String> {
    zeroize::Zeroizing::new(text.to_string())
}

fn config(dir: &std::path::Path, browser: &str) -> gatehouse::Config {
    let text = format!(
        "[store]\npath = \"{}\"\n[passwords]\nmemory_kib = 64\niterations = 1\n\
         [login]\nmax_failures = 3\n\
         [upstreams.default]\nurl = \"http://127.0.0.1:9\"\n\
         [browser]\nenabled = true\npublic_url = \"https://app.example.com\"\n{browser}",
        dir.join("data").display()
    );
    gatehouse::config::parse(&text).expect("valid config")
}

struct Setup {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    accounts: Accounts,
    browser: BrowserSettings,
}

async fn setup(browser: &str) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path(), browser);
    let store = gatehouse::store::open(&config.store).await.expect("store");
    let accounts = Accounts::open(store.clone(), &config)
        .await
        .expect("accounts");
    accounts
        .directory()
        .add("alice", vec!["dev".into()], pw(PASSWORD))
        .await
        .expect("add");
    Setup {
        _dir: dir,
        store,
        accounts,
        browser: config.browser.clone(),
    }
}

impl Setup {
    async fn sign_in(&self, remember_me: bool) -> gatehouse::accounts::BrowserSignIn {
        self.accounts
            .sign_in("alice", pw(PASSWORD), remember_me, CLIENT, &self.browser)
            .await
            .expect("sign in")
    }

    fn check(&self, cookie: &str) -> Result<gatehouse::accounts::Identity, TokenRejection> {
        self.accounts.authenticate_session(cookie, &self.browser)
    }

    fn check_at(
        &self,
        cookie: &str,
        now: u64,
    ) -> Result<gatehouse::accounts::Identity, TokenRejection> {
        self.accounts
            .authenticate_session_at(cookie, &self.browser, now)
    }

    async fn alice_id(&self) -> String {
        self.store
            .find_user_by_name("alice")
            .await
            .expect("find")
            .expect("alice")
            .id
    }
}

#[tokio::test]
async fn each_sign_in_starts_a_new_session_whose_cookie_authenticates() {
    let s = setup("").await;
    let first = s.sign_in(false).await;
    let second = s.sign_in(false).await;
    assert_ne!(
        first.cookie_value, second.cookie_value,
        "a new id every time"
    );
    for sign_in in [&first, &second] {
        assert_eq!(sign_in.cookie_value.len(), 43, "256 bits, base64url");
        assert_eq!(
            sign_in.max_age, None,
            "a session cookie without remember-me"
        );
    }
    let one = s.check(&first.cookie_value).expect("first authenticates");
    let two = s.check(&second.cookie_value).expect("second authenticates");
    assert_ne!(one.sid(), two.sid());
    assert_eq!(one.username(), "alice");
    assert_eq!(one.roles(), ["dev".to_string()]);
    assert_eq!(one.sub(), s.alice_id().await);
    assert!(one.is_browser_session());
    assert!(!one.is_client());
    let lifetime = one.exp() - one.iat();
    assert_eq!(lifetime, 12 * 3600, "expiration");
    // The session id (sent upstream in assertions) is not the cookie.
    assert_ne!(one.sid(), Some(first.cookie_value.as_str()));

    // The store keeps the SHA-256 of the cookie, never the cookie itself.
    let sessions = s
        .store
        .sessions_of(&s.alice_id().await)
        .await
        .expect("sessions");
    let hashes: Vec<[u8; 32]> = sessions
        .iter()
        .filter_map(|session| session.browser.as_ref().map(|b| b.cookie_hash))
        .collect();
    let expected: [u8; 32] = sha2::Sha256::digest(first.cookie_value.as_bytes()).into();
    assert!(hashes.contains(&expected), "{sessions:?}");
    let exported = format!("{:?}", s.store.export().await.expect("export"));
    let mut lines = Vec::new();
    gatehouse::store::snapshot::write(
        &mut lines,
        &gatehouse::store::snapshot::Header::now("sled"),
        &s.store.export().await.expect("export"),
    )
    .expect("jsonl");
    let jsonl = String::from_utf8(lines).expect("utf-8");
    for text in [&exported, &jsonl] {
        assert!(
            !text.contains(&first.cookie_value),
            "the cookie value was stored"
        );
    }
    assert!(
        jsonl.contains("cookie_hash"),
        "export carries browser sessions"
    );
}

#[tokio::test]
async fn values_that_were_never_issued_are_refused() {
    let s = setup("").await;
    let sign_in = s.sign_in(false).await;
    let mut altered = sign_in.cookie_value.clone();
    altered.replace_range(0..1, if altered.starts_with('A') { "B" } else { "A" });
    assert_eq!(s.check(&altered).err(), Some(TokenRejection::Revoked));
    for malformed in ["", "short", &format!("{}=", sign_in.cookie_value), "a b"] {
        assert_eq!(
            s.check(malformed).err(),
            Some(TokenRejection::Malformed),
            "{malformed:?}"
        );
    }
}

#[tokio::test]
async fn an_unused_session_ends_after_inactivity_and_every_session_at_its_expiration() {
    let s = setup("inactivity = \"10m\"\nexpiration = \"1h\"\n").await;
    let cookie = s.sign_in(false).await.cookie_value;
    let start = s.check(&cookie).expect("fresh").iat();
    // Used within inactivity, again and again: live; each use pushes the deadline.
    for minutes in [9, 18, 27, 36, 45, 54] {
        assert!(
            s.check_at(&cookie, start + minutes * 60).is_ok(),
            "used at +{minutes}m"
        );
    }
    // Still used every 9 minutes, but past the absolute expiry.
    assert_eq!(
        s.check_at(&cookie, start + 3600).err(),
        Some(TokenRejection::Revoked),
        "expiration"
    );
    // Unused for inactivity: ended.
    let idle = s.sign_in(false).await.cookie_value;
    let start = s.check(&idle).expect("fresh").iat();
    assert!(s.check_at(&idle, start + 599).is_ok());
    assert_eq!(
        s.check_at(&idle, start + 599 + 600).err(),
        Some(TokenRejection::Revoked),
        "inactivity"
    );
}

#[tokio::test]
async fn remember_me_has_no_inactivity_limit_only_its_lifetime() {
    let s = setup("inactivity = \"10m\"\nexpiration = \"1h\"\nremember_me = \"14d\"\n").await;
    let sign_in = s.sign_in(true).await;
    assert_eq!(sign_in.max_age, Some(Duration::from_secs(14 * 86_400)));
    let identity = s.check(&sign_in.cookie_value).expect("fresh");
    assert_eq!(identity.exp() - identity.iat(), 14 * 86_400);
    let start = identity.iat();
    assert!(s
        .check_at(&sign_in.cookie_value, start + 13 * 86_400)
        .is_ok());
    assert_eq!(
        s.check_at(&sign_in.cookie_value, start + 14 * 86_400).err(),
        Some(TokenRejection::Revoked)
    );

    // With the box hidden ("0s"), a ticked box changes nothing.
    let s = setup("expiration = \"1h\"\nremember_me = \"0s\"\n").await;
    let sign_in = s.sign_in(true).await;
    assert_eq!(sign_in.max_age, None);
    let identity = s.check(&sign_in.cookie_value).expect("fresh");
    assert_eq!(identity.exp() - identity.iat(), 3600);
}

#[tokio::test]
async fn sign_out_ends_the_session_and_is_idempotent() {
    let s = setup("").await;
    let cookie = s.sign_in(false).await.cookie_value;
    let other = s.sign_in(false).await.cookie_value;
    s.accounts.sign_out(&cookie).await.expect("sign out");
    assert_eq!(s.check(&cookie).err(), Some(TokenRejection::Revoked));
    assert!(s.check(&other).is_ok(), "only the session signed out");
    s.accounts.sign_out(&cookie).await.expect("again");
    s.accounts.sign_out("garbage").await.expect("garbage");
    s.accounts
        .sign_out(&gatehouse::accounts::browser::new_cookie_value())
        .await
        .expect("unknown");
    let sessions = s
        .store
        .sessions_of(&s.alice_id().await)
        .await
        .expect("sessions");
    assert_eq!(
        sessions.iter().filter(|s| s.ended_at.is_some()).count(),
        1,
        "ended in the store: {sessions:?}"
    );
}

#[tokio::test]
async fn a_password_change_a_disable_and_a_removal_end_sessions_for_good() {
    let s = setup("").await;
    let cookie = s.sign_in(false).await.cookie_value;
    s.accounts
        .directory()
        .set_password("alice", pw("another long password"))
        .await
        .expect("passwd");
    assert_eq!(s.check(&cookie).err(), Some(TokenRejection::Revoked));

    let cookie = s
        .accounts
        .sign_in(
            "alice",
            pw("another long password"),
            false,
            CLIENT,
            &s.browser,
        )
        .await
        .expect("sign in")
        .cookie_value;
    assert!(s.check(&cookie).is_ok());
    s.accounts
        .directory()
        .set_enabled("alice", false)
        .await
        .expect("disable");
    assert_eq!(s.check(&cookie).err(), Some(TokenRejection::Revoked));
    s.accounts
        .directory()
        .set_enabled("alice", true)
        .await
        .expect("enable");
    assert_eq!(
        s.check(&cookie).err(),
        Some(TokenRejection::Revoked),
        "user enable does not bring it back"
    );

    let cookie = s
        .accounts
        .sign_in(
            "alice",
            pw("another long password"),
            false,
            CLIENT,
            &s.browser,
        )
        .await
        .expect("sign in")
        .cookie_value;
    assert!(s.check(&cookie).is_ok());
    s.accounts
        .directory()
        .remove("alice")
        .await
        .expect("remove");
    assert_eq!(s.check(&cookie).err(), Some(TokenRejection::Revoked));
    assert_eq!(s.accounts.directory().view().browser_session_count(), 0);
}

#[tokio::test]
async fn sign_in_has_the_errors_of_login_and_shares_its_lockout() {
    let s = setup("").await;
    s.accounts
        .directory()
        .add("bob", vec![], pw(PASSWORD))
        .await
        .expect("add bob");
    let sign_in = |name: &'static str, password: &'static str| {
        s.accounts
            .sign_in(name, pw(password), false, CLIENT, &s.browser)
    };
    assert_eq!(
        sign_in("alice", "wrong password").await.err(),
        Some(AccountError::InvalidCredentials)
    );
    assert_eq!(
        sign_in("nobody", PASSWORD).await.err(),
        Some(AccountError::InvalidCredentials)
    );
    assert_eq!(
        sign_in("not a valid name!", PASSWORD).await.err(),
        Some(AccountError::InvalidCredentials)
    );
    s.accounts
        .directory()
        .set_enabled("bob", false)
        .await
        .expect("disable bob");
    assert_eq!(
        sign_in("bob", "wrong password").await.err(),
        Some(AccountError::InvalidCredentials),
        "disabled is said only to whoever knows the password"
    );
    assert_eq!(
        sign_in("bob", PASSWORD).await.err(),
        Some(AccountError::AccountDisabled)
    );

    // max_failures = 3, counted together: two failed logins and one failed sign-in.
    for _ in 0..2 {
        assert_eq!(
            s.accounts
                .login("alice", pw("wrong password"), CLIENT)
                .await
                .err(),
            Some(AccountError::InvalidCredentials)
        );
    }
    assert!(matches!(
        sign_in("alice", PASSWORD).await.err(),
        Some(AccountError::TooManyAttempts { .. })
    ));
    assert!(matches!(
        s.accounts.login("alice", pw(PASSWORD), CLIENT).await.err(),
        Some(AccountError::TooManyAttempts { .. })
    ));
}

#[tokio::test]
async fn the_last_use_reaches_the_store_in_the_background_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path(), "inactivity = \"10m\"\n");
    let store = gatehouse::store::open(&config.store).await.expect("store");
    let accounts = Accounts::open(store.clone(), &config)
        .await
        .expect("accounts");
    accounts
        .directory()
        .add("alice", vec![], pw(PASSWORD))
        .await
        .expect("add");
    let browser = config.browser.clone();
    let cookie = accounts
        .sign_in("alice", pw(PASSWORD), false, CLIENT, &browser)
        .await
        .expect("sign in")
        .cookie_value;
    let identity = accounts
        .authenticate_session(&cookie, &browser)
        .expect("fresh");
    let user_id = identity.sub().to_string();
    let signed_in = identity.iat();
    // A use a tenth of inactivity (60 s) later is written; poll the store for it.
    let used = signed_in + 60;
    accounts
        .authenticate_session_at(&cookie, &browser, used)
        .expect("used");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sessions = store.sessions_of(&user_id).await.expect("sessions");
        let last_seen = sessions
            .iter()
            .find_map(|session| session.browser.as_ref())
            .map(|b| b.last_seen);
        if last_seen == Some(used) {
            break;
        }
        assert!(Instant::now() < deadline, "last_seen stayed {last_seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A use soon after is not written again (coarse: at most one write per 60 s).
    accounts
        .authenticate_session_at(&cookie, &browser, used + 30)
        .expect("used");

    // A restart rebuilds the index from the store: the session lives on, idle from the
    // last recorded use (`used`; the unrecorded use at +30 s died with the process).
    drop(accounts);
    let accounts = Accounts::open(store.clone(), &config)
        .await
        .expect("reopen");
    assert_eq!(
        accounts
            .authenticate_session_at(&cookie, &browser, used + 600)
            .err(),
        Some(TokenRejection::Revoked),
        "idle from the recorded last use"
    );
    assert!(accounts
        .authenticate_session_at(&cookie, &browser, used + 599)
        .is_ok());
}

#[tokio::test]
async fn browser_settings_reload_without_a_restart_and_a_bad_section_is_refused() {
    let section = |url: &str| {
        format!("[browser]\nenabled = true\npublic_url = \"{url}\"\ninactivity = \"1h\"\n")
    };
    let gateway = common::TestGateway::start(&section("http://127.0.0.1:1")).await;
    // The port is known only now: rewrite public_url and reload, as browser tests do.
    let url = format!("http://127.0.0.1:{}", gateway.addr.port());
    gateway
        .rewrite_config("", &section(&url))
        .expect("reloaded");
    gateway
        .rewrite_config("", "[browser]\nenabled = false\n")
        .expect("reloaded");
    let refused = gateway
        .rewrite_config("", &section("http://app.example.com"))
        .expect_err("refused");
    assert!(refused.contains("browser.public_url"), "{refused}");
}
