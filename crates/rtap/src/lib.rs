#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![deny(missing_debug_implementations)]
// unsafe lives only in the modules that own kernel interfaces (sys, backend,
// pool, async_tokio, afpacket::ring, xdp::ring, queue::counters, the zcrx
// modules that own shared memory) and the one call in mt::inline that hands
// a queue pair to pool::Roaming, each block with a SAFETY comment.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod afpacket;
#[cfg(feature = "tokio")]
#[allow(unsafe_code)]
pub mod async_tokio;
#[allow(unsafe_code)]
pub mod backend;
pub mod capture;
pub mod device;
pub mod error;
#[cfg(fuzzing)]
#[doc(hidden)]
#[allow(missing_docs)]
pub mod fuzzing;
#[cfg(feature = "mt")]
pub mod mt;
pub mod netlink;
#[allow(unsafe_code)]
pub mod pool;
pub mod port;
pub(crate) mod queue;
pub mod share;
pub mod stats;
#[allow(unsafe_code)]
pub(crate) mod sys;
pub mod tap;
pub mod wire;
pub mod xdp;
pub mod xstats;
pub mod zcrx;

pub use afpacket::{Fanout, FanoutMode, PacketConfig, Tpacket};
pub use backend::uring::{probe as probe_uring, RingConfig, SqPoll, UringProbe};
pub use backend::BackendKind;
pub use device::{DeviceInfo, DeviceKind, Netns, Offloads, PortOptions, PortSpec};
pub use error::{Error, Result};
pub use netlink::{LinkEvent, LinkEventChannel, LinkInfo, LinkWatcher};
pub use pool::{Packet, Pool, PoolConfig};
pub use port::{parse_port_spec, Port};
pub use queue::{
    Engine, Frame, FrameSegments, Kick, RingFeatures, RxMode, RxQueue, TaskRun, TxOffload, TxQueue,
    INPLACE_MAX,
};
pub use stats::{PortStats, QueueStats};
pub use tap::{QueueFds, TapConfig};
pub use wire::mac::MacAddr;
pub use wire::offload::{Gso, RxCsum, RxGso, TxRequest};
pub use wire::prefix::IpPrefix;
pub use xdp::XdpConfig;
pub use xstats::XStat;

// What the threading model promises, held by the compiler: a port is shared
// between worker threads; pools and queues stay on the thread that made them
// (no locks or atomic read-modify-writes on the data path); packets go
// anywhere (their buffers come back to their pool's thread).
static_assertions::assert_impl_all!(Port: Send, Sync);
static_assertions::assert_not_impl_any!(Pool: Send, Sync);
static_assertions::assert_impl_all!(Packet: Send, Sync);
// Multi-thread async handles: any task, any thread.
#[cfg(feature = "mt")]
static_assertions::assert_impl_all!(mt::MtQueue: Send, Sync);
#[cfg(feature = "mt")]
static_assertions::assert_impl_all!(mt::MtRx: Send, Sync, Clone);
#[cfg(feature = "mt")]
static_assertions::assert_impl_all!(mt::MtTx: Send, Sync, Clone);
static_assertions::assert_not_impl_any!(RxQueue: Send, Sync);
static_assertions::assert_not_impl_any!(TxQueue: Send, Sync);
// zcrx: a queue is shared between threads; a receiver and its buffers stay on
// the thread that polls it (buffers return through its local batch).
static_assertions::assert_impl_all!(zcrx::Queue: Send, Sync);
static_assertions::assert_not_impl_any!(zcrx::Receiver: Send, Sync);
static_assertions::assert_not_impl_any!(zcrx::RxBuf: Send, Sync);
