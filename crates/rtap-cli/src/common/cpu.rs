//! CPU lists (`0,2-3`) and pinning the calling thread to one CPU.

use anyhow::{anyhow, Context, Result};
use std::io;

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

/// The CPUs the calling thread may run on, in increasing order.
pub fn allowed() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a live cpu_set_t of the size passed; pid 0 is this thread.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: c < CPU_SETSIZE, inside the set.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// Restricts the calling thread to `cpu`.
pub fn pin(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: cpu < CPU_SETSIZE (checked above), inside the set.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: set is a live cpu_set_t of the size passed; pid 0 is this thread.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

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

/// CPU time (user + system) the calling thread has used, in seconds.
pub fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a live timespec for the kernel to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

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

/// CPU time (user + system) of this whole process so far, in seconds.
pub fn process_cpu_s() -> f64 {
    // SAFETY: rusage is plain data for the kernel to fill.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: ru is a live rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Clock ticks per second of `/proc/stat`.
pub fn clk_tck() -> f64 {
    // SAFETY: sysconf takes no pointers.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
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
