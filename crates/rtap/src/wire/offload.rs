//! Checksum and segmentation offload through the virtio-net header: the header
//! fields for a transmit request (with the checksum seed), and what a received
//! header says. The headers are found by [`layout`](super::layout), the
//! software checksum fallback is [`sw_l4_checksum`](super::checksum::sw_l4_checksum).
//!
//! Pure code: no fds, no allocation. Every function takes the frame as bytes
//! starting at the Ethernet destination MAC (no virtio-net header in front).
//!
//! # The checksum-seed convention (`NEEDS_CSUM` and GSO)
//!
//! With `VIRTIO_NET_HDR_F_NEEDS_CSUM` the tap turns the frame into a
//! `CHECKSUM_PARTIAL` skb (`virtio_net_hdr_to_skb` → `skb_partial_csum_set`); the
//! kernel does not touch the checksum field at that point. Whoever finishes the
//! checksum later (the NIC, or `skb_checksum_help` in software) adds up every
//! 16-bit word from `csum_start` to the end of the packet *including the value
//! already in the field*, folds, complements and stores the result in the field.
//! So the field must hold the one's complement sum of the pseudo-header, folded
//! to 16 bits and **not** complemented. That is [`tx_header`]'s seed:
//!
//! `seed = fold(src addr + dst addr + protocol + L4 length)`
//!
//! where the L4 length is the length of the whole frame's L4 segment (header +
//! payload) as given by the IP length fields ([`Layout::l4_len`](super::layout::Layout::l4_len)), the same term
//! that goes into a normal pseudo-header.
//!
//! The same seed, with the **whole super-packet's** L4 length (not 0), is right for
//! GSO. Linux's own stack hands GSO skbs down in this form: `__tcp_v4_send_check`
//! and `udp4_hwcsum` store `~csum_tcpudp_magic(saddr, daddr, len, proto, 0)` with
//! `len` the full L4 length, and `tcp4_gro_complete` rebuilds a coalesced packet the
//! same way. The segmenters then correct the seed for each segment's length:
//!
//! * `tcp_gso_segment` (net/ipv4/tcp_offload.c) takes `oldlen = ~skb->len` (`skb->len`
//!   being the L4 length of the super-packet at that point) and adds
//!   `oldlen + thlen + mss` (for the last segment, `oldlen` + its real L4 length) to
//!   `th->check`: one's complement "minus old length, plus new length".
//! * `__udp_gso_segment` (net/ipv4/udp_offload.c) does
//!   `csum16_add(csum16_sub(uh->check, uh->len), newlen)`: it takes the UDP
//!   header's length field out and each segment's length in. So for UDP the seed's
//!   length term must equal the UDP length field; [`tx_header`] and
//!   [`sw_l4_checksum`](super::checksum::sw_l4_checksum) refuse a UDP header whose length field differs from the IP
//!   payload length ([`OffloadError::BadIpHeader`]).
//!
//! A seed with a zero length term (what some TSO NICs want) would be off by the
//! super-packet length in every segment that the kernel segments in software.
//! Drivers that want that form rewrite the field themselves. The unit tests check all
//! of this: `seed_convention_*` replays what the kernel does to finish a partial
//! checksum, and `gso_seed_*` replays the per-segment length correction of both
//! segmenters and checks every segment's final checksum.
//!
//! Requirements this leaves on the caller:
//!
//! * The frame must end where the IP payload ends: the kernel sums to the end of the
//!   skb, so Ethernet padding after the IP payload would be added into the
//!   checksum. Do not pad short frames; the NIC or the kernel pads them.
//! * The IPv4 header checksum is not touched here. For GSO the kernel rewrites it in
//!   every segment; without GSO it must already be right.
//! * Kernel limits that this module does not check: `gso_size == 0xFFFF`
//!   (`GSO_BY_FRAGS`) is refused by the tap; for UDP GSO the payload must not be more
//!   than `gso_size * UDP_MAX_SEGMENTS` (64 or 128 segments depending on the
//!   kernel version). A frame whose data after the L4 header is not longer than
//!   `gso_size` is not segmented (`virtio_net_hdr_to_skb` drops the GSO part; it
//!   counts from the end of a minimal 20-byte TCP / 8-byte UDP header) and goes out
//!   as one frame with its checksum finished.

use super::checksum::{fold, l4_csum_info, pseudo_sum};
pub use super::layout::OffloadError;
use super::layout::{walk_on, Link, L4};
use super::vnet::{
    VnetHdr, F_DATA_VALID, F_NEEDS_CSUM, GSO_ECN, GSO_NONE, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4,
};

/// What the application asks for on transmit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxRequest {
    /// Have the kernel (or NIC) compute the L4 (TCP/UDP) checksum.
    pub l4_csum: bool,
    /// Segmentation request. Any GSO implies `l4_csum`.
    pub gso: Gso,
}

/// Segmentation request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Gso {
    /// No segmentation.
    #[default]
    None,
    /// TCP segmentation (TSO) into segments of `mss` payload bytes.
    Tcp {
        /// Payload bytes per segment.
        mss: u16,
        /// The flow uses ECN: sets [`GSO_ECN`] so that CWR is kept on the first
        /// segment only.
        ecn: bool,
    },
    /// UDP segmentation (USO) into datagrams of `size` payload bytes.
    Udp {
        /// Payload bytes per datagram.
        size: u16,
    },
}

/// The virtio-net header for a transmit request, and the value to store into the L4
/// checksum field before handing the frame to the kernel.
///
/// Returns `(header, Some((offset_of_csum_field_in_frame, value)))`, `value` to be
/// stored big-endian, or `(VnetHdr::default(), None)` when the request asks for nothing
/// (`l4_csum == false` and `gso == Gso::None`; the frame is not even looked at then).
///
/// The header has `flags = F_NEEDS_CSUM` (any GSO implies it), `csum_start =
/// l4_offset`, `csum_offset` = 16 (TCP) / 6 (UDP), `hdr_len = l4_offset + l4_hdr_len`,
/// and for GSO `gso_type` = `GSO_TCPV4`/`GSO_TCPV6` (+ `GSO_ECN` if `ecn`) or
/// `GSO_UDP_L4`, `gso_size` = `mss`/`size`.
///
/// `value` is the folded, **not complemented**, one's complement sum of the
/// pseudo-header (source, final destination, protocol, L4 length = [`Layout::l4_len`](super::layout::Layout::l4_len),
/// the length of the whole frame's L4 part, also for GSO). The kernel finishes a
/// partial checksum by summing from `csum_start` to the end of the frame including
/// this value, and its GSO code corrects the length term per segment; see the
/// [module documentation](self) for the details and the requirements this leaves
/// (no Ethernet padding after the IP payload; for UDP the length field must equal the
/// IP payload length).
///
/// Errors, checked in this order: `mss`/`size` 0 → [`OffloadError::ZeroSegmentSize`];
/// the errors of [`layout`](super::layout::layout); GSO TCP on a non-TCP frame, GSO UDP on a non-UDP frame or a
/// checksum on [`L4::Other`] → [`OffloadError::WrongL4`]; UDP length field ≠ IP payload
/// length or unknown final destination → [`OffloadError::BadIpHeader`]; `hdr_len` over
/// 65535 → [`OffloadError::HeadersTooLong`].
pub fn tx_header(
    frame: &[u8],
    req: TxRequest,
) -> Result<(VnetHdr, Option<(usize, u16)>), OffloadError> {
    tx_header_on(frame, req, Link::Ethernet)
}

/// [`tx_header`] for a frame that starts as `link` says (a TUN packet: at
/// its IP header).
pub fn tx_header_on(
    frame: &[u8],
    req: TxRequest,
    link: Link,
) -> Result<(VnetHdr, Option<(usize, u16)>), OffloadError> {
    let (need, gso_size) = match req.gso {
        Gso::None if !req.l4_csum => return Ok((VnetHdr::default(), None)),
        Gso::None => (None, 0),
        Gso::Tcp { mss: 0, .. } | Gso::Udp { size: 0 } => {
            return Err(OffloadError::ZeroSegmentSize)
        }
        Gso::Tcp { mss, .. } => (Some(L4::Tcp), mss),
        Gso::Udp { size } => (Some(L4::Udp), size),
    };
    let w = walk_on(frame, link)?;
    let (proto, csum_offset) = l4_csum_info(&w, need)?;
    let l = &w.layout;
    let gso_type = match req.gso {
        Gso::None => GSO_NONE,
        Gso::Tcp { ecn, .. } => {
            let t = if l.ipv6 { GSO_TCPV6 } else { GSO_TCPV4 };
            if ecn {
                t | GSO_ECN
            } else {
                t
            }
        }
        Gso::Udp { .. } => GSO_UDP_L4,
    };
    let hdr_len =
        u16::try_from(l.l4_offset + l.l4_hdr_len).map_err(|_| OffloadError::HeadersTooLong)?;
    // hdr_len >= l4_offset, so this cannot fail once hdr_len fits.
    let csum_start = l.l4_offset as u16;
    let seed = fold(pseudo_sum(frame, &w, proto)?);
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type,
        hdr_len,
        gso_size,
        csum_start,
        csum_offset: csum_offset as u16,
        num_buffers: 0,
    };
    Ok((hdr, Some((l.l4_offset + csum_offset, seed))))
}

/// Receive side: what the kernel's header says about a frame's L4 checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxCsum {
    /// `F_DATA_VALID`: the checksum has been verified.
    Good,
    /// `F_NEEDS_CSUM`: the frame comes from a local sender; the data is intact but the
    /// checksum field holds only the pseudo-header seed (`csum_start`/`csum_offset`
    /// say where). Compute it (e.g. [`sw_l4_checksum`](super::checksum::sw_l4_checksum)) before sending it on a wire.
    Partial,
    /// Neither flag: nothing is known; verify in software if needed.
    Unknown,
}

/// Receive side: the segmentation the kernel's header describes (a coalesced frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxGso {
    /// Not a GSO frame (also for GSO types not listed here, e.g. the obsolete UFO).
    None,
    /// TCP over IPv4 with this segment size.
    Tcp4 {
        /// `gso_size`.
        size: u16,
    },
    /// TCP over IPv6 with this segment size.
    Tcp6 {
        /// `gso_size`.
        size: u16,
    },
    /// UDP (USO, IPv4 or IPv6) with this datagram payload size.
    Udp {
        /// `gso_size`.
        size: u16,
    },
}

/// Decodes the checksum flags of a received header. `F_NEEDS_CSUM` wins if both flags
/// are set (the kernel never sets both): the field is then not a final checksum.
pub fn rx_csum(h: &VnetHdr) -> RxCsum {
    if h.flags & F_NEEDS_CSUM != 0 {
        RxCsum::Partial
    } else if h.flags & F_DATA_VALID != 0 {
        RxCsum::Good
    } else {
        RxCsum::Unknown
    }
}

/// Decodes the GSO type of a received header (the ECN bit is ignored).
pub fn rx_gso(h: &VnetHdr) -> RxGso {
    let size = h.gso_size;
    match h.gso_type & !GSO_ECN {
        GSO_TCPV4 => RxGso::Tcp4 { size },
        GSO_TCPV6 => RxGso::Tcp6 { size },
        GSO_UDP_L4 => RxGso::Udp { size },
        _ => RxGso::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum::{sw_l4_checksum, TCP_CSUM_OFFSET};
    use crate::wire::layout::{layout, NH_DSTOPTS};
    use crate::wire::testutil::*;
    use crate::wire::vnet::GSO_NONE;
    use etherparse::PacketBuilder;
    use proptest::prelude::*;

    #[test]
    fn tx_header_nothing_requested() {
        // Not even parsed: garbage is fine.
        assert_eq!(
            tx_header(&[1, 2, 3], TxRequest::default()),
            Ok((VnetHdr::default(), None))
        );
    }

    #[test]
    fn tx_header_fields() {
        let p = payload(3000, 12);
        let v4t = build(spec(false, true), &p);
        let v6t = build(spec(true, true), &p);
        let v4u = build(spec(false, false), &p);
        let v6u = build(spec(true, false), &p);
        let qinq_v6t = build(
            Spec {
                vlans: 2,
                tcp_opts: true,
                ..spec(true, true)
            },
            &p,
        );
        let hdr = |gso_type, hdr_len, gso_size, csum_start, csum_offset| VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type,
            hdr_len,
            gso_size,
            csum_start,
            csum_offset,
            num_buffers: 0,
        };
        let tcp = |mss, ecn| TxRequest {
            l4_csum: false,
            gso: Gso::Tcp { mss, ecn },
        };
        let udp = |size| TxRequest {
            l4_csum: true,
            gso: Gso::Udp { size },
        };
        let cases: Vec<(&[u8], TxRequest, VnetHdr)> = vec![
            (&v4t, csum_req(), hdr(GSO_NONE, 54, 0, 34, 16)),
            (&v6t, csum_req(), hdr(GSO_NONE, 74, 0, 54, 16)),
            (&v4u, csum_req(), hdr(GSO_NONE, 42, 0, 34, 6)),
            (&v6u, csum_req(), hdr(GSO_NONE, 62, 0, 54, 6)),
            (&v4t, tcp(1448, false), hdr(GSO_TCPV4, 54, 1448, 34, 16)),
            (
                &v4t,
                tcp(1000, true),
                hdr(GSO_TCPV4 | GSO_ECN, 54, 1000, 34, 16),
            ),
            (&v6t, tcp(1428, false), hdr(GSO_TCPV6, 74, 1428, 54, 16)),
            (
                &v6t,
                tcp(536, true),
                hdr(GSO_TCPV6 | GSO_ECN, 74, 536, 54, 16),
            ),
            (&v4u, udp(1200), hdr(GSO_UDP_L4, 42, 1200, 34, 6)),
            (&v6u, udp(1), hdr(GSO_UDP_L4, 62, 1, 54, 6)),
            (
                &qinq_v6t,
                tcp(1400, false),
                hdr(GSO_TCPV6, 22 + 40 + 40, 1400, 62, 16),
            ),
        ];
        for (f, req, want) in cases {
            let (h, w) = tx_header(f, req).unwrap();
            assert_eq!(h, want, "{req:?}");
            let (off, _) = w.unwrap();
            assert_eq!(off, usize::from(want.csum_start + want.csum_offset));
            assert_eq!(off, l4_field(f));
        }
    }

    #[test]
    fn tx_header_errors() {
        let tcp = build(spec(false, true), &payload(10, 13));
        let udp = build(spec(true, false), &payload(10, 13));
        let mut icmp = Vec::new();
        PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
            .ipv4(SRC4, DST4, 64)
            .icmpv4_echo_request(1, 2)
            .write(&mut icmp, &[])
            .unwrap();
        let gt = |mss| TxRequest {
            l4_csum: true,
            gso: Gso::Tcp { mss, ecn: false },
        };
        let gu = |size| TxRequest {
            l4_csum: false,
            gso: Gso::Udp { size },
        };
        use OffloadError::*;
        assert_eq!(tx_header(&udp, gt(1000)), Err(WrongL4));
        assert_eq!(tx_header(&tcp, gu(1000)), Err(WrongL4));
        assert_eq!(tx_header(&icmp, csum_req()), Err(WrongL4));
        assert_eq!(tx_header(&icmp, gt(1000)), Err(WrongL4));
        assert_eq!(tx_header(&icmp, gu(1000)), Err(WrongL4));
        assert_eq!(tx_header(&tcp, gt(0)), Err(ZeroSegmentSize));
        assert_eq!(tx_header(&udp, gu(0)), Err(ZeroSegmentSize));
        // Size 0 is reported before anything about the frame.
        assert_eq!(tx_header(&[], gu(0)), Err(ZeroSegmentSize));
        assert_eq!(tx_header(&tcp[..40], csum_req()), Err(Truncated));
        assert_eq!(tx_header(&[], csum_req()), Err(Truncated));
        let mut arp = tcp.clone();
        wr16(&mut arp, 12, 0x0806);
        assert_eq!(tx_header(&arp, csum_req()), Err(NotIp));
        let mut frag = tcp.clone();
        wr16(&mut frag, 20, 0x2000);
        assert_eq!(tx_header(&frag, gt(100)), Err(Fragment));
        let mut bad = tcp.clone();
        bad[14] = 0x43;
        assert_eq!(tx_header(&bad, csum_req()), Err(BadIpHeader));
        // UDP length field disagreeing with the IP payload length.
        let mut u = udp.clone();
        let ul = rd16(&u, 54 + 4);
        wr16(&mut u, 54 + 4, ul - 1);
        assert_eq!(tx_header(&u, csum_req()), Err(BadIpHeader));
        assert_eq!(tx_header(&u, gu(4)), Err(BadIpHeader));
        assert_eq!(sw_l4_checksum(&[&u]), Err(BadIpHeader));
    }

    #[test]
    fn tx_header_headers_too_long() {
        // IPv6 with 65488 bytes of destination options: l4_offset = 65542.
        let f = build(spec(true, true), &payload(7, 14));
        let mut exts: Vec<(u8, Vec<u8>)> = (0..31).map(|_| (NH_DSTOPTS, vec![0; 2048])).collect();
        exts.push((NH_DSTOPTS, vec![0; 2000]));
        let g = with_ipv6_exts(&f, 14, &exts);
        assert_eq!(rd16(&g, 18), 65488 + 27);
        let l = layout(&g).unwrap();
        assert_eq!(l.l4_offset, 65542);
        assert_eq!(tx_header(&g, csum_req()), Err(OffloadError::HeadersTooLong));
        // sw_l4_checksum has no 16-bit limit and still gets it right.
        let field = l.l4_offset + TCP_CSUM_OFFSET;
        assert_eq!(sw_l4_checksum(&[&g]).unwrap(), (field, rd16(&g, field)));
        // Just under the limit: 65456 bytes of extensions, hdr_len = 54 + 65456 + 20.
        let mut exts: Vec<(u8, Vec<u8>)> = (0..31).map(|_| (NH_DSTOPTS, vec![0; 2048])).collect();
        exts.push((NH_DSTOPTS, vec![0; 65456 - 31 * 2048]));
        let g = with_ipv6_exts(&f, 14, &exts);
        let (h, w) = tx_header(&g, csum_req()).unwrap();
        assert_eq!(h.hdr_len, 65530);
        assert_eq!(h.csum_start, 65510);
        assert_eq!(w.unwrap().0, 65510 + TCP_CSUM_OFFSET);
    }

    #[test]
    fn seed_convention_matches_kernel_completion() {
        for v6 in [false, true] {
            for tcp in [true, false] {
                for n in [0usize, 1, 2, 3, 100, 1001, 1460] {
                    let f = build(spec(v6, tcp), &payload(n, n as u8));
                    let want = rd16(&f, l4_field(&f));
                    let (h, w) = tx_header(&f, csum_req()).unwrap();
                    let (field, seed) = w.unwrap();
                    let mut k = f.clone();
                    wr16(&mut k, field, seed);
                    kernel_finish(&mut k, usize::from(h.csum_start), field);
                    assert_eq!(rd16(&k, field), want, "v6={v6} tcp={tcp} n={n}");
                }
            }
        }
    }

    #[test]
    fn seed_value_tcp_ipv4_by_hand() {
        let f = build(spec(false, true), &payload(11, 0));
        let (_, w) = tx_header(&f, csum_req()).unwrap();
        // 192.168 + 7.1 + 10.200 + 3.77 + 6 + 31 with end-around carry.
        let mut s: u32 = 0xc0a8 + 0x0701 + 0x0ac8 + 0x034d + 6 + 31;
        s = (s & 0xffff) + (s >> 16);
        assert_eq!(w, Some((50, s as u16)));
    }

    /// Replays the kernel's GSO: split the payload into `size` chunks, copy the
    /// headers, fix the IP/UDP length fields, adjust the seed in the checksum field
    /// the way tcp_gso_segment / __udp_gso_segment do, then finish each segment's
    /// checksum like the kernel. Returns the finished segments.
    fn kernel_gso(frame: &[u8], h: &VnetHdr, seed: u16, seg_len_term_old: u16) -> Vec<Vec<u8>> {
        let l = layout(frame).unwrap();
        let hdr_len = usize::from(h.hdr_len);
        let field = usize::from(h.csum_start + h.csum_offset);
        let size = usize::from(h.gso_size);
        let data = &frame[hdr_len..l.l4_offset + l.l4_len];
        let mut out = Vec::new();
        for (i, chunk) in data.chunks(size).enumerate() {
            let mut s = frame[..hdr_len].to_vec();
            s.extend_from_slice(chunk);
            let new_l4 = (l.l4_hdr_len + chunk.len()) as u16;
            if l.ipv6 {
                let ext = l.l4_offset - l.l3_offset - 40;
                wr16(&mut s, l.l3_offset + 4, ext as u16 + new_l4);
            } else {
                let ihl = l.l4_offset - l.l3_offset;
                wr16(&mut s, l.l3_offset + 2, ihl as u16 + new_l4);
            }
            match l.l4 {
                L4::Tcp => {
                    let seq =
                        u32::from_be_bytes(s[l.l4_offset + 4..l.l4_offset + 8].try_into().unwrap());
                    let seq = seq.wrapping_add((i * size) as u32);
                    s[l.l4_offset + 4..l.l4_offset + 8].copy_from_slice(&seq.to_be_bytes());
                }
                L4::Udp => wr16(&mut s, l.l4_offset + 4, new_l4),
                L4::Other(_) => unreachable!(),
            }
            // seed - old length + new length, one's complement.
            let adj = ones_add(ones_add(seed, !seg_len_term_old), new_l4);
            wr16(&mut s, field, adj);
            kernel_finish(&mut s, usize::from(h.csum_start), field);
            out.push(s);
        }
        out
    }

    #[test]
    fn gso_seed_matches_kernel_length_adjustment() {
        for v6 in [false, true] {
            for tcp in [true, false] {
                for (n, size) in [(4000usize, 1448u16), (3000, 1000), (1001, 500), (64, 7)] {
                    let f = build(
                        Spec {
                            vlans: 1,
                            tcp_opts: tcp,
                            ..spec(v6, tcp)
                        },
                        &payload(n, 3),
                    );
                    let gso = if tcp {
                        Gso::Tcp {
                            mss: size,
                            ecn: false,
                        }
                    } else {
                        Gso::Udp { size }
                    };
                    let (h, w) = tx_header(&f, TxRequest { l4_csum: true, gso }).unwrap();
                    let (field, seed) = w.unwrap();
                    let l = layout(&f).unwrap();
                    // TCP: the kernel takes out skb->len (the L4 length); UDP: uh->len.
                    // Both equal l4_len here.
                    let old = l.l4_len as u16;
                    let segs = kernel_gso(&f, &h, seed, old);
                    assert_eq!(segs.len(), n.div_ceil(usize::from(size)));
                    for s in &segs {
                        assert_eq!(rd16(s, field), ep_checksum(s), "v6={v6} tcp={tcp} n={n}");
                    }
                    // Negative control: a seed without the length term comes out wrong.
                    let bad_seed = ones_add(seed, !old);
                    let segs = kernel_gso(&f, &h, bad_seed, old);
                    assert!(segs.iter().all(|s| rd16(s, field) != ep_checksum(s)));
                }
            }
        }
    }

    #[test]
    fn rx_csum_mapping() {
        let h = |flags| VnetHdr {
            flags,
            ..VnetHdr::default()
        };
        assert_eq!(rx_csum(&h(0)), RxCsum::Unknown);
        assert_eq!(rx_csum(&h(F_DATA_VALID)), RxCsum::Good);
        assert_eq!(rx_csum(&h(F_NEEDS_CSUM)), RxCsum::Partial);
        assert_eq!(rx_csum(&h(F_NEEDS_CSUM | F_DATA_VALID)), RxCsum::Partial);
        assert_eq!(rx_csum(&h(super::super::vnet::F_RSC_INFO)), RxCsum::Unknown);
    }

    #[test]
    fn rx_gso_mapping() {
        let h = |gso_type, gso_size| VnetHdr {
            gso_type,
            gso_size,
            ..VnetHdr::default()
        };
        assert_eq!(rx_gso(&h(GSO_NONE, 0)), RxGso::None);
        assert_eq!(rx_gso(&h(GSO_TCPV4, 1448)), RxGso::Tcp4 { size: 1448 });
        assert_eq!(
            rx_gso(&h(GSO_TCPV4 | GSO_ECN, 1448)),
            RxGso::Tcp4 { size: 1448 }
        );
        assert_eq!(rx_gso(&h(GSO_TCPV6, 1428)), RxGso::Tcp6 { size: 1428 });
        assert_eq!(
            rx_gso(&h(GSO_TCPV6 | GSO_ECN, 9000)),
            RxGso::Tcp6 { size: 9000 }
        );
        assert_eq!(rx_gso(&h(GSO_UDP_L4, 1200)), RxGso::Udp { size: 1200 });
        assert_eq!(rx_gso(&h(super::super::vnet::GSO_UDP, 1200)), RxGso::None);
        assert_eq!(rx_gso(&h(0x42, 1)), RxGso::None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// A TUN packet (no Ethernet header) gets the header its Ethernet
        /// framing would get, with every offset less the link-layer header.
        #[test]
        fn tun_packets_like_their_ethernet_frames(s in arb_spec(), n in 0usize..3000, salt: u8, tso: bool) {
            let f = build(s, &payload(n, salt));
            let l2 = crate::wire::layout::layout(&f).unwrap().l3_offset;
            let ip = &f[l2..];
            let req = if tso && s.tcp {
                TxRequest { l4_csum: true, gso: Gso::Tcp { mss: 1000, ecn: false } }
            } else {
                csum_req()
            };
            let (h, w) = tx_header(&f, req).unwrap();
            let (hi, wi) = tx_header_on(ip, req, Link::Ip).unwrap();
            prop_assert_eq!(hi.csum_start + l2 as u16, h.csum_start);
            prop_assert_eq!(hi.hdr_len + l2 as u16, h.hdr_len);
            prop_assert_eq!((hi.gso_type, hi.gso_size, hi.csum_offset, hi.flags), (h.gso_type, h.gso_size, h.csum_offset, h.flags));
            let (field, seed) = w.unwrap();
            prop_assert_eq!(wi, Some((field - l2, seed)));
            let l = crate::wire::layout::layout_on(ip, Link::Ip).unwrap();
            prop_assert_eq!(l.l3_offset, 0);
            let (off, sum) = crate::wire::checksum::sw_l4_checksum(&[&f]).unwrap();
            prop_assert_eq!(crate::wire::checksum::sw_l4_checksum_on(&[ip], Link::Ip).unwrap(), (off - l2, sum));
        }

        #[test]
        fn seed_convention_random(s in arb_spec(), n in 0usize..3000, salt: u8) {
            let f = build(s, &payload(n, salt));
            let want = ep_checksum(&f);
            let (h, w) = tx_header(&f, csum_req()).unwrap();
            let (field, seed) = w.unwrap();
            let mut k = f.clone();
            wr16(&mut k, field, seed);
            kernel_finish(&mut k, usize::from(h.csum_start), field);
            prop_assert_eq!(rd16(&k, field), want);
        }
    }
}
