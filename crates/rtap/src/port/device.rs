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

use super::offloads::Offloads;
use crate::backend::uring::RingConfig;
use crate::backend::BackendKind;
use crate::error::Result;
use crate::netlink::LinkInfo;
use crate::pool::Pool;
use crate::queue::engine::{RxEngine, TxEngine};

/// The interface a device opened: its name (resolved from a template) and index.
#[derive(Clone, Debug)]
pub(crate) struct Opened {
    pub name: String,
    pub ifindex: u32,
}

/// What an engine needs to know about the queue it serves.
pub(crate) struct EngineCtx<'a> {
    /// The queue's fd.
    pub fd: RawFd,
    /// Backend chosen for the port (after fallbacks).
    pub backend: BackendKind,
    pub ring: &'a RingConfig,
    /// virtio-net header bytes in front of each frame on the fd.
    pub vnet_len: usize,
    /// Largest frame the rx engine must take.
    pub max_frame: usize,
    /// The port's shared SQPOLL ring, if any (`IORING_SETUP_ATTACH_WQ`).
    pub sq_attach: Option<RawFd>,
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

    /// Bytes of virtio-net header in front of every frame on a queue fd.
    fn vnet_len(&self) -> usize;

    /// Opens one more queue fd on the interface.
    fn open_queue(&self, iface: &Opened) -> Result<OwnedFd>;

    /// What to do with a queue fd just before it is closed.
    fn release_queue(&self) -> fn(BorrowedFd<'_>);

    /// The largest frame an rx queue must take on a link with this MTU.
    fn max_frame(&self, mtu: u32) -> usize;

    /// Running total of frames the kernel dropped because the application did
    /// not read them in time (`imissed`).
    fn missed(&self, link: &LinkInfo) -> u64;

    /// The rx engine for one queue.
    fn rx_engine(&self, ctx: &EngineCtx<'_>, pool: &Pool) -> Result<Box<dyn RxEngine>>;

    /// The tx engine for one queue.
    fn tx_engine(&self, ctx: &EngineCtx<'_>) -> Result<Box<dyn TxEngine>>;
}
