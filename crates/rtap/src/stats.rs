//! Counters. Each queue has one writer (the thread driving it) and any number of
//! readers; counters are relaxed atomics updated once per burst, never per packet,
//! and reset by snapshotting (the writer's counters are never written by readers).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters of one queue (one direction). Plain atomics (all-zero is a
/// valid value), so they can live in memory shared with another process.
#[derive(Debug, Default)]
#[repr(C)]
pub struct QueueCounters {
    pub(crate) packets: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) errors: AtomicU64,
    /// Rx: frames dropped because no buffer was free. Tx: unused.
    pub(crate) nombuf: AtomicU64,
    /// Rx: frames larger than the read buffers (counted in `errors` too).
    pub(crate) truncated: AtomicU64,
}

impl QueueCounters {
    /// Adds to the counters; called by the queue's single writer once per burst.
    #[inline]
    pub(crate) fn add(&self, packets: u64, bytes: u64, errors: u64, nombuf: u64) {
        // Single writer: load+store is enough and avoids locked read-modify-writes.
        // Wrapping: the block may be shared memory another process wrote anything
        // into (its own queue's figures go wrong, nothing panics).
        if packets != 0 {
            self.packets
                .store(self.packets.load(Relaxed).wrapping_add(packets), Relaxed);
            self.bytes
                .store(self.bytes.load(Relaxed).wrapping_add(bytes), Relaxed);
        }
        if errors != 0 {
            self.errors
                .store(self.errors.load(Relaxed).wrapping_add(errors), Relaxed);
        }
        if nombuf != 0 {
            self.nombuf
                .store(self.nombuf.load(Relaxed).wrapping_add(nombuf), Relaxed);
        }
    }

    /// Counts frames cut short by the kernel for lack of buffer space (single writer).
    #[inline]
    pub(crate) fn add_truncated(&self, n: u64) {
        if n != 0 {
            self.truncated
                .store(self.truncated.load(Relaxed).wrapping_add(n), Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> QueueStats {
        QueueStats {
            packets: self.packets.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            errors: self.errors.load(Relaxed),
            nombuf: self.nombuf.load(Relaxed),
        }
    }
}

/// A snapshot of one queue's counters in one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Packets received (rx) or whose transmission completed (tx).
    pub packets: u64,
    /// Frame bytes, virtio-net header excluded.
    pub bytes: u64,
    /// Failed reads or writes (the kernel returned an error or a malformed frame).
    pub errors: u64,
    /// Rx only: frames dropped because the pool had no buffer to replace the one received.
    pub nombuf: u64,
}

impl QueueStats {
    /// Field-wise difference, saturating at zero.
    pub fn since(&self, base: &QueueStats) -> QueueStats {
        QueueStats {
            packets: self.packets.saturating_sub(base.packets),
            bytes: self.bytes.saturating_sub(base.bytes),
            errors: self.errors.saturating_sub(base.errors),
            nombuf: self.nombuf.saturating_sub(base.nombuf),
        }
    }

    /// Saturating: a queue's figures may come from memory a peer process
    /// wrote anything into.
    fn add(&mut self, o: &QueueStats) {
        self.packets = self.packets.saturating_add(o.packets);
        self.bytes = self.bytes.saturating_add(o.bytes);
        self.errors = self.errors.saturating_add(o.errors);
        self.nombuf = self.nombuf.saturating_add(o.nombuf);
    }
}

/// Port-wide statistics: per-queue counters and their sums.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Per rx queue.
    pub rx_queues: Vec<QueueStats>,
    /// Per tx queue.
    pub tx_queues: Vec<QueueStats>,
    /// Sum over rx queues.
    pub rx: QueueStats,
    /// Sum over tx queues.
    pub tx: QueueStats,
    /// Frames the kernel dropped because the application did not read them in time
    /// (the tap's own `tx_dropped`: kernel to user is the tap's transmit direction).
    /// Port-wide only: the kernel does not count it per queue.
    pub imissed: u64,
}

impl PortStats {
    /// Field-wise difference from an earlier snapshot of the same port (queues
    /// the earlier one did not have count from zero), saturating at zero: what
    /// happened in between.
    pub fn since(&self, base: &PortStats) -> PortStats {
        let per_q = |now: &[QueueStats], b: &[QueueStats]| {
            now.iter()
                .enumerate()
                .map(|(i, q)| b.get(i).map_or(*q, |b| q.since(b)))
                .collect()
        };
        PortStats {
            rx_queues: per_q(&self.rx_queues, &base.rx_queues),
            tx_queues: per_q(&self.tx_queues, &base.tx_queues),
            rx: self.rx.since(&base.rx),
            tx: self.tx.since(&base.tx),
            imissed: self.imissed.saturating_sub(base.imissed),
        }
    }

    pub(crate) fn from_queues(
        rx_queues: Vec<QueueStats>,
        tx_queues: Vec<QueueStats>,
        imissed: u64,
    ) -> PortStats {
        let mut rx = QueueStats::default();
        let mut tx = QueueStats::default();
        rx_queues.iter().for_each(|q| rx.add(q));
        tx_queues.iter().for_each(|q| tx.add(q));
        PortStats {
            rx_queues,
            tx_queues,
            rx,
            tx,
            imissed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_deltas() {
        let c = QueueCounters::default();
        c.add(3, 300, 1, 0);
        c.add(2, 200, 0, 4);
        let s = c.snapshot();
        assert_eq!(
            s,
            QueueStats {
                packets: 5,
                bytes: 500,
                errors: 1,
                nombuf: 4
            }
        );
        let base = QueueStats {
            packets: 1,
            bytes: 100,
            errors: 1,
            nombuf: 0,
        };
        assert_eq!(
            s.since(&base),
            QueueStats {
                packets: 4,
                bytes: 400,
                errors: 0,
                nombuf: 4
            }
        );
        let p = PortStats::from_queues(vec![s, s], vec![base], 7);
        assert_eq!(p.rx.packets, 10);
        assert_eq!(p.tx.bytes, 100);
        assert_eq!(p.imissed, 7);
        let later = PortStats::from_queues(vec![s, s, s], vec![s], 9);
        let d = later.since(&p);
        assert_eq!(
            d.rx_queues,
            vec![QueueStats::default(); 2]
                .into_iter()
                .chain([s])
                .collect::<Vec<_>>()
        );
        assert_eq!((d.rx.packets, d.tx.packets, d.imissed), (5, 4, 2));
        assert_eq!(p.since(&later).imissed, 0, "saturates");
    }
}
