//! Transmit through a packet socket's tx ring: each packet is copied into the
//! next free slot (virtio-net header first when offloads are on), the slot is
//! marked `TP_STATUS_SEND_REQUEST` with a `Release` store, and one kick per
//! burst makes the kernel walk the ring. A slot that comes back
//! `TP_STATUS_AVAILABLE` is a frame sent (counted then, not when queued); one
//! that comes back `TP_STATUS_WRONG_FORMAT` is a frame the kernel refused
//! (counted as a tx error and taken out of the ring, see [`PacketTx::refused`]).
//!
//! The kick is a `send(fd, NULL, 0, MSG_DONTWAIT)` ([`Kick::Sendto`], DPDK's way,
//! one syscall per burst) or the same send as an io_uring request that the
//! process's SQPOLL kernel thread issues ([`Kick::Uring`]: the application only
//! writes the SQ tail, and makes a syscall only to wake the thread after it went
//! to sleep).
//!
//! [`Kick::Sendto`]: crate::Kick::Sendto
//! [`Kick::Uring`]: crate::Kick::Uring

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::TX_DATA_OFF;
use super::queue::{count, slot, PacketQueue};
use crate::backend::kick::Kicker;
use crate::pool::Packet;
use crate::queue::counters::Block;
use crate::queue::engine::TxEngine;
use crate::queue::Frame;
use crate::queue::RingFeatures;
use crate::stats::QueueCounters;
use crate::wire::vnet::{VnetHdr, GSO_NONE, VNET_HDR_LEN};

/// What the tx ring takes a copy of: a packet, or a frame lent by an
/// in-place receive.
trait Item {
    fn len(&self) -> usize;
    fn vnet(&self) -> VnetHdr;
    fn for_each_seg(&self, f: impl FnMut(&[u8]));
}

impl Item for Packet {
    fn len(&self) -> usize {
        Packet::len(self)
    }
    fn vnet(&self) -> VnetHdr {
        *self.vnet_hdr()
    }
    fn for_each_seg(&self, f: impl FnMut(&[u8])) {
        self.segments().for_each(f)
    }
}

impl Item for Frame<'_> {
    fn len(&self) -> usize {
        Frame::len(self)
    }
    fn vnet(&self) -> VnetHdr {
        *self.vnet_hdr()
    }
    fn for_each_seg(&self, f: impl FnMut(&[u8])) {
        self.segments().for_each(f)
    }
}

const SEND_REQUEST: u32 = libc::TP_STATUS_SEND_REQUEST;
/// Status bits of a slot the kernel has not finished with (timestamp bits aside).
const BUSY: u32 = libc::TP_STATUS_SEND_REQUEST | libc::TP_STATUS_SENDING;
const WRONG_FORMAT: u32 = libc::TP_STATUS_WRONG_FORMAT;

/// Tx engine of one packet-port queue.
pub(crate) struct PacketTx {
    pq: Arc<PacketQueue>,
    kicker: Kicker,
    /// The queue's counter block (kicks and the device's slots).
    block: Block,
    vnet_len: usize,
    /// Oldest slot not reaped yet.
    head: u32,
    /// Next slot to fill.
    tail: u32,
    /// Slots filled and not reaped (`tail - head` around the ring).
    pending: u32,
    /// Largest frame taken: a slot's data area less the header, or the MTU's
    /// frame if smaller (offloads off). Larger ones are refused, `oversized`.
    max_len: usize,
    /// The interface is gone (a kick said so).
    vanished: Option<i32>,
}

impl PacketTx {
    /// The engine of `pq`'s tx ring. `max_frame`: the largest frame the port
    /// takes besides the slot's room (the MTU's, when offloads are off).
    pub(crate) fn new(
        pq: Arc<PacketQueue>,
        kicker: Kicker,
        block: Block,
        max_frame: Option<usize>,
    ) -> PacketTx {
        let saved = *pq.saved.lock().unwrap_or_else(|e| e.into_inner());
        let vnet_len = VNET_HDR_LEN;
        let slot_room = (pq.tx.geom.frame_size - TX_DATA_OFF) as usize - vnet_len;
        let max_len = max_frame.map_or(slot_room, |m| m.min(slot_room));
        PacketTx {
            head: saved.tx_head,
            tail: saved.tx_tail,
            pending: saved.tx_pending,
            pq,
            kicker,
            block,
            vnet_len,
            max_len,
            vanished: None,
        }
    }

    fn slots(&self) -> u32 {
        self.pq.tx.geom.frame_count
    }

    fn next(&self, i: u32) -> u32 {
        (i + 1) % self.slots()
    }

    /// Counts every slot the kernel has finished with, oldest first, and takes
    /// refused ones out of the ring. Then reaps finished kicks.
    fn reap(&mut self, ctr: &QueueCounters) {
        let (mut pkts, mut bytes, mut errors) = (0u64, 0u64, 0u64);
        let pq = Arc::clone(&self.pq);
        let ring = &pq.tx;
        // Bounded by the ring: every pass retires a slot.
        while self.pending > 0 {
            let st = ring.status(self.head);
            if st & WRONG_FORMAT != 0 {
                self.refused();
                errors += 1;
                continue;
            }
            if st & BUSY != 0 {
                break;
            }
            pkts += 1;
            bytes += (ring.tx_len(self.head) as usize - self.vnet_len) as u64;
            self.head = self.next(self.head);
            self.pending -= 1;
        }
        ctr.add(pkts, bytes, errors, 0);
        if let Err(e) = self.kicker.reap(&self.block.kick) {
            self.vanished = Some(e);
        }
    }

    /// The kernel refused the frame at `head` (`TP_STATUS_WRONG_FORMAT`) and stopped
    /// there: it sends nothing more until that slot is `SEND_REQUEST` again, and a
    /// slot marked `AVAILABLE` would stall the ring for good. So the frames queued
    /// behind it move down one slot, in order, and the head slot is re-armed with
    /// the first of them last.
    fn refused(&mut self) {
        count(&self.block, slot::WRONG_FORMAT, 1);
        let ring = &self.pq.tx;
        let j = self.head;
        let last = (self.tail + self.slots() - 1) % self.slots();
        let mut k = j;
        while k != last {
            let src = self.next(k);
            // The kernel's head is at `j`, whose status is not SEND_REQUEST: it reads
            // no slot behind it, so every slot from `j` to `last` is the user's to rewrite.
            let len = ring.tx_len(src);
            ring.copy_slot(src, k, TX_DATA_OFF as usize, len as usize);
            ring.set_tx_len(k, len);
            k = src;
        }
        ring.set_status(last, libc::TP_STATUS_AVAILABLE);
        self.tail = last;
        self.pending -= 1;
        if self.pending > 0 {
            // Everything behind the head is in place: hand the head over last.
            ring.set_status(j, SEND_REQUEST);
        }
    }

    /// A kick is needed: the newest frame still waits for the kernel and no kick
    /// is on its way (after `EAGAIN`, `ENOBUFS` or a link that was down).
    fn stalled(&self) -> bool {
        if self.pending == 0 || self.kicker.pending() {
            return false;
        }
        let newest = (self.tail + self.slots() - 1) % self.slots();
        self.pq.tx.status(newest) & SEND_REQUEST != 0
    }

    fn kick(&mut self, fd: BorrowedFd<'_>) {
        // A packet socket's send walks the whole ring: no second kick for EAGAIN.
        if let Err(e) = self.kicker.kick(fd, &self.block.kick) {
            self.vanished = Some(e);
        }
    }

    /// Copies `pkt` into slot `i`: virtio-net header, then the frame.
    fn fill(&self, i: u32, pkt: &impl Item) {
        let ring = &self.pq.tx;
        let mut off = TX_DATA_OFF as usize;
        {
            let mut h = pkt.vnet();
            if h.gso_type == GSO_NONE {
                // The kernel copies `hdr_len` bytes into the skb and attaches the
                // rest as fragments of the ring's pages; a veth (or any path into
                // the local stack) must then copy those into fresh pages, a page
                // allocation per frame. A frame that is not segmented goes whole
                // into the skb instead.
                h.hdr_len = pkt.len().min(u16::MAX as usize) as u16;
            }
            let mut hdr = [0u8; 16];
            h.encode(&mut hdr, self.vnet_len);
            ring.write(i, off, &hdr[..self.vnet_len]);
            off += self.vnet_len;
        }
        pkt.for_each_seg(|s| {
            ring.write(i, off, s);
            off += s.len();
        });
        ring.set_tx_len(i, (off - TX_DATA_OFF as usize) as u32);
    }

    /// Copies items from the front of `items` into free slots, at most `max`,
    /// kicks once, and returns how many it took (queued, or refused and
    /// counted), and the error to report (the interface is gone and nothing
    /// was queued). Those taken are taken even then: counted, not to be
    /// offered again.
    fn put(
        &mut self,
        items: &[impl Item],
        max: usize,
        ctr: &QueueCounters,
    ) -> (usize, Option<i32>) {
        self.reap(ctr);
        if let Some(e) = self.vanished {
            return (0, Some(e));
        }
        let pq = Arc::clone(&self.pq);
        let tx_fd = pq.tx_sock.as_fd();
        let offered = items.len();
        let n = offered.min(max);
        let (mut taken, mut filled, mut rejected) = (0, 0u32, 0u64);
        let ring = &pq.tx;
        for pkt in items.iter().take(n) {
            let len = pkt.len();
            if len < 14 || len > self.max_len {
                // Never written to the ring: the kernel would stop at it.
                rejected += 1;
                if len > self.max_len {
                    count(&self.block, slot::OVERSIZED, 1);
                }
                taken += 1;
                continue;
            }
            // The tail slot is free unless the ring is full (or the kernel re-armed
            // it after a failed transmit: it is not ours then either).
            if self.pending == self.slots() || ring.status(self.tail) != libc::TP_STATUS_AVAILABLE {
                break;
            }
            self.fill(self.tail, pkt);
            // The frame and its length are in place before the kernel may see the slot.
            ring.set_status(self.tail, SEND_REQUEST);
            self.tail = self.next(self.tail);
            self.pending += 1;
            filled += 1;
            taken += 1;
        }
        if taken < offered && self.pending == self.slots() {
            // The caller had more than the ring could take.
            count(&self.block, slot::RING_FULL, 1);
        }
        if rejected > 0 {
            ctr.add(0, 0, rejected, 0);
        }
        if filled > 0 || self.stalled() {
            self.kick(tx_fd);
        }
        match self.vanished {
            Some(e) if filled == 0 => (taken, Some(e)),
            _ => (taken, None),
        }
    }
}

impl TxEngine for PacketTx {
    fn writable_fd(&self) -> Option<BorrowedFd<'_>> {
        // The tx ring is the tx socket's: it polls writable when the slot to
        // fill next is the user's again (its frame sent).
        Some(self.pq.tx_sock.as_fd())
    }

    fn room(&mut self, ctr: &QueueCounters) -> usize {
        self.reap(ctr);
        (self.slots() - self.pending) as usize
    }

    fn tx_burst(
        &mut self,
        _fd: BorrowedFd<'_>,
        pkts: &mut Vec<Packet>,
        max: usize,
        ctr: &QueueCounters,
    ) -> std::result::Result<usize, i32> {
        let (taken, err) = self.put(pkts, max, ctr);
        pkts.drain(..taken);
        match err {
            Some(e) => Err(e),
            None => Ok(taken),
        }
    }

    fn tx_copy(
        &mut self,
        _fd: BorrowedFd<'_>,
        frames: &[Frame<'_>],
        max: usize,
        ctr: &QueueCounters,
    ) -> Option<std::result::Result<usize, i32>> {
        Some(match self.put(frames, max, ctr) {
            (0, Some(e)) => Err(e),
            (taken, _) => Ok(taken),
        })
    }

    fn flush(&mut self, ctr: &QueueCounters, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let pq = Arc::clone(&self.pq);
        loop {
            self.reap(ctr);
            if self.pending == 0 {
                return true;
            }
            if self.vanished.is_some() || Instant::now() > deadline {
                return false;
            }
            if self.stalled() {
                self.kick(pq.tx_sock.as_fd());
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    fn in_flight(&self) -> usize {
        self.pending as usize
    }

    fn ring_features(&self) -> Option<&RingFeatures> {
        self.kicker.features()
    }

    fn engine(&self) -> Option<crate::queue::Engine> {
        Some(crate::queue::Engine::tpacket(self.kicker.kind()))
    }
}

impl Drop for PacketTx {
    /// Saves where the ring stands for the queue's next engine. Frames still
    /// queued stay in the ring and go out with the next kick.
    fn drop(&mut self) {
        let mut s = self.pq.saved.lock().unwrap_or_else(|e| e.into_inner());
        s.tx_head = self.head;
        s.tx_tail = self.tail;
        s.tx_pending = self.pending;
    }
}
