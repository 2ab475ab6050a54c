//! Transmit preparation on arbitrary bytes with every offload request: the
//! header-layout walk (Ethernet with VLAN tags, or raw IP as on a TUN; IPv4
//! options, IPv6 extension headers), the virtio-net header and checksum seed,
//! or the software checksum where the port has no checksum offload, the
//! segments an engine splits where the port takes no header, over
//! packets chained across small pool buffers. Whatever the bytes, a packet is
//! prepared (its header inside the packet) or refused and counted, and every
//! buffer is back in the pool afterwards.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtap::fuzzing::{engine_segments, prepare_burst, TX_REJECTED};
use rtap::wire::vnet::{VnetHdr, F_NEEDS_CSUM, GSO_NONE, GSO_TCPV4};
use rtap::{Gso, Pool, PoolConfig, TxRequest};

thread_local! {
    /// One pool per buffer size (64, 128, 256, 2048 bytes), made once: small
    /// buffers chain a packet over many segments.
    static POOLS: Vec<Pool> = [64u32, 128, 256, 2048]
        .iter()
        .map(|&b| {
            let cfg = PoolConfig::default().count(512).headroom(16).buf_size(16 + b);
            Pool::new(cfg).expect("pool")
        })
        .collect();
}

/// Marks a header the packet carried in (prepared ones have 0 there).
const CARRIED: u16 = 0x5a5a;

fuzz_target!(|data: &[u8]| {
    let Some((&head, mut rest)) = data.split_first() else {
        return;
    };
    let csum_offload = head & 1 != 0;
    let ip = head & 2 != 0;
    let room = usize::from(head >> 4 & 7);
    // A port whose frames go without a virtio-net header (a tap created
    // without offloads): a header a packet carries is a request there.
    let header = head & 0x80 == 0;
    let pool = POOLS.with(|p| p[usize::from(head >> 2 & 3)].clone());
    let mut pkts = Vec::new();
    // Each packet: request kind, segment size (2 bytes), length (2 bytes), bytes.
    while rest.len() >= 5 && pkts.len() < 4 {
        let kind = rest[0];
        let size = u16::from_le_bytes([rest[1], rest[2]]);
        let len = usize::from(u16::from_le_bytes([rest[3], rest[4]]) & 0x3fff).min(rest.len() - 5);
        let bytes = &rest[5..5 + len];
        rest = &rest[5 + len..];
        let gso = match kind & 3 {
            0 | 1 => Gso::None,
            2 => Gso::Tcp {
                mss: size,
                ecn: kind & 4 != 0,
            },
            _ => Gso::Udp { size },
        };
        let req = TxRequest {
            l4_csum: kind & 1 != 0 || gso != Gso::None,
            gso,
        };
        let Ok(mut p) = pool.alloc_from(bytes) else {
            continue;
        };
        if kind & 8 != 0 {
            // A header carried from the port it came in on, whatever it says
            // (marked, to tell it from one the preparation wrote).
            p.set_vnet_hdr(VnetHdr {
                flags: F_NEEDS_CSUM,
                gso_type: if kind & 4 != 0 { GSO_TCPV4 } else { GSO_NONE },
                hdr_len: size >> 4,
                gso_size: 100,
                csum_start: size & 0xff,
                csum_offset: size >> 8 & 0x1f,
                num_buffers: CARRIED,
            });
        } else {
            p.set_tx_offload(req);
        }
        pkts.push(p);
    }
    let n = pkts.len();
    let (refused, counters) = prepare_burst(&mut pkts, room, csum_offload, header, ip);
    assert_eq!(counters[TX_REJECTED], refused as u64);
    assert_eq!(pkts.len(), n - refused);
    for (k, p) in pkts.iter().enumerate() {
        if k >= room.min(n) - refused {
            break; // past the room: untouched
        }
        assert_eq!(
            p.tx_offload(),
            TxRequest::default(),
            "a prepared packet's request is consumed"
        );
        let h = p.vnet_hdr();
        if !header && h.gso_type != GSO_NONE {
            // The engine splits it: a packet in one buffer, every segment's
            // payload inside it, in order, covering the packet after the
            // headers (or the engine refuses it).
            assert_eq!(p.nb_segs(), 1);
            if let Some(segs) = engine_segments(p, ip) {
                let hl = segs[0].0;
                let mut at = hl;
                for (l, r) in &segs {
                    assert_eq!((*l, r.start), (hl, at), "{segs:?}");
                    assert!(r.end <= p.len() && r.start <= r.end);
                    at = r.end;
                }
            }
            continue;
        }
        if !header && !csum_offload {
            // Nothing partial may go where no header goes.
            assert!(h.flags & F_NEEDS_CSUM == 0, "{h:?}");
        }
        if h.num_buffers == CARRIED {
            continue; // a carried header goes as it is where the port takes one
        }
        if h.flags & F_NEEDS_CSUM != 0 {
            let field = usize::from(h.csum_start) + usize::from(h.csum_offset) + 2;
            assert!(
                field <= p.len(),
                "checksum field inside the packet: {h:?}, {}",
                p.len()
            );
        }
        if h.gso_type != GSO_NONE {
            assert!(usize::from(h.hdr_len) <= p.len() && h.gso_size > 0, "{h:?}");
        }
    }
    drop(pkts);
    assert_eq!(
        pool.available(),
        pool.capacity() as usize,
        "every buffer back in the pool"
    );
});
