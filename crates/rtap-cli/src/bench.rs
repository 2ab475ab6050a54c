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
//! Contenders: see [`CONTENDERS`]. Each test
//! runs in a private network namespace on its own thread.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use rtap::{BackendKind, Packet, Pool, PoolConfig, RingConfig, RxMode, TapConfig, TapPort};

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

/// Options.
#[derive(Clone, Debug)]
pub struct BenchOpts {
    /// Fewer frames and one repetition: finishes in seconds.
    pub quick: bool,
    /// Run only this test (`tx`, `rx` or `fwd`).
    pub only: Option<&'static str>,
    /// Run only the contenders whose name is in this list (None: all).
    pub contenders: Option<Vec<String>>,
}

/// One measured cell.
#[derive(Clone, Debug)]
pub struct Cell {
    pub test: &'static str,
    pub contender: &'static str,
    pub pps: f64,
    /// CPU time of the measuring thread per packet (user + system), in ns. Robust to
    /// other load on the machine; excludes work done on other threads (SQPOLL,
    /// softirq on the other core).
    pub cpu_ns: f64,
}

/// One run: packets per second of wall time, and thread CPU ns per packet.
#[derive(Clone, Copy, Debug)]
struct Run {
    pps: f64,
    cpu_ns: f64,
}

fn thread_cpu_s() -> f64 {
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

fn open(c: &Contender, name: &str) -> Result<TapPort, String> {
    let sqpoll = c.sqpoll.then_some(rtap::SqPoll {
        idle_ms: 200,
        cpu: None,
    });
    let ring = RingConfig {
        rx_mode: c.rx_mode,
        rx_posted: 256,
        sqpoll,
        ..RingConfig::default()
    };
    let mut p = TapPort::open(TapConfig::new(name).backend(c.backend).ring(ring))
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

fn set_txqueuelen(port: &TapPort, len: u32) -> Result<(), String> {
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

fn fill(port: &TapPort, n: u32) -> Result<(), String> {
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
        let pool = Pool::new(PoolConfig {
            count: 8192,
            ..PoolConfig::default()
        })
        .map_err(|e| e.to_string())?;
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
        let pool = Pool::new(PoolConfig {
            count: 8192,
            ..PoolConfig::default()
        })
        .map_err(|e| e.to_string())?;
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
        let pool = Pool::new(PoolConfig {
            count: 8192,
            ..PoolConfig::default()
        })
        .map_err(|e| e.to_string())?;
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
            .filter(|c| {
                opts.contenders
                    .as_ref()
                    .map_or(true, |l| l.iter().any(|n| n == c.name))
            })
            .collect();
        let mut runs: Vec<Vec<Run>> = vec![Vec::new(); who.len()];
        for rep in 0..reps {
            for (i, c) in who.iter().enumerate() {
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
                pps: m.pps,
                cpu_ns: m.cpu_ns,
            });
        }
    }
    Ok(cells)
}

/// The comparison table: Mpps (wall) and thread CPU ns per packet, with ratios to
/// the read/write backend (pps ratio; CPU ratio = rw ns / contender ns, so > 1
/// means cheaper than rw).
pub fn table(cells: &[Cell]) -> String {
    let get = |t: &str, c: &str| cells.iter().find(|x| x.test == t && x.contender == c);
    let mut s = format!(
        "{:<8} {:<14} {:>10} {:>10} {:>12} {:>12}\n",
        "test", "contender", "Mpps", "ns/pkt", "pps vs rw", "cpu vs rw"
    );
    for (t, label) in [("tx", "tx 64B"), ("rx", "rx 64B"), ("fwd", "fwd 64B")] {
        let rw = get(t, "rw");
        for c in CONTENDERS.iter() {
            let Some(x) = get(t, c.name) else { continue };
            let (pr, cr) = match rw {
                Some(rw) if c.name != "rw" => (
                    format!("{:.2}x", x.pps / rw.pps),
                    format!("{:.2}x", rw.cpu_ns / x.cpu_ns),
                ),
                _ => ("-".into(), "-".into()),
            };
            s += &format!(
                "{:<8} {:<14} {:>10.2} {:>10.0} {:>12} {:>12}\n",
                label,
                c.name,
                x.pps / 1e6,
                x.cpu_ns,
                pr,
                cr
            );
        }
    }
    s
}

/// The cells as a JSON array.
pub fn json(cells: &[Cell]) -> String {
    let items: Vec<String> = cells
        .iter()
        .map(|c| {
            format!(
                "{{\"test\":\"{}\",\"contender\":\"{}\",\"pps\":{:.0},\"cpu_ns_per_pkt\":{:.1}}}",
                c.test, c.contender, c.pps, c.cpu_ns
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}
