//! The `handoff` test: what it costs when a packet is dropped on a thread
//! other than its pool's. `local`: one thread allocates bursts of 32 packets
//! (64 bytes written into each) and drops them (the free list at once).
//! `remote`: the same thread allocates and hands each burst to a second
//! thread through a bounded channel (the vector comes back empty, so nothing
//! is allocated per burst), which drops the packets: their buffers go back
//! through the pool's lock-free stack, which the first thread takes whole
//! when its free list runs dry. Rate, and CPU of both threads per packet.

use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, Result};
use rtap::{Packet, Pool, PoolConfig};

use super::contenders::HANDOFF_CONTENDERS;
use super::results::{own_table, pps_cell, ratios, Cell};
use super::{chosen, interrupted, BenchOpts};
use crate::common::cpu::thread_cpu_s;

const BURST: usize = 32;
const FRAME: [u8; 64] = [0x5a; 64];

/// One run: packets per second and CPU ns per packet (both threads).
fn once(remote: bool, packets: u64) -> Result<(f64, f64)> {
    let pool = Pool::new(PoolConfig::default().count(4096)).context("pool")?;
    let bursts = packets / BURST as u64;
    let cpu0 = thread_cpu_s();
    let t0 = Instant::now();
    let mut other_cpu = 0.0;
    if remote {
        let (to_tx, to_rx) = mpsc::sync_channel::<Vec<Packet>>(8);
        let (back_tx, back_rx) = mpsc::sync_channel::<Vec<Packet>>(16);
        for _ in 0..12 {
            back_tx.send(Vec::with_capacity(BURST)).ok();
        }
        let dropper = std::thread::spawn(move || {
            let c0 = thread_cpu_s();
            for mut v in to_rx {
                v.clear();
                if back_tx.send(v).is_err() {
                    break;
                }
            }
            thread_cpu_s() - c0
        });
        for _ in 0..bursts {
            let mut v = back_rx.recv().context("the dropping thread ended")?;
            fill(&pool, &mut v)?;
            to_tx.send(v).context("the dropping thread ended")?;
        }
        drop(to_tx);
        other_cpu = dropper
            .join()
            .map_err(|_| anyhow::anyhow!("the dropping thread panicked"))?;
    } else {
        let mut v = Vec::with_capacity(BURST);
        for _ in 0..bursts {
            fill(&pool, &mut v)?;
            v.clear();
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = thread_cpu_s() - cpu0 + other_cpu;
    let n = (bursts * BURST as u64) as f64;
    anyhow::ensure!(
        pool.available() == pool.capacity() as usize,
        "buffers missing from the pool after the run"
    );
    Ok((n / secs, cpu * 1e9 / n))
}

/// A burst of packets with 64 bytes each, allocated from `pool` (the
/// buffers given back from elsewhere are taken when the free list runs dry).
fn fill(pool: &Pool, v: &mut Vec<Packet>) -> Result<()> {
    for _ in 0..BURST {
        loop {
            match pool.alloc_from(&FRAME) {
                Ok(p) => {
                    v.push(p);
                    break;
                }
                // Every buffer is on its way back from the other thread.
                Err(_) => std::thread::yield_now(),
            }
        }
    }
    Ok(())
}

/// The handoff test: repetitions interleave the contenders; each cell is the
/// median.
pub(super) fn run(opts: &BenchOpts, progress: &mut impl FnMut(&str)) -> Result<Vec<Cell>> {
    let (packets, reps) = if opts.quick {
        (2_000_000, 1)
    } else {
        (20_000_000, 5)
    };
    let who: Vec<&'static str> = HANDOFF_CONTENDERS
        .iter()
        .copied()
        .filter(|c| chosen(opts, c))
        .collect();
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new(); who.len()];
    for rep in 0..reps {
        for (i, c) in who.iter().enumerate() {
            interrupted()?;
            let r = once(*c == "remote", packets)?;
            progress(&format!(
                " handoff {c:<8} run {}/{reps}: {:>7.2} Mpps, {:>5.1} ns/pkt (both threads)",
                rep + 1,
                r.0 / 1e6,
                r.1
            ));
            runs[i].push(r);
        }
    }
    Ok(who
        .iter()
        .zip(&runs)
        .map(|(c, r)| pps_cell("handoff", c, r))
        .collect())
}

/// The table's rows for the test: rate, CPU per packet, and `remote` against
/// `local`.
pub(super) fn rows(cells: &[Cell]) -> String {
    let cols = [
        ("Mpps", 10),
        ("ns/pkt", 10),
        ("pps vs local", 12),
        ("cpu vs local", 12),
    ];
    own_table(cells, "handoff", &cols, |x, vs| {
        let (pr, cr) = ratios(x, vs);
        vec![
            format!("{:.2}", x.rate / 1e6),
            format!("{:.1}", x.cpu),
            pr,
            cr,
        ]
    })
}
