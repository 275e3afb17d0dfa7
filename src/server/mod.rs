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

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
        let idle_timeout = settings.idle_timeout;
        let header_timeout = settings.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            gateway.metrics.connection_opened();
            match tls {
                None => {
                    let conn = ConnInfo { peer, https: false };
                    serve(stream, conn, gateway.clone(), &builder, stop, idle_timeout).await;
                }
                Some(acceptor) => {
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let conn = ConnInfo { peer, https: true };
                            serve(stream, conn, gateway.clone(), &builder, stop, idle_timeout)
                                .await;
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
    let all = u32::try_from(settings.max_connections).unwrap_or(u32::MAX);
    tokio::select! {
        _ = limit.acquire_many(all) => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(settings.shutdown_grace) => {
            tracing::warn!(grace = ?settings.shutdown_grace, "shutdown grace elapsed; closing remaining connections");
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

/// Activity of one connection, for the idle timeout.
struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    last_ms: AtomicU64,
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
    idle_timeout: Duration,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity {
        started: Instant::now(),
        in_flight: AtomicUsize::new(0),
        last_ms: AtomicU64::new(0),
    });
    let service_activity = activity.clone();
    let service = service_fn(move |request| {
        let gateway = gateway.clone();
        let activity = service_activity.clone();
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        async move {
            let response = gateway.handle(request, conn).await;
            activity.touch();
            activity.in_flight.fetch_sub(1, Ordering::Relaxed);
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let result = drive(connection.as_mut(), &activity, idle_timeout, shutdown).await;
    if let Err(err) = result {
        tracing::debug!(peer = %conn.peer, error = %err, "connection ended with an error");
    }
}

/// Drives a connection; asks it to close gracefully (a response in progress still
/// completes) once it has been idle for `idle_timeout` or the server shuts down.
async fn drive<C>(
    mut connection: std::pin::Pin<&mut C>,
    activity: &Activity,
    idle_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), C::Error>
where
    C: hyper_util::server::graceful::GracefulConnection,
{
    let check_every = (idle_timeout / 4).max(Duration::from_millis(50));
    let mut closing = *shutdown.borrow();
    if closing {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = connection.as_mut() => return result,
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
