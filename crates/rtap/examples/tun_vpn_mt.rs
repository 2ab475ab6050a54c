//! A VPN's data path on tokio's multi-thread runtime: two TUN ports, each in a
//! network namespace of its own, each queue run by its driver thread
//! (`rtap::mt`) or, with `--tasks`, by the tasks themselves on tokio's
//! workers (`MtDrive::Tasks`, feature `tokio`), and between them, per direction, the tasks a VPN runs: one
//! task reads the TUN's 64 KiB GSO packets and cuts each into MTU-sized IP
//! packets (`wire::gso::split`), a task per packet read "encrypts" and
//! "decrypts" its pieces on whatever worker thread tokio picks (a keystream
//! XOR, twice), and one
//! task takes them back in order, merges them into GSO packets again
//! (`wire::gro::Coalescer`) and writes them to the other TUN. A TCP stream
//! crosses and every byte is checked.
//!
//! ```sh
//! cargo run --release --features mt --example tun_vpn_mt -- 256   # MiB across
//! cargo run --release --features mt,tokio --example tun_vpn_mt -- 256 --tasks
//! ```
//! Needs root (namespaces `rtap-ex-mt-a` and `-b`, deleted at the end) and
//! iproute2. The example runs itself again inside the namespaces for the two
//! TCP ends.

#[path = "common/tcp_ends.rs"]
mod tcp_ends;

use std::sync::Arc;
use std::time::Instant;

use rtap::mt::{MtConfig, MtDrive, MtQueue, MtRx, MtTx};
use rtap::wire::gro::Coalescer;
use rtap::wire::gso;
use rtap::wire::vnet::VnetHdr;
use rtap::{Packet, PoolConfig};
use tcp_ends::{Res, PORT};
use tokio::task::JoinHandle;

const NS: [&str; 2] = ["rtap-ex-mt-a", "rtap-ex-mt-b"];
const ADDR: [&str; 2] = ["10.78.0.1", "10.78.0.2"];

fn main() -> Res<()> {
    if let Some(r) = tcp_ends::as_tcp_end() {
        return r;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mib: u64 = args.iter().find_map(|s| s.parse().ok()).unwrap_or(256);
    let drive = if args.iter().any(|a| a == "--tasks") {
        MtDrive::Tasks
    } else {
        MtDrive::Thread
    };
    tcp_ends::with_namespaces(NS, || run(mib << 20, drive))
}

fn run(bytes: u64, drive: MtDrive) -> Res<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The tunnel interfaces: TUNs with every offload, each queue with a pool
    // of 64 KiB buffers (a GSO packet in one), on its own driver thread or
    // driven by the tasks (opened inside the runtime, whose reactor watches
    // them).
    let mut queues = Vec::new();
    for i in 0..2 {
        let p = tcp_ends::tun_in(NS[i], ADDR[i], ADDR[1 - i])?;
        let mt = MtConfig::default()
            .pool(PoolConfig::default().count(1024).buf_size(65_536 + 256))
            .drive(drive);
        let _in = rt.enter();
        queues.push(MtQueue::spawn(&Arc::new(p), 0, mt)?);
    }
    let listen_at = format!("{}:{PORT}", ADDR[1]);
    let (mut client, mut server) = tcp_ends::start_ends(NS, &listen_at, bytes)?;

    // Both directions: data one way, acknowledgements the other.
    let t0 = Instant::now();
    let tunnels: Vec<_> = (0..2)
        .map(|from| rt.spawn(tunnel(queues[from].rx(), queues[1 - from].tx())))
        .collect();
    let (c, s) = (client.wait()?, server.wait()?);
    let secs = t0.elapsed().as_secs_f64();
    // Stopping the queues ends the tasks: their receives end, their sends fail.
    let reports: Vec<_> = queues.into_iter().map(MtQueue::stop).collect();
    let counts: Vec<Counts> = rt.block_on(async {
        let mut v = Vec::new();
        for t in tunnels {
            v.push(t.await.ok().and_then(Result::ok).unwrap_or_default());
        }
        v
    });
    if !c.success() || !s.success() {
        return Err(format!("the TCP ends failed: sender {c}, receiver {s}").into());
    }
    println!(
        "{bytes} bytes checked in {secs:.2} s ({:.2} Gbit/s) through a multi-thread tokio tunnel ({})",
        bytes as f64 * 8.0 / secs / 1e9,
        match drive {
            MtDrive::Tasks => "queues driven by the tasks",
            _ => "a driver thread per queue",
        }
    );
    println!(
        "a -> b: {} packets from the TUN, {} MTU-sized packets transformed on {} worker threads",
        counts[0].read,
        counts[0].segments,
        rt.metrics().num_workers()
    );
    for (i, r) in reports.iter().enumerate() {
        println!(
            "queue {}: rx pool {} of {} buffers back after the stop",
            NS[i], r.pool.available, r.pool.capacity
        );
    }
    Ok(())
}

/// What one direction did.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    read: u64,
    segments: u64,
}

/// One direction: read, split, transform on any worker (a task per packet
/// read, over its MTU-sized pieces), merge in order, write.
async fn tunnel(rx: MtRx, tx: MtTx) -> rtap::Result<Counts> {
    let (order_tx, order_rx) = tokio::sync::mpsc::channel::<JoinHandle<Vec<Packet>>>(256);
    let writer = tokio::spawn(write_merged(order_rx, tx));
    let mut counts = Counts::default();
    let mut burst = Vec::with_capacity(32);
    let mut seg = vec![0u8; 65_536];
    loop {
        burst.clear();
        if rx.recv_burst(&mut burst, 32).await? == 0 {
            break;
        }
        for p in burst.drain(..) {
            counts.read += 1;
            let Ok(mut split) = gso::split(p.data(), p.vnet_hdr()) else {
                continue;
            };
            // Each MTU-sized packet in this thread's own pool; the task that
            // "encrypts" them runs wherever tokio puts it.
            let mut pieces = Vec::with_capacity(48);
            while let Some(Ok(n)) = split.next_into(&mut seg) {
                counts.segments += 1;
                if let Ok(s) = rtap::mt::alloc_from(&seg[..n]) {
                    pieces.push(s);
                }
            }
            let job = tokio::spawn(async move {
                for s in &mut pieces {
                    crypt(s, 0x5eed); // encrypt, send, receive ...
                    crypt(s, 0x5eed); // ... decrypt: the bytes are back
                }
                pieces
            });
            if order_tx.send(job).await.is_err() {
                return Ok(counts);
            }
        }
    }
    drop(order_tx);
    let _ = writer.await;
    Ok(counts)
}

/// Takes the transformed packets in the order they were read, merges them and
/// writes the merged packets a burst at a time.
async fn write_merged(mut order: tokio::sync::mpsc::Receiver<JoinHandle<Vec<Packet>>>, tx: MtTx) {
    let mut gro = Coalescer::new(16);
    let mut out: Vec<Packet> = Vec::with_capacity(64);
    while let Some(job) = order.recv().await {
        let Ok(pieces) = job.await else { continue };
        let mut emit = |bytes: &[u8], h: &VnetHdr| {
            // A merged packet may be 64 KiB: a chain of this thread's buffers.
            if let Ok(mut m) = rtap::mt::alloc_from(bytes) {
                m.set_vnet_hdr(*h);
                out.push(m);
            }
        };
        // An MTU-sized packet is one buffer: its bytes are `data()`.
        for s in &pieces {
            gro.push(s.data(), &mut emit);
        }
        drop(pieces);
        // Nothing more queued right now: what is merged so far goes out.
        if order.is_empty() {
            gro.flush(&mut emit);
            if tx.send_burst(&mut out).await.is_err() {
                return;
            }
        }
    }
}

/// A stand-in for a stream cipher over the IP payload: a keystream XORed 8
/// bytes at a time (twice is the identity).
fn crypt(p: &mut Packet, key: u64) {
    let mut k = key;
    let mut words = p.data_mut()[20..].chunks_exact_mut(8);
    for w in &mut words {
        k = k.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let v = u64::from_ne_bytes((&*w).try_into().expect("8 bytes")) ^ k;
        w.copy_from_slice(&v.to_ne_bytes());
    }
    for b in words.into_remainder() {
        *b ^= key as u8;
    }
}
