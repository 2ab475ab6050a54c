//! The counters of one xdp queue beyond the common ones, shared by its engines
//! (which write them, one writer each), its socket (whose statistics are
//! folded in when it closes) and the device (which reads them).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::sys::xdp as sys;

/// Counters a queue's engines keep besides the common ones; single writer
/// each (the engine, or the control thread folding in closed sockets').
#[derive(Debug, Default)]
pub(crate) struct XdpCounters {
    /// Rx and completion descriptors refused (outside the UMEM, naming a
    /// buffer not lent, malformed), and rings whose index claimed too much.
    pub bad_descs: AtomicU64,
    /// Zero-length receives made to wake a zero-copy driver's rx.
    pub rx_wakeups: AtomicU64,
    /// Tx packets too large for a chunk, refused before the ring.
    pub oversized: AtomicU64,
    /// Tx packets of another pool copied into the UMEM.
    pub tx_copied: AtomicU64,
    /// Tx packets dropped for lack of a UMEM buffer to copy them into.
    pub tx_nombuf: AtomicU64,
    /// Tx checksums the kernel finished, asked for through tx metadata.
    pub csum_kernel: AtomicU64,
    /// Tx checksums rtap finished (no tx metadata on this kernel or pool, or
    /// zero-copy mode, where the driver may not honour it).
    pub csum_sw: AtomicU64,
    /// Tx packets dropped because their checksum or segmentation request did
    /// not fit the frame or the port.
    pub csum_refused: AtomicU64,
    /// The UMEM reserves tx metadata room (0 or 1), as of the last bind.
    pub tx_meta: AtomicU64,
    /// Bound in zero-copy mode (0 or 1) the last time it bound.
    pub zerocopy: AtomicU64,
    /// Frames one tx kick sends at most, as of the last bind (32 before Linux
    /// 6.17, the tx ring's size after; unlimited in zero-copy mode).
    pub tx_budget: AtomicU64,
    /// `XDP_STATISTICS` of sockets already closed.
    closed: [AtomicU64; 6],
}

impl XdpCounters {
    /// Adds a closing socket's last statistics.
    pub(crate) fn fold_closed(&self, fd: &OwnedFd) {
        if let Ok(l) = sys::statistics(fd.as_fd()) {
            for (c, v) in self.closed.iter().zip(fields(&l)) {
                c.fetch_add(v, Relaxed);
            }
        }
    }

    /// The closed sockets' statistics plus `live`, the bound socket's.
    pub(crate) fn statistics(&self, live: Option<sys::Statistics>) -> sys::Statistics {
        let l = live.map(|l| fields(&l)).unwrap_or_default();
        let v: Vec<u64> = self
            .closed
            .iter()
            .zip(l)
            .map(|(c, l)| c.load(Relaxed) + l)
            .collect();
        sys::Statistics {
            rx_dropped: v[0],
            rx_invalid_descs: v[1],
            tx_invalid_descs: v[2],
            rx_ring_full: v[3],
            rx_fill_ring_empty_descs: v[4],
            tx_ring_empty_descs: v[5],
        }
    }
}

fn fields(s: &sys::Statistics) -> [u64; 6] {
    [
        s.rx_dropped,
        s.rx_invalid_descs,
        s.tx_invalid_descs,
        s.rx_ring_full,
        s.rx_fill_ring_empty_descs,
        s.tx_ring_empty_descs,
    ]
}

/// Adds `n` to a counter its one writer owns.
pub(crate) fn add(c: &AtomicU64, n: u64) {
    crate::backend::kick::add(c, n)
}
