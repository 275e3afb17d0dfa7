//! Request-path normalization (SPEC §3.1): the one function that turns the path a
//! client sent into the path gatehouse matches routes against **and** forwards.
//!
//! # Threat model
//!
//! An authorization decision is only as good as the agreement between the gateway and
//! the upstream about *which resource* was asked for. Every published gateway bypass of
//! this kind (`/admin/..%2f`, `/%2e%2e/`, `/public/..;/admin`, `//admin`, `\` on Windows
//! back ends …) exploits a path that the gateway reads one way and the upstream another.
//! gatehouse closes that gap by construction:
//!
//! * the path is normalized once, in the RFC 3986 §6.2.2 sense, by [`normalize`] (and
//!   [`normalized_path`], which takes a whole request-target and answers SPEC §5's 400);
//! * the *normalized* path is what routes are matched against **and** what is sent
//!   upstream, so the upstream sees exactly the path that was authorized;
//! * anything whose meaning differs between common servers (encoded `/`, `\` or `#`,
//!   raw `\` or `#`, control characters, malformed escapes, dot segments that would rise
//!   above `/`, dot segments carrying `;` parameters) is refused with 400 instead of
//!   being guessed at.
//!
//! Decoding happens exactly once: `%252e` stays `%252e`, it never becomes `.`.
//!
//! # Flow
//!
//! A fast, allocation-free scan (`is_normal`) recognises paths that are already
//! normal (nearly every real request) and returns them borrowed. Anything else takes the
//! slow path, which validates, decodes and resolves segments into a new `String`.

use std::borrow::Cow;
use std::fmt;

use http::Uri;

use crate::error::GatewayError;

/// Why a request path was refused (answered with 400 `invalid_request`, SPEC §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRejection {
    /// The path does not start with `/` (not origin-form, RFC 9112 §3.2.1).
    NotOriginForm,
    /// A raw `\`: some back ends treat it as a separator.
    RawBackslash,
    /// A raw `#`: a fragment never belongs in a request-target (RFC 9112 §3.2).
    RawHash,
    /// A raw `?`: the query must be split off before the path is normalized.
    RawQuestionMark,
    /// A raw control character (a byte below 0x20, or 0x7F).
    ControlCharacter,
    /// A byte outside ASCII; request-targets are ASCII (RFC 3986 §2).
    NonAscii,
    /// A `%` not followed by two hex digits (RFC 3986 §2.1).
    InvalidPercentEncoding,
    /// `%2F`: an encoded `/`, which upstreams disagree on.
    EncodedSlash,
    /// `%5C`: an encoded `\`.
    EncodedBackslash,
    /// `%23`: an encoded `#`.
    EncodedHash,
    /// `%00`–`%1F` or `%7F`: an encoded control character (NUL truncation and friends).
    EncodedControlCharacter,
    /// A `..` segment would climb above `/` (refused, not clamped as RFC 3986 §5.2.4 would).
    RisesAboveRoot,
    /// A segment whose part before the first `;` is `.` or `..`, e.g. `/public/..;/admin`
    /// (the Tomcat/Spring path-parameter bypass). gatehouse's own addition.
    DotSegmentWithParameters,
}

impl fmt::Display for PathRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotOriginForm => "path does not start with '/'",
            Self::RawBackslash => "path contains a backslash",
            Self::RawHash => "path contains a raw '#'",
            Self::RawQuestionMark => "path contains a raw '?' (the query must be split off)",
            Self::ControlCharacter => "path contains a control character",
            Self::NonAscii => "path contains a non-ascii byte",
            Self::InvalidPercentEncoding => "path contains a '%' not followed by two hex digits",
            Self::EncodedSlash => "path contains an encoded '/' (%2F)",
            Self::EncodedBackslash => "path contains an encoded backslash (%5C)",
            Self::EncodedHash => "path contains an encoded '#' (%23)",
            Self::EncodedControlCharacter => {
                "path contains an encoded control character (%00-%1F or %7F)"
            }
            Self::RisesAboveRoot => "path rises above the root",
            Self::DotSegmentWithParameters => {
                "path contains a '.' or '..' segment with ';' parameters"
            }
        })
    }
}

impl std::error::Error for PathRejection {}

/// Normalizes the path part of a request-target (no query string; percent-encoded as the
/// client sent it) per SPEC §3.1 / RFC 3986 §6.2.2:
///
/// * decodes percent-encoded unreserved characters (§6.2.2.2) and upper-cases the hex
///   digits of every other escape (§6.2.2.1), decoding exactly once;
/// * merges repeated slashes;
/// * removes `.` and `..` segments (§5.2.4), keeping a trailing slash after a trailing dot
///   segment (`/a/b/..` → `/a/`);
/// * refuses everything listed in [`PathRejection`].
///
/// Borrows without allocating when `path` is already normal. The result is a fixed point:
/// normalizing it again returns it borrowed and unchanged.
pub fn normalize(path: &str) -> Result<NormalizedPath<'_>, PathRejection> {
    if is_normal(path.as_bytes()) {
        Ok(NormalizedPath(Cow::Borrowed(path)))
    } else {
        normalize_slow(path.as_bytes()).map(|path| NormalizedPath(Cow::Owned(path)))
    }
}

/// A request path in SPEC §3.1 normal form: the path routes are matched against and the
/// path forwarded. Its only constructor is [`normalize`] (and [`normalized_path`], which
/// calls it), so holding one proves the normalization ran. Borrowed from the request when
/// it was already normal (nearly always); reads as a `str`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPath<'a>(Cow<'a, str>);

impl<'a> NormalizedPath<'a> {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the path was already normal, so nothing was allocated.
    pub fn is_borrowed(&self) -> bool {
        matches!(self.0, Cow::Borrowed(_))
    }

    pub fn into_cow(self) -> Cow<'a, str> {
        self.0
    }

    pub fn into_owned(self) -> String {
        self.0.into_owned()
    }
}

impl std::ops::Deref for NormalizedPath<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for NormalizedPath<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NormalizedPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The normalized path of a request-target, or why it is refused (SPEC §3.1). Origin-form
/// and absolute-form are accepted; asterisk-form and authority-form are not.
pub fn normalized_path(uri: &Uri) -> Result<NormalizedPath<'_>, GatewayError> {
    if uri
        .scheme()
        .is_some_and(|s| s.as_str() != "http" && s.as_str() != "https")
    {
        return Err(GatewayError::invalid_request(
            "the request target must be a path or an http(s) URL",
        ));
    }
    if uri.path_and_query().is_none() && uri.authority().is_some() {
        return Err(GatewayError::invalid_request(
            "authority-form request targets are not accepted",
        ));
    }
    normalize(uri.path()).map_err(|rejection| GatewayError::invalid_request(rejection.to_string()))
}

/// True for the prefix itself and anything below it (`/auth`, `/auth/`, `/auth/x`), not
/// for `/authors`.
pub fn is_under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The hot path: true when `normalize` would return `path` unchanged. Conservative in
/// one direction only: everything it accepts is normal; everything normal is accepted
/// (so that `normalize` borrows whenever it can).
fn is_normal(path: &[u8]) -> bool {
    if path.first() != Some(&b'/') {
        return false;
    }
    let mut seg_start = 1;
    let mut i = 1;
    while i < path.len() {
        match path[i] {
            b'/' => {
                let seg = &path[seg_start..i];
                // `//` (an empty segment that is not the last) or a dot segment.
                if seg.is_empty() || dot_kind(seg) != DotKind::None {
                    return false;
                }
                seg_start = i + 1;
                i += 1;
            }
            b'%' => {
                let (Some(&hi), Some(&lo)) = (path.get(i + 1), path.get(i + 2)) else {
                    return false;
                };
                // Already upper-case (RFC 3986 §6.2.2.1) and not something we decode or refuse.
                if !is_upper_hex(hi) || !is_upper_hex(lo) {
                    return false;
                }
                if escape_kind((hex_value(hi) << 4) | hex_value(lo)) != Ok(EscapeKind::KeepEncoded)
                {
                    return false;
                }
                i += 3;
            }
            b => {
                if check_raw(b).is_err() {
                    return false;
                }
                i += 1;
            }
        }
    }
    // The last segment may be empty (a trailing slash, or the path `/`), never a dot segment.
    dot_kind(&path[seg_start..]) == DotKind::None
}

/// The slow path: validate, decode, merge slashes and remove dot segments in one pass.
fn normalize_slow(path: &[u8]) -> Result<String, PathRejection> {
    if path.first() != Some(&b'/') {
        return Err(PathRejection::NotOriginForm);
    }
    let mut out = String::with_capacity(path.len());
    // Byte offsets in `out` where each kept segment's leading `/` sits: popping a
    // segment for `..` truncates `out` back to its start.
    let mut starts: Vec<usize> = Vec::new();
    let mut trailing_slash = false;
    for seg in path[1..].split(|&b| b == b'/') {
        let start = out.len();
        out.push('/');
        decode_segment(seg, &mut out)?;
        let decoded = &out.as_bytes()[start + 1..];
        let kind = if decoded.is_empty() {
            None
        } else {
            Some(dot_kind(decoded))
        };
        trailing_slash = false;
        match kind {
            // Repeated slashes merge (`//` → `/`): an empty segment is dropped.
            None => {
                out.truncate(start);
                trailing_slash = true;
            }
            // RFC 3986 §5.2.4 steps 2B/2D: `.` is removed.
            Some(DotKind::Dot) => {
                out.truncate(start);
                trailing_slash = true;
            }
            // RFC 3986 §5.2.4 step 2C, except that climbing above `/` is refused.
            Some(DotKind::DotDot) => {
                let parent = starts.pop().ok_or(PathRejection::RisesAboveRoot)?;
                out.truncate(parent);
                trailing_slash = true;
            }
            Some(DotKind::WithParameters) => return Err(PathRejection::DotSegmentWithParameters),
            Some(DotKind::None) => starts.push(start),
        }
    }
    // A trailing empty or dot segment leaves a trailing slash: `/a/.` → `/a/`, `/.` → `/`.
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(out)
}

/// Appends one raw segment to `out`, decoding unreserved escapes, upper-casing the hex of
/// every other escape (RFC 3986 §6.2.2.1–2) and refusing forbidden bytes.
fn decode_segment(seg: &[u8], out: &mut String) -> Result<(), PathRejection> {
    let mut i = 0;
    while i < seg.len() {
        let b = seg[i];
        if b == b'%' {
            // RFC 3986 §2.1: pct-encoded = "%" HEXDIG HEXDIG.
            let (Some(&hi), Some(&lo)) = (seg.get(i + 1), seg.get(i + 2)) else {
                return Err(PathRejection::InvalidPercentEncoding);
            };
            if !hi.is_ascii_hexdigit() || !lo.is_ascii_hexdigit() {
                return Err(PathRejection::InvalidPercentEncoding);
            }
            let value = (hex_value(hi) << 4) | hex_value(lo);
            match escape_kind(value)? {
                EscapeKind::Decode => out.push(char::from(value)),
                EscapeKind::KeepEncoded => {
                    out.push('%');
                    out.push(char::from(hi.to_ascii_uppercase()));
                    out.push(char::from(lo.to_ascii_uppercase()));
                }
            }
            i += 3;
        } else {
            check_raw(b)?;
            out.push(char::from(b));
            i += 1;
        }
    }
    Ok(())
}

/// Refuses raw bytes that have no business in a normalized path.
fn check_raw(b: u8) -> Result<(), PathRejection> {
    match b {
        b'\\' => Err(PathRejection::RawBackslash),
        b'#' => Err(PathRejection::RawHash),
        b'?' => Err(PathRejection::RawQuestionMark),
        0x00..=0x1F | 0x7F => Err(PathRejection::ControlCharacter),
        0x80..=0xFF => Err(PathRejection::NonAscii),
        _ => Ok(()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EscapeKind {
    /// An unreserved character: decoded (RFC 3986 §6.2.2.2).
    Decode,
    /// Anything else that is allowed: kept encoded with upper-case hex.
    KeepEncoded,
}

/// What to do with the byte a `%XX` escape encodes.
fn escape_kind(value: u8) -> Result<EscapeKind, PathRejection> {
    match value {
        // RFC 3986 §2.3: unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"
        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
            Ok(EscapeKind::Decode)
        }
        b'/' => Err(PathRejection::EncodedSlash),
        b'\\' => Err(PathRejection::EncodedBackslash),
        b'#' => Err(PathRejection::EncodedHash),
        0x00..=0x1F | 0x7F => Err(PathRejection::EncodedControlCharacter),
        _ => Ok(EscapeKind::KeepEncoded),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DotKind {
    None,
    Dot,
    DotDot,
    WithParameters,
}

/// Classifies a segment (already decoded). A segment whose part before the first `;`
/// (or an encoded `%3B`, which some servers decode before stripping parameters) is `.` or
/// `..` is a dot segment in disguise.
fn dot_kind(seg: &[u8]) -> DotKind {
    match seg {
        b"." => DotKind::Dot,
        b".." => DotKind::DotDot,
        _ => {
            let rest = seg
                .strip_prefix(b"..")
                .or_else(|| seg.strip_prefix(b"."))
                .unwrap_or(&[]);
            let param = rest.first() == Some(&b';')
                || (rest.len() >= 3 && rest[0] == b'%' && rest[1..3].eq_ignore_ascii_case(b"3b"));
            if param {
                DotKind::WithParameters
            } else {
                DotKind::None
            }
        }
    }
}

fn is_upper_hex(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'A'..=b'F')
}

/// Value of an ASCII hex digit; callers check `is_ascii_hexdigit` first.
fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Normalizes and expects success.
    fn ok(path: &str) -> String {
        match normalize(path) {
            Ok(p) => p.into_owned(),
            Err(e) => panic!("{path:?} was refused: {e}"),
        }
    }

    fn err(path: &str) -> PathRejection {
        match normalize(path) {
            Ok(p) => panic!("{path:?} was accepted as {p:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn already_normal_paths_are_borrowed_unchanged() {
        for p in [
            "/",
            "/a",
            "/a/",
            "/a/b.css",
            "/a/%3A",
            "/%C0%AE",
            "/a;b/c",
            "/;x",
            "/..a/b..",
            "/...",
            "/.well-known/x",
            "/%252e",
        ] {
            assert!(
                matches!(normalize(p).map(NormalizedPath::into_cow), Ok(Cow::Borrowed(s)) if s == p),
                "{p}"
            );
        }
    }

    #[test]
    fn prefix_boundaries() {
        assert!(is_under("/auth", "/auth"));
        assert!(is_under("/auth/login", "/auth"));
        assert!(!is_under("/authors", "/auth"));
    }

    #[test]
    fn must_start_with_slash() {
        assert_eq!(err(""), PathRejection::NotOriginForm);
        assert_eq!(err("a/b"), PathRejection::NotOriginForm);
        assert_eq!(err("*"), PathRejection::NotOriginForm);
        assert_eq!(err("http://x/y"), PathRejection::NotOriginForm);
        assert_eq!(err("%2F"), PathRejection::NotOriginForm);
    }

    #[test]
    fn raw_forbidden_bytes_are_refused() {
        assert_eq!(err("/a\\b"), PathRejection::RawBackslash);
        assert_eq!(err("/a\\..\\"), PathRejection::RawBackslash);
        assert_eq!(err("/a#b"), PathRejection::RawHash);
        assert_eq!(err("/a?b"), PathRejection::RawQuestionMark);
        assert_eq!(err("/a\0"), PathRejection::ControlCharacter);
        assert_eq!(err("/a\tb"), PathRejection::ControlCharacter);
        assert_eq!(err("/a\r\nb"), PathRejection::ControlCharacter);
        assert_eq!(err("/a\x7f"), PathRejection::ControlCharacter);
        assert_eq!(err("/caf\u{e9}"), PathRejection::NonAscii);
        // Even where the slow path would otherwise remove the segment.
        assert_eq!(err("/a/\\/../"), PathRejection::RawBackslash);
    }

    #[test]
    fn invalid_percent_encoding_is_refused() {
        assert_eq!(err("/a%"), PathRejection::InvalidPercentEncoding);
        assert_eq!(err("/a%2"), PathRejection::InvalidPercentEncoding);
        assert_eq!(err("/a%2/b"), PathRejection::InvalidPercentEncoding);
        assert_eq!(err("/%zz"), PathRejection::InvalidPercentEncoding);
        assert_eq!(err("/%g0"), PathRejection::InvalidPercentEncoding);
        assert_eq!(err("/%0g"), PathRejection::InvalidPercentEncoding);
        assert_eq!(err("/%%41"), PathRejection::InvalidPercentEncoding);
        assert_eq!(err("/%\u{e9}"), PathRejection::InvalidPercentEncoding);
    }

    #[test]
    fn encoded_separators_are_refused_in_any_case() {
        assert_eq!(err("/admin/..%2f"), PathRejection::EncodedSlash);
        assert_eq!(err("/admin%2Fx"), PathRejection::EncodedSlash);
        assert_eq!(err("/a%5cb"), PathRejection::EncodedBackslash);
        assert_eq!(err("/a%5Cb"), PathRejection::EncodedBackslash);
        assert_eq!(err("/a%23b"), PathRejection::EncodedHash);
    }

    #[test]
    fn encoded_control_characters_are_refused() {
        assert_eq!(err("/a%00"), PathRejection::EncodedControlCharacter);
        assert_eq!(err("/a%00.html"), PathRejection::EncodedControlCharacter);
        assert_eq!(err("/a%0d%0a"), PathRejection::EncodedControlCharacter);
        assert_eq!(err("/a%1F"), PathRejection::EncodedControlCharacter);
        assert_eq!(err("/a%7f"), PathRejection::EncodedControlCharacter);
        assert_eq!(ok("/a%20b"), "/a%20b");
    }

    #[test]
    fn unreserved_escapes_are_decoded_once() {
        assert_eq!(ok("/%61%62%63"), "/abc");
        assert_eq!(ok("/%41%5A%30%39%2D%2E%5F%7E"), "/AZ09-._~");
        assert_eq!(ok("/%7e"), "/~");
        // `%25` is not unreserved: `%252e` stays, it is never decoded twice.
        assert_eq!(ok("/%252e"), "/%252e");
        assert_eq!(ok("/%252e%252e/admin"), "/%252e%252e/admin");
        // Decoding `%32%65` yields the characters `2e` after a still-encoded `%25`: the
        // result means what the input meant, and is itself normal.
        assert_eq!(ok("/%25%32%65"), "/%252e");
    }

    #[test]
    fn other_escapes_are_upper_cased() {
        assert_eq!(ok("/a%3ab"), "/a%3Ab");
        assert_eq!(ok("/%c3%a9"), "/%C3%A9");
        assert_eq!(ok("/%Ff"), "/%FF");
        assert_eq!(ok("/%3b"), "/%3B");
        // Only the two digits after `%` change case.
        assert_eq!(ok("/%2aab%2a"), "/%2Aab%2A");
    }

    #[test]
    fn overlong_utf8_dot_stays_encoded_and_is_not_a_dot() {
        assert_eq!(ok("/%c0%ae"), "/%C0%AE");
        assert_eq!(ok("/a/%c0%ae%c0%ae/b"), "/a/%C0%AE%C0%AE/b");
        assert_eq!(ok("/%e0%80%ae"), "/%E0%80%AE");
    }

    #[test]
    fn repeated_slashes_merge() {
        assert_eq!(ok("//admin"), "/admin");
        assert_eq!(ok("///admin//x///"), "/admin/x/");
        assert_eq!(ok("//"), "/");
        assert_eq!(ok("/a//"), "/a/");
        // Merging happens before `..` is resolved: an empty segment is not a segment.
        assert_eq!(ok("/a//.."), "/");
    }

    #[test]
    fn dot_segments_are_removed() {
        assert_eq!(ok("/./admin"), "/admin");
        assert_eq!(ok("/a/./b"), "/a/b");
        assert_eq!(ok("/a/b/../c"), "/a/c");
        assert_eq!(ok("/a/b/c/../../d"), "/a/d");
        assert_eq!(ok("/a/../b/../c"), "/c");
        assert_eq!(ok("/."), "/");
        assert_eq!(ok("/a/.."), "/");
        assert_eq!(ok("/a/../"), "/");
    }

    #[test]
    fn trailing_dot_segments_leave_a_trailing_slash() {
        assert_eq!(ok("/admin/."), "/admin/");
        assert_eq!(ok("/a/."), "/a/");
        assert_eq!(ok("/a/b/.."), "/a/");
        assert_eq!(ok("/a/b/./"), "/a/b/");
        assert_eq!(ok("/a/b/%2e"), "/a/b/");
    }

    #[test]
    fn encoded_dot_segments_are_removed_after_decoding() {
        assert_eq!(ok("/a/%2e%2e/admin"), "/admin");
        assert_eq!(ok("/a/.%2e/admin"), "/admin");
        assert_eq!(ok("/a/%2E./admin"), "/admin");
        assert_eq!(ok("/a/%2e/admin"), "/a/admin");
        assert_eq!(ok("/public/%2E%2e/admin"), "/admin");
        assert_eq!(ok("/a/b/%2e%2e/%2e%2e/admin"), "/admin");
    }

    #[test]
    fn rising_above_the_root_is_refused_not_clamped() {
        assert_eq!(err("/.."), PathRejection::RisesAboveRoot);
        assert_eq!(err("/../"), PathRejection::RisesAboveRoot);
        assert_eq!(err("/../admin"), PathRejection::RisesAboveRoot);
        assert_eq!(err("/a/../.."), PathRejection::RisesAboveRoot);
        assert_eq!(err("/%2e%2e/"), PathRejection::RisesAboveRoot);
        assert_eq!(err("/.%2e/"), PathRejection::RisesAboveRoot);
        assert_eq!(err("/%2E./"), PathRejection::RisesAboveRoot);
        assert_eq!(err("/a/%2e%2e/%2e%2e/"), PathRejection::RisesAboveRoot);
        assert_eq!(
            err("/a/%2E%2e/%2e%2E/etc/passwd"),
            PathRejection::RisesAboveRoot
        );
        assert_eq!(err("//../admin"), PathRejection::RisesAboveRoot);
    }

    #[test]
    fn dot_segments_with_parameters_are_refused() {
        assert_eq!(
            err("/public/..;/admin"),
            PathRejection::DotSegmentWithParameters
        );
        assert_eq!(
            err("/public/..;jsessionid=x/admin"),
            PathRejection::DotSegmentWithParameters
        );
        assert_eq!(err("/.;/admin"), PathRejection::DotSegmentWithParameters);
        assert_eq!(
            err("/public/%2e%2e;/admin"),
            PathRejection::DotSegmentWithParameters
        );
        assert_eq!(
            err("/public/..%3b/admin"),
            PathRejection::DotSegmentWithParameters
        );
        assert_eq!(err("/public/..;"), PathRejection::DotSegmentWithParameters);
        // Not dot segments: parameters on ordinary segments, or dots that are not the whole prefix.
        assert_eq!(ok("/a;x/b"), "/a;x/b");
        assert_eq!(ok("/...;/b"), "/...;/b");
        assert_eq!(ok("/.a;/b"), "/.a;/b");
        assert_eq!(ok("/;/b"), "/;/b");
    }

    #[test]
    fn published_gateway_bypasses_are_closed() {
        // Each either refused, or normalized to the path the upstream will also see.
        assert_eq!(err("/admin/..%2f"), PathRejection::EncodedSlash);
        assert_eq!(err("/%2e%2e/admin"), PathRejection::RisesAboveRoot);
        assert_eq!(ok("/public/%2e%2e/admin"), "/admin");
        assert_eq!(ok("/public/.%2E/admin"), "/admin");
        assert_eq!(ok("//admin"), "/admin");
        assert_eq!(ok("/./admin"), "/admin");
        assert_eq!(ok("/admin/."), "/admin/");
        assert_eq!(ok("/%61dmin"), "/admin");
        assert_eq!(err("/a\\..\\admin"), PathRejection::RawBackslash);
        assert_eq!(err("/a%5c..%5cadmin"), PathRejection::EncodedBackslash);
        assert_eq!(err("/admin%23/public"), PathRejection::EncodedHash);
        assert_eq!(
            err("/admin%00/public"),
            PathRejection::EncodedControlCharacter
        );
        assert_eq!(
            err("/public/..;/admin"),
            PathRejection::DotSegmentWithParameters
        );
    }

    #[test]
    fn rejections_display_as_lowercase_phrases() {
        assert_eq!(
            PathRejection::RisesAboveRoot.to_string(),
            "path rises above the root"
        );
        for r in [
            PathRejection::NotOriginForm,
            PathRejection::RawBackslash,
            PathRejection::RawHash,
            PathRejection::RawQuestionMark,
            PathRejection::ControlCharacter,
            PathRejection::NonAscii,
            PathRejection::InvalidPercentEncoding,
            PathRejection::EncodedSlash,
            PathRejection::EncodedBackslash,
            PathRejection::EncodedHash,
            PathRejection::EncodedControlCharacter,
            PathRejection::RisesAboveRoot,
            PathRejection::DotSegmentWithParameters,
        ] {
            let s = r.to_string();
            assert!(s.starts_with("path "), "{s}");
            let e: &dyn std::error::Error = &r;
            assert_eq!(e.to_string(), s);
        }
    }

    /// Tokens that make the properties bite: dots, slashes, escapes of dots, slashes,
    /// unreserved and reserved characters, in both cases, and `;`.
    const TOKENS: &[&str] = &[
        "/", "/", "/", ".", ".", "..", "%", "2", "e", "E", "f", "F", "a", "b", "z", ";", "~", "-",
        "%2e", "%2E", "%2f", "/..", "%41", "%7e", "%3a", "%3B", "%25", "%c0%ae", "%20",
    ];

    fn tokens() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(TOKENS), 0..24).prop_map(|v| v.concat())
    }

    fn candidate_paths() -> impl Strategy<Value = String> {
        prop_oneof![
            tokens().prop_map(|s| format!("/{s}")),
            tokens(),
            "/[/.%2eEfFa-z;~-]{0,30}",
        ]
    }

    /// Every `%XX` in `s`, as its two hex digits.
    fn escapes(s: &str) -> impl Iterator<Item = &str> {
        s.match_indices('%')
            .map(move |(i, _)| s.get(i + 1..i + 3).unwrap_or(""))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn normalizing_is_idempotent_and_the_result_borrows(s in candidate_paths()) {
            if let Ok(n) = normalize(&s) {
                let again = normalize(&n).map(NormalizedPath::into_cow);
                prop_assert!(matches!(&again, Ok(Cow::Borrowed(x)) if *x == n.as_str()),
                    "{:?} -> {:?} -> {:?}", s, n, again);
            }
        }

        #[test]
        fn normalized_paths_have_the_normal_shape(s in candidate_paths()) {
            if let Ok(n) = normalize(&s) {
                prop_assert!(n.starts_with('/'));
                prop_assert!(!n.contains("//"), "{:?} -> {:?}", s, n);
                for seg in n.split('/') {
                    prop_assert!(seg != "." && seg != "..", "{:?} -> {:?}", s, n);
                    prop_assert!(!seg.starts_with(".;") && !seg.starts_with("..;"));
                }
                for hex in escapes(&n) {
                    prop_assert_eq!(hex.len(), 2, "{:?} -> {:?}", s, n);
                    prop_assert!(hex.bytes().all(is_upper_hex), "{:?} -> {:?}", s, n);
                    let v = u8::from_str_radix(hex, 16).unwrap_or(0);
                    prop_assert!(!(v.is_ascii_alphanumeric() || b"-._~".contains(&v)),
                        "encoded unreserved in {:?} -> {:?}", s, n);
                }
            }
        }

        #[test]
        fn owned_results_differ_from_their_input(s in candidate_paths()) {
            // i.e. an already-normal input is always returned borrowed.
            if let Ok(Cow::Owned(n)) = normalize(&s).map(NormalizedPath::into_cow) {
                prop_assert_ne!(n, s);
            }
        }

        #[test]
        fn any_string_is_handled_without_panicking(s in any::<String>()) {
            let _ = normalize(&s);
            let _ = normalize(&format!("/{s}"));
        }
    }
}
