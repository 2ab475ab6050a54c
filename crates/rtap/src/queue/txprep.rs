//! Transmit preparation, common to every device and engine: a packet's
//! [`TxRequest`] becomes its virtio-net header (checksum seed included), or, on a
//! port without checksum offload, a checksum computed in software. A header a
//! packet carries from the port it came in on counts as a request on a port
//! whose frames go without one: its partial checksum is finished in software
//! (unless the device finishes it), its segmentation left to an engine that
//! splits in software ([`TxOffload::split`]) or refused. A request that
//! cannot be honoured drops the packet here, counted, so no engine ever sees an
//! unprepared packet.

use super::features::TxOffload;
use crate::pool::Packet;
use crate::wire::layout::Link;
use crate::wire::offload::{self, Gso, TxRequest};
use crate::wire::vnet::{VnetHdr, F_NEEDS_CSUM, GSO_NONE};
use crate::xstats::*;

/// Turns a packet's transmit request into its virtio-net header (or a software
/// checksum when the port's tx path takes no partial checksums). Returns false
/// if the request cannot be honoured: the caller drops the packet and counts it.
fn prepare_tx(p: &mut Packet, caps: TxOffload, local: &mut [u64; TX_N], link: Link) -> bool {
    let req = p.tx_offload();
    if req == TxRequest::default() {
        if caps.header {
            return true; // the header already in the packet (if any) goes as is
        }
        // A header the packet carries from the port it came in on (a partial
        // checksum, a segmentation request) is a request too: this port's tx
        // path would drop it, and the frame would leave with a bad checksum.
        let h = p.vnet_hdr();
        if h.gso_type != GSO_NONE && !caps.gso {
            // The engine splits it (computing every checksum), or nothing can.
            return caps.split && p.nb_segs() == 1;
        }
        if h.flags & F_NEEDS_CSUM == 0 || caps.csum {
            return true;
        }
        return sw_finish(p, local, link);
    }
    if req.gso != Gso::None && !caps.gso {
        if !caps.split || p.nb_segs() > 1 {
            // A port that can neither hand it on nor split it refuses it (the
            // engine splits packets in one buffer only).
            return false;
        }
        // The engine splits it as the header says (every checksum computed).
        let Ok((h, _)) = offload::tx_header_on(p.data(), req, link) else {
            return false;
        };
        p.set_vnet_hdr(h);
        p.set_tx_offload(TxRequest::default());
        return true;
    }
    if !caps.csum {
        return sw_finish(p, local, link);
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

/// Computes a packet's L4 checksum in software, in place, and clears its
/// header and request. False if it is not a TCP or UDP packet rtap can parse.
fn sw_finish(p: &mut Packet, local: &mut [u64; TX_N], link: Link) -> bool {
    if !p.finish_l4_checksum(link) {
        return false;
    }
    p.set_vnet_hdr(VnetHdr::default());
    p.set_tx_offload(TxRequest::default());
    local[TX_SW_CSUM] += 1;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{Pool, PoolConfig};
    use crate::wire::offload::tx_header;
    use crate::wire::testutil::{build, csum_req, ep_checksum, l4_field, payload, rd16, spec};

    /// A frame with the partial checksum and header an offloading port hands
    /// up (the pseudo-header seed in the field, `F_NEEDS_CSUM`), as a packet.
    fn carried(pool: &Pool, tcp: bool, gso: bool) -> (Packet, u16) {
        let frame = build(spec(false, tcp), &payload(300, 3));
        let good = ep_checksum(&frame);
        let (mut h, seed) = tx_header(&frame, csum_req()).unwrap();
        let mut p = pool.alloc_from(&frame).unwrap();
        let (off, v) = seed.unwrap();
        p.data_mut()[off..off + 2].copy_from_slice(&v.to_be_bytes());
        if gso {
            h.gso_type = crate::wire::vnet::GSO_TCPV4;
            h.gso_size = 100;
        }
        p.set_vnet_hdr(h);
        (p, good)
    }

    #[test]
    fn a_carried_partial_checksum_is_finished_where_the_port_takes_none() {
        let pool = Pool::new(PoolConfig::default().count(8)).unwrap();
        for tcp in [false, true] {
            let (p, good) = carried(&pool, tcp, false);
            let mut v = vec![p];
            let mut local = [0u64; TX_N];
            let refused = prepare_burst(&mut v, 1, TxOffload::NONE, &mut local, Link::Ethernet);
            assert_eq!(refused, 0);
            let d = v[0].data();
            assert_eq!(rd16(d, l4_field(d)), good, "tcp {tcp}");
            assert_eq!(*v[0].vnet_hdr(), VnetHdr::default());
            assert_eq!(local[TX_SW_CSUM], 1);
        }
    }

    #[test]
    fn a_carried_header_goes_as_is_where_the_port_takes_it() {
        let pool = Pool::new(PoolConfig::default().count(8)).unwrap();
        // With offloads, and without (a header on every frame all the same).
        for (gso, csum) in [(false, true), (true, true), (false, false), (true, false)] {
            let (p, _) = carried(&pool, true, gso);
            let before = p.data().to_vec();
            let h = *p.vnet_hdr();
            let mut v = vec![p];
            let mut local = [0u64; TX_N];
            let caps = TxOffload::vnet(csum);
            assert_eq!(
                prepare_burst(&mut v, 1, caps, &mut local, Link::Ethernet),
                0
            );
            assert_eq!(v[0].data(), &before[..]);
            assert_eq!(*v[0].vnet_hdr(), h);
            assert_eq!(local[TX_SW_CSUM], 0);
        }
    }

    #[test]
    fn a_carried_segmentation_request_is_refused_and_counted() {
        let pool = Pool::new(PoolConfig::default().count(8)).unwrap();
        let (p, _) = carried(&pool, true, true);
        let mut v = vec![p];
        let mut local = [0u64; TX_N];
        let caps = TxOffload {
            csum: true,
            gso: false,
            header: false,
            split: false,
        };
        assert_eq!(
            prepare_burst(&mut v, 1, caps, &mut local, Link::Ethernet),
            1
        );
        assert!(v.is_empty());
        assert_eq!(local[TX_REJECTED], 1);
        assert_eq!(pool.available(), 8, "the refused packet went back");
    }

    #[test]
    fn segmentation_goes_to_an_engine_that_splits() {
        let pool = Pool::new(PoolConfig::default().count(8).buf_size(8192)).unwrap();
        let caps = TxOffload {
            split: true,
            ..TxOffload::NONE
        };
        // Carried from an offloading port: goes as it is.
        let (p, _) = carried(&pool, true, true);
        let h = *p.vnet_hdr();
        let mut v = vec![p];
        let mut local = [0u64; TX_N];
        assert_eq!(
            prepare_burst(&mut v, 1, caps, &mut local, Link::Ethernet),
            0
        );
        assert_eq!(*v[0].vnet_hdr(), h);
        // Asked for: the request becomes the header the engine splits by.
        let frame = build(spec(false, true), &payload(3000, 4));
        let mut p = pool.alloc_from(&frame).unwrap();
        p.set_tx_offload(TxRequest {
            l4_csum: true,
            gso: Gso::Tcp {
                mss: 1000,
                ecn: false,
            },
        });
        let mut v = vec![p];
        assert_eq!(
            prepare_burst(&mut v, 1, caps, &mut local, Link::Ethernet),
            0
        );
        assert_eq!(v[0].vnet_hdr().gso_type, crate::wire::vnet::GSO_TCPV4);
        assert_eq!(v[0].vnet_hdr().gso_size, 1000);
        assert_eq!(v[0].tx_offload(), TxRequest::default());
        // Prepared again (an engine that took none): still goes.
        assert_eq!(
            prepare_burst(&mut v, 1, caps, &mut local, Link::Ethernet),
            0
        );
        assert_eq!(local[TX_REJECTED], 0);
    }
}
