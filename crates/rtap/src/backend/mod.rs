//! Data-path backends. Each owns the per-queue I/O machinery; the public
//! [`RxQueue`](crate::RxQueue)/[`TxQueue`](crate::TxQueue) dispatch to one of them.
//!
//! - [`uring`]: io_uring, one ring per rx queue and one per tx queue.
//! - [`rw`]: plain `read()`/`write()` syscalls, one per packet (the way DPDK's
//!   net_tap works); the benchmark baseline and the fallback when io_uring is
//!   unavailable.

pub mod rw;
pub mod uring;

use std::io;

/// Which data-path implementation a port uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum BackendKind {
    /// io_uring (default; falls back to `Rw` with a warning when unavailable).
    #[default]
    Uring,
    /// `read()`/`write()` syscalls.
    Rw,
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::Uring => "uring",
            BackendKind::Rw => "rw",
        })
    }
}

/// Errors after which a tap queue fd is useless: the interface is gone.
pub(crate) fn is_vanished(errno: i32) -> bool {
    matches!(
        errno,
        libc::EBADFD | libc::ENODEV | libc::ENXIO | libc::EPIPE
    )
}

pub(crate) fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}
