//! When a connection's bytes have left the server.
//!
//! hyper holds what a response writes in a buffer of its own, and flushes the
//! transport only once that buffer is empty. A streamed answer that fails after
//! its first rows writes its closing part and then aborts the transfer — an
//! error from the body, on which hyper drops the connection with whatever it
//! still holds. [`Flushes`] lets the body wait until its closing part was handed
//! to the socket before it aborts, so that a client reading slowly still
//! receives the error it is told about.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// How many times a connection's transport was flushed; a request on the
/// connection finds it among its extensions.
#[derive(Debug, Clone, Default)]
pub(crate) struct Flushes(Arc<Counter>);

#[derive(Debug, Default)]
struct Counter {
    count: AtomicU64,
    notify: Notify,
}

impl Flushes {
    /// The flushes so far.
    pub(crate) fn count(&self) -> u64 {
        self.0.count.load(Ordering::Acquire)
    }

    /// Resolves at the first flush after `seen` flushes: what the server had
    /// written before then has reached the socket. Several responses of one
    /// (HTTP/2) connection may wait at once.
    pub(crate) async fn after(&self, seen: u64) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count() > seen {
                return;
            }
            notified.await;
        }
    }

    fn flushed(&self) {
        self.0.count.fetch_add(1, Ordering::AcqRel);
        self.0.notify.notify_waiters();
    }
}

/// A transport that counts its flushes in [`Flushes`].
#[derive(Debug)]
pub(crate) struct Counted<T> {
    inner: T,
    flushes: Flushes,
}

impl<T> Counted<T> {
    pub(crate) fn new(inner: T, flushes: Flushes) -> Self {
        Self { inner, flushes }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
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
        let flushed = Pin::new(&mut self.inner).poll_flush(cx);
        if matches!(flushed, Poll::Ready(Ok(()))) {
            self.flushes.flushed();
        }
        flushed
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_waiter_wakes_at_the_next_flush_and_not_before() {
        let flushes = Flushes::default();
        let (client, _server) = tokio::io::duplex(64);
        let mut counted = Counted::new(client, flushes.clone());
        let seen = flushes.count();
        let waiting = tokio::spawn({
            let flushes = flushes.clone();
            async move { flushes.after(seen).await }
        });
        counted.write_all(b"bytes").await.expect("write");
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "a write is not a flush");
        counted.flush().await.expect("flush");
        waiting.await.expect("woken by the flush");
        assert_eq!(flushes.count(), seen + 1);
        // A flush that already happened counts.
        flushes.after(seen).await;
    }
}
