//! Receive offloads end to end: the kernel's own TCP stack sends through a
//! port with TSO on; its TSO frames come up as single GSO frames, a zero-copy
//! forwarder hands each one as it is to the other port, and the stream arrives
//! intact with every extended statistic accounted for. The `packet_*` tests use
//! AF_PACKET ports (`PACKET_VNET_HDR`) on both sides.

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::offload::*;
use common::*;
use rtap::*;

/// Bytes the TCP test moves (256 MiB at full [`scale`]).
fn e2e_bytes() -> u64 {
    scaled(256 << 20, 8 << 20)
}
/// Period of the payload pattern (a prime, so no segment or buffer size lines up
/// with it: lost, doubled or reordered bytes shift it and show).
const PATTERN_LEN: usize = 1_048_583;

fn pattern() -> Arc<Vec<u8>> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut v = Vec::with_capacity(PATTERN_LEN + 8);
    while v.len() < PATTERN_LEN {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(PATTERN_LEN);
    Arc::new(v)
}

/// A 64-bit hash of a byte stream fed in pieces of any size (FNV-style over
/// little-endian words; the result does not depend on how the stream is cut).
#[derive(Clone, Copy)]
struct StreamHash {
    h: u64,
    pend: [u8; 8],
    npend: usize,
    len: u64,
}

impl StreamHash {
    fn new() -> StreamHash {
        StreamHash {
            h: 0xcbf2_9ce4_8422_2325,
            pend: [0; 8],
            npend: 0,
            len: 0,
        }
    }

    fn word(&mut self, w: u64) {
        self.h = (self.h ^ w)
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(23);
    }

    fn update(&mut self, mut d: &[u8]) {
        self.len += d.len() as u64;
        while self.npend != 0 && !d.is_empty() {
            self.pend[self.npend] = d[0];
            self.npend += 1;
            d = &d[1..];
            if self.npend == 8 {
                self.word(u64::from_le_bytes(self.pend));
                self.npend = 0;
            }
        }
        let mut words = d.chunks_exact(8);
        for w in &mut words {
            self.word(u64::from_le_bytes(w.try_into().unwrap()));
        }
        for &b in words.remainder() {
            self.pend[self.npend] = b;
            self.npend += 1;
        }
    }

    fn finish(mut self) -> u64 {
        let mut last = [0u8; 8];
        last[..self.npend].copy_from_slice(&self.pend[..self.npend]);
        self.word(u64::from_le_bytes(last));
        self.word(self.len);
        self.h
    }
}

/// What the forwarder saw.
#[derive(Debug, Default)]
struct Fwd {
    /// Every packet received on A / B.
    a_rx: Tally,
    b_rx: Tally,
    /// Packets B's / A's tx queue took.
    to_b: u64,
    to_a: u64,
    /// Packets received on A / B that were chains.
    a_rx_chains: u64,
    b_rx_chains: u64,
    /// GSO frames from A: count, TCP payload bytes, smallest and largest frame.
    gso: u64,
    gso_payload: u64,
    gso_min_len: usize,
    gso_max_len: usize,
    /// GSO frames longer than 1518 bytes.
    gso_big: u64,
    /// GSO frames whose kind or size was not the flow's: (got, want).
    gso_wrong: Vec<(RxGso, RxGso)>,
    /// GSO frames not flagged Partial.
    gso_not_partial: u64,
    /// Frames over 1514 bytes that were not GSO frames.
    big_plain: u64,
}

/// The GSO kind a TCP frame `f` (IPv4 or IPv6 without extension headers) must
/// have for a 1500-byte MTU, given the TCP options it carries (MSS 1448 over
/// IPv4 and 1428 over IPv6 with timestamps), and its header length.
fn gso_of(f: &[u8]) -> (RxGso, usize) {
    let v6 = f[12..14] == [0x86, 0xdd];
    let l3 = if v6 {
        40
    } else {
        usize::from(f[14] & 0x0f) * 4
    };
    let doff = usize::from(f[14 + l3 + 12] >> 4) * 4;
    let size = (1500 - l3 - doff) as u16;
    let kind = if v6 {
        RxGso::Tcp6 { size }
    } else {
        RxGso::Tcp4 { size }
    };
    (kind, 14 + l3 + doff)
}

/// Sends all of `v` on `txq` (retrying what the full queue did not take).
fn send_all(txq: &mut TxQueue, v: &mut Vec<Packet>) -> u64 {
    let mut n = 0;
    let deadline = Instant::now() + WAIT;
    while !v.is_empty() {
        let k = txq.tx_burst(v).expect("tx_burst");
        n += k as u64;
        if k == 0 {
            assert!(Instant::now() < deadline, "tx queue stayed full");
            txq.flush(Duration::from_millis(1));
        }
    }
    n
}

/// Zero-copy forwarder between A and B: received packets go to the other
/// port's tx queue as they are (virtio-net header included), until `stop`.
/// One side receives 64 KiB frames into one large buffer each, the other into
/// chains of default-sized buffers: A is the large-buffer side if `a_big`.
fn forward(a: &Port, b: &Port, a_big: bool, stop: &AtomicBool) -> Fwd {
    let big = Pool::new(
        PoolConfig::default()
            .count(256)
            .buf_size(65_536 + 256)
            .headroom(128),
    )
    .unwrap();
    let chained = Pool::new(PoolConfig::default().count(8192)).unwrap();
    let (pa, pb) = if a_big {
        (&big, &chained)
    } else {
        (&chained, &big)
    };
    let mut rxa = a.rx_queue(0, pa).unwrap();
    let mut rxb = b.rx_queue(0, pb).unwrap();
    let mut txa = a.tx_queue(0).unwrap();
    let mut txb = b.tx_queue(0).unwrap();
    let mut out = Fwd {
        gso_min_len: usize::MAX,
        ..Fwd::default()
    };
    let (mut va, mut vb) = (Vec::with_capacity(64), Vec::with_capacity(64));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let na = rxa.rx_burst(&mut va, 64).expect("rx A");
        for p in &va {
            out.a_rx.rx(p);
            out.a_rx_chains += (p.nb_segs() > 1) as u64;
            let g = p.rx_gso();
            if g != RxGso::None {
                out.gso += 1;
                let (want, hdrs) = gso_of(p.data());
                if g != want {
                    out.gso_wrong.push((g, want));
                }
                if p.rx_csum() != RxCsum::Partial {
                    out.gso_not_partial += 1;
                }
                out.gso_payload += (p.len() - hdrs) as u64;
                out.gso_min_len = out.gso_min_len.min(p.len());
                out.gso_max_len = out.gso_max_len.max(p.len());
                out.gso_big += u64::from(p.len() > 1518);
            } else if p.len() > 1514 {
                out.big_plain += 1;
            }
        }
        out.to_b += send_all(&mut txb, &mut va);
        let nb = rxb.rx_burst(&mut vb, 64).expect("rx B");
        for p in &vb {
            out.b_rx.rx(p);
            out.b_rx_chains += (p.nb_segs() > 1) as u64;
        }
        out.to_a += send_all(&mut txa, &mut vb);
        if na + nb == 0 {
            if stop.load(Ordering::Acquire) {
                break;
            }
            assert!(Instant::now() < deadline, "forwarder ran too long");
            std::thread::sleep(Duration::from_micros(20));
        }
    }
    assert!(txa.flush(WAIT) && txb.flush(WAIT));
    out
}

/// Test 5: the kernel's own TCP stack sends through port A (TSO on): its TSO
/// frames reach the application as single frames larger than the MTU, flagged
/// `Tcp4 { size: MSS }` and `Partial`; a zero-copy forwarder hands each one, as
/// it is, to port B, whose kernel takes it as one GSO packet. 256 MiB of a
/// deterministic pattern cross from namespace N1 (A, 10.4.0.1) to N2 (B,
/// 10.4.0.2) intact (compared byte for byte and by hash), and every rx and tx
/// xstat of both ports matches what the forwarder counted. A receives into one
/// large buffer per frame, B into chains.
fn rx_gro_end_to_end(backend: BackendKind) {
    gro_end_to_end(backend, false);
}

/// Test 5 over IPv6 (fd04::1 to fd04::2, frames flagged `Tcp6 { size: MSS }`),
/// with A receiving its 64 KiB frames as chains of default-sized buffers.
fn rx_gro_end_to_end_ipv6_chained(backend: BackendKind) {
    gro_end_to_end(backend, true);
}

fn gro_end_to_end(backend: BackendKind, v6: bool) {
    netns();
    let n1 = NamedNetns::create("gro1");
    let n2 = NamedNetns::create("gro2");
    let mut ring = RingConfig::default().rx_posted(64);
    if let Some(m) = forced_rx_mode() {
        ring.rx_mode = m;
    }
    let open_in = |ns: &NamedNetns, name: &str| {
        ns.run(|| {
            if v6 {
                enable_ipv6();
            } else {
                disable_ipv6();
            }
            let cfg = TapConfig::new(name)
                .offloads(Offloads::ALL)
                .backend(backend)
                .ring(ring);
            let p = Port::open(cfg).expect("open");
            assert_eq!(p.engine(), rtap::Engine::from(backend));
            p.start().unwrap();
            p
        })
    };
    let a = open_in(&n1, "ogroa");
    let b = open_in(&n2, "ogrob");
    assert!(a.offloads().tso4 && b.offloads().tso4);
    n1.ip(&["addr", "add", "10.4.0.1/24", "dev", "ogroa"]);
    n2.ip(&["addr", "add", "10.4.0.2/24", "dev", "ogrob"]);
    if v6 {
        n1.ip(&["addr", "add", "fd04::1/64", "dev", "ogroa", "nodad"]);
        n2.ip(&["addr", "add", "fd04::2/64", "dev", "ogrob", "nodad"]);
    }
    tcp_through_forwarder(&a, &b, &n1, &n2, v6, &backend.to_string());
    drop((a, b));
}

/// Test 5 with AF_PACKET ports (offloads on): N1's veth end `pgroa`
/// (10.4.0.1) is paired with `pgroA` here, port A; N2's `pgrob` (10.4.0.2) with
/// `pgroB`, port B. The TSO frames of N1's TCP stack come up at A as single
/// GSO frames through `PACKET_VNET_HDR`, and go out of B as such.
fn packet_gro_end_to_end(v6: bool) {
    netns();
    if v6 {
        enable_ipv6();
    }
    let n1 = NamedNetns::create("pgro1");
    let n2 = NamedNetns::create("pgro2");
    let mut ports = Vec::new();
    for (ns, inner, outer, addr4, addr6) in [
        (&n1, "pgroa", "pgroA", "10.4.0.1/24", "fd04::1/64"),
        (&n2, "pgrob", "pgroB", "10.4.0.2/24", "fd04::2/64"),
    ] {
        ip(&["link", "add", outer, "type", "veth", "peer", "name", inner]);
        ip(&["link", "set", inner, "netns", ns.name()]);
        ns.run(|| if v6 { enable_ipv6() } else { disable_ipv6() });
        ns.ip(&["addr", "add", addr4, "dev", inner]);
        if v6 {
            ns.ip(&["addr", "add", addr6, "dev", inner, "nodad"]);
        }
        ns.ip(&["link", "set", inner, "up"]);
        let p = Port::open(PacketConfig::new(outer).offload(true)).unwrap();
        p.start().unwrap();
        ports.push(p);
    }
    let (a, b) = (&ports[0], &ports[1]);
    assert!(a.offloads().tso4 && b.offloads().tso4);
    tcp_through_forwarder(a, b, &n1, &n2, v6, "packet");
}

#[test]
fn packet_rx_gro_end_to_end() {
    packet_gro_end_to_end(false);
}

#[test]
fn packet_rx_gro_end_to_end_ipv6_chained() {
    packet_gro_end_to_end(true);
}

/// TCP from N1 to N2 through a zero-copy forwarder between A and B, checked as
/// test 5 says.
fn tcp_through_forwarder(
    a: &Port,
    b: &Port,
    n1: &NamedNetns,
    n2: &NamedNetns,
    v6: bool,
    label: &str,
) {
    let server_addr = if v6 {
        "[fd04::2]:5201"
    } else {
        "10.4.0.2:5201"
    };
    assert_eq!(a.link().unwrap().mtu, 1500);

    let pat = pattern();
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let e2e_bytes = e2e_bytes();
    let (fwd, sent, recvd) = std::thread::scope(|s| {
        let fwd = s.spawn(|| forward(a, b, !v6, &stop));
        // A failed check below ends the forwarder instead of hanging the test.
        let _stop = StopOnDrop(&stop);
        let listener = n2.run(|| std::net::TcpListener::bind(server_addr).unwrap());
        let p2 = pat.clone();
        let server = s.spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut h = StreamHash::new();
            let mut buf = vec![0u8; 1 << 18];
            let mut pos = 0usize;
            let mut first_bad = None;
            loop {
                let n = c.read(&mut buf).expect("server read");
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                let mut done = 0;
                while done < n && first_bad.is_none() {
                    let off = (pos + done) % PATTERN_LEN;
                    let k = (n - done).min(PATTERN_LEN - off);
                    if buf[done..done + k] != p2[off..off + k] {
                        first_bad = Some(pos + done);
                    }
                    done += k;
                }
                pos += n;
            }
            (pos as u64, h.finish(), first_bad)
        });
        let mut client = n1.run(|| {
            let addr = server_addr.parse().unwrap();
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap()
        });
        let p1 = pat.clone();
        let sender = s.spawn(move || {
            let total = e2e_bytes;
            client
                .set_write_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            let mut h = StreamHash::new();
            let mut sent = 0u64;
            while sent < total {
                let off = (sent % PATTERN_LEN as u64) as usize;
                let k = (PATTERN_LEN - off).min((total - sent) as usize);
                client.write_all(&p1[off..off + k]).expect("client write");
                h.update(&p1[off..off + k]);
                sent += k as u64;
            }
            client.shutdown(std::net::Shutdown::Write).unwrap();
            (sent, h.finish())
        });
        let sent = sender.join().unwrap();
        let recvd = server.join().unwrap();
        stop.store(true, Ordering::Release);
        (fwd.join().unwrap(), sent, recvd)
    });
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "gro e2e {label} v6={v6}: {} MiB in {secs:.1} s; A->B {} frames ({} GSO, {}..={} bytes, {} MiB of payload in GSO frames), B->A {}",
        e2e_bytes >> 20,
        fwd.to_b,
        fwd.gso,
        fwd.gso_min_len,
        fwd.gso_max_len,
        fwd.gso_payload >> 20,
        fwd.to_a
    );
    // The bytes.
    assert_eq!(sent.0, e2e_bytes);
    assert_eq!(recvd.2, None, "received stream differs from the pattern");
    assert_eq!((recvd.0, recvd.1), (sent.0, sent.1), "(bytes, hash)");
    // The GSO frames.
    assert!(fwd.gso > 0, "no GSO frame came up");
    assert!(
        fwd.gso_payload >= e2e_bytes / 2,
        "most data in GSO frames: {fwd:?}"
    );
    assert!(fwd.gso_min_len > 1514, "GSO frames exceed the MTU: {fwd:?}");
    assert!(fwd.gso_max_len <= 65_535 + 14);
    assert_eq!(fwd.gso_wrong, vec![], "GSO kind/size vs the flow's MSS");
    assert_eq!(fwd.gso_not_partial, 0);
    assert_eq!(fwd.big_plain, 0, "frames over the MTU are GSO frames");
    // One packet each, as is, both ways.
    assert_eq!(fwd.to_b, fwd.a_rx.total());
    assert_eq!(fwd.to_a, fwd.b_rx.total());
    // The counters.
    assert_eq!(fwd.a_rx.lro, fwd.gso);
    // Every GSO frame over 1518 bytes is in the largest size bucket (a GSO
    // frame of two short segments can be smaller).
    assert!(fwd.a_rx.size[6] >= fwd.gso_big);
    assert_rx_xstats(a, 0, &fwd.a_rx);
    assert_rx_xstats(b, 0, &fwd.b_rx);
    let as_sent = |rx: &Tally, chains: u64| Tally {
        size: rx.size,
        cast: rx.cast,
        multiseg: chains,
        ..Tally::default()
    };
    // Headers passed as they are: no request, so no TSO/checksum counted on tx.
    assert_eq!(
        fwd.a_rx_chains > 0,
        v6,
        "A's GSO frames are chains iff A's pool is"
    );
    assert_tx_xstats(b, 0, &as_sent(&fwd.a_rx, fwd.a_rx_chains));
    assert_tx_xstats(a, 0, &as_sent(&fwd.b_rx, fwd.b_rx_chains));
    let (sa, sb) = (a.stats().unwrap(), b.stats().unwrap());
    assert_eq!((sb.tx.packets, sb.tx.errors), (fwd.to_b, 0));
    assert_eq!((sa.tx.packets, sa.tx.errors), (fwd.to_a, 0));
    assert_eq!(
        (sa.rx.errors, sb.rx.errors, sa.rx.nombuf, sb.rx.nombuf),
        (0, 0, 0, 0)
    );
}

backend_tests!(rx_gro_end_to_end, rx_gro_end_to_end_ipv6_chained,);
