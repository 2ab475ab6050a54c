//! The rx path of an xdp queue: frames the kernel put in lent pool buffers
//! become packets as they are (no copy: the UMEM is the pool); each
//! descriptor is checked first (`desc.rs`), and the fill ring is topped up
//! with fresh buffers every burst. On a multi-buffer socket a frame's pieces
//! (consecutive descriptors, all but the last with `XDP_PKT_CONTD`) become
//! one chained packet. The kernel publishes whole frames, so a frame whose
//! end is missing from a fresh look at the ring is corrupt: dropped, counted,
//! and the rest of it skipped as it comes.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::counters::add;
use super::desc::{Gather, Step, MAX_FRAGS};
use super::queue::XdpQueue;
use super::xsk::Xsk;
use crate::pool::Packet;
use crate::queue::engine::RxEngine;
use crate::stats::QueueCounters;
use crate::sys::{fd as sysfd, xdp as sys};

/// Rx engine of one xdp queue.
pub(crate) struct XskRx {
    /// The socket (dropped before the binding: see `Xsk::socket`).
    sock: Arc<OwnedFd>,
    xsk: Rc<RefCell<Xsk>>,
    q: Arc<XdpQueue>,
    /// Most buffers lent to the fill ring at once.
    limit: usize,
    need_wakeup: bool,
    /// The socket said its interface is gone.
    vanished: bool,
    /// Descriptors being gathered into frames.
    gather: Gather,
}

impl XskRx {
    pub(crate) fn new(
        sock: Arc<OwnedFd>,
        xsk: Rc<RefCell<Xsk>>,
        q: Arc<XdpQueue>,
        limit: usize,
        need_wakeup: bool,
    ) -> XskRx {
        let mut rx = XskRx {
            sock,
            xsk,
            q,
            limit,
            need_wakeup,
            vanished: false,
            gather: Gather::new(),
        };
        rx.refill();
        rx
    }

    /// Tops the fill ring up, and wakes a zero-copy driver if it asks.
    fn refill(&mut self) {
        let mut x = self.xsk.borrow_mut();
        x.refill(self.limit);
        if self.need_wakeup && x.fill.needs_wakeup() {
            let _ = sys::wake_rx(self.sock.as_fd());
            add(&self.q.counters.rx_wakeups, 1);
        }
    }
}

impl RxEngine for XskRx {
    fn rx_burst(
        &mut self,
        _fd: BorrowedFd<'_>,
        out: &mut Vec<Packet>,
        max: usize,
        ctr: &QueueCounters,
    ) -> Result<usize, i32> {
        let (mut pkts, mut bytes, mut bad) = (0u64, 0u64, 0u64);
        {
            let mut guard = self.xsk.borrow_mut();
            let x = &mut *guard;
            let g = &mut self.gather;
            let avail = if x.sg {
                x.rx.ready_fresh(u32::MAX)
            } else {
                x.rx.ready(u32::MAX)
            };
            // Descriptors used up: up to the end of the last frame taken or
            // dropped (an incomplete frame's are read again next time).
            let mut done = 0;
            let mut parts = [(0u32, 0u32, 0u32); MAX_FRAGS];
            for i in 0..avail {
                if g.pending() == 0 && pkts as usize >= max {
                    break;
                }
                let d = x.rx.read(i);
                let pool = &x.pool.inner;
                let step = g.push(
                    &x.geom,
                    &mut x.fill_lent,
                    (d.addr, d.len, d.options),
                    x.sg,
                    |b| pool.put(b),
                );
                match step {
                    Step::Pending => continue,
                    Step::Frame => {
                        let f = g.frame();
                        for (p, f) in parts.iter_mut().zip(f) {
                            *p = (f.buf, f.off, f.len);
                        }
                        let p = Packet::from_pieces(pool, &parts[..f.len()]);
                        g.clear();
                        bytes += p.len() as u64;
                        pkts += 1;
                        out.push(p);
                    }
                    Step::Dropped => bad += 1,
                }
                done = i + 1;
            }
            if g.pending() > 0 {
                // The loop stops early only between frames: this one's end is
                // not in a fresh view of the ring, which the kernel never
                // publishes. Dropped, its descriptors used up.
                let pool = &x.pool.inner;
                bad += g.abandon(|b| pool.put(b)) as u64;
                done = avail;
            }
            x.rx.release(done);
            bad += std::mem::take(&mut x.rx.corrupt);
        }
        self.refill();
        if bad > 0 {
            add(&self.q.counters.bad_descs, bad);
        }
        ctr.add(pkts, bytes, bad, 0);
        Ok(pkts as usize)
    }

    fn held(&self) -> usize {
        self.xsk.borrow().fill_lent.count()
    }

    fn wait(&mut self, _fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
        sysfd::poll_in(self.sock.as_fd(), timeout)
    }

    /// The socket is readable while its rx ring holds frames.
    fn ready_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.sock.as_fd())
    }

    /// The kernel unbinds the socket when its interface goes and leaves
    /// `ENETDOWN` pending on it (which `poll` does not report for an XDP
    /// socket): taken once, remembered.
    fn gone(&mut self, _fd: BorrowedFd<'_>) -> bool {
        if !self.vanished {
            self.vanished = matches!(
                sysfd::take_error(self.sock.as_fd()),
                Some(libc::ENETDOWN) | Some(libc::ENODEV) | Some(libc::ENXIO)
            );
        }
        self.vanished
    }
}
