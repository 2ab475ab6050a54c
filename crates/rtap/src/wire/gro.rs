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
//! Pure code: the buffers are allocated once, when the [`Coalescer`] is made.

use super::checksum::{fold, sum_words};
use super::gso::{get16, get32, ipv4_header_checksum, put16};
use super::layout::{layout_on, Link, L4};
use super::vnet::{VnetHdr, F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4};

/// Largest merged packet (IPv4 total length; IPv6 payload length is kept under it too).
const MAX_LEN: usize = 65_535;

const TCP_ACK: u8 = 0x10;
const TCP_PSH: u8 = 0x08;

/// Merges packets of up to `flows` flows at a time.
#[derive(Debug)]
pub struct Coalescer {
    slots: Box<[Slot]>,
    /// Next slot to evict when every slot holds a flow.
    victim: usize,
}

#[derive(Debug)]
struct Slot {
    buf: Box<[u8]>,
    len: usize,
    /// Packets merged into `buf` (0: the slot is free).
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
    /// Handed to `emit` as it is (not a flow that can be merged).
    Passed,
}

impl Coalescer {
    /// A coalescer of `flows` flows (buffers of 64 KiB each, allocated now).
    pub fn new(flows: usize) -> Coalescer {
        Coalescer {
            slots: (0..flows.max(1))
                .map(|_| Slot {
                    buf: vec![0u8; MAX_LEN].into_boxed_slice(),
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
    /// leave the coalescer (finished merges, packets that cannot be merged) go
    /// to `emit` with the virtio-net header to write them with, in each flow's
    /// order.
    pub fn push(&mut self, pkt: &[u8], emit: &mut impl FnMut(&[u8], &VnetHdr)) -> Pushed {
        let Some(p) = Parsed::new(pkt) else {
            emit(pkt, &VnetHdr::default());
            return Pushed::Passed;
        };
        if let Some(i) = self
            .slots
            .iter()
            .position(|s| s.count > 0 && s.same_flow(pkt, &p))
        {
            if self.slots[i].try_merge(pkt, &p) {
                if self.slots[i].closed {
                    self.slots[i].emit(emit);
                }
                return Pushed::Merged;
            }
            self.slots[i].emit(emit);
            return self.hold(i, pkt, &p, emit);
        }
        let i = match self.slots.iter().position(|s| s.count == 0) {
            Some(i) => i,
            None => {
                let i = self.victim;
                self.victim = (self.victim + 1) % self.slots.len();
                self.slots[i].emit(emit);
                i
            }
        };
        self.hold(i, pkt, &p, emit)
    }

    fn hold(
        &mut self,
        i: usize,
        pkt: &[u8],
        p: &Parsed,
        emit: &mut impl FnMut(&[u8], &VnetHdr),
    ) -> Pushed {
        if !p.mergeable || pkt.len() > MAX_LEN {
            emit(pkt, &VnetHdr::default());
            return Pushed::Passed;
        }
        let s = &mut self.slots[i];
        s.buf[..pkt.len()].copy_from_slice(pkt);
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
            s.emit(emit);
        }
        Pushed::Held
    }

    /// Emits every packet being built (call once per burst: holding packets
    /// longer only adds latency).
    pub fn flush(&mut self, emit: &mut impl FnMut(&[u8], &VnetHdr)) {
        for s in self.slots.iter_mut() {
            if s.count > 0 {
                s.emit(emit);
            }
        }
    }

    /// Packets held now.
    pub fn held(&self) -> usize {
        self.slots.iter().filter(|s| s.count > 0).count()
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

impl Slot {
    /// Same addresses, ports and IP version, and the same header fields GRO
    /// requires equal (see the module docs).
    fn same_flow(&self, pkt: &[u8], p: &Parsed) -> bool {
        let h = &self.buf;
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

    /// Appends the packet if the rules allow.
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
        let l4 = self.l4_off;
        if self.tcp {
            let h = &self.buf;
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
        self.buf[self.len..self.len + payload].copy_from_slice(&pkt[p.hdr_len..]);
        self.len += payload;
        self.count += 1;
        self.next_seq = self.next_seq.wrapping_add(payload as u32);
        self.last_id = p.id;
        if p.psh {
            self.buf[l4 + 13] |= TCP_PSH;
        }
        self.closed = p.psh || payload < self.size;
        true
    }

    /// Hands the packet built here to `emit` and frees the slot.
    fn emit(&mut self, emit: &mut impl FnMut(&[u8], &VnetHdr)) {
        let count = std::mem::take(&mut self.count);
        let len = self.len;
        if count <= 1 {
            // The packet as it came: its own checksums.
            emit(&self.buf[..len], &VnetHdr::default());
            return;
        }
        let b = &mut self.buf[..len];
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
        emit(b, &h);
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
