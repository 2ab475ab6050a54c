//! `rtap fwd`: an io-mode forwarder between two ports (or back out of one).
//!
//! Zero copy: each received [`Packet`] is handed as is to the other port's
//! `tx_burst`. One worker thread per queue pair: queue `i` of port A and queue `i`
//! of port B, both directions, one [`Pool`] shared by the worker's two rx queues.
//! Workers busy-poll until the stop flag is raised or the duration runs out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rtap::{BackendKind, Packet, Pool, PoolConfig, PortStats, RxQueue, TapPort, TxQueue};

use crate::json::Json;

/// Forwarding options.
#[derive(Clone, Debug)]
pub struct FwdOpts {
    /// Most packets taken per rx burst.
    pub burst: usize,
    /// Buffers in each worker's pool; `None` sizes it from the ports' rings.
    pub pool_size: Option<u32>,
    /// Stop after this long (`None`: only when the stop flag is raised).
    pub duration: Option<Duration>,
    /// How many more times a partially refused burst is offered to the tx queue
    /// before the rest is dropped (and counted in `fwd_dropped`).
    pub tx_retries: u32,
}

impl Default for FwdOpts {
    fn default() -> Self {
        FwdOpts {
            burst: 32,
            pool_size: None,
            duration: None,
            tx_retries: 64,
        }
    }
}

/// One port's result.
#[derive(Clone, Debug)]
pub struct PortReport {
    /// Interface name.
    pub name: String,
    /// Interface index (in the namespace the port was opened in).
    pub ifindex: u32,
    /// Backend in use.
    pub backend: BackendKind,
    /// Queue pairs.
    pub queues: u16,
    /// Port counters at the end of the run (since the start of the run).
    pub stats: PortStats,
    /// Packets that should have left through this port but were dropped because
    /// its tx queue kept refusing them.
    pub fwd_dropped: u64,
}

/// What a forwarding run did.
#[derive(Clone, Debug)]
pub struct FwdReport {
    /// Time the workers ran.
    pub elapsed: Duration,
    /// Worker threads (one per queue pair).
    pub queue_pairs: u16,
    /// Per port, in the order given.
    pub ports: Vec<PortReport>,
}

impl FwdReport {
    /// Packets sent (transmissions completed) over all ports.
    pub fn forwarded_packets(&self) -> u64 {
        self.ports.iter().map(|p| p.stats.tx.packets).sum()
    }

    /// Bytes sent over all ports.
    pub fn forwarded_bytes(&self) -> u64 {
        self.ports.iter().map(|p| p.stats.tx.bytes).sum()
    }

    /// Packets dropped by the forwarder over all ports.
    pub fn dropped_packets(&self) -> u64 {
        self.ports.iter().map(|p| p.fwd_dropped).sum()
    }

    /// Forwarded packets per second.
    pub fn pps(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.forwarded_packets() as f64 / s
        } else {
            0.0
        }
    }

    /// The report as a JSON object (field names documented in `rtap fwd --help`).
    pub fn to_json(&self) -> Json {
        let ports: Vec<Json> = self
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Json::obj()
                    .set("port", i)
                    .set("name", p.name.as_str())
                    .set("ifindex", p.ifindex)
                    .set("backend", p.backend.to_string())
                    .set("queues", p.queues)
                    .set("rx_packets", p.stats.rx.packets)
                    .set("rx_bytes", p.stats.rx.bytes)
                    .set("rx_errors", p.stats.rx.errors)
                    .set("rx_nombuf", p.stats.rx.nombuf)
                    .set("imissed", p.stats.imissed)
                    .set("tx_packets", p.stats.tx.packets)
                    .set("tx_bytes", p.stats.tx.bytes)
                    .set("tx_errors", p.stats.tx.errors)
                    .set("fwd_dropped", p.fwd_dropped)
            })
            .collect();
        Json::obj()
            .set("mode", "io")
            .set("elapsed_s", self.elapsed.as_secs_f64())
            .set("queue_pairs", self.queue_pairs)
            .set("forwarded_packets", self.forwarded_packets())
            .set("forwarded_bytes", self.forwarded_bytes())
            .set("forwarded_pps", self.pps())
            .set("dropped_packets", self.dropped_packets())
            .set("ports", Json::Arr(ports))
    }

    /// The per-port counters as a text table.
    pub fn table(&self) -> String {
        let mut rows = vec![[
            "port", "name", "backend", "rx_pkts", "rx_bytes", "rx_err", "nombuf", "imissed",
            "tx_pkts", "tx_bytes", "tx_err", "fwd_drop",
        ]
        .map(String::from)
        .to_vec()];
        for (i, p) in self.ports.iter().enumerate() {
            let s = &p.stats;
            rows.push(vec![
                i.to_string(),
                p.name.clone(),
                p.backend.to_string(),
                s.rx.packets.to_string(),
                s.rx.bytes.to_string(),
                s.rx.errors.to_string(),
                s.rx.nombuf.to_string(),
                s.imissed.to_string(),
                s.tx.packets.to_string(),
                s.tx.bytes.to_string(),
                s.tx.errors.to_string(),
                p.fwd_dropped.to_string(),
            ]);
        }
        table(&rows)
    }

    /// A human-readable summary: one line, then the table.
    pub fn summary(&self) -> String {
        format!(
            "forwarded {} packets ({} bytes) in {:.2} s over {} queue pair(s): {:.3} Mpps, {} dropped\n{}",
            self.forwarded_packets(),
            self.forwarded_bytes(),
            self.elapsed.as_secs_f64(),
            self.queue_pairs,
            self.pps() / 1e6,
            self.dropped_packets(),
            self.table()
        )
    }
}

/// Lays out rows as columns: the first two columns left-aligned, the rest right.
pub fn table(rows: &[Vec<String>]) -> String {
    let ncol = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..ncol)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, v)| {
                if c < 3 {
                    format!("{v:<w$}", w = width[c])
                } else {
                    format!("{v:>w$}", w = width[c])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Buffers a worker needs so that no rx queue ever starves: every posted read and
/// every tx slot of both ports, plus bursts on the way.
/// True if a port may hand up 64 KiB coalesced frames (offloads on): the pool then
/// gets buffers that hold a whole one, so each frame is one buffer and rx can use
/// multishot read.
fn big_frames(ports: &[TapPort]) -> bool {
    ports.iter().any(|p| p.offloads().any_gso())
}

/// Buffer size for the forwarding pool.
fn buf_size(ports: &[TapPort]) -> u32 {
    if big_frames(ports) {
        // Headroom + 64 KiB frame + one spare byte, rounded up.
        (PoolConfig::default().headroom as usize + rtap::pool::MAX_PACKET_LEN + 64) as u32
    } else {
        PoolConfig::default().buf_size
    }
}

fn pool_needed(ports: &[TapPort], burst: usize) -> u32 {
    let rings: u32 = ports
        .iter()
        .map(|p| p.config().ring.rx_posted + p.config().ring.tx_entries)
        .sum();
    rings + 4 * burst as u32 + 64
}

/// Forwards between `ports` (one or two, started) until `stop` is raised or
/// `opts.duration` passes, then drops every queue and returns the counters.
/// With one port, packets go back out of the port they came in on.
///
/// The ports stay started; stopping them is the caller's job.
pub fn run(ports: &[TapPort], opts: &FwdOpts, stop: &AtomicBool) -> Result<FwdReport, String> {
    if ports.is_empty() || ports.len() > 2 {
        return Err(format!("fwd needs one or two ports, got {}", ports.len()));
    }
    for p in ports {
        if !p.is_started() {
            return Err(format!("port {} is not started", p.name()));
        }
    }
    let pairs = ports[0].queue_count();
    if let Some(b) = ports.get(1) {
        if b.queue_count() != pairs {
            return Err(format!(
                "the ports have different queue counts ({} has {pairs}, {} has {}): give both the same queues=N",
                ports[0].name(),
                b.name(),
                b.queue_count()
            ));
        }
    }
    if opts.burst == 0 {
        return Err("burst must be at least 1".into());
    }
    let needed = pool_needed(ports, opts.burst);
    let pool_size = match opts.pool_size {
        Some(n) => {
            if n < needed {
                tracing::warn!(
                    pool = n,
                    needed,
                    "pool smaller than the rings can hold: expect rx nombuf drops"
                );
            }
            n
        }
        None if big_frames(ports) => needed.min(2048),
        None => needed.max(4096),
    };
    let base: Vec<PortStats> = ports
        .iter()
        .map(|p| p.stats().map_err(|e| format!("{}: stats: {e}", p.name())))
        .collect::<Result<_, _>>()?;

    // Raised when the run ends for any reason (stop, deadline, a failed worker).
    let done = AtomicBool::new(false);
    let failed = AtomicBool::new(false);
    let t0 = Instant::now();
    let results: Vec<Result<[u64; 2], String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..pairs)
            .map(|q| {
                let (done, failed) = (&done, &failed);
                std::thread::Builder::new()
                    .name(format!("rtap-fwd-{q}"))
                    .spawn_scoped(s, move || {
                        let r = worker(ports, q, pool_size, opts, done);
                        if r.is_err() {
                            failed.store(true, Ordering::SeqCst);
                        }
                        r
                    })
                    .map_err(|e| format!("spawn worker thread: {e}"))
            })
            .collect();
        let deadline = opts.duration.map(|d| t0 + d);
        while !stop.load(Ordering::Relaxed) && !failed.load(Ordering::Relaxed) {
            let mut nap = Duration::from_millis(20);
            if let Some(dl) = deadline {
                let left = dl.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                nap = nap.min(left);
            }
            std::thread::sleep(nap);
        }
        done.store(true, Ordering::SeqCst);
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|_| Err("a forwarding worker panicked".into())),
                Err(e) => Err(e),
            })
            .collect()
    });
    let elapsed = t0.elapsed();

    let mut dropped = [0u64; 2];
    for r in results {
        let d = r?;
        dropped[0] += d[0];
        dropped[1] += d[1];
    }
    let mut reports = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let st = p.stats().map_err(|e| format!("{}: stats: {e}", p.name()))?;
        reports.push(PortReport {
            name: p.name(),
            ifindex: p.ifindex(),
            backend: p.backend(),
            queues: p.queue_count(),
            stats: since(&st, &base[i]),
            fwd_dropped: dropped[i],
        });
    }
    Ok(FwdReport {
        elapsed,
        queue_pairs: pairs,
        ports: reports,
    })
}

/// `now - base`, field by field (the run's own traffic).
fn since(now: &PortStats, base: &PortStats) -> PortStats {
    let per_q = |n: &[rtap::QueueStats], b: &[rtap::QueueStats]| {
        n.iter()
            .enumerate()
            .map(|(i, q)| b.get(i).map_or(*q, |b| q.since(b)))
            .collect()
    };
    PortStats {
        rx_queues: per_q(&now.rx_queues, &base.rx_queues),
        tx_queues: per_q(&now.tx_queues, &base.tx_queues),
        rx: now.rx.since(&base.rx),
        tx: now.tx.since(&base.tx),
        imissed: now.imissed.saturating_sub(base.imissed),
    }
}

/// One direction's queues.
struct Side {
    rx: RxQueue,
    tx: TxQueue,
}

/// Forwards queue pair `q` until `done`; returns packets dropped per destination port.
fn worker(
    ports: &[TapPort],
    q: u16,
    pool_size: u32,
    opts: &FwdOpts,
    done: &AtomicBool,
) -> Result<[u64; 2], String> {
    let pool = Pool::new(PoolConfig {
        count: pool_size,
        buf_size: buf_size(ports),
        ..PoolConfig::default()
    })
    .map_err(|e| format!("queue {q}: pool: {e}"))?;
    let open = |p: &TapPort| -> Result<Side, String> {
        let rx = p
            .rx_queue(q, &pool)
            .map_err(|e| format!("{} rx queue {q}: {e}", p.name()))?;
        let tx = p
            .tx_queue(q)
            .map_err(|e| format!("{} tx queue {q}: {e}", p.name()))?;
        Ok(Side { rx, tx })
    };
    let mut a = open(&ports[0])?;
    let mut b = match ports.get(1) {
        Some(p) => Some(open(p)?),
        None => None,
    };
    tracing::debug!(queue = q, pool = pool_size, "forwarding worker running");

    let mut buf: Vec<Packet> = Vec::with_capacity(opts.burst);
    let mut dropped = [0u64; 2];
    let name = |i: usize| ports[i].name();
    while !done.load(Ordering::Relaxed) {
        let moved = match &mut b {
            Some(b) => {
                let ab = pass(&mut a.rx, &mut b.tx, &mut buf, opts, &mut dropped[1])
                    .map_err(|e| format!("{} -> {} queue {q}: {e}", name(0), name(1)))?;
                let ba = pass(&mut b.rx, &mut a.tx, &mut buf, opts, &mut dropped[0])
                    .map_err(|e| format!("{} -> {} queue {q}: {e}", name(1), name(0)))?;
                ab + ba
            }
            None => {
                let (rx, tx) = (&mut a.rx, &mut a.tx);
                pass(rx, tx, &mut buf, opts, &mut dropped[0])
                    .map_err(|e| format!("{} queue {q}: {e}", name(0)))?
            }
        };
        if moved == 0 {
            std::hint::spin_loop();
        }
    }
    // Let transmissions in flight complete so the counters are final.
    let flush = Duration::from_secs(1);
    a.tx.flush(flush);
    if let Some(b) = &mut b {
        b.tx.flush(flush);
    }
    drop(a);
    drop(b);
    Ok(dropped)
}

/// One rx burst handed to `tx`; returns packets received.
fn pass(
    rx: &mut RxQueue,
    tx: &mut TxQueue,
    buf: &mut Vec<Packet>,
    opts: &FwdOpts,
    dropped: &mut u64,
) -> rtap::Result<usize> {
    debug_assert!(buf.is_empty());
    let n = rx.rx_burst(buf, opts.burst)?;
    if n == 0 {
        return Ok(0);
    }
    let mut tries = 0;
    loop {
        tx.tx_burst(buf)?;
        if buf.is_empty() {
            break;
        }
        if tries == opts.tx_retries {
            *dropped += buf.len() as u64;
            buf.clear(); // the buffers go back to the pool
            break;
        }
        tries += 1;
        std::hint::spin_loop();
    }
    Ok(n)
}
