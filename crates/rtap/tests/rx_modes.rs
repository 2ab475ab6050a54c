//! Both io_uring rx strategies (posted reads, multishot over a provided buffer
//! ring) deliver the same frames and give every buffer back. On kernels without
//! multishot read (before 6.7) `Auto` falls back to posted reads and says why,
//! and an explicit `Multishot` is refused with a typed error.

mod common;
use common::*;
use rtap::*;
use std::time::Duration;

fn port_with(mode: RxMode, name: &str) -> Port {
    let ring = RingConfig::default().rx_mode(mode).rx_posted(64);
    let port = Port::open(TapConfig::new(name).ring(ring)).unwrap();
    port.start().unwrap();
    port
}

/// Opens rx queue 0 of a port configured for `RxMode::Multishot`. On a kernel
/// without multishot read, asserts the typed refusal (nothing taken from the
/// pool) and returns None.
fn multishot_queue(port: &Port, pool: &Pool) -> Option<RxQueue> {
    let r = port.rx_queue(0, pool);
    if has_read_multishot() {
        let q = r.expect("multishot rx queue");
        assert_eq!(q.ring_features().unwrap().rx_mode, Some(RxMode::Multishot));
        return Some(q);
    }
    let e = err(r);
    assert!(
        matches!(e, Error::Unsupported { .. }) && e.to_string().contains("6.7"),
        "kernel {:?} has no multishot read: {e}",
        kernel_version()
    );
    assert_pool_full(pool);
    None
}

fn receives_and_recycles(mode: RxMode) {
    netns();
    let port = port_with(mode, "rxm%d");
    let pool = Pool::new(PoolConfig::default().count(256)).unwrap();
    let mut rxq = match mode {
        RxMode::Multishot => match multishot_queue(&port, &pool) {
            Some(q) => q,
            None => return,
        },
        _ => port.rx_queue(0, &pool).unwrap(),
    };
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

/// Posted reads on a pool smaller than `rx_posted`: the queue posts half of
/// the free buffers' worth instead of failing, receives, and gives every
/// buffer back.
#[test]
fn posted_reads_fit_a_small_pool() {
    netns();
    let ring = RingConfig::default().rx_mode(RxMode::Posted);
    assert_eq!(ring.rx_posted, 256);
    let port = Port::open(TapConfig::new("rxsmall0").ring(ring)).unwrap();
    port.start().unwrap();
    let pool = Pool::new(PoolConfig::default().count(64)).unwrap();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    assert_eq!(pool.available(), 32, "half the pool posted");
    let inj = PacketSocket::injector(port.ifindex());
    // 200 frames in chunks, each chunk's packets dropped before the next.
    for chunk in 0..10u32 {
        for i in 0..20 {
            inj.send(&test_frame(100, chunk * 20 + i)).unwrap();
        }
        let got = rx_test_frames(&mut rxq, 20, WAIT);
        let seqs: Vec<u32> = got.iter().filter_map(|p| test_seq(p.data())).collect();
        assert_eq!(seqs, (chunk * 20..chunk * 20 + 20).collect::<Vec<_>>());
    }
    assert_eq!(port.stats().unwrap().rx.packets, 200);
    drop(rxq);
    assert_pool_full(&pool);
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
    let pool = Pool::new(PoolConfig::default().count(72)).unwrap();
    let Some(mut rxq) = multishot_queue(&port, &pool) else {
        return;
    };
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
    let ring = RingConfig::default()
        .rx_mode(RxMode::Multishot)
        .rx_posted(16);
    let mut cfg = TapConfig::new("rxb%d").ring(ring);
    cfg.port.max_frame = 9018;
    let port = Port::open(cfg).unwrap();
    port.start().unwrap();
    let pool = Pool::new(PoolConfig::default()).unwrap();
    let err = port
        .rx_queue(0, &pool)
        .expect_err("a 9018-byte frame does not fit a 2 KiB buffer");
    if has_read_multishot() {
        assert!(
            matches!(
                err,
                Error::FrameExceedsBuffer {
                    max_frame: 9018,
                    ..
                }
            ),
            "{err}"
        );
    } else {
        // Before 6.7 the mode itself is refused first.
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    }
    assert_eq!(pool.available(), pool.capacity() as usize);
}

/// `RxMode::Auto` picks multishot where the kernel has it (Linux >= 6.7) and
/// falls back to posted reads elsewhere, with the reason in the ring features;
/// frames arrive either way. Frames larger than a buffer always use posted
/// reads, which is a choice, not a fallback.
#[test]
fn auto_mode_follows_the_kernel() {
    netns();
    let port = port_with(RxMode::Auto, "rxa%d");
    let pool = pool();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    let f = rxq.ring_features().unwrap().clone();
    if has_read_multishot() {
        assert_eq!(f.rx_mode, Some(RxMode::Multishot));
        assert!(f.fallbacks.is_empty(), "{:?}", f.fallbacks);
    } else {
        assert_eq!(f.rx_mode, Some(RxMode::Posted), "{:?}", kernel_version());
        assert_eq!(f.fallbacks.len(), 1, "{:?}", f.fallbacks);
        assert!(
            f.fallbacks[0].contains("Linux >= 6.7"),
            "the reason names the kernel needed: {:?}",
            f.fallbacks
        );
    }
    let ps = PacketSocket::injector(port.ifindex());
    for s in 0..50 {
        ps.send(&test_frame(300, s)).unwrap();
    }
    let got = rx_test_frames(&mut rxq, 50, WAIT);
    assert_eq!(got.len(), 50);
    drop((got, rxq));
    assert_pool_full(&pool);

    let mut cfg = TapConfig::new("rxb%d");
    cfg.port.max_frame = 9018;
    let big = Port::open(cfg).unwrap();
    big.start().unwrap();
    let rxq = big.rx_queue(0, &pool).unwrap();
    let f = rxq.ring_features().unwrap();
    assert_eq!(f.rx_mode, Some(RxMode::Posted));
    assert!(f.fallbacks.is_empty(), "{:?}", f.fallbacks);
}

/// Every ring option combination moves traffic both ways, and the queue reports
/// the options actually in effect.
#[test]
fn ring_options_move_traffic_and_are_reported() {
    netns();
    let variants = [
        RingConfig::default().sqpoll(Some(SqPoll::new(50).cpu(0))),
        RingConfig::default().taskrun(TaskRun::Defer),
        RingConfig::default()
            .taskrun(TaskRun::Default)
            .single_issuer(false),
        RingConfig::default()
            .fixed_files(false)
            .rx_mode(RxMode::Posted),
    ];
    for (i, ring) in variants.iter().enumerate() {
        let port = Port::open(TapConfig::new(format!("ro{i}")).ring(*ring)).unwrap();
        port.start().unwrap();
        let pool = Pool::new(PoolConfig::default()).unwrap();
        let mut rxq = port.rx_queue(0, &pool).unwrap();
        let mut txq = port.tx_queue(0).unwrap();
        let rxf = rxq.ring_features().unwrap();
        let posted = ring.rx_mode == RxMode::Posted || !has_read_multishot();
        let mode = if posted {
            RxMode::Posted
        } else {
            RxMode::Multishot
        };
        assert_eq!(rxf.rx_mode, Some(mode), "variant {i}");
        assert_eq!(txq.ring_features().unwrap().rx_mode, None, "variant {i}");
        // The one fallback a kernel this suite runs on may take: posted reads
        // where multishot read does not exist (before 6.7).
        let expect = [
            usize::from(ring.rx_mode == RxMode::Auto && !has_read_multishot()),
            0,
        ];
        for (f, expect) in [rxf, txq.ring_features().unwrap()].into_iter().zip(expect) {
            assert_eq!(
                f.fallbacks.len(),
                expect,
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
