//! The `rtap` binary with AF_XDP ports (`xdp:` specs): the demo over xdp ports
//! on veth pairs (TCP through the forwarder, MTU-sized frames), info, a
//! forwarder between an xdp port and a tap, macswap and rxonly on one xdp
//! port, and capture. Root needed.

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

/// Sends probe frames (tag 9) on `s` until one comes back: the forwarder's
/// sockets are bound (until then the program passes frames to the stack).
fn until_one_returns(s: &PacketSocket) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        s.send(&frame(9, 0));
        if !s.recv_tagged(9, 1, Duration::from_millis(100)).is_empty() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "nothing came back");
    }
}

/// macswap on one xdp port: frames come back out of the veth with their
/// addresses swapped and the rest untouched; rxonly takes them all and sends
/// nothing back.
#[test]
fn fwd_macswap_and_rxonly_on_an_xdp_port() {
    assert_root();
    private_netns();
    veth("mxp", "mxk");
    let child = spawn_fwd(&[
        "--port",
        "xdp:iface=mxp",
        "--mode",
        "macswap",
        "--duration",
        "3",
        "--json",
    ]);
    wait_oper_up("mxk");
    let s = PacketSocket::bind("mxk");
    until_one_returns(&s);
    for i in 0..40 {
        s.send(&frame(0xd1, i));
    }
    let back = s.recv_tagged(0xd1, 40, Duration::from_secs(2));
    assert_eq!(back.len(), 40, "every frame comes back");
    assert_macs_swapped(&back, 0xd1);
    let j = expect_json(&wait_output(child, Duration::from_secs(15)));
    assert_eq!(j.at("mode"), &json!("macswap"));
    assert!(j.num("ports.0.tx_packets") >= 41.0, "{j}");

    let mut child = spawn_fwd(&["--port", "xdp:iface=mxp", "--mode", "rxonly", "--json"]);
    // Once it forwards, its socket is bound: it takes every frame, and none
    // comes back. (A flood until a fixed duration ran out met ENOBUFS on a
    // slow 6.1 guest.)
    wait_stderr_line(&mut child, "rtap fwd: forwarding");
    for i in 0..40 {
        s.send(&frame(0xd2, i));
    }
    assert!(
        s.recv_tagged(0xd2, 1, Duration::from_millis(500))
            .is_empty(),
        "rxonly sends nothing back"
    );
    let j = expect_json(&stop_output(child, Duration::from_secs(15)));
    assert!(j.num("ports.0.rx_packets") >= 40.0, "{j}");
    assert_eq!(j.num("ports.0.tx_packets"), 0.0, "{j}");
}

/// `rtap capture` on an xdp port: once its socket is bound, every frame the
/// peer sends is in the pcap file, in order, byte for byte.
#[test]
fn capture_on_an_xdp_port() {
    assert_root();
    private_netns();
    veth("cxcp", "cxck");
    let path = std::env::temp_dir().join(format!("rtap-xdp-capture-{}.pcap", std::process::id()));
    let path_s = path.to_str().unwrap().to_string();
    let child = Command::new(BIN)
        .args([
            "capture",
            "--port",
            "xdp:iface=cxcp",
            "--write",
            &path_s,
            "--duration",
            "3",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_oper_up("cxck");
    let s = PacketSocket::bind("cxck");
    // Frames before the socket is bound go to the stack instead: send a
    // numbered frame every 20 ms for 2 s.
    let sent: Vec<Vec<u8>> = (0..100).map(|i| frame(0xe1, i)).collect();
    for f in &sent {
        s.send(f);
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = wait_output(child, Duration::from_secs(15));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = tagged_frames_in_pcap(&path, 0xe1);
    let _ = std::fs::remove_file(&path);
    assert!(ours.len() >= 50, "captured only {} of 100", ours.len());
    let first = sent.len() - ours.len();
    assert_eq!(
        ours,
        sent[first..],
        "every frame from the first captured on"
    );
}
