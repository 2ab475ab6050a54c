//! Benchmark results: cells (a test x contender measurement), the reference each
//! is compared with, JSON, and `--out` (results.json with the machine, bench.svg).

use anyhow::{Context, Result};
use rtap::BackendKind;
use serde_json::{json, Value};

use super::contenders::{csum_twin, TcpPath, TCP_CONTENDERS};

/// What a cell measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Packets per second, with the measuring thread's CPU ns per packet.
    Pps,
    /// Gbit/s of TCP payload, with the forwarder's and the machine's CPU load.
    Gbps,
    /// Round-trip time percentiles of a UDP ping-pong, with the forwarder's CPU load.
    Latency,
    /// Gbit/s of one received TCP flow, with the receiving thread's and the
    /// machine's CPU seconds per GB.
    Stream,
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
    /// [`Unit::Pps`] only: CPU time of the process's SQPOLL kernel threads per
    /// packet, in ns (0 without one): work the measuring thread handed off.
    pub sq_cpu: f64,
    /// [`Unit::Gbps`] only: busy CPU time of the whole machine per wall second
    /// during the transfer (2.0 = both cores of a 2-core machine).
    pub host_cpu: f64,
    /// [`Unit::Latency`] only: the percentiles.
    pub lat: Option<Lat>,
}

/// A packet-rate cell from repeated runs of (operations per second, CPU ns
/// per operation): the medians.
pub fn pps_cell(test: &'static str, contender: &'static str, runs: &[(f64, f64)]) -> Cell {
    Cell {
        test,
        contender,
        unit: Unit::Pps,
        rate: super::median(runs.iter().map(|x| x.0).collect()),
        cpu: super::median(runs.iter().map(|x| x.1).collect()),
        sq_cpu: 0.0,
        host_cpu: 0.0,
        lat: None,
    }
}

/// The rows of a test with a table of its own, after the main one: `cols`
/// are the column heads after "test" and "contender", with their widths;
/// `row` gives a cell's values in that order, from the cell and what
/// [`reference`] compares it with. Empty if the run has no cell of `test`.
pub fn own_table(
    cells: &[Cell],
    test: &str,
    cols: &[(&str, usize)],
    row: impl Fn(&Cell, Option<(&Cell, f64)>) -> Vec<String>,
) -> String {
    let mine: Vec<&Cell> = cells.iter().filter(|c| c.test == test).collect();
    if mine.is_empty() {
        return String::new();
    }
    let mut s = format!("\n{:<8} {:<14}", "test", "contender");
    for (head, w) in cols {
        s += &format!(" {head:>w$}");
    }
    s.push('\n');
    for x in mine {
        s += &format!("{:<8} {:<14}", test, x.contender);
        for (v, (_, w)) in row(x, reference(cells, x)).iter().zip(cols) {
            s += &format!(" {v:>w$}");
        }
        s.push('\n');
    }
    s
}

/// A cell's rate ratio and CPU ratio (reference CPU over its own: above 1
/// means it costs less) to its reference, as the tables print them.
pub fn ratios(x: &Cell, vs: Option<(&Cell, f64)>) -> (String, String) {
    match vs {
        Some((o, r)) => (format!("{r:.2}x"), format!("{:.2}x", o.cpu / x.cpu)),
        None => ("-".into(), "-".into()),
    }
}

/// The contender a cell is compared with in the chart and `results.json`, and
/// the ratio: packet rates and latency against the read/write backend (`rw`),
/// AF_PACKET packet rates (`pkt-*`) against a plain socket (`rawsock`), AF_XDP
/// rates (`xdp-*`) against the AF_PACKET port;
/// tcp against `rw` with the same offloads, and the `rw` rows against `veth`.
/// Latency ratios are contender / reference of the median (below 1 = faster).
pub fn reference<'a>(cells: &'a [Cell], x: &Cell) -> Option<(&'a Cell, f64)> {
    let find = |c: &str| {
        cells
            .iter()
            .find(|y| y.test == x.test && y.contender == c && y.rate > 0.0)
    };
    let other = match x.unit {
        // The checksum's fast path: against the straightforward sum.
        Unit::Pps if x.test == "csum" => csum_twin(x.contender).and_then(find),
        // Packets dropped on another thread: against the pool's own thread.
        Unit::Pps if x.test == "handoff" && x.contender != "local" => find("local"),
        Unit::Pps if x.test == "handoff" => None,
        // Segments written vectored: against the application's copies.
        Unit::Pps if x.test == "seg" && x.contender != "seg-copy" => find("seg-copy"),
        Unit::Pps if x.test == "seg" => None,
        // AF_XDP tests: against the AF_PACKET port.
        Unit::Pps if x.test == "xdp-rx" && x.contender != "packet" => find("packet"),
        Unit::Pps if x.test.starts_with("xdp-") && x.contender != "packet-sendto" => {
            find("packet-sendto")
        }
        Unit::Pps if x.test.starts_with("xdp-") => None,
        // AF_PACKET tests: against a plain socket, one syscall per frame.
        Unit::Pps if x.test.starts_with("pkt-") && x.contender != "rawsock" => find("rawsock"),
        Unit::Pps if x.test.starts_with("pkt-") => None,
        Unit::Pps | Unit::Latency if x.contender != "rw" => find("rw"),
        Unit::Stream if x.contender != "recv" => find("recv"),
        Unit::Gbps => match TCP_CONTENDERS.iter().find(|t| t.name == x.contender)?.path {
            TcpPath::Veth | TcpPath::TunRs => None,
            TcpPath::Rtap {
                backend: BackendKind::Rw,
                ..
            } => find("veth"),
            TcpPath::Rtap { offload, .. } => find(if offload { "rw" } else { "rw-nooffload" }),
            TcpPath::Packet { uring: true, .. } => find("packet"),
            TcpPath::Packet { offload: true, .. } => find("packet-nooffload"),
            TcpPath::Packet { offload: false, .. } => find("veth"),
            // AF_XDP: against the AF_PACKET port with MTU-sized frames too.
            TcpPath::Xdp { .. } => find("packet-nooffload"),
            TcpPath::Tun { mt: Some(_), .. } => find("tun-vpn"),
            TcpPath::Tun { vpn: true, .. } => find("tun"),
            TcpPath::Tun {
                backend: BackendKind::Uring,
                offload: true,
                ..
            } => find("tun-rw"),
            TcpPath::Tun { offload: true, .. } => find("tun-nooffload"),
            TcpPath::Tun { offload: false, .. } => find("veth"),
        },
        _ => None,
    }?;
    Some((other, x.rate / other.rate))
}

/// The cells as a JSON array: packet-rate cells with `pps`, `cpu_ns_per_pkt` and
/// `sq_cpu_ns_per_pkt` (the SQPOLL thread's),
/// tcp cells with `gbit_per_s`, `fwd_cpu_load` and `host_cpu_load` (1.0 = one
/// core), lat cells with `p50_us`, `p99_us`, `p999_us`, `max_us`, `mean_us`,
/// `samples`, `lost` and `fwd_cpu_load`; each with `vs` (the contender it is
/// compared with, or null) and `ratio` (see [`reference`]).
pub fn to_json(cells: &[Cell]) -> Value {
    Value::Array(
        cells
            .iter()
            .map(|c| {
                let (vs, ratio) = match reference(cells, c) {
                    Some((o, r)) => (Some(o.contender), Some(r)),
                    None => (None, None),
                };
                let measured = match c.unit {
                    Unit::Pps => json!({
                        "pps": c.rate.max(0.0).round() as u64,
                        "cpu_ns_per_pkt": c.cpu,
                        "sq_cpu_ns_per_pkt": c.sq_cpu,
                    }),
                    Unit::Gbps => json!({
                        "gbit_per_s": c.rate,
                        "fwd_cpu_load": c.cpu,
                        "host_cpu_load": c.host_cpu,
                    }),
                    Unit::Stream => json!({
                        "gbit_per_s": c.rate,
                        "rx_cpu_s_per_gb": c.cpu,
                        "host_cpu_s_per_gb": c.host_cpu,
                    }),
                    Unit::Latency => {
                        let l = c.lat.unwrap_or_default();
                        json!({
                            "p50_us": l.p50_us,
                            "p99_us": l.p99_us,
                            "p999_us": l.p999_us,
                            "max_us": l.max_us,
                            "mean_us": l.mean_us,
                            "samples": l.samples,
                            "lost": l.lost,
                            "fwd_cpu_load": c.cpu,
                        })
                    }
                };
                let mut j = serde_json::Map::new();
                j.insert("test".into(), c.test.into());
                j.insert("contender".into(), c.contender.into());
                if let Value::Object(m) = measured {
                    j.extend(m);
                }
                j.insert("vs".into(), json!(vs));
                j.insert("ratio".into(), json!(ratio));
                Value::Object(j)
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

/// Writes `results.json` (machine, options and every cell with its ratio) into
/// `dir`, creating it; returns its path and the machine it describes.
pub fn write_out(
    dir: &std::path::Path,
    cells: &[Cell],
    quick: bool,
) -> Result<(std::path::PathBuf, Machine)> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let m = Machine::probe();
    let results = json!({"tool": "rtap bench",
"version": env!("CARGO_PKG_VERSION"),
"unix_time": unix_now(),
"quick": quick,
"machine": json!({"cpus": m.cpus,
"cpu_model": m.cpu_model.as_str(),
"kernel": m.kernel.as_str(),
"mem_gib": m.mem_gib}),
"cells": to_json(cells)});
    let jp = dir.join("results.json");
    std::fs::write(&jp, format!("{results}\n"))
        .with_context(|| format!("write {}", jp.display()))?;
    Ok((jp, m))
}
