//! The packet-rate tests (tx, rx drain, io forward) with 64-byte frames on one
//! queue, each in a private network namespace on its own thread.

use anyhow::{anyhow, Context, Result};
use std::time::{Duration, Instant};

use rawsock::RawSocket;
use rtap::{Packet, Pool, PoolConfig, Port, RingConfig, RxMode, TapConfig};

use super::clock::{Clock, Run};
use super::contenders::{Contender, CONTENDERS, TX_BASELINES};
use super::results::{Cell, Unit};
use super::{chosen, interrupted, median, BenchOpts};

pub(super) const BURST: usize = 32;

pub(super) const FRAME_LEN: usize = 64;

/// A 64-byte frame addressed to another host, so the kernel drops it right after
/// the tap hands it up (the same cost for every contender).
pub(super) fn frame(seq: u32) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    f
}

pub(super) fn in_netns<T: Send>(f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            if let Err(e) = crate::sys::unshare_net() {
                return Err(anyhow!("unshare(CLONE_NEWNET): {e} (run as root)"));
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
        .map_err(|_| anyhow!("benchmark thread panicked"))?
    })
}

fn open(c: &Contender, name: &str) -> Result<Port> {
    let sqpoll = c.sqpoll.then_some(rtap::SqPoll::new(200));
    let ring = RingConfig::default()
        .rx_mode(c.rx_mode)
        .rx_posted(256)
        .sqpoll(sqpoll);
    let p = Port::open(TapConfig::new(name).backend(c.backend).ring(ring))?;
    p.start()?;
    if c.sqpoll {
        // The ring options must really be in effect, or the row would lie.
        let f = p.tx_queue(0)?.ring_features().cloned();
        if !f.as_ref().is_some_and(|f| f.sqpoll) {
            return Err(anyhow!(
                "{}: SQPOLL not in effect: {:?}",
                c.name,
                f.map(|f| f.fallbacks)
            ));
        }
    }
    if p.engine() != c.backend.into() {
        return Err(anyhow!(
            "{} asked, {} given: {}",
            c.backend,
            p.engine(),
            p.engine_reason().unwrap_or("")
        ));
    }
    Ok(p)
}

fn set_txqueuelen(port: &Port, len: u32) -> Result<()> {
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
        .context("run ip (install iproute2)")?;
    if !out.status.success() {
        return Err(anyhow!(
            "ip link set txqueuelen: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// Queues up to `n` of the test's frames in the tap for its queue to read,
/// and says how many: fewer where the kernel refuses a queue that long
/// (Linux 6.1 refuses 32768 and more with ERANGE), each run then reading
/// what its queue holds.
fn fill(port: &Port, n: u32) -> Result<u32> {
    let mut len = n + 1024;
    while let Err(e) = set_txqueuelen(port, len) {
        if len <= 4096 {
            return Err(e);
        }
        len /= 2;
    }
    let n = n.min(len - 1024);
    // Straight to the tap's driver (no qdisc): the fill is as fast as it gets.
    let inj = RawSocket::injector(port.ifindex())
        .and_then(|s| s.set_qdisc_bypass(true).map(|()| s))
        .context("AF_PACKET socket")?;
    for i in 0..n {
        inj.send(&frame(i)).context("AF_PACKET send")?;
    }
    let st = port.stats()?;
    if st.imissed != 0 {
        return Err(anyhow!("filling dropped {} frames", st.imissed));
    }
    Ok(n)
}

fn is_ours(p: &Packet) -> bool {
    p.len() == FRAME_LEN && p.data()[12..14] == 0x88b5u16.to_be_bytes()
}

fn bench_tx(c: &Contender, secs: f64) -> Result<Run> {
    in_netns(|| {
        let port = open(c, "btx%d")?;
        let pool = Pool::new(PoolConfig::default().count(8192))?;
        let mut txq = port.tx_queue(0)?;
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
                txq.tx_burst(&mut v)?;
            }
        }
        txq.flush(Duration::from_secs(1));
        Ok(clock.run(txq.stats().packets - base))
    })
}

/// The tx baseline: a tap and a ring of its own, no rtap (see
/// [`TX_BASELINES`]).
fn bench_tx_min(vnet_hdr: bool, secs: f64) -> Result<Run> {
    in_netns(|| {
        let mut w = crate::sys::UringWriter::open("bmin%d", 256, vnet_hdr, &frame(0))
            .context("open a tap for the io_uring baseline")?;
        crate::common::netns::ip(&["link", "set", "dev", w.name(), "up"])?;
        let clock = Clock::start();
        let deadline = clock.wall + Duration::from_secs_f64(secs);
        let sent = w.run(BURST, deadline).context("io_uring baseline writes")?;
        if sent == 0 {
            return Err(anyhow!("the io_uring baseline wrote no frame"));
        }
        Ok(clock.run(sent))
    })
}

fn bench_rx(c: &Contender, n: u32) -> Result<Run> {
    in_netns(|| {
        let port = open(c, "brx%d")?;
        let pool = Pool::new(PoolConfig::default().count(8192))?;
        let n = fill(&port, n)?;
        let mut rxq = port.rx_queue(0, &pool)?;
        let mut v = Vec::with_capacity(BURST);
        let mut got = 0u32;
        let clock = Clock::start();
        let start = clock.wall;
        let deadline = start + Duration::from_secs(20);
        while got < n && Instant::now() < deadline {
            rxq.rx_burst(&mut v, BURST)?;
            got += v.iter().filter(|p| is_ours(p)).count() as u32;
            v.clear();
        }
        let run = clock.run(n as u64);
        if got < n {
            return Err(anyhow!("rx drained only {got} of {n} frames"));
        }
        Ok(run)
    })
}

fn bench_fwd(c: &Contender, n: u32) -> Result<Run> {
    in_netns(|| {
        let a = open(c, "bfa%d")?;
        let b = open(c, "bfb%d")?;
        let pool = Pool::new(PoolConfig::default().count(8192))?;
        let n = fill(&a, n)?;
        let mut rxq = a.rx_queue(0, &pool)?;
        let mut txq = b.tx_queue(0)?;
        let mut v = Vec::with_capacity(2 * BURST);
        let clock = Clock::start();
        let start = clock.wall;
        let deadline = start + Duration::from_secs(20);
        while txq.stats().packets < n as u64 && Instant::now() < deadline {
            if v.len() < BURST {
                rxq.rx_burst(&mut v, BURST)?;
            }
            txq.tx_burst(&mut v)?;
        }
        let sent = txq.stats().packets;
        let run = clock.run(sent);
        // The kernel's own frames may have been forwarded too: at least n must be through.
        if sent < n as u64 {
            return Err(anyhow!("forwarded only {sent} of {n} frames"));
        }
        Ok(run)
    })
}

fn median_run(runs: &[Run]) -> Run {
    Run {
        pps: median(runs.iter().map(|r| r.pps).collect()),
        cpu_ns: median(runs.iter().map(|r| r.cpu_ns).collect()),
        sq_ns: median(runs.iter().map(|r| r.sq_ns).collect()),
    }
}

/// Runs packet-rate `test` (`tx`, `rx` or `fwd`) for every chosen contender,
/// repetitions interleaved; one cell per contender, the median of its runs.
pub(super) fn run(
    test: &'static str,
    opts: &BenchOpts,
    progress: &mut impl FnMut(&str),
) -> Result<Vec<Cell>> {
    let reps = if opts.quick { 1 } else { 5 };
    let n = if opts.quick { 50_000 } else { 200_000 };
    let secs = if opts.quick { 0.5 } else { 1.0 };
    // The rx mode does not change tx.
    let who: Vec<&Contender> = CONTENDERS
        .iter()
        .filter(|c| !(test == "tx" && c.rx_mode == RxMode::Posted))
        .filter(|c| chosen(opts, c.name))
        .collect();
    // The tx test's baselines run beside rtap's contenders, interleaved too.
    let base: Vec<(&'static str, bool)> = TX_BASELINES
        .iter()
        .copied()
        .filter(|&(name, _)| test == "tx" && chosen(opts, name))
        .collect();
    let names: Vec<&'static str> = who
        .iter()
        .map(|c| c.name)
        .chain(base.iter().map(|b| b.0))
        .collect();
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); names.len()];
    for rep in 0..reps {
        for (i, name) in names.iter().enumerate() {
            interrupted()?;
            let r = match (who.get(i), test) {
                (Some(c), "tx") => bench_tx(c, secs)?,
                (Some(c), "rx") => bench_rx(c, n)?,
                (Some(c), _) => bench_fwd(c, n)?,
                (None, _) => bench_tx_min(base[i - who.len()].1, secs)?,
            };
            progress(&format!(
                "{test:>4} {:<14} run {}/{reps}: {:>6.2} Mpps {:>6.0} ns/pkt",
                name,
                rep + 1,
                r.pps / 1e6,
                r.cpu_ns
            ));
            runs[i].push(r);
        }
    }
    Ok(names
        .iter()
        .zip(&runs)
        .map(|(name, r)| {
            let m = median_run(r);
            Cell {
                test,
                contender: name,
                unit: Unit::Pps,
                rate: m.pps,
                cpu: m.cpu_ns,
                sq_cpu: m.sq_ns,
                host_cpu: 0.0,
                lat: None,
            }
        })
        .collect())
}
