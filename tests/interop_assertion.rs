//! The upstream identity assertion (SPEC §9 `[assertion]`) checked by real verifiers, pinned
//! as docs/assertion.md tells upstreams to pin them (JWKS URL, alg, `iss`, `aud` = this
//! upstream's assertion audience, `typ` `gatehouse-assertion+jwt`): PyJWT, jwcrypto and npm
//! jose accept what gatehouse sends each upstream and refuse it at another upstream
//! (cross-upstream replay) and where an access token is expected; HAProxy's `jwt_verify`,
//! placed between gatehouse and the upstream, lets through only requests that gatehouse
//! forwarded with an identity — a client's own copy of the header is stripped.

mod common;

use common::binary::third_party_listen_addr;
use common::interop::{haproxy_jwt_config, peers, Haproxy, Signed, ISSUER, KEY_PAIR_ALGORITHMS};
use common::{bearer, request, EchoUpstream};

const HEADER: &str = "X-Gatehouse-Assertion";
const TYP: &str = "gatehouse-assertion+jwt";
const ORDERS_AUDIENCE: &str = "https://orders.internal";

/// A verifier of assertions for the upstream whose assertion audience is `audience`.
fn assertion_pin(signed: &Signed, audience: &str) -> serde_json::Value {
    serde_json::json!({
        "jwks_uri": signed.jwks_uri(),
        "issuer": ISSUER,
        "audience": audience,
        "algorithms": [signed.alg],
        "typ": TYP,
    })
}

/// What the upstream received in the assertion header on the last request.
fn last_assertion(upstream: &EchoUpstream) -> Option<String> {
    upstream
        .last()
        .and_then(|seen| seen.header(HEADER).map(str::to_string))
}

#[tokio::test]
async fn assertions_verify_in_every_peer_only_at_their_own_upstream() {
    let extra = format!(
        r#"
[assertion]
enabled = true

[upstreams.orders]
url = "http://{{UPSTREAM}}"
assertion_audience = "{ORDERS_AUDIENCE}"

[[routes]]
path = "/orders/**"
upstream = "orders"

[[routes]]
path = "/public/**"
access = "public"
"#
    );
    for alg in KEY_PAIR_ALGORITHMS {
        let signed = Signed::start(alg, &extra).await;
        let default_audience = format!("http://{}", signed.upstream.addr);
        let sub = signed.gatehouse.me(&signed.token).await.json()["sub"]
            .as_str()
            .expect("sub")
            .to_string();

        let mut sent = Vec::new();
        for path in ["/api/data", "/orders/42"] {
            let response = signed
                .gatehouse
                .request("GET", path, &[&bearer(&signed.token)], b"")
                .await;
            assert_eq!(response.status, 200, "{alg} {path}");
            sent.push(last_assertion(&signed.upstream).unwrap_or_else(|| {
                panic!(
                    "{alg} {path}: no {HEADER} upstream; log:\n{}",
                    signed.gatehouse.log()
                )
            }));
        }
        let (to_default, to_orders) = (&sent[0], &sent[1]);
        assert_ne!(to_default, to_orders, "{alg}: one assertion per upstream");

        for (audience, own, other) in [
            (default_audience.as_str(), to_default, to_orders),
            (ORDERS_AUDIENCE, to_orders, to_default),
        ] {
            let answers = peers()
                .verify_everywhere(
                    &assertion_pin(&signed, audience),
                    &[own, other, &signed.token],
                )
                .await;
            for (peer, results) in answers {
                let good = &results[0];
                assert_eq!(good["ok"], true, "{alg} {peer} at {audience}: {good}");
                let (header, claims) = (&good["header"], &good["claims"]);
                assert_eq!(header["typ"], TYP, "{peer}");
                assert_eq!(header["kid"], signed.kid.as_str(), "{peer}");
                assert_eq!(claims["iss"], ISSUER, "{peer}");
                assert_eq!(claims["aud"], audience, "{peer}");
                assert_eq!(claims["sub"], sub.as_str(), "{peer}");
                assert_eq!(claims["username"], "alice", "{peer}");
                assert_eq!(claims["roles"], serde_json::json!(["reader"]), "{peer}");
                assert!(
                    claims["sid"].is_string() && claims["jti"].is_string(),
                    "{peer}"
                );
                let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
                assert_eq!(exp.zip(iat).map(|(e, i)| e - i), Some(60), "{peer}: ttl");
                assert_eq!(
                    results[1]["ok"], false,
                    "{alg} {peer} at {audience} accepted another upstream's assertion"
                );
                assert_eq!(
                    results[2]["ok"], false,
                    "{alg} {peer} at {audience} accepted an access token as an assertion"
                );
            }
        }

        // An access-token verifier refuses the assertions.
        for (peer, results) in peers()
            .verify_everywhere(&signed.access_token_pin(), &[to_default, to_orders])
            .await
        {
            assert!(
                results.iter().all(|result| result["ok"] == false),
                "{alg} {peer} accepted an assertion as an access token: {results:?}"
            );
        }

        // A client replaying a captured assertion on an anonymous request: stripped, and
        // gatehouse adds none.
        let response = signed
            .gatehouse
            .request(
                "GET",
                "/public/x",
                &[&format!("{HEADER}: {to_default}")],
                b"",
            )
            .await;
        assert_eq!(response.status, 200, "{alg}");
        assert_eq!(
            last_assertion(&signed.upstream),
            None,
            "{alg}: replayed assertion"
        );
    }
}

/// gatehouse → HAProxy (verifying the assertion header with the PEM from the JWKS) → echo:
/// a request with a token reaches the upstream carrying the verified `sub`; an anonymous
/// request with a forged assertion header, and a direct request to HAProxy with an access
/// token in that header, are refused there.
#[tokio::test]
async fn haproxy_in_front_of_an_upstream_accepts_only_gatehouse_assertions() {
    for alg in ["ES256", "RS256"] {
        let behind = EchoUpstream::start().await;
        let haproxy_addr = third_party_listen_addr();
        let extra = format!(
            r#"
[assertion]
enabled = true

[upstreams.guarded]
url = "http://{haproxy_addr}"

[[routes]]
path = "/guarded/open/**"
access = "public"
upstream = "guarded"

[[routes]]
path = "/guarded/**"
upstream = "guarded"
"#
        );
        let signed = Signed::start(alg, &extra).await;
        let dir = common::nginx::nginx_dir();
        let pem = signed.public_pem_from_jwks(dir.path()).await;
        let haproxy = Haproxy::start_on(
            dir.path(),
            haproxy_addr,
            &haproxy_jwt_config(
                &format!("req.hdr({HEADER})"),
                alg,
                &pem.display().to_string(),
                TYP,
                &format!("http://{haproxy_addr}"),
                behind.addr,
            ),
        )
        .await;
        let sub = signed.gatehouse.me(&signed.token).await.json()["sub"]
            .as_str()
            .expect("sub")
            .to_string();

        let response = signed
            .gatehouse
            .request("GET", "/guarded/orders", &[&bearer(&signed.token)], b"")
            .await;
        assert_eq!(response.status, 200, "{alg}: {}", haproxy.log());
        let seen = behind
            .last()
            .expect("the upstream behind HAProxy was reached");
        assert_eq!(
            seen.header("x-verified-subject"),
            Some(sub.as_str()),
            "{alg}"
        );

        let before = behind.count();
        let forged = format!("{HEADER}: {}", signed.token);
        let anonymous = signed
            .gatehouse
            .request("GET", "/guarded/open/x", &[&forged], b"")
            .await;
        assert_eq!(
            anonymous.status, 401,
            "{alg}: HAProxy refuses a request with no assertion"
        );
        let direct = request(haproxy.addr, "GET", "/guarded/orders", &[&forged], b"").await;
        assert_eq!(
            direct.status, 401,
            "{alg}: an access token is not an assertion"
        );
        assert_eq!(
            behind.count(),
            before,
            "{alg}: a refused request reached the upstream"
        );
    }
}
