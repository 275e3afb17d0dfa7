//! The verification snippets of docs/assertion.md run as written — PyJWT and npm jose —
//! against a real gateway's assertions: only the example URLs and the algorithm are put in
//! (the doc's `https://gw.example.com` becomes the test's issuer and JWKS URL,
//! `http://10.0.0.7:8000` the upstream's assertion audience). Each snippet's `identity()`
//! returns the user for the assertion that upstream received, and refuses no header, an
//! access token in the header, and another upstream's assertion.

mod common;

use common::interop::{peers, Signed, ISSUER, KEY_PAIR_ALGORITHMS};
use common::{bearer, EchoUpstream};

const DOC_ISSUER: &str = "https://gw.example.com";
const DOC_AUDIENCE: &str = "http://10.0.0.7:8000";

/// docs/assertion.md, read when the test runs.
fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/assertion.md");
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("read {path}: {error}"))
}

/// The first fenced block of `language` after `heading` in `doc`.
fn snippet<'a>(doc: &'a str, heading: &str, language: &str) -> &'a str {
    let after = doc
        .split_once(heading)
        .unwrap_or_else(|| panic!("docs/assertion.md has no {heading:?}"))
        .1;
    let fence = format!("```{language}\n");
    let body = after
        .split_once(&fence)
        .unwrap_or_else(|| panic!("no ```{language} block after {heading:?}"))
        .1;
    body.split_once("```").expect("closing fence").0
}

/// The snippet with the doc's example values replaced by this gateway's; each must occur.
fn adapted(code: &str, signed: &Signed, audience: &str) -> String {
    assert!(
        code.contains(DOC_ISSUER) && code.contains(DOC_AUDIENCE) && code.contains("ES256"),
        "the snippet no longer names {DOC_ISSUER}, {DOC_AUDIENCE} and ES256; adapt this test:\n{code}"
    );
    code.replace(
        &format!("{DOC_ISSUER}/.well-known/jwks.json"),
        &signed.jwks_uri(),
    )
    .replace(DOC_ISSUER, ISSUER)
    .replace(DOC_AUDIENCE, audience)
    .replace("ES256", signed.alg)
}

fn last_assertion(upstream: &EchoUpstream) -> String {
    upstream
        .last()
        .and_then(|seen| seen.header("x-gatehouse-assertion").map(str::to_string))
        .expect("an assertion upstream")
}

#[tokio::test]
async fn the_pyjwt_and_jose_snippets_verify_real_assertions() {
    let extra = r#"
[assertion]
enabled = true

[upstreams.orders]
url = "http://{UPSTREAM}"
assertion_audience = "https://orders.internal"

[[routes]]
path = "/orders/**"
upstream = "orders"
"#;
    let doc = doc();
    for alg in KEY_PAIR_ALGORITHMS {
        let signed = Signed::start(alg, extra).await;
        let audience = format!("http://{}", signed.upstream.addr);
        let sub = signed.gatehouse.me(&signed.token).await.json()["sub"].clone();
        let mut assertions = Vec::new();
        for path in ["/api/data", "/orders/1"] {
            let response = signed
                .gatehouse
                .request("GET", path, &[&bearer(&signed.token)], b"")
                .await;
            assert_eq!(response.status, 200, "{alg} {path}");
            assertions.push(last_assertion(&signed.upstream));
        }
        let headers = |name: &str| {
            serde_json::json!([
                { name: assertions[0] },
                {},
                { name: signed.token },
                { name: assertions[1] },
            ])
        };

        let python = adapted(
            snippet(&doc, "### Python: PyJWT", "python"),
            &signed,
            &audience,
        );
        let answer = peers()
            .python(serde_json::json!({
                "op": "doc_python", "snippet": python,
                "headers_list": headers("X-Gatehouse-Assertion"),
            }))
            .await;
        let results = answer["results"].as_array().expect("results").clone();
        let js = adapted(
            snippet(&doc, "### JavaScript: jose", "js"),
            &signed,
            &audience,
        );
        let jose = peers()
            .jose_module(&js, headers("x-gatehouse-assertion"))
            .await;
        for (peer, results) in [("PyJWT snippet", results), ("jose snippet", jose)] {
            assert_eq!(results[0]["ok"], true, "{alg} {peer}: {}", results[0]);
            let identity = &results[0]["identity"];
            // PyJWT's returns (sub, username, roles); jose's returns the payload.
            let (got_sub, username) = if identity.is_array() {
                (identity[0].clone(), identity[1].clone())
            } else {
                (identity["sub"].clone(), identity["username"].clone())
            };
            assert_eq!(got_sub, sub, "{alg} {peer}");
            assert_eq!(username, "alice", "{alg} {peer}");
            for (index, what) in [
                (1, "no header"),
                (2, "an access token"),
                (3, "another upstream's assertion"),
            ] {
                assert_eq!(
                    results[index]["ok"], false,
                    "{alg} {peer} accepted {what}: {}",
                    results[index]
                );
            }
        }
    }
}
