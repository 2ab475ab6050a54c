//! The TAP device: a kernel TAP interface (`IFF_TAP | IFF_NO_PI |
//! IFF_MULTI_QUEUE | IFF_VNET_HDR`) behind a [`Port`](crate::Port), and the TUN
//! (`IFF_TUN`, IP packets: [`TapConfig::tun`]) on the same code.
//!
//! - `config.rs`: [`TapConfig`] (pure).
//! - `spec.rs`: the `tap:` and `tun:` spec keys ([`spec`]).
//! - `device.rs`: create or attach, keep-alive fd, queue fds, owner/group; the
//!   device seam's traits implemented for TAP (how the port layer opens a
//!   `TapConfig`, and the device); the engines are the fd engines.
//! - `offloads.rs`: `TUNSETOFFLOAD` negotiation (USO and ECN dropped if refused).
//! - `share.rs`: what another process gets when the port is served (the queue fd).
//! - `adopt.rs`: queue fds opened elsewhere ([`QueueFds`]), checked and adopted.

mod adopt;
pub mod config;
mod device;
mod offloads;
mod share;
pub mod spec;

pub use crate::device::validate_name;
pub use adopt::QueueFds;
pub use config::{TapConfig, DEFAULT_NAME};
