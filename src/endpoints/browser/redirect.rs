//! Where a browser may be sent after signing in: the `rd` redirect target (SPEC §10).
//!
//! Open redirects are the classic bug of sign-in pages (OWASP "Unvalidated Redirects and
//! Forwards"; oauth2-proxy GHSA-4mf2-f3wh-gvf2, GHSA-5vxm-qcg3-vhw2, Authelia
//! GHSA-36mw-9rp6-h7r7, caddy-security's `redirect_url` bypasses). Each of those came from
//! judging a string one way and letting the browser resolve it another way: `/\evil.com`
//! (a backslash browsers read as `/`), `//evil.com` and `/.//evil.com` (network-path
//! references), `/%09/evil.com` and tabs or newlines that browsers strip, `https:evil.com`
//! (a special scheme without `//` the URL Standard still parses as a host), user info
//! (`https://app.example.com@evil.com`), look-alike hosts (`app.example.com.evil.com`).
//!
//! So [`redirect_target`] decides on the raw input first and refuses outright what no
//! legitimate target contains — anything but printable ASCII (whitespace, control and
//! non-ASCII characters), a backslash, a leading `//` — before the `url` crate (the WHATWG
//! URL Standard parser browsers also follow) parses it. What it returns is always an
//! absolute URL re-serialized by that parser, never the raw input, so the `Location` header
//! can only name the origin the checks approved:
//!
//! * a path with a single leading `/`, joined to `public_url` (and still on its origin);
//! * an absolute `http`/`https` URL (spelled with `://`) without user info whose origin is
//!   `public_url`'s, or whose host and port match an `allowed_redirect_hosts` entry:
//!   `host` (the scheme's default port), `host:port`, or `.domain` (subdomains of `domain`
//!   on the default port, not `domain` itself). Hosts compare after the parser's
//!   normalization (lower case, IP literals in canonical form), so `127.1` is `127.0.0.1`
//!   and is only allowed when listed as such;
//! * a path the gateway itself would refuse (SPEC §3.1: encoded control characters,
//!   encoded `/` or `\`, …) or one that starts with `//` once dot segments are removed is
//!   refused;
//! * a target under `auth_prefix` (the sign-in and sign-out pages, the API) becomes
//!   `public_url` + `/`, so a sign-in can never chain into a sign-out or a loop.
//!
//! Everything else, an empty `rd` included, is `public_url` + `/`.

use url::{Host, Url};

use crate::routing::path::{is_under, normalize};

/// Longer targets are refused (a `Location` header that long is not a real page).
pub const MAX_TARGET_LEN: usize = 4096;

/// The validated target for `rd`: see the module docs. Total: any input gives a URL on an
/// allowed origin.
pub fn redirect_target(
    rd: &str,
    public_url: &Url,
    allowed_redirect_hosts: &[String],
    auth_prefix: &str,
) -> Url {
    match accepted(rd, public_url, allowed_redirect_hosts) {
        Some(url) if !under_prefix(&url, auth_prefix) => url,
        _ => home(public_url),
    }
}

/// `public_url` with path `/` and neither query nor fragment: the default target.
pub fn home(public_url: &Url) -> Url {
    let mut home = public_url.clone();
    home.set_path("/");
    home.set_query(None);
    home.set_fragment(None);
    home
}

/// The parsed target when the raw input passes every check, before the prefix rule.
fn accepted(rd: &str, public_url: &Url, allowed: &[String]) -> Option<Url> {
    if rd.is_empty()
        || rd.len() > MAX_TARGET_LEN
        || !rd.bytes().all(|b| b.is_ascii_graphic())
        || rd.contains('\\')
    {
        return None;
    }
    let url = if rd.starts_with('/') {
        if rd.starts_with("//") {
            return None;
        }
        let url = public_url.join(rd).ok()?;
        (url.origin() == public_url.origin()).then_some(url)?
    } else {
        if !(starts_with_ignore_case(rd, "https://") || starts_with_ignore_case(rd, "http://")) {
            return None;
        }
        let url = Url::parse(rd).ok()?;
        if !matches!(url.scheme(), "http" | "https")
            || !url.username().is_empty()
            || url.password().is_some()
            || !host_allowed(&url, public_url, allowed)
        {
            return None;
        }
        url
    };
    // `/.//evil.com` is `//evil.com` once the parser removed the dot segment.
    if url.cannot_be_a_base() || url.path().starts_with("//") || normalize(url.path()).is_err() {
        return None;
    }
    Some(url)
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// True when the target's path is `auth_prefix` or below it (compared in SPEC §3.1 normal
/// form, so `/%61uth/x` is `/auth/x`). A path that does not normalize counts as under it.
fn under_prefix(url: &Url, auth_prefix: &str) -> bool {
    match normalize(url.path()) {
        Ok(path) => is_under(path.as_str(), auth_prefix),
        Err(_) => true,
    }
}

/// Whether an absolute target's host and port are `public_url`'s (same origin) or match an
/// entry of `allowed_redirect_hosts`.
fn host_allowed(url: &Url, public_url: &Url, allowed: &[String]) -> bool {
    if url.origin() == public_url.origin() {
        return true;
    }
    allowed.iter().any(|entry| entry_matches(entry, url))
}

/// One `allowed_redirect_hosts` entry against a parsed URL.
fn entry_matches(entry: &str, url: &Url) -> bool {
    let Some((name, port)) = split_entry(entry) else {
        return false;
    };
    let port_matches = match port {
        Some(port) => url.port_or_known_default() == Some(port),
        // The parser drops a port equal to the scheme's default, so none left = default.
        None => url.port().is_none(),
    };
    if !port_matches {
        return false;
    }
    let name = name.to_ascii_lowercase();
    match (name.strip_prefix('.'), url.host()) {
        (Some(domain), Some(Host::Domain(host))) => {
            !domain.is_empty() && host.len() > name.len() && host.ends_with(name.as_str())
        }
        (Some(_), _) => false,
        (None, Some(_)) => url.host_str() == Some(name.as_str()),
        (None, None) => false,
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` or `.domain` → (name, port).
fn split_entry(entry: &str) -> Option<(&str, Option<u16>)> {
    if entry.starts_with('[') {
        let end = entry.find(']')?;
        let (name, rest) = entry.split_at(end + 1);
        return match rest.strip_prefix(':') {
            Some(port) => Some((name, Some(port.parse().ok()?))),
            None if rest.is_empty() => Some((name, None)),
            None => None,
        };
    }
    match entry.rsplit_once(':') {
        Some((name, port)) => Some((name, Some(port.parse().ok()?))),
        None => Some((entry, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn public() -> Url {
        Url::parse("https://app.example.com").expect("public url")
    }

    fn allowed() -> Vec<String> {
        vec![
            "app2.example.com".to_string(),
            "app3.example.com:8443".to_string(),
            ".apps.example.org".to_string(),
            "[::1]:9000".to_string(),
        ]
    }

    fn target(rd: &str) -> String {
        redirect_target(rd, &public(), &allowed(), "/auth").to_string()
    }

    const HOME: &str = "https://app.example.com/";

    #[test]
    fn paths_join_public_url() {
        assert_eq!(target("/"), HOME);
        assert_eq!(target("/a/b?c=d#e"), "https://app.example.com/a/b?c=d#e");
        assert_eq!(target("/a/../b"), "https://app.example.com/b");
        assert_eq!(target("/a%20b"), "https://app.example.com/a%20b");
        assert_eq!(
            target("/x?q=\"<>'"),
            "https://app.example.com/x?q=%22%3C%3E%27"
        );
        assert_eq!(target(""), HOME);
    }

    #[test]
    fn advisory_inputs_stay_home() {
        for rd in [
            "/\\evil.com",
            "\\\\evil.com",
            "/\\/evil.com",
            "//evil.com",
            "///evil.com",
            "/.//evil.com",
            "/./\\evil.com",
            "/../..//evil.com",
            "/%09/evil.com",
            "/%0a/evil.com",
            "/%5C/evil.com",
            "/%2F/evil.com",
            "https:evil.com",
            "https:/evil.com",
            "http:\\\\evil.com",
            "https:///evil.com",
            "evil.com",
            "javascript:alert(1)",
            "JavaScript://%0aalert(1)",
            "data:text/html,<script>alert(1)</script>",
            "ftp://app.example.com/",
            "https://evil.com/",
            "https://app.example.com.evil.com/",
            "https://app.example.com@evil.com/",
            "https://user:pass@app.example.com/",
            "https://user@app.example.com/",
            "https://evil.com#@app.example.com",
            "https://evil.com?@app.example.com",
            "/\t/evil.com",
            "/\r\nLocation: https://evil.com",
            "https://app.example.com/\r\nSet-Cookie: x=y",
            " /a",
            "/a b",
            "https://app.exаmple.com/",
            "/caf\u{e9}",
            "https://127.0.0.1/",
            "https://2130706433/",
            "https://[::1]/",
            "http://app.example.com/",
            "https://app.example.com:444/",
            "https://apps.example.org/",
            "https://example.com/",
            "https://app2.example.com:8443/",
            "https://app3.example.com/",
            "https://x.apps.example.org:8443/",
            "https://x.apps.example.org.evil.com/",
            "https://xapps.example.org/",
        ] {
            assert_eq!(target(rd), HOME, "{rd:?}");
        }
    }

    #[test]
    fn listed_hosts_are_taken() {
        assert_eq!(
            target("https://app.example.com/x"),
            "https://app.example.com/x"
        );
        assert_eq!(
            target("HTTPS://APP.Example.com:443/x"),
            "https://app.example.com/x"
        );
        assert_eq!(
            target("https://app2.example.com/y"),
            "https://app2.example.com/y"
        );
        assert_eq!(
            target("http://app2.example.com/y"),
            "http://app2.example.com/y"
        );
        assert_eq!(
            target("https://app3.example.com:8443/z"),
            "https://app3.example.com:8443/z"
        );
        assert_eq!(
            target("https://a.b.apps.example.org/"),
            "https://a.b.apps.example.org/"
        );
        assert_eq!(target("http://[::1]:9000/v6"), "http://[::1]:9000/v6");
    }

    #[test]
    fn targets_under_the_prefix_go_home() {
        for rd in [
            "/auth",
            "/auth/",
            "/auth/sign_out",
            "/auth/sign_in?rd=//evil.com",
            "/%61uth/sign_out",
            "/x/../auth/sign_out",
            "https://app.example.com/auth/sign_out",
            "https://app2.example.com/auth/logout",
        ] {
            assert_eq!(target(rd), HOME, "{rd:?}");
        }
        assert_eq!(target("/authors"), "https://app.example.com/authors");
    }

    #[test]
    fn ip_literal_public_urls_and_entries() {
        let public = Url::parse("http://127.0.0.1:8080").expect("url");
        let listed = vec!["10.0.0.1".to_string()];
        let go = |rd: &str| redirect_target(rd, &public, &listed, "/auth").to_string();
        assert_eq!(go("/p"), "http://127.0.0.1:8080/p");
        assert_eq!(go("http://127.0.0.1:8080/q"), "http://127.0.0.1:8080/q");
        assert_eq!(go("http://127.1:8080/q"), "http://127.0.0.1:8080/q");
        assert_eq!(go("http://10.0.0.1/r"), "http://10.0.0.1/r");
        assert_eq!(go("http://10.0.0.1:8080/r"), "http://127.0.0.1:8080/");
        assert_eq!(go("http://localhost:8080/"), "http://127.0.0.1:8080/");
        assert_eq!(go("http://0x7f.1:8080/"), "http://127.0.0.1:8080/");
    }

    #[test]
    fn entries_parse() {
        assert_eq!(split_entry("a.b"), Some(("a.b", None)));
        assert_eq!(split_entry("a.b:81"), Some(("a.b", Some(81))));
        assert_eq!(split_entry("[::1]"), Some(("[::1]", None)));
        assert_eq!(split_entry("[::1]:81"), Some(("[::1]", Some(81))));
        assert_eq!(split_entry("a.b:x"), None);
        assert_eq!(split_entry("[::1]x"), None);
        let url = Url::parse("https://example.com/").expect("url");
        assert!(
            !entry_matches(".example.com", &url),
            "not the domain itself"
        );
        assert!(!entry_matches(".", &url));
    }

    /// The origins [`allowed`] and [`public`] permit.
    fn origin_allowed(url: &Url) -> bool {
        let host = url.host_str().unwrap_or("");
        let port = url.port_or_known_default();
        let default = url.port().is_none();
        (url.origin() == public().origin())
            || (host == "app2.example.com" && default)
            || (host == "app3.example.com" && port == Some(8443))
            || (host.ends_with(".apps.example.org") && default)
            || (host == "[::1]" && port == Some(9000))
    }

    fn interesting() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("/".to_string()),
            Just("//".to_string()),
            Just("\\".to_string()),
            Just(".".to_string()),
            Just("..".to_string()),
            Just("@".to_string()),
            Just(":".to_string()),
            Just("?".to_string()),
            Just("#".to_string()),
            Just("%".to_string()),
            Just("%09".to_string()),
            Just("%2f".to_string()),
            Just("%5c".to_string()),
            Just("\t".to_string()),
            Just("https:".to_string()),
            Just("http://".to_string()),
            Just("https://".to_string()),
            Just("app.example.com".to_string()),
            Just("app2.example.com".to_string()),
            Just("x.apps.example.org".to_string()),
            Just("evil.com".to_string()),
            Just("[::1]".to_string()),
            Just(":9000".to_string()),
            Just(":8443".to_string()),
            Just("auth".to_string()),
            "[ -~]{0,4}",
            "\\PC{0,2}",
        ];
        proptest::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn whatever_is_accepted_stays_on_an_allowed_origin(rd in interesting()) {
            let url = redirect_target(&rd, &public(), &allowed(), "/auth");
            prop_assert!(matches!(url.scheme(), "http" | "https"));
            prop_assert!(url.username().is_empty() && url.password().is_none());
            prop_assert!(origin_allowed(&url), "{rd:?} -> {url}");
            prop_assert!(!url.path().starts_with("//"));
            prop_assert!(url.as_str().bytes().all(|b| b.is_ascii_graphic()));
            prop_assert!(!under_prefix(&url, "/auth"));
            // The re-serialized URL reads back as itself and is accepted unchanged.
            let again = redirect_target(url.as_str(), &public(), &allowed(), "/auth");
            prop_assert_eq!(again.as_str(), url.as_str());
        }
    }
}
