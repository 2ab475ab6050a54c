//! Registering an interface queue for zero-copy receive: the ring it lives on,
//! the memory handed to the kernel (the area, the refill ring region with room
//! for the kernel's statistics), the `IORING_REGISTER_ZCRX_IFQ` call and what
//! its reply means, and the export other rings import. Every failure is
//! explained (capability, device support, memory, kernel version).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use io_uring::{cqueue, squeue, IoUring};

use super::config::{QueueConfig, QueueKind};
use super::probe::{probe, ZcrxProbe};
use super::refill::Refill;
use super::shared::Shared;
use crate::error::{Error, Result};
use crate::sys::mem::Region;
use crate::sys::zcrx as abi;
use crate::sys::zcrx::Rqe;

/// The ring type zcrx needs: 32-byte completions.
pub(crate) type ZcRing = IoUring<squeue::Entry, cqueue::Entry32>;

/// A registered queue.
pub(super) struct Zc {
    pub shared: Arc<Shared>,
    /// The ring the queue was registered on, until a receiver on the opening
    /// thread takes it over.
    pub anchor: Mutex<Option<(ZcRing, u32)>>,
    pub opener: std::thread::ThreadId,
    /// The exported queue other rings import; `None` where the kernel cannot export.
    pub export: Option<OwnedFd>,
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
pub(super) fn register(cfg: &QueueConfig) -> Result<Zc> {
    let p = probe();
    if !p.uring {
        return Err(Error::UringUnavailable {
            why: p.nodev_unavailable.unwrap_or_default(),
        });
    }
    let target = target(cfg, &p)?;
    let ring = zc_ring(8)?;
    let mem = Memory::new(cfg, &p)?;
    let (reg, token) = register_ifq(&ring, cfg, &p, target, &mem)?;
    let shared = shared(cfg, &p, mem, &reg, token, target.flags)?;
    Ok(Zc {
        shared: Arc::new(shared),
        export: export(&ring, reg.zcrx_id),
        anchor: Mutex::new(Some((ring, reg.zcrx_id))),
        opener: std::thread::current().id(),
    })
}

/// What the registration binds to.
#[derive(Clone, Copy)]
struct Target {
    if_idx: u32,
    if_rxq: u32,
    flags: u32,
}

/// The interface queue (device mode) or none (device-less): the caller's
/// mistakes first (no such interface or queue), whatever the kernel can do.
fn target(cfg: &QueueConfig, p: &ZcrxProbe) -> Result<Target> {
    match &cfg.kind {
        QueueKind::NoDev => match &p.nodev_unavailable {
            Some(why) => Err(Error::ZcrxUnavailable { why: why.clone() }),
            None => Ok(Target {
                if_idx: 0,
                if_rxq: 0,
                flags: abi::REG_NODEV,
            }),
        },
        QueueKind::Device { iface, queue } => {
            let idx = super::device::check(iface, *queue)?;
            match &p.device_unavailable {
                Some(why) => Err(Error::ZcrxUnavailable { why: why.clone() }),
                None => Ok(Target {
                    if_idx: idx,
                    if_rxq: *queue,
                    flags: 0,
                }),
            }
        }
        QueueKind::Copy => Err(Error::InvalidConfig {
            field: "kind",
            why: "copy mode registers no zcrx queue".into(),
        }),
    }
}

/// The memory the kernel is given: the area buffers land in, and the refill
/// ring region (header, entries, then the kernel's statistics).
struct Memory {
    area: Region,
    rq: Region,
    rq_len: usize,
    entries: u32,
    stats_off: usize,
}

impl Memory {
    fn new(cfg: &QueueConfig, p: &ZcrxProbe) -> Result<Memory> {
        let entries = cfg.rq_entries_effective();
        let area = Region::new(cfg.area_size).map_err(|e| Error::sys("mmap zcrx area", e))?;
        let page = crate::sys::mem::page_size();
        let hdr = (p.rq_hdr_size as usize).max(128).next_multiple_of(64);
        let rq_bytes = hdr + entries as usize * std::mem::size_of::<Rqe>();
        let stats_off = rq_bytes.next_multiple_of(64);
        let rq_len = (stats_off + 64).next_multiple_of(page);
        let rq = Region::new(rq_len).map_err(|e| Error::sys("mmap zcrx refill ring", e))?;
        Ok(Memory {
            area,
            rq,
            rq_len,
            entries,
            stats_off,
        })
    }
}

/// The registration call; returns the kernel's reply and the area token.
fn register_ifq(
    ring: &ZcRing,
    cfg: &QueueConfig,
    p: &ZcrxProbe,
    t: Target,
    mem: &Memory,
) -> Result<(abi::IfqReg, u64)> {
    let mut area_reg = abi::AreaReg {
        addr: mem.area.as_ptr() as u64,
        len: cfg.area_size as u64,
        ..Default::default()
    };
    let mut region = abi::RegionDesc {
        user_addr: mem.rq.as_ptr() as u64,
        size: mem.rq_len as u64,
        flags: abi::MEM_REGION_TYPE_USER,
        ..Default::default()
    };
    let mut events = abi::EventDesc {
        flags: abi::EVENT_DESC_FLAG_STATS,
        stats_offset: mem.stats_off as u64,
        ..Default::default()
    };
    let mut reg = abi::IfqReg {
        if_idx: t.if_idx,
        if_rxq: t.if_rxq,
        rq_entries: mem.entries,
        flags: t.flags,
        area_ptr: std::ptr::addr_of_mut!(area_reg) as u64,
        region_ptr: std::ptr::addr_of_mut!(region) as u64,
        // Device-less mode takes page-sized buffers only.
        rx_buf_len: if t.flags & abi::REG_NODEV != 0 {
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
    // refill memory they describe are owned by the Shared state made from
    // `mem`, which every receiver (and every buffer) keeps alive; the kernel
    // pins those pages, so even a ring outliving the mapping never writes into
    // reused memory.
    let r = unsafe { abi::register_ifq(ring.as_raw_fd(), &mut reg) };
    match r {
        Ok(_) => Ok((reg, area_reg.rq_area_token)),
        Err(e) => Err(explain(cfg, e)),
    }
}

/// The queue's shared state, from the memory and what the kernel replied.
fn shared(
    cfg: &QueueConfig,
    p: &ZcrxProbe,
    mem: Memory,
    reg: &abi::IfqReg,
    token: u64,
    flags: u32,
) -> Result<Shared> {
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
        mem.entries
    };
    let Memory {
        area,
        rq,
        rq_len,
        stats_off,
        ..
    } = mem;
    let refill = Refill::new(rq, rq_len, &reg.offsets, entries, buffers).ok_or_else(|| {
        Error::ZcrxUnavailable {
            why: format!(
                "the kernel returned refill ring offsets rtap cannot use ({:?}, {} entries, {} bytes)",
                reg.offsets, entries, rq_len
            ),
        }
    })?;
    Ok(Shared::new(
        area,
        cfg.area_size,
        buf_len,
        token,
        refill,
        p.stats.then_some(stats_off),
        flags & abi::REG_NODEV != 0,
    ))
}

/// Exports the queue for other rings to import, where the kernel can.
fn export(ring: &ZcRing, zcrx_id: u32) -> Option<OwnedFd> {
    let mut c = abi::Ctrl {
        zcrx_id,
        op: abi::CTRL_EXPORT,
        ..Default::default()
    };
    match abi::ctrl(ring.as_raw_fd(), &mut c) {
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
    }
}

/// Imports an exported queue into a new ring of the calling thread's.
pub(super) fn import(export: &OwnedFd) -> Result<(ZcRing, u32)> {
    let ring = zc_ring(8)?;
    let mut reg = abi::IfqReg {
        if_idx: export.as_raw_fd() as u32,
        flags: abi::REG_IMPORT,
        ..Default::default()
    };
    // SAFETY: an import carries no area, region or event pointers.
    unsafe { abi::register_ifq(ring.as_raw_fd(), &mut reg) }
        .map_err(|e| Error::sys("IORING_REGISTER_ZCRX_IFQ (import)", e))?;
    Ok((ring, reg.zcrx_id))
}

/// A registration failure, explained.
fn explain(cfg: &QueueConfig, e: std::io::Error) -> Error {
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
