//! Both io_uring rx strategies (posted reads, multishot over a provided buffer
//! ring) deliver the same frames and give every buffer back.

mod common;
use common::*;
use rtap::*;
use std::time::Duration;

fn port_with(mode: RxMode, name: &str) -> TapPort {
    let ring = RingConfig {
        rx_mode: mode,
        rx_posted: 64,
        ..RingConfig::default()
    };
    let mut port = TapPort::open(TapConfig::new(name).ring(ring)).unwrap();
    port.start().unwrap();
    port
}

fn receives_and_recycles(mode: RxMode) {
    netns();
    let mut port = port_with(mode, "rxm%d");
    let pool = Pool::new(PoolConfig {
        count: 256,
        ..PoolConfig::default()
    })
    .unwrap();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    let ps = PacketSocket::bind(port.ifindex());
    // More frames than the ring holds, so buffers must be recycled to keep going.
    let sizes = [60usize, 61, 128, 1000, 1514];
    let total = 500u32;
    let mut got = Vec::new();
    for i in 0..total {
        ps.send(&test_frame(sizes[i as usize % sizes.len()], i))
            .unwrap();
        if i % 16 == 15 {
            got.extend(
                rx_test_frames(&mut rxq, 16, Duration::from_secs(2))
                    .into_iter()
                    .map(|p| p.to_vec()),
            );
        }
    }
    got.extend(
        rx_test_frames(&mut rxq, total as usize - got.len(), Duration::from_secs(2))
            .into_iter()
            .map(|p| p.to_vec()),
    );
    assert_eq!(
        got.len(),
        total as usize,
        "{mode:?}: every injected frame arrives"
    );
    for f in &got {
        let seq = test_seq(f).unwrap();
        assert_eq!(
            f,
            &test_frame(sizes[seq as usize % sizes.len()], seq),
            "{mode:?}: frame {seq} intact"
        );
    }
    drop(rxq);
    assert_eq!(
        pool.available(),
        pool.capacity() as usize,
        "{mode:?}: pool full after the queue is dropped"
    );
    port.stop().unwrap();
}

#[test]
fn posted_reads_receive_and_recycle() {
    receives_and_recycles(RxMode::Posted);
}

#[test]
fn multishot_receives_and_recycles() {
    receives_and_recycles(RxMode::Multishot);
}

#[test]
fn multishot_counts_nombuf_when_the_application_hoards_packets() {
    netns();
    let port = port_with(RxMode::Multishot, "rxh%d");
    // 64 buffers in the ring, 8 spare: hoarding packets empties the pool.
    let pool = Pool::new(PoolConfig {
        count: 72,
        ..PoolConfig::default()
    })
    .unwrap();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    let ps = PacketSocket::bind(port.ifindex());
    let mut hoard = Vec::new();
    for i in 0..40 {
        ps.send(&test_frame(100, i)).unwrap();
    }
    hoard.extend(rx_test_frames(&mut rxq, 40, Duration::from_millis(500)));
    assert!(
        !hoard.is_empty() && hoard.len() <= 8,
        "at most the 8 spare buffers can be handed out, got {}",
        hoard.len()
    );
    let st = rxq.stats();
    assert!(
        st.nombuf > 0,
        "frames dropped for lack of buffers are counted: {st:?}"
    );
    drop(hoard);
    // Once packets are freed the queue delivers again.
    ps.send(&test_frame(100, 1000)).unwrap();
    let again = rx_test_frames(&mut rxq, 1, Duration::from_secs(2));
    assert_eq!(again.len(), 1);
    drop(again);
    drop(rxq);
    assert_eq!(pool.available(), 72);
}

#[test]
fn multishot_refuses_frames_larger_than_a_buffer() {
    netns();
    let ring = RingConfig {
        rx_mode: RxMode::Multishot,
        rx_posted: 16,
        ..RingConfig::default()
    };
    let mut cfg = TapConfig::new("rxb%d").ring(ring);
    cfg.max_frame = 9018;
    let mut port = TapPort::open(cfg).unwrap();
    port.start().unwrap();
    let pool = Pool::new(PoolConfig::default()).unwrap();
    let err = port
        .rx_queue(0, &pool)
        .err()
        .expect("a 9018-byte frame does not fit a 2 KiB buffer");
    assert!(matches!(err, Error::Config(_)), "{err}");
    assert_eq!(pool.available(), pool.capacity() as usize);
}

/// Every ring option combination moves traffic both ways, and the queue reports
/// the options actually in effect.
#[test]
fn ring_options_move_traffic_and_are_reported() {
    netns();
    let variants = [
        RingConfig {
            sqpoll: Some(SqPoll {
                idle_ms: 50,
                cpu: Some(0),
            }),
            ..RingConfig::default()
        },
        RingConfig {
            taskrun: TaskRun::Defer,
            ..RingConfig::default()
        },
        RingConfig {
            taskrun: TaskRun::Default,
            single_issuer: false,
            ..RingConfig::default()
        },
        RingConfig {
            fixed_files: false,
            rx_mode: RxMode::Posted,
            ..RingConfig::default()
        },
    ];
    for (i, ring) in variants.iter().enumerate() {
        let mut port = TapPort::open(TapConfig::new(format!("ro{i}")).ring(*ring)).unwrap();
        port.start().unwrap();
        let pool = Pool::new(PoolConfig::default()).unwrap();
        let mut rxq = port.rx_queue(0, &pool).unwrap();
        let mut txq = port.tx_queue(0).unwrap();
        for f in [rxq.ring_features().unwrap(), txq.ring_features().unwrap()] {
            assert!(
                f.fallbacks.is_empty(),
                "variant {i}: this kernel supports it all: {:?}",
                f.fallbacks
            );
            assert_eq!(f.sqpoll, ring.sqpoll.is_some(), "variant {i}");
            let taskrun = if ring.sqpoll.is_some() {
                TaskRun::Default
            } else {
                ring.taskrun
            };
            assert_eq!(f.taskrun, taskrun, "variant {i}");
            assert_eq!(f.fixed_file, ring.fixed_files, "variant {i}");
            assert_eq!(f.single_issuer, ring.single_issuer, "variant {i}");
        }
        let ps = PacketSocket::bind(port.ifindex());
        for s in 0..20 {
            ps.send(&test_frame(200, s)).unwrap();
        }
        let got = rx_test_frames(&mut rxq, 20, Duration::from_secs(2));
        assert_eq!(got.len(), 20, "variant {i}: rx");
        let mut out: Vec<Packet> = (0..20)
            .map(|s| pool.alloc_from(&test_frame(300, 100 + s)).unwrap())
            .collect();
        while !out.is_empty() {
            txq.tx_burst(&mut out).unwrap();
        }
        assert!(
            txq.flush(Duration::from_secs(2)),
            "variant {i}: tx completes"
        );
        let cap = ps.recv_test_frames(20, Duration::from_secs(2));
        assert_eq!(cap.len(), 20, "variant {i}: tx captured");
        assert_eq!(txq.stats().packets, 20);
        drop((got, rxq, txq));
        assert_eq!(
            pool.available(),
            pool.capacity() as usize,
            "variant {i}: pool full"
        );
        port.stop().unwrap();
    }
}
