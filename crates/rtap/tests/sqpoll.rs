//! SQPOLL rings share one kernel SQ thread (IORING_SETUP_ATTACH_WQ): every ring
//! of a port, and every port with the same SQPOLL settings. Its own test binary,
//! one test: it counts the SQ threads of the whole process.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rtap::{Kick, Packet, PacketConfig, Pool, PoolConfig, Port, RingConfig, SqPoll, TapConfig};

/// Kernel SQ polling threads of this process (named `iou-sqp-PID`).
fn sq_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with("iou-sqp"))
        })
        .count()
}

/// [`sq_threads`] once it equals `want`, or after 2 s: a new SQ thread names
/// itself `iou-sqp-PID` when it first runs, a moment after the ring exists.
fn sq_threads_settled(want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let n = sq_threads();
        if n == want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn rings_and_ports_with_the_same_settings_share_one_sq_thread() {
    netns();
    assert_eq!(sq_threads_settled(0), 0);
    let ring = RingConfig::default().sqpoll(Some(SqPoll::new(50)));
    let port = Port::open(TapConfig::new("sqs0").queues(2).ring(ring)).unwrap();
    port.start().unwrap();
    let pool = Pool::new(PoolConfig::default()).unwrap();
    let mut rx: Vec<_> = (0..2).map(|q| port.rx_queue(q, &pool).unwrap()).collect();
    let mut tx: Vec<_> = (0..2).map(|q| port.tx_queue(q).unwrap()).collect();
    let features = rx
        .iter()
        .map(|q| q.ring_features().unwrap().clone())
        .chain(tx.iter().map(|q| q.ring_features().unwrap().clone()));
    for f in features {
        assert!(f.sqpoll && f.sqpoll_shared, "{f:?}");
        // Only rx rings before Linux 6.7 fall back (posted reads, no multishot).
        let expect = usize::from(f.rx_mode.is_some() && !has_read_multishot());
        assert_eq!(f.fallbacks.len(), expect, "{:?}", f.fallbacks);
    }
    // Four rings, one SQ thread (it was one per ring before).
    assert_eq!(
        sq_threads_settled(1),
        1,
        "one SQ thread for the port's four rings"
    );

    // Traffic both ways on both queues through the shared thread.
    let ps = PacketSocket::bind(port.ifindex());
    for (q, txq) in tx.iter_mut().enumerate() {
        let mut out: Vec<Packet> = (0..20)
            .map(|s| {
                pool.alloc_from(&test_frame(300, 100 * q as u32 + s))
                    .unwrap()
            })
            .collect();
        while !out.is_empty() {
            txq.tx_burst(&mut out).unwrap();
        }
        assert!(txq.flush(Duration::from_secs(2)));
    }
    assert_eq!(ps.recv_test_frames(40, Duration::from_secs(2)).len(), 40);
    for s in 0..20 {
        ps.send(&flow_frame(200, s as u16, s)).unwrap();
    }
    let mut got = 0;
    let mut v = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while got < 20 && Instant::now() < deadline {
        for q in rx.iter_mut() {
            q.rx_burst(&mut v, 32).unwrap();
            got += v.iter().filter(|p| flow_of(p.data()).is_some()).count();
            v.clear();
        }
    }
    assert_eq!(got, 20, "rx over both queues");

    // A second port with the same SQPOLL settings joins the same thread; one with
    // other settings gets its own.
    let twin = Port::open(TapConfig::new("sqs1").ring(ring)).unwrap();
    twin.start().unwrap();
    let twin_rx = twin.rx_queue(0, &pool).unwrap();
    let twin_tx = twin.tx_queue(0).unwrap();
    assert!(twin_rx.ring_features().unwrap().sqpoll_shared);
    assert_eq!(
        sq_threads_settled(1),
        1,
        "two ports, six rings, one SQ thread"
    );
    let other_ring = RingConfig::default().sqpoll(Some(SqPoll::new(60)));
    let other = Port::open(TapConfig::new("sqs2").ring(other_ring)).unwrap();
    other.start().unwrap();
    let other_tx = other.tx_queue(0).unwrap();
    assert_eq!(
        sq_threads_settled(2),
        2,
        "other SQPOLL settings, another thread"
    );
    drop((twin_rx, twin_tx, other_tx));
    twin.stop().unwrap();
    other.stop().unwrap();
    drop((twin, other));

    // AF_PACKET ports kick their tx rings through the same thread: two ports,
    // five queues, every kick ring attached to it.
    ip(&[
        "link", "add", "sqpa", "type", "veth", "peer", "name", "sqpb",
    ]);
    let cap = PacketSocket::bind(if_index("sqpb").unwrap());
    let mut packet_ports = Vec::new();
    let mut packet_tx = Vec::new();
    for (iface, queues) in [("sqpa", 3), ("sqpb", 2)] {
        let cfg = PacketConfig::new(iface)
            .queues(queues)
            .kick(Kick::Uring)
            .sqpoll(SqPoll::new(50));
        let p = Port::open(cfg).unwrap();
        p.start().unwrap();
        for q in 0..queues {
            let txq = p.tx_queue(q).unwrap();
            assert!(txq.ring_features().unwrap().sqpoll_shared);
            packet_tx.push((iface, txq));
        }
        packet_ports.push(p);
    }
    assert_eq!(
        sq_threads_settled(1),
        1,
        "tap and packet ports, one SQ thread"
    );
    // A veth drops what is sent before both ends are operational.
    wait_oper_up("sqpa");
    wait_oper_up("sqpb");
    let mut sent = 0;
    for (i, (iface, txq)) in packet_tx.iter_mut().enumerate() {
        if *iface == "sqpa" {
            let f = pool.alloc_from(&test_frame(100, 500 + i as u32)).unwrap();
            tx_all(txq, vec![f]);
            assert!(txq.flush(WAIT));
            sent += 1;
        }
    }
    assert_eq!(
        cap.recv_test_frames(sent, WAIT).len(),
        sent,
        "kicked through the SQ thread"
    );
    drop(packet_tx);
    drop(packet_ports);

    drop((rx, tx));
    assert_pool_full(&pool);
    port.stop().unwrap();
    drop(port);
    // The thread goes with the last ring.
    assert_eq!(
        sq_threads_settled(0),
        0,
        "the SQ thread ends with the port's rings"
    );
}
