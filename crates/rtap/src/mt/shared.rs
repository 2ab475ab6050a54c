//! What a queue pair's handles hold: the handoff ([`Chan`]) and, when the
//! tasks drive the queue ([`MtDrive::Tasks`](super::MtDrive::Tasks)), the
//! queue pair they drive. The handoff knows nothing of who drives it; this
//! is where a handle's "get this moving" turns into waking the driver thread
//! or doing the I/O on the task's own thread.

use std::task::Context;

use super::chan::Chan;
use super::inline::Inline;

/// A queue pair's state shared by its handles and its driver.
#[derive(Debug)]
pub(crate) struct Shared {
    pub chan: Chan,
    /// With [`MtDrive::Tasks`](super::MtDrive::Tasks): the queue pair the
    /// tasks drive themselves (no driver thread).
    pub inline: Option<Inline>,
}

impl Shared {
    /// Gets the packets handed over on their way (after the caller published
    /// them): wakes the driver if it sleeps, or, when the tasks drive the
    /// queue, sends them on this thread unless another thread is sending.
    pub(crate) fn ring(&self) {
        match &self.inline {
            Some(i) => i.pump_tx(&self.chan),
            None => self.chan.wake_driver(),
        }
    }

    /// For a task that found nothing received: when the tasks drive the
    /// queue, reads a burst on this thread. `true`: look at the received
    /// queue again.
    pub(crate) fn pump_rx(&self, cx: &Context<'_>) -> bool {
        match &self.inline {
            Some(i) => i.pump_rx(&self.chan, cx),
            None => false,
        }
    }

    /// Packets handed over to send that the kernel has not taken yet.
    pub(crate) fn tx_queued(&self) -> usize {
        self.chan.tx.len() + self.inline.as_ref().map_or(0, Inline::pending)
    }

    /// Whether everything handed over to send has gone to the kernel (or to
    /// the driver, which sends it before it stops).
    pub(crate) fn drained(&self) -> bool {
        match &self.inline {
            Some(i) => i.drained(&self.chan),
            None => self.chan.tx.is_empty(),
        }
    }
}
