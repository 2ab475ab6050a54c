//! `rtap`: a testpmd-like tool for the rtap packet I/O library.

mod bench;
mod bulk;
mod capture;
mod chart;
mod cpu;
mod demo;
mod fwd;
mod gen;
mod info;
mod json;
mod latency;
mod live;
mod netns;
mod ping;
mod responder;
mod signal;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use rtap::{parse_port_spec, Port};

const ROOT_HELP: &str = "\
Examples:
  rtap demo                                              # namespaces, ping and TCP through rtap
  rtap fwd --port tap:iface=tap0 --port tap:iface=tap1   # forward between two taps until Ctrl-C

Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more than warnings.";

const FWD_HELP: &str = "\
Examples:
  rtap fwd --port tap:iface=tap0 --port tap:iface=tap1
  rtap fwd --port tap:iface=tap0,queues=2 --port tap:iface=tap1,queues=2 --threads 1 --stats-period 1
  rtap fwd --port tap:iface=tap0,backend=rw        # one port: frames go back out of it";

const FWD_LONG_HELP: &str = "\
Port spec:
  tap:iface=NAME[,queues=N][,persist][,attach][,backend=uring|sync|rw][,ring=SIZE]
     [,burst=N][,sqpoll=IDLE_MS][,sqpoll_cpu=C]
  The interface is created unless `attach` is given; it is deleted on exit unless
  `persist` is given or it existed before. Both ports need the same queue count.

Output (--json): one object
  mode               \"io\"
  elapsed_s          seconds the forwarder ran
  queue_pairs        queue pairs forwarded
  threads            worker threads (--threads; default one per queue pair)
  workers[]          per worker: worker, queues (the pairs it served), cpu (pinned
                     CPU read back from its affinity mask, or null), cpu_s, rounds
  forwarded_packets  packets sent over all ports
  forwarded_bytes    bytes sent over all ports
  forwarded_pps      forwarded_packets / elapsed_s
  dropped_packets    packets the forwarder dropped because a tx queue refused them
  rx_lro_packets     coalesced (GRO/LRO, larger than the MTU) frames received, all ports
  worker_cpu_s       CPU time of the worker threads (busy-polling: about elapsed_s each)
  rounds             polling rounds of the workers (an rx burst on each port)
  empty_rounds       rounds that found nothing to forward
  ports[]            per port: port, name, ifindex, backend, queues, rx_packets,
                     rx_bytes, rx_errors, rx_nombuf, imissed, tx_packets, tx_bytes,
                     tx_errors, fwd_dropped, offloads (accepted: csum,tso4,... or
                     none), rx_lro_packets (the rx_q*_lro_packets xstats, summed)

Live statistics (--stats-period SECS): every period, a row per port with rx_pps,
rx_Mbit/s, tx_pps, tx_Mbit/s, drops (imissed + rx nombuf + fwd_dropped) and errors
over that period; with --json one line per period instead:
  {\"event\":\"stats\",\"t_s\":..,\"ports\":[{port, name, rx_pps, rx_mbit_per_s, tx_pps,
  tx_mbit_per_s, drops, errors, rx_packets, tx_packets, drops_total, errors_total}]}
The final report follows as the last line.

Examples:
  rtap fwd --port tap:iface=tap0 --port tap:iface=tap1
  rtap fwd --port tap:iface=tap0,queues=2 --port tap:iface=tap1,queues=2 --duration 10 --json
  rtap fwd --port tap:iface=tap0,queues=4 --port tap:iface=tap1,queues=4 --threads 2 --cpus 0,1
  rtap fwd --port tap:iface=tap0 --port tap:iface=tap1 --stats-period 1
  rtap fwd --port tap:iface=tap0,backend=rw        # one port: frames go back out of it";

const DEMO_HELP: &str = "\
Examples:
  rtap demo                       # 10 pings and a 3 s TCP transfer (needs root)
  rtap demo --bytes 1GiB --json   # exactly 1 GiB, every byte checked
  rtap demo --port-opts backend=rw,offload=off";

const DEMO_LONG_HELP: &str = "\
What it does:
  Creates network namespaces rtapdemo-a-PID and rtapdemo-b-PID, opens one rtap port
  in each (rtap-a 10.77.0.1/24, rtap-b 10.77.0.2/24), forwards between them with
  the io-mode forwarder (as `rtap fwd`), pings 10.77.0.2 from A over a raw ICMP
  socket (after one uncounted warm-up echo that resolves ARP), streams TCP from A
  to B for --seconds or exactly --bytes, then deletes everything. Exits non-zero
  if no ping reply came back, or the TCP transfer was not verified.

  The TCP payload is a deterministic pseudo-random stream (a 1 MiB table rotated
  differently on every lap, so it does not repeat within ~1 TiB); the receiver
  compares every byte with it. Verified = bytes received == bytes sent (== --bytes)
  and every byte matched. Ports ask for every offload unless offload=off is given:
  the kernel then hands the forwarder coalesced frames of up to 64 KiB.

Output (--json): one object
  ok           true if traffic flowed and the TCP transfer was verified
  error        why not, or null
  namespaces[] netns, iface, address of side A then B
  ping         sent, received, rtt_min_ms, rtt_avg_ms, rtt_max_ms
  tcp          seconds, bytes_requested (--bytes, or null), bytes_sent,
               bytes_received, bytes_checked, mismatch_at (stream offset of the
               first wrong byte, or null), gbit_per_s, verified, error
  fwd          the `rtap fwd --json` object (forwarded_packets, rx_lro_packets,
               worker_cpu_s, ports[] with offloads and rx_lro_packets, ...)

Examples:
  rtap demo                       # 10 pings and a 3 s TCP transfer (needs root)
  rtap demo --bytes 1GiB --json   # exactly 1 GiB, every byte checked
  rtap demo --seconds 10 --port-opts backend=rw,offload=off
  rtap demo --idle interrupt      # forwarder sleeps on rx interrupts when idle";

#[derive(Parser, Debug)]
#[command(
    name = "rtap",
    version,
    about = "Packet forwarding over Linux TAP interfaces with io_uring (testpmd-like)",
    after_help = ROOT_HELP
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Forward packets between two ports (or back out of one), zero copy
    #[command(after_help = FWD_HELP, after_long_help = FWD_LONG_HELP)]
    Fwd(FwdArgs),
    /// Two namespaces joined by rtap: ping and a TCP transfer through the forwarder
    #[command(after_help = DEMO_HELP, after_long_help = DEMO_LONG_HELP)]
    Demo(DemoArgs),
    /// The benchmark suite: 64-byte tx, rx-drain and io-forward pps, TCP Gbit/s and
    /// ping-pong latency through the forwarder; io_uring vs read/write (and veth)
    #[command(after_help = BENCH_HELP)]
    Bench(BenchArgs),
    /// What a port is and what the kernel offers it (backend, io_uring features, offloads)
    #[command(after_help = "Example:\n  rtap info --port tap:iface=tap0 --json")]
    Info(InfoArgs),
    /// Write received frames to a pcap file (opens in tcpdump and Wireshark)
    #[command(
        after_help = "Example:\n  rtap capture --port tap:iface=tap0 --write /tmp/tap0.pcap --count 100"
    )]
    Capture(CaptureArgs),
}

#[derive(Args, Debug)]
struct CaptureArgs {
    /// Port spec (tap:iface=NAME,...)
    #[arg(long, value_name = "SPEC")]
    port: String,
    /// The pcap file to write
    #[arg(long, value_name = "FILE.pcap")]
    write: String,
    /// Stop after N frames
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Stop after S seconds
    #[arg(long, value_name = "S")]
    duration: Option<f64>,
}

fn cmd_capture(a: CaptureArgs) -> Result<(), String> {
    let duration = a.duration.map(|d| seconds("--duration", d)).transpose()?;
    let r = capture::run(&a.port, &a.write, a.count, duration, &signal::STOP)?;
    println!(
        "captured {} frames ({} bytes) in {:.2} s to {}",
        r.frames,
        r.bytes,
        r.elapsed.as_secs_f64(),
        a.write
    );
    Ok(())
}

#[derive(Args, Debug)]
struct InfoArgs {
    /// Port spec (tap:iface=NAME,...); the tap is created if needed and removed
    /// again unless it exists already or `persist` is given
    #[arg(long, value_name = "SPEC")]
    port: String,
    /// Print one JSON object
    #[arg(long)]
    json: bool,
}

const BENCH_HELP: &str = "Examples:
  rtap bench --quick --out /tmp/bench   # about 20 s; writes results.json and bench.svg
  rtap bench --only rx --json           # one test, JSON cells
  rtap bench --only lat                 # ping-pong latency: uring, uring-interrupt, rw, veth

Tests and contenders (all in the same run, interleaved, each in its own namespaces):
  tx, rx, fwd  64-byte frames on one queue: uring (multishot rx), uring-posted (one
               read posted per buffer, DPDK net_rtap's design), uring-sqpoll, rw
               (read/write, DPDK net_tap's way). rx and fwd first fill the tap's
               queue from the kernel side, then time the drain, so the generator is
               not measured. Five repetitions, the median (one with --quick).
               (No interrupt or veth rows here: a drain never finds the queue
               empty, so interrupt mode would be busy-polling, and a veth has no
               port to drive; both run in tcp and lat.)
  tcp          a content-verified TCP bulk transfer from namespace A to B through a
               tap in each and the io-mode forwarder between them: uring, uring-
               interrupt (forwarder sleeps on rx interrupts when idle), rw, with
               offloads (64 KiB frames) and without (-nooffload); and a veth pair with
               no userspace at all (the kernel's ceiling). Five rounds of 2 s, median.
  lat          UDP ping-pong (64-byte frames, one request in flight) through the same
               path: p50/p99/p99.9/max round trip from an HDR histogram over 3 x 10000
               exchanges (2000 with --quick): uring, uring-interrupt, rw, veth.

Ratios are against the read/write backend; tcp: against rw with the same offloads,
offloads vs none, and vs veth. fwd cpu is the forwarder thread's CPU time per second,
host cpu the whole machine's (100 % = one core).

--out DIR writes results.json (machine, options, every cell with \"vs\" and \"ratio\")
and bench.svg (one panel per test, one bar per contender, value and ratio labelled).";

#[derive(Args, Debug)]
struct BenchArgs {
    /// Fewer frames, one repetition, one 2 s TCP round, 2000 round trips (under a minute)
    #[arg(long)]
    quick: bool,
    /// Run one test only
    #[arg(long, value_parser = ["tx", "rx", "fwd", "tcp", "lat"])]
    only: Option<String>,
    /// Only these contenders (comma-separated: uring,uring-posted,uring-sqpoll,rw;
    /// for tcp: uring,uring-interrupt,uring-nooffload,rw,rw-nooffload,veth; for lat:
    /// uring,uring-interrupt,rw,veth)
    #[arg(long, value_delimiter = ',')]
    contenders: Option<Vec<String>>,
    /// Print the cells as a JSON array instead of the table
    #[arg(long)]
    json: bool,
    /// Write results.json and bench.svg (a bar chart, ratios labelled) into DIR
    /// (created if missing)
    #[arg(long, value_name = "DIR")]
    out: Option<std::path::PathBuf>,
    /// tcp: only count the bytes, do not compare every byte with the sent pattern
    /// (the receiver's memcmp is otherwise part of the measured work)
    #[arg(long)]
    no_verify: bool,
    /// tcp and lat: what the busy-polling contenders' forwarder does when idle (as
    /// `rtap fwd --idle`; uring-interrupt always sleeps on rx interrupts)
    #[arg(long, value_name = "MODE", default_value = "spin", value_parser = fwd::Idle::parse)]
    idle: fwd::Idle,
    /// tcp: extra port spec keys for the rtap contenders, e.g. ring=512,burst=64
    /// (backend= and offload= are the contenders' own)
    #[arg(long, value_name = "KEYS", default_value = "")]
    port_opts: String,
}

fn cmd_bench(a: BenchArgs) -> Result<(), String> {
    let only = a.only.map(|s| match s.as_str() {
        "tx" => "tx",
        "rx" => "rx",
        "tcp" => "tcp",
        "lat" => "lat",
        _ => "fwd",
    });
    let cells = bench::run(
        bench::BenchOpts {
            quick: a.quick,
            only,
            contenders: a.contenders,
            no_verify: a.no_verify,
            idle: a.idle,
            port_opts: a.port_opts,
        },
        |line| eprintln!("{line}"),
    )?;
    if a.json {
        println!("{}", bench::json(&cells));
    } else {
        print!("{}", bench::table(&cells));
    }
    if let Some(dir) = &a.out {
        let (json, svg) = bench::write_out(dir, &cells, a.quick)?;
        eprintln!("wrote {} and {}", json.display(), svg.display());
    }
    Ok(())
}

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
}

#[derive(Args, Debug)]
struct FwdArgs {
    /// Port spec (tap:iface=NAME,...); give it twice to forward between two ports
    #[arg(long = "port", value_name = "SPEC", required = true)]
    ports: Vec<String>,
    /// Forwarding mode
    #[arg(long, value_enum, default_value_t = Mode::Io)]
    mode: Mode,
    /// Destination MAC written by --mode mac (and by txonly/flowgen; default broadcast)
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
    #[arg(long, value_name = "MODE", default_value = "spin", value_parser = fwd::Idle::parse)]
    idle: fwd::Idle,
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
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Seconds of TCP bulk transfer [default: 3]
    #[arg(long, value_name = "N")]
    seconds: Option<f64>,
    /// Transfer exactly this many bytes instead (e.g. 1GiB, 512M, 10GB: K/M/G/T and
    /// KiB/MiB/GiB/TiB are powers of 1024, KB/MB/GB/TB powers of 1000)
    #[arg(long, value_name = "SIZE", value_parser = bulk::parse_size, conflicts_with = "seconds")]
    bytes: Option<u64>,
    /// Echo requests to send (100 ms apart)
    #[arg(long, value_name = "N", default_value_t = 10)]
    pings: u32,
    /// Extra port spec keys for both ports, e.g. backend=rw,ring=512
    #[arg(long, value_name = "KEYS", default_value = "")]
    port_opts: String,
    /// Most packets per rx burst in the forwarder
    #[arg(long, value_name = "N", default_value_t = 32)]
    burst: u16,
    /// What the forwarder does when idle: spin, yield[:ROUNDS], sleep[:US[:ROUNDS]],
    /// interrupt[:ROUNDS] (as `rtap fwd --idle`)
    #[arg(long, value_name = "MODE", default_value = "spin", value_parser = fwd::Idle::parse)]
    idle: fwd::Idle,
    /// Print the report as one JSON object
    #[arg(long)]
    json: bool,
}

/// A positive, finite number of seconds.
fn seconds(what: &str, s: f64) -> Result<Duration, String> {
    if !(s.is_finite() && s > 0.0) {
        return Err(format!(
            "{what} must be a positive number of seconds, got {s}"
        ));
    }
    Duration::try_from_secs_f64(s).map_err(|e| format!("{what} {s}: {e}"))
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
                    let j = json::Json::obj()
                        .set("event", "link")
                        .set("port", name.as_str())
                        .set("change", kind)
                        .set("value", detail.as_str());
                    println!("{j}");
                } else {
                    eprintln!("link {name}: {kind} {detail}");
                }
            }
        }
    }
}

fn cmd_fwd(a: FwdArgs) -> Result<(), String> {
    let peer = match a.peer_mac.as_deref() {
        Some(s) => Some(
            s.parse::<rtap::MacAddr>()
                .map_err(|e| format!("--peer-mac: {e}"))?
                .octets(),
        ),
        None => None,
    };
    let mode = match a.mode {
        Mode::Io | Mode::Txonly | Mode::Flowgen => fwd::FwdMode::Io,
        Mode::Macswap => fwd::FwdMode::MacSwap,
        Mode::Rxonly => fwd::FwdMode::RxOnly,
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
                return Err("--mode icmpecho needs --ip ADDR".into());
            }
            fwd::FwdMode::IcmpEcho { ipv4, ipv6 }
        }
        Mode::Mac => fwd::FwdMode::Mac {
            peer: peer.ok_or("--mode mac needs --peer-mac XX:XX:XX:XX:XX:XX")?,
        },
    };
    if a.ports.len() > 2 {
        return Err(format!(
            "fwd takes one or two --port, got {}",
            a.ports.len()
        ));
    }
    let cfgs = a
        .ports
        .iter()
        .map(|s| parse_port_spec(s).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    if let [x, y] = &cfgs[..] {
        if x.options().queues != y.options().queues {
            return Err(format!(
                "the ports have different queue counts ({} and {}): give both the same queues=N",
                x.options().queues,
                y.options().queues
            ));
        }
    }
    let duration = a.duration.map(|d| seconds("--duration", d)).transpose()?;
    if a.burst == Some(0) {
        return Err("--burst must be at least 1".into());
    }
    let stats_period = a
        .stats_period
        .map(|d| seconds("--stats-period", d))
        .transpose()?;
    if let Some(t) = a.threads {
        if t == 0 || t > cfgs[0].options().queues {
            return Err(format!(
                "--threads {t}: give 1 to {} (the ports have {} queue pair(s))",
                cfgs[0].options().queues,
                cfgs[0].options().queues
            ));
        }
    }
    let cpus = match (a.cpus.as_deref(), a.threads) {
        (Some(l), _) => cpu::parse_list(l).map_err(|e| format!("--cpus: {e}"))?,
        // --threads alone: pinned workers, on the CPUs this process may use, in order.
        (None, Some(_)) => cpu::allowed().map_err(|e| format!("sched_getaffinity: {e}"))?,
        (None, None) => Vec::new(),
    };
    if !cpus.is_empty() {
        cpu::check_usable(&cpus).map_err(|e| format!("--cpus: {e}"))?;
    }
    let opts = fwd::FwdOpts {
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
            Some("interrupt") => fwd::Idle::Interrupt {
                after: fwd::Idle::AFTER,
            },
            Some(_) => fwd::Idle::Spin,
            None => a.idle,
        },
    };

    let mut ports = Vec::new();
    for (spec, cfg) in a.ports.iter().zip(cfgs) {
        let mut p = Port::open(cfg).map_err(|e| format!("open {spec}: {e}"))?;
        if let Some(why) = p.backend_reason() {
            tracing::warn!(port = %spec, "backend changed: {why}");
        }
        p.start().map_err(|e| format!("start {spec}: {e}"))?;
        ports.push(p);
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
            dst_mac: peer.unwrap_or([0xff; 6]),
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
        .map_err(|e| format!("link events: {e}"))?;
    let fwd_done = std::sync::atomic::AtomicBool::new(false);
    let report = std::thread::scope(|s| {
        s.spawn(|| print_link_events(watchers, &fwd_done, a.json));
        let r = fwd::run(&ports, &opts, &signal::STOP);
        fwd_done.store(true, std::sync::atomic::Ordering::Relaxed);
        r
    });
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
            let mut per_port = json::Json::obj();
            for (name, xs) in &xstats {
                let mut o = json::Json::obj();
                for x in xs {
                    o = o.set(&x.name, x.value);
                }
                per_port = per_port.set(name, o);
            }
            j = j.set("xstats", per_port);
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
    Ok(())
}

fn cmd_demo(a: DemoArgs) -> Result<(), String> {
    if a.burst == 0 {
        return Err("--burst must be at least 1".into());
    }
    let tcp = match a.bytes {
        Some(n) => bulk::Limit::Bytes(n),
        None => bulk::Limit::Time(seconds("--seconds", a.seconds.unwrap_or(3.0))?),
    };
    let opts = demo::DemoOpts {
        tcp,
        pings: a.pings.max(1),
        port_opts: a.port_opts,
        fwd: fwd::FwdOpts {
            burst: a.burst as usize,
            idle: a.idle,
            ..fwd::FwdOpts::default()
        },
    };
    let report = demo::run(&opts)?;
    if a.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.text());
    }
    match report.failure() {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Clap's error as one line: its message up to the usage block, whitespace folded.
fn one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let msg = text.split("\n\n").next().unwrap_or("");
    let msg = msg.split_whitespace().collect::<Vec<_>>().join(" ");
    let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
    format!("{msg} (see --help)")
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            return ExitCode::from(2);
        }
    };
    init_tracing();
    if let Err(e) = signal::install() {
        eprintln!("error: cannot install the SIGINT/SIGTERM handler: {e}");
        return ExitCode::FAILURE;
    }
    let r = match cli.cmd {
        Cmd::Fwd(a) => cmd_fwd(a),
        Cmd::Demo(a) => cmd_demo(a),
        Cmd::Bench(a) => cmd_bench(a),
        Cmd::Info(a) => info::run(&a.port, a.json).map(|out| print!("{out}")),
        Cmd::Capture(a) => cmd_capture(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
