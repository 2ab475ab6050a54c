//! `rtap demo`: two network namespaces joined by two rtap ports and the io-mode
//! forwarder, with a built-in ping and TCP bulk transfer through them.
//!
//! ```text
//!  netns A                         this process                        netns B
//!  10.77.0.1 rtap-a  <== tap fd ==> [ fwd worker ] <== tap fd ==>  rtap-b 10.77.0.2
//! ```
//!
//! Each port is opened with `netns=NAME` in its spec: the library creates the tap
//! inside that namespace (and binds the port's netlink control there) while this
//! process stays in its own. Creating the tap here and moving it afterwards
//! (`ip link set dev X netns NS`) would keep the fds working, but the move downs
//! the link and the port's control could no longer see the interface.

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rtap::{parse_port_spec, Port};

use crate::common::netns::{self, Netns};
use crate::common::{seconds, signal};
use crate::fwd::{self, FwdOpts, FwdReport};
use crate::traffic::bulk::{self, BulkReport, Limit};
use crate::traffic::ping::{self, PingReport};
use serde_json::{json, Value};

/// Namespace name prefix; the full names are `rtapdemo-a-PID` and `rtapdemo-b-PID`.
pub const NS_PREFIX: &str = "rtapdemo-";
/// Address of side A.
pub const ADDR_A: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// Address of side B (the TCP receiver).
pub const ADDR_B: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const PREFIX_LEN: u8 = 24;
/// Interval of the progress lines during the TCP transfer.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Demo options.
#[derive(Clone, Debug)]
pub struct DemoOpts {
    /// When the TCP transfer stops: after a duration or a byte count.
    pub tcp: Limit,
    /// Echo requests to send.
    pub pings: u32,
    /// Extra port spec keys for both ports (`backend=rw,ring=512`...).
    pub port_opts: String,
    /// Taps, or AF_PACKET ports on veth pairs.
    pub kind: Kind,
    /// Forwarder options.
    pub fwd: FwdOpts,
}

/// One side of the demo.
#[derive(Clone, Debug)]
pub struct Side {
    /// Namespace name.
    pub netns: String,
    /// Interface name inside it.
    pub iface: String,
    /// Address with prefix length.
    pub address: String,
}

/// What the demo did.
#[derive(Clone, Debug)]
pub struct DemoReport {
    /// Namespace A then B.
    pub sides: [Side; 2],
    /// The ping from A to B.
    pub ping: PingReport,
    /// What the TCP transfer was asked to do.
    pub tcp_limit: Limit,
    /// The TCP transfer from A to B, or why it did not happen.
    /// The transfer, or why it failed (with its causes).
    pub tcp: Result<BulkReport, String>,
    /// The forwarder's counters.
    pub fwd: FwdReport,
}

impl DemoReport {
    /// Why the demo counts as failed, if it does.
    pub fn failure(&self) -> Option<String> {
        if self.ping.received == 0 {
            return Some(format!(
                "no ping reply from {ADDR_B} ({} sent): traffic did not flow",
                self.ping.sent
            ));
        }
        match &self.tcp {
            Err(e) => Some(format!("tcp transfer failed: {e}")),
            Ok(t) if t.bytes_received == 0 => {
                Some("tcp transfer moved zero bytes: traffic did not flow".into())
            }
            Ok(t) if !t.verified() => Some(format!(
                "tcp transfer not verified: {}",
                t.problem().unwrap_or_default()
            )),
            Ok(_) if signal::stopped() => Some("interrupted".into()),
            Ok(_) => None,
        }
    }

    /// One JSON object (field names documented in `rtap demo --help`).
    pub fn to_json(&self) -> Value {
        let fail = self.failure();
        let tcp = match &self.tcp {
            Ok(t) => {
                let mut j = t.to_json();
                j["error"] = Value::Null;
                j
            }
            Err(e) => json!({"seconds": 0.0,
"bytes_requested": match self.tcp_limit {
                        Limit::Bytes(n) => Some(n),
                        Limit::Time(_) => None,
                    },
"bytes_sent": 0u64,
"bytes_received": 0u64,
"bytes_checked": 0u64,
"mismatch_at": None::<u64>,
"gbit_per_s": 0.0,
"verified": false,
"error": e.as_str()}),
        };
        let sides: Vec<Value> = self
            .sides
            .iter()
            .map(|s| {
                json!({"netns": s.netns.as_str(),
"iface": s.iface.as_str(),
"address": s.address.as_str()})
            })
            .collect();
        json!({"ok": fail.is_none(),
"error": fail,
"namespaces": Value::Array(sides),
"ping": self.ping.to_json(),
"tcp": tcp,
"fwd": self.fwd.to_json()})
    }

    /// Human-readable report.
    pub fn text(&self) -> String {
        let [a, b] = &self.sides;
        let mut out = format!(
            "namespaces: {} ({} {}) <-> rtap io forwarder <-> {} ({} {})\n",
            a.netns, a.iface, a.address, b.netns, b.iface, b.address
        );
        let p = &self.ping;
        out += &format!(
            "ping {ADDR_A} -> {ADDR_B}: {} sent, {} received",
            p.sent, p.received
        );
        if let (Some(min), Some(avg), Some(max)) = (p.min_ms(), p.avg_ms(), p.max_ms()) {
            out += &format!(", rtt min/avg/max = {min:.3}/{avg:.3}/{max:.3} ms");
        }
        out.push('\n');
        match &self.tcp {
            Ok(t) => {
                out += &format!(
                    "tcp  {ADDR_A} -> {ADDR_B}: {} bytes in {:.2} s = {:.3} Gbit/s, {}\n",
                    t.bytes_received,
                    t.elapsed.as_secs_f64(),
                    t.gbit_per_s(),
                    match t.problem() {
                        None => "verified (received == sent, every byte matched)".to_string(),
                        Some(why) => format!("NOT VERIFIED: {why}"),
                    }
                )
            }
            Err(e) => out += &format!("tcp  {ADDR_A} -> {ADDR_B}: failed: {e}\n"),
        }
        out += &self.fwd.summary();
        out
    }
}

/// What kind of port joins each namespace to the forwarder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Kind {
    /// A tap in the namespace, carrying its address (the default).
    #[default]
    Tap,
    /// A veth pair in the namespace: one end carries the address, an AF_PACKET
    /// port sits on the other.
    Packet,
    /// A TUN in the namespace, carrying its address: IP packets cross the
    /// forwarder, as in a VPN.
    Tun,
    /// A veth pair in the namespace: one end carries the address, an AF_XDP
    /// port sits on the other (MTU-sized frames: XDP has no TSO or GRO).
    Xdp,
}

/// The spec of a demo port: its name plus the user's extra keys. Packet ports
/// ask for offloads unless the keys say otherwise, as tap specs do.
fn port_spec(
    kind: Kind,
    iface: &str,
    netns: &str,
    port_opts: &str,
) -> Result<(String, rtap::PortSpec)> {
    let mut spec = match kind {
        Kind::Tap => format!("tap:iface={iface},netns={netns}"),
        Kind::Tun => format!("tun:iface={iface},netns={netns}"),
        Kind::Packet => format!("packet:iface={iface},netns={netns}"),
        Kind::Xdp => format!("xdp:iface={iface},netns={netns}"),
    };
    let has = |k: &str| {
        port_opts
            .split(',')
            .any(|kv| kv.split('=').next() == Some(k))
    };
    if kind == Kind::Packet && !has("offload") {
        spec.push_str(",offload=on");
    }
    if !port_opts.is_empty() {
        spec.push(',');
        spec.push_str(port_opts);
    }
    let cfg = parse_port_spec(&spec).context("--port-opts")?;
    Ok((spec, cfg))
}

/// Opens a port inside `ns`, addresses it (a packet port: its veth peer
/// `veth-X`) and brings it (and `lo`) up.
fn open_side(
    ns: &Netns,
    kind: Kind,
    iface: &str,
    addr: Ipv4Addr,
    port_opts: &str,
) -> Result<(Port, Side)> {
    let (spec, cfg) = port_spec(kind, iface, ns.name(), port_opts)?;
    let host_if = match kind {
        Kind::Tap | Kind::Tun => None,
        Kind::Packet | Kind::Xdp => {
            let peer = iface.replace("rtap", "veth");
            ns.ip(&["link", "add", iface, "type", "veth", "peer", "name", &peer])?;
            let offload = cfg.as_packet().is_some_and(|c| c.offload);
            if !offload {
                // A port without virtio-net headers cannot take the stack's
                // 64 KiB TSO frames (a slot holds one MTU-sized frame): make the
                // stack send MTU-sized segments on this link.
                ns.ip(&["link", "set", "dev", &peer, "gso_max_size", "1500"])?;
            }
            if kind == Kind::Xdp {
                // XDP sees the stack's frames before their checksum is
                // finished, with no flag saying so: the stack must finish it.
                let p = peer.clone();
                ns.run_in(move || crate::sys::set_tx_checksum(&p, false))?
                    .with_context(|| format!("turn {peer}'s tx checksum offload off"))?;
            }
            ns.ip(&["link", "set", "dev", &peer, "up"])?;
            Some(peer)
        }
    };
    let port = Port::open(cfg).with_context(|| format!("open {spec}"))?;
    if let Some(why) = port.engine_reason() {
        tracing::warn!(port = iface, "engine changed: {why}");
    }
    let name = host_if.unwrap_or_else(|| port.name());
    let address = format!("{addr}/{PREFIX_LEN}");
    ns.ip(&["addr", "add", &address, "dev", &name])?;
    ns.ip(&["link", "set", "dev", "lo", "up"])?;
    port.start()
        .with_context(|| format!("start {} in {}", port.name(), ns.name()))?;
    let side = Side {
        netns: ns.name().to_string(),
        iface: name,
        address,
    };
    Ok((port, side))
}

/// Two namespaces joined by the rtap forwarder, as the demo builds them.
pub struct Joined<T> {
    /// Side A then B.
    pub sides: [Side; 2],
    /// What the forwarder did while `traffic` ran.
    pub fwd: FwdReport,
    /// What `traffic` returned.
    pub traffic: T,
}

/// Creates namespaces `{prefix}a-PID` and `{prefix}b-PID`, opens a port of `kind`
/// in each (spec `tap:iface=rtap-a,{port_opts}`, 10.77.0.1/24; `rtap-b`,
/// 10.77.0.2/24; packet ports on `rtap-a`/`rtap-b` with the addresses on their
/// veth peers `veth-a`/`veth-b`),
/// runs the io-mode forwarder between them while `traffic(ns_a, ns_b)` runs, then
/// stops it and deletes everything (error or not). `check` sees the open ports
/// before the forwarder starts and may refuse them.
pub fn with_forwarder<T: Send>(
    prefix: &str,
    kind: Kind,
    port_opts: &str,
    fwd_opts: &FwdOpts,
    check: impl Fn(&Port) -> Result<()>,
    traffic: impl FnOnce(&Netns, &Netns) -> T + Send,
) -> Result<Joined<T>> {
    // Reject bad port options before anything is created.
    port_spec(kind, "rtap-a", "x", port_opts)?;
    netns::sweep_stale(prefix);
    let pid = std::process::id();
    // Dropped last (declared first): the ports close before their namespaces go.
    let ns_a = Netns::create(&format!("{prefix}a-{pid}"))?;
    let ns_b = Netns::create(&format!("{prefix}b-{pid}"))?;
    let (port_a, side_a) = open_side(&ns_a, kind, "rtap-a", ADDR_A, port_opts)?;
    let (port_b, side_b) = open_side(&ns_b, kind, "rtap-b", ADDR_B, port_opts)?;
    let ports = [std::sync::Arc::new(port_a), std::sync::Arc::new(port_b)];
    for p in &ports {
        check(p)?;
    }
    tracing::info!(a = %ns_a.name(), b = %ns_b.name(), "namespaces joined by rtap ready");

    let (fwd_stop, fwd_ready) = (AtomicBool::new(false), AtomicBool::new(false));
    let (fwd, traffic) = std::thread::scope(|s| {
        let fwd = std::thread::Builder::new()
            .name("rtap-fwd".into())
            .spawn_scoped(s, || fwd::run(&ports, fwd_opts, &fwd_stop, &fwd_ready))
            .context("spawn forwarder");
        let traffic = match &fwd {
            Ok(h) => {
                // Traffic once the workers forward (their setup may take a
                // while on a loaded machine), or once the forwarder failed:
                // its error is then the one reported.
                let since = std::time::Instant::now();
                while !fwd_ready.load(Ordering::Acquire)
                    && !h.is_finished()
                    && since.elapsed() < std::time::Duration::from_secs(30)
                {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Some(traffic(&ns_a, &ns_b))
            }
            Err(_) => None,
        };
        fwd_stop.store(true, Ordering::SeqCst);
        let fwd = fwd.and_then(|h| {
            h.join()
                .unwrap_or_else(|_| Err(anyhow!("the forwarder panicked")))
        });
        (fwd, traffic)
    });
    for p in &ports {
        if let Err(e) = p.stop() {
            tracing::warn!("stop {}: {e}", p.name());
        }
    }
    drop(ports);
    // The forwarder's error is the root cause when there is one.
    let fwd = fwd?;
    Ok(Joined {
        sides: [side_a, side_b],
        fwd,
        traffic: traffic.context("no forwarder")?,
    })
}

/// Creates namespaces `{prefix}a-PID` and `{prefix}b-PID` joined by a veth pair
/// (`veth-a` 10.77.0.1/24, `veth-b` 10.77.0.2/24, the kernel's defaults for
/// offloads and MTU), runs `traffic(ns_a, ns_b)`, then deletes everything. The
/// kernel alone moves the packets: the ceiling a userspace forwarder aims at.
pub fn with_veth<T>(
    prefix: &str,
    traffic: impl FnOnce(&Netns, &Netns) -> T,
) -> Result<([Side; 2], T)> {
    netns::sweep_stale(prefix);
    let pid = std::process::id();
    let ns_a = Netns::create(&format!("{prefix}a-{pid}"))?;
    let ns_b = Netns::create(&format!("{prefix}b-{pid}"))?;
    // Both ends are created in A, then the peer is moved to B (one `ip` call).
    ns_a.ip(&[
        "link",
        "add",
        "veth-a",
        "type",
        "veth",
        "peer",
        "name",
        "veth-b",
        "netns",
        ns_b.name(),
    ])?;
    let mut sides = Vec::new();
    for (ns, iface, addr) in [(&ns_a, "veth-a", ADDR_A), (&ns_b, "veth-b", ADDR_B)] {
        let address = format!("{addr}/{PREFIX_LEN}");
        ns.ip(&["addr", "add", &address, "dev", iface])?;
        ns.ip(&["link", "set", "dev", "lo", "up"])?;
        ns.ip(&["link", "set", "dev", iface, "up"])?;
        sides.push(Side {
            netns: ns.name().to_string(),
            iface: iface.to_string(),
            address,
        });
    }
    let t = traffic(&ns_a, &ns_b);
    let sides: [Side; 2] = sides.try_into().expect("two sides");
    Ok((sides, t))
}

/// The demo's traffic: pings, then (if one came back) the TCP transfer.
fn ping_then_tcp(
    opts: &DemoOpts,
    ns_a: &Netns,
    ns_b: &Netns,
) -> Result<(PingReport, Result<BulkReport, String>)> {
    eprintln!(
        "rtap demo: pinging {ADDR_B} from {} ({} echo requests)",
        ns_a.name(),
        opts.pings
    );
    let ping = ns_a.run_in(|| {
        ping::run(
            ADDR_B,
            opts.pings,
            Duration::from_millis(100),
            Duration::from_secs(1),
            &signal::STOP,
        )
    })??;
    let tcp = if ping.received == 0 {
        Err("skipped: no ping reply".to_string())
    } else {
        eprintln!(
            "rtap demo: TCP {ADDR_A} -> {ADDR_B}, {}",
            match opts.tcp {
                Limit::Bytes(n) => format!("{n} bytes"),
                Limit::Time(t) => format!("{:.1} s", t.as_secs_f64()),
            }
        );
        let received = AtomicU64::new(0);
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            // A progress line every 2 s while the transfer runs.
            s.spawn(|| {
                let t0 = std::time::Instant::now();
                let mut next = PROGRESS_EVERY;
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                    if t0.elapsed() >= next {
                        next += PROGRESS_EVERY;
                        let n = received.load(Ordering::Relaxed);
                        eprintln!(
                            "rtap demo: {:.2} GB received and checked so far ({:.2} Gbit/s)",
                            n as f64 / 1e9,
                            n as f64 * 8.0 / 1e9 / t0.elapsed().as_secs_f64()
                        );
                    }
                }
            });
            let r = bulk::run(
                ns_a,
                ns_b,
                ADDR_B,
                opts.tcp,
                true,
                &signal::STOP,
                Some(&received),
            );
            done.store(true, Ordering::Relaxed);
            r.map_err(|e| format!("{e:#}"))
        })
    };
    Ok((ping, tcp))
}

/// Runs the demo. Everything it creates is gone when it returns, error or not.
pub fn run(opts: &DemoOpts) -> Result<DemoReport> {
    let j = with_forwarder(
        NS_PREFIX,
        opts.kind,
        &opts.port_opts,
        &opts.fwd,
        |_| Ok(()),
        |a, b| ping_then_tcp(opts, a, b),
    )?;
    let (ping, tcp) = j.traffic?;
    Ok(DemoReport {
        sides: j.sides,
        ping,
        tcp_limit: opts.tcp,
        tcp,
        fwd: j.fwd,
    })
}

pub const HELP: &str = "\
Examples:
  rtap demo                       # 10 pings and a 3 s TCP transfer (needs root)
  rtap demo --bytes 1GiB --json   # exactly 1 GiB, every byte checked
  rtap demo --port-opts backend=rw,offload=off
  rtap demo --kind packet         # AF_PACKET ports on veth pairs instead of taps";

pub const LONG_HELP: &str = "\
What it does:
  Creates network namespaces rtapdemo-a-PID and rtapdemo-b-PID, opens one rtap port
  in each (rtap-a 10.77.0.1/24, rtap-b 10.77.0.2/24; with --kind packet, a veth
  pair in each namespace, veth-a/veth-b carrying the addresses and AF_PACKET ports
  on rtap-a/rtap-b), forwards between them with
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
  rtap demo --idle interrupt      # forwarder sleeps on rx interrupts when idle
  rtap demo --kind packet --port-opts kick=sendto";

#[derive(Args, Debug)]
pub struct DemoArgs {
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
    /// Extra port spec keys for both ports, e.g. backend=rw,ring=512 (tap) or
    /// kick=sendto,offload=off (packet)
    #[arg(long, value_name = "KEYS", default_value = "")]
    port_opts: String,
    /// The ports: taps, or AF_PACKET ports on a veth pair in each namespace
    #[arg(long, value_enum, default_value_t = Kind::Tap)]
    kind: Kind,
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

pub fn cmd(a: DemoArgs) -> Result<()> {
    if a.burst == 0 {
        bail!("--burst must be at least 1");
    }
    let tcp = match a.bytes {
        Some(n) => bulk::Limit::Bytes(n),
        None => bulk::Limit::Time(seconds("--seconds", a.seconds.unwrap_or(3.0))?),
    };
    let opts = DemoOpts {
        tcp,
        pings: a.pings.max(1),
        port_opts: a.port_opts,
        kind: a.kind,
        fwd: fwd::FwdOpts {
            burst: a.burst as usize,
            idle: a.idle,
            ..fwd::FwdOpts::default()
        },
    };
    let report = run(&opts)?;
    if a.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.text());
    }
    match report.failure() {
        Some(why) => Err(anyhow!(why)),
        None => Ok(()),
    }
}
