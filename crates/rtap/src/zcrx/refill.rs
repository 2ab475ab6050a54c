//! The refill ring of a zcrx interface queue: userspace hands buffers back to the
//! kernel by writing entries and publishing its tail; the kernel consumes them and
//! publishes its head.
//!
//! The ring lives in memory rtap mapped and registered as a region; where head,
//! tail and entries lie comes from the offsets the kernel returned at
//! registration (they differ between kernels: 7.2 keeps the tail at byte 4, 7.3
//! at byte 64). The kernel does no synchronisation between userspace producers:
//! when several rings share the queue, [`Refill`] sits behind a mutex in the
//! queue's shared state, and each receiver batches its returns locally so the
//! lock is taken once per batch, never per buffer.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::sys::mem::Region;
use crate::sys::zcrx::{RqOffsets, Rqe, ZcrxStats};

/// The producer side of one refill ring.
pub(crate) struct Refill {
    /// The registered region (kept mapped while the queue exists).
    region: Region,
    head: *const AtomicU32,
    tail: *const AtomicU32,
    rqes: *mut Rqe,
    mask: u32,
    /// Our tail: entries written up to here.
    local_tail: u32,
    /// Entries that did not fit (the kernel had not consumed enough yet); written
    /// first at the next flush. Capacity reserved for every buffer of the area,
    /// so pushing never allocates.
    overflow: Vec<Rqe>,
}

// SAFETY: the pointers point into `region`, which the Refill owns; the head is
// only read (atomically) and the tail and entries are only written through
// `&mut self`, so moving the producer to another thread is sound.
unsafe impl Send for Refill {}

impl Refill {
    /// Wraps the region the kernel registered, with the offsets it returned.
    /// `None` if the offsets do not describe `entries` entries inside the region.
    pub(crate) fn new(
        region: Region,
        len: usize,
        off: &RqOffsets,
        entries: u32,
        buffers: usize,
    ) -> Option<Refill> {
        let fits = |o: u32, n: usize| (o as usize).checked_add(n).is_some_and(|e| e <= len);
        let rq_bytes = entries as usize * std::mem::size_of::<Rqe>();
        if !entries.is_power_of_two()
            || !fits(off.head, 4)
            || !fits(off.tail, 4)
            || !fits(off.rqes, rq_bytes)
            || off.head % 4 != 0
            || off.tail % 4 != 0
            || off.rqes % 8 != 0
        {
            return None;
        }
        let base = region.as_ptr();
        // SAFETY: the offsets were checked to lie inside the region, aligned.
        let (head, tail, rqes) = unsafe {
            (
                base.add(off.head as usize).cast::<AtomicU32>().cast_const(),
                base.add(off.tail as usize).cast::<AtomicU32>().cast_const(),
                base.add(off.rqes as usize).cast::<Rqe>(),
            )
        };
        // SAFETY: tail points at a live, aligned u32 in the region; only we write it.
        let local_tail = unsafe { &*tail }.load(Ordering::Acquire);
        Some(Refill {
            region,
            head,
            tail,
            rqes,
            mask: entries - 1,
            local_tail,
            overflow: Vec::with_capacity(buffers),
        })
    }

    /// Entries the kernel has not consumed yet.
    pub(crate) fn in_flight(&self) -> u32 {
        // SAFETY: head points at a live, aligned u32 the kernel stores with release.
        let head = unsafe { &*self.head }.load(Ordering::Acquire);
        self.local_tail.wrapping_sub(head)
    }

    /// Entries waiting because the ring was full.
    pub(crate) fn backlog(&self) -> usize {
        self.overflow.len()
    }

    /// Writes as many of the backlog and then of `batch` as fit and publishes
    /// the tail with one release store. What does not fit joins the backlog.
    /// Returns the number of entries published.
    pub(crate) fn push(&mut self, batch: &[Rqe]) -> usize {
        let free = ((self.mask + 1) - self.in_flight()) as usize;
        let from_backlog = free.min(self.overflow.len());
        let from_batch = (free - from_backlog).min(batch.len());
        let mut t = self.local_tail;
        for r in self.overflow[..from_backlog]
            .iter()
            .chain(&batch[..from_batch])
        {
            let i = (t & self.mask) as usize;
            // SAFETY: i <= mask, inside the entry array checked at construction;
            // the kernel does not read entry i until the tail store below covers it.
            unsafe { self.rqes.add(i).write(*r) };
            t = t.wrapping_add(1);
        }
        self.overflow.drain(..from_backlog);
        // Within the capacity reserved for every buffer: no allocation.
        self.overflow.extend_from_slice(&batch[from_batch..]);
        let written = from_backlog + from_batch;
        if written > 0 {
            self.local_tail = t;
            // SAFETY: tail points at a live, aligned u32 in the region; the release
            // store makes the entries written above visible before the kernel sees
            // the new tail.
            unsafe { &*self.tail }.store(t, Ordering::Release);
        }
        written
    }

    /// The kernel's statistics kept at `off` in the region (checked to fit at
    /// registration).
    pub(crate) fn read_stats(&self, off: usize) -> ZcrxStats {
        let base = self.region.as_ptr();
        // SAFETY: off + 16 lies inside the region (the registration reserved it,
        // 64-aligned); the kernel updates the counters concurrently, so they are
        // read atomically.
        let (count, bytes) = unsafe {
            (
                &*base.add(off).cast::<AtomicU64>(),
                &*base.add(off + 8).cast::<AtomicU64>(),
            )
        };
        ZcrxStats {
            copy_count: count.load(Ordering::Relaxed),
            copy_bytes: bytes.load(Ordering::Relaxed),
        }
    }
}
