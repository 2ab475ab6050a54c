//! `rtap fwd`: an io-mode forwarder between two ports (or back out of one).
//!
//! Zero copy: each received [`Packet`] is handed as is to the other port's
//! `tx_burst`. A queue pair is queue `i` of port A and queue `i` of port B, both
//! directions. By default one worker thread serves each queue pair; with
//! [`FwdOpts::threads`] fewer workers serve them round-robin (worker `w` takes
//! pairs `w`, `w + threads`, ...), each optionally pinned to a CPU of
//! [`FwdOpts::cpus`]. A worker's rx queues share one [`Pool`].
//! Workers poll until the stop flag is raised or the duration runs out; what they
//! do between empty rounds is [`Idle`] (busy-polling by default). The calling
//! thread meanwhile watches the clock and prints live statistics
//! ([`FwdOpts::stats_period`]).

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rtap::{BackendKind, Packet, Pool, PoolConfig, Port, PortStats, RxQueue, TxQueue};

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
    /// What a worker does when a round finds nothing to forward.
    pub idle: Idle,
    /// What happens to each received packet.
    pub mode: FwdMode,
    /// Worker threads (`None`: one per queue pair). At most the queue count.
    pub threads: Option<u16>,
    /// CPUs to pin the workers to, worker `w` on `cpus[w % cpus.len()]`
    /// (empty: not pinned).
    pub cpus: Vec<usize>,
    /// Print live per-port statistics to stdout this often.
    pub stats_period: Option<Duration>,
    /// Live statistics as JSON lines instead of a table.
    pub stats_json: bool,
}

/// Forwarding modes (testpmd's names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FwdMode {
    /// Sent unchanged to the other port (zero copy).
    #[default]
    Io,
    /// Source MAC set to the out port's, destination to `peer`.
    Mac {
        /// Destination MAC written into every frame.
        peer: [u8; 6],
    },
    /// Source and destination MAC swapped, sent back out of the port it came in on.
    MacSwap,
    /// Received and counted, then dropped.
    RxOnly,
    /// ARP, IPv6 neighbour discovery and ICMP/ICMPv6 echo answered for these
    /// addresses (the port's own MAC is filled in per port), back out the same port.
    IcmpEcho {
        /// IPv4 address to answer for.
        ipv4: Option<std::net::Ipv4Addr>,
        /// IPv6 address to answer for.
        ipv6: Option<std::net::Ipv6Addr>,
    },
}

impl FwdMode {
    /// The mode's name as `--mode` takes it.
    pub fn name(&self) -> &'static str {
        match self {
            FwdMode::Io => "io",
            FwdMode::Mac { .. } => "mac",
            FwdMode::MacSwap => "macswap",
            FwdMode::RxOnly => "rxonly",
            FwdMode::IcmpEcho { .. } => "icmpecho",
        }
    }
}

/// The header change a pass applies to each packet before sending it.
#[derive(Clone, Copy)]
enum Rewrite {
    None,
    Swap,
    Set { src: [u8; 6], dst: [u8; 6] },
    Drop,
    Respond(crate::responder::Identity),
}

impl Rewrite {
    #[inline]
    fn apply(&self, p: &mut Packet) {
        let d = p.data_mut();
        if d.len() < 12 {
            return;
        }
        match *self {
            Rewrite::Swap => {
                let (dst, rest) = d.split_at_mut(6);
                dst.swap_with_slice(&mut rest[..6]);
            }
            Rewrite::Set { src, dst } => {
                d[..6].copy_from_slice(&dst);
                d[6..12].copy_from_slice(&src);
            }
            Rewrite::None | Rewrite::Drop | Rewrite::Respond(_) => {}
        }
    }
}

impl Default for FwdOpts {
    fn default() -> Self {
        FwdOpts {
            burst: 32,
            pool_size: None,
            duration: None,
            tx_retries: 64,
            mode: FwdMode::Io,
            idle: Idle::Spin,
            threads: None,
            cpus: Vec::new(),
            stats_period: None,
            stats_json: false,
        }
    }
}

/// What a worker does when a round (an rx burst on each port) found nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idle {
    /// Poll again at once (a CPU pause hint only): lowest latency, one core busy.
    Spin,
    /// After `after` empty rounds in a row, `sched_yield()` before each next round:
    /// other threads waiting for this core run first.
    Yield { after: u32 },
    /// After `after` empty rounds in a row, sleep `nap` before each next round:
    /// the core is free for others while traffic is idle or slow.
    Sleep { after: u32, nap: Duration },
    /// Rx interrupts: after `after` empty rounds in a row, sleep in `poll()` on
    /// the rx queues' interrupt fds (the io_uring completion eventfd, or the tap
    /// fd with the read/write backend) until a frame arrives, at most [`Idle::IRQ_MAX`].
    Interrupt { after: u32 },
}

impl Idle {
    /// Empty rounds before yielding or sleeping, by default.
    pub const AFTER: u32 = 64;
    /// Longest sleep of [`Idle::Interrupt`] (the stop flag is checked in between).
    pub const IRQ_MAX: Duration = Duration::from_millis(10);

    /// Parses `spin`, `yield[:N]`, `sleep[:US[:N]]`, `interrupt[:N]` (N empty
    /// rounds before; US the nap in microseconds, default 50).
    pub fn parse(s: &str) -> Result<Idle, String> {
        let mut it = s.split(':');
        let kind = it.next().unwrap_or("");
        let num = |v: Option<&str>, what: &str, def: u64| -> Result<u64, String> {
            match v {
                None => Ok(def),
                Some(v) => v
                    .parse()
                    .map_err(|_| format!("idle mode {s:?}: {what} {v:?} is not a number")),
            }
        };
        let r = match kind {
            "spin" => Idle::Spin,
            "yield" => Idle::Yield {
                after: num(it.next(), "round count", Self::AFTER as u64)? as u32,
            },
            "interrupt" | "irq" => Idle::Interrupt {
                after: num(it.next(), "round count", Self::AFTER as u64)? as u32,
            },
            "sleep" => {
                let us = num(it.next(), "microseconds", 50)?;
                let after = num(it.next(), "round count", Self::AFTER as u64)? as u32;
                Idle::Sleep {
                    after,
                    nap: Duration::from_micros(us),
                }
            }
            _ => {
                return Err(format!(
                    "unknown idle mode {s:?}: use spin, yield[:ROUNDS], sleep[:US[:ROUNDS]] or interrupt[:ROUNDS]"
                ))
            }
        };
        if it.next().is_some() {
            return Err(format!("idle mode {s:?}: too many fields"));
        }
        Ok(r)
    }
}

impl std::fmt::Display for Idle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Idle::Spin => write!(f, "spin"),
            Idle::Yield { after } => write!(f, "yield:{after}"),
            Idle::Sleep { after, nap } => write!(f, "sleep:{}:{after}", nap.as_micros()),
            Idle::Interrupt { after } => write!(f, "interrupt:{after}"),
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
    /// Offloads the kernel accepted for the port (`TUNSETOFFLOAD`).
    pub offloads: rtap::Offloads,
    /// Coalesced (GRO/LRO, larger than the MTU) frames received during the run:
    /// the `rx_q{N}_lro_packets` extended statistics summed over the queues.
    pub rx_lro_packets: u64,
}

/// What a forwarding run did.
#[derive(Clone, Debug)]
pub struct FwdReport {
    /// The forwarding mode.
    pub mode: FwdMode,
    /// Time the workers ran.
    pub elapsed: Duration,
    /// Queue pairs forwarded.
    pub queue_pairs: u16,
    /// Per port, in the order given.
    pub ports: Vec<PortReport>,
    /// Per worker thread.
    pub workers: Vec<WorkerReport>,
}

/// One worker thread's share of a run.
#[derive(Clone, Debug)]
pub struct WorkerReport {
    /// Queue pairs it served.
    pub queues: Vec<u16>,
    /// The CPU it was pinned to (`--cpus`), as its affinity mask reads back.
    pub cpu: Option<usize>,
    /// Its CPU time (user + system).
    pub cpu_time: Duration,
    /// Polling rounds (an rx burst on each port of each of its queue pairs).
    pub rounds: u64,
    /// Rounds that found nothing to forward.
    pub empty_rounds: u64,
}

impl FwdReport {
    /// CPU time the worker threads used (user + system, all workers).
    pub fn worker_cpu(&self) -> Duration {
        self.workers.iter().map(|w| w.cpu_time).sum()
    }

    /// Polling rounds of all workers.
    pub fn rounds(&self) -> u64 {
        self.workers.iter().map(|w| w.rounds).sum()
    }

    /// Rounds of all workers that found nothing to forward.
    pub fn empty_rounds(&self) -> u64 {
        self.workers.iter().map(|w| w.empty_rounds).sum()
    }

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

    /// Coalesced frames received over all ports.
    pub fn rx_lro_packets(&self) -> u64 {
        self.ports.iter().map(|p| p.rx_lro_packets).sum()
    }

    /// Worker CPU time per wall second: 1.0 is one core busy all the time.
    pub fn worker_cpu_load(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.worker_cpu().as_secs_f64() / s
        } else {
            0.0
        }
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
                    .set("offloads", offload_names(&p.offloads))
                    .set("rx_lro_packets", p.rx_lro_packets)
            })
            .collect();
        Json::obj()
            .set("mode", self.mode.name())
            .set("elapsed_s", self.elapsed.as_secs_f64())
            .set("queue_pairs", self.queue_pairs)
            .set("forwarded_packets", self.forwarded_packets())
            .set("forwarded_bytes", self.forwarded_bytes())
            .set("forwarded_pps", self.pps())
            .set("dropped_packets", self.dropped_packets())
            .set("rx_lro_packets", self.rx_lro_packets())
            .set("worker_cpu_s", self.worker_cpu().as_secs_f64())
            .set("rounds", self.rounds())
            .set("empty_rounds", self.empty_rounds())
            .set("threads", self.workers.len())
            .set(
                "workers",
                Json::Arr(
                    self.workers
                        .iter()
                        .enumerate()
                        .map(|(i, w)| {
                            Json::obj()
                                .set("worker", i)
                                .set(
                                    "queues",
                                    Json::Arr(w.queues.iter().map(|&q| q.into()).collect()),
                                )
                                .set("cpu", w.cpu)
                                .set("cpu_s", w.cpu_time.as_secs_f64())
                                .set("rounds", w.rounds)
                        })
                        .collect(),
                ),
            )
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
            "forwarded {} packets ({} bytes) in {:.2} s over {} queue pair(s) by {} worker(s){}: \
             {:.3} Mpps, {} dropped, {} coalesced frames received, workers {:.0} % of a core\n{}",
            self.forwarded_packets(),
            self.forwarded_bytes(),
            self.elapsed.as_secs_f64(),
            self.queue_pairs,
            self.workers.len(),
            {
                let pinned: Vec<usize> = self.workers.iter().filter_map(|w| w.cpu).collect();
                if pinned.is_empty() {
                    String::new()
                } else {
                    format!(" pinned to CPU {}", crate::cpu::fmt_list(&pinned))
                }
            },
            self.pps() / 1e6,
            self.dropped_packets(),
            self.rx_lro_packets(),
            self.worker_cpu_load() * 100.0,
            self.table()
        )
    }
}

/// The accepted offloads as a short list (`csum,tso4,tso6,...`), or `none`.
pub fn offload_names(o: &rtap::Offloads) -> String {
    let names: Vec<&str> = [
        (o.csum, "csum"),
        (o.tso4, "tso4"),
        (o.tso6, "tso6"),
        (o.tso_ecn, "tso_ecn"),
        (o.uso4, "uso4"),
        (o.uso6, "uso6"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, n)| *n)
    .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(",")
    }
}

/// Sums the port's extended statistic `{dir}_q{N}_{what}` over its queues; `dir`
/// is `rx` or `tx`.
pub fn xstat_sum(port: &Port, dir: &str, what: &str) -> u64 {
    port.xstats()
        .iter()
        .filter(|x| {
            x.name
                .strip_prefix(dir)
                .and_then(|r| r.strip_prefix("_q"))
                .and_then(|r| r.split_once('_'))
                .is_some_and(|(q, rest)| {
                    !q.is_empty() && q.bytes().all(|b| b.is_ascii_digit()) && rest == what
                })
        })
        .map(|x| x.value)
        .sum()
}

/// Coalesced frames received so far.
fn lro_count(port: &Port) -> u64 {
    xstat_sum(port, "rx", "lro_packets")
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
fn big_frames(ports: &[Port]) -> bool {
    ports.iter().any(|p| p.offloads().any_gso())
}

/// Buffer size for the forwarding pool.
fn buf_size(ports: &[Port]) -> u32 {
    if big_frames(ports) {
        // Headroom + 64 KiB frame + one spare byte, rounded up.
        (PoolConfig::default().headroom as usize + rtap::pool::MAX_PACKET_LEN + 64) as u32
    } else {
        PoolConfig::default().buf_size
    }
}

fn pool_needed(ports: &[Port], burst: usize) -> u32 {
    let rings: u32 = ports
        .iter()
        .map(|p| p.options().ring.rx_posted + p.options().ring.tx_entries)
        .sum();
    rings + 4 * burst as u32 + 64
}

/// Which queue pairs each worker serves: worker `w` of `threads` takes pairs
/// `w`, `w + threads`, `w + 2 * threads`, ...
pub fn assign_queues(pairs: u16, threads: u16) -> Vec<Vec<u16>> {
    let threads = threads.clamp(1, pairs.max(1));
    (0..threads)
        .map(|w| (w..pairs).step_by(threads as usize).collect())
        .collect()
}

/// Forwards between `ports` (one or two, started) until `stop` is raised or
/// `opts.duration` passes, then drops every queue and returns the counters.
/// With one port, packets go back out of the port they came in on.
///
/// The ports stay started; stopping them is the caller's job.
pub fn run(ports: &[Port], opts: &FwdOpts, stop: &AtomicBool) -> Result<FwdReport, String> {
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
    let threads = opts.threads.unwrap_or(pairs);
    if threads == 0 || threads > pairs {
        return Err(format!(
            "--threads {threads}: give 1 to {pairs} (one worker serves one or more of the {pairs} queue pair(s))"
        ));
    }
    let groups = assign_queues(pairs, threads);
    let needed = pool_needed(ports, opts.burst);
    let pool_size = |n_pairs: usize| match opts.pool_size {
        Some(n) => n,
        None if big_frames(ports) => needed.min(2048) * n_pairs as u32,
        None => (needed * n_pairs as u32).max(4096),
    };
    // The busiest worker (the first) serves the most queue pairs.
    let busiest = needed * groups[0].len() as u32;
    if let Some(n) = opts.pool_size.filter(|&n| n < busiest) {
        tracing::warn!(
            pool = n,
            needed = busiest,
            "pool smaller than the rings can hold: expect rx nombuf drops"
        );
    }
    let base: Vec<PortStats> = ports
        .iter()
        .map(|p| p.stats().map_err(|e| format!("{}: stats: {e}", p.name())))
        .collect::<Result<_, _>>()?;
    let base_lro: Vec<u64> = ports.iter().map(lro_count).collect();

    // Raised when the run ends for any reason (stop, deadline, a failed worker).
    let done = AtomicBool::new(false);
    let failed = AtomicBool::new(false);
    // Packets the workers gave up sending, per destination port (bumped only when
    // a burst is dropped, read by the live statistics).
    let dropped = [AtomicU64::new(0), AtomicU64::new(0)];
    let mut live = opts
        .stats_period
        .map(|p| crate::live::Live::new(ports, p, opts.stats_json));
    let t0 = Instant::now();
    let results: Vec<Result<WorkerReport, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = groups
            .iter()
            .enumerate()
            .map(|(w, queues)| {
                let (done, failed, dropped) = (&done, &failed, &dropped);
                let cpu = (!opts.cpus.is_empty()).then(|| opts.cpus[w % opts.cpus.len()]);
                let pool = pool_size(queues.len());
                std::thread::Builder::new()
                    .name(format!("rtap-fwd-{w}"))
                    .spawn_scoped(s, move || {
                        let r = worker(ports, queues, cpu, pool, opts, done, dropped);
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
            let mut wake = Instant::now() + Duration::from_millis(20);
            if let Some(dl) = deadline {
                if Instant::now() >= dl {
                    break;
                }
                wake = wake.min(dl);
            }
            if let Some(l) = &live {
                wake = wake.min(l.due());
            }
            std::thread::sleep(wake.saturating_duration_since(Instant::now()));
            if let Some(l) = &mut live {
                l.tick(&dropped.each_ref().map(|d| d.load(Ordering::Relaxed)));
            }
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

    let workers = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let mut reports = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let st = p.stats().map_err(|e| format!("{}: stats: {e}", p.name()))?;
        reports.push(PortReport {
            name: p.name(),
            ifindex: p.ifindex(),
            backend: p.backend(),
            queues: p.queue_count(),
            stats: since(&st, &base[i]),
            fwd_dropped: dropped[i].load(Ordering::Relaxed),
            offloads: p.offloads(),
            rx_lro_packets: lro_count(p).saturating_sub(base_lro[i]),
        });
    }
    Ok(FwdReport {
        mode: opts.mode,
        elapsed,
        queue_pairs: pairs,
        ports: reports,
        workers,
    })
}

/// `now - base`, field by field (the run's own traffic).
pub fn since(now: &PortStats, base: &PortStats) -> PortStats {
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

/// One queue pair's queues: port A's, and port B's when there are two ports.
struct PairQueues {
    q: u16,
    a: Side,
    b: Option<Side>,
}

/// Forwards queue pairs `queues` until `done`, pinned to `cpu` if given.
fn worker(
    ports: &[Port],
    queues: &[u16],
    cpu: Option<usize>,
    pool_size: u32,
    opts: &FwdOpts,
    done: &AtomicBool,
    dropped: &[AtomicU64; 2],
) -> Result<WorkerReport, String> {
    let cpu_pinned = match cpu {
        Some(c) => {
            crate::cpu::pin(c).map_err(|e| format!("pin worker to CPU {c}: {e}"))?;
            let now = crate::cpu::allowed().map_err(|e| format!("sched_getaffinity: {e}"))?;
            if now != [c] {
                return Err(format!("pinned to CPU {c} but may run on {now:?}"));
            }
            Some(c)
        }
        None => None,
    };
    let cpu0 = crate::bench::thread_cpu_s();
    let pool = Pool::new(
        PoolConfig::default()
            .count(pool_size)
            .buf_size(buf_size(ports)),
    )
    .map_err(|e| format!("worker pool: {e}"))?;
    let open = |p: &Port, q: u16| -> Result<Side, String> {
        let rx = p
            .rx_queue(q, &pool)
            .map_err(|e| format!("{} rx queue {q}: {e}", p.name()))?;
        let tx = p
            .tx_queue(q)
            .map_err(|e| format!("{} tx queue {q}: {e}", p.name()))?;
        Ok(Side { rx, tx })
    };
    let name = |i: usize| ports[i].name();
    let mut mine = Vec::with_capacity(queues.len());
    for &q in queues {
        let mut pq = PairQueues {
            q,
            a: open(&ports[0], q)?,
            b: match ports.get(1) {
                Some(p) => Some(open(p, q)?),
                None => None,
            },
        };
        if let Idle::Interrupt { .. } = opts.idle {
            for (i, rx) in std::iter::once(&mut pq.a.rx)
                .chain(pq.b.as_mut().map(|b| &mut b.rx))
                .enumerate()
            {
                rx.enable_interrupt()
                    .map_err(|e| format!("{} rx queue {q}: interrupts: {e}", name(i)))?;
            }
        }
        mine.push(pq);
    }
    tracing::debug!(?queues, ?cpu, pool = pool_size, idle = %opts.idle, "forwarding worker running");

    // The rewrite for packets sent out of port i (its MAC is the new source in mac mode).
    let mut rw = [Rewrite::None; 2];
    for (i, p) in ports.iter().enumerate() {
        rw[i] = match opts.mode {
            FwdMode::Io => Rewrite::None,
            FwdMode::MacSwap => Rewrite::Swap,
            FwdMode::RxOnly => Rewrite::Drop,
            FwdMode::IcmpEcho { ipv4, ipv6 } => Rewrite::Respond(crate::responder::Identity {
                mac: p
                    .mac()
                    .map_err(|e| format!("{}: MAC: {e}", p.name()))?
                    .octets(),
                ipv4,
                ipv6,
            }),
            FwdMode::Mac { peer } => Rewrite::Set {
                src: p
                    .mac()
                    .map_err(|e| format!("{}: MAC: {e}", p.name()))?
                    .octets(),
                dst: peer,
            },
        };
    }
    let mut irq_fds = interrupt_fds(&mine);
    let mut buf: Vec<Packet> = Vec::with_capacity(opts.burst);
    let mut empty = 0u32;
    let (mut rounds, mut empty_rounds) = (0u64, 0u64);
    while !done.load(Ordering::Relaxed) {
        rounds += 1;
        let mut moved = 0;
        for pq in mine.iter_mut() {
            moved += round(pq, &mut buf, opts, &rw, dropped, &name)?;
        }
        if moved != 0 {
            empty = 0;
            continue;
        }
        empty = empty.saturating_add(1);
        empty_rounds += 1;
        match opts.idle {
            Idle::Yield { after } if empty > after => {
                // SAFETY: sched_yield takes no arguments.
                unsafe { libc::sched_yield() };
            }
            Idle::Sleep { after, nap } if empty > after => std::thread::sleep(nap),
            Idle::Interrupt { after } if empty > after => {
                // Completions of sends in flight go back to the pool first, so that
                // receives do not starve while this thread sleeps.
                buf.clear();
                for pq in mine.iter_mut() {
                    pq.a.tx
                        .tx_burst(&mut buf)
                        .map_err(|e| format!("{}: {e}", name(0)))?;
                    if let Some(b) = &mut pq.b {
                        b.tx.tx_burst(&mut buf)
                            .map_err(|e| format!("{}: {e}", name(1)))?;
                    }
                }
                sleep_on_rx(&mut irq_fds, &mut mine).map_err(|e| format!("rx wait: {e}"))?;
            }
            _ => std::hint::spin_loop(),
        }
    }
    // Let transmissions in flight complete so the counters are final.
    let flush = Duration::from_secs(1);
    for pq in mine.iter_mut() {
        pq.a.tx.flush(flush);
        if let Some(b) = &mut pq.b {
            b.tx.flush(flush);
        }
    }
    drop(mine);
    let cpu = crate::bench::thread_cpu_s() - cpu0;
    Ok(WorkerReport {
        queues: queues.to_vec(),
        cpu: cpu_pinned,
        cpu_time: Duration::from_secs_f64(cpu.max(0.0)),
        rounds,
        empty_rounds,
    })
}

/// One polling round of one queue pair: an rx burst on each port, handed to the
/// tx queue the mode sends it to. Returns packets received.
fn round(
    pq: &mut PairQueues,
    buf: &mut Vec<Packet>,
    opts: &FwdOpts,
    rw: &[Rewrite; 2],
    dropped: &[AtomicU64; 2],
    name: &impl Fn(usize) -> String,
) -> Result<usize, String> {
    let q = pq.q;
    let a = &mut pq.a;
    Ok(match (&mut pq.b, opts.mode) {
        // macswap, rxonly and icmpecho keep each port's packets on that port.
        (Some(b), FwdMode::MacSwap | FwdMode::RxOnly | FwdMode::IcmpEcho { .. }) => {
            let aa = pass(&mut a.rx, &mut a.tx, buf, opts, rw[0], &dropped[0])
                .map_err(|e| format!("{} queue {q}: {e}", name(0)))?;
            let bb = pass(&mut b.rx, &mut b.tx, buf, opts, rw[1], &dropped[1])
                .map_err(|e| format!("{} queue {q}: {e}", name(1)))?;
            aa + bb
        }
        (Some(b), _) => {
            let ab = pass(&mut a.rx, &mut b.tx, buf, opts, rw[1], &dropped[1])
                .map_err(|e| format!("{} -> {} queue {q}: {e}", name(0), name(1)))?;
            let ba = pass(&mut b.rx, &mut a.tx, buf, opts, rw[0], &dropped[0])
                .map_err(|e| format!("{} -> {} queue {q}: {e}", name(1), name(0)))?;
            ab + ba
        }
        (None, _) => pass(&mut a.rx, &mut a.tx, buf, opts, rw[0], &dropped[0])
            .map_err(|e| format!("{} queue {q}: {e}", name(0)))?,
    })
}

/// The rx queues' interrupt fds, for [`sleep_on_rx`] (built once per worker).
fn interrupt_fds(mine: &[PairQueues]) -> Vec<libc::pollfd> {
    mine.iter()
        .flat_map(|pq| std::iter::once(&pq.a.rx).chain(pq.b.as_ref().map(|b| &b.rx)))
        .filter_map(|rx| rx.interrupt_fd())
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect()
}

/// Sleeps until one of the rx queues has something (or [`Idle::IRQ_MAX`]), then
/// re-arms their interrupts: `wait(0)` clears the eventfd and runs the ring's
/// pending completion work, so a frame arriving after it wakes the next sleep.
fn sleep_on_rx(fds: &mut [libc::pollfd], mine: &mut [PairQueues]) -> rtap::Result<()> {
    let ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: Idle::IRQ_MAX.as_nanos() as libc::c_long,
    };
    // SAFETY: fds is a live slice of valid pollfds of the length passed; ts is a
    // live timespec; no signal mask.
    unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            &ts,
            std::ptr::null(),
        )
    };
    for pq in mine.iter_mut() {
        pq.a.rx.wait(Duration::ZERO)?;
        if let Some(b) = &mut pq.b {
            b.rx.wait(Duration::ZERO)?;
        }
    }
    Ok(())
}

/// One rx burst handed to `tx`; returns packets received.
fn pass(
    rx: &mut RxQueue,
    tx: &mut TxQueue,
    buf: &mut Vec<Packet>,
    opts: &FwdOpts,
    rewrite: Rewrite,
    dropped: &AtomicU64,
) -> rtap::Result<usize> {
    debug_assert!(buf.is_empty());
    let n = rx.rx_burst(buf, opts.burst)?;
    if n == 0 {
        return Ok(0);
    }
    match rewrite {
        Rewrite::Drop => {
            buf.clear(); // rxonly: counted by the rx queue, buffers back to the pool
            return Ok(n);
        }
        Rewrite::None => {}
        Rewrite::Respond(id) => {
            // Requests become their replies in place; anything else is not ours.
            buf.retain_mut(|p| {
                let answered = crate::responder::respond(p.data_mut(), &id)
                    != crate::responder::Answer::Ignore;
                p.set_vnet_hdr(Default::default());
                answered
            });
        }
        r => buf.iter_mut().for_each(|p| r.apply(p)),
    }
    let mut tries = 0;
    loop {
        tx.tx_burst(buf)?;
        if buf.is_empty() {
            break;
        }
        if tries == opts.tx_retries {
            dropped.fetch_add(buf.len() as u64, Ordering::Relaxed);
            buf.clear(); // the buffers go back to the pool
            break;
        }
        tries += 1;
        std::hint::spin_loop();
    }
    Ok(n)
}
