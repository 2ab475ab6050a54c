//! The TAP port: device setup, lifecycle, queues and statistics.

pub mod config;
mod device;
pub mod link;
mod metadata;
pub mod netns;
pub mod offloads;
mod port;
mod queue;

pub use config::{TapConfig, DEFAULT_NAME, MAX_QUEUES};
pub use netns::Netns;
pub use offloads::Offloads;
pub use port::TapPort;
pub use queue::{RxQueue, TxQueue};
