//! Protocol choice and one hyper connection of either protocol: HTTP/2 by ALPN or by the
//! h2c prior-knowledge preface (read whole before choosing), otherwise HTTP/1 with
//! upgrades; and the gateway as the connection's hyper service, keeping the connection's
//! [`Activity`] up to date.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{Request, StatusCode};
use hyper::body::{Body as _, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant as Deadline;

use super::activity::{Activity, InFlight, TrackedBody};
use super::drive::{drive, Ended};
use super::io::{ConnIo, OpenConnection};
use super::park::PARK_AFTER;
use super::Shared;
use crate::gateway::{ConnInfo, Gateway};

/// What every HTTP/2 connection starts with (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether a connection's first bytes are the h2c prior-knowledge preface.
pub(super) fn is_h2_preface(first: &[u8]) -> bool {
    first.starts_with(H2_PREFACE)
}

/// Reads on while the bytes so far could still be the start of the h2c preface, so that
/// HTTP/1 and HTTP/2 are told apart on the whole preface. `None`: closed or too slow.
pub(super) async fn read_past_h2_preface<I: AsyncRead + Unpin>(
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

/// How an HTTP/1 hyper connection begins.
pub(super) struct Http1Start {
    /// For the connection's first request: drop it if no head arrived by then.
    pub head_deadline: Option<Deadline>,
    /// The connection was quiet before: park it as soon as its first response is sent.
    pub park_after_first_response: bool,
}

/// How an HTTP/1 hyper connection ended.
pub(super) enum Http1End<I> {
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

/// Serves one hyper HTTP/1 connection on `io` until it closes or lets go of the socket to
/// be parked (the hyper behaviour this relies on: `super`'s docs).
pub(super) async fn serve_http1<I>(
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
    let peer = conn.peer;
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
            tracing::debug!(peer = %peer, error = %err, "connection ended with an error");
            Http1End::Closed
        }
    }
}

/// Serves an HTTP/2 connection (ALPN `h2` or h2c) for its whole life.
pub(super) async fn serve_h2<I>(
    io: ConnIo<I>,
    conn: ConnInfo,
    shared: &Arc<Shared>,
    activity: &Arc<Activity>,
    head_deadline: Deadline,
    shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = conn.peer;
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
        tracing::debug!(peer = %peer, error = %err, "connection ended with an error");
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
        let conn = conn.clone();
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
                in_flight.protocol_switched();
            }
            Ok(response.map(|body| TrackedBody::new(body, in_flight)))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn the_h2_preface_is_read_whole_before_choosing() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(&H2_PREFACE[3..]).await.expect("write");
        let deadline = Deadline::now() + Duration::from_secs(5);
        let first = Bytes::from_static(&H2_PREFACE[..3]);
        let whole = read_past_h2_preface(&mut server, first, deadline).await;
        assert_eq!(whole.as_deref(), Some(H2_PREFACE));
        assert!(whole.as_deref().is_some_and(is_h2_preface));
        let http1 = Bytes::from_static(b"PUT / HTTP/1.1\r\n");
        let seen = read_past_h2_preface(&mut server, http1.clone(), deadline).await;
        assert_eq!(seen, Some(http1), "not the preface: nothing more is read");
    }
}
