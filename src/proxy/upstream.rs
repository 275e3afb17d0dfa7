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
//!
//! Who drives a client connection (polls hyper's `Connection` future, which writes the
//! request and reads the response): an idle one in the pool has a task of its own
//! ([`Host`]). A busy downstream HTTP/1 connection instead keeps one upstream connection in
//! its [`UpstreamSlot`] and drives it in its own task, next to the server connection: the
//! request, the response head and every body chunk then cross no task boundary (no
//! wake-up of another task, no scheduling per hand-off). The slot adopts a pooled
//! connection (its task ends) or a new one; when the downstream connection parks or ends,
//! the slot hands its connection back to the pool on a task of its own again.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery};
use http::{header, HeaderValue, Request, Response, StatusCode, Uri};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config::UpstreamSettings;
use crate::error::GatewayError;
use crate::telemetry::metrics::{Metrics, UpstreamErrorKind, UpstreamErrors};

/// Idle connections kept per upstream.
const MAX_IDLE: usize = 256;
/// Idle connections older than this are closed, below the 100 s+ that common servers keep
/// them, so we rarely reuse one the upstream is closing.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// hyper's client connection future (with upgrades; its type is not nameable).
type Driven = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

tokio::task_local! {
    /// The upstream slot of the downstream connection whose task is running, if it has one.
    static SLOT: UpstreamSlot;
}

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

    /// Sends a request and waits for the response head; records the wait, and a failure
    /// by kind. A request without a Host (HTTP/2 clients) gets the upstream's.
    /// `request_id` is for the WARN line of a failure.
    pub async fn send(
        &self,
        mut request: Request<Incoming>,
        request_id: &HeaderValue,
    ) -> Result<Response<UpstreamBody>, GatewayError> {
        if !request.headers().contains_key(header::HOST) {
            request
                .headers_mut()
                .insert(header::HOST, self.host.clone());
        }
        let sent = Instant::now();
        let request_id = request_id.to_str().unwrap_or("-");
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
        request_id: &str,
    ) -> Result<Response<UpstreamBody>, GatewayError> {
        let slot = SLOT.try_with(UpstreamSlot::clone).ok();
        loop {
            let (mut sender, reused, home) = self.checkout(slot.as_ref(), request_id).await?;
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(self.track(response, sender, home)),
                Err(mut failed) => match failed.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => {
                        let err = failed.into_error();
                        let kind = failure_kind(&err);
                        self.errors.count(kind);
                        tracing::warn!(
                            request_id,
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

    /// A connection ready for a request, whether it was reused, and where it goes back:
    /// the downstream connection's slot if it holds one of this upstream's, else an idle
    /// one from the pool or a new one — taken into the slot when the slot is empty.
    async fn checkout(
        &self,
        slot: Option<&UpstreamSlot>,
        request_id: &str,
    ) -> Result<(SendRequest<Incoming>, bool, Home), GatewayError> {
        if let Some(slot) = slot {
            if let Some(mut sender) = slot.take_sender(&self.idle) {
                // Usually ready at once; else the slot's connection, polled by this task,
                // finishes its last exchange first.
                if sender.ready().await.is_ok() {
                    return Ok((sender, true, Home::Slot(slot.clone())));
                }
            }
        }
        let room = slot.filter(|slot| slot.is_empty());
        while let Some((sender, host)) = self.idle.take().await {
            let Some(slot) = room else {
                return Ok((sender, true, Home::Pool(host)));
            };
            // Its task ends; from now on this task drives it.
            if let Some(conn) = host.adopt() {
                slot.hold(self, conn);
                return Ok((sender, true, Home::Slot(slot.clone())));
            }
        }
        let (mut sender, conn) = self.connect(request_id).await?;
        let home = match room {
            Some(slot) => {
                slot.hold(self, conn);
                Home::Slot(slot.clone())
            }
            None => Home::Pool(Host::spawn(conn, self.name.clone())),
        };
        if let Err(err) = sender.ready().await {
            return Err(self.connect_failed(request_id, &err));
        }
        Ok((sender, false, home))
    }

    fn connect_failed(&self, request_id: &str, err: &dyn std::fmt::Display) -> GatewayError {
        self.errors.count(UpstreamErrorKind::Connect);
        tracing::warn!(
            request_id,
            upstream = %self.name,
            kind = UpstreamErrorKind::Connect.as_str(),
            error = %err,
            "cannot connect to the upstream"
        );
        GatewayError::BadGateway
    }

    /// A new connection and its future, not yet driven by anyone.
    async fn connect(
        &self,
        request_id: &str,
    ) -> Result<(SendRequest<Incoming>, Driven), GatewayError> {
        let address = self.authority.as_str();
        let stream =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(address)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => return Err(self.connect_failed(request_id, &err)),
                Err(_) => return Err(self.connect_failed(request_id, &"connect timeout")),
            };
        let _ = stream.set_nodelay(true);
        // Flat writes, as on the server side (src/server/mod.rs): cheaper for the kernel.
        let (sender, connection) = http1::Builder::new()
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|err| self.connect_failed(request_id, &err))?;
        Ok((sender, Box::pin(connection.with_upgrades())))
    }

    /// Wraps the response body so the connection returns to the pool at its end. A
    /// protocol switch takes the connection for good.
    fn track(
        &self,
        response: Response<Incoming>,
        sender: SendRequest<Incoming>,
        home: Home,
    ) -> Response<UpstreamBody> {
        let reusable = response.status() != StatusCode::SWITCHING_PROTOCOLS;
        let mut give_back = reusable.then(|| GiveBack {
            sender,
            home,
            idle: self.idle.clone(),
        });
        if response.body().is_end_stream() {
            if let Some(give_back) = give_back.take() {
                give_back.now();
            }
        }
        response.map(|inner| UpstreamBody { inner, give_back })
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
    host: Arc<Host>,
    since: Instant,
}

impl IdleConnections {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Idle>> {
        self.stack
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The most recently used connection that is still open and ready for a request.
    async fn take(&self) -> Option<(SendRequest<Incoming>, Arc<Host>)> {
        loop {
            let idle = self.lock().pop_back()?;
            let mut sender = idle.sender;
            if sender.is_closed() || idle.since.elapsed() > IDLE_TIMEOUT {
                continue;
            }
            // Usually ready at once; a connection returned a moment ago may still be
            // finishing its last response.
            if sender.ready().await.is_ok() {
                return Some((sender, idle.host));
            }
        }
    }

    fn put(&self, sender: SendRequest<Incoming>, host: Arc<Host>) {
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
            stack.push_back(Idle {
                sender,
                host,
                since: now,
            });
        }
    }
}

/// A client connection's own task, which drives it until it ends or a downstream
/// connection's slot adopts it.
struct Host {
    state: Mutex<HostState>,
}

struct HostState {
    /// `None` once adopted (or ended).
    conn: Option<Driven>,
    /// The task, to wake it when adopted so it ends.
    task: Option<Waker>,
}

impl Host {
    /// Spawns the task driving `conn`.
    fn spawn(conn: Driven, name: Arc<str>) -> Arc<Host> {
        let host = Arc::new(Host {
            state: Mutex::new(HostState {
                conn: Some(conn),
                task: None,
            }),
        });
        let driver = host.clone();
        tokio::spawn(std::future::poll_fn(move |cx| {
            let mut state = driver.lock();
            let Some(conn) = state.conn.as_mut() else {
                return Poll::Ready(());
            };
            match conn.as_mut().poll(cx) {
                Poll::Ready(result) => {
                    state.conn = None;
                    state.task = None;
                    drop(state);
                    if let Err(err) = result {
                        tracing::debug!(upstream = %name, error = %err, "upstream connection ended");
                    }
                    Poll::Ready(())
                }
                Poll::Pending => {
                    if !state.task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
                        state.task = Some(cx.waker().clone());
                    }
                    Poll::Pending
                }
            }
        }));
        host
    }

    fn lock(&self) -> MutexGuard<'_, HostState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes the connection from its task, which then ends. `None` if it has ended.
    fn adopt(&self) -> Option<Driven> {
        let mut state = self.lock();
        let conn = state.conn.take()?;
        if let Some(task) = state.task.take() {
            task.wake();
        }
        Some(conn)
    }
}

/// The one upstream connection a downstream HTTP/1 connection drives in its own task
/// (module docs). The downstream connection polls it ([`UpstreamSlot::poll`]) next to its
/// hyper server connection, runs its requests inside [`UpstreamSlot::scope`] so that
/// [`Upstream::send`] finds it, and [`UpstreamSlot::release`]s it when it parks or ends.
#[derive(Clone, Default)]
pub struct UpstreamSlot(Arc<Mutex<Option<Held>>>);

/// A connection held by a slot.
struct Held {
    /// The pool it belongs to (which upstream), and where it goes on release.
    idle: Arc<IdleConnections>,
    name: Arc<str>,
    conn: Driven,
    /// `None` while lent to an exchange.
    sender: Option<SendRequest<Incoming>>,
}

impl UpstreamSlot {
    /// An empty slot.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Option<Held>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `future` (the downstream connection) with this slot as the one
    /// [`Upstream::send`] uses.
    pub async fn scope<F: Future>(&self, future: F) -> F::Output {
        SLOT.scope(self.clone(), future).await
    }

    /// Drives the held connection, if any, with the downstream connection's task context;
    /// forgets it once it has ended.
    pub fn poll(&self, cx: &mut Context<'_>) {
        let mut held = self.lock();
        let Some(connection) = held.as_mut() else {
            return;
        };
        if let Poll::Ready(result) = connection.conn.as_mut().poll(cx) {
            if let Err(err) = result {
                tracing::debug!(upstream = %connection.name, error = %err, "upstream connection ended");
            }
            *held = None;
        }
    }

    /// The downstream connection parks or ends: the held connection gets a task of its
    /// own again, and goes back to its pool if it is idle (otherwise it finishes what it
    /// is doing — an upgrade, say — and closes).
    pub fn release(&self) {
        let Some(held) = self.lock().take() else {
            return;
        };
        let host = Host::spawn(held.conn, held.name);
        if let Some(sender) = held.sender {
            held.idle.put(sender, host);
        }
    }

    fn is_empty(&self) -> bool {
        self.lock().is_none()
    }

    /// The held connection's sender, if the slot holds an idle connection to `idle`'s
    /// upstream.
    fn take_sender(&self, idle: &Arc<IdleConnections>) -> Option<SendRequest<Incoming>> {
        let mut held = self.lock();
        let held = held.as_mut()?;
        if !Arc::ptr_eq(&held.idle, idle) {
            return None;
        }
        held.sender.take()
    }

    /// Holds `conn` (its sender is lent out).
    fn hold(&self, upstream: &Upstream, conn: Driven) {
        *self.lock() = Some(Held {
            idle: upstream.idle.clone(),
            name: upstream.name.clone(),
            conn,
            sender: None,
        });
    }

    /// An exchange on the held connection is over; `sender` can take the next.
    fn give_back(&self, sender: SendRequest<Incoming>) {
        if let Some(held) = self.lock().as_mut() {
            if held.sender.is_none() && !sender.is_closed() {
                held.sender = Some(sender);
            }
        }
    }
}

/// Where a connection goes back after its exchange.
enum Home {
    /// The pool, driven by its own task.
    Pool(Arc<Host>),
    /// The downstream connection's slot, which drives it.
    Slot(UpstreamSlot),
}

/// A connection to hand back once its response has been read.
struct GiveBack {
    sender: SendRequest<Incoming>,
    home: Home,
    idle: Arc<IdleConnections>,
}

impl GiveBack {
    fn now(self) {
        match self.home {
            Home::Pool(host) => self.idle.put(self.sender, host),
            Home::Slot(slot) => slot.give_back(self.sender),
        }
    }
}

/// An upstream response body. Read to its end, it returns its connection to the pool;
/// dropped before that, the connection closes with it.
pub struct UpstreamBody {
    inner: Incoming,
    give_back: Option<GiveBack>,
}

impl hyper::body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let finished = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => self.inner.is_end_stream(),
            Poll::Ready(Some(Err(_))) => {
                self.give_back = None;
                false
            }
            Poll::Pending => false,
        };
        if finished {
            if let Some(give_back) = self.give_back.take() {
                give_back.now();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
