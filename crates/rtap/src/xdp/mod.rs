//! The AF_XDP device: a port on an interface that already exists (a veth, a
//! NIC, a tap), through XDP sockets whose UMEM is rtap's pool memory, so a
//! received frame is a pool packet without a copy and a packet of that pool
//! is sent without one; frames reach the sockets through an XDP program
//! (rtap's own, built from instructions here and attached with a BPF link, or
//! one the user runs, whose pinned XSKMAP rtap fills).
//!
//! - `config.rs`: [`XdpConfig`] (pure).
//! - `spec.rs`: the `xdp:` spec keys ([`spec`]).
//! - `device.rs`: device setup: the interface, the program and its map, the
//!   kick; the device seam's traits for AF_XDP.
//! - `prog.rs`: rtap's XDP program as BPF instructions (pure).
//! - `filter.rs`: a capture filter (classic BPF) translated into that
//!   program, so frames it drops never reach the sockets (pure).
//! - `ebpf.rs`: eBPF instruction encodings and a small assembler (pure).
//! - `queue.rs`: one queue's state, and the binding its engines share.
//! - `xsk.rs`: one bound socket: UMEM registration (or sharing), rings, the
//!   buffers lent to the kernel, close before the buffers come back.
//! - `ring.rs`: the rings in their mappings (Acquire/Release handover); the
//!   module's only unsafe.
//! - `desc.rs`: what a descriptor names, checked before use (pure, fuzzed).
//! - `counters.rs`: the queue's own counters and the kernel's statistics.
//! - `rx.rs`, `tx.rs`: the rx and tx paths.

pub mod config;
mod counters;
pub(crate) mod desc;
mod device;
mod ebpf;
mod errors;
pub(crate) mod filter;
mod prog;
mod queue;
#[allow(unsafe_code)]
pub(crate) mod ring;
mod rx;
pub mod spec;
mod tx;
mod xsk;

pub use config::{Attach, Prog, XdpConfig, XdpMode, DEFAULT_RING};
