//! CPU lists (`0,2-3`) and pinning the calling thread to one CPU.

use anyhow::{anyhow, Context, Result};

/// Parses a CPU list as `taskset -c` and the kernel's cpuset files write it:
/// comma-separated numbers and inclusive ranges (`0,2-3,8`). Order is kept
/// (`--cpus 1,0` pins worker 0 to CPU 1); a CPU named twice is an error.
pub fn parse_list(s: &str) -> Result<Vec<usize>> {
    let mut out: Vec<usize> = Vec::new();
    let num = |v: &str| -> Result<usize> {
        v.trim()
            .parse::<usize>()
            .map_err(|_| anyhow!("CPU list {s:?}: {v:?} is not a CPU number"))
    };
    for part in s.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let n = num(part)?;
                (n, n)
            }
        };
        if hi < lo {
            return Err(anyhow!("CPU list {s:?}: range {part:?} runs backwards"));
        }
        if hi >= libc::CPU_SETSIZE as usize {
            return Err(anyhow!(
                "CPU list {s:?}: CPU {hi} is beyond the largest CPU number {}",
                libc::CPU_SETSIZE - 1
            ));
        }
        for c in lo..=hi {
            if out.contains(&c) {
                return Err(anyhow!("CPU list {s:?}: CPU {c} is named twice"));
            }
            out.push(c);
        }
    }
    Ok(out)
}

pub use crate::sys::{affinity as allowed, pin, process_cpu_s, thread_cpu_s};

/// Checks that every CPU of `list` is one this process may use.
pub fn check_usable(list: &[usize]) -> Result<()> {
    let ok = allowed().context("sched_getaffinity")?;
    for c in list {
        if !ok.contains(c) {
            return Err(anyhow!(
                "CPU {c} is not available to this process (usable: {})",
                fmt_list(&ok)
            ));
        }
    }
    Ok(())
}

/// Formats CPUs as a list with ranges (`0-3,6`).
pub fn fmt_list(cpus: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        parts.push(if j > i {
            format!("{}-{}", cpus[i], cpus[j])
        } else {
            cpus[i].to_string()
        });
        i = j + 1;
    }
    parts.join(",")
}

// ---------------------------------------------------------------- CPU time

/// Busy and total CPU time of the machine so far (`/proc/stat`, clock ticks).
pub fn host_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum(); // user..steal; guest is inside user
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Clock ticks per second of `/proc/stat`.
pub fn clk_tck() -> f64 {
    crate::sys::clk_tck().unwrap_or(100.0)
}

/// Busy cores of the machine between two [`host_ticks`] samples (1.0 = one
/// core busy all the time).
pub fn busy_cores(before: (u64, u64), after: (u64, u64)) -> f64 {
    let busy = after.0.saturating_sub(before.0) as f64;
    let total = after.1.saturating_sub(before.1).max(1) as f64;
    busy / total * cpus()
}

/// Online CPUs (for turning `/proc/stat` ticks into cores).
pub fn cpus() -> f64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

/// CPU time (user + system) the io_uring SQPOLL kernel threads of this process
/// (`iou-sqp-PID`) have used so far, in seconds.
pub fn sq_threads_cpu_s() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut ticks = 0u64;
    for t in tasks.flatten() {
        let is_sq =
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with("iou-sqp"));
        if !is_sq {
            continue;
        }
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised comm: state is field 3, utime 14, stime 15.
        if let Some((_, rest)) = stat.rsplit_once(')') {
            let f: Vec<u64> = rest
                .split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|x| x.parse().ok())
                .collect();
            ticks += f.iter().sum::<u64>();
        }
    }
    ticks as f64 / clk_tck()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_ranges() {
        assert_eq!(parse_list("0").unwrap(), vec![0]);
        assert_eq!(parse_list("1,0").unwrap(), vec![1, 0]);
        assert_eq!(parse_list("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert_eq!(parse_list(" 3 - 4 ").unwrap(), vec![3, 4]);
        assert!(parse_list("").is_err());
        assert!(parse_list("a").is_err());
        assert!(parse_list("3-1").is_err());
        assert!(parse_list("1,1").unwrap_err().to_string().contains("twice"));
        assert!(parse_list("0-1,1").is_err());
        assert!(parse_list("100000").is_err());
    }

    #[test]
    fn formats_ranges() {
        assert_eq!(fmt_list(&[0, 1, 2, 3, 6]), "0-3,6");
        assert_eq!(fmt_list(&[1]), "1");
        assert_eq!(fmt_list(&[]), "");
        assert_eq!(fmt_list(&[0, 2, 3]), "0,2-3");
    }

    #[test]
    fn pinning_takes_effect() {
        let cpus = allowed().unwrap();
        let last = *cpus.last().unwrap();
        std::thread::spawn(move || {
            pin(last).unwrap();
            assert_eq!(allowed().unwrap(), vec![last]);
        })
        .join()
        .unwrap();
    }
}
