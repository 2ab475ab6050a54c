//! `rtap capture`: received frames to a pcap file (tcpdump/Wireshark format).

use anyhow::{Context, Result};
use clap::Args;

use crate::common::{seconds, signal};
use std::io::BufWriter;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pcap_file::pcap::{PcapPacket, PcapWriter};
use rtap::{parse_port_spec, Packet, Pool, PoolConfig, Port};

/// Largest frame written whole; longer ones (64 KiB coalesced frames) are cut,
/// with their real length recorded as pcap's `orig_len`.
const SNAPLEN: usize = 65535;

/// What a capture did.
pub struct CaptureReport {
    pub frames: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

/// Captures from every rx queue of the port into `path` until `count` frames,
/// `duration` or `stop`. Prints a progress line every 2 s to stderr.
pub fn run(
    spec: &str,
    path: &str,
    count: Option<u64>,
    duration: Option<Duration>,
    stop: &AtomicBool,
) -> Result<CaptureReport> {
    let cfg = parse_port_spec(spec)?;
    let port = Port::open(cfg).with_context(|| format!("open {spec}"))?;
    port.start().with_context(|| format!("start {spec}"))?;
    let file = std::fs::File::create(path).with_context(|| format!("create {path}"))?;
    // A TUN's packets start with the IP header: raw-IP pcap (LINKTYPE_RAW).
    let header = pcap_file::pcap::PcapHeader {
        datalink: match port.link_layer() {
            rtap::wire::layout::Link::Ip => pcap_file::DataLink::RAW,
            _ => pcap_file::DataLink::ETHERNET,
        },
        ..Default::default()
    };
    let mut w = PcapWriter::with_header(BufWriter::new(file), header)
        .with_context(|| format!("write {path}"))?;
    // Large buffers when the kernel may hand up 64 KiB frames, as `rtap fwd` does.
    let buf_size = if port.offloads().any_gso() {
        (PoolConfig::default().headroom as usize + rtap::pool::MAX_PACKET_LEN + 64) as u32
    } else {
        PoolConfig::default().buf_size
    };
    let pool = Pool::new(PoolConfig::default().count(1024).buf_size(buf_size))?;
    let mut queues = (0..port.queue_count())
        .map(|q| port.rx_queue(q, &pool))
        .collect::<Result<Vec<_>, _>>()?;
    let start = Instant::now();
    let mut last_progress = start;
    let (mut frames, mut bytes) = (0u64, 0u64);
    let mut burst: Vec<Packet> = Vec::with_capacity(32);
    let mut scratch = vec![0u8; SNAPLEN];
    'outer: while !stop.load(Ordering::Relaxed) && duration.is_none_or(|d| start.elapsed() < d) {
        let mut got = 0;
        for q in queues.iter_mut() {
            q.rx_burst(&mut burst, 32)?;
            got += burst.len();
            for p in burst.drain(..) {
                let ts = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                let n = p.copy_to(&mut scratch);
                w.write_packet(&PcapPacket::new(ts, p.len() as u32, &scratch[..n]))
                    .with_context(|| format!("write {path}"))?;
                frames += 1;
                bytes += p.len() as u64;
                if count.is_some_and(|c| frames >= c) {
                    break 'outer;
                }
            }
        }
        if got == 0 {
            // Sleep on the first queue's interrupt rather than spin: capture is not
            // a latency contest.
            let _ = queues[0].wait(Duration::from_millis(20));
        }
        if last_progress.elapsed() >= Duration::from_secs(2) {
            last_progress = Instant::now();
            eprintln!("rtap capture: {frames} frames, {bytes} bytes so far");
        }
    }
    drop(queues);
    let _ = port.stop();
    w.into_writer()
        .into_inner()
        .with_context(|| format!("flush {path}"))?;
    Ok(CaptureReport {
        frames,
        bytes,
        elapsed: start.elapsed(),
    })
}

#[derive(Args, Debug)]
pub struct CaptureArgs {
    /// Port spec (tap:iface=NAME,... or packet:iface=NAME,...)
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

pub fn cmd(a: CaptureArgs) -> Result<()> {
    let duration = a.duration.map(|d| seconds("--duration", d)).transpose()?;
    let r = run(&a.port, &a.write, a.count, duration, &signal::STOP)?;
    println!(
        "captured {} frames ({} bytes) in {:.2} s to {}",
        r.frames,
        r.bytes,
        r.elapsed.as_secs_f64(),
        a.write
    );
    Ok(())
}
