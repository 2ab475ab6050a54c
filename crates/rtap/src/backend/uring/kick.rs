//! A ring that only issues zero-length sends on one socket, from the SQPOLL
//! kernel thread: the tx "kick" of a packet socket's mmap ring. The application
//! writes an SQE and the SQ tail (no syscall) and enters the kernel only to wake
//! the thread after it went to sleep.

use std::os::fd::RawFd;

use io_uring::{opcode, IoUring};

use super::{build_ring, with_target, RingConfig, RingFeatures, Target};
use crate::error::Result;

/// A kick ring on one socket.
pub(crate) struct SendKick {
    ring: IoUring,
    target: Target,
    pub features: RingFeatures,
    /// Kicks submitted whose completion has not been reaped.
    outstanding: u32,
}

/// What [`SendKick::kick`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kicked {
    /// Queued; the SQ thread was awake (or there is none).
    Queued,
    /// Queued, and the sleeping SQ thread had to be woken (a syscall).
    Woke,
    /// The SQ is full of kicks not picked up yet; one of them will do.
    Full,
}

impl SendKick {
    /// A ring of `cfg.tx_entries` entries on socket `fd`, attached to the SQ
    /// thread of ring `attach` when `cfg` asks for SQPOLL.
    pub(crate) fn new(fd: RawFd, cfg: &RingConfig, attach: Option<RawFd>) -> Result<SendKick> {
        let r = build_ring(cfg, cfg.tx_entries, 2 * cfg.tx_entries, fd, attach)?;
        Ok(SendKick {
            ring: r.ring,
            target: r.target,
            features: r.features,
            outstanding: 0,
        })
    }

    /// Queues `send(fd, NULL, 0, MSG_DONTWAIT)` (`MSG_DONTWAIT` in the SQE itself:
    /// were the request punted to a worker, a blocking packet-socket send would
    /// wait for every pending frame to complete).
    pub(crate) fn kick(&mut self) -> Kicked {
        let sqe = with_target!(self.target, |f| opcode::Send::new(f, std::ptr::null(), 0)
            .flags(libc::MSG_DONTWAIT)
            .build())
        .user_data(0);
        // SAFETY: a zero-length send with a null buffer references no memory.
        if unsafe { self.ring.submission().push(&sqe) }.is_err() {
            return Kicked::Full;
        }
        self.outstanding += 1;
        let woke = self.features.sqpoll && self.ring.submission().need_wakeup();
        // With SQPOLL this enters the kernel only to wake a sleeping thread.
        if let Err(e) = self.ring.submit() {
            tracing::debug!("kick submit: {e}");
        }
        if woke {
            Kicked::Woke
        } else {
            Kicked::Queued
        }
    }

    /// Calls `f` with the result of every finished kick.
    pub(crate) fn reap(&mut self, mut f: impl FnMut(i32)) {
        if self.outstanding == 0 {
            return;
        }
        for cqe in self.ring.completion() {
            self.outstanding = self.outstanding.saturating_sub(1);
            f(cqe.result());
        }
    }

    /// Kicks submitted and not reaped.
    pub(crate) fn outstanding(&self) -> u32 {
        self.outstanding
    }
}
