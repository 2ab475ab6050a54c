//! Port-wide statistics: the queues' counters summed, `imissed` from the device,
//! extended per-queue statistics by name, and resets (baselines, so the
//! single-writer queue counters are never written by anyone else).

use std::sync::atomic::Ordering;

use super::baseline::Baseline;
use super::Port;
use crate::error::{Error, Result};
use crate::queue::counters::QueueBlock;
use crate::stats::PortStats;
use crate::xstats::{self, XStat};

impl Port {
    fn base(&self) -> std::sync::MutexGuard<'_, Baseline> {
        self.base.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Per-queue and port-wide counters since the last reset. Once the
    /// interface is gone (deleted, its namespace destroyed) the queue counters
    /// are still there, and `imissed` is the last value read from the kernel.
    pub fn stats(&self) -> Result<PortStats> {
        use std::sync::atomic::Ordering::Relaxed;
        let missed = match self.link() {
            Ok(l) => {
                let m = self.dev.missed(&l, &self.queues);
                self.last_missed.store(m, Relaxed);
                m
            }
            Err(Error::DeviceVanished { .. }) => self.last_missed.load(Relaxed),
            Err(e) => return Err(e),
        };
        let b = self.base();
        let rx = self
            .queues
            .iter()
            .zip(&b.rx)
            .map(|(q, base)| q.totals().rx.snapshot().since(base))
            .collect();
        let tx = self
            .queues
            .iter()
            .zip(&b.tx)
            .map(|(q, base)| q.totals().tx.snapshot().since(base))
            .collect();
        Ok(PortStats::from_queues(
            rx,
            tx,
            missed.saturating_sub(b.imissed),
        ))
    }

    /// Extended per-queue statistics since the last reset, in a stable order:
    /// for each queue, `rx_q{N}_*` then `tx_q{N}_*`.
    pub fn xstats(&self) -> Vec<XStat> {
        let b = self.base();
        let mut out = Vec::new();
        for (i, q) in self.queues.iter().enumerate() {
            let id = q.id;
            let t = q.totals();
            for ((name, v), base) in xstats::rx_names(id).zip(rx_xvalues(&t)).zip(&b.rx_x[i]) {
                out.push(XStat {
                    name,
                    value: v.saturating_sub(*base),
                });
            }
            for ((name, v), base) in xstats::tx_names(id).zip(t.tx_x.snapshot()).zip(&b.tx_x[i]) {
                out.push(XStat {
                    name,
                    value: v.saturating_sub(*base),
                });
            }
            let first = out.len();
            self.dev.extra_xstats(q, &mut out);
            for x in &mut out[first..] {
                x.value = x
                    .value
                    .saturating_sub(b.extra.get(&x.name).copied().unwrap_or(0));
            }
        }
        out
    }

    /// One extended statistic by name (`rx_q0_size_64_packets`, ...).
    pub fn xstat(&self, name: &str) -> Option<u64> {
        self.xstats()
            .into_iter()
            .find(|x| x.name == name)
            .map(|x| x.value)
    }

    /// Sets every counter, basic and extended, back to zero.
    pub fn reset_stats(&self) -> Result<()> {
        let missed = self.dev.missed(&self.link()?, &self.queues);
        let mut b = self.base();
        let t: Vec<_> = self.queues.iter().map(|q| q.totals()).collect();
        b.rx_x = t.iter().map(|t| rx_xvalues(t)).collect();
        b.tx_x = t.iter().map(|t| t.tx_x.snapshot()).collect();
        b.rx = t.iter().map(|t| t.rx.snapshot()).collect();
        b.tx = t.iter().map(|t| t.tx.snapshot()).collect();
        b.imissed = missed;
        let mut extra = Vec::new();
        for q in &self.queues {
            self.dev.extra_xstats(q, &mut extra);
        }
        b.extra = extra.into_iter().map(|x| (x.name, x.value)).collect();
        Ok(())
    }
}

/// Rx xstats values of a queue: the classified counters, then alloc failures
/// and truncated frames from the basic counters.
fn rx_xvalues(c: &QueueBlock) -> Vec<u64> {
    let mut v = c.rx_x.snapshot();
    let s = c.rx.snapshot();
    v.push(s.nombuf);
    v.push(c.rx.truncated.load(Ordering::Relaxed));
    v
}
