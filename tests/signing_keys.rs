//! SPEC §9 signing keys with the real binary: `gatehouse keys generate` makes the files,
//! `[[tokens.keys]]` names them, login issues ES256 / EdDSA / RS256 tokens (header
//! `{"alg","kid","typ":"at+jwt"}`) that open a protected route in front of a real
//! upstream; a bad key file is refused by `check-config` and `serve` naming it; rotation
//! next → active → retired → removed by `gatehouse reload` fails no request in flight;
//! `keys list` shows each configured key.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use common::accounts::PASSWORD;
use common::binary::{cli_add_user, run, run_cli, write_config, Gatehouse, Output};
use common::{bearer, config_text, EchoUpstream, SECRET};

/// `gatehouse keys generate --alg ALG --out FILE` that must succeed; the kid it printed.
fn generate(alg: &str, out: &Path) -> String {
    let result = run(
        &[
            "keys",
            "generate",
            "--alg",
            alg,
            "--out",
            out.to_str().expect("utf-8"),
        ],
        "",
        |_| {},
    );
    assert_eq!(result.code, 0, "keys generate {alg}: {result:?}");
    let kid = result.stdout.trim().to_string();
    assert_eq!(kid.len(), 43, "a SHA-256 thumbprint, base64url: {result:?}");
    kid
}

/// The test gateway config (real upstream, harness secret) with `tokens` added to
/// `[tokens]` and `keys` (the `[[tokens.keys]]` entries) appended.
fn pair_config(dir: &Path, upstream: &str, tokens: &str, keys: &str) -> String {
    config_text(
        upstream,
        dir,
        "",
        &format!("[log]\nformat = \"json\"\n\n{keys}"),
    )
    .replacen("[tokens]\n", &format!("[tokens]\n{tokens}\n"), 1)
}

fn entries(keys: &[(&str, &str)]) -> String {
    keys.iter()
        .map(|(file, state)| format!("[[tokens.keys]]\nfile = \"{file}\"\nstate = \"{state}\"\n\n"))
        .collect()
}

fn decode_segment(token: &str, index: usize) -> serde_json::Value {
    let segment = token.split('.').nth(index).expect("segment");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(segment)
            .expect("base64url"),
    )
    .expect("json")
}

async fn token_of(gatehouse: &Gatehouse) -> String {
    gatehouse.login_ok("alice", PASSWORD).await["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

async fn get_status(gatehouse: &Gatehouse, token: &str) -> u16 {
    gatehouse
        .request("GET", "/orders/1", &[&bearer(token)], b"")
        .await
        .status
}

/// For each algorithm: a generated key → config → serve → login → a token with the
/// key's alg, kid and `typ: at+jwt` → 200 from the real upstream on a protected route.
#[tokio::test]
async fn each_key_pair_algorithm_signs_tokens_that_open_a_protected_route() {
    let upstream = EchoUpstream::start().await;
    for alg in ["ES256", "EdDSA", "RS256"] {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("secret"), format!("{SECRET}\n")).expect("secret");
        std::fs::create_dir(dir.path().join("keys")).expect("keys dir");
        let kid = generate(alg, &dir.path().join("keys/signing.pem"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("keys/signing.pem"))
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{alg}: key file mode {mode:o}");
        }
        // A relative file: resolved against the config's directory.
        let text = pair_config(
            dir.path(),
            &upstream.addr.to_string(),
            &format!("algorithm = \"{alg}\"\nissuer = \"http://127.0.0.1:8080\""),
            &entries(&[("keys/signing.pem", "active")]),
        );
        let config = write_config(dir.path(), &text);
        let checked = run_cli(&config, &["check-config"], "", &[]);
        assert_eq!(checked.code, 0, "{alg}: {checked:?}");
        cli_add_user(&config, "alice", &[], PASSWORD);
        let gatehouse = Gatehouse::start(dir.path(), &config, &[]).await;

        let token = token_of(&gatehouse).await;
        assert_eq!(
            decode_segment(&token, 0),
            serde_json::json!({"alg": alg, "kid": kid, "typ": "at+jwt"}),
            "{alg}"
        );
        let claims = decode_segment(&token, 1);
        assert_eq!(claims["iss"], "http://127.0.0.1:8080", "{alg}");
        assert_eq!(claims["client_id"], "gatehouse", "{alg}");
        assert!(claims["sid"].is_string(), "{alg}: {claims}");
        let before = upstream.count();
        let response = gatehouse
            .request("GET", "/orders/1", &[&bearer(&token)], b"")
            .await;
        assert_eq!(response.status, 200, "{alg}: {}", gatehouse.log());
        assert_eq!(upstream.count(), before + 1, "{alg}: forwarded once");
        let seen = upstream.last().expect("received");
        assert_eq!(seen.header("x-auth-user"), Some("alice"), "{alg}");
        // A token of the same algorithm signed by another key is refused.
        let (stranger, _) = {
            let other = dir.path().join("keys/other.pem");
            let kid = generate(alg, &other);
            (other, kid)
        };
        assert!(stranger.exists());
        let mut tampered = token.clone();
        tampered.truncate(token.rfind('.').expect("signature") + 1);
        tampered.push_str("AAAA");
        assert_eq!(get_status(&gatehouse, &tampered).await, 401, "{alg}");
    }
}

#[test]
fn keys_generate_never_overwrites_and_writes_the_pem_to_stdout_without_out() {
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("key.pem");
    std::fs::write(&out, "precious").expect("write");
    let refused = run(
        &[
            "keys",
            "generate",
            "--alg",
            "ES256",
            "--out",
            out.to_str().expect("utf-8"),
        ],
        "",
        |_| {},
    );
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("exists already"), "{refused:?}");
    assert_eq!(std::fs::read_to_string(&out).expect("read"), "precious");

    let to_stdout = run(&["keys", "generate", "--alg", "EdDSA"], "", |_| {});
    assert_eq!(to_stdout.code, 0, "{to_stdout:?}");
    assert!(
        to_stdout
            .stdout
            .starts_with("-----BEGIN PRIVATE KEY-----\n"),
        "{to_stdout:?}"
    );
    let kid = to_stdout
        .stderr
        .trim()
        .strip_prefix("kid: ")
        .expect("kid on stderr");
    assert_eq!(kid.len(), 43);

    let usage = run(&["keys", "generate", "--alg", "HS256"], "", |_| {});
    assert_eq!(usage.code, 2, "{usage:?}");
    let usage = run(
        &["keys", "generate", "--alg", "RS256", "--bits", "1024"],
        "",
        |_| {},
    );
    assert_eq!(usage.code, 2, "{usage:?}");
}

/// What `check-config` and `serve` both say about a config.
fn refusals(dir: &Path, config: &Path) -> (Output, Output) {
    let checked = run_cli(config, &["check-config"], "", &[]);
    let served = run(
        &["-c", config.to_str().expect("utf-8"), "serve"],
        "",
        |command| {
            command.current_dir(dir);
        },
    );
    (checked, served)
}

#[test]
fn a_bad_key_file_is_refused_by_check_config_and_serve_naming_it() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("secret"), format!("{SECRET}\n")).expect("secret");
    let ed = dir.path().join("ed.pem");
    generate("EdDSA", &ed);
    std::fs::write(
        dir.path().join("garbled.pem"),
        "-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    let cases: Vec<(String, &str, Vec<&str>)> = vec![
        (
            entries(&[("ed.pem", "active")]),
            "tokens.keys[0].file",
            vec!["ed.pem", "Ed25519", "ES256"],
        ),
        (
            entries(&[("garbled.pem", "active")]),
            "tokens.keys[0].file",
            vec!["garbled.pem", "base64"],
        ),
        (
            entries(&[("missing.pem", "active")]),
            "tokens.keys[0].file",
            vec!["missing.pem"],
        ),
        (
            entries(&[("ed.pem", "next")]),
            "tokens.keys",
            vec!["exactly one key must have state = \"active\""],
        ),
    ];
    for (keys, path, says) in cases {
        let text = pair_config(
            dir.path(),
            "127.0.0.1:9",
            "algorithm = \"ES256\"\nissuer = \"https://gw.example.com\"",
            &keys,
        );
        let config = write_config(dir.path(), &text);
        let (checked, served) = refusals(dir.path(), &config);
        for (what, out) in [("check-config", &checked), ("serve", &served)] {
            assert_eq!(out.code, 1, "{what}: {out:?}");
            assert!(out.stderr.contains(path), "{what} names {path}: {out:?}");
            for needle in &says {
                assert!(out.stderr.contains(needle), "{what} says {needle}: {out:?}");
            }
            assert!(!out.stderr.contains("BEGIN PRIVATE KEY"), "{what}: {out:?}");
        }
    }
    // The issuer rule: key pairs need the gateway's public URL.
    let ec = dir.path().join("ec.pem");
    generate("ES256", &ec);
    for (issuer, ok) in [
        ("gatehouse", false),
        ("http://gw.example.com", false),
        ("https://gw.example.com/", false),
        ("https://gw.example.com", true),
        ("http://localhost:8080", true),
        ("http://[::1]:8080", true),
    ] {
        let text = pair_config(
            dir.path(),
            "127.0.0.1:9",
            &format!("algorithm = \"ES256\"\nissuer = \"{issuer}\""),
            &entries(&[("ec.pem", "active")]),
        );
        let config = write_config(dir.path(), &text);
        let checked = run_cli(&config, &["check-config"], "", &[]);
        assert_eq!(checked.code == 0, ok, "{issuer}: {checked:?}");
        if !ok {
            assert!(checked.stderr.contains("tokens.issuer"), "{checked:?}");
        }
    }
    // Key files with a shared secret are a mistake, not silently ignored.
    let text = pair_config(
        dir.path(),
        "127.0.0.1:9",
        "algorithm = \"HS256\"",
        &entries(&[("ec.pem", "active")]),
    );
    let config = write_config(dir.path(), &text);
    let checked = run_cli(&config, &["check-config"], "", &[]);
    assert_eq!(checked.code, 1, "{checked:?}");
    assert!(checked.stderr.contains("tokens.keys"), "{checked:?}");
}

#[test]
fn keys_list_shows_each_configured_key() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("secret"), format!("{SECRET}\n")).expect("secret");
    let a = generate("RS256", &dir.path().join("a.pem"));
    let b = generate("RS256", &dir.path().join("b.pem"));
    let text = pair_config(
        dir.path(),
        "127.0.0.1:9",
        "algorithm = \"RS256\"\nissuer = \"https://gw.example.com\"",
        &entries(&[
            ("a.pem", "active"),
            ("b.pem", "next"),
            ("gone.pem", "retired"),
        ]),
    );
    let config = write_config(dir.path(), &text);
    let listed = run_cli(&config, &["keys", "list"], "", &[]);
    assert_eq!(
        listed.code, 1,
        "a missing file fails the command: {listed:?}"
    );
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{listed:?}");
    assert!(lines[0].starts_with("KID"), "{listed:?}");
    for (line, kid, state, file) in [
        (lines[1], &a, "active", "a.pem"),
        (lines[2], &b, "next", "b.pem"),
    ] {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[0], kid.as_str(), "{line}");
        assert_eq!(fields[1], "RS256", "{line}");
        assert_eq!(fields[2], state, "{line}");
        assert!(fields[3].ends_with(file), "{line}");
    }
    assert!(listed.stderr.contains("tokens.keys[2].file"), "{listed:?}");
    assert!(listed.stderr.contains("gone.pem"), "{listed:?}");

    let hs = write_config(dir.path(), &pair_config(dir.path(), "127.0.0.1:9", "", ""));
    let listed = run_cli(&hs, &["keys", "list"], "", &[]);
    assert_eq!(listed.code, 0, "{listed:?}");
    assert!(listed.stdout.contains("shared secret"), "{listed:?}");
}

/// Rewrites the config with `keys` and runs `gatehouse reload`, which must succeed.
async fn reload_with(dir: &Path, upstream: &str, keys: &[(&str, &str)]) {
    let text = pair_config(
        dir,
        upstream,
        "algorithm = \"ES256\"\nissuer = \"https://gw.example.com\"",
        &entries(keys),
    );
    let config = write_config(dir, &text);
    let out = common::binary::run_blocking(vec![
        "-c".into(),
        config.to_str().expect("utf-8").into(),
        "reload".into(),
    ])
    .await;
    assert_eq!(out.code, 0, "reload: {out:?}");
}

/// SPEC §9 rotation with tokens in flight: next → active → retired → removed, each by
/// `gatehouse reload`. A loop of requests with the first key's token runs across the first
/// two reloads and never fails; after the key's removal its token gets 401 while the new
/// key's token keeps working; a reload with a broken key file is refused and changes
/// nothing.
#[tokio::test]
async fn rotation_by_reload_fails_no_request_in_flight() {
    let upstream = EchoUpstream::start().await;
    let up = upstream.addr.to_string();
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("secret"), format!("{SECRET}\n")).expect("secret");
    let kid_a = generate("ES256", &dir.path().join("a.pem"));
    let kid_b = generate("ES256", &dir.path().join("b.pem"));
    let text = pair_config(
        dir.path(),
        &up,
        "algorithm = \"ES256\"\nissuer = \"https://gw.example.com\"",
        &entries(&[("a.pem", "active")]),
    );
    let config = write_config(dir.path(), &text);
    cli_add_user(&config, "alice", &[], PASSWORD);
    let gatehouse = Arc::new(Gatehouse::start(dir.path(), &config, &[]).await);
    let old = token_of(&gatehouse).await;
    assert_eq!(decode_segment(&old, 0)["kid"], kid_a.as_str());
    assert_eq!(get_status(&gatehouse, &old).await, 200);

    // Requests in flight across the reloads, with the old key's token.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let traffic = tokio::spawn({
        let (gatehouse, old, stop, sent, failed) = (
            gatehouse.clone(),
            old.clone(),
            stop.clone(),
            sent.clone(),
            failed.clone(),
        );
        async move {
            while !stop.load(Ordering::Relaxed) {
                if get_status(&gatehouse, &old).await != 200 {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let at_least = |count: usize| {
        let sent = sent.clone();
        async move {
            assert!(
                common::eventually(common::DEADLINE, || sent.load(Ordering::Relaxed) >= count)
                    .await,
                "traffic stalled"
            );
        }
    };
    at_least(5).await;

    // 1. b as next.
    reload_with(dir.path(), &up, &[("a.pem", "active"), ("b.pem", "next")]).await;
    at_least(sent.load(Ordering::Relaxed) + 5).await;
    assert_eq!(
        decode_segment(&token_of(&gatehouse).await, 0)["kid"],
        kid_a.as_str()
    );

    // 2. b active, a retired.
    reload_with(
        dir.path(),
        &up,
        &[("b.pem", "active"), ("a.pem", "retired")],
    )
    .await;
    at_least(sent.load(Ordering::Relaxed) + 5).await;
    let new = token_of(&gatehouse).await;
    assert_eq!(decode_segment(&new, 0)["kid"], kid_b.as_str());

    stop.store(true, Ordering::Relaxed);
    traffic.await.expect("traffic");
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "of {} requests across the reloads; log:\n{}",
        sent.load(Ordering::Relaxed),
        gatehouse.log()
    );
    assert_eq!(
        get_status(&gatehouse, &old).await,
        200,
        "retired still verifies"
    );

    // A broken key file: the reload is refused, naming it; the running keys stay.
    std::fs::write(dir.path().join("broken.pem"), "not a key").expect("write");
    let text = pair_config(
        dir.path(),
        &up,
        "algorithm = \"ES256\"\nissuer = \"https://gw.example.com\"",
        &entries(&[("b.pem", "active"), ("broken.pem", "retired")]),
    );
    let config: PathBuf = write_config(dir.path(), &text);
    let refused = common::binary::run_blocking(vec![
        "-c".into(),
        config.to_str().expect("utf-8").into(),
        "reload".into(),
    ])
    .await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("broken.pem"), "{refused:?}");
    assert_eq!(get_status(&gatehouse, &old).await, 200, "running keys stay");

    // 3. a removed: its tokens stop; b's keep working.
    reload_with(dir.path(), &up, &[("b.pem", "active")]).await;
    let response = gatehouse
        .request("GET", "/orders/1", &[&bearer(&old)], b"")
        .await;
    assert_eq!(response.status, 401);
    assert_eq!(response.error_code(), "invalid_token");
    assert_eq!(get_status(&gatehouse, &new).await, 200);
    assert!(gatehouse.log().contains("signing keys reloaded"));
}
