//! Where a port's queue counters live: one block per queue in a memfd mapped
//! `MAP_SHARED`, so that a process the port is shared with
//! ([`crate::share`]) counts into the same memory and the serving port's
//! stats include the queues other processes run.
//!
//! A block holds only atomics with a single writer (whoever holds the queue);
//! all-zero is a valid value. A header names the layout so a mapping made by
//! another build is refused rather than misread.

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
}

#[repr(C)]
struct Header {
    magic: u64,
    block_size: u32,
    blocks: u32,
}

const MAGIC: u64 = 0x7274_6170_6374_7231; // "rtapctr1"
/// Bytes before the first block (a cache line).
const HEADER: usize = 64;

/// The counter blocks of a port.
#[derive(Debug)]
pub(crate) struct CounterMem {
    map: SharedMap,
    blocks: usize,
}

impl CounterMem {
    /// Blocks for `blocks` queues, zeroed.
    pub(crate) fn new(blocks: usize) -> std::io::Result<CounterMem> {
        let map = SharedMap::create("rtap-counters", HEADER + blocks * size_of::<QueueBlock>())?;
        // SAFETY: the mapping is at least HEADER bytes, page-aligned, and nothing
        // else refers to it yet.
        unsafe {
            map.as_ptr().cast::<Header>().write(Header {
                magic: MAGIC,
                block_size: size_of::<QueueBlock>() as u32,
                blocks: blocks as u32,
            })
        };
        Ok(CounterMem { map, blocks })
    }

    /// Maps blocks another process made; `None` if the layout is not this build's.
    pub(crate) fn open(fd: std::os::fd::OwnedFd) -> Option<CounterMem> {
        let map = SharedMap::open(fd).ok()?;
        if map.len() < HEADER {
            return None;
        }
        // SAFETY: the mapping holds at least a header, page-aligned.
        let h = unsafe { map.as_ptr().cast::<Header>().read() };
        let blocks = h.blocks as usize;
        if h.magic != MAGIC
            || h.block_size as usize != size_of::<QueueBlock>()
            || HEADER + blocks * size_of::<QueueBlock>() > map.len()
        {
            return None;
        }
        Some(CounterMem { map, blocks })
    }

    /// The memfd, to share.
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.map.fd()
    }

    /// Queue blocks.
    pub(crate) fn blocks(&self) -> usize {
        self.blocks
    }
}

/// One queue's block, keeping the memory mapped.
#[derive(Clone)]
pub(crate) struct Block {
    mem: Arc<CounterMem>,
    index: usize,
}

impl Block {
    /// Block `index` of `mem`; `None` past the end.
    pub(crate) fn new(mem: &Arc<CounterMem>, index: usize) -> Option<Block> {
        (index < mem.blocks).then(|| Block {
            mem: mem.clone(),
            index,
        })
    }
}

impl std::ops::Deref for Block {
    type Target = QueueBlock;

    fn deref(&self) -> &QueueBlock {
        // SAFETY: index < blocks, checked at construction, so the block lies in
        // the mapping, which `mem` keeps alive; blocks are 8-aligned (the header
        // is 64 bytes, the block a multiple of 8) and all-zero or atomics written
        // by their single writer, valid for any bytes.
        unsafe {
            &*self
                .mem
                .map
                .as_ptr()
                .add(HEADER + self.index * size_of::<QueueBlock>())
                .cast::<QueueBlock>()
        }
    }
}
