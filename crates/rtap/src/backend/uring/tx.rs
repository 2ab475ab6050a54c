//! io_uring transmit: one `write`/`writev` SQE per packet, one submit per burst,
//! completions reaped at the start of every burst (the DPDK driver reaped only when
//! its SQ was nearly full, which never happens without SQPOLL, and drained its pool).
//!
//! A sent packet sits in a *slot* until its completion is reaped; then its buffers
//! go back to their pool.

use std::os::fd::{BorrowedFd, RawFd};
use std::time::Duration;

use io_uring::{opcode, IoUring};

use super::{
    build_ring, cancel_and_drain, with_target, RingConfig, RingFeatures, Target, CANCEL_TAG,
};
use crate::backend::is_vanished;
use crate::error::Result;
use crate::pool::Packet;
use crate::queue::engine::TxEngine;
use crate::stats::QueueCounters;

/// Most segments a packet may have (plus one iovec for the header).
pub(crate) const MAX_TX_SEGS: usize = 63;
const IOV_PER_SLOT: usize = MAX_TX_SEGS + 1;

/// Tx engine of one queue.
pub(crate) struct UringTx {
    ring: IoUring,
    target: Target,
    pub features: RingFeatures,
    slots: Box<[Option<Packet>]>,
    free: Vec<u32>,
    /// Per-slot iovecs; stable memory the kernel reads at submit time.
    iovs: Box<[libc::iovec]>,
    /// Per-slot header scratch for packets without headroom for the header.
    hdrs: Box<[[u8; 16]]>,
    vnet_len: usize,
    vanished: bool,
}

impl UringTx {
    pub(crate) fn new(
        fd: RawFd,
        cfg: &RingConfig,
        vnet_len: usize,
        attach: Option<RawFd>,
    ) -> Result<UringTx> {
        let n = cfg.tx_entries as usize;
        let ring = build_ring(cfg, n as u32, 2 * n as u32, fd, attach)?;
        Ok(UringTx {
            ring: ring.ring,
            target: ring.target,
            features: ring.features,
            slots: (0..n).map(|_| None).collect::<Vec<_>>().into_boxed_slice(),
            free: (0..n as u32).rev().collect(),
            iovs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                n * IOV_PER_SLOT
            ]
            .into_boxed_slice(),
            hdrs: vec![[0u8; 16]; n].into_boxed_slice(),
            vnet_len,
            vanished: false,
        })
    }

    /// Frees the buffers of every completed write and counts the results.
    fn reap(&mut self, ctr: &QueueCounters) {
        super::run_pending_work(&mut self.ring);
        let (mut pkts, mut bytes, mut errors) = (0u64, 0u64, 0u64);
        let (_, _, cq) = self.ring.split();
        for cqe in cq {
            let ud = cqe.user_data();
            if ud == CANCEL_TAG {
                continue;
            }
            let Some(pkt) = self.slots[ud as usize].take() else {
                continue;
            };
            self.free.push(ud as u32);
            let res = cqe.result();
            if res < 0 {
                errors += 1;
                if is_vanished(-res) {
                    self.vanished = true;
                } else {
                    tracing::trace!(
                        "tx write failed: {}",
                        std::io::Error::from_raw_os_error(-res)
                    );
                }
            } else {
                pkts += 1;
                bytes += pkt.len() as u64;
            }
            drop(pkt);
        }
        ctr.add(pkts, bytes, errors, 0);
    }
}

impl TxEngine for UringTx {
    /// Queues as many packets from the front of `pkts` as there are free slots,
    /// at most `max`, submits them with one call, and removes them from `pkts`.
    fn tx_burst(
        &mut self,
        _fd: BorrowedFd<'_>,
        pkts: &mut Vec<Packet>,
        max: usize,
        ctr: &QueueCounters,
    ) -> Result<usize, i32> {
        self.reap(ctr);
        if self.vanished {
            return Err(libc::ENODEV);
        }
        let room = {
            let sq = self.ring.submission();
            sq.capacity() - sq.len()
        };
        let n = pkts.len().min(max).min(self.free.len()).min(room);
        let mut rejected = 0u64;
        let mut queued = 0usize;
        for pkt in pkts.drain(..n) {
            if pkt.len() < 14 || pkt.nb_segs() > MAX_TX_SEGS {
                // Not a frame the kernel would take: drop it here, counted.
                rejected += 1;
                continue;
            }
            let slot = self.free.pop().expect("free slot counted above");
            let s = slot as usize;
            let vl = self.vnet_len;
            let (head, headroom) = pkt.head_raw();
            let sqe = if pkt.nb_segs() == 1 && headroom >= vl {
                // SAFETY: headroom >= vnet_len bytes in front of the frame belong to
                // the packet's head buffer, which this queue now owns.
                let start = unsafe { head.sub(vl) };
                // SAFETY: start..start+vl lies in that headroom.
                let hdr = unsafe { std::slice::from_raw_parts_mut(start, vl) };
                pkt.vnet_hdr().encode(hdr, vl);
                let len = (pkt.len() + vl) as u32;
                with_target!(self.target, |f| opcode::Write::new(f, start, len).build())
            } else {
                pkt.vnet_hdr().encode(&mut self.hdrs[s], vl);
                let iov = &mut self.iovs[s * IOV_PER_SLOT..(s + 1) * IOV_PER_SLOT];
                iov[0] = libc::iovec {
                    iov_base: self.hdrs[s].as_mut_ptr().cast(),
                    iov_len: vl,
                };
                let mut k = 1;
                pkt.for_each_raw(|p, l| {
                    iov[k] = libc::iovec {
                        iov_base: p.cast(),
                        iov_len: l,
                    };
                    k += 1;
                });
                let p = iov.as_ptr();
                with_target!(self.target, |f| opcode::Writev::new(f, p, k as u32).build())
            };
            let sqe = sqe.user_data(slot as u64);
            // SAFETY: the packet's buffers and the slot's iovecs/header scratch stay
            // untouched until the completion is reaped: the packet moves into the slot
            // right below and the slot is not reused before its completion.
            let pushed = unsafe { self.ring.submission().push(&sqe) };
            debug_assert!(pushed.is_ok(), "SQ room was checked");
            self.slots[s] = Some(pkt);
            queued += 1;
        }
        if queued > 0 {
            if let Err(e) = self.ring.submit() {
                tracing::debug!("tx submit: {e}");
            }
        }
        if rejected > 0 {
            ctr.add(0, 0, rejected, 0);
        }
        Ok(n)
    }

    /// Packets the next burst can take (free slots, bounded by SQ room), after
    /// reaping finished sends.
    fn room(&mut self, ctr: &QueueCounters) -> usize {
        self.reap(ctr);
        let sq = self.ring.submission();
        self.free.len().min(sq.capacity() - sq.len())
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

    /// Packets handed to the kernel whose completion has not been reaped yet.
    fn in_flight(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Reaps completions until none is in flight or `timeout` passes.
    fn flush(&mut self, ctr: &QueueCounters, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            self.reap(ctr);
            if self.in_flight() == 0 {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            let ts = io_uring::types::Timespec::new().nsec(10_000_000);
            let args = io_uring::types::SubmitArgs::new().timespec(&ts);
            let _ = self.ring.submitter().submit_with_args(1, &args);
        }
    }
}

impl Drop for UringTx {
    fn drop(&mut self) {
        let slots = &mut self.slots;
        let outstanding = slots.len() - self.free.len();
        let drained = cancel_and_drain(
            &mut self.ring,
            self.target,
            outstanding,
            Duration::from_secs(2),
            |ud, _, _| {
                if let Some(s) = slots.get_mut(ud as usize) {
                    drop(s.take());
                }
                true
            },
        );
        if !drained {
            let mut leaked = 0;
            for s in self.slots.iter_mut() {
                if let Some(p) = s.take() {
                    // The kernel may still read from it; never recycle it.
                    std::mem::forget(p);
                    leaked += 1;
                }
            }
            tracing::error!(
                "tx queue teardown: {leaked} packets still in flight after 2 s; leaking them"
            );
        }
    }
}
