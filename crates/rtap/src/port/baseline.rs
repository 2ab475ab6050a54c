//! What a port's counters were at the last reset: `stats` and `xstats` report
//! the difference, so the single-writer queue counters are never written by
//! anyone but their queue.

use crate::stats::QueueStats;
use crate::xstats::{RX_N, TX_N};

/// Counter values at the last reset.
#[derive(Default)]
pub(super) struct Baseline {
    pub rx: Vec<QueueStats>,
    pub tx: Vec<QueueStats>,
    pub imissed: u64,
    /// Per queue: rx xstats values (with alloc failures and truncated appended).
    pub rx_x: Vec<Vec<u64>>,
    pub tx_x: Vec<Vec<u64>>,
    /// The device's own xstats, by name.
    pub extra: std::collections::HashMap<String, u64>,
}

impl Baseline {
    /// Makes room for `n` queues (new ones start from zero).
    pub(super) fn resize(&mut self, n: usize) {
        self.rx.resize(n, QueueStats::default());
        self.tx.resize(n, QueueStats::default());
        self.rx_x.resize(n, vec![0; RX_N + 2]);
        self.tx_x.resize(n, vec![0; TX_N]);
    }
}
