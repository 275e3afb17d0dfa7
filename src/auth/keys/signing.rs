//! The key that signs access tokens: its algorithm, its `kid` and the JWS header every
//! token it signs carries (SPEC §4: `alg`, `typ: "JWT"`, `kid`).
//!
//! Today that is the shared HMAC secret with the configured HS* algorithm. SPEC §9 adds
//! the `active` key pair of `[[tokens.keys]]` (ES256, EdDSA, RS256): a constructor
//! beside [`SigningKey::hmac`] taking the PKCS#8 private key, with `kid` its RFC 7638
//! thumbprint and `typ: "at+jwt"` (RFC 9068); nothing else here changes.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, AlgorithmFamily, EncodingKey, Header};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Signs access tokens. Never prints its key material (`Debug` shows `alg` and `kid`).
pub struct SigningKey {
    encoding: EncodingKey,
    header: Header,
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
        header.typ = Some("JWT".into());
        header.kid = Some(hmac_key_id(secret));
        Ok(SigningKey {
            encoding: EncodingKey::from_secret(secret),
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

    /// Signs `claims` as a compact JWS with this key's header.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&self.header, claims, &self.encoding)
    }

    /// Signs `claims` with this key's header but another `typ` (RFC 8725 §3.11: each kind
    /// of JWT gets its own type, so one kind cannot pass for another). The upstream
    /// assertion (SPEC §9) is `gatehouse-assertion+jwt`.
    pub fn sign_typed<T: Serialize>(
        &self,
        typ: &str,
        claims: &T,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = self.header.clone();
        header.typ = Some(typ.to_string());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }
}

/// A key id that names a shared secret without revealing it: the first 8 bytes of its
/// SHA-256, base64url. (Key pairs will use their RFC 7638 thumbprint instead, SPEC §9.)
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
    fn sign_typed_changes_only_the_type() {
        let key =
            SigningKey::hmac(b"0123456789abcdef0123456789abcdef", Algorithm::HS256).expect("key");
        let token = key
            .sign_typed("gatehouse-assertion+jwt", &serde_json::json!({"sub": "u1"}))
            .expect("sign");
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.typ.as_deref(), Some("gatehouse-assertion+jwt"));
        assert_eq!(header.alg, Algorithm::HS256);
        assert_eq!(header.kid.as_deref(), Some(key.kid()));
        let plain = key.sign(&serde_json::json!({"sub": "u1"})).expect("sign");
        assert_eq!(
            jsonwebtoken::decode_header(&plain)
                .expect("header")
                .typ
                .as_deref(),
            Some("JWT"),
            "the key's own header is untouched"
        );
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
}
