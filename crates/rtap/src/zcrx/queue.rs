//! A zero-copy receive interface queue: the zcrx registration (area, refill
//! ring, export for sharing) or, where zcrx cannot be had, the decision to copy,
//! with the reason.
//!
//! The queue registers on a ring of its own, made on the thread that opens it.
//! The first receiver made on that thread takes that ring over; every other
//! receiver imports the queue into a ring of its own (`ZCRX_REG_IMPORT`, Linux
//! 6.19+), so all of them share one hardware queue, one area and one refill ring.

use std::sync::Arc;

use super::config::{QueueConfig, QueueKind};
use super::register::{register, Zc};
use crate::error::{Error, Result};

/// What a queue ended up as.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// zcrx on a device queue: payload lands in the area without a copy.
    ZeroCopy {
        /// Interface.
        iface: String,
        /// Hardware rx queue.
        queue: u32,
    },
    /// Device-less zcrx: the zcrx API, every byte copied by the kernel.
    NoDev,
    /// Multishot `recv` into provided buffers.
    Copy,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mode::ZeroCopy { iface, queue } => write!(f, "zcrx {iface}:{queue}"),
            Mode::NoDev => f.write_str("zcrx nodev (kernel copy)"),
            Mode::Copy => f.write_str("copy (multishot recv)"),
        }
    }
}

/// An interface queue opened for zero-copy receive, or its copy fallback.
/// Cheap to clone and `Send + Sync`: give a clone to each thread that receives,
/// and call [`Queue::receiver`] there.
#[derive(Clone, Debug)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: QueueConfig,
    mode: Mode,
    why_copy: Option<String>,
    zc: Option<Zc>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("mode", &self.mode)
            .field("why_copy", &self.why_copy)
            .finish()
    }
}

impl Queue {
    /// Opens the queue `cfg` describes. zcrx modes fall back to copy mode (with
    /// the reason in [`Queue::fallback_reason`]) when `cfg.fallback` is on and
    /// the kernel, the device or the process's privileges rule zcrx out.
    pub fn open(cfg: &QueueConfig) -> Result<Queue> {
        cfg.validate()?;
        let (mode, why_copy, zc) = match &cfg.kind {
            QueueKind::Copy => (Mode::Copy, None, None),
            kind => match register(cfg) {
                Ok(zc) => {
                    let mode = match kind {
                        QueueKind::Device { iface, queue } => Mode::ZeroCopy {
                            iface: iface.clone(),
                            queue: *queue,
                        },
                        _ => Mode::NoDev,
                    };
                    (mode, None, Some(zc))
                }
                Err(e) if cfg.fallback && fallback_allowed(&e) => {
                    tracing::info!("zcrx unavailable, copying: {e}");
                    (Mode::Copy, Some(e.to_string()), None)
                }
                Err(e) => return Err(e),
            },
        };
        Ok(Queue {
            inner: Arc::new(Inner {
                cfg: cfg.clone(),
                mode,
                why_copy,
                zc,
            }),
        })
    }

    /// The mode in effect.
    pub fn mode(&self) -> &Mode {
        &self.inner.mode
    }

    /// Why a zcrx queue copies instead, if it fell back.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.inner.why_copy.as_deref()
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &QueueConfig {
        &self.inner.cfg
    }

    /// True if receivers on other threads can share this queue (always in copy
    /// mode, where each receiver has buffers of its own; zcrx needs Linux 6.19+).
    pub fn shareable(&self) -> bool {
        self.inner.zc.as_ref().is_none_or(|z| z.export.is_some())
    }

    /// zcrx buffer size (the unit the area is handed out in); `None` in copy mode.
    pub fn buf_len(&self) -> Option<u32> {
        self.inner.zc.as_ref().map(|z| z.shared.buf_len)
    }

    /// The kernel's zcrx statistics (copy completions and bytes), where the
    /// kernel keeps them (`ZCRX_FEATURE_EVENT`).
    pub fn kernel_stats(&self) -> Option<KernelStats> {
        let s = self.inner.zc.as_ref()?.shared.kernel_stats()?;
        Some(KernelStats {
            copy_count: s.copy_count,
            copy_bytes: s.copy_bytes,
        })
    }

    /// Refill entries the kernel has not consumed yet, plus those waiting for
    /// room; 0 once every returned buffer is back in the kernel's hands.
    pub fn refill_pending(&self) -> usize {
        match &self.inner.zc {
            Some(z) => {
                let (backlog, in_flight) = z.shared.refill_state();
                backlog + in_flight as usize
            }
            None => 0,
        }
    }

    /// The registration, in zcrx modes (receivers take its ring or import it).
    pub(super) fn zc(&self) -> Option<&Zc> {
        self.inner.zc.as_ref()
    }
}

/// The kernel's own zcrx counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KernelStats {
    /// Completions whose payload the kernel copied.
    pub copy_count: u64,
    /// Bytes it copied.
    pub copy_bytes: u64,
}

/// Errors that mean "zcrx is not to be had here" rather than "you asked wrongly"
/// (a missing interface or queue is the latter: no fallback hides it).
fn fallback_allowed(e: &Error) -> bool {
    matches!(
        e,
        Error::ZcrxUnavailable { .. } | Error::ZcrxDevice { .. } | Error::PermissionDenied { .. }
    )
}
