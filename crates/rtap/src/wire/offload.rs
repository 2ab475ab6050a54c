//! Checksum and segmentation offload: header walking, the virtio-net header for a
//! transmit request, a software L4 checksum fallback, and receive-side decoding.
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
//! payload) as given by the IP length fields ([`Layout::l4_len`]), the same term
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
//!   [`sw_l4_checksum`] refuse a UDP header whose length field differs from the IP
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

use super::vnet::{
    VnetHdr, F_DATA_VALID, F_NEEDS_CSUM, GSO_ECN, GSO_NONE, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4,
};

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
const NH_DSTOPTS: u8 = 60;
/// Routing header types whose bytes 8..24 hold the final destination
/// (type 2: Mobile IPv6 home address; type 4: segment routing, Segment List\[0\]).
const RH_TYPE_MIP6: u8 = 2;
const RH_TYPE_SRH: u8 = 4;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

const TCP_MIN_HLEN: usize = 20;
const UDP_HLEN: usize = 8;

/// Offset of the checksum field inside the TCP header.
pub const TCP_CSUM_OFFSET: usize = 16;
/// Offset of the checksum field inside the UDP header.
pub const UDP_CSUM_OFFSET: usize = 6;

/// [`cast_class`]: unicast destination.
pub const CAST_UNICAST: usize = 0;
/// [`cast_class`]: multicast destination (group bit set, not broadcast).
pub const CAST_MULTICAST: usize = 1;
/// [`cast_class`]: broadcast destination (`ff:ff:ff:ff:ff:ff`).
pub const CAST_BROADCAST: usize = 2;
/// Number of [`size_bucket`] classes.
pub const SIZE_BUCKETS: usize = 7;

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

/// Why a request was refused (each maps to a per-packet drop counter upstream).
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
struct Walk {
    layout: Layout,
    /// Offset of the source address (4 or 16 bytes).
    src: usize,
    /// Offset of the destination address for the pseudo-header (the final
    /// destination); `None` when a routing header hides it in a form not understood.
    dst: Option<usize>,
    /// UDP length field (UDP only, else 0).
    udp_len: u16,
}

impl Walk {
    fn addr_len(&self) -> usize {
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

fn walk(frame: &[u8]) -> Result<Walk, OffloadError> {
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

/// One's complement sum of `data` read as big-endian 16-bit words (an odd last byte
/// is the high half of a word), not folded.
#[inline]
fn sum_words(data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(4);
    let mut acc: u64 = 0;
    for c in &mut chunks {
        // hi * 2^16 + lo is congruent to hi + lo modulo 0xffff.
        acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    match *chunks.remainder() {
        [a] => acc += u64::from(a) << 8,
        [a, b] => acc += u64::from(u16::from_be_bytes([a, b])),
        [a, b, c] => acc += u64::from(u16::from_be_bytes([a, b])) + (u64::from(c) << 8),
        _ => {}
    }
    acc
}

/// Folds a one's complement sum to 16 bits (end-around carry).
#[inline]
fn fold(mut s: u64) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Pseudo-header sum (not folded) for a TCP/UDP walk.
fn pseudo_sum(frame: &[u8], w: &Walk, proto: u8) -> Result<u64, OffloadError> {
    let dst = w.dst.ok_or(OffloadError::BadIpHeader)?;
    let alen = w.addr_len();
    let len = w.layout.l4_len as u64;
    Ok(sum_words(&frame[w.src..w.src + alen])
        + sum_words(&frame[dst..dst + alen])
        + u64::from(proto)
        + (len >> 16)
        + (len & 0xffff))
}

/// Checks the L4 against what is needed and returns (protocol number, checksum
/// offset in the L4 header).
fn l4_csum_info(w: &Walk, need: Option<L4>) -> Result<(u8, usize), OffloadError> {
    let l = &w.layout;
    let info = match (l.l4, need) {
        (L4::Tcp, None | Some(L4::Tcp)) => (IPPROTO_TCP, TCP_CSUM_OFFSET),
        (L4::Udp, None | Some(L4::Udp)) => (IPPROTO_UDP, UDP_CSUM_OFFSET),
        _ => return Err(OffloadError::WrongL4),
    };
    if l.l4 == L4::Udp && usize::from(w.udp_len) != l.l4_len {
        return Err(OffloadError::BadIpHeader);
    }
    Ok(info)
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
/// pseudo-header (source, final destination, protocol, L4 length = [`Layout::l4_len`],
/// the length of the whole frame's L4 part, also for GSO). The kernel finishes a
/// partial checksum by summing from `csum_start` to the end of the frame including
/// this value, and its GSO code corrects the length term per segment; see the
/// [module documentation](self) for the details and the requirements this leaves
/// (no Ethernet padding after the IP payload; for UDP the length field must equal the
/// IP payload length).
///
/// Errors, checked in this order: `mss`/`size` 0 → [`OffloadError::ZeroSegmentSize`];
/// the errors of [`layout`]; GSO TCP on a non-TCP frame, GSO UDP on a non-UDP frame or a
/// checksum on [`L4::Other`] → [`OffloadError::WrongL4`]; UDP length field ≠ IP payload
/// length or unknown final destination → [`OffloadError::BadIpHeader`]; `hdr_len` over
/// 65535 → [`OffloadError::HeadersTooLong`].
pub fn tx_header(
    frame: &[u8],
    req: TxRequest,
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
    let w = walk(frame)?;
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

/// Adds `data`, which starts `odd`ly or evenly relative to the checksummed area, to
/// `acc`. A piece at an odd position has its bytes in the other halves of the words:
/// its folded sum is byte-swapped (RFC 1071 byte-order independence).
#[inline]
fn add_piece(acc: &mut u64, data: &[u8], odd: bool) {
    let s = fold(sum_words(data));
    *acc += u64::from(if odd { s.swap_bytes() } else { s });
}

/// Software checksum fallback: computes the full L4 checksum (pseudo-header + L4
/// header + payload, the checksum field counted as zero) over a frame given as
/// segments in order, and returns `(offset_in_frame_of_the_field, checksum)` for the
/// caller to store big-endian.
///
/// The headers must lie within `segs[0]`; the payload may span segments and segment
/// boundaries may fall on odd offsets. Only `l4_offset .. l4_offset + l4_len` is summed
/// (bytes after the IP payload, e.g. Ethernet padding, are not). A computed UDP
/// checksum of 0 is returned as 0xFFFF.
///
/// Errors as in [`layout`], plus: no segments or fewer bytes than the IP length fields
/// announce → [`OffloadError::Truncated`]; not TCP/UDP → [`OffloadError::WrongL4`];
/// UDP length field ≠ IP payload length or unknown final destination →
/// [`OffloadError::BadIpHeader`].
pub fn sw_l4_checksum(segs: &[&[u8]]) -> Result<(usize, u16), OffloadError> {
    let first = segs.first().ok_or(OffloadError::Truncated)?;
    let w = walk(first)?;
    let (proto, csum_offset) = l4_csum_info(&w, None)?;
    let start = w.layout.l4_offset;
    let end = start + w.layout.l4_len;
    let total: usize = segs.iter().map(|s| s.len()).sum();
    if total < end {
        return Err(OffloadError::Truncated);
    }
    let field = start + csum_offset;
    let ranges = [(start, field), (field + 2, end)];
    let mut acc = pseudo_sum(first, &w, proto)?;
    let mut pos = 0usize;
    for seg in segs {
        let seg_start = pos;
        let seg_end = pos + seg.len();
        pos = seg_end;
        if seg_end <= start {
            continue;
        }
        if seg_start >= end {
            break;
        }
        for &(lo, hi) in &ranges {
            let a = lo.max(seg_start);
            let b = hi.min(seg_end);
            if a < b {
                add_piece(
                    &mut acc,
                    &seg[a - seg_start..b - seg_start],
                    (a - start) & 1 == 1,
                );
            }
        }
    }
    let mut csum = !fold(acc);
    if proto == IPPROTO_UDP && csum == 0 {
        csum = 0xffff;
    }
    Ok((field, csum))
}

/// Receive side: what the kernel's header says about a frame's L4 checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxCsum {
    /// `F_DATA_VALID`: the checksum has been verified.
    Good,
    /// `F_NEEDS_CSUM`: the frame comes from a local sender; the data is intact but the
    /// checksum field holds only the pseudo-header seed (`csum_start`/`csum_offset`
    /// say where). Compute it (e.g. [`sw_l4_checksum`]) before sending it on a wire.
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

/// Frame size class for xstats buckets: 0: <=64, 1: 65-127, 2: 128-255, 3: 256-511,
/// 4: 512-1023, 5: 1024-1518, 6: >=1519.
pub fn size_bucket(len: usize) -> usize {
    match len {
        0..=64 => 0,
        65..=127 => 1,
        128..=255 => 2,
        256..=511 => 3,
        512..=1023 => 4,
        1024..=1518 => 5,
        _ => 6,
    }
}

/// [`CAST_UNICAST`] (0), [`CAST_MULTICAST`] (1) or [`CAST_BROADCAST`] (2), from the
/// destination MAC. A frame shorter than 6 bytes counts as unicast.
pub fn cast_class(frame: &[u8]) -> usize {
    match frame.get(..6) {
        Some([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]) => CAST_BROADCAST,
        Some(d) if d[0] & 1 != 0 => CAST_MULTICAST,
        _ => CAST_UNICAST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{
        IpHeaders, NetHeaders, PacketBuilder, PacketBuilderStep, PacketHeaders, TcpOptionElement,
        TransportHeader, VlanId,
    };
    use proptest::prelude::*;

    const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
    const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
    const SRC4: [u8; 4] = [192, 168, 7, 1];
    const DST4: [u8; 4] = [10, 200, 3, 77];
    const SRC6: [u8; 16] = [
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef,
    ];
    const DST6: [u8; 16] = [
        0xfd, 0x00, 0x12, 0x34, 0, 0, 0, 0, 0xab, 0xcd, 0, 0, 0, 0, 0, 0x42,
    ];

    #[derive(Clone, Copy, Debug)]
    struct Spec {
        v6: bool,
        tcp: bool,
        vlans: u8,
        tcp_opts: bool,
    }

    fn ip_step(s: Spec) -> PacketBuilderStep<IpHeaders> {
        let eth = PacketBuilder::ethernet2(SRC_MAC, DST_MAC);
        let v = |x| VlanId::try_new(x).unwrap();
        match (s.vlans, s.v6) {
            (0, false) => eth.ipv4(SRC4, DST4, 64),
            (0, true) => eth.ipv6(SRC6, DST6, 64),
            (1, false) => eth.single_vlan(v(100)).ipv4(SRC4, DST4, 64),
            (1, true) => eth.single_vlan(v(100)).ipv6(SRC6, DST6, 64),
            (_, false) => eth.double_vlan(v(7), v(100)).ipv4(SRC4, DST4, 64),
            (_, true) => eth.double_vlan(v(7), v(100)).ipv6(SRC6, DST6, 64),
        }
    }

    /// A frame built by etherparse, with its L4 checksum computed by etherparse.
    fn build(s: Spec, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let ip = ip_step(s);
        if s.tcp {
            let t = ip.tcp(40000, 443, 0x0102_0304, 64000).ack(77).psh();
            let t = if s.tcp_opts {
                t.options(&[
                    TcpOptionElement::MaximumSegmentSize(1460),
                    TcpOptionElement::Noop,
                    TcpOptionElement::WindowScale(7),
                    TcpOptionElement::Timestamp(0x1111_2222, 0x3333_4444),
                ])
                .unwrap()
            } else {
                t
            };
            t.write(&mut out, payload).unwrap();
        } else {
            ip.udp(5353, 53).write(&mut out, payload).unwrap();
        }
        out
    }

    fn spec(v6: bool, tcp: bool) -> Spec {
        Spec {
            v6,
            tcp,
            vlans: 0,
            tcp_opts: false,
        }
    }

    fn payload(n: usize, salt: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt) ^ (i >> 8) as u8)
            .collect()
    }

    fn rd16(f: &[u8], i: usize) -> u16 {
        u16::from_be_bytes([f[i], f[i + 1]])
    }

    fn wr16(f: &mut [u8], i: usize, v: u16) {
        f[i..i + 2].copy_from_slice(&v.to_be_bytes());
    }

    /// The L4 checksum etherparse computes for a frame (parsing it itself).
    fn ep_checksum(frame: &[u8]) -> u16 {
        let h = PacketHeaders::from_ethernet_slice(frame).unwrap();
        let p = h.payload.slice();
        match (h.net.unwrap(), h.transport.unwrap()) {
            (NetHeaders::Ipv4(ip, _), TransportHeader::Tcp(t)) => {
                t.calc_checksum_ipv4(&ip, p).unwrap()
            }
            (NetHeaders::Ipv6(ip, _), TransportHeader::Tcp(t)) => {
                t.calc_checksum_ipv6(&ip, p).unwrap()
            }
            (NetHeaders::Ipv4(ip, _), TransportHeader::Udp(u)) => {
                u.calc_checksum_ipv4(&ip, p).unwrap()
            }
            (NetHeaders::Ipv6(ip, _), TransportHeader::Udp(u)) => {
                u.calc_checksum_ipv6(&ip, p).unwrap()
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Plain byte-at-a-time one's complement sum, independent of `sum_words`.
    fn naive_sum(data: &[u8]) -> u32 {
        let mut s: u32 = 0;
        for (i, &b) in data.iter().enumerate() {
            s += if i % 2 == 0 {
                u32::from(b) << 8
            } else {
                u32::from(b)
            };
            s = (s & 0xffff) + (s >> 16);
        }
        s
    }

    fn ones_add(a: u16, b: u16) -> u16 {
        let s = u32::from(a) + u32::from(b);
        ((s & 0xffff) + (s >> 16)) as u16
    }

    /// What the kernel does to finish a CHECKSUM_PARTIAL frame: sum from csum_start to
    /// the end, including what is in the field, fold, complement, store (for UDP a 0
    /// is sent as 0xffff).
    fn kernel_finish(frame: &mut [u8], csum_start: usize, field: usize) {
        let udp = matches!(layout(frame), Ok(Layout { l4: L4::Udp, .. }));
        let c = !(naive_sum(&frame[csum_start..]) as u16);
        wr16(frame, field, if udp && c == 0 { 0xffff } else { c });
    }

    fn l4_field(frame: &[u8]) -> usize {
        let l = layout(frame).unwrap();
        l.l4_offset
            + match l.l4 {
                L4::Tcp => TCP_CSUM_OFFSET,
                L4::Udp => UDP_CSUM_OFFSET,
                L4::Other(_) => unreachable!(),
            }
    }

    // ---------------------------------------------------------------- layout

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

    /// Inserts `opts` (a multiple of 4 bytes) as IPv4 options.
    fn with_ipv4_options(f: &[u8], l3: usize, opts: &[u8]) -> Vec<u8> {
        let ihl = usize::from(f[l3] & 0xf) * 4;
        let mut g = f[..l3 + ihl].to_vec();
        g.extend_from_slice(opts);
        g.extend_from_slice(&f[l3 + ihl..]);
        g[l3] = 0x40 | ((ihl + opts.len()) / 4) as u8;
        let tot = rd16(&g, l3 + 2) + opts.len() as u16;
        wr16(&mut g, l3 + 2, tot);
        g
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

    /// Inserts IPv6 extension headers `exts` (each: (type, body incl. the 2 first
    /// bytes which are overwritten)) between the IPv6 header and the L4 header.
    fn with_ipv6_exts(f: &[u8], l3: usize, exts: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let l4 = l3 + 40;
        let mut g = f[..l4].to_vec();
        let orig_next = g[l3 + 6];
        // Chain them: IPv6 next header -> exts[0] -> ... -> original next.
        let mut bodies = Vec::new();
        for (i, (_, body)) in exts.iter().enumerate() {
            assert!(body.len() >= 8 && body.len() % 8 == 0);
            let mut b = body.clone();
            b[0] = exts.get(i + 1).map(|e| e.0).unwrap_or(orig_next);
            b[1] = (body.len() / 8 - 1) as u8;
            bodies.extend_from_slice(&b);
        }
        g[l3 + 6] = exts.first().map(|e| e.0).unwrap_or(orig_next);
        g.extend_from_slice(&bodies);
        g.extend_from_slice(&f[l4..]);
        let plen = rd16(&g, l3 + 4) + bodies.len() as u16;
        wr16(&mut g, l3 + 4, plen);
        g
    }

    fn ext(len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        if len > 2 {
            v[2] = 1; // PadN option covering the rest
            v[3] = (len - 4) as u8;
        }
        v
    }

    fn routing(rtype: u8, segs_left: u8, addrs: &[[u8; 16]]) -> Vec<u8> {
        let mut v = vec![0, 0, rtype, segs_left, 0, 0, 0, 0];
        for a in addrs {
            v.extend_from_slice(a);
        }
        v
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

    // ------------------------------------------------------------- tx_header

    fn csum_req() -> TxRequest {
        TxRequest {
            l4_csum: true,
            gso: Gso::None,
        }
    }

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

    // --------------------------------------------------- seed convention (non-GSO)

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

    // ------------------------------------------------------ seed convention (GSO)

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

    // --------------------------------------------------------- sw_l4_checksum

    #[test]
    fn sw_checksum_matches_etherparse() {
        for v6 in [false, true] {
            for tcp in [true, false] {
                for vlans in 0..=2 {
                    for n in [0usize, 1, 2, 3, 4, 5, 63, 64, 1459, 1460, 2999] {
                        let s = Spec {
                            v6,
                            tcp,
                            vlans,
                            tcp_opts: n % 2 == 1,
                        };
                        let mut f = build(s, &payload(n, vlans));
                        let field = l4_field(&f);
                        let want = rd16(&f, field);
                        assert_eq!(want, ep_checksum(&f));
                        // The field's content does not matter.
                        for junk in [0u16, 0xffff, 0x1234, want] {
                            wr16(&mut f, field, junk);
                            assert_eq!(sw_l4_checksum(&[&f]), Ok((field, want)));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn sw_checksum_ignores_ethernet_padding() {
        let mut f = build(spec(false, false), &payload(3, 1));
        let field = l4_field(&f);
        let want = rd16(&f, field);
        f.extend_from_slice(&[0xaa; 17]);
        assert_eq!(sw_l4_checksum(&[&f]), Ok((field, want)));
    }

    #[test]
    fn sw_checksum_udp_zero_becomes_ffff() {
        for v6 in [false, true] {
            // Even payload: its last two bytes form an aligned word. Set them so the
            // total sum is 0xffff, whose complement is 0.
            let mut f = build(spec(v6, false), &payload(20, 5));
            let end = f.len();
            wr16(&mut f, end - 2, 0);
            let (field, c) = sw_l4_checksum(&[&f]).unwrap();
            wr16(&mut f, end - 2, c);
            assert_eq!(sw_l4_checksum(&[&f]), Ok((field, 0xffff)));
            assert_eq!(ep_checksum(&f), 0xffff);
        }
    }

    #[test]
    fn sw_checksum_errors() {
        use OffloadError::*;
        assert_eq!(sw_l4_checksum(&[]), Err(Truncated));
        let f = build(spec(false, true), &payload(100, 1));
        // Headers not in the first segment.
        assert_eq!(sw_l4_checksum(&[&f[..40], &f[40..]]), Err(Truncated));
        // Payload shorter than the IP length says.
        assert_eq!(sw_l4_checksum(&[&f[..f.len() - 1]]), Err(Truncated));
        assert_eq!(sw_l4_checksum(&[&f[..60], &f[60..100]]), Err(Truncated));
        let mut icmp = Vec::new();
        PacketBuilder::ethernet2(SRC_MAC, DST_MAC)
            .ipv6(SRC6, DST6, 64)
            .icmpv6_echo_request(1, 2)
            .write(&mut icmp, &[])
            .unwrap();
        assert_eq!(sw_l4_checksum(&[&icmp]), Err(WrongL4));
    }

    #[test]
    fn sw_checksum_odd_splits_and_empty_segments() {
        let f = build(spec(true, true), &payload(1001, 77));
        let field = l4_field(&f);
        let want = rd16(&f, field);
        let h = 74;
        for cut in h..=f.len() {
            assert_eq!(sw_l4_checksum(&[&f[..cut], &f[cut..]]), Ok((field, want)));
        }
        let segs: Vec<&[u8]> = vec![
            &f[..h],
            &[],
            &f[h..h + 1],
            &f[h + 1..h + 4],
            &[],
            &f[h + 4..],
        ];
        assert_eq!(sw_l4_checksum(&segs), Ok((field, want)));
        // Byte-by-byte.
        let mut segs: Vec<&[u8]> = vec![&f[..h]];
        segs.extend(f[h..].chunks(1));
        assert_eq!(sw_l4_checksum(&segs), Ok((field, want)));
    }

    #[test]
    fn sum_words_matches_naive() {
        let d = payload(1000, 42);
        for a in 0..9 {
            for b in a..d.len().min(a + 40) {
                assert_eq!(
                    fold(sum_words(&d[a..b])),
                    fold(u64::from(naive_sum(&d[a..b])))
                );
            }
        }
    }

    // ------------------------------------------------------------ rx decoding

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

    // ------------------------------------------------------------ size / cast

    #[test]
    fn size_bucket_edges() {
        for (len, b) in [
            (0, 0),
            (1, 0),
            (64, 0),
            (65, 1),
            (127, 1),
            (128, 2),
            (255, 2),
            (256, 3),
            (511, 3),
            (512, 4),
            (1023, 4),
            (1024, 5),
            (1518, 5),
            (1519, 6),
            (9000, 6),
            (usize::MAX, 6),
        ] {
            assert_eq!(size_bucket(len), b, "len {len}");
            assert!(size_bucket(len) < SIZE_BUCKETS);
        }
    }

    #[test]
    fn cast_class_values() {
        assert_eq!(cast_class(&[0xff; 6]), CAST_BROADCAST);
        assert_eq!(cast_class(&[0xff; 60]), CAST_BROADCAST);
        assert_eq!(cast_class(&[0x01, 0x00, 0x5e, 0, 0, 1, 9]), CAST_MULTICAST);
        assert_eq!(cast_class(&[0x33, 0x33, 0, 0, 0, 1]), CAST_MULTICAST);
        assert_eq!(
            cast_class(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]),
            CAST_MULTICAST
        );
        assert_eq!(cast_class(&[0x02, 0, 0, 0, 0, 1]), CAST_UNICAST);
        assert_eq!(
            cast_class(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]),
            CAST_UNICAST
        );
        assert_eq!(cast_class(&[0xff; 5]), CAST_UNICAST);
        assert_eq!(cast_class(&[]), CAST_UNICAST);
    }

    // -------------------------------------------------------------- proptests

    fn arb_spec() -> impl Strategy<Value = Spec> {
        (any::<bool>(), any::<bool>(), 0u8..=2, any::<bool>()).prop_map(
            |(v6, tcp, vlans, tcp_opts)| Spec {
                v6,
                tcp,
                vlans,
                tcp_opts,
            },
        )
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

        #[test]
        fn sw_checksum_random_splits(
            s in arb_spec(),
            n in 0usize..3000,
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
            salt: u8,
            junk: u16,
        ) {
            let mut f = build(s, &payload(n, salt));
            let field = l4_field(&f);
            let want = ep_checksum(&f);
            prop_assert_eq!(rd16(&f, field), want);
            wr16(&mut f, field, junk);
            let l = layout(&f).unwrap();
            let hdr_end = l.l4_offset + l.l4_hdr_len;
            let mut points: Vec<usize> = cuts
                .iter()
                .map(|c| hdr_end + c.index(f.len() - hdr_end + 1))
                .collect();
            points.sort_unstable();
            let mut segs: Vec<&[u8]> = Vec::new();
            let mut prev = 0;
            for p in points {
                segs.push(&f[prev..p]);
                prev = p;
            }
            segs.push(&f[prev..]);
            prop_assert_eq!(sw_l4_checksum(&segs), Ok((field, want)));
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
