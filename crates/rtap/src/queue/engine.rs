//! The data-path engine traits: what the queue layer asks of an rx or tx engine.
//!
//! An engine owns the per-queue I/O machinery of one direction (an io_uring and
//! its buffers, or nothing but scratch space for plain syscalls). The queue
//! handles ([`RxQueue`](super::RxQueue), [`TxQueue`](super::TxQueue)) hold one as a
//! trait object, call it once per burst, and never name a concrete engine: a
//! device supplies them when a queue is opened.
//!
//! Contracts every engine keeps:
//! - Bursts never block. Completions of earlier work are reaped on every burst.
//! - Buffers come from the pool the rx engine was given and always go back to it:
//!   in the engine's `Drop` at the latest, after the kernel has let go of them
//!   (or, if the kernel never answers, they are leaked rather than reused).
//! - Counters are added to the queue's [`QueueCounters`] once per burst; every
//!   frame dropped is counted (errors, nombuf, truncated).
//! - `Err(errno)` from a burst means the device is gone (see
//!   `backend::is_vanished`); other failures are counted.

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::time::Duration;

use super::counters::Block;
use super::features::{Engine, RingFeatures};
use super::frame::Frame;
use super::shared::QueueExtra;
use crate::pool::Packet;
use crate::stats::QueueCounters;
use crate::wire::layout::Link;

/// What an engine needs to know about the queue it serves (the device that
/// makes the engine knows its own configuration).
pub(crate) struct EngineCtx {
    /// The queue's fd.
    pub fd: RawFd,
    /// The device's state of the queue (an AF_PACKET queue's rings), if it
    /// keeps any.
    pub extra: Option<QueueExtra>,
    /// Largest frame the port takes (the MTU's frame, or `max_frame` if set).
    pub max_frame: usize,
    /// The process's SQPOLL ring for the device's settings, if any
    /// (`IORING_SETUP_ATTACH_WQ`: one kernel SQ thread for every ring).
    pub sq_attach: Option<RawFd>,
    /// The queue's counter block (shared with processes the port is served
    /// to), with words the device may keep there.
    pub block: Block,
    /// What the queue's frames start with (for an engine that parses them).
    pub link: Link,
    /// The queue pair will be driven by one thread at a time, not always the
    /// same one ([`Port::roaming_queues`](crate::Port)): its engines must not
    /// depend on the thread (no io_uring ring tied to its issuer, no
    /// thread-local state).
    pub roaming: bool,
}

/// Receive engine of one queue.
pub(crate) trait RxEngine {
    /// Appends up to `max` received packets to `out` and returns how many.
    /// `fd` is the queue's fd (engines that registered it may ignore it).
    fn rx_burst(
        &mut self,
        fd: BorrowedFd<'_>,
        out: &mut Vec<Packet>,
        max: usize,
        ctr: &QueueCounters,
    ) -> Result<usize, i32>;

    /// Lends up to `max` received frames where they lie to `f`, which
    /// returns how many it took from the front; the others stay for the next
    /// call, and what the taken ones occupied goes back to the kernel after
    /// `f` returns. Counts the taken frames (and those dropped on the way, as
    /// `rx_burst` does). `Ok(None)`: the engine has no in-place receive (the
    /// default; the queue then lends packets it received).
    fn rx_inplace(
        &mut self,
        _fd: BorrowedFd<'_>,
        _max: usize,
        _ctr: &QueueCounters,
        _f: &mut dyn FnMut(&[Frame<'_>]) -> usize,
    ) -> Result<Option<usize>, i32> {
        Ok(None)
    }

    /// True if [`rx_inplace`](Self::rx_inplace) lends the kernel's memory.
    fn in_place(&self) -> bool {
        false
    }

    /// Pool buffers the engine holds for the kernel to fill.
    fn held(&self) -> usize;

    /// The last burst found the queue's fd empty (a read said `EAGAIN`), so a
    /// caller watching the fd's readiness may forget it until the next
    /// event. False when unknown (engines whose reads the kernel completes).
    /// Used by the task-driven `mt` queues.
    #[cfg_attr(not(all(feature = "mt", feature = "tokio")), allow(dead_code))]
    fn drained(&self) -> bool {
        false
    }

    /// The io_uring options in effect, for io_uring engines (by default none).
    fn ring_features(&self) -> Option<&RingFeatures> {
        None
    }

    /// True if the engine signals completions on an eventfd (registered with
    /// [`set_eventfd`](Self::set_eventfd)); false (the default) if readiness is
    /// the queue fd's own, or the engine's [`ready_fd`](Self::ready_fd).
    fn signals_eventfd(&self) -> bool {
        false
    }

    /// Registers (or, with `None`, unregisters) the eventfd signalled when
    /// completions arrive. Only called when [`signals_eventfd`](Self::signals_eventfd).
    fn set_eventfd(&mut self, _fd: Option<RawFd>) -> io::Result<()> {
        Ok(())
    }

    /// Sleeps until packets may be ready or `timeout` passes; true if they may be.
    fn wait(&mut self, fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool>;

    /// The fd that becomes readable when packets arrive, if it is the engine's
    /// own rather than the queue's (an XDP socket, made when the engine binds).
    fn ready_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    /// True once the queue's interface is gone (deleted, or its namespace
    /// destroyed). By default: the queue fd reports an error condition, which a
    /// tap fd does only then.
    fn gone(&mut self, fd: BorrowedFd<'_>) -> bool {
        crate::sys::fd::poll_error(fd)
    }
}

/// Transmit engine of one queue.
pub(crate) trait TxEngine {
    /// Packets the next burst can take, after reaping finished sends.
    fn room(&mut self, ctr: &QueueCounters) -> usize;

    /// Sends packets from the front of `pkts`, at most `max`, removes the ones it
    /// took (sent, in flight, or dropped and counted) and returns how many.
    fn tx_burst(
        &mut self,
        fd: BorrowedFd<'_>,
        pkts: &mut Vec<Packet>,
        max: usize,
        ctr: &QueueCounters,
    ) -> Result<usize, i32>;

    /// Copies frames from the front of `frames`, at most `max`, straight into
    /// the engine's own buffers (a ring's slots) and returns how many it took
    /// (sent, in flight, or dropped and counted); the frames go as they are,
    /// their virtio-net header included. `None`: the engine has no such copy
    /// (the default; the queue then copies them into pool packets).
    fn tx_copy(
        &mut self,
        _fd: BorrowedFd<'_>,
        _frames: &[Frame<'_>],
        _max: usize,
        _ctr: &QueueCounters,
    ) -> Option<Result<usize, i32>> {
        None
    }

    /// Waits until nothing is in flight or `timeout` passes; true if nothing is.
    fn flush(&mut self, ctr: &QueueCounters, timeout: Duration) -> bool;

    /// Packets this engine split into segments in software since the last
    /// call (an engine of a port whose frames go without a virtio-net header,
    /// [`TxOffload::split`](super::TxOffload::split)); read once per burst.
    fn take_splits(&mut self) -> u64 {
        0
    }

    /// Packets taken but not completed yet.
    fn in_flight(&self) -> usize;

    /// The io_uring options in effect, for io_uring engines (by default none).
    fn ring_features(&self) -> Option<&RingFeatures> {
        None
    }

    /// The fd that becomes writable when the engine has room again, if it is
    /// the engine's own rather than the queue's (an AF_PACKET tx ring's
    /// socket). Used by the task-driven `mt` queues.
    #[cfg_attr(not(all(feature = "mt", feature = "tokio")), allow(dead_code))]
    fn writable_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    /// The engine this queue runs, where it may differ from the port's (a
    /// queue whose io_uring kick could not be made kicks with `send()`); by
    /// default the port's.
    fn engine(&self) -> Option<Engine> {
        None
    }

    /// True if sends complete asynchronously and the engine can signal their
    /// completions on an eventfd (by default not).
    fn signals_eventfd(&self) -> bool {
        false
    }

    /// Registers (or, with `None`, unregisters) the completion eventfd. Only
    /// called when [`signals_eventfd`](Self::signals_eventfd).
    fn set_eventfd(&mut self, _fd: Option<RawFd>) -> io::Result<()> {
        Ok(())
    }
}
