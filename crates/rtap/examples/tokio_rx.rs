//! Receives frames with tokio instead of busy polling: the rx queue's interrupt
//! fd wakes the task only when frames arrive, so an idle port costs no CPU.
//!
//! ```sh
//! cargo run --features tokio --example tokio_rx -- 10   # seconds
//! ping -I rtaprx ff02::1%rtaprx                          # from another shell
//! ```
//! Needs root (it creates the tap). Queues are not `Send`: run them on a
//! current-thread runtime (or a `LocalSet`), one per worker thread.

use std::time::Duration;

use rtap::async_tokio::AsyncRxQueue;
use rtap::{Pool, PoolConfig, Port, TapConfig};

fn main() -> rtap::Result<()> {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| rtap::Error::Sys {
            op: "tokio runtime",
            source: e,
        })?;
    rt.block_on(async {
        let port = Port::open(TapConfig::new("rtaprx"))?;
        port.start()?;
        let pool = Pool::new(PoolConfig::default())?;
        let mut rx = AsyncRxQueue::new(port.rx_queue(0, &pool)?)?;
        println!("receiving on {} for {secs} s", port.name());
        let mut pkts = Vec::with_capacity(32);
        let mut total = 0u64;
        let deadline = tokio::time::sleep(Duration::from_secs(secs));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                r = rx.recv_burst(&mut pkts, 32) => {
                    total += r? as u64;
                    for p in pkts.drain(..) {
                        println!("{} bytes, first 14: {:02x?}", p.len(), &p.data()[..14.min(p.len())]);
                    }
                }
            }
        }
        println!("{total} frames");
        Ok(())
    })
}
