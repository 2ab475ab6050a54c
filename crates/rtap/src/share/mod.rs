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
//! use rtap::Port;
//! // Process A, with a port of any kind that can be served (a spec from its
//! // command line, say):
//! # let spec = "";
//! let port = Port::open(rtap::parse_port_spec(spec)?)?;
//! port.start()?;
//! let server = port.serve(ServeConfig::new("/run/rtap-port0.sock"))?;
//! // Process B:
//! let mut b = Port::open(SharedConfig::new("/run/rtap-port0.sock").queue_list(&[2, 3]))?;
//! b.start()?; // does not touch the link
//! # Ok::<(), rtap::Error>(())
//! ```
//!
//! Which devices can be served, and what travels for each queue, is the
//! device's to say (each device module documents its own): this module carries
//! the fds and the device's description over the socket, and the attaching
//! process rebuilds the device from them. A port that is itself attached to
//! another process's cannot be served again.

mod config;
mod device;
mod proto;
pub(crate) mod server;
pub mod spec;

pub use config::SharedConfig;
pub use device::status;
pub use proto::{parse_queue_sel, QueueHolder, QueueSel};
pub use server::{ServeConfig, Server, ServerStats};
