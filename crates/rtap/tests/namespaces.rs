//! Ports whose interface lives in another network namespace, while the test
//! thread stays in its own.

mod common;
use common::*;
use rtap::*;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

/// A named namespace (`ip netns add`), deleted on drop.
struct NamedNs(String);

impl NamedNs {
    fn new(tag: &str) -> NamedNs {
        let name = format!("rtapt-{}-{tag}", std::process::id());
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &name])
            .output();
        ip(&["netns", "add", &name]);
        NamedNs(name)
    }
    fn ip(&self, args: &[&str]) -> String {
        let mut a = vec!["-n", self.0.as_str()];
        a.extend_from_slice(args);
        let out = std::process::Command::new("ip").args(&a).output().unwrap();
        assert!(
            out.status.success(),
            "ip {a:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    /// Runs `f` on a thread inside the namespace.
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.0);
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = std::fs::File::open(&path).unwrap();
                // SAFETY: setns on this helper thread only.
                assert_eq!(
                    unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
                    0
                );
                f()
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for NamedNs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .output();
    }
}

fn visible_here(name: &str) -> bool {
    std::process::Command::new("ip")
        .args(["link", "show", "dev", name])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn port_in_a_named_namespace_moves_traffic_and_is_controlled_there() {
    netns();
    let ns = NamedNs::new("a");
    let mut cfg = TapConfig::new("nsp0").queues(2);
    cfg.port.netns = Some(Netns::Named(ns.0.clone()));
    cfg.port.mtu = Some(3000);
    let mut port = Port::open(cfg).unwrap();
    port.start().unwrap();
    assert!(
        ns.ip(&["link", "show", "dev", "nsp0"]).contains("mtu 3000"),
        "created there, MTU applied"
    );
    assert!(!visible_here("nsp0"), "and not in the caller's namespace");

    // Control goes to the namespace.
    port.set_mac(MacAddr::new([0x02, 1, 2, 3, 4, 5])).unwrap();
    assert!(ns
        .ip(&["link", "show", "dev", "nsp0"])
        .contains("02:01:02:03:04:05"));
    let mut w = port.link_events().unwrap();
    ns.ip(&["link", "set", "dev", "nsp0", "down"]);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while !seen.contains(&LinkEvent::Down) {
        assert!(Instant::now() < deadline, "no Down event: {seen:?}");
        w.wait(Duration::from_millis(100));
        w.poll(&mut seen).unwrap();
    }
    ns.ip(&["link", "set", "dev", "nsp0", "up"]);

    // Data path: frames injected inside the namespace reach the port's queues.
    let pool = pool();
    let mut rxqs: Vec<RxQueue> = (0..2).map(|q| port.rx_queue(q, &pool).unwrap()).collect();
    let ifindex = port.ifindex();
    ns.run(|| {
        let ps = PacketSocket::bind(ifindex);
        for i in 0..20 {
            ps.send(&test_frame(200, i)).unwrap();
        }
    });
    let mut got = 0;
    for q in rxqs.iter_mut() {
        got += rx_test_frames(q, 20 - got, Duration::from_millis(500)).len();
    }
    assert_eq!(got, 20);
    drop(rxqs);

    // Reconfiguration opens the new queue fds in the namespace too.
    port.stop().unwrap();
    port.set_queue_count(4).unwrap();
    port.start().unwrap();
    let mut rxqs: Vec<RxQueue> = (0..4).map(|q| port.rx_queue(q, &pool).unwrap()).collect();
    ns.run(|| {
        let ps = PacketSocket::bind(ifindex);
        for i in 0..20 {
            ps.send(&test_frame(100, 100 + i)).unwrap();
        }
    });
    let mut got = 0;
    for q in rxqs.iter_mut() {
        got += rx_test_frames(q, 20 - got, Duration::from_millis(500)).len();
    }
    assert_eq!(got, 20);
    drop(rxqs);
    drop(port);
    assert!(
        ns.ip(&["link", "show"])
            .lines()
            .all(|l| !l.contains("nsp0")),
        "gone with the port"
    );
}

#[test]
fn namespace_by_fd_and_missing_namespace() {
    netns();
    let ns = NamedNs::new("b");
    let f = std::fs::File::open(format!("/run/netns/{}", ns.0)).unwrap();
    let mut cfg = TapConfig::new("nsfd0");
    cfg.port.netns = Some(Netns::from_fd(f.as_fd()).unwrap());
    let port = Port::open(cfg).unwrap();
    drop(f); // the port keeps its own handle
    assert!(ns.ip(&["link", "show", "dev", "nsfd0"]).contains("nsfd0"));
    assert!(!visible_here("nsfd0"));
    drop(port);

    let mut cfg = TapConfig::new("nsx0");
    cfg.port.netns = Some(Netns::Named("rtapt-does-not-exist".into()));
    let e = Port::open(cfg).expect_err("no such namespace");
    assert!(e.to_string().contains("does not exist"), "{e}");
}
