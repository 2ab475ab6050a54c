//! The attaching side: a port whose queues another process serves. Its device
//! connects, asks for queues, and receives their fds, the counter memory and
//! (when the interface lives in another namespace) that namespace; the queue
//! layer and the engines then run on those fds as on any tap's.
//!
//! The connection stays open for the port's lifetime: closing it (the port
//! dropped, the process exiting or killed) gives the queues back.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};

use super::config::SharedConfig;
use super::proto::{Msg, QueueHolder, MAX_MSG, VERSION};
use crate::backend::uring::{RingConfig, SqPoll};
use crate::backend::{self, BackendKind};
use crate::error::{Error, Result};
use crate::netlink::LinkInfo;
use crate::pool::{Pool, PoolConfig};
use crate::port::device::{Device, EngineCtx, Opened, QueueFd};
use crate::port::Offloads;
use crate::queue::counters::CounterMem;
use crate::queue::engine::{RxEngine, TxEngine};
use crate::queue::QueueShared;
use crate::sys::unix;
use crate::wire::vnet::VNET_HDR_LEN;

/// A port attached to another process's.
pub(crate) struct SharedDevice {
    /// Holding it open holds the queues.
    _conn: OwnedFd,
    /// The served queues' numbers, in local order.
    primary: Vec<u16>,
    /// Each queue's fds as received (one for a tap queue; rx and tx sockets
    /// for an AF_PACKET queue), taken when the port opens the queue.
    fds: Mutex<Vec<Option<Vec<OwnedFd>>>>,
    counters: Arc<CounterMem>,
    netns: Mutex<Option<OwnedFd>>,
    offloads: Offloads,
    backend: BackendKind,
    backend_reason: Option<String>,
    ring: RingConfig,
    /// For an AF_PACKET port: its device, laid out as the serving port's, whose
    /// engines run the queues here.
    packet: Option<crate::packet::device::PacketDevice>,
    /// What frames start with (IP on a served TUN).
    link: crate::wire::layout::Link,
}

/// Ethernet header and one VLAN tag on top of the MTU (as for a tap).
const L2_OVERHEAD: usize = 18;

fn connect(name: &str) -> Result<OwnedFd> {
    unix::connect(name).map_err(|e| Error::ShareUnavailable {
        name: name.into(),
        why: e.to_string(),
    })
}

/// One request, one reply (with its fds).
fn ask(conn: BorrowedFd<'_>, name: &str, req: &Msg) -> Result<(Msg, Vec<OwnedFd>)> {
    let io = |e: std::io::Error| Error::ShareUnavailable {
        name: name.into(),
        why: e.to_string(),
    };
    unix::send(conn, &req.encode(), &[]).map_err(io)?;
    let mut buf = vec![0u8; MAX_MSG];
    let (n, fds) = unix::recv(conn, &mut buf).map_err(io)?;
    if n == 0 {
        return Err(Error::ShareRefused {
            name: name.into(),
            why: "the server closed the connection".into(),
        });
    }
    let refused = |why: String| Error::ShareRefused {
        name: name.into(),
        why,
    };
    let m = Msg::decode(&buf[..n]).ok_or_else(|| refused("a malformed reply".into()))?;
    if m.verb == "err" {
        let text = m.get("text").unwrap_or("").to_string();
        return Err(match m.get("code") {
            Some("busy") => Error::SharedQueueTaken {
                queue: text
                    .split_whitespace()
                    .nth(1)
                    .and_then(|q| q.parse().ok())
                    .unwrap_or(0),
                holder: text,
            },
            Some("nosuch") => Error::InvalidConfig {
                field: "queues",
                why: text,
            },
            _ => refused(text),
        });
    }
    if m.get("v").and_then(|v| v.parse::<u32>().ok()) != Some(VERSION) {
        return Err(refused(format!(
            "the server speaks protocol version {:?}, this library {VERSION}",
            m.get("v")
        )));
    }
    Ok((m, fds))
}

/// Who holds each queue of the port served at `name`, without attaching.
pub fn status(name: &str) -> Result<Vec<QueueHolder>> {
    let conn = connect(name)?;
    let (m, _) = ask(conn.as_fd(), name, &Msg::new("status"))?;
    let n: usize = m.get("queues").and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok((0..n)
        .map(|q| {
            m.get(&format!("q{q}"))
                .and_then(|h| h.parse().ok())
                .unwrap_or(QueueHolder::Free)
        })
        .collect())
}

/// The AF_PACKET device the serving port's ring geometry describes (kick by
/// `sendto`: this process has no SQPOLL setting of its own to share).
fn packet_device(m: &Msg) -> Result<crate::packet::device::PacketDevice> {
    use crate::packet::{PacketConfig, Tpacket};
    let num = |k: &str| -> Result<u32> {
        m.get(k)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::InvalidConfig {
                field: "packet",
                why: format!("the server sent no {k}"),
            })
    };
    let tpacket = match num("tpacket")? {
        3 => Tpacket::V3 {
            block_timeout_ms: num("block_timeout")?,
        },
        _ => Tpacket::V2,
    };
    let cfg = PacketConfig::new("")
        .frame_size(num("frame_size")?)
        .frame_count(num("frames")?)
        .block_size(num("block_size")?)
        .tpacket(tpacket)
        .offload(num("offload")? == 1)
        .qdisc_bypass(num("qdisc_bypass")? == 1);
    crate::packet::device::PacketDevice::attached(&cfg)
}

/// Connects and attaches the queues `cfg` asks for.
pub(crate) fn open(cfg: &SharedConfig) -> Result<(SharedDevice, Opened)> {
    let name = cfg.path.as_str();
    let conn = connect(name)?;
    let req = Msg::new("attach").with("queues", &cfg.queues);
    let (m, mut fds) = ask(conn.as_fd(), name, &req)?;
    let bad = |why: &str| Error::ShareRefused {
        name: name.into(),
        why: why.into(),
    };
    let kind = m.get("kind").unwrap_or("");
    if !matches!(kind, "tap" | "tun" | "packet") {
        return Err(bad(
            "the served port is of a kind this library does not know",
        ));
    }
    let primary: Vec<u16> = m
        .get("queues")
        .unwrap_or("")
        .split(',')
        .map(|q| q.parse::<u16>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad("a malformed queue list"))?;
    let with_ns = m.get("netns") == Some("1");
    let per: usize = m
        .get("fds_per_queue")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let want = primary.len() * per + 1 + usize::from(with_ns);
    if primary.is_empty() || per == 0 || fds.len() != want {
        return Err(bad("the reply did not carry the queues' fds"));
    }
    let netns = with_ns.then(|| fds.pop()).flatten();
    let counters = fds
        .pop()
        .and_then(CounterMem::open)
        .ok_or_else(|| bad("the counter memory is not this build's layout"))?;
    let ifindex = m
        .get("ifindex")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("no ifindex"))?;
    let iface = Opened {
        name: m.get("name").unwrap_or("").to_string(),
        ifindex,
    };
    let packet = match kind {
        "packet" => Some(packet_device(&m).map_err(|e| bad(&format!("packet rings: {e}")))?),
        _ => None,
    };
    let (backend, backend_reason) = match &packet {
        Some(p) => (p.backend(), p.backend_reason().map(str::to_string)),
        None => backend::choose(cfg.backend),
    };
    let mut it = fds.into_iter();
    let per_queue: Vec<Option<Vec<OwnedFd>>> = (0..primary.len())
        .map(|_| Some(it.by_ref().take(per).collect()))
        .collect();
    Ok((
        SharedDevice {
            _conn: conn,
            primary,
            packet,
            link: if kind == "tun" {
                crate::wire::layout::Link::Ip
            } else {
                crate::wire::layout::Link::Ethernet
            },
            fds: Mutex::new(per_queue),
            counters: Arc::new(counters),
            netns: Mutex::new(netns),
            offloads: Offloads::from_names(m.get("offloads").unwrap_or("")),
            backend,
            backend_reason,
            ring: cfg.ring,
        },
        iface,
    ))
}

impl Device for SharedDevice {
    fn kind(&self) -> &'static str {
        "shared"
    }

    fn created(&self) -> bool {
        false
    }

    fn offloads(&self) -> Offloads {
        self.offloads
    }

    fn offload_notes(&self) -> &[String] {
        &[]
    }

    fn backend(&self) -> BackendKind {
        self.backend
    }

    fn backend_reason(&self) -> Option<&str> {
        self.backend_reason.as_deref()
    }

    fn sqpoll(&self) -> Option<SqPoll> {
        match &self.packet {
            Some(p) => p.sqpoll(),
            None => self
                .ring
                .sqpoll
                .filter(|_| self.backend == BackendKind::Uring),
        }
    }

    fn queue_count(&self) -> Option<u16> {
        Some(self.primary.len() as u16)
    }

    fn counter_mem(&self) -> Option<Arc<CounterMem>> {
        Some(self.counters.clone())
    }

    fn counter_block(&self, id: u16) -> usize {
        self.primary
            .get(id as usize)
            .map_or(usize::MAX, |&q| q as usize)
    }

    fn controls_link(&self) -> bool {
        false
    }

    fn netns(&self) -> Option<OwnedFd> {
        self.netns.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn open_queue(&self, _iface: &Opened, id: u16) -> Result<QueueFd> {
        let mut fds = self
            .fds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(id as usize)
            .and_then(Option::take)
            .ok_or(Error::NoSuchQueue {
                queue: id,
                count: self.primary.len() as u16,
            })?;
        match &self.packet {
            Some(p) if fds.len() == 2 => {
                let tx = fds.pop().expect("two fds");
                let rx = fds.pop().expect("two fds");
                p.queue_from_fds(rx, tx)
            }
            None if fds.len() == 1 => Ok(QueueFd {
                fd: fds.pop().expect("one fd"),
                extra: None,
            }),
            _ => Err(Error::InvalidConfig {
                field: "queues",
                why: "the server sent a queue's fds in a shape this library does not know".into(),
            }),
        }
    }

    fn tx_engine_name(&self) -> String {
        match &self.packet {
            Some(p) => p.tx_engine_name(),
            None => match self.backend {
                BackendKind::Uring => "io_uring write/writev per packet".into(),
                BackendKind::Rw => "write()/writev() per packet".into(),
            },
        }
    }

    fn tx_through_qdisc(&self) -> bool {
        self.packet.as_ref().is_some_and(|p| p.tx_through_qdisc())
    }

    fn extra_xstats(&self, q: &QueueShared, out: &mut Vec<crate::xstats::XStat>) {
        if let Some(p) = &self.packet {
            p.extra_xstats(q, out);
        }
    }

    /// Nothing: the fd is the serving process's queue too (detaching it would
    /// detach the serving port's queue).
    fn release_queue(&self) -> fn(BorrowedFd<'_>) {
        |_| {}
    }

    fn max_frame(&self, mtu: u32) -> usize {
        match &self.packet {
            Some(p) => p.max_frame(mtu),
            None if self.link == crate::wire::layout::Link::Ip => mtu as usize,
            None => mtu as usize + L2_OVERHEAD,
        }
    }

    fn link(&self) -> crate::wire::layout::Link {
        self.link
    }

    fn missed(&self, link: &LinkInfo, queues: &[Arc<QueueShared>]) -> u64 {
        match &self.packet {
            Some(p) => p.missed(link, queues),
            None => link.kernel_tx_dropped,
        }
    }

    fn queue_buffers(&self, pool: &PoolConfig, max_frame: usize) -> usize {
        match &self.packet {
            Some(p) => p.queue_buffers(pool, max_frame),
            None => {
                backend::fd_queue_buffers(self.backend, &self.ring, VNET_HDR_LEN, pool, max_frame)
            }
        }
    }

    fn rx_engine_name(&self, pool: &PoolConfig, max_frame: usize) -> String {
        match &self.packet {
            Some(p) => p.rx_engine_name(pool, max_frame),
            None => backend::fd_rx_engine_name(self.backend, &self.ring, pool, max_frame),
        }
    }

    fn rx_engine(&self, ctx: &EngineCtx, pool: &Pool) -> Result<Box<dyn RxEngine>> {
        match &self.packet {
            Some(p) => p.rx_engine(ctx, pool),
            None => backend::fd_rx_engine(ctx, self.backend, &self.ring, VNET_HDR_LEN, pool),
        }
    }

    fn tx_engine(&self, ctx: &EngineCtx) -> Result<Box<dyn TxEngine>> {
        match &self.packet {
            Some(p) => p.tx_engine(ctx),
            None => backend::fd_tx_engine(ctx, self.backend, &self.ring, VNET_HDR_LEN),
        }
    }
}
