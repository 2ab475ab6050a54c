//! Transmit offloads against the real kernel, checked by value where the kernel
//! has finished them: a frame sent with a checksum or segmentation request on
//! port A (offloads on) is routed by the namespace's IPv4/IPv6 forwarding out
//! of port B (offloads off), so the kernel completes the checksum / segments
//! the frame in software before B's reader gets it (an AF_PACKET capture on A
//! would only see the partial skb). The `packet_*` tests do the same with an
//! AF_PACKET port (`PACKET_VNET_HDR`) as A.
//!
//! `DATA_VALID` on receive: the tap's write path ignores that flag (it acts on
//! `NEEDS_CSUM` only), so a frame the application marks valid is an ordinary
//! frame to the kernel. Frames the kernel itself verified are made with a plain
//! `IFF_NAPI` tap, whose frames go through GRO (software checksum check).

#[macro_use]
mod common;

use std::io::Write;
use std::time::Duration;

use common::offload::*;
use common::*;
use etherparse::PacketBuilder;
use rtap::wire::vnet::{VnetHdr, F_DATA_VALID};
use rtap::*;

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
        let v = assert_checksum_right(&p.to_vec(), &want);
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
    csum_flags_after_kernel_gro(backend, true);
}

/// The same through a tap without the virtio-net header (created without
/// offloads, the default): nothing tells the reader the checksum was
/// verified, every frame is `Unknown`.
fn rx_csum_unknown_without_header(backend: BackendKind) {
    csum_flags_after_kernel_gro(backend, false);
}

fn csum_flags_after_kernel_gro(backend: BackendKind, hdr: bool) {
    netns();
    enable_ipv6();
    let b = router_b_with("ogdb", backend, hdr);
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
        let want = if *ok && hdr {
            RxCsum::Good
        } else {
            RxCsum::Unknown
        };
        assert_eq!(p.rx_csum(), want, "v6={} tcp={} right={right}", v.v6, v.tcp);
        assert_eq!(
            p.vnet_hdr().flags,
            if *ok && hdr { F_DATA_VALID } else { 0 },
            "only the flag, no partial checksum info"
        );
    }
    assert_eq!(rx_quiet(&mut rxb, Duration::from_millis(100), &mut t), 0);
    assert_eq!(t.good, if hdr { 4 } else { 0 });
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

backend_tests!(
    tx_csum_offload_by_value,
    tso_uso_segmented_by_kernel,
    tso_ecn_keeps_cwr_on_first_segment,
    rx_csum_good_after_kernel_gro,
    rx_csum_unknown_without_header,
    tx_data_valid_not_honoured_by_tap,
);
