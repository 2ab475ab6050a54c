//! What an rx descriptor or a completion names, checked before anything is
//! read (pure: the fuzz target `xsk_desc` feeds it arbitrary descriptors).
//!
//! The UMEM is a pool's memory: `count` buffers of `stride` bytes, buffer `i`
//! at offset `i * stride`. rtap lends whole buffers to the kernel (the fill
//! ring, a tx descriptor) and remembers which ([`Lent`]); a descriptor is
//! accepted only if it names a buffer lent to this ring, and its bytes lie
//! inside that buffer. Anything else is counted and dropped, never followed:
//! a descriptor naming a buffer the application holds would otherwise hand
//! one buffer to two owners.

use crate::sys::xdp::{XDP_PKT_CONTD, XSK_UNALIGNED_BUF_OFFSET_SHIFT};

/// The UMEM's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geom {
    /// Bytes between buffer starts (the pool's stride, the UMEM chunk size).
    pub stride: u32,
    /// Buffers.
    pub count: u32,
    /// Descriptor addresses carry the data's offset in their top 16 bits
    /// (`XDP_UMEM_UNALIGNED_CHUNK_FLAG`).
    pub unaligned: bool,
}

/// Why a descriptor was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bad {
    /// Outside the UMEM, or running past its buffer's end.
    OutOfBounds,
    /// Names a buffer that was not lent to this ring.
    NotLent,
    /// Zero length, or options this reader does not take.
    Malformed,
}

/// A received frame: its buffer and where the bytes are in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    pub buf: u32,
    pub off: u32,
    pub len: u32,
}

impl Geom {
    /// The byte offset in the UMEM a descriptor address points at.
    fn data_offset(&self, addr: u64) -> Option<u64> {
        if self.unaligned {
            let base = addr & ((1u64 << XSK_UNALIGNED_BUF_OFFSET_SHIFT) - 1);
            base.checked_add(addr >> XSK_UNALIGNED_BUF_OFFSET_SHIFT)
        } else {
            Some(addr)
        }
    }

    /// The frame an rx descriptor describes, if it lies inside one buffer lent
    /// to the ring (`lent` says which are); the buffer is taken back from
    /// `lent`. Multi-buffer continuations (`XDP_PKT_CONTD`) are refused
    /// (`Malformed`) by this single-buffer reader.
    pub(crate) fn rx(
        &self,
        lent: &mut Lent,
        addr: u64,
        len: u32,
        options: u32,
    ) -> Result<Frame, Bad> {
        if len == 0 || options & !XDP_PKT_CONTD != 0 || options & XDP_PKT_CONTD != 0 {
            return Err(Bad::Malformed);
        }
        let at = self.data_offset(addr).ok_or(Bad::OutOfBounds)?;
        let stride = u64::from(self.stride);
        let buf = at / stride;
        let off = at % stride;
        if buf >= u64::from(self.count) || off + u64::from(len) > stride {
            return Err(Bad::OutOfBounds);
        }
        let buf = buf as u32;
        if !lent.take(buf) {
            return Err(Bad::NotLent);
        }
        Ok(Frame {
            buf,
            off: off as u32,
            len,
        })
    }

    /// The buffer a completion returns (the tx descriptor's address, offset
    /// included), if it was lent to the ring; taken back from `lent`.
    pub(crate) fn completion(&self, lent: &mut Lent, addr: u64) -> Result<u32, Bad> {
        let at = self.data_offset(addr).ok_or(Bad::OutOfBounds)?;
        let buf = at / u64::from(self.stride);
        if buf >= u64::from(self.count) {
            return Err(Bad::OutOfBounds);
        }
        let buf = buf as u32;
        if !lent.take(buf) {
            return Err(Bad::NotLent);
        }
        Ok(buf)
    }

    /// The descriptor address of byte `off` of buffer `buf`.
    pub(crate) fn addr(&self, buf: u32, off: u32) -> u64 {
        let base = u64::from(buf) * u64::from(self.stride);
        if self.unaligned {
            base | (u64::from(off) << XSK_UNALIGNED_BUF_OFFSET_SHIFT)
        } else {
            base + u64::from(off)
        }
    }
}

/// Which buffers one ring has lent to the kernel: a bit per pool buffer,
/// allocated once.
#[derive(Debug)]
pub(crate) struct Lent {
    bits: Vec<u64>,
    buffers: u32,
    count: usize,
}

impl Lent {
    pub(crate) fn new(buffers: u32) -> Lent {
        Lent {
            bits: vec![0; (buffers as usize).div_ceil(64)],
            buffers,
            count: 0,
        }
    }

    /// Marks `buf` lent; false if it already was (a bug: never lend twice) or
    /// is not a buffer of the pool.
    pub(crate) fn lend(&mut self, buf: u32) -> bool {
        if buf >= self.buffers {
            return false;
        }
        let (w, b) = (buf as usize / 64, 1u64 << (buf % 64));
        match self.bits.get_mut(w) {
            Some(word) if *word & b == 0 => {
                *word |= b;
                self.count += 1;
                true
            }
            _ => false,
        }
    }

    /// Takes `buf` back; false if it was not lent.
    pub(crate) fn take(&mut self, buf: u32) -> bool {
        let (w, b) = (buf as usize / 64, 1u64 << (buf % 64));
        match self.bits.get_mut(w) {
            Some(word) if *word & b != 0 => {
                *word &= !b;
                self.count -= 1;
                true
            }
            _ => false,
        }
    }

    /// Buffers lent now.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Takes every lent buffer back, calling `f` with each.
    pub(crate) fn drain(&mut self, mut f: impl FnMut(u32)) {
        for (w, word) in self.bits.iter_mut().enumerate() {
            while *word != 0 {
                let b = word.trailing_zeros();
                *word &= *word - 1;
                f((w * 64) as u32 + b);
            }
        }
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const G: Geom = Geom {
        stride: 2176,
        count: 16,
        unaligned: true,
    };

    #[test]
    fn rx_descriptors() {
        let mut lent = Lent::new(16);
        assert!(lent.lend(3));
        assert!(!lent.lend(3), "never twice");
        // Unaligned: base of buffer 3, data 256 bytes in.
        let addr = G.addr(3, 256);
        assert_eq!(
            G.rx(&mut lent, addr, 60, 0),
            Ok(Frame {
                buf: 3,
                off: 256,
                len: 60
            })
        );
        assert_eq!(lent.count(), 0);
        assert_eq!(
            G.rx(&mut lent, addr, 60, 0),
            Err(Bad::NotLent),
            "taken once"
        );
        lent.lend(3);
        assert_eq!(
            G.rx(&mut lent, addr, 2176 - 256 + 1, 0),
            Err(Bad::OutOfBounds)
        );
        assert_eq!(G.rx(&mut lent, addr, 0, 0), Err(Bad::Malformed));
        assert_eq!(
            G.rx(&mut lent, addr, 60, XDP_PKT_CONTD),
            Err(Bad::Malformed)
        );
        assert_eq!(G.rx(&mut lent, addr, 60, 4), Err(Bad::Malformed));
        assert_eq!(G.rx(&mut lent, G.addr(16, 0), 60, 0), Err(Bad::OutOfBounds));
        assert_eq!(G.rx(&mut lent, u64::MAX, 60, 0), Err(Bad::OutOfBounds));
        // Aligned addresses are plain offsets.
        let a = Geom {
            unaligned: false,
            stride: 2048,
            ..G
        };
        let mut lent = Lent::new(16);
        lent.lend(2);
        assert_eq!(a.addr(2, 256), 2 * 2048 + 256);
        assert_eq!(
            a.rx(&mut lent, 2 * 2048 + 256, 100, 0),
            Ok(Frame {
                buf: 2,
                off: 256,
                len: 100
            })
        );
    }

    #[test]
    fn completions_and_drain() {
        let mut lent = Lent::new(130);
        for b in [0, 64, 129] {
            assert!(lent.lend(b));
        }
        assert!(!lent.lend(130), "out of range");
        assert_eq!(G.completion(&mut lent, G.addr(0, 300)), Ok(0));
        assert_eq!(G.completion(&mut lent, G.addr(0, 300)), Err(Bad::NotLent));
        let mut back = Vec::new();
        lent.drain(|b| back.push(b));
        assert_eq!(back, vec![64, 129]);
        assert_eq!(lent.count(), 0);
    }

    proptest! {
        /// Whatever the descriptor, an accepted frame lies inside one lent
        /// buffer, and the lent count drops by exactly one.
        #[test]
        fn accepted_frames_lie_in_a_lent_buffer(
            addr in any::<u64>(), len in any::<u32>(), options in 0u32..4,
            stride in 2048u32..=4096, count in 1u32..64, unaligned in any::<bool>(),
            lend in proptest::collection::vec(0u32..64, 0..64),
        ) {
            let g = Geom { stride, count, unaligned };
            let mut lent = Lent::new(count);
            for b in lend { lent.lend(b); }
            let before = lent.count();
            if let Ok(f) = g.rx(&mut lent, addr, len, options) {
                prop_assert!(f.buf < count);
                prop_assert!(u64::from(f.off) + u64::from(f.len) <= u64::from(stride));
                prop_assert_eq!(lent.count(), before - 1);
            } else {
                prop_assert_eq!(lent.count(), before);
            }
        }
    }
}
