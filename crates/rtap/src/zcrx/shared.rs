//! What every ring sharing a zcrx queue uses: the area buffers live in, the
//! refill ring (behind a lock: the kernel does not synchronise refill
//! producers), and the kernel's statistics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::cqe::AreaGeom;
use super::refill::Refill;
use crate::sys::mem::Region;
use crate::sys::zcrx as abi;
use crate::sys::zcrx::Rqe;

/// State every ring sharing the queue uses: the area buffers live in, the refill
/// ring, the kernel's statistics.
pub(crate) struct Shared {
    area: Region,
    area_len: usize,
    /// Buffer size the kernel uses.
    pub(crate) buf_len: u32,
    /// The area token refill entries carry.
    pub(crate) token: u64,
    refill: Mutex<Refill>,
    /// Offset of the kernel's `zcrx_stats` in the refill region.
    stats_off: Option<usize>,
    /// Device-less: refill entries are taken only on `ZCRX_CTRL_FLUSH_RQ`.
    pub(crate) nodev: bool,
    /// Refill entries published so far (by every receiver).
    published: AtomicU64,
}

impl Shared {
    /// The state of a queue registered over `area` (`area_len` bytes of
    /// `buf_len`-byte buffers, refill entries carrying `token`), its refill ring
    /// `refill` with the kernel's statistics at `stats_off` where it keeps them.
    pub(super) fn new(
        area: Region,
        area_len: usize,
        buf_len: u32,
        token: u64,
        refill: Refill,
        stats_off: Option<usize>,
        nodev: bool,
    ) -> Shared {
        Shared {
            area,
            area_len,
            buf_len,
            token,
            refill: Mutex::new(refill),
            stats_off,
            nodev,
            published: AtomicU64::new(0),
        }
    }

    /// Buffers in the area.
    pub(crate) fn buffers(&self) -> usize {
        self.area_len / self.buf_len as usize
    }

    /// The area's geometry, to check completions against.
    pub(crate) fn geom(&self) -> AreaGeom {
        AreaGeom {
            token: self.token,
            len: self.area_len as u64,
            buf_len: self.buf_len,
        }
    }

    /// Address of `len` bytes at area offset `off`, if they lie inside the area.
    pub(crate) fn area_ptr(&self, off: u64, len: u32) -> Option<*const u8> {
        let end = off.checked_add(u64::from(len))?;
        if end > self.area_len as u64 {
            return None;
        }
        Some(self.area.as_ptr().wrapping_add(off as usize).cast_const())
    }

    /// Publishes refill entries (what does not fit waits for the next call).
    pub(crate) fn refill(&self, batch: &[Rqe]) {
        let mut r = self.refill.lock().unwrap_or_else(|e| e.into_inner());
        let n = r.push(batch);
        self.published.fetch_add(n as u64, Ordering::Release);
    }

    /// Refill entries published so far.
    pub(crate) fn published(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    /// Pushes the backlog, if any; returns entries still waiting and entries the
    /// kernel has not consumed.
    pub(crate) fn refill_state(&self) -> (usize, u32) {
        let mut r = self.refill.lock().unwrap_or_else(|e| e.into_inner());
        if r.backlog() > 0 {
            let n = r.push(&[]);
            self.published.fetch_add(n as u64, Ordering::Release);
        }
        (r.backlog(), r.in_flight())
    }

    /// The kernel's copy statistics, where it keeps them.
    pub(crate) fn kernel_stats(&self) -> Option<abi::ZcrxStats> {
        let off = self.stats_off?;
        let r = self.refill.lock().unwrap_or_else(|e| e.into_inner());
        Some(r.read_stats(off))
    }
}
