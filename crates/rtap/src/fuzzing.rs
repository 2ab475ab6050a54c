//! Entry points for the fuzz targets in `fuzz/` (built only with
//! `--cfg fuzzing`, which `cargo fuzz` sets): the crate-private readers of
//! kernel-written memory and the transmit preparation, as the data path calls
//! them. Not part of the API.

use std::ops::Range;

use crate::afpacket::frame::{self, BlockCursor};
use crate::pool::Packet;
use crate::wire::layout::Link;
use crate::zcrx::cqe::{self, AreaGeom};

/// A frame a TPACKET header describes, as ranges into its slot or block.
#[derive(Debug)]
pub struct Frame {
    /// The frame's bytes.
    pub data: Range<usize>,
    /// The virtio-net header's bytes, if any.
    pub vnet: Option<Range<usize>>,
    /// Length on the wire.
    pub wire_len: usize,
}

fn conv(f: frame::FrameRef) -> Frame {
    Frame {
        data: f.data,
        vnet: f.vnet,
        wire_len: f.wire_len,
    }
}

/// The V2 rx path's reading of slot `slot` (status word `status`); `None`
/// where it counts the header corrupt.
pub fn tpacket_v2(slot: &[u8], status: u32, vnet_len: usize) -> Option<Frame> {
    frame::v2_frame(slot, status, vnet_len).ok().map(conv)
}

/// The V2 in-place receive's reading of slot `slot`: the frame it would lend
/// (VLAN tag put back), a partial checksum finished in `slot` where the
/// frame needs it; `None` where it would not lend one.
pub fn tpacket_v2_lend(slot: &mut [u8], status: u32, vnet_len: usize) -> Option<Vec<u8>> {
    crate::afpacket::rx::lend_v2(slot, status, vnet_len)
}

/// The V3 rx path's reading of block `block`, frame by frame (`None`: a
/// header counted corrupt, which ends the block), stopping after `max`.
pub fn tpacket_v3(block: &[u8], vnet_len: usize, max: usize) -> Vec<Option<Frame>> {
    let mut c = BlockCursor::open(block);
    std::iter::from_fn(|| c.next(block, vnet_len))
        .take(max)
        .map(|r| r.ok().map(conv))
        .collect()
}

/// The zcrx receiver's reading of a completion: (area offset, length).
pub fn zc_piece(
    word: u64,
    res: i32,
    token: u64,
    area_len: u64,
    buf_len: u32,
) -> Option<(u64, u32)> {
    cqe::zc_piece(
        word,
        res,
        AreaGeom {
            token,
            len: area_len,
            buf_len,
        },
    )
}

/// The copy-mode receiver's reading of a completion: (buffer id, length).
pub fn copy_piece(bid: Option<u16>, res: i32, count: u16, buf_size: u32) -> Option<(u16, u32)> {
    cqe::copy_piece(bid, res, count, buf_size)
}

/// Transmit preparation of a burst, as every tx queue runs it: returns how many
/// packets were refused (removed from `pkts`, back in their pool) and the
/// per-queue tx counters it bumped (`TX_*` order, the last the refusals).
/// `header`: the port's frames go with a virtio-net header (without one, the
/// port's engine splits segmentation requests, as a TAP's does).
pub fn prepare_burst(
    pkts: &mut Vec<Packet>,
    room: usize,
    csum_offload: bool,
    header: bool,
    ip: bool,
) -> (usize, Vec<u64>) {
    let mut local = [0u64; crate::xstats::TX_N];
    let link = if ip { Link::Ip } else { Link::Ethernet };
    // Segmentation goes to the kernel only with a header (as on every device).
    let caps = crate::queue::TxOffload {
        header,
        split: !header,
        gso: csum_offload && header,
        ..crate::queue::TxOffload::vnet(csum_offload)
    };
    let n = crate::queue::txprep::prepare_burst(pkts, room, caps, &mut local, link);
    (n, local.to_vec())
}

/// What the fd engine of a port without a virtio-net header writes for a
/// prepared packet it splits in software: each segment's header length and
/// payload range (of the packet's bytes); `None` if the engine refuses the
/// packet (dropped, counted as a tx error).
pub fn engine_segments(p: &Packet, ip: bool) -> Option<Vec<(usize, std::ops::Range<usize>)>> {
    use crate::backend::segment;
    let link = if ip { Link::Ip } else { Link::Ethernet };
    let mut sp = segment::split(p, link)?;
    let mut hdr = [0u8; segment::SEG_HDR];
    let mut v = Vec::new();
    while let Some(r) = sp.next_header(&mut hdr) {
        let s = r.ok()?;
        v.push((s.hdr_len, s.payload));
    }
    Some(v)
}

/// Index of the refused-packet counter in [`prepare_burst`]'s counters.
pub const TX_REJECTED: usize = crate::xstats::TX_REJECTED;

/// An XDP socket's rx and completion descriptors, as the xdp rx and tx paths
/// check them, against a UMEM of `stride`-byte chunks (`count` of them) with
/// `lent` buffers lent: `Some((buffer, offset, len))` for an accepted rx
/// frame, or the completion's buffer; each accepted buffer is taken back.
#[derive(Debug)]
pub struct XskLent {
    geom: crate::xdp::desc::Geom,
    lent: crate::xdp::desc::Lent,
}

impl XskLent {
    /// A UMEM and the buffers lent from it.
    pub fn new(stride: u32, count: u32, unaligned: bool, lend: &[u32]) -> XskLent {
        let mut lent = crate::xdp::desc::Lent::new(count);
        for &b in lend {
            lent.lend(b);
        }
        XskLent {
            geom: crate::xdp::desc::Geom {
                stride,
                count,
                unaligned,
            },
            lent,
        }
    }

    /// An rx descriptor (`sg`: of a multi-buffer socket, where
    /// `XDP_PKT_CONTD` is a piece with more to come).
    pub fn rx(&mut self, addr: u64, len: u32, options: u32, sg: bool) -> Option<(u32, u32, u32)> {
        let f = self.geom.rx(&mut self.lent, addr, len, options, sg).ok()?;
        Some((f.buf, f.off, f.len))
    }

    /// Rx descriptors of a multi-buffer socket gathered into frames, as the
    /// rx path does: the frames made (their pieces' buffers), and the buffers
    /// of dropped frames given back. Every buffer taken from the lent set
    /// ends up in exactly one of them or in the pending frame (`pending`).
    pub fn gather(&mut self, descs: &[(u64, u32, u32)]) -> (Vec<Vec<u32>>, Vec<u32>, usize) {
        use crate::xdp::desc::{Gather, Step};
        let mut g = Gather::new();
        let (mut frames, mut back) = (Vec::new(), Vec::new());
        for &d in descs {
            if g.push(&self.geom, &mut self.lent, d, true, |b| back.push(b)) == Step::Frame {
                frames.push(g.frame().iter().map(|f| f.buf).collect());
                g.clear();
            }
        }
        (frames, back, g.pending())
    }

    /// A completion address.
    pub fn completion(&mut self, addr: u64) -> Option<u32> {
        self.geom.completion(&mut self.lent, addr).ok()
    }

    /// Buffers still lent.
    pub fn lent(&self) -> usize {
        self.lent.count()
    }
}

/// Whether a ring laid out as the kernel says (offsets of its producer,
/// consumer, flags and entries) fits a mapping of `len` bytes.
pub fn xsk_ring_layout(
    producer: u64,
    consumer: u64,
    flags: u64,
    desc: u64,
    size: u32,
    entry: usize,
    len: usize,
) -> bool {
    let off = crate::sys::xdp::RingOffset {
        producer,
        consumer,
        desc,
        flags,
    };
    crate::xdp::ring::layout_ok(&off, size, entry, len)
}

/// Runs classic BPF program `p`, translated into rtap's XDP program, on a
/// copy of `frame` (14 bytes up to a page) in the kernel
/// (`BPF_PROG_TEST_RUN`): `Some(true)` if it kept the frame; `None` if the
/// translation is too long. Panics if the verifier refuses a translation
/// (a bug of the translation).
pub fn xdp_filter_keeps(p: &crate::capture::bpf::Program, frame: &[u8]) -> Option<bool> {
    use crate::xdp::filter::{translate, Keep};
    use std::os::fd::AsFd;
    const XDP_TX: i32 = 3;
    let insns = translate(p, Keep::Action(XDP_TX)).ok()?;
    let prog = match crate::sys::bpf::prog_load_xdp("rtap_filt_fuzz", &insns, false) {
        Ok(fd) => fd,
        Err((e, log)) => panic!("the verifier refuses the translation of\n{p}: {e}\n{log}"),
    };
    let r = crate::sys::bpf::prog_test_run(prog.as_fd(), frame).expect("BPF_PROG_TEST_RUN");
    Some(r == XDP_TX as u32)
}
