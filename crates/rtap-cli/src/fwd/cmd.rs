//! The `rtap fwd` command: arguments checked into [`FwdOpts`], ports opened
//! (and served), then generation or forwarding until stopped, and the report.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rtap::share::Server;
use rtap::wire::layout::Link;
use rtap::{parse_port_spec, Port, PortSpec};
use serde_json::{json, Map, Value};

use super::{gen, live, worker, FwdArgs, FwdMode, FwdOpts, FwdReport, Idle, Mode, MtDriveArg};
use crate::common::{cpu, seconds, signal};

pub fn cmd(a: FwdArgs) -> Result<()> {
    let peer = match a.peer_mac.as_deref() {
        Some(s) => Some(s.parse::<rtap::MacAddr>().context("--peer-mac")?.octets()),
        None => None,
    };
    let cfgs = port_specs(&a)?;
    let opts = options(&a, &cfgs, peer)?;
    let ports = open_ports(&a, cfgs)?;
    let servers = serve(&a, &ports)?;
    announce(&ports, &opts);
    if matches!(a.mode, Mode::Txonly | Mode::Flowgen) {
        return generate(&a, &ports, &opts, peer);
    }
    forward(&a, ports, &opts, servers)
}

/// What happens to each received packet.
fn fwd_mode(a: &FwdArgs, peer: Option<[u8; 6]>) -> Result<FwdMode> {
    Ok(match a.mode {
        Mode::Io | Mode::Txonly | Mode::Flowgen => FwdMode::Io,
        Mode::Macswap => FwdMode::MacSwap,
        Mode::Rxonly => FwdMode::RxOnly,
        Mode::Vpn => FwdMode::Vpn,
        Mode::VpnMt => FwdMode::VpnMt,
        Mode::Icmpecho => {
            let ipv4 = a.ips.iter().find_map(|ip| match ip {
                std::net::IpAddr::V4(v) => Some(*v),
                _ => None,
            });
            let ipv6 = a.ips.iter().find_map(|ip| match ip {
                std::net::IpAddr::V6(v) => Some(*v),
                _ => None,
            });
            if ipv4.is_none() && ipv6.is_none() {
                bail!("--mode icmpecho needs --ip ADDR");
            }
            FwdMode::IcmpEcho { ipv4, ipv6 }
        }
        Mode::Mac => FwdMode::Mac {
            peer: peer.context("--mode mac needs --peer-mac XX:XX:XX:XX:XX:XX")?,
        },
    })
}

/// The ports' specs: one or two, with the same queue count.
fn port_specs(a: &FwdArgs) -> Result<Vec<PortSpec>> {
    if a.ports.len() > 2 {
        bail!("fwd takes one or two --port, got {}", a.ports.len());
    }
    let cfgs = a
        .ports
        .iter()
        .map(|s| parse_port_spec(s))
        .collect::<Result<Vec<_>, _>>()?;
    if let [x, y] = &cfgs[..] {
        if x.options().queues != y.options().queues {
            bail!(
                "the ports have different queue counts ({} and {}): give both the same queues=N",
                x.options().queues,
                y.options().queues
            );
        }
    }
    if a.serve.len() > a.ports.len() {
        bail!(
            "--serve given {} times for {} port(s): once per port",
            a.serve.len(),
            a.ports.len()
        );
    }
    Ok(cfgs)
}

/// The forwarder's options from the arguments, each checked.
fn options(a: &FwdArgs, cfgs: &[PortSpec], peer: Option<[u8; 6]>) -> Result<FwdOpts> {
    let queues = cfgs[0].options().queues;
    let duration = a.duration.map(|d| seconds("--duration", d)).transpose()?;
    if a.burst == Some(0) {
        bail!("--burst must be at least 1");
    }
    let stats_period = a
        .stats_period
        .map(|d| seconds("--stats-period", d))
        .transpose()?;
    if let Some(t) = a.threads {
        if t == 0 || t > queues {
            bail!("--threads {t}: give 1 to {queues} (the ports have {queues} queue pair(s))");
        }
    }
    let cpus = match (a.cpus.as_deref(), a.threads) {
        (Some(l), _) => cpu::parse_list(l).context("--cpus")?,
        // --threads alone: pinned workers, on the CPUs this process may use, in order.
        (None, Some(_)) => cpu::allowed().context("sched_getaffinity")?,
        (None, None) => Vec::new(),
    };
    if !cpus.is_empty() {
        cpu::check_usable(&cpus).context("--cpus")?;
    }
    let skip_queues = match &a.serve_queues {
        Some(l) => {
            match rtap::share::parse_queue_sel(l).map_err(|e| anyhow!("--serve-queues: {e}"))? {
                rtap::share::QueueSel::List(l) => l,
                _ => bail!("--serve-queues: name the queues (e.g. 1 or 2-3), not all"),
            }
        }
        None => Vec::new(),
    };
    if a.mt_drive != MtDriveArg::Thread && a.mode != Mode::VpnMt {
        bail!("--mt-drive applies to --mode vpn-mt only");
    }
    Ok(FwdOpts {
        mt_drive: match a.mt_drive {
            MtDriveArg::Thread => rtap::mt::MtDrive::Thread,
            MtDriveArg::Tasks => rtap::mt::MtDrive::Tasks,
        },
        skip_queues,
        mode: fwd_mode(a, peer)?,
        threads: a.threads,
        cpus,
        stats_period,
        stats_json: a.json,
        burst: a.burst.unwrap_or(cfgs[0].options().burst) as usize,
        pool_size: a.pool,
        duration,
        tx_retries: a.tx_retries,
        idle: match a.wait.as_deref() {
            Some("interrupt") => Idle::Interrupt { after: Idle::AFTER },
            Some(_) => Idle::Spin,
            None => a.idle,
        },
    })
}

/// Opens and starts the ports, and checks the mode suits their link layer.
fn open_ports(a: &FwdArgs, cfgs: Vec<PortSpec>) -> Result<Vec<Arc<Port>>> {
    let mut ports = Vec::new();
    for (spec, cfg) in a.ports.iter().zip(cfgs) {
        let p = Port::open(cfg).with_context(|| format!("open {spec}"))?;
        if let Some(why) = p.engine_reason() {
            tracing::warn!(port = %spec, "engine changed: {why}");
        }
        p.start().with_context(|| format!("start {spec}"))?;
        ports.push(Arc::new(p));
    }
    let ip = |p: &Arc<Port>| p.link_layer() == Link::Ip;
    let vpn = matches!(a.mode, Mode::Vpn | Mode::VpnMt);
    if ports.iter().any(ip) && !vpn && !matches!(a.mode, Mode::Io | Mode::Rxonly) {
        bail!(
            "--mode {} works on Ethernet frames; a tun port carries IP packets: use --mode io, vpn or rxonly",
            format!("{:?}", a.mode).to_lowercase()
        );
    }
    if vpn && !ports.iter().all(ip) {
        bail!("--mode vpn splits and merges IP packets: give tun ports");
    }
    if a.mode == Mode::VpnMt && ports.len() != 2 {
        bail!("--mode vpn-mt forwards between two tun ports: give --port twice");
    }
    Ok(ports)
}

/// Serves the ports `--serve` names to other processes.
fn serve(a: &FwdArgs, ports: &[Arc<Port>]) -> Result<Vec<Server>> {
    let mut servers = Vec::new();
    for (path, p) in a.serve.iter().zip(ports) {
        let cfg = rtap::share::ServeConfig::new(path);
        let uids: Vec<u32> = cfg.uids.iter().chain(&a.serve_uid).copied().collect();
        let srv = p
            .serve(cfg.uids(&uids))
            .with_context(|| format!("serve {} on {path}", p.name()))?;
        eprintln!(
            "rtap fwd: serving {} on {path} (queues {} left to attached processes)",
            p.name(),
            a.serve_queues.as_deref().unwrap_or("")
        );
        servers.push(srv);
    }
    Ok(servers)
}

/// One line on stderr saying what runs.
fn announce(ports: &[Arc<Port>], opts: &FwdOpts) {
    let names: Vec<String> = ports.iter().map(|p| p.name()).collect();
    eprintln!(
        "rtap fwd: {} ({} queue pair(s), {} worker(s){}, {} mode, burst {}){}",
        if names.len() == 2 {
            format!("{} <-> {}", names[0], names[1])
        } else {
            format!("{} -> {}", names[0], names[0])
        },
        ports[0].queue_count(),
        opts.threads.unwrap_or(ports[0].queue_count()),
        if opts.cpus.is_empty() {
            String::new()
        } else {
            format!(" on CPUs {}", cpu::fmt_list(&opts.cpus))
        },
        opts.mode.name(),
        opts.burst,
        match opts.duration {
            Some(d) => format!(" for {:.1} s", d.as_secs_f64()),
            None => ": Ctrl-C to stop".into(),
        }
    );
}

/// txonly / flowgen on the first port until the count, the duration or a signal.
fn generate(a: &FwdArgs, ports: &[Arc<Port>], opts: &FwdOpts, peer: Option<[u8; 6]>) -> Result<()> {
    let (name, flows) = match a.mode {
        Mode::Flowgen => ("flowgen", a.flows.max(1)),
        _ => ("txonly", 1),
    };
    let g = gen::GenOpts {
        pkt_size: a.pkt_size,
        count: a.count,
        rate: a.rate,
        burst: opts.burst,
        flows,
        dst_mac: peer.unwrap_or([0x02, 0, 0, 0, 0, 0]),
        duration: opts.duration,
    };
    let mut live = opts.stats_period.map(|p| live::Live::new(ports, p, a.json));
    let r = gen::run(&ports[0], &g, name, &signal::STOP, live.as_mut());
    drop(live);
    for p in ports.iter() {
        let _ = p.stop();
    }
    let r = r?;
    if a.json {
        println!("{}", r.to_json());
    } else {
        print!("{}", r.summary());
    }
    Ok(())
}

/// Forwards until stopped, lets attached processes go, stops the ports and
/// prints the report (its error, if a port vanished, comes after it).
fn forward(a: &FwdArgs, ports: Vec<Arc<Port>>, opts: &FwdOpts, servers: Vec<Server>) -> Result<()> {
    // Link events are printed as they happen, from a watcher thread.
    let watchers = ports
        .iter()
        .map(|p| p.link_events().map(|w| (p.name(), w)))
        .collect::<Result<Vec<_>, _>>()
        .context("link events")?;
    let (fwd_done, ready) = (AtomicBool::new(false), AtomicBool::new(false));
    let report = std::thread::scope(|s| {
        s.spawn(|| print_link_events(watchers, &fwd_done, a.json));
        // One line once every worker forwards: what a script waits for
        // before it sends.
        s.spawn(|| {
            while !fwd_done.load(Ordering::Relaxed) {
                if ready.load(Ordering::Acquire) {
                    eprintln!("rtap fwd: forwarding");
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        // A port that vanishes mid-run ends it, but the counters so far are
        // still printed (the error comes after them).
        let r = worker::run_to_end(&ports, opts, &signal::STOP, &ready);
        fwd_done.store(true, Ordering::Relaxed);
        r
    });
    // Attached processes are let go before the ports stop.
    let served: Vec<Value> = servers.iter().map(served_json).collect();
    drop(servers);
    // Read before stop: the queues are gone, the counters stay with the port.
    let xstats: Vec<(String, Vec<rtap::XStat>)> = if a.xstats {
        ports.iter().map(|p| (p.name(), p.xstats())).collect()
    } else {
        Vec::new()
    };
    for p in &ports {
        if let Err(e) = p.stop() {
            tracing::warn!("stop {}: {e}", p.name());
        }
    }
    drop(ports);
    let report = report?;
    print_report(a, &report, &xstats, served);
    match report.error {
        Some(e) => Err(anyhow!("forwarding stopped: {e}")),
        None => Ok(()),
    }
}

/// What a server did, for the JSON report.
fn served_json(s: &Server) -> Value {
    let st = s.stats();
    json!({"socket": s.name(), "attached": st.attached, "released": st.released,
        "refused": st.refused, "rejected": st.rejected, "dropped": st.dropped,
        "last_error": st.last_error})
}

/// The report as JSON (with xstats and servers if any) or a summary.
fn print_report(
    a: &FwdArgs,
    report: &FwdReport,
    xstats: &[(String, Vec<rtap::XStat>)],
    served: Vec<Value>,
) {
    if !a.json {
        print!("{}", report.summary());
        for (name, xs) in xstats {
            println!("xstats {name}:");
            for x in xs.iter().filter(|x| x.value != 0) {
                println!("  {:<32} {:>14}", x.name, x.value);
            }
        }
        return;
    }
    let mut j = report.to_json();
    if a.xstats {
        let per_port: Map<String, Value> = xstats
            .iter()
            .map(|(name, xs)| {
                let o: Map<String, Value> = xs
                    .iter()
                    .map(|x| (x.name.clone(), x.value.into()))
                    .collect();
                (name.clone(), o.into())
            })
            .collect();
        j["xstats"] = per_port.into();
    }
    if !served.is_empty() {
        j["served"] = served.into();
    }
    println!("{j}");
}

/// Prints each port's link events until `done`: a line each, JSON with `json`.
fn print_link_events(
    mut watchers: Vec<(String, rtap::LinkWatcher)>,
    done: &AtomicBool,
    json: bool,
) {
    let mut events = Vec::new();
    while !done.load(Ordering::Relaxed) {
        for (name, w) in watchers.iter_mut() {
            w.wait(Duration::from_millis(50));
            events.clear();
            if let Err(e) = w.poll(&mut events) {
                tracing::warn!("link events of {name}: {e}");
            }
            for ev in &events {
                let (kind, detail) = match ev {
                    rtap::LinkEvent::Up => ("up", String::new()),
                    rtap::LinkEvent::Down => ("down", String::new()),
                    rtap::LinkEvent::Mtu(m) => ("mtu", m.to_string()),
                    rtap::LinkEvent::Mac(m) => ("mac", m.to_string()),
                    rtap::LinkEvent::Renamed(n) => ("renamed", n.clone()),
                    rtap::LinkEvent::Deleted => ("deleted", String::new()),
                };
                if json {
                    let j = json!({"event": "link",
"port": name.as_str(),
"change": kind,
"value": detail.as_str()});
                    println!("{j}");
                } else {
                    eprintln!("link {name}: {kind} {detail}");
                }
            }
        }
    }
}
