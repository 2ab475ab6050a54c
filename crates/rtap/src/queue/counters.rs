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

/// The counters of one queue pair. Only `AtomicU64`s (see [`QueueBlock::words`]).
#[derive(Default)]
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
    /// What the queue's tx kicks did (devices whose tx ring is kicked).
    pub kick: KickCounters,
    /// The device's own counters of the queue, named by the device, one
    /// writer each (whoever runs the queue), so a lent queue's count where
    /// the serving port reads them.
    pub dev_x: [std::sync::atomic::AtomicU64; DEV_X],
}

/// What the kicks of one queue did. Single writer: the queue's tx engine.
#[derive(Debug, Default)]
#[repr(C)]
pub(crate) struct KickCounters {
    /// Ring walks requested (a `send()` or an io_uring send).
    pub kicks: AtomicU64,
    /// io_uring kicks that had to wake the sleeping SQ thread (a syscall).
    pub sq_wakeups: AtomicU64,
    /// Kicks the kernel answered with `EAGAIN` (socket send buffer full).
    pub kick_eagain: AtomicU64,
    /// Kicks that failed otherwise (`ENOBUFS`: the device dropped a frame,
    /// which the kernel re-arms; `ENETDOWN`; ...).
    pub kick_errors: AtomicU64,
    /// Tx queues that were to kick through io_uring but could not make the
    /// ring when they opened (io_uring refused after the port opened) and
    /// kick with `send()` instead.
    pub fallbacks: AtomicU64,
}

/// Slots of [`QueueBlock::dev_x`].
pub(crate) const DEV_X: usize = 8;

/// Words of a [`QueueBlock`].
const WORDS: usize = size_of::<QueueBlock>() / 8;
/// Word index of `dev`: positions, copied rather than added up.
const DEV_WORDS: std::ops::Range<usize> = {
    let start = std::mem::offset_of!(QueueBlock, dev) / 8;
    start..start + 2
};
const _: () = assert!(size_of::<QueueBlock>() % 8 == 0 && align_of::<QueueBlock>() == 8);

impl QueueBlock {
    /// The block as its words. Every field is an `AtomicU64` (or an array or
    /// `repr(C)` struct of them), so the block is exactly `WORDS` of them.
    fn words(&self) -> &[AtomicU64; WORDS] {
        // SAFETY: `QueueBlock` is `repr(C)` and made only of `AtomicU64`s (the
        // types above, each `repr(C)` of `AtomicU64`s), so it has no padding and
        // the same size and alignment as `[AtomicU64; WORDS]` (asserted).
        unsafe { &*(self as *const QueueBlock).cast::<[AtomicU64; WORDS]>() }
    }

    /// Adds `other`'s counts into this block and takes its positions (a lent
    /// block coming home). Atomic adds: the caller need not be the writer.
    pub(crate) fn fold(&self, other: &QueueBlock) {
        for (i, (a, b)) in self.words().iter().zip(other.words()).enumerate() {
            let v = b.load(Ordering::Relaxed);
            if DEV_WORDS.contains(&i) {
                a.store(v, Ordering::Relaxed);
            } else {
                a.fetch_add(v, Ordering::Relaxed);
            }
        }
    }

    /// A copy of this block's positions, every count zero (the block lent to
    /// a new holder).
    pub(crate) fn positions_into(&self, fresh: &QueueBlock) {
        for (a, b) in self.dev.iter().zip(&fresh.dev) {
            b.store(a.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// `a` and `b` added up (positions from `b`), in memory of this process.
    pub(crate) fn sum(a: &QueueBlock, b: &QueueBlock) -> Box<QueueBlock> {
        let s = Box::<QueueBlock>::default();
        s.fold(a);
        s.fold(b);
        s
    }
}

#[repr(C)]
struct Header {
    magic: u64,
    block_size: u32,
    blocks: u32,
}

const _: () = assert!(size_of::<Header>() == 16);

const MAGIC: u64 = 0x7274_6170_6374_7233; // "rtapctr3": one block per memfd, a fresh one per lend
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
        for (a, w) in m.header_words().iter().zip(m.expected_header()) {
            a.store(w, Ordering::Relaxed);
        }
        Ok(m)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_adds_counts_and_takes_positions() {
        let home = QueueBlock::default();
        let lent = QueueBlock::default();
        home.rx.add(3, 300, 1, 0);
        home.dev[0].store(7, Ordering::Relaxed);
        home.positions_into(&lent);
        assert_eq!(lent.dev[0].load(Ordering::Relaxed), 7);
        assert_eq!(
            lent.rx.snapshot().packets,
            0,
            "a fresh block counts from zero"
        );
        lent.rx.add(2, 200, 0, 5);
        lent.kick.kicks.store(4, Ordering::Relaxed);
        lent.dev_x[DEV_X - 1].store(9, Ordering::Relaxed);
        lent.dev_counts[1].store(u64::MAX, Ordering::Relaxed);
        lent.dev[0].store(11, Ordering::Relaxed);
        let sum = QueueBlock::sum(&home, &lent);
        assert_eq!(sum.rx.snapshot().packets, 5);
        assert_eq!(sum.dev[0].load(Ordering::Relaxed), 11);
        home.fold(&lent);
        let s = home.rx.snapshot();
        assert_eq!((s.packets, s.bytes, s.errors, s.nombuf), (5, 500, 1, 5));
        assert_eq!(home.kick.kicks.load(Ordering::Relaxed), 4);
        assert_eq!(home.dev_x[DEV_X - 1].load(Ordering::Relaxed), 9);
        assert_eq!(home.dev_counts[1].load(Ordering::Relaxed), u64::MAX);
        assert_eq!(
            home.dev[0].load(Ordering::Relaxed),
            11,
            "positions taken over"
        );
        // Garbage wraps, nothing panics.
        home.fold(&lent);
        assert_eq!(home.dev_counts[1].load(Ordering::Relaxed), u64::MAX - 1);
    }
}
