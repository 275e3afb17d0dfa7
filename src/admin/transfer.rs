//! `gatehouse store export` / `store import FILE` (SPEC §1, §8 "Moving"): backup, restore
//! and the move from sled to PostgreSQL, in the file format of [`crate::store::snapshot`].
//!
//! Export works whether or not a gateway runs: it asks the running gateway over the
//! admin socket first (a serving sled gateway holds the store's lock; the gateway reads
//! one consistent snapshot and sends the file), else opens the store itself. Either way
//! the file is checked complete before a byte reaches stdout, and stderr carries a
//! warning to guard it (it holds password hashes and, when the store keeps one, the
//! generated signing secret) — never the secret itself.
//!
//! Import reads and checks the whole file first (a bad line is reported with its number
//! and nothing is touched), then opens the store itself and loads it in one transaction
//! ([`crate::store::Store::import`]), which refuses a store holding any record. It does
//! not go through a running gateway: a sled gateway holds the store, and the import is
//! refused with "stop the gateway first" — a serving gateway's store is in use, and an
//! empty one gains a generated secret at start anyway. (With PostgreSQL the CLI writes to
//! the database directly; replicas already running reload in full when they see it.)

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::protocol::Request;
use super::{socket, StoreCommand, LOCKED_RETRY};
use crate::config::{Config, StoreBackend};
use crate::store::snapshot::{self, Header};
use crate::store::{Conflict, OpenError, Store, StoreError};

/// Runs a `store` subcommand.
pub fn run_store(config: &Config, command: StoreCommand) -> Result<(), String> {
    match command {
        StoreCommand::Export => export(config),
        StoreCommand::Import { file } => import(config, &file),
    }
}

fn backend_name(config: &Config) -> &'static str {
    match config.store.backend {
        StoreBackend::Sled => "sled",
        StoreBackend::Postgres => "postgres",
    }
}

/// Where the store is, for messages (never a connection string).
fn describe(config: &Config) -> String {
    match config.store.backend {
        StoreBackend::Sled => format!("the store at {}", config.store.path.display()),
        StoreBackend::Postgres => "the PostgreSQL store".to_string(),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start the runtime: {err}"))
}

fn export(config: &Config) -> Result<(), String> {
    let request = Request::Export {
        source_backend: backend_name(config).to_string(),
    };
    let socket = socket::socket_path(&config.store.path);
    if config.store.backend == StoreBackend::Sled && !config.store.path.is_dir() {
        return Err(format!(
            "store.path: there is no store at {} (nothing to export)",
            config.store.path.display()
        ));
    }
    let runtime = runtime()?;
    let deadline = Instant::now() + LOCKED_RETRY;
    let file = loop {
        if let Some(file) = socket::export(&socket, &request)? {
            break file;
        }
        match runtime.block_on(crate::store::open(&config.store)) {
            Ok(store) => break runtime.block_on(export_directly(config, store))?,
            Err(OpenError::Locked(message)) if Instant::now() >= deadline => {
                return Err(format!(
                    "{message}; another process holds the store and no gateway answers on {}",
                    socket.display()
                ))
            }
            // A gateway starting: its socket answers in a moment.
            Err(OpenError::Locked(_)) => std::thread::sleep(Duration::from_millis(100)),
            Err(
                err @ (OpenError::Failed(_) | OpenError::Unavailable(_) | OpenError::Database(_)),
            ) => return Err(err.to_string()),
        }
    };
    // Complete and well-formed before anything reaches stdout.
    let (_, snapshot) = snapshot::read(file.as_slice())
        .map_err(|err| format!("the export came out incomplete ({err}); nothing was written"))?;
    let mut out = std::io::stdout().lock();
    out.write_all(&file)
        .and_then(|()| out.flush())
        .map_err(|err| format!("cannot write the export to stdout: {err}"))?;
    eprintln!("exported {}: {}", describe(config), snapshot.summary());
    let holds = if snapshot.secret.is_some() {
        "password hashes and the generated signing secret (anyone holding it can sign tokens)"
    } else {
        "password hashes"
    };
    eprintln!(
        "warning: the export holds {holds}: guard it like the secret (mode 0600, encrypted at rest, never in a ticket or a chat)"
    );
    Ok(())
}

async fn export_directly(
    config: &Config,
    store: Arc<dyn Store>,
) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
    let snapshot = store
        .export()
        .await
        .map_err(|err| format!("cannot read {}: {err}", describe(config)))?;
    let mut file = zeroize::Zeroizing::new(Vec::new());
    snapshot::write(&mut *file, &Header::now(backend_name(config)), &snapshot)
        .map_err(|err| format!("cannot write the export: {err}"))?;
    Ok(file)
}

fn import(config: &Config, file: &Path) -> Result<(), String> {
    let name = file.display();
    let read = if file == Path::new("-") {
        snapshot::read(std::io::stdin().lock())
    } else {
        let opened =
            std::fs::File::open(file).map_err(|err| format!("cannot open {name}: {err}"))?;
        snapshot::read(std::io::BufReader::new(opened))
    };
    let (header, snapshot) = read.map_err(|err| format!("{name}: {err}; nothing was imported"))?;
    let runtime = runtime()?;
    let store = match runtime.block_on(crate::store::open(&config.store)) {
        Ok(store) => store,
        Err(OpenError::Locked(_)) => {
            return Err(format!(
                "{} is held by a running gateway: stop it first (import loads only into an empty store that nothing serves); nothing was imported",
                describe(config)
            ))
        }
        Err(err) => return Err(format!("{err}; nothing was imported")),
    };
    runtime.block_on(async {
        match store.import(snapshot.clone()).await {
            Ok(_) => {}
            Err(StoreError::Conflict(Conflict::NotEmpty)) => {
                return Err(format!(
                    "{} is not empty: import loads only into an empty store (a new store.path, or a fresh database after `gatehouse migrate`); nothing was imported",
                    describe(config)
                ))
            }
            Err(err) => return Err(format!("{err}; nothing was imported")),
        }
        store
            .flush()
            .await
            .map_err(|err| format!("cannot flush the store: {err}"))
    })?;
    eprintln!(
        "imported into {}: {} (exported {} from {})",
        describe(config),
        snapshot.summary(),
        header.created,
        header.source_backend
    );
    Ok(())
}
