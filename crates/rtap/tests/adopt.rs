//! Ports on queue fds opened elsewhere (`Port::from_fds`, `TapConfig::fds`,
//! `fd=N`): the fds a helper opened carry traffic through rtap's queues, and
//! fds that are not what they claim are refused with the reason. (The
//! unprivileged daemon itself: tests/restricted.rs.) A namespace per test.

mod common;

use std::net::UdpSocket;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use common::*;
use rtap::{Error, Port, QueueFds, TapConfig};

const TUN_MQ: libc::c_int = libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE;
const TAP_MQ: libc::c_int = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE;

/// Sends datagrams to `to` until one arrives on `port`'s queues.
fn routed_in(port: &Port, to: &str) {
    let pool = pool();
    let mut rxqs: Vec<_> = (0..port.queue_count())
        .map(|q| port.rx_queue(q, &pool).unwrap())
        .collect();
    let s = UdpSocket::bind("0.0.0.0:0").unwrap();
    let deadline = Instant::now() + WAIT;
    let mut v = Vec::new();
    loop {
        s.send_to(b"adopted", to).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        for q in &mut rxqs {
            v.clear();
            q.rx_burst(&mut v, 32).unwrap();
            if v.iter().any(|p| p.data().ends_with(b"adopted")) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "nothing arrived on the adopted queues"
        );
    }
}

/// Two queue fds of a multi-queue TUN, as a helper opens them: a port on
/// them has two queues, the kind and name of the interface, no interface of
/// its own (it neither created nor deletes it), and carries traffic.
#[test]
fn a_port_on_a_helpers_tun_fds() {
    netns();
    let fds: Vec<OwnedFd> = (0..2).map(|_| tun_fd("adt0", TUN_MQ)).collect();
    ip(&["addr", "add", "10.71.0.1/24", "dev", "adt0"]);
    let port = Port::from_fds(fds).unwrap();
    assert_eq!(port.kind(), rtap::DeviceKind::TUN);
    assert_eq!((port.name().as_str(), port.queue_count()), ("adt0", 2));
    assert!(!port.created());
    assert!(
        !port.info().tx_offload.header,
        "opened without IFF_VNET_HDR"
    );
    port.start().unwrap();
    wait_oper_up("adt0");
    routed_in(&port, "10.71.0.9:9");
    drop(port);
    // The helper's fds were the port's copies' originals: closed with the
    // port's last copy, the (non-persistent) interface went with them.
    assert!(gone("adt0"));
}

/// The same through a spec (`tap:fd=N+M`), on a TAP with the virtio-net
/// header: offloads negotiated on the adopted fds.
#[test]
fn a_spec_adopts_fd_numbers() {
    netns();
    let a = tun_fd("adp0", TAP_MQ | libc::IFF_VNET_HDR);
    let b = tun_fd("adp0", TAP_MQ | libc::IFF_VNET_HDR);
    let spec = format!("tap:fd={}+{}", a.as_raw_fd(), b.as_raw_fd());
    let port = Port::open(rtap::parse_port_spec(&spec).unwrap()).unwrap();
    assert_eq!((port.name().as_str(), port.queue_count()), ("adp0", 2));
    assert!(port.info().tx_offload.header && port.offloads().any_gso());
    ip(&["addr", "add", "10.72.0.1/24", "dev", "adp0"]);
    port.start().unwrap();
    drop(port);
    // The numbers stay the caller's: still open, still queues of adp0 (not
    // detached by the port: a second port adopts them again).
    assert!(if_exists("adp0"));
    let again = Port::open(rtap::parse_port_spec(&spec).unwrap()).unwrap();
    assert_eq!(again.queue_count(), 2);
    again.start().unwrap();
    // Its queues still get frames (a detached queue gets none): the ARP
    // requests for a neighbour on the TAP's network.
    let pool = pool();
    let mut rxqs: Vec<_> = (0..2).map(|q| again.rx_queue(q, &pool).unwrap()).collect();
    let s = UdpSocket::bind("10.72.0.1:0").unwrap();
    let deadline = Instant::now() + WAIT;
    let mut v = Vec::new();
    'arp: loop {
        let _ = s.send_to(b"who", "10.72.0.9:9");
        std::thread::sleep(Duration::from_millis(20));
        for q in &mut rxqs {
            v.clear();
            q.rx_burst(&mut v, 32).unwrap();
            if v.iter()
                .any(|p| p.data().len() > 14 && p.data()[12..14] == [0x08, 0x06])
            {
                break 'arp;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the adopted queues were detached"
        );
    }
    drop((v, rxqs, again));
    drop((a, b));
    assert!(gone("adp0"));
}

/// Fds that are not what a port needs are refused, each with its reason.
#[test]
fn fds_that_are_not_tun_queues() {
    netns();
    let not_queue = |r: rtap::Result<Port>, needle: &str| match r {
        Err(e @ Error::NotTunQueue { .. }) => {
            assert!(e.to_string().contains(needle), "{e}")
        }
        other => panic!("want NotTunQueue ({needle}), got {other:?}"),
    };
    // A socket.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    not_queue(Port::from_fds(vec![sock.into()]), "TUNGETIFF");
    // /dev/net/tun never attached to an interface.
    let bare: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .unwrap()
        .into();
    not_queue(Port::from_fds(vec![bare]), "attached to no interface");
    // Queues of two interfaces.
    not_queue(
        Port::from_fds(vec![tun_fd("adx0", TUN_MQ), tun_fd("ady0", TUN_MQ)]),
        "not of adx0",
    );
    // A number no fd has.
    not_queue(
        Port::open(rtap::parse_port_spec("tun:fd=999999").unwrap()),
        "not an open fd",
    );
    // A TAP's fd for a TUN port.
    let tap = tun_fd("adk0", TAP_MQ);
    match Port::open(TapConfig::tun("x").fds(QueueFds::numbers(vec![tap.as_raw_fd()]))) {
        Err(Error::IncompatibleInterface { want: "TUN", .. }) => {}
        other => panic!("{other:?}"),
    }
    // Settings that are the opener's, a queue count that is not the fds'.
    for bad in [
        format!("tap:fd={},persist", tap.as_raw_fd()),
        format!("tap:fd={},owner=1000", tap.as_raw_fd()),
        format!("tap:fd={},queues=2", tap.as_raw_fd()),
        format!("tap:fd={},iface=other0", tap.as_raw_fd()),
    ] {
        let r = rtap::parse_port_spec(&bad).and_then(Port::open);
        assert!(r.is_err(), "{bad}");
    }
    for bad in ["tap:fd=", "tap:fd=x", "tap:fd=-1", "tap:fd=3+"] {
        assert!(
            matches!(rtap::parse_port_spec(bad), Err(Error::Spec { ref key, .. }) if key == "fd"),
            "{bad}"
        );
    }
    // Nothing was deleted or left attached: the TAP still has its fd.
    assert!(if_exists("adk0"));
}
