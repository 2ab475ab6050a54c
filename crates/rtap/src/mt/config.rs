//! How a multi-thread queue pair is set up: its pool, bursts, handoff depth,
//! and who does its I/O.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::pool::PoolConfig;

/// Settings of a multi-thread queue pair.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MtConfig {
    /// The driver's pool (received packets live in it). Default: 4096
    /// buffers of 2176 bytes.
    pub pool: PoolConfig,
    /// Packets per burst. Default 32.
    pub burst: usize,
    /// Packets each handoff queue holds (received, to send). Default 1024.
    pub depth: usize,
    /// Empty rounds the driver spins before it sleeps. Default 64.
    pub spin: u32,
    /// How long a stop waits for queued packets to go out. Default 1 s.
    pub stop_timeout: Duration,
    /// The driver thread's name. Default `rtap-q{N}`.
    pub thread_name: Option<String>,
    /// Who does the queue pair's I/O. Default [`MtDrive::Thread`].
    pub drive: MtDrive,
}

/// Who does a multi-thread queue pair's I/O.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MtDrive {
    /// A driver thread per queue pair moves bursts between the kernel
    /// (io_uring where the port has it) and the handles. Any device, any
    /// executor; costs a thread and, when a side sleeps, a wakeup per burst.
    #[default]
    Thread,
    /// The tasks do the I/O themselves, on whichever thread polls them: a
    /// task that finds nothing received reads a burst, a task that sends
    /// writes what waits, one thread at a time; when the kernel has nothing,
    /// tokio's reactor wakes the waiting tasks. No extra thread and no
    /// handoff wakeups, as a tokio application that reads its fd itself
    /// does. Needs feature `tokio`, a tokio runtime (with its I/O driver)
    /// when the queue opens, and a device whose queues may move between
    /// threads: TAP and TUN ports (their queues use `read`/`write` here, not
    /// io_uring, which is best driven by one thread) and AF_PACKET ports
    /// (their tx rings kicked with `send()` here, whatever the port's kick:
    /// the io_uring kick's ring has one issuer). Elsewhere
    /// [`MtQueue::spawn`](super::MtQueue::spawn) says why not. A device deleted while every task
    /// waits is noticed when one looks again (the kernel marks the fd with an
    /// error, not as readable), not within a nap as the driver thread does.
    Tasks,
}

impl Default for MtConfig {
    fn default() -> Self {
        MtConfig {
            pool: PoolConfig::default(),
            burst: 32,
            depth: 1024,
            spin: 64,
            stop_timeout: Duration::from_secs(1),
            thread_name: None,
            drive: MtDrive::Thread,
        }
    }
}

impl MtConfig {
    /// Sets the driver's pool.
    pub fn pool(mut self, pool: PoolConfig) -> Self {
        self.pool = pool;
        self
    }

    /// Sets the burst size.
    pub fn burst(mut self, n: usize) -> Self {
        self.burst = n;
        self
    }

    /// Sets the handoff queues' depth.
    pub fn depth(mut self, n: usize) -> Self {
        self.depth = n;
        self
    }

    /// Sets the empty rounds before the driver sleeps (0: sleep at once).
    pub fn spin(mut self, rounds: u32) -> Self {
        self.spin = rounds;
        self
    }

    /// Sets who does the I/O.
    pub fn drive(mut self, drive: MtDrive) -> Self {
        self.drive = drive;
        self
    }

    pub(super) fn validate(&self) -> Result<()> {
        if self.burst == 0 || self.burst > 1024 {
            return Err(Error::InvalidConfig {
                field: "mt burst",
                why: format!("{} must be 1..=1024", self.burst),
            });
        }
        if self.depth < self.burst {
            return Err(Error::InvalidConfig {
                field: "mt depth",
                why: format!("{} must be at least the burst ({})", self.depth, self.burst),
            });
        }
        self.pool.validate().map(|_| ())
    }
}
