//! What a queue's driver thread and its async handles share: two bounded
//! lock-free queues of packets (received, to send), the tasks waiting on
//! them, and the doorbell that wakes a sleeping driver.
//!
//! Nothing here allocates or locks per packet: packets move through
//! `crossbeam_queue::ArrayQueue`s; a task that finds nothing to receive (or
//! no room to send) registers its waker in a list that is locked only on that
//! slow path and only when someone waits; the driver rings no doorbell and
//! wakes no task unless one sleeps. Lost wakeups are ruled out the usual way:
//! whoever goes to sleep announces it (SeqCst) and looks once more; whoever
//! makes progress publishes it and then looks for sleepers (SeqCst fences on
//! both sides).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};

use crossbeam_queue::ArrayQueue;

use crate::error::{Error, Result};
use crate::pool::Packet;
use crate::sys::fd as sysfd;

/// Tasks waiting for one condition.
#[derive(Debug, Default)]
pub(crate) struct WaitList {
    waiting: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

impl WaitList {
    /// Registers the task of `cx`; the caller then checks its condition again.
    pub(crate) fn register(&self, cx: &Context<'_>) {
        let mut w = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
        if !w.iter().any(|x| x.will_wake(cx.waker())) {
            w.push(cx.waker().clone());
        }
        self.waiting.store(true, SeqCst);
        drop(w);
        fence(SeqCst);
    }

    /// Wakes every waiting task (after the caller published its progress).
    pub(crate) fn wake_all(&self) {
        fence(SeqCst);
        if !self.waiting.load(Relaxed) {
            return;
        }
        let wakers = {
            let mut w = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
            self.waiting.store(false, Relaxed);
            std::mem::take(&mut *w)
        };
        for w in wakers {
            w.wake();
        }
    }
}

/// A waker that wakes every task of some [`WaitList`]s: what a task-driven
/// queue leaves with the reactor when the kernel has nothing yet, so the next
/// readiness wakes whichever tasks wait then, not one that may be gone.
#[cfg(feature = "tokio")]
pub(crate) struct WakeAll(pub Vec<Arc<WaitList>>);

#[cfg(feature = "tokio")]
impl std::task::Wake for WakeAll {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        for w in &self.0 {
            w.wake_all();
        }
    }
}

/// Counters of the handoff, for [`MtStats`](super::MtStats).
#[derive(Debug, Default)]
pub(crate) struct ChanCounters {
    /// Times the driver went to sleep.
    pub sleeps: AtomicU64,
    /// Doorbells rung (an eventfd write: a task woke the sleeping driver).
    pub doorbells: AtomicU64,
    /// Rx bursts handed to the tasks (one wake each at most).
    pub rx_bursts: AtomicU64,
    /// Rounds the driver left packets in the kernel because the tasks had not
    /// taken the ones before (the received queue was full).
    pub rx_backpressure: AtomicU64,
}

/// State shared by a queue's driver (or, task-driven, its I/O) and its
/// handles.
#[derive(Debug)]
pub(crate) struct Chan {
    /// Received packets, oldest first.
    pub rx: ArrayQueue<Packet>,
    /// Packets to send, oldest first.
    pub tx: ArrayQueue<Packet>,
    /// Tasks waiting for a received packet.
    pub rx_wait: Arc<WaitList>,
    /// Tasks waiting for room to send, or for the tx queue to drain.
    pub tx_wait: Arc<WaitList>,
    /// The driver sleeps (or is about to): ring the doorbell to wake it.
    pub sleeping: AtomicBool,
    /// The received queue was full: the driver waits for a task to take some.
    pub rx_full: AtomicBool,
    /// The driver has stopped (or is stopping): handles fail from now on.
    pub closed: AtomicBool,
    /// Senders between their look at `closed` and the end of their push
    /// ([`Chan::send_begin`]): the driver's last drain waits for them.
    senders: AtomicUsize,
    /// The driver's burst (a task wakes a driver that stopped reading only
    /// once a whole burst fits again).
    pub burst: usize,
    /// Why the driver stopped, if it failed.
    pub failure: Mutex<Option<Error>>,
    doorbell: OwnedFd,
    pub counters: ChanCounters,
}

impl Chan {
    /// A handoff of `depth` packets each way; `waits` are the rx and tx wait
    /// lists (made first when a task-driven queue needs them for its wakers).
    pub(crate) fn new(
        depth: usize,
        burst: usize,
        waits: (Arc<WaitList>, Arc<WaitList>),
    ) -> Result<Chan> {
        Ok(Chan {
            senders: AtomicUsize::new(0),
            burst,
            rx: ArrayQueue::new(depth),
            tx: ArrayQueue::new(depth),
            rx_wait: waits.0,
            tx_wait: waits.1,
            sleeping: AtomicBool::new(false),
            rx_full: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            failure: Mutex::new(None),
            doorbell: sysfd::eventfd().map_err(|e| Error::sys("eventfd", e))?,
            counters: ChanCounters::default(),
        })
    }

    /// The doorbell's fd, for the driver's poll.
    pub(crate) fn doorbell(&self) -> std::os::fd::BorrowedFd<'_> {
        self.doorbell.as_fd()
    }

    /// Wakes the driver if it sleeps (never true of a task-driven queue).
    pub(crate) fn wake_driver(&self) {
        fence(SeqCst);
        if self.sleeping.load(Relaxed) && self.sleeping.swap(false, Relaxed) {
            self.counters.doorbells.fetch_add(1, Relaxed);
            let _ = sysfd::write(self.doorbell.as_fd(), &1u64.to_ne_bytes());
        }
    }

    /// A sender is about to push: `false` (and nothing to undo) if the queue
    /// is closed. Else the driver's last drain waits until
    /// [`send_end`](Self::send_end), so a push that saw the queue open is
    /// never left behind.
    pub(crate) fn send_begin(&self) -> bool {
        self.senders.fetch_add(1, SeqCst);
        if self.closed.load(SeqCst) {
            self.senders.fetch_sub(1, Release);
            return false;
        }
        true
    }

    /// The sender's push is done.
    pub(crate) fn send_end(&self) {
        self.senders.fetch_sub(1, Release);
    }

    /// The driver, after closing: waits for senders already past their look.
    pub(crate) fn wait_senders(&self) {
        while self.senders.load(SeqCst) != 0 {
            std::thread::yield_now();
        }
    }

    /// Whether the received queue has room for a whole burst (the reader
    /// reads only then, so it never reads what it could not hand over).
    pub(crate) fn rx_room(&self) -> bool {
        self.rx.len() + self.burst <= self.rx.capacity()
    }

    /// The reader hands over what it read (at most a burst, after
    /// [`rx_room`](Self::rx_room) said yes; only one reader at a time).
    pub(crate) fn push_rx(&self, got: &mut Vec<Packet>) {
        for p in got.drain(..) {
            let r = self.rx.push(p);
            debug_assert!(r.is_ok(), "room for a burst was checked");
        }
    }

    /// The sender tops `pending` up to a burst from the send queue; `true`
    /// if it took any (senders waiting for room may look again).
    pub(crate) fn take_tx(&self, pending: &mut Vec<Packet>) -> bool {
        let mut took = false;
        while pending.len() < self.burst {
            match self.tx.pop() {
                Some(p) => {
                    pending.push(p);
                    took = true;
                }
                None => break,
            }
        }
        took
    }

    /// After a task took a received packet: wakes a driver that stopped
    /// reading because the queue was full, once a whole burst fits again.
    pub(crate) fn took_rx(&self) {
        fence(SeqCst);
        if self.rx_full.load(Relaxed) && self.rx_room() {
            self.wake_driver();
        }
    }

    /// Tells whoever waits that the driver stopped.
    pub(crate) fn close(&self, why: Option<Error>) {
        if let Some(e) = why {
            let mut f = self.failure.lock().unwrap_or_else(|e| e.into_inner());
            // The first reason stays.
            if f.is_none() {
                *f = Some(e);
            }
        }
        self.closed.store(true, SeqCst);
        self.rx_wait.wake_all();
        self.tx_wait.wake_all();
        self.wake_driver();
    }

    /// The error a handle returns once the driver stopped.
    pub(crate) fn closed_error(&self) -> Error {
        match &*self.failure.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => Error::QueueStopped { why: e.to_string() },
            None => Error::QueueStopped {
                why: "the queue was stopped".into(),
            },
        }
    }
}
