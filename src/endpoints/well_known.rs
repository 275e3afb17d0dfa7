//! The documents gatehouse serves at the root (SPEC §9): `/.well-known/jwks.json` and the
//! RFC 8414 authorization server metadata at `/.well-known/openid-configuration` and
//! `/.well-known/oauth-authorization-server` (one document at both). Served by gatehouse
//! on the exact normalized path, never forwarded, whatever the routes say; no token needed.
//!
//! Nothing is built per request: the JWKS bytes and their `ETag` belong to the key ring
//! (computed once per key set, so a reload that swaps the keys republishes them); the
//! discovery document is computed once at start ([`WellKnown::new`]) from values that only
//! a restart changes (`tokens.issuer`, `tokens.algorithm`, `server.auth_prefix`); the
//! `Cache-Control` value comes from the reloadable `tokens.jwks.max_age`. A request costs
//! a few header clones.
//!
//! Both answer `GET` and `HEAD` (any other method: 405 with `Allow: GET, HEAD`) with
//! `Content-Type: application/json`, `Cache-Control: public, max-age=…`, a strong `ETag`
//! and `Access-Control-Allow-Origin: *` (the keys and metadata are public, and browser
//! apps verify tokens too). `If-None-Match` (RFC 9110 §13.1.2: a list of tags compared
//! weakly, or `*`) answers 304 with those headers and no body.
//!
//! `application/json` rather than RFC 7517's `application/jwk-set+json` for the JWKS: it
//! is what every major issuer serves and what every JWKS client accepts (some only look
//! for `application/json`); RFC 8414 §3.2 requires it for the metadata.
//!
//! Discovery needs URLs: it is served when `tokens.issuer` is an absolute `http(s)` URL
//! (the gateway's public URL, required with key pairs), and answers 404 otherwise (an
//! HS* gateway with the default issuer `gatehouse`: a document whose `jwks_uri` and
//! `token_endpoint` are no URLs would mislead every client that reads it; the JWKS,
//! `{"keys":[]}`, is still served). `issuer` is `tokens.issuer` byte for byte; the
//! endpoint URLs are the issuer (without a trailing `/`) followed by their path.
//! `response_types_supported` is `[]`: the member is required, and gatehouse has no
//! authorization endpoint, so it supports no response type (listing `token` would
//! advertise an implicit flow it does not have).

use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode};
use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::error::GatewayError;
use crate::http::{empty, full, Body, Published};

/// Where the JWKS is served.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// The OpenID Connect Discovery 1.0 §4 location of the metadata.
pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";
/// The RFC 8414 §3 location of the metadata.
pub const OAUTH_METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

const ALLOW: &str = "GET, HEAD";

/// One of the documents at the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    Jwks,
    Discovery,
}

impl Document {
    /// The document served at a normalized path, if any: exact matches only (a trailing
    /// `/`, another case or a longer path is not one of them, and goes on to the routes).
    pub fn at(path: &str) -> Option<Document> {
        match path {
            JWKS_PATH => Some(Document::Jwks),
            OPENID_CONFIGURATION_PATH | OAUTH_METADATA_PATH => Some(Document::Discovery),
            _ => None,
        }
    }
}

/// What the root documents need besides the key ring: the discovery document, built once.
#[derive(Debug)]
pub struct WellKnown {
    /// `None` when `tokens.issuer` is not an http(s) URL (see the module doc).
    discovery: Option<Published>,
}

impl WellKnown {
    /// Builds the discovery document from the running `tokens.issuer`,
    /// `tokens.algorithm` and `server.auth_prefix`.
    pub fn new(issuer: &str, algorithm: Algorithm, auth_prefix: &str) -> WellKnown {
        WellKnown {
            discovery: discovery_document(issuer, auth_prefix, algorithm)
                .map(|document| Published::json(&document)),
        }
    }

    /// The discovery document as served, if there is one.
    pub fn discovery(&self) -> Option<&Published> {
        self.discovery.as_ref()
    }

    /// Answers a request for `document`: `jwks` is the key ring's published set,
    /// `cache_control` the snapshot's `Cache-Control` value.
    pub fn serve(
        &self,
        document: Document,
        method: &Method,
        headers: &HeaderMap,
        jwks: &Published,
        cache_control: &HeaderValue,
    ) -> Result<Response<Body>, GatewayError> {
        let published = match document {
            Document::Jwks => jwks,
            Document::Discovery => self.discovery.as_ref().ok_or(GatewayError::NotFound)?,
        };
        respond(published, method, headers, cache_control)
    }
}

/// `public, max-age=N` for `tokens.jwks.max_age` (whole seconds).
pub fn cache_control(max_age: std::time::Duration) -> HeaderValue {
    HeaderValue::from_str(&format!("public, max-age={}", max_age.as_secs()))
        .unwrap_or_else(|_| HeaderValue::from_static("public, max-age=0"))
}

/// The RFC 8414 §2 metadata, or `None` when `issuer` is not an absolute http(s) URL.
fn discovery_document(
    issuer: &str,
    auth_prefix: &str,
    algorithm: Algorithm,
) -> Option<serde_json::Value> {
    if !is_http_url(issuer) {
        return None;
    }
    let base = issuer.trim_end_matches('/');
    let endpoint = |path: &str| format!("{base}{auth_prefix}{path}");
    Some(json!({
        "issuer": issuer,
        "jwks_uri": format!("{base}{JWKS_PATH}"),
        "token_endpoint": endpoint("/token"),
        "revocation_endpoint": endpoint("/revoke"),
        "introspection_endpoint": endpoint("/introspect"),
        // SPEC §4: the grants of the token endpoint.
        "grant_types_supported": ["password", "refresh_token", "client_credentials"],
        // Service clients authenticate by HTTP Basic or in the form body (RFC 6749 §2.3.1).
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        // RFC 7009 revocation takes no client authentication (SPEC §4).
        "revocation_endpoint_auth_methods_supported": ["none"],
        // RFC 7662 introspection: a service client, by HTTP Basic (SPEC §4) or in the
        // form body, as at the token endpoint.
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": [],
        "id_token_signing_alg_values_supported": [algorithm],
    }))
}

/// An absolute `http://` or `https://` URL with a host, and no query or fragment
/// (RFC 8414 §2 `issuer`).
fn is_http_url(text: &str) -> bool {
    let Ok(uri) = text.parse::<http::Uri>() else {
        return false;
    };
    matches!(uri.scheme_str(), Some("http" | "https"))
        && uri.host().is_some_and(|host| !host.is_empty())
        && uri.query().is_none()
        && !text.contains('#')
}

/// The response for a published document: 200 (`GET`), its head (`HEAD`), 304 when the
/// client's copy is current, 405 for any other method. Also serves the OpenAPI document
/// ([`super::openapi`]), published the same way.
pub(super) fn respond(
    published: &Published,
    method: &Method,
    headers: &HeaderMap,
    cache_control: &HeaderValue,
) -> Result<Response<Body>, GatewayError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(GatewayError::MethodNotAllowed(ALLOW));
    }
    let (status, body) = if none_match(headers, &published.etag) {
        (StatusCode::NOT_MODIFIED, None)
    } else if method == Method::HEAD {
        (StatusCode::OK, None)
    } else {
        (StatusCode::OK, Some(published.body.clone()))
    };
    let mut response = Response::new(body.map_or_else(empty, full));
    *response.status_mut() = status;
    let out = response.headers_mut();
    if status == StatusCode::OK {
        out.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        // A HEAD answer carries the length a GET would (RFC 9110 §9.3.2).
        out.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(published.body.len()),
        );
    }
    out.insert(header::ETAG, published.etag.clone());
    out.insert(header::CACHE_CONTROL, cache_control.clone());
    out.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    Ok(response)
}

/// RFC 9110 §13.1.2: whether `If-None-Match` (every field line of it) names `etag` by the
/// weak comparison (`W/` ignored, the opaque tags equal), or is `*` (the document always
/// exists). A field that does not parse as a list of entity tags matches nothing.
fn none_match(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let ours = opaque(etag.as_bytes());
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .any(|value| list_matches(value.as_bytes(), ours))
}

/// The opaque tag (quotes included) of an entity tag, without its `W/`.
fn opaque(tag: &[u8]) -> &[u8] {
    tag.strip_prefix(b"W/").unwrap_or(tag)
}

/// One `If-None-Match` field value: `*`, or `#entity-tag` (RFC 9110 §8.8.3: `[W/]"…"`, the
/// tag's characters `%x21 / %x23-7E / obs-text`, so a comma may sit inside quotes).
fn list_matches(value: &[u8], ours: &[u8]) -> bool {
    let trimmed = value.trim_ascii();
    if trimmed == b"*" {
        return true;
    }
    let mut rest = trimmed;
    loop {
        rest = rest.trim_ascii_start();
        while let Some(after) = rest.strip_prefix(b",") {
            rest = after.trim_ascii_start();
        }
        if rest.is_empty() {
            return false;
        }
        let tag_start = rest.strip_prefix(b"W/").unwrap_or(rest);
        let Some(inner) = tag_start.strip_prefix(b"\"") else {
            return false;
        };
        let Some(end) = inner.iter().position(|&byte| byte == b'"') else {
            return false;
        };
        // The opaque tag with its quotes.
        let tag = &tag_start[..end + 2];
        if tag == ours {
            return true;
        }
        rest = &inner[end + 1..];
        let next = rest.trim_ascii_start();
        if !next.is_empty() && !next.starts_with(b",") {
            return false;
        }
        rest = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::BodyExt;
    use std::time::Duration;

    fn jwks() -> Published {
        Published::bytes(Bytes::from_static(br#"{"keys":[]}"#))
    }

    fn if_none_match(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                header::IF_NONE_MATCH,
                HeaderValue::from_str(value).expect("value"),
            );
        }
        headers
    }

    async fn body(response: Response<Body>) -> Bytes {
        response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
    }

    #[test]
    fn only_the_exact_paths_are_documents() {
        assert_eq!(Document::at("/.well-known/jwks.json"), Some(Document::Jwks));
        assert_eq!(
            Document::at("/.well-known/openid-configuration"),
            Some(Document::Discovery)
        );
        assert_eq!(
            Document::at("/.well-known/oauth-authorization-server"),
            Some(Document::Discovery)
        );
        for other in [
            "/.well-known/jwks.json/",
            "/.well-known/JWKS.json",
            "/.well-known/jwks.json/x",
            "/.well-known/",
            "/.well-known/security.txt",
            "/jwks.json",
        ] {
            assert_eq!(Document::at(other), None, "{other}");
        }
    }

    #[test]
    fn the_discovery_document_names_the_issuer_byte_for_byte_and_its_endpoints() {
        let well_known = WellKnown::new("https://login.example.com", Algorithm::HS256, "/auth");
        let published = well_known.discovery().expect("an http(s) issuer");
        let document: serde_json::Value = serde_json::from_slice(&published.body).expect("json");
        assert_eq!(
            document,
            json!({
                "issuer": "https://login.example.com",
                "jwks_uri": "https://login.example.com/.well-known/jwks.json",
                "token_endpoint": "https://login.example.com/auth/token",
                "revocation_endpoint": "https://login.example.com/auth/revoke",
                "introspection_endpoint": "https://login.example.com/auth/introspect",
                "grant_types_supported": ["password", "refresh_token", "client_credentials"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "revocation_endpoint_auth_methods_supported": ["none"],
                "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "response_types_supported": [],
                "id_token_signing_alg_values_supported": ["HS256"],
            })
        );
    }

    #[test]
    fn a_trailing_slash_on_the_issuer_is_kept_in_issuer_and_not_doubled_in_urls() {
        let well_known = WellKnown::new("http://127.0.0.1:8080/", Algorithm::HS512, "/gate");
        let document: serde_json::Value =
            serde_json::from_slice(&well_known.discovery().expect("url").body).expect("json");
        assert_eq!(document["issuer"], "http://127.0.0.1:8080/");
        assert_eq!(
            document["jwks_uri"],
            "http://127.0.0.1:8080/.well-known/jwks.json"
        );
        assert_eq!(
            document["token_endpoint"],
            "http://127.0.0.1:8080/gate/token"
        );
        assert_eq!(
            document["id_token_signing_alg_values_supported"],
            json!(["HS512"])
        );
    }

    #[test]
    fn an_issuer_that_is_no_url_has_no_discovery_document() {
        for issuer in [
            "gatehouse",
            "urn:example:gw",
            "ftp://x.example",
            "https://x.example/?a=b",
            "https://",
        ] {
            let well_known = WellKnown::new(issuer, Algorithm::HS256, "/auth");
            assert!(well_known.discovery().is_none(), "{issuer}");
            let err = well_known
                .serve(
                    Document::Discovery,
                    &Method::GET,
                    &HeaderMap::new(),
                    &jwks(),
                    &cache_control(Duration::from_secs(300)),
                )
                .expect_err("404");
            assert_eq!(err.status(), StatusCode::NOT_FOUND);
        }
    }

    #[tokio::test]
    async fn get_serves_the_bytes_with_cache_etag_and_cors_headers() {
        let well_known = WellKnown::new("gatehouse", Algorithm::HS256, "/auth");
        let published = jwks();
        let response = well_known
            .serve(
                Document::Jwks,
                &Method::GET,
                &HeaderMap::new(),
                &published,
                &cache_control(Duration::from_secs(300)),
            )
            .expect("200");
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers().clone();
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=300");
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert_eq!(headers[header::ETAG], published.etag);
        assert_eq!(body(response).await, published.body);
    }

    #[tokio::test]
    async fn head_has_the_headers_and_length_of_get_and_no_body() {
        let published = jwks();
        let response = respond(
            &published,
            &Method::HEAD,
            &HeaderMap::new(),
            &cache_control(Duration::from_secs(60)),
        )
        .expect("200");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_LENGTH],
            published.body.len().to_string().as_str()
        );
        assert_eq!(response.headers()[header::ETAG], published.etag);
        assert!(body(response).await.is_empty());
    }

    #[test]
    fn other_methods_are_405_with_allow() {
        for method in [
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
            Method::PATCH,
        ] {
            let err = respond(
                &jwks(),
                &method,
                &HeaderMap::new(),
                &cache_control(Duration::from_secs(60)),
            )
            .expect_err("405");
            assert_eq!(err.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
            let response = err.into_response();
            assert_eq!(response.headers()[header::ALLOW], "GET, HEAD");
        }
    }

    #[tokio::test]
    async fn if_none_match_with_the_current_tag_is_304_without_a_body() {
        let published = jwks();
        let ours = published.etag.to_str().expect("ascii").to_string();
        let weak = format!("W/{ours}");
        let listed = format!(r#""a,b", {ours}"#);
        let listed_weak = format!(r#"W/"x" ,{weak}"#);
        for (label, values) in [
            ("exact", vec![ours.as_str()]),
            ("weak comparison", vec![weak.as_str()]),
            ("in a list", vec![listed.as_str()]),
            ("weak in a list", vec![listed_weak.as_str()]),
            ("second field line", vec![r#""other""#, ours.as_str()]),
            ("star", vec!["*"]),
            ("star with spaces", vec![" * "]),
        ] {
            for method in [Method::GET, Method::HEAD] {
                let response = respond(
                    &published,
                    &method,
                    &if_none_match(&values),
                    &cache_control(Duration::from_secs(60)),
                )
                .expect("304");
                assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{label}");
                assert_eq!(response.headers()[header::ETAG], published.etag);
                assert_eq!(
                    response.headers()[header::CACHE_CONTROL],
                    "public, max-age=60"
                );
                assert!(response.headers().get(header::CONTENT_LENGTH).is_none());
                assert!(body(response).await.is_empty(), "{label}");
            }
        }
    }

    #[tokio::test]
    async fn if_none_match_with_other_or_malformed_tags_serves_the_document() {
        let published = jwks();
        let ours = published.etag.to_str().expect("ascii").to_string();
        let unquoted = ours.trim_matches('"').to_string();
        let prefix = format!("{}\"", &ours[..ours.len() - 2]);
        let after_garbage = format!(r#""x" junk, {ours}"#);
        for value in [
            r#""other""#,
            unquoted.as_str(),
            prefix.as_str(),
            after_garbage.as_str(),
            "",
            ",",
            "*, \"x\"",
            "w/\"x\"",
        ] {
            let response = respond(
                &published,
                &Method::GET,
                &if_none_match(&[value]),
                &cache_control(Duration::from_secs(60)),
            )
            .expect("200");
            assert_eq!(response.status(), StatusCode::OK, "{value:?}");
            assert_eq!(body(response).await, published.body, "{value:?}");
        }
    }

    #[test]
    fn the_etag_is_strong_and_follows_the_bytes() {
        let a = Published::bytes(Bytes::from_static(b"{\"keys\":[]}"));
        let b = Published::bytes(Bytes::from_static(b"{\"keys\":[]}"));
        let c = Published::bytes(Bytes::from_static(b"{\"keys\":[{}]}"));
        assert_eq!(a.etag, b.etag);
        assert_ne!(a.etag, c.etag);
        let tag = a.etag.to_str().expect("ascii");
        assert!(tag.starts_with('"') && tag.ends_with('"') && !tag.starts_with("W/"));
        assert_eq!(tag.len(), 45, "a quoted base64url SHA-256: {tag}");
    }

    #[test]
    fn max_age_is_whole_seconds() {
        assert_eq!(
            cache_control(Duration::from_secs(300)),
            "public, max-age=300"
        );
        assert_eq!(
            cache_control(Duration::from_millis(1500)),
            "public, max-age=1"
        );
        assert_eq!(cache_control(Duration::ZERO), "public, max-age=0");
    }
}
