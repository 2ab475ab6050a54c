//! The TAP device behind a [`Port`](crate::Port): creating or attaching the
//! kernel interface (`IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE | IFF_VNET_HDR`), a
//! detached keep-alive fd, one fd per queue pair, offload negotiation, and the
//! fd engines of the chosen backend.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use super::config::TapConfig;
use super::offloads::negotiate;
use crate::backend::uring::{RingConfig, SqPoll};
use crate::backend::{self, BackendKind};
use crate::error::{Error, Result};
use crate::netlink::LinkInfo;
use crate::pool::{Pool, PoolConfig};
use crate::port::device::{Device, EngineCtx, Opened, QueueFd};
use crate::port::Offloads;
use crate::queue::engine::{RxEngine, TxEngine};
use crate::queue::QueueShared;
use crate::sys::{fd as sysfd, tun};
use crate::wire::vnet::VNET_HDR_LEN;

/// An open TAP interface.
pub(crate) struct TapDevice {
    /// The backend in use and why it is not the one asked for, if it is not.
    backend: BackendKind,
    backend_reason: Option<String>,
    ring: RingConfig,
    /// Keeps the interface alive while queues come and go; detached, so it carries no traffic.
    _keepalive: OwnedFd,
    /// True if this port created the interface (false: attached to an existing one).
    created: bool,
    /// Offloads the kernel accepted.
    offloads: Offloads,
    /// Why some requested offloads were dropped.
    offload_notes: Vec<String>,
    /// A TUN (IP packets) rather than a TAP.
    tun: bool,
}

/// Ethernet header and one VLAN tag on top of the MTU.
const L2_OVERHEAD: usize = 18;

impl Device for TapDevice {
    fn kind(&self) -> &'static str {
        if self.tun {
            "tun"
        } else {
            "tap"
        }
    }

    fn link(&self) -> crate::wire::layout::Link {
        if self.tun {
            crate::wire::layout::Link::Ip
        } else {
            crate::wire::layout::Link::Ethernet
        }
    }

    fn created(&self) -> bool {
        self.created
    }

    fn offloads(&self) -> Offloads {
        self.offloads
    }

    fn offload_notes(&self) -> &[String] {
        &self.offload_notes
    }

    fn backend(&self) -> BackendKind {
        self.backend
    }

    fn backend_reason(&self) -> Option<&str> {
        self.backend_reason.as_deref()
    }

    fn sqpoll(&self) -> Option<SqPoll> {
        self.ring
            .sqpoll
            .filter(|_| self.backend == BackendKind::Uring)
    }

    fn queue_buffers(&self, pool: &PoolConfig, max_frame: usize) -> usize {
        backend::fd_queue_buffers(self.backend, &self.ring, VNET_HDR_LEN, pool, max_frame)
    }

    fn rx_engine_name(&self, pool: &PoolConfig, max_frame: usize) -> String {
        backend::fd_rx_engine_name(self.backend, &self.ring, pool, max_frame)
    }

    fn open_queue(&self, iface: &Opened, _id: u16) -> Result<QueueFd> {
        Ok(QueueFd {
            fd: open_queue(&iface.name, iface.ifindex, flags(self.tun))?,
            extra: None,
        })
    }

    fn release_queue(&self) -> fn(BorrowedFd<'_>) {
        detach_queue
    }

    /// A TAP frame: the MTU plus an Ethernet header and a VLAN tag; a TUN
    /// packet: the MTU.
    fn max_frame(&self, mtu: u32) -> usize {
        if self.tun {
            mtu as usize
        } else {
            mtu as usize + L2_OVERHEAD
        }
    }

    /// Frames the kernel could not hand to a queue are the tap's transmit drops
    /// (kernel to user is the tap's transmit direction).
    fn missed(&self, link: &LinkInfo, _queues: &[Arc<QueueShared>]) -> u64 {
        link.kernel_tx_dropped
    }

    fn rx_engine(&self, ctx: &EngineCtx, pool: &Pool) -> Result<Box<dyn RxEngine>> {
        backend::fd_rx_engine(ctx, self.backend, &self.ring, VNET_HDR_LEN, pool)
    }

    fn tx_engine(&self, ctx: &EngineCtx) -> Result<Box<dyn TxEngine>> {
        backend::fd_tx_engine(ctx, self.backend, &self.ring, VNET_HDR_LEN)
    }
}

/// Detaches a queue before its fd is closed. Closing alone detaches it only once
/// the last reference to the file goes, and others may still hold one for a while
/// (an io_uring being torn down, a child process forked by another thread that
/// has not exec'd yet); until then the kernel keeps steering frames to a queue
/// nobody reads.
fn detach_queue(fd: BorrowedFd<'_>) {
    let _ = tun::set_queue_attached(fd, false);
}

/// The `TUNSETIFF` flags of a TAP or a TUN.
fn flags(tun: bool) -> libc::c_int {
    if tun {
        tun::TUN_FLAGS
    } else {
        tun::TAP_FLAGS
    }
}

fn check_features(fd: &OwnedFd, is_tun: bool) -> Result<()> {
    let have =
        tun::features(fd.as_fd()).map_err(|e| Error::sys("TUNGETFEATURES", e))? as libc::c_int;
    let (mode, mode_name) = if is_tun {
        (libc::IFF_TUN, "IFF_TUN")
    } else {
        (libc::IFF_TAP, "IFF_TAP")
    };
    for (flag, name) in [
        (mode, mode_name),
        (libc::IFF_NO_PI, "IFF_NO_PI"),
        (libc::IFF_MULTI_QUEUE, "IFF_MULTI_QUEUE"),
        (libc::IFF_VNET_HDR, "IFF_VNET_HDR"),
    ] {
        if have & flag == 0 {
            return Err(Error::MissingTunFeature { feature: name });
        }
    }
    Ok(())
}

fn map_setiff(e: std::io::Error, name: &str, existed: bool, tun: bool) -> Error {
    match e.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::EBUSY) if existed => Error::IncompatibleInterface {
            name: name.to_string(),
            want: if tun { "TUN" } else { "TAP" },
        },
        Some(libc::EPERM) | Some(libc::EACCES) => Error::PermissionDenied {
            op: "TUNSETIFF (create or attach tap)",
        },
        _ => Error::sys("TUNSETIFF", e),
    }
}

/// Creates the interface (or attaches to it) as `cfg` says and sets it up for
/// vnet headers. Runs in the port's namespace.
pub(crate) fn open(cfg: &TapConfig) -> Result<(TapDevice, Opened)> {
    let name = cfg.name.as_str();
    let attach = cfg.attach;
    let existed = !name.contains('%') && sysfd::if_nametoindex(name).is_some();
    if attach && !existed {
        return Err(Error::NoSuchInterface {
            name: name.to_string(),
        });
    }
    let keepalive = tun::open_tun(false)?;
    check_features(&keepalive, cfg.tun)?;
    let actual = tun::set_iff(keepalive.as_fd(), name, flags(cfg.tun))
        .map_err(|e| map_setiff(e, name, existed, cfg.tun))?;
    let fd = keepalive.as_fd();
    tun::set_vnet_hdr_size(fd, VNET_HDR_LEN).map_err(|e| Error::sys("TUNSETVNETHDRSZ", e))?;
    let (offloads, notes) = negotiate(cfg.offloads, |f| tun::set_offload(fd, f))
        .map_err(|e| Error::sys("TUNSETOFFLOAD", e))?;
    for n in &notes {
        tracing::info!("{actual}: {n}");
    }
    if let Some(uid) = cfg.owner {
        tun::set_owner(fd, uid).map_err(|e| Error::sys("TUNSETOWNER", e))?;
    }
    if let Some(gid) = cfg.group {
        tun::set_group(fd, gid).map_err(|e| Error::sys("TUNSETGROUP", e))?;
    }
    if cfg.persist {
        tun::set_persist(fd, true).map_err(|e| Error::sys("TUNSETPERSIST", e))?;
    }
    let ifindex = sysfd::if_nametoindex(&actual).ok_or_else(|| Error::DeviceVanished {
        name: actual.clone(),
        ifindex: 0,
    })?;
    tun::set_queue_attached(fd, false)
        .map_err(|e| Error::sys("TUNSETQUEUE detach keep-alive", e))?;
    let (backend, backend_reason) = backend::choose(cfg.backend);
    let dev = TapDevice {
        backend,
        backend_reason,
        ring: cfg.ring,
        _keepalive: keepalive,
        created: !existed,
        offloads,
        offload_notes: notes,
        tun: cfg.tun,
    };
    Ok((
        dev,
        Opened {
            name: actual,
            ifindex,
        },
    ))
}

/// Opens one more queue fd on the interface called `name`.
///
/// Queue fds are always non-blocking, for every backend. The read/write backend
/// needs it to poll. io_uring needs it on kernels before 6.4, whose tun driver
/// does not declare `FMODE_NOWAIT`: io_uring then issues reads and writes on a
/// blocking tap fd from its io-wq worker threads, several at once, and a burst
/// of writes reaches the wire in any order. On an `O_NONBLOCK` fd io_uring
/// issues them inline, in submission order, as it does on newer kernels.
fn open_queue(name: &str, ifindex: u32, flags: libc::c_int) -> Result<OwnedFd> {
    let fd = tun::open_tun(true)?;
    let got = tun::set_iff(fd.as_fd(), name, flags).map_err(|e| match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => Error::PermissionDenied {
            op: "TUNSETIFF (attach queue)",
        },
        _ => Error::sys("TUNSETIFF (attach queue)", e),
    })?;
    // A rename by someone else between calls would make us attach to another device.
    if sysfd::if_nametoindex(&got) != Some(ifindex) {
        return Err(Error::DeviceVanished { name: got, ifindex });
    }
    Ok(fd)
}
