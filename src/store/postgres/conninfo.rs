//! The connection string, read the way libpq reads it (URL `postgres://…` or key/value
//! `host=… dbname=…`), for the two things the driver does not do itself:
//!
//! - **`sslmode`** (SPEC §8: honoured): `tokio-postgres` knows `disable`, `prefer` and
//!   `require` only, so `verify-ca` and `verify-full` (and `sslrootcert`, the CA file they
//!   verify against) are taken out here, handed to the driver as `require`, and the
//!   verification is done by our rustls configuration (`super::tls`).
//! - **Redaction**: the password never appears in a log line or an error. [`redact`] masks
//!   it in either form, and [`Conninfo::scrub`] removes it from any text that might quote
//!   it (a driver message), as a second line of defence.

use percent_encoding::percent_decode_str;

/// libpq's `sslmode`, as far as this gateway distinguishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, certificate not verified (libpq's default).
    Prefer,
    /// TLS or nothing, certificate not verified (as libpq without a root file).
    Require,
    /// TLS, the chain verified against the roots, the host name not checked.
    VerifyCa,
    /// TLS, the chain and the host name verified.
    VerifyFull,
}

/// A parsed connection string: what to hand the driver, and the TLS settings we handle.
pub struct Conninfo {
    /// The connection string for `tokio_postgres::Config`, with `sslmode` mapped to what
    /// the driver knows and `sslrootcert` removed.
    pub driver: zeroize::Zeroizing<String>,
    pub sslmode: SslMode,
    /// `sslrootcert`: a PEM file of CA certificates to verify against instead of the
    /// system roots (`verify-ca`, `verify-full`).
    pub sslrootcert: Option<String>,
    /// The password as written, to scrub from messages.
    password: Option<zeroize::Zeroizing<String>>,
}

impl std::fmt::Debug for Conninfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conninfo")
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .finish_non_exhaustive()
    }
}

fn is_url(conn: &str) -> bool {
    let conn = conn.trim_start();
    conn.starts_with("postgres://") || conn.starts_with("postgresql://")
}

fn parse_sslmode(value: &str) -> Result<SslMode, String> {
    Ok(match value {
        "disable" => SslMode::Disable,
        // libpq's `allow` tries without TLS first; the closest we offer is `prefer`.
        "allow" | "prefer" => SslMode::Prefer,
        "require" => SslMode::Require,
        "verify-ca" => SslMode::VerifyCa,
        "verify-full" => SslMode::VerifyFull,
        other => {
            return Err(format!(
                "sslmode {other:?} is not one of disable, allow, prefer, require, verify-ca, \
                 verify-full"
            ))
        }
    })
}

fn driver_sslmode(mode: SslMode) -> &'static str {
    match mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => "require",
    }
}

/// One `key=value` pair of the key/value form.
struct Pair {
    key: String,
    value: zeroize::Zeroizing<String>,
}

/// Splits the key/value form (`key = value`, values optionally single-quoted with `\'`
/// and `\\` escapes, pairs separated by white space).
fn split_pairs(conn: &str) -> Result<Vec<Pair>, String> {
    let mut pairs = Vec::new();
    let mut chars = conn.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("the connection string has no '=' after {key:?}"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = zeroize::Zeroizing::new(String::new());
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err("unterminated quoted value".into()),
                    },
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("unterminated quoted value of {key:?}")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '\\' {
                    chars.next();
                    if let Some(c) = chars.next() {
                        value.push(c);
                    }
                    continue;
                }
                value.push(c);
                chars.next();
            }
        }
        pairs.push(Pair { key, value });
    }
}

fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

impl Conninfo {
    /// Reads `conn`. The error never quotes the string.
    pub fn parse(conn: &str) -> Result<Conninfo, String> {
        if is_url(conn) {
            Self::parse_url(conn.trim())
        } else {
            Self::parse_pairs(conn)
        }
    }

    fn parse_url(conn: &str) -> Result<Conninfo, String> {
        let (base, query) = match conn.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (conn, None),
        };
        let mut sslmode = SslMode::Prefer;
        let mut sslrootcert = None;
        let mut password = None;
        let mut kept: Vec<String> = Vec::new();
        for param in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            let decoded = zeroize::Zeroizing::new(
                percent_decode_str(value)
                    .decode_utf8()
                    .map_err(|_| format!("the value of {key:?} is not valid UTF-8"))?
                    .into_owned(),
            );
            match key {
                "sslmode" => {
                    sslmode = parse_sslmode(&decoded)?;
                    kept.push(format!("sslmode={}", driver_sslmode(sslmode)));
                }
                "sslrootcert" => sslrootcert = Some(decoded.to_string()),
                "password" => {
                    password = Some(decoded);
                    kept.push(param.to_string());
                }
                _ => kept.push(param.to_string()),
            }
        }
        if password.is_none() {
            password = url_password(base);
        }
        let mut driver = zeroize::Zeroizing::new(base.to_string());
        if !kept.is_empty() {
            driver.push('?');
            driver.push_str(&kept.join("&"));
        }
        Ok(Conninfo {
            driver,
            sslmode,
            sslrootcert,
            password,
        })
    }

    fn parse_pairs(conn: &str) -> Result<Conninfo, String> {
        let mut sslmode = SslMode::Prefer;
        let mut sslrootcert = None;
        let mut password = None;
        let mut driver = zeroize::Zeroizing::new(String::new());
        for pair in split_pairs(conn)? {
            let value: zeroize::Zeroizing<String> = match pair.key.as_str() {
                "sslmode" => {
                    sslmode = parse_sslmode(&pair.value)?;
                    zeroize::Zeroizing::new(driver_sslmode(sslmode).to_string())
                }
                "sslrootcert" => {
                    sslrootcert = Some(pair.value.to_string());
                    continue;
                }
                "password" => {
                    password = Some(pair.value.clone());
                    pair.value
                }
                _ => pair.value,
            };
            if !driver.is_empty() {
                driver.push(' ');
            }
            driver.push_str(&pair.key);
            driver.push('=');
            driver.push_str(&quote(&value));
        }
        Ok(Conninfo {
            driver,
            sslmode,
            sslrootcert,
            password,
        })
    }

    /// `text` with the password (as written, and percent-decoded) replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        match self.password.as_deref() {
            Some(password) if !password.is_empty() => text.replace(password, "***"),
            _ => text.to_string(),
        }
    }
}

/// The password of `postgres://user:password@host…`, percent-decoded.
fn url_password(base: &str) -> Option<zeroize::Zeroizing<String>> {
    let rest = base.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    Some(zeroize::Zeroizing::new(
        percent_decode_str(password)
            .decode_utf8_lossy()
            .into_owned(),
    ))
}

/// `conn` fit to show: the password masked as `***`, in the URL's user info, in a
/// `password=` query parameter, or in a `password=` pair of the key/value form.
pub fn redact(conn: &str) -> String {
    if is_url(conn) {
        let conn = conn.trim();
        let (base, query) = match conn.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (conn, None),
        };
        let mut out = match base.split_once("://") {
            Some((scheme, rest)) => {
                let (authority, path) = match rest.find('/') {
                    Some(at) => rest.split_at(at),
                    None => (rest, ""),
                };
                let authority = match authority.rsplit_once('@') {
                    Some((userinfo, hosts)) => match userinfo.split_once(':') {
                        Some((user, _)) => format!("{user}:***@{hosts}"),
                        None => format!("{userinfo}@{hosts}"),
                    },
                    None => authority.to_string(),
                };
                format!("{scheme}://{authority}{path}")
            }
            None => base.to_string(),
        };
        if let Some(query) = query {
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some(("password", _)) => "password=***".to_string(),
                    _ => param.to_string(),
                })
                .collect();
            out.push('?');
            out.push_str(&params.join("&"));
        }
        out
    } else {
        match split_pairs(conn) {
            Ok(pairs) => pairs
                .iter()
                .map(|pair| {
                    if pair.key == "password" {
                        "password=***".to_string()
                    } else {
                        format!("{}={}", pair.key, quote(&pair.value))
                    }
                })
                .collect::<Vec<_>>()
                .join(" "),
            // Unreadable: show nothing of it rather than risk the password.
            Err(_) => "<unreadable connection string>".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted_in_the_user_info_and_the_query() {
        assert_eq!(
            redact("postgres://gatehouse:s3cr%40t@db:5432/gatehouse?sslmode=require"),
            "postgres://gatehouse:***@db:5432/gatehouse?sslmode=require"
        );
        assert_eq!(
            redact("postgresql://u@db/x?password=hunter2&application_name=g"),
            "postgresql://u@db/x?password=***&application_name=g"
        );
        assert_eq!(redact("postgres://db"), "postgres://db");
    }

    #[test]
    fn key_value_strings_are_redacted() {
        let shown = redact("host=db user=g password='it is sec\\'ret' dbname=x");
        assert!(!shown.contains("sec"), "{shown}");
        assert!(shown.contains("password=***"), "{shown}");
        assert!(shown.contains("host='db'"), "{shown}");
        let shown = redact("host=db password = plain dbname=x");
        assert!(!shown.contains("plain"), "{shown}");
        assert_eq!(
            redact("host='unterminated password=x"),
            "<unreadable connection string>"
        );
    }

    #[test]
    fn verify_modes_are_handed_to_the_driver_as_require() {
        let info = Conninfo::parse(
            "postgres://u:p@db/x?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3",
        )
        .expect("parse");
        assert_eq!(info.sslmode, SslMode::VerifyFull);
        assert_eq!(info.sslrootcert.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(
            info.driver.as_str(),
            "postgres://u:p@db/x?sslmode=require&connect_timeout=3"
        );
        let info = Conninfo::parse("host=db sslmode=verify-ca sslrootcert='/ca dir/ca.pem'")
            .expect("parse");
        assert_eq!(info.sslmode, SslMode::VerifyCa);
        assert_eq!(info.sslrootcert.as_deref(), Some("/ca dir/ca.pem"));
        assert_eq!(info.driver.as_str(), "host='db' sslmode='require'");
        assert_eq!(
            Conninfo::parse("host=db").expect("parse").sslmode,
            SslMode::Prefer
        );
        assert_eq!(
            Conninfo::parse("postgres://db/x?sslmode=disable")
                .expect("parse")
                .sslmode,
            SslMode::Disable
        );
        let err = Conninfo::parse("postgres://u:pw@db/x?sslmode=bogus").expect_err("bad mode");
        assert!(!err.contains("pw"), "{err}");
    }

    #[test]
    fn scrub_removes_the_password_from_any_text() {
        let info = Conninfo::parse("postgres://u:p%40ss@db/x").expect("parse");
        assert_eq!(
            info.scrub("server said p@ss is wrong"),
            "server said *** is wrong"
        );
        let info = Conninfo::parse("host=db password=hunter2").expect("parse");
        assert_eq!(info.scrub("hunter2!"), "***!");
    }
}
