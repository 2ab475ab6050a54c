//! `rtap send`: the demo's bulk TCP sender on its own: connects (N times in
//! parallel) and writes the verifiable pattern `rtap sink` checks.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde_json::json;

use crate::common::{netns, signal};
use crate::traffic::bulk::{parse_size, Pattern};

pub const HELP: &str = "\
Examples:
  rtap send --connect 10.0.0.1:5201 --bytes 1GiB
  rtap send --connect 10.0.0.1:5201 --duration 10 --conns 4 --netns blue";

#[derive(Args, Debug)]
pub struct SendArgs {
    /// Where `rtap sink` listens (ADDR:PORT)
    #[arg(long)]
    connect: SocketAddr,
    /// Bytes per connection (default 1GiB unless --duration is given)
    #[arg(long, value_parser = parse_size)]
    bytes: Option<u64>,
    /// Send for this many seconds instead
    #[arg(long, conflicts_with = "bytes")]
    duration: Option<f64>,
    /// Connections, in parallel
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Run inside this network namespace (`ip netns` name)
    #[arg(long)]
    netns: Option<String>,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
}

pub fn cmd(a: SendArgs) -> Result<()> {
    if a.conns == 0 || a.conns > 1024 {
        bail!("--conns {}: must be 1..=1024", a.conns);
    }
    if let Some(ns) = &a.netns {
        netns::enter_named(ns)?;
    }
    let pattern = Pattern::new();
    let want = match (a.bytes, a.duration) {
        (Some(b), _) => b,
        (None, Some(_)) => u64::MAX,
        (None, None) => 1 << 30,
    };
    let end = a
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d));
    let t0 = Instant::now();
    let sent: Vec<Result<u64>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..a.conns)
            .map(|_| s.spawn(|| send_one(a.connect, &pattern, want, end)))
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a sender thread panicked")))
            })
            .collect()
    });
    let secs = t0.elapsed().as_secs_f64();
    let mut total = 0;
    for r in sent {
        total += r?;
    }
    let gbit = total as f64 * 8.0 / secs.max(1e-9) / 1e9;
    if a.json {
        let j = json!({"conns": a.conns, "bytes": total, "seconds": secs, "gbit_per_s": gbit});
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        println!(
            "{total} bytes over {} connection(s) in {secs:.2} s: {gbit:.2} Gbit/s",
            a.conns
        );
    }
    Ok(())
}

/// One connection: the pattern from its start, `want` bytes or until `end`.
fn send_one(to: SocketAddr, p: &Pattern, want: u64, end: Option<Instant>) -> Result<u64> {
    let mut c = TcpStream::connect_timeout(&to, Duration::from_secs(5))
        .with_context(|| format!("connect to {to} (is `rtap sink` listening?)"))?;
    let mut at = 0u64;
    while at < want && !signal::stopped() && end.is_none_or(|e| Instant::now() < e) {
        let n = usize::try_from(want - at).unwrap_or(usize::MAX);
        match c.write(p.window(at, n)) {
            Ok(k) => at += k as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(anyhow::Error::from(e).context(format!("send after {at} bytes"))),
        }
    }
    c.shutdown(std::net::Shutdown::Write).context("shutdown")?;
    Ok(at)
}
