//! A receiver: one io_uring driven by one thread, TCP connections added to it, one
//! multishot receive per connection (`RECV_ZC` in zcrx modes, `recv` over provided
//! buffers in copy mode), completions turned into [`Event`]s.
//!
//! Each poll: give the buffers dropped since the last poll back (one refill
//! batch; `ZCRX_CTRL_FLUSH_RQ` in device-less mode, which takes refills only when
//! told), arm the connections whose receive ended, enter the kernel once
//! (submitting and waiting), then reap every completion.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use io_uring::{cqueue, opcode, types};

use super::buf::{RxBuf, ZcHome};
use super::bufring::BufRing;
use super::config::QueueConfig;
use super::cqe;
use super::queue::{Mode, Queue};
use super::register::{import, zc_ring, ZcRing};
use super::shared::Shared;
use crate::error::{Error, Result};
use crate::sys::zcrx as abi;

/// A connection added to a [`Receiver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(u64);

impl ConnId {
    /// A number unique among the receiver's connections, live or past.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

/// What a poll found.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// The next bytes of a connection's stream.
    Data {
        /// The connection.
        conn: ConnId,
        /// The bytes; give them back by dropping.
        buf: RxBuf,
    },
    /// The connection ended: the peer closed it (`error` None), it failed, or it
    /// was [closed](Receiver::close). Its socket is closed and its id retired.
    Closed {
        /// The connection.
        conn: ConnId,
        /// Why, if it was not an orderly end of stream.
        error: Option<std::io::Error>,
    },
}

/// Counters of one receiver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceiverStats {
    /// Payload bytes delivered.
    pub bytes: u64,
    /// Buffers delivered.
    pub buffers: u64,
    /// Buffers given back (dropped) and returned to the kernel.
    pub refills: u64,
    /// Buffers delivered and not yet dropped.
    pub buffers_out: u64,
    /// Multishot receives armed again after the kernel ended them (area or
    /// buffers exhausted, completion queue full, ...).
    pub rearms: u64,
    /// `ZCRX_CTRL_FLUSH_RQ` calls (device-less mode).
    pub flushes: u64,
    /// Bytes the kernel copied: every byte in copy and device-less modes;
    /// in device mode, what fell back to copying (from the kernel's statistics
    /// where it keeps them, for the whole queue).
    pub copied_bytes: u64,
    /// Connections added.
    pub conns_added: u64,
    /// Connections ended.
    pub conns_closed: u64,
    /// Completions rtap could not use (a buffer outside the area, a bad buffer id).
    pub bad_completions: u64,
}

const CANCEL: u64 = u64::MAX;
/// How often a receiver whose receives wait for buffers looks for returns.
const STARVED_LOOK: Duration = Duration::from_millis(2);
/// Termination codes after which the receive is simply armed again.
fn rearmable(errno: i32) -> bool {
    matches!(
        errno,
        libc::ENOSPC | libc::ENOMEM | libc::ENOBUFS | libc::EAGAIN | libc::EINTR | libc::EOVERFLOW
    )
}

struct Slot {
    sock: Option<OwnedFd>,
    gen: u32,
    armed: bool,
    want_arm: bool,
    closing: bool,
    /// Last end was for lack of buffers: wait for one to come back.
    starved: bool,
    /// Buffers returned (`Shared::published`) when this receive was armed. A
    /// starved receive is armed again once more came back *since it was armed*:
    /// taking the count when the end is reaped would miss buffers returned
    /// between the kernel's end and the reap, and wait for ever once nobody
    /// returns any more (two receivers sharing one area, the other one done).
    armed_at: u64,
}

enum Engine {
    Zc {
        home: Rc<ZcHome>,
        id: u32,
        /// `Shared::published` when this receiver last flushed.
        flushed_at: u64,
    },
    Copy {
        bufs: Rc<BufRing>,
    },
}

// The constructor lives with the receiver it makes: the queue knows no receivers.
impl Queue {
    /// A receiver for this queue, driven by the calling thread.
    pub fn receiver(&self) -> Result<Receiver> {
        let Some(zc) = self.zc() else {
            return Receiver::copy(self.clone(), self.config());
        };
        if zc.opener == std::thread::current().id() {
            let taken = zc.anchor.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some((ring, id)) = taken {
                return Receiver::zc(self.clone(), zc.shared.clone(), ring, id);
            }
        }
        let Some(export) = &zc.export else {
            return Err(Error::ZcrxUnavailable {
                why: "this kernel cannot share an interface queue between rings (ZCRX_CTRL_EXPORT needs Linux >= 6.19): make a single receiver, on the thread that opened the queue".into(),
            });
        };
        let (ring, id) = import(export)?;
        Receiver::zc(self.clone(), zc.shared.clone(), ring, id)
    }
}

/// Receives TCP streams through one interface queue (or its copy fallback).
/// Made by [`Queue::receiver`]; driven by the thread that made it (not `Send`).
pub struct Receiver {
    queue: Queue,
    ring: ZcRing,
    engine: Engine,
    conns: Conns,
    to_arm: VecDeque<u32>,
    stats: ReceiverStats,
}

/// The connections: a slot each (reused, with a generation so a stale id
/// never names a new connection), the free slots, and the ends not yet reported.
#[derive(Default)]
struct Conns {
    slots: Vec<Slot>,
    free: Vec<u32>,
    closed: Vec<(ConnId, Option<std::io::Error>)>,
    closed_count: u64,
}

impl Conns {
    /// The slot of a live connection id (or user_data).
    fn live(&self, ud: u64) -> Option<u32> {
        let idx = (ud & 0xffff_ffff) as u32;
        let s = self.slots.get(idx as usize)?;
        (s.sock.is_some() && u64::from(s.gen) == ud >> 32).then_some(idx)
    }

    /// Closes slot `idx`'s socket, frees the slot and queues its Closed event.
    fn retire(&mut self, idx: u32, error: Option<std::io::Error>) {
        let s = &mut self.slots[idx as usize];
        let id = ConnId(u64::from(s.gen) << 32 | u64::from(idx));
        s.sock = None;
        s.armed = false;
        s.want_arm = false;
        self.free.push(idx);
        self.closed_count += 1;
        self.closed.push((id, error));
    }

    fn count(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("mode", self.queue.mode())
            .field("conns", &self.conns.count())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Receiver {
    pub(crate) fn zc(queue: Queue, shared: Arc<Shared>, ring: ZcRing, id: u32) -> Result<Receiver> {
        let published = shared.published();
        Ok(Receiver::with(
            queue,
            ring,
            Engine::Zc {
                home: Rc::new(ZcHome::new(shared)),
                id,
                flushed_at: published,
            },
        ))
    }

    pub(crate) fn copy(queue: Queue, cfg: &QueueConfig) -> Result<Receiver> {
        let ring = match zc_ring(64) {
            Ok(r) => r,
            // Copy mode needs neither DEFER_TASKRUN nor CQE32; older kernels
            // get a plain ring with 32-byte completions.
            Err(Error::ZcrxUnavailable { .. }) => ZcRing::builder()
                .setup_cqsize(4096)
                .build(64)
                .map_err(|e| match crate::backend::uring::check_available() {
                    Err(why) => Error::UringUnavailable { why },
                    Ok(()) => Error::sys("io_uring_setup (receiver)", e),
                })?,
            Err(e) => return Err(e),
        };
        let bufs = BufRing::new(cfg.copy_bufs as u16, cfg.copy_buf_size)
            .map_err(|e| Error::sys("mmap receive buffers", e))?;
        // SAFETY: the ring memory is page-aligned, holds copy_bufs entries, and
        // lives in an Rc the receiver holds until after the ring is closed (field
        // order: `ring` drops before `engine`), and buffers handed out keep it
        // alive beyond that (writes after the ring is gone reach only our memory).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(bufs.ring_addr(), bufs.count(), 0, 0)
        }
        .map_err(|e| Error::Unsupported {
            feature: "copy receive (provided buffer rings)",
            hint: if e.raw_os_error() == Some(libc::EINVAL) {
                "Linux >= 6.0 needed"
            } else {
                "registration failed"
            },
        })?;
        for bid in 0..bufs.count() {
            bufs.give(bid);
        }
        Ok(Receiver::with(
            queue,
            ring,
            Engine::Copy {
                bufs: Rc::new(bufs),
            },
        ))
    }

    fn with(queue: Queue, ring: ZcRing, engine: Engine) -> Receiver {
        Receiver {
            queue,
            ring,
            engine,
            conns: Conns::default(),
            to_arm: VecDeque::new(),
            stats: ReceiverStats::default(),
        }
    }

    /// The queue's mode.
    pub fn mode(&self) -> &Mode {
        self.queue.mode()
    }

    /// The queue this receiver takes buffers from.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Counters.
    pub fn stats(&self) -> ReceiverStats {
        let mut s = self.stats;
        s.conns_closed = self.conns.closed_count;
        match &self.engine {
            Engine::Zc { home, .. } => {
                s.buffers_out = home.out.get();
                s.refills = home.returned.get();
                s.copied_bytes = match (self.queue.mode(), self.queue.kernel_stats()) {
                    (Mode::NoDev, _) => s.bytes,
                    (_, Some(k)) => k.copy_bytes,
                    (_, None) => 0,
                };
            }
            Engine::Copy { bufs } => {
                s.copied_bytes = s.bytes;
                s.buffers_out = u64::from(bufs.count()) - u64::from(bufs.in_kernel());
                s.refills = s.buffers - s.buffers_out;
            }
        }
        s
    }

    /// Connections added and not yet closed.
    pub fn conns(&self) -> usize {
        self.conns.count()
    }

    /// Adds a connected TCP socket (a `std::net::TcpStream`, or any owned fd of
    /// one). Its bytes arrive as [`Event::Data`] from the next poll on. In device
    /// mode the connection's flow must be steered to the queue's hardware queue.
    pub fn add(&mut self, sock: impl Into<OwnedFd>) -> Result<ConnId> {
        let sock: OwnedFd = sock.into();
        match crate::sys::fd::socket_protocol(sock.as_fd()) {
            Ok(p) if p == libc::IPPROTO_TCP => {}
            Ok(_) => {
                return Err(Error::InvalidConfig {
                    field: "socket",
                    why: "zero-copy receive takes TCP sockets only".into(),
                })
            }
            Err(e) => return Err(Error::sys("getsockopt(SO_PROTOCOL)", e)),
        }
        let idx = match self.conns.free.pop() {
            Some(i) => i,
            None => {
                self.conns.slots.push(Slot {
                    sock: None,
                    gen: 0,
                    armed: false,
                    want_arm: false,
                    closing: false,
                    starved: false,
                    armed_at: 0,
                });
                (self.conns.slots.len() - 1) as u32
            }
        };
        let s = &mut self.conns.slots[idx as usize];
        s.gen = s.gen.wrapping_add(1);
        s.sock = Some(sock);
        s.armed = false;
        s.want_arm = true;
        s.closing = false;
        s.starved = false;
        self.to_arm.push_back(idx);
        self.stats.conns_added += 1;
        Ok(ConnId(u64::from(s.gen) << 32 | u64::from(idx)))
    }

    /// Ends a connection: its receive is cancelled and its socket closed; an
    /// [`Event::Closed`] follows from a poll. Unknown or ended ids are ignored.
    pub fn close(&mut self, conn: ConnId) {
        let Some(idx) = self.conns.live(conn.0) else {
            return;
        };
        let s = &mut self.conns.slots[idx as usize];
        if s.closing {
            return;
        }
        s.closing = true;
        s.want_arm = false;
        if s.armed {
            let e = opcode::AsyncCancel::new(conn.0).build().user_data(CANCEL);
            // SAFETY: a cancel SQE carries no pointers.
            if unsafe { self.ring.submission().push(&e) }.is_err() {
                let _ = self.ring.submit();
                // SAFETY: as above.
                let _ = unsafe { self.ring.submission().push(&e) };
            }
        } else {
            self.conns.retire(idx, None);
        }
    }

    /// Waits up to `timeout` (`None`: until something happens) for data, then
    /// appends every event ready to `events`; returns how many it appended.
    /// Dropped buffers are given back to the kernel here. While a receive
    /// waits for buffers to come back (another thread may return them without
    /// this ring hearing of it), the wait lasts at most 2 ms: `poll` may then
    /// return 0 events even with `None`.
    pub fn poll(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> Result<usize> {
        let before = events.len();
        self.give_back()?;
        self.arm();
        for (conn, error) in self.conns.closed.drain(..) {
            events.push(Event::Closed { conn, error });
        }
        let wait = if events.len() > before || !self.ring.completion().is_empty() {
            Some(Duration::ZERO)
        } else if !self.to_arm.is_empty() {
            // A receive waits for buffers to come back, which another thread
            // sharing the area may do without telling this ring: look again
            // soon rather than sleep for ever.
            Some(timeout.map_or(STARVED_LOOK, |t| t.min(STARVED_LOOK)))
        } else {
            timeout
        };
        self.enter(wait)?;
        self.reap(events);
        for (conn, error) in self.conns.closed.drain(..) {
            events.push(Event::Closed { conn, error });
        }
        Ok(events.len() - before)
    }

    /// Buffers dropped since the last poll go back to the kernel.
    fn give_back(&mut self) -> Result<()> {
        let Engine::Zc {
            home,
            id,
            flushed_at,
            ..
        } = &mut self.engine
        else {
            return Ok(());
        };
        home.flush();
        let shared = &home.shared;
        shared.refill_state();
        let published = shared.published();
        // Device-less queues take refills only when told; device queues refill
        // from the page pool, but a receive starved of buffers needs them now.
        let starved = self
            .conns
            .slots
            .iter()
            .any(|s| s.starved && s.sock.is_some());
        if (shared.nodev || starved) && published != *flushed_at {
            let mut c = abi::Ctrl {
                zcrx_id: *id,
                op: abi::CTRL_FLUSH_RQ,
                ..Default::default()
            };
            abi::ctrl(self.ring.as_raw_fd(), &mut c)
                .map_err(|e| Error::sys("ZCRX_CTRL_FLUSH_RQ", e))?;
            *flushed_at = published;
            self.stats.flushes += 1;
        }
        Ok(())
    }

    /// Queues a receive for every connection that needs one.
    fn arm(&mut self) {
        let returned = match &self.engine {
            Engine::Zc { home, .. } => home.shared.published(),
            Engine::Copy { bufs } => u64::from(bufs.in_kernel()),
        };
        let n = self.to_arm.len();
        for _ in 0..n {
            let Some(idx) = self.to_arm.pop_front() else {
                break;
            };
            let s = &self.conns.slots[idx as usize];
            let Some(sock) = &s.sock else { continue };
            if !s.want_arm || s.armed {
                continue;
            }
            // A receive that ended for lack of buffers waits until some come back.
            let starved = match &self.engine {
                Engine::Zc { .. } => s.starved && returned == s.armed_at,
                Engine::Copy { .. } => returned == 0,
            };
            if starved {
                self.to_arm.push_back(idx);
                continue;
            }
            let ud = u64::from(s.gen) << 32 | u64::from(idx);
            let fd = types::Fd(sock.as_raw_fd());
            let e = match &self.engine {
                Engine::Zc { id, .. } => opcode::RecvZc::new(fd, 0).ifq(*id).build(),
                Engine::Copy { .. } => opcode::RecvMulti::new(fd, 0).build(),
            }
            .user_data(ud);
            // SAFETY: the SQE points at no memory of ours (zcrx uses the
            // registered area, copy mode the registered buffer ring).
            if unsafe { self.ring.submission().push(&e) }.is_err() {
                self.to_arm.push_back(idx);
                break;
            }
            let s = &mut self.conns.slots[idx as usize];
            s.armed = true;
            s.want_arm = false;
            s.starved = false;
            s.armed_at = returned;
        }
    }

    /// Submits and waits (once).
    fn enter(&mut self, wait: Option<Duration>) -> Result<()> {
        let r = match wait {
            None => self.ring.submit_and_wait(1),
            Some(d) => {
                let ts = types::Timespec::from(d);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
        };
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(Error::sys("io_uring_enter (receiver)", e)),
        }
    }

    fn reap(&mut self, events: &mut Vec<Event>) {
        let mut cq = self.ring.completion();
        cq.sync();
        for c in cq {
            let ud = c.user_data();
            if ud == CANCEL {
                continue;
            }
            let Some(idx) = self.conns.live(ud) else {
                continue;
            };
            let res = c.result();
            let more = cqueue::more(c.flags());
            if res > 0 {
                let buf = match &self.engine {
                    Engine::Zc { home, .. } => {
                        cqe::zc_piece(c.big_cqe()[0], res, home.shared.geom())
                            .and_then(|(off, len)| RxBuf::zc(home, off, len))
                    }
                    Engine::Copy { bufs } => {
                        let bid = cqueue::buffer_select(c.flags());
                        cqe::copy_piece(bid, res, bufs.count(), bufs.buf_size())
                            .and_then(|(bid, len)| RxBuf::copy(bufs, bid, len))
                    }
                };
                match buf {
                    Some(buf) => {
                        self.stats.bytes += res as u64;
                        self.stats.buffers += 1;
                        events.push(Event::Data {
                            conn: ConnId(ud),
                            buf,
                        });
                    }
                    None => self.stats.bad_completions += 1,
                }
            }
            if more {
                continue;
            }
            let s = &mut self.conns.slots[idx as usize];
            s.armed = false;
            if !s.closing && (res > 0 || rearmable(-res)) {
                s.want_arm = true;
                // ENOSPC: the completion queue was full (drained by now).
                s.starved = matches!(-res, libc::ENOMEM | libc::ENOBUFS);
                self.stats.rearms += 1;
                self.to_arm.push_back(idx);
            } else {
                // The end of the stream (0), an error, or the cancel of close().
                let cancelled = s.closing && res == -libc::ECANCELED;
                let err = (res < 0 && !cancelled).then(|| std::io::Error::from_raw_os_error(-res));
                self.conns.retire(idx, err);
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Engine::Zc { home, .. } = &self.engine {
            // Buffers still held go straight to the refill ring when dropped.
            home.polled.set(false);
        }
        // Receives still armed are cancelled, and every completion not reaped
        // yet gives its buffer back (the area is shared: another receiver may
        // need them); a kernel that does not answer within a moment is left.
        let armed: Vec<u64> = self
            .conns
            .slots
            .iter_mut()
            .enumerate()
            .filter(|(_, s)| s.armed)
            .map(|(i, s)| {
                s.closing = true;
                u64::from(s.gen) << 32 | i as u64
            })
            .collect();
        for ud in armed {
            let e = opcode::AsyncCancel::new(ud).build().user_data(CANCEL);
            // SAFETY: a cancel SQE carries no pointers.
            let _ = unsafe { self.ring.submission().push(&e) };
        }
        let deadline = std::time::Instant::now() + Duration::from_millis(200);
        let mut events = Vec::new();
        loop {
            self.reap(&mut events);
            events.clear();
            if !self.conns.slots.iter().any(|s| s.armed) || std::time::Instant::now() > deadline {
                break;
            }
            let _ = self.enter(Some(Duration::from_millis(10)));
        }
        if let Engine::Zc { home, .. } = &self.engine {
            home.flush();
        }
    }
}
