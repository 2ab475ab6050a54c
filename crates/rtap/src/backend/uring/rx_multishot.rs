//! io_uring receive, second strategy: one `READ_MULTISHOT` request on the tap fd
//! that picks buffers from a provided buffer ring.
//!
//! The buffer ring has `n` entries (a power of two); entry *bid* always maps to one
//! pool buffer, recorded in `bufs[bid]`. When the kernel fills buffer *bid* it
//! posts a CQE naming it; that pool buffer becomes a [`Packet`], a fresh pool
//! buffer takes over *bid*, and the entry is handed back to the kernel by
//! advancing the ring tail. One request serves every frame until the ring runs dry
//! (`-ENOBUFS`) or the kernel ends it; then it is re-armed. Frames must fit in one
//! buffer: no chains in this mode.

use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, IoUring};

use super::{
    build_ring, cancel_and_drain, with_target, RingConfig, RingFeatures, Target, CANCEL_TAG,
};
use crate::backend::is_vanished;
use crate::error::{Error, Result};
use crate::pool::{Packet, Pool};
use crate::queue::engine::RxEngine;
use crate::stats::QueueCounters;
use crate::sys::mem::Region;
use crate::wire::vnet::VnetHdr;

const BGID: u16 = 0;
const READ_TAG: u64 = 1;
/// Bytes of one `io_uring_buf` ring entry: addr u64, len u32, bid u16, resv/tail u16.
const ENTRY_SIZE: usize = 16;
/// Offset of the ring's shared tail: the `resv` field of entry 0.
const TAIL_OFFSET: usize = 14;

/// Multishot rx engine of one queue.
pub(crate) struct MultishotRx {
    ring: IoUring,
    target: Target,
    pub features: RingFeatures,
    pool: Pool,
    /// Shared with the kernel: the provided buffer ring.
    /// Unmapped in Drop only once the kernel is known to be done with it.
    br: std::mem::ManuallyDrop<Region>,
    mask: u16,
    /// Local copy of the tail we publish.
    tail: u16,
    /// Pool buffer currently behind each bid.
    bufs: Box<[u32]>,
    armed: bool,
    vnet_len: usize,
    vanished: bool,
    done: Box<[(u64, i32, u32)]>,
}

impl MultishotRx {
    pub(crate) fn new(
        fd: RawFd,
        pool: &Pool,
        cfg: &RingConfig,
        vnet_len: usize,
        max_frame: usize,
        attach: Option<RawFd>,
    ) -> Result<MultishotRx> {
        let pc = pool.config();
        let room = (pc.buf_size - pc.headroom) as usize;
        // One spare byte, so that a read filling the buffer marks a frame cut short.
        if room <= max_frame {
            return Err(Error::FrameExceedsBuffer { room, max_frame });
        }
        let n = ring_entries(cfg.rx_posted as usize, pc.buf_size as usize);
        if n > pool.available() {
            return Err(Error::PoolTooSmall {
                what: "rx queue (multishot buffer ring)",
                needed: n,
                available: pool.available(),
            });
        }
        let r = build_ring(cfg, 8, 2 * n as u32, fd, attach)?;
        let br = Region::new(n * ENTRY_SIZE).map_err(|e| Error::sys("mmap buffer ring", e))?;
        // SAFETY: br is page-aligned, n entries long, and outlives the registration:
        // it is unregistered in Drop before the region is unmapped.
        unsafe {
            r.ring
                .submitter()
                .register_buf_ring_with_flags(br.as_ptr() as u64, n as u16, BGID, 0)
        }
        .map_err(|e| Error::Unsupported {
            feature: "provided buffer rings",
            hint: if e.raw_os_error() == Some(libc::EINVAL) {
                "Linux >= 5.19 needed"
            } else {
                "registration failed"
            },
        })?;
        let mut bufs = vec![0u32; n].into_boxed_slice();
        if !pool.inner.take_n(&mut bufs) {
            return Err(Error::PoolExhausted {
                count: pool.capacity(),
            });
        }
        let mut rx = MultishotRx {
            ring: r.ring,
            target: r.target,
            features: r.features,
            pool: pool.clone(),
            br: std::mem::ManuallyDrop::new(br),
            mask: (n - 1) as u16,
            tail: 0,
            bufs,
            armed: false,
            vnet_len,
            vanished: false,
            done: vec![(0, 0, 0); 2 * n].into_boxed_slice(),
        };
        for bid in 0..n as u16 {
            rx.provide(bid);
        }
        rx.publish();
        rx.arm();
        rx.ring
            .submit()
            .map_err(|e| Error::sys("io_uring_enter (rx arm)", e))?;
        Ok(rx)
    }

    /// Writes the ring entry for `bid` at the local tail.
    fn provide(&mut self, bid: u16) {
        let pc = self.pool.config();
        let hr = pc.headroom as usize;
        // SAFETY: headroom >= 16 > vnet_len keeps the start inside the buffer.
        let addr = unsafe {
            self.pool
                .inner
                .buf_ptr(self.bufs[bid as usize])
                .add(hr - self.vnet_len)
        } as u64;
        let len = (pc.buf_size as usize - hr + self.vnet_len) as u32;
        let i = (self.tail & self.mask) as usize;
        // SAFETY: entry i lies inside the ring region; the kernel does not read
        // entries at or past the published tail, so writing it races with nothing.
        unsafe {
            let e = self.br.as_ptr().add(i * ENTRY_SIZE);
            std::ptr::write_unaligned(e.cast::<u64>(), addr);
            std::ptr::write_unaligned(e.add(8).cast::<u32>(), len);
            std::ptr::write_unaligned(e.add(12).cast::<u16>(), bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every provided entry visible to the kernel (store-release of the tail).
    fn publish(&self) {
        // SAFETY: the tail is a naturally aligned u16 inside the region that the kernel
        // reads with acquire semantics; AtomicU16 has the same layout as u16.
        let tail = unsafe { &*(self.br.as_ptr().add(TAIL_OFFSET) as *const AtomicU16) };
        tail.store(self.tail, Ordering::Release);
    }

    fn arm(&mut self) {
        let mut sqe = with_target!(self.target, |f| opcode::ReadMulti::new(f, 0, BGID).build());
        if matches!(self.target, Target::Fixed) {
            // ReadMulti::build overwrites the flags set for a fixed file; put it back.
            sqe = sqe.flags(squeue::Flags::FIXED_FILE);
        }
        let sqe = sqe.user_data(READ_TAG);
        // SAFETY: the request references only the registered buffer ring, which lives
        // until Drop has reaped the request's final completion.
        let ok = unsafe { self.ring.submission().push(&sqe).is_ok() };
        debug_assert!(ok);
        self.armed = true;
    }
}

impl RxEngine for MultishotRx {
    fn rx_burst(
        &mut self,
        _fd: BorrowedFd<'_>,
        out: &mut Vec<Packet>,
        max: usize,
        ctr: &QueueCounters,
    ) -> Result<usize, i32> {
        if self.vanished {
            return Err(libc::ENODEV);
        }
        let max = max.min(self.done.len());
        let n = super::reap_into(&mut self.ring, &mut self.done[..max]);
        let hr = self.pool.config().headroom;
        let (mut pkts, mut bytes, mut errors, mut nombuf) = (0u64, 0u64, 0u64, 0u64);
        let mut truncated = 0u64;
        let mut provided = false;
        for i in 0..n {
            let (ud, res, flags) = self.done[i];
            if ud == CANCEL_TAG {
                continue;
            }
            if !cqueue::more(flags) {
                self.armed = false;
            }
            let Some(bid) = cqueue::buffer_select(flags) else {
                // No buffer consumed: an error or the end of the request.
                if res < 0 {
                    if is_vanished(-res) {
                        self.vanished = true;
                    } else if !matches!(
                        -res,
                        libc::ENOBUFS | libc::EAGAIN | libc::EINTR | libc::ECANCELED
                    ) {
                        errors += 1;
                    }
                }
                continue;
            };
            provided = true;
            let b = self.bufs[bid as usize];
            let cap = (self.pool.config().buf_size - hr) as i32 + self.vnet_len as i32;
            let fresh = if res < self.vnet_len as i32 + 14 || res >= cap {
                errors += 1;
                truncated += (res >= cap) as u64;
                None
            } else {
                self.pool.inner.take()
            };
            match fresh {
                Some(f) => {
                    let frame_len = res as usize - self.vnet_len;
                    // SAFETY: the kernel completed this buffer; its header bytes are initialised.
                    let hdr = unsafe {
                        std::slice::from_raw_parts(
                            self.pool.inner.buf_ptr(b).add(hr as usize - self.vnet_len),
                            self.vnet_len,
                        )
                    };
                    let vnet = VnetHdr::decode(hdr, self.vnet_len).unwrap_or_default();
                    out.push(Packet::from_filled(
                        &self.pool.inner,
                        &[b],
                        hr,
                        frame_len,
                        vnet,
                    ));
                    self.bufs[bid as usize] = f;
                    pkts += 1;
                    bytes += frame_len as u64;
                }
                None if res >= self.vnet_len as i32 + 14 && res < cap => nombuf += 1,
                None => {}
            }
            self.provide(bid);
        }
        if provided {
            self.publish();
        }
        if !self.armed && !self.vanished {
            self.arm();
        }
        if provided || !self.ring.submission().is_empty() {
            let _ = self.ring.submit();
        }
        ctr.add(pkts, bytes, errors, nombuf);
        ctr.add_truncated(truncated);
        if self.vanished && pkts == 0 {
            return Err(libc::ENODEV);
        }
        Ok(pkts as usize)
    }

    /// Buffers provided to the kernel.
    fn held(&self) -> usize {
        self.bufs.len()
    }

    fn ring_features(&self) -> Option<&RingFeatures> {
        Some(&self.features)
    }

    fn signals_eventfd(&self) -> bool {
        true
    }

    fn set_eventfd(&mut self, fd: Option<RawFd>) -> std::io::Result<()> {
        super::set_eventfd(&self.ring, fd)
    }

    fn wait(&mut self, _fd: BorrowedFd<'_>, timeout: Duration) -> std::io::Result<bool> {
        super::wait_cqe(&mut self.ring, timeout)
    }
}

/// Most bytes of buffers a ring keeps provided. The kernel takes provided buffers
/// in ring order, so a ring of many large buffers makes every frame land in
/// memory that is cold in cache (256 x 64 KiB = 16 MiB measured a third more
/// copy cost than a few MiB); small buffers are never limited by this.
const RING_BYTES: usize = 2 << 20;

/// Entries of the buffer ring: `rx_posted` rounded up to a power of two, capped
/// to [`RING_BYTES`] of buffers (but at least 8).
pub(crate) fn ring_entries(rx_posted: usize, buf_size: usize) -> usize {
    let want = rx_posted.next_power_of_two().clamp(1, 32768);
    let by_bytes = (RING_BYTES / buf_size.max(1)).max(8);
    // Largest power of two not above the byte budget.
    let cap = 1usize << (usize::BITS - 1 - by_bytes.leading_zeros());
    want.min(cap)
}

impl Drop for MultishotRx {
    fn drop(&mut self) {
        let mut armed = self.armed;
        let drained = cancel_and_drain(
            &mut self.ring,
            self.target,
            armed as usize,
            Duration::from_secs(2),
            |_, _, flags| {
                let last = !cqueue::more(flags);
                if last {
                    armed = false;
                }
                last
            },
        );
        // After the request's final completion the kernel no longer picks buffers.
        let _ = self.ring.submitter().unregister_buf_ring(BGID);
        if drained {
            for &b in self.bufs.iter() {
                self.pool.inner.put(b);
            }
            // SAFETY: the request is finished and the ring unregistered, so nothing
            // reads the region any more; `br` is not used after this point.
            unsafe { std::mem::ManuallyDrop::drop(&mut self.br) };
        } else {
            // The kernel may still use the ring and the buffers: leak both (the
            // region stays mapped, the pool's memory too).
            tracing::error!(
                "multishot rx teardown: request not finished after 2 s; leaking its buffers"
            );
            std::mem::forget(self.pool.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ring_entries;

    #[test]
    fn ring_size_is_capped_by_bytes_for_large_buffers() {
        assert_eq!(ring_entries(256, 2176), 256, "small buffers: as asked");
        assert_eq!(ring_entries(200, 2176), 256, "rounded up to a power of two");
        assert_eq!(
            ring_entries(256, 65_792),
            16,
            "64 KiB buffers: 2 MiB of them"
        );
        assert_eq!(ring_entries(4, 65_792), 4, "never more than asked");
        assert_eq!(ring_entries(256, 1 << 20), 8, "at least 8");
    }
}
