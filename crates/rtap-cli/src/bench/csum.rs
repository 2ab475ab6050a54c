//! The `csum` test: the software checksum's one's complement sum, the
//! straightforward way (`be-words`: big-endian 32-bit words, what rtap did
//! before) against the fast path (`lanes`: native-endian words in four 64-bit
//! lanes, one swap at the end), over 1500-byte and 64 KiB buffers (an MTU
//! packet, a GSO packet). Sums per second and CPU ns per sum; no I/O.
//! `split-64k`: a 64 KiB TCP/IPv4 TSO packet cut into 1448-byte segments with
//! their checksums (`wire::gso::split`, what a VPN does with each packet its
//! TUN hands it): splits per second, CPU ns per split.

use std::hint::black_box;
use std::time::Instant;

use anyhow::Result;
use rtap::wire::checksum;

use super::results::{Cell, Unit};
use super::{chosen, interrupted, median, BenchOpts};
use crate::common::cpu::thread_cpu_s;

/// The contenders: (name, buffer size, fast path), each reference before its
/// fast twin.
pub const CSUM_CONTENDERS: [(&str, usize, bool); 4] = [
    ("be-words-1500", 1500, false),
    ("lanes-1500", 1500, true),
    ("be-words-64k", 65_535, false),
    ("lanes-64k", 65_535, true),
];

/// The split contender: name, and the TSO packet's size.
pub const SPLIT: (&str, usize) = ("split-64k", 65_000);

/// One run: sums per second and CPU ns per sum.
fn once(len: usize, fast: bool, bytes: usize) -> (f64, f64) {
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

/// One run of the split: splits per second and CPU ns per split.
fn split_once(bytes: usize) -> Result<(f64, f64)> {
    let (pkt, h) = tso_packet(SPLIT.1);
    let mut seg = vec![0u8; 2048];
    let n = (bytes / SPLIT.1).max(1);
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
    let split = chosen(opts, SPLIT.0);
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new(); who.len()];
    let mut split_runs = Vec::new();
    for rep in 0..reps {
        for (i, &&(name, len, fast)) in who.iter().enumerate() {
            interrupted()?;
            let r = once(len, fast, bytes);
            progress(&format!(
                " csum {name:<14} run {}/{reps}: {:>6.2} GB/s, {:>8.1} ns per sum",
                rep + 1,
                r.0 * len as f64 / 1e9,
                r.1
            ));
            runs[i].push(r);
        }
        if split {
            let r = split_once(bytes / 4)?;
            progress(&format!(
                " csum {:<14} run {}/{reps}: {:>6.2} GB/s, {:>8.1} ns per split",
                SPLIT.0,
                rep + 1,
                r.0 * SPLIT.1 as f64 / 1e9,
                r.1
            ));
            split_runs.push(r);
        }
    }
    let names: Vec<(&'static str, usize)> = who
        .iter()
        .map(|c| (c.0, c.1))
        .chain(split.then_some(SPLIT))
        .collect();
    runs.push(split_runs);
    Ok(names
        .iter()
        .zip(&runs)
        .filter(|(_, r)| !r.is_empty())
        .map(|(c, r)| Cell {
            test: "csum",
            contender: c.0,
            unit: Unit::Pps,
            rate: median(r.iter().map(|x| x.0).collect()),
            cpu: median(r.iter().map(|x| x.1).collect()),
            sq_cpu: 0.0,
            host_cpu: 0.0,
            lat: None,
        })
        .collect())
}

/// Bytes one operation of `contender` covers (a sum's buffer, the split packet).
pub(super) fn bytes_per_op(contender: &str) -> f64 {
    CSUM_CONTENDERS
        .iter()
        .map(|c| (c.0, c.1))
        .chain(std::iter::once(SPLIT))
        .find(|c| c.0 == contender)
        .map_or(0.0, |c| c.1 as f64)
}

/// The reference a fast-path cell is compared with: its `be-words` twin.
pub(super) fn twin(contender: &str) -> Option<&'static str> {
    let (_, len, fast) = CSUM_CONTENDERS.iter().find(|c| c.0 == contender)?;
    if !fast {
        return None;
    }
    CSUM_CONTENDERS
        .iter()
        .find(|c| c.1 == *len && !c.2)
        .map(|c| c.0)
}

/// The table's rows: GB/s, ns per sum, and each fast path against its twin.
pub(super) fn rows(cells: &[Cell]) -> String {
    let get = |c: &str| cells.iter().find(|x| x.test == "csum" && x.contender == c);
    if !cells.iter().any(|c| c.test == "csum") {
        return String::new();
    }
    let mut s = format!(
        "\n{:<8} {:<14} {:>10} {:>10} {:>12}\n",
        "test", "contender", "GB/s", "ns/op", "vs be-words"
    );
    let all = CSUM_CONTENDERS
        .iter()
        .map(|c| (c.0, c.1))
        .chain(std::iter::once(SPLIT));
    for (name, len) in all {
        let Some(x) = get(name) else { continue };
        let vs = match twin(name).and_then(get) {
            Some(r) => format!("{:.2}x", x.rate / r.rate),
            None => "-".into(),
        };
        s += &format!(
            "{:<8} {:<14} {:>10.2} {:>10.1} {:>12}\n",
            "csum",
            name,
            x.rate * len as f64 / 1e9,
            x.cpu,
            vs
        );
    }
    s
}
