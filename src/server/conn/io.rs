//! The client socket as hyper sees it: bytes already read by the connection task are
//! replayed first, a shutdown can be suppressed so hyper may let go of a keep-alive
//! connection without closing it (parking, see the `conn` module docs), and the connection's
//! `max_connections` slot lives exactly as long as the socket.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A client stream with replayed bytes in front and a shutdown that can be held back.
pub struct ConnIo<I> {
    inner: I,
    replay: Bytes,
    /// While set, `poll_shutdown` leaves the socket open: hyper ends an idle connection
    /// with a shutdown, and a parked connection must stay open for its next request.
    keep_open: Arc<AtomicBool>,
    /// Held as long as the socket: a spliced upgrade keeps its `max_connections` slot.
    open: Option<OpenConnection>,
}

impl<I> ConnIo<I> {
    /// `replay` is read before anything from `inner`.
    pub fn new(
        inner: I,
        replay: Bytes,
        keep_open: Arc<AtomicBool>,
        open: Option<OpenConnection>,
    ) -> Self {
        ConnIo {
            inner,
            replay,
            keep_open,
            open,
        }
    }

    /// The socket back, with any replayed bytes nobody read, and its place.
    pub fn into_parts(self) -> (I, Bytes, Option<OpenConnection>) {
        (self.inner, self.replay, self.open)
    }
}

/// A client connection's place: its `max_connections` permit and its count in
/// `open_connections`. It travels with the socket (parked, served, or spliced after an
/// upgrade) and is given back when the socket is dropped.
pub struct OpenConnection {
    _permit: tokio::sync::OwnedSemaphorePermit,
    metrics: Arc<crate::telemetry::metrics::Metrics>,
}

impl OpenConnection {
    pub fn new(
        permit: tokio::sync::OwnedSemaphorePermit,
        metrics: Arc<crate::telemetry::metrics::Metrics>,
    ) -> Self {
        metrics.connection_opened();
        OpenConnection {
            _permit: permit,
            metrics,
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.metrics.connection_closed();
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for ConnIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.replay.is_empty() {
            let n = self.replay.len().min(buf.remaining());
            buf.put_slice(&self.replay[..n]);
            self.replay.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for ConnIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.keep_open.load(Ordering::Acquire) {
            return Pin::new(&mut self.inner).poll_flush(cx);
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn replayed_bytes_come_first_then_the_socket() {
        let (client, mut server) = tokio::io::duplex(64);
        let keep_open = Arc::new(AtomicBool::new(false));
        let mut io = ConnIo::new(client, Bytes::from_static(b"GET "), keep_open, None);
        server.write_all(b"/ HTTP/1.1\r\n").await.expect("write");
        let mut got = vec![0; 16];
        let mut filled = 0;
        while filled < 16 {
            filled += io.read(&mut got[filled..]).await.expect("read");
        }
        assert_eq!(&got, b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn shutdown_is_held_back_only_while_keep_open_is_set() {
        let (client, mut server) = tokio::io::duplex(64);
        let keep_open = Arc::new(AtomicBool::new(true));
        let mut io = ConnIo::new(client, Bytes::new(), keep_open.clone(), None);
        io.shutdown().await.expect("shutdown");
        io.write_all(b"still open")
            .await
            .expect("write after a held-back shutdown");
        let mut got = [0; 10];
        server.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"still open");
        keep_open.store(false, Ordering::Release);
        io.shutdown().await.expect("shutdown");
        assert_eq!(server.read(&mut got).await.expect("eof"), 0);
    }
}
