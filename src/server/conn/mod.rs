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
//! never sends a byte never gets hyper state at all. `gatehouse_parked_connections` counts
//! the connections hyper has let go of and that wait, socket only, for their next bytes.
//!
//! A connection is parked only when hyper is idle in a known-clean state: no request in
//! flight, every response body sent, no protocol switch, and the last request without a
//! body (had it one that nobody read to the end, hyper may have stopped reading mid-body,
//! and parked bytes would be read as a new request). Otherwise it is served on as before.
//!
//! Clocks: `header_timeout` from accept to the first request head; `idle_timeout` for a
//! connection with nothing in flight, parked or not. Shutdown closes parked connections at
//! once and asks served ones to finish what is in flight.
//!
//! # Files
//!
//! - `mod.rs` — the task entry ([`serve`]): HTTP/2 or HTTP/1, then the served ⇄ parked loop;
//! - `dispatch.rs` — protocol choice (h2 by ALPN or h2c preface) and one hyper connection of
//!   either protocol, with the gateway as its service;
//! - `drive.rs` — drives a hyper connection against its clocks, the shutdown signal and the
//!   parking decision (the hand-written side waker);
//! - `park.rs` — a parked connection: waiting for its next bytes, closing it, the gauge;
//! - `activity.rs` — what the clocks and the parking decision know of a connection
//!   (in flight, last activity, last request had a body, protocol switched);
//! - `io.rs` — the socket as hyper sees it (replayed bytes, held-back shutdown) and the
//!   connection's `max_connections` slot.
//!
//! # What parking relies on in hyper
//!
//! Written against hyper **1.12.0** (Cargo.lock), `hyper::server::conn::http1` with
//! upgrades. Parking is built from public calls only — `Builder::serve_connection(..)
//! .with_upgrades()`, `UpgradeableConnection::graceful_shutdown` and `into_parts` — and
//! relies on these behaviours, each pinned by a test in `hyper_contract.rs` (a hyper
//! upgrade that changes one fails it):
//!
//! 1. **An idle connection ends at once, through the IO's shutdown only.**
//!    `graceful_shutdown()` on a connection with no request in flight (hyper's keep-alive
//!    state idle, even with part of a next request head already buffered) makes the
//!    connection future resolve `Ok(())` after flushing what was already written and
//!    calling `poll_shutdown` on the IO — it writes nothing more.
//!    `io::ConnIo` answers that `poll_shutdown` with a flush while `keep_open` is set, so
//!    the socket stays open and untouched for the next request.
//! 2. **Nothing read is lost.** `into_parts()` then returns `Some(Parts)` (it is `None`
//!    only after an upgrade, whose socket belongs to the `Upgraded` — parking never
//!    follows a protocol switch) with our IO wrapper in `io` and, in `read_buf`, exactly the
//!    bytes hyper read but did not parse (a partial next request). They are replayed in
//!    front of the next hyper connection. `read_buf` is a slice of hyper's read buffer, so
//!    it is copied out: holding it would keep the whole buffer alive.
//! 3. **A response is done when its body is dropped.** hyper drops the response body once
//!    it has taken its last frame — possibly before those bytes are flushed; a shutdown
//!    asked for then still flushes them first (point 1) — so `activity::TrackedBody`'s drop
//!    marks the exchange finished (in-flight count, eager-parking signal).
//! 4. **A request without a body is end-of-stream.** `Incoming::is_end_stream()` is true
//!    for a request with neither `Content-Length` nor `Transfer-Encoding`, and false for one
//!    with a body; it is how a connection whose last request had a body is kept from
//!    parking.
//!
//! `Connection::without_shutdown` (and `poll_without_shutdown`) would make the held-back
//! shutdown unnecessary, but hyper offers them only on a connection without upgrades
//! (`UpgradeableConnection` has neither) and WebSocket needs upgrades; hence `keep_open`.
//! hyper's own `header_read_timeout` starts at a head's first byte, not at accept, which is
//! why the first request has its own deadline (`drive.rs`).

mod activity;
mod dispatch;
mod drive;
mod io;
mod park;

#[cfg(test)]
mod hyper_contract;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant as Deadline;

use crate::gateway::{ConnInfo, Gateway};
use activity::Activity;
use dispatch::{Http1End, Http1Start};
pub use io::OpenConnection;
pub use park::PARK_AFTER;

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
        let io = io::ConnIo::new(io, Bytes::new(), activity.keep_open.clone(), open);
        return dispatch::serve_h2(io, conn, &shared, &activity, head_deadline, shutdown).await;
    }
    let Some(first) = park::next_bytes(&mut io, head_deadline, &mut shutdown).await else {
        return park::close(io).await;
    };
    let Some(first) = dispatch::read_past_h2_preface(&mut io, first, head_deadline).await else {
        return;
    };
    if dispatch::is_h2_preface(&first) {
        let io = io::ConnIo::new(io, first, activity.keep_open.clone(), open);
        return dispatch::serve_h2(io, conn, &shared, &activity, head_deadline, shutdown).await;
    }
    let mut replay = first;
    let mut head_deadline = Some(head_deadline);
    let mut quiet_before = true;
    loop {
        let socket = io::ConnIo::new(io, replay, activity.keep_open.clone(), open.take());
        let served = dispatch::serve_http1(
            socket,
            conn.clone(),
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
            let _parked = park::Parked::start(&shared.gateway.metrics);
            let idle = activity.idle_for().unwrap_or_default();
            let deadline = Deadline::now() + shared.timeouts.idle.saturating_sub(idle);
            match park::next_bytes(&mut io, deadline, &mut shutdown).await {
                Some(bytes) => bytes,
                None => return park::close(io).await,
            }
        } else {
            unread
        };
        quiet_before = activity.idle_for().is_some_and(|idle| idle >= PARK_AFTER);
    }
}
