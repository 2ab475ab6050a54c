//! Helpers for tests against the real kernel: a private network namespace per
//! test thread, AF_PACKET sockets to inject and capture frames, frame builders,
//! and polling loops over rx queues.
#![allow(dead_code)]

pub mod offload;

use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use rtap::{
    BackendKind, Offloads, Packet, PacketConfig, Pool, PoolConfig, Port, RxMode, RxQueue,
    TapConfig, TxQueue,
};

/// EtherType of the frames tests build (IEEE local experimental 1): the kernel
/// never sends it, so its own IPv6 MLD/RS frames are easy to filter out.
pub const TEST_ETHERTYPE: u16 = 0x88b5;

/// Generous bound for anything that should happen "at once".
pub const WAIT: Duration = Duration::from_secs(3);

/// Generates, for each listed function taking a [`BackendKind`], one `#[test]`
/// per data-path variant: `uring::NAME` (io_uring with the default rx mode),
/// `uring_posted::NAME` (io_uring forced to posted reads, see [`force_rx_mode`])
/// and `rw::NAME` (read/write syscalls). The data-path tests are written once and
/// run against every variant. Functions listed after `uring_ignored:` run
/// normally for rw and are `#[ignore]`d for both io_uring variants with the given
/// reason (a known bug outside this suite's reach); those after
/// `posted_ignored:` are ignored for `uring_posted` only. `cargo test --
/// --ignored` runs them.
#[macro_export]
macro_rules! backend_tests {
    (
        $($name:ident),* $(,)?
        $(; uring_ignored: $($iname:ident = $why:literal),* $(,)?)?
        $(; posted_ignored: $($pname:ident = $pwhy:literal),* $(,)?)?
    ) => {
        mod uring {
            $(
                #[test]
                fn $name() {
                    super::$name(rtap::BackendKind::Uring)
                }
            )*
            $($(
                #[test]
                #[ignore = $why]
                fn $iname() {
                    super::$iname(rtap::BackendKind::Uring)
                }
            )*)?
            $($(
                #[test]
                fn $pname() {
                    super::$pname(rtap::BackendKind::Uring)
                }
            )*)?
        }
        mod uring_posted {
            $(
                #[test]
                fn $name() {
                    $crate::common::force_rx_mode(rtap::RxMode::Posted);
                    super::$name(rtap::BackendKind::Uring)
                }
            )*
            $($(
                #[test]
                #[ignore = $why]
                fn $iname() {
                    $crate::common::force_rx_mode(rtap::RxMode::Posted);
                    super::$iname(rtap::BackendKind::Uring)
                }
            )*)?
            $($(
                #[test]
                #[ignore = $pwhy]
                fn $pname() {
                    $crate::common::force_rx_mode(rtap::RxMode::Posted);
                    super::$pname(rtap::BackendKind::Uring)
                }
            )*)?
        }
        mod rw {
            $(
                #[test]
                fn $name() {
                    super::$name(rtap::BackendKind::Rw)
                }
            )*
            $($(
                #[test]
                fn $iname() {
                    super::$iname(rtap::BackendKind::Rw)
                }
            )*)?
            $($(
                #[test]
                fn $pname() {
                    super::$pname(rtap::BackendKind::Rw)
                }
            )*)?
        }
    };
}

thread_local! {
    static RX_MODE: std::cell::Cell<Option<RxMode>> = const { std::cell::Cell::new(None) };
}

/// Makes [`open`] (and the helpers built on it) use `mode` for io_uring rx on
/// this test's thread, whatever the configuration it is given says.
pub fn force_rx_mode(mode: RxMode) {
    RX_MODE.with(|m| m.set(Some(mode)));
}

/// The work-size factor from `RTAP_TEST_SCALE` (default 1): tests that move a
/// lot of traffic move this fraction of it. `scripts/vm-test` turns it down for
/// emulated guests, where the CPU is several times slower. Only amounts of
/// traffic scale, never a check: every assertion holds at any scale.
pub fn scale() -> f64 {
    static SCALE: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *SCALE.get_or_init(|| match std::env::var("RTAP_TEST_SCALE") {
        Ok(v) => {
            let f: f64 = v
                .parse()
                .unwrap_or_else(|_| panic!("RTAP_TEST_SCALE={v:?}: not a number"));
            assert!(
                f > 0.0 && f <= 1.0,
                "RTAP_TEST_SCALE={v}: must be in (0, 1]"
            );
            f
        }
        Err(_) => 1.0,
    })
}

/// `n` scaled by [`scale`], at least `min`.
pub fn scaled(n: u64, min: u64) -> u64 {
    ((n as f64 * scale()) as u64).max(min)
}

/// The running kernel's (major, minor) version, from `uname -r`.
pub fn kernel_version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("kernel release");
    let mut it = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().expect("numeric kernel version"));
    (it.next().unwrap(), it.next().unwrap())
}

/// True if the running kernel is at least `major.minor`. Tests use it as an
/// oracle independent of rtap's own feature probes: on older kernels they
/// assert the fallback instead of the feature.
pub fn kernel_at_least(major: u32, minor: u32) -> bool {
    kernel_version() >= (major, minor)
}

/// `IORING_OP_READ_MULTISHOT` exists (Linux 6.7).
pub fn has_read_multishot() -> bool {
    kernel_at_least(6, 7)
}

/// The tap driver takes UDP segmentation offload (`TUN_F_USO4/6`, Linux 6.2).
pub fn has_uso() -> bool {
    kernel_at_least(6, 2)
}

/// What `Offloads::ALL` negotiates to on this kernel: everything, less USO
/// before Linux 6.2.
pub fn offloads_all_here() -> Offloads {
    if has_uso() {
        Offloads::ALL
    } else {
        Offloads::ALL.uso4(false).uso6(false)
    }
}

/// Moves the calling thread into a fresh network namespace. Each `#[test]` runs on
/// its own thread, so tests are isolated and leave nothing behind: interfaces die
/// with the namespace when the thread ends.
///
/// IPv6 is disabled in the new namespace (before any interface exists), so the
/// kernel sends no MLD/router-solicitation frames of its own and rx counters only
/// see what the test injected.
pub fn netns() {
    // SAFETY: unshare takes no pointers; CLONE_NEWNET only affects this thread.
    let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        r,
        0,
        "unshare(CLONE_NEWNET) failed: {} (tests must run as root)",
        io::Error::last_os_error()
    );
    // /proc/sys/net resolves against the calling thread's namespace.
    for knob in ["default", "all"] {
        let path = format!("/proc/sys/net/ipv6/conf/{knob}/disable_ipv6");
        if std::path::Path::new(&path).exists() {
            std::fs::write(&path, "1").unwrap_or_else(|e| panic!("write {path}: {e}"));
        }
    }
}

/// Writes `value` to `/proc/sys/<path>` in the calling thread's namespace.
pub fn sysctl(path: &str, value: &str) {
    let full = format!("/proc/sys/{path}");
    std::fs::write(&full, value).unwrap_or_else(|e| panic!("write {full}: {e}"));
}

/// Turns IPv6 back on in the calling thread's namespace ([`netns`] turns it
/// off). Interfaces created afterwards get IPv6; call it before opening ports.
pub fn enable_ipv6() {
    for knob in ["default", "all"] {
        sysctl(&format!("net/ipv6/conf/{knob}/disable_ipv6"), "0");
    }
}

/// Turns IPv6 off in the calling thread's namespace (for namespaces not made by
/// [`netns`]), so the kernel sends no MLD/router-solicitation frames of its own.
pub fn disable_ipv6() {
    for knob in ["default", "all"] {
        sysctl(&format!("net/ipv6/conf/{knob}/disable_ipv6"), "1");
    }
}

/// A named network namespace (`ip netns add`), for tests that need two network
/// stacks talking to each other through ports. Threads enter it with
/// [`NamedNetns::enter`]; it is deleted on drop (also while unwinding), and the
/// kernel frees it once no thread, socket or interface uses it any more.
pub struct NamedNetns {
    name: String,
}

impl NamedNetns {
    /// Creates `rtapt-<tag>-<pid>-<n>` (unique across parallel tests and runs).
    pub fn create(tag: &str) -> NamedNetns {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("rtapt-{tag}-{}-{n}", std::process::id());
        ip(&["netns", "add", &name]);
        NamedNetns { name }
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Moves the calling thread (only it) into the namespace: sockets, taps and
    /// `/proc/sys/net` it opens afterwards are the namespace's.
    pub fn enter(&self) {
        let path = format!("/run/netns/{}", self.name);
        let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: f is a live namespace fd; setns only reads it and affects this thread.
        let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(
            r,
            0,
            "setns into {}: {}",
            self.name,
            io::Error::last_os_error()
        );
    }

    /// Runs `ip -n NAME args...`.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// Runs `f` on a new thread inside the namespace and returns its result.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                self.enter();
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }
}

impl Drop for NamedNetns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Runs `ip` with args in the calling thread's namespace (a child process inherits it).
pub fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Ifindex of `name` in the calling thread's namespace, via libc (not rtap).
pub fn if_index(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: c is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// Sends `payload` from `s` to `to` every 20 ms until an IP packet ending
/// with it arrives on `rxq` (a TUN's queue; at most 3 s) and returns that
/// packet. Repeated because the kernel drops what is routed into an
/// interface before link watch gives it its qdisc.
#[track_caller]
pub fn routed_into(
    rxq: &mut RxQueue,
    s: &std::net::UdpSocket,
    to: &str,
    payload: &[u8],
) -> Vec<u8> {
    let deadline = Instant::now() + WAIT;
    let mut v = Vec::new();
    loop {
        s.send_to(payload, to).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        v.clear();
        rxq.rx_burst(&mut v, 32).unwrap();
        if let Some(f) = v.iter().map(|p| p.to_vec()).find(|f| f.ends_with(payload)) {
            return f;
        }
        assert!(Instant::now() < deadline, "nothing routed into the TUN");
    }
}

/// Raises the flag when dropped, also by a panic: a test whose worker threads
/// run until a flag rises keeps one alive while it checks, so that a failed
/// check ends the workers (and the scope joining them) instead of hanging.
pub struct StopOnDrop<'a>(pub &'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// Waits (at most 3 s) until interface `name` is operationally up. A veth end
/// whose peer just came up sends nothing until then: the kernel attaches its
/// qdisc a moment later (link watch), and drops what is sent before. (A TUN's
/// driver reports no operational state: link watch makes it `UNKNOWN`, from
/// `DOWN`, when its carrier is on.)
#[track_caller]
pub fn wait_oper_up(name: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = std::process::Command::new("ip")
            .args(["-o", "link", "show", "dev", name])
            .output()
            .expect("run ip");
        let s = String::from_utf8_lossy(&out.stdout);
        let up = s.contains("state UP") || (s.contains("state UNKNOWN") && s.contains("LOWER_UP"));
        // The qdisc tells that link watch has run (`noop` until then).
        if up && !s.contains("qdisc noop") {
            return;
        }
        assert!(Instant::now() < deadline, "{name} never came up");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// True once no interface called `name` exists (waiting at most 3 s): the
/// kernel deletes a TUN/TAP when the last file of its queues is closed, and
/// that may not be the port's close: another test thread of this binary that
/// forks (`ip`) while the port's fds are open holds copies until its child
/// execs.
#[must_use]
pub fn gone(name: &str) -> bool {
    let deadline = Instant::now() + WAIT;
    while if_exists(name) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// True if an interface called `name` exists in this thread's namespace.
pub fn if_exists(name: &str) -> bool {
    if_index(name).is_some()
}

/// Asserts that interface `name` disappears within 2 s. Not at once: while tests
/// run in parallel, another thread may have forked a child (to run `ip`) that
/// holds a copy of the tap's fds until it execs, and the kernel deletes a
/// non-persistent tap only when the last copy is closed.
#[track_caller]
pub fn assert_gone_soon(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while if_exists(name) {
        assert!(Instant::now() < deadline, "interface {name} still exists");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The rx mode set with [`force_rx_mode`] on this thread, if any (for tests that
/// open ports on other threads).
pub fn forced_rx_mode() -> Option<RxMode> {
    RX_MODE.with(|m| m.get())
}

/// Opens a port, asserting that the backend asked for is the one in use. Applies
/// the rx mode set with [`force_rx_mode`], if any.
pub fn open(mut cfg: TapConfig) -> Port {
    if let Some(mode) = RX_MODE.with(|m| m.get()) {
        cfg.ring.rx_mode = mode;
    }
    let want = rtap::Engine::from(cfg.backend);
    let port = Port::open(cfg).expect("open tap port");
    assert_eq!(
        port.engine(),
        want,
        "backend fell back: {:?}",
        port.engine_reason()
    );
    port
}

/// Opens and starts a port called `name` with `queues` queue pairs.
pub fn started(name: &str, backend: BackendKind, queues: u16) -> Port {
    let port = open(TapConfig::new(name).queues(queues).backend(backend));
    port.start().expect("start");
    port
}

/// The default pool.
pub fn pool() -> Pool {
    Pool::new(PoolConfig::default()).unwrap()
}

/// Asserts every buffer of `pool` is back.
#[track_caller]
pub fn assert_pool_full(pool: &Pool) {
    assert_eq!(
        pool.available(),
        pool.capacity() as usize,
        "buffers missing from the pool"
    );
}

/// A frame: broadcast dst, fixed src, TEST_ETHERTYPE, then `seq` (4 bytes) and a
/// deterministic payload up to `len` bytes total.
pub fn test_frame(len: usize, seq: u32) -> Vec<u8> {
    assert!(len >= 18);
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f.extend_from_slice(&TEST_ETHERTYPE.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    while f.len() < len {
        f.push((f.len() as u32 ^ seq) as u8);
    }
    f
}

/// Sequence number of a test frame, or None if it is not one.
pub fn test_seq(f: &[u8]) -> Option<u32> {
    (f.len() >= 18 && f[12..14] == TEST_ETHERTYPE.to_be_bytes())
        .then(|| u32::from_be_bytes([f[14], f[15], f[16], f[17]]))
}

/// Marks the UDP payload of flow frames.
const FLOW_MAGIC: &[u8; 8] = b"RTAPFLOW";
/// Ethernet + IPv4 + UDP headers.
const FLOW_HDRS: usize = 14 + 20 + 8;

/// An IPv4/UDP frame of `len` bytes belonging to flow `flow` (UDP source port
/// 10000 + flow, so the kernel's flow hash spreads flows over tap queues), with
/// `seq` and the flow id in the payload.
pub fn flow_frame(len: usize, flow: u16, seq: u32) -> Vec<u8> {
    assert!(len >= FLOW_HDRS + 16);
    let mut payload = Vec::with_capacity(len - FLOW_HDRS);
    payload.extend_from_slice(FLOW_MAGIC);
    payload.extend_from_slice(&(flow as u32).to_be_bytes());
    payload.extend_from_slice(&seq.to_be_bytes());
    while payload.len() < len - FLOW_HDRS {
        payload.push((payload.len() as u32 ^ seq) as u8);
    }
    let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 3])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(10000 + flow, 20000);
    let mut f = Vec::with_capacity(len);
    b.write(&mut f, &payload).unwrap();
    assert_eq!(f.len(), len);
    f
}

/// (flow, seq) of a flow frame, or None.
pub fn flow_of(f: &[u8]) -> Option<(u16, u32)> {
    if f.len() < FLOW_HDRS + 16 || f[12..14] != [0x08, 0x00] || f[23] != 17 {
        return None;
    }
    let p = &f[FLOW_HDRS..];
    if &p[..8] != FLOW_MAGIC {
        return None;
    }
    let flow = u32::from_be_bytes([p[8], p[9], p[10], p[11]]) as u16;
    let seq = u32::from_be_bytes([p[12], p[13], p[14], p[15]]);
    Some((flow, seq))
}

/// True for frames built by this module (test frames or flow frames).
pub fn is_ours(f: &[u8]) -> bool {
    test_seq(f).is_some() || flow_of(f).is_some()
}

/// An AF_PACKET raw socket bound to one interface (the workspace's
/// [`rawsock::RawSocket`]), with the tests' own filters on top.
pub struct PacketSocket(rawsock::RawSocket);

impl PacketSocket {
    /// A socket that both sends and captures every frame of the interface.
    pub fn bind(ifindex: u32) -> PacketSocket {
        PacketSocket(rawsock::RawSocket::bind(ifindex).expect("AF_PACKET socket"))
    }

    /// A send-only socket: bound with protocol 0 it captures nothing, so sending a
    /// flood does not also fill its own receive queue with copies.
    pub fn injector(ifindex: u32) -> PacketSocket {
        PacketSocket(rawsock::RawSocket::injector(ifindex).expect("AF_PACKET socket"))
    }

    /// Sends one frame out of the interface (so the tap's reader receives it).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        self.0.send(frame)
    }

    /// Receives the next frame the kernel got *from* the interface (not our own
    /// outgoing ones) within `timeout`.
    pub fn recv_incoming(&self, timeout: Duration) -> Option<Vec<u8>> {
        self.0
            .recv_matching(timeout, 1, |_| true)
            .expect("AF_PACKET recv")
            .pop()
    }

    /// Receives incoming frames built by this module until `count` arrived or
    /// `timeout` passed.
    pub fn recv_ours(&self, count: usize, timeout: Duration) -> Vec<Vec<u8>> {
        self.0
            .recv_matching(timeout, count, is_ours)
            .expect("AF_PACKET recv")
    }

    /// Receives incoming frames `keep` accepts until `count` arrived or
    /// `timeout` passed.
    pub fn recv_where(
        &self,
        count: usize,
        timeout: Duration,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Vec<Vec<u8>> {
        self.0
            .recv_matching(timeout, count, keep)
            .expect("AF_PACKET recv")
    }

    /// Receives incoming test frames until `count` arrived or `timeout` passed.
    pub fn recv_test_frames(&self, count: usize, timeout: Duration) -> Vec<Vec<u8>> {
        self.recv_ours(count, timeout)
    }

    pub fn ifindex(&self) -> u32 {
        self.0.ifindex()
    }
}

/// Polls `rxq` until `count` test frames arrived (others are dropped) or `timeout`.
pub fn rx_test_frames(rxq: &mut RxQueue, count: usize, timeout: Duration) -> Vec<Packet> {
    let mut per = vec![Vec::new()];
    rx_until(std::slice::from_mut(rxq), &mut per, count, timeout);
    per.pop().unwrap()
}

/// Polls every queue of `rxqs`, appending frames built by this module to
/// `per_queue[i]` (others are dropped), until `total` such frames are held in
/// `per_queue` altogether or `timeout` passes. Returns true if `total` was reached.
pub fn rx_until(
    rxqs: &mut [RxQueue],
    per_queue: &mut [Vec<Packet>],
    total: usize,
    timeout: Duration,
) -> bool {
    assert_eq!(rxqs.len(), per_queue.len());
    let deadline = Instant::now() + timeout;
    let mut burst = Vec::with_capacity(64);
    loop {
        let mut n = 0;
        for (q, out) in rxqs.iter_mut().zip(per_queue.iter_mut()) {
            burst.clear();
            n += q.rx_burst(&mut burst, 64).expect("rx_burst");
            out.extend(burst.drain(..).filter(|p| is_ours(p.data())));
        }
        let held: usize = per_queue.iter().map(Vec::len).sum();
        if held >= total {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        if n == 0 {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

/// Injects `frames` through `ps` in chunks, receiving on `rxqs` after each chunk
/// so no tap queue ever holds more than one chunk: nothing may be dropped for
/// lack of room, so every loss is a bug. Frames are appended per queue to
/// `per_queue`. Returns the number of frames received.
pub fn inject_and_receive(
    ps: &PacketSocket,
    frames: &[Vec<u8>],
    rxqs: &mut [RxQueue],
    per_queue: &mut [Vec<Packet>],
) -> usize {
    const CHUNK: usize = 64;
    let start: usize = per_queue.iter().map(Vec::len).sum();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut sent = 0;
    for chunk in frames.chunks(CHUNK) {
        for f in chunk {
            ps.send(f).expect("inject frame");
        }
        sent += chunk.len();
        let left = deadline.saturating_duration_since(Instant::now());
        rx_until(rxqs, per_queue, start + sent, left.min(WAIT));
    }
    per_queue.iter().map(Vec::len).sum::<usize>() - start
}

/// Sends every packet of `pkts`, retrying while the queue is full.
pub fn tx_all(txq: &mut TxQueue, mut pkts: Vec<Packet>) {
    let deadline = Instant::now() + WAIT;
    while !pkts.is_empty() {
        let before = pkts.len();
        let n = txq.tx_burst(&mut pkts).expect("tx_burst");
        assert_eq!(before - pkts.len(), n, "tx_burst count vs removed packets");
        assert!(Instant::now() < deadline, "tx queue stayed full");
        if n == 0 {
            txq.flush(Duration::from_millis(10));
        }
    }
}

/// Sorts packets by their test or flow sequence number (for checks that must not
/// depend on delivery order).
pub fn sort_by_seq(pkts: &mut [Packet]) {
    pkts.sort_by_key(|p| {
        let d = p.data();
        test_seq(d).or_else(|| flow_of(d).map(|(_, s)| s))
    });
}

/// Number of open fds of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The error of a result whose success type has no `Debug` (queue handles).
#[track_caller]
pub fn err<T>(r: rtap::Result<T>) -> rtap::Error {
    match r {
        Ok(_) => panic!("expected an error, got Ok"),
        Err(e) => e,
    }
}

/// Sends two frames of each of 256 flows and checks that all `n` rx queues of the
/// started `port` receive some, that none is lost or duplicated, and that each
/// flow stays on one queue. Proof that the kernel tap has exactly `n` queues
/// attached: a frame steered to a queue nobody reads would be missing. Returns
/// the frames received per queue.
pub fn check_all_queues_receive(port: &Port, pool: &Pool, n: u16) -> Vec<Vec<Packet>> {
    assert_eq!(port.queue_count(), n);
    let inj = PacketSocket::injector(port.ifindex());
    let mut rxqs: Vec<RxQueue> = (0..n).map(|q| port.rx_queue(q, pool).unwrap()).collect();
    let e = err(port.rx_queue(n, pool));
    assert!(matches!(e, rtap::Error::NoSuchQueue { .. }), "{e:?}");
    let frames: Vec<Vec<u8>> = (0..512u32)
        .map(|i| flow_frame(80, (i % 256) as u16, i))
        .collect();
    let mut per: Vec<Vec<Packet>> = (0..n).map(|_| Vec::new()).collect();
    let got = inject_and_receive(&inj, &frames, &mut rxqs, &mut per);
    assert_eq!(
        got,
        frames.len(),
        "frames lost with {n} queues: per queue {:?}, stats {:?}",
        per.iter().map(Vec::len).collect::<Vec<_>>(),
        port.stats()
    );
    let mut seen = std::collections::HashSet::new();
    let mut flow_queue = std::collections::HashMap::new();
    for (q, pkts) in per.iter().enumerate() {
        assert!(!pkts.is_empty(), "queue {q} of {n} received nothing");
        for p in pkts {
            let v = p.to_vec();
            let (flow, seq) = flow_of(&v).unwrap();
            assert_eq!(v, flow_frame(80, flow, seq), "frame {seq} corrupted");
            assert!(seen.insert(seq), "frame {seq} received twice");
            let first = *flow_queue.entry(flow).or_insert(q);
            assert_eq!(first, q, "flow {flow} split over queues {first} and {q}");
        }
    }
    per
}

/// Injects every frame without reading anything. Returns how many the kernel
/// accepted and how many it refused with ENOBUFS (the tap dropped them).
pub fn flood(ps: &PacketSocket, frames: impl IntoIterator<Item = Vec<u8>>) -> (usize, usize) {
    let (mut ok, mut dropped) = (0, 0);
    for f in frames {
        match ps.send(&f) {
            Ok(()) => ok += 1,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => dropped += 1,
            Err(e) => panic!("inject: {e}"),
        }
    }
    (ok, dropped)
}

/// Injects `count` frames made by `make(i)` in chunks, receiving and checking
/// each chunk (with `check`) and dropping the packets right away, so any number
/// of frames flows through a finite pool. Returns the number received.
pub fn stream_through(
    ps: &PacketSocket,
    rxqs: &mut [RxQueue],
    count: u32,
    make: impl Fn(u32) -> Vec<u8>,
    mut check: impl FnMut(&Packet),
) -> usize {
    let mut got = 0;
    let mut per: Vec<Vec<Packet>> = rxqs.iter().map(|_| Vec::new()).collect();
    let mut i = 0;
    while i < count {
        let n = (count - i).min(64);
        for j in i..i + n {
            ps.send(&make(j)).expect("inject frame");
        }
        i += n;
        rx_until(rxqs, &mut per, n as usize, WAIT);
        for p in per.iter_mut().flat_map(|v| v.drain(..)) {
            check(&p);
            got += 1;
        }
    }
    got
}

// AF_PACKET ports: a veth pair per test, the port on one end.

/// TPACKET_V3 with blocks retired by the kernel's timer 2 ms after their first
/// frame, so tests see frames soon.
pub const V3_2MS: rtap::Tpacket = rtap::Tpacket::V3 {
    block_timeout_ms: 2,
};

/// One `#[test]` per kick for each listed function taking a [`Kick`].
#[macro_export]
macro_rules! kick_tests {
    ($($name:ident),* $(,)?) => {
        mod uring {
            $(#[test] fn $name() { super::$name(rtap::Kick::Uring) })*
        }
        mod sendto {
            $(#[test] fn $name() { super::$name(rtap::Kick::Sendto) })*
        }
    };
}

/// A veth pair `{tag}p` (the port's) and `{tag}k` (the test's), `{tag}k` up.
/// Returns the test end's ifindex. Call after [`netns`].
pub fn veth(tag: &str) -> (String, u32) {
    let (p, k) = (format!("{tag}p"), format!("{tag}k"));
    ip(&["link", "add", &p, "type", "veth", "peer", "name", &k]);
    ip(&["link", "set", &k, "up"]);
    (p, if_index(&k).unwrap())
}

/// Opens and starts a packet port, asserting the kick asked for is in effect;
/// returns once the interface's peer (`…k`) is operational.
pub fn packet_port(cfg: PacketConfig) -> Port {
    let kick = cfg.kick;
    let peer = format!("{}k", cfg.iface.strip_suffix('p').unwrap_or(&cfg.iface));
    let port = Port::open(cfg).expect("open packet port");
    assert_eq!(
        port.engine(),
        rtap::Engine::tpacket(kick),
        "kick fell back: {:?}",
        port.engine_reason()
    );
    port.start().expect("start");
    if if_exists(&peer) {
        wait_oper_up(&peer);
    }
    port
}

/// The port's value of xstat `name`.
pub fn xstat(port: &Port, name: &str) -> u64 {
    port.xstats()
        .into_iter()
        .find(|x| x.name == name)
        .unwrap_or_else(|| panic!("no xstat {name}"))
        .value
}

/// Opens `/dev/net/tun` and attaches it to (or creates) interface `name`
/// with `flags` (`IFF_TUN | IFF_NO_PI | ...`): what a privileged helper does
/// before it hands the fd to an unprivileged daemon.
pub fn tun_fd(name: &str, flags: libc::c_int) -> std::os::fd::OwnedFd {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .expect("open /dev/net/tun");
    // SAFETY: ifreq is plain data; all zero is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = flags as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one ifreq, which ifr is.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), libc::TUNSETIFF, &mut ifr as *mut libc::ifreq) };
    assert_eq!(
        r,
        0,
        "TUNSETIFF {name}: {}",
        std::io::Error::last_os_error()
    );
    f.into()
}
