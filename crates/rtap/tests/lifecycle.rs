//! Port lifecycle against the real kernel: creating (by name, by template),
//! attaching, persistence, name and queue-count validation, queue ownership
//! rules, changing the queue count, and stop/start cycles with traffic.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use rtap::*;

fn is_admin_up(port: &Port) -> bool {
    port.link().unwrap().flags & libc::IFF_UP as u32 != 0
}

/// One frame in through AF_PACKET (received on whichever queue the kernel picks)
/// and one out through the tap on queue 0.
fn ping_pong(port: &Port, pool: &Pool, tag: u32) {
    let cap = PacketSocket::bind(port.ifindex());
    let mut rxqs: Vec<RxQueue> = (0..port.queue_count())
        .map(|q| port.rx_queue(q, pool).unwrap())
        .collect();
    let mut txq = port.tx_queue(0).unwrap();
    cap.send(&test_frame(100, tag)).unwrap();
    let mut per: Vec<Vec<Packet>> = rxqs.iter().map(|_| Vec::new()).collect();
    rx_until(&mut rxqs, &mut per, 1, WAIT);
    let got: Vec<Vec<u8>> = per.iter().flatten().map(Packet::to_vec).collect();
    assert_eq!(got, vec![test_frame(100, tag)], "frame not received once");
    drop(per);
    tx_all(
        &mut txq,
        vec![pool.alloc_from(&test_frame(200, tag + 1)).unwrap()],
    );
    assert!(txq.flush(WAIT));
    let seen = cap.recv_test_frames(1, WAIT);
    assert_eq!(seen, vec![test_frame(200, tag + 1)]);
}

#[test]
fn create_by_name() {
    netns();
    let port = open(TapConfig::new("lcname0"));
    assert_eq!(port.name(), "lcname0");
    assert!(port.created());
    assert_eq!(if_index("lcname0"), Some(port.ifindex()));
    assert_eq!(port.queue_count(), 1);
    assert!(!port.is_started());
    assert!(!is_admin_up(&port), "link must stay down until start");
    port.start().unwrap();
    assert!(port.is_started());
    assert!(
        port.link().unwrap().is_up(),
        "link up and running after start"
    );
    port.stop().unwrap();
    assert!(!port.is_started());
    assert!(!is_admin_up(&port));
    drop(port);
    assert_gone_soon("lcname0");
}

#[test]
fn create_by_template() {
    netns();
    let a = open(TapConfig::new("rtap%d"));
    let b = open(TapConfig::new("rtap%d"));
    for p in [&a, &b] {
        let name = p.name();
        let digits = name.strip_prefix("rtap").expect("template prefix kept");
        assert!(
            !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()),
            "template not resolved: {name:?}"
        );
        assert_eq!(if_index(&name), Some(p.ifindex()));
        assert!(p.created());
    }
    assert_ne!(a.name(), b.name(), "two ports got the same interface");
    let (na, nb) = (a.name(), b.name());
    drop(a);
    drop(b);
    assert_gone_soon(&na);
    assert_gone_soon(&nb);
}

#[test]
fn non_persistent_interface_disappears_on_drop() {
    netns();
    let port = open(TapConfig::new("lcgone0").queues(2));
    port.start().unwrap();
    let pool = pool();
    ping_pong(&port, &pool, 10);
    assert!(if_exists("lcgone0"));
    port.stop().unwrap();
    drop(port);
    assert_gone_soon("lcgone0");
    assert_pool_full(&pool);
}

#[test]
fn persist_keeps_interface_and_allows_attach() {
    netns();
    let port = open(TapConfig::new("lcpers0").persist(true).queues(2));
    let ifindex = port.ifindex();
    drop(port);
    assert_eq!(
        if_index("lcpers0"),
        Some(ifindex),
        "persistent interface gone after drop"
    );

    // Re-attach: same interface, not created by this port, and it carries traffic.
    let port = open(TapConfig::new("lcpers0").attach(true).queues(2));
    assert!(!port.created());
    assert_eq!(port.ifindex(), ifindex);
    port.start().unwrap();
    let pool = pool();
    ping_pong(&port, &pool, 20);
    port.stop().unwrap();
    drop(port);
    assert_eq!(
        if_index("lcpers0"),
        Some(ifindex),
        "attached port deleted it"
    );
    ip(&["link", "del", "lcpers0"]);
    assert!(!if_exists("lcpers0"));
}

#[test]
fn attach_to_tap_made_by_ip_tuntap() {
    netns();
    ip(&[
        "tuntap",
        "add",
        "dev",
        "lcext0",
        "mode",
        "tap",
        "multi_queue",
        "vnet_hdr",
    ]);
    let ifindex = if_index("lcext0").unwrap();
    let port = open(TapConfig::new("lcext0").attach(true).queues(2));
    assert!(!port.created());
    assert_eq!(port.ifindex(), ifindex);
    assert_eq!(port.name(), "lcext0");
    port.start().unwrap();
    let pool = pool();
    ping_pong(&port, &pool, 30);
    port.stop().unwrap();
    drop(port);
    assert!(
        if_exists("lcext0"),
        "an interface that existed before must outlive the port"
    );
}

#[test]
fn attach_without_attach_flag_reuses_existing() {
    netns();
    ip(&[
        "tuntap",
        "add",
        "dev",
        "lcext1",
        "mode",
        "tap",
        "multi_queue",
    ]);
    let port = open(TapConfig::new("lcext1"));
    assert!(
        !port.created(),
        "existing interface must be reported as attached"
    );
    drop(port);
    assert!(if_exists("lcext1"));
}

#[test]
fn attach_missing_interface_fails() {
    netns();
    let e = Port::open(TapConfig::new("lcnope0").attach(true)).unwrap_err();
    assert!(
        matches!(&e, Error::NoSuchInterface { name, .. } if name == "lcnope0"),
        "{e:?}"
    );
    assert!(!if_exists("lcnope0"), "attach must never create");
}

#[test]
fn attach_single_queue_tap_is_incompatible() {
    netns();
    ip(&["tuntap", "add", "dev", "lcsq0", "mode", "tap"]);
    let e = Port::open(TapConfig::new("lcsq0").attach(true)).unwrap_err();
    assert!(matches!(e, Error::IncompatibleInterface { .. }), "{e:?}");
    assert!(if_exists("lcsq0"));
}

#[test]
fn name_validation() {
    netns();
    for name in ["abcdefghijklmnop", "a-very-long-name0", "abcdefghijklmn%d"] {
        let e = Port::open(TapConfig::new(name)).unwrap_err();
        assert!(matches!(e, Error::NameTooLong { .. }), "{name}: {e:?}");
    }
    for name in ["", "a b", "a/b", "a:b", "x%s", "x%d%d"] {
        let e = Port::open(TapConfig::new(name)).unwrap_err();
        assert!(matches!(e, Error::InvalidName { .. }), "{name:?}: {e:?}");
    }
    // IFNAMSIZ - 1 = 15 bytes is the longest valid name.
    let port = open(TapConfig::new("abcdefghijklmno"));
    assert_eq!(port.name(), "abcdefghijklmno");
    assert!(if_exists("abcdefghijklmno"));
}

#[test]
fn queue_count_validation_at_open() {
    netns();
    for n in [0u16, 129] {
        let e = Port::open(TapConfig::new("lcq%d").queues(n)).unwrap_err();
        assert!(
            matches!(e, Error::QueueCountOutOfRange { count, max: 128 } if count == n),
            "{n}: {e:?}"
        );
    }
    // Rx and tx counts cannot differ: a tap queue is one fd used both ways, and
    // the configuration holds one count of queue pairs.
    // Nothing was created by the failed attempts.
    assert!(!if_exists("lcq0"));
    // The maximum is accepted by the kernel too.
    let port = open(TapConfig::new("lcq%d").queues(128));
    assert_eq!(port.queue_count(), 128);
}

#[test]
fn set_queue_count_rules() {
    netns();
    let mut port = open(TapConfig::new("lcsqc0").queues(2));
    for n in [0u16, 129] {
        let e = port.set_queue_count(n).unwrap_err();
        assert!(matches!(e, Error::QueueCountOutOfRange { .. }), "{e:?}");
    }
    assert_eq!(port.queue_count(), 2, "failed calls must change nothing");

    port.start().unwrap();
    let e = port.set_queue_count(1).unwrap_err();
    assert!(matches!(e, Error::PortBusy { .. }), "{e:?}");

    // stop refuses while a queue handle lives, and says how many.
    let pool = pool();
    let rxq = port.rx_queue(1, &pool).unwrap();
    let txq = port.tx_queue(0).unwrap();
    assert_eq!(port.live_queues(), 2);
    let e = port.stop().unwrap_err();
    assert!(matches!(e, Error::PortBusy { live: 2, .. }), "{e:?}");
    assert!(port.is_started());
    drop(rxq);
    drop(txq);
    assert_eq!(port.live_queues(), 0);
    port.stop().unwrap();
    assert_pool_full(&pool);
    port.set_queue_count(3).unwrap();
    assert_eq!(port.queue_count(), 3);
    assert_eq!(port.options().queues, 3);
}

#[test]
fn queue_handles_are_exclusive() {
    netns();
    let port = open(TapConfig::new("lcbusy0").queues(2));
    let pool = pool();
    let e = err(port.rx_queue(0, &pool));
    assert!(matches!(e, Error::NotStarted { .. }), "{e:?}");
    let e = err(port.tx_queue(0));
    assert!(matches!(e, Error::NotStarted { .. }), "{e:?}");
    port.start().unwrap();

    let rxq = port.rx_queue(0, &pool).unwrap();
    let e = err(port.rx_queue(0, &pool));
    assert!(
        matches!(
            e,
            Error::QueueBusy {
                dir: "rx",
                queue: 0
            }
        ),
        "{e:?}"
    );
    let txq = port.tx_queue(0).unwrap();
    let e = err(port.tx_queue(0));
    assert!(
        matches!(
            e,
            Error::QueueBusy {
                dir: "tx",
                queue: 0
            }
        ),
        "{e:?}"
    );
    // Queue 1 is independent of queue 0.
    let rxq1 = port.rx_queue(1, &pool).unwrap();
    assert_eq!((rxq.id(), rxq1.id(), txq.id()), (0, 1, 0));
    let e = err(port.rx_queue(2, &pool));
    assert!(
        matches!(e, Error::NoSuchQueue { queue: 2, count: 2 }),
        "{e:?}"
    );
    let e = err(port.tx_queue(7));
    assert!(matches!(e, Error::NoSuchQueue { queue: 7, .. }), "{e:?}");

    // A failed second open must not release the first holder's claim.
    let e = err(port.rx_queue(0, &pool));
    assert!(matches!(e, Error::QueueBusy { .. }), "{e:?}");
    assert_eq!(port.live_queues(), 3);

    drop(rxq);
    drop(txq);
    drop(rxq1);
    // Released handles can be taken again.
    let rxq = port.rx_queue(0, &pool).unwrap();
    let txq = port.tx_queue(0).unwrap();
    drop((rxq, txq));
    port.stop().unwrap();
    assert_pool_full(&pool);
}

fn queue_count_reduce(backend: BackendKind) {
    netns();
    let mut port = open(TapConfig::new("lcred0").queues(4).backend(backend));
    let pool = pool();
    for n in [4u16, 2, 1] {
        if n != 4 {
            port.set_queue_count(n).unwrap();
        }
        assert_eq!(port.queue_count(), n);
        port.start().unwrap();
        check_all_queues_receive(&port, &pool, n);
        port.stop().unwrap();
        assert_pool_full(&pool);
        let st = port.stats().unwrap();
        assert_eq!(st.rx_queues.len(), n as usize);
        assert_eq!(st.tx_queues.len(), n as usize);
    }
    // And back up again.
    port.set_queue_count(2).unwrap();
    port.start().unwrap();
    check_all_queues_receive(&port, &pool, 2);
    port.stop().unwrap();
    assert_pool_full(&pool);
}

fn stop_start_cycles(backend: BackendKind) {
    netns();
    let port = open(TapConfig::new("lccyc0").queues(2).backend(backend));
    let pool = pool();
    for cycle in 0..5u32 {
        port.start().unwrap();
        assert!(port.link().unwrap().is_up(), "cycle {cycle}: link not up");
        // Fresh socket each cycle: a packet socket bound to a device that went
        // down reports ENETDOWN once.
        ping_pong(&port, &pool, 100 + cycle * 10);
        check_all_queues_receive(&port, &pool, 2);
        port.stop().unwrap();
        assert!(!is_admin_up(&port), "cycle {cycle}: link still up");
        assert_pool_full(&pool);
    }
    let st = port.stats().unwrap();
    assert_eq!(st.tx.packets, 5);
    assert_eq!(st.rx.packets, 5 * (1 + 512));
    assert_eq!(st.rx.errors + st.tx.errors, 0);
}

/// An idle queue returns from rx_burst at once (the data path never blocks).
fn idle_rx_burst_returns_at_once(backend: BackendKind) {
    netns();
    let port = started("lcidle0", backend, 1);
    let pool = pool();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    let t = std::time::Instant::now();
    let mut v = Vec::new();
    for _ in 0..1000 {
        assert_eq!(rxq.rx_burst(&mut v, 32).unwrap(), 0);
    }
    assert!(t.elapsed() < Duration::from_secs(1), "rx_burst blocks");
}

backend_tests!(
    queue_count_reduce,
    stop_start_cycles,
    idle_rx_burst_returns_at_once
);
