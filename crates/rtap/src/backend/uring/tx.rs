//! io_uring transmit: one `write`/`writev` SQE per packet, one submit per burst,
//! completions reaped at the start of every burst (the DPDK driver reaped only when
//! its SQ was nearly full, which never happens without SQPOLL, and drained its pool).
//!
//! A sent packet sits in a *slot* until its completion is reaped; then its buffers
//! go back to their pool. A packet the engine splits in software (a port
//! without a virtio-net header, see `backend::segment`) goes as one `writev`
//! per segment, each with a *segment entry* (header scratch and iovecs); its
//! slot counts the segments in flight and frees the packet after the last.

use std::os::fd::{BorrowedFd, RawFd};
use std::time::Duration;

use io_uring::{opcode, IoUring};

use super::{
    build_ring, cancel_and_drain, with_target, RingConfig, RingFeatures, Target, CANCEL_TAG,
};
use crate::backend::is_vanished;
use crate::backend::segment::{self, needs_split, SEG_HDR};
use crate::error::Result;
use crate::pool::Packet;
use crate::queue::engine::TxEngine;
use crate::stats::QueueCounters;
use crate::wire::layout::Link;

/// Most segments a packet may have (plus one iovec for the header).
pub(crate) const MAX_TX_SEGS: usize = 63;
const IOV_PER_SLOT: usize = MAX_TX_SEGS + 1;
/// User data bit of a segment's write (the rest is its entry's index).
const SEG_TAG: u64 = 1 << 32;

/// One segment's write of a packet split in software: stable memory the
/// kernel reads until the write completes.
struct SegEntry {
    hdr: [u8; SEG_HDR],
    iov: [libc::iovec; 2],
    /// The slot of the packet it is a segment of.
    owner: u32,
}

/// Tx engine of one queue.
pub(crate) struct UringTx {
    ring: IoUring,
    target: Target,
    pub features: RingFeatures,
    fl: Inflight,
    /// Per-slot iovecs; stable memory the kernel reads at submit time.
    iovs: Box<[libc::iovec]>,
    /// Per-slot header scratch for packets without headroom for the header.
    hdrs: Box<[[u8; 16]]>,
    vnet_len: usize,
    vanished: bool,
    link: Link,
    splits: u64,
}

/// What the engine has in flight: packets in slots, segment entries, and
/// the bookkeeping of their completions.
struct Inflight {
    slots: Box<[Option<Packet>]>,
    free: Vec<u32>,
    /// Segment entries, allocated the first time a packet is split.
    segs: Box<[SegEntry]>,
    seg_free: Vec<u32>,
    /// Per slot: segment writes of its packet in flight (0: one plain write).
    pending: Box<[u16]>,
    /// Writes submitted whose completion is not reaped yet.
    sqes: usize,
}

impl Inflight {
    /// Completion of the write `ud` (a slot's, or a segment's) with result
    /// `res`: frees what it held. Returns the frames and bytes it sent (or
    /// none, on error), and the packet if this ended it.
    fn complete(&mut self, ud: u64, res: i32) -> Option<(u64, u64, Option<Packet>)> {
        let slot = if ud & SEG_TAG != 0 {
            let e = (ud & !SEG_TAG) as usize;
            let entry = self.segs.get(e)?;
            let bytes = entry.iov.iter().map(|v| v.iov_len as u64).sum();
            let s = entry.owner as usize;
            self.seg_free.push(e as u32);
            self.sqes -= 1;
            self.pending[s] -= 1;
            let sent = if res < 0 { (0, 0) } else { (1, bytes) };
            if self.pending[s] > 0 {
                return Some((sent.0, sent.1, None));
            }
            let pkt = self.slots[s].take();
            self.free.push(s as u32);
            return Some((sent.0, sent.1, pkt));
        } else {
            ud as usize
        };
        let pkt = self.slots.get_mut(slot)?.take()?;
        self.free.push(slot as u32);
        self.sqes -= 1;
        if res < 0 {
            return Some((0, 0, Some(pkt)));
        }
        let bytes = pkt.len() as u64;
        Some((1, bytes, Some(pkt)))
    }
}

impl UringTx {
    pub(crate) fn new(
        fd: RawFd,
        cfg: &RingConfig,
        vnet_len: usize,
        link: Link,
        attach: Option<RawFd>,
    ) -> Result<UringTx> {
        let n = cfg.tx_entries as usize;
        let ring = build_ring(cfg, n as u32, 2 * n as u32, fd, attach)?;
        Ok(UringTx {
            ring: ring.ring,
            target: ring.target,
            features: ring.features,
            fl: Inflight {
                slots: (0..n).map(|_| None).collect::<Vec<_>>().into_boxed_slice(),
                free: (0..n as u32).rev().collect(),
                segs: Box::new([]),
                seg_free: Vec::new(),
                pending: vec![0; n].into_boxed_slice(),
                sqes: 0,
            },
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
            link,
            splits: 0,
        })
    }

    /// Segment entries: one per slot, made on the first split.
    fn seg_entries(&mut self) -> usize {
        if self.fl.segs.is_empty() {
            let n = self.fl.slots.len();
            let empty = libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            };
            self.fl.segs = (0..n)
                .map(|_| SegEntry {
                    hdr: [0; SEG_HDR],
                    iov: [empty; 2],
                    owner: 0,
                })
                .collect();
            self.fl.seg_free = (0..n as u32).rev().collect();
        }
        self.fl.segs.len()
    }

    /// Queues the segments of `pkt` (split in software) in slot `s`, one
    /// `writev` each; the caller checked there is SQ room for all of them.
    /// False if the packet cannot be split, or has more segments than free
    /// entries (it is dropped).
    fn queue_split(&mut self, s: usize, pkt: Packet) -> bool {
        let Some(mut sp) = segment::split(&pkt, self.link) else {
            return false;
        };
        if sp.count() > self.fl.seg_free.len() {
            return false;
        }
        let data = pkt.data();
        let mut n = 0u16;
        for _ in 0..sp.count() {
            let e = self.fl.seg_free.pop().expect("entries counted above") as usize;
            let entry = &mut self.fl.segs[e];
            let Some(Ok(seg)) = sp.next_header(&mut entry.hdr) else {
                self.fl.seg_free.push(e as u32);
                break;
            };
            entry.owner = s as u32;
            entry.iov[0] = libc::iovec {
                iov_base: entry.hdr.as_mut_ptr().cast(),
                iov_len: seg.hdr_len,
            };
            entry.iov[1] = libc::iovec {
                iov_base: data[seg.payload.clone()].as_ptr() as *mut libc::c_void,
                iov_len: seg.payload.len(),
            };
            let k = if seg.payload.is_empty() { 1 } else { 2 };
            let iov = entry.iov.as_ptr();
            let sqe = with_target!(self.target, |f| opcode::Writev::new(f, iov, k).build())
                .user_data(SEG_TAG | e as u64);
            // SAFETY: the entry's header and iovecs, and the packet's buffer the
            // second iovec points into, stay untouched until this write's
            // completion is reaped: the entry is off the free list and the
            // packet goes into slot `s`, freed only after its last segment.
            let pushed = unsafe { self.ring.submission().push(&sqe) };
            debug_assert!(pushed.is_ok(), "SQ room was checked");
            self.fl.sqes += 1;
            n += 1;
        }
        if n == 0 {
            return false;
        }
        self.fl.pending[s] = n;
        self.fl.slots[s] = Some(pkt);
        self.splits += 1;
        true
    }

    /// Frees the buffers of every completed write and counts the results.
    fn reap(&mut self, ctr: &QueueCounters) {
        super::run_pending_work(&mut self.ring);
        let (mut pkts, mut bytes, mut errors) = (0u64, 0u64, 0u64);
        // Completions are copied out in batches (the queue is released after
        // each, so `complete` can take the engine).
        let mut batch = [(0u64, 0i32); 64];
        loop {
            let mut got = 0;
            for cqe in self.ring.completion().take(batch.len()) {
                batch[got] = (cqe.user_data(), cqe.result());
                got += 1;
            }
            for &(ud, res) in &batch[..got] {
                if ud == CANCEL_TAG {
                    continue;
                }
                let Some((n, b, _pkt)) = self.fl.complete(ud, res) else {
                    continue;
                };
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
                    pkts += n;
                    bytes += b;
                }
            }
            if got < batch.len() {
                break;
            }
        }
        ctr.add(pkts, bytes, errors, 0);
    }

    /// SQ entries and segment entries a packet needs: 1 for a plain write,
    /// its segment count for one split in software, 0 if it cannot be sent
    /// (dropped, counted).
    fn need(&mut self, pkt: &Packet) -> usize {
        if pkt.len() < 14 || pkt.nb_segs() > MAX_TX_SEGS {
            return 0;
        }
        if !needs_split(pkt, self.vnet_len) {
            return 1;
        }
        match segment::split(pkt, self.link) {
            // More segments than the engine has entries could never go.
            Some(sp) if sp.count() <= self.seg_entries() => sp.count(),
            _ => 0,
        }
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
        let mut room = {
            let sq = self.ring.submission();
            sq.capacity() - sq.len()
        };
        // Which packets from the front fit: a slot and an SQ entry each, a
        // segment entry and an SQ entry per segment for one split here.
        let want = pkts.len().min(max);
        let mut n = 0;
        let (mut slots, mut segs) = (0, 0);
        while n < want {
            let need = self.need(&pkts[n]);
            if need > 0 {
                let seg_need = if needs_split(&pkts[n], self.vnet_len) {
                    need
                } else {
                    0
                };
                if slots == self.fl.free.len()
                    || room < need
                    || segs + seg_need > self.fl.seg_free.len()
                {
                    break;
                }
                slots += 1;
                room -= need;
                segs += seg_need;
            }
            n += 1;
        }
        let mut rejected = 0u64;
        let mut queued = 0usize;
        for pkt in pkts.drain(..n) {
            if pkt.len() < 14 || pkt.nb_segs() > MAX_TX_SEGS {
                // Not a frame the kernel would take: drop it here, counted.
                rejected += 1;
                continue;
            }
            let split = needs_split(&pkt, self.vnet_len);
            if split && self.need(&pkt) == 0 {
                // Cannot be split here (counted as rejected, no slot taken).
                rejected += 1;
                continue;
            }
            let slot = self.fl.free.pop().expect("free slot counted above");
            let s = slot as usize;
            if split {
                if self.queue_split(s, pkt) {
                    queued += 1;
                } else {
                    self.fl.free.push(slot);
                    rejected += 1;
                }
                continue;
            }
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
            self.fl.slots[s] = Some(pkt);
            self.fl.sqes += 1;
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
        self.fl.free.len().min(sq.capacity() - sq.len())
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

    fn take_splits(&mut self) -> u64 {
        std::mem::take(&mut self.splits)
    }

    /// Packets handed to the kernel whose completion has not been reaped yet.
    fn in_flight(&self) -> usize {
        self.fl.slots.len() - self.fl.free.len()
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
        let fl = &mut self.fl;
        let drained = cancel_and_drain(
            &mut self.ring,
            self.target,
            fl.sqes,
            Duration::from_secs(2),
            |ud, res, _| {
                fl.complete(ud, res);
                true
            },
        );
        if !drained {
            // The kernel may still read the segment headers, iovecs and
            // header scratch of what is in flight: never free them.
            std::mem::forget(std::mem::take(&mut self.fl.segs));
            std::mem::forget(std::mem::take(&mut self.iovs));
            std::mem::forget(std::mem::take(&mut self.hdrs));
            let mut leaked = 0;
            for s in self.fl.slots.iter_mut() {
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
