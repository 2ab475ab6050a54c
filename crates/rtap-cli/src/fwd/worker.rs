//! The forwarding engine: worker threads, each serving its queue pairs with its
//! own pool, the per-round rx/rewrite/tx pass, and sleeping on rx interrupts.

use anyhow::{anyhow, bail, Context, Result};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtap::{Packet, Pool, PoolConfig, Port, PortStats, RxQueue, TxQueue};

use super::options::{FwdMode, FwdOpts, Idle};
use super::report::{lro_count, FwdReport, PortReport, WorkerReport};
use super::responder;

/// The header change a pass applies to each packet before sending it.
#[derive(Clone, Copy)]
enum Rewrite {
    None,
    Swap,
    Set {
        src: [u8; 6],
        dst: [u8; 6],
    },
    Drop,
    Respond(responder::Identity),
    /// Split and merge again ([`Vpn`]).
    Vpn,
}

/// What `--mode vpn` keeps per direction: a coalescer (building merged
/// packets in pool buffers, sent as built), a segment buffer and the packets
/// leaving, all allocated once.
pub(crate) struct Vpn {
    pool: Pool,
    gro: rtap::wire::gro::Merger<Packet>,
    seg: Vec<u8>,
    out: Vec<Packet>,
    /// Packets dropped: not splittable (malformed, or chained across buffers),
    /// or no pool buffer for a merged one.
    dropped: u64,
}

impl Vpn {
    fn new(pool: &Pool, burst: usize) -> Vpn {
        Vpn {
            pool: pool.clone(),
            gro: rtap::wire::gro::Merger::new(16),
            seg: vec![0u8; 65_536],
            out: Vec::with_capacity(burst * 48),
            dropped: 0,
        }
    }

    /// Replaces `buf`'s packets with their split-and-merged forms.
    fn apply(&mut self, buf: &mut Vec<Packet>) {
        let Vpn {
            pool,
            gro,
            seg,
            out,
            dropped,
        } = self;
        let mut sink = rtap::pool::ToPool::new(pool, out);
        for p in buf.drain(..) {
            if p.nb_segs() > 1 {
                *dropped += 1;
                continue;
            }
            let Ok(mut sp) = rtap::wire::gso::split(p.data(), p.vnet_hdr()) else {
                *dropped += 1;
                continue;
            };
            while let Some(r) = sp.next_into(seg) {
                match r {
                    Ok(n) => {
                        gro.push(&seg[..n], &mut sink);
                    }
                    Err(_) => {
                        *dropped += 1;
                        break;
                    }
                }
            }
        }
        gro.flush(&mut sink);
        *dropped += sink.no_buf;
        std::mem::swap(buf, out);
    }
}

impl Rewrite {
    #[inline]
    fn apply(&self, p: &mut Packet) {
        let d = p.data_mut();
        if d.len() < 12 {
            return;
        }
        match *self {
            Rewrite::Swap => {
                let (dst, rest) = d.split_at_mut(6);
                dst.swap_with_slice(&mut rest[..6]);
            }
            Rewrite::Set { src, dst } => {
                d[..6].copy_from_slice(&dst);
                d[6..12].copy_from_slice(&src);
            }
            Rewrite::None | Rewrite::Drop | Rewrite::Respond(_) | Rewrite::Vpn => {}
        }
    }
}

/// Buffers a worker needs so that no rx queue ever starves: every posted read and
/// every tx slot of both ports, plus bursts on the way.
/// True if a port may hand up 64 KiB coalesced frames (offloads on): the pool then
/// gets buffers that hold a whole one, so each frame is one buffer and rx can use
/// multishot read.
fn big_frames(ports: &[Arc<Port>]) -> bool {
    ports.iter().any(|p| p.offloads().any_gso())
}

/// Buffer size for the forwarding pool: one buffer per 64 KiB coalesced frame
/// where a port hands those up, unless a port takes the pool's memory as its
/// own and limits its buffers (an xdp port's UMEM): then the default, and the
/// coalesced frames come as chains.
fn buf_size(ports: &[Arc<Port>]) -> u32 {
    let limited = ports.iter().any(|p| p.info().max_buffer.is_some());
    if big_frames(ports) && !limited {
        // Headroom + 64 KiB frame + one spare byte, rounded up.
        (PoolConfig::default().headroom as usize + rtap::pool::MAX_PACKET_LEN + 64) as u32
    } else {
        PoolConfig::default().buf_size
    }
}

fn pool_needed(ports: &[Arc<Port>], burst: usize, pool: &PoolConfig) -> Result<u32> {
    let mut held = 0;
    for p in ports {
        held += p.queue_buffers(pool)?;
    }
    Ok((held + 4 * burst + 64) as u32)
}

/// Which queue pairs each worker serves: of the pairs not in `skip`, worker
/// `w` of `threads` takes the `w`-th, the `w + threads`-th, ...
pub fn assign_queues(pairs: u16, threads: u16, skip: &[u16]) -> Vec<Vec<u16>> {
    let own: Vec<u16> = (0..pairs).filter(|q| !skip.contains(q)).collect();
    let threads = (threads as usize).clamp(1, own.len().max(1));
    (0..threads)
        .map(|w| own.iter().copied().skip(w).step_by(threads).collect())
        .collect()
}

/// Forwards between `ports` (one or two, started) until `stop` is raised or
/// `opts.duration` passes, then drops every queue and returns the counters.
/// With one port, packets go back out of the port they came in on.
///
/// The ports stay started; stopping them is the caller's job. `ready` rises
/// once every worker has opened its queues and forwards (traffic sent before
/// waits in the kernel's queues, or is lost where they are short).
pub fn run(
    ports: &[Arc<Port>],
    opts: &FwdOpts,
    stop: &AtomicBool,
    ready: &AtomicBool,
) -> Result<FwdReport> {
    let r = run_to_end(ports, opts, stop, ready)?;
    match &r.error {
        Some(e) => Err(anyhow!("{e}")),
        None => Ok(r),
    }
}

/// [`run`], but a worker's failure (a port that vanished, ...) still gives the
/// report of everything forwarded until then, with the failure in
/// [`FwdReport::error`]; only setup failures are errors.
pub fn run_to_end(
    ports: &[Arc<Port>],
    opts: &FwdOpts,
    stop: &AtomicBool,
    ready: &AtomicBool,
) -> Result<FwdReport> {
    if opts.mode == FwdMode::VpnMt {
        return super::mt::run_to_end(ports, opts, stop, ready);
    }
    if ports.is_empty() || ports.len() > 2 {
        return Err(anyhow!("fwd needs one or two ports, got {}", ports.len()));
    }
    for p in ports {
        if !p.is_started() {
            return Err(anyhow!("port {} is not started", p.name()));
        }
    }
    let pairs = ports[0].queue_count();
    if let Some(b) = ports.get(1) {
        if b.queue_count() != pairs {
            return Err(anyhow!(
                "the ports have different queue counts ({} has {pairs}, {} has {}): give both the same queues=N",
                ports[0].name(),
                b.name(),
                b.queue_count()
            ));
        }
    }
    if opts.burst == 0 {
        bail!("burst must be at least 1");
    }
    if let Some(q) = opts.skip_queues.iter().find(|&&q| q >= pairs) {
        bail!("--serve-queues: queue {q} does not exist (the ports have {pairs} queue pair(s))");
    }
    let own = pairs - opts.skip_queues.len() as u16;
    if own == 0 {
        bail!("--serve-queues leaves no queue pair to forward on: keep at least one");
    }
    let threads = opts.threads.unwrap_or(own);
    if threads == 0 || threads > own {
        return Err(anyhow!(
            "--threads {threads}: give 1 to {own} (one worker serves one or more of the {own} queue pair(s) it forwards on)"
        ));
    }
    let groups = assign_queues(pairs, threads, &opts.skip_queues);
    let shape = PoolConfig::default().buf_size(buf_size(ports));
    let needed = pool_needed(ports, opts.burst, &shape)?;
    let pool_size = |n_pairs: usize| match opts.pool_size {
        Some(n) => n,
        None if big_frames(ports) => needed.min(2048) * n_pairs as u32,
        None => (needed * n_pairs as u32).max(4096),
    };
    // The busiest worker (the first) serves the most queue pairs.
    let busiest = needed * groups[0].len() as u32;
    if let Some(n) = opts.pool_size.filter(|&n| n < busiest) {
        tracing::warn!(
            pool = n,
            needed = busiest,
            "pool smaller than the rings can hold: expect rx nombuf drops"
        );
    }
    let base: Vec<PortStats> = ports
        .iter()
        .map(|p| p.stats().with_context(|| format!("{}: stats", p.name())))
        .collect::<Result<_, _>>()?;
    let base_lro: Vec<u64> = ports.iter().map(|p| lro_count(p)).collect();

    // Raised when the run ends for any reason (stop, deadline, a failed worker).
    let done = AtomicBool::new(false);
    let failed = AtomicBool::new(false);
    // Packets the workers gave up sending, per destination port (bumped only when
    // a burst is dropped, read by the live statistics).
    let dropped = [AtomicU64::new(0), AtomicU64::new(0)];
    // Buffers each worker's pool has out (in queues, in flight, in bursts),
    // stored by the worker once per round, read by the live statistics.
    let pool_use: Vec<AtomicU64> = groups.iter().map(|_| AtomicU64::new(0)).collect();
    let pool_total: u64 = groups.iter().map(|g| u64::from(pool_size(g.len()))).sum();
    // Workers whose queues are open; the last one raises `ready`.
    let started = AtomicUsize::new(0);
    let mut live = opts
        .stats_period
        .map(|p| super::live::Live::new(ports, p, opts.stats_json));
    let t0 = Instant::now();
    let mut since = None;
    let forwarding_since = &mut since;
    let results: Vec<Result<WorkerReport>> = std::thread::scope(|s| {
        let handles: Vec<_> = groups
            .iter()
            .enumerate()
            .map(|(w, queues)| {
                let (done, failed, dropped, pool_use) = (&done, &failed, &dropped, &pool_use);
                let (started, all) = (&started, groups.len());
                let cpu = (!opts.cpus.is_empty()).then(|| opts.cpus[w % opts.cpus.len()]);
                let pool = pool_size(queues.len());
                std::thread::Builder::new()
                    .name(format!("rtap-fwd-{w}"))
                    .spawn_scoped(s, move || {
                        let out = Outputs {
                            dropped,
                            pool_use: &pool_use[w],
                            started: (started, all, ready),
                        };
                        let r = worker(ports, queues, cpu, pool, opts, done, out);
                        if r.is_err() {
                            failed.store(true, Ordering::SeqCst);
                        }
                        r
                    })
                    .context("spawn worker thread")
            })
            .collect();
        // The duration counts from when every worker forwards (a slow
        // machine's setup does not eat it); until then it is bounded by the
        // duration plus a minute.
        let mut deadline = opts.duration.map(|d| t0 + d + Duration::from_secs(60));
        let mut t_ready = None;
        while !stop.load(Ordering::Relaxed) && !failed.load(Ordering::Relaxed) {
            if t_ready.is_none() && ready.load(Ordering::Acquire) {
                let now = Instant::now();
                t_ready = Some(now);
                deadline = opts.duration.map(|d| now + d);
            }
            let mut wake = Instant::now() + Duration::from_millis(20);
            if let Some(dl) = deadline {
                if Instant::now() >= dl {
                    break;
                }
                wake = wake.min(dl);
            }
            if let Some(l) = &live {
                wake = wake.min(l.due());
            }
            std::thread::sleep(wake.saturating_duration_since(Instant::now()));
            if let Some(l) = &mut live {
                let in_use = pool_use.iter().map(|u| u.load(Ordering::Relaxed)).sum();
                l.tick(
                    &dropped.each_ref().map(|d| d.load(Ordering::Relaxed)),
                    Some((in_use, pool_total)),
                );
            }
        }
        done.store(true, Ordering::SeqCst);
        *forwarding_since = t_ready;
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|_| Err(anyhow!("a forwarding worker panicked"))),
                Err(e) => Err(e),
            })
            .collect()
    });
    // Rates are over the time the workers forwarded.
    let elapsed = since.unwrap_or(t0).elapsed();

    let mut workers = Vec::new();
    let mut error = None;
    for r in results {
        match r {
            Ok(w) => workers.push(w),
            Err(e) => {
                error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    let reports = ports
        .iter()
        .enumerate()
        .map(|(i, p)| PortReport::of(p, &base[i], base_lro[i], dropped[i].load(Ordering::Relaxed)))
        .collect::<Result<Vec<_>>>()?;
    Ok(FwdReport {
        mode: opts.mode,
        elapsed,
        queue_pairs: pairs,
        ports: reports,
        workers,
        error,
    })
}

/// One direction's queues.
struct Side {
    rx: RxQueue,
    tx: TxQueue,
}

/// One queue pair's queues: port A's, and port B's when there are two ports.
struct PairQueues {
    q: u16,
    a: Side,
    b: Option<Side>,
}

/// What a worker publishes while it runs, read by the control thread.
struct Outputs<'a> {
    /// Packets given up, per destination port.
    dropped: &'a [AtomicU64; 2],
    /// Buffers out of this worker's pool, stored once per round.
    pool_use: &'a AtomicU64,
    /// Workers with their queues open, how many there are, and the flag the
    /// last of them raises.
    started: (&'a AtomicUsize, usize, &'a AtomicBool),
}

/// Forwards queue pairs `queues` until `done`, pinned to `cpu` if given.
fn worker(
    ports: &[Arc<Port>],
    queues: &[u16],
    cpu: Option<usize>,
    pool_size: u32,
    opts: &FwdOpts,
    done: &AtomicBool,
    out: Outputs<'_>,
) -> Result<WorkerReport> {
    let Outputs {
        dropped,
        pool_use,
        started: (started, all, ready),
    } = out;
    let cpu_pinned = match cpu {
        Some(c) => {
            crate::common::cpu::pin(c).with_context(|| format!("pin worker to CPU {c}"))?;
            let now = crate::common::cpu::allowed().context("sched_getaffinity")?;
            if now != [c] {
                return Err(anyhow!("pinned to CPU {c} but may run on {now:?}"));
            }
            Some(c)
        }
        None => None,
    };
    let cpu0 = crate::common::cpu::thread_cpu_s();
    let pool = Pool::new(
        PoolConfig::default()
            .count(pool_size)
            .buf_size(buf_size(ports)),
    )
    .context("worker pool")?;
    let open = |p: &Port, q: u16| -> Result<Side> {
        let rx = p
            .rx_queue(q, &pool)
            .with_context(|| format!("{} rx queue {q}", p.name()))?;
        let tx = p
            .tx_queue(q)
            .with_context(|| format!("{} tx queue {q}", p.name()))?;
        Ok(Side { rx, tx })
    };
    let name = |i: usize| ports[i].name();
    let mut mine = Vec::with_capacity(queues.len());
    for &q in queues {
        let mut pq = PairQueues {
            q,
            a: open(&ports[0], q)?,
            b: match ports.get(1) {
                Some(p) => Some(open(p, q)?),
                None => None,
            },
        };
        if let Idle::Interrupt { .. } = opts.idle {
            for (i, rx) in std::iter::once(&mut pq.a.rx)
                .chain(pq.b.as_mut().map(|b| &mut b.rx))
                .enumerate()
            {
                rx.enable_interrupt()
                    .with_context(|| format!("{} rx queue {q}: interrupts", name(i)))?;
            }
        }
        mine.push(pq);
    }
    tracing::debug!(?queues, ?cpu, pool = pool_size, idle = %opts.idle, "forwarding worker running");

    // The rewrite for packets sent out of port i (its MAC is the new source in mac mode).
    let mut rw = [Rewrite::None; 2];
    for (i, p) in ports.iter().enumerate() {
        rw[i] = match opts.mode {
            FwdMode::Io => Rewrite::None,
            FwdMode::Vpn | FwdMode::VpnMt => Rewrite::Vpn,
            FwdMode::MacSwap => Rewrite::Swap,
            FwdMode::RxOnly => Rewrite::Drop,
            FwdMode::IcmpEcho { ipv4, ipv6 } => Rewrite::Respond(responder::Identity {
                mac: p
                    .mac()
                    .with_context(|| format!("{}: MAC", p.name()))?
                    .octets(),
                ipv4,
                ipv6,
            }),
            FwdMode::Mac { peer } => Rewrite::Set {
                src: p
                    .mac()
                    .with_context(|| format!("{}: MAC", p.name()))?
                    .octets(),
                dst: peer,
            },
        };
    }
    let mut vpn = [Vpn::new(&pool, opts.burst), Vpn::new(&pool, opts.burst)];
    let mut irq_fds = interrupt_fds(&mine);
    let publish_pool = || {
        let out = pool.capacity() as usize - pool.available();
        pool_use.store(out as u64, Ordering::Relaxed);
    };
    let mut buf: Vec<Packet> = Vec::with_capacity(opts.burst);
    let mut empty = 0u32;
    let (mut rounds, mut empty_rounds) = (0u64, 0u64);
    if started.fetch_add(1, Ordering::AcqRel) + 1 == all {
        ready.store(true, Ordering::Release);
    }
    while !done.load(Ordering::Relaxed) {
        rounds += 1;
        let mut moved = 0;
        for pq in mine.iter_mut() {
            moved += round(pq, &mut buf, opts, &rw, &mut vpn, dropped, &name)?;
        }
        publish_pool();
        if moved != 0 {
            empty = 0;
            continue;
        }
        empty = empty.saturating_add(1);
        empty_rounds += 1;
        if empty == 1 {
            // Nothing came in: the tx queues get one call anyway, so frames a kick
            // could not send yet (a busy device, a full completion ring) are kicked
            // again and completions return to the pool before the worker idles.
            tx_service(&mut mine, &mut buf, &name)?;
            publish_pool();
        }
        match opts.idle {
            Idle::Yield { after } if empty > after => std::thread::yield_now(),
            Idle::Sleep { after, nap } if empty > after => std::thread::sleep(nap),
            Idle::Interrupt { after } if empty > after => {
                // Completions of sends in flight go back to the pool first, so that
                // receives do not starve while this thread sleeps.
                tx_service(&mut mine, &mut buf, &name)?;
                publish_pool();
                sleep_on_rx(&mut irq_fds, &mut mine).context("rx wait")?;
            }
            _ => std::hint::spin_loop(),
        }
    }
    // Let transmissions in flight complete so the counters are final.
    let flush = Duration::from_secs(1);
    for pq in mine.iter_mut() {
        pq.a.tx.flush(flush);
        if let Some(b) = &mut pq.b {
            b.tx.flush(flush);
        }
    }
    drop(mine);
    drop(vpn);
    drop(buf);
    let pool_available = pool.available();
    pool_use.store(
        (pool.capacity() as usize - pool_available) as u64,
        Ordering::Relaxed,
    );
    if pool_available != pool.capacity() as usize {
        tracing::warn!(
            capacity = pool.capacity(),
            available = pool_available,
            "worker pool not full again after its queues closed"
        );
    }
    let cpu = crate::common::cpu::thread_cpu_s() - cpu0;
    Ok(WorkerReport {
        queues: queues.to_vec(),
        cpu: cpu_pinned,
        cpu_time: Duration::from_secs_f64(cpu.max(0.0)),
        rounds,
        empty_rounds,
        pool_capacity: pool.capacity(),
        pool_available,
    })
}

/// An empty tx burst on every tx queue: reaps completions (their buffers go
/// back to the pool) and kicks frames still waiting in a ring.
fn tx_service(
    mine: &mut [PairQueues],
    buf: &mut Vec<Packet>,
    name: &impl Fn(usize) -> String,
) -> Result<()> {
    buf.clear();
    for pq in mine.iter_mut() {
        pq.a.tx.tx_burst(buf).with_context(|| name(0))?;
        if let Some(b) = &mut pq.b {
            b.tx.tx_burst(buf).with_context(|| name(1))?;
        }
    }
    Ok(())
}

/// One polling round of one queue pair: an rx burst on each port, handed to the
/// tx queue the mode sends it to. Returns packets received.
#[allow(clippy::too_many_arguments)]
fn round(
    pq: &mut PairQueues,
    buf: &mut Vec<Packet>,
    opts: &FwdOpts,
    rw: &[Rewrite; 2],
    vpn: &mut [Vpn; 2],
    dropped: &[AtomicU64; 2],
    name: &impl Fn(usize) -> String,
) -> Result<usize> {
    let q = pq.q;
    let a = &mut pq.a;
    let [va, vb] = vpn;
    Ok(match (&mut pq.b, opts.mode) {
        // macswap, rxonly and icmpecho keep each port's packets on that port.
        (Some(b), FwdMode::MacSwap | FwdMode::RxOnly | FwdMode::IcmpEcho { .. }) => {
            let aa = pass(&mut a.rx, &mut a.tx, buf, opts, rw[0], va, &dropped[0])
                .with_context(|| format!("{} queue {q}", name(0)))?;
            let bb = pass(&mut b.rx, &mut b.tx, buf, opts, rw[1], vb, &dropped[1])
                .with_context(|| format!("{} queue {q}", name(1)))?;
            aa + bb
        }
        (Some(b), _) => {
            let ab = pass(&mut a.rx, &mut b.tx, buf, opts, rw[1], vb, &dropped[1])
                .with_context(|| format!("{} -> {} queue {q}", name(0), name(1)))?;
            let ba = pass(&mut b.rx, &mut a.tx, buf, opts, rw[0], va, &dropped[0])
                .with_context(|| format!("{} -> {} queue {q}", name(1), name(0)))?;
            ab + ba
        }
        (None, _) => pass(&mut a.rx, &mut a.tx, buf, opts, rw[0], va, &dropped[0])
            .with_context(|| format!("{} queue {q}", name(0)))?,
    })
}

/// The rx queues' interrupt fds, for [`sleep_on_rx`] (built once per worker).
fn interrupt_fds(mine: &[PairQueues]) -> Vec<libc::pollfd> {
    mine.iter()
        .flat_map(|pq| std::iter::once(&pq.a.rx).chain(pq.b.as_ref().map(|b| &b.rx)))
        .filter_map(|rx| rx.interrupt_fd())
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect()
}

/// Sleeps until one of the rx queues has something (or [`Idle::IRQ_MAX`]), then
/// re-arms their interrupts: `wait(0)` clears the eventfd and runs the ring's
/// pending completion work, so a frame arriving after it wakes the next sleep.
fn sleep_on_rx(fds: &mut [libc::pollfd], mine: &mut [PairQueues]) -> rtap::Result<()> {
    // Readiness is all that matters: an error here is a short sleep.
    let _ = rawsock::poll_fds(fds, Idle::IRQ_MAX);
    for pq in mine.iter_mut() {
        pq.a.rx.wait(Duration::ZERO)?;
        if let Some(b) = &mut pq.b {
            b.rx.wait(Duration::ZERO)?;
        }
    }
    Ok(())
}

/// The io mode on an rx queue that lends its ring (an AF_PACKET port): each
/// frame is copied once, from where it lies into the tx queue (straight into
/// a packet port's tx ring, else into a pool packet). Frames the tx queue
/// cannot take after the retries stay in the rx ring for the next round, so
/// nothing is dropped here (a ring that fills makes the kernel drop, counted
/// in `imissed`). While they wait the rx queue stays ready, so a worker
/// whose egress is blocked polls instead of sleeping on interrupts. Returns
/// frames moved.
fn pass_in_place(
    rx: &mut RxQueue,
    tx: &mut TxQueue,
    pool: &Pool,
    opts: &FwdOpts,
) -> rtap::Result<usize> {
    let mut err = None;
    let n = rx.rx_inplace(opts.burst, |frames| {
        let mut k = 0;
        for _ in 0..=opts.tx_retries {
            match tx.tx_frames(&frames[k..], pool) {
                Ok(m) => k += m,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
            if k == frames.len() {
                break;
            }
            std::hint::spin_loop();
        }
        k
    })?;
    match err {
        Some(e) => Err(e),
        None => Ok(n),
    }
}

/// One rx burst handed to `tx`; returns packets received.
fn pass(
    rx: &mut RxQueue,
    tx: &mut TxQueue,
    buf: &mut Vec<Packet>,
    opts: &FwdOpts,
    rewrite: Rewrite,
    vpn: &mut Vpn,
    dropped: &AtomicU64,
) -> rtap::Result<usize> {
    debug_assert!(buf.is_empty());
    if matches!(rewrite, Rewrite::None) && rx.in_place() {
        return pass_in_place(rx, tx, &vpn.pool, opts);
    }
    let n = rx.rx_burst(buf, opts.burst)?;
    if n == 0 {
        return Ok(0);
    }
    match rewrite {
        Rewrite::Drop => {
            buf.clear(); // rxonly: counted by the rx queue, buffers back to the pool
            return Ok(n);
        }
        Rewrite::None => {}
        Rewrite::Vpn => {
            vpn.apply(buf);
            if vpn.dropped > 0 {
                dropped.fetch_add(std::mem::take(&mut vpn.dropped), Ordering::Relaxed);
            }
        }
        Rewrite::Respond(id) => {
            // Requests become their replies in place; anything else is not ours.
            buf.retain_mut(|p| {
                let answered = responder::respond(p.data_mut(), &id) != responder::Answer::Ignore;
                p.set_vnet_hdr(Default::default());
                answered
            });
        }
        r => buf.iter_mut().for_each(|p| r.apply(p)),
    }
    let mut tries = 0;
    loop {
        tx.tx_burst(buf)?;
        if buf.is_empty() {
            break;
        }
        if tries == opts.tx_retries {
            dropped.fetch_add(buf.len() as u64, Ordering::Relaxed);
            buf.clear(); // the buffers go back to the pool
            break;
        }
        tries += 1;
        std::hint::spin_loop();
    }
    Ok(n)
}
