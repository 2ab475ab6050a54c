//! A second process runs queues of a port this process opened and serves:
//! the example opens a tap with two queue pairs and serves it on an abstract
//! Unix socket, then starts itself again as the attaching process, which takes
//! queue 1, sends frames out of it and exits. Its frames count in the serving
//! port's statistics, and the queue is free again once it has gone.
//!
//! ```sh
//! cargo run --example shared_attach           # the serving process starts the other
//! ```
//! Needs root (it creates the tap). Any port that can be served works the same
//! way: `rtap fwd --serve PATH` serves its ports to `shared:path=PATH` specs.

use std::time::{Duration, Instant};

use rtap::share::{QueueHolder, ServeConfig, SharedConfig};
use rtap::{Pool, PoolConfig, Port, TapConfig};

const SOCKET: &str = "@rtap-example-shared";
const FRAMES: u64 = 1000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match std::env::args().nth(1).as_deref() {
        Some("--attach") => attach(),
        _ => serve(),
    }
}

/// The serving process: opens the port, serves it, runs the other process.
fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let port = Port::open(TapConfig::new("rtapshr%d").queues(2))?;
    port.start()?;
    let server = port.serve(ServeConfig::new(SOCKET))?;
    println!(
        "serving {} ({} queues) on {SOCKET}",
        port.name(),
        port.queue_count()
    );

    let status = std::process::Command::new(std::env::current_exe()?)
        .arg("--attach")
        .status()?;
    if !status.success() {
        return Err(format!("the attaching process failed: {status}").into());
    }
    // Its connection closed when it exited: queue 1 is free again.
    let free = Instant::now() + Duration::from_secs(2);
    while server.holders().get(1) != Some(&QueueHolder::Free) && Instant::now() < free {
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = server.stats();
    println!(
        "server: {} attach(es), {} release(s); queue 1 is {}",
        st.attached,
        st.released,
        server.holders()[1]
    );
    // The other process counted into this port's queue 1.
    let s = port.stats()?;
    println!("port: tx {} packets on queue 1", s.tx_queues[1].packets);
    drop(server);
    if s.tx_queues[1].packets != FRAMES {
        return Err(format!("{} of {FRAMES} frames counted", s.tx_queues[1].packets).into());
    }
    Ok(())
}

/// The attaching process: queue 1 of the served port, a few frames out of it.
fn attach() -> Result<(), Box<dyn std::error::Error>> {
    let port = Port::open(SharedConfig::new(SOCKET).queue_list(&[1]))?;
    port.start()?; // the link is the serving process's: nothing changes
    println!(
        "attached: {} ({}), engine {}, {} queue",
        port.name(),
        port.kind(),
        port.engine(),
        port.queue_count()
    );
    let pool = Pool::new(PoolConfig::default())?;
    let mut tx = port.tx_queue(0)?;
    let mut frame = [0u8; 60];
    frame[..6].fill(0xff);
    frame[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    let mut out = Vec::new();
    for i in 0..FRAMES {
        frame[14..22].copy_from_slice(&i.to_be_bytes());
        out.push(pool.alloc_from(&frame)?);
        if out.len() == 32 || i + 1 == FRAMES {
            while !out.is_empty() {
                tx.tx_burst(&mut out)?;
            }
        }
    }
    tx.flush(Duration::from_secs(2));
    Ok(())
}
