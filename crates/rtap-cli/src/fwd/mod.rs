//! `rtap fwd`: forwarding between two ports (or back out of one), testpmd style.
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

//!
//! - `options.rs`: [`FwdOpts`], modes, idle behaviour.
//! - `worker.rs`: the worker threads and their per-round pass.
//! - `report.rs`: what a run did (summary, table, JSON).
//! - `gen.rs`: txonly / flowgen generation; `responder.rs`: icmpecho (pure);
//!   `live.rs`: `--stats-period` rates.

use anyhow::{anyhow, bail, Context, Result};
mod gen;
pub mod live;
mod options;
mod report;
pub mod responder;
mod worker;

use std::time::Duration;

use clap::{Args, ValueEnum};
use rtap::{parse_port_spec, Port};

use crate::common::{cpu, seconds, signal};
pub use options::{FwdMode, FwdOpts, Idle};
pub use report::FwdReport;
pub use worker::run;

pub const HELP: &str = "\
Examples:
  rtap fwd --port tap:iface=tap0 --port tap:iface=tap1
  rtap fwd --port tap:iface=tap0,queues=2 --port tap:iface=tap1,queues=2 --threads 1 --stats-period 1
  rtap fwd --port tap:iface=tap0,backend=rw        # one port: frames go back out of it
  rtap fwd --port packet:iface=veth0 --port tap:iface=tap1  # AF_PACKET rings on an existing interface";

pub const LONG_HELP: &str = "\
Port spec:
  tap:iface=NAME[,queues=N][,persist][,attach][,backend=uring|rw][,ring=SIZE]
     [,burst=N][,sqpoll=IDLE_MS][,sqpoll_cpu=C]
  The interface is created unless `attach` is given; it is deleted on exit unless
  `persist` is given or it existed before.
  packet:iface=NAME[,queues=N][,fanout=hash|lb|cpu|rollover|rnd|qm][,frame_size=N]
     [,frames=N][,block_size=N][,tpacket=2|3][,block_timeout=MS][,qdisc_bypass=on|off]
     [,kick=sendto|uring][,sq_size=N][,sqpoll_idle=MS][,sqpoll_cpu=C][,offload=on|off]
  An existing interface through AF_PACKET mmap rings; queues are sockets of one
  fanout group. Its link is left as found (brought up if it was down, and down
  again on exit). The kick sends a burst: sendto (one syscall per burst, the
  default) or uring (an io_uring send from an SQPOLL kernel thread shared by every
  port: the transmit work moves to that thread, which spins a core of its own).
  Every kind also takes netns=NAME, mtu=N, mac=ADDR, promisc=on|off, burst=N.
  Both ports need the same queue count; kinds mix freely.

Output (--json): one object
  mode               \"io\"
  elapsed_s          seconds the forwarder ran
  queue_pairs        queue pairs forwarded
  threads            worker threads (--threads; default one per queue pair)
  workers[]          per worker: worker, queues (the pairs it served), cpu (pinned
                     CPU read back from its affinity mask, or null), cpu_s, rounds,
                     pool_capacity, pool_available (buffers back in its pool once
                     its queues closed: all of them unless buffers leaked)
  forwarded_packets  packets sent over all ports
  forwarded_bytes    bytes sent over all ports
  forwarded_pps      forwarded_packets / elapsed_s
  dropped_packets    packets the forwarder dropped because a tx queue refused them
  rx_lro_packets     coalesced (GRO/LRO, larger than the MTU) frames received, all ports
  worker_cpu_s       CPU time of the worker threads (busy-polling: about elapsed_s each)
  rounds             polling rounds of the workers (an rx burst on each port)
  empty_rounds       rounds that found nothing to forward
  ports[]            per port: port, kind (tap, packet), name, ifindex, backend
                     (uring or rw; for a packet port: its kick), queues, rx_packets,
                     rx_bytes, rx_errors, rx_nombuf, imissed, tx_packets, tx_bytes,
                     tx_errors, fwd_dropped, offloads (accepted: csum,tso4,... or
                     none), rx_lro_packets (the rx_q*_lro_packets xstats, summed)

Live statistics (--stats-period SECS): every period, a row per port with rx_pps,
rx_Mbit/s, tx_pps, tx_Mbit/s, drops (imissed + rx nombuf + fwd_dropped) and errors
over that period, and pool_used (buffers out of the workers' pools: in queues,
in flight, in bursts); with --json one line per period instead:
  {\"event\":\"stats\",\"t_s\":..,\"pool_in_use\":..,\"pool_capacity\":..,
   \"ports\":[{port, name, rx_pps, rx_mbit_per_s, tx_pps, tx_mbit_per_s, drops,
   errors, rx_packets, tx_packets, drops_total, errors_total}]}
The final report follows as the last line.

Examples:
  rtap fwd --port tap:iface=tap0 --port tap:iface=tap1
  rtap fwd --port tap:iface=tap0,queues=2 --port tap:iface=tap1,queues=2 --duration 10 --json
  rtap fwd --port tap:iface=tap0,queues=4 --port tap:iface=tap1,queues=4 --threads 2 --cpus 0,1
  rtap fwd --port tap:iface=tap0 --port tap:iface=tap1 --stats-period 1
  rtap fwd --port tap:iface=tap0,backend=rw        # one port: frames go back out of it";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Received packets are sent unchanged (no copy, no header rewrite)
    Io,
    /// Source MAC set to the out port's, destination to --peer-mac
    Mac,
    /// Source and destination MAC swapped, sent back out of the same port
    Macswap,
    /// Received and counted, then dropped
    Rxonly,
    /// Generate UDP/IPv4 frames (--pkt-size, --count, --rate, --burst) on the first port
    Txonly,
    /// Like txonly across --flows source addresses and ports
    Flowgen,
    /// Answer ARP/neighbour discovery and ICMP/ICMPv6 echo for --ip, so ping works
    Icmpecho,
    /// TUN ports: split each packet into MTU-sized ones and merge them again
    /// before sending (a VPN's data path without the crypto)
    Vpn,
}

#[derive(Args, Debug)]
pub struct FwdArgs {
    /// Port spec (tap:iface=NAME,...); give it twice to forward between two ports
    #[arg(long = "port", value_name = "SPEC", required = true)]
    ports: Vec<String>,
    /// Forwarding mode
    #[arg(long, value_enum, default_value_t = Mode::Io)]
    mode: Mode,
    /// Destination MAC written by --mode mac (and by txonly/flowgen: default
    /// 02:00:00:00:00:00, a unicast address no host has, so the receiving
    /// kernel drops the frames at once; ff:ff:ff:ff:ff:ff for broadcast)
    #[arg(long, value_name = "MAC")]
    peer_mac: Option<String>,
    /// txonly/flowgen: frame size in bytes, Ethernet header included
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    pkt_size: usize,
    /// txonly/flowgen: stop after N frames
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// txonly/flowgen: at most PPS frames per second
    #[arg(long, value_name = "PPS")]
    rate: Option<u64>,
    /// flowgen: number of flows
    #[arg(long, value_name = "N", default_value_t = 16)]
    flows: u16,
    /// icmpecho: address to answer for (IPv4 and/or IPv6; give it twice for both)
    #[arg(long = "ip", value_name = "ADDR")]
    ips: Vec<std::net::IpAddr>,
    /// Stop after SECS seconds (default: run until SIGINT/SIGTERM)
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Print the final report as one JSON object
    #[arg(long)]
    json: bool,
    /// Most packets per rx burst [default: the first port's burst=, 32]
    #[arg(long, value_name = "N")]
    burst: Option<u16>,
    /// Buffers in each worker's pool [default: enough for both ports' rings, at least 4096]
    #[arg(long, value_name = "N")]
    pool: Option<u32>,
    /// Retries of a partially refused tx burst before the rest is dropped and counted
    #[arg(long, value_name = "N", default_value_t = 64)]
    tx_retries: u32,
    /// Print extended per-queue statistics at the end (non-zero ones in the table;
    /// all of them under "xstats" with --json)
    #[arg(long)]
    xstats: bool,
    /// What a worker does when idle: spin (busy-poll), yield[:ROUNDS] (sched_yield
    /// after ROUNDS empty rounds, default 64), sleep[:US[:ROUNDS]] (sleep US µs,
    /// default 50, after ROUNDS empty rounds), interrupt[:ROUNDS] (after ROUNDS empty
    /// rounds, sleep on the rx queues' interrupt fds until a frame arrives)
    #[arg(long, value_name = "MODE", default_value = "spin", value_parser = Idle::parse)]
    idle: Idle,
    /// poll (busy-poll, the default) or interrupt (sleep on the rx queues'
    /// interrupt fds when idle); shorthand for --idle spin / --idle interrupt
    #[arg(long, value_name = "MODE", value_parser = ["poll", "interrupt"], conflicts_with = "idle")]
    wait: Option<String>,
    /// Pinned worker threads; worker W serves queue pairs W, W+N, W+2N, ... and runs
    /// on the W-th usable CPU (or of --cpus) [default: one unpinned worker per
    /// queue pair]
    #[arg(long, value_name = "N")]
    threads: Option<u16>,
    /// Pin worker W to the W-th CPU of this list (wrapping), e.g. 0,1 or 2-5
    /// [default with --threads: the CPUs this process may use]
    #[arg(long, value_name = "LIST")]
    cpus: Option<String>,
    /// Print each port's rx/tx pps, Mbit/s, drops and errors every SECS seconds
    /// (a table; JSON lines with --json), then the summary at the end
    #[arg(long, value_name = "SECS")]
    stats_period: Option<f64>,
    /// Serve the port to other processes on this Unix socket (a path, created
    /// mode 0600, or @name); give it once per port, in --port order. They
    /// attach with `--port shared:path=PATH,queues=LIST`
    #[arg(long, value_name = "PATH", requires = "serve_queues")]
    serve: Vec<String>,
    /// Queue pairs the workers leave to attached processes, e.g. 1 or 2-3
    /// (with --serve)
    #[arg(long, value_name = "LIST")]
    serve_queues: Option<String>,
    /// Users (besides this process's own and root) allowed to attach to --serve
    #[arg(long, value_name = "UID", value_delimiter = ',')]
    serve_uid: Vec<u32>,
}

/// Prints each port's link events until `done`: a line each, JSON with `json`.
fn print_link_events(
    mut watchers: Vec<(String, rtap::LinkWatcher)>,
    done: &std::sync::atomic::AtomicBool,
    json: bool,
) {
    let mut events = Vec::new();
    while !done.load(std::sync::atomic::Ordering::Relaxed) {
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
                    let j = serde_json::json!({"event": "link",
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

pub fn cmd(a: FwdArgs) -> Result<()> {
    let peer = match a.peer_mac.as_deref() {
        Some(s) => Some(s.parse::<rtap::MacAddr>().context("--peer-mac")?.octets()),
        None => None,
    };
    let mode = match a.mode {
        Mode::Io | Mode::Txonly | Mode::Flowgen => FwdMode::Io,
        Mode::Macswap => FwdMode::MacSwap,
        Mode::Rxonly => FwdMode::RxOnly,
        Mode::Vpn => FwdMode::Vpn,
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
    };
    if a.ports.len() > 2 {
        return Err(anyhow!(
            "fwd takes one or two --port, got {}",
            a.ports.len()
        ));
    }
    let cfgs = a
        .ports
        .iter()
        .map(|s| parse_port_spec(s))
        .collect::<Result<Vec<_>, _>>()?;
    if let [x, y] = &cfgs[..] {
        if x.options().queues != y.options().queues {
            return Err(anyhow!(
                "the ports have different queue counts ({} and {}): give both the same queues=N",
                x.options().queues,
                y.options().queues
            ));
        }
    }
    let duration = a.duration.map(|d| seconds("--duration", d)).transpose()?;
    if a.burst == Some(0) {
        bail!("--burst must be at least 1");
    }
    let stats_period = a
        .stats_period
        .map(|d| seconds("--stats-period", d))
        .transpose()?;
    if let Some(t) = a.threads {
        if t == 0 || t > cfgs[0].options().queues {
            return Err(anyhow!(
                "--threads {t}: give 1 to {} (the ports have {} queue pair(s))",
                cfgs[0].options().queues,
                cfgs[0].options().queues
            ));
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
    if a.serve.len() > a.ports.len() {
        bail!(
            "--serve given {} times for {} port(s): once per port",
            a.serve.len(),
            a.ports.len()
        );
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
    let opts = FwdOpts {
        skip_queues,
        mode,
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
    };

    let mut ports = Vec::new();
    for (spec, cfg) in a.ports.iter().zip(cfgs) {
        let mut p = Port::open(cfg).with_context(|| format!("open {spec}"))?;
        if let Some(why) = p.engine_reason() {
            tracing::warn!(port = %spec, "engine changed: {why}");
        }
        p.start().with_context(|| format!("start {spec}"))?;
        ports.push(p);
    }
    if ports
        .iter()
        .any(|p| p.link_layer() == rtap::wire::layout::Link::Ip)
        && !matches!(a.mode, Mode::Io | Mode::Rxonly | Mode::Vpn)
    {
        bail!(
            "--mode {} works on Ethernet frames; a tun port carries IP packets: use --mode io, vpn or rxonly",
            format!("{:?}", a.mode).to_lowercase()
        );
    }
    if a.mode == Mode::Vpn
        && ports
            .iter()
            .any(|p| p.link_layer() != rtap::wire::layout::Link::Ip)
    {
        bail!("--mode vpn splits and merges IP packets: give tun ports");
    }
    let mut servers = Vec::new();
    for (path, p) in a.serve.iter().zip(&ports) {
        let mut cfg = rtap::share::ServeConfig::new(path);
        let mut uids = cfg.uids.clone();
        uids.extend(&a.serve_uid);
        cfg = cfg.uids(&uids);
        let srv = p
            .serve(cfg)
            .with_context(|| format!("serve {} on {path}", p.name()))?;
        eprintln!(
            "rtap fwd: serving {} on {path} (queues {} left to attached processes)",
            p.name(),
            a.serve_queues.as_deref().unwrap_or("")
        );
        servers.push(srv);
    }
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
        match duration {
            Some(d) => format!(" for {:.1} s", d.as_secs_f64()),
            None => ": Ctrl-C to stop".into(),
        }
    );

    if matches!(a.mode, Mode::Txonly | Mode::Flowgen) {
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
            duration,
        };
        let mut live = stats_period.map(|p| live::Live::new(&ports, p, a.json));
        let r = gen::run(&ports[0], &g, name, &signal::STOP, live.as_mut());
        drop(live);
        for p in &mut ports {
            let _ = p.stop();
        }
        let r = r?;
        if a.json {
            println!("{}", r.to_json());
        } else {
            print!("{}", r.summary());
        }
        return Ok(());
    }

    // Link events are printed as they happen, from a watcher thread.
    let watchers = ports
        .iter()
        .map(|p| p.link_events().map(|w| (p.name(), w)))
        .collect::<Result<Vec<_>, _>>()
        .context("link events")?;
    let fwd_done = std::sync::atomic::AtomicBool::new(false);
    let report = std::thread::scope(|s| {
        s.spawn(|| print_link_events(watchers, &fwd_done, a.json));
        // A port that vanishes mid-run ends it, but the counters so far are
        // still printed (the error comes after them).
        let r = worker::run_to_end(&ports, &opts, &signal::STOP);
        fwd_done.store(true, std::sync::atomic::Ordering::Relaxed);
        r
    });
    // Attached processes are let go before the ports stop.
    let served: Vec<serde_json::Value> = servers
        .iter()
        .map(|s| {
            let st = s.stats();
            serde_json::json!({"socket": s.name(), "attached": st.attached,
                "released": st.released, "refused": st.refused, "rejected": st.rejected,
                "last_error": st.last_error})
        })
        .collect();
    drop(servers);
    // Read before stop: the queues are gone, the counters stay with the port.
    let xstats: Vec<(String, Vec<rtap::XStat>)> = if a.xstats {
        ports.iter().map(|p| (p.name(), p.xstats())).collect()
    } else {
        Vec::new()
    };
    for p in &mut ports {
        if let Err(e) = p.stop() {
            tracing::warn!("stop {}: {e}", p.name());
        }
    }
    drop(ports);
    let report = report?;
    if a.json {
        let mut j = report.to_json();
        if a.xstats {
            let per_port: serde_json::Map<String, serde_json::Value> = xstats
                .iter()
                .map(|(name, xs)| {
                    let o: serde_json::Map<String, serde_json::Value> = xs
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
    } else {
        print!("{}", report.summary());
        for (name, xs) in &xstats {
            println!("xstats {name}:");
            for x in xs.iter().filter(|x| x.value != 0) {
                println!("  {:<32} {:>14}", x.name, x.value);
            }
        }
    }
    match report.error {
        Some(e) => Err(anyhow!("forwarding stopped: {e}")),
        None => Ok(()),
    }
}
