//! Zero-copy TCP receive with io_uring (zcrx), and a copy fallback with the same API.
//!
//! A [`Queue`] binds to one interface queue: a NIC's hardware rx queue (device
//! mode, payload DMA'd straight into memory rtap registered), the kernel's
//! device-less mode (Linux 7.1+, every byte copied by the kernel, the same API),
//! or no zcrx at all (copy mode: multishot `recv` into provided buffers). Which
//! one it got, and why it copies if it does, is in [`Queue::mode`] and
//! [`Queue::fallback_reason`]; [`probe`] says what the kernel offers.
//!
//! Receiving happens on [`Receiver`]s: each is an io_uring driven by one thread,
//! with TCP connections added to it. Several receivers, on several threads, can
//! share one queue ([`Queue::receiver`] imports the queue into each one's ring,
//! Linux 6.19+); they then share its memory and its refill ring, which rtap
//! synchronises (the kernel does not).
//!
//! ```no_run
//! use rtap::zcrx::{Event, Queue, QueueConfig};
//! let q = Queue::open(&QueueConfig::nodev())?; // copies, with the reason, where zcrx is not there
//! let mut rx = q.receiver()?;
//! let conn = rx.add(std::net::TcpStream::connect("127.0.0.1:5201")?)?;
//! let mut events = Vec::new();
//! loop {
//!     rx.poll(&mut events, None)?;
//!     for ev in events.drain(..) {
//!         match ev {
//!             Event::Data { buf, .. } => { let _bytes: &[u8] = &buf; } // dropped: back to the kernel
//!             Event::Closed { .. } => return Ok(()),
//!             _ => {}
//!         }
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Buffers ([`RxBuf`]) borrow the queue's memory and go back to the kernel when
//! dropped; a buffer can be kept past the poll that produced it, past the end of
//! its connection and past its receiver, without leaking or dangling.
// unsafe is allowed where the module owns a kernel interface: shared memory
// (buf, bufring, refill, shared) and ring registrations and SQEs (register,
// receiver).
#![allow(unsafe_code)]

#[deny(unsafe_code)]
mod config;
#[deny(unsafe_code)]
pub(crate) mod cqe;
#[deny(unsafe_code)]
mod device;
#[deny(unsafe_code)]
mod probe;

mod buf;
mod bufring;
mod queue;
mod receiver;
mod refill;
mod register;
mod shared;

pub use buf::RxBuf;
pub use config::{QueueConfig, QueueKind};
pub use probe::{probe, ZcrxProbe};
pub use queue::{KernelStats, Mode, Queue};
pub use receiver::{ConnId, Event, Receiver, ReceiverStats};
