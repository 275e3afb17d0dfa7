//! Account helpers for tests: real users in a real store, created through the running
//! gateway's admin socket (the same path `gatehouse user add` takes) and logged in through
//! `/auth/login`, so their tokens pass every SPEC §4 check (user exists, enabled, not
//! revoked). Users of the real binary are added with [`crate::common::binary`]'s
//! `cli_add_user`.

#![allow(dead_code)]

use std::path::PathBuf;

use base64::Engine as _;
use gatehouse::admin::protocol::{Reply, Request};

use crate::common::{bearer, Response, TestGateway, TestUser};

/// A password that meets the default policy.
pub const PASSWORD: &str = "correct horse battery";

/// The store directory of an in-process test gateway.
pub fn store_path(gateway: &TestGateway) -> PathBuf {
    gateway.dir.path().join("data")
}

/// Sends an admin request to the running gateway's socket.
pub async fn admin(gateway: &TestGateway, request: Request) -> Reply {
    let socket = gatehouse::admin::socket::socket_path(&store_path(gateway));
    tokio::task::spawn_blocking(move || gatehouse::admin::socket::connect(&socket, &request))
        .await
        .expect("join")
        .expect("admin socket")
        .expect("a gateway answers on the admin socket")
}

/// Adds a user through the admin socket; panics unless it worked.
pub async fn add_user(gateway: &TestGateway, username: &str, roles: &[&str], password: &str) {
    let reply = admin(
        gateway,
        Request::Add {
            username: username.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            password: password.to_string().into(),
        },
    )
    .await;
    assert!(reply.ok, "user add {username}: {reply:?}");
}

/// A real user with `roles` and the access token of a fresh login.
pub async fn create_user(gateway: &TestGateway, username: &str, roles: &[&str]) -> TestUser {
    add_user(gateway, username, roles, PASSWORD).await;
    let tokens = login_ok(gateway, username, PASSWORD).await;
    let token = tokens["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    TestUser {
        username: username.to_string(),
        sub: claims_of(&token)["sub"].as_str().expect("sub").to_string(),
        token,
    }
}

/// The string member `name` of a JSON token response (`access_token`, `refresh_token`).
pub fn token(value: &serde_json::Value, name: &str) -> String {
    value[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {value}"))
        .to_string()
}

/// The (unverified) claims of a JWT, for assertions.
pub fn claims_of(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// `POST path` with a JSON body and extra header lines.
pub async fn post_json(
    gateway: &TestGateway,
    path: &str,
    body: &serde_json::Value,
    headers: &[&str],
) -> Response {
    let mut all = vec!["Content-Type: application/json"];
    all.extend_from_slice(headers);
    gateway
        .request("POST", path, &all, body.to_string().as_bytes())
        .await
}

/// `POST path` with a form body and extra header lines.
pub async fn post_form(
    gateway: &TestGateway,
    path: &str,
    form: &str,
    headers: &[&str],
) -> Response {
    let mut all = vec!["Content-Type: application/x-www-form-urlencoded"];
    all.extend_from_slice(headers);
    gateway.request("POST", path, &all, form.as_bytes()).await
}

/// `POST /auth/login` with JSON credentials.
pub async fn login(gateway: &TestGateway, username: &str, password: &str) -> Response {
    post_json(
        gateway,
        "/auth/login",
        &serde_json::json!({ "username": username, "password": password }),
        &[],
    )
    .await
}

/// A login that must succeed; returns the token response.
pub async fn login_ok(gateway: &TestGateway, username: &str, password: &str) -> serde_json::Value {
    let response = login(gateway, username, password).await;
    assert_eq!(
        response.status,
        200,
        "login {username}: {}",
        String::from_utf8_lossy(&response.body)
    );
    response.json()
}

/// `GET /auth/me` with a bearer token; the status.
pub async fn me_status(gateway: &TestGateway, token: &str) -> u16 {
    gateway.get("/auth/me", &[&bearer(token)]).await.status
}

/// `POST /auth/refresh` with JSON.
pub async fn refresh(gateway: &TestGateway, refresh_token: &str) -> Response {
    post_json(
        gateway,
        "/auth/refresh",
        &serde_json::json!({ "refresh_token": refresh_token }),
        &[],
    )
    .await
}

/// `gatehouse client add NAME [--role R]…` through the real binary, against the running
/// gateway (its admin socket); returns the secret it prints once on stdout.
pub async fn add_client(gateway: &TestGateway, name: &str, roles: &[&str]) -> String {
    let mut args = vec![
        "-c".to_string(),
        gateway.config_path.display().to_string(),
        "client".into(),
        "add".into(),
        name.into(),
    ];
    for role in roles {
        args.push("--role".into());
        args.push(role.to_string());
    }
    let out = crate::common::binary::run_blocking(args).await;
    assert_eq!(out.code, 0, "client add {name}: {}", out.stderr);
    out.stdout
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .unwrap_or_else(|| panic!("client add {name} printed no secret"))
        .to_string()
}

/// `Authorization: Basic …` for a service client, id and secret form-encoded first as
/// RFC 6749 §2.3.1 asks (`form` false: raw, as authlib and curl `-u` send them).
pub fn client_basic(id: &str, secret: &str, form: bool) -> String {
    let encode = |text: &str| -> String {
        if !form {
            return text.to_string();
        }
        text.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'*') {
                    char::from(b).to_string()
                } else if b == b' ' {
                    "+".to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    let pair = format!("{}:{}", encode(id), encode(secret));
    format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// `POST /auth/token` with `grant_type=client_credentials`, `form` appended (`&…`) and
/// extra header lines (the client's Basic credentials).
pub async fn client_token(gateway: &TestGateway, form: &str, headers: &[&str]) -> Response {
    post_form(
        gateway,
        "/auth/token",
        &format!("grant_type=client_credentials{form}"),
        headers,
    )
    .await
}

/// A client-credentials token that must be issued (Basic); the access token.
pub async fn client_token_ok(gateway: &TestGateway, id: &str, secret: &str) -> String {
    let response = client_token(gateway, "", &[&client_basic(id, secret, true)]).await;
    response.assert_status(200);
    token(&response.json(), "access_token")
}

/// `value` percent-encoded for a form body (everything but the unreserved characters).
pub fn form_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `[tokens]` for ES256 with one active key made by `gatehouse keys generate` in `keys`.
pub fn es256_tokens(keys: &std::path::Path) -> String {
    let key = keys.join("active.pem");
    let output = crate::common::binary::run(
        &[
            "keys",
            "generate",
            "--alg",
            "ES256",
            "--out",
            key.to_str().expect("utf-8 path"),
        ],
        "",
        |_| {},
    );
    assert_eq!(output.code, 0, "keys generate: {}", output.stderr);
    format!(
        "algorithm = \"ES256\"\nissuer = \"http://127.0.0.1:8080\"\nkeys = [{{ file = \"{}\", state = \"active\" }}]\n",
        key.display()
    )
}

/// A 401 `invalid_client` with the Basic challenge (RFC 6749 §5.2: the scheme the client
/// authenticates with).
pub fn assert_invalid_client_challenge(response: &Response, what: &str) {
    assert_eq!(
        response.status,
        401,
        "{what}: {}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.error_code(), "invalid_client", "{what}");
    assert_eq!(
        response.header("www-authenticate"),
        Some(r#"Basic realm="gatehouse""#),
        "{what}: RFC 6749 §5.2 asks for the scheme the client authenticates with"
    );
}

/// Starts a browser session (SPEC §10) for `username` in the store of a gateway started
/// with [`TestGateway::start_flaky`], as a sign-in through the form does, and waits until
/// the gateway's in-memory view knows it; its header line
/// `Cookie: __Host-gatehouse_session=…` (for tests of what a session does, not of the
/// sign-in pages).
pub async fn browser_session(
    gateway: &TestGateway,
    store: &crate::common::flaky_store::FlakyStore,
    username: &str,
) -> String {
    use gatehouse::store::{BrowserSessionRecord, SessionRecord, Store as _};
    let user = store
        .find_user_by_name(&username.to_ascii_lowercase())
        .await
        .expect("store")
        .expect("the user exists");
    let value = gatehouse::accounts::browser::new_cookie_value();
    let now = crate::common::now();
    let session = SessionRecord {
        family: gatehouse::accounts::browser::new_cookie_value(),
        user_id: user.id.clone(),
        created: now,
        generation: user.generation,
        expires_at: now + 3600,
        ended_at: None,
        browser: Some(BrowserSessionRecord {
            cookie_hash: gatehouse::accounts::browser::cookie_hash(&value),
            last_seen: now,
            remember_me: false,
        }),
    };
    store
        .insert_browser_session(&session)
        .await
        .expect("session stored");
    let cookie = format!("Cookie: __Host-gatehouse_session={value}");
    let deadline = std::time::Instant::now() + crate::common::DEADLINE;
    loop {
        let response = gateway
            .get("/auth/verify", &[cookie.as_str(), "Accept: */*"])
            .await;
        if response.status == 200 {
            return cookie;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway never accepted the new session: {}",
            response.status
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
