//! `--mode icmpecho`: answers ARP requests, IPv6 neighbour solicitations and
//! ICMP/ICMPv6 echo requests for the configured addresses, so `ping` from the
//! kernel side reaches the port. Pure code: each request is rewritten in place
//! into its reply (same length), so the received buffer is the one sent back.

use std::net::{Ipv4Addr, Ipv6Addr};

use rtap::wire::checksum::{self, internet_checksum};

/// The addresses the port answers for.
#[derive(Clone, Copy, Debug)]
pub struct Identity {
    pub mac: [u8; 6],
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
}

/// What a frame turned into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Arp,
    Echo4,
    NeighborAdvert,
    Echo6,
    /// Not for us, or not a request we answer: drop it.
    Ignore,
}

/// Rewrites `f` into the reply to it, if it is a request for `me`.
pub fn respond(f: &mut [u8], me: &Identity) -> Answer {
    if f.len() < 14 {
        return Answer::Ignore;
    }
    match u16::from_be_bytes([f[12], f[13]]) {
        0x0806 => arp(f, me),
        0x0800 => icmp4(f, me),
        0x86dd => icmp6(f, me),
        _ => Answer::Ignore,
    }
}

fn set_eth_reply(f: &mut [u8], me: &Identity) {
    let (dst, rest) = f.split_at_mut(6);
    dst.copy_from_slice(&rest[..6]);
    rest[..6].copy_from_slice(&me.mac);
}

fn arp(f: &mut [u8], me: &Identity) -> Answer {
    let Some(ip) = me.ipv4 else {
        return Answer::Ignore;
    };
    // Ethernet/IPv4 ARP: htype 1, ptype 0x0800, hlen 6, plen 4, op 1 (request).
    let a = &f[14..];
    if a.len() < 28 || a[..8] != [0, 1, 8, 0, 6, 4, 0, 1] || a[24..28] != ip.octets() {
        return Answer::Ignore;
    }
    let (sha, spa) = (
        <[u8; 6]>::try_from(&a[8..14]).unwrap(),
        <[u8; 4]>::try_from(&a[14..18]).unwrap(),
    );
    set_eth_reply(f, me);
    let a = &mut f[14..];
    a[7] = 2; // reply
    a[8..14].copy_from_slice(&me.mac);
    a[14..18].copy_from_slice(&ip.octets());
    a[18..24].copy_from_slice(&sha);
    a[24..28].copy_from_slice(&spa);
    Answer::Arp
}

fn icmp4(f: &mut [u8], me: &Identity) -> Answer {
    let Some(ip) = me.ipv4 else {
        return Answer::Ignore;
    };
    let h = &f[14..];
    if h.len() < 20 || h[0] >> 4 != 4 {
        return Answer::Ignore;
    }
    let ihl = (h[0] & 0xf) as usize * 4;
    let total = u16::from_be_bytes([h[2], h[3]]) as usize;
    if ihl < 20
        || total < ihl + 8
        || total > h.len()
        || h[9] != 1
        || h[16..20] != ip.octets()
        || h[ihl] != 8
    {
        return Answer::Ignore;
    }
    set_eth_reply(f, me);
    let h = &mut f[14..14 + total];
    let src = <[u8; 4]>::try_from(&h[12..16]).unwrap();
    h[12..16].copy_from_slice(&ip.octets());
    h[16..20].copy_from_slice(&src);
    h[8] = 64; // TTL
    h[10..12].fill(0);
    let c = internet_checksum(&h[..ihl]);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    let icmp = &mut h[ihl..];
    icmp[0] = 0; // echo reply
    icmp[2..4].fill(0);
    let c = internet_checksum(icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    Answer::Echo4
}

fn icmp6_csum(h: &[u8], icmp: &[u8]) -> u16 {
    // The pseudo-header: source and destination addresses, length, next header.
    let pseudo = checksum::sum(&h[8..40]) + icmp.len() as u64 + 58;
    checksum::finish(pseudo + checksum::sum(icmp))
}

fn icmp6(f: &mut [u8], me: &Identity) -> Answer {
    let Some(ip) = me.ipv6 else {
        return Answer::Ignore;
    };
    let h = &f[14..];
    if h.len() < 48 || h[0] >> 4 != 6 || h[6] != 58 {
        return Answer::Ignore;
    }
    let plen = u16::from_be_bytes([h[4], h[5]]) as usize;
    if plen < 8 || 40 + plen > h.len() {
        return Answer::Ignore;
    }
    let ty = h[40];
    let answer = match ty {
        // Neighbour solicitation for our address, with a source link-layer option.
        135 if plen >= 32 && h[48..64] == ip.octets() => Answer::NeighborAdvert,
        // Echo request to our address.
        128 if h[24..40] == ip.octets() => Answer::Echo6,
        _ => return Answer::Ignore,
    };
    set_eth_reply(f, me);
    let h = &mut f[14..14 + 40 + plen];
    let src = <[u8; 16]>::try_from(&h[8..24]).unwrap();
    h[8..24].copy_from_slice(&ip.octets());
    h[24..40].copy_from_slice(&src);
    h[7] = 255; // hop limit (255 is required for neighbour discovery)
    let (hdr, icmp) = h.split_at_mut(40);
    match answer {
        Answer::NeighborAdvert => {
            icmp[0] = 136;
            icmp[4..8].copy_from_slice(&[0x60, 0, 0, 0]); // solicited + override
                                                          // Replace the options by one target link-layer address option.
            icmp[24] = 2;
            icmp[25] = 1;
            icmp[26..32].copy_from_slice(&me.mac);
            // Options after the first are left as they were; there normally are none.
        }
        _ => icmp[0] = 129,
    }
    icmp[2..4].fill(0);
    let c = icmp6_csum(hdr, icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Icmpv4Type, Icmpv6Type, PacketBuilder, SlicedPacket, TransportSlice};

    const PEER: [u8; 6] = [2, 0, 0, 0, 0, 0x99];
    fn me() -> Identity {
        Identity {
            mac: [2, 0, 0, 0, 0, 1],
            ipv4: Some("10.9.0.2".parse().unwrap()),
            ipv6: Some("fd09::2".parse().unwrap()),
        }
    }

    #[test]
    fn arp_request_becomes_reply() {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&PEER);
        f.extend_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&PEER);
        f.extend_from_slice(&[10, 9, 0, 1]);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&[10, 9, 0, 2]);
        assert_eq!(respond(&mut f, &me()), Answer::Arp);
        assert_eq!(&f[..6], &PEER);
        assert_eq!(&f[6..12], &me().mac);
        assert_eq!(f[21], 2);
        assert_eq!(&f[22..28], &me().mac);
        assert_eq!(&f[28..32], &[10, 9, 0, 2]);
        assert_eq!(&f[32..38], &PEER);
        assert_eq!(&f[38..42], &[10, 9, 0, 1]);
        // Not for us: ignored, untouched.
        let mut g = f.clone();
        g[41] = 7;
        g[21] = 1;
        let before = g.clone();
        assert_eq!(respond(&mut g, &me()), Answer::Ignore);
        assert_eq!(g, before);
    }

    #[test]
    fn icmp4_echo_becomes_valid_reply() {
        let b = PacketBuilder::ethernet2(PEER, me().mac)
            .ipv4([10, 9, 0, 1], [10, 9, 0, 2], 17)
            .icmpv4_echo_request(7, 3);
        let mut f = Vec::new();
        b.write(&mut f, b"hello ping").unwrap();
        assert_eq!(respond(&mut f, &me()), Answer::Echo4);
        let p = SlicedPacket::from_ethernet(&f).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
            panic!()
        };
        let h = ip.header().to_header();
        assert_eq!(h.source, [10, 9, 0, 2]);
        assert_eq!(h.destination, [10, 9, 0, 1]);
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        let Some(TransportSlice::Icmpv4(icmp)) = &p.transport else {
            panic!()
        };
        assert!(matches!(icmp.icmp_type(), Icmpv4Type::EchoReply(e) if e.id == 7 && e.seq == 3));
        assert_eq!(
            icmp.checksum(),
            icmp.header().icmp_type.calc_checksum(icmp.payload())
        );
        assert_eq!(icmp.payload(), b"hello ping");
    }

    #[test]
    fn icmp6_echo_becomes_valid_reply() {
        let src: [u8; 16] = "fd09::1".parse::<Ipv6Addr>().unwrap().octets();
        let dst: [u8; 16] = "fd09::2".parse::<Ipv6Addr>().unwrap().octets();
        let b = PacketBuilder::ethernet2(PEER, me().mac)
            .ipv6(src, dst, 64)
            .icmpv6_echo_request(9, 1);
        let mut f = Vec::new();
        b.write(&mut f, b"v6 ping").unwrap();
        assert_eq!(respond(&mut f, &me()), Answer::Echo6);
        let p = SlicedPacket::from_ethernet(&f).unwrap();
        let Some(etherparse::NetSlice::Ipv6(ip)) = &p.net else {
            panic!()
        };
        let h = ip.header().to_header();
        assert_eq!((h.source, h.destination), (dst, src));
        let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else {
            panic!()
        };
        assert!(matches!(icmp.icmp_type(), Icmpv6Type::EchoReply(e) if e.id == 9 && e.seq == 1));
        let want = icmp
            .header()
            .icmp_type
            .calc_checksum(h.source, h.destination, icmp.payload())
            .unwrap();
        assert_eq!(icmp.checksum(), want);
    }

    #[test]
    fn neighbour_solicitation_becomes_advertisement() {
        // NS from fd09::1 for fd09::2 with a source link-layer address option.
        let target = "fd09::2".parse::<Ipv6Addr>().unwrap().octets();
        let src = "fd09::1".parse::<Ipv6Addr>().unwrap().octets();
        let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&target);
        icmp.extend_from_slice(&[1, 1]);
        icmp.extend_from_slice(&PEER);
        let mut f = vec![0x33, 0x33, 0xff, 0, 0, 2];
        f.extend_from_slice(&PEER);
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, icmp.len() as u8, 58, 255]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&"ff02::1:ff00:2".parse::<Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(&icmp);
        assert_eq!(respond(&mut f, &me()), Answer::NeighborAdvert);
        let p = SlicedPacket::from_ethernet(&f).unwrap();
        let Some(etherparse::NetSlice::Ipv6(ip)) = &p.net else {
            panic!()
        };
        let h = ip.header().to_header();
        assert_eq!((h.source, h.destination), (target, src));
        assert_eq!(h.hop_limit, 255);
        let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else {
            panic!()
        };
        let raw = icmp.slice();
        assert_eq!(raw[0], 136);
        assert_eq!(raw[4] & 0x60, 0x60, "solicited and override");
        assert_eq!(&raw[8..24], &target);
        assert_eq!(
            &raw[24..32],
            &[2, 1, 2, 0, 0, 0, 0, 1],
            "target link-layer address = our MAC"
        );
        assert_eq!(
            icmp6_csum(&f[14..54], &f[54..]),
            0,
            "checksum verifies (sums to zero)"
        );
    }
}
