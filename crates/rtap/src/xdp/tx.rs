//! The tx path of an xdp queue: a packet of the UMEM's pool goes to the tx
//! ring as a descriptor of its buffer (no copy); a packet of another pool, or
//! of several buffers, is copied into one UMEM buffer first (counted). One kick
//! per burst makes the kernel send. In copy mode the sending happens inside
//! that syscall, at most the socket's budget a call (32 frames before Linux
//! 6.17, which lets a socket raise it to its tx ring's size, as done here), so
//! a burst that leaves more than that queued kicks once per budget's worth:
//! frames accepted are on their way even if the caller sends nothing more.
//! Frames the kernel could not take (`EAGAIN`: completion ring full, device
//! busy) are kicked again by the next `tx_burst`, `room` or `flush`. A
//! completion gives its buffer back to the pool; sent frames are counted then.
//!
//! Checksums asked for (a partial checksum the queue layer prepared) go to the
//! kernel as tx metadata in the 24 bytes before the frame, where the UMEM was
//! registered with that room (copy mode: the kernel makes the frame
//! `CHECKSUM_PARTIAL`, finished by the device or in software); otherwise rtap
//! finishes them here. Every frame then needs those 24 bytes of headroom in its
//! chunk (the kernel refuses the descriptor otherwise), so one with less is
//! copied.

use std::cell::RefCell;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::counters::add;
use super::desc::MAX_FRAGS;
use super::queue::XdpQueue;
use super::xsk::Xsk;
use super::xsk::TX_META_LEN;
use crate::backend::kick::Kicker;
use crate::pool::Packet;
use crate::queue::counters::Block;
use crate::queue::engine::TxEngine;
use crate::queue::RingFeatures;
use crate::stats::QueueCounters;
use crate::sys::xdp::{self as sys, Desc};
use crate::wire::checksum;
use crate::wire::layout::Link;
use crate::wire::vnet::{F_NEEDS_CSUM, GSO_NONE};

/// Tx engine of one xdp queue.
pub(crate) struct XskTx {
    /// The socket (dropped before the binding: see `Xsk::socket`).
    sock: Arc<OwnedFd>,
    xsk: Rc<RefCell<Xsk>>,
    q: Arc<XdpQueue>,
    kicker: Kicker,
    /// The queue's counter block (the kick counters).
    block: Block,
    need_wakeup: bool,
    /// Frames one kick sends at most (`Xsk::tx_budget`).
    budget: u32,
    /// The interface is gone (a kick said so).
    vanished: Option<i32>,
}

impl XskTx {
    pub(crate) fn new(
        sock: Arc<OwnedFd>,
        xsk: Rc<RefCell<Xsk>>,
        q: Arc<XdpQueue>,
        kicker: Kicker,
        block: Block,
        need_wakeup: bool,
    ) -> XskTx {
        let budget = xsk.borrow().tx_budget.max(1);
        XskTx {
            sock,
            xsk,
            q,
            kicker,
            block,
            need_wakeup,
            budget,
            vanished: None,
        }
    }

    /// Takes back every completed buffer (counting the frames sent) and
    /// reaps finished kicks.
    fn reap(&mut self, ctr: &QueueCounters) {
        let (mut pkts, mut bytes, mut bad) = (0u64, 0u64, 0u64);
        {
            let mut guard = self.xsk.borrow_mut();
            let x = &mut *guard;
            let n = x.comp.ready(u32::MAX);
            for i in 0..n {
                let addr = x.comp.read(i);
                match x.geom.completion(&mut x.tx_lent, addr) {
                    Ok(b) => {
                        bytes += u64::from(x.pool.inner.seg(b).len);
                        // A frame is sent when its last buffer completes.
                        pkts += u64::from(x.tx_last.take(b));
                        x.pool.inner.put(b);
                    }
                    Err(_) => bad += 1,
                }
            }
            x.comp.release(n);
            bad += std::mem::take(&mut x.comp.corrupt) + std::mem::take(&mut x.tx.corrupt);
        }
        if pkts > 0 {
            ctr.add(pkts, bytes, 0, 0);
        }
        if bad > 0 {
            add(&self.q.counters.bad_descs, bad);
        }
        if let Err(e) = self.kicker.reap(&self.block.kick) {
            self.vanished = Some(e);
        }
    }

    /// Frames in the tx ring the kernel has not taken yet.
    fn queued(&self) -> u32 {
        let mut x = self.xsk.borrow_mut();
        let size = x.tx.size();
        size - x.tx.free(size)
    }

    /// One kick; true if the kernel said frames may still wait (`EAGAIN` to
    /// a `send()`).
    fn kick(&mut self) -> bool {
        match self.kicker.kick(self.sock.as_fd(), &self.block.kick) {
            Ok(more) => more,
            Err(e) => {
                self.vanished = Some(e);
                false
            }
        }
    }

    /// Kicks enough to send every queued frame: one kick per budget's worth.
    /// A `send()` kick sends before it returns, so another follows only while
    /// the kernel answers `EAGAIN` (more waiting, or no room just now: then at
    /// most a budget's worth of kicks is spent). The ring's consumer index is
    /// no guide: 6.1 and 6.12 publish what a call consumed only at the next
    /// call. uring kicks are queued all at once (the SQ thread issues
    /// them in order; when the SQ is full, kicks not started yet will do).
    fn push(&mut self) {
        let queued = self.queued();
        if queued == 0 {
            return;
        }
        let needed = queued.div_ceil(self.budget);
        match self.kicker {
            Kicker::Sendto => {
                for _ in 0..needed {
                    if !self.kick() || self.vanished.is_some() {
                        break;
                    }
                }
            }
            Kicker::Uring(_) => {
                for _ in 0..needed {
                    self.kick();
                }
            }
        }
    }

    /// The packet as buffers of the UMEM's pool: itself if it is (one buffer,
    /// with the headroom tx metadata needs when the UMEM has it; on a
    /// multi-buffer socket up to [`MAX_FRAGS`] non-empty ones), else a copy
    /// (counted). `None`: dropped (counted).
    fn umem_packet(&self, x: &mut Xsk, p: Packet) -> Option<Packet> {
        let c = &self.q.counters;
        let room = if x.tx_meta { TX_META_LEN as usize } else { 0 };
        if fits(x, &p) && p.headroom() >= room {
            return Some(p);
        }
        let Ok(mut copy) = x.pool.alloc() else {
            add(&c.tx_nombuf, 1);
            return None;
        };
        for s in p.segments() {
            if copy.append(s).is_err() {
                add(&c.oversized, 1);
                return None;
            }
        }
        if !fits(x, &copy) {
            // Longer than one buffer holds (or, multi-buffer, 18 of them).
            add(&c.oversized, 1);
            return None;
        }
        copy.set_vnet_hdr(*p.vnet_hdr());
        add(&c.tx_copied, 1);
        Some(copy)
    }

    /// Finishes the checksum the packet's virtio-net header asks for: by the
    /// kernel, through tx metadata written in front of the frame (returns the
    /// descriptor options that say so), or here in software. `None`: a request
    /// that does not fit the frame (dropped, counted).
    fn finish_csum(&self, x: &Xsk, p: &mut Packet) -> Option<u32> {
        let h = *p.vnet_hdr();
        if h.flags & F_NEEDS_CSUM == 0 {
            return Some(0);
        }
        let c = &self.q.counters;
        let (start, off) = (usize::from(h.csum_start), usize::from(h.csum_offset));
        // The kernel refuses (and stalls the ring on) a field past the end.
        if start + off + 2 > p.len() {
            add(&c.csum_refused, 1);
            return None;
        }
        if x.tx_meta && !x.zerocopy {
            let meta = sys::TxMetadata {
                flags: sys::XDP_TXMD_FLAGS_CHECKSUM,
                csum_start: h.csum_start,
                csum_offset: h.csum_offset,
                ..Default::default()
            };
            // In the headroom umem_packet left for it, right before the frame:
            // written through the packet, which then gives those bytes back.
            let n = TX_META_LEN as usize;
            p.prepend(n).ok()?.copy_from_slice(&meta.to_bytes());
            p.trim_front(n).ok()?;
            add(&c.csum_kernel, 1);
            return Some(sys::XDP_TX_METADATA);
        }
        let mut segs: [&[u8]; MAX_FRAGS] = [&[]; MAX_FRAGS];
        for (s, d) in segs.iter_mut().zip(p.segments()) {
            *s = d;
        }
        let n = p.nb_segs().min(MAX_FRAGS);
        let field = match checksum::sw_l4_checksum_on(&segs[..n], Link::Ethernet) {
            // The field is in the first buffer (the headers are).
            Ok((f, sum)) => p.data_mut().get_mut(f..f + 2).map(|b| (b, sum)),
            Err(_) => None,
        };
        let Some((field, sum)) = field else {
            add(&c.csum_refused, 1);
            return None;
        };
        field.copy_from_slice(&sum.to_be_bytes());
        add(&c.csum_sw, 1);
        Some(0)
    }
}

impl TxEngine for XskTx {
    fn room(&mut self, ctr: &QueueCounters) -> usize {
        self.reap(ctr);
        let mut x = self.xsk.borrow_mut();
        let size = x.tx.size();
        x.tx.free(size) as usize
    }

    fn tx_burst(
        &mut self,
        _fd: BorrowedFd<'_>,
        pkts: &mut Vec<Packet>,
        max: usize,
        ctr: &QueueCounters,
    ) -> std::result::Result<usize, i32> {
        self.reap(ctr);
        if let Some(e) = self.vanished {
            return Err(e);
        }
        let xsk = Rc::clone(&self.xsk);
        let mut guard = xsk.borrow_mut();
        let x = &mut *guard;
        let size = x.tx.size();
        let free = x.tx.free(size) as usize;
        // As many packets as surely fit: a multi-buffer frame takes a
        // descriptor per buffer (a copy at most one more than it has bytes
        // for whole buffers).
        let (mut take, mut need) = (0, 0);
        while take < pkts.len().min(max) {
            need += descs_needed(x, &pkts[take]);
            if need > free {
                break;
            }
            take += 1;
        }
        let (mut filled, mut dropped) = (0u32, 0u64);
        let mut parts = [(0u32, 0u32, 0u32); MAX_FRAGS];
        for p in pkts.drain(..take) {
            if p.len() < 14 {
                dropped += 1;
                continue;
            }
            if p.vnet_hdr().gso_type != GSO_NONE {
                // The port refuses segmentation before this (tx_offload.gso).
                add(&self.q.counters.csum_refused, 1);
                dropped += 1;
                continue;
            }
            let Some(mut p) = self.umem_packet(x, p) else {
                dropped += 1;
                continue;
            };
            let Some(options) = self.finish_csum(x, &mut p) else {
                dropped += 1;
                continue;
            };
            let Ok(n) = p.into_pieces(&x.pool.inner, &mut parts) else {
                dropped += 1;
                continue;
            };
            if parts[..n].iter().any(|p| x.tx_lent.is_lent(p.0)) {
                // A buffer both lent and handed in: never happens. The frame
                // goes nowhere: the pieces not lent go back, the lent one stays
                // with the kernel.
                for p in &parts[..n] {
                    if !x.tx_lent.is_lent(p.0) {
                        x.pool.inner.put(p.0);
                    }
                }
                add(&self.q.counters.bad_descs, 1);
                dropped += 1;
                continue;
            }
            for (i, &(buf, off, len)) in parts[..n].iter().enumerate() {
                x.tx_lent.lend(buf);
                let last = i + 1 == n;
                if last {
                    x.tx_last.lend(buf);
                }
                let more = if last { 0 } else { sys::XDP_PKT_CONTD };
                let opts = if i == 0 { options } else { 0 } | more;
                let addr = x.geom.addr(buf, off);
                x.tx.write(
                    filled,
                    Desc {
                        addr,
                        len,
                        options: opts,
                    },
                );
                filled += 1;
            }
        }
        if filled > 0 {
            x.tx.submit(filled);
        }
        if dropped > 0 {
            ctr.add(0, 0, dropped, 0);
        }
        let wake = !self.need_wakeup || x.tx.needs_wakeup();
        drop(guard);
        // New frames always get their kick (one pending may have walked the ring
        // before they were there); frames left from earlier get one unless a kick
        // is on its way.
        if wake && (filled > 0 || !self.kicker.pending()) {
            self.push();
        }
        match self.vanished {
            Some(e) if filled == 0 => Err(e),
            _ => Ok(take),
        }
    }

    fn flush(&mut self, ctr: &QueueCounters, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.reap(ctr);
            if self.xsk.borrow().tx_lent.count() == 0 {
                return true;
            }
            if self.vanished.is_some() || Instant::now() > deadline {
                return false;
            }
            if !self.kicker.pending() {
                self.push();
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Frames, not buffers: each frame in flight has one last buffer.
    fn in_flight(&self) -> usize {
        self.xsk.borrow().tx_last.count()
    }

    fn ring_features(&self) -> Option<&RingFeatures> {
        self.kicker.features()
    }

    fn engine(&self) -> Option<crate::queue::Engine> {
        Some(crate::queue::Engine::xsk(self.kicker.kind()))
    }
}

/// True if `p` can go as it is: one buffer of the UMEM's pool or, on a
/// multi-buffer socket, up to [`MAX_FRAGS`] of them.
fn fits(x: &Xsk, p: &Packet) -> bool {
    if x.sg {
        // Empty pieces are invalid descriptors: such a chain is copied.
        p.is_chain_of(&x.pool.inner)
            && p.nb_segs() <= MAX_FRAGS
            && p.segments().all(|s| !s.is_empty())
    } else {
        p.is_buffer_of(&x.pool.inner)
    }
}

/// Tx descriptors `p` takes at most (a copy into UMEM buffers included).
fn descs_needed(x: &Xsk, p: &Packet) -> usize {
    if !x.sg {
        return 1;
    }
    if fits(x, p) {
        return p.nb_segs();
    }
    let buf = x.pool.config().buf_size.max(1) as usize;
    p.len().div_ceil(buf) + 1
}
