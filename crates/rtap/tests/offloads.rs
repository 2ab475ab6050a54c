//! Offloads against the real kernel, checked by value.
//!
//! Transmit offloads are verified where the kernel has finished them: a frame
//! sent with a checksum or segmentation request on port A (offloads on) is
//! routed by the namespace's IPv4/IPv6 forwarding out of port B (offloads off),
//! so the kernel completes the checksum / segments the frame in software before
//! B's reader gets it (an AF_PACKET capture on A would only see the partial
//! skb). Receive offloads are verified with the kernel's own TCP stack sending
//! through a tap with TSO on, end to end through a zero-copy forwarder. The
//! `packet_*` tests do the same with AF_PACKET ports (`PACKET_VNET_HDR`) as A
//! (and as both forwarder ports). Also:
//! the software checksum of a port without offloads, refused requests, and
//! every extended statistic by exact value.
//!
//! `DATA_VALID` on receive: the tap's write path ignores that flag (it acts on
//! `NEEDS_CSUM` only), so a frame the application marks valid is an ordinary
//! frame to the kernel. Frames the kernel itself verified are made with a plain
//! `IFF_NAPI` tap, whose frames go through GRO (software checksum check).

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use etherparse::{NetHeaders, PacketBuilder, PacketHeaders, TransportHeader};
use rtap::wire::vnet::{VnetHdr, F_DATA_VALID};
use rtap::*;

/// Source MAC of the frames the tests send (the kernel does not check it).
const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];
/// The static neighbour behind port B.
const PEER_MAC: &str = "02:00:00:00:00:22";
const SRC4: [u8; 4] = [10, 1, 0, 2];
const DST4: [u8; 4] = [10, 2, 0, 2];
const SRC6: [u8; 16] = [0xfd, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const DST6: [u8; 16] = [0xfd, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
/// First TCP sequence number of the test flows.
const SEQ0: u32 = 0xfff0_0000;
/// (IPv6, TCP) combinations.
const COMBOS: [(bool, bool); 4] = [(false, false), (false, true), (true, false), (true, true)];

fn rd16(f: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([f[i], f[i + 1]])
}

fn wr16(f: &mut [u8], i: usize, v: u16) {
    f[i..i + 2].copy_from_slice(&v.to_be_bytes());
}

/// Deterministic payload bytes.
fn payload(n: usize, salt: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(37).wrapping_add(salt) ^ (i >> 8) as u8)
        .collect()
}

/// An Ethernet/IP/TCP-or-UDP frame from SRC to DST with its correct L4 checksum
/// (computed by etherparse), no Ethernet padding.
fn l4_frame(dst_mac: [u8; 6], v6: bool, tcp: bool, data: &[u8]) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(HOST_MAC, dst_mac);
    let ip = if v6 {
        eth.ipv6(SRC6, DST6, 64)
    } else {
        eth.ipv4(SRC4, DST4, 64)
    };
    let mut out = Vec::new();
    if tcp {
        ip.tcp(40000, 5001, SEQ0, 64000)
            .ack(77)
            .psh()
            .write(&mut out, data)
            .unwrap();
    } else {
        ip.udp(40000, 5001).write(&mut out, data).unwrap();
    }
    out
}

/// Offset of the L4 checksum field in an [`l4_frame`].
fn csum_field(v6: bool, tcp: bool) -> usize {
    14 + if v6 { 40 } else { 20 } + if tcp { 16 } else { 6 }
}

/// An [`l4_frame`] whose checksum field holds garbage (never the right value).
fn garbled(frame: &[u8], v6: bool, tcp: bool) -> Vec<u8> {
    let mut f = frame.to_vec();
    let field = csum_field(v6, tcp);
    let good = rd16(&f, field);
    wr16(&mut f, field, !good ^ 0x5a5a);
    f
}

/// `pkt` with a checksum request.
fn with_csum(mut p: Packet) -> Packet {
    p.set_tx_offload(TxRequest {
        l4_csum: true,
        gso: Gso::None,
    });
    p
}

/// What a received frame carries, parsed by etherparse.
#[derive(Debug)]
struct Parsed {
    v6: bool,
    tcp: bool,
    /// TTL or hop limit.
    hops: u8,
    /// IPv4 header checksum is right (always true for IPv6).
    ip_csum_ok: bool,
    /// The L4 checksum field as received.
    field: u16,
    /// The L4 checksum etherparse computes over the frame.
    computed: u16,
    /// TCP sequence number (0 for UDP).
    seq: u32,
    /// TCP PSH, CWR and ECE flags.
    psh: bool,
    cwr: bool,
    ece: bool,
    /// UDP length field (0 for TCP).
    udp_len: u16,
    src: Vec<u8>,
    data: Vec<u8>,
}

fn parse(frame: &[u8]) -> Option<Parsed> {
    let h = PacketHeaders::from_ethernet_slice(frame).ok()?;
    let data = h.payload.slice().to_vec();
    let net = h.net.as_ref()?;
    let (v6, hops, ip_csum_ok, src) = match net {
        NetHeaders::Ipv4(ip, _) => (
            false,
            ip.time_to_live,
            ip.calc_header_checksum() == ip.header_checksum,
            ip.source.to_vec(),
        ),
        NetHeaders::Ipv6(ip, _) => (true, ip.hop_limit, true, ip.source.to_vec()),
        _ => return None,
    };
    let (cwr, ece) = match h.transport.as_ref()? {
        TransportHeader::Tcp(t) => (t.cwr, t.ece),
        _ => (false, false),
    };
    let (tcp, field, computed, seq, psh, udp_len) = match (net, h.transport.as_ref()?) {
        (NetHeaders::Ipv4(ip, _), TransportHeader::Tcp(t)) => (
            true,
            t.checksum,
            t.calc_checksum_ipv4(ip, &data).ok()?,
            t.sequence_number,
            t.psh,
            0,
        ),
        (NetHeaders::Ipv6(ip, _), TransportHeader::Tcp(t)) => (
            true,
            t.checksum,
            t.calc_checksum_ipv6(ip, &data).ok()?,
            t.sequence_number,
            t.psh,
            0,
        ),
        (NetHeaders::Ipv4(ip, _), TransportHeader::Udp(u)) => (
            false,
            u.checksum,
            u.calc_checksum_ipv4(ip, &data).ok()?,
            0,
            false,
            u.length,
        ),
        (NetHeaders::Ipv6(ip, _), TransportHeader::Udp(u)) => (
            false,
            u.checksum,
            u.calc_checksum_ipv6(ip, &data).ok()?,
            0,
            false,
            u.length,
        ),
        _ => return None,
    };
    Some(Parsed {
        v6,
        tcp,
        hops,
        ip_csum_ok,
        field,
        computed,
        seq,
        psh,
        cwr,
        ece,
        udp_len,
        src,
        data,
    })
}

/// True for frames of the test flows (sent from SRC4/SRC6), whatever the kernel
/// sends of its own (IPv6 neighbour discovery, MLD).
fn from_test_host(f: &[u8]) -> bool {
    parse(f).is_some_and(|p| p.src == SRC4 || p.src == SRC6)
}

// ------------------------------------------------------------------ xstats

/// Frame size classes, as the xstats names them (RFC 2819 buckets, no FCS).
const SIZES: [&str; 7] = [
    "size_64_packets",
    "size_65_127_packets",
    "size_128_255_packets",
    "size_256_511_packets",
    "size_512_1023_packets",
    "size_1024_1518_packets",
    "size_1519_max_packets",
];
const CASTS: [&str; 3] = ["unicast_packets", "multicast_packets", "broadcast_packets"];

fn bucket(len: usize) -> usize {
    [64, 127, 255, 511, 1023, 1518]
        .iter()
        .position(|&hi| len <= hi)
        .unwrap_or(6)
}

fn cast(frame: &[u8]) -> usize {
    if frame[..6] == [0xff; 6] {
        2
    } else if frame[0] & 1 == 1 {
        1
    } else {
        0
    }
}

/// Expected xstats of one queue direction, counted by the test from the
/// packets themselves.
#[derive(Clone, Debug, Default, PartialEq)]
struct Tally {
    size: [u64; 7],
    cast: [u64; 3],
    // rx
    lro: u64,
    good: u64,
    partial: u64,
    unknown: u64,
    // tx
    tso: u64,
    uso: u64,
    csum_offload: u64,
    multiseg: u64,
    sw_csum: u64,
    rejected: u64,
}

impl Tally {
    fn total(&self) -> u64 {
        self.size.iter().sum()
    }

    /// Counts a received packet.
    fn rx(&mut self, p: &Packet) {
        self.size[bucket(p.len())] += 1;
        self.cast[cast(p.data())] += 1;
        if p.rx_gso() != RxGso::None {
            self.lro += 1;
        }
        match p.rx_csum() {
            RxCsum::Good => self.good += 1,
            RxCsum::Partial => self.partial += 1,
            RxCsum::Unknown => self.unknown += 1,
        }
    }

    /// Counts a frame handed to the kernel (not refused).
    fn tx(&mut self, frame: &[u8], segs: usize) {
        self.size[bucket(frame.len())] += 1;
        self.cast[cast(frame)] += 1;
        if segs > 1 {
            self.multiseg += 1;
        }
    }

    fn common(&self, dir: &str, q: u16) -> Vec<(String, u64)> {
        SIZES
            .iter()
            .zip(self.size)
            .chain(CASTS.iter().zip(self.cast))
            .map(|(n, c)| (format!("{dir}_q{q}_{n}"), c))
            .collect()
    }

    /// Every rx xstat of queue `q` as this tally predicts it (csum_bad is always
    /// 0 on a tap; alloc failures and truncated frames are 0 unless given).
    fn rx_names(&self, q: u16, alloc_failures: u64, truncated: u64) -> Vec<(String, u64)> {
        let mut v = self.common("rx", q);
        for (n, c) in [
            ("lro_packets", self.lro),
            ("csum_good", self.good),
            ("csum_partial", self.partial),
            ("csum_unknown", self.unknown),
            ("csum_bad", 0),
            ("alloc_failures", alloc_failures),
            ("truncated", truncated),
        ] {
            v.push((format!("rx_q{q}_{n}"), c));
        }
        v
    }

    /// Every tx xstat of queue `q` as this tally predicts it.
    fn tx_names(&self, q: u16) -> Vec<(String, u64)> {
        let mut v = self.common("tx", q);
        for (n, c) in [
            ("tso_packets", self.tso),
            ("uso_packets", self.uso),
            ("csum_offload_packets", self.csum_offload),
            ("multiseg_packets", self.multiseg),
            ("sw_csum_packets", self.sw_csum),
            ("offload_rejected", self.rejected),
        ] {
            v.push((format!("tx_q{q}_{n}"), c));
        }
        v
    }
}

/// The port's current values of the named xstats.
fn current(port: &Port, want: &[(String, u64)]) -> Vec<(String, u64)> {
    let all = port.xstats();
    want.iter()
        .map(|(n, _)| {
            let v = all
                .iter()
                .find(|x| &x.name == n)
                .unwrap_or_else(|| panic!("no xstat called {n}"))
                .value;
            (n.clone(), v)
        })
        .collect()
}

/// Asserts every rx xstat of queue `q` against `t`.
#[track_caller]
fn assert_rx_xstats(port: &Port, q: u16, t: &Tally) {
    let want = t.rx_names(q, 0, 0);
    assert_eq!(current(port, &want), want, "rx xstats of {}", port.name());
}

/// Asserts every tx xstat of queue `q` against `t`.
#[track_caller]
fn assert_tx_xstats(port: &Port, q: u16, t: &Tally) {
    let want = t.tx_names(q);
    assert_eq!(current(port, &want), want, "tx xstats of {}", port.name());
}

// ------------------------------------------------------------------ setups

/// Port B of a router: offloads off, 10.2.0.1/24 and fd02::1/64, the static
/// neighbour 10.2.0.2 / fd02::2 behind it, forwarding on. IPv6 must be on.
fn router_b(name: &str, backend: BackendKind) -> Port {
    let mut b = open(
        TapConfig::new(name)
            .offloads(Offloads::NONE)
            .backend(backend),
    );
    assert_eq!(b.offloads(), Offloads::NONE);
    b.start().unwrap();
    ip(&["addr", "add", "10.2.0.1/24", "dev", name]);
    ip(&["addr", "add", "fd02::1/64", "dev", name, "nodad"]);
    sysctl("net/ipv4/ip_forward", "1");
    sysctl("net/ipv6/conf/all/forwarding", "1");
    for dst in ["10.2.0.2", "fd02::2"] {
        ip(&[
            "neigh",
            "add",
            dst,
            "lladdr",
            PEER_MAC,
            "dev",
            name,
            "nud",
            "permanent",
        ]);
    }
    b
}

/// Two ports in this thread's namespace with forwarding between them: A
/// (offloads on, 10.1.0.1/24, fd01::1/64) and B ([`router_b`]). Frames written
/// into A addressed to A's MAC from 10.1.0.2 to 10.2.0.2 (or fd01::2 to
/// fd02::2) go out of B.
struct Router {
    a: Port,
    b: Port,
    a_mac: [u8; 6],
}

impl Router {
    /// Call after [`netns`].
    fn new(tag: &str, backend: BackendKind) -> Router {
        enable_ipv6();
        let an = format!("{tag}a");
        let mut a = open(
            TapConfig::new(an.as_str())
                .offloads(Offloads::ALL)
                .backend(backend),
        );
        assert_eq!(a.offloads(), offloads_all_here(), "{:?}", a.offload_notes());
        if !has_uso() {
            assert!(
                a.offload_notes().iter().any(|n| n.contains("6.2")),
                "dropping USO is explained: {:?}",
                a.offload_notes()
            );
        }
        a.start().unwrap();
        ip(&["addr", "add", "10.1.0.1/24", "dev", &an]);
        ip(&["addr", "add", "fd01::1/64", "dev", &an, "nodad"]);
        let b = router_b(&format!("{tag}b"), backend);
        let a_mac = a.link().unwrap().mac.expect("tap has a MAC").octets();
        Router { a, b, a_mac }
    }
}

impl Router {
    /// The same with A an AF_PACKET port (offloads on) on a veth `{tag}a`, whose
    /// peer `{tag}k` is the router's interface with 10.1.0.1/24 and fd01::1/64.
    /// Call after [`netns`].
    fn packet(tag: &str) -> Router {
        enable_ipv6();
        let (an, kn) = (format!("{tag}a"), format!("{tag}k"));
        ip(&["link", "add", &an, "type", "veth", "peer", "name", &kn]);
        ip(&["link", "set", &kn, "address", "02:00:00:00:01:01"]);
        ip(&["addr", "add", "10.1.0.1/24", "dev", &kn]);
        ip(&["addr", "add", "fd01::1/64", "dev", &kn, "nodad"]);
        ip(&["link", "set", &kn, "up"]);
        let mut a = Port::open(PacketConfig::new(an.as_str()).offload(true)).unwrap();
        assert_eq!(a.offloads(), offloads_all_here(), "{:?}", a.offload_notes());
        a.start().unwrap();
        wait_oper_up(&kn);
        let b = router_b(&format!("{tag}b"), BackendKind::Uring);
        Router {
            a,
            b,
            a_mac: [0x02, 0, 0, 0, 0x01, 0x01],
        }
    }
}

/// Polls `rxq` until `want` packets satisfying `pick` arrived or `timeout`
/// passed. Returns the picked packets (in arrival order) and the tally of every
/// packet received, picked or not (for exact xstats checks).
fn rx_pick(
    rxq: &mut RxQueue,
    want: usize,
    timeout: Duration,
    pick: impl Fn(&Packet) -> bool,
) -> (Vec<Packet>, Tally) {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut t = Tally::default();
    let mut burst = Vec::with_capacity(64);
    while got.len() < want && Instant::now() < deadline {
        let n = rxq.rx_burst(&mut burst, 64).expect("rx_burst");
        for p in burst.drain(..) {
            t.rx(&p);
            if pick(&p) {
                got.push(p);
            }
        }
        if n == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    (got, t)
}

/// Frames of the test flows received within `quiet` (checks nothing more came).
fn rx_quiet(rxq: &mut RxQueue, quiet: Duration, t: &mut Tally) -> usize {
    let (got, more) = rx_pick(rxq, usize::MAX, quiet, |p| from_test_host(p.data()));
    for (a, b) in t.size.iter_mut().zip(more.size) {
        *a += b;
    }
    for (a, b) in t.cast.iter_mut().zip(more.cast) {
        *a += b;
    }
    t.lro += more.lro;
    t.good += more.good;
    t.partial += more.partial;
    t.unknown += more.unknown;
    got.len()
}

// ------------------------------------------------------------------- tests

/// Test 1: the kernel finishes a requested checksum, checked by value after
/// routing, for UDP and TCP over IPv4 and IPv6. The field is garbage when sent;
/// what B reads carries the right checksum (recomputed by etherparse, and equal
/// to the one etherparse computed when building the frame).
fn tx_csum_offload_by_value(backend: BackendKind) {
    netns();
    tx_csum_by_value(Router::new("ocs", backend));
}

/// Test 1 with A an AF_PACKET port: the requests go through `PACKET_VNET_HDR`.
#[test]
fn packet_tx_csum_offload_by_value() {
    netns();
    tx_csum_by_value(Router::packet("pcs"));
}

fn tx_csum_by_value(r: Router) {
    let pool = pool();
    let mut rxb = r.b.rx_queue(0, &pool).unwrap();
    let mut txa = r.a.tx_queue(0).unwrap();
    let mut want = Vec::new();
    let mut ta = Tally::default();
    for (i, &(v6, tcp)) in COMBOS.iter().enumerate() {
        // Odd lengths: the last byte is half a word.
        let data = payload(101 + 200 * i, i as u8);
        let f = l4_frame(r.a_mac, v6, tcp, &data);
        let good = rd16(&f, csum_field(v6, tcp));
        let g = garbled(&f, v6, tcp);
        ta.tx(&g, 1);
        ta.csum_offload += 1;
        tx_all(&mut txa, vec![with_csum(pool.alloc_from(&g).unwrap())]);
        want.push((v6, tcp, good, data));
    }
    assert!(txa.flush(WAIT));
    let (got, mut tb) = rx_pick(&mut rxb, 4, WAIT, |p| from_test_host(p.data()));
    assert_eq!(got.len(), 4, "routed frames missing");
    let mut kinds = Vec::new();
    for p in &got {
        assert_eq!(p.rx_csum(), RxCsum::Unknown, "B has no offloads");
        assert_eq!(p.rx_gso(), RxGso::None);
        let v = parse(&p.to_vec()).unwrap();
        let (_, _, good, data) = want.iter().find(|w| (w.0, w.1) == (v.v6, v.tcp)).unwrap();
        assert_eq!(
            (v.field, v.computed),
            (*good, *good),
            "v6={} tcp={}: (checksum received, recomputed) vs the right one",
            v.v6,
            v.tcp
        );
        assert_eq!(&v.data, data);
        assert_eq!(v.hops, 63, "forwarded once");
        assert!(v.ip_csum_ok);
        kinds.push((v.v6, v.tcp));
    }
    kinds.sort_unstable();
    assert_eq!(kinds, COMBOS, "one frame of each kind");
    assert_eq!(rx_quiet(&mut rxb, Duration::from_millis(100), &mut tb), 0);
    assert_tx_xstats(&r.a, 0, &ta);
    assert_rx_xstats(&r.b, 0, &tb);
    assert_eq!(tb.unknown, tb.total(), "B reads plain frames only");
    let st = r.a.stats().unwrap();
    assert_eq!((st.tx.packets, st.tx.errors), (4, 0));
}

/// Test 2: TSO and USO. One 60000-byte TCP (UDP) payload per IP version, sent
/// as one frame with `Gso::Tcp { mss: 1400 }` (`Gso::Udp { size: 1400 }`), is
/// segmented by the kernel on its way out of B: exactly 43 segments, 42 of 1400
/// bytes and one of 1200, each with a right checksum, consecutive sequence
/// numbers (PSH on the last only) or UDP lengths, and the payload intact.
/// Before Linux 6.2 the tap does not know USO: the kernel refuses the UDP
/// frames, which the port counts as tx errors, and nothing leaves B.
fn tso_uso_segmented_by_kernel(backend: BackendKind) {
    netns();
    tso_uso_by_value(Router::new("oso", backend));
}

/// Test 2 with A an AF_PACKET port. Before Linux 6.2 the kernel refuses the
/// UDP frames (`TP_STATUS_WRONG_FORMAT`), counted as tx errors.
#[test]
fn packet_tso_uso_segmented_by_kernel() {
    netns();
    tso_uso_by_value(Router::packet("pso"));
}

fn tso_uso_by_value(r: Router) {
    const LEN: usize = 60_000;
    const MSS: usize = 1400;
    let pool = pool();
    let mut rxb = r.b.rx_queue(0, &pool).unwrap();
    let mut txa = r.a.tx_queue(0).unwrap();
    let mut ta = Tally::default();
    let mut tb = Tally::default();
    for (i, &(v6, tcp)) in COMBOS.iter().enumerate() {
        let data = payload(LEN, 50 + i as u8);
        let f = garbled(&l4_frame(r.a_mac, v6, tcp, &data), v6, tcp);
        let mut p = pool.alloc_from(&f).unwrap();
        assert!(p.nb_segs() > 1, "a 60 KB frame is a chain of pool buffers");
        ta.tx(&f, p.nb_segs());
        ta.csum_offload += 1;
        let gso = if tcp {
            ta.tso += 1;
            Gso::Tcp {
                mss: MSS as u16,
                ecn: false,
            }
        } else {
            ta.uso += 1;
            Gso::Udp { size: MSS as u16 }
        };
        p.set_tx_offload(TxRequest { l4_csum: true, gso });
        tx_all(&mut txa, vec![p]);
        assert!(txa.flush(WAIT));
        let refused = !tcp && !has_uso();
        let nseg = if refused { 0 } else { LEN.div_ceil(MSS) };
        let wait = if refused {
            Duration::from_millis(300)
        } else {
            WAIT
        };
        let (got, t) = rx_pick(&mut rxb, nseg.max(1), wait, |p| from_test_host(p.data()));
        for (a, b) in tb.size.iter_mut().zip(t.size) {
            *a += b;
        }
        for (a, b) in tb.cast.iter_mut().zip(t.cast) {
            *a += b;
        }
        tb.unknown += t.unknown;
        if refused {
            assert!(
                got.is_empty(),
                "v6={v6}: a kernel without USO sent segments"
            );
            continue;
        }
        assert_eq!(nseg, 43);
        let what = format!("v6={v6} tcp={tcp}");
        assert_eq!(got.len(), nseg, "{what}: segments");
        let mut joined = Vec::with_capacity(LEN);
        for (k, s) in got.iter().enumerate() {
            let v = parse(&s.to_vec()).unwrap();
            assert_eq!((v.v6, v.tcp), (v6, tcp), "{what}");
            let want_len = if k + 1 < nseg { MSS } else { LEN - MSS * k };
            assert_eq!(v.data.len(), want_len, "{what}: segment {k}");
            assert_eq!(
                (v.field, v.computed),
                (v.computed, v.computed),
                "{what}: segment {k} checksum"
            );
            assert!(v.ip_csum_ok, "{what}: segment {k} IPv4 header checksum");
            assert_eq!(v.hops, 63);
            if tcp {
                assert_eq!(
                    v.seq,
                    SEQ0.wrapping_add((MSS * k) as u32),
                    "{what}: segment {k}"
                );
                assert_eq!(v.psh, k + 1 == nseg, "{what}: PSH on the last segment only");
            } else {
                assert_eq!(usize::from(v.udp_len), 8 + want_len, "{what}: segment {k}");
            }
            assert_eq!(s.rx_csum(), RxCsum::Unknown);
            joined.extend_from_slice(&v.data);
        }
        assert!(joined == data, "{what}: payload differs after segmentation");
    }
    assert_eq!(rx_quiet(&mut rxb, Duration::from_millis(100), &mut tb), 0);
    assert_tx_xstats(&r.a, 0, &ta);
    assert_eq!((ta.tso, ta.uso, ta.multiseg), (2, 2, 4));
    assert_rx_xstats(&r.b, 0, &tb);
    let refused = if has_uso() { 0 } else { 2 };
    assert!(
        tb.size[5] >= (4 - refused) * 43,
        "segments are 1024..1518 bytes: {tb:?}"
    );
    let st = r.a.stats().unwrap();
    assert_eq!((st.tx.packets, st.tx.errors), (4 - refused, refused));
}

/// TSO with ECN (`Gso::Tcp { ecn: true }`, virtio `GSO_ECN`): a super-frame
/// with CWR and ECE set comes out as segments with ECE on all and CWR on the
/// first only (the sender reduced its window once), checksums right.
fn tso_ecn_keeps_cwr_on_first_segment(backend: BackendKind) {
    netns();
    let r = Router::new("oecn", backend);
    let pool = pool();
    let mut rxb = r.b.rx_queue(0, &pool).unwrap();
    let mut txa = r.a.tx_queue(0).unwrap();
    let data = payload(5000, 3);
    let mut f = Vec::new();
    PacketBuilder::ethernet2(HOST_MAC, r.a_mac)
        .ipv4(SRC4, DST4, 64)
        .tcp(40000, 5001, SEQ0, 64000)
        .ack(1)
        .ece()
        .cwr()
        .write(&mut f, &data)
        .unwrap();
    let mut p = pool.alloc_from(&garbled(&f, false, true)).unwrap();
    p.set_tx_offload(TxRequest {
        l4_csum: true,
        gso: Gso::Tcp {
            mss: 1000,
            ecn: true,
        },
    });
    tx_all(&mut txa, vec![p]);
    assert!(txa.flush(WAIT));
    let (got, _) = rx_pick(&mut rxb, 5, WAIT, |p| from_test_host(p.data()));
    let segs: Vec<Parsed> = got.iter().map(|p| parse(&p.to_vec()).unwrap()).collect();
    let flags: Vec<(u32, usize, bool, bool)> = segs
        .iter()
        .map(|v| (v.seq.wrapping_sub(SEQ0), v.data.len(), v.cwr, v.ece))
        .collect();
    assert_eq!(
        flags,
        (0..5)
            .map(|k| (k * 1000, 1000, k == 0, true))
            .collect::<Vec<_>>(),
        "(seq offset, payload, CWR, ECE) per segment"
    );
    for v in &segs {
        assert_eq!(v.field, v.computed);
    }
    assert_eq!(
        segs.iter().flat_map(|v| v.data.clone()).collect::<Vec<_>>(),
        data
    );
    assert_eq!(r.a.xstat("tx_q0_tso_packets"), Some(1));
}

/// A tap (not rtap) with `IFF_NAPI`: frames written into it go through the
/// kernel's GRO, which verifies TCP/UDP checksums in software and marks the
/// good ones `CHECKSUM_UNNECESSARY`.
fn napi_tap(name: &str) -> std::fs::File {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .unwrap();
    // SAFETY: ifreq is plain data; all zero is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_NAPI) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one ifreq, which ifr is.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), libc::TUNSETIFF, &mut ifr as *mut libc::ifreq) };
    assert_eq!(
        r,
        0,
        "TUNSETIFF IFF_NAPI: {}",
        std::io::Error::last_os_error()
    );
    f
}

/// csum_good: frames whose checksum the kernel verified reach the reader with
/// `DATA_VALID`. The kernel verifies TCP/UDP checksums in software in GRO: frames
/// written into a NAPI tap with right checksums, routed out of B, arrive
/// flagged `Good`; frames with a wrong checksum are forwarded unverified, flagged
/// `Unknown`, the wrong checksum untouched.
fn rx_csum_good_after_kernel_gro(backend: BackendKind) {
    netns();
    enable_ipv6();
    let b = router_b("ogdb", backend);
    let mut napi = napi_tap("ogdn");
    let mac = [0x02, 0, 0, 0, 0, 0x33];
    ip(&["link", "set", "dev", "ogdn", "address", "02:00:00:00:00:33"]);
    ip(&["link", "set", "dev", "ogdn", "up"]);
    ip(&["addr", "add", "10.1.0.1/24", "dev", "ogdn"]);
    ip(&["addr", "add", "fd01::1/64", "dev", "ogdn", "nodad"]);
    let pool = pool();
    let mut rxb = b.rx_queue(0, &pool).unwrap();
    // Four right, two wrong (TCP/IPv4 and UDP/IPv6).
    let mut sent = Vec::new();
    for (i, &(v6, tcp)) in COMBOS.iter().enumerate() {
        let f = l4_frame(mac, v6, tcp, &payload(300 + i, i as u8));
        napi.write_all(&f).unwrap();
        sent.push((v6, tcp, true, f));
    }
    for (v6, tcp) in [(false, true), (true, false)] {
        let f = garbled(&l4_frame(mac, v6, tcp, &payload(500, 9)), v6, tcp);
        napi.write_all(&f).unwrap();
        sent.push((v6, tcp, false, f));
    }
    let (got, mut t) = rx_pick(&mut rxb, 6, WAIT, |p| from_test_host(p.data()));
    assert_eq!(got.len(), 6);
    for p in &got {
        let v = parse(&p.to_vec()).unwrap();
        let right = v.field == v.computed;
        let (_, _, ok, f) = sent
            .iter()
            .find(|s| (s.0, s.1, s.2) == (v.v6, v.tcp, right))
            .unwrap_or_else(|| panic!("unexpected frame {v:?}"));
        assert_eq!(
            v.field,
            rd16(f, csum_field(v.v6, v.tcp)),
            "checksum changed"
        );
        let want = if *ok { RxCsum::Good } else { RxCsum::Unknown };
        assert_eq!(p.rx_csum(), want, "v6={} tcp={} right={right}", v.v6, v.tcp);
        assert_eq!(
            p.vnet_hdr().flags,
            if *ok { F_DATA_VALID } else { 0 },
            "only the flag, no partial checksum info"
        );
    }
    assert_eq!(rx_quiet(&mut rxb, Duration::from_millis(100), &mut t), 0);
    assert_eq!(t.good, 4);
    assert_rx_xstats(&b, 0, &t);
}

/// `DATA_VALID` set by the application on transmit is not something the tap
/// honours (its write path only acts on `NEEDS_CSUM`): the frame is an ordinary
/// unverified one for the kernel and comes out of B flagged `Unknown`.
fn tx_data_valid_not_honoured_by_tap(backend: BackendKind) {
    netns();
    let r = Router::new("odv", backend);
    let pool = pool();
    let mut rxb = r.b.rx_queue(0, &pool).unwrap();
    let mut txa = r.a.tx_queue(0).unwrap();
    for &(v6, tcp) in &COMBOS {
        let mut p = pool
            .alloc_from(&l4_frame(r.a_mac, v6, tcp, &payload(100, 1)))
            .unwrap();
        p.set_vnet_hdr(VnetHdr {
            flags: F_DATA_VALID,
            ..VnetHdr::default()
        });
        tx_all(&mut txa, vec![p]);
    }
    assert!(txa.flush(WAIT));
    let (got, mut t) = rx_pick(&mut rxb, 4, WAIT, |p| from_test_host(p.data()));
    assert_eq!(got.len(), 4);
    for p in &got {
        assert_eq!(p.rx_csum(), RxCsum::Unknown);
        let v = parse(p.data()).unwrap();
        assert_eq!(v.field, v.computed);
    }
    assert_eq!(rx_quiet(&mut rxb, Duration::from_millis(100), &mut t), 0);
    assert_eq!((t.good, t.unknown), (0, t.total()));
    assert_rx_xstats(&r.b, 0, &t);
    // The header went as set: no offload request, nothing counted as one.
    assert_eq!(r.a.xstat("tx_q0_csum_offload_packets"), Some(0));
}

/// Small pool buffers (448 frame bytes in the first, 512 after), for chains.
fn small_pool() -> Pool {
    Pool::new(PoolConfig::default().count(1024).buf_size(512).headroom(64)).unwrap()
}

/// Test 3: a port with offloads off computes requested checksums itself: the
/// frames the kernel gets (AF_PACKET capture on the tap) are byte for byte the
/// frames with their right checksum, also for chained packets, and
/// `tx_q0_sw_csum_packets` counts exactly those with a request.
fn sw_csum_when_offloads_off(backend: BackendKind) {
    netns();
    let port = started("oswc0", backend, 1);
    assert_eq!(port.offloads(), Offloads::NONE);
    let pool = small_pool();
    let cap = PacketSocket::bind(port.ifindex());
    let mut txq = port.tx_queue(0).unwrap();
    let mac = [0x02, 0, 0, 0, 0, 0x44];
    let mut frames = Vec::new();
    for (i, &(v6, tcp)) in COMBOS.iter().enumerate() {
        frames.push((
            v6,
            tcp,
            l4_frame(mac, v6, tcp, &payload(3 + 77 * i, i as u8)),
        ));
    }
    // Chains with odd segment boundaries.
    frames.push((false, false, l4_frame(mac, false, false, &payload(3001, 7))));
    frames.push((true, true, l4_frame(mac, true, true, &payload(2999, 8))));
    let mut t = Tally::default();
    let mut pkts = Vec::new();
    for (v6, tcp, f) in &frames {
        let p = with_csum(pool.alloc_from(&garbled(f, *v6, *tcp)).unwrap());
        t.tx(f, p.nb_segs());
        t.sw_csum += 1;
        pkts.push(p);
    }
    assert_eq!(t.multiseg, 2, "two chains");
    // A frame without a request goes out as it is, garbage included.
    let plain = garbled(&frames[1].2, false, true);
    pkts.push(pool.alloc_from(&plain).unwrap());
    t.tx(&plain, 1);
    tx_all(&mut txq, pkts);
    assert!(txq.flush(WAIT));
    let mut seen = Vec::new();
    while let Some(f) = cap.recv_incoming(Duration::from_millis(300)) {
        seen.push(f);
    }
    let mut want: Vec<Vec<u8>> = frames.iter().map(|f| f.2.clone()).collect();
    want.push(plain);
    assert_eq!(seen.len(), want.len(), "frames captured");
    for (s, w) in seen.iter().zip(&want) {
        assert!(s == w, "captured frame differs from the right one");
    }
    for s in &seen[..frames.len()] {
        let v = parse(s).unwrap();
        assert_eq!(v.field, v.computed);
    }
    assert_tx_xstats(&port, 0, &t);
    assert_eq!(port.xstat("tx_q0_sw_csum_packets"), Some(6));
    let st = port.stats().unwrap();
    assert_eq!((st.tx.packets, st.tx.errors), (7, 0));
    drop(txq);
    assert_pool_full(&pool);
}

/// Test 4: requests that cannot be honoured are dropped before the kernel,
/// counted in `tx_q0_offload_rejected` and as tx errors; `tx_burst` still
/// reports them as taken and their buffers go back to the pool.
fn offload_requests_refused(backend: BackendKind) {
    netns();
    let mut on = open(
        TapConfig::new("orjon")
            .offloads(Offloads::ALL)
            .backend(backend),
    );
    on.start().unwrap();
    let off = started("orjoff", backend, 1);
    let pool = pool();
    let cap_on = PacketSocket::bind(on.ifindex());
    let cap_off = PacketSocket::bind(off.ifindex());
    let mut tx_on = on.tx_queue(0).unwrap();
    let mut tx_off = off.tx_queue(0).unwrap();
    let mac = [0x02, 0, 0, 0, 0, 0x55];
    let tcp = l4_frame(mac, false, true, &payload(3000, 1));
    let udp = l4_frame(mac, true, false, &payload(3000, 2));
    let (raw1, raw2) = (test_frame(100, 1), test_frame(100, 2));
    let tso = |mss| Gso::Tcp { mss, ecn: false };
    let req = |l4_csum, gso| TxRequest { l4_csum, gso };
    let bad_on: Vec<(&str, &[u8], TxRequest)> = vec![
        ("MSS 0", &tcp, req(true, tso(0))),
        ("UDP size 0", &udp, req(true, Gso::Udp { size: 0 })),
        ("TSO on a UDP frame", &udp, req(true, tso(1400))),
        (
            "USO on a TCP frame",
            &tcp,
            req(false, Gso::Udp { size: 1400 }),
        ),
        ("checksum of a non-IP frame", &raw1, req(true, Gso::None)),
    ];
    let bad_off: Vec<(&str, &[u8], TxRequest)> = vec![
        ("TSO without offloads", &tcp, req(true, tso(1400))),
        (
            "USO without offloads",
            &udp,
            req(true, Gso::Udp { size: 1400 }),
        ),
        ("checksum of a non-IP frame", &raw2, req(true, Gso::None)),
    ];
    for (port, txq, bad) in [(&on, &mut tx_on, &bad_on), (&off, &mut tx_off, &bad_off)] {
        for (i, (what, f, r)) in bad.iter().enumerate() {
            let mut p = pool.alloc_from(f).unwrap();
            p.set_tx_offload(*r);
            let mut v = vec![p];
            assert_eq!(txq.tx_burst(&mut v).unwrap(), 1, "{what}: taken");
            assert!(v.is_empty());
            assert!(txq.flush(WAIT));
            let n = i as u64 + 1;
            assert_eq!(port.xstat("tx_q0_offload_rejected"), Some(n), "{what}");
            let st = port.stats().unwrap();
            assert_eq!((st.tx.packets, st.tx.errors), (0, n), "{what}");
            assert_eq!(pool.available(), pool.capacity() as usize, "{what}");
        }
    }
    // Mixed with good frames in one burst: only the good ones go, in order.
    let mut v = Vec::new();
    for (i, (_, f, r)) in bad_on.iter().take(2).enumerate() {
        let mut p = pool.alloc_from(f).unwrap();
        p.set_tx_offload(*r);
        v.push(p);
        v.push(pool.alloc_from(&test_frame(80, 10 + i as u32)).unwrap());
    }
    assert_eq!(tx_on.tx_burst(&mut v).unwrap(), 4);
    assert!(v.is_empty());
    assert!(tx_on.flush(WAIT));
    assert_eq!(
        cap_on.recv_ours(3, Duration::from_millis(300)),
        vec![test_frame(80, 10), test_frame(80, 11)]
    );
    // Nothing else reached the kernel on either port.
    assert_eq!(cap_on.recv_incoming(Duration::from_millis(200)), None);
    assert_eq!(cap_off.recv_incoming(Duration::from_millis(200)), None);
    let mut t = Tally {
        rejected: 7,
        ..Tally::default()
    };
    t.tx(&test_frame(80, 10), 1);
    t.tx(&test_frame(80, 11), 1);
    assert_tx_xstats(&on, 0, &t);
    let st = on.stats().unwrap();
    assert_eq!((st.tx.packets, st.tx.errors), (2, 7));
    let t = Tally {
        rejected: 3,
        ..Tally::default()
    };
    assert_tx_xstats(&off, 0, &t);
    drop((tx_on, tx_off));
    assert_pool_full(&pool);
}

/// A burst larger than the tx ring with a refused packet in front: only packets
/// whose request was carried out may go to the kernel. Each frame carries a
/// garbage checksum and a request the port (offloads off) computes in software,
/// so a packet sent without its preparation shows as a wrong checksum. (The
/// io_uring backends used to fill the ring's 4 slots with the 3 packets
/// prepared plus the next one, unprepared: frame 3 left with its garbage.)
fn tx_burst_sends_only_prepared_packets(backend: BackendKind) {
    netns();
    let ring = RingConfig::default().tx_entries(4);
    let mut port = open(TapConfig::new("oprep0").backend(backend).ring(ring));
    port.start().unwrap();
    let pool = pool();
    let cap = PacketSocket::bind(port.ifindex());
    let mut txq = port.tx_queue(0).unwrap();
    let mac = [0x02, 0, 0, 0, 0, 0x66];
    let mut t = Tally {
        rejected: 1,
        ..Tally::default()
    };
    let mut first = pool
        .alloc_from(&l4_frame(mac, false, true, &payload(3000, 0)))
        .unwrap();
    first.set_tx_offload(TxRequest {
        l4_csum: true,
        gso: Gso::Tcp {
            mss: 1000,
            ecn: false,
        },
    });
    let mut pkts = vec![first];
    let mut want = Vec::new();
    for i in 0..11u8 {
        let f = l4_frame(mac, false, false, &payload(50 + usize::from(i), i));
        pkts.push(with_csum(
            pool.alloc_from(&garbled(&f, false, false)).unwrap(),
        ));
        t.tx(&f, 1);
        t.sw_csum += 1;
        want.push(f);
    }
    tx_all(&mut txq, pkts);
    assert!(txq.flush(WAIT));
    let mut seen = Vec::new();
    while let Some(f) = cap.recv_incoming(Duration::from_millis(300)) {
        seen.push(f);
    }
    assert_eq!(seen.len(), want.len());
    for (i, (s, w)) in seen.iter().zip(&want).enumerate() {
        let v = parse(s).unwrap();
        assert_eq!(
            (v.field, v.computed),
            (v.computed, v.computed),
            "frame {i} went out without its checksum"
        );
        assert!(s == w, "frame {i}");
    }
    assert_tx_xstats(&port, 0, &t);
    drop(txq);
    assert_pool_full(&pool);
}

// ------------------------------------------------------- rx GRO, end to end

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
            let mut p = Port::open(cfg).expect("open");
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
        let mut p = Port::open(PacketConfig::new(outer).offload(true)).unwrap();
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

// ------------------------------------------------------------------ xstats

/// Every xstat name of a queue, in the port's order.
fn names_of_queue(q: u16) -> Vec<String> {
    let rx = SIZES.iter().chain(&CASTS).chain(&[
        "lro_packets",
        "csum_good",
        "csum_partial",
        "csum_unknown",
        "csum_bad",
        "alloc_failures",
        "truncated",
    ]);
    let tx = SIZES.iter().chain(&CASTS).chain(&[
        "tso_packets",
        "uso_packets",
        "csum_offload_packets",
        "multiseg_packets",
        "sw_csum_packets",
        "offload_rejected",
    ]);
    rx.map(|n| format!("rx_q{q}_{n}"))
        .chain(tx.map(|n| format!("tx_q{q}_{n}")))
        .collect()
}

/// Test 6: names of a 2-queue port, exact values per queue for traffic of every
/// size class and cast in both directions with every kind of tx request, and
/// `reset_stats` zeroing them all.
fn xstats_names_values_and_reset(backend: BackendKind) {
    netns();
    let mut port = open(
        TapConfig::new("oxs0")
            .offloads(Offloads::ALL)
            .backend(backend)
            .queues(2),
    );
    port.start().unwrap();
    // Injecting frames over 1518 bytes needs the MTU (rx takes 64 KiB frames
    // anyway, TSO being on).
    ip(&["link", "set", "dev", "oxs0", "mtu", "9000"]);
    let names: Vec<String> = port.xstats().into_iter().map(|x| x.name).collect();
    let want: Vec<String> = (0..2).flat_map(names_of_queue).collect();
    assert_eq!(names, want);
    assert_eq!(want.len(), 2 * (17 + 16));
    assert!(port.xstats().iter().all(|x| x.value == 0), "fresh port");

    let pool = pool();
    let spool = small_pool();
    let inj = PacketSocket::injector(port.ifindex());
    let mut rxqs: Vec<RxQueue> = (0..2).map(|q| port.rx_queue(q, &pool).unwrap()).collect();
    let mut txqs: Vec<TxQueue> = (0..2).map(|q| port.tx_queue(q).unwrap()).collect();

    // Rx: 7 sizes x 3 casts x 16 flows.
    let dsts = [[0x02, 0, 0, 0, 0, 2], [0x01, 0, 0x5e, 0, 0, 7], [0xff; 6]];
    let mut frames = Vec::new();
    for (i, len) in [60usize, 100, 200, 300, 600, 1200, 2000].iter().enumerate() {
        for (j, dst) in dsts.iter().enumerate() {
            for flow in 0..16u16 {
                let seq = (i * 100 + j * 20) as u32 + u32::from(flow);
                let mut f = flow_frame(*len, flow, seq);
                f[..6].copy_from_slice(dst);
                frames.push(f);
            }
        }
    }
    let mut per = vec![Vec::new(), Vec::new()];
    assert_eq!(
        inject_and_receive(&inj, &frames, &mut rxqs, &mut per),
        frames.len()
    );
    for (q, pkts) in per.iter().enumerate() {
        assert!(!pkts.is_empty(), "queue {q} received nothing");
        let mut t = Tally::default();
        for p in pkts {
            t.rx(p);
        }
        assert_eq!(t.unknown, t.total(), "injected frames carry no flags");
        assert_rx_xstats(&port, q as u16, &t);
    }
    drop(per);

    // Tx: queue 0 gets every kind of request, queue 1 a few plain frames and one
    // checksum request.
    let mac = [0x02, 0, 0, 0, 0, 0x77];
    let mut t0 = Tally::default();
    let mut pkts = Vec::new();
    for (k, len) in [60usize, 100, 200, 300, 600, 1200, 2000].iter().enumerate() {
        let mut f = test_frame(*len, k as u32);
        f[..6].copy_from_slice(&dsts[k % 3]);
        t0.tx(&f, 1);
        pkts.push(pool.alloc_from(&f).unwrap());
    }
    let chain = test_frame(3000, 99);
    let p = spool.alloc_from(&chain).unwrap();
    t0.tx(&chain, p.nb_segs());
    pkts.push(p);
    let csum = l4_frame(mac, false, false, &payload(500, 3));
    t0.tx(&csum, 1);
    t0.csum_offload += 1;
    pkts.push(with_csum(pool.alloc_from(&csum).unwrap()));
    for (tcp, v6) in [(true, false), (false, true)] {
        let f = l4_frame(mac, v6, tcp, &payload(20_000, 4));
        let mut p = pool.alloc_from(&f).unwrap();
        t0.tx(&f, p.nb_segs());
        t0.csum_offload += 1;
        let gso = if tcp {
            t0.tso += 1;
            Gso::Tcp {
                mss: 1000,
                ecn: false,
            }
        } else {
            t0.uso += 1;
            Gso::Udp { size: 1000 }
        };
        p.set_tx_offload(TxRequest {
            l4_csum: false,
            gso,
        });
        pkts.push(p);
    }
    let mut rej = pool.alloc_from(&csum).unwrap();
    rej.set_tx_offload(TxRequest {
        l4_csum: true,
        gso: Gso::Tcp {
            mss: 100,
            ecn: true,
        },
    });
    pkts.push(rej);
    t0.rejected += 1;
    tx_all(&mut txqs[0], pkts);
    let mut t1 = Tally::default();
    let mut pkts = Vec::new();
    for k in 0..5 {
        let f = test_frame(100, 200 + k);
        t1.tx(&f, 1);
        pkts.push(pool.alloc_from(&f).unwrap());
    }
    let f = l4_frame(mac, true, true, &payload(64, 5));
    t1.tx(&f, 1);
    t1.csum_offload += 1;
    pkts.push(with_csum(pool.alloc_from(&f).unwrap()));
    tx_all(&mut txqs[1], pkts);
    for txq in &mut txqs {
        assert!(txq.flush(WAIT));
    }
    assert_eq!(t0.multiseg, 3, "the 3000-byte chain and both GSO frames");
    assert_eq!(t0.size[6], 4);
    assert_eq!(t0.cast, [6, 2, 3]);
    assert_tx_xstats(&port, 0, &t0);
    assert_tx_xstats(&port, 1, &t1);
    let st = port.stats().unwrap();
    // The rejected request; before Linux 6.2 also the USO frame, which the
    // kernel refuses (the tap does not know UDP segmentation there).
    let uso_refused = u64::from(!has_uso());
    assert_eq!(st.tx_queues[0].errors, 1 + uso_refused);
    assert_eq!(st.tx_queues[0].packets, t0.total() - uso_refused);

    // Reset zeroes everything; later traffic counts from zero.
    port.reset_stats().unwrap();
    assert!(
        port.xstats().iter().all(|x| x.value == 0),
        "{:?}",
        port.xstats()
    );
    tx_all(
        &mut txqs[1],
        vec![pool.alloc_from(&test_frame(70, 1)).unwrap()],
    );
    assert!(txqs[1].flush(WAIT));
    let nonzero: Vec<(String, u64)> = port
        .xstats()
        .into_iter()
        .filter(|x| x.value != 0)
        .map(|x| (x.name, x.value))
        .collect();
    assert_eq!(
        nonzero,
        vec![
            ("tx_q1_size_65_127_packets".to_string(), 1),
            ("tx_q1_broadcast_packets".to_string(), 1)
        ]
    );
    drop((rxqs, txqs));
    assert_pool_full(&pool);
    assert_pool_full(&spool);
}

/// Test 6 (continued): `rx_q0_alloc_failures` and `rx_q0_truncated` by exact
/// value, and zeroed by a reset.
fn xstats_alloc_failures_and_truncated(backend: BackendKind) {
    netns();
    let ring = RingConfig::default().rx_posted(16);
    let mut cfg = TapConfig::new("oxa0").backend(backend).ring(ring);
    cfg.port.max_frame = 1518;
    let mut port = open(cfg);
    port.start().unwrap();
    // io_uring lends 16 buffers to the kernel; read/write lends none for long.
    let lent = if backend == BackendKind::Uring { 16 } else { 0 };
    let pool = Pool::new(PoolConfig::default().count(lent + 8)).unwrap();
    let inj = PacketSocket::injector(port.ifindex());
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    for i in 0..40 {
        inj.send(&test_frame(100, i)).unwrap();
    }
    let hoard = rx_test_frames(&mut rxq, 40, Duration::from_millis(500));
    assert_eq!(hoard.len(), 8);
    drop(hoard);
    // A frame over max_frame, once the MTU lets it through.
    ip(&["link", "set", "dev", "oxa0", "mtu", "9000"]);
    inj.send(&test_frame(3000, 100)).unwrap();
    inj.send(&test_frame(100, 101)).unwrap();
    let got = rx_test_frames(&mut rxq, 1, WAIT);
    assert_eq!(got.len(), 1);
    assert_eq!(test_seq(got[0].data()), Some(101));
    drop(got);
    let mut t = Tally::default();
    t.size[1] = 9;
    t.cast[2] = 9;
    t.unknown = 9;
    let want = t.rx_names(0, 32, 1);
    assert_eq!(current(&port, &want), want);
    let st = port.stats().unwrap();
    assert_eq!((st.rx.packets, st.rx.nombuf, st.rx.errors), (9, 32, 1));
    port.reset_stats().unwrap();
    let want = Tally::default().rx_names(0, 0, 0);
    assert_eq!(current(&port, &want), want);
    drop(rxq);
    assert_pool_full(&pool);
}

backend_tests!(
    tx_csum_offload_by_value,
    tso_uso_segmented_by_kernel,
    tso_ecn_keeps_cwr_on_first_segment,
    rx_csum_good_after_kernel_gro,
    tx_data_valid_not_honoured_by_tap,
    sw_csum_when_offloads_off,
    offload_requests_refused,
    tx_burst_sends_only_prepared_packets,
    rx_gro_end_to_end,
    rx_gro_end_to_end_ipv6_chained,
    xstats_names_values_and_reset,
    xstats_alloc_failures_and_truncated,
);
