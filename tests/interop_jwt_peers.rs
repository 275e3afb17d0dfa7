//! Real relying parties verify gatehouse's access tokens (SPEC §4, §9): PyJWT
//! (`PyJWKClient` on the JWKS URL), jwcrypto (a JWK set built from the JWKS) and npm jose
//! (`createRemoteJWKSet` + `jwtVerify`), each pinned to the algorithm, `iss`, `aud` and
//! header `typ`, for every algorithm gatehouse signs with — key pairs from
//! `gatehouse keys generate`, HS256 with the shared secret — on tokens from a real login.
//! A tampered token is refused by every peer, and jose's RFC 7638 thumbprint of every
//! published key equals the `kid` gatehouse gives it.

mod common;

use common::accounts::PASSWORD;
use common::binary::{run_cli, write_config, Gatehouse};
use common::interop::{
    gateway_config, generate_key, peers, tampered, tokens_config, Signed, AUDIENCE, ISSUER,
};
use common::{bearer, EchoUpstream};

/// Every peer accepts the genuine token with the expected header and claims, and refuses
/// the tampered one; the gateway accepts the same token.
async fn every_peer_verifies(alg: &'static str) {
    let signed = Signed::start(alg, "").await;
    let bad = tampered(&signed.token);
    let answers = peers()
        .verify_everywhere(&signed.access_token_pin(), &[&signed.token, &bad])
        .await;
    assert_eq!(answers.len(), 3);
    for (peer, results) in &answers {
        let good = &results[0];
        assert_eq!(
            good["ok"],
            true,
            "{peer} refused a genuine {alg} token: {good}\ngateway log:\n{}",
            signed.gatehouse.log()
        );
        let header = &good["header"];
        let claims = &good["claims"];
        assert_eq!(header["alg"], alg, "{peer}: {header}");
        assert_eq!(claims["iss"], ISSUER, "{peer}: {claims}");
        assert_eq!(claims["aud"], AUDIENCE, "{peer}: {claims}");
        assert_eq!(claims["username"], "alice", "{peer}: {claims}");
        assert_eq!(claims["roles"], serde_json::json!(["reader"]), "{peer}");
        assert!(
            claims["sub"].is_string() && claims["jti"].is_string(),
            "{peer}: {claims}"
        );
        if !alg.starts_with("HS") {
            assert_eq!(header["typ"], "at+jwt", "{peer}: {header}");
            assert_eq!(header["kid"], signed.kid.as_str(), "{peer}: {header}");
            // RFC 9068 §2.2 / SPEC §9: `client_id` and `sid` besides the §4 claims.
            assert!(claims.get("client_id").is_some(), "{peer}: {claims}");
            assert!(claims["sid"].is_string(), "{peer}: {claims}");
        }
        assert_eq!(
            results[1]["ok"], false,
            "{peer} accepted a tampered {alg} token"
        );
    }
    assert_eq!(signed.gatehouse.me(&signed.token).await.status, 200);
    assert_eq!(signed.gatehouse.me(&bad).await.status, 401);
}

#[tokio::test]
async fn es256_tokens_verify_in_pyjwt_jwcrypto_and_jose() {
    every_peer_verifies("ES256").await;
}

#[tokio::test]
async fn eddsa_tokens_verify_in_pyjwt_jwcrypto_and_jose() {
    every_peer_verifies("EdDSA").await;
}

#[tokio::test]
async fn rs256_tokens_verify_in_pyjwt_jwcrypto_and_jose() {
    every_peer_verifies("RS256").await;
}

#[tokio::test]
async fn hs256_tokens_verify_in_pyjwt_jwcrypto_and_jose_with_the_shared_secret() {
    every_peer_verifies("HS256").await;
}

/// With keys of each algorithm in each published state, jose's `calculateJwkThumbprint` of
/// every JWKS entry is its `kid`, which is what `keys generate` printed; then a rotation by
/// reload (next → active, active → retired) leaves the token signed before it and the one
/// signed after it verifiable by every peer from the same JWKS URL.
#[tokio::test]
async fn kids_are_rfc7638_thumbprints_and_peers_follow_a_rotation() {
    for alg in ["ES256", "EdDSA", "RS256"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let upstream = EchoUpstream::start().await;
        let (old, old_kid) = generate_key(dir.path(), alg, "old.pem");
        let (new, new_kid) = generate_key(dir.path(), alg, "new.pem");
        assert_ne!(old_kid, new_kid);
        let secret = dir.path().join("unused-secret");
        let config_for = |keys: &[(&std::path::Path, &str)]| {
            gateway_config(
                dir.path(),
                upstream.addr,
                &tokens_config(alg, keys, &secret),
                "",
            )
        };
        let config = write_config(dir.path(), &config_for(&[(&old, "active"), (&new, "next")]));
        common::binary::cli_add_user(&config, "alice", &[], PASSWORD);
        let gatehouse = Gatehouse::start(dir.path(), &config, &[]).await;
        let jwks_uri = format!("http://{}/.well-known/jwks.json", gatehouse.addr);
        let pin = serde_json::json!({
            "jwks_uri": jwks_uri, "issuer": ISSUER, "audience": AUDIENCE,
            "algorithms": [alg], "typ": "at+jwt",
        });

        let before = gatehouse.login_ok("alice", PASSWORD).await["access_token"]
            .as_str()
            .expect("token")
            .to_string();
        let answer = peers()
            .jose(
                serde_json::json!({ "tokens": [before], "jwks_uri": jwks_uri,
                "issuer": ISSUER, "audience": AUDIENCE, "algorithms": [alg], "typ": "at+jwt" }),
            )
            .await;
        let mut kids: Vec<&str> = Vec::new();
        for entry in answer["thumbprints"].as_array().expect("thumbprints") {
            assert_eq!(entry["kid"], entry["thumbprint"], "{alg}: {entry}");
            kids.push(entry["kid"].as_str().expect("kid"));
        }
        kids.sort_unstable();
        let mut expected = vec![old_kid.as_str(), new_kid.as_str()];
        expected.sort_unstable();
        assert_eq!(
            kids, expected,
            "{alg}: the JWKS publishes the active and next keys"
        );
        assert_eq!(answer["results"][0]["header"]["kid"], old_kid.as_str());

        // Rotate: new signs, old is retired but still published and verifying.
        write_config(
            dir.path(),
            &config_for(&[(&old, "retired"), (&new, "active")]),
        );
        let reload = run_cli(&config, &["reload"], "", &[]);
        assert_eq!(reload.code, 0, "{alg}: reload: {reload:?}");
        let after = gatehouse.login_ok("alice", PASSWORD).await["access_token"]
            .as_str()
            .expect("token")
            .to_string();
        for (peer, results) in peers().verify_everywhere(&pin, &[&before, &after]).await {
            for (index, result) in results.iter().enumerate() {
                assert_eq!(result["ok"], true, "{alg} {peer} token {index}: {result}");
            }
            assert_eq!(results[0]["header"]["kid"], old_kid.as_str(), "{peer}");
            assert_eq!(results[1]["header"]["kid"], new_kid.as_str(), "{peer}");
        }
        for token in [&before, &after] {
            let response = gatehouse
                .request("GET", "/api/data", &[&bearer(token)], b"")
                .await;
            assert_eq!(response.status, 200, "{alg}: {}", gatehouse.log());
        }
    }
}
