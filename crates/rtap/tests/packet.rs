//! AF_PACKET ports against the real kernel: a veth pair in the test's own
//! namespace, the port on one end (`…p`), frames injected and captured on the
//! other (`…k`). Every data-path test runs with both tx kicks (`uring`: an
//! SQPOLL io_uring send; `sendto`).

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::*;
use rtap::{Error, Fanout, FanoutMode, Kick, PacketConfig, Pool, PoolConfig, Port, Tpacket};

/// Frame sizes covering the small, odd and full-size cases.
fn sizes(n: u32) -> impl Iterator<Item = (u32, usize)> {
    (0..n).map(|i| (i, [60, 61, 64, 128, 333, 1000, 1514][i as usize % 7]))
}

/// Frames injected on the peer arrive in order, byte for byte; the queue's
/// counters and the pool agree.
fn rx_injected_frames(kick: Kick) {
    rx_frames(kick, Tpacket::V2);
}

/// The same through a TPACKET_V3 ring (blocks retired by the kernel's timer).
fn rx_injected_frames_v3(kick: Kick) {
    rx_frames(kick, V3_2MS);
}

fn rx_frames(kick: Kick, tp: Tpacket) {
    netns();
    let (p, k) = veth("rx");
    let port = packet_port(PacketConfig::new(p).kick(kick).tpacket(tp));
    let pool = pool();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    let inj = PacketSocket::injector(k);
    let n = scaled(700, 70) as u32;
    let mut got = Vec::new();
    for chunk in sizes(n).collect::<Vec<_>>().chunks(50) {
        for &(i, len) in chunk {
            inj.send(&test_frame(len, i)).unwrap();
        }
        got.extend(rx_test_frames(&mut rxq, chunk.len(), WAIT));
    }
    assert_eq!(got.len(), n as usize, "frames lost: {:?}", port.stats());
    let mut bytes = 0;
    for (p, (i, len)) in got.iter().zip(sizes(n)) {
        assert_eq!(p.to_vec(), test_frame(len, i), "frame {i}");
        bytes += len as u64;
    }
    let st = port.stats().unwrap();
    assert_eq!((st.rx.packets, st.rx.bytes), (n as u64, bytes));
    assert_eq!((st.rx.errors, st.imissed), (0, 0));
    drop(got);
    drop(rxq);
    assert_pool_full(&pool);
}

/// Frames sent by the port arrive on the peer in order, byte for byte, and
/// are counted once the kernel has them (after `flush`).
fn tx_seen_on_peer(kick: Kick) {
    netns();
    let (p, k) = veth("tx");
    let port = packet_port(PacketConfig::new(p).kick(kick));
    let pool = pool();
    let mut txq = port.tx_queue(0).unwrap();
    let cap = PacketSocket::bind(k);
    let n = scaled(600, 60) as u32;
    let mut got = Vec::new();
    let all: Vec<_> = sizes(n).collect();
    for chunk in all.chunks(100) {
        let pkts = chunk
            .iter()
            .map(|&(i, len)| pool.alloc_from(&test_frame(len, i)).unwrap())
            .collect();
        tx_all(&mut txq, pkts);
        got.extend(cap.recv_test_frames(chunk.len(), WAIT));
    }
    assert!(txq.flush(WAIT), "frames stuck in the tx ring");
    assert_eq!(got.len(), n as usize);
    for (f, &(i, len)) in got.iter().zip(&all) {
        assert_eq!(f, &test_frame(len, i), "frame {i}");
    }
    let st = port.stats().unwrap();
    let bytes: u64 = all.iter().map(|&(_, l)| l as u64).sum();
    assert_eq!(
        (st.tx.packets, st.tx.bytes, st.tx.errors),
        (n as u64, bytes, 0)
    );
    assert!(xstat(&port, "tx_q0_kicks") > 0);
    assert_pool_full(&pool);
}

/// A VLAN tag the kernel moved into the ring's slot header is put back: the
/// frame arrives as it was sent (V2 and V3).
fn vlan_tag_kept(kick: Kick) {
    for tp in [
        Tpacket::V2,
        Tpacket::V3 {
            block_timeout_ms: 1,
        },
    ] {
        netns();
        let (p, k) = veth(if tp == Tpacket::V2 { "vl2" } else { "vl3" });
        let port = packet_port(PacketConfig::new(p).kick(kick).tpacket(tp));
        let pool = pool();
        let mut rxq = port.rx_queue(0, &pool).unwrap();
        let inj = PacketSocket::injector(k);
        let mut tagged = Vec::new();
        for (tpid, tci) in [(0x8100u16, 0x2005u16), (0x88a8, 0x0fff)] {
            let mut f = test_frame(200, u32::from(tci));
            f.splice(
                12..12,
                tpid.to_be_bytes().into_iter().chain(tci.to_be_bytes()),
            );
            inj.send(&f).unwrap();
            tagged.push(f);
        }
        let deadline = Instant::now() + WAIT;
        let mut got = Vec::new();
        while got.len() < 2 && Instant::now() < deadline {
            let mut b = Vec::new();
            rxq.rx_burst(&mut b, 8).unwrap();
            got.extend(b.iter().map(|p| p.to_vec()));
        }
        assert_eq!(got, tagged, "{tp:?}: tags lost or changed");
    }
}

/// With several queues the kernel spreads flows over the sockets of one
/// fanout group: every queue gets some, no flow is split, nothing is lost.
fn fanout_spreads_flows(kick: Kick) {
    netns();
    let (p, k) = veth("fo");
    let port = packet_port(PacketConfig::new(p).kick(kick).queues(4));
    let pool = pool();
    let mut rxqs: Vec<_> = (0..4).map(|q| port.rx_queue(q, &pool).unwrap()).collect();
    let inj = PacketSocket::injector(k);
    let frames: Vec<Vec<u8>> = (0..512u32)
        .map(|i| flow_frame(80, (i % 256) as u16, i))
        .collect();
    let mut per: Vec<Vec<_>> = (0..4).map(|_| Vec::new()).collect();
    let got = inject_and_receive(&inj, &frames, &mut rxqs, &mut per);
    assert_eq!(got, frames.len(), "{:?}", port.stats());
    let mut flow_queue = std::collections::HashMap::new();
    for (q, pkts) in per.iter().enumerate() {
        assert!(!pkts.is_empty(), "queue {q} received nothing");
        for p in pkts {
            let (flow, _) = flow_of(&p.to_vec()).unwrap();
            assert_eq!(*flow_queue.entry(flow).or_insert(q), q, "flow {flow} split");
        }
        let st = port.stats().unwrap();
        assert_eq!(st.rx_queues[q].packets, pkts.len() as u64);
    }
}

/// Every fanout mode and flag the kernel takes opens and receives.
#[test]
fn fanout_modes() {
    netns();
    for (i, mode) in FanoutMode::ALL.into_iter().enumerate() {
        let (p, k) = veth(&format!("fm{i}"));
        let f = Fanout::new(mode).rollover(mode != FanoutMode::Rollover);
        let port = packet_port(PacketConfig::new(p).kick(Kick::Sendto).queues(2).fanout(f));
        let pool = pool();
        let mut rxqs: Vec<_> = (0..2).map(|q| port.rx_queue(q, &pool).unwrap()).collect();
        let inj = PacketSocket::injector(k);
        let frames: Vec<Vec<u8>> = (0..64u32).map(|i| flow_frame(80, i as u16, i)).collect();
        let mut per = vec![Vec::new(), Vec::new()];
        let got = inject_and_receive(&inj, &frames, &mut rxqs, &mut per);
        assert_eq!(got, 64, "{mode:?}");
    }
}

/// Two ports on one interface get two groups: the kernel made their ids unique.
#[test]
fn fanout_groups_of_two_ports_are_distinct() {
    netns();
    let (p, k) = veth("fu");
    let a = packet_port(PacketConfig::new(p.as_str()).kick(Kick::Sendto).queues(2));
    let b = packet_port(PacketConfig::new(p.as_str()).kick(Kick::Sendto).queues(2));
    let pool = pool();
    let mut ra: Vec<_> = (0..2).map(|q| a.rx_queue(q, &pool).unwrap()).collect();
    let mut rb: Vec<_> = (0..2).map(|q| b.rx_queue(q, &pool).unwrap()).collect();
    let inj = PacketSocket::injector(k);
    for i in 0..32u32 {
        inj.send(&flow_frame(80, i as u16, i)).unwrap();
    }
    // Each port sees every frame once: had b joined a's group, they would split.
    let (mut pa, mut pb) = (vec![Vec::new(), Vec::new()], vec![Vec::new(), Vec::new()]);
    assert!(rx_until(&mut ra, &mut pa, 32, WAIT));
    assert!(rx_until(&mut rb, &mut pb, 32, WAIT));
}

/// A full tx ring takes what fits and returns at once; frames are counted
/// as sent only when the kernel hands their slots back.
fn tx_full_ring_partial(kick: Kick) {
    netns();
    let (p, k) = veth("tf");
    let port = packet_port(PacketConfig::new(p.as_str()).kick(kick).frame_count(64));
    let pool = pool();
    let mut txq = port.tx_queue(0).unwrap();
    let cap = PacketSocket::bind(k);
    // The interface down: the kernel takes no frame, every slot stays queued.
    ip(&["link", "set", &p, "down"]);
    let mut pkts: Vec<_> = (0..100u32)
        .map(|i| pool.alloc_from(&test_frame(100, i)).unwrap())
        .collect();
    let t0 = Instant::now();
    let n = txq.tx_burst(&mut pkts).unwrap();
    assert_eq!(n, 64, "the ring holds 64 frames");
    assert_eq!(txq.tx_burst(&mut pkts).unwrap(), 0);
    assert!(t0.elapsed() < Duration::from_secs(1), "tx_burst blocked");
    assert_eq!(pkts.len(), 36);
    assert_eq!(txq.in_flight(), 64);
    assert!(xstat(&port, "tx_q0_ring_full") >= 1);
    assert_eq!(port.stats().unwrap().tx.packets, 0, "counted before sent");
    drop(txq);
    let mut txq = port.tx_queue(0).unwrap();
    assert_eq!(
        txq.in_flight(),
        64,
        "a queue taken again knows its ring is full"
    );
    ip(&["link", "set", &p, "up"]);
    wait_oper_up(&p);
    tx_all(&mut txq, pkts);
    assert!(txq.flush(WAIT));
    assert_eq!(port.stats().unwrap().tx.packets, 100);
    let got = cap.recv_test_frames(100, WAIT);
    let seqs: Vec<u32> = got.iter().filter_map(|f| test_seq(f)).collect();
    assert_eq!(seqs, (0..100).collect::<Vec<_>>(), "all frames, in order");
    assert_pool_full(&pool);
}

/// A frame larger than a slot, or (offloads off) than the MTU allows, is
/// refused before the ring (a tx error, counted `oversized`); one the kernel
/// refuses (here: a virtio-net header asking for a checksum beyond the frame)
/// comes back `WRONG_FORMAT`, is counted, and the frames queued behind it still
/// go, in order.
fn tx_refused_frames_counted(kick: Kick) {
    netns();
    let (p, k) = veth("to");
    let port = packet_port(
        PacketConfig::new(p)
            .kick(kick)
            .frame_size(4096)
            .frame_count(64),
    );
    let pool = Pool::new(PoolConfig::default().buf_size(8192)).unwrap();
    let mut txq = port.tx_queue(0).unwrap();
    let cap = PacketSocket::bind(k);
    let lens = [100, 5000, 200, 1600, 300, 250, 400];
    let pkts: Vec<_> = lens
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            let mut p = pool.alloc_from(&test_frame(l, i as u32)).unwrap();
            if i == 5 {
                p.set_vnet_hdr(rtap::wire::vnet::VnetHdr {
                    flags: rtap::wire::vnet::F_NEEDS_CSUM,
                    csum_start: 1000,
                    csum_offset: 6,
                    ..Default::default()
                });
            }
            p
        })
        .collect();
    tx_all(&mut txq, pkts);
    assert!(txq.flush(WAIT));
    let got = cap.recv_test_frames(4, WAIT);
    let seqs: Vec<u32> = got.iter().filter_map(|f| test_seq(f)).collect();
    assert_eq!(seqs, [0, 2, 4, 6], "the good frames, in order");
    let st = port.stats().unwrap();
    assert_eq!((st.tx.packets, st.tx.errors), (4, 3));
    assert_eq!(xstat(&port, "tx_q0_oversized"), 2);
    assert_eq!(xstat(&port, "tx_q0_wrong_format"), 1);
    // The ring is not stuck.
    tx_all(&mut txq, vec![pool.alloc_from(&test_frame(90, 7)).unwrap()]);
    assert!(txq.flush(WAIT));
    assert_eq!(cap.recv_test_frames(1, WAIT).len(), 1);
    assert_pool_full(&pool);
}

/// Frames the application does not read are dropped by the kernel when the
/// ring is full and show up in `imissed` (and `rx_q0_ring_drops`).
fn imissed_when_not_reading(kick: Kick) {
    netns();
    let (p, k) = veth("im");
    let port = packet_port(PacketConfig::new(p).kick(kick).frame_count(64));
    let pool = pool();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    let inj = PacketSocket::injector(k);
    for i in 0..500u32 {
        inj.send(&test_frame(100, i)).unwrap();
    }
    let got = rx_test_frames(&mut rxq, 500, Duration::from_millis(300));
    assert_eq!(got.len(), 64, "the ring held 64 frames");
    let st = port.stats().unwrap();
    assert_eq!(st.imissed, 500 - 64, "{st:?}");
    assert_eq!(xstat(&port, "rx_q0_ring_drops"), 500 - 64);
    // Counted once: the kernel clears its statistics on read, the port adds up.
    assert_eq!(port.stats().unwrap().imissed, 500 - 64);
}

/// The uring kick runs on an SQPOLL io_uring; sendto has none.
fn kick_in_effect(kick: Kick) {
    netns();
    let (p, k) = veth("ki");
    // An SQPOLL setting no other test uses: a thread of its own, which sleeps
    // when this test is idle (the shared one may be kept busy by other tests).
    let port = packet_port(
        PacketConfig::new(p)
            .kick(kick)
            .sqpoll(rtap::SqPoll::new(21)),
    );
    let pool = pool();
    let mut txq = port.tx_queue(0).unwrap();
    let cap = PacketSocket::bind(k);
    match kick {
        Kick::Uring => {
            let f = txq.ring_features().expect("an io_uring kick ring");
            assert!(f.sqpoll && f.sqpoll_shared, "{f:?}");
        }
        _ => assert!(txq.ring_features().is_none()),
    }
    for round in 0..3u32 {
        let pkts = (0..10)
            .map(|i| pool.alloc_from(&test_frame(64, round * 10 + i)).unwrap())
            .collect();
        tx_all(&mut txq, pkts);
        assert_eq!(cap.recv_test_frames(10, WAIT).len(), 10);
        // Let the SQ thread fall asleep: the next kick has to wake it.
        std::thread::sleep(Duration::from_millis(120));
    }
    assert!(xstat(&port, "tx_q0_kicks") >= 3);
    if kick == Kick::Uring {
        assert!(
            xstat(&port, "tx_q0_sq_wakeups") >= 1,
            "the SQ thread idles after 21 ms"
        );
    } else {
        assert_eq!(xstat(&port, "tx_q0_sq_wakeups"), 0);
    }
}

/// A queue taken again resumes where the kernel is: rx after re-taking gets
/// the new frames, tx after re-taking is sent.
fn queues_taken_again_resume(kick: Kick) {
    for tp in [
        Tpacket::V2,
        Tpacket::V3 {
            block_timeout_ms: 1,
        },
    ] {
        netns();
        let (p, k) = veth("ra");
        let port = packet_port(PacketConfig::new(p).kick(kick).tpacket(tp).frame_count(16));
        let pool = pool();
        let inj = PacketSocket::injector(k);
        let cap = PacketSocket::bind(k);
        let mut seq = 0;
        for _ in 0..3 {
            let mut rxq = port.rx_queue(0, &pool).unwrap();
            let mut txq = port.tx_queue(0).unwrap();
            for _ in 0..11 {
                inj.send(&test_frame(80, seq)).unwrap();
                tx_all(
                    &mut txq,
                    vec![pool.alloc_from(&test_frame(90, seq)).unwrap()],
                );
                seq += 1;
            }
            assert_eq!(rx_test_frames(&mut rxq, 11, WAIT).len(), 11, "{tp:?}");
            assert!(txq.flush(WAIT));
            assert_eq!(cap.recv_test_frames(11, WAIT).len(), 11, "{tp:?}");
        }
        assert_pool_full(&pool);
    }
}

/// The interface deleted under a running port: the queues report the device
/// gone (no panic, no hang), and the port closes.
fn interface_deleted_mid_traffic(kick: Kick) {
    netns();
    let (p, k) = veth("dl");
    let port = packet_port(PacketConfig::new(p.as_str()).kick(kick));
    let pool = pool();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    let mut txq = port.tx_queue(0).unwrap();
    let inj = PacketSocket::injector(k);
    for i in 0..20 {
        inj.send(&test_frame(80, i)).unwrap();
    }
    assert_eq!(rx_test_frames(&mut rxq, 20, WAIT).len(), 20);
    ip(&["link", "del", &p]);
    let deadline = Instant::now() + WAIT;
    let rx_err = loop {
        let mut b = Vec::new();
        match rxq.rx_burst(&mut b, 32) {
            Err(e) => break e,
            Ok(_) => assert!(Instant::now() < deadline, "rx never noticed"),
        }
    };
    assert!(matches!(rx_err, Error::DeviceVanished { .. }), "{rx_err:?}");
    let tx_err = loop {
        let mut pkts = vec![pool.alloc_from(&test_frame(80, 1)).unwrap()];
        match txq.tx_burst(&mut pkts) {
            Err(e) => break e,
            Ok(_) => assert!(Instant::now() < deadline, "tx never noticed"),
        }
    };
    assert!(matches!(tx_err, Error::DeviceVanished { .. }), "{tx_err:?}");
    drop((rxq, txq));
    drop(port);
    assert_pool_full(&pool);
}

kick_tests!(
    rx_injected_frames,
    rx_injected_frames_v3,
    tx_seen_on_peer,
    vlan_tag_kept,
    fanout_spreads_flows,
    tx_full_ring_partial,
    tx_refused_frames_counted,
    imissed_when_not_reading,
    kick_in_effect,
    queues_taken_again_resume,
    interface_deleted_mid_traffic,
);

/// Opening by ifindex, and the errors of a bad interface or geometry.
#[test]
fn open_by_index_and_errors() {
    netns();
    let (p, _) = veth("ix");
    let idx = if_index(&p).unwrap();
    let port = Port::open(PacketConfig::with_ifindex(idx).kick(Kick::Sendto)).unwrap();
    assert_eq!(port.name(), p);
    assert_eq!(port.ifindex(), idx);
    drop(port);
    let e = err(Port::open(PacketConfig::new("nosuch0")));
    assert!(matches!(e, Error::NoSuchInterface { .. }), "{e:?}");
    // The advice is the packet port's (an interface that exists), not a tap's.
    let text = e.to_string();
    assert!(text.contains("ip link") && !text.contains("tap"), "{text}");
    let e = err(Port::open(PacketConfig::new(p.as_str()).frame_size(1000)));
    assert!(
        matches!(
            e,
            Error::InvalidConfig {
                field: "frame_size",
                ..
            }
        ),
        "{e:?}"
    );
}

/// `stop` and drop take down only a link the port brought up: an interface
/// that was up before (someone else's) stays up.
#[test]
fn stop_leaves_a_link_it_found_up() {
    netns();
    let (p, _) = veth("st");
    let up = |name: &str| {
        let out = std::process::Command::new("ip")
            .args(["-o", "link", "show", "dev", name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains(",UP")
    };
    let a = Port::open(PacketConfig::new(p.as_str()).kick(Kick::Sendto)).unwrap();
    a.start().unwrap();
    a.stop().unwrap();
    assert!(!up(&p), "the port brought it up, stop takes it down");
    ip(&["link", "set", &p, "up"]);
    let b = Port::open(PacketConfig::new(p.as_str()).kick(Kick::Sendto)).unwrap();
    b.start().unwrap();
    b.stop().unwrap();
    assert!(up(&p), "found up, left up");
    b.start().unwrap();
    drop(b);
    assert!(up(&p), "found up, left up on drop");
}

/// Rx interrupts: the queue's fd is its socket, readable when the ring holds a
/// frame; `wait` sleeps until then (or the timeout).
#[test]
fn rx_wait_and_interrupt_fd() {
    netns();
    let (p, k) = veth("wt");
    let port = packet_port(PacketConfig::new(p).kick(Kick::Sendto));
    let pool = pool();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    rxq.enable_interrupt().unwrap();
    assert!(rxq.interrupt_fd().is_some(), "a pollable fd");
    assert!(
        !rxq.wait(Duration::from_millis(50)).unwrap(),
        "nothing came"
    );
    let injector = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        PacketSocket::injector(k).send(&test_frame(90, 5)).unwrap();
    });
    assert!(rxq.wait(WAIT).unwrap(), "woken by the frame");
    let got = rx_test_frames(&mut rxq, 1, WAIT);
    assert_eq!(got.len(), 1);
    injector.join().unwrap();
    let fd = rxq.interrupt_fd().unwrap();
    let mut pfd = [libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(&fd),
        events: libc::POLLIN,
        revents: 0,
    }];
    assert_eq!(
        rawsock::poll_fds(&mut pfd, Duration::from_millis(20)).unwrap(),
        0,
        "read empty"
    );
}

/// Link control and link events act on the attached interface, by ifindex.
#[test]
fn link_control_and_events_on_the_attached_interface() {
    netns();
    let (p, _) = veth("lc");
    let port = packet_port(PacketConfig::new(p.as_str()).kick(Kick::Sendto));
    let ch = port.link_events().unwrap().into_channel();
    port.set_mtu(1400).unwrap();
    assert_eq!(port.mtu().unwrap(), 1400);
    ip(&["link", "set", &p, "down"]);
    let mut seen = Vec::new();
    while !seen.contains(&rtap::LinkEvent::Down) {
        match ch.recv_timeout(WAIT) {
            Some(e) => seen.push(e),
            None => break,
        }
    }
    assert!(seen.contains(&rtap::LinkEvent::Mtu(1400)), "{seen:?}");
    assert!(seen.contains(&rtap::LinkEvent::Down), "{seen:?}");
}

/// `qdisc_bypass`: frames go straight to the driver and still arrive; other
/// packet sockets on the interface no longer see them leave.
#[test]
fn qdisc_bypass_sends_past_the_taps() {
    netns();
    for bypass in [false, true] {
        let (p, k) = veth(if bypass { "qb1" } else { "qb0" });
        let port = packet_port(
            PacketConfig::new(p.as_str())
                .kick(Kick::Sendto)
                .qdisc_bypass(bypass),
        );
        let pool = pool();
        let mut txq = port.tx_queue(0).unwrap();
        let peer = PacketSocket::bind(k);
        let local = rawsock::RawSocket::bind(port.ifindex()).unwrap();
        tx_all(
            &mut txq,
            vec![pool.alloc_from(&test_frame(100, 1)).unwrap()],
        );
        assert!(txq.flush(WAIT));
        assert_eq!(peer.recv_test_frames(1, WAIT).len(), 1, "bypass={bypass}");
        let mut buf = [0u8; 256];
        let mut outgoing = 0;
        while let Some(r) = local.recv(&mut buf, Duration::from_millis(100)).unwrap() {
            outgoing += (r.outgoing && test_seq(&buf[..r.len]) == Some(1)) as u32;
        }
        assert_eq!(
            outgoing,
            u32::from(!bypass),
            "bypass={bypass}: seen leaving"
        );
    }
}

/// TPACKET_V3: a ring of a few blocks the application does not read freezes;
/// the freezes and the drops are counted.
#[test]
fn v3_freezes_counted() {
    netns();
    let (p, k) = veth("fz");
    let port = packet_port(
        PacketConfig::new(p.as_str())
            .kick(Kick::Sendto)
            .tpacket(Tpacket::V3 {
                block_timeout_ms: 1,
            })
            .frame_count(8),
    );
    let pool = pool();
    let _rxq = port.rx_queue(0, &pool).unwrap();
    let inj = PacketSocket::injector(k);
    for i in 0..2000u32 {
        inj.send(&test_frame(1000, i)).unwrap();
    }
    let st = port.stats().unwrap();
    assert!(st.imissed > 0, "{st:?}");
    assert!(xstat(&port, "rx_q0_ring_freezes") > 0);
}

/// A receive filter on a packet port goes into the kernel: of test frames
/// and flow frames injected on the peer, only the test frames reach the
/// queue; removed, both do. A tap has no filter in the kernel and says so.
#[test]
fn rx_filter_in_the_kernel_or_why_not() {
    use rtap::capture::{bpf::Program, FilterPlace};
    netns();
    let (p, k) = veth("pf");
    let port = packet_port(PacketConfig::new(p.as_str()));
    let pool = Pool::new(PoolConfig::default()).unwrap();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    // ldh [12]; jeq #TEST_ETHERTYPE: keep the whole frame, else drop.
    let prog = Program::from_ddd(&format!(
        "4\n40 0 0 12\n21 0 1 {TEST_ETHERTYPE}\n6 0 0 262144\n6 0 0 0\n"
    ))
    .unwrap();
    assert_eq!(
        port.set_rx_filter(Some(&prog)).unwrap(),
        FilterPlace::Kernel
    );
    let inj = PacketSocket::injector(k);
    for i in 0..20u32 {
        inj.send(&flow_frame(100, 1, i)).unwrap();
        inj.send(&test_frame(100, i)).unwrap();
    }
    let mut per = vec![Vec::new()];
    rx_until(
        std::slice::from_mut(&mut rxq),
        &mut per,
        40,
        Duration::from_millis(500),
    );
    let seqs: Vec<u32> = per[0].iter().filter_map(|p| test_seq(p.data())).collect();
    assert_eq!(seqs, (0..20).collect::<Vec<_>>());
    assert_eq!(per[0].len(), 20, "no flow frame passed the filter");
    per[0].clear();
    assert_eq!(port.set_rx_filter(None).unwrap(), FilterPlace::Removed);
    inj.send(&flow_frame(100, 1, 99)).unwrap();
    rx_until(std::slice::from_mut(&mut rxq), &mut per, 1, WAIT);
    assert_eq!(per[0].len(), 1, "the flow frame arrives without the filter");
    drop(per);
    drop(rxq);
    assert_pool_full(&pool);
    let tap = Port::open(rtap::TapConfig::new("pftap%d")).unwrap();
    let place = tap.set_rx_filter(Some(&prog)).unwrap();
    assert!(
        matches!(&place, FilterPlace::User(why) if why.contains("no receive filter in the kernel")),
        "{place:?}"
    );
}
