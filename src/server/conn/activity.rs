//! What the clocks and the parking decision know about one client connection: requests in
//! flight (counted until hyper drops the response body), when the last response was done,
//! whether a request head has arrived, whether the last request had a body, whether a
//! response switched protocols; and the flags shared with the socket wrapper and the
//! driver (`keep_open`, eager parking).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::sync::Notify;

use crate::http::Body;

/// What the clocks and the parking decision need to know about one client connection.
pub(super) struct Activity {
    started: Instant,
    /// Requests whose response has not been fully handed to hyper (its body included).
    in_flight: AtomicUsize,
    /// When the last response was done, in ms since `started`.
    last_ms: AtomicU64,
    /// A request head has arrived.
    pub served: AtomicBool,
    /// The last request had a body.
    pub last_had_body: AtomicBool,
    /// A response switched protocols (the socket is spliced, not parked).
    switched: AtomicBool,
    /// Shared with the socket wrapper: hyper's shutdown of the socket is held back.
    pub keep_open: Arc<AtomicBool>,
    /// Park as soon as a response is sent (signalled through `responded`).
    pub park_eagerly: AtomicBool,
    pub responded: Notify,
}

impl Activity {
    pub fn new() -> Self {
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
    pub fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        Some(self.started.elapsed().saturating_sub(last))
    }

    /// Whether hyper can let go of the socket with nothing of the stream left unread.
    pub fn parkable(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
            && !self.last_had_body.load(Ordering::Relaxed)
            && !self.switched.load(Ordering::Relaxed)
    }
}

/// Keeps a request counted as in flight until its response body is sent or dropped.
pub(super) struct InFlight(Arc<Activity>);

impl InFlight {
    pub fn start(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.served.store(true, Ordering::Relaxed);
        InFlight(activity.clone())
    }

    /// The response switches protocols: the connection is spliced, never parked.
    pub fn protocol_switched(&self) {
        self.0.switched.store(true, Ordering::Relaxed);
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

impl TrackedBody {
    pub(super) fn new(inner: Body, in_flight: InFlight) -> Self {
        TrackedBody {
            inner,
            _in_flight: in_flight,
        }
    }
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
    fn a_connection_is_parkable_only_between_clean_exchanges() {
        let activity = Arc::new(Activity::new());
        assert!(activity.parkable());
        let in_flight = InFlight::start(&activity);
        assert!(!activity.parkable(), "a response still being sent");
        drop(in_flight);
        assert!(activity.parkable());
        activity.last_had_body.store(true, Ordering::Relaxed);
        assert!(!activity.parkable(), "the last request body may be unread");
        activity.last_had_body.store(false, Ordering::Relaxed);
        InFlight::start(&activity).protocol_switched();
        assert!(!activity.parkable(), "a switched protocol is spliced");
    }
}
