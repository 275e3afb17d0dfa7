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
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::view::BrowserEntry;
use super::{AccountError, Accounts, Identity};
use crate::auth::now_secs;
use crate::auth::password::Password;
use crate::config::BrowserSettings;
use crate::error::TokenRejection;
use crate::store::{
    BrowserSessionRecord, Conflict, PrincipalKind, SessionRecord, StoreError, UserRecord,
};

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

    /// Starts a browser session for a user whose password was just verified: stores it
    /// (refused if the user changed meanwhile, exactly as [`Accounts::start_session`])
    /// and applies it to the view before answering.
    async fn start_browser_session(
        &self,
        user: &UserRecord,
        remember_me: bool,
        browser: &BrowserSettings,
    ) -> Result<BrowserSignIn, AccountError> {
        let now = now_secs();
        let cookie_value = new_cookie_value();
        let lifetime = if remember_me {
            browser.remember_me
        } else {
            browser.expiration
        };
        let session = SessionRecord {
            family: crate::auth::random_id(16),
            user_id: user.id.clone(),
            created: now,
            generation: user.generation,
            expires_at: now.saturating_add(lifetime.as_secs()),
            ended_at: None,
            browser: Some(BrowserSessionRecord {
                cookie_hash: cookie_hash(&cookie_value),
                last_seen: now,
                remember_me,
            }),
        };
        match self
            .directory
            .store()
            .insert_browser_session(&session)
            .await
        {
            // The user was disabled, or the password changed, or the user was removed,
            // while we verified.
            Err(StoreError::Conflict(Conflict::UserDisabled)) => {
                return Err(AccountError::AccountDisabled)
            }
            Err(StoreError::Conflict(_)) => return Err(AccountError::InvalidCredentials),
            written => self.directory.applied(written).await?,
        }
        Ok(BrowserSignIn {
            cookie_value,
            max_age: remember_me.then_some(browser.remember_me),
        })
    }

    /// The identity a session cookie stands for, from memory: `Err(Revoked)` when the
    /// session is unknown, ended, expired (idle or absolute) or its user is gone,
    /// disabled or at a newer generation; `Err(Malformed)` for a value gatehouse never
    /// issues (refused before hashing). Records the use coarsely in the background
    /// (never blocking the request): see [`touch_due`].
    pub fn authenticate_session(
        &self,
        cookie_value: &str,
        browser: &BrowserSettings,
    ) -> Result<Identity, TokenRejection> {
        self.authenticate_session_at(cookie_value, browser, now_secs())
    }

    /// [`Self::authenticate_session`] at the Unix second `now` (tests of the expiry
    /// rules without waiting for the clock).
    pub fn authenticate_session_at(
        &self,
        cookie_value: &str,
        browser: &BrowserSettings,
        now: u64,
    ) -> Result<Identity, TokenRejection> {
        if !well_formed_cookie_value(cookie_value) {
            return Err(TokenRejection::Malformed);
        }
        let view = self.directory.view();
        let entry = view
            .browser_session(&cookie_hash(cookie_value))
            .ok_or(TokenRejection::Revoked)?;
        if !session_live(&entry, browser.inactivity, now) {
            return Err(TokenRejection::Revoked);
        }
        let user = view
            .user(entry.user_id())
            .filter(|user| {
                user.enabled
                    && user.generation == entry.generation
                    && user.kind == PrincipalKind::User
            })
            .ok_or(TokenRejection::Revoked)?;
        entry.use_at(now);
        if touch_due(entry.recorded(), now, browser.touch_every()) && entry.start_touch() {
            self.record_use(entry.clone(), now);
        }
        Ok(Identity::from_browser_session(user, entry.token.clone()))
    }

    /// Writes a session's last use in the background: never awaited by the request. A
    /// failure is logged (without the cookie; the session id is no secret) and the write
    /// is tried again at the next use.
    fn record_use(&self, entry: Arc<BrowserEntry>, now: u64) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            entry.end_touch(None);
            return;
        };
        let directory = self.directory.clone();
        runtime.spawn(async move {
            let written = directory
                .store()
                .touch_session(entry.user_id(), entry.sid(), now)
                .await;
            match directory.applied(written).await {
                Ok(_) => entry.end_touch(Some(now)),
                Err(err) => {
                    tracing::warn!(
                        sid = entry.sid(),
                        error = %err,
                        "could not record a browser session's last use; trying again at its next use"
                    );
                    entry.end_touch(None);
                }
            }
        });
    }

    /// Ends the session the cookie names (SPEC §10 `POST /auth/sign_out`); Ok also when
    /// there is none (signing out is idempotent).
    pub async fn sign_out(&self, cookie_value: &str) -> Result<(), AccountError> {
        if !well_formed_cookie_value(cookie_value) {
            return Ok(());
        }
        let Some(entry) = self
            .directory
            .view()
            .browser_session(&cookie_hash(cookie_value))
        else {
            return Ok(());
        };
        self.directory
            .end_session(entry.user_id(), entry.sid())
            .await
    }
}

/// Whether a session is still live at `now`: before its absolute expiry, and — unless it
/// is a remember-me session — used less than `inactivity` ago.
pub fn session_live(entry: &BrowserEntry, inactivity: Duration, now: u64) -> bool {
    if now >= entry.expires_at() {
        return false;
    }
    entry.remember_me || now < entry.last_used().saturating_add(inactivity.as_secs())
}

/// Whether a use at `now` must be written to the store: the recorded last use is
/// `touch_every` old or older (SPEC §10: the last use is never recorded coarser than a
/// tenth of `inactivity` nor than one minute; [`BrowserSettings::touch_every`]). So a
/// session in constant use costs one store write per `touch_every`, and another replica
/// never sees it idle for longer than `inactivity` while it is not.
pub fn touch_due(recorded: u64, now: u64, touch_every: Duration) -> bool {
    now >= recorded.saturating_add(touch_every.as_secs().max(1))
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

    fn entry(remember_me: bool, last_seen: u64, expires_at: u64) -> BrowserEntry {
        let session = SessionRecord {
            family: "s1".into(),
            user_id: "u1".into(),
            created: 1000,
            generation: 0,
            expires_at,
            ended_at: None,
            browser: Some(BrowserSessionRecord {
                cookie_hash: [7; 32],
                last_seen,
                remember_me,
            }),
        };
        let mut view = crate::accounts::view::View::default();
        view.apply(&crate::store::ChangeKind::SessionPut(session), 1000, 0);
        let found = view.browser_session(&[7; 32]).expect("indexed");
        drop(std::mem::take(&mut view));
        Arc::try_unwrap(found).expect("only reference")
    }

    #[test]
    fn idle_and_absolute_expiry_follow_the_last_use_and_the_lifetime() {
        let idle = Duration::from_secs(600);
        let session = entry(false, 1000, 1000 + 3600);
        assert!(session_live(&session, idle, 1000));
        assert!(session_live(&session, idle, 1599));
        assert!(!session_live(&session, idle, 1600), "unused for inactivity");
        // A use pushes the inactivity deadline forward ...
        session.use_at(1500);
        assert!(session_live(&session, idle, 2099));
        assert!(!session_live(&session, idle, 2100));
        // ... and so does one recorded by another replica (through the feed).
        session.use_at(4000);
        assert!(
            !session_live(&session, idle, 4600),
            "never past the absolute expiry"
        );
        // Remember-me: no inactivity limit, only the lifetime.
        let remembered = entry(true, 1000, 1000 + 14 * 86_400);
        assert!(session_live(&remembered, idle, 1000 + 13 * 86_400));
        assert!(!session_live(&remembered, idle, 1000 + 14 * 86_400));
    }

    #[test]
    fn the_last_use_is_recorded_never_coarser_than_a_tenth_of_inactivity_nor_a_minute() {
        for (inactivity, every) in [
            (Duration::from_secs(2 * 3600), 60),
            (Duration::from_secs(300), 30),
            (Duration::from_secs(5), 1),
        ] {
            let settings = BrowserSettings {
                inactivity,
                ..BrowserSettings::default()
            };
            let touch_every = settings.touch_every();
            assert_eq!(touch_every, Duration::from_secs(every), "{inactivity:?}");
            assert!(touch_every <= Duration::from_secs(60));
            assert!(touch_every <= (inactivity / 10).max(Duration::from_secs(1)));
            assert!(!touch_due(1000, 1000, touch_every));
            assert!(!touch_due(1000, 1000 + every - 1, touch_every));
            assert!(touch_due(1000, 1000 + every, touch_every));
        }
        // One write in flight per session at a time; released for a retry on failure.
        let session = entry(false, 1000, 5000);
        assert!(session.start_touch());
        assert!(!session.start_touch(), "one in flight");
        session.end_touch(None);
        assert_eq!(session.recorded(), 1000, "a failed write records nothing");
        assert!(session.start_touch(), "tried again at the next use");
        session.end_touch(Some(1060));
        assert_eq!(session.recorded(), 1060);
        assert!(!touch_due(
            session.recorded(),
            1100,
            Duration::from_secs(60)
        ));
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
