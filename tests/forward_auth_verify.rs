//! `/auth/verify` spoken to directly, on the REAL binary (SPEC §4): the forward-auth
//! contract a proxy relies on, without a proxy in the way.
//!
//! - From a peer outside `trusted_proxies` (the shipped `[]`), headers naming the original
//!   request are refused with 403 `forbidden` and a WARN naming the fix, in every spelling;
//!   ignoring them would decide about `/auth/verify` instead of the proxied request.
//! - From a trusted peer the route rules apply to the forwarded method + URI: public
//!   (200 with every identity header, empty when anonymous), deny, roles, methods,
//!   unmatched; `X-Original-*` work too, and the two families must agree.
//! - Only 200, 401 or 403 ever come back (nginx turns anything else into 500): malformed
//!   forwarded values, duplicate headers, bodies, odd methods.
//! - The access line of a verify call carries its user and decision.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::accounts::claims_of;
use common::binary::{serve_with_users, Gatehouse};
use common::{bearer, EchoUpstream, Response};

const ROUTES: &str = r#"
[[routes]]
path = "/public/**"
access = "public"

[[routes]]
path = "/static/**"
methods = ["GET", "HEAD"]
access = "public"

[[routes]]
path = "/closed/**"
access = "deny"

[[routes]]
path = "/admin/**"
roles = ["admin"]
"#;

const TRUSTED: &str = "[headers]\ntrusted_proxies = [\"127.0.0.1/32\"]\n";

/// A gateway (the binary) with `extra` config and users alice (staff), root (admin) and
/// nobody (no roles). The temp dir must outlive it.
async fn start(extra: &str) -> (Gatehouse, Tokens, tempfile::TempDir, EchoUpstream) {
    let upstream = EchoUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (served, tokens) = serve_with_users(
        dir.path(),
        upstream.addr,
        &format!("{extra}\n{ROUTES}"),
        &[("alice", &["staff"]), ("root", &["admin"]), ("nobody", &[])],
    )
    .await;
    let [alice, root, nobody] = <[String; 3]>::try_from(tokens).expect("three tokens");
    (
        served,
        Tokens {
            alice,
            root,
            nobody,
        },
        dir,
        upstream,
    )
}

struct Tokens {
    alice: String,
    root: String,
    nobody: String,
}

/// `GET /auth/verify` with header lines.
async fn verify(addr: SocketAddr, headers: &[&str]) -> Response {
    common::request(addr, "GET", "/auth/verify", headers, b"").await
}

/// `GET /auth/verify` as a trusted proxy asks about `method uri`, with a token if any.
async fn ask(addr: SocketAddr, method: &str, uri: &str, token: Option<&str>) -> Response {
    let method = format!("X-Forwarded-Method: {method}");
    let uri = format!("X-Forwarded-Uri: {uri}");
    let authorization = token.map(bearer);
    let mut headers = vec![method.as_str(), uri.as_str()];
    headers.extend(authorization.as_deref());
    verify(addr, &headers).await
}

#[track_caller]
fn assert_answer(response: &Response, status: u16, error: &str, what: &str) {
    assert_eq!(
        response.status,
        status,
        "{what}: {}",
        String::from_utf8_lossy(&response.body)
    );
    if !error.is_empty() {
        assert_eq!(response.error_code(), error, "{what}");
        assert_eq!(
            response.header("content-type"),
            Some("application/json"),
            "{what}"
        );
    }
}

/// The identity headers of a 200, `None` for one that is absent.
fn identity(response: &Response) -> [Option<&str>; 3] {
    [
        response.header("x-auth-user"),
        response.header("x-auth-subject"),
        response.header("x-auth-roles"),
    ]
}

/// The JSON log lines once `count` of them satisfy `wanted` (polled with a deadline).
async fn log_lines(
    served: &Gatehouse,
    count: usize,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lines: Vec<serde_json::Value> = served
            .log()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .filter(|line| wanted(line))
            .collect();
        if lines.len() >= count || Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_request_headers_from_an_untrusted_peer_are_refused_with_a_warning() {
    // The shipped default: trusted_proxies = [] (no [headers] section at all).
    let (served, tokens, _dir, _upstream) = start("").await;
    let addr = served.addr;
    let as_alice = bearer(&tokens.alice);

    // Every spelling of every header that names the original request: 403 `forbidden`,
    // also for a deny route (which answered 200 to any signed-in user in the field trial)
    // and for a public one (which demanded a token).
    for header in [
        "X-Forwarded-Uri: /closed/x",
        "X-Forwarded-Method: GET",
        "X-Original-URI: /closed/x",
        "x-original-method: DELETE",
        "X_Forwarded_Uri: /closed/x",
        "X-FORWARDED-URI: /admin/panel",
    ] {
        let response = verify(addr, &[header, &as_alice]).await;
        assert_answer(&response, 403, "forbidden", header);
        assert_eq!(identity(&response), [None, None, None], "{header}");
    }
    let response = verify(addr, &["X-Forwarded-Uri: /public/page"]).await;
    assert_answer(&response, 403, "forbidden", "public route, anonymous");

    // Without them, verify still answers for the token alone.
    let response = verify(addr, &[&as_alice]).await;
    assert_answer(&response, 200, "", "token only");
    assert_eq!(response.header("x-auth-user"), Some("alice"));
    let response = verify(addr, &[]).await;
    assert_answer(&response, 401, "unauthorized", "no token");

    // The WARN names the fix and carries no secret.
    let warnings = log_lines(&served, 1, |line| {
        line["level"] == "WARN"
            && line["message"]
                .as_str()
                .is_some_and(|m| m.contains("forward-auth"))
    })
    .await;
    assert!(!warnings.is_empty(), "no WARN line:\n{}", served.log());
    let warning = warnings[0].to_string();
    assert!(
        warning.contains("headers.trusted_proxies"),
        "the WARN does not name the fix: {warning}"
    );
    assert!(
        warning.contains("127.0.0.1"),
        "the WARN names the peer: {warning}"
    );
    let log = served.log();
    assert!(!log.contains(&tokens.alice), "a token reached the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_gets_the_route_rules_applied_to_the_forwarded_request() {
    let (served, tokens, _dir, _upstream) = start(TRUSTED).await;
    let addr = served.addr;
    let alice_sub = claims_of(&tokens.alice)["sub"]
        .as_str()
        .expect("sub")
        .to_string();

    // Public, anonymous: 200 with every identity header present and EMPTY, so a proxy
    // copying them overwrites a client's own copy (which verify never echoes).
    let response = verify(
        addr,
        &[
            "X-Forwarded-Method: GET",
            "X-Forwarded-Uri: /public/page?x=1",
            "X-Auth-User: admin",
        ],
    )
    .await;
    assert_answer(&response, 200, "", "public, anonymous");
    assert_eq!(identity(&response), [Some(""), Some(""), Some("")]);
    // Public with a valid token: the identity; with a bad one: anonymous, as proxying does.
    let response = ask(addr, "GET", "/public/page", Some(&tokens.alice)).await;
    assert_answer(&response, 200, "", "public, alice");
    assert_eq!(
        identity(&response),
        [Some("alice"), Some(alice_sub.as_str()), Some("staff")]
    );
    let response = ask(addr, "GET", "/public/page", Some("not.a.token")).await;
    assert_answer(&response, 200, "", "public, bad token");
    assert_eq!(identity(&response), [Some(""), Some(""), Some("")]);

    // Deny: 403 for everyone.
    for token in [None, Some(tokens.root.as_str())] {
        let response = ask(addr, "GET", "/closed/x", token).await;
        assert_answer(&response, 403, "forbidden", "deny route");
    }
    // Roles: none or the wrong one → 403 insufficient_scope; no token → 401.
    for token in [&tokens.nobody, &tokens.alice] {
        let response = ask(addr, "GET", "/admin/panel", Some(token)).await;
        assert_answer(&response, 403, "insufficient_scope", "admin without role");
    }
    let response = ask(addr, "GET", "/admin/panel", None).await;
    assert_answer(&response, 401, "unauthorized", "admin anonymous");
    let response = ask(addr, "GET", "/admin/panel", Some(&tokens.root)).await;
    assert_answer(&response, 200, "", "admin as root");
    assert_eq!(response.header("x-auth-user"), Some("root"));
    assert_eq!(response.header("x-auth-roles"), Some("admin"));
    // A user without roles gets an empty roles header, not none.
    let response = ask(addr, "GET", "/app", Some(&tokens.nobody)).await;
    assert_answer(&response, 200, "", "nobody on an unmatched route");
    assert_eq!(response.header("x-auth-roles"), Some(""));

    // Unmatched: a valid token is required.
    assert_answer(
        &ask(addr, "GET", "/app/data", None).await,
        401,
        "unauthorized",
        "unmatched",
    );
    assert_answer(
        &ask(addr, "GET", "/app/data", Some("not.a.token")).await,
        401,
        "invalid_token",
        "unmatched, bad token",
    );
    // Methods count: /static/** is public for GET and HEAD only.
    assert_answer(
        &ask(addr, "GET", "/static/a.css", None).await,
        200,
        "",
        "static GET",
    );
    assert_answer(
        &ask(addr, "POST", "/static/a.css", None).await,
        401,
        "unauthorized",
        "static POST",
    );
    // The URI is normalized before matching, like a proxied path.
    assert_answer(
        &ask(addr, "GET", "/public/../closed/x", Some(&tokens.root)).await,
        403,
        "forbidden",
        "dot segments",
    );

    // nginx ingress style: X-Original-Method / X-Original-URI.
    let response = verify(
        addr,
        &[
            "X-Original-Method: GET",
            "X-Original-URI: /closed/x",
            &bearer(&tokens.root),
        ],
    )
    .await;
    assert_answer(&response, 403, "forbidden", "X-Original-URI deny");
    let response = verify(addr, &["X-Original-URI: /public/x"]).await;
    assert_answer(&response, 200, "", "X-Original-URI public");
    // Both families: equal values are fine, different ones are refused (neither wins).
    let response = verify(
        addr,
        &["X-Forwarded-Uri: /public/x", "X-Original-URI: /public/x"],
    )
    .await;
    assert_answer(&response, 200, "", "both families agree");
    let response = verify(
        addr,
        &["X-Forwarded-Uri: /public/x", "X-Original-URI: /admin/x"],
    )
    .await;
    assert_answer(&response, 403, "invalid_request", "URIs disagree");
    let response = verify(
        addr,
        &[
            "X-Forwarded-Method: GET",
            "X-Original-Method: POST",
            "X-Forwarded-Uri: /static/a.css",
        ],
    )
    .await;
    assert_answer(&response, 403, "invalid_request", "methods disagree");

    // The access line of each verify call: user (or -) and the decision.
    let calls = [
        (
            "verify-public",
            "GET",
            "/public/p",
            None,
            "-",
            "public",
            200,
        ),
        (
            "verify-alice",
            "GET",
            "/app/x",
            Some(&tokens.alice),
            "alice",
            "authenticated",
            200,
        ),
        (
            "verify-deny",
            "GET",
            "/closed/x",
            Some(&tokens.root),
            "-",
            "denied",
            403,
        ),
        (
            "verify-scope",
            "GET",
            "/admin/x",
            Some(&tokens.alice),
            "alice",
            "denied",
            403,
        ),
        (
            "verify-anon",
            "GET",
            "/app/x",
            None,
            "-",
            "unauthenticated",
            401,
        ),
        ("verify-bad", "GET", "/%zz", None, "-", "rejected", 403),
    ];
    for (id, method, uri, token, _, _, status) in calls {
        let request_id = format!("X-Request-Id: {id}");
        let method = format!("X-Forwarded-Method: {method}");
        let uri = format!("X-Forwarded-Uri: {uri}");
        let authorization = token.map(|t| bearer(t));
        let mut headers = vec![request_id.as_str(), method.as_str(), uri.as_str()];
        headers.extend(authorization.as_deref());
        assert_eq!(verify(addr, &headers).await.status, status, "{id}");
    }
    let access = log_lines(&served, calls.len(), |line| {
        line["target"] == "gatehouse::access"
            && line["request_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("verify-"))
    })
    .await;
    for (id, _, _, _, user, decision, status) in calls {
        let line = access
            .iter()
            .find(|line| line["request_id"] == id)
            .unwrap_or_else(|| panic!("no access line for {id}:\n{}", served.log()));
        assert_eq!(line["path"], "/auth/verify", "{line}");
        assert_eq!(line["status"], status, "{line}");
        assert_eq!(line["user"], user, "{line}");
        assert_eq!(line["decision"], decision, "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_answers_only_200_401_or_403() {
    let (served, tokens, _dir, _upstream) = start(TRUSTED).await;
    let addr = served.addr;
    let as_alice = bearer(&tokens.alice);

    // Malformed forwarded method or URI: 403 invalid_request (it was 400).
    for uri in [
        "/a/../../etc/passwd",
        "/a%2Fb",
        "/a%5Cb",
        "/a%zz",
        "/a\\b",
        "*",
        "example.com:443",
        "ftp://example.com/x",
        "",
    ] {
        let header = format!("X-Forwarded-Uri: {uri}");
        let response = verify(addr, &[&header, &as_alice]).await;
        assert_answer(&response, 403, "invalid_request", &header);
    }
    for method in ["G(E)T", "GET POST", ""] {
        let header = format!("X-Forwarded-Method: {method}");
        let response = verify(addr, &[&header, "X-Forwarded-Uri: /public/x"]).await;
        assert_answer(&response, 403, "invalid_request", &header);
    }
    // Two copies of one header: ambiguous, refused.
    let response = verify(
        addr,
        &["X-Forwarded-Uri: /public/x", "X-Forwarded-Uri: /closed/x"],
    )
    .await;
    assert_answer(&response, 403, "invalid_request", "two X-Forwarded-Uri");
    // Two Authorization headers are 400 elsewhere; here 403 invalid_request.
    let second = "Authorization: Bearer other";
    let response = ask(addr, "GET", "/app/x", Some(&tokens.alice)).await;
    assert_answer(&response, 200, "", "one Authorization");
    let response = verify(addr, &["X-Forwarded-Uri: /app/x", &as_alice, second]).await;
    assert_answer(&response, 403, "invalid_request", "two Authorization");
    let response = verify(addr, &[&as_alice, second]).await;
    assert_answer(
        &response,
        403,
        "invalid_request",
        "two Authorization, token only",
    );
    let response = verify(addr, &["X-Forwarded-Uri: /app/x", "Authorization: Bearer"]).await;
    assert_answer(&response, 401, "invalid_token", "empty bearer");

    // A forwarded URI under auth_prefix is just a path to decide about (no endpoint runs).
    for uri in ["/auth/login", "/auth/verify", "/auth/nothing-here"] {
        let response = ask(addr, "POST", uri, None).await;
        assert_answer(&response, 401, "unauthorized", uri);
    }
    // Absolute-form forwarded URIs are matched on their path.
    let response = ask(addr, "GET", "http://app.example/public/x", None).await;
    assert_answer(&response, 200, "", "absolute-form URI");

    // Any method, any body: no 405, no 413.
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "FOO"] {
        let body = vec![b'x'; 17 * 1024];
        let response = common::request(
            addr,
            method,
            "/auth/verify",
            &["Content-Type: application/json", "X-Forwarded-Uri: /app/x"],
            &body,
        )
        .await;
        assert_answer(&response, 401, "unauthorized", method);
    }
}
