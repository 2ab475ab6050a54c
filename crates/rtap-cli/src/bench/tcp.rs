//! The TCP test: a content-verified bulk transfer between two namespaces through
//! the forwarder (or a bare veth pair), with CPU accounting; also the path setup
//! the latency test reuses.

use anyhow::{anyhow, Result};
use std::time::{Duration, Instant};

use rtap::Port;

use super::contenders::{TcpContender, TcpPath, TCP_CONTENDERS, TCP_NS_PREFIX, TCP_ROUND};
use super::results::{Cell, Unit};
use super::{chosen, interrupted, median, BenchOpts};
use crate::common::cpu::{busy_cores, clk_tck, host_ticks, process_cpu_s};

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

/// What one transfer measured: Gbit/s, the machine's busy CPU and the part of it
/// not used by this process, both per wall second.
struct Traffic {
    gbps: f64,
    host_cpu: f64,
    other_cpu: f64,
}

/// A verified bulk transfer of `secs` from A to B, with the machine's CPU load.
fn tcp_traffic(
    a: &crate::common::netns::Netns,
    b: &crate::common::netns::Netns,
    secs: Duration,
    check: bool,
) -> Result<Traffic> {
    let (h0, p0, w0) = (host_ticks(), process_cpu_s(), Instant::now());
    let t = crate::traffic::bulk::run(
        a,
        b,
        crate::demo::ADDR_B,
        crate::traffic::bulk::Limit::Time(secs),
        check,
        &crate::common::signal::STOP,
        None,
    )?;
    let (h1, p1, wall) = (host_ticks(), process_cpu_s(), w0.elapsed().as_secs_f64());
    // A transfer the signal cut short is an interruption, not a failure (it
    // may have moved nothing yet).
    interrupted()?;
    if let Some(why) = t.problem() {
        return Err(anyhow!("tcp transfer failed: {why}"));
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
pub(super) struct PathRun<T> {
    pub traffic: T,
    /// Forwarder CPU per wall second (0 for veth).
    pub fwd_cpu: f64,
    /// Coalesced frames the forwarder received.
    pub lro: u64,
}

/// Runs `traffic(ns_a, ns_b)` over contender `c`'s path: two namespaces joined
/// by the rtap forwarder (with `c`'s backend, offloads and idle mode) or by a
/// veth pair.
pub(super) fn over_path<T: Send>(
    c: &TcpContender,
    opts: &BenchOpts,
    traffic: impl FnOnce(&crate::common::netns::Netns, &crate::common::netns::Netns) -> T + Send,
) -> Result<PathRun<T>> {
    match c.path {
        TcpPath::TunRs => {
            let (t, fwd_cpu) = super::tunrs::over(traffic)?;
            Ok(PathRun {
                traffic: t,
                fwd_cpu,
                lro: 0,
            })
        }
        TcpPath::Veth => {
            let (_, t) = crate::demo::with_veth(TCP_NS_PREFIX, traffic)?;
            Ok(PathRun {
                traffic: t,
                fwd_cpu: 0.0,
                lro: 0,
            })
        }
        TcpPath::Packet { .. } | TcpPath::Xdp { .. } => {
            let (kind, spec, uring) = match c.path {
                TcpPath::Packet { offload, uring } => (
                    crate::demo::Kind::Packet,
                    format!(
                        "kick={},offload={}",
                        if uring { "uring" } else { "sendto" },
                        if offload { "on" } else { "off" }
                    ),
                    uring,
                ),
                _ => {
                    let uring = matches!(c.path, TcpPath::Xdp { uring: true });
                    let kick = if uring { "uring" } else { "sendto" };
                    (crate::demo::Kind::Xdp, format!("kick={kick}"), uring)
                }
            };
            let check = |p: &Port| {
                if uring && !p.engine().uses_uring() {
                    return Err(anyhow!(
                        "{}: the uring kick fell back: {}",
                        c.name,
                        p.engine_reason().unwrap_or("")
                    ));
                }
                Ok(())
            };
            let j = crate::demo::with_forwarder(
                TCP_NS_PREFIX,
                kind,
                &spec,
                &crate::fwd::FwdOpts {
                    idle: opts.idle,
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
        TcpPath::Rtap { backend, offload }
        | TcpPath::Tun {
            backend, offload, ..
        } => {
            let kind = if matches!(c.path, TcpPath::Tun { .. }) {
                crate::demo::Kind::Tun
            } else {
                crate::demo::Kind::Tap
            };
            let mut spec = format!(
                "backend={backend},offload={}",
                if offload { "on" } else { "off" }
            );
            if !opts.port_opts.is_empty() {
                spec.push(',');
                spec.push_str(&opts.port_opts);
            }
            let check = |p: &Port| {
                if p.engine() != backend.into() {
                    return Err(anyhow!(
                        "{}: {backend} asked, {} given: {}",
                        c.name,
                        p.engine(),
                        p.engine_reason().unwrap_or("")
                    ));
                }
                if p.offloads().any_gso() != offload {
                    return Err(anyhow!(
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
                kind,
                &spec,
                &crate::fwd::FwdOpts {
                    idle,
                    mode: if matches!(c.path, TcpPath::Tun { mt: Some(_), .. }) {
                        crate::fwd::FwdMode::VpnMt
                    } else if matches!(c.path, TcpPath::Tun { vpn: true, .. }) {
                        crate::fwd::FwdMode::Vpn
                    } else {
                        crate::fwd::FwdMode::Io
                    },
                    mt_drive: match c.path {
                        TcpPath::Tun { mt: Some(d), .. } => d,
                        _ => rtap::mt::MtDrive::Thread,
                    },
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

fn bench_tcp(c: &TcpContender, secs: Duration, opts: &BenchOpts) -> Result<TcpRun> {
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

/// The tcp test: `rounds` rounds of [`TCP_ROUND`] per contender, interleaved;
/// each cell is the median round.
pub(super) fn run(
    opts: &BenchOpts,
    rounds: usize,
    progress: &mut impl FnMut(&str),
) -> Result<Vec<Cell>> {
    let who: Vec<&TcpContender> = TCP_CONTENDERS
        .iter()
        .filter(|c| chosen(opts, c.name) && (c.built() || opts.contenders.is_some()))
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
            sq_cpu: 0.0,
            host_cpu: median(r.iter().map(|x| x.host_cpu).collect()),
            lat: None,
        })
        .collect())
}
