//! `gatehouse user …` and `gatehouse client …` (SPEC §1): user and service-client
//! administration that works the same whether or not a gateway is serving the store.
//!
//! Flow: the CLI turns the command into a [`protocol::Request`] (asking for the password
//! first, twice without echo or one line from stdin), then
//! 1. tries the running gateway's admin socket (`<store.path>/admin.sock`): the gateway
//!    applies the change to its store *and* its in-memory view before answering, so the
//!    next request already sees it;
//! 2. when no gateway answers, opens the store itself and applies the same request;
//! 3. if the store is locked (a gateway is starting and has not bound its socket yet),
//!    retries both for a few seconds.
//!
//! `gatehouse reload` takes the socket only: without a running gateway there is nothing
//! to reload. `gatehouse store export` / `import` live in [`transfer`].
//!
//! Exit codes: 0 done, 1 failed (message on stderr). Confirmations go to stderr too, so
//! stdout carries only `list` output and the secret `client add` / `client rotate` print
//! once (the one place gatehouse prints a secret).

mod command;
pub mod protocol;
pub mod socket;
mod transfer;

use std::io::{BufRead as _, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::accounts::{ClientSummary, Directory, UserSummary};
use crate::auth::password::PasswordHasher;
use crate::config::Config;
use crate::store::OpenError;
pub use command::{ClientCommand, StoreCommand, UserCommand};
use protocol::{Reply, Request};
pub use transfer::run_store;

/// How long the CLI keeps trying while a gateway holds the store but its socket is not
/// answering yet.
const LOCKED_RETRY: Duration = Duration::from_secs(5);

/// Runs a `user` subcommand.
pub fn run(config: &Config, command: UserCommand) -> Result<(), String> {
    let (request, json) = request_for(command)?;
    let reply = deliver(config, &request)?;
    if !reply.ok {
        return Err(reply
            .error
            .unwrap_or_else(|| "the command failed".to_string()));
    }
    if let Some(users) = &reply.users {
        print_users(users, json)?;
    }
    if let Some(message) = &reply.message {
        eprintln!("{message}");
    }
    Ok(())
}

/// Runs a `client` subcommand: like `user` commands, through the running gateway or on
/// the store directly. `add` and `rotate` print the new secret alone on stdout (once: only
/// its hash is kept), the confirmation with the client's id on stderr.
pub fn run_client(config: &Config, command: ClientCommand) -> Result<(), String> {
    let (request, json) = match command {
        ClientCommand::Add { name, roles } => (Request::ClientAdd { name, roles }, false),
        ClientCommand::List { json } => (Request::ClientList, json),
        ClientCommand::Remove { name } => (Request::ClientRemove { name }, false),
        ClientCommand::Rotate { name } => (Request::ClientRotate { name }, false),
    };
    let reply = deliver(config, &request)?;
    if !reply.ok {
        return Err(reply
            .error
            .unwrap_or_else(|| "the command failed".to_string()));
    }
    if let Some(clients) = &reply.clients {
        print_clients(clients, json)?;
    }
    if let Some(secret) = &reply.secret {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", secret.as_str())
            .and_then(|()| out.flush())
            .map_err(|err| format!("cannot print the secret: {err}"))?;
    }
    if let Some(message) = &reply.message {
        eprintln!("{message}");
    }
    if reply.secret.is_some() {
        eprintln!("the secret above is shown only this once: store it now (gatehouse keeps only its hash)");
    }
    Ok(())
}

/// `gatehouse reload` (SPEC §1): asks the gateway running on this store, over its admin
/// socket, to reload its config as SIGHUP does (no `kill` needed). Prints the warnings
/// about changed restart-only keys; the refusal's reasons are the error.
pub fn reload(config: &Config) -> Result<(), String> {
    let socket = socket::socket_path(&config.store.path);
    let reply = socket::connect(&socket, &Request::Reload)?.ok_or_else(|| {
        format!(
            "no gateway answers on {}; is one running with this config?",
            socket.display()
        )
    })?;
    if !reply.ok {
        return Err(reply
            .error
            .unwrap_or_else(|| "the reload was refused".to_string()));
    }
    if let Some(message) = &reply.message {
        eprintln!("{message}");
    }
    Ok(())
}

fn request_for(command: UserCommand) -> Result<(Request, bool), String> {
    let request = match command {
        UserCommand::Add {
            name,
            roles,
            password_stdin,
        } => Request::Add {
            password: read_password(&name, password_stdin)?,
            username: name,
            roles,
        },
        UserCommand::Passwd {
            name,
            password_stdin,
        } => Request::Passwd {
            password: read_password(&name, password_stdin)?,
            username: name,
        },
        UserCommand::Disable { name } => Request::Disable { username: name },
        UserCommand::Enable { name } => Request::Enable { username: name },
        UserCommand::Roles { name, roles } => Request::Roles {
            username: name,
            roles,
        },
        UserCommand::Remove { name } => Request::Remove { username: name },
        UserCommand::Unlock { name } => Request::Unlock { username: name },
        UserCommand::List { json } => return Ok((Request::List, json)),
    };
    Ok((request, false))
}

/// The new password: one line of stdin, or asked twice on the terminal without echo.
fn read_password(name: &str, from_stdin: bool) -> Result<Zeroizing<String>, String> {
    if from_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|err| format!("cannot read the password from stdin: {err}"))?;
        let password = line.trim_end_matches(['\n', '\r']);
        if password.is_empty() {
            return Err("no password on stdin (--password-stdin reads one line)".into());
        }
        return Ok(Zeroizing::new(password.to_string()));
    }
    let ask =
        |prompt: &str| {
            rpassword::prompt_password(prompt).map(Zeroizing::new).map_err(|err| {
            format!("cannot ask for the password without a terminal ({err}); use --password-stdin")
        })
        };
    let first = ask(&format!("New password for {name}: "))?;
    let second = ask("Repeat the password: ")?;
    if *first != *second {
        return Err("the two passwords differ; nothing was changed".into());
    }
    Ok(first)
}

/// Applies the request through the running gateway, else directly on the store.
fn deliver(config: &Config, request: &Request) -> Result<Reply, String> {
    let socket = socket::socket_path(&config.store.path);
    let deadline = Instant::now() + LOCKED_RETRY;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start the runtime: {err}"))?;
    loop {
        if let Some(reply) = socket::connect(&socket, request)? {
            return Ok(reply);
        }
        match runtime.block_on(open_directory(config)) {
            Ok(directory) => return runtime.block_on(apply_directly(config, directory, request)),
            Err(Opened::Locked(message)) if Instant::now() >= deadline => {
                return Err(format!(
                    "{message}; another process holds the store and no gateway answers on {}",
                    socket.display()
                ))
            }
            Err(Opened::Locked(_)) => std::thread::sleep(Duration::from_millis(100)),
            Err(Opened::Failed(message)) => return Err(message),
        }
    }
}

enum Opened {
    Locked(String),
    Failed(String),
}

async fn open_directory(config: &Config) -> Result<Directory, Opened> {
    let store = crate::store::open(&config.store)
        .await
        .map_err(|err| match err {
            OpenError::Locked(message) => Opened::Locked(message),
            OpenError::Failed(message) => Opened::Failed(message),
            err @ (OpenError::Unavailable(_) | OpenError::Database(_)) => {
                Opened::Failed(err.to_string())
            }
        })?;
    let hasher = PasswordHasher::new(config.passwords).map_err(Opened::Failed)?;
    let grace = crate::accounts::grace(config.tokens.access_ttl, config.tokens.leeway);
    Directory::open(store, Arc::new(hasher), grace)
        .await
        .map_err(|err| {
            Opened::Failed(format!(
                "cannot load the store at {}: {err}",
                config.store.path.display()
            ))
        })
}

async fn apply_directly(
    config: &Config,
    directory: Directory,
    request: &Request,
) -> Result<Reply, String> {
    let store = directory.store().clone();
    let shared = store.shares_login_counters();
    if let (Request::Unlock { username }, false) = (request, shared) {
        // sled: lockouts live in a running gateway's memory: with none running there is
        // none. (A store that shares its counters is unlocked in the store, below.)
        return Ok(match crate::accounts::canonical_username(username) {
            Some(_) => Reply::done(format!(
                "no gateway is running on this store, so {username} is not locked out (lockouts live in the running gateway's memory)"
            )),
            None => Reply::failed(format!("`{username}` is not a valid username")),
        });
    }
    let throttle: Arc<dyn crate::accounts::LoginThrottle> = if shared {
        crate::accounts::throttle::for_store(&store, config.login, None)
    } else {
        Arc::new(crate::accounts::Unthrottled)
    };
    let target = protocol::AdminTarget {
        directory: Arc::new(directory),
        throttle,
        reload: None,
    };
    let reply = protocol::execute(&target, request).await;
    target
        .directory
        .store()
        .flush()
        .await
        .map_err(|err| format!("cannot flush the store: {err}"))?;
    Ok(reply)
}

fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

fn print_clients(clients: &[ClientSummary], json: bool) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    let written = if json {
        let list: Vec<serde_json::Value> = clients
            .iter()
            .map(|client| {
                serde_json::json!({
                    "name": client.name,
                    "id": client.id,
                    "roles": client.roles,
                    "created": rfc3339(client.created),
                })
            })
            .collect();
        serde_json::to_string_pretty(&list)
            .map_err(std::io::Error::other)
            .and_then(|text| writeln!(out, "{text}"))
    } else {
        clients.iter().try_for_each(|client| {
            let roles = if client.roles.is_empty() {
                "-".to_string()
            } else {
                client.roles.join(",")
            };
            writeln!(
                out,
                "{} {} {} {}",
                client.name,
                client.id,
                roles,
                rfc3339(client.created)
            )
        })
    };
    written.map_err(|err| format!("cannot write the list: {err}"))
}

fn print_users(users: &[UserSummary], json: bool) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    let created = |user: &UserSummary| {
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(user.created))
            .to_string()
    };
    let written = if json {
        let list: Vec<serde_json::Value> = users
            .iter()
            .map(|user| {
                serde_json::json!({
                    "username": user.username,
                    "roles": user.roles,
                    "enabled": user.enabled,
                    "created": created(user),
                })
            })
            .collect();
        serde_json::to_string_pretty(&list)
            .map_err(std::io::Error::other)
            .and_then(|text| writeln!(out, "{text}"))
    } else {
        users.iter().try_for_each(|user| {
            let roles = if user.roles.is_empty() {
                "-".to_string()
            } else {
                user.roles.join(",")
            };
            let enabled = if user.enabled { "enabled" } else { "disabled" };
            writeln!(
                out,
                "{} {} {} {}",
                user.username,
                roles,
                enabled,
                created(user)
            )
        })
    };
    written.map_err(|err| format!("cannot write the list: {err}"))
}
