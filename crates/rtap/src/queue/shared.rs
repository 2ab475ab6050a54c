//! State of one queue pair shared by its port and its queue handles: the queue
//! fd, the counters, and who holds each direction.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::counters::{Block, CounterMem, QueueBlock};
use super::features::Engine;
use crate::error::{Error, Result};
use crate::wire::layout::Link;

/// One queue pair: its fd (both directions use it) and counters. The port keeps
/// one per queue; each open queue handle holds another reference.
pub(crate) struct QueueShared {
    pub id: u16,
    pub fd: OwnedFd,
    /// Counters (`c.rx`, `c.tx`, `c.rx_x`, `c.tx_x`) of the handles of this
    /// process. In a port attached to another process's, the block that
    /// process lent with the queue. Read the queue's totals with
    /// [`totals`](Self::totals).
    pub c: Block,
    /// The block lent with the queue to another process, while it holds it
    /// ([`Lent`]).
    lent: Mutex<Option<Block>>,
    /// The engine of the last tx handle opened on the queue, when it is not
    /// the port's (a kick that fell back to `send()`).
    tx_engine: Mutex<Option<Engine>>,
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
            lent: Mutex::new(None),
            tx_engine: Mutex::new(None),
            rx_taken: AtomicBool::new(false),
            tx_taken: AtomicBool::new(false),
            release,
            extra,
        }
    }

    /// The queue's counters whoever runs it: this process's block, plus the
    /// block of the process it is lent to.
    pub(crate) fn totals(&self) -> Totals<'_> {
        match &*self.lent.lock().unwrap_or_else(|e| e.into_inner()) {
            None => Totals::Home(&self.c),
            Some(b) => Totals::Summed(QueueBlock::sum(&self.c, b)),
        }
    }

    /// Records the engine a new tx handle runs (`None`: the port's).
    pub(crate) fn set_tx_engine(&self, e: Option<Engine>) {
        *self.tx_engine.lock().unwrap_or_else(|e| e.into_inner()) = e;
    }

    /// The engine the last tx handle opened on the queue runs, if not the port's.
    pub(crate) fn tx_engine(&self) -> Option<Engine> {
        *self.tx_engine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the block of whoever runs the queue now: the lent one while
    /// another process holds the queue, else this process's (for counts that
    /// any process adds to, such as kernel statistics that clear on read).
    pub(crate) fn with_current<T>(&self, f: impl FnOnce(&QueueBlock) -> T) -> T {
        match &*self.lent.lock().unwrap_or_else(|e| e.into_inner()) {
            None => f(&self.c),
            Some(b) => f(b),
        }
    }

    /// Claims both directions for another process and makes the counter
    /// block lent with the queue: a fresh one, so what an earlier holder
    /// still maps is read by no one ([`Lent`]).
    pub(crate) fn lend(self: &Arc<Self>) -> std::result::Result<Lent, LendError> {
        let (rx, tx) = match (self.claim(Dir::Rx), self.claim(Dir::Tx)) {
            (Ok(a), Ok(b)) => (a, b),
            _ => return Err(LendError::Busy),
        };
        let mem = CounterMem::new().map_err(LendError::Memory)?;
        let block = Block::new(&Arc::new(mem));
        self.c.positions_into(&block);
        *self.lent.lock().unwrap_or_else(|e| e.into_inner()) = Some(block.clone());
        Ok(Lent {
            block,
            _claims: [rx, tx],
        })
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

/// A queue's counters for reading: its block, or its block and the lent one
/// added up.
pub(crate) enum Totals<'a> {
    Home(&'a QueueBlock),
    Summed(Box<QueueBlock>),
}

impl std::ops::Deref for Totals<'_> {
    type Target = QueueBlock;

    fn deref(&self) -> &QueueBlock {
        match self {
            Totals::Home(b) => b,
            Totals::Summed(b) => b,
        }
    }
}

/// Why a queue could not be lent.
#[derive(Debug)]
pub(crate) enum LendError {
    /// A handle or another process holds a direction.
    Busy,
    /// No memfd for its counter block.
    Memory(std::io::Error),
}

/// A queue held by another process: both directions claimed, and the counter
/// block lent with it. On drop (the holder gave the queue back) the block's
/// counts are added into the queue's own block and its positions taken over,
/// then the claims end; the holder's mapping of the lent block stays (the
/// kernel cannot take it back), but no one reads it any more.
pub(crate) struct Lent {
    block: Block,
    _claims: [Claim; 2],
}

impl Lent {
    /// The block lent with the queue.
    pub(crate) fn block(&self) -> &Block {
        &self.block
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        let q = &self._claims[0].q;
        let mut lent = q.lent.lock().unwrap_or_else(|e| e.into_inner());
        q.c.fold(&self.block);
        *lent = None;
    }
}

impl Drop for QueueShared {
    fn drop(&mut self) {
        (self.release)(self.fd.as_fd());
    }
}
