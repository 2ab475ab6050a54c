//! SQPOLL rings share one kernel SQ thread (IORING_SETUP_ATTACH_WQ): every ring
//! of a port, and every port with the same SQPOLL settings. Its own test binary,
//! one test: it counts the SQ threads of the whole process.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rtap::{Packet, Pool, PoolConfig, Port, RingConfig, SqPoll, TapConfig};

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

#[test]
fn rings_and_ports_with_the_same_settings_share_one_sq_thread() {
    netns();
    assert_eq!(sq_threads(), 0);
    let ring = RingConfig::default().sqpoll(Some(SqPoll::new(50)));
    let mut port = Port::open(TapConfig::new("sqs0").queues(2).ring(ring)).unwrap();
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
    assert_eq!(sq_threads(), 1, "one SQ thread for the port's four rings");

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
    let mut twin = Port::open(TapConfig::new("sqs1").ring(ring)).unwrap();
    twin.start().unwrap();
    let twin_rx = twin.rx_queue(0, &pool).unwrap();
    let twin_tx = twin.tx_queue(0).unwrap();
    assert!(twin_rx.ring_features().unwrap().sqpoll_shared);
    assert_eq!(sq_threads(), 1, "two ports, six rings, one SQ thread");
    let other_ring = RingConfig::default().sqpoll(Some(SqPoll::new(60)));
    let mut other = Port::open(TapConfig::new("sqs2").ring(other_ring)).unwrap();
    other.start().unwrap();
    let other_tx = other.tx_queue(0).unwrap();
    assert_eq!(sq_threads(), 2, "other SQPOLL settings, another thread");
    drop((twin_rx, twin_tx, other_tx));
    twin.stop().unwrap();
    other.stop().unwrap();
    drop((twin, other));

    drop((rx, tx));
    assert_pool_full(&pool);
    port.stop().unwrap();
    drop(port);
    // The thread goes with the last ring.
    let deadline = Instant::now() + Duration::from_secs(3);
    while sq_threads() != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(sq_threads(), 0, "the SQ thread ends with the port's rings");
}
