//! Offload requests a port carries out or refuses itself, before the kernel:
//! the software checksum of a port with offloads off (byte for byte, chained
//! packets too), requests it cannot honour (dropped and counted, buffers back),
//! and a burst where only prepared packets may reach the kernel.

#[macro_use]
mod common;

use std::time::Duration;

use common::offload::*;
use common::*;
use rtap::*;

/// Test 3: a port with offloads off computes requested checksums itself: the
/// frames the kernel gets (AF_PACKET capture on the tap) are byte for byte the
/// frames with their right checksum, also for chained packets, and
/// `tx_q0_sw_csum_packets` counts exactly those with a request.
fn sw_csum_when_offloads_off(backend: BackendKind) {
    netns();
    let port = started("oswc0", backend, 1);
    assert_eq!(port.offloads(), Offloads::NONE);
    let pool = small_pool();
    let cap = PacketSocket::bind(port.ifindex());
    let mut txq = port.tx_queue(0).unwrap();
    let mac = [0x02, 0, 0, 0, 0, 0x44];
    let mut frames = Vec::new();
    for (i, &(v6, tcp)) in COMBOS.iter().enumerate() {
        frames.push((
            v6,
            tcp,
            l4_frame(mac, v6, tcp, &payload(3 + 77 * i, i as u8)),
        ));
    }
    // Chains with odd segment boundaries.
    frames.push((false, false, l4_frame(mac, false, false, &payload(3001, 7))));
    frames.push((true, true, l4_frame(mac, true, true, &payload(2999, 8))));
    let mut t = Tally::default();
    let mut pkts = Vec::new();
    for (v6, tcp, f) in &frames {
        let p = with_csum(pool.alloc_from(&garbled(f, *v6, *tcp)).unwrap());
        t.tx(f, p.nb_segs());
        t.sw_csum += 1;
        pkts.push(p);
    }
    assert_eq!(t.multiseg, 2, "two chains");
    // A frame without a request goes out as it is, garbage included.
    let plain = garbled(&frames[1].2, false, true);
    pkts.push(pool.alloc_from(&plain).unwrap());
    t.tx(&plain, 1);
    tx_all(&mut txq, pkts);
    assert!(txq.flush(WAIT));
    let mut seen = Vec::new();
    while let Some(f) = cap.recv_incoming(Duration::from_millis(300)) {
        seen.push(f);
    }
    let mut want: Vec<Vec<u8>> = frames.iter().map(|f| f.2.clone()).collect();
    want.push(plain);
    assert_eq!(seen.len(), want.len(), "frames captured");
    for (s, w) in seen.iter().zip(&want) {
        assert!(s == w, "captured frame differs from the right one");
    }
    for s in &seen[..frames.len()] {
        let v = parse(s).unwrap();
        assert_eq!(v.field, v.computed);
    }
    assert_tx_xstats(&port, 0, &t);
    assert_eq!(port.xstat("tx_q0_sw_csum_packets"), Some(6));
    let st = port.stats().unwrap();
    assert_eq!((st.tx.packets, st.tx.errors), (7, 0));
    drop(txq);
    assert_pool_full(&pool);
}

/// Test 4: requests that cannot be honoured are dropped before the kernel,
/// counted in `tx_q0_offload_rejected` and as tx errors; `tx_burst` still
/// reports them as taken and their buffers go back to the pool.
fn offload_requests_refused(backend: BackendKind) {
    netns();
    let on = open(
        TapConfig::new("orjon")
            .offloads(Offloads::ALL)
            .backend(backend),
    );
    on.start().unwrap();
    let off = started("orjoff", backend, 1);
    let pool = pool();
    let cap_on = PacketSocket::bind(on.ifindex());
    let cap_off = PacketSocket::bind(off.ifindex());
    let mut tx_on = on.tx_queue(0).unwrap();
    let mut tx_off = off.tx_queue(0).unwrap();
    let mac = [0x02, 0, 0, 0, 0, 0x55];
    let tcp = l4_frame(mac, false, true, &payload(3000, 1));
    let udp = l4_frame(mac, true, false, &payload(3000, 2));
    let (raw1, raw2) = (test_frame(100, 1), test_frame(100, 2));
    let tso = |mss| Gso::Tcp { mss, ecn: false };
    let req = |l4_csum, gso| TxRequest { l4_csum, gso };
    let bad_on: Vec<(&str, &[u8], TxRequest)> = vec![
        ("MSS 0", &tcp, req(true, tso(0))),
        ("UDP size 0", &udp, req(true, Gso::Udp { size: 0 })),
        ("TSO on a UDP frame", &udp, req(true, tso(1400))),
        (
            "USO on a TCP frame",
            &tcp,
            req(false, Gso::Udp { size: 1400 }),
        ),
        ("checksum of a non-IP frame", &raw1, req(true, Gso::None)),
    ];
    // A tap without offloads splits segmentation requests it can honour
    // (tests/offload_split.rs); these it cannot.
    let bad_off: Vec<(&str, &[u8], TxRequest)> = vec![
        ("MSS 0 without offloads", &tcp, req(true, tso(0))),
        (
            "USO on a TCP frame without offloads",
            &tcp,
            req(true, Gso::Udp { size: 1400 }),
        ),
        ("checksum of a non-IP frame", &raw2, req(true, Gso::None)),
    ];
    for (port, txq, bad) in [(&on, &mut tx_on, &bad_on), (&off, &mut tx_off, &bad_off)] {
        for (i, (what, f, r)) in bad.iter().enumerate() {
            let mut p = pool.alloc_from(f).unwrap();
            p.set_tx_offload(*r);
            let mut v = vec![p];
            assert_eq!(txq.tx_burst(&mut v).unwrap(), 1, "{what}: taken");
            assert!(v.is_empty());
            assert!(txq.flush(WAIT));
            let n = i as u64 + 1;
            assert_eq!(port.xstat("tx_q0_offload_rejected"), Some(n), "{what}");
            let st = port.stats().unwrap();
            assert_eq!((st.tx.packets, st.tx.errors), (0, n), "{what}");
            assert_eq!(pool.available(), pool.capacity() as usize, "{what}");
        }
    }
    // Mixed with good frames in one burst: only the good ones go, in order.
    let mut v = Vec::new();
    for (i, (_, f, r)) in bad_on.iter().take(2).enumerate() {
        let mut p = pool.alloc_from(f).unwrap();
        p.set_tx_offload(*r);
        v.push(p);
        v.push(pool.alloc_from(&test_frame(80, 10 + i as u32)).unwrap());
    }
    assert_eq!(tx_on.tx_burst(&mut v).unwrap(), 4);
    assert!(v.is_empty());
    assert!(tx_on.flush(WAIT));
    assert_eq!(
        cap_on.recv_ours(3, Duration::from_millis(300)),
        vec![test_frame(80, 10), test_frame(80, 11)]
    );
    // Nothing else reached the kernel on either port.
    assert_eq!(cap_on.recv_incoming(Duration::from_millis(200)), None);
    assert_eq!(cap_off.recv_incoming(Duration::from_millis(200)), None);
    let mut t = Tally {
        rejected: 7,
        ..Tally::default()
    };
    t.tx(&test_frame(80, 10), 1);
    t.tx(&test_frame(80, 11), 1);
    assert_tx_xstats(&on, 0, &t);
    let st = on.stats().unwrap();
    assert_eq!((st.tx.packets, st.tx.errors), (2, 7));
    let t = Tally {
        rejected: 3,
        ..Tally::default()
    };
    assert_tx_xstats(&off, 0, &t);
    drop((tx_on, tx_off));
    assert_pool_full(&pool);
}

/// A burst larger than the tx ring with a refused packet in front (a TSO
/// request of MSS 0; a valid one would be split): only packets
/// whose request was carried out may go to the kernel. Each frame carries a
/// garbage checksum and a request the port (offloads off) computes in software,
/// so a packet sent without its preparation shows as a wrong checksum. (The
/// io_uring backends used to fill the ring's 4 slots with the 3 packets
/// prepared plus the next one, unprepared: frame 3 left with its garbage.)
fn tx_burst_sends_only_prepared_packets(backend: BackendKind) {
    netns();
    let ring = RingConfig::default().tx_entries(4);
    let port = open(TapConfig::new("oprep0").backend(backend).ring(ring));
    port.start().unwrap();
    let pool = pool();
    let cap = PacketSocket::bind(port.ifindex());
    let mut txq = port.tx_queue(0).unwrap();
    let mac = [0x02, 0, 0, 0, 0, 0x66];
    let mut t = Tally {
        rejected: 1,
        ..Tally::default()
    };
    let mut first = pool
        .alloc_from(&l4_frame(mac, false, true, &payload(3000, 0)))
        .unwrap();
    first.set_tx_offload(TxRequest {
        l4_csum: true,
        gso: Gso::Tcp { mss: 0, ecn: false },
    });
    let mut pkts = vec![first];
    let mut want = Vec::new();
    for i in 0..11u8 {
        let f = l4_frame(mac, false, false, &payload(50 + usize::from(i), i));
        pkts.push(with_csum(
            pool.alloc_from(&garbled(&f, false, false)).unwrap(),
        ));
        t.tx(&f, 1);
        t.sw_csum += 1;
        want.push(f);
    }
    tx_all(&mut txq, pkts);
    assert!(txq.flush(WAIT));
    let mut seen = Vec::new();
    while let Some(f) = cap.recv_incoming(Duration::from_millis(300)) {
        seen.push(f);
    }
    assert_eq!(seen.len(), want.len());
    for (i, (s, w)) in seen.iter().zip(&want).enumerate() {
        let v = parse(s).unwrap();
        assert_eq!(
            (v.field, v.computed),
            (v.computed, v.computed),
            "frame {i} went out without its checksum"
        );
        assert!(s == w, "frame {i}");
    }
    assert_tx_xstats(&port, 0, &t);
    drop(txq);
    assert_pool_full(&pool);
}

/// Whether the tap has `IFF_VNET_HDR`, as the kernel reports it (`ip -d`;
/// sysfs shows the first namespace's interfaces, not this test's).
fn vnet_hdr(name: &str) -> bool {
    let out = std::process::Command::new("ip")
        .args(["-d", "link", "show", "dev", name])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains(" vnet_hdr "), "no tun details: {s}");
    s.contains("vnet_hdr on")
}

/// A tap rtap creates without offloads has no virtio-net header (the kernel
/// parses none per frame); one with offloads, or one rtap attaches to, keeps
/// it. On the header-less tap, a header a packet carries from an offloading
/// port (a partial checksum) is finished in software before the frame leaves,
/// and a carried segmentation request is split by the engine, counted.
fn carried_headers_on_a_tap_without_one(backend: BackendKind) {
    netns();
    let off = started("ochd0", backend, 1);
    assert!(!vnet_hdr("ochd0"), "no header");
    let on = open(
        TapConfig::new("ochd1")
            .offloads(Offloads::ALL)
            .backend(backend),
    );
    assert!(vnet_hdr("ochd1"));
    ip(&[
        "tuntap",
        "add",
        "dev",
        "ochd2",
        "mode",
        "tap",
        "multi_queue",
    ]);
    let attached = open(TapConfig::new("ochd2").attach(true).backend(backend));
    assert!(vnet_hdr("ochd2"), "attach keeps it");
    drop((on, attached));
    let pool = small_pool();
    let cap = PacketSocket::bind(off.ifindex());
    let mut txq = off.tx_queue(0).unwrap();
    let mac = [0x02, 0, 0, 0, 0, 0x66];
    let mut want = Vec::new();
    let mut v = Vec::new();
    for (i, &(v6, tcp)) in COMBOS.iter().enumerate() {
        let f = l4_frame(mac, v6, tcp, &payload(40 + 33 * i, i as u8));
        let req = TxRequest {
            l4_csum: true,
            gso: Gso::None,
        };
        // What an offloading port hands up: the seed in the field, the header.
        let (h, seed) = rtap::wire::offload::tx_header(&f, req).unwrap();
        let mut p = pool.alloc_from(&garbled(&f, v6, tcp)).unwrap();
        let (at, val) = seed.unwrap();
        p.data_mut()[at..at + 2].copy_from_slice(&val.to_be_bytes());
        p.set_vnet_hdr(h);
        v.push(p);
        want.push(f);
    }
    let tcp = l4_frame(mac, false, true, &payload(3000, 9));
    let req = TxRequest {
        l4_csum: true,
        gso: Gso::Tcp {
            mss: 1000,
            ecn: false,
        },
    };
    let (h, _) = rtap::wire::offload::tx_header(&tcp, req).unwrap();
    // In one buffer: split by the engine. Chained: refused.
    let big = Pool::new(PoolConfig::default().count(4).buf_size(8192)).unwrap();
    let mut p = big.alloc_from(&tcp).unwrap();
    p.set_vnet_hdr(h);
    v.push(p);
    let mut chained = pool.alloc_from(&tcp).unwrap();
    assert!(chained.nb_segs() > 1);
    chained.set_vnet_hdr(h);
    v.push(chained);
    let mut split =
        rtap::wire::gso::split_on(&tcp, &h, rtap::wire::layout::Link::Ethernet).unwrap();
    let mut seg = vec![0u8; 2000];
    while let Some(r) = split.next_into(&mut seg) {
        want.push(seg[..r.unwrap()].to_vec());
    }
    assert_eq!(want.len(), COMBOS.len() + 3);
    let n = v.len();
    assert_eq!(txq.tx_burst(&mut v).unwrap(), n);
    assert!(txq.flush(WAIT));
    let mut seen = Vec::new();
    while let Some(f) = cap.recv_incoming(Duration::from_millis(300)) {
        seen.push(f);
    }
    assert_eq!(
        seen, want,
        "the carried checksums finished, the TSO frame split"
    );
    let k = COMBOS.len() as u64;
    assert_eq!(off.xstat("tx_q0_sw_csum_packets"), Some(k));
    assert_eq!(off.xstat("tx_q0_sw_gso_packets"), Some(1));
    assert_eq!(off.xstat("tx_q0_offload_rejected"), Some(1));
    let st = off.stats().unwrap();
    assert_eq!((st.tx.packets, st.tx.errors), (k + 3, 1));
    drop(txq);
    assert_pool_full(&pool);
    assert_pool_full(&big);
}

backend_tests!(
    carried_headers_on_a_tap_without_one,
    sw_csum_when_offloads_off,
    offload_requests_refused,
    tx_burst_sends_only_prepared_packets,
);
