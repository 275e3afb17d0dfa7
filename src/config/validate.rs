//! `FileConfig` → `Config`: every value checked and compiled, every problem collected with
//! its dotted key path, failing only at the end (the linkerd habit: parse everything, then
//! fail once with the whole list).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, Method, Uri};
use ipnet::IpNet;
use jsonwebtoken::{Algorithm, AlgorithmFamily};

use super::file::{FileConfig, RouteFile};
use super::problems::Problems;
use super::units::parse_duration;
use super::*;
use crate::names::{Role, ROLE_RULE};
use crate::routing::{Access, Pattern, Route, RouteTable};

impl Problems {
    fn duration(&mut self, path: &str, text: &str) -> Duration {
        match parse_duration(text) {
            Ok(duration) => duration,
            Err(problem) => {
                self.push(path, problem);
                Duration::ZERO
            }
        }
    }

    fn positive_duration(&mut self, path: &str, text: &str) -> Duration {
        let duration = self.duration(path, text);
        if duration.is_zero() && parse_duration(text).is_ok() {
            self.push(path, "must be longer than zero");
        }
        duration
    }

    fn socket_addr(&mut self, path: &str, text: &str) -> SocketAddr {
        match text.parse() {
            Ok(addr) => addr,
            Err(_) => {
                self.push(
                    path,
                    format!("`{text}` is not an address; write IP:PORT, e.g. \"0.0.0.0:8080\" or \"[::1]:8080\""),
                );
                SocketAddr::from(([0, 0, 0, 0], 0))
            }
        }
    }

    fn ranged(&mut self, path: &str, value: i64, min: i64, max: i64) -> u32 {
        if value < min || value > max {
            self.push(
                path,
                format!("{value} is out of range; expected {min} to {max}"),
            );
            return min.max(0) as u32;
        }
        value as u32
    }

    fn header_name(&mut self, path: &str, text: &str) -> HeaderName {
        match HeaderName::from_bytes(text.as_bytes()) {
            Ok(name) => name,
            Err(_) => {
                self.push(path, format!("`{text}` is not a valid header name"));
                HeaderName::from_static("x-invalid")
            }
        }
    }
}

/// The compiled config; placeholders stand where a value was refused, so the caller must
/// treat it as valid only when `problems` stayed empty (file checks still run on it).
pub(super) fn validate(file: FileConfig, problems: &mut Problems) -> Config {
    let server = server(&file, problems);
    let tokens = tokens(&file, problems);
    let passwords = passwords(&file, problems);
    let login = LoginSettings {
        max_failures: problems.ranged("login.max_failures", file.login.max_failures, 1, 1_000_000),
        max_failures_per_address: problems.ranged(
            "login.max_failures_per_address",
            file.login.max_failures_per_address,
            1,
            1_000_000,
        ),
        window: problems.positive_duration("login.window", &file.login.window),
        lockout: problems.positive_duration("login.lockout", &file.login.lockout),
    };
    let registration = RegistrationSettings {
        enabled: file.registration.enabled,
        roles: roles(problems, "registration.roles", &file.registration.roles),
    };
    let headers = headers(&file, problems);
    let log = log(&file, problems);
    let upstreams = upstreams(&file, problems);
    let routes = routes(&file.routes, &upstreams, problems);
    let store = store(&file, problems);
    let assertion = assertion(&file, &tokens, &headers, &upstreams, problems);
    let jwks = JwksSettings {
        max_age: problems.duration("tokens.jwks.max_age", &file.tokens.jwks.max_age),
    };
    let browser = super::browser::validate(&file.browser, problems);
    Config {
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
    }
}

fn store(file: &FileConfig, problems: &mut Problems) -> StoreSettings {
    let raw = &file.store;
    let backend = match raw.backend.as_str() {
        "sled" => StoreBackend::Sled,
        "postgres" => StoreBackend::Postgres,
        other => {
            problems.push(
                "store.backend",
                format!("unknown backend `{other}`; expected \"sled\" or \"postgres\""),
            );
            StoreBackend::Sled
        }
    };
    if raw.path.trim().is_empty() {
        problems.push("store.path", "must name a directory");
    }
    if raw.url.as_deref().is_some_and(|url| url.trim().is_empty()) {
        problems.push("store.url", "must not be empty");
    }
    if raw
        .url_file
        .as_deref()
        .is_some_and(|file| file.trim().is_empty())
    {
        problems.push("store.url_file", "must name a file");
    }
    let pool_size = problems.ranged("store.pool_size", raw.pool_size, 1, 1024) as usize;
    let max_stale = problems.positive_duration("store.max_stale", &raw.max_stale);
    StoreSettings {
        backend,
        path: PathBuf::from(&raw.path),
        postgres: PostgresSettings {
            url: raw.url.clone().map(zeroize::Zeroizing::new),
            url_file: raw.url_file.as_ref().map(PathBuf::from),
            pool_size,
        },
        max_stale,
    }
}

fn server(file: &FileConfig, problems: &mut Problems) -> ServerSettings {
    let raw = &file.server;
    let tls = match (&raw.tls_cert, &raw.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: PathBuf::from(cert),
            key: PathBuf::from(key),
        }),
        (None, None) => None,
        (Some(_), None) => {
            problems.push(
                "server.tls_key",
                "tls_cert is set but tls_key is missing; set both or neither",
            );
            None
        }
        (None, Some(_)) => {
            problems.push(
                "server.tls_cert",
                "tls_key is set but tls_cert is missing; set both or neither",
            );
            None
        }
    };
    let auth_prefix = raw.auth_prefix.trim_end_matches('/').to_string();
    let prefix_ok = auth_prefix.starts_with('/')
        && matches!(crate::routing::path::normalize(&auth_prefix), Ok(ref n) if n.as_str() == auth_prefix);
    if !prefix_ok {
        problems.push(
            "server.auth_prefix",
            format!(
                "`{}` is not a normalized absolute path; write e.g. \"/auth\"",
                raw.auth_prefix
            ),
        );
    }
    let listen = problems.socket_addr("server.listen", &raw.listen);
    let ops_listen = problems.socket_addr("server.ops_listen", &raw.ops_listen);
    if listen == ops_listen && listen.port() != 0 {
        problems.push(
            "server.ops_listen",
            format!("must differ from server.listen (both are {listen})"),
        );
    }
    ServerSettings {
        listen,
        tls,
        ops_listen,
        auth_prefix,
        header_timeout: problems.positive_duration("server.header_timeout", &raw.header_timeout),
        idle_timeout: problems.positive_duration("server.idle_timeout", &raw.idle_timeout),
        max_connections: problems.ranged(
            "server.max_connections",
            raw.max_connections,
            1,
            1_000_000,
        ) as usize,
        shutdown_grace: problems.duration("server.shutdown_grace", &raw.shutdown_grace),
        watch_config: raw.watch_config,
    }
}

fn tokens(file: &FileConfig, problems: &mut Problems) -> TokenSettings {
    let raw = &file.tokens;
    let algorithm = match raw.algorithm.as_str() {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "ES256" => Algorithm::ES256,
        "EdDSA" => Algorithm::EdDSA,
        "RS256" => Algorithm::RS256,
        other => {
            problems.push(
                "tokens.algorithm",
                format!("`{other}` is not supported; expected one of HS256, HS384, HS512 (shared secret), ES256, EdDSA, RS256 (key pairs)"),
            );
            Algorithm::HS256
        }
    };
    let pairs = matches!(
        algorithm,
        Algorithm::ES256 | Algorithm::EdDSA | Algorithm::RS256
    );
    if raw.issuer.is_empty() {
        problems.push("tokens.issuer", "must not be empty");
    } else if pairs {
        if let Err(problem) = public_issuer(&raw.issuer) {
            problems.push(
                "tokens.issuer",
                format!(
                    "with tokens.algorithm = \"{}\" the issuer is the gateway's public URL, used byte for byte as `iss` and in discovery (SPEC §9): {problem}",
                    raw.algorithm
                ),
            );
        }
    }
    if raw.audience.is_empty() {
        problems.push("tokens.audience", "must not be empty");
    }
    let keys = key_files(raw, pairs, problems);
    TokenSettings {
        issuer: raw.issuer.clone(),
        audience: raw.audience.clone(),
        algorithm,
        secret_file: raw.secret_file.as_ref().map(PathBuf::from),
        access_ttl: problems.positive_duration("tokens.access_ttl", &raw.access_ttl),
        refresh_ttl: problems.positive_duration("tokens.refresh_ttl", &raw.refresh_ttl),
        leeway: problems.duration("tokens.leeway", &raw.leeway),
        keys,
    }
}

/// `[[tokens.keys]]`: with a key-pair algorithm, at least one entry, each with a `file`
/// and a `state`, exactly one `active`; with HS* none (the shared secret signs). The files
/// themselves are read by the loader's file checks (auth::keys), which name them.
fn key_files(
    raw: &super::file::TokensFile,
    pairs: bool,
    problems: &mut Problems,
) -> Vec<KeyFileSettings> {
    if !pairs {
        if !raw.keys.is_empty() {
            problems.push(
                "tokens.keys",
                format!(
                    "key files are for ES256, EdDSA or RS256; with tokens.algorithm = \"{}\" tokens are signed with the shared secret: remove [[tokens.keys]] or set tokens.algorithm",
                    raw.algorithm
                ),
            );
        }
        return Vec::new();
    }
    if raw.keys.is_empty() {
        problems.push(
            "tokens.keys",
            format!(
                "tokens.algorithm = \"{alg}\" signs with a key pair: add a [[tokens.keys]] entry with file = \"...\" and state = \"active\" (make the file with `gatehouse keys generate --alg {alg} --out FILE`)",
                alg = raw.algorithm
            ),
        );
        return Vec::new();
    }
    let mut keys = Vec::new();
    for (index, key) in raw.keys.iter().enumerate() {
        if key.file.is_empty() {
            problems.push(
                format!("tokens.keys[{index}].file"),
                "must be set: the key's PEM file",
            );
        }
        let state = match key.state.as_str() {
            "next" => KeyState::Next,
            "active" => KeyState::Active,
            "retired" => KeyState::Retired,
            "" => {
                problems.push(
                    format!("tokens.keys[{index}].state"),
                    "must be set: next, active or retired",
                );
                KeyState::Retired
            }
            other => {
                problems.push(
                    format!("tokens.keys[{index}].state"),
                    format!("`{other}` is not a key state; expected next, active or retired"),
                );
                KeyState::Retired
            }
        };
        keys.push(KeyFileSettings {
            file: PathBuf::from(&key.file),
            state,
        });
    }
    let active = raw.keys.iter().filter(|key| key.state == "active").count();
    if active != 1 {
        problems.push(
            "tokens.keys",
            format!(
                "exactly one key must have state = \"active\" (the one that signs); found {active}"
            ),
        );
    }
    keys
}

/// SPEC §9: an `https://` URL, or `http://` for a loopback host (`localhost`, 127.0.0.0/8,
/// `[::1]`); no user info, query or fragment; no trailing `/` (discovery appends
/// `/.well-known/...` to it).
fn public_issuer(issuer: &str) -> Result<(), String> {
    let uri: Uri = issuer.parse().map_err(|_| {
        format!("`{issuer}` is not a URL; write e.g. \"https://gateway.example.com\"")
    })?;
    let host = uri.host().unwrap_or_default();
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if is_loopback(host) => {}
        Some("http") => {
            return Err(format!(
                "`{issuer}` uses http:// for a host that is not loopback; use https://"
            ))
        }
        _ => {
            return Err(format!(
                "`{issuer}` is not an https:// URL; write e.g. \"https://gateway.example.com\""
            ))
        }
    }
    if host.is_empty() || uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(format!("`{issuer}` must name a host, without user info"));
    }
    if uri.query().is_some() || issuer.contains('#') {
        return Err(format!(
            "`{issuer}` has a query or fragment; an issuer has neither (RFC 8414 §2)"
        ));
    }
    if issuer.ends_with('/') {
        return Err(format!(
            "`{issuer}` ends with `/`; remove it (discovery appends /.well-known/... to the issuer)"
        ));
    }
    Ok(())
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn passwords(file: &FileConfig, problems: &mut Problems) -> PasswordSettings {
    let raw = &file.passwords;
    let settings = PasswordSettings {
        memory_kib: problems.ranged("passwords.memory_kib", raw.memory_kib, 8, 4 * 1024 * 1024),
        iterations: problems.ranged("passwords.iterations", raw.iterations, 1, 100),
        parallelism: problems.ranged("passwords.parallelism", raw.parallelism, 1, 64),
        min_length: problems.ranged("passwords.min_length", raw.min_length, 1, 4096) as usize,
        max_length: problems.ranged("passwords.max_length", raw.max_length, 1, 4096) as usize,
    };
    if settings.min_length > settings.max_length {
        problems.push(
            "passwords.min_length",
            "must not exceed passwords.max_length",
        );
    }
    if settings.memory_kib < 8 * settings.parallelism {
        problems.push(
            "passwords.memory_kib",
            "must be at least 8 × parallelism (argon2)",
        );
    }
    settings
}

/// Header names gatehouse or HTTP itself gives a meaning: never an identity or assertion
/// header.
const RESERVED_HEADERS: [&str; 16] = [
    "host",
    "authorization",
    "connection",
    "content-length",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-authorization",
    "cookie",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
];

fn headers(file: &FileConfig, problems: &mut Problems) -> HeaderSettings {
    let raw = &file.headers;
    let user = problems.header_name("headers.user", &raw.user);
    let subject = problems.header_name("headers.subject", &raw.subject);
    let roles = problems.header_name("headers.roles", &raw.roles);
    for (key, name) in [
        ("headers.user", &user),
        ("headers.subject", &subject),
        ("headers.roles", &roles),
    ] {
        if RESERVED_HEADERS.contains(&name.as_str()) {
            problems.push(
                key,
                format!("`{name}` is reserved; choose a name such as X-Auth-User"),
            );
        }
    }
    let folded: HashSet<String> = [&user, &subject, &roles]
        .iter()
        .map(|name| name.as_str().replace('_', "-"))
        .collect();
    if folded.len() != 3 {
        problems.push(
            "headers",
            "user, subject and roles must be three different header names",
        );
    }
    let mut trusted_proxies = Vec::new();
    for (index, text) in raw.trusted_proxies.iter().enumerate() {
        let parsed = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from));
        match parsed {
            Ok(net) => trusted_proxies.push(net),
            Err(_) => problems.push(
                format!("headers.trusted_proxies[{index}]"),
                format!("`{text}` is not a CIDR or IP address; write e.g. \"10.0.0.0/8\""),
            ),
        }
    }
    HeaderSettings {
        user,
        subject,
        roles,
        forward_authorization: raw.forward_authorization,
        trusted_proxies,
    }
}

/// The longest `assertion.ttl`: an assertion is a short-lived proof of one request's
/// identity, not a session.
const MAX_ASSERTION_TTL: Duration = Duration::from_secs(3600);

/// `[assertion]` (SPEC §9), checked against what it depends on: a key-pair algorithm (an
/// upstream must be able to verify with the published public keys; a shared secret would
/// let every upstream mint access tokens), a header no identity header or reserved name
/// can be confused with, and per-upstream audiences that differ from the access tokens'
/// `aud` (so neither kind of token can pass for the other on `aud` alone).
fn assertion(
    file: &FileConfig,
    tokens: &TokenSettings,
    headers: &HeaderSettings,
    upstreams: &[UpstreamSettings],
    problems: &mut Problems,
) -> AssertionSettings {
    let raw = &file.assertion;
    if raw.enabled && tokens.algorithm.family() == AlgorithmFamily::Hmac {
        problems.push(
            "assertion.enabled",
            format!(
                "needs a key-pair tokens.algorithm (ES256, EdDSA or RS256), not {:?}: upstreams verify assertions with the published public keys",
                tokens.algorithm
            ),
        );
    }
    let header = problems.header_name("assertion.header", &raw.header);
    let folded = header.as_str().replace('_', "-");
    if RESERVED_HEADERS.contains(&header.as_str()) {
        problems.push(
            "assertion.header",
            format!("`{header}` is reserved; choose a name such as X-Gatehouse-Assertion"),
        );
    } else if [&headers.user, &headers.subject, &headers.roles]
        .iter()
        .any(|name| name.as_str().replace('_', "-") == folded)
    {
        problems.push(
            "assertion.header",
            format!("`{header}` is already an identity header (headers.user, headers.subject or headers.roles); choose another name"),
        );
    }
    let ttl = problems.positive_duration("assertion.ttl", &raw.ttl);
    if ttl.subsec_nanos() != 0 {
        problems.push(
            "assertion.ttl",
            "must be whole seconds (JWT times are in seconds), e.g. \"60s\"",
        );
    } else if ttl > MAX_ASSERTION_TTL {
        problems.push(
            "assertion.ttl",
            "must be at most \"1h\": an assertion proves one request's identity, keep it short-lived",
        );
    }
    for (name, raw_upstream) in &file.upstreams {
        if raw_upstream
            .assertion_audience
            .as_deref()
            .is_some_and(|audience| audience.trim().is_empty())
        {
            problems.push(
                format!("upstreams.{name}.assertion_audience"),
                "must not be empty; remove it to use the upstream's URL origin",
            );
        }
    }
    if raw.enabled {
        for upstream in upstreams {
            if upstream.assertion_audience == tokens.audience {
                problems.push(
                    format!("upstreams.{}.assertion_audience", upstream.name),
                    format!(
                        "`{}` is also tokens.audience: an access token must never pass for an assertion; choose another audience",
                        upstream.assertion_audience
                    ),
                );
            }
        }
    }
    AssertionSettings {
        enabled: raw.enabled,
        header,
        ttl,
    }
}

/// RFC 6454 §6.2 serialization of an `http://` URL's origin: scheme, lowercase host, and
/// the port unless it is the default (80). No user information, path or trailing slash.
fn origin(url: &Uri) -> String {
    let host = url.host().unwrap_or_default().to_ascii_lowercase();
    match url.port_u16() {
        Some(port) if port != 80 => format!("http://{host}:{port}"),
        _ => format!("http://{host}"),
    }
}

fn log(file: &FileConfig, problems: &mut Problems) -> LogSettings {
    let format = match file.log.format.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            problems.push(
                "log.format",
                format!("`{other}` is not a format; expected one of text, json"),
            );
            LogFormat::Text
        }
    };
    if tracing_subscriber::EnvFilter::try_new(&file.log.level).is_err() {
        problems.push(
            "log.level",
            format!("`{}` is not a level or filter; expected e.g. info, debug, \"gatehouse=debug,info\"", file.log.level),
        );
    }
    LogSettings {
        format,
        level: file.log.level.clone(),
    }
}

fn upstreams(file: &FileConfig, problems: &mut Problems) -> Vec<UpstreamSettings> {
    if !file.upstreams.contains_key("default") {
        problems.push(
            "upstreams.default.url",
            "is required: the service requests go to, e.g. \"http://127.0.0.1:3000\"",
        );
    }
    let mut list = Vec::new();
    // `default` first so that its index is 0.
    let ordered = file
        .upstreams
        .iter()
        .filter(|(name, _)| name.as_str() == "default")
        .chain(
            file.upstreams
                .iter()
                .filter(|(name, _)| name.as_str() != "default"),
        );
    for (name, raw) in ordered {
        let key = format!("upstreams.{name}");
        let url = match &raw.url {
            None => {
                problems.push(
                    format!("{key}.url"),
                    "is required, e.g. \"http://127.0.0.1:3000\"",
                );
                None
            }
            Some(text) => {
                match text.parse::<Uri>() {
                    Ok(uri) if uri.scheme_str() == Some("http") && uri.host().is_some() => {
                        if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
                            problems.push(
                            format!("{key}.url"),
                            "must not have a path or query: requests keep their own path; write \"http://host:port\"",
                        );
                        }
                        Some(uri)
                    }
                    Ok(uri) if uri.scheme_str() == Some("https") => {
                        problems.push(format!("{key}.url"), "https upstreams are not supported yet; use http:// on a private network");
                        None
                    }
                    _ => {
                        problems.push(
                            format!("{key}.url"),
                            format!(
                                "`{text}` is not an http URL; write e.g. \"http://127.0.0.1:3000\""
                            ),
                        );
                        None
                    }
                }
            }
        };
        let connect_timeout =
            problems.positive_duration(&format!("{key}.connect_timeout"), &raw.connect_timeout);
        let timeout = problems.positive_duration(&format!("{key}.timeout"), &raw.timeout);
        if let Some(url) = url {
            let authority = url
                .authority()
                .map(|a| a.as_str().to_string())
                .unwrap_or_default();
            let assertion_audience = raw
                .assertion_audience
                .clone()
                .unwrap_or_else(|| origin(&url));
            list.push(UpstreamSettings {
                name: name.clone(),
                authority,
                connect_timeout,
                timeout,
                assertion_audience,
            });
        }
    }
    list
}

fn routes(
    raw: &[RouteFile],
    upstreams: &[UpstreamSettings],
    problems: &mut Problems,
) -> RouteTable {
    let mut compiled = Vec::new();
    for (index, route) in raw.iter().enumerate() {
        let key = format!("routes[{index}]");
        let pattern = match &route.path {
            None => {
                problems.push(format!("{key}.path"), "is required, e.g. \"/api/**\"");
                None
            }
            Some(text) => match Pattern::compile(text) {
                Ok(pattern) => Some(pattern),
                Err(err) => {
                    problems.push(format!("{key}.path"), err.to_string());
                    None
                }
            },
        };
        let access = match route.access.as_deref() {
            None | Some("authenticated") => Access::Authenticated,
            Some("public") => Access::Public,
            Some("deny") => Access::Deny,
            Some(other) => {
                problems.push(
                    format!("{key}.access"),
                    format!("`{other}`: expected one of authenticated, public, deny"),
                );
                Access::Authenticated
            }
        };
        let roles = roles(problems, &format!("{key}.roles"), &route.roles);
        if !roles.is_empty() && access != Access::Authenticated {
            problems.push(
                format!("{key}.roles"),
                "roles apply only to access = \"authenticated\"; remove them or the access setting",
            );
        }
        let methods = route.methods.as_ref().map(|methods| {
            if methods.is_empty() {
                problems.push(format!("{key}.methods"), "is empty, so the route could never match; remove the key to match every method");
            }
            methods
                .iter()
                .enumerate()
                .filter_map(|(i, text)| {
                    let upper = text.to_ascii_uppercase();
                    match Method::from_bytes(upper.as_bytes()) {
                        Ok(method) if upper == *text => Some(method),
                        _ => {
                            problems.push(
                                format!("{key}.methods[{i}]"),
                                format!("`{text}` is not a method; write it in capitals, e.g. \"GET\""),
                            );
                            None
                        }
                    }
                })
                .collect::<Vec<_>>()
        });
        let upstream_name = route.upstream.clone().unwrap_or_else(|| "default".into());
        let upstream = upstreams.iter().position(|u| u.name == upstream_name);
        if upstream.is_none() && (route.upstream.is_some() || !upstreams.is_empty()) {
            let known: Vec<&str> = upstreams.iter().map(|u| u.name.as_str()).collect();
            problems.push(
                format!("{key}.upstream"),
                format!(
                    "`{upstream_name}` is not defined under [upstreams]; known: {}",
                    known.join(", ")
                ),
            );
        }
        if let Some(pattern) = pattern {
            compiled.push(Route {
                pattern,
                methods,
                access,
                roles,
                upstream: upstream.unwrap_or(0),
                upstream_name,
            });
        }
    }
    RouteTable::new(compiled)
}

fn roles(problems: &mut Problems, key: &str, roles: &[String]) -> Vec<String> {
    for (index, role) in roles.iter().enumerate() {
        if !Role::is_valid(role) {
            problems.push(
                format!("{key}[{index}]"),
                format!("`{role}` is not a role name; {ROLE_RULE}"),
            );
        }
    }
    roles.to_vec()
}
