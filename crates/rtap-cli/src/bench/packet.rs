//! The AF_PACKET packet-rate tests: 64-byte frames over veth pairs, one queue,
//! each run in a private network namespace on its own thread.
//!
//! - **pkt-tx**: the port sends bursts of 32 frames out of a veth for a fixed
//!   time; packets per second = completed transmissions / time.
//! - **pkt-txp**: the same at a fixed rate, [`PACED_PPS`], well below what
//!   either kick reaches: the application thread sleeps between bursts, so its
//!   CPU per packet is its own work, not waiting (the "per application core"
//!   figure); the SQ thread's is shown beside it.
//! - **pkt-rx**: the rx ring is first filled from the veth peer, then timed
//!   until drained; the application reads every byte of every frame. Contenders: `packet` (rtap's port: each frame copied into a
//!   pool buffer and its slot handed back at once), `ring-inplace` (a bare ring
//!   read in place, no buffers: the floor of any ring reader, what handing out
//!   ring frames in place could at best save) and `rawsock`.
//! - **pkt-rx-1500**: the same with 1500-byte frames: what grows with the
//!   frame size between `packet` and `ring-inplace` is the copy.
//! - **pkt-fwd**: port A's rx ring is first filled from its veth peer (ring
//!   sized to hold every frame, so the generator is not what is measured), then
//!   an io-mode forwarder (rx on A, the same packets sent on B) is timed until B
//!   has completed every transmission.
//!
//! Contenders ([`PKT_CONTENDERS`]; `pkt-fwd` also runs `packet-uring-inplace`
//! and `packet-sendto-inplace`, the in-place forwarder: each frame lent from
//! A's rx ring and copied once, into B's tx ring): `packet-uring` (rtap's packet port, tx
//! kicked by an io_uring send the SQPOLL kernel thread issues), `packet-sendto`
//! (the same port, one `send()` per burst: DPDK net_af_packet's kick), and
//! `rawsock` (a plain AF_PACKET socket, one `send()` / `recv()` per frame).
//! Besides the rate: CPU ns per packet of the application thread and of the SQ
//! thread, separately (the kick moves the kernel's transmit work, veth included,
//! from one to the other).

use anyhow::{anyhow, Context, Result};
use std::time::{Duration, Instant};

use rawsock::RawSocket;
use rtap::{Kick, Packet, PacketConfig, Pool, PoolConfig, Port, SqPoll, TxQueue};

use super::clock::{Clock, Run};
use super::pps::{frame, in_netns, BURST, FRAME_LEN};
use super::results::{Cell, Unit};
use super::{chosen, interrupted, median, BenchOpts};

/// The contenders of `pkt-tx`.
pub const PKT_CONTENDERS: [&str; 3] = ["packet-uring", "packet-sendto", "rawsock"];

/// The contenders of `pkt-fwd`: those of `pkt-tx`, and the same two kicks
/// forwarding in place (each frame lent from A's rx ring and copied once,
/// into B's tx ring, instead of through a pool buffer).
pub const PKT_FWD_CONTENDERS: [&str; 5] = [
    "packet-uring",
    "packet-sendto",
    "packet-uring-inplace",
    "packet-sendto-inplace",
    "rawsock",
];

/// The contenders of `pkt-rx` (the kick plays no part in receiving).
pub const PKT_RX_CONTENDERS: [&str; 3] = ["packet", "ring-inplace", "rawsock"];

/// The rate of `pkt-txp`, packets per second.
pub const PACED_PPS: f64 = 200_000.0;

/// Slot size of the bench's rings: a 64-byte frame and the slot header fit.
const SLOT: u32 = 256;

fn ip(args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .context("run ip (install iproute2)")?;
    if !out.status.success() {
        return Err(anyhow!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// A veth pair `{tag}p` (the contender's end) / `{tag}k` (up); the ifindex of
/// each end.
pub(super) fn veth(tag: &str) -> Result<(u32, u32)> {
    let (p, k) = (format!("{tag}p"), format!("{tag}k"));
    ip(&["link", "add", &p, "type", "veth", "peer", "name", &k])?;
    ip(&["link", "set", &k, "up"])?;
    let idx = |n: &str| rawsock::if_index(n).ok_or_else(|| anyhow!("no interface {n}"));
    Ok((idx(&p)?, idx(&k)?))
}

/// Brings `ifindex`'s end up (for the raw socket, which has no port to do it)
/// and waits until both ends are operational: a veth sends nothing before.
pub(super) fn up_and_running(names: &[String], bring_up: bool) -> Result<()> {
    for n in names {
        if bring_up {
            ip(&["link", "set", n, "up"])?;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for n in names {
        loop {
            let out = std::process::Command::new("ip")
                .args(["-o", "link", "show", "dev", n])
                .output()
                .context("run ip")?;
            if String::from_utf8_lossy(&out.stdout).contains("state UP") {
                break;
            }
            if Instant::now() > deadline {
                return Err(anyhow!("{n} did not come up"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(())
}

/// A started packet port on `iface` for contender `name`, with `frames` slots.
fn open_port(name: &str, iface: &str, frames: u32, slot: u32) -> Result<Port> {
    let kick = if name.starts_with("packet-uring") {
        Kick::Uring
    } else {
        Kick::Sendto
    };
    let cfg = PacketConfig::new(iface)
        .kick(kick)
        .frame_size(slot)
        .frame_count(frames)
        .sqpoll(SqPoll::new(200));
    let p = Port::open(cfg)?;
    if p.engine() != rtap::Engine::tpacket(kick) {
        return Err(anyhow!(
            "{name}: the {kick} kick fell back: {}",
            p.engine_reason().unwrap_or("")
        ));
    }
    p.start()?;
    Ok(p)
}

/// Slots of `slot` bytes for `n` frames: a multiple of the slots per block (a
/// page holds 4096 / `slot`).
fn slots_for(n: u32, slot: u32) -> u32 {
    let per_page = 4096 / slot;
    n.div_ceil(per_page) * per_page
}

/// Sleeps until burst `k` of a paced run is due.
pub(super) fn pace(start: Instant, k: u64, pps: f64) {
    let due = start + Duration::from_secs_f64(k as f64 * BURST as f64 / pps);
    let now = Instant::now();
    if due > now {
        std::thread::sleep(due - now);
    }
}

pub(super) fn bench_tx(name: &str, secs: f64, paced: Option<f64>) -> Result<Run> {
    in_netns(|| {
        let (pi, _) = veth("bpt")?;
        let f = frame(0);
        let deadline_of = |c: &Clock| c.wall + Duration::from_secs_f64(secs);
        if name == "rawsock" {
            let s = RawSocket::injector(pi).context("AF_PACKET socket")?;
            up_and_running(&["bptp".into(), "bptk".into()], true)?;
            let clock = Clock::start();
            let deadline = deadline_of(&clock);
            let mut sent = 0u64;
            let mut k = 0;
            while Instant::now() < deadline {
                if let Some(pps) = paced {
                    pace(clock.wall, k, pps);
                    k += 1;
                }
                for _ in 0..BURST {
                    if s.send(&f).is_ok() {
                        sent += 1;
                    }
                }
            }
            return Ok(clock.run(sent));
        }
        let port = open_port(name, "bptp", 1024, SLOT)?;
        up_and_running(&["bptk".into()], false)?;
        let pool = Pool::new(PoolConfig::default().count(8192))?;
        let mut txq = port.tx_queue(0)?;
        timed_tx(&mut txq, &pool, &f, secs, paced)
    })
}

/// Sends bursts of `f` from `pool` on `txq` for `secs` seconds (paced at `paced`
/// frames per second, else as fast as the queue takes them), then waits for the
/// last completions; the run counts completed sends.
pub(super) fn timed_tx(
    txq: &mut TxQueue,
    pool: &Pool,
    f: &[u8],
    secs: f64,
    paced: Option<f64>,
) -> Result<Run> {
    let mut v: Vec<Packet> = Vec::with_capacity(BURST);
    let base = txq.stats().packets;
    let clock = Clock::start();
    let deadline = clock.wall + Duration::from_secs_f64(secs);
    let mut k = 0;
    while Instant::now() < deadline {
        if let Some(pps) = paced {
            pace(clock.wall, k, pps);
            k += 1;
        }
        while v.len() < BURST {
            match pool.alloc_from(f) {
                Ok(p) => v.push(p),
                Err(_) => break,
            }
        }
        txq.tx_burst(&mut v)?;
    }
    txq.flush(Duration::from_secs(1));
    Ok(clock.run(txq.stats().packets - base))
}

/// Gives the kernel a moment to finish receiving what was injected.
fn settled(settle: bool) {
    if settle {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The application's part of rx: it reads every byte of the frame (a fold
/// over its words, as a checksum would), then checks it is one of ours.
pub(super) fn is_ours(f: &[u8], len: usize) -> bool {
    let mut x = 0u64;
    for w in f.chunks(8) {
        let mut b = [0u8; 8];
        b[..w.len()].copy_from_slice(w);
        x ^= u64::from_ne_bytes(b);
    }
    std::hint::black_box(x);
    f.len() == len && f[12..14] == 0x88b5u16.to_be_bytes()
}

/// A bench frame of `len` bytes: [`frame`] padded with zeros.
fn frame_of(len: usize, seq: u32) -> Vec<u8> {
    let mut f = frame(seq).to_vec();
    f.resize(len, 0);
    f
}

/// Slot size for frames of `len` bytes (slot header, headroom, frame).
fn slot_for(len: usize) -> u32 {
    if len <= FRAME_LEN {
        SLOT
    } else {
        2048
    }
}

pub(super) fn bench_rx(name: &str, n: u32, len: usize) -> Result<Run> {
    bench_rx_settled(name, n, len, false)
}

/// `bench_rx`; with `settle`, the clock starts only once the kernel has had a
/// moment to finish putting the injected frames where the contender reads
/// them (veth's NAPI runs after the sends return), so only the drain is timed.
pub(super) fn bench_rx_settled(name: &str, n: u32, len: usize, settle: bool) -> Result<Run> {
    in_netns(|| {
        let (ai, ak) = veth("bpr")?;
        let inj = RawSocket::injector(ak)
            .and_then(|s| s.set_qdisc_bypass(true).map(|()| s))
            .context("AF_PACKET socket")?;
        let fill = || -> Result<()> {
            for i in 0..n {
                inj.send(&frame_of(len, i)).context("AF_PACKET send")?;
            }
            Ok(())
        };
        let slot = slot_for(len);
        let mut got = 0u32;
        // Each arm reads the clock as its drain ends: its ring or port is torn
        // down (tens of milliseconds for a large ring) after that, untimed.
        let deadline = Instant::now() + Duration::from_secs(30);
        let run = match name {
            "ring-inplace" => {
                let mut ring =
                    rawsock::InPlaceRing::bind(ai, slot as usize, slots_for(n, slot) as usize)?;
                up_and_running(&["bprp".into(), "bprk".into()], true)?;
                fill()?;
                settled(settle);
                let clock = Clock::start();
                while got < n && Instant::now() < deadline {
                    ring.drain(BURST, |f| got += is_ours(f, len) as u32);
                }
                clock.run(n as u64)
            }
            "rawsock" => {
                let s = RawSocket::bind(ai).context("AF_PACKET socket")?;
                s.set_rcvbuf(n as usize * (2 * len + 1024))?;
                up_and_running(&["bprp".into(), "bprk".into()], true)?;
                fill()?;
                settled(settle);
                let mut buf = [0u8; 2048];
                let clock = Clock::start();
                while got < n && Instant::now() < deadline {
                    if let Some(r) = s.try_recv(&mut buf)? {
                        got += is_ours(&buf[..r.len], len) as u32;
                    }
                }
                clock.run(n as u64)
            }
            _ => {
                let port = open_port("packet-sendto", "bprp", slots_for(n, slot), slot)?;
                up_and_running(&["bprk".into()], false)?;
                let pool = Pool::new(PoolConfig::default().count(8192))?;
                fill()?;
                settled(settle);
                let mut rxq = port.rx_queue(0, &pool)?;
                let mut v = Vec::with_capacity(BURST);
                let clock = Clock::start();
                while got < n && Instant::now() < deadline {
                    rxq.rx_burst(&mut v, BURST)?;
                    got += v.iter().filter(|p| is_ours(p.data(), len)).count() as u32;
                    v.clear();
                }
                clock.run(n as u64)
            }
        };
        if got < n {
            return Err(anyhow!("{name} drained only {got} of {n} frames"));
        }
        Ok(run)
    })
}

pub(super) fn bench_fwd(name: &str, n: u32) -> Result<Run> {
    in_netns(|| {
        let (ai, ak) = veth("bpa")?;
        let (bi, _) = veth("bpb")?;
        // Straight to the driver (no qdisc): the fill is as fast as it gets.
        let inj = RawSocket::injector(ak)
            .and_then(|s| s.set_qdisc_bypass(true).map(|()| s))
            .context("AF_PACKET socket")?;
        let fill = || -> Result<()> {
            for i in 0..n {
                inj.send(&frame(i)).context("AF_PACKET send")?;
            }
            Ok(())
        };
        if name == "rawsock" {
            let a = RawSocket::bind(ai).context("AF_PACKET socket")?;
            a.set_rcvbuf(n as usize * 1024)?;
            let b = RawSocket::injector(bi).context("AF_PACKET socket")?;
            up_and_running(
                &["bpap".into(), "bpak".into(), "bpbp".into(), "bpbk".into()],
                true,
            )?;
            fill()?;
            let mut buf = [0u8; 2048];
            let mut fwd = 0u32;
            let clock = Clock::start();
            let deadline = clock.wall + Duration::from_secs(20);
            while fwd < n && Instant::now() < deadline {
                if let Some(r) = a.try_recv(&mut buf)? {
                    if r.len == FRAME_LEN && !r.outgoing && b.send(&buf[..r.len]).is_ok() {
                        fwd += 1;
                    }
                }
            }
            if fwd < n {
                return Err(anyhow!("rawsock forwarded only {fwd} of {n} frames"));
            }
            return Ok(clock.run(n as u64));
        }
        let a = open_port(name, "bpap", slots_for(n, SLOT), SLOT)?;
        let b = open_port(name, "bpbp", 1024, SLOT)?;
        up_and_running(&["bpak".into(), "bpbk".into()], false)?;
        let pool = Pool::new(PoolConfig::default().count(8192))?;
        fill()?;
        let st = a.stats()?;
        if st.imissed != 0 {
            return Err(anyhow!("filling dropped {} frames", st.imissed));
        }
        let mut rxq = a.rx_queue(0, &pool)?;
        let mut txq = b.tx_queue(0)?;
        let mut v = Vec::with_capacity(2 * BURST);
        let inplace = name.ends_with("-inplace");
        if inplace && !rxq.in_place() {
            return Err(anyhow!("{name}: the rx queue does not lend its ring"));
        }
        let clock = Clock::start();
        let deadline = clock.wall + Duration::from_secs(20);
        while txq.stats().packets < n as u64 && Instant::now() < deadline {
            if inplace {
                let mut err = None;
                let moved = rxq.rx_inplace(BURST, |fr| {
                    txq.tx_frames(fr, &pool).unwrap_or_else(|e| {
                        err = Some(e);
                        0
                    })
                })?;
                if let Some(e) = err {
                    return Err(e.into());
                }
                if moved == 0 {
                    // Nothing to lend: reap (and kick) what is queued.
                    txq.tx_burst(&mut v)?;
                }
                continue;
            }
            if v.len() < BURST {
                rxq.rx_burst(&mut v, BURST)?;
            }
            txq.tx_burst(&mut v)?;
        }
        let sent = txq.stats().packets;
        let run = clock.run(sent);
        if sent < n as u64 {
            return Err(anyhow!("forwarded only {sent} of {n} frames"));
        }
        Ok(run)
    })
}

/// Runs `pkt-tx`, `pkt-txp`, `pkt-rx` or `pkt-fwd` for every chosen contender, repetitions
/// interleaved; one cell per contender, the median of its runs.
pub(super) fn run(
    test: &'static str,
    opts: &BenchOpts,
    progress: &mut impl FnMut(&str),
) -> Result<Vec<Cell>> {
    let n = if opts.quick { 50_000 } else { 200_000 };
    let secs = if opts.quick { 0.5 } else { 1.0 };
    let all: &[&'static str] = if test.starts_with("pkt-rx") {
        &PKT_RX_CONTENDERS
    } else if test == "pkt-fwd" {
        &PKT_FWD_CONTENDERS
    } else {
        &PKT_CONTENDERS
    };
    ring_cells(test, all, opts, progress, |c| match test {
        "pkt-tx" => bench_tx(c, secs, None),
        "pkt-txp" => bench_tx(c, secs.max(1.0), Some(PACED_PPS)),
        "pkt-rx" => bench_rx(c, n, FRAME_LEN),
        "pkt-rx-1500" => bench_rx(c, n / 4, 1500),
        _ => bench_fwd(c, n),
    })
}

/// The packet-rate cells of a ring test (AF_PACKET or AF_XDP): `one` runs for
/// each chosen contender of `all`, five times (once with `--quick`), the
/// contenders interleaved; a progress line per run with the application's and
/// the SQ thread's CPU per packet; one cell per contender, the median of its
/// runs.
pub(super) fn ring_cells(
    test: &'static str,
    all: &[&'static str],
    opts: &BenchOpts,
    progress: &mut impl FnMut(&str),
    mut one: impl FnMut(&str) -> Result<Run>,
) -> Result<Vec<Cell>> {
    let reps = if opts.quick { 1 } else { 5 };
    let who: Vec<&'static str> = all.iter().copied().filter(|c| chosen(opts, c)).collect();
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); who.len()];
    for rep in 0..reps {
        for (i, c) in who.iter().enumerate() {
            interrupted()?;
            let r = one(c)?;
            progress(&format!(
                "{test:>7} {c:<14} run {}/{reps}: {:>6.2} Mpps, app {:>5.0} ns/pkt, SQ thread {:>5.0} ns/pkt",
                rep + 1,
                r.pps / 1e6,
                r.cpu_ns,
                r.sq_ns
            ));
            runs[i].push(r);
        }
    }
    Ok(who
        .iter()
        .zip(&runs)
        .map(|(c, r)| Cell {
            test,
            contender: c,
            unit: Unit::Pps,
            rate: median(r.iter().map(|x| x.pps).collect()),
            cpu: median(r.iter().map(|x| x.cpu_ns).collect()),
            sq_cpu: median(r.iter().map(|x| x.sq_ns).collect()),
            host_cpu: 0.0,
            lat: None,
        })
        .collect())
}
