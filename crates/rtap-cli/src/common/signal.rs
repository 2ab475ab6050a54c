//! SIGINT/SIGTERM: a handler that only sets a flag, for loops to poll.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the handler once SIGINT or SIGTERM arrived.
pub static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    // An atomic store is async-signal-safe.
    STOP.store(true, Ordering::SeqCst);
}

/// Installs the handler for SIGINT and SIGTERM (with `SA_RESTART`, so blocking
/// calls elsewhere are not interrupted).
pub fn install() -> io::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: sigaction is plain data; all-zero is a valid starting value.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESTART;
        // SAFETY: sa.sa_mask is a live sigset_t.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: sa is fully initialised; the old action is not wanted.
        let r = unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// True once a stop signal arrived.
pub fn stopped() -> bool {
    STOP.load(Ordering::Relaxed)
}
