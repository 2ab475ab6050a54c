//! How a queue pair ends, whoever drove it: what is still on its way is sent
//! or counted, what no task took is counted, and the pool says what came back.

use std::time::{Duration, Instant};

use super::chan::Chan;
use crate::pool::{Packet, Pool, PoolStats};
use crate::queue::{RxQueue, TxQueue};

/// What the driver left when it stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MtReport {
    /// The driver's pool once its queues were closed: every buffer is back
    /// (`available == capacity`) unless packets it received still live
    /// elsewhere (they come back when dropped, wherever).
    pub pool: PoolStats,
    /// Packets handed to the tx handle that could not be sent before the
    /// stop's deadline (dropped, their buffers back in their pools).
    pub tx_dropped_at_stop: u64,
    /// Received packets no task took before the stop (dropped).
    pub rx_dropped_at_stop: u64,
    /// CPU time the driver thread used (user + system).
    pub cpu_time: Duration,
}

/// The end of a queue pair, the handoff closed and its senders done: what
/// is still on its way is sent if the queue still can (`stopping`: a stop,
/// not a failure) until `stop_timeout`, else dropped (counted); what no task
/// took is dropped (counted); then the queues close and the pool says what
/// came back.
pub(crate) fn wind_down(
    chan: &Chan,
    rxq: RxQueue,
    mut txq: TxQueue,
    pending: &mut Vec<Packet>,
    pool: &Pool,
    stop_timeout: Duration,
    stopping: bool,
) -> MtReport {
    let mut tx_dropped = 0u64;
    let deadline = Instant::now()
        .checked_add(stop_timeout)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
    loop {
        while let Some(p) = chan.tx.pop() {
            pending.push(p);
        }
        if pending.is_empty() || !stopping || Instant::now() >= deadline {
            break;
        }
        if txq.tx_burst(pending).is_err() {
            break;
        }
        std::thread::yield_now();
    }
    tx_dropped += pending.len() as u64;
    pending.clear();
    if stopping {
        txq.flush(deadline.saturating_duration_since(Instant::now()));
    }
    let mut rx_dropped = 0u64;
    while let Some(p) = chan.rx.pop() {
        rx_dropped += 1;
        drop(p);
    }
    drop((rxq, txq));
    MtReport {
        pool: pool.stats(),
        tx_dropped_at_stop: tx_dropped,
        rx_dropped_at_stop: rx_dropped,
        cpu_time: Duration::ZERO,
    }
}
