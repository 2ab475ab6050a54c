//! The tokio feature: async queues that sleep on the interrupt fds.
#![cfg(feature = "tokio")]

mod common;
use common::*;
use rtap::async_tokio::{AsyncRxQueue, AsyncTxQueue};
use rtap::*;
use std::time::Duration;

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a live timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap()
}

/// Awaiting an idle queue sleeps (little CPU), and wakes for the frame.
fn recv_sleeps_until_a_frame(backend: BackendKind) {
    netns();
    let port = started("atrx0", backend, 1);
    let pool = pool();
    let rt = runtime();
    // Outside a runtime: a clear error, not a panic (the queue is dropped with it).
    let e = AsyncRxQueue::new(port.rx_queue(0, &pool).unwrap()).expect_err("outside a runtime");
    assert!(
        matches!(&e, Error::NoAsyncRuntime) && e.to_string().contains("tokio runtime"),
        "{e}"
    );
    let mut rxq = {
        let _g = rt.enter();
        AsyncRxQueue::new(port.rx_queue(0, &pool).unwrap()).unwrap()
    };
    let ifindex = port.ifindex();
    let injector = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        PacketSocket::bind(ifindex)
            .send(&test_frame(100, 42))
            .unwrap();
    });
    let cpu0 = thread_cpu();
    let wall0 = std::time::Instant::now();
    let got = rt.block_on(async {
        let mut out = Vec::with_capacity(16);
        loop {
            rxq.recv_burst(&mut out, 16).await.unwrap();
            if let Some(p) = out.iter().find(|p| test_seq(p.data()) == Some(42)) {
                return p.to_vec();
            }
            out.clear();
        }
    });
    let cpu = thread_cpu() - cpu0;
    let wall = wall0.elapsed();
    injector.join().unwrap();
    assert_eq!(got, test_frame(100, 42));
    // A busy loop burns about all of the ~300 ms it waits; sleeping, a small
    // part of it (a fraction, not a time: an emulated guest is slow at everything).
    assert!(cpu < wall / 3, "waiting used {cpu:?} of CPU in {wall:?}");
}

/// Sending more packets than the ring holds waits for completions, loses nothing.
fn send_all_waits_for_room(backend: BackendKind) {
    netns();
    let ring = RingConfig::default().tx_entries(64);
    let port = Port::open(TapConfig::new("attx0").backend(backend).ring(ring)).unwrap();
    port.start().unwrap();
    let pool = pool();
    let rt = runtime();
    let mut txq = {
        let _g = rt.enter();
        AsyncTxQueue::new(port.tx_queue(0).unwrap()).unwrap()
    };
    rt.block_on(async {
        for chunk in 0..50u32 {
            let mut pkts: Vec<Packet> = (0..100)
                .map(|i| pool.alloc_from(&test_frame(64, chunk * 100 + i)).unwrap())
                .collect();
            txq.send_all(&mut pkts).await.unwrap();
            assert!(pkts.is_empty());
        }
    });
    let mut txq = txq.into_inner();
    assert!(txq.flush(Duration::from_secs(2)));
    assert_eq!(txq.stats().packets, 5000);
    assert_eq!(txq.stats().errors, 0);
    drop(txq);
    assert_pool_full(&pool);
}

backend_tests!(recv_sleeps_until_a_frame, send_all_waits_for_room);

/// An AF_PACKET port's rx queue awaits frames on its socket's readiness (the
/// ring has a frame for the user), sleeping meanwhile; its tx queue sends a
/// burst larger than its ring.
#[test]
fn packet_port_recv_and_send_all() {
    netns();
    ip(&[
        "link", "add", "atpp", "type", "veth", "peer", "name", "atpk",
    ]);
    ip(&["link", "set", "atpk", "up"]);
    let port = Port::open(PacketConfig::new("atpp").frame_count(32)).unwrap();
    port.start().unwrap();
    wait_oper_up("atpk");
    let pool = pool();
    let rt = runtime();
    let (mut rxq, mut txq) = {
        let _g = rt.enter();
        (
            AsyncRxQueue::new(port.rx_queue(0, &pool).unwrap()).unwrap(),
            AsyncTxQueue::new(port.tx_queue(0).unwrap()).unwrap(),
        )
    };
    let peer = if_index("atpk").unwrap();
    let injector = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        PacketSocket::injector(peer)
            .send(&test_frame(100, 7))
            .unwrap();
    });
    let (cpu0, wall0) = (thread_cpu(), std::time::Instant::now());
    let got = rt.block_on(async {
        let mut out = Vec::with_capacity(16);
        loop {
            rxq.recv_burst(&mut out, 16).await.unwrap();
            if let Some(p) = out.iter().find(|p| test_seq(p.data()) == Some(7)) {
                return p.to_vec();
            }
            out.clear();
        }
    });
    let (cpu, wall) = (thread_cpu() - cpu0, wall0.elapsed());
    injector.join().unwrap();
    assert_eq!(got, test_frame(100, 7));
    assert!(cpu < wall / 3, "waiting used {cpu:?} of CPU in {wall:?}");
    let cap = PacketSocket::bind(peer);
    let mut pkts: Vec<Packet> = (0..100)
        .map(|i| pool.alloc_from(&test_frame(80, i)).unwrap())
        .collect();
    rt.block_on(txq.send_all(&mut pkts)).unwrap();
    assert_eq!(
        cap.recv_test_frames(100, WAIT).len(),
        100,
        "a 32-slot ring sent 100"
    );
}
