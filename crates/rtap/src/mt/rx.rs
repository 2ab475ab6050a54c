//! [`MtRx`]: received packets, for any task on any thread.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::Ordering::*;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::shared::Shared;
use crate::error::Result;
use crate::pool::Packet;

/// The receive side of an [`MtQueue`](super::MtQueue): `Send + Sync`,
/// cloneable (tasks sharing it take packets in turn), a [`futures_core::Stream`]
/// of `Result<Packet>` that ends when the queue is stopped. The driver hands
/// packets over a burst at a time with one wakeup.
#[derive(Clone, Debug)]
pub struct MtRx {
    q: Arc<Shared>,
}

impl MtRx {
    pub(super) fn new(q: Arc<Shared>) -> MtRx {
        MtRx { q }
    }

    /// A received packet if one waits, without waiting.
    pub fn try_recv(&self) -> Option<Packet> {
        let p = self.q.chan.rx.pop()?;
        // The driver may have stopped reading because the queue was full.
        self.q.chan.took_rx();
        Some(p)
    }

    /// Polls for a packet: `Ready(Some(..))` with one, `Ready(None)` once the
    /// queue stopped normally (an error if it failed).
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Packet>>> {
        let mut registered = false;
        loop {
            if let Some(p) = self.try_recv() {
                return Poll::Ready(Some(Ok(p)));
            }
            if self.q.chan.closed.load(Acquire) {
                return Poll::Ready(self.end());
            }
            // Task-driven: read a burst here, unless another thread is; look
            // again if it brought something.
            if self.q.pump_rx(cx) {
                continue;
            }
            if registered {
                return Poll::Pending;
            }
            self.q.chan.rx_wait.register(cx);
            registered = true;
        }
    }

    fn end(&self) -> Option<Result<Packet>> {
        let failed = self
            .q
            .chan
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        failed.then(|| Err(self.q.chan.closed_error()))
    }

    /// Waits for the next packet; `None` once the queue stopped normally.
    pub async fn recv(&self) -> Option<Result<Packet>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Waits for at least one packet, then moves up to `max` into `out`;
    /// returns how many (0 once the queue stopped normally).
    pub async fn recv_burst(&self, out: &mut Vec<Packet>, max: usize) -> Result<usize> {
        if max == 0 {
            return Ok(0);
        }
        match self.recv().await {
            None => return Ok(0),
            Some(Err(e)) => return Err(e),
            Some(Ok(p)) => out.push(p),
        }
        // The rest of the burst, and one look for a driver waiting for room.
        let mut n = 1;
        while n < max {
            match self.q.chan.rx.pop() {
                Some(p) => {
                    out.push(p);
                    n += 1;
                }
                None => break,
            }
        }
        self.q.chan.took_rx();
        Ok(n)
    }
}

impl futures_core::Stream for MtRx {
    type Item = Result<Packet>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Packet>>> {
        self.poll_recv(cx)
    }
}
