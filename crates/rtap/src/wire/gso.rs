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
//! Pure code, no allocation: [`Split`] writes each segment into a buffer the
//! caller provides.

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
    l4_off: usize,
    /// IP and L4 headers.
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

/// Starts splitting `pkt` (an IP packet, as a TUN delivers it) as `h` says. A
/// packet without GSO gives one segment: itself, with its checksum completed
/// if the header says it is partial.
pub fn split<'a>(pkt: &'a [u8], h: &VnetHdr) -> Result<Split<'a>, OffloadError> {
    let l = layout_on(pkt, Link::Ip)?;
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

    /// Writes the next segment into `out` and returns its length; `None` once
    /// every segment is out. Fails if `out` is shorter than the segment.
    pub fn next_into(&mut self, out: &mut [u8]) -> Option<Result<usize, OffloadError>> {
        let payload = self.pkt.len() - self.hdr_len;
        if self.index as usize >= self.count() {
            return None;
        }
        let first = self.index == 0;
        let take = if self.single {
            payload
        } else {
            self.seg.min(payload - self.done)
        };
        let last = self.done + take >= payload;
        let len = self.hdr_len + take;
        let Some(o) = out.get_mut(..len) else {
            return Some(Err(OffloadError::Truncated));
        };
        o[..self.hdr_len].copy_from_slice(&self.pkt[..self.hdr_len]);
        let payload_src = &self.pkt[self.hdr_len + self.done..][..take];
        if self.copy {
            o[self.hdr_len..].copy_from_slice(payload_src);
            self.done += take;
            self.index += 1;
            return Some(Ok(len));
        }
        // The payload is summed as it is copied (one pass over it); it starts
        // at an even offset of the L4 area (L4 headers are whole 32-bit words).
        let payload_sum = copy_and_sum(&mut o[self.hdr_len..], payload_src);
        let l4 = self.l4_off;
        let l4_len = len - l4;
        if self.ipv6 {
            put16(o, 4, (len - 40) as u16);
        } else {
            put16(o, 2, len as u16);
            let id = get16(self.pkt, 4).wrapping_add(self.index);
            put16(o, 4, id);
            ipv4_header_checksum(o);
        }
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
        let (src, alen) = if self.ipv6 { (8, 16) } else { (12, 4) };
        let proto = if self.tcp { 6u64 } else { 17 };
        let pseudo = sum_words(&o[src..src + 2 * alen]) + proto + l4_len as u64;
        let mut c = !fold(pseudo + sum_words(&o[l4..self.hdr_len]) + payload_sum);
        if !self.tcp && c == 0 {
            c = 0xffff;
        }
        put16(o, csum_at, c);
        self.done += take;
        self.index += 1;
        Some(Ok(len))
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
