//! [`RxQueue`]: the receive handle of one queue pair.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use super::classify::classify_rx;
use super::engine::RxEngine;
use super::features::RingFeatures;
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
        }
    }

    /// Receives up to `max` packets, appending them to `out`; returns how many.
    /// Never blocks. The buffers of delivered packets are replaced at once, so the
    /// queue keeps the kernel supplied.
    pub fn rx_burst(&mut self, out: &mut Vec<Packet>, max: usize) -> Result<usize> {
        if self.gone {
            return Err(vanished(&self.name, self.ifindex));
        }
        let q = &self.claim.q;
        let start = out.len();
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

    /// The queue index.
    pub fn id(&self) -> u16 {
        self.claim.q.id
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
    /// application holds.
    pub fn posted(&self) -> usize {
        self.engine.held()
    }
}
