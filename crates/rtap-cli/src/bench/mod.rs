//! `rtap bench`: the contenders side by side in one run, 64-byte frames, one queue.
//!
//! - **tx**: the port sends bursts of 32 freshly built frames for a fixed time;
//!   packets per second = completed transmissions / time.
//! - **rx**: the tap's queue is first filled from the kernel side (AF_PACKET,
//!   queue length raised so nothing is dropped), *then* the rx queue is opened and
//!   timed until it has drained every frame, so the generator is not what is measured.
//! - **fwd**: same fill, then an io-mode forwarder (rx on port A, the same packets
//!   sent on port B) is timed until B has completed every transmission.
//!
//! - **tcp**: a content-verified TCP bulk transfer between two network
//!   namespaces (the demo's machinery: a port opened in each namespace, the
//!   io-mode forwarder between them, [`crate::traffic::bulk`] sender and receiver), for each
//!   backend with and without offloads, and over a plain veth pair (no userspace
//!   at all: the kernel's ceiling). Rounds of 2 s interleave the contenders.
//! - **lat**: a UDP ping-pong over the same paths ([`latency`]): round-trip
//!   percentiles from an HDR histogram, the forwarder busy-polling or sleeping on
//!   rx interrupts.
//!
//! Contenders: see [`contenders`]. Each packet-rate test
//! runs in a private network namespace on its own thread.

//!
//! Files: `contenders.rs` (who runs), `pps.rs`, `packet.rs`, `xdp.rs`, `tcp.rs`, `lat.rs` with
//! `latency.rs` (the tests), `results.rs` (cells, JSON, --out), `table.rs`,
//! `chart.rs` (bench.svg).

use anyhow::{anyhow, Result};
pub mod chart;
mod clock;
pub mod contenders;
mod csum;
mod handoff;
mod lat;
pub mod latency;
mod packet;
mod pps;
pub mod results;
mod seg;
mod sink;
mod table;
mod tcp;
mod tunrs;
mod xdp;

use std::time::{Duration, Instant};

use clap::Args;

use crate::common::cpu::{busy_cores, host_ticks};
use crate::fwd;
use contenders::{LAT_ROUNDS, LAT_SAMPLES, TCP_ROUNDS};
pub use results::Cell;

pub const HELP: &str = "Examples:
  rtap bench --quick --out /tmp/bench   # about 20 s; writes results.json and bench.svg
  rtap bench --only rx --json           # one test, JSON cells
  rtap bench --only lat                 # ping-pong latency: uring, uring-interrupt, rw, veth

Tests and contenders (all in the same run, interleaved, each in its own namespaces):
  tx, rx, fwd  64-byte frames on one queue: uring (multishot rx), uring-posted (one
               read posted per buffer, DPDK net_rtap's design), uring-sqpoll, rw
               (read/write, DPDK net_tap's way); tx also min-uring and
               min-uring-vnet (not rtap: the least a program does to write the
               frames through io_uring, 32 per enter, a tap without and with the
               virtio-net header). rx and fwd first fill the tap's
               queue from the kernel side, then time the drain, so the generator is
               not measured. Five repetitions, the median (one with --quick).
               (No interrupt or veth rows here: a drain never finds the queue
               empty, so interrupt mode would be busy-polling, and a veth has no
               port to drive; both run in tcp and lat.)
  pkt-tx, pkt-txp, pkt-rx, pkt-fwd
               64-byte frames through AF_PACKET over veth pairs (pkt-txp: tx paced at
               200 kpps, so the application's CPU per packet is its own work): packet-uring (rtap's
               packet port, tx kicked by an io_uring send from the SQPOLL thread),
               packet-sendto (the same port, one send() per burst: DPDK
               net_af_packet's kick) and rawsock (a plain AF_PACKET socket, one
               send()/recv() per frame). pkt-rx: packet (rtap's port, frames copied
               into pool buffers), ring-inplace (a bare ring read in place: the
               floor), rawsock; pkt-rx-1500 the same with 1500-byte frames (what
               grows with the size is the copy). pkt-fwd also packet-uring-inplace
               and packet-sendto-inplace (frames lent from the rx ring, copied once
               into the tx ring). pkt-rx and pkt-fwd fill the rx ring, then time
               the drain. CPU: the application thread's and the SQ thread's ns/pkt.
  xdp-tx, xdp-txp, xdp-rx, xdp-fwd
               64-byte frames through AF_XDP over veth pairs (copy mode), beside the
               AF_PACKET port and a plain socket: xdp-sendto, xdp-uring (the tx kick
               from the SQPOLL thread), packet-sendto, rawsock; xdp-rx: xdp, packet,
               rawsock. xdp-txp: tx paced at 200 kpps (the kicks' CPU per packet where
               neither saturates). rx and fwd fill the rx ring first (16384 frames),
               then time the drain; the forwarder's two ports share one UMEM (one
               pool). Ratios against packet-sendto (packet for rx).
  tcp          a content-verified TCP bulk transfer from namespace A to B through a
               tap in each and the io-mode forwarder between them: uring, uring-
               interrupt (forwarder sleeps on rx interrupts when idle), rw, with
               offloads (64 KiB frames) and without (-nooffload); packet,
               packet-uring (SQPOLL kick) and packet-nooffload (AF_PACKET ports on a
               veth pair in each namespace); tun, tun-rw and tun-nooffload (a TUN in
               each namespace: IP packets, as a VPN forwards them), tun-vpn (the
               forwarder splits and merges every packet, as a VPN must),
               tun-async-mt (the same plus a keystream pass, as tasks on tokio's
               multi-thread runtime through rtap::mt, compared with tun-vpn and
               with tunrs-async-mt: that tunnel written with the tun-rs crate,
               in builds with the tun-rs feature; tun-async-mt-tasks: the
               same with the queues driven by the tasks, no driver threads); xdp and
               xdp-uring (AF_XDP ports on a veth pair in each namespace: MTU-sized
               frames moved by descriptor, compared with packet-nooffload);
               and a veth pair with no userspace at all (the kernel's ceiling).
               Five rounds of 2 s, median.
  sink         one TCP flow over a veth pair, received by rtap's zcrx API (rtap-sink:
               device-less zcrx on Linux 7.1+, else multishot recv into provided
               buffers), a blocking recv() loop with a 64 KiB buffer (recv) and
               epoll + recv (epoll): Gbit/s, receiver and machine CPU-s per GB.
               Five rounds of 2 s, median.
  handoff      packets dropped on their pool's thread (local) or handed to another
               thread in bursts of 32 and dropped there (remote: the buffers come
               back through the pool's lock-free stack): Mpps and CPU ns per packet
               of both threads. Five runs of 20 M packets, median.
  csum         the software checksum's sum over 1500 B and 64 KiB buffers: the
               straightforward big-endian words (be-words) against the fast path
               (lanes): GB/s and ns per sum; a 64 KiB TSO packet split into
               segments (split-64k), and merged again in vectors then copied
               into a pool packet (merge-vec-64k) or built in the pool packet
               (merge-pool-64k). Five runs of 8 GiB (2 GiB for split and merge),
               median.
  seg          a 64 KiB TSO frame sent as 1448-byte segments into a tap without a
               virtio-net header: split by the application into pool packets
               (seg-copy) or by the port's engine, each segment written as its
               headers plus a slice of the frame (seg-vectored): GB/s and CPU per
               frame of the sending thread. Five runs of 40000 frames, median.
  lat          UDP ping-pong (64-byte frames, one request in flight) through the same
               path: p50/p99/p99.9/max round trip from an HDR histogram over 3 x 10000
               exchanges (2000 with --quick): uring, uring-interrupt, rw, veth.

Ratios are against the read/write backend; xdp-*: against the AF_PACKET port;
pkt-*: against rawsock, and (per
application core) packet-uring against packet-sendto; tcp: against rw with the
same offloads, offloads vs none, and vs veth. fwd cpu is the forwarder thread's CPU time per second,
host cpu the whole machine's (100 % = one core).

--out DIR writes results.json (machine, options, every cell with \"vs\" and \"ratio\")
and bench.svg (one panel per test, one bar per contender, value and ratio labelled).";

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Fewer frames, one repetition, one 2 s TCP round, 2000 round trips (under a minute)
    #[arg(long)]
    quick: bool,
    /// Run one test only
    #[arg(long, value_parser = ["tx", "rx", "fwd", "pkt-tx", "pkt-txp", "pkt-rx", "pkt-rx-1500", "pkt-fwd", "xdp-tx", "xdp-txp", "xdp-rx", "xdp-fwd", "tcp", "lat", "sink", "handoff", "csum", "seg"])]
    only: Option<String>,
    /// Only these contenders (comma-separated: uring,uring-posted,uring-sqpoll,rw
    /// (tx also min-uring,min-uring-vnet);
    /// for pkt-tx and pkt-fwd: packet-uring,packet-sendto,rawsock (pkt-fwd also
    /// packet-uring-inplace,packet-sendto-inplace); for pkt-rx:
    /// packet,ring-inplace,rawsock; for xdp-tx, xdp-txp and xdp-fwd:
    /// xdp-sendto,xdp-uring,packet-sendto,rawsock; for xdp-rx: xdp,packet,rawsock; for tcp:
    /// uring,uring-interrupt,uring-nooffload,rw,rw-nooffload,packet,
    /// packet-uring,packet-nooffload,tun,tun-rw,tun-nooffload,tun-vpn,tun-async-mt,tun-async-mt-tasks,tunrs-async-mt,xdp,xdp-uring,veth; for lat:
    /// uring,uring-interrupt,rw,veth;
    /// for sink: rtap-sink,recv,epoll; for handoff: local,remote; for csum:
    /// be-words-1500,lanes-1500,be-words-64k,lanes-64k,split-64k,merge-vec-64k,
    /// merge-pool-64k; for seg: seg-copy,seg-vectored)
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

pub fn cmd(a: BenchArgs) -> Result<()> {
    let only = a.only.map(|s| match s.as_str() {
        "tx" => "tx",
        "rx" => "rx",
        "pkt-tx" => "pkt-tx",
        "pkt-txp" => "pkt-txp",
        "pkt-rx" => "pkt-rx",
        "pkt-rx-1500" => "pkt-rx-1500",
        "pkt-fwd" => "pkt-fwd",
        "xdp-tx" => "xdp-tx",
        "xdp-txp" => "xdp-txp",
        "xdp-rx" => "xdp-rx",
        "xdp-fwd" => "xdp-fwd",
        "tcp" => "tcp",
        "lat" => "lat",
        "sink" => "sink",
        "handoff" => "handoff",
        "csum" => "csum",
        "seg" => "seg",
        _ => "fwd",
    });
    let cells = run(
        BenchOpts {
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
        println!("{}", results::to_json(&cells));
    } else {
        print!("{}", table::render(&cells));
    }
    if let Some(dir) = &a.out {
        let (json, machine) = results::write_out(dir, &cells, a.quick)?;
        let svg = chart::write_out(dir, &cells, &machine, a.quick)?;
        eprintln!("wrote {} and {}", json.display(), svg.display());
    }
    Ok(())
}

/// Options.
#[derive(Clone, Debug)]
pub struct BenchOpts {
    /// Fewer frames and one repetition: finishes in seconds.
    pub quick: bool,
    /// Run only this test (`tx`, `rx`, `fwd` or `tcp`).
    pub only: Option<&'static str>,
    /// Run only the contenders whose name is in this list (None: all).
    pub contenders: Option<Vec<String>>,
    /// tcp: count the bytes but do not compare them with the pattern.
    pub no_verify: bool,
    /// tcp: what the forwarder does when idle.
    pub idle: crate::fwd::Idle,
    /// tcp: extra port spec keys for the rtap contenders (`ring=512`...).
    pub port_opts: String,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs every test for every contender; `progress` gets a line per measurement.
/// Repetitions interleave the contenders, so drifting load on the machine hits
/// all of them alike; each cell is the median of its repetitions.
pub fn run(opts: BenchOpts, mut progress: impl FnMut(&str)) -> Result<Vec<Cell>> {
    let mut cells = Vec::new();
    for test in ["tx", "rx", "fwd"] {
        if opts.only.is_none_or(|o| o == test) {
            cells.extend(pps::run(test, &opts, &mut progress)?);
        }
    }
    for test in ["pkt-tx", "pkt-txp", "pkt-rx", "pkt-rx-1500", "pkt-fwd"] {
        if opts.only.is_none_or(|o| o == test) {
            cells.extend(packet::run(test, &opts, &mut progress)?);
        }
    }
    for test in ["xdp-tx", "xdp-txp", "xdp-rx", "xdp-fwd"] {
        if opts.only.is_none_or(|o| o == test) {
            cells.extend(xdp::run(test, &opts, &mut progress)?);
        }
    }
    if opts.only.is_none_or(|o| o == "tcp") {
        let rounds = if opts.quick { 1 } else { TCP_ROUNDS };
        cells.extend(tcp::run(&opts, rounds, &mut progress)?);
    }
    if opts.only.is_none_or(|o| o == "lat") {
        let (rounds, samples) = if opts.quick {
            (1, 2_000)
        } else {
            (LAT_ROUNDS, LAT_SAMPLES)
        };
        cells.extend(lat::run(&opts, rounds, samples, &mut progress)?);
    }
    if opts.only.is_none_or(|o| o == "sink") {
        let rounds = if opts.quick { 1 } else { TCP_ROUNDS };
        cells.extend(sink::run(&opts, rounds, &mut progress)?);
    }
    if opts.only.is_none_or(|o| o == "handoff") {
        cells.extend(handoff::run(&opts, &mut progress)?);
    }
    if opts.only.is_none_or(|o| o == "csum") {
        cells.extend(csum::run(&opts, &mut progress)?);
    }
    if opts.only.is_none_or(|o| o == "seg") {
        cells.extend(seg::run(&opts, &mut progress)?);
    }
    Ok(cells)
}

/// Waits (at most 3 s) until the machine is quiet: less than a fifth of a core
/// busy over 100 ms. Deleting the previous test's namespaces leaves kernel
/// cleanup work running for a while, and it shows up in latency tails.
fn settle() {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let h0 = host_ticks();
        std::thread::sleep(Duration::from_millis(100));
        if busy_cores(h0, host_ticks()) < 0.2 {
            return;
        }
    }
}

/// True if `name` passes the `--contenders` filter.
fn chosen(opts: &BenchOpts, name: &str) -> bool {
    opts.contenders
        .as_ref()
        .is_none_or(|l| l.iter().any(|n| n == name))
}

/// `Err("interrupted")` once SIGINT/SIGTERM arrived.
fn interrupted() -> Result<()> {
    if crate::common::signal::stopped() {
        Err(anyhow!("interrupted"))
    } else {
        Ok(())
    }
}
