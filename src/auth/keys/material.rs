//! Key pairs for signed tokens (SPEC §9): a `[[tokens.keys]]` file read and checked
//! ([`KeyMaterial::from_pem`]), its `kid` (the RFC 7638 SHA-256 JWK thumbprint), its public
//! JWK (RFC 7517/7518/8037), raw JWS signatures with its private half, and new keys
//! ([`generate`], `gatehouse keys generate`).
//!
//! ```text
//! file → PEM (RFC 7468: exactly one block) → label: PRIVATE KEY (PKCS#8) | PUBLIC KEY (SPKI)
//!      → DER: algorithm OID (+ curve) must be the configured algorithm's kind;
//!        RSA: ≥ 2048 bits and e = 65537, said before aws-lc-rs sees the key
//!      → aws-lc-rs parses and validates it (key pair, or a public key for `retired` only)
//!      → public components → JWK, kid
//! ```
//!
//! Threat model: the files are the operator's, but a wrong or weak key must never start
//! serving. Every refusal names what is wrong and how to fix it (the caller adds the
//! file name); none quotes key bytes. Private key bytes are held by aws-lc-rs and by
//! [`zeroize::Zeroizing`] buffers while read; `Debug` shows `alg` and `kid` only.
//!
//! The DER reading here is the few structures needed to name a key's kind and size
//! (PrivateKeyInfo, SubjectPublicKeyInfo, RSAPublicKey, RSAPrivateKey's first members);
//! aws-lc-rs does the full parse and the key checks.

use std::path::Path;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ParsedPublicKey, RsaKeyPair,
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, RSA_PKCS1_2048_8192_SHA256,
    RSA_PKCS1_SHA256,
};
use base64::Engine as _;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType,
    PublicKeyUse, RSAKeyParameters, RSAKeyType,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Smallest RSA modulus accepted (SPEC §9, RFC 7518 §3.3).
pub const MIN_RSA_BITS: usize = 2048;

/// The only RSA public exponent accepted (SPEC §9).
pub const RSA_EXPONENT: &[u8] = &[0x01, 0x00, 0x01];

/// The asymmetric algorithms a key file can be for.
pub const PAIR_ALGORITHMS: [Algorithm; 3] = [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256];

/// Whether `alg` signs with key pairs (SPEC §9) rather than the shared secret.
pub fn is_pair_algorithm(alg: Algorithm) -> bool {
    PAIR_ALGORITHMS.contains(&alg)
}

/// A checked key: its algorithm, `kid`, public JWK, and the key pair when the file held
/// the private key.
pub struct KeyMaterial {
    alg: Algorithm,
    kid: String,
    public: PublicParts,
    private: Option<PrivateKey>,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("algorithm", &self.alg)
            .field("kid", &self.kid)
            .field("private", &self.private.is_some())
            .finish_non_exhaustive()
    }
}

/// The public half, as the JWK members carry it (unsigned big-endian, no leading zeros).
#[derive(Debug, Clone, PartialEq, Eq)]
enum PublicParts {
    /// P-256: the affine coordinates, 32 bytes each.
    Ec {
        x: Vec<u8>,
        y: Vec<u8>,
    },
    /// Ed25519: the 32-byte public key.
    Okp {
        x: Vec<u8>,
    },
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
}

enum PrivateKey {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

impl KeyMaterial {
    /// Reads a key file for `alg`; the error starts with the file's name.
    pub fn load(path: &Path, alg: Algorithm) -> Result<Self, String> {
        let text = Zeroizing::new(
            std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?,
        );
        Self::from_pem(&text, alg).map_err(|why| format!("{}: {why}", path.display()))
    }

    /// A key from PEM text: one `PRIVATE KEY` (PKCS#8) block, or one `PUBLIC KEY` (SPKI)
    /// block (usable for verification only: the caller allows it for `retired` keys).
    pub fn from_pem(text: &[u8], alg: Algorithm) -> Result<Self, String> {
        if !is_pair_algorithm(alg) {
            return Err(format!(
                "{alg:?} is not a key-pair algorithm; key files are for ES256, EdDSA or RS256"
            ));
        }
        let block = single_pem_block(text)?;
        match block.label.as_str() {
            "PRIVATE KEY" => Self::from_pkcs8(&block.der, alg),
            "PUBLIC KEY" => Self::from_spki(&block.der, alg),
            "ENCRYPTED PRIVATE KEY" => Err("holds an encrypted private key; gatehouse reads unencrypted PKCS#8 (protect the file with mode 0600 instead): `openssl pkcs8 -in OLD -nocrypt -out NEW`".into()),
            "EC PRIVATE KEY" | "RSA PRIVATE KEY" => Err(format!(
                "holds a {} key, not PKCS#8; convert it: `openssl pkcs8 -topk8 -nocrypt -in OLD -out NEW`",
                block.label.trim_end_matches(" PRIVATE KEY")
            )),
            "RSA PUBLIC KEY" => Err("holds a PKCS#1 public key; a retired key must be a SubjectPublicKeyInfo `PUBLIC KEY`: `openssl rsa -RSAPublicKey_in -in OLD -pubout -out NEW`".into()),
            "CERTIFICATE" => Err("holds a certificate; gatehouse needs the PKCS#8 private key (or, for a retired key, its public key)".into()),
            other => Err(format!(
                "holds a PEM block labelled `{other}`; expected `PRIVATE KEY` (PKCS#8), or `PUBLIC KEY` for a retired key"
            )),
        }
    }

    fn from_pkcs8(der: &[u8], alg: Algorithm) -> Result<Self, String> {
        let info = PrivateKeyInfo::parse(der)
            .ok_or("the PRIVATE KEY block is not a readable PKCS#8 PrivateKeyInfo")?;
        let kind = KeyKind::of(info.algorithm, info.parameters);
        kind.fits(alg)?;
        let private = match kind {
            KeyKind::EcP256 => PrivateKey::Ec(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|err| format!("the P-256 private key is not valid: {err}"))?,
            ),
            KeyKind::Ed25519 => PrivateKey::Ed(
                Ed25519KeyPair::from_pkcs8(der)
                    .map_err(|err| format!("the Ed25519 private key is not valid: {err}"))?,
            ),
            KeyKind::Rsa => {
                // RSAPrivateKey ::= SEQUENCE { version, modulus, publicExponent, ... }
                let mut fields = Der::new(info.private_key)
                    .sequence()
                    .ok_or("the RSA private key is not a readable RSAPrivateKey")?;
                let (n, e) = fields
                    .integer()
                    .and_then(|_version| Some((fields.integer()?, fields.integer()?)))
                    .ok_or("the RSA private key is not a readable RSAPrivateKey")?;
                check_rsa(n, e)?;
                PrivateKey::Rsa(
                    RsaKeyPair::from_pkcs8(der)
                        .map_err(|err| format!("the RSA private key is not valid: {err}"))?,
                )
            }
            _ => return Err(kind.mismatch(alg)),
        };
        let public = match &private {
            PrivateKey::Ec(pair) => ec_point(pair.public_key().as_ref())?,
            PrivateKey::Ed(pair) => PublicParts::Okp {
                x: pair.public_key().as_ref().to_vec(),
            },
            PrivateKey::Rsa(pair) => rsa_public_key(pair.public_key().as_ref())
                .ok_or("the RSA public key cannot be read back")?,
        };
        Ok(Self::new(alg, public, Some(private)))
    }

    fn from_spki(der: &[u8], alg: Algorithm) -> Result<Self, String> {
        let spki = SubjectPublicKeyInfo::parse(der)
            .ok_or("the PUBLIC KEY block is not a readable SubjectPublicKeyInfo")?;
        let kind = KeyKind::of(spki.algorithm, spki.parameters);
        kind.fits(alg)?;
        let (public, verification): (_, &'static dyn aws_lc_rs::signature::VerificationAlgorithm) =
            match kind {
                KeyKind::EcP256 => (ec_point(spki.key)?, &ECDSA_P256_SHA256_FIXED),
                KeyKind::Ed25519 => (
                    PublicParts::Okp {
                        x: spki.key.to_vec(),
                    },
                    &ED25519,
                ),
                KeyKind::Rsa => {
                    let public =
                        rsa_public_key(spki.key).ok_or("the RSA public key is not readable")?;
                    if let PublicParts::Rsa { n, e } = &public {
                        check_rsa(n, e)?;
                    }
                    (public, &RSA_PKCS1_2048_8192_SHA256)
                }
                _ => return Err(kind.mismatch(alg)),
            };
        ParsedPublicKey::new(verification, der)
            .map_err(|err| format!("the public key is not valid: {err}"))?;
        Ok(Self::new(alg, public, None))
    }

    fn new(alg: Algorithm, public: PublicParts, private: Option<PrivateKey>) -> Self {
        KeyMaterial {
            kid: thumbprint(&public),
            alg,
            public,
            private,
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The RFC 7638 SHA-256 thumbprint of the public key, base64url: computed, never
    /// configured, so the same file gives the same kid everywhere (SPEC §9).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Whether the file held the private key (a key that can sign).
    pub fn can_sign(&self) -> bool {
        self.private.is_some()
    }

    /// The public JWK: `kty`, `kid`, `alg`, `use: "sig"`, and `crv`/`x`/`y` or `n`/`e`;
    /// never a private member (SPEC §9).
    pub fn jwk(&self) -> Jwk {
        let (key_algorithm, algorithm) = match &self.public {
            PublicParts::Ec { x, y } => (
                KeyAlgorithm::ES256,
                AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                    key_type: EllipticCurveKeyType::EC,
                    curve: EllipticCurve::P256,
                    x: b64(x),
                    y: b64(y),
                }),
            ),
            PublicParts::Okp { x } => (
                KeyAlgorithm::EdDSA,
                AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                    key_type: OctetKeyPairType::OctetKeyPair,
                    curve: EllipticCurve::Ed25519,
                    x: b64(x),
                }),
            ),
            PublicParts::Rsa { n, e } => (
                KeyAlgorithm::RS256,
                AlgorithmParameters::RSA(RSAKeyParameters {
                    key_type: RSAKeyType::RSA,
                    n: b64(n),
                    e: b64(e),
                }),
            ),
        };
        Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(key_algorithm),
                key_id: Some(self.kid.clone()),
                ..CommonParameters::default()
            },
            algorithm,
        }
    }

    /// The key jsonwebtoken verifies this key's tokens with, from the public components.
    pub fn decoding_key(&self) -> Result<DecodingKey, String> {
        match &self.public {
            PublicParts::Ec { x, y } => DecodingKey::from_ec_components(&b64(x), &b64(y))
                .map_err(|err| format!("the P-256 public key is not usable: {err}")),
            PublicParts::Okp { x } => DecodingKey::from_ed_components(&b64(x))
                .map_err(|err| format!("the Ed25519 public key is not usable: {err}")),
            PublicParts::Rsa { n, e } => Ok(DecodingKey::from_rsa_raw_components(n, e)),
        }
    }

    /// A JWS signature (RFC 7515 §5.1) of `message` with the private key, in the form
    /// its algorithm prescribes: ES256 `R || S` (RFC 7518 §3.4), EdDSA (RFC 8037 §3.1),
    /// RS256 PKCS #1 v1.5 (RFC 7518 §3.3). An error for a public-only key.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let unsigned = || format!("{:?} key {} cannot sign", self.alg, self.kid);
        match self.private.as_ref().ok_or_else(unsigned)? {
            PrivateKey::Ec(pair) => pair
                .sign(&SystemRandom::new(), message)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(|_| unsigned()),
            PrivateKey::Ed(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            PrivateKey::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message,
                    &mut signature,
                )
                .map_err(|_| unsigned())?;
                Ok(signature)
            }
        }
    }
}

/// A new private key for `alg` as PKCS#8 PEM, and its kid. `rsa_bits`: 2048 or 3072
/// (RS256 only). The PEM is read back through [`KeyMaterial::from_pem`], so what this
/// writes is exactly what the gateway loads.
pub fn generate(alg: Algorithm, rsa_bits: usize) -> Result<(Zeroizing<String>, String), String> {
    let failed = |err: aws_lc_rs::error::Unspecified| format!("cannot generate a key: {err}");
    let der: Zeroizing<Vec<u8>> = Zeroizing::new(match alg {
        Algorithm::ES256 => {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(failed)?
                .as_ref()
                .to_vec()
        }
        // PKCS#8 v1, as `openssl genpkey -algorithm ED25519` writes it.
        Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new())
            .map_err(failed)?
            .as_ref()
            .to_vec(),
        Algorithm::RS256 => {
            let size = match rsa_bits {
                2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
                3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
                other => return Err(format!("{other} bits: RSA keys are made with 2048 or 3072")),
            };
            RsaKeyPair::generate(size)
                .and_then(|pair| pair.as_der())
                .map_err(failed)?
                .as_ref()
                .to_vec()
        }
        other => {
            return Err(format!(
                "{other:?}: keys are generated for ES256, EdDSA or RS256"
            ))
        }
    });
    let pem = Zeroizing::new(encode_pem("PRIVATE KEY", &der));
    let kid = KeyMaterial::from_pem(pem.as_bytes(), alg)
        .map_err(|why| format!("the generated key does not load: {why}"))?
        .kid
        .clone();
    Ok((pem, kid))
}

/// The RFC 7638 §3 thumbprint: SHA-256 of the JSON object of the required members in
/// lexicographic order, no whitespace, base64url.
fn thumbprint(public: &PublicParts) -> String {
    let canonical = match public {
        PublicParts::Ec { x, y } => format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            b64(x),
            b64(y)
        ),
        PublicParts::Okp { x } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64(x)),
        PublicParts::Rsa { n, e } => {
            format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64(e), b64(n))
        }
    };
    b64(&Sha256::digest(canonical.as_bytes()))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An uncompressed P-256 point `04 || X || Y` as JWK coordinates.
fn ec_point(point: &[u8]) -> Result<PublicParts, String> {
    match point {
        [0x04, rest @ ..] if rest.len() == 64 => Ok(PublicParts::Ec {
            x: rest[..32].to_vec(),
            y: rest[32..].to_vec(),
        }),
        [0x02 | 0x03, ..] => Err("the P-256 public key is a compressed point; export it uncompressed: `openssl pkey -pubin -in OLD -out NEW -ec_conv_form uncompressed`".into()),
        _ => Err("the P-256 public key is not a 65-byte uncompressed point".into()),
    }
}

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` (RFC 8017 A.1.1).
fn rsa_public_key(der: &[u8]) -> Option<PublicParts> {
    let mut fields = Der::new(der).sequence()?;
    let n = fields.integer()?;
    let e = fields.integer()?;
    Some(PublicParts::Rsa {
        n: n.to_vec(),
        e: e.to_vec(),
    })
}

/// SPEC §9: at least 2048 bits, e = 65537. `n` and `e` without leading zeros.
fn check_rsa(n: &[u8], e: &[u8]) -> Result<(), String> {
    let bits = n.len() * 8 - n.first().map_or(0, |top| top.leading_zeros() as usize);
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "the RSA key has {bits} bits; at least {MIN_RSA_BITS} are required (make one with `gatehouse keys generate --alg RS256`)"
        ));
    }
    if e != RSA_EXPONENT {
        let shown = if e.len() <= 8 {
            e.iter()
                .fold(0u64, |value, byte| value << 8 | u64::from(*byte))
                .to_string()
        } else {
            format!("a {}-byte number", e.len())
        };
        return Err(format!(
            "the RSA key's public exponent is {shown}; it must be 65537"
        ));
    }
    Ok(())
}

/// What a key's algorithm identifier says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    EcP256,
    /// Another named curve (P-384, P-521, secp256k1) or unnamed parameters.
    EcOther(&'static str),
    Ed25519,
    Rsa,
    /// Anything else (Ed448, X25519, RSASSA-PSS, DSA …).
    Other(&'static str),
}

const OID_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
const OID_RSA_PSS: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0A];
const OID_EC: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x23];
const OID_SECP256K1: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x0A];
const OID_X25519: &[u8] = &[0x2B, 0x65, 0x6E];
const OID_X448: &[u8] = &[0x2B, 0x65, 0x6F];
const OID_ED25519: &[u8] = &[0x2B, 0x65, 0x70];
const OID_ED448: &[u8] = &[0x2B, 0x65, 0x71];

impl KeyKind {
    /// From an AlgorithmIdentifier's OID and, for EC, its named-curve parameter.
    fn of(algorithm: &[u8], parameters: Option<&[u8]>) -> Self {
        match algorithm {
            OID_RSA => KeyKind::Rsa,
            OID_EC => match parameters {
                Some(OID_P256) => KeyKind::EcP256,
                Some(OID_P384) => KeyKind::EcOther("P-384"),
                Some(OID_P521) => KeyKind::EcOther("P-521"),
                Some(OID_SECP256K1) => KeyKind::EcOther("secp256k1"),
                _ => KeyKind::EcOther("an EC key on another curve"),
            },
            OID_ED25519 => KeyKind::Ed25519,
            OID_ED448 => KeyKind::Other("Ed448"),
            OID_X25519 => KeyKind::Other("X25519 (a key-agreement key)"),
            OID_X448 => KeyKind::Other("X448 (a key-agreement key)"),
            OID_RSA_PSS => KeyKind::Other("RSASSA-PSS-restricted RSA"),
            _ => KeyKind::Other("of an algorithm gatehouse does not use"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            KeyKind::EcP256 => "P-256 EC",
            KeyKind::EcOther(curve) => curve,
            KeyKind::Ed25519 => "Ed25519",
            KeyKind::Rsa => "RSA",
            KeyKind::Other(what) => what,
        }
    }

    /// Whether this kind of key signs `alg`: ES256 a P-256 key, EdDSA an Ed25519 key,
    /// RS256 an RSA key.
    fn fits(self, alg: Algorithm) -> Result<(), String> {
        let fits = matches!(
            (self, alg),
            (KeyKind::EcP256, Algorithm::ES256)
                | (KeyKind::Ed25519, Algorithm::EdDSA)
                | (KeyKind::Rsa, Algorithm::RS256)
        );
        if fits {
            Ok(())
        } else {
            Err(self.mismatch(alg))
        }
    }

    fn mismatch(self, alg: Algorithm) -> String {
        let needs = match alg {
            Algorithm::ES256 => "a P-256 (prime256v1) EC key",
            Algorithm::EdDSA => "an Ed25519 key",
            _ => "an RSA key",
        };
        let kind = match self {
            KeyKind::EcOther(curve) if curve.starts_with("an ") => curve.to_string(),
            KeyKind::EcOther(curve) => format!("a {curve} EC key"),
            KeyKind::Other(what) if what.starts_with("of ") => format!("a key {what}"),
            other => format!("a key of kind {}", other.name()),
        };
        format!(
            "holds {kind}, but tokens.algorithm = \"{alg:?}\" needs {needs} (make one with `gatehouse keys generate --alg {alg:?}`)"
        )
    }
}

/// `PrivateKeyInfo ::= SEQUENCE { version, AlgorithmIdentifier, privateKey OCTET STRING, … }`
/// (RFC 5208 §5; RFC 5958 v2 adds optional members after these).
struct PrivateKeyInfo<'a> {
    algorithm: &'a [u8],
    parameters: Option<&'a [u8]>,
    private_key: &'a [u8],
}

impl<'a> PrivateKeyInfo<'a> {
    fn parse(der: &'a [u8]) -> Option<Self> {
        let mut outer = Der::new(der);
        let mut info = outer.sequence()?;
        outer.end()?;
        info.integer()?;
        let (algorithm, parameters) = algorithm_identifier(&mut info)?;
        let private_key = info.element(TAG_OCTET_STRING)?;
        Some(PrivateKeyInfo {
            algorithm,
            parameters,
            private_key,
        })
    }
}

/// `SubjectPublicKeyInfo ::= SEQUENCE { AlgorithmIdentifier, subjectPublicKey BIT STRING }`
/// (RFC 5280 §4.1.2.7).
struct SubjectPublicKeyInfo<'a> {
    algorithm: &'a [u8],
    parameters: Option<&'a [u8]>,
    key: &'a [u8],
}

impl<'a> SubjectPublicKeyInfo<'a> {
    fn parse(der: &'a [u8]) -> Option<Self> {
        let mut outer = Der::new(der);
        let mut info = outer.sequence()?;
        outer.end()?;
        let (algorithm, parameters) = algorithm_identifier(&mut info)?;
        // A BIT STRING of whole bytes: the first content byte (unused bits) is 0.
        let key = match info.element(TAG_BIT_STRING)? {
            [0, key @ ..] => key,
            _ => return None,
        };
        info.end()?;
        Some(SubjectPublicKeyInfo {
            algorithm,
            parameters,
            key,
        })
    }
}

/// `AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }`: the
/// OID, and the parameters when they are an OID (an EC named curve).
fn algorithm_identifier<'a>(der: &mut Der<'a>) -> Option<(&'a [u8], Option<&'a [u8]>)> {
    let mut identifier = der.sequence()?;
    let algorithm = identifier.element(TAG_OID)?;
    let parameters = identifier.element(TAG_OID);
    Some((algorithm, parameters))
}

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;

/// A cursor over DER (X.690): single-byte tags, definite lengths up to 4 length bytes.
/// Every read is bounds-checked; malformed input gives `None`, never a panic.
struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Der { rest: bytes }
    }

    /// The next element's contents if its tag is `tag` (the cursor moves past it);
    /// `None` and no move otherwise.
    fn element(&mut self, tag: u8) -> Option<&'a [u8]> {
        let (&found, after_tag) = self.rest.split_first()?;
        if found != tag {
            return None;
        }
        let (&first, after_length) = after_tag.split_first()?;
        let (length, contents) = if first < 0x80 {
            (usize::from(first), after_length)
        } else {
            let count = usize::from(first & 0x7F);
            if count == 0 || count > 4 || after_length.len() < count {
                return None;
            }
            let (bytes, contents) = after_length.split_at(count);
            let length = bytes
                .iter()
                .fold(0usize, |length, byte| length << 8 | usize::from(*byte));
            (length, contents)
        };
        if contents.len() < length {
            return None;
        }
        let (element, rest) = contents.split_at(length);
        self.rest = rest;
        Some(element)
    }

    fn sequence(&mut self) -> Option<Der<'a>> {
        self.element(TAG_SEQUENCE).map(Der::new)
    }

    /// A non-negative INTEGER without its sign-padding zero bytes.
    fn integer(&mut self) -> Option<&'a [u8]> {
        let value = self.element(TAG_INTEGER)?;
        if value.first().is_some_and(|top| top & 0x80 != 0) {
            return None; // negative
        }
        let start = value
            .iter()
            .position(|byte| *byte != 0)
            .unwrap_or(value.len());
        Some(&value[start..])
    }

    fn end(&self) -> Option<()> {
        self.rest.is_empty().then_some(())
    }
}

/// One PEM block (RFC 7468): its label and decoded contents.
struct PemBlock {
    label: String,
    der: Zeroizing<Vec<u8>>,
}

/// The one PEM block of a key file. Text outside the block is allowed (RFC 7468 §2);
/// no block, several blocks, a block without its end line, RFC 1421 headers (legacy
/// encryption) or bad base64 are refused.
fn single_pem_block(text: &[u8]) -> Result<PemBlock, String> {
    let text = std::str::from_utf8(text).map_err(|_| "is not PEM text (not UTF-8)".to_string())?;
    let mut blocks: Vec<PemBlock> = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = Zeroizing::new(String::new());
        let mut closed = false;
        for line in lines.by_ref() {
            if line == end {
                closed = true;
                break;
            }
            if line.contains(':') {
                return Err(format!(
                    "the `{label}` PEM block has headers (legacy encrypted PEM); convert it to unencrypted PKCS#8: `openssl pkcs8 -topk8 -nocrypt -in OLD -out NEW`"
                ));
            }
            body.push_str(line);
        }
        if !closed {
            return Err(format!("the `{label}` PEM block has no `{end}` line"));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|_| format!("the `{label}` PEM block is not valid base64"))?;
        blocks.push(PemBlock {
            label: label.to_string(),
            der: Zeroizing::new(der),
        });
    }
    match blocks.len() {
        0 => Err("holds no PEM block; expected `-----BEGIN PRIVATE KEY-----` (PKCS#8, e.g. from `gatehouse keys generate`)".into()),
        1 => blocks.pop().ok_or_else(|| "holds no PEM block".to_string()),
        count => Err(format!(
            "holds {count} PEM blocks; put exactly one key in each file"
        )),
    }
}

/// PEM text (RFC 7468 §2): base64 in 64-character lines, LF line ends.
pub fn encode_pem(label: &str, der: &[u8]) -> String {
    let body = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    let mut pem = String::with_capacity(body.len() + body.len() / 64 + 64);
    pem.push_str(&format!("-----BEGIN {label}-----\n"));
    for line in body.as_bytes().chunks(64) {
        // Base64 output is ASCII: every chunk is valid UTF-8.
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::ThumbprintHash;

    fn generated(alg: Algorithm) -> KeyMaterial {
        let (pem, kid) = generate(alg, 2048).expect("generate");
        let key = KeyMaterial::from_pem(pem.as_bytes(), alg).expect("load");
        assert_eq!(key.kid(), kid);
        key
    }

    fn public_pem(key: &KeyMaterial) -> String {
        // SPKI from the private key, via aws-lc-rs (independent of our DER reading).
        let spki = match key.private.as_ref().expect("private") {
            PrivateKey::Ec(pair) => pair.public_key().as_der().expect("der").as_ref().to_vec(),
            PrivateKey::Ed(pair) => pair.public_key().as_der().expect("der").as_ref().to_vec(),
            PrivateKey::Rsa(pair) => pair.public_key().as_der().expect("der").as_ref().to_vec(),
        };
        encode_pem("PUBLIC KEY", &spki)
    }

    /// RFC 7638 §3.1: the example RSA key and its thumbprint.
    #[test]
    fn the_rsa_thumbprint_is_the_rfc_7638_example() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let decode = |text: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text)
                .expect("base64url")
        };
        let public = PublicParts::Rsa {
            n: decode(n),
            e: decode("AQAB"),
        };
        assert_eq!(
            thumbprint(&public),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    /// RFC 8037 Appendix A.3: the Ed25519 example key's thumbprint.
    #[test]
    fn the_okp_thumbprint_is_the_rfc_8037_example() {
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .expect("base64url");
        assert_eq!(
            thumbprint(&PublicParts::Okp { x }),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    /// An EC vector: the P-256 key of RFC 7517 Appendix A.1, whose thumbprint was
    /// computed independently (jsonwebtoken's `Jwk::thumbprint`, below, and Python's
    /// jwcrypto `JWK.thumbprint()`).
    #[test]
    fn the_ec_thumbprint_matches_a_known_vector() {
        let decode = |text: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text)
                .expect("base64url")
        };
        let public = PublicParts::Ec {
            x: decode("MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4"),
            y: decode("4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"),
        };
        assert_eq!(thumbprint(&public), EC_VECTOR_THUMBPRINT);
    }

    const EC_VECTOR_THUMBPRINT: &str = "cn-I_WNMClehiVp51i_0VpOENW1upEerA8sEam5hn-s";

    /// Our thumbprint equals jsonwebtoken's independent implementation for each kind.
    #[test]
    fn kids_agree_with_jsonwebtokens_thumbprint() {
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        for alg in PAIR_ALGORITHMS {
            let key = generated(alg);
            assert_eq!(
                key.jwk().thumbprint(ThumbprintHash::SHA256),
                key.kid(),
                "{alg:?}"
            );
        }
    }

    #[test]
    fn the_public_jwk_has_exactly_the_public_members() {
        for (alg, members) in [
            (
                Algorithm::ES256,
                vec!["alg", "crv", "kid", "kty", "use", "x", "y"],
            ),
            (
                Algorithm::EdDSA,
                vec!["alg", "crv", "kid", "kty", "use", "x"],
            ),
            (Algorithm::RS256, vec!["alg", "e", "kid", "kty", "n", "use"]),
        ] {
            let key = generated(alg);
            let jwk = serde_json::to_value(key.jwk()).expect("json");
            let mut names: Vec<&str> = jwk
                .as_object()
                .expect("object")
                .keys()
                .map(String::as_str)
                .collect();
            names.sort_unstable();
            assert_eq!(names, members, "{alg:?}: {jwk}");
            assert_eq!(jwk["use"], "sig");
            assert_eq!(jwk["kid"], key.kid());
            assert_eq!(jwk["alg"], format!("{alg:?}"));
        }
        let rsa = serde_json::to_value(generated(Algorithm::RS256).jwk()).expect("json");
        assert_eq!(rsa["e"], "AQAB");
        assert_eq!(rsa["kty"], "RSA");
    }

    #[test]
    fn the_same_key_gives_the_same_kid_and_a_public_key_the_same_as_its_private_key() {
        for alg in PAIR_ALGORITHMS {
            let (pem, kid) = generate(alg, 2048).expect("generate");
            let again = KeyMaterial::from_pem(pem.as_bytes(), alg).expect("load");
            assert_eq!(again.kid(), kid);
            let public =
                KeyMaterial::from_pem(public_pem(&again).as_bytes(), alg).expect("public key");
            assert_eq!(public.kid(), kid, "{alg:?}");
            assert!(!public.can_sign());
            assert!(again.can_sign());
            assert!(public.sign(b"x").is_err());
        }
    }

    #[test]
    fn generated_keys_are_pkcs8_pem_in_64_character_lines() {
        let (pem, _) = generate(Algorithm::ES256, 2048).expect("generate");
        assert!(
            pem.starts_with("-----BEGIN PRIVATE KEY-----\n"),
            "{}",
            pem.len()
        );
        assert!(pem.ends_with("-----END PRIVATE KEY-----\n"));
        assert!(pem.lines().all(|line| line.len() <= 64));
        let (rsa, _) = generate(Algorithm::RS256, 3072).expect("generate");
        let key = KeyMaterial::from_pem(rsa.as_bytes(), Algorithm::RS256).expect("load");
        let PublicParts::Rsa { n, .. } = &key.public else {
            panic!("rsa")
        };
        assert_eq!(n.len() * 8, 3072);
        assert!(generate(Algorithm::RS256, 1024).is_err());
        assert!(generate(Algorithm::HS256, 2048).is_err());
    }

    #[test]
    fn signatures_verify_with_the_public_key_alone() {
        for alg in PAIR_ALGORITHMS {
            let key = generated(alg);
            let signature = key.sign(b"message").expect("sign");
            let public: &'static dyn aws_lc_rs::signature::VerificationAlgorithm = match alg {
                Algorithm::ES256 => &ECDSA_P256_SHA256_FIXED,
                Algorithm::EdDSA => &ED25519,
                _ => &RSA_PKCS1_2048_8192_SHA256,
            };
            let spki = public_pem(&key);
            let der = single_pem_block(spki.as_bytes()).expect("pem").der;
            let parsed = ParsedPublicKey::new(public, der.as_slice()).expect("parse");
            assert!(parsed.verify_sig(b"message", &signature).is_ok(), "{alg:?}");
            assert!(parsed.verify_sig(b"other", &signature).is_err(), "{alg:?}");
        }
    }

    #[test]
    fn a_key_of_the_wrong_kind_is_refused_naming_what_it_is() {
        let (ec, _) = generate(Algorithm::ES256, 2048).expect("generate");
        let (ed, _) = generate(Algorithm::EdDSA, 2048).expect("generate");
        let (rsa, _) = generate(Algorithm::RS256, 2048).expect("generate");
        for (pem, alg, says) in [
            (&ec, Algorithm::EdDSA, "P-256 EC"),
            (&ec, Algorithm::RS256, "P-256 EC"),
            (&ed, Algorithm::ES256, "Ed25519"),
            (&rsa, Algorithm::ES256, "RSA"),
            (&rsa, Algorithm::EdDSA, "RSA"),
        ] {
            let err = KeyMaterial::from_pem(pem.as_bytes(), alg).expect_err("wrong kind");
            assert!(err.contains(says), "{alg:?}: {err}");
            assert!(err.contains(&format!("{alg:?}")), "{err}");
        }
        // A P-384 key (made by aws-lc-rs) for ES256.
        let p384 = EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            &SystemRandom::new(),
        )
        .expect("p384");
        let pem = encode_pem("PRIVATE KEY", p384.as_ref());
        let err = KeyMaterial::from_pem(pem.as_bytes(), Algorithm::ES256).expect_err("P-384");
        assert!(err.contains("P-384"), "{err}");
    }

    /// Builds a PKCS#8 RSA key from raw parts, as a weak or odd key would be written.
    fn rsa_pkcs8(bits: usize, e: u32) -> String {
        // A real key of the size, then its exponent rewritten: the parse refuses the key
        // by its numbers before any consistency check.
        let size = if bits >= 3072 {
            aws_lc_rs::rsa::KeySize::Rsa3072
        } else {
            aws_lc_rs::rsa::KeySize::Rsa2048
        };
        let pair = RsaKeyPair::generate(size).expect("rsa");
        let der = pair.as_der().expect("der").as_ref().to_vec();
        let mut der = der;
        if e != 65537 {
            // 02 03 01 00 01 → 02 03 <e as 3 bytes>
            let at = der
                .windows(5)
                .position(|w| w == [0x02, 0x03, 0x01, 0x00, 0x01])
                .expect("exponent");
            der[at + 2..at + 5].copy_from_slice(&e.to_be_bytes()[1..]);
        }
        encode_pem("PRIVATE KEY", &der)
    }

    #[test]
    fn rsa_keys_need_2048_bits_and_exponent_65537() {
        let err = KeyMaterial::from_pem(rsa_pkcs8(2048, 3).as_bytes(), Algorithm::RS256)
            .expect_err("e = 3");
        assert!(err.contains("exponent is 3"), "{err}");
        assert!(err.contains("65537"), "{err}");
        // 1024 bits: a hand-made RSAPrivateKey whose modulus is 1024 bits (the check runs
        // on the numbers before aws-lc-rs sees the key).
        let n = [&[0x00u8, 0xC0][..], &[0x11; 127][..]].concat();
        let mut rsa_private = Vec::new();
        for integer in [&[0u8][..], &n, RSA_EXPONENT, &[0x01][..]] {
            rsa_private.extend(tlv(TAG_INTEGER, integer));
        }
        let rsa_private = tlv(TAG_SEQUENCE, &rsa_private);
        let identifier = tlv(
            TAG_SEQUENCE,
            &[tlv(TAG_OID, OID_RSA), vec![0x05, 0x00]].concat(),
        );
        let info = tlv(
            TAG_SEQUENCE,
            &[
                tlv(TAG_INTEGER, &[0]),
                identifier,
                tlv(TAG_OCTET_STRING, &rsa_private),
            ]
            .concat(),
        );
        let err = KeyMaterial::from_pem(
            encode_pem("PRIVATE KEY", &info).as_bytes(),
            Algorithm::RS256,
        )
        .expect_err("1024 bits");
        assert!(err.contains("1024 bits"), "{err}");
        assert!(err.contains("2048"), "{err}");
    }

    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match contents.len() {
            len @ 0..=0x7F => out.push(len as u8),
            len @ 0x80..=0xFF => out.extend([0x81, len as u8]),
            len => out.extend([0x82, (len >> 8) as u8, len as u8]),
        }
        out.extend_from_slice(contents);
        out
    }

    #[test]
    fn unreadable_or_ambiguous_files_are_refused() {
        let (ec, _) = generate(Algorithm::ES256, 2048).expect("generate");
        let (other, _) = generate(Algorithm::ES256, 2048).expect("generate");
        let two = format!("{}{}", ec.as_str(), other.as_str());
        let truncated = &ec[..ec.len() - 30];
        let garbled = ec.replacen('M', "*", 3);
        let mut cases: Vec<(String, &str)> = vec![
            (two, "2 PEM blocks"),
            (String::new(), "no PEM block"),
            ("not a key at all".into(), "no PEM block"),
            (truncated.to_string(), "no `-----END PRIVATE KEY-----` line"),
            (garbled, "base64"),
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n"
                    .into(),
                "encrypted",
            ),
            (
                "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n".into(),
                "not PKCS#8",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nMIIB\n-----END RSA PRIVATE KEY-----\n"
                    .into(),
                "headers",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
                "certificate",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n".into(),
                "PKCS#8",
            ),
        ];
        cases.push((
            encode_pem("PRIVATE KEY", &[0x30, 0x03, 0x02, 0x01, 0x00]),
            "PKCS#8",
        ));
        for (text, says) in cases {
            let err =
                KeyMaterial::from_pem(text.as_bytes(), Algorithm::ES256).expect_err("refused");
            assert!(err.contains(says), "{says}: {err}");
        }
        assert!(KeyMaterial::from_pem(&[0xFF, 0xFE], Algorithm::ES256).is_err());
        // Explanatory text around the one block is allowed (RFC 7468 §2), CRLF too.
        let annotated = format!("my signing key\r\n{}\r\n", ec.replace('\n', "\r\n"));
        assert!(KeyMaterial::from_pem(annotated.as_bytes(), Algorithm::ES256).is_ok());
    }

    #[test]
    fn the_der_reader_never_panics_on_short_or_odd_input() {
        for bytes in [
            &[][..],
            &[0x30],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF],
            &[0x30, 0x80],
            &[0x30, 0x02, 0x02],
            &[0x30, 0x03, 0x02, 0x01, 0x80],
        ] {
            assert!(PrivateKeyInfo::parse(bytes).is_none(), "{bytes:?}");
            assert!(SubjectPublicKeyInfo::parse(bytes).is_none(), "{bytes:?}");
            assert!(rsa_public_key(bytes).is_none(), "{bytes:?}");
        }
    }

    #[test]
    fn debug_shows_no_key_material() {
        let key = generated(Algorithm::EdDSA);
        let shown = format!("{key:?}");
        assert!(shown.contains(key.kid()), "{shown}");
        assert!(!shown.contains("PublicKey"), "{shown}");
    }
}
