//! Forwards frames between two taps, busy-polling one queue pair each way:
//! whatever arrives on one tap is sent, unchanged and uncopied, out of the other.
//!
//! ```sh
//! cargo run --release --example fwd_two_taps -- rtapa rtapb 10   # names, seconds
//! ```
//! Needs root (it creates the taps; they go away when it exits).

use std::time::{Duration, Instant};

use rtap::{Offloads, Pool, PoolConfig, Port, TapConfig};

fn main() -> rtap::Result<()> {
    let mut args = std::env::args().skip(1);
    let a = args.next().unwrap_or_else(|| "rtapa".into());
    let b = args.next().unwrap_or_else(|| "rtapb".into());
    let secs: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);

    // With offloads the kernel hands up 64 KiB coalesced frames, and the other
    // tap takes them as they are: TCP through this forwarder is many times faster.
    let open = |name: &str| -> rtap::Result<Port> {
        let p = Port::open(TapConfig::new(name).offloads(Offloads::ALL))?;
        p.start()?;
        Ok(p)
    };
    let (pa, pb) = (open(&a)?, open(&b)?);
    // One pool for both rx queues: a packet received on A is sent on B and its
    // buffer goes back to this pool once the send completes.
    // 64 KiB buffers: a coalesced frame fits one (the multishot rx engine needs it).
    let pool = Pool::new(PoolConfig::default().count(1024).buf_size(65_536 + 256))?;
    let (mut rxa, mut txa) = (pa.rx_queue(0, &pool)?, pa.tx_queue(0)?);
    let (mut rxb, mut txb) = (pb.rx_queue(0, &pool)?, pb.tx_queue(0)?);
    println!("forwarding {a} <-> {b} for {secs} s");

    let mut burst = Vec::with_capacity(32);
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        for (rx, tx) in [(&mut rxa, &mut txb), (&mut rxb, &mut txa)] {
            rx.rx_burst(&mut burst, 32)?;
            tx.tx_burst(&mut burst)?;
            // What the tx queue did not take (it was full) is dropped here: the
            // buffers go back to the pool, the tx queue's counters say so.
            burst.clear();
        }
    }
    for p in [&pa, &pb] {
        let s = p.stats()?;
        println!(
            "{}: rx {} packets, tx {} packets, {} missed",
            p.name(),
            s.rx.packets,
            s.tx.packets,
            s.imissed
        );
    }
    Ok(())
}
