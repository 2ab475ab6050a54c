//! Transmit preparation, common to every device and engine: a packet's
//! [`TxRequest`] becomes its virtio-net header (checksum seed included), or, on a
//! port without checksum offload, a checksum computed in software. A request that
//! cannot be honoured drops the packet here, counted, so no engine ever sees an
//! unprepared packet.

use super::features::TxOffload;
use crate::pool::Packet;
use crate::wire::checksum;
use crate::wire::layout::Link;
use crate::wire::offload::{self, Gso, TxRequest};
use crate::wire::vnet::VnetHdr;
use crate::xstats::*;

/// Turns a packet's transmit request into its virtio-net header (or a software
/// checksum when the port's tx path takes no partial checksums). Returns false
/// if the request cannot be honoured: the caller drops the packet and counts it.
fn prepare_tx(p: &mut Packet, caps: TxOffload, local: &mut [u64; TX_N], link: Link) -> bool {
    let req = p.tx_offload();
    if req == TxRequest::default() {
        return true; // the header already in the packet (if any) goes as is
    }
    if req.gso != Gso::None && !caps.gso {
        // No software segmentation: a port that cannot hand it on refuses it.
        return false;
    }
    if !caps.csum {
        if req.gso != Gso::None {
            // No software segmentation: a port with offloads off cannot honour it.
            return false;
        }
        let mut segs: [&[u8]; 64] = [&[]; 64];
        let mut n = 0;
        for s in p.segments() {
            if n == segs.len() {
                return false;
            }
            segs[n] = s;
            n += 1;
        }
        let Ok((off, sum)) = checksum::sw_l4_checksum_on(&segs[..n], link) else {
            return false;
        };
        let Some(field) = p.data_mut().get_mut(off..off + 2) else {
            return false;
        };
        field.copy_from_slice(&sum.to_be_bytes());
        p.set_vnet_hdr(VnetHdr::default());
        p.set_tx_offload(TxRequest::default());
        local[TX_SW_CSUM] += 1;
        return true;
    }
    let Ok((h, seed)) = offload::tx_header_on(p.data(), req, link) else {
        return false;
    };
    if let Some((off, v)) = seed {
        let Some(field) = p.data_mut().get_mut(off..off + 2) else {
            return false;
        };
        field.copy_from_slice(&v.to_be_bytes());
    }
    p.set_vnet_hdr(h);
    p.set_tx_offload(TxRequest::default());
    match req.gso {
        Gso::Tcp { .. } => local[TX_TSO] += 1,
        Gso::Udp { .. } => local[TX_USO] += 1,
        Gso::None => {}
    }
    local[TX_CSUM_OFFLOAD] += 1;
    true
}

/// Prepares the first `room` packets of `pkts`, removes those refused (they go
/// back to the pool) and returns how many were removed.
pub(crate) fn prepare_burst(
    pkts: &mut Vec<Packet>,
    room: usize,
    caps: TxOffload,
    local: &mut [u64; TX_N],
    link: Link,
) -> usize {
    let end = room.min(pkts.len());
    let mut keep = 0;
    for r in 0..end {
        if prepare_tx(&mut pkts[r], caps, local, link) {
            pkts.swap(keep, r);
            keep += 1;
        }
    }
    let refused = end - keep;
    if refused > 0 {
        pkts.drain(keep..end);
        local[TX_REJECTED] += refused as u64;
    }
    refused
}
