//! The fault campaign: what happens to running ports when the world changes
//! under them. The interface moved to another namespace or its namespace
//! deleted, the MTU lowered below frames in flight, the link flapped, the pool
//! exhausted, the io_uring submission queue full. Each case ends with no panic,
//! no hang (every wait has a deadline), counters that account for every frame
//! sent or received, every pool buffer back and the interface gone.
//! (The interface deleted mid-traffic is in `robustness.rs` and `packet.rs`;
//! SIGTERM during bursts in the CLI's tests; fds in `fd_leak.rs`.)

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::*;
use rtap::*;

/// Sends `n` test frames of `len` bytes (sequence numbers from `seq0`) through
/// `txq`, waiting for the ring to drain; returns how many the queue took.
fn send(txq: &mut TxQueue, pool: &Pool, n: u32, len: usize, seq0: u32) -> usize {
    let pkts: Vec<Packet> = (0..n)
        .map(|i| pool.alloc_from(&test_frame(len, seq0 + i)).unwrap())
        .collect();
    tx_all(txq, pkts);
    assert!(txq.flush(WAIT), "tx did not drain");
    n as usize
}

/// A started one-queue tap port, its rx and tx queues on their own pool, and
/// packet sockets that inject into and capture from its interface.
struct Tap {
    port: Port,
    pool: Pool,
    rxq: RxQueue,
    txq: TxQueue,
    inj: PacketSocket,
    cap: PacketSocket,
}

fn tap(name: &str, backend: BackendKind) -> Tap {
    let port = started(name, backend, 1);
    let pool = pool();
    let rxq = port.rx_queue(0, &pool).unwrap();
    let txq = port.tx_queue(0).unwrap();
    let inj = PacketSocket::injector(port.ifindex());
    let cap = PacketSocket::bind(port.ifindex());
    Tap {
        port,
        pool,
        rxq,
        txq,
        inj,
        cap,
    }
}

/// The tap moved to another namespace while its queues run: the queues keep
/// working (a tap fd is not bound to a namespace), frames flow both ways in the
/// new namespace once its link is up there, the counters go on, link control
/// through the old namespace's netlink says the interface is gone, and dropping
/// the port removes the interface from the namespace it ended up in.
fn moved_to_another_namespace(backend: BackendKind) {
    netns();
    let Tap {
        port,
        pool,
        mut rxq,
        mut txq,
        inj,
        cap,
    } = tap("ftmv0", backend);
    for i in 0..16 {
        inj.send(&test_frame(100, i)).unwrap();
    }
    assert_eq!(rx_test_frames(&mut rxq, 16, WAIT).len(), 16);
    drop((inj, cap)); // sockets of the namespace the tap leaves

    let other = NamedNetns::create("mv");
    other.run(disable_ipv6); // no frames of the kernel's own in the counts
    ip(&["link", "set", "ftmv0", "netns", other.name()]);
    other.ip(&["link", "set", "ftmv0", "up"]);
    // Frames both ways in the new namespace.
    let (inj, cap) = other.run(|| {
        let i = if_index("ftmv0").expect("the tap in its new namespace");
        (PacketSocket::injector(i), PacketSocket::bind(i))
    });
    for i in 0..16 {
        inj.send(&test_frame(100, 100 + i)).unwrap();
    }
    assert_eq!(rx_test_frames(&mut rxq, 16, WAIT).len(), 16);
    send(&mut txq, &pool, 16, 100, 200);
    assert_eq!(cap.recv_test_frames(16, WAIT).len(), 16);
    let st = port.stats().expect("stats of a moved port");
    assert_eq!((st.rx.packets, st.rx.errors), (32, 0), "{st:?}");
    assert_eq!((st.tx.packets, st.tx.errors), (16, 0), "{st:?}");
    // Link control goes through this namespace, where the interface is gone.
    let e = err(port.set_mtu(1400));
    assert!(
        matches!(e, Error::DeviceVanished { .. }),
        "link control of a moved interface: {e:?}"
    );
    assert!(matches!(port.link(), Err(Error::DeviceVanished { .. })));
    drop((rxq, txq, inj, cap));
    assert_pool_full(&pool);
    drop(port);
    other.run(|| assert_gone_soon("ftmv0"));
}

/// `ip netns del` of the namespace a port's tap lives in: the port's fds hold
/// the namespace, so it lives on until the port closes; traffic and link
/// control keep working meanwhile.
fn namespace_deleted_under_the_port(backend: BackendKind) {
    netns();
    let ns = NamedNetns::create("nsdel");
    ns.run(disable_ipv6);
    let mut cfg = TapConfig::new("ftns0").backend(backend);
    cfg.port.netns = Some(Netns::Named(ns.name().to_string()));
    let port = open(cfg);
    port.start().unwrap();
    let pool = pool();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    let mut txq = port.tx_queue(0).unwrap();
    let (inj, cap) = ns.run(|| {
        let i = if_index("ftns0").unwrap();
        (PacketSocket::injector(i), PacketSocket::bind(i))
    });
    drop(ns); // ip netns del
    for i in 0..16 {
        inj.send(&test_frame(100, i)).unwrap();
    }
    assert_eq!(rx_test_frames(&mut rxq, 16, WAIT).len(), 16);
    send(&mut txq, &pool, 16, 100, 100);
    assert_eq!(cap.recv_test_frames(16, WAIT).len(), 16);
    port.set_mtu(1400)
        .expect("link control in a deleted namespace");
    assert_eq!(port.mtu().unwrap(), 1400);
    let st = port.stats().unwrap();
    assert_eq!((st.rx.packets, st.tx.packets), (16, 16), "{st:?}");
    drop((rxq, txq, inj, cap));
    assert_pool_full(&pool);
    port.stop().unwrap();
}

/// The MTU lowered with frames in flight both ways: frames the kernel queued
/// for the tap before the change arrive whole; frames sent after it are
/// written (a tap does not police its MTU on write) and counted; nothing is an
/// error and nothing is lost.
fn mtu_lowered_below_frames_in_flight(backend: BackendKind) {
    netns();
    let Tap {
        port,
        pool,
        mut rxq,
        mut txq,
        inj,
        cap,
    } = tap("ftmtu0", backend);
    for i in 0..16 {
        inj.send(&test_frame(1514, i)).unwrap();
    }
    ip(&["link", "set", "ftmtu0", "mtu", "576"]);
    let got = rx_test_frames(&mut rxq, 16, WAIT);
    assert_eq!(got.len(), 16);
    assert!(
        got.iter().all(|p| p.len() == 1514),
        "frames in flight arrive whole"
    );
    drop(got);
    send(&mut txq, &pool, 16, 1514, 100);
    let seen = cap.recv_test_frames(16, WAIT);
    assert_eq!(seen.len(), 16);
    assert!(seen.iter().all(|f| f.len() == 1514));
    // Frames the new MTU allows go on as before.
    send(&mut txq, &pool, 16, 500, 200);
    assert_eq!(cap.recv_test_frames(16, WAIT).len(), 16);
    let st = port.stats().unwrap();
    assert_eq!(
        (st.rx.packets, st.rx.errors, st.rx.nombuf),
        (16, 0, 0),
        "{st:?}"
    );
    assert_eq!((st.tx.packets, st.tx.errors), (32, 0), "{st:?}");
    drop((rxq, txq));
    assert_pool_full(&pool);
}

/// The link flapped while frames are sent: writes to a tap whose link is down
/// fail and are counted as tx errors (the kernel would drop them), none is left
/// hanging, and traffic resumes both ways when the link is back.
fn link_flapped_mid_traffic(backend: BackendKind) {
    netns();
    let Tap {
        port,
        pool,
        mut rxq,
        mut txq,
        inj,
        cap,
    } = tap("ftflap0", backend);
    let mut sent = 0u64;
    for round in 0..3u32 {
        send(&mut txq, &pool, 8, 200, round * 100);
        sent += 8;
        assert_eq!(cap.recv_test_frames(8, WAIT).len(), 8, "round {round}");
        ip(&["link", "set", "ftflap0", "down"]);
        sent += send(&mut txq, &pool, 8, 200, round * 100 + 50) as u64;
        ip(&["link", "set", "ftflap0", "up"]);
        for i in 0..8 {
            inj.send(&test_frame(100, round * 100 + i)).unwrap();
        }
        assert_eq!(rx_test_frames(&mut rxq, 8, WAIT).len(), 8, "round {round}");
    }
    let st = port.stats().unwrap();
    // Every frame is either sent or a counted error: the 24 written while down
    // are errors (EIO from the tap), the 24 while up are sent.
    assert_eq!(st.tx.packets + st.tx.errors, sent, "{st:?}");
    assert_eq!((st.tx.packets, st.tx.errors), (24, 24), "{st:?}");
    assert_eq!((st.rx.packets, st.rx.errors), (24, 0), "{st:?}");
    drop((rxq, txq));
    assert_pool_full(&pool);
}

/// io_uring with a submission queue far smaller than the bursts given to it:
/// each `tx_burst` takes what fits and leaves the rest with the caller,
/// nothing is lost or sent twice, every buffer comes back.
fn full_submission_queue(sqpoll: bool) {
    netns();
    let mut ring = RingConfig::default().tx_entries(8);
    if sqpoll {
        ring = ring.sqpoll(Some(SqPoll::new(10)));
    }
    let port = open(
        TapConfig::new("ftsq0")
            .backend(BackendKind::Uring)
            .ring(ring),
    );
    port.start().unwrap();
    let pool = pool();
    let mut txq = port.tx_queue(0).unwrap();
    let cap = PacketSocket::bind(port.ifindex());
    let mut pkts: Vec<Packet> = (0..200u32)
        .map(|i| pool.alloc_from(&test_frame(100, i)).unwrap())
        .collect();
    let n = txq.tx_burst(&mut pkts).unwrap();
    assert!(n <= 8, "a burst took {n} packets into an 8-entry ring");
    assert_eq!(pkts.len(), 200 - n, "the rest stay with the caller");
    tx_all(&mut txq, pkts);
    assert!(txq.flush(WAIT));
    let got = cap.recv_test_frames(200, WAIT);
    let seqs: Vec<u32> = got.iter().filter_map(|f| test_seq(f)).collect();
    assert_eq!(
        seqs,
        (0..200).collect::<Vec<_>>(),
        "every frame once, in order"
    );
    let st = port.stats().unwrap();
    assert_eq!((st.tx.packets, st.tx.errors), (200, 0), "{st:?}");
    drop(txq);
    assert_pool_full(&pool);
}

#[test]
fn full_submission_queue_interrupt_driven() {
    full_submission_queue(false);
}

#[test]
fn full_submission_queue_sqpoll() {
    full_submission_queue(true);
}

backend_tests!(
    moved_to_another_namespace,
    namespace_deleted_under_the_port,
    mtu_lowered_below_frames_in_flight,
    link_flapped_mid_traffic,
);

// AF_PACKET ports.

/// The namespace at the other end of the port's veth destroyed mid-traffic:
/// the peer goes with it, and so does the port's interface. The queues report
/// `DeviceVanished` within a bounded time, the counters keep what went before,
/// and every buffer comes back.
fn peer_namespace_destroyed(kick: Kick) {
    netns();
    let (p, _) = veth("fpns");
    let ns = NamedNetns::create("peer");
    ns.run(disable_ipv6);
    ip(&["link", "set", "fpnsk", "netns", ns.name()]);
    ns.ip(&["link", "set", "fpnsk", "up"]);
    let port = packet_port(PacketConfig::new(p.as_str()).kick(kick));
    let pool = pool();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    let mut txq = port.tx_queue(0).unwrap();
    let (inj, cap) = ns.run(|| {
        let k = if_index("fpnsk").unwrap();
        (PacketSocket::injector(k), PacketSocket::bind(k))
    });
    wait_oper_up(&p);
    for i in 0..16 {
        inj.send(&test_frame(100, i)).unwrap();
    }
    send(&mut txq, &pool, 16, 100, 100);
    assert_eq!(cap.recv_test_frames(16, WAIT).len(), 16);
    assert_eq!(rx_test_frames(&mut rxq, 16, WAIT).len(), 16);
    // The peer's sockets close before the namespace goes, so nothing else
    // keeps it alive.
    drop((inj, cap));
    drop(ns);
    let deadline = Instant::now() + WAIT;
    let mut sent = 16u64;
    let (rx_err, tx_err) = loop {
        assert!(Instant::now() < deadline, "the queues never noticed");
        let mut b = Vec::new();
        let rx = rxq.rx_burst(&mut b, 32).err();
        let mut pkts = vec![pool.alloc_from(&test_frame(100, 500)).unwrap()];
        let tx = txq.tx_burst(&mut pkts).err();
        if tx.is_none() && pkts.is_empty() {
            sent += 1;
        }
        if let (Some(r), Some(t)) = (rx, tx) {
            break (r, t);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(matches!(rx_err, Error::DeviceVanished { .. }), "{rx_err:?}");
    assert!(matches!(tx_err, Error::DeviceVanished { .. }), "{tx_err:?}");
    assert_gone_soon(&p);
    let st = port.stats().expect("stats of a vanished port");
    assert_eq!(st.rx.packets, 16, "{st:?}");
    // Frames taken after the deletion may have been dropped by the kernel with
    // the device; none is counted twice.
    assert!(st.tx.packets >= 16 && st.tx.packets <= sent, "{st:?}");
    drop((rxq, txq));
    assert_pool_full(&pool);
}

/// The MTU lowered while full-size frames wait in the tx ring (the link down
/// holds them there): the tx socket carries a virtio-net header, so the kernel
/// does not police the MTU on send, and every queued frame goes when the link
/// comes back, in order, as the peer's MTU allows; the ring does not stall.
/// Without offloads rtap refuses frames over the MTU itself, as read when the
/// tx queue is taken: a queue taken after the change refuses the full-size
/// frames (counted `oversized`, tx errors) and sends the rest.
fn mtu_lowered_under_the_tx_ring(kick: Kick, offload: bool) {
    netns();
    let (p, k) = veth("fpmtu");
    // The SQ thread that walks the ring stays on one CPU: a walk that migrated
    // midway would hand frames to two CPUs' veth backlogs, which the peer may
    // drain out of order (seen in an emulated guest), and the order is checked.
    let cfg = PacketConfig::new(p.as_str())
        .kick(kick)
        .sqpoll(SqPoll::new(50).cpu(0))
        .frame_count(64)
        .offload(offload);
    let port = packet_port(cfg);
    let pool = pool();
    let mut txq = port.tx_queue(0).unwrap();
    let cap = PacketSocket::bind(k);
    let frames = |base: u32| -> Vec<Packet> {
        (0..16u32)
            .map(|i| {
                let len = if i < 8 { 1514 } else { 500 };
                pool.alloc_from(&test_frame(len, base + i)).unwrap()
            })
            .collect()
    };
    ip(&["link", "set", &p, "down"]);
    let mut pkts = frames(0);
    assert_eq!(
        txq.tx_burst(&mut pkts).unwrap(),
        16,
        "all queued in the ring"
    );
    ip(&["link", "set", &p, "mtu", "1000"]);
    ip(&["link", "set", &p, "up"]);
    wait_oper_up(&p);
    // Kicks go out with the next bursts; an empty burst kicks too.
    let deadline = Instant::now() + WAIT;
    while txq.in_flight() > 0 {
        assert!(
            Instant::now() < deadline,
            "the ring stalled: {} in flight",
            txq.in_flight()
        );
        txq.tx_burst(&mut Vec::new()).unwrap();
        txq.flush(Duration::from_millis(10));
    }
    let seqs = |got: Vec<Vec<u8>>| -> Vec<u32> { got.iter().filter_map(|f| test_seq(f)).collect() };
    assert_eq!(
        seqs(cap.recv_test_frames(16, WAIT)),
        (0..16).collect::<Vec<_>>()
    );
    drop(txq);

    // A queue taken now knows the new MTU.
    let mut txq = port.tx_queue(0).unwrap();
    let mut pkts = frames(100);
    let taken = txq.tx_burst(&mut pkts).unwrap();
    assert_eq!(
        (taken, pkts.len()),
        (16, 0),
        "refused frames are taken and counted"
    );
    assert!(txq.flush(WAIT));
    let refused = if offload { 0 } else { 8 };
    let want: Vec<u32> = (100 + refused..116).collect();
    assert_eq!(seqs(cap.recv_test_frames(want.len(), WAIT)), want);
    let st = port.stats().unwrap();
    let r = u64::from(refused);
    assert_eq!((st.tx.packets, st.tx.errors), (32 - r, r), "{st:?}");
    assert_eq!(xstat(&port, "tx_q0_oversized"), r);
    drop(txq);
    assert_pool_full(&pool);
}

fn mtu_lowered_under_the_tx_ring_offloads(kick: Kick) {
    mtu_lowered_under_the_tx_ring(kick, true);
}

fn mtu_lowered_under_the_tx_ring_no_offloads(kick: Kick) {
    mtu_lowered_under_the_tx_ring(kick, false);
}

/// The link flapped while frames arrive: the socket's pending `ENETDOWN` is
/// not taken for the device vanishing, and reception resumes after the flap.
fn link_flapped_under_rx(kick: Kick) {
    netns();
    let (p, k) = veth("fpflap");
    let port = packet_port(PacketConfig::new(p.as_str()).kick(kick));
    let pool = pool();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    let inj = PacketSocket::injector(k);
    for round in 0..3u32 {
        for i in 0..8 {
            inj.send(&test_frame(100, round * 100 + i)).unwrap();
        }
        assert_eq!(rx_test_frames(&mut rxq, 8, WAIT).len(), 8, "round {round}");
        ip(&["link", "set", &p, "down"]);
        let mut b = Vec::new();
        rxq.rx_burst(&mut b, 32)
            .expect("a link down is not a vanished device");
        ip(&["link", "set", &p, "up"]);
        wait_oper_up(&p);
    }
    let st = port.stats().unwrap();
    assert_eq!((st.rx.packets, st.rx.errors), (24, 0), "{st:?}");
    drop(rxq);
    assert_pool_full(&pool);
}

/// The pool exhausted while frames arrive: each frame that finds no buffer is
/// counted (`nombuf`) and its ring slot (or block) still goes back to the
/// kernel, so the ring does not stall; once buffers come back, frames flow.
fn pool_exhausted(kick: Kick, tp: Tpacket) {
    netns();
    let (p, k) = veth("fpnb");
    let port = packet_port(PacketConfig::new(p.as_str()).kick(kick).tpacket(tp));
    let pool = Pool::new(PoolConfig::default().count(16)).unwrap();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    let inj = PacketSocket::injector(k);
    let hoard: Vec<Packet> = (0..16).map(|_| pool.alloc().unwrap()).collect();
    for i in 0..40 {
        inj.send(&test_frame(100, i)).unwrap();
    }
    let deadline = Instant::now() + WAIT;
    while port.stats().unwrap().rx.nombuf < 40 {
        assert!(
            Instant::now() < deadline,
            "frames without buffers not counted: {:?}",
            port.stats().unwrap()
        );
        let mut b = Vec::new();
        assert_eq!(rxq.rx_burst(&mut b, 32).unwrap(), 0);
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(hoard);
    for i in 0..12 {
        inj.send(&test_frame(100, 100 + i)).unwrap();
    }
    let got = rx_test_frames(&mut rxq, 12, WAIT);
    let seqs: Vec<u32> = got.iter().filter_map(|p| test_seq(p.data())).collect();
    assert_eq!(seqs, (100..112).collect::<Vec<_>>());
    drop(got);
    let st = port.stats().unwrap();
    assert_eq!(
        (st.rx.packets, st.rx.nombuf, st.imissed),
        (12, 40, 0),
        "{st:?}"
    );
    drop(rxq);
    assert_pool_full(&pool);
}

fn pool_exhausted_v2(kick: Kick) {
    pool_exhausted(kick, Tpacket::V2);
}

fn pool_exhausted_v3(kick: Kick) {
    // Blocks retired by the kernel's timer soon after their frames arrive.
    pool_exhausted(kick, V3_2MS);
}

mod packet {
    use super::*;

    kick_tests!(
        peer_namespace_destroyed,
        mtu_lowered_under_the_tx_ring_offloads,
        mtu_lowered_under_the_tx_ring_no_offloads,
        link_flapped_under_rx,
        pool_exhausted_v2,
        pool_exhausted_v3,
    );
}
