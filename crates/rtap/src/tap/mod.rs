//! The TAP device: a kernel TAP interface (`IFF_TAP | IFF_NO_PI |
//! IFF_MULTI_QUEUE | IFF_VNET_HDR`) behind a [`Port`](crate::Port).
//!
//! - `config.rs`: [`TapConfig`], name validation (pure).
//! - `device.rs`: create or attach, keep-alive fd, queue fds, owner/group; the
//!   port layer's device trait implemented for TAP.
//! - `offloads.rs`: `TUNSETOFFLOAD` negotiation (USO and ECN dropped if refused).

pub mod config;
pub(crate) mod device;
mod offloads;

pub use config::{validate_name, TapConfig, DEFAULT_NAME};
