//! Internet checksum arithmetic: one's complement sums over byte runs (at any
//! alignment), the TCP/UDP pseudo-header, and the full software L4 checksum of a
//! frame given as segments (the fallback when a port has no checksum offload).
//!
//! Pure code: no fds, no allocation.

use super::layout::{walk_on, Link, OffloadError, Walk, IPPROTO_TCP, IPPROTO_UDP, L4};

/// Offset of the checksum field inside the TCP header.
pub const TCP_CSUM_OFFSET: usize = 16;
/// Offset of the checksum field inside the UDP header.
pub const UDP_CSUM_OFFSET: usize = 6;

/// One's complement sum of `data` read as big-endian 16-bit words (an odd last byte
/// is the high half of a word), not folded.
///
/// The bulk, 32 bytes a step, is summed as native-endian 32-bit words into four
/// 64-bit lanes: no bswap per word, independent adds the compiler vectorizes, and
/// no carry lost before 2^32 words. A one's complement sum does not depend on byte
/// order but for a final swap (RFC 1071): the lanes' total, folded to 16 bits, is
/// byte-swapped on a little-endian machine. The tail (under 32 bytes, starting at
/// an even offset) is summed word by word.
#[inline]
pub(super) fn sum_words(data: &[u8]) -> u64 {
    let bulk = data.len() & !31;
    let (head, tail) = data.split_at(bulk);
    let mut lanes = Lanes::default();
    for c in head.chunks_exact(32) {
        lanes.add(c.try_into().expect("32 bytes"));
    }
    lanes.total() + sum_be_words(tail)
}

/// Copies `src` into `dst` (the same length) and returns the one's complement
/// sum of the bytes, as [`sum_words`] would, in one pass over them: each 32-byte
/// step is summed from the registers it was copied through.
#[inline]
pub(super) fn copy_and_sum(dst: &mut [u8], src: &[u8]) -> u64 {
    debug_assert_eq!(dst.len(), src.len());
    let bulk = src.len() & !31;
    let (head, tail) = src.split_at(bulk);
    let (dhead, dtail) = dst.split_at_mut(bulk);
    let mut lanes = Lanes::default();
    for (d, c) in dhead.chunks_exact_mut(32).zip(head.chunks_exact(32)) {
        let c: &[u8; 32] = c.try_into().expect("32 bytes");
        d.copy_from_slice(c);
        lanes.add(c);
    }
    dtail.copy_from_slice(tail);
    lanes.total() + sum_be_words(tail)
}

/// The fast path's accumulator: 32-byte steps as native-endian 32-bit words in
/// four 64-bit lanes.
#[derive(Default)]
struct Lanes([u64; 4]);

impl Lanes {
    #[inline]
    fn add(&mut self, c: &[u8; 32]) {
        let w = |i: usize| u64::from(u32::from_ne_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]));
        self.0[0] += w(0) + w(16);
        self.0[1] += w(4) + w(20);
        self.0[2] += w(8) + w(24);
        self.0[3] += w(12) + w(28);
    }

    /// The sum as big-endian words would give it (folded to 16 bits).
    #[inline]
    fn total(&self) -> u64 {
        // Each lane folded to 33 bits first: their sum cannot overflow.
        let t = self
            .0
            .iter()
            .fold(0u64, |a, &l| a + (l & 0xffff_ffff) + (l >> 32));
        let native = fold(t);
        let be = if cfg!(target_endian = "little") {
            native.swap_bytes()
        } else {
            native
        };
        u64::from(be)
    }
}

/// One's complement sum of `data` as big-endian 32-bit words (then the last 1-3
/// bytes), not folded: the straightforward sum, which [`sum`] computed before its
/// fast path; kept as the reference the fast path is tested and measured against.
#[inline]
pub fn sum_be_words(data: &[u8]) -> u64 {
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
pub(super) fn fold(mut s: u64) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// One's complement sum of `data` (big-endian 16-bit words, an odd last byte
/// the high half of a word), not folded. Sums of runs that start at even
/// offsets of the checksummed area add up; [`finish`] turns the total into
/// the checksum.
pub fn sum(data: &[u8]) -> u64 {
    sum_words(data)
}

/// The checksum of a one's complement sum: folded to 16 bits and complemented.
pub fn finish(sum: u64) -> u16 {
    !fold(sum)
}

/// The internet checksum (RFC 1071) of `data`, with its checksum field zeroed:
/// an IPv4 header, an ICMP message.
pub fn internet_checksum(data: &[u8]) -> u16 {
    finish(sum_words(data))
}

/// Pseudo-header sum (not folded) for a TCP/UDP walk.
pub(super) fn pseudo_sum(frame: &[u8], w: &Walk, proto: u8) -> Result<u64, OffloadError> {
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
pub(super) fn l4_csum_info(w: &Walk, need: Option<L4>) -> Result<(u8, usize), OffloadError> {
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
/// Errors as in [`layout`](super::layout::layout), plus: no segments or fewer bytes than the IP length fields
/// announce → [`OffloadError::Truncated`]; not TCP/UDP → [`OffloadError::WrongL4`];
/// UDP length field ≠ IP payload length or unknown final destination →
/// [`OffloadError::BadIpHeader`].
pub fn sw_l4_checksum(segs: &[&[u8]]) -> Result<(usize, u16), OffloadError> {
    sw_l4_checksum_on(segs, Link::Ethernet)
}

/// [`sw_l4_checksum`] of a frame that starts as `link` says.
pub fn sw_l4_checksum_on(segs: &[&[u8]], link: Link) -> Result<(usize, u16), OffloadError> {
    let first = segs.first().ok_or(OffloadError::Truncated)?;
    let w = walk_on(first, link)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internet_checksum_of_rfc1071s_example() {
        // RFC 1071 section 3: the words sum to 0xddf2; the checksum is its complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(internet_checksum(&data), !0xddf2);
        // A message with its checksum in place sums to all ones: 0 once complemented.
        let mut m = vec![8u8, 0, 0, 0, 0x12, 0x34, 0, 1, b'a', b'b', b'c'];
        let c = internet_checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(internet_checksum(&m), 0);
        // Sums of pieces starting at even offsets add up.
        assert_eq!(finish(sum(&m[..4]) + sum(&m[4..])), 0);
    }
    use crate::wire::layout::layout;
    use crate::wire::testutil::*;
    use etherparse::PacketBuilder;
    use proptest::prelude::*;

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

    proptest! {
        /// The fast sum and the reference agree on any bytes, at any offset
        /// and length (folded: they differ as unfolded sums).
        #[test]
        fn fast_sum_matches_the_reference(d in proptest::collection::vec(any::<u8>(), 0..3000), a in 0usize..40) {
            let a = a.min(d.len());
            prop_assert_eq!(fold(sum_words(&d[a..])), fold(sum_be_words(&d[a..])));
            prop_assert_eq!(fold(sum_words(&d[a..])), fold(u64::from(naive_sum(&d[a..]))));
        }
    }

    proptest! {
        /// Copying while summing copies exactly and sums as the plain sum.
        #[test]
        fn copy_and_sum_copies_and_sums(d in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let mut out = vec![0u8; d.len()];
            let s = copy_and_sum(&mut out, &d);
            prop_assert_eq!(&out, &d);
            prop_assert_eq!(fold(s), fold(sum_be_words(&d)));
        }
    }

    #[test]
    fn fast_sum_of_all_ones_and_large_runs() {
        for len in [0, 1, 31, 32, 33, 64, 1500, 65_535, 1 << 20] {
            let d = vec![0xffu8; len];
            assert_eq!(fold(sum_words(&d)), fold(sum_be_words(&d)), "{len}");
        }
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

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

    }
}
