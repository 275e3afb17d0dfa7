//! The request pipeline (SPEC §3). [`Gateway::handle`] is the one funnel: every phase
//! returns `Result<_, GatewayError>`, and only the funnel renders errors, counts metrics
//! and writes the access line.
//!
//! Phases, in order (1 and 2 run on every request):
//! 1. normalize the path — what is matched is what is forwarded; one Host (RFC 9112 §3.2);
//! 2. strip forgeable identity headers, and forwarding headers from untrusted peers
//!    (for gatehouse's own endpoints, first noting whether an untrusted peer named an
//!    original request for forward-auth, which `/auth/verify` then refuses);
//! 3. divert `auth_prefix` to gatehouse's own endpoints (never forwarded; `/auth/verify`
//!    fills the access decision and user of the [`Record`] like a proxied request);
//! 4. match the route and decide access (token, roles);
//! 5. prepare the upstream request (hop-by-hop out, forwarding and identity in);
//! 6. forward, streaming both bodies; splice upgraded connections;
//! 7. clean the response.

pub mod forwarded;
pub mod hop;
pub mod identity;
pub mod path;
pub mod route;
pub mod upstream;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use tokio_util::task::TaskTracker;

use crate::accounts::{Accounts, Identity};
use crate::config::Config;
use crate::error::GatewayError;
use crate::http::Body;
use crate::telemetry::metrics::{Decision, Metrics};
use identity::IdentityHeaders;
use route::{Access, RouteTable};
use upstream::Upstream;

static X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// What a connection tells the pipeline about itself.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub https: bool,
}

/// The part of the configuration SIGHUP swaps atomically: routes, upstreams, headers.
pub struct Snapshot {
    pub routes: RouteTable,
    pub upstreams: Vec<Upstream>,
    pub identity: IdentityHeaders,
    pub trusted_proxies: Vec<IpNet>,
    pub forward_authorization: bool,
}

impl Snapshot {
    /// Compiles the reloadable part of a config (takes its route table).
    pub fn from_config(config: &mut Config, metrics: &Metrics) -> Result<Self, String> {
        let upstreams = config
            .upstreams
            .iter()
            .map(|settings| Upstream::new(settings, metrics))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Snapshot {
            routes: std::mem::replace(&mut config.routes, RouteTable::new(Vec::new())),
            upstreams,
            identity: IdentityHeaders::new(&config.headers),
            trusted_proxies: config.headers.trusted_proxies.clone(),
            forward_authorization: config.headers.forward_authorization,
        })
    }
}

/// What the access decision found: who is calling (if anyone) and where it goes.
pub struct Decided {
    pub identity: Option<Identity>,
    pub upstream: usize,
}

/// The gateway: shared by every connection.
pub struct Gateway {
    pub snapshot: ArcSwap<Snapshot>,
    pub accounts: Arc<Accounts>,
    pub metrics: Arc<Metrics>,
    pub auth_prefix: String,
    /// Spliced upgraded (WebSocket) connections. They outlive the HTTP connection that
    /// carried the upgrade, so the drain waits for them here, up to `shutdown_grace`.
    pub upgrades: TaskTracker,
}

/// Per-request facts for the access line and metrics.
pub struct Record {
    decision: Decision,
    user: Option<Arc<crate::accounts::view::UserView>>,
    upstream: Option<Arc<str>>,
}

impl Gateway {
    /// Handles one request: never fails, every error becomes its SPEC §5 response.
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        conn: ConnInfo,
    ) -> Response<Body> {
        let started = Instant::now();
        let method = request.method().clone();
        let request_id = request_id(request.headers());
        let mut record = Record {
            decision: Decision::Rejected,
            user: None,
            upstream: None,
        };
        let mut shown_path = String::new();
        let result = self
            .pipeline(request, conn, &request_id, &mut record, &mut shown_path)
            .await;
        let mut response = match result {
            Ok(response) => response,
            Err(err) => {
                if let GatewayError::InvalidToken(reason) = &err {
                    self.metrics.token_rejected(reason.as_str());
                }
                if let GatewayError::Internal(detail) = &err {
                    tracing::error!(request_id = %request_id.to_str().unwrap_or("-"), error = %detail, "internal error");
                }
                err.into_response()
            }
        };
        response
            .headers_mut()
            .insert(X_REQUEST_ID.clone(), request_id.clone());
        let status = response.status();
        self.metrics.request(record.decision, status);
        tracing::info!(
            target: "gatehouse::access",
            request_id = %request_id.to_str().unwrap_or("-"),
            peer = %conn.peer.ip(),
            method = %method,
            path = %shown_path,
            status = status.as_u16(),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            user = record.user.as_ref().map_or("-", |user| user.username.as_str()),
            decision = record.decision.as_str(),
            upstream = record.upstream.as_deref().unwrap_or("-"),
            "request"
        );
        response
    }

    async fn pipeline(
        &self,
        mut request: Request<Incoming>,
        conn: ConnInfo,
        request_id: &HeaderValue,
        record: &mut Record,
        shown_path: &mut String,
    ) -> Result<Response<Body>, GatewayError> {
        let snapshot = self.snapshot.load_full();

        // 1. Normalize: the one path we match and forward (SPEC §3.1).
        let uri = request.uri().clone();
        let client_version = request.version();
        let path = normalized_path(&uri)?;
        shown_path.push_str(&path);
        check_host(client_version, request.headers())?;
        if let Some(authority) = uri.authority() {
            // Absolute-form (RFC 9112 §3.2.2) and HTTP/2 `:authority` replace Host.
            if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
                request.headers_mut().insert(header::HOST, host);
            }
        }

        // 2. Strip what a client could forge. Forward-auth must fail closed when an
        //    untrusted peer names the original request, so look before the strip erases
        //    the evidence; only for gatehouse's own endpoints (proxied requests pay nothing).
        let trusted = forwarded::is_trusted(conn.peer.ip(), &snapshot.trusted_proxies);
        let own = is_under(&path, &self.auth_prefix);
        snapshot.identity.strip(request.headers_mut());
        let mut untrusted_original_request = false;
        if !trusted {
            untrusted_original_request =
                own && forwarded::names_original_request(request.headers());
            forwarded::strip_untrusted(request.headers_mut());
        }

        // 3. gatehouse's own endpoints.
        if own {
            record.decision = Decision::AuthEndpoint;
            let sub_path = &path[self.auth_prefix.len()..];
            let context = crate::endpoints::EndpointContext {
                gateway: self,
                snapshot: &snapshot,
                conn,
                trusted,
                untrusted_original_request,
            };
            return crate::endpoints::dispatch(&context, sub_path, request, record).await;
        }

        // 4. Route and access decision.
        let decided = self.decide(
            &snapshot,
            request.method(),
            &path,
            request.headers(),
            record,
        )?;
        let upstream = snapshot
            .upstreams
            .get(decided.upstream)
            .ok_or_else(|| GatewayError::Internal("route points at a missing upstream".into()))?;
        record.upstream = Some(upstream.name.clone());

        // 5. Prepare the upstream request.
        let upgrade = hop::requested_upgrade(request.version(), request.headers());
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut request));
        let (mut parts, body) = request.into_parts();
        let headers = &mut parts.headers;
        hop::remove_hop_headers(headers);
        if let Some(protocol) = upgrade.clone() {
            hop::restore_upgrade(headers, protocol);
        }
        if !snapshot.forward_authorization {
            headers.remove(header::AUTHORIZATION);
        }
        let host = headers.get(header::HOST).cloned();
        forwarded::stamp(headers, conn.peer.ip(), trusted, conn.https, host.as_ref());
        if let Some(identity) = &decided.identity {
            snapshot.identity.stamp(headers, identity);
        }
        headers.insert(X_REQUEST_ID.clone(), request_id.clone());
        parts.uri = upstream.uri(&path, uri.query())?;
        parts.version = Version::HTTP_11;
        let outbound = Request::from_parts(parts, body);

        // 6. Forward; a 101 answer to an upgrade request is spliced.
        let mut response = upstream.send(outbound).await?;
        let mut upgraded = None;
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let (Some(client_upgrade), Some(protocol)) = (client_upgrade, upgrade) {
                splice_upgrade(
                    &self.upgrades,
                    client_upgrade,
                    hyper::upgrade::on(&mut response),
                );
                upgraded = Some(protocol);
            }
        }

        // 7. Clean the response (a spliced upgrade keeps its Upgrade headers). It is ours
        //    to frame: in the client's HTTP version, not the upstream's (an HTTP/1.0
        //    upstream must not turn the client's keep-alive connection into a closing one).
        let (mut parts, body) = response.into_parts();
        parts.version = client_version;
        hop::remove_hop_headers(&mut parts.headers);
        if let Some(protocol) = upgraded {
            hop::restore_upgrade(&mut parts.headers, protocol);
        }
        Ok(Response::from_parts(parts, body.boxed()))
    }

    /// Route match + access decision (SPEC §2 "Routes", §4 validation). Shared by the
    /// proxy and by `/auth/verify`, so forward-auth answers exactly as proxying would.
    pub fn decide(
        &self,
        snapshot: &Snapshot,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        record: &mut Record,
    ) -> Result<Decided, GatewayError> {
        let (access, roles, upstream): (Access, &[String], usize) =
            match snapshot.routes.find(method, path) {
                Some((_, route)) => (route.access, &route.roles, route.upstream),
                // Unmatched: a valid token is required (default deny for anonymous users).
                None => (Access::Authenticated, &[], 0),
            };
        match access {
            Access::Deny => {
                record.decision = Decision::Denied;
                Err(GatewayError::Forbidden)
            }
            Access::Public => {
                record.decision = Decision::Public;
                // A valid token still yields identity headers; a bad one is ignored.
                let identity = match bearer_token(headers) {
                    Ok(Some(token)) => self.accounts.authenticate(token).ok(),
                    _ => None,
                };
                record.user = identity.as_ref().map(|i| i.user.clone());
                Ok(Decided { identity, upstream })
            }
            Access::Authenticated => {
                record.decision = Decision::Unauthenticated;
                let identity = self.authenticate(headers)?;
                record.user = Some(identity.user.clone());
                if !roles.is_empty() && !identity.roles().iter().any(|r| roles.contains(r)) {
                    record.decision = Decision::Denied;
                    return Err(GatewayError::InsufficientScope);
                }
                record.decision = Decision::Authenticated;
                Ok(Decided {
                    identity: Some(identity),
                    upstream,
                })
            }
        }
    }

    /// The caller's identity from a required bearer token.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, GatewayError> {
        let token = bearer_token(headers)?.ok_or(GatewayError::Unauthorized)?;
        self.accounts
            .authenticate(token)
            .map_err(GatewayError::InvalidToken)
    }
}

impl Record {
    /// Records a decision made outside [`Gateway::decide`] (forward-auth without a
    /// forwarded request, or refused before routing).
    pub fn decided(&mut self, decision: Decision, identity: Option<&Identity>) {
        self.decision = decision;
        self.user = identity.map(|identity| identity.user.clone());
    }
}

/// The bearer token of a request: `Ok(None)` when there is no Authorization header or it
/// uses another scheme; an error when there are several (RFC 6750 §3.1 `invalid_request`)
/// or the Bearer credentials are empty or not a token68.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, GatewayError> {
    let malformed = || GatewayError::InvalidToken(crate::error::TokenRejection::Malformed);
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(GatewayError::invalid_request(
            "send exactly one Authorization header",
        ));
    }
    let bytes = value.as_bytes();
    let Some(space) = bytes.iter().position(|b| *b == b' ') else {
        return if bytes.eq_ignore_ascii_case(b"bearer") {
            Err(malformed())
        } else {
            Ok(None)
        };
    };
    if !bytes[..space].eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    let credentials = &bytes[space + 1..];
    let start = credentials
        .iter()
        .position(|b| *b != b' ')
        .unwrap_or(credentials.len());
    let end = credentials
        .iter()
        .rposition(|b| *b != b' ')
        .map_or(start, |i| i + 1);
    let token = &credentials[start..end];
    // The token68 alphabet is checked by `TokenKeys::verify`, only for tokens it has not
    // verified before: a token equal to a verified one is well-formed (measured: the
    // per-byte check was 5% of a proxied request's instructions).
    if token.is_empty() {
        return Err(malformed());
    }
    std::str::from_utf8(token)
        .map(Some)
        .map_err(|_| malformed())
}

/// The normalized path of a request-target, or why it is refused (SPEC §3.1). Origin-form
/// and absolute-form are accepted; asterisk-form and authority-form are not.
pub fn normalized_path(uri: &Uri) -> Result<Cow<'_, str>, GatewayError> {
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
    path::normalize(uri.path())
        .map_err(|rejection| GatewayError::invalid_request(rejection.to_string()))
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

/// True for the prefix itself and anything below it (`/auth`, `/auth/`, `/auth/x`), not
/// for `/authors`.
pub fn is_under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
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

/// A unique id without a system call or `fmt`: a random per-process prefix and a
/// counter, in hex. Request ids need to be unique, not secret.
fn fresh_request_id() -> HeaderValue {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let prefix = u64::from(*PREFIX.get_or_init(rand::random::<u32>));
    let sequence = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut text = [0u8; 20];
    for (index, byte) in text.iter_mut().enumerate() {
        let nibble = if index < 8 {
            prefix >> (4 * (7 - index))
        } else {
            sequence >> (4 * (19 - index))
        };
        *byte = HEX[(nibble & 0xf) as usize];
    }
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// Joins the client's and the upstream's upgraded connections and copies both ways until
/// either side closes. The task runs on `tracker`, so shutdown can wait for it; the client
/// socket still holds its connection slot, so it counts against `max_connections` and in
/// `open_connections` until the splice ends.
fn splice_upgrade(
    tracker: &TaskTracker,
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
) {
    tracker.spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(err) => {
                tracing::debug!(error = %err, "upgrade failed");
                return;
            }
        };
        // The client side carries the connection's `max_connections` slot and its count in
        // `open_connections` (server::conn_io): both end when it is dropped here.
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        if let Err(err) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(error = %err, "upgraded connection ended");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_boundaries() {
        assert!(is_under("/auth", "/auth"));
        assert!(is_under("/auth/login", "/auth"));
        assert!(!is_under("/authors", "/auth"));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_single() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bEaReR abc.def.ghi"),
        );
        assert_eq!(bearer_token(&headers).ok().flatten(), Some("abc.def.ghi"));
        headers.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert!(matches!(
            bearer_token(&headers),
            Err(GatewayError::InvalidRequest(_))
        ));
        let mut basic = HeaderMap::new();
        basic.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcjpwYXNz"),
        );
        assert_eq!(bearer_token(&basic).ok().flatten(), None);
    }
}
