//! Receive from a packet socket's rx ring: each frame the kernel hands over is
//! copied into pool buffers as a [`Packet`] and its slot (V2) or block (V3)
//! handed straight back, so the ring never waits on the application.
//!
//! A frame arrives with its VLAN tag stripped into the slot header; it is put
//! back in the packet. With `PACKET_VNET_HDR` the kernel's virtio-net header
//! sits just in front of the frame and goes with the packet (`rx_csum()`,
//! `rx_gso()`). Without it, a frame whose checksum the kernel left partial
//! (`TP_STATUS_CSUMNOTREADY`: local traffic) gets its checksum completed here,
//! so it can be sent anywhere. Frames this host sent (`PACKET_OUTGOING`) are not
//! input and are skipped (counted).

use std::os::fd::BorrowedFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use super::frame::{self, BlockCursor, Corrupt, FrameRef};
use super::queue::{count, slot, PacketQueue};
use crate::pool::{Packet, Pool};
use crate::queue::counters::{Block, QueueBlock};
use crate::queue::engine::RxEngine;
use crate::queue::Frame;
use crate::stats::QueueCounters;
use crate::sys::fd as sysfd;
use crate::sys::packet as sys;
use crate::wire::checksum;
use crate::wire::layout::Link;
use crate::wire::vnet::{VnetHdr, F_NEEDS_CSUM, GSO_NONE};

const TP_STATUS_USER: u32 = libc::TP_STATUS_USER;
const PACKET_OUTGOING: u8 = libc::PACKET_OUTGOING;

/// What one burst found, counted once at its end.
#[derive(Default)]
struct Tally {
    pkts: u64,
    bytes: u64,
    errors: u64,
    nombuf: u64,
    truncated: u64,
    /// Headers that point outside their slot or block.
    corrupt: u64,
    outgoing: u64,
    sw_csum: u64,
}

/// A frame an in-place receive may lend: where it lies in its slot, and what
/// goes with it.
struct Lendable {
    data: std::ops::Range<usize>,
    ts: Option<std::time::Duration>,
    vlan: Option<(u16, u16)>,
    vnet: VnetHdr,
    /// Its partial checksum must be finished first (no virtio-net header to
    /// say it is partial).
    sw_csum: bool,
}

/// Checks a frame as `Delivery::deliver` does, counting the ones that are
/// not lent (corrupt, outgoing, truncated, runt).
fn lendable(
    buf: &[u8],
    f: Result<FrameRef, Corrupt>,
    vnet_len: usize,
    t: &mut Tally,
) -> Option<Lendable> {
    let Ok(f) = f else {
        t.errors += 1;
        t.corrupt += 1;
        return None;
    };
    if f.pkttype == PACKET_OUTGOING {
        t.outgoing += 1;
        return None;
    }
    if f.data.len() < f.wire_len {
        t.errors += 1;
        t.truncated += 1;
        return None;
    }
    if f.data.len() < 14 {
        t.errors += 1;
        return None;
    }
    let mut vnet = f
        .vnet
        .and_then(|r| VnetHdr::decode(&buf[r], vnet_len))
        .unwrap_or_default();
    if f.vlan.is_some() {
        // Offsets in the virtio-net header count from the frame start (a
        // header's value is the kernel's, or anyone's who wrote over the
        // ring: it must not overflow).
        if vnet.flags & F_NEEDS_CSUM != 0 {
            vnet.csum_start = vnet.csum_start.saturating_add(4);
        }
        if vnet.gso_type != GSO_NONE {
            vnet.hdr_len = vnet.hdr_len.saturating_add(4);
        }
    }
    Some(Lendable {
        data: f.data,
        ts: f.ts,
        vlan: f.vlan,
        vnet,
        sw_csum: vnet_len == 0 && f.status & libc::TP_STATUS_CSUMNOTREADY != 0,
    })
}

/// Where the L4 checksum of the frame `l` of `slot` goes and its value, for a
/// frame whose checksum the kernel left partial; `None` if it is not TCP or
/// UDP (nothing to finish). The offset is in the slot.
fn slot_csum(slot: &[u8], l: &Lendable) -> Option<(usize, u16)> {
    // The bytes as they lie: a VLAN tag the kernel stripped is in neither the
    // L4 checksum nor the way to the L4 header, so it need not be put back.
    let (off, sum) = checksum::sw_l4_checksum(&[&slot[l.data.clone()]]).ok()?;
    let at = l.data.start + off;
    (at + 2 <= l.data.end).then_some((at, sum))
}

/// Lends the frames `found` describes to `f` and returns how many it took:
/// partial checksums are finished first (`write(i, offset, bytes)` into frame
/// `i`'s slot or block), then the frames are made from `bytes(i)` (frame `i`'s
/// slot or block); what `f` takes is counted into `t`. Every slice of the ring
/// ends before this returns, so the caller may hand slots back after it.
fn lend<'r>(
    found: &mut [Option<Lendable>],
    bytes: impl Fn(usize) -> &'r [u8],
    write: impl Fn(usize, usize, &[u8]),
    f: &mut dyn FnMut(&[Frame<'_>]) -> usize,
    t: &mut Tally,
) -> usize {
    const N: usize = crate::queue::INPLACE_MAX;
    let k = found.len().min(N);
    for (i, l) in found.iter_mut().enumerate().take(k) {
        let Some(l) = l.as_mut().filter(|l| l.sw_csum) else {
            continue;
        };
        match slot_csum(bytes(i), l) {
            Some((at, sum)) => write(i, at, &sum.to_be_bytes()),
            None => l.sw_csum = false,
        }
    }
    let mut frames = [Frame::EMPTY; N];
    for (i, (fr, l)) in frames.iter_mut().zip(&*found).enumerate().take(k) {
        if let Some(l) = l {
            *fr = Frame::ring(&bytes(i)[l.data.clone()], l.vlan, l.vnet).at(l.ts);
        }
    }
    let took = if k > 0 { f(&frames[..k]).min(k) } else { 0 };
    for (fr, l) in frames.iter().zip(&*found).take(took) {
        t.pkts += 1;
        t.bytes += fr.len() as u64;
        t.sw_csum += u64::from(l.as_ref().is_some_and(|l| l.sw_csum));
    }
    took
}

/// What the in-place receive makes of one V2 slot of arbitrary bytes (for
/// the fuzz target): the bytes of the frame it would lend, its partial
/// checksum finished in `slot` where it would be; `None` if not lent.
#[cfg(fuzzing)]
pub(crate) fn lend_v2(slot: &mut [u8], status: u32, vnet_len: usize) -> Option<Vec<u8>> {
    let mut t = Tally::default();
    let f = frame::v2_frame(slot, status, vnet_len);
    let l = lendable(slot, f, vnet_len, &mut t)?;
    if l.sw_csum {
        if let Some((at, sum)) = slot_csum(slot, &l) {
            slot[at..at + 2].copy_from_slice(&sum.to_be_bytes());
        }
    }
    Some(Frame::ring(&slot[l.data.clone()], l.vlan, l.vnet).to_vec())
}

/// The pool side shared by both ring versions.
struct Delivery {
    pool: Pool,
    vnet_len: usize,
}

impl Delivery {
    /// Turns the frame `f` of slot or block `buf` (or the header's corruption)
    /// into a packet appended to `out`, or counts why not.
    fn deliver(
        &self,
        buf: &[u8],
        f: Result<FrameRef, Corrupt>,
        out: &mut Vec<Packet>,
        t: &mut Tally,
    ) {
        let Some(l) = lendable(buf, f, self.vnet_len, t) else {
            return;
        };
        let Ok(mut p) = self.pool.alloc() else {
            t.nombuf += 1;
            return;
        };
        let frame = Frame::ring(&buf[l.data.clone()], l.vlan, l.vnet);
        if frame.segments().try_for_each(|s| p.append(s)).is_err() {
            // The pool ran dry halfway through a chain; `p` gives its buffers back.
            t.nombuf += 1;
            return;
        }
        // A frame the kernel left partial; nothing to complete if not TCP/UDP.
        if l.sw_csum && p.finish_l4_checksum(Link::Ethernet) {
            t.sw_csum += 1;
        }
        p.set_vnet_hdr(l.vnet);
        t.pkts += 1;
        t.bytes += p.len() as u64;
        out.push(p);
    }
}

fn publish(block: &QueueBlock, ctr: &QueueCounters, t: &Tally) {
    ctr.add(t.pkts, t.bytes, t.errors, t.nombuf);
    ctr.add_truncated(t.truncated);
    count(block, slot::OUTGOING, t.outgoing);
    count(block, slot::CORRUPT, t.corrupt);
    count(block, slot::SW_CSUM, t.sw_csum);
}

/// The socket's interface was unregistered (a link going down leaves it bound).
fn socket_gone(fd: BorrowedFd<'_>) -> bool {
    // A pending error (ENETDOWN on link down or removal) would keep poll()
    // reporting the socket ready: read it away.
    let _ = sys::take_error(fd);
    sys::bound_ifindex(fd).map_or(true, |i| i <= 0)
}

/// Where a reader of a ring of `n` slots (or blocks) starts: at the oldest one
/// the kernel has handed over (smallest `key` among those `user` says are the
/// user's), else at `hint`, where the queue's last reader stopped.
///
/// A reader that resumes where the last one stopped is right in the common
/// case; the scan covers a last reader in another process that died between
/// handing slots back and saying so (its saved position is behind, in front of
/// slots the kernel already filled again, and reading there would wait on a
/// slot the kernel is not going to fill next).
pub(crate) fn start_at(
    n: u32,
    hint: u32,
    user: impl Fn(u32) -> bool,
    key: impl Fn(u32) -> u64,
) -> u32 {
    let hint = hint % n.max(1);
    (0..n)
        .map(|k| (hint + k) % n)
        .filter(|&i| user(i))
        .min_by_key(|&i| key(i))
        .unwrap_or(hint)
}

/// TPACKET_V2 rx engine: one frame per slot.
pub(crate) struct PacketRx {
    pq: Arc<PacketQueue>,
    d: Delivery,
    /// Next slot to look at.
    head: u32,
    /// Where every process running the queue keeps the reader's position.
    block: Block,
}

impl PacketRx {
    pub(crate) fn new(
        pq: Arc<PacketQueue>,
        pool: &Pool,
        vnet_len: usize,
        block: Block,
    ) -> PacketRx {
        let ring = &pq.rx;
        let hint = block.dev[0].load(Relaxed) as u32;
        let head = start_at(
            ring.geom.frame_count,
            hint,
            |i| ring.status(i) & TP_STATUS_USER != 0,
            |i| ring.v2_time(i),
        );
        PacketRx {
            pq,
            d: Delivery {
                pool: pool.clone(),
                vnet_len,
            },
            head,
            block,
        }
    }
}

impl Drop for PacketRx {
    fn drop(&mut self) {
        self.block.dev[0].store(u64::from(self.head), Relaxed);
    }
}

impl RxEngine for PacketRx {
    fn rx_inplace(
        &mut self,
        _fd: BorrowedFd<'_>,
        max: usize,
        ctr: &QueueCounters,
        f: &mut dyn FnMut(&[Frame<'_>]) -> usize,
    ) -> Result<Option<usize>, i32> {
        const N: usize = crate::queue::INPLACE_MAX;
        if max == 0 || self.pq.rx.status(self.head) & TP_STATUS_USER == 0 {
            // Nothing there: no scratch to set up (a busy poller asks often).
            return Ok(Some(0));
        }
        let pq = Arc::clone(&self.pq);
        let ring = &pq.rx;
        let n = ring.geom.frame_count;
        let max = max.min(N);
        let mut t = Tally::default();
        let mut slots = [0u32; N];
        let mut found: [Option<Lendable>; N] = [const { None }; N];
        let mut k = 0;
        let mut i = self.head;
        // Slots looked at, and how many were before each lendable frame.
        let mut scanned = 0u32;
        let mut before = [0u32; N];
        // Bounded by the ring. A frame that is not lent is counted here and its
        // slot handed back with the others; one met after a lendable frame is
        // left for the next call, so nothing is counted twice.
        for _ in 0..n {
            if k >= max {
                break;
            }
            let st = ring.status(i);
            if st & TP_STATUS_USER == 0 {
                break;
            }
            let slot = ring.slot(i);
            let f = frame::v2_frame(slot, st, self.d.vnet_len);
            let lent = if k == 0 {
                lendable(slot, f, self.d.vnet_len, &mut t)
            } else {
                let mut probe = Tally::default();
                let l = lendable(slot, f, self.d.vnet_len, &mut probe);
                if l.is_none() {
                    break;
                }
                l
            };
            if let Some(l) = lent {
                slots[k] = i;
                before[k] = scanned;
                found[k] = Some(l);
                k += 1;
            }
            i = (i + 1) % n;
            scanned += 1;
        }
        let took = lend(
            &mut found[..k],
            |i| ring.slot(slots[i]),
            |i, at, b| ring.write(slots[i], at, b),
            f,
            &mut t,
        );
        // Every slot before the first frame not taken goes back (bad ones too).
        let back = if took < k { before[took] } else { scanned };
        for _ in 0..back {
            ring.set_status(self.head, libc::TP_STATUS_KERNEL);
            self.head = (self.head + 1) % n;
        }
        if back > 0 {
            self.block.dev[0].store(u64::from(self.head), Relaxed);
        }
        publish(&self.block, ctr, &t);
        Ok(Some(took))
    }

    fn in_place(&self) -> bool {
        true
    }

    fn drained(&self) -> bool {
        // The next slot is still the kernel's: it signals again when it fills
        // one.
        self.pq.rx.status(self.head) & TP_STATUS_USER == 0
    }

    fn rx_burst(
        &mut self,
        _fd: BorrowedFd<'_>,
        out: &mut Vec<Packet>,
        max: usize,
        ctr: &QueueCounters,
    ) -> Result<usize, i32> {
        let ring = &self.pq.rx;
        let n = ring.geom.frame_count;
        let start = out.len();
        let mut t = Tally::default();
        // Bounded by the ring: frames dropped here (errors, nombuf) free their slot too.
        for _ in 0..n {
            if out.len() - start >= max {
                break;
            }
            let st = ring.status(self.head);
            if st & TP_STATUS_USER == 0 {
                break;
            }
            let slot = ring.slot(self.head);
            let f = frame::v2_frame(slot, st, self.d.vnet_len);
            self.d.deliver(slot, f, out, &mut t);
            ring.set_status(self.head, libc::TP_STATUS_KERNEL);
            self.head = (self.head + 1) % n;
        }
        if out.len() > start || t.errors + t.nombuf + t.outgoing > 0 {
            // One store per burst: where the next reader (maybe another
            // process) goes on.
            self.block.dev[0].store(u64::from(self.head), Relaxed);
        }
        publish(&self.block, ctr, &t);
        Ok(out.len() - start)
    }

    fn held(&self) -> usize {
        0
    }

    fn wait(&mut self, fd: BorrowedFd<'_>, timeout: Duration) -> std::io::Result<bool> {
        if self.pq.rx.status(self.head) & TP_STATUS_USER != 0 {
            return Ok(true);
        }
        sysfd::poll_in(fd, timeout)
    }

    fn gone(&mut self, fd: BorrowedFd<'_>) -> bool {
        socket_gone(fd)
    }
}

/// TPACKET_V3 rx engine: frames packed into blocks, a block handed back once
/// every frame in it is delivered (or counted).
pub(crate) struct PacketRxV3 {
    pq: Arc<PacketQueue>,
    d: Delivery,
    cur: Cursor,
    /// Where every process running the queue keeps the reader's position:
    /// `dev[0]` the block, `dev[1]` an open block's frames left and offset.
    block: Block,
}

/// An open cursor's `dev[1]` word (0: closed).
fn open_word(c: &Cursor) -> u64 {
    if c.open {
        1 << 63 | u64::from(c.pos.left) << 32 | u64::from(c.pos.off)
    } else {
        0
    }
}

/// Where a V3 engine is: the block being read, and where in it.
#[derive(Clone, Copy, Default)]
struct Cursor {
    block: u32,
    pos: BlockCursor,
    open: bool,
}

impl Cursor {
    /// Hands the current block back and moves to the next one.
    fn close(&mut self, pq: &PacketQueue) {
        pq.rx.release_block(self.block);
        self.block = (self.block + 1) % pq.rx.block_count();
        self.open = false;
    }
}

impl PacketRxV3 {
    pub(crate) fn new(
        pq: Arc<PacketQueue>,
        pool: &Pool,
        vnet_len: usize,
        block: Block,
    ) -> PacketRxV3 {
        let ring = &pq.rx;
        let hint = block.dev[0].load(Relaxed) as u32 % ring.block_count();
        let open = block.dev[1].load(Relaxed);
        let user = |b| ring.block_status(b) & TP_STATUS_USER != 0;
        let seq = |b| frame::v3_block_seq(ring.block_slice(b));
        let first = start_at(ring.block_count(), hint, user, seq);
        // Resume inside the block the last reader had open, if that is where
        // reading goes on; else from the start of the oldest block.
        let cur = if first == hint && open != 0 && user(hint) {
            Cursor {
                block: hint,
                pos: BlockCursor {
                    left: (open >> 32) as u32 & 0x7fff_ffff,
                    off: open as u32,
                },
                open: true,
            }
        } else {
            Cursor {
                block: first,
                ..Cursor::default()
            }
        };
        PacketRxV3 {
            pq,
            d: Delivery {
                pool: pool.clone(),
                vnet_len,
            },
            cur,
            block,
        }
    }
}

impl RxEngine for PacketRxV3 {
    /// Reads ahead with a copy of the cursor, across blocks, without handing
    /// any back; once `f` has taken what it takes, the blocks every frame of
    /// which was taken (or counted bad) go back, and the cursor moves to the
    /// first frame not taken.
    fn rx_inplace(
        &mut self,
        _fd: BorrowedFd<'_>,
        max: usize,
        ctr: &QueueCounters,
        f: &mut dyn FnMut(&[Frame<'_>]) -> usize,
    ) -> Result<Option<usize>, i32> {
        const N: usize = crate::queue::INPLACE_MAX;
        let pq = Arc::clone(&self.pq);
        let ring = &pq.rx;
        if max == 0 || !self.cur.open && ring.block_status(self.cur.block) & TP_STATUS_USER == 0 {
            // Nothing there: no scratch to set up (a busy poller asks often).
            return Ok(Some(0));
        }
        let (max, vnet_len, nblocks) = (max.min(N), self.d.vnet_len, ring.block_count());
        let mut t = Tally::default();
        let mut w = self.cur;
        // Each lendable frame: where the cursor stood before it, and what it is.
        let mut at = [Cursor::default(); N];
        let mut found: [Option<Lendable>; N] = [const { None }; N];
        let mut k = 0;
        // Blocks the walk read to the end, in order, with the frames lent
        // before each ended.
        let mut ended = [(0u32, 0usize); N];
        let mut n_ended = 0;
        // Bounded: every pass reads a frame or ends a block, both bounded.
        for _ in 0..(1 << 16) {
            if k >= max {
                break;
            }
            if !w.open {
                // Back at the first block: every block was read once.
                if n_ended > 0 && w.block == self.cur.block {
                    break;
                }
                if ring.block_status(w.block) & TP_STATUS_USER == 0 {
                    break;
                }
                w.pos = BlockCursor::open(ring.block_slice(w.block));
                w.open = true;
            }
            let before = w;
            let blk = ring.block_slice(w.block);
            match w.pos.next(blk, vnet_len) {
                None => {
                    if n_ended == ended.len() {
                        break;
                    }
                    ended[n_ended] = (w.block, k);
                    n_ended += 1;
                    w.block = (w.block + 1) % nblocks;
                    w.open = false;
                }
                Some(fr) if k == 0 => {
                    if let Some(l) = lendable(blk, fr, vnet_len, &mut t) {
                        at[k] = before;
                        found[k] = Some(l);
                        k += 1;
                    }
                }
                Some(fr) => {
                    // A frame not lent after one that is: left for the next
                    // call, which counts it (so it is counted once).
                    match lendable(blk, fr, vnet_len, &mut Tally::default()) {
                        Some(l) => {
                            at[k] = before;
                            found[k] = Some(l);
                            k += 1;
                        }
                        None => {
                            w = before;
                            break;
                        }
                    }
                }
            }
        }
        let took = lend(
            &mut found[..k],
            |i| ring.block_slice(at[i].block),
            |i, off, b| ring.write_block(at[i].block, off, b),
            f,
            &mut t,
        );
        // Blocks read to the end before the first frame not taken go back.
        for &(b, lent_before) in &ended[..n_ended] {
            if lent_before > took {
                break;
            }
            ring.release_block(b);
        }
        self.cur = if took < k { at[took] } else { w };
        self.block.dev[0].store(u64::from(self.cur.block), Relaxed);
        self.block.dev[1].store(open_word(&self.cur), Relaxed);
        publish(&self.block, ctr, &t);
        Ok(Some(took))
    }

    fn in_place(&self) -> bool {
        true
    }

    fn drained(&self) -> bool {
        // No block open and the next one not handed over: the kernel signals
        // again when it retires a block.
        !self.cur.open && self.pq.rx.block_status(self.cur.block) & TP_STATUS_USER == 0
    }

    fn rx_burst(
        &mut self,
        _fd: BorrowedFd<'_>,
        out: &mut Vec<Packet>,
        max: usize,
        ctr: &QueueCounters,
    ) -> Result<usize, i32> {
        let (pq, d, cur) = (&*self.pq, &self.d, &mut self.cur);
        let ring = &pq.rx;
        let start = out.len();
        let mut t = Tally::default();
        // Bounded: every pass delivers or counts a frame, or opens or closes a block.
        for _ in 0..(1 << 16) {
            if out.len() - start >= max {
                break;
            }
            if !cur.open {
                if ring.block_status(cur.block) & TP_STATUS_USER == 0 {
                    break;
                }
                cur.pos = BlockCursor::open(ring.block_slice(cur.block));
                cur.open = true;
            }
            let blk = ring.block_slice(cur.block);
            match cur.pos.next(blk, d.vnet_len) {
                Some(f) => d.deliver(blk, f, out, &mut t),
                None => {
                    cur.close(pq);
                    continue;
                }
            }
            if cur.pos.left == 0 {
                cur.close(pq);
            }
        }
        if out.len() > start || t.errors + t.nombuf + t.outgoing > 0 {
            self.block.dev[0].store(u64::from(cur.block), Relaxed);
            self.block.dev[1].store(open_word(cur), Relaxed);
        }
        publish(&self.block, ctr, &t);
        Ok(out.len() - start)
    }

    fn held(&self) -> usize {
        0
    }

    fn wait(&mut self, fd: BorrowedFd<'_>, timeout: Duration) -> std::io::Result<bool> {
        if self.cur.open || self.pq.rx.block_status(self.cur.block) & TP_STATUS_USER != 0 {
            return Ok(true);
        }
        sysfd::poll_in(fd, timeout)
    }

    fn gone(&mut self, fd: BorrowedFd<'_>) -> bool {
        socket_gone(fd)
    }
}

impl Drop for PacketRxV3 {
    /// Saves where to resume: the queue's next engine reads on from the frame
    /// after the last one delivered, in the block still held.
    fn drop(&mut self) {
        self.block.dev[0].store(u64::from(self.cur.block), Relaxed);
        self.block.dev[1].store(open_word(&self.cur), Relaxed);
    }
}

#[cfg(test)]
mod start_tests {
    use super::start_at;

    /// `start_at` over a ring described by (user?, key) per slot.
    fn start(slots: &[(bool, u64)], hint: u32) -> u32 {
        start_at(
            slots.len() as u32,
            hint,
            |i| slots[i as usize].0,
            |i| slots[i as usize].1,
        )
    }

    #[test]
    fn resumes_at_the_oldest_frame_the_kernel_handed_over() {
        let k = (false, 0);
        // Consistent: the hint is the oldest user slot.
        assert_eq!(start(&[k, (true, 5), (true, 6), k], 1), 1);
        // Empty ring: the hint.
        assert_eq!(start(&[k, k, k, k], 2), 2);
        // A reader died after handing back slots 1..3 but before saying so: the
        // kernel refilled 3 (then 0, wrapping); reading goes on at 3.
        assert_eq!(start(&[(true, 8), k, k, (true, 7)], 1), 3);
        // Full ring: the oldest by the kernel's clock, wherever the hint is.
        assert_eq!(start(&[(true, 3), (true, 4), (true, 1), (true, 2)], 0), 2);
        // A hint past the ring wraps.
        assert_eq!(start(&[k, k], 5), 1);
    }
}

#[cfg(test)]
mod lend_tests {
    use super::*;
    use crate::wire::vnet::{GSO_TCPV4, VNET_HDR_LEN};

    /// A virtio-net header written over the ring (offsets at their maximum)
    /// next to a VLAN tag the kernel stripped: the offsets moved for the tag
    /// put back do not overflow (found by the tpacket fuzz target).
    #[test]
    fn a_hostile_header_beside_a_vlan_tag_does_not_overflow() {
        let mut buf = vec![0u8; 100];
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: u16::MAX,
            gso_size: 1,
            csum_start: u16::MAX - 1,
            csum_offset: 6,
            num_buffers: 0,
        };
        h.encode(&mut buf[..VNET_HDR_LEN], VNET_HDR_LEN).unwrap();
        let f = FrameRef {
            data: VNET_HDR_LEN..80,
            wire_len: 80 - VNET_HDR_LEN,
            status: 0,
            vlan: Some((0x8100, 5)),
            vnet: Some(0..VNET_HDR_LEN),
            pkttype: 0,
            ts: None,
        };
        let mut t = Tally::default();
        let l = lendable(&buf, Ok(f), VNET_HDR_LEN, &mut t).expect("lent");
        assert_eq!((l.vnet.csum_start, l.vnet.hdr_len), (u16::MAX, u16::MAX));
        assert!(!l.sw_csum);
    }
}
