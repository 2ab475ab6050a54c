//! The AF_PACKET device behind a [`Port`](crate::Port): an existing interface,
//! one packet socket per queue with its rx and tx rings mapped, the sockets of a
//! multi-queue port in one fanout group, statistics from `PACKET_STATISTICS`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use super::config::{Geometry, PacketConfig, Tpacket};
use super::queue::{slot, PacketQueue, Positions};
use super::ring::Ring;
use super::rx::{PacketRx, PacketRxV3};
use super::tx::PacketTx;
use crate::backend::kick::{self, Kicker};
use crate::device::{
    keep_fd, Device, DeviceConfig, DeviceInfo, DeviceKind, Lend, Offloads, Opened, OpenedDevice,
    PortOptions, PortSpec, QueueFd, Registry, TxOffload,
};
use crate::error::{Error, Result};
use crate::netlink::LinkInfo;
use crate::pool::{Pool, PoolConfig};
use crate::queue::engine::{EngineCtx, RxEngine, TxEngine};
use crate::queue::{Engine, Kick, QueueShared};
use crate::sys::fd as sysfd;
use crate::sys::packet::{self as sys, Mapping, RingReq};
use crate::wire::layout::Link;
use crate::wire::vnet::VNET_HDR_LEN;
use crate::xstats::XStat;

/// What lifts a refusal to open a packet socket.
const PACKET_PERMISSION: &str =
    "an AF_PACKET socket needs CAP_NET_RAW: run as root or grant it (setcap cap_net_raw+ep)";

/// What to do about an interface that is not there.
const NO_IFACE: &str = "an AF_PACKET port attaches to an interface that exists: check the name with `ip link` (and netns= if it lives in another namespace)";

/// An open AF_PACKET port's device.
pub(crate) struct PacketDevice {
    pub(super) cfg: PacketConfig,
    pub(super) geom: Geometry,
    /// The kick in effect (uring falls back to sendto, with the reason in the info).
    kick: Kick,
    /// The fanout group's id once the kernel picked it.
    fanout_id: Mutex<Option<u16>>,
    info: DeviceInfo,
}

/// Resolves the interface (in the calling thread's namespace) and checks the
/// kick, as `cfg` says. Runs in the port's namespace.
pub(crate) fn open(cfg: &PacketConfig) -> Result<OpenedDevice> {
    let (name, ifindex) = if cfg.iface.is_empty() {
        let idx = cfg.ifindex.unwrap_or(0);
        let name = crate::netlink::Netlink::open()
            .and_then(|nl| nl.get_link(idx))
            .map_err(|_| Error::NoSuchInterface {
                name: format!("ifindex {idx}"),
                hint: NO_IFACE,
            })?
            .name;
        (name, idx)
    } else {
        let idx = sysfd::if_nametoindex(&cfg.iface).ok_or_else(|| Error::NoSuchInterface {
            name: cfg.iface.clone(),
            hint: NO_IFACE,
        })?;
        (cfg.iface.clone(), idx)
    };
    Ok(OpenedDevice {
        dev: Arc::new(PacketDevice::new(cfg)?),
        iface: Opened { name, ifindex },
        attached: None,
    })
}

/// What `PACKET_VNET_HDR` carries: partial checksums and TCP segmentation
/// everywhere; UDP segmentation (`VIRTIO_NET_HDR_GSO_UDP_L4`) from Linux 6.2
/// (the kernel has no probe for it: before, it refuses such frames).
fn offloads(on: bool) -> (Offloads, Vec<String>) {
    if !on {
        return (Offloads::NONE, Vec::new());
    }
    match crate::sys::kernel_version() {
        Some(v) if v < (6, 2) => (
            Offloads::ALL.uso4(false).uso6(false),
            vec!["USO needs Linux >= 6.2 (virtio-net UDP_L4 in AF_PACKET): dropped".into()],
        ),
        _ => (Offloads::ALL, Vec::new()),
    }
}

/// `PACKET_VERSION` values (`enum tpacket_versions`).
const TPACKET_V2: libc::c_int = 1;
const TPACKET_V3: libc::c_int = 2;

fn sys_err(op: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::sys(op, e)
}

fn ring_err(e: std::io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOMEM) => {
            Error::sys("PACKET_RX_RING/TX_RING (out of memory: smaller rings?)", e)
        }
        _ => Error::sys("PACKET_RX_RING/TX_RING", e),
    }
}

fn vanished(iface: &Opened) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| match e.raw_os_error() {
        Some(libc::ENODEV) => Error::DeviceVanished {
            name: iface.name.clone(),
            ifindex: iface.ifindex,
        },
        _ => Error::sys("bind(AF_PACKET)", e),
    }
}

impl Engine {
    /// AF_PACKET: TPACKET rings mapped from the kernel, frames copied between
    /// the rings and pool buffers; the kernel walks the tx ring on a `kick`
    /// (`tpacket+sendto`, `tpacket+uring`).
    pub const fn tpacket(kick: Kick) -> Engine {
        Engine::kicked("tpacket", kick)
    }
}

/// `QueueBlock::dev_counts` slots: frames the kernel dropped because the rx
/// ring was full (`tp_drops`), and (TPACKET_V3) times the ring froze on a
/// block the user still held.
const RING_DROPS: usize = 0;
const RING_FREEZES: usize = 1;

impl PacketDevice {
    /// The device of a port on rings laid out as `cfg` says, its kick chosen
    /// (no interface lookup: `open` does that, and a process the port is
    /// served to gets its sockets bound).
    pub(super) fn new(cfg: &PacketConfig) -> Result<PacketDevice> {
        let geom = cfg.geometry()?;
        let (kick, engine_reason) = kick::choose(cfg.kick, cfg.sqpoll);
        let (offloads, offload_notes) = offloads(cfg.offload);
        let info = DeviceInfo {
            kind: DeviceKind::PACKET,
            link: Link::Ethernet,
            created: false,
            controls_link: true,
            offloads,
            offload_notes,
            tx_offload: TxOffload::vnet(offloads.csum),
            engine: Engine::tpacket(kick),
            engine_reason,
            tx_engine: tx_engine_name(cfg, &geom, kick),
            tx_through_qdisc: !cfg.qdisc_bypass,
            sqpoll: match kick {
                Kick::Uring => Some(cfg.sqpoll),
                Kick::Sendto => None,
            },
            max_buffer: None,
        };
        Ok(PacketDevice {
            cfg: cfg.clone(),
            geom,
            kick,
            fanout_id: Mutex::new(None),
            info,
        })
    }

    fn vnet_len(&self) -> usize {
        if self.cfg.offload {
            VNET_HDR_LEN
        } else {
            0
        }
    }

    /// Ring request of this port's geometry (V3: with its block timeout).
    fn ring_req(&self, v3_tov: Option<u32>) -> RingReq {
        RingReq {
            block_size: self.geom.block_size,
            block_nr: self.geom.blocks(),
            frame_size: self.geom.frame_size,
            frame_nr: self.geom.frame_count,
            v3_retire_ms: v3_tov,
        }
    }

    /// The options every socket of the port gets, set before its rings exist:
    /// the TPACKET version, the virtio-net header if `vnet`, qdisc bypass.
    fn prepare(&self, fd: BorrowedFd<'_>, version: libc::c_int, vnet: bool) -> Result<()> {
        sys::set_packet_int(fd, libc::PACKET_VERSION, version)
            .map_err(sys_err("PACKET_VERSION"))?;
        if vnet {
            sys::set_packet_int(fd, libc::PACKET_VNET_HDR, 1).map_err(|e| {
                if e.raw_os_error() == Some(libc::ENOPROTOOPT) {
                    Error::Unsupported {
                        feature: "PACKET_VNET_HDR",
                        hint: "this kernel's AF_PACKET has no virtio-net header: use offload=off",
                    }
                } else {
                    Error::sys("PACKET_VNET_HDR", e)
                }
            })?;
        }
        if self.cfg.qdisc_bypass {
            sys::set_packet_int(fd, libc::PACKET_QDISC_BYPASS, 1)
                .map_err(sys_err("PACKET_QDISC_BYPASS"))?;
        }
        Ok(())
    }

    /// A tx socket with its ring mapped, bound to the interface: TPACKET_V2
    /// whatever the rx ring's version, protocol 0 (it receives nothing), and
    /// always with the virtio-net header, whose `hdr_len` lets the tx engine
    /// have small frames copied whole into their skb (see tx.rs) even when
    /// offloads are off. Each queue has one; a process the port is shared with
    /// gets one of its own (a fresh ring: the kernel's place in a tx ring
    /// cannot be read back, so a ring is never handed between processes).
    pub(super) fn tx_socket(&self, iface: &Opened) -> Result<(OwnedFd, Arc<Mapping>)> {
        let t = socket()?;
        self.prepare(t.as_fd(), TPACKET_V2, true)?;
        sys::set_ring(t.as_fd(), true, &self.ring_req(None)).map_err(ring_err)?;
        let bytes = self.geom.ring_bytes();
        let tx_map = Arc::new(Mapping::new(t.as_fd(), bytes).map_err(sys_err("mmap tx ring"))?);
        sys::set_sndbuf(t.as_fd(), self.sndbuf()).map_err(sys_err("SO_SNDBUF"))?;
        sys::bind(t.as_fd(), iface.ifindex, 0).map_err(vanished(iface))?;
        Ok((t, tx_map))
    }

    /// Socket buffer for a tx ring: every slot in flight, with the kernel's
    /// per-skb overhead.
    fn sndbuf(&self) -> usize {
        self.geom.frame_count as usize * (self.geom.frame_size as usize + 1024)
    }

    pub(super) fn packet_queue<'a>(&self, q: &'a QueueShared) -> Option<&'a PacketQueue> {
        q.extra.as_ref()?.downcast_ref::<PacketQueue>()
    }

    /// Reads a queue's kernel statistics (which clear on read) into its shared
    /// counter block, where every process running the queue adds what it read
    /// ([`RING_DROPS`], [`RING_FREEZES`]).
    fn refresh(&self, q: &QueueShared) {
        let Some(pq) = self.packet_queue(q) else {
            return;
        };
        if let Ok((_, drops, freezes)) = sys::statistics(q.fd.as_fd(), pq.v3) {
            q.with_current(|b| {
                b.dev_counts[RING_DROPS].fetch_add(u64::from(drops), Relaxed);
                b.dev_counts[RING_FREEZES].fetch_add(u64::from(freezes), Relaxed);
            });
        }
    }
}

impl Device for PacketDevice {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn open_queue(&self, iface: &Opened, _id: u16) -> Result<QueueFd> {
        let bytes = self.geom.ring_bytes();
        // The rx socket: created with protocol 0, so it receives nothing until it
        // is bound to the interface with its ring in place.
        let sock = socket()?;
        let fd = sock.as_fd();
        let (version, tov) = match self.cfg.tpacket {
            Tpacket::V3 { block_timeout_ms } => (TPACKET_V3, Some(block_timeout_ms)),
            Tpacket::V2 => (TPACKET_V2, None),
        };
        self.prepare(fd, version, self.cfg.offload)?;
        // Frames this host sends itself are not input (best effort: before 6.2
        // the kernel ignores it inside a fanout group; the rx engine skips them).
        let _ = sys::set_packet_int(fd, libc::PACKET_IGNORE_OUTGOING, 1);
        sys::set_ring(fd, false, &self.ring_req(tov)).map_err(ring_err)?;
        let rx_map = Arc::new(Mapping::new(fd, bytes).map_err(sys_err("mmap rx ring"))?);
        let (t, tx_map) = self.tx_socket(iface)?;
        sys::bind(fd, iface.ifindex, libc::ETH_P_ALL as u16).map_err(vanished(iface))?;
        let pq = PacketQueue {
            rx: Ring::new(rx_map, 0, self.geom),
            tx: Ring::new(tx_map, 0, self.geom),
            tx_sock: t,
            v3: version == TPACKET_V3,
            fanned: AtomicBool::new(false),
            saved: Mutex::new(Positions::default()),
        };
        Ok(QueueFd {
            fd: sock,
            extra: Some(Arc::new(pq)),
            release: keep_fd,
        })
    }

    /// Joins every queue's socket into one fanout group (more than one queue):
    /// the first asks the kernel for an unused id, the others join it.
    fn start(&self, queues: &[Arc<QueueShared>]) -> Result<()> {
        for q in queues {
            // Bound while the link was down, a socket holds ENETDOWN as its pending
            // error, which would fail its first send: the link is up now.
            let _ = sys::take_error(q.fd.as_fd());
            if let Some(pq) = self.packet_queue(q) {
                let _ = sys::take_error(pq.tx_sock.as_fd());
            }
        }
        if queues.len() < 2 {
            return Ok(());
        }
        let f = &self.cfg.fanout;
        let mut flags = 0;
        if f.defrag {
            flags |= libc::PACKET_FANOUT_FLAG_DEFRAG;
        }
        if f.rollover {
            flags |= libc::PACKET_FANOUT_FLAG_ROLLOVER;
        }
        let type_flags = f.mode.kernel_type() | flags;
        let mut id = self.fanout_id.lock().unwrap_or_else(|e| e.into_inner());
        let fanned = |q: &Arc<QueueShared>| {
            self.packet_queue(q)
                .is_some_and(|pq| pq.fanned.load(Relaxed))
        };
        if !queues.iter().any(fanned) {
            // The group died with its last member: its id may be someone else's now.
            *id = None;
        }
        for q in queues {
            let Some(pq) = self.packet_queue(q) else {
                continue;
            };
            if pq.fanned.load(Relaxed) {
                continue;
            }
            let fd = q.fd.as_fd();
            let join = |v: u32| sys::set_packet_int(fd, libc::PACKET_FANOUT, v as libc::c_int);
            let r = match *id {
                Some(gid) => join(u32::from(gid) | (type_flags << 16)),
                None => {
                    join((type_flags | libc::PACKET_FANOUT_FLAG_UNIQUEID) << 16).and_then(|()| {
                        let v = sys::get_packet_int(fd, libc::PACKET_FANOUT)?;
                        *id = Some((v & 0xffff) as u16);
                        Ok(())
                    })
                }
            };
            r.map_err(|e| match e.raw_os_error() {
                Some(libc::EINVAL) => Error::Unsupported {
                    feature: "PACKET_FANOUT (this mode, or an interface that is not up)",
                    hint: "bring the interface up; use fanout=hash",
                },
                _ => Error::sys("PACKET_FANOUT", e),
            })?;
            pq.fanned.store(true, Relaxed);
        }
        Ok(())
    }

    /// On every queue's rx socket (`SO_ATTACH_FILTER`): frames the program
    /// drops never reach the ring.
    fn attach_filter(
        &self,
        queues: &[Arc<QueueShared>],
        prog: Option<&crate::capture::bpf::Program>,
    ) -> Result<crate::capture::FilterPlace> {
        let raw: Vec<libc::sock_filter> = prog
            .map(|p| {
                p.insns()
                    .iter()
                    .map(|i| libc::sock_filter {
                        code: i.code,
                        jt: i.jt,
                        jf: i.jf,
                        k: i.k,
                    })
                    .collect()
            })
            .unwrap_or_default();
        for q in queues {
            let r = match prog {
                Some(_) => sys::attach_filter(q.fd.as_fd(), &raw),
                None => match sys::detach_filter(q.fd.as_fd()) {
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
                    r => r,
                },
            };
            r.map_err(|e| Error::sys("SO_ATTACH_FILTER", e))?;
        }
        Ok(match prog {
            Some(_) => crate::capture::FilterPlace::Kernel,
            None => crate::capture::FilterPlace::Removed,
        })
    }

    fn missed(&self, _link: &LinkInfo, queues: &[Arc<QueueShared>]) -> u64 {
        queues
            .iter()
            .map(|q| {
                self.refresh(q);
                q.totals().dev_counts[RING_DROPS].load(Relaxed)
            })
            .sum()
    }

    fn queue_buffers(&self, _pool: &PoolConfig, _max_frame: usize) -> usize {
        // Frames are copied between the rings and pool buffers: the queue holds
        // no buffer beyond the burst on its way.
        0
    }

    fn rx_engine_name(&self, _pool: &PoolConfig, _max_frame: usize) -> String {
        let slots = format!(
            "{} slots of {} bytes, copied into pool buffers",
            self.geom.frame_count, self.geom.frame_size
        );
        match self.cfg.tpacket {
            Tpacket::V2 => format!("TPACKET_V2 ring ({slots})"),
            Tpacket::V3 { block_timeout_ms } => format!(
                "TPACKET_V3 ring ({} blocks of {} bytes, retired after {} ms)",
                self.geom.blocks(),
                self.geom.block_size,
                if block_timeout_ms == 0 {
                    "the kernel's".to_string()
                } else {
                    block_timeout_ms.to_string()
                }
            ),
        }
    }

    fn rx_engine(&self, ctx: &EngineCtx, pool: &Pool) -> Result<Box<dyn RxEngine>> {
        let pq = queue_state(ctx)?;
        Ok(if pq.v3 {
            Box::new(PacketRxV3::new(
                pq,
                pool,
                self.vnet_len(),
                ctx.block.clone(),
            ))
        } else {
            Box::new(PacketRx::new(pq, pool, self.vnet_len(), ctx.block.clone()))
        })
    }

    fn tx_engine(&self, ctx: &EngineCtx) -> Result<Box<dyn TxEngine>> {
        let pq = queue_state(ctx)?;
        // Queues that roam between threads kick with send(): the io_uring
        // kick's ring has a single issuer.
        let kick = if ctx.roaming { Kick::Sendto } else { self.kick };
        let kicker = Kicker::new_or_sendto(
            kick,
            pq.tx_sock.as_raw_fd(),
            self.cfg.sq_size,
            self.cfg.sqpoll,
            ctx.sq_attach,
            &ctx.block.kick,
        );
        // Without offloads the kernel checks no frame against the MTU (the tx
        // socket has the virtio-net header): the engine does, as of now.
        let max_len = (!self.cfg.offload).then_some(ctx.max_frame);
        Ok(Box::new(PacketTx::new(
            pq,
            kicker,
            ctx.block.clone(),
            max_len,
        )))
    }

    fn extra_xstats(&self, q: &QueueShared, out: &mut Vec<XStat>) {
        if self.packet_queue(q).is_none() {
            return;
        }
        self.refresh(q);
        // Whoever runs the queue: this process, or one it is lent to.
        let t = q.totals();
        let (d, k) = (&t.dev_x, &t.kick);
        let id = q.id;
        for (dir, name, v) in [
            ("rx", "ring_drops", &t.dev_counts[RING_DROPS]),
            ("rx", "ring_freezes", &t.dev_counts[RING_FREEZES]),
            ("rx", "outgoing_skipped", &d[slot::OUTGOING]),
            ("rx", "corrupt_headers", &d[slot::CORRUPT]),
            ("rx", "sw_csum", &d[slot::SW_CSUM]),
            ("tx", "kicks", &k.kicks),
            ("tx", "sq_wakeups", &k.sq_wakeups),
            ("tx", "kick_eagain", &k.kick_eagain),
            ("tx", "kick_errors", &k.kick_errors),
            ("tx", "kick_fallbacks", &k.fallbacks),
            ("tx", "ring_full", &d[slot::RING_FULL]),
            ("tx", "wrong_format", &d[slot::WRONG_FORMAT]),
            ("tx", "oversized", &d[slot::OVERSIZED]),
        ] {
            out.push(XStat {
                name: format!("{dir}_q{id}_{name}"),
                value: v.load(Relaxed),
            });
        }
    }

    #[cfg(all(feature = "mt", feature = "tokio"))]
    fn roaming(&self) -> std::result::Result<(), &'static str> {
        // Rings, counters and saved positions are shared memory and atomics;
        // roaming tx queues kick with send() (see tx_engine).
        Ok(())
    }

    fn lend(&self) -> std::result::Result<&dyn Lend, &'static str> {
        Ok(self)
    }
}

/// The tx engine in words.
fn tx_engine_name(cfg: &PacketConfig, geom: &Geometry, kick: Kick) -> String {
    let kick = match kick {
        Kick::Uring => {
            let sp = cfg.sqpoll;
            format!(
                "kick: io_uring send from the process's SQPOLL thread (idle {} ms{}, {} SQ entries)",
                sp.idle_ms,
                sp.cpu.map(|c| format!(", CPU {c}")).unwrap_or_default(),
                cfg.sq_size
            )
        }
        Kick::Sendto => "kick: send() per burst".into(),
    };
    format!(
        "TPACKET_V2 ring ({} slots of {} bytes{}), {kick}",
        geom.frame_count,
        geom.frame_size,
        if cfg.qdisc_bypass {
            ", qdisc bypassed"
        } else {
            ""
        }
    )
}

/// A packet socket that receives nothing until bound with a protocol.
fn socket() -> Result<OwnedFd> {
    sys::socket(0).map_err(|e| Error::sys_or("socket(AF_PACKET)", PACKET_PERMISSION, e))
}

fn queue_state(ctx: &EngineCtx) -> Result<Arc<PacketQueue>> {
    ctx.extra
        .clone()
        .and_then(|e| e.downcast::<PacketQueue>().ok())
        .ok_or(Error::Unsupported {
            feature: "packet queue",
            hint: "the queue was not opened by a packet port",
        })
}

impl DeviceConfig for PacketConfig {
    fn kind(&self) -> DeviceKind {
        DeviceKind::PACKET
    }

    fn options(&self) -> &PortOptions {
        &self.port
    }

    fn options_mut(&mut self) -> &mut PortOptions {
        &mut self.port
    }

    fn validate(&self) -> Result<()> {
        PacketConfig::validate(self)
    }

    fn open(&self, _reg: &Registry) -> Result<OpenedDevice> {
        open(self)
    }
}

impl From<PacketConfig> for PortSpec {
    fn from(c: PacketConfig) -> PortSpec {
        PortSpec::new(c)
    }
}

impl PortSpec {
    /// The AF_PACKET configuration, if this is a packet port.
    pub fn as_packet(&self) -> Option<&PacketConfig> {
        self.config()
    }
}
