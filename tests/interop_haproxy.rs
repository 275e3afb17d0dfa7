//! HAProxy (Debian's 2.6) verifies gatehouse's access tokens with `jwt_verify` in front of a
//! real upstream: the public key as PEM exported from gatehouse's own JWKS (ES256, RS256),
//! or the shared secret (HS256); alg, `typ`, `iss`, `aud` and `exp` pinned as in
//! benches/load/lib.sh. A genuine token from a real login gets through (200, the upstream
//! sees its `sub`); a tampered one, or none, is refused (401) and never reaches the upstream.
//!
//! HAProxy 2.6's `jwt_verify` knows HS*, RS* and ES* only: EdDSA (and PS*) is refused when
//! the config is parsed, which [`haproxy_2_6_cannot_verify_eddsa`] keeps true — if a newer
//! HAProxy learns it, that test fails and EdDSA joins the list here.

mod common;

use common::interop::{haproxy_check, haproxy_jwt_config, tampered, Haproxy, Signed, AUDIENCE};
use common::{bearer, request, SECRET};

fn haproxy_config(alg: &str, key: &str, typ: &str, upstream: std::net::SocketAddr) -> String {
    haproxy_jwt_config("http_auth_bearer", alg, key, typ, AUDIENCE, upstream)
}

async fn haproxy_verifies(alg: &'static str) {
    let signed = Signed::start(alg, "").await;
    let dir = common::nginx::nginx_dir();
    let (key, typ) = if alg.starts_with("HS") {
        (SECRET.to_string(), "JWT")
    } else {
        // The key as any verifier would get it: from the published JWKS, exported as PEM.
        let pem = signed.public_pem_from_jwks(dir.path()).await;
        (pem.display().to_string(), "at+jwt")
    };
    let haproxy = Haproxy::start(
        dir.path(),
        &haproxy_config(alg, &key, typ, signed.upstream.addr),
    )
    .await;

    let sub = signed.gatehouse.me(&signed.token).await.json()["sub"]
        .as_str()
        .expect("sub")
        .to_string();
    let good = request(
        haproxy.addr,
        "GET",
        "/api/data",
        &[&bearer(&signed.token)],
        b"",
    )
    .await;
    assert_eq!(good.status, 200, "{alg}: {}", haproxy.log());
    let seen = signed
        .upstream
        .last()
        .expect("the upstream saw the request");
    assert_eq!(seen.header("x-verified-subject"), Some(sub.as_str()));

    let before = signed.upstream.count();
    let bad = tampered(&signed.token);
    for (why, headers) in [("tampered", vec![bearer(&bad)]), ("no token", vec![])] {
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let response = request(haproxy.addr, "GET", "/api/data", &headers, b"").await;
        assert_eq!(response.status, 401, "{alg} {why}: {}", haproxy.log());
    }
    assert_eq!(
        signed.upstream.count(),
        before,
        "{alg}: a refused token reached the upstream"
    );
}

#[tokio::test]
async fn haproxy_jwt_verify_accepts_es256_tokens_with_the_jwks_key() {
    haproxy_verifies("ES256").await;
}

#[tokio::test]
async fn haproxy_jwt_verify_accepts_rs256_tokens_with_the_jwks_key() {
    haproxy_verifies("RS256").await;
}

#[tokio::test]
async fn haproxy_jwt_verify_accepts_hs256_tokens_with_the_shared_secret() {
    haproxy_verifies("HS256").await;
}

#[test]
fn haproxy_2_6_cannot_verify_eddsa() {
    let dir = common::nginx::nginx_dir();
    let key = dir.path().join("unused.pem");
    std::fs::write(&key, "").expect("write");
    let config = dir.path().join("haproxy.cfg");
    let upstream: std::net::SocketAddr = "127.0.0.1:9".parse().expect("addr");
    std::fs::write(
        &config,
        haproxy_config("EdDSA", &key.display().to_string(), "at+jwt", upstream)
            .replace("{LISTEN}", "127.0.0.1:0"),
    )
    .expect("write haproxy.cfg");
    let complaint = haproxy_check(&config).expect_err(
        "this HAProxy accepts jwt_verify(\"EdDSA\"): add EdDSA to the HAProxy interop tests",
    );
    assert!(
        complaint.contains("unknown JWT algorithm"),
        "refused for another reason: {complaint}"
    );
}
