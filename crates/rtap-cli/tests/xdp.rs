//! The `rtap` binary with AF_XDP ports (`xdp:` specs): the demo over xdp ports
//! on veth pairs (TCP through the forwarder, MTU-sized frames), info, and a
//! forwarder between an xdp port and a tap. Root needed.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::json;

/// Two namespaces joined by xdp ports on veth pairs: ping and 64 MiB of
/// verified TCP; the frames cross by descriptor (one pool, one UMEM).
#[test]
fn demo_over_xdp_ports() {
    assert_root();
    let out = Command::new(BIN)
        .args([
            "demo", "--kind", "xdp", "--bytes", "64MiB", "--pings", "3", "--json",
        ])
        .output()
        .unwrap();
    let j = expect_json(&out);
    assert_eq!(j.at("ok"), &json!(true), "{j}");
    assert_eq!(j.at("tcp.verified"), &json!(true));
    assert_eq!(j.num("ping.received"), 3.0);
    assert_eq!(j.at("fwd.ports.0.kind"), &json!("xdp"));
    assert_eq!(j.at("fwd.ports.0.engine"), &json!("xsk+sendto"));
    assert_eq!(j.num("fwd.dropped_packets"), 0.0);
}

/// `rtap info` on an xdp port: the kind, the engine, the program and where it
/// runs, the rings.
#[test]
fn info_reports_an_xdp_port() {
    assert_root();
    private_netns();
    veth("cxp", "cxk");
    let out = Command::new(BIN)
        .args([
            "info",
            "--port",
            "xdp:iface=cxp,kick=uring,ring=512",
            "--json",
        ])
        .output()
        .unwrap();
    let j = expect_json(&out);
    assert_eq!(j.at("kind"), &json!("xdp"));
    assert_eq!(j.at("engine"), &json!("xsk+uring"));
    let notes = j.at("offload_notes").as_str().unwrap().to_string();
    assert!(notes.contains("native mode"), "{notes}");
    let rx = j.at("rx_engine").as_str().unwrap().to_string();
    assert!(rx.contains("512 entries") && rx.contains("UMEM"), "{rx}");
    let tx = j.at("tx_engine").as_str().unwrap().to_string();
    assert!(tx.contains("SQPOLL"), "{tx}");
}

/// A forwarder between an xdp port and a tap: frames sent into the tap's
/// peer side come out of the veth, and back.
#[test]
fn fwd_between_an_xdp_port_and_a_tap() {
    assert_root();
    private_netns();
    veth("fxp", "fxk");
    let child = spawn_fwd(&[
        "--port",
        "xdp:iface=fxp",
        "--port",
        "tap:iface=fxt",
        "--duration",
        "4",
        "--json",
    ]);
    let mut child = child;
    wait_up(&["fxt"], &mut child);
    wait_oper_up("fxk");
    let (k, t) = (PacketSocket::bind("fxk"), PacketSocket::bind("fxt"));
    // The workers bind their sockets a moment after the links are up: until
    // then the program passes frames to the stack. Probe until one crosses.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        k.send(&frame(9, 0));
        if !t.recv_tagged(9, 1, Duration::from_millis(100)).is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "nothing crossed");
    }
    for i in 0..20 {
        k.send(&frame(1, i));
    }
    assert_eq!(t.recv_tagged(1, 20, Duration::from_secs(3)).len(), 20);
    for i in 0..20 {
        t.send(&frame(2, i));
    }
    assert_eq!(k.recv_tagged(2, 20, Duration::from_secs(3)).len(), 20);
    let j = expect_json(&wait_output(child, Duration::from_secs(15)));
    assert_eq!(j.at("ports.0.kind"), &json!("xdp"));
    assert!(j.num("ports.0.rx_packets") >= 20.0 && j.num("ports.0.tx_packets") >= 20.0);
}
