//! Walking a frame's headers: Ethernet with up to two VLAN tags, IPv4 with
//! options or IPv6 with extension headers, then TCP or UDP. Finds where each
//! layer starts and what the pseudo-header needs.
//!
//! Pure code: no fds, no allocation. Frames are bytes starting at the Ethernet
//! destination MAC (no virtio-net header in front).

/// Length of an Ethernet header without VLAN tags.
const ETH_HLEN: usize = 14;
/// Length of one 802.1Q / 802.1ad tag.
const VLAN_HLEN: usize = 4;
/// At most this many VLAN tags are skipped.
const MAX_VLAN_TAGS: usize = 2;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const TPID_8021Q: u16 = 0x8100;
const TPID_8021AD: u16 = 0x88a8;

const IPV4_MIN_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;
/// IPv4 flags/fragment-offset word: "more fragments" bit and offset bits.
const IPV4_MF_OR_OFFSET: u16 = 0x3fff;

const NH_HOPOPTS: u8 = 0;
const NH_ROUTING: u8 = 43;
const NH_FRAGMENT: u8 = 44;
pub(super) const NH_DSTOPTS: u8 = 60;
/// Routing header types whose bytes 8..24 hold the final destination
/// (type 2: Mobile IPv6 home address; type 4: segment routing, Segment List\[0\]).
const RH_TYPE_MIP6: u8 = 2;
const RH_TYPE_SRH: u8 = 4;

pub(super) const IPPROTO_TCP: u8 = 6;
pub(super) const IPPROTO_UDP: u8 = 17;

const TCP_MIN_HLEN: usize = 20;
const UDP_HLEN: usize = 8;

/// What a frame starts with: an Ethernet header (TAP, AF_PACKET) or the IP
/// header itself (TUN: IPv4 or IPv6, told apart by the version nibble).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Link {
    /// Ethernet, with up to two VLAN tags.
    #[default]
    Ethernet,
    /// No link-layer header: the packet starts with IPv4 or IPv6.
    Ip,
}

impl Link {
    /// The largest frame on a link of this MTU: the MTU plus an Ethernet
    /// header and one VLAN tag (18 bytes) on Ethernet, the MTU itself on IP.
    pub fn frame_len(self, mtu: u32) -> usize {
        match self {
            Link::Ethernet => mtu as usize + ETH_HLEN + 4,
            Link::Ip => mtu as usize,
        }
    }
}

/// L3/L4 layout of a frame, found by walking its headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Start of the IP header: after Ethernet and any 802.1Q/802.1ad tags (up to 2).
    pub l3_offset: usize,
    /// True for IPv6, false for IPv4.
    pub ipv6: bool,
    /// Start of the L4 (TCP/UDP) header, after IPv4 options or IPv6 extension headers.
    pub l4_offset: usize,
    /// The L4 protocol.
    pub l4: L4,
    /// TCP data offset * 4, 8 for UDP, 0 for [`L4::Other`].
    pub l4_hdr_len: usize,
    /// Bytes from `l4_offset` to the end of the IP payload, from the IP length fields.
    /// The L4 header lies within `frame`; the payload may go past it (when `frame` is
    /// only the first segment of a chain).
    pub l4_len: usize,
}

/// The L4 protocol found by [`layout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (IP protocol 17).
    Udp,
    /// Any other protocol number (ICMP, ESP, an unskipped IPv6 extension, ...).
    Other(u8),
}

/// Why a frame cannot take an offload request: its headers (found by [`layout`])
/// or the request itself. Each maps to a per-packet drop counter upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    /// The frame ends inside a header, or the IP length leaves no room for the L4 header,
    /// or the TCP data offset is below 5.
    #[error("frame too short or truncated headers")]
    Truncated,
    /// The EtherType (after at most two VLAN tags) is not IPv4/IPv6.
    #[error("not IPv4/IPv6")]
    NotIp,
    /// IP version nibble, IHL, total length, IPv6 payload length (0 = jumbogram is not
    /// supported), extension headers past the payload, a UDP length field that differs
    /// from the IP payload length, or an IPv6 routing header whose final destination
    /// cannot be found (needed for the pseudo-header).
    #[error("IPv4 options/length or IPv6 length invalid")]
    BadIpHeader,
    /// IPv4 MF or fragment offset set, or an IPv6 fragment header.
    #[error("IP fragment: no L4 offload possible")]
    Fragment,
    /// The request needs TCP or UDP and the frame carries something else.
    #[error("L4 protocol is not TCP/UDP for the request")]
    WrongL4,
    /// `mss`/`size` is 0.
    #[error("segment size 0")]
    ZeroSegmentSize,
    /// `l4_offset + l4_hdr_len` does not fit the 16-bit `hdr_len`/`csum_start`.
    #[error("headers longer than 255+... or hdr_len overflow")]
    HeadersTooLong,
}

/// [`Layout`] plus where the pseudo-header's pieces are.
#[derive(Clone, Copy, Debug)]
pub(super) struct Walk {
    pub layout: Layout,
    /// Offset of the source address (4 or 16 bytes).
    pub src: usize,
    /// Offset of the destination address for the pseudo-header (the final
    /// destination); `None` when a routing header hides it in a form not understood.
    pub dst: Option<usize>,
    /// UDP length field (UDP only, else 0).
    pub udp_len: u16,
}

impl Walk {
    pub(super) fn addr_len(&self) -> usize {
        if self.layout.ipv6 {
            16
        } else {
            4
        }
    }
}

#[inline]
fn be16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

pub(super) fn walk_on(frame: &[u8], link: Link) -> Result<Walk, OffloadError> {
    match link {
        Link::Ethernet => walk(frame),
        Link::Ip => {
            let (ipv6, proto, l4_offset, l4_len, src, dst) = match frame.first().map(|b| b >> 4) {
                None => return Err(OffloadError::Truncated),
                Some(4) => walk_ipv4(frame, 0)?,
                Some(6) => walk_ipv6(frame, 0)?,
                Some(_) => return Err(OffloadError::NotIp),
            };
            walk_l4(frame, 0, ipv6, proto, l4_offset, l4_len, src, dst)
        }
    }
}

pub(super) fn walk(frame: &[u8]) -> Result<Walk, OffloadError> {
    if frame.len() < ETH_HLEN {
        return Err(OffloadError::Truncated);
    }
    let mut ethertype = be16(frame, 12);
    let mut l3 = ETH_HLEN;
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != TPID_8021Q && ethertype != TPID_8021AD {
            break;
        }
        if frame.len() < l3 + VLAN_HLEN {
            return Err(OffloadError::Truncated);
        }
        ethertype = be16(frame, l3 + 2);
        l3 += VLAN_HLEN;
    }
    let (ipv6, proto, l4_offset, l4_len, src, dst) = match ethertype {
        ETHERTYPE_IPV4 => walk_ipv4(frame, l3)?,
        ETHERTYPE_IPV6 => walk_ipv6(frame, l3)?,
        _ => return Err(OffloadError::NotIp),
    };
    walk_l4(frame, l3, ipv6, proto, l4_offset, l4_len, src, dst)
}

/// The transport header at `l4_offset`, once the IP header is walked.
#[allow(clippy::too_many_arguments)]
fn walk_l4(
    frame: &[u8],
    l3: usize,
    ipv6: bool,
    proto: u8,
    l4_offset: usize,
    l4_len: usize,
    src: usize,
    dst: Option<usize>,
) -> Result<Walk, OffloadError> {
    let (l4, l4_hdr_len, udp_len) = match proto {
        IPPROTO_TCP => {
            if frame.len() < l4_offset + TCP_MIN_HLEN {
                return Err(OffloadError::Truncated);
            }
            let doff = usize::from(frame[l4_offset + 12] >> 4) * 4;
            if doff < TCP_MIN_HLEN || doff > l4_len || frame.len() < l4_offset + doff {
                return Err(OffloadError::Truncated);
            }
            (L4::Tcp, doff, 0)
        }
        IPPROTO_UDP => {
            if l4_len < UDP_HLEN || frame.len() < l4_offset + UDP_HLEN {
                return Err(OffloadError::Truncated);
            }
            (L4::Udp, UDP_HLEN, be16(frame, l4_offset + 4))
        }
        p => (L4::Other(p), 0, 0),
    };
    Ok(Walk {
        layout: Layout {
            l3_offset: l3,
            ipv6,
            l4_offset,
            l4,
            l4_hdr_len,
            l4_len,
        },
        src,
        dst,
        udp_len,
    })
}

type IpWalk = (bool, u8, usize, usize, usize, Option<usize>);

fn walk_ipv4(frame: &[u8], l3: usize) -> Result<IpWalk, OffloadError> {
    if frame.len() < l3 + IPV4_MIN_HLEN {
        return Err(OffloadError::Truncated);
    }
    let vihl = frame[l3];
    let ihl = usize::from(vihl & 0x0f) * 4;
    if vihl >> 4 != 4 || ihl < IPV4_MIN_HLEN {
        return Err(OffloadError::BadIpHeader);
    }
    if frame.len() < l3 + ihl {
        return Err(OffloadError::Truncated);
    }
    let total = usize::from(be16(frame, l3 + 2));
    if total < ihl {
        return Err(OffloadError::BadIpHeader);
    }
    if be16(frame, l3 + 6) & IPV4_MF_OR_OFFSET != 0 {
        return Err(OffloadError::Fragment);
    }
    Ok((
        false,
        frame[l3 + 9],
        l3 + ihl,
        total - ihl,
        l3 + 12,
        Some(l3 + 16),
    ))
}

fn walk_ipv6(frame: &[u8], l3: usize) -> Result<IpWalk, OffloadError> {
    if frame.len() < l3 + IPV6_HLEN {
        return Err(OffloadError::Truncated);
    }
    if frame[l3] >> 4 != 6 {
        return Err(OffloadError::BadIpHeader);
    }
    let plen = usize::from(be16(frame, l3 + 4));
    if plen == 0 {
        // Jumbogram (hop-by-hop jumbo payload option): not supported.
        return Err(OffloadError::BadIpHeader);
    }
    let end = l3 + IPV6_HLEN + plen;
    let mut nh = frame[l3 + 6];
    let mut off = l3 + IPV6_HLEN;
    let mut dst = Some(l3 + 24);
    loop {
        match nh {
            NH_HOPOPTS | NH_ROUTING | NH_DSTOPTS => {
                // Every extension header is at least 8 bytes; bytes 0/1 are next
                // header and length in 8-octet units not counting the first 8.
                if off + 8 > end {
                    return Err(OffloadError::BadIpHeader);
                }
                if frame.len() < off + 8 {
                    return Err(OffloadError::Truncated);
                }
                let hlen = (usize::from(frame[off + 1]) + 1) * 8;
                if off + hlen > end {
                    return Err(OffloadError::BadIpHeader);
                }
                if frame.len() < off + hlen {
                    return Err(OffloadError::Truncated);
                }
                if nh == NH_ROUTING && frame[off + 3] != 0 {
                    // Segments left: the address in the IPv6 header is not the final
                    // destination, which the pseudo-header must use (RFC 8200 8.1).
                    let rtype = frame[off + 2];
                    dst = if (rtype == RH_TYPE_MIP6 || rtype == RH_TYPE_SRH) && hlen >= 24 {
                        Some(off + 8)
                    } else {
                        None
                    };
                }
                nh = frame[off];
                off += hlen;
            }
            NH_FRAGMENT => return Err(OffloadError::Fragment),
            _ => break,
        }
    }
    Ok((true, nh, off, end - off, l3 + 8, dst))
}

/// Walks Ethernet (+ up to two VLAN tags, TPIDs 0x8100/0x88a8), IPv4 (IHL, total
/// length, fragment check: MF or offset != 0 -> Fragment), IPv6 (payload length; skips
/// the extension headers hop-by-hop(0), routing(43), destination options(60); fragment
/// header(44) -> Fragment), then TCP/UDP. `frame` is only the bytes available (e.g. the
/// first segment of a chain): the headers must lie within it, the IP length fields give
/// `l4_len`, which may reach past it.
///
/// Other protocols (including IPv6 extension headers not listed above, e.g. AH/ESP)
/// give [`L4::Other`] with `l4_offset` at that header and `l4_hdr_len == 0`.
pub fn layout(frame: &[u8]) -> Result<Layout, OffloadError> {
    walk(frame).map(|w| w.layout)
}

/// [`layout`] of a frame that starts as `link` says (a TUN packet: at the IP
/// header, `l3_offset` 0).
pub fn layout_on(frame: &[u8], link: Link) -> Result<Layout, OffloadError> {
    walk_on(frame, link).map(|w| w.layout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum::{sw_l4_checksum, TCP_CSUM_OFFSET};
    use crate::wire::offload::{tx_header, Gso, TxRequest};
    use crate::wire::testutil::*;
    use crate::xstats::cast_class;
    use etherparse::PacketBuilder;
    use proptest::prelude::*;

    #[test]
    fn layout_plain_v4_v6_tcp_udp() {
        let p = payload(100, 1);
        for (v6, tcp, l3, l4, hl) in [
            (false, true, 14, 34, 20),
            (false, false, 14, 34, 8),
            (true, true, 14, 54, 20),
            (true, false, 14, 54, 8),
        ] {
            let f = build(spec(v6, tcp), &p);
            let l = layout(&f).unwrap();
            assert_eq!(
                l,
                Layout {
                    l3_offset: l3,
                    ipv6: v6,
                    l4_offset: l4,
                    l4: if tcp { L4::Tcp } else { L4::Udp },
                    l4_hdr_len: hl,
                    l4_len: hl + 100,
                }
            );
            assert_eq!(l4 + hl + 100, f.len());
        }
    }

    #[test]
    fn layout_tcp_options() {
        let f = build(
            Spec {
                tcp_opts: true,
                ..spec(false, true)
            },
            &payload(10, 2),
        );
        let l = layout(&f).unwrap();
        assert_eq!(l.l4_hdr_len, 40);
        assert_eq!(l.l4_len, 50);
    }

    #[test]
    fn layout_vlan_and_qinq() {
        for v6 in [false, true] {
            for vlans in 1..=2u8 {
                let f = build(
                    Spec {
                        vlans,
                        ..spec(v6, true)
                    },
                    &payload(33, 3),
                );
                let l = layout(&f).unwrap();
                let l3 = 14 + 4 * usize::from(vlans);
                assert_eq!(l.l3_offset, l3);
                assert_eq!(l.l4_offset, l3 + if v6 { 40 } else { 20 });
                assert_eq!(l.l4_len, 20 + 33);
            }
        }
        // etherparse writes 0x88a8 then 0x8100 for QinQ; also accept 0x8100 twice.
        let mut f = build(
            Spec {
                vlans: 2,
                ..spec(false, false)
            },
            &payload(5, 4),
        );
        assert_eq!(rd16(&f, 12), 0x88a8);
        assert_eq!(rd16(&f, 16), 0x8100);
        wr16(&mut f, 12, 0x8100);
        assert_eq!(layout(&f).unwrap().l3_offset, 22);
        // A third tag is not skipped.
        let mut f3 = f[..14].to_vec();
        f3.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        f3.extend_from_slice(&f[14..]);
        assert_eq!(layout(&f3), Err(OffloadError::NotIp));
    }

    #[test]
    fn layout_not_ip() {
        let mut f = build(spec(false, true), &[]);
        wr16(&mut f, 12, 0x0806); // ARP
        assert_eq!(layout(&f), Err(OffloadError::NotIp));
        wr16(&mut f, 12, 0x0040); // 802.3 length
        assert_eq!(layout(&f), Err(OffloadError::NotIp));
        // VLAN tag followed by a non-IP EtherType.
        let mut g = build(
            Spec {
                vlans: 1,
                ..spec(true, true)
            },
            &[],
        );
        wr16(&mut g, 16, 0x88cc);
        assert_eq!(layout(&g), Err(OffloadError::NotIp));
    }

    #[test]
    fn layout_ipv4_options() {
        let f = build(spec(false, true), &payload(77, 5));
        let g = with_ipv4_options(&f, 14, &[1, 1, 1, 1, 1, 1, 1, 0]);
        let l = layout(&g).unwrap();
        assert_eq!(l.l4_offset, 42);
        assert_eq!(l.l4_len, 20 + 77);
        // Options do not enter the pseudo-header: etherparse's checksum still holds.
        let field = l.l4_offset + TCP_CSUM_OFFSET;
        assert_eq!(sw_l4_checksum(&[&g]).unwrap(), (field, rd16(&g, field)));
        // Maximum IHL (60 bytes).
        let g = with_ipv4_options(&f, 14, &[1; 40]);
        assert_eq!(layout(&g).unwrap().l4_offset, 74);
    }

    #[test]
    fn layout_ipv6_extension_headers() {
        for tcp in [true, false] {
            let f = build(spec(true, tcp), &payload(200, 6));
            let g = with_ipv6_exts(
                &f,
                14,
                &[
                    (NH_HOPOPTS, ext(8)),
                    (NH_DSTOPTS, ext(16)),
                    (NH_ROUTING, routing(4, 0, &[DST6])),
                    (NH_DSTOPTS, ext(8)),
                ],
            );
            let l = layout(&g).unwrap();
            assert_eq!(l.l4_offset, 54 + 8 + 16 + 24 + 8);
            assert!(l.ipv6);
            assert_eq!(l.l4, if tcp { L4::Tcp } else { L4::Udp });
            assert_eq!(l.l4_len, l.l4_hdr_len + 200);
            // Segments left 0: the pseudo-header uses the IPv6 destination as is.
            let field = l4_field(&g);
            assert_eq!(sw_l4_checksum(&[&g]).unwrap(), (field, rd16(&g, field)));
        }
    }

    #[test]
    fn ipv6_routing_header_final_destination() {
        // etherparse computed the checksum with DST6, the final destination. Put
        // another address in the IPv6 header and DST6 in a routing header with
        // segments left.
        let intermediate = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
        for (rtype, addrs) in [
            (2u8, vec![DST6]),
            (4, vec![DST6, intermediate]), // SRH: Segment List[0] is the last segment
        ] {
            let f = build(spec(true, true), &payload(99, 7));
            let mut g = with_ipv6_exts(&f, 14, &[(NH_ROUTING, routing(rtype, 1, &addrs))]);
            g[14 + 24..14 + 40].copy_from_slice(&intermediate);
            let field = l4_field(&g);
            let want = rd16(&g, field);
            assert_eq!(sw_l4_checksum(&[&g]).unwrap(), (field, want));
            let (_, seed) = tx_header(
                &g,
                TxRequest {
                    l4_csum: true,
                    gso: Gso::None,
                },
            )
            .unwrap()
            .1
            .unwrap();
            let mut k = g.clone();
            wr16(&mut k, field, seed);
            kernel_finish(&mut k, layout(&g).unwrap().l4_offset, field);
            assert_eq!(rd16(&k, field), want, "routing type {rtype}");
        }
        // Type 3 (RPL, compressed) with segments left: final destination unknown.
        let f = build(spec(true, true), &payload(10, 7));
        let g = with_ipv6_exts(&f, 14, &[(NH_ROUTING, routing(3, 1, &[DST6]))]);
        assert!(layout(&g).is_ok());
        assert_eq!(sw_l4_checksum(&[&g]), Err(OffloadError::BadIpHeader));
        let req = TxRequest {
            l4_csum: true,
            gso: Gso::None,
        };
        assert_eq!(tx_header(&g, req), Err(OffloadError::BadIpHeader));
    }

    #[test]
    fn layout_fragments() {
        // IPv4: MF set, offset set, both; DF alone is fine.
        let f = build(spec(false, true), &payload(40, 8));
        for (word, frag) in [
            (0x2000u16, true),
            (0x0001, true),
            (0x20ff, true),
            (0x1fff, true),
            (0x4000, false),
            (0x0000, false),
        ] {
            let mut g = f.clone();
            wr16(&mut g, 14 + 6, word);
            assert_eq!(
                layout(&g).err() == Some(OffloadError::Fragment),
                frag,
                "{word:#x}"
            );
        }
        // IPv6 fragment header, directly and after a hop-by-hop header.
        let f = build(spec(true, false), &payload(40, 8));
        let g = with_ipv6_exts(&f, 14, &[(NH_FRAGMENT, ext(8))]);
        assert_eq!(layout(&g), Err(OffloadError::Fragment));
        let g = with_ipv6_exts(&f, 14, &[(NH_HOPOPTS, ext(8)), (NH_FRAGMENT, ext(8))]);
        assert_eq!(layout(&g), Err(OffloadError::Fragment));
        let req = TxRequest {
            l4_csum: true,
            gso: Gso::None,
        };
        assert_eq!(tx_header(&g, req), Err(OffloadError::Fragment));
        assert_eq!(sw_l4_checksum(&[&g]), Err(OffloadError::Fragment));
    }

    #[test]
    fn layout_truncation_every_prefix() {
        let cases = [
            build(spec(false, true), &payload(50, 9)),
            build(spec(true, false), &payload(50, 9)),
            build(
                Spec {
                    vlans: 2,
                    tcp_opts: true,
                    ..spec(true, true)
                },
                &payload(50, 9),
            ),
            with_ipv6_exts(
                &build(spec(true, true), &payload(50, 9)),
                14,
                &[(NH_HOPOPTS, ext(16)), (NH_DSTOPTS, ext(8))],
            ),
            with_ipv4_options(&build(spec(false, false), &payload(50, 9)), 14, &[1; 12]),
        ];
        for f in &cases {
            let full = layout(f).unwrap();
            let hdr_end = full.l4_offset + full.l4_hdr_len;
            for n in 0..hdr_end {
                assert_eq!(layout(&f[..n]), Err(OffloadError::Truncated), "len {n}");
            }
            // Past the headers, the IP length fields decide: same layout.
            for n in hdr_end..=f.len() {
                assert_eq!(layout(&f[..n]), Ok(full));
            }
        }
    }

    #[test]
    fn layout_bad_ip_headers() {
        let f = build(spec(false, true), &payload(20, 10));
        let mut g = f.clone();
        g[14] = 0x44; // IHL 4
        assert_eq!(layout(&g), Err(OffloadError::BadIpHeader));
        let mut g = f.clone();
        g[14] = 0x65; // version 6 under EtherType IPv4
        assert_eq!(layout(&g), Err(OffloadError::BadIpHeader));
        let mut g = f.clone();
        wr16(&mut g, 16, 19); // total length < IHL
        assert_eq!(layout(&g), Err(OffloadError::BadIpHeader));
        let mut g = f.clone();
        wr16(&mut g, 16, 20); // total length = header: TCP header cut off
        assert_eq!(layout(&g), Err(OffloadError::Truncated));

        let f = build(spec(true, true), &payload(20, 10));
        let mut g = f.clone();
        g[14] = 0x45;
        assert_eq!(layout(&g), Err(OffloadError::BadIpHeader));
        let mut g = f.clone();
        wr16(&mut g, 18, 0); // jumbogram
        assert_eq!(layout(&g), Err(OffloadError::BadIpHeader));
        // An extension header longer than the payload length.
        let mut g = with_ipv6_exts(&f, 14, &[(NH_DSTOPTS, ext(16))]);
        wr16(&mut g, 18, 8);
        assert_eq!(layout(&g), Err(OffloadError::BadIpHeader));
    }

    #[test]
    fn layout_bad_l4_headers() {
        let f = build(spec(false, true), &payload(20, 11));
        let mut g = f.clone();
        g[34 + 12] = 0x40; // data offset 4
        assert_eq!(layout(&g), Err(OffloadError::Truncated));
        let mut g = f.clone();
        g[34 + 12] = 0xf0; // data offset 15 = 60 bytes > l4_len 40
        assert_eq!(layout(&g), Err(OffloadError::Truncated));
        let f = build(spec(false, false), &[]);
        let mut g = f.clone();
        wr16(&mut g, 16, 20 + 7); // UDP cut by IP length
        assert_eq!(layout(&g), Err(OffloadError::Truncated));
    }

    #[test]
    fn layout_other_l4() {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
            .ipv4(SRC4, DST4, 64)
            .icmpv4_echo_request(1, 2)
            .write(&mut out, &[1, 2, 3])
            .unwrap();
        let l = layout(&out).unwrap();
        assert_eq!(l.l4, L4::Other(1));
        assert_eq!(l.l4_hdr_len, 0);
        assert_eq!(l.l4_offset, 34);
        assert_eq!(l.l4_len, 8 + 3);
        // IPv6 extension that is not skipped (AH, 51).
        let f = build(spec(true, true), &[]);
        let g = with_ipv6_exts(&f, 14, &[(51, ext(8))]);
        let l = layout(&g).unwrap();
        assert_eq!(l.l4, L4::Other(51));
        assert_eq!(l.l4_offset, 54);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn layout_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = layout(&bytes);
            let _ = sw_l4_checksum(&[&bytes]);
            let _ = tx_header(&bytes, TxRequest { l4_csum: true, gso: Gso::Tcp { mss: 1, ecn: true } });
            let _ = cast_class(&bytes);
        }

        #[test]
        fn layout_mutated_frames(
            s in arb_spec(),
            n in 0usize..200,
            muts in proptest::collection::vec((0usize..200, any::<u8>()), 0..6),
            cut in 0usize..400,
        ) {
            let mut f = build(s, &payload(n, 1));
            // Mutations aimed at the headers, where the parser looks.
            for (i, b) in muts {
                let i = i % f.len().min(120);
                f[i] = b;
            }
            let f = &f[..cut.min(f.len())];
            if let Ok(l) = layout(f) {
                prop_assert!(l.l4_offset + l.l4_hdr_len <= f.len());
                prop_assert!(l.l3_offset >= 14 && l.l3_offset <= 22);
                prop_assert!(l.l4_offset >= l.l3_offset + 20);
                match l.l4 {
                    L4::Tcp => prop_assert!(l.l4_hdr_len >= 20 && l.l4_hdr_len <= l.l4_len),
                    L4::Udp => prop_assert!(l.l4_hdr_len == 8 && l.l4_len >= 8),
                    L4::Other(_) => prop_assert_eq!(l.l4_hdr_len, 0),
                }
            }
            let _ = sw_l4_checksum(&[f]);
            let _ = tx_header(f, TxRequest { l4_csum: true, gso: Gso::Udp { size: 3 } });
        }

    }
}
