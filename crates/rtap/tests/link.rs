//! Link control and link-state events, checked through the library and through
//! the kernel's own view (`ip -o link show`).

mod common;
use common::*;
use rtap::*;
use std::time::{Duration, Instant};

/// The kernel's view of a link: (flags, mtu, mac).
fn kernel_view(name: &str) -> (Vec<String>, u32, String) {
    let out = std::process::Command::new("ip")
        .args(["-o", "link", "show", "dev", name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip link show {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let flags = text
        .split('<')
        .nth(1)
        .unwrap()
        .split('>')
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let words: Vec<&str> = text.split_whitespace().collect();
    let after = |k: &str| {
        words
            .iter()
            .position(|w| *w == k)
            .map(|i| words[i + 1].to_string())
            .unwrap()
    };
    (flags, after("mtu").parse().unwrap(), after("link/ether"))
}

fn port(name: &str) -> Port {
    let p = Port::open(TapConfig::new(name)).unwrap();
    p.start().unwrap();
    p
}

#[test]
fn up_and_down() {
    netns();
    let p = port("lkud0");
    assert!(p.link_up().unwrap());
    assert!(kernel_view("lkud0").0.contains(&"UP".to_string()));
    p.stop().unwrap();
    assert!(!p.link_up().unwrap());
    assert!(!kernel_view("lkud0").0.contains(&"UP".to_string()));
    p.start().unwrap();
    assert!(p.link_up().unwrap());
}

#[test]
fn mtu_set_and_read_back() {
    netns();
    let p = port("lkmtu0");
    // A tap's largest MTU is 65521: 65535 less the 14-byte Ethernet header.
    assert_eq!(p.link().unwrap().max_mtu, 65521);
    for mtu in [9000, 65521, 68, 1500] {
        p.set_mtu(mtu).unwrap();
        assert_eq!(p.mtu().unwrap(), mtu);
        assert_eq!(kernel_view("lkmtu0").1, mtu);
    }
    for bad in [0, 67, 65522, 65535] {
        let e = p.set_mtu(bad).expect_err("out of range");
        assert!(
            matches!(
                e,
                Error::MtuOutOfRange {
                    min: 68,
                    max: 65521,
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string().contains("68..=65521"),
            "the error gives the range: {e}"
        );
    }
    assert_eq!(p.mtu().unwrap(), 1500, "a refused change changes nothing");
}

#[test]
fn rx_buffers_follow_the_mtu() {
    netns();
    let p = port("lkmtu1");
    p.set_mtu(9000).unwrap();
    let pool = Pool::new(PoolConfig::default()).unwrap();
    let mut rxq = p.rx_queue(0, &pool).unwrap();
    let ps = PacketSocket::bind(p.ifindex());
    ps.send(&test_frame(9014, 1)).unwrap();
    let got = rx_test_frames(&mut rxq, 1, Duration::from_secs(2));
    assert_eq!(
        got.len(),
        1,
        "a 9014-byte frame fits queues opened after the MTU change"
    );
    assert_eq!(got[0].to_vec(), test_frame(9014, 1));
}

#[test]
fn mac_set_and_read_back() {
    netns();
    let p = port("lkmac0");
    let mac = MacAddr::new([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
    p.set_mac(mac).unwrap();
    assert_eq!(p.mac().unwrap(), mac);
    assert_eq!(kernel_view("lkmac0").2, "02:11:22:33:44:55");
    assert!(
        matches!(
            p.set_mac(MacAddr::new([0x01, 0, 0, 0, 0, 1])),
            Err(Error::NotUnicastMac { .. })
        ),
        "multicast refused"
    );
    assert!(
        matches!(
            p.set_mac(MacAddr::new([0; 6])),
            Err(Error::NotUnicastMac { .. })
        ),
        "zero refused"
    );
    assert_eq!(p.mac().unwrap(), mac);
}

#[test]
fn promisc_and_allmulti() {
    netns();
    let p = port("lkpm0");
    assert!(!p.promisc().unwrap());
    assert!(!p.allmulti().unwrap());
    p.set_promisc(true).unwrap();
    assert!(p.promisc().unwrap());
    assert!(kernel_view("lkpm0").0.contains(&"PROMISC".to_string()));
    p.set_allmulti(true).unwrap();
    assert!(p.allmulti().unwrap());
    assert!(kernel_view("lkpm0").0.contains(&"ALLMULTI".to_string()));
    p.set_promisc(false).unwrap();
    p.set_allmulti(false).unwrap();
    let (flags, _, _) = kernel_view("lkpm0");
    assert!(
        !flags.contains(&"PROMISC".to_string()) && !flags.contains(&"ALLMULTI".to_string()),
        "{flags:?}"
    );
    assert!(!p.promisc().unwrap() && !p.allmulti().unwrap());
}

#[test]
fn control_survives_a_rename_by_someone_else() {
    netns();
    let p = port("lkren0");
    ip(&["link", "set", "dev", "lkren0", "down"]);
    ip(&["link", "set", "dev", "lkren0", "name", "lkren1"]);
    assert_eq!(p.name(), "lkren1");
    p.set_mtu(4000).unwrap();
    assert_eq!(kernel_view("lkren1").1, 4000);
    ip(&["link", "set", "dev", "lkren1", "up"]);
    assert!(p.link_up().unwrap());
    assert_eq!(p.stats().unwrap().rx.packets, 0);
}

fn wait_for(w: &mut LinkWatcher, want: &LinkEvent, seen: &mut Vec<LinkEvent>) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !seen.contains(want) {
        assert!(Instant::now() < deadline, "no {want:?} event; saw {seen:?}");
        w.wait(Duration::from_millis(100));
        w.poll(seen).unwrap();
    }
}

#[test]
fn link_events_arrive_while_rx_runs() {
    netns();
    let p = port("lkev0");
    let pool = Pool::new(PoolConfig::default()).unwrap();
    let mut rxq = p.rx_queue(0, &pool).unwrap();
    // Rx interrupts on at the same time (the DPDK driver could not have both).
    rxq.enable_interrupt().unwrap();
    let mut w = p.link_events().unwrap();
    let mut seen = Vec::new();
    w.poll(&mut seen).unwrap();
    assert!(seen.is_empty(), "nothing happened yet: {seen:?}");

    ip(&["link", "set", "dev", "lkev0", "down"]);
    wait_for(&mut w, &LinkEvent::Down, &mut seen);
    ip(&["link", "set", "dev", "lkev0", "up"]);
    wait_for(&mut w, &LinkEvent::Up, &mut seen);
    ip(&["link", "set", "dev", "lkev0", "mtu", "2000"]);
    wait_for(&mut w, &LinkEvent::Mtu(2000), &mut seen);
    ip(&[
        "link",
        "set",
        "dev",
        "lkev0",
        "address",
        "02:aa:bb:cc:dd:ee",
    ]);
    wait_for(
        &mut w,
        &LinkEvent::Mac(MacAddr::new([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee])),
        &mut seen,
    );
    // The data path keeps working alongside.
    let ps = PacketSocket::bind(p.ifindex());
    ps.send(&test_frame(100, 5)).unwrap();
    assert_eq!(rx_test_frames(&mut rxq, 1, Duration::from_secs(2)).len(), 1);
    ip(&["link", "set", "dev", "lkev0", "down"]);
    ip(&["link", "set", "dev", "lkev0", "name", "lkev1"]);
    wait_for(&mut w, &LinkEvent::Renamed("lkev1".into()), &mut seen);
    ip(&["link", "del", "dev", "lkev1"]);
    wait_for(&mut w, &LinkEvent::Deleted, &mut seen);
    assert_eq!(seen.iter().filter(|e| **e == LinkEvent::Deleted).count(), 1);
}

#[test]
fn link_events_over_a_channel() {
    netns();
    let p = port("lkch0");
    let ch = p.link_events().unwrap().into_channel();
    ip(&["link", "set", "dev", "lkch0", "mtu", "1400"]);
    ip(&["link", "del", "dev", "lkch0"]);
    let mut seen = Vec::new();
    while let Some(ev) = ch.recv_timeout(Duration::from_secs(3)) {
        let done = ev == LinkEvent::Deleted;
        seen.push(ev);
        if done {
            break;
        }
    }
    assert!(seen.contains(&LinkEvent::Mtu(1400)), "{seen:?}");
    assert_eq!(seen.last(), Some(&LinkEvent::Deleted), "{seen:?}");
    drop(ch); // stops and joins the thread
}
