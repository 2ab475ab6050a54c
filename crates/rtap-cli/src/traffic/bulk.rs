//! A built-in, content-verified TCP bulk transfer between two namespaces: a
//! listener in one, a sender in the other streaming a deterministic byte pattern
//! for a fixed time or a fixed byte count; the receiver checks every byte against
//! the same pattern, and the byte counts must match.
//!
//! The stream is a pseudo-random sequence ([`Pattern`]): byte `i` is
//! `table[(i % P + (i / P) * STEP) % P]` for a table of `P` (a prime a little under
//! 1 MiB) bytes from a fixed-seed PRNG, so each 1 MiB lap is the table rotated by a
//! different amount and the stream does not repeat within `P * P` bytes (~1 TiB).
//! Any byte lost, duplicated, altered or misplaced is caught. Both sides work on
//! slices of the table: the sender writes straight from it (no generation cost per
//! byte) and the receiver compares each read with one `memcmp` per slice.

use anyhow::{anyhow, bail, Context, Result};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::netns::Netns;
use serde_json::{json, Value};

/// Bytes per `write`/`read` call (at most).
const CHUNK: usize = 256 * 1024;
/// How long connect, accept, and a stalled read or write may take before the
/// transfer is declared failed.
const STALL: Duration = Duration::from_secs(5);

/// Period of the pattern table: a prime, so every rotation step is coprime to it.
const PERIOD: usize = 1_048_573;
/// Rotation added per lap of `PERIOD` bytes.
const STEP: u64 = 4099;
/// PRNG seed of the table.
const SEED: u64 = 0x7274_6170_5f62_756c; // "rtap_bul"

/// The deterministic byte stream both ends agree on.
pub struct Pattern {
    /// `PERIOD` bytes of table followed by its first `CHUNK` bytes again, so any
    /// window of up to `CHUNK` bytes starting in the table is one contiguous slice.
    ext: Vec<u8>,
}

impl Pattern {
    /// Builds the table (splitmix64, fixed seed).
    pub fn new() -> Pattern {
        let mut ext = Vec::with_capacity(PERIOD + CHUNK + 8);
        let mut s = SEED;
        while ext.len() < PERIOD {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            ext.extend_from_slice(&z.to_le_bytes());
        }
        ext.truncate(PERIOD);
        ext.extend_from_within(..CHUNK);
        Pattern { ext }
    }

    /// The stream's bytes from offset `at`, at most `max` (and at most [`CHUNK`]) of
    /// them; never empty when `max > 0`. Shorter than asked at a lap boundary.
    pub fn window(&self, at: u64, max: usize) -> &[u8] {
        let p = PERIOD as u64;
        let within = at % p;
        let start = ((within + (at / p) % p * STEP) % p) as usize;
        let len = max.min(CHUNK).min((p - within) as usize);
        &self.ext[start..start + len]
    }

    /// Compares `data` with the stream from offset `at`; returns the offset of the
    /// first byte that differs.
    pub fn check(&self, at: u64, data: &[u8]) -> Option<u64> {
        let mut k = 0;
        while k < data.len() {
            let want = self.window(at + k as u64, data.len() - k);
            let got = &data[k..k + want.len()];
            if got != want {
                let i = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0);
                return Some(at + (k + i) as u64);
            }
            k += want.len();
        }
        None
    }
}

impl Default for Pattern {
    fn default() -> Self {
        Pattern::new()
    }
}

/// When the sender stops.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Limit {
    /// After this long (the last write may be partial).
    Time(Duration),
    /// After exactly this many bytes.
    Bytes(u64),
}

/// Result of a bulk transfer.
#[derive(Clone, Debug, Default)]
pub struct BulkReport {
    /// From the first byte written to the receiver seeing the end of the stream.
    pub elapsed: Duration,
    /// Bytes asked for (`--bytes`), if the transfer was limited by size.
    pub bytes_requested: Option<u64>,
    /// Bytes the sender wrote.
    pub bytes_sent: u64,
    /// Bytes the receiver read.
    pub bytes_received: u64,
    /// The receiver compared the payload with the pattern.
    pub checked: bool,
    /// Bytes the receiver compared with the pattern (all it read, unless a
    /// mismatch stopped the checking or `checked` is false).
    pub bytes_checked: u64,
    /// Stream offset of the first byte that did not match the pattern.
    pub mismatch_at: Option<u64>,
}

impl BulkReport {
    /// Goodput in Gbit/s (received bytes over elapsed time).
    pub fn gbit_per_s(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.bytes_received as f64 * 8.0 / s / 1e9
        } else {
            0.0
        }
    }

    /// True if bytes flowed, every byte sent arrived (and as many as requested),
    /// and every byte received was checked and matched the pattern.
    pub fn verified(&self) -> bool {
        self.checked && self.problem().is_none()
    }

    /// Why the transfer failed, if it did: no bytes, byte counts that differ, or
    /// (if the payload was checked) a byte that did not match.
    pub fn problem(&self) -> Option<String> {
        if self.bytes_received == 0 {
            return Some("zero bytes arrived".into());
        }
        if let Some(at) = self.mismatch_at {
            return Some(format!(
                "payload corrupted: stream byte {at} does not match what was sent"
            ));
        }
        if self.bytes_received != self.bytes_sent {
            return Some(format!(
                "sent {} bytes, received {}",
                self.bytes_sent, self.bytes_received
            ));
        }
        if let Some(want) = self.bytes_requested {
            if self.bytes_sent != want {
                return Some(format!("asked for {want} bytes, sent {}", self.bytes_sent));
            }
        }
        if self.checked && self.bytes_checked != self.bytes_received {
            return Some(format!(
                "only {} of {} bytes checked",
                self.bytes_checked, self.bytes_received
            ));
        }
        None
    }

    /// JSON object: seconds, bytes_requested, bytes_sent, bytes_received,
    /// bytes_checked, mismatch_at, gbit_per_s, verified.
    pub fn to_json(&self) -> Value {
        json!({"seconds": self.elapsed.as_secs_f64(),
"bytes_requested": self.bytes_requested,
"bytes_sent": self.bytes_sent,
"bytes_received": self.bytes_received,
"bytes_checked": self.bytes_checked,
"mismatch_at": self.mismatch_at,
"gbit_per_s": self.gbit_per_s(),
"verified": self.verified()})
    }
}

/// Streams the pattern from namespace `from` to `addr` in namespace `to` until
/// `limit` (or `stop`), over TCP; the receiver checks every byte if `check`
/// (otherwise it only counts them, which saves a `memcmp` per byte). If given,
/// `received` follows the bytes received so far (for progress lines).
pub fn run(
    from: &Netns,
    to: &Netns,
    addr: Ipv4Addr,
    limit: Limit,
    check: bool,
    stop: &AtomicBool,
    received: Option<&AtomicU64>,
) -> Result<BulkReport> {
    let pattern = Pattern::new();
    let abort = AtomicBool::new(false);
    let (port_tx, port_rx) = mpsc::channel::<u16>();
    let (recv, send) = std::thread::scope(|s| {
        let (abort, pattern) = (&abort, &pattern);
        let receiver = s.spawn(move || {
            let r = receive(to, addr, port_tx, check.then_some(pattern), abort, received);
            if r.is_err() {
                abort.store(true, Ordering::SeqCst);
            }
            r
        });
        let sender = s.spawn(move || {
            let r = send(from, addr, port_rx, limit, pattern, stop, abort);
            if r.is_err() {
                abort.store(true, Ordering::SeqCst);
            }
            r
        });
        fn join<T>(r: std::thread::Result<Result<T>>, who: &str) -> Result<T> {
            r.unwrap_or_else(|_| Err(anyhow!("tcp {who} thread panicked")))
        }
        (
            join(receiver.join(), "receiver"),
            join(sender.join(), "sender"),
        )
    });
    // The sender's error explains a receiver's failure better than the other way round.
    let (bytes_sent, t0) = send?;
    let recv = recv?;
    Ok(BulkReport {
        elapsed: recv.end.saturating_duration_since(t0),
        bytes_requested: match limit {
            Limit::Bytes(n) => Some(n),
            Limit::Time(_) => None,
        },
        bytes_sent,
        bytes_received: recv.total,
        checked: check,
        bytes_checked: recv.checked,
        mismatch_at: recv.mismatch_at,
    })
}

/// What the receiver saw.
struct Received {
    total: u64,
    checked: u64,
    mismatch_at: Option<u64>,
    end: Instant,
}

/// Listener side: accepts one connection, reads it to the end, checks every byte
/// against `pattern` if given.
fn receive(
    ns: &Netns,
    addr: Ipv4Addr,
    port_tx: mpsc::Sender<u16>,
    pattern: Option<&Pattern>,
    abort: &AtomicBool,
    received: Option<&AtomicU64>,
) -> Result<Received> {
    ns.enter()?;
    let l = TcpListener::bind((addr, 0)).with_context(|| format!("tcp listen on {addr}"))?;
    let port = l.local_addr().context("tcp listener")?.port();
    l.set_nonblocking(true).context("tcp listener")?;
    let _ = port_tx.send(port);
    let deadline = Instant::now() + STALL;
    let mut conn = loop {
        match l.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if abort.load(Ordering::Relaxed) {
                    bail!("tcp receiver: the sender gave up");
                }
                if Instant::now() > deadline {
                    return Err(anyhow!("tcp receiver: no connection within {STALL:?}"));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(anyhow::Error::from(e).context("tcp accept")),
        }
    };
    conn.set_nonblocking(false)
        .and_then(|_| conn.set_read_timeout(Some(STALL)))
        .context("tcp receiver")?;
    let mut buf = vec![0u8; CHUNK];
    let mut r = Received {
        total: 0,
        checked: 0,
        mismatch_at: None,
        end: Instant::now(),
    };
    loop {
        match conn.read(&mut buf) {
            Ok(0) => {
                r.end = Instant::now();
                return Ok(r);
            }
            Ok(n) => {
                if let (Some(pattern), None) = (pattern, r.mismatch_at) {
                    r.mismatch_at = pattern.check(r.total, &buf[..n]);
                    if r.mismatch_at.is_none() {
                        r.checked += n as u64;
                    }
                }
                r.total += n as u64;
                if let Some(c) = received {
                    c.store(r.total, Ordering::Relaxed);
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(
                    anyhow::Error::from(e).context(format!("tcp receive after {} bytes", r.total))
                )
            }
        }
    }
}

/// Sender side: connects and writes the pattern until `limit`, then closes its half.
fn send(
    ns: &Netns,
    addr: Ipv4Addr,
    port_rx: mpsc::Receiver<u16>,
    limit: Limit,
    pattern: &Pattern,
    stop: &AtomicBool,
    abort: &AtomicBool,
) -> Result<(u64, Instant)> {
    ns.enter()?;
    let port = port_rx
        .recv_timeout(STALL)
        .map_err(|_| anyhow!("tcp sender: the receiver did not start"))?;
    let dst = SocketAddr::from((addr, port));
    let mut conn = TcpStream::connect_timeout(&dst, STALL)
        .with_context(|| format!("tcp connect to {dst} (is traffic being forwarded?)"))?;
    conn.set_write_timeout(Some(STALL)).context("tcp sender")?;
    let t0 = Instant::now();
    let (end, want) = match limit {
        Limit::Time(d) => (Some(t0 + d), u64::MAX),
        Limit::Bytes(n) => (None, n),
    };
    let mut total = 0u64;
    while total < want
        && end.is_none_or(|e| Instant::now() < e)
        && !stop.load(Ordering::Relaxed)
        && !abort.load(Ordering::Relaxed)
    {
        let left = usize::try_from(want - total).unwrap_or(usize::MAX);
        match conn.write(pattern.window(total, left)) {
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(anyhow::Error::from(e).context(format!("tcp send after {total} bytes")))
            }
        }
    }
    conn.shutdown(Shutdown::Write).context("tcp shutdown")?;
    Ok((total, t0))
}

/// Parses a byte count: a number with an optional unit. `K`, `M`, `G`, `T` (and
/// `KiB`, `MiB`, `GiB`, `TiB`) are powers of 1024; `KB`, `MB`, `GB`, `TB` are
/// powers of 1000; `B` or nothing is bytes. Case-insensitive; a fraction is
/// allowed with a unit (`1.5G`).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => {
            return Err(anyhow!(
                "unknown unit {other:?} in {s:?} (use K/M/G/T or KiB/MiB/GiB/TiB for powers of 1024, KB/MB/GB/TB for powers of 1000)"
            ))
        }
    };
    if num.is_empty() {
        return Err(anyhow!(
            "{s:?} is not a byte count (e.g. 1GiB, 512M, 1000000)"
        ));
    }
    let n = if num.contains('.') {
        let x: f64 = num
            .parse()
            .map_err(|_| anyhow!("{num:?} is not a number"))?;
        let v = (x * mult as f64).round();
        if !(v.is_finite() && v < u64::MAX as f64) {
            return Err(anyhow!("{s:?} is too large"));
        }
        v as u64
    } else {
        num.parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(mult))
            .with_context(|| format!("{s:?} is not a byte count that fits 64 bits"))?
    };
    if n == 0 {
        bail!("the byte count must be at least 1");
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stream byte by byte, straight from the definition.
    fn byte(p: &Pattern, i: u64) -> u8 {
        let q = PERIOD as u64;
        p.ext[((i % q + (i / q) * STEP) % q) as usize]
    }

    #[test]
    fn windows_follow_the_definition() {
        let p = Pattern::new();
        assert_eq!(p.ext.len(), PERIOD + CHUNK);
        let q = PERIOD as u64;
        for at in [0, 1, q - 3, q, q + 17, 5 * q - 1, 1000 * q + 123] {
            let w = p.window(at, 10);
            assert!(!w.is_empty());
            for (k, b) in w.iter().enumerate() {
                assert_eq!(*b, byte(&p, at + k as u64), "at {at} + {k}");
            }
        }
        // A window stops at the lap boundary and never exceeds CHUNK.
        assert_eq!(p.window(q - 3, 10).len(), 3);
        assert_eq!(p.window(7, usize::MAX).len(), CHUNK);
    }

    #[test]
    fn laps_differ() {
        let p = Pattern::new();
        let q = PERIOD as u64;
        assert_ne!(p.window(0, 64), p.window(q, 64));
        assert_ne!(p.window(q, 64), p.window(2 * q, 64));
    }

    #[test]
    fn check_finds_the_first_bad_byte() {
        let p = Pattern::new();
        let q = PERIOD as u64;
        let at = q - 100;
        let mut data: Vec<u8> = (0..300).map(|k| byte(&p, at + k)).collect();
        assert_eq!(p.check(at, &data), None);
        // Misplaced: the same bytes claimed one offset later.
        assert!(p.check(at + 1, &data).is_some());
        data[250] ^= 1;
        assert_eq!(p.check(at, &data), Some(at + 250));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1GiB").ok(), Some(1 << 30));
        assert_eq!(parse_size("1G").ok(), Some(1 << 30));
        assert_eq!(parse_size("1g").ok(), Some(1 << 30));
        assert_eq!(parse_size("512M").ok(), Some(512 << 20));
        assert_eq!(parse_size("512 MiB").ok(), Some(512 << 20));
        assert_eq!(parse_size("2KB").ok(), Some(2000));
        assert_eq!(parse_size("1GB").ok(), Some(1_000_000_000));
        assert_eq!(parse_size("1.5K").ok(), Some(1536));
        assert_eq!(parse_size("12345").ok(), Some(12345));
        assert_eq!(parse_size("7b").ok(), Some(7));
        for bad in ["", "G", "0", "1Q", "-1", "1.2.3M", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }
}
