//! Data-path engines for devices whose queues are fds that frames are read from
//! and written to (TAP). Each engine implements the queue layer's (crate-private)
//! rx and tx engine traits; the port picks one per queue from its
//! [`BackendKind`] and io_uring options ([`RingConfig`](uring::RingConfig)).
//!
//! - [`uring`]: io_uring, one ring per rx queue and one per tx queue: posted reads
//!   or multishot read on rx, write/writev per packet on tx.
//! - `rw`: plain `read()`/`write()` syscalls, one per packet (the way DPDK's
//!   net_tap works); the benchmark baseline and the fallback when io_uring is
//!   unavailable.

pub(crate) mod rw;
pub mod uring;

use std::io;

use crate::error::Result;
use crate::pool::Pool;
use crate::port::device::EngineCtx;
use crate::queue::engine::{RxEngine, TxEngine};
use uring::{RingFeatures, RxMode};

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

/// The rx engine for a queue fd: read/write, or io_uring with the rx mode the
/// ring options resolve to on this kernel ([`RxMode::resolve`]; the engine and,
/// if the kernel decided it, the reason are recorded in its ring features).
pub(crate) fn fd_rx_engine(ctx: &EngineCtx<'_>, pool: &Pool) -> Result<Box<dyn RxEngine>> {
    if ctx.backend == BackendKind::Rw {
        return Ok(Box::new(rw::RwRx::new(pool, ctx.vnet_len, ctx.max_frame)?));
    }
    let pc = pool.config();
    let fits_one_buffer = (pc.buf_size - pc.headroom) as usize > ctx.max_frame;
    let (mode, why) = ctx.ring.rx_mode.resolve(fits_one_buffer)?;
    let note = |f: &mut RingFeatures| {
        f.rx_mode = Some(mode);
        if let Some(why) = why {
            tracing::info!("rx queue: {why}");
            f.fallbacks.push(why.to_string());
        }
    };
    let (fd, ring, vl, mf, attach) = (ctx.fd, ctx.ring, ctx.vnet_len, ctx.max_frame, ctx.sq_attach);
    Ok(if mode == RxMode::Multishot {
        let mut e = uring::rx_multishot::MultishotRx::new(fd, pool, ring, vl, mf, attach)?;
        note(&mut e.features);
        Box::new(e)
    } else {
        let mut e = uring::rx_posted::PostedRx::new(fd, pool, ring, vl, mf, attach)?;
        note(&mut e.features);
        Box::new(e)
    })
}

/// The tx engine for a queue fd.
pub(crate) fn fd_tx_engine(ctx: &EngineCtx<'_>) -> Result<Box<dyn TxEngine>> {
    Ok(match ctx.backend {
        BackendKind::Rw => Box::new(rw::RwTx::new(ctx.vnet_len)),
        BackendKind::Uring => Box::new(uring::tx::UringTx::new(
            ctx.fd,
            ctx.ring,
            ctx.vnet_len,
            ctx.sq_attach,
        )?),
    })
}
