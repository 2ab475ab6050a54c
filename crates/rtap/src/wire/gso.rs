//! Userspace segmentation: one large TCP (TSO) or UDP (USO) IP packet, as a
//! TUN hands it up with its virtio-net header, split into MTU-sized IP packets
//! with complete headers and checksums, which is what a VPN encrypts and sends.
//!
//! The segments are what the kernel's own segmentation makes of the same
//! packet: IPv4 total length and identification (+1 per segment) and header
//! checksum, IPv6 payload length; TCP sequence numbers advanced by the payload
//! before, CWR kept on the first segment only, FIN and PSH on the last only;
//! UDP lengths; every L4 checksum computed in full.
//!
//! Pure code, no allocation: [`Split::next_into`] writes each segment into a
//! buffer the caller provides (copying the payload and summing it in one
//! pass); [`Split::next_header`] writes only the segment's headers and says
//! which bytes of the packet are its payload, for a writer that sends the two
//! with vectored I/O (the payload is read once, for its checksum, never
//! copied).

use std::ops::Range;

use super::checksum::{copy_and_sum, fold, sum_words};
use super::layout::{layout_on, Link, OffloadError, L4};
use super::vnet::{VnetHdr, F_NEEDS_CSUM, GSO_ECN, GSO_NONE, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4};

const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// The segments of one packet, produced one at a time.
#[derive(Clone, Debug)]
pub struct Split<'a> {
    pkt: &'a [u8],
    ipv6: bool,
    tcp: bool,
    /// Start of the IP header (after the link header, if any).
    l3_off: usize,
    l4_off: usize,
    /// Link, IP and L4 headers.
    hdr_len: usize,
    /// Payload bytes per segment (the last may have fewer).
    seg: usize,
    /// Offset of the next payload byte to send, from the payload's start.
    done: usize,
    index: u16,
    /// Only one segment, its checksum to complete (or none).
    single: bool,
    /// The one segment is the packet as it is.
    copy: bool,
}

/// One segment as [`Split::next_header`] gives it: its headers, written into
/// the caller's buffer, then the packet's bytes in `payload`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Bytes of headers written at the start of the caller's buffer.
    pub hdr_len: usize,
    /// The segment's payload: a range of the packet being split.
    pub payload: Range<usize>,
}

impl Segment {
    /// Bytes of the whole segment (headers and payload).
    pub fn len(&self) -> usize {
        self.hdr_len + self.payload.len()
    }

    /// True for a segment of no bytes (never produced).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Starts splitting `pkt` (an IP packet, as a TUN delivers it) as `h` says. A
/// packet without GSO gives one segment: itself, with its checksum completed
/// if the header says it is partial.
pub fn split<'a>(pkt: &'a [u8], h: &VnetHdr) -> Result<Split<'a>, OffloadError> {
    split_on(pkt, h, Link::Ip)
}

/// [`split`] for a frame of the given link type: on [`Link::Ethernet`] every
/// segment starts with the frame's Ethernet header (and VLAN tags).
pub fn split_on<'a>(pkt: &'a [u8], h: &VnetHdr, link: Link) -> Result<Split<'a>, OffloadError> {
    let l = layout_on(pkt, link)?;
    let end = l.l4_offset + l.l4_len;
    if pkt.len() < end {
        return Err(OffloadError::Truncated);
    }
    let pkt = &pkt[..end];
    let gso = h.gso_type & !GSO_ECN;
    let partial = h.flags & F_NEEDS_CSUM != 0;
    let (tcp, single) = match (gso, l.l4) {
        // Nothing to do but copy (any protocol).
        (GSO_NONE, _) if !partial => (false, true),
        (GSO_NONE, L4::Tcp) => (true, true),
        (GSO_NONE, L4::Udp) => (false, true),
        (GSO_TCPV4, L4::Tcp) if !l.ipv6 => (true, false),
        (GSO_TCPV6, L4::Tcp) if l.ipv6 => (true, false),
        (GSO_UDP_L4, L4::Udp) => (false, false),
        _ => return Err(OffloadError::WrongL4),
    };
    if !single && h.gso_size == 0 {
        return Err(OffloadError::ZeroSegmentSize);
    }
    let hdr_len = l.l4_offset + l.l4_hdr_len;
    let payload = end - hdr_len;
    Ok(Split {
        pkt,
        ipv6: l.ipv6,
        tcp,
        l3_off: l.l3_offset,
        l4_off: l.l4_offset,
        hdr_len,
        seg: if single {
            payload.max(1)
        } else {
            usize::from(h.gso_size)
        },
        done: 0,
        index: 0,
        single,
        copy: single && !partial,
    })
}

impl Split<'_> {
    /// Segments in all.
    pub fn count(&self) -> usize {
        let payload = self.pkt.len() - self.hdr_len;
        if self.single || payload == 0 {
            1
        } else {
            payload.div_ceil(self.seg)
        }
    }

    /// Bytes of the largest segment (a buffer this big takes any of them).
    pub fn max_len(&self) -> usize {
        if self.single {
            self.pkt.len()
        } else {
            self.hdr_len + self.seg.min(self.pkt.len() - self.hdr_len)
        }
    }

    /// Bytes of every segment's headers (a buffer this big takes the headers
    /// [`next_header`](Self::next_header) writes).
    pub fn hdr_len(&self) -> usize {
        self.hdr_len
    }

    /// The next segment's payload bytes, and whether it is the first and the
    /// last; `None` once every segment is out.
    fn peek(&self) -> Option<(usize, bool, bool)> {
        if self.index as usize >= self.count() {
            return None;
        }
        let payload = self.pkt.len() - self.hdr_len;
        let take = if self.single {
            payload
        } else {
            self.seg.min(payload - self.done)
        };
        Some((take, self.index == 0, self.done + take >= payload))
    }

    fn advance(&mut self, take: usize) {
        self.done += take;
        self.index += 1;
    }

    /// Writes the next segment into `out` and returns its length; `None` once
    /// every segment is out. Fails if `out` is shorter than the segment.
    pub fn next_into(&mut self, out: &mut [u8]) -> Option<Result<usize, OffloadError>> {
        let (take, first, last) = self.peek()?;
        let hl = self.hdr_len;
        let len = hl + take;
        let Some(o) = out.get_mut(..len) else {
            return Some(Err(OffloadError::Truncated));
        };
        let (hdr, body) = o.split_at_mut(hl);
        hdr.copy_from_slice(&self.pkt[..hl]);
        let src = &self.pkt[hl + self.done..][..take];
        if self.copy {
            body.copy_from_slice(src);
        } else {
            // The payload is summed as it is copied (one pass over it).
            let payload_sum = copy_and_sum(body, src);
            self.fix_headers(hdr, take, first, last, payload_sum);
        }
        self.advance(take);
        Some(Ok(len))
    }

    /// Writes the next segment's headers into `hdr` and returns them with the
    /// range of the packet that is the segment's payload; `None` once every
    /// segment is out. The payload is read for its checksum, not copied: the
    /// segment is `hdr[..hdr_len]` followed by `pkt[payload]`, for a writer
    /// with vectored I/O. Fails if `hdr` is shorter than
    /// [`hdr_len`](Self::hdr_len).
    pub fn next_header(&mut self, hdr: &mut [u8]) -> Option<Result<Segment, OffloadError>> {
        let (take, first, last) = self.peek()?;
        let hl = self.hdr_len;
        let Some(o) = hdr.get_mut(..hl) else {
            return Some(Err(OffloadError::Truncated));
        };
        o.copy_from_slice(&self.pkt[..hl]);
        let payload = hl + self.done..hl + self.done + take;
        if !self.copy {
            let payload_sum = sum_words(&self.pkt[payload.clone()]);
            self.fix_headers(o, take, first, last, payload_sum);
        }
        self.advance(take);
        Some(Ok(Segment {
            hdr_len: hl,
            payload,
        }))
    }

    /// Rewrites the copied headers `o` for the segment of `take` payload bytes
    /// whose sum (as [`sum_words`] makes it; the payload starts at an even
    /// offset of the L4 area, L4 headers being whole 32-bit words) is
    /// `payload_sum`: lengths, IPv4 ID and header checksum, TCP sequence number
    /// and flags, the L4 checksum in full.
    fn fix_headers(&self, o: &mut [u8], take: usize, first: bool, last: bool, payload_sum: u64) {
        let l3 = self.l3_off;
        let len = self.hdr_len + take;
        if self.ipv6 {
            put16(o, l3 + 4, (len - l3 - 40) as u16);
        } else {
            put16(o, l3 + 2, (len - l3) as u16);
            let id = get16(self.pkt, l3 + 4).wrapping_add(self.index);
            put16(o, l3 + 4, id);
            ipv4_header_checksum(&mut o[l3..]);
        }
        let l4 = self.l4_off;
        let l4_len = len - l4;
        let csum_at = if self.tcp {
            let seq = get32(self.pkt, l4 + 4).wrapping_add(self.done as u32);
            put32(o, l4 + 4, seq);
            if !self.single {
                let mut flags = o[l4 + 13];
                if !last {
                    flags &= !(TCP_FIN | TCP_PSH);
                }
                if !first {
                    flags &= !TCP_CWR;
                }
                o[l4 + 13] = flags;
            }
            l4 + 16
        } else {
            put16(o, l4 + 4, l4_len as u16);
            l4 + 6
        };
        put16(o, csum_at, 0);
        let (src, alen) = if self.ipv6 {
            (l3 + 8, 16)
        } else {
            (l3 + 12, 4)
        };
        let proto = if self.tcp { 6u64 } else { 17 };
        let pseudo = sum_words(&o[src..src + 2 * alen]) + proto + l4_len as u64;
        let mut c = !fold(pseudo + sum_words(&o[l4..self.hdr_len]) + payload_sum);
        if !self.tcp && c == 0 {
            c = 0xffff;
        }
        put16(o, csum_at, c);
    }
}

/// Rewrites the IPv4 header checksum of the packet `b` starts with.
pub(super) fn ipv4_header_checksum(b: &mut [u8]) {
    let ihl = usize::from(b[0] & 0x0f) * 4;
    put16(b, 10, 0);
    let c = !fold(sum_words(&b[..ihl]));
    put16(b, 10, c);
}

pub(super) fn get16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

pub(super) fn get32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

pub(super) fn put16(b: &mut [u8], i: usize, v: u16) {
    b[i..i + 2].copy_from_slice(&v.to_be_bytes());
}

fn put32(b: &mut [u8], i: usize, v: u32) {
    b[i..i + 4].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A TCP or UDP IP packet of `n` payload bytes, as a stack would send it
    /// before segmentation (complete checksums).
    fn packet(v6: bool, tcp: bool, n: usize, flags: u8) -> Vec<u8> {
        let payload: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
        let b = if v6 {
            etherparse::PacketBuilder::ipv6([0xfd; 16], [0xfe; 16], 64)
        } else {
            etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        };
        let mut out = Vec::new();
        if tcp {
            let mut t = b.tcp(4000, 5001, 1_000_000, 65535).ack(77);
            if flags & TCP_PSH != 0 {
                t = t.psh();
            }
            if flags & TCP_FIN != 0 {
                t = t.fin();
            }
            if flags & TCP_CWR != 0 {
                t = t.cwr();
            }
            t.write(&mut out, &payload).unwrap();
        } else {
            b.udp(4000, 5001).write(&mut out, &payload).unwrap();
        }
        if !v6 {
            put16(&mut out, 4, 0x1234);
            ipv4_header_checksum(&mut out);
        }
        out
    }

    fn gso(v6: bool, tcp: bool, size: u16) -> VnetHdr {
        VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: match (tcp, v6) {
                (true, false) => GSO_TCPV4,
                (true, true) => GSO_TCPV6,
                _ => GSO_UDP_L4,
            },
            gso_size: size,
            ..VnetHdr::default()
        }
    }

    fn all(s: &mut Split<'_>) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        let mut buf = vec![0u8; 70_000];
        while let Some(r) = s.next_into(&mut buf) {
            let n = r.unwrap();
            v.push(buf[..n].to_vec());
        }
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Every segment is a valid packet (etherparse checks lengths and the
        /// IPv4 header; checksums are checked here), the payloads in order are
        /// the original, sequence numbers and IDs advance, flags are placed.
        #[test]
        fn segments_are_valid_and_complete(v6: bool, tcp: bool, n in 1usize..20_000, mss in 200u16..1500, psh: bool, fin: bool, cwr: bool) {
            let flags = (if psh { TCP_PSH } else { 0 }) | (if fin { TCP_FIN } else { 0 }) | (if cwr { TCP_CWR } else { 0 });
            let p = packet(v6, tcp, n, flags);
            let mut s = split(&p, &gso(v6, tcp, mss)).unwrap();
            let count = s.count();
            prop_assert_eq!(count, n.div_ceil(mss as usize));
            let segs = all(&mut s);
            prop_assert_eq!(segs.len(), count);
            let mut payload = Vec::new();
            for (i, seg) in segs.iter().enumerate() {
                let ps = etherparse::SlicedPacket::from_ip(seg).unwrap();
                let ip = ps.net.as_ref().unwrap();
                let body = match &ps.transport {
                    Some(etherparse::TransportSlice::Tcp(t)) => {
                        let th = t.to_header();
                        let (src, dst) = match ip {
                            etherparse::NetSlice::Ipv4(h) => {
                                prop_assert_eq!(h.header().identification(), 0x1234u16.wrapping_add(i as u16));
                                prop_assert_eq!(h.header().to_header().calc_header_checksum(), h.header().header_checksum());
                                let want = th.calc_checksum_ipv4(&h.header().to_header(), t.payload()).unwrap();
                                prop_assert_eq!(th.checksum, want);
                                (0, 0)
                            }
                            etherparse::NetSlice::Ipv6(h) => {
                                let want = th.calc_checksum_ipv6(&h.header().to_header(), t.payload()).unwrap();
                                prop_assert_eq!(th.checksum, want);
                                (0, 0)
                            }
                            _ => (0, 0),
                        };
                        let _ = (src, dst);
                        prop_assert_eq!(th.sequence_number, 1_000_000u32.wrapping_add(payload.len() as u32));
                        let last = i + 1 == count;
                        prop_assert_eq!(th.psh, psh && last);
                        prop_assert_eq!(th.fin, fin && last);
                        prop_assert_eq!(th.cwr, cwr && i == 0);
                        prop_assert!(last || t.payload().len() == mss as usize);
                        t.payload().to_vec()
                    }
                    Some(etherparse::TransportSlice::Udp(u)) => {
                        let uh = u.to_header();
                        let want = match ip {
                            etherparse::NetSlice::Ipv4(h) => uh.calc_checksum_ipv4(&h.header().to_header(), u.payload()).unwrap(),
                            etherparse::NetSlice::Ipv6(h) => uh.calc_checksum_ipv6(&h.header().to_header(), u.payload()).unwrap(),
                            _ => 0,
                        };
                        prop_assert_eq!(uh.checksum, want);
                        prop_assert_eq!(uh.length as usize, 8 + u.payload().len());
                        u.payload().to_vec()
                    }
                    other => return Err(TestCaseError::fail(format!("{other:?}"))),
                };
                payload.extend_from_slice(&body);
            }
            let orig = packet(v6, tcp, n, 0);
            let hl = orig.len() - n;
            prop_assert_eq!(&payload[..], &orig[hl..]);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Headers from `next_header` followed by the payload range it names
        /// are, segment for segment, what `next_into` writes; on an Ethernet
        /// frame too (the link header leads every segment).
        #[test]
        fn headers_and_payload_ranges_make_the_same_segments(v6: bool, tcp: bool, eth: bool, n in 0usize..9_000, mss in 100u16..1500, gso_on: bool) {
            let ip = packet(v6, tcp, n, TCP_PSH);
            let (p, link) = if eth {
                let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
                if v6 {
                    f[12..].copy_from_slice(&[0x86, 0xdd]);
                }
                f.extend_from_slice(&ip);
                (f, Link::Ethernet)
            } else {
                (ip, Link::Ip)
            };
            let h = if gso_on { gso(v6, tcp, mss) } else { VnetHdr { flags: F_NEEDS_CSUM, ..VnetHdr::default() } };
            let mut a = split_on(&p, &h, link).unwrap();
            let mut b = a.clone();
            let want = all(&mut a);
            let mut hdr = [0u8; 128];
            let mut got = Vec::new();
            while let Some(r) = b.next_header(&mut hdr) {
                let s = r.unwrap();
                let mut seg = hdr[..s.hdr_len].to_vec();
                seg.extend_from_slice(&p[s.payload.clone()]);
                prop_assert_eq!(seg.len(), s.len());
                got.push(seg);
            }
            if eth {
                // The same segments as of the bare IP packet, each behind the
                // frame's Ethernet header.
                let bare = all(&mut split(&p[14..], &h).unwrap());
                prop_assert_eq!(bare.len(), want.len());
                for (w, b) in want.iter().zip(&bare) {
                    prop_assert_eq!(&w[..14], &p[..14]);
                    prop_assert_eq!(&w[14..], &b[..]);
                }
            }
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn a_header_buffer_too_short_is_refused() {
        let big = packet(false, true, 3000, 0);
        let mut s = split(&big, &gso(false, true, 1000)).unwrap();
        assert_eq!(s.hdr_len(), 40);
        assert_eq!(
            s.next_header(&mut [0u8; 39]),
            Some(Err(OffloadError::Truncated))
        );
        let seg = s.next_header(&mut [0u8; 40]).unwrap().unwrap();
        assert_eq!(seg.payload, 40..1040);
    }

    #[test]
    fn plain_and_partial_packets() {
        let p = packet(false, true, 100, 0);
        let mut s = split(&p, &VnetHdr::default()).unwrap();
        assert_eq!(all(&mut s), vec![p.clone()]);
        // A partial checksum (the seed) is completed.
        let mut q = p.clone();
        put16(&mut q, 36, 0xbeef);
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: 20,
            csum_offset: 16,
            ..VnetHdr::default()
        };
        assert_eq!(all(&mut split(&q, &h).unwrap()), vec![p]);
        assert_eq!(
            split(&[0x45, 0], &gso(false, true, 100)).unwrap_err(),
            OffloadError::Truncated
        );
        assert_eq!(
            split(&packet(false, false, 100, 0), &gso(false, true, 100)).unwrap_err(),
            OffloadError::WrongL4
        );
        let mut short = [0u8; 10];
        let big = packet(true, true, 3000, 0);
        let mut s = split(&big, &gso(true, true, 1000)).unwrap();
        assert_eq!(s.next_into(&mut short), Some(Err(OffloadError::Truncated)));
    }
}
