//! Micro-benchmarks of the per-request hot path (issue: performance harness):
//! path normalization (already-normal and messy), route matching on a 50-route table and
//! against the table size (10 to 10,000 routes, indexed and linear),
//! token validation (HS256, and the SPEC §9 key pairs ES256 / EdDSA / RS256, cached and
//! uncached) and issuing, identity-header strip + stamp.
//!
//! Run: `cargo bench --bench micro`. Numbers are for comparing commits on one machine;
//! the load comparison against nginx/HAProxy lives in benches/load/.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use gatehouse::access::{Assertions, IdentityHeaders};
use gatehouse::accounts::view::UserView;
use gatehouse::accounts::Identity;
use gatehouse::auth::keys::TokenKeys;
use gatehouse::config::{
    AssertionSettings, HeaderSettings, KeyFileSettings, KeyState, TokenSettings, UpstreamSettings,
};
use gatehouse::routing::path::normalize;
use gatehouse::routing::{Access, Pattern, Route, RouteTable};
use gatehouse::store::UserRecord;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

fn paths(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalize");
    group.bench_function("already_normal", |b| {
        b.iter(|| normalize(black_box("/api/v1/users/12345/orders")))
    });
    group.bench_function("messy", |b| {
        b.iter(|| normalize(black_box("/api//v1/./users/%7e12345/../12345/orders/%2e/")))
    });
    group.finish();
}

fn fifty_routes() -> RouteTable {
    let mut routes = Vec::new();
    for i in 0..49 {
        let path = match i % 3 {
            0 => format!("/service{i}/**"),
            1 => format!("/api/v{i}/*/items"),
            _ => format!("/static{i}/*.css"),
        };
        routes.push(Route {
            pattern: Pattern::compile(&path).expect("pattern"),
            methods: (i % 5 == 0).then(|| vec![Method::GET, Method::HEAD]),
            access: Access::Authenticated,
            roles: Vec::new(),
            upstream: 0,
            upstream_name: "default".into(),
        });
    }
    routes.push(Route {
        pattern: Pattern::compile("/**").expect("pattern"),
        methods: None,
        access: Access::Authenticated,
        roles: Vec::new(),
        upstream: 0,
        upstream_name: "default".into(),
    });
    RouteTable::new(routes)
}

fn routing(c: &mut Criterion) {
    let table = fifty_routes();
    let mut group = c.benchmark_group("route_50");
    group.bench_function("first", |b| {
        b.iter(|| table.find(black_box(&Method::GET), black_box("/service0/a/b")))
    });
    group.bench_function("last_fallthrough", |b| {
        b.iter(|| table.find(black_box(&Method::GET), black_box("/hello")))
    });
    group.finish();
}

/// A table of `n` routes shaped like a large deployment's: mostly `/svc-N/**`, some
/// `/api/vN/*/items` and GET/HEAD-only `/static/*.css` globs, no catch-all (so a path
/// none of them names falls through).
fn sized_table(n: usize) -> RouteTable {
    let routes = (0..n)
        .map(|i| {
            let (path, methods) = match i % 10 {
                5 => (format!("/api/v{i}/*/items"), None),
                7 => (
                    format!("/static{i}/*.css"),
                    Some(vec![Method::GET, Method::HEAD]),
                ),
                _ => (format!("/svc-{i}/**"), None),
            };
            Route {
                pattern: Pattern::compile(&path).expect("pattern"),
                methods,
                access: Access::Authenticated,
                roles: Vec::new(),
                upstream: 0,
                upstream_name: "default".into(),
            }
        })
        .collect();
    RouteTable::new(routes)
}

/// Issue #17 target 1: match cost against the table size, the index (`find`) next to the
/// linear scan it replaced (`find_linear`), for the first route, a middle one and a path
/// that falls through.
fn routing_sizes(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_table");
    group.measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_millis(500));
    for n in [10, 50, 1_000, 10_000] {
        let table = sized_table(n);
        let middle = (n / 2..).find(|i| ![5, 7].contains(&(i % 10))).unwrap_or(0);
        assert!(table
            .find(&Method::GET, &format!("/svc-{middle}/x"))
            .is_some());
        let cases = [
            ("first", "/svc-0/users/42".to_owned()),
            ("middle", format!("/svc-{middle}/users/42")),
            ("fallthrough", "/hello/world".to_owned()),
        ];
        for (label, path) in &cases {
            assert_eq!(
                table.find(&Method::GET, path).map(|(i, _)| i),
                table.find_linear(&Method::GET, path).map(|(i, _)| i)
            );
            group.bench_function(format!("{n}/{label}/indexed"), |b| {
                b.iter(|| table.find(black_box(&Method::GET), black_box(path)))
            });
            group.bench_function(format!("{n}/{label}/linear"), |b| {
                b.iter(|| table.find_linear(black_box(&Method::GET), black_box(path)))
            });
        }
    }
    group.finish();
}

/// The shadowed-route check `check-config` runs over the whole table: through the index
/// and pairwise (the reference), 1,000 and 10,000 routes.
fn shadowing(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_shadowed");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(200));
    group.measurement_time(Duration::from_secs(2));
    for n in [1_000, 10_000] {
        let table = sized_table(n);
        assert_eq!(table.shadowed(), table.shadowed_linear());
        group.bench_function(format!("{n}/indexed"), |b| b.iter(|| table.shadowed()));
        group.bench_function(format!("{n}/linear"), |b| {
            b.iter(|| table.shadowed_linear())
        });
    }
    group.finish();
}

fn token_settings() -> TokenSettings {
    TokenSettings {
        issuer: "gatehouse".into(),
        audience: "gatehouse".into(),
        algorithm: jsonwebtoken::Algorithm::HS256,
        secret_file: None,
        access_ttl: Duration::from_secs(900),
        refresh_ttl: Duration::from_secs(3600),
        leeway: Duration::from_secs(30),
        keys: Vec::new(),
    }
}

fn tokens(c: &mut Criterion) {
    let settings = token_settings();
    let keys = TokenKeys::new(b"bench-secret-bench-secret-bench-secret", &settings).expect("keys");
    let (token, _) = keys
        .issue(
            "u-123",
            "alice",
            &["reader".into(), "writer".into()],
            Some("s1"),
        )
        .expect("issue");
    // The first verify of a token pays for HMAC + JSON; repeats hit the verified-token cache.
    c.bench_function("jwt_verify_hs256_cached", |b| {
        b.iter(|| keys.verify(black_box(&token)))
    });
    c.bench_function("jwt_verify_hs256_uncached", |b| {
        b.iter_batched(
            || TokenKeys::new(b"bench-secret-bench-secret-bench-secret", &settings).expect("keys"),
            |fresh| fresh.verify(black_box(&token)).map(|_| ()),
            criterion::BatchSize::SmallInput,
        )
    });
}

/// Per key-pair algorithm: verify uncached (the key set alone: header check, signature,
/// claims — what the first request with a token pays), verify cached (every later
/// request), and issue (login / token endpoint signing). HS256 issue for comparison.
fn key_pairs(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("dir");
    let hs =
        TokenKeys::new(b"bench-secret-bench-secret-bench-secret", &token_settings()).expect("keys");
    c.bench_function("jwt_issue_hs256", |b| {
        b.iter(|| hs.issue("u-123", "alice", &["reader".into()], Some("s1")))
    });
    for (alg, name) in [
        (jsonwebtoken::Algorithm::ES256, "es256"),
        (jsonwebtoken::Algorithm::EdDSA, "eddsa"),
        (jsonwebtoken::Algorithm::RS256, "rs256"),
    ] {
        let (pem, _) = gatehouse::auth::keys::generate(alg, 2048).expect("generate");
        let file = dir.path().join(format!("{name}.pem"));
        gatehouse::auth::keys::files::write_private_key(&file, &pem).expect("write");
        let settings = TokenSettings {
            issuer: "https://gw.example".into(),
            algorithm: alg,
            keys: vec![KeyFileSettings {
                file,
                state: KeyState::Active,
            }],
            ..token_settings()
        };
        let keys = TokenKeys::new(b"", &settings).expect("keys");
        let (token, _) = keys
            .issue(
                "u-123",
                "alice",
                &["reader".into(), "writer".into()],
                Some("s1"),
            )
            .expect("issue");
        let ring = keys.keyring();
        c.bench_function(&format!("jwt_verify_{name}_uncached"), |b| {
            b.iter(|| ring.verifying().verify(black_box(&token)).map(|_| ()))
        });
        c.bench_function(&format!("jwt_verify_{name}_cached"), |b| {
            b.iter(|| keys.verify(black_box(&token)).map(|_| ()))
        });
        c.bench_function(&format!("jwt_issue_{name}"), |b| {
            b.iter(|| keys.issue("u-123", "alice", &["reader".into()], Some("s1")))
        });
    }
}

fn identity(c: &mut Criterion) {
    let headers = IdentityHeaders::new(
        &HeaderSettings {
            user: HeaderName::from_static("x-auth-user"),
            subject: HeaderName::from_static("x-auth-subject"),
            roles: HeaderName::from_static("x-auth-roles"),
            forward_authorization: false,
            trusted_proxies: Vec::new(),
        },
        &HeaderName::from_static("x-gatehouse-assertion"),
    );
    let mut request = HeaderMap::new();
    for (name, value) in [
        ("host", "example.com"),
        ("user-agent", "wrk"),
        ("accept", "*/*"),
        ("authorization", "Bearer x.y.z"),
        ("accept-encoding", "gzip"),
        ("x_auth_user", "forged"),
    ] {
        request.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    let settings = token_settings();
    let keys = TokenKeys::new(b"bench-secret-bench-secret-bench-secret", &settings).expect("keys");
    let (token, _) = keys
        .issue("u-123", "alice", &["reader".into()], None)
        .expect("issue");
    let verified = keys.verify(&token).expect("verify");
    let user = UserRecord {
        id: "u-123".into(),
        username: "alice".into(),
        canonical: "alice".into(),
        password_hash: String::new(),
        roles: vec!["reader".into(), "writer".into()],
        enabled: true,
        created: 0,
        password_changed_at: 0,
        generation: 0,
        kind: gatehouse::store::PrincipalKind::User,
    };
    let identity = Identity::new(std::sync::Arc::new(UserView::from(&user)), verified);
    c.bench_function("identity_strip_and_stamp", |b| {
        b.iter_batched(
            || request.clone(),
            |mut map| {
                headers.strip(&mut map);
                headers.stamp(&mut map, &identity);
                map
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

/// SPEC §9: the upstream assertion for a request with an identity, ES256: served from the
/// cache (every request while it is fresh) and minted (once per session, upstream and
/// half `ttl`).
fn assertion(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pem, _) =
        gatehouse::auth::keys::generate(jsonwebtoken::Algorithm::ES256, 2048).expect("generate");
    let file = dir.path().join("active.pem");
    gatehouse::auth::keys::files::write_private_key(&file, &pem).expect("write key");
    let settings = TokenSettings {
        algorithm: jsonwebtoken::Algorithm::ES256,
        issuer: "https://gw.example".into(),
        keys: vec![KeyFileSettings {
            file,
            state: KeyState::Active,
        }],
        ..token_settings()
    };
    let keys = TokenKeys::new(b"bench-secret-bench-secret-bench-secret", &settings).expect("keys");
    let (token, _) = keys
        .issue("u-123", "alice", &["reader".into()], Some("s-1"))
        .expect("issue");
    let verified = keys.verify(&token).expect("verify");
    let user = UserRecord {
        id: "u-123".into(),
        username: "alice".into(),
        canonical: "alice".into(),
        password_hash: String::new(),
        roles: vec!["reader".into(), "writer".into()],
        enabled: true,
        created: 0,
        password_changed_at: 0,
        generation: 0,
        kind: gatehouse::store::PrincipalKind::User,
    };
    let identity = Identity::new(std::sync::Arc::new(UserView::from(&user)), verified);
    let upstreams = [UpstreamSettings {
        name: "default".into(),
        authority: "127.0.0.1:3000".into(),
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(60),
        assertion_audience: "http://127.0.0.1:3000".into(),
    }];
    let enabled = AssertionSettings {
        enabled: true,
        ..AssertionSettings::default()
    };
    let assertions = Assertions::new(&enabled, &upstreams);
    c.bench_function("assertion_es256_cached", |b| {
        b.iter(|| {
            assertions
                .value_for(&keys, Some(black_box(&identity)), 0)
                .map(|value| value.map(|value| value.len()))
        })
    });
    c.bench_function("assertion_es256_minted", |b| {
        b.iter_batched(
            || Assertions::new(&enabled, &upstreams),
            |fresh| {
                fresh
                    .value_for(&keys, Some(black_box(&identity)), 0)
                    .map(|value| value.map(|value| value.len()))
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(
    benches,
    paths,
    routing,
    routing_sizes,
    shadowing,
    tokens,
    key_pairs,
    identity,
    assertion
);
criterion_main!(benches);
