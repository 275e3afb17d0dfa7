//! The upstream identity assertion end to end (SPEC §9 "Assertion"): a gateway with an
//! ES256 key made by `gatehouse keys generate`, two real echo upstreams, real users.
//! Assertions are verified as an upstream would — with the key published at
//! `/.well-known/jwks.json`, pinning `alg`, `iss`, `aud` and `typ` — using jsonwebtoken
//! directly (not gatehouse's own verification code). PyJWT and jose run the same checks in
//! the interop tests.

mod common;

use std::path::Path;

use common::accounts::{admin, claims_of, create_user};
use common::{bearer, TestGateway, TestUser};
use gatehouse::admin::protocol::Request;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

const HEADER: &str = "x-gatehouse-assertion";
const TYP: &str = "gatehouse-assertion+jwt";
/// `tokens.issuer`: http:// is allowed for loopback (SPEC §9).
const ISSUER: &str = "http://127.0.0.1:8080";
const BILLING_AUDIENCE: &str = "https://billing.internal";

/// `gatehouse keys generate --alg ES256 --out DIR/NAME`.
fn generate_key(dir: &Path, name: &str) -> std::path::PathBuf {
    let out = dir.join(name);
    let output = common::binary::run(
        &[
            "keys",
            "generate",
            "--alg",
            "ES256",
            "--out",
            out.to_str().expect("utf-8 path"),
        ],
        "",
        |_| {},
    );
    assert_eq!(output.code, 0, "keys generate: {}", output.stderr);
    out
}

/// `[tokens]` keys for ES256 with one active key made by `gatehouse keys generate` in
/// `keys` (kept by the test for as long as the gateway runs).
fn key_pair(keys: &tempfile::TempDir) -> String {
    let key = generate_key(keys.path(), "active.pem");
    format!(
        "algorithm = \"ES256\"\nissuer = \"{ISSUER}\"\nkeys = [{{ file = \"{}\", state = \"active\" }}]\n",
        key.display()
    )
}

/// A gateway in front of the harness's echo upstream with ES256 tokens and `extra`; the
/// key directory goes with it.
async fn start(extra: &str) -> (TestGateway, tempfile::TempDir) {
    let keys = tempfile::tempdir().expect("tempdir");
    let gateway = TestGateway::start_with_tokens("", &key_pair(&keys), extra).await;
    (gateway, keys)
}

/// A gateway with assertions on, `billing` (a second echo upstream, audience configured)
/// under `/billing/**`, and a public `/open/**`.
async fn gateway(billing: &common::EchoUpstream) -> (TestGateway, tempfile::TempDir) {
    let extra = format!(
        r#"
[assertion]
enabled = true
ttl = "60s"

[upstreams.billing]
url = "http://{billing}"
assertion_audience = "{BILLING_AUDIENCE}"

[[routes]]
path = "/billing/**"
upstream = "billing"

[[routes]]
path = "/open/**"
access = "public"
"#,
        billing = billing.addr
    );
    start(&extra).await
}

/// The published keys.
async fn jwks(gateway: &TestGateway) -> JwkSet {
    let response = gateway.get("/.well-known/jwks.json", &[]).await;
    response.assert_status(200);
    serde_json::from_slice(&response.body).expect("a JWK set")
}

/// Verifies `token` as an upstream whose audience is `audience` would.
fn verify(jwks: &JwkSet, token: &str, audience: &str) -> Result<serde_json::Value, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|err| err.to_string())?;
    if header.typ.as_deref() != Some(TYP) {
        return Err(format!("typ {:?}", header.typ));
    }
    let kid = header.kid.ok_or("no kid")?;
    let jwk = jwks.find(&kid).ok_or("unknown kid")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|err| err.to_string())?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["iss", "aud", "sub", "exp", "nbf"]);
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|err| format!("{:?}", err.kind()))
}

fn origin(upstream: &common::EchoUpstream) -> String {
    format!("http://{}", upstream.addr)
}

/// The one assertion the upstream's last request carried.
fn received_assertion(upstream: &common::EchoUpstream) -> String {
    let last = upstream.last().expect("a request arrived");
    let all = last.all(HEADER);
    assert_eq!(all.len(), 1, "exactly one assertion: {all:?}");
    all[0].to_string()
}

async fn user(gateway: &TestGateway, name: &str, roles: &[&str]) -> TestUser {
    create_user(gateway, name, roles).await
}

#[tokio::test]
async fn each_upstream_receives_an_assertion_for_its_own_audience() {
    let billing = common::EchoUpstream::start().await;
    let (gateway, _keys) = gateway(&billing).await;
    let alice = user(&gateway, "alice", &["admin", "reader"]).await;
    let keys = jwks(&gateway).await;

    gateway
        .get("/orders/1", &[&bearer(&alice.token)])
        .await
        .assert_status(200);
    let to_default = received_assertion(&gateway.upstream);
    let header = jsonwebtoken::decode_header(&to_default).expect("header");
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.typ.as_deref(), Some(TYP));
    let access_kid = jsonwebtoken::decode_header(&alice.token)
        .expect("header")
        .kid;
    assert_eq!(header.kid, access_kid, "signed by the active key");
    let claims = verify(&keys, &to_default, &origin(&gateway.upstream)).expect("verifies");
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(
        claims["aud"],
        origin(&gateway.upstream),
        "default: the URL origin"
    );
    assert_eq!(claims["sub"], alice.sub.as_str());
    assert_eq!(claims["username"], "alice");
    assert_eq!(claims["roles"], serde_json::json!(["admin", "reader"]));
    assert_eq!(claims["sid"], claims_of(&alice.token)["sid"]);
    assert!(claims["jti"].as_str().is_some_and(|jti| !jti.is_empty()));
    assert_eq!(claims["nbf"], claims["iat"]);
    assert_eq!(
        claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat"),
        60,
        "exp = iat + ttl"
    );

    gateway
        .get("/billing/invoices", &[&bearer(&alice.token)])
        .await
        .assert_status(200);
    let to_billing = received_assertion(&billing);
    let claims = verify(&keys, &to_billing, BILLING_AUDIENCE).expect("verifies");
    assert_eq!(claims["aud"], BILLING_AUDIENCE);
    assert_eq!(claims["username"], "alice");

    // Cross-upstream replay: each upstream pins its own audience.
    assert_eq!(
        verify(&keys, &to_billing, &origin(&gateway.upstream)),
        Err("InvalidAudience".to_string())
    );
    assert_eq!(
        verify(&keys, &to_default, BILLING_AUDIENCE),
        Err("InvalidAudience".to_string())
    );
    // And an access token is no assertion: another typ (and audience).
    assert!(verify(&keys, &alice.token, &origin(&gateway.upstream))
        .expect_err("an access token")
        .contains("typ"));
}

#[tokio::test]
async fn client_copies_are_stripped_and_anonymous_requests_carry_none() {
    let billing = common::EchoUpstream::start().await;
    let (gateway, _keys) = gateway(&billing).await;
    let alice = user(&gateway, "alice", &[]).await;
    let keys = jwks(&gateway).await;
    let forged = [
        "X-Gatehouse-Assertion: forged",
        "x_gatehouse_assertion: forged",
        "X-GATEHOUSE-ASSERTION: forged",
    ];

    // Anonymous on a public route: none at all.
    gateway.get("/open/page", &forged).await.assert_status(200);
    let last = gateway.upstream.last().expect("forwarded");
    assert!(last.all(HEADER).is_empty(), "{:?}", last.headers);
    assert!(
        last.all("x_gatehouse_assertion").is_empty(),
        "{:?}",
        last.headers
    );

    // A bad token on a public route passes anonymously: none either.
    let mut headers = forged.to_vec();
    headers.push("Authorization: Bearer not.a.token");
    gateway.get("/open/page", &headers).await.assert_status(200);
    let last = gateway.upstream.last().expect("forwarded");
    assert!(last.all(HEADER).is_empty(), "{:?}", last.headers);

    // With an identity (protected, and public with a valid token, as the identity
    // headers): exactly one, gatehouse's own.
    let auth = bearer(&alice.token);
    for path in ["/orders/1", "/open/page"] {
        let mut headers = forged.to_vec();
        headers.push(&auth);
        gateway.get(path, &headers).await.assert_status(200);
        let last = gateway.upstream.last().expect("forwarded");
        assert!(last.all("x_gatehouse_assertion").is_empty(), "{path}");
        let token = received_assertion(&gateway.upstream);
        let claims = verify(&keys, &token, &origin(&gateway.upstream)).expect("verifies");
        assert_eq!(claims["username"], "alice", "{path}");
        assert_eq!(claims["roles"], serde_json::json!([]), "{path}: never null");
    }

    // A refused request is not forwarded at all.
    let before = gateway.upstream.count();
    gateway.get("/orders/1", &forged).await.assert_status(401);
    assert_eq!(gateway.upstream.count(), before);
}

#[tokio::test]
async fn an_assertion_is_refused_as_a_bearer_token() {
    let billing = common::EchoUpstream::start().await;
    let (gateway, _keys) = gateway(&billing).await;
    let alice = user(&gateway, "alice", &["admin"]).await;
    gateway
        .get("/orders/1", &[&bearer(&alice.token)])
        .await
        .assert_status(200);
    let assertion = received_assertion(&gateway.upstream);
    let before = gateway.upstream.count();
    for path in ["/orders/1", "/auth/me"] {
        let response = gateway.get(path, &[&bearer(&assertion)]).await;
        response.assert_status(401);
        assert_eq!(response.error_code(), "invalid_token", "{path}");
    }
    assert_eq!(gateway.upstream.count(), before, "never forwarded");
    // Nor does forward-auth take it.
    gateway
        .get("/auth/verify", &[&bearer(&assertion)])
        .await
        .assert_status(401);
}

#[tokio::test]
async fn an_assertion_is_reused_while_fresh_and_follows_role_changes() {
    let billing = common::EchoUpstream::start().await;
    let (gateway, _keys) = gateway(&billing).await;
    let alice = user(&gateway, "alice", &["reader"]).await;
    let keys = jwks(&gateway).await;
    let auth = bearer(&alice.token);

    gateway.get("/a", &[&auth]).await.assert_status(200);
    let first = received_assertion(&gateway.upstream);
    gateway.get("/b", &[&auth]).await.assert_status(200);
    assert_eq!(
        received_assertion(&gateway.upstream),
        first,
        "the cached assertion, not a new signature"
    );

    let reply = admin(
        &gateway,
        Request::Roles {
            username: "alice".into(),
            roles: vec!["reader".into(), "admin".into()],
        },
    )
    .await;
    assert!(reply.ok, "{reply:?}");
    gateway.get("/c", &[&auth]).await.assert_status(200);
    let after = received_assertion(&gateway.upstream);
    assert_ne!(after, first);
    let claims = verify(&keys, &after, &origin(&gateway.upstream)).expect("verifies");
    assert_eq!(claims["roles"], serde_json::json!(["reader", "admin"]));
    assert_eq!(
        gateway
            .upstream
            .last()
            .expect("forwarded")
            .header("x-auth-roles"),
        Some("reader,admin"),
        "the same roles as the identity header"
    );
}

#[tokio::test]
async fn forward_auth_answers_with_the_assertion_for_the_decided_upstream() {
    let billing = common::EchoUpstream::start().await;
    let extra = format!(
        r#"
[headers]
trusted_proxies = ["127.0.0.1/32"]

[assertion]
enabled = true

[upstreams.billing]
url = "http://{billing}"
assertion_audience = "{BILLING_AUDIENCE}"

[[routes]]
path = "/billing/**"
upstream = "billing"

[[routes]]
path = "/open/**"
access = "public"
"#,
        billing = billing.addr
    );
    let (gateway, _keys) = start(&extra).await;
    let alice = user(&gateway, "alice", &["admin"]).await;
    let keys = jwks(&gateway).await;
    let auth = bearer(&alice.token);

    let response = gateway.get("/auth/verify", &[&auth]).await;
    response.assert_status(200);
    let token = response.header(HEADER).expect("an assertion");
    let claims = verify(&keys, token, &origin(&gateway.upstream)).expect("for default");
    assert_eq!(claims["username"], "alice");

    let response = gateway
        .get(
            "/auth/verify",
            &[
                &auth,
                "X-Forwarded-Method: GET",
                "X-Forwarded-Uri: /billing/x",
            ],
        )
        .await;
    response.assert_status(200);
    let token = response.header(HEADER).expect("an assertion");
    verify(&keys, token, BILLING_AUDIENCE).expect("for billing");

    // Anonymous on a public route: present and empty, like the identity headers.
    let response = gateway
        .get(
            "/auth/verify",
            &["X-Forwarded-Method: GET", "X-Forwarded-Uri: /open/x"],
        )
        .await;
    response.assert_status(200);
    assert_eq!(response.header(HEADER), Some(""));
}

#[test]
fn check_config_refuses_assertions_with_a_shared_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::binary::write_config(
        dir.path(),
        &common::binary::binary_config(dir.path(), "[assertion]\nenabled = true\n"),
    );
    let output = common::binary::run_cli(&config, &["check-config"], "", &[]);
    assert_ne!(output.code, 0, "{}", output.stdout);
    let all = format!("{}{}", output.stdout, output.stderr);
    assert!(all.contains("assertion.enabled"), "{all}");
}

#[tokio::test]
async fn client_copies_are_stripped_also_when_assertions_are_off() {
    // The harness's HS256 gateway: assertions cannot be on, the header is still stripped.
    let gateway = TestGateway::start("").await;
    let alice = user(&gateway, "alice", &[]).await;
    gateway
        .get(
            "/x",
            &[&bearer(&alice.token), "X-Gatehouse-Assertion: forged"],
        )
        .await
        .assert_status(200);
    let last = gateway.upstream.last().expect("forwarded");
    assert!(last.all(HEADER).is_empty(), "{:?}", last.headers);
    assert_eq!(last.header("x-auth-user"), Some("alice"));
}
