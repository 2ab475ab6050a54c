//! Software segmentation for fd engines of ports whose frames go without a
//! virtio-net header (a TAP or TUN opened with `vnet_hdr=off`): such a port
//! cannot hand a segmentation request to the kernel, so its engine writes the
//! segments itself, each as two iovecs: the segment's headers, built in a
//! scratch buffer of the engine, and its payload, a slice of the large packet
//! where it lies. The payload is read once (for its checksum) and copied once,
//! by the kernel, out of the packet: no segment is ever assembled in memory.
//!
//! The queue layer lets a packet through to the engine in this state only
//! where [`TxOffload::split`](crate::TxOffload::split) says the engine splits.

use crate::pool::Packet;
use crate::wire::gso::{split_on, Split};
use crate::wire::layout::Link;
use crate::wire::vnet::GSO_NONE;

/// Bytes of header scratch per segment: link, IP and L4 headers of any frame
/// rtap splits (Ethernet with two VLAN tags, IPv6 with extension headers, TCP
/// with options) fit; a packet whose headers do not is refused (counted).
pub(crate) const SEG_HDR: usize = 256;

/// True if the engine must split `pkt` itself: its header asks for
/// segmentation and the frames go without a header (`vnet_len` 0).
#[inline]
pub(crate) fn needs_split(pkt: &Packet, vnet_len: usize) -> bool {
    vnet_len == 0 && pkt.vnet_hdr().gso_type != GSO_NONE
}

/// The segments of `pkt`, or `None` if it cannot be split here (a chained
/// packet, headers rtap cannot parse or longer than [`SEG_HDR`]): the engine
/// then drops it as a tx error.
pub(crate) fn split(pkt: &Packet, link: Link) -> Option<Split<'_>> {
    if pkt.nb_segs() > 1 {
        return None;
    }
    split_on(pkt.data(), pkt.vnet_hdr(), link)
        .ok()
        .filter(|s| s.hdr_len() <= SEG_HDR)
}
