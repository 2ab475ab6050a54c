//! io_uring receive with posted reads: a fixed set of reads kept in the kernel
//! on the queue fd (the engine for frames larger than one buffer, and for kernels
//! without multishot read).
//!
//! Each *slot* owns `k` pool buffers lent to the kernel for one `read` (k = 1) or
//! `readv` (k > 1, a chain for frames larger than one buffer). The read lands the
//! virtio-net header in the first buffer's headroom, just in front of the frame.
//! When a read completes, the slot's buffers become a [`Packet`] and the slot is
//! re-armed with fresh buffers from the pool; if the pool is empty the frame is
//! dropped (`nombuf`) and the same buffers are posted again, so the queue never
//! stalls.
//!
//! Ordering: independent reads on one fd race for frames and can complete out of
//! order (and each arms its own poll, so one frame wakes them all). So the posted
//! reads form one `IOSQE_IO_HARDLINK` chain: the kernel issues them one after the
//! other, in order, with a single poll armed at a time. Reaped slots wait in
//! `ready` and are posted as the next chain once the current one has completed.

use std::os::fd::{BorrowedFd, RawFd};
use std::time::Duration;

use io_uring::{opcode, squeue, IoUring};

use super::{
    build_ring, cancel_and_drain, with_target, RingConfig, RingFeatures, Target, CANCEL_TAG,
};
use crate::backend::is_vanished;
use crate::error::{Error, Result};
use crate::pool::{Packet, Pool};
use crate::queue::engine::RxEngine;
use crate::stats::QueueCounters;
use crate::wire::vnet::VnetHdr;

/// Posted-read rx engine of one queue.
pub(crate) struct PostedRx {
    ring: IoUring,
    target: Target,
    pub features: RingFeatures,
    pool: Pool,
    /// Buffers per slot.
    k: usize,
    /// Bytes one read can take, header included.
    cap: usize,
    /// Slot buffers, `k` per slot.
    bufs: Box<[u32]>,
    /// Slot iovecs, `k` per slot (used when k > 1; the kernel reads them at submit).
    iovs: Box<[libc::iovec]>,
    /// Which slots have a read in flight.
    posted: Box<[bool]>,
    in_flight: usize,
    vnet_len: usize,
    /// Set once the interface is gone.
    vanished: bool,
    /// Scratch for fresh buffer indices.
    fresh: Box<[u32]>,
    /// Scratch for reaped completions.
    done: Box<[(u64, i32, u32)]>,
    /// Slots whose read completed, waiting for the next chain.
    ready: Vec<u32>,
}

/// Buffers needed per read so that `max_frame` bytes plus the virtio-net header fit.
pub(crate) fn bufs_per_read(
    buf_size: u32,
    headroom: u32,
    vnet_len: usize,
    max_frame: usize,
) -> usize {
    let first = (buf_size - headroom) as usize + vnet_len;
    let total = vnet_len + max_frame;
    if total <= first {
        1
    } else {
        1 + (total - first).div_ceil(buf_size as usize)
    }
}

impl PostedRx {
    pub(crate) fn new(
        fd: RawFd,
        pool: &Pool,
        cfg: &RingConfig,
        vnet_len: usize,
        max_frame: usize,
        attach: Option<RawFd>,
    ) -> Result<PostedRx> {
        let pc = pool.config();
        // One byte beyond the largest frame: the tap cuts a frame to the space it is
        // given and reports the bytes copied, so only a read that fills every byte
        // shows a frame that did not fit (counted as an error, never delivered cut).
        let k = bufs_per_read(pc.buf_size, pc.headroom, vnet_len, max_frame + 1);
        let cap = (pc.buf_size - pc.headroom) as usize + vnet_len + (k - 1) * pc.buf_size as usize;
        // Posted reads pin their buffers. Long chains (64 KiB frames in small
        // buffers), or more reads than the pool has buffers, would pin most or
        // all of it: then post fewer reads, half the free buffers' worth, at
        // least 4.
        let want = cfg.rx_posted as usize;
        let nslots = if k > 1 || want > pool.available() {
            want.min((pool.available() / (2 * k)).max(4))
        } else {
            want
        };
        if nslots * k > pool.available() {
            return Err(Error::PoolTooSmall {
                what: "rx queue (posted reads of buffer chains)",
                needed: nslots * k,
                available: pool.available(),
            });
        }
        let ring = build_ring(cfg, nslots as u32, 2 * nslots as u32, fd, attach)?;
        let mut bufs = vec![0u32; nslots * k].into_boxed_slice();
        if !pool.inner.take_n(&mut bufs) {
            return Err(Error::PoolExhausted {
                count: pool.capacity(),
            });
        }
        let iovs = vec![
            libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0
            };
            nslots * k
        ]
        .into_boxed_slice();
        let mut rx = PostedRx {
            ring: ring.ring,
            target: ring.target,
            features: ring.features,
            pool: pool.clone(),
            k,
            cap,
            bufs,
            iovs,
            posted: vec![false; nslots].into_boxed_slice(),
            in_flight: 0,
            vnet_len,
            vanished: false,
            fresh: vec![0u32; k].into_boxed_slice(),
            done: vec![(0u64, 0i32, 0u32); 2 * nslots].into_boxed_slice(),
            ready: Vec::with_capacity(nslots),
        };
        rx.ready.extend(0..nslots as u32);
        rx.post_chain();
        rx.ring
            .submit()
            .map_err(|e| Error::sys("io_uring_enter (rx post)", e))?;
        Ok(rx)
    }

    /// Posts every ready slot as one hard-linked chain, if no chain is running.
    /// Returns true if SQEs were queued.
    fn post_chain(&mut self) -> bool {
        if self.in_flight != 0 || self.ready.is_empty() {
            return false;
        }
        let ready = std::mem::take(&mut self.ready);
        let last = ready.len() - 1;
        for (i, &slot) in ready.iter().enumerate() {
            self.post(slot as usize, i != last);
        }
        self.ready = ready;
        self.ready.clear();
        true
    }

    /// Queues the read for `slot` over its current buffers, hard-linked to the
    /// next SQE if `link`.
    fn post(&mut self, slot: usize, link: bool) {
        let hr = self.pool.config().headroom as usize;
        let size = self.pool.config().buf_size as usize;
        let k = self.k;
        let inner = &self.pool.inner;
        let first = inner.buf_ptr(self.bufs[slot * k]);
        // SAFETY: headroom >= 16 > vnet_len, so the start stays inside the first buffer.
        let start = unsafe { first.add(hr - self.vnet_len) };
        let first_len = size - hr + self.vnet_len;
        let sqe = if k == 1 {
            with_target!(self.target, |f| opcode::Read::new(
                f,
                start,
                first_len as u32
            )
            .build())
        } else {
            let iov = &mut self.iovs[slot * k..slot * k + k];
            iov[0] = libc::iovec {
                iov_base: start.cast(),
                iov_len: first_len,
            };
            for (j, v) in iov.iter_mut().enumerate().skip(1) {
                *v = libc::iovec {
                    iov_base: inner.buf_ptr(self.bufs[slot * k + j]).cast(),
                    iov_len: size,
                };
            }
            let p = iov.as_ptr();
            with_target!(self.target, |f| opcode::Readv::new(f, p, k as u32).build())
        };
        let mut sqe = sqe.user_data(slot as u64);
        if link {
            sqe = sqe.flags(squeue::Flags::IO_HARDLINK);
        }
        // SAFETY: the buffers (and, for readv, the iovec array in self.iovs, which is
        // never reallocated) belong to this slot until its completion is reaped; the
        // queue waits for every completion before releasing them (Drop).
        let ok = unsafe { self.ring.submission().push(&sqe).is_ok() };
        // The SQ has one entry per slot and each slot has at most one read queued.
        debug_assert!(ok, "rx SQ overflow");
        self.posted[slot] = true;
        self.in_flight += 1;
    }
}

impl RxEngine for PostedRx {
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
        let hr = self.pool.config().headroom as usize;
        let k = self.k;
        let (mut pkts, mut bytes, mut errors, mut nombuf) = (0u64, 0u64, 0u64, 0u64);
        let mut truncated = 0u64;
        for i in 0..n {
            let (ud, res, _) = self.done[i];
            if ud == CANCEL_TAG {
                continue;
            }
            let slot = ud as usize;
            self.posted[slot] = false;
            self.in_flight -= 1;
            if res < 0 {
                if is_vanished(-res) {
                    self.vanished = true;
                    continue;
                }
                if !matches!(-res, libc::EAGAIN | libc::EINTR) {
                    errors += 1;
                }
            } else if (res as usize) < self.vnet_len + 14 || res as usize >= self.cap {
                errors += 1;
                truncated += (res as usize >= self.cap) as u64;
            } else if !self.pool.inner.take_n(&mut self.fresh) {
                nombuf += 1;
            } else {
                let frame_len = res as usize - self.vnet_len;
                let slot_bufs = &mut self.bufs[slot * k..slot * k + k];
                let first = self.pool.inner.buf_ptr(slot_bufs[0]);
                // SAFETY: the read completed, so the kernel is done with the slot's
                // buffers and the header bytes [hr - vnet_len, hr) are initialised.
                let hdr = unsafe {
                    std::slice::from_raw_parts(first.add(hr - self.vnet_len), self.vnet_len)
                };
                let vnet = VnetHdr::decode(hdr, self.vnet_len).unwrap_or_default();
                out.push(Packet::from_filled(
                    &self.pool.inner,
                    slot_bufs,
                    hr as u32,
                    frame_len,
                    vnet,
                ));
                slot_bufs.copy_from_slice(&self.fresh);
                pkts += 1;
                bytes += frame_len as u64;
            }
            self.ready.push(slot as u32);
        }
        if self.post_chain() {
            if let Err(e) = self.ring.submit() {
                tracing::debug!("rx submit: {e}");
            }
        }
        ctr.add(pkts, bytes, errors, nombuf);
        ctr.add_truncated(truncated);
        if self.vanished && pkts == 0 {
            return Err(libc::ENODEV);
        }
        Ok(pkts as usize)
    }

    /// Pool buffers lent to the kernel for reads, or waiting in a slot for the
    /// next chain.
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

impl Drop for PostedRx {
    fn drop(&mut self) {
        let posted = &mut self.posted;
        let drained = cancel_and_drain(
            &mut self.ring,
            self.target,
            self.in_flight,
            Duration::from_secs(2),
            |ud, _, _| {
                if let Some(p) = posted.get_mut(ud as usize) {
                    *p = false;
                }
                true
            },
        );
        let mut leaked = 0;
        for (slot, &p) in self.posted.iter().enumerate() {
            if p {
                // The kernel may still write into these: never hand them out again.
                leaked += self.k;
                continue;
            }
            for &b in &self.bufs[slot * self.k..slot * self.k + self.k] {
                self.pool.inner.put(b);
            }
        }
        if !drained {
            tracing::error!("rx queue teardown: {leaked} buffers still lent to the kernel after 2 s; leaking them");
            // Keep the pool's memory mapped forever so a late kernel write cannot land
            // in memory reused for something else.
            std::mem::forget(self.pool.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bufs_per_read;

    #[test]
    fn chain_length_for_frame_sizes() {
        // Default pool: 2176-byte buffers, 128 headroom: 2058 bytes in the first.
        assert_eq!(bufs_per_read(2176, 128, 10, 1518), 1);
        assert_eq!(bufs_per_read(2176, 128, 10, 2048), 1);
        assert_eq!(bufs_per_read(2176, 128, 10, 2049), 2);
        assert_eq!(bufs_per_read(2176, 128, 10, 9018), 5);
        // 64 KiB frames: 10 + 65535 = 65545 bytes; 2058 + 30 * 2176 = 67338.
        assert_eq!(bufs_per_read(2176, 128, 10, 65535), 31);
    }
}
