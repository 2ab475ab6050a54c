//! State of one queue pair shared by its port and its queue handles: the queue
//! fd, the counters, and who holds each direction.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::counters::Block;
use crate::error::{Error, Result};
use crate::wire::layout::Link;

/// One queue pair: its fd (both directions use it) and counters. The port keeps
/// one per queue; each open queue handle holds another reference.
pub(crate) struct QueueShared {
    pub id: u16,
    pub fd: OwnedFd,
    /// Counters (`c.rx`, `c.tx`, `c.rx_x`, `c.tx_x`), in the port's shared
    /// counter memory.
    pub c: Block,
    /// What the queue's frames start with (Ethernet, or IP on a TUN).
    pub link: Link,
    rx_taken: AtomicBool,
    tx_taken: AtomicBool,
    /// Runs on the fd just before it is closed (a TAP queue detaches itself, so
    /// the kernel stops steering frames to it even while another process still
    /// holds a copy of the fd).
    release: fn(BorrowedFd<'_>),
    /// The device's own state of this queue (an AF_PACKET queue's ring mapping
    /// and counters), handed to its engines.
    pub extra: Option<QueueExtra>,
}

/// A device's per-queue state, shared by the queue's engines and the device.
pub(crate) type QueueExtra = Arc<dyn std::any::Any + Send + Sync>;

/// Which direction of a queue pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Rx,
    Tx,
}

impl Dir {
    fn name(self) -> &'static str {
        match self {
            Dir::Rx => "rx",
            Dir::Tx => "tx",
        }
    }
}

/// A direction of a queue pair held by one handle; given back on drop.
pub(crate) struct Claim {
    pub q: Arc<QueueShared>,
    dir: Dir,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.q.taken(self.dir).store(false, Ordering::Release);
    }
}

impl QueueShared {
    pub(crate) fn new(
        id: u16,
        fd: OwnedFd,
        release: fn(BorrowedFd<'_>),
        extra: Option<QueueExtra>,
        c: Block,
        link: Link,
    ) -> QueueShared {
        QueueShared {
            id,
            fd,
            c,
            link,
            rx_taken: AtomicBool::new(false),
            tx_taken: AtomicBool::new(false),
            release,
            extra,
        }
    }

    fn taken(&self, dir: Dir) -> &AtomicBool {
        match dir {
            Dir::Rx => &self.rx_taken,
            Dir::Tx => &self.tx_taken,
        }
    }

    /// Takes one direction for a new handle, or fails if a handle holds it.
    pub(crate) fn claim(self: &Arc<Self>, dir: Dir) -> Result<Claim> {
        if self.taken(dir).swap(true, Ordering::AcqRel) {
            return Err(Error::QueueBusy {
                dir: dir.name(),
                queue: self.id,
            });
        }
        Ok(Claim {
            q: self.clone(),
            dir,
        })
    }

    /// Directions currently held by handles (0, 1 or 2).
    pub(crate) fn live(&self) -> usize {
        self.rx_taken.load(Ordering::Acquire) as usize
            + self.tx_taken.load(Ordering::Acquire) as usize
    }
}

impl Drop for QueueShared {
    fn drop(&mut self) {
        (self.release)(self.fd.as_fd());
    }
}
