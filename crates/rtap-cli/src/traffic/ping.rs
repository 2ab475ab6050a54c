//! A built-in ping: ICMP echo over a raw socket, in the calling thread's namespace.

use anyhow::{Context, Result};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::sys;
use rtap::wire::checksum::internet_checksum;
use serde_json::{json, Value};

/// ICMP payload bytes after the 8-byte header (what `ping` sends by default).
const PAYLOAD: usize = 56;

/// Result of a ping run.
#[derive(Clone, Debug, Default)]
pub struct PingReport {
    /// Echo requests sent.
    pub sent: u32,
    /// Matching echo replies received in time.
    pub received: u32,
    /// Round-trip time of each reply.
    pub rtts: Vec<Duration>,
}

impl PingReport {
    fn ms(d: Duration) -> f64 {
        d.as_secs_f64() * 1e3
    }

    /// Smallest RTT in milliseconds.
    pub fn min_ms(&self) -> Option<f64> {
        self.rtts.iter().min().map(|d| Self::ms(*d))
    }

    /// Mean RTT in milliseconds.
    pub fn avg_ms(&self) -> Option<f64> {
        (!self.rtts.is_empty())
            .then(|| Self::ms(self.rtts.iter().sum::<Duration>()) / self.rtts.len() as f64)
    }

    /// Largest RTT in milliseconds.
    pub fn max_ms(&self) -> Option<f64> {
        self.rtts.iter().max().map(|d| Self::ms(*d))
    }

    /// JSON object: sent, received, rtt_min_ms, rtt_avg_ms, rtt_max_ms.
    pub fn to_json(&self) -> Value {
        json!({"sent": self.sent,
"received": self.received,
"rtt_min_ms": self.min_ms(),
"rtt_avg_ms": self.avg_ms(),
"rtt_max_ms": self.max_ms()})
    }
}

/// An ICMP echo request.
fn echo_request(id: u16, seq: u16) -> Vec<u8> {
    let mut m = vec![8u8, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend((0..PAYLOAD).map(|i| i as u8));
    let c = internet_checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// If `pkt` (an IPv4 datagram as a raw socket returns it) is the echo reply from
/// `from` to request `id`/`seq`, true.
fn is_reply(pkt: &[u8], from: Ipv4Addr, id: u16, seq: u16) -> bool {
    if pkt.len() < 20 || pkt[0] >> 4 != 4 {
        return false;
    }
    let ihl = (pkt[0] & 0x0f) as usize * 4;
    if pkt.len() < ihl + 8 || pkt[12..16] != from.octets() {
        return false;
    }
    let icmp = &pkt[ihl..];
    icmp[0] == 0
        && icmp[1] == 0
        && u16::from_be_bytes([icmp[4], icmp[5]]) == id
        && u16::from_be_bytes([icmp[6], icmp[7]]) == seq
        && internet_checksum(icmp) == 0
}

/// Waits up to `timeout` for a datagram; None on timeout.
fn recv_timeout(fd: &OwnedFd, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
    if !rawsock::wait_readable(fd.as_fd(), timeout.max(Duration::from_millis(1)))? {
        return Ok(None);
    }
    sys::recv_nowait(fd.as_fd(), buf)
}

/// Sends one echo request and waits up to `timeout` for its reply; returns the
/// round-trip time, or None on timeout.
fn echo(
    fd: &OwnedFd,
    dst: Ipv4Addr,
    id: u16,
    seq: u16,
    timeout: Duration,
    buf: &mut [u8],
) -> Result<Option<Duration>> {
    let t0 = Instant::now();
    sys::send_to(fd.as_fd(), &echo_request(id, seq), dst)
        .with_context(|| format!("ping: send to {dst}"))?;
    let deadline = t0 + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        if let Some(n) = recv_timeout(fd, buf, left).context("ping: recv")? {
            if is_reply(&buf[..n], dst, id, seq) {
                return Ok(Some(t0.elapsed()));
            }
        }
    }
}

/// Sends one uncounted warm-up echo, then `count` echo requests to `dst`, one every `interval`, each waiting up to
/// `timeout` for its reply. Runs in the calling thread's network namespace.
pub fn run(
    dst: Ipv4Addr,
    count: u32,
    interval: Duration,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<PingReport> {
    let fd = sys::raw_icmp_socket().context("raw ICMP socket")?;
    let id = (std::process::id() as u16) ^ 0x5254;
    let mut rep = PingReport::default();
    let mut buf = vec![0u8; 2048];
    // Uncounted warm-up echo (seq 0): it resolves the neighbour (ARP), so the
    // counted round trips measure the path and not address resolution.
    match echo(&fd, dst, id, 0, timeout, &mut buf)? {
        Some(rtt) => tracing::debug!(?rtt, "ping warm-up reply"),
        None => tracing::warn!("ping: no reply to the warm-up echo from {dst}"),
    }
    for i in 0..count {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let t0 = Instant::now();
        let seq = (i + 1) as u16;
        rep.sent += 1;
        match echo(&fd, dst, id, seq, timeout, &mut buf)? {
            Some(rtt) => {
                tracing::debug!(seq, ?rtt, "ping reply");
                rep.received += 1;
                rep.rtts.push(rtt);
            }
            None => tracing::warn!(seq, "ping: no reply from {dst} within {timeout:?}"),
        }
        if i + 1 < count {
            std::thread::sleep(interval.saturating_sub(t0.elapsed()));
        }
    }
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_and_reply_parsing() {
        let req = echo_request(0x1234, 7);
        assert_eq!(req.len(), 8 + PAYLOAD);
        assert_eq!(
            internet_checksum(&req),
            0,
            "a message with its checksum sums to zero"
        );
        // Build the reply a host would send: type 0, same id/seq/payload.
        let mut icmp = req.clone();
        icmp[0] = 0;
        icmp[2..4].copy_from_slice(&[0, 0]);
        let c = internet_checksum(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 10, 77, 0, 2, 10, 77, 0, 1,
        ];
        ip.extend_from_slice(&icmp);
        let from = Ipv4Addr::new(10, 77, 0, 2);
        assert!(is_reply(&ip, from, 0x1234, 7));
        assert!(!is_reply(&ip, from, 0x1234, 8));
        assert!(!is_reply(&ip, Ipv4Addr::new(10, 77, 0, 3), 0x1234, 7));
        assert!(!is_reply(&ip[..20], from, 0x1234, 7));
    }

    #[test]
    fn stats() {
        let r = PingReport {
            sent: 3,
            received: 2,
            rtts: vec![Duration::from_millis(1), Duration::from_millis(3)],
        };
        assert_eq!(r.min_ms(), Some(1.0));
        assert_eq!(r.avg_ms(), Some(2.0));
        assert_eq!(r.max_ms(), Some(3.0));
        assert_eq!(PingReport::default().avg_ms(), None);
    }
}
