//! [`MtTx`]: packets to send, from any task on any thread.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::Ordering::*;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::shared::Shared;
use crate::error::Result;
use crate::pool::Packet;

/// The send side of an [`MtQueue`](super::MtQueue): `Send + Sync`,
/// cloneable (any number of tasks send through it), a
/// [`futures_sink::Sink`] of packets. A full queue makes senders wait
/// (backpressure), never drops; the driver sends a burst at a time.
#[derive(Debug)]
pub struct MtTx {
    q: Arc<Shared>,
    /// A packet the `Sink` accepted that did not fit yet.
    held: Option<Packet>,
}

impl Clone for MtTx {
    fn clone(&self) -> Self {
        MtTx::new(self.q.clone())
    }
}

impl MtTx {
    pub(super) fn new(q: Arc<Shared>) -> MtTx {
        MtTx { q, held: None }
    }

    /// Hands `p` to the driver if there is room, else gives it back (also
    /// once the queue stopped: then [`send`](Self::send) says why).
    pub fn try_send(&self, p: Packet) -> std::result::Result<(), Packet> {
        if !self.q.chan.send_begin() {
            return Err(p);
        }
        let r = self.q.chan.tx.push(p);
        self.q.chan.send_end();
        r?;
        self.q.ring();
        Ok(())
    }

    /// Waits for room, then hands `p` to the driver. An error (and `p`
    /// dropped, its buffers back in its pool) once the queue stopped.
    pub async fn send(&self, p: Packet) -> Result<()> {
        let mut slot = Some(p);
        poll_fn(|cx| {
            let p = slot.take().expect("polled after completion");
            match self.put_or_keep(cx, p) {
                Ok(None) => Poll::Ready(Ok(())),
                Ok(Some(back)) => {
                    slot = Some(back);
                    Poll::Pending
                }
                Err(e) => Poll::Ready(Err(e)),
            }
        })
        .await
    }

    /// Hands over every packet of `pkts` in order, waiting for room as
    /// needed; `pkts` is empty on success. Dropping the future keeps the
    /// packets not handed over yet in `pkts`.
    pub async fn send_burst(&self, pkts: &mut Vec<Packet>) -> Result<()> {
        poll_fn(|cx| {
            for first in [true, false] {
                if !self.push_some(pkts)? {
                    return Poll::Ready(Ok(()));
                }
                if first {
                    // The driver may be asleep with a full queue: wake it.
                    self.q.ring();
                    self.q.chan.tx_wait.register(cx);
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Pushes packets from the front of `pkts` while there is room, as one
    /// sender (one announcement, one doorbell); `true` if some are left.
    /// `pkts` keeps its order whatever happens (reversed to pop from the back,
    /// reversed again before returning).
    fn push_some(&self, pkts: &mut Vec<Packet>) -> Result<bool> {
        if pkts.is_empty() {
            return Ok(false);
        }
        if !self.q.chan.send_begin() {
            return Err(self.q.chan.closed_error());
        }
        let before = pkts.len();
        pkts.reverse();
        while let Some(p) = pkts.pop() {
            if let Err(back) = self.q.chan.tx.push(p) {
                pkts.push(back);
                break;
            }
        }
        pkts.reverse();
        self.q.chan.send_end();
        if pkts.len() < before {
            self.q.ring();
        }
        Ok(!pkts.is_empty())
    }

    /// Puts `p` in the queue, or registers the task and gives it back while
    /// the queue is full.
    fn put_or_keep(&self, cx: &mut Context<'_>, p: Packet) -> Result<Option<Packet>> {
        let mut p = p;
        for first in [true, false] {
            if !self.q.chan.send_begin() {
                return Err(self.q.chan.closed_error());
            }
            let r = self.q.chan.tx.push(p);
            self.q.chan.send_end();
            match r {
                Ok(()) => {
                    self.q.ring();
                    return Ok(None);
                }
                Err(back) => p = back,
            }
            if first {
                // The driver may be asleep with a full queue: wake it.
                self.q.ring();
                self.q.chan.tx_wait.register(cx);
            }
        }
        Ok(Some(p))
    }

    /// Waits until the driver has taken every packet handed over so far.
    pub async fn flush(&self) -> Result<()> {
        poll_fn(|cx| self.poll_drained(cx)).await
    }

    fn poll_drained(&self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        for first in [true, false] {
            if self.q.drained() {
                return Poll::Ready(Ok(()));
            }
            if self.q.chan.closed.load(Acquire) {
                return Poll::Ready(Err(self.q.chan.closed_error()));
            }
            if first {
                self.q.ring();
                self.q.chan.tx_wait.register(cx);
            }
        }
        Poll::Pending
    }
}

impl futures_sink::Sink<Packet> for MtTx {
    type Error = crate::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        match this.held.take() {
            None => Poll::Ready(Ok(())),
            Some(p) => match this.put_or_keep(cx, p) {
                Ok(None) => Poll::Ready(Ok(())),
                Ok(Some(back)) => {
                    this.held = Some(back);
                    Poll::Pending
                }
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }

    fn start_send(self: Pin<&mut Self>, p: Packet) -> Result<()> {
        let this = self.get_mut();
        if !this.q.chan.send_begin() {
            return Err(this.q.chan.closed_error());
        }
        let r = this.q.chan.tx.push(p);
        this.q.chan.send_end();
        match r {
            Ok(()) => this.q.ring(),
            // Full since poll_ready: held until the next poll_ready or flush.
            Err(back) => this.held = Some(back),
        }
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        match self.as_mut().poll_ready(cx) {
            Poll::Ready(Ok(())) => self.poll_drained(cx),
            other => other,
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.poll_flush(cx)
    }
}
