//! The virtio-net header that a tap with `IFF_VNET_HDR` puts in front of every frame.
//!
//! Layout (legacy virtio, native byte order on a host without `TUNSETVNETLE/BE`):
//!
//! | offset | size | field         |
//! |--------|------|---------------|
//! | 0      | 1    | `flags`       |
//! | 1      | 1    | `gso_type`    |
//! | 2      | 2    | `hdr_len`     |
//! | 4      | 2    | `gso_size`    |
//! | 6      | 2    | `csum_start`  |
//! | 8      | 2    | `csum_offset` |
//! | 10     | 2    | `num_buffers` (12-byte layout only) |

/// Size of the basic header.
pub const VNET_HDR_LEN: usize = 10;
/// Size of the header with `num_buffers` (mergeable rx buffers layout).
pub const VNET_HDR_LEN_MRG: usize = 12;

/// `flags`: the L4 checksum must be computed from `csum_start`, stored at `csum_start + csum_offset`.
pub const F_NEEDS_CSUM: u8 = 1;
/// `flags`: the checksum has been verified.
pub const F_DATA_VALID: u8 = 2;
/// `flags`: receive-segment-coalescing info present.
pub const F_RSC_INFO: u8 = 4;

/// `gso_type`: not a GSO frame.
pub const GSO_NONE: u8 = 0;
/// `gso_type`: TCP over IPv4.
pub const GSO_TCPV4: u8 = 1;
/// `gso_type`: UDP fragmentation offload (obsolete).
pub const GSO_UDP: u8 = 3;
/// `gso_type`: TCP over IPv6.
pub const GSO_TCPV6: u8 = 4;
/// `gso_type`: UDP segmentation (USO).
pub const GSO_UDP_L4: u8 = 5;
/// `gso_type` bit: TCP with ECN.
pub const GSO_ECN: u8 = 0x80;

/// A decoded virtio-net header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VnetHdr {
    /// `F_*` flags.
    pub flags: u8,
    /// `GSO_*` type, possibly with [`GSO_ECN`].
    pub gso_type: u8,
    /// Length of the headers to replicate into each segment.
    pub hdr_len: u16,
    /// Segment payload size.
    pub gso_size: u16,
    /// Where checksumming starts.
    pub csum_start: u16,
    /// Where, from `csum_start`, the checksum is stored.
    pub csum_offset: u16,
    /// Buffers merged (12-byte layout only; 0 otherwise).
    pub num_buffers: u16,
}

impl VnetHdr {
    /// True when no flag and no GSO is set: a plain frame.
    pub fn is_plain(&self) -> bool {
        self.flags == 0 && self.gso_type == GSO_NONE
    }

    /// Writes the header in the `len`-byte layout (10 or 12). Returns `None` if
    /// `out` is shorter than `len` or `len` is not a known layout.
    pub fn encode(&self, out: &mut [u8], len: usize) -> Option<()> {
        if !(len == VNET_HDR_LEN || len == VNET_HDR_LEN_MRG) || out.len() < len {
            return None;
        }
        out[0] = self.flags;
        out[1] = self.gso_type;
        out[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        out[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        out[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        out[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        if len == VNET_HDR_LEN_MRG {
            out[10..12].copy_from_slice(&self.num_buffers.to_ne_bytes());
        }
        Some(())
    }

    /// Reads a header in the `len`-byte layout from the front of `buf`.
    pub fn decode(buf: &[u8], len: usize) -> Option<VnetHdr> {
        if !(len == VNET_HDR_LEN || len == VNET_HDR_LEN_MRG) || buf.len() < len {
            return None;
        }
        let u = |i: usize| u16::from_ne_bytes([buf[i], buf[i + 1]]);
        Some(VnetHdr {
            flags: buf[0],
            gso_type: buf[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
            num_buffers: if len == VNET_HDR_LEN_MRG { u(10) } else { 0 },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn zero_header_is_all_zero_bytes() {
        let mut b = [0xffu8; 12];
        VnetHdr::default().encode(&mut b, VNET_HDR_LEN).unwrap();
        assert_eq!(&b[..10], &[0u8; 10]);
        assert_eq!(
            &b[10..],
            &[0xff, 0xff],
            "10-byte layout must not touch byte 10"
        );
    }

    #[test]
    fn field_offsets() {
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 0x0102,
            gso_size: 1400,
            csum_start: 34,
            csum_offset: 16,
            num_buffers: 0,
        };
        let mut b = [0u8; 10];
        h.encode(&mut b, 10).unwrap();
        assert_eq!(b[0], 1);
        assert_eq!(b[1], 1);
        assert_eq!(u16::from_ne_bytes([b[2], b[3]]), 0x0102);
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 1400);
        assert_eq!(u16::from_ne_bytes([b[6], b[7]]), 34);
        assert_eq!(u16::from_ne_bytes([b[8], b[9]]), 16);
    }

    #[test]
    fn rejects_bad_layouts_and_short_buffers() {
        assert!(VnetHdr::decode(&[0; 9], 10).is_none());
        assert!(VnetHdr::decode(&[0; 16], 11).is_none());
        assert!(VnetHdr::default().encode(&mut [0; 11], 12).is_none());
    }

    proptest! {
        #[test]
        fn roundtrip(flags: u8, gso_type: u8, hdr_len: u16, gso_size: u16, csum_start: u16, csum_offset: u16, nb: u16, mrg: bool) {
            let len = if mrg { VNET_HDR_LEN_MRG } else { VNET_HDR_LEN };
            let h = VnetHdr { flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, num_buffers: if mrg { nb } else { 0 } };
            let mut b = [0u8; 12];
            h.encode(&mut b, len).unwrap();
            prop_assert_eq!(VnetHdr::decode(&b, len).unwrap(), h);
        }
    }
}
