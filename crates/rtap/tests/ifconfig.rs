//! The interface's addresses, routes and link state from a port's options
//! (`addr=`, `route=`, `up=`, `mtu=`): what a VPN's tunnel interface needs,
//! set through rtap's netlink code and taken away again with the port. Real
//! TUN and TAP interfaces, the kernel's own view read back with `ip`, traffic
//! routed into the TUN. A namespace per test.

mod common;

use std::net::UdpSocket;

use common::*;
use rtap::{Error, IpPrefix, Port, TapConfig};

fn p(s: &str) -> IpPrefix {
    s.parse().unwrap()
}

fn ip_out(args: &[&str]) -> String {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("run ip");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A TUN opened with addresses (IPv4 and IPv6), routes, an MTU and `up`:
/// the kernel has all of it before `start`, a datagram to an address behind
/// the route arrives on the TUN's queue, and the interface goes with the port.
#[test]
fn a_tun_configured_from_its_options() {
    netns();
    enable_ipv6();
    let port = Port::open(
        TapConfig::tun("ifc0")
            .addr(p("10.61.0.1/24"))
            .addr(p("fd61::1/64"))
            .route(p("10.62.0.0/16"))
            .route(p("fd62::/48"))
            .mtu(1400)
            .up(true),
    )
    .unwrap();
    let link = ip_out(&["-o", "link", "show", "dev", "ifc0"]);
    assert!(link.contains("mtu 1400") && link.contains(",UP"), "{link}");
    let addrs = ip_out(&["-o", "addr", "show", "dev", "ifc0"]);
    assert!(addrs.contains("inet 10.61.0.1/24"), "{addrs}");
    assert!(addrs.contains("inet6 fd61::1/64"), "{addrs}");
    assert!(
        !addrs.contains("tentative"),
        "no duplicate address detection: {addrs}"
    );
    let r4 = ip_out(&["route", "show", "dev", "ifc0"]);
    assert!(r4.contains("10.62.0.0/16"), "{r4}");
    let r6 = ip_out(&["-6", "route", "show", "dev", "ifc0"]);
    assert!(r6.contains("fd62::/48"), "{r6}");
    port.start().unwrap();
    let pool = pool();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    let s = UdpSocket::bind("10.61.0.1:0").unwrap();
    let got = routed_into(&mut rxq, &s, "10.62.3.4:9", b"routed");
    assert_eq!(&got[16..20], &[10, 62, 3, 4]);
    assert_eq!(&got[28..], b"routed");
    drop(rxq);
    port.stop().unwrap();
    drop(port);
    assert!(gone("ifc0"), "created, so deleted");
}

/// Routes wait for the link: without `up` they come at `start`, and again
/// after a stop (the kernel drops IPv4 routes of a link that goes down).
#[test]
fn routes_come_with_the_link() {
    netns();
    let port = Port::open(
        TapConfig::new("ifr0")
            .addr(p("10.66.0.1/24"))
            .route(p("10.67.0.0/16")),
    )
    .unwrap();
    assert!(ip_out(&["-o", "addr", "show", "dev", "ifr0"]).contains("10.66.0.1/24"));
    assert!(!ip_out(&["route", "show", "dev", "ifr0"]).contains("10.67.0.0/16"));
    for _ in 0..2 {
        port.start().unwrap();
        let r = ip_out(&["route", "show", "dev", "ifr0"]);
        assert!(r.contains("10.67.0.0/16"), "{r}");
        port.stop().unwrap();
    }
}

/// On an interface that outlives the port (here one made with `ip tuntap`),
/// the port takes away exactly what it added: an address the interface had
/// stays.
#[test]
fn what_was_there_stays() {
    netns();
    ip(&["tuntap", "add", "dev", "ifp0", "mode", "tun", "multi_queue"]);
    ip(&["addr", "add", "10.63.0.9/24", "dev", "ifp0"]);
    let port = Port::open(
        TapConfig::tun("ifp0")
            .attach(true)
            .addr(p("10.63.0.1/24"))
            .addr(p("10.63.0.9/24"))
            .route(p("10.64.0.0/16"))
            .up(true),
    )
    .unwrap();
    let addrs = ip_out(&["-o", "addr", "show", "dev", "ifp0"]);
    assert!(
        addrs.contains("10.63.0.1/24") && addrs.contains("10.63.0.9/24"),
        "{addrs}"
    );
    assert!(ip_out(&["route", "show", "dev", "ifp0"]).contains("10.64.0.0/16"));
    drop(port);
    assert!(if_exists("ifp0"));
    let addrs = ip_out(&["-o", "addr", "show", "dev", "ifp0"]);
    assert!(
        !addrs.contains("10.63.0.1/"),
        "the port's address removed: {addrs}"
    );
    assert!(
        addrs.contains("10.63.0.9/24"),
        "the interface's own kept: {addrs}"
    );
    assert!(!ip_out(&["route", "show", "dev", "ifp0"]).contains("10.64.0.0/16"));
}

/// Bad addresses are refused before anything opens, with the key named;
/// what the kernel refuses is an error saying what and where.
#[test]
fn bad_addresses_and_routes() {
    for (spec, key) in [
        ("tun:iface=x,addr=10.0.0.1/33", "addr"),
        ("tun:iface=x,addr=10.0.0/24", "addr"),
        ("tun:iface=x,addr", "addr"),
        ("tun:iface=x,route=10.1.0.1/16", "route"),
        ("tun:iface=x,route=fd00::1/129", "route"),
        ("tun:iface=x,up=maybe", "up"),
    ] {
        match rtap::parse_port_spec(spec) {
            Err(Error::Spec { key: k, why, .. }) => {
                assert_eq!(k, key, "{spec}: {why}");
            }
            other => panic!("{spec}: {other:?}"),
        }
    }
    let twice = TapConfig::tun("x")
        .addr(p("10.0.0.1/24"))
        .addr(p("10.0.0.1/16"));
    assert!(matches!(
        Port::open(twice),
        Err(Error::InvalidConfig { field: "addr", .. })
    ));
    // Repeated keys add more.
    let s = rtap::parse_port_spec(
        "tun:iface=x,addr=10.0.0.1/24,addr=fd00::1/64,route=10.2.0.0/16,route=10.3.0.0/16,up",
    )
    .unwrap();
    assert_eq!(s.options().addrs.len(), 2);
    assert_eq!(s.options().routes.len(), 2);
    assert!(s.options().up);

    netns();
    // IPv6 is off in this namespace: the kernel refuses the address.
    match Port::open(TapConfig::tun("ifb0").addr(p("fd69::1/64"))) {
        Err(
            e @ Error::InterfaceConfig {
                op: "add address", ..
            },
        ) => {
            assert!(e.to_string().contains("fd69::1/64"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(gone("ifb0"), "nothing left behind");
    // A route to a prefix another interface has.
    ip(&[
        "link", "add", "ifd0", "type", "veth", "peer", "name", "ifd1",
    ]);
    ip(&["link", "set", "ifd0", "up"]);
    ip(&["route", "add", "10.68.0.0/16", "dev", "ifd0"]);
    match Port::open(TapConfig::tun("ifb1").route(p("10.68.0.0/16")).up(true)) {
        Err(
            e @ Error::InterfaceConfig {
                op: "add route", ..
            },
        ) => {
            assert!(e.to_string().contains("10.68.0.0/16"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        ip_out(&["route", "show", "dev", "ifd0"]).contains("10.68.0.0/16"),
        "the other interface's route untouched"
    );
}
