//! Wire formats. Pure code: byte layouts and their encoders/decoders, no fds,
//! no allocation.
//!
//! - [`layout`]: walking a frame's Ethernet/VLAN/IP/TCP/UDP headers.
//! - [`checksum`]: one's complement sums, the pseudo-header, the software L4 checksum.
//! - [`mac`]: Ethernet addresses.
//! - [`prefix`]: IP addresses with a prefix length (interface addresses, routes).
//! - [`offload`]: virtio-net header fields for transmit requests, receive flags.
//! - [`vnet`]: the virtio-net header itself, encoded and decoded.
//! - [`gso`]: userspace segmentation of TSO/USO IP packets (a VPN's send path).
//! - [`gro`]: userspace coalescing of TCP segments and UDP datagrams into GSO
//!   packets (a VPN's receive path).

pub mod checksum;
pub mod gro;
pub mod gso;
pub mod layout;
pub mod mac;
pub mod offload;
pub mod prefix;
#[cfg(test)]
pub(crate) mod testutil;
pub mod vnet;
