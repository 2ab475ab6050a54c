//! [`TxQueue`]: the transmit handle of one queue pair.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use super::classify::{classify_tx, classify_tx_frames};
use super::engine::TxEngine;
use super::features::RingFeatures;
use super::features::{Engine, TxOffload};
use super::frame::Frame;
use super::rx::vanished;
use super::shared::Claim;
use super::txprep::prepare_burst;
use crate::error::{Error, Result};
use crate::pool::{Packet, Pool};
use crate::stats::QueueStats;
use crate::sys::fd as sysfd;
use crate::xstats::{TX_N, TX_SW_GSO};

/// Transmit side of one queue pair. Not `Send`: it lives on the thread that opened it.
pub struct TxQueue {
    // Dropped before the claim: in-flight sends complete (and their buffers go
    // home) before the port sees the queue released.
    engine: Box<dyn TxEngine>,
    claim: Claim,
    /// What the port's tx path takes (else requests are finished here or refused).
    tx_offload: TxOffload,
    /// The port's engine (the queue's own, unless the engine says otherwise).
    port_engine: Engine,
    name: String,
    ifindex: u32,
    /// Completion eventfd while tx interrupts are enabled (io_uring).
    irq: Option<OwnedFd>,
    /// Scratch of `tx_frames` on engines without a copy of their own.
    copies: Vec<Packet>,
}

impl std::fmt::Debug for TxQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxQueue")
            .field("id", &self.claim.q.id)
            .field("interface", &self.name)
            .field("ring_features", &self.engine.ring_features())
            .field("in_flight", &self.engine.in_flight())
            .field("tx_offload", &self.tx_offload)
            .finish()
    }
}

impl TxQueue {
    pub(crate) fn new(
        claim: Claim,
        engine: Box<dyn TxEngine>,
        tx_offload: TxOffload,
        port_engine: Engine,
        name: &str,
        ifindex: u32,
    ) -> Self {
        TxQueue {
            engine,
            claim,
            tx_offload,
            port_engine,
            name: name.to_string(),
            ifindex,
            irq: None,
            copies: Vec::new(),
        }
    }

    /// Sends packets from the front of `pkts`, removing the ones accepted, and
    /// returns how many were accepted. Fewer than `pkts.len()` means the queue is
    /// full: retry the rest later. Completions of earlier bursts are reaped first,
    /// so their buffers are already back in their pools. Accepted packets that the
    /// kernel refuses, or that are not valid frames (under 14 bytes, more than 63
    /// segments), are counted as tx errors.
    pub fn tx_burst(&mut self, pkts: &mut Vec<Packet>) -> Result<usize> {
        let q = &self.claim.q;
        let ctr = &q.c.tx;
        let room = self.engine.room(ctr);
        let mut local = [0u64; TX_N];
        let refused = prepare_burst(pkts, room, self.tx_offload, &mut local, q.link);
        // Only the packets prepared above may go in this burst: those after them
        // still carry their request, unprocessed (no checksum seed or value).
        let ready = room.min(pkts.len() + refused) - refused;
        classify_tx(&pkts[..ready], &mut local, q.link);
        let r = self.engine.tx_burst(q.fd.as_fd(), pkts, ready, ctr);
        local[TX_SW_GSO] += self.engine.take_splits();
        q.c.tx_x.publish(&local);
        if refused > 0 {
            ctr.add(0, 0, refused as u64, 0);
        }
        r.map(|n| n + refused)
            .map_err(|_| vanished(&self.name, self.ifindex))
    }

    /// Sends frames lent by an in-place receive
    /// ([`RxQueue::rx_inplace`](super::RxQueue::rx_inplace)), copying each
    /// once: straight into the tx ring on a packet port (its virtio-net header
    /// as received), into packets of `pool` elsewhere (then sent as
    /// [`tx_burst`](Self::tx_burst) sends them). Returns how many frames, from
    /// the front, it took; fewer means the queue is full or the pool dry, and
    /// the rest are for later (an in-place forwarder takes only those from
    /// its rx queue, so nothing is dropped). Frames taken that are not valid
    /// frames are counted as tx errors.
    pub fn tx_frames(&mut self, frames: &[Frame<'_>], pool: &Pool) -> Result<usize> {
        if frames.is_empty() {
            return Ok(0);
        }
        if self.tx_offload.header {
            let q = &self.claim.q;
            let ctr = &q.c.tx;
            let room = self.engine.room(ctr);
            if let Some(r) = self.engine.tx_copy(q.fd.as_fd(), frames, room, ctr) {
                let k = r.map_err(|_| vanished(&self.name, self.ifindex))?;
                let k = k.min(frames.len());
                let mut local = [0u64; TX_N];
                classify_tx_frames(&frames[..k], &mut local, q.link);
                q.c.tx_x.publish(&local);
                return Ok(k);
            }
        }
        // Copies into pool packets, sent as tx_burst sends them. Which frames
        // were taken is found by each copy's address: the preparation may
        // refuse copies anywhere (taken: dropped and counted), the engine
        // takes a prefix of the rest, and what it leaves stays in `v`.
        const N: usize = super::rx::INPLACE_MAX;
        let room = self.engine.room(&self.claim.q.c.tx).min(N);
        let cfg = pool.config();
        let most =
            (pool.capacity() as usize).saturating_mul((cfg.buf_size - cfg.headroom) as usize);
        let mut v = std::mem::take(&mut self.copies);
        let mut addr = [std::ptr::null::<u8>(); N];
        let mut built = 0;
        for f in frames.iter().take(room) {
            if f.len() > crate::pool::MAX_PACKET_LEN || f.len() > most {
                // No pool packet can ever hold it: taken (if those before it
                // are), and counted as a tx error, else it would block what
                // follows for good. Its address stays null.
                built += 1;
                continue;
            }
            let Ok(mut p) = pool.alloc() else { break };
            if f.segments().try_for_each(|s| p.append(s)).is_err() {
                break; // the pool ran dry halfway: `p` goes back
            }
            p.set_vnet_hdr(*f.vnet_hdr());
            addr[built] = p.data().as_ptr();
            v.push(p);
            built += 1;
        }
        let r = self.tx_burst(&mut v);
        let taken = v
            .first()
            .and_then(|p| addr[..built].iter().position(|&a| a == p.data().as_ptr()))
            .unwrap_or(built);
        let unfit = addr[..taken].iter().filter(|a| a.is_null()).count();
        if unfit > 0 {
            self.claim.q.c.tx.add(0, 0, unfit as u64, 0);
        }
        v.clear(); // copies the queue did not take go back to the pool
        self.copies = v;
        match r {
            Err(e) if taken == 0 => Err(e),
            _ => Ok(taken),
        }
    }

    /// Waits until every accepted packet has completed (or `timeout` passes) and
    /// returns true if none is left in flight.
    pub fn flush(&mut self, timeout: Duration) -> bool {
        self.engine.flush(&self.claim.q.c.tx, timeout)
    }

    /// Enables tx completion interrupts: an eventfd registered with the queue's
    /// io_uring is signalled when sends complete, so a sender whose queue was full
    /// can sleep until slots free up (see [`interrupt_fd`](Self::interrupt_fd)).
    /// The read/write backend never needs it (its sends complete at once).
    pub fn enable_interrupt(&mut self) -> Result<()> {
        if self.irq.is_some() || !self.engine.signals_eventfd() {
            return Ok(());
        }
        let fd = sysfd::eventfd().map_err(|e| Error::sys("eventfd", e))?;
        self.engine
            .set_eventfd(Some(fd.as_raw_fd()))
            .map_err(|e| Error::sys("io_uring register eventfd", e))?;
        self.irq = Some(fd);
        Ok(())
    }

    /// Clears the completion eventfd after a wakeup (nothing to do without one).
    pub fn clear_interrupt(&self) {
        if let Some(irq) = &self.irq {
            sysfd::eventfd_clear(irq.as_fd());
        }
    }

    /// The completion eventfd while tx interrupts are enabled (io_uring only).
    pub fn interrupt_fd(&self) -> Option<BorrowedFd<'_>> {
        self.irq.as_ref().map(|f| f.as_fd())
    }

    /// The fd that becomes writable when the queue has room again after a
    /// burst it could not take, where that is not the queue's own fd (an
    /// AF_PACKET tx ring's socket); `None`: the queue's fd.
    #[cfg_attr(not(all(feature = "mt", feature = "tokio")), allow(dead_code))]
    pub(crate) fn writable_fd(&self) -> Option<BorrowedFd<'_>> {
        self.engine.writable_fd()
    }

    /// The engine this queue runs: the port's
    /// ([`Port::engine`](crate::Port::engine)), except for a queue whose
    /// io_uring tx kick could not be made when it opened (io_uring refused
    /// since the port opened), which kicks with `send()` (logged, and counted
    /// in the `tx_qN_kick_fallbacks` xstat).
    pub fn engine(&self) -> Engine {
        self.engine.engine().unwrap_or(self.port_engine)
    }

    /// Packets accepted but not completed yet.
    pub fn in_flight(&self) -> usize {
        self.engine.in_flight()
    }

    /// The queue index.
    pub fn id(&self) -> u16 {
        self.claim.q.id
    }

    /// Counters of this queue since the port was opened.
    pub fn stats(&self) -> QueueStats {
        self.claim.q.c.tx.snapshot()
    }

    /// The io_uring options in effect, if this queue uses io_uring.
    pub fn ring_features(&self) -> Option<&RingFeatures> {
        self.engine.ring_features()
    }
}
