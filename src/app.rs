//! Assembles a running gateway from a `Config` and already-bound listeners; owns the one
//! config loader of `serve`, `check-config` and reload ([`load_config`]), reload (SIGHUP,
//! `gatehouse reload`, or a changed file with `server.watch_config`: swap one
//! `Arc<Snapshot>` and, when `[[tokens.keys]]` changed, the signing keys (each replica of a
//! PostgreSQL store reloads its own key files), name each changed restart-only key in a
//! WARN line, count it by result
//! in `gatehouse_config_reloads_total`), the start order (the ops listener first, not
//! ready; the store opened and the accounts loaded, waited for with backoff while the
//! database cannot be reached (SPEC §8); then serving, ready) and the shutdown order
//! (stop accepting, readiness 503, drain up to `shutdown_grace`, flush the store).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::accounts::{self, throttle, Accounts};
use crate::config::{self, Config, StoreBackend, TlsFiles};
use crate::gateway::{Gateway, Snapshot};
use crate::ops::OpsState;
use crate::server::tls::TlsAcceptorCell;
use crate::store::{self, Store};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::LogControl;

/// Entry point for embedding and tests.
pub struct App;

/// The one loader of `serve`, `check-config` and reload: [`config::load_with`] plus what
/// start would refuse about the files the config names (the signing secret's source and
/// length, the `[[tokens.keys]]` key files, the PostgreSQL connection string's source, the
/// TLS certificate and key), each problem with its key path.
pub fn load_config(path: &Path) -> Result<Config, config::ConfigError> {
    config::load_with(path, startup_problems)
}

fn startup_problems(config: &Config) -> Vec<config::Problem> {
    let mut problems = Vec::new();
    if let Err(problem) = crate::auth::secret::configured(&config.tokens) {
        problems.push(problem);
    }
    problems.extend(crate::auth::keys::check(&config.tokens));
    if config.store.backend == config::StoreBackend::Postgres {
        if let Err(problem) = config.store.postgres.connection_string() {
            problems.push(problem);
        }
    }
    if let Some(files) = &config.server.tls {
        if let Err(problem) = crate::server::tls::check(files) {
            problems.push(problem);
        }
    }
    problems
}

/// A running gateway.
pub struct AppHandle {
    /// Where the main listener listens.
    pub addr: SocketAddr,
    /// Where the ops listener listens.
    pub ops_addr: SocketAddr,
    reloader: Arc<Reloader>,
    gateway: Arc<Gateway>,
    ops: Arc<OpsState>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The ops listener outlives the drain (readiness answers 503 meanwhile); it stops
    /// when `shutdown` is dropped.
    ops_task: JoinHandle<()>,
}

impl App {
    /// Starts serving on the given listeners. `config_path` is what SIGHUP re-reads.
    ///
    /// The ops listener comes up first, not ready; then the store is opened and the
    /// accounts loaded. While the store cannot be reached (a database that is down) that
    /// is retried with backoff, not ready meanwhile (SPEC §8); any other failure ends the
    /// start at once. Serving starts, and readiness turns 200, once they are loaded.
    pub async fn start(
        config_path: &Path,
        config: Config,
        listener: std::net::TcpListener,
        ops_listener: std::net::TcpListener,
        log: LogControl,
    ) -> Result<AppHandle, String> {
        Self::start_over(config_path, config, listener, ops_listener, log, None).await
    }

    /// As [`App::start`], over a store opened by the caller instead of the one `[store]`
    /// names (tests: a store that can be made to fail). Staleness is tracked when the
    /// store says it is remote.
    #[doc(hidden)]
    pub async fn start_with_store(
        config_path: &Path,
        config: Config,
        listener: std::net::TcpListener,
        ops_listener: std::net::TcpListener,
        log: LogControl,
        store: Arc<dyn Store>,
    ) -> Result<AppHandle, String> {
        Self::start_over(
            config_path,
            config,
            listener,
            ops_listener,
            log,
            Some(store),
        )
        .await
    }

    async fn start_over(
        config_path: &Path,
        config: Config,
        listener: std::net::TcpListener,
        ops_listener: std::net::TcpListener,
        log: LogControl,
        store: Option<Arc<dyn Store>>,
    ) -> Result<AppHandle, String> {
        let to_tokio = |listener: std::net::TcpListener| {
            listener
                .set_nonblocking(true)
                .and_then(|()| TcpListener::from_std(listener))
                .map_err(|err| format!("cannot use listener: {err}"))
        };
        let listener = to_tokio(listener)?;
        let ops_listener = to_tokio(ops_listener)?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let ops_addr = ops_listener.local_addr().map_err(|e| e.to_string())?;
        let metrics = Arc::new(Metrics::new());
        metrics.config_loaded();
        let ops = Arc::new(OpsState::starting(metrics.clone()));
        let (shutdown, _) = watch::channel(false);
        // Up first: probes see 503 while the store is being opened (or waited for).
        let ops_task = tokio::spawn(crate::ops::run(
            ops_listener,
            ops.clone(),
            shutdown.subscribe(),
        ));
        let accounts = open_accounts(&config, store, ops_addr).await?;
        // Shared counters when the store keeps them (replicas), else this process's memory.
        let throttle = throttle::for_store(
            accounts.directory().store(),
            config.login,
            Some(metrics.clone()),
        );
        let accounts = Arc::new(accounts.with_throttle(throttle));
        let tls = match &config.server.tls {
            Some(files) => Some((TlsAcceptorCell::load(files)?, files.clone())),
            None => None,
        };
        let restart_only = config.restart_only();
        let (startup, reloadable) = config.into_parts();
        let snapshot = Snapshot::new(reloadable, &metrics)?;
        let gateway = Arc::new(Gateway {
            snapshot: ArcSwap::from_pointee(snapshot),
            accounts,
            metrics: metrics.clone(),
            auth_prefix: startup.server.auth_prefix.clone(),
            well_known: crate::endpoints::well_known::WellKnown::new(
                &startup.tokens.issuer,
                startup.tokens.algorithm,
                &startup.server.auth_prefix,
            ),
            openapi: crate::endpoints::openapi::published(
                &startup.server.auth_prefix,
                startup.passwords.min_length..=startup.passwords.max_length,
            ),
            upgrades: tokio_util::task::TaskTracker::new(),
        });
        let reloader = Arc::new(Reloader {
            config_path: config_path.to_path_buf(),
            gateway: gateway.clone(),
            tls: tls.clone(),
            log,
            restart_only,
        });
        let mut tasks = vec![
            tokio::spawn(crate::server::run(
                listener,
                gateway.clone(),
                startup.server.clone(),
                reloader.tls.as_ref().map(|(cell, _)| cell.clone()),
                shutdown.subscribe(),
            )),
            crate::admin::socket::start(
                &startup.store.path,
                crate::admin::protocol::AdminTarget {
                    directory: gateway.accounts.directory().clone(),
                    throttle: gateway.accounts.throttle().clone(),
                    reload: Some({
                        let reloader = reloader.clone();
                        Arc::new(move || reloader.reload())
                    }),
                },
                shutdown.subscribe(),
            )?,
            tokio::spawn(crate::accounts::maintain(
                gateway.accounts.clone(),
                shutdown.subscribe(),
            )),
            tokio::spawn(crate::accounts::watch_freshness(
                gateway.accounts.clone(),
                metrics,
                shutdown.subscribe(),
            )),
        ];
        if startup.server.watch_config {
            // The bytes to compare against are read now, before anything is served: read
            // inside the task, a change made before the task first ran would go unseen.
            let seen = std::fs::read(&reloader.config_path).ok();
            tasks.push(tokio::spawn(watch_config(
                reloader.clone(),
                seen,
                shutdown.subscribe(),
            )));
        }
        let ring = gateway.accounts.keys().keyring();
        if ring.signing().is_pair() {
            tracing::info!(algorithm = ?ring.signing().algorithm(), keys = %ring.describe(), "signing keys loaded");
        }
        ops.ready.store(true, Ordering::Release);
        let _ = ops.accounts.set(gateway.accounts.clone());
        // A str field: the text format quotes it (`runtime="2 worker threads"`).
        let runtime = runtime_description();
        let heaps = crate::memory::heaps().describe();
        tracing::info!(%addr, %ops_addr, https = tls.is_some(), runtime = runtime.as_str(), heaps = heaps.as_str(), "gatehouse serving");
        Ok(AppHandle {
            addr,
            ops_addr,
            reloader,
            gateway,
            ops,
            shutdown,
            tasks,
            ops_task,
        })
    }
}

/// The first wait between attempts to reach the store at start; it doubles up to
/// [`OPEN_RETRY_MAX`].
const OPEN_RETRY_FIRST: Duration = Duration::from_millis(100);
const OPEN_RETRY_MAX: Duration = Duration::from_secs(2);

/// Opens the store (unless `store` is given) and loads the accounts over it. While the
/// store cannot be reached this waits and tries again with backoff, logging the first
/// failure (WARN) and the success after it (INFO) once; any other failure (bad config,
/// a schema newer than this binary, a sled store held by another process) is returned
/// at once. Staleness is tracked for a remote store only: an embedded one is never stale.
/// The WARN line names `ops_addr`, where the probes already answer (503) meanwhile.
async fn open_accounts(
    config: &Config,
    mut store: Option<Arc<dyn Store>>,
    ops_addr: SocketAddr,
) -> Result<Accounts, String> {
    let mut delay = OPEN_RETRY_FIRST;
    let mut waited = false;
    loop {
        let attempt = async {
            let opened = match &store {
                Some(opened) => opened.clone(),
                None => {
                    let opened =
                        crate::store::open(&config.store)
                            .await
                            .map_err(|err| match err {
                                store::OpenError::Unavailable(_) => {
                                    accounts::OpenError::Unavailable(err.to_string())
                                }
                                other => accounts::OpenError::Failed(other.to_string()),
                            })?;
                    store = Some(opened.clone());
                    opened
                }
            };
            let remote = opened.is_remote() || config.store.backend == StoreBackend::Postgres;
            let accounts = Accounts::open(opened, config).await?;
            Ok::<_, accounts::OpenError>(
                accounts.with_max_stale(remote.then_some(config.store.max_stale)),
            )
        }
        .await;
        match attempt {
            Ok(accounts) => {
                if waited {
                    tracing::info!("the store answers: starting");
                }
                return Ok(accounts);
            }
            Err(accounts::OpenError::Unavailable(why)) => {
                if !waited {
                    tracing::warn!(error = %why, %ops_addr, "the store cannot be reached; waiting for it (not ready), retrying");
                    waited = true;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(OPEN_RETRY_MAX);
            }
            Err(accounts::OpenError::Failed(why)) => return Err(why),
        }
    }
}

/// What a reload needs: the config file, the gateway whose snapshot it swaps, the TLS
/// acceptor it re-reads, the log level it sets, and the restart-only values the gateway
/// started with (a changed one is named in a WARN line, never silently ignored).
struct Reloader {
    config_path: PathBuf,
    gateway: Arc<Gateway>,
    tls: Option<(TlsAcceptorCell, TlsFiles)>,
    log: LogControl,
    restart_only: Vec<(&'static str, String)>,
}

impl Reloader {
    /// [`Reloader::reload`] on tokio's blocking pool, for callers on the runtime (SIGHUP,
    /// `watch_config`): reading and compiling the file blocks, and on one CPU the event
    /// loop is the only thread serving requests.
    async fn reload_on_blocking_pool(self: Arc<Self>) -> Result<Vec<String>, String> {
        tokio::task::spawn_blocking(move || self.reload())
            .await
            .map_err(|err| format!("the reload did not finish: {err}"))?
    }

    /// [`Reloader::apply`], counted by result (SIGHUP and `gatehouse reload` alike).
    fn reload(&self) -> Result<Vec<String>, String> {
        let result = self.apply();
        self.gateway.metrics.config_reloaded(result.is_ok());
        result
    }

    fn apply(&self) -> Result<Vec<String>, String> {
        let config = load_config(&self.config_path).map_err(|err| err.to_string())?;
        let changed = config::changed_restart_only(&self.restart_only, &config.restart_only());
        let (startup, reloadable) = config.into_parts();
        let level = reloadable.log.level.clone();
        let snapshot = Snapshot::new(reloadable, &self.gateway.metrics)?;
        if let Some((cell, files)) = &self.tls {
            cell.reload(files)?;
        }
        // Last of the steps that can fail: a key that does not load keeps the running
        // keys (and, as every failure above, the running config).
        let keys = self.gateway.accounts.keys().reload(&startup.tokens)?;
        self.gateway.snapshot.store(Arc::new(snapshot));
        self.log.set_level(&level);
        if let Some(keys) = keys {
            tracing::info!(keys = %keys, "signing keys reloaded");
        }
        let warnings: Vec<String> = changed
            .into_iter()
            .map(|key| {
                let warning = format!("{key} changed: needs a restart; the running value stays");
                tracing::warn!(key, "{warning}");
                warning
            })
            .collect();
        tracing::info!(config = %self.config_path.display(), "configuration reloaded");
        Ok(warnings)
    }
}

/// How often `server.watch_config` reads the config file.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// `server.watch_config`: reads the config file every [`WATCH_INTERVAL`] and reloads, as
/// SIGHUP does, when its contents differ from the last seen (contents, not the mtime: a
/// Kubernetes ConfigMap update swaps a symlink, and an mtime can stay within its
/// granularity). A file that cannot be read (mid-replace) is no change; a refused file is
/// logged once, and the next change is tried again.
async fn watch_config(
    reloader: Arc<Reloader>,
    mut seen: Option<Vec<u8>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let path = reloader.config_path.clone();
    let mut interval = tokio::time::interval(WATCH_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        let Ok(now) = tokio::fs::read(&path).await else {
            continue;
        };
        if seen.as_ref() == Some(&now) {
            continue;
        }
        seen = Some(now);
        tracing::info!(config = %path.display(), "watch_config: the configuration file changed; reloading");
        if let Err(err) = reloader.clone().reload_on_blocking_pool().await {
            tracing::error!(error = %err, "watch_config: the new configuration was refused; the running one stays");
        }
    }
}

impl AppHandle {
    /// Re-reads the config file through the shared loader and swaps routes, upstreams,
    /// headers, log level and the JWKS `max_age`; the TLS certificate is re-read too. On any problem the
    /// running config stays (the error lists the problems). On success: one warning per
    /// changed restart-only key (also logged at WARN), whose running value stays.
    pub fn reload(&self) -> Result<Vec<String>, String> {
        self.reloader.reload()
    }

    /// [`Self::reload`] on tokio's blocking pool, for callers on the runtime (SIGHUP).
    pub async fn reload_on_blocking_pool(&self) -> Result<Vec<String>, String> {
        self.reloader.clone().reload_on_blocking_pool().await
    }

    /// Stops accepting, turns readiness to 503, lets in-flight requests finish within
    /// `shutdown_grace`, then flushes the store.
    pub async fn shutdown(self) {
        self.ops.ready.store(false, Ordering::Release);
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        if let Err(err) = self.gateway.accounts.flush().await {
            tracing::error!(error = %err, "could not flush the store");
        }
        drop(self.shutdown);
        let _ = self.ops_task.await;
        tracing::info!("gatehouse stopped");
    }
}

/// How the runtime serving this process schedules, for the "gatehouse serving" line: the
/// single-threaded loop `serve` picks on one CPU, or the number of worker threads.
fn runtime_description() -> String {
    let runtime = tokio::runtime::Handle::current();
    match runtime.runtime_flavor() {
        tokio::runtime::RuntimeFlavor::CurrentThread => "single-threaded".to_string(),
        _ => format!("{} worker threads", runtime.metrics().num_workers()),
    }
}
