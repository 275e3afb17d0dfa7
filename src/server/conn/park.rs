//! A parked HTTP/1 connection: hyper has let go of it (see `super`'s docs for when and the
//! hyper behaviour that makes it safe), and the task holds only the socket until its next
//! bytes arrive, `idle_timeout` passes, or shutdown closes it; the
//! `gatehouse_parked_connections` gauge counts exactly the connections in that wait.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant as Deadline;

use crate::telemetry::metrics::Metrics;

/// How long a busy HTTP/1 connection with nothing in flight keeps hyper's buffers before it
/// is parked, and how long a connection must have been quiet for its next response to park
/// it at once.
pub const PARK_AFTER: Duration = Duration::from_secs(1);

/// Bytes read at once by a parked connection; hyper reads the rest of the request.
const PARKED_READ: usize = 512;

/// One connection counted in `gatehouse_parked_connections` for as long as this lives:
/// created when the connection parks, dropped when it resumes or closes (the task ending
/// early, at runtime shutdown, drops it too), so the gauge cannot drift.
pub(super) struct Parked<'a>(&'a Metrics);

impl<'a> Parked<'a> {
    pub fn start(metrics: &'a Metrics) -> Self {
        metrics.connection_parked();
        Parked(metrics)
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.connection_unparked();
    }
}

/// Waits for a parked connection's next bytes: `None` at the deadline, on EOF or error,
/// or at shutdown.
pub(super) async fn next_bytes<I: AsyncRead + Unpin>(
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

/// Closes a parked connection: FIN (or TLS close_notify), bounded in time.
pub(super) async fn close<I: AsyncWrite + Unpin>(mut io: I) {
    let _ = tokio::time::timeout(Duration::from_secs(1), io.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parked_gauge_counts_exactly_the_live_guards() {
        let metrics = Metrics::new();
        let parked = |metrics: &Metrics| metrics.parked_connections();
        let first = Parked::start(&metrics);
        let second = Parked::start(&metrics);
        assert_eq!(parked(&metrics), 2);
        drop(first);
        assert_eq!(parked(&metrics), 1);
        drop(second);
        assert_eq!(parked(&metrics), 0);
    }

    #[tokio::test]
    async fn a_parked_connection_gives_up_at_its_deadline_eof_or_shutdown() {
        let (sender, mut shutdown) = watch::channel(false);
        let (client, mut server) = tokio::io::duplex(64);
        let soon = Deadline::now() + Duration::from_millis(20);
        assert_eq!(next_bytes(&mut server, soon, &mut shutdown).await, None);
        let later = Deadline::now() + Duration::from_secs(30);
        sender.send_replace(true);
        assert_eq!(next_bytes(&mut server, later, &mut shutdown).await, None);
        sender.send_replace(false);
        drop(client);
        assert_eq!(next_bytes(&mut server, later, &mut shutdown).await, None);
    }
}
