//! `gatehouse user import FILE` (SPEC §1): users brought over from another system with
//! the password hashes it made, so nobody has to reset a password. Owns the file format
//! and its checks; the store write is one transaction ([`crate::store::Store::insert_users`]).
//!
//! Format: JSON Lines, one object a line, `{"username", "password_hash", "roles"?,
//! "enabled"?}` (roles default to none, enabled to true); blank lines are allowed. Unknown
//! keys are refused, so a typo such as `"password"` cannot import a plaintext.
//!
//! Every line is checked as `user add` checks its arguments: the username by the same
//! rule and compared by its canonical (lower-case) form, the roles by the role rule, and
//! the hash must be one the hasher verifies within its cost bounds
//! ([`crate::auth::password::PasswordHasher::check_stored`]). A name given twice in the
//! file (case-insensitively) or already in the store — a user's or a service client's:
//! they share one namespace — is refused. All or nothing: the
//! first bad line is reported as `line N: …` and nothing is written.
//!
//! No message ever contains a hash or any value of the file but a username (a typed-in
//! value in a wrong place could be a password); JSON errors are reported by position.
//!
//! What happens next is the login's business: a foreign hash verifies and is replaced by
//! argon2id at the user's next successful login (`Verification::needs_rehash`).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::directory::{canonical_username, dedup, Directory};
use super::AccountError;
use crate::auth::now_secs;
use crate::names::{Role, ROLE_RULE, USERNAME_RULE};
use crate::store::{Conflict, PrincipalKind, StoreError, UserRecord};

/// The keys a line may have.
const KEYS: [&str; 4] = ["username", "password_hash", "roles", "enabled"];

/// One checked line.
struct Entry {
    username: String,
    canonical: String,
    password_hash: String,
    roles: Vec<String>,
    enabled: bool,
}

fn bad(line: usize, problem: impl std::fmt::Display) -> AccountError {
    AccountError::Policy(format!("line {line}: {problem}"))
}

/// A key for a message: shown only when it looks like a key someone meant to type.
fn shown_key(key: &str) -> String {
    let plain = key.len() <= 32
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if plain {
        format!("unknown key `{key}`")
    } else {
        "an unknown key".to_string()
    }
}

/// A refused name or role for a message: quoted when it could be one, else not shown
/// (columns swapped by mistake would otherwise print a hash or a password).
fn shown(value: &str) -> String {
    if value.len() <= 64 && !value.contains('$') {
        format!("{value:?}")
    } else {
        "the value".to_string()
    }
}

fn string(object: &Map<String, Value>, key: &str, line: usize) -> Result<String, AccountError> {
    match object.get(key) {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(_) => Err(bad(line, format!("`{key}` must be a string"))),
        None => Err(bad(line, format!("`{key}` is missing"))),
    }
}

/// Checks one non-blank line; `seen` holds the canonical names of earlier lines and
/// `taken` those already in the store.
fn entry(
    directory: &Directory,
    text: &str,
    line: usize,
    seen: &HashMap<String, usize>,
    taken: &HashSet<String>,
) -> Result<Entry, AccountError> {
    let value: Value = serde_json::from_str(text).map_err(|err| {
        let what = match err.classify() {
            serde_json::error::Category::Eof => "the JSON ends early",
            _ => "invalid JSON",
        };
        bad(line, format!("{what} at column {}", err.column()))
    })?;
    let Value::Object(object) = value else {
        return Err(bad(line, "not a JSON object"));
    };
    if let Some(key) = object.keys().find(|key| !KEYS.contains(&key.as_str())) {
        return Err(bad(
            line,
            format!(
                "{}; a line has {} (a plaintext password is never imported)",
                shown_key(key),
                "\"username\", \"password_hash\", \"roles\"?, \"enabled\"?"
            ),
        ));
    }
    let username = string(&object, "username", line)?;
    let canonical = canonical_username(&username).ok_or_else(|| {
        bad(
            line,
            format!(
                "{} is not a valid username; {USERNAME_RULE}",
                shown(&username)
            ),
        )
    })?;
    if let Some(first) = seen.get(&canonical) {
        return Err(bad(
            line,
            format!("the username `{username}` is on line {first} already (names compare case-insensitively)"),
        ));
    }
    if taken.contains(&canonical) {
        return Err(bad(
            line,
            format!("the name `{username}` is taken already (users and service clients share names, compared case-insensitively)"),
        ));
    }
    let password_hash = string(&object, "password_hash", line)?;
    directory
        .hasher()
        .check_stored(&password_hash)
        .map_err(|problem| bad(line, format!("password_hash: {problem}")))?;
    let roles = match object.get("roles") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(role) if Role::is_valid(role) => Ok(role.clone()),
                Value::String(role) => Err(bad(
                    line,
                    format!("{} is not a role name; {ROLE_RULE}", shown(role)),
                )),
                _ => Err(bad(line, "`roles` must be an array of strings")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(bad(line, "`roles` must be an array of strings")),
    };
    let enabled = match object.get("enabled") {
        None => true,
        Some(Value::Bool(enabled)) => *enabled,
        Some(_) => return Err(bad(line, "`enabled` must be true or false")),
    };
    Ok(Entry {
        username,
        canonical,
        password_hash,
        roles: dedup(roles),
        enabled,
    })
}

impl Directory {
    /// Creates every user of an import file (`gatehouse user import`), all or none, in
    /// one store transaction that publishes one change; how many. The first bad line is
    /// the error (`line N: …`), and then nothing was written.
    pub async fn import_users(&self, file: &str) -> Result<usize, AccountError> {
        let taken: HashSet<String> = self
            .store()
            .list_users()
            .await?
            .into_iter()
            .map(|user| user.canonical)
            .collect();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut entries = Vec::new();
        for (index, text) in file.lines().enumerate() {
            let line = index + 1;
            if text.trim().is_empty() {
                continue;
            }
            let entry = entry(self, text, line, &seen, &taken)?;
            seen.insert(entry.canonical.clone(), line);
            entries.push(entry);
        }
        let now = now_secs();
        let users: Vec<UserRecord> = entries
            .into_iter()
            .map(|entry| UserRecord {
                id: uuid::Uuid::new_v4().to_string(),
                username: entry.username,
                canonical: entry.canonical,
                password_hash: entry.password_hash,
                roles: entry.roles,
                enabled: entry.enabled,
                created: now,
                password_changed_at: now,
                generation: 0,
                kind: PrincipalKind::User,
            })
            .collect();
        let written = self.store().insert_users(&users).await;
        match written {
            Err(StoreError::Conflict(Conflict::UsernameTaken)) => Err(AccountError::Policy(
                "a user of the file was created meanwhile by someone else; nothing was imported"
                    .into(),
            )),
            written => self.applied(written).await.map(|()| users.len()),
        }
    }
}
