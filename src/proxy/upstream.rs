//! One pool of keep-alive HTTP/1.1 connections per upstream: `connect_timeout` for
//! reaching it (→ 502), `timeout` for its response head (→ 504). Each failure before the
//! response head is counted by kind (`gatehouse_upstream_errors_total`) and, except a
//! timeout (the funnel's 504 line says it), logged at WARN with its detail and the request id.
//!
//! Built on hyper's client connection API rather than hyper-util's pooled `Client`, which
//! hashes its pool key with SipHash twice per request and locks a shared map keyed by it
//! (measured: 9% of a proxied request's instructions, benches/RESULTS.md). Here each
//! upstream has its own stack of idle connections; a connection goes back on it once its
//! response body has been read to the end, and the most recently used is reused first so
//! the rest can age out.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http::uri::{Authority, PathAndQuery};
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use hyper::body::{Body as _, Incoming};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config::UpstreamSettings;
use crate::error::GatewayError;
pub use crate::http::UpstreamBody;
use crate::http::{ConnectionPool, GiveBack};
use crate::telemetry::metrics::{Metrics, UpstreamErrorKind, UpstreamErrors};

/// Idle connections kept per upstream.
const MAX_IDLE: usize = 256;
/// Idle connections older than this are closed, below the 100 s+ that common servers keep
/// them, so we rarely reuse one the upstream is closing.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A named upstream and its connection pool.
#[derive(Clone)]
pub struct Upstream {
    /// Shared, so the access record takes it without copying.
    pub name: Arc<str>,
    authority: Authority,
    host: HeaderValue,
    connect_timeout: Duration,
    timeout: Duration,
    idle: Arc<IdleConnections>,
    latency: prometheus_client::metrics::histogram::Histogram,
    errors: UpstreamErrors,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Prepares the upstream; connections are opened on demand.
    pub fn new(settings: &UpstreamSettings, metrics: &Metrics) -> Result<Self, String> {
        let bad_authority = || format!("upstream {}: bad authority", settings.name);
        let authority: Authority = settings.authority.parse().map_err(|_| bad_authority())?;
        let host = HeaderValue::from_str(authority.as_str()).map_err(|_| bad_authority())?;
        Ok(Upstream {
            name: settings.name.as_str().into(),
            authority,
            host,
            connect_timeout: settings.connect_timeout,
            timeout: settings.timeout,
            idle: Arc::new(IdleConnections::default()),
            latency: metrics.upstream_histogram(&settings.name),
            errors: metrics.upstream_errors(&settings.name),
        })
    }

    /// The upstream request-target (origin form) for a normalized path and the client's
    /// original query.
    pub fn uri(&self, path: &str, query: Option<&str>) -> Result<Uri, GatewayError> {
        let path_and_query = match query {
            None => PathAndQuery::try_from(path),
            Some(query) => {
                let mut joined = String::with_capacity(path.len() + query.len() + 1);
                joined.push_str(path);
                joined.push('?');
                joined.push_str(query);
                PathAndQuery::try_from(joined)
            }
        }
        .map_err(|_| GatewayError::invalid_request("the request target is malformed"))?;
        Ok(Uri::from(path_and_query))
    }

    /// The `Host` for a request that has none (HTTP/2 clients, HTTP/1.0): the upstream's
    /// authority.
    pub fn host(&self) -> &HeaderValue {
        &self.host
    }

    /// Sends a request (with its `Host`: [`Upstream::host`] when the client sent none) and
    /// waits for the response head; records the wait, and a failure by kind.
    /// `request_id` is for the WARN line of a failure (read as text only then).
    pub async fn send(
        &self,
        request: Request<Incoming>,
        request_id: &HeaderValue,
    ) -> Result<Response<UpstreamBody>, GatewayError> {
        let sent = Instant::now();
        let result = tokio::time::timeout(self.timeout, self.exchange(request, request_id)).await;
        self.latency.observe(sent.elapsed().as_secs_f64());
        result.unwrap_or_else(|_| {
            self.errors.count(UpstreamErrorKind::Timeout);
            Err(GatewayError::GatewayTimeout)
        })
    }

    /// One request on an idle connection, or a new one. A request an idle connection
    /// could not take (the upstream closed it meanwhile) is sent again on another.
    async fn exchange(
        &self,
        mut request: Request<Incoming>,
        request_id: &HeaderValue,
    ) -> Result<Response<UpstreamBody>, GatewayError> {
        loop {
            let (mut sender, reused) = match self.idle.take().await {
                Some(sender) => (sender, true),
                // Boxed: a new connection is the rare path, and its future would
                // otherwise make every request's future larger (moved per request).
                None => (Box::pin(self.connect(request_id)).await?, false),
            };
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(self.track(response, sender)),
                Err(mut failed) => match failed.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => {
                        let err = failed.into_error();
                        let kind = failure_kind(&err);
                        self.errors.count(kind);
                        tracing::warn!(
                            request_id = request_id.to_str().unwrap_or("-"),
                            upstream = %self.name,
                            kind = kind.as_str(),
                            error = %err,
                            "upstream request failed"
                        );
                        return Err(GatewayError::BadGateway);
                    }
                },
            }
        }
    }

    async fn connect(
        &self,
        request_id: &HeaderValue,
    ) -> Result<SendRequest<Incoming>, GatewayError> {
        let failed = |err: &dyn std::fmt::Display| {
            self.errors.count(UpstreamErrorKind::Connect);
            tracing::warn!(
                request_id = request_id.to_str().unwrap_or("-"),
                upstream = %self.name,
                kind = UpstreamErrorKind::Connect.as_str(),
                error = %err,
                "cannot connect to the upstream"
            );
            GatewayError::BadGateway
        };
        let address = self.authority.as_str();
        let stream =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(address)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => return Err(failed(&err)),
                Err(_) => return Err(failed(&"connect timeout")),
            };
        let _ = stream.set_nodelay(true);
        // Flat writes, as on the server side (src/server/mod.rs): cheaper for the kernel.
        let (mut sender, connection) = http1::Builder::new()
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|err| failed(&err))?;
        let name = self.name.clone();
        tokio::spawn(async move {
            if let Err(err) = connection.with_upgrades().await {
                tracing::debug!(upstream = %name, error = %err, "upstream connection ended");
            }
        });
        sender.ready().await.map_err(|err| failed(&err))?;
        Ok(sender)
    }

    /// Wraps the response body so the connection returns to the pool at its end. A
    /// protocol switch takes the connection for good.
    fn track(
        &self,
        response: Response<Incoming>,
        sender: SendRequest<Incoming>,
    ) -> Response<UpstreamBody> {
        let reusable = response.status() != StatusCode::SWITCHING_PROTOCOLS;
        let mut give_back = reusable.then(|| {
            let pool: Arc<dyn ConnectionPool> = self.idle.clone();
            GiveBack::new(sender, pool)
        });
        if response.body().is_end_stream() {
            if let Some(give_back) = give_back.take() {
                give_back.now();
            }
        }
        response.map(|inner| UpstreamBody::new(inner, give_back))
    }
}

/// How an exchange on an open connection failed: the upstream closed or reset it before
/// its response head ([`UpstreamErrorKind::Reset`]), or anything else (a malformed
/// response, ...).
fn failure_kind(err: &hyper::Error) -> UpstreamErrorKind {
    if err.is_incomplete_message() || err.is_canceled() {
        return UpstreamErrorKind::Reset;
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::{
                BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof,
            };
            if matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
            ) {
                return UpstreamErrorKind::Reset;
            }
        }
        source = cause.source();
    }
    UpstreamErrorKind::Other
}

/// Connections waiting for their next request, most recently used last.
#[derive(Default)]
struct IdleConnections {
    stack: Mutex<VecDeque<Idle>>,
}

struct Idle {
    sender: SendRequest<Incoming>,
    since: Instant,
}

impl IdleConnections {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Idle>> {
        self.stack
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The most recently used connection that is still open and ready for a request.
    async fn take(&self) -> Option<SendRequest<Incoming>> {
        loop {
            let idle = self.lock().pop_back()?;
            let mut sender = idle.sender;
            if sender.is_closed() || idle.since.elapsed() > IDLE_TIMEOUT {
                continue;
            }
            // Usually ready at once; a connection returned a moment ago may still be
            // finishing its last response.
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    fn put(&self, sender: SendRequest<Incoming>) {
        if sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut stack = self.lock();
        while stack
            .front()
            .is_some_and(|oldest| now.duration_since(oldest.since) > IDLE_TIMEOUT)
        {
            stack.pop_front();
        }
        if stack.len() < MAX_IDLE {
            stack.push_back(Idle { sender, since: now });
        }
    }
}

impl ConnectionPool for IdleConnections {
    fn put(&self, sender: SendRequest<Incoming>) {
        IdleConnections::put(self, sender);
    }
}
