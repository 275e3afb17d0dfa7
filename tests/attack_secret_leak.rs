//! Secrets never reach the logs (SPEC §6, §7): a whole session — logins (JSON and form,
//! good and bad), the token endpoint, refresh, proxied calls, bad tokens, a password
//! change, logout — runs against the real binary with every crate logging at trace level,
//! and no password, token, refresh token, signing secret or Authorization value appears.

mod common;

use common::binary::{cli_add_user, write_config, Gatehouse};
use common::{raw, EchoUpstream};

const SECRET: &str = "leak-test-signing-secret-0123456789-abcdef";
const PASSWORD: &str = "hunter2-correct-horse";
const NEW_PASSWORD: &str = "battery-staple-new-one";
const WRONG_PASSWORD: &str = "wrong-guess-password-xyz";

async fn post(
    addr: std::net::SocketAddr,
    path: &str,
    content_type: &str,
    body: &str,
    extra: &str,
) -> common::Response {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    );
    raw(addr, request.as_bytes()).await
}

async fn get(addr: std::net::SocketAddr, path: &str, extra: &str) -> common::Response {
    raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n").as_bytes(),
    )
    .await
}

#[tokio::test]
async fn a_full_session_at_trace_level_logs_no_secret() {
    let upstream = EchoUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nops_listen = \"127.0.0.1:0\"\nshutdown_grace = \"2s\"\n\n[store]\npath = \"{}\"\n\n[passwords]\nmemory_kib = 64\niterations = 1\n\n[log]\nformat = \"json\"\nlevel = \"trace\"\n\n[upstreams.default]\nurl = \"http://{}\"\n",
            dir.path().join("data").display(),
            upstream.addr
        ),
    );
    cli_add_user(&config, "leaky", &[], PASSWORD);
    let mut served = Gatehouse::start(
        dir.path(),
        &config,
        &[("RUST_LOG", "trace"), ("GATEHOUSE_SECRET", SECRET)],
    )
    .await;
    let addr = served.addr;
    let json = |password: &str| format!(r#"{{"username":"leaky","password":"{password}"}}"#);

    let mut secrets: Vec<String> = vec![
        SECRET.into(),
        PASSWORD.into(),
        NEW_PASSWORD.into(),
        WRONG_PASSWORD.into(),
    ];

    assert_eq!(
        post(
            addr,
            "/auth/login",
            "application/json",
            &json(WRONG_PASSWORD),
            ""
        )
        .await
        .status,
        401
    );
    let form = post(
        addr,
        "/auth/login",
        "application/x-www-form-urlencoded",
        &format!("username=leaky&password={PASSWORD}"),
        "",
    )
    .await;
    assert_eq!(form.status, 200);
    let login = post(addr, "/auth/login", "application/json", &json(PASSWORD), "").await;
    assert_eq!(login.status, 200);
    let tokens = login.json();
    let access = tokens["access_token"].as_str().expect("access").to_string();
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    secrets.extend([access.clone(), refresh.clone()]);
    secrets.push(
        form.json()["access_token"]
            .as_str()
            .expect("access")
            .to_string(),
    );

    let grant = post(
        addr,
        "/auth/token",
        "application/x-www-form-urlencoded",
        &format!("grant_type=password&username=leaky&password={PASSWORD}&client_id=cli"),
        "",
    )
    .await;
    assert_eq!(grant.status, 200);
    secrets.push(
        grant.json()["refresh_token"]
            .as_str()
            .expect("refresh")
            .to_string(),
    );

    let rotated = post(
        addr,
        "/auth/refresh",
        "application/json",
        &format!(r#"{{"refresh_token":"{refresh}"}}"#),
        "",
    )
    .await;
    assert_eq!(rotated.status, 200);
    let new_access = rotated.json()["access_token"]
        .as_str()
        .expect("access")
        .to_string();
    let new_refresh = rotated.json()["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    secrets.extend([new_access.clone(), new_refresh.clone()]);
    // Reuse of the spent one: ends the family.
    assert_eq!(
        post(
            addr,
            "/auth/refresh",
            "application/json",
            &format!(r#"{{"refresh_token":"{refresh}"}}"#),
            ""
        )
        .await
        .status,
        401
    );

    let auth = format!("Authorization: Bearer {access}\r\n");
    assert_eq!(
        get(addr, "/api/data?q=1", &auth).await.status,
        401,
        "the family ended, so its access token did too"
    );
    let login = post(addr, "/auth/login", "application/json", &json(PASSWORD), "").await;
    let access = login.json()["access_token"]
        .as_str()
        .expect("access")
        .to_string();
    secrets.push(access.clone());
    let auth = format!("Authorization: Bearer {access}\r\n");
    assert_eq!(get(addr, "/api/data?q=1", &auth).await.status, 200);
    assert_eq!(get(addr, "/auth/me", &auth).await.status, 200);
    let tampered = format!("{}x", &access[..access.len() - 1]);
    secrets.push(tampered.clone());
    assert_eq!(
        get(
            addr,
            "/api/data",
            &format!("Authorization: Bearer {tampered}\r\n")
        )
        .await
        .status,
        401
    );
    assert_eq!(
        get(
            addr,
            "/api/data",
            "Authorization: Basic bGVha3k6aHVudGVyMi1jb3JyZWN0LWhvcnNl\r\n"
        )
        .await
        .status,
        401
    );
    secrets.push("bGVha3k6aHVudGVyMi1jb3JyZWN0LWhvcnNl".into());

    let change = post(
        addr,
        "/auth/password",
        "application/json",
        &format!(r#"{{"current_password":"{PASSWORD}","new_password":"{NEW_PASSWORD}"}}"#),
        &auth,
    )
    .await;
    assert_eq!(change.status, 200);
    let fresh = change.json()["access_token"]
        .as_str()
        .expect("access")
        .to_string();
    let fresh_refresh = change.json()["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    secrets.extend([fresh.clone(), fresh_refresh.clone()]);
    let logout = post(
        addr,
        "/auth/logout",
        "application/json",
        &format!(r#"{{"refresh_token":"{fresh_refresh}"}}"#),
        &format!("Authorization: Bearer {fresh}\r\n"),
    )
    .await;
    assert_eq!(logout.status, 204);

    served.terminate().await;
    let log = served.log();
    assert!(
        log.contains("gatehouse::access"),
        "the log was captured at all"
    );
    assert!(log.lines().count() > 50, "trace logging was on");
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "a secret leaked into the log: {}…",
            &secret[..8.min(secret.len())]
        );
        // No fragment that identifies a token either (its signature part).
        if let Some(signature) = secret.rsplit('.').next().filter(|s| s.len() > 20) {
            assert!(!log.contains(signature), "a token signature leaked");
        }
    }
    assert!(
        !log.to_ascii_lowercase().contains("bearer ey"),
        "an Authorization value leaked"
    );
}
