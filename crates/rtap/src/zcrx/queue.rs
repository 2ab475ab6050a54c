//! A zero-copy receive interface queue: the zcrx registration (area, refill
//! ring, export for sharing) or, where zcrx cannot be had, the decision to copy,
//! with the reason.
//!
//! The queue registers on a ring of its own, made on the thread that opens it.
//! The first receiver made on that thread takes that ring over; every other
//! receiver imports the queue into a ring of its own (`ZCRX_REG_IMPORT`, Linux
//! 6.19+), so all of them share one hardware queue, one area and one refill ring.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use io_uring::{cqueue, squeue, IoUring};

use super::config::{QueueConfig, QueueKind};
use super::cqe::AreaGeom;
use super::probe::probe;
use super::receiver::Receiver;
use super::refill::Refill;
use crate::error::{Error, Result};
use crate::sys::mem::Region;
use crate::sys::zcrx as abi;
use crate::sys::zcrx::Rqe;

/// The ring type zcrx needs: 32-byte completions.
pub(crate) type ZcRing = IoUring<squeue::Entry, cqueue::Entry32>;

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

/// The zcrx registration.
struct Zc {
    shared: Arc<Shared>,
    /// The ring the queue was registered on, until a receiver on the opening
    /// thread takes it over.
    anchor: Mutex<Option<(ZcRing, u32)>>,
    opener: std::thread::ThreadId,
    /// The exported queue other rings import; `None` where the kernel cannot export.
    export: Option<OwnedFd>,
}

/// State every ring sharing the queue uses: the area buffers live in, the refill
/// ring, the kernel's statistics.
pub(crate) struct Shared {
    area: Region,
    area_len: usize,
    /// Buffer size the kernel uses.
    pub(crate) buf_len: u32,
    /// The area token refill entries carry.
    pub(crate) token: u64,
    refill: Mutex<Refill>,
    /// Offset of the kernel's `zcrx_stats` in the refill region.
    stats_off: Option<usize>,
    /// Device-less: refill entries are taken only on `ZCRX_CTRL_FLUSH_RQ`.
    pub(crate) nodev: bool,
    /// Refill entries published so far (by every receiver).
    published: AtomicU64,
}

impl Shared {
    /// Buffers in the area.
    pub(crate) fn buffers(&self) -> usize {
        self.area_len / self.buf_len as usize
    }

    /// The area's geometry, to check completions against.
    pub(crate) fn geom(&self) -> AreaGeom {
        AreaGeom {
            token: self.token,
            len: self.area_len as u64,
            buf_len: self.buf_len,
        }
    }

    /// Address of `len` bytes at area offset `off`, if they lie inside the area.
    pub(crate) fn area_ptr(&self, off: u64, len: u32) -> Option<*const u8> {
        let end = off.checked_add(u64::from(len))?;
        if end > self.area_len as u64 {
            return None;
        }
        Some(self.area.as_ptr().wrapping_add(off as usize).cast_const())
    }

    /// Publishes refill entries (what does not fit waits for the next call).
    pub(crate) fn refill(&self, batch: &[Rqe]) {
        let mut r = self.refill.lock().unwrap_or_else(|e| e.into_inner());
        let n = r.push(batch);
        self.published.fetch_add(n as u64, Ordering::Release);
    }

    /// Refill entries published so far.
    pub(crate) fn published(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    /// Pushes the backlog, if any; returns entries still waiting and entries the
    /// kernel has not consumed.
    pub(crate) fn refill_state(&self) -> (usize, u32) {
        let mut r = self.refill.lock().unwrap_or_else(|e| e.into_inner());
        if r.backlog() > 0 {
            let n = r.push(&[]);
            self.published.fetch_add(n as u64, Ordering::Release);
        }
        (r.backlog(), r.in_flight())
    }

    /// The kernel's copy statistics, where it keeps them.
    pub(crate) fn kernel_stats(&self) -> Option<abi::ZcrxStats> {
        let off = self.stats_off?;
        let r = self.refill.lock().unwrap_or_else(|e| e.into_inner());
        Some(r.read_stats(off))
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

    /// A receiver for this queue, driven by the calling thread.
    pub fn receiver(&self) -> Result<Receiver> {
        let Some(zc) = &self.inner.zc else {
            return Receiver::copy(self.clone(), &self.inner.cfg);
        };
        if zc.opener == std::thread::current().id() {
            let taken = zc.anchor.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some((ring, id)) = taken {
                return Receiver::zc(self.clone(), zc.shared.clone(), ring, id);
            }
        }
        let Some(export) = &zc.export else {
            return Err(Error::ZcrxUnavailable {
                why: "this kernel cannot share an interface queue between rings (ZCRX_CTRL_EXPORT needs Linux >= 6.19): make a single receiver, on the thread that opened the queue".into(),
            });
        };
        let ring = zc_ring(8)?;
        let mut reg = abi::IfqReg {
            if_idx: export.as_raw_fd() as u32,
            flags: abi::REG_IMPORT,
            ..Default::default()
        };
        // SAFETY: an import carries no area, region or event pointers.
        unsafe { abi::register_ifq(ring.as_raw_fd(), &mut reg) }
            .map_err(|e| Error::sys("IORING_REGISTER_ZCRX_IFQ (import)", e))?;
        Receiver::zc(self.clone(), zc.shared.clone(), ring, reg.zcrx_id)
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

/// A ring with what zcrx needs: one issuer, deferred task work, 32-byte CQEs.
pub(crate) fn zc_ring(entries: u32) -> Result<ZcRing> {
    ZcRing::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(entries.max(8) * 64)
        .build(entries)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::EINVAL) => Error::ZcrxUnavailable {
                why: "the kernel refused a ring with DEFER_TASKRUN and CQE32 (Linux >= 6.1 needed; zcrx itself needs 6.15, device-less 7.1)".into(),
            },
            _ => match crate::backend::uring::check_available() {
                Err(why) => Error::UringUnavailable { why },
                Ok(()) => Error::sys("io_uring_setup (zcrx ring)", e),
            },
        })
}

/// Registers the queue `cfg` asks for on a new ring and exports it.
fn register(cfg: &QueueConfig) -> Result<Zc> {
    let p = probe();
    if !p.uring {
        return Err(Error::UringUnavailable {
            why: p.nodev_unavailable.unwrap_or_default(),
        });
    }
    let (if_idx, if_rxq, flags) = match &cfg.kind {
        QueueKind::NoDev => {
            if let Some(why) = p.nodev_unavailable.clone() {
                return Err(Error::ZcrxUnavailable { why });
            }
            (0, 0, abi::REG_NODEV)
        }
        QueueKind::Device { iface, queue } => {
            // The caller's mistakes first (no such interface or queue), whatever
            // the kernel can do.
            let idx = super::device::check(iface, *queue)?;
            if let Some(why) = p.device_unavailable.clone() {
                return Err(Error::ZcrxUnavailable { why });
            }
            (idx, *queue, 0)
        }
        QueueKind::Copy => unreachable!("copy mode registers nothing"),
    };
    let ring = zc_ring(8)?;
    let entries = cfg.rq_entries_effective();
    let area = Region::new(cfg.area_size).map_err(|e| Error::sys("mmap zcrx area", e))?;
    // The refill ring: header, entries, and room for the kernel's statistics.
    let page = crate::sys::mem::page_size();
    let hdr = (p.rq_hdr_size as usize).max(128).next_multiple_of(64);
    let rq_bytes = hdr + entries as usize * std::mem::size_of::<Rqe>();
    let stats_off = rq_bytes.next_multiple_of(64);
    let rq_len = (stats_off + 64).next_multiple_of(page);
    let rq = Region::new(rq_len).map_err(|e| Error::sys("mmap zcrx refill ring", e))?;
    let mut area_reg = abi::AreaReg {
        addr: area.as_ptr() as u64,
        len: cfg.area_size as u64,
        ..Default::default()
    };
    let mut region = abi::RegionDesc {
        user_addr: rq.as_ptr() as u64,
        size: rq_len as u64,
        flags: abi::MEM_REGION_TYPE_USER,
        ..Default::default()
    };
    let mut events = abi::EventDesc {
        flags: abi::EVENT_DESC_FLAG_STATS,
        stats_offset: stats_off as u64,
        ..Default::default()
    };
    let mut reg = abi::IfqReg {
        if_idx,
        if_rxq,
        rq_entries: entries,
        flags,
        area_ptr: std::ptr::addr_of_mut!(area_reg) as u64,
        region_ptr: std::ptr::addr_of_mut!(region) as u64,
        // Device-less mode takes page-sized buffers only.
        rx_buf_len: if flags & abi::REG_NODEV != 0 {
            0
        } else {
            cfg.rx_buf_len.unwrap_or(0)
        },
        event_desc: if p.stats {
            std::ptr::addr_of_mut!(events) as u64
        } else {
            0
        },
        ..Default::default()
    };
    // SAFETY: area_reg, region and events live across the call; the area and
    // refill memory they describe are owned by the Shared state below, which
    // every receiver (and every buffer) keeps alive; the kernel pins those pages,
    // so even a ring outliving the mapping never writes into reused memory.
    let r = unsafe { abi::register_ifq(ring.as_raw_fd(), &mut reg) };
    if let Err(e) = r {
        return Err(explain_register_error(cfg, e));
    }
    // Kernels that do not write the buffer size back use one page per buffer
    // (completions then address buffers in pages, which are not 4 KiB everywhere).
    let buf_len = if reg.rx_buf_len == 0 {
        crate::sys::mem::page_size() as u32
    } else {
        reg.rx_buf_len
    };
    let buffers = cfg.area_size / buf_len as usize;
    // The kernel rounds rq_entries up to a power of two and says so.
    let entries = if reg.rq_entries.is_power_of_two() {
        reg.rq_entries
    } else {
        entries
    };
    let refill = Refill::new(rq, rq_len, &reg.offsets, entries, buffers).ok_or_else(|| {
        Error::ZcrxUnavailable {
            why: format!(
                "the kernel returned refill ring offsets rtap cannot use ({:?}, {} entries, {} bytes)",
                reg.offsets, entries, rq_len
            ),
        }
    })?;
    let shared = Arc::new(Shared {
        area,
        area_len: cfg.area_size,
        buf_len,
        token: area_reg.rq_area_token,
        refill: Mutex::new(refill),
        stats_off: p.stats.then_some(stats_off),
        nodev: flags & abi::REG_NODEV != 0,
        published: AtomicU64::new(0),
    });
    let mut c = abi::Ctrl {
        zcrx_id: reg.zcrx_id,
        op: abi::CTRL_EXPORT,
        ..Default::default()
    };
    let export = match abi::ctrl(ring.as_raw_fd(), &mut c) {
        Ok(_) if c.arg[0] > 2 && c.arg[0] <= i32::MAX as u32 => {
            // SAFETY: on success the kernel installed a new fd for us and wrote
            // it into the export argument (the call itself returns 0); we own it.
            Some(unsafe { OwnedFd::from_raw_fd(c.arg[0] as i32) })
        }
        Ok(r) => {
            tracing::warn!(
                "zcrx export returned {r} without a usable fd ({})",
                c.arg[0]
            );
            None
        }
        Err(e) => {
            tracing::info!("zcrx export unavailable ({e}): one receiver per queue");
            None
        }
    };
    Ok(Zc {
        shared,
        anchor: Mutex::new(Some((ring, reg.zcrx_id))),
        opener: std::thread::current().id(),
        export,
    })
}

/// A registration failure, explained.
fn explain_register_error(cfg: &QueueConfig, e: std::io::Error) -> Error {
    let errno = e.raw_os_error().unwrap_or(0);
    if errno == libc::EPERM || errno == libc::EACCES {
        return Error::ZcrxUnavailable {
            why: "registering an interface queue needs CAP_NET_ADMIN: run as root or grant the capability".into(),
        };
    }
    match &cfg.kind {
        QueueKind::Device { iface, queue } if errno == libc::EOPNOTSUPP => Error::ZcrxDevice {
            iface: iface.clone(),
            queue: *queue,
            why: super::device::unsupported_hint(iface),
        },
        QueueKind::Device { iface, queue } if errno == libc::EBUSY || errno == libc::EEXIST => {
            Error::ZcrxDevice {
                iface: iface.clone(),
                queue: *queue,
                why: "the queue is already bound to another memory provider (another zcrx or devmem user)".into(),
            }
        }
        _ if errno == libc::ENOMEM => Error::ZcrxUnavailable {
            why: format!(
                "IORING_REGISTER_ZCRX_IFQ: out of memory pinning {} bytes (raise RLIMIT_MEMLOCK or use a smaller area_size)",
                cfg.area_size
            ),
        },
        QueueKind::NoDev if errno == libc::EINVAL => Error::ZcrxUnavailable {
            why: "the kernel refused a device-less registration (ZCRX_REG_NODEV needs Linux >= 7.1)"
                .into(),
        },
        _ => Error::sys("IORING_REGISTER_ZCRX_IFQ", e),
    }
}
