//! `rtap sink`: a TCP receiver on rtap's zero-copy receive (io_uring zcrx, or its
//! copy fallback). Accepts connections, hands them round-robin to `--threads`
//! receivers that share one interface queue, checks every byte against the
//! pattern `rtap send` (and the demo) writes, and prints Gbit/s and CPU per GB.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use rtap::zcrx::{Event, Queue, QueueConfig, ReceiverStats};
use serde_json::{json, Value};

use crate::common::{cpu, netns, signal};
use crate::traffic::bulk::Pattern;

pub const HELP: &str = "\
Examples:
  rtap sink --listen 0.0.0.0:5201 --zcrx nodev --conns 1       # device-less zcrx (Linux 7.1+), else copy
  rtap sink --listen [::]:5201 --zcrx eth1:8 --threads 2        # a NIC queue shared by two threads
  rtap sink --listen 10.0.0.1:5201 --copy --json                # multishot recv into provided buffers
  rtap send --connect 10.0.0.1:5201 --bytes 1GiB                # the sender to go with it

Device mode needs a NIC whose driver supports zcrx, header/data split and a flow
rule steering the flows to the queue: see the README. Without those, or on a
kernel without zcrx, the sink copies and says why (--strict makes that an error).";

#[derive(Args, Debug)]
pub struct SinkArgs {
    /// Address to listen on (ADDR:PORT)
    #[arg(long)]
    listen: SocketAddr,
    /// zcrx mode: IFACE:QUEUE (a NIC's rx queue) or `nodev` (device-less, Linux 7.1+)
    #[arg(long, conflicts_with = "copy")]
    zcrx: Option<String>,
    /// No zcrx: multishot recv into provided buffers
    #[arg(long)]
    copy: bool,
    /// Receiver threads sharing the queue
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Stop after this many connections have ended (default: run until Ctrl-C)
    #[arg(long)]
    conns: Option<u64>,
    /// Stop after this many seconds
    #[arg(long)]
    duration: Option<f64>,
    /// zcrx area size (e.g. 64MiB)
    #[arg(long, default_value = "32MiB", value_parser = parse_size)]
    area: u64,
    /// Do not check the payload (only count it)
    #[arg(long)]
    no_verify: bool,
    /// Fail instead of copying when zcrx cannot be set up
    #[arg(long)]
    strict: bool,
    /// Run inside this network namespace (`ip netns` name)
    #[arg(long)]
    netns: Option<String>,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
}

fn parse_size(s: &str) -> Result<u64> {
    crate::traffic::bulk::parse_size(s)
}

/// The queue `--zcrx`/`--copy` ask for.
fn queue_config(a: &SinkArgs) -> Result<QueueConfig> {
    let cfg = match (&a.zcrx, a.copy) {
        (_, true) => QueueConfig::copy(),
        (None, false) => QueueConfig::nodev(),
        (Some(z), false) if z == "nodev" => QueueConfig::nodev(),
        (Some(z), false) => {
            let (iface, q) = z
                .rsplit_once(':')
                .ok_or_else(|| anyhow!("--zcrx {z:?}: expected IFACE:QUEUE or nodev"))?;
            let q: u32 = q
                .parse()
                .map_err(|_| anyhow!("--zcrx {z:?}: queue {q:?} is not a number"))?;
            QueueConfig::device(iface, q)
        }
    };
    let area = usize::try_from(a.area).context("--area")?;
    Ok(cfg.area_size(area).fallback(!a.strict))
}

/// One connection's progress.
struct Conn {
    at: u64,
    mismatch_at: Option<u64>,
}

/// What one receiver thread did.
#[derive(Default)]
struct Worker {
    stats: ReceiverStats,
    conns: u64,
    bad_conns: u64,
    errors: Vec<String>,
    cpu_s: f64,
}

pub fn cmd(a: SinkArgs) -> Result<()> {
    if a.threads == 0 || a.threads > 64 {
        bail!("--threads {}: must be 1..=64", a.threads);
    }
    if let Some(ns) = &a.netns {
        netns::enter_named(ns)?;
    }
    let cfg = queue_config(&a)?;
    let queue = Queue::open(&cfg).context("open the receive queue")?;
    if let Some(why) = queue.fallback_reason() {
        eprintln!("rtap sink: copying: {why}");
    }
    if a.threads > 1 && !queue.shareable() {
        bail!("--threads {}: this kernel cannot share a zcrx queue between threads (Linux >= 6.19); use --threads 1", a.threads);
    }
    let l = TcpListener::bind(a.listen).with_context(|| format!("listen on {}", a.listen))?;
    l.set_nonblocking(true).context("listener")?;
    // Also with --json (which goes to stdout): a script waits for this line
    // before it connects.
    eprintln!(
        "rtap sink: listening on {} ({}, {} thread(s))",
        l.local_addr()?,
        queue.mode(),
        a.threads
    );
    let pattern = Pattern::new();
    let ended = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let first_byte: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    let start = Instant::now();
    let cpu0 = cpu::process_cpu_s();
    let stop_at = a.duration.map(|d| start + Duration::from_secs_f64(d));
    let done = |ended: &AtomicU64| {
        signal::stopped()
            || stop_at.is_some_and(|t| Instant::now() >= t)
            || a.conns.is_some_and(|n| ended.load(Ordering::Acquire) >= n)
    };
    let workers: Vec<Worker> = std::thread::scope(|s| -> Result<Vec<Worker>> {
        let mut txs = Vec::new();
        let mut handles = Vec::new();
        for i in 0..a.threads {
            let (tx, rx) = mpsc::channel::<TcpStream>();
            txs.push(tx);
            let (queue, pattern, ended, bytes, first_byte, done) =
                (queue.clone(), &pattern, &ended, &bytes, &first_byte, &done);
            let verify = !a.no_verify;
            handles.push(
                std::thread::Builder::new()
                    .name(format!("sink-{i}"))
                    .spawn_scoped(s, move || {
                        receive(&queue, rx, pattern, verify, ended, bytes, first_byte, done)
                    })?,
            );
        }
        let mut next = 0;
        while !done(&ended) {
            match l.accept() {
                Ok((c, _)) => {
                    c.set_nonblocking(false).context("accepted socket")?;
                    let _ = txs[next % txs.len()].send(c);
                    next += 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                Err(e) => return Err(anyhow::Error::from(e).context("accept")),
            }
        }
        drop(txs);
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("a sink thread panicked"))?)
            .collect()
    })?;
    let wall = first_byte
        .lock()
        .unwrap()
        .map_or(Duration::ZERO, |t| t.elapsed());
    let cpu_s = cpu::process_cpu_s() - cpu0;
    let total: u64 = workers.iter().map(|w| w.stats.bytes).sum();
    let bad: u64 = workers.iter().map(|w| w.bad_conns).sum();
    let errors: Vec<&String> = workers.iter().flat_map(|w| &w.errors).collect();
    let gbit = if wall.as_secs_f64() > 0.0 {
        total as f64 * 8.0 / wall.as_secs_f64() / 1e9
    } else {
        0.0
    };
    let cpu_per_gb = if total > 0 {
        cpu_s / (total as f64 / 1e9)
    } else {
        0.0
    };
    let sum = |f: fn(&ReceiverStats) -> u64| workers.iter().map(|w| f(&w.stats)).sum::<u64>();
    let out = json!({
        "mode": queue.mode().to_string(),
        "fallback_reason": queue.fallback_reason(),
        "threads": a.threads,
        "conns": workers.iter().map(|w| w.conns).sum::<u64>(),
        "bytes": total,
        "seconds": wall.as_secs_f64(),
        "gbit_per_s": gbit,
        "cpu_s": cpu_s,
        "cpu_s_per_gb": cpu_per_gb,
        "verified": !a.no_verify && bad == 0 && errors.is_empty(),
        "bad_conns": bad,
        "errors": errors,
        "buffers": sum(|s| s.buffers),
        "refills": sum(|s| s.refills),
        "rearms": sum(|s| s.rearms),
        "flushes": sum(|s| s.flushes),
        "copied_bytes": sum(|s| s.copied_bytes),
        "per_thread": workers.iter().map(|w| json!({"bytes": w.stats.bytes, "conns": w.conns, "cpu_s": w.cpu_s})).collect::<Vec<Value>>(),
        "kernel_stats": queue.kernel_stats().map(|k| json!({"copy_count": k.copy_count, "copy_bytes": k.copy_bytes})),
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{} bytes in {} connection(s), {:.2} s: {:.2} Gbit/s, {:.3} CPU-s/GB ({}){}",
            total,
            out["conns"],
            wall.as_secs_f64(),
            gbit,
            cpu_per_gb,
            queue.mode(),
            if a.no_verify {
                String::new()
            } else if bad == 0 {
                ", every byte verified".into()
            } else {
                format!(", {bad} connection(s) CORRUPTED")
            }
        );
        for e in &errors {
            println!("error: {e}");
        }
    }
    if bad > 0 || !errors.is_empty() {
        bail!("the sink saw corrupted data or failed connections");
    }
    Ok(())
}

/// One receiver thread: takes sockets from `rx`, receives until told to stop
/// and every connection it has is closed.
#[allow(clippy::too_many_arguments)]
fn receive(
    queue: &Queue,
    rx: mpsc::Receiver<TcpStream>,
    pattern: &Pattern,
    verify: bool,
    ended: &AtomicU64,
    bytes: &AtomicU64,
    first_byte: &std::sync::Mutex<Option<Instant>>,
    done: &(dyn Fn(&AtomicU64) -> bool + Sync),
) -> Result<Worker> {
    let t0 = cpu::thread_cpu_s();
    let mut r = queue.receiver().context("receiver")?;
    let mut w = Worker::default();
    let mut conns: std::collections::HashMap<u64, Conn> = Default::default();
    let mut events = Vec::with_capacity(1024);
    let mut open = true;
    loop {
        loop {
            match rx.try_recv() {
                Ok(sock) => {
                    let id = r.add(sock).context("add connection")?;
                    conns.insert(
                        id.as_u64(),
                        Conn {
                            at: 0,
                            mismatch_at: None,
                        },
                    );
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if (!open || done(ended)) && conns.is_empty() {
            break;
        }
        if done(ended) && signal::stopped() {
            break;
        }
        r.poll(&mut events, Some(Duration::from_millis(10)))?;
        for ev in events.drain(..) {
            match ev {
                Event::Data { conn, buf } => {
                    let c = conns.get_mut(&conn.as_u64()).expect("known connection");
                    if verify && c.mismatch_at.is_none() {
                        c.mismatch_at = pattern.check(c.at, &buf);
                    }
                    c.at += buf.len() as u64;
                    if bytes.fetch_add(buf.len() as u64, Ordering::Relaxed) == 0 {
                        first_byte.lock().unwrap().get_or_insert_with(Instant::now);
                    }
                }
                Event::Closed { conn, error } => {
                    let c = conns.remove(&conn.as_u64()).expect("known connection");
                    w.conns += 1;
                    if let Some(at) = c.mismatch_at {
                        w.bad_conns += 1;
                        w.errors
                            .push(format!("payload differs at stream byte {at}"));
                    }
                    if let Some(e) = error {
                        w.errors
                            .push(format!("connection failed after {} bytes: {e}", c.at));
                    }
                    ended.fetch_add(1, Ordering::AcqRel);
                }
                _ => {}
            }
        }
    }
    w.stats = r.stats();
    w.cpu_s = cpu::thread_cpu_s() - t0;
    Ok(w)
}
