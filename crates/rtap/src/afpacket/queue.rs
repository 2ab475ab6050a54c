//! The state of one AF_PACKET queue that its engines and the device share: the
//! sockets' rings and where the last engines left the tx ring; and the slots
//! of the queue's counter block that its engines count into.

use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use super::ring::Ring;
use crate::backend::kick;
use crate::queue::counters::QueueBlock;

/// Counters a queue's engines keep besides the common ones: slots of the
/// queue's shared block (`QueueBlock::dev_x`), so a lent queue's count in
/// the serving port too. One writer each (the engine running the queue).
pub(crate) mod slot {
    /// Rx frames this host sent out of the interface (`PACKET_OUTGOING`), skipped.
    pub const OUTGOING: usize = 0;
    /// Rx frame headers whose offsets or lengths point outside their slot or
    /// block (a corrupt ring), counted as rx errors; a V3 block ends there.
    pub const CORRUPT: usize = 1;
    /// Rx frames whose partial checksum rtap completed in software.
    pub const SW_CSUM: usize = 2;
    /// Bursts that found the tx ring full.
    pub const RING_FULL: usize = 3;
    /// Tx frames the kernel refused (`TP_STATUS_WRONG_FORMAT`), counted as tx errors.
    pub const WRONG_FORMAT: usize = 4;
    /// Tx frames larger than a slot, refused before the ring (counted as tx errors).
    pub const OVERSIZED: usize = 5;
}

/// Adds `n` to a device slot of `block` (single writer).
pub(crate) fn count(block: &QueueBlock, slot: usize, n: u64) {
    kick::add(&block.dev_x[slot], n)
}

/// One queue of a packet port: its sockets' rings and counters.
pub(crate) struct PacketQueue {
    pub rx: Ring,
    pub tx: Ring,
    /// The socket whose tx ring this queue sends from (the queue's fd is the
    /// rx socket): TPACKET_V2, protocol 0, virtio-net header always on.
    pub tx_sock: OwnedFd,
    pub v3: bool,
    /// Joined the port's fanout group.
    pub fanned: AtomicBool,
    /// Where the last engines stopped: the kernel walks each ring from where it
    /// left off, so a queue taken again resumes there.
    pub saved: Mutex<Positions>,
}

/// Tx ring positions an engine resumes from (see [`PacketQueue::saved`]; the rx
/// ring's position lives in the queue's shared counter block, as every process
/// running the queue reads that ring).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Positions {
    /// Tx: oldest slot not yet reaped, the next slot to fill, and the slots
    /// between (all of them when the ring is full: head == tail then too).
    pub tx_head: u32,
    pub tx_tail: u32,
    pub tx_pending: u32,
}
