//! Token attacks (SPEC §4 validation, §9 header rules): every forged, tampered, expired,
//! misaddressed or oversized token, and every token whose header names or carries its own
//! key or demands extensions, gets 401 `invalid_token` with the RFC 6750 §3 challenge, and
//! the upstream never sees the request.

mod common;

use base64::Engine as _;
use common::{bearer, mint_with, TestGateway, SECRET};
use jsonwebtoken::Algorithm;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with exactly this header text, correctly signed with the gateway's secret.
fn signed_with_header(header: &str, claims: &serde_json::Value) -> String {
    let message = format!(
        "{}.{}",
        b64(header.as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .expect("sign");
    format!("{message}.{signature}")
}

async fn assert_invalid_token(gateway: &TestGateway, token: &str, why: &str) {
    let before = gateway.upstream.count();
    let response = gateway.get("/api/data", &[&bearer(token)]).await;
    assert_eq!(response.status, 401, "{why}");
    assert_eq!(response.error_code(), "invalid_token", "{why}");
    let challenge = response.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer realm=\"gatehouse\""),
        "{why}: {challenge}"
    );
    assert!(
        challenge.contains("error=\"invalid_token\""),
        "{why}: {challenge}"
    );
    assert!(
        !String::from_utf8_lossy(&response.body).contains(token),
        "{why}: token echoed"
    );
    assert_eq!(
        gateway.upstream.count(),
        before,
        "{why}: reached the upstream"
    );
}

#[tokio::test]
async fn the_genuine_token_passes_so_the_attacks_below_are_meaningful() {
    let gateway = TestGateway::start("").await;
    let alice = gateway.user("alice", &[]).await;
    let response = gateway.get("/api/data", &[&bearer(&alice.token)]).await;
    assert_eq!(response.status, 200);
    assert_eq!(gateway.upstream.count(), 1);
}

#[tokio::test]
async fn alg_none_is_refused_in_every_spelling() {
    let gateway = TestGateway::start("").await;
    let alice = gateway.user("alice", &[]).await;
    let payload = b64(TestGateway::claims_for(&alice).to_string().as_bytes());
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = b64(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes());
        assert_invalid_token(&gateway, &format!("{header}.{payload}."), alg).await;
        assert_invalid_token(&gateway, &format!("{header}.{payload}"), alg).await;
    }
}

#[tokio::test]
async fn algorithm_swaps_are_refused() {
    let gateway = TestGateway::start("").await;
    let alice = gateway.user("alice", &[]).await;
    let claims = TestGateway::claims_for(&alice);
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        assert_invalid_token(
            &gateway,
            &mint_with(alg, SECRET.as_bytes(), &claims),
            &format!("{alg:?}"),
        )
        .await;
    }
    // RS256 header with an HMAC signature made from the "public key" bytes (key confusion).
    let header = b64(br#"{"alg":"RS256","typ":"JWT"}"#);
    let payload = b64(claims.to_string().as_bytes());
    assert_invalid_token(
        &gateway,
        &format!("{header}.{payload}.c2lnbmF0dXJl"),
        "RS256",
    )
    .await;
}

#[tokio::test]
async fn tampered_tokens_are_refused() {
    let gateway = TestGateway::start("").await;
    let alice = gateway.user("alice", &["reader"]).await;
    let parts: Vec<&str> = alice.token.split('.').collect();
    // Escalate roles in the payload, keep the signature.
    let mut claims = TestGateway::claims_for(&alice);
    claims["roles"] = serde_json::json!(["admin"]);
    let forged_payload = b64(claims.to_string().as_bytes());
    assert_invalid_token(
        &gateway,
        &format!("{}.{}.{}", parts[0], forged_payload, parts[2]),
        "payload swap",
    )
    .await;
    // Flip the signature.
    let mut signature = parts[2].to_string();
    let last = if signature.ends_with('A') { 'B' } else { 'A' };
    signature.pop();
    signature.push(last);
    assert_invalid_token(
        &gateway,
        &format!("{}.{}.{}", parts[0], parts[1], signature),
        "signature flip",
    )
    .await;
    // Strip the signature.
    assert_invalid_token(
        &gateway,
        &format!("{}.{}.", parts[0], parts[1]),
        "no signature",
    )
    .await;
    // Signed with another secret.
    let other = mint_with(
        Algorithm::HS256,
        b"another-secret-another-secret-another",
        &TestGateway::claims_for(&alice),
    );
    assert_invalid_token(&gateway, &other, "other secret").await;
    // Garbage.
    for garbage in [
        "a.b.c",
        "abc",
        "....",
        "eyJhbGciOiJIUzI1NiJ9",
        "e30.e30.e30",
    ] {
        assert_invalid_token(&gateway, garbage, garbage).await;
    }
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused_beyond_the_leeway() {
    let gateway = TestGateway::start("").await;
    let alice = gateway.user("alice", &[]).await;
    let now = common::now();
    let mut claims = TestGateway::claims_for(&alice);
    claims["exp"] = serde_json::json!(now - 120);
    claims["iat"] = serde_json::json!(now - 1000);
    claims["nbf"] = serde_json::json!(now - 1000);
    assert_invalid_token(&gateway, &gateway.mint(&claims), "expired").await;

    let mut claims = TestGateway::claims_for(&alice);
    claims["nbf"] = serde_json::json!(now + 300);
    assert_invalid_token(&gateway, &gateway.mint(&claims), "nbf in the future").await;

    let mut claims = TestGateway::claims_for(&alice);
    claims["iat"] = serde_json::json!(now + 300);
    assert_invalid_token(&gateway, &gateway.mint(&claims), "iat in the future").await;
}

#[tokio::test]
async fn tokens_within_the_leeway_are_accepted() {
    let gateway = TestGateway::start("").await;
    let alice = gateway.user("alice", &[]).await;
    let now = common::now();
    let mut claims = TestGateway::claims_for(&alice);
    claims["exp"] = serde_json::json!(now - 5);
    let response = gateway
        .get("/api/data", &[&bearer(&gateway.mint(&claims))])
        .await;
    assert_eq!(
        response.status, 200,
        "5 s past exp is inside the 30 s leeway"
    );
}

#[tokio::test]
async fn wrong_issuer_audience_and_missing_claims_are_refused() {
    let gateway = TestGateway::start("").await;
    let alice = gateway.user("alice", &[]).await;
    for (claim, value) in [("iss", "evil"), ("aud", "another-service")] {
        let mut claims = TestGateway::claims_for(&alice);
        claims[claim] = serde_json::json!(value);
        assert_invalid_token(&gateway, &gateway.mint(&claims), claim).await;
    }
    for missing in ["exp", "iss", "aud", "sub", "nbf"] {
        let mut claims = TestGateway::claims_for(&alice);
        claims.as_object_mut().expect("object").remove(missing);
        assert_invalid_token(
            &gateway,
            &gateway.mint(&claims),
            &format!("without {missing}"),
        )
        .await;
    }
    let mut claims = TestGateway::claims_for(&alice);
    claims["aud"] = serde_json::json!(["evil"]);
    assert_invalid_token(&gateway, &gateway.mint(&claims), "aud array").await;
}

/// Correctly signed tokens whose `exp`, `nbf`, `aud`, `iss` or `sub` has the wrong JSON type
/// are refused (the class of CVE-2026-25537, where jsonwebtoken < 10.3 skipped a wrong-typed
/// `exp`/`nbf` that was not required), including an `iss` array, which the library itself
/// accepts and only the typed claims refuse.
#[tokio::test]
async fn registered_claims_of_the_wrong_json_type_are_refused() {
    let gateway = TestGateway::start("").await;
    let alice = gateway.user("alice", &[]).await;
    let far = common::now() + 600;
    for (claim, value) in [
        ("exp", serde_json::json!(far.to_string())),
        ("exp", serde_json::json!("never")),
        ("exp", serde_json::json!(null)),
        ("nbf", serde_json::json!("0")),
        ("nbf", serde_json::json!({"after": 0})),
        ("aud", serde_json::json!(7)),
        ("iss", serde_json::json!(["gatehouse"])),
        ("iss", serde_json::json!(7)),
        ("sub", serde_json::json!(7)),
        ("sub", serde_json::json!(["sub-alice"])),
    ] {
        let mut claims = TestGateway::claims_for(&alice);
        claims[claim] = value;
        let why = format!("{claim}: {}", claims[claim]);
        assert_invalid_token(&gateway, &gateway.mint(&claims), &why).await;
    }
}

#[tokio::test]
async fn oversized_tokens_are_refused_unread() {
    let gateway = TestGateway::start("").await;
    let alice = gateway.user("alice", &[]).await;
    let mut claims = TestGateway::claims_for(&alice);
    claims["padding"] = serde_json::json!("x".repeat(10_000));
    assert_invalid_token(&gateway, &gateway.mint(&claims), "oversized").await;
}

#[tokio::test]
async fn authorization_header_shapes() {
    let gateway = TestGateway::start("").await;
    let alice = gateway.user("alice", &[]).await;
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let response = gateway
            .get(
                "/api/data",
                &[&format!("Authorization: {scheme} {}", alice.token)],
            )
            .await;
        assert_eq!(response.status, 200, "scheme {scheme} is case-insensitive");
    }
    let before = gateway.upstream.count();
    let twice = gateway
        .get("/api/data", &[&bearer(&alice.token), &bearer(&alice.token)])
        .await;
    assert_eq!(
        twice.status, 400,
        "two Authorization headers (RFC 6750 §3.1)"
    );
    assert_eq!(twice.error_code(), "invalid_request");
    let basic = gateway
        .get("/api/data", &["Authorization: Basic YWxpY2U6cGFzc3dvcmQ="])
        .await;
    assert_eq!(basic.status, 401);
    assert_eq!(basic.error_code(), "unauthorized");
    assert_eq!(
        basic.header("www-authenticate"),
        Some("Bearer realm=\"gatehouse\"")
    );
    for bad in [
        "Authorization: Bearer",
        "Authorization: Bearer ",
        "Authorization: Bearer a b",
        "Authorization: Bearer a\"b",
    ] {
        let response = gateway.get("/api/data", &[bad]).await;
        assert_eq!(response.status, 401, "{bad}");
    }
    let query = gateway
        .get(&format!("/api/data?access_token={}", alice.token), &[])
        .await;
    assert_eq!(
        query.status, 401,
        "tokens come only from the Authorization header"
    );
    assert_eq!(gateway.upstream.count(), before);
}

/// RFC 8725 §3.1 / SPEC §9: a token may not point at (`jku`, `x5u`) or carry (`jwk`, `x5c`)
/// the key to check it with, nor list extensions the verifier must understand (`crit`);
/// gatehouse writes none of them, fetches no key, and refuses them before any crypto —
/// even on a token signed with the right secret.
#[tokio::test]
async fn header_members_that_name_a_key_or_are_critical_are_refused() {
    let gateway = TestGateway::start("").await;
    let alice = gateway.user("alice", &[]).await;
    let claims = TestGateway::claims_for(&alice);
    let plain = signed_with_header(r#"{"alg":"HS256","typ":"JWT"}"#, &claims);
    let response = gateway.get("/api/data", &[&bearer(&plain)]).await;
    assert_eq!(
        response.status, 200,
        "the same header without the member passes"
    );
    for member in [
        r#""jku":"http://127.0.0.1:9/jwks.json""#,
        r#""x5u":"http://127.0.0.1:9/cert.pem""#,
        r#""jwk":{"kty":"oct","k":"c2VjcmV0"}"#,
        r#""x5c":["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]"#,
        r#""crit":["exp"]"#,
    ] {
        let header = format!(r#"{{"alg":"HS256","typ":"JWT",{member}}}"#);
        assert_invalid_token(&gateway, &signed_with_header(&header, &claims), &header).await;
    }
}

/// With HS* the `kid` is advisory, as it always was: the one shared secret checks a token
/// whatever `kid` it names, or none (other tools minting with the shared secret write
/// none). Pinned so the key-set lookup keeps it until key pairs (SPEC §9) arrive.
#[tokio::test]
async fn an_hmac_tokens_kid_is_advisory() {
    let gateway = TestGateway::start("").await;
    let alice = gateway.user("alice", &[]).await;
    let claims = TestGateway::claims_for(&alice);
    for header in [
        r#"{"alg":"HS256","typ":"JWT"}"#,
        r#"{"alg":"HS256","typ":"JWT","kid":"some-other-key"}"#,
        r#"{"alg":"HS256","kid":""}"#,
    ] {
        let response = gateway
            .get(
                "/api/data",
                &[&bearer(&signed_with_header(header, &claims))],
            )
            .await;
        assert_eq!(response.status, 200, "{header}");
    }
    let own_kid = jsonwebtoken::decode_header(&alice.token)
        .expect("header")
        .kid;
    assert!(own_kid.is_some(), "gatehouse writes a kid");
}
