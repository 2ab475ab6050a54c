//! Received buffers: [`RxBuf`] borrows a piece of the area (zcrx) or a provided
//! buffer (copy mode) and gives it back when dropped. Reading is only possible
//! through a live `RxBuf`, and dropping it is the only way to give the memory
//! back, so the kernel can never be refilling memory the application still reads.
//!
//! A zcrx return goes into the receiver's local batch ([`ZcHome`]); the receiver
//! moves the batch to the shared refill ring once per poll (one lock per batch,
//! none per buffer). A buffer dropped after its receiver is gone goes to the
//! refill ring directly, so other rings sharing the queue get it back.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use super::bufring::BufRing;
use super::shared::Shared;
use crate::sys::zcrx::Rqe;

/// One received piece of a TCP stream, in order within its connection.
///
/// Dereferences to the bytes. Not `Send`: it goes back to the receiver's thread's
/// batch when dropped.
pub struct RxBuf {
    ptr: *const u8,
    len: u32,
    home: Home,
}

enum Home {
    Zc { home: Rc<ZcHome>, off: u64 },
    Copy { ring: Rc<BufRing>, bid: u16 },
}

impl std::fmt::Debug for RxBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxBuf").field("len", &self.len).finish()
    }
}

impl RxBuf {
    /// A zcrx buffer: `len` bytes at area offset `off` (area bits cleared).
    pub(crate) fn zc(home: &Rc<ZcHome>, off: u64, len: u32) -> Option<RxBuf> {
        let ptr = home.shared.area_ptr(off, len)?;
        home.out.set(home.out.get() + 1);
        Some(RxBuf {
            ptr,
            len,
            home: Home::Zc {
                home: home.clone(),
                off,
            },
        })
    }

    /// A copy-mode buffer.
    pub(crate) fn copy(ring: &Rc<BufRing>, bid: u16, len: u32) -> Option<RxBuf> {
        let ptr = ring.take(bid, len)?;
        Some(RxBuf {
            ptr,
            len,
            home: Home::Copy {
                ring: ring.clone(),
                bid,
            },
        })
    }
}

impl std::ops::Deref for RxBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: ptr/len were checked to lie inside the area (or buffer) when the
        // RxBuf was made; the memory stays mapped while `home` holds its Rc/Arc,
        // and the kernel does not write this buffer until it is given back, which
        // happens only in Drop.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len as usize) }
    }
}

impl Drop for RxBuf {
    fn drop(&mut self) {
        match &self.home {
            Home::Zc { home, off } => home.give_back(Rqe {
                off: *off | home.shared.token,
                len: self.len,
                pad: 0,
            }),
            Home::Copy { ring, bid } => ring.give(*bid),
        }
    }
}

/// A receiver's side of zcrx buffer returns: the local batch and counters.
pub(crate) struct ZcHome {
    pub(crate) shared: Arc<Shared>,
    /// Returned, not yet in the refill ring. Capacity: every buffer of the area.
    pending: RefCell<Vec<Rqe>>,
    /// The receiver still polls (and flushes the batch).
    pub(crate) polled: Cell<bool>,
    /// Buffers handed out and not yet dropped.
    pub(crate) out: Cell<u64>,
    /// Buffers given back (dropped).
    pub(crate) returned: Cell<u64>,
}

impl ZcHome {
    pub(crate) fn new(shared: Arc<Shared>) -> ZcHome {
        let cap = shared.buffers();
        ZcHome {
            shared,
            pending: RefCell::new(Vec::with_capacity(cap)),
            polled: Cell::new(true),
            out: Cell::new(0),
            returned: Cell::new(0),
        }
    }

    fn give_back(&self, r: Rqe) {
        self.out.set(self.out.get() - 1);
        self.returned.set(self.returned.get() + 1);
        self.pending.borrow_mut().push(r);
        if !self.polled.get() {
            self.flush();
        }
    }

    /// Moves the batch to the refill ring; returns the entries moved.
    pub(crate) fn flush(&self) -> usize {
        let mut p = self.pending.borrow_mut();
        if p.is_empty() {
            return 0;
        }
        let n = p.len();
        self.shared.refill(&p);
        p.clear();
        n
    }
}

impl Drop for ZcHome {
    fn drop(&mut self) {
        self.flush();
    }
}
