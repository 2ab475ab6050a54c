//! The latency test: UDP ping-pong over the TCP test's paths, rounds merged
//! into one histogram per contender.

use super::contenders::{TcpContender, LAT_CONTENDERS, TCP_CONTENDERS};
use super::results::{Cell, Lat, Unit};
use super::tcp::over_path;
use super::{chosen, interrupted, median, settle, BenchOpts};
use anyhow::{anyhow, Result};

/// The lat test: `rounds` rounds of `samples` round trips per contender,
/// interleaved; each cell's percentiles are over all its rounds' samples.
pub(super) fn run(
    opts: &BenchOpts,
    rounds: usize,
    samples: u64,
    progress: &mut impl FnMut(&str),
) -> Result<Vec<Cell>> {
    let who: Vec<&TcpContender> = TCP_CONTENDERS
        .iter()
        .filter(|c| LAT_CONTENDERS.contains(&c.name))
        .filter(|c| chosen(opts, c.name))
        .collect();
    let mut merged: Vec<Option<super::latency::LatReport>> = vec![None; who.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); who.len()];
    for rep in 0..rounds {
        for (i, c) in who.iter().enumerate() {
            interrupted()?;
            settle();
            let r = over_path(c, opts, |a, b| {
                super::latency::run(
                    a,
                    b,
                    crate::demo::ADDR_B,
                    samples,
                    &crate::common::signal::STOP,
                )
            })?;
            let l = r.traffic?;
            progress(&format!(
                " lat {:<16} run {}/{rounds}: p50 {:>7.1} us, p99 {:>7.1} us, p99.9 {:>7.1} us, {} lost, forwarder {:>3.0} % of a core",
                c.name,
                rep + 1,
                l.quantile_us(0.5),
                l.quantile_us(0.99),
                l.quantile_us(0.999),
                l.lost,
                r.fwd_cpu * 100.0
            ));
            cpu[i].push(r.fwd_cpu);
            match &mut merged[i] {
                Some(m) => {
                    m.hist
                        .add(&l.hist)
                        .map_err(|e| anyhow!("merge histograms: {e:?}"))?;
                    m.lost += l.lost;
                }
                None => merged[i] = Some(l),
            }
        }
    }
    Ok(who
        .iter()
        .zip(merged)
        .zip(cpu)
        .filter_map(|((c, m), cpu)| {
            let m = m?;
            let lat = Lat {
                p50_us: m.quantile_us(0.5),
                p99_us: m.quantile_us(0.99),
                p999_us: m.quantile_us(0.999),
                max_us: m.hist.max() as f64 / 1e3,
                mean_us: m.hist.mean() / 1e3,
                samples: m.samples(),
                lost: m.lost,
            };
            Some(Cell {
                test: "lat",
                contender: c.name,
                unit: Unit::Latency,
                rate: lat.p50_us,
                cpu: median(cpu),
                sq_cpu: 0.0,
                host_cpu: 0.0,
                lat: Some(lat),
            })
        })
        .collect())
}
