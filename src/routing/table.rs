//! The compiled route table (SPEC §2 "Routes"): which rule decides a request.
//!
//! Routes are checked in file order and the first whose pattern and methods both match
//! decides. A request that matches none gets the default, written once here
//! ([`RouteTable::decide`], [`UNMATCHED`]): a valid token is required (default deny for
//! anonymous callers), forwarded to the `default` upstream. Matching is allocation free.
//! [`RouteTable::shadowed`] finds routes an earlier one makes unreachable (warnings).

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
}

impl RouteTable {
    /// A table checked in the given order.
    pub fn new(routes: Vec<Route>) -> Self {
        RouteTable { routes }
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
    pub fn find(&self, method: &Method, normalized_path: &str) -> Option<(usize, &Route)> {
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
    pub fn shadowed(&self) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        for (later, route) in self.routes.iter().enumerate() {
            let by = self.routes[..later].iter().position(|earlier| {
                methods_include(&earlier.methods, &route.methods)
                    && earlier.pattern.covers(&route.pattern)
            });
            if let Some(earlier) = by {
                found.push((later, earlier));
            }
        }
        found
    }
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
