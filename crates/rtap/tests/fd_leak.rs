//! File-descriptor accounting. Alone in its own test binary with a single test:
//! tests in one binary run as parallel threads of one process, so any other test
//! would change `/proc/self/fd` under this one.

mod common;

use common::*;
use rtap::*;

/// Open, start, open every queue, move traffic both ways, drop the queues, stop,
/// change the queue count, start and stop again, drop the port.
fn full_lifecycle(backend: BackendKind) {
    let mut port = started("fdleak0", backend, 4);
    let pool = pool();
    check_all_queues_receive(&port, &pool, 4);
    {
        let cap = PacketSocket::bind(port.ifindex());
        let mut txqs: Vec<TxQueue> = (0..4).map(|q| port.tx_queue(q).unwrap()).collect();
        for (q, txq) in txqs.iter_mut().enumerate() {
            tx_all(
                txq,
                vec![pool.alloc_from(&test_frame(100, q as u32)).unwrap()],
            );
            assert!(txq.flush(WAIT));
        }
        assert_eq!(cap.recv_ours(4, WAIT).len(), 4);
    }
    port.stop().unwrap();
    port.set_queue_count(2).unwrap();
    port.start().unwrap();
    check_all_queues_receive(&port, &pool, 2);
    port.stop().unwrap();
    drop(port);
    assert_pool_full(&pool);
    assert!(
        !if_exists("fdleak0"),
        "a non-persistent interface must be gone when its port is dropped"
    );
}

/// The same for an AF_PACKET port on a veth: rings, fanout group, kick ring.
fn packet_lifecycle(kick: Kick, tpacket: Tpacket) {
    let pool = pool();
    let mut port = Port::open(
        PacketConfig::new("fdpk0")
            .kick(kick)
            .tpacket(tpacket)
            .queues(2),
    )
    .unwrap();
    port.start().unwrap();
    wait_oper_up("fdpk1");
    let inj = PacketSocket::injector(if_index("fdpk1").unwrap());
    for round in 0..2 {
        let n = port.queue_count();
        let mut rxqs: Vec<RxQueue> = (0..n).map(|q| port.rx_queue(q, &pool).unwrap()).collect();
        let mut txq = port.tx_queue(n - 1).unwrap();
        let frames: Vec<Vec<u8>> = (0..64u32).map(|i| flow_frame(80, i as u16, i)).collect();
        let mut per: Vec<Vec<Packet>> = (0..n).map(|_| Vec::new()).collect();
        assert_eq!(inject_and_receive(&inj, &frames, &mut rxqs, &mut per), 64);
        tx_all(&mut txq, per.into_iter().flatten().collect());
        assert!(txq.flush(WAIT));
        drop((rxqs, txq));
        if round == 0 {
            port.stop().unwrap();
            port.set_queue_count(3).unwrap();
            port.start().unwrap();
            wait_oper_up("fdpk1");
        }
    }
    drop(port);
    assert_pool_full(&pool);
}

/// zcrx (device-less where the kernel has it, else the copy fallback): a queue,
/// a receiver on this thread and one on another (importing the queue), a
/// connection each, buffers held past the receivers and the queue.
fn zcrx_lifecycle(cfg: rtap::zcrx::QueueConfig) {
    use std::io::Write;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let q = rtap::zcrx::Queue::open(&cfg).unwrap();
    let mut held = Vec::new();
    let mut peers = Vec::new();
    let mut receive = |rx: &mut rtap::zcrx::Receiver, held: &mut Vec<rtap::zcrx::RxBuf>| {
        let mut p = std::net::TcpStream::connect(addr).unwrap();
        rx.add(l.accept().unwrap().0).unwrap();
        p.write_all(&[7u8; 20000]).unwrap();
        peers.push(p);
        let mut events = Vec::new();
        let mut n = 0;
        while n < 20000 {
            rx.poll(&mut events, Some(std::time::Duration::from_secs(3)))
                .unwrap();
            for ev in events.drain(..) {
                if let rtap::zcrx::Event::Data { buf, .. } = ev {
                    n += buf.len();
                    held.push(buf);
                }
            }
        }
    };
    let mut rx = q.receiver().unwrap();
    receive(&mut rx, &mut held);
    if q.shareable() {
        let q2 = q.clone();
        let (s, r) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rx = q2.receiver().unwrap();
            s.send(rx.stats()).unwrap();
        })
        .join()
        .unwrap();
        r.recv().unwrap();
    }
    drop(rx);
    drop(q);
    assert!(held.iter().all(|b| b.iter().all(|&x| x == 7)));
    drop(held);
    drop(peers);
}

#[test]
fn full_lifecycle_closes_every_fd() {
    netns();
    let before = fd_count();
    for round in 0..2 {
        for backend in [BackendKind::Uring, BackendKind::Rw] {
            full_lifecycle(backend);
            assert_eq!(
                fd_count(),
                before,
                "fds leaked by a {backend} lifecycle (round {round})"
            );
        }
    }
    ip(&[
        "link", "add", "fdpk0", "type", "veth", "peer", "name", "fdpk1",
    ]);
    ip(&["link", "set", "fdpk1", "up"]);
    let before = fd_count();
    for kick in [Kick::Uring, Kick::Sendto] {
        for tp in [
            Tpacket::V2,
            Tpacket::V3 {
                block_timeout_ms: 1,
            },
        ] {
            packet_lifecycle(kick, tp);
            assert_eq!(
                fd_count(),
                before,
                "fds leaked by a packet port ({kick:?}, {tp:?})"
            );
        }
    }
    assert!(Port::open(PacketConfig::new("fdnope1")).is_err());
    assert!(Port::open(PacketConfig::new("fdpk0").frame_size(100)).is_err());
    // A failed open must not leak either.
    assert!(Port::open(TapConfig::new("fdnope0").attach(true)).is_err());
    assert!(Port::open(TapConfig::new("fdq%d").queues(129)).is_err());
    ip(&["tuntap", "add", "dev", "fdsq0", "mode", "tap"]);
    let e = Port::open(TapConfig::new("fdsq0")).unwrap_err();
    assert!(matches!(e, Error::IncompatibleInterface { .. }), "{e:?}");
    assert_eq!(fd_count(), before, "fds leaked by a failed open");
    // Sharing: a server, attached ports (taken, released, refused), repeated.
    {
        let port = Port::open(TapConfig::new("fdsh0").queues(2)).unwrap();
        port.start().unwrap();
        let name = format!("@rtap-fdleak-{}", std::process::id());
        let before = fd_count();
        for round in 0..3 {
            let srv = port.serve(rtap::share::ServeConfig::new(&name)).unwrap();
            let a = Port::open(rtap::share::SharedConfig::new(&name).queue_list(&[1])).unwrap();
            assert!(Port::open(rtap::share::SharedConfig::new(&name).queue_list(&[1])).is_err());
            drop(a);
            drop(srv);
            let srv = port
                .serve(rtap::share::ServeConfig::new(&name).uids(&[4242]))
                .unwrap();
            assert!(Port::open(rtap::share::SharedConfig::new(&name)).is_err());
            drop(srv);
            assert_eq!(fd_count(), before, "fds leaked by sharing (round {round})");
        }
        port.stop().unwrap();
    }
    ip(&["link", "set", "lo", "up"]);
    let before = fd_count();
    for cfg in [
        rtap::zcrx::QueueConfig::nodev(),
        rtap::zcrx::QueueConfig::copy(),
    ] {
        zcrx_lifecycle(cfg.area_size(1 << 20));
        assert_eq!(fd_count(), before, "fds leaked by a zcrx lifecycle");
    }
    let e = rtap::zcrx::Queue::open(&rtap::zcrx::QueueConfig::device("fdpk0", 0).fallback(false));
    assert!(e.is_err());
    assert_eq!(
        fd_count(),
        before,
        "fds leaked by a refused zcrx registration"
    );
    // Faults: ports whose interface moved to another namespace, or vanished
    // with the namespace of its veth peer, close every fd when dropped.
    let before = fd_count();
    for backend in [BackendKind::Uring, BackendKind::Rw] {
        moved_then_dropped(backend);
        assert_eq!(fd_count(), before, "fds leaked by a moved {backend} port");
    }
    for kick in [Kick::Uring, Kick::Sendto] {
        vanished_with_peer_namespace(kick);
        assert_eq!(fd_count(), before, "fds leaked by a vanished {kick:?} port");
    }
}

/// A started tap port with traffic, moved to another namespace, then dropped.
fn moved_then_dropped(backend: BackendKind) {
    let port = started("fdmv0", backend, 2);
    let pool = pool();
    check_all_queues_receive(&port, &pool, 2);
    let ns = NamedNetns::create("fdmv");
    ip(&["link", "set", "fdmv0", "netns", ns.name()]);
    drop(port);
    assert_pool_full(&pool);
    ns.run(|| assert_gone_soon("fdmv0"));
}

/// A packet port whose veth peer's namespace is deleted: the port's interface
/// goes too; the queues notice; everything is dropped.
fn vanished_with_peer_namespace(kick: Kick) {
    ip(&[
        "link", "add", "fdvp", "type", "veth", "peer", "name", "fdvk",
    ]);
    let ns = NamedNetns::create("fdvp");
    ip(&["link", "set", "fdvk", "netns", ns.name()]);
    let port = Port::open(PacketConfig::new("fdvp").kick(kick)).unwrap();
    port.start().unwrap();
    let pool = pool();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    let txq = port.tx_queue(0).unwrap();
    drop(ns);
    assert_gone_soon("fdvp");
    let deadline = std::time::Instant::now() + WAIT;
    while rxq.rx_burst(&mut Vec::new(), 8).is_ok() {
        assert!(std::time::Instant::now() < deadline, "rx never noticed");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop((rxq, txq));
    drop(port);
    assert_pool_full(&pool);
}
