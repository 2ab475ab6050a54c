//! The frame headers of a TPACKET rx ring, read out of the bytes of a slot (V2)
//! or a block (V3) the user owns. Pure functions over byte slices: every offset
//! and length a header carries is checked against its slot or block, so a header
//! that does not add up (a peer process sharing the ring that wrote over it, a
//! kernel bug) is a counted error, never a read outside the ring or a panic.
//! The fuzz target `tpacket` runs these on arbitrary bytes.
//!
//! Layouts (`linux/if_packet.h`), native endian, as the kernel writes them:
//! - `tpacket2_hdr` (32 bytes): status @0, len @4, snaplen @8, mac u16 @12,
//!   net u16 @14, sec @16, nsec @20, vlan_tci u16 @24, vlan_tpid u16 @26;
//!   a `sockaddr_ll` follows at 32 (its `sll_pkttype` at +10).
//! - V3 block descriptor: block_status @8, num_pkts @12,
//!   offset_to_first_pkt @16, seq_num u64 @24.
//! - `tpacket3_hdr` (48 bytes): next_offset @0, sec @4, nsec @8, snaplen @12,
//!   len @16, status @20, mac u16 @24, vlan_tci @32, vlan_tpid u16 @36; its
//!   `sockaddr_ll` at 48.

use std::ops::Range;

/// Size of `tpacket2_hdr`, rounded to `TPACKET_ALIGNMENT`: where the
/// `sockaddr_ll` starts in a V2 slot.
const V2_HDR: usize = 32;
/// Size of `tpacket3_hdr`: where the `sockaddr_ll` starts after a V3 header.
const V3_HDR: usize = 48;
/// `sizeof(struct sockaddr_ll)`.
const SLL_LEN: usize = 20;
/// Offset of `sll_pkttype` in the `sockaddr_ll`.
const SLL_PKTTYPE: usize = 10;
/// Size of a V3 block descriptor's part rtap reads (through `seq_num`).
const V3_BLOCK_DESC: usize = 32;

/// A received frame as its slot or block header describes it: ranges into the
/// slot (V2) or block (V3) the header was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FrameRef {
    /// The frame's bytes (from its MAC header).
    pub data: Range<usize>,
    /// Length on the wire (more than `data.len()` if the ring cut the frame).
    pub wire_len: usize,
    /// The frame's `tp_status` (V2: the slot's, V3: the packet header's).
    pub status: u32,
    /// The VLAN tag the kernel stripped: (TPID, TCI).
    pub vlan: Option<(u16, u16)>,
    /// The virtio-net header in front of the frame, when the socket has one.
    pub vnet: Option<Range<usize>>,
    /// `sll_pkttype` (`PACKET_OUTGOING`: a frame this host sent).
    pub pkttype: u8,
    /// When the kernel received it (`tp_sec`, `tp_nsec`: the realtime
    /// clock), if the header holds a valid time.
    pub ts: Option<std::time::Duration>,
}

/// A header's time, if it is one (nanoseconds below a second, not zero).
fn ts(sec: u32, nsec: u32) -> Option<std::time::Duration> {
    (nsec < 1_000_000_000 && (sec, nsec) != (0, 0))
        .then(|| std::time::Duration::new(u64::from(sec), nsec))
}

/// A header whose offsets or lengths point outside its slot or block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Corrupt;

/// The `N` bytes of `b` at `off`, if they are there.
fn bytes_at<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    b.get(off..off.checked_add(N)?)?.try_into().ok()
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    bytes_at(b, off).map(u16::from_ne_bytes)
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    bytes_at(b, off).map(u32::from_ne_bytes)
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    bytes_at(b, off).map(u64::from_ne_bytes)
}

/// The frame of `buf` whose header fields are given, with its MAC header at
/// `mac`, its `sockaddr_ll` ending at `sll_end` (the frame may not start
/// before it), checked to lie inside `buf`.
#[allow(clippy::too_many_arguments)]
fn frame(
    buf: &[u8],
    mac: usize,
    sll_end: usize,
    snaplen: u32,
    len: u32,
    status: u32,
    tci: u16,
    tpid: u16,
    pkttype: u8,
    vnet_len: usize,
) -> Result<FrameRef, Corrupt> {
    if mac < sll_end {
        return Err(Corrupt);
    }
    let end = mac.checked_add(snaplen as usize).ok_or(Corrupt)?;
    // A frame whose headers alone do not fit its slot: the kernel stores none
    // of it (snaplen 0, mac past the slot). Cut, not corrupt.
    // (No virtio-net header is written then either.)
    let nothing = snaplen == 0 && mac >= buf.len();
    let (mac, end) = if nothing {
        (buf.len(), buf.len())
    } else {
        (mac, end)
    };
    if end > buf.len() {
        return Err(Corrupt);
    }
    let vlan = (status & libc::TP_STATUS_VLAN_VALID != 0).then(|| {
        let tpid = if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
            tpid
        } else {
            0x8100
        };
        (tpid, tci)
    });
    // The kernel puts the virtio-net header right in front of the frame, after
    // the sockaddr_ll.
    let vnet = (!nothing && vnet_len > 0 && mac >= sll_end + vnet_len).then(|| mac - vnet_len..mac);
    Ok(FrameRef {
        data: mac..end,
        wire_len: len as usize,
        status,
        vlan,
        vnet,
        pkttype,
        ts: None,
    })
}

/// The frame in V2 slot `slot` (the whole slot, header first), whose status
/// word, loaded by the caller, is `status`.
pub(crate) fn v2_frame(slot: &[u8], status: u32, vnet_len: usize) -> Result<FrameRef, Corrupt> {
    let sll_end = V2_HDR + SLL_LEN;
    if slot.len() < sll_end {
        return Err(Corrupt);
    }
    let get = |o| u32_at(slot, o).ok_or(Corrupt);
    let get16 = |o| u16_at(slot, o).ok_or(Corrupt);
    let mut f = frame(
        slot,
        get16(12)? as usize,
        sll_end,
        get(8)?,
        get(4)?,
        status,
        get16(24)?,
        get16(26)?,
        slot[V2_HDR + SLL_PKTTYPE],
        vnet_len,
    )?;
    f.ts = ts(get(16)?, get(20)?);
    Ok(f)
}

/// The kernel's sequence number of a V3 block (it counts the blocks it hands
/// over), to order blocks the user owns; 0 if the block is too short to hold it.
pub(crate) fn v3_block_seq(block: &[u8]) -> u64 {
    u64_at(block, 24).unwrap_or(0)
}

/// Where reading a V3 block stands: frames left and the offset of the next
/// one's header. `left == 0` once the block is read (or found corrupt).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BlockCursor {
    /// Frames not yet read.
    pub left: u32,
    /// Offset of the next frame's header from the block start.
    pub off: u32,
}

impl BlockCursor {
    /// The cursor at the first frame of `block` (the whole block, descriptor
    /// first), as its descriptor says; a descriptor that does not fit gives an
    /// empty cursor.
    pub(crate) fn open(block: &[u8]) -> BlockCursor {
        if block.len() < V3_BLOCK_DESC {
            return BlockCursor::default();
        }
        BlockCursor {
            left: u32_at(block, 12).unwrap_or(0),
            off: u32_at(block, 16).unwrap_or(0),
        }
    }

    /// The next frame of `block`, or `None` once every frame is read. A frame
    /// whose header does not add up is `Err`, and ends the block: what follows
    /// it cannot be found.
    pub(crate) fn next(
        &mut self,
        block: &[u8],
        vnet_len: usize,
    ) -> Option<Result<FrameRef, Corrupt>> {
        if self.left == 0 {
            return None;
        }
        let r = self.read(block, vnet_len);
        match &r {
            Ok((_, next)) if self.left > 1 => match self.off.checked_add(*next) {
                // A next offset must move forward (0 marks the last frame).
                Some(off) if *next > 0 => {
                    self.left -= 1;
                    self.off = off;
                }
                _ => self.left = 0,
            },
            _ => self.left = 0,
        }
        Some(r.map(|(f, _)| f))
    }

    /// The frame at `self.off` and its next-offset field.
    fn read(&self, block: &[u8], vnet_len: usize) -> Result<(FrameRef, u32), Corrupt> {
        let at = self.off as usize;
        let sll_end = at.checked_add(V3_HDR + SLL_LEN).ok_or(Corrupt)?;
        if at < V3_BLOCK_DESC || sll_end > block.len() {
            return Err(Corrupt);
        }
        let get = |o| u32_at(block, at + o).ok_or(Corrupt);
        let get16 = |o| u16_at(block, at + o).ok_or(Corrupt);
        let mac = at.checked_add(get16(24)? as usize).ok_or(Corrupt)?;
        let mut f = frame(
            block,
            mac,
            sll_end,
            get(12)?,
            get(16)?,
            get(20)?,
            get(32)? as u16,
            get16(36)?,
            block[at + V3_HDR + SLL_PKTTYPE],
            vnet_len,
        )?;
        f.ts = ts(get(4)?, get(8)?);
        Ok((f, get(0)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put32(b: &mut [u8], off: usize, v: u32) {
        b[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    }

    fn put16(b: &mut [u8], off: usize, v: u16) {
        b[off..off + 2].copy_from_slice(&v.to_ne_bytes());
    }

    /// A V2 slot of 256 bytes with a frame of `snap` bytes (wire `len`) at `mac`.
    fn v2(mac: u16, snap: u32, len: u32) -> Vec<u8> {
        let mut s = vec![0u8; 256];
        put32(&mut s, 4, len);
        put32(&mut s, 8, snap);
        put16(&mut s, 12, mac);
        put16(&mut s, 24, 7);
        put16(&mut s, 26, 0x88a8);
        s[V2_HDR + SLL_PKTTYPE] = 4;
        s
    }

    #[test]
    fn v2_frame_reads_the_header() {
        let st = libc::TP_STATUS_USER | libc::TP_STATUS_VLAN_VALID;
        let f = v2_frame(&v2(64, 60, 60), st, 10).unwrap();
        assert_eq!(f.data, 64..124);
        assert_eq!(f.wire_len, 60);
        assert_eq!(f.vlan, Some((0x8100, 7)));
        assert_eq!(f.vnet, Some(54..64));
        assert_eq!(f.pkttype, 4);
        let st = st | libc::TP_STATUS_VLAN_TPID_VALID;
        assert_eq!(
            v2_frame(&v2(64, 60, 60), st, 0).unwrap().vlan,
            Some((0x88a8, 7))
        );
        // A cut frame: fewer bytes than on the wire (the caller counts it).
        assert_eq!(v2_frame(&v2(64, 60, 1500), 1, 0).unwrap().wire_len, 1500);
        // The kernel's receive time, when the header holds one.
        assert_eq!(f.ts, None);
        let mut s = v2(64, 60, 60);
        put32(&mut s, 16, 1_700_000_000);
        put32(&mut s, 20, 999_999_999);
        let t = v2_frame(&s, 1, 0).unwrap().ts;
        assert_eq!(
            t,
            Some(std::time::Duration::new(1_700_000_000, 999_999_999))
        );
        put32(&mut s, 20, 1_000_000_000);
        assert_eq!(v2_frame(&s, 1, 0).unwrap().ts, None, "not a time");
    }

    #[test]
    fn v2_frame_outside_its_slot_is_corrupt() {
        // Past the slot's end, over its header, or a slot too short for one.
        assert_eq!(v2_frame(&v2(64, 193, 193), 1, 0), Err(Corrupt));
        assert_eq!(v2_frame(&v2(u16::MAX, 1, 1), 1, 0), Err(Corrupt));
        assert_eq!(v2_frame(&v2(16, 10, 10), 1, 0), Err(Corrupt));
        assert_eq!(v2_frame(&[0u8; 40], 1, 0), Err(Corrupt));
        // Headers too long for the slot: the kernel stores nothing (snaplen 0,
        // mac past the slot); an empty, cut frame, not a corrupt one.
        let f = v2_frame(&v2(300, 0, 1514), 1, 10).unwrap();
        assert_eq!((f.data, f.wire_len, f.vnet), (256..256, 1514, None));
        // No room for the virtio-net header after the sockaddr_ll: none.
        assert_eq!(v2_frame(&v2(56, 10, 10), 1, 10).unwrap().vnet, None);
    }

    /// A V3 block of 512 bytes holding frames of `sizes` bytes, each header
    /// 96 bytes after the last.
    fn v3(sizes: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 512];
        put32(&mut b, 12, sizes.len() as u32);
        put32(&mut b, 16, 48);
        for (k, &n) in sizes.iter().enumerate() {
            let at = 48 + 96 * k;
            let last = k + 1 == sizes.len();
            put32(&mut b, at, if last { 0 } else { 96 });
            put32(&mut b, at + 12, n);
            put32(&mut b, at + 16, n);
            put16(&mut b, at + 24, 70);
            b[at + V3_HDR + SLL_PKTTYPE] = k as u8;
        }
        b
    }

    fn read_all(b: &[u8]) -> Vec<Result<FrameRef, Corrupt>> {
        let mut c = BlockCursor::open(b);
        std::iter::from_fn(|| c.next(b, 0)).collect()
    }

    #[test]
    fn v3_cursor_walks_the_block() {
        let b = v3(&[10, 20, 26]);
        let got = read_all(&b);
        let ranges: Vec<_> = got
            .iter()
            .map(|f| f.as_ref().unwrap().data.clone())
            .collect();
        assert_eq!(ranges, [118..128, 214..234, 310..336]);
        assert_eq!(got[2].as_ref().unwrap().pkttype, 2);
    }

    #[test]
    fn v3_corrupt_headers_end_the_block() {
        // A frame past the block end: an error, and nothing after it.
        let b = v3(&[10, 400, 10]);
        let got = read_all(&b);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], Err(Corrupt));
        // More frames claimed than linked: the block ends at the last link.
        let mut b = v3(&[10, 10]);
        put32(&mut b, 12, 1000);
        assert_eq!(read_all(&b).len(), 2);
        // A first offset inside the descriptor, or past the block.
        for first in [0, 8, 500, u32::MAX] {
            let mut b = v3(&[10]);
            put32(&mut b, 16, first);
            assert_eq!(read_all(&b), [Err(Corrupt)], "first at {first}");
        }
        // A next offset that wraps.
        let mut b = v3(&[10, 10]);
        put32(&mut b, 48, u32::MAX);
        assert_eq!(read_all(&b).len(), 1);
        // Too short for a descriptor: no frames.
        assert!(read_all(&[0u8; 16]).is_empty());
    }
}
