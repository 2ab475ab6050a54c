//! Helpers shared by the subcommands: CPU lists and CPU time, named network
//! namespaces, the stop signal, text tables, argument checks.

use anyhow::{anyhow, Context, Result};
pub mod cpu;
pub mod netns;
pub mod signal;
pub mod table;

use std::time::Duration;

/// A positive, finite number of seconds.
pub fn seconds(what: &str, s: f64) -> Result<Duration> {
    if !(s.is_finite() && s > 0.0) {
        return Err(anyhow!(
            "{what} must be a positive number of seconds, got {s}"
        ));
    }
    Duration::try_from_secs_f64(s).with_context(|| format!("{what} {s}"))
}
