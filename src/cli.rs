//! The command line (SPEC §1): `serve` (the default), `check-config`, `explain` (a raw `#`
//! is refused as the gateway would; a lowercase standard method gets a note), `user …`,
//! `client …` (service clients),
//! `store export|import`, `keys generate|list` (SPEC §9 signing keys), `healthcheck`,
//! `reload`, `migrate` (the PostgreSQL schema), and
//! `completions SHELL` / `man`, generated from these clap
//! definitions (clap_complete, clap_mangen) so they never drift from the real options.
//! Exit codes: 0 ok, 1 error (stderr says what and where), 2 usage.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{CommandFactory as _, Parser, Subcommand};
use http::Method;

use crate::admin::{ClientCommand, StoreCommand, UserCommand};
use crate::app::App;
use crate::config::{self, access_label, Config};
use crate::routing::{is_under, normalized_path, Access, PathRejection};

#[derive(Debug, Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "An authentication gateway: login, JWT checks and route rules in front of HTTP services"
)]
struct Cli {
    /// Config file [default: $GATEHOUSE_CONFIG, else ./gateway.toml]
    #[arg(
        short,
        long,
        global = true,
        env = "GATEHOUSE_CONFIG",
        default_value = "gateway.toml",
        hide_default_value = true
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (the default)
    Serve,
    /// Validate the config and print the effective route table in match order
    CheckConfig,
    /// Show what the gateway would do with a request
    Explain {
        /// e.g. GET
        method: String,
        /// e.g. /admin/users?page=2
        path: String,
    },
    /// Manage users (works whether or not a gateway is serving the store)
    #[command(subcommand)]
    User(UserCommand),
    /// Manage service clients for the client-credentials grant (add and rotate print the
    /// secret once)
    #[command(subcommand)]
    Client(ClientCommand),
    /// Export the store as JSON Lines, or import such a file into an empty store
    #[command(subcommand)]
    Store(StoreCommand),
    /// Make a signing key file, or list the configured ones (SPEC §9)
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Exit 0 when the running gateway's /readyz answers 200 (for container HEALTHCHECK)
    Healthcheck {
        /// Readiness URL [default: http://<ops_listen>/readyz]
        #[arg(long)]
        url: Option<String>,
    },
    /// Print a shell completion script to stdout, e.g. `gatehouse completions bash`
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout, e.g. `gatehouse man > gatehouse.1`
    Man,
    /// Ask the running gateway to reload its config, as SIGHUP does (no `kill` needed)
    Reload,
    /// Create or upgrade the PostgreSQL schema (`serve` also does it at start)
    Migrate {
        /// Also forget the signing secret's fingerprint kept in the store (PostgreSQL or
        /// sled), so that the next gateway to start keeps its own: for a deliberate secret
        /// rotation, with every gateway stopped (one whose secret differs from the kept
        /// one, or that has none when a configured one was kept, refuses to start)
        #[arg(long)]
        reset_secret_fingerprint: bool,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Make a PKCS#8 PEM private key and print its kid. With --out the file is created
    /// with mode 0600 (never overwriting one) and the kid printed to stdout; without it the
    /// PEM goes to stdout and the kid to stderr
    Generate {
        /// The key's algorithm (tokens.algorithm)
        #[arg(long, value_parser = ["ES256", "EdDSA", "RS256"])]
        alg: String,
        /// Where to write the key [default: stdout]
        #[arg(long)]
        out: Option<PathBuf>,
        /// RSA modulus size (RS256 only)
        #[arg(long, default_value = "3072", value_parser = ["2048", "3072"])]
        bits: String,
    },
    /// Show each configured [[tokens.keys]] key: kid, alg, state, file
    List,
}

/// Parses the command line and runs it; returns the process exit code.
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() { 2 } else { 0 };
        }
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&cli.config),
        Command::CheckConfig => check_config(&cli.config),
        Command::Explain { method, path } => explain(&cli.config, &method, &path),
        Command::User(command) => {
            load(&cli.config).and_then(|config| crate::admin::run(&config, command))
        }
        Command::Client(command) => {
            load(&cli.config).and_then(|config| crate::admin::run_client(&config, command))
        }
        Command::Store(command) => {
            load(&cli.config).and_then(|config| crate::admin::run_store(&config, command))
        }
        Command::Keys(KeysCommand::Generate { alg, out, bits }) => {
            generate_key(&alg, out.as_deref(), &bits)
        }
        Command::Keys(KeysCommand::List) => load(&cli.config).and_then(|config| list_keys(&config)),
        Command::Healthcheck { url } => healthcheck(&cli.config, url.as_deref()),
        Command::Completions { shell } => completions(shell),
        Command::Man => man_page(),
        Command::Migrate {
            reset_secret_fingerprint,
        } => load(&cli.config).and_then(|config| migrate(&config, reset_secret_fingerprint)),
        Command::Reload => match load(&cli.config) {
            Ok(config) => crate::admin::reload(&config),
            Err(problems) => Err(format!(
                "{problems}\nno gateway was asked to reload it; a running one keeps its configuration"
            )),
        },
    };
    match result {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("gatehouse: {message}");
            1
        }
    }
}

/// `gatehouse migrate`: brings the PostgreSQL schema to this binary's version, under the
/// same advisory lock `serve` takes, so it is safe while replicas start. With
/// `reset_fingerprint`, then forgets the kept fingerprint of the signing secret (SPEC §8:
/// a deliberate rotation; see [`crate::accounts::check_secret_fingerprint`]). The sled
/// store has no schema, but keeps a fingerprint too: there, only the reset does anything.
fn migrate(config: &Config, reset_fingerprint: bool) -> Result<(), String> {
    use crate::store::postgres;
    if config.store.backend != config::StoreBackend::Postgres {
        if !reset_fingerprint {
            return Err(
                "store.backend is \"sled\": the embedded store has no schema to migrate (migrate is for backend = \"postgres\"; only --reset-secret-fingerprint applies to sled)"
                    .into(),
            );
        }
        return forget_sled_fingerprint(config);
    }
    let conn = config
        .store
        .postgres
        .connection_string()
        .map_err(|problem| format!("{}: {}", problem.path, problem.problem))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start the runtime: {err}"))?;
    let options = postgres::PostgresOptions::default();
    let migrated = runtime
        .block_on(postgres::migrate(&conn, &options))
        .map_err(|err| format!("store: {err}"))?;
    let database = postgres::redact(&conn);
    if migrated.from == migrated.to {
        println!(
            "{database}: the schema is at version {} already",
            migrated.to
        );
    } else {
        println!(
            "{database}: schema migrated from version {} to {}",
            migrated.from, migrated.to
        );
    }
    if reset_fingerprint {
        let forgotten = runtime.block_on(async {
            use crate::store::Store as _;
            let store = postgres::PostgresStore::connect(&conn, options)
                .map_err(|err| format!("store: {err}"))?;
            store
                .forget_secret_fingerprint()
                .await
                .map_err(|err| format!("store: {err}"))
        })?;
        if forgotten {
            println!(
                "{database}: the signing secret's fingerprint is forgotten; the next replica to start keeps its own"
            );
        } else {
            println!("{database}: no signing secret fingerprint was kept");
        }
    }
    Ok(())
}

/// `gatehouse migrate --reset-secret-fingerprint` on the sled store: the gateway must be
/// stopped (sled lets one process open it), which a rotation needs anyway.
fn forget_sled_fingerprint(config: &Config) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start the runtime: {err}"))?;
    let path = config.store.path.display().to_string();
    let forgotten = runtime.block_on(async {
        let store = crate::store::open(&config.store)
            .await
            .map_err(|err| match err {
                crate::store::OpenError::Locked(_) => format!(
                    "{err}\nstop the gateway first: a deliberate secret rotation restarts it with the new secret"
                ),
                err => err.to_string(),
            })?;
        let forgotten = store
            .forget_secret_fingerprint()
            .await
            .map_err(|err| format!("store: {err}"));
        store
            .flush()
            .await
            .map_err(|err| format!("store: {err}"))?;
        forgotten
    })?;
    if forgotten {
        println!(
            "{path}: the signing secret's fingerprint is forgotten; the next gateway to start keeps its own (tokens signed with the old secret stop working)"
        );
    } else {
        println!("{path}: no signing secret fingerprint was kept");
    }
    Ok(())
}

/// `gatehouse keys generate`: the key is made (and read back) by auth::keys; here it is
/// written out and the kid printed.
fn generate_key(alg: &str, out: Option<&Path>, bits: &str) -> Result<(), String> {
    use crate::auth::keys;
    let algorithm = match alg {
        "ES256" => jsonwebtoken::Algorithm::ES256,
        "EdDSA" => jsonwebtoken::Algorithm::EdDSA,
        _ => jsonwebtoken::Algorithm::RS256,
    };
    let bits = if bits == "2048" { 2048 } else { 3072 };
    let (pem, kid) = keys::generate(algorithm, bits)?;
    match out {
        Some(path) => {
            keys::files::write_private_key(path, &pem)?;
            println!("{kid}");
            eprintln!(
                "wrote a {alg} private key to {} (mode 0600); add it to [[tokens.keys]] with state = \"next\" (or \"active\" for the first key) and reload",
                path.display()
            );
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(pem.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|err| format!("cannot write the key to stdout: {err}"))?;
            eprintln!("kid: {kid}");
        }
    }
    Ok(())
}

/// `gatehouse keys list`: one line per `[[tokens.keys]]` entry, kid, alg, state, file; a
/// file that does not load is reported on stderr (and the exit code is 1) without hiding
/// the others.
fn list_keys(config: &Config) -> Result<(), String> {
    let settings = &config.tokens;
    if !crate::auth::keys::is_pair_algorithm(settings.algorithm) {
        println!(
            "tokens.algorithm is {:?}: tokens are signed with the shared secret; no key files",
            settings.algorithm
        );
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{:<43}  {:<5}  {:<7}  FILE", "KID", "ALG", "STATE");
    let mut failed = 0;
    for row in crate::auth::keys::files::describe(settings) {
        match row {
            Ok(entry) => {
                let file = entry
                    .file
                    .as_ref()
                    .map(|file| file.display().to_string())
                    .unwrap_or_default();
                let public = if entry.private { "" } else { " (public key)" };
                let _ = writeln!(
                    out,
                    "{:<43}  {:<5}  {:<7}  {file}{public}",
                    entry.kid,
                    format!("{:?}", entry.algorithm),
                    entry.state.as_str()
                );
            }
            Err(problem) => {
                failed += 1;
                eprintln!("gatehouse: {problem}");
            }
        }
    }
    if failed > 0 {
        return Err(format!(
            "{failed} key file{} could not be read",
            if failed == 1 { "" } else { "s" }
        ));
    }
    Ok(())
}

fn load(path: &Path) -> Result<Config, String> {
    config::load(path).map_err(|err| err.to_string())
}

/// The loader `serve`, `check-config` and reload share: it also refuses the secret and TLS
/// files that start would refuse.
fn load_checked(path: &Path) -> Result<Config, String> {
    crate::app::load_config(path).map_err(|err| err.to_string())
}

fn serve(path: &Path) -> Result<(), String> {
    let config = load_checked(path)?;
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    // Before the first thread (the log writer's) is spawned: a heap per worker thread.
    crate::memory::choose_heaps(cpus);
    let log = crate::telemetry::init(&config.log);
    let bind = |addr: SocketAddr, key: &str| {
        std::net::TcpListener::bind(addr)
            .map_err(|err| format!("{key}: cannot listen on {addr}: {err}"))
    };
    let listener = bind(config.server.listen, "server.listen")?;
    let ops_listener = bind(config.server.ops_listen, "server.ops_listen")?;
    let runtime =
        serving_runtime(cpus).map_err(|err| format!("cannot start the runtime: {err}"))?;
    runtime.block_on(async move {
        // Installed before the start, which may wait long for an unreachable database
        // (SPEC §8): a SIGTERM meanwhile stops cleanly, a SIGHUP does not kill.
        let mut signals = Signals::install()?;
        let start = App::start(path, config, listener, ops_listener, log);
        tokio::pin!(start);
        let handle = loop {
            tokio::select! {
                started = &mut start => break started?,
                received = signals.next() => match received? {
                    Received::Stop(name) => {
                        tracing::info!("{name} before serving started: stopping");
                        return Ok(());
                    }
                    Received::Reload => tracing::warn!(
                        "SIGHUP while starting: ignored (the configuration was read at start)"
                    ),
                },
            }
        };
        loop {
            match signals.next().await? {
                Received::Stop(name) => {
                    tracing::info!("{name}: draining");
                    break;
                }
                Received::Reload => {
                    if let Err(err) = handle.reload_on_blocking_pool().await.map(drop) {
                        tracing::error!(error = %err, "SIGHUP: the new configuration was refused; the running one stays");
                    }
                }
            }
        }
        handle.shutdown().await;
        Ok(())
    })
}

/// The runtime `serve` runs on, chosen from the CPUs this process may use (its CPU affinity
/// and cgroup quota, as [`std::thread::available_parallelism`] reads them): on one CPU a
/// single-threaded event loop, as an nginx worker is; on more, tokio's work-stealing
/// scheduler with a worker per CPU.
///
/// On one CPU the work-stealing scheduler has no other worker to share with, and it runs
/// the task a request has just woken (the upstream connection's, which writes the request
/// out) ahead of the connections already waiting. The gateway's writes to its peers then
/// come one at a time, and each is more likely to find the peer asleep: under load on one
/// core the client and the upstream were woken two to three times as often per request as
/// with the single-threaded loop, which queues a woken task behind the waiting ones
/// (benches/RESULTS.md, issue #17 fourth session).
fn serving_runtime(cpus: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().thread_name("gatehouse").build()
}

/// A signal `serve` acts on.
enum Received {
    /// SIGTERM or SIGINT (named): drain and exit.
    Stop(&'static str),
    /// SIGHUP: reload the configuration.
    Reload,
}

#[cfg(unix)]
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> Result<Self, String> {
        use tokio::signal::unix::{signal, SignalKind};
        let install = |kind: SignalKind| {
            signal(kind).map_err(|err| format!("cannot install signal handler: {err}"))
        };
        Ok(Signals {
            terminate: install(SignalKind::terminate())?,
            interrupt: install(SignalKind::interrupt())?,
            hangup: install(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> Result<Received, String> {
        Ok(tokio::select! {
            _ = self.terminate.recv() => Received::Stop("SIGTERM"),
            _ = self.interrupt.recv() => Received::Stop("SIGINT"),
            _ = self.hangup.recv() => Received::Reload,
        })
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> Result<Self, String> {
        Ok(Signals)
    }

    async fn next(&mut self) -> Result<Received, String> {
        tokio::signal::ctrl_c()
            .await
            .map(|()| Received::Stop("Ctrl-C"))
            .map_err(|err| err.to_string())
    }
}

fn check_config(path: &Path) -> Result<(), String> {
    let config = load_checked(path)?;
    let (table, warnings) = config.describe_routes();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}: ok", path.display());
    let _ = writeln!(out, "routes in match order:");
    let _ = write!(out, "{table}");
    for warning in warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    if crate::auth::keys::is_pair_algorithm(config.tokens.algorithm) {
        let _ = writeln!(out, "signing keys ({:?}):", config.tokens.algorithm);
        // The loader read every file already: each row is a key.
        for entry in crate::auth::keys::files::describe(&config.tokens)
            .into_iter()
            .flatten()
        {
            let file = entry.file.map(|file| file.display().to_string());
            let _ = writeln!(
                out,
                "  {:<7}  {}  {}",
                entry.state.as_str(),
                entry.kid,
                file.unwrap_or_default()
            );
        }
    }
    Ok(())
}

fn explain(path: &Path, method: &str, target: &str) -> Result<(), String> {
    let config = load(path)?;
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("`{method}` is not an HTTP method"))?;
    if let Some(standard) = case_mistaken_method(&method) {
        eprintln!(
            "note: methods are case-sensitive; `{method}` is not `{standard}` (routes listing {standard} do not match it)"
        );
    }
    let uri: http::Uri = target
        .parse()
        .map_err(|_| format!("`{target}` is not a request target: 400 invalid_request"))?;
    let mut out = std::io::stdout().lock();
    // http's URI parser silently drops a fragment; a request-target never has one (RFC 9112
    // §3.2), so a raw `#` is refused here before the parsed URI could hide it (SPEC §3.1).
    let normalized = match raw_hash(target).map_or_else(
        || normalized_path(&uri).map_err(|err| err.description().to_string()),
        Err,
    ) {
        Ok(normalized) => normalized,
        Err(why) => {
            let _ = writeln!(out, "request:    {method} {target}");
            let _ = writeln!(out, "path:       rejected: {why}");
            let _ = writeln!(out, "decision:   400 invalid_request (never forwarded)");
            return Ok(());
        }
    };
    let _ = writeln!(out, "request:    {method} {target}");
    let _ = writeln!(out, "path:       {normalized}");
    if is_under(&normalized, &config.server.auth_prefix) {
        let _ = writeln!(
            out,
            "route:      gatehouse endpoint (below auth_prefix {})",
            config.server.auth_prefix
        );
        let _ = writeln!(
            out,
            "decision:   served by gatehouse itself, never forwarded"
        );
        return Ok(());
    }
    // The route-level part of the access decision the gateway makes (no token here).
    let decided = config.routes.decide(&method, &normalized);
    let (access, roles) = (decided.access, decided.roles);
    match decided.matched {
        Some((index, route)) => {
            let _ = writeln!(
                out,
                "route:      routes[{index}] {}",
                route.pattern.as_str()
            );
        }
        None => {
            let _ = writeln!(
                out,
                "route:      none matches (default: {})",
                requirement(access, roles)
            );
        }
    }
    let decision = match access {
        Access::Deny => "403 forbidden for everyone, never forwarded".to_string(),
        Access::Public => {
            "public: forwarded without a token (a valid token still adds identity headers)"
                .to_string()
        }
        Access::Authenticated if roles.is_empty() => {
            "a valid bearer token is required, else 401".to_string()
        }
        Access::Authenticated => format!(
            "a valid bearer token is required (else 401) with one of the roles {} (else 403)",
            roles.join(", ")
        ),
    };
    let _ = writeln!(out, "access:     {}", access_label(access, roles));
    let _ = writeln!(out, "decision:   {decision}");
    if access != Access::Deny {
        let (upstream, authority) = config
            .upstream(decided.upstream)
            .map_or(("?", "?"), |u| (u.name.as_str(), u.authority.as_str()));
        let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "upstream:   {upstream} -> http://{authority}{normalized}{query}"
        );
    }
    Ok(())
}

/// What an access reads as when no route matches, in `explain`'s words.
fn requirement(access: Access, roles: &[String]) -> &'static str {
    match access {
        Access::Authenticated if roles.is_empty() => "a valid token is required",
        Access::Authenticated => "a valid token with one of the roles is required",
        Access::Public => "public",
        Access::Deny => "denied",
    }
}

/// Why a request-target holding a raw `#` is refused, or `None` when it holds none.
fn raw_hash(target: &str) -> Option<String> {
    let hash = target.find('#')?;
    let in_path = target.find('?').is_none_or(|query| hash < query);
    Some(if in_path {
        PathRejection::RawHash.to_string()
    } else {
        "query contains a raw '#' (a request-target never carries a fragment)".to_string()
    })
}

/// The standard method a not-all-uppercase method was probably meant to be (`get` →
/// `GET`); methods are case-sensitive (RFC 9110 §9.1), so `get` matches no `GET` route.
fn case_mistaken_method(method: &Method) -> Option<Method> {
    let text = method.as_str();
    if text.bytes().all(|b| !b.is_ascii_lowercase()) {
        return None;
    }
    let upper = Method::from_bytes(text.to_ascii_uppercase().as_bytes()).ok()?;
    [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::CONNECT,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ]
    .contains(&upper)
    .then_some(upper)
}

fn healthcheck(path: &Path, url: Option<&str>) -> Result<(), String> {
    let url = match url {
        Some(url) => url.to_string(),
        None => {
            let config = load(path)?;
            let mut addr = config.server.ops_listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(if addr.is_ipv4() {
                    std::net::Ipv4Addr::LOCALHOST.into()
                } else {
                    std::net::Ipv6Addr::LOCALHOST.into()
                });
            }
            format!("http://{addr}/readyz")
        }
    };
    let status = probe(&url, Duration::from_secs(5))?;
    if status == 200 {
        Ok(())
    } else {
        Err(format!("{url} answered {status}"))
    }
}

/// A minimal HTTP/1.1 GET that returns the status code.
fn probe(url: &str, timeout: Duration) -> Result<u16, String> {
    use std::io::Read as _;
    use std::net::ToSocketAddrs as _;
    let uri: http::Uri = url.parse().map_err(|_| format!("`{url}` is not a URL"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("`{url}`: only http:// URLs are supported"));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("`{url}` has no host"))?;
    let port = authority.port_u16().unwrap_or(80);
    let addr = (
        authority.host().trim_matches(|c| c == '[' || c == ']'),
        port,
    )
        .to_socket_addrs()
        .map_err(|err| format!("{url}: {err}"))?
        .next()
        .ok_or_else(|| format!("{url}: no address"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|err| format!("{url}: {err}"))?;
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|err| format!("{url}: {err}"))?;
    let mut head = [0u8; 64];
    let read = stream
        .read(&mut head)
        .map_err(|err| format!("{url}: {err}"))?;
    let line = String::from_utf8_lossy(&head[..read]);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{url}: not an HTTP response"))
}

/// `gatehouse completions SHELL`: the completion script for this command line.
fn completions(shell: clap_complete::Shell) -> Result<(), String> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "gatehouse", &mut script);
    write_stdout(&script)
}

/// `gatehouse man`: the roff man page for this command line.
fn man_page() -> Result<(), String> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|err| format!("cannot render the man page: {err}"))?;
    write_stdout(&page)
}

/// Writes generated text to stdout; a closed pipe (`gatehouse man | head`) is not an error.
fn write_stdout(bytes: &[u8]) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("cannot write to stdout: {err}"))
        }
        _ => Ok(()),
    }
}
