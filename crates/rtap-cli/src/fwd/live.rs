//! Live statistics (`--stats-period`): every period, each port's rx/tx packet and
//! bit rates over that period, with its drops and errors, as a table row per port
//! or one JSON line per period.
//!
//! Rates come from the port counters (`Port::stats`, readable from any thread
//! while workers run) and the forwarder's own drop counters, differenced between
//! two ticks. The caller ticks it from its control loop; nothing here touches the
//! data path.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use std::sync::Arc;

use rtap::{Port, PortStats};

use serde_json::{json, Value};

/// Rows between repeated headers on a terminal.
const HEADER_EVERY: u32 = 20;

/// One port's cumulative counters at a tick.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Frames lost before or by this port: the kernel's queue overflowed (imissed),
    /// no buffer (rx nombuf), or the forwarder gave up sending them (fwd_dropped).
    pub drops: u64,
    /// Failed reads and writes.
    pub errors: u64,
}

impl Counts {
    /// Counters of `st` (since the run began) plus the forwarder's drops.
    pub fn of(st: &PortStats, fwd_dropped: u64) -> Counts {
        Counts {
            rx_packets: st.rx.packets,
            rx_bytes: st.rx.bytes,
            tx_packets: st.tx.packets,
            tx_bytes: st.tx.bytes,
            drops: st.imissed + st.rx.nombuf + fwd_dropped,
            errors: st.rx.errors + st.tx.errors,
        }
    }
}

/// Rates of one port over one period.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rates {
    pub rx_pps: f64,
    pub rx_mbps: f64,
    pub tx_pps: f64,
    pub tx_mbps: f64,
    /// Drops and errors during the period.
    pub drops: u64,
    pub errors: u64,
}

/// Rates between two snapshots `secs` apart (counters that went backwards count
/// as zero).
pub fn rates(prev: &Counts, now: &Counts, secs: f64) -> Rates {
    let per_s = |a: u64, b: u64| {
        if secs > 0.0 {
            b.saturating_sub(a) as f64 / secs
        } else {
            0.0
        }
    };
    Rates {
        rx_pps: per_s(prev.rx_packets, now.rx_packets),
        rx_mbps: per_s(prev.rx_bytes, now.rx_bytes) * 8.0 / 1e6,
        tx_pps: per_s(prev.tx_packets, now.tx_packets),
        tx_mbps: per_s(prev.tx_bytes, now.tx_bytes) * 8.0 / 1e6,
        drops: now.drops.saturating_sub(prev.drops),
        errors: now.errors.saturating_sub(prev.errors),
    }
}

/// Prints live statistics for a set of ports every period.
pub struct Live<'a> {
    ports: &'a [Arc<Port>],
    base: Vec<PortStats>,
    prev: Vec<Counts>,
    start: Instant,
    last: Instant,
    period: Duration,
    json: bool,
    rows: u32,
    tty: bool,
}

impl<'a> Live<'a> {
    /// Starts counting from the ports' counters now.
    pub fn new(ports: &'a [Arc<Port>], period: Duration, json: bool) -> Live<'a> {
        let base = ports
            .iter()
            .map(|p| p.stats().unwrap_or_default())
            .collect::<Vec<_>>();
        let now = Instant::now();
        Live {
            ports,
            prev: vec![Counts::default(); ports.len()],
            base,
            start: now,
            last: now,
            period,
            json,
            rows: 0,
            tty: std::io::stdout().is_terminal(),
        }
    }

    /// When the next line is due.
    pub fn due(&self) -> Instant {
        self.last + self.period
    }

    /// Prints a line if a period has passed; `fwd_dropped[i]` is the forwarder's
    /// drop count for port `i` since the run began, `pool` the workers' pool
    /// buffers (out, in all) where there are pools.
    pub fn tick(&mut self, fwd_dropped: &[u64], pool: Option<(u64, u64)>) {
        let now = Instant::now();
        if now < self.due() {
            return;
        }
        let secs = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        let t = now.duration_since(self.start).as_secs_f64();
        let mut per_port = Vec::new();
        for (i, p) in self.ports.iter().enumerate() {
            let st = match p.stats() {
                Ok(s) => s.since(&self.base[i]),
                Err(e) => {
                    tracing::warn!("{}: stats: {e}", p.name());
                    continue;
                }
            };
            let c = Counts::of(&st, fwd_dropped.get(i).copied().unwrap_or(0));
            per_port.push((i, p.name(), rates(&self.prev[i], &c, secs), c));
            self.prev[i] = c;
        }
        let out = if self.json {
            json_line(t, &per_port, pool)
        } else {
            let header = self.rows == 0 || (self.tty && self.rows.is_multiple_of(HEADER_EVERY));
            self.rows += 1;
            text_rows(t, &per_port, header, pool)
        };
        let mut so = std::io::stdout().lock();
        let _ = so.write_all(out.as_bytes());
        let _ = so.flush();
    }
}

type PortLine = (usize, String, Rates, Counts);

fn json_line(t: f64, ports: &[PortLine], pool: Option<(u64, u64)>) -> String {
    let ports: Vec<Value> = ports
        .iter()
        .map(|(i, name, r, c)| {
            json!({"port": *i,
"name": name.as_str(),
"rx_pps": r.rx_pps,
"rx_mbit_per_s": r.rx_mbps,
"tx_pps": r.tx_pps,
"tx_mbit_per_s": r.tx_mbps,
"drops": r.drops,
"errors": r.errors,
"rx_packets": c.rx_packets,
"tx_packets": c.tx_packets,
"drops_total": c.drops,
"errors_total": c.errors})
        })
        .collect();
    format!(
        "{}\n",
        json!({"event": "stats",
"t_s": t,
"pool_in_use": pool.map(|p| p.0),
"pool_capacity": pool.map(|p| p.1),
"ports": Value::Array(ports)})
    )
}

fn text_rows(t: f64, ports: &[PortLine], header: bool, pool: Option<(u64, u64)>) -> String {
    let mut s = String::new();
    if header {
        s += &format!(
            "{:>8}  {:<4} {:<15} {:>12} {:>10} {:>12} {:>10} {:>9} {:>8} {:>9}\n",
            "time_s",
            "port",
            "name",
            "rx_pps",
            "rx_Mbit/s",
            "tx_pps",
            "tx_Mbit/s",
            "drops",
            "errors",
            "pool_used"
        );
    }
    for (k, (i, name, r, _)) in ports.iter().enumerate() {
        // The pool is the workers', not a port's: on the first row.
        let used = match pool {
            Some((u, _)) if k == 0 => u.to_string(),
            _ => String::new(),
        };
        s += &format!(
            "{t:>8.1}  {i:<4} {name:<15} {:>12.0} {:>10.1} {:>12.0} {:>10.1} {:>9} {:>8} {used:>9}\n",
            r.rx_pps, r.rx_mbps, r.tx_pps, r.tx_mbps, r.drops, r.errors
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_deltas_over_the_period() {
        let a = Counts {
            rx_packets: 100,
            rx_bytes: 1_000,
            tx_packets: 50,
            tx_bytes: 500,
            drops: 1,
            errors: 0,
        };
        let b = Counts {
            rx_packets: 300,
            rx_bytes: 251_000,
            tx_packets: 250,
            tx_bytes: 125_500,
            drops: 4,
            errors: 2,
        };
        let r = rates(&a, &b, 2.0);
        assert_eq!(r.rx_pps, 100.0);
        assert_eq!(r.tx_pps, 100.0);
        assert_eq!(r.rx_mbps, 1.0); // 250 000 bytes in 2 s = 1 Mbit/s
        assert_eq!(r.tx_mbps, 0.5);
        assert_eq!((r.drops, r.errors), (3, 2));
        // Backwards counters (a reset) and a zero period give zeros, not garbage.
        let z = rates(&b, &a, 1.0);
        assert_eq!((z.rx_pps, z.drops), (0.0, 0));
        assert_eq!(rates(&a, &b, 0.0).rx_pps, 0.0);
    }

    #[test]
    fn text_and_json_shapes() {
        let r = rates(&Counts::default(), &Counts::default(), 1.0);
        let rows = vec![(0, "tap0".to_string(), r, Counts::default())];
        let t = text_rows(1.0, &rows, true, Some((3, 10)));
        assert_eq!(t.lines().count(), 2);
        assert!(t.starts_with("  time_s"));
        assert!(t.lines().nth(1).unwrap().ends_with(" 3"), "{t}");
        assert_eq!(text_rows(2.0, &rows, false, None).lines().count(), 1);
        let j = json_line(1.0, &rows, Some((3, 10)));
        assert!(j.contains("\"pool_in_use\":3"), "{j}");
        assert!(j.starts_with("{\"event\":\"stats\""), "{j}");
        assert!(j.ends_with("}\n"));
    }
}
