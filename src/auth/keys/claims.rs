//! What an access token says (SPEC §4): the claims gatehouse writes ([`AccessClaims`], the
//! wire format), the rules every key verifies them with ([`ClaimRules`]), and what a
//! verification hands on ([`VerifiedToken`]: the facts the rest of gatehouse needs, not the
//! raw claims — the roles and username frozen in a token are deliberately not among them,
//! since role checks and identity headers use the user's *current* state).

use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};

use crate::config::TokenSettings;

/// The claims of a gatehouse access token, as signed and as parsed. Parsing into this
/// typed form is part of validation: a token whose `username` is not a string or whose
/// `roles` is not an array of strings is refused even when its signature is good.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user's stable opaque id.
    pub sub: String,
    pub username: String,
    pub roles: Vec<String>,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    /// Unique id; logout revokes by it.
    pub jti: String,
    /// The login session (refresh-token family) this token belongs to, so logout and
    /// password changes can end the session it came from. Absent in foreign tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The OAuth client the token was issued to (RFC 9068 §2.2, SPEC §9): written into
    /// tokens signed with a key pair ([`USER_CLIENT_ID`] for user logins); absent from
    /// shared-secret tokens, whose claims stay those of SPEC §4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// `client_id` of the tokens users get by logging in (password and refresh grants,
/// browser sign-in): gatehouse itself is the client that asked for them — a `client_id`
/// sent to `/auth/token` with those grants is ignored (SPEC §4).
pub const USER_CLIENT_ID: &str = "gatehouse";

/// The facts of a token that passed every check of [`super::TokenKeys::verify`]: what the
/// store-backed checks (revocation by `jti`, ended session by `sid`, user by `sub`, password
/// change against `iat`), `/auth/me` (`iat`, `exp`) and logout need. Shared (`Arc`) between
/// the verified-token cache and every request that presents the token.
///
/// Only verification builds one on the request path; a hand-built value (tests) proves
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The user's stable opaque id.
    pub sub: String,
    /// The login session, when the token has one.
    pub sid: Option<String>,
    /// The token's unique id.
    pub jti: String,
    /// Unix seconds.
    pub iat: u64,
    /// Unix seconds.
    pub exp: u64,
}

impl From<AccessClaims> for VerifiedToken {
    fn from(claims: AccessClaims) -> Self {
        VerifiedToken {
            sub: claims.sub,
            sid: claims.sid,
            jti: claims.jti,
            iat: claims.iat,
            exp: claims.exp,
        }
    }
}

/// The claim rules of `[tokens]`: the same for every key of a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRules {
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    /// Whole seconds of clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway: u64,
}

impl ClaimRules {
    pub fn new(settings: &TokenSettings) -> Self {
        ClaimRules {
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            access_ttl: settings.access_ttl,
            leeway: settings.leeway.as_secs(),
        }
    }

    /// The library checks for a key of algorithm `alg`: only `alg` (`none`, a swap to
    /// another HMAC size or to an asymmetric algorithm are refused before the signature is
    /// looked at); `iss`, `aud`, `exp`, `nbf`, `sub` required; `exp`/`nbf` with the leeway.
    pub fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = self.leeway;
        validation
    }
}
