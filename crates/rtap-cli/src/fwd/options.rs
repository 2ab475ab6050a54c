//! What a forwarding run does: [`FwdOpts`], the forwarding modes and what a
//! worker does when idle.

use anyhow::{anyhow, Result};
use std::time::Duration;

/// Forwarding options.
#[derive(Clone, Debug)]
pub struct FwdOpts {
    /// Most packets taken per rx burst.
    pub burst: usize,
    /// Buffers in each worker's pool; `None` sizes it from the ports' rings.
    pub pool_size: Option<u32>,
    /// Stop after this long (`None`: only when the stop flag is raised).
    pub duration: Option<Duration>,
    /// How many more times a partially refused burst is offered to the tx queue
    /// before the rest is dropped (and counted in `fwd_dropped`).
    pub tx_retries: u32,
    /// What a worker does when a round finds nothing to forward.
    pub idle: Idle,
    /// What happens to each received packet.
    pub mode: FwdMode,
    /// Worker threads (`None`: one per queue pair). At most the queue count.
    pub threads: Option<u16>,
    /// CPUs to pin the workers to, worker `w` on `cpus[w % cpus.len()]`
    /// (empty: not pinned).
    pub cpus: Vec<usize>,
    /// Print live per-port statistics to stdout this often.
    pub stats_period: Option<Duration>,
    /// Live statistics as JSON lines instead of a table.
    pub stats_json: bool,
    /// Queue pairs the workers leave alone (served to other processes).
    pub skip_queues: Vec<u16>,
    /// `--mode vpn-mt`: who does the queues' I/O (a driver thread per queue
    /// pair, or the tokio tasks themselves).
    pub mt_drive: rtap::mt::MtDrive,
}

/// Forwarding modes (testpmd's names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FwdMode {
    /// Sent unchanged to the other port (zero copy).
    #[default]
    Io,
    /// Source MAC set to the out port's, destination to `peer`.
    Mac {
        /// Destination MAC written into every frame.
        peer: [u8; 6],
    },
    /// Source and destination MAC swapped, sent back out of the port it came in on.
    MacSwap,
    /// Received and counted, then dropped.
    RxOnly,
    /// ARP, IPv6 neighbour discovery and ICMP/ICMPv6 echo answered for these
    /// addresses (the port's own MAC is filled in per port), back out the same port.
    IcmpEcho {
        /// IPv4 address to answer for.
        ipv4: Option<std::net::Ipv4Addr>,
        /// IPv6 address to answer for.
        ipv6: Option<std::net::Ipv6Addr>,
    },
    /// TUN ports: each received packet split into MTU-sized IP packets (what a
    /// VPN encrypts and sends), those merged again (what a VPN does with what
    /// it receives) and sent to the other port as GSO packets: a VPN's data
    /// path without the crypto.
    Vpn,
    /// [`Vpn`](Self::Vpn) on tokio's multi-thread runtime (`rtap::mt`): each
    /// queue on its driver thread, a task reads and splits, a task per packet
    /// runs a keystream pass twice (a stand-in for encrypting and
    /// decrypting), a task merges in order and sends.
    VpnMt,
}

impl FwdMode {
    /// The mode's name as `--mode` takes it.
    pub fn name(&self) -> &'static str {
        match self {
            FwdMode::Io => "io",
            FwdMode::Mac { .. } => "mac",
            FwdMode::MacSwap => "macswap",
            FwdMode::RxOnly => "rxonly",
            FwdMode::IcmpEcho { .. } => "icmpecho",
            FwdMode::Vpn => "vpn",
            FwdMode::VpnMt => "vpn-mt",
        }
    }
}

impl Default for FwdOpts {
    fn default() -> Self {
        FwdOpts {
            burst: 32,
            pool_size: None,
            duration: None,
            tx_retries: 64,
            mode: FwdMode::Io,
            idle: Idle::Spin,
            threads: None,
            cpus: Vec::new(),
            stats_period: None,
            stats_json: false,
            skip_queues: Vec::new(),
            mt_drive: rtap::mt::MtDrive::Thread,
        }
    }
}

/// What a worker does when a round (an rx burst on each port) found nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idle {
    /// Poll again at once (a CPU pause hint only): lowest latency, one core busy.
    Spin,
    /// After `after` empty rounds in a row, `sched_yield()` before each next round:
    /// other threads waiting for this core run first.
    Yield { after: u32 },
    /// After `after` empty rounds in a row, sleep `nap` before each next round:
    /// the core is free for others while traffic is idle or slow.
    Sleep { after: u32, nap: Duration },
    /// Rx interrupts: after `after` empty rounds in a row, sleep in `poll()` on
    /// the rx queues' interrupt fds (the io_uring completion eventfd, or the tap
    /// fd with the read/write backend) until a frame arrives, at most [`Idle::IRQ_MAX`].
    Interrupt { after: u32 },
}

impl Idle {
    /// Empty rounds before yielding or sleeping, by default.
    pub const AFTER: u32 = 64;
    /// Longest sleep of [`Idle::Interrupt`] (the stop flag is checked in between).
    pub const IRQ_MAX: Duration = Duration::from_millis(10);

    /// Parses `spin`, `yield[:N]`, `sleep[:US[:N]]`, `interrupt[:N]` (N empty
    /// rounds before; US the nap in microseconds, default 50).
    pub fn parse(s: &str) -> Result<Idle> {
        let mut it = s.split(':');
        let kind = it.next().unwrap_or("");
        let num = |v: Option<&str>, what: &str, def: u64| -> Result<u64> {
            match v {
                None => Ok(def),
                Some(v) => v
                    .parse()
                    .map_err(|_| anyhow!("idle mode {s:?}: {what} {v:?} is not a number")),
            }
        };
        let r = match kind {
            "spin" => Idle::Spin,
            "yield" => Idle::Yield {
                after: num(it.next(), "round count", Self::AFTER as u64)? as u32,
            },
            "interrupt" | "irq" => Idle::Interrupt {
                after: num(it.next(), "round count", Self::AFTER as u64)? as u32,
            },
            "sleep" => {
                let us = num(it.next(), "microseconds", 50)?;
                let after = num(it.next(), "round count", Self::AFTER as u64)? as u32;
                Idle::Sleep {
                    after,
                    nap: Duration::from_micros(us),
                }
            }
            _ => {
                return Err(anyhow!(
                    "unknown idle mode {s:?}: use spin, yield[:ROUNDS], sleep[:US[:ROUNDS]] or interrupt[:ROUNDS]"
                ))
            }
        };
        if it.next().is_some() {
            return Err(anyhow!("idle mode {s:?}: too many fields"));
        }
        Ok(r)
    }
}

impl std::fmt::Display for Idle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Idle::Spin => write!(f, "spin"),
            Idle::Yield { after } => write!(f, "yield:{after}"),
            Idle::Sleep { after, nap } => write!(f, "sleep:{}:{after}", nap.as_micros()),
            Idle::Interrupt { after } => write!(f, "interrupt:{after}"),
        }
    }
}
