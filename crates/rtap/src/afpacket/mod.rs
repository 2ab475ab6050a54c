//! The AF_PACKET device: a port on an interface that already exists (a veth,
//! a bridge, a physical NIC, a tap someone else made), through packet sockets
//! with mmap'ed TPACKET rings.
//!
//! - `config.rs`: [`PacketConfig`], ring geometry and its rules (pure).
//! - `spec.rs`: the `packet:` spec keys ([`spec`]).
//! - `device.rs`: sockets, rings and fanout per queue; the device seam's traits
//!   implemented for AF_PACKET (how the port layer opens a `PacketConfig`, and
//!   the device); `PACKET_STATISTICS`.
//! - `queue.rs`: one queue's state (rings, counters, tx position) that its
//!   engines and the device share.
//! - `ring.rs`: slots and blocks of a ring in the shared mapping, and the
//!   status word protocol (`Acquire`/`Release`) that hands them over.
//! - `frame.rs`: rx frame headers read out of a slot or block (pure, checked).
//! - `rx.rs`: the TPACKET_V2 and V3 rx engines.
//! - `tx.rs`: the tx engine; its kick (`send()` or an SQPOLL io_uring) is the
//!   engines' shared one.
//! - `share.rs`: what another process gets when the port is served.
//!
//! Each queue is one socket; the sockets of a multi-queue port form one fanout
//! group whose id the kernel picks. Rx frames are copied from the ring into
//! pool buffers and the slot handed back at once (ARCHITECTURE.md says why);
//! tx frames are copied from pool buffers into the tx ring.

pub mod config;
mod device;
pub(crate) mod frame;
mod queue;
#[allow(unsafe_code)]
mod ring;
pub(crate) mod rx;
mod share;
pub mod spec;
mod tx;

pub use crate::queue::Kick;
pub use config::{
    Fanout, FanoutMode, PacketConfig, Tpacket, DEFAULT_FRAME_COUNT, DEFAULT_FRAME_SIZE,
    DEFAULT_OFFLOAD_FRAME_COUNT, DEFAULT_OFFLOAD_FRAME_SIZE,
};
