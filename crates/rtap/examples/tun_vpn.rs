//! A VPN's data path without the crypto: two TUN ports, each in a network
//! namespace of its own, and between them what a VPN does with the packets its
//! tunnel interface hands it. The kernel's TCP writes 64 KiB TSO packets into
//! one TUN; each is cut into MTU-sized IP packets (`wire::gso::split`, what
//! would be encrypted and sent one datagram each), and the receiving side
//! merges them back into GSO packets (`wire::gro::Coalescer`) for the other
//! TUN, whose kernel takes each as one large packet. A TCP stream crosses and
//! every byte is checked.
//!
//! ```sh
//! cargo run --release --example tun_vpn -- 256   # MiB across
//! ```
//! Needs root (namespaces `rtap-ex-vpn-a` and `-b`, deleted at the end) and
//! iproute2. The example runs itself again inside the namespaces for the two
//! TCP ends.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rtap::wire::gro::Coalescer;
use rtap::wire::gso;
use rtap::wire::vnet::VnetHdr;
use rtap::{Netns, Offloads, Packet, Pool, PoolConfig, Port, TapConfig};

const NS: [&str; 2] = ["rtap-ex-vpn-a", "rtap-ex-vpn-b"];
const ADDR: [&str; 2] = ["10.77.0.1", "10.77.0.2"];
const PORT: u16 = 5001;

fn pattern(i: u64) -> u8 {
    (i % 251) as u8
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--listen") => return listen(&args[2]),
        Some("--send") => return send(&args[2], args[3].parse()?),
        _ => {}
    }
    let mib: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(256);
    for ns in NS {
        ip(&["netns", "add", ns])?;
    }
    let r = run(mib << 20);
    for ns in NS {
        let _ = ip(&["netns", "del", ns]);
    }
    r
}

fn ip(args: &[&str]) -> Result<(), Box<dyn std::error::Error>> {
    match Command::new("ip").args(args).status()?.success() {
        true => Ok(()),
        false => Err(format!("ip {} failed", args.join(" ")).into()),
    }
}

/// This example, run again inside namespace `ns`.
fn in_ns(ns: &str, args: &[&str]) -> std::io::Result<Child> {
    let exe = std::env::current_exe()?;
    Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(exe)
        .args(args)
        .spawn()
}

fn run(bytes: u64) -> Result<(), Box<dyn std::error::Error>> {
    // The tunnel interfaces: TUNs with every offload, so the kernel hands up
    // (and takes) 64 KiB GSO packets.
    let mut ports = Vec::new();
    for (i, ns) in NS.iter().enumerate() {
        let cfg = TapConfig::tun("vpn0")
            .offloads(Offloads::ALL)
            .netns(Netns::Named(ns.to_string()));
        let p = Port::open(cfg)?;
        let peer = format!("{}/32", ADDR[1 - i]);
        ip(&[
            "-n", ns, "addr", "add", ADDR[i], "peer", &peer, "dev", "vpn0",
        ])?;
        p.start()?;
        ports.push(p);
    }
    let pool = Pool::new(PoolConfig::default().count(2048).buf_size(65_536 + 256))?;
    let mut q: Vec<_> = ports
        .iter()
        .map(|p| Ok((p.rx_queue(0, &pool)?, p.tx_queue(0)?)))
        .collect::<rtap::Result<_>>()?;

    let listen_at = format!("{}:{PORT}", ADDR[1]);
    let mut server = in_ns(NS[1], &["--listen", &listen_at])?;
    std::thread::sleep(Duration::from_millis(300));
    let mut client = in_ns(NS[0], &["--send", &listen_at, &bytes.to_string()])?;

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
    gro: Coalescer,
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
            gro: Coalescer::new(16),
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
        // A merged packet the pool has no buffer for is dropped (counted).
        let mut no_buf = 0;
        let mut emit = |bytes: &[u8], h: &VnetHdr| match pool.alloc_from(bytes) {
            Ok(mut p) => {
                p.set_vnet_hdr(*h);
                *merged += 1;
                out.push(p);
            }
            Err(_) => no_buf += 1,
        };
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
                gro.push(&seg[..n], &mut emit);
            }
        }
        gro.flush(&mut emit);
        *dropped += no_buf;
    }
}

/// Inside namespace b: accepts one connection and checks every byte.
fn listen(addr: &str) -> Result<(), Box<dyn std::error::Error>> {
    let l = TcpListener::bind(addr)?;
    let (mut c, _) = l.accept()?;
    let (mut buf, mut off) = (vec![0u8; 1 << 16], 0u64);
    loop {
        let n = c.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        for (i, &b) in buf[..n].iter().enumerate() {
            if b != pattern(off + i as u64) {
                return Err(format!("byte {} is wrong", off + i as u64).into());
            }
        }
        off += n as u64;
    }
}

/// Inside namespace a: sends `bytes` of the pattern.
fn send(addr: &str, bytes: u64) -> Result<(), Box<dyn std::error::Error>> {
    let mut s = TcpStream::connect(addr)?;
    let (mut buf, mut off) = (vec![0u8; 1 << 16], 0u64);
    while off < bytes {
        let n = buf.len().min((bytes - off) as usize);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern(off + i as u64);
        }
        s.write_all(&buf[..n])?;
        off += n as u64;
    }
    Ok(())
}
