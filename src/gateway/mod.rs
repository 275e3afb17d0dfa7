//! The request pipeline (SPEC §3). [`Gateway::handle`] is the one funnel: every phase
//! returns `Result<_, GatewayError>`, and only the funnel renders errors, counts requests
//! (and their duration) and writes the access line.
//!
//! The phases are plain functions over one per-request `RequestCtx` (request id, start,
//! path, access verdict and user, upstream), in order — 1 and 2 run on every request:
//! 1. `normalize` the path — what is matched is what is forwarded; one Host (RFC 9112 §3.2);
//! 2. `screen`: strip forgeable identity headers, and forwarding headers from untrusted
//!    peers (for gatehouse's own endpoints, first noting whether an untrusted peer named an
//!    original request for forward-auth, which `/auth/verify` then refuses);
//! 3. divert gatehouse's own paths, never forwarded and never subject to routes:
//!    `Gateway::well_known` serves the JWKS and discovery documents at their exact root
//!    paths (SPEC §9); `Gateway::own_endpoint` the endpoints under `auth_prefix`
//!    (`/auth/verify` fills the verdict like a proxied request);
//! 4. match the route and decide access ([`access::decide`](fn@crate::access::decide): route,
//!    bearer token or session cookie, roles); with `[browser] enabled` a browser
//!    navigation without a credential is sent to sign in (302, SPEC §10) instead of 401;
//! 5. `prepare` the upstream request (hop-by-hop out, gatehouse's own cookies out,
//!    forwarding and identity in, and the signed assertion when `[assertion]` is
//!    enabled, SPEC §9);
//! 6. forward, streaming both bodies; splice upgraded connections ([`crate::proxy`]);
//! 7. `clean` the response.
//!
//! The reloadable state is one [`Snapshot`], loaded once per request.

mod snapshot;

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use tokio_util::task::TaskTracker;

use crate::access::{self, cookie, navigation, Allowed, Verdict};
use crate::accounts::Accounts;
use crate::endpoints::well_known::{Document, WellKnown};
use crate::endpoints::{self, EndpointContext};
use crate::error::GatewayError;
use crate::http::{remove_where, Body};
use crate::proxy::upstream::{Upstream, UpstreamBody};
use crate::proxy::{forwarded, hop};
use crate::routing::{is_under, normalized_path, NormalizedPath};
use crate::telemetry::metrics::{Decision, Metrics};
pub use snapshot::Snapshot;

static X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// What a connection tells the pipeline about itself.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: std::net::SocketAddr,
    pub https: bool,
    /// The peer's `X-Forwarded-For` entry, written once per connection rather than per
    /// request ([`forwarded::peer_value`]).
    pub forwarded_for: HeaderValue,
}

impl ConnInfo {
    pub fn new(peer: std::net::SocketAddr, https: bool) -> Self {
        ConnInfo {
            peer,
            https,
            forwarded_for: forwarded::peer_value(peer.ip()),
        }
    }
}

/// The gateway: shared by every connection.
pub struct Gateway {
    pub snapshot: ArcSwap<Snapshot>,
    pub accounts: Arc<Accounts>,
    pub metrics: Arc<Metrics>,
    pub auth_prefix: String,
    /// The discovery document, built at start (it names only restart-only values).
    pub well_known: WellKnown,
    /// `GET /auth/openapi.json`, built at start (it names only `auth_prefix`).
    pub openapi: crate::http::Published,
    /// Spliced upgraded (WebSocket) connections. They outlive the HTTP connection that
    /// carried the upgrade, so the drain waits for them here, up to `shutdown_grace`.
    pub upgrades: TaskTracker,
}

/// Per-request facts: what the phases found, for the access line and metrics.
struct RequestCtx {
    request_id: HeaderValue,
    started: Instant,
    method: Method,
    conn: ConnInfo,
    /// The normalized path, as the access line shows it (empty when refused).
    path: LoggedPath,
    verdict: Verdict,
    upstream: Option<Arc<str>>,
}

/// The access line's path: the request's own when normalization left it as it was (so it
/// is not copied per request), the normalized copy otherwise; empty when refused.
enum LoggedPath {
    Refused,
    Request(Uri),
    Normalized(Box<str>),
}

impl std::fmt::Display for LoggedPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LoggedPath::Refused => "",
            LoggedPath::Request(uri) => uri.path(),
            LoggedPath::Normalized(path) => path,
        })
    }
}

/// The client side of a requested upgrade and the protocol asked for (phase 5 → 6).
type ClientUpgrade = Option<(hyper::upgrade::OnUpgrade, HeaderValue)>;

/// What phase 2 learned about the peer.
#[derive(Clone, Copy)]
struct Screened {
    /// The peer is a trusted proxy: its `X-Forwarded-*` headers were kept.
    trusted: bool,
    /// An untrusted peer named an original request for forward-auth (own endpoints only).
    untrusted_original_request: bool,
    /// The request had a `Cookie` field when screened (nothing adds one later), so
    /// phase 5 looks for gatehouse's cookies only then.
    cookie: bool,
}

impl Gateway {
    /// Handles one request: never fails, every error becomes its SPEC §5 response.
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        conn: ConnInfo,
    ) -> Response<Body> {
        let mut ctx = RequestCtx {
            request_id: request_id(request.headers()),
            started: Instant::now(),
            method: request.method().clone(),
            conn,
            path: LoggedPath::Refused,
            verdict: Verdict::default(),
            upstream: None,
        };
        let result = self.pipeline(request, &mut ctx).await;
        self.finish(ctx, result)
    }

    /// The phases, in order; any of them may end the request early with an error.
    async fn pipeline(
        &self,
        mut request: Request<Incoming>,
        ctx: &mut RequestCtx,
    ) -> Result<Response<Body>, GatewayError> {
        let snapshot = self.snapshot.load_full();
        let uri = request.uri().clone();
        let client_version = request.version();
        // 1. Normalize: the one path we match and forward.
        let path = normalize(&uri, &mut request, ctx)?;
        // 2. Strip what a client could forge.
        let own = is_under(&path, &self.auth_prefix);
        let screened = screen(&snapshot, &mut request, &ctx.conn, own);
        // 3. gatehouse's own documents at the root, and its endpoints.
        if let Some(document) = Document::at(&path) {
            return self.well_known(&snapshot, document, &request, ctx);
        }
        if own {
            // Boxed: the endpoints' futures are large (3.9 KB) and this path is rare;
            // inline, they would make every proxied request's future that size too, and
            // hyper moves it (memcpy) several times per request.
            return Box::pin(self.own_endpoint(&snapshot, request, &path, screened, ctx)).await;
        }
        // 4. Route and access decision.
        let route = snapshot.routes.decide(request.method(), &path);
        let allowed = access::decide(
            &self.accounts,
            &snapshot.browser,
            &route,
            request.headers(),
            &mut ctx.verdict,
        )
        .map_err(|err| self.sign_in_instead(err, &snapshot, &request, &path, &uri, &ctx.conn))?;
        let upstream = snapshot.upstream(allowed.upstream)?;
        ctx.upstream = Some(upstream.name.clone());
        // 5. Prepare the upstream request.
        let assertion = snapshot.assertions.value_for(
            self.accounts.keys(),
            allowed.identity.as_ref(),
            allowed.upstream,
        )?;
        let (outbound, upgrade) = prepare(
            &snapshot, request, &path, &uri, upstream, &allowed, assertion, screened, ctx,
        )?;
        // 6. Forward; a 101 answer to an upgrade request is spliced.
        let mut response = upstream.send(outbound, &ctx.request_id).await?;
        let upgraded = self.splice(&mut response, upgrade);
        // 7. Clean the response.
        Ok(clean(response, client_version, upgraded))
    }

    /// Phase 4, refused: with `[browser] enabled`, a browser navigation without a
    /// credential (401 `unauthorized`) is sent to the sign-in page instead (302, SPEC §10),
    /// `rd` naming the URL it asked for ([`navigation`]); every other refusal, and every
    /// other client, keeps its SPEC §5 answer.
    fn sign_in_instead(
        &self,
        err: GatewayError,
        snapshot: &Snapshot,
        request: &Request<Incoming>,
        path: &str,
        uri: &Uri,
        conn: &ConnInfo,
    ) -> GatewayError {
        let browser = &snapshot.browser;
        if !navigation::wants_sign_in(&err, browser, request.method(), request.headers()) {
            return err;
        }
        let (scheme, host) = navigation::request_origin(request.headers(), conn.https);
        let original =
            navigation::original_url(browser, host.map(|host| (scheme, host)), path, uri.query());
        match navigation::sign_in_location(browser, &self.auth_prefix, &original) {
            Some(location) => GatewayError::SignIn(location),
            None => err,
        }
    }

    /// Phase 6, second half: when the upstream answers `101` to an upgrade request, joins
    /// the two upgraded connections (on [`Gateway::upgrades`]) and returns the protocol.
    fn splice(
        &self,
        response: &mut Response<UpstreamBody>,
        upgrade: ClientUpgrade,
    ) -> Option<HeaderValue> {
        let (client, protocol) = upgrade?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return None;
        }
        let upstream = hyper::upgrade::on(response);
        crate::proxy::splice_upgrade(&self.upgrades, client, upstream);
        Some(protocol)
    }

    /// The funnel: renders an error as its SPEC §5 response, counts the request and writes
    /// the access line — once per request, never a secret.
    fn finish(
        &self,
        ctx: RequestCtx,
        result: Result<Response<Body>, GatewayError>,
    ) -> Response<Body> {
        let RequestCtx {
            request_id,
            started,
            method,
            conn,
            path,
            verdict,
            upstream,
        } = ctx;
        let mut response = match result {
            Ok(response) => response,
            Err(err) => {
                if let GatewayError::InvalidToken(reason) = &err {
                    self.metrics.token_rejected(*reason);
                }
                let id = request_id.to_str().unwrap_or("-");
                let upstream_name = upstream.as_deref().unwrap_or("-");
                match &err {
                    GatewayError::Internal(detail) => {
                        tracing::error!(request_id = %id, error = %detail, "internal error");
                    }
                    GatewayError::GatewayTimeout => tracing::warn!(
                        request_id = %id,
                        upstream = %upstream_name,
                        "upstream timed out: no response head within its timeout (504)"
                    ),
                    GatewayError::BadGateway => tracing::warn!(
                        request_id = %id,
                        upstream = %upstream_name,
                        "upstream unreachable or failed (502)"
                    ),
                    _ => {}
                }
                err.into_response()
            }
        };
        response
            .headers_mut()
            .insert(X_REQUEST_ID.clone(), request_id.clone());
        let status = response.status();
        let elapsed = started.elapsed();
        self.metrics.request(verdict.decision, status);
        self.metrics.request_duration(verdict.decision, elapsed);
        if let Some(reason) = verdict.ignored_rejection {
            self.metrics.token_rejected(reason);
        }
        tracing::info!(
            target: "gatehouse::access",
            request_id = %request_id.to_str().unwrap_or("-"),
            peer = %conn.peer.ip(),
            method = %method,
            path = %path,
            status = status.as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            user = verdict.user.as_ref().map_or("-", |user| user.username.as_str()),
            decision = verdict.decision.as_str(),
            upstream = upstream.as_deref().unwrap_or("-"),
            "request"
        );
        response
    }

    /// Phase 3, at the root: the JWKS (the key ring's precomputed bytes) and discovery
    /// documents, counted and logged like the endpoints under `auth_prefix`.
    fn well_known(
        &self,
        snapshot: &Snapshot,
        document: Document,
        request: &Request<Incoming>,
        ctx: &mut RequestCtx,
    ) -> Result<Response<Body>, GatewayError> {
        ctx.verdict.decision = Decision::AuthEndpoint;
        let keyring = self.accounts.keys().keyring();
        self.well_known.serve(
            document,
            request.method(),
            request.headers(),
            keyring.published(),
            &snapshot.jwks_cache_control,
        )
    }

    /// Phase 3: gatehouse's own endpoints, with only what they use.
    async fn own_endpoint(
        &self,
        snapshot: &Snapshot,
        request: Request<Incoming>,
        path: &str,
        screened: Screened,
        ctx: &mut RequestCtx,
    ) -> Result<Response<Body>, GatewayError> {
        ctx.verdict.decision = Decision::AuthEndpoint;
        let peer = ctx.conn.peer.ip();
        // The client's address for brute-force counting: the peer, or — when the peer is
        // a trusted proxy — the `X-Forwarded-For` entry that proxy appended (the last one).
        // A client-written entry is never believed: from untrusted peers the header was
        // stripped in phase 2, and a trusted proxy appends after whatever the client sent.
        let client_ip = if screened.trusted {
            forwarded::reported_client(request.headers()).unwrap_or(peer)
        } else {
            peer
        };
        let context = EndpointContext {
            accounts: &self.accounts,
            metrics: &self.metrics,
            auth_prefix: &self.auth_prefix,
            routes: &snapshot.routes,
            identity_headers: &snapshot.identity,
            assertions: &snapshot.assertions,
            peer,
            client_ip,
            untrusted_original_request: screened.untrusted_original_request,
            openapi: &self.openapi,
            browser: &snapshot.browser,
        };
        let sub_path = &path[self.auth_prefix.len()..];
        endpoints::dispatch(&context, sub_path, request, &mut ctx.verdict).await
    }
}

/// Phase 1: the one path we match and forward (SPEC §3.1), one Host (RFC 9112 §3.2).
fn normalize<'u>(
    uri: &'u Uri,
    request: &mut Request<Incoming>,
    ctx: &mut RequestCtx,
) -> Result<NormalizedPath<'u>, GatewayError> {
    let path = normalized_path(uri)?;
    ctx.path = if path.is_borrowed() {
        LoggedPath::Request(uri.clone())
    } else {
        LoggedPath::Normalized(path.as_str().into())
    };
    check_host(request.version(), request.headers())?;
    if let Some(authority) = uri.authority() {
        // Absolute-form (RFC 9112 §3.2.2) and HTTP/2 `:authority` replace Host.
        if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
            request.headers_mut().insert(header::HOST, host);
        }
    }
    Ok(path)
}

/// Phase 2: strip what a client could forge. Forward-auth must fail closed when an
/// untrusted peer names the original request, so look before the strip erases the
/// evidence; only for gatehouse's own endpoints (proxied requests pay nothing).
fn screen(
    snapshot: &Snapshot,
    request: &mut Request<Incoming>,
    conn: &ConnInfo,
    own: bool,
) -> Screened {
    let trusted = forwarded::is_trusted(conn.peer.ip(), &snapshot.trusted_proxies);
    let untrusted_original_request =
        !trusted && own && forwarded::names_original_request(request.headers());
    // One pass over the names for both strips; it also notes a `Cookie` field.
    let identity = &snapshot.identity;
    let cookie = std::cell::Cell::new(false);
    remove_where(request.headers_mut(), |name| {
        if name == header::COOKIE {
            cookie.set(true);
            return false;
        }
        identity.is_identity(name) || (!trusted && forwarded::is_client_forwarding(name))
    });
    Screened {
        trusted,
        untrusted_original_request,
        cookie: cookie.get(),
    }
}

/// The most headers [`prepare`] adds to a request: `Host` (when the client sent none),
/// the three `X-Forwarded-*`, the three identity headers, the assertion and
/// `X-Request-ID`.
const ADDED_HEADERS: usize = 9;

/// Phase 5: the upstream request — hop-by-hop headers out, forwarding and identity
/// headers in, the `assertion` value (when there is one), the normalized path — and the
/// client side of a requested upgrade.
#[allow(clippy::too_many_arguments)]
fn prepare(
    snapshot: &Snapshot,
    mut request: Request<Incoming>,
    path: &str,
    uri: &Uri,
    upstream: &Upstream,
    allowed: &Allowed,
    assertion: Option<HeaderValue>,
    screened: Screened,
    ctx: &RequestCtx,
) -> Result<(Request<Incoming>, ClientUpgrade), GatewayError> {
    let version = request.version();
    let upgrade = hop::strip(request.headers_mut(), Some(version));
    let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    let headers = &mut parts.headers;
    // Room for what is added below at once: one growth of the map, not one per doubling.
    headers.reserve(ADDED_HEADERS);
    if let Some(protocol) = upgrade.clone() {
        hop::restore_upgrade(headers, protocol);
    }
    if !snapshot.forward_authorization {
        headers.remove(header::AUTHORIZATION);
    }
    if screened.cookie {
        cookie::strip(headers, &cookie::GATEHOUSE_COOKIES);
    }
    let host = headers.get(header::HOST).cloned();
    let conn = &ctx.conn;
    forwarded::stamp(
        headers,
        &conn.forwarded_for,
        screened.trusted,
        conn.https,
        host.as_ref(),
    );
    if host.is_none() {
        // HTTP/2 clients and HTTP/1.0 may send no Host: the upstream's (not echoed in
        // `X-Forwarded-Host`, which names only what the client asked for).
        headers.insert(header::HOST, upstream.host().clone());
    }
    if let Some(identity) = &allowed.identity {
        snapshot.identity.stamp(headers, identity);
    }
    snapshot.assertions.stamp(headers, assertion);
    headers.insert(X_REQUEST_ID.clone(), ctx.request_id.clone());
    // The request-target: when the path was already normal (nearly always), the client's
    // own path and query are exactly what is to be sent, so they are kept (no copy);
    // otherwise rebuilt from the normalized path and the original query.
    match parts.uri.path_and_query() {
        Some(original) if original.path() == path => {
            if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
                parts.uri = Uri::from(original.clone());
            }
        }
        _ => parts.uri = upstream.uri(path, uri.query())?,
    }
    parts.version = Version::HTTP_11;
    Ok((
        Request::from_parts(parts, body),
        client_upgrade.zip(upgrade),
    ))
}

/// Phase 7: the response is ours to frame — in the client's HTTP version, not the
/// upstream's (an HTTP/1.0 upstream must not turn the client's keep-alive connection into
/// a closing one) — without hop-by-hop headers (a spliced upgrade keeps its Upgrade).
fn clean(
    response: Response<UpstreamBody>,
    client_version: Version,
    upgraded: Option<HeaderValue>,
) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    parts.version = client_version;
    hop::strip(&mut parts.headers, None);
    if let Some(protocol) = upgraded {
        hop::restore_upgrade(&mut parts.headers, protocol);
    }
    Response::from_parts(parts, Body::Upstream(body))
}

/// RFC 9112 §3.2: an HTTP/1.1 request without `Host`, and any request with more than
/// one, is answered 400 and never forwarded (two Hosts are the raw material of cache
/// poisoning and routing confusion between gatehouse and the upstream).
pub fn check_host(version: Version, headers: &HeaderMap) -> Result<(), GatewayError> {
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err(GatewayError::invalid_request(
            "send exactly one Host header (RFC 9112 §3.2)",
        )),
        (None, _) if version == Version::HTTP_11 => Err(GatewayError::invalid_request(
            "an HTTP/1.1 request needs a Host header (RFC 9112 §3.2)",
        )),
        _ => Ok(()),
    }
}

/// The client's `X-Request-Id` when it is a sane token, else a fresh one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(&X_REQUEST_ID)
        .filter(|id| {
            (1..=128).contains(&id.len()) && id.as_bytes().iter().all(u8::is_ascii_graphic)
        })
        .cloned()
        .unwrap_or_else(fresh_request_id)
}

/// The low `digits.len()` hex digits of `value`, most significant first.
fn write_hex(value: u64, digits: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let last = digits.len().saturating_sub(1);
    for (index, digit) in digits.iter_mut().enumerate() {
        *digit = HEX[((value >> (4 * (last - index))) & 0xf) as usize];
    }
}

/// Fresh ids are made this many at a time per thread: one buffer holds them all, and each
/// id is a refcounted slice of it, so a request takes a ready id instead of allocating one.
const ID_BATCH: usize = 64;
/// A fresh id: the 8 hex digits of the per-process prefix, then the counter's 12.
const ID_LEN: usize = 20;

/// A unique id without a system call, `fmt` or an allocation of its own: a random
/// per-process prefix and a counter, in hex. Request ids need to be unique, not secret.
/// Each thread takes [`ID_BATCH`] counter values at once and writes their ids into one
/// buffer; within a thread ids come out in counter order.
fn fresh_request_id() -> HeaderValue {
    thread_local! {
        /// This thread's ids not handed out yet, the next one last.
        static READY: std::cell::RefCell<Vec<HeaderValue>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    READY
        .with(|ready| {
            let mut ready = ready.borrow_mut();
            if ready.is_empty() {
                fresh_request_ids(&mut ready);
            }
            ready.pop()
        })
        .unwrap_or_else(|| HeaderValue::from_static("-"))
}

/// Fills `ready` with the next [`ID_BATCH`] ids, the lowest counter value last.
fn fresh_request_ids(ready: &mut Vec<HeaderValue>) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<[u8; 8]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut digits = [0u8; 8];
        write_hex(u64::from(rand::random::<u32>()), &mut digits);
        digits
    });
    let first = COUNTER.fetch_add(ID_BATCH as u64, Ordering::Relaxed);
    let mut text = vec![0u8; ID_BATCH * ID_LEN];
    for (offset, id) in (0u64..).zip(text.chunks_exact_mut(ID_LEN)) {
        id[..8].copy_from_slice(prefix);
        write_hex(first.wrapping_add(offset), &mut id[8..]);
    }
    // Refcounted: every id is a slice of this one buffer, freed with the last of them.
    let text = bytes::Bytes::from_owner(text);
    ready.reserve(ID_BATCH);
    for index in (0..ID_BATCH).rev() {
        let id = text.slice(index * ID_LEN..(index + 1) * ID_LEN);
        if let Ok(id) = HeaderValue::from_maybe_shared(id) {
            ready.push(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_request_ids_are_one_prefix_and_a_counter_in_hex() {
        let first = fresh_request_id();
        let second = fresh_request_id();
        for id in [&first, &second] {
            assert_eq!(id.len(), 20);
            assert!(id
                .as_bytes()
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)));
        }
        assert_ne!(first, second);
        assert_eq!(first.as_bytes()[..8], second.as_bytes()[..8]);
        let counter = |id: &HeaderValue| {
            u64::from_str_radix(id.to_str().expect("ascii").get(8..).expect("digits"), 16)
                .expect("hex")
        };
        assert!(counter(&second) > counter(&first));
    }

    #[test]
    fn fresh_request_ids_stay_unique_across_batches_and_threads() {
        let mine: Vec<HeaderValue> = (0..3 * ID_BATCH + 5).map(|_| fresh_request_id()).collect();
        let theirs = std::thread::spawn(|| {
            (0..2 * ID_BATCH)
                .map(|_| fresh_request_id())
                .collect::<Vec<_>>()
        })
        .join()
        .expect("thread");
        let counter = |id: &HeaderValue| {
            u64::from_str_radix(id.to_str().expect("ascii").get(8..).expect("digits"), 16)
                .expect("hex")
        };
        // One thread's ids follow the counter, batch after batch.
        for pair in mine.windows(2) {
            assert!(counter(&pair[1]) > counter(&pair[0]), "{pair:?}");
        }
        let all: std::collections::HashSet<&[u8]> = mine
            .iter()
            .chain(&theirs)
            .map(HeaderValue::as_bytes)
            .collect();
        assert_eq!(all.len(), mine.len() + theirs.len());
        assert!(all.iter().all(|id| id.len() == ID_LEN));
    }
}
