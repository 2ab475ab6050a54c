//! `rtap demo`: two network namespaces joined by two rtap ports and the io-mode
//! forwarder, with a built-in ping and TCP bulk transfer through them.
//!
//! ```text
//!  netns A                         this process                        netns B
//!  10.77.0.1 rtap-a  <== tap fd ==> [ fwd worker ] <== tap fd ==>  rtap-b 10.77.0.2
//! ```
//!
//! Each port is opened from a thread that has entered its namespace, so the tap
//! is created there and the port's netlink control (link up/down, statistics)
//! works. Opening in this process's namespace and moving the tap afterwards
//! (`ip link set dev X netns NS`) keeps the fds working, but the move downs the
//! link and the port's netlink socket can no longer see the interface: start,
//! stop and stats then fail with "vanished".

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rtap::{parse_port_spec, TapPort};

use crate::bulk::{self, BulkReport};
use crate::fwd::{self, FwdOpts, FwdReport};
use crate::json::Json;
use crate::netns::{self, Netns};
use crate::ping::{self, PingReport};
use crate::signal;

/// Namespace name prefix; the full names are `rtapdemo-a-PID` and `rtapdemo-b-PID`.
pub const NS_PREFIX: &str = "rtapdemo-";
const ADDR_A: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const ADDR_B: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const PREFIX_LEN: u8 = 24;

/// Demo options.
#[derive(Clone, Debug)]
pub struct DemoOpts {
    /// TCP transfer duration.
    pub tcp: Duration,
    /// Echo requests to send.
    pub pings: u32,
    /// Extra port spec keys for both ports (`backend=rw,ring=512`...).
    pub port_opts: String,
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
    /// The TCP transfer from A to B, or why it did not happen.
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
                "tcp transfer lost data: sent {} bytes, received {}",
                t.bytes_sent, t.bytes_received
            )),
            Ok(_) if signal::stopped() => Some("interrupted".into()),
            Ok(_) => None,
        }
    }

    /// One JSON object (field names documented in `rtap demo --help`).
    pub fn to_json(&self) -> Json {
        let fail = self.failure();
        let tcp = match &self.tcp {
            Ok(t) => t.to_json().set("error", None::<String>),
            Err(e) => Json::obj()
                .set("seconds", 0.0)
                .set("bytes_sent", 0u64)
                .set("bytes_received", 0u64)
                .set("gbit_per_s", 0.0)
                .set("verified", false)
                .set("error", e.as_str()),
        };
        let sides: Vec<Json> = self
            .sides
            .iter()
            .map(|s| {
                Json::obj()
                    .set("netns", s.netns.as_str())
                    .set("iface", s.iface.as_str())
                    .set("address", s.address.as_str())
            })
            .collect();
        Json::obj()
            .set("ok", fail.is_none())
            .set("error", fail)
            .set("namespaces", Json::Arr(sides))
            .set("ping", self.ping.to_json())
            .set("tcp", tcp)
            .set("fwd", self.fwd.to_json())
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
                    if t.verified() {
                        "received == sent".to_string()
                    } else {
                        format!("MISMATCH: sent {}", t.bytes_sent)
                    }
                )
            }
            Err(e) => out += &format!("tcp  {ADDR_A} -> {ADDR_B}: failed: {e}\n"),
        }
        out += &self.fwd.summary();
        out
    }
}

/// The spec of a demo port: its name plus the user's extra keys.
fn port_spec(iface: &str, port_opts: &str) -> Result<(String, rtap::TapConfig), String> {
    let mut spec = format!("tap:iface={iface}");
    if !port_opts.is_empty() {
        spec.push(',');
        spec.push_str(port_opts);
    }
    let cfg = parse_port_spec(&spec).map_err(|e| format!("--port-opts: {e}"))?;
    Ok((spec, cfg))
}

/// Opens a port inside `ns`, addresses it and brings it (and `lo`) up.
fn open_side(
    ns: &Netns,
    iface: &str,
    addr: Ipv4Addr,
    port_opts: &str,
) -> Result<(TapPort, Side), String> {
    let (spec, cfg) = port_spec(iface, port_opts)?;
    // The tap and the port's netlink socket are created in `ns`: opening happens
    // on a thread that entered it. The port itself is usable from any thread.
    let mut port = ns
        .run_in(|| TapPort::open(cfg))?
        .map_err(|e| format!("open {spec} in {}: {e}", ns.name()))?;
    if let Some(why) = port.backend_reason() {
        tracing::warn!(port = iface, "backend changed: {why}");
    }
    let name = port.name();
    let address = format!("{addr}/{PREFIX_LEN}");
    ns.ip(&["addr", "add", &address, "dev", &name])?;
    ns.ip(&["link", "set", "dev", "lo", "up"])?;
    port.start()
        .map_err(|e| format!("start {name} in {}: {e}", ns.name()))?;
    let side = Side {
        netns: ns.name().to_string(),
        iface: name,
        address,
    };
    Ok((port, side))
}

/// Runs the demo. Everything it creates is gone when it returns, error or not.
pub fn run(opts: &DemoOpts) -> Result<DemoReport, String> {
    // Reject bad --port-opts before anything is created.
    port_spec("rtap-a", &opts.port_opts)?;
    netns::sweep_stale(NS_PREFIX);
    let pid = std::process::id();
    // Dropped last (declared first): the ports close before their namespaces go.
    let ns_a = Netns::create(&format!("{NS_PREFIX}a-{pid}"))?;
    let ns_b = Netns::create(&format!("{NS_PREFIX}b-{pid}"))?;
    let (port_a, side_a) = open_side(&ns_a, "rtap-a", ADDR_A, &opts.port_opts)?;
    let (port_b, side_b) = open_side(&ns_b, "rtap-b", ADDR_B, &opts.port_opts)?;
    let mut ports = [port_a, port_b];
    tracing::info!(a = %ns_a.name(), b = %ns_b.name(), "demo namespaces ready");

    let fwd_stop = AtomicBool::new(false);
    let (fwd, traffic) = std::thread::scope(|s| {
        let fwd = std::thread::Builder::new()
            .name("rtap-fwd".into())
            .spawn_scoped(s, || fwd::run(&ports, &opts.fwd, &fwd_stop))
            .map_err(|e| format!("spawn forwarder: {e}"));
        let traffic = || -> Result<(PingReport, Result<BulkReport, String>), String> {
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
                bulk::run(&ns_a, &ns_b, ADDR_B, opts.tcp, &signal::STOP)
            };
            Ok((ping, tcp))
        };
        let traffic = match &fwd {
            Ok(_) => traffic(),
            Err(_) => Err("no forwarder".into()),
        };
        fwd_stop.store(true, Ordering::SeqCst);
        let fwd = fwd.and_then(|h| {
            h.join()
                .unwrap_or_else(|_| Err("the forwarder panicked".into()))
        });
        (fwd, traffic)
    });
    for p in &mut ports {
        if let Err(e) = p.stop() {
            tracing::warn!("stop {}: {e}", p.name());
        }
    }
    drop(ports);
    // The forwarder's error is the root cause when there is one.
    let fwd = fwd?;
    let (ping, tcp) = traffic?;
    Ok(DemoReport {
        sides: [side_a, side_b],
        ping,
        tcp,
        fwd,
    })
}
