#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

#[cfg(feature = "tokio")]
pub mod async_tokio;
pub mod backend;
pub mod error;
pub mod netlink;
pub mod pool;
pub mod spec;
pub mod stats;
pub(crate) mod sys;
pub mod tap;
pub mod wire;
pub mod xstats;

pub use backend::uring::{
    probe as probe_uring, RingConfig, RingFeatures, RxMode, SqPoll, TaskRun, UringProbe,
};
pub use backend::BackendKind;
pub use error::{Error, Result};
pub use netlink::{LinkEvent, LinkEventChannel, LinkInfo, LinkWatcher};
pub use pool::{Packet, Pool, PoolConfig};
pub use spec::parse_port_spec;
pub use stats::{PortStats, QueueStats};
pub use tap::{Netns, Offloads, RxQueue, TapConfig, TapPort, TxQueue};
pub use wire::offload::{Gso, RxCsum, RxGso, TxRequest};
pub use xstats::XStat;
