//! The real binary's config commands (SPEC §1): `check-config` reports every problem at
//! once with key paths and exits 1; `explain` shows what a request would meet; usage
//! errors exit 2.

mod common;

fn gatehouse(args: &[&str]) -> (i32, String, String) {
    let output = common::binary::run(args, "", |_| {});
    (output.code, output.stdout, output.stderr)
}

fn write(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, text).expect("write");
    (dir, path.display().to_string())
}

#[test]
fn the_shipped_config_is_valid_and_its_table_is_printed_in_match_order() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.toml");
    let (code, out, err) = gatehouse(&["check-config", "-c", shipped]);
    assert_eq!(code, 0, "{err}");
    let health = out.find("/health").expect("health route listed");
    let admin = out.find("/admin/**").expect("admin route listed");
    assert!(health < admin, "{out}");
    assert!(out.contains("(anything else)"), "{out}");
}

#[test]
fn check_config_reports_every_problem_with_its_key_path() {
    let (_dir, path) = write(
        r#"
[server]
listen = "nowhere"
idle_timeout = "a while"
colour = "blue"

[tokens]
algorithm = "PS256"

[upstreams.default]
url = "ftp://x"

[[routes]]
path = "/a"

[[routes]]
path = "b/**"

[[routes]]
path = "/c"
access = "maybe"
"#,
    );
    let (code, _, err) = gatehouse(&["check-config", "-c", &path]);
    assert_eq!(code, 1);
    for expected in [
        "server.listen:",
        "server.idle_timeout:",
        "server.colour: unknown key",
        "tokens.algorithm:",
        "upstreams.default.url:",
        "routes[1].path:",
        "routes[2].access: `maybe`: expected one of authenticated, public, deny",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(err.contains("7 problems"), "{err}");
}

#[test]
fn check_config_warns_about_shadowed_routes() {
    let (_dir, path) = write(
        "[upstreams.default]\nurl = \"http://127.0.0.1:3000\"\n[[routes]]\npath = \"/api/**\"\naccess = \"public\"\n[[routes]]\npath = \"/api/admin/**\"\nroles = [\"admin\"]\n",
    );
    let (code, out, _) = gatehouse(&["check-config", "-c", &path]);
    assert_eq!(code, 0);
    assert!(out.contains("warning: routes[1] (/api/admin/**)"), "{out}");
}

#[test]
fn a_missing_config_file_is_an_error_naming_it() {
    let (code, _, err) = gatehouse(&["check-config", "-c", "/nonexistent/gateway.toml"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/gateway.toml"), "{err}");
}

#[test]
fn explain_shows_normalization_route_decision_and_upstream() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.toml");
    let (code, out, _) = gatehouse(&[
        "explain",
        "-c",
        shipped,
        "GET",
        "/static/../admin/users?page=2",
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("path:       /admin/users"), "{out}");
    assert!(out.contains("routes[2] /admin/**"), "{out}");
    assert!(out.contains("admin"), "{out}");
    assert!(
        out.contains("http://127.0.0.1:3000/admin/users?page=2"),
        "{out}"
    );

    let (code, out, _) = gatehouse(&[
        "explain",
        "-c",
        shipped,
        "GET",
        "/a/%2e%2e/%2e%2e/etc/passwd",
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("rejected: path rises above the root"), "{out}");
    assert!(out.contains("400"), "{out}");
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    assert_eq!(gatehouse(&["no-such-command"]).0, 2);
    assert_eq!(gatehouse(&["explain", "GET"]).0, 2);
    let (code, out, _) = gatehouse(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("check-config"));
    assert_eq!(gatehouse(&["user", "add", "--help"]).0, 0);
}

#[test]
fn version_prints_the_name_and_version_and_exits_0() {
    let expected = format!("gatehouse {}", env!("CARGO_PKG_VERSION"));
    for flag in ["--version", "-V"] {
        let (code, out, err) = gatehouse(&[flag]);
        assert_eq!(code, 0, "{flag}: {err}");
        assert_eq!(out.trim(), expected, "{flag}");
    }
}

#[test]
fn explain_refuses_a_raw_hash_as_the_gateway_would() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.toml");
    // `/static/**` is public for GET: without the `#` check the fragment would vanish and
    // the request would read as a public, forwarded one.
    for (target, why) in [
        ("/static/a#b", "rejected: path contains a raw '#'"),
        ("/static/a?x=1#b", "rejected: query contains a raw '#'"),
    ] {
        let (code, out, err) = gatehouse(&["explain", "-c", shipped, "GET", target]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(why), "{target}: {out}");
        assert!(
            out.contains("decision:   400 invalid_request (never forwarded)"),
            "{target}: {out}"
        );
        assert!(!out.contains("upstream:"), "{target}: {out}");
        assert!(!out.contains("public"), "{target}: {out}");
    }
}

#[test]
fn explain_notes_that_methods_are_case_sensitive_and_stays_truthful() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.toml");
    let (code, out, err) = gatehouse(&["explain", "-c", shipped, "get", "/static/x"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("note: methods are case-sensitive; `get` is not `GET`"),
        "{err}"
    );
    // `/static/**` is public only for GET and HEAD: `get` is another method.
    assert!(out.contains("route:      none matches"), "{out}");
    assert!(out.contains("a valid bearer token is required"), "{out}");

    let (code, out, err) = gatehouse(&["explain", "-c", shipped, "GET", "/static/x"]);
    assert_eq!(code, 0);
    assert!(err.is_empty(), "no note for a standard method: {err}");
    assert!(out.contains("routes[1] /static/**"), "{out}");

    // An extension method in lowercase that no standard method spells: no note.
    let (code, _, err) = gatehouse(&["explain", "-c", shipped, "purge", "/x"]);
    assert_eq!(code, 0);
    assert!(err.is_empty(), "{err}");
}

/// `gatehouse -c CONFIG COMMAND` with `envs`, killed if it still runs after the deadline
/// (a `serve` that does not refuse would run forever): the exit code (`None`: it ran)
/// and stderr.
fn refused(
    config: &std::path::Path,
    command: &str,
    envs: &[(&str, &str)],
) -> (Option<i32>, String) {
    let mut child = common::binary::Gatehouse::command(config);
    if command != "serve" {
        // `Gatehouse::command` runs `serve`; other commands are spelled out here.
        child = std::process::Command::new(common::binary::binary());
        child
            .args(["-c", &config.display().to_string(), command])
            .env_remove("GATEHOUSE_SECRET")
            .env_remove("GATEHOUSE_CONFIG")
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null());
    }
    let mut child = child
        .envs(envs.iter().copied())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn gatehouse");
    let deadline = std::time::Instant::now() + common::DEADLINE;
    let code = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status.code();
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
    }
    (code, err)
}

/// What `serve` refuses at start, `check-config` refuses too, both naming the key (SPEC §2).
#[test]
fn check_config_refuses_what_serve_refuses_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
    std::fs::write(dir.path().join("cert.pem"), generated.cert.pem()).expect("cert");
    std::fs::write(dir.path().join("garbled.pem"), "not a key\n").expect("key");
    std::fs::write(dir.path().join("short-secret"), "too-short\n").expect("secret");
    let long_secret = "s".repeat(40);
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "a secret from the environment shorter than 32 bytes",
            String::new(),
            vec![("GATEHOUSE_SECRET", "short")],
            "GATEHOUSE_SECRET: the signing secret is 5 bytes; at least 32",
        ),
        (
            "a secret_file shorter than 32 bytes",
            "[tokens]\nsecret_file = \"short-secret\"\n".into(),
            vec![],
            "tokens.secret_file: the signing secret in ",
        ),
        (
            "a missing secret_file",
            "[tokens]\nsecret_file = \"absent-secret\"\n".into(),
            vec![],
            "tokens.secret_file: cannot read ",
        ),
        (
            "a missing TLS certificate",
            "[server]\ntls_cert = \"absent.pem\"\ntls_key = \"garbled.pem\"\n".into(),
            vec![("GATEHOUSE_SECRET", long_secret.as_str())],
            "server.tls_cert: cannot read ",
        ),
        (
            "an invalid TLS key",
            "[server]\ntls_cert = \"cert.pem\"\ntls_key = \"garbled.pem\"\n".into(),
            vec![("GATEHOUSE_SECRET", long_secret.as_str())],
            "server.tls_key: ",
        ),
        (
            "listen equal to ops_listen",
            "LISTEN".into(),
            vec![],
            "server.ops_listen: must differ from server.listen",
        ),
    ];
    for (case, extra, envs, expected) in cases {
        let mut text = common::binary::binary_config(dir.path(), "");
        if extra == "LISTEN" {
            text = text
                .replacen(
                    "\nlisten = \"127.0.0.1:0\"",
                    "\nlisten = \"127.0.0.1:48080\"",
                    1,
                )
                .replacen(
                    "ops_listen = \"127.0.0.1:0\"",
                    "ops_listen = \"127.0.0.1:48080\"",
                    1,
                );
        } else if extra.starts_with("[server]") {
            // binary_config has its own [server] table: add the keys to it.
            text = text.replacen("[server]\n", &extra, 1);
        } else {
            text.push_str(&extra);
        }
        let config = common::binary::write_config(dir.path(), &text);
        for command in ["check-config", "serve"] {
            let (code, err) = refused(&config, command, &envs);
            assert_eq!(code, Some(1), "{command} with {case}: {err}");
            assert!(
                err.contains(expected),
                "{command} with {case}: missing {expected:?} in:\n{err}"
            );
        }
    }
}

#[test]
fn file_problems_are_reported_together_with_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = common::binary::binary_config(
        dir.path(),
        "[tokens]\nsecret_file = \"absent\"\n[[routes]]\npath = \"/x\"\naccess = \"maybe\"\n",
    );
    let config = common::binary::write_config(dir.path(), &text);
    let (code, err) = refused(&config, "check-config", &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("2 problems"), "{err}");
    assert!(err.contains("tokens.secret_file: cannot read "), "{err}");
    assert!(err.contains("routes[0].access: "), "{err}");
}

/// Type errors name their key path in plain words, all at once (SPEC §2), and the
/// unknown-key hint points to no document the operator does not have.
#[test]
fn type_errors_are_named_by_key_path_in_plain_words_all_at_once() {
    let (_dir, path) = write(
        r#"
[server]
max_connections = "many"
colour = "blue"

[login]
max_failures = "five"

[upstreams.default]
url = "http://127.0.0.1:3000"

[[routes]]
path = "/a"

[[routes]]
path = "/b"

[[routes]]
path = "/c"
methods = "GET"
"#,
    );
    let (code, _, err) = gatehouse(&["check-config", "-c", &path]);
    assert_eq!(code, 1);
    for expected in [
        "login.max_failures: expected a whole number, found a string",
        "server.max_connections: expected a whole number, found a string",
        "routes[2].methods: expected a list, found a string",
        "server.colour: unknown key",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(err.contains("4 problems"), "{err}");
    assert!(!err.contains("SPEC") && !err.contains("i64"), "{err}");
}

#[test]
fn check_config_reports_every_browser_problem_with_its_key_path() {
    let (_dir, path) = write(
        r#"
[upstreams.default]
url = "http://127.0.0.1:3000"

[browser]
enabled = true
public_url = "http://app.example.com/app"
cookie_domain = "not a domain"
allowed_redirect_hosts = ["ok.example.com", "bad host", ".10.0.0.1"]
inactivity = "0s"
expiration = "1500ms"
remember_me = "fortnight"
colour = "blue"
"#,
    );
    let (code, _, err) = gatehouse(&["check-config", "-c", &path]);
    assert_eq!(code, 1, "{err}");
    for expected in [
        "browser.public_url:",
        "browser.cookie_domain:",
        "browser.allowed_redirect_hosts[1]:",
        "browser.allowed_redirect_hosts[2]:",
        "browser.inactivity: must be longer than zero",
        "browser.expiration: must be whole seconds",
        "browser.remember_me:",
        "browser.colour: unknown key",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(err.contains("8 problems"), "{err}");
    assert!(!err.contains("allowed_redirect_hosts[0]"), "{err}");

    // Enabled without public_url: named; a good section passes.
    let (_dir, path) =
        write("[upstreams.default]\nurl = \"http://127.0.0.1:3000\"\n[browser]\nenabled = true\n");
    let (code, _, err) = gatehouse(&["check-config", "-c", &path]);
    assert_eq!(code, 1);
    assert!(err.contains("browser.public_url: is required"), "{err}");
    let (_dir, path) = write(
        "[upstreams.default]\nurl = \"http://127.0.0.1:3000\"\n[browser]\nenabled = true\n\
         public_url = \"https://app.example.com\"\ncookie_domain = \"example.com\"\n\
         allowed_redirect_hosts = [\".example.com\", \"app2.example.org:8443\"]\nremember_me = \"0s\"\n",
    );
    let (code, _, err) = gatehouse(&["check-config", "-c", &path]);
    assert_eq!(code, 0, "{err}");
}
