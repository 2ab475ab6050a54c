//! Copy mode's provided buffer ring: a region of equal buffers and the ring that
//! lends them to the kernel (`IORING_REGISTER_PBUF_RING`). Multishot `recv` picks
//! a buffer per completion; a buffer goes back to the kernel when its
//! [`RxBuf`](super::RxBuf) is dropped, by writing its ring entry and publishing
//! the tail with a release store (no system call).

use std::cell::Cell;
use std::sync::atomic::{AtomicU16, Ordering};

use crate::sys::mem::Region;

/// Bytes of one `io_uring_buf` entry: addr u64, len u32, bid u16, resv u16.
const ENTRY: usize = 16;
/// The shared tail: the `resv` field of entry 0.
const TAIL: usize = 14;

/// Buffers and their ring, shared (`Rc`) by a receiver and the buffers it handed out.
pub(crate) struct BufRing {
    ring: Region,
    bufs: Region,
    buf_size: u32,
    count: u16,
    tail: Cell<u16>,
    /// Buffers the kernel holds (lent, not yet completed).
    in_kernel: Cell<u32>,
}

impl BufRing {
    /// Maps `count` (a power of two) buffers of `buf_size` bytes and a ring for
    /// them; registration is the caller's (it needs the io_uring).
    pub(crate) fn new(count: u16, buf_size: u32) -> std::io::Result<BufRing> {
        Ok(BufRing {
            ring: Region::new(count as usize * ENTRY)?,
            bufs: Region::new(count as usize * buf_size as usize)?,
            buf_size,
            count,
            tail: Cell::new(0),
            in_kernel: Cell::new(0),
        })
    }

    /// Address of the ring, for registration.
    pub(crate) fn ring_addr(&self) -> u64 {
        self.ring.as_ptr() as u64
    }

    /// Bytes per buffer.
    pub(crate) fn buf_size(&self) -> u32 {
        self.buf_size
    }

    /// Entries.
    pub(crate) fn count(&self) -> u16 {
        self.count
    }

    /// Buffers the kernel holds.
    pub(crate) fn in_kernel(&self) -> u32 {
        self.in_kernel.get()
    }

    /// Lends buffer `bid` to the kernel.
    pub(crate) fn give(&self, bid: u16) {
        let t = self.tail.get();
        let i = (t & (self.count - 1)) as usize;
        let addr = self.bufs.as_ptr() as u64 + u64::from(bid) * u64::from(self.buf_size);
        // SAFETY: entry i lies inside the ring region (i < count); the kernel reads
        // it only after the tail store below covers it. The tail field of entry 0 is
        // not part of what is written here (bytes 0..14 of each entry).
        unsafe {
            let e = self.ring.as_ptr().add(i * ENTRY);
            e.cast::<u64>().write(addr);
            e.add(8).cast::<u32>().write(self.buf_size);
            e.add(12).cast::<u16>().write(bid);
        }
        let t = t.wrapping_add(1);
        self.tail.set(t);
        self.in_kernel.set(self.in_kernel.get() + 1);
        // SAFETY: bytes 14..16 of the page-aligned ring are the shared tail, a
        // 2-aligned u16; the release store publishes the entry written above.
        unsafe { &*self.ring.as_ptr().add(TAIL).cast::<AtomicU16>() }.store(t, Ordering::Release);
    }

    /// The kernel completed into `bid`: its first `len` bytes, if the buffer
    /// exists and `len` fits; the buffer is now the caller's.
    pub(crate) fn take(&self, bid: u16, len: u32) -> Option<*const u8> {
        if bid >= self.count || len > self.buf_size {
            return None;
        }
        self.in_kernel.set(self.in_kernel.get().saturating_sub(1));
        // SAFETY: bid < count, so the buffer lies inside the region.
        Some(
            unsafe {
                self.bufs
                    .as_ptr()
                    .add(bid as usize * self.buf_size as usize)
            }
            .cast_const(),
        )
    }
}
