//! The admin protocol: one JSON request line, one JSON reply line, over the admin socket;
//! the same [`Request`] is executed in-process when the CLI opens the store itself, so a
//! `user` command has one meaning whichever path it takes.
//!
//! ```text
//! → {"op":"disable","username":"alice"}
//! ← {"ok":true,"message":"user alice disabled; their tokens no longer work"}
//! ← {"ok":false,"error":"no user named `bob`"}
//! → {"op":"reload"}
//! ← {"ok":true,"message":"configuration reloaded\nwarning: tokens.access_ttl changed: …"}
//! ```
//!
//! `{"op":"export","source_backend":"sled"}` is the one request answered by more than a
//! line: `{"ok":true}` and then the export file ([`export_file`]), until the socket closes.
//!
//! Requests may carry a password (`add`, `passwd`) or password hashes (`import`): they
//! are never logged, and `Debug` is not derived for them. Replies to `client_add` / `client_rotate` carry the new client
//! secret (the one time it is shown, SPEC §1); `Reply`'s `Debug` leaves it out.
//!
//! ```text
//! → {"op":"client_add","name":"ci-bot","roles":["deploy"]}
//! ← {"ok":true,"message":"client ci-bot added (id …)","secret":"…"}
//! ```

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use std::sync::Arc;

use crate::accounts::{
    canonical_username, AccountError, ClientSummary, Directory, LoginThrottle, NewClientSecret,
    UserSummary,
};

/// Reloads the running gateway's configuration (the same function SIGHUP calls, handed
/// down by the layer that owns reload): the warnings about changed restart-only keys, or
/// why the new configuration was refused.
pub type ReloadFn = Arc<dyn Fn() -> Result<Vec<String>, String> + Send + Sync>;

/// What admin commands act on: the users, the login regulator whose lockouts `unlock`
/// ends (the CLI's own handle on a sled store has none: lockouts live in a running
/// gateway's memory; on a store that shares its counters it is the shared one), and the
/// running gateway's reload (none without a running gateway).
pub struct AdminTarget {
    pub directory: Arc<Directory>,
    pub throttle: Arc<dyn LoginThrottle>,
    pub reload: Option<ReloadFn>,
}

/// One administrative command.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Add {
        username: String,
        roles: Vec<String>,
        password: Zeroizing<String>,
    },
    Passwd {
        username: String,
        password: Zeroizing<String>,
    },
    Disable {
        username: String,
    },
    Enable {
        username: String,
    },
    Roles {
        username: String,
        roles: Vec<String>,
    },
    Remove {
        username: String,
    },
    Unlock {
        username: String,
    },
    List,
    /// `gatehouse user import`: the whole file (JSON Lines, it holds password hashes),
    /// checked and applied by the side holding the store.
    Import {
        file: Zeroizing<String>,
    },
    /// `gatehouse client add`: a service client with a new secret (in the reply).
    ClientAdd {
        name: String,
        roles: Vec<String>,
    },
    /// `gatehouse client list`.
    ClientList,
    /// `gatehouse client remove`: its secret and tokens stop working.
    ClientRemove {
        name: String,
    },
    /// `gatehouse client rotate`: a new secret (in the reply); the old one and every
    /// earlier token stop working.
    ClientRotate {
        name: String,
    },
    /// `gatehouse reload`: re-read `gateway.toml` as SIGHUP does.
    Reload,
    /// `gatehouse store export` while a gateway holds the store: the reply line is
    /// followed by the whole export file (see [`export_file`]), not by more JSON. The CLI
    /// names the backend for the header (it read the same config).
    Export {
        source_backend: String,
    },
}

impl Request {
    /// The command's name, for logs (never its arguments).
    pub fn op(&self) -> &'static str {
        match self {
            Request::Add { .. } => "add",
            Request::Passwd { .. } => "passwd",
            Request::Disable { .. } => "disable",
            Request::Enable { .. } => "enable",
            Request::Roles { .. } => "roles",
            Request::Remove { .. } => "remove",
            Request::Unlock { .. } => "unlock",
            Request::List => "list",
            Request::Import { .. } => "import",
            Request::ClientAdd { .. } => "client_add",
            Request::ClientList => "client_list",
            Request::ClientRemove { .. } => "client_remove",
            Request::ClientRotate { .. } => "client_rotate",
            Request::Reload => "reload",
            Request::Export { .. } => "export",
        }
    }

    /// The user or client name the command changes, as given, for the log line (`None`
    /// for the lists and `reload`). A username is not a secret; the password never leaves the request.
    pub fn username(&self) -> Option<&str> {
        match self {
            Request::Add { username, .. }
            | Request::Passwd { username, .. }
            | Request::Disable { username }
            | Request::Enable { username }
            | Request::Roles { username, .. }
            | Request::Remove { username }
            | Request::Unlock { username } => Some(username),
            Request::ClientAdd { name, .. }
            | Request::ClientRemove { name }
            | Request::ClientRotate { name } => Some(name),
            Request::List
            | Request::Import { .. }
            | Request::ClientList
            | Request::Reload
            | Request::Export { .. } => None,
        }
    }
}

/// The answer to a [`Request`].
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reply {
    pub ok: bool,
    /// What was done (success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What went wrong (failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `list` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<UserSummary>>,
    /// `client_list` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<Vec<ClientSummary>>,
    /// `client_add` / `client_rotate` only: the new secret, shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("ok", &self.ok)
            .field("message", &self.message)
            .field("error", &self.error)
            .field("users", &self.users)
            .field("clients", &self.clients)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Reply {
    /// A bare success (what precedes an export file).
    pub fn ok() -> Self {
        Reply {
            ok: true,
            message: None,
            error: None,
            users: None,
            clients: None,
            secret: None,
        }
    }

    /// A success with a message for the operator.
    pub fn done(message: String) -> Self {
        Reply {
            ok: true,
            message: Some(message),
            error: None,
            users: None,
            clients: None,
            secret: None,
        }
    }

    /// A failure with a message for the operator.
    pub fn failed(error: impl Into<String>) -> Self {
        Reply {
            ok: false,
            message: None,
            error: Some(error.into()),
            users: None,
            clients: None,
            secret: None,
        }
    }
}

fn describe(err: AccountError) -> String {
    match err {
        AccountError::UsernameTaken => {
            "a user or service client with that name exists already (users and clients share one namespace; names compare case-insensitively)".into()
        }
        other => other.to_string(),
    }
}

/// Applies a request to the directory. Every change is durable before this returns.
pub async fn execute(target: &AdminTarget, request: &Request) -> Reply {
    let directory = &target.directory;
    let result = match request {
        Request::Add {
            username,
            roles,
            password,
        } => directory
            .add(username, roles.clone(), password.clone())
            .await
            .map(|user| format!("user {} added", user.username)),
        Request::Passwd { username, password } => directory
            .set_password(username, password.clone())
            .await
            .map(|()| format!("password of {username} changed; earlier tokens no longer work")),
        Request::Disable { username } => directory
            .set_enabled(username, false)
            .await
            .map(|()| format!("user {username} disabled; their tokens no longer work")),
        Request::Enable { username } => directory
            .set_enabled(username, true)
            .await
            .map(|()| format!("user {username} enabled")),
        Request::Roles { username, roles } => directory
            .set_roles(username, roles.clone())
            .await
            .map(|roles| {
                if roles.is_empty() {
                    format!("user {username} has no roles now")
                } else {
                    format!("roles of {username}: {}", roles.join(", "))
                }
            }),
        Request::Remove { username } => directory
            .remove(username)
            .await
            .map(|()| format!("user {username} removed")),
        Request::Import { file } => directory
            .import_users(file)
            .await
            .map(|count| format!("imported {count} user{}", if count == 1 { "" } else { "s" }))
            .map_err(|err| AccountError::Policy(format!("{err}; nothing was imported"))),
        Request::Unlock { username } => match canonical_username(username) {
            Some(canonical) => target.throttle.unlock(&canonical).await.map(|forgotten| {
                tracing::info!(username = %canonical, "login lockout cleared by an operator");
                if forgotten {
                    format!("login failures and lockout of {username} cleared")
                } else {
                    format!("{username} had no login failures to clear")
                }
            }),
            None => Err(AccountError::Policy(format!(
                "`{username}` is not a valid username"
            ))),
        },
        Request::Reload => {
            return match &target.reload {
                // Reading and compiling the file blocks: off the async workers.
                Some(reload) => {
                    let reload = reload.clone();
                    match tokio::task::spawn_blocking(move || reload()).await {
                        Ok(Ok(warnings)) => Reply::done(
                            std::iter::once("configuration reloaded".to_string())
                                .chain(warnings.into_iter().map(|w| format!("warning: {w}")))
                                .collect::<Vec<_>>()
                                .join("\n"),
                        ),
                        Ok(Err(err)) => Reply::failed(format!(
                            "the new configuration was refused; the running one stays: {err}"
                        )),
                        Err(err) => Reply::failed(format!("the reload failed: {err}")),
                    }
                }
                None => Reply::failed("no gateway is running on this store"),
            };
        }
        Request::Export { .. } => {
            // Answered as a stream by the socket (`export_file`), never as one reply.
            return Reply::failed("store export is answered by the admin socket as a stream");
        }
        Request::ClientAdd { name, roles } => {
            return secret_reply(directory.add_client(name, roles.clone()).await, |c| {
                format!("client {} added (id {})", c.name, c.id)
            })
        }
        Request::ClientRotate { name } => {
            return secret_reply(directory.rotate_client(name).await, |c| {
                format!(
                    "client {} (id {}) has a new secret; the old one and every token issued before no longer work",
                    c.name, c.id
                )
            })
        }
        Request::ClientRemove { name } => directory
            .remove_client(name)
            .await
            .map(|()| format!("client {name} removed; its tokens no longer work")),
        Request::ClientList => {
            return match directory.list_clients().await {
                Ok(clients) => Reply {
                    clients: Some(clients),
                    ..Reply::ok()
                },
                Err(err) => Reply::failed(describe(err)),
            }
        }
        Request::List => {
            return match directory.list().await {
                Ok(users) => Reply {
                    users: Some(users),
                    ..Reply::ok()
                },
                Err(err) => Reply::failed(describe(err)),
            }
        }
    };
    match result {
        Ok(message) => Reply::done(message),
        Err(err) => Reply::failed(describe(err)),
    }
}

/// The reply to `client_add` / `client_rotate`: a confirmation naming the client's id,
/// and the secret.
fn secret_reply(
    result: Result<NewClientSecret, AccountError>,
    message: impl FnOnce(&ClientSummary) -> String,
) -> Reply {
    match result {
        Ok(NewClientSecret { client, secret }) => Reply {
            secret: Some(secret),
            ..Reply::done(message(&client))
        },
        Err(err) => Reply::failed(describe(err)),
    }
}

/// The whole store as an export file (`gatehouse store export` through a running
/// gateway): one consistent snapshot ([`crate::store::Store::export`]) in the JSON Lines
/// format of [`crate::store::snapshot`]. Held in memory while it is sent; it carries
/// password hashes and the generated secret, so the buffer is wiped when dropped.
pub async fn export_file(
    target: &AdminTarget,
    source_backend: &str,
) -> Result<Zeroizing<Vec<u8>>, String> {
    let snapshot = target
        .directory
        .store()
        .export()
        .await
        .map_err(|err| format!("cannot read the store: {err}"))?;
    let mut out = Zeroizing::new(Vec::new());
    crate::store::snapshot::write(
        &mut *out,
        &crate::store::snapshot::Header::now(source_backend),
        &snapshot,
    )
    .map_err(|err| format!("cannot write the export: {err}"))?;
    Ok(out)
}
