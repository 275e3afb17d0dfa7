//! Brute-force regulation (SPEC §2 `[login]`, §4 429 rows): failures count per canonical
//! username and per client address; past `max_failures` within `window` the next attempt
//! gets 429 `too_many_attempts` with `Retry-After` for `lockout`, even with the right
//! password; a success resets the username's count; case changes do not dodge it; only a
//! trusted proxy's `X-Forwarded-For` entry names the client. When a lockout is over, the
//! failures before it no longer count; the per-address limit is separate and higher, so
//! one person's typos do not lock out everyone behind the same address; `gatehouse user
//! unlock` ends a lockout early; a lockout's start is logged and counted.

mod common;

use common::accounts::{add_user, login, post_form, post_json, PASSWORD};
use common::binary::{binary_config, cli_add_user, run_cli, write_config, Gatehouse};
use common::TestGateway;

const LIMITS: &str =
    "[login]\nmax_failures = 3\nmax_failures_per_address = 3\nwindow = \"1m\"\nlockout = \"2m\"\n";

fn assert_throttled(response: &common::Response) {
    response.assert_status(429);
    assert_eq!(response.error_code(), "too_many_attempts");
    let retry: u64 = response
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=120).contains(&retry), "{retry}");
}

#[tokio::test]
async fn after_max_failures_even_the_right_password_gets_429() {
    let gateway = TestGateway::start(LIMITS).await;
    add_user(&gateway, "alice", &[], PASSWORD).await;
    for _ in 0..3 {
        assert_eq!(login(&gateway, "alice", "wrong-password").await.status, 401);
    }
    assert_throttled(&login(&gateway, "alice", PASSWORD).await);
}

#[tokio::test]
async fn changing_the_case_of_the_username_does_not_dodge_the_lockout() {
    // Each attempt from another address (behind a trusted proxy), so only the username
    // counter can trip.
    let gateway = TestGateway::start(&format!(
        "{LIMITS}[headers]\ntrusted_proxies = [\"127.0.0.0/8\"]\n"
    ))
    .await;
    add_user(&gateway, "Bob", &[], PASSWORD).await;
    for (n, name) in ["bob", "BOB", "Bob"].iter().enumerate() {
        let body = serde_json::json!({"username": name, "password": "wrong-password"});
        let response = post_json(
            &gateway,
            "/auth/login",
            &body,
            &[&format!("X-Forwarded-For: 198.51.100.{n}")],
        )
        .await;
        assert_eq!(response.status, 401);
    }
    let body = serde_json::json!({"username": "bOb", "password": PASSWORD});
    assert_throttled(
        &post_json(
            &gateway,
            "/auth/login",
            &body,
            &["X-Forwarded-For: 198.51.100.77"],
        )
        .await,
    );
}

#[tokio::test]
async fn one_address_is_limited_across_usernames_including_unknown_ones() {
    let gateway = TestGateway::start(LIMITS).await;
    for name in ["nobody1", "nobody2", "not a valid name!"] {
        assert_eq!(login(&gateway, name, "wrong-password").await.status, 401);
    }
    add_user(&gateway, "carol", &[], PASSWORD).await;
    assert_throttled(&login(&gateway, "carol", PASSWORD).await);
}

#[tokio::test]
async fn the_token_endpoint_is_regulated_too() {
    let gateway = TestGateway::start(LIMITS).await;
    add_user(&gateway, "dave", &[], PASSWORD).await;
    for _ in 0..3 {
        let response = post_form(
            &gateway,
            "/auth/token",
            "grant_type=password&username=dave&password=nope-nope",
            &[],
        )
        .await;
        assert_eq!(response.status, 400);
        assert_eq!(response.error_code(), "invalid_grant");
    }
    let response = post_form(
        &gateway,
        "/auth/token",
        &format!(
            "grant_type=password&username=dave&password={}",
            PASSWORD.replace(' ', "+")
        ),
        &[],
    )
    .await;
    assert_throttled(&response);
}

#[tokio::test]
async fn a_success_resets_the_username_count() {
    let gateway = TestGateway::start("[login]\nmax_failures = 3\nwindow = \"1m\"\nlockout = \"2m\"\n[headers]\ntrusted_proxies = [\"127.0.0.0/8\"]\n").await;
    add_user(&gateway, "erin", &[], PASSWORD).await;
    // Spread over addresses so only the username counter matters.
    let from = |n: u8| format!("X-Forwarded-For: 198.51.100.{n}");
    let body = |password: &str| serde_json::json!({"username": "erin", "password": password});
    for n in 1..=2 {
        let response = post_json(
            &gateway,
            "/auth/login",
            &body("wrong-password"),
            &[&from(n)],
        )
        .await;
        assert_eq!(response.status, 401);
    }
    assert_eq!(
        post_json(&gateway, "/auth/login", &body(PASSWORD), &[&from(3)])
            .await
            .status,
        200
    );
    for n in 4..=6 {
        let response = post_json(
            &gateway,
            "/auth/login",
            &body("wrong-password"),
            &[&from(n)],
        )
        .await;
        assert_eq!(
            response.status, 401,
            "the count restarted after the success"
        );
    }
    assert_throttled(&post_json(&gateway, "/auth/login", &body(PASSWORD), &[&from(7)]).await);
}

#[tokio::test]
async fn client_written_forwarded_for_cannot_spread_attempts_over_fake_addresses() {
    let gateway = TestGateway::start(LIMITS).await;
    for n in 1..=3 {
        let body =
            serde_json::json!({"username": format!("victim{n}"), "password": "wrong-password"});
        let response = post_json(
            &gateway,
            "/auth/login",
            &body,
            &[&format!("X-Forwarded-For: 203.0.113.{n}")],
        )
        .await;
        assert_eq!(response.status, 401);
    }
    let body = serde_json::json!({"username": "victim9", "password": "wrong-password"});
    let response = post_json(
        &gateway,
        "/auth/login",
        &body,
        &["X-Forwarded-For: 203.0.113.99"],
    )
    .await;
    assert_throttled(&response);
}

#[tokio::test]
async fn behind_a_trusted_proxy_clients_are_counted_separately() {
    let gateway = TestGateway::start(&format!(
        "{LIMITS}[headers]\ntrusted_proxies = [\"127.0.0.0/8\"]\n"
    ))
    .await;
    for n in 1..=3 {
        let body =
            serde_json::json!({"username": format!("guess{n}"), "password": "wrong-password"});
        let response = post_json(
            &gateway,
            "/auth/login",
            &body,
            &["X-Forwarded-For: 203.0.113.1"],
        )
        .await;
        assert_eq!(response.status, 401);
    }
    let body = serde_json::json!({"username": "guess4", "password": "wrong-password"});
    assert_throttled(
        &post_json(
            &gateway,
            "/auth/login",
            &body,
            &["X-Forwarded-For: 203.0.113.1"],
        )
        .await,
    );
    // Another client behind the same proxy is unaffected; the proxy's own entry is the
    // last one, so a client-written first entry changes nothing.
    let response = post_json(
        &gateway,
        "/auth/login",
        &body,
        &["X-Forwarded-For: 203.0.113.1, 203.0.113.2"],
    )
    .await;
    assert_eq!(response.status, 401);
}

#[tokio::test]
async fn concurrent_guesses_cannot_exceed_the_limit() {
    let gateway = TestGateway::start(LIMITS).await;
    add_user(&gateway, "frank", &[], PASSWORD).await;
    let attempts = (0..20).map(|_| login(&gateway, "frank", "wrong-password"));
    let responses = futures_util::future::join_all(attempts).await;
    let refused = responses.iter().filter(|r| r.status == 429).count();
    let tried = responses.iter().filter(|r| r.status == 401).count();
    assert_eq!(tried, 3, "only max_failures guesses were checked");
    assert_eq!(refused, 17);
}

#[tokio::test]
async fn when_the_lockout_is_over_the_right_password_works_again() {
    // A lockout shorter than the window: the failures before the lockout must not lock
    // the right password out again when it ends (field trial: they did, because the
    // address tripped first and the username kept its count).
    let gateway = TestGateway::start(
        "[login]\nmax_failures = 3\nmax_failures_per_address = 3\nwindow = \"15m\"\nlockout = \"2s\"\n",
    )
    .await;
    add_user(&gateway, "frank", &[], PASSWORD).await;
    for _ in 0..3 {
        assert_eq!(login(&gateway, "frank", "wrong-password").await.status, 401);
    }
    let locked = login(&gateway, "frank", PASSWORD).await;
    locked.assert_status(429);
    let retry: u64 = locked
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    // The lockout's end is the behaviour under test: wait it out.
    tokio::time::sleep(std::time::Duration::from_millis(retry * 1000 + 300)).await;
    login(&gateway, "frank", PASSWORD).await.assert_status(200);
}

#[tokio::test]
async fn one_persons_typos_do_not_lock_out_everyone_behind_the_same_address() {
    // The default per-address limit (50) is separate from the per-username one.
    let gateway =
        TestGateway::start("[login]\nmax_failures = 3\nwindow = \"1m\"\nlockout = \"2m\"\n").await;
    add_user(&gateway, "typist", &[], PASSWORD).await;
    add_user(&gateway, "neighbour", &[], PASSWORD).await;
    for _ in 0..3 {
        assert_eq!(
            login(&gateway, "typist", "wrong-password").await.status,
            401
        );
    }
    assert_throttled(&login(&gateway, "typist", PASSWORD).await);
    login(&gateway, "neighbour", PASSWORD)
        .await
        .assert_status(200);
}

#[tokio::test]
async fn the_per_address_limit_still_stops_spraying_across_usernames() {
    let gateway = TestGateway::start(
        "[login]\nmax_failures = 3\nmax_failures_per_address = 5\nwindow = \"1m\"\nlockout = \"2m\"\n",
    )
    .await;
    add_user(&gateway, "target", &[], PASSWORD).await;
    for n in 0..5 {
        let name = format!("spray{n}");
        assert_eq!(login(&gateway, &name, "wrong-password").await.status, 401);
    }
    assert_throttled(&login(&gateway, "target", PASSWORD).await);
}

/// The real binary: a lockout's start is a WARN line naming the username (never the
/// password) and a metric; `gatehouse user unlock NAME` on the command line ends it.
#[tokio::test]
async fn a_lockout_is_logged_counted_and_ended_by_user_unlock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &binary_config(
            dir.path(),
            "[login]\nmax_failures = 2\nwindow = \"1m\"\nlockout = \"2m\"\n",
        ),
    );
    let secret = ("GATEHOUSE_SECRET", common::SECRET);
    let mut served = Gatehouse::start(dir.path(), &config, &[secret]).await;
    cli_add_user(&config, "Grace", &[], PASSWORD);
    for _ in 0..2 {
        let response = served
            .post_json(
                "/auth/login",
                &serde_json::json!({"username": "grace", "password": "wrong-password-9"}),
                &[],
            )
            .await;
        assert_eq!(response.status, 401);
    }
    let response = served
        .post_json(
            "/auth/login",
            &serde_json::json!({"username": "GRACE", "password": PASSWORD}),
            &[],
        )
        .await;
    assert_throttled(&response);

    // The log is written by a background writer: poll for the line.
    let has_line = || served.log().contains("login lockout started");
    assert!(
        common::eventually(std::time::Duration::from_secs(10), has_line).await,
        "no lockout WARN line in:\n{}",
        served.log()
    );
    let log = served.log();
    let line = log
        .lines()
        .find(|line| line.contains("login lockout started"))
        .expect("the line");
    let entry: serde_json::Value = serde_json::from_str(line).expect("json log line");
    assert_eq!(entry["level"], "WARN", "{line}");
    assert_eq!(entry["username"], "grace", "{line}");
    assert!(entry["until"].as_str().is_some(), "{line}");
    assert!(!log.contains("wrong-password-9") && !log.contains(PASSWORD));
    let metrics = common::request(served.ops_addr, "GET", "/metrics", &[], b"").await;
    let metrics = String::from_utf8_lossy(&metrics.body).to_string();
    assert!(
        metrics.contains("gatehouse_lockouts_total{kind=\"username\"} 1"),
        "{metrics}"
    );

    let unlocked = run_cli(&config, &["user", "unlock", "GRACE"], "", &[secret]);
    assert_eq!(unlocked.code, 0, "{unlocked:?}");
    assert!(unlocked.stderr.contains("cleared"), "{unlocked:?}");
    // The gateway's log says which user the admin command changed.
    let admin_line = || {
        served.log().lines().any(|line| {
            line.contains("admin command applied")
                && line.contains("\"op\":\"unlock\"")
                && line.contains("\"username\":\"GRACE\"")
        })
    };
    assert!(
        common::eventually(std::time::Duration::from_secs(10), admin_line).await,
        "{}",
        served.log()
    );
    let response = served
        .post_json(
            "/auth/login",
            &serde_json::json!({"username": "grace", "password": PASSWORD}),
            &[],
        )
        .await;
    response.assert_status(200);
    let bad = run_cli(&config, &["user", "unlock", "not a name"], "", &[secret]);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert_eq!(served.terminate().await, Some(0));
}

#[tokio::test]
async fn one_address_cannot_register_without_limit() {
    let gateway = TestGateway::start(
        "[registration]\nenabled = true\n[login]\nmax_failures_per_address = 2\nwindow = \"1m\"\nlockout = \"1m\"\n",
    )
    .await;
    for n in 0..2 {
        let body = serde_json::json!({"username": format!("new{n}"), "password": PASSWORD});
        post_json(&gateway, "/auth/register", &body, &[])
            .await
            .assert_status(201);
    }
    let body = serde_json::json!({"username": "new9", "password": PASSWORD});
    let response = post_json(&gateway, "/auth/register", &body, &[]).await;
    response.assert_status(429);
    assert_eq!(response.error_code(), "too_many_attempts");
    assert!(response.header("retry-after").is_some());
    // Logins from that address are not affected.
    login(&gateway, "new0", PASSWORD).await.assert_status(200);
}
