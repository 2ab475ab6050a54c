//! End-to-end tests of the `rtap` binary. The demo and fwd tests need root (they
//! create namespaces and taps); they fail with a clear message otherwise.

mod common;

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------

#[test]
fn bad_spec_key_is_named() {
    let out = Command::new(BIN)
        .args(["fwd", "--port", "tap:iface=x,bogus=1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.trim();
    assert!(line.starts_with("error: "), "{err}");
    assert!(line.contains("bogus"), "{err}");
    assert_eq!(line.lines().count(), 1, "one-line error expected: {err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn usage_errors_are_one_line() {
    let out = Command::new(BIN).args(["fwd"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.trim().lines().count() == 1,
        "{err}"
    );
    assert!(err.contains("--port"), "{err}");
}

#[test]
fn help_has_examples() {
    for cmd in [&[][..], &["fwd"][..], &["demo"][..]] {
        let out = Command::new(BIN).args(cmd).arg("--help").output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Example"), "{cmd:?} --help: {text}");
        assert!(text.contains("rtap "), "{cmd:?} --help: {text}");
    }
}

#[test]
fn demo_json_reports_traffic() {
    assert_root();
    let child = Command::new(BIN)
        .args(["demo", "--seconds", "1", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = wait_output(child, Duration::from_secs(60));
    let j = expect_json(&out);
    assert_eq!(j.at("ok"), &json!(true), "{j:?}");
    assert_eq!(j.at("error"), &Value::Null);
    assert_eq!(j.len("namespaces"), 2);
    for i in 0..2 {
        let ns = j.at(&format!("namespaces.{i}.netns"));
        assert!(
            matches!(ns, Value::String(s) if s.ends_with(&format!("-{pid}"))),
            "{ns:?}"
        );
    }
    assert_eq!(j.num("ping.sent"), 10.0);
    assert!(j.num("ping.received") > 0.0);
    for k in ["ping.rtt_min_ms", "ping.rtt_avg_ms", "ping.rtt_max_ms"] {
        assert!(j.num(k) > 0.0, "{k}");
    }
    assert!(j.num("tcp.seconds") > 0.5);
    assert!(j.num("tcp.bytes_sent") > 0.0);
    assert_eq!(j.num("tcp.bytes_received"), j.num("tcp.bytes_sent"));
    assert!(j.num("tcp.gbit_per_s") > 0.0);
    assert_eq!(j.at("tcp.verified"), &json!(true));
    // Verified means every byte was compared with what the sender streamed.
    assert_eq!(j.num("tcp.bytes_checked"), j.num("tcp.bytes_received"));
    assert_eq!(j.at("tcp.mismatch_at"), &Value::Null);
    assert_eq!(j.at("tcp.bytes_requested"), &Value::Null);
    assert!(j.num("fwd.forwarded_packets") > 0.0);
    assert!(j.num("fwd.forwarded_bytes") > 0.0);
    assert!(j.num("fwd.elapsed_s") > 0.0);
    assert_eq!(j.len("fwd.ports"), 2);
    for i in 0..2 {
        for k in ["rx_packets", "rx_bytes", "tx_packets", "tx_bytes"] {
            assert!(j.num(&format!("fwd.ports.{i}.{k}")) > 0.0, "port {i} {k}");
        }
    }
    // Everything is cleaned up: no namespace of this run is left.
    let left: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !left
            .iter()
            .any(|n| n.starts_with("rtapdemo-") && n.ends_with(&format!("-{pid}"))),
        "namespaces left behind: {left:?}"
    );
}

/// Runs `rtap demo ARGS --json` and returns its report and how long it took.
fn run_demo(args: &[&str]) -> (Value, Duration) {
    let t0 = Instant::now();
    let child = Command::new(BIN)
        .arg("demo")
        .args(args)
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_output(child, Duration::from_secs(180));
    (expect_json(&out), t0.elapsed())
}

#[test]
fn demo_moves_1gib_verified_through_coalesced_frames() {
    assert_root();
    const GIB: f64 = 1073741824.0;
    // Offloads are on by default (port specs ask for every offload).
    let (j, took) = run_demo(&["--bytes", "1GiB", "--pings", "2"]);
    eprintln!(
        "demo --bytes 1GiB: {took:.2?} wall, tcp {:.2} s, {:.2} Gbit/s, {} coalesced frames",
        j.num("tcp.seconds"),
        j.num("tcp.gbit_per_s"),
        j.num("fwd.rx_lro_packets")
    );
    assert_eq!(j.at("ok"), &json!(true), "{j:?}");
    assert_eq!(j.at("tcp.error"), &Value::Null);
    assert_eq!(j.num("tcp.bytes_requested"), GIB);
    assert_eq!(j.num("tcp.bytes_sent"), GIB);
    assert_eq!(j.num("tcp.bytes_received"), GIB);
    assert_eq!(j.num("tcp.bytes_checked"), GIB, "every byte compared");
    assert_eq!(j.at("tcp.mismatch_at"), &Value::Null);
    assert_eq!(j.at("tcp.verified"), &json!(true));
    assert!(j.num("tcp.gbit_per_s") > 0.0);
    // The kernel handed the forwarder coalesced (larger than MTU) frames: the
    // data side A -> B sees them on port 0.
    for i in 0..2 {
        let off = j.at(&format!("fwd.ports.{i}.offloads"));
        assert!(
            matches!(off, Value::String(s) if s.contains("tso4")),
            "{off:?}"
        );
    }
    assert!(j.num("fwd.ports.0.rx_lro_packets") > 0.0, "{j:?}");
    assert!(j.num("fwd.rx_lro_packets") > 0.0);
    assert_eq!(
        j.num("fwd.rx_lro_packets"),
        j.num("fwd.ports.0.rx_lro_packets") + j.num("fwd.ports.1.rx_lro_packets")
    );
    // 1 GiB in 64 KiB frames is ~16 400 of them; MTU-sized it would be ~740 000.
    assert!(j.num("fwd.ports.0.rx_packets") < 200_000.0, "{j:?}");
}

#[test]
fn demo_without_offloads_sees_no_coalesced_frames() {
    assert_root();
    let (j, took) = run_demo(&[
        "--bytes",
        "256MiB",
        "--pings",
        "2",
        "--port-opts",
        "offload=off",
    ]);
    eprintln!(
        "demo --bytes 256MiB offload=off: {took:.2?} wall, {:.2} Gbit/s",
        j.num("tcp.gbit_per_s")
    );
    assert_eq!(j.at("ok"), &json!(true), "{j:?}");
    assert_eq!(j.num("tcp.bytes_received"), (256u64 << 20) as f64);
    assert_eq!(j.at("tcp.verified"), &json!(true));
    for i in 0..2 {
        assert_eq!(j.at(&format!("fwd.ports.{i}.offloads")), &json!("none"));
        assert_eq!(j.num(&format!("fwd.ports.{i}.rx_lro_packets")), 0.0);
    }
    assert_eq!(j.num("fwd.rx_lro_packets"), 0.0);
}

#[test]
fn demo_forwarder_sleeping_on_rx_interrupts_moves_verified_data() {
    assert_root();
    for backend in ["uring", "rw"] {
        let opts = format!("backend={backend}");
        let (j, took) = run_demo(&[
            "--bytes",
            "128MiB",
            "--pings",
            "3",
            "--idle",
            "interrupt",
            "--port-opts",
            &opts,
        ]);
        eprintln!(
            "demo --idle interrupt {backend}: {took:.2?} wall, {:.2} Gbit/s, worker {:.2} s CPU of {:.2} s",
            j.num("tcp.gbit_per_s"),
            j.num("fwd.worker_cpu_s"),
            j.num("fwd.elapsed_s")
        );
        assert_eq!(j.at("ok"), &json!(true), "{backend}: {j:?}");
        assert_eq!(j.at("tcp.verified"), &json!(true), "{backend}");
        assert_eq!(
            j.num("ping.received"),
            3.0,
            "{backend}: a sleeping forwarder wakes"
        );
        assert_eq!(j.at("fwd.ports.0.engine"), &json!(backend));
    }
}

#[test]
fn demo_bytes_is_checked() {
    for args in [
        &["demo", "--bytes", "1Q"][..],
        &["demo", "--bytes", "0"][..],
        &["demo", "--bytes", "1G", "--seconds", "2"][..],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("error: ") && err.trim().lines().count() == 1,
            "{args:?}: {err}"
        );
        assert!(err.contains("--bytes"), "{args:?}: {err}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn fwd_forwards_between_two_taps() {
    assert_root();
    private_netns();
    let mut child = spawn_fwd(&[
        "--port",
        "tap:iface=cfa",
        "--port",
        "tap:iface=cfb",
        "--duration",
        "3",
        "--json",
        "--xstats",
    ]);
    wait_up(&["cfa", "cfb"], &mut child);
    let a = PacketSocket::bind("cfa");
    let b = PacketSocket::bind("cfb");
    const N: u32 = 200;
    for i in 0..N {
        a.send(&frame(0xa1, i));
    }
    for i in 0..N / 2 {
        b.send(&frame(0xb1, i));
    }
    let at_b = b.recv_tagged(0xa1, N as usize, Duration::from_secs(2));
    let at_a = a.recv_tagged(0xb1, N as usize / 2, Duration::from_secs(2));
    assert_eq!(at_b.len(), N as usize, "frames A -> B");
    assert_eq!(at_a.len(), N as usize / 2, "frames B -> A");
    for (i, f) in at_b.iter().enumerate() {
        assert_eq!(f, &frame(0xa1, i as u32), "frame {i} changed or reordered");
    }

    let out = wait_output(child, Duration::from_secs(15));
    let j = expect_json(&out);
    assert_eq!(j.at("mode"), &json!("io"));
    assert!(j.num("elapsed_s") >= 2.9, "ran for --duration");
    assert_eq!(j.num("queue_pairs"), 1.0);
    assert_eq!(j.len("ports"), 2);
    assert_eq!(j.at("ports.0.name"), &json!("cfa"));
    assert_eq!(j.at("ports.1.name"), &json!("cfb"));
    // Kernel chatter (IPv6 router solicitations...) may add a few frames.
    assert!(j.num("ports.0.rx_packets") >= N as f64);
    assert!(j.num("ports.1.tx_packets") >= N as f64);
    assert!(j.num("ports.1.rx_packets") >= (N / 2) as f64);
    assert!(j.num("ports.0.tx_packets") >= (N / 2) as f64);
    assert!(j.num("forwarded_packets") >= (N + N / 2) as f64);
    assert_eq!(
        j.num("ports.0.rx_packets"),
        j.num("ports.1.tx_packets") + j.num("ports.1.fwd_dropped")
    );
    for k in ["rx_errors", "tx_errors", "rx_nombuf"] {
        assert_eq!(j.num(&format!("ports.0.{k}")), 0.0, "{k}");
        assert_eq!(j.num(&format!("ports.1.{k}")), 0.0, "{k}");
    }
    // --xstats: every per-queue counter of both ports, by name; the test's
    // 119-byte broadcast frames land in the 65-127 bucket and the broadcast count.
    assert!(j.num("xstats.cfa.rx_q0_size_65_127_packets") >= N as f64);
    assert!(j.num("xstats.cfb.tx_q0_size_65_127_packets") >= N as f64);
    assert!(j.num("xstats.cfa.rx_q0_broadcast_packets") >= N as f64);
    assert_eq!(j.num("xstats.cfa.rx_q0_csum_bad"), 0.0);
    assert_eq!(j.num("xstats.cfb.tx_q0_offload_rejected"), 0.0);
    // The taps were created by rtap and are gone with it.
    assert!(ifindex("cfa").is_none() && ifindex("cfb").is_none());
}

#[test]
fn fwd_single_port_reflects_and_stops_on_sigint() {
    assert_root();
    private_netns();
    let mut child = spawn_fwd(&["--port", "tap:iface=cfl,backend=rw"]);
    wait_up(&["cfl"], &mut child);
    let s = PacketSocket::bind("cfl");
    for i in 0..50 {
        s.send(&frame(0xc1, i));
    }
    let back = s.recv_tagged(0xc1, 50, Duration::from_secs(2));
    assert_eq!(back.len(), 50, "frames reflected back out of the port");
    // SAFETY: kill takes no pointers; the pid is our child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = wait_output(child, Duration::from_secs(10));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The human-readable table names the port and its engine.
    assert!(stdout.contains("forwarded"), "{stdout}");
    let row = stdout
        .lines()
        .find(|l| l.contains("cfl"))
        .expect("a row for cfl");
    assert!(row.contains("rw"), "{row}");
}

#[test]
fn fwd_prints_link_events_as_json_lines_while_sleeping_on_interrupts() {
    assert_root();
    private_netns();
    let mut child = spawn_fwd(&[
        "--port",
        "tap:iface=cle",
        "--wait",
        "interrupt",
        "--json",
        "--duration",
        "3",
    ]);
    wait_up(&["cle"], &mut child);
    // The watcher subscribes right after the port starts.
    std::thread::sleep(Duration::from_millis(500));
    let st = Command::new("ip")
        .args(["link", "set", "dev", "cle", "mtu", "2000"])
        .status()
        .unwrap();
    assert!(st.success());
    let out = wait_output(child, Duration::from_secs(15));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    let events: Vec<Value> = lines
        .iter()
        .map(|l| parse_json(l))
        .filter(|j| matches!(j, Value::Object(o) if o.contains_key("event")))
        .collect();
    let mtu = events
        .iter()
        .find(|j| matches!(j.at("change"), Value::String(c) if c == "mtu"))
        .unwrap_or_else(|| panic!("no mtu event in {stdout}"));
    assert!(matches!(mtu.at("port"), Value::String(p) if p == "cle"));
    assert!(matches!(mtu.at("value"), Value::String(v) if v == "2000"));
    // The last line is still the final report.
    let report = parse_json(lines.last().unwrap());
    assert!(report.num("elapsed_s") > 0.0);
}

#[test]
fn fwd_macswap_returns_frames_with_macs_swapped() {
    assert_root();
    private_netns();
    let mut child = spawn_fwd(&[
        "--port",
        "tap:iface=cms",
        "--mode",
        "macswap",
        "--duration",
        "3",
        "--json",
    ]);
    wait_up(&["cms"], &mut child);
    let s = PacketSocket::bind("cms");
    for i in 0..40 {
        s.send(&frame(0xd1, i));
    }
    let back = s.recv_tagged(0xd1, 40, Duration::from_secs(2));
    assert_eq!(back.len(), 40, "every frame comes back");
    assert_macs_swapped(&back, 0xd1);
    let j = expect_json(&wait_output(child, Duration::from_secs(15)));
    assert_eq!(j.at("mode"), &json!("macswap"));
}

#[test]
fn fwd_mac_mode_rewrites_both_addresses() {
    assert_root();
    private_netns();
    let mut child = spawn_fwd(&[
        "--port",
        "tap:iface=cma",
        "--port",
        "tap:iface=cmb,mac=02:00:00:00:0b:0b",
        "--mode",
        "mac",
        "--peer-mac",
        "02:aa:bb:cc:dd:ee",
        "--duration",
        "3",
        "--json",
    ]);
    wait_up(&["cma", "cmb"], &mut child);
    let a = PacketSocket::bind("cma");
    let b = PacketSocket::bind("cmb");
    for i in 0..30 {
        a.send(&frame(0xd2, i));
    }
    let out = b.recv_tagged(0xd2, 30, Duration::from_secs(2));
    assert_eq!(out.len(), 30);
    for (i, f) in out.iter().enumerate() {
        assert_eq!(
            &f[..6],
            &[0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee],
            "destination = --peer-mac"
        );
        assert_eq!(
            &f[6..12],
            &[0x02, 0, 0, 0, 0x0b, 0x0b],
            "source = the out port's MAC"
        );
        assert_eq!(&f[12..], &frame(0xd2, i as u32)[12..]);
    }
    let j = expect_json(&wait_output(child, Duration::from_secs(15)));
    assert_eq!(j.at("mode"), &json!("mac"));
    // Without --peer-mac, mac mode is refused with a reason.
    let out = Command::new(BIN)
        .args(["fwd", "--port", "tap:iface=cmc", "--mode", "mac"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--peer-mac"));
}

#[test]
fn fwd_rxonly_counts_and_sends_nothing() {
    assert_root();
    private_netns();
    let mut child = spawn_fwd(&[
        "--port",
        "tap:iface=crx",
        "--mode",
        "rxonly",
        "--duration",
        "2",
        "--json",
    ]);
    wait_up(&["crx"], &mut child);
    let s = PacketSocket::bind("crx");
    for i in 0..50 {
        s.send(&frame(0xd3, i));
    }
    assert!(
        s.recv_tagged(0xd3, 1, Duration::from_millis(500))
            .is_empty(),
        "nothing is sent back"
    );
    let j = expect_json(&wait_output(child, Duration::from_secs(15)));
    assert_eq!(j.at("mode"), &json!("rxonly"));
    assert!(j.num("ports.0.rx_packets") >= 50.0);
    assert_eq!(j.num("ports.0.tx_packets"), 0.0);
    assert_eq!(
        j.num("ports.0.fwd_dropped"),
        0.0,
        "rxonly drops are not forwarding drops"
    );
}

#[test]
fn info_reports_backend_features_and_offloads() {
    assert_root();
    private_netns();
    let out = Command::new(BIN)
        .args([
            "info",
            "--port",
            "tap:iface=cin,queues=2,mtu=9000",
            "--json",
        ])
        .output()
        .unwrap();
    let j = expect_json(&out);
    assert_eq!(j.at("name"), &json!("cin"));
    assert_eq!(j.at("engine"), &json!("uring"));
    assert_eq!(j.num("queues"), 2.0);
    assert_eq!(j.num("mtu"), 9000.0);
    assert_eq!(j.at("io_uring.available"), &json!(true));
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut v = release.split('.').map(|n| n.parse::<u32>().unwrap_or(0));
    let multishot = (v.next().unwrap(), v.next().unwrap()) >= (6, 7);
    assert_eq!(
        j.at("io_uring.read_multishot"),
        &json!(multishot),
        "Linux >= 6.7 has it ({release})"
    );
    let engine = match j.at("rx_engine") {
        Value::String(s) => s.clone(),
        other => panic!("rx_engine: {other:?}"),
    };
    assert!(
        engine.starts_with("posted"),
        "offloads on: 64 KiB frames need chained posted reads: {engine}"
    );
    assert!(
        j.len("offloads") >= 3,
        "spec ports ask for offloads: csum, tso4, tso6 at least"
    );
    assert!(
        ifindex("cin").is_none(),
        "the tap info created is gone again"
    );
    let out = Command::new(BIN)
        .args([
            "info",
            "--port",
            "tap:iface=cin,offload=off,backend=rw",
            "--json",
        ])
        .output()
        .unwrap();
    let j = expect_json(&out);
    assert_eq!(j.at("engine"), &json!("rw"));
    assert_eq!(j.len("offloads"), 0);
    assert_eq!(j.at("rx_engine"), &json!("read/write"));
}

/// A generated frame: IPv4/UDP to port 9, both checksums right. Returns its UDP source port.
fn check_generated(f: &[u8]) -> u16 {
    let p = etherparse::SlicedPacket::from_ethernet(f).expect("parses");
    let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
        panic!("not IPv4")
    };
    let h = ip.header().to_header();
    assert_eq!(
        h.header_checksum,
        h.calc_header_checksum(),
        "IPv4 header checksum"
    );
    let Some(etherparse::TransportSlice::Udp(udp)) = p.transport else {
        panic!("not UDP")
    };
    let uh = udp.to_header();
    assert_eq!(uh.destination_port, 9);
    let want = uh.calc_checksum_ipv4(&h, udp.payload()).unwrap();
    assert_eq!(uh.checksum, want, "UDP checksum");
    uh.source_port
}

fn is_generated(f: &[u8]) -> bool {
    f.len() >= 42 && f[12..14] == [0x08, 0x00] && f[23] == 17 && f[36..38] == [0, 9]
}

/// Creates a multi-queue tap with a virtio-net header with `ip`, for `attach`.
fn add_persistent_tap(name: &str) {
    let st = Command::new("ip")
        .args([
            "tuntap",
            "add",
            "dev",
            name,
            "mode",
            "tap",
            "multi_queue",
            "vnet_hdr",
        ])
        .status()
        .unwrap();
    assert!(st.success(), "ip tuntap add {name}");
}

#[test]
fn fwd_txonly_sends_exactly_count_valid_frames() {
    assert_root();
    private_netns();
    add_persistent_tap("ctx");
    let s = PacketSocket::bind("ctx");
    let out = Command::new(BIN)
        .args([
            "fwd",
            "--port",
            "tap:iface=ctx,attach",
            "--mode",
            "txonly",
            "--count",
            "1000",
            "--pkt-size",
            "128",
            "--json",
        ])
        .output()
        .unwrap();
    let j = expect_json(&out);
    assert_eq!(j.at("mode"), &json!("txonly"));
    assert_eq!(j.num("sent_packets"), 1000.0);
    let got = s.recv_matching(Duration::from_secs(1), usize::MAX, is_generated);
    assert_eq!(got.len(), 1000, "exactly --count frames");
    for f in &got {
        assert_eq!(f.len(), 128, "--pkt-size");
        assert_eq!(&f[..6], &[2, 0, 0, 0, 0, 0], "unicast to no one by default");
        check_generated(f);
    }
}

#[test]
fn fwd_flowgen_spreads_over_flows() {
    assert_root();
    private_netns();
    add_persistent_tap("cfg0");
    let s = PacketSocket::bind("cfg0");
    let out = Command::new(BIN)
        .args([
            "fwd",
            "--port",
            "tap:iface=cfg0,attach",
            "--mode",
            "flowgen",
            "--flows",
            "4",
            "--count",
            "400",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(expect_json(&out).num("sent_packets"), 400.0);
    let got = s.recv_matching(Duration::from_secs(1), usize::MAX, is_generated);
    assert_eq!(got.len(), 400);
    let mut per_flow = std::collections::BTreeMap::new();
    for f in &got {
        assert_eq!(f.len(), 64, "default --pkt-size");
        *per_flow.entry(check_generated(f)).or_insert(0) += 1;
    }
    assert_eq!(per_flow.len(), 4, "{per_flow:?}");
    assert!(per_flow.values().all(|&n| n == 100), "{per_flow:?}");
}

#[test]
fn capture_writes_a_pcap_that_reads_back() {
    assert_root();
    private_netns();
    let path = std::env::temp_dir().join(format!("rtap-capture-{}.pcap", std::process::id()));
    let path_s = path.to_str().unwrap().to_string();
    let mut child = Command::new(BIN)
        .args([
            "capture",
            "--port",
            "tap:iface=ccap",
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
    let s = PacketSocket::bind("ccap");
    let sent: Vec<Vec<u8>> = (0..25).map(|i| frame(0xe1, i)).collect();
    for f in &sent {
        s.send(f);
    }
    let out = wait_output(child, Duration::from_secs(15));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = tagged_frames_in_pcap(&path, 0xe1);
    let _ = std::fs::remove_file(&path);
    assert_eq!(ours, sent, "every injected frame, in order, byte for byte");
    assert!(String::from_utf8_lossy(&out.stdout).contains("captured"));
}

/// Sends one echo request with a raw socket and waits for the matching reply.
fn ping_once(dst: std::net::IpAddr, id: u16, seq: u16) -> bool {
    use std::net::IpAddr;
    let (domain, proto, req_type, rep_type) = match dst {
        IpAddr::V4(_) => (libc::AF_INET, libc::IPPROTO_ICMP, 8u8, 0u8),
        IpAddr::V6(_) => (libc::AF_INET6, libc::IPPROTO_ICMPV6, 128u8, 129u8),
    };
    // SAFETY: plain socket call; the result is checked.
    let fd = unsafe { libc::socket(domain, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
    assert!(fd >= 0, "raw socket: {}", io::Error::last_os_error());
    // SAFETY: fd is fresh and ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut msg = vec![req_type, 0, 0, 0];
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&seq.to_be_bytes());
    msg.extend_from_slice(b"rtap icmpecho test");
    if dst.is_ipv4() {
        // ICMPv4 checksum is ours to fill (the kernel does it for ICMPv6 raw sockets).
        let mut sum: u32 = msg
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        msg[2..4].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    }
    // SAFETY: the sockaddr structs are plain data built here and sized as passed.
    let sent = unsafe {
        match dst {
            IpAddr::V4(v) => {
                let mut sa: libc::sockaddr_in = std::mem::zeroed();
                sa.sin_family = libc::AF_INET as u16;
                sa.sin_addr.s_addr = u32::from_ne_bytes(v.octets());
                libc::sendto(
                    fd.as_raw_fd(),
                    msg.as_ptr().cast(),
                    msg.len(),
                    0,
                    &sa as *const _ as *const libc::sockaddr,
                    std::mem::size_of_val(&sa) as u32,
                )
            }
            IpAddr::V6(v) => {
                let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
                sa.sin6_family = libc::AF_INET6 as u16;
                sa.sin6_addr.s6_addr = v.octets();
                libc::sendto(
                    fd.as_raw_fd(),
                    msg.as_ptr().cast(),
                    msg.len(),
                    0,
                    &sa as *const _ as *const libc::sockaddr,
                    std::mem::size_of_val(&sa) as u32,
                )
            }
        }
    };
    assert!(sent > 0, "sendto: {}", io::Error::last_os_error());
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        if !rawsock::wait_readable(fd.as_fd(), Duration::from_millis(200)).unwrap() {
            continue;
        }
        // SAFETY: buf is live and sized as passed.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n <= 0 {
            continue;
        }
        let b = &buf[..n as usize];
        // IPv4 raw sockets deliver the IP header too; IPv6 ones do not.
        let icmp = match dst {
            IpAddr::V4(_) => &b[((b[0] & 0xf) as usize * 4)..],
            IpAddr::V6(_) => b,
        };
        if icmp.len() >= 8
            && icmp[0] == rep_type
            && icmp[4..6] == id.to_be_bytes()
            && icmp[6..8] == seq.to_be_bytes()
        {
            return true;
        }
    }
    false
}

#[test]
fn fwd_icmpecho_answers_ping_over_ipv4_and_ipv6() {
    assert_root();
    private_netns();
    let mut child = spawn_fwd(&[
        "--port",
        "tap:iface=cie",
        "--mode",
        "icmpecho",
        "--ip",
        "10.90.0.2",
        "--ip",
        "fd90::2",
        "--duration",
        "5",
        "--json",
    ]);
    wait_up(&["cie"], &mut child);
    for args in [
        vec!["addr", "add", "10.90.0.1/24", "dev", "cie"],
        vec!["addr", "add", "fd90::1/64", "dev", "cie", "nodad"],
    ] {
        assert!(
            Command::new("ip").args(&args).status().unwrap().success(),
            "ip {args:?}"
        );
    }
    for seq in 1..=3 {
        assert!(
            ping_once("10.90.0.2".parse().unwrap(), 0x4242, seq),
            "IPv4 echo {seq} answered"
        );
        assert!(
            ping_once("fd90::2".parse().unwrap(), 0x4343, seq),
            "IPv6 echo {seq} answered"
        );
    }
    let j = expect_json(&wait_output(child, Duration::from_secs(15)));
    assert_eq!(j.at("mode"), &json!("icmpecho"));
    // At least: 3 + 3 echo replies, one ARP reply and one neighbour advertisement.
    assert!(j.num("ports.0.tx_packets") >= 8.0, "replies sent");
    // Without --ip the mode is refused with a reason.
    let out = Command::new(BIN)
        .args(["fwd", "--port", "tap:iface=cie2", "--mode", "icmpecho"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ip"));
}

/// Sends 64 flows x 8 frames into `a`, expects all of them out of `b`, stops
/// the forwarder (it runs until then, however slow its start) and returns the
/// run's JSON (with --xstats).
fn forward_flows_through(args: &[&str], a: &str, b: &str) -> Value {
    let mut child = spawn_fwd(args);
    wait_up(&[a, b], &mut child);
    let sa = PacketSocket::bind(a);
    let sb = PacketSocket::bind(b);
    let mut sent = 0;
    for seq in 0..8 {
        for flow in 0..64 {
            sa.send(&udp_frame(flow, seq));
            sent += 1;
        }
    }
    let got = sb.recv_matching(Duration::from_secs(3), sent, is_udp_7777);
    assert_eq!(got.len(), sent, "every frame of every flow forwarded");
    let out = stop_output(child, Duration::from_secs(20));
    expect_json(&out)
}

#[test]
fn fwd_one_thread_serves_every_queue_pair() {
    assert_root();
    private_netns();
    let j = forward_flows_through(
        &[
            "--port",
            "tap:iface=cqa,queues=2",
            "--port",
            "tap:iface=cqb,queues=2",
            "--threads",
            "1",
            "--json",
            "--xstats",
        ],
        "cqa",
        "cqb",
    );
    assert_eq!(j.num("queue_pairs"), 2.0);
    assert_eq!(j.num("threads"), 1.0);
    assert_eq!(j.len("workers"), 1);
    assert_eq!(j.len("workers.0.queues"), 2);
    assert_eq!(j.num("workers.0.queues.0"), 0.0);
    assert_eq!(j.num("workers.0.queues.1"), 1.0);
    // --threads without --cpus pins to the usable CPUs in order: the first one.
    let first = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .and_then(|l| l.trim().split([',', '-']).next()?.parse::<f64>().ok())
        .expect("Cpus_allowed_list");
    assert_eq!(j.num("workers.0.cpu"), first);
    // The 64 flows hash onto both of the tap's queues, and the one worker drained both.
    for q in 0..2 {
        let n = j.num(&format!("xstats.cqa.rx_q{q}_unicast_packets"));
        assert!(n > 0.0, "queue {q} of cqa carried traffic");
    }
}

#[test]
fn fwd_threads_are_pinned_to_the_cpus_given() {
    assert_root();
    private_netns();
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert!(cpus >= 2, "this test needs two CPUs");
    let j = forward_flows_through(
        &[
            "--port",
            "tap:iface=cpa,queues=2",
            "--port",
            "tap:iface=cpb,queues=2",
            "--threads",
            "2",
            "--cpus",
            "1,0",
            "--json",
            "--xstats",
        ],
        "cpa",
        "cpb",
    );
    assert_eq!(j.num("threads"), 2.0);
    // Worker 0 on CPU 1, worker 1 on CPU 0: the order of --cpus is kept, and the
    // CPU is read back from each worker's affinity mask.
    assert_eq!(j.num("workers.0.cpu"), 1.0);
    assert_eq!(j.num("workers.1.cpu"), 0.0);
    assert_eq!(j.num("workers.0.queues.0"), 0.0);
    assert_eq!(j.num("workers.1.queues.0"), 1.0);

    // Bad values fail before anything is created, with the reason.
    for (args, why) in [
        (vec!["--threads", "3"], "--threads 3"),
        (vec!["--threads", "0"], "--threads 0"),
        (vec!["--cpus", "4096"], "--cpus"),
        (vec!["--cpus", "1-0"], "backwards"),
    ] {
        let mut all = vec!["fwd", "--port", "tap:iface=cpx,queues=2"];
        all.extend(args);
        let out = Command::new(BIN).args(&all).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{all:?} should fail");
        assert!(err.contains(why), "{all:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one-line reason: {err}");
        assert!(ifindex("cpx").is_none());
    }
}

#[test]
fn fwd_stats_period_prints_live_rates_then_the_summary() {
    assert_root();
    private_netns();
    // JSON lines: one per period, then the final report.
    let mut child = spawn_fwd(&[
        "--port",
        "tap:iface=csa",
        "--port",
        "tap:iface=csb",
        "--duration",
        "3",
        "--stats-period",
        "0.5",
        "--json",
    ]);
    wait_up(&["csa", "csb"], &mut child);
    let sa = PacketSocket::bind("csa");
    for seq in 0..300 {
        sa.send(&udp_frame(1, seq));
    }
    let out = wait_output(child, Duration::from_secs(20));
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = stdout.lines().map(parse_json).collect();
    let (summary, ticks) = lines.split_last().expect("output");
    assert!(ticks.len() >= 3, "a line every 0.5 s over 3 s: {stdout}");
    let mut last_t = 0.0;
    let mut rx_a = 0.0;
    for t in ticks {
        assert_eq!(t.at("event"), &json!("stats"));
        assert!(t.num("t_s") > last_t);
        last_t = t.num("t_s");
        assert_eq!(t.len("ports"), 2);
        assert_eq!(t.at("ports.0.name"), &json!("csa"));
        for k in [
            "rx_pps",
            "rx_mbit_per_s",
            "tx_pps",
            "tx_mbit_per_s",
            "drops",
            "errors",
            "rx_packets",
            "tx_packets",
        ] {
            assert!(t.num(&format!("ports.1.{k}")) >= 0.0, "{k}");
        }
        rx_a = t.num("ports.0.rx_packets");
    }
    // The rates times their periods add up to the traffic, which the summary confirms.
    let mut prev_t = 0.0;
    let pps_sum: f64 = ticks
        .iter()
        .map(|t| {
            let dt = t.num("t_s") - prev_t;
            prev_t = t.num("t_s");
            t.num("ports.0.rx_pps") * dt
        })
        .sum();
    assert!(rx_a >= 300.0, "cumulative rx seen live: {rx_a}");
    assert!(
        (pps_sum - rx_a).abs() <= rx_a * 0.05 + 2.0,
        "{pps_sum} vs {rx_a}"
    );
    assert!(summary.num("ports.0.rx_packets") >= rx_a);
    assert!(summary.num("ports.1.tx_packets") >= 300.0);

    // Text: a header, then a row per port per period, then the summary table.
    let out = Command::new(BIN)
        .args([
            "fwd",
            "--port",
            "tap:iface=cst",
            "--duration",
            "1.2",
            "--stats-period",
            "0.5",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    let header = lines.next().unwrap();
    for col in [
        "rx_pps",
        "rx_Mbit/s",
        "tx_pps",
        "tx_Mbit/s",
        "drops",
        "errors",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let rows = stdout.lines().filter(|l| l.contains(" cst ")).count();
    assert!(rows >= 2, "{stdout}");
    assert!(stdout.contains("forwarded"), "summary at the end: {stdout}");
}

#[test]
fn bench_quick_writes_results_json_and_chart() {
    assert_root();
    let dir = std::env::temp_dir().join(format!("rtap-bench-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(BIN)
        .args(["bench", "--quick", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stdout}\n{stderr}");
    // The table on stdout, progress lines on stderr.
    for h in ["Mpps", "Gbit/s", "p99 us"] {
        assert!(stdout.contains(h), "table column {h}: {stdout}");
    }
    assert!(stderr.contains("run 1/1"), "progress lines: {stderr}");

    let text = std::fs::read_to_string(dir.join("results.json")).expect("results.json");
    let j = parse_json(&text);
    assert_eq!(j.at("quick"), &json!(true));
    assert!(j.num("machine.cpus") >= 1.0);
    assert!(matches!(j.at("machine.kernel"), Value::String(k) if !k.is_empty()));
    let Value::Array(cells) = j.at("cells") else {
        panic!("cells is not an array")
    };
    let has = |test: &str, who: &str| {
        cells
            .iter()
            .find(|c| c.at("test") == &json!(test) && c.at("contender") == &json!(who))
            .unwrap_or_else(|| panic!("no {test}/{who} cell in {text}"))
    };
    for t in ["tx", "rx", "fwd"] {
        for who in ["uring", "rw"] {
            assert!(has(t, who).num("pps") > 0.0, "{t}/{who}");
        }
        assert_eq!(has(t, "uring").at("vs"), &json!("rw"));
        let ratio = has(t, "uring").num("ratio");
        let want = has(t, "uring").num("pps") / has(t, "rw").num("pps");
        assert!((ratio - want).abs() < 0.01, "{t}: ratio {ratio} vs {want}");
    }
    for who in ["uring", "uring-interrupt", "rw", "veth"] {
        assert!(has("tcp", who).num("gbit_per_s") > 0.0, "tcp/{who}");
        let l = has("lat", who);
        assert!(l.num("samples") + l.num("lost") == 2000.0, "lat/{who}");
        assert!(l.num("samples") > 0.0);
        let (p50, p99, p999) = (l.num("p50_us"), l.num("p99_us"), l.num("p999_us"));
        assert!(
            0.0 < p50 && p50 <= p99 && p99 <= p999,
            "lat/{who}: {p50} {p99} {p999}"
        );
    }
    assert!(has("lat", "uring-interrupt").num("fwd_cpu_load") > 0.0);
    // Packets dropped on another thread, against the pool's own thread; the
    // checksum's fast path against the straightforward sum.
    assert_eq!(has("handoff", "remote").at("vs"), &json!("local"));
    assert_eq!(has("csum", "lanes-64k").at("vs"), &json!("be-words-64k"));
    assert!(has("csum", "split-64k").num("pps") > 0.0);
    assert!(has("tcp", "tun-async-mt").num("gbit_per_s") > 0.0);
    assert!(has("tcp", "tun-async-mt-tasks").num("gbit_per_s") > 0.0);
    assert_eq!(has("lat", "veth").num("fwd_cpu_load"), 0.0, "no forwarder");

    let svg = std::fs::read_to_string(dir.join("bench.svg")).expect("bench.svg");
    assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(
        svg.matches(r#"class="bar""#).count(),
        cells.len(),
        "one bar per cell"
    );
    for label in ["x rw", "kernel ceiling", "Mpps", "Gbit/s", "p99"] {
        assert!(svg.contains(label), "chart label {label}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_stops_cleanly_on_sigint() {
    assert_root();
    let child = Command::new(BIN)
        .args(["bench", "--only", "tcp", "--contenders", "uring"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill takes no pointers; the pid is our child's.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let out = wait_output(child, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "an interrupted bench is not a result"
    );
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        stderr.trim().lines().last().unwrap().starts_with("error: "),
        "{stderr}"
    );
    // Its namespaces are gone.
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let ns = String::from_utf8_lossy(&ns.stdout);
    assert!(
        !ns.lines().any(|l| l.contains(&format!("-{pid}"))),
        "left behind: {ns}"
    );
}

/// A port deleted mid-run stops the forwarder with an error, but the counters
/// of everything forwarded until then are still printed.
#[test]
fn fwd_prints_its_stats_when_a_port_vanishes() {
    assert_root();
    private_netns();
    let mut child = spawn_fwd(&[
        "--port",
        "tap:iface=cva",
        "--port",
        "tap:iface=cvb",
        "--duration",
        "20",
        "--json",
    ]);
    wait_up(&["cva", "cvb"], &mut child);
    let a = PacketSocket::bind("cva");
    let b = PacketSocket::bind("cvb");
    for i in 0..50 {
        a.send(&frame(0xc1, i));
    }
    assert_eq!(b.recv_tagged(0xc1, 50, Duration::from_secs(2)).len(), 50);
    ip(&["link", "del", "cvb"]);
    let out = wait_output(child, Duration::from_secs(15));
    assert!(!out.status.success(), "a vanished port is an error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("vanished"), "{err}");
    // Link events come first, a JSON line each; the report is the last line.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let j = parse_json(stdout.trim().lines().last().unwrap());
    assert!(j.num("ports.0.rx_packets") >= 50.0, "{j}");
    // Sends whose completion the failed worker did not reap are not counted;
    // nothing is sent that was not received (the kernel's own frames, such as
    // router solicitations, are forwarded too).
    let tx = j.num("ports.1.tx_packets");
    assert!(tx > 0.0 && tx <= j.num("ports.0.rx_packets"), "{j}");
    assert!(j.at("error").as_str().unwrap().contains("vanished"), "{j}");
}

/// SIGTERM while frames pour in: the forwarder stops at once, exits 0, prints
/// its final report, and its counters account for every frame it received
/// (sent, a tx error, or dropped by the forwarder); every pool buffer is back.
#[test]
fn fwd_stops_on_sigterm_during_bursts_with_every_frame_accounted() {
    assert_root();
    private_netns();
    let mut child = spawn_fwd(&[
        "--port",
        "tap:iface=cta",
        "--port",
        "tap:iface=ctb",
        "--json",
    ]);
    wait_up(&["cta", "ctb"], &mut child);
    let a = PacketSocket::bind("cta");
    let b = PacketSocket::bind("ctb");
    a.send(&frame(0xc2, 0));
    assert_eq!(b.recv_tagged(0xc2, 1, Duration::from_secs(2)).len(), 1);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 1;
            // Bounded too, so that a failed wait below cannot hang the test.
            let until = Instant::now() + Duration::from_secs(30);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < until {
                // The tap's queue may be full: a refused send is the kernel's drop.
                let _ = a.0.send(&frame(0xc2, i));
                i += 1;
            }
        });
        std::thread::sleep(Duration::from_millis(700));
        // SAFETY: kill takes no pointers; the pid is our child's.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let out = wait_output(child, Duration::from_secs(10));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        out
    });
    let j = expect_json(&out);
    assert!(j.at("error").is_null(), "{j}");
    let rx = j.num("ports.0.rx_packets");
    assert!(rx > 100.0, "frames were pouring in: {j}");
    let accounted =
        j.num("ports.1.tx_packets") + j.num("ports.1.tx_errors") + j.num("ports.1.fwd_dropped");
    assert_eq!(
        rx, accounted,
        "every frame received is sent or counted: {j}"
    );
    assert_eq!(
        j.num("workers.0.pool_available"),
        j.num("workers.0.pool_capacity"),
        "every buffer back in the pool: {j}"
    );
    assert!(ifindex("cta").is_none() && ifindex("ctb").is_none());
}
