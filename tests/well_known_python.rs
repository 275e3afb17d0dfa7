//! Real verifiers load gatehouse's JWKS (SPEC §9): PyJWT's `PyJWKClient` fetches
//! `/.well-known/jwks.json` and finds the key of a gatehouse token by its `kid`, jwcrypto's
//! `JWKSet` loads the same document, both verify the token (pinned algorithm, `iss`, `aud`),
//! and jwcrypto's RFC 7638 thumbprint of every published key equals its `kid`.
//!
//! The Python packages are the interop harness's (tests/common/interop.rs: pinned in
//! tests/interop/requirements.txt, installed once under a lock; without network access the
//! test fails saying what to run). The interop suite covers these libraries more widely;
//! this test only proves that the document gatehouse serves is one they load.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::accounts::create_user;
use common::binary::run;
use common::TestGateway;

const ISSUER: &str = "http://127.0.0.1:8080";

/// Fetches the JWKS and verifies the token as a relying party would; request on stdin.
const CHECK: &str = r#"
import json, sys, urllib.request
import jwt
from jwcrypto import jwk as jjwk, jwt as jjwt

request = json.load(sys.stdin)
token, url, alg = request["token"], request["jwks_url"], request["alg"]
out = {}

client = jwt.PyJWKClient(url, cache_keys=False, cache_jwk_set=False)
signing = client.get_signing_key_from_jwt(token)
claims = jwt.decode(token, signing.key, algorithms=[alg],
                    issuer=request["issuer"], audience=request["audience"])
out["pyjwt_kid"] = signing.key_id
out["pyjwt_sub"] = claims["sub"]
out["pyjwt_kids"] = sorted(key.key_id for key in client.get_signing_keys())

with urllib.request.urlopen(url, timeout=10) as response:
    document = response.read()
keyset = jjwk.JWKSet.from_json(document)
out["jwcrypto_kids"] = sorted(key.key_id for key in keyset)
out["jwcrypto_thumbprints"] = sorted(key.thumbprint() for key in keyset)
verified = jjwt.JWT(jwt=token, key=keyset, algs=[alg],
                    check_claims={"iss": request["issuer"], "aud": request["audience"]})
out["jwcrypto_sub"] = json.loads(verified.claims)["sub"]
print(json.dumps(out))
"#;

/// `gatehouse keys generate --alg ALG --out DIR/NAME.pem`; the file and the printed kid.
fn generate(dir: &Path, alg: &str, name: &str) -> (PathBuf, String) {
    let file = dir.join(format!("{name}.pem"));
    let path = file.to_str().expect("utf-8");
    let out = run(
        &["keys", "generate", "--alg", alg, "--out", path],
        "",
        |_| {},
    );
    assert_eq!(out.code, 0, "keys generate {alg}: {out:?}");
    (file, out.stdout.trim().to_string())
}

#[tokio::test]
async fn pyjwt_and_jwcrypto_load_the_jwks_and_verify_gatehouse_tokens() {
    let python = tokio::task::spawn_blocking(|| common::interop::peers().python_bin())
        .await
        .expect("peers");
    for alg in ["ES256", "EdDSA", "RS256"] {
        let keys = tempfile::tempdir().expect("tempdir");
        let (next, next_kid) = generate(keys.path(), alg, "next");
        let (active, active_kid) = generate(keys.path(), alg, "active");
        let (retired, retired_kid) = generate(keys.path(), alg, "retired");
        let tables: String = [(&next, "next"), (&active, "active"), (&retired, "retired")]
            .iter()
            .map(|(file, state)| {
                format!(
                    "[[tokens.keys]]\nfile = \"{}\"\nstate = \"{state}\"\n",
                    file.display()
                )
            })
            .collect();
        let gateway = TestGateway::start_with_tokens(
            "",
            &format!("issuer = \"{ISSUER}\"\nalgorithm = \"{alg}\""),
            &tables,
        )
        .await;
        let user = create_user(&gateway, "alice", &[]).await;
        let request = serde_json::json!({
            "token": user.token,
            "jwks_url": format!("http://{}/.well-known/jwks.json", gateway.addr),
            "alg": alg,
            "issuer": ISSUER,
            "audience": "gatehouse",
        });
        let python = python.clone();
        let out = tokio::task::spawn_blocking(move || {
            let mut child = Command::new(python)
                .args(["-c", CHECK])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("python");
            {
                use std::io::Write as _;
                let mut stdin = child.stdin.take().expect("stdin");
                stdin
                    .write_all(request.to_string().as_bytes())
                    .expect("write request");
            }
            child.wait_with_output().expect("python output")
        })
        .await
        .expect("join");
        assert!(
            out.status.success(),
            "{alg}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json answer");
        let mut kids = vec![next_kid, active_kid.clone(), retired_kid];
        kids.sort();
        assert_eq!(answer["pyjwt_kid"], active_kid.as_str(), "{alg}");
        assert_eq!(answer["pyjwt_sub"], user.sub.as_str(), "{alg}");
        assert_eq!(answer["pyjwt_kids"], serde_json::json!(kids), "{alg}");
        assert_eq!(answer["jwcrypto_kids"], serde_json::json!(kids), "{alg}");
        assert_eq!(
            answer["jwcrypto_thumbprints"],
            serde_json::json!(kids),
            "{alg}: kid = RFC 7638 thumbprint"
        );
        assert_eq!(answer["jwcrypto_sub"], user.sub.as_str(), "{alg}");
        assert_eq!(gateway.upstream.count(), 0);
    }
}
