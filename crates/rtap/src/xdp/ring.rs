//! The rings of an XDP socket, in their mappings: single-producer,
//! single-consumer, free-running 32-bit producer and consumer indices, entries
//! at `index & (size - 1)`. This process produces into the fill and tx rings
//! and consumes the rx and completion rings; the kernel the reverse.
//!
//! The handover (the kernel's `xsk_queue.h` contract): a producer reads the
//! consumer index (Acquire), writes entries, then stores its own index
//! (Release); a consumer loads the producer index (Acquire), reads entries,
//! then stores its own index (Release). Indices are cached locally and
//! reloaded only when the cached view runs out.
//!
//! The other side's index is not trusted: one that claims more entries than
//! the ring holds (a corrupt or hostile ring) is clamped to the ring's size and
//! counted; entries are checked by their readers (`desc.rs`). The layout the
//! kernel reports is checked before any pointer is made from it. This module
//! is the XDP device's only unsafe code.

use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, Ordering};

use crate::sys::mem::SocketMap;
use crate::sys::xdp::{RingOffset, XDP_RING_NEED_WAKEUP};

/// Checks that the kernel's offsets for a ring of `size` entries of
/// `entry` bytes lie inside a mapping of `len` bytes with the alignment each
/// field needs (pure; fuzzed with the other ring readers).
pub(crate) fn layout_ok(off: &RingOffset, size: u32, entry: usize, len: usize) -> bool {
    let word = |o: u64| o % 4 == 0 && o.checked_add(4).is_some_and(|end| end <= len as u64);
    let entries = (size as u64).checked_mul(entry as u64);
    size.is_power_of_two()
        && word(off.producer)
        && word(off.consumer)
        && word(off.flags)
        && off.desc % entry as u64 == 0
        && entries
            .and_then(|n| off.desc.checked_add(n))
            .is_some_and(|end| end <= len as u64)
}

/// Bytes to map for a ring of `size` entries of `entry` bytes (saturating:
/// an offset past any mapping then fails `layout_ok` instead of overflowing).
pub(crate) fn map_len(off: &RingOffset, size: u32, entry: usize) -> usize {
    usize::try_from(off.desc)
        .unwrap_or(usize::MAX)
        .saturating_add((size as usize).saturating_mul(entry))
}

/// One ring in its mapping, with entries of type `T` (`u64` addresses for the
/// fill and completion rings, `Desc` for rx and tx).
pub(crate) struct Ring<T: Copy> {
    _map: SocketMap,
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    entries: NonNull<T>,
    mask: u32,
    size: u32,
    /// This side's view of the producer and consumer indices.
    prod: u32,
    cons: u32,
    /// Times the other side's index claimed more than the ring holds.
    pub corrupt: u64,
}

impl<T: Copy> Ring<T> {
    /// Maps ring `pgoff` of socket `fd`, `size` entries laid out as `off` says.
    pub(crate) fn map(
        fd: BorrowedFd<'_>,
        pgoff: i64,
        off: &RingOffset,
        size: u32,
    ) -> std::io::Result<Ring<T>> {
        let entry = std::mem::size_of::<T>();
        let len = map_len(off, size, entry);
        if !layout_ok(off, size, entry, len) {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        let map = SocketMap::at(fd, len, pgoff)?;
        let at = |o: u64| map.as_ptr().wrapping_add(o as usize);
        // SAFETY: for all four pointers, layout_ok checked each offset lies
        // inside the `len` bytes just mapped, with the field's alignment (the
        // mapping itself is page-aligned), and the mapping lives as long as
        // the ring (`_map`).
        let (producer, consumer, flags, entries) = unsafe {
            (
                NonNull::new_unchecked(at(off.producer).cast::<AtomicU32>()),
                NonNull::new_unchecked(at(off.consumer).cast::<AtomicU32>()),
                NonNull::new_unchecked(at(off.flags).cast::<AtomicU32>()),
                NonNull::new_unchecked(at(off.desc).cast::<T>()),
            )
        };
        let mut r = Ring {
            _map: map,
            producer,
            consumer,
            flags,
            entries,
            mask: size - 1,
            size,
            prod: 0,
            cons: 0,
            corrupt: 0,
        };
        r.prod = r.producer().load(Ordering::Acquire);
        r.cons = r.consumer().load(Ordering::Acquire);
        Ok(r)
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: a valid, aligned u32 in the live mapping (see `map`); the
        // kernel accesses it atomically too.
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.consumer.as_ref() }
    }

    /// Entries in the ring.
    pub(crate) fn size(&self) -> u32 {
        self.size
    }

    /// True if the kernel asks for a syscall to make progress on this ring
    /// (the fill and tx rings, with `XDP_USE_NEED_WAKEUP`). Read after the
    /// producer index was published.
    pub(crate) fn needs_wakeup(&self) -> bool {
        fence(Ordering::SeqCst);
        // SAFETY: as for `producer`.
        let flags = unsafe { self.flags.as_ref() };
        flags.load(Ordering::Relaxed) & XDP_RING_NEED_WAKEUP != 0
    }

    /// A used count the other side's index implies, clamped to the ring (and
    /// counted) if it claims more.
    fn clamp(&mut self, used: u32) -> u32 {
        if used > self.size {
            self.corrupt += 1;
            return self.size;
        }
        used
    }

    // ------------------------------------------------------------ producing

    /// Free entries to produce into, at least `want` if there are (the
    /// consumer index is reloaded only when the cached view has fewer).
    pub(crate) fn free(&mut self, want: u32) -> u32 {
        let used = self.prod.wrapping_sub(self.cons);
        let free = self.size - self.clamp(used);
        if free >= want {
            return free;
        }
        self.cons = self.consumer().load(Ordering::Acquire);
        let used = self.prod.wrapping_sub(self.cons);
        self.size - self.clamp(used)
    }

    /// Writes entry `i` past the producer index (`i` < what `free` said).
    pub(crate) fn write(&mut self, i: u32, v: T) {
        let slot = (self.prod.wrapping_add(i) & self.mask) as usize;
        // SAFETY: slot <= mask < size entries of T inside the mapping (see
        // `map`); the slot is past the producer index, so the kernel does not
        // read it until `submit` publishes it.
        unsafe { self.entries.as_ptr().add(slot).write(v) }
    }

    /// Publishes `n` written entries (Release: the entries before the index).
    pub(crate) fn submit(&mut self, n: u32) {
        self.prod = self.prod.wrapping_add(n);
        self.producer().store(self.prod, Ordering::Release);
    }

    // ------------------------------------------------------------ consuming

    /// Entries ready to consume, at most `max` (the producer index is
    /// reloaded only when the cached view is empty).
    pub(crate) fn ready(&mut self, max: u32) -> u32 {
        let mut n = self.prod.wrapping_sub(self.cons);
        if n == 0 {
            self.prod = self.producer().load(Ordering::Acquire);
            n = self.prod.wrapping_sub(self.cons);
        }
        self.clamp(n).min(max)
    }

    /// Entries ready to consume, at most `max`, from a fresh load of the
    /// producer index (a multi-buffer reader needs a current view: the kernel
    /// publishes whole frames, so a frame cut short in it is corrupt).
    pub(crate) fn ready_fresh(&mut self, max: u32) -> u32 {
        self.prod = self.producer().load(Ordering::Acquire);
        self.clamp(self.prod.wrapping_sub(self.cons)).min(max)
    }

    /// Entry `i` past the consumer index (`i` < what `ready` said).
    pub(crate) fn read(&self, i: u32) -> T {
        let slot = (self.cons.wrapping_add(i) & self.mask) as usize;
        // SAFETY: slot <= mask < size entries of T inside the mapping; the
        // producer index loaded with Acquire covers it, so the kernel wrote it
        // before publishing and does not touch it until `release`.
        unsafe { self.entries.as_ptr().add(slot).read() }
    }

    /// Hands `n` consumed entries back (Release: read before the index moves).
    pub(crate) fn release(&mut self, n: u32) {
        self.cons = self.cons.wrapping_add(n);
        self.consumer().store(self.cons, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn off(p: u64, c: u64, f: u64, d: u64) -> RingOffset {
        RingOffset {
            producer: p,
            consumer: c,
            desc: d,
            flags: f,
        }
    }

    #[test]
    fn layouts() {
        // What 6.18 reports on x86-64.
        let o = off(0, 128, 196, 320);
        assert!(layout_ok(&o, 2048, 16, map_len(&o, 2048, 16)));
        assert!(layout_ok(&o, 2048, 8, map_len(&o, 2048, 8)));
        assert!(
            !layout_ok(&o, 2000, 16, map_len(&o, 2048, 16)),
            "not a power of two"
        );
        assert!(!layout_ok(&o, 2048, 16, map_len(&o, 2048, 16) - 1), "short");
        assert!(
            !layout_ok(&off(2, 128, 196, 320), 64, 16, 4096),
            "misaligned"
        );
        assert!(
            !layout_ok(&off(0, 128, 196, 328), 64, 16, 4096),
            "entries misaligned"
        );
        assert!(!layout_ok(&off(0, u64::MAX - 1, 196, 320), 64, 16, 4096));
        // An entries offset near the top: the length saturates, the layout fails.
        let top = off(0, 128, 196, u64::MAX - 15);
        assert_eq!(map_len(&top, 64, 16), usize::MAX);
        assert!(!layout_ok(&top, 64, 16, map_len(&top, 64, 16)));
        assert!(!layout_ok(
            &off(0, 128, 196, u64::MAX - 15),
            64,
            16,
            usize::MAX
        ));
    }
}
