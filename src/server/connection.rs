//! One client connection, from accept to close.
//!
//! HTTP/2 (ALPN `h2`, or the h2c prior-knowledge preface) goes to hyper's h2 server for the
//! connection's whole life. An HTTP/1 connection alternates between two states:
//! - **served**: a hyper HTTP/1 connection owns the socket, with its read and write
//!   buffers (8–16 KiB and 8 KiB) and its state;
//! - **parked**: hyper is asked to end the idle connection with the socket kept open, and
//!   the task holds only the socket until the next bytes arrive; those start a fresh hyper
//!   connection, replayed in front.
//!
//! When to park: a connection that has been quiet (just accepted, or nothing in flight for
//! [`PARK_AFTER`]) parks as soon as its next response is sent: one request and silence is
//! the common shape of an idle keep-alive connection. A connection that came back sooner
//! is busy; it parks only after [`PARK_AFTER`] with nothing in flight, so a client sending
//! a stream of requests never pays for a new hyper connection per request. nginx frees the
//! buffers of its idle keep-alive connections the same way; it is what keeps 10,000 idle
//! keep-alive connections far below 150 MiB (benches/RESULTS.md, memory). A connection that
//! never sends a byte is parked from the start.
//!
//! A connection is parked only when hyper is idle in a known-clean state: no request in
//! flight, every response body sent, no protocol switch, and the last request without a
//! body (had it one that nobody read to the end, hyper may have stopped reading mid-body,
//! and parked bytes would be read as a new request). Otherwise it is served on as before.
//!
//! Clocks: `header_timeout` from accept to the first request head; `idle_timeout` for a
//! connection with nothing in flight, parked or not. Shutdown closes parked connections at
//! once and asks served ones to finish what is in flight.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{Request, StatusCode};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{watch, Notify};
use tokio::time::Instant as Deadline;

use super::conn_io::{ConnIo, OpenConnection};
use crate::gateway::{ConnInfo, Gateway};
use crate::http::Body;

/// How long a busy HTTP/1 connection with nothing in flight keeps hyper's buffers before it
/// is parked, and how long a connection must have been quiet for its next response to park
/// it at once.
pub const PARK_AFTER: Duration = Duration::from_secs(1);

/// Bytes read at once by a parked connection; hyper reads the rest of the request.
const PARKED_READ: usize = 512;

/// What every HTTP/2 connection starts with (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What connections share: the gateway, the protocol settings, the clocks.
pub struct Shared {
    pub gateway: Arc<Gateway>,
    pub http1: hyper::server::conn::http1::Builder,
    pub http2: hyper::server::conn::http2::Builder<TokioExecutor>,
    pub timeouts: Timeouts,
}

/// The per-connection clocks.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Until a request head has arrived; for the first request counted from accept, so a
    /// connection that never sends a byte is cut as soon as one that dribbles.
    pub header: Duration,
    /// Connections with nothing in flight.
    pub idle: Duration,
}

/// Serves one accepted (for TLS: handshaken) connection until it closes. `alpn_h2` when
/// TLS negotiated HTTP/2. `open` goes with the socket wherever it goes.
pub async fn serve<I>(
    mut io: I,
    open: OpenConnection,
    conn: ConnInfo,
    alpn_h2: bool,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let head_deadline = Deadline::now() + shared.timeouts.header;
    let mut open = Some(open);
    if alpn_h2 {
        let io = ConnIo::new(io, Bytes::new(), activity.keep_open.clone(), open);
        return serve_h2(io, conn, &shared, &activity, head_deadline, shutdown).await;
    }
    let Some(first) = next_bytes(&mut io, head_deadline, &mut shutdown).await else {
        return close(io).await;
    };
    let Some(first) = read_past_h2_preface(&mut io, first, head_deadline).await else {
        return;
    };
    if first.starts_with(H2_PREFACE) {
        let io = ConnIo::new(io, first, activity.keep_open.clone(), open);
        return serve_h2(io, conn, &shared, &activity, head_deadline, shutdown).await;
    }
    let mut replay = first;
    let mut head_deadline = Some(head_deadline);
    let mut quiet_before = true;
    loop {
        let socket = ConnIo::new(io, replay, activity.keep_open.clone(), open.take());
        let served = serve_http1(
            socket,
            conn,
            &shared,
            &activity,
            Http1Start {
                head_deadline: head_deadline.take(),
                park_after_first_response: quiet_before,
            },
            &shutdown,
        );
        let (parked, unread) = match served.await {
            Http1End::Closed => return,
            Http1End::Parked {
                io,
                unread,
                open: place,
            } => {
                open = place;
                (io, unread)
            }
        };
        io = parked;
        replay = if unread.is_empty() {
            let idle = activity.idle_for().unwrap_or_default();
            let deadline = Deadline::now() + shared.timeouts.idle.saturating_sub(idle);
            match next_bytes(&mut io, deadline, &mut shutdown).await {
                Some(bytes) => bytes,
                None => return close(io).await,
            }
        } else {
            unread
        };
        quiet_before = activity.idle_for().is_some_and(|idle| idle >= PARK_AFTER);
    }
}

/// How an HTTP/1 hyper connection begins.
struct Http1Start {
    /// For the connection's first request: drop it if no head arrived by then.
    head_deadline: Option<Deadline>,
    /// The connection was quiet before: park it as soon as its first response is sent.
    park_after_first_response: bool,
}

/// How an HTTP/1 hyper connection ended.
enum Http1End<I> {
    /// The socket is closed or owned elsewhere (upgraded).
    Closed,
    /// Idle and let go by hyper: the socket, open, bytes hyper read but did not parse,
    /// and the connection's place.
    Parked {
        io: I,
        unread: Bytes,
        open: Option<OpenConnection>,
    },
}

async fn serve_http1<I>(
    io: ConnIo<I>,
    conn: ConnInfo,
    shared: &Arc<Shared>,
    activity: &Arc<Activity>,
    start: Http1Start,
    shutdown: &watch::Receiver<bool>,
) -> Http1End<I>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    activity.keep_open.store(false, Ordering::Release);
    activity
        .park_eagerly
        .store(start.park_after_first_response, Ordering::Relaxed);
    let io = TokioIo::new(io);
    let service = proxy_service(shared.gateway.clone(), conn, activity.clone());
    // Boxed: a parked connection's task does not carry hyper's connection state.
    let mut connection = Box::new(shared.http1.serve_connection(io, service).with_upgrades());
    let ended = drive(
        Pin::new(&mut *connection),
        |connection| connection.graceful_shutdown(),
        activity,
        shared.timeouts,
        start.head_deadline,
        Some(PARK_AFTER),
        shutdown,
    )
    .await;
    match ended {
        Ok(Ended::Parked) => match connection.into_parts() {
            Some(parts) => {
                let (io, unreplayed, open) = parts.io.into_inner().into_parts();
                // Copied: `read_buf` (even empty) keeps hyper's whole read buffer alive,
                // which is what parking is meant to free.
                let mut unread = BytesMut::new();
                unread.extend_from_slice(&parts.read_buf);
                unread.extend_from_slice(&unreplayed);
                Http1End::Parked {
                    io,
                    unread: unread.freeze(),
                    open,
                }
            }
            None => Http1End::Closed,
        },
        Ok(Ended::Closed) => Http1End::Closed,
        Err(err) => {
            tracing::debug!(peer = %conn.peer, error = %err, "connection ended with an error");
            Http1End::Closed
        }
    }
}

async fn serve_h2<I>(
    io: ConnIo<I>,
    conn: ConnInfo,
    shared: &Arc<Shared>,
    activity: &Arc<Activity>,
    head_deadline: Deadline,
    shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = proxy_service(shared.gateway.clone(), conn, activity.clone());
    let mut connection = Box::pin(shared.http2.serve_connection(TokioIo::new(io), service));
    let ended = drive(
        connection.as_mut(),
        |connection| connection.graceful_shutdown(),
        activity,
        shared.timeouts,
        Some(head_deadline),
        None,
        &shutdown,
    )
    .await;
    if let Err(err) = ended {
        tracing::debug!(peer = %conn.peer, error = %err, "connection ended with an error");
    }
}

/// The gateway as a hyper service for one connection, keeping `activity` up to date.
fn proxy_service(
    gateway: Arc<Gateway>,
    conn: ConnInfo,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = http::Response<TrackedBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<TrackedBody>, Infallible>> + Send,
> + Clone
       + Send {
    service_fn(move |request: Request<Incoming>| {
        let gateway = gateway.clone();
        let in_flight = InFlight::start(&activity);
        activity
            .last_had_body
            .store(!request.body().is_end_stream(), Ordering::Relaxed);
        async move {
            // Not boxed: hyper keeps this future in a slot allocated once per hyper
            // connection, and parked connections have none. Boxing it would add a ~4 KB
            // allocation per request (no measurable difference in instructions either
            // way: benches/RESULTS.md, history).
            let response = gateway.handle(request, conn).await;
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                in_flight.0.switched.store(true, Ordering::Relaxed);
            }
            Ok(response.map(|body| TrackedBody {
                inner: body,
                _in_flight: in_flight,
            }))
        }
    })
}

/// How `drive` ended.
enum Ended {
    /// The connection is over (hyper closed it, or it was dropped at the header deadline).
    Closed,
    /// Parking was asked for and hyper let go of the socket without closing it.
    Parked,
}

/// Drives a hyper connection. Asks it to finish gracefully (what is in flight completes)
/// when idle past `idle_timeout` or at shutdown; drops it when no first request head came
/// by `head_deadline` (hyper's own header timer starts only at the first byte); asks an
/// HTTP/1 connection (`park_after` set) to let go of its socket once idle that long, or
/// right after its first response when `activity.park_eagerly` is set.
///
/// The clock, the shutdown signal and the response signal are polled only after one of
/// them woke the task ([`SideWake`]), not on every wake of the connection: polling them
/// each time was 2% of a proxied request's instructions.
async fn drive<C>(
    mut connection: Pin<&mut C>,
    graceful_shutdown: impl Fn(Pin<&mut C>),
    activity: &Activity,
    timeouts: Timeouts,
    mut head_deadline: Option<Deadline>,
    park_after: Option<Duration>,
    shutdown: &watch::Receiver<bool>,
) -> Result<Ended, hyper::Error>
where
    C: Future<Output = Result<(), hyper::Error>>,
{
    let period = check_period(timeouts.idle, park_after);
    let next_check = |now: Deadline, head: Option<Deadline>| {
        head.map_or(now + period, |head| head.min(now + period))
    };
    let timer = tokio::time::sleep_until(next_check(Deadline::now(), head_deadline));
    let mut watcher = shutdown.clone();
    let shutdown_changed = watcher.changed();
    let responded = activity.responded.notified();
    tokio::pin!(timer, shutdown_changed, responded);
    let side = Arc::new(SideWake::default());
    let side_waker = Waker::from(side.clone());
    let mut closing = *shutdown.borrow();
    let mut watching = !closing;
    let mut parking = false;
    let mut eager = park_after.is_some() && activity.park_eagerly.load(Ordering::Relaxed);
    if closing {
        graceful_shutdown(connection.as_mut());
    }
    loop {
        // Every side future is (re)polled after each event, so each has its waker set.
        side.fired.store(true, Ordering::Release);
        let event = std::future::poll_fn(|cx| {
            side.follow(cx.waker());
            if let Poll::Ready(result) = connection.as_mut().poll(cx) {
                return Poll::Ready(Event::Done(result));
            }
            if !side.fired.swap(false, Ordering::AcqRel) {
                return Poll::Pending;
            }
            let mut side_cx = Context::from_waker(&side_waker);
            if eager && responded.as_mut().poll(&mut side_cx).is_ready() {
                return Poll::Ready(Event::Responded);
            }
            if timer.as_mut().poll(&mut side_cx).is_ready() {
                return Poll::Ready(Event::Tick);
            }
            if watching {
                if let Poll::Ready(changed) = shutdown_changed.as_mut().poll(&mut side_cx) {
                    return Poll::Ready(Event::ShutdownSignal(changed.is_ok()));
                }
            }
            Poll::Pending
        })
        .await;
        match event {
            Event::Done(result) => {
                result?;
                return Ok(if parking {
                    Ended::Parked
                } else {
                    Ended::Closed
                });
            }
            Event::Responded => {
                eager = false;
                activity.park_eagerly.store(false, Ordering::Relaxed);
                if !closing && !parking && activity.parkable() {
                    activity.keep_open.store(true, Ordering::Release);
                    graceful_shutdown(connection.as_mut());
                    parking = true;
                }
            }
            Event::Tick => {
                let now = Deadline::now();
                if let Some(head) = head_deadline {
                    if activity.served.load(Ordering::Relaxed) {
                        head_deadline = None;
                    } else if now >= head {
                        return Ok(Ended::Closed);
                    }
                }
                if !closing && !parking {
                    match activity.idle_for() {
                        Some(idle) if idle >= timeouts.idle => {
                            graceful_shutdown(connection.as_mut());
                            closing = true;
                        }
                        Some(idle)
                            if park_after.is_some_and(|after| idle >= after)
                                && activity.parkable() =>
                        {
                            activity.keep_open.store(true, Ordering::Release);
                            graceful_shutdown(connection.as_mut());
                            parking = true;
                        }
                        _ => {}
                    }
                }
                timer.as_mut().reset(next_check(now, head_deadline));
            }
            Event::ShutdownSignal(sender_alive) => {
                // The future is spent either way; the signal only ever turns true.
                watching = false;
                if !sender_alive || *shutdown.borrow() {
                    if !closing {
                        graceful_shutdown(connection.as_mut());
                    }
                    closing = true;
                }
            }
        }
    }
}

/// What `drive` woke up for.
enum Event {
    /// The hyper connection finished.
    Done(Result<(), hyper::Error>),
    /// A response was sent (eager parking).
    Responded,
    /// The clock.
    Tick,
    /// The shutdown signal changed (`false`: its sender is gone, which counts as shutdown).
    ShutdownSignal(bool),
}

/// The waker given to `drive`'s side futures: notes that one of them fired and wakes the
/// connection's task, so `drive` polls them only then.
#[derive(Default)]
struct SideWake {
    fired: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl SideWake {
    /// Keeps the task's current waker (it can change between polls).
    fn follow(&self, waker: &Waker) {
        let mut task = self
            .task
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !task
            .as_ref()
            .is_some_and(|current| current.will_wake(waker))
        {
            *task = Some(waker.clone());
        }
    }
}

impl Wake for SideWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        let task = self
            .task
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(task) = task.as_ref() {
            task.wake_by_ref();
        }
    }
}

/// How often a served connection looks at its clocks.
fn check_period(idle_timeout: Duration, park_after: Option<Duration>) -> Duration {
    let period = match park_after {
        Some(after) => (idle_timeout / 4).min(after / 2),
        None => idle_timeout / 4,
    };
    period.max(Duration::from_millis(50))
}

/// Waits for a parked connection's next bytes: `None` at the deadline, on EOF or error,
/// or at shutdown.
async fn next_bytes<I: AsyncRead + Unpin>(
    io: &mut I,
    deadline: Deadline,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Bytes> {
    let mut buf = [0u8; PARKED_READ];
    loop {
        if *shutdown.borrow() {
            return None;
        }
        tokio::select! {
            biased;
            read = io.read(&mut buf) => {
                return match read {
                    Ok(0) | Err(_) => None,
                    Ok(n) => Some(Bytes::copy_from_slice(&buf[..n])),
                };
            }
            () = tokio::time::sleep_until(deadline) => return None,
            changed = shutdown.changed() => {
                if changed.is_err() {
                    return None;
                }
            }
        }
    }
}

/// Reads on while the bytes so far could still be the start of the h2c preface, so that
/// HTTP/1 and HTTP/2 are told apart on the whole preface. `None`: closed or too slow.
async fn read_past_h2_preface<I: AsyncRead + Unpin>(
    io: &mut I,
    first: Bytes,
    deadline: Deadline,
) -> Option<Bytes> {
    if first.len() >= H2_PREFACE.len() || !H2_PREFACE.starts_with(&first) {
        return Some(first);
    }
    let mut bytes = BytesMut::from(&first[..]);
    while bytes.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(&bytes) {
        match tokio::time::timeout_at(deadline, io.read_buf(&mut bytes)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return None,
        }
    }
    Some(bytes.freeze())
}

/// Closes a parked connection: FIN (or TLS close_notify), bounded in time.
async fn close<I: AsyncWrite + Unpin>(mut io: I) {
    let _ = tokio::time::timeout(Duration::from_secs(1), io.shutdown()).await;
}

/// What the clocks and the parking decision need to know about one client connection.
struct Activity {
    started: Instant,
    /// Requests whose response has not been fully handed to hyper (its body included).
    in_flight: AtomicUsize,
    /// When the last response was done, in ms since `started`.
    last_ms: AtomicU64,
    /// A request head has arrived.
    served: AtomicBool,
    /// The last request had a body.
    last_had_body: AtomicBool,
    /// A response switched protocols (the socket is spliced, not parked).
    switched: AtomicBool,
    /// Shared with the socket wrapper: hyper's shutdown of the socket is held back.
    keep_open: Arc<AtomicBool>,
    /// Park as soon as a response is sent (signalled through `responded`).
    park_eagerly: AtomicBool,
    responded: Notify,
}

impl Activity {
    fn new() -> Self {
        Activity {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
            served: AtomicBool::new(false),
            last_had_body: AtomicBool::new(false),
            switched: AtomicBool::new(false),
            keep_open: Arc::new(AtomicBool::new(false)),
            park_eagerly: AtomicBool::new(false),
            responded: Notify::new(),
        }
    }

    fn touch(&self) {
        let elapsed = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(elapsed, Ordering::Relaxed);
    }

    /// How long the connection has had nothing in flight.
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        Some(self.started.elapsed().saturating_sub(last))
    }

    /// Whether hyper can let go of the socket with nothing of the stream left unread.
    fn parkable(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
            && !self.last_had_body.load(Ordering::Relaxed)
            && !self.switched.load(Ordering::Relaxed)
    }
}

/// Keeps a request counted as in flight until its response body is sent or dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.served.store(true, Ordering::Relaxed);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        if self.0.park_eagerly.load(Ordering::Relaxed) {
            self.0.responded.notify_waiters();
        }
    }
}

/// A response body that keeps its request in flight until hyper is done with it.
pub struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_are_checked_often_enough_for_both_timeouts() {
        let second = Duration::from_secs(1);
        assert_eq!(check_period(60 * second, Some(PARK_AFTER)), PARK_AFTER / 2);
        assert_eq!(check_period(60 * second, None), 15 * second);
        assert_eq!(
            check_period(Duration::from_millis(100), None),
            Duration::from_millis(50)
        );
    }

    #[test]
    fn a_connection_is_parkable_only_between_clean_exchanges() {
        let activity = Arc::new(Activity::new());
        assert!(activity.parkable());
        let in_flight = InFlight::start(&activity);
        assert!(!activity.parkable(), "a response still being sent");
        drop(in_flight);
        assert!(activity.parkable());
        activity.last_had_body.store(true, Ordering::Relaxed);
        assert!(!activity.parkable(), "the last request body may be unread");
    }

    #[tokio::test]
    async fn the_h2_preface_is_read_whole_before_choosing() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(&H2_PREFACE[3..]).await.expect("write");
        let deadline = Deadline::now() + Duration::from_secs(5);
        let first = Bytes::from_static(&H2_PREFACE[..3]);
        let whole = read_past_h2_preface(&mut server, first, deadline).await;
        assert_eq!(whole.as_deref(), Some(H2_PREFACE));
        let http1 = Bytes::from_static(b"PUT / HTTP/1.1\r\n");
        let seen = read_past_h2_preface(&mut server, http1.clone(), deadline).await;
        assert_eq!(seen, Some(http1), "not the preface: nothing more is read");
    }
}
