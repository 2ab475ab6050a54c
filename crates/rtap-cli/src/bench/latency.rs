//! UDP ping-pong between two network namespaces: round-trip time percentiles.
//!
//! An echo server in namespace B sends every datagram straight back; a client in
//! namespace A sends one 18-byte datagram (a 64-byte frame on the wire), waits
//! for its echo, and records the round trip in an HDR histogram (ns, 3
//! significant digits), then sends the next. One request in flight at a time, so
//! each sample is the full path's latency, not a queueing effect. The first
//! exchanges (until a reply arrives, then [`WARMUP`] more) are not recorded:
//! they resolve ARP and warm caches.

use anyhow::{anyhow, bail, Context, Result};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::common::netns::Netns;

/// UDP port of the echo server.
pub const PORT: u16 = 7007;
/// Exchanges after the first reply that are not recorded.
pub const WARMUP: u32 = 200;
/// How long the client waits for one echo before counting it lost.
pub const REPLY_TIMEOUT: Duration = Duration::from_millis(200);

/// Round-trip times of one run.
#[derive(Clone, Debug)]
pub struct LatReport {
    /// Round trips in ns.
    pub hist: Histogram<u64>,
    /// Requests whose echo did not come back within [`REPLY_TIMEOUT`].
    pub lost: u64,
}

impl LatReport {
    /// The `q` quantile (0.5, 0.99, 0.999...) in µs.
    pub fn quantile_us(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1e3
    }

    /// Recorded round trips.
    pub fn samples(&self) -> u64 {
        self.hist.len()
    }
}

fn bind(addr: SocketAddr) -> Result<UdpSocket> {
    UdpSocket::bind(addr).with_context(|| format!("bind UDP {addr}"))
}

/// `count` recorded round trips from A to `dst` (an address in B) and back.
pub fn run(
    a: &Netns,
    b: &Netns,
    dst: Ipv4Addr,
    count: u64,
    stop: &AtomicBool,
) -> Result<LatReport> {
    let server_up = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let server = s.spawn(|| {
            b.run_in(|| -> Result<()> {
                let sock = bind(SocketAddr::from((dst, PORT)))?;
                sock.set_read_timeout(Some(Duration::from_millis(50)))?;
                server_up.store(true, Ordering::SeqCst);
                let mut buf = [0u8; 2048];
                while !done.load(Ordering::Relaxed) {
                    match sock.recv_from(&mut buf) {
                        Ok((n, from)) => {
                            let _ = sock.send_to(&buf[..n], from);
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(e) => return Err(anyhow::Error::from(e).context("echo server")),
                    }
                }
                Ok(())
            })
        });
        let t0 = Instant::now();
        while !server_up.load(Ordering::SeqCst) && !server.is_finished() {
            if t0.elapsed() > Duration::from_secs(5) {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let r = if server_up.load(Ordering::SeqCst) {
            a.run_in(|| client(dst, count, stop)).and_then(|r| r)
        } else {
            Err(anyhow!("the echo server did not start"))
        };
        done.store(true, Ordering::SeqCst);
        let srv = server
            .join()
            .unwrap_or_else(|_| Err(anyhow!("echo server panicked")))
            .and_then(|r| r);
        // The server's error is the root cause when there is one.
        srv?;
        r
    })
}

fn client(dst: Ipv4Addr, count: u64, stop: &AtomicBool) -> Result<LatReport> {
    let sock = bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))?;
    sock.connect((dst, PORT))
        .with_context(|| format!("connect UDP {dst}:{PORT}"))?;
    sock.set_read_timeout(Some(REPLY_TIMEOUT))?;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).context("histogram")?;
    let mut seq = 0u64;
    let mut buf = [0u8; 64];
    // One exchange: Some(round trip) or None if the echo did not come back in time.
    let mut exchange = |seq: u64| -> Result<Option<Duration>> {
        let mut msg = [0u8; 18];
        msg[..8].copy_from_slice(&seq.to_be_bytes());
        let t = Instant::now();
        sock.send(&msg).with_context(|| format!("send to {dst}"))?;
        loop {
            match sock.recv(&mut buf) {
                // A late echo of an earlier request is skipped.
                Ok(n) if n >= 8 && buf[..8] == seq.to_be_bytes() => return Ok(Some(t.elapsed())),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                // ICMP port unreachable before the server is up, for example.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(None),
                Err(e) => return Err(anyhow::Error::from(e).context(format!("recv from {dst}"))),
            }
            if t.elapsed() > REPLY_TIMEOUT {
                return Ok(None);
            }
        }
    };
    // Until the path works (ARP resolved), then the warm-up.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        seq += 1;
        if exchange(seq)?.is_some() {
            break;
        }
        if Instant::now() > deadline || stop.load(Ordering::Relaxed) {
            return Err(anyhow!("no UDP echo from {dst}:{PORT} within 5 s"));
        }
    }
    for _ in 0..WARMUP {
        seq += 1;
        exchange(seq)?;
    }
    let mut lost = 0;
    for _ in 0..count {
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        seq += 1;
        match exchange(seq)? {
            Some(rtt) => hist.saturating_record(rtt.as_nanos() as u64),
            None => lost += 1,
        }
    }
    Ok(LatReport { hist, lost })
}
