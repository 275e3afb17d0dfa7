//! Use cases on users and tokens: authenticate a bearer token, log in ([`login`]), refresh
//! with rotation and reuse detection, log out, change a password, register; and the user
//! [`Directory`] the CLI administers. No hyper types: testable without HTTP.
//!
//! Flow of a bearer check ([`Accounts::authenticate`], every protected request): the JWT
//! is verified (algorithm, signature, `iss`, `aud`, `exp`/`nbf`/`iat` with leeway), then
//! checked against the in-memory [`view::View`] (revoked `jti`, ended session, user
//! exists and enabled, issued after the last password change). The returned identity
//! carries the user's *current* roles, not the ones frozen in the token (SPEC §4).
//!
//! State in memory, truth in the store: every use case writes through the async
//! [`Store`]; the view changes only by applying the store's change feed ([`feed`]), up to
//! a write's own change before that write is acknowledged, and in the background
//! ([`maintain`]) for changes made by anyone else sharing the store.
//!
//! Secret (SPEC §8, issue #16): [`Accounts::open`] refuses a signing secret other than
//! the one the store was served with, and a missing one over a store served with a
//! configured one ([`check_secret_fingerprint`]), rather than logging everyone out.
//!
//! Outage (SPEC §8): a store out of reach fails a use case with
//! [`AccountError::Unavailable`] (503, nothing acknowledged). For a remote store
//! ([`Store::is_remote`]) the view also knows how long it has gone without hearing from
//! the store; past `store.max_stale` it is [`Accounts::stale`] and cannot vouch for
//! tokens any more ([`watch_freshness`] logs the transitions).
//!
//! Service clients ([`clients`]): principals of kind client in the same store, with a
//! secret instead of a password; the client-credentials grant signs them an access token
//! (no refresh token, no session) whose `sid` marks the client's current secret.
//!
//! Sessions: a login creates a session (refresh-token family, the `sid` claim). Refresh
//! tokens are 256-bit random strings; the store keeps only their SHA-256. Each is
//! single-use: refreshing spends it and issues a successor; presenting a spent one ends
//! the whole family (RFC 9700 §4.14.2). Logout ends the session and revokes the access
//! token presented; a password change or a disable ends every session of the user.
//!
//! Browser sessions ([`browser`], SPEC §10) are login sessions too, started by the
//! sign-in form (same credential check and lockout as login) and authenticated by a
//! cookie from the view's cookie-hash index; they end through the same feed.

pub mod browser;
pub mod clients;
pub mod directory;
pub mod feed;
pub mod import;
pub mod login;
pub mod throttle;
pub mod view;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::auth::keys::{TokenKeys, VerifiedToken};
use crate::auth::now_secs;
use crate::auth::password::{HashError, Password, PasswordHasher};
use crate::auth::{new_refresh_token, refresh_token_hash, MAX_REFRESH_TOKEN_LEN};
use crate::config::Config;
use crate::error::TokenRejection;
use crate::store::{Conflict, RefreshRecord, SessionRecord, Store, StoreError, Taken, UserRecord};
pub use browser::{csrf_matches, csrf_token, BrowserSignIn};
pub use clients::{ClientSummary, ClientToken, NewClientSecret};
pub use directory::{canonical_username, Directory, UserSummary};
pub use login::{LoginThrottle, Unthrottled};
pub use throttle::{MemoryThrottle, SharedThrottle};
use view::UserView;

/// A caller whose token verified: the user's current state and what the token
/// established (not its raw claims: the roles and username frozen in a token play no part).
#[derive(Debug, Clone)]
pub struct Identity {
    /// Shared with the in-memory view: nothing is copied per request.
    pub user: Arc<UserView>,
    /// Shared with the verified-token cache (or, for a browser session, built once per
    /// session: `sub` the user id, `sid` and `jti` the session id, `iat` the sign-in
    /// time, `exp` the absolute expiry).
    token: Arc<VerifiedToken>,
    /// Established by a browser session cookie (SPEC §10), not a bearer token.
    browser_session: bool,
}

impl Identity {
    /// The identity of a verified token's user, as the view has it now.
    pub fn new(user: Arc<UserView>, token: Arc<VerifiedToken>) -> Self {
        Identity {
            user,
            token,
            browser_session: false,
        }
    }

    /// The user's identity header values (built on first use, kept in the view).
    pub fn headers(&self) -> &view::IdentityValues {
        self.user.headers(&self.token.sub)
    }

    /// The identity a browser session cookie stands for (SPEC §10).
    pub fn from_browser_session(user: Arc<UserView>, session: Arc<VerifiedToken>) -> Self {
        Identity {
            user,
            token: session,
            browser_session: true,
        }
    }

    /// True when a browser session cookie established it.
    pub fn is_browser_session(&self) -> bool {
        self.browser_session
    }

    /// The user id (`sub`).
    pub fn sub(&self) -> &str {
        &self.token.sub
    }

    pub fn username(&self) -> &str {
        &self.user.username
    }

    /// The user's current roles (from the store, not the token).
    pub fn roles(&self) -> &[String] {
        &self.user.roles
    }

    /// The login session the token belongs to (`sid`), if any.
    pub fn sid(&self) -> Option<&str> {
        self.token.sid.as_deref()
    }

    /// The token's id (`jti`).
    pub fn jti(&self) -> &str {
        &self.token.jti
    }

    /// When the token was issued (`iat`, Unix seconds; a browser session's sign-in).
    pub fn iat(&self) -> u64 {
        self.token.iat
    }

    /// When the token expires (`exp`, Unix seconds; a browser session's absolute expiry).
    pub fn exp(&self) -> u64 {
        self.token.exp
    }

    /// True when the caller is a service client (client-credentials token).
    pub fn is_client(&self) -> bool {
        self.user.kind == crate::store::PrincipalKind::Client
    }

    /// The service client's name (its tokens' `client_id`), `None` for a user.
    pub fn client_id(&self) -> Option<&str> {
        self.is_client().then_some(self.user.username.as_str())
    }
}

/// Why an account operation did not happen. The endpoints map these to SPEC §5
/// outcomes; the CLI prints them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// Wrong password, or no such user: never says which.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// The password was right but the account is disabled.
    #[error("the account is disabled")]
    AccountDisabled,
    /// Brute-force regulation refused the attempt.
    #[error("too many attempts; retry in {retry_after_secs} s")]
    TooManyAttempts { retry_after_secs: u64 },
    /// A refresh token that is unknown, expired, spent or of an ended session.
    #[error("the refresh token is invalid, expired or revoked")]
    InvalidGrant,
    #[error("that username is taken")]
    UsernameTaken,
    /// A username, role or password that breaks the rules; the text says which.
    #[error("{0}")]
    Policy(String),
    /// Administration named a user that does not exist.
    #[error("no user named `{0}`")]
    NoSuchUser(String),
    /// Administration named a service client that does not exist.
    #[error("no service client named `{0}`")]
    NoSuchClient(String),
    /// Client authentication failed (client-credentials grant, introspection): unknown
    /// client, wrong secret, or a disabled client — never says which (RFC 6749 §5.2
    /// `invalid_client`).
    #[error("client authentication failed")]
    InvalidClient,
    /// The store cannot be reached: nothing was acknowledged; may be retried (SPEC §8:
    /// 503 `unavailable`, never 401). The detail is for logs only.
    #[error("the store cannot be reached: {0}")]
    Unavailable(String),
    /// A fault of ours (store, hashing task). Logged, never shown to clients.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why [`Accounts::open`] failed: the store is out of reach (start waits and retries), or
/// anything else (start fails at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    Unavailable(String),
    Failed(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Unavailable(message) | OpenError::Failed(message) => f.write_str(message),
        }
    }
}

impl From<OpenError> for String {
    fn from(err: OpenError) -> Self {
        err.to_string()
    }
}

impl From<String> for OpenError {
    fn from(message: String) -> Self {
        OpenError::Failed(message)
    }
}

impl From<HashError> for AccountError {
    fn from(err: HashError) -> Self {
        AccountError::Internal(err.to_string())
    }
}

/// The token response (RFC 6749 §5.1), sent with `Cache-Control: no-store`.
#[derive(Clone, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds.
    pub expires_in: u64,
    pub refresh_token: String,
    /// Seconds.
    pub refresh_expires_in: u64,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("expires_in", &self.expires_in)
            .field("refresh_expires_in", &self.refresh_expires_in)
            .finish_non_exhaustive()
    }
}

/// The lifetimes and switches the use cases need.
#[derive(Debug, Clone)]
pub struct AccountSettings {
    pub refresh_ttl: Duration,
    pub leeway: Duration,
    pub registration_enabled: bool,
    pub registration_roles: Vec<String>,
}

/// Accounts and token lifecycle.
pub struct Accounts {
    directory: Arc<Directory>,
    keys: Arc<TokenKeys>,
    settings: AccountSettings,
    throttle: Arc<dyn LoginThrottle>,
    /// How long the view may go without hearing from the store before it is stale
    /// (SPEC §8 `store.max_stale`); `None`: a local store, never stale.
    max_stale: Option<Duration>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("directory", &self.directory)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// The signing secret kept in the store, generated and kept at first start.
pub async fn kept_secret(store: &dyn Store) -> Result<Vec<u8>, String> {
    keep_secret(store).await.map_err(describe_secret_error)
}

fn describe_secret_error(err: StoreError) -> String {
    format!("store: cannot read or keep the signing secret: {err}")
}

async fn keep_secret(store: &dyn Store) -> Result<Vec<u8>, StoreError> {
    match store.find_secret().await? {
        Some(secret) => Ok(secret),
        None => store
            .insert_secret(&crate::auth::secret::generate())
            .await
            .map(|kept| kept.value),
    }
}

/// What a replica whose signing secret is not the one the others use says (SPEC §8: it
/// refuses to become ready), and how to fix it.
pub const SECRET_MISMATCH: &str = "this replica's signing secret differs from the one the other replicas use (fingerprint mismatch): give every replica the same GATEHOUSE_SECRET or tokens.secret_file (or none, to share the one generated in the store); to rotate the secret on purpose, stop every replica, run `gatehouse migrate --reset-secret-fingerprint`, then start them with the new secret";

/// What a gateway on its own store (sled) says when its signing secret is not the one the
/// store was served with: starting would silently log everyone out.
pub const SECRET_CHANGED: &str = "the signing secret differs from the one this store was served with (fingerprint mismatch): every token issued so far would stop working; start with the previous GATEHOUSE_SECRET or tokens.secret_file, or, to rotate the secret on purpose, stop the gateway, run `gatehouse migrate --reset-secret-fingerprint`, then start it with the new secret";

/// What `serve` says when no secret is configured, none was generated in the store, but
/// the store was served with a configured one: generating a new one would silently log
/// everyone out (the usual cause: GATEHOUSE_SECRET forgotten on a restart).
pub const SECRET_MISSING: &str = "no GATEHOUSE_SECRET or tokens.secret_file is configured, but this store was served with a configured signing secret (its fingerprint is kept): generating a new one would make every token issued so far stop working; set GATEHOUSE_SECRET or tokens.secret_file to that secret again, or, to switch to a generated secret on purpose, stop the gateway, run `gatehouse migrate --reset-secret-fingerprint`, then start it without one";

/// The secret kept in the store for a gateway with no configured one (SPEC §2 `[tokens]`),
/// generated at first start — unless the store keeps the fingerprint of a secret that was
/// configured and no generated one ([`SECRET_MISSING`]). The fingerprint is read before
/// the secret: a replica keeps a generated secret before its fingerprint, so one that
/// sees the fingerprint also sees that secret.
/// `Ok(None)`: refused, [`SECRET_MISSING`].
async fn keep_unconfigured_secret(store: &dyn Store) -> Result<Option<Vec<u8>>, StoreError> {
    if store.keeps_secret_fingerprint() && store.find_secret_fingerprint().await?.is_some() {
        return store.find_secret().await;
    }
    keep_secret(store).await.map(Some)
}

/// SPEC §8 "Secret" (and issue #16 for a single process): keeps the fingerprint of `secret`
/// ([`crate::auth::secret::fingerprint`]) unless one is kept already, and refuses (logged
/// at ERROR) when the kept one is another secret's: with replicas ([`SECRET_MISMATCH`])
/// tokens signed by one would be refused by the others; on a store of one process
/// ([`SECRET_CHANGED`]) every token issued before the restart would. `serve` then exits 1
/// with the message (the simplest reading of "refuses to become ready": a process that
/// can never become ready should not linger). [`OpenError::Unavailable`] when the store
/// cannot be reached (start waits for it). A store without a kept fingerprint (new, from
/// before fingerprints, or reset on purpose) keeps this secret's.
pub async fn check_secret_fingerprint(store: &dyn Store, secret: &[u8]) -> Result<(), OpenError> {
    if !store.keeps_secret_fingerprint() {
        return Ok(());
    }
    let ours = crate::auth::secret::fingerprint(secret)?;
    let kept = store.keep_secret_fingerprint(&ours).await.map_err(|err| {
        let message = format!("store: cannot read or keep the signing secret's fingerprint: {err}");
        match err {
            StoreError::Unavailable(_) => OpenError::Unavailable(message),
            _ => OpenError::Failed(message),
        }
    })?;
    if kept != ours {
        let message = if store.is_remote() {
            SECRET_MISMATCH
        } else {
            SECRET_CHANGED
        };
        tracing::error!("{message}");
        return Err(OpenError::Failed(message.to_string()));
    }
    Ok(())
}

impl Accounts {
    /// Assembles the accounts layer over an open store: resolves the signing secret
    /// (env, file, else kept in the store), checks it is the one the other replicas use
    /// ([`check_secret_fingerprint`]), loads the in-memory view and makes the dummy
    /// password hash. [`OpenError::Unavailable`] when the store could not be reached.
    pub async fn open(store: Arc<dyn Store>, config: &Config) -> Result<Self, OpenError> {
        // `resolve` reads files (blocking) and asks the store only when no secret is
        // configured; its callback is synchronous, so it waits for the async store here.
        let secret_store = store.clone();
        let runtime = tokio::runtime::Handle::current();
        let unreachable = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let resolved = tokio::task::spawn_blocking({
            let settings = config.tokens.clone();
            let unreachable = unreachable.clone();
            move || {
                crate::auth::secret::resolve(&settings, || {
                    runtime
                        .block_on(keep_unconfigured_secret(secret_store.as_ref()))
                        .map_err(|err| {
                            if matches!(err, StoreError::Unavailable(_)) {
                                unreachable.store(true, std::sync::atomic::Ordering::Relaxed);
                            }
                            describe_secret_error(err)
                        })?
                        .ok_or_else(|| {
                            tracing::error!("{SECRET_MISSING}");
                            SECRET_MISSING.to_string()
                        })
                })
            }
        })
        .await
        .map_err(|err| format!("cannot resolve the signing secret: {err}"))?;
        let secret = resolved.map_err(|message| {
            if unreachable.load(std::sync::atomic::Ordering::Relaxed) {
                OpenError::Unavailable(message)
            } else {
                OpenError::Failed(message)
            }
        })?;
        check_secret_fingerprint(store.as_ref(), &secret).await?;
        let keys = Arc::new(TokenKeys::new(&secret, &config.tokens)?);
        let hasher = Arc::new(PasswordHasher::new(config.passwords)?);
        hasher
            .prepare()
            .await
            .map_err(|err| format!("passwords: {err}"))?;
        let grace = grace(config.tokens.access_ttl, config.tokens.leeway);
        let throttle = throttle::for_store(&store, config.login, None);
        let directory = Directory::open(store, hasher, grace).await.map_err(|err| {
            let message = format!("cannot load the store: {err}");
            match err {
                StoreError::Unavailable(_) => OpenError::Unavailable(message),
                _ => OpenError::Failed(message),
            }
        })?;
        Ok(Accounts::new(Arc::new(directory), keys, settings(config)).with_throttle(throttle))
    }

    /// Accounts over an already loaded directory.
    pub fn new(directory: Arc<Directory>, keys: Arc<TokenKeys>, settings: AccountSettings) -> Self {
        Accounts {
            directory,
            keys,
            settings,
            throttle: Arc::new(Unthrottled),
            max_stale: None,
        }
    }

    /// Tracks staleness (SPEC §8): once the view has gone longer than `max_stale`
    /// without hearing from the store, [`Self::stale`] is true. Set for a remote store
    /// only ([`Store::is_remote`]); an embedded one is never stale.
    pub fn with_max_stale(mut self, max_stale: Option<Duration>) -> Self {
        self.max_stale = max_stale;
        self
    }

    /// Whether staleness is tracked at all (a remote store).
    pub fn tracks_staleness(&self) -> bool {
        self.max_stale.is_some()
    }

    /// True once the view has gone more than `store.max_stale` without hearing from the
    /// store: it may miss a logout or a disable made elsewhere, so protected routes and
    /// `/auth/verify` answer 503 (SPEC §8). On the hot path: one branch for a local
    /// store; for a remote one a clock read and an atomic load, no lock.
    pub fn stale(&self) -> bool {
        match self.max_stale {
            None => false,
            Some(max) => self.directory.follower().silent_for() > max,
        }
    }

    /// Installs brute-force regulation for logins.
    pub fn with_throttle(mut self, throttle: Arc<dyn LoginThrottle>) -> Self {
        self.throttle = throttle;
        self
    }

    /// The brute-force regulator (the admin socket's `unlock`).
    pub fn throttle(&self) -> &Arc<dyn LoginThrottle> {
        &self.throttle
    }

    /// The signing keys (for tests and the token endpoints).
    pub fn keys(&self) -> &TokenKeys {
        &self.keys
    }

    /// The user directory (admin socket, registration).
    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }

    /// Whether `/auth/register` is served.
    pub fn registration_enabled(&self) -> bool {
        self.settings.registration_enabled
    }

    /// Checks a bearer token: signature and claims, then revocation, session, user state
    /// and password change, from memory (SPEC §4 validation).
    pub fn authenticate(&self, token: &str) -> Result<Identity, TokenRejection> {
        let token = self.keys.verify(token)?;
        let user = self.directory.view().check(&token)?;
        Ok(Identity::new(user, token))
    }

    /// Starts a login session for a user whose password was just verified: stores the
    /// session and its first refresh token (refused if the user changed meanwhile), then
    /// signs an access token bound to the session.
    pub async fn start_session(&self, user: &UserRecord) -> Result<TokenPair, AccountError> {
        let now = now_secs();
        let family = crate::auth::random_id(16);
        let (refresh_token, token_hash) = new_refresh_token();
        let expires_at = now.saturating_add(self.settings.refresh_ttl.as_secs());
        let session = SessionRecord {
            family: family.clone(),
            user_id: user.id.clone(),
            created: now,
            generation: user.generation,
            expires_at,
            ended_at: None,
            browser: None,
        };
        let record = RefreshRecord {
            token_hash,
            family: family.clone(),
            user_id: user.id.clone(),
            expires_at,
            spent: false,
        };
        match self
            .directory
            .store()
            .insert_session(&session, &record)
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
        let (username, roles) = match self.directory.view().user(&user.id) {
            Some(current) => (current.username.clone(), current.roles.clone()),
            None => (user.username.clone(), user.roles.clone()),
        };
        self.token_pair(&user.id, &username, &roles, &family, refresh_token)
    }

    fn token_pair(
        &self,
        sub: &str,
        username: &str,
        roles: &[String],
        family: &str,
        refresh_token: String,
    ) -> Result<TokenPair, AccountError> {
        let (access_token, _) = self
            .keys
            .issue(sub, username, roles, Some(family))
            .map_err(|err| AccountError::Internal(format!("cannot sign a token: {err}")))?;
        Ok(TokenPair {
            access_token,
            token_type: "Bearer",
            expires_in: self.keys.access_ttl().as_secs(),
            refresh_token,
            refresh_expires_in: self.settings.refresh_ttl.as_secs(),
        })
    }

    /// Exchanges a refresh token for a new pair (RFC 6749 §6). Single use: the presented
    /// token is spent and a successor issued in the same transaction; a spent token
    /// presented again ends its whole session (RFC 9700 §4.14.2). Every failure is
    /// `InvalidGrant`.
    pub async fn refresh(&self, presented: &str) -> Result<TokenPair, AccountError> {
        if presented.is_empty() || presented.len() > MAX_REFRESH_TOKEN_LEN {
            return Err(AccountError::InvalidGrant);
        }
        let now = now_secs();
        let presented_hash = refresh_token_hash(presented);
        let (next_token, next_hash) = new_refresh_token();
        let next_expires_at = now.saturating_add(self.settings.refresh_ttl.as_secs());
        let taken = self
            .directory
            .store()
            .take_refresh(&presented_hash, now, &next_hash, next_expires_at)
            .await;
        // A reuse ended the session: the feed carries that to the view before we answer.
        let session = match self.directory.applied(taken).await? {
            Taken::Invalid => return Err(AccountError::InvalidGrant),
            Taken::Reused(session) => {
                tracing::warn!(
                    user_id = %session.user_id,
                    "a spent refresh token was presented again; its login session is ended (RFC 9700 §4.14.2)"
                );
                return Err(AccountError::InvalidGrant);
            }
            Taken::Rotated(session) => session,
        };
        let user = self
            .directory
            .view()
            .user(&session.user_id)
            .filter(|user| user.enabled && user.generation == session.generation);
        let Some(user) = user else {
            self.directory
                .end_session(&session.user_id, &session.family)
                .await?;
            return Err(AccountError::InvalidGrant);
        };
        self.token_pair(
            &session.user_id,
            &user.username,
            &user.roles,
            &session.family,
            next_token,
        )
    }

    /// Ends a login session (SPEC §4 `/auth/logout`): by its refresh token, and/or by an
    /// access token of it, which is also revoked itself. Unknown or invalid tokens are
    /// ignored, as RFC 7009 §2.2 does for revocation: logging out is idempotent.
    pub async fn logout(
        &self,
        refresh_token: Option<&str>,
        access_token: Option<&str>,
    ) -> Result<(), AccountError> {
        if let Some(token) = refresh_token {
            self.end_refresh_session(token).await?;
        }
        if let Some(token) = access_token {
            self.revoke_access_token(token, true).await?;
        }
        Ok(())
    }

    /// Revokes one token (RFC 7009, SPEC §4 `/auth/revoke`): a refresh token ends its whole
    /// login session, an access token stops working (revoked by its `jti`; its session
    /// goes on). Tokens that are unknown, expired, or already revoked are not an error
    /// (RFC 7009 §2.2). Both kinds are tried whatever the hint says (§2.1: the hint only
    /// orders the lookups): a JWT is three dot-separated segments, our refresh tokens have
    /// no dot, so the shape picks the one lookup that can match.
    pub async fn revoke(&self, token: &str) -> Result<(), AccountError> {
        if token.contains('.') {
            self.revoke_access_token(token, false).await
        } else {
            self.end_refresh_session(token).await
        }
    }

    /// Ends the login session a refresh token belongs to (all its refresh and access
    /// tokens); an unknown or oversized token ends nothing.
    async fn end_refresh_session(&self, token: &str) -> Result<(), AccountError> {
        if token.len() > MAX_REFRESH_TOKEN_LEN {
            return Ok(());
        }
        let hash = refresh_token_hash(token);
        if let Some(record) = self.directory.store().find_refresh(&hash).await? {
            self.directory
                .end_session(&record.user_id, &record.family)
                .await?;
        }
        Ok(())
    }

    /// Revokes an access token by its `jti` until it would have expired, and with
    /// `end_session` its login session too. Only our signature matters here (a disabled
    /// user may still log out); a token that does not verify revokes nothing.
    async fn revoke_access_token(
        &self,
        token: &str,
        end_session: bool,
    ) -> Result<(), AccountError> {
        let Ok(claims) = self.keys.verify(token) else {
            return Ok(());
        };
        let until = claims.exp.saturating_add(self.settings.leeway.as_secs());
        self.directory.revoke(&claims.jti, until).await?;
        if let (true, Some(sid)) = (end_session, &claims.sid) {
            self.directory.end_session(&claims.sub, sid).await?;
        }
        Ok(())
    }

    /// Changes the caller's own password (SPEC §4 `/auth/password`): the new one must meet
    /// the policy and the current one must verify; then every earlier token and session
    /// ends and a fresh session starts.
    pub async fn change_password(
        &self,
        identity: &Identity,
        current: Password,
        new: Password,
    ) -> Result<TokenPair, AccountError> {
        if identity.is_client() {
            // A service client has a secret, not a password (`client rotate` changes it).
            return Err(AccountError::InvalidCredentials);
        }
        self.directory
            .hasher()
            .check_policy(&new)
            .map_err(AccountError::Policy)?;
        let user = self.directory.store().find_user(identity.sub()).await?;
        let Some(user) = user else {
            return Err(AccountError::InvalidCredentials);
        };
        let verification = self
            .directory
            .hasher()
            .verify(current, user.password_hash.clone())
            .await?;
        if !verification.matches {
            return Err(AccountError::InvalidCredentials);
        }
        let updated = self.directory.change_password(&user.id, new).await?;
        self.start_session(&updated).await
    }

    /// Self-registration (SPEC §4 `/auth/register`), with the `[registration]` roles;
    /// `TooManyAttempts` when `client` has registered too often (checked before hashing).
    pub async fn register(
        &self,
        username: &str,
        password: Password,
        client: IpAddr,
    ) -> Result<UserSummary, AccountError> {
        self.throttle.check_registration(client).await?;
        self.directory
            .add(username, self.settings.registration_roles.clone(), password)
            .await
    }

    /// Removes expired token records (run periodically).
    pub async fn purge(&self) -> Result<(), AccountError> {
        self.directory.purge().await
    }

    /// Makes every write durable (shutdown; writes are flushed as they happen anyway).
    pub async fn flush(&self) -> Result<(), AccountError> {
        Ok(self.directory.store().flush().await?)
    }
}

/// How long after its end a session or revocation must be remembered: until every access
/// token it covers has expired, leeway included.
pub fn grace(access_ttl: Duration, leeway: Duration) -> u64 {
    access_ttl.as_secs().saturating_add(leeway.as_secs())
}

/// The use-case settings of a config.
pub fn settings(config: &Config) -> AccountSettings {
    AccountSettings {
        refresh_ttl: config.tokens.refresh_ttl,
        leeway: config.tokens.leeway,
        registration_enabled: config.registration.enabled,
        registration_roles: config.registration.roles.clone(),
    }
}

/// How often expired refresh tokens, sessions and revocations are swept.
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// Until `shutdown` turns true: follows the store's change feed every
/// [`feed::FOLLOW_EVERY`], and at once when the store signals a change
/// ([`Store::change_signal`]), so changes written by anyone sharing the store reach the
/// view; and sweeps expired token records and old feed entries every ten minutes (first at
/// start), so the store and the in-memory view stay bounded.
pub async fn maintain(accounts: Arc<Accounts>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut purge = tokio::time::interval(PURGE_EVERY);
    purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut follow = tokio::time::interval(feed::FOLLOW_EVERY);
    follow.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let signal = accounts.directory.store().change_signal();
    loop {
        let changed = async {
            match &signal {
                Some(signal) => signal.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = follow.tick() => accounts.directory.follow().await,
            // A NOTIFY (PostgreSQL): apply the change at once rather than at the tick.
            () = changed => accounts.directory.follow().await,
            _ = purge.tick() => {
                if let Err(err) = accounts.purge().await {
                    tracing::warn!(error = %err, "could not remove expired token records");
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// How often [`watch_freshness`] looks whether the view turned stale or fresh again.
const FRESHNESS_EVERY: Duration = Duration::from_millis(100);

/// Until `shutdown` turns true, when staleness is tracked (a remote store): notices the
/// view turning stale (`store.max_stale` without a word from the store) or fresh again,
/// logs each transition once (WARN, INFO) and sets `gatehouse_store_stale`. Beside
/// [`maintain`], not in it: a poll hanging on a frozen database must not hide the
/// transition. Returns at once for a local store.
pub async fn watch_freshness(
    accounts: Arc<Accounts>,
    metrics: Arc<crate::telemetry::metrics::Metrics>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let Some(max_stale) = accounts.max_stale else {
        return;
    };
    let mut tick = tokio::time::interval(FRESHNESS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stale = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if accounts.stale() == stale {
            continue;
        }
        stale = !stale;
        metrics.store_stale(stale);
        if stale {
            tracing::warn!(
                max_stale = ?max_stale,
                "stale: no word from the store for longer than store.max_stale; protected routes and /auth/verify answer 503 and /readyz is 503 until it answers again"
            );
        } else {
            tracing::info!("fresh again: the store answers; protected routes are served and /readyz is 200 again");
        }
    }
}
