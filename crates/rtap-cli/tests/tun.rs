//! The `rtap` binary with TUN ports (`tun:` specs): the demo over TUNs (IP
//! packets through the forwarder, TSO packets whole), capture to raw-IP pcaps,
//! info, and the modes that need Ethernet refused. Root needed.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Two namespaces joined by TUN ports: ping and 64 MiB of verified TCP, the
/// kernel's TSO packets crossing whole.
#[test]
fn demo_over_tun_ports() {
    assert_root();
    let out = Command::new(BIN)
        .args([
            "demo", "--kind", "tun", "--bytes", "64MiB", "--pings", "3", "--json",
        ])
        .output()
        .unwrap();
    let j = expect_json(&out);
    assert_eq!(j.at("ok"), &json!(true));
    assert_eq!(j.at("tcp.verified"), &json!(true));
    assert_eq!(j.at("fwd.ports.0.kind"), &json!("tun"));
    assert!(
        j.num("fwd.rx_lro_packets") > 0.0,
        "TSO packets crossed whole"
    );
}

/// Macswap and the generators work on Ethernet frames: refused on a TUN, with
/// what to use instead.
#[test]
fn ethernet_modes_refused_on_tun() {
    assert_root();
    private_netns();
    for mode in ["macswap", "txonly"] {
        let out = Command::new(BIN)
            .args([
                "fwd",
                "--port",
                "tun:iface=ctm0",
                "--mode",
                mode,
                "--duration",
                "1",
            ])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("IP packets") && err.contains("--mode io"),
            "{mode}: {err}"
        );
    }
}

/// `rtap capture` on a TUN writes a raw-IP pcap (LINKTYPE_RAW): the packets
/// start with their IP header.
#[test]
fn capture_tun_writes_raw_ip() {
    assert_root();
    private_netns();
    let path = std::env::temp_dir().join(format!("rtapc-tun-{}.pcap", std::process::id()));
    let mut child = Command::new(BIN)
        .args([
            "capture",
            "--port",
            "tun:iface=ctc0,offload=off,addr=10.90.0.1/24",
            "--format",
            "pcap",
            "--write",
        ])
        .arg(&path)
        .args(["--count", "3", "--duration", "10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_capturing(&mut child);
    let s = std::net::UdpSocket::bind("10.90.0.1:0").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        match s.send_to(b"captured", "10.90.0.2:9") {
            // The capture had its three and is ending: its TUN (and so the
            // route) went before the process did.
            Err(e) if e.raw_os_error() == Some(libc::ENETUNREACH) => break,
            r => {
                r.unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = wait_output(child, Duration::from_secs(15));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pcap = std::fs::read(&path).unwrap();
    // Wireshark's reader takes the raw-IP pcap: its three IP packets.
    let ts = tshark(&["-r", path.to_str().unwrap(), "-Y", "ip or ipv6"]);
    let _ = std::fs::remove_file(&path);
    assert!(
        ts.status.success(),
        "{}",
        String::from_utf8_lossy(&ts.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ts.stdout).lines().count(), 3);
    let word: [u8; 4] = pcap[20..24].try_into().unwrap();
    let linktype = if pcap[..4] == [0xa1, 0xb2, 0xc3, 0xd4] {
        u32::from_be_bytes(word)
    } else {
        u32::from_le_bytes(word)
    };
    assert_eq!(linktype, 101, "LINKTYPE_RAW");
    // The first record's data follows the 24-byte file header and 16-byte
    // record header: an IP header (the kernel's own IPv6 solicitations may come
    // before our datagrams).
    assert!(
        matches!(pcap[40] >> 4, 4 | 6),
        "an IP header first: {:x}",
        pcap[40]
    );
}

/// `rtap info` names the kind.
#[test]
fn info_reports_a_tun_port() {
    assert_root();
    private_netns();
    let out = Command::new(BIN)
        .args(["info", "--port", "tun:iface=cti0", "--json"])
        .output()
        .unwrap();
    let j = expect_json(&out);
    assert_eq!(j.at("kind"), &json!("tun"));
    assert_eq!(j.at("mac"), &json!(""));
}

/// `--mode vpn` (split and merge every packet) carries verified TCP between
/// TUNs, as the benchmark's `tun-vpn` contender runs it; and it wants TUNs.
#[test]
fn vpn_mode_forwards_tcp() {
    assert_root();
    let out = Command::new(BIN)
        .args([
            "bench",
            "--only",
            "tcp",
            "--contenders",
            "tun-vpn",
            "--quick",
            "--json",
        ])
        .output()
        .unwrap();
    let j = expect_json(&out);
    assert_eq!(j.at("0.contender"), &json!("tun-vpn"));
    assert!(j.num("0.gbit_per_s") > 0.0, "{j}");
    private_netns();
    let out = Command::new(BIN)
        .args([
            "fwd",
            "--port",
            "tap:iface=ctv0",
            "--mode",
            "vpn",
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("give tun ports"));
}

/// `--mode vpn-mt --mt-drive tasks` (the queues driven by tokio's tasks, no
/// driver threads) carries verified TCP between TUNs, as the contender
/// `tun-async-mt-tasks` runs it; `--mt-drive` with another mode is a usage
/// error.
#[test]
fn vpn_mt_with_task_driven_queues_forwards_tcp() {
    assert_root();
    let out = Command::new(BIN)
        .args([
            "bench",
            "--only",
            "tcp",
            "--contenders",
            "tun-async-mt-tasks",
            "--quick",
            "--json",
        ])
        .output()
        .unwrap();
    let j = expect_json(&out);
    assert_eq!(j.at("0.contender"), &json!("tun-async-mt-tasks"));
    assert!(j.num("0.gbit_per_s") > 0.0, "{j}");
    private_netns();
    let out = Command::new(BIN)
        .args([
            "fwd",
            "--port",
            "tun:iface=ctv1",
            "--mt-drive",
            "tasks",
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--mt-drive applies to --mode vpn-mt only"),
        "{err}"
    );
}
