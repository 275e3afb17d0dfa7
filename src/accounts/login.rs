//! The login use case (SPEC §4 `/auth/login`, and the password grant of `/auth/token`,
//! RFC 6749 §4.3): throttle check → look the user up → verify the password (or the dummy
//! hash) → record the outcome → enabled? → rehash if the parameters changed → new session.
//!
//! Threat model: guessing passwords, and learning which usernames exist. A wrong password
//! and an unknown (or syntactically impossible) username take the same path through
//! argon2 and give the same error; "disabled" is said only to whoever knows the password.
//! Brute-force regulation plugs in through [`LoginThrottle`]: consulted before any work,
//! told of every failure and success afterwards.

use std::net::IpAddr;
use std::time::Duration;

use super::directory::{blocking, canonical_username};
use super::{AccountError, Accounts, TokenPair};
use crate::auth::password::Password;

/// Brute-force regulation (SPEC §2 `[login]`). `username` is the canonical name when the
/// presented one is well-formed, so lockouts count case-insensitively.
pub trait LoginThrottle: Send + Sync {
    /// Before any password work: `Err(retry_after)` when this username or client address
    /// is locked out.
    fn check(&self, username: Option<&str>, client: IpAddr) -> Result<(), Duration>;
    /// After a wrong password or unknown user.
    fn record_failure(&self, username: Option<&str>, client: IpAddr);
    /// After a correct password.
    fn record_success(&self, username: Option<&str>, client: IpAddr);
    /// `gatehouse user unlock`: forgets this canonical username's failures and lockout;
    /// true when there was anything to forget.
    fn unlock(&self, username: &str) -> bool;
    /// Before a self-registration: `Err(retry_after)` when this address has registered
    /// too often.
    fn check_registration(&self, client: IpAddr) -> Result<(), Duration>;
}

/// No regulation: every attempt is allowed (the CLI's own store handle: lockouts live in
/// a running gateway's memory).
#[derive(Debug, Default, Clone, Copy)]
pub struct Unthrottled;

impl LoginThrottle for Unthrottled {
    fn check(&self, _username: Option<&str>, _client: IpAddr) -> Result<(), Duration> {
        Ok(())
    }
    fn record_failure(&self, _username: Option<&str>, _client: IpAddr) {}
    fn record_success(&self, _username: Option<&str>, _client: IpAddr) {}
    fn unlock(&self, _username: &str) -> bool {
        false
    }
    fn check_registration(&self, _client: IpAddr) -> Result<(), Duration> {
        Ok(())
    }
}

impl Accounts {
    /// Checks a username and password and starts a login session.
    ///
    /// Errors: `TooManyAttempts` (throttled, before any work), `InvalidCredentials`
    /// (wrong password, unknown or malformed username: identical), `AccountDisabled`
    /// (only after a correct password).
    pub async fn login(
        &self,
        username: &str,
        password: Password,
        client: IpAddr,
    ) -> Result<TokenPair, AccountError> {
        let canonical = canonical_username(username);
        let key = canonical.as_deref();
        if let Err(retry_after) = self.throttle.check(key, client) {
            return Err(AccountError::TooManyAttempts {
                retry_after_secs: retry_after.as_secs().max(1),
            });
        }
        let user = match canonical.clone() {
            Some(name) => {
                blocking(self.directory.store(), move |store| {
                    store.find_user_by_name(&name)
                })
                .await?
            }
            None => None,
        };
        let hasher = self.directory.hasher();
        let Some(user) = user else {
            hasher.verify_unknown(password).await?;
            self.throttle.record_failure(key, client);
            return Err(AccountError::InvalidCredentials);
        };
        let verification = hasher
            .verify(password.clone(), user.password_hash.clone())
            .await?;
        if !verification.matches {
            self.throttle.record_failure(key, client);
            return Err(AccountError::InvalidCredentials);
        }
        self.throttle.record_success(key, client);
        if !user.enabled {
            return Err(AccountError::AccountDisabled);
        }
        if verification.needs_rehash {
            self.directory.rehash(&user, password).await;
        }
        self.start_session(&user).await
    }
}
