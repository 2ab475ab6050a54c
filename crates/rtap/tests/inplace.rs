//! The in-place receive (`RxQueue::rx_inplace`) and `TxQueue::tx_frames`
//! against the real kernel: on an AF_PACKET port (TPACKET v2 and v3) frames
//! are lent where they lie in the rx ring and no pool buffer is used; a frame
//! the caller does not take stays for the next call; a forwarder copies each
//! frame once, ring to ring. Elsewhere (taps) packets are lent, in the same
//! order as `rx_burst` would give them.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::offload;
use common::*;
use rtap::{Frame, Kick, PacketConfig, Pool, PoolConfig, Port, RxQueue, TapConfig, Tpacket};

/// Takes up to `n` frames from `rxq` (copies of them), `per_call` at most
/// per call, until `WAIT` passes.
fn take_copies(rxq: &mut RxQueue, n: usize, per_call: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        rxq.rx_inplace(64, |frames: &[Frame<'_>]| {
            let k = frames.len().min(per_call).min(n - got.len());
            got.extend(frames[..k].iter().map(|f| f.to_vec()));
            k
        })
        .unwrap();
    }
    got
}

/// Frames injected on the peer are lent in order, byte for byte (a VLAN tag
/// the kernel moved into the slot header put back); one the caller leaves is
/// lent again next time; only frames taken are counted; the pool is never
/// touched.
fn lends_ring_frames(kick: Kick) {
    lends_ring_frames_of(kick, Tpacket::V2);
}

/// The same from a TPACKET v3 ring: frames lent across blocks, a block back
/// to the kernel once every frame of it is taken.
fn lends_ring_frames_v3(kick: Kick) {
    lends_ring_frames_of(kick, V3_2MS);
}

fn lends_ring_frames_of(kick: Kick, tp: Tpacket) {
    netns();
    let (p, k) = veth("ipl");
    let port = packet_port(PacketConfig::new(p).kick(kick).tpacket(tp));
    let pool = Pool::new(PoolConfig::default().count(64)).unwrap();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    assert!(rxq.in_place());
    let inj = PacketSocket::injector(k);
    let mut sent = Vec::new();
    for i in 0..20u32 {
        let mut f = test_frame(60 + 37 * i as usize, i);
        if i == 7 {
            f.splice(12..12, [0x81, 0x00, 0x20, 0x05]);
        }
        inj.send(&f).unwrap();
        sent.push(f);
    }
    // Nothing taken: nothing counted, the same frame first next time.
    let deadline = Instant::now() + WAIT;
    let mut first = None;
    while first.is_none() && Instant::now() < deadline {
        rxq.rx_inplace(64, |fr: &[Frame<'_>]| {
            first = fr.first().map(|f| f.to_vec());
            0
        })
        .unwrap();
    }
    assert_eq!(first.as_ref(), Some(&sent[0]));
    assert_eq!(port.stats().unwrap().rx.packets, 0);
    // Three at a time, then the rest.
    let got = take_copies(&mut rxq, 20, 3);
    assert_eq!(got, sent, "in order, byte for byte");
    // More than a block holds, taken 5 at a time: every block goes back (else
    // the ring would fill and the kernel drop).
    let more: Vec<Vec<u8>> = (0..600u32).map(|i| test_frame(1000, 100 + i)).collect();
    for chunk in more.chunks(100) {
        for f in chunk {
            inj.send(f).unwrap();
        }
        assert_eq!(take_copies(&mut rxq, chunk.len(), 5), chunk.to_vec());
    }
    assert_eq!(port.stats().unwrap().imissed, 0);
    assert_eq!(pool.available(), 64, "no pool buffer used");
    let st = port.stats().unwrap();
    let bytes: u64 = sent.iter().chain(&more).map(|f| f.len() as u64).sum();
    assert_eq!((st.rx.packets, st.rx.bytes, st.rx.errors), (620, bytes, 0));
    assert_eq!(port.xstat("rx_q0_size_64_packets"), Some(1));
    drop(rxq);
    assert_pool_full(&pool);
}

/// A forwarder between two packet ports: each frame lent by A's rx ring is
/// copied once, into B's tx ring; frames B's full ring cannot take stay in
/// A's ring until it can. Every frame arrives at B's peer, in order.
fn forwards_ring_to_ring(kick: Kick) {
    netns();
    let (pa, ka) = veth("ifa");
    let (pb, kb) = veth("ifb");
    let a = packet_port(PacketConfig::new(pa).kick(kick).frame_count(512));
    let b = packet_port(PacketConfig::new(pb).kick(kick).frame_count(64));
    let pool = Pool::new(PoolConfig::default().count(64)).unwrap();
    let mut rxq = a.rx_queue(0, &pool).unwrap();
    let mut txq = b.tx_queue(0).unwrap();
    let inj = PacketSocket::injector(ka);
    let cap = PacketSocket::bind(kb);
    let n = 300u32;
    for (i, len) in (0..n).map(|i| (i, [60, 333, 1514][i as usize % 3])) {
        inj.send(&test_frame(len, i)).unwrap();
    }
    let deadline = Instant::now() + WAIT;
    let mut moved = 0;
    let mut got = Vec::new();
    while moved < n as usize && Instant::now() < deadline {
        moved += rxq
            .rx_inplace(64, |fr: &[Frame<'_>]| txq.tx_frames(fr, &pool).unwrap())
            .unwrap();
        // Drained as it goes: the capture socket's buffer is smaller than 300 frames.
        got.extend(cap.recv_test_frames(n as usize - got.len(), Duration::from_millis(1)));
    }
    assert!(txq.flush(WAIT));
    got.extend(cap.recv_test_frames(n as usize - got.len(), WAIT));
    let seqs: Vec<u32> = got.iter().filter_map(|f| test_seq(f)).collect();
    assert_eq!(seqs, (0..n).collect::<Vec<_>>(), "every frame, in order");
    for (f, i) in got.iter().zip(0..n) {
        assert_eq!(f, &test_frame([60, 333, 1514][i as usize % 3], i));
    }
    let (sa, sb) = (a.stats().unwrap(), b.stats().unwrap());
    assert_eq!(sa.rx.packets, u64::from(n));
    assert_eq!((sb.tx.packets, sb.tx.errors), (u64::from(n), 0));
    assert_eq!(sa.imissed, 0);
    assert_eq!(pool.available(), 64, "no pool buffer used");
}

kick_tests!(
    lends_ring_frames,
    lends_ring_frames_v3,
    forwards_ring_to_ring
);

/// A tap lends the packets it receives: `rx_inplace` and `rx_burst` mixed
/// keep the order; frames copied to another tap with `tx_frames` (packets of
/// the pool there) arrive whole; every buffer comes back.
#[test]
fn lends_packets_where_it_cannot_lend_the_ring() {
    netns();
    let port = open(TapConfig::new("iprx"));
    port.start().unwrap();
    let tap = open(TapConfig::new("iptap"));
    tap.start().unwrap();
    let pool = pool();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    assert!(!rxq.in_place());
    let mut txq = tap.tx_queue(0).unwrap();
    let cap = PacketSocket::bind(tap.ifindex());
    let inj = PacketSocket::injector(port.ifindex());
    let sent: Vec<Vec<u8>> = (0..12u32)
        .map(|i| test_frame(100 + i as usize, i))
        .collect();
    for f in &sent {
        inj.send(f).unwrap();
    }
    let mut got = take_copies(&mut rxq, 4, 4);
    assert!(rxq.posted() > 0, "received packets wait in the queue");
    let mut v = Vec::new();
    let deadline = Instant::now() + WAIT;
    while v.is_empty() && Instant::now() < deadline {
        rxq.rx_burst(&mut v, 4).unwrap();
    }
    got.extend(v.iter().map(|p| p.to_vec()));
    drop(v);
    // The rest, forwarded to the tap on the way.
    let deadline = Instant::now() + WAIT;
    let mut fwd = Vec::new();
    while got.len() + fwd.len() < sent.len() && Instant::now() < deadline {
        rxq.rx_inplace(64, |fr: &[Frame<'_>]| {
            let k = txq.tx_frames(fr, &pool).unwrap();
            fwd.extend(fr[..k].iter().map(|f| f.to_vec()));
            k
        })
        .unwrap();
    }
    assert!(txq.flush(WAIT));
    let n = got.len();
    got.extend(fwd.iter().cloned());
    assert_eq!(got, sent, "in order across rx_inplace and rx_burst");
    assert_eq!(cap.recv_test_frames(fwd.len(), WAIT), fwd, "on the tap");
    assert!(n >= 5 && n < sent.len());
    drop((rxq, txq));
    assert_pool_full(&pool);
}

/// A frame whose checksum is partial when it reaches the ring (the kernel
/// says so in the slot, `TP_STATUS_CSUMNOTREADY`): local UDP over the veth,
/// and VLAN-tagged UDP sent by a packet port with a virtio-net header asking
/// for the checksum (the tag then lands in the slot's header). A port
/// without the header finishes the checksum in the ring before lending the
/// frame, and counts it (v2 and v3 rings).
#[test]
fn partial_checksums_finished_in_the_ring() {
    for (tp, tag) in [(Tpacket::V2, "ipc2"), (V3_2MS, "ipc3")] {
        netns();
        let (p, _) = veth(tag);
        let k = format!("{tag}k");
        let port = packet_port(PacketConfig::new(p.as_str()).tpacket(tp));
        let pool = pool();
        let mut rxq = port.rx_queue(0, &pool).unwrap();
        // Local UDP.
        ip(&["addr", "add", "10.9.0.1/24", "dev", &k]);
        let mac = "02:00:00:00:00:99";
        ip(&[
            "neigh",
            "add",
            "10.9.0.2",
            "lladdr",
            mac,
            "dev",
            &k,
            "nud",
            "permanent",
        ]);
        let s = std::net::UdpSocket::bind("10.9.0.1:0").unwrap();
        for i in 0..5u8 {
            s.send_to(&[i; 300], "10.9.0.2:9").unwrap();
        }
        // Tagged UDP with a checksum request, from a packet port on the peer.
        let sender = Port::open(PacketConfig::new(k.as_str()).offload(true)).unwrap();
        sender.start().unwrap();
        let mut txq = sender.tx_queue(0).unwrap();
        let mut out = Vec::new();
        for i in 0..5u8 {
            let mut f = Vec::new();
            etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 0x99])
                .single_vlan(etherparse::VlanId::try_new(5).unwrap())
                .ipv4([10, 9, 5, 1], [10, 9, 5, 2], 64)
                .udp(4000, 9)
                .write(&mut f, &[i; 300])
                .unwrap();
            // The field holds something else: the receiver must compute it.
            f[18 + 20 + 6] ^= 0xff;
            let mut p = pool.alloc_from(&f).unwrap();
            p.set_vnet_hdr(rtap::wire::vnet::VnetHdr {
                flags: rtap::wire::vnet::F_NEEDS_CSUM,
                csum_start: 18 + 20,
                csum_offset: 6,
                ..Default::default()
            });
            out.push(p);
        }
        tx_all(&mut txq, out);
        assert!(txq.flush(WAIT));
        let deadline = Instant::now() + WAIT;
        let mut got = Vec::new();
        while got.len() < 10 && Instant::now() < deadline {
            rxq.rx_inplace(64, |fr: &[Frame<'_>]| {
                got.extend(
                    fr.iter().map(|f| f.to_vec()).filter(|f| {
                        offload::parse(f).is_some_and(|v| !v.tcp && v.data.len() == 300)
                    }),
                );
                fr.len()
            })
            .unwrap();
        }
        assert_eq!(got.len(), 10, "{tp:?}: the datagrams arrived");
        let tagged = got.iter().filter(|f| f[12..14] == [0x81, 0x00]).count();
        assert_eq!(tagged, 5, "{tp:?}: the VLAN tag put back");
        for f in &got {
            let v = offload::parse(f).unwrap();
            assert_eq!(v.field, v.computed, "{tp:?}: checksum finished");
        }
        assert!(port.xstat("rx_q0_sw_csum").unwrap() >= 10);
        drop((txq, sender, rxq));
        assert_pool_full(&pool);
    }
}
