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
        crate::sys::on_signal(sig, on_signal)?;
    }
    Ok(())
}

/// True once a stop signal arrived.
pub fn stopped() -> bool {
    STOP.load(Ordering::Relaxed)
}
