//! Rx interrupts: sleeping in `wait` instead of busy polling, the eventfd for an
//! application's own epoll loop, and link events at the same time.

mod common;
use common::*;
use rtap::*;
use std::time::{Duration, Instant};

/// A frame injected while the queue sleeps in `wait` wakes it within 100 ms.
fn wait_wakes_for_a_frame(backend: BackendKind) {
    netns();
    let port = started("irqw0", backend, 1);
    let pool = pool();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    rxq.enable_interrupt().unwrap();
    let ifindex = port.ifindex();
    let sent = std::thread::scope(|s| {
        let t = s.spawn(move || {
            // The injector thread must be in the test's namespace: it is a child of
            // this thread, which unshared before spawning it.
            std::thread::sleep(Duration::from_millis(50));
            PacketSocket::bind(ifindex)
                .send(&test_frame(100, 7))
                .unwrap();
            Instant::now()
        });
        let mut woke = false;
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut got = Vec::new();
        while got.is_empty() && Instant::now() < deadline {
            woke |= rxq.wait(Duration::from_secs(3)).unwrap();
            let mut burst = Vec::with_capacity(8);
            rxq.rx_burst(&mut burst, 8).unwrap();
            got.extend(burst.into_iter().filter(|p| test_seq(p.data()) == Some(7)));
        }
        let at = Instant::now();
        let sent = t.join().unwrap();
        assert!(woke, "wait reported readiness");
        assert_eq!(got.len(), 1, "the frame arrived");
        at.duration_since(sent)
    });
    assert!(
        sent < Duration::from_millis(100),
        "woke {sent:?} after the frame was sent"
    );
}

/// Nothing arrives: `wait` returns false after about the timeout, not early.
fn wait_times_out(backend: BackendKind) {
    netns();
    let port = started("irqt0", backend, 1);
    let pool = pool();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    rxq.enable_interrupt().unwrap();
    // Let the kernel's own frames (if any) drain first.
    let mut burst = Vec::with_capacity(64);
    while rxq.wait(Duration::from_millis(50)).unwrap() {
        burst.clear();
        rxq.rx_burst(&mut burst, 64).unwrap();
    }
    let t = Instant::now();
    assert!(
        !rxq.wait(Duration::from_millis(200)).unwrap(),
        "nothing to wake for"
    );
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(190),
        "returned early after {waited:?}"
    );
    drop(rxq);
    assert_pool_full(&pool);
}

/// The interrupt fd becomes readable for an application's own poll/epoll loop.
fn interrupt_fd_is_pollable(backend: BackendKind) {
    netns();
    let port = started("irqf0", backend, 1);
    let pool = pool();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    assert!(
        backend == BackendKind::Rw || rxq.interrupt_fd().is_none(),
        "no eventfd before enabling"
    );
    rxq.enable_interrupt().unwrap();
    let ps = PacketSocket::bind(port.ifindex());
    ps.send(&test_frame(80, 3)).unwrap();
    // With COOP task run the completion is posted when the task next enters the
    // kernel: poll() itself is such an entry.
    let fd = rxq.interrupt_fd().unwrap();
    let ready = rawsock::wait_readable(fd, Duration::from_secs(2)).unwrap();
    assert!(ready, "the interrupt fd became readable");
    let got = rx_test_frames(&mut rxq, 1, Duration::from_secs(2));
    assert_eq!(got.len(), 1);
    drop(got);
    rxq.disable_interrupt().unwrap();
    assert!(backend == BackendKind::Rw || rxq.interrupt_fd().is_none());
}

/// Link events and rx interrupts at the same time (the DPDK driver could not).
fn link_events_with_interrupts(backend: BackendKind) {
    netns();
    let port = started("irql0", backend, 1);
    let pool = pool();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    rxq.enable_interrupt().unwrap();
    let mut w = port.link_events().unwrap();
    ip(&["link", "set", "dev", "irql0", "down"]);
    ip(&["link", "set", "dev", "irql0", "up"]);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while !(seen.contains(&LinkEvent::Down) && seen.contains(&LinkEvent::Up)) {
        assert!(Instant::now() < deadline, "events: {seen:?}");
        w.wait(Duration::from_millis(100));
        w.poll(&mut seen).unwrap();
    }
    let ps = PacketSocket::bind(port.ifindex());
    ps.send(&test_frame(90, 11)).unwrap();
    assert!(rxq.wait(Duration::from_secs(2)).unwrap());
    assert_eq!(rx_test_frames(&mut rxq, 1, Duration::from_secs(2)).len(), 1);
}

/// Deleting the interface ends a wait with an error instead of a hang.
fn deletion_ends_the_wait(backend: BackendKind) {
    netns();
    let port = started("irqd0", backend, 1);
    let pool = pool();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    rxq.enable_interrupt().unwrap();
    ip(&["link", "del", "dev", "irqd0"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "no error within 5 s");
        match rxq.wait(Duration::from_millis(200)) {
            Err(Error::DeviceVanished { .. }) => break,
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => {
                let mut b = Vec::with_capacity(8);
                if let Err(e) = rxq.rx_burst(&mut b, 8) {
                    assert!(matches!(e, Error::DeviceVanished { .. }), "{e}");
                    break;
                }
            }
        }
    }
    drop(rxq);
    assert_pool_full(&pool);
}

backend_tests!(
    wait_wakes_for_a_frame,
    wait_times_out,
    interrupt_fd_is_pollable,
    link_events_with_interrupts,
    deletion_ends_the_wait,
);
