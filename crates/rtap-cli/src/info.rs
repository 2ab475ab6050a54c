//! `rtap info`: what a port is and what the kernel offers it.

use anyhow::{Context, Result};
use clap::Args;
use rtap::{parse_port_spec, PoolConfig, Port};

use serde_json::{json, Value};

/// Opens the port (without starting it), gathers everything and closes it again.
pub fn run(spec: &str, json: bool) -> Result<String> {
    let cfg = parse_port_spec(spec)?;
    if let Some(c) = cfg.as_shared() {
        return shared_status(&c.path, json);
    }
    let port = Port::open(cfg).with_context(|| format!("open {spec}"))?;
    let link = port.link()?;
    let probe = rtap::probe_uring();
    let off = port.offloads();
    let mac = link.mac.map(|m| m.to_string()).unwrap_or_default();
    let reason = port.engine_reason().unwrap_or("").to_string();
    let notes = port.offload_notes().join("; ");
    let rx_engine = port.rx_engine_name(&PoolConfig::default())?;
    let tx_engine = port.tx_engine_name();
    let offloads: Vec<String> = match off == rtap::Offloads::NONE {
        true => Vec::new(),
        false => off.to_string().split(',').map(str::to_string).collect(),
    };
    if json {
        let uring = json!({"available": probe.available,
"error": probe.error.clone().unwrap_or_default(),
"read_multishot": probe.read_multishot,
"readv_writev": probe.readv_writev,
"async_cancel": probe.async_cancel,
"provided_buffer_rings": probe.buf_ring,
"sqpoll": probe.sqpoll,
"zcrx_recv_zc": probe.recv_zc});
        let (zj, _) = zcrx_report();
        let j = json!({"kind": port.kind().to_string(),
"name": link.name.as_str(),
"ifindex": link.ifindex,
"engine": port.engine().to_string(),
"engine_reason": reason.as_str(),
"queues": port.queue_count(),
"mtu": link.mtu,
"max_mtu": link.max_mtu,
"mac": mac.as_str(),
"offloads": Value::Array(offloads.iter().map(|s| Value::from(s.as_str())).collect()),
"offload_notes": notes.as_str(),
"rx_engine": rx_engine.as_str(),
"tx_engine": tx_engine.as_str(),
"io_uring": uring,
"zcrx": zj});
        return Ok(format!("{j}\n"));
    }
    let yes = |b: bool| if b { "yes" } else { "no" };
    let mut s = String::new();
    s += &format!(
        "port      {} (ifindex {}, {})\n",
        link.name,
        link.ifindex,
        port.kind()
    );
    s += &format!(
        "engine    {}{}\n",
        port.engine(),
        if reason.is_empty() {
            String::new()
        } else {
            format!(" ({reason})")
        }
    );
    s += &format!("queues    {}\n", port.queue_count());
    s += &format!("mtu       {} (max {})\n", link.mtu, link.max_mtu);
    s += &format!("mac       {mac}\n");
    s += &format!(
        "offloads  {}\n",
        if offloads.is_empty() {
            "none".into()
        } else {
            offloads.join(" ")
        }
    );
    if !notes.is_empty() {
        s += &format!("          ({notes})\n");
    }
    s += &format!("rx engine {rx_engine}\n");
    s += &format!("tx engine {tx_engine}\n");
    s += &format!(
        "io_uring  {}; multishot read {}, readv/writev {}, provided buffer rings {}, SQPOLL {}, zero-copy receive op {}\n",
        if probe.available { "available".to_string() } else { format!("unavailable: {}", probe.error.unwrap_or_default()) },
        yes(probe.read_multishot),
        yes(probe.readv_writev),
        yes(probe.buf_ring),
        yes(probe.sqpoll),
        yes(probe.recv_zc),
    );
    s += &zcrx_report().1;
    Ok(s)
}

/// Who holds each queue of a served port (attaching nothing).
fn shared_status(path: &str, json: bool) -> Result<String> {
    let holders = rtap::share::status(path)?;
    if json {
        let q: Vec<Value> = holders
            .iter()
            .enumerate()
            .map(|(i, h)| json!({"queue": i, "holder": h.to_string()}))
            .collect();
        return Ok(format!(
            "{}\n",
            json!({"kind": rtap::DeviceKind::SHARED.to_string(), "socket": path, "queues": q})
        ));
    }
    let mut s = format!(
        "port      served at {path}, {} queue pair(s)\n",
        holders.len()
    );
    for (i, h) in holders.iter().enumerate() {
        let who = match h {
            rtap::share::QueueHolder::Free => "free".to_string(),
            rtap::share::QueueHolder::Serving => "the serving process".to_string(),
            rtap::share::QueueHolder::Process { pid, uid } => format!("process {pid} (uid {uid})"),
            other => other.to_string(),
        };
        s += &format!("queue {i:<3} {who}\n");
    }
    Ok(s)
}

/// What the kernel offers for zero-copy receive, as JSON and as text lines.
pub fn zcrx_report() -> (Value, String) {
    let p = rtap::zcrx::probe();
    let j = json!({"recv_zc": p.recv_zc,
"query": p.query,
"nodev": p.nodev,
"import": p.import,
"rx_buf_len": p.rx_buf_len,
"stats": p.stats,
"ctrl_ops": p.ctrl_ops,
"rq_hdr_size": p.rq_hdr_size,
"device_unavailable": p.device_unavailable,
"nodev_unavailable": p.nodev_unavailable});
    let yes = |b: bool| if b { "yes" } else { "no" };
    let mut s = format!(
        "zcrx      device mode {}, device-less {}, shared queues {}, buffer size choice {}, kernel stats {}\n",
        if p.recv_zc { "possible (needs a NIC that supports it)" } else { "no" },
        yes(p.nodev),
        yes(p.import),
        yes(p.rx_buf_len),
        yes(p.stats),
    );
    for why in [&p.device_unavailable, &p.nodev_unavailable]
        .into_iter()
        .flatten()
    {
        s += &format!("          ({why})\n");
    }
    (j, s)
}

/// `rtap info --zcrx` without a port.
pub fn zcrx_only(json: bool) -> String {
    let (j, s) = zcrx_report();
    if json {
        format!("{}\n", json!({ "zcrx": j }))
    } else {
        s
    }
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Port spec (tap:iface=NAME,... or packet:iface=NAME,...); a tap is created
    /// if needed and removed again unless it exists already or `persist` is given
    #[arg(long, value_name = "SPEC", required_unless_present = "zcrx")]
    pub port: Option<String>,
    /// What the kernel offers for zero-copy receive (zcrx); alone, no port needed
    #[arg(long)]
    pub zcrx: bool,
    /// Print one JSON object
    #[arg(long)]
    pub json: bool,
}
