//! The `csum` test: the software checksum's one's complement sum, the
//! straightforward way (`be-words`: big-endian 32-bit words, what rtap did
//! before) against the fast path (`lanes`: native-endian words in four 64-bit
//! lanes, one swap at the end), over 1500-byte and 64 KiB buffers (an MTU
//! packet, a GSO packet). Sums per second and CPU ns per sum; no I/O.
//! `split-64k`: a 64 KiB TCP/IPv4 TSO packet cut into 1448-byte segments with
//! their checksums (`wire::gso::split`, what a VPN does with each packet its
//! TUN hands it): splits per second, CPU ns per split. `merge-vec-64k` and
//! `merge-pool-64k`: those segments merged back into one packet, in the
//! coalescer's own vectors and then copied into a pool packet (the VPN path
//! before) or built in the pool packet itself (`wire::gro::Merger` with
//! `pool::ToPool`): merges per second, CPU ns per merge.

use std::hint::black_box;
use std::time::Instant;

use anyhow::Result;
use rtap::wire::checksum;

use super::contenders::{CsumOp, CSUM_CONTENDERS};
use super::results::{own_table, pps_cell, Cell};
use super::{chosen, interrupted, BenchOpts};
use crate::common::cpu::thread_cpu_s;

/// One run of a sum: sums per second and CPU ns per sum.
fn sum_once(len: usize, fast: bool, bytes: usize) -> (f64, f64) {
    let buf: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
    let n = (bytes / len).max(1);
    let cpu0 = thread_cpu_s();
    let t0 = Instant::now();
    let mut acc = 0u64;
    for _ in 0..n {
        let d = black_box(&buf[..]);
        acc = acc.wrapping_add(if fast {
            checksum::sum(d)
        } else {
            checksum::sum_be_words(d)
        });
    }
    black_box(acc);
    let secs = t0.elapsed().as_secs_f64();
    let cpu = thread_cpu_s() - cpu0;
    (n as f64 / secs, cpu * 1e9 / n as f64)
}

/// A TCP/IPv4 packet of `len` bytes with a TSO request for 1448-byte segments.
fn tso_packet(len: usize) -> (Vec<u8>, rtap::wire::vnet::VnetHdr) {
    use rtap::wire::vnet::{VnetHdr, F_NEEDS_CSUM, GSO_TCPV4};
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&[10, 0, 0, 1]);
    p[16..20].copy_from_slice(&[10, 0, 0, 2]);
    p[20..22].copy_from_slice(&5001u16.to_be_bytes());
    p[22..24].copy_from_slice(&5002u16.to_be_bytes());
    p[32] = 5 << 4;
    p[33] = 0x18;
    for (i, b) in p[40..].iter_mut().enumerate() {
        *b = (i * 13 + 1) as u8;
    }
    let h = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: GSO_TCPV4,
        hdr_len: 40,
        gso_size: 1448,
        csum_start: 20,
        csum_offset: 16,
        ..VnetHdr::default()
    };
    (p, h)
}

/// One run of the split of a `len`-byte packet: splits per second and CPU ns
/// per split.
fn split_once(len: usize, bytes: usize) -> Result<(f64, f64)> {
    let (pkt, h) = tso_packet(len);
    let mut seg = vec![0u8; 2048];
    let n = (bytes / len).max(1);
    let cpu0 = thread_cpu_s();
    let t0 = Instant::now();
    for _ in 0..n {
        let mut s = rtap::wire::gso::split(black_box(&pkt), &h)
            .map_err(|e| anyhow::anyhow!("split: {e:?}"))?;
        while let Some(r) = s.next_into(&mut seg) {
            black_box(r.map_err(|e| anyhow::anyhow!("split: {e:?}"))?);
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = thread_cpu_s() - cpu0;
    Ok((n as f64 / secs, cpu * 1e9 / n as f64))
}

/// One run of merging the segments of a `len`-byte packet back into one pool
/// packet, in pool buffers (`in_pool`) or in vectors and then copied: merges
/// per second and CPU ns per merge.
fn merge_once(len: usize, in_pool: bool, bytes: usize) -> Result<(f64, f64)> {
    use rtap::pool::ToPool;
    use rtap::wire::gro::{Coalescer, Merger};
    let (pkt, h) = tso_packet(len);
    let mut s = rtap::wire::gso::split(&pkt, &h).map_err(|e| anyhow::anyhow!("split: {e:?}"))?;
    let mut segs = Vec::new();
    let mut seg = vec![0u8; 2048];
    while let Some(r) = s.next_into(&mut seg) {
        let k = r.map_err(|e| anyhow::anyhow!("split: {e:?}"))?;
        segs.push(seg[..k].to_vec());
    }
    // Buffers as the forwarder's pool has them where ports hand up 64 KiB.
    let pool = rtap::Pool::new(rtap::PoolConfig::default().buf_size(65_536 + 256).count(16))?;
    let mut out: Vec<rtap::Packet> = Vec::with_capacity(4);
    let mut vec_way = Coalescer::new(4);
    let mut pool_way: Merger<rtap::Packet> = Merger::new(4);
    let n = (bytes / len).max(1);
    let cpu0 = thread_cpu_s();
    let t0 = Instant::now();
    for _ in 0..n {
        if in_pool {
            let mut sink = ToPool::new(&pool, &mut out);
            for sg in &segs {
                pool_way.push(black_box(sg), &mut sink);
            }
            pool_way.flush(&mut sink);
        } else {
            let mut emit = |b: &[u8], h: &rtap::wire::vnet::VnetHdr| {
                if let Ok(mut p) = pool.alloc_from(b) {
                    p.set_vnet_hdr(*h);
                    out.push(p);
                }
            };
            for sg in &segs {
                vec_way.push(black_box(sg), &mut emit);
            }
            vec_way.flush(&mut emit);
        }
        if out.len() != 1 || out[0].len() != len {
            return Err(anyhow::anyhow!(
                "the merge gave {} packets, not one of {len} bytes",
                out.len()
            ));
        }
        black_box(&out);
        out.clear();
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = thread_cpu_s() - cpu0;
    Ok((n as f64 / secs, cpu * 1e9 / n as f64))
}

/// The csum test: repetitions interleave the contenders; each cell is the
/// median.
pub(super) fn run(opts: &BenchOpts, progress: &mut impl FnMut(&str)) -> Result<Vec<Cell>> {
    let (bytes, reps) = if opts.quick {
        (1 << 30, 1)
    } else {
        (8 << 30, 5)
    };
    let who: Vec<_> = CSUM_CONTENDERS
        .iter()
        .filter(|c| chosen(opts, c.0))
        .collect();
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new(); who.len()];
    for rep in 0..reps {
        for (i, &&(name, len, op)) in who.iter().enumerate() {
            interrupted()?;
            let r = match op {
                CsumOp::BeWords => sum_once(len, false, bytes),
                CsumOp::Lanes => sum_once(len, true, bytes),
                // A split also copies: a quarter of the bytes keeps it as long.
                CsumOp::Split => split_once(len, bytes / 4)?,
                CsumOp::MergeVec => merge_once(len, false, bytes / 4)?,
                CsumOp::MergePool => merge_once(len, true, bytes / 4)?,
            };
            progress(&format!(
                " csum {name:<14} run {}/{reps}: {:>6.2} GB/s, {:>8.1} ns per operation",
                rep + 1,
                r.0 * len as f64 / 1e9,
                r.1
            ));
            runs[i].push(r);
        }
    }
    Ok(who
        .iter()
        .zip(&runs)
        .map(|(c, r)| pps_cell("csum", c.0, r))
        .collect())
}

/// The table's rows: GB/s, ns per operation, and each fast path against its
/// reference.
pub(super) fn rows(cells: &[Cell]) -> String {
    let cols = [("GB/s", 10), ("ns/op", 10), ("vs reference", 12)];
    own_table(cells, "csum", &cols, |x, vs| {
        vec![
            format!(
                "{:.2}",
                x.rate * super::contenders::csum_bytes(x.contender) / 1e9
            ),
            format!("{:.1}", x.cpu),
            vs.map_or("-".into(), |(_, r)| format!("{r:.2}x")),
        ]
    })
}
