//! The login use case (SPEC §4 `/auth/login`, and the password grant of `/auth/token`,
//! RFC 6749 §4.3; the browser sign-in form of SPEC §10 shares [`Accounts::verify_credentials`]
//! with them, so it has the same lockout, timing and errors): throttle check → look the user up → verify the password (or the dummy
//! hash) → record the outcome → enabled? → rehash if the parameters changed → new session.
//!
//! Threat model: guessing passwords, and learning which usernames exist. A wrong password
//! and an unknown (or syntactically impossible) username take the same path through
//! argon2 and give the same error; "disabled" is said only to whoever knows the password.
//! Brute-force regulation plugs in through [`LoginThrottle`]: consulted before any work,
//! told of every failure and success afterwards. The trait is async so that counters
//! shared through the store (replicas counting toward one lockout, SPEC §8:
//! [`super::throttle::SharedThrottle`]) can implement it; the in-memory
//! [`super::MemoryThrottle`] answers at once.

use std::future::ready;
use std::net::IpAddr;

use futures_util::future::BoxFuture;

use super::directory::canonical_username;
use super::{AccountError, Accounts, TokenPair};
use crate::auth::password::Password;
use crate::store::{PrincipalKind, UserRecord};

/// Brute-force regulation (SPEC §2 `[login]`). `username` is the canonical name when the
/// presented one is well-formed, so lockouts count case-insensitively. Each method's
/// future may borrow its arguments.
///
/// The checks answer `Err(AccountError::TooManyAttempts)` when the attempt is refused
/// (429), and `Err(AccountError::Unavailable)` (503) or `Err(AccountError::Internal)` when
/// the counts cannot be consulted: a regulator never fails open.
pub trait LoginThrottle: Send + Sync {
    /// Before any password work: admits the attempt (counting it), or refuses it when
    /// this username or client address is locked out.
    fn check<'a>(
        &'a self,
        username: Option<&'a str>,
        client: IpAddr,
    ) -> BoxFuture<'a, Result<(), AccountError>>;
    /// After a wrong password or unknown user. Default: nothing, since `check` counted
    /// the attempt when it admitted it (both gatehouse regulators work that way).
    fn record_failure<'a>(
        &'a self,
        _username: Option<&'a str>,
        _client: IpAddr,
    ) -> BoxFuture<'a, ()> {
        Box::pin(ready(()))
    }
    /// After a correct password.
    fn record_success<'a>(&'a self, username: Option<&'a str>, client: IpAddr)
        -> BoxFuture<'a, ()>;
    /// `gatehouse user unlock`: forgets this canonical username's failures and lockout;
    /// true when there was anything to forget.
    fn unlock<'a>(&'a self, username: &'a str) -> BoxFuture<'a, Result<bool, AccountError>>;
    /// Before a self-registration: refused (`TooManyAttempts`) when this address has
    /// registered too often.
    fn check_registration(&self, client: IpAddr) -> BoxFuture<'_, Result<(), AccountError>>;
}

/// No regulation: every attempt is allowed (the CLI's own handle on a sled store: lockouts
/// live in a running gateway's memory; on a store that shares its counters the CLI uses
/// [`super::SharedThrottle`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct Unthrottled;

impl LoginThrottle for Unthrottled {
    fn check<'a>(
        &'a self,
        _username: Option<&'a str>,
        _client: IpAddr,
    ) -> BoxFuture<'a, Result<(), AccountError>> {
        Box::pin(ready(Ok(())))
    }
    fn record_success<'a>(
        &'a self,
        _username: Option<&'a str>,
        _client: IpAddr,
    ) -> BoxFuture<'a, ()> {
        Box::pin(ready(()))
    }
    fn unlock<'a>(&'a self, _username: &'a str) -> BoxFuture<'a, Result<bool, AccountError>> {
        Box::pin(ready(Ok(false)))
    }
    fn check_registration(&self, _client: IpAddr) -> BoxFuture<'_, Result<(), AccountError>> {
        Box::pin(ready(Ok(())))
    }
}

impl Accounts {
    /// Checks a username and password and starts a login session.
    ///
    /// Errors: `TooManyAttempts` (throttled, before any work; `Unavailable` when shared
    /// counters cannot be consulted: never admitted uncounted), `InvalidCredentials`
    /// (wrong password, unknown or malformed username: identical), `AccountDisabled`
    /// (only after a correct password).
    pub async fn login(
        &self,
        username: &str,
        password: Password,
        client: IpAddr,
    ) -> Result<TokenPair, AccountError> {
        let user = self.verify_credentials(username, password, client).await?;
        self.start_session(&user).await
    }

    /// What every password sign-in shares (`/auth/login`, the password grant, the browser
    /// sign-in form of SPEC §10): throttle check → look the user up → verify the password
    /// (or the dummy hash) → record the outcome → enabled? → rehash if the parameters
    /// changed. The user whose password verified; the caller starts its kind of session.
    /// Failures of every caller count toward the same lockout.
    pub(crate) async fn verify_credentials(
        &self,
        username: &str,
        password: Password,
        client: IpAddr,
    ) -> Result<UserRecord, AccountError> {
        let canonical = canonical_username(username);
        let key = canonical.as_deref();
        self.throttle.check(key, client).await?;
        let user = match key {
            // A service client's name is no user's: the unknown-user path (same answer
            // and timing as a wrong password); its secret is no password.
            Some(name) => self
                .directory
                .store()
                .find_user_by_name(name)
                .await?
                .filter(|user| user.kind == PrincipalKind::User),
            None => None,
        };
        let hasher = self.directory.hasher();
        let Some(user) = user else {
            hasher.verify_unknown(password).await?;
            self.throttle.record_failure(key, client).await;
            log_failure(key, client);
            return Err(AccountError::InvalidCredentials);
        };
        let verification = hasher
            .verify(password.clone(), user.password_hash.clone())
            .await?;
        if !verification.matches {
            self.throttle.record_failure(key, client).await;
            log_failure(key, client);
            return Err(AccountError::InvalidCredentials);
        }
        self.throttle.record_success(key, client).await;
        if !user.enabled {
            return Err(AccountError::AccountDisabled);
        }
        if verification.needs_rehash {
            self.directory.rehash(&user, password).await;
        }
        Ok(user)
    }
}

/// One line per failed login for the operator: the canonical username (`-` when the
/// presented one is not a valid username; never the raw input, never the password) and
/// the client address. Unknown users and wrong passwords read the same, as in the answer.
fn log_failure(canonical: Option<&str>, client: IpAddr) {
    tracing::info!(
        username = canonical.unwrap_or("-"),
        client = %client,
        "login failed: wrong password or unknown user"
    );
}
