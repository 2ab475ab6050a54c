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
use super::server::parse_offloads;
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
    fds: Mutex<Vec<Option<OwnedFd>>>,
    counters: Arc<CounterMem>,
    netns: Mutex<Option<OwnedFd>>,
    offloads: Offloads,
    backend: BackendKind,
    backend_reason: Option<String>,
    ring: RingConfig,
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
    if m.get("kind") != Some("tap") {
        return Err(bad("the served port is not a tap"));
    }
    let primary: Vec<u16> = m
        .get("queues")
        .unwrap_or("")
        .split(',')
        .map(|q| q.parse::<u16>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad("a malformed queue list"))?;
    let with_ns = m.get("netns") == Some("1");
    let want = primary.len() + 1 + usize::from(with_ns);
    if primary.is_empty() || fds.len() != want {
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
    let (backend, backend_reason) = backend::choose(cfg.backend);
    Ok((
        SharedDevice {
            _conn: conn,
            primary,
            fds: Mutex::new(fds.into_iter().map(Some).collect()),
            counters: Arc::new(counters),
            netns: Mutex::new(netns),
            offloads: parse_offloads(m.get("offloads").unwrap_or("")),
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
        self.ring
            .sqpoll
            .filter(|_| self.backend == BackendKind::Uring)
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
        let fd = self
            .fds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(id as usize)
            .and_then(Option::take)
            .ok_or(Error::NoSuchQueue {
                queue: id,
                count: self.primary.len() as u16,
            })?;
        Ok(QueueFd { fd, extra: None })
    }

    /// Nothing: the fd is the serving process's queue too (detaching it would
    /// detach the serving port's queue).
    fn release_queue(&self) -> fn(BorrowedFd<'_>) {
        |_| {}
    }

    fn max_frame(&self, mtu: u32) -> usize {
        mtu as usize + L2_OVERHEAD
    }

    fn missed(&self, link: &LinkInfo, _queues: &[Arc<QueueShared>]) -> u64 {
        link.kernel_tx_dropped
    }

    fn queue_buffers(&self, pool: &PoolConfig, max_frame: usize) -> usize {
        backend::fd_queue_buffers(self.backend, &self.ring, VNET_HDR_LEN, pool, max_frame)
    }

    fn rx_engine_name(&self, pool: &PoolConfig, max_frame: usize) -> String {
        backend::fd_rx_engine_name(self.backend, &self.ring, pool, max_frame)
    }

    fn rx_engine(&self, ctx: &EngineCtx, pool: &Pool) -> Result<Box<dyn RxEngine>> {
        backend::fd_rx_engine(ctx, self.backend, &self.ring, VNET_HDR_LEN, pool)
    }

    fn tx_engine(&self, ctx: &EngineCtx) -> Result<Box<dyn TxEngine>> {
        backend::fd_tx_engine(ctx, self.backend, &self.ring, VNET_HDR_LEN)
    }
}
