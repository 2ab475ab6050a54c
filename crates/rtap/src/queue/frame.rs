//! [`Frame`]: a received frame lent where it lies, for the in-place receive
//! ([`RxQueue::rx_inplace`](super::RxQueue::rx_inplace)). On an AF_PACKET
//! port it is the bytes of a ring slot the kernel handed over (and, where the
//! kernel stripped a VLAN tag into the slot's header, that tag, so the frame
//! reads as it was on the wire); on other devices, a packet the queue received.
//! It lives only as long as the call that lends it, which is what keeps the
//! slot the application's: the slot goes back to the kernel after the call.

use crate::pool::{Packet, Segments};
use crate::wire::vnet::VnetHdr;

/// A received frame, lent for the length of an in-place receive call. Its
/// bytes are [`segments`](Frame::segments) (one to three slices, or a
/// packet's chain); [`vnet_hdr`](Frame::vnet_hdr) is what the kernel said of
/// it, as for a [`Packet`].
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    kind: Kind<'a>,
    vnet: VnetHdr,
    ts: Option<std::time::Duration>,
}

#[derive(Clone, Copy, Debug)]
enum Kind<'a> {
    /// Bytes in a ring: `head`, then the tag (if any), then `rest`.
    Ring {
        head: &'a [u8],
        tag: Option<[u8; 4]>,
        rest: &'a [u8],
    },
    /// A packet received into pool buffers.
    Packet(&'a Packet),
}

impl<'a> Frame<'a> {
    /// Placeholder of an unused entry.
    pub(crate) const EMPTY: Frame<'static> = Frame {
        kind: Kind::Ring {
            head: &[],
            tag: None,
            rest: &[],
        },
        vnet: VnetHdr {
            flags: 0,
            gso_type: 0,
            hdr_len: 0,
            gso_size: 0,
            csum_start: 0,
            csum_offset: 0,
            num_buffers: 0,
        },
        ts: None,
    };

    /// A frame in a ring: `data` as it lies, a VLAN tag (TPID, TCI) to put
    /// back after the MAC addresses, the kernel's virtio-net header.
    pub(crate) fn ring(data: &'a [u8], vlan: Option<(u16, u16)>, vnet: VnetHdr) -> Frame<'a> {
        let kind = match vlan {
            Some((tpid, tci)) if data.len() >= 12 => {
                let mut tag = [0u8; 4];
                tag[..2].copy_from_slice(&tpid.to_be_bytes());
                tag[2..].copy_from_slice(&tci.to_be_bytes());
                Kind::Ring {
                    head: &data[..12],
                    tag: Some(tag),
                    rest: &data[12..],
                }
            }
            _ => Kind::Ring {
                head: data,
                tag: None,
                rest: &[],
            },
        };
        Frame {
            kind,
            vnet,
            ts: None,
        }
    }

    /// The frame with the kernel's receive time.
    pub(crate) fn at(self, ts: Option<std::time::Duration>) -> Frame<'a> {
        Frame { ts, ..self }
    }

    /// A packet the queue received, lent as a frame.
    pub(crate) fn packet(p: &'a Packet) -> Frame<'a> {
        Frame {
            kind: Kind::Packet(p),
            vnet: *p.vnet_hdr(),
            ts: None,
        }
    }

    /// Frame length in bytes (virtio-net header excluded).
    pub fn len(&self) -> usize {
        match self.kind {
            Kind::Ring { head, tag, rest } => head.len() + tag.map_or(0, |_| 4) + rest.len(),
            Kind::Packet(p) => p.len(),
        }
    }

    /// True for a zero-length frame.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The virtio-net header: what the kernel reported on receive.
    pub fn vnet_hdr(&self) -> &VnetHdr {
        &self.vnet
    }

    /// When the kernel received the frame (since the Unix epoch, the
    /// realtime clock), where the device says: an AF_PACKET ring's frames
    /// carry it (`tp_sec`/`tp_nsec`); `None` elsewhere.
    pub fn timestamp(&self) -> Option<std::time::Duration> {
        self.ts
    }

    /// The first contiguous bytes: the Ethernet addresses at least, for a
    /// frame of 14 bytes or more.
    pub fn head(&self) -> &[u8] {
        match self.kind {
            Kind::Ring { head, .. } => head,
            Kind::Packet(p) => p.data(),
        }
    }

    /// The bytes, in order.
    pub fn segments(&self) -> FrameSegments<'_> {
        match &self.kind {
            Kind::Ring { head, tag, rest } => FrameSegments(Segs::Ring {
                parts: [head, tag.as_ref().map_or(&[][..], |t| &t[..]), rest],
                next: 0,
            }),
            Kind::Packet(p) => FrameSegments(Segs::Packet(p.segments())),
        }
    }

    /// Copies as much of the frame as fits into `out`; returns the bytes copied.
    pub fn copy_to(&self, out: &mut [u8]) -> usize {
        let mut at = 0;
        for s in self.segments() {
            let n = s.len().min(out.len() - at);
            out[at..at + n].copy_from_slice(&s[..n]);
            at += n;
            if at == out.len() {
                break;
            }
        }
        at
    }

    /// The frame in a new vector (for tests and slow paths).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        for s in self.segments() {
            v.extend_from_slice(s);
        }
        v
    }
}

/// The byte slices of a [`Frame`], in order (empty ones skipped).
#[derive(Debug)]
pub struct FrameSegments<'f>(Segs<'f>);

#[derive(Debug)]
enum Segs<'f> {
    Ring { parts: [&'f [u8]; 3], next: usize },
    Packet(Segments<'f>),
}

impl<'f> Iterator for FrameSegments<'f> {
    type Item = &'f [u8];

    fn next(&mut self) -> Option<&'f [u8]> {
        match &mut self.0 {
            Segs::Ring { parts, next } => {
                while *next < parts.len() {
                    let s = parts[*next];
                    *next += 1;
                    if !s.is_empty() {
                        return Some(s);
                    }
                }
                None
            }
            Segs::Packet(s) => s.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_goes_back_after_the_addresses() {
        let data: Vec<u8> = (0..40u8).collect();
        let f = Frame::ring(&data, Some((0x8100, 0x0064)), VnetHdr::default());
        assert_eq!(f.len(), 44);
        let v = f.to_vec();
        assert_eq!(&v[..12], &data[..12]);
        assert_eq!(&v[12..16], &[0x81, 0x00, 0x00, 0x64]);
        assert_eq!(&v[16..], &data[12..]);
        let mut out = [0u8; 20];
        assert_eq!(f.copy_to(&mut out), 20);
        assert_eq!(&out[..], &v[..20]);
        assert_eq!(f.segments().count(), 3);
        let plain = Frame::ring(&data, None, VnetHdr::default());
        assert_eq!(plain.to_vec(), data);
        assert_eq!(plain.segments().count(), 1);
        assert!(Frame::EMPTY.is_empty() && Frame::EMPTY.segments().next().is_none());
    }
}
