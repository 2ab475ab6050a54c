//! The device seam: what a kind of kernel interface supplies to a
//! [`Port`](crate::Port), and the generic pieces every device builds on.
//! Everything else (lifecycle, netlink link control and events, stats and
//! xstats, queue handles, the SQPOLL anchor, sharing) is the port layer's and
//! the same for every device.
//!
//! A device is a folder beside this one (`tap/`, `afpacket/`, `share/`) with:
//! - a configuration type embedding [`PortOptions`], made a [`PortSpec`] by
//!   implementing `config::DeviceConfig` (its `open` creates or attaches the
//!   interface in the port's namespace and returns the device);
//! - its spec keys, parsed with the `keys` helpers, and one `DeviceType`
//!   entry in the port layer's registry;
//! - a type implementing `Device`: the facts fixed at open ([`DeviceInfo`]),
//!   how queues are opened, where missed frames are counted, and the data-path
//!   engines of its queues;
//! - optionally, sharing (`Lend`): what another process receives to run the
//!   device's queues, and how it rebuilds the device there.
//!
//! ARCHITECTURE.md has the checklist. Nothing in here imports a device: the
//! seam sits below the devices, and the port layer (which dispatches on them
//! once, in its registry) above.

pub(crate) mod config;
pub(crate) mod keys;
mod kind;
pub(crate) mod lend;
mod name;
pub(crate) mod netns;
mod offloads;
pub(crate) mod options;

pub use crate::queue::TxOffload;
pub use config::PortSpec;
pub(crate) use config::{DeviceConfig, DeviceType, Registry};
pub use kind::DeviceKind;
pub(crate) use lend::Lend;
pub use name::validate_name;
pub use netns::Netns;
pub use offloads::Offloads;
pub use options::{validate_queues, PortOptions, MAX_QUEUES};

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;

use crate::backend::uring::SqPoll;
use crate::error::Result;
use crate::netlink::LinkInfo;
use crate::pool::{Pool, PoolConfig};
use crate::queue::counters::CounterMem;
use crate::queue::engine::{EngineCtx, RxEngine, TxEngine};
use crate::queue::{Engine, QueueExtra, QueueShared};
use crate::wire::layout::Link;
use crate::xstats::XStat;

/// What a port's device is, fixed when the port opens ([`Port::info`](crate::Port::info)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeviceInfo {
    /// The kind of device.
    pub kind: DeviceKind,
    /// What the device's frames start with: Ethernet, or the IP header (TUN).
    pub link: Link,
    /// Opening the port created the interface (it goes away with the port
    /// unless persistent); false: it attached to one that exists.
    pub created: bool,
    /// The port may change the link (state, MTU, MAC, flags): false for a port
    /// attached to another process's, which keeps that control.
    pub controls_link: bool,
    /// Offloads the kernel accepted (a subset of what was asked for).
    pub offloads: Offloads,
    /// Why offloads asked for were dropped, if any were.
    pub offload_notes: Vec<String>,
    /// What the tx path does with checksum and segmentation requests.
    pub tx_offload: TxOffload,
    /// The data path of the port's queues.
    pub engine: Engine,
    /// Why the engine is not the one asked for, if it is not (io_uring
    /// unavailable, SQPOLL refused, ...).
    pub engine_reason: Option<String>,
    /// The tx engine in words (for `rtap info`).
    pub tx_engine: String,
    /// Frames the port sends go through the interface's qdisc, so
    /// `Port::start` waits until the kernel has attached it.
    pub tx_through_qdisc: bool,
    /// The SQPOLL thread the device's rings attach to, if any: the port holds
    /// the process's shared anchor for it and hands its fd to the engines.
    pub sqpoll: Option<SqPoll>,
    /// The largest pool buffer stride the device's queues take, if they take
    /// the pool's memory as their own (an xdp port's UMEM chunks: a page);
    /// `None`: any pool.
    pub max_buffer: Option<usize>,
}

/// The interface a device opened: its name (resolved from a template) and index.
#[derive(Clone, Debug)]
pub(crate) struct Opened {
    pub name: String,
    pub ifindex: u32,
}

/// What opening a device gives the port.
pub(crate) struct OpenedDevice {
    pub dev: Arc<dyn Device>,
    pub iface: Opened,
    /// Set for a port attached to another process's: what it brought along.
    pub attached: Option<Attached>,
}

/// What a port attached to another process's brings: that process's counter
/// block of each queue it lent (in local order: the queue count), and the
/// namespace the interface lives in when that is not the opener's.
pub(crate) struct Attached {
    pub counters: Vec<Arc<CounterMem>>,
    pub netns: Option<OwnedFd>,
}

/// A queue opened by a device.
pub(crate) struct QueueFd {
    /// The fd both directions use (the port keeps it open).
    pub fd: OwnedFd,
    /// The device's own state of the queue, handed to its engines.
    pub extra: Option<QueueExtra>,
    /// Runs on the fd just before it closes (a TAP queue detaches itself).
    pub release: fn(BorrowedFd<'_>),
}

/// A release that does nothing.
pub(crate) fn keep_fd(_: BorrowedFd<'_>) {}

/// One kind of kernel interface behind a port. Setup methods run in the port's
/// network namespace (the port enters it on a helper thread); engine methods run
/// on the thread that opens the queue.
pub(crate) trait Device: Send + Sync {
    /// The facts fixed at open.
    fn info(&self) -> &DeviceInfo;

    /// Opens queue `id` on the interface.
    fn open_queue(&self, iface: &Opened, id: u16) -> Result<QueueFd>;

    /// Runs once the link is up (`Port::start`), with every queue open: an
    /// AF_PACKET port joins its sockets into their fanout group here (the
    /// kernel takes only sockets of a running interface).
    fn start(&self, _queues: &[Arc<QueueShared>]) -> Result<()> {
        Ok(())
    }

    /// Running total of frames the kernel dropped because the application did
    /// not read them in time (`imissed`), from the link's counters or the queues'.
    fn missed(&self, link: &LinkInfo, queues: &[Arc<QueueShared>]) -> u64;

    /// Appends the device's own extended statistics of queue `q`, named
    /// `rx_q{N}_...`/`tx_q{N}_...` like the common ones.
    fn extra_xstats(&self, _q: &QueueShared, _out: &mut Vec<XStat>) {}

    /// Pool buffers one queue pair may hold at once (lent to the kernel for rx,
    /// in flight on tx), for sizing pools.
    fn queue_buffers(&self, pool: &PoolConfig, max_frame: usize) -> usize;

    /// What the rx engine of a queue opened with `pool` will be on this kernel,
    /// in words (`multishot`, `posted (reason)`, `read/write`, a ring).
    fn rx_engine_name(&self, pool: &PoolConfig, max_frame: usize) -> String;

    /// The rx engine for one queue.
    fn rx_engine(&self, ctx: &EngineCtx, pool: &Pool) -> Result<Box<dyn RxEngine>>;

    /// The tx engine for one queue.
    fn tx_engine(&self, ctx: &EngineCtx) -> Result<Box<dyn TxEngine>>;

    /// Attaches classic BPF program `prog` to the queues' receive path in the
    /// kernel (`None`: removes it). [`FilterPlace::User`] with the reason if
    /// this device has no such filter, or cannot run this program there (the
    /// application then runs it on what it receives).
    ///
    /// [`FilterPlace::User`]: crate::capture::FilterPlace::User
    fn attach_filter(
        &self,
        _queues: &[Arc<QueueShared>],
        prog: Option<&crate::capture::bpf::Program>,
    ) -> Result<crate::capture::FilterPlace> {
        Ok(match prog {
            Some(_) => crate::capture::FilterPlace::User(
                "this kind of port has no receive filter in the kernel".into(),
            ),
            None => crate::capture::FilterPlace::Removed,
        })
    }

    /// Whether this device's engines can serve a queue pair driven by one
    /// thread at a time, not always the same one (when [`EngineCtx::roaming`]
    /// asks), or what to do instead.
    #[cfg(all(feature = "mt", feature = "tokio"))]
    fn roaming(&self) -> std::result::Result<(), &'static str> {
        Err("this kind of port's queues are tied to the thread that opens them: use MtDrive::Thread")
    }

    /// How another process gets this device's queues, or why this port
    /// cannot be served (what to do instead).
    fn lend(&self) -> std::result::Result<&dyn Lend, &'static str> {
        Err("this kind of port cannot be served to other processes")
    }
}
