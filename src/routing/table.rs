//! The compiled route table (SPEC §2 "Routes"): which rule decides a request.
//!
//! Routes are checked in file order and the first whose pattern and methods both match
//! decides. A request that matches none gets the default, written once here
//! ([`RouteTable::decide`], [`UNMATCHED`]): a valid token is required (default deny for
//! anonymous callers), forwarded to the `default` upstream. Matching is allocation free.
//! [`RouteTable::shadowed`] finds routes an earlier one makes unreachable (warnings).
//!
//! # The index
//!
//! Tables of thousands of routes are matched through an index built once, when the table
//! is compiled: a trie over the patterns' literal prefixes
//! ([`Pattern::literal_prefix`]: the segments before the first `*`). Each node holds, in
//! file order, the routes whose literal prefix ends there. Every path a pattern matches
//! starts with its literal prefix, so the only routes that can match a path are those on
//! the nodes its leading segments walk through; the answer is the lowest-indexed of them
//! whose methods and whole pattern match, which is exactly what the linear scan
//! ([`RouteTable::find_linear`], kept as the reference) answers. A match costs one
//! hash lookup per leading path segment plus the candidates on the walk (routes
//! starting with a `*` are candidates for every path), not one check per route. The same
//! walk limits [`RouteTable::shadowed`] to the earlier routes that could cover a route.

use foldhash::HashMap;
use http::Method;

use super::path::NormalizedPath;
use super::pattern::Pattern;

/// What a matching route does with a request (SPEC §2, `access`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A valid bearer token is required (and one of the route's roles, if any). The default.
    Authenticated,
    /// No token needed; a valid token still yields identity headers.
    Public,
    /// 403 for everyone; never forwarded.
    Deny,
}

/// One `[[routes]]` entry, compiled (SPEC §2 "Routes").
#[derive(Debug, Clone)]
pub struct Route {
    /// The path pattern.
    pub pattern: Pattern,
    /// The methods this route applies to; `None` means every method.
    pub methods: Option<Vec<Method>>,
    /// What happens to a matching request.
    pub access: Access,
    /// With [`Access::Authenticated`]: the token must carry at least one of these (if any).
    pub roles: Vec<String>,
    /// Index into the configured upstream list.
    pub upstream: usize,
    /// The upstream's name under `[upstreams]`, for logs and `check-config`.
    pub upstream_name: String,
}

impl Route {
    /// Whether this route applies to `method` (exact comparison: `GET` does not imply `HEAD`).
    pub fn allows_method(&self, method: &Method) -> bool {
        match &self.methods {
            None => true,
            Some(methods) => methods.contains(method),
        }
    }
}

/// The default for a request no route matches — the one place it is written: a valid
/// token is required (default deny for anonymous callers), and it goes to the `default`
/// upstream (always first in the upstream list).
pub const UNMATCHED: Unmatched = Unmatched {
    access: Access::Authenticated,
    upstream: 0,
    upstream_name: "default",
};

/// The shape of [`UNMATCHED`].
#[derive(Debug, Clone, Copy)]
pub struct Unmatched {
    pub access: Access,
    /// Index into the upstream list.
    pub upstream: usize,
    /// That upstream's name, for listings.
    pub upstream_name: &'static str,
}

/// The route-level part of an access decision: which route (if any), what access, which
/// roles, which upstream. Credentials are the access layer's part (`access::decide`).
#[derive(Debug, Clone, Copy)]
pub struct RouteDecision<'t> {
    /// The deciding route and its index (file order); `None`: [`UNMATCHED`] applied.
    pub matched: Option<(usize, &'t Route)>,
    pub access: Access,
    /// With [`Access::Authenticated`]: one of these is required (none: any valid token).
    pub roles: &'t [String],
    /// Index into the upstream list.
    pub upstream: usize,
}

/// The routes in file order; the first whose pattern and methods both match decides.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// Over the routes' literal prefixes; see the module docs.
    index: PrefixIndex,
}

/// A trie over the literal prefixes of the routes' patterns. Node 0 is the root (the
/// empty prefix); no nodes at all for a table built by `Default`.
#[derive(Debug, Clone, Default)]
struct PrefixIndex {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// The next literal segment and its node. A hash map, not a sorted list: a wide node
    /// (thousands of `/svc-N/**` routes under the root) then costs one hash of the path's
    /// segment, not a binary search over keys spread across the heap. The keys come from
    /// the configuration; a path only looks up, so it cannot grow a probe chain.
    children: HashMap<Box<str>, usize>,
    /// The routes whose literal prefix ends at this node, ascending (file order).
    routes: Vec<usize>,
}

impl PrefixIndex {
    fn build(routes: &[Route]) -> Self {
        let mut children: Vec<HashMap<&str, usize>> = vec![Default::default()];
        let mut owners: Vec<Vec<usize>> = vec![Vec::new()];
        for (index, route) in routes.iter().enumerate() {
            let mut node = 0;
            for segment in route.pattern.literal_prefix() {
                let fresh = children.len();
                let next = *children[node].entry(segment).or_insert(fresh);
                if next == fresh {
                    children.push(Default::default());
                    owners.push(Vec::new());
                }
                node = next;
            }
            owners[node].push(index);
        }
        let nodes = children
            .into_iter()
            .zip(owners)
            .map(|(kids, routes)| Node {
                children: kids.into_iter().map(|(seg, n)| (seg.into(), n)).collect(),
                routes,
            })
            .collect();
        PrefixIndex { nodes }
    }

    /// The nodes a walk down `segments` passes through, the root first; stops where no
    /// child has the next segment. Allocation free.
    fn walk<'i, 's>(
        &'i self,
        mut segments: impl Iterator<Item = &'s str> + 'i,
    ) -> impl Iterator<Item = &'i Node> + 'i {
        let mut node = self.nodes.first();
        std::iter::from_fn(move || {
            let here = node?;
            node = segments
                .next()
                .and_then(|segment| here.children.get(segment).map(|&next| &self.nodes[next]));
            Some(here)
        })
    }
}

impl RouteTable {
    /// A table checked in the given order; builds the index.
    pub fn new(routes: Vec<Route>) -> Self {
        let index = PrefixIndex::build(&routes);
        RouteTable { routes, index }
    }

    /// What the table says about a request before any credential is looked at: the
    /// first matching route's access, roles and upstream, or [`UNMATCHED`] when none
    /// matches. The proxy, `/auth/verify` and `gatehouse explain` all decide through
    /// this. Allocation free.
    pub fn decide(&self, method: &Method, path: &NormalizedPath<'_>) -> RouteDecision<'_> {
        match self.find(method, path) {
            Some((index, route)) => RouteDecision {
                matched: Some((index, route)),
                access: route.access,
                roles: &route.roles,
                upstream: route.upstream,
            },
            None => RouteDecision {
                matched: None,
                access: UNMATCHED.access,
                roles: &[],
                upstream: UNMATCHED.upstream,
            },
        }
    }

    /// The first route whose pattern and methods both match, with its index (file
    /// order). `None`: no route matches, so the default applies (token required).
    /// Allocation free.
    /// Through the index (see the module docs): O(path segments) plus the candidates.
    pub fn find(&self, method: &Method, normalized_path: &str) -> Option<(usize, &Route)> {
        // Not a path: no pattern matches it (`Pattern::matches` says the same).
        let segments = normalized_path.strip_prefix('/')?.split('/');
        // The lowest matching index so far; a node's later routes cannot beat it.
        let mut best = self.routes.len();
        for node in self.index.walk(segments) {
            for &index in &node.routes {
                if index >= best {
                    break;
                }
                let route = &self.routes[index];
                if route.allows_method(method) && route.pattern.matches(normalized_path) {
                    best = index;
                    break;
                }
            }
        }
        self.routes.get(best).map(|route| (best, route))
    }

    /// [`RouteTable::find`] by checking every route in file order: the definition the
    /// index must agree with (property tests, the `route_table` fuzz target) and the
    /// baseline of the micro benchmarks. Allocation free.
    pub fn find_linear(&self, method: &Method, normalized_path: &str) -> Option<(usize, &Route)> {
        self.routes
            .iter()
            .enumerate()
            .find(|(_, r)| r.allows_method(method) && r.pattern.matches(normalized_path))
    }

    /// Every route, in match order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// `(shadowed index, earlier index that shadows it entirely)` for every route that an
    /// earlier one makes unreachable: the earlier pattern covers the later one and the
    /// earlier methods include the later ones (`None` = all methods). Reports the first
    /// such earlier route. An approximation for warnings: a route shadowed only by the
    /// union of several earlier ones is not reported.
    ///
    /// A pattern covers another only if its literal prefix starts the other's, so only
    /// the routes on the index walk down the later route's literal prefix are compared
    /// (answers as [`RouteTable::shadowed_linear`] gives them).
    pub fn shadowed(&self) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        for (later, route) in self.routes.iter().enumerate() {
            let mut by = later;
            for node in self.index.walk(route.pattern.literal_prefix()) {
                for &earlier in &node.routes {
                    if earlier >= by {
                        break;
                    }
                    if shadows(&self.routes[earlier], route) {
                        by = earlier;
                        break;
                    }
                }
            }
            if by < later {
                found.push((later, by));
            }
        }
        found
    }

    /// [`RouteTable::shadowed`] by comparing every pair: the reference it must agree
    /// with. Quadratic in the number of routes.
    pub fn shadowed_linear(&self) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        for (later, route) in self.routes.iter().enumerate() {
            let by = self.routes[..later]
                .iter()
                .position(|earlier| shadows(earlier, route));
            if let Some(earlier) = by {
                found.push((later, earlier));
            }
        }
        found
    }
}

/// Whether `earlier` matches every request `later` would: its methods include the later
/// ones and its pattern covers the later pattern.
fn shadows(earlier: &Route, later: &Route) -> bool {
    methods_include(&earlier.methods, &later.methods)
        && earlier.pattern.may_cover(&later.pattern)
        && earlier.pattern.covers(&later.pattern)
}

/// Whether the method set `outer` includes every method of `inner` (`None` = all).
fn methods_include(outer: &Option<Vec<Method>>, inner: &Option<Vec<Method>>) -> bool {
    match (outer, inner) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(outer), Some(inner)) => inner.iter().all(|m| outer.contains(m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::{Duration, Instant};

    fn pat(source: &str) -> Pattern {
        match Pattern::compile(source) {
            Ok(p) => p,
            Err(e) => panic!("{source:?} did not compile: {e}"),
        }
    }

    fn route(source: &str, methods: Option<&[Method]>, access: Access) -> Route {
        Route {
            pattern: pat(source),
            methods: methods.map(<[Method]>::to_vec),
            access,
            roles: Vec::new(),
            upstream: 0,
            upstream_name: "default".to_owned(),
        }
    }

    fn all(source: &str) -> Route {
        route(source, None, Access::Authenticated)
    }

    #[test]
    fn first_matching_route_wins() {
        let table = RouteTable::new(vec![
            route("/health", None, Access::Public),
            route("/admin/**", None, Access::Authenticated),
            route("/admin/public", None, Access::Public),
            route("/**", None, Access::Deny),
        ]);
        let find = |path| table.find(&Method::GET, path).map(|(i, r)| (i, r.access));
        assert_eq!(find("/health"), Some((0, Access::Public)));
        assert_eq!(find("/admin/public"), Some((1, Access::Authenticated)));
        assert_eq!(find("/admin"), Some((1, Access::Authenticated)));
        assert_eq!(find("/other"), Some((3, Access::Deny)));
        assert_eq!(table.routes().len(), 4);
        assert_eq!(table.routes()[2].pattern.as_str(), "/admin/public");
    }

    #[test]
    fn no_matching_route_gives_none() {
        let table = RouteTable::new(vec![all("/a"), all("/b/**")]);
        assert!(table.find(&Method::GET, "/c").is_none());
        assert!(table.find(&Method::GET, "/bb").is_none());
        assert!(RouteTable::new(Vec::new())
            .find(&Method::GET, "/")
            .is_none());
    }

    #[test]
    fn unmatched_requests_need_a_token_and_go_to_the_default_upstream() {
        let mut deny = route("/admin/**", None, Access::Deny);
        deny.upstream = 1;
        let table = RouteTable::new(vec![deny]);
        let path = |p| crate::routing::path::normalize(p).expect("normal");
        let matched = table.decide(&Method::GET, &path("/admin/x"));
        assert_eq!(matched.matched.map(|(i, _)| i), Some(0));
        assert_eq!((matched.access, matched.upstream), (Access::Deny, 1));
        let unmatched = table.decide(&Method::GET, &path("/other"));
        assert!(unmatched.matched.is_none());
        assert_eq!(unmatched.access, Access::Authenticated);
        assert!(unmatched.roles.is_empty());
        assert_eq!(unmatched.upstream, 0);
    }

    #[test]
    fn methods_filter_before_first_match() {
        let get_head: &[Method] = &[Method::GET, Method::HEAD];
        let table = RouteTable::new(vec![
            route("/static/**", Some(get_head), Access::Public),
            route("/static/**", None, Access::Deny),
        ]);
        let access = |m: Method| table.find(&m, "/static/a.css").map(|(i, _)| i);
        assert_eq!(access(Method::GET), Some(0));
        assert_eq!(access(Method::HEAD), Some(0));
        assert_eq!(access(Method::POST), Some(1));
        assert_eq!(
            access(Method::from_bytes(b"PURGE").expect("valid method")),
            Some(1)
        );
        // `GET` does not imply `HEAD`; extension methods compare exactly.
        let only_get = route("/x", Some(&[Method::GET]), Access::Public);
        assert!(only_get.allows_method(&Method::GET));
        assert!(!only_get.allows_method(&Method::HEAD));
        assert!(all("/x").allows_method(&Method::DELETE));
        let purge = Method::from_bytes(b"PURGE").expect("valid method");
        let purge_only = route("/x", Some(std::slice::from_ref(&purge)), Access::Public);
        assert!(purge_only.allows_method(&purge));
        assert!(!purge_only.allows_method(&Method::GET));
    }

    #[test]
    fn shadowed_routes_are_reported_with_the_first_shadowing_route() {
        let get: &[Method] = &[Method::GET];
        let get_post: &[Method] = &[Method::GET, Method::POST];
        let table = RouteTable::new(vec![
            route("/a/*", Some(get_post), Access::Public),     // 0
            route("/a/b", Some(get), Access::Public),          // 1: shadowed by 0
            route("/a/c", None, Access::Public),               // 2: 0 lacks methods
            route("/a/*", None, Access::Public),               // 3: nothing covers all methods
            route("/a/d", Some(&[Method::PUT]), Access::Deny), // 4: shadowed by 3
            route("/**", None, Access::Deny),                  // 5
            route("/z", Some(get), Access::Public),            // 6: shadowed by 5
            route("/**", None, Access::Public),                // 7: shadowed by 5
        ]);
        assert_eq!(table.shadowed(), vec![(1, 0), (4, 3), (6, 5), (7, 5)]);
        let none = RouteTable::new(vec![all("/a/b"), all("/a/*"), all("/b/**")]);
        assert!(none.shadowed().is_empty());
    }

    #[test]
    fn the_index_answers_like_the_linear_scan_on_examples() {
        let get: &[Method] = &[Method::GET];
        let table = RouteTable::new(vec![
            route("/", None, Access::Public),                    // 0
            route("/a/", None, Access::Public),                  // 1
            route("/a/b", Some(get), Access::Public),            // 2
            route("/a/**", Some(&[Method::POST]), Access::Deny), // 3
            route("/*/b", None, Access::Public),                 // 4
            route("/a/b/**", None, Access::Authenticated),       // 5
            route("/A/b", None, Access::Deny),                   // 6
            route("/a/b*", None, Access::Deny),                  // 7
            route("/**/z", None, Access::Public),                // 8
        ]);
        let cases: &[(&str, Method, Option<usize>)] = &[
            ("/", Method::GET, Some(0)),
            ("/a", Method::GET, None),
            ("/a", Method::POST, Some(3)),
            ("/a/", Method::GET, Some(1)),
            ("/a/b", Method::GET, Some(2)),
            ("/a/b", Method::HEAD, Some(4)),
            ("/a/b", Method::POST, Some(3)),
            ("/a/b/", Method::GET, Some(5)),
            ("/a/bc", Method::GET, Some(7)),
            ("/A/b", Method::GET, Some(4)),
            ("/A/B", Method::GET, None),
            ("/q/r/z", Method::GET, Some(8)),
            ("/a/z", Method::GET, Some(8)),
            ("", Method::GET, None),
            ("a/b", Method::GET, None),
        ];
        for (path, method, want) in cases {
            let got = table.find(method, path).map(|(i, _)| i);
            assert_eq!(got, *want, "{method} {path}");
            assert_eq!(
                table.find_linear(method, path).map(|(i, _)| i),
                *want,
                "{method} {path}"
            );
        }
        let empty = RouteTable::default();
        assert!(empty.find(&Method::GET, "/").is_none());
        assert!(empty.shadowed().is_empty());
    }

    /// Ten thousand routes shaped like a large deployment's, a sample of paths.
    #[test]
    fn a_large_table_answers_like_the_linear_scan() {
        let get_head: &[Method] = &[Method::GET, Method::HEAD];
        let routes: Vec<Route> = (0..10_000)
            .map(|i| match i % 10 {
                0 => route(&format!("/api/v{}/*/items", i % 7), None, Access::Public),
                1 => route(
                    &format!("/static{}/*.css", i % 13),
                    Some(get_head),
                    Access::Public,
                ),
                2 if i % 1000 == 2 => route("/*/health", None, Access::Public),
                _ => route(&format!("/svc-{i}/**"), None, Access::Authenticated),
            })
            .collect();
        let table = RouteTable::new(routes);
        let mut paths = vec![
            "/hello".to_owned(),
            "/".to_owned(),
            "/x/health".to_owned(),
            "/static3/site.css".to_owned(),
        ];
        for i in (0..10_050).step_by(37) {
            paths.push(format!("/svc-{i}/a/b"));
            paths.push(format!("/svc-{i}"));
            paths.push(format!("/api/v{}/x/items", i % 9));
            paths.push(format!("/svc-{i}/health"));
        }
        for path in &paths {
            for method in [Method::GET, Method::POST] {
                assert_eq!(
                    table.find(&method, path).map(|(i, _)| i),
                    table.find_linear(&method, path).map(|(i, _)| i),
                    "{method} {path}"
                );
            }
        }
        let small = RouteTable::new(table.routes()[..1_500].to_vec());
        assert_eq!(small.shadowed(), small.shadowed_linear());
        assert!(!small.shadowed().is_empty());
    }

    /// Segments that overlap on purpose: literals that prefix each other, globs and `**`.
    const PATTERN_SEGMENTS: &[&str] = &["a", "b", "ab", "a*", "*b", "*", "**", "**"];
    const PATH_SEGMENTS: &[&str] = &["a", "b", "ab", "ba", "abb", "A", ""];

    fn route_lists() -> impl Strategy<Value = Vec<Route>> {
        let pattern = (
            prop::collection::vec(prop::sample::select(PATTERN_SEGMENTS), 0..5),
            any::<bool>(),
        )
            .prop_filter_map("not a pattern", |(segs, trailing)| {
                let mut source = format!("/{}", segs.join("/"));
                if trailing && !source.ends_with('/') {
                    source.push('/');
                }
                Pattern::compile(&source).ok()
            });
        let methods = prop::option::of(prop::sample::subsequence(
            vec![Method::GET, Method::HEAD, Method::POST],
            0..=3,
        ));
        prop::collection::vec((pattern, methods), 0..24).prop_map(|routes| {
            routes
                .into_iter()
                .map(|(pattern, methods)| Route {
                    pattern,
                    methods,
                    access: Access::Authenticated,
                    roles: Vec::new(),
                    upstream: 0,
                    upstream_name: "default".to_owned(),
                })
                .collect()
        })
    }

    fn request_paths() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::collection::vec(prop::sample::select(PATH_SEGMENTS), 0..6)
                .prop_map(|segs| format!("/{}", segs.join("/"))),
            Just(String::new()),
            Just("a/b".to_owned()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn the_index_answers_like_the_linear_scan(
            routes in route_lists(),
            paths in prop::collection::vec(request_paths(), 1..8),
            method in prop::sample::select(vec![Method::GET, Method::HEAD, Method::POST, Method::DELETE]),
        ) {
            let table = RouteTable::new(routes);
            for path in &paths {
                prop_assert_eq!(
                    table.find(&method, path).map(|(i, _)| i),
                    table.find_linear(&method, path).map(|(i, _)| i),
                    "{} {}", method, path
                );
            }
            prop_assert_eq!(table.shadowed(), table.shadowed_linear());
        }
    }

    #[test]
    fn pathological_paths_finish_fast() {
        let start = Instant::now();
        let deep = format!("/{}", "a/".repeat(20_000));
        let nested = pat("/**/a/**/b/**");
        assert!(!nested.matches(&deep));
        assert!(!pat("/**/a/**/a/**/a/**/a/**/b").matches(&deep));
        assert!(pat("/**/a/**/a/**/a/**/a/**/").matches(&deep));
        let long_segment = format!("/{}", "a".repeat(50_000));
        assert!(!pat("/*a*a*a*a*a*a*b").matches(&long_segment));
        assert!(pat("/*a*a*a*a*a*a*").matches(&long_segment));
        let table = RouteTable::new((0..200).map(|_| all("/**/a/**/b/**")).collect());
        assert!(table.find(&Method::GET, &deep[..4_000]).is_none());
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }
}
