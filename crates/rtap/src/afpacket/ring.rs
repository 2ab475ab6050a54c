//! Slots of a TPACKET ring in the socket's shared mapping, and the status
//! protocol that hands each slot back and forth between kernel and user.
//!
//! A slot's first word is its status. The side that owns a slot writes its
//! contents and then stores the new status with `Release`; the other side loads
//! the status with `Acquire` before it touches the contents. While the status
//! says a slot is the user's (rx `TP_STATUS_USER`, tx `TP_STATUS_AVAILABLE`), the
//! kernel does not touch it, so reading or writing its bytes here races with
//! nothing. Every accessor below relies on that: callers own the slot they touch.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use super::config::Geometry;
use crate::sys::packet::Mapping;

/// One ring (rx or tx) inside a mapping.
pub(crate) struct Ring {
    map: Arc<Mapping>,
    /// Byte offset of the ring in the mapping.
    start: usize,
    pub geom: Geometry,
}

impl Ring {
    /// The ring at byte `start` of `map`, laid out as `geom`.
    pub fn new(map: Arc<Mapping>, start: usize, geom: Geometry) -> Ring {
        assert!(
            start + geom.ring_bytes() <= map.len(),
            "ring outside its mapping"
        );
        Ring { map, start, geom }
    }

    /// Address of byte `off` of slot `i`.
    fn at(&self, i: u32, off: usize) -> *mut u8 {
        debug_assert!(i < self.geom.frame_count && off < self.geom.frame_size as usize);
        // SAFETY: slot i lies inside the ring, which lies inside the mapping (checked
        // in new), and off is inside the slot.
        unsafe {
            self.map
                .as_ptr()
                .add(self.start + self.geom.slot_offset(i) + off)
        }
    }

    /// The status word of slot `i`, loaded with `Acquire`: once it says the slot
    /// is the user's, the slot's contents written before it are visible.
    pub fn status(&self, i: u32) -> u32 {
        // SAFETY: the status is the slot's first, 16-byte aligned u32; the kernel
        // accesses it atomically too (smp_store_release / READ_ONCE + barriers).
        unsafe { (*self.at(i, 0).cast::<AtomicU32>()).load(Ordering::Acquire) }
    }

    /// Stores slot `i`'s status with `Release`: everything written to the slot
    /// before is visible to the kernel once it sees the new status.
    pub fn set_status(&self, i: u32, v: u32) {
        // SAFETY: as in status().
        unsafe { (*self.at(i, 0).cast::<AtomicU32>()).store(v, Ordering::Release) }
    }

    /// When the kernel took the frame in slot `i` (`tp_sec << 32 | tp_nsec`),
    /// to order slots the user owns.
    pub fn v2_time(&self, i: u32) -> u64 {
        // SAFETY: tp_sec and tp_nsec are u32s at bytes 16 and 20 of the header
        // of a slot the user owns.
        unsafe {
            u64::from(self.at(i, 16).cast::<u32>().read()) << 32
                | u64::from(self.at(i, 20).cast::<u32>().read())
        }
    }

    /// The whole of slot `i`, header first (the user owns the slot).
    pub fn slot(&self, i: u32) -> &[u8] {
        self.bytes(i, 0, self.geom.frame_size as usize)
    }

    /// `len` bytes of slot `i` from `off` (the user owns the slot, and the
    /// range lies in it: callers check against the header's lengths).
    pub fn bytes(&self, i: u32, off: usize, len: usize) -> &[u8] {
        assert!(
            off + len <= self.geom.frame_size as usize,
            "read past the slot"
        );
        // SAFETY: the range is inside the slot (asserted); the kernel does not write
        // a slot the user owns, so the bytes stay put while the slice lives (until
        // the caller hands the slot back, which takes &self after the slice ends).
        unsafe { std::slice::from_raw_parts(self.at(i, off), len) }
    }

    /// Copies `data` into slot `i` at `off` (the user owns the slot).
    pub fn write(&self, i: u32, off: usize, data: &[u8]) {
        assert!(
            off + data.len() <= self.geom.frame_size as usize,
            "write past the slot"
        );
        // SAFETY: the range is inside the slot (asserted), which the kernel does not
        // read while it is AVAILABLE; data is a live slice elsewhere in memory.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.at(i, off), data.len()) }
    }

    /// Copies `len` bytes of slot `src` at `off` over slot `dst` at `off` (both owned).
    pub fn copy_slot(&self, src: u32, dst: u32, off: usize, len: usize) {
        assert!(off + len <= self.geom.frame_size as usize && src != dst);
        // SAFETY: both ranges lie in distinct slots of the ring, both owned by the user.
        unsafe { std::ptr::copy_nonoverlapping(self.at(src, off), self.at(dst, off), len) }
    }

    /// Sets `tp_len` of tx slot `i` (the user owns it).
    pub fn set_tx_len(&self, i: u32, len: u32) {
        // SAFETY: tp_len is the slot header's second u32; the user owns the slot.
        unsafe { self.at(i, 4).cast::<u32>().write(len) }
    }

    /// `tp_len` of tx slot `i`.
    pub fn tx_len(&self, i: u32) -> u32 {
        // SAFETY: as above.
        unsafe { self.at(i, 4).cast::<u32>().read() }
    }
}

/// A TPACKET_V3 rx block: its descriptor fields and packets.
impl Ring {
    /// `block_status` of block `b`, loaded with `Acquire`.
    pub fn block_status(&self, b: u32) -> u32 {
        // SAFETY: block_status is the u32 at byte 8 of the block descriptor at the
        // block's start (8-byte aligned); the kernel stores it with a release barrier.
        unsafe { (*self.block(b, 8).cast::<AtomicU32>()).load(Ordering::Acquire) }
    }

    /// Hands block `b` back to the kernel (`TP_STATUS_KERNEL`, `Release`).
    pub fn release_block(&self, b: u32) {
        // SAFETY: as in block_status().
        unsafe { (*self.block(b, 8).cast::<AtomicU32>()).store(0, Ordering::Release) }
    }

    /// The whole of block `b`, descriptor first (the user owns the block).
    pub fn block_slice(&self, b: u32) -> &[u8] {
        // SAFETY: block b lies inside the ring; the user owns it, so the kernel
        // does not write it until it is released, which callers do only after
        // their last use of the slice.
        unsafe { std::slice::from_raw_parts(self.block(b, 0), self.geom.block_size as usize) }
    }

    /// Copies `data` into block `b` at `off` (the user owns the block).
    pub fn write_block(&self, b: u32, off: usize, data: &[u8]) {
        assert!(
            off + data.len() <= self.geom.block_size as usize,
            "write past the block"
        );
        // SAFETY: the range is inside block b (asserted), which the kernel does
        // not touch while the user owns it; data is a live slice elsewhere.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.block(b, off), data.len()) }
    }

    /// Blocks in the ring.
    pub fn block_count(&self) -> u32 {
        self.geom.blocks()
    }

    fn block(&self, b: u32, off: usize) -> *mut u8 {
        debug_assert!(b < self.geom.blocks());
        // SAFETY: block b lies inside the ring, which lies inside the mapping.
        unsafe {
            self.map
                .as_ptr()
                .add(self.start + b as usize * self.geom.block_size as usize + off)
        }
    }
}
