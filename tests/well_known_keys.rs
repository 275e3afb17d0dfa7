//! The JWKS with key pairs (SPEC §9): every `next`, `active` and `retired` key of
//! `[[tokens.keys]]` is published, each under the `kid` that `gatehouse keys generate`
//! printed and that the tokens carry, with its public members only; a reload that changes
//! the keys changes the JWKS and its `ETag` (the old tag no longer gets a 304); a retired
//! key given as its public SPKI PEM is published too. Keys are made by the real binary.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::accounts::create_user;
use common::binary::run;
use common::TestGateway;

const JWKS: &str = "/.well-known/jwks.json";
const ISSUER: &str = "http://127.0.0.1:8080";

/// Members a public JWK never has: the private parts of EC, OKP and RSA keys, and `k`.
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];

/// `gatehouse keys generate --alg ALG --out DIR/NAME.pem`; the file and the printed kid.
fn generate(dir: &Path, alg: &str, name: &str) -> (PathBuf, String) {
    let file = dir.join(format!("{name}.pem"));
    let out = run(
        &[
            "keys",
            "generate",
            "--alg",
            alg,
            "--out",
            file.to_str().expect("utf-8"),
        ],
        "",
        |_| {},
    );
    assert_eq!(out.code, 0, "keys generate {alg}: {out:?}");
    let kid = out.stdout.trim().to_string();
    assert!(!kid.is_empty(), "a kid on stdout: {out:?}");
    (file, kid)
}

/// `[[tokens.keys]]` entries for `(file, state)`.
fn key_tables(keys: &[(&Path, &str)]) -> String {
    keys.iter()
        .map(|(file, state)| {
            format!(
                "[[tokens.keys]]\nfile = \"{}\"\nstate = \"{state}\"\n",
                file.display()
            )
        })
        .collect()
}

fn tokens_extra(alg: &str) -> String {
    format!("issuer = \"{ISSUER}\"\nalgorithm = \"{alg}\"")
}

/// Writes the gateway's config anew with these keys and reloads it.
fn reload_with(gateway: &TestGateway, alg: &str, keys: &[(&Path, &str)]) -> Result<(), String> {
    gateway.rewrite_config_with_tokens("", &tokens_extra(alg), &key_tables(keys))
}

/// The JWKS keys by kid.
fn jwks_by_kid(jwks: &serde_json::Value) -> BTreeMap<String, serde_json::Value> {
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|key| (key["kid"].as_str().expect("kid").to_string(), key.clone()))
        .collect()
}

/// The JOSE header of a JWT.
fn header_of(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let header = token.split('.').next().expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .expect("base64url header");
    serde_json::from_slice(&bytes).expect("JSON header")
}

#[tokio::test]
async fn every_configured_key_is_published_under_its_kid_with_public_members_only() {
    for alg in ["ES256", "EdDSA", "RS256"] {
        let keys_dir = tempfile::tempdir().expect("tempdir");
        let (next, next_kid) = generate(keys_dir.path(), alg, "next");
        let (active, active_kid) = generate(keys_dir.path(), alg, "active");
        let (retired, retired_kid) = generate(keys_dir.path(), alg, "retired");
        let gateway = TestGateway::start_with_tokens(
            "",
            &tokens_extra(alg),
            &key_tables(&[(&next, "next"), (&active, "active"), (&retired, "retired")]),
        )
        .await;
        let response = gateway.get(JWKS, &[]).await;
        response.assert_status(200);
        let published = jwks_by_kid(&response.json());
        let kids: Vec<&str> = published.keys().map(String::as_str).collect();
        let mut expected = vec![next_kid.as_str(), active_kid.as_str(), retired_kid.as_str()];
        expected.sort();
        assert_eq!(kids, expected, "{alg}: every state is published");
        for (kid, key) in &published {
            assert_eq!(key["alg"], alg, "{alg} {kid}");
            assert_eq!(key["use"], "sig", "{alg} {kid}");
            let members: Vec<&str> = key
                .as_object()
                .expect("object")
                .keys()
                .map(String::as_str)
                .collect();
            for private in PRIVATE_MEMBERS {
                assert!(!members.contains(&private), "{alg} {kid}: {members:?}");
            }
            let (kty, shape): (&str, &[&str]) = match alg {
                "ES256" => ("EC", &["crv", "x", "y"]),
                "EdDSA" => ("OKP", &["crv", "x"]),
                _ => ("RSA", &["n", "e"]),
            };
            assert_eq!(key["kty"], kty, "{alg} {kid}");
            for member in shape {
                assert!(key[member].is_string(), "{alg} {kid}: {member} in {key}");
            }
            match alg {
                "ES256" => assert_eq!(key["crv"], "P-256"),
                "EdDSA" => assert_eq!(key["crv"], "Ed25519"),
                _ => assert_eq!(key["e"], "AQAB"),
            }
        }
        // The tokens carry the active key's kid, the one `keys generate` printed.
        let user = create_user(&gateway, "alice", &[]).await;
        let header = header_of(&user.token);
        assert_eq!(header["kid"], active_kid.as_str(), "{alg}");
        assert_eq!(header["alg"], alg);
        assert_eq!(header["typ"], "at+jwt");
        // Discovery names the algorithm.
        let discovery = gateway
            .get("/.well-known/openid-configuration", &[])
            .await
            .json();
        assert_eq!(discovery["issuer"], ISSUER);
        assert_eq!(
            discovery["id_token_signing_alg_values_supported"],
            serde_json::json!([alg])
        );
        assert_eq!(gateway.upstream.count(), 0);
    }
}

#[tokio::test]
async fn a_retired_key_given_as_its_public_key_is_published() {
    let keys_dir = tempfile::tempdir().expect("tempdir");
    let (active, active_kid) = generate(keys_dir.path(), "ES256", "active");
    let (old, old_kid) = generate(keys_dir.path(), "ES256", "old");
    let public = keys_dir.path().join("old.pub.pem");
    let out = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&old)
        .arg("-out")
        .arg(&public)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "{out:?}");
    let gateway = TestGateway::start_with_tokens(
        "",
        &tokens_extra("ES256"),
        &key_tables(&[(&active, "active"), (&public, "retired")]),
    )
    .await;
    let published = jwks_by_kid(&gateway.get(JWKS, &[]).await.json());
    assert!(published.contains_key(&active_kid), "{published:?}");
    assert!(
        published.contains_key(&old_kid),
        "the same kid from the public key as from the private one: {published:?}"
    );
}

#[tokio::test]
async fn a_reload_that_changes_the_keys_republishes_the_jwks_with_a_new_etag() {
    let keys_dir = tempfile::tempdir().expect("tempdir");
    let (a, a_kid) = generate(keys_dir.path(), "ES256", "a");
    let (b, b_kid) = generate(keys_dir.path(), "ES256", "b");
    let gateway =
        TestGateway::start_with_tokens("", &tokens_extra("ES256"), &key_tables(&[(&a, "active")]))
            .await;
    let kids = |response: &common::Response| -> Vec<String> {
        jwks_by_kid(&response.json()).into_keys().collect()
    };
    let first = gateway.get(JWKS, &[]).await;
    assert_eq!(kids(&first), vec![a_kid.clone()]);
    let first_tag = first.header("etag").expect("etag").to_string();
    let if_first = format!("If-None-Match: {first_tag}");
    assert_eq!(gateway.get(JWKS, &[&if_first]).await.status, 304);

    // 1. b is published as `next`: a new set, a new tag; the old tag gets the new set.
    reload_with(&gateway, "ES256", &[(&a, "active"), (&b, "next")]).expect("reload");
    let second = gateway.get(JWKS, &[&if_first]).await;
    second.assert_status(200);
    let mut both = vec![a_kid.clone(), b_kid.clone()];
    both.sort();
    assert_eq!(kids(&second), both);
    let second_tag = second.header("etag").expect("etag").to_string();
    assert_ne!(second_tag, first_tag);
    assert_eq!(
        gateway
            .get(JWKS, &[&format!("If-None-Match: {second_tag}")])
            .await
            .status,
        304
    );

    // 2. b signs, a is retired: both still published; new tokens carry b's kid.
    reload_with(&gateway, "ES256", &[(&a, "retired"), (&b, "active")]).expect("reload");
    assert_eq!(kids(&gateway.get(JWKS, &[]).await), both);
    let user = create_user(&gateway, "bob", &[]).await;
    assert_eq!(header_of(&user.token)["kid"], b_kid.as_str());

    // 3. a is removed: only b is left, under yet another tag.
    reload_with(&gateway, "ES256", &[(&b, "active")]).expect("reload");
    let last = gateway.get(JWKS, &[]).await;
    assert_eq!(kids(&last), vec![b_kid.clone()]);
    let last_tag = last.header("etag").expect("etag");
    assert_ne!(last_tag, first_tag);
    assert_ne!(last_tag, second_tag);

    // A refused reload (a key file that is not there) keeps the running set.
    let missing = keys_dir.path().join("missing.pem");
    assert!(reload_with(&gateway, "ES256", &[(&missing, "active")]).is_err());
    assert_eq!(gateway.get(JWKS, &[]).await.header("etag"), Some(last_tag));
    assert_eq!(gateway.upstream.count(), 0);
}
