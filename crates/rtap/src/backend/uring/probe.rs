//! What the running kernel's io_uring offers: a probe for `rtap info` and the
//! backend choice, and the cached opcode checks queues use to pick an engine.

use std::io;
use std::sync::OnceLock;

use io_uring::{opcode, IoUring, Probe};

/// What the running kernel's io_uring offers (for `rtap info` and backend choice).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UringProbe {
    /// A ring could be created at all.
    pub available: bool,
    /// Why not, if not.
    pub error: Option<String>,
    /// `IORING_OP_READ_MULTISHOT`.
    pub read_multishot: bool,
    /// `IORING_OP_READV`/`WRITEV`.
    pub readv_writev: bool,
    /// `IORING_OP_ASYNC_CANCEL`.
    pub async_cancel: bool,
    /// `IORING_OP_RECV_ZC` (zero-copy receive).
    pub recv_zc: bool,
    /// An SQPOLL ring could be created.
    pub sqpoll: bool,
    /// Provided buffer rings (`IORING_REGISTER_PBUF_RING`).
    pub buf_ring: bool,
}

/// Probes io_uring: creates a tiny ring, asks for the supported opcodes, and tries
/// an SQPOLL ring and a provided buffer ring.
pub fn probe() -> UringProbe {
    let ring = match IoUring::new(4) {
        Ok(r) => r,
        Err(e) => {
            return UringProbe {
                available: false,
                error: Some(describe_setup_error(&e)),
                ..Default::default()
            }
        }
    };
    let mut p = Probe::new();
    let mut out = UringProbe {
        available: true,
        ..Default::default()
    };
    if ring.submitter().register_probe(&mut p).is_ok() {
        out.read_multishot = p.is_supported(opcode::ReadMulti::CODE);
        out.readv_writev =
            p.is_supported(opcode::Readv::CODE) && p.is_supported(opcode::Writev::CODE);
        out.async_cancel = p.is_supported(opcode::AsyncCancel2::CODE);
        out.recv_zc = p.is_supported(opcode::RecvZc::CODE);
    }
    out.sqpoll = IoUring::<io_uring::squeue::Entry, io_uring::cqueue::Entry>::builder()
        .setup_sqpoll(10)
        .build(4)
        .is_ok();
    out.buf_ring = probe_buf_ring(&ring);
    out
}

/// Cheap check that a ring can be created at all.
pub fn check_available() -> std::result::Result<(), String> {
    IoUring::new(2)
        .map(drop)
        .map_err(|e| describe_setup_error(&e))
}

/// Turns an `io_uring_setup` failure into advice.
fn describe_setup_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOSYS) => {
            "io_uring_setup: not implemented (kernel built without io_uring, or blocked by seccomp)"
                .into()
        }
        Some(libc::EPERM) => {
            "io_uring_setup: operation not permitted (sysctl kernel.io_uring_disabled, or seccomp)"
                .into()
        }
        Some(libc::ENOMEM) => {
            "io_uring_setup: out of memory (RLIMIT_MEMLOCK on older kernels)".into()
        }
        _ => format!("io_uring_setup: {e}"),
    }
}

/// True if this kernel accepts a provided buffer ring registration.
pub(crate) fn probe_buf_ring(ring: &IoUring) -> bool {
    let Ok(region) = crate::sys::mem::Region::new(4096) else {
        return false;
    };
    // SAFETY: region is page-aligned, 4096 bytes, enough for 8 ring entries, and it
    // outlives the registration (unregistered just below).
    let ok = unsafe {
        ring.submitter()
            .register_buf_ring_with_flags(region.as_ptr() as u64, 8, 7, 0)
            .is_ok()
    };
    if ok {
        let _ = ring.submitter().unregister_buf_ring(7);
    }
    ok
}

/// True if the kernel has `IORING_OP_READ_MULTISHOT` (Linux >= 6.7). Asked once
/// per process; false if io_uring cannot be set up at all.
pub(crate) fn read_multishot_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let Ok(ring) = IoUring::new(2) else {
            return false;
        };
        let mut p = Probe::new();
        ring.submitter().register_probe(&mut p).is_ok() && p.is_supported(opcode::ReadMulti::CODE)
    })
}
