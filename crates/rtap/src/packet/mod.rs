//! The AF_PACKET device: a port on an interface that already exists (a veth,
//! a bridge, a physical NIC, a tap someone else made), through packet sockets
//! with mmap'ed TPACKET rings.
//!
//! - `config.rs`: [`PacketConfig`], ring geometry and its rules (pure).
//! - `ring.rs`: slots and blocks of a ring in the shared mapping, and the
//!   status word protocol (`Acquire`/`Release`) that hands them over.
//! - `device.rs`: sockets, rings and fanout per queue; the port layer's device
//!   trait implemented for AF_PACKET; per-queue counters and `PACKET_STATISTICS`.
//! - `rx.rs`: the TPACKET_V2 and V3 rx engines.
//! - `tx.rs`: the tx engine and its kick (`send()` or an SQPOLL io_uring).
//!
//! Each queue is one socket; the sockets of a multi-queue port form one fanout
//! group whose id the kernel picks. Rx frames are copied from the ring into
//! pool buffers and the slot handed back at once (ARCHITECTURE.md says why);
//! tx frames are copied from pool buffers into the tx ring.

pub mod config;
pub(crate) mod device;
pub(crate) mod frame;
#[allow(unsafe_code)]
mod ring;
mod rx;
mod tx;

pub use config::{
    Fanout, FanoutMode, Kick, PacketConfig, Tpacket, DEFAULT_FRAME_COUNT, DEFAULT_FRAME_SIZE,
    DEFAULT_OFFLOAD_FRAME_COUNT, DEFAULT_OFFLOAD_FRAME_SIZE,
};
