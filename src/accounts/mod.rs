//! Use cases on users and tokens: authenticate a bearer token, and (with the store) log
//! in, refresh, log out, change passwords, register. No hyper types: testable without
//! HTTP.

use std::sync::Arc;

use crate::auth::jwt::{AccessClaims, TokenKeys};
use crate::error::TokenRejection;

/// A caller whose token verified. `roles` are the user's current roles.
#[derive(Debug, Clone)]
pub struct Identity {
    pub sub: String,
    pub username: String,
    pub roles: Vec<String>,
    pub claims: AccessClaims,
}

/// Accounts and token lifecycle.
pub struct Accounts {
    keys: Arc<TokenKeys>,
}

impl Accounts {
    pub fn new(keys: Arc<TokenKeys>) -> Self {
        Accounts { keys }
    }

    /// The signing keys (for tests and the token endpoints).
    pub fn keys(&self) -> &TokenKeys {
        &self.keys
    }

    /// Checks a bearer token: signature and claims, then the store-backed state.
    pub fn authenticate(&self, token: &str) -> Result<Identity, TokenRejection> {
        let claims = self.keys.verify(token)?;
        Ok(Identity {
            sub: claims.sub.clone(),
            username: claims.username.clone(),
            roles: claims.roles.clone(),
            claims,
        })
    }
}
