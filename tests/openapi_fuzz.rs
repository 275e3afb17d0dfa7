//! `GET /auth/openapi.json` checked by real OpenAPI tools (issue #14): the document passes
//! openapi-spec-validator (OpenAPI 3.1), and a schemathesis run against the real binary
//! (sled in a temp dir, a real upstream, a user, a service client, routes that make every forward-auth
//! outcome reachable) finds no 5xx and nothing undocumented: status codes, content types
//! and response bodies all as the document says (`not_a_server_error`,
//! `status_code_conformance`, `content_type_conformance`, `response_schema_conformance`).
//!
//! Both tools are pinned with their dependencies in tests/interop/requirements.txt and
//! installed by tests/interop/install.sh (tests/common/interop.rs). schemathesis runs with
//! a bounded number of examples per operation (`FUZZ_EXAMPLES`, default 12) and a fixed
//! seed (`GATEHOUSE_FUZZ_SEED` to explore another), so the run is reproducible and stays
//! well under a minute and a half on two busy cores. It logs itself in as the user through
//! `/auth/login` (schemathesis's dynamic bearer auth; again after any 401, since fuzzed
//! logouts and revocations end its session), and as the service client by HTTP Basic at
//! the token and introspection endpoints; the password and the client secret reach it
//! through its environment, never argv.

mod common;

use std::process::{Command, Stdio};
use std::time::Instant;

use common::accounts::PASSWORD;
use common::binary::{run_blocking, serve_with_users, Gatehouse};
use common::interop::peers;
use common::EchoUpstream;

/// Registration and the browser pages on; lockout limits far above what a fuzz run reaches (so schemathesis's own
/// login keeps working); a trusted loopback proxy, and routes, so forward-auth decides
/// public, authenticated, role and deny routes.
const CONFIG: &str = r#"
[registration]
enabled = true
roles = ["reader"]

[browser]
enabled = true
public_url = "https://app.example.com"

[login]
max_failures = 100000
max_failures_per_address = 100000

[headers]
trusted_proxies = ["127.0.0.1"]

[[routes]]
path = "/public/**"
access = "public"

[[routes]]
path = "/admin/**"
roles = ["admin"]

[[routes]]
path = "/deny/**"
access = "deny"
"#;

const FUZZER: &str = "fuzzer";

/// The service client schemathesis authenticates as at `/auth/token` and `/auth/introspect`.
const FUZZ_CLIENT: &str = "fuzz-client";

/// Operations whose 200 needs schemathesis's credentials (the user's bearer token, the
/// client's Basic credentials): proof that it authenticated.
const AUTHENTICATED_200: [&str; 3] = ["/auth/me", "/auth/token", "/auth/introspect"];

/// schemathesis's configuration: log in as the fuzz user for `bearerAuth`.
const SCHEMATHESIS_TOML: &str = r#"
[auth.dynamic.openapi.bearerAuth]
path = "/auth/login"
payload = { username = "fuzzer", password = "${GATEHOUSE_FUZZ_PASSWORD}" }
extract_selector = "/access_token"

[auth.openapi.clientBasic]
username = "fuzz-client"
password = "${GATEHOUSE_FUZZ_CLIENT_SECRET}"
"#;

/// The gateway with the fuzz user, and the fuzz client added through the running gateway
/// (`gatehouse client add`); returns the client's secret.
async fn gateway(dir: &std::path::Path) -> (EchoUpstream, Gatehouse, String) {
    let upstream = EchoUpstream::start().await;
    let (gatehouse, _) = serve_with_users(dir, upstream.addr, CONFIG, &[(FUZZER, &[])]).await;
    let config = gatehouse
        .config_path
        .to_str()
        .expect("utf-8 path")
        .to_owned();
    let added = run_blocking(
        [
            "-c",
            &config,
            "client",
            "add",
            FUZZ_CLIENT,
            "--role",
            "admin",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert_eq!(added.code, 0, "client add: {}", added.stderr);
    let secret = added.stdout.trim().to_owned();
    assert!(!secret.is_empty(), "client add printed no secret");
    (upstream, gatehouse, secret)
}

fn tool(name: &str) -> std::path::PathBuf {
    let python = peers().python_bin();
    python.with_file_name(name)
}

#[tokio::test]
async fn the_document_is_valid_openapi_3_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_upstream, gatehouse, _) = gateway(dir.path()).await;
    let response = gatehouse
        .request("GET", "/auth/openapi.json", &[], b"")
        .await;
    response.assert_status(200);
    let document = response.json();
    let validate = |document: &serde_json::Value| {
        let path = dir.path().join("openapi.json");
        std::fs::write(&path, document.to_string()).expect("write document");
        Command::new(tool("openapi-spec-validator"))
            .arg(&path)
            .stdin(Stdio::null())
            .output()
            .expect("run openapi-spec-validator")
    };
    let output = validate(&document);
    assert!(
        output.status.success(),
        "openapi-spec-validator refused the document:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The validator validates: the same document with a dangling $ref is refused.
    let mut broken = document.clone();
    broken["paths"]["/auth/me"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"] = serde_json::json!({ "$ref": "#/components/schemas/NoSuchSchema" });
    let output = validate(&broken);
    assert!(
        !output.status.success(),
        "a dangling $ref passed the validator: it checks nothing"
    );
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_nothing_undocumented() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_upstream, gatehouse, client_secret) = gateway(dir.path()).await;
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(&config, SCHEMATHESIS_TOML).expect("write schemathesis.toml");
    let examples = std::env::var("FUZZ_EXAMPLES").unwrap_or_else(|_| "12".into());
    let seed = std::env::var("GATEHOUSE_FUZZ_SEED").unwrap_or_else(|_| "14".into());
    let location = format!("http://{}/auth/openapi.json", gatehouse.addr);
    let started = Instant::now();
    let schemathesis = tool("schemathesis");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(schemathesis)
            .arg("--no-color")
            .arg("--config-file")
            .arg(&config)
            .args(["run", &location])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,\
                 response_schema_conformance,response_headers_conformance,\
                 unsupported_method,allow_header_conformance",
            ])
            .args(["--max-examples", &examples, "--seed", &seed])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args(["--workers", "2", "--request-timeout", "10"])
            .args(["--generation-database", "none"])
            .args(["--suppress-health-check", "all"])
            .env("GATEHOUSE_FUZZ_PASSWORD", PASSWORD)
            .env("GATEHOUSE_FUZZ_CLIENT_SECRET", &client_secret)
            .env("SCHEMATHESIS_HOOKS", "")
            .current_dir(config.parent().expect("dir"))
            .stdin(Stdio::null())
            .output()
            .expect("run schemathesis")
    })
    .await
    .expect("schemathesis task");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis found failures (seed {}):\n{report}\ngateway log:\n{}",
        std::env::var("GATEHOUSE_FUZZ_SEED").unwrap_or_else(|_| "14".into()),
        gatehouse.log()
    );
    // Every operation was exercised (each documented path is on the access log), and
    // schemathesis's own login worked (a 200 from /auth/me needs its bearer token).
    let mut seen: std::collections::BTreeMap<(String, u64), usize> = Default::default();
    for line in gatehouse.log().lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let (Some(path), Some(status)) = (entry["path"].as_str(), entry["status"].as_u64()) {
            *seen.entry((path.to_owned(), status)).or_default() += 1;
        }
    }
    for path in gatehouse::endpoints::ROUTES
        .iter()
        .map(|route| format!("/auth{}", route.path))
    {
        assert!(
            seen.keys().any(|(seen_path, _)| *seen_path == path),
            "schemathesis never called {path}:\n{report}"
        );
    }
    for path in AUTHENTICATED_200 {
        assert!(
            seen.contains_key(&(path.to_owned(), 200)),
            "schemathesis never authenticated at {path} (no 200): {seen:?}\n{report}"
        );
    }
    eprintln!("responses by (path, status): {seen:?}");
    eprintln!("schemathesis: {:?}\n{report}", started.elapsed());
}
