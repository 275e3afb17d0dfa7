//! Accept loops: HTTP/1.1, h2c (prior knowledge) and, over TLS, h2 by ALPN, through
//! hyper-util's auto builder with upgrades; connection limit, header and idle timeouts,
//! graceful shutdown.
//!
//! Slow or stuck clients: `header_timeout` bounds the time to receive a request head
//! (hyper's header read timer, which also runs while a keep-alive connection waits for
//! its next request); `idle_timeout` closes keep-alive connections with nothing in flight;
//! `max_connections` is a semaphore taken before `accept`, so excess connections wait in
//! the kernel backlog instead of starving the ones being served.

pub mod tls;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::config::ServerSettings;
use crate::proxy::{ConnInfo, Gateway};
use tls::TlsAcceptorCell;

/// Largest request head accepted; larger heads get 431 from hyper.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields accepted in one request head.
pub const MAX_HEADERS: usize = 128;

/// Runs the main listener until `shutdown` turns true, then drains connections for up to
/// `shutdown_grace`.
pub async fn run(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    settings: ServerSettings,
    tls: Option<TlsAcceptorCell>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(settings.max_connections));
    let builder = Arc::new(builder(&settings));
    loop {
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let gateway = gateway.clone();
        let builder = builder.clone();
        let stop = shutdown.clone();
        let tls = tls.as_ref().map(|cell| cell.current());
        let timeouts = Timeouts {
            header: settings.header_timeout,
            idle: settings.idle_timeout,
        };
        tokio::spawn(async move {
            let _permit = permit;
            gateway.metrics.connection_opened();
            match tls {
                None => {
                    let conn = ConnInfo { peer, https: false };
                    serve(stream, conn, gateway.clone(), &builder, stop, timeouts).await;
                }
                Some(acceptor) => {
                    match tokio::time::timeout(timeouts.header, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let conn = ConnInfo { peer, https: true };
                            serve(stream, conn, gateway.clone(), &builder, stop, timeouts).await;
                        }
                        Ok(Err(err)) => {
                            tracing::debug!(peer = %peer, error = %err, "tls handshake failed")
                        }
                        Err(_) => tracing::debug!(peer = %peer, "tls handshake timed out"),
                    }
                }
            }
            gateway.metrics.connection_closed();
        });
    }
    drop(listener);
    // Every connection holds a permit: when all are back, all connections have closed.
    // Upgraded (WebSocket) connections left hyper when they were spliced: they are on the
    // gateway's tracker, waited for within the same grace.
    let all = u32::try_from(settings.max_connections).unwrap_or(u32::MAX);
    gateway.upgrades.close();
    let drained = async {
        let _all_back = limit.acquire_many(all).await;
        gateway.upgrades.wait().await;
    };
    tokio::select! {
        () = drained => tracing::info!("all connections drained"),
        () = tokio::time::sleep(settings.shutdown_grace) => {
            tracing::warn!(
                grace = ?settings.shutdown_grace,
                open_upgraded = gateway.upgrades.len(),
                "shutdown grace elapsed; closing remaining connections"
            );
        }
    }
}

fn builder(settings: &ServerSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout)
        .keep_alive(true)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEAD_BYTES as u32)
        .max_concurrent_streams(256);
    builder
}

/// Activity of one connection, for the header and idle timeouts.
struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    last_ms: AtomicU64,
    /// Set once the first request head has arrived.
    served: AtomicBool,
}

impl Activity {
    fn touch(&self) {
        self.last_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long the connection has had nothing in flight.
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        Some(self.started.elapsed().saturating_sub(last))
    }
}

async fn serve<I>(
    io: I,
    conn: ConnInfo,
    gateway: Arc<Gateway>,
    builder: &auto::Builder<TokioExecutor>,
    shutdown: watch::Receiver<bool>,
    timeouts: Timeouts,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity {
        started: Instant::now(),
        in_flight: AtomicUsize::new(0),
        last_ms: AtomicU64::new(0),
        served: AtomicBool::new(false),
    });
    let service_activity = activity.clone();
    let service = service_fn(move |request| {
        let gateway = gateway.clone();
        let activity = service_activity.clone();
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.served.store(true, Ordering::Relaxed);
        async move {
            // Boxed: hyper keeps one slot per connection sized for this future; the
            // pipeline future is large, and idle keep-alive connections should not
            // carry it (measured: benches/RESULTS.md, memory).
            let response = Box::pin(gateway.handle(request, conn)).await;
            activity.touch();
            activity.in_flight.fetch_sub(1, Ordering::Relaxed);
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let result = drive(connection.as_mut(), &activity, timeouts, shutdown).await;
    if let Err(err) = result {
        tracing::debug!(peer = %conn.peer, error = %err, "connection ended with an error");
    }
}

/// The per-connection clocks.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    /// Until a request head has arrived; for the first request counted from accept, so a
    /// connection that never sends a byte is cut as soon as one that dribbles.
    header: Duration,
    /// Keep-alive connections with nothing in flight.
    idle: Duration,
}

/// Drives a connection; asks it to close gracefully (a response in progress still
/// completes) once it has been idle too long or the server shuts down, and drops it when
/// no first request head arrived within the header timeout (hyper's own header timer
/// starts only at the first byte).
async fn drive<C>(
    mut connection: std::pin::Pin<&mut C>,
    activity: &Activity,
    timeouts: Timeouts,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), C::Error>
where
    C: hyper_util::server::graceful::GracefulConnection,
{
    let idle_timeout = timeouts.idle;
    let first_head = tokio::time::sleep(timeouts.header);
    tokio::pin!(first_head);
    let check_every = (idle_timeout / 4).max(Duration::from_millis(50));
    let mut closing = *shutdown.borrow();
    if closing {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = connection.as_mut() => return result,
            _ = &mut first_head, if !activity.served.load(Ordering::Relaxed) => {
                if !activity.served.load(Ordering::Relaxed) {
                    return Ok(());
                }
            }
            _ = tokio::time::sleep(check_every), if !closing => {
                if activity.idle_for().is_some_and(|idle| idle >= idle_timeout) {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
            changed = shutdown.changed(), if !closing => {
                if changed.is_err() || *shutdown.borrow() {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}
