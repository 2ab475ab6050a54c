//! Async rx/tx queues for tokio (feature `tokio`).
//!
//! They sleep on the queues' interrupt fds through tokio's reactor: no busy loop
//! and no extra thread. Queues are not `Send`, so run them on a current-thread
//! runtime or a `LocalSet`, one per worker thread; for tokio's multi-thread
//! runtime, see `rtap::mt` (feature `mt`).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::error::{Error, Result};
use crate::pool::Packet;
use crate::queue::{RxQueue, TxQueue};
use crate::sys::fd as sysfd;

/// A duplicate of a queue's interrupt fd, owned by the reactor registration: the
/// same open file (so the same readiness), closed only after deregistration.
#[derive(Debug)]
pub(crate) struct Watch(OwnedFd);

impl AsRawFd for Watch {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

fn watch(fd: BorrowedFd<'_>) -> Result<AsyncFd<Watch>> {
    watch_for(fd, Interest::READABLE)
}

/// Registers a duplicate of `fd` with the current tokio runtime's reactor for
/// `interest`; [`Error::NoAsyncRuntime`] outside a runtime.
pub(crate) fn watch_for(fd: BorrowedFd<'_>, interest: Interest) -> Result<AsyncFd<Watch>> {
    // Registering outside a runtime would panic inside tokio: refuse instead.
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(Error::NoAsyncRuntime);
    }
    let dup = fd
        .try_clone_to_owned()
        .map_err(|e| Error::sys("dup interrupt fd", e))?;
    // SAFETY: the fd is owned by the Watch, valid, and stays open until the AsyncFd
    // (which deregisters it first) is dropped.
    unsafe { AsyncFd::register_with_interest(Watch(dup), interest) }
        .map_err(|e| Error::sys("tokio register fd", e.into()))
}

fn io_err(e: io::Error) -> Error {
    Error::sys("tokio reactor", e)
}

/// An [`RxQueue`] whose receive awaits packets instead of polling.
#[derive(Debug)]
pub struct AsyncRxQueue {
    q: RxQueue,
    fd: AsyncFd<Watch>,
    eventfd: bool,
}

impl AsyncRxQueue {
    /// Enables the queue's rx interrupts and registers them with the current
    /// tokio runtime (which needs its I/O driver); outside a runtime this is an
    /// error, not a panic.
    pub fn new(mut q: RxQueue) -> Result<AsyncRxQueue> {
        q.enable_interrupt()?;
        let irq = q.interrupt_fd().ok_or(Error::Unsupported {
            feature: "rx interrupts",
            hint: "this queue's engine has no readiness fd",
        })?;
        // With io_uring the fd is our eventfd; with read/write it is the tap fd,
        // which must never be read here.
        let eventfd = q.ring_features().is_some();
        let fd = watch(irq)?;
        Ok(AsyncRxQueue { q, fd, eventfd })
    }

    /// Waits until at least one packet arrives, then receives up to `max` into `out`.
    pub async fn recv_burst(&mut self, out: &mut Vec<Packet>, max: usize) -> Result<usize> {
        loop {
            let n = self.q.rx_burst(out, max)?;
            if n > 0 {
                return Ok(n);
            }
            let mut guard = self.fd.readable().await.map_err(io_err)?;
            if self.eventfd {
                sysfd::eventfd_clear(self.fd.get_ref().0.as_fd());
            }
            guard.clear_ready();
        }
    }

    /// The wrapped queue (for stats and the like).
    pub fn get_ref(&self) -> &RxQueue {
        &self.q
    }

    /// Gives the queue back.
    pub fn into_inner(self) -> RxQueue {
        self.q
    }
}

/// A [`TxQueue`] whose send awaits room when the queue is full.
#[derive(Debug)]
pub struct AsyncTxQueue {
    q: TxQueue,
    fd: Option<AsyncFd<Watch>>,
}

impl AsyncTxQueue {
    /// Enables the queue's completion interrupts (io_uring) and registers them with
    /// the current tokio runtime.
    pub fn new(mut q: TxQueue) -> Result<AsyncTxQueue> {
        q.enable_interrupt()?;
        let fd = match q.interrupt_fd() {
            Some(f) => Some(watch(f)?),
            None => None,
        };
        Ok(AsyncTxQueue { q, fd })
    }

    /// Sends every packet of `pkts`, waiting for completions whenever the queue is full.
    pub async fn send_all(&mut self, pkts: &mut Vec<Packet>) -> Result<()> {
        loop {
            self.q.tx_burst(pkts)?;
            if pkts.is_empty() {
                return Ok(());
            }
            match &self.fd {
                Some(fd) => {
                    let mut guard = fd.readable().await.map_err(io_err)?;
                    sysfd::eventfd_clear(fd.get_ref().0.as_fd());
                    guard.clear_ready();
                }
                None => tokio::task::yield_now().await,
            }
        }
    }

    /// The wrapped queue.
    pub fn get_ref(&self) -> &TxQueue {
        &self.q
    }

    /// Gives the queue back.
    pub fn into_inner(self) -> TxQueue {
        self.q
    }
}
