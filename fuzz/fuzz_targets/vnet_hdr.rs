//! The virtio-net header as rx reads it, and what the data path does with it:
//! decode (10- and 12-byte layouts), re-encode, the rx checksum and GSO views,
//! and the VPN path's userspace segmentation (`wire::gso::split`) of the packet
//! behind it, whose segments then go through the coalescer (`wire::gro`); and
//! the checksum's fast sum against the straightforward one over the packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtap::wire::checksum;
use rtap::wire::gro::Coalescer;
use rtap::wire::gso;
use rtap::wire::offload::{rx_csum, rx_gso};
use rtap::wire::vnet::{VnetHdr, VNET_HDR_LEN, VNET_HDR_LEN_MRG};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let len = if sel & 1 == 0 {
        VNET_HDR_LEN
    } else {
        VNET_HDR_LEN_MRG
    };
    let Some(h) = VnetHdr::decode(rest, len) else {
        assert!(rest.len() < len);
        return;
    };
    let mut out = [0u8; VNET_HDR_LEN_MRG];
    h.encode(&mut out, len).expect("a decoded header encodes");
    assert_eq!(&out[..len], &rest[..len], "decode and encode are inverses");
    assert_eq!(VnetHdr::decode(&out, len), Some(h));
    let _ = (rx_csum(&h), rx_gso(&h), h.is_plain());

    let pkt = &rest[len..];
    // The checksum's fast sum and the straightforward one agree (folded).
    let fold = |mut s: u64| {
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        s
    };
    assert_eq!(
        fold(checksum::sum(pkt)),
        fold(checksum::sum_be_words(pkt)),
        "the fast sum is the reference's"
    );
    let Ok(mut split) = gso::split(pkt, &h) else {
        return;
    };
    let n = split.count();
    let mut buf = vec![0u8; split.max_len()];
    let mut gro = Coalescer::new(2);
    let mut emitted = 0usize;
    let mut emit = |p: &[u8], eh: &VnetHdr| {
        assert!(p.len() <= 65535 + 40);
        let _ = rx_gso(eh);
        emitted += 1;
    };
    let mut got = 0;
    while let Some(r) = split.next_into(&mut buf) {
        let Ok(seg_len) = r else { break };
        assert!(
            seg_len <= buf.len(),
            "a segment fits the size split promised"
        );
        got += 1;
        assert!(got <= n, "no more segments than counted");
        gro.push(&buf[..seg_len], &mut emit);
    }
    gro.flush(&mut emit);
    assert_eq!(gro.held(), 0, "a flush empties the coalescer");
});
