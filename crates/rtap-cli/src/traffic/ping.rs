//! A built-in ping: ICMP echo over a raw socket, in the calling thread's namespace.

use anyhow::{Context, Result};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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

/// Internet checksum (RFC 1071) of `data`.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        sum += (*last as u32) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMP echo request.
fn echo_request(id: u16, seq: u16) -> Vec<u8> {
    let mut m = vec![8u8, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend((0..PAYLOAD).map(|i| i as u8));
    let c = checksum(&m);
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
        && checksum(icmp) == 0
}

fn raw_icmp_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket call; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMP,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is fresh and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn send_to(fd: &OwnedFd, msg: &[u8], dst: Ipv4Addr) -> io::Result<()> {
    // SAFETY: sockaddr_in is plain data; all-zero is valid.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_addr.s_addr = u32::from_ne_bytes(dst.octets());
    // SAFETY: msg and sa are live for the call and sized as passed.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            0,
            &sa as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits up to `timeout` for a datagram; None on timeout.
fn recv_timeout(fd: &OwnedFd, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
    if !rawsock::wait_readable(fd.as_fd(), timeout.max(Duration::from_millis(1)))? {
        return Ok(None);
    }
    // SAFETY: buf is live and writable for its length.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::WouldBlock {
            Ok(None)
        } else {
            Err(e)
        };
    }
    Ok(Some(n as usize))
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
    send_to(fd, &echo_request(id, seq), dst).with_context(|| format!("ping: send to {dst}"))?;
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
    let fd = raw_icmp_socket().context("raw ICMP socket")?;
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
            checksum(&req),
            0,
            "a message with its checksum sums to zero"
        );
        // Build the reply a host would send: type 0, same id/seq/payload.
        let mut icmp = req.clone();
        icmp[0] = 0;
        icmp[2..4].copy_from_slice(&[0, 0]);
        let c = checksum(&icmp);
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
