//! AF_PACKET ports on an interface that already exists: a veth pair, one port
//! on each end. Frames sent on one port come out of the other; the example
//! counts them, prints both ports' statistics and engines, and checks the pool
//! is full again when the queues are gone.
//!
//! ```sh
//! cargo run --example afpacket_veth -- 100000   # frames to send
//! ```
//! Needs root (it makes a network namespace `rtap-ex-veth` with the veth pair
//! inside, and deletes it at the end).

use std::process::Command;
use std::time::{Duration, Instant};

use rtap::{Netns, PacketConfig, Pool, PoolConfig, Port};

const NS: &str = "rtap-ex-veth";

fn ip(args: &[&str]) {
    let ok = Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ip {}", args.join(" "));
}

fn main() -> rtap::Result<()> {
    let count: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    ip(&["netns", "add", NS]);
    ip(&[
        "-n", NS, "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b",
    ]);
    let r = run(count);
    ip(&["netns", "del", NS]);
    r
}

fn run(count: u64) -> rtap::Result<()> {
    // The ports live in the namespace; this thread stays where it is.
    let open = |iface: &str| -> rtap::Result<Port> {
        let p = Port::open(PacketConfig::new(iface).netns(Netns::Named(NS.into())))?;
        p.start()?; // brings the link up (and down again when the port goes)
        Ok(p)
    };
    let (a, b) = (open("veth-a")?, open("veth-b")?);
    println!("{} engine: {}", a.name(), a.engine());
    println!("{} tx engine: {}", a.name(), a.tx_engine_name());
    let pool = Pool::new(PoolConfig::default().count(1024))?;
    let mut tx = a.tx_queue(0)?;
    let mut rx = b.rx_queue(0, &pool)?;

    // A broadcast frame of an experimental EtherType: the kernel answers nothing.
    let mut frame = [0u8; 60];
    frame[..6].fill(0xff);
    frame[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());

    let (mut sent, mut received) = (0u64, 0u64);
    let mut out = Vec::with_capacity(32);
    let mut got = Vec::with_capacity(32);
    let end = Instant::now() + Duration::from_secs(10);
    while received < count && Instant::now() < end {
        while sent < count && out.len() < 32 {
            frame[14..22].copy_from_slice(&sent.to_be_bytes());
            out.push(pool.alloc_from(&frame)?);
            sent += 1;
        }
        // What the ring did not take stays in `out` for the next round.
        tx.tx_burst(&mut out)?;
        received += rx.rx_burst(&mut got, 32)? as u64;
        got.clear();
    }
    // Frames not sent yet go back to the pool with `out`; the ones in the
    // ring are counted once the kernel has sent them.
    sent -= out.len() as u64;
    drop(out);
    tx.flush(Duration::from_secs(1));
    println!("sent {sent}, received {received} of {count}");
    for p in [&a, &b] {
        let s = p.stats()?;
        println!(
            "{}: rx {} tx {} tx errors {} imissed {}",
            p.name(),
            s.rx.packets,
            s.tx.packets,
            s.tx.errors,
            s.imissed
        );
    }
    drop((tx, rx));
    assert_eq!(
        pool.available(),
        pool.capacity() as usize,
        "every buffer back"
    );
    assert_eq!(received, count, "every frame crossed");
    Ok(())
}
