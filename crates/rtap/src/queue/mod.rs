//! The queue layer, the same for every device: the rx and tx handles an
//! application drives ([`RxQueue`], [`TxQueue`]), the state a queue pair shares
//! with its port (fd, counters, who holds it), transmit preparation (offload
//! requests into virtio-net headers), the classification behind the extended
//! statistics, and interrupt fds.
//!
//! The I/O itself is an engine's ([`engine`]): a device supplies one per
//! direction when a queue is opened, and the handles call it once per burst
//! through a trait object, without knowing which engine it is.

mod classify;
#[allow(unsafe_code)] // shared counter memory
pub(crate) mod counters;
pub(crate) mod engine;
pub mod features;
mod frame;
mod rx;
mod shared;
mod tx;
pub(crate) mod txprep;

pub use features::{Engine, Kick, RingFeatures, RxMode, TaskRun, TxOffload};
pub use frame::{Frame, FrameSegments};
pub use rx::{RxQueue, INPLACE_MAX};
pub(crate) use shared::{Dir, LendError, Lent, QueueExtra, QueueShared};
pub use tx::TxQueue;
