//! Where a port's queue counters live: each queue's block in a memfd of its
//! own mapped `MAP_SHARED`, so that a process the port is shared with
//! ([`crate::share`]) counts into the same memory and the serving port's
//! stats include the queues other processes run. A process is lent only the
//! memory of the queues it holds: it cannot write another queue's counters or
//! positions, and the memfds' sizes are sealed (`sys::shm`).
//!
//! A block holds only atomics with a single writer (whoever holds the queue);
//! all-zero is a valid value, and so is any other: a block a peer filled with
//! garbage makes that queue's figures wrong, nothing else (the counters wrap,
//! the sums saturate). A header names the layout so a mapping made by another
//! build is refused rather than misread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::stats::QueueCounters;
use crate::sys::shm::SharedMap;
use crate::xstats::{XCounters, RX_N, TX_N};

/// The counters of one queue pair.
#[repr(C)]
pub(crate) struct QueueBlock {
    pub rx: QueueCounters,
    pub tx: QueueCounters,
    pub rx_x: XCounters<RX_N>,
    pub tx_x: XCounters<TX_N>,
    /// The device's words about the queue that every process running it must
    /// agree on (an AF_PACKET queue's rx ring position).
    pub dev: [std::sync::atomic::AtomicU64; 2],
    /// The device's counts of the queue that every process adds to (kernel
    /// statistics that clear on read: whoever reads them adds what it read
    /// here, so the total is exact whichever process reads; an AF_PACKET
    /// queue's ring drops and freezes).
    pub dev_counts: [std::sync::atomic::AtomicU64; 2],
}

#[repr(C)]
struct Header {
    magic: u64,
    block_size: u32,
    blocks: u32,
}

const _: () = assert!(size_of::<Header>() == 16);

const MAGIC: u64 = 0x7274_6170_6374_7232; // "rtapctr2": one block per memfd
/// Bytes before the block (a cache line).
const HEADER: usize = 64;

/// The counter block of one queue, in its own memfd.
#[derive(Debug)]
pub(crate) struct CounterMem {
    map: SharedMap,
}

impl CounterMem {
    /// A zeroed block.
    pub(crate) fn new() -> std::io::Result<CounterMem> {
        let map = SharedMap::create("rtap-counters", HEADER + size_of::<QueueBlock>())?;
        let m = CounterMem { map };
        m.stamp();
        Ok(m)
    }

    /// Writes the header, before the block is lent: a peer that held it before
    /// may have written anything there.
    pub(crate) fn stamp(&self) {
        for (a, w) in self.header_words().iter().zip(self.expected_header()) {
            a.store(w, Ordering::Relaxed);
        }
    }

    /// `Header` as this build writes it, as two words: the magic, then
    /// block_size and blocks side by side as they lie in memory.
    fn expected_header(&self) -> [u64; 2] {
        let mut sizes = [0u8; 8];
        sizes[..4].copy_from_slice(&(size_of::<QueueBlock>() as u32).to_ne_bytes());
        sizes[4..].copy_from_slice(&1u32.to_ne_bytes());
        [MAGIC, u64::from_ne_bytes(sizes)]
    }

    /// The header as it is now.
    fn header(&self) -> [u64; 2] {
        let h = self.header_words();
        [h[0].load(Ordering::Relaxed), h[1].load(Ordering::Relaxed)]
    }

    /// The header's two words, as atomics: another process maps the memory.
    fn header_words(&self) -> &[AtomicU64; 2] {
        // SAFETY: the mapping holds at least HEADER bytes (checked at open,
        // made so at create), page-aligned; atomics are valid for any bytes,
        // and the mapping lives as long as `self`.
        unsafe { &*self.map.as_ptr().cast::<[AtomicU64; 2]>() }
    }

    /// Maps a block another process made; `None` if the layout is not this
    /// build's (or the memfd's size is not sealed).
    pub(crate) fn open(fd: std::os::fd::OwnedFd) -> Option<CounterMem> {
        let map = SharedMap::open(fd).ok()?;
        if map.len() < HEADER + size_of::<QueueBlock>() {
            return None;
        }
        let m = CounterMem { map };
        (m.header() == m.expected_header()).then_some(m)
    }

    /// The memfd, to lend with the queue.
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.map.fd()
    }
}

/// One queue's block, keeping its memory mapped.
#[derive(Clone)]
pub(crate) struct Block {
    mem: Arc<CounterMem>,
}

impl Block {
    pub(crate) fn new(mem: &Arc<CounterMem>) -> Block {
        Block { mem: mem.clone() }
    }

    /// The memory the block lives in (lent with its queue).
    pub(crate) fn mem(&self) -> &CounterMem {
        &self.mem
    }
}

impl std::ops::Deref for Block {
    type Target = QueueBlock;

    fn deref(&self) -> &QueueBlock {
        // SAFETY: the mapping holds HEADER + one block (checked at open, made so
        // at create), and `mem` keeps it alive; the block is 8-aligned (the
        // header is 64 bytes) and holds only atomics, valid for any bytes.
        unsafe { &*self.mem.map.as_ptr().add(HEADER).cast::<QueueBlock>() }
    }
}
