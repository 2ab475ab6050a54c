//! `rtap bench`: the contenders side by side in one run, 64-byte frames, one queue.
//!
//! - **tx**: the port sends bursts of 32 freshly built frames for a fixed time;
//!   packets per second = completed transmissions / time.
//! - **rx**: the tap's queue is first filled from the kernel side (AF_PACKET,
//!   queue length raised so nothing is dropped), *then* the rx queue is opened and
//!   timed until it has drained every frame, so the generator is not what is measured.
//! - **fwd**: same fill, then an io-mode forwarder (rx on port A, the same packets
//!   sent on port B) is timed until B has completed every transmission.
//!
//! - **tcp**: a content-verified TCP bulk transfer between two network
//!   namespaces (the demo's machinery: a port opened in each namespace, the
//!   io-mode forwarder between them, [`crate::bulk`] sender and receiver), for each
//!   backend with and without offloads, and over a plain veth pair (no userspace
//!   at all: the kernel's ceiling). Rounds of 2 s interleave the contenders.
//! - **lat**: a UDP ping-pong over the same paths ([`crate::latency`]): round-trip
//!   percentiles from an HDR histogram, the forwarder busy-polling or sleeping on
//!   rx interrupts.
//!
//! Contenders: see [`CONTENDERS`] and [`TCP_CONTENDERS`]. Each packet-rate test
//! runs in a private network namespace on its own thread.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use rtap::{BackendKind, Packet, Pool, PoolConfig, Port, RingConfig, RxMode, TapConfig};

/// One contender.
#[derive(Clone, Copy, Debug)]
pub struct Contender {
    pub name: &'static str,
    pub backend: BackendKind,
    pub rx_mode: RxMode,
    pub sqpoll: bool,
}

/// `uring` is the library default (for 64-byte frames its Auto rx mode picks
/// multishot); `uring-posted` keeps one read posted per buffer (the DPDK driver's
/// design); `uring-sqpoll` adds an SQPOLL kernel thread (it uses a second core).
pub const CONTENDERS: [Contender; 4] = [
    Contender {
        name: "uring",
        backend: BackendKind::Uring,
        rx_mode: RxMode::Auto,
        sqpoll: false,
    },
    Contender {
        name: "uring-posted",
        backend: BackendKind::Uring,
        rx_mode: RxMode::Posted,
        sqpoll: false,
    },
    Contender {
        name: "uring-sqpoll",
        backend: BackendKind::Uring,
        rx_mode: RxMode::Auto,
        sqpoll: true,
    },
    Contender {
        name: "rw",
        backend: BackendKind::Rw,
        rx_mode: RxMode::Auto,
        sqpoll: false,
    },
];

/// How the packets of a `tcp` contender travel between the two namespaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpPath {
    /// A tap in each namespace and the io-mode forwarder between them.
    Rtap { backend: BackendKind, offload: bool },
    /// A veth pair: the kernel alone.
    Veth,
}

/// One contender of the `tcp` and `lat` tests.
#[derive(Clone, Copy, Debug)]
pub struct TcpContender {
    pub name: &'static str,
    pub path: TcpPath,
    /// The forwarder sleeps on rx interrupts when idle (`--idle interrupt`)
    /// instead of busy-polling.
    pub interrupt: bool,
}

/// `uring` and `rw` with every offload (64 KiB frames through the taps, partial
/// checksums), `uring-interrupt` (the same, the forwarder sleeping on rx
/// interrupts when idle), the `-nooffload` twins (MTU-sized, checksummed frames),
/// and `veth`.
pub const TCP_CONTENDERS: [TcpContender; 6] = [
    TcpContender {
        name: "uring",
        path: TcpPath::Rtap {
            backend: BackendKind::Uring,
            offload: true,
        },
        interrupt: false,
    },
    TcpContender {
        name: "uring-interrupt",
        path: TcpPath::Rtap {
            backend: BackendKind::Uring,
            offload: true,
        },
        interrupt: true,
    },
    TcpContender {
        name: "uring-nooffload",
        path: TcpPath::Rtap {
            backend: BackendKind::Uring,
            offload: false,
        },
        interrupt: false,
    },
    TcpContender {
        name: "rw",
        path: TcpPath::Rtap {
            backend: BackendKind::Rw,
            offload: true,
        },
        interrupt: false,
    },
    TcpContender {
        name: "rw-nooffload",
        path: TcpPath::Rtap {
            backend: BackendKind::Rw,
            offload: false,
        },
        interrupt: false,
    },
    TcpContender {
        name: "veth",
        path: TcpPath::Veth,
        interrupt: false,
    },
];

/// The contenders of the `lat` test (64-byte UDP ping-pong): offloads make no
/// difference to frames that small.
pub const LAT_CONTENDERS: [&str; 4] = ["uring", "uring-interrupt", "rw", "veth"];
/// Recorded round trips per contender and round (quick: one round of 2000).
pub const LAT_SAMPLES: u64 = 10_000;
/// Latency rounds per contender in a full run.
pub const LAT_ROUNDS: usize = 3;

/// Length of one tcp round; a full run does [`TCP_ROUNDS`] of them per contender.
pub const TCP_ROUND: Duration = Duration::from_secs(2);
/// Rounds per contender in a full run (one with `--quick`).
pub const TCP_ROUNDS: usize = 5;
/// Namespace prefix of the tcp test: `rtapbench-a-PID`, `rtapbench-b-PID`.
pub const TCP_NS_PREFIX: &str = "rtapbench-";

/// Options.
#[derive(Clone, Debug)]
pub struct BenchOpts {
    /// Fewer frames and one repetition: finishes in seconds.
    pub quick: bool,
    /// Run only this test (`tx`, `rx`, `fwd` or `tcp`).
    pub only: Option<&'static str>,
    /// Run only the contenders whose name is in this list (None: all).
    pub contenders: Option<Vec<String>>,
    /// tcp: count the bytes but do not compare them with the pattern.
    pub no_verify: bool,
    /// tcp: what the forwarder does when idle.
    pub idle: crate::fwd::Idle,
    /// tcp: extra port spec keys for the rtap contenders (`ring=512`...).
    pub port_opts: String,
}

/// What a cell measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Packets per second, with the measuring thread's CPU ns per packet.
    Pps,
    /// Gbit/s of TCP payload, with the forwarder's and the machine's CPU load.
    Gbps,
    /// Round-trip time percentiles of a UDP ping-pong, with the forwarder's CPU load.
    Latency,
}

/// Round-trip time percentiles, µs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Lat {
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
    /// Recorded round trips.
    pub samples: u64,
    /// Requests whose echo never came back.
    pub lost: u64,
}

/// One measured cell.
#[derive(Clone, Debug)]
pub struct Cell {
    pub test: &'static str,
    pub contender: &'static str,
    pub unit: Unit,
    /// Packets per second ([`Unit::Pps`]), Gbit/s ([`Unit::Gbps`]) or the median
    /// round trip in µs ([`Unit::Latency`]).
    pub rate: f64,
    /// [`Unit::Pps`]: CPU time of the measuring thread per packet (user + system),
    /// in ns. Robust to other load on the machine; excludes work done on other
    /// threads (SQPOLL, softirq on the other core).
    /// [`Unit::Gbps`], [`Unit::Latency`]: the forwarder worker's CPU time per wall
    /// second (1.0 = one core; 0 for veth).
    pub cpu: f64,
    /// [`Unit::Gbps`] only: busy CPU time of the whole machine per wall second
    /// during the transfer (2.0 = both cores of a 2-core machine).
    pub host_cpu: f64,
    /// [`Unit::Latency`] only: the percentiles.
    pub lat: Option<Lat>,
}

/// One run: packets per second of wall time, and thread CPU ns per packet.
#[derive(Clone, Copy, Debug)]
struct Run {
    pps: f64,
    cpu_ns: f64,
}

/// CPU time (user + system) the calling thread has used, in seconds.
pub fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a live timespec for the kernel to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Times a region in wall and thread-CPU time.
struct Clock {
    wall: Instant,
    cpu: f64,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            wall: Instant::now(),
            cpu: thread_cpu_s(),
        }
    }
    fn run(&self, packets: u64) -> Run {
        let el = self.wall.elapsed().as_secs_f64();
        let cpu = thread_cpu_s() - self.cpu;
        Run {
            pps: packets as f64 / el,
            cpu_ns: cpu * 1e9 / packets.max(1) as f64,
        }
    }
}

const BURST: usize = 32;
const FRAME_LEN: usize = 64;

/// A 64-byte frame addressed to another host, so the kernel drops it right after
/// the tap hands it up (the same cost for every contender).
fn frame(seq: u32) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    f
}

fn in_netns<T: Send>(f: impl FnOnce() -> Result<T, String> + Send) -> Result<T, String> {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: unshare takes no pointers; it moves only this thread.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(format!(
                    "unshare(CLONE_NEWNET): {} (run as root)",
                    io::Error::last_os_error()
                ));
            }
            // No IPv6 in the bench namespace: the kernel then sends no MLD/RS frames
            // of its own through the taps. /proc/sys/net follows the thread's namespace.
            for p in [
                "/proc/sys/net/ipv6/conf/all/disable_ipv6",
                "/proc/sys/net/ipv6/conf/default/disable_ipv6",
            ] {
                let _ = std::fs::write(p, "1");
            }
            f()
        })
        .join()
        .map_err(|_| "benchmark thread panicked".to_string())?
    })
}

fn open(c: &Contender, name: &str) -> Result<Port, String> {
    let sqpoll = c.sqpoll.then_some(rtap::SqPoll::new(200));
    let ring = RingConfig::default()
        .rx_mode(c.rx_mode)
        .rx_posted(256)
        .sqpoll(sqpoll);
    let mut p = Port::open(TapConfig::new(name).backend(c.backend).ring(ring))
        .map_err(|e| e.to_string())?;
    p.start().map_err(|e| e.to_string())?;
    if c.sqpoll {
        // The ring options must really be in effect, or the row would lie.
        let f = p
            .tx_queue(0)
            .map_err(|e| e.to_string())?
            .ring_features()
            .cloned();
        if !f.as_ref().is_some_and(|f| f.sqpoll) {
            return Err(format!(
                "{}: SQPOLL not in effect: {:?}",
                c.name,
                f.map(|f| f.fallbacks)
            ));
        }
    }
    if p.backend() != c.backend {
        return Err(format!(
            "{} asked, {} given: {}",
            c.backend,
            p.backend(),
            p.backend_reason().unwrap_or("")
        ));
    }
    Ok(p)
}

fn set_txqueuelen(port: &Port, len: u32) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args([
            "link",
            "set",
            "dev",
            &port.name(),
            "txqueuelen",
            &len.to_string(),
        ])
        .output()
        .map_err(|e| format!("run ip: {e} (install iproute2)"))?;
    if !out.status.success() {
        return Err(format!(
            "ip link set txqueuelen: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// Minimal AF_PACKET sender that bypasses the qdisc.
struct Injector(OwnedFd);

impl Injector {
    fn new(ifindex: u32) -> Result<Injector, String> {
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket call; result checked.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(format!("AF_PACKET socket: {}", io::Error::last_os_error()));
        }
        // SAFETY: fresh fd, owned from here.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        let one: libc::c_int = 1;
        // SAFETY: valid pointers and sizes for bind and setsockopt.
        unsafe {
            if libc::bind(
                fd.as_raw_fd(),
                &sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            ) != 0
            {
                return Err(format!("bind AF_PACKET: {}", io::Error::last_os_error()));
            }
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                &one as *const _ as *const libc::c_void,
                4,
            );
        }
        Ok(Injector(fd))
    }

    fn send(&self, f: &[u8]) -> Result<(), String> {
        // SAFETY: f is a live slice.
        let n = unsafe { libc::send(self.0.as_raw_fd(), f.as_ptr().cast(), f.len(), 0) };
        if n < 0 {
            return Err(format!("AF_PACKET send: {}", io::Error::last_os_error()));
        }
        Ok(())
    }
}

fn fill(port: &Port, n: u32) -> Result<(), String> {
    set_txqueuelen(port, n + 1024)?;
    let inj = Injector::new(port.ifindex())?;
    for i in 0..n {
        inj.send(&frame(i))?;
    }
    let st = port.stats().map_err(|e| e.to_string())?;
    if st.imissed != 0 {
        return Err(format!("filling dropped {} frames", st.imissed));
    }
    Ok(())
}

fn is_ours(p: &Packet) -> bool {
    p.len() == FRAME_LEN && p.data()[12..14] == 0x88b5u16.to_be_bytes()
}

fn bench_tx(c: &Contender, secs: f64) -> Result<Run, String> {
    in_netns(|| {
        let port = open(c, "btx%d")?;
        let pool = Pool::new(PoolConfig::default().count(8192)).map_err(|e| e.to_string())?;
        let mut txq = port.tx_queue(0).map_err(|e| e.to_string())?;
        let f = frame(0);
        let mut v: Vec<Packet> = Vec::with_capacity(BURST);
        let clock = Clock::start();
        let start = clock.wall;
        let deadline = start + Duration::from_secs_f64(secs);
        let base = txq.stats().packets;
        while Instant::now() < deadline {
            for _ in 0..64 {
                while v.len() < BURST {
                    match pool.alloc_from(&f) {
                        Ok(p) => v.push(p),
                        Err(_) => break,
                    }
                }
                txq.tx_burst(&mut v).map_err(|e| e.to_string())?;
            }
        }
        txq.flush(Duration::from_secs(1));
        Ok(clock.run(txq.stats().packets - base))
    })
}

fn bench_rx(c: &Contender, n: u32) -> Result<Run, String> {
    in_netns(|| {
        let port = open(c, "brx%d")?;
        let pool = Pool::new(PoolConfig::default().count(8192)).map_err(|e| e.to_string())?;
        fill(&port, n)?;
        let mut rxq = port.rx_queue(0, &pool).map_err(|e| e.to_string())?;
        let mut v = Vec::with_capacity(BURST);
        let mut got = 0u32;
        let clock = Clock::start();
        let start = clock.wall;
        let deadline = start + Duration::from_secs(20);
        while got < n && Instant::now() < deadline {
            rxq.rx_burst(&mut v, BURST).map_err(|e| e.to_string())?;
            got += v.iter().filter(|p| is_ours(p)).count() as u32;
            v.clear();
        }
        let run = clock.run(n as u64);
        if got < n {
            return Err(format!("rx drained only {got} of {n} frames"));
        }
        Ok(run)
    })
}

fn bench_fwd(c: &Contender, n: u32) -> Result<Run, String> {
    in_netns(|| {
        let a = open(c, "bfa%d")?;
        let b = open(c, "bfb%d")?;
        let pool = Pool::new(PoolConfig::default().count(8192)).map_err(|e| e.to_string())?;
        fill(&a, n)?;
        let mut rxq = a.rx_queue(0, &pool).map_err(|e| e.to_string())?;
        let mut txq = b.tx_queue(0).map_err(|e| e.to_string())?;
        let mut v = Vec::with_capacity(2 * BURST);
        let clock = Clock::start();
        let start = clock.wall;
        let deadline = start + Duration::from_secs(20);
        while txq.stats().packets < n as u64 && Instant::now() < deadline {
            if v.len() < BURST {
                rxq.rx_burst(&mut v, BURST).map_err(|e| e.to_string())?;
            }
            txq.tx_burst(&mut v).map_err(|e| e.to_string())?;
        }
        let sent = txq.stats().packets;
        let run = clock.run(sent);
        // The kernel's own frames may have been forwarded too: at least n must be through.
        if sent < n as u64 {
            return Err(format!("forwarded only {sent} of {n} frames"));
        }
        Ok(run)
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn median_run(runs: &[Run]) -> Run {
    Run {
        pps: median(runs.iter().map(|r| r.pps).collect()),
        cpu_ns: median(runs.iter().map(|r| r.cpu_ns).collect()),
    }
}

/// Runs every test for every contender; `progress` gets a line per measurement.
/// Repetitions interleave the contenders, so drifting load on the machine hits
/// all of them alike; each cell is the median of its repetitions.
pub fn run(opts: BenchOpts, mut progress: impl FnMut(&str)) -> Result<Vec<Cell>, String> {
    let reps = if opts.quick { 1 } else { 5 };
    let n = if opts.quick { 50_000 } else { 200_000 };
    let secs = if opts.quick { 0.5 } else { 1.0 };
    let mut cells = Vec::new();
    for test in ["tx", "rx", "fwd"] {
        if opts.only.is_some_and(|o| o != test) {
            continue;
        }
        // The rx mode does not change tx.
        let who: Vec<&Contender> = CONTENDERS
            .iter()
            .filter(|c| !(test == "tx" && c.rx_mode == RxMode::Posted))
            .filter(|c| chosen(&opts, c.name))
            .collect();
        let mut runs: Vec<Vec<Run>> = vec![Vec::new(); who.len()];
        for rep in 0..reps {
            for (i, c) in who.iter().enumerate() {
                interrupted()?;
                let r = match test {
                    "tx" => bench_tx(c, secs)?,
                    "rx" => bench_rx(c, n)?,
                    _ => bench_fwd(c, n)?,
                };
                progress(&format!(
                    "{test:>4} {:<14} run {}/{reps}: {:>6.2} Mpps {:>6.0} ns/pkt",
                    c.name,
                    rep + 1,
                    r.pps / 1e6,
                    r.cpu_ns
                ));
                runs[i].push(r);
            }
        }
        for (c, r) in who.iter().zip(&runs) {
            let m = median_run(r);
            cells.push(Cell {
                test,
                contender: c.name,
                unit: Unit::Pps,
                rate: m.pps,
                cpu: m.cpu_ns,
                host_cpu: 0.0,
                lat: None,
            });
        }
    }
    if opts.only.is_none_or(|o| o == "tcp") {
        let rounds = if opts.quick { 1 } else { TCP_ROUNDS };
        cells.extend(run_tcp(&opts, rounds, &mut progress)?);
    }
    if opts.only.is_none_or(|o| o == "lat") {
        let (rounds, samples) = if opts.quick {
            (1, 2_000)
        } else {
            (LAT_ROUNDS, LAT_SAMPLES)
        };
        cells.extend(run_lat(&opts, rounds, samples, &mut progress)?);
    }
    Ok(cells)
}

/// Busy and total CPU time of the machine so far (`/proc/stat`, clock ticks).
fn host_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum(); // user..steal; guest is inside user
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// CPU time (user + system) of this whole process so far, in seconds.
fn process_cpu_s() -> f64 {
    // SAFETY: rusage is plain data for the kernel to fill.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: ru is a live rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Clock ticks per second of `/proc/stat`.
fn clk_tck() -> f64 {
    // SAFETY: sysconf takes no pointers.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// One tcp round.
#[derive(Clone, Copy, Debug)]
struct TcpRun {
    gbps: f64,
    fwd_cpu: f64,
    host_cpu: f64,
    /// Busy CPU of the machine not accounted to this process, per wall second:
    /// other load that disturbs the round (or interrupt time the kernel does not
    /// charge to a task).
    other_cpu: f64,
    lro: u64,
}

/// Busy cores of the machine between two [`host_ticks`] samples (1.0 = one
/// core busy all the time).
fn busy_cores(before: (u64, u64), after: (u64, u64)) -> f64 {
    let busy = after.0.saturating_sub(before.0) as f64;
    let total = after.1.saturating_sub(before.1).max(1) as f64;
    busy / total * cpus()
}

/// Online CPUs (for turning `/proc/stat` ticks into cores).
fn cpus() -> f64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

/// What one transfer measured: Gbit/s, the machine's busy CPU and the part of it
/// not used by this process, both per wall second.
struct Traffic {
    gbps: f64,
    host_cpu: f64,
    other_cpu: f64,
}

/// A verified bulk transfer of `secs` from A to B, with the machine's CPU load.
fn tcp_traffic(
    a: &crate::netns::Netns,
    b: &crate::netns::Netns,
    secs: Duration,
    check: bool,
) -> Result<Traffic, String> {
    let (h0, p0, w0) = (host_ticks(), process_cpu_s(), Instant::now());
    let t = crate::bulk::run(
        a,
        b,
        crate::demo::ADDR_B,
        crate::bulk::Limit::Time(secs),
        check,
        &crate::signal::STOP,
        None,
    )?;
    let (h1, p1, wall) = (host_ticks(), process_cpu_s(), w0.elapsed().as_secs_f64());
    if let Some(why) = t.problem() {
        return Err(format!("tcp transfer failed: {why}"));
    }
    let host_cpu = busy_cores(h0, h1);
    let busy_s = (h1.0 - h0.0) as f64 / clk_tck();
    Ok(Traffic {
        gbps: t.gbit_per_s(),
        host_cpu,
        other_cpu: ((busy_s - (p1 - p0)) / wall.max(1e-9)).max(0.0),
    })
}

/// What the forwarder did while a path contender's traffic ran.
struct PathRun<T> {
    traffic: T,
    /// Forwarder CPU per wall second (0 for veth).
    fwd_cpu: f64,
    /// Coalesced frames the forwarder received.
    lro: u64,
}

/// Runs `traffic(ns_a, ns_b)` over contender `c`'s path: two namespaces joined
/// by the rtap forwarder (with `c`'s backend, offloads and idle mode) or by a
/// veth pair.
fn over_path<T: Send>(
    c: &TcpContender,
    opts: &BenchOpts,
    traffic: impl FnOnce(&crate::netns::Netns, &crate::netns::Netns) -> T + Send,
) -> Result<PathRun<T>, String> {
    match c.path {
        TcpPath::Veth => {
            let (_, t) = crate::demo::with_veth(TCP_NS_PREFIX, traffic)?;
            Ok(PathRun {
                traffic: t,
                fwd_cpu: 0.0,
                lro: 0,
            })
        }
        TcpPath::Rtap { backend, offload } => {
            let mut spec = format!(
                "backend={backend},offload={}",
                if offload { "on" } else { "off" }
            );
            if !opts.port_opts.is_empty() {
                spec.push(',');
                spec.push_str(&opts.port_opts);
            }
            let check = |p: &Port| {
                if p.backend() != backend {
                    return Err(format!(
                        "{}: {backend} asked, {} given: {}",
                        c.name,
                        p.backend(),
                        p.backend_reason().unwrap_or("")
                    ));
                }
                if p.offloads().any_gso() != offload {
                    return Err(format!(
                        "{}: offloads {} asked, the kernel gave {:?}",
                        c.name,
                        if offload { "on" } else { "off" },
                        p.offloads()
                    ));
                }
                Ok(())
            };
            let idle = if c.interrupt {
                crate::fwd::Idle::Interrupt {
                    after: crate::fwd::Idle::AFTER,
                }
            } else {
                opts.idle
            };
            let j = crate::demo::with_forwarder(
                TCP_NS_PREFIX,
                &spec,
                &crate::fwd::FwdOpts {
                    idle,
                    ..crate::fwd::FwdOpts::default()
                },
                check,
                traffic,
            )?;
            Ok(PathRun {
                traffic: j.traffic,
                fwd_cpu: j.fwd.worker_cpu_load(),
                lro: j.fwd.rx_lro_packets(),
            })
        }
    }
}

fn bench_tcp(c: &TcpContender, secs: Duration, opts: &BenchOpts) -> Result<TcpRun, String> {
    let r = over_path(c, opts, |a, b| tcp_traffic(a, b, secs, !opts.no_verify))?;
    let t = r.traffic?;
    Ok(TcpRun {
        gbps: t.gbps,
        fwd_cpu: r.fwd_cpu,
        host_cpu: t.host_cpu,
        other_cpu: t.other_cpu,
        lro: r.lro,
    })
}

/// The lat test: `rounds` rounds of `samples` round trips per contender,
/// interleaved; each cell's percentiles are over all its rounds' samples.
fn run_lat(
    opts: &BenchOpts,
    rounds: usize,
    samples: u64,
    progress: &mut impl FnMut(&str),
) -> Result<Vec<Cell>, String> {
    let who: Vec<&TcpContender> = TCP_CONTENDERS
        .iter()
        .filter(|c| LAT_CONTENDERS.contains(&c.name))
        .filter(|c| chosen(opts, c.name))
        .collect();
    let mut merged: Vec<Option<crate::latency::LatReport>> = vec![None; who.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); who.len()];
    for rep in 0..rounds {
        for (i, c) in who.iter().enumerate() {
            interrupted()?;
            settle();
            let r = over_path(c, opts, |a, b| {
                crate::latency::run(a, b, crate::demo::ADDR_B, samples, &crate::signal::STOP)
            })?;
            let l = r.traffic?;
            progress(&format!(
                " lat {:<16} run {}/{rounds}: p50 {:>7.1} us, p99 {:>7.1} us, p99.9 {:>7.1} us, {} lost, forwarder {:>3.0} % of a core",
                c.name,
                rep + 1,
                l.quantile_us(0.5),
                l.quantile_us(0.99),
                l.quantile_us(0.999),
                l.lost,
                r.fwd_cpu * 100.0
            ));
            cpu[i].push(r.fwd_cpu);
            match &mut merged[i] {
                Some(m) => {
                    m.hist
                        .add(&l.hist)
                        .map_err(|e| format!("merge histograms: {e:?}"))?;
                    m.lost += l.lost;
                }
                None => merged[i] = Some(l),
            }
        }
    }
    Ok(who
        .iter()
        .zip(merged)
        .zip(cpu)
        .filter_map(|((c, m), cpu)| {
            let m = m?;
            let lat = Lat {
                p50_us: m.quantile_us(0.5),
                p99_us: m.quantile_us(0.99),
                p999_us: m.quantile_us(0.999),
                max_us: m.hist.max() as f64 / 1e3,
                mean_us: m.hist.mean() / 1e3,
                samples: m.samples(),
                lost: m.lost,
            };
            Some(Cell {
                test: "lat",
                contender: c.name,
                unit: Unit::Latency,
                rate: lat.p50_us,
                cpu: median(cpu),
                host_cpu: 0.0,
                lat: Some(lat),
            })
        })
        .collect())
}

/// Waits (at most 3 s) until the machine is quiet: less than a fifth of a core
/// busy over 100 ms. Deleting the previous test's namespaces leaves kernel
/// cleanup work running for a while, and it shows up in latency tails.
fn settle() {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let h0 = host_ticks();
        std::thread::sleep(Duration::from_millis(100));
        if busy_cores(h0, host_ticks()) < 0.2 {
            return;
        }
    }
}

/// True if `name` passes the `--contenders` filter.
fn chosen(opts: &BenchOpts, name: &str) -> bool {
    opts.contenders
        .as_ref()
        .is_none_or(|l| l.iter().any(|n| n == name))
}

/// `Err("interrupted")` once SIGINT/SIGTERM arrived.
fn interrupted() -> Result<(), String> {
    if crate::signal::stopped() {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

/// The tcp test: `rounds` rounds of [`TCP_ROUND`] per contender, interleaved;
/// each cell is the median round.
fn run_tcp(
    opts: &BenchOpts,
    rounds: usize,
    progress: &mut impl FnMut(&str),
) -> Result<Vec<Cell>, String> {
    let who: Vec<&TcpContender> = TCP_CONTENDERS
        .iter()
        .filter(|c| chosen(opts, c.name))
        .collect();
    let mut runs: Vec<Vec<TcpRun>> = vec![Vec::new(); who.len()];
    for rep in 0..rounds {
        for (i, c) in who.iter().enumerate() {
            interrupted()?;
            let r = bench_tcp(c, TCP_ROUND, opts)?;
            progress(&format!(
                " tcp {:<16} run {}/{rounds}: {:>6.2} Gbit/s, forwarder {:>3.0} % of a core, machine {:>3.0} % (others {:>2.0} %), {} coalesced frames{}",
                c.name,
                rep + 1,
                r.gbps,
                r.fwd_cpu * 100.0,
                r.host_cpu * 100.0,
                r.other_cpu * 100.0,
                r.lro,
                if r.other_cpu > 0.15 {
                    "  [other load on the machine: this round is disturbed]"
                } else {
                    ""
                }
            ));
            runs[i].push(r);
        }
    }
    Ok(who
        .iter()
        .zip(&runs)
        .map(|(c, r)| Cell {
            test: "tcp",
            contender: c.name,
            unit: Unit::Gbps,
            rate: median(r.iter().map(|x| x.gbps).collect()),
            cpu: median(r.iter().map(|x| x.fwd_cpu).collect()),
            host_cpu: median(r.iter().map(|x| x.host_cpu).collect()),
            lat: None,
        })
        .collect())
}

/// The comparison table. Packet-rate tests: Mpps (wall) and thread CPU ns per
/// packet, with ratios to the read/write backend (pps ratio; CPU ratio = rw ns /
/// contender ns, so > 1 means cheaper than rw). The tcp test: Gbit/s, the
/// forwarder's and the machine's CPU load (100 % = one core), and ratios: to the
/// rw backend with the same offloads, to the same backend without offloads, and
/// to veth.
pub fn table(cells: &[Cell]) -> String {
    let get = |t: &str, c: &str| cells.iter().find(|x| x.test == t && x.contender == c);
    let mut s = String::new();
    if cells.iter().any(|c| c.unit == Unit::Pps) {
        s += &format!(
            "{:<8} {:<14} {:>10} {:>10} {:>12} {:>12}\n",
            "test", "contender", "Mpps", "ns/pkt", "pps vs rw", "cpu vs rw"
        );
    }
    for (t, label) in [("tx", "tx 64B"), ("rx", "rx 64B"), ("fwd", "fwd 64B")] {
        let rw = get(t, "rw");
        for c in CONTENDERS.iter() {
            let Some(x) = get(t, c.name) else { continue };
            let (pr, cr) = match rw {
                Some(rw) if c.name != "rw" => (
                    format!("{:.2}x", x.rate / rw.rate),
                    format!("{:.2}x", rw.cpu / x.cpu),
                ),
                _ => ("-".into(), "-".into()),
            };
            s += &format!(
                "{:<8} {:<14} {:>10.2} {:>10.0} {:>12} {:>12}\n",
                label,
                c.name,
                x.rate / 1e6,
                x.cpu,
                pr,
                cr
            );
        }
    }
    if cells.iter().any(|c| c.unit == Unit::Gbps) {
        if !s.is_empty() {
            s.push('\n');
        }
        s += &format!(
            "{:<8} {:<16} {:>8} {:>8} {:>8} {:>8} {:>10} {:>8}\n",
            "test", "contender", "Gbit/s", "fwd cpu", "host cpu", "vs rw", "vs no-off", "vs veth"
        );
        let ratio = |x: &Cell, other: Option<&Cell>| match other {
            Some(o) if o.rate > 0.0 => format!("{:.2}x", x.rate / o.rate),
            _ => "-".into(),
        };
        let veth = get("tcp", "veth");
        for c in TCP_CONTENDERS.iter() {
            let Some(x) = get("tcp", c.name) else {
                continue;
            };
            let (vs_rw, vs_nooff, vs_veth) = match c.path {
                TcpPath::Veth => ("-".into(), "-".into(), "-".into()),
                TcpPath::Rtap { backend, offload } => {
                    let twin = |b: BackendKind, off: bool| {
                        TCP_CONTENDERS
                            .iter()
                            .find(|t| {
                                t.path
                                    == TcpPath::Rtap {
                                        backend: b,
                                        offload: off,
                                    }
                            })
                            .and_then(|t| get("tcp", t.name))
                    };
                    (
                        if backend == BackendKind::Rw {
                            "-".into()
                        } else {
                            ratio(x, twin(BackendKind::Rw, offload))
                        },
                        if offload {
                            ratio(x, twin(backend, false))
                        } else {
                            "-".into()
                        },
                        ratio(x, veth),
                    )
                }
            };
            let fwd_cpu = match c.path {
                TcpPath::Veth => "-".to_string(),
                TcpPath::Rtap { .. } => format!("{:.0} %", x.cpu * 100.0),
            };
            s += &format!(
                "{:<8} {:<16} {:>8.2} {:>8} {:>8} {:>8} {:>10} {:>8}\n",
                "tcp",
                c.name,
                x.rate,
                fwd_cpu,
                format!("{:.0} %", x.host_cpu * 100.0),
                vs_rw,
                vs_nooff,
                vs_veth
            );
        }
    }
    if cells.iter().any(|c| c.unit == Unit::Latency) {
        if !s.is_empty() {
            s.push('\n');
        }
        s += &format!(
            "{:<8} {:<16} {:>8} {:>8} {:>8} {:>8} {:>6} {:>8} {:>10} {:>10}\n",
            "test",
            "contender",
            "p50 us",
            "p99 us",
            "p99.9 us",
            "max us",
            "lost",
            "fwd cpu",
            "p50 vs rw",
            "p99 vs rw"
        );
        let rw = get("lat", "rw").and_then(|c| c.lat);
        for name in LAT_CONTENDERS {
            let Some(x) = get("lat", name) else { continue };
            let l = x.lat.unwrap_or_default();
            let (r50, r99) = match rw {
                Some(rw) if name != "rw" && rw.p50_us > 0.0 && rw.p99_us > 0.0 => (
                    format!("{:.2}x", l.p50_us / rw.p50_us),
                    format!("{:.2}x", l.p99_us / rw.p99_us),
                ),
                _ => ("-".into(), "-".into()),
            };
            let fwd_cpu = if name == "veth" {
                "-".to_string()
            } else {
                format!("{:.0} %", x.cpu * 100.0)
            };
            s += &format!(
                "{:<8} {:<16} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>6} {:>8} {:>10} {:>10}\n",
                "lat", name, l.p50_us, l.p99_us, l.p999_us, l.max_us, l.lost, fwd_cpu, r50, r99
            );
        }
    }
    s
}

/// The contender a cell is compared with in the chart and `results.json`, and
/// the ratio: packet rates and latency against the read/write backend (`rw`);
/// tcp against `rw` with the same offloads, and the `rw` rows against `veth`.
/// Latency ratios are contender / reference of the median (below 1 = faster).
pub fn reference<'a>(cells: &'a [Cell], x: &Cell) -> Option<(&'a Cell, f64)> {
    let find = |c: &str| {
        cells
            .iter()
            .find(|y| y.test == x.test && y.contender == c && y.rate > 0.0)
    };
    let other = match x.unit {
        Unit::Pps | Unit::Latency if x.contender != "rw" => find("rw"),
        Unit::Gbps => match TCP_CONTENDERS.iter().find(|t| t.name == x.contender)?.path {
            TcpPath::Veth => None,
            TcpPath::Rtap {
                backend: BackendKind::Rw,
                ..
            } => find("veth"),
            TcpPath::Rtap { offload, .. } => find(if offload { "rw" } else { "rw-nooffload" }),
        },
        _ => None,
    }?;
    Some((other, x.rate / other.rate))
}

/// The cells as a JSON array: packet-rate cells with `pps` and `cpu_ns_per_pkt`,
/// tcp cells with `gbit_per_s`, `fwd_cpu_load` and `host_cpu_load` (1.0 = one
/// core), lat cells with `p50_us`, `p99_us`, `p999_us`, `max_us`, `mean_us`,
/// `samples`, `lost` and `fwd_cpu_load`; each with `vs` (the contender it is
/// compared with, or null) and `ratio` (see [`reference`]).
pub fn json(cells: &[Cell]) -> crate::json::Json {
    crate::json::Json::Arr(
        cells
            .iter()
            .map(|c| {
                let (vs, ratio) = match reference(cells, c) {
                    Some((o, r)) => (Some(o.contender), Some(r)),
                    None => (None, None),
                };
                let j = crate::json::Json::obj()
                    .set("test", c.test)
                    .set("contender", c.contender);
                let j = match c.unit {
                    Unit::Pps => j
                        .set("pps", c.rate.max(0.0).round() as u64)
                        .set("cpu_ns_per_pkt", c.cpu),
                    Unit::Gbps => j
                        .set("gbit_per_s", c.rate)
                        .set("fwd_cpu_load", c.cpu)
                        .set("host_cpu_load", c.host_cpu),
                    Unit::Latency => {
                        let l = c.lat.unwrap_or_default();
                        j.set("p50_us", l.p50_us)
                            .set("p99_us", l.p99_us)
                            .set("p999_us", l.p999_us)
                            .set("max_us", l.max_us)
                            .set("mean_us", l.mean_us)
                            .set("samples", l.samples)
                            .set("lost", l.lost)
                            .set("fwd_cpu_load", c.cpu)
                    }
                };
                j.set("vs", vs).set("ratio", ratio)
            })
            .collect(),
    )
}

/// The machine the benchmark ran on, for `results.json` and the chart.
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub mem_gib: f64,
}

impl Machine {
    /// Reads `/proc/cpuinfo`, `/proc/meminfo` and `uname`.
    pub fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, m)| m.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let mem_kib: f64 = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into()),
            mem_gib: mem_kib / (1024.0 * 1024.0),
        }
    }

    /// One line: `2 CPUs (Intel Xeon ...), 24 GiB, Linux 6.18.44`.
    pub fn describe(&self) -> String {
        format!(
            "{} CPUs ({}), {:.0} GiB, Linux {}",
            self.cpus, self.cpu_model, self.mem_gib, self.kernel
        )
    }
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Writes `results.json` (machine, options and every cell with its ratio) and
/// `bench.svg` (the chart) into `dir`, creating it; returns both paths.
pub fn write_out(
    dir: &std::path::Path,
    cells: &[Cell],
    quick: bool,
) -> Result<(std::path::PathBuf, std::path::PathBuf), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let m = Machine::probe();
    let results = crate::json::Json::obj()
        .set("tool", "rtap bench")
        .set("version", env!("CARGO_PKG_VERSION"))
        .set("unix_time", unix_now())
        .set("quick", quick)
        .set(
            "machine",
            crate::json::Json::obj()
                .set("cpus", m.cpus)
                .set("cpu_model", m.cpu_model.as_str())
                .set("kernel", m.kernel.as_str())
                .set("mem_gib", m.mem_gib),
        )
        .set("cells", json(cells));
    let jp = dir.join("results.json");
    std::fs::write(&jp, format!("{results}\n"))
        .map_err(|e| format!("write {}: {e}", jp.display()))?;
    let sp = dir.join("bench.svg");
    let subtitle = format!(
        "{}{}\nratios: against the read/write backend (rw); tcp: rw with the same offloads, rw rows against veth",
        m.describe(),
        if quick { ", --quick" } else { "" }
    );
    std::fs::write(&sp, crate::chart::svg(cells, &subtitle))
        .map_err(|e| format!("write {}: {e}", sp.display()))?;
    Ok((jp, sp))
}
