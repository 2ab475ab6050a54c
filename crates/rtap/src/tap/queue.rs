//! [`RxQueue`] and [`TxQueue`]: the per-queue data path handles, dispatching to a backend.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::metadata;
use crate::backend::rw::{RwRx, RwTx};
use crate::backend::uring::rx::UringRx;
use crate::backend::uring::rx_multishot::UringRxMulti;
use crate::backend::uring::tx::UringTx;
use crate::backend::uring::{RingConfig, RingFeatures, RxMode};
use crate::backend::BackendKind;
use crate::error::{Error, Result};
use crate::pool::{Packet, Pool};
use crate::stats::{QueueCounters, QueueStats};
use crate::sys::fd as sysfd;
use crate::xstats::{XCounters, RX_N, TX_N};

/// State of one queue pair shared by the port and the queue handles.
pub(crate) struct QueueShared {
    pub id: u16,
    pub fd: OwnedFd,
    pub rx: QueueCounters,
    pub tx: QueueCounters,
    pub rx_taken: AtomicBool,
    pub tx_taken: AtomicBool,
    pub rx_x: XCounters,
    pub tx_x: XCounters,
}

enum RxEngine {
    Uring(UringRx),
    Multishot(UringRxMulti),
    Rw(RwRx),
}

enum TxEngine {
    Uring(Box<UringTx>),
    Rw(RwTx),
}

/// Receive side of one queue pair. Not `Send`: it lives on the thread that opened it.
pub struct RxQueue {
    engine: RxEngine,
    shared: Arc<QueueShared>,
    name: String,
    ifindex: u32,
    /// Consecutive empty bursts.
    idle: u32,
    /// The interface was found gone by the idle check.
    gone: bool,
    /// Rx interrupt eventfd, while interrupts are enabled (io_uring engines).
    irq: Option<OwnedFd>,
}

/// Empty bursts between two checks of the tap fd for a deleted interface.
const IDLE_CHECK: u32 = 256;

/// Transmit side of one queue pair. Not `Send`: it lives on the thread that opened it.
pub struct TxQueue {
    engine: TxEngine,
    shared: Arc<QueueShared>,
    /// The port's checksum offload is on (else requested checksums are computed here).
    csum_offload: bool,
    name: String,
    ifindex: u32,
    /// Completion eventfd while tx interrupts are enabled (io_uring).
    irq: Option<OwnedFd>,
}

fn vanished(name: &str, ifindex: u32) -> Error {
    Error::DeviceVanished {
        name: name.to_string(),
        ifindex,
    }
}

/// Opens the io_uring rx engine the ring's rx mode resolves to on this kernel,
/// recording the engine (and why, if the kernel chose it) in its ring features.
fn open_uring_rx(
    fd: RawFd,
    pool: &Pool,
    ring: &RingConfig,
    vnet_len: usize,
    max_frame: usize,
    sq_attach: Option<RawFd>,
) -> Result<RxEngine> {
    let pc = pool.config();
    let fits_one_buffer = (pc.buf_size - pc.headroom) as usize > max_frame;
    let (mode, why) = ring.rx_mode.resolve(fits_one_buffer)?;
    let note = |f: &mut RingFeatures, mode: RxMode| {
        f.rx_mode = Some(mode);
        if let Some(why) = why {
            tracing::info!("rx queue: {why}");
            f.fallbacks.push(why.to_string());
        }
    };
    let engine = if mode == RxMode::Multishot {
        let mut e = UringRxMulti::new(fd, pool, ring, vnet_len, max_frame, sq_attach)?;
        note(&mut e.features, RxMode::Multishot);
        RxEngine::Multishot(e)
    } else {
        let mut e = UringRx::new(fd, pool, ring, vnet_len, max_frame, sq_attach)?;
        note(&mut e.features, RxMode::Posted);
        RxEngine::Uring(e)
    };
    Ok(engine)
}

impl RxQueue {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open(
        shared: Arc<QueueShared>,
        backend: BackendKind,
        pool: &Pool,
        ring: &RingConfig,
        vnet_len: usize,
        max_frame: usize,
        name: &str,
        ifindex: u32,
        sq_attach: Option<RawFd>,
    ) -> Result<RxQueue> {
        if shared.rx_taken.swap(true, Ordering::AcqRel) {
            return Err(Error::QueueBusy {
                dir: "rx",
                queue: shared.id,
            });
        }
        let engine = match backend {
            BackendKind::Uring => open_uring_rx(
                shared.fd.as_raw_fd(),
                pool,
                ring,
                vnet_len,
                max_frame,
                sq_attach,
            ),
            BackendKind::Rw => RwRx::new(pool, vnet_len, max_frame).map(RxEngine::Rw),
        };
        match engine {
            Ok(engine) => Ok(RxQueue {
                engine,
                shared,
                name: name.to_string(),
                ifindex,
                idle: 0,
                gone: false,
                irq: None,
            }),
            Err(e) => {
                shared.rx_taken.store(false, Ordering::Release);
                Err(e)
            }
        }
    }

    /// Receives up to `max` packets, appending them to `out`; returns how many.
    /// Never blocks. Reads the buffers of delivered packets are replaced at once,
    /// so the queue keeps its reads posted.
    pub fn rx_burst(&mut self, out: &mut Vec<Packet>, max: usize) -> Result<usize> {
        if self.gone {
            return Err(vanished(&self.name, self.ifindex));
        }
        let ctr = &self.shared.rx;
        let start = out.len();
        let r = match &mut self.engine {
            RxEngine::Uring(e) => e.rx_burst(out, max, ctr),
            RxEngine::Multishot(e) => e.rx_burst(out, max, ctr),
            RxEngine::Rw(e) => e.rx_burst(self.shared.fd.as_fd(), out, max, ctr),
        };
        match r {
            Ok(0) => {
                // An io_uring read learns of a deleted interface only if it is woken
                // after the kernel detached the queue; the kernel wakes readers just
                // before, so a read can find nothing, wait again and never complete.
                // While idle, ask the fd itself now and then.
                self.idle = self.idle.wrapping_add(1);
                if self.idle % IDLE_CHECK == 0 && sysfd::poll_error(self.shared.fd.as_fd()) {
                    self.gone = true;
                    return Err(vanished(&self.name, self.ifindex));
                }
                Ok(0)
            }
            Ok(n) => {
                self.idle = 0;
                let mut local = [0u64; RX_N];
                metadata::classify_rx(&out[start..], &mut local);
                self.shared.rx_x.publish(&local);
                Ok(n)
            }
            Err(_) => Err(vanished(&self.name, self.ifindex)),
        }
    }

    /// The queue index.
    pub fn id(&self) -> u16 {
        self.shared.id
    }

    /// Counters of this queue (since the port was opened; resets apply to
    /// [`TapPort::stats`](crate::TapPort::stats) only).
    pub fn stats(&self) -> QueueStats {
        self.shared.rx.snapshot()
    }

    /// The io_uring options in effect, if this queue uses io_uring.
    pub fn ring_features(&self) -> Option<&RingFeatures> {
        match &self.engine {
            RxEngine::Uring(e) => Some(&e.features),
            RxEngine::Multishot(e) => Some(&e.features),
            RxEngine::Rw(_) => None,
        }
    }

    /// Enables rx interrupts: an eventfd registered with the queue's io_uring is
    /// signalled whenever completions arrive, so the application can sleep in
    /// [`wait`](Self::wait) or add [`interrupt_fd`](Self::interrupt_fd) to its own
    /// epoll set instead of busy polling. With the read/write backend the tap fd
    /// itself is the readiness source. Link events work alongside.
    pub fn enable_interrupt(&mut self) -> Result<()> {
        if self.irq.is_some() {
            return Ok(());
        }
        let fd = sysfd::eventfd().map_err(|e| Error::sys("eventfd", e))?;
        let raw = Some(fd.as_raw_fd());
        let r = match &mut self.engine {
            RxEngine::Uring(e) => e.set_eventfd(raw),
            RxEngine::Multishot(e) => e.set_eventfd(raw),
            RxEngine::Rw(_) => Ok(()),
        };
        r.map_err(|e| Error::sys("io_uring register eventfd", e))?;
        self.irq = Some(fd);
        Ok(())
    }

    /// Disables rx interrupts (unregisters and closes the eventfd).
    pub fn disable_interrupt(&mut self) -> Result<()> {
        if self.irq.take().is_none() {
            return Ok(());
        }
        let r = match &mut self.engine {
            RxEngine::Uring(e) => e.set_eventfd(None),
            RxEngine::Multishot(e) => e.set_eventfd(None),
            RxEngine::Rw(_) => Ok(()),
        };
        r.map_err(|e| Error::sys("io_uring unregister eventfd", e))
    }

    /// The fd to watch for readability while interrupts are enabled: the eventfd
    /// (io_uring) or the tap fd (read/write). Reading it is the caller's business
    /// only for the eventfd; [`wait`](Self::wait) clears it.
    pub fn interrupt_fd(&self) -> Option<BorrowedFd<'_>> {
        match (&self.engine, &self.irq) {
            (RxEngine::Rw(_), _) => Some(self.shared.fd.as_fd()),
            (_, Some(fd)) => Some(fd.as_fd()),
            _ => None,
        }
    }

    /// Sleeps until packets may be ready or `timeout` passes; returns true if
    /// they may be (then call [`rx_burst`](Self::rx_burst)). Works whether or not
    /// interrupts are enabled; a deleted interface ends the wait with an error.
    pub fn wait(&mut self, timeout: Duration) -> Result<bool> {
        if self.gone {
            return Err(vanished(&self.name, self.ifindex));
        }
        let r = match &mut self.engine {
            RxEngine::Uring(e) => e.wait(timeout),
            RxEngine::Multishot(e) => e.wait(timeout),
            RxEngine::Rw(_) => sysfd::poll_in(self.shared.fd.as_fd(), timeout),
        };
        if let Some(fd) = &self.irq {
            sysfd::eventfd_clear(fd.as_fd());
        }
        let ready = r.map_err(|e| Error::sys("rx wait", e))?;
        if !ready && sysfd::poll_error(self.shared.fd.as_fd()) {
            self.gone = true;
            return Err(vanished(&self.name, self.ifindex));
        }
        Ok(ready)
    }

    /// Pool buffers the queue holds for the kernel to fill (io_uring backend: the
    /// posted reads' or the buffer ring's; 0 for read/write). While the queue is
    /// open, `pool.available() + posted()` is the pool's capacity minus the
    /// packets the application holds.
    pub fn posted(&self) -> usize {
        match &self.engine {
            RxEngine::Uring(e) => e.held(),
            RxEngine::Multishot(e) => e.provided(),
            RxEngine::Rw(_) => 0,
        }
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        // The engine returns its buffers in its own Drop, which runs after this.
        self.shared.rx_taken.store(false, Ordering::Release);
    }
}

impl TxQueue {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open(
        shared: Arc<QueueShared>,
        backend: BackendKind,
        ring: &RingConfig,
        vnet_len: usize,
        csum_offload: bool,
        name: &str,
        ifindex: u32,
        sq_attach: Option<RawFd>,
    ) -> Result<TxQueue> {
        if shared.tx_taken.swap(true, Ordering::AcqRel) {
            return Err(Error::QueueBusy {
                dir: "tx",
                queue: shared.id,
            });
        }
        let engine = match backend {
            BackendKind::Uring => UringTx::new(shared.fd.as_raw_fd(), ring, vnet_len, sq_attach)
                .map(|e| TxEngine::Uring(Box::new(e))),
            BackendKind::Rw => Ok(TxEngine::Rw(RwTx::new(vnet_len))),
        };
        match engine {
            Ok(engine) => Ok(TxQueue {
                engine,
                irq: None,
                shared,
                csum_offload,
                name: name.to_string(),
                ifindex,
            }),
            Err(e) => {
                shared.tx_taken.store(false, Ordering::Release);
                Err(e)
            }
        }
    }

    /// Sends packets from the front of `pkts`, removing the ones accepted, and
    /// returns how many were accepted. Fewer than `pkts.len()` means the queue is
    /// full: retry the rest later. Completions of earlier bursts are reaped first,
    /// so their buffers are already back in their pools. Accepted packets that the
    /// kernel refuses, or that are not valid frames (under 14 bytes, more than 63
    /// segments), are counted as tx errors.
    pub fn tx_burst(&mut self, pkts: &mut Vec<Packet>) -> Result<usize> {
        let ctr = &self.shared.tx;
        let room = match &mut self.engine {
            TxEngine::Uring(e) => e.room(ctr),
            TxEngine::Rw(_) => pkts.len(),
        };
        let mut local = [0u64; TX_N];
        let refused = metadata::prepare_burst(pkts, room, self.csum_offload, &mut local);
        // Only the packets prepared above may go in this burst: those after them
        // still carry their request, unprocessed (no checksum seed or value).
        let ready = room.min(pkts.len() + refused) - refused;
        metadata::classify_tx(&pkts[..ready], &mut local);
        let r = match &mut self.engine {
            TxEngine::Uring(e) => e.tx_burst(pkts, ready, ctr),
            TxEngine::Rw(e) => e.tx_burst(self.shared.fd.as_fd(), pkts, ready, ctr),
        };
        self.shared.tx_x.publish(&local);
        if refused > 0 {
            ctr.add(0, 0, refused as u64, 0);
        }
        r.map(|n| n + refused)
            .map_err(|_| vanished(&self.name, self.ifindex))
    }

    /// Waits until every accepted packet has completed (or `timeout` passes) and
    /// returns true if none is left in flight.
    pub fn flush(&mut self, timeout: Duration) -> bool {
        match &mut self.engine {
            TxEngine::Uring(e) => e.flush(&self.shared.tx, timeout),
            TxEngine::Rw(_) => true,
        }
    }

    /// Enables tx completion interrupts: an eventfd registered with the queue's
    /// io_uring is signalled when sends complete, so a sender whose queue was full
    /// can sleep until slots free up (see [`interrupt_fd`](Self::interrupt_fd)).
    /// The read/write backend never needs it (its sends complete at once).
    pub fn enable_interrupt(&mut self) -> Result<()> {
        if self.irq.is_some() {
            return Ok(());
        }
        if let TxEngine::Uring(e) = &mut self.engine {
            let fd = sysfd::eventfd().map_err(|e| Error::sys("eventfd", e))?;
            e.set_eventfd(Some(fd.as_raw_fd()))
                .map_err(|e| Error::sys("io_uring register eventfd", e))?;
            self.irq = Some(fd);
        }
        Ok(())
    }

    /// The completion eventfd while tx interrupts are enabled (io_uring only).
    pub fn interrupt_fd(&self) -> Option<BorrowedFd<'_>> {
        self.irq.as_ref().map(|f| f.as_fd())
    }

    /// Packets accepted but not completed yet.
    pub fn in_flight(&self) -> usize {
        match &self.engine {
            TxEngine::Uring(e) => e.in_flight(),
            TxEngine::Rw(_) => 0,
        }
    }

    /// The queue index.
    pub fn id(&self) -> u16 {
        self.shared.id
    }

    /// Counters of this queue since the port was opened.
    pub fn stats(&self) -> QueueStats {
        self.shared.tx.snapshot()
    }

    /// The io_uring options in effect, if this queue uses io_uring.
    pub fn ring_features(&self) -> Option<&RingFeatures> {
        match &self.engine {
            TxEngine::Uring(e) => Some(&e.features),
            TxEngine::Rw(_) => None,
        }
    }
}

impl Drop for TxQueue {
    fn drop(&mut self) {
        self.shared.tx_taken.store(false, Ordering::Release);
    }
}
