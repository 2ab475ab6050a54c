//! The `sink` test: one TCP flow over a veth pair between two namespaces,
//! received three ways in the same run: rtap's zero-copy receive API
//! ([`rtap::zcrx`], in the best mode the kernel offers: device-less zcrx on
//! Linux 7.1+, else multishot recv into provided buffers; a veth has no NIC
//! queue, so true zero copy is not among them), a blocking `recv()` loop with a
//! 64 KiB buffer, and epoll + non-blocking `recv()`. Each receiver only counts
//! the bytes (reading the first byte of each piece), so what differs is how the
//! bytes reach the application. Reported: Gbit/s, the receiving thread's CPU
//! seconds per GB and the whole machine's.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rtap::zcrx::{Event, Queue, QueueConfig};

use super::results::{Cell, Unit};
use super::{chosen, interrupted, median, settle, BenchOpts};
use crate::common::cpu::{busy_cores, host_ticks, thread_cpu_s};
use crate::common::netns::{ip, Netns};
use crate::traffic::bulk::Pattern;

/// The contenders, in table order; `recv` is the reference.
pub const SINK_CONTENDERS: [&str; 3] = ["rtap-sink", "recv", "epoll"];

const ADDR_RX: Ipv4Addr = Ipv4Addr::new(10, 81, 0, 2);
const PORT: u16 = 5201;

/// One measured transfer.
struct Run {
    gbps: f64,
    rx_cpu_per_gb: f64,
    host_cpu_per_gb: f64,
}

/// Runs every chosen contender `rounds` times, interleaved; medians.
pub(super) fn run(
    opts: &BenchOpts,
    rounds: usize,
    progress: &mut impl FnMut(&str),
) -> Result<Vec<Cell>> {
    let names: Vec<&'static str> = SINK_CONTENDERS
        .iter()
        .copied()
        .filter(|n| chosen(opts, n))
        .collect();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let pid = std::process::id();
    let tx = Netns::create(&format!("rtapb-sinktx-{pid}"))?;
    let rx = Netns::create(&format!("rtapb-sinkrx-{pid}"))?;
    let (a, b) = (format!("rbsk{pid}a"), format!("rbsk{pid}b"));
    let (a, b) = (&a[..a.len().min(15)], &b[..b.len().min(15)]);
    ip(&["link", "add", a, "type", "veth", "peer", "name", b])?;
    ip(&["link", "set", a, "netns", tx.name()])?;
    ip(&["link", "set", b, "netns", rx.name()])?;
    tx.ip(&["addr", "add", "10.81.0.1/24", "dev", a])?;
    rx.ip(&["addr", "add", "10.81.0.2/24", "dev", b])?;
    for (ns, d) in [(&tx, a), (&rx, b)] {
        ns.ip(&["link", "set", d, "up"])?;
        ns.ip(&["link", "set", "lo", "up"])?;
    }
    std::thread::sleep(Duration::from_millis(300));
    let secs = if opts.quick {
        Duration::from_secs(2)
    } else {
        super::contenders::TCP_ROUND
    };
    let pattern = Pattern::new();
    let mut runs: Vec<Vec<Run>> = names.iter().map(|_| Vec::new()).collect();
    let mut mode = String::new();
    for round in 0..rounds {
        for (i, name) in names.iter().enumerate() {
            interrupted()?;
            settle();
            let r = transfer(&tx, &rx, name, secs, &pattern, &mut mode)
                .with_context(|| format!("sink {name}"))?;
            progress(&format!(
                "sink     {name:<14} round {}/{rounds}: {:.2} Gbit/s, receiver {:.3} CPU-s/GB, machine {:.3} CPU-s/GB{}",
                round + 1,
                r.gbps,
                r.rx_cpu_per_gb,
                r.host_cpu_per_gb,
                if *name == "rtap-sink" { format!(" ({mode})") } else { String::new() }
            ));
            runs[i].push(r);
        }
    }
    Ok(names
        .iter()
        .zip(runs)
        .map(|(name, rs)| Cell {
            test: "sink",
            contender: name,
            unit: Unit::Stream,
            rate: median(rs.iter().map(|r| r.gbps).collect()),
            cpu: median(rs.iter().map(|r| r.rx_cpu_per_gb).collect()),
            sq_cpu: 0.0,
            host_cpu: median(rs.iter().map(|r| r.host_cpu_per_gb).collect()),
            lat: None,
        })
        .collect())
}

/// One flow of `secs` from `tx` to `rx`, received by `name`.
fn transfer(
    tx: &Netns,
    rx: &Netns,
    name: &str,
    secs: Duration,
    pattern: &Pattern,
    mode: &mut String,
) -> Result<Run> {
    let l = rx.run_in(|| TcpListener::bind((ADDR_RX, PORT)))??;
    let h0 = host_ticks();
    let (sent, got) = std::thread::scope(|s| {
        let sender = s.spawn(|| -> Result<u64> {
            tx.enter()?;
            let mut c = TcpStream::connect_timeout(
                &SocketAddr::from((ADDR_RX, PORT)),
                Duration::from_secs(5),
            )
            .context("connect")?;
            let end = Instant::now() + secs;
            let mut at = 0u64;
            while Instant::now() < end {
                at += std::io::Write::write(&mut c, pattern.window(at, 256 << 10))? as u64;
            }
            c.shutdown(std::net::Shutdown::Write)?;
            Ok(at)
        });
        let (c, _) = l.accept().context("accept")?;
        let got = match name {
            "rtap-sink" => rtap_sink(c, mode),
            "recv" => recv_loop(c),
            "epoll" => epoll_loop(c),
            other => Err(anyhow!("unknown sink contender {other}")),
        };
        let sent = sender
            .join()
            .map_err(|_| anyhow!("sender panicked"))
            .and_then(|r| r);
        Ok::<_, anyhow::Error>((sent, got))
    })?;
    let host = busy_cores(h0, host_ticks());
    let (bytes, wall, cpu_s) = got?;
    let sent = sent?;
    if bytes != sent {
        bail!("sent {sent} bytes, received {bytes}");
    }
    let gb = bytes as f64 / 1e9;
    Ok(Run {
        gbps: bytes as f64 * 8.0 / wall / 1e9,
        rx_cpu_per_gb: cpu_s / gb,
        host_cpu_per_gb: host * wall / gb,
    })
}

/// (bytes, wall seconds from the first byte to the end, receiving thread CPU s)
type Got = Result<(u64, f64, f64)>;

fn recv_loop(mut c: TcpStream) -> Got {
    let mut buf = vec![0u8; 64 << 10];
    let (mut n, mut t0, mut c0, mut sink) = (0u64, None, 0.0, 0u8);
    loop {
        let k = c.read(&mut buf)?;
        if k == 0 {
            break;
        }
        if t0.is_none() {
            t0 = Some(Instant::now());
            c0 = thread_cpu_s();
        }
        sink ^= buf[0];
        n += k as u64;
    }
    std::hint::black_box(sink);
    let t0 = t0.ok_or_else(|| anyhow!("no data"))?;
    Ok((n, t0.elapsed().as_secs_f64(), thread_cpu_s() - c0))
}

fn epoll_loop(mut c: TcpStream) -> Got {
    c.set_nonblocking(true)?;
    let ep = crate::sys::Epoll::new()?;
    ep.add_readable(c.as_fd())?;
    let mut buf = vec![0u8; 64 << 10];
    let (mut n, mut t0, mut c0, mut sink) = (0u64, None, 0.0, 0u8);
    'outer: loop {
        match ep.wait(5000) {
            Ok(0) => bail!("no data for 5 s"),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
        loop {
            match c.read(&mut buf) {
                Ok(0) => break 'outer,
                Ok(k) => {
                    if t0.is_none() {
                        t0 = Some(Instant::now());
                        c0 = thread_cpu_s();
                    }
                    sink ^= buf[0];
                    n += k as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
    std::hint::black_box(sink);
    let t0 = t0.ok_or_else(|| anyhow!("no data"))?;
    Ok((n, t0.elapsed().as_secs_f64(), thread_cpu_s() - c0))
}

fn rtap_sink(c: TcpStream, mode: &mut String) -> Got {
    let q = Queue::open(&QueueConfig::nodev()).context("open the queue")?;
    *mode = q.mode().to_string();
    let mut r = q.receiver()?;
    let id = r.add(c)?;
    let mut events = Vec::with_capacity(1024);
    let (mut n, mut t0, mut c0, mut sink) = (0u64, None, 0.0, 0u8);
    'outer: loop {
        r.poll(&mut events, Some(Duration::from_secs(5)))?;
        if events.is_empty() {
            bail!("no data for 5 s");
        }
        for ev in events.drain(..) {
            match ev {
                Event::Data { buf, .. } => {
                    if t0.is_none() {
                        t0 = Some(Instant::now());
                        c0 = thread_cpu_s();
                    }
                    sink ^= buf[0];
                    n += buf.len() as u64;
                }
                Event::Closed { conn, error } if conn == id => {
                    if let Some(e) = error {
                        return Err(anyhow!("connection failed: {e}"));
                    }
                    break 'outer;
                }
                _ => {}
            }
        }
    }
    std::hint::black_box(sink);
    let t0 = t0.ok_or_else(|| anyhow!("no data"))?;
    Ok((n, t0.elapsed().as_secs_f64(), thread_cpu_s() - c0))
}
