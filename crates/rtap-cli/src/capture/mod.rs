//! `rtap capture`: received frames to a pcapng (default) or pcap file, or to
//! standard output; optionally filtered by a classic BPF program (tcpdump
//! syntax through tcpdump's compiler, or `tcpdump -ddd` output), in the
//! kernel on AF_PACKET ports and in user space elsewhere.

mod filter;
mod out;

use anyhow::{Context, Result};
use clap::Args;

use crate::common::{seconds, signal};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rtap::capture::bpf::Program;
use rtap::capture::pcapng::{Interface, Totals};
use rtap::capture::FilterPlace;
use rtap::{parse_port_spec, Frame, Pool, PoolConfig, Port};

pub use out::Format;

/// tcpdump's default: whole frames, 64 KiB coalesced ones included.
const SNAPLEN: u32 = 262_144;

/// What to capture and how.
pub struct CaptureOpts<'a> {
    pub spec: &'a str,
    pub path: &'a str,
    pub format: Format,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub snaplen: u32,
    pub filter: Option<&'a str>,
    pub filter_bpf: Option<&'a str>,
    /// Start a new file once this many bytes are written (`FILE`, `FILE1`,
    /// `FILE2`, ... as tcpdump's `-C` names them).
    pub rotate: Option<u64>,
}

/// What a capture did.
pub struct CaptureReport {
    pub frames: u64,
    pub bytes: u64,
    /// Frames the filter dropped in user space (0 when the kernel filters).
    pub filtered: u64,
    /// True if the filter ran in the kernel.
    pub in_kernel: bool,
    /// Files written (more than one with `--rotate`).
    pub files: u32,
    pub elapsed: Duration,
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Captures from every rx queue of the port until `count` frames, `duration`
/// or `stop`. Prints a progress line every 2 s to stderr.
pub fn run(o: &CaptureOpts<'_>, stop: &AtomicBool) -> Result<CaptureReport> {
    anyhow::ensure!(o.snaplen > 0, "--snaplen must be at least 1");
    anyhow::ensure!(
        o.rotate.is_none() || o.path != "-",
        "--rotate needs a file (--write FILE), not standard output"
    );
    let cfg = parse_port_spec(o.spec)?;
    let port = Port::open(cfg).with_context(|| format!("open {}", o.spec))?;
    let link = port.link_layer();
    // The filter is checked before anything starts.
    let prog: Option<Program> = match (o.filter, o.filter_bpf) {
        (Some(e), _) => Some(filter::compile(e, link)?),
        (None, Some(f)) => Some(filter::from_file(f)?),
        (None, None) => None,
    };
    let place = match &prog {
        Some(p) => Some(port.set_rx_filter(Some(p))?),
        None => None,
    };
    let in_kernel = place.as_ref().is_some_and(|p| p.in_kernel());
    // Frames the ring took before the kernel filter was attached are still
    // there: those (received up to now, by their kernel time) are filtered
    // here too.
    let attached_at = now();
    let name = port.name();
    // Large buffers when the kernel may hand up 64 KiB frames, as `rtap fwd` does.
    let buf_size = if port.offloads().any_gso() {
        (PoolConfig::default().headroom as usize + rtap::pool::MAX_PACKET_LEN + 64) as u32
    } else {
        PoolConfig::default().buf_size
    };
    let pool = Pool::new(PoolConfig::default().count(1024).buf_size(buf_size))?;
    port.start().with_context(|| format!("start {}", o.spec))?;
    let mut queues = (0..port.queue_count())
        .map(|q| port.rx_queue(q, &pool))
        .collect::<Result<Vec<_>, _>>()?;
    // Frames lent where they lie (a packet port's ring: no copy into the
    // pool, and the kernel's receive time with each).
    let kernel_ts = queues.iter().all(|q| q.in_place());
    let comment = format!(
        "captured by rtap from {}; timestamps: {}{}",
        o.spec,
        if kernel_ts {
            "the kernel's receive time (TPACKET ring)"
        } else {
            "when rtap read each frame (user space)"
        },
        match (&prog, in_kernel) {
            (Some(_), true) => "; filtered in the kernel",
            (Some(_), false) => "; filtered in user space",
            (None, _) => "",
        }
    );
    let iface = Interface {
        name: &name,
        link,
        snaplen: o.snaplen,
    };
    let mut w = out::open(o.path, o.format, &iface, &comment)?;
    let base = port.stats()?;
    // As tcpdump says "listening on": from here on frames are taken.
    eprintln!(
        "rtap capture: capturing from {name} ({} queue(s){})",
        queues.len(),
        match &place {
            Some(FilterPlace::Kernel) => ", filtered in the kernel".to_string(),
            Some(FilterPlace::User(why)) => format!(", filtered in user space: {why}"),
            _ => String::new(),
        }
    );
    let start = Instant::now();
    let mut last_progress = start;
    let (mut frames, mut bytes, mut filtered) = (0u64, 0u64, 0u64);
    // Whole frames: the filter sees all of a frame, the file keeps the snap length.
    let mut scratch = vec![0u8; rtap::pool::MAX_PACKET_LEN + 64];
    let quiet = o.path == "-";
    let user_filter = |ts: Duration| prog.as_ref().filter(|_| !in_kernel || ts <= attached_at);
    let mut failed = None;
    let mut files = 1u32;
    // Lost before the capture saw them (the kernel's misses, frames the
    // queues refused or had no buffer for), and received, since the start.
    let totals = |frames: u64| -> Result<Totals> {
        let st = port.stats()?.since(&base);
        Ok(Totals {
            received: Some(st.rx.packets),
            dropped: st.imissed + st.rx.errors + st.rx.nombuf,
            accepted: prog.as_ref().map(|_| frames),
        })
    };
    'outer: while !stop.load(Ordering::Relaxed) && o.duration.is_none_or(|d| start.elapsed() < d) {
        let mut got = 0;
        for q in queues.iter_mut() {
            let r = q.rx_inplace(32, |lent: &[Frame<'_>]| {
                let mut took = 0;
                for f in lent {
                    if o.count.is_some_and(|c| frames >= c) || failed.is_some() {
                        break;
                    }
                    took += 1;
                    let ts = f.timestamp().unwrap_or_else(now);
                    // The whole frame only where a filter reads it; else the
                    // snap length is all that is copied.
                    let filter = user_filter(ts);
                    let whole = scratch.len();
                    let snap = (o.snaplen as usize).min(whole);
                    let n = f.copy_to(&mut scratch[..if filter.is_some() { whole } else { snap }]);
                    if filter.is_some_and(|p| !p.matches(&scratch[..n], f.len() as u32)) {
                        filtered += 1;
                        continue;
                    }
                    let keep = n.min(snap);
                    if let Err(e) = w.write(ts, &scratch[..keep], f.len() as u32) {
                        failed = Some(e);
                        break;
                    }
                    frames += 1;
                    bytes += f.len() as u64;
                    if o.rotate.is_some_and(|r| w.written() >= r) {
                        let next = format!("{}{files}", o.path);
                        let r = out::open(&next, o.format, &iface, &comment).and_then(|new| {
                            let old = std::mem::replace(&mut w, new);
                            old.finish(now(), totals(frames)?)
                        });
                        if let Err(e) = r {
                            failed = Some(e);
                            break;
                        }
                        files += 1;
                    }
                }
                took
            })?;
            got += r;
            if let Some(e) = failed.take() {
                return Err(e.context(format!("write {}", o.path)));
            }
            if o.count.is_some_and(|c| frames >= c) {
                break 'outer;
            }
        }
        if got == 0 {
            // Sleep on the first queue's interrupt rather than spin: capture is not
            // a latency contest.
            let _ = queues[0].wait(Duration::from_millis(20));
        }
        if !quiet && last_progress.elapsed() >= Duration::from_secs(2) {
            last_progress = Instant::now();
            eprintln!("rtap capture: {frames} frames, {bytes} bytes so far");
        }
    }
    drop(queues);
    let t = totals(frames)?;
    let _ = port.stop();
    w.finish(now(), t)
        .with_context(|| format!("finish {}", o.path))?;
    Ok(CaptureReport {
        frames,
        bytes,
        filtered,
        in_kernel,
        files,
        elapsed: start.elapsed(),
    })
}

/// A size: bytes, or with `k`, `M`, `G` (powers of 1000, as tcpdump's `-C`
/// counts millions).
fn parse_size(s: &str) -> Result<u64, String> {
    let (num, mul) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1_000),
        Some((i, 'm' | 'M')) => (&s[..i], 1_000_000),
        Some((i, 'g' | 'G')) => (&s[..i], 1_000_000_000),
        _ => (s, 1),
    };
    match num.parse::<u64>().ok().and_then(|n| n.checked_mul(mul)) {
        Some(n) if n > 0 => Ok(n),
        _ => Err(format!("{s:?}: give a size such as 100M, 64k or 1000000")),
    }
}

#[derive(Args, Debug)]
pub struct CaptureArgs {
    /// Port spec (tap:iface=NAME,... or packet:iface=NAME,...)
    #[arg(long, value_name = "SPEC")]
    port: String,
    /// The file to write (`-`: standard output, e.g. `| tcpdump -r -`)
    #[arg(long, value_name = "FILE")]
    write: String,
    /// File format
    #[arg(long, value_enum, default_value = "pcapng")]
    format: Format,
    /// Keep only frames this expression (tcpdump syntax) matches; compiled by
    /// tcpdump (installed), run in the kernel on packet: ports
    #[arg(long, value_name = "EXPR", conflicts_with = "filter_bpf")]
    filter: Option<String>,
    /// Keep only frames this classic BPF program (the output of `tcpdump
    /// -ddd EXPR`) keeps
    #[arg(long, value_name = "FILE")]
    filter_bpf: Option<String>,
    /// Most bytes kept of each frame
    #[arg(long, value_name = "BYTES", default_value_t = SNAPLEN)]
    snaplen: u32,
    /// Start a new file once this much is written (100M, 64k, ...): FILE,
    /// FILE1, FILE2, ..., each complete with its statistics block
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    rotate: Option<u64>,
    /// Stop after N frames
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Stop after S seconds
    #[arg(long, value_name = "S")]
    duration: Option<f64>,
}

pub fn cmd(a: CaptureArgs) -> Result<()> {
    let duration = a.duration.map(|d| seconds("--duration", d)).transpose()?;
    let o = CaptureOpts {
        spec: &a.port,
        path: &a.write,
        format: a.format,
        count: a.count,
        duration,
        snaplen: a.snaplen,
        filter: a.filter.as_deref(),
        filter_bpf: a.filter_bpf.as_deref(),
        rotate: a.rotate,
    };
    let r = run(&o, &signal::STOP)?;
    let filt = match (o.filter.or(o.filter_bpf), r.in_kernel) {
        (None, _) => String::new(),
        (Some(_), true) => ", filtered in the kernel".into(),
        (Some(_), false) => format!(", {} filtered out in user space", r.filtered),
    };
    // With `--write -` the file is standard output: the summary goes to stderr.
    let files = if r.files > 1 {
        format!(" (and {} more files)", r.files - 1)
    } else {
        String::new()
    };
    let line = format!(
        "captured {} frames ({} bytes) in {:.2} s to {}{files}{filt}",
        r.frames,
        r.bytes,
        r.elapsed.as_secs_f64(),
        a.write
    );
    if a.write == "-" {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
    Ok(())
}
