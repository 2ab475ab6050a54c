//! Classification behind the extended statistics: each burst's packets are
//! counted by size, destination cast and offload flags into a local array that the
//! queue publishes once per burst.

use super::frame::Frame;
use crate::pool::Packet;
use crate::wire::layout::Link;
use crate::wire::offload::{self, RxCsum, RxGso};
use crate::xstats::*;

/// Counts size and cast class of a frame into `local` (indices 0..10).
#[inline]
fn classify_common(p: &Packet, local: &mut [u64], link: Link) {
    local[size_bucket(p.len())] += 1;
    local[SIZE_NAMES.len() + cast_class_on(p.data(), link)] += 1;
}

/// Classifies received packets into the rx counters.
pub(crate) fn classify_rx(pkts: &[Packet], local: &mut [u64; RX_N], link: Link) {
    for p in pkts {
        classify_common(p, local, link);
        let h = p.vnet_hdr();
        match offload::rx_csum(h) {
            RxCsum::Good => local[RX_CSUM_GOOD] += 1,
            RxCsum::Partial => local[RX_CSUM_PARTIAL] += 1,
            RxCsum::Unknown => local[RX_CSUM_UNKNOWN] += 1,
        }
        if offload::rx_gso(h) != RxGso::None {
            local[RX_LRO] += 1;
        }
    }
}

/// Classifies frames taken by an in-place receive into the rx counters.
pub(crate) fn classify_rx_frames(frames: &[Frame<'_>], local: &mut [u64; RX_N], link: Link) {
    for f in frames {
        local[size_bucket(f.len())] += 1;
        local[SIZE_NAMES.len() + cast_class_on(f.head(), link)] += 1;
        let h = f.vnet_hdr();
        match offload::rx_csum(h) {
            RxCsum::Good => local[RX_CSUM_GOOD] += 1,
            RxCsum::Partial => local[RX_CSUM_PARTIAL] += 1,
            RxCsum::Unknown => local[RX_CSUM_UNKNOWN] += 1,
        }
        if offload::rx_gso(h) != RxGso::None {
            local[RX_LRO] += 1;
        }
    }
}

/// Classifies frames about to be copied into a tx ring into the tx counters.
pub(crate) fn classify_tx_frames(frames: &[Frame<'_>], local: &mut [u64; TX_N], link: Link) {
    for f in frames {
        local[size_bucket(f.len())] += 1;
        local[SIZE_NAMES.len() + cast_class_on(f.head(), link)] += 1;
    }
}

/// Classifies packets about to be sent into the tx counters.
pub(crate) fn classify_tx(pkts: &[Packet], local: &mut [u64; TX_N], link: Link) {
    for p in pkts {
        classify_common(p, local, link);
        if p.nb_segs() > 1 {
            local[TX_MULTISEG] += 1;
        }
    }
}
