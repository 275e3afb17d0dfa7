//! `[browser]` (SPEC §10): the sign-in page and cookie sessions, checked and compiled.
//!
//! What is checked here, so that nothing on the request path parses a setting:
//! - `public_url` is an origin (RFC 6454): `https://host[:port]`, or `http://` for a
//!   loopback host (a `Secure` cookie set over plain HTTP elsewhere is never sent back, so
//!   the browser would loop on the sign-in page); no user info, query, fragment, nor a
//!   path other than `/`. Required when `enabled`.
//! - `cookie_domain` is `public_url`'s host or a parent domain of it (RFC 6265 §5.3 step 6:
//!   a browser refuses a `Domain` that does not domain-match the setting host); a leading
//!   `.` is dropped as RFC 6265 §4.1.2.3 does.
//! - `allowed_redirect_hosts` entries are `host`, `host:port` or `.domain[:port]`, ASCII,
//!   stored lower case as written (an explicit port stays, so `host:80` never matches an
//!   https default port).
//! - Lifetimes are whole seconds; `inactivity` and `expiration` longer than zero;
//!   `remember_me` zero hides the box.

use std::time::Duration;

use super::file::BrowserFile;
use super::problems::Problems;
use super::units::parse_duration;

/// `[browser]` as the running gateway uses it (reloadable, SPEC §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSettings {
    /// Off (the default): no pages, no cookie, no redirects; the API behaviour only.
    pub enabled: bool,
    /// Where browsers reach gatehouse: scheme, host, optional port, path `/` only. The
    /// base of every redirect. When disabled and unset, `http://localhost/` (unused).
    pub public_url: url::Url,
    /// Lower case, without a leading dot; `public_url`'s host or a parent domain of it.
    pub cookie_domain: Option<String>,
    /// Lower case `host`, `host:port` or `.domain` (optionally `:port`) entries.
    pub allowed_redirect_hosts: Vec<String>,
    /// A session unused this long ends (not for remember-me sessions).
    pub inactivity: Duration,
    /// A session ends this long after sign-in, used or not.
    pub expiration: Duration,
    /// Lifetime of a remember-me session; zero hides the box.
    pub remember_me: Duration,
}

/// The session cookie's name without a `Domain` (`__Host-`: host-only, `Path=/`, `Secure`;
/// a sibling subdomain cannot set or shadow it).
pub const HOST_SESSION_COOKIE: &str = "__Host-gatehouse_session";
/// The session cookie's name with `Domain=cookie_domain`.
pub const SECURE_SESSION_COOKIE: &str = "__Secure-gatehouse_session";
/// The pre-session (CSRF) cookie's name without a `Domain`.
pub const HOST_CSRF_COOKIE: &str = "__Host-gatehouse_csrf";
/// The pre-session (CSRF) cookie's name with `Domain=cookie_domain`.
pub const SECURE_CSRF_COOKIE: &str = "__Secure-gatehouse_csrf";

impl Default for BrowserSettings {
    /// SPEC §10's defaults: off, `2h` / `12h` / `14d`.
    fn default() -> Self {
        BrowserSettings {
            enabled: false,
            public_url: placeholder_url(),
            cookie_domain: None,
            allowed_redirect_hosts: Vec::new(),
            inactivity: Duration::from_secs(2 * 3600),
            expiration: Duration::from_secs(12 * 3600),
            remember_me: Duration::from_secs(14 * 86_400),
        }
    }
}

fn placeholder_url() -> url::Url {
    url::Url::parse("http://localhost/").unwrap_or_else(|_| unreachable!("a valid literal URL"))
}

impl BrowserSettings {
    /// The session cookie's name: `__Host-gatehouse_session`, or
    /// `__Secure-gatehouse_session` when `cookie_domain` is set.
    pub fn cookie_name(&self) -> &'static str {
        if self.cookie_domain.is_some() {
            SECURE_SESSION_COOKIE
        } else {
            HOST_SESSION_COOKIE
        }
    }

    /// The pre-session (CSRF) cookie's name: `__Host-gatehouse_csrf`, or
    /// `__Secure-gatehouse_csrf` when `cookie_domain` is set.
    pub fn csrf_cookie_name(&self) -> &'static str {
        if self.cookie_domain.is_some() {
            SECURE_CSRF_COOKIE
        } else {
            HOST_CSRF_COOKIE
        }
    }

    /// `public_url`'s origin as browsers send it in `Origin` (RFC 6454 §6.2), e.g.
    /// `https://app.example.com` or `http://127.0.0.1:8080`.
    pub fn origin(&self) -> String {
        self.public_url.origin().ascii_serialization()
    }

    /// Whether the sign-in form offers "remember me" (`remember_me` longer than zero).
    pub fn remember_me_offered(&self) -> bool {
        !self.remember_me.is_zero()
    }

    /// How stale a session's recorded last use may be (SPEC §10: never coarser than a
    /// tenth of `inactivity`, nor than one minute); at least one second.
    pub fn touch_every(&self) -> Duration {
        (self.inactivity / 10)
            .min(Duration::from_secs(60))
            .max(Duration::from_secs(1))
    }
}

/// Compiles `[browser]`, pushing every problem with its key path.
pub(super) fn validate(raw: &BrowserFile, problems: &mut Problems) -> BrowserSettings {
    let public_url = match raw.public_url.as_deref() {
        Some(text) => match public_url(text) {
            Ok(url) => Some(url),
            Err(problem) => {
                problems.push("browser.public_url", problem);
                None
            }
        },
        None => {
            if raw.enabled {
                problems.push(
                    "browser.public_url",
                    "is required when browser.enabled = true: where browsers reach gatehouse, e.g. \"https://app.example.com\"",
                );
            }
            None
        }
    };
    let cookie_domain = match raw.cookie_domain.trim() {
        "" => None,
        text => match cookie_domain(text, public_url.as_ref()) {
            Ok(domain) => Some(domain),
            Err(problem) => {
                problems.push("browser.cookie_domain", problem);
                None
            }
        },
    };
    let mut allowed_redirect_hosts = Vec::new();
    for (index, entry) in raw.allowed_redirect_hosts.iter().enumerate() {
        match redirect_host(entry) {
            Ok(entry) => allowed_redirect_hosts.push(entry),
            Err(problem) => {
                problems.push(format!("browser.allowed_redirect_hosts[{index}]"), problem)
            }
        }
    }
    let inactivity = lifetime(problems, "browser.inactivity", &raw.inactivity, false);
    let expiration = lifetime(problems, "browser.expiration", &raw.expiration, false);
    let remember_me = lifetime(problems, "browser.remember_me", &raw.remember_me, true);
    BrowserSettings {
        enabled: raw.enabled,
        public_url: public_url.unwrap_or_else(placeholder_url),
        cookie_domain,
        allowed_redirect_hosts,
        inactivity,
        expiration,
        remember_me,
    }
}

fn lifetime(problems: &mut Problems, path: &str, text: &str, zero_allowed: bool) -> Duration {
    let duration = match parse_duration(text) {
        Ok(duration) => duration,
        Err(problem) => {
            problems.push(path, problem);
            return Duration::ZERO;
        }
    };
    if duration.subsec_nanos() != 0 {
        problems.push(path, "must be whole seconds, e.g. \"30m\"");
    } else if duration.is_zero() && !zero_allowed {
        problems.push(path, "must be longer than zero");
    } else if duration.as_secs() > MAX_LIFETIME_SECS {
        problems.push(path, "must be at most \"3650d\"");
    }
    duration
}

/// Ten years: keeps `now + lifetime` far from overflow and from absurd cookies.
const MAX_LIFETIME_SECS: u64 = 3650 * 86_400;

fn public_url(text: &str) -> Result<url::Url, String> {
    let hint = "write an origin such as \"https://app.example.com\"";
    let url = url::Url::parse(text).map_err(|_| format!("`{text}` is not a URL; {hint}"))?;
    let host = match url.host() {
        Some(host) => host,
        None => return Err(format!("`{text}` names no host; {hint}")),
    };
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&host) => {}
        "http" => {
            return Err(format!(
                "`{text}` uses http:// for a host that is not loopback: browsers would never send the Secure session cookie back; use https:// (terminate TLS in gatehouse or in front of it)"
            ))
        }
        _ => return Err(format!("`{text}` is not an http(s) URL; {hint}")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{text}` has user info; {hint}"));
    }
    if url.query().is_some() || url.fragment().is_some() || url.path() != "/" {
        return Err(format!(
            "`{text}` has a path, query or fragment; gatehouse is reached at an origin: {hint}"
        ));
    }
    Ok(url)
}

fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

fn cookie_domain(text: &str, public_url: Option<&url::Url>) -> Result<String, String> {
    let domain = text.strip_prefix('.').unwrap_or(text).to_ascii_lowercase();
    if !domain_name(&domain) {
        return Err(format!(
            "`{text}` is not a domain name; write e.g. \"example.com\", or leave it empty for host-only cookies"
        ));
    }
    let Some(url) = public_url else {
        return Ok(domain);
    };
    match url.host() {
        Some(url::Host::Domain(host)) => {
            let host = host.to_ascii_lowercase();
            let parent = host
                .strip_suffix(domain.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'));
            if parent {
                Ok(domain)
            } else {
                Err(format!(
                    "`{text}` is neither browser.public_url's host `{host}` nor a parent domain of it: browsers would refuse the cookie"
                ))
            }
        }
        _ => Err(
            "browser.public_url names an IP address: cookies cannot be shared across subdomains of it; leave cookie_domain empty"
                .into(),
        ),
    }
}

/// A lower-case DNS name (LDH labels, 1–63 characters each), not an IP address.
fn domain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.parse::<std::net::Ipv4Addr>().is_err()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
        && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// One `allowed_redirect_hosts` entry, lower-cased: `host`, `host:port`, `[v6]`,
/// `[v6]:port`, `.domain` or `.domain:port`.
fn redirect_host(entry: &str) -> Result<String, String> {
    let hint = "write \"app2.example.com\", \"app2.example.com:8443\" or \".example.com\" (its subdomains)";
    let lower = entry.trim().to_ascii_lowercase();
    if lower.is_empty() || !lower.is_ascii() || lower != entry {
        return Err(format!(
            "`{entry}` is not a host; {hint} (ASCII, lower case, no spaces)"
        ));
    }
    let (subdomains, rest) = match lower.strip_prefix('.') {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let Some((inner, after)) = v6.split_once(']') else {
            return Err(format!("`{entry}` is not a host; {hint}"));
        };
        if inner.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{entry}` is not a host; {hint}"));
        }
        let port = match (after, after.strip_prefix(':')) {
            ("", _) => None,
            (_, Some(port)) => Some(port),
            (_, None) => return Err(format!("`{entry}` is not a host; {hint}")),
        };
        (&rest[..inner.len() + 2], port)
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p != 0);
        if !valid {
            return Err(format!("`{entry}` has no valid port (1 to 65535); {hint}"));
        }
    }
    let is_ip = host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok();
    if subdomains && is_ip {
        return Err(format!(
            "`{entry}`: an IP address has no subdomains; list it without the leading `.`"
        ));
    }
    if !is_ip && !domain_name(host) {
        return Err(format!("`{entry}` is not a host; {hint}"));
    }
    Ok(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(raw: BrowserFile) -> Result<BrowserSettings, Vec<(String, String)>> {
        let mut problems = Problems::default();
        let settings = validate(&raw, &mut problems);
        if problems.0.is_empty() {
            Ok(settings)
        } else {
            Err(problems
                .0
                .into_iter()
                .map(|problem| (problem.path, problem.problem))
                .collect())
        }
    }

    fn with_url(url: &str) -> BrowserFile {
        BrowserFile {
            enabled: true,
            public_url: Some(url.into()),
            ..BrowserFile::default()
        }
    }

    #[test]
    fn defaults_are_off_with_spec_lifetimes_and_host_cookies() {
        let settings = checked(BrowserFile::default()).expect("valid");
        assert_eq!(settings, BrowserSettings::default());
        assert_eq!(settings.cookie_name(), "__Host-gatehouse_session");
        assert_eq!(settings.csrf_cookie_name(), "__Host-gatehouse_csrf");
        assert!(settings.remember_me_offered());
        assert_eq!(settings.touch_every(), Duration::from_secs(60));
    }

    #[test]
    fn public_url_is_required_when_enabled_and_must_be_an_origin() {
        let problems = checked(BrowserFile {
            enabled: true,
            ..BrowserFile::default()
        })
        .expect_err("required");
        assert_eq!(problems[0].0, "browser.public_url");
        for good in [
            "https://app.example.com",
            "https://App.Example.com:8443/",
            "http://127.0.0.1:8080",
            "http://localhost:3000",
            "http://[::1]:8080",
        ] {
            let settings = checked(with_url(good)).unwrap_or_else(|p| panic!("{good}: {p:?}"));
            assert_eq!(settings.public_url.path(), "/");
        }
        let settings = checked(with_url("https://App.Example.com:8443")).expect("valid");
        assert_eq!(settings.origin(), "https://app.example.com:8443");
        for bad in [
            "app.example.com",
            "ftp://app.example.com",
            "http://app.example.com",
            "https://user:pw@app.example.com",
            "https://app.example.com/app",
            "https://app.example.com/?a=1",
            "https://app.example.com/#x",
            "https://",
        ] {
            let problems = checked(with_url(bad)).expect_err(bad);
            assert_eq!(problems.len(), 1, "{bad}: {problems:?}");
            assert_eq!(problems[0].0, "browser.public_url", "{bad}");
        }
    }

    #[test]
    fn cookie_domain_must_be_the_host_or_a_parent_and_switches_the_prefix() {
        for (domain, expected) in [
            ("example.com", "example.com"),
            (".Example.com", "example.com"),
            ("app.example.com", "app.example.com"),
        ] {
            let settings = checked(BrowserFile {
                cookie_domain: domain.into(),
                ..with_url("https://app.example.com")
            })
            .expect(domain);
            assert_eq!(settings.cookie_domain.as_deref(), Some(expected));
            assert_eq!(settings.cookie_name(), "__Secure-gatehouse_session");
            assert_eq!(settings.csrf_cookie_name(), "__Secure-gatehouse_csrf");
        }
        for domain in [
            "pp.example.com",
            "other.com",
            "xample.com",
            "exa mple.com",
            "1.2.3.4",
        ] {
            let problems = checked(BrowserFile {
                cookie_domain: domain.into(),
                ..with_url("https://app.example.com")
            })
            .expect_err(domain);
            assert_eq!(problems[0].0, "browser.cookie_domain", "{domain}");
        }
        let problems = checked(BrowserFile {
            cookie_domain: "localhost".into(),
            ..with_url("http://127.0.0.1:8080")
        })
        .expect_err("ip host");
        assert_eq!(problems[0].0, "browser.cookie_domain");
    }

    #[test]
    fn redirect_hosts_are_host_port_or_dot_domain() {
        let settings = checked(BrowserFile {
            allowed_redirect_hosts: [
                "app2.example.com",
                "app2.example.com:8443",
                ".example.com",
                ".example.com:8443",
                "10.0.0.1",
                "[::1]:8080",
                "[::1]",
            ]
            .map(String::from)
            .to_vec(),
            ..with_url("https://app.example.com")
        })
        .expect("valid");
        assert_eq!(settings.allowed_redirect_hosts.len(), 7);
        let bad = [
            "",
            "App2.example.com",
            "app2.example.com:0",
            "app2.example.com:99999",
            "app2.example.com:",
            "app2.example.com/x",
            "user@app2.example.com",
            "*.example.com",
            ".10.0.0.1",
            "[::1",
            "[nope]:80",
            "bücher.example",
            "https://app2.example.com",
        ];
        let problems = checked(BrowserFile {
            allowed_redirect_hosts: bad.map(String::from).to_vec(),
            ..with_url("https://app.example.com")
        })
        .expect_err("invalid");
        let paths: Vec<&str> = problems.iter().map(|(path, _)| path.as_str()).collect();
        let expected: Vec<String> = (0..bad.len())
            .map(|i| format!("browser.allowed_redirect_hosts[{i}]"))
            .collect();
        assert_eq!(paths, expected, "{problems:?}");
    }

    #[test]
    fn lifetimes_are_whole_positive_seconds_and_remember_me_may_be_zero() {
        let settings = checked(BrowserFile {
            remember_me: "0s".into(),
            inactivity: "5m".into(),
            ..with_url("https://app.example.com")
        })
        .expect("valid");
        assert!(!settings.remember_me_offered());
        assert_eq!(settings.touch_every(), Duration::from_secs(30));
        let problems = checked(BrowserFile {
            inactivity: "0s".into(),
            expiration: "1500ms".into(),
            remember_me: "soon".into(),
            ..with_url("https://app.example.com")
        })
        .expect_err("invalid");
        let paths: Vec<&str> = problems.iter().map(|(path, _)| path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "browser.inactivity",
                "browser.expiration",
                "browser.remember_me"
            ]
        );
    }
}
