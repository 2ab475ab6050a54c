//! The TAP device behind a [`Port`](crate::Port): creating or attaching the
//! kernel interface (`IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE`, and
//! `IFF_VNET_HDR` unless rtap creates it without offloads), a detached
//! keep-alive fd, one fd per queue pair, offload negotiation, and the fd
//! engines of the chosen backend.
//!
//! The virtio-net header is what carries offloads across the fd; without any
//! it is pure cost (the kernel reads and checks 12 bytes per written frame,
//! about a tenth of a 64-byte frame's tx). So a tap or TUN rtap creates with
//! [`Offloads::NONE`] has none unless asked ([`TapConfig::vnet_hdr`]: the
//! header also brings the checksum-verified flag on rx). One rtap attaches to
//! keeps it: the flag is the interface's, and other holders (a VM's tap) rely
//! on it.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};

use super::adopt::{self, QueueFds};
use super::config::TapConfig;
use super::offloads::negotiate;
use crate::backend::uring::RingConfig;
use crate::backend::{self, BackendKind};
use crate::device::{
    Device, DeviceConfig, DeviceInfo, DeviceKind, Lend, Offloads, Opened, OpenedDevice,
    PortOptions, PortSpec, QueueFd, Registry, TxOffload,
};
use crate::error::{Error, Result};
use crate::netlink::LinkInfo;
use crate::pool::{Pool, PoolConfig};
use crate::queue::engine::{EngineCtx, RxEngine, TxEngine};
use crate::queue::QueueShared;
use crate::sys::{fd as sysfd, tun};
use crate::wire::layout::Link;
use crate::wire::vnet::VNET_HDR_LEN;

/// What lifts a refusal to create or attach a tap.
pub(super) const TAP_PERMISSION: &str = "run as root or grant CAP_NET_ADMIN (a persistent tap owned by your user can be attached without it)";

/// What kind of interface a [`TapDevice`] runs on.
#[derive(Clone, Copy, Debug)]
pub(super) struct Shape {
    /// A TUN (IP packets), not a TAP.
    pub tun: bool,
    /// rtap created it (it goes with the port unless persistent).
    pub created: bool,
    /// Its queues carry a virtio-net header (`IFF_VNET_HDR`).
    pub vnet_hdr: bool,
}

/// An open TAP (or TUN) interface.
pub(crate) struct TapDevice {
    /// The backend in use (the one asked for, or read/write when io_uring is
    /// unusable: the info says why).
    backend: BackendKind,
    ring: RingConfig,
    /// The `TUNSETIFF` flags of a TAP or a TUN queue.
    iff: libc::c_int,
    /// The virtio-net header's length in front of each frame: 12, or 0 on an
    /// interface without `IFF_VNET_HDR`.
    vnet_len: usize,
    /// Keeps the interface alive while queues come and go; detached, so it
    /// carries no traffic. `None` in a process the port is served to, and
    /// for adopted fds.
    _keepalive: Option<OwnedFd>,
    /// Adopted queue fds (by queue id), each taken when its queue opens.
    adopted: Option<Mutex<Vec<Option<OwnedFd>>>>,
    info: DeviceInfo,
}

impl TapDevice {
    /// The device of a TAP (or TUN) port: its facts, engines chosen.
    pub(super) fn new(
        shape: Shape,
        offloads: Offloads,
        offload_notes: Vec<String>,
        want: BackendKind,
        ring: RingConfig,
        keepalive: Option<OwnedFd>,
    ) -> TapDevice {
        let Shape {
            tun,
            created,
            vnet_hdr,
        } = shape;
        let (backend, reason) = backend::choose(want);
        let info = DeviceInfo {
            kind: if tun {
                DeviceKind::TUN
            } else {
                DeviceKind::TAP
            },
            link: if tun { Link::Ip } else { Link::Ethernet },
            created,
            controls_link: true,
            offloads,
            offload_notes,
            tx_offload: TxOffload {
                header: vnet_hdr,
                // The fd engines split what a header-less port cannot hand on.
                split: !vnet_hdr,
                ..TxOffload::vnet(offloads.csum)
            },
            engine: backend.into(),
            engine_reason: reason,
            tx_engine: backend::fd_tx_engine_name(backend),
            tx_through_qdisc: false,
            sqpoll: backend::fd_sqpoll(backend, &ring),
            max_buffer: None,
        };
        TapDevice {
            backend,
            ring,
            iff: flags(tun, vnet_hdr),
            vnet_len: if vnet_hdr { VNET_HDR_LEN } else { 0 },
            _keepalive: keepalive,
            adopted: None,
            info,
        }
    }
}

impl Device for TapDevice {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn queue_buffers(&self, pool: &PoolConfig, max_frame: usize) -> usize {
        backend::fd_queue_buffers(self.backend, &self.ring, self.vnet_len, pool, max_frame)
    }

    fn rx_engine_name(&self, pool: &PoolConfig, max_frame: usize) -> String {
        backend::fd_rx_engine_name(self.backend, &self.ring, pool, max_frame)
    }

    fn open_queue(&self, iface: &Opened, id: u16) -> Result<QueueFd> {
        let fd = match &self.adopted {
            Some(fds) => fds
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(usize::from(id))
                .and_then(Option::take)
                .ok_or_else(|| Error::InvalidConfig {
                    field: "fd",
                    why: format!("queue {id} has no adopted fd left (one per queue pair; rtap cannot open more without CAP_NET_ADMIN)"),
                })?,
            None => open_queue(&iface.name, iface.ifindex, self.iff)?,
        };
        Ok(QueueFd {
            fd,
            extra: None,
            // An adopted fd is a copy of the opener's: detaching it would
            // detach theirs (the queue is one file), so it is only closed.
            release: if self.adopted.is_some() {
                crate::device::keep_fd
            } else {
                detach_queue
            },
        })
    }

    /// Frames the kernel could not hand to a queue are the tap's transmit drops
    /// (kernel to user is the tap's transmit direction).
    fn missed(&self, link: &LinkInfo, _queues: &[Arc<QueueShared>]) -> u64 {
        link.kernel_tx_dropped
    }

    fn rx_engine(&self, ctx: &EngineCtx, pool: &Pool) -> Result<Box<dyn RxEngine>> {
        backend::fd_rx_engine(ctx, self.backend, &self.ring, self.vnet_len, pool)
    }

    fn tx_engine(&self, ctx: &EngineCtx) -> Result<Box<dyn TxEngine>> {
        backend::fd_tx_engine(ctx, self.backend, &self.ring, self.vnet_len)
    }

    fn lend(&self) -> std::result::Result<&dyn Lend, &'static str> {
        Ok(self)
    }

    /// Roaming queues get the read/write engines (an io_uring ring is best
    /// driven by one thread; `read`/`write` on the queue's fd work from any).
    #[cfg(all(feature = "mt", feature = "tokio"))]
    fn roaming(&self) -> std::result::Result<(), &'static str> {
        Ok(())
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

/// The `TUNSETIFF` flags of a TAP or a TUN, with or without the virtio-net
/// header.
fn flags(tun: bool, vnet_hdr: bool) -> libc::c_int {
    let f = if tun { tun::TUN_FLAGS } else { tun::TAP_FLAGS };
    if vnet_hdr {
        f
    } else {
        f & !libc::IFF_VNET_HDR
    }
}

impl TapDevice {
    /// Whether queues carry a virtio-net header.
    pub(super) fn vnet_hdr(&self) -> bool {
        self.vnet_len != 0
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
            hint: TAP_PERMISSION,
        },
        _ => Error::sys("TUNSETIFF", e),
    }
}

/// Creates the interface (or attaches to it) as `cfg` says and sets it up for
/// vnet headers where it has them. Runs in the port's namespace.
pub(crate) fn open(cfg: &TapConfig) -> Result<OpenedDevice> {
    if let Some(fds) = &cfg.fds {
        return open_adopted(cfg, fds);
    }
    let name = cfg.name.as_str();
    let attach = cfg.attach;
    let existed = !name.contains('%') && sysfd::if_nametoindex(name).is_some();
    if attach && !existed {
        return Err(Error::NoSuchInterface {
            name: name.to_string(),
            hint: "attach requires an existing tap; drop `attach` to create it",
        });
    }
    let keepalive = tun::open_tun(false)?;
    check_features(&keepalive, cfg.tun)?;
    // No header where none is needed: an interface rtap creates without
    // offloads (see the module's notes).
    let vnet_hdr = match cfg.vnet_hdr {
        Some(false) if existed => {
            return Err(Error::InvalidConfig {
                field: "vnet_hdr",
                why: format!("{name} exists: its virtio-net header is its own flag, which other holders rely on; keep it (drop vnet_hdr=off)"),
            })
        }
        Some(on) => on,
        None => existed || cfg.offloads != Offloads::NONE,
    };
    let actual = tun::set_iff(keepalive.as_fd(), name, flags(cfg.tun, vnet_hdr))
        .map_err(|e| map_setiff(e, name, existed, cfg.tun))?;
    let fd = keepalive.as_fd();
    // The kernel takes the flags of an attach only when no other queue of
    // the interface exists, attached or detached (one may linger briefly in
    // a child another thread forked); otherwise the interface keeps its own.
    // Its header flag is what frames will carry, so it is read back.
    let (_, iff) = tun::get_iff(fd).map_err(|e| Error::sys("TUNGETIFF", e))?;
    let mut notes = Vec::new();
    if iff & libc::IFF_VNET_HDR == 0 && vnet_hdr {
        if cfg.vnet_hdr == Some(true) || !existed {
            return Err(Error::InvalidConfig {
                field: "vnet_hdr",
                why: format!("{actual} has other queues opened without a virtio-net header (IFF_VNET_HDR), and the flag is the interface's; close them first, or attach without vnet_hdr=on and offloads"),
            });
        }
        if cfg.offloads != Offloads::NONE {
            notes.push(format!(
                "{actual} has other queues opened without a virtio-net header: no offloads"
            ));
        }
    }
    let vnet_hdr = iff & libc::IFF_VNET_HDR != 0;
    if vnet_hdr {
        tun::set_vnet_hdr_size(fd, VNET_HDR_LEN).map_err(|e| Error::sys("TUNSETVNETHDRSZ", e))?;
    }
    // Offloads need the header (frames of up to 64 KiB and their checksum
    // state travel in it).
    let want = if vnet_hdr {
        cfg.offloads
    } else {
        Offloads::NONE
    };
    let (offloads, more) =
        negotiate(want, |f| tun::set_offload(fd, f)).map_err(|e| Error::sys("TUNSETOFFLOAD", e))?;
    notes.extend(more);
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
    let shape = Shape {
        tun: cfg.tun,
        created: !existed,
        vnet_hdr,
    };
    let dev = TapDevice::new(
        shape,
        offloads,
        notes,
        cfg.backend,
        cfg.ring,
        Some(keepalive),
    );
    Ok(OpenedDevice {
        dev: Arc::new(dev),
        iface: Opened {
            name: actual,
            ifindex,
        },
        attached: None,
    })
}

/// The device of queue fds opened elsewhere ([`QueueFds`]): checked, the
/// interface as they say, offloads negotiated on them where they carry the
/// virtio-net header (none where they do not).
fn open_adopted(cfg: &TapConfig, fds: &QueueFds) -> Result<OpenedDevice> {
    let a = adopt::adopt(fds, cfg.tun)?;
    if !cfg.name.contains('%') && cfg.name != a.name {
        return Err(Error::InvalidConfig {
            field: "iface",
            why: format!("the fds are queues of {}, not of {}", a.name, cfg.name),
        });
    }
    let fd = a.fds[0].as_fd();
    let (offloads, notes) = if a.vnet_hdr {
        tun::set_vnet_hdr_size(fd, VNET_HDR_LEN).map_err(|e| Error::sys("TUNSETVNETHDRSZ", e))?;
        negotiate(cfg.offloads, |f| tun::set_offload(fd, f))
            .map_err(|e| Error::sys("TUNSETOFFLOAD", e))?
    } else {
        let mut notes = Vec::new();
        if cfg.offloads != Offloads::NONE {
            notes.push(
                "the adopted fds have no virtio-net header (IFF_VNET_HDR): no offloads".into(),
            );
        }
        (Offloads::NONE, notes)
    };
    let ifindex = sysfd::if_nametoindex(&a.name).ok_or_else(|| Error::NoSuchInterface {
        name: a.name.clone(),
        hint: "the fds' interface is not in this network namespace (give netns=)",
    })?;
    let shape = Shape {
        tun: a.tun,
        created: false,
        vnet_hdr: a.vnet_hdr,
    };
    let mut dev = TapDevice::new(shape, offloads, notes, cfg.backend, cfg.ring, None);
    dev.adopted = Some(Mutex::new(a.fds.into_iter().map(Some).collect()));
    Ok(OpenedDevice {
        dev: Arc::new(dev),
        iface: Opened {
            name: a.name,
            ifindex,
        },
        attached: None,
    })
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
            hint: TAP_PERMISSION,
        },
        _ => Error::sys("TUNSETIFF (attach queue)", e),
    })?;
    // A rename by someone else between calls would make us attach to another device.
    if sysfd::if_nametoindex(&got) != Some(ifindex) {
        return Err(Error::DeviceVanished { name: got, ifindex });
    }
    Ok(fd)
}

impl DeviceConfig for TapConfig {
    fn kind(&self) -> DeviceKind {
        if self.tun {
            DeviceKind::TUN
        } else {
            DeviceKind::TAP
        }
    }

    fn options(&self) -> &PortOptions {
        &self.port
    }

    fn options_mut(&mut self) -> &mut PortOptions {
        &mut self.port
    }

    fn validate(&self) -> Result<()> {
        TapConfig::validate(self)
    }

    fn open(&self, _reg: &Registry) -> Result<OpenedDevice> {
        open(self)
    }
}

impl From<TapConfig> for PortSpec {
    fn from(c: TapConfig) -> PortSpec {
        PortSpec::new(c)
    }
}

impl PortSpec {
    /// The TAP (or TUN) configuration, if this is a TAP or TUN port.
    pub fn as_tap(&self) -> Option<&TapConfig> {
        self.config()
    }
}
