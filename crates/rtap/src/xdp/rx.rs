//! The rx path of an xdp queue: frames the kernel put in lent pool buffers
//! become packets as they are (no copy: the UMEM is the pool); each
//! descriptor is checked first (`desc.rs`), and the fill ring is topped up
//! with fresh buffers every burst.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::counters::add;
use super::queue::XdpQueue;
use super::xsk::Xsk;
use crate::pool::Packet;
use crate::queue::engine::RxEngine;
use crate::stats::QueueCounters;
use crate::sys::{fd as sysfd, xdp as sys};
use crate::wire::vnet::VnetHdr;

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
            let n = x.rx.ready(max.min(u32::MAX as usize) as u32);
            for i in 0..n {
                let d = x.rx.read(i);
                match x.geom.rx(&mut x.fill_lent, d.addr, d.len, d.options) {
                    Ok(f) => {
                        let p = Packet::from_filled(
                            &x.pool.inner,
                            &[f.buf],
                            f.off,
                            f.len as usize,
                            VnetHdr::default(),
                        );
                        bytes += u64::from(f.len);
                        pkts += 1;
                        out.push(p);
                    }
                    Err(_) => bad += 1,
                }
            }
            x.rx.release(n);
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
