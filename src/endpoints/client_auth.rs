//! Service-client authentication on a request (RFC 6749 §2.3.1): what the token endpoint's
//! `client_credentials` grant and `/auth/introspect` read to learn which client calls and
//! with which secret, and the one mapping of the accounts layer's verdict to SPEC §5
//! ([`client_error`]). Checking the secret (constant time, lockout counting) is the
//! accounts layer's.
//!
//! Two methods, one per request:
//! - **HTTP Basic** (`client_secret_basic`): `Authorization: Basic base64(id ":" secret)`,
//!   where id and secret are each `application/x-www-form-urlencoded`-encoded *before*
//!   base64 (RFC 6749 §2.3.1, Appendix B): `+` decodes to a space and `%XX` to its byte, so
//!   a `:` inside an encoded id arrives as `%3A` and the first raw `:` is the separator.
//!   Clients that skip the form-encoding (authlib, curl `-u`) still work for gatehouse's
//!   names, whose alphabet (`A-Z a-z 0-9 . _ @ -`) has nothing that decoding changes, and
//!   for its secrets (base64url). The scheme name is case-insensitive (RFC 9110 §11.1).
//! - **Form body** (`client_secret_post`): `client_id` and `client_secret` parameters.
//!
//! Outcomes (RFC 6749 §5.2): no client authentication, an unsupported scheme (`Bearer`,
//! `Digest`, …), bad base64, no `:`, bytes that are not UTF-8 once decoded, an empty id, a
//! `client_id` without a `client_secret` → 401 `invalid_client` (with `WWW-Authenticate:
//! Basic`); two `Authorization` headers ("includes multiple credentials"), Basic and a
//! `client_secret` in the body together ("utilizes more than one mechanism"), or a body
//! `client_id` naming another client than the Basic one → 400 `invalid_request`. A body
//! `client_id` equal to the Basic id is allowed beside Basic (RFC 6749 §3.2.1 lets a
//! client identify itself there; several libraries always send it).
//!
//! Threat model: every byte here is the attacker's. Nothing panics on input; the secret
//! lives in [`Zeroizing`] buffers (the decoded Basic bytes included) and is never logged
//! or echoed: descriptions are fixed sentences, and [`ClientCredentials`]'s `Debug`
//! leaves it out.

use base64::Engine as _;
use http::HeaderMap;
use zeroize::Zeroizing;

use crate::accounts::AccountError;
use crate::error::GatewayError;

/// A client's id and secret as presented, decoded; not yet checked.
pub struct ClientCredentials {
    /// The client's name as sent (canonicalised by the accounts layer).
    pub id: String,
    pub secret: Zeroizing<String>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The client credentials of a request: HTTP Basic from `headers`, or `client_id` and
/// `client_secret` from the form body; see the module doc for every outcome.
pub fn credentials(
    headers: &HeaderMap,
    client_id: Option<String>,
    client_secret: Option<Zeroizing<String>>,
) -> Result<ClientCredentials, GatewayError> {
    match basic(headers)? {
        Some(basic) => {
            if client_secret.is_some() {
                return Err(GatewayError::invalid_request(
                    "authenticate the client one way only: HTTP Basic or client_id and client_secret in the form, not both (RFC 6749 §2.3.1)",
                ));
            }
            if client_id.is_some_and(|id| id != basic.id) {
                return Err(GatewayError::invalid_request(
                    "client_id in the form names another client than the Authorization header",
                ));
            }
            Ok(basic)
        }
        None => match (client_id, client_secret) {
            (Some(id), Some(secret)) if !id.is_empty() => Ok(ClientCredentials { id, secret }),
            _ => Err(GatewayError::InvalidClient),
        },
    }
}

/// The SPEC §5 outcome of a failed client authentication (RFC 6749 §5.2): every refusal
/// is 401 `invalid_client`, one body whatever the cause; lockout, outage and faults stay
/// what they are (429, 503, 500).
pub fn client_error(err: AccountError) -> GatewayError {
    match err {
        AccountError::TooManyAttempts { retry_after_secs } => {
            GatewayError::TooManyAttempts { retry_after_secs }
        }
        AccountError::Unavailable(_) => GatewayError::Unavailable,
        AccountError::Internal(detail) => GatewayError::Internal(detail),
        AccountError::InvalidClient
        | AccountError::InvalidCredentials
        | AccountError::AccountDisabled
        | AccountError::InvalidGrant
        | AccountError::UsernameTaken
        | AccountError::Policy(_)
        | AccountError::NoSuchUser(_)
        | AccountError::NoSuchClient(_) => GatewayError::InvalidClient,
    }
}

/// HTTP Basic client credentials: `Ok(None)` without an `Authorization` header; 401
/// `invalid_client` for another scheme or malformed credentials; 400 for several headers.
fn basic(headers: &HeaderMap) -> Result<Option<ClientCredentials>, GatewayError> {
    let Some(value) = crate::access::credentials::single_authorization(headers)? else {
        return Ok(None);
    };
    decode_basic(value.as_bytes())
        .map(Some)
        .ok_or(GatewayError::InvalidClient)
}

/// The credentials of an `Authorization` value `Basic <base64>`, or `None` when it is not
/// that or does not decode to a non-empty id, a `:` and a secret.
fn decode_basic(value: &[u8]) -> Option<ClientCredentials> {
    let space = value.iter().position(|b| *b == b' ')?;
    if !value[..space].eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let encoded = value[space + 1..].trim_ascii();
    // Padding as the client sent it: RFC 7617 requires it, some clients drop it.
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let decoded = Zeroizing::new(engine.decode(encoded).ok()?);
    let colon = decoded.iter().position(|b| *b == b':')?;
    let id = form_decode(&decoded[..colon])?;
    let secret = form_decode(&decoded[colon + 1..])?;
    if id.is_empty() {
        return None;
    }
    Some(ClientCredentials {
        id: String::from(id.as_str()),
        secret,
    })
}

/// `application/x-www-form-urlencoded` decoding of one value (`+` is a space, `%XX` a
/// byte; a `%` not followed by two hex digits stays as it is, as the URL Standard has it);
/// `None` when the result is not UTF-8.
fn form_decode(encoded: &[u8]) -> Option<Zeroizing<String>> {
    let spaced = Zeroizing::new(
        encoded
            .iter()
            .map(|b| if *b == b'+' { b' ' } else { *b })
            .collect::<Vec<u8>>(),
    );
    let bytes = Zeroizing::new(percent_encoding::percent_decode(&spaced).collect::<Vec<u8>>());
    std::str::from_utf8(&bytes)
        .ok()
        .map(|text| Zeroizing::new(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn basic_header(raw: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(raw).expect("header value"),
        );
        headers
    }

    fn basic_of(user_pass: &[u8]) -> HeaderMap {
        basic_header(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        ))
    }

    fn ok(headers: &HeaderMap) -> (String, String) {
        let credentials = credentials(headers, None, None).expect("credentials");
        (credentials.id, credentials.secret.to_string())
    }

    fn is_invalid_client(result: Result<ClientCredentials, GatewayError>) -> bool {
        matches!(result, Err(GatewayError::InvalidClient))
    }

    fn is_invalid_request(result: Result<ClientCredentials, GatewayError>) -> bool {
        matches!(result, Err(GatewayError::InvalidRequest(_)))
    }

    #[test]
    fn rfc_6749_section_2_3_1_basic_decodes() {
        // RFC 6749 §2.3.1's own example: `s6BhdRkqt3:7Fjfp0ZBr1KtDRbnfVdmIw`.
        let headers = basic_header("Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3");
        assert_eq!(
            ok(&headers),
            ("s6BhdRkqt3".into(), "7Fjfp0ZBr1KtDRbnfVdmIw".into())
        );
    }

    #[test]
    fn id_and_secret_are_form_decoded_after_base64() {
        // `%3A` is a `:` inside the id; `+` a space; `%40` an `@`; the first raw `:` splits.
        assert_eq!(
            ok(&basic_of(b"ci%3Abot+one%40example:s%2Bcr%3At+x")),
            ("ci:bot one@example".into(), "s+cr:t x".into())
        );
        // Unencoded, as authlib and curl send gatehouse names and secrets.
        assert_eq!(
            ok(&basic_of(b"ci-bot@example.com:AbC_-9")),
            ("ci-bot@example.com".into(), "AbC_-9".into())
        );
        // Everything after the first raw `:` is the secret, colons included.
        assert_eq!(ok(&basic_of(b"a:b:c")), ("a".into(), "b:c".into()));
        // Non-ASCII UTF-8, encoded and raw.
        assert_eq!(ok(&basic_of(b"%C3%A9:x")), ("\u{e9}".into(), "x".into()));
        // A stray `%` stays literal (URL Standard).
        assert_eq!(ok(&basic_of(b"a%zz:%")), ("a%zz".into(), "%".into()));
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_padding_optional() {
        let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(b"bot:pw");
        assert_eq!(
            ok(&basic_header(&format!("bAsIc   {encoded} "))),
            ("bot".into(), "pw".into())
        );
    }

    #[test]
    fn malformed_basic_credentials_are_invalid_client() {
        for raw in [
            "Basic",
            "Basic ",
            "Basic !!!notbase64",
            "Bearer abc.def.ghi",
            "Digest username=\"x\"",
            "Basicx Ym90OnB3",
        ] {
            assert!(
                is_invalid_client(credentials(&basic_header(raw), None, None)),
                "{raw}"
            );
        }
        // No colon; an empty id; bytes that are not UTF-8, raw or percent-encoded.
        for user_pass in [
            &b"botpw"[..],
            b":pw",
            b"\xff\xfe:pw",
            b"bot:\xff",
            b"%FF:pw",
            b"bot:%C3",
        ] {
            assert!(
                is_invalid_client(credentials(&basic_of(user_pass), None, None)),
                "{user_pass:?}"
            );
        }
    }

    #[test]
    fn body_credentials_need_both_parameters_and_an_id() {
        let none = HeaderMap::new();
        let found = credentials(&none, Some("bot".into()), Some("pw".to_string().into()))
            .expect("body credentials");
        assert_eq!((found.id.as_str(), found.secret.as_str()), ("bot", "pw"));
        assert!(is_invalid_client(credentials(&none, None, None)));
        assert!(is_invalid_client(credentials(
            &none,
            Some("bot".into()),
            None
        )));
        assert!(is_invalid_client(credentials(
            &none,
            None,
            Some("pw".to_string().into())
        )));
        assert!(is_invalid_client(credentials(
            &none,
            Some(String::new()),
            Some("pw".to_string().into())
        )));
    }

    #[test]
    fn two_methods_or_two_headers_are_invalid_request() {
        let headers = basic_of(b"bot:pw");
        assert!(is_invalid_request(credentials(
            &headers,
            None,
            Some("pw".to_string().into())
        )));
        assert!(is_invalid_request(credentials(
            &headers,
            Some("other".into()),
            None
        )));
        // The same id in the body beside Basic is fine (RFC 6749 §3.2.1).
        assert_eq!(
            credentials(&headers, Some("bot".into()), None)
                .expect("same id")
                .id,
            "bot"
        );
        let mut two = basic_of(b"bot:pw");
        two.append(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Basic Ym90OnB3"),
        );
        assert!(is_invalid_request(credentials(&two, None, None)));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let credentials = ClientCredentials {
            id: "bot".into(),
            secret: "hunter2-secret".to_string().into(),
        };
        let shown = format!("{credentials:?}");
        assert!(
            shown.contains("bot") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
