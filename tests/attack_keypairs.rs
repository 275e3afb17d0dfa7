//! Attacks on key-pair tokens (SPEC §4 validation, §9 header rules), over HTTP against the
//! real binary signing with ES256, EdDSA and RS256 keys from `gatehouse keys generate`:
//! every hostile token gets 401 `invalid_token` with the RFC 6750 §3 challenge and the
//! upstream never sees the request.
//!
//! The tokens are forged by `tests/interop/peers.py` (Python `cryptography`) from a genuine
//! token of a real login; where the fault under test is in the header or the claims, the
//! forgery is signed with the gateway's REAL key file, so that fault is the only one — and
//! every test first proves that the same machinery, adding no fault, forges a token the
//! gateway accepts.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::bearer;
use common::interop::{peers, Signed, AUDIENCE, ISSUER, KEY_PAIR_ALGORITHMS};

/// 401 `invalid_token`, the challenge, no token echoed, nothing forwarded.
async fn assert_refused(signed: &Signed, case: &str, token: &str) {
    let before = signed.upstream.count();
    let response = signed
        .gatehouse
        .request("GET", "/api/data", &[&bearer(token)], b"")
        .await;
    let why = format!("{} {case}", signed.alg);
    assert_eq!(
        response.status,
        401,
        "{why}: {}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.error_code(), "invalid_token", "{why}");
    let challenge = response.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer realm=\"gatehouse\"")
            && challenge.contains("error=\"invalid_token\""),
        "{why}: {challenge}"
    );
    assert!(
        !String::from_utf8_lossy(&response.body).contains(token),
        "{why}: token echoed"
    );
    assert_eq!(
        signed.upstream.count(),
        before,
        "{why}: reached the upstream"
    );
}

/// The forging machinery, adding no fault, makes a token the gateway accepts.
async fn assert_control_accepted(signed: &Signed) {
    let forged = forge(signed, "control", serde_json::json!({})).await;
    for (case, token) in forged {
        let response = signed
            .gatehouse
            .request("GET", "/api/data", &[&bearer(&token)], b"")
            .await;
        assert_eq!(
            response.status,
            200,
            "{} {case}: {}\nlog:\n{}",
            signed.alg,
            String::from_utf8_lossy(&response.body),
            signed.gatehouse.log()
        );
    }
}

async fn forge(signed: &Signed, category: &str, extra: serde_json::Value) -> Vec<(String, String)> {
    peers()
        .forge(category, signed.alg, &signed.key_file, &signed.token, extra)
        .await
}

/// For each key-pair algorithm: a gateway, the control, then every token of `category`.
async fn category_refused(category: &str) {
    for alg in KEY_PAIR_ALGORITHMS {
        let signed = Signed::start(alg, "").await;
        assert_control_accepted(&signed).await;
        let forged = forge(&signed, category, serde_json::json!({})).await;
        assert!(!forged.is_empty(), "{alg} {category}: nothing forged");
        for (case, token) in &forged {
            assert_refused(&signed, case, token).await;
        }
        // The genuine token still works afterwards: nothing above poisoned a cache.
        let response = signed
            .gatehouse
            .request("GET", "/api/data", &[&bearer(&signed.token)], b"")
            .await;
        assert_eq!(
            response.status, 200,
            "{alg}: genuine token after {category}"
        );
    }
}

#[tokio::test]
async fn alg_none_is_refused_in_every_spelling() {
    category_refused("alg_none").await;
}

#[tokio::test]
async fn in_family_algorithm_swaps_are_refused() {
    category_refused("alg_swap").await;
}

#[tokio::test]
async fn injected_kids_are_refused() {
    category_refused("kid").await;
}

#[tokio::test]
async fn embedded_jwk_and_x5c_keys_are_never_used() {
    category_refused("embedded_key").await;
}

#[tokio::test]
async fn crit_is_refused() {
    category_refused("crit").await;
}

#[tokio::test]
async fn zero_truncated_and_out_of_range_signatures_are_refused() {
    category_refused("signature").await;
}

#[tokio::test]
async fn base64_padding_and_alphabet_variants_are_refused() {
    category_refused("base64").await;
}

#[tokio::test]
async fn claims_of_the_wrong_type_or_value_are_refused() {
    category_refused("claims").await;
}

#[tokio::test]
async fn a_typ_other_than_at_jwt_is_refused() {
    category_refused("typ").await;
}

/// HS256/384/512 tokens whose HMAC key is our public key, in every encoding an attacker
/// could take from the JWKS or a PEM (RFC 8725 §2.1 key confusion).
#[tokio::test]
async fn hmac_keyed_with_our_public_key_is_refused_in_every_encoding() {
    for alg in KEY_PAIR_ALGORITHMS {
        let signed = Signed::start(alg, "").await;
        let jwks = signed.jwks().await;
        let forged = forge(
            &signed,
            "hmac_public_key",
            serde_json::json!({ "jwks": jwks }),
        )
        .await;
        assert!(forged.len() >= 30, "{alg}: {} encodings", forged.len());
        for (case, token) in &forged {
            assert_refused(&signed, case, token).await;
        }
    }
}

/// `jku` / `x5u` naming a loopback listener: refused, and the listener never sees a
/// connection (gatehouse never fetches a key).
#[tokio::test]
async fn jku_and_x5u_are_never_fetched() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/jwks.json", listener.local_addr().expect("addr"));
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    for alg in KEY_PAIR_ALGORITHMS {
        let signed = Signed::start(alg, "").await;
        assert_control_accepted(&signed).await;
        let forged = forge(&signed, "key_urls", serde_json::json!({ "url": url })).await;
        assert_eq!(forged.len(), 4);
        for (case, token) in &forged {
            assert_refused(&signed, case, token).await;
        }
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "gatehouse fetched a key URL"
    );
    // The counter counts: one connection of our own shows up.
    let url = url
        .trim_start_matches("http://")
        .trim_end_matches("/jwks.json");
    let _probe = tokio::net::TcpStream::connect(url).await.expect("connect");
    let deadline = Instant::now() + common::DEADLINE;
    while connections.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the listener counts no connection"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Revocation is by `jti`, not by token bytes: after logout, the high-s twin of the revoked
/// ES256 token — a different encoding of an equally valid signature (peers.py checks it
/// verifies) — is refused too.
#[tokio::test]
async fn the_high_s_twin_of_a_revoked_token_is_refused() {
    let signed = Signed::start("ES256", "").await;
    // Verified once, so it sits in the verified-token cache when it is revoked.
    let response = signed
        .gatehouse
        .request("GET", "/api/data", &[&bearer(&signed.token)], b"")
        .await;
    assert_eq!(response.status, 200);
    let logout = signed
        .gatehouse
        .request(
            "POST",
            "/auth/logout",
            &[&bearer(&signed.token), "Content-Type: application/json"],
            b"{}",
        )
        .await;
    assert_eq!(
        logout.status,
        204,
        "{}",
        String::from_utf8_lossy(&logout.body)
    );
    assert_refused(&signed, "the revoked token", &signed.token).await;
    let twins = forge(&signed, "high_s", serde_json::json!({})).await;
    assert_eq!(twins.len(), 1);
    assert_ne!(twins[0].1, signed.token);
    assert_refused(&signed, &twins[0].0, &twins[0].1).await;
}

/// An access token is not an assertion: relying parties pinned the way docs/ tells
/// upstreams to verify assertions (`typ` `gatehouse-assertion+jwt`, `aud` the upstream's
/// assertion audience) refuse it, though the same peers accept it as an access token.
#[tokio::test]
async fn an_access_token_is_refused_by_assertion_verifiers() {
    for alg in KEY_PAIR_ALGORITHMS {
        let signed = Signed::start(alg, "").await;
        let access = signed.access_token_pin();
        for (peer, results) in peers().verify_everywhere(&access, &[&signed.token]).await {
            assert_eq!(results[0]["ok"], true, "{alg} {peer}: {}", results[0]);
        }
        let upstream_origin = format!("http://{}", signed.upstream.addr);
        for (typ, audience) in [
            ("gatehouse-assertion+jwt", AUDIENCE.to_string()),
            ("gatehouse-assertion+jwt", upstream_origin.clone()),
            ("at+jwt", upstream_origin.clone()),
        ] {
            let mut pin = access.clone();
            pin["typ"] = typ.into();
            pin["audience"] = audience.clone().into();
            for (peer, results) in peers().verify_everywhere(&pin, &[&signed.token]).await {
                assert_eq!(
                    results[0]["ok"], false,
                    "{alg} {peer} pinned to typ {typ} aud {audience} accepted an access token"
                );
            }
        }
        assert_eq!(access["issuer"], ISSUER);
    }
}

/// An assertion (SPEC §9: `typ` `gatehouse-assertion+jwt`, `aud` an upstream's) captured at
/// an upstream and presented to gatehouse as a bearer token: refused.
#[tokio::test]
async fn an_assertion_is_refused_as_a_bearer_token() {
    for alg in KEY_PAIR_ALGORITHMS {
        let extra = "[assertion]\nenabled = true\n";
        let signed = Signed::start(alg, extra).await;
        let response = signed
            .gatehouse
            .request("GET", "/api/data", &[&bearer(&signed.token)], b"")
            .await;
        assert_eq!(response.status, 200, "{alg}");
        let assertion = signed
            .upstream
            .last()
            .and_then(|seen| seen.header("x-gatehouse-assertion").map(str::to_string))
            .unwrap_or_else(|| panic!("{alg}: no assertion upstream"));
        assert_refused(&signed, "assertion as a bearer token", &assertion).await;
        let me = signed.gatehouse.me(&assertion).await;
        assert_eq!(me.status, 401, "{alg}: /auth/me with an assertion");
    }
}
