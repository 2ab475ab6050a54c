//! Helpers of the offload tests (`offload_*.rs`, `xstats.rs`): frames of the
//! test flows and their parsing, the expected extended statistics, and the
//! router the transmit tests send through.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use etherparse::{NetHeaders, PacketBuilder, PacketHeaders, TransportHeader};
use rtap::*;

use super::*;

/// Source MAC of the frames the tests send (the kernel does not check it).
pub const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];
/// The static neighbour behind port B.
pub const PEER_MAC: &str = "02:00:00:00:00:22";
pub const SRC4: [u8; 4] = [10, 1, 0, 2];
pub const DST4: [u8; 4] = [10, 2, 0, 2];
pub const SRC6: [u8; 16] = [0xfd, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
pub const DST6: [u8; 16] = [0xfd, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
/// First TCP sequence number of the test flows.
pub const SEQ0: u32 = 0xfff0_0000;
/// (IPv6, TCP) combinations.
pub const COMBOS: [(bool, bool); 4] = [(false, false), (false, true), (true, false), (true, true)];

pub fn rd16(f: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([f[i], f[i + 1]])
}

pub fn wr16(f: &mut [u8], i: usize, v: u16) {
    f[i..i + 2].copy_from_slice(&v.to_be_bytes());
}

/// Deterministic payload bytes.
pub fn payload(n: usize, salt: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(37).wrapping_add(salt) ^ (i >> 8) as u8)
        .collect()
}

/// An Ethernet/IP/TCP-or-UDP frame from SRC to DST with its correct L4 checksum
/// (computed by etherparse), no Ethernet padding.
pub fn l4_frame(dst_mac: [u8; 6], v6: bool, tcp: bool, data: &[u8]) -> Vec<u8> {
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
pub fn csum_field(v6: bool, tcp: bool) -> usize {
    14 + if v6 { 40 } else { 20 } + if tcp { 16 } else { 6 }
}

/// An [`l4_frame`] whose checksum field holds garbage (never the right value).
pub fn garbled(frame: &[u8], v6: bool, tcp: bool) -> Vec<u8> {
    let mut f = frame.to_vec();
    let field = csum_field(v6, tcp);
    let good = rd16(&f, field);
    wr16(&mut f, field, !good ^ 0x5a5a);
    f
}

/// `pkt` with a checksum request.
pub fn with_csum(mut p: Packet) -> Packet {
    p.set_tx_offload(TxRequest {
        l4_csum: true,
        gso: Gso::None,
    });
    p
}

/// A frame sent with a checksum request, as received: parsed, its L4
/// checksum the right one (`want` holds, per (IPv6, TCP), the right checksum
/// and the payload) and its payload intact.
#[track_caller]
pub fn assert_checksum_right(frame: &[u8], want: &[(bool, bool, u16, Vec<u8>)]) -> Parsed {
    let v = parse(frame).unwrap();
    let (_, _, good, data) = want.iter().find(|w| (w.0, w.1) == (v.v6, v.tcp)).unwrap();
    assert_eq!(
        (v.field, v.computed),
        (*good, *good),
        "v6={} tcp={}: (checksum received, recomputed) vs the right one",
        v.v6,
        v.tcp
    );
    assert_eq!(&v.data, data);
    v
}

/// What a received frame carries, parsed by etherparse.
#[derive(Debug)]
pub struct Parsed {
    pub v6: bool,
    pub tcp: bool,
    /// TTL or hop limit.
    pub hops: u8,
    /// IPv4 header checksum is right (always true for IPv6).
    pub ip_csum_ok: bool,
    /// The L4 checksum field as received.
    pub field: u16,
    /// The L4 checksum etherparse computes over the frame.
    pub computed: u16,
    /// TCP sequence number (0 for UDP).
    pub seq: u32,
    /// TCP PSH, CWR and ECE flags.
    pub psh: bool,
    pub cwr: bool,
    pub ece: bool,
    /// UDP length field (0 for TCP).
    pub udp_len: u16,
    pub src: Vec<u8>,
    pub data: Vec<u8>,
}

pub fn parse(frame: &[u8]) -> Option<Parsed> {
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
pub fn from_test_host(f: &[u8]) -> bool {
    parse(f).is_some_and(|p| p.src == SRC4 || p.src == SRC6)
}

// ------------------------------------------------------------------ xstats

/// Frame size classes, as the xstats names them (RFC 2819 buckets, no FCS).
pub const SIZES: [&str; 7] = [
    "size_64_packets",
    "size_65_127_packets",
    "size_128_255_packets",
    "size_256_511_packets",
    "size_512_1023_packets",
    "size_1024_1518_packets",
    "size_1519_max_packets",
];
pub const CASTS: [&str; 3] = ["unicast_packets", "multicast_packets", "broadcast_packets"];

pub fn bucket(len: usize) -> usize {
    [64, 127, 255, 511, 1023, 1518]
        .iter()
        .position(|&hi| len <= hi)
        .unwrap_or(6)
}

pub fn cast(frame: &[u8]) -> usize {
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
pub struct Tally {
    pub size: [u64; 7],
    pub cast: [u64; 3],
    // rx
    pub lro: u64,
    pub good: u64,
    pub partial: u64,
    pub unknown: u64,
    // tx
    pub tso: u64,
    pub uso: u64,
    pub csum_offload: u64,
    pub multiseg: u64,
    pub sw_csum: u64,
    pub rejected: u64,
}

impl Tally {
    pub fn total(&self) -> u64 {
        self.size.iter().sum()
    }

    /// Counts a received packet.
    pub fn rx(&mut self, p: &Packet) {
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
    pub fn tx(&mut self, frame: &[u8], segs: usize) {
        self.size[bucket(frame.len())] += 1;
        self.cast[cast(frame)] += 1;
        if segs > 1 {
            self.multiseg += 1;
        }
    }

    pub fn common(&self, dir: &str, q: u16) -> Vec<(String, u64)> {
        SIZES
            .iter()
            .zip(self.size)
            .chain(CASTS.iter().zip(self.cast))
            .map(|(n, c)| (format!("{dir}_q{q}_{n}"), c))
            .collect()
    }

    /// Every rx xstat of queue `q` as this tally predicts it (csum_bad is always
    /// 0 on a tap; alloc failures and truncated frames are 0 unless given).
    pub fn rx_names(&self, q: u16, alloc_failures: u64, truncated: u64) -> Vec<(String, u64)> {
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
    pub fn tx_names(&self, q: u16) -> Vec<(String, u64)> {
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
pub fn current(port: &Port, want: &[(String, u64)]) -> Vec<(String, u64)> {
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
pub fn assert_rx_xstats(port: &Port, q: u16, t: &Tally) {
    let want = t.rx_names(q, 0, 0);
    assert_eq!(current(port, &want), want, "rx xstats of {}", port.name());
}

/// Asserts every tx xstat of queue `q` against `t`.
#[track_caller]
pub fn assert_tx_xstats(port: &Port, q: u16, t: &Tally) {
    let want = t.tx_names(q);
    assert_eq!(current(port, &want), want, "tx xstats of {}", port.name());
}

// ------------------------------------------------------------------ setups

/// Port B of a router: offloads off, 10.2.0.1/24 and fd02::1/64, the static
/// neighbour 10.2.0.2 / fd02::2 behind it, forwarding on. IPv6 must be on.
pub fn router_b(name: &str, backend: BackendKind) -> Port {
    router_b_with(name, backend, true)
}

/// [`router_b`], with or without the virtio-net header (without offloads the
/// header brings nothing but the checksum-verified flag).
pub fn router_b_with(name: &str, backend: BackendKind, vnet_hdr: bool) -> Port {
    let b = open(
        TapConfig::new(name)
            .offloads(Offloads::NONE)
            .vnet_hdr(vnet_hdr)
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
pub struct Router {
    pub a: Port,
    pub b: Port,
    pub a_mac: [u8; 6],
}

impl Router {
    /// Call after [`netns`].
    pub fn new(tag: &str, backend: BackendKind) -> Router {
        enable_ipv6();
        let an = format!("{tag}a");
        let a = open(
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
    pub fn packet(tag: &str) -> Router {
        enable_ipv6();
        let (an, kn) = (format!("{tag}a"), format!("{tag}k"));
        ip(&["link", "add", &an, "type", "veth", "peer", "name", &kn]);
        ip(&["link", "set", &kn, "address", "02:00:00:00:01:01"]);
        ip(&["addr", "add", "10.1.0.1/24", "dev", &kn]);
        ip(&["addr", "add", "fd01::1/64", "dev", &kn, "nodad"]);
        ip(&["link", "set", &kn, "up"]);
        let a = Port::open(PacketConfig::new(an.as_str()).offload(true)).unwrap();
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
pub fn rx_pick(
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
pub fn rx_quiet(rxq: &mut RxQueue, quiet: Duration, t: &mut Tally) -> usize {
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

/// Small pool buffers (448 frame bytes in the first, 512 after), for chains.
pub fn small_pool() -> Pool {
    Pool::new(PoolConfig::default().count(1024).buf_size(512).headroom(64)).unwrap()
}
