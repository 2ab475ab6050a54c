//! Data-path engines any device can reuse. Each implements the queue layer's
//! (crate-private) rx and tx engine traits.
//!
//! For devices whose queues are fds that frames are read from and written to
//! (TAP, TUN), picked per queue from the device's [`BackendKind`] and io_uring
//! options ([`RingConfig`]) by `fd_rx_engine` / `fd_tx_engine`:
//! - [`uring`]: io_uring, one ring per rx queue and one per tx queue: posted reads
//!   or multishot read on rx, write/writev per packet on tx.
//! - `rw`: plain `read()`/`write()` syscalls, one per packet (the way DPDK's
//!   net_tap works); the benchmark baseline and the fallback when io_uring is
//!   unavailable.
//!
//! For devices whose tx frames wait in a ring shared with the kernel: `kick`,
//! the tx kick by `send()` or from the process's SQPOLL thread.

pub(crate) mod kick;
pub(crate) mod rw;
pub(crate) mod segment;
pub mod uring;

use std::io;

use crate::error::Result;
use crate::pool::{Pool, PoolConfig};
use crate::queue::engine::{EngineCtx, RxEngine, TxEngine};
use crate::queue::Engine;
use uring::{RingConfig, RingFeatures, RxMode};

/// Which engine a device whose queues are fds (TAP, TUN, a served one) asks
/// for: the `backend=` spec key. What it got is the port's
/// [`engine`](crate::Port::engine).
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

impl Engine {
    /// io_uring reads and writes on the queue fd (TAP, TUN): one ring per rx
    /// queue and one per tx queue.
    pub const URING: Engine = Engine::direct("uring", true);
    /// `read()`/`write()` system calls on the queue fd, one per frame: DPDK
    /// net_tap's way, the baseline, and the fallback where io_uring is refused.
    pub const RW: Engine = Engine::direct("rw", false);
}

impl From<BackendKind> for Engine {
    fn from(b: BackendKind) -> Engine {
        match b {
            BackendKind::Uring => Engine::URING,
            BackendKind::Rw => Engine::RW,
        }
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
pub(crate) fn fd_rx_engine(
    ctx: &EngineCtx,
    backend: BackendKind,
    ring: &RingConfig,
    vnet_len: usize,
    pool: &Pool,
) -> Result<Box<dyn RxEngine>> {
    // A roaming queue is driven from whichever thread has work: read/write,
    // which works from any thread, not a ring tied to its issuer.
    let backend = if ctx.roaming {
        BackendKind::Rw
    } else {
        backend
    };
    match backend {
        BackendKind::Rw => Ok(Box::new(rw::RwRx::new(pool, vnet_len, ctx.max_frame)?)),
        BackendKind::Uring => uring_rx_engine(ctx, ring, vnet_len, pool),
    }
}

/// An io_uring rx engine in the mode `ring.rx_mode` resolves to.
fn uring_rx_engine(
    ctx: &EngineCtx,
    ring: &RingConfig,
    vnet_len: usize,
    pool: &Pool,
) -> Result<Box<dyn RxEngine>> {
    let pc = pool.config();
    let fits_one_buffer = (pc.buf_size - pc.headroom) as usize > ctx.max_frame;
    let (mode, why) = ring.rx_mode.resolve(fits_one_buffer)?;
    let note = |f: &mut RingFeatures| {
        f.rx_mode = Some(mode);
        if let Some(why) = why {
            tracing::info!("rx queue: {why}");
            f.fallbacks.push(why.to_string());
        }
    };
    let (fd, vl, mf, attach) = (ctx.fd, vnet_len, ctx.max_frame, ctx.sq_attach);
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
pub(crate) fn fd_tx_engine(
    ctx: &EngineCtx,
    backend: BackendKind,
    ring: &RingConfig,
    vnet_len: usize,
) -> Result<Box<dyn TxEngine>> {
    let backend = if ctx.roaming {
        BackendKind::Rw
    } else {
        backend
    };
    Ok(match backend {
        BackendKind::Rw => Box::new(rw::RwTx::new(vnet_len, ctx.link)),
        BackendKind::Uring => Box::new(uring::tx::UringTx::new(
            ctx.fd,
            ring,
            vnet_len,
            ctx.link,
            ctx.sq_attach,
        )?),
    })
}

/// Pool buffers one queue pair of an fd device may hold: the rx engine's reads
/// (or buffer ring) and the tx engine's slots.
pub(crate) fn fd_queue_buffers(
    backend: BackendKind,
    ring: &RingConfig,
    vnet_len: usize,
    pool: &PoolConfig,
    max_frame: usize,
) -> usize {
    match backend {
        // One staged read; sends complete at once.
        BackendKind::Rw => {
            uring::rx_posted::bufs_per_read(pool.buf_size, pool.headroom, vnet_len, max_frame + 1)
        }
        BackendKind::Uring => {
            let k = uring::rx_posted::bufs_per_read(
                pool.buf_size,
                pool.headroom,
                vnet_len,
                max_frame + 1,
            );
            ring.rx_posted as usize * k + ring.tx_entries as usize
        }
    }
}

/// The rx engine an fd device's queue gets, in words.
pub(crate) fn fd_rx_engine_name(
    backend: BackendKind,
    ring: &RingConfig,
    pool: &PoolConfig,
    max_frame: usize,
) -> String {
    match backend {
        BackendKind::Rw => return "read/write".into(),
        BackendKind::Uring => {}
    }
    let fits = ((pool.buf_size - pool.headroom) as usize) > max_frame;
    let mode = ring.rx_mode;
    match mode.resolve(fits) {
        Ok((m, None)) => format!("{m} (rx_mode {mode}, frames up to {max_frame} bytes)"),
        Ok((m, Some(why))) => format!("{m} ({why})"),
        Err(e) => format!("none: {e}"),
    }
}

/// The tx engine an fd device's queue gets, in words.
pub(crate) fn fd_tx_engine_name(backend: BackendKind) -> String {
    match backend {
        BackendKind::Uring => "io_uring write/writev per packet".into(),
        BackendKind::Rw => "write()/writev() per packet".into(),
    }
}

/// The SQPOLL thread an fd device's rings attach to: the ring options' own,
/// with io_uring only.
pub(crate) fn fd_sqpoll(backend: BackendKind, ring: &RingConfig) -> Option<uring::SqPoll> {
    match backend {
        BackendKind::Uring => ring.sqpoll,
        BackendKind::Rw => None,
    }
}

/// Picks the backend, falling back to read/write when io_uring cannot be used.
pub(crate) fn choose(want: BackendKind) -> (BackendKind, Option<String>) {
    match want {
        BackendKind::Rw => return (BackendKind::Rw, None),
        BackendKind::Uring => {}
    }
    if let Ok(v) = std::env::var("RTAP_FORCE_BACKEND") {
        if v == "rw" {
            return (BackendKind::Rw, Some("RTAP_FORCE_BACKEND=rw".into()));
        }
    }
    match uring::check_available() {
        Ok(()) => (BackendKind::Uring, None),
        Err(why) => {
            tracing::warn!("io_uring unavailable ({why}); using the read/write backend");
            (
                BackendKind::Rw,
                Some(format!("io_uring unavailable: {why}")),
            )
        }
    }
}
