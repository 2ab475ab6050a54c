//! [`TapPort`]: one kernel TAP interface and its queue pairs.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::config::{validate_queues, TapConfig};
use super::device::{self, Ownership};
use super::netns::{in_ns, NsHandle};
use super::offloads::Offloads;
use super::queue::{QueueShared, RxQueue, TxQueue};
use crate::backend::{uring, BackendKind};
use crate::error::{Error, Result};
use crate::netlink::{LinkInfo, Netlink};
use crate::pool::{Pool, MAX_PACKET_LEN};
use crate::stats::{PortStats, QueueCounters, QueueStats};
use crate::sys::tun;
use crate::wire::vnet::VNET_HDR_LEN;
use crate::xstats::{self, XCounters, XStat, RX_N, TX_N};

/// Counter values at the last reset.
#[derive(Default)]
struct Baseline {
    rx: Vec<QueueStats>,
    tx: Vec<QueueStats>,
    imissed: u64,
    /// Per queue: rx xstats values (with alloc failures and truncated appended).
    rx_x: Vec<Vec<u64>>,
    tx_x: Vec<Vec<u64>>,
}

/// A TAP interface driven as a poll-mode port.
///
/// Lifecycle: [`open`](Self::open) (create or attach, one fd per queue pair) →
/// [`start`](Self::start) (link up) → [`rx_queue`](Self::rx_queue) /
/// [`tx_queue`](Self::tx_queue) and bursts → drop the queues → [`stop`](Self::stop)
/// (link down) → optionally [`set_queue_count`](Self::set_queue_count) and start
/// again → drop (close). The interface is deleted on close unless it is persistent
/// or existed before.
///
/// The port is `Send + Sync`: worker threads can each open their queues from a
/// shared reference (queues and pools stay on the thread that opened them).
pub struct TapPort {
    cfg: TapConfig,
    name: String,
    ifindex: u32,
    created: bool,
    offloads: Offloads,
    offload_notes: Vec<String>,
    backend: BackendKind,
    backend_reason: Option<String>,
    _keepalive: OwnedFd,
    queues: Vec<Arc<QueueShared>>,
    nl: Mutex<Netlink>,
    started: bool,
    /// The namespace the interface lives in, if not the opener's.
    ns: Option<NsHandle>,
    /// With SQPOLL: the ring whose kernel thread every ring of the port shares.
    sq_anchor: Option<uring::SqAnchor>,
    base: Mutex<Baseline>,
}

impl std::fmt::Debug for TapPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapPort")
            .field("name", &self.name)
            .field("ifindex", &self.ifindex)
            .field("queues", &self.queues.len())
            .field("backend", &self.backend)
            .field("started", &self.started)
            .finish()
    }
}

impl TapPort {
    /// Creates the interface (or attaches to an existing one) and opens one fd per
    /// queue pair. The link stays down until [`start`](Self::start).
    pub fn open(cfg: TapConfig) -> Result<TapPort> {
        cfg.validate()?;
        let (backend, backend_reason) = choose_backend(cfg.backend);
        let ns = cfg.netns.as_ref().map(NsHandle::open).transpose()?;
        let own = Ownership {
            owner: cfg.owner,
            group: cfg.group,
        };
        let (dev, nl) = in_ns(ns.as_ref(), || {
            let dev = device::open(&cfg.name, cfg.attach, cfg.persist, cfg.offloads, own)?;
            let nl = Netlink::open().map_err(|e| Error::sys("netlink socket", e))?;
            Ok((dev, nl))
        })?;
        let mut port = TapPort {
            name: dev.name.clone(),
            ifindex: dev.ifindex,
            created: dev.created,
            offloads: dev.offloads,
            offload_notes: dev.offload_notes,
            backend,
            backend_reason,
            _keepalive: dev.keepalive,
            queues: Vec::new(),
            nl: Mutex::new(nl),
            started: false,
            base: Mutex::new(Baseline::default()),
            ns,
            sq_anchor: None,
            cfg,
        };
        if port.backend == BackendKind::Uring {
            port.sq_anchor = port.cfg.ring.sqpoll.and_then(uring::SqAnchor::new);
        }
        let n = port.cfg.rx_queues;
        port.open_queues(n)?;
        if let Some(mtu) = port.cfg.mtu {
            port.set_mtu(mtu)?;
        }
        if let Some(mac) = port.cfg.mac {
            port.set_mac(mac)?;
        }
        if let Some(on) = port.cfg.promisc {
            port.set_promisc(on)?;
        }
        tracing::debug!(name = %port.name, ifindex = port.ifindex, queues = n, backend = %port.backend, "tap port open");
        Ok(port)
    }

    fn open_queues(&mut self, n: u16) -> Result<()> {
        let name = self.refresh_name()?;
        let have = self.queues.len();
        let ifindex = self.ifindex;
        // Queue fds are opened in the port's namespace (TUNSETIFF finds the
        // interface by name there).
        let fds = in_ns(self.ns.as_ref(), || {
            (have..n as usize)
                .map(|_| device::open_queue(&name, ifindex))
                .collect::<Result<Vec<_>>>()
        })?;
        for fd in fds {
            let id = self.queues.len() as u16;
            self.queues.push(Arc::new(QueueShared::new(id, fd)));
        }
        self.queues.truncate(n as usize);
        let mut b = self.base.lock().unwrap_or_else(|e| e.into_inner());
        b.rx.resize(n as usize, QueueStats::default());
        b.tx.resize(n as usize, QueueStats::default());
        b.rx_x.resize(n as usize, vec![0; RX_N + 2]);
        b.tx_x.resize(n as usize, vec![0; TX_N]);
        Ok(())
    }

    /// The interface's current name, looked up by ifindex (it may have been renamed).
    pub fn name(&self) -> String {
        self.link()
            .map(|l| l.name)
            .unwrap_or_else(|_| self.name.clone())
    }

    fn refresh_name(&mut self) -> Result<String> {
        let l = self.link()?;
        self.name = l.name.clone();
        Ok(l.name)
    }

    /// The interface index, resolved once at open.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// True if this port created the interface.
    pub fn created(&self) -> bool {
        self.created
    }

    /// Offloads the kernel accepted (a subset of what was asked for).
    pub fn offloads(&self) -> Offloads {
        self.offloads
    }

    /// Why requested offloads were dropped, if any were.
    pub fn offload_notes(&self) -> &[String] {
        &self.offload_notes
    }

    /// The backend in use.
    pub fn backend(&self) -> BackendKind {
        self.backend
    }

    /// Why the backend differs from the one asked for, if it does.
    pub fn backend_reason(&self) -> Option<&str> {
        self.backend_reason.as_deref()
    }

    /// The configuration the port was opened with.
    pub fn config(&self) -> &TapConfig {
        &self.cfg
    }

    /// Queue pairs.
    pub fn queue_count(&self) -> u16 {
        self.queues.len() as u16
    }

    /// True between [`start`](Self::start) and [`stop`](Self::stop).
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// Reads the link's state from the kernel.
    pub fn link(&self) -> Result<LinkInfo> {
        let nl = self.nl.lock().unwrap_or_else(|e| e.into_inner());
        nl.get_link(self.ifindex)
            .map_err(|e| self.nl_err("get link", e))
    }

    fn nl_err(&self, op: &'static str, e: std::io::Error) -> Error {
        match e.raw_os_error() {
            Some(libc::ENODEV) => Error::DeviceVanished {
                name: self.name.clone(),
                ifindex: self.ifindex,
            },
            Some(libc::EPERM) | Some(libc::EACCES) => Error::PermissionDenied { op },
            _ => Error::Netlink {
                op,
                ifindex: self.ifindex,
                source: e,
            },
        }
    }

    /// Runs a netlink request on the port's own socket (bound to the port's
    /// namespace), mapping errors to what failed.
    pub(super) fn with_nl<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Netlink, u32) -> std::io::Result<T>,
    ) -> Result<T> {
        let nl = self.nl.lock().unwrap_or_else(|e| e.into_inner());
        f(&nl, self.ifindex).map_err(|e| self.nl_err(op, e))
    }

    fn set_up(&self, up: bool) -> Result<()> {
        let nl = self.nl.lock().unwrap_or_else(|e| e.into_inner());
        nl.set_up(self.ifindex, up)
            .map_err(|e| self.nl_err(if up { "set link up" } else { "set link down" }, e))
    }

    /// Brings the link up. Queues can be opened once started.
    ///
    /// A link someone else already brought up is left as it is, so an
    /// unprivileged owner of a persistent tap (see [`TapConfig::owner`]) can start.
    pub fn start(&mut self) -> Result<()> {
        if self.link()?.flags & libc::IFF_UP as u32 == 0 {
            self.set_up(true)?;
        }
        self.started = true;
        Ok(())
    }

    /// Runs `f` in the port's namespace (for sockets that must live there).
    pub(super) fn in_port_ns<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        in_ns(self.ns.as_ref(), f)
    }

    /// Queue handles still alive.
    pub fn live_queues(&self) -> usize {
        self.queues.iter().map(|q| q.live()).sum()
    }

    /// Brings the link down. Every queue handle must have been dropped first, so
    /// every buffer is back in its pool when this returns.
    pub fn stop(&mut self) -> Result<()> {
        let live = self.live_queues();
        if live > 0 {
            return Err(Error::PortBusy { op: "stop", live });
        }
        self.started = false;
        match self.set_up(false) {
            // An unprivileged owner may not change the link state: the queues are
            // released all the same, which is what stop guarantees.
            Err(Error::PermissionDenied { op }) => {
                tracing::warn!("stop: {op} not permitted; link left up");
                Ok(())
            }
            r => r,
        }
    }

    /// Changes the number of queue pairs (port stopped, no queue handles alive).
    pub fn set_queue_count(&mut self, rx: u16, tx: u16) -> Result<()> {
        validate_queues(rx, tx)?;
        let live = self.live_queues();
        if self.started || live > 0 {
            return Err(Error::PortBusy {
                op: "set_queue_count",
                live,
            });
        }
        self.open_queues(rx)?;
        self.cfg.rx_queues = rx;
        self.cfg.tx_queues = tx;
        Ok(())
    }

    fn queue(&self, id: u16, op: &'static str) -> Result<&Arc<QueueShared>> {
        if !self.started {
            return Err(Error::NotStarted { op });
        }
        self.queues.get(id as usize).ok_or(Error::NoSuchQueue {
            queue: id,
            count: self.queue_count(),
        })
    }

    /// The largest frame an rx queue must hold: `TapConfig::max_frame` if set,
    /// else 64 KiB with TSO/USO offloads (the kernel hands up coalesced frames),
    /// else the MTU plus an Ethernet header and a VLAN tag.
    pub fn max_frame(&self) -> Result<usize> {
        if self.cfg.max_frame != 0 {
            return Ok(self.cfg.max_frame);
        }
        if self.offloads.any_gso() {
            // The kernel may hand up coalesced frames of up to 64 KiB.
            return Ok(MAX_PACKET_LEN);
        }
        Ok(self.link()?.mtu as usize + 18)
    }

    /// Opens rx queue `id`, posting reads with buffers from `pool`. The queue and
    /// the pool belong to the calling thread.
    pub fn rx_queue(&self, id: u16, pool: &Pool) -> Result<RxQueue> {
        let q = self.queue(id, "rx_queue")?;
        RxQueue::open(
            q.clone(),
            self.backend,
            pool,
            &self.cfg.ring,
            VNET_HDR_LEN,
            self.max_frame()?,
            &self.name,
            self.ifindex,
            self.sq_anchor.as_ref().map(|a| a.fd()),
        )
    }

    /// Opens tx queue `id`. The queue belongs to the calling thread.
    pub fn tx_queue(&self, id: u16) -> Result<TxQueue> {
        let q = self.queue(id, "tx_queue")?;
        TxQueue::open(
            q.clone(),
            self.backend,
            &self.cfg.ring,
            VNET_HDR_LEN,
            self.offloads.csum,
            &self.name,
            self.ifindex,
            self.sq_anchor.as_ref().map(|a| a.fd()),
        )
    }

    /// Per-queue and port-wide counters since the last reset.
    pub fn stats(&self) -> Result<PortStats> {
        let b = self.base.lock().unwrap_or_else(|e| e.into_inner());
        let rx = self
            .queues
            .iter()
            .zip(&b.rx)
            .map(|(q, base)| q.rx.snapshot().since(base))
            .collect();
        let tx = self
            .queues
            .iter()
            .zip(&b.tx)
            .map(|(q, base)| q.tx.snapshot().since(base))
            .collect();
        let imissed = self.link()?.kernel_tx_dropped.saturating_sub(b.imissed);
        Ok(PortStats::from_queues(rx, tx, imissed))
    }

    /// Extended per-queue statistics since the last reset, in a stable order:
    /// for each queue, `rx_q{N}_*` then `tx_q{N}_*`.
    pub fn xstats(&self) -> Vec<XStat> {
        let b = self.base.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (i, q) in self.queues.iter().enumerate() {
            let id = q.id;
            let rx = rx_xvalues(q);
            for ((name, v), base) in xstats::rx_names(id).zip(rx).zip(&b.rx_x[i]) {
                out.push(XStat {
                    name,
                    value: v.saturating_sub(*base),
                });
            }
            for ((name, v), base) in xstats::tx_names(id).zip(q.tx_x.snapshot()).zip(&b.tx_x[i]) {
                out.push(XStat {
                    name,
                    value: v.saturating_sub(*base),
                });
            }
        }
        out
    }

    /// One extended statistic by name (`rx_q0_size_64_packets`, ...).
    pub fn xstat(&self, name: &str) -> Option<u64> {
        self.xstats()
            .into_iter()
            .find(|x| x.name == name)
            .map(|x| x.value)
    }

    /// Sets every counter, basic and extended, back to zero.
    pub fn reset_stats(&self) -> Result<()> {
        let kernel = self.link()?.kernel_tx_dropped;
        let mut b = self.base.lock().unwrap_or_else(|e| e.into_inner());
        b.rx_x = self.queues.iter().map(|q| rx_xvalues(q)).collect();
        b.tx_x = self.queues.iter().map(|q| q.tx_x.snapshot()).collect();
        b.rx = self.queues.iter().map(|q| q.rx.snapshot()).collect();
        b.tx = self.queues.iter().map(|q| q.tx.snapshot()).collect();
        b.imissed = kernel;
        Ok(())
    }
}

impl Drop for TapPort {
    fn drop(&mut self) {
        if self.started && self.live_queues() == 0 {
            let _ = self.set_up(false);
        }
    }
}

/// Rx xstats values of a queue: the classified counters, then alloc failures
/// and truncated frames from the basic counters.
fn rx_xvalues(q: &QueueShared) -> Vec<u64> {
    let mut v = q.rx_x.snapshot();
    let s = q.rx.snapshot();
    v.push(s.nombuf);
    v.push(q.rx.truncated.load(Ordering::Relaxed));
    v
}

/// Picks the backend, falling back to read/write when io_uring cannot be used.
fn choose_backend(want: BackendKind) -> (BackendKind, Option<String>) {
    if want == BackendKind::Rw {
        return (BackendKind::Rw, None);
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

/// Per-queue state shared between the port and the queue handles.
impl QueueShared {
    pub(crate) fn new(id: u16, fd: OwnedFd) -> QueueShared {
        QueueShared {
            id,
            fd,
            rx: QueueCounters::default(),
            tx: QueueCounters::default(),
            rx_taken: AtomicBool::new(false),
            tx_taken: AtomicBool::new(false),
            rx_x: XCounters::new(RX_N),
            tx_x: XCounters::new(TX_N),
        }
    }

    fn live(&self) -> usize {
        self.rx_taken.load(Ordering::Acquire) as usize
            + self.tx_taken.load(Ordering::Acquire) as usize
    }
}

impl Drop for QueueShared {
    fn drop(&mut self) {
        // Detach the queue before closing its fd. Closing alone detaches it only
        // once the last reference to the file goes, and others may still hold one
        // for a while (an io_uring being torn down, a child process forked by
        // another thread that has not exec'd yet); until then the kernel keeps
        // steering frames to a queue nobody reads.
        let _ = tun::set_queue_attached(self.fd.as_fd(), false);
    }
}
