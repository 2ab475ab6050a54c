//! `--mode vpn-mt`: the VPN path of `--mode vpn` as an async application on
//! tokio's multi-thread runtime writes it (`rtap::mt`): each queue pair of
//! each port on its driver thread (or, `--mt-drive tasks`, driven by the
//! tasks themselves on tokio's workers); per direction one task reads and cuts each
//! GSO packet into MTU-sized ones, a task per packet read runs a keystream
//! pass twice over its pieces (a stand-in for encrypting and decrypting) on
//! whichever worker tokio picks, and one task merges them back in order and
//! sends. The busy-poll
//! `--mode vpn` is the same work on one thread.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use rtap::mt::{MtConfig, MtQueue, MtRx, MtTx};
use rtap::wire::gro::Coalescer;
use rtap::wire::gso;
use rtap::wire::vnet::VnetHdr;
use rtap::{Packet, PoolConfig, Port};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::options::FwdOpts;
use super::report::{lro_count, FwdReport, PortReport, WorkerReport};

/// Forwards between two TUN ports until `stop` or the duration; every queue
/// pair forwarded both ways.
pub(super) fn run_to_end(
    ports: &[Arc<Port>],
    opts: &FwdOpts,
    stop: &AtomicBool,
    ready: &AtomicBool,
) -> Result<FwdReport> {
    let [a, b] = ports else {
        return Err(anyhow!(
            "--mode vpn-mt needs two ports, got {}",
            ports.len()
        ));
    };
    let pairs = a.queue_count().min(b.queue_count());
    let base = [a.stats()?, b.stats()?];
    let base_lro = [lro_count(a), lro_count(b)];
    // 64 KiB buffers: a GSO packet in one.
    let cfg = MtConfig::default()
        .pool(PoolConfig::default().count(1024).buf_size(65_536 + 256))
        .burst(opts.burst)
        .drive(opts.mt_drive);
    // Worker threads' CPU time, added as each ends.
    let cpu_ns = Arc::new(AtomicU64::new(0));
    let workers = opts.threads.map_or(2, usize::from).max(1);
    let rt = runtime(workers, &cpu_ns)
        .enable_io()
        .build()
        .context("tokio runtime")?;
    let mut queues = Vec::new();
    {
        // Task-driven queues register their fds with this runtime's reactor.
        let _in = rt.enter();
        for q in 0..pairs {
            for p in [a, b] {
                queues.push(
                    MtQueue::spawn(p, q, cfg.clone())
                        .with_context(|| format!("{} queue {q}", p.name()))?,
                );
            }
        }
    }
    let t0 = Instant::now();
    let tunnels: Vec<JoinHandle<()>> = queues
        .chunks(2)
        .flat_map(|pair| {
            [(0, 1), (1, 0)].map(|(f, t)| rt.spawn(tunnel(pair[f].rx(), pair[t].tx())))
        })
        .collect();
    // Each queue's driver opened its queues before its spawn returned.
    ready.store(true, Ordering::Release);
    let deadline = opts.duration.map(|d| t0 + d);
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = t0.elapsed();
    // Stopping the queues ends the tasks (receives end, sends fail).
    let reports: Vec<_> = queues.into_iter().map(MtQueue::stop).collect();
    rt.block_on(async {
        for t in tunnels {
            let _ = t.await;
        }
    });
    drop(rt);
    let driver_cpu: Duration = reports.iter().map(|r| r.cpu_time).sum();
    let cpu_time = driver_cpu + Duration::from_nanos(cpu_ns.load(Ordering::Relaxed));
    // The queues alternate a, b: what each port's driver could not send.
    let dropped = |i: usize| -> u64 {
        reports
            .iter()
            .skip(i)
            .step_by(2)
            .map(|r| r.tx_dropped_at_stop)
            .sum()
    };
    let port_reports = [a, b]
        .into_iter()
        .enumerate()
        .map(|(i, p)| PortReport::of(p, &base[i], base_lro[i], dropped(i)))
        .collect::<Result<Vec<_>>>()?;
    Ok(FwdReport {
        mode: opts.mode,
        elapsed,
        queue_pairs: pairs,
        ports: port_reports,
        workers: vec![WorkerReport {
            queues: (0..pairs).collect(),
            cpu: None,
            cpu_time,
            rounds: 0,
            empty_rounds: 0,
            pool_capacity: reports.iter().map(|r| r.pool.capacity).sum(),
            pool_available: reports.iter().map(|r| r.pool.available).sum(),
        }],
        error: None,
    })
}

/// A multi-thread runtime of `workers` threads whose CPU time is added to
/// `cpu_ns` as each ends.
pub(crate) fn runtime(workers: usize, cpu_ns: &Arc<AtomicU64>) -> tokio::runtime::Builder {
    let (start, end) = (cpu_ns.clone(), cpu_ns.clone());
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(workers)
        .thread_name("rtap-mt-worker")
        .on_thread_start(move || {
            let now = crate::common::cpu::thread_cpu_s();
            start.fetch_sub((now * 1e9) as u64, Ordering::Relaxed);
        })
        .on_thread_stop(move || {
            let now = crate::common::cpu::thread_cpu_s();
            end.fetch_add((now * 1e9) as u64, Ordering::Relaxed);
        });
    b
}

/// One direction: read and split, transform on any worker (a task per
/// packet read, over its MTU-sized pieces), merge in order, send.
async fn tunnel(rx: MtRx, tx: MtTx) {
    let (order_tx, order_rx) = mpsc::channel::<JoinHandle<Vec<Packet>>>(256);
    let writer = tokio::spawn(merge_and_send(order_rx, tx));
    let mut burst = Vec::with_capacity(64);
    let mut seg = vec![0u8; 65_536];
    while let Ok(n) = rx.recv_burst(&mut burst, 64).await {
        if n == 0 {
            break;
        }
        for p in burst.drain(..) {
            let Ok(mut split) = gso::split(p.data(), p.vnet_hdr()) else {
                continue;
            };
            let mut pieces = Vec::with_capacity(48);
            while let Some(Ok(len)) = split.next_into(&mut seg) {
                // In this thread's own pool: the task may run anywhere.
                if let Ok(s) = rtap::mt::alloc_from(&seg[..len]) {
                    pieces.push(s);
                }
            }
            drop(p);
            let job = tokio::spawn(async move {
                for s in &mut pieces {
                    keystream(s.data_mut());
                    keystream(s.data_mut());
                }
                pieces
            });
            if order_tx.send(job).await.is_err() {
                return;
            }
        }
    }
    drop(order_tx);
    let _ = writer.await;
}

/// Merges the transformed packets in the order they were read and sends the
/// merged ones whenever nothing more waits.
async fn merge_and_send(mut order: mpsc::Receiver<JoinHandle<Vec<Packet>>>, tx: MtTx) {
    let mut gro = Coalescer::new(16);
    let mut out: Vec<Packet> = Vec::with_capacity(64);
    while let Some(job) = order.recv().await {
        let Ok(pieces) = job.await else { continue };
        let mut emit = |bytes: &[u8], h: &VnetHdr| {
            if let Ok(mut m) = rtap::mt::alloc_from(bytes) {
                m.set_vnet_hdr(*h);
                out.push(m);
            }
        };
        for s in &pieces {
            gro.push(s.data(), &mut emit);
        }
        drop(pieces);
        if order.is_empty() {
            gro.flush(&mut emit);
            if tx.send_burst(&mut out).await.is_err() {
                return;
            }
        }
    }
}

/// A stand-in for a cipher over the IP payload of IP packet `p`: a keystream
/// XORed 8 bytes at a time (what a stream cipher's last step does); twice is
/// the identity.
pub(crate) fn keystream(p: &mut [u8]) {
    let mut k: u64 = 0x5eed;
    let Some(payload) = p.get_mut(20..) else {
        return;
    };
    let mut words = payload.chunks_exact_mut(8);
    for w in &mut words {
        k = k.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let v = u64::from_ne_bytes((&*w).try_into().expect("8 bytes")) ^ k;
        w.copy_from_slice(&v.to_ne_bytes());
    }
    for b in words.into_remainder() {
        *b ^= 0x5a;
    }
}
