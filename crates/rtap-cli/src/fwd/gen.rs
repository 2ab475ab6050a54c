//! Traffic generation: `rtap fwd --mode txonly|flowgen`.
//!
//! UDP/IPv4 frames with correct IP and UDP checksums are built once per flow at
//! start (with etherparse); each packet is a copy of its flow's template into a
//! pool buffer, so the send loop allocates nothing.

use anyhow::{anyhow, Context, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rtap::{Packet, Pool, PoolConfig, Port};

use serde_json::{json, Value};

/// Generator settings.
#[derive(Clone, Debug)]
pub struct GenOpts {
    /// Frame size in bytes, Ethernet header included (60..=1514).
    pub pkt_size: usize,
    /// Stop after this many frames (None: until stopped or the duration ends).
    pub count: Option<u64>,
    /// Frames per second at most (None: as fast as possible).
    pub rate: Option<u64>,
    /// Frames per burst.
    pub burst: usize,
    /// Distinct flows (source addresses and ports); 1 for txonly.
    pub flows: u16,
    /// Destination MAC (the CLI's default: 02:00:00:00:00:00, unicast, no one's).
    pub dst_mac: [u8; 6],
    /// Stop after this long.
    pub duration: Option<Duration>,
}

/// What a generator run did.
#[derive(Clone, Debug)]
pub struct GenReport {
    pub mode: &'static str,
    pub sent: u64,
    pub bytes: u64,
    pub errors: u64,
    pub elapsed: Duration,
}

impl GenReport {
    pub fn to_json(&self) -> Value {
        let s = self.elapsed.as_secs_f64();
        json!({"mode": self.mode,
"elapsed_s": s,
"sent_packets": self.sent,
"sent_bytes": self.bytes,
"tx_errors": self.errors,
"pps": if s > 0.0 { self.sent as f64 / s } else { 0.0 }})
    }

    pub fn summary(&self) -> String {
        let s = self.elapsed.as_secs_f64();
        format!(
            "{}: sent {} packets ({} bytes) in {:.2} s = {:.3} Mpps, {} tx errors\n",
            self.mode,
            self.sent,
            self.bytes,
            s,
            if s > 0.0 {
                self.sent as f64 / s / 1e6
            } else {
                0.0
            },
            self.errors
        )
    }
}

/// The template frame of flow `f`: 198.18.0.0/15 (the benchmarking range),
/// source address and port varying with the flow.
pub fn template(src_mac: [u8; 6], o: &GenOpts, f: u16) -> Result<Vec<u8>> {
    const HDRS: usize = 14 + 20 + 8;
    if !(60..=1514).contains(&o.pkt_size) {
        return Err(anyhow!("--pkt-size {} must be 60..=1514", o.pkt_size));
    }
    let payload: Vec<u8> = (0..o.pkt_size - HDRS).map(|i| i as u8).collect();
    let src = [198, 18, (f >> 8) as u8, f as u8];
    let b = etherparse::PacketBuilder::ethernet2(src_mac, o.dst_mac)
        .ipv4(src, [198, 19, 0, 1], 64)
        .udp(1024 + f, 9);
    let mut out = Vec::with_capacity(o.pkt_size);
    b.write(&mut out, &payload).context("build frame")?;
    Ok(out)
}

/// Generates on queue 0 of `port` until the count, the duration or `stop`.
pub fn run(
    port: &Port,
    o: &GenOpts,
    mode: &'static str,
    stop: &AtomicBool,
    mut live: Option<&mut super::live::Live>,
) -> Result<GenReport> {
    let src_mac = port.mac()?.octets();
    let frames = (0..o.flows.max(1))
        .map(|f| template(src_mac, o, f))
        .collect::<Result<Vec<_>, _>>()?;
    let pool = Pool::new(PoolConfig::default().count(4096))?;
    let mut txq = port.tx_queue(0)?;
    let base = txq.stats();
    let mut burst: Vec<Packet> = Vec::with_capacity(o.burst);
    let start = Instant::now();
    let mut queued = 0u64;
    let mut next_flow = 0usize;
    loop {
        if stop.load(Ordering::Relaxed) || o.duration.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
        if let Some(l) = live.as_deref_mut() {
            l.tick(&[], None);
        }
        if o.count.is_some_and(|c| queued >= c) && burst.is_empty() {
            break;
        }
        if let Some(rate) = o.rate {
            // Do not get ahead of the schedule: sleep until the next frame is due.
            let due = Duration::from_secs_f64(queued as f64 / rate as f64);
            let now = start.elapsed();
            if due > now {
                std::thread::sleep((due - now).min(Duration::from_millis(10)));
                continue;
            }
        }
        while burst.len() < o.burst && o.count.is_none_or(|c| queued + (burst.len() as u64) < c) {
            match pool.alloc_from(&frames[next_flow]) {
                Ok(p) => burst.push(p),
                Err(_) => break, // pool busy with packets in flight: send what we have
            }
            next_flow = (next_flow + 1) % frames.len();
        }
        let before = burst.len();
        txq.tx_burst(&mut burst)?;
        queued += (before - burst.len()) as u64;
    }
    drop(burst);
    txq.flush(Duration::from_secs(2));
    let st = txq.stats().since(&base);
    Ok(GenReport {
        mode,
        sent: st.packets,
        bytes: st.bytes,
        errors: st.errors,
        elapsed: start.elapsed(),
    })
}
