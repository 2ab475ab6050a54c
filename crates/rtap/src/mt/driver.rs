//! The thread that runs one queue pair for the async handles: it opens the
//! queues and their pool (so the io_uring rings keep their single issuer, and
//! the pool's thread is this one), moves bursts between the kernel and the
//! handoff queues, and sleeps in `poll` on the rx interrupt, the tx
//! completions and the doorbell when there is nothing to do.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{fence, Ordering::*};
use std::time::{Duration, Instant};

use super::chan::Chan;
use super::MtConfig;
use crate::error::Result;
use crate::pool::{Packet, Pool, PoolStats};
use crate::queue::{RxQueue, TxQueue};
use crate::sys::fd as sysfd;

/// What the driver left when it stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MtReport {
    /// The driver's pool once its queues were closed: every buffer is back
    /// (`available == capacity`) unless packets it received still live
    /// elsewhere (they come back when dropped, wherever).
    pub pool: PoolStats,
    /// Packets handed to the tx handle that could not be sent before the
    /// stop's deadline (dropped, their buffers back in their pools).
    pub tx_dropped_at_stop: u64,
    /// Received packets no task took before the stop (dropped).
    pub rx_dropped_at_stop: u64,
    /// CPU time the driver thread used (user + system).
    pub cpu_time: Duration,
}

/// Longest sleep: the stop flag is looked at least this often.
const NAP: Duration = Duration::from_millis(100);

/// Runs the queue pair until `chan.closed` (a stop) or an error.
pub(crate) fn run(
    chan: &Chan,
    mut rxq: RxQueue,
    mut txq: TxQueue,
    pool: Pool,
    cfg: &MtConfig,
) -> MtReport {
    // Packets taken from the handoff that the kernel has not accepted yet:
    // kept here so a stop still sends (or counts) them.
    let mut pending: Vec<Packet> = Vec::with_capacity(cfg.burst);
    let failure = {
        // A panic in the loop still tells the tasks (they would wait for ever).
        let closer = CloseOnUnwind(chan);
        let r = drive(chan, &mut rxq, &mut txq, &mut pending, cfg).err();
        std::mem::forget(closer);
        r
    };
    let stopping = failure.is_none();
    chan.close(failure);
    // Senders that saw the queue open finish their push before the last look.
    chan.wait_senders();
    let mut report = wind_down(
        chan,
        rxq,
        txq,
        &mut pending,
        &pool,
        cfg.stop_timeout,
        stopping,
    );
    report.cpu_time = sysfd::thread_cpu_time();
    report
}

/// The end of a queue pair, the handoff closed and its senders done: what
/// is still on its way is sent if the queue still can (`stopping`: a stop,
/// not a failure) until `stop_timeout`, else dropped (counted); what no task
/// took is dropped (counted); then the queues close and the pool says what
/// came back.
pub(crate) fn wind_down(
    chan: &Chan,
    rxq: RxQueue,
    mut txq: TxQueue,
    pending: &mut Vec<Packet>,
    pool: &Pool,
    stop_timeout: Duration,
    stopping: bool,
) -> MtReport {
    let mut tx_dropped = 0u64;
    let deadline = Instant::now()
        .checked_add(stop_timeout)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
    loop {
        while let Some(p) = chan.tx.pop() {
            pending.push(p);
        }
        if pending.is_empty() || !stopping || Instant::now() >= deadline {
            break;
        }
        if txq.tx_burst(pending).is_err() {
            break;
        }
        std::thread::yield_now();
    }
    tx_dropped += pending.len() as u64;
    pending.clear();
    if stopping {
        txq.flush(deadline.saturating_duration_since(Instant::now()));
    }
    let mut rx_dropped = 0u64;
    while let Some(p) = chan.rx.pop() {
        rx_dropped += 1;
        drop(p);
    }
    drop((rxq, txq));
    MtReport {
        pool: pool.stats(),
        tx_dropped_at_stop: tx_dropped,
        rx_dropped_at_stop: rx_dropped,
        cpu_time: Duration::ZERO,
    }
}

/// Closes the handoff if the driver unwinds.
struct CloseOnUnwind<'a>(&'a Chan);

impl Drop for CloseOnUnwind<'_> {
    fn drop(&mut self) {
        self.0.close(Some(crate::error::Error::QueueStopped {
            why: "the driver thread panicked".into(),
        }));
    }
}

fn drive(
    chan: &Chan,
    rxq: &mut RxQueue,
    txq: &mut TxQueue,
    pending: &mut Vec<Packet>,
    cfg: &MtConfig,
) -> Result<()> {
    let burst = cfg.burst;
    let cap = chan.rx.capacity();
    let mut got: Vec<Packet> = Vec::with_capacity(burst);
    let mut idle = 0u32;
    rxq.enable_interrupt()?;
    txq.enable_interrupt()?;
    while !chan.closed.load(Acquire) {
        let mut work = false;
        // Rx: a burst when the tasks left room for one.
        if chan.rx.len() + burst <= cap {
            chan.rx_full.store(false, Relaxed);
            let n = rxq.rx_burst(&mut got, burst)?;
            if n > 0 {
                for p in got.drain(..) {
                    // Room was checked, this thread alone pushes, and a burst
                    // is at most `burst` packets.
                    let r = chan.rx.push(p);
                    debug_assert!(r.is_ok(), "room for a burst was checked");
                }
                chan.counters.rx_bursts.fetch_add(1, Relaxed);
                chan.rx_wait.wake_all();
                work = true;
            }
        } else if !chan.rx_full.load(Relaxed) {
            chan.rx_full.store(true, SeqCst);
            chan.counters.rx_backpressure.fetch_add(1, Relaxed);
        }
        // Tx: what the tasks handed over, a burst at a time; the tx burst
        // reaps earlier completions even when there is nothing new.
        let mut took = false;
        while pending.len() < burst {
            match chan.tx.pop() {
                Some(p) => {
                    pending.push(p);
                    took = true;
                }
                None => break,
            }
        }
        let before = pending.len();
        txq.tx_burst(pending)?;
        // Room in the handoff (or the kernel took some): senders waiting for
        // room, or for the handoff to drain, look again.
        if took || pending.len() < before {
            chan.tx_wait.wake_all();
        }
        if pending.len() < before {
            work = true;
        }
        if work {
            idle = 0;
            continue;
        }
        idle += 1;
        if idle <= cfg.spin {
            std::hint::spin_loop();
            continue;
        }
        if !sleep(chan, rxq, txq, !pending.is_empty(), burst) {
            // A whole nap with nothing: is the device still there?
            rxq.check_vanished()?;
        }
        idle = 0;
    }
    Ok(())
}

/// Sleeps until the kernel or a task has something for the driver; false if
/// it slept its whole nap and nothing came.
fn sleep(chan: &Chan, rxq: &RxQueue, txq: &TxQueue, tx_blocked: bool, burst: usize) -> bool {
    chan.sleeping.store(true, SeqCst);
    fence(SeqCst);
    // Work that came before the announcement: no sleep.
    let rx_room = chan.rx.len() + burst <= chan.rx.capacity();
    if (!chan.tx.is_empty() && !tx_blocked)
        || chan.closed.load(Relaxed)
        || (rx_room && chan.rx_full.load(Relaxed))
    {
        chan.sleeping.store(false, Relaxed);
        return true;
    }
    chan.counters.sleeps.fetch_add(1, Relaxed);
    let mut fds = [pollfd(chan.doorbell()), NONE, NONE];
    let mut n = 1;
    if rx_room {
        if let Some(fd) = rxq.interrupt_fd() {
            fds[n] = pollfd(fd);
            n += 1;
        }
    }
    if tx_blocked {
        match txq.interrupt_fd() {
            Some(fd) => {
                fds[n] = pollfd(fd);
                n += 1;
            }
            // No completion fd (sends complete at once): look again soon.
            None => std::thread::sleep(Duration::from_micros(50)),
        }
    }
    let timeout = if tx_blocked && txq.interrupt_fd().is_none() {
        0
    } else {
        NAP.as_millis() as i32
    };
    let woke = sysfd::poll_many(&mut fds[..n], timeout).map_or(true, |k| k > 0);
    chan.sleeping.store(false, Relaxed);
    sysfd::eventfd_clear(chan.doorbell());
    rxq.clear_interrupt();
    txq.clear_interrupt();
    woke || timeout == 0
}

const NONE: libc::pollfd = libc::pollfd {
    fd: -1,
    events: 0,
    revents: 0,
};

fn pollfd(fd: BorrowedFd<'_>) -> libc::pollfd {
    libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }
}
