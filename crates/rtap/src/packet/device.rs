//! The AF_PACKET device behind a [`Port`](crate::Port): an existing interface,
//! one packet socket per queue with its rx and tx rings mapped, the sockets of a
//! multi-queue port in one fanout group, statistics from `PACKET_STATISTICS`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use super::config::{Geometry, Kick, PacketConfig, Tpacket};
use super::ring::Ring;
use super::rx::{PacketRx, PacketRxV3};
use super::tx::{Kicker, PacketTx};
use crate::backend::uring::{self, RingConfig, SqPoll};
use crate::backend::BackendKind;
use crate::error::{Error, Result};
use crate::netlink::LinkInfo;
use crate::pool::{Pool, PoolConfig};
use crate::port::device::{Device, EngineCtx, Opened, QueueFd};
use crate::port::Offloads;
use crate::queue::engine::{RxEngine, TxEngine};
use crate::queue::QueueShared;
use crate::sys::fd as sysfd;
use crate::sys::packet::{self as sys, Mapping, RingReq};
use crate::wire::vnet::VNET_HDR_LEN;
use crate::xstats::XStat;

/// Counters a queue's engines and the device keep besides the common ones.
/// Each has one writer (the engine, or the control thread reading the kernel's
/// statistics, whose reads clear them and are added here).
#[derive(Debug, Default)]
pub(crate) struct QueueCounters {
    /// Frames the kernel dropped because the rx ring was full (`tp_drops`).
    pub ring_drops: AtomicU64,
    /// TPACKET_V3: times the rx ring froze on a block the user still held.
    pub freezes: AtomicU64,
    /// Rx frames this host sent out of the interface (`PACKET_OUTGOING`), skipped.
    pub outgoing: AtomicU64,
    /// Rx frame headers whose offsets or lengths point outside their slot or
    /// block (a corrupt ring), counted as rx errors; a V3 block ends there.
    pub corrupt: AtomicU64,
    /// Rx frames whose partial checksum rtap completed in software.
    pub sw_csum: AtomicU64,
    /// Tx ring walks requested (a `send()` or an io_uring send).
    pub kicks: AtomicU64,
    /// io_uring kicks that had to wake the sleeping SQ thread (a syscall).
    pub sq_wakeups: AtomicU64,
    /// Kicks the kernel answered with `EAGAIN` (socket send buffer full).
    pub kick_eagain: AtomicU64,
    /// Kicks that failed otherwise (`ENOBUFS`: the device dropped a frame,
    /// which the kernel re-arms; `ENETDOWN`; ...).
    pub kick_errors: AtomicU64,
    /// Bursts that found the tx ring full.
    pub ring_full: AtomicU64,
    /// Tx frames the kernel refused (`TP_STATUS_WRONG_FORMAT`), counted as tx errors.
    pub wrong_format: AtomicU64,
    /// Tx frames larger than a slot, refused before the ring (counted as tx errors).
    pub oversized: AtomicU64,
}

impl QueueCounters {
    /// Adds `n` to a counter this thread alone writes.
    pub fn add(c: &AtomicU64, n: u64) {
        if n != 0 {
            c.store(c.load(Relaxed) + n, Relaxed);
        }
    }
}

/// One queue of a packet port: its sockets' rings and counters.
pub(crate) struct PacketQueue {
    pub rx: Ring,
    pub tx: Ring,
    /// The socket whose tx ring this queue sends from (the queue's fd is the
    /// rx socket): TPACKET_V2, protocol 0, virtio-net header always on.
    pub tx_sock: OwnedFd,
    pub v3: bool,
    pub counters: QueueCounters,
    /// Joined the port's fanout group.
    fanned: AtomicBool,
    /// Where the last engines stopped: the kernel walks each ring from where it
    /// left off, so a queue taken again resumes there.
    pub saved: Mutex<Positions>,
}

/// Tx ring positions an engine resumes from (see [`PacketQueue::saved`]; the rx
/// ring's position lives in the queue's shared counter block, as every process
/// running the queue reads that ring).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Positions {
    /// Tx: oldest slot not yet reaped, the next slot to fill, and the slots
    /// between (all of them when the ring is full: head == tail then too).
    pub tx_head: u32,
    pub tx_tail: u32,
    pub tx_pending: u32,
}

/// An open AF_PACKET port's device.
pub(crate) struct PacketDevice {
    cfg: PacketConfig,
    geom: Geometry,
    /// The kick in effect (uring falls back to sendto, with the reason).
    kick: Kick,
    kick_reason: Option<String>,
    /// The fanout group's id once the kernel picked it.
    fanout_id: Mutex<Option<u16>>,
    /// The offloads the virtio-net header carries on this kernel, and why any
    /// are missing.
    offloads: Offloads,
    offload_notes: Vec<String>,
}

/// Resolves the interface (in the calling thread's namespace) and checks the
/// kick, as `cfg` says. Runs in the port's namespace.
pub(crate) fn open(cfg: &PacketConfig) -> Result<(PacketDevice, Opened)> {
    let geom = cfg.geometry()?;
    let (name, ifindex) = if cfg.iface.is_empty() {
        let idx = cfg.ifindex.unwrap_or(0);
        let name = crate::netlink::Netlink::open()
            .and_then(|nl| nl.get_link(idx))
            .map_err(|_| Error::NoSuchInterface {
                name: format!("ifindex {idx}"),
            })?
            .name;
        (name, idx)
    } else {
        let idx = sysfd::if_nametoindex(&cfg.iface).ok_or_else(|| Error::NoSuchInterface {
            name: cfg.iface.clone(),
        })?;
        (cfg.iface.clone(), idx)
    };
    let (kick, kick_reason) = choose_kick(cfg);
    let (offloads, offload_notes) = offloads(cfg.offload);
    let dev = PacketDevice {
        cfg: cfg.clone(),
        geom,
        kick,
        kick_reason,
        fanout_id: Mutex::new(None),
        offloads,
        offload_notes,
    };
    Ok((dev, Opened { name, ifindex }))
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

/// The uring kick needs io_uring and an SQPOLL thread; without either, sendto.
fn choose_kick(cfg: &PacketConfig) -> (Kick, Option<String>) {
    if cfg.kick == Kick::Sendto {
        return (Kick::Sendto, None);
    }
    if let Err(why) = uring::check_available() {
        let why = format!("io_uring unavailable ({why}): kick=sendto");
        tracing::warn!("packet port: {why}");
        return (Kick::Sendto, Some(why));
    }
    match uring::SqAnchor::shared(cfg.sqpoll) {
        Some(_) => (Kick::Uring, None),
        None => {
            let why = "SQPOLL refused (an unprivileged user before Linux 5.11, or a seccomp/LSM policy): kick=sendto".to_string();
            tracing::warn!("packet port: {why}");
            (Kick::Sendto, Some(why))
        }
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

impl PacketDevice {
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
    fn tx_socket(&self, iface: &Opened) -> Result<(OwnedFd, Arc<Mapping>)> {
        let t = sys::socket(0).map_err(|e| Error::sys("socket(AF_PACKET)", e))?;
        self.prepare(t.as_fd(), TPACKET_V2, true)?;
        sys::set_ring(t.as_fd(), true, &self.ring_req(None)).map_err(ring_err)?;
        let bytes = self.geom.ring_bytes();
        let tx_map = Arc::new(Mapping::new(t.as_fd(), bytes).map_err(sys_err("mmap tx ring"))?);
        sys::set_sndbuf(t.as_fd(), self.sndbuf()).map_err(sys_err("SO_SNDBUF"))?;
        sys::bind(t.as_fd(), iface.ifindex, 0).map_err(vanished(iface))?;
        Ok((t, tx_map))
    }

    /// The device of a port attached to another process's packet port, whose
    /// rings are laid out as `cfg` says (no interface lookup: the sockets come
    /// bound).
    pub(crate) fn attached(cfg: &PacketConfig) -> Result<PacketDevice> {
        let geom = cfg.geometry()?;
        let (kick, kick_reason) = choose_kick(cfg);
        let (offloads, offload_notes) = offloads(cfg.offload);
        Ok(PacketDevice {
            cfg: cfg.clone(),
            geom,
            kick,
            kick_reason,
            fanout_id: Mutex::new(None),
            offloads,
            offload_notes,
        })
    }

    /// A queue from sockets another process made: its bound rx socket (in the
    /// port's fanout group, ring set up) and a tx socket made for this process;
    /// both rings mapped here.
    pub(crate) fn queue_from_fds(&self, rx: OwnedFd, tx: OwnedFd) -> Result<QueueFd> {
        let bytes = self.geom.ring_bytes();
        let rx_map = Arc::new(Mapping::new(rx.as_fd(), bytes).map_err(sys_err("mmap rx ring"))?);
        let tx_map = Arc::new(Mapping::new(tx.as_fd(), bytes).map_err(sys_err("mmap tx ring"))?);
        let pq = PacketQueue {
            rx: Ring::new(rx_map, 0, self.geom),
            tx: Ring::new(tx_map, 0, self.geom),
            tx_sock: tx,
            v3: matches!(self.cfg.tpacket, Tpacket::V3 { .. }),
            counters: QueueCounters::default(),
            fanned: AtomicBool::new(true),
            saved: Mutex::new(Positions::default()),
        };
        Ok(QueueFd {
            fd: rx,
            extra: Some(Arc::new(pq)),
        })
    }

    /// Socket buffer for a tx ring: every slot in flight, with the kernel's
    /// per-skb overhead.
    fn sndbuf(&self) -> usize {
        self.geom.frame_count as usize * (self.geom.frame_size as usize + 1024)
    }

    fn counters<'a>(&self, q: &'a QueueShared) -> Option<&'a PacketQueue> {
        q.extra.as_ref()?.downcast_ref::<PacketQueue>()
    }

    /// Reads a queue's kernel statistics (which clear on read) into its counters.
    fn refresh(&self, q: &QueueShared) {
        let Some(pq) = self.counters(q) else { return };
        if let Ok((_, drops, freezes)) = sys::statistics(q.fd.as_fd(), pq.v3) {
            pq.counters.ring_drops.fetch_add(u64::from(drops), Relaxed);
            pq.counters.freezes.fetch_add(u64::from(freezes), Relaxed);
        }
    }
}

impl Device for PacketDevice {
    fn kind(&self) -> &'static str {
        "packet"
    }

    fn created(&self) -> bool {
        false
    }

    fn offloads(&self) -> Offloads {
        self.offloads
    }

    fn offload_notes(&self) -> &[String] {
        &self.offload_notes
    }

    fn backend(&self) -> BackendKind {
        match self.kick {
            Kick::Uring => BackendKind::Uring,
            Kick::Sendto => BackendKind::Rw,
        }
    }

    fn backend_reason(&self) -> Option<&str> {
        self.kick_reason.as_deref()
    }

    fn sqpoll(&self) -> Option<SqPoll> {
        (self.kick == Kick::Uring).then_some(self.cfg.sqpoll)
    }

    fn open_queue(&self, iface: &Opened, _id: u16) -> Result<QueueFd> {
        let bytes = self.geom.ring_bytes();
        // The rx socket: created with protocol 0, so it receives nothing until it
        // is bound to the interface with its ring in place.
        let sock = sys::socket(0).map_err(|e| Error::sys("socket(AF_PACKET)", e))?;
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
            counters: QueueCounters::default(),
            fanned: AtomicBool::new(false),
            saved: Mutex::new(Positions::default()),
        };
        Ok(QueueFd {
            fd: sock,
            extra: Some(Arc::new(pq)),
        })
    }

    fn release_queue(&self) -> fn(BorrowedFd<'_>) {
        |_| {}
    }

    /// Joins every queue's socket into one fanout group (more than one queue):
    /// the first asks the kernel for an unused id, the others join it.
    fn start(&self, queues: &[Arc<QueueShared>]) -> Result<()> {
        for q in queues {
            // Bound while the link was down, a socket holds ENETDOWN as its pending
            // error, which would fail its first send: the link is up now.
            let _ = sys::take_error(q.fd.as_fd());
            if let Some(pq) = self.counters(q) {
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
        let fanned =
            |q: &Arc<QueueShared>| self.counters(q).is_some_and(|pq| pq.fanned.load(Relaxed));
        if !queues.iter().any(fanned) {
            // The group died with its last member: its id may be someone else's now.
            *id = None;
        }
        for q in queues {
            let Some(pq) = self.counters(q) else { continue };
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

    fn tx_through_qdisc(&self) -> bool {
        !self.cfg.qdisc_bypass
    }

    fn tx_engine_name(&self) -> String {
        let kick = match self.kick {
            Kick::Uring => {
                let sp = self.cfg.sqpoll;
                format!(
                    "kick: io_uring send from the process's SQPOLL thread (idle {} ms{}, {} SQ entries)",
                    sp.idle_ms,
                    sp.cpu.map(|c| format!(", CPU {c}")).unwrap_or_default(),
                    self.cfg.sq_size
                )
            }
            Kick::Sendto => "kick: send() per burst".into(),
        };
        format!(
            "TPACKET_V2 ring ({} slots of {} bytes{}), {kick}",
            self.geom.frame_count,
            self.geom.frame_size,
            if self.cfg.qdisc_bypass {
                ", qdisc bypassed"
            } else {
                ""
            }
        )
    }

    fn max_frame(&self, mtu: u32) -> usize {
        mtu as usize + 18
    }

    fn missed(&self, _link: &LinkInfo, queues: &[Arc<QueueShared>]) -> u64 {
        queues
            .iter()
            .map(|q| {
                self.refresh(q);
                self.counters(q)
                    .map_or(0, |pq| pq.counters.ring_drops.load(Relaxed))
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
        let kicker = match self.kick {
            Kick::Sendto => Kicker::sendto(),
            Kick::Uring => {
                let ring = RingConfig::default()
                    .tx_entries(self.cfg.sq_size)
                    .sqpoll(Some(self.cfg.sqpoll));
                Kicker::uring(pq.tx_sock.as_raw_fd(), &ring, ctx.sq_attach)?
            }
        };
        // Without offloads the kernel checks no frame against the MTU (the tx
        // socket has the virtio-net header): the engine does, as of now.
        let max_len = (!self.cfg.offload).then_some(ctx.max_frame);
        Ok(Box::new(PacketTx::new(pq, kicker, max_len)))
    }

    /// The queue's rx socket (its ring, in the fanout group) and a new tx
    /// socket for the other process.
    fn share_fds(&self, iface: &Opened, q: &QueueShared) -> Result<Vec<OwnedFd>> {
        let rx =
            q.fd.as_fd()
                .try_clone_to_owned()
                .map_err(|e| Error::sys("dup queue fd", e))?;
        let (tx, _map) = self.tx_socket(iface)?;
        Ok(vec![rx, tx])
    }

    fn share_desc(&self) -> Vec<(&'static str, String)> {
        let (tp, tov) = match self.cfg.tpacket {
            Tpacket::V2 => (2, 0),
            Tpacket::V3 { block_timeout_ms } => (3, block_timeout_ms),
        };
        vec![
            ("frame_size", self.geom.frame_size.to_string()),
            ("frames", self.geom.frame_count.to_string()),
            ("block_size", self.geom.block_size.to_string()),
            ("tpacket", tp.to_string()),
            ("block_timeout", tov.to_string()),
            ("offload", u8::from(self.cfg.offload).to_string()),
            ("qdisc_bypass", u8::from(self.cfg.qdisc_bypass).to_string()),
        ]
    }

    fn extra_xstats(&self, q: &QueueShared, out: &mut Vec<XStat>) {
        let Some(pq) = self.counters(q) else { return };
        self.refresh(q);
        let c = &pq.counters;
        let id = q.id;
        for (dir, name, v) in [
            ("rx", "ring_drops", &c.ring_drops),
            ("rx", "ring_freezes", &c.freezes),
            ("rx", "outgoing_skipped", &c.outgoing),
            ("rx", "corrupt_headers", &c.corrupt),
            ("rx", "sw_csum", &c.sw_csum),
            ("tx", "kicks", &c.kicks),
            ("tx", "sq_wakeups", &c.sq_wakeups),
            ("tx", "kick_eagain", &c.kick_eagain),
            ("tx", "kick_errors", &c.kick_errors),
            ("tx", "ring_full", &c.ring_full),
            ("tx", "wrong_format", &c.wrong_format),
            ("tx", "oversized", &c.oversized),
        ] {
            out.push(XStat {
                name: format!("{dir}_q{id}_{name}"),
                value: v.load(Relaxed),
            });
        }
    }
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
