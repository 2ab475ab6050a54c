//! Sharing a port between processes: the process that opened a port serves its
//! queue pairs on a Unix socket ([`Port::serve`](crate::Port::serve)); another
//! process attaches with a [`SharedConfig`] (or a `shared:path=...` spec),
//! receives the queues' fds and runs its own engines on them.
//!
//! - The serving process keeps the link (state, MTU, MAC), the offloads and the
//!   port's lifecycle; an attached port refuses link changes
//!   ([`Error::NotLinkOwner`](crate::Error::NotLinkOwner)) but reads the link and
//!   subscribes to its events.
//! - Who may attach: the server checks the peer's credentials (`SO_PEERCRED`)
//!   against allowed uids and gids (default: its own uid and root); the socket
//!   file is created with mode 0600. A refused peer gets
//!   [`Error::ShareRefused`](crate::Error::ShareRefused), and no fd.
//! - A queue pair belongs to one process at a time: attaching a taken one fails
//!   with [`Error::SharedQueueTaken`](crate::Error::SharedQueueTaken); it comes
//!   back when its holder's connection closes (the port dropped, the process
//!   exiting or killed).
//! - Counters: every port keeps its queues' counters in a memfd; an attached
//!   port counts into the serving port's blocks, so the serving port's
//!   [`stats`](crate::Port::stats) include the queues other processes run.
//!
//! ```no_run
//! use rtap::share::{ServeConfig, SharedConfig};
//! use rtap::{Port, TapConfig};
//! // Process A:
//! let mut port = Port::open(TapConfig::new("tap0").queues(4))?;
//! port.start()?;
//! let server = port.serve(ServeConfig::new("/run/rtap-tap0.sock"))?;
//! // Process B:
//! let mut b = Port::open(SharedConfig::new("/run/rtap-tap0.sock").queue_list(&[2, 3]))?;
//! b.start()?; // does not touch the link
//! # Ok::<(), rtap::Error>(())
//! ```
//!
//! Tap and AF_PACKET ports. A tap queue is its fd. An AF_PACKET queue is its rx
//! socket (whose ring the attached process maps: the reader's position lives
//! in the shared counter block, and a reader that starts scans the ring for
//! the oldest frame, so a holder killed mid-burst leaves nothing stuck) plus a
//! tx socket the server makes for that process (the kernel's place in a tx
//! ring cannot be read back, so tx rings are never handed over). Kernel
//! statistics that clear on read (`PACKET_STATISTICS`) are read by whichever
//! process asks: `imissed` is split between them.

mod config;
pub(crate) mod device;
mod proto;
mod server;

pub use config::SharedConfig;
pub use device::status;
pub use proto::{parse_queue_sel, QueueHolder, QueueSel};
pub use server::{ServeConfig, Server, ServerStats};
