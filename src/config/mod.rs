//! Configuration: `gateway.toml` read, checked and compiled once (SPEC §2).
//!
//! `serve`, `check-config`, `explain`, `user …` and SIGHUP all go through [`load`], so
//! what `check-config` accepts is exactly what the gateway will run; `serve`,
//! `check-config` and reload use [`load_with`] with the file checks of the layers above
//! (the secret's source and length, the signing key files, the TLS files), so they refuse
//! the same things. [`load`] also resolves relative file paths (`store.path`,
//! `tokens.secret_file`, `tokens.keys[].file`, `server.tls_cert`, `server.tls_key`) against
//! the directory holding the file, never the working directory.
//! The validated [`Config`] holds ready values (compiled routes, header names, durations,
//! absolute file paths): no request parses a config string. [`Config::into_parts`] hands
//! the running gateway its [`Startup`] and [`Reloadable`] parts by value.

mod browser;
mod file;
mod problems;
mod units;
mod validate;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;
use jsonwebtoken::Algorithm;

use crate::routing::{Access, RouteTable, UNMATCHED};
pub use browser::BrowserSettings;
pub use problems::Problem;
pub use units::parse_duration;

/// A validated configuration.
#[derive(Debug)]
pub struct Config {
    pub server: ServerSettings,
    pub store: StoreSettings,
    pub tokens: TokenSettings,
    pub passwords: PasswordSettings,
    pub login: LoginSettings,
    pub registration: RegistrationSettings,
    pub headers: HeaderSettings,
    pub log: LogSettings,
    pub assertion: AssertionSettings,
    /// `[tokens.jwks]`: reloadable, unlike the rest of `[tokens]`.
    pub jwks: JwksSettings,
    /// `[browser]` (SPEC §10): reloadable.
    pub browser: BrowserSettings,
    /// `default` is always first.
    pub upstreams: Vec<UpstreamSettings>,
    pub routes: RouteTable,
}

/// What a running gateway reads once, at start: changing it needs a restart.
#[derive(Debug)]
pub struct Startup {
    pub server: ServerSettings,
    pub store: StoreSettings,
    pub tokens: TokenSettings,
    pub passwords: PasswordSettings,
    pub login: LoginSettings,
    pub registration: RegistrationSettings,
}

/// What SIGHUP swaps: routes, upstreams, headers, log level, the JWKS `max_age`, the
/// assertion settings, the browser settings. Handed over by value ([`Config::into_parts`]), so nothing is left
/// behind half-taken.
#[derive(Debug)]
pub struct Reloadable {
    /// `default` is always first.
    pub upstreams: Vec<UpstreamSettings>,
    pub routes: RouteTable,
    pub headers: HeaderSettings,
    pub log: LogSettings,
    pub assertion: AssertionSettings,
    pub jwks: JwksSettings,
    pub browser: BrowserSettings,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub tls: Option<TlsFiles>,
    pub ops_listen: SocketAddr,
    /// Without a trailing slash, e.g. `/auth`.
    pub auth_prefix: String,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
    /// Reload when the config file's contents change (polled every second).
    pub watch_config: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[store]` (SPEC §2, §8).
#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub backend: StoreBackend,
    /// The sled directory; for either backend also the directory of the admin socket.
    pub path: PathBuf,
    /// Where the PostgreSQL connection string comes from (read only with that backend).
    pub postgres: PostgresSettings,
    /// PostgreSQL: how long a replica may go without hearing from the database before
    /// protected routes answer 503 (SPEC §8).
    pub max_stale: Duration,
}

impl StoreSettings {
    /// The embedded store in `path`, other settings at their defaults (tests, tools).
    pub fn sled(path: impl Into<PathBuf>) -> Self {
        StoreSettings {
            backend: StoreBackend::Sled,
            path: path.into(),
            postgres: PostgresSettings::default(),
            max_stale: Duration::from_secs(10),
        }
    }
}

/// Which database holds the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreBackend {
    /// Embedded sled: one process.
    Sled,
    /// PostgreSQL: any number of replicas (SPEC §8).
    Postgres,
}

/// The PostgreSQL connection settings as configured. The connection string itself is
/// resolved at use ([`PostgresSettings::connection_string`]): the environment wins over
/// the file, the file over the inline value. `Debug` never shows the inline value (it
/// may carry a password).
#[derive(Clone)]
pub struct PostgresSettings {
    pub url: Option<zeroize::Zeroizing<String>>,
    pub url_file: Option<PathBuf>,
    pub pool_size: usize,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        PostgresSettings {
            url: None,
            url_file: None,
            pool_size: 16,
        }
    }
}

impl std::fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSettings")
            .field("url", &self.url.as_ref().map(|_| "<redacted>"))
            .field("url_file", &self.url_file)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// A SHA-256 hex digest of an optional secret value: lets [`Config::restart_only`]
/// compare a connection string without keeping it in the comparison list.
fn digest(value: Option<&str>) -> String {
    use sha2::Digest as _;
    match value {
        Some(value) => {
            sha2::Sha256::digest(value.as_bytes())
                .iter()
                .fold(String::new(), |mut out, byte| {
                    let _ = write!(out, "{byte:02x}");
                    out
                })
        }
        None => "-".into(),
    }
}

/// The environment variable that carries the PostgreSQL connection string (first of the
/// three sources, SPEC §8).
pub const STORE_URL_ENV: &str = "GATEHOUSE_STORE_URL";

impl PostgresSettings {
    /// The connection string: `GATEHOUSE_STORE_URL`, else `url_file` (one trailing
    /// newline removed), else `url`. The error names the key and never the value.
    pub fn connection_string(&self) -> Result<zeroize::Zeroizing<String>, Problem> {
        let problem = |path: &str, text: String| Problem {
            path: path.to_string(),
            problem: text,
        };
        if let Some(value) = std::env::var_os(STORE_URL_ENV) {
            let value = value
                .into_string()
                .map_err(|_| problem("store.url", format!("{STORE_URL_ENV} is not valid UTF-8")))?;
            if value.trim().is_empty() {
                return Err(problem("store.url", format!("{STORE_URL_ENV} is empty")));
            }
            return Ok(zeroize::Zeroizing::new(value));
        }
        if let Some(file) = &self.url_file {
            let bytes = zeroize::Zeroizing::new(std::fs::read(file).map_err(|err| {
                problem(
                    "store.url_file",
                    format!("cannot read {}: {err}", file.display()),
                )
            })?);
            let text = std::str::from_utf8(&bytes).map_err(|_| {
                problem(
                    "store.url_file",
                    format!("{} is not valid UTF-8", file.display()),
                )
            })?;
            let text = text.strip_suffix('\n').unwrap_or(text);
            let text = text.strip_suffix('\r').unwrap_or(text);
            if text.trim().is_empty() {
                return Err(problem(
                    "store.url_file",
                    format!("{} is empty", file.display()),
                ));
            }
            return Ok(zeroize::Zeroizing::new(text.to_string()));
        }
        match &self.url {
            Some(url) => Ok(url.clone()),
            None => Err(problem(
                "store.url",
                format!(
                    "backend = \"postgres\" needs a connection string: set {STORE_URL_ENV}, store.url_file or store.url"
                ),
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
    pub algorithm: Algorithm,
    pub secret_file: Option<PathBuf>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub leeway: Duration,
    /// `[[tokens.keys]]` in file order (SPEC §9); empty with HS* algorithms.
    pub keys: Vec<KeyFileSettings>,
}

/// One `[[tokens.keys]]` entry: a key file and its place in the rotation (SPEC §9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFileSettings {
    /// Absolute once loaded (relative to the config file's directory).
    pub file: PathBuf,
    pub state: KeyState,
}

/// Where a key is in its rotation (SPEC §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyState {
    /// Published in the JWKS, verifies, does not sign yet.
    Next,
    /// Signs (exactly one), published, verifies.
    Active,
    /// Published and verifies; no longer signs. May be a public key alone.
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
        }
    }
}

/// `[tokens.jwks]` (SPEC §9): how the public keys are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksSettings {
    /// `Cache-Control: public, max-age=…` (whole seconds) of the JWKS and discovery
    /// documents: how long a verifier may go without refetching the keys, so how long a
    /// `next` key must be published before it becomes `active`.
    pub max_age: Duration,
}

impl Default for JwksSettings {
    fn default() -> Self {
        JwksSettings {
            max_age: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordSettings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub min_length: usize,
    pub max_length: usize,
}

#[derive(Debug, Clone, Copy)]
pub struct LoginSettings {
    /// Failures allowed per canonical username within `window`.
    pub max_failures: u32,
    /// Failures allowed per client address within `window` (also the registrations one
    /// address may make per `window`).
    pub max_failures_per_address: u32,
    pub window: Duration,
    pub lockout: Duration,
}

#[derive(Debug, Clone)]
pub struct RegistrationSettings {
    pub enabled: bool,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct HeaderSettings {
    pub user: HeaderName,
    pub subject: HeaderName,
    pub roles: HeaderName,
    pub forward_authorization: bool,
    pub trusted_proxies: Vec<IpNet>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    pub name: String,
    /// `host:port` of the `http://` URL.
    pub authority: String,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// `aud` of the assertions this upstream receives (SPEC §9): as configured, else the
    /// URL's origin (RFC 6454 §6.2: `http://host`, `:port` unless 80).
    pub assertion_audience: String,
}

/// `[assertion]` (SPEC §9): the signed identity upstreams may verify. Validation
/// guarantees `enabled` only with a key-pair `tokens.algorithm`, a `header` that is
/// neither reserved nor an identity header, and a `ttl` of whole seconds.
#[derive(Debug, Clone)]
pub struct AssertionSettings {
    pub enabled: bool,
    /// Stamped on forwarded requests with an identity; stripped from every client request.
    pub header: HeaderName,
    /// Lifetime of one assertion (`exp` = `iat` + `ttl`), whole seconds.
    pub ttl: Duration,
}

impl Default for AssertionSettings {
    /// SPEC §9's defaults: off, `X-Gatehouse-Assertion`, `60s`.
    fn default() -> Self {
        AssertionSettings {
            enabled: false,
            header: HeaderName::from_static("x-gatehouse-assertion"),
            ttl: Duration::from_secs(60),
        }
    }
}

/// A config that could not be loaded: every problem found, each with its key path.
#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.problems.len();
        write!(
            f,
            "{}: {count} problem{}",
            self.file.display(),
            if count == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Reads and validates a config file; relative file paths in it are resolved against the
/// directory that holds it (SPEC §2), whatever the working directory. The files it names
/// are not opened: [`load_with`] runs such checks.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with(path, |_| Vec::new())
}

/// [`load`], then `files` on the resolved config: the checks that need more than the text
/// (reading the secret and TLS files). The problems of both are reported together. The
/// running gateway's loader (`serve`, `check-config`, reload) passes the checks that live
/// in the layers above this one.
pub fn load_with(
    path: &Path,
    files: impl FnOnce(&Config) -> Vec<Problem>,
) -> Result<Config, ConfigError> {
    let fail = |problems: Vec<Problem>| ConfigError {
        file: path.to_path_buf(),
        problems,
    };
    let text = std::fs::read_to_string(path).map_err(|err| {
        fail(vec![Problem {
            path: String::new(),
            problem: format!("cannot read the config file: {err}"),
        }])
    })?;
    let (config, mut problems) = compile(&text);
    let Some(mut config) = config else {
        return Err(fail(problems));
    };
    config.resolve_paths(&config_dir(path));
    problems.extend(files(&config));
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(fail(problems))
    }
}

/// The absolute directory holding a config file (`gateway.toml` alone: the working
/// directory).
fn config_dir(config_file: &Path) -> PathBuf {
    let dir = config_file
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// Validates config text and resolves its relative file paths against `base` (what
/// [`load`] does with the file's directory).
pub fn parse_relative_to(text: &str, base: &Path) -> Result<Config, Vec<Problem>> {
    let mut config = parse(text)?;
    config.resolve_paths(base);
    Ok(config)
}

/// Validates config text; file paths stay as written (relative ones are left to the
/// working directory: [`load`] and [`parse_relative_to`] resolve them).
pub fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    match compile(text) {
        (Some(config), problems) if problems.is_empty() => Ok(config),
        (_, problems) => Err(problems),
    }
}

/// Every problem in the text, and the compiled config (with placeholders where values were
/// refused) unless the text could not be deserialized at all.
///
/// The TOML syntax is parsed by `toml` (a syntax error stops there, with its line). Then
/// the table is deserialized into the raw mirror with `serde_path_to_error` tracking the
/// key path; a value of the wrong type is reported at its path in plain words and removed
/// (its default applies), and deserializing runs again, so every type error in the file is
/// reported at once. Validation then adds the range and format problems.
fn compile(text: &str) -> (Option<Config>, Vec<Problem>) {
    let mut problems = problems::Problems::default();
    let mut table: toml::Table = match toml::from_str(text) {
        Ok(table) => table,
        Err(err) => {
            problems.push(
                String::new(),
                err.message().trim().to_string() + &location(text, &err),
            );
            return (None, problems.0);
        }
    };
    let mut mistyped: Vec<String> = Vec::new();
    let mut unknown = Vec::new();
    let file = loop {
        unknown.clear();
        let mut track = serde_path_to_error::Track::new();
        let value = toml::Value::Table(table.clone());
        let mut note = |path: serde_ignored::Path<'_>| unknown.push(dotted(&path));
        let ignored = serde_ignored::Deserializer::new(value, &mut note);
        let result = <file::FileConfig as serde::Deserialize>::deserialize(
            serde_path_to_error::Deserializer::new(ignored, &mut track),
        );
        match result {
            Ok(file) => break file,
            Err(err) => {
                let path = track.path();
                let key = key_path(&path);
                problems.push(key.clone(), plain_words(err.message()));
                // Drop the value (its default applies) and try again; a path that
                // removes nothing cannot make progress, so stop there.
                if !remove(&mut table, &path) {
                    return (None, problems.0);
                }
                mistyped.push(key);
            }
        }
    };
    for key in unknown {
        problems.push(
            key,
            "unknown key; check its spelling and the table it is in",
        );
    }
    let mut checks = problems::Problems::default();
    let config = validate::validate(file, &mut checks);
    // A removed value's default may fail validation (a required key): said once already.
    let said = |path: &str| {
        mistyped.iter().any(|key| {
            path == key
                || path
                    .strip_prefix(key.as_str())
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
        })
    };
    problems
        .0
        .extend(checks.0.into_iter().filter(|problem| !said(&problem.path)));
    (Some(config), problems.0)
}

/// `routes[2].methods` from serde_path_to_error's path.
fn key_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                let _ = write!(out, "[{index}]");
            }
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// Removes the value at `path` from the table: the last key on the path is removed from
/// the table holding it, so an element of a list takes the whole list with it (the
/// indices of other elements stay true). False when nothing could be removed.
fn remove(table: &mut toml::Table, path: &serde_path_to_error::Path) -> bool {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let Some(last_key) = segments
        .iter()
        .rposition(|segment| matches!(segment, Segment::Map { .. }))
    else {
        return false;
    };
    let mut current = table;
    for (position, segment) in segments.iter().enumerate() {
        let Segment::Map { key } = segment else {
            continue;
        };
        if position == last_key {
            return current.remove(key.as_str()).is_some();
        }
        // Down to the table the next key lives in, through list indices.
        let mut value = match current.get_mut(key.as_str()) {
            Some(value) => value,
            None => return false,
        };
        for next in &segments[position + 1..] {
            match (next, value) {
                (Segment::Seq { index }, toml::Value::Array(items)) => {
                    match items.get_mut(*index) {
                        Some(item) => value = item,
                        None => return false,
                    }
                }
                (Segment::Seq { .. }, _) => return false,
                (_, other) => {
                    value = other;
                    break;
                }
            }
        }
        current = match value {
            toml::Value::Table(inner) => inner,
            _ => return false,
        };
    }
    false
}

/// A serde type error in an operator's words: `invalid type: string "five", expected i64`
/// becomes `expected a whole number, found a string`.
fn plain_words(message: &str) -> String {
    let Some(rest) = message.trim().strip_prefix("invalid type: ") else {
        return message.trim().to_string();
    };
    let Some((found, expected)) = rest.rsplit_once(", expected ") else {
        return message.trim().to_string();
    };
    let found = match found.split_whitespace().next().unwrap_or_default() {
        "string" => "a string",
        "integer" => "a whole number",
        "floating" => "a decimal number",
        "boolean" => "true or false",
        "sequence" => "a list",
        "map" => "a table",
        _ => found,
    };
    let expected = match expected {
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "usize" | "isize" => {
            "a whole number"
        }
        "a boolean" => "true or false",
        "a sequence" => "a list",
        "a map" => "a table",
        other if other.starts_with("struct ") => "a table",
        other => other,
    };
    format!("expected {expected}, found {found}")
}

fn location(text: &str, err: &toml::de::Error) -> String {
    match err.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        }
        None => String::new(),
    }
}

/// `routes[2].acess` rather than serde_ignored's own rendering.
fn dotted(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", dotted(parent)),
        P::Map { parent, key } => {
            let parent = dotted(parent);
            if parent.is_empty() {
                key.to_string()
            } else {
                format!("{parent}.{key}")
            }
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            dotted(parent)
        }
    }
}

impl Config {
    /// Makes every relative file path absolute against `base`: `store.path`,
    /// `tokens.secret_file`, `tokens.keys[].file`, `server.tls_cert`, `server.tls_key`.
    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        };
        resolve(&mut self.store.path);
        if let Some(file) = &mut self.store.postgres.url_file {
            resolve(file);
        }
        if let Some(file) = &mut self.tokens.secret_file {
            resolve(file);
        }
        for key in &mut self.tokens.keys {
            resolve(&mut key.file);
        }
        if let Some(tls) = &mut self.server.tls {
            resolve(&mut tls.cert);
            resolve(&mut tls.key);
        }
    }

    /// Every key a running gateway reads only at start (SPEC §6: changing it needs a
    /// restart), with its value rendered for comparison only (never logged: no secret is
    /// among them, but the renderings are not meant for people). Reload compares the
    /// running list with the new file's and names each key that differs.
    pub fn restart_only(&self) -> Vec<(&'static str, String)> {
        let (s, t, p, l, r) = (
            &self.server,
            &self.tokens,
            &self.passwords,
            &self.login,
            &self.registration,
        );
        let tls = s.tls.as_ref();
        vec![
            ("server.listen", s.listen.to_string()),
            ("server.tls_cert", format!("{:?}", tls.map(|f| &f.cert))),
            ("server.tls_key", format!("{:?}", tls.map(|f| &f.key))),
            ("server.ops_listen", s.ops_listen.to_string()),
            ("server.auth_prefix", s.auth_prefix.clone()),
            ("server.header_timeout", format!("{:?}", s.header_timeout)),
            ("server.idle_timeout", format!("{:?}", s.idle_timeout)),
            ("server.max_connections", s.max_connections.to_string()),
            ("server.shutdown_grace", format!("{:?}", s.shutdown_grace)),
            ("server.watch_config", s.watch_config.to_string()),
            ("store.backend", format!("{:?}", self.store.backend)),
            ("store.path", format!("{:?}", self.store.path)),
            (
                "store.url",
                // Compared only, never shown: a digest, not the connection string.
                digest(self.store.postgres.url.as_deref().map(String::as_str)),
            ),
            (
                "store.url_file",
                format!("{:?}", self.store.postgres.url_file),
            ),
            ("store.pool_size", self.store.postgres.pool_size.to_string()),
            ("store.max_stale", format!("{:?}", self.store.max_stale)),
            ("tokens.issuer", t.issuer.clone()),
            ("tokens.audience", t.audience.clone()),
            ("tokens.algorithm", format!("{:?}", t.algorithm)),
            ("tokens.secret_file", format!("{:?}", t.secret_file)),
            ("tokens.access_ttl", format!("{:?}", t.access_ttl)),
            ("tokens.refresh_ttl", format!("{:?}", t.refresh_ttl)),
            ("tokens.leeway", format!("{:?}", t.leeway)),
            ("passwords.memory_kib", p.memory_kib.to_string()),
            ("passwords.iterations", p.iterations.to_string()),
            ("passwords.parallelism", p.parallelism.to_string()),
            ("passwords.min_length", p.min_length.to_string()),
            ("passwords.max_length", p.max_length.to_string()),
            ("login.max_failures", l.max_failures.to_string()),
            (
                "login.max_failures_per_address",
                l.max_failures_per_address.to_string(),
            ),
            ("login.window", format!("{:?}", l.window)),
            ("login.lockout", format!("{:?}", l.lockout)),
            ("registration.enabled", r.enabled.to_string()),
            ("registration.roles", format!("{:?}", r.roles)),
            ("log.format", format!("{:?}", self.log.format)),
        ]
    }

    /// Splits the config into what is read once at start and what SIGHUP swaps; start
    /// and reload both compile the running state from these. (`log.format` travels with
    /// the reloadable log level but is read at start only: see [`Config::restart_only`].)
    pub fn into_parts(self) -> (Startup, Reloadable) {
        let Config {
            server,
            store,
            tokens,
            passwords,
            login,
            registration,
            headers,
            log,
            assertion,
            jwks,
            browser,
            upstreams,
            routes,
        } = self;
        (
            Startup {
                server,
                store,
                tokens,
                passwords,
                login,
                registration,
            },
            Reloadable {
                upstreams,
                routes,
                headers,
                log,
                assertion,
                jwks,
                browser,
            },
        )
    }

    /// The route table in match order, as `check-config` prints it, with a warning for
    /// each route an earlier one shadows entirely.
    pub fn describe_routes(&self) -> (String, Vec<String>) {
        let mut out = String::new();
        let routes = self.routes.routes();
        for (index, route) in routes.iter().enumerate() {
            let methods = match &route.methods {
                None => "*".to_string(),
                Some(methods) => methods
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            };
            let _ = writeln!(
                out,
                "{index:>3}  {:<30} {:<12} {:<28} -> {}",
                route.pattern.as_str(),
                methods,
                access_label(route.access, &route.roles),
                route.upstream_name
            );
        }
        let _ = writeln!(
            out,
            "  -  {:<30} {:<12} {:<28} -> {}",
            "(anything else)",
            "*",
            access_label(UNMATCHED.access, &[]),
            UNMATCHED.upstream_name
        );
        let warnings = self
            .routes
            .shadowed()
            .into_iter()
            .map(|(later, earlier)| {
                format!(
                    "routes[{later}] ({}) can never match: routes[{earlier}] ({}) matches every request it would",
                    routes[later].pattern.as_str(),
                    routes[earlier].pattern.as_str()
                )
            })
            .collect();
        (out, warnings)
    }

    /// The upstream settings a route index points at.
    pub fn upstream(&self, index: usize) -> Option<&UpstreamSettings> {
        self.upstreams.get(index)
    }
}

/// How an access decision reads in route listings.
pub fn access_label(access: Access, roles: &[String]) -> String {
    match access {
        Access::Public => "public".into(),
        Access::Deny => "deny".into(),
        Access::Authenticated if roles.is_empty() => "authenticated".into(),
        Access::Authenticated => format!("authenticated roles={}", roles.join("|")),
    }
}

/// The restart-only keys whose value differs between the running config and a new one
/// (both from [`Config::restart_only`]), in the order of the list.
pub fn changed_restart_only(
    running: &[(&'static str, String)],
    new: &[(&'static str, String)],
) -> Vec<&'static str> {
    running
        .iter()
        .zip(new)
        .filter(|(old, new)| old != new)
        .map(|((key, _), _)| *key)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_restart_only_keys_are_named_and_reloadable_ones_are_not() {
        let running = parse(MINIMAL).expect("valid").restart_only();
        let text = format!(
            "{MINIMAL}[tokens]\naccess_ttl = \"5m\"\n[login]\nmax_failures = 9\n\
             [log]\nlevel = \"debug\"\nformat = \"json\"\n[[routes]]\npath = \"/x\"\n"
        );
        let new = parse(&text).expect("valid").restart_only();
        assert_eq!(
            changed_restart_only(&running, &new),
            ["tokens.access_ttl", "login.max_failures", "log.format"]
        );
    }

    const MINIMAL: &str = "[upstreams.default]\nurl = \"http://127.0.0.1:3000\"\n";

    #[test]
    fn the_store_section_takes_the_postgres_keys_and_checks_them() {
        let config = parse(MINIMAL).expect("valid");
        assert_eq!(config.store.backend, StoreBackend::Sled);
        assert_eq!(config.store.max_stale, Duration::from_secs(10));
        assert_eq!(config.store.postgres.pool_size, 16);
        let text = format!(
            "{MINIMAL}[store]\nbackend = \"postgres\"\nurl = \"postgres://u:hunter2@db/g\"\n\
             pool_size = 4\nmax_stale = \"3s\"\nurl_file = \"url\"\n"
        );
        let config = parse_relative_to(&text, Path::new("/etc/gatehouse")).expect("valid");
        assert_eq!(config.store.backend, StoreBackend::Postgres);
        assert_eq!(config.store.postgres.pool_size, 4);
        assert_eq!(config.store.max_stale, Duration::from_secs(3));
        assert_eq!(
            config.store.postgres.url_file.as_deref(),
            Some(Path::new("/etc/gatehouse/url"))
        );
        let shown = format!("{:?}", config.store);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!config
            .restart_only()
            .iter()
            .any(|(_, value)| value.contains("hunter2")));
        let bad =
            format!("{MINIMAL}[store]\nbackend = \"mysql\"\npool_size = 0\nmax_stale = \"0s\"\n");
        let paths: Vec<String> = parse(&bad)
            .expect_err("invalid")
            .into_iter()
            .map(|problem| problem.path)
            .collect();
        assert_eq!(
            paths,
            ["store.backend", "store.pool_size", "store.max_stale"]
        );
    }

    #[test]
    fn the_connection_string_comes_from_the_file_before_the_inline_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("url");
        std::fs::write(&file, "postgres://from-file\n").expect("write");
        let mut settings = PostgresSettings {
            url: Some(zeroize::Zeroizing::new("postgres://inline".into())),
            url_file: Some(file.clone()),
            pool_size: 1,
        };
        // The environment variable is not set in unit tests (nothing here sets it).
        if std::env::var_os(STORE_URL_ENV).is_none() {
            assert_eq!(
                settings.connection_string().expect("url").as_str(),
                "postgres://from-file"
            );
            settings.url_file = None;
            assert_eq!(
                settings.connection_string().expect("url").as_str(),
                "postgres://inline"
            );
            settings.url = None;
            let problem = settings.connection_string().expect_err("none");
            assert_eq!(problem.path, "store.url");
            settings.url_file = Some(dir.path().join("missing"));
            assert_eq!(
                settings.connection_string().expect_err("missing").path,
                "store.url_file"
            );
        }
    }

    #[test]
    fn minimal_config_takes_spec_defaults() {
        let config = parse(MINIMAL).expect("valid");
        assert_eq!(config.server.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(config.server.auth_prefix, "/auth");
        assert_eq!(config.tokens.access_ttl, Duration::from_secs(900));
        assert_eq!(config.tokens.refresh_ttl, Duration::from_secs(7 * 86_400));
        assert_eq!(config.passwords.memory_kib, 19_456);
        assert_eq!(config.headers.user.as_str(), "x-auth-user");
        assert_eq!(config.upstreams[0].authority, "127.0.0.1:3000");
    }

    #[test]
    fn every_problem_is_reported_with_its_key_path() {
        let text = r#"
[server]
listen = "nowhere"
header_timeout = "soon"
colour = "blue"

[upstreams.default]
url = "http://127.0.0.1:3000"

[[routes]]
path = "/a"

[[routes]]
path = "/b"

[[routes]]
path = "/c"
access = "maybe"
acess = "public"
"#;
        let problems = parse(text).unwrap_err();
        let rendered: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        let all = rendered.join("\n");
        assert!(all.contains("server.listen: "), "{all}");
        assert!(all.contains("server.header_timeout: "), "{all}");
        assert!(all.contains("server.colour: unknown key"), "{all}");
        assert!(all.contains("routes[2].acess: unknown key"), "{all}");
        assert!(
            all.contains("routes[2].access: `maybe`: expected one of authenticated, public, deny"),
            "{all}"
        );
        assert_eq!(problems.len(), 5, "{all}");
    }

    #[test]
    fn relative_file_paths_resolve_against_the_base_directory() {
        let text = format!(
            "{MINIMAL}[server]\ntls_cert = \"tls/cert.pem\"\ntls_key = \"/etc/key.pem\"\n\
             [store]\npath = \"data\"\n[tokens]\nsecret_file = \"../secret\"\n"
        );
        let config = parse_relative_to(&text, Path::new("/etc/gatehouse")).expect("valid");
        assert_eq!(config.store.path, Path::new("/etc/gatehouse/data"));
        assert_eq!(
            config.tokens.secret_file.as_deref(),
            Some(Path::new("/etc/gatehouse/../secret"))
        );
        let tls = config.server.tls.expect("tls");
        assert_eq!(tls.cert, Path::new("/etc/gatehouse/tls/cert.pem"));
        assert_eq!(
            tls.key,
            Path::new("/etc/key.pem"),
            "absolute paths unchanged"
        );
        assert_eq!(parse(MINIMAL).expect("valid").store.path, Path::new("data"));
    }

    #[test]
    fn a_bare_config_file_name_resolves_against_the_working_directory() {
        let cwd = std::env::current_dir().expect("cwd");
        assert_eq!(config_dir(Path::new("gateway.toml")), cwd);
        assert_eq!(config_dir(Path::new("conf/gateway.toml")), cwd.join("conf"));
        assert_eq!(
            config_dir(Path::new("/etc/g/gateway.toml")),
            Path::new("/etc/g")
        );
    }

    #[test]
    fn default_upstream_is_required() {
        let problems = parse("").unwrap_err();
        assert!(problems.iter().any(|p| p.path == "upstreams.default.url"));
    }

    #[test]
    fn route_to_an_unknown_upstream_is_refused() {
        let text = format!("{MINIMAL}[[routes]]\npath = \"/x/**\"\nupstream = \"nope\"\n");
        let problems = parse(&text).unwrap_err();
        assert_eq!(problems[0].path, "routes[0].upstream");
    }

    #[test]
    fn identity_header_names_must_differ_even_by_underscore() {
        let text = format!("{MINIMAL}[headers]\nuser = \"X-Who\"\nsubject = \"X_Who\"\n");
        let problems = parse(&text).unwrap_err();
        assert!(problems.iter().any(|p| p.path == "headers"), "{problems:?}");
    }

    #[test]
    fn a_mistyped_required_key_is_reported_once() {
        let problems = parse("[upstreams.default]\nurl = 3000\n").unwrap_err();
        assert_eq!(
            problems,
            [Problem {
                path: "upstreams.default.url".into(),
                problem: "expected a string, found a whole number".into(),
            }]
        );
    }

    #[test]
    fn syntax_errors_name_their_line() {
        let problems = parse("[server]\nmax_connections = \n").unwrap_err();
        assert!(problems[0].problem.contains("line 2"), "{problems:?}");
    }

    #[test]
    fn every_type_error_is_named_by_its_key_path_in_plain_words() {
        let text = format!(
            "{MINIMAL}[login]\nmax_failures = \"five\"\n[server]\nmax_connections = \"many\"\n\
             listen = 8080\n[registration]\nroles = [\"a\", 5]\n\
             [[routes]]\npath = \"/a\"\n[[routes]]\npath = \"/b\"\nmethods = \"GET\"\n\
             [[routes]]\npath = \"/c\"\naccess = \"maybe\"\n"
        );
        let problems = parse(&text).unwrap_err();
        let all: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        for expected in [
            "login.max_failures: expected a whole number, found a string",
            "server.max_connections: expected a whole number, found a string",
            "server.listen: expected a string, found a whole number",
            "registration.roles[1]: expected a string, found a whole number",
            "routes[1].methods: expected a list, found a string",
            "routes[2].access: `maybe`: expected one of authenticated, public, deny",
        ] {
            assert!(
                all.iter().any(|p| p == expected),
                "no {expected:?} in {all:#?}"
            );
        }
        assert_eq!(all.len(), 6, "{all:#?}");
    }

    fn problems_at(text: &str) -> Vec<(String, String)> {
        parse(text)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|problem| (problem.path, problem.problem))
            .collect()
    }

    #[test]
    fn assertion_defaults_and_audiences_are_the_upstream_origins() {
        let text = r#"
[upstreams.default]
url = "http://127.0.0.1:3000/"
[upstreams.billing]
url = "http://Billing.Internal:80"
[upstreams.v6]
url = "http://[::1]:8080"
[upstreams.orders]
url = "http://10.0.0.7:8000"
assertion_audience = "https://orders.internal"
"#;
        let config = parse(text).expect("valid");
        assert!(!config.assertion.enabled);
        assert_eq!(config.assertion.header.as_str(), "x-gatehouse-assertion");
        assert_eq!(config.assertion.ttl, Duration::from_secs(60));
        let audiences: Vec<(&str, &str)> = config
            .upstreams
            .iter()
            .map(|u| (u.name.as_str(), u.assertion_audience.as_str()))
            .collect();
        assert_eq!(
            audiences,
            [
                ("default", "http://127.0.0.1:3000"),
                ("billing", "http://billing.internal"),
                ("orders", "https://orders.internal"),
                ("v6", "http://[::1]:8080"),
            ]
        );
        let (_, reloadable) = config.into_parts();
        assert_eq!(
            reloadable.assertion.ttl,
            Duration::from_secs(60),
            "reloadable"
        );
    }

    #[test]
    fn assertions_need_a_key_pair_algorithm() {
        let problems = problems_at(&format!("{MINIMAL}[assertion]\nenabled = true\n"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "assertion.enabled");
        assert!(problems[0].1.contains("ES256"), "{problems:?}");
        assert!(parse(&format!("{MINIMAL}[assertion]\nenabled = false\n")).is_ok());
    }

    #[test]
    fn assertion_header_ttl_and_audiences_are_checked() {
        for (section, path, says) in [
            (
                "header = \"bad header\"",
                "assertion.header",
                "not a valid header name",
            ),
            ("header = \"Authorization\"", "assertion.header", "reserved"),
            (
                "header = \"x_auth_user\"",
                "assertion.header",
                "identity header",
            ),
            ("ttl = \"0s\"", "assertion.ttl", "longer than zero"),
            ("ttl = \"1500ms\"", "assertion.ttl", "whole seconds"),
            ("ttl = \"2h\"", "assertion.ttl", "at most"),
            ("ttl = \"soon\"", "assertion.ttl", "not a duration"),
        ] {
            let problems = problems_at(&format!("{MINIMAL}[assertion]\n{section}\n"));
            assert_eq!(problems.len(), 1, "{section}: {problems:?}");
            assert_eq!(problems[0].0, path, "{section}");
            assert!(problems[0].1.contains(says), "{section}: {problems:?}");
        }
        let problems = problems_at(&format!("{MINIMAL}assertion_audience = \"\"\n"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "upstreams.default.assertion_audience");
        // An access token's audience is never an upstream's assertion audience.
        let problems = problems_at(&format!(
            "{MINIMAL}assertion_audience = \"gatehouse\"\n[assertion]\nenabled = true\n"
        ));
        assert!(
            problems.iter().any(
                |(path, problem)| path == "upstreams.default.assertion_audience"
                    && problem.contains("tokens.audience")
            ),
            "{problems:?}"
        );
    }
}
