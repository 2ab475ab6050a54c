//! Queues for multi-thread async runtimes (feature `mt`): handles that are
//! `Send + Sync + Clone`, whose futures are `Send`, usable from any task on
//! any thread, with any executor (tokio's multi-thread scheduler, smol,
//! async-std: the handles need no reactor).
//!
//! # How
//!
//! An io_uring ring is best driven by one thread (`SINGLE_ISSUER`,
//! `DEFER_TASKRUN`), and a pool belongs to the thread that made it. So each
//! queue pair gets a driver thread ([`MtQueue::spawn`]) that opens the queues
//! and their pool, moves bursts between the kernel and two bounded lock-free
//! queues, and sleeps in `poll` when there is nothing to do. Tasks take
//! received packets from one ([`MtRx`], a `futures` `Stream`) and put
//! packets to send in the other ([`MtTx`], a `Sink`). A burst costs one task
//! wakeup at most; a task wakes the driver (an eventfd write) only when the
//! driver sleeps. Packets are `Send`: a packet received on the driver's
//! thread, changed by a task on another and sent by a third goes back to the
//! driver's pool when dropped, wherever ([`crate::pool`]).
//!
//! Or, with [`MtDrive::Tasks`] (TAP, TUN and AF_PACKET ports, feature
//! `tokio`), no
//! driver thread: the task that finds nothing received reads a burst from
//! the kernel on the thread it runs on, the task that sends writes, one
//! thread at a time on each side (the rx queue and its pool move with the
//! reader, the tx queue with the writer); when the
//! kernel has nothing, tokio's reactor wakes the waiting tasks. That is how a
//! tokio application reading its own fd works, without the wakeups a handoff
//! costs when its other side sleeps, at the price of a syscall per packet
//! (`read`/`write`, not io_uring, whose rings are tied to a thread). The
//! handles and what they promise are the same either way.
//!
//! The single-thread busy-poll path ([`RxQueue`](crate::RxQueue),
//! [`TxQueue`](crate::TxQueue) on the caller's thread) is unchanged and stays
//! the fastest; this layer costs a thread per queue pair (or the tasks' own
//! I/O) and a handoff per burst (BENCHMARKS.md measures both).
//!
//! # Backpressure
//!
//! A full received queue (tasks slower than the wire) leaves frames in the
//! kernel, which drops them when its own queue fills (`imissed`, counted),
//! and counts the rounds in [`MtStats::rx_backpressure`]. A full send queue
//! makes [`MtTx::send`] and the `Sink` wait: nothing is dropped silently.
//! Received packets that tasks hold count as taken from the driver's pool:
//! when tasks hold them all, the driver's receive finds no buffer (the port's
//! `nombuf` and [`Pool::stats`](crate::Pool::stats)'s `exhausted` count it;
//! [`MtReport::pool`] says what came back).
//! Packets a task allocates come from its thread's own pool
//! ([`alloc_from`]).

mod chan;
mod config;
mod driver;
mod end;
#[cfg(feature = "tokio")]
mod inline;
#[cfg(not(feature = "tokio"))]
#[path = "inline_off.rs"]
mod inline;
mod local;
mod rx;
mod shared;
mod tx;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

pub use config::{MtConfig, MtDrive};
pub use end::MtReport;
pub use local::{alloc_from, with_local_pool};
pub use rx::MtRx;
pub use tx::MtTx;

use chan::{Chan, WaitList};
use shared::Shared;

use crate::error::{Error, Result};
use crate::pool::Pool;
use crate::port::Port;

/// What a queue pair's handoff has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MtStats {
    /// Times the driver went to sleep (task-driven: times a task found
    /// nothing to read and left the wait to the reactor).
    pub sleeps: u64,
    /// Times a task woke the sleeping driver (task-driven: none).
    pub doorbells: u64,
    /// Rx bursts handed to the tasks.
    pub rx_bursts: u64,
    /// Rounds the driver left frames in the kernel because the tasks had not
    /// taken the ones before.
    pub rx_backpressure: u64,
    /// Received packets waiting for a task now.
    pub rx_queued: usize,
    /// Packets handed to the tx handles that the kernel has not taken yet:
    /// those in the handoff, and with [`MtDrive::Tasks`] also a burst the
    /// kernel refused (a driver thread's burst in hand is not counted).
    pub tx_queued: usize,
}

/// A queue pair for async tasks on any thread, run by its own driver thread
/// or by the tasks ([`MtDrive`]). Stops (and joins the thread) on
/// [`stop`](Self::stop) or drop; handles made from it then fail with
/// [`Error::QueueStopped`].
#[derive(Debug)]
pub struct MtQueue {
    q: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<MtReport>>,
    id: u16,
    stop_timeout: Duration,
    stopped: bool,
}

impl MtQueue {
    /// Starts a driver thread for queue pair `id` of `port` (started): it
    /// opens the rx and tx queues and a pool of `cfg.pool` there. Errors
    /// opening them are returned here.
    ///
    /// With [`MtDrive::Tasks`] no thread starts: the queues and the pool are
    /// opened here, for the tasks, and must be opened inside a tokio runtime
    /// ([`Error::NoAsyncRuntime`] outside one).
    pub fn spawn(port: &Arc<Port>, id: u16, cfg: MtConfig) -> Result<MtQueue> {
        cfg.validate()?;
        let waits = (Arc::new(WaitList::default()), Arc::new(WaitList::default()));
        if cfg.drive == MtDrive::Tasks {
            return Self::for_tasks(port, id, cfg, waits);
        }
        let q = Arc::new(Shared {
            chan: Chan::new(cfg.depth, cfg.burst, waits)?,
            inline: None,
        });
        let stop_timeout = cfg.stop_timeout;
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<Result<()>>(1);
        let (port, q2) = (port.clone(), q.clone());
        let name = cfg
            .thread_name
            .clone()
            .unwrap_or_else(|| format!("rtap-q{id}"));
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let opened = (|| {
                    let pool = Pool::new(cfg.pool)?;
                    let rxq = port.rx_queue(id, &pool)?;
                    let txq = port.tx_queue(id)?;
                    Ok((pool, rxq, txq))
                })();
                match opened {
                    Ok((pool, rxq, txq)) => {
                        let _ = ready_tx.send(Ok(()));
                        drop(port);
                        driver::run(&q2.chan, rxq, txq, pool, &cfg)
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        MtReport::default()
                    }
                }
            })
            .map_err(|e| Error::sys("spawn the queue's driver thread", e))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(MtQueue {
                q,
                thread: Some(thread),
                id,
                stop_timeout,
                stopped: false,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(Error::QueueStopped {
                why: "the driver thread ended before opening its queues".into(),
            }),
        }
    }

    #[cfg(feature = "tokio")]
    fn for_tasks(
        port: &Arc<Port>,
        id: u16,
        cfg: MtConfig,
        waits: (Arc<WaitList>, Arc<WaitList>),
    ) -> Result<MtQueue> {
        let inline = inline::Inline::open(port, id, &cfg, &waits)?;
        Ok(MtQueue {
            q: Arc::new(Shared {
                chan: Chan::new(cfg.depth, cfg.burst, waits)?,
                inline: Some(inline),
            }),
            thread: None,
            id,
            stop_timeout: cfg.stop_timeout,
            stopped: false,
        })
    }

    #[cfg(not(feature = "tokio"))]
    fn for_tasks(
        _: &Arc<Port>,
        _: u16,
        _: MtConfig,
        _: (Arc<WaitList>, Arc<WaitList>),
    ) -> Result<MtQueue> {
        Err(Error::Unsupported {
            feature: "queues driven by the async tasks (MtDrive::Tasks)",
            hint: "build rtap with feature tokio, or use MtDrive::Thread",
        })
    }

    /// Who does this queue pair's I/O.
    pub fn drive(&self) -> MtDrive {
        if self.q.inline.is_some() {
            MtDrive::Tasks
        } else {
            MtDrive::Thread
        }
    }

    /// The queue pair's index.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// A receive handle (clone it for more tasks).
    pub fn rx(&self) -> MtRx {
        MtRx::new(self.q.clone())
    }

    /// A send handle (clone it for more tasks).
    pub fn tx(&self) -> MtTx {
        MtTx::new(self.q.clone())
    }

    /// What the handoff has done so far.
    pub fn stats(&self) -> MtStats {
        let c = &self.q.chan.counters;
        MtStats {
            sleeps: c.sleeps.load(Relaxed),
            doorbells: c.doorbells.load(Relaxed),
            rx_bursts: c.rx_bursts.load(Relaxed),
            rx_backpressure: c.rx_backpressure.load(Relaxed),
            rx_queued: self.q.chan.rx.len(),
            tx_queued: self.q.tx_queued(),
        }
    }

    /// Stops the driver: packets handed to the tx handle go out first (up
    /// to `stop_timeout`), then the queues close. Returns what it left.
    pub fn stop(mut self) -> MtReport {
        self.halt()
    }

    fn halt(&mut self) -> MtReport {
        if std::mem::replace(&mut self.stopped, true) {
            return MtReport::default();
        }
        self.q.chan.close(None);
        if let Some(i) = &self.q.inline {
            // Senders that saw the queue open finish their push first.
            self.q.chan.wait_senders();
            return i.stop(&self.q.chan, self.stop_timeout);
        }
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_default(),
            None => MtReport::default(),
        }
    }
}

impl Drop for MtQueue {
    fn drop(&mut self) {
        self.halt();
    }
}
