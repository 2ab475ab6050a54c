//! The `seg` test: a 64 KiB TCP/IPv4 TSO frame sent as 1448-byte segments
//! into a TAP without a virtio-net header (io_uring; the kernel drops the
//! frames, which are not addressed to it). `seg-copy`: the application splits
//! the packet into pool packets (`wire::gso::split_on`: each segment's
//! payload copied and summed in one pass) and sends those, which is what it
//! had to do before; `seg-vectored`: it sends the TSO packet and the port's
//! engine splits it, writing each segment as its headers plus a slice of the
//! packet (the payload summed, never copied in user space). Both start from
//! the frame copied into a pool packet (its arrival). Frames per second and
//! CPU ns per frame of the sending thread, which is where io_uring issues the
//! writes (so the kernel's copy of every segment is in it, for both).

use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use rtap::wire::layout::Link;
use rtap::{Gso, Packet, Pool, PoolConfig, Port, TapConfig, TxQueue, TxRequest};

use super::contenders::SEG_CONTENDERS;
use super::pps::in_netns;
use super::results::{own_table, pps_cell, ratios, Cell};
use super::{chosen, interrupted, BenchOpts};
use crate::common::cpu::thread_cpu_s;

/// An Ethernet frame with a TCP/IPv4 packet of `len` bytes in all.
fn tso_frame(len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x99]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x98]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let p = &mut f[14..];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&((len - 14) as u16).to_be_bytes());
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
    f
}

const REQ: TxRequest = TxRequest {
    l4_csum: true,
    gso: Gso::Tcp {
        mss: 1448,
        ecn: false,
    },
};

/// Sends all of `v`, waiting for room.
fn send_all(txq: &mut TxQueue, v: &mut Vec<Packet>) -> Result<()> {
    while !v.is_empty() {
        if txq.tx_burst(v)? == 0 {
            std::hint::spin_loop();
        }
    }
    Ok(())
}

/// One run of `frames` frames: frames per second and CPU ns per frame.
fn once(vectored: bool, frames: u64) -> Result<(f64, f64)> {
    in_netns(|| {
        let port = Port::open(TapConfig::new("rtbseg0"))?;
        port.start()?;
        anyhow::ensure!(
            port.info().tx_offload.split,
            "the tap has a virtio-net header: nothing to split"
        );
        let big = Pool::new(PoolConfig::default().count(64).buf_size(65_536 + 256))?;
        let small = Pool::new(PoolConfig::default().count(2048))?;
        let mut txq = port.tx_queue(0)?;
        let frame = tso_frame(65_000);
        let mut seg = vec![0u8; 2048];
        let mut v: Vec<Packet> = Vec::with_capacity(64);
        let cpu0 = thread_cpu_s();
        let t0 = Instant::now();
        for _ in 0..frames {
            let mut p = loop {
                match big.alloc_from(&frame) {
                    Ok(p) => break p,
                    // All in flight: reap.
                    Err(_) => {
                        txq.tx_burst(&mut v)?;
                    }
                }
            };
            if vectored {
                p.set_tx_offload(REQ);
                v.push(p);
            } else {
                let h = rtap::wire::offload::tx_header_on(p.data(), REQ, Link::Ethernet)
                    .map_err(|e| anyhow!("{e:?}"))?
                    .0;
                let mut sp = rtap::wire::gso::split_on(p.data(), &h, Link::Ethernet)
                    .map_err(|e| anyhow!("split: {e:?}"))?;
                while let Some(r) = sp.next_into(&mut seg) {
                    let n = r.map_err(|e| anyhow!("split: {e:?}"))?;
                    let s = loop {
                        match small.alloc_from(&seg[..n]) {
                            Ok(s) => break s,
                            Err(_) => send_all(&mut txq, &mut v)?,
                        }
                    };
                    v.push(s);
                }
            }
            send_all(&mut txq, &mut v)?;
        }
        anyhow::ensure!(
            txq.flush(std::time::Duration::from_secs(5)),
            "tx never finished"
        );
        let secs = t0.elapsed().as_secs_f64();
        let cpu = thread_cpu_s() - cpu0;
        let st = port.stats()?;
        anyhow::ensure!(
            st.tx.errors == 0 && st.tx.packets == frames * 45,
            "{} segments sent, {} errors (want {})",
            st.tx.packets,
            st.tx.errors,
            frames * 45
        );
        drop(txq);
        anyhow::ensure!(
            big.available() == big.capacity() as usize
                && small.available() == small.capacity() as usize,
            "buffers missing from the pools after the run"
        );
        Ok((frames as f64 / secs, cpu * 1e9 / frames as f64))
    })
    .context("seg test")
}

/// The seg test: repetitions interleave the contenders; each cell is the
/// median.
pub(super) fn run(opts: &BenchOpts, progress: &mut impl FnMut(&str)) -> Result<Vec<Cell>> {
    let (frames, reps) = if opts.quick { (5_000, 1) } else { (40_000, 5) };
    let who: Vec<&'static str> = SEG_CONTENDERS
        .iter()
        .copied()
        .filter(|c| chosen(opts, c))
        .collect();
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new(); who.len()];
    for rep in 0..reps {
        for (i, c) in who.iter().enumerate() {
            interrupted()?;
            let r = once(*c == "seg-vectored", frames)?;
            progress(&format!(
                " seg {c:<13} run {}/{reps}: {:>6.2} GB/s, {:>7.1} us CPU per 64 KiB frame",
                rep + 1,
                r.0 * 65_000.0 / 1e9,
                r.1 / 1e3
            ));
            runs[i].push(r);
        }
    }
    Ok(who
        .iter()
        .zip(&runs)
        .map(|(c, r)| pps_cell("seg", c, r))
        .collect())
}

/// The table's rows: GB/s, CPU per frame, and `seg-vectored` against
/// `seg-copy`.
pub(super) fn rows(cells: &[Cell]) -> String {
    let cols = [
        ("GB/s", 10),
        ("us CPU/frame", 12),
        ("rate vs copy", 12),
        ("cpu vs copy", 12),
    ];
    own_table(cells, "seg", &cols, |x, vs| {
        let (pr, cr) = ratios(x, vs);
        vec![
            format!("{:.2}", x.rate * 65_000.0 / 1e9),
            format!("{:.1}", x.cpu / 1e3),
            pr,
            cr,
        ]
    })
}
