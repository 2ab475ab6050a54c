//! The data path against the real kernel, written once and run for both
//! backends (`uring::*` and `rw::*`): frames injected through AF_PACKET are
//! received intact, frames sent are captured byte-exact, multi-queue ports
//! spread flows over every queue, frames larger than one buffer travel as
//! chains in both directions, and malformed or oversized frames are counted,
//! never delivered cut.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use rtap::*;

/// Frame sizes the issue asks for: minimum Ethernet, small, medium, full MTU.
const SIZES: [usize; 4] = [60, 100, 1000, 1514];

/// A pool of small buffers (448 frame bytes in the first, 512 in the others), so
/// anything above 448 bytes is a chain.
fn small_pool() -> Pool {
    Pool::new(PoolConfig::default().count(4096).buf_size(512).headroom(64)).unwrap()
}

/// Segments a `len`-byte frame needs in [`small_pool`] buffers.
fn small_segs(len: usize) -> usize {
    if len <= 448 {
        1
    } else {
        1 + (len - 448).div_ceil(512)
    }
}

/// A started port with a 9000-byte MTU, set before any rx queue is opened (the
/// queue sizes its reads from it). Few posted reads: each needs 18 small buffers.
fn jumbo_port(name: &str, backend: BackendKind) -> Port {
    let ring = RingConfig::default().rx_posted(32);
    let port = open(TapConfig::new(name).backend(backend).ring(ring));
    ip(&["link", "set", "dev", name, "mtu", "9000"]);
    assert_eq!(port.link().unwrap().mtu, 9000);
    port.start().unwrap();
    port
}

fn rx_frame_sizes(backend: BackendKind) {
    netns();
    let port = started("dprx0", backend, 1);
    let pool = pool();
    let inj = PacketSocket::injector(port.ifindex());
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    let frames: Vec<Vec<u8>> = (0..200u32)
        .map(|i| test_frame(SIZES[i as usize % SIZES.len()], i))
        .collect();
    let mut per = vec![Vec::new()];
    let got = inject_and_receive(&inj, &frames, std::slice::from_mut(&mut rxq), &mut per);
    assert_eq!(got, frames.len(), "frames lost");
    // Every frame is intact and unchained (order: see single_queue_keeps_order).
    sort_by_seq(&mut per[0]);
    for (p, f) in per[0].iter().zip(&frames) {
        assert_eq!(p.len(), f.len());
        assert_eq!(p.nb_segs(), 1);
        assert_eq!(p.data(), &f[..], "frame {:?} differs", test_seq(f));
        assert!(p.vnet_hdr().is_plain(), "{:?}", p.vnet_hdr());
    }
    drop(per);
    drop(rxq);
    assert_pool_full(&pool);
}

/// Frames of one queue come out in the order they went in (a tap queue is FIFO).
fn single_queue_keeps_order(backend: BackendKind) {
    netns();
    let port = started("dpord0", backend, 1);
    let pool = pool();
    let inj = PacketSocket::injector(port.ifindex());
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    let mut order = Vec::new();
    let got = stream_through(
        &inj,
        std::slice::from_mut(&mut rxq),
        5000,
        |i| test_frame(60, i),
        |p| order.push(test_seq(p.data()).unwrap()),
    );
    assert_eq!(got, 5000);
    let swapped: Vec<_> = order.windows(2).filter(|w| w[0] > w[1]).collect();
    assert!(swapped.is_empty(), "frames reordered: {swapped:?}");
}

fn tx_frame_sizes(backend: BackendKind) {
    netns();
    let port = started("dptx0", backend, 1);
    let pool = pool();
    let cap = PacketSocket::bind(port.ifindex());
    let mut txq = port.tx_queue(0).unwrap();
    let frames: Vec<Vec<u8>> = (0..200u32)
        .map(|i| test_frame(SIZES[i as usize % SIZES.len()], i))
        .collect();
    for burst in frames.chunks(32) {
        let pkts = burst.iter().map(|f| pool.alloc_from(f).unwrap()).collect();
        tx_all(&mut txq, pkts);
    }
    assert!(txq.flush(WAIT), "tx did not complete");
    let seen = cap.recv_ours(frames.len(), WAIT);
    assert_eq!(seen.len(), frames.len(), "frames not captured");
    // One queue: the kernel sees them in order, byte for byte.
    for (s, f) in seen.iter().zip(&frames) {
        assert_eq!(s, f, "frame {:?} differs", test_seq(f));
    }
    drop(txq);
    assert_pool_full(&pool);
}

fn multi_queue_rx_1_2_4(backend: BackendKind) {
    netns();
    let pool = pool();
    for n in [1u16, 2, 4] {
        let name = format!("dpmq{n}");
        let port = started(&name, backend, n);
        let per = check_all_queues_receive(&port, &pool, n);
        let st = port.stats().unwrap();
        for (q, pkts) in per.iter().enumerate() {
            assert_eq!(st.rx_queues[q].packets, pkts.len() as u64, "queue {q}");
        }
        assert_eq!(st.imissed, 0);
        drop(per);
        assert_pool_full(&pool);
    }
}

fn multi_queue_tx(backend: BackendKind) {
    netns();
    let port = started("dpmqtx0", backend, 4);
    let pool = pool();
    let cap = PacketSocket::bind(port.ifindex());
    let mut txqs: Vec<TxQueue> = (0..4).map(|q| port.tx_queue(q).unwrap()).collect();
    for (q, txq) in txqs.iter_mut().enumerate() {
        let pkts = (0..25u32)
            .map(|i| {
                pool.alloc_from(&test_frame(300, q as u32 * 1000 + i))
                    .unwrap()
            })
            .collect();
        tx_all(txq, pkts);
    }
    for txq in &mut txqs {
        assert!(txq.flush(WAIT));
    }
    let mut seen = cap.recv_ours(100, WAIT);
    seen.sort_by_key(|f| test_seq(f).unwrap());
    let want: Vec<Vec<u8>> = (0..4u32)
        .flat_map(|q| (0..25).map(move |i| test_frame(300, q * 1000 + i)))
        .collect();
    assert_eq!(seen, want);
    let st = port.stats().unwrap();
    for q in 0..4 {
        assert_eq!(st.tx_queues[q].packets, 25, "tx queue {q}");
        assert_eq!(st.tx_queues[q].bytes, 25 * 300, "tx queue {q}");
    }
    drop(txqs);
    assert_pool_full(&pool);
}

fn rx_chained_frames(backend: BackendKind) {
    netns();
    let port = jumbo_port("dpjrx0", backend);
    let pool = small_pool();
    let inj = PacketSocket::injector(port.ifindex());
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    let sizes = [60usize, 448, 449, 1514, 3000, 9014];
    let frames: Vec<Vec<u8>> = (0..60u32)
        .map(|i| test_frame(sizes[i as usize % sizes.len()], i))
        .collect();
    let mut per = vec![Vec::new()];
    let got = inject_and_receive(&inj, &frames, std::slice::from_mut(&mut rxq), &mut per);
    assert_eq!(got, frames.len(), "frames lost");
    sort_by_seq(&mut per[0]);
    for (p, f) in per[0].iter().zip(&frames) {
        assert_eq!(p.len(), f.len());
        assert_eq!(p.nb_segs(), small_segs(f.len()), "{}-byte frame", f.len());
        assert_eq!(p.segments().count(), p.nb_segs());
        assert_eq!(p.segments().map(<[u8]>::len).sum::<usize>(), f.len());
        assert_eq!(p.data(), &f[..f.len().min(448)], "first segment");
        assert_eq!(&p.to_vec(), f, "{}-byte frame differs", f.len());
    }
    assert!(per[0].iter().any(|p| p.len() == 3000 && p.nb_segs() > 1));
    let st = port.stats().unwrap();
    assert_eq!(st.rx.packets, frames.len() as u64);
    assert_eq!(
        st.rx.bytes,
        frames.iter().map(|f| f.len() as u64).sum::<u64>()
    );
    assert_eq!(st.rx.errors, 0);
    drop(per);
    drop(rxq);
    assert_pool_full(&pool);
}

fn tx_chained_frames(backend: BackendKind) {
    netns();
    let port = jumbo_port("dpjtx0", backend);
    let pool = small_pool();
    let cap = PacketSocket::bind(port.ifindex());
    let mut txq = port.tx_queue(0).unwrap();
    let sizes = [3000usize, 449, 9014, 1514, 60];
    let frames: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| test_frame(len, i as u32))
        .collect();
    let pkts: Vec<Packet> = frames.iter().map(|f| pool.alloc_from(f).unwrap()).collect();
    for (p, f) in pkts.iter().zip(&frames) {
        assert_eq!(p.nb_segs(), small_segs(f.len()));
    }
    assert!(pkts[0].nb_segs() > 1, "a 3000-byte packet must be a chain");
    tx_all(&mut txq, pkts);
    assert!(txq.flush(WAIT));
    let seen = cap.recv_ours(frames.len(), WAIT);
    assert_eq!(seen.len(), frames.len(), "frames not captured");
    for (s, f) in seen.iter().zip(&frames) {
        assert_eq!(s, f, "{}-byte frame differs", f.len());
    }
    let st = port.stats().unwrap();
    assert_eq!(st.tx.packets, frames.len() as u64);
    assert_eq!(st.tx.errors, 0);
    drop(txq);
    assert_pool_full(&pool);
}

/// A frame larger than the rx queue's `max_frame` (here: the MTU was raised after
/// the queue sized its reads) must be counted as an rx error, not delivered cut
/// short. Checked with reads over a chain of small buffers and with reads into
/// one default-sized buffer (which the io_uring default rx mode serves with a
/// multishot read).
fn oversized_frame_is_an_error(backend: BackendKind) {
    netns();
    for (name, pool, segs) in [("dpbig0", small_pool(), 4usize), ("dpbig1", pool(), 1usize)] {
        let mut cfg = TapConfig::new(name).backend(backend);
        cfg.port.max_frame = 1518;
        let port = open(cfg);
        port.start().unwrap();
        let inj = PacketSocket::injector(port.ifindex());
        let mut rxq = port.rx_queue(0, &pool).unwrap();
        ip(&["link", "set", "dev", name, "mtu", "9000"]);
        let frames = [test_frame(3000, 1), test_frame(1518, 2), test_frame(100, 3)];
        for f in &frames {
            inj.send(f).unwrap();
        }
        let got = rx_test_frames(&mut rxq, 3, Duration::from_millis(300));
        let summary: Vec<_> = got
            .iter()
            .map(|p| (test_seq(p.data()), p.len(), p.to_vec().len()))
            .collect();
        assert_eq!(
            summary,
            [(Some(2), 1518, 1518), (Some(3), 100, 100)],
            "{name}: only the frames that fit may arrive (seq, len, bytes)"
        );
        assert_eq!(got[0].nb_segs(), segs);
        for (p, f) in got.iter().zip(&frames[1..]) {
            assert_eq!(&p.to_vec(), f);
        }
        let st = port.stats().unwrap();
        assert_eq!(st.rx.errors, 1, "{name}: {st:?}");
        assert_eq!(st.rx.packets, 2, "{name}: {st:?}");
        drop(got);
        drop(rxq);
        assert_pool_full(&pool);
    }
}

/// Runts (under 14 bytes) are accepted by tx_burst but counted as errors and never
/// reach the kernel; their buffers go back to the pool.
fn tx_runt_counted_as_error(backend: BackendKind) {
    netns();
    let port = started("dprunt0", backend, 1);
    let pool = pool();
    let cap = PacketSocket::bind(port.ifindex());
    let mut txq = port.tx_queue(0).unwrap();
    let mut pkts = vec![
        pool.alloc_from(&[0xffu8; 10]).unwrap(),
        pool.alloc_from(&test_frame(64, 5)).unwrap(),
    ];
    assert_eq!(txq.tx_burst(&mut pkts).unwrap(), 2);
    assert!(pkts.is_empty());
    assert!(txq.flush(WAIT));
    assert_eq!(cap.recv_ours(1, WAIT), vec![test_frame(64, 5)]);
    let st = port.stats().unwrap();
    assert_eq!((st.tx.packets, st.tx.bytes, st.tx.errors), (1, 64, 1));
    drop(txq);
    assert_pool_full(&pool);
}

/// When the application holds on to every spare buffer, frames are dropped and
/// counted as `nombuf`; the queue keeps working once packets are freed.
fn pool_exhaustion_counts_nombuf(backend: BackendKind) {
    netns();
    let ring = RingConfig::default().rx_posted(16);
    let port = open(TapConfig::new("dpnombuf0").backend(backend).ring(ring));
    port.start().unwrap();
    // The io_uring queue lends 16 buffers to its posted reads; the rw queue stages one.
    let lent = if backend == BackendKind::Uring { 16 } else { 0 };
    let pool = Pool::new(PoolConfig::default().count(lent + 8)).unwrap();
    let inj = PacketSocket::injector(port.ifindex());
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    for i in 0..40 {
        inj.send(&test_frame(100, i)).unwrap();
    }
    let hoard = rx_test_frames(&mut rxq, 40, Duration::from_millis(500));
    assert_eq!(hoard.len(), 8, "only the 8 spare buffers can be handed out");
    let mut seqs: Vec<u32> = hoard.iter().map(|p| test_seq(p.data()).unwrap()).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 8, "a frame was delivered twice");
    for p in &hoard {
        assert_eq!(p.to_vec(), test_frame(100, test_seq(p.data()).unwrap()));
    }
    let st = port.stats().unwrap();
    assert_eq!(st.rx.packets, 8);
    assert_eq!(st.rx.nombuf, 32, "{st:?}");
    drop(hoard);
    inj.send(&test_frame(100, 99)).unwrap();
    let again = rx_test_frames(&mut rxq, 1, WAIT);
    assert_eq!(again.len(), 1, "queue stalled after the pool refilled");
    assert_eq!(again[0].to_vec(), test_frame(100, 99));
    drop(again);
    drop(rxq);
    assert_pool_full(&pool);
}

backend_tests!(
    rx_frame_sizes,
    tx_frame_sizes,
    multi_queue_rx_1_2_4,
    multi_queue_tx,
    rx_chained_frames,
    tx_chained_frames,
    tx_runt_counted_as_error,
    pool_exhaustion_counts_nombuf,
    oversized_frame_is_an_error,
    single_queue_keeps_order,
);
