//! `GET /auth/openapi.json`: an OpenAPI 3.1 document of every endpoint under `auth_prefix`
//! (SPEC §4 last row), for client generators, API explorers and schema-driven fuzzers.
//!
//! The document is derived from the router's own table, [`ROUTES`](super::ROUTES): one
//! path item per route, one operation per method the route takes (a route that takes any
//! method, `/verify`, gets the eight methods OpenAPI can name), written by [`operation`],
//! an exhaustive `match` on [`Endpoint`] — a new endpoint does not compile until it is
//! documented, and nothing can be documented that is not routed. Each operation lists its
//! request bodies (JSON and form variants as the endpoint accepts them; the token
//! endpoint's grants as a `oneOf`), every success and error status it answers with, the
//! SPEC §5 error body as the shared `Error` schema narrowed to the `error` codes that
//! status can carry, and the headers that matter (`WWW-Authenticate`, `Retry-After`,
//! `Cache-Control`, `Pragma`, `ETag`). Security schemes: `bearerAuth` (a JWT access token)
//! and `clientBasic` (a service client, RFC 6749 §2.3.1). A method a route does not take
//! is answered 405 with `Allow`; OpenAPI has no place for an operation that does not
//! exist, so the `MethodNotAllowed` component response describes it.
//!
//! Built once at start ([`published`]): it names only restart-only keys
//! (`server.auth_prefix`, and `passwords.min_length`/`max_length` as the bounds of new
//! passwords); the bytes and their strong `ETag` are precomputed like the well-known documents,
//! and served the same way (GET and HEAD, 304 on `If-None-Match`, other methods 405;
//! `Access-Control-Allow-Origin: *` so browser-based explorers on other origins can read
//! it), with `Cache-Control: no-cache` (clients revalidate, since an upgrade changes it).
//! `servers` is `[{"url":"/"}]`: relative to wherever the document was fetched from.
//!
//! Honesty is tested three ways: the unit tests below (every `error` code is documented
//! under the status [`GatewayError`] gives it; every route is documented), the router
//! comparison against the running gateway (tests/openapi_document.rs), and real OpenAPI
//! tools against the real binary (tests/openapi_fuzz.rs: openapi-spec-validator accepts
//! the document; schemathesis finds no 5xx, and every status, content type, header and
//! body as documented).

use std::ops::RangeInclusive;

use http::{HeaderMap, HeaderValue, Method, Response};
use serde_json::{json, Map, Value};

use super::{Endpoint, Methods, ROUTES};
use crate::error::GatewayError;
use crate::http::{Body, Published};

/// The OpenAPI version of the document.
pub const OPENAPI_VERSION: &str = "3.1.0";

/// The methods an OpenAPI path item can name, documented for a route that takes any method.
pub const ANY_METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
];

/// The methods documented for a route (upper case).
pub fn documented_methods(methods: Methods) -> &'static [&'static str] {
    match methods {
        Methods::Only { methods, .. } => methods,
        Methods::Any => &ANY_METHODS,
    }
}

/// The document as served: its bytes and `ETag`, for `auth_prefix` and the password
/// length policy (`passwords.min_length..=passwords.max_length`, restart-only too).
pub fn published(auth_prefix: &str, password_length: RangeInclusive<usize>) -> Published {
    Published::json(&document(auth_prefix, password_length))
}

/// Serves the published document (the dispatcher has already refused other methods with
/// 405; [`super::well_known`]'s answer refuses them too).
pub fn serve(
    published: &Published,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response<Body>, GatewayError> {
    super::well_known::respond(
        published,
        method,
        headers,
        &HeaderValue::from_static("no-cache"),
    )
}

/// The OpenAPI 3.1 document of [`ROUTES`] under `auth_prefix`; new passwords (register,
/// password change) are documented with `password_length` as their length bounds.
pub fn document(auth_prefix: &str, password_length: RangeInclusive<usize>) -> Value {
    let new_password = json!({
        "type": "string",
        "format": "password",
        "minLength": password_length.start(),
        "maxLength": password_length.end(),
        "description": "passwords.min_length to passwords.max_length characters (Unicode scalar values)",
    });
    let mut paths = Map::new();
    for route in ROUTES {
        let mut item = Map::new();
        for method in documented_methods(route.methods) {
            item.insert(
                method.to_ascii_lowercase(),
                operation(route.endpoint, method, &new_password),
            );
        }
        paths.insert(format!("{auth_prefix}{}", route.path), Value::Object(item));
    }
    json!({
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "gatehouse",
            "version": env!("CARGO_PKG_VERSION"),
            "summary": "gatehouse's own endpoints: sign-in, OAuth 2.0 tokens, revocation, introspection, forward-auth",
            "description": "Every error body is `{\"error\", \"error_description\"}` (the `Error` schema) with `Content-Type: application/json` and `Cache-Control: no-store`. A 401 carries `WWW-Authenticate`; a 429 and a 503 carry `Retry-After`. A method an operation here does not list is answered 405 with `Allow` (the `MethodNotAllowed` response). Bodies are at most 16 KiB (413 otherwise). The browser pages (sign_in, sign_out; SPEC §10) answer text/html, and JSON only for the errors above.",
            "license": { "name": "MIT OR Apache-2.0" },
        },
        "servers": [{ "url": "/" }],
        "paths": paths,
        "components": components(),
    })
}

fn components() -> Value {
    json!({
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "An access token from /login, /token or /refresh: `Authorization: Bearer <token>`, one Authorization header only.",
            },
            "browserSession": {
                "type": "apiKey",
                "in": "cookie",
                "name": "__Host-gatehouse_session",
                "description": "The browser session cookie from the sign-in page ([browser] enabled; `__Secure-gatehouse_session` with browser.cookie_domain). Used only when there is no Authorization header.",
            },
            "clientBasic": {
                "type": "http",
                "scheme": "basic",
                "description": "A service client (`gatehouse client add`): its name and secret, each application/x-www-form-urlencoded before base64 (RFC 6749 §2.3.1).",
            },
        },
        "schemas": {
            "Error": {
                "type": "object",
                "description": "SPEC §5: every error body.",
                "required": ["error", "error_description"],
                "properties": {
                    "error": { "type": "string" },
                    "error_description": { "type": "string" },
                },
            },
            "TokenResponse": {
                "type": "object",
                "description": "RFC 6749 §5.1, with a refresh token.",
                "required": ["access_token", "token_type", "expires_in", "refresh_token", "refresh_expires_in"],
                "properties": {
                    "access_token": { "type": "string" },
                    "token_type": { "const": "Bearer" },
                    "expires_in": { "type": "integer", "minimum": 0, "description": "seconds" },
                    "refresh_token": { "type": "string" },
                    "refresh_expires_in": { "type": "integer", "minimum": 0, "description": "seconds" },
                },
            },
            "ClientTokenResponse": {
                "type": "object",
                "description": "RFC 6749 §4.4.3: client credentials get no refresh token.",
                "required": ["access_token", "token_type", "expires_in"],
                "properties": {
                    "access_token": { "type": "string" },
                    "token_type": { "const": "Bearer" },
                    "expires_in": { "type": "integer", "minimum": 0, "description": "seconds" },
                },
                "not": { "required": ["refresh_token"] },
            },
            "Me": {
                "type": "object",
                "required": ["sub", "username", "roles", "iat", "exp"],
                "properties": {
                    "sub": { "type": "string", "description": "the user's stable opaque id" },
                    "username": { "type": "string" },
                    "roles": { "$ref": "#/components/schemas/Roles" },
                    "iat": { "type": "integer" },
                    "exp": { "type": "integer" },
                },
            },
            "Registered": {
                "type": "object",
                "required": ["username", "roles"],
                "properties": {
                    "username": { "type": "string" },
                    "roles": { "$ref": "#/components/schemas/Roles" },
                },
            },
            "Roles": {
                "type": "array",
                "items": { "type": "string" },
                "description": "the principal's current roles",
            },
            "Introspection": {
                "description": "RFC 7662 §2.2: an active token's claims, or exactly {\"active\":false}.",
                "oneOf": [
                    {
                        "type": "object",
                        "title": "active",
                        "required": ["active", "sub", "username", "roles", "exp", "iat", "iss", "token_type"],
                        "properties": {
                            "active": { "const": true },
                            "sub": { "type": "string" },
                            "username": { "type": "string" },
                            "roles": { "$ref": "#/components/schemas/Roles" },
                            "client_id": { "type": "string", "description": "the service client's name, for a client's token" },
                            "exp": { "type": "integer" },
                            "iat": { "type": "integer" },
                            "iss": { "type": "string" },
                            "token_type": { "const": "Bearer" },
                        },
                    },
                    {
                        "type": "object",
                        "title": "inactive",
                        "required": ["active"],
                        "properties": { "active": { "const": false } },
                        "additionalProperties": false,
                    },
                ],
            },
            "Credentials": {
                "type": "object",
                "required": ["username", "password"],
                "properties": {
                    "username": { "type": "string" },
                    "password": { "type": "string", "format": "password" },
                },
                "additionalProperties": { "type": "string" },
            },
        },
        "headers": {
            "WWW-Authenticate-Bearer": {
                "description": "`Bearer realm=\"gatehouse\"`, with `error` and `error_description` when a token was presented but is bad (RFC 6750 §3).",
                "required": true,
                "schema": { "type": "string", "pattern": "^Bearer realm=\"gatehouse\"" },
            },
            "WWW-Authenticate-Basic": {
                "description": "`Basic realm=\"gatehouse\"`: authenticate as a service client (RFC 6749 §5.2).",
                "required": true,
                "schema": { "type": "string", "pattern": "^Basic realm=\"gatehouse\"" },
            },
            "Retry-After": {
                "description": "seconds to wait before trying again",
                "required": true,
                "schema": { "type": "string", "pattern": "^[0-9]+$" },
            },
            "Cache-Control-no-store": {
                "required": true,
                "schema": { "const": "no-store" },
            },
            "Pragma": {
                "description": "for HTTP/1.0 caches",
                "required": true,
                "schema": { "const": "no-cache" },
            },
            "ETag": {
                "description": "a strong tag of the document's bytes",
                "required": true,
                "schema": { "type": "string" },
            },
            "Allow": {
                "description": "the methods the path takes",
                "required": true,
                "schema": { "type": "string" },
            },
        },
        "responses": {
            "MethodNotAllowed": {
                "description": "405 `method_not_allowed`: any method an operation of this path does not list.",
                "headers": { "Allow": { "$ref": "#/components/headers/Allow" } },
                "content": json_content(error_schema(&["method_not_allowed"])),
            },
        },
    })
}

/// `{"application/json": {"schema": schema}}`.
fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

/// A request body as JSON or as a form, with one schema. Its `additionalProperties` must
/// be strings: the body reader refuses a JSON object with any other value (body.rs).
fn json_or_form(schema: Value, required: bool, description: &str) -> Value {
    json!({
        "required": required,
        "description": description,
        "content": {
            "application/json": { "schema": schema },
            "application/x-www-form-urlencoded": { "schema": schema },
        },
    })
}

/// A form-encoded request body (the OAuth endpoints, RFC 6749 §3.2, RFC 7009, RFC 7662).
fn form(schema: Value, description: &str) -> Value {
    json!({
        "required": true,
        "description": description,
        "content": { "application/x-www-form-urlencoded": { "schema": schema } },
    })
}

/// The `Error` schema narrowed to `codes`.
fn error_schema(codes: &[&str]) -> Value {
    json!({
        "allOf": [{ "$ref": "#/components/schemas/Error" }],
        "properties": { "error": { "enum": codes } },
    })
}

/// An error response with the `error` codes it can carry, and its extra headers
/// (component names under `#/components/headers`).
fn error(description: &str, codes: &[&str], headers: &[(&str, &str)]) -> Value {
    let mut all = Map::new();
    all.insert(
        "Cache-Control".into(),
        json!({ "$ref": "#/components/headers/Cache-Control-no-store" }),
    );
    for (name, component) in headers {
        all.insert(
            (*name).into(),
            json!({ "$ref": format!("#/components/headers/{component}") }),
        );
    }
    json!({
        "description": description,
        "headers": all,
        "content": json_content(error_schema(codes)),
    })
}

fn invalid_request(description: &str) -> Value {
    error(description, &["invalid_request"], &[])
}

fn payload_too_large() -> Value {
    error(
        "the body is larger than 16 KiB",
        &["payload_too_large"],
        &[],
    )
}

fn too_many_attempts(description: &str) -> Value {
    error(
        description,
        &["too_many_attempts"],
        &[("Retry-After", "Retry-After")],
    )
}

fn unavailable() -> Value {
    error(
        "the store is out of reach, or this replica is more than store.max_stale behind (SPEC §8)",
        &["unavailable"],
        &[("Retry-After", "Retry-After")],
    )
}

fn bearer_unauthorized(codes: &[&str]) -> Value {
    error(
        "no bearer token, or a bad, expired or revoked one",
        codes,
        &[("WWW-Authenticate", "WWW-Authenticate-Bearer")],
    )
}

/// `/verify`'s 401: as any, plus the sign-in page for a browser navigation (SPEC §10).
fn verify_unauthorized() -> Value {
    let mut response = bearer_unauthorized(&["unauthorized", "invalid_token"]);
    response["description"] = Value::String(
        "no credential, or a bad, expired or revoked bearer token; for a browser navigation without a credential ([browser] enabled) also Location: the sign-in page, for nginx's error_page 401".into(),
    );
    response["headers"]["Location"] = json!({
        "required": false,
        "description": "public_url + <auth_prefix>/sign_in?rd=<the original URL>",
        "schema": { "type": "string", "format": "uri" },
    });
    response
}

fn invalid_client() -> Value {
    error(
        "the service client's credentials are missing or wrong",
        &["invalid_client"],
        &[("WWW-Authenticate", "WWW-Authenticate-Basic")],
    )
}

/// A token response (200) with its no-cache headers; `schema` is the body's.
fn token_success(description: &str, schema: Value) -> Value {
    json!({
        "description": description,
        "headers": {
            "Cache-Control": { "$ref": "#/components/headers/Cache-Control-no-store" },
            "Pragma": { "$ref": "#/components/headers/Pragma" },
        },
        "content": json_content(schema),
    })
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The operation `method` of `endpoint`: exhaustive, so every routed endpoint is documented.
fn operation(endpoint: Endpoint, method: &str, new_password: &Value) -> Value {
    let mut operation = match endpoint {
        Endpoint::Login => login(),
        Endpoint::Token => token(),
        Endpoint::Refresh => refresh(),
        Endpoint::Logout => logout(),
        Endpoint::Revoke => revoke(),
        Endpoint::Introspect => introspect(),
        Endpoint::Me => me(),
        Endpoint::Verify => verify(method),
        Endpoint::ForwardAuth => forward_auth(method),
        Endpoint::Password => password(new_password),
        Endpoint::Register => register(new_password),
        Endpoint::OpenApi => openapi(),
        Endpoint::SignIn => sign_in(method),
        Endpoint::SignOut => sign_out(method),
    };
    if let Some(object) = operation.as_object_mut() {
        let name = format!("{endpoint:?}");
        let id = match method {
            "POST" => name.clone(),
            other => format!("{name}_{}", other.to_ascii_lowercase()),
        };
        object.insert("operationId".into(), Value::String(id));
        if method == "HEAD" {
            strip_bodies(object);
        }
    }
    operation
}

/// A HEAD answer has the headers of GET and no body (RFC 9110 §9.3.2).
fn strip_bodies(operation: &mut Map<String, Value>) {
    if let Some(Value::Object(responses)) = operation.get_mut("responses") {
        for response in responses.values_mut() {
            if let Some(response) = response.as_object_mut() {
                response.remove("content");
            }
        }
    }
}

fn login() -> Value {
    json!({
        "summary": "Sign in with a username and password",
        "tags": ["sessions"],
        "security": [],
        "requestBody": json_or_form(schema_ref("Credentials"), true, "a JSON object of strings, or form fields"),
        "responses": {
            "200": token_success("a token response", schema_ref("TokenResponse")),
            "400": invalid_request("not a JSON object of strings nor a UTF-8 form, a field missing, or another content type"),
            "401": error(
                "wrong username or password (the same answer whether or not the user exists)",
                &["invalid_credentials"],
                &[("WWW-Authenticate", "WWW-Authenticate-Bearer")],
            ),
            "403": error("the account is disabled (only after a correct password)", &["account_disabled"], &[]),
            "413": payload_too_large(),
            "429": too_many_attempts("too many failed logins for this username or address"),
            "503": unavailable(),
        },
    })
}

fn token() -> Value {
    let client_id = json!({ "type": "string", "description": "accepted and ignored" });
    json!({
        "summary": "OAuth 2.0 token endpoint (RFC 6749)",
        "tags": ["oauth"],
        "security": [{}, { "clientBasic": [] }],
        "requestBody": form(json!({
            "oneOf": [
                {
                    "title": "password",
                    "description": "RFC 6749 §4.3",
                    "type": "object",
                    "required": ["grant_type", "username", "password"],
                    "properties": {
                        "grant_type": { "const": "password" },
                        "username": { "type": "string" },
                        "password": { "type": "string", "format": "password" },
                        "client_id": client_id,
                        "scope": { "type": "string", "description": "accepted and ignored" },
                    },
                },
                {
                    "title": "refresh_token",
                    "description": "RFC 6749 §6",
                    "type": "object",
                    "required": ["grant_type", "refresh_token"],
                    "properties": {
                        "grant_type": { "const": "refresh_token" },
                        "refresh_token": { "type": "string" },
                        "client_id": client_id,
                        "scope": { "type": "string", "description": "accepted and ignored" },
                    },
                },
                {
                    "title": "client_credentials",
                    "description": "RFC 6749 §4.4: the client authenticates by HTTP Basic (clientBasic) or with client_id and client_secret here, not both (a client_id equal to the Basic one may accompany Basic)",
                    "type": "object",
                    "required": ["grant_type"],
                    "properties": {
                        "grant_type": { "const": "client_credentials" },
                        "client_id": { "type": "string" },
                        "client_secret": { "type": "string", "format": "password" },
                        "scope": { "type": "string", "description": "accepted and ignored" },
                    },
                },
            ],
        }), "form parameters, each at most once (RFC 6749 §3.1); unknown ones are ignored"),
        "responses": {
            "200": token_success(
                "a token response; no refresh token for client credentials",
                json!({ "anyOf": [schema_ref("TokenResponse"), schema_ref("ClientTokenResponse")] }),
            ),
            "400": error(
                "RFC 6749 §5.2: a parameter missing, repeated or malformed, or two client authentication methods (invalid_request); wrong credentials, a disabled account or a bad refresh token (invalid_grant); another grant_type",
                &["invalid_request", "invalid_grant", "unsupported_grant_type"],
                &[],
            ),
            "401": invalid_client(),
            "413": payload_too_large(),
            "429": too_many_attempts("too many failed attempts for this username, client or address"),
            "503": unavailable(),
        },
    })
}

fn refresh() -> Value {
    json!({
        "summary": "Exchange a refresh token for a new token pair",
        "description": "Refresh tokens are single-use; presenting a spent one again ends its whole login session (RFC 9700 §4.14.2).",
        "tags": ["sessions"],
        "security": [],
        "requestBody": json_or_form(json!({
            "type": "object",
            "required": ["refresh_token"],
            "properties": { "refresh_token": { "type": "string" } },
            "additionalProperties": { "type": "string" },
        }), true, "the refresh token, as JSON or a form field"),
        "responses": {
            "200": token_success("a token response with a new refresh token", schema_ref("TokenResponse")),
            "400": invalid_request("no refresh_token, or another content type"),
            "401": error(
                "the refresh token is invalid, expired, spent or revoked",
                &["invalid_grant"],
                &[("WWW-Authenticate", "WWW-Authenticate-Bearer")],
            ),
            "413": payload_too_large(),
            "503": unavailable(),
        },
    })
}

fn logout() -> Value {
    json!({
        "summary": "End a login session",
        "description": "Takes the session's refresh token and/or a bearer access token: the session ends (all its refresh and access tokens), and the presented access token stops working. Idempotent: already-invalid tokens also get 204.",
        "tags": ["sessions"],
        "security": [{}, { "bearerAuth": [] }],
        "requestBody": json_or_form(json!({
            "type": "object",
            "properties": { "refresh_token": { "type": "string" } },
            "additionalProperties": { "type": "string" },
        }), false, "the session's refresh token, as JSON or a form field (optional with a bearer token)"),
        "responses": {
            "204": { "description": "the session has ended" },
            "400": invalid_request("neither a refresh token nor a bearer token, or a malformed body"),
            "401": bearer_unauthorized(&["invalid_token"]),
            "413": payload_too_large(),
            "503": unavailable(),
        },
    })
}

fn revoke() -> Value {
    json!({
        "summary": "Revoke a token (RFC 7009)",
        "description": "A refresh token ends its whole session; an access token stops working. 200 whatever the token was (RFC 7009 §2.2). No client authentication.",
        "tags": ["oauth"],
        "security": [],
        "requestBody": form(json!({
            "type": "object",
            "required": ["token"],
            "properties": {
                "token": { "type": "string", "minLength": 1 },
                "token_type_hint": { "type": "string", "description": "access_token or refresh_token; optional and not needed" },
            },
        }), "the token to revoke"),
        "responses": {
            "200": {
                "description": "revoked, or not one of ours; no body",
                "headers": { "Cache-Control": { "$ref": "#/components/headers/Cache-Control-no-store" } },
            },
            "400": invalid_request("no token, or not a form"),
            "413": payload_too_large(),
            "503": unavailable(),
        },
    })
}

fn introspect() -> Value {
    json!({
        "summary": "Introspect a token (RFC 7662)",
        "description": "The caller authenticates as a service client, by HTTP Basic (clientBasic) or with client_id and client_secret in the form, not both. A token that passes the full bearer validation (signature, claims, revocation, session, principal present and enabled) is active, with its principal's current username and roles; anything else (garbage, expired, revoked, logged out, a removed or disabled principal, a rotated or removed client, a refresh token) is exactly {\"active\":false}. Failed client secrets count toward the login lockout.",
        "tags": ["oauth"],
        "security": [{ "clientBasic": [] }, {}],
        "requestBody": form(json!({
            "type": "object",
            "required": ["token"],
            "properties": {
                "token": { "type": "string" },
                "token_type_hint": { "type": "string", "description": "accepted and ignored" },
                "client_id": { "type": "string", "description": "the client, when it authenticates in the body (client_secret_post)" },
                "client_secret": { "type": "string", "format": "password" },
            },
        }), "the token to introspect, each parameter at most once"),
        "responses": {
            "200": token_success("the token's state", schema_ref("Introspection")),
            "400": invalid_request("no token, a repeated parameter, not a form, or two client authentication methods"),
            "401": invalid_client(),
            "413": payload_too_large(),
            "429": too_many_attempts("too many failed attempts for this client or address"),
            "503": unavailable(),
        },
    })
}

fn me() -> Value {
    json!({
        "summary": "Who the bearer token says the caller is, with current roles",
        "tags": ["sessions"],
        "security": [{ "bearerAuth": [] }],
        "responses": {
            "200": {
                "description": "the caller",
                "headers": { "Cache-Control": { "$ref": "#/components/headers/Cache-Control-no-store" } },
                "content": json_content(schema_ref("Me")),
            },
            "400": invalid_request("more than one Authorization header"),
            "401": bearer_unauthorized(&["unauthorized", "invalid_token"]),
            "503": unavailable(),
        },
    })
}

fn verify(method: &str) -> Value {
    let header = |name: &str, description: &str| {
        json!({
            "name": name,
            "in": "header",
            "required": false,
            "description": description,
            "schema": { "type": "string" },
        })
    };
    json!({
        "summary": format!("Forward-auth ({method}; every method is answered alike)"),
        "description": "For nginx auth_request, Traefik ForwardAuth and Caddy forward_auth: from a trusted proxy (headers.trusted_proxies) the forwarded method and URI are decided by the route rules, public routes included; without them a valid token is all that is asked. The browser session cookie ([browser] enabled) authenticates like a bearer token. Only 200, 401, 403 and 503.",
        "tags": ["forward-auth"],
        "security": [{}, { "bearerAuth": [] }, { "browserSession": [] }],
        "parameters": [
            header("X-Forwarded-Method", "the original request's method (trusted proxies only)"),
            header("X-Forwarded-Uri", "the original request's URI (trusted proxies only)"),
            header("X-Original-Method", "the original request's method, nginx ingress style (trusted proxies only)"),
            header("X-Original-URI", "the original request's URI, nginx ingress style (trusted proxies only)"),
        ],
        "responses": {
            "200": {
                "description": "allowed: every configured identity header is on the response (empty without an identity); no body",
                "headers": {
                    "X-Gatehouse-Cookie": {
                        "required": true,
                        "description": "the request's Cookie header without gatehouse's session and CSRF cookies (empty when none is left): what the proxy sends upstream as Cookie",
                        "schema": { "type": "string" },
                    },
                },
            },
            "401": verify_unauthorized(),
            "403": error(
                "the route denies it or needs a role the token lacks; a malformed forwarded method or URI or request (invalid_request); forwarded headers from a peer that is not a trusted proxy (forbidden)",
                &["forbidden", "insufficient_scope", "invalid_request"],
                &[],
            ),
            "503": unavailable(),
        },
    })
}

/// `/forward-auth`: `/verify`'s operation, answering a browser navigation without a
/// credential with 302 to the sign-in page instead of 401 (SPEC §10).
fn forward_auth(method: &str) -> Value {
    let mut operation = verify(method);
    operation["summary"] = Value::String(format!(
        "Forward-auth answering browsers with a redirect ({method}; every method is answered alike)"
    ));
    operation["description"] = Value::String(
        "For Traefik ForwardAuth and Caddy forward_auth, which hand a non-2xx answer to the client: as /verify, except that with [browser] enabled a browser navigation without a credential is answered 302 to the sign-in page. The browser session cookie authenticates like a bearer token. Only 200, 302, 401, 403 and 503.".into(),
    );
    operation["responses"]["302"] = json!({
        "description": "a browser navigation without a credential ([browser] enabled): go to the sign-in page; no body",
        "headers": {
            "Location": {
                "required": true,
                "description": "public_url + <auth_prefix>/sign_in?rd=<the original URL>",
                "schema": { "type": "string", "format": "uri" },
            },
            "Cache-Control": { "$ref": "#/components/headers/Cache-Control-no-store" },
        },
    });
    operation
}

fn password(new_password: &Value) -> Value {
    json!({
        "summary": "Change the caller's password",
        "description": "Every token and session issued before ends; the answer is a token response for a fresh session.",
        "tags": ["sessions"],
        "security": [{ "bearerAuth": [] }],
        "requestBody": json_or_form(json!({
            "type": "object",
            "required": ["current_password", "new_password"],
            "properties": {
                "current_password": { "type": "string", "format": "password" },
                "new_password": new_password,
            },
            "additionalProperties": { "type": "string" },
        }), true, "the current and the new password"),
        "responses": {
            "200": token_success("a token response for a fresh session", schema_ref("TokenResponse")),
            "400": invalid_request("the new password breaks the length policy, or a malformed body"),
            "401": bearer_unauthorized(&["unauthorized", "invalid_token", "invalid_credentials"]),
            "413": payload_too_large(),
            "503": unavailable(),
        },
    })
}

/// `{"text/html": …}`: a browser page (SPEC §10).
fn html_content() -> Value {
    json!({ "text/html": { "schema": { "type": "string" } } })
}

/// A page answer: HTML with the page headers of SPEC §10 (and `extra` ones).
fn page(description: &str, extra: &[(&str, Value)]) -> Value {
    let mut headers = Map::new();
    headers.insert(
        "Cache-Control".into(),
        json!({ "$ref": "#/components/headers/Cache-Control-no-store" }),
    );
    headers.insert(
        "Content-Security-Policy".into(),
        json!({ "required": true, "schema": { "type": "string", "pattern": "frame-ancestors 'none'" } }),
    );
    headers.insert(
        "X-Frame-Options".into(),
        json!({ "required": true, "schema": { "const": "DENY" } }),
    );
    for (name, header) in extra {
        headers.insert((*name).into(), header.clone());
    }
    json!({ "description": description, "headers": headers, "content": html_content() })
}

/// A 303 See Other from a page's form.
fn see_other(description: &str) -> Value {
    json!({
        "description": description,
        "headers": {
            "Location": { "required": true, "schema": { "type": "string", "format": "uri" } },
            "Set-Cookie": { "required": true, "schema": { "type": "string" } },
        },
    })
}

/// 403 to a form that failed the CSRF checks (SPEC §10).
fn cross_site_form() -> Value {
    error(
        "not a same-origin request (Sec-Fetch-Site, else Origin), or the csrf field does not match the browser's cookie",
        &["forbidden"],
        &[],
    )
}

fn browser_off() -> Value {
    error("[browser] is not enabled", &["not_found"], &[])
}

fn sign_in(method: &str) -> Value {
    if method != "POST" {
        return json!({
            "summary": "The browser sign-in page (SPEC §10)",
            "tags": ["browser"],
            "security": [],
            "parameters": [{
                "name": "rd",
                "in": "query",
                "required": false,
                "description": "where to go after signing in; validated, anything not allowed becomes /",
                "schema": { "type": "string" },
            }],
            "responses": {
                "200": page("the sign-in form; sets the pre-session cookie when the browser has none", &[]),
                "404": browser_off(),
            },
        });
    }
    let retry_after = json!({ "$ref": "#/components/headers/Retry-After" });
    let challenge = json!({ "$ref": "#/components/headers/WWW-Authenticate-Bearer" });
    let mut disabled = page("the account is disabled (only after a correct password); or a form that failed the CSRF checks (JSON)", &[]);
    if let Some(content) = disabled.get_mut("content").and_then(Value::as_object_mut) {
        content.insert(
            "application/json".into(),
            json!({ "schema": error_schema(&["forbidden"]) }),
        );
    }
    json!({
        "summary": "Sign in from the browser form (SPEC §10)",
        "tags": ["browser"],
        "security": [],
        "requestBody": form(json!({
            "type": "object",
            "required": ["csrf"],
            "properties": {
                "username": { "type": "string" },
                "password": { "type": "string", "format": "password" },
                "remember_me": { "type": "string", "description": "present (\"on\") when ticked" },
                "csrf": { "type": "string", "description": "the token of the form, bound to the pre-session cookie" },
                "rd": { "type": "string" },
            },
            "additionalProperties": { "type": "string" },
        }), "the sign-in form's fields"),
        "responses": {
            "303": see_other("signed in: a new session cookie, the pre-session cookie cleared, and the validated rd"),
            "400": invalid_request("not a UTF-8 form, or a field repeated"),
            "401": page("wrong username or password: the form again with one generic message", &[("WWW-Authenticate", challenge)]),
            "403": disabled,
            "404": browser_off(),
            "413": payload_too_large(),
            "429": page("too many failed sign-ins for this username or address (shared with /login)", &[("Retry-After", retry_after)]),
            "503": unavailable(),
        },
    })
}

fn sign_out(method: &str) -> Value {
    if method != "POST" {
        return json!({
            "summary": "The browser sign-out confirmation page (SPEC §10); a GET never signs out",
            "tags": ["browser"],
            "security": [],
            "responses": {
                "200": page("the confirmation form", &[]),
                "404": browser_off(),
            },
        });
    }
    json!({
        "summary": "Sign out: end the browser session and clear its cookie (SPEC §10)",
        "tags": ["browser"],
        "security": [],
        "requestBody": form(json!({
            "type": "object",
            "required": ["csrf"],
            "properties": { "csrf": { "type": "string", "description": "the confirmation form's token" } },
            "additionalProperties": { "type": "string" },
        }), "the sign-out form's field"),
        "responses": {
            "303": see_other("signed out: the session cookie cleared, on to the sign-in page"),
            "400": invalid_request("not a UTF-8 form, or a field repeated"),
            "403": cross_site_form(),
            "404": browser_off(),
            "413": payload_too_large(),
            "503": unavailable(),
        },
    })
}

fn register(new_password: &Value) -> Value {
    json!({
        "summary": "Self-registration (when [registration] enabled)",
        "tags": ["sessions"],
        "security": [],
        "requestBody": json_or_form(json!({
            "type": "object",
            "required": ["username", "password"],
            "properties": {
                "username": {
                    "type": "string",
                    "pattern": "^[A-Za-z0-9._@-]{1,64}$",
                    "description": "SPEC §4: 1–64 of A-Z a-z 0-9 . _ @ -, compared case-insensitively",
                },
                "password": new_password,
            },
            "additionalProperties": { "type": "string" },
        }), true, "the new username and password"),
        "responses": {
            "201": {
                "description": "the user was created with the [registration] roles",
                "content": json_content(schema_ref("Registered")),
            },
            "400": invalid_request("the username or password breaks the rules, or a malformed body"),
            "404": error("registration is off", &["not_found"], &[]),
            "409": error("that username (compared case-insensitively) is taken", &["username_taken"], &[]),
            "413": payload_too_large(),
            "429": too_many_attempts("this address registered too often"),
            "503": unavailable(),
        },
    })
}

fn openapi() -> Value {
    json!({
        "summary": "This document",
        "tags": ["meta"],
        "security": [],
        "parameters": [{
            "name": "If-None-Match",
            "in": "header",
            "required": false,
            "schema": { "type": "string" },
        }],
        "responses": {
            "200": {
                "description": "the OpenAPI 3.1 document",
                "headers": { "ETag": { "$ref": "#/components/headers/ETag" } },
                "content": json_content(json!({
                    "type": "object",
                    "required": ["openapi", "info", "paths"],
                })),
            },
            "304": {
                "description": "If-None-Match names the current document",
                "headers": { "ETag": { "$ref": "#/components/headers/ETag" } },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    /// One value of every [`GatewayError`] variant: the `error` code each can put in a
    /// body and the status it comes with.
    fn every_error() -> Vec<GatewayError> {
        use crate::error::TokenRejection;
        vec![
            GatewayError::Unauthorized,
            GatewayError::SignIn(http::HeaderValue::from_static(
                "https://a.test/auth/sign_in",
            )),
            GatewayError::UnauthorizedSignIn(http::HeaderValue::from_static("https://a.test/")),
            GatewayError::InvalidToken(TokenRejection::Expired),
            GatewayError::InsufficientScope,
            GatewayError::Forbidden,
            GatewayError::CrossSiteForm,
            GatewayError::invalid_request("x"),
            GatewayError::InvalidForwardedRequest("x".into()),
            GatewayError::PayloadTooLarge,
            GatewayError::NotFound,
            GatewayError::MethodNotAllowed("GET"),
            GatewayError::InvalidCredentials,
            GatewayError::AccountDisabled,
            GatewayError::TooManyAttempts {
                retry_after_secs: 1,
            },
            GatewayError::InvalidGrant,
            GatewayError::RefreshRejected,
            GatewayError::UnsupportedGrantType,
            GatewayError::InvalidClient,
            GatewayError::UsernameTaken,
            GatewayError::BadGateway,
            GatewayError::GatewayTimeout,
            GatewayError::Unavailable,
            GatewayError::Internal("x".into()),
        ]
    }

    /// Follows a local `$ref`.
    fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let pointer = reference.strip_prefix('#').expect("a local $ref");
                document.pointer(pointer).expect("the $ref resolves")
            }
            None => value,
        }
    }

    fn every_ref(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    if key == "$ref" {
                        out.push(value.as_str().expect("a string $ref").to_owned());
                    }
                    every_ref(value, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| every_ref(item, out)),
            _ => {}
        }
    }

    #[test]
    fn every_route_and_method_is_documented_and_nothing_else() {
        let document = document("/auth", 12..=256);
        let paths = document["paths"].as_object().expect("paths");
        assert_eq!(paths.len(), ROUTES.len());
        for route in ROUTES {
            let item = paths[&format!("/auth{}", route.path)]
                .as_object()
                .expect("a path item per route");
            let mut documented: Vec<String> = item.keys().cloned().collect();
            let mut routed: Vec<String> = documented_methods(route.methods)
                .iter()
                .map(|method| method.to_ascii_lowercase())
                .collect();
            documented.sort();
            routed.sort();
            assert_eq!(documented, routed, "{}", route.path);
        }
    }

    #[test]
    fn allow_names_exactly_the_methods() {
        for route in ROUTES {
            if let Methods::Only { methods, allow } = route.methods {
                assert_eq!(methods.join(", "), allow, "{}", route.path);
            }
        }
    }

    #[test]
    fn every_ref_resolves() {
        let document = document("/auth", 12..=256);
        let mut refs = Vec::new();
        every_ref(&document, &mut refs);
        assert!(refs.len() > 20, "{refs:?}");
        for reference in refs {
            let pointer = reference.strip_prefix('#').expect("local");
            assert!(document.pointer(pointer).is_some(), "{reference}");
        }
    }

    /// Each documented error code sits under the status [`GatewayError`] gives it (except
    /// forward-auth's 403 `invalid_request`, its own variant), every 401 documents
    /// `WWW-Authenticate`, every 429 and 503 `Retry-After`, and every code is one
    /// gatehouse has.
    #[test]
    fn documented_error_codes_match_the_statuses_gatehouse_gives_them() {
        let document = document("/auth", 12..=256);
        let errors = every_error();
        let mut checked = 0;
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("item") {
                for (status, response) in operation["responses"].as_object().expect("responses") {
                    let response = resolve(&document, response);
                    let status: u16 = status.parse().expect("a numeric status");
                    let headers = response.get("headers").and_then(Value::as_object);
                    let has = |name: &str| headers.is_some_and(|h| h.contains_key(name));
                    if status == 401 {
                        assert!(has("WWW-Authenticate"), "{method} {path} {status}");
                    }
                    if status == 429 || status == 503 {
                        assert!(has("Retry-After"), "{method} {path} {status}");
                    }
                    if method == "head" {
                        continue;
                    }
                    let Some(codes) = response
                        .pointer("/content/application~1json/schema/properties/error/enum")
                        .and_then(Value::as_array)
                    else {
                        // A browser page's answer is HTML (SPEC §10), not an error body.
                        if response.pointer("/content/text~1html").is_some() {
                            continue;
                        }
                        assert!(status < 400, "{method} {path} {status} has no error codes");
                        continue;
                    };
                    assert!(status >= 400, "{method} {path} {status}");
                    for code in codes {
                        let code = code.as_str().expect("code");
                        checked += 1;
                        let statuses: Vec<StatusCode> = errors
                            .iter()
                            .filter(|err| err.code() == code)
                            .map(GatewayError::status)
                            .collect();
                        assert!(
                            statuses.iter().any(|s| s.as_u16() == status),
                            "{method} {path}: {code} is never a {status} (it is {statuses:?})"
                        );
                    }
                }
            }
        }
        assert!(checked > 30, "{checked}");
    }

    /// The body reader takes a JSON object only when every value is a string (body.rs):
    /// each JSON body schema says so, or a client generated from it sends what is refused.
    #[test]
    fn json_bodies_allow_only_string_members() {
        let document = document("/auth", 12..=256);
        let mut checked = 0;
        for (path, item) in document["paths"].as_object().expect("paths") {
            for operation in item.as_object().expect("item").values() {
                let Some(schema) =
                    operation.pointer("/requestBody/content/application~1json/schema")
                else {
                    continue;
                };
                let schema = resolve(&document, schema);
                assert_eq!(
                    schema["additionalProperties"],
                    json!({ "type": "string" }),
                    "{path}"
                );
                for (name, property) in schema["properties"].as_object().expect("properties") {
                    assert_eq!(property["type"], "string", "{path} {name}");
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 5);
    }

    #[test]
    fn head_operations_document_no_body() {
        let document = document("/auth", 12..=256);
        for (path, item) in document["paths"].as_object().expect("paths") {
            if let Some(head) = item.get("head") {
                for response in head["responses"].as_object().expect("responses").values() {
                    assert!(response.get("content").is_none(), "{path}");
                }
            }
        }
    }

    #[test]
    fn paths_follow_the_auth_prefix_and_servers_are_relative() {
        let document = document("/gate", 12..=256);
        assert_eq!(document["openapi"], OPENAPI_VERSION);
        assert_eq!(document["servers"], json!([{ "url": "/" }]));
        let paths = document["paths"].as_object().expect("paths");
        assert!(paths.contains_key("/gate/login"));
        assert!(paths.contains_key("/gate/openapi.json"));
        assert!(paths.keys().all(|path| path.starts_with("/gate/")));
        let new_password = &paths["/gate/register"]["post"]["requestBody"]["content"]
            ["application/json"]["schema"]["properties"]["password"];
        assert_eq!(new_password["minLength"], 12);
        assert_eq!(new_password["maxLength"], 256);
    }
}
