//! Route tables: the indexed lookup (`RouteTable::find`) answers exactly as the linear scan
//! in file order (`RouteTable::find_linear`) for a table built from the input, for several
//! methods; the indexed shadowing check agrees with the pairwise one.
//!
//! Input: the first line is the request path; every further line is a route, its pattern
//! optionally preceded by a method list and a space (`GET,HEAD /static/**`, `- /x` for an
//! empty list). Lines that do not compile are skipped.
#![no_main]

use gatehouse::routing::path::normalize;
use gatehouse::routing::{Access, Pattern, Route, RouteTable};
use http::Method;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.lines();
    let raw_path = lines.next().unwrap_or("/");
    let routes: Vec<Route> = lines
        .take(64)
        .filter_map(|line| {
            let (methods, pattern) = match line.split_once(' ') {
                Some((list, pattern)) => {
                    let methods = list
                        .split(',')
                        .filter(|m| !m.is_empty() && *m != "-")
                        .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                        .collect();
                    (Some(methods), pattern)
                }
                None => (None, line),
            };
            Some(Route {
                pattern: Pattern::compile(pattern).ok()?,
                methods,
                access: Access::Authenticated,
                roles: Vec::new(),
                upstream: 0,
                upstream_name: "default".to_owned(),
            })
        })
        .collect();
    let table = RouteTable::new(routes);
    let methods = [Method::GET, Method::HEAD, Method::POST];
    // The raw line too: the lookup must agree even on strings that are not normalized.
    let normalized = normalize(raw_path).ok().map(|p| p.into_owned());
    for path in std::iter::once(raw_path).chain(normalized.as_deref()) {
        for method in &methods {
            let indexed = table.find(method, path).map(|(i, _)| i);
            let linear = table.find_linear(method, path).map(|(i, _)| i);
            assert_eq!(indexed, linear, "{method} {path:?}");
        }
    }
    assert_eq!(table.shadowed(), table.shadowed_linear());
});
