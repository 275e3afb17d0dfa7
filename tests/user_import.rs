//! `gatehouse user import FILE` with the real binary (SPEC §1, issue #14), on sled and on
//! PostgreSQL, with password hashes made by the real implementations other systems use
//! (`tests/interop/hashes.py`: pyca bcrypt, passlib — the FastAPI tutorial's hasher —,
//! argon2-cffi, Django's own `make_password`):
//!
//! - every format logs in with the right password (200) and not with a wrong one (401); the
//!   foreign hash is in `store export` before the first successful login and an argon2id
//!   one after it (the foreign hash is gone);
//! - bcrypt's 72-byte limit: a longer password verifies by its first 72 bytes, as in the
//!   system that made the hash, and the upgrade then stores the whole password;
//! - a bad line is reported with its number, exit 1, nothing is imported (the export is
//!   unchanged), and no hash or plaintext reaches stderr; a service client's name is taken
//!   for users too;
//! - a running gateway takes the import through its admin socket (5,000 users, beyond the
//!   socket's usual request size) and the next login works without a restart;
//! - PostgreSQL: the CLI writes the database, and a second replica sees the users at once
//!   (a token issued by one replica is accepted by the other).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::binary::*;
use common::interop::peers;
use common::postgres::PgCluster;
use common::{bearer, config_text, request, EchoUpstream, SECRET};

/// A password longer than bcrypt's 72 bytes.
fn long_password() -> String {
    format!("{}-and-the-rest-bcrypt-never-read", "x".repeat(72))
}

/// Hashes made by the Python implementations, one per `(scheme, password)`.
async fn python_hashes(items: &[(&str, &str)]) -> Vec<String> {
    let request = serde_json::json!({
        "hashes": items
            .iter()
            .map(|(scheme, password)| serde_json::json!({"scheme": scheme, "password": password}))
            .collect::<Vec<_>>()
    });
    let answer = peers().hashes(request).await;
    answer["hashes"]
        .as_array()
        .expect("hashes")
        .iter()
        .map(|hash| hash.as_str().expect("a hash").to_string())
        .collect()
}

fn line(username: &str, hash: &str, roles: &[&str]) -> String {
    serde_json::json!({"username": username, "password_hash": hash, "roles": roles}).to_string()
}

/// The users of a `store export` file: canonical name → password hash.
fn exported_hashes(config: &Path) -> std::collections::BTreeMap<String, String> {
    let out = run_cli(config, &["store", "export"], "", &[]);
    assert_eq!(out.code, 0, "store export: {out:?}");
    out.stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|record| record["type"] == "user")
        .map(|record| {
            (
                record["canonical"].as_str().expect("canonical").to_string(),
                record["password_hash"].as_str().expect("hash").to_string(),
            )
        })
        .collect()
}

/// The records of a `store export` (without its header line, which has a timestamp).
fn export_records(config: &Path) -> Vec<String> {
    let out = run_cli(config, &["store", "export"], "", &[]);
    assert_eq!(out.code, 0, "store export: {out:?}");
    out.stdout.lines().skip(1).map(String::from).collect()
}

async fn import(config: &Path, file: &str) -> Output {
    let config = config.to_path_buf();
    let file = file.to_string();
    tokio::task::spawn_blocking(move || run_cli(&config, &["user", "import", "-"], &file, &[]))
        .await
        .expect("join")
}

async fn login_status(served: &Gatehouse, username: &str, password: &str) -> u16 {
    served
        .post_json(
            "/auth/login",
            &serde_json::json!({"username": username, "password": password}),
            &[],
        )
        .await
        .status
}

/// One user per format, each with its own password.
const FORMATS: [(&str, &str, &str); 7] = [
    ("bcrypt-2a", "Py-2a", "fastapi 2a password"),
    ("bcrypt-2b", "py-2b", "fastapi 2b password"),
    ("bcrypt-2y", "php-2y", "passlib 2y password"),
    ("bcrypt-passlib", "tutorial", "secret from the tutorial"),
    ("argon2id", "cffi-id", "argon2id password"),
    ("argon2i", "cffi-i", "argon2i password"),
    ("django-pbkdf2", "django", "lètmein django"),
];

#[tokio::test]
async fn foreign_hashes_log_in_and_are_replaced_by_argon2id_at_the_first_login() {
    let items: Vec<(&str, &str)> = FORMATS.iter().map(|(s, _, p)| (*s, *p)).collect();
    let long = long_password();
    let mut all = items.clone();
    all.push(("bcrypt-2b", &long));
    let hashes = python_hashes(&all).await;
    assert!(hashes[6].starts_with("pbkdf2_sha256$"), "{}", hashes[6]);

    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &binary_config(dir.path(), ""));
    let mut file = String::from("\n");
    for ((_, name, _), hash) in FORMATS.iter().zip(&hashes) {
        file.push_str(&line(name, hash, &["reader"]));
        file.push('\n');
    }
    file.push_str(&line("long", &hashes[7], &[]));
    file.push_str("\n\n");
    // No gateway runs: the CLI opens the store itself.
    let out = import(&config, &file).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("imported 8 users"), "{}", out.stderr);

    let before = exported_hashes(&config);
    assert_eq!(before.len(), 8);
    for ((_, name, _), hash) in FORMATS.iter().zip(&hashes) {
        assert_eq!(&before[&name.to_lowercase()], hash, "imported as given");
    }

    let served = Gatehouse::start(dir.path(), &config, &[]).await;
    for (scheme, name, password) in FORMATS {
        assert_eq!(
            login_status(&served, name, "wrong password").await,
            401,
            "{scheme}: a wrong password"
        );
        // Still the foreign hash after a failed login.
        assert_eq!(
            exported_hashes(&config)[&name.to_lowercase()],
            before[&name.to_lowercase()]
        );
        // Names compare case-insensitively, as for every user.
        let body = served.login_ok(&name.to_uppercase(), password).await;
        let token = body["access_token"].as_str().expect("token");
        let me = served.me(token).await;
        assert_eq!(me.status, 200, "{scheme}");
        assert_eq!(me.json()["username"], name, "{scheme}");
        assert_eq!(
            me.json()["roles"],
            serde_json::json!(["reader"]),
            "{scheme}"
        );
        let after = exported_hashes(&config)[&name.to_lowercase()].clone();
        assert!(
            after.starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
            "{scheme}: upgraded to the configured argon2id, got {after}"
        );
        // The upgraded hash works, the wrong password still does not.
        served.login_ok(name, password).await;
        assert_eq!(login_status(&served, name, "wrong password").await, 401);
        assert_eq!(exported_hashes(&config)[&name.to_lowercase()], after);
    }

    // bcrypt: the first 72 bytes decide, as in the system that made the hash; the upgrade
    // stores the whole password, after which every byte counts.
    let prefix_only = "x".repeat(72);
    let other_tail = format!("{prefix_only}-a-different-tail");
    assert_eq!(login_status(&served, "long", &prefix_only[..71]).await, 401);
    assert_eq!(exported_hashes(&config)["long"], hashes[7]);
    served.login_ok("long", &long).await;
    assert!(exported_hashes(&config)["long"].starts_with("$argon2id$"));
    assert_eq!(login_status(&served, "long", &other_tail).await, 401);
    assert_eq!(login_status(&served, "long", &prefix_only).await, 401);
    served.login_ok("long", &long).await;

    let log = served.log();
    for secret in hashes.iter().map(String::as_str).chain([long.as_str()]) {
        assert!(!log.contains(secret), "the log shows a hash or password");
    }
}

#[tokio::test]
async fn a_bad_line_is_reported_by_number_and_nothing_is_imported() {
    let hashes = python_hashes(&[("bcrypt-2b", "a password"), ("django-pbkdf2", "pw")]).await;
    let bcrypt = &hashes[0];
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &binary_config(dir.path(), ""));
    cli_add_user(&config, "Existing", &[], common::accounts::PASSWORD);
    let client = run_cli(&config, &["client", "add", "ci-bot"], "", &[]);
    assert_eq!(client.code, 0, "{client:?}");
    let before = export_records(&config);
    let good = line("first", bcrypt, &[]);
    let costly = bcrypt.replacen("$04$", "$15$", 1);
    let plaintext = "correct horse battery staple";
    let django_slow = hashes[1].replacen("$1000000$", "$9000000$", 1);
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{good}\n{{\"username\":\"typo\",\"password\":\"{plaintext}\"}}\n"),
            "line 2: unknown key `password`",
        ),
        (
            format!("{good}\n\n{}\n", line("has space", bcrypt, &[])),
            "line 3: \"has space\" is not a valid username",
        ),
        (
            // Columns swapped: the hash is never shown.
            format!("{good}\n{}\n", line(bcrypt, "alice", &[])),
            "line 2: the value is not a valid username",
        ),
        (
            format!("{good}\n{}\n", line("FIRST", bcrypt, &[])),
            "line 2: the username `FIRST` is on line 1 already",
        ),
        (
            format!("{good}\n{}\n", line("existing", bcrypt, &[])),
            "line 2: the name `existing` is taken already",
        ),
        (
            // One namespace for users and service clients.
            format!("{}\n{good}\n", line("CI-Bot", bcrypt, &[])),
            "line 1: the name `CI-Bot` is taken already",
        ),
        (
            format!("{good}\n{}\n", line("costly", &costly, &[])),
            "line 2: password_hash: bcrypt cost 15 is outside 4..=14",
        ),
        (
            format!("{}\n{good}\n", line("slow", &django_slow, &[])),
            "line 1: password_hash: pbkdf2_sha256 with 9000000 iterations",
        ),
        (
            format!("{good}\n{}\n", line("plain", plaintext, &[])),
            "line 2: password_hash: not a recognised password hash",
        ),
        (
            format!("{good}\n{}\n", line("roles", bcrypt, &["bad role"])),
            "line 2: \"bad role\" is not a role name",
        ),
        (
            format!("{good}\n{{\"username\": \"broken\",\n"),
            "line 2: the JSON ends early",
        ),
        (
            format!("{good}\n[1, 2]\n"),
            "line 2: not a JSON object",
        ),
        (
            format!("{good}\n{{\"username\":\"nohash\"}}\n"),
            "line 2: `password_hash` is missing",
        ),
        (
            format!("{good}\n{{\"username\":\"e\",\"password_hash\":\"{bcrypt}\",\"enabled\":\"yes\"}}\n"),
            "line 2: `enabled` must be true or false",
        ),
    ];
    for (file, expected) in cases {
        let out = import(&config, &file).await;
        assert_eq!(out.code, 1, "{expected}: {out:?}");
        assert!(
            out.stderr.contains(expected) && out.stderr.contains("nothing was imported"),
            "expected `{expected}` in: {}",
            out.stderr
        );
        for secret in [bcrypt.as_str(), costly.as_str(), plaintext, &django_slow] {
            assert!(
                !out.stderr.contains(secret),
                "stderr shows a secret: {}",
                out.stderr
            );
        }
        assert_eq!(
            export_records(&config),
            before,
            "{expected}: nothing imported"
        );
    }
    // A missing file is an error too, naming it.
    let out = run_cli(
        &config,
        &["user", "import", "/nonexistent/users.jsonl"],
        "",
        &[],
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("/nonexistent/users.jsonl"),
        "{}",
        out.stderr
    );
    // Exit 2 without the FILE argument (usage).
    assert_eq!(run_cli(&config, &["user", "import"], "", &[]).code, 2);
}

#[tokio::test]
async fn a_running_gateway_takes_5000_users_through_its_socket_and_logs_them_in_at_once() {
    let hashes = python_hashes(&[("bcrypt-2b", "shared password")]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &binary_config(dir.path(), ""));
    let served = Gatehouse::start(dir.path(), &config, &[]).await;
    let file: String = (0..5000)
        .map(|i| {
            let roles: &[&str] = if i % 2 == 0 { &["even"] } else { &[] };
            line(&format!("user{i:04}"), &hashes[0], roles) + "\n"
        })
        .collect();
    assert!(file.len() > 64 * 1024, "beyond the socket's usual limit");
    let started = Instant::now();
    let out = import(&config, &file).await;
    assert_eq!(out.code, 0, "{out:?}\nlog:\n{}", served.log());
    assert!(out.stderr.contains("imported 5000 users"), "{}", out.stderr);
    println!(
        "imported 5000 users through the admin socket in {:?}",
        started.elapsed()
    );
    // The gateway holds the sled store: the import went through its admin socket.
    assert!(served.wait_for_log("admin command applied").await);
    assert!(
        served
            .log()
            .lines()
            .any(|line| line.contains("admin command applied") && line.contains("import")),
        "the gateway applied it: {}",
        served.log()
    );
    // Applied at once: the very next login works, without a restart.
    let body = served.login_ok("user4998", "shared password").await;
    let me = served
        .me(body["access_token"].as_str().expect("token"))
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["roles"], serde_json::json!(["even"]));
    served.login_ok("USER0001", "shared password").await;
    let list = run_cli(&config, &["user", "list", "--json"], "", &[]);
    assert_eq!(list.code, 0);
    let users: serde_json::Value = serde_json::from_str(&list.stdout).expect("json");
    assert_eq!(users.as_array().map(Vec::len), Some(5000));
    // Importing the same file again is refused whole.
    let again = import(&config, &file).await;
    assert_eq!(again.code, 1);
    assert!(
        again
            .stderr
            .contains("line 1: the name `user0000` is taken already"),
        "{}",
        again.stderr
    );
}

/// A replica's config on database `url`, in `dir` (created).
fn replica(dir: &Path, upstream: std::net::SocketAddr, url: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(dir.join("secret"), format!("{SECRET}\n")).expect("secret");
    let text = config_text(&upstream.to_string(), dir, "", "[log]\nformat = \"json\"\n");
    let text = text.replacen(
        "[store]\n",
        &format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n"),
        1,
    );
    write_config(dir, &text)
}

#[tokio::test]
async fn on_postgres_every_replica_sees_the_import_and_the_upgrade() {
    let hashes = python_hashes(&[("django-pbkdf2", "django pw"), ("bcrypt-2y", "php pw")]).await;
    let url = tokio::task::spawn_blocking(|| PgCluster::shared().create_database())
        .await
        .expect("create database");
    let upstream = EchoUpstream::start().await;
    let root = tempfile::tempdir().expect("tempdir");
    let one = Gatehouse::start(
        &root.path().join("r1"),
        &replica(&root.path().join("r1"), upstream.addr, &url),
        &[],
    )
    .await;
    let two = Gatehouse::start(
        &root.path().join("r2"),
        &replica(&root.path().join("r2"), upstream.addr, &url),
        &[],
    )
    .await;
    // The CLI's store.path is served by no gateway: it writes to the database itself.
    let cli = replica(&root.path().join("cli"), upstream.addr, &url);
    let file = format!(
        "{}\n{}\n",
        line("Dj", &hashes[0], &["staff"]),
        line("php", &hashes[1], &[])
    );
    let out = import(&cli, &file).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("imported 2 users"), "{}", out.stderr);
    assert_eq!(exported_hashes(&cli)["dj"], hashes[0]);

    // A token issued by replica one is accepted by replica two: its view has the user.
    let body = one.login_ok("dj", "django pw").await;
    let token = body["access_token"].as_str().expect("token").to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    let seen = loop {
        let me = request(two.addr, "GET", "/auth/me", &[&bearer(&token)], b"").await;
        if me.status == 200 {
            break Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "replica two never saw the user: {}",
            two.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = seen;
    assert!(exported_hashes(&cli)["dj"].starts_with("$argon2id$"));
    assert_eq!(login_status(&two, "php", "wrong").await, 401);
    two.login_ok("PHP", "php pw").await;
    assert!(exported_hashes(&cli)["php"].starts_with("$argon2id$"));
    // The upgraded hashes work on the other replica too.
    one.login_ok("php", "php pw").await;
    two.login_ok("dj", "django pw").await;
}

/// docs/migrating-users.md, read when the test runs.
fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/migrating-users.md");
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("read {path}: {error}"))
}

/// The first fenced block of `language` after `heading` in the doc.
fn snippet(doc: &str, heading: &str, language: &str) -> String {
    let after = doc
        .split_once(heading)
        .unwrap_or_else(|| panic!("docs/migrating-users.md has no {heading:?}"))
        .1;
    let fence = format!("```{language}\n");
    let body = after
        .split_once(&fence)
        .unwrap_or_else(|| panic!("no {language} block after {heading:?}"))
        .1;
    body.split_once("```").expect("closed block").0.to_string()
}

#[tokio::test]
async fn the_docs_example_file_and_fastapi_export_script_import_as_written() {
    let doc = doc();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &binary_config(dir.path(), ""));
    // The example file: alice (bcrypt, admin) and bob (Django, disabled).
    let example = snippet(&doc, "## The file", "json");
    let out = import(&config, &example).await;
    assert_eq!(out.code, 0, "{out:?}");

    // The FastAPI export script, run as written against a tutorial-shaped table whose
    // hashes passlib made.
    let hashes = python_hashes(&[("bcrypt-passlib", "carol password")]).await;
    let python = peers().python_bin();
    let work = dir.path().join("app");
    std::fs::create_dir_all(&work).expect("dir");
    let setup = format!(
        "import sqlite3\ndb = sqlite3.connect('app.db')\n\
         db.execute('CREATE TABLE users (username TEXT, hashed_password TEXT, disabled BOOLEAN)')\n\
         db.execute('INSERT INTO users VALUES (?, ?, ?)', ('carol', '{}', False))\n\
         db.commit()\n",
        hashes[0]
    );
    let script = snippet(&doc, "## Exporting from a FastAPI", "python");
    for code in [setup.as_str(), script.as_str()] {
        let status = std::process::Command::new(&python)
            .arg("-c")
            .arg(code)
            .current_dir(&work)
            .status()
            .expect("python");
        assert!(status.success());
    }
    let file = std::fs::read_to_string(work.join("users.jsonl")).expect("users.jsonl");
    let out = import(&config, &file).await;
    assert_eq!(out.code, 0, "{out:?}");

    let served = Gatehouse::start(dir.path(), &config, &[]).await;
    let alice = served.login_ok("alice", "alice password").await;
    let me = served
        .me(alice["access_token"].as_str().expect("token"))
        .await;
    assert_eq!(me.json()["roles"], serde_json::json!(["admin"]));
    served.login_ok("carol", "carol password").await;
    assert_eq!(login_status(&served, "carol", "alice password").await, 401);
    // bob was imported disabled: the right password says so, and nothing more.
    let bob = login_status(&served, "bob", "bob password").await;
    assert_eq!(bob, 403, "a disabled user");
    assert_eq!(login_status(&served, "bob", "wrong").await, 401);
}
