//! Thin, unsafe-owning wrappers over the kernel interfaces rtap uses outside io_uring:
//! tun ioctls, packet sockets and their rings, anonymous memory mappings and
//! plain file-descriptor I/O.
//!
//! Everything here takes and returns safe types; each `unsafe` block states the
//! invariant it relies on.

pub mod fd;
pub mod mem;
pub mod packet;
pub mod tun;
