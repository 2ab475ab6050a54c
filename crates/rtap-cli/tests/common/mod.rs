//! Helpers of the `rtap` binary's end-to-end tests: running it, reading its
//! JSON, namespaces, interfaces and AF_PACKET frames.
#![allow(dead_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_rtap");

/// These tests create taps and namespaces: they must run as root, and fail
/// (rather than pass without testing anything) otherwise.
pub fn assert_root() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root,
        "this test needs root (it creates taps and network namespaces)"
    );
}

// ---------------------------------------------------------------------------
// Reading the CLI's JSON (serde_json), by dotted path: "ports.0.name".

pub trait JsonPath {
    fn at(&self, path: &str) -> &Value;
    fn num(&self, path: &str) -> f64;
    fn len(&self, path: &str) -> usize;
}

impl JsonPath for Value {
    fn at(&self, path: &str) -> &Value {
        let pointer = format!("/{}", path.replace('.', "/"));
        self.pointer(&pointer)
            .unwrap_or_else(|| panic!("JSON has no {path:?}: {self}"))
    }
    fn num(&self, path: &str) -> f64 {
        self.at(path)
            .as_f64()
            .unwrap_or_else(|| panic!("{path} is not a number: {}", self.at(path)))
    }
    fn len(&self, path: &str) -> usize {
        self.at(path)
            .as_array()
            .unwrap_or_else(|| panic!("{path} is not an array: {}", self.at(path)))
            .len()
    }
}

pub fn parse_json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

// ---------------------------------------------------------------------------
// Kernel helpers: namespaces, interfaces, AF_PACKET.

/// Moves the calling test thread into a fresh network namespace; children spawned
/// from this thread inherit it.
pub fn private_netns() {
    // SAFETY: unshare takes no pointers; CLONE_NEWNET affects only this thread.
    let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        r,
        0,
        "unshare(CLONE_NEWNET): {}",
        io::Error::last_os_error()
    );
}

pub fn ifindex(name: &str) -> Option<u32> {
    let c = CString::new(name).unwrap();
    // SAFETY: c is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

pub fn is_up(name: &str) -> bool {
    // SAFETY: plain socket call, checked below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0);
    // SAFETY: fd is fresh and ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes().take(15)) {
        *d = s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads and writes one ifreq.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut ifr) };
    // SAFETY: SIOCGIFFLAGS filled the flags member.
    r == 0 && unsafe { ifr.ifr_ifru.ifru_flags } as i32 & libc::IFF_UP != 0
}

/// Waits until `rtap capture` says it is capturing (its queues are open:
/// frames sent before are lost), failing if it exits first.
pub fn wait_capturing(child: &mut Child) {
    wait_stderr_line(child, "capturing from");
}

/// Reads `child`'s stderr (piped) until a line containing `needle`; panics
/// with what it read if the child ends first. It reads a byte at a time, so
/// whatever follows that line is left in the pipe for the caller; the lines
/// up to it are not in the child's later output.
pub fn wait_stderr_line(child: &mut Child, needle: &str) {
    use std::io::Read;
    let err = child.stderr.as_mut().expect("stderr piped");
    let mut line = Vec::new();
    let mut seen = String::new();
    let mut b = [0u8; 1];
    loop {
        let n = err.read(&mut b).unwrap();
        let text = String::from_utf8_lossy(&line).into_owned();
        assert!(n > 0, "exited before saying {needle:?}: {seen}{text}");
        if b[0] != b'\n' {
            line.push(b[0]);
            continue;
        }
        if text.contains(needle) {
            return;
        }
        seen.push_str(&text);
        seen.push('\n');
        line.clear();
    }
}

/// Waits until an `rtap fwd` child forwards: its workers have their queues
/// open (it says `rtap fwd: forwarding`; frames sent before are lost in a
/// loaded guest) and `names` can send.
pub fn wait_up(names: &[&str], child: &mut Child) {
    wait_stderr_line(child, "rtap fwd: forwarding");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !names.iter().all(|n| is_up(n)) {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("rtap fwd exited early ({st}): {err}");
        }
        assert!(Instant::now() < deadline, "{names:?} did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Up is not yet able to send: a tap gets its qdisc when the kernel's link
    // watch sees the carrier, a moment after the forwarder attached; a frame
    // sent before meets the noop qdisc and is dropped (CI saw a whole burst
    // lost so). A tap's operational state stays UNKNOWN: the carrier and the
    // qdisc are what to wait for.
    for n in names {
        wait_can_send(n);
    }
}

/// Waits until interface `name` has its carrier and a real qdisc.
pub fn wait_can_send(name: &str) {
    wait_link(name, "cannot send", |l| {
        l.contains("LOWER_UP") && !l.contains("qdisc noop")
    });
}

/// Polls `ip -o link show dev NAME` (at most 10 s) until `ready` holds.
fn wait_link(name: &str, never: &str, ready: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("ip")
            .args(["-o", "link", "show", "dev", name])
            .output()
            .expect("run ip");
        let line = String::from_utf8_lossy(&out.stdout);
        if ready(&line) {
            return;
        }
        assert!(Instant::now() < deadline, "{name} {never}: {line}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub const ETHERTYPE: u16 = 0x88b5;

/// A test frame: broadcast, our ethertype, a tag byte and a sequence number.
pub fn frame(tag: u8, seq: u32) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, tag]);
    f.extend_from_slice(&ETHERTYPE.to_be_bytes());
    f.push(tag);
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend((0..100).map(|i| (i as u8) ^ (seq as u8)));
    f
}

/// The workspace's AF_PACKET helper, panicking on errors (a test failure).
pub struct PacketSocket(pub rawsock::RawSocket);

impl PacketSocket {
    pub fn bind(name: &str) -> PacketSocket {
        PacketSocket(rawsock::RawSocket::bind_name(name).expect("AF_PACKET socket"))
    }

    pub fn send(&self, f: &[u8]) {
        self.0.send(f).expect("AF_PACKET send");
    }

    /// Incoming frames (not our own sends) that `keep` accepts, until `max` of
    /// them or `timeout`.
    pub fn recv_matching(
        &self,
        timeout: Duration,
        max: usize,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Vec<Vec<u8>> {
        self.0
            .recv_matching(timeout, max, keep)
            .expect("AF_PACKET recv")
    }

    pub fn recv_tagged(&self, tag: u8, count: usize, timeout: Duration) -> Vec<Vec<u8>> {
        self.recv_matching(timeout, count, |f| {
            f.len() > 14 && f[12..14] == ETHERTYPE.to_be_bytes() && f[14] == tag
        })
    }
}

pub fn spawn_fwd(args: &[&str]) -> Child {
    Command::new(BIN)
        .arg("fwd")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rtap")
}

pub fn wait_output(child: Child, timeout: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.expect("wait for rtap"),
        Err(_) => {
            // SAFETY: kill takes no pointers; pid is our child.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("rtap did not exit within {timeout:?}");
        }
    }
}

/// Stops a long-running `rtap` the way a user would (SIGTERM: it stops,
/// prints its report and exits 0) and waits for it: for processes that must
/// outlive every step of a test however slow the machine, not a duration.
pub fn stop_output(child: Child, timeout: Duration) -> Output {
    // SAFETY: kill takes no pointers; the pid is our child, not yet waited for.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    wait_output(child, timeout)
}

/// The JSON report on a successful run's stdout. `rtap fwd --json` prints
/// events (link changes, live statistics) as JSON lines as they happen and
/// the report last: those lines are skipped (each checked to be an event).
pub fn expect_json(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "rtap failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    let text = stdout.trim();
    if let Ok(v) = serde_json::from_str(text) {
        return v;
    }
    let mut lines = text.lines();
    let last = lines.next_back().unwrap_or_default();
    for l in lines {
        let e = parse_json(l);
        assert!(e.get("event").is_some(), "a line before the report: {l}");
    }
    parse_json(last)
}

/// Runs `ip` with `args` (in the calling thread's namespace), panicking on failure.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A veth pair `a` / `b`, with `b` up (`a` is left to the port).
pub fn veth(a: &str, b: &str) {
    ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
    ip(&["link", "set", b, "up"]);
}

/// Waits (at most 10 s) until `name` is operationally up: a veth end sends
/// nothing before (the kernel attaches its qdisc a moment after the carrier).
pub fn wait_oper_up(name: &str) {
    wait_link(name, "never came up", |l| l.contains("state UP"));
}

/// A UDP/IPv4 frame of flow `flow` (source port 1000 + flow), sequence `seq`.
pub fn udp_frame(flow: u16, seq: u32) -> Vec<u8> {
    let b =
        etherparse::PacketBuilder::ethernet2([0x02, 0, 0, 0, 0, 0xaa], [0x02, 0, 0, 0, 0, 0xbb])
            .ipv4([10, 9, 0, 1], [10, 9, 0, 2], 64)
            .udp(1000 + flow, 7777);
    let payload = seq.to_be_bytes();
    let mut out = Vec::new();
    b.write(&mut out, &payload).unwrap();
    out
}

pub fn is_udp_7777(f: &[u8]) -> bool {
    f.len() >= 42 && f[12..14] == [0x08, 0x00] && f[23] == 17 && f[36..38] == 7777u16.to_be_bytes()
}

/// Asserts that `back` are the frames `frame(tag, 0..)` with their source and
/// destination addresses swapped and the rest untouched.
pub fn assert_macs_swapped(back: &[Vec<u8>], tag: u8) {
    for (i, f) in back.iter().enumerate() {
        let sent = frame(tag, i as u32);
        assert_eq!(&f[..6], &sent[6..12], "destination is the old source");
        assert_eq!(&f[6..12], &sent[..6], "source is the old destination");
        assert_eq!(&f[12..], &sent[12..], "the rest is untouched");
    }
}

/// The frames of pcap file `path` that carry test tag `tag`, in file order;
/// asserts the file is an Ethernet capture of whole frames.
pub fn tagged_frames_in_pcap(path: &std::path::Path, tag: u8) -> Vec<Vec<u8>> {
    let (link, frames) = frames_in_capture(path);
    assert_eq!(link, pcap_file::DataLink::ETHERNET);
    let mut ours = Vec::new();
    for (data, orig_len) in frames {
        assert_eq!(orig_len as usize, data.len());
        if data.len() > 14 && data[12..14] == ETHERTYPE.to_be_bytes() && data[14] == tag {
            ours.push(data);
        }
    }
    ours
}

/// The link type and the frames (bytes kept, original length) of a pcap or
/// pcapng file (one interface).
pub fn frames_in_capture(path: &std::path::Path) -> (pcap_file::DataLink, Vec<(Vec<u8>, u32)>) {
    let bytes = std::fs::read(path).unwrap();
    let mut frames = Vec::new();
    if bytes.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        let mut r = pcap_file::pcapng::PcapNgReader::new(&bytes[..]).expect("a pcapng file");
        let mut link = None;
        while let Some(b) = r.next_block() {
            match b.expect("a readable block") {
                pcap_file::pcapng::Block::InterfaceDescription(i) => link = Some(i.linktype),
                pcap_file::pcapng::Block::EnhancedPacket(e) => {
                    frames.push((e.data.to_vec(), e.original_len))
                }
                _ => {}
            }
        }
        (link.expect("an interface description"), frames)
    } else {
        let mut r = pcap_file::pcap::PcapReader::new(&bytes[..]).expect("a pcap file");
        let link = r.header().datalink;
        while let Some(p) = r.next_packet() {
            let p = p.expect("a readable record");
            frames.push((p.data.to_vec(), p.orig_len));
        }
        (link, frames)
    }
}

/// Runs tcpdump (which the capture tests need: it reads the files back and
/// compiles filters), failing with what to install if it is missing.
pub fn tcpdump(args: &[&str]) -> Output {
    match Command::new("tcpdump").args(args).output() {
        Ok(o) => o,
        Err(e) => panic!("tcpdump: {e} (the capture tests need it: apt install tcpdump)"),
    }
}

/// Runs tshark (Wireshark's reader, which the capture tests read every file
/// format back with), failing with what to install if it is missing.
pub fn tshark(args: &[&str]) -> Output {
    match Command::new("tshark").args(args).output() {
        Ok(o) => o,
        Err(e) => panic!("tshark: {e} (the capture tests need it: apt install tshark)"),
    }
}
