//! A VPN's data path without the crypto: two TUN ports, each in a network
//! namespace of its own, and between them what a VPN does with the packets its
//! tunnel interface hands it. The kernel's TCP writes 64 KiB TSO packets into
//! one TUN; each is cut into MTU-sized IP packets (`wire::gso::split`, what
//! would be encrypted and sent one datagram each), and the receiving side
//! merges them back into GSO packets (`wire::gro::Merger`, building them in
//! pool buffers: the merged packet is the one written) for the other TUN,
//! whose kernel takes each as one large packet. A TCP stream crosses and
//! every byte is checked.
//!
//! ```sh
//! cargo run --release --example tun_vpn -- 256   # MiB across
//! ```
//! Needs root (namespaces `rtap-ex-vpn-a` and `-b`, deleted at the end) and
//! iproute2. The example runs itself again inside the namespaces for the two
//! TCP ends.

#[path = "common/tcp_ends.rs"]
mod tcp_ends;

use std::time::{Duration, Instant};

use rtap::pool::ToPool;
use rtap::wire::gro::Merger;
use rtap::wire::gso;
use rtap::{Packet, Pool, PoolConfig};
use tcp_ends::{Res, PORT};

const NS: [&str; 2] = ["rtap-ex-vpn-a", "rtap-ex-vpn-b"];
const ADDR: [&str; 2] = ["10.77.0.1", "10.77.0.2"];

fn main() -> Res<()> {
    if let Some(r) = tcp_ends::as_tcp_end() {
        return r;
    }
    let mib: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    tcp_ends::with_namespaces(NS, || run(mib << 20))
}

fn run(bytes: u64) -> Res<()> {
    // The tunnel interfaces: TUNs with every offload, so the kernel hands up
    // (and takes) 64 KiB GSO packets.
    let ports = [
        tcp_ends::tun_in(NS[0], ADDR[0], ADDR[1])?,
        tcp_ends::tun_in(NS[1], ADDR[1], ADDR[0])?,
    ];
    let pool = Pool::new(PoolConfig::default().count(2048).buf_size(65_536 + 256))?;
    let mut q: Vec<_> = ports
        .iter()
        .map(|p| Ok((p.rx_queue(0, &pool)?, p.tx_queue(0)?)))
        .collect::<rtap::Result<_>>()?;

    let listen_at = format!("{}:{PORT}", ADDR[1]);
    let (mut client, mut server) = tcp_ends::start_ends(NS, &listen_at, bytes)?;

    // Both directions: data one way, acknowledgements the other.
    let mut dirs = [Direction::new(), Direction::new()];
    let (mut burst, mut out) = (Vec::new(), Vec::new());
    let t0 = Instant::now();
    while server.try_wait()?.is_none() && t0.elapsed() < Duration::from_secs(60) {
        for (from, dir) in dirs.iter_mut().enumerate() {
            q[from].0.rx_burst(&mut burst, 32)?;
            dir.tunnel(&pool, &mut burst, &mut out);
            q[1 - from].1.tx_burst(&mut out)?;
            out.clear(); // what the tx ring did not take is dropped (and counted)
        }
    }
    let (c, s) = (client.wait()?, server.wait()?);
    if !c.success() || !s.success() {
        return Err(format!("the TCP ends failed: sender {c}, receiver {s}").into());
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{bytes} bytes checked in {secs:.2} s ({:.2} Gbit/s)",
        bytes as f64 * 8.0 / secs / 1e9
    );
    let d = &dirs[0];
    println!(
        "a -> b: {} packets from the TUN, {} MTU-sized packets through the tunnel, {} merged into the other TUN, {} dropped",
        d.read, d.segments, d.merged, d.dropped
    );
    Ok(())
}

/// One direction of the tunnel.
struct Direction {
    gro: Merger<Packet>,
    /// One segment at a time, reused.
    seg: Vec<u8>,
    read: u64,
    segments: u64,
    merged: u64,
    dropped: u64,
}

impl Direction {
    fn new() -> Direction {
        Direction {
            gro: Merger::new(16),
            seg: vec![0u8; 65_536],
            read: 0,
            segments: 0,
            merged: 0,
            dropped: 0,
        }
    }

    /// Splits each packet of `burst` (a GSO packet, or a plain one) into
    /// MTU-sized IP packets, as a VPN's send side would before encrypting each,
    /// and merges them again as its receive side would: the results go to `out`.
    fn tunnel(&mut self, pool: &Pool, burst: &mut Vec<Packet>, out: &mut Vec<Packet>) {
        let Direction {
            gro,
            seg,
            read,
            segments,
            merged,
            dropped,
        } = self;
        // Merged packets are built in pool packets and land on `out`; one
        // the pool has no buffer for is dropped (counted).
        let before = out.len();
        let mut sink = ToPool::new(pool, out);
        for p in burst.drain(..) {
            *read += 1;
            // The 64 KiB pool buffers hold a whole packet: it is one segment.
            let Ok(mut split) = gso::split(p.data(), p.vnet_hdr()) else {
                *dropped += 1;
                continue;
            };
            while let Some(Ok(n)) = split.next_into(seg) {
                *segments += 1;
                // ... encrypt, send, receive, decrypt: the bytes are unchanged here.
                gro.push(&seg[..n], &mut sink);
            }
        }
        gro.flush(&mut sink);
        *dropped += sink.no_buf;
        *merged += (out.len() - before) as u64;
    }
}
