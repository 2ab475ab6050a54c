//! Userspace coalescing: consecutive TCP segments (or equal UDP datagrams) of
//! one flow, as a VPN receives them from the network, merged into one large IP
//! packet with a virtio-net GSO header, to be written into a TUN in one go
//! (the kernel takes it whole, as it takes its own GRO packets).
//!
//! What may be merged follows the kernel's GRO rules: same addresses, ports,
//! IP version; no IPv4 options or IPv6 extension headers; IPv4 TOS, TTL and
//! flags equal and identification +1 per packet; IPv6 traffic class, flow
//! label and hop limit equal; TCP: sequence numbers continuous, the same ACK,
//! window and options (timestamps included), only ACK and PSH set, every
//! segment but the last exactly the first one's size; a PSH or a shorter
//! segment ends the packet; UDP: every datagram but the last the first one's
//! size. At most 64 KiB per packet.
//!
//! Checksums of the merged packets are not verified here (a VPN has already
//! authenticated what it decrypted); the merged packet goes out with a partial
//! checksum for the kernel to finish, as the kernel's own GRO packets do.
//!
//! Pure code. A [`Merger`] builds packets in buffers its caller provides
//! ([`MergeSink`]): pool packets, so a merged packet is sent from where it was
//! built. A [`Coalescer`] is a merger with buffers of its own, allocated once
//! when it is made, that hands packets on as bytes.

use super::checksum::{fold, sum_words};
use super::gso::{get16, get32, ipv4_header_checksum, put16};
use super::layout::{layout_on, Link, L4};
use super::vnet::{VnetHdr, F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4};

/// Largest merged packet (IPv4 total length; IPv6 payload length is kept under it too).
const MAX_LEN: usize = 65_535;

const TCP_ACK: u8 = 0x10;
const TCP_PSH: u8 = 0x08;

/// Where a coalescer builds a packet: bytes that grow at the end, whose
/// first bytes (the headers of the packet it started with) stay contiguous
/// and writable. A `Vec<u8>` is one; so is a pool [`Packet`](crate::Packet),
/// whose first buffer holds the headers, so merged packets are built where
/// they will be sent from.
pub trait MergeBuf {
    /// The first bytes, contiguous: at least the headers of the first packet.
    fn head(&self) -> &[u8];
    /// The same, writable (the coalescer rewrites lengths and checksums there).
    fn head_mut(&mut self) -> &mut [u8];
    /// Appends `bytes`; false, and nothing appended, if there is no room.
    fn extend(&mut self, bytes: &[u8]) -> bool;
}

impl MergeBuf for Vec<u8> {
    fn head(&self) -> &[u8] {
        self
    }

    fn head_mut(&mut self) -> &mut [u8] {
        self
    }

    fn extend(&mut self, bytes: &[u8]) -> bool {
        self.extend_from_slice(bytes);
        true
    }
}

/// Where a [`Merger`] takes its buffers from and sends what leaves it.
pub trait MergeSink {
    /// The buffers packets are built in.
    type Buf: MergeBuf;
    /// A buffer holding a copy of `first`, to build a packet on; `None` if
    /// there is none (the packet then leaves through [`passed`](Self::passed)).
    fn start(&mut self, first: &[u8]) -> Option<Self::Buf>;
    /// A packet built here leaves, with the virtio-net header to write it
    /// with (all zero for a packet that stayed alone: its own checksums).
    fn built(&mut self, buf: Self::Buf, h: &VnetHdr);
    /// A packet that cannot be merged leaves as it came.
    fn passed(&mut self, pkt: &[u8]);
}

/// Merges packets of up to `flows` flows at a time, building them in buffers
/// a [`MergeSink`] provides (for example pool packets: the merged packet is
/// then sent as built, with no copy at hand-off).
#[derive(Debug)]
pub struct Merger<B> {
    slots: Box<[Slot<B>]>,
    /// Next slot to evict when every slot holds a flow.
    victim: usize,
}

#[derive(Debug)]
struct Slot<B> {
    /// The packet being built (`None`: the slot is free).
    buf: Option<B>,
    len: usize,
    /// Packets merged into `buf`.
    count: u32,
    ipv6: bool,
    tcp: bool,
    l4_off: usize,
    hdr_len: usize,
    /// Payload bytes of the first packet: every merged one but the last has as many.
    size: usize,
    next_seq: u32,
    last_id: u16,
    /// No more may join (a PSH, or a short segment, arrived).
    closed: bool,
}

/// Where a pushed packet went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Merged into a packet being built.
    Merged,
    /// Held: it starts a packet others may join.
    Held,
    /// Handed on as it is (not a flow that can be merged, or no buffer).
    Passed,
}

impl<B: MergeBuf> Merger<B> {
    /// A merger of `flows` flows (no buffers until packets arrive).
    pub fn new(flows: usize) -> Merger<B> {
        Merger {
            slots: (0..flows.max(1))
                .map(|_| Slot {
                    buf: None,
                    len: 0,
                    count: 0,
                    ipv6: false,
                    tcp: false,
                    l4_off: 0,
                    hdr_len: 0,
                    size: 0,
                    next_seq: 0,
                    last_id: 0,
                    closed: false,
                })
                .collect(),
            victim: 0,
        }
    }

    /// Takes one IP packet (complete checksums, as received). Packets that
    /// leave (finished merges, packets that cannot be merged) go to `sink`,
    /// in each flow's order.
    pub fn push<S: MergeSink<Buf = B>>(&mut self, pkt: &[u8], sink: &mut S) -> Pushed {
        let Some(p) = Parsed::new(pkt) else {
            sink.passed(pkt);
            return Pushed::Passed;
        };
        if let Some(i) = self.slots.iter().position(|s| s.same_flow(pkt, &p)) {
            if self.slots[i].try_merge(pkt, &p) {
                if self.slots[i].closed {
                    self.slots[i].emit(sink);
                }
                return Pushed::Merged;
            }
            self.slots[i].emit(sink);
            return self.hold(i, pkt, &p, sink);
        }
        let i = match self.slots.iter().position(|s| s.buf.is_none()) {
            Some(i) => i,
            None => {
                let i = self.victim;
                self.victim = (self.victim + 1) % self.slots.len();
                self.slots[i].emit(sink);
                i
            }
        };
        self.hold(i, pkt, &p, sink)
    }

    fn hold<S: MergeSink<Buf = B>>(
        &mut self,
        i: usize,
        pkt: &[u8],
        p: &Parsed,
        sink: &mut S,
    ) -> Pushed {
        if !p.mergeable || pkt.len() > MAX_LEN {
            sink.passed(pkt);
            return Pushed::Passed;
        }
        // The buffer must keep the headers contiguous, or they cannot be
        // compared and rewritten: else the packet goes as it is.
        let Some(buf) = sink.start(pkt).filter(|b| b.head().len() >= p.hdr_len) else {
            sink.passed(pkt);
            return Pushed::Passed;
        };
        let s = &mut self.slots[i];
        s.buf = Some(buf);
        s.len = pkt.len();
        s.count = 1;
        s.ipv6 = p.ipv6;
        s.tcp = p.tcp;
        s.l4_off = p.l4_off;
        s.hdr_len = p.hdr_len;
        s.size = pkt.len() - p.hdr_len;
        s.next_seq = p.seq.wrapping_add(s.size as u32);
        s.last_id = p.id;
        s.closed = p.psh;
        if s.closed {
            s.emit(sink);
        }
        Pushed::Held
    }

    /// Sends every packet being built on (call once per burst: holding
    /// packets longer only adds latency).
    pub fn flush<S: MergeSink<Buf = B>>(&mut self, sink: &mut S) {
        for s in self.slots.iter_mut() {
            s.emit(sink);
        }
    }

    /// Packets held now.
    pub fn held(&self) -> usize {
        self.slots.iter().filter(|s| s.buf.is_some()).count()
    }
}

/// Merges packets of up to `flows` flows at a time in buffers of its own
/// (64 KiB each, allocated when it is made), handing what leaves as bytes:
/// a [`Merger`] over vectors it recycles.
#[derive(Debug)]
pub struct Coalescer {
    merger: Merger<Vec<u8>>,
    spare: Vec<Vec<u8>>,
}

/// The sink of a [`Coalescer`]: its spare vectors and the caller's `emit`.
struct Bytes<'a, F> {
    spare: &'a mut Vec<Vec<u8>>,
    emit: &'a mut F,
}

impl<F: FnMut(&[u8], &VnetHdr)> MergeSink for Bytes<'_, F> {
    type Buf = Vec<u8>;

    fn start(&mut self, first: &[u8]) -> Option<Vec<u8>> {
        // One spare per slot, and a slot's vector comes back before it is
        // used again: never empty.
        let mut v = self.spare.pop()?;
        v.clear();
        v.extend_from_slice(first);
        Some(v)
    }

    fn built(&mut self, buf: Vec<u8>, h: &VnetHdr) {
        (self.emit)(&buf, h);
        self.spare.push(buf);
    }

    fn passed(&mut self, pkt: &[u8]) {
        (self.emit)(pkt, &VnetHdr::default());
    }
}

impl Coalescer {
    /// A coalescer of `flows` flows (buffers of 64 KiB each, allocated now).
    pub fn new(flows: usize) -> Coalescer {
        let n = flows.max(1);
        Coalescer {
            merger: Merger::new(n),
            spare: (0..n).map(|_| Vec::with_capacity(MAX_LEN)).collect(),
        }
    }

    /// Takes one IP packet (complete checksums, as received). Packets that
    /// leave the coalescer (finished merges, packets that cannot be merged) go
    /// to `emit` with the virtio-net header to write them with, in each flow's
    /// order.
    pub fn push(&mut self, pkt: &[u8], emit: &mut impl FnMut(&[u8], &VnetHdr)) -> Pushed {
        let mut sink = Bytes {
            spare: &mut self.spare,
            emit,
        };
        self.merger.push(pkt, &mut sink)
    }

    /// Emits every packet being built (call once per burst: holding packets
    /// longer only adds latency).
    pub fn flush(&mut self, emit: &mut impl FnMut(&[u8], &VnetHdr)) {
        let mut sink = Bytes {
            spare: &mut self.spare,
            emit,
        };
        self.merger.flush(&mut sink);
    }

    /// Packets held now.
    pub fn held(&self) -> usize {
        self.merger.held()
    }
}

/// What `push` needs to know of a packet.
struct Parsed {
    ipv6: bool,
    tcp: bool,
    l4_off: usize,
    hdr_len: usize,
    seq: u32,
    id: u16,
    psh: bool,
    /// A TCP segment with payload and only ACK (and PSH) set, or a UDP
    /// datagram with payload; no IPv4 options or IPv6 extension headers.
    mergeable: bool,
}

impl Parsed {
    fn new(pkt: &[u8]) -> Option<Parsed> {
        let l = layout_on(pkt, Link::Ip).ok()?;
        let tcp = match l.l4 {
            L4::Tcp => true,
            L4::Udp => false,
            L4::Other(_) => return None,
        };
        if l.l4_offset + l.l4_len != pkt.len() {
            return None; // trailing bytes past the IP length: leave it alone
        }
        let plain_ip = if l.ipv6 {
            l.l4_offset == 40
        } else {
            l.l4_offset == 20
        };
        let hdr_len = l.l4_offset + l.l4_hdr_len;
        let l4 = l.l4_offset;
        let flags = if tcp { pkt[l4 + 13] } else { 0 };
        let payload = pkt.len() - hdr_len;
        Some(Parsed {
            ipv6: l.ipv6,
            tcp,
            l4_off: l4,
            hdr_len,
            seq: if tcp { get32(pkt, l4 + 4) } else { 0 },
            id: if l.ipv6 { 0 } else { get16(pkt, 4) },
            psh: flags & TCP_PSH != 0,
            mergeable: plain_ip
                && payload > 0
                && (!tcp || flags & !(TCP_ACK | TCP_PSH) == 0 && flags & TCP_ACK != 0),
        })
    }
}

impl<B: MergeBuf> Slot<B> {
    /// Holding a packet of the same addresses, ports and IP version, and the
    /// same header fields GRO requires equal (see the module docs).
    fn same_flow(&self, pkt: &[u8], p: &Parsed) -> bool {
        let Some(b) = &self.buf else {
            return false;
        };
        let h = b.head();
        if p.ipv6 != self.ipv6 || p.tcp != self.tcp || p.l4_off != self.l4_off {
            return false;
        }
        let ip_same = if p.ipv6 {
            // version, traffic class, flow label; next header, hop limit; addresses
            h[..4] == pkt[..4] && h[6..40] == pkt[6..40]
        } else {
            // version/IHL, TOS; flags/fragment, TTL, protocol; addresses
            h[..2] == pkt[..2] && h[6..10] == pkt[6..10] && h[12..20] == pkt[12..20]
        };
        let l4 = self.l4_off;
        ip_same && h[l4..l4 + 4] == pkt[l4..l4 + 4]
    }

    /// Appends the packet if the rules allow (and the buffer has room).
    fn try_merge(&mut self, pkt: &[u8], p: &Parsed) -> bool {
        if self.closed || !p.mergeable || p.hdr_len != self.hdr_len {
            return false;
        }
        let payload = pkt.len() - p.hdr_len;
        if payload > self.size || self.len + payload > MAX_LEN {
            return false;
        }
        if !self.ipv6 && p.id != self.last_id.wrapping_add(1) {
            return false;
        }
        let Some(b) = &mut self.buf else {
            return false;
        };
        let l4 = self.l4_off;
        if self.tcp {
            let h = b.head();
            // ACK, data offset, window, and every option byte equal; the flags
            // byte may differ only in PSH.
            let same = h[l4 + 8..l4 + 12] == pkt[l4 + 8..l4 + 12]
                && h[l4 + 12] == pkt[l4 + 12]
                && h[l4 + 14..l4 + 16] == pkt[l4 + 14..l4 + 16]
                && h[l4 + 20..self.hdr_len] == pkt[l4 + 20..p.hdr_len];
            if !same || p.seq != self.next_seq {
                return false;
            }
        }
        if !b.extend(&pkt[p.hdr_len..]) {
            return false;
        }
        self.len += payload;
        self.count += 1;
        self.next_seq = self.next_seq.wrapping_add(payload as u32);
        self.last_id = p.id;
        if p.psh {
            b.head_mut()[l4 + 13] |= TCP_PSH;
        }
        self.closed = p.psh || payload < self.size;
        true
    }

    /// Sends the packet built here on, if any, and frees the slot.
    fn emit<S: MergeSink<Buf = B>>(&mut self, sink: &mut S) {
        let Some(mut buf) = self.buf.take() else {
            return;
        };
        let count = std::mem::take(&mut self.count);
        if count <= 1 {
            // The packet as it came: its own checksums.
            sink.built(buf, &VnetHdr::default());
            return;
        }
        let len = self.len;
        let b = buf.head_mut();
        let l4 = self.l4_off;
        let l4_len = len - l4;
        if self.ipv6 {
            put16(b, 4, l4_len as u16);
        } else {
            put16(b, 2, len as u16);
            ipv4_header_checksum(b);
        }
        let (csum_at, proto) = if self.tcp {
            (l4 + 16, 6u64)
        } else {
            put16(b, l4 + 4, l4_len as u16);
            (l4 + 6, 17)
        };
        // The pseudo-header sum, not complemented: the kernel adds the rest.
        let (src, alen) = if self.ipv6 { (8, 16) } else { (12, 4) };
        let seed = fold(sum_words(&b[src..src + 2 * alen]) + proto + l4_len as u64);
        put16(b, csum_at, seed);
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: match (self.tcp, self.ipv6) {
                (true, false) => GSO_TCPV4,
                (true, true) => GSO_TCPV6,
                _ => GSO_UDP_L4,
            },
            hdr_len: self.hdr_len as u16,
            gso_size: self.size as u16,
            csum_start: l4 as u16,
            csum_offset: (csum_at - l4) as u16,
            num_buffers: 0,
        };
        sink.built(buf, &h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::gso::split;
    use proptest::prelude::*;

    /// A super-packet as a TUN with offloads hands it up (checksum seed in the
    /// field, as the kernel leaves it), and its header.
    fn tso(v6: bool, tcp: bool, n: usize, size: u16, psh: bool) -> (Vec<u8>, VnetHdr) {
        let payload: Vec<u8> = (0..n).map(|i| (i * 13 + 1) as u8).collect();
        let b = if v6 {
            etherparse::PacketBuilder::ipv6([0xfd; 16], [0xfe; 16], 64)
        } else {
            etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        };
        let mut out = Vec::new();
        if tcp {
            let mut t = b.tcp(4000, 5001, 7, 1000).ack(9);
            if psh {
                t = t.psh();
            }
            t.write(&mut out, &payload).unwrap();
        } else {
            b.udp(4000, 5001).write(&mut out, &payload).unwrap();
        }
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: match (tcp, v6) {
                (true, false) => GSO_TCPV4,
                (true, true) => GSO_TCPV6,
                _ => GSO_UDP_L4,
            },
            gso_size: size,
            ..VnetHdr::default()
        };
        (out, h)
    }

    /// Split, then coalesce: the segments merge back into one packet whose
    /// payload and headers are the original's, with the GSO header asking for
    /// the same segmentation.
    fn round_trip(
        v6: bool,
        tcp: bool,
        n: usize,
        size: u16,
        psh: bool,
    ) -> Result<(), TestCaseError> {
        let (p, h) = tso(v6, tcp, n, size, psh);
        let mut s = split(&p, &h).unwrap();
        let mut c = Coalescer::new(4);
        let mut out: Vec<(Vec<u8>, VnetHdr)> = Vec::new();
        let mut buf = vec![0u8; 70_000];
        while let Some(r) = s.next_into(&mut buf) {
            let k = r.unwrap();
            c.push(&buf[..k], &mut |b: &[u8], h: &VnetHdr| {
                out.push((b.to_vec(), *h))
            });
        }
        c.flush(&mut |b: &[u8], h: &VnetHdr| out.push((b.to_vec(), *h)));
        prop_assert_eq!(out.len(), 1, "one packet back");
        let (q, qh) = &out[0];
        let hl = p.len() - n;
        prop_assert_eq!(&q[hl..], &p[hl..], "payload");
        prop_assert_eq!(q.len(), p.len());
        let segs = n.div_ceil(size as usize);
        if segs > 1 {
            prop_assert_eq!(qh.gso_size, size);
            prop_assert_eq!(qh.gso_type, h.gso_type);
            prop_assert_eq!(usize::from(qh.hdr_len), hl);
            // Splitting it again gives the same segments.
            let mut a = split(&p, &h).unwrap();
            let mut b2 = split(q, qh).unwrap();
            let (mut x, mut y) = (vec![0u8; 70_000], vec![0u8; 70_000]);
            for _ in 0..segs {
                let kx = a.next_into(&mut x).unwrap().unwrap();
                let ky = b2.next_into(&mut y).unwrap().unwrap();
                prop_assert_eq!(&x[..kx], &y[..ky]);
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn split_then_coalesce_round_trips(v6: bool, tcp: bool, n in 1usize..60_000, size in 500u16..1500, psh: bool) {
            round_trip(v6, tcp, n, size, psh)?;
        }

        /// Whatever bytes arrive, push never panics, and everything pushed
        /// comes out once.
        #[test]
        fn any_bytes_pass(pkts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..120), 0..20)) {
            let mut c = Coalescer::new(2);
            let mut n = 0;
            let mut ins = 0;
            for p in &pkts {
                if c.push(p, &mut |_: &[u8], _: &VnetHdr| n += 1) != Pushed::Merged {
                    ins += 1;
                }
            }
            c.flush(&mut |_: &[u8], _: &VnetHdr| n += 1);
            prop_assert_eq!(n, ins);
        }
    }

    #[test]
    fn rules_that_end_a_packet() {
        let seg = |seq: u32, n: usize, flags: u8, id: u16| {
            let mut out = Vec::new();
            let mut t = etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .tcp(1, 2, seq, 100)
                .ack(5);
            if flags & 0x08 != 0 {
                t = t.psh();
            }
            if flags & 0x01 != 0 {
                t = t.fin();
            }
            t.write(&mut out, &vec![7u8; n]).unwrap();
            put16(&mut out, 4, id);
            out
        };
        let mut c = Coalescer::new(2);
        let mut out = Vec::new();
        let mut e = |b: &[u8], h: &VnetHdr| out.push((b.len(), h.gso_type));
        assert_eq!(c.push(&seg(0, 100, 0, 1), &mut e), Pushed::Held);
        assert_eq!(c.push(&seg(100, 100, 0, 2), &mut e), Pushed::Merged);
        // A gap in the sequence: the held packet goes, this one starts anew.
        assert_eq!(c.push(&seg(300, 100, 0, 3), &mut e), Pushed::Held);
        // An IP ID that does not follow.
        assert_eq!(c.push(&seg(400, 100, 0, 9), &mut e), Pushed::Held);
        // A shorter segment joins and ends it.
        assert_eq!(c.push(&seg(500, 40, 0, 10), &mut e), Pushed::Merged);
        assert_eq!(c.held(), 0);
        // FIN is never merged.
        assert_eq!(c.push(&seg(540, 10, 1, 11), &mut e), Pushed::Passed);
        c.flush(&mut e);
        assert_eq!(
            out,
            vec![(240, GSO_TCPV4), (140, 0), (180, GSO_TCPV4), (50, 0)]
        );
    }
}
