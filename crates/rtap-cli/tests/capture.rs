//! `rtap capture`: pcapng files tcpdump reads back, filters in tcpdump syntax
//! (compiled by tcpdump, run in the kernel on packet ports and in user space
//! on taps) that keep exactly what tcpdump keeps of the same traffic,
//! programs from `tcpdump -ddd`, output to a pipe. Root and tcpdump needed.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Frames tcpdump printed (a line each; it dumps unknown ethertypes' bytes on
/// indented lines after).
fn records(text: &str) -> usize {
    text.lines().filter(|l| !l.starts_with([' ', '\t'])).count()
}

/// A file name of its own for each call: the tests run on threads of one
/// process, and helpers like [`tcpdump_keeps`] run in several at once.
fn tmp(name: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("rtap-captest-{}-{n}-{name}", std::process::id()))
}

/// An Ethernet/IPv4/UDP frame to `dport`, numbered `seq` in its payload.
fn udp(dport: u16, seq: u32) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x77]);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let payload: Vec<u8> = seq
        .to_be_bytes()
        .iter()
        .chain(&[0x5a; 40])
        .copied()
        .collect();
    let total = 20 + 8 + payload.len();
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&4000u16.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&payload);
    f
}

/// The traffic of the filter tests: DNS-port datagrams among others and
/// non-IP frames.
fn mixed() -> Vec<Vec<u8>> {
    (0..60u32)
        .map(|i| match i % 3 {
            0 => udp(53, i),
            1 => udp(54, i),
            _ => frame(0xe5, i),
        })
        .collect()
}

/// What tcpdump keeps of `frames` (Ethernet) with filter `expr`.
fn tcpdump_keeps(frames: &[Vec<u8>], expr: &str) -> Vec<Vec<u8>> {
    let all = tmp("all.pcap");
    let sel = tmp("sel.pcap");
    {
        let f = std::fs::File::create(&all).unwrap();
        let mut w = pcap_file::pcap::PcapWriter::new(f).unwrap();
        for (i, fr) in frames.iter().enumerate() {
            let ts = Duration::from_millis(i as u64);
            w.write_packet(&pcap_file::pcap::PcapPacket::new(ts, fr.len() as u32, fr))
                .unwrap();
        }
    }
    let out = tcpdump(&[
        "-r",
        all.to_str().unwrap(),
        "-w",
        sel.to_str().unwrap(),
        expr,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, kept) = frames_in_capture(&sel);
    let _ = (std::fs::remove_file(&all), std::fs::remove_file(&sel));
    kept.into_iter().map(|(d, _)| d).collect()
}

/// Runs `rtap capture ARGS --write PATH` until `names` are up, sends `frames`
/// into `into` with a packet socket, and returns the output and the frames
/// written.
fn capture(
    args: &[&str],
    path: &Path,
    names: &[&str],
    into: &str,
    frames: &[Vec<u8>],
) -> (std::process::Output, Vec<Vec<u8>>) {
    let mut child = Command::new(BIN)
        .arg("capture")
        .args(args)
        .arg("--write")
        .arg(path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_capturing(&mut child);
    if into != names[0] {
        wait_oper_up(into);
    }
    let s = PacketSocket::bind(into);
    for f in frames {
        s.send(f);
    }
    let out = wait_output(child, Duration::from_secs(20));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, got) = frames_in_capture(path);
    let _ = std::fs::remove_file(path);
    (out, got.into_iter().map(|(d, _)| d).collect())
}

/// The default file is pcapng: tcpdump reads every frame back; the file
/// names the interface, has nanosecond timestamps and ends with statistics.
#[test]
fn pcapng_by_default_and_tcpdump_reads_it() {
    assert_root();
    private_netns();
    let path = tmp("default.pcapng");
    let sent: Vec<Vec<u8>> = (0..20).map(|i| frame(0xe4, i)).collect();
    let mut child = Command::new(BIN)
        .args([
            "capture",
            "--port",
            "tap:iface=cpng0",
            "--filter",
            "ether proto 0x88b5",
            "--count",
            "20",
            "--duration",
            "10",
            "--write",
        ])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_capturing(&mut child);
    let s = PacketSocket::bind("cpng0");
    for f in &sent {
        s.send(f);
    }
    let out = wait_output(child, Duration::from_secs(20));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        &bytes[..4],
        &[0x0a, 0x0d, 0x0d, 0x0a],
        "a pcapng section header"
    );
    assert_eq!(tagged_frames_in_pcap(&path, 0xe4), sent);
    let mut r = pcap_file::pcapng::PcapNgReader::new(&bytes[..]).unwrap();
    let (mut name, mut tsresol, mut isb) = (None, None, false);
    while let Some(b) = r.next_block() {
        match b.unwrap() {
            pcap_file::pcapng::Block::InterfaceDescription(i) => {
                for o in &i.options {
                    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption as O;
                    match o {
                        O::IfName(n) => name = Some(n.to_string()),
                        O::IfTsResol(t) => tsresol = Some(*t),
                        _ => {}
                    }
                }
            }
            pcap_file::pcapng::Block::InterfaceStatistics(_) => isb = true,
            _ => {}
        }
    }
    assert_eq!((name.as_deref(), tsresol), (Some("cpng0"), Some(9)));
    assert!(isb, "statistics at the end");
    let td = tcpdump(&["-r", path.to_str().unwrap(), "-nn", "ether proto 0x88b5"]);
    // Wireshark's reader too.
    let ts = tshark(&["-r", path.to_str().unwrap(), "-Y", "eth.type == 0x88b5"]);
    assert!(
        ts.status.success(),
        "{}",
        String::from_utf8_lossy(&ts.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ts.stdout).lines().count(), 20);
    let _ = std::fs::remove_file(&path);
    assert!(
        td.status.success(),
        "{}",
        String::from_utf8_lossy(&td.stderr)
    );
    let text = String::from_utf8_lossy(&td.stdout);
    assert_eq!(records(&text), 20, "{}", &text[..text.len().min(1500)]);
}

/// On a packet port the filter runs in the kernel; it keeps exactly what
/// tcpdump keeps of the same traffic.
#[test]
fn a_kernel_filter_keeps_what_tcpdump_keeps() {
    assert_root();
    private_netns();
    veth("cfk0", "cfk1");
    let sent = mixed();
    let want = tcpdump_keeps(&sent, "udp port 53");
    assert_eq!(want.len(), 20);
    // A packet port attaches it to its sockets; an xdp port translates it
    // into its XDP program.
    for (i, port) in ["packet:iface=cfk0", "xdp:iface=cfk0"]
        .into_iter()
        .enumerate()
    {
        let (out, got) = capture(
            &["--port", port, "--filter", "udp port 53", "--duration", "2"],
            &tmp(&format!("kernel{i}.pcapng")),
            &["cfk0"],
            "cfk1",
            &sent,
        );
        assert_eq!(got, want, "{port}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("filtered in the kernel"),
            "{port}"
        );
    }
}

/// On a tap the same program runs in user space: the same frames kept; and
/// a program file (`tcpdump -ddd` output) does what the expression does.
#[test]
fn a_user_space_filter_keeps_what_tcpdump_keeps() {
    assert_root();
    private_netns();
    let sent = mixed();
    let want = tcpdump_keeps(&sent, "udp port 53 or ether proto 0x88b5");
    assert_eq!(want.len(), 40);
    let (out, got) = capture(
        &[
            "--port",
            "tap:iface=cfu0",
            "--filter",
            "udp port 53 or ether proto 0x88b5",
            "--duration",
            "2",
        ],
        &tmp("user.pcapng"),
        &["cfu0"],
        "cfu0",
        &sent,
    );
    assert_eq!(got, want);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("filtered out in user space"), "{text}");
    // A snap length shorter than where the filter looks: it still sees whole
    // frames (the UDP port lies past byte 20), the file keeps 20 bytes.
    let (_, got) = capture(
        &[
            "--port",
            "tap:iface=cfu2",
            "--filter",
            "udp port 53",
            "--snaplen",
            "20",
            "--duration",
            "2",
        ],
        &tmp("snap.pcapng"),
        &["cfu2"],
        "cfu2",
        &sent,
    );
    let want: Vec<Vec<u8>> = tcpdump_keeps(&sent, "udp port 53")
        .iter()
        .map(|f| f[..20].to_vec())
        .collect();
    assert_eq!(got, want);
    // The same as a program file.
    let empty = tmp("empty.pcap");
    pcap_file::pcap::PcapWriter::new(std::fs::File::create(&empty).unwrap()).unwrap();
    let ddd = tcpdump(&["-r", empty.to_str().unwrap(), "-ddd", "udp port 53"]);
    assert!(ddd.status.success());
    let prog = tmp("prog.bpf");
    std::fs::write(&prog, &ddd.stdout).unwrap();
    let (_, got) = capture(
        &[
            "--port",
            "tap:iface=cfu1",
            "--filter-bpf",
            prog.to_str().unwrap(),
            "--duration",
            "2",
        ],
        &tmp("file.pcapng"),
        &["cfu1"],
        "cfu1",
        &sent,
    );
    let _ = (std::fs::remove_file(&empty), std::fs::remove_file(&prog));
    assert_eq!(got, tcpdump_keeps(&sent, "udp port 53"));
}

/// A bad expression, a bad program file: clear errors, nothing captured.
#[test]
fn bad_filters_are_errors_before_anything_starts() {
    assert_root();
    private_netns();
    let path = tmp("bad.pcapng");
    let run = |extra: &[&str]| {
        Command::new(BIN)
            .args([
                "capture",
                "--port",
                "tap:iface=cfb0",
                "--duration",
                "1",
                "--write",
            ])
            .arg(&path)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&["--filter", "udp prot 53"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad filter expression"), "{err}");
    let prog = tmp("bad.bpf");
    std::fs::write(&prog, "2\n6 0 0 65535\n").unwrap();
    let out = run(&["--filter-bpf", prog.to_str().unwrap()]);
    let _ = std::fs::remove_file(&prog);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tcpdump -ddd"), "{err}");
    assert!(!path.exists(), "no file written");
}

/// `--write -` streams pcapng to a pipe: `rtap capture ... --write - | tcpdump -r -`.
#[test]
fn a_capture_into_tcpdump_through_a_pipe() {
    assert_root();
    private_netns();
    let mut rtap = Command::new(BIN)
        .args([
            "capture",
            "--port",
            "tap:iface=cpp0",
            "--filter",
            "ether proto 0x88b5",
            "--count",
            "12",
            "--duration",
            "10",
            "--write",
            "-",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = rtap.stdout.take().unwrap();
    let td = match Command::new("tcpdump")
        .args(["-r", "-", "-nn", "ether proto 0x88b5"])
        .stdin(pipe)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("tcpdump: {e} (the capture tests need it: apt install tcpdump)"),
    };
    wait_capturing(&mut rtap);
    let s = PacketSocket::bind("cpp0");
    for i in 0..12 {
        s.send(&frame(0xe6, i));
    }
    let out = wait_output(rtap, Duration::from_secs(20));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let td = wait_output(td, Duration::from_secs(20));
    assert!(
        td.status.success(),
        "{}",
        String::from_utf8_lossy(&td.stderr)
    );
    let text = String::from_utf8_lossy(&td.stdout);
    assert_eq!(records(&text), 12, "{}", &text[..text.len().min(1500)]);
    let _ = std::io::stderr().flush();
}

/// On a packet port frames are taken where they lie in the ring, each with
/// the kernel's receive time: the file says so, and the times only go
/// forward (one queue) and are now's.
#[test]
fn kernel_timestamps_from_the_ring() {
    assert_root();
    private_netns();
    veth("cts0", "cts1");
    let path = tmp("ts.pcapng");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let sent: Vec<Vec<u8>> = (0..30).map(|i| frame(0xe7, i)).collect();
    let mut child = Command::new(BIN)
        .args([
            "capture",
            "--port",
            "packet:iface=cts0",
            "--filter",
            "ether proto 0x88b5",
            "--count",
            "30",
            "--duration",
            "10",
            "--write",
        ])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_capturing(&mut child);
    wait_oper_up("cts1");
    let s = PacketSocket::bind("cts1");
    for f in &sent {
        s.send(f);
        std::thread::sleep(Duration::from_millis(2));
    }
    let out = wait_output(child, Duration::from_secs(20));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let mut r = pcap_file::pcapng::PcapNgReader::new(&bytes[..]).unwrap();
    let comment = r
        .section()
        .options
        .iter()
        .find_map(|o| match o {
            pcap_file::pcapng::blocks::section_header::SectionHeaderOption::Comment(c) => {
                Some(c.to_string())
            }
            _ => None,
        })
        .unwrap_or_default();
    assert!(comment.contains("kernel's receive time"), "{comment}");
    let mut times = Vec::new();
    let mut got = Vec::new();
    while let Some(b) = r.next_block() {
        if let pcap_file::pcapng::Block::EnhancedPacket(e) = b.unwrap() {
            times.push(e.timestamp);
            got.push(e.data.to_vec());
        }
    }
    assert_eq!(got, sent);
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    assert!(
        times[0] >= before && times[29] <= after,
        "{:?} not in {before:?}..{after:?}",
        times[0]
    );
    assert!(
        times[29] > times[0],
        "distinct times: {:?}",
        times[29] - times[0]
    );
}

/// `--rotate`: a new file each time the last one reaches the size, named as
/// tcpdump's `-C` names them; each is complete (tcpdump reads it), and the
/// frames across them are every frame, in order.
#[test]
fn rotation_by_size() {
    assert_root();
    private_netns();
    let path = tmp("rot.pcapng");
    let sent: Vec<Vec<u8>> = (0..200).map(|i| frame(0xe8, i)).collect();
    let mut child = Command::new(BIN)
        .args([
            "capture",
            "--port",
            "tap:iface=crot0",
            "--filter",
            "ether proto 0x88b5",
            "--rotate",
            "10k",
            "--count",
            "200",
            "--duration",
            "10",
            "--write",
        ])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_capturing(&mut child);
    let s = PacketSocket::bind("crot0");
    for f in &sent {
        s.send(f);
    }
    let out = wait_output(child, Duration::from_secs(20));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files = vec![path.clone()];
    for n in 1.. {
        let p = PathBuf::from(format!("{}{n}", path.display()));
        if !p.exists() {
            break;
        }
        files.push(p);
    }
    assert!(files.len() >= 3, "{} files", files.len());
    let mut all = Vec::new();
    for f in &files {
        let td = tcpdump(&["-r", f.to_str().unwrap(), "-nn"]);
        assert!(
            td.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&td.stderr)
        );
        let ts = tshark(&["-r", f.to_str().unwrap()]);
        assert!(
            ts.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&ts.stderr)
        );
        let size = std::fs::metadata(f).unwrap().len();
        assert!(size < 10_000 + 8192 + 1000, "{}: {size} bytes", f.display());
        all.extend(tagged_frames_in_pcap(f, 0xe8));
        let _ = std::fs::remove_file(f);
    }
    assert_eq!(all, sent);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("more files"), "{text}");
}
