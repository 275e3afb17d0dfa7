//! The verification keys, looked up by `kid`, and the JOSE header check that runs before
//! any of them is used (RFC 7515 §4.1, RFC 8725 §3.1, SPEC §4 and §9).
//!
//! Flow of [`KeySet::verify`]: [`KeySet::check_header`] decodes the header only — no
//! signature work — and picks the key: by `kid` ([`KeySet::find`]); `alg` exactly the
//! key's algorithm; none of the members that would let a token name its own key or
//! demand extensions (`jku`, `x5u`, `jwk`, `x5c`, `crit`: gatehouse writes none of them
//! and never fetches a key); `typ` where the key requires one. Only then is the signature
//! checked and the claims parsed and validated with that key's [`Validation`].
//!
//! A set holds either one HMAC secret (HS256/384/512) or the key pairs of
//! `[[tokens.keys]]` (SPEC §9), never both.
//!
//! - The shared secret's `kid` is advisory: the secret answers every `kid` and tokens
//!   without one, as before key ids were read (tokens minted by other tools with the
//!   shared secret carry none). `typ` is not checked. It is never published: the JWK set
//!   is `{"keys":[]}`.
//! - Key pairs ([`KeySet::pairs`]: the next, active and retired keys) are found by exact
//!   `kid` only (the RFC 7638 thumbprint), so a token naming an unknown key (one no longer
//!   configured), or none, is refused by [`KeySet::find`] before any crypto. Each
//!   requires its own algorithm and `typ` `at+jwt` (RFC 9068 §4: `application/at+jwt`
//!   too), so an upstream assertion (`gatehouse-assertion+jwt`) is never an access token;
//!   [`KeySet::jwks`] publishes their public JWKs.

use std::borrow::Cow;

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde::de::{Deserializer, IgnoredAny, Visitor};
use serde::Deserialize;

use std::sync::Arc;

use super::claims::{AccessClaims, ClaimRules};
use super::material::KeyMaterial;
use super::signing::{hmac_key_id, ACCESS_TOKEN_TYP};
use crate::error::TokenRejection;

/// One key that verifies tokens, with everything its tokens are checked against.
pub struct VerifyingKey {
    kid: String,
    alg: Algorithm,
    decoding: DecodingKey,
    /// Built once per key: its algorithm alone, plus the claim rules.
    validation: Validation,
    /// The `typ` a token's header must carry (compared as RFC 9068 §4 says: `at+jwt` or
    /// `application/at+jwt`, ASCII case-insensitive); `None`: not checked (HS*: tokens of
    /// other minters sharing the secret may carry none).
    typ: Option<&'static str>,
    /// Published in the JWK set; `None` for a shared secret, which is never published.
    public: Option<Jwk>,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// A shared HMAC secret (HS256/384/512); `kid` as its [`super::SigningKey`] writes it.
    pub fn hmac(secret: &[u8], alg: Algorithm, rules: &ClaimRules) -> Result<Self, String> {
        if alg.family() != AlgorithmFamily::Hmac {
            return Err(format!(
                "tokens: a shared secret verifies only HS256, HS384 or HS512, not {alg:?}"
            ));
        }
        Ok(VerifyingKey {
            kid: hmac_key_id(secret),
            alg,
            decoding: DecodingKey::from_secret(secret),
            validation: rules.validation(alg),
            typ: None,
            public: None,
        })
    }

    /// A key pair of `[[tokens.keys]]` (SPEC §9), private or public alone: found by its
    /// exact `kid`, its own algorithm only, `typ` `at+jwt` required, published.
    pub fn pair(key: &Arc<KeyMaterial>, rules: &ClaimRules) -> Result<Self, String> {
        Ok(VerifyingKey {
            kid: key.kid().to_string(),
            alg: key.algorithm(),
            decoding: key.decoding_key()?,
            validation: rules.validation(key.algorithm()),
            typ: Some(ACCESS_TOKEN_TYP),
            public: Some(key.jwk()),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Whether a header's `typ` is the one this key requires: RFC 9068 §4 allows the
    /// media type with or without `application/`, compared ASCII case-insensitively
    /// (RFC 7515 §4.1.9).
    fn accepts_typ(&self, typ: Option<&str>) -> bool {
        let Some(required) = self.typ else {
            return true;
        };
        let Some(typ) = typ else {
            return false;
        };
        let bare = match typ.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
            _ => typ,
        };
        bare.eq_ignore_ascii_case(required)
    }

    /// A shared secret answers every `kid` (see the module doc).
    fn is_shared_secret(&self) -> bool {
        self.alg.family() == AlgorithmFamily::Hmac
    }
}

/// The keys that verify access tokens, by `kid`. Immutable: a reload builds a new set and
/// swaps it in whole ([`super::TokenKeys::swap`]).
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
}

impl KeySet {
    /// The set of one shared HMAC secret.
    pub fn hmac(secret: &[u8], alg: Algorithm, rules: &ClaimRules) -> Result<Self, String> {
        Ok(KeySet {
            keys: vec![VerifyingKey::hmac(secret, alg, rules)?],
        })
    }

    /// The set of the `[[tokens.keys]]` key pairs (next, active, retired). Two keys with
    /// one `kid` are an error: lookup must be unambiguous.
    pub fn pairs(keys: &[Arc<KeyMaterial>], rules: &ClaimRules) -> Result<Self, String> {
        let mut set = KeySet {
            keys: Vec::with_capacity(keys.len()),
        };
        for key in keys {
            if set.keys.iter().any(|known| known.kid == key.kid()) {
                return Err(format!(
                    "tokens: key {} is configured twice; each key file must hold another key",
                    key.kid()
                ));
            }
            set.keys.push(VerifyingKey::pair(key, rules)?);
        }
        Ok(set)
    }

    /// The key for a token whose header names `kid`: the key with that `kid`, else the
    /// shared secret if the set has one (it answers any `kid`, and none). `None`: no key
    /// of this set can have signed the token.
    pub fn find(&self, kid: Option<&str>) -> Option<&VerifyingKey> {
        kid.and_then(|kid| self.keys.iter().find(|key| key.kid == kid))
            .or_else(|| self.keys.iter().find(|key| key.is_shared_secret()))
    }

    /// The `kid`s of the set.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|key| key.kid.as_str())
    }

    /// The public keys, as served at `/.well-known/jwks.json` (SPEC §9): `{"keys":[]}`
    /// for a shared secret, which is never published.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self
                .keys
                .iter()
                .filter_map(|key| key.public.clone())
                .collect(),
        }
    }

    /// Signature, then claims: a token that passes has a good signature by a key of this
    /// set and good `iss`, `aud`, `exp`, `nbf`, `sub`. The caller checks `iat` and the
    /// store-backed rules.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenRejection> {
        let key = self.check_header(token)?;
        jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &key.validation)
            .map(|data| data.claims)
            .map_err(|err| self.classify(token, err.kind()))
    }

    /// The header check, before any crypto (RFC 8725 §3.1, SPEC §9): decodes the header
    /// alone and returns the key to verify with. The order of the checks:
    ///
    /// 1. the header is base64url JSON with string `alg`, `kid`, `typ` where present;
    /// 2. `kid` finds a key ([`KeySet::find`]);
    /// 3. `alg` is exactly that key's algorithm (`none`, other HMAC sizes, asymmetric
    ///    names on an HMAC key: all refused);
    /// 4. no `jku`, `x5u`, `jwk`, `x5c` or `crit` (RFC 7515 §4.1.2–4.1.6, §4.1.11): a
    ///    token may not name or carry its own key, nor demand extensions we do not know;
    /// 5. `typ` is the key's required type, when it has one (§9: `at+jwt`, RFC 9068 §4;
    ///    [`VerifyingKey::accepts_typ`]).
    pub fn check_header(&self, token: &str) -> Result<&VerifyingKey, TokenRejection> {
        let encoded = token.split('.').next().unwrap_or_default();
        let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded) else {
            return Err(TokenRejection::Malformed);
        };
        let Ok(header) = serde_json::from_slice::<JoseHeader<'_>>(&bytes) else {
            return Err(self.unreadable_header(&bytes));
        };
        let key = self
            .find(header.kid.as_ref().map(|kid| kid.0.as_ref()))
            .ok_or(TokenRejection::BadSignature)?;
        if header.alg.as_ref().map(|alg| alg.0.as_ref()) != Some(alg_name(key.alg)) {
            return Err(TokenRejection::WrongAlgorithm);
        }
        if header.jku || header.x5u || header.jwk || header.x5c || header.crit {
            return Err(TokenRejection::Malformed);
        }
        if !key.accepts_typ(header.typ.as_ref().map(|typ| typ.0.as_ref())) {
            return Err(TokenRejection::Malformed);
        }
        Ok(key)
    }

    /// A header that is JSON but not of the shape above: a wrong algorithm if it names
    /// none of ours, else malformed (the classification from before the header check).
    fn unreadable_header(&self, bytes: &[u8]) -> TokenRejection {
        match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(value) if !self.knows_alg(value.get("alg").and_then(|alg| alg.as_str())) => {
                TokenRejection::WrongAlgorithm
            }
            _ => TokenRejection::Malformed,
        }
    }

    fn knows_alg(&self, alg: Option<&str>) -> bool {
        self.keys.iter().any(|key| Some(alg_name(key.alg)) == alg)
    }

    fn classify(&self, token: &str, kind: &ErrorKind) -> TokenRejection {
        match kind {
            ErrorKind::InvalidSignature => TokenRejection::BadSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                TokenRejection::WrongAlgorithm
            }
            ErrorKind::ExpiredSignature => TokenRejection::Expired,
            ErrorKind::ImmatureSignature => TokenRejection::NotYetValid,
            ErrorKind::InvalidIssuer => TokenRejection::WrongIssuer,
            ErrorKind::InvalidAudience => TokenRejection::WrongAudience,
            // A header the library cannot read: say "wrong algorithm" when it names none
            // of ours (error path only, so the second decode costs nothing that matters).
            _ if !self.header_names_our_alg(token) => TokenRejection::WrongAlgorithm,
            _ => TokenRejection::Malformed,
        }
    }

    /// True when the token's header cannot be read, or names one of our algorithms.
    fn header_names_our_alg(&self, token: &str) -> bool {
        let encoded = token.split('.').next().unwrap_or_default();
        let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded) else {
            return true; // not a readable header at all: malformed, not an algorithm question
        };
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(value) => self.knows_alg(value.get("alg").and_then(|alg| alg.as_str())),
            Err(_) => true,
        }
    }
}

/// The header members the check reads; every other member is left to the library.
#[derive(Deserialize)]
struct JoseHeader<'a> {
    #[serde(borrow, default)]
    alg: Option<Text<'a>>,
    #[serde(borrow, default)]
    kid: Option<Text<'a>>,
    #[serde(borrow, default)]
    typ: Option<Text<'a>>,
    #[serde(default, deserialize_with = "present")]
    jku: bool,
    #[serde(default, deserialize_with = "present")]
    x5u: bool,
    #[serde(default, deserialize_with = "present")]
    jwk: bool,
    #[serde(default, deserialize_with = "present")]
    x5c: bool,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

/// A JSON string, borrowed from the header bytes unless it has escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// A member that is there, whatever its value (`null` included).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// The JWA name of an algorithm (RFC 7518 §3.1, RFC 8037 §3.1).
fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::now_secs;
    use std::time::Duration;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn rules() -> ClaimRules {
        ClaimRules {
            issuer: "gatehouse".into(),
            audience: "gatehouse".into(),
            access_ttl: Duration::from_secs(900),
            leeway: 30,
        }
    }

    fn set() -> KeySet {
        KeySet::hmac(SECRET, Algorithm::HS256, &rules()).expect("set")
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn valid_claims() -> serde_json::Value {
        let now = now_secs();
        serde_json::json!({
            "iss": "gatehouse", "aud": "gatehouse", "sub": "u1", "username": "alice",
            "roles": [], "iat": now, "nbf": now, "exp": now + 600, "jti": "j1",
        })
    }

    /// A token with exactly this header text, correctly signed with `SECRET` (HS256).
    fn signed(header: &str, claims: &serde_json::Value) -> String {
        let message = format!(
            "{}.{}",
            b64(header.as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &jsonwebtoken::EncodingKey::from_secret(SECRET),
            Algorithm::HS256,
        )
        .expect("sign");
        format!("{message}.{signature}")
    }

    /// Decodes `claims`, signed by the set's key, into an untyped value, so only the
    /// library's checks run (the typed `AccessClaims` refuses wrong types too and would
    /// mask them).
    fn library_verdict(
        validation: &Validation,
        claims: &serde_json::Value,
    ) -> Result<(), ErrorKind> {
        let token = signed(r#"{"alg":"HS256","typ":"JWT"}"#, claims);
        let key = &set().keys[0];
        jsonwebtoken::decode::<serde_json::Value>(&token, &key.decoding, validation)
            .map(|_| ())
            .map_err(|err| err.into_kind())
    }

    #[test]
    fn registered_claims_of_the_wrong_type_are_refused_by_the_library() {
        let validation = rules().validation(Algorithm::HS256);
        assert_eq!(library_verdict(&validation, &valid_claims()), Ok(()));
        // All five are required, and a required claim that does not parse is missing.
        for (claim, value) in [
            ("exp", serde_json::json!("9999999999")),
            ("nbf", serde_json::json!("0")),
            ("aud", serde_json::json!(7)),
            ("iss", serde_json::json!(7)),
            ("sub", serde_json::json!(7)),
        ] {
            let mut claims = valid_claims();
            claims[claim] = value;
            assert_eq!(
                library_verdict(&validation, &claims),
                Err(ErrorKind::MissingRequiredClaim(claim.into())),
                "{claim}: {}",
                claims[claim]
            );
        }
    }

    /// CVE-2026-25537: jsonwebtoken before 10.3 skipped an `exp` or `nbf` of the wrong JSON
    /// type when it was validated but not required (9.3.1 accepts both tokens below).
    /// gatehouse requires both, so it was not exposed; this pins the patched library should
    /// the required list ever shrink.
    #[test]
    fn a_wrong_typed_exp_or_nbf_is_refused_even_when_not_required() {
        let mut lenient = rules().validation(Algorithm::HS256);
        lenient.required_spec_claims.clear();
        for claim in ["exp", "nbf"] {
            let mut claims = valid_claims();
            claims[claim] = serde_json::json!("9999999999");
            assert_eq!(
                library_verdict(&lenient, &claims),
                Err(ErrorKind::InvalidClaimFormat(claim.into())),
                "{claim}"
            );
        }
    }

    #[test]
    fn a_correctly_signed_token_verifies() {
        let claims = valid_claims();
        let verified = set()
            .verify(&signed(r#"{"alg":"HS256","typ":"JWT"}"#, &claims))
            .expect("valid");
        assert_eq!(verified.sub, "u1");
        assert_eq!(verified.jti, "j1");
    }

    /// HS*: one shared secret, `kid` advisory, as before the header was read: the secret
    /// answers a token with its own kid, another kid, or none (other minters sharing the
    /// secret write none). Key pairs (SPEC §9) will be found by exact kid only.
    #[test]
    fn a_shared_secret_answers_every_kid_and_none() {
        let set = set();
        let own = hmac_key_id(SECRET);
        assert_eq!(set.kids().collect::<Vec<_>>(), vec![own.as_str()]);
        for header in [
            format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{own}"}}"#),
            r#"{"alg":"HS256","typ":"JWT","kid":"another-key"}"#.to_string(),
            r#"{"alg":"HS256","typ":"JWT","kid":null}"#.to_string(),
            r#"{"alg":"HS256","typ":"JWT"}"#.to_string(),
        ] {
            assert!(
                set.verify(&signed(&header, &valid_claims())).is_ok(),
                "{header}"
            );
        }
        for kid in [Some(own.as_str()), Some("another-key"), None] {
            assert_eq!(
                set.find(kid).map(VerifyingKey::kid),
                Some(own.as_str()),
                "{kid:?}"
            );
        }
    }

    /// `typ` is not required of HS* tokens (it never was); the check is there for §9 keys.
    #[test]
    fn an_hmac_token_needs_no_typ() {
        for header in [r#"{"alg":"HS256"}"#, r#"{"alg":"HS256","typ":"at+jwt"}"#] {
            assert!(
                set().verify(&signed(header, &valid_claims())).is_ok(),
                "{header}"
            );
        }
    }

    #[test]
    fn a_token_for_no_key_of_the_set_is_refused_before_any_crypto() {
        let empty = KeySet { keys: Vec::new() };
        assert!(empty.find(Some("any")).is_none());
        assert!(empty.find(None).is_none());
        let token = signed(r#"{"alg":"HS256","kid":"gone"}"#, &valid_claims());
        assert_eq!(
            empty.check_header(&token).map(|_| ()),
            Err(TokenRejection::BadSignature)
        );
    }

    /// Header members that would let a token name or carry its own key (`jku`, `x5u`,
    /// `jwk`, `x5c`) or demand extensions (`crit`) are refused even when the signature is
    /// good — and before the signature is looked at (a bad signature still gets the header
    /// verdict). gatehouse writes none of them.
    #[test]
    fn key_naming_and_critical_header_members_are_refused() {
        for member in [
            r#""jku":"https://evil.example/jwks.json""#,
            r#""x5u":"https://evil.example/cert.pem""#,
            r#""jwk":{"kty":"oct","k":"c2VjcmV0"}"#,
            r#""x5c":["MIIB"]"#,
            r#""crit":["exp"]"#,
            r#""crit":null"#,
            r#""jku":7"#,
        ] {
            let header = format!(r#"{{"alg":"HS256","typ":"JWT",{member}}}"#);
            let token = signed(&header, &valid_claims());
            assert_eq!(
                set().verify(&token).map(|_| ()),
                Err(TokenRejection::Malformed),
                "{header}"
            );
            let (unsigned, _) = token.rsplit_once('.').expect("three segments");
            assert_eq!(
                set()
                    .verify(&format!("{unsigned}.c2lnbmF0dXJl"))
                    .map(|_| ()),
                Err(TokenRejection::Malformed),
                "{header}, bad signature"
            );
        }
    }

    /// The verdicts from before the header check, kept (they are the rejection reasons in
    /// logs and metrics).
    #[test]
    fn header_verdicts_are_those_of_the_library_before() {
        let claims = valid_claims();
        for (header, verdict) in [
            (
                r#"{"alg":"none","typ":"JWT"}"#,
                TokenRejection::WrongAlgorithm,
            ),
            (
                r#"{"alg":"HS512","typ":"JWT"}"#,
                TokenRejection::WrongAlgorithm,
            ),
            (
                r#"{"alg":"RS256","typ":"JWT"}"#,
                TokenRejection::WrongAlgorithm,
            ),
            (r#"{"typ":"JWT"}"#, TokenRejection::WrongAlgorithm),
            (r#"{"alg":"HS512","kid":7}"#, TokenRejection::WrongAlgorithm),
            (r#"{"alg":"HS256","kid":7}"#, TokenRejection::Malformed),
            (
                r#"{"alg":"HS256","typ":["JWT"]}"#,
                TokenRejection::Malformed,
            ),
            (
                r#"{"alg":"HS256","alg":"HS256"}"#,
                TokenRejection::Malformed,
            ),
            // Members the check does not read are the library's: it refuses a non-string.
            (r#"{"alg":"HS256","extra":1}"#, TokenRejection::Malformed),
            (r#"not json"#, TokenRejection::Malformed),
            (r#"["HS256"]"#, TokenRejection::WrongAlgorithm),
        ] {
            assert_eq!(
                set().verify(&signed(header, &claims)).map(|_| ()),
                Err(verdict),
                "{header}"
            );
        }
        for (token, verdict) in [
            ("a.b.c", TokenRejection::Malformed),
            ("e30.e30.e30", TokenRejection::WrongAlgorithm),
            ("eyJhbGciOiJIUzI1NiJ9", TokenRejection::Malformed),
            ("....", TokenRejection::Malformed),
        ] {
            assert_eq!(set().verify(token).map(|_| ()), Err(verdict), "{token}");
        }
        // An escaped `alg` is the same string to the library, and to the check.
        let escaped = signed(r#"{"alg":"HS\u0032\u0035\u0036","typ":"JWT"}"#, &claims);
        assert!(set().verify(&escaped).is_ok());
    }

    #[test]
    fn the_jwk_set_of_a_shared_secret_is_empty() {
        assert_eq!(
            serde_json::to_value(set().jwks()).expect("json"),
            serde_json::json!({"keys": []})
        );
    }
}
