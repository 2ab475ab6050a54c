//! `rtap sink` and `rtap send`: TCP between two namespaces over a veth pair,
//! received on zcrx where the kernel has it and on the copy fallback where not
//! (the host), every byte checked by the sink. Root needed.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// A named namespace (`ip netns add`), deleted on drop.
struct Ns(String);

impl Ns {
    fn new(tag: &str) -> Ns {
        let name = format!("rtapc-{tag}-{}", std::process::id());
        ip(&["netns", "add", &name]);
        Ns(name)
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// This thread's private namespace holds `a` (10.79.0.1), a named one its peer
/// (10.79.0.2).
fn pair(tag: &str) -> Ns {
    private_netns();
    let ns = Ns::new(tag);
    let (a, b) = (format!("{tag}a"), format!("{tag}b"));
    veth(&a, &b);
    ip(&["link", "set", &b, "netns", &ns.0]);
    ip(&["addr", "add", "10.79.0.1/24", "dev", &a]);
    ip(&["link", "set", &a, "up"]);
    ip(&["link", "set", "lo", "up"]);
    ip(&["-n", &ns.0, "addr", "add", "10.79.0.2/24", "dev", &b]);
    ip(&["-n", &ns.0, "link", "set", &b, "up"]);
    wait_oper_up(&a);
    ns
}

fn kernel_at_least(major: u32, minor: u32) -> bool {
    let r = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut it = r
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap());
    (it.next().unwrap(), it.next().unwrap()) >= (major, minor)
}

/// Starts a sink, then `conns` senders of `bytes` each from the other namespace;
/// returns the sink's JSON.
fn transfer(ns: &Ns, port: u16, sink_args: &[&str], conns: &str, bytes: &str) -> serde_json::Value {
    let listen = format!("10.79.0.1:{port}");
    let mut sink = Command::new(BIN)
        .args(["sink", "--listen", &listen, "--conns", conns, "--json"])
        .args(sink_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_stderr_line(&mut sink, "listening on");
    let send = Command::new(BIN)
        .args([
            "send",
            "--netns",
            &ns.0,
            "--connect",
            &listen,
            "--bytes",
            bytes,
        ])
        .args(["--conns", conns])
        .output()
        .unwrap();
    assert!(
        send.status.success(),
        "send: {}",
        String::from_utf8_lossy(&send.stderr)
    );
    expect_json(&wait_output(sink, Duration::from_secs(120)))
}

/// 256 MiB, every byte verified: device-less zcrx on Linux 7.1+, else the copy
/// fallback with its reason.
#[test]
fn sink_receives_verified_data_over_veth() {
    assert_root();
    let ns = pair("csk");
    let j = transfer(&ns, 5301, &[], "1", "256MiB");
    assert_eq!(j.num("bytes"), (256u64 << 20) as f64);
    assert_eq!(j.at("verified"), &serde_json::json!(true));
    assert_eq!(j.num("conns"), 1.0);
    assert!(j.num("gbit_per_s") > 0.0 && j.num("cpu_s_per_gb") > 0.0);
    assert_eq!(j.num("refills"), j.num("buffers"), "every buffer back");
    if kernel_at_least(7, 1) {
        assert_eq!(j.at("mode").as_str().unwrap(), "zcrx nodev (kernel copy)");
    } else {
        assert_eq!(j.at("mode").as_str().unwrap(), "copy (multishot recv)");
        assert!(j.at("fallback_reason").as_str().unwrap().contains("7.1"));
    }
}

/// Two threads share the queue; two connections, one each.
#[test]
fn sink_threads_share_the_queue() {
    assert_root();
    let ns = pair("cst");
    let j = transfer(&ns, 5302, &["--threads", "2", "--copy"], "2", "32MiB");
    assert_eq!(j.num("bytes"), (64u64 << 20) as f64);
    assert_eq!(j.at("verified"), &serde_json::json!(true));
    assert_eq!(j.num("per_thread.0.conns"), 1.0);
    assert_eq!(j.num("per_thread.1.conns"), 1.0);
}

/// `--strict`: no silent fallback; device mode on a veth says why not.
#[test]
fn sink_strict_explains() {
    assert_root();
    let _ns = pair("css");
    let out = Command::new(BIN)
        .args([
            "sink",
            "--listen",
            "10.79.0.1:5303",
            "--zcrx",
            "cssa:0",
            "--strict",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    if kernel_at_least(6, 15) {
        assert!(err.contains("does not support zcrx"), "{err}");
    } else {
        assert!(err.contains("unavailable"), "{err}");
    }
    let out = Command::new(BIN)
        .args(["sink", "--listen", "10.79.0.1:5303", "--zcrx", "nonsense"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("IFACE:QUEUE"));
}

/// `rtap info --zcrx` reports what the kernel offers, without a port.
#[test]
fn info_reports_zcrx() {
    let out = Command::new(BIN)
        .args(["info", "--zcrx", "--json"])
        .output()
        .unwrap();
    let j = expect_json(&out);
    assert_eq!(
        j.at("zcrx.nodev"),
        &serde_json::json!(kernel_at_least(7, 1))
    );
    if !kernel_at_least(7, 1) {
        assert!(j
            .at("zcrx.nodev_unavailable")
            .as_str()
            .unwrap()
            .contains("7.1"));
    }
}
