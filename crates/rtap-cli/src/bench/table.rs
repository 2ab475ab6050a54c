//! The benchmark tables printed at the end of a run.

use rtap::BackendKind;

use super::contenders::{TcpPath, CONTENDERS, LAT_CONTENDERS, TCP_CONTENDERS, TX_BASELINES};
use super::packet::{PKT_CONTENDERS, PKT_FWD_CONTENDERS, PKT_RX_CONTENDERS};
use super::results::{Cell, Unit};
use super::xdp::{XDP_CONTENDERS, XDP_RX_CONTENDERS};

/// rtap's tap tx against the minimal io_uring writers: pps ratio and CPU ratio
/// (baseline ns / rtap ns, so 1.00x means rtap costs what the baseline does).
fn baseline_rows(cells: &[Cell]) -> String {
    let get = |c: &str| cells.iter().find(|x| x.test == "tx" && x.contender == c);
    let mut s = String::new();
    for (b, _) in TX_BASELINES {
        let Some(base) = get(b) else { continue };
        for name in ["uring", "uring-sqpoll"] {
            let Some(x) = get(name) else { continue };
            s += &format!(
                "tx 64B   {name} vs {b}: {:.2}x pps, {:.2}x cpu\n",
                x.rate / base.rate,
                base.cpu / x.cpu
            );
        }
    }
    s
}

/// The comparison table. Packet-rate tests: Mpps (wall) and thread CPU ns per
/// packet, with ratios to the read/write backend (pps ratio; CPU ratio = rw ns /
/// contender ns, so > 1 means cheaper than rw). The tcp test: Gbit/s, the
/// forwarder's and the machine's CPU load (100 % = one core), and ratios: to the
/// rw backend with the same offloads, to the same backend without offloads, and
/// to veth.
pub fn render(cells: &[Cell]) -> String {
    let get = |t: &str, c: &str| cells.iter().find(|x| x.test == t && x.contender == c);
    let mut s = String::new();
    if cells
        .iter()
        .any(|c| c.unit == Unit::Pps && matches!(c.test, "tx" | "rx" | "fwd"))
    {
        s += &format!(
            "{:<8} {:<14} {:>10} {:>10} {:>12} {:>12}\n",
            "test", "contender", "Mpps", "ns/pkt", "pps vs rw", "cpu vs rw"
        );
    }
    for (t, label) in [("tx", "tx 64B"), ("rx", "rx 64B"), ("fwd", "fwd 64B")] {
        let rw = get(t, "rw");
        let base = TX_BASELINES.iter().map(|b| b.0).filter(|_| t == "tx");
        for name in CONTENDERS.iter().map(|c| c.name).chain(base) {
            let Some(x) = get(t, name) else { continue };
            let (pr, cr) = match rw {
                Some(rw) if name != "rw" => (
                    format!("{:.2}x", x.rate / rw.rate),
                    format!("{:.2}x", rw.cpu / x.cpu),
                ),
                _ => ("-".into(), "-".into()),
            };
            s += &format!(
                "{:<8} {:<14} {:>10.2} {:>10.0} {:>12} {:>12}\n",
                label,
                name,
                x.rate / 1e6,
                x.cpu,
                pr,
                cr
            );
        }
    }
    s += &baseline_rows(cells);
    s += &packet_rows(cells);
    s += &xdp_rows(cells);
    s += &super::handoff::rows(cells);
    s += &super::seg::rows(cells);
    s += &super::csum::rows(cells);
    if cells.iter().any(|c| c.unit == Unit::Gbps) {
        if !s.is_empty() {
            s.push('\n');
        }
        s += &format!(
            "{:<8} {:<16} {:>8} {:>8} {:>8} {:>8} {:>10} {:>8}\n",
            "test", "contender", "Gbit/s", "fwd cpu", "host cpu", "vs rw", "vs no-off", "vs veth"
        );
        let ratio = |x: &Cell, other: Option<&Cell>| match other {
            Some(o) if o.rate > 0.0 => format!("{:.2}x", x.rate / o.rate),
            _ => "-".into(),
        };
        let veth = get("tcp", "veth");
        for c in TCP_CONTENDERS.iter() {
            let Some(x) = get("tcp", c.name) else {
                continue;
            };
            let (vs_rw, vs_nooff, vs_veth) = match c.path {
                TcpPath::Veth => ("-".into(), "-".into(), "-".into()),
                TcpPath::TunRs => ("-".into(), "-".into(), ratio(x, veth)),
                TcpPath::Rtap { backend, offload } => {
                    let twin = |b: BackendKind, off: bool| {
                        TCP_CONTENDERS
                            .iter()
                            .find(|t| {
                                t.path
                                    == TcpPath::Rtap {
                                        backend: b,
                                        offload: off,
                                    }
                            })
                            .and_then(|t| get("tcp", t.name))
                    };
                    (
                        if backend == BackendKind::Rw {
                            "-".into()
                        } else {
                            ratio(x, twin(BackendKind::Rw, offload))
                        },
                        if offload {
                            ratio(x, twin(backend, false))
                        } else {
                            "-".into()
                        },
                        ratio(x, veth),
                    )
                }
                TcpPath::Tun {
                    backend,
                    offload,
                    vpn,
                    mt,
                } => (
                    if mt.is_some() {
                        // (in the "vs rw" column: against the busy-poll VPN path)
                        format!("{} tun-vpn", ratio(x, get("tcp", "tun-vpn")))
                    } else if vpn {
                        // (in the "vs rw" column: against the offload passthrough)
                        format!("{} tun", ratio(x, get("tcp", "tun")))
                    } else if backend == BackendKind::Rw || !offload {
                        "-".into()
                    } else {
                        ratio(x, get("tcp", "tun-rw"))
                    },
                    if offload && !vpn {
                        ratio(x, get("tcp", "tun-nooffload"))
                    } else if mt.is_some() && get("tcp", "tunrs-async-mt").is_some() {
                        // (in the "vs no-off" column: against the same tunnel
                        // written with the tun-rs crate)
                        format!("{} tun-rs", ratio(x, get("tcp", "tunrs-async-mt")))
                    } else {
                        "-".into()
                    },
                    ratio(x, veth),
                ),
                TcpPath::Packet { offload, .. } => (
                    "-".into(),
                    if offload {
                        ratio(x, get("tcp", "packet-nooffload"))
                    } else {
                        "-".into()
                    },
                    ratio(x, veth),
                ),
                // (in the "vs no-off" column: against the AF_PACKET port
                // without offloads, the same MTU-sized frames)
                TcpPath::Xdp { .. } => (
                    "-".into(),
                    format!("{} pkt", ratio(x, get("tcp", "packet-nooffload"))),
                    ratio(x, veth),
                ),
            };
            let fwd_cpu = match c.path {
                TcpPath::Veth => "-".to_string(),
                TcpPath::Rtap { .. }
                | TcpPath::Packet { .. }
                | TcpPath::Tun { .. }
                | TcpPath::TunRs
                | TcpPath::Xdp { .. } => {
                    format!("{:.0} %", x.cpu * 100.0)
                }
            };
            s += &format!(
                "{:<8} {:<16} {:>8.2} {:>8} {:>8} {:>8} {:>10} {:>8}\n",
                "tcp",
                c.name,
                x.rate,
                fwd_cpu,
                format!("{:.0} %", x.host_cpu * 100.0),
                vs_rw,
                vs_nooff,
                vs_veth
            );
        }
    }
    if cells.iter().any(|c| c.unit == Unit::Latency) {
        if !s.is_empty() {
            s.push('\n');
        }
        s += &format!(
            "{:<8} {:<16} {:>8} {:>8} {:>8} {:>8} {:>6} {:>8} {:>10} {:>10}\n",
            "test",
            "contender",
            "p50 us",
            "p99 us",
            "p99.9 us",
            "max us",
            "lost",
            "fwd cpu",
            "p50 vs rw",
            "p99 vs rw"
        );
        let rw = get("lat", "rw").and_then(|c| c.lat);
        for name in LAT_CONTENDERS {
            let Some(x) = get("lat", name) else { continue };
            let l = x.lat.unwrap_or_default();
            let (r50, r99) = match rw {
                Some(rw) if name != "rw" && rw.p50_us > 0.0 && rw.p99_us > 0.0 => (
                    format!("{:.2}x", l.p50_us / rw.p50_us),
                    format!("{:.2}x", l.p99_us / rw.p99_us),
                ),
                _ => ("-".into(), "-".into()),
            };
            let fwd_cpu = if name == "veth" {
                "-".to_string()
            } else {
                format!("{:.0} %", x.cpu * 100.0)
            };
            s += &format!(
                "{:<8} {:<16} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>6} {:>8} {:>10} {:>10}\n",
                "lat", name, l.p50_us, l.p99_us, l.p999_us, l.max_us, l.lost, fwd_cpu, r50, r99
            );
        }
    }
    s += &sink_rows(cells);
    s
}

/// The `sink` rows: Gbit/s, receiver and machine CPU seconds per GB, and ratios
/// to the `recv()` loop (rate; CPU per GB, > 1 means cheaper than recv).
fn sink_rows(cells: &[Cell]) -> String {
    let get = |c: &str| cells.iter().find(|x| x.test == "sink" && x.contender == c);
    let mut s = String::new();
    if get("recv").is_none() && !cells.iter().any(|c| c.test == "sink") {
        return s;
    }
    s += &format!(
        "\n{:<8} {:<14} {:>8} {:>12} {:>13} {:>9} {:>12}\n",
        "test", "contender", "Gbit/s", "rx CPU-s/GB", "host CPU-s/GB", "vs recv", "cpu vs recv"
    );
    let recv = get("recv");
    for name in super::sink::SINK_CONTENDERS {
        let Some(x) = get(name) else { continue };
        let (r, c) = match recv {
            Some(o) if name != "recv" && o.rate > 0.0 && x.cpu > 0.0 => (
                format!("{:.2}x", x.rate / o.rate),
                format!("{:.2}x", o.cpu / x.cpu),
            ),
            _ => ("-".into(), "-".into()),
        };
        s += &format!(
            "{:<8} {:<14} {:>8.2} {:>12.3} {:>13.3} {:>9} {:>12}\n",
            "sink", name, x.rate, x.cpu, x.host_cpu, r, c
        );
    }
    s
}

/// Packets per second per application core, in millions (1 s / app ns).
fn per_core(c: &Cell) -> f64 {
    if c.cpu > 0.0 {
        1e3 / c.cpu
    } else {
        0.0
    }
}

/// The head of a ring test's table (AF_PACKET, AF_XDP), its two ratio columns
/// named.
fn ring_header(vs: &str, core_vs: &str) -> String {
    format!(
        "\n{:<8} {:<21} {:>8} {:>9} {:>8} {:>13} {:>10} {:>14}\n",
        "test", "contender", "Mpps", "app ns", "SQ ns", "Mpps/app core", vs, core_vs
    )
}

/// One row of a ring test's table: rate, the two threads' CPU per packet, the
/// rate per application core, and the two ratios.
fn ring_row(label: &str, name: &str, x: &Cell, vs: &str, core_vs: &str) -> String {
    format!(
        "{:<8} {:<21} {:>8.2} {:>9.0} {:>8.0} {:>13.2} {:>10} {:>14}\n",
        label,
        name,
        x.rate / 1e6,
        x.cpu,
        x.sq_cpu,
        per_core(x),
        vs,
        core_vs
    )
}

/// The AF_PACKET packet-rate rows: Mpps, CPU ns per packet of the application
/// thread and of the SQ thread, packets per second per application core (1 s /
/// app ns), and ratios: pps against `rawsock`, per-core rate against
/// `packet-sendto`.
fn packet_rows(cells: &[Cell]) -> String {
    let get = |t: &str, c: &str| cells.iter().find(|x| x.test == t && x.contender == c);
    let mut s = String::new();
    if !cells.iter().any(|c| c.test.starts_with("pkt-")) {
        return s;
    }
    s += &ring_header("vs rawsock", "core vs sendto");
    for (t, label) in [
        ("pkt-tx", "ptx 64B"),
        ("pkt-txp", "ptxp 64B"),
        ("pkt-rx", "prx 64B"),
        ("pkt-rx-1500", "prx 1500"),
        ("pkt-fwd", "pfwd 64B"),
    ] {
        let raw = get(t, "rawsock");
        let sendto = get(t, "packet-sendto");
        let names: &[&str] = if t.starts_with("pkt-rx") {
            &PKT_RX_CONTENDERS
        } else if t == "pkt-fwd" {
            &PKT_FWD_CONTENDERS
        } else {
            &PKT_CONTENDERS
        };
        for &name in names {
            let Some(x) = get(t, name) else { continue };
            let vs_raw = match raw {
                Some(r) if name != "rawsock" && r.rate > 0.0 => format!("{:.2}x", x.rate / r.rate),
                _ => "-".into(),
            };
            let vs_sendto = match sendto {
                Some(o) if name == "packet-uring" && o.cpu > 0.0 => {
                    format!("{:.2}x", per_core(x) / per_core(o))
                }
                _ => "-".into(),
            };
            s += &ring_row(label, name, x, &vs_raw, &vs_sendto);
        }
    }
    s
}

/// The AF_XDP packet-rate rows: as the AF_PACKET ones, with the ratio against
/// rtap's AF_PACKET port (`packet-sendto`, `packet` for rx): rate, and rate
/// per application core.
fn xdp_rows(cells: &[Cell]) -> String {
    let get = |t: &str, c: &str| cells.iter().find(|x| x.test == t && x.contender == c);
    let mut s = String::new();
    if !cells.iter().any(|c| c.test.starts_with("xdp-")) {
        return s;
    }
    s += &ring_header("vs packet", "core vs packet");
    for (t, label) in [
        ("xdp-tx", "xtx 64B"),
        ("xdp-txp", "xtxp 64B"),
        ("xdp-rx", "xrx 64B"),
        ("xdp-fwd", "xfwd 64B"),
    ] {
        let (names, reference): (&[&str], &str) = if t == "xdp-rx" {
            (&XDP_RX_CONTENDERS, "packet")
        } else {
            (&XDP_CONTENDERS, "packet-sendto")
        };
        let base = get(t, reference);
        for &name in names {
            let Some(x) = get(t, name) else { continue };
            let (vs, core) = match base {
                Some(b) if name != reference && b.rate > 0.0 && b.cpu > 0.0 => (
                    format!("{:.2}x", x.rate / b.rate),
                    format!("{:.2}x", per_core(x) / per_core(b)),
                ),
                _ => ("-".into(), "-".into()),
            };
            s += &ring_row(label, name, x, &vs, &core);
        }
    }
    s
}
