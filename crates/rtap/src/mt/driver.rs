//! The thread that runs one queue pair for the async handles: it opens the
//! queues and their pool (so the io_uring rings keep their single issuer, and
//! the pool's thread is this one), moves bursts between the kernel and the
//! handoff queues, and sleeps in `poll` on the rx interrupt, the tx
//! completions and the doorbell when there is nothing to do.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{fence, Ordering::*};
use std::time::Duration;

use super::chan::Chan;
use super::config::MtConfig;
use super::end::{wind_down, MtReport};
use crate::error::Result;
use crate::pool::{Packet, Pool};
use crate::queue::{RxQueue, TxQueue};
use crate::sys::fd as sysfd;

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
    let mut got: Vec<Packet> = Vec::with_capacity(burst);
    let mut idle = 0u32;
    rxq.enable_interrupt()?;
    txq.enable_interrupt()?;
    while !chan.closed.load(Acquire) {
        let mut work = false;
        // Rx: a burst when the tasks left room for one.
        if chan.rx_room() {
            chan.rx_full.store(false, Relaxed);
            let n = rxq.rx_burst(&mut got, burst)?;
            if n > 0 {
                chan.push_rx(&mut got);
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
        let took = chan.take_tx(pending);
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
        if !sleep(chan, rxq, txq, !pending.is_empty()) {
            // A whole nap with nothing: is the device still there?
            rxq.check_vanished()?;
        }
        idle = 0;
    }
    Ok(())
}

/// Sleeps until the kernel or a task has something for the driver; false if
/// it slept its whole nap and nothing came.
fn sleep(chan: &Chan, rxq: &RxQueue, txq: &TxQueue, tx_blocked: bool) -> bool {
    chan.sleeping.store(true, SeqCst);
    fence(SeqCst);
    // Work that came before the announcement: no sleep.
    let rx_room = chan.rx_room();
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
