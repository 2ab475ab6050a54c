//! What a forwarding run did: per port, per worker, as a text summary or JSON.

use std::time::Duration;

use rtap::{DeviceKind, Engine, Port, PortStats};

use super::options::FwdMode;
use crate::common::table;
use serde_json::{json, Value};

/// One port's result.
#[derive(Clone, Debug)]
pub struct PortReport {
    /// Device kind.
    pub kind: DeviceKind,
    /// Interface name.
    pub name: String,
    /// Interface index (in the namespace the port was opened in).
    pub ifindex: u32,
    /// The data path of the port's queues.
    pub engine: Engine,
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

impl PortReport {
    /// Port `p`'s report at the end of a run: its counters since `base`
    /// (`base_lro` coalesced frames then), `dropped` packets given up.
    pub(super) fn of(
        p: &Port,
        base: &PortStats,
        base_lro: u64,
        dropped: u64,
    ) -> anyhow::Result<PortReport> {
        use anyhow::Context;
        let st = p.stats().with_context(|| format!("{}: stats", p.name()))?;
        Ok(PortReport {
            name: p.name(),
            ifindex: p.ifindex(),
            kind: p.kind(),
            engine: p.engine(),
            queues: p.queue_count(),
            stats: st.since(base),
            fwd_dropped: dropped,
            offloads: p.offloads(),
            rx_lro_packets: lro_count(p).saturating_sub(base_lro),
        })
    }
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
    /// Per worker thread (those that ended well).
    pub workers: Vec<WorkerReport>,
    /// Why the run stopped early, if a worker failed (a port vanished...): the
    /// counters above are everything forwarded until then.
    pub error: Option<String>,
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
    /// Buffers in its pool.
    pub pool_capacity: u32,
    /// Buffers back in its pool once its queues were closed (all of them,
    /// unless buffers leaked).
    pub pool_available: usize,
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

    /// (buffers back in the pools at stop, buffers in the pools) over all workers.
    pub fn pools(&self) -> (usize, usize) {
        self.workers.iter().fold((0, 0), |(a, c), w| {
            (a + w.pool_available, c + w.pool_capacity as usize)
        })
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
    pub fn to_json(&self) -> Value {
        let ports: Vec<Value> = self
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                json!({"port": i,
"name": p.name.as_str(),
"ifindex": p.ifindex,
"kind": p.kind.to_string(),
"engine": p.engine.to_string(),
"queues": p.queues,
"rx_packets": p.stats.rx.packets,
"rx_bytes": p.stats.rx.bytes,
"rx_errors": p.stats.rx.errors,
"rx_nombuf": p.stats.rx.nombuf,
"imissed": p.stats.imissed,
"tx_packets": p.stats.tx.packets,
"tx_bytes": p.stats.tx.bytes,
"tx_errors": p.stats.tx.errors,
"fwd_dropped": p.fwd_dropped,
"offloads": p.offloads.to_string(),
"rx_lro_packets": p.rx_lro_packets})
            })
            .collect();
        json!({"mode": self.mode.name(),
"elapsed_s": self.elapsed.as_secs_f64(),
"queue_pairs": self.queue_pairs,
"forwarded_packets": self.forwarded_packets(),
"forwarded_bytes": self.forwarded_bytes(),
"forwarded_pps": self.pps(),
"dropped_packets": self.dropped_packets(),
"rx_lro_packets": self.rx_lro_packets(),
"worker_cpu_s": self.worker_cpu().as_secs_f64(),
"rounds": self.rounds(),
"empty_rounds": self.empty_rounds(),
"threads": self.workers.len(),
"workers": Value::Array(
                    self.workers
                        .iter()
                        .enumerate()
                        .map(|(i, w)| {
                            json!({"worker": i,
"queues": Value::Array(w.queues.iter().map(|&q| q.into()).collect()),
"cpu": w.cpu,
"cpu_s": w.cpu_time.as_secs_f64(),
"rounds": w.rounds,
"pool_capacity": w.pool_capacity,
"pool_available": w.pool_available})
                        })
                        .collect(),
                ),
"ports": Value::Array(ports),
"error": self.error})
    }

    /// The per-port counters as a text table.
    pub fn table(&self) -> String {
        let mut rows = vec![[
            "port", "name", "engine", "rx_pkts", "rx_bytes", "rx_err", "nombuf", "imissed",
            "tx_pkts", "tx_bytes", "tx_err", "fwd_drop",
        ]
        .map(String::from)
        .to_vec()];
        for (i, p) in self.ports.iter().enumerate() {
            let s = &p.stats;
            rows.push(vec![
                i.to_string(),
                p.name.clone(),
                p.engine.to_string(),
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
        table::render(&rows)
    }

    /// A human-readable summary: one line, then the table.
    pub fn summary(&self) -> String {
        let (pool_back, pool_all) = self.pools();
        format!(
            "forwarded {} packets ({} bytes) in {:.2} s over {} queue pair(s) by {} worker(s){}: \
             {:.3} Mpps, {} dropped, {} coalesced frames received, workers {:.0} % of a core, \
             {} of {} pool buffers back at stop\n{}",
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
                    format!(" pinned to CPU {}", crate::common::cpu::fmt_list(&pinned))
                }
            },
            self.pps() / 1e6,
            self.dropped_packets(),
            self.rx_lro_packets(),
            self.worker_cpu_load() * 100.0,
            pool_back,
            pool_all,
            self.table()
        )
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
pub(super) fn lro_count(port: &Port) -> u64 {
    xstat_sum(port, "rx", "lro_packets")
}
