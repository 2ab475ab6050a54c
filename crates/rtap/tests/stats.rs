//! Counters against known traffic, for both backends: exact packet and byte
//! counts in each direction, per-queue values summing to the totals,
//! `reset_stats`, and `imissed` (frames the kernel dropped because the
//! application did not read).

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use rtap::*;

const SIZES: [usize; 4] = [60, 100, 1000, 1514];

#[track_caller]
fn assert_sums(st: &PortStats) {
    let sum = |qs: &[QueueStats]| {
        qs.iter().fold(QueueStats::default(), |a, q| QueueStats {
            packets: a.packets + q.packets,
            bytes: a.bytes + q.bytes,
            errors: a.errors + q.errors,
            nombuf: a.nombuf + q.nombuf,
        })
    };
    assert_eq!(st.rx, sum(&st.rx_queues), "rx total != sum of queues");
    assert_eq!(st.tx, sum(&st.tx_queues), "tx total != sum of queues");
}

fn exact_counts_and_reset(backend: BackendKind) {
    netns();
    let port = started("ststat0", backend, 2);
    let pool = pool();
    let inj = PacketSocket::injector(port.ifindex());
    let cap = PacketSocket::bind(port.ifindex());
    let mut rxqs: Vec<RxQueue> = (0..2).map(|q| port.rx_queue(q, &pool).unwrap()).collect();
    let mut txqs: Vec<TxQueue> = (0..2).map(|q| port.tx_queue(q).unwrap()).collect();
    assert_eq!(
        port.stats().unwrap(),
        zero_stats(2),
        "a fresh port counts nothing"
    );

    // Rx: 300 frames of several sizes and 128 flows, so both queues get some.
    let rx_frames: Vec<Vec<u8>> = (0..300u32)
        .map(|i| flow_frame(SIZES[i as usize % 4], (i % 128) as u16, i))
        .collect();
    let mut per = vec![Vec::new(), Vec::new()];
    assert_eq!(
        inject_and_receive(&inj, &rx_frames, &mut rxqs, &mut per),
        300
    );
    // Tx: 60 frames on queue 0, 40 on queue 1.
    let tx_sizes = |q: u32, i: u32| SIZES[((q + i) % 4) as usize];
    for (q, n) in [(0u32, 60u32), (1, 40)] {
        let pkts = (0..n)
            .map(|i| {
                pool.alloc_from(&test_frame(tx_sizes(q, i), q * 1000 + i))
                    .unwrap()
            })
            .collect();
        tx_all(&mut txqs[q as usize], pkts);
        assert!(txqs[q as usize].flush(WAIT));
    }
    assert_eq!(cap.recv_ours(100, WAIT).len(), 100);

    let st = port.stats().unwrap();
    assert_sums(&st);
    assert_eq!(st.rx.packets, 300);
    assert_eq!(
        st.rx.bytes,
        rx_frames.iter().map(|f| f.len() as u64).sum::<u64>()
    );
    for q in 0..2 {
        let bytes: u64 = per[q].iter().map(|p| p.len() as u64).sum();
        assert_eq!(st.rx_queues[q].packets, per[q].len() as u64, "rx queue {q}");
        assert_eq!(st.rx_queues[q].bytes, bytes, "rx queue {q}");
        assert_eq!(rxqs[q].stats(), st.rx_queues[q], "queue view vs port view");
    }
    assert_eq!(st.tx_queues[0].packets, 60);
    assert_eq!(st.tx_queues[1].packets, 40);
    for (q, n) in [(0u32, 60u32), (1, 40)] {
        let bytes: u64 = (0..n).map(|i| tx_sizes(q, i) as u64).sum();
        assert_eq!(st.tx_queues[q as usize].bytes, bytes, "tx queue {q}");
    }
    assert_eq!((st.rx.errors, st.rx.nombuf, st.tx.errors), (0, 0, 0));
    assert_eq!(st.imissed, 0);
    drop(per);

    port.reset_stats().unwrap();
    assert_eq!(
        port.stats().unwrap(),
        zero_stats(2),
        "reset_stats zeroes all"
    );

    // After a reset only new traffic counts; queue handles keep their own totals.
    let more: Vec<Vec<u8>> = (0..10u32).map(|i| flow_frame(200, 7, 1000 + i)).collect();
    let mut per = vec![Vec::new(), Vec::new()];
    assert_eq!(inject_and_receive(&inj, &more, &mut rxqs, &mut per), 10);
    tx_all(
        &mut txqs[1],
        vec![pool.alloc_from(&test_frame(500, 9999)).unwrap()],
    );
    assert!(txqs[1].flush(WAIT));
    let st = port.stats().unwrap();
    assert_sums(&st);
    assert_eq!((st.rx.packets, st.rx.bytes), (10, 2000));
    assert_eq!((st.tx.packets, st.tx.bytes), (1, 500));
    assert_eq!((st.tx_queues[0].packets, st.tx_queues[1].packets), (0, 1));
    let total_rx: u64 = rxqs.iter().map(|q| q.stats().packets).sum();
    assert_eq!(total_rx, 310, "RxQueue::stats is not reset");
    drop(per);
    drop((rxqs, txqs));
    assert_pool_full(&pool);
}

fn zero_stats(queues: usize) -> PortStats {
    PortStats {
        rx_queues: vec![QueueStats::default(); queues],
        tx_queues: vec![QueueStats::default(); queues],
        ..PortStats::default()
    }
}

/// Frames the application does not read pile up in the tap's queue (shortened to
/// 16 here) and, once it is full, the kernel drops them: `imissed` counts each
/// one, and every injected frame is either received later or counted there.
fn imissed_counts_unread_frames(backend: BackendKind) {
    netns();
    let port = started("stmiss0", backend, 1);
    let pool = pool();
    let inj = PacketSocket::injector(port.ifindex());
    // Open the queue (io_uring posts its reads now) but never call rx_burst.
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    ip(&["link", "set", "dev", "stmiss0", "txqueuelen", "16"]);
    const N: u32 = 2000;
    flood(&inj, (0..N).map(|i| test_frame(100, i)));
    let st = port.stats().unwrap();
    assert!(st.imissed > 0, "no drop counted: {st:?}");
    // 16 frames fit the tap queue; the 256 io_uring reads posted may take more.
    let held = if backend == BackendKind::Uring {
        16 + 256
    } else {
        16
    };
    assert!(
        st.imissed >= (N - held) as u64,
        "imissed {} too small",
        st.imissed
    );
    assert_eq!(st.rx.packets, 0, "nothing was read yet");

    // Now read: every injected frame is either received (once) or counted in
    // imissed. (Which ones were kept depends on when posted reads took frames.)
    let kept = N as usize - st.imissed as usize;
    let got = rx_test_frames(&mut rxq, kept + 1, Duration::from_millis(300));
    let mut seqs: Vec<u32> = got.iter().map(|p| test_seq(p.data()).unwrap()).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), got.len(), "a frame was received twice");
    assert_eq!(got.len(), kept, "received + imissed != injected");
    if backend == BackendKind::Rw {
        // Nothing read before the flood ended: the tap kept the oldest 16.
        assert_eq!(seqs, (0..16).collect::<Vec<_>>());
    }
    let st2 = port.stats().unwrap();
    assert_eq!(st2.imissed, st.imissed, "reading does not add drops");
    assert_eq!(st2.rx.packets, kept as u64);
    drop(got);

    port.reset_stats().unwrap();
    assert_eq!(
        port.stats().unwrap().imissed,
        0,
        "reset_stats zeroes imissed"
    );
    drop(rxq);
    assert_pool_full(&pool);
}

backend_tests!(exact_counts_and_reset, imissed_counts_unread_frames);
