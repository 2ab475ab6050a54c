//! The device abstraction: what a kind of kernel interface supplies to a
//! [`Port`](super::Port). Everything else (lifecycle, netlink link control and
//! events, namespaces, stats and xstats, queue handles, the SQPOLL anchor) is
//! the port layer's and the same for every device.
//!
//! A new device is a module with a configuration type (embedding
//! [`PortOptions`](super::PortOptions)), a [`PortSpec`](crate::PortSpec) variant
//! with its spec keys, and a type implementing [`Device`]: how the interface is
//! created or attached, how queue fds are opened and given up, the virtio-net
//! header length, which offloads the kernel accepted, where "frames the
//! application did not read in time" are counted, and the data-path engines for
//! its queue fds.

use std::os::fd::{BorrowedFd, OwnedFd, RawFd};

use std::sync::Arc;

use super::offloads::Offloads;
use crate::backend::uring::SqPoll;
use crate::backend::BackendKind;
use crate::error::Result;
use crate::netlink::LinkInfo;
use crate::pool::{Pool, PoolConfig};
use crate::queue::counters::{Block, CounterMem};
use crate::queue::engine::{RxEngine, TxEngine};
use crate::queue::{QueueExtra, QueueShared};
use crate::xstats::XStat;

/// The interface a device opened: its name (resolved from a template) and index.
#[derive(Clone, Debug)]
pub(crate) struct Opened {
    pub name: String,
    pub ifindex: u32,
}

/// A queue opened by a device: its fd and, if the device keeps any, its state.
pub(crate) struct QueueFd {
    pub fd: OwnedFd,
    pub extra: Option<QueueExtra>,
}

/// What an engine needs to know about the queue it serves (the device knows
/// its own configuration).
pub(crate) struct EngineCtx {
    /// The queue's fd.
    pub fd: RawFd,
    /// The device's state of the queue (see [`QueueFd::extra`]).
    pub extra: Option<QueueExtra>,
    /// Largest frame the port takes (the MTU's frame, or `max_frame` if set).
    pub max_frame: usize,
    /// The process's SQPOLL ring for the device's settings, if any
    /// (`IORING_SETUP_ATTACH_WQ`: one kernel SQ thread for every ring).
    pub sq_attach: Option<RawFd>,
    /// The queue's counter block (shared with processes the port is served
    /// to), with words the device may keep there.
    pub block: Block,
}

/// One kind of kernel interface behind a port. Setup methods run in the port's
/// network namespace (the port enters it on a helper thread); engine methods run
/// on the thread that opens the queue.
pub(crate) trait Device: Send + Sync {
    /// Short name of the kind (`tap`), for logs and `Debug`.
    fn kind(&self) -> &'static str;

    /// True if opening the port created the interface (it goes away with the
    /// port unless persistent).
    fn created(&self) -> bool;

    /// Offloads the kernel accepted, and why any asked for were dropped.
    fn offloads(&self) -> Offloads;
    fn offload_notes(&self) -> &[String];

    /// What the device's frames start with: Ethernet (default) or IP (TUN).
    fn link(&self) -> crate::wire::layout::Link {
        crate::wire::layout::Link::Ethernet
    }

    /// Whether the data path uses io_uring, and why not if it was asked to.
    fn backend(&self) -> BackendKind;
    fn backend_reason(&self) -> Option<&str>;

    /// The SQPOLL thread the device's rings want, if any: the port then holds
    /// the process's shared anchor for it and hands its fd to the engines.
    fn sqpoll(&self) -> Option<SqPoll>;

    /// Opens queue `id` on the interface: its fd and the device's state of it.
    fn open_queue(&self, iface: &Opened, id: u16) -> Result<QueueFd>;

    /// Runs once the link is up (`Port::start`), with every queue open: an
    /// AF_PACKET port joins its sockets into their fanout group here (the kernel
    /// takes only sockets of a running interface).
    fn start(&self, _queues: &[Arc<QueueShared>]) -> Result<()> {
        Ok(())
    }

    /// The tx engine in words (for `rtap info`). By default the fd engines'.
    fn tx_engine_name(&self) -> String {
        match self.backend() {
            BackendKind::Uring => "io_uring write/writev per packet".into(),
            BackendKind::Rw => "write()/writev() per packet".into(),
        }
    }

    /// True if frames the port sends go through the interface's qdisc (so
    /// `Port::start` waits until the kernel has attached it).
    fn tx_through_qdisc(&self) -> bool {
        false
    }

    /// Appends the device's own extended statistics of queue `q`, named
    /// `rx_q{N}_...`/`tx_q{N}_...` like the common ones.
    fn extra_xstats(&self, _q: &QueueShared, _out: &mut Vec<XStat>) {}

    /// What to do with a queue fd just before it is closed.
    fn release_queue(&self) -> fn(BorrowedFd<'_>);

    /// The largest frame an rx queue must take on a link with this MTU.
    fn max_frame(&self, mtu: u32) -> usize;

    /// Running total of frames the kernel dropped because the application did
    /// not read them in time (`imissed`), from the link's counters or the queues'.
    fn missed(&self, link: &LinkInfo, queues: &[Arc<QueueShared>]) -> u64;

    /// Pool buffers one queue pair may hold at once (lent to the kernel for rx,
    /// in flight on tx), for sizing pools.
    fn queue_buffers(&self, pool: &PoolConfig, max_frame: usize) -> usize;

    /// What the rx engine of a queue opened with `pool` will be on this kernel,
    /// in words (`multishot`, `posted (reason)`, `read/write`).
    fn rx_engine_name(&self, pool: &PoolConfig, max_frame: usize) -> String;

    /// The rx engine for one queue.
    fn rx_engine(&self, ctx: &EngineCtx, pool: &Pool) -> Result<Box<dyn RxEngine>>;

    /// The tx engine for one queue.
    fn tx_engine(&self, ctx: &EngineCtx) -> Result<Box<dyn TxEngine>>;

    /// Counter memory the device brings (a port attached to another process's
    /// counts into that process's blocks); `None`: the port makes its own.
    fn counter_mem(&self) -> Option<Arc<CounterMem>> {
        None
    }

    /// The counter block of queue `id` in the counter memory.
    fn counter_block(&self, id: u16) -> usize {
        id as usize
    }

    /// The number of queues, when the device decides it (a port attached to
    /// another process's has the queues it was given); `None`: the options say.
    fn queue_count(&self) -> Option<u16> {
        None
    }

    /// Whether the port may change the link (state, MTU, MAC, flags): false
    /// for a port attached to another process's, which keeps that control.
    fn controls_link(&self) -> bool {
        true
    }

    /// The fds that give another process queue `q` (sent over a Unix socket):
    /// by default the queue's own fd. An AF_PACKET queue also hands over a tx
    /// socket made for that process, with a fresh ring.
    fn share_fds(&self, _iface: &Opened, q: &QueueShared) -> Result<Vec<OwnedFd>> {
        use std::os::fd::AsFd;
        Ok(vec![q.fd.as_fd().try_clone_to_owned().map_err(|e| {
            crate::error::Error::sys("dup queue fd", e)
        })?])
    }

    /// What another process needs to know to run this device's queues, as
    /// `key=value` words (an AF_PACKET port's ring geometry).
    fn share_desc(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// The network namespace the device found the interface in, when it is not
    /// the opener's and the device learned it itself (a port attached to
    /// another process's).
    fn netns(&self) -> Option<OwnedFd> {
        None
    }
}
