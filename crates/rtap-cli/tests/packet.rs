//! The `rtap` binary with AF_PACKET ports (`packet:` specs): forwarding between
//! a tap and a veth, capture from a TPACKET_V3 ring, `rtap info`. Root needed.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// A tap and a packet port mix in one forwarder, both ways, frames intact and
/// in order; the JSON names each port's kind; the veth rtap found down is down
/// again afterwards, and still exists.
#[test]
fn fwd_between_a_tap_and_a_packet_port() {
    assert_root();
    private_netns();
    veth("cpkp", "cpkk");
    let mut child = spawn_fwd(&[
        "--port",
        "tap:iface=cpkt",
        "--port",
        "packet:iface=cpkp,kick=uring",
        "--duration",
        "3",
        "--json",
        "--xstats",
    ]);
    wait_up(&["cpkt", "cpkp"], &mut child);
    wait_oper_up("cpkk");
    let t = PacketSocket::bind("cpkt");
    let k = PacketSocket::bind("cpkk");
    const N: u32 = 200;
    for i in 0..N {
        t.send(&frame(0xa2, i));
        k.send(&frame(0xb2, i));
    }
    let at_k = k.recv_tagged(0xa2, N as usize, Duration::from_secs(2));
    let at_t = t.recv_tagged(0xb2, N as usize, Duration::from_secs(2));
    assert_eq!(at_k.len(), N as usize, "tap -> packet port -> veth peer");
    assert_eq!(at_t.len(), N as usize, "veth peer -> packet port -> tap");
    for (i, f) in at_k.iter().chain(&at_t).enumerate() {
        let tag = if i < N as usize { 0xa2 } else { 0xb2 };
        assert_eq!(
            f,
            &frame(tag, i as u32 % N),
            "frame {i} changed or reordered"
        );
    }
    let out = wait_output(child, Duration::from_secs(15));
    let j = expect_json(&out);
    assert_eq!(j.at("ports.0.kind"), &json!("tap"));
    assert_eq!(j.at("ports.1.kind"), &json!("packet"));
    assert_eq!(
        j.at("ports.1.engine"),
        &json!("tpacket+uring"),
        "the uring kick"
    );
    assert!(j.num("ports.1.tx_packets") >= N as f64);
    assert!(j.num("ports.1.rx_packets") >= N as f64);
    assert_eq!(j.num("ports.1.tx_errors") + j.num("ports.1.rx_errors"), 0.0);
    assert!(j.num("xstats.cpkp.tx_q0_kicks") >= 1.0);
    assert_eq!(j.num("xstats.cpkp.tx_q0_wrong_format"), 0.0);
    assert!(
        ifindex("cpkp").is_some(),
        "an interface rtap did not create stays"
    );
    assert!(!is_up("cpkp"), "rtap brought it up, and down again");
}

/// Two packet ports of two queues each (fanout groups), one worker thread:
/// every flow crosses, spread over both queues.
#[test]
fn fwd_packet_ports_with_fanout_queues() {
    assert_root();
    private_netns();
    veth("cfqa", "cfqA");
    veth("cfqb", "cfqB");
    let mut child = spawn_fwd(&[
        "--port",
        "packet:iface=cfqa,queues=2,kick=sendto",
        "--port",
        "packet:iface=cfqb,queues=2,fanout=hash",
        "--threads",
        "1",
        "--duration",
        "3",
        "--json",
        "--xstats",
    ]);
    wait_up(&["cfqa", "cfqb"], &mut child);
    wait_oper_up("cfqA");
    wait_oper_up("cfqB");
    let a = PacketSocket::bind("cfqA");
    let b = PacketSocket::bind("cfqB");
    const N: u32 = 256;
    for i in 0..N {
        // 64 UDP flows: the flow hash spreads them over the group's sockets.
        a.send(&udp_frame((i % 64) as u16, i));
    }
    let got = b.recv_matching(Duration::from_secs(3), N as usize, is_udp_7777);
    assert_eq!(got.len(), N as usize);
    let out = wait_output(child, Duration::from_secs(15));
    let j = expect_json(&out);
    let q0 = j.num("xstats.cfqa.rx_q0_unicast_packets");
    let q1 = j.num("xstats.cfqa.rx_q1_unicast_packets");
    assert!(q0 + q1 >= N as f64);
    assert!(
        q0 > 0.0 && q1 > 0.0,
        "fanout spread the frames: {q0} / {q1}"
    );
    assert_eq!(
        j.at("ports.0.engine"),
        &json!("tpacket+sendto"),
        "the sendto kick"
    );
}

/// `rtap capture` from a TPACKET_V3 ring writes every frame, in order.
#[test]
fn capture_from_a_tpacket_v3_ring() {
    assert_root();
    private_netns();
    veth("ccpp", "ccpk");
    let path = std::env::temp_dir().join(format!("rtap-pcap-v3-{}.pcap", std::process::id()));
    let path_s = path.to_str().unwrap().to_string();
    let mut child = Command::new(BIN)
        .args([
            "capture",
            "--port",
            "packet:iface=ccpp,tpacket=3,block_timeout=5",
            "--write",
            &path_s,
            "--duration",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_capturing(&mut child);
    wait_oper_up("ccpk");
    let k = PacketSocket::bind("ccpk");
    let sent: Vec<Vec<u8>> = (0..40).map(|i| frame(0xe2, i)).collect();
    for f in &sent {
        k.send(f);
    }
    let out = wait_output(child, Duration::from_secs(15));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = tagged_frames_in_pcap(&path, 0xe2);
    let _ = std::fs::remove_file(&path);
    assert_eq!(ours, sent);
}

/// A packet port on an interface that is not there: the error gives the
/// packet port's advice (no tap to create), in one line.
#[test]
fn fwd_on_a_missing_interface_says_what_a_packet_port_needs() {
    assert_root();
    private_netns();
    let out = Command::new(BIN)
        .args(["fwd", "--port", "packet:iface=doesnotexist0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"doesnotexist0\" does not exist"), "{err}");
    assert!(err.contains("ip link"), "{err}");
    assert!(!err.contains("tap"), "{err}");
}

fn info(spec: &str) -> Value {
    let out = Command::new(BIN)
        .args(["info", "--port", spec, "--json"])
        .output()
        .unwrap();
    expect_json(&out)
}

fn text(j: &Value, path: &str) -> String {
    match j.at(path) {
        Value::String(s) => s.clone(),
        other => panic!("{path}: {other:?}"),
    }
}

/// `rtap info` on a packet port: its kind, rings, kick and offloads.
#[test]
fn info_reports_a_packet_port() {
    assert_root();
    private_netns();
    veth("cinp", "cink");
    let j = info("packet:iface=cinp,queues=2,frames=256,kick=uring");
    assert_eq!(j.at("kind"), &json!("packet"));
    assert_eq!(j.at("name"), &json!("cinp"));
    assert_eq!(j.num("queues"), 2.0);
    assert_eq!(j.at("engine"), &json!("tpacket+uring"));
    assert_eq!(j.len("offloads"), 0, "offload is off by default");
    let rx = text(&j, "rx_engine");
    assert!(
        rx.contains("TPACKET_V2") && rx.contains("256 slots"),
        "{rx}"
    );
    let tx = text(&j, "tx_engine");
    assert!(tx.contains("SQPOLL"), "{tx}");
    let j = info("packet:iface=cinp,kick=sendto,offload=on,tpacket=3");
    assert_eq!(j.at("engine"), &json!("tpacket+sendto"));
    assert!(text(&j, "tx_engine").contains("send()"));
    assert!(text(&j, "rx_engine").contains("TPACKET_V3"));
    assert!(j.len("offloads") >= 3, "csum, tso4, tso6 at least");
    let out = Command::new(BIN)
        .args(["info", "--port", "packet:iface=nosuch9"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nosuch9"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

/// `rtap demo --kind packet`: two namespaces joined by AF_PACKET ports on veth
/// pairs; 64 MiB of TCP through them, every byte checked, through 64 KiB frames.
#[test]
fn demo_with_packet_ports_moves_verified_data() {
    assert_root();
    let out = Command::new(BIN)
        .args([
            "demo", "--kind", "packet", "--bytes", "64MiB", "--pings", "3", "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let j = expect_json(&wait_output(out, Duration::from_secs(180)));
    assert_eq!(j.at("ok"), &json!(true));
    assert_eq!(j.num("tcp.bytes_received"), (64u64 << 20) as f64);
    assert_eq!(j.at("tcp.verified"), &json!(true));
    assert_eq!(j.at("fwd.ports.0.kind"), &json!("packet"));
    // The engine is the AF_PACKET ring and its kick, not a tap backend.
    assert_eq!(j.at("fwd.ports.0.engine"), &json!("tpacket+sendto"));
    assert!(
        j.num("fwd.rx_lro_packets") > 0.0,
        "coalesced frames crossed"
    );
    assert_eq!(j.at("namespaces.0.iface"), &json!("veth-a"));
}

/// `rtap fwd --mode txonly` on a packet port: exactly `--count` frames leave.
#[test]
fn fwd_txonly_on_a_packet_port() {
    assert_root();
    private_netns();
    veth("ctxp", "ctxk");
    let k = PacketSocket::bind("ctxk");
    let out = Command::new(BIN)
        .args([
            "fwd",
            "--port",
            "packet:iface=ctxp",
            "--mode",
            "txonly",
            "--count",
            "500",
            "--pkt-size",
            "100",
            "--json",
        ])
        .output()
        .unwrap();
    let j = expect_json(&out);
    assert_eq!(j.num("sent_packets"), 500.0);
    let udp9 = |f: &[u8]| f.len() == 100 && f[12..14] == [0x08, 0x00] && f[36..38] == [0, 9];
    let got = k.recv_matching(Duration::from_secs(2), usize::MAX, udp9);
    assert_eq!(got.len(), 500, "exactly --count frames");
}
