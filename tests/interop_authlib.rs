//! authlib (PyPI), unmodified, as a service client of gatehouse (SPEC §4, issue #14):
//! its requests `OAuth2Session` fetches a client-credentials token (RFC 6749 §4.4) with
//! `client_secret_basic` and with `client_secret_post`, calls a protected route whose rule
//! needs the client's role, introspects the token with its RFC 7662 helper
//! (`introspect_token`), and sees `invalid_client` for a wrong secret. authlib is pinned in
//! tests/interop/requirements.txt and installed by the interop harness
//! (tests/common/interop.rs); the script is tests/interop/authlib_client.py.

mod common;

use common::accounts::add_client;
use common::interop::peers;
use common::TestGateway;

const ROUTES: &str = r#"
[[routes]]
path = "/deploy/**"
roles = ["deploy"]
"#;

async fn authlib_round_trip(auth_method: &str) {
    let gateway = TestGateway::start(ROUTES).await;
    let name = "ci-bot@example.com";
    let secret = add_client(&gateway, name, &["deploy"]).await;
    let base = format!("http://{}", gateway.addr);
    let answer = peers()
        .python_script(
            "authlib_client.py",
            serde_json::json!({
                "token_endpoint": format!("{base}/auth/token"),
                "introspection_endpoint": format!("{base}/auth/introspect"),
                "protected_url": format!("{base}/deploy/run"),
                "client_id": name,
                "client_secret": secret,
                "auth_method": auth_method,
            }),
        )
        .await;
    assert_eq!(answer["token_type"], "Bearer", "{auth_method}: {answer}");
    assert_eq!(answer["expires_in"], 900, "{answer}");
    let members = answer["token_members"].as_array().expect("members");
    assert!(
        !members.iter().any(|m| m == "refresh_token"),
        "no refresh token for client credentials: {answer}"
    );
    assert_eq!(answer["protected_status"], 200, "{answer}");
    let seen = gateway.upstream.last().expect("forwarded");
    assert_eq!(seen.target, "/deploy/run");
    assert_eq!(seen.header("x-auth-user"), Some(name));
    assert_eq!(seen.header("x-auth-roles"), Some("deploy"));

    assert_eq!(answer["introspection_status"], 200, "{answer}");
    let introspection = &answer["introspection"];
    assert_eq!(introspection["active"], true, "{answer}");
    assert_eq!(introspection["client_id"], name);
    assert_eq!(introspection["username"], name);
    assert_eq!(introspection["roles"], serde_json::json!(["deploy"]));
    assert_eq!(answer["inactive"], serde_json::json!({ "active": false }));
    assert_eq!(answer["wrong_secret"], "invalid_client", "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_client_secret_basic() {
    authlib_round_trip("client_secret_basic").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_client_secret_post() {
    authlib_round_trip("client_secret_post").await;
}
