//! Service clients (SPEC §4 "Service clients", issue #14): machine callers that get access
//! tokens by the OAuth 2.0 client-credentials grant (RFC 6749 §4.4) instead of logging in.
//!
//! Model: a client is a principal of kind [`PrincipalKind::Client`] in the users table
//! (precedent: Keycloak's service-account users), so it shares the users' name namespace
//! (no user can take a client's name, nor the reverse: both would get the same user
//! header), the change feed, the in-memory view and the identity headers and route rules.
//!
//! Secret: 32 random bytes, base64url, shown once (`client add` / `client rotate`). It is
//! high-entropy like a refresh token, so the store keeps only its SHA-256, in
//! `password_hash` as `$gatehouse-client-sha256$<hex>` ([`CLIENT_SECRET_HASH_PREFIX`]:
//! not a PHC string, no password verifier accepts it), compared in constant time; an
//! unknown name is compared against a dummy hash, so it takes the same path. Failures
//! count toward the login lockout under the client's canonical name and the caller's
//! address, like logins ([`super::LoginThrottle`]).
//!
//! Tokens: `sub` the client's id, `username` and `client_id` its name, `roles` its roles,
//! no refresh token and no session, but a `sid` = [`session_marker`] of the client's
//! generation (the view owns the marker, since it is what it checks). `client rotate` (new secret, generation bump) and `client remove` therefore
//! end every earlier token at once, in the same second too, on every replica following
//! the feed ([`super::view::View::check`]). A client removed and added again under the
//! same name has a new id: the old tokens name the old one.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::directory::{check_roles, dedup};
use super::view::session_marker;
use super::{AccountError, Accounts, Directory};
use crate::auth::keys::claims::USER_CLIENT_ID;
use crate::auth::now_secs;
use crate::names::{canonical_username, USERNAME_RULE};
use crate::store::{PrincipalKind, UserChange, UserRecord, CLIENT_SECRET_HASH_PREFIX};

/// Random bytes in a client secret (256 bits).
pub const SECRET_BYTES: usize = 32;

/// Longest secret looked at; ours are 43 characters. Longer ones fail like a wrong one.
pub const MAX_SECRET_LEN: usize = 256;

/// The stored form of a client secret: [`CLIENT_SECRET_HASH_PREFIX`] + SHA-256 in hex.
fn secret_hash(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(CLIENT_SECRET_HASH_PREFIX.len() + 64);
    out.push_str(CLIENT_SECRET_HASH_PREFIX);
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// What an unknown name is compared against (matches no secret: not a hex digest).
const DUMMY_HASH: &str =
    "$gatehouse-client-sha256$zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";

/// Constant-time comparison of a presented secret with a stored hash.
fn secret_matches(presented: &str, stored: &str) -> bool {
    let ours = secret_hash(presented);
    bool::from(ours.as_bytes().ct_eq(stored.as_bytes()))
}

/// A new secret and its stored form.
fn new_secret() -> (Zeroizing<String>, String) {
    let secret = Zeroizing::new(crate::auth::random_id(SECRET_BYTES));
    let hash = secret_hash(&secret);
    (secret, hash)
}

/// What `client list` shows of a client (never its secret or hash).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientSummary {
    /// As created.
    pub name: String,
    /// Its tokens' `sub`.
    pub id: String,
    pub roles: Vec<String>,
    /// Unix seconds.
    pub created: u64,
}

impl From<&UserRecord> for ClientSummary {
    fn from(client: &UserRecord) -> Self {
        ClientSummary {
            name: client.username.clone(),
            id: client.id.clone(),
            roles: client.roles.clone(),
            created: client.created,
        }
    }
}

/// A client and its new secret (`client add`, `client rotate`): the one moment the secret
/// exists outside the caller's hands. Wiped when dropped; never debug-printed.
#[derive(Clone)]
pub struct NewClientSecret {
    pub client: ClientSummary,
    pub secret: Zeroizing<String>,
}

impl std::fmt::Debug for NewClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewClientSecret")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// The client-credentials token response (RFC 6749 §4.4.3, SPEC §4: no refresh token),
/// sent with `Cache-Control: no-store`.
#[derive(Clone, Serialize)]
pub struct ClientToken {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds.
    pub expires_in: u64,
}

impl std::fmt::Debug for ClientToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientToken")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

impl Directory {
    /// A service client (never a user) by name.
    async fn find_client_by_name(&self, name: &str) -> Result<UserRecord, AccountError> {
        let not_found = || AccountError::NoSuchClient(name.to_string());
        let canonical = canonical_username(name).ok_or_else(not_found)?;
        self.store()
            .find_user_by_name(&canonical)
            .await?
            .filter(|user| user.kind == PrincipalKind::Client)
            .ok_or_else(not_found)
    }

    /// Creates a service client (`gatehouse client add`) with a new secret. Names follow
    /// the username rules and share their namespace (`UsernameTaken` for a user's or a
    /// client's name); `gatehouse` is reserved (the `client_id` of users' tokens).
    pub async fn add_client(
        &self,
        name: &str,
        roles: Vec<String>,
    ) -> Result<NewClientSecret, AccountError> {
        let canonical =
            canonical_username(name).ok_or_else(|| AccountError::Policy(USERNAME_RULE.into()))?;
        if canonical == USER_CLIENT_ID {
            return Err(AccountError::Policy(format!(
                "`{USER_CLIENT_ID}` is reserved: it is the client_id of the tokens users get by logging in"
            )));
        }
        check_roles(&roles)?;
        if self.store().find_user_by_name(&canonical).await?.is_some() {
            return Err(AccountError::UsernameTaken);
        }
        let (secret, hash) = new_secret();
        let now = now_secs();
        let client = UserRecord {
            id: uuid::Uuid::new_v4().to_string(),
            username: name.to_string(),
            canonical,
            password_hash: hash,
            roles: dedup(roles),
            enabled: true,
            created: now,
            password_changed_at: now,
            generation: 0,
            kind: PrincipalKind::Client,
        };
        self.applied(self.store().insert_user(&client).await)
            .await?;
        Ok(NewClientSecret {
            client: ClientSummary::from(&client),
            secret,
        })
    }

    /// Every service client, sorted by name.
    pub async fn list_clients(&self) -> Result<Vec<ClientSummary>, AccountError> {
        let mut clients = self.store().list_users().await?;
        clients.retain(|user| user.kind == PrincipalKind::Client);
        clients.sort_by(|a, b| a.canonical.cmp(&b.canonical));
        Ok(clients.iter().map(ClientSummary::from).collect())
    }

    /// Deletes a service client (`gatehouse client remove`): its secret and every token
    /// issued to it stop working at once.
    pub async fn remove_client(&self, name: &str) -> Result<(), AccountError> {
        let client = self.find_client_by_name(name).await?;
        let removed = self
            .applied(self.store().remove_user(&client.id).await)
            .await?;
        if removed.is_none() {
            return Err(AccountError::NoSuchClient(name.to_string()));
        }
        Ok(())
    }

    /// Gives a service client a new secret (`gatehouse client rotate`): the old secret
    /// and every token issued before stop working at once (generation bump: the tokens'
    /// `sid` marker no longer matches).
    pub async fn rotate_client(&self, name: &str) -> Result<NewClientSecret, AccountError> {
        let client = self.find_client_by_name(name).await?;
        let (secret, hash) = new_secret();
        let change = UserChange::SetPassword {
            hash,
            changed_at: now_secs(),
        };
        let rotated = self
            .update(&client.id, change)
            .await?
            .ok_or_else(|| AccountError::NoSuchClient(name.to_string()))?;
        Ok(NewClientSecret {
            client: ClientSummary::from(&rotated),
            secret,
        })
    }
}

impl Accounts {
    /// The client-credentials grant (RFC 6749 §4.4, SPEC §4): authenticates the client
    /// ([`Self::authenticate_client`]'s rules) and signs it an access token: `sub` its
    /// id, `username` and `client_id` its name, its roles, `sid` the marker of its
    /// current secret. No refresh token.
    pub async fn client_credentials(
        &self,
        name: &str,
        secret: Zeroizing<String>,
        client_ip: IpAddr,
    ) -> Result<ClientToken, AccountError> {
        let client = self.verify_client(name, &secret, client_ip).await?;
        // The token is checked against the view: make sure it knows this generation (a
        // rotation or an add made by another replica a moment ago).
        let known = self
            .directory
            .view()
            .user(&client.id)
            .is_some_and(|view| view.generation == client.generation);
        if !known {
            self.directory.follow().await;
        }
        let sid = session_marker(client.generation);
        let (access_token, _) = self
            .keys
            .issue_for_client(&client.id, &client.username, &client.roles, &sid)
            .map_err(|err| AccountError::Internal(format!("cannot sign a token: {err}")))?;
        Ok(ClientToken {
            access_token,
            token_type: "Bearer",
            expires_in: self.keys.access_ttl().as_secs(),
        })
    }

    /// Checks a service client's name and secret (introspection callers, SPEC §4). Every
    /// failure is [`AccountError::InvalidClient`] — unknown name, a user's name, wrong
    /// secret, disabled client — after the same work; it counts toward the login lockout
    /// (per canonical name and per address, `TooManyAttempts` when over).
    pub async fn authenticate_client(
        &self,
        name: &str,
        secret: Zeroizing<String>,
        client_ip: IpAddr,
    ) -> Result<(), AccountError> {
        self.verify_client(name, &secret, client_ip)
            .await
            .map(|_| ())
    }

    async fn verify_client(
        &self,
        name: &str,
        secret: &str,
        client_ip: IpAddr,
    ) -> Result<UserRecord, AccountError> {
        let canonical = canonical_username(name);
        let key = canonical.as_deref();
        self.throttle.check(key, client_ip).await?;
        let client = match key {
            Some(name) => self
                .directory
                .store()
                .find_user_by_name(name)
                .await?
                .filter(|user| user.kind == PrincipalKind::Client),
            None => None,
        };
        let stored = client
            .as_ref()
            .map_or(DUMMY_HASH, |client| client.password_hash.as_str());
        // Always the comparison, whatever else is wrong: one path for every failure.
        let matches = secret_matches(secret, stored) & (secret.len() <= MAX_SECRET_LEN);
        match client {
            Some(client) if matches && client.enabled => {
                self.throttle.record_success(key, client_ip).await;
                Ok(client)
            }
            _ => {
                self.throttle.record_failure(key, client_ip).await;
                tracing::info!(
                    client_id = key.unwrap_or("-"),
                    client = %client_ip,
                    "client authentication failed: wrong secret or unknown client"
                );
                Err(AccountError::InvalidClient)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_256_bits_and_stored_only_as_a_prefixed_sha256() {
        let (secret, hash) = new_secret();
        assert_eq!(secret.len(), 43, "32 bytes base64url without padding");
        assert!(hash.starts_with(CLIENT_SECRET_HASH_PREFIX));
        assert_eq!(hash.len(), CLIENT_SECRET_HASH_PREFIX.len() + 64);
        assert!(!hash.contains(secret.as_str()));
        assert!(secret_matches(&secret, &hash));
        assert!(!secret_matches("wrong", &hash));
        assert!(!secret_matches(&secret, DUMMY_HASH));
        let (other, _) = new_secret();
        assert_ne!(*secret, *other);
    }

    #[test]
    fn session_markers_differ_by_generation_and_from_login_session_ids() {
        assert_ne!(session_marker(0), session_marker(1));
        assert!(session_marker(7).contains('.'));
        assert!(!crate::auth::random_id(16).contains('.'));
    }
}
