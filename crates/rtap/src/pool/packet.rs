//! [`Packet`]: an owned chain of pool buffers holding one frame.

use std::ptr::NonNull;

use super::{PoolInner, Seg, Shared, MAX_PACKET_LEN, NO_SEG};
use crate::error::{Error, Result};
use crate::wire::checksum;
use crate::wire::layout::Link;
use crate::wire::offload::{RxCsum, RxGso, TxRequest};
use crate::wire::vnet::VnetHdr;

/// One Ethernet frame in one or more pool buffers.
///
/// A `Packet` owns its buffers: it cannot be used after it has been handed to
/// [`TxQueue::tx_burst`](crate::TxQueue::tx_burst) (the call takes it by value) and
/// its buffers go back to the pool when it is dropped. It carries the virtio-net
/// header the kernel gave on receive, or the one to send on transmit.
///
/// A packet is `Send` and `Sync`: it may be read, changed in place, sent or
/// dropped on any thread (its buffers go back to their pool's thread, see
/// [`crate::pool`]); growing it with new buffers is for the pool's thread.
pub struct Packet {
    /// The pool's memory: valid while the packet owns a buffer (`head` is
    /// not `NO_SEG`), as the memory goes only once every buffer is back.
    sh: NonNull<Shared>,
    head: u32,
    tail: u32,
    len: u32,
    nsegs: u16,
    vnet: VnetHdr,
    tx_req: TxRequest,
}

impl std::fmt::Debug for Packet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packet")
            .field("len", &self.len)
            .field("segments", &self.nsegs)
            .field("vnet", &self.vnet)
            .finish()
    }
}

// SAFETY: a packet owns its buffers and segment records alone, and reaches the
// pool's memory only through `Shared`'s thread-safe paths (`give_back`; the
// free list only on the pool's thread, checked there); see `pool/inner.rs`.
unsafe impl Send for Packet {}
// SAFETY: `&Packet` only reads its own buffers and records.
unsafe impl Sync for Packet {}

impl Packet {
    pub(crate) fn from_parts(
        pool: &PoolInner,
        head: u32,
        tail: u32,
        len: u32,
        nsegs: u16,
    ) -> Packet {
        Packet {
            sh: pool.shared(),
            head,
            tail,
            len,
            nsegs,
            vnet: VnetHdr::default(),
            tx_req: TxRequest::default(),
        }
    }

    /// Builds a received packet over pieces `(buffer, offset, length)` in
    /// order, each in a buffer of `pool` the caller owns (a multi-buffer
    /// frame). `parts` is not empty.
    pub(crate) fn from_pieces(pool: &PoolInner, parts: &[(u32, u32, u32)]) -> Packet {
        let mut len = 0u32;
        for (i, &(b, off, l)) in parts.iter().enumerate() {
            pool.set_seg(
                b,
                Seg {
                    off,
                    len: l,
                    next: parts.get(i + 1).map_or(NO_SEG, |p| p.0),
                },
            );
            len += l;
        }
        Packet::from_parts(
            pool,
            parts[0].0,
            parts[parts.len() - 1].0,
            len,
            parts.len() as u16,
        )
    }

    /// Builds a received packet over `bufs` (filled in order, the first from
    /// `first_off`, the others from offset 0), `len` bytes long. Buffers the frame
    /// did not reach go back to the pool.
    pub(crate) fn from_filled(
        pool: &PoolInner,
        bufs: &[u32],
        first_off: u32,
        len: usize,
        vnet: VnetHdr,
    ) -> Packet {
        let size = pool.cfg().buf_size;
        let mut left = len as u32;
        let mut used = 0usize;
        for (i, &b) in bufs.iter().enumerate() {
            let off = if i == 0 { first_off } else { 0 };
            let take = left.min(size - off);
            let next = NO_SEG;
            pool.set_seg(
                b,
                Seg {
                    off,
                    len: take,
                    next,
                },
            );
            if i > 0 {
                let prev = bufs[i - 1];
                let mut s = pool.seg(prev);
                s.next = b;
                pool.set_seg(prev, s);
            }
            used = i + 1;
            left -= take;
            if left == 0 {
                break;
            }
        }
        for &b in &bufs[used..] {
            pool.put(b);
        }
        let mut p = Packet::from_parts(pool, bufs[0], bufs[used - 1], len as u32, used as u16);
        p.vnet = vnet;
        p
    }

    /// The pool's memory.
    #[inline]
    fn pool(&self) -> &Shared {
        // SAFETY: the packet owns at least one buffer (every constructor
        // gives it one; `into_pieces` empties it only on its way to drop,
        // which checks), so the memory lives.
        unsafe { self.sh.as_ref() }
    }

    /// Frame length in bytes (all segments, virtio-net header excluded).
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True for a zero-length packet.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of buffers in the chain.
    #[inline]
    pub fn nb_segs(&self) -> usize {
        self.nsegs as usize
    }

    /// The virtio-net header: what the kernel reported on receive, or what will be
    /// sent with the frame on transmit (all zero: no offload requested).
    #[inline]
    pub fn vnet_hdr(&self) -> &VnetHdr {
        &self.vnet
    }

    /// Asks for transmit offloads: the L4 checksum and/or segmentation of a large
    /// TCP or UDP frame. The tx queue fills the virtio-net header from the frame's
    /// own headers (Ethernet, optional VLAN tags, IPv4/IPv6, TCP/UDP), which must
    /// be in the first segment; a request that does not fit the frame (MSS 0,
    /// segmentation of a non-TCP frame, ...) is dropped and counted
    /// (`tx_q{N}_offload_rejected`), never handed to the kernel.
    #[inline]
    pub fn set_tx_offload(&mut self, req: TxRequest) {
        self.tx_req = req;
    }

    /// The pending transmit offload request.
    #[inline]
    pub fn tx_offload(&self) -> TxRequest {
        self.tx_req
    }

    /// What the kernel said about the L4 checksum of a received frame.
    #[inline]
    pub fn rx_csum(&self) -> RxCsum {
        crate::wire::offload::rx_csum(&self.vnet)
    }

    /// If the kernel handed up a coalesced (GRO/LRO) frame: its kind and segment size.
    #[inline]
    pub fn rx_gso(&self) -> RxGso {
        crate::wire::offload::rx_gso(&self.vnet)
    }

    /// Sets the virtio-net header sent with this frame.
    #[inline]
    pub fn set_vnet_hdr(&mut self, h: VnetHdr) {
        self.vnet = h;
    }

    #[inline]
    fn seg_slice(&self, idx: u32) -> &[u8] {
        let s = self.pool().seg(idx);
        // SAFETY: this packet owns buffer idx exclusively (pool invariant), and
        // off+len <= buf_size keeps the slice inside the buffer.
        unsafe {
            std::slice::from_raw_parts(self.pool().buf_ptr(idx).add(s.off as usize), s.len as usize)
        }
    }

    #[inline]
    fn seg_slice_mut(&mut self, idx: u32) -> &mut [u8] {
        let s = self.pool().seg(idx);
        // SAFETY: as in seg_slice, and &mut self guarantees no other borrow of this
        // packet's bytes is alive.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.pool().buf_ptr(idx).add(s.off as usize),
                s.len as usize,
            )
        }
    }

    /// Bytes of the first segment (the whole frame unless it is chained).
    #[inline]
    pub fn data(&self) -> &[u8] {
        self.seg_slice(self.head)
    }

    /// Mutable bytes of the first segment.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.seg_slice_mut(self.head)
    }

    /// The segments in order.
    pub fn segments(&self) -> Segments<'_> {
        Segments {
            pkt: self,
            next: self.head,
        }
    }

    /// Computes the frame's TCP or UDP checksum in software (the field's
    /// content ignored) and writes it in place; `link` says where the frame
    /// starts. False, and nothing written, if it is not a TCP or UDP packet
    /// rtap can parse (or has more than 64 segments).
    pub(crate) fn finish_l4_checksum(&mut self, link: Link) -> bool {
        let mut segs: [&[u8]; 64] = [&[]; 64];
        let mut n = 0;
        for s in self.segments() {
            if n == segs.len() {
                return false;
            }
            segs[n] = s;
            n += 1;
        }
        let Ok((off, sum)) = checksum::sw_l4_checksum_on(&segs[..n], link) else {
            return false;
        };
        match self.data_mut().get_mut(off..off + 2) {
            Some(field) => {
                field.copy_from_slice(&sum.to_be_bytes());
                true
            }
            None => false,
        }
    }

    /// Copies the whole frame into a new vector (for tests and slow paths).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        for s in self.segments() {
            v.extend_from_slice(s);
        }
        v
    }

    /// Copies as much of the frame as fits into `out`; returns the bytes copied.
    pub fn copy_to(&self, out: &mut [u8]) -> usize {
        let mut n = 0;
        for s in self.segments() {
            let k = s.len().min(out.len() - n);
            out[n..n + k].copy_from_slice(&s[..k]);
            n += k;
            if n == out.len() {
                break;
            }
        }
        n
    }

    /// Bytes free in front of the first segment.
    pub fn headroom(&self) -> usize {
        self.pool().seg(self.head).off as usize
    }

    /// Grows the frame at the front by `n` bytes taken from the headroom and returns them.
    pub fn prepend(&mut self, n: usize) -> Result<&mut [u8]> {
        let mut s = self.pool().seg(self.head);
        if n > s.off as usize {
            return Err(Error::PacketTooLarge {
                len: n,
                max: s.off as usize,
            });
        }
        s.off -= n as u32;
        s.len += n as u32;
        self.pool().set_seg(self.head, s);
        self.len += n as u32;
        Ok(&mut self.data_mut()[..n])
    }

    /// Removes `n` bytes from the front of the first segment.
    pub fn trim_front(&mut self, n: usize) -> Result<()> {
        let mut s = self.pool().seg(self.head);
        if n > s.len as usize {
            return Err(Error::PacketTooShort {
                op: "trim",
                n,
                len: s.len as usize,
            });
        }
        s.off += n as u32;
        s.len -= n as u32;
        self.pool().set_seg(self.head, s);
        self.len -= n as u32;
        Ok(())
    }

    /// Shortens the frame to `len` bytes, returning emptied trailing buffers to the pool.
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len() {
            return;
        }
        let mut left = len as u32;
        let mut idx = self.head;
        let mut count = 1u16;
        loop {
            let mut s = self.pool().seg(idx);
            if s.len >= left || s.next == NO_SEG {
                s.len = left.min(s.len);
                let rest = s.next;
                s.next = NO_SEG;
                self.pool().set_seg(idx, s);
                // Keep the head even if it is empty; free everything after idx.
                if rest != NO_SEG {
                    Shared::give_back(self.sh, rest);
                }
                break;
            }
            left -= s.len;
            idx = s.next;
            count += 1;
        }
        self.tail = idx;
        self.nsegs = count;
        self.len = len as u32;
    }

    /// Appends `bytes` at the end, chaining new buffers as needed. All or nothing:
    /// on error the packet is unchanged.
    pub fn append(&mut self, bytes: &[u8]) -> Result<()> {
        if self.len() + bytes.len() > MAX_PACKET_LEN {
            return Err(Error::PacketTooLarge {
                len: self.len() + bytes.len(),
                max: MAX_PACKET_LEN,
            });
        }
        let size = self.pool().cfg().buf_size;
        let t = self.pool().seg(self.tail);
        let tail_room = (size - t.off - t.len) as usize;
        let need = bytes.len().saturating_sub(tail_room);
        let nnew = need.div_ceil(size as usize);
        let here = match self.pool().here() {
            Some(h) => Some(h),
            None if nnew == 0 => None,
            None => return Err(Error::PoolElsewhere { need: nnew }),
        };
        // Check first so that the takes below cannot fail (the free list is
        // this thread's): all or nothing, without a scratch array.
        if nnew > here.as_ref().map_or(0, |h| h.available()) {
            return Err(Error::PoolExhausted {
                count: self.pool().cfg().count,
            });
        }
        let (first, mut rest) = bytes.split_at(bytes.len().min(tail_room));
        let tail = self.tail;
        let mut s = t;
        // SAFETY: the tail buffer is owned by this packet and off+len+first.len() <= size.
        unsafe {
            std::ptr::copy_nonoverlapping(
                first.as_ptr(),
                self.pool().buf_ptr(tail).add((s.off + s.len) as usize),
                first.len(),
            );
        }
        s.len += first.len() as u32;
        self.pool().set_seg(tail, s);
        let mut prev = tail;
        for _ in 0..nnew {
            let b = here
                .as_ref()
                .and_then(|h| h.take())
                .expect("availability checked above");
            let k = rest.len().min(size as usize);
            // SAFETY: b was just taken from the free stack, so this packet owns it, and k <= size.
            unsafe { std::ptr::copy_nonoverlapping(rest.as_ptr(), self.pool().buf_ptr(b), k) };
            self.pool().set_seg(
                b,
                Seg {
                    off: 0,
                    len: k as u32,
                    next: NO_SEG,
                },
            );
            let mut ps = self.pool().seg(prev);
            ps.next = b;
            self.pool().set_seg(prev, ps);
            prev = b;
            rest = &rest[k..];
        }
        self.tail = prev;
        self.nsegs += nnew as u16;
        self.len += bytes.len() as u32;
        Ok(())
    }

    /// True if the packet's buffers are of `pool` (one or a chain).
    pub(crate) fn is_chain_of(&self, pool: &PoolInner) -> bool {
        self.sh == pool.shared()
    }

    /// True if the packet is one buffer of `pool`.
    pub(crate) fn is_buffer_of(&self, pool: &PoolInner) -> bool {
        self.nsegs == 1 && self.sh == pool.shared()
    }

    /// Hands a packet of `pool` over as its buffers, `(index, offset, length)`
    /// in order, written to `out`; returns how many. Each buffer is then the
    /// caller's to give back. A packet of another pool, of more segments than
    /// `out` holds, or with an empty segment, comes back as it was.
    pub(crate) fn into_pieces(
        mut self,
        pool: &PoolInner,
        out: &mut [(u32, u32, u32)],
    ) -> std::result::Result<usize, Packet> {
        if self.sh != pool.shared() || usize::from(self.nsegs) > out.len() {
            return Err(self);
        }
        let mut idx = self.head;
        let mut n = 0;
        while idx != NO_SEG {
            let s = self.pool().seg(idx);
            if s.len == 0 || n == out.len() {
                return Err(self);
            }
            out[n] = (idx, s.off, s.len);
            n += 1;
            idx = s.next;
        }
        // The buffers change hands: the packet's drop gives nothing back.
        self.head = NO_SEG;
        Ok(n)
    }

    /// Calls `f(ptr, len)` for each segment: the raw view the tx path hands the kernel.
    #[inline]
    pub(crate) fn for_each_raw(&self, mut f: impl FnMut(*mut u8, usize)) {
        let mut idx = self.head;
        while idx != NO_SEG {
            let s = self.pool().seg(idx);
            // SAFETY: off < buf_size, inside the buffer this packet owns.
            f(
                unsafe { self.pool().buf_ptr(idx).add(s.off as usize) },
                s.len as usize,
            );
            idx = s.next;
        }
    }

    /// Pointer to the first byte of the frame and the headroom in front of it.
    #[inline]
    pub(crate) fn head_raw(&self) -> (*mut u8, usize) {
        let s = self.pool().seg(self.head);
        // SAFETY: off < buf_size, inside the head buffer this packet owns.
        (
            unsafe { self.pool().buf_ptr(self.head).add(s.off as usize) },
            s.off as usize,
        )
    }
}

impl Drop for Packet {
    fn drop(&mut self) {
        if self.head != NO_SEG {
            Shared::give_back(self.sh, self.head);
        }
    }
}

/// Iterator over a packet's segments.
#[derive(Debug)]
pub struct Segments<'a> {
    pkt: &'a Packet,
    next: u32,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.next == NO_SEG {
            return None;
        }
        let idx = self.next;
        self.next = self.pkt.pool().seg(idx).next;
        Some(self.pkt.seg_slice(idx))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Pool, PoolConfig};

    fn small_pool() -> Pool {
        Pool::new(PoolConfig {
            count: 64,
            buf_size: 256,
            headroom: 32,
        })
        .unwrap()
    }

    #[test]
    fn append_chains_and_reads_back() {
        let pool = small_pool();
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let p = pool.alloc_from(&data).unwrap();
        assert_eq!(p.len(), 1000);
        // 224 in the head, then 256 per segment: 224+256*3 = 992, so 5 segments.
        assert_eq!(p.nb_segs(), 5);
        assert_eq!(p.to_vec(), data);
        assert_eq!(pool.available(), 59);
        drop(p);
        assert_eq!(pool.available(), 64);
    }

    #[test]
    fn append_is_all_or_nothing_when_pool_runs_dry() {
        let pool = Pool::new(PoolConfig {
            count: 2,
            buf_size: 128,
            headroom: 32,
        })
        .unwrap();
        let mut p = pool.alloc().unwrap();
        assert!(p.append(&[1u8; 500]).is_err());
        assert_eq!(p.len(), 0);
        assert_eq!(pool.available(), 1);
    }

    #[test]
    fn truncate_frees_trailing_segments() {
        let pool = small_pool();
        let data = vec![9u8; 1000];
        let mut p = pool.alloc_from(&data).unwrap();
        p.truncate(300);
        assert_eq!(p.len(), 300);
        assert_eq!(p.nb_segs(), 2);
        assert_eq!(p.to_vec(), vec![9u8; 300]);
        assert_eq!(pool.available(), 62);
        p.append(&[1, 2, 3]).unwrap();
        assert_eq!(p.len(), 303);
    }

    #[test]
    fn prepend_and_trim_use_headroom() {
        let pool = small_pool();
        let mut p = pool.alloc_from(b"payload").unwrap();
        p.prepend(4).unwrap().copy_from_slice(b"hdr:");
        assert_eq!(p.to_vec(), b"hdr:payload");
        assert!(p.prepend(100).is_err());
        p.trim_front(4).unwrap();
        assert_eq!(p.data(), b"payload");
    }
}
