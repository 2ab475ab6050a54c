//! The AF_XDP packet-rate tests, beside the AF_PACKET port and a plain socket
//! in the same run: 64-byte frames over veth pairs (copy mode: veth has no
//! zero-copy), one queue, each run in a private network namespace.
//!
//! - **xdp-tx**: the port sends bursts of 32 frames for a fixed time, its
//!   packets from the pool that is its UMEM (sent as they are).
//! - **xdp-txp**: the same paced at [`pkt::PACED_PPS`], well below what any
//!   contender reaches: the application's CPU per packet is then its own work
//!   (the two kicks compared where neither saturates).
//! - **xdp-rx**: the rx ring is first filled from the veth peer (frames the
//!   program redirects to the socket: the ring and the fill ring hold them
//!   all), then timed until drained; the application reads every byte.
//! - **xdp-fwd**: port A's rx ring filled the same way, then an io-mode
//!   forwarder (rx on A, the same packets sent on B) timed until B has
//!   completed every transmission. Both ports share the pool, so one UMEM:
//!   frames move by descriptor.
//!
//! Contenders: `xdp-sendto` (one `send()` per burst), `xdp-uring` (the kick as
//! an io_uring send from the SQPOLL thread), `packet-sendto` (rtap's AF_PACKET
//! port) and `rawsock`; for rx, `xdp`, `packet` and `rawsock`. Ratios are
//! against `packet-sendto` (`packet` for rx): the goal is the AF_XDP port
//! well ahead of the AF_PACKET one.

use anyhow::{anyhow, Result};
use std::time::{Duration, Instant};

use rawsock::RawSocket;
use rtap::xdp::XdpConfig;
use rtap::{Engine, Kick, Pool, PoolConfig, Port, SqPoll};

use super::clock::{Clock, Run};
use super::packet::{self as pkt, is_ours, up_and_running, veth};
use super::pps::{frame, in_netns, BURST, FRAME_LEN};
use super::results::Cell;
use super::BenchOpts;

/// The contenders of `xdp-tx` and `xdp-fwd`.
pub const XDP_CONTENDERS: [&str; 4] = ["xdp-sendto", "xdp-uring", "packet-sendto", "rawsock"];

/// The contenders of `xdp-rx`.
pub const XDP_RX_CONTENDERS: [&str; 3] = ["xdp", "packet", "rawsock"];

/// Frames per rx and fwd run: what the rings hold.
const N: u32 = 16384;

/// A started xdp port on `iface` for contender `name`, rings of `ring`.
fn open_port(name: &str, iface: &str, ring: u32) -> Result<Port> {
    let kick = if name == "xdp-uring" {
        Kick::Uring
    } else {
        Kick::Sendto
    };
    let cfg = XdpConfig::new(iface)
        .kick(kick)
        .ring(ring)
        .sqpoll(SqPoll::new(200));
    let p = Port::open(cfg)?;
    if p.engine() != Engine::xsk(kick) {
        return Err(anyhow!(
            "{name}: the {kick} kick fell back: {}",
            p.engine_reason().unwrap_or("")
        ));
    }
    p.start()?;
    Ok(p)
}

/// A pool that can be the UMEM of rings of `ring` entries (the fill ring full
/// and the tx ring's frames, with room for bursts).
fn umem_pool(ring: u32) -> Result<Pool> {
    Ok(Pool::new(PoolConfig::default().count(2 * ring + 4096))?)
}

/// Waits until the kernel has put what was injected into the rx ring (veth's
/// NAPI runs after the sends return): until the socket is readable and a
/// moment has passed without it changing.
fn settled(rxq: &mut rtap::RxQueue) -> Result<()> {
    rxq.wait(Duration::from_secs(2))?;
    std::thread::sleep(Duration::from_millis(100));
    Ok(())
}

fn bench_tx(name: &str, secs: f64, paced: Option<f64>) -> Result<Run> {
    if !name.starts_with("xdp") {
        return pkt::bench_tx(name, secs, paced);
    }
    in_netns(|| {
        veth("bxt")?;
        let f = frame(0);
        let port = open_port(name, "bxtp", 2048)?;
        up_and_running(&["bxtk".into()], false)?;
        let pool = umem_pool(2048)?;
        // The rx queue makes the pool the UMEM: the tx packets go as they are.
        let _rxq = port.rx_queue(0, &pool)?;
        let mut txq = port.tx_queue(0)?;
        pkt::timed_tx(&mut txq, &pool, &f, secs, paced)
    })
}

fn bench_rx(name: &str, n: u32) -> Result<Run> {
    if name != "xdp" {
        // The same method as xdp's: the kernel done filling before the clock.
        return pkt::bench_rx_settled(name, n, FRAME_LEN, true);
    }
    in_netns(|| {
        let (_, ak) = veth("bxr")?;
        let inj = RawSocket::injector(ak)?;
        inj.set_qdisc_bypass(true)?;
        let port = open_port("xdp-sendto", "bxrp", n.next_power_of_two())?;
        up_and_running(&["bxrk".into()], false)?;
        let pool = umem_pool(n.next_power_of_two())?;
        let mut rxq = port.rx_queue(0, &pool)?;
        for i in 0..n {
            inj.send(&frame(i))?;
        }
        settled(&mut rxq)?;
        let mut v = Vec::with_capacity(BURST);
        let mut got = 0u32;
        let clock = Clock::start();
        let deadline = clock.wall + Duration::from_secs(10);
        while got < n && Instant::now() < deadline {
            rxq.rx_burst(&mut v, BURST)?;
            got += v.iter().filter(|p| is_ours(p.data(), FRAME_LEN)).count() as u32;
            v.clear();
        }
        let run = clock.run(n as u64);
        if got < n {
            return Err(anyhow!(
                "xdp drained only {got} of {n} frames ({} missed)",
                port.stats()?.imissed
            ));
        }
        Ok(run)
    })
}

fn bench_fwd(name: &str, n: u32) -> Result<Run> {
    if !name.starts_with("xdp") {
        return pkt::bench_fwd(name, n);
    }
    in_netns(|| {
        let (_, ak) = veth("bxa")?;
        veth("bxb")?;
        let inj = RawSocket::injector(ak)?;
        inj.set_qdisc_bypass(true)?;
        let ring = n.next_power_of_two();
        let a = open_port(name, "bxap", ring)?;
        let b = open_port(name, "bxbp", 2048)?;
        up_and_running(&["bxak".into(), "bxbk".into()], false)?;
        // One pool, one UMEM: both ports' sockets share it.
        let pool = umem_pool(ring + 2048)?;
        let mut arx = a.rx_queue(0, &pool)?;
        let _brx = b.rx_queue(0, &pool)?;
        let mut btx = b.tx_queue(0)?;
        for i in 0..n {
            inj.send(&frame(i))?;
        }
        settled(&mut arx)?;
        let mut v = Vec::with_capacity(2 * BURST);
        let clock = Clock::start();
        let deadline = clock.wall + Duration::from_secs(20);
        while btx.stats().packets < n as u64 && Instant::now() < deadline {
            if v.len() < BURST {
                arx.rx_burst(&mut v, BURST)?;
            }
            btx.tx_burst(&mut v)?;
        }
        let sent = btx.stats().packets;
        let run = clock.run(sent);
        if sent < n as u64 {
            return Err(anyhow!("forwarded only {sent} of {n} frames"));
        }
        if b.xstat("tx_q0_copied") != Some(0) {
            return Err(anyhow!(
                "the forwarder copied frames: the UMEM was not shared"
            ));
        }
        Ok(run)
    })
}

/// Runs `xdp-tx`, `xdp-txp`, `xdp-rx` or `xdp-fwd` for every chosen
/// contender, repetitions interleaved; one cell per contender, the median of
/// its runs.
pub(super) fn run(
    test: &'static str,
    opts: &BenchOpts,
    progress: &mut impl FnMut(&str),
) -> Result<Vec<Cell>> {
    let secs = if opts.quick { 0.5 } else { 1.0 };
    let all: &[&'static str] = if test == "xdp-rx" {
        &XDP_RX_CONTENDERS
    } else {
        &XDP_CONTENDERS
    };
    pkt::ring_cells(test, all, opts, progress, |c| match test {
        "xdp-tx" => bench_tx(c, secs, None),
        "xdp-txp" => bench_tx(c, secs.max(1.0), Some(pkt::PACED_PPS)),
        "xdp-rx" => bench_rx(c, N),
        _ => bench_fwd(c, N),
    })
}
