//! Hostile conditions and resource accounting, for both backends: the interface
//! deleted under running queues, thousands of packets through a finite pool in
//! each direction with every buffer coming back, queues dropped with work still
//! in the kernel, and the port dropped before its queues.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::*;
use rtap::*;

/// `ip link del` while queues run: every rx and tx queue reports
/// `DeviceVanished` within a bounded time, keeps reporting it, nothing panics or
/// hangs, and dropping everything afterwards returns every buffer.
fn interface_deleted_while_running(backend: BackendKind) {
    netns();
    let port = started("rbdel0", backend, 2);
    let pool = pool();
    let inj = PacketSocket::injector(port.ifindex());
    let mut rxqs: Vec<RxQueue> = (0..2).map(|q| port.rx_queue(q, &pool).unwrap()).collect();
    let mut txqs: Vec<TxQueue> = (0..2).map(|q| port.tx_queue(q).unwrap()).collect();
    // Traffic first, so the queues are mid-stream.
    let frames: Vec<Vec<u8>> = (0..64u32).map(|i| flow_frame(100, i as u16, i)).collect();
    let mut per = vec![Vec::new(), Vec::new()];
    assert_eq!(inject_and_receive(&inj, &frames, &mut rxqs, &mut per), 64);
    for txq in &mut txqs {
        let pkts = (0..8).map(|i| pool.alloc_from(&test_frame(100, i)).unwrap());
        tx_all(txq, pkts.collect());
    }
    // Hold some packets across the deletion: they stay valid.
    let held: Vec<Packet> = per.into_iter().flatten().collect();

    ip(&["link", "del", "rbdel0"]);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(3);
    let mut rx_err: Vec<Option<Error>> = (0..2).map(|_| None).collect();
    let mut tx_err: Vec<Option<Error>> = (0..2).map(|_| None).collect();
    let mut burst = Vec::new();
    while rx_err.iter().chain(&tx_err).any(Option::is_none) {
        assert!(
            Instant::now() < deadline,
            "queues did not report the deletion within 3 s: rx {rx_err:?} tx {tx_err:?}"
        );
        for (q, rxq) in rxqs.iter_mut().enumerate() {
            if rx_err[q].is_none() {
                burst.clear();
                if let Err(e) = rxq.rx_burst(&mut burst, 32) {
                    rx_err[q] = Some(e);
                }
            }
        }
        for (q, txq) in txqs.iter_mut().enumerate() {
            if tx_err[q].is_none() {
                let mut pkts = vec![pool.alloc_from(&test_frame(100, 500)).unwrap()];
                if let Err(e) = txq.tx_burst(&mut pkts) {
                    tx_err[q] = Some(e);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for e in rx_err.iter().chain(&tx_err).flatten() {
        assert!(
            matches!(e, Error::DeviceVanished { name, .. } if name == "rbdel0"),
            "{e:?}"
        );
    }
    // Errors are sticky and immediate.
    for rxq in &mut rxqs {
        assert!(matches!(
            rxq.rx_burst(&mut burst, 32),
            Err(Error::DeviceVanished { .. })
        ));
    }
    for txq in &mut txqs {
        let mut pkts = vec![pool.alloc_from(&test_frame(100, 600)).unwrap()];
        assert!(matches!(
            txq.tx_burst(&mut pkts),
            Err(Error::DeviceVanished { .. })
        ));
        drop(pkts);
        txq.flush(Duration::from_millis(100));
    }
    assert!(burst.is_empty());
    // Packets received before the deletion are intact.
    assert_eq!(held.len(), 64);
    for p in &held {
        let (flow, seq) = flow_of(p.data()).unwrap();
        assert_eq!(p.to_vec(), flow_frame(100, flow, seq));
    }
    drop(held);

    // Teardown works and is quick.
    let t = Instant::now();
    drop(rxqs);
    drop(txqs);
    assert_pool_full(&pool);
    // The counters outlive the interface: what was received before is there.
    let st = port.stats().expect("stats of a vanished port");
    assert!(st.rx.packets >= 64, "{st:?}");
    assert!(matches!(port.stop(), Err(Error::DeviceVanished { .. })));
    drop(port);
    assert!(t.elapsed() < Duration::from_secs(1), "teardown hung");
    assert!(!if_exists("rbdel0"));
}

/// Thousands of received frames through a 4096-buffer pool: every buffer is
/// recycled, and with io_uring the only buffers out are the posted reads.
fn rx_thousands_returns_every_buffer(backend: BackendKind) {
    netns();
    let port = started("rbrx0", backend, 2);
    let pool = pool();
    let inj = PacketSocket::injector(port.ifindex());
    let mut rxqs: Vec<RxQueue> = (0..2).map(|q| port.rx_queue(q, &pool).unwrap()).collect();
    let sizes = [60usize, 100, 1000, 1514];
    let make = |i: u32| flow_frame(sizes[i as usize % 4], (i % 200) as u16, i);
    let mut bytes = 0u64;
    let got = stream_through(&inj, &mut rxqs, 6000, make, |p| {
        let (_, seq) = flow_of(p.data()).unwrap();
        assert_eq!(p.to_vec(), make(seq));
        bytes += p.len() as u64;
    });
    assert_eq!(got, 6000);
    if backend == BackendKind::Uring {
        let posted: usize = rxqs.iter().map(RxQueue::posted).sum();
        assert_eq!(posted, 2 * 256);
        assert_eq!(pool.available() + posted, pool.capacity() as usize);
    }
    let st = port.stats().unwrap();
    assert_eq!((st.rx.packets, st.rx.bytes), (6000, bytes));
    assert_eq!((st.rx.nombuf, st.rx.errors, st.imissed), (0, 0, 0));
    drop(rxqs);
    port.stop().unwrap();
    assert_pool_full(&pool);
}

/// 10 000 packets sent in bursts of 32: all complete, all counted, and after
/// flush and drop the pool is full again.
fn tx_ten_thousand_returns_every_buffer(backend: BackendKind) {
    netns();
    let port = started("rbtx0", backend, 1);
    let pool = pool();
    let mut txq = port.tx_queue(0).unwrap();
    let mut bytes = 0u64;
    for b in 0..10_000u32 / 32 + 1 {
        let n = (10_000 - b * 32).min(32);
        let pkts: Vec<Packet> = (0..n)
            .map(|i| {
                let f = test_frame(60 + ((b * 32 + i) % 1455) as usize, b * 32 + i);
                bytes += f.len() as u64;
                pool.alloc_from(&f).unwrap()
            })
            .collect();
        tx_all(&mut txq, pkts);
    }
    assert!(txq.flush(WAIT), "tx did not complete");
    assert_eq!(txq.in_flight(), 0);
    let st = port.stats().unwrap();
    assert_eq!(
        (st.tx.packets, st.tx.bytes, st.tx.errors),
        (10_000, bytes, 0)
    );
    assert_pool_full(&pool);
    drop(txq);
    port.stop().unwrap();
    assert_pool_full(&pool);
}

/// Queues dropped while the kernel still holds their work: unread frames in
/// completed reads, and writes never flushed. Every buffer comes back.
fn drop_queues_with_work_pending(backend: BackendKind) {
    netns();
    let port = started("rbpend0", backend, 1);
    let pool = pool();
    let inj = PacketSocket::injector(port.ifindex());
    let rxq = port.rx_queue(0, &pool).unwrap();
    let mut txq = port.tx_queue(0).unwrap();
    for i in 0..100 {
        inj.send(&test_frame(1000, i)).unwrap();
    }
    let mut pkts: Vec<Packet> = (0..500)
        .map(|i| pool.alloc_from(&test_frame(1000, i)).unwrap())
        .collect();
    let n = txq.tx_burst(&mut pkts).unwrap();
    assert!(n > 0);
    drop(pkts);
    let t = Instant::now();
    drop(txq);
    drop(rxq);
    assert!(t.elapsed() < Duration::from_secs(1), "queue teardown hung");
    assert_pool_full(&pool);
    port.stop().unwrap();
    // The queue can be opened again and works. (Frames the kernel still held
    // from before may come first: the tap queue itself outlives stop/start.)
    port.start().unwrap();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    let marker = test_frame(100, 7777);
    inj.send(&marker).unwrap();
    let deadline = Instant::now() + WAIT;
    let mut burst = Vec::new();
    while !burst.iter().any(|p: &Packet| p.data() == &marker[..]) {
        assert!(
            Instant::now() < deadline,
            "queue reopened after teardown is dead"
        );
        burst.clear();
        rxq.rx_burst(&mut burst, 64).unwrap();
    }
    drop(burst);
    drop(rxq);
    port.stop().unwrap();
    assert_pool_full(&pool);
}

/// Dropping the port while queue handles live is allowed: the queues keep
/// working, the interface lives until the last queue is gone, and nothing leaks.
fn port_dropped_before_queues(backend: BackendKind) {
    netns();
    let port = started("rbord0", backend, 1);
    let pool = pool();
    let cap = PacketSocket::bind(port.ifindex());
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    let mut txq = port.tx_queue(0).unwrap();
    drop(port);
    assert!(if_exists("rbord0"), "queues still hold the interface");
    cap.send(&test_frame(100, 1)).unwrap();
    let got = rx_test_frames(&mut rxq, 1, WAIT);
    assert_eq!(got.len(), 1);
    drop(got);
    tx_all(
        &mut txq,
        vec![pool.alloc_from(&test_frame(100, 2)).unwrap()],
    );
    assert!(txq.flush(WAIT));
    assert_eq!(cap.recv_ours(1, WAIT), vec![test_frame(100, 2)]);
    drop(rxq);
    drop(txq);
    assert_pool_full(&pool);
    assert_gone_soon("rbord0");
}

backend_tests!(
    interface_deleted_while_running,
    rx_thousands_returns_every_buffer,
    tx_ten_thousand_returns_every_buffer,
    drop_queues_with_work_pending,
    port_dropped_before_queues,
);
