//! One queue of an xdp port: what the device and the queue's engines share
//! (any thread: the interface queue, the XSKMAP, the counters, the socket for
//! statistics), and the binding the engines share on their one thread.
//!
//! The first engine of a queue binds a socket (`xsk.rs`) with its pool as the
//! UMEM: the rx engine with the pool it is given; a tx engine opened alone
//! (a port that only sends) with a small pool of its own. The other engine of
//! the queue joins that binding, on the same thread. When both are gone the
//! socket closes, and the next engine binds afresh.

use std::cell::RefCell;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::rc::{Rc, Weak};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use super::counters::XdpCounters;
use super::xsk::{BindReq, Xsk};
use crate::error::{Error, Result};
use crate::pool::{Pool, PoolConfig};
use crate::sys::{bpf, xdp as sys};

/// What the device and the engines of one queue share.
pub(crate) struct XdpQueue {
    pub ifindex: u32,
    /// The interface queue this port queue binds to.
    pub iface_queue: u32,
    /// The XSKMAP the socket goes into; `None` with no program (tx only).
    pub map: Option<Arc<OwnedFd>>,
    pub counters: Arc<XdpCounters>,
    slot: Mutex<Slot>,
}

/// Who is bound now.
#[derive(Default)]
struct Slot {
    thread: Option<ThreadId>,
    sock: std::sync::Weak<OwnedFd>,
    /// Why it copies, if zero-copy was refused.
    copy_reason: Option<String>,
}

thread_local! {
    /// This thread's bindings, by queue (the address of its shared state).
    static BOUND: RefCell<Vec<(usize, Weak<RefCell<Xsk>>)>> = const { RefCell::new(Vec::new()) };
}

impl XdpQueue {
    pub(crate) fn new(ifindex: u32, iface_queue: u32, map: Option<Arc<OwnedFd>>) -> XdpQueue {
        XdpQueue {
            ifindex,
            iface_queue,
            map,
            counters: Arc::new(XdpCounters::default()),
            slot: Mutex::new(Slot::default()),
        }
    }

    fn key(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The queue's binding on this thread: the one its other engine made, or a
    /// new one over `pool` (the rx pool), or, for a tx engine alone
    /// (`pool` None), over a small pool of its own.
    pub(crate) fn bind(
        self: &Arc<Self>,
        pool: Option<&Pool>,
        req: BindReq,
    ) -> Result<Rc<RefCell<Xsk>>> {
        let key = self.key();
        let live = BOUND.with(|b| {
            let mut b = b.borrow_mut();
            b.retain(|(_, w)| w.strong_count() > 0);
            b.iter()
                .find(|(k, _)| *k == key)
                .and_then(|(_, w)| w.upgrade())
        });
        if let Some(x) = live {
            if let Some(p) = pool {
                if !x.borrow().pool.same_as(p) {
                    return Err(Error::InvalidConfig {
                        field: "pool",
                        why: "this xdp queue is bound with another pool as its UMEM (its tx queue was opened first, with a pool of its own): open the rx queue first, or drop the tx queue".into(),
                    });
                }
            }
            return Ok(x);
        }
        {
            let slot = self.slot();
            if slot.sock.strong_count() > 0 && slot.thread != Some(std::thread::current().id()) {
                return Err(Error::InvalidConfig {
                    field: "queue",
                    why: "this xdp queue's other direction runs on another thread: an xdp queue's rx and tx share a UMEM and run on one thread".into(),
                });
            }
        }
        let own;
        let pool = match pool {
            Some(p) => p,
            None => {
                let size = req.frame.unwrap_or(2048);
                own = Pool::new(PoolConfig::default().count(2 * req.ring).buf_size(size))?;
                &own
            }
        };
        let x = Xsk::bind(pool, req, self.counters.clone())?;
        if let (Some(map), Some(fd)) = (&self.map, x.fd()) {
            bpf::map_update_u32(map.as_fd(), self.iface_queue, fd.as_raw_fd() as u32).map_err(
                |e| {
                    Error::sys_or(
                        "put the socket into the XSKMAP",
                        super::errors::BPF_PERMISSION,
                        e,
                    )
                },
            )?;
        }
        self.counters.zerocopy.store(u64::from(x.zerocopy), Relaxed);
        self.counters.tx_meta.store(u64::from(x.tx_meta), Relaxed);
        self.counters
            .tx_budget
            .store(u64::from(x.tx_budget), Relaxed);
        {
            let mut slot = self.slot();
            slot.thread = Some(std::thread::current().id());
            slot.sock = x.shared_fd();
            slot.copy_reason = x.copy_reason.clone();
        }
        if let Some(why) = &x.copy_reason {
            tracing::info!(queue = self.iface_queue, "xdp: {why}");
        }
        let x = Rc::new(RefCell::new(x));
        BOUND.with(|b| b.borrow_mut().push((key, Rc::downgrade(&x))));
        Ok(x)
    }

    /// The statistics since the port opened: closed sockets' and the live one's.
    pub(crate) fn statistics(&self) -> sys::Statistics {
        let live = self
            .slot()
            .sock
            .upgrade()
            .and_then(|fd| sys::statistics(fd.as_fd()).ok());
        self.counters.statistics(live)
    }
}
