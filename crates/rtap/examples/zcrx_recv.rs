//! Receives a TCP stream through io_uring zero-copy receive (zcrx): the kernel's
//! device-less mode (Linux 7.1+) here, or, where zcrx is not to be had, the
//! copy fallback with the same API and the reason it copies. A thread sends a
//! pattern over loopback; every byte is checked as it arrives, and each buffer
//! goes back to the kernel when dropped.
//!
//! ```sh
//! cargo run --release --example zcrx_recv -- 256   # MiB to receive
//! ```
//! Runs unprivileged in copy mode; zcrx itself needs root (CAP_NET_ADMIN).
//! On a NIC queue instead: `QueueConfig::device("eth1", 3)` (see docs/zcrx.md).

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rtap::zcrx::{Event, Queue, QueueConfig};

/// The byte at stream offset `i`.
fn pattern(i: u64) -> u8 {
    (i % 251) as u8
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let total = mib << 20;

    let q = Queue::open(&QueueConfig::nodev())?;
    println!("queue: {}", q.mode());
    if let Some(why) = q.fallback_reason() {
        println!("copying because: {why}");
    }
    let mut rx = q.receiver()?;

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        let mut s = TcpStream::connect(addr)?;
        let mut buf = vec![0u8; 64 << 10];
        let mut off = 0u64;
        while off < total {
            let n = buf.len().min((total - off) as usize);
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = pattern(off + i as u64);
            }
            s.write_all(&buf[..n])?;
            off += n as u64;
        }
        Ok(())
    });
    let (conn, _) = listener.accept()?;
    rx.add(conn)?;

    let t0 = Instant::now();
    let (mut got, mut events) = (0u64, Vec::new());
    'recv: loop {
        rx.poll(&mut events, Some(Duration::from_secs(5)))?;
        if events.is_empty() {
            return Err("no data for 5 s".into());
        }
        for ev in events.drain(..) {
            match ev {
                Event::Data { buf, .. } => {
                    // `buf` is the kernel's memory, read in place; dropping it
                    // hands the buffer back.
                    for (i, &b) in buf.iter().enumerate() {
                        if b != pattern(got + i as u64) {
                            return Err(format!("byte {} is wrong", got + i as u64).into());
                        }
                    }
                    got += buf.len() as u64;
                }
                Event::Closed { error: None, .. } => break 'recv,
                Event::Closed { error: Some(e), .. } => return Err(e.into()),
                _ => {} // kinds of event a later version may add
            }
        }
    }
    sender.join().expect("sender thread")?;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "received and checked {got} bytes in {secs:.2} s ({:.2} Gbit/s)",
        got as f64 * 8.0 / secs / 1e9
    );
    let s = rx.stats();
    println!("{} buffers, {} bytes delivered", s.buffers, s.bytes);
    if got != total {
        return Err(format!("{got} of {total} bytes").into());
    }
    Ok(())
}
