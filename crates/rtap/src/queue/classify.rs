//! Classification behind the extended statistics: each burst's packets are
//! counted by size, destination cast and offload flags into a local array that the
//! queue publishes once per burst.

use super::frame::Frame;
use crate::pool::Packet;
use crate::wire::layout::Link;
use crate::wire::offload::{self, RxCsum, RxGso};
use crate::wire::vnet::VnetHdr;
use crate::xstats::*;

/// What classification reads of a packet or a lent frame.
pub(crate) trait Classified {
    fn len(&self) -> usize;
    /// The first contiguous bytes (the destination address at least).
    fn head(&self) -> &[u8];
    fn vnet(&self) -> &VnetHdr;
}

impl Classified for Packet {
    fn len(&self) -> usize {
        Packet::len(self)
    }
    fn head(&self) -> &[u8] {
        self.data()
    }
    fn vnet(&self) -> &VnetHdr {
        self.vnet_hdr()
    }
}

impl Classified for Frame<'_> {
    fn len(&self) -> usize {
        Frame::len(self)
    }
    fn head(&self) -> &[u8] {
        Frame::head(self)
    }
    fn vnet(&self) -> &VnetHdr {
        self.vnet_hdr()
    }
}

/// Counts size and cast class of a frame into `local` (indices 0..10).
#[inline]
fn classify_common(p: &impl Classified, local: &mut [u64], link: Link) {
    local[size_bucket(p.len())] += 1;
    local[SIZE_NAMES.len() + cast_class_on(p.head(), link)] += 1;
}

/// Classifies received packets (or frames an in-place receive lent) into the
/// rx counters.
pub(crate) fn classify_rx(pkts: &[impl Classified], local: &mut [u64; RX_N], link: Link) {
    for p in pkts {
        classify_common(p, local, link);
        let h = p.vnet();
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
        classify_common(f, local, link);
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
