//! AF_XDP ports against the real kernel: a veth pair in the test's own
//! namespace, the port on one end (`…p`), frames injected and captured on the
//! other (`…k`) with a plain AF_PACKET socket. veth has native XDP and no
//! zero-copy, so these run the copy mode (zero-copy is refused with the
//! reason in `auto`). Data-path tests run with both tx kicks.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::*;
use rtap::xdp::{Prog, XdpConfig, XdpMode};
use rtap::{Engine, Error, Kick, Pool, PoolConfig, Port};

/// Frame sizes covering the small, odd and full-size cases.
fn sizes(n: u32) -> impl Iterator<Item = (u32, usize)> {
    (0..n).map(|i| (i, [60, 61, 64, 128, 333, 1000, 1514][i as usize % 7]))
}

/// A pool whose buffers can be UMEM chunks.
fn umem_pool() -> Pool {
    Pool::new(PoolConfig::default().count(4096)).unwrap()
}

/// An xdp port on a veth `{tag}p` (its peer `{tag}k` up), started; asserts
/// the engine asked for is the one in effect.
fn xdp_port(cfg: XdpConfig) -> Port {
    let kick = cfg.kick;
    let peer = format!("{}k", cfg.iface.strip_suffix('p').unwrap_or(&cfg.iface));
    let port = Port::open(cfg).expect("open xdp port");
    assert_eq!(
        port.engine(),
        Engine::xsk(kick),
        "kick fell back: {:?}",
        port.engine_reason()
    );
    port.start().expect("start");
    wait_oper_up(&peer);
    port
}

/// Frames injected on the peer arrive in order, byte for byte, as packets of
/// the rx queue's pool; counters and the pool agree.
fn rx_injected_frames(kick: Kick) {
    netns();
    let (p, k) = veth("xr");
    let port = xdp_port(XdpConfig::new(p).kick(kick));
    let pool = umem_pool();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    assert_eq!(
        rxq.posted(),
        rtap::xdp::DEFAULT_RING as usize,
        "the fill ring is full"
    );
    let inj = PacketSocket::injector(k);
    let n = scaled(700, 70) as u32;
    let mut got = Vec::new();
    for chunk in sizes(n).collect::<Vec<_>>().chunks(50) {
        for &(i, len) in chunk {
            inj.send(&test_frame(len, i)).unwrap();
        }
        got.extend(rx_test_frames(&mut rxq, chunk.len(), WAIT));
    }
    assert_eq!(got.len(), n as usize, "frames lost: {:?}", port.stats());
    let mut bytes = 0;
    for (p, (i, len)) in got.iter().zip(sizes(n)) {
        assert_eq!(p.to_vec(), test_frame(len, i), "frame {i}");
        bytes += len as u64;
    }
    let st = port.stats().unwrap();
    assert_eq!((st.rx.packets, st.rx.bytes), (n as u64, bytes));
    assert_eq!((st.rx.errors, st.imissed), (0, 0));
    assert_eq!(port.xstat("rx_q0_bad_descs"), Some(0));
    drop(got);
    drop(rxq);
    assert_pool_full(&pool);
}

/// With several queues each socket gets its interface queue's frames: the
/// peer's flows spread over veth's two queues (the kernel's flow hash picks
/// the queue), every queue receives some, no flow is split, nothing is lost,
/// and each queue's counters are its own. Both queues' sockets share the one
/// pool's UMEM.
#[test]
fn rx_per_queue_with_two_queues() {
    netns();
    let q2 = ["numtxqueues", "2", "numrxqueues", "2"];
    let mut args = vec!["link", "add", "xmqp"];
    args.extend(q2);
    args.extend(["type", "veth", "peer", "name", "xmqk"]);
    args.extend(q2);
    ip(&args);
    ip(&["link", "set", "xmqk", "up"]);
    let port = xdp_port(XdpConfig::new("xmqp").queues(2));
    let pool = umem_pool();
    let mut rxqs: Vec<_> = (0..2).map(|q| port.rx_queue(q, &pool).unwrap()).collect();
    let inj = PacketSocket::injector(if_index("xmqk").unwrap());
    let frames: Vec<Vec<u8>> = (0..512u32)
        .map(|i| flow_frame(80, (i % 128) as u16, i))
        .collect();
    let mut per: Vec<Vec<_>> = vec![Vec::new(), Vec::new()];
    let got = inject_and_receive(&inj, &frames, &mut rxqs, &mut per);
    assert_eq!(got, frames.len(), "{:?}", port.stats());
    let mut flow_queue = std::collections::HashMap::new();
    let st = port.stats().unwrap();
    for (q, pkts) in per.iter().enumerate() {
        assert!(!pkts.is_empty(), "queue {q} received nothing");
        for p in pkts {
            let (flow, _) = flow_of(&p.to_vec()).unwrap();
            assert_eq!(*flow_queue.entry(flow).or_insert(q), q, "flow {flow} split");
        }
        assert_eq!(st.rx_queues[q].packets, pkts.len() as u64);
    }
    assert_eq!(port.xstat("rx_q0_bad_descs"), Some(0));
    assert_eq!(port.xstat("rx_q1_bad_descs"), Some(0));
    drop(per);
    drop(rxqs);
    assert_pool_full(&pool);
}

/// Frames sent by the port arrive on the peer in order, byte for byte; the
/// port counts them once the kernel completes them.
fn tx_frames_reach_the_peer(kick: Kick) {
    netns();
    let (p, k) = veth("xt");
    let port = xdp_port(XdpConfig::new(p).kick(kick));
    let pool = umem_pool();
    // rx first: its pool is the UMEM, so the tx packets below go uncopied.
    let rxq = port.rx_queue(0, &pool).unwrap();
    let mut txq = port.tx_queue(0).unwrap();
    let cap = PacketSocket::bind(k);
    let n = scaled(700, 70) as u32;
    let mut bytes = 0;
    for chunk in sizes(n).collect::<Vec<_>>().chunks(64) {
        let pkts: Vec<_> = chunk
            .iter()
            .map(|&(i, len)| {
                bytes += len as u64;
                pool.alloc_from(&test_frame(len, i)).unwrap()
            })
            .collect();
        let want: Vec<_> = chunk.iter().map(|&(i, len)| test_frame(len, i)).collect();
        tx_all(&mut txq, pkts);
        assert!(txq.flush(WAIT), "sends complete");
        assert_eq!(cap.recv_test_frames(chunk.len(), WAIT), want);
    }
    let st = port.stats().unwrap();
    assert_eq!(
        (st.tx.packets, st.tx.bytes, st.tx.errors),
        (n as u64, bytes, 0)
    );
    assert_eq!(
        port.xstat("tx_q0_copied"),
        Some(0),
        "UMEM packets go as they are"
    );
    assert!(port.xstat("tx_q0_kicks").unwrap() > 0);
    drop((txq, rxq));
    assert_pool_full(&pool);
}

/// Packets of another pool are copied into the UMEM (counted) and arrive
/// intact; a tx queue opened alone binds with a pool of its own.
fn tx_from_another_pool_and_tx_only(kick: Kick) {
    netns();
    let (p, k) = veth("xc");
    let port = xdp_port(XdpConfig::new(p).kick(kick).prog(Prog::None));
    let other = Pool::new(PoolConfig::default().count(256).buf_size(600)).unwrap();
    let mut txq = port.tx_queue(0).unwrap();
    let cap = PacketSocket::bind(k);
    let frames: Vec<Vec<u8>> = (0..20).map(|i| test_frame(1000, i)).collect();
    // 1000 bytes in 600-byte buffers: chained, copied into one UMEM chunk.
    let pkts = frames
        .iter()
        .map(|f| other.alloc_from(f).unwrap())
        .collect();
    tx_all(&mut txq, pkts);
    assert!(txq.flush(WAIT));
    assert_eq!(cap.recv_test_frames(frames.len(), WAIT), frames);
    assert_eq!(port.xstat("tx_q0_copied"), Some(frames.len() as u64));
    drop(txq);
    assert_pool_full(&other);
    // prog=none: nothing can be received.
    let err = port
        .rx_queue(0, &umem_pool())
        .expect_err("no program, no rx");
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
}

/// Frames a burst leaves queued go out with no further call: in copy mode a
/// kick sends at most the socket's budget (32 before Linux 6.17, the whole tx
/// ring after, which the port asks for), so a burst larger than that needs
/// more than one kick, issued at once.
fn accepted_frames_go_without_another_call(kick: Kick) {
    netns();
    let (p, k) = veth("xg");
    let port = xdp_port(XdpConfig::new(p).kick(kick));
    let pool = umem_pool();
    let _rxq = port.rx_queue(0, &pool).unwrap();
    let mut txq = port.tx_queue(0).unwrap();
    let cap = PacketSocket::bind(k);
    let budget = if kernel_at_least(6, 17) {
        u64::from(rtap::xdp::DEFAULT_RING)
    } else {
        32
    };
    assert_eq!(port.xstat("tx_q0_kick_budget"), Some(budget));
    let mut want = Vec::new();
    for round in 0..4u32 {
        let mut burst: Vec<_> = (0..200u32)
            .map(|i| {
                let f = test_frame(60 + (i as usize % 64), round * 200 + i);
                want.push(f.clone());
                pool.alloc_from(&f).unwrap()
            })
            .collect();
        // One call per burst, then nothing: no flush, no further tx_burst.
        let took = txq.tx_burst(&mut burst).unwrap();
        assert_eq!(took, 200, "the tx ring has room for the burst");
    }
    let got = cap.recv_test_frames(want.len(), WAIT);
    assert_eq!(got.len(), want.len(), "frames left in the tx ring");
    assert!(got == want, "frames reordered or damaged");
    assert!(txq.flush(WAIT));
    assert_eq!(port.stats().unwrap().tx.packets, want.len() as u64);
}

kick_tests!(
    accepted_frames_go_without_another_call,
    rx_injected_frames,
    tx_frames_reach_the_peer,
    tx_from_another_pool_and_tx_only,
);

/// veth has no AF_XDP zero-copy: auto binds in copy mode (and says why),
/// zerocopy is refused with the reason.
#[test]
fn zero_copy_refused_on_veth() {
    netns();
    let (p, _) = veth("xz");
    let port = xdp_port(XdpConfig::new(p.as_str()));
    let pool = umem_pool();
    let rxq = port.rx_queue(0, &pool).unwrap();
    assert_eq!(port.xstat("rx_q0_zerocopy"), Some(0));
    drop(rxq);
    drop(port);
    let port = xdp_port(XdpConfig::new(p.as_str()).mode(XdpMode::ZeroCopy));
    let err = port.rx_queue(0, &pool).expect_err("veth has no zero-copy");
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert_pool_full(&pool);
}

/// A queue another socket holds is refused, saying so; the port's own queue
/// comes back for the next engine once the first is gone.
#[test]
fn queue_busy_and_rebind() {
    netns();
    let (p, _) = veth("xb");
    let a = xdp_port(XdpConfig::new(p.as_str()));
    let pool = umem_pool();
    let rxq = a.rx_queue(0, &pool).unwrap();
    // Another port on the same interface queue, with its own program: refused
    // at open (one program per interface).
    let err = Port::open(XdpConfig::new(p.as_str())).expect_err("a second program");
    assert!(
        err.to_string().contains("already has an XDP program"),
        "{err}"
    );
    // A tx-only port (no program) binding the same queue: busy.
    let b = Port::open(XdpConfig::new(p.as_str()).prog(Prog::None)).unwrap();
    let b = b;
    b.start().unwrap();
    let err = b.tx_queue(0).expect_err("the queue is taken");
    assert!(err.to_string().contains("already bound"), "{err}");
    drop(rxq);
    assert_pool_full(&pool);
    // Bound again right after the close (the kernel's teardown is deferred).
    let t0 = Instant::now();
    let rxq = a.rx_queue(0, &pool).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(3));
    drop(rxq);
    assert_pool_full(&pool);
}

/// Pools whose buffers cannot be chunks are refused with what to change.
#[test]
fn pool_shape_checked() {
    netns();
    let (p, _) = veth("xs");
    let port = xdp_port(XdpConfig::new(p.as_str()));
    let small = Pool::new(PoolConfig::default().buf_size(1024)).unwrap();
    let err = port.rx_queue(0, &small).expect_err("1 KiB chunks");
    assert!(err.to_string().contains("buf_size"), "{err}");
    drop(port);
    let port = xdp_port(XdpConfig::new(p.as_str()).frame(Some(2048)));
    let err = port
        .rx_queue(0, &umem_pool())
        .expect_err("2176-byte stride, frame=2048");
    assert!(err.to_string().contains("frame=2048"), "{err}");
    let aligned = Pool::new(PoolConfig::default().buf_size(2048)).unwrap();
    let rxq = port.rx_queue(0, &aligned).unwrap();
    drop(rxq);
    assert_pool_full(&aligned);
}

/// A missing interface or queue says what an xdp port needs.
#[test]
fn open_errors() {
    netns();
    let e = Port::open(XdpConfig::new("nosuch0")).unwrap_err();
    assert!(matches!(e, Error::NoSuchInterface { .. }), "{e:?}");
    assert!(!e.to_string().contains("tap"), "{e}");
    let (p, _) = veth("xe");
    let e = Port::open(XdpConfig::new(p.as_str()).first_queue(3)).unwrap_err();
    assert!(e.to_string().contains("rx queue"), "{e}");
    // Sharing an xdp port is refused with the reason.
    let port = xdp_port(XdpConfig::new(p.as_str()));
    let e = port
        .serve(rtap::share::ServeConfig::new("@rtap-test-xdp-serve"))
        .unwrap_err();
    assert!(e.to_string().contains("UMEM"), "{e}");
}

/// Two xdp ports of one thread sharing one pool share one UMEM: a frame
/// received on one is sent on the other as the same buffer (no copy in user
/// space: `tx_q0_copied` stays 0), both ways, intact.
#[test]
fn forwarding_between_two_ports_moves_descriptors() {
    netns();
    let (ap, ak) = veth("xfa");
    let (bp, bk) = veth("xfb");
    let a = xdp_port(XdpConfig::new(ap));
    let b = xdp_port(XdpConfig::new(bp));
    let pool = umem_pool();
    let (mut arx, mut atx) = (a.rx_queue(0, &pool).unwrap(), a.tx_queue(0).unwrap());
    let (mut brx, mut btx) = (b.rx_queue(0, &pool).unwrap(), b.tx_queue(0).unwrap());
    let (ainj, binj) = (PacketSocket::injector(ak), PacketSocket::injector(bk));
    let (acap, bcap) = (PacketSocket::bind(ak), PacketSocket::bind(bk));
    let n = scaled(500, 50) as u32;
    for (inj, rx, tx, cap) in [
        (&ainj, &mut arx, &mut btx, &bcap),
        (&binj, &mut brx, &mut atx, &acap),
    ] {
        let want: Vec<Vec<u8>> = sizes(n).map(|(i, len)| test_frame(len, i)).collect();
        for chunk in want.chunks(50) {
            for f in chunk {
                inj.send(f).unwrap();
            }
            let got = rx_test_frames(rx, chunk.len(), WAIT);
            assert_eq!(got.len(), chunk.len());
            tx_all(tx, got);
            assert!(tx.flush(WAIT));
            assert_eq!(cap.recv_test_frames(chunk.len(), WAIT), chunk.to_vec());
        }
    }
    for p in [&a, &b] {
        assert_eq!(p.xstat("tx_q0_copied"), Some(0), "descriptors, not bytes");
        let st = p.stats().unwrap();
        assert_eq!((st.rx.packets, st.tx.packets), (n as u64, n as u64));
    }
    drop((arx, atx, brx, btx));
    assert_pool_full(&pool);
}

/// Without need_wakeup every tx burst kicks; with it (copy mode keeps the tx
/// flag set) as well: both send everything.
#[test]
fn need_wakeup_off_and_on() {
    netns();
    for (tag, wake) in [("xw0", false), ("xw1", true)] {
        let (p, k) = veth(tag);
        let port = xdp_port(XdpConfig::new(p).need_wakeup(wake));
        let pool = umem_pool();
        let rxq = port.rx_queue(0, &pool).unwrap();
        let mut txq = port.tx_queue(0).unwrap();
        let cap = PacketSocket::bind(k);
        let frames: Vec<Vec<u8>> = (0..100).map(|i| test_frame(200, i)).collect();
        tx_all(
            &mut txq,
            frames.iter().map(|f| pool.alloc_from(f).unwrap()).collect(),
        );
        assert!(txq.flush(WAIT));
        assert_eq!(cap.recv_test_frames(frames.len(), WAIT), frames, "{tag}");
        drop((txq, rxq));
        assert_pool_full(&pool);
    }
}

/// The interface deleted under a running port: rx and tx report it, and the
/// pool is full once the queues are dropped.
#[test]
fn interface_deleted_mid_traffic() {
    netns();
    let (p, k) = veth("xgone");
    let port = xdp_port(XdpConfig::new(p.as_str()));
    let pool = umem_pool();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    let mut txq = port.tx_queue(0).unwrap();
    let inj = PacketSocket::injector(k);
    inj.send(&test_frame(100, 1)).unwrap();
    assert_eq!(rx_test_frames(&mut rxq, 1, WAIT).len(), 1);
    ip(&["link", "del", &p]);
    let deadline = Instant::now() + WAIT;
    let mut burst = Vec::new();
    loop {
        match rxq.rx_burst(&mut burst, 32) {
            Err(Error::DeviceVanished { .. }) => break,
            r => {
                burst.clear();
                assert!(
                    Instant::now() < deadline,
                    "rx never saw the deletion: {r:?}"
                );
            }
        }
    }
    let mut pkts = vec![pool.alloc_from(&test_frame(100, 2)).unwrap()];
    let deadline = Instant::now() + WAIT;
    while !matches!(txq.tx_burst(&mut pkts), Err(Error::DeviceVanished { .. })) {
        assert!(Instant::now() < deadline, "tx never saw the deletion");
        if pkts.is_empty() {
            pkts.push(pool.alloc_from(&test_frame(100, 3)).unwrap());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(pkts);
    drop((rxq, txq));
    assert_pool_full(&pool);
}

/// Rx interrupts: with nothing received, `wait` sleeps until the timeout;
/// a frame from the peer wakes it, and the interrupt fd (the socket) is
/// readable then.
#[test]
fn rx_interrupts_wake_on_a_frame() {
    netns();
    let (p, k) = veth("xi");
    let port = xdp_port(XdpConfig::new(p));
    let pool = umem_pool();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    rxq.enable_interrupt().unwrap();
    assert!(rxq.interrupt_fd().is_some());
    let t0 = Instant::now();
    assert!(
        !rxq.wait(Duration::from_millis(200)).unwrap(),
        "nothing came"
    );
    assert!(t0.elapsed() >= Duration::from_millis(150), "it slept");
    let inj = PacketSocket::injector(k);
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            inj.send(&test_frame(100, 7)).unwrap();
        });
        assert!(rxq.wait(WAIT).unwrap(), "the frame woke the wait");
    });
    let got = rx_test_frames(&mut rxq, 1, WAIT);
    assert_eq!(got[0].to_vec(), test_frame(100, 7));
    drop(got);
    drop(rxq);
    assert_pool_full(&pool);
}

/// A user's own XDP program and XSKMAP, made with raw `bpf(2)` calls here (the
/// test's independent oracle, not rtap's code): the map pinned in a bpffs
/// mounted for the test.
mod user {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    fn bpf(cmd: i64, a: &mut [u8; 128]) -> i64 {
        // SAFETY: a is a live 128-byte attribute block; every pointer put in it
        // by the callers outlives the call.
        unsafe { libc::syscall(libc::SYS_bpf, cmd, a.as_mut_ptr(), 128usize) }
    }

    fn put(a: &mut [u8; 128], off: usize, v: &[u8]) {
        a[off..off + v.len()].copy_from_slice(v);
    }

    fn fd(r: i64, what: &str) -> OwnedFd {
        assert!(r >= 0, "{what}: {}", std::io::Error::last_os_error());
        // SAFETY: the kernel just returned this fd; nothing else owns it.
        unsafe { OwnedFd::from_raw_fd(r as i32) }
    }

    /// A map of `kind` (17: XSKMAP, 2: ARRAY) with 4-byte keys and values.
    pub fn map(kind: u32, entries: u32) -> OwnedFd {
        let mut a = [0u8; 128];
        put(&mut a, 0, &kind.to_ne_bytes());
        put(&mut a, 4, &4u32.to_ne_bytes());
        put(&mut a, 8, &4u32.to_ne_bytes());
        put(&mut a, 12, &entries.to_ne_bytes());
        fd(bpf(0, &mut a), "BPF_MAP_CREATE")
    }

    pub fn pin(obj: &OwnedFd, path: &str) {
        let c = std::ffi::CString::new(path).unwrap();
        let mut a = [0u8; 128];
        put(&mut a, 0, &(c.as_ptr() as u64).to_ne_bytes());
        put(&mut a, 8, &(obj.as_raw_fd() as u32).to_ne_bytes());
        assert_eq!(
            bpf(6, &mut a),
            0,
            "BPF_OBJ_PIN: {}",
            std::io::Error::last_os_error()
        );
    }

    /// The usual AF_XDP program: redirect to the map by rx queue, else pass.
    pub fn program(map: &OwnedFd) -> OwnedFd {
        let i = |code: u8, regs: u8, off: i16, imm: i32| {
            let mut b = [0u8; 8];
            b[0] = code;
            b[1] = regs;
            b[2..4].copy_from_slice(&off.to_le_bytes());
            b[4..8].copy_from_slice(&imm.to_le_bytes());
            u64::from_le_bytes(b)
        };
        let insns = [
            i(0x61, 0x12, 16, 0),
            i(0x18, 0x11, 0, map.as_raw_fd()),
            0,
            i(0xb7, 0x03, 0, 2),
            i(0x85, 0, 0, 51),
            i(0x95, 0, 0, 0),
        ];
        let lic = b"GPL\0";
        let mut a = [0u8; 128];
        put(&mut a, 0, &6u32.to_ne_bytes());
        put(&mut a, 4, &(insns.len() as u32).to_ne_bytes());
        put(&mut a, 8, &(insns.as_ptr() as u64).to_ne_bytes());
        put(&mut a, 16, &(lic.as_ptr() as u64).to_ne_bytes());
        put(&mut a, 68, &37u32.to_ne_bytes());
        fd(bpf(5, &mut a), "BPF_PROG_LOAD")
    }

    /// Attached natively through a BPF link (detached when dropped).
    pub fn attach(prog: &OwnedFd, ifindex: u32) -> OwnedFd {
        let mut a = [0u8; 128];
        put(&mut a, 0, &(prog.as_raw_fd() as u32).to_ne_bytes());
        put(&mut a, 4, &ifindex.to_ne_bytes());
        put(&mut a, 8, &37u32.to_ne_bytes());
        put(&mut a, 12, &4u32.to_ne_bytes());
        fd(bpf(28, &mut a), "BPF_LINK_CREATE")
    }

    /// A bpffs mounted at a fresh directory; unmounted when dropped.
    pub struct Bpffs(pub String);

    impl Bpffs {
        pub fn mount() -> Bpffs {
            let dir = format!(
                "/tmp/rtap-test-bpffs-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            )
            .replace(['(', ')'], "");
            std::fs::create_dir_all(&dir).unwrap();
            let ok = std::process::Command::new("mount")
                .args(["-t", "bpf", "bpf", &dir])
                .status()
                .unwrap()
                .success();
            assert!(ok, "mount bpffs at {dir}");
            Bpffs(dir)
        }
    }

    impl Drop for Bpffs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
            let _ = std::fs::remove_dir(&self.0);
        }
    }
}

/// `prog=map:PATH`: rtap puts its socket into the pinned XSKMAP of a program
/// the user runs, and receives through it; rtap's own program is refused
/// while the user's is attached; a pinned map of another type is refused;
/// once the user detaches the program nothing arrives, and the pool is full
/// when the queue goes.
#[test]
fn users_pinned_xskmap_and_detached_program() {
    netns();
    let (p, k) = veth("xu");
    let fs = user::Bpffs::mount();
    let map = user::map(17, 4);
    let path = format!("{}/xsks", fs.0);
    user::pin(&map, &path);
    let prog = user::program(&map);
    let link = user::attach(&prog, if_index(&p).unwrap());
    let err = Port::open(XdpConfig::new(p.as_str())).expect_err("the interface has a program");
    assert!(err.to_string().contains("prog=map:PATH"), "{err}");
    let array = user::map(2, 4);
    let apath = format!("{}/array", fs.0);
    user::pin(&array, &apath);
    let err =
        Port::open(XdpConfig::new(p.as_str()).prog(Prog::Map(apath))).expect_err("not an XSKMAP");
    assert!(err.to_string().contains("not an XSKMAP"), "{err}");
    let port = xdp_port(XdpConfig::new(p.as_str()).prog(Prog::Map(path)));
    let pool = umem_pool();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    let inj = PacketSocket::injector(k);
    for i in 0..10 {
        inj.send(&test_frame(300, i)).unwrap();
    }
    assert_eq!(rx_test_frames(&mut rxq, 10, WAIT).len(), 10);
    // The user detaches their program: frames go to the stack now.
    drop(link);
    inj.send(&test_frame(300, 99)).unwrap();
    assert!(rx_test_frames(&mut rxq, 1, Duration::from_millis(300)).is_empty());
    // The user's program is theirs: a capture filter runs in user space.
    let all = rtap::capture::bpf::Program::from_ddd("1\n6 0 0 262144\n").unwrap();
    let place = port.set_rx_filter(Some(&all)).unwrap();
    assert!(
        matches!(&place, rtap::capture::FilterPlace::User(why) if why.contains("prog=map:")),
        "{place:?}"
    );
    drop(rxq);
    assert_pool_full(&pool);
    drop((prog, map, array));
}

/// `tcpdump -ddd 'udp src portrange 10000-10015'`: flows 0..16 of
/// `flow_frame`, and nothing that is not IP.
const FLOWS_0_TO_15: &str = "17\n40 0 0 12\n21 0 4 34525\n48 0 0 20\n21 0 12 17\n40 0 0 54\n53 8 10 10000\n21 0 9 2048\n48 0 0 23\n21 0 7 17\n40 0 0 20\n69 5 0 8191\n177 0 0 14\n72 0 0 14\n53 0 2 10000\n37 1 0 10015\n6 0 0 262144\n6 0 0 0\n";

/// A capture filter on an xdp port runs in its XDP program: the port receives
/// exactly the frames the interpreter keeps, the others go on to the kernel's
/// stack (an AF_PACKET socket on the port's interface sees exactly those);
/// removing the filter brings every frame back; a filter that would cut
/// frames short stays in user space (and the plain program is back).
#[test]
fn capture_filter_runs_in_the_xdp_program() {
    use rtap::capture::bpf::Program;
    use rtap::capture::FilterPlace;
    netns();
    let (p, k) = veth("xf");
    let port = xdp_port(XdpConfig::new(p.as_str()));
    let pool = umem_pool();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    let stack = PacketSocket::bind(if_index(&p).unwrap());
    let inj = PacketSocket::injector(k);
    let filt = Program::from_ddd(FLOWS_0_TO_15).unwrap();
    assert_eq!(
        port.set_rx_filter(Some(&filt)).unwrap(),
        FilterPlace::Kernel
    );
    // Flow frames of 32 flows and test frames (not IP), interleaved.
    let frames: Vec<Vec<u8>> = (0..320u32)
        .map(|i| match i % 5 {
            4 => test_frame(100, i),
            _ => flow_frame(80 + (i as usize % 7) * 50, (i % 32) as u16, i),
        })
        .collect();
    let (kept, passed): (Vec<&Vec<u8>>, Vec<&Vec<u8>>) =
        frames.iter().partition(|f| filt.matches(f, f.len() as u32));
    assert!(!kept.is_empty() && !passed.is_empty());
    for f in &frames {
        inj.send(f).unwrap();
    }
    let got: Vec<Vec<u8>> = rx_test_frames(&mut rxq, kept.len(), WAIT)
        .iter()
        .map(|p| p.to_vec())
        .collect();
    assert_eq!(got.len(), kept.len(), "{:?}", port.stats());
    assert!(
        got.iter().zip(&kept).all(|(a, b)| a == *b),
        "the kept frames, in order"
    );
    assert!(rx_test_frames(&mut rxq, 1, Duration::from_millis(200)).is_empty());
    let seen = stack.recv_where(passed.len(), WAIT, is_ours);
    assert_eq!(seen.len(), passed.len(), "dropped frames reach the stack");
    assert!(seen.iter().zip(&passed).all(|(a, b)| a == *b));
    // 50 frames sent: all reach the socket, none the stack.
    let all_reach_the_socket = |rxq: &mut rtap::RxQueue| {
        for f in &frames[..50] {
            inj.send(f).unwrap();
        }
        assert_eq!(rx_test_frames(rxq, 50, WAIT).len(), 50);
        assert!(stack
            .recv_where(1, Duration::from_millis(200), is_ours)
            .is_empty());
    };
    // No filter: everything to the socket, nothing to the stack.
    assert_eq!(port.set_rx_filter(None).unwrap(), FilterPlace::Removed);
    all_reach_the_socket(&mut rxq);
    // One filter in place of another: no frame meets the plain program in
    // between, and the new one holds.
    assert_eq!(
        port.set_rx_filter(Some(&filt)).unwrap(),
        FilterPlace::Kernel
    );
    let all = Program::from_ddd("1\n6 0 0 262144\n").unwrap();
    assert_eq!(port.set_rx_filter(Some(&all)).unwrap(), FilterPlace::Kernel);
    all_reach_the_socket(&mut rxq);
    // A filter that keeps 96 bytes of each frame cannot run in XDP (User),
    // and the in-kernel filter attached before is gone.
    assert_eq!(
        port.set_rx_filter(Some(&filt)).unwrap(),
        FilterPlace::Kernel
    );
    let snap = Program::from_ddd("1\n6 0 0 96\n").unwrap();
    let place = port.set_rx_filter(Some(&snap)).unwrap();
    assert!(
        matches!(&place, FilterPlace::User(why) if why.contains("keeps the first 96 bytes")),
        "{place:?}"
    );
    all_reach_the_socket(&mut rxq);
    assert_eq!(port.xstat("rx_q0_bad_descs"), Some(0));
    drop(rxq);
    drop(port);
    assert_pool_full(&pool);
}

/// Checksums asked for on an xdp port come out right. Where the kernel has XDP
/// tx metadata (Linux 6.11+) rtap only seeds the field and the kernel finishes
/// it (the port's veth has tx checksumming off, so the kernel does it in
/// software on the way out: a wrong seed or ignored metadata would show);
/// before, rtap finishes it. Either way the counters say which. A frame whose
/// headroom is too small for the metadata is copied; segmentation is refused,
/// counted.
#[test]
fn tx_checksums_by_the_kernel_where_it_has_tx_metadata() {
    use common::offload::*;
    use rtap::{Gso, TxRequest};
    netns();
    let (p, k) = veth("xs");
    let st = std::process::Command::new("ethtool")
        .args(["-K", &p, "tx", "off"])
        .status()
        .expect("run ethtool (Debian package ethtool)");
    assert!(st.success(), "ethtool -K {p} tx off");
    let port = xdp_port(XdpConfig::new(&p));
    assert!(port.info().tx_offload.csum && !port.info().tx_offload.gso);
    let pool = umem_pool();
    let _rxq = port.rx_queue(0, &pool).unwrap();
    let mut txq = port.tx_queue(0).unwrap();
    let meta = kernel_at_least(6, 11);
    assert_eq!(port.xstat("tx_q0_metadata"), Some(u64::from(meta)));
    let cap = PacketSocket::bind(k);
    let mut want = Vec::new();
    let mut pkts = Vec::new();
    for (i, &(v6, tcp)) in COMBOS.iter().enumerate() {
        let data = payload(101 + 200 * i, i as u8);
        let f = l4_frame([0xff; 6], v6, tcp, &data);
        want.push((v6, tcp, rd16(&f, csum_field(v6, tcp)), data));
        let g = garbled(&f, v6, tcp);
        let p = if i == 3 {
            // The frame starts 8 bytes into the buffer: too little headroom for
            // the metadata.
            let mut p = pool.alloc().unwrap();
            let n = p.headroom() - 8;
            p.prepend(n).unwrap().copy_from_slice(&g[..n]);
            p.append(&g[n..]).unwrap();
            assert_eq!((p.headroom(), p.to_vec()), (8, g.clone()));
            p
        } else {
            pool.alloc_from(&g).unwrap()
        };
        pkts.push(with_csum(p));
    }
    // And a segmentation request, which AF_XDP cannot hand on.
    let mut big = pool
        .alloc_from(&l4_frame([0xff; 6], false, true, &payload(1000, 9)))
        .unwrap();
    big.set_tx_offload(TxRequest {
        l4_csum: true,
        gso: Gso::Tcp {
            mss: 500,
            ecn: false,
        },
    });
    pkts.push(big);
    tx_all(&mut txq, pkts);
    assert!(txq.flush(WAIT));
    let got = cap.recv_where(4, WAIT, |f| f.len() > 14 && f[6..12] == HOST_MAC);
    assert_eq!(got.len(), 4, "frames missing: {:?}", port.stats());
    let mut kinds: Vec<_> = got
        .iter()
        .map(|f| assert_checksum_right(f, &want))
        .map(|v| (v.v6, v.tcp))
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, COMBOS, "one frame of each kind");
    let (kernel, sw) = if meta { (4, 0) } else { (0, 4) };
    assert_eq!(port.xstat("tx_q0_csum_kernel"), Some(kernel));
    assert_eq!(port.xstat("tx_q0_csum_sw"), Some(sw));
    assert_eq!(
        port.xstat("tx_q0_offload_rejected"),
        Some(1),
        "the TSO frame"
    );
    // The frame with too little headroom was copied where metadata needs room.
    assert_eq!(port.xstat("tx_q0_copied"), Some(u64::from(meta)));
    let s = port.stats().unwrap();
    assert_eq!((s.tx.packets, s.tx.errors), (4, 1));
    drop((txq, _rxq));
    assert_pool_full(&pool);
}

/// Multi-buffer frames (`multibuf=on`, Linux 6.6+): with MTU 9000 on both
/// veth ends, frames the peer sends arrive as chains of UMEM buffers, byte for
/// byte, in order; chains the port sends (of its UMEM pool, and of another
/// pool, copied) reach the peer whole, counted once each. Before 6.6 the
/// socket's bind is refused and the error says why.
#[test]
fn multi_buffer_frames_both_ways() {
    netns();
    let (p, k) = veth("xb");
    ip(&["link", "set", &p, "mtu", "9000"]);
    ip(&["link", "set", "xbk", "mtu", "9000"]);
    let cfg = XdpConfig::new(&p).multibuf(true);
    let pool = umem_pool();
    if !kernel_at_least(6, 6) {
        let port = Port::open(cfg).expect("open");
        port.start().unwrap();
        let err = port
            .rx_queue(0, &pool)
            .expect_err("no XDP_USE_SG before 6.6");
        assert!(
            matches!(err, Error::Unsupported { .. }) && err.to_string().contains("6.6"),
            "{err}"
        );
        drop(port);
        assert_pool_full(&pool);
        return;
    }
    let port = xdp_port(cfg);
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    let mut txq = port.tx_queue(0).unwrap();
    let lens = [60usize, 1514, 1921, 2176, 4000, 6000, 9014];
    let inj = PacketSocket::injector(k);
    for (i, &len) in lens.iter().enumerate() {
        inj.send(&test_frame(len, i as u32)).unwrap();
    }
    let got = rx_test_frames(&mut rxq, lens.len(), WAIT);
    assert_eq!(got.len(), lens.len(), "{:?}", port.stats());
    for (i, (p, &len)) in got.iter().zip(&lens).enumerate() {
        assert_eq!(p.to_vec(), test_frame(len, i as u32), "frame {i}");
        assert_eq!(
            p.nb_segs() > 1,
            len > 2176 - 256,
            "frame {i} of {len} bytes"
        );
    }
    assert_eq!(port.xstat("rx_q0_bad_descs"), Some(0));
    drop(got);
    // Tx: chains of the UMEM's pool as they are, others copied.
    let other = Pool::new(PoolConfig::default().count(256).buf_size(600)).unwrap();
    let cap = PacketSocket::bind(k);
    let mut pkts = Vec::new();
    let mut bytes = 0;
    for (i, &len) in lens.iter().enumerate() {
        let f = test_frame(len, 100 + i as u32);
        bytes += len as u64;
        pkts.push(pool.alloc_from(&f).unwrap());
        pkts.push(other.alloc_from(&f).unwrap());
        bytes += len as u64;
    }
    tx_all(&mut txq, pkts);
    assert!(txq.flush(WAIT));
    let sent = cap.recv_test_frames(2 * lens.len(), WAIT);
    let want: Vec<_> = lens
        .iter()
        .enumerate()
        .flat_map(|(i, &len)| {
            [
                test_frame(len, 100 + i as u32),
                test_frame(len, 100 + i as u32),
            ]
        })
        .collect();
    assert_eq!(sent, want);
    let st = port.stats().unwrap();
    assert_eq!(
        (st.tx.packets, st.tx.bytes, st.tx.errors),
        (2 * lens.len() as u64, bytes, 0)
    );
    assert_eq!(port.xstat("tx_q0_copied"), Some(lens.len() as u64));
    assert_eq!(
        port.xstat("tx_q0_metadata"),
        Some(0),
        "none with multi-buffer"
    );
    drop((txq, rxq));
    assert_pool_full(&pool);
    assert_pool_full(&other);
}
