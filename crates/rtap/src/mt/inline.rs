//! Task-driven queues ([`MtDrive::Tasks`](super::MtDrive::Tasks)): no
//! driver thread. The task that finds nothing received reads a burst from
//! the kernel itself, on the thread it runs on; the task that hands over a
//! packet to send writes what waits, unless another thread is at it. The
//! receive side (the rx queue and its pool) and the send side (the tx queue)
//! are two [`Roaming`] values: one thread at a time holds each, inside one
//! poll, never across an `.await`; so a task reading never waits for one
//! writing (whose write may carry the kernel's whole receive path of what
//! it writes) and the other way round.
//!
//! The reading task looks at tokio's (edge-triggered) readiness of the
//! queue's fd before it reads, and forgets it once a read says `EAGAIN`, so
//! no read is made that the kernel has nothing for. When the kernel has
//! nothing, the task leaves a waker with the reactor that wakes every task
//! waiting to receive, whichever that is by then; so a cancelled task cannot
//! strand the others. A device deleted while tasks wait is noticed at their
//! next look (as with [`AsyncRxQueue`](crate::async_tokio::AsyncRxQueue)):
//! the kernel reports it as an error on the fd, not as readable. TAP and TUN
//! queues use `read`/`write` here and AF_PACKET tx rings the `send()` kick
//! (an io_uring ring is best driven by one thread; see
//! [`Port::roaming_queues`](crate::Port)).

use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering::*};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::chan::{Chan, WaitList, WakeAll};
use super::config::MtConfig;
use super::end::{wind_down, MtReport};
use crate::async_tokio::{watch_for, Watch};
use crate::error::{Error, Result};
use crate::pool::roaming::{RoamGuard, Roaming};
use crate::pool::{Packet, Pool};
use crate::port::Port;
use crate::queue::{RxQueue, TxQueue};

/// Reads (or readiness looks) one pump makes before it lets the task look
/// again later: readiness that keeps coming back with nothing to read must
/// not hold a worker.
const TRIES: usize = 4;

/// What the reading task drives: the rx queue, its pool, and a burst on its
/// way in. The queue is `None` once the queue pair stopped.
struct RxIo {
    rxq: Option<RxQueue>,
    pool: Pool,
    got: Vec<Packet>,
}

/// What the sending task drives: the tx queue and the packets the kernel has
/// not accepted yet. The queue is `None` once the queue pair stopped.
struct TxIo {
    txq: Option<TxQueue>,
    pending: Vec<Packet>,
}

/// A queue pair the async tasks drive themselves.
pub(crate) struct Inline {
    rx: Roaming<RxIo>,
    tx: Roaming<TxIo>,
    /// The queue's fd, watched by the reactor for both directions.
    fd: AsyncFd<Watch>,
    /// The tx queue's own fd, where room to send is signalled on another fd
    /// than the queue's (an AF_PACKET tx ring's socket).
    tx_fd: Option<AsyncFd<Watch>>,
    /// Left with the reactor for the fd's read readiness: wakes every task
    /// waiting to receive.
    rx_waker: Waker,
    /// For its write readiness (room to write, or the device gone, which
    /// tokio files under "write closed"): wakes every task waiting to send
    /// and every task waiting to receive.
    tx_waker: Waker,
    burst: usize,
    /// Packets taken to send that the kernel has not accepted yet.
    pending: AtomicUsize,
    /// A task wanted to read while another thread held the rx side: whoever
    /// lets it go next wakes the waiting readers.
    rx_missed: AtomicBool,
}

impl std::fmt::Debug for Inline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inline")
            .field("rx_busy", &self.rx.busy())
            .field("tx_busy", &self.tx.busy())
            .field("pending", &self.pending.load(Relaxed))
            .finish()
    }
}

impl Inline {
    /// Opens queue pair `id` of `port` for the tasks, with a pool of its own,
    /// watched by the current tokio runtime.
    #[allow(unsafe_code)]
    pub(crate) fn open(
        port: &Port,
        id: u16,
        cfg: &MtConfig,
        waits: &(Arc<WaitList>, Arc<WaitList>),
    ) -> Result<Inline> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::NoAsyncRuntime);
        }
        let pool = Pool::new(cfg.pool)?;
        let (rxq, txq) = port.roaming_queues(id, &pool)?;
        let fd = {
            let q = rxq.interrupt_fd().ok_or(Error::Unsupported {
                feature: "task-driven queues without a readiness fd",
                hint: "use MtDrive::Thread",
            })?;
            watch_for(q, Interest::READABLE | Interest::WRITABLE)?
        };
        let tx_fd = match txq.writable_fd() {
            Some(w) => Some(watch_for(w, Interest::WRITABLE)?),
            None => None,
        };
        let rx = RxIo {
            rxq: Some(rxq),
            pool: pool.clone(),
            got: Vec::with_capacity(cfg.burst),
        };
        let tx = TxIo {
            txq: Some(txq),
            pending: Vec::with_capacity(cfg.burst),
        };
        // SAFETY: the pool was made here for this queue pair and its handle
        // is dropped below, so the rx queue's handles inside `rx` are the
        // only ones; the queues were opened roaming (read/write engines or
        // AF_PACKET rings: no io_uring ring tied to its issuer, no
        // thread-local state), and the rest of `rx` is a vector of packets.
        let rx = unsafe { Roaming::new(&pool, rx) };
        // SAFETY: a roaming tx queue holds no pool handle and nothing tied to
        // a thread (a read/write engine is buffers and the fd; an AF_PACKET
        // one its ring in shared memory, behind an Arc, and the send() kick);
        // the packets in `pending` may be dropped on any thread.
        let tx = unsafe { Roaming::apart(tx) };
        drop(pool);
        Ok(Inline {
            rx,
            tx,
            fd,
            tx_fd,
            rx_waker: Waker::from(Arc::new(WakeAll(vec![waits.0.clone()]))),
            tx_waker: Waker::from(Arc::new(WakeAll(vec![waits.1.clone(), waits.0.clone()]))),
            burst: cfg.burst,
            pending: AtomicUsize::new(0),
            rx_missed: AtomicBool::new(false),
        })
    }

    /// Reads a burst into the received queue on this thread, for a task
    /// that found it empty. `true`: the received queue (or `closed`) may
    /// have changed, look again. `false`: another thread is reading (it
    /// wakes the waiting tasks), or the kernel had nothing (the reactor will
    /// wake them; if readiness kept coming back empty, the task of `cx` is
    /// woken to look again); the caller registers and waits.
    pub(crate) fn pump_rx(&self, chan: &Chan, cx: &Context<'_>) -> bool {
        let mut g = match self.rx.enter() {
            Some(g) => g,
            None => {
                // Announce, then look once more: either this look finds the
                // rx side free or its holder sees the announcement after
                // letting go (`release_rx`) and wakes the readers.
                self.rx_missed.store(true, Relaxed);
                fence(SeqCst);
                match self.rx.enter() {
                    Some(g) => g,
                    None => return false,
                }
            }
        };
        // This thread reads now: it wakes the readers if it gets packets, or
        // leaves the reactor to, so an earlier announcement is served.
        self.rx_missed.store(false, Relaxed);
        let got = self.read_some(chan, cx, &mut g);
        self.release_rx(chan, g);
        let got = match got {
            Ok(got) => got,
            Err(e) => {
                chan.close(Some(e));
                return true;
            }
        };
        if got {
            chan.counters.rx_bursts.fetch_add(1, Relaxed);
            chan.rx_wait.wake_all();
        }
        // Packets left waiting to send (the kernel refused them last time,
        // and no sender came since): one more try on the reader's way out,
        // after the readers were told.
        if !self.drained(chan) {
            self.pump_tx(chan);
        }
        got
    }

    /// Lets the rx side go; wakes the readers if one wanted it meanwhile.
    fn release_rx(&self, chan: &Chan, g: RoamGuard<'_, RxIo>) {
        drop(g);
        // Pairs with the fence in `pump_rx`'s announcement.
        fence(SeqCst);
        if self.rx_missed.load(Relaxed) && self.rx_missed.swap(false, Relaxed) {
            chan.rx_wait.wake_all();
        }
    }

    /// The read of [`pump_rx`](Self::pump_rx), holding the rx side: `true`
    /// if packets were pushed to the received queue.
    fn read_some(&self, chan: &Chan, cx: &Context<'_>, io: &mut RxIo) -> Result<bool> {
        let Some(rxq) = io.rxq.as_mut() else {
            return Ok(false);
        };
        if !chan.rx_room() {
            // The tasks have a full queue to take first (counted once per
            // time it fills, as the driver counts it).
            if !chan.rx_full.swap(true, Relaxed) {
                chan.counters.rx_backpressure.fetch_add(1, Relaxed);
            }
            return Ok(false);
        }
        chan.rx_full.store(false, Relaxed);
        for _ in 0..TRIES {
            // Readiness first (tokio's edge-triggered view of the fd): no
            // read while the fd has had nothing since the last drain.
            let mut wcx = Context::from_waker(&self.rx_waker);
            let mut ready = match self.fd.poll_read_ready(&mut wcx) {
                Poll::Ready(Ok(r)) => r,
                Poll::Ready(Err(e)) => return Err(Error::sys("tokio reactor", e)),
                Poll::Pending => {
                    // A deleted TAP/TUN reports only an error (EPOLLERR),
                    // which tokio files under "write closed", not readable.
                    let mut tcx = Context::from_waker(&self.tx_waker);
                    if let Poll::Ready(Ok(w)) = self.fd.poll_write_ready(&mut tcx) {
                        if w.ready().is_write_closed() {
                            rxq.check_vanished()?;
                        }
                    }
                    chan.counters.sleeps.fetch_add(1, Relaxed);
                    return Ok(false);
                }
            };
            let n = rxq.rx_burst(&mut io.got, self.burst)?;
            if rxq.drained() {
                // Read to EAGAIN: forget the readiness (a newer event keeps
                // it), so the next look waits for the reactor.
                ready.clear_ready();
            }
            if n > 0 {
                // Room for a burst was checked and only the guard's holder
                // pushes.
                chan.push_rx(&mut io.got);
                return Ok(true);
            }
            // (Nothing read and not drained: a runt, or no free buffer, in
            // which case the read/write engine drops a frame, counted as
            // `nombuf`, so the kernel's queue moves on. Look again.)
        }
        cx.waker().wake_by_ref();
        Ok(false)
    }

    /// Sends what the tasks handed over, on this thread, unless another
    /// thread is sending (which then looks at the queue once more after it
    /// lets go, so nothing handed over is left behind unless the kernel
    /// refuses it: then the packets wait for the fd to be writable, or for
    /// the next send, flush or read, whichever comes first).
    pub(crate) fn pump_tx(&self, chan: &Chan) {
        // The caller's push before the look at the guard; pairs with the
        // holder's fence between letting go and its last look below.
        fence(SeqCst);
        loop {
            let Some(mut g) = self.tx.enter() else {
                return;
            };
            let r = self.send_some(chan, &mut g);
            drop(g);
            if let Err(e) = r {
                chan.close(Some(e));
                return;
            }
            // Pairs with the fence above: a sender whose push this look
            // misses finds the guard free.
            fence(SeqCst);
            if chan.tx.is_empty() || self.pending.load(Relaxed) > 0 {
                return;
            }
        }
    }

    /// Moves the send queue into the kernel, a burst at a time, until it is
    /// empty or the kernel takes no more (then the reactor wakes the tasks
    /// waiting to send when the fd is writable).
    fn send_some(&self, chan: &Chan, io: &mut TxIo) -> Result<()> {
        let Some(txq) = io.txq.as_mut() else {
            return Ok(());
        };
        let pending = &mut io.pending;
        for _ in 0..TRIES {
            let took = chan.take_tx(pending);
            let before = pending.len();
            if before > 0 {
                txq.tx_burst(pending)?;
            }
            self.pending.store(pending.len(), Relaxed);
            // Room in the handoff, or the kernel took some: senders waiting
            // for room, and flushes waiting for the queue to drain, look
            // again.
            if took || pending.len() < before {
                chan.tx_wait.wake_all();
            }
            if pending.is_empty() {
                if chan.tx.is_empty() {
                    return Ok(());
                }
                continue;
            }
            if pending.len() < before {
                continue;
            }
            // The kernel took nothing: wait for the fd to be writable.
            let mut wcx = Context::from_waker(&self.tx_waker);
            match self
                .tx_fd
                .as_ref()
                .unwrap_or(&self.fd)
                .poll_write_ready(&mut wcx)
            {
                Poll::Ready(Ok(mut r)) => r.clear_ready(),
                Poll::Ready(Err(e)) => return Err(Error::sys("tokio reactor", e)),
                Poll::Pending => return Ok(()),
            }
        }
        Ok(())
    }

    /// Packets taken to send that the kernel has not accepted yet.
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Relaxed)
    }

    /// Whether everything handed over has gone to the kernel.
    pub(crate) fn drained(&self, chan: &Chan) -> bool {
        chan.tx.is_empty() && self.pending.load(Relaxed) == 0
    }

    /// Stops: sends what waits (up to the stop's deadline), drops what no
    /// task took, closes the queues and reports the pool. The caller closed
    /// `chan` and waited for the senders.
    pub(crate) fn stop(&self, chan: &Chan, cfg_stop: std::time::Duration) -> MtReport {
        // A holder keeps a guard only inside one poll: wait for it.
        let mut rx = wait_for(&self.rx);
        let mut tx = wait_for(&self.tx);
        let (rx, tx) = (&mut *rx, &mut *tx);
        let (Some(rxq), Some(txq)) = (rx.rxq.take(), tx.txq.take()) else {
            return MtReport::default();
        };
        let report = wind_down(chan, rxq, txq, &mut tx.pending, &rx.pool, cfg_stop, true);
        self.pending.store(0, Relaxed);
        report
    }
}

/// Takes `r`'s guard, waiting for a holder to let go.
fn wait_for<T>(r: &Roaming<T>) -> RoamGuard<'_, T> {
    loop {
        if let Some(g) = r.enter() {
            return g;
        }
        std::thread::yield_now();
    }
}
