//! Route patterns (SPEC §2 "Routes"): compiling a `path = "..."` once, when the
//! configuration is loaded, matching it against a normalized path, and deciding whether one
//! pattern covers another (for `check-config`'s shadowing warnings). Matching walks
//! borrowed slices of the already-normalized path (see [`super::path`]) and never
//! allocates. Which route decides a request is [`super::table`]'s business.
//!
//!
//! # Pattern language
//!
//! * A pattern is an absolute path, compared segment by segment, case-sensitively.
//! * `*` inside a segment matches any run of characters (possibly empty) within that
//!   segment, never a `/`.
//! * `**` as a whole segment matches zero or more whole segments: `/static/**` matches
//!   `/static`, `/static/` and `/static/a/b.css`, but not `/staticx`; `/**` matches
//!   every path.
//! * Everything else is literal. Because requests are matched after normalization, a
//!   pattern normalization could never produce (`//`, `.`/`..` segments, `%2F`, an
//!   encoded unreserved character, lower-case hex, `\`, `#`, `?`) is refused at load time
//!   rather than silently never matching.
//!
//! # Threat model
//!
//! Patterns are written by the operator, paths by an attacker. Matching uses the
//! iterative two-pointer glob algorithm, at segment level for `**` and at byte level for
//! `*`, so its cost is bounded by (path length × pattern length) with no recursion:
//! a path of many thousands of segments against `/**/a/**/b/**` stays cheap.

use std::fmt;

use super::path::{self, PathRejection};

/// One compiled segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Matches exactly this segment.
    Literal(Box<str>),
    /// Contains `*`: matches a segment by byte-level glob.
    Glob(Box<str>),
    /// `**`: zero or more whole segments.
    AnySegments,
}

impl Segment {
    /// Whether this single-segment matcher accepts `seg`. Never called on `AnySegments`.
    fn matches(&self, seg: &str) -> bool {
        match self {
            Segment::Literal(lit) => **lit == *seg,
            Segment::Glob(glob) => glob_match(glob.as_bytes(), seg.as_bytes()),
            Segment::AnySegments => true,
        }
    }
}

/// A compiled route pattern (SPEC §2): see the module docs for the language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    segments: Vec<Segment>,
}

/// Why a route pattern was refused at load time. Displays as a lowercase phrase with a
/// hint saying what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    /// The pattern does not start with `/`.
    NotAbsolute,
    /// `**` appears as part of a segment (`/a**`, `/**.css`) rather than a whole one.
    PartialDoubleStar {
        /// The offending segment.
        segment: String,
    },
    /// The pattern contains something every request path containing it is refused for,
    /// so the route could never match.
    NeverMatches(PathRejection),
    /// The pattern is not in normalized form, so no normalized path could ever equal it.
    NotNormalized {
        /// What normalization would change, as a phrase.
        problem: &'static str,
        /// The normalized form of the pattern.
        suggestion: String,
    },
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAbsolute => f.write_str(
                "route pattern must start with '/'; write an absolute path such as `/api/**`",
            ),
            Self::PartialDoubleStar { segment } => write!(
                f,
                "`**` must be a whole segment, but `{segment}` uses it inside one; \
                 write `/**` for any number of segments or `*` for any run inside one segment"
            ),
            Self::NeverMatches(rejection) => {
                write!(f, "route pattern could never match: {rejection}, ")?;
                f.write_str(match rejection {
                    PathRejection::NotOriginForm => "start it with '/'",
                    PathRejection::RawBackslash | PathRejection::EncodedBackslash => {
                        "and such requests are refused with 400; use '/' to separate segments"
                    }
                    PathRejection::RawQuestionMark => {
                        "but the query string plays no part in matching; remove it"
                    }
                    PathRejection::NonAscii => {
                        "and request paths are ascii; percent-encode it as utf-8 (`é` is `%C3%A9`)"
                    }
                    PathRejection::InvalidPercentEncoding => {
                        "and such requests are refused with 400; write `%25` for a literal '%'"
                    }
                    PathRejection::RisesAboveRoot | PathRejection::DotSegmentWithParameters => {
                        "and such requests are refused with 400; remove the '..' segments"
                    }
                    PathRejection::EncodedSlash => {
                        "and such requests are refused with 400; write a literal '/' instead"
                    }
                    PathRejection::RawHash
                    | PathRejection::ControlCharacter
                    | PathRejection::EncodedHash
                    | PathRejection::EncodedControlCharacter => {
                        "and such requests are refused with 400; remove it"
                    }
                })
            }
            Self::NotNormalized {
                problem,
                suggestion,
            } => write!(
                f,
                "route pattern contains {problem}, which request paths never do after \
                 normalization; write `{suggestion}` instead"
            ),
        }
    }
}

impl std::error::Error for PatternError {}

impl Pattern {
    /// Compiles a route pattern. Refuses patterns that do not start with `/`, that use
    /// `**` inside a segment, or that normalization could never produce (SPEC §3.1), each
    /// with a hint.
    pub fn compile(source: &str) -> Result<Pattern, PatternError> {
        if !source.starts_with('/') {
            return Err(PatternError::NotAbsolute);
        }
        // `*` is an ordinary sub-delim to the normalizer, so a pattern is well-formed
        // exactly when it is its own normal form: then normalized request paths can
        // equal it segment for segment.
        match path::normalize(source).map(path::NormalizedPath::into_cow) {
            Err(rejection) => return Err(PatternError::NeverMatches(rejection)),
            Ok(std::borrow::Cow::Owned(normal)) => {
                return Err(PatternError::NotNormalized {
                    problem: normalization_problem(source),
                    suggestion: normal,
                })
            }
            Ok(std::borrow::Cow::Borrowed(_)) => {}
        }
        let segments = source[1..]
            .split('/')
            .map(|seg| {
                if seg == "**" {
                    Ok(Segment::AnySegments)
                } else if seg.contains("**") {
                    Err(PatternError::PartialDoubleStar {
                        segment: seg.to_owned(),
                    })
                } else if seg.contains('*') {
                    Ok(Segment::Glob(seg.into()))
                } else {
                    Ok(Segment::Literal(seg.into()))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Pattern {
            source: source.to_owned(),
            segments,
        })
    }

    /// Whether `normalized_path` (the output of [`path::normalize`]) matches. Allocation
    /// free; cost bounded by path length × pattern length.
    pub fn matches(&self, normalized_path: &str) -> bool {
        let Some(rest) = normalized_path.strip_prefix('/') else {
            return false;
        };
        let pat = &self.segments;
        // Text position: byte offset of the current segment in `rest`, None when every
        // segment has been consumed. `/` is one empty segment; `/a/` is `a` then ``.
        let mut text: Option<usize> = Some(0);
        let mut p = 0;
        // Where to resume when the last `**` seen must absorb one more segment:
        // (pattern index after the `**`, text position the `**` would absorb next).
        let mut backtrack: Option<(usize, usize)> = None;
        loop {
            let Some(pos) = text else {
                // Path exhausted: only trailing `**` (matching zero segments) may remain.
                return pat[p..].iter().all(|s| *s == Segment::AnySegments);
            };
            let (seg, next) = segment_at(rest, pos);
            match pat.get(p) {
                Some(Segment::AnySegments) => {
                    backtrack = Some((p + 1, pos));
                    p += 1;
                }
                Some(single) if single.matches(seg) => {
                    p += 1;
                    text = next;
                }
                _ => match backtrack {
                    // Let the last `**` absorb the segment at its resume point.
                    Some((resume_p, resume_pos)) => {
                        let (_, after) = segment_at(rest, resume_pos);
                        if let Some(after) = after {
                            backtrack = Some((resume_p, after));
                        }
                        p = resume_p;
                        text = after;
                    }
                    None => return false,
                },
            }
        }
    }

    /// True when every path `other` matches is also matched by `self` (used to warn
    /// about shadowed routes). A sound approximation: it may answer false for a pattern
    /// that is in fact covered, never true for one that is not. A `*` in `other` is only
    /// covered by a `*` or `**` in `self`, a `**` in `other` only by a `**`.
    pub fn covers(&self, other: &Pattern) -> bool {
        let (a, b) = (&self.segments, &other.segments);
        let (n, m) = (a.len(), b.len());
        // cov[i][j]: a[i..] covers b[j..]; filled from the ends backwards.
        let width = m + 1;
        let mut cov = vec![false; (n + 1) * width];
        cov[n * width + m] = true;
        for i in (0..n).rev() {
            for j in (0..=m).rev() {
                let value = match (&a[i], b.get(j)) {
                    // `**` matches zero segments here, or swallows b's next segment
                    // whatever it is (a literal, a glob, or any number via b's `**`).
                    (Segment::AnySegments, _) => {
                        cov[(i + 1) * width + j] || (j < m && cov[i * width + j + 1])
                    }
                    // a needs one more segment where b may already have ended.
                    (_, None) => false,
                    (_, Some(Segment::AnySegments)) => false,
                    (Segment::Literal(x), Some(Segment::Literal(y))) => {
                        x == y && cov[(i + 1) * width + j + 1]
                    }
                    (Segment::Literal(_), Some(Segment::Glob(_))) => false,
                    // A `*` in b's text can only be consumed by a `*` in a's glob, which
                    // then also absorbs whatever b's `*` stands for.
                    (Segment::Glob(g), Some(Segment::Literal(t) | Segment::Glob(t))) => {
                        glob_match(g.as_bytes(), t.as_bytes()) && cov[(i + 1) * width + j + 1]
                    }
                };
                cov[i * width + j] = value;
            }
        }
        cov[0]
    }

    /// The leading literal segments, up to the first segment with `*` (or `**`): every
    /// path this pattern matches starts with exactly these segments (`/` is one empty
    /// segment, so `/a/` has the literal prefix `a`, ``). [`super::table`]'s index is
    /// keyed on them, and a pattern can only cover another whose literal prefix starts
    /// with its own.
    pub fn literal_prefix(&self) -> impl Iterator<Item = &str> + '_ {
        self.segments.iter().map_while(|segment| match segment {
            Segment::Literal(literal) => Some(&**literal),
            Segment::Glob(_) | Segment::AnySegments => None,
        })
    }

    /// A necessary condition for [`Pattern::covers`], cheap and allocation free: the
    /// literal segments at the end of `self` must end `other` as the same literals, and
    /// without `**` both have the same number of segments. Lets the shadowing check skip
    /// the full comparison for nearly every pair.
    pub(crate) fn may_cover(&self, other: &Pattern) -> bool {
        let (a, b) = (&self.segments, &other.segments);
        if !a.contains(&Segment::AnySegments) && a.len() != b.len() {
            return false;
        }
        let mut ends = a.iter().rev().zip(b.iter().rev());
        ends.try_for_each(|pair| match pair {
            (Segment::Literal(x), Segment::Literal(y)) if x == y => Ok(()),
            (Segment::Literal(_), _) => Err(false),
            _ => Err(true),
        })
        // All compared pairs were equal literals: what remains of `self` may be `**`.
        .err()
        .unwrap_or(true)
    }

    /// The pattern as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// The segment of `rest` starting at `pos`, and where the next one starts (None at end).
fn segment_at(rest: &str, pos: usize) -> (&str, Option<usize>) {
    let tail = rest.get(pos..).unwrap_or("");
    match tail.find('/') {
        Some(slash) => (&tail[..slash], Some(pos + slash + 1)),
        None => (tail, None),
    }
}

/// Byte-level glob where only `*` is special (any run, possibly empty). Iterative
/// two-pointer algorithm: O(pattern × text) worst case, no recursion, no allocation.
fn glob_match(pat: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pat.get(p) {
            Some(b'*') => {
                star = Some((p + 1, t));
                p += 1;
            }
            Some(&c) if c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((resume_p, resume_t)) => {
                    star = Some((resume_p, resume_t + 1));
                    p = resume_p;
                    t = resume_t + 1;
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// Names what normalization would change in a pattern that is not its own normal form.
fn normalization_problem(source: &str) -> &'static str {
    if source.contains("//") {
        return "an empty segment (`//`)";
    }
    if source[1..].split('/').any(|s| s == "." || s == "..") {
        return "a `.` or `..` segment";
    }
    let bytes = source.as_bytes();
    let escapes = bytes
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'%')
        .filter_map(|(i, _)| bytes.get(i + 1..i + 3));
    for hex in escapes.clone() {
        let value = std::str::from_utf8(hex)
            .ok()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        if value.is_some_and(|v| v.is_ascii_alphanumeric() || b"-._~".contains(&v)) {
            return "a percent-encoded unreserved character (`%41` is `A`, `%2E` is `.`)";
        }
    }
    if escapes
        .clone()
        .any(|hex| hex.iter().any(u8::is_ascii_lowercase))
    {
        return "lower-case hex in a percent-escape (`%3a` is written `%3A`)";
    }
    "a `.` or `..` segment"
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pat(source: &str) -> Pattern {
        match Pattern::compile(source) {
            Ok(p) => p,
            Err(e) => panic!("{source:?} did not compile: {e}"),
        }
    }

    fn compile_err(source: &str) -> PatternError {
        match Pattern::compile(source) {
            Ok(p) => panic!("{source:?} compiled to {p:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn literal_patterns_match_exactly() {
        let p = pat("/health");
        assert!(p.matches("/health"));
        assert!(!p.matches("/health/"));
        assert!(!p.matches("/healthz"));
        assert!(!p.matches("/healt"));
        assert!(!p.matches("/health/x"));
        assert!(!p.matches("/"));
        let root = pat("/");
        assert!(root.matches("/"));
        assert!(!root.matches("/a"));
        let trailing = pat("/a/");
        assert!(trailing.matches("/a/"));
        assert!(!trailing.matches("/a"));
    }

    #[test]
    fn matching_is_case_sensitive() {
        let p = pat("/Admin/x");
        assert!(p.matches("/Admin/x"));
        assert!(!p.matches("/admin/x"));
        assert!(!p.matches("/ADMIN/X"));
        assert!(!pat("/a/*.CSS").matches("/a/x.css"));
    }

    #[test]
    fn single_star_matches_within_one_segment() {
        let p = pat("/a/*");
        assert!(p.matches("/a/b"));
        assert!(p.matches("/a/"));
        assert!(!p.matches("/a"));
        assert!(!p.matches("/a/b/c"));
        let css = pat("/static/*.css");
        assert!(css.matches("/static/site.css"));
        assert!(css.matches("/static/.css"));
        assert!(!css.matches("/static/site.js"));
        assert!(!css.matches("/static/dir/site.css"));
        let mid = pat("/v*/users");
        assert!(mid.matches("/v1/users"));
        assert!(mid.matches("/v/users"));
        assert!(!mid.matches("/x1/users"));
        let many = pat("/*a*b*");
        assert!(many.matches("/ab"));
        assert!(many.matches("/xxaxxbxx"));
        assert!(!many.matches("/ba"));
    }

    #[test]
    fn double_star_matches_zero_or_more_whole_segments() {
        let p = pat("/static/**");
        assert!(p.matches("/static"));
        assert!(p.matches("/static/"));
        assert!(p.matches("/static/a"));
        assert!(p.matches("/static/a/b.css"));
        assert!(!p.matches("/staticx"));
        assert!(!p.matches("/static-x/a"));
        assert!(!p.matches("/"));
        let mid = pat("/a/**/z");
        assert!(mid.matches("/a/z"));
        assert!(mid.matches("/a/b/z"));
        assert!(mid.matches("/a/b/c/z"));
        assert!(!mid.matches("/a/b/c/z/"));
        assert!(!mid.matches("/a/b/c"));
        let lead = pat("/**/x.txt");
        assert!(lead.matches("/x.txt"));
        assert!(lead.matches("/a/b/x.txt"));
        assert!(!lead.matches("/a/b/y.txt"));
    }

    #[test]
    fn root_double_star_matches_everything() {
        let p = pat("/**");
        for path in ["/", "/a", "/a/", "/a/b/c", "/%C3%A9"] {
            assert!(p.matches(path), "{path}");
        }
    }

    #[test]
    fn stars_combine_across_and_within_segments() {
        let p = pat("/**/a/**/b/**");
        assert!(p.matches("/a/b"));
        assert!(p.matches("/x/a/y/b/z"));
        assert!(p.matches("/a/a/b/b"));
        assert!(!p.matches("/b/a"));
        let q = pat("/api/*/items/**");
        assert!(q.matches("/api/v1/items"));
        assert!(q.matches("/api/v1/items/3/x"));
        assert!(!q.matches("/api/items"));
    }

    #[test]
    fn non_paths_never_match() {
        assert!(!pat("/**").matches(""));
        assert!(!pat("/**").matches("a/b"));
    }

    #[test]
    fn patterns_must_be_absolute() {
        assert_eq!(compile_err(""), PatternError::NotAbsolute);
        assert_eq!(compile_err("api/**"), PatternError::NotAbsolute);
        assert_eq!(compile_err("*"), PatternError::NotAbsolute);
        assert!(compile_err("api")
            .to_string()
            .contains("must start with '/'"));
    }

    #[test]
    fn double_star_must_be_a_whole_segment() {
        for source in ["/a**", "/**a", "/a/**.css", "/***", "/a/b**/c"] {
            assert!(
                matches!(compile_err(source), PatternError::PartialDoubleStar { .. }),
                "{source}"
            );
        }
        let msg = compile_err("/a**").to_string();
        assert!(
            msg.contains("whole segment") && msg.contains("`a**`"),
            "{msg}"
        );
        pat("/**/**");
        pat("/a/**/b/**");
    }

    #[test]
    fn patterns_normalization_could_never_produce_are_refused_with_a_hint() {
        let not_normal = |source: &str, suggestion: &str| match compile_err(source) {
            PatternError::NotNormalized {
                suggestion: s,
                problem,
            } => {
                assert_eq!(s, suggestion, "{source}");
                let msg = compile_err(source).to_string();
                assert!(msg.contains(problem) && msg.contains(suggestion), "{msg}");
            }
            other => panic!("{source}: {other:?}"),
        };
        not_normal("/a//b", "/a/b");
        not_normal("//a", "/a");
        not_normal("/a/./b", "/a/b");
        not_normal("/a/b/../c", "/a/c");
        not_normal("/a/.", "/a/");
        not_normal("/%41dmin", "/Admin");
        not_normal("/a%7e", "/a~");
        not_normal("/a%3ab", "/a%3Ab");
        assert!(compile_err("/a//b").to_string().contains("`//`"));
        assert!(compile_err("/%2e/x").to_string().contains("unreserved"));
        assert!(compile_err("/a%3ab").to_string().contains("lower-case"));

        let never = |source: &str, why: PathRejection| {
            assert_eq!(
                compile_err(source),
                PatternError::NeverMatches(why),
                "{source}"
            );
        };
        never("/a\\b", PathRejection::RawBackslash);
        never("/a#b", PathRejection::RawHash);
        never("/a?b=1", PathRejection::RawQuestionMark);
        never("/a%2Fb", PathRejection::EncodedSlash);
        never("/a%2fb", PathRejection::EncodedSlash);
        never("/a%5C", PathRejection::EncodedBackslash);
        never("/a%23", PathRejection::EncodedHash);
        never("/a%00", PathRejection::EncodedControlCharacter);
        never("/a%zz", PathRejection::InvalidPercentEncoding);
        never("/..", PathRejection::RisesAboveRoot);
        never("/a/..;/b", PathRejection::DotSegmentWithParameters);
        never("/caf\u{e9}", PathRejection::NonAscii);
        never("/a\tb", PathRejection::ControlCharacter);
        let msg = compile_err("/a?b=1").to_string();
        assert!(msg.contains("query string"), "{msg}");
        let msg = compile_err("/a%2Fb").to_string();
        assert!(
            msg.contains("encoded '/'") && msg.contains("literal '/'"),
            "{msg}"
        );
    }

    #[test]
    fn as_str_and_display_give_the_source() {
        let p = pat("/static/**");
        assert_eq!(p.as_str(), "/static/**");
        assert_eq!(p.to_string(), "/static/**");
    }

    #[test]
    fn covers_examples() {
        assert!(pat("/a/*").covers(&pat("/a/b")));
        assert!(!pat("/a/b").covers(&pat("/a/*")));
        assert!(pat("/**").covers(&pat("/anything/**/at/*/all")));
        assert!(pat("/**").covers(&pat("/")));
        assert!(pat("/a/**").covers(&pat("/a")));
        assert!(pat("/a/**").covers(&pat("/a/b/**")));
        assert!(!pat("/a/b/**").covers(&pat("/a/**")));
        assert!(!pat("/a/*").covers(&pat("/a/**")));
        assert!(!pat("/a/*").covers(&pat("/a")));
        assert!(!pat("/a").covers(&pat("/a/**")));
        assert!(pat("/*.css").covers(&pat("/*.min.css")));
        assert!(pat("/*").covers(&pat("/x*y")));
        assert!(!pat("/*.min.css").covers(&pat("/*.css")));
        assert!(!pat("/x*").covers(&pat("/*")));
        assert!(pat("/a/**/z").covers(&pat("/a/b/**/c/z")));
        assert!(!pat("/a/**/z").covers(&pat("/a/**")));
        assert!(pat("/**/*.css").covers(&pat("/static/**/x.css")));
        assert!(pat("/x").covers(&pat("/x")));
        assert!(!pat("/x").covers(&pat("/x/")));
    }

    #[test]
    fn literal_prefixes_and_the_cheap_covering_precheck() {
        let prefix = |s: &str| {
            pat(s)
                .literal_prefix()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(prefix("/"), [""]);
        assert_eq!(prefix("/a/"), ["a", ""]);
        assert_eq!(prefix("/svc-1/**"), ["svc-1"]);
        assert_eq!(prefix("/api/v*/x"), ["api"]);
        assert!(prefix("/**").is_empty());
        assert!(prefix("/*.css").is_empty());
        assert!(pat("/**/x").may_cover(&pat("/x")));
        assert!(pat("/a/**").may_cover(&pat("/a")));
        assert!(!pat("/a/*").may_cover(&pat("/a/b/c")));
        assert!(!pat("/**/x").may_cover(&pat("/x/y")));
        assert!(!pat("/**/x").may_cover(&pat("/**")));
        assert!(pat("/**/*").may_cover(&pat("/**")));
    }

    /// Normalized paths built from a small alphabet, so they collide often.
    fn normalized_paths() -> impl Strategy<Value = String> {
        "/[ab.%2eEfF;~*-]{0,12}(/[ab.%2eEfF;~*-]{0,6}){0,5}/?"
            .prop_filter_map("refused by normalization", |s| {
                path::normalize(&s).ok().map(|n| n.into_owned())
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn root_double_star_matches_every_normalized_path(p in normalized_paths()) {
            prop_assert!(pat("/**").matches(&p));
        }

        #[test]
        fn a_literal_pattern_matches_exactly_itself(
            p in normalized_paths().prop_filter("no glob", |p| !p.contains('*')),
            q in normalized_paths(),
        ) {
            let compiled = Pattern::compile(&p);
            prop_assert!(compiled.is_ok(), "{:?}: {:?}", p, compiled);
            if let Ok(compiled) = compiled {
                prop_assert!(compiled.matches(&p));
                prop_assert_eq!(compiled.matches(&q), p == q, "{:?} vs {:?}", p, q);
            }
        }

        #[test]
        fn matching_agrees_with_a_naive_matcher(
            pattern in pattern_sources(),
            path in normalized_paths(),
        ) {
            let compiled = pat(&pattern);
            let segs: Vec<&str> = path[1..].split('/').collect();
            prop_assert_eq!(compiled.matches(&path), naive(&compiled.segments, &segs),
                "{} vs {}", pattern, path);
        }

        #[test]
        fn a_pattern_matches_its_instances_and_covering_is_sound(
            a in pattern_sources(),
            b in pattern_sources(),
            fill in prop::collection::vec("[ab;~]{0,3}", 24),
        ) {
            let (a, b) = (pat(&a), pat(&b));
            let q = instance(&b, &fill);
            prop_assert!(b.matches(&q), "{} does not match its instance {}", b, q);
            if a.covers(&b) {
                prop_assert!(a.matches(&q), "{} covers {} but does not match {}", a, b, q);
            }
            prop_assert!(a.covers(&a));
            if a.covers(&b) {
                prop_assert!(a.may_cover(&b), "{} covers {} but may_cover says no", a, b);
                let (pa, pb): (Vec<&str>, Vec<&str>) = (a.literal_prefix().collect(), b.literal_prefix().collect());
                prop_assert!(pb.starts_with(&pa), "{} covers {} with another literal prefix", a, b);
            }
        }

        #[test]
        fn every_match_starts_with_the_literal_prefix(
            pattern in pattern_sources(),
            path in normalized_paths(),
        ) {
            let compiled = pat(&pattern);
            if compiled.matches(&path) {
                let prefix: Vec<&str> = compiled.literal_prefix().collect();
                let segs: Vec<&str> = path[1..].split('/').collect();
                prop_assert!(segs.starts_with(&prefix), "{} matches {}", pattern, path);
            }
        }
    }

    /// Patterns built from whole segments, so `**` is always well-formed.
    fn pattern_sources() -> impl Strategy<Value = String> {
        const SEGMENTS: &[&str] = &["a", "b", "ab", "*", "a*", "*b", "*a*", "**", "**"];
        (
            prop::collection::vec(prop::sample::select(SEGMENTS), 0..6),
            any::<bool>(),
        )
            .prop_map(|(segs, trailing)| {
                let mut s = format!("/{}", segs.join("/"));
                if trailing && !s.ends_with('/') {
                    s.push('/');
                }
                s
            })
    }

    /// A path matched by `pattern`: every `*` and `**` replaced from `fill` (cyclically).
    fn instance(pattern: &Pattern, fill: &[String]) -> String {
        let mut next = fill.iter().cycle();
        let mut take = || next.next().map_or("", String::as_str);
        let mut segs: Vec<String> = Vec::new();
        for seg in &pattern.segments {
            match seg {
                Segment::Literal(l) => segs.push(l.to_string()),
                Segment::Glob(g) => {
                    let mut s = String::new();
                    for (i, part) in g.split('*').enumerate() {
                        if i > 0 {
                            s.push_str(take());
                        }
                        s.push_str(part);
                    }
                    segs.push(s);
                }
                Segment::AnySegments => {
                    let count = take().len();
                    for _ in 0..count {
                        segs.push(take().to_owned());
                    }
                }
            }
        }
        format!("/{}", segs.join("/"))
    }

    /// Exponential reference matcher over whole segments.
    fn naive(pattern: &[Segment], path: &[&str]) -> bool {
        match pattern.split_first() {
            None => path.is_empty(),
            Some((Segment::AnySegments, rest)) => (0..=path.len()).any(|k| naive(rest, &path[k..])),
            Some((single, rest)) => match path.split_first() {
                Some((seg, tail)) => naive_segment(single, seg) && naive(rest, tail),
                None => false,
            },
        }
    }

    fn naive_segment(single: &Segment, seg: &str) -> bool {
        fn glob(p: &[u8], t: &[u8]) -> bool {
            match p.split_first() {
                None => t.is_empty(),
                Some((b'*', rest)) => (0..=t.len()).any(|k| glob(rest, &t[k..])),
                Some((c, rest)) => t.first() == Some(c) && glob(rest, &t[1..]),
            }
        }
        match single {
            Segment::Literal(l) => **l == *seg,
            Segment::Glob(g) => glob(g.as_bytes(), seg.as_bytes()),
            Segment::AnySegments => true,
        }
    }
}
