//! [`RxQueue`]: the receive handle of one queue pair.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use super::classify::classify_rx;
use super::engine::RxEngine;
use super::features::RingFeatures;
use super::frame::Frame;
use super::shared::Claim;
use crate::error::{Error, Result};
use crate::pool::Packet;
use crate::stats::QueueStats;
use crate::sys::fd as sysfd;
use crate::xstats::RX_N;

/// Receive side of one queue pair. Not `Send`: it lives on the thread that opened it.
pub struct RxQueue {
    // Dropped before the claim: the engine gives its buffers back first, so once
    // the port sees the queue released, every buffer is home.
    engine: Box<dyn RxEngine>,
    /// Packets received for an in-place receive on an engine without one and
    /// not taken yet: lent again first, handed out first by `rx_burst`
    /// (dropped before the claim too: back in the pool when the queue is
    /// released).
    spill: Vec<Packet>,
    claim: Claim,
    name: String,
    ifindex: u32,
    /// Consecutive empty bursts.
    idle: u32,
    /// The interface was found gone by the idle check.
    gone: bool,
    /// Rx interrupt eventfd, while interrupts are enabled (eventfd engines).
    irq: Option<OwnedFd>,
}

/// Most frames one in-place receive lends.
pub const INPLACE_MAX: usize = 64;

impl std::fmt::Debug for RxQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxQueue")
            .field("id", &self.claim.q.id)
            .field("interface", &self.name)
            .field("ring_features", &self.engine.ring_features())
            .field("posted", &self.engine.held())
            .field("interrupts", &self.irq.is_some())
            .finish()
    }
}

/// Empty bursts between two checks of the queue fd for a deleted interface.
const IDLE_CHECK: u32 = 256;

pub(super) fn vanished(name: &str, ifindex: u32) -> Error {
    Error::DeviceVanished {
        name: name.to_string(),
        ifindex,
    }
}

impl RxQueue {
    pub(crate) fn new(claim: Claim, engine: Box<dyn RxEngine>, name: &str, ifindex: u32) -> Self {
        RxQueue {
            engine,
            claim,
            name: name.to_string(),
            ifindex,
            idle: 0,
            gone: false,
            irq: None,
            spill: Vec::new(),
        }
    }

    /// Receives up to `max` packets, appending them to `out`; returns how many.
    /// Never blocks. The buffers of delivered packets are replaced at once, so the
    /// queue keeps the kernel supplied.
    pub fn rx_burst(&mut self, out: &mut Vec<Packet>, max: usize) -> Result<usize> {
        if self.gone {
            return Err(vanished(&self.name, self.ifindex));
        }
        let start = out.len();
        if !self.spill.is_empty() {
            // Received for an in-place receive and not taken: they go first.
            let k = self.spill.len().min(max);
            out.extend(self.spill.drain(..k));
            return Ok(k);
        }
        let q = &self.claim.q;
        match self.engine.rx_burst(q.fd.as_fd(), out, max, &q.c.rx) {
            Ok(0) => {
                // An io_uring read learns of a deleted interface only if it is woken
                // after the kernel detached the queue; the kernel wakes readers just
                // before, so a read can find nothing, wait again and never complete.
                // While idle, ask the fd itself now and then.
                self.idle = self.idle.wrapping_add(1);
                if self.idle % IDLE_CHECK == 0 && self.engine.gone(q.fd.as_fd()) {
                    self.gone = true;
                    return Err(vanished(&self.name, self.ifindex));
                }
                Ok(0)
            }
            Ok(n) => {
                self.idle = 0;
                let mut local = [0u64; RX_N];
                classify_rx(&out[start..], &mut local, q.link);
                q.c.rx_x.publish(&local);
                Ok(n)
            }
            Err(_) => Err(vanished(&self.name, self.ifindex)),
        }
    }

    /// Receives in place: lends up to `max` (at most [`INPLACE_MAX`]) received
    /// frames to `f` where they lie, and returns what `f` returns: how many of
    /// them, from the front, it took. The others stay queued for the next
    /// call (or `rx_burst`), in order. Never blocks; `f` is not called when
    /// nothing is there.
    ///
    /// On an AF_PACKET port the frames are the kernel's ring slots (TPACKET v2)
    /// or blocks (v3): no copy into pool buffers, and each slot (each block
    /// once all its frames are taken) goes back to the kernel when `f` returns, so a frame cannot be kept (copy what must outlive the
    /// call, or send it with [`TxQueue::tx_frames`](super::TxQueue::tx_frames),
    /// which copies it once, into a packet port's tx ring). Frames `f` leaves
    /// hold their slots until they are taken: a reader that never takes them
    /// stops the ring (the kernel then drops and counts what arrives, as for
    /// a reader that does not read). Other devices lend the packets they
    /// receive (into the pool given when the queue was opened;
    /// [`in_place`](Self::in_place) says which); [`wait`](Self::wait) knows
    /// of those left, [`interrupt_fd`](Self::interrupt_fd) does not.
    ///
    /// If `f` panics, nothing it was lent is counted as taken: the frames are
    /// lent again by the next call (those `f` had already sent go twice).
    pub fn rx_inplace(
        &mut self,
        max: usize,
        mut f: impl FnMut(&[Frame<'_>]) -> usize,
    ) -> Result<usize> {
        if self.gone {
            return Err(vanished(&self.name, self.ifindex));
        }
        let max = max.min(INPLACE_MAX);
        let q = &self.claim.q;
        let link = q.link;
        let mut local = [0u64; RX_N];
        let mut took = |frames: &[Frame<'_>]| {
            let k = f(frames).min(frames.len());
            classify_rx(&frames[..k], &mut local, link);
            k
        };
        match self
            .engine
            .rx_inplace(q.fd.as_fd(), max, &q.c.rx, &mut took)
        {
            Ok(Some(k)) => {
                q.c.rx_x.publish(&local);
                self.idle_or_gone(k).map(|()| k)
            }
            Ok(None) => self.rx_inplace_spilled(max, f),
            Err(_) => Err(vanished(&self.name, self.ifindex)),
        }
    }

    /// True if [`rx_inplace`](Self::rx_inplace) lends the kernel's memory
    /// (no copy), false if it lends packets received into the pool.
    pub fn in_place(&self) -> bool {
        self.engine.in_place()
    }

    /// The in-place receive of an engine without one: packets received into
    /// the pool (counted and classified as `rx_burst` does), lent as frames.
    fn rx_inplace_spilled(
        &mut self,
        max: usize,
        mut f: impl FnMut(&[Frame<'_>]) -> usize,
    ) -> Result<usize> {
        if self.spill.len() < max {
            let mut got = std::mem::take(&mut self.spill);
            let want = max - got.len();
            let r = self.rx_burst(&mut got, want);
            self.spill = got;
            r?;
        }
        let n = self.spill.len().min(max);
        if n == 0 {
            return Ok(0);
        }
        let mut frames = [Frame::EMPTY; INPLACE_MAX];
        for (fr, p) in frames.iter_mut().zip(&self.spill[..n]) {
            *fr = Frame::packet(p);
        }
        let k = f(&frames[..n]).min(n);
        self.spill.drain(..k);
        Ok(k)
    }

    /// After a burst of `n`: an idle queue asks its fd now and then whether
    /// the interface is gone (see `rx_burst`).
    fn idle_or_gone(&mut self, n: usize) -> Result<()> {
        if n > 0 {
            self.idle = 0;
            return Ok(());
        }
        self.idle = self.idle.wrapping_add(1);
        let q = &self.claim.q;
        if self.idle % IDLE_CHECK == 0 && self.engine.gone(q.fd.as_fd()) {
            self.gone = true;
            return Err(vanished(&self.name, self.ifindex));
        }
        Ok(())
    }

    /// The queue index.
    pub fn id(&self) -> u16 {
        self.claim.q.id
    }

    /// The last burst emptied the kernel's queue (a read said `EAGAIN`):
    /// readiness seen before it is stale. False when the engine cannot tell.
    #[cfg(all(feature = "mt", feature = "tokio"))]
    pub(crate) fn drained(&self) -> bool {
        self.spill.is_empty() && self.engine.drained()
    }

    /// Counters of this queue (since the port was opened; resets apply to
    /// [`Port::stats`](crate::Port::stats) only).
    pub fn stats(&self) -> QueueStats {
        self.claim.q.c.rx.snapshot()
    }

    /// The io_uring options in effect, if this queue uses io_uring.
    pub fn ring_features(&self) -> Option<&RingFeatures> {
        self.engine.ring_features()
    }

    /// Enables rx interrupts: an eventfd registered with the queue's io_uring is
    /// signalled whenever completions arrive, so the application can sleep in
    /// [`wait`](Self::wait) or add [`interrupt_fd`](Self::interrupt_fd) to its own
    /// epoll set instead of busy polling. With the read/write backend the queue fd
    /// itself is the readiness source. Link events work alongside.
    pub fn enable_interrupt(&mut self) -> Result<()> {
        if self.irq.is_some() || !self.engine.signals_eventfd() {
            return Ok(());
        }
        let fd = sysfd::eventfd().map_err(|e| Error::sys("eventfd", e))?;
        self.engine
            .set_eventfd(Some(fd.as_raw_fd()))
            .map_err(|e| Error::sys("io_uring register eventfd", e))?;
        self.irq = Some(fd);
        Ok(())
    }

    /// Disables rx interrupts (unregisters and closes the eventfd).
    pub fn disable_interrupt(&mut self) -> Result<()> {
        if self.irq.take().is_none() {
            return Ok(());
        }
        self.engine
            .set_eventfd(None)
            .map_err(|e| Error::sys("io_uring unregister eventfd", e))
    }

    /// The fd to watch for readability while interrupts are enabled: the eventfd
    /// (io_uring) or the queue fd (read/write). Reading it is the caller's business
    /// only for the eventfd; [`wait`](Self::wait) clears it.
    pub fn interrupt_fd(&self) -> Option<BorrowedFd<'_>> {
        if !self.engine.signals_eventfd() {
            let own = self.engine.ready_fd();
            return Some(own.unwrap_or_else(|| self.claim.q.fd.as_fd()));
        }
        self.irq.as_ref().map(|fd| fd.as_fd())
    }

    /// Asks the queue's fd whether its interface is gone (an idle io_uring
    /// read may never learn of it): an error if so. For a caller that sleeps
    /// on [`interrupt_fd`](Self::interrupt_fd) itself and found nothing.
    pub fn check_vanished(&mut self) -> Result<()> {
        if !self.gone && self.engine.gone(self.claim.q.fd.as_fd()) {
            self.gone = true;
        }
        if self.gone {
            return Err(vanished(&self.name, self.ifindex));
        }
        Ok(())
    }

    /// Clears the interrupt eventfd after a wakeup, for an application that
    /// watches [`interrupt_fd`](Self::interrupt_fd) itself (nothing to do for
    /// a queue whose readiness is its own fd). [`wait`](Self::wait) does it.
    pub fn clear_interrupt(&self) {
        if let Some(irq) = &self.irq {
            sysfd::eventfd_clear(irq.as_fd());
        }
    }

    /// Sleeps until packets may be ready or `timeout` passes; returns true if
    /// they may be (then call [`rx_burst`](Self::rx_burst)). Works whether or not
    /// interrupts are enabled; a deleted interface ends the wait with an error.
    pub fn wait(&mut self, timeout: Duration) -> Result<bool> {
        if self.gone {
            return Err(vanished(&self.name, self.ifindex));
        }
        if !self.spill.is_empty() {
            // Received, not taken yet (the fd says nothing of these).
            return Ok(true);
        }
        let fd = self.claim.q.fd.as_fd();
        let r = self.engine.wait(fd, timeout);
        if let Some(irq) = &self.irq {
            sysfd::eventfd_clear(irq.as_fd());
        }
        let ready = r.map_err(|e| Error::sys("rx wait", e))?;
        if !ready && self.engine.gone(fd) {
            self.gone = true;
            return Err(vanished(&self.name, self.ifindex));
        }
        Ok(ready)
    }

    /// Pool buffers the queue holds for the kernel to fill (io_uring: the posted
    /// reads' or the buffer ring's; 0 for read/write). While the queue is open,
    /// `pool.available() + posted()` is the pool's capacity minus the packets the
    /// application holds. Packets an in-place receive received and has not
    /// lent out yet count here too (on engines that lend packets).
    pub fn posted(&self) -> usize {
        self.engine.held() + self.spill.iter().map(|p| p.nb_segs()).sum::<usize>()
    }
}
