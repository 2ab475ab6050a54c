//! Timing one measured region: wall time, the measuring thread's CPU time and
//! the process's SQPOLL threads' CPU time, per packet.

use std::time::Instant;

use crate::common::cpu::{sq_threads_cpu_s, thread_cpu_s};

/// One run: packets per second of wall time, and CPU ns per packet.
#[derive(Clone, Copy, Debug)]
pub(super) struct Run {
    pub pps: f64,
    /// CPU ns per packet of the measuring (application) thread.
    pub cpu_ns: f64,
    /// CPU ns per packet of the process's SQPOLL threads (0 without one).
    pub sq_ns: f64,
}

/// Times a region in wall, thread-CPU and SQ-thread-CPU time.
pub(super) struct Clock {
    /// When the region started.
    pub wall: Instant,
    cpu: f64,
    sq: f64,
}

impl Clock {
    /// Starts timing now.
    pub fn start() -> Clock {
        Clock {
            wall: Instant::now(),
            cpu: thread_cpu_s(),
            sq: sq_threads_cpu_s(),
        }
    }

    /// The run of `packets` packets since [`Clock::start`].
    pub fn run(&self, packets: u64) -> Run {
        let el = self.wall.elapsed().as_secs_f64();
        let n = packets.max(1) as f64;
        Run {
            pps: packets as f64 / el,
            cpu_ns: (thread_cpu_s() - self.cpu) * 1e9 / n,
            sq_ns: (sq_threads_cpu_s() - self.sq) * 1e9 / n,
        }
    }
}
