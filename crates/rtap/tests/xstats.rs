//! Every extended statistic by exact value: the names of a multi-queue port,
//! values per queue for traffic of every size class and cast in both
//! directions with every kind of tx request, alloc failures and truncated
//! frames, and `reset_stats` zeroing them all.

#[macro_use]
mod common;

use std::time::Duration;

use common::offload::*;
use common::*;
use rtap::*;

/// Every xstat name of a queue, in the port's order.
fn names_of_queue(q: u16) -> Vec<String> {
    let rx = SIZES.iter().chain(&CASTS).chain(&[
        "lro_packets",
        "csum_good",
        "csum_partial",
        "csum_unknown",
        "csum_bad",
        "alloc_failures",
        "truncated",
    ]);
    let tx = SIZES.iter().chain(&CASTS).chain(&[
        "tso_packets",
        "uso_packets",
        "csum_offload_packets",
        "multiseg_packets",
        "sw_csum_packets",
        "offload_rejected",
        "sw_gso_packets",
    ]);
    rx.map(|n| format!("rx_q{q}_{n}"))
        .chain(tx.map(|n| format!("tx_q{q}_{n}")))
        .collect()
}

/// Test 6: names of a 2-queue port, exact values per queue for traffic of every
/// size class and cast in both directions with every kind of tx request, and
/// `reset_stats` zeroing them all.
fn xstats_names_values_and_reset(backend: BackendKind) {
    netns();
    let port = open(
        TapConfig::new("oxs0")
            .offloads(Offloads::ALL)
            .backend(backend)
            .queues(2),
    );
    port.start().unwrap();
    // Injecting frames over 1518 bytes needs the MTU (rx takes 64 KiB frames
    // anyway, TSO being on).
    ip(&["link", "set", "dev", "oxs0", "mtu", "9000"]);
    let names: Vec<String> = port.xstats().into_iter().map(|x| x.name).collect();
    let want: Vec<String> = (0..2).flat_map(names_of_queue).collect();
    assert_eq!(names, want);
    assert_eq!(want.len(), 2 * (17 + 17));
    assert!(port.xstats().iter().all(|x| x.value == 0), "fresh port");

    let pool = pool();
    let spool = small_pool();
    let inj = PacketSocket::injector(port.ifindex());
    let mut rxqs: Vec<RxQueue> = (0..2).map(|q| port.rx_queue(q, &pool).unwrap()).collect();
    let mut txqs: Vec<TxQueue> = (0..2).map(|q| port.tx_queue(q).unwrap()).collect();

    // Rx: 7 sizes x 3 casts x 16 flows.
    let dsts = [[0x02, 0, 0, 0, 0, 2], [0x01, 0, 0x5e, 0, 0, 7], [0xff; 6]];
    let mut frames = Vec::new();
    for (i, len) in [60usize, 100, 200, 300, 600, 1200, 2000].iter().enumerate() {
        for (j, dst) in dsts.iter().enumerate() {
            for flow in 0..16u16 {
                let seq = (i * 100 + j * 20) as u32 + u32::from(flow);
                let mut f = flow_frame(*len, flow, seq);
                f[..6].copy_from_slice(dst);
                frames.push(f);
            }
        }
    }
    let mut per = vec![Vec::new(), Vec::new()];
    assert_eq!(
        inject_and_receive(&inj, &frames, &mut rxqs, &mut per),
        frames.len()
    );
    for (q, pkts) in per.iter().enumerate() {
        assert!(!pkts.is_empty(), "queue {q} received nothing");
        let mut t = Tally::default();
        for p in pkts {
            t.rx(p);
        }
        assert_eq!(t.unknown, t.total(), "injected frames carry no flags");
        assert_rx_xstats(&port, q as u16, &t);
    }
    drop(per);

    // Tx: queue 0 gets every kind of request, queue 1 a few plain frames and one
    // checksum request.
    let mac = [0x02, 0, 0, 0, 0, 0x77];
    let mut t0 = Tally::default();
    let mut pkts = Vec::new();
    for (k, len) in [60usize, 100, 200, 300, 600, 1200, 2000].iter().enumerate() {
        let mut f = test_frame(*len, k as u32);
        f[..6].copy_from_slice(&dsts[k % 3]);
        t0.tx(&f, 1);
        pkts.push(pool.alloc_from(&f).unwrap());
    }
    let chain = test_frame(3000, 99);
    let p = spool.alloc_from(&chain).unwrap();
    t0.tx(&chain, p.nb_segs());
    pkts.push(p);
    let csum = l4_frame(mac, false, false, &payload(500, 3));
    t0.tx(&csum, 1);
    t0.csum_offload += 1;
    pkts.push(with_csum(pool.alloc_from(&csum).unwrap()));
    for (tcp, v6) in [(true, false), (false, true)] {
        let f = l4_frame(mac, v6, tcp, &payload(20_000, 4));
        let mut p = pool.alloc_from(&f).unwrap();
        t0.tx(&f, p.nb_segs());
        t0.csum_offload += 1;
        let gso = if tcp {
            t0.tso += 1;
            Gso::Tcp {
                mss: 1000,
                ecn: false,
            }
        } else {
            t0.uso += 1;
            Gso::Udp { size: 1000 }
        };
        p.set_tx_offload(TxRequest {
            l4_csum: false,
            gso,
        });
        pkts.push(p);
    }
    let mut rej = pool.alloc_from(&csum).unwrap();
    rej.set_tx_offload(TxRequest {
        l4_csum: true,
        gso: Gso::Tcp {
            mss: 100,
            ecn: true,
        },
    });
    pkts.push(rej);
    t0.rejected += 1;
    tx_all(&mut txqs[0], pkts);
    let mut t1 = Tally::default();
    let mut pkts = Vec::new();
    for k in 0..5 {
        let f = test_frame(100, 200 + k);
        t1.tx(&f, 1);
        pkts.push(pool.alloc_from(&f).unwrap());
    }
    let f = l4_frame(mac, true, true, &payload(64, 5));
    t1.tx(&f, 1);
    t1.csum_offload += 1;
    pkts.push(with_csum(pool.alloc_from(&f).unwrap()));
    tx_all(&mut txqs[1], pkts);
    for txq in &mut txqs {
        assert!(txq.flush(WAIT));
    }
    assert_eq!(t0.multiseg, 3, "the 3000-byte chain and both GSO frames");
    assert_eq!(t0.size[6], 4);
    assert_eq!(t0.cast, [6, 2, 3]);
    assert_tx_xstats(&port, 0, &t0);
    assert_tx_xstats(&port, 1, &t1);
    let st = port.stats().unwrap();
    // The rejected request; before Linux 6.2 also the USO frame, which the
    // kernel refuses (the tap does not know UDP segmentation there).
    let uso_refused = u64::from(!has_uso());
    assert_eq!(st.tx_queues[0].errors, 1 + uso_refused);
    assert_eq!(st.tx_queues[0].packets, t0.total() - uso_refused);

    // Reset zeroes everything; later traffic counts from zero.
    port.reset_stats().unwrap();
    assert!(
        port.xstats().iter().all(|x| x.value == 0),
        "{:?}",
        port.xstats()
    );
    tx_all(
        &mut txqs[1],
        vec![pool.alloc_from(&test_frame(70, 1)).unwrap()],
    );
    assert!(txqs[1].flush(WAIT));
    let nonzero: Vec<(String, u64)> = port
        .xstats()
        .into_iter()
        .filter(|x| x.value != 0)
        .map(|x| (x.name, x.value))
        .collect();
    assert_eq!(
        nonzero,
        vec![
            ("tx_q1_size_65_127_packets".to_string(), 1),
            ("tx_q1_broadcast_packets".to_string(), 1)
        ]
    );
    drop((rxqs, txqs));
    assert_pool_full(&pool);
    assert_pool_full(&spool);
}

/// Test 6 (continued): `rx_q0_alloc_failures` and `rx_q0_truncated` by exact
/// value, and zeroed by a reset.
fn xstats_alloc_failures_and_truncated(backend: BackendKind) {
    netns();
    let ring = RingConfig::default().rx_posted(16);
    let mut cfg = TapConfig::new("oxa0").backend(backend).ring(ring);
    cfg.port.max_frame = 1518;
    let port = open(cfg);
    port.start().unwrap();
    // io_uring lends 16 buffers to the kernel; read/write lends none for long.
    let lent = if backend == BackendKind::Uring { 16 } else { 0 };
    let pool = Pool::new(PoolConfig::default().count(lent + 8)).unwrap();
    let inj = PacketSocket::injector(port.ifindex());
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    for i in 0..40 {
        inj.send(&test_frame(100, i)).unwrap();
    }
    let hoard = rx_test_frames(&mut rxq, 40, Duration::from_millis(500));
    assert_eq!(hoard.len(), 8);
    drop(hoard);
    // A frame over max_frame, once the MTU lets it through.
    ip(&["link", "set", "dev", "oxa0", "mtu", "9000"]);
    inj.send(&test_frame(3000, 100)).unwrap();
    inj.send(&test_frame(100, 101)).unwrap();
    let got = rx_test_frames(&mut rxq, 1, WAIT);
    assert_eq!(got.len(), 1);
    assert_eq!(test_seq(got[0].data()), Some(101));
    drop(got);
    let mut t = Tally::default();
    t.size[1] = 9;
    t.cast[2] = 9;
    t.unknown = 9;
    let want = t.rx_names(0, 32, 1);
    assert_eq!(current(&port, &want), want);
    let st = port.stats().unwrap();
    assert_eq!((st.rx.packets, st.rx.nombuf, st.rx.errors), (9, 32, 1));
    port.reset_stats().unwrap();
    let want = Tally::default().rx_names(0, 0, 0);
    assert_eq!(current(&port, &want), want);
    drop(rxq);
    assert_pool_full(&pool);
}

backend_tests!(
    xstats_names_values_and_reset,
    xstats_alloc_failures_and_truncated,
);
