//! TUN ports (`TapConfig::tun`, `tun:` specs): IP packets with no Ethernet
//! header, through the same queues, engines and offloads as a TAP. Real
//! kernel: the kernel's own UDP and TCP sockets on either side. A namespace
//! per test; `backend_tests!` runs each on io_uring and read/write.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use rtap::{BackendKind, Gso, Offloads, Pool, PoolConfig, Port, TapConfig, TxRequest};

fn tun_port(name: &str, backend: BackendKind, offloads: Offloads) -> Port {
    let p = Port::open(TapConfig::tun(name).backend(backend).offloads(offloads)).unwrap();
    assert_eq!(p.kind(), rtap::DeviceKind::TUN);
    p.start().unwrap();
    p
}

/// An IPv4/UDP packet from 10.88.0.2:5000 to 10.88.0.1:`port`, checksum right
/// (or zero when `csum` is false).
fn udp4(port: u16, payload: &[u8], csum: bool) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ipv4([10, 88, 0, 2], [10, 88, 0, 1], 64).udp(5000, port);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    if !csum {
        out[26] = 0;
        out[27] = 0;
    }
    out
}

fn rx_one(rxq: &mut rtap::RxQueue, keep: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let deadline = Instant::now() + WAIT;
    let mut v = Vec::new();
    loop {
        v.clear();
        rxq.rx_burst(&mut v, 32).unwrap();
        if let Some(p) = v.iter().map(|p| p.to_vec()).find(|f| keep(f)) {
            return p;
        }
        assert!(Instant::now() < deadline, "nothing matching arrived");
        std::thread::sleep(Duration::from_millis(2));
    }
}

backend_tests! {
    udp_both_ways,
    checksum_request_honoured,
    tcp_through_a_tun_forwarder_with_offloads,
    tcp_through_a_split_and_coalesce_forwarder,
    tcp_into_a_tun_without_a_header,
}

/// The kernel routes a UDP datagram into the TUN: the application gets the IP
/// packet itself. The application writes an IP packet: a kernel socket gets
/// its payload.
fn udp_both_ways(backend: BackendKind) {
    netns();
    let port = tun_port("tn0", backend, Offloads::NONE);
    ip(&["addr", "add", "10.88.0.1/24", "dev", "tn0"]);
    let pool = pool();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    let mut txq = port.tx_queue(0).unwrap();
    let s = UdpSocket::bind("10.88.0.1:0").unwrap();
    s.send_to(b"to the tun", "10.88.0.2:7000").unwrap();
    let f = rx_one(&mut rxq, |f| f.len() > 28 && f[9] == 17);
    assert_eq!(f[0] >> 4, 4, "an IPv4 header first, no Ethernet");
    assert_eq!(&f[16..20], &[10, 88, 0, 2]);
    assert_eq!(&f[28..], b"to the tun");
    let port_no = s.local_addr().unwrap().port();
    tx_all(
        &mut txq,
        vec![pool
            .alloc_from(&udp4(port_no, b"from the tun", true))
            .unwrap()],
    );
    assert!(txq.flush(WAIT));
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = s.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"from the tun");
    assert_eq!(from.to_string(), "10.88.0.2:5000");
    let st = port.stats().unwrap();
    assert!(st.rx.packets >= 1 && st.tx.packets == 1, "{st:?}");
    // The MTU is the whole packet on a TUN.
    assert_eq!(port.max_frame().unwrap(), port.mtu().unwrap() as usize);
    // A TUN has no MAC.
    assert!(matches!(port.mac(), Err(rtap::Error::NoMacAddress { .. })));
}

/// A checksum request on an IP packet: with offloads the kernel gets a
/// partial checksum and finishes it; without, rtap computes it. Either way the
/// socket receives the datagram (a wrong checksum would be dropped).
fn checksum_request_honoured(backend: BackendKind) {
    for offloads in [Offloads::ALL, Offloads::NONE] {
        netns();
        let port = tun_port("tn1", backend, offloads);
        ip(&["addr", "add", "10.88.0.1/24", "dev", "tn1"]);
        let pool = pool();
        let mut txq = port.tx_queue(0).unwrap();
        let s = UdpSocket::bind("10.88.0.1:0").unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut p = pool
            .alloc_from(&udp4(
                s.local_addr().unwrap().port(),
                b"summed by someone",
                false,
            ))
            .unwrap();
        p.set_tx_offload(TxRequest {
            l4_csum: true,
            gso: Gso::None,
        });
        tx_all(&mut txq, vec![p]);
        let mut buf = [0u8; 64];
        let n = s
            .recv(&mut buf)
            .expect("datagram delivered: checksum right");
        assert_eq!(&buf[..n], b"summed by someone");
        let x = port.xstats();
        let get = |n: &str| x.iter().find(|s| s.name == n).unwrap().value;
        if offloads == Offloads::NONE {
            assert_eq!(get("tx_q0_sw_csum_packets"), 1);
        } else {
            assert_eq!(get("tx_q0_csum_offload_packets"), 1);
        }
    }
}

/// A TUN with offloads in each of two new namespaces (`tags`), named `names`,
/// started, addressed 10.NET.0.1 and 10.NET.0.2 with a host route to the other.
fn tun_pair(
    backend: BackendKind,
    tags: [&str; 2],
    names: [&str; 2],
    net: u8,
) -> (NamedNetns, NamedNetns, Port, Port) {
    tun_pair_with(backend, tags, names, net, [Offloads::ALL; 2])
}

fn tun_pair_with(
    backend: BackendKind,
    tags: [&str; 2],
    names: [&str; 2],
    net: u8,
    offloads: [Offloads; 2],
) -> (NamedNetns, NamedNetns, Port, Port) {
    let ns = tags.map(NamedNetns::create);
    let ports = [0, 1].map(|i| {
        let p = Port::open(
            TapConfig::tun(names[i])
                .backend(backend)
                .offloads(offloads[i])
                // 64 KiB buffers: posted reads (kernels before 6.7) would
                // otherwise keep 256 of them per queue, the whole pool.
                .ring(rtap::RingConfig::default().rx_posted(64))
                .netns(rtap::Netns::Named(ns[i].name().into())),
        )
        .unwrap();
        p.start().unwrap();
        let (me, peer) = (
            format!("10.{net}.0.{}", i + 1),
            format!("10.{net}.0.{}", 2 - i),
        );
        ns[i].ip(&["addr", "add", &format!("{me}/32"), "dev", names[i]]);
        ns[i].ip(&["route", "add", &format!("{peer}/32"), "dev", names[i]]);
        p
    });
    let [n1, n2] = ns;
    let [a, b] = ports;
    (n1, n2, a, b)
}

/// TCP between two namespaces through a TUN in each and a zero-copy forwarder
/// between them: with offloads, the kernel hands the forwarder 64 KiB TSO
/// packets (IP, no Ethernet) and the other kernel takes them whole; 64 MiB
/// arrive intact.
fn tcp_through_a_tun_forwarder_with_offloads(backend: BackendKind) {
    netns();
    let (n1, n2, a, b) = tun_pair(backend, ["tun1", "tun2"], ["ta", "tb"], 89);
    let big = tcp_through(&n1, &n2, 89, |stop| plain_forward(&a, &b, stop));
    assert!(
        big > 1500,
        "TSO packets crossed whole (largest {big} bytes)"
    );
}

/// From a TUN with offloads into one rtap created without (no virtio-net
/// header, so it cannot hand a TSO packet to the kernel): its engine splits
/// each 64 KiB packet, writing every segment as its headers plus a slice of
/// the packet. The receiving kernel checks every checksum (frames from a
/// header-less TUN carry no checksum state) and the stream arrives intact.
fn tcp_into_a_tun_without_a_header(backend: BackendKind) {
    netns();
    let (n1, n2, a, b) = tun_pair_with(
        backend,
        ["tuh1", "tuh2"],
        ["tha", "thb"],
        87,
        [Offloads::ALL, Offloads::NONE],
    );
    assert!(!b.info().tx_offload.header && b.info().tx_offload.split);
    let big = tcp_through(&n1, &n2, 87, |stop| plain_forward(&a, &b, stop));
    assert!(big > 1500, "TSO packets came in (largest {big} bytes)");
    let splits = b.xstat("tx_q0_sw_gso_packets").unwrap();
    assert!(splits > 0, "the engine split them");
    let st = b.stats().unwrap();
    assert_eq!(st.tx.errors, 0);
    assert!(
        st.tx.packets > splits,
        "segments counted as the packets sent ({} for {splits} splits)",
        st.tx.packets
    );
    assert_eq!(a.xstat("tx_q0_sw_gso_packets"), Some(0));
}

/// A counter of `/proc/net/snmp` (`proto`'s line of names, then of values).
fn snmp_field(snmp: &str, proto: &str, name: &str) -> u64 {
    let mut lines = snmp.lines().filter(|l| l.starts_with(&format!("{proto}:")));
    let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
    let at = names.split_whitespace().position(|n| n == name).unwrap();
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}

/// A zero-copy forwarder between TUNs `a` and `b` until `stop`: returns the
/// largest packet it read from `a`.
fn plain_forward(a: &Port, b: &Port, stop: &AtomicBool) -> usize {
    let big = Pool::new(PoolConfig::default().count(512).buf_size(65_536 + 256)).unwrap();
    let mut rxa = a.rx_queue(0, &big).unwrap();
    let mut rxb = b.rx_queue(0, &big).unwrap();
    let mut txa = a.tx_queue(0).unwrap();
    let mut txb = b.tx_queue(0).unwrap();
    let (mut va, mut vb) = (Vec::new(), Vec::new());
    let mut largest = 0;
    while !stop.load(Ordering::Acquire) {
        let na = rxa.rx_burst(&mut va, 64).unwrap();
        largest = va.iter().map(|p| p.len()).max().unwrap_or(0).max(largest);
        while !va.is_empty() {
            txb.tx_burst(&mut va).unwrap();
        }
        let nb = rxb.rx_burst(&mut vb, 64).unwrap();
        while !vb.is_empty() {
            txa.tx_burst(&mut vb).unwrap();
        }
        if na + nb == 0 {
            std::thread::sleep(Duration::from_micros(20));
        }
    }
    largest
}

/// A TCP stream from `n1` to `n2` (net 10.`net`.0.0) while `forward` runs on
/// its own thread until the flag it is given rises: every byte checked, and
/// the receiver's count of bad checksums stays 0. Returns what `forward`
/// returned.
fn tcp_through<R: Send>(
    n1: &NamedNetns,
    n2: &NamedNetns,
    net: u8,
    forward: impl FnOnce(&AtomicBool) -> R + Send,
) -> R {
    let stop = AtomicBool::new(false);
    let total = scaled(64 << 20, 4 << 20) as usize;
    let at = format!("10.{net}.0.2:7001");
    std::thread::scope(|s| {
        let fwd = s.spawn(|| forward(&stop));
        // A failure below ends the forwarder and (by its timeout) the sender,
        // so the test fails instead of hanging.
        let _stop = StopOnDrop(&stop);
        let l = n2.run(|| TcpListener::bind(at.as_str()).unwrap());
        let send = s.spawn(|| {
            n1.enter();
            let mut c = TcpStream::connect(at.as_str()).unwrap();
            c.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
            let chunk: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
            let mut left = total;
            while left > 0 {
                let n = left.min(chunk.len());
                c.write_all(&chunk[..n]).unwrap();
                left -= n;
            }
        });
        let (mut conn, _) = l.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut got = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        let mut ok = true;
        let mut checked = 0;
        while got < total {
            // With a timeout set, a signal (or io_uring task work) ends the
            // read with EINTR rather than restarting it.
            let n = loop {
                match conn.read(&mut buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    r => break r.unwrap(),
                }
            };
            assert!(n > 0, "stream ended early at {got}");
            if got >= checked {
                // TCP would get past bad segments by retransmitting them one
                // by one, slowly: the receiver's count of checksum errors
                // says at once whether there were any.
                checked += 1 << 20;
                let snmp =
                    n2.run(|| std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap());
                assert_eq!(
                    snmp_field(&snmp, "Tcp", "InCsumErrors"),
                    0,
                    "bad checksums at {got}"
                );
            }
            ok &= buf[..n]
                .iter()
                .enumerate()
                .all(|(i, &x)| x == ((got + i) % 65536 % 251) as u8);
            got += n;
        }
        assert!(ok, "payload differs");
        assert_eq!(got, total);
        send.join().unwrap();
        stop.store(true, Ordering::Release);
        fwd.join().unwrap()
    })
}

/// A TSO packet written into one TUN and forwarded by the kernel to a TUN
/// without offloads comes out segmented by the kernel's own GSO: the same bytes
/// as rtap's split of it (with the TTL / hop limit the forwarding took off).
#[test]
fn split_matches_the_kernels_segmentation() {
    use rtap::wire::vnet::{F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6};
    for v6 in [false, true] {
        netns();
        if v6 {
            enable_ipv6();
            sysctl("net/ipv6/conf/all/forwarding", "1");
        } else {
            sysctl("net/ipv4/ip_forward", "1");
        }
        let a = tun_port("tsa", BackendKind::Uring, Offloads::ALL);
        let b = tun_port("tsb", BackendKind::Uring, Offloads::NONE);
        if v6 {
            ip(&["addr", "add", "fd91::1/64", "dev", "tsa", "nodad"]);
            ip(&["addr", "add", "fd92::1/64", "dev", "tsb", "nodad"]);
        } else {
            ip(&["addr", "add", "10.91.0.1/24", "dev", "tsa"]);
            ip(&["addr", "add", "10.91.1.1/24", "dev", "tsb"]);
        }
        let pool = Pool::new(PoolConfig::default().count(512).buf_size(65_536 + 256)).unwrap();
        let mut tx = a.tx_queue(0).unwrap();
        let mut rx = b.rx_queue(0, &pool).unwrap();
        // The super-packet: 20 000 bytes of TCP payload, segments of 1000.
        let payload: Vec<u8> = (0..20_000u32).map(|i| (i * 31 + 7) as u8).collect();
        let builder = if v6 {
            let mut s = [0u8; 16];
            s[..2].copy_from_slice(&[0xfd, 0x91]);
            s[15] = 2;
            let mut d = [0u8; 16];
            d[..2].copy_from_slice(&[0xfd, 0x92]);
            d[15] = 2;
            etherparse::PacketBuilder::ipv6(s, d, 64)
        } else {
            etherparse::PacketBuilder::ipv4([10, 91, 0, 2], [10, 91, 1, 2], 64)
        };
        let mut p = Vec::new();
        builder
            .tcp(40000, 5001, 123_456, 4000)
            .ack(77)
            .psh()
            .write(&mut p, &payload)
            .unwrap();
        let l4 = if v6 { 40 } else { 20 };
        // As an application asks for TSO: the pseudo-header seed in the
        // checksum field, the GSO header from rtap's own request code.
        let (h, seed) = rtap::wire::offload::tx_header_on(
            &p,
            TxRequest {
                l4_csum: true,
                gso: Gso::Tcp {
                    mss: 1000,
                    ecn: false,
                },
            },
            rtap::wire::layout::Link::Ip,
        )
        .unwrap();
        let (at, v) = seed.unwrap();
        p[at..at + 2].copy_from_slice(&v.to_be_bytes());
        assert_eq!(
            (h.gso_type, h.gso_size, h.flags),
            (if v6 { GSO_TCPV6 } else { GSO_TCPV4 }, 1000, F_NEEDS_CSUM)
        );
        let mut pkt = pool.alloc_from(&p).unwrap();
        pkt.set_vnet_hdr(h);
        tx_all(&mut tx, vec![pkt]);
        assert!(tx.flush(WAIT));
        // What the kernel made of it.
        let mut got: Vec<Vec<u8>> = Vec::new();
        let deadline = Instant::now() + WAIT;
        let mut v = Vec::new();
        while got.len() < 20 && Instant::now() < deadline {
            rx.rx_burst(&mut v, 64).unwrap();
            for p in v.drain(..) {
                let mut f = p.to_vec();
                if f.len() <= l4 || f[if v6 { 6 } else { 9 }] != 6 {
                    continue;
                }
                // The kernel may hand a segment up with its checksum partial
                // (the seed in the field, NEEDS_CSUM in the header): finish it.
                if p.vnet_hdr().flags & F_NEEDS_CSUM != 0 {
                    let (at, sum) = rtap::wire::checksum::sw_l4_checksum_on(
                        &[&f],
                        rtap::wire::layout::Link::Ip,
                    )
                    .unwrap();
                    f[at..at + 2].copy_from_slice(&sum.to_be_bytes());
                }
                got.push(f);
            }
        }
        assert_eq!(got.len(), 20, "v6={v6}: the kernel's segments");
        // What rtap makes of it, after the hop the kernel took.
        let mut fwd = p.clone();
        if v6 {
            fwd[7] -= 1;
        } else {
            fwd[8] -= 1;
            fwd[10] = 0;
            fwd[11] = 0;
            let mut sum: u32 = fwd[..20]
                .chunks(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                .sum();
            while sum >> 16 != 0 {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            fwd[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        }
        let mut s = rtap::wire::gso::split(&fwd, &h).unwrap();
        let mut buf = vec![0u8; 2000];
        for (i, k) in got.iter().enumerate() {
            let n = s.next_into(&mut buf).unwrap().unwrap();
            assert_eq!(
                &buf[..n],
                &k[..],
                "v6={v6}: segment {i} differs from the kernel's"
            );
        }
        assert!(s.next_into(&mut buf).is_none());
    }
}

/// A VPN's data path without the crypto: TSO packets read from one TUN are split
/// into MTU-sized IP packets (what a VPN would encrypt and send), merged again
/// (what it would do with what it received) and written into the other TUN as
/// GSO packets; 64 MiB of TCP arrive intact, and the merging did happen.
fn tcp_through_a_split_and_coalesce_forwarder(backend: BackendKind) {
    netns();
    let (n1, n2, a, b) = tun_pair(backend, ["vpn1", "vpn2"], ["va", "vb"], 92);
    let merged = tcp_through(&n1, &n2, 92, |stop| split_coalesce_forward(&a, &b, stop));
    assert!(merged > 0, "segments were merged into GSO packets");
}

/// The forwarder of the test above until `stop`: returns how many GSO packets
/// the merging made.
fn split_coalesce_forward(a: &Port, b: &Port, stop: &AtomicBool) -> u64 {
    use rtap::wire::gro::Coalescer;
    let pool = Pool::new(PoolConfig::default().count(1024).buf_size(65_536 + 256)).unwrap();
    let mut rx = [a.rx_queue(0, &pool).unwrap(), b.rx_queue(0, &pool).unwrap()];
    let mut tx = [a.tx_queue(0).unwrap(), b.tx_queue(0).unwrap()];
    let mut gro = [Coalescer::new(8), Coalescer::new(8)];
    let mut seg = vec![0u8; 2048];
    let mut merged = 0u64;
    let (mut input, mut output) = (Vec::new(), Vec::new());
    while !stop.load(Ordering::Acquire) {
        let mut idle = true;
        #[allow(clippy::needless_range_loop)] // from and to index three arrays
        for from in 0..2 {
            let to = 1 - from;
            input.clear();
            if rx[from].rx_burst(&mut input, 64).unwrap() == 0 {
                continue;
            }
            idle = false;
            let mut emit = |bytes: &[u8], h: &rtap::wire::vnet::VnetHdr| {
                merged += u64::from(h.gso_type != 0);
                let mut p = pool.alloc_from(bytes).unwrap();
                p.set_vnet_hdr(*h);
                output.push(p);
            };
            for p in &input {
                let data = p.to_vec();
                let mut sp = rtap::wire::gso::split(&data, p.vnet_hdr()).unwrap();
                while let Some(n) = sp.next_into(&mut seg) {
                    gro[to].push(&seg[..n.unwrap()], &mut emit);
                }
            }
            gro[to].flush(&mut emit);
            while !output.is_empty() {
                tx[to].tx_burst(&mut output).unwrap();
            }
        }
        if idle {
            std::thread::sleep(Duration::from_micros(20));
        }
    }
    merged
}

/// Ten equal UDP datagrams merged into one USO packet and written into a TUN:
/// the kernel delivers the ten datagrams to a socket (Linux 6.2+; before, the
/// TUN has no USO and the port says so).
#[test]
fn coalesced_udp_reaches_a_socket_as_datagrams() {
    netns();
    let port = tun_port("tnu0", BackendKind::Uring, Offloads::ALL);
    if !has_uso() {
        assert!(!port.offloads().uso4, "no USO before Linux 6.2");
        return;
    }
    ip(&["addr", "add", "10.88.0.1/24", "dev", "tnu0"]);
    let s = UdpSocket::bind("10.88.0.1:0").unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let dport = s.local_addr().unwrap().port();
    let pool = pool_for_gso();
    let mut txq = port.tx_queue(0).unwrap();
    let mut gro = rtap::wire::gro::Coalescer::new(2);
    let mut out = Vec::new();
    let mut emit = |b: &[u8], h: &rtap::wire::vnet::VnetHdr| {
        let mut p = pool.alloc_from(b).unwrap();
        p.set_vnet_hdr(*h);
        out.push(p);
    };
    for i in 0..10u8 {
        let mut d = udp4(dport, &[i; 500], true);
        // Consecutive IPv4 IDs, as a sender's stack gives them.
        d[4..6].copy_from_slice(&(100 + u16::from(i)).to_be_bytes());
        d[10] = 0;
        d[11] = 0;
        let mut sum: u32 = d[..20]
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        d[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        gro.push(&d, &mut emit);
    }
    gro.flush(&mut emit);
    assert_eq!(out.len(), 1, "one USO packet");
    assert_eq!(out[0].vnet_hdr().gso_type, rtap::wire::vnet::GSO_UDP_L4);
    tx_all(&mut txq, std::mem::take(&mut out));
    let mut buf = [0u8; 1024];
    for i in 0..10u8 {
        let n = s.recv(&mut buf).expect("a datagram");
        assert_eq!(&buf[..n], &[i; 500][..], "datagram {i}");
    }
}

fn pool_for_gso() -> Pool {
    Pool::new(PoolConfig::default().count(64).buf_size(65_536 + 256)).unwrap()
}

/// A TUN whose other queue (here detached, as rtap's own keep-alive queue
/// is; or one a forked child still holds) was opened without a virtio-net
/// header: the kernel keeps the interface's flags at an attach, so a port
/// attaching reads the flag back and takes frames without a header (no
/// offloads, and says so) instead of reading IP bytes as one; asking for the
/// header outright is refused with the reason.
#[test]
fn attach_follows_the_interfaces_header_flag() {
    netns();
    const TUN_MQ: libc::c_int = libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE;
    let holder = tun_fd("tnh0", TUN_MQ);
    // SAFETY: ifreq is plain data; all zero is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    ifr.ifr_ifru.ifru_flags = libc::IFF_DETACH_QUEUE as libc::c_short;
    // SAFETY: TUNSETQUEUE reads one ifreq, which ifr is.
    let r = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&holder),
            libc::TUNSETQUEUE,
            &mut ifr as *mut libc::ifreq,
        )
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    match Port::open(TapConfig::tun("tnh0").attach(true).vnet_hdr(true)) {
        Err(rtap::Error::InvalidConfig {
            field: "vnet_hdr",
            why,
        }) => {
            assert!(why.contains("IFF_VNET_HDR"), "{why}")
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    let p = Port::open(TapConfig::tun("tnh0").attach(true).offloads(Offloads::ALL)).unwrap();
    assert!(!p.info().tx_offload.header, "the interface has no header");
    assert_eq!(p.offloads(), Offloads::NONE);
    assert!(
        p.info()
            .offload_notes
            .iter()
            .any(|n| n.contains("no offloads")),
        "{:?}",
        p.info().offload_notes
    );
    p.start().unwrap();
    wait_oper_up("tnh0");
    ip(&["addr", "add", "10.94.0.1/24", "dev", "tnh0"]);
    let pool = pool();
    let mut rxq = p.rx_queue(0, &pool).unwrap();
    let s = UdpSocket::bind("10.94.0.1:0").unwrap();
    let f = routed_into(&mut rxq, &s, "10.94.0.2:9", b"plain");
    // The whole IPv4 packet, from its first byte.
    assert_eq!((f[0] >> 4, f[9], f.len()), (4, 17, 20 + 8 + 5));
    drop(rxq);
    assert_pool_full(&pool);
}

/// A persistent TUN is attached again as a TUN, refused as a TAP (and the
/// other way round), and its rx interrupts wake a sleeping reader.
#[test]
fn persist_attach_and_interrupts() {
    netns();
    {
        let p = Port::open(TapConfig::tun("tnp0").persist(true)).unwrap();
        assert!(p.created());
    }
    assert!(if_exists("tnp0"), "persistent");
    match Port::open(TapConfig::new("tnp0").attach(true)) {
        Err(rtap::Error::IncompatibleInterface { want: "TAP", .. }) => {}
        other => panic!("{other:?}"),
    }
    let p = Port::open(TapConfig::tun("tnp0").attach(true)).unwrap();
    assert!(!p.created());
    p.start().unwrap();
    // The interface stayed up while no queue was attached: the kernel puts
    // its qdisc back (link watch) a moment after the attach, and drops what
    // is sent before.
    wait_oper_up("tnp0");
    ip(&["addr", "add", "10.93.0.1/24", "dev", "tnp0"]);
    let pool = pool();
    let mut rxq = p.rx_queue(0, &pool).unwrap();
    rxq.enable_interrupt().unwrap();
    let s = UdpSocket::bind("10.93.0.1:0").unwrap();
    std::thread::scope(|sc| {
        sc.spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            s.send_to(b"wake", "10.93.0.2:9").unwrap();
        });
        assert!(rxq.wait(WAIT).unwrap(), "woken by the datagram");
    });
    // The first datagram may have met the qdisc link watch had not put back
    // yet (the kernel drops those): sent again until one arrives.
    let f = routed_into(&mut rxq, &s, "10.93.0.2:9", b"wake");
    assert_eq!(&f[28..], b"wake");
    drop(rxq);
    p.stop().unwrap();
    drop(p);
    ip(&["link", "del", "tnp0"]);
    let _t = Port::open(TapConfig::new("tnq0").persist(true)).unwrap();
    match Port::open(TapConfig::tun("tnq0").attach(true)) {
        Err(rtap::Error::IncompatibleInterface { want: "TUN", .. }) => {}
        other => panic!("{other:?}"),
    }
    ip(&["link", "del", "tnq0"]);
}
