//! Restricted environments: io_uring blocked by seccomp, CAP_NET_ADMIN missing.
//! Both restrictions are applied to the test's own thread only (seccomp filters
//! and capabilities are per thread), so other tests running in parallel are
//! unaffected.

mod common;
use common::*;
use rtap::*;
use std::time::Duration;

/// Installs a seccomp filter on the calling thread that fails `io_uring_setup`
/// with ENOSYS, as a container runtime's default profile does.
fn block_io_uring() {
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const NR_IO_URING_SETUP: u32 = 425;
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    let f = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let prog = [
        f(LD_W_ABS, 0, 0, 4),              // arch
        f(JEQ_K, 0, 3, AUDIT_ARCH_X86_64), // other arch: allow
        f(LD_W_ABS, 0, 0, 0),              // syscall number
        f(JEQ_K, 0, 1, NR_IO_URING_SETUP),
        f(RET_K, 0, 0, SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        f(RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut _,
    };
    // SAFETY: prctl/seccomp get valid arguments; the filter applies to this thread only
    // (no SECCOMP_FILTER_FLAG_TSYNC) and dies with it.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        let r = libc::syscall(
            libc::SYS_seccomp,
            1, /* SECCOMP_SET_MODE_FILTER */
            0,
            &fprog as *const libc::sock_fprog,
        );
        assert_eq!(r, 0, "seccomp: {}", std::io::Error::last_os_error());
    }
}

#[test]
fn falls_back_to_read_write_when_io_uring_is_blocked() {
    netns();
    block_io_uring();
    assert!(
        !rtap::probe_uring().available,
        "the filter must block io_uring_setup"
    );
    let port = Port::open(TapConfig::new("fb%d")).unwrap();
    assert_eq!(port.engine(), Engine::RW);
    let why = port.engine_reason().expect("the fallback says why");
    assert!(why.contains("io_uring"), "{why}");
    // And it still moves traffic.
    port.start().unwrap();
    let pool = Pool::new(PoolConfig::default()).unwrap();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    let ps = PacketSocket::bind(port.ifindex());
    ps.send(&test_frame(300, 9)).unwrap();
    let got = rx_test_frames(&mut rxq, 1, Duration::from_secs(2));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to_vec(), test_frame(300, 9));
}

/// An AF_PACKET port asked for the io_uring kick gets the `sendto` kick when
/// io_uring is blocked, says why, and still sends.
#[test]
fn packet_kick_falls_back_to_sendto_when_io_uring_is_blocked() {
    netns();
    block_io_uring();
    ip(&[
        "link", "add", "pkfb0", "type", "veth", "peer", "name", "pkfb1",
    ]);
    ip(&["link", "set", "pkfb1", "up"]);
    let port = Port::open(PacketConfig::new("pkfb0").kick(Kick::Uring)).unwrap();
    assert_eq!(
        port.engine(),
        Engine::tpacket(Kick::Sendto),
        "the sendto kick"
    );
    let why = port.engine_reason().expect("the fallback says why");
    assert!(why.contains("io_uring") && why.contains("sendto"), "{why}");
    port.start().unwrap();
    let pool = Pool::new(PoolConfig::default()).unwrap();
    let mut txq = port.tx_queue(0).unwrap();
    assert!(txq.ring_features().is_none(), "no kick ring");
    let cap = PacketSocket::bind(if_index("pkfb1").unwrap());
    tx_all(
        &mut txq,
        vec![pool.alloc_from(&test_frame(120, 3)).unwrap()],
    );
    assert!(txq.flush(WAIT));
    assert_eq!(cap.recv_test_frames(1, WAIT), vec![test_frame(120, 3)]);
}

#[test]
fn explicit_io_uring_queue_fails_clearly_when_blocked_after_open() {
    netns();
    // Port opened while io_uring works; the ring for a queue is made later.
    let port = Port::open(TapConfig::new("fc%d")).unwrap();
    assert_eq!(port.engine(), Engine::URING);
    port.start().unwrap();
    block_io_uring();
    let pool = Pool::new(PoolConfig::default()).unwrap();
    let err = port.rx_queue(0, &pool).expect_err("no ring can be built");
    assert!(matches!(err, Error::UringUnavailable { .. }), "{err}");
    assert!(
        err.to_string().contains("backend=rw"),
        "the error says what to do: {err}"
    );
    assert_eq!(
        pool.available(),
        pool.capacity() as usize,
        "nothing taken from the pool"
    );
}

const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;

/// Drops CAP_NET_ADMIN from the calling thread's effective and permitted sets.
fn drop_net_admin() {
    drop_cap(CAP_NET_ADMIN)
}

/// Drops capability `cap` from the calling thread's effective and permitted sets.
fn drop_cap(cap: u32) {
    #[repr(C)]
    struct Hdr {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const V3: u32 = 0x2008_0522;
    let mut hdr = Hdr {
        version: V3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget/capset get a v3 header and two data structs, as the ABI requires;
    // pid 0 means the calling thread.
    unsafe {
        assert_eq!(
            libc::syscall(libc::SYS_capget, &mut hdr as *mut Hdr, data.as_mut_ptr()),
            0
        );
        // Capabilities 32 and up live in the second word.
        let (word, bit) = ((cap / 32) as usize, cap % 32);
        data[word].effective &= !(1 << bit);
        data[word].permitted &= !(1 << bit);
        let r = libc::syscall(libc::SYS_capset, &mut hdr as *mut Hdr, data.as_ptr());
        assert_eq!(r, 0, "capset: {}", std::io::Error::last_os_error());
    }
}

#[test]
fn missing_cap_net_admin_is_a_typed_actionable_error() {
    netns();
    drop_net_admin();
    let err = Port::open(TapConfig::new("nc%d")).expect_err("creating a tap needs CAP_NET_ADMIN");
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
    assert!(err.to_string().contains("CAP_NET_ADMIN"), "{err}");
}

/// The setup adopted fds are for: a privileged helper opens the TUN, gives
/// it an address and brings it up; a thread without CAP_NET_ADMIN (the
/// daemon) cannot open a TUN itself, but runs a port on the helper's fds.
#[test]
fn an_unprivileged_daemon_runs_a_helpers_tun() {
    netns();
    let fd = tun_fd(
        "unp0",
        libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE,
    );
    ip(&["addr", "add", "10.73.0.1/24", "dev", "unp0"]);
    ip(&["link", "set", "unp0", "up"]);
    std::thread::scope(|s| {
        s.spawn(|| {
            drop_net_admin();
            assert!(matches!(
                Port::open(TapConfig::tun("unq%d")),
                Err(Error::PermissionDenied { .. })
            ));
            let port = Port::from_fds(vec![fd]).unwrap();
            port.start().unwrap();
            wait_oper_up("unp0");
            let pool = pool();
            let mut rxq = port.rx_queue(0, &pool).unwrap();
            let sock = std::net::UdpSocket::bind("10.73.0.1:0").unwrap();
            let deadline = std::time::Instant::now() + WAIT;
            let mut v = Vec::new();
            loop {
                sock.send_to(b"daemon", "10.73.0.7:9").unwrap();
                std::thread::sleep(Duration::from_millis(20));
                v.clear();
                rxq.rx_burst(&mut v, 32).unwrap();
                if v.iter().any(|p| p.data().ends_with(b"daemon")) {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "nothing arrived");
            }
        });
    });
}

/// An AF_PACKET port without CAP_NET_RAW is told about that capability, not
/// about taps (there is no tap).
#[test]
fn missing_cap_net_raw_names_the_packet_socket_capability() {
    netns();
    ip(&[
        "link", "add", "pkcap0", "type", "veth", "peer", "name", "pkcap1",
    ]);
    drop_cap(CAP_NET_RAW);
    let err =
        Port::open(PacketConfig::new("pkcap0")).expect_err("a packet socket needs CAP_NET_RAW");
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("CAP_NET_RAW") && text.contains("AF_PACKET"),
        "{text}"
    );
    assert!(!text.contains("tap"), "{text}");
}

/// An xdp port without CAP_NET_RAW is told its sockets need it; without
/// CAP_BPF and CAP_SYS_ADMIN, that loading the program needs them (and that
/// prog=none needs neither).
#[test]
fn xdp_port_capabilities_are_named() {
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_BPF: u32 = 39;
    netns();
    ip(&[
        "link", "add", "xcap0", "type", "veth", "peer", "name", "xcap1",
    ]);
    ip(&["link", "set", "xcap1", "up"]);
    // In a thread of its own: capabilities dropped there stay dropped there.
    std::thread::scope(|s| {
        s.spawn(|| {
            drop_cap(CAP_NET_RAW);
            let port = Port::open(rtap::XdpConfig::new("xcap0")).unwrap();
            port.start().unwrap();
            let pool = Pool::new(PoolConfig::default()).unwrap();
            let err = port
                .rx_queue(0, &pool)
                .expect_err("an XDP socket needs CAP_NET_RAW");
            assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
            assert!(err.to_string().contains("CAP_NET_RAW"), "{err}");
            assert_eq!(pool.available(), pool.capacity() as usize);
        })
        .join()
        .unwrap();
        s.spawn(|| {
            drop_cap(CAP_BPF);
            drop_cap(CAP_SYS_ADMIN);
            let err = Port::open(rtap::XdpConfig::new("xcap0")).expect_err("loading needs CAP_BPF");
            assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
            let text = err.to_string();
            assert!(
                text.contains("CAP_BPF") && text.contains("prog=none"),
                "{text}"
            );
            // With no program to load, the sockets need only CAP_NET_RAW.
            let port =
                Port::open(rtap::XdpConfig::new("xcap0").prog(rtap::xdp::Prog::None)).unwrap();
            port.start().unwrap();
            port.tx_queue(0)
                .expect("prog=none opens sockets without CAP_BPF");
        })
        .join()
        .unwrap();
    });
}

/// A port opened with privileges runs on after it drops them: a capture
/// filter in its XDP program is removed without a new program load (the
/// plain program is kept from open), so frames flow unfiltered again. A new
/// filter needs a program load: refused, naming the capability.
#[test]
fn xdp_filter_removed_after_privileges_are_dropped() {
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_BPF: u32 = 39;
    netns();
    ip(&[
        "link", "add", "xdrp0", "type", "veth", "peer", "name", "xdrp1",
    ]);
    ip(&["link", "set", "xdrp1", "up"]);
    let udp53 = rtap::capture::bpf::Program::from_ddd(
        "16\n40 0 0 12\n21 0 4 34525\n48 0 0 20\n21 0 11 17\n40 0 0 56\n21 8 9 53\n21 0 8 2048\n48 0 0 23\n21 0 6 17\n40 0 0 20\n69 4 0 8191\n177 0 0 14\n72 0 0 16\n21 0 1 53\n6 0 0 262144\n6 0 0 0\n",
    )
    .unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let port = Port::open(rtap::XdpConfig::new("xdrp0")).unwrap();
            port.start().unwrap();
            wait_oper_up("xdrp1");
            let pool = Pool::new(PoolConfig::default().count(4096)).unwrap();
            let mut rxq = port.rx_queue(0, &pool).unwrap();
            assert!(port.set_rx_filter(Some(&udp53)).unwrap().in_kernel());
            let inj = PacketSocket::injector(if_index("xdrp1").unwrap());
            // Test frames are not UDP: the filter keeps none of them.
            inj.send(&test_frame(100, 1)).unwrap();
            assert!(rx_test_frames(&mut rxq, 1, Duration::from_millis(300)).is_empty());
            drop_cap(CAP_BPF);
            drop_cap(CAP_SYS_ADMIN);
            let err = port
                .set_rx_filter(Some(&udp53))
                .expect_err("a new filter is a program load");
            assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
            assert!(err.to_string().contains("CAP_BPF"), "{err}");
            // BPF_LINK_UPDATE checks no capability (6.1 to 7.2 here): the plain
            // program kept from open goes back in.
            assert_eq!(
                port.set_rx_filter(None).expect("no new load needed"),
                rtap::capture::FilterPlace::Removed
            );
            inj.send(&test_frame(100, 2)).unwrap();
            assert_eq!(
                rx_test_frames(&mut rxq, 1, WAIT).len(),
                1,
                "unfiltered again"
            );
            drop(rxq);
            assert_eq!(pool.available(), pool.capacity() as usize);
        })
        .join()
        .unwrap();
    });
}

/// io_uring refused after the port opened with the io_uring kick: a tx queue
/// opened then kicks with `send()` instead of failing, says so (its engine,
/// the port's, the `tx_qN_kick_fallbacks` xstat) and sends.
#[test]
fn packet_kick_ring_refused_after_open_falls_back_per_queue() {
    netns();
    ip(&[
        "link", "add", "pkla0", "type", "veth", "peer", "name", "pkla1",
    ]);
    ip(&["link", "set", "pkla1", "up"]);
    let port = Port::open(PacketConfig::new("pkla0").kick(Kick::Uring)).unwrap();
    assert_eq!(port.engine(), Engine::tpacket(Kick::Uring));
    port.start().unwrap();
    wait_oper_up("pkla1");
    block_io_uring();
    let pool = Pool::new(PoolConfig::default()).unwrap();
    let mut txq = port.tx_queue(0).expect("a tx queue with the sendto kick");
    assert_eq!(txq.engine(), Engine::tpacket(Kick::Sendto));
    assert_eq!(
        port.engine(),
        Engine::tpacket(Kick::Sendto),
        "the engine in use"
    );
    assert_eq!(port.xstat("tx_q0_kick_fallbacks"), Some(1));
    let cap = PacketSocket::bind(if_index("pkla1").unwrap());
    tx_all(
        &mut txq,
        vec![pool.alloc_from(&test_frame(120, 4)).unwrap()],
    );
    assert!(txq.flush(WAIT));
    assert_eq!(cap.recv_test_frames(1, WAIT), vec![test_frame(120, 4)]);
}
