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

/// A received frame, or one piece of a multi-buffer frame: its buffer and
/// where the bytes are in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Frame {
    pub buf: u32,
    pub off: u32,
    pub len: u32,
    /// More pieces of this frame follow (`XDP_PKT_CONTD`, multi-buffer only).
    pub more: bool,
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

    /// The frame (or piece, with `sg`) an rx descriptor describes, if it lies
    /// inside one buffer lent to the ring (`lent` says which are); the buffer
    /// is taken back from `lent`. Without `sg` (a socket bound without
    /// `XDP_USE_SG`) a continuation (`XDP_PKT_CONTD`) is refused (`Malformed`).
    pub(crate) fn rx(
        &self,
        lent: &mut Lent,
        addr: u64,
        len: u32,
        options: u32,
        sg: bool,
    ) -> Result<Frame, Bad> {
        let more = options & XDP_PKT_CONTD != 0;
        if len == 0 || options & !XDP_PKT_CONTD != 0 || (more && !sg) {
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
            more,
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

/// Pieces one multi-buffer frame may have: the kernel makes at most
/// `MAX_SKB_FRAGS + 1` (18).
pub(crate) const MAX_FRAGS: usize = 18;

/// What one rx descriptor did ([`Gather::push`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// A piece of a frame whose end is still to come.
    Pending,
    /// A frame is complete: [`Gather::frame`] has its pieces.
    Frame,
    /// The descriptor was refused, or belongs to a frame that was: the frame
    /// is dropped, its buffers given back.
    Dropped,
}

/// Gathers rx descriptors into frames: one piece each, or with multi-buffer
/// several, every one but the last with `XDP_PKT_CONTD`. A refused piece, or
/// a frame of more than [`MAX_FRAGS`] pieces, drops the whole frame: the
/// pieces taken so far and every later one of that frame (up to and including
/// the one without `XDP_PKT_CONTD`) go back to the pool, so a frame never
/// starts in the middle of another.
#[derive(Debug)]
pub(crate) struct Gather {
    parts: [Frame; MAX_FRAGS],
    n: usize,
    /// Dropping the rest of a refused frame.
    skipping: bool,
}

impl Gather {
    pub(crate) fn new() -> Gather {
        Gather {
            parts: [Frame::default(); MAX_FRAGS],
            n: 0,
            skipping: false,
        }
    }

    /// Takes one descriptor. Buffers of a dropped frame go to `give_back`.
    pub(crate) fn push(
        &mut self,
        geom: &Geom,
        lent: &mut Lent,
        (addr, len, options): (u64, u32, u32),
        sg: bool,
        mut give_back: impl FnMut(u32),
    ) -> Step {
        let r = geom.rx(lent, addr, len, options, sg);
        let more = sg && options & XDP_PKT_CONTD != 0;
        if self.skipping {
            if let Ok(f) = r {
                give_back(f.buf);
            }
            self.skipping = more;
            return Step::Dropped;
        }
        match r {
            Ok(f) if self.n < MAX_FRAGS => {
                self.parts[self.n] = f;
                self.n += 1;
                if f.more {
                    Step::Pending
                } else {
                    Step::Frame
                }
            }
            r => {
                if let Ok(f) = r {
                    give_back(f.buf);
                }
                for p in &self.parts[..self.n] {
                    give_back(p.buf);
                }
                self.n = 0;
                self.skipping = more;
                Step::Dropped
            }
        }
    }

    /// The pieces of the frame [`push`](Self::push) completed; `clear` next.
    pub(crate) fn frame(&self) -> &[Frame] {
        &self.parts[..self.n]
    }

    /// Forgets the completed frame (its buffers are the caller's now).
    pub(crate) fn clear(&mut self) {
        self.n = 0;
    }

    /// Pieces of a frame still incomplete.
    pub(crate) fn pending(&self) -> usize {
        self.n
    }

    /// Drops an incomplete frame that cannot complete (its end is not in a
    /// fresh view of the ring): its buffers to `give_back`, the rest of it
    /// skipped as it comes; returns its pieces.
    pub(crate) fn abandon(&mut self, mut give_back: impl FnMut(u32)) -> usize {
        let n = self.n;
        for p in &self.parts[..n] {
            give_back(p.buf);
        }
        self.n = 0;
        self.skipping = true;
        n
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

    /// True if `buf` is lent.
    pub(crate) fn is_lent(&self, buf: u32) -> bool {
        let (w, b) = (buf as usize / 64, 1u64 << (buf % 64));
        self.bits.get(w).is_some_and(|word| word & b != 0)
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
            G.rx(&mut lent, addr, 60, 0, false),
            Ok(Frame {
                buf: 3,
                off: 256,
                len: 60,
                more: false
            })
        );
        assert_eq!(lent.count(), 0);
        assert_eq!(
            G.rx(&mut lent, addr, 60, 0, false),
            Err(Bad::NotLent),
            "taken once"
        );
        lent.lend(3);
        assert_eq!(
            G.rx(&mut lent, addr, 2176 - 256 + 1, 0, false),
            Err(Bad::OutOfBounds)
        );
        assert_eq!(G.rx(&mut lent, addr, 0, 0, false), Err(Bad::Malformed));
        assert_eq!(
            G.rx(&mut lent, addr, 60, XDP_PKT_CONTD, false),
            Err(Bad::Malformed)
        );
        assert_eq!(G.rx(&mut lent, addr, 60, 4, false), Err(Bad::Malformed));
        assert_eq!(
            G.rx(&mut lent, G.addr(16, 0), 60, 0, false),
            Err(Bad::OutOfBounds)
        );
        assert_eq!(
            G.rx(&mut lent, u64::MAX, 60, 0, false),
            Err(Bad::OutOfBounds)
        );
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
            a.rx(&mut lent, 2 * 2048 + 256, 100, 0, false),
            Ok(Frame {
                buf: 2,
                off: 256,
                len: 100,
                more: false
            })
        );
    }

    #[test]
    fn continuations_only_with_multi_buffer() {
        let mut lent = Lent::new(16);
        lent.lend(3);
        let addr = G.addr(3, 256);
        assert_eq!(
            G.rx(&mut lent, addr, 60, XDP_PKT_CONTD, false),
            Err(Bad::Malformed)
        );
        assert_eq!(
            G.rx(&mut lent, addr, 60, XDP_PKT_CONTD, true)
                .map(|f| f.more),
            Ok(true)
        );
    }

    /// Feeds `descs` (buffer, len, more) to a gather over buffers 0..16 all
    /// lent; returns the steps, the frames made (their buffers), the buffers
    /// given back and the gather.
    fn gather(descs: &[(u32, u32, bool)]) -> (Vec<Step>, Vec<Vec<u32>>, Vec<u32>, Gather) {
        let mut lent = Lent::new(16);
        for b in 0..16 {
            lent.lend(b);
        }
        let mut g = Gather::new();
        let (mut steps, mut frames, mut back) = (Vec::new(), Vec::new(), Vec::new());
        for &(b, len, more) in descs {
            let d = (G.addr(b, 256), len, if more { XDP_PKT_CONTD } else { 0 });
            let st = g.push(&G, &mut lent, d, true, |b| back.push(b));
            if st == Step::Frame {
                frames.push(g.frame().iter().map(|f| f.buf).collect());
                g.clear();
            }
            steps.push(st);
        }
        (steps, frames, back, g)
    }

    #[test]
    fn gather_frames_of_several_pieces() {
        use Step::*;
        let (steps, frames, back, g) = gather(&[
            (0, 60, false),
            (1, 1000, true),
            (2, 1000, true),
            (3, 7, false),
        ]);
        assert_eq!(steps, [Frame, Pending, Pending, Frame]);
        assert_eq!(frames, [vec![0], vec![1, 2, 3]]);
        assert!(back.is_empty());
        assert_eq!(g.pending(), 0);
    }

    #[test]
    fn a_refused_piece_drops_its_whole_frame() {
        use Step::*;
        // Buffer 1 twice: the second time it is not lent. Its frame goes,
        // including the pieces after it; the next frame is whole.
        let (steps, frames, back, _) = gather(&[
            (1, 100, true),
            (1, 100, true),
            (2, 100, true),
            (3, 100, false),
            (4, 60, false),
        ]);
        assert_eq!(steps, [Pending, Dropped, Dropped, Dropped, Frame]);
        assert_eq!(frames, [vec![4]]);
        assert_eq!(back, [1, 2, 3]);
    }

    #[test]
    fn too_many_pieces_drop_the_frame() {
        let descs: Vec<_> = (0..16).map(|b| (b, 100, true)).collect();
        let (steps, frames, back, g) = gather(&descs);
        assert!(steps.iter().all(|s| *s == Step::Pending));
        assert!(frames.is_empty() && back.is_empty());
        assert_eq!(g.pending(), 16);
        // 18 pieces is the most: a 19th (buffers reused after a reset) drops it.
        let mut lent = Lent::new(32);
        let mut g = Gather::new();
        let mut back = Vec::new();
        let mut last = Step::Pending;
        for b in 0..=MAX_FRAGS as u32 {
            lent.lend(b);
            last = g.push(
                &G2,
                &mut lent,
                (G2.addr(b, 0), 10, XDP_PKT_CONTD),
                true,
                |b| back.push(b),
            );
        }
        assert_eq!(last, Step::Dropped);
        assert_eq!(back.len(), MAX_FRAGS + 1);
        // The rest of it is skipped up to its last piece.
        lent.lend(20);
        assert_eq!(
            g.push(&G2, &mut lent, (G2.addr(20, 0), 10, 0), true, |b| back
                .push(b)),
            Step::Dropped
        );
        lent.lend(21);
        assert_eq!(
            g.push(&G2, &mut lent, (G2.addr(21, 0), 10, 0), true, |b| back
                .push(b)),
            Step::Frame
        );
    }

    #[test]
    fn abandon_gives_an_incomplete_frame_back_and_skips_its_rest() {
        let mut lent = Lent::new(16);
        for b in [5, 6, 7, 8] {
            lent.lend(b);
        }
        let mut g = Gather::new();
        let mut back = Vec::new();
        let d = |b, more| (G.addr(b, 256), 100, if more { XDP_PKT_CONTD } else { 0 });
        assert_eq!(
            g.push(&G, &mut lent, d(5, true), true, |b| back.push(b)),
            Step::Pending
        );
        assert_eq!(
            g.push(&G, &mut lent, d(6, true), true, |b| back.push(b)),
            Step::Pending
        );
        assert_eq!(g.abandon(|b| back.push(b)), 2);
        assert_eq!(back, [5, 6]);
        // Its last piece, when it comes, is skipped; the next frame is whole.
        assert_eq!(
            g.push(&G, &mut lent, d(7, false), true, |b| back.push(b)),
            Step::Dropped
        );
        assert_eq!(
            g.push(&G, &mut lent, d(8, false), true, |b| back.push(b)),
            Step::Frame
        );
        assert_eq!(back, [5, 6, 7]);
    }

    const G2: Geom = Geom {
        stride: 2048,
        count: 32,
        unaligned: true,
    };

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
            sg in any::<bool>(),
            lend in proptest::collection::vec(0u32..64, 0..64),
        ) {
            let g = Geom { stride, count, unaligned };
            let mut lent = Lent::new(count);
            for b in lend { lent.lend(b); }
            let before = lent.count();
            if let Ok(f) = g.rx(&mut lent, addr, len, options, sg) {
                prop_assert!(f.buf < count);
                prop_assert!(u64::from(f.off) + u64::from(f.len) <= u64::from(stride));
                prop_assert_eq!(lent.count(), before - 1);
            } else {
                prop_assert_eq!(lent.count(), before);
            }
        }
    }
}
