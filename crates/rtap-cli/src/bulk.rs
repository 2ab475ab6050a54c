//! A built-in TCP bulk transfer between two namespaces: a listener in one, a
//! sender in the other streaming for a fixed time; the byte counts must match.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::json::Json;
use crate::netns::Netns;

/// Bytes per `write`/`read` call.
const CHUNK: usize = 128 * 1024;
/// How long connect, accept, and a stalled read or write may take before the
/// transfer is declared failed.
const STALL: Duration = Duration::from_secs(5);

/// Result of a bulk transfer.
#[derive(Clone, Debug, Default)]
pub struct BulkReport {
    /// From the first byte written to the receiver seeing the end of the stream.
    pub elapsed: Duration,
    /// Bytes the sender wrote.
    pub bytes_sent: u64,
    /// Bytes the receiver read.
    pub bytes_received: u64,
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

    /// True if bytes flowed and every byte sent arrived.
    pub fn verified(&self) -> bool {
        self.bytes_sent > 0 && self.bytes_received == self.bytes_sent
    }

    /// JSON object: seconds, bytes_sent, bytes_received, gbit_per_s, verified.
    pub fn to_json(&self) -> Json {
        Json::obj()
            .set("seconds", self.elapsed.as_secs_f64())
            .set("bytes_sent", self.bytes_sent)
            .set("bytes_received", self.bytes_received)
            .set("gbit_per_s", self.gbit_per_s())
            .set("verified", self.verified())
    }
}

/// Streams from namespace `from` to `addr` in namespace `to` for `duration` (or
/// until `stop`), over TCP.
pub fn run(
    from: &Netns,
    to: &Netns,
    addr: Ipv4Addr,
    duration: Duration,
    stop: &AtomicBool,
) -> Result<BulkReport, String> {
    let abort = AtomicBool::new(false);
    let (port_tx, port_rx) = mpsc::channel::<u16>();
    let (recv, send) = std::thread::scope(|s| {
        let abort = &abort;
        let receiver = s.spawn(move || {
            let r = receive(to, addr, port_tx, abort);
            if r.is_err() {
                abort.store(true, Ordering::SeqCst);
            }
            r
        });
        let sender = s.spawn(move || {
            let r = send(from, addr, port_rx, duration, stop, abort);
            if r.is_err() {
                abort.store(true, Ordering::SeqCst);
            }
            r
        });
        let join = |r: std::thread::Result<_>, who: &str| {
            r.unwrap_or_else(|_| Err(format!("tcp {who} thread panicked")))
        };
        (
            join(receiver.join(), "receiver"),
            join(sender.join(), "sender"),
        )
    });
    // The sender's error explains a receiver's failure better than the other way round.
    let (bytes_sent, t0) = send?;
    let (bytes_received, t1) = recv?;
    Ok(BulkReport {
        elapsed: t1.saturating_duration_since(t0),
        bytes_sent,
        bytes_received,
    })
}

/// Listener side: accepts one connection and reads it to the end.
fn receive(
    ns: &Netns,
    addr: Ipv4Addr,
    port_tx: mpsc::Sender<u16>,
    abort: &AtomicBool,
) -> Result<(u64, Instant), String> {
    ns.enter()?;
    let l = TcpListener::bind((addr, 0)).map_err(|e| format!("tcp listen on {addr}: {e}"))?;
    let port = l
        .local_addr()
        .map_err(|e| format!("tcp listener: {e}"))?
        .port();
    l.set_nonblocking(true)
        .map_err(|e| format!("tcp listener: {e}"))?;
    let _ = port_tx.send(port);
    let deadline = Instant::now() + STALL;
    let mut conn = loop {
        match l.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if abort.load(Ordering::Relaxed) {
                    return Err("tcp receiver: the sender gave up".into());
                }
                if Instant::now() > deadline {
                    return Err(format!("tcp receiver: no connection within {STALL:?}"));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(format!("tcp accept: {e}")),
        }
    };
    conn.set_nonblocking(false)
        .and_then(|_| conn.set_read_timeout(Some(STALL)))
        .map_err(|e| format!("tcp receiver: {e}"))?;
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return Ok((total, Instant::now())),
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("tcp receive after {total} bytes: {e}")),
        }
    }
}

/// Sender side: connects and writes for `duration`, then closes its half.
fn send(
    ns: &Netns,
    addr: Ipv4Addr,
    port_rx: mpsc::Receiver<u16>,
    duration: Duration,
    stop: &AtomicBool,
    abort: &AtomicBool,
) -> Result<(u64, Instant), String> {
    ns.enter()?;
    let port = port_rx
        .recv_timeout(STALL)
        .map_err(|_| "tcp sender: the receiver did not start".to_string())?;
    let dst = SocketAddr::from((addr, port));
    let mut conn = TcpStream::connect_timeout(&dst, STALL)
        .map_err(|e| format!("tcp connect to {dst}: {e} (is traffic being forwarded?)"))?;
    conn.set_write_timeout(Some(STALL))
        .map_err(|e| format!("tcp sender: {e}"))?;
    let buf: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8).collect();
    let t0 = Instant::now();
    let end = t0 + duration;
    let mut total = 0u64;
    while Instant::now() < end && !stop.load(Ordering::Relaxed) && !abort.load(Ordering::Relaxed) {
        match conn.write(&buf) {
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("tcp send after {total} bytes: {e}")),
        }
    }
    conn.shutdown(Shutdown::Write)
        .map_err(|e| format!("tcp shutdown: {e}"))?;
    Ok((total, t0))
}
