//! Frames and reference computations shared by the wire modules' unit tests:
//! frames built by etherparse (an implementation independent of ours), a plain
//! byte-at-a-time checksum, and a replay of how the kernel finishes a partial
//! checksum.

use etherparse::{
    IpHeaders, NetHeaders, PacketBuilder, PacketBuilderStep, PacketHeaders, TcpOptionElement,
    TransportHeader, VlanId,
};
use proptest::prelude::*;

use super::checksum::{TCP_CSUM_OFFSET, UDP_CSUM_OFFSET};
use super::layout::{layout, Layout, L4};
use super::offload::{Gso, TxRequest};

pub(crate) const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];

pub(crate) const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

pub(crate) const SRC4: [u8; 4] = [192, 168, 7, 1];

pub(crate) const DST4: [u8; 4] = [10, 200, 3, 77];

pub(crate) const SRC6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef,
];

pub(crate) const DST6: [u8; 16] = [
    0xfd, 0x00, 0x12, 0x34, 0, 0, 0, 0, 0xab, 0xcd, 0, 0, 0, 0, 0, 0x42,
];

#[derive(Clone, Copy, Debug)]
pub(crate) struct Spec {
    pub v6: bool,
    pub tcp: bool,
    pub vlans: u8,
    pub tcp_opts: bool,
}

pub(crate) fn ip_step(s: Spec) -> PacketBuilderStep<IpHeaders> {
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
pub(crate) fn build(s: Spec, payload: &[u8]) -> Vec<u8> {
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

pub(crate) fn spec(v6: bool, tcp: bool) -> Spec {
    Spec {
        v6,
        tcp,
        vlans: 0,
        tcp_opts: false,
    }
}

pub(crate) fn payload(n: usize, salt: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt) ^ (i >> 8) as u8)
        .collect()
}

pub(crate) fn rd16(f: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([f[i], f[i + 1]])
}

pub(crate) fn wr16(f: &mut [u8], i: usize, v: u16) {
    f[i..i + 2].copy_from_slice(&v.to_be_bytes());
}

/// The L4 checksum etherparse computes for a frame (parsing it itself).
pub(crate) fn ep_checksum(frame: &[u8]) -> u16 {
    let h = PacketHeaders::from_ethernet_slice(frame).unwrap();
    let p = h.payload.slice();
    match (h.net.unwrap(), h.transport.unwrap()) {
        (NetHeaders::Ipv4(ip, _), TransportHeader::Tcp(t)) => t.calc_checksum_ipv4(&ip, p).unwrap(),
        (NetHeaders::Ipv6(ip, _), TransportHeader::Tcp(t)) => t.calc_checksum_ipv6(&ip, p).unwrap(),
        (NetHeaders::Ipv4(ip, _), TransportHeader::Udp(u)) => u.calc_checksum_ipv4(&ip, p).unwrap(),
        (NetHeaders::Ipv6(ip, _), TransportHeader::Udp(u)) => u.calc_checksum_ipv6(&ip, p).unwrap(),
        other => panic!("unexpected {other:?}"),
    }
}

/// Plain byte-at-a-time one's complement sum, independent of `sum_words`.
pub(crate) fn naive_sum(data: &[u8]) -> u32 {
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

pub(crate) fn ones_add(a: u16, b: u16) -> u16 {
    let s = u32::from(a) + u32::from(b);
    ((s & 0xffff) + (s >> 16)) as u16
}

/// What the kernel does to finish a CHECKSUM_PARTIAL frame: sum from csum_start to
/// the end, including what is in the field, fold, complement, store (for UDP a 0
/// is sent as 0xffff).
pub(crate) fn kernel_finish(frame: &mut [u8], csum_start: usize, field: usize) {
    let udp = matches!(layout(frame), Ok(Layout { l4: L4::Udp, .. }));
    let c = !(naive_sum(&frame[csum_start..]) as u16);
    wr16(frame, field, if udp && c == 0 { 0xffff } else { c });
}

pub(crate) fn l4_field(frame: &[u8]) -> usize {
    let l = layout(frame).unwrap();
    l.l4_offset
        + match l.l4 {
            L4::Tcp => TCP_CSUM_OFFSET,
            L4::Udp => UDP_CSUM_OFFSET,
            L4::Other(_) => unreachable!(),
        }
}

/// Inserts `opts` (a multiple of 4 bytes) as IPv4 options.
pub(crate) fn with_ipv4_options(f: &[u8], l3: usize, opts: &[u8]) -> Vec<u8> {
    let ihl = usize::from(f[l3] & 0xf) * 4;
    let mut g = f[..l3 + ihl].to_vec();
    g.extend_from_slice(opts);
    g.extend_from_slice(&f[l3 + ihl..]);
    g[l3] = 0x40 | ((ihl + opts.len()) / 4) as u8;
    let tot = rd16(&g, l3 + 2) + opts.len() as u16;
    wr16(&mut g, l3 + 2, tot);
    g
}

/// Inserts IPv6 extension headers `exts` (each: (type, body incl. the 2 first
/// bytes which are overwritten)) between the IPv6 header and the L4 header.
pub(crate) fn with_ipv6_exts(f: &[u8], l3: usize, exts: &[(u8, Vec<u8>)]) -> Vec<u8> {
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

pub(crate) fn ext(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    if len > 2 {
        v[2] = 1; // PadN option covering the rest
        v[3] = (len - 4) as u8;
    }
    v
}

pub(crate) fn routing(rtype: u8, segs_left: u8, addrs: &[[u8; 16]]) -> Vec<u8> {
    let mut v = vec![0, 0, rtype, segs_left, 0, 0, 0, 0];
    for a in addrs {
        v.extend_from_slice(a);
    }
    v
}

pub(crate) fn csum_req() -> TxRequest {
    TxRequest {
        l4_csum: true,
        gso: Gso::None,
    }
}

pub(crate) fn arb_spec() -> impl Strategy<Value = Spec> {
    (any::<bool>(), any::<bool>(), 0u8..=2, any::<bool>()).prop_map(|(v6, tcp, vlans, tcp_opts)| {
        Spec {
            v6,
            tcp,
            vlans,
            tcp_opts,
        }
    })
}
