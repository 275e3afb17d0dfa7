//! The raw serde mirror of `gateway.toml` (SPEC §2). Values stay loosely typed (durations
//! and addresses as strings) so that validation can report every problem with its key
//! path at once instead of stopping at the first one serde meets.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file. Every key is optional except `upstreams.default.url`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FileConfig {
    pub server: ServerFile,
    pub store: StoreFile,
    pub tokens: TokensFile,
    pub passwords: PasswordsFile,
    pub login: LoginFile,
    pub registration: RegistrationFile,
    pub headers: HeadersFile,
    pub log: LogFile,
    /// The signed identity assertion for upstreams (SPEC §9).
    pub assertion: AssertionFile,
    /// Browser sign-in: the sign-in page and cookie sessions (SPEC §10).
    pub browser: BrowserFile,
    /// Named upstreams; `default` is required.
    pub upstreams: BTreeMap<String, UpstreamFile>,
    /// Route rules, checked in file order.
    pub routes: Vec<RouteFile>,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct ServerFile {
    /// Main listener. Default `0.0.0.0:8080`.
    pub listen: String,
    /// PEM certificate chain; with `tls_key`, serve HTTPS.
    pub tls_cert: Option<String>,
    /// PEM private key.
    pub tls_key: Option<String>,
    /// `/healthz`, `/readyz`, `/metrics`. Default `127.0.0.1:9091`.
    pub ops_listen: String,
    /// Where gatehouse's own endpoints live. Default `/auth`.
    pub auth_prefix: String,
    /// Time allowed to receive a request head. Default `10s`.
    pub header_timeout: String,
    /// Keep-alive connections idle longer are closed. Default `60s`.
    pub idle_timeout: String,
    /// Connections served at once; further ones wait in the accept backlog. Default 10000.
    pub max_connections: i64,
    /// How long in-flight requests may run on after SIGTERM. Default `30s`.
    pub shutdown_grace: String,
    /// Poll the config file every second and reload it when its contents change, as
    /// SIGHUP does. Default `false`.
    pub watch_config: bool,
}

impl Default for ServerFile {
    fn default() -> Self {
        ServerFile {
            listen: "0.0.0.0:8080".into(),
            tls_cert: None,
            tls_key: None,
            ops_listen: "127.0.0.1:9091".into(),
            auth_prefix: "/auth".into(),
            header_timeout: "10s".into(),
            idle_timeout: "60s".into(),
            max_connections: 10_000,
            shutdown_grace: "30s".into(),
            watch_config: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct StoreFile {
    /// `sled` (one process, the default) or `postgres` (replicas, SPEC §8).
    pub backend: String,
    /// sled directory, created with mode 0700 (also where the admin socket lives, for
    /// either backend). Default `data`.
    pub path: String,
    /// PostgreSQL connection string (libpq URL or key/value form); the environment
    /// variable `GATEHOUSE_STORE_URL` and `url_file` come first.
    pub url: Option<String>,
    /// A file holding the connection string (one trailing newline removed).
    pub url_file: Option<String>,
    /// PostgreSQL connections per replica. Default 16.
    pub pool_size: i64,
    /// How long a PostgreSQL replica may go without hearing from the database before it
    /// stops vouching for tokens. Default `10s`.
    pub max_stale: String,
}

impl Default for StoreFile {
    fn default() -> Self {
        StoreFile {
            backend: "sled".into(),
            path: "data".into(),
            url: None,
            url_file: None,
            pool_size: 16,
            max_stale: "10s".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct TokensFile {
    /// `iss` of issued tokens, required on validation. Default `gatehouse`.
    pub issuer: String,
    /// `aud` of issued tokens, required on validation. Default `gatehouse`.
    pub audience: String,
    /// HS256 | HS384 | HS512 (shared secret); ES256 | EdDSA | RS256 (key pairs, SPEC §9).
    /// Default HS256.
    pub algorithm: String,
    /// File holding the signing secret (one trailing newline removed).
    pub secret_file: Option<String>,
    /// Default `15m`.
    pub access_ttl: String,
    /// Default `7d`.
    pub refresh_ttl: String,
    /// Clock skew allowed on exp / nbf / iat. Default `30s`.
    pub leeway: String,
    /// `[[tokens.keys]]`: the key files of an asymmetric algorithm (SPEC §9).
    pub keys: Vec<KeyFile>,
    /// How `/.well-known/jwks.json` is published.
    pub jwks: JwksFile,
}

/// One `[[tokens.keys]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct KeyFile {
    /// PKCS#8 PEM private key (a retired key may be its SPKI public key), relative to
    /// the config file's directory.
    pub file: String,
    /// `next` | `active` | `retired`.
    pub state: String,
}

impl Default for TokensFile {
    fn default() -> Self {
        TokensFile {
            issuer: "gatehouse".into(),
            audience: "gatehouse".into(),
            algorithm: "HS256".into(),
            secret_file: None,
            access_ttl: "15m".into(),
            refresh_ttl: "7d".into(),
            leeway: "30s".into(),
            keys: Vec::new(),
            jwks: JwksFile::default(),
        }
    }
}

/// `[tokens.jwks]` (SPEC §9).
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct JwksFile {
    /// `Cache-Control: public, max-age=…` of the JWKS. Default `5m`.
    pub max_age: String,
}

impl Default for JwksFile {
    fn default() -> Self {
        JwksFile {
            max_age: "5m".into(),
        }
    }
}

/// argon2id parameters; defaults are OWASP's minimum.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct PasswordsFile {
    pub memory_kib: i64,
    pub iterations: i64,
    pub parallelism: i64,
    pub min_length: i64,
    pub max_length: i64,
}

impl Default for PasswordsFile {
    fn default() -> Self {
        PasswordsFile {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
            min_length: 8,
            max_length: 256,
        }
    }
}

/// Brute-force regulation.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct LoginFile {
    pub max_failures: i64,
    pub max_failures_per_address: i64,
    pub window: String,
    pub lockout: String,
}

impl Default for LoginFile {
    fn default() -> Self {
        LoginFile {
            max_failures: 5,
            max_failures_per_address: 50,
            window: "15m".into(),
            lockout: "15m".into(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RegistrationFile {
    pub enabled: bool,
    pub roles: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct HeadersFile {
    pub user: String,
    pub subject: String,
    pub roles: String,
    pub forward_authorization: bool,
    pub trusted_proxies: Vec<String>,
}

impl Default for HeadersFile {
    fn default() -> Self {
        HeadersFile {
            user: "X-Auth-User".into(),
            subject: "X-Auth-Subject".into(),
            roles: "X-Auth-Roles".into(),
            forward_authorization: false,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct LogFile {
    /// text | json.
    pub format: String,
    /// A tracing filter; `RUST_LOG`, when set, wins.
    pub level: String,
}

impl Default for LogFile {
    fn default() -> Self {
        LogFile {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

/// `[assertion]` (SPEC §9): a short-lived JWT per upstream carrying the identity.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct AssertionFile {
    /// Default `false`; needs a key-pair `tokens.algorithm`.
    pub enabled: bool,
    /// Default `X-Gatehouse-Assertion`; always stripped from client requests.
    pub header: String,
    /// Lifetime of one assertion. Default `60s`.
    pub ttl: String,
}

impl Default for AssertionFile {
    fn default() -> Self {
        AssertionFile {
            enabled: false,
            header: "X-Gatehouse-Assertion".into(),
            ttl: "60s".into(),
        }
    }
}

/// `[browser]` (SPEC §10): the sign-in page and cookie sessions.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct BrowserFile {
    /// Default `false`.
    pub enabled: bool,
    /// Where browsers reach gatehouse (an http(s) origin); required when enabled.
    pub public_url: Option<String>,
    /// Empty (the default): host-only `__Host-` cookies.
    pub cookie_domain: String,
    /// `host`, `host:port` or `.domain` entries `rd` may also point at.
    pub allowed_redirect_hosts: Vec<String>,
    /// Default `2h`.
    pub inactivity: String,
    /// Default `12h`.
    pub expiration: String,
    /// Default `14d`; `0s` hides the box.
    pub remember_me: String,
}

impl Default for BrowserFile {
    fn default() -> Self {
        BrowserFile {
            enabled: false,
            public_url: None,
            cookie_domain: String::new(),
            allowed_redirect_hosts: Vec::new(),
            inactivity: "2h".into(),
            expiration: "12h".into(),
            remember_me: "14d".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct UpstreamFile {
    /// `http://host:port`.
    pub url: Option<String>,
    /// Default `2s`.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: String,
    /// Until the upstream's response head arrives. Default `60s`.
    #[serde(default = "default_upstream_timeout")]
    pub timeout: String,
    /// `aud` of the assertions sent to this upstream. Default: the URL's origin.
    pub assertion_audience: Option<String>,
}

fn default_connect_timeout() -> String {
    "2s".into()
}

fn default_upstream_timeout() -> String {
    "60s".into()
}

#[derive(Debug, Deserialize)]
pub struct RouteFile {
    pub path: Option<String>,
    /// authenticated (default) | public | deny.
    pub access: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    pub methods: Option<Vec<String>>,
    pub upstream: Option<String>,
}
