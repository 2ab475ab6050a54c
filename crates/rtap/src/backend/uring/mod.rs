//! The io_uring backend: ring construction (with feature probing and logged
//! fallbacks) and the per-queue rx and tx engines.

pub(crate) mod kick;
mod probe;
pub(crate) mod rx_multishot;
pub(crate) mod rx_posted;
pub(crate) mod tx;

pub(crate) use probe::{check_available, read_multishot_supported};
pub use probe::{probe, UringProbe};

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use io_uring::{opcode, types, IoUring};

use crate::error::{Error, Result};
// The ring vocabulary queues report lives in the queue layer; re-exported here
// where the ring options that produce it are.
pub use crate::queue::features::{RingFeatures, RxMode, TaskRun};

/// An SQPOLL kernel thread for a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqPoll {
    /// Milliseconds the thread spins without work before it sleeps.
    pub idle_ms: u32,
    /// CPU to pin the thread to (`IORING_SETUP_SQ_AFF`).
    pub cpu: Option<u32>,
}

impl SqPoll {
    /// A thread that sleeps after `idle_ms` milliseconds without work, unpinned.
    pub fn new(idle_ms: u32) -> SqPoll {
        SqPoll { idle_ms, cpu: None }
    }

    /// Pins the thread to `cpu`.
    pub fn cpu(mut self, cpu: u32) -> SqPoll {
        self.cpu = Some(cpu);
        self
    }
}

/// Options for each queue's io_uring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RingConfig {
    /// Submission queue entries of a tx ring (and in-flight tx packets). Default 1024.
    pub tx_entries: u32,
    /// Reads kept posted on an rx ring (posted-read mode). Default 256. Where
    /// the pool's free buffers cannot hold them (or frames take chains of
    /// buffers), fewer: half the free buffers' worth when the queue opens, at
    /// least 4.
    pub rx_posted: u32,
    /// SQPOLL thread; default none. All rings of a port share one kernel SQ
    /// thread (`IORING_SETUP_ATTACH_WQ`; [`RingFeatures::sqpoll_shared`] says so).
    pub sqpoll: Option<SqPoll>,
    /// `IORING_SETUP_SINGLE_ISSUER`; default on (a queue is driven by one thread).
    pub single_issuer: bool,
    /// Completion work mode; default [`TaskRun::Coop`]. Ignored with SQPOLL (the
    /// SQ thread runs completion work; the ring reports [`TaskRun::Default`]).
    pub taskrun: TaskRun,
    /// Register the tap fd with the ring (`IOSQE_FIXED_FILE`); default on.
    pub fixed_files: bool,
    /// How rx keeps reads in the kernel.
    pub rx_mode: RxMode,
}

// `RxMode` is the queue layer's; what it resolves to is this engine's knowledge.
impl RxMode {
    /// The engine this mode gives on the running kernel: [`RxMode::Multishot`] or
    /// [`RxMode::Posted`], with the reason when the kernel forced posted reads on
    /// `Auto` (multishot read needs Linux >= 6.7). `fits_one_buffer`: a whole
    /// frame fits one pool buffer, which multishot needs (else `Auto` picks
    /// posted reads by design, not as a fallback). An explicit `Multishot` on a
    /// kernel without it is [`Error::Unsupported`].
    pub fn resolve(self, fits_one_buffer: bool) -> Result<(RxMode, Option<&'static str>)> {
        const OLD_KERNEL: &str =
            "multishot read needs Linux >= 6.7 (IORING_OP_READ_MULTISHOT unsupported): posted reads";
        match self {
            RxMode::Posted => Ok((RxMode::Posted, None)),
            RxMode::Multishot if read_multishot_supported() => Ok((RxMode::Multishot, None)),
            RxMode::Multishot => Err(Error::Unsupported {
                feature: "rx_mode multishot (IORING_OP_READ_MULTISHOT)",
                hint: "Linux >= 6.7 needed; use rx_mode auto or posted",
            }),
            RxMode::Auto if !fits_one_buffer => Ok((RxMode::Posted, None)),
            RxMode::Auto if read_multishot_supported() => Ok((RxMode::Multishot, None)),
            RxMode::Auto => Ok((RxMode::Posted, Some(OLD_KERNEL))),
        }
    }
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            tx_entries: 1024,
            rx_posted: 256,
            sqpoll: None,
            single_issuer: true,
            taskrun: TaskRun::Coop,
            fixed_files: true,
            rx_mode: RxMode::default(),
        }
    }
}

impl RingConfig {
    /// Sets `tx_entries`.
    pub fn tx_entries(mut self, n: u32) -> Self {
        self.tx_entries = n;
        self
    }

    /// Sets `rx_posted`.
    pub fn rx_posted(mut self, n: u32) -> Self {
        self.rx_posted = n;
        self
    }

    /// Sets (or, with `None`, clears) the SQPOLL thread.
    pub fn sqpoll(mut self, sp: Option<SqPoll>) -> Self {
        self.sqpoll = sp;
        self
    }

    /// Sets `single_issuer`.
    pub fn single_issuer(mut self, on: bool) -> Self {
        self.single_issuer = on;
        self
    }

    /// Sets the task-run mode.
    pub fn taskrun(mut self, t: TaskRun) -> Self {
        self.taskrun = t;
        self
    }

    /// Sets `fixed_files`.
    pub fn fixed_files(mut self, on: bool) -> Self {
        self.fixed_files = on;
        self
    }

    /// Sets the rx mode.
    pub fn rx_mode(mut self, m: RxMode) -> Self {
        self.rx_mode = m;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let ok = |v: u32| (1..=32768).contains(&v);
        if !ok(self.tx_entries) || !ok(self.rx_posted) {
            return Err(Error::InvalidConfig {
                field: "ring",
                why: format!(
                    "sizes must be 1..=32768 (tx_entries {}, rx_posted {})",
                    self.tx_entries, self.rx_posted
                ),
            });
        }
        Ok(())
    }
}

/// The file a ring's SQEs target.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target {
    Fd(RawFd),
    Fixed,
}

/// A built ring with the target to use in SQEs.
pub(crate) struct Ring {
    pub ring: IoUring,
    pub target: Target,
    pub features: RingFeatures,
}

/// The ring that owns an SQPOLL kernel thread. Every SQPOLL ring with the same
/// settings, of every port in the process, attaches to it
/// (`IORING_SETUP_ATTACH_WQ`) and shares its one kernel thread: a forwarder
/// between two ports has one SQ thread, not one per ring or per port. It never
/// carries I/O; the kernel keeps the shared thread alive for as long as any
/// attached ring exists, so rings may outlive it.
pub(crate) struct SqAnchor {
    // Owned only to keep the ring (and so its SQ thread) alive; never used after
    // setup. The Mutex makes the port Sync.
    _ring: std::sync::Mutex<IoUring>,
    fd: RawFd,
}

impl SqAnchor {
    /// The process's anchor for `sp` (idle time and CPU): the existing one while
    /// any port holds it, else a new one; `None` (logged) if the kernel refuses.
    pub(crate) fn shared(sp: SqPoll) -> Option<std::sync::Arc<SqAnchor>> {
        use std::collections::HashMap;
        use std::sync::{Arc, Mutex, Weak};
        type Registry = Mutex<HashMap<(u32, Option<u32>), Weak<SqAnchor>>>;
        static ANCHORS: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
        let mut map = ANCHORS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let key = (sp.idle_ms, sp.cpu);
        if let Some(a) = map.get(&key).and_then(Weak::upgrade) {
            return Some(a);
        }
        let a = Arc::new(SqAnchor::new(sp)?);
        map.retain(|_, w| w.strong_count() > 0);
        map.insert(key, Arc::downgrade(&a));
        Some(a)
    }

    /// Creates an anchor for `sp`, or `None` (logged) if the kernel refuses.
    fn new(sp: SqPoll) -> Option<SqAnchor> {
        let build = |cpu: Option<u32>| {
            let mut b = IoUring::builder();
            b.setup_sqpoll(sp.idle_ms);
            if let Some(c) = cpu {
                b.setup_sqpoll_cpu(c);
            }
            b.build(2)
        };
        let ring = match build(sp.cpu) {
            Ok(r) => r,
            Err(_) if sp.cpu.is_some() => build(None).ok()?,
            Err(e) => {
                tracing::warn!("io_uring: no shared SQPOLL thread ({e}); each ring gets its own");
                return None;
            }
        };
        let fd = ring.as_raw_fd();
        Some(SqAnchor {
            _ring: std::sync::Mutex::new(ring),
            fd,
        })
    }

    /// The anchor ring's fd, for `IORING_SETUP_ATTACH_WQ`.
    pub(crate) fn fd(&self) -> RawFd {
        self.fd
    }
}

/// Builds a ring for `fd` with `sq` entries and `cq` completion entries, dropping
/// unsupported options one at a time (each drop is logged and recorded). With
/// SQPOLL and an `attach` ring fd, the ring shares that ring's SQ thread.
pub(crate) fn build_ring(
    cfg: &RingConfig,
    sq: u32,
    cq: u32,
    fd: RawFd,
    attach: Option<RawFd>,
) -> Result<Ring> {
    let mut want = *cfg;
    let mut attach = attach.filter(|_| want.sqpoll.is_some());
    let mut fallbacks = Vec::new();
    if want.sqpoll.is_some() && want.taskrun != TaskRun::Default {
        // The SQ thread runs completion work itself; the kernel refuses COOP/DEFER
        // task run with SQPOLL. Not a fallback: those modes do not apply here.
        want.taskrun = TaskRun::Default;
    }
    let ring = loop {
        let mut b = IoUring::builder();
        b.setup_cqsize(cq.max(sq));
        if let Some(sp) = want.sqpoll {
            b.setup_sqpoll(sp.idle_ms);
            if let Some(cpu) = sp.cpu {
                b.setup_sqpoll_cpu(cpu);
            }
            if let Some(a) = attach {
                b.setup_attach_wq(a);
            }
        }
        if want.single_issuer {
            b.setup_single_issuer();
        }
        match want.taskrun {
            TaskRun::Default => {}
            TaskRun::Coop => {
                b.setup_coop_taskrun();
                b.setup_taskrun_flag();
            }
            TaskRun::Defer => {
                b.setup_defer_taskrun();
                b.setup_taskrun_flag();
            }
        }
        match b.build(sq) {
            Ok(r) => break r,
            Err(e) => {
                let errno = e.raw_os_error().unwrap_or(0);
                if matches!(errno, libc::ENOSYS | libc::EPERM) && want.sqpoll.is_none() {
                    return Err(Error::UringUnavailable { why: e.to_string() });
                }
                // Drop the most exotic option first.
                let why = if attach.is_some() {
                    attach = None;
                    "sharing the port's SQPOLL thread refused, the ring gets its own"
                } else if want.taskrun == TaskRun::Defer {
                    want.taskrun = TaskRun::Coop;
                    "DEFER_TASKRUN refused, using COOP_TASKRUN"
                } else if want.sqpoll.is_some_and(|s| s.cpu.is_some()) {
                    want.sqpoll = want.sqpoll.map(|s| SqPoll { cpu: None, ..s });
                    "SQPOLL cpu affinity refused, SQ thread unpinned"
                } else if want.sqpoll.is_some() {
                    want.sqpoll = None;
                    "SQPOLL refused, submitting from the queue's thread"
                } else if want.taskrun == TaskRun::Coop {
                    want.taskrun = TaskRun::Default;
                    "COOP_TASKRUN refused, using default task work"
                } else if want.single_issuer {
                    want.single_issuer = false;
                    "SINGLE_ISSUER refused"
                } else {
                    return Err(Error::UringUnavailable { why: e.to_string() });
                };
                let msg = format!("{why} ({e})");
                tracing::warn!("io_uring setup: {msg}");
                fallbacks.push(msg);
            }
        }
    };
    let mut target = Target::Fd(fd);
    let mut fixed_file = false;
    if want.fixed_files {
        match ring.submitter().register_files(&[fd]) {
            Ok(()) => {
                target = Target::Fixed;
                fixed_file = true;
            }
            Err(e) => {
                let msg = format!("registered files refused, using plain fd ({e})");
                tracing::warn!("io_uring setup: {msg}");
                fallbacks.push(msg);
            }
        }
    }
    let features = RingFeatures {
        sqpoll: want.sqpoll.is_some(),
        single_issuer: want.single_issuer,
        taskrun: want.taskrun,
        fixed_file,
        sqpoll_shared: want.sqpoll.is_some() && attach.is_some(),
        rx_mode: None,
        fallbacks,
    };
    Ok(Ring {
        ring,
        target,
        features,
    })
}

/// Submission target as the crate's fd type.
macro_rules! with_target {
    ($t:expr, |$f:ident| $body:expr) => {
        match $t {
            $crate::backend::uring::Target::Fd(raw) => {
                let $f = io_uring::types::Fd(raw);
                $body
            }
            $crate::backend::uring::Target::Fixed => {
                let $f = io_uring::types::Fixed(0);
                $body
            }
        }
    };
}
pub(crate) use with_target;

/// user_data of the cancel request a queue issues on teardown.
pub(crate) const CANCEL_TAG: u64 = u64::MAX;

/// Cancels everything on the ring's target and reaps until `outstanding` reaches
/// zero or `timeout` passes. `on_cqe` gets every (user_data, res, flags) reaped and
/// says whether that completion ended an operation (a multishot request's
/// intermediate completions do not). Returns false on timeout (the caller must then
/// leak what is still lent out).
///
/// Once nothing is in flight it also unregisters the tap fd from the ring: a
/// registered file is otherwise released only when the kernel tears the ring down,
/// asynchronously and tens of milliseconds after the ring fd is closed, and until
/// then the tap queue stays attached (the kernel keeps steering frames to it and a
/// non-persistent interface outlives its port).
pub(crate) fn cancel_and_drain(
    ring: &mut IoUring,
    target: Target,
    outstanding: usize,
    timeout: std::time::Duration,
    on_cqe: impl FnMut(u64, i32, u32) -> bool,
) -> bool {
    let drained = cancel_and_reap(ring, target, outstanding, timeout, on_cqe);
    if drained && matches!(target, Target::Fixed) {
        if let Err(e) = ring.submitter().unregister_files() {
            tracing::debug!("io_uring unregister tap fd: {e}");
        }
    }
    drained
}

fn cancel_and_reap(
    ring: &mut IoUring,
    target: Target,
    mut outstanding: usize,
    timeout: std::time::Duration,
    mut on_cqe: impl FnMut(u64, i32, u32) -> bool,
) -> bool {
    if outstanding == 0 {
        return true;
    }
    let cancel = with_target!(target, |f| opcode::AsyncCancel2::new(
        types::CancelBuilder::fd(f).all()
    )
    .build()
    .user_data(CANCEL_TAG));
    let deadline = std::time::Instant::now() + timeout;
    while outstanding > 0 {
        // Cancel again on every round: a hard-linked chain issues its next request
        // when the previous one is cancelled, and that one must be cancelled too.
        // SAFETY: the cancel SQE references no memory.
        if unsafe { ring.submission().push(&cancel) }.is_err() {
            let _ = ring.submit();
        }
        let ts = types::Timespec::new().nsec(50_000_000);
        let args = types::SubmitArgs::new().timespec(&ts);
        let _ = ring.submitter().submit_with_args(1, &args);
        for cqe in ring.completion() {
            if cqe.user_data() == CANCEL_TAG {
                continue;
            }
            if on_cqe(cqe.user_data(), cqe.result(), cqe.flags()) {
                outstanding -= 1;
            }
        }
        if std::time::Instant::now() > deadline {
            return outstanding == 0;
        }
    }
    true
}

/// Lets the kernel run completion work it deferred (COOP/DEFER task run) when
/// the completion queue is empty but work is flagged: one `io_uring_enter`, only then.
pub(crate) fn run_pending_work(ring: &mut IoUring) {
    if ring.completion().is_empty() && ring.submission().taskrun() {
        let _ = ring.submit();
    }
}

/// Runs pending completion work, then copies up to `done.len()` completions as
/// (user_data, result, flags) into `done` and returns how many.
pub(crate) fn reap_into(ring: &mut IoUring, done: &mut [(u64, i32, u32)]) -> usize {
    run_pending_work(ring);
    let mut n = 0;
    for cqe in ring.completion().take(done.len()) {
        done[n] = (cqe.user_data(), cqe.result(), cqe.flags());
        n += 1;
    }
    n
}

/// Registers (or, with `None`, unregisters) an eventfd the kernel signals when
/// the ring posts completions.
pub(crate) fn set_eventfd(ring: &IoUring, fd: Option<RawFd>) -> io::Result<()> {
    match fd {
        Some(fd) => ring.submitter().register_eventfd(fd),
        None => ring.submitter().unregister_eventfd(),
    }
}

/// Blocks until the ring has a completion or `timeout` passes; true if one is
/// there. Runs pending completion work first (COOP/DEFER task run), so it works
/// under every task-run mode.
pub(crate) fn wait_cqe(ring: &mut IoUring, timeout: std::time::Duration) -> io::Result<bool> {
    if !ring.completion().is_empty() {
        return Ok(true);
    }
    let ts = types::Timespec::from(timeout);
    let args = types::SubmitArgs::new().timespec(&ts);
    match ring.submitter().submit_with_args(1, &args) {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
            ) => {}
        Err(e) => return Err(e),
    }
    Ok(!ring.completion().is_empty())
}
