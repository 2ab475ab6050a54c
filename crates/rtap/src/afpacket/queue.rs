//! The state of one AF_PACKET queue that its engines and the device share: the
//! sockets' rings, the queue's own counters, and where the last engines left
//! the tx ring.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Mutex;

use super::ring::Ring;
use crate::backend::kick::{self, KickCounters};

/// Counters a queue's engines and the device keep besides the common ones.
/// Each has one writer (the engine, or the control thread reading the kernel's
/// statistics, whose reads clear them and are added here).
#[derive(Debug, Default)]
pub(crate) struct QueueCounters {
    /// Rx frames this host sent out of the interface (`PACKET_OUTGOING`), skipped.
    pub outgoing: AtomicU64,
    /// Rx frame headers whose offsets or lengths point outside their slot or
    /// block (a corrupt ring), counted as rx errors; a V3 block ends there.
    pub corrupt: AtomicU64,
    /// Rx frames whose partial checksum rtap completed in software.
    pub sw_csum: AtomicU64,
    /// What the tx kicks did.
    pub kick: KickCounters,
    /// Bursts that found the tx ring full.
    pub ring_full: AtomicU64,
    /// Tx frames the kernel refused (`TP_STATUS_WRONG_FORMAT`), counted as tx errors.
    pub wrong_format: AtomicU64,
    /// Tx frames larger than a slot, refused before the ring (counted as tx errors).
    pub oversized: AtomicU64,
}

impl QueueCounters {
    /// Adds `n` to a counter this thread alone writes.
    pub fn add(c: &AtomicU64, n: u64) {
        kick::add(c, n)
    }
}

/// One queue of a packet port: its sockets' rings and counters.
pub(crate) struct PacketQueue {
    pub rx: Ring,
    pub tx: Ring,
    /// The socket whose tx ring this queue sends from (the queue's fd is the
    /// rx socket): TPACKET_V2, protocol 0, virtio-net header always on.
    pub tx_sock: OwnedFd,
    pub v3: bool,
    pub counters: QueueCounters,
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
