//! `rtap fwd`: forwarding between two ports (or back out of one), testpmd style.
//!
//! Zero copy: each received [`Packet`] is handed as is to the other port's
//! `tx_burst`. A queue pair is queue `i` of port A and queue `i` of port B, both
//! directions. By default one worker thread serves each queue pair; with
//! [`FwdOpts::threads`] fewer workers serve them round-robin (worker `w` takes
//! pairs `w`, `w + threads`, ...), each optionally pinned to a CPU of
//! [`FwdOpts::cpus`]. A worker's rx queues share one [`Pool`].
//! Workers poll until the stop flag is raised or the duration runs out; what they
//! do between empty rounds is [`Idle`] (busy-polling by default). The calling
//! thread meanwhile watches the clock and prints live statistics
//! ([`FwdOpts::stats_period`]).

//!
//! - `cmd.rs`: the command: arguments checked, ports opened and served, the run
//!   and its report.
//! - `options.rs`: [`FwdOpts`], modes, idle behaviour.
//! - `worker.rs`: the worker threads and their per-round pass.
//! - `report.rs`: what a run did (summary, table, JSON).
//! - `mt.rs`: `--mode vpn-mt`, the VPN path on tokio's multi-thread runtime.
//! - `gen.rs`: txonly / flowgen generation; `responder.rs`: icmpecho (pure);
//!   `live.rs`: `--stats-period` rates.

mod cmd;
mod gen;
pub mod live;
pub(crate) mod mt;
mod options;
mod report;
pub mod responder;
mod worker;

use clap::{Args, ValueEnum};

pub use cmd::cmd;
pub use options::{FwdMode, FwdOpts, Idle};
pub use report::FwdReport;
pub use worker::run;

pub const HELP: &str = "\
Examples:
  rtap fwd --port tap:iface=tap0 --port tap:iface=tap1
  rtap fwd --port tap:iface=tap0,queues=2 --port tap:iface=tap1,queues=2 --threads 1 --stats-period 1
  rtap fwd --port tap:iface=tap0,backend=rw        # one port: frames go back out of it
  rtap fwd --port packet:iface=veth0 --port tap:iface=tap1  # AF_PACKET rings on an existing interface";

pub const LONG_HELP: &str = "\
Port spec:
  tap:iface=NAME[,queues=N][,persist][,attach][,backend=uring|rw][,ring=SIZE]
     [,burst=N][,sqpoll=IDLE_MS][,sqpoll_cpu=C]
  The interface is created unless `attach` is given; it is deleted on exit unless
  `persist` is given or it existed before.
  packet:iface=NAME[,queues=N][,fanout=hash|lb|cpu|rollover|rnd|qm][,frame_size=N]
     [,frames=N][,block_size=N][,tpacket=2|3][,block_timeout=MS][,qdisc_bypass=on|off]
     [,kick=sendto|uring][,sq_size=N][,sqpoll_idle=MS][,sqpoll_cpu=C][,offload=on|off]
  An existing interface through AF_PACKET mmap rings; queues are sockets of one
  fanout group. Its link is left as found (brought up if it was down, and down
  again on exit). The kick sends a burst: sendto (one syscall per burst, the
  default) or uring (an io_uring send from an SQPOLL kernel thread shared by every
  port: the transmit work moves to that thread, which spins a core of its own).
  Every kind also takes netns=NAME, mtu=N, mac=ADDR, promisc=on|off, burst=N,
  addr=IP/LEN and route=NET/LEN (each repeatable), up=on (link up at open).
  Both ports need the same queue count; kinds mix freely.

Output (--json): one object
  mode               \"io\"
  elapsed_s          seconds the forwarder ran
  queue_pairs        queue pairs forwarded
  threads            worker threads (--threads; default one per queue pair)
  workers[]          per worker: worker, queues (the pairs it served), cpu (pinned
                     CPU read back from its affinity mask, or null), cpu_s, rounds,
                     pool_capacity, pool_available (buffers back in its pool once
                     its queues closed: all of them unless buffers leaked)
  forwarded_packets  packets sent over all ports
  forwarded_bytes    bytes sent over all ports
  forwarded_pps      forwarded_packets / elapsed_s
  dropped_packets    packets the forwarder dropped because a tx queue refused them
  rx_lro_packets     coalesced (GRO/LRO, larger than the MTU) frames received, all ports
  worker_cpu_s       CPU time of the worker threads (busy-polling: about elapsed_s each)
  rounds             polling rounds of the workers (an rx burst on each port)
  empty_rounds       rounds that found nothing to forward
  ports[]            per port: port, kind (tap, packet), name, ifindex, backend
                     (uring or rw; for a packet port: its kick), queues, rx_packets,
                     rx_bytes, rx_errors, rx_nombuf, imissed, tx_packets, tx_bytes,
                     tx_errors, fwd_dropped, offloads (accepted: csum,tso4,... or
                     none), rx_lro_packets (the rx_q*_lro_packets xstats, summed)

Live statistics (--stats-period SECS): every period, a row per port with rx_pps,
rx_Mbit/s, tx_pps, tx_Mbit/s, drops (imissed + rx nombuf + fwd_dropped) and errors
over that period, and pool_used (buffers out of the workers' pools: in queues,
in flight, in bursts); with --json one line per period instead:
  {\"event\":\"stats\",\"t_s\":..,\"pool_in_use\":..,\"pool_capacity\":..,
   \"ports\":[{port, name, rx_pps, rx_mbit_per_s, tx_pps, tx_mbit_per_s, drops,
   errors, rx_packets, tx_packets, drops_total, errors_total}]}
The final report follows as the last line.

Examples:
  rtap fwd --port tap:iface=tap0 --port tap:iface=tap1
  rtap fwd --port tap:iface=tap0,queues=2 --port tap:iface=tap1,queues=2 --duration 10 --json
  rtap fwd --port tap:iface=tap0,queues=4 --port tap:iface=tap1,queues=4 --threads 2 --cpus 0,1
  rtap fwd --port tap:iface=tap0 --port tap:iface=tap1 --stats-period 1
  rtap fwd --port tap:iface=tap0,backend=rw        # one port: frames go back out of it";

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
    /// TUN ports: split each packet into MTU-sized ones and merge them again
    /// before sending (a VPN's data path without the crypto)
    Vpn,
    /// As vpn, on tokio's multi-thread runtime: a driver thread per queue,
    /// a task per packet for a keystream pass (a stand-in for a cipher)
    VpnMt,
}

/// `--mt-drive`'s values.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MtDriveArg {
    /// A driver thread per queue pair
    Thread,
    /// The tasks themselves
    Tasks,
}

#[derive(Args, Debug)]
pub struct FwdArgs {
    /// Port spec (tap:iface=NAME,...); give it twice to forward between two ports
    #[arg(long = "port", value_name = "SPEC", required = true)]
    ports: Vec<String>,
    /// Forwarding mode
    #[arg(long, value_enum, default_value_t = Mode::Io)]
    mode: Mode,
    /// Destination MAC written by --mode mac (and by txonly/flowgen: default
    /// 02:00:00:00:00:00, a unicast address no host has, so the receiving
    /// kernel drops the frames at once; ff:ff:ff:ff:ff:ff for broadcast)
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
    /// Stop after SECS seconds of forwarding, counted from when every worker has
    /// its queues open (default: run until SIGINT/SIGTERM)
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
    #[arg(long, value_name = "MODE", default_value = "spin", value_parser = Idle::parse)]
    idle: Idle,
    /// poll (busy-poll, the default) or interrupt (sleep on the rx queues'
    /// interrupt fds when idle); shorthand for --idle spin / --idle interrupt
    #[arg(long, value_name = "MODE", value_parser = ["poll", "interrupt"], conflicts_with = "idle")]
    wait: Option<String>,
    /// Pinned worker threads; worker W serves queue pairs W, W+N, W+2N, ... and runs
    /// on the W-th usable CPU (or of --cpus) [default: one unpinned worker per
    /// queue pair]
    #[arg(long, value_name = "N")]
    threads: Option<u16>,
    /// With --mode vpn-mt: who does the queues' I/O: a driver thread per queue
    /// pair (io_uring), or the tokio tasks themselves on their worker threads
    /// (read/write, no extra threads)
    #[arg(long, value_enum, default_value_t = MtDriveArg::Thread)]
    mt_drive: MtDriveArg,
    /// Pin worker W to the W-th CPU of this list (wrapping), e.g. 0,1 or 2-5
    /// [default with --threads: the CPUs this process may use]
    #[arg(long, value_name = "LIST")]
    cpus: Option<String>,
    /// Print each port's rx/tx pps, Mbit/s, drops and errors every SECS seconds
    /// (a table; JSON lines with --json), then the summary at the end
    #[arg(long, value_name = "SECS")]
    stats_period: Option<f64>,
    /// Serve the port to other processes on this Unix socket (a path, created
    /// mode 0600, or @name); give it once per port, in --port order. They
    /// attach with `--port shared:path=PATH,queues=LIST`
    #[arg(long, value_name = "PATH", requires = "serve_queues")]
    serve: Vec<String>,
    /// Queue pairs the workers leave to attached processes, e.g. 1 or 2-3
    /// (with --serve)
    #[arg(long, value_name = "LIST")]
    serve_queues: Option<String>,
    /// Users (besides this process's own and root) allowed to attach to --serve
    #[arg(long, value_name = "UID", value_delimiter = ',')]
    serve_uid: Vec<u32>,
}
