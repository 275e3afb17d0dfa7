//! The key that signs access tokens: its algorithm, its `kid` and the JWS header every
//! token it signs carries.
//!
//! Two kinds: the shared HMAC secret with the configured HS* algorithm (SPEC §4: header
//! `alg`, `typ: "JWT"`, `kid` a digest of the secret), signed by jsonwebtoken; and the
//! `active` key pair of `[[tokens.keys]]` (SPEC §9: ES256, EdDSA, RS256; header
//! `{"alg","kid","typ":"at+jwt"}`, RFC 9068 §2.1, `kid` the RFC 7638 thumbprint), signed
//! here with the key pair aws-lc-rs parsed once at load ([`KeyMaterial::sign`]), so issuing
//! a token never re-parses a private key. [`SigningKey::sign_typed`] signs other JWTs
//! with the same key and another `typ` (the upstream assertion, SPEC §9).

use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, AlgorithmFamily, EncodingKey, Header};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::material::{is_pair_algorithm, KeyMaterial};

/// The `typ` of access tokens signed with a key pair (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The `typ` of access tokens signed with the shared secret (SPEC §4, as before §9).
pub const SHARED_SECRET_TYP: &str = "JWT";

/// Signs access tokens. Never prints its key material (`Debug` shows `alg` and `kid`).
pub struct SigningKey {
    signer: Signer,
    header: Header,
}

enum Signer {
    Hmac(EncodingKey),
    /// The key pair, and the access-token header, base64url-encoded once.
    Pair {
        key: Arc<KeyMaterial>,
        encoded_header: String,
    },
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.header.alg)
            .field("kid", &self.header.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The shared secret with an HS256/384/512 algorithm; `kid` = [`hmac_key_id`].
    pub fn hmac(secret: &[u8], alg: Algorithm) -> Result<Self, String> {
        if alg.family() != AlgorithmFamily::Hmac {
            return Err(format!(
                "tokens: a shared secret signs only with HS256, HS384 or HS512, not {alg:?}"
            ));
        }
        let mut header = Header::new(alg);
        header.typ = Some(SHARED_SECRET_TYP.into());
        header.kid = Some(hmac_key_id(secret));
        Ok(SigningKey {
            signer: Signer::Hmac(EncodingKey::from_secret(secret)),
            header,
        })
    }

    /// A key pair that holds its private key (the `active` key, SPEC §9): header
    /// `{"alg","kid","typ":"at+jwt"}`.
    pub fn pair(key: Arc<KeyMaterial>) -> Result<Self, String> {
        if !key.can_sign() || !is_pair_algorithm(key.algorithm()) {
            return Err(format!(
                "tokens: key {} has no private key and cannot sign",
                key.kid()
            ));
        }
        let mut header = Header::new(key.algorithm());
        header.typ = Some(ACCESS_TOKEN_TYP.into());
        header.kid = Some(key.kid().to_string());
        let encoded_header = encoded_header(key.algorithm(), key.kid(), ACCESS_TOKEN_TYP);
        Ok(SigningKey {
            signer: Signer::Pair {
                key,
                encoded_header,
            },
            header,
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.header.alg
    }

    /// The `kid` written into every token this key signs.
    pub fn kid(&self) -> &str {
        self.header.kid.as_deref().unwrap_or_default()
    }

    /// The `typ` of the access tokens this key signs: `at+jwt` for a key pair, `JWT` for
    /// the shared secret.
    pub fn typ(&self) -> &str {
        self.header.typ.as_deref().unwrap_or_default()
    }

    /// Whether this is a key pair (SPEC §9) rather than the shared secret.
    pub fn is_pair(&self) -> bool {
        matches!(self.signer, Signer::Pair { .. })
    }

    /// The key pair, when this is one (its public JWK, its kid).
    pub fn material(&self) -> Option<&Arc<KeyMaterial>> {
        match &self.signer {
            Signer::Pair { key, .. } => Some(key),
            Signer::Hmac(_) => None,
        }
    }

    /// Signs `claims` as a compact JWS with this key's access-token header.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, jsonwebtoken::errors::Error> {
        match &self.signer {
            Signer::Hmac(encoding) => jsonwebtoken::encode(&self.header, claims, encoding),
            Signer::Pair {
                key,
                encoded_header,
            } => sign_compact(key, encoded_header, claims),
        }
    }

    /// Signs `claims` with this key pair under another `typ`, header
    /// `{"alg","kid","typ"}` (e.g. `gatehouse-assertion+jwt`, SPEC §9). An error for the
    /// shared secret: only published keys sign what others verify.
    pub fn sign_typed<T: Serialize>(
        &self,
        typ: &str,
        claims: &T,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        match &self.signer {
            Signer::Pair { key, .. } => sign_compact(
                key,
                &encoded_header(key.algorithm(), key.kid(), typ),
                claims,
            ),
            Signer::Hmac(_) => Err(jsonwebtoken::errors::ErrorKind::Signing(
                "only a key pair signs typed JWTs".into(),
            )
            .into()),
        }
    }
}

/// `BASE64URL(header) "." BASE64URL(claims) "." BASE64URL(signature)` (RFC 7515 §7.1).
fn sign_compact<T: Serialize>(
    key: &KeyMaterial,
    encoded_header: &str,
    claims: &T,
) -> Result<String, jsonwebtoken::errors::Error> {
    let payload = serde_json::to_vec(claims)?;
    let engine = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut token = String::with_capacity(encoded_header.len() + payload.len() * 4 / 3 + 400);
    token.push_str(encoded_header);
    token.push('.');
    engine.encode_string(&payload, &mut token);
    let signature = key
        .sign(token.as_bytes())
        .map_err(jsonwebtoken::errors::ErrorKind::Signing)?;
    token.push('.');
    engine.encode_string(&signature, &mut token);
    Ok(token)
}

/// The base64url JOSE header `{"alg","kid","typ"}`.
fn encoded_header(alg: Algorithm, kid: &str, typ: &str) -> String {
    let header = serde_json::json!({ "alg": alg, "kid": kid, "typ": typ });
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header.to_string())
}

/// A key id that names a shared secret without revealing it: the first 8 bytes of its
/// SHA-256, base64url. (Key pairs use their RFC 7638 thumbprint instead, SPEC §9.)
pub fn hmac_key_id(secret: &[u8]) -> String {
    let digest = Sha256::digest(secret);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_names_the_algorithm_the_type_and_the_kid() {
        let key =
            SigningKey::hmac(b"0123456789abcdef0123456789abcdef", Algorithm::HS384).expect("key");
        let token = key.sign(&serde_json::json!({"sub": "u1"})).expect("sign");
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.alg, Algorithm::HS384);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(header.kid.as_deref(), Some(key.kid()));
        assert_eq!(key.kid(), hmac_key_id(b"0123456789abcdef0123456789abcdef"));
        assert_eq!(key.kid().len(), 11, "8 bytes, base64url");
    }

    #[test]
    fn a_shared_secret_refuses_an_asymmetric_algorithm() {
        let err = SigningKey::hmac(b"0123456789abcdef0123456789abcdef", Algorithm::ES256)
            .expect_err("ES256 with a secret");
        assert!(err.contains("HS256"), "{err}");
    }

    #[test]
    fn debug_shows_no_key_material() {
        let key =
            SigningKey::hmac(b"0123456789abcdef0123456789abcdef", Algorithm::HS256).expect("key");
        let shown = format!("{key:?}");
        assert!(shown.contains("HS256"), "{shown}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
    }

    #[test]
    fn a_key_pair_signs_with_alg_kid_and_at_jwt() {
        for alg in super::super::material::PAIR_ALGORITHMS {
            let (pem, kid) = super::super::material::generate(alg, 2048).expect("generate");
            let material = Arc::new(KeyMaterial::from_pem(pem.as_bytes(), alg).expect("load"));
            let key = SigningKey::pair(material.clone()).expect("key");
            assert!(key.is_pair());
            let token = key.sign(&serde_json::json!({"sub": "u1"})).expect("sign");
            let (header, _) = token.split_once('.').expect("header");
            let header: serde_json::Value = serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(header)
                    .expect("base64url"),
            )
            .expect("json");
            assert_eq!(
                header,
                serde_json::json!({"alg": format!("{alg:?}"), "kid": kid, "typ": "at+jwt"})
            );
            // jsonwebtoken verifies what we signed, with the public components alone.
            let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
            let mut validation = jsonwebtoken::Validation::new(alg);
            validation.required_spec_claims.clear();
            validation.validate_exp = false;
            let decoded = jsonwebtoken::decode::<serde_json::Value>(
                &token,
                &material.decoding_key().expect("decoding"),
                &validation,
            )
            .expect("verifies");
            assert_eq!(decoded.claims["sub"], "u1");
            let typed = key
                .sign_typed("gatehouse-assertion+jwt", &serde_json::json!({"sub": "u1"}))
                .expect("sign");
            assert_eq!(
                jsonwebtoken::decode_header(&typed)
                    .expect("header")
                    .typ
                    .as_deref(),
                Some("gatehouse-assertion+jwt")
            );
        }
    }

    #[test]
    fn a_public_key_alone_cannot_be_the_signing_key() {
        let (pem, _) = super::super::material::generate(Algorithm::EdDSA, 2048).expect("generate");
        let private = KeyMaterial::from_pem(pem.as_bytes(), Algorithm::EdDSA).expect("load");
        let public_pem = super::super::material::encode_pem("PUBLIC KEY", &{
            let jwk = serde_json::to_value(private.jwk()).expect("jwk");
            let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(jwk["x"].as_str().expect("x"))
                .expect("x");
            // SPKI for Ed25519: SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING }
            [
                &[
                    0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x03, 0x21, 0x00,
                ][..],
                &x,
            ]
            .concat()
        });
        let public =
            KeyMaterial::from_pem(public_pem.as_bytes(), Algorithm::EdDSA).expect("public");
        assert_eq!(public.kid(), private.kid());
        let err = SigningKey::pair(Arc::new(public)).expect_err("public only");
        assert!(err.contains("cannot sign"), "{err}");
        let hmac =
            SigningKey::hmac(b"0123456789abcdef0123456789abcdef", Algorithm::HS256).expect("key");
        assert!(hmac.sign_typed("x", &serde_json::json!({})).is_err());
    }
}
