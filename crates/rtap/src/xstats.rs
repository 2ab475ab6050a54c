//! Extended per-queue statistics, by name (`rx_q{N}_...`, `tx_q{N}_...`).
//!
//! Each queue classifies its packets once per burst into a local array and
//! publishes it with one relaxed store per counter that changed (single writer).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Size buckets shared by rx and tx (indices 0..7).
pub(crate) const SIZE_NAMES: [&str; 7] = [
    "size_64_packets",
    "size_65_127_packets",
    "size_128_255_packets",
    "size_256_511_packets",
    "size_512_1023_packets",
    "size_1024_1518_packets",
    "size_1519_max_packets",
];
/// Cast classes (indices 7..10): unicast, multicast, broadcast.
pub(crate) const CAST_NAMES: [&str; 3] =
    ["unicast_packets", "multicast_packets", "broadcast_packets"];

/// Rx-only counters after the shared ones.
pub(crate) const RX_ONLY: [&str; 5] = [
    "lro_packets",
    "csum_good",
    "csum_partial",
    "csum_unknown",
    "csum_bad",
];
/// Index of the first rx-only counter.
pub(crate) const RX_LRO: usize = 10;
pub(crate) const RX_CSUM_GOOD: usize = 11;
pub(crate) const RX_CSUM_PARTIAL: usize = 12;
pub(crate) const RX_CSUM_UNKNOWN: usize = 13;
/// Rx counters in total (the alloc-failure and truncated counters live in
/// [`QueueCounters`](crate::stats::QueueCounters) and are appended when reading).
pub(crate) const RX_N: usize = 15;

/// Tx-only counters after the shared ones.
pub(crate) const TX_ONLY: [&str; 7] = [
    "tso_packets",
    "uso_packets",
    "csum_offload_packets",
    "multiseg_packets",
    "sw_csum_packets",
    "offload_rejected",
    "sw_gso_packets",
];
pub(crate) const TX_TSO: usize = 10;
pub(crate) const TX_USO: usize = 11;
pub(crate) const TX_CSUM_OFFLOAD: usize = 12;
pub(crate) const TX_MULTISEG: usize = 13;
pub(crate) const TX_SW_CSUM: usize = 14;
pub(crate) const TX_REJECTED: usize = 15;
/// Packets the engine split into segments in software.
pub(crate) const TX_SW_GSO: usize = 16;
pub(crate) const TX_N: usize = 17;

/// Published counters of one queue direction: `N` atomics, plain data (all-zero
/// is a valid value), so they can live in memory shared with another process.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct XCounters<const N: usize> {
    v: [AtomicU64; N],
}

impl<const N: usize> Default for XCounters<N> {
    fn default() -> Self {
        XCounters {
            v: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl<const N: usize> XCounters<N> {
    /// Adds a burst's local counts (single writer).
    #[inline]
    pub(crate) fn publish(&self, local: &[u64]) {
        for (c, &d) in self.v.iter().zip(local) {
            if d != 0 {
                c.store(c.load(Relaxed).wrapping_add(d), Relaxed);
            }
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<u64> {
        self.v.iter().map(|c| c.load(Relaxed)).collect()
    }
}

/// Counter names of rx queue `q`, in the order of [`rx_values`].
pub(crate) fn rx_names(q: u16) -> impl Iterator<Item = String> {
    SIZE_NAMES
        .iter()
        .chain(CAST_NAMES.iter())
        .chain(RX_ONLY.iter())
        .chain(["alloc_failures", "truncated"].iter())
        .map(move |n| format!("rx_q{q}_{n}"))
}

/// Counter names of tx queue `q`.
pub(crate) fn tx_names(q: u16) -> impl Iterator<Item = String> {
    SIZE_NAMES
        .iter()
        .chain(CAST_NAMES.iter())
        .chain(TX_ONLY.iter())
        .map(move |n| format!("tx_q{q}_{n}"))
}

/// One named extended statistic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XStat {
    /// `rx_q{N}_...` or `tx_q{N}_...`.
    pub name: String,
    /// Value since the last reset.
    pub value: u64,
}

/// [`cast_class`]: unicast destination.
pub const CAST_UNICAST: usize = 0;
/// [`cast_class`]: multicast destination (group bit set, not broadcast).
pub const CAST_MULTICAST: usize = 1;
/// [`cast_class`]: broadcast destination (`ff:ff:ff:ff:ff:ff`).
pub const CAST_BROADCAST: usize = 2;
/// Number of [`size_bucket`] classes.
pub const SIZE_BUCKETS: usize = 7;

/// Frame size class for xstats buckets: 0: <=64, 1: 65-127, 2: 128-255, 3: 256-511,
/// 4: 512-1023, 5: 1024-1518, 6: >=1519.
pub fn size_bucket(len: usize) -> usize {
    match len {
        0..=64 => 0,
        65..=127 => 1,
        128..=255 => 2,
        256..=511 => 3,
        512..=1023 => 4,
        1024..=1518 => 5,
        _ => 6,
    }
}

/// [`CAST_UNICAST`] (0), [`CAST_MULTICAST`] (1) or [`CAST_BROADCAST`] (2), from the
/// destination MAC. A frame shorter than 6 bytes counts as unicast.
pub fn cast_class_on(frame: &[u8], link: crate::wire::layout::Link) -> usize {
    match link {
        crate::wire::layout::Link::Ethernet => cast_class(frame),
        // A packet without an Ethernet header: by its IP destination.
        crate::wire::layout::Link::Ip => match frame.first().map(|b| b >> 4) {
            Some(4) => match frame.get(16..20) {
                Some([255, 255, 255, 255]) => CAST_BROADCAST,
                Some(d) if d[0] & 0xf0 == 0xe0 => CAST_MULTICAST,
                _ => CAST_UNICAST,
            },
            Some(6) if frame.get(24) == Some(&0xff) => CAST_MULTICAST,
            _ => CAST_UNICAST,
        },
    }
}

/// Cast class of an Ethernet frame by its destination MAC.
pub fn cast_class(frame: &[u8]) -> usize {
    match frame.get(..6) {
        Some([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]) => CAST_BROADCAST,
        Some(d) if d[0] & 1 != 0 => CAST_MULTICAST,
        _ => CAST_UNICAST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_tables_match_counter_counts() {
        assert_eq!(SIZE_NAMES.len() + CAST_NAMES.len() + RX_ONLY.len(), RX_N);
        assert_eq!(SIZE_NAMES.len() + CAST_NAMES.len() + TX_ONLY.len(), TX_N);
        assert_eq!(rx_names(0).count(), RX_N + 2);
        assert_eq!(tx_names(3).next().unwrap(), "tx_q3_size_64_packets");
        assert_eq!(rx_names(1).nth(RX_LRO).unwrap(), "rx_q1_lro_packets");
        assert_eq!(
            tx_names(1).nth(TX_REJECTED).unwrap(),
            "tx_q1_offload_rejected"
        );
        let names: std::collections::HashSet<String> = rx_names(0).chain(tx_names(0)).collect();
        assert_eq!(names.len(), RX_N + 2 + TX_N, "names are unique");
    }

    #[test]
    fn publish_accumulates() {
        let x = XCounters::<3>::default();
        x.publish(&[1, 0, 2]);
        x.publish(&[1, 5, 0]);
        assert_eq!(x.snapshot(), vec![2, 5, 2]);
    }

    #[test]
    fn size_bucket_edges() {
        for (len, b) in [
            (0, 0),
            (1, 0),
            (64, 0),
            (65, 1),
            (127, 1),
            (128, 2),
            (255, 2),
            (256, 3),
            (511, 3),
            (512, 4),
            (1023, 4),
            (1024, 5),
            (1518, 5),
            (1519, 6),
            (9000, 6),
            (usize::MAX, 6),
        ] {
            assert_eq!(size_bucket(len), b, "len {len}");
            assert!(size_bucket(len) < SIZE_BUCKETS);
        }
    }

    #[test]
    fn cast_class_values() {
        assert_eq!(cast_class(&[0xff; 6]), CAST_BROADCAST);
        assert_eq!(cast_class(&[0xff; 60]), CAST_BROADCAST);
        assert_eq!(cast_class(&[0x01, 0x00, 0x5e, 0, 0, 1, 9]), CAST_MULTICAST);
        assert_eq!(cast_class(&[0x33, 0x33, 0, 0, 0, 1]), CAST_MULTICAST);
        assert_eq!(
            cast_class(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]),
            CAST_MULTICAST
        );
        assert_eq!(cast_class(&[0x02, 0, 0, 0, 0, 1]), CAST_UNICAST);
        assert_eq!(
            cast_class(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]),
            CAST_UNICAST
        );
        assert_eq!(cast_class(&[0xff; 5]), CAST_UNICAST);
        assert_eq!(cast_class(&[]), CAST_UNICAST);
    }
}
