//! One bound XDP socket: its UMEM (a pool's memory), its four rings, and which
//! pool buffers it has lent to the kernel. A queue's rx and tx engines share
//! it (they run on one thread: the pool is that thread's).
//!
//! Lifecycle: made by the first engine of a queue; the socket is closed when
//! the last engine lets go, and only then do the buffers the kernel still held
//! (in the fill ring, on their way out) go back to the pool: the kernel never
//! writes into a buffer the application owns again.
//!
//! Sharing a UMEM: a pool registered on one socket is registered once; every
//! other socket binding with that pool (another queue, another port of the
//! same thread: a forwarder) binds with `XDP_SHARED_UMEM` to the first and has
//! fill and completion rings of its own, so a frame received on one port is
//! sent on the other by descriptor, without a copy in user space.

use std::cell::RefCell;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::counters::XdpCounters;
use super::desc::{Geom, Lent};
use super::errors::retry_busy;
use super::ring::Ring;
use crate::device::netns::NsHandle;
use crate::error::{Error, Result};
use crate::pool::{Pool, PoolInner};
use crate::sys::xdp::{self as sys, Desc};

/// How a socket binds.
#[derive(Clone, Debug)]
pub(crate) struct BindReq {
    /// The namespace the socket is made in (where `ifindex` is the interface).
    pub ns: Arc<NsHandle>,
    pub ifindex: u32,
    pub queue: u32,
    pub ring: u32,
    /// `XDP_COPY` / `XDP_ZEROCOPY` / neither (auto), `XDP_USE_NEED_WAKEUP`,
    /// `XDP_USE_SG`.
    pub flags: u16,
    /// Chunk size if aligned chunks were asked for.
    pub frame: Option<u32>,
}

/// A bound socket.
pub(crate) struct Xsk {
    /// Shared (weakly) with the queue's state for its statistics (the device
    /// reads them from any thread); `None` only while dropping.
    sock: Option<Arc<OwnedFd>>,
    pub pool: Pool,
    pub geom: Geom,
    pub fill: Ring<u64>,
    pub comp: Ring<u64>,
    pub rx: Ring<Desc>,
    pub tx: Ring<Desc>,
    /// Buffers in the fill ring or being filled by the kernel.
    pub fill_lent: Lent,
    /// Buffers on their way out (tx descriptors not completed).
    pub tx_lent: Lent,
    /// Bound in zero-copy mode.
    pub zerocopy: bool,
    /// Why not zero-copy, when zero-copy was possible to ask for.
    pub copy_reason: Option<String>,
    /// Frames one tx kick sends at most (see [`tx_budget`]).
    pub tx_budget: u32,
    /// The UMEM reserves [`TX_META_LEN`] bytes in front of every tx frame for
    /// a [`sys::TxMetadata`]: the kernel finishes checksums asked for there.
    /// Every tx frame then needs that much headroom in its chunk.
    pub tx_meta: bool,
    /// Bound for multi-buffer frames (`XDP_USE_SG`).
    pub sg: bool,
    /// Buffers in flight that carry the last piece of a tx frame: their
    /// completion completes the frame (counted once).
    pub tx_last: Lent,
    /// The queue's counters (the socket's statistics go there as it closes).
    pub counters: Arc<XdpCounters>,
}

thread_local! {
    /// The pools registered as a UMEM on this thread, with each bound socket
    /// using it (a new socket binds sharing any one of them; the kernel keeps
    /// the UMEM for as long as one is bound).
    static UMEMS: RefCell<Vec<Umem>> = const { RefCell::new(Vec::new()) };
}

/// A pool registered as a UMEM, and a socket bound with it.
struct Umem {
    pool: Weak<PoolInner>,
    fd: std::sync::Weak<OwnedFd>,
    /// Registered with tx metadata room ([`Xsk::tx_meta`]).
    tx_meta: bool,
    /// Its first socket bound with `XDP_USE_SG`: every socket sharing it is.
    sg: bool,
}

/// Bytes reserved in front of each tx frame for a [`sys::TxMetadata`].
pub(crate) const TX_META_LEN: u32 = std::mem::size_of::<sys::TxMetadata>() as u32;

/// A live socket bound with `pool` as its UMEM, if any, whether the UMEM has
/// tx metadata room, and whether it is multi-buffer.
fn umem_owner(pool: &Pool) -> Option<(Arc<OwnedFd>, bool, bool)> {
    UMEMS.with(|u| {
        let mut u = u.borrow_mut();
        u.retain(|m| m.pool.strong_count() > 0 && m.fd.strong_count() > 0);
        u.iter()
            .find(|m| {
                m.pool
                    .upgrade()
                    .is_some_and(|p| Rc::ptr_eq(&p, &pool.inner))
            })
            .and_then(|m| Some((m.fd.upgrade()?, m.tx_meta, m.sg)))
    })
}

fn remember_umem(pool: &Pool, fd: &Arc<OwnedFd>, tx_meta: bool, sg: bool) {
    UMEMS.with(|u| {
        u.borrow_mut().push(Umem {
            pool: Rc::downgrade(&pool.inner),
            fd: Arc::downgrade(fd),
            tx_meta,
            sg,
        })
    });
}

/// Registers `pool` as the UMEM of socket `fd`, with room for tx metadata
/// where the kernel has it and the pool's headroom holds it; returns whether
/// it has that room.
fn register(fd: BorrowedFd<'_>, pool: &Pool, unaligned: bool, meta: bool) -> Result<bool> {
    let (base, len, stride) = pool.inner.memory();
    let reg = sys::UmemReg {
        addr: base as u64,
        len: len as u64,
        chunk_size: stride as u32,
        headroom: 0,
        flags: if unaligned {
            sys::XDP_UMEM_UNALIGNED_CHUNK_FLAG
        } else {
            0
        },
        tx_metadata_len: 0,
    };
    let refused = |e: std::io::Error| {
        match e.raw_os_error() {
        Some(libc::ENOBUFS) => Error::InvalidConfig {
            field: "pool",
            why: format!("registering {len} bytes of pool as a UMEM needs that much locked memory: raise RLIMIT_MEMLOCK (ulimit -l) or grant CAP_IPC_LOCK"),
        },
        _ => sys_err("XDP_UMEM_REG")(e),
    }
    };
    if meta && pool.config().headroom >= TX_META_LEN {
        let mut with_meta = reg;
        with_meta.flags |= sys::XDP_UMEM_TX_METADATA_LEN;
        with_meta.tx_metadata_len = TX_META_LEN;
        match sys::umem_reg(fd, &with_meta) {
            Ok(()) => return Ok(true),
            // A kernel without tx metadata: register without it.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(refused(e)),
        }
    }
    sys::umem_reg(fd, &reg).map_err(refused)?;
    Ok(false)
}

/// The UMEM's geometry for `pool`, or why the pool cannot be one.
pub(crate) fn geometry(pool: &Pool, frame: Option<u32>) -> Result<Geom> {
    let (_, _, stride) = pool.inner.memory();
    let page = crate::sys::mem::page_size();
    let bad = |why: String| Err(Error::InvalidConfig { field: "pool", why });
    if !(2048..=page).contains(&stride) {
        return bad(format!(
            "an xdp port's UMEM chunks are 2048 bytes up to a page ({page}); this pool's buffers are {stride} apart: give PoolConfig::buf_size 2048..={page}"
        ));
    }
    if let Some(f) = frame {
        if stride != f as usize {
            return bad(format!(
                "frame={f} needs the pool's buffers {f} bytes apart (PoolConfig::buf_size({f})); they are {stride}"
            ));
        }
    }
    Ok(Geom {
        stride: stride as u32,
        count: pool.capacity(),
        unaligned: frame.is_none(),
    })
}

fn sys_err(op: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::sys_or(op, super::errors::XSK_PERMISSION, e)
}

impl Xsk {
    /// A socket on `req`'s interface queue with `pool` as its UMEM (shared
    /// with the socket that registered it, if one did on this thread).
    pub(crate) fn bind(pool: &Pool, req: BindReq, counters: Arc<XdpCounters>) -> Result<Xsk> {
        let geom = geometry(pool, req.frame)?;
        let fd = req.ns.run_here_or_in(|| {
            sys::socket().map_err(|e| match e.raw_os_error() {
                Some(libc::EAFNOSUPPORT) => Error::Unsupported {
                    feature: "AF_XDP sockets",
                    hint: concat!(
                        "this kernel was built without them (CONFIG_XDP_SOCKETS): ",
                        "use a packet: port"
                    ),
                },
                _ => sys_err("socket(AF_XDP)")(e),
            })
        })?;
        let owner = umem_owner(pool);
        let want_sg = req.flags & sys::XDP_USE_SG != 0;
        let (tx_meta, sg) = match &owner {
            Some((_, tx_meta, sg)) if *sg != want_sg => {
                return Err(Error::InvalidConfig {
                    field: "multibuf",
                    why: format!(
                        "this pool is already the UMEM of sockets bound with multibuf={}: ports sharing one pool take the same multibuf setting",
                        if *sg { "on" } else { "off" }
                    ),
                })
            }
            Some((_, tx_meta, sg)) => (*tx_meta, *sg),
            // A multi-buffer frame's later chunks start at their first byte,
            // with no room for metadata before them: none then.
            None => (
                register(fd.as_fd(), pool, geom.unaligned, !want_sg)?,
                want_sg,
            ),
        };
        let owner = owner.map(|(fd, _, _)| fd);
        let n = req.ring;
        for opt in [
            sys::XDP_UMEM_FILL_RING,
            sys::XDP_UMEM_COMPLETION_RING,
            sys::XDP_RX_RING,
            sys::XDP_TX_RING,
        ] {
            sys::set_ring_size(fd.as_fd(), opt, n).map_err(sys_err("XDP ring size"))?;
        }
        let off = sys::mmap_offsets(fd.as_fd()).map_err(sys_err("XDP_MMAP_OFFSETS"))?;
        let map_err = sys_err("mmap an XDP ring");
        let fill =
            Ring::map(fd.as_fd(), sys::XDP_UMEM_PGOFF_FILL_RING, &off.fr, n).map_err(&map_err)?;
        let comp = Ring::map(fd.as_fd(), sys::XDP_UMEM_PGOFF_COMPLETION_RING, &off.cr, n)
            .map_err(&map_err)?;
        let rx = Ring::map(fd.as_fd(), sys::XDP_PGOFF_RX_RING, &off.rx, n).map_err(&map_err)?;
        let tx = Ring::map(fd.as_fd(), sys::XDP_PGOFF_TX_RING, &off.tx, n).map_err(&map_err)?;
        let (zerocopy, copy_reason) = bind_retrying(&fd, &req, owner.as_deref())?;
        let tx_budget = tx_budget(fd.as_fd(), zerocopy, n);
        let fd = Arc::new(fd);
        remember_umem(pool, &fd, tx_meta, sg);
        Ok(Xsk {
            sock: Some(fd),
            pool: pool.clone(),
            geom,
            fill,
            comp,
            rx,
            tx,
            fill_lent: Lent::new(geom.count),
            tx_lent: Lent::new(geom.count),
            zerocopy,
            copy_reason,
            tx_budget,
            tx_meta,
            sg,
            tx_last: Lent::new(geom.count),
            counters,
        })
    }

    /// The socket.
    pub(crate) fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.sock.as_deref().map(|f| f.as_fd())
    }

    /// The socket, for an engine to hold (declared before its binding, so it
    /// lets go first: the close waits for no one).
    pub(crate) fn socket(&self) -> Option<Arc<OwnedFd>> {
        self.sock.clone()
    }

    /// The socket, for statistics read from elsewhere (weakly held there).
    pub(crate) fn shared_fd(&self) -> std::sync::Weak<OwnedFd> {
        self.sock.as_ref().map(Arc::downgrade).unwrap_or_default()
    }

    /// Lends free pool buffers to the fill ring, up to the ring's room and at
    /// most `limit` lent in all; returns how many went.
    pub(crate) fn refill(&mut self, limit: usize) -> u32 {
        let want = limit.saturating_sub(self.fill_lent.count()) as u32;
        if want == 0 {
            return 0;
        }
        let room = self.fill.free(want).min(want);
        let mut n = 0;
        while n < room {
            let Some(buf) = self.pool.inner.take() else {
                break;
            };
            if !self.fill_lent.lend(buf) {
                // Cannot happen: a free buffer is never lent. Keep it out.
                super::counters::add(&self.counters.bad_descs, 1);
                continue;
            }
            self.fill.write(n, self.geom.addr(buf, 0));
            n += 1;
        }
        if n > 0 {
            self.fill.submit(n);
        }
        n
    }
}

/// Binds, trying zero-copy first where the mode allows, and again for a moment
/// while the queue is still held by a socket just closed (`EBUSY` right after
/// a close is the kernel's deferred teardown). Returns whether zero-copy is in
/// effect and, if it was tried and refused, why.
fn bind_retrying(
    fd: &OwnedFd,
    req: &BindReq,
    owner: Option<&OwnedFd>,
) -> Result<(bool, Option<String>)> {
    let shared = owner.map(|o| o.as_fd());
    let modes = sys::XDP_COPY | sys::XDP_ZEROCOPY;
    let extra = req.flags & (sys::XDP_USE_NEED_WAKEUP | sys::XDP_USE_SG);
    // A socket sharing a UMEM takes the first socket's mode, wakeup and
    // multi-buffer settings: no other flags.
    let attempts: Vec<u16> = if shared.is_some() {
        vec![sys::XDP_SHARED_UMEM]
    } else if req.flags & modes == 0 {
        vec![sys::XDP_ZEROCOPY | extra, sys::XDP_COPY | extra]
    } else {
        vec![req.flags]
    };
    let mut copy_reason = None;
    for (i, &flags) in attempts.iter().enumerate() {
        let r = retry_busy(Duration::from_secs(2), &[libc::EBUSY], || {
            sys::bind(fd.as_fd(), req.ifindex, req.queue, flags, shared)
        });
        match r {
            Ok(()) => {
                let zc = sys::options(fd.as_fd())
                    .map(|o| o & sys::XDP_OPTIONS_ZEROCOPY != 0)
                    .unwrap_or(false);
                return Ok((zc, copy_reason));
            }
            // Zero-copy refused in auto mode: copy, and say why.
            Err(e) if i + 1 < attempts.len() => {
                let why = match e.raw_os_error() {
                    Some(libc::EOPNOTSUPP) => "the driver has no AF_XDP zero-copy".to_string(),
                    _ => format!("zero-copy bind refused ({e})"),
                };
                copy_reason = Some(format!("{why}: copy mode"));
            }
            Err(e) => return Err(bind_error(e, req)),
        }
    }
    Err(Error::sys(
        "bind(AF_XDP)",
        std::io::Error::from_raw_os_error(libc::EINVAL),
    ))
}

fn bind_error(e: std::io::Error, req: &BindReq) -> Error {
    match e.raw_os_error() {
        Some(libc::EBUSY) => Error::InvalidConfig {
            field: "queue",
            why: format!(
                "interface queue {} is already bound by another XDP socket (another process or port): pick another queue=",
                req.queue
            ),
        },
        Some(libc::EINVAL) if req.flags & sys::XDP_USE_SG != 0 => Error::Unsupported {
            feature: "multi-buffer AF_XDP frames (multibuf=on, XDP_USE_SG)",
            hint: "the kernel refused the bind: multi-buffer sockets need Linux 6.6 (and a queue that exists); use multibuf=off and an MTU whose frame fits a chunk",
        },
        Some(libc::EINVAL) => Error::InvalidConfig {
            field: "queue",
            why: format!(
                "the interface has no queue {} (or refuses this socket's rings): check `ethtool -l`",
                req.queue
            ),
        },
        Some(libc::EOPNOTSUPP) => Error::Unsupported {
            feature: "AF_XDP zero-copy on this driver",
            hint: "use mode=copy or mode=auto",
        },
        Some(libc::ENETDOWN) => Error::InvalidConfig {
            field: "iface",
            why: "the interface is down: start the port first".into(),
        },
        _ => sys_err("bind(AF_XDP)")(e),
    }
}

impl Drop for Xsk {
    /// Closes the socket first (the kernel stops using the UMEM's buffers),
    /// then gives every buffer it still held back to the pool. A statistics
    /// read on another thread holds the socket for an instant; the close waits
    /// for it (a second at most, then the buffers are leaked, never reused
    /// while the kernel might write them).
    fn drop(&mut self) {
        let mut sock = self.sock.take();
        let deadline = Instant::now() + Duration::from_secs(1);
        while let Some(s) = sock {
            match Arc::try_unwrap(s) {
                Ok(fd) => {
                    self.counters.fold_closed(&fd);
                    drop(fd);
                    break;
                }
                Err(s) if Instant::now() < deadline => {
                    sock = Some(s);
                    std::thread::yield_now();
                }
                Err(s) => {
                    tracing::warn!(
                        fd = s.as_raw_fd(),
                        "xdp socket still held at close: its {} buffers are leaked",
                        self.fill_lent.count() + self.tx_lent.count()
                    );
                    return;
                }
            }
        }
        let pool = &self.pool.inner;
        self.fill_lent.drain(|b| pool.put(b));
        self.tx_lent.drain(|b| pool.put(b));
    }
}

/// How many frames one tx kick sends: in copy mode the send itself moves them,
/// 32 at most unless the kernel (6.17+) lets this socket move a whole ring's
/// worth per call, which is asked for; in zero-copy mode the kick only wakes
/// the driver, which sends everything queued.
fn tx_budget(fd: std::os::fd::BorrowedFd<'_>, zerocopy: bool, ring: u32) -> u32 {
    if zerocopy {
        return u32::MAX;
    }
    match sys::set_tx_budget(fd, ring) {
        Ok(()) => ring,
        Err(e) => {
            tracing::debug!(
                "XDP_MAX_TX_SKB_BUDGET {ring}: {e} (a kick sends {} frames)",
                sys::TX_BATCH_SIZE
            );
            sys::TX_BATCH_SIZE
        }
    }
}
