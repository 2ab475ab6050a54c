//! The port layer: a [`Port`] is one kernel interface driven as a poll-mode
//! port, whatever kind of device it is. Lifecycle, queue handles, link control
//! and events over netlink, namespaces, stats and xstats, sharing and the
//! SQPOLL anchor live here; what differs between devices sits behind the device
//! seam ([`crate::device`]), and the devices are named once, in the registry
//! (`port/registry.rs`; ARCHITECTURE.md says what a new device supplies).

mod baseline;
mod ifconfig;
mod link;
mod registry;
mod serve;
mod stats;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub use crate::device::{
    validate_queues, DeviceInfo, DeviceKind, Netns, Offloads, PortOptions, PortSpec, MAX_QUEUES,
};
pub use registry::parse_port_spec;

use self::baseline::Baseline;
use crate::backend::uring;
use crate::device::netns::{in_ns, NsHandle};
use crate::device::{Attached, Device, Opened, OpenedDevice};
use crate::error::{Error, Result};
use crate::netlink::{LinkInfo, Netlink};
use crate::pool::{Pool, PoolConfig, MAX_PACKET_LEN};
use crate::queue::counters::{Block, CounterMem};
use crate::queue::engine::EngineCtx;
use crate::queue::{Dir, Engine, QueueShared, RxQueue, TxQueue};

/// One kernel interface driven as a poll-mode port.
///
/// Lifecycle: [`open`](Self::open) (create or attach the interface, one fd per
/// queue pair) → [`start`](Self::start) (link up) → [`rx_queue`](Self::rx_queue) /
/// [`tx_queue`](Self::tx_queue) and bursts → drop the queues → [`stop`](Self::stop)
/// (link down) → optionally [`set_queue_count`](Self::set_queue_count) and start
/// again → drop (close). An interface the port created is deleted on close unless
/// it is persistent.
///
/// The port is `Send + Sync`: worker threads can each open their queues from a
/// shared reference (queues and pools stay on the thread that opened them).
pub struct Port {
    spec: PortSpec,
    /// The interface: name as last seen (it may be renamed) and index.
    iface: Opened,
    // Queue fds close before the device lets go of the interface.
    queues: Vec<Arc<QueueShared>>,
    dev: Arc<dyn Device>,
    nl: Mutex<Netlink>,
    started: AtomicBool,
    /// `start` brought the link up (it was down): `stop` takes it down again.
    raised: AtomicBool,
    /// Held by `start` and `stop` (they take `&self`: a port shared between
    /// threads starts and stops whole).
    lifecycle: Mutex<()>,
    /// The namespace the interface lives in, if not the opener's.
    ns: Option<NsHandle>,
    /// With SQPOLL: the ring whose kernel thread every ring (of every port with
    /// the same SQPOLL settings) shares.
    sq_anchor: Option<Arc<uring::SqAnchor>>,
    base: Mutex<Baseline>,
    /// Each queue's counters (by queue id), in memory of its own that a process
    /// the queue is lent to can map ([`crate::share`]). Kept when the queue
    /// count shrinks, so a queue opened again counts on.
    counters: Vec<Arc<CounterMem>>,
    /// Attached to another process's port: `counters` are that port's blocks
    /// of the queues it lent, and there are no others.
    attached: bool,
    /// The device's `imissed` as last read: what `stats` reports once the
    /// interface is gone.
    last_missed: std::sync::atomic::AtomicU64,
    /// Addresses and routes the port gave the interface (removed on drop).
    added: Mutex<ifconfig::Added>,
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Port")
            .field("kind", &self.info().kind)
            .field("name", &self.iface.name)
            .field("ifindex", &self.iface.ifindex)
            .field("queues", &self.queues.len())
            .field("engine", &self.info().engine)
            .field("started", &self.is_started())
            .finish()
    }
}

impl Port {
    /// Opens a port: creates the interface or attaches to it (as the spec says)
    /// and opens one fd per queue pair. The link stays down until
    /// [`start`](Self::start). Takes any device configuration
    /// ([`TapConfig`](crate::TapConfig)) or a parsed [`PortSpec`].
    pub fn open(spec: impl Into<PortSpec>) -> Result<Port> {
        let spec = spec.into();
        spec.validate()?;
        let opts = spec.options().clone();
        let ns = opts.netns.as_ref().map(NsHandle::open).transpose()?;
        let (opened, nl) = in_ns(ns.as_ref(), || {
            let opened = spec.open_device(&registry::REGISTRY)?;
            let nl = Netlink::open().map_err(|e| Error::sys("netlink socket", e))?;
            Ok((opened, nl))
        })?;
        let OpenedDevice {
            dev,
            iface,
            attached,
        } = opened;
        let (ns, nl, counters, attached) = match attached {
            // Attached to another process's port: its counters, its queues, and
            // link control and events in its namespace.
            Some(Attached { counters, netns }) => {
                let (ns, nl) = match netns {
                    Some(fd) => {
                        let h = NsHandle::from_fd(fd);
                        let nl =
                            h.run(|| Netlink::open().map_err(|e| Error::sys("netlink socket", e)))?;
                        (Some(h), nl)
                    }
                    None => (ns, nl),
                };
                (ns, nl, counters, true)
            }
            None => (ns, nl, Vec::new(), false),
        };
        let n = if attached {
            counters.len() as u16
        } else {
            opts.queues
        };
        let sq_anchor = dev.info().sqpoll.and_then(uring::SqAnchor::shared);
        let mut port = Port {
            spec,
            iface,
            queues: Vec::new(),
            dev,
            nl: Mutex::new(nl),
            started: AtomicBool::new(false),
            raised: AtomicBool::new(false),
            lifecycle: Mutex::new(()),
            ns,
            sq_anchor,
            base: Mutex::new(Baseline::default()),
            counters,
            attached,
            last_missed: std::sync::atomic::AtomicU64::new(0),
            added: Mutex::default(),
        };
        port.spec.options_mut().queues = n;
        port.open_queues(n)?;
        if let Some(mtu) = opts.mtu {
            port.set_mtu(mtu)?;
        }
        if let Some(mac) = opts.mac {
            port.set_mac(mac)?;
        }
        if let Some(on) = opts.promisc {
            port.set_promisc(on)?;
        }
        port.add_addresses()?;
        if opts.up && port.link()?.flags & libc::IFF_UP as u32 == 0 {
            port.set_up(true)?;
            // As `start` would have: `stop` (or the drop) takes it down again.
            port.raised.store(true, Ordering::Relaxed);
        }
        if !opts.routes.is_empty() && port.link()?.flags & libc::IFF_UP as u32 != 0 {
            port.add_routes()?;
        }
        tracing::debug!(kind = %port.info().kind, name = %port.iface.name, ifindex = port.iface.ifindex,
            queues = n, engine = %port.info().engine, "port open");
        Ok(port)
    }

    /// A port on queue fds opened elsewhere (a privileged helper that passed
    /// them on), one per queue pair: TUN and TAP queues, the kind and the
    /// interface theirs, each fd checked first (`TUNGETIFF`: a TUN/TAP queue
    /// of one interface, without packet information). The port works on
    /// copies; offloads are asked for where the fds carry the virtio-net
    /// header. Link changes (`start` bringing the link up) need
    /// `CAP_NET_ADMIN` unless the helper made them. For other settings,
    /// [`TapConfig::fds`](crate::TapConfig::fds) with a
    /// [`QueueFds`](crate::QueueFds); in a spec, `fd=N`.
    pub fn from_fds(fds: Vec<std::os::fd::OwnedFd>) -> Result<Port> {
        let adopt = registry::REGISTRY.adopter().ok_or(Error::InvalidConfig {
            field: "fd",
            why: "no device of this build adopts fds".into(),
        })?;
        Port::open(adopt(fds)?)
    }

    /// Filters what the port receives with classic BPF program `prog` (see
    /// [`capture::bpf`](crate::capture::bpf); `None` removes it), in the
    /// kernel where the device has such a filter: AF_PACKET attaches it to
    /// the queues' sockets (frames the program drops never reach the queues;
    /// frames received before are still there); AF_XDP with rtap's own XDP
    /// program translates it into that program (frames it drops go on to the
    /// kernel's stack instead of the sockets). Returns
    /// [`FilterPlace::User`](crate::capture::FilterPlace::User), saying why,
    /// where it runs nowhere in the kernel (TAP, TUN; AF_XDP with the user's
    /// program, or a program whose returns would cut frames short, which XDP
    /// cannot do): run the program on the received frames
    /// ([`Program::matches`](crate::capture::bpf::Program::matches)).
    pub fn set_rx_filter(
        &self,
        prog: Option<&crate::capture::bpf::Program>,
    ) -> Result<crate::capture::FilterPlace> {
        self.dev.attach_filter(&self.queues, prog)
    }

    fn open_queues(&mut self, n: u16) -> Result<()> {
        self.refresh_name()?;
        let have = self.queues.len();
        // The counter blocks first: nothing below fails once the fds are open.
        let mems = (have..n as usize)
            .map(|id| match self.counters.get(id) {
                Some(m) => Ok(m.clone()),
                None if !self.attached => CounterMem::new()
                    .map(Arc::new)
                    .map_err(|e| Error::sys("memfd for queue counters", e)),
                None => Err(Error::NoSuchQueue {
                    queue: id as u16,
                    count: self.counters.len() as u16,
                }),
            })
            .collect::<Result<Vec<_>>>()?;
        let (dev, iface) = (&*self.dev, &self.iface);
        // Queue fds are opened in the port's namespace (the interface is found by
        // name there). Those opened before one fails are released as a queue's
        // fd would be.
        let fds = in_ns(self.ns.as_ref(), || {
            let mut fds = Vec::new();
            for id in have..n as usize {
                match dev.open_queue(iface, id as u16) {
                    Ok(q) => fds.push(q),
                    Err(e) => {
                        for q in &fds {
                            (q.release)(std::os::fd::AsFd::as_fd(&q.fd));
                        }
                        return Err(e);
                    }
                }
            }
            Ok(fds)
        })?;
        let link = self.info().link;
        for (q, mem) in fds.into_iter().zip(mems) {
            let id = self.queues.len() as u16;
            if self.counters.len() <= id as usize {
                self.counters.push(mem.clone());
            }
            let block = Block::new(&mem);
            self.queues.push(Arc::new(QueueShared::new(
                id, q.fd, q.release, q.extra, block, link,
            )));
        }
        self.queues.truncate(n as usize);
        self.base
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .resize(n as usize);
        Ok(())
    }

    /// The interface's current name, looked up by ifindex (it may have been renamed).
    pub fn name(&self) -> String {
        self.link()
            .map(|l| l.name)
            .unwrap_or_else(|_| self.iface.name.clone())
    }

    fn refresh_name(&mut self) -> Result<()> {
        self.iface.name = self.link()?.name;
        Ok(())
    }

    /// The interface index, resolved once at open.
    pub fn ifindex(&self) -> u32 {
        self.iface.ifindex
    }

    /// What the device is: kind, link type, offloads, engine, ... (fixed at open).
    pub fn info(&self) -> &DeviceInfo {
        self.dev.info()
    }

    /// The kind of device.
    pub fn kind(&self) -> DeviceKind {
        self.info().kind
    }

    /// What the port's frames start with: Ethernet, or the IP header on a TUN.
    pub fn link_layer(&self) -> crate::wire::layout::Link {
        self.info().link
    }

    /// True if this port created the interface.
    pub fn created(&self) -> bool {
        self.info().created
    }

    /// Offloads the kernel accepted (a subset of what was asked for).
    pub fn offloads(&self) -> Offloads {
        self.info().offloads
    }

    /// Why requested offloads were dropped, if any were.
    pub fn offload_notes(&self) -> &[String] {
        &self.info().offload_notes
    }

    /// The data path of the port's queues: io_uring, read/write, an AF_PACKET
    /// ring and its kick. The engine chosen at open, unless a tx queue opened
    /// since could not have it and runs another (a tx kick that fell back to
    /// `send()` when io_uring was refused after the port opened; each tx
    /// queue's own is [`TxQueue::engine`], the fallbacks are counted in
    /// `tx_qN_kick_fallbacks`): then that one.
    pub fn engine(&self) -> Engine {
        self.queues
            .iter()
            .find_map(|q| q.tx_engine())
            .unwrap_or(self.info().engine)
    }

    /// Why the engine differs from the one asked for, if it does.
    pub fn engine_reason(&self) -> Option<&str> {
        self.info().engine_reason.as_deref()
    }

    /// The configuration the port was opened with.
    pub fn config(&self) -> &PortSpec {
        &self.spec
    }

    /// The settings common to every port (queues, namespace, link settings).
    pub fn options(&self) -> &PortOptions {
        self.spec.options()
    }

    /// Queue pairs.
    pub fn queue_count(&self) -> u16 {
        self.queues.len() as u16
    }

    /// True between [`start`](Self::start) and [`stop`](Self::stop).
    pub fn is_started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// Reads the link's state from the kernel.
    pub fn link(&self) -> Result<LinkInfo> {
        self.with_nl("get link", |nl, i| nl.get_link(i))
    }

    fn nl_err(&self, op: &'static str, e: std::io::Error) -> Error {
        match e.raw_os_error() {
            Some(libc::ENODEV) => Error::DeviceVanished {
                name: self.iface.name.clone(),
                ifindex: self.iface.ifindex,
            },
            Some(libc::EPERM) | Some(libc::EACCES) => Error::PermissionDenied {
                op,
                hint: crate::error::NEEDS_NET_ADMIN,
            },
            _ => Error::Netlink {
                op,
                ifindex: self.iface.ifindex,
                source: e,
            },
        }
    }

    /// Runs a netlink request on the port's own socket (bound to the port's
    /// namespace), mapping errors to what failed.
    fn with_nl<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Netlink, u32) -> std::io::Result<T>,
    ) -> Result<T> {
        let nl = self.nl.lock().unwrap_or_else(|e| e.into_inner());
        f(&nl, self.iface.ifindex).map_err(|e| self.nl_err(op, e))
    }

    fn set_up(&self, up: bool) -> Result<()> {
        let op = if up { "set link up" } else { "set link down" };
        self.control(op)?;
        self.with_nl(op, |nl, i| nl.set_up(i, up))
    }

    /// Refuses link changes on a port that does not control its link (one
    /// attached to another process's).
    fn control(&self, op: &'static str) -> Result<()> {
        if self.info().controls_link {
            Ok(())
        } else {
            Err(Error::NotLinkOwner { op })
        }
    }

    /// Brings the link up. Queues can be opened once started.
    ///
    /// A link someone else already brought up is left as it is, so an
    /// unprivileged owner of a persistent tap (see [`TapConfig::owner`](crate::TapConfig::owner)) can start.
    pub fn start(&self) -> Result<()> {
        let _one = self.lifecycle.lock().unwrap_or_else(|e| e.into_inner());
        if self.info().controls_link && self.link()?.flags & libc::IFF_UP as u32 == 0 {
            self.set_up(true)?;
            self.raised.store(true, Ordering::Relaxed);
        }
        if self.info().tx_through_qdisc {
            self.wait_operational();
        }
        self.add_routes()?;
        let (dev, queues) = (&*self.dev, &self.queues);
        in_ns(self.ns.as_ref(), || dev.start(queues))?;
        self.started.store(true, Ordering::Release);
        Ok(())
    }

    /// Waits (at most 2 s) until a link whose carrier is on is operationally up
    /// too. The kernel attaches the interface's real qdisc only then (link
    /// watch, up to a second after the carrier comes on); until then frames
    /// sent through the qdisc vanish without a trace in any counter.
    fn wait_operational(&self) {
        let lower_up = libc::IFF_LOWER_UP as u32;
        let running = libc::IFF_RUNNING as u32;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while let Ok(l) = self.link() {
            if l.flags & lower_up == 0 || l.flags & running != 0 {
                return;
            }
            if std::time::Instant::now() > deadline {
                tracing::warn!("{}: carrier on but not operational after 2 s", self.name());
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// Runs `f` in the port's namespace (for sockets that must live there).
    fn in_port_ns<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        in_ns(self.ns.as_ref(), f)
    }

    /// The port decides the link's state: it created the interface, or brought
    /// it up itself.
    fn owns_link_state(&self) -> bool {
        self.info().controls_link && (self.info().created || self.raised.load(Ordering::Relaxed))
    }

    /// Queue handles still alive.
    pub fn live_queues(&self) -> usize {
        self.queues.iter().map(|q| q.live()).sum()
    }

    /// Brings the link down. Every queue handle must have been dropped first, so
    /// every buffer is back in its pool when this returns.
    ///
    /// An interface the port did not create and found already up when it
    /// started (an AF_PACKET port on a NIC, a bridge, a container's veth) is left
    /// up: it is someone else's.
    pub fn stop(&self) -> Result<()> {
        let _one = self.lifecycle.lock().unwrap_or_else(|e| e.into_inner());
        let live = self.live_queues();
        if live > 0 {
            return Err(Error::PortBusy { op: "stop", live });
        }
        self.started.store(false, Ordering::Release);
        if !self.owns_link_state() {
            return Ok(());
        }
        self.raised.store(false, Ordering::Relaxed);
        match self.set_up(false) {
            // An unprivileged owner may not change the link state: the queues are
            // released all the same, which is what stop guarantees.
            Err(Error::PermissionDenied { op, .. }) => {
                tracing::warn!("stop: {op} not permitted; link left up");
                Ok(())
            }
            r => r,
        }
    }

    /// Changes the number of queue pairs (port stopped, no queue handles alive).
    pub fn set_queue_count(&mut self, n: u16) -> Result<()> {
        validate_queues(n)?;
        if self.attached {
            return Err(Error::Unsupported {
                feature: "set_queue_count on a port attached to another process's",
                hint: "attach again with the queues wanted",
            });
        }
        let live = self.live_queues();
        if self.is_started() || live > 0 {
            return Err(Error::PortBusy {
                op: "set_queue_count",
                live,
            });
        }
        self.open_queues(n)?;
        self.spec.options_mut().queues = n;
        Ok(())
    }

    fn queue(&self, id: u16, op: &'static str) -> Result<&Arc<QueueShared>> {
        if !self.is_started() {
            return Err(Error::NotStarted { op });
        }
        self.queues.get(id as usize).ok_or(Error::NoSuchQueue {
            queue: id,
            count: self.queue_count(),
        })
    }

    /// The largest frame an rx queue must hold: the configured `max_frame` if
    /// set, else 64 KiB with TSO/USO offloads (the kernel hands up coalesced
    /// frames), else what the MTU allows (on Ethernet, the MTU plus an
    /// Ethernet header and a VLAN tag).
    pub fn max_frame(&self) -> Result<usize> {
        let opts = self.spec.options();
        if opts.max_frame != 0 {
            return Ok(opts.max_frame);
        }
        if self.info().offloads.any_gso() {
            return Ok(MAX_PACKET_LEN);
        }
        Ok(self.info().link.frame_len(self.link()?.mtu))
    }

    fn engine_ctx(&self, q: &QueueShared, max_frame: usize, roaming: bool) -> EngineCtx {
        use std::os::fd::AsRawFd;
        EngineCtx {
            fd: q.fd.as_raw_fd(),
            extra: q.extra.clone(),
            max_frame,
            sq_attach: self.sq_anchor.as_ref().map(|a| a.fd()),
            block: q.c.clone(),
            link: q.link,
            roaming,
        }
    }

    /// Pool buffers one queue pair may hold at once: what its rx queue lends the
    /// kernel plus what its tx queue may have in flight. A worker's pool needs
    /// this much per queue pair it serves, plus its bursts.
    pub fn queue_buffers(&self, pool: &PoolConfig) -> Result<usize> {
        Ok(self.dev.queue_buffers(pool, self.max_frame()?))
    }

    /// The rx engine a queue opened with a pool of `pool`'s shape gets on this
    /// kernel, in words: `multishot`, `posted (why)`, `read/write`, ...
    pub fn rx_engine_name(&self, pool: &PoolConfig) -> Result<String> {
        Ok(self.dev.rx_engine_name(pool, self.max_frame()?))
    }

    /// The tx engine of this port's queues, in words: `io_uring writes`,
    /// `write()`, an AF_PACKET ring and its kick, ...
    pub fn tx_engine_name(&self) -> String {
        self.info().tx_engine.clone()
    }

    /// Opens rx queue `id`, lending buffers from `pool` to the kernel. The queue
    /// and the pool belong to the calling thread.
    pub fn rx_queue(&self, id: u16, pool: &Pool) -> Result<RxQueue> {
        self.open_rx(id, pool, false)
    }

    /// Opens queue pair `id` with engines that may be driven from a different
    /// thread each time (one at a time): `rtap::mt`'s task-driven queues. An
    /// [`Error::Unsupported`] naming the reason on devices whose queues are
    /// tied to their thread.
    #[cfg(all(feature = "mt", feature = "tokio"))]
    pub(crate) fn roaming_queues(&self, id: u16, pool: &Pool) -> Result<(RxQueue, TxQueue)> {
        self.dev.roaming().map_err(|hint| Error::Unsupported {
            feature: "queues driven by the async tasks (MtDrive::Tasks) on this kind of port",
            hint,
        })?;
        Ok((self.open_rx(id, pool, true)?, self.open_tx(id, true)?))
    }

    fn open_rx(&self, id: u16, pool: &Pool, roaming: bool) -> Result<RxQueue> {
        let q = self.queue(id, "rx_queue")?;
        let max_frame = self.max_frame()?;
        let claim = q.claim(Dir::Rx)?;
        let engine = self
            .dev
            .rx_engine(&self.engine_ctx(q, max_frame, roaming), pool)?;
        Ok(RxQueue::new(
            claim,
            engine,
            &self.iface.name,
            self.iface.ifindex,
        ))
    }

    /// Opens tx queue `id`. The queue belongs to the calling thread.
    pub fn tx_queue(&self, id: u16) -> Result<TxQueue> {
        self.open_tx(id, false)
    }

    fn open_tx(&self, id: u16, roaming: bool) -> Result<TxQueue> {
        let q = self.queue(id, "tx_queue")?;
        let claim = q.claim(Dir::Tx)?;
        let engine = self
            .dev
            .tx_engine(&self.engine_ctx(q, self.max_frame()?, roaming))?;
        q.set_tx_engine(engine.engine().filter(|&e| e != self.info().engine));
        Ok(TxQueue::new(
            claim,
            engine,
            self.info().tx_offload,
            self.info().engine,
            &self.iface.name,
            self.iface.ifindex,
        ))
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        self.remove_added();
        if self.is_started() && self.live_queues() == 0 && self.owns_link_state() {
            let _ = self.set_up(false);
        }
    }
}
