//! Sharing a port between processes ([`rtap::share`]), exercised within one
//! process (the server thread and an attached port talk over a real Unix socket
//! and pass real fds; the CLI's tests run two processes). Tap ports; a namespace
//! per test.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::*;
use rtap::share::{QueueHolder, ServeConfig, SharedConfig};
use rtap::{Error, Port, RxQueue, TapConfig};

/// A started two-queue tap, served at an abstract name unique to the test.
fn served(tag: &str) -> (Port, rtap::share::Server, String) {
    netns();
    let port = started(tag, rtap::BackendKind::Uring, 2);
    let name = format!("@rtap-test-{tag}-{}", std::process::id());
    let srv = port.serve(ServeConfig::new(&name)).unwrap();
    (port, srv, name)
}

/// Waits until the server shows `want` as the holder of `q`.
fn wait_holder(srv: &rtap::share::Server, q: usize, want: &QueueHolder) {
    let deadline = Instant::now() + WAIT;
    while &srv.holders()[q] != want {
        assert!(
            Instant::now() < deadline,
            "queue {q}: {:?}, want {want:?}",
            srv.holders()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An attached port receives on the queue it was given, the serving port on the
/// other; frames are split between them by flow as between two queues of one
/// process; the serving port's stats include what the attached port counted.
#[test]
fn attached_queue_receives_and_counts_into_the_serving_port() {
    let (port, srv, name) = served("shr0");
    let b = Port::open(SharedConfig::new(&name).queue_list(&[1])).unwrap();
    assert_eq!(b.kind(), rtap::DeviceKind::SHARED);
    assert_eq!(b.queue_count(), 1);
    assert_eq!(b.ifindex(), port.ifindex());
    assert_eq!(b.offloads(), port.offloads());
    b.start().unwrap();
    let me = QueueHolder::Process {
        pid: std::process::id() as i32,
        uid: 0,
    };
    wait_holder(&srv, 1, &me);
    assert_eq!(srv.stats().attached, 1);
    let pool = pool();
    let e = err(port.rx_queue(1, &pool));
    assert!(matches!(e, Error::QueueBusy { queue: 1, .. }), "{e:?}");
    let mut rxqs: Vec<RxQueue> = vec![
        port.rx_queue(0, &pool).unwrap(),
        b.rx_queue(0, &pool).unwrap(),
    ];
    let inj = PacketSocket::injector(port.ifindex());
    let frames: Vec<Vec<u8>> = (0..512u32)
        .map(|i| flow_frame(80, (i % 256) as u16, i))
        .collect();
    let mut per: Vec<Vec<rtap::Packet>> = vec![Vec::new(), Vec::new()];
    assert_eq!(inject_and_receive(&inj, &frames, &mut rxqs, &mut per), 512);
    assert!(
        !per[0].is_empty() && !per[1].is_empty(),
        "{:?}",
        per.iter().map(Vec::len).collect::<Vec<_>>()
    );
    for p in per.iter().flatten() {
        let v = p.to_vec();
        let (flow, seq) = flow_of(&v).unwrap();
        assert_eq!(v, flow_frame(80, flow, seq));
    }
    // The attached port counted into the serving port's block of queue 1.
    let got1 = per[1].len() as u64;
    assert_eq!(b.stats().unwrap().rx_queues[0].packets, got1);
    let st = port.stats().unwrap();
    assert_eq!(st.rx_queues[1].packets, got1);
    assert_eq!(st.rx.packets, 512);
    // Tx from the attached queue reaches the kernel.
    let cap = PacketSocket::bind(port.ifindex());
    let mut txq = b.tx_queue(0).unwrap();
    tx_all(
        &mut txq,
        vec![pool.alloc_from(&test_frame(100, 77)).unwrap()],
    );
    assert!(txq.flush(WAIT));
    assert_eq!(cap.recv_ours(1, WAIT).len(), 1);
    assert_eq!(port.stats().unwrap().tx_queues[1].packets, 1);
    drop((rxqs, per, txq));
    b.stop().unwrap();
    assert!(
        b.link_up().unwrap(),
        "the attached port's stop leaves the link alone"
    );
    drop(b);
    wait_holder(&srv, 1, &QueueHolder::Free);
    assert_eq!(srv.stats().released, 1);
    // Free again: the serving process can open it.
    let _q1 = port.rx_queue(1, &pool).unwrap();
    assert_eq!(srv.holders()[1], QueueHolder::Free);
    wait_holder(&srv, 1, &QueueHolder::Serving);
}

/// A queue belongs to one process at a time; a missing queue or a taken one is
/// a clear error; a released queue can be attached again.
#[test]
fn taken_and_missing_queues_refused() {
    let (port, srv, name) = served("shr1");
    let a = Port::open(SharedConfig::new(&name).queue_list(&[1])).unwrap();
    match Port::open(SharedConfig::new(&name).queue_list(&[1])) {
        Err(Error::SharedQueueTaken { queue: 1, holder }) => {
            assert!(holder.contains("held by process"), "{holder}")
        }
        other => panic!("{other:?}"),
    }
    match Port::open(SharedConfig::new(&name).queue_list(&[5])) {
        Err(Error::InvalidConfig {
            field: "queues",
            why,
        }) => {
            assert!(why.contains("does not exist"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    // The serving process holds queue 0: not to be had either.
    let pool = pool();
    let _mine = port.rx_queue(0, &pool).unwrap();
    match Port::open(SharedConfig::new(&name)) {
        Err(Error::SharedQueueTaken { holder, .. }) => {
            assert!(holder.contains("serving process"), "{holder}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(srv.stats().rejected, 3);
    drop(a);
    wait_holder(&srv, 1, &QueueHolder::Free);
    let again = Port::open(SharedConfig::new(&name).queue_list(&[1])).unwrap();
    assert_eq!(again.queue_count(), 1);
    let holders = rtap::share::status(&name).unwrap();
    assert_eq!(holders[0], QueueHolder::Serving);
    assert!(matches!(holders[1], QueueHolder::Process { .. }));
    match Port::open(SharedConfig::new("@rtap-nobody-serves-this")) {
        Err(Error::ShareUnavailable { .. }) => {}
        other => panic!("{other:?}"),
    }
}

/// The server checks credentials: a peer whose uid is not allowed is refused
/// at both ends, and gets no fd.
#[test]
fn peer_with_another_uid_refused() {
    netns();
    let port = started("shr2", rtap::BackendKind::Uring, 1);
    let name = format!("@rtap-test-shr2-{}", std::process::id());
    // Only uid 4242 may attach; this test runs as root.
    let srv = port.serve(ServeConfig::new(&name).uids(&[4242])).unwrap();
    match Port::open(SharedConfig::new(&name)) {
        Err(Error::ShareRefused { why, .. }) => {
            assert!(why.contains("not allowed"), "{why}");
            assert!(why.contains("uid 0"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    let deadline = Instant::now() + WAIT;
    while srv.stats().refused == 0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    let st = srv.stats();
    assert!(st.last_error.unwrap().contains("not allowed"));
    assert_eq!(st.attached, 0);
    assert_eq!(srv.holders(), vec![QueueHolder::Free]);
    // Allowed by group instead (under a new name: a child forked by another
    // test may hold the old listener until it execs).
    drop(srv);
    let name = format!("{name}-g");
    let srv = port
        .serve(ServeConfig::new(&name).uids(&[4242]).gids(&[0]))
        .unwrap();
    let b = Port::open(SharedConfig::new(&name)).unwrap();
    assert_eq!(b.queue_count(), 1);
    drop((b, srv));
}

/// A path socket is created with mode 0600 and removed when the server goes.
#[test]
fn socket_file_mode_0600() {
    netns();
    let port = started("shr3", rtap::BackendKind::Rw, 1);
    let dir = std::env::temp_dir().join(format!("rtap-share-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("shr3.sock");
    let p = path.to_str().unwrap();
    let srv = port.serve(ServeConfig::new(p)).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    // A second server on the same path is refused; a stale file is replaced.
    assert!(port.serve(ServeConfig::new(p)).is_err());
    let b = Port::open(SharedConfig::new(p).backend(rtap::BackendKind::Rw)).unwrap();
    assert_eq!(b.engine(), rtap::Engine::RW);
    drop(b);
    drop(srv);
    assert!(!path.exists(), "socket file removed");
    std::fs::write(&path, b"").unwrap();
    let srv = port.serve(ServeConfig::new(p)).unwrap();
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The attached port reads the link and follows its events, but the link is
/// the serving process's to change.
#[test]
fn attached_port_reads_the_link_but_does_not_control_it() {
    let (port, _srv, name) = served("shr4");
    let b = Port::open(SharedConfig::new(&name).queue_list(&[0])).unwrap();
    assert_eq!(b.link().unwrap().ifindex, port.ifindex());
    assert_eq!(b.mtu().unwrap(), port.mtu().unwrap());
    for e in [
        b.set_mtu(1400).unwrap_err(),
        b.set_promisc(true).unwrap_err(),
        b.set_mac("02:00:00:00:00:07".parse().unwrap()).unwrap_err(),
    ] {
        assert!(matches!(e, Error::NotLinkOwner { .. }), "{e:?}");
    }
    let ch = b.link_events().unwrap().into_channel();
    port.set_mtu(1300).unwrap();
    let mut seen = Vec::new();
    while !seen.contains(&rtap::LinkEvent::Mtu(1300)) {
        match ch.recv_timeout(WAIT) {
            Some(e) => seen.push(e),
            None => panic!("no MTU event: {seen:?}"),
        }
    }
    assert_eq!(b.mtu().unwrap(), 1300);
}

/// Ports in another namespace are served with it: the attached port's link
/// control and events work there.
#[test]
fn served_from_another_namespace() {
    netns();
    let ns = NamedNetns::create("shr5");
    let port = {
        let p = Port::open(
            TapConfig::new("shr5")
                .queues(1)
                .netns(rtap::Netns::Named(ns.name().to_string())),
        )
        .unwrap();
        p.start().unwrap();
        p
    };
    let name = format!("@rtap-test-shr5-{}", std::process::id());
    let _srv = port.serve(ServeConfig::new(&name)).unwrap();
    assert!(!if_exists("shr5"), "not in this namespace");
    let b = Port::open(SharedConfig::new(&name)).unwrap();
    assert_eq!(b.name(), "shr5");
    assert!(b.link_up().unwrap());
}

/// An AF_PACKET port shared: the attached process gets the queue's rx socket
/// (its ring, in the port's fanout group) and a tx socket of its own; frames
/// spread over both processes' queues by flow, none lost; when it lets go, the
/// serving process reads on from where it stopped, also in the middle of a
/// burst of frames still in the ring.
#[test]
fn packet_port_shared() {
    for v3 in [false, true] {
        netns();
        let tag = if v3 { "shp3" } else { "shp2" };
        let (p, k) = (format!("{tag}p"), format!("{tag}k"));
        ip(&["link", "add", &p, "type", "veth", "peer", "name", &k]);
        ip(&["link", "set", &k, "up"]);
        let mut cfg = rtap::PacketConfig::new(&p).queues(2);
        if v3 {
            cfg = cfg.tpacket(rtap::Tpacket::V3 {
                block_timeout_ms: 1,
            });
        }
        let port = Port::open(cfg).unwrap();
        port.start().unwrap();
        wait_oper_up(&k);
        let name = format!("@rtap-test-{tag}-{}", std::process::id());
        let srv = port.serve(ServeConfig::new(&name)).unwrap();
        let b = Port::open(SharedConfig::new(&name).queue_list(&[1])).unwrap();
        b.start().unwrap();
        let pool = pool();
        let mut rxqs: Vec<RxQueue> = vec![
            port.rx_queue(0, &pool).unwrap(),
            b.rx_queue(0, &pool).unwrap(),
        ];
        let inj = PacketSocket::injector(if_index(&k).unwrap());
        let frames: Vec<Vec<u8>> = (0..512u32)
            .map(|i| flow_frame(80, (i % 256) as u16, i))
            .collect();
        let mut per: Vec<Vec<rtap::Packet>> = vec![Vec::new(), Vec::new()];
        assert_eq!(
            inject_and_receive(&inj, &frames, &mut rxqs, &mut per),
            512,
            "v3={v3}"
        );
        assert!(!per[0].is_empty() && !per[1].is_empty(), "v3={v3}");
        assert_eq!(
            port.stats().unwrap().rx_queues[1].packets,
            per[1].len() as u64
        );
        // Tx from the attached process's own tx ring reaches the peer.
        let peer = PacketSocket::bind(if_index(&k).unwrap());
        let mut txq = b.tx_queue(0).unwrap();
        tx_all(
            &mut txq,
            vec![pool.alloc_from(&test_frame(100, 9)).unwrap()],
        );
        assert!(txq.flush(WAIT));
        assert_eq!(peer.recv_test_frames(1, WAIT).len(), 1, "v3={v3}");
        drop(txq);
        // Frames for queue 1 left in its ring when the attached port goes: the
        // serving process reads them, in order, none twice.
        let q1_flows: std::collections::HashSet<u16> = per[1]
            .iter()
            .map(|p| flow_of(&p.to_vec()).unwrap().0)
            .collect();
        drop(per);
        let extra: Vec<Vec<u8>> = (0..40u32)
            .map(|i| {
                let flow = *q1_flows.iter().nth(i as usize % q1_flows.len()).unwrap();
                flow_frame(80, flow, 10_000 + i)
            })
            .collect();
        for f in &extra {
            inj.send(f).unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        // The attached process reads a few, then goes.
        let mut some = Vec::new();
        let deadline = Instant::now() + WAIT;
        while some.is_empty() && Instant::now() < deadline {
            rxqs[1].rx_burst(&mut some, 7).unwrap();
        }
        let n_some = some.len();
        drop(some);
        drop(rxqs);
        drop(b);
        wait_holder(&srv, 1, &QueueHolder::Free);
        let mut q1 = port.rx_queue(1, &pool).unwrap();
        let mut rest = Vec::new();
        let deadline = Instant::now() + WAIT;
        while n_some + rest.len() < 40 && Instant::now() < deadline {
            q1.rx_burst(&mut rest, 64).unwrap();
        }
        let seqs: Vec<u32> = rest
            .iter()
            .map(|p| flow_of(&p.to_vec()).unwrap().1)
            .collect();
        assert_eq!(n_some + seqs.len(), 40, "v3={v3}: {n_some} then {seqs:?}");
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "v3={v3}: in order: {seqs:?}"
        );
        drop((rest, q1));
        drop(srv);
        port.stop().unwrap();
    }
}

/// A `SOCK_SEQPACKET` socket, and the address of abstract name `name` (`@x`).
fn seqpacket_socket(name: &str) -> (std::os::fd::OwnedFd, libc::sockaddr_un, libc::socklen_t) {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket call; the result is checked and owned below.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0);
    // SAFETY: fd is fresh and owned by nobody else.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_un is plain data; all-zero is valid.
    let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = name.strip_prefix('@').unwrap().as_bytes();
    for (d, s) in a.sun_path[1..].iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + 1 + bytes.len();
    (fd, a, len as libc::socklen_t)
}

/// A listening `SOCK_SEQPACKET` socket at abstract name `name` (the test plays
/// a hostile server).
fn seqpacket_listener(name: &str) -> std::os::fd::OwnedFd {
    use std::os::fd::AsRawFd;
    let (fd, a, len) = seqpacket_socket(name);
    // SAFETY: a is a live sockaddr_un of at least `len` bytes.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &a as *const libc::sockaddr_un as *const libc::sockaddr,
            len,
        )
    };
    assert_eq!(r, 0, "bind {name}");
    // SAFETY: fd is a bound socket.
    assert_eq!(unsafe { libc::listen(fd.as_raw_fd(), 8) }, 0);
    fd
}

/// A plain connection to abstract name `name`, nothing sent (blocking).
fn seqpacket_connect(name: &str) -> std::os::fd::OwnedFd {
    use std::os::fd::AsRawFd;
    let (conn, a, len) = seqpacket_socket(name);
    // SAFETY: a is a live sockaddr_un of at least `len` bytes.
    let r = unsafe {
        libc::connect(
            conn.as_raw_fd(),
            &a as *const libc::sockaddr_un as *const libc::sockaddr,
            len,
        )
    };
    assert_eq!(r, 0, "connect {name}");
    conn
}

/// Serves `replies`, one connection each: reads the request, sends the reply
/// (no fds), closes.
fn hostile_server(
    listener: std::os::fd::OwnedFd,
    replies: Vec<String>,
) -> std::thread::JoinHandle<()> {
    use std::os::fd::AsRawFd;
    std::thread::spawn(move || {
        for reply in replies {
            // SAFETY: listener is a listening socket; no address is wanted.
            let c = unsafe {
                libc::accept(
                    listener.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
            assert!(c >= 0);
            let mut buf = [0u8; 4096];
            // SAFETY: buf is live and writable; c is an open socket.
            unsafe { libc::recv(c, buf.as_mut_ptr().cast(), buf.len(), 0) };
            // SAFETY: reply is live for the call; c is an open socket.
            unsafe { libc::send(c, reply.as_ptr().cast(), reply.len(), 0) };
            // SAFETY: c is ours and closed once.
            unsafe { libc::close(c) };
        }
    })
}

/// A server that lies (absurd queue and fd counts, unknown kinds, no fds,
/// garbage) gets a typed refusal, never a panic or a hang.
#[test]
fn hostile_server_replies_are_refused() {
    netns();
    let name = format!("@rtap-test-hostile-{}", std::process::id());
    let attach_replies = [
        "ok v=3 kind=tap name=x ifindex=1 queues=0 offloads=none netns=0 fds_per_queue=18446744073709551615",
        "ok v=3 kind=tap name=x ifindex=1 queues=0,1 offloads=none netns=0 fds_per_queue=9223372036854775807",
        "ok v=3 kind=pcap name=x ifindex=1 queues=0 offloads=none netns=0 fds_per_queue=1",
        "ok v=3 kind=shared name=x ifindex=1 queues=0 offloads=none netns=0 fds_per_queue=1",
        "ok v=3 kind=tap name=x ifindex=1 queues=0 offloads=none netns=1 fds_per_queue=1",
        "ok v=3 kind=packet name=x ifindex=1 queues=0 offloads=none netns=0 fds_per_queue=2 frame_size=4294967280",
        "ok v=3 kind=tap name=x ifindex=1 queues=x offloads=none",
        "ok v=1 kind=tap",
        "\u{ff}garbage",
    ];
    let status_replies = [
        "status v=3 queues=18446744073709551615",
        "status v=3 queues=100000",
    ];
    let mut all: Vec<String> = attach_replies.iter().map(|s| s.to_string()).collect();
    all.extend(status_replies.iter().map(|s| s.to_string()));
    let server = hostile_server(seqpacket_listener(&name), all);
    for r in attach_replies {
        match Port::open(SharedConfig::new(&name)) {
            Err(Error::ShareRefused { .. }) | Err(Error::InvalidConfig { .. }) => {}
            other => panic!("{r}: {other:?}"),
        }
    }
    for r in status_replies {
        match rtap::share::status(&name) {
            Err(Error::ShareRefused { .. }) => {}
            other => panic!("{r}: {other:?}"),
        }
    }
    server.join().unwrap();
}

/// A peer speaking the protocol by hand: connects to `name`, sends `req`, and
/// returns the connection, the reply's text and the fds it carried.
fn raw_request(name: &str, req: &str) -> (std::os::fd::OwnedFd, String, Vec<std::os::fd::OwnedFd>) {
    use std::os::fd::{AsRawFd, FromRawFd};
    let conn = seqpacket_connect(name);
    // SAFETY: req is live for the call.
    let n = unsafe { libc::send(conn.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    assert_eq!(n, req.len() as isize);
    let mut buf = [0u8; 4096];
    let mut cbuf = [0u64; 64]; // room for 100+ fds, 8-aligned
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is valid.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf.as_mut_ptr().cast();
    mh.msg_controllen = std::mem::size_of_val(&cbuf);
    // SAFETY: mh points at live buffers for the call.
    let n = unsafe { libc::recvmsg(conn.as_raw_fd(), &mut mh, libc::MSG_CMSG_CLOEXEC) };
    assert!(n > 0, "no reply");
    let text = String::from_utf8_lossy(&buf[..n as usize]).into_owned();
    let mut fds = Vec::new();
    // SAFETY: walking the control messages the kernel wrote into cbuf, within
    // msg_controllen; SCM_RIGHTS payloads are arrays of fds now ours.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&mh);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c).cast::<libc::c_int>();
                let k = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                for i in 0..k {
                    fds.push(std::os::fd::OwnedFd::from_raw_fd(
                        data.add(i).read_unaligned(),
                    ));
                }
            }
            c = libc::CMSG_NXTHDR(&mh, c);
        }
    }
    (conn, text, fds)
}

/// A peer that may attach is lent the counter memory of its own queue and no
/// other (one memfd per queue). It cannot resize it (the size is sealed:
/// `ftruncate` fails), so the serving port, which counts into the same memory,
/// never faults on it; garbage it writes there changes only that queue's
/// figures: the serving port's other queue counts exactly, nothing panics,
/// and a well-behaved peer attaches after it. What the peer writes there after
/// giving the queue back reaches no one: the next holder is lent a fresh block.
#[test]
fn lent_memory_is_the_peers_own_and_cannot_be_resized() {
    use std::os::fd::AsRawFd;
    let (port, srv, name) = served("shr7");
    let (conn, reply, fds) = raw_request(&name, "attach queues=1");
    assert!(reply.starts_with("ok "), "{reply}");
    let mut memfds = Vec::new();
    for fd in &fds {
        // SAFETY: stat is plain data for the kernel to fill; fd is open.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) }, 0);
        if st.st_mode & libc::S_IFMT == libc::S_IFREG {
            memfds.push((fd, st.st_size));
        }
    }
    assert_eq!(memfds.len(), 1, "one queue, one block of memory: {reply}");
    let (fd, size) = memfds[0];
    for len in [0, size / 2, size * 4] {
        // SAFETY: ftruncate takes no pointers.
        let r = unsafe { libc::ftruncate(fd.as_raw_fd(), len) };
        let e = std::io::Error::last_os_error().raw_os_error();
        assert_eq!((r, e), (-1, Some(libc::EPERM)), "ftruncate to {len}");
    }
    // Garbage over the whole block (header included).
    scribble(fd, size as usize, 0xff);
    // The serving port counts on: frames on its queue 0, stats read.
    let pool = pool();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    let inj = PacketSocket::injector(port.ifindex());
    let frames: Vec<Vec<u8>> = (0..64u32).map(|i| flow_frame(80, i as u16, i)).collect();
    let mut per = vec![Vec::new()];
    let got = inject_and_receive(&inj, &frames, std::slice::from_mut(&mut rxq), &mut per);
    assert!(got > 0);
    let st = port.stats().unwrap();
    assert_eq!(st.rx_queues[0].packets, got as u64, "queue 0 is exact");
    assert_eq!(
        st.rx_queues[1].packets,
        u64::MAX,
        "queue 1 shows the garbage"
    );
    assert_eq!(st.rx.packets, u64::MAX, "the sum saturates");
    let _ = port.xstats();
    // The peer gives the queue back but keeps its memfd (the kernel cannot
    // take a mapping back).
    let kept = fd.try_clone().unwrap();
    drop((conn, fds));
    wait_holder(&srv, 1, &QueueHolder::Free);
    // The server runs queue 1 again (its counts folded in: counting onto the
    // garbage wraps, no panic), and a well-behaved peer attaches after it.
    drop(port.rx_queue(1, &pool).unwrap());
    let before = port.stats().unwrap().rx_queues[1];
    let b = Port::open(SharedConfig::new(&name).queue_list(&[1])).unwrap();
    assert_eq!(b.queue_count(), 1);
    // The former holder writes over its old block again: a fresh block was
    // lent to the next holder, so neither its figures nor the serving port's
    // move, and later attaches still find a good header.
    scribble(&kept, size as usize, 0x5a);
    assert_eq!(b.stats().unwrap().rx_queues[0], rtap::QueueStats::default());
    assert_eq!(port.stats().unwrap().rx_queues[1], before);
    drop(b);
    wait_holder(&srv, 1, &QueueHolder::Free);
    let b = Port::open(SharedConfig::new(&name).queue_list(&[1])).unwrap();
    assert_eq!(b.stats().unwrap().rx_queues[0], rtap::QueueStats::default());
}

/// Maps `len` bytes of memfd `fd` and fills them with `byte`.
fn scribble(fd: &std::os::fd::OwnedFd, len: usize, byte: u8) {
    use std::os::fd::AsRawFd;
    // SAFETY: a fresh shared mapping of the memfd's whole size, checked,
    // written as bytes only, unmapped below.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        std::ptr::write_bytes(p.cast::<u8>(), byte, len);
        libc::munmap(p, len);
    }
}

/// Receives one message on `fd` within `t`: its text, or `None` on a close.
fn raw_recv(fd: &std::os::fd::OwnedFd, t: Duration) -> Option<String> {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: p is one live pollfd.
    let r = unsafe { libc::poll(&mut p, 1, t.as_millis() as i32) };
    assert_eq!(r, 1, "nothing within {t:?}");
    let mut buf = [0u8; 4096];
    // SAFETY: buf is live and writable.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    (n > 0).then(|| String::from_utf8_lossy(&buf[..n as usize]).into_owned())
}

/// The server is still well: a well-behaved peer attaches, and status answers.
fn still_serving(name: &str, queue: u16) {
    let b = Port::open(SharedConfig::new(name).queue_list(&[queue]))
        .expect("attach after the hostile peer");
    assert_eq!(b.queue_count(), 1);
    assert_eq!(rtap::share::status(name).unwrap().len(), 2);
}

/// A peer that sends requests and never reads the replies fills its socket;
/// the server, which never waits on a peer, closes it (counted) instead of
/// blocking, serves others meanwhile, and stops at once when dropped.
#[test]
fn peer_that_never_reads_is_closed_not_waited_on() {
    use std::os::fd::AsRawFd;
    let (port, srv, name) = served("shr8");
    let conn = seqpacket_connect(&name);
    let req = b"status";
    let mut sent = 0;
    loop {
        // SAFETY: req is live; MSG_NOSIGNAL: a closed connection is EPIPE.
        let n = unsafe {
            libc::send(
                conn.as_raw_fd(),
                req.as_ptr().cast(),
                req.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            break;
        }
        sent += 1;
        assert!(sent < 1_000_000, "the server never closed the connection");
    }
    assert!(srv.stats().dropped >= 1, "{:?}", srv.stats());
    still_serving(&name, 1);
    drop(conn);
    drop(srv);
    drop(port);
}

/// Connections beyond `max_peers` are answered `busy` and closed; those that
/// ask nothing within `request_timeout` are closed; the server keeps serving.
#[test]
fn idle_connections_are_capped_and_time_out() {
    netns();
    let port = started("shr9", rtap::BackendKind::Uring, 2);
    let name = format!("@rtap-test-shr9-{}", std::process::id());
    let cfg = rtap::share::ServeConfig::new(&name)
        .max_peers(8)
        .request_timeout(Duration::from_millis(300));
    let srv = port.serve(cfg).unwrap();
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(seqpacket_connect(&name));
    }
    // The 12 over the cap have their answer waiting.
    let mut busy = 0;
    for c in &idle[8..] {
        let m = raw_recv(c, WAIT).expect("an answer before the close");
        assert!(
            m.contains("full") && m.contains("too many connections"),
            "{m}"
        );
        busy += 1;
    }
    assert_eq!(busy, 12);
    // The first 8 are closed once they have been silent too long.
    for c in &idle[..8] {
        assert_eq!(raw_recv(c, WAIT), None, "closed for silence");
    }
    let st = srv.stats();
    assert_eq!(st.dropped, 20, "{st:?}");
    still_serving(&name, 0);
}

/// Malformed, oversized and repeated requests are answered with an error
/// (counted), never a crash or a hang; the server keeps serving.
#[test]
fn malformed_huge_and_repeated_requests_answered() {
    let (_port, srv, name) = served("sha1");
    for req in [
        "\u{ff}\u{0}garbage".to_string(),
        "attach queues=1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1".to_string(),
        format!("attach queues={}", "9".repeat(5000)),
        "attach queues=-1".to_string(),
        "launch missiles".to_string(),
        "x".repeat(100_000),
    ] {
        let (_c, reply, fds) = raw_request(&name, &req);
        assert!(reply.starts_with("err "), "{req:.40}: {reply}");
        assert!(fds.is_empty());
    }
    // Attach twice on one connection: the second is refused, the first holds.
    let (c, reply, fds) = raw_request(&name, "attach queues=1");
    assert!(reply.starts_with("ok "), "{reply}");
    use std::os::fd::AsRawFd;
    // SAFETY: the request is live; c is open.
    unsafe { libc::send(c.as_raw_fd(), b"attach queues=0".as_ptr().cast(), 15, 0) };
    let again = raw_recv(&c, WAIT).unwrap();
    assert!(again.contains("already holds queues"), "{again}");
    assert!(srv.stats().rejected >= 6, "{:?}", srv.stats());
    drop((c, fds));
    wait_holder(&srv, 1, &QueueHolder::Free);
    still_serving(&name, 1);
}

/// All 128 queues of a tap in one attach: their fds travel in several
/// messages (one holds at most 64).
#[test]
fn attach_all_128_queues() {
    netns();
    let port = started("sha2", rtap::BackendKind::Rw, 128);
    let name = format!("@rtap-test-sha2-{}", std::process::id());
    let srv = port.serve(rtap::share::ServeConfig::new(&name)).unwrap();
    let b = Port::open(SharedConfig::new(&name)).expect("attach 128 queues");
    assert_eq!(b.queue_count(), 128);
    assert!(srv
        .holders()
        .iter()
        .all(|h| matches!(h, QueueHolder::Process { .. })));
    drop(b);
    drop(srv);
}

/// The client checks who serves the socket: a server running as a user it
/// does not expect is refused, saying so.
#[test]
fn server_of_an_unexpected_user_refused() {
    let (_port, _srv, name) = served("sha3");
    let e = Port::open(SharedConfig::new(&name).server_uids(&[4242])).unwrap_err();
    assert!(
        matches!(&e, Error::ShareRefused { why, .. } if why.contains("uid 0") && why.contains("4242")),
        "{e}"
    );
}

/// A peer that dies at any step of an attach (right after connecting, after
/// sending its request, after the reply and before looking at its fds, after
/// taking them) gives back whatever it was granted; the server serves on.
#[test]
fn peer_killed_at_every_step_of_an_attach() {
    use std::os::fd::AsRawFd;
    let (_port, srv, name) = served("sha4");
    // Connects and dies.
    drop(seqpacket_connect(&name));
    // Asks and dies before the reply.
    let c = seqpacket_connect(&name);
    // SAFETY: the request is live; c is open.
    unsafe { libc::send(c.as_raw_fd(), b"attach queues=1".as_ptr().cast(), 15, 0) };
    drop(c);
    let deadline = Instant::now() + WAIT;
    while srv.stats().attached == 0 {
        assert!(Instant::now() < deadline, "the request was not handled");
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_holder(&srv, 1, &QueueHolder::Free);
    // Takes the reply with its fds and dies.
    let (c, reply, fds) = raw_request(&name, "attach queues=1");
    assert!(reply.starts_with("ok "), "{reply}");
    drop(c);
    wait_holder(&srv, 1, &QueueHolder::Free);
    drop(fds);
    // Attaches whole and is dropped.
    let b = Port::open(SharedConfig::new(&name).queue_list(&[1])).unwrap();
    drop(b);
    wait_holder(&srv, 1, &QueueHolder::Free);
    still_serving(&name, 1);
    let st = srv.stats();
    assert!(
        st.released >= 3 && st.dropped == 0 && st.rejected == 0,
        "{st:?}"
    );
}

/// Serves `replies` with fds, one connection each: reads the request, sends
/// the reply and its fds, keeps the connection until the test ends.
fn relaying_server(
    listener: std::os::fd::OwnedFd,
    replies: Vec<(String, Vec<std::os::fd::OwnedFd>)>,
) -> std::thread::JoinHandle<Vec<std::os::fd::OwnedFd>> {
    use std::os::fd::{AsRawFd, FromRawFd};
    std::thread::spawn(move || {
        let mut conns = Vec::new();
        for (reply, fds) in replies {
            // SAFETY: listener is a listening socket; no address is wanted.
            let c = unsafe {
                libc::accept(
                    listener.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
            assert!(c >= 0);
            // SAFETY: c is a fresh fd of ours.
            let c = unsafe { std::os::fd::OwnedFd::from_raw_fd(c) };
            let mut buf = [0u8; 4096];
            // SAFETY: buf is live and writable; c is an open socket.
            unsafe { libc::recv(c.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            let raw: Vec<libc::c_int> = fds.iter().map(|f| f.as_raw_fd()).collect();
            let mut cbuf = [0u64; 64];
            let mut iov = libc::iovec {
                iov_base: reply.as_ptr() as *mut libc::c_void,
                iov_len: reply.len(),
            };
            // SAFETY: msghdr is plain data; all-zero is valid.
            let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
            mh.msg_iov = &mut iov;
            mh.msg_iovlen = 1;
            // SAFETY: the control buffer has room for these fds (at most a few);
            // the cmsg walk stays inside it.
            unsafe {
                let bytes = (raw.len() * 4) as u32;
                mh.msg_control = cbuf.as_mut_ptr().cast();
                mh.msg_controllen = libc::CMSG_SPACE(bytes) as usize;
                let h = libc::CMSG_FIRSTHDR(&mh);
                (*h).cmsg_level = libc::SOL_SOCKET;
                (*h).cmsg_type = libc::SCM_RIGHTS;
                (*h).cmsg_len = libc::CMSG_LEN(bytes) as usize;
                let p = libc::CMSG_DATA(h).cast::<libc::c_int>();
                for (i, f) in raw.iter().enumerate() {
                    p.add(i).write_unaligned(*f);
                }
                assert!(libc::sendmsg(c.as_raw_fd(), &mh, 0) > 0);
            }
            conns.push(c);
        }
        conns
    })
}

/// A server that sends fds other than those its reply names (a pipe where a
/// tap queue goes, another interface's queue, a pipe where the namespace
/// goes) is refused when the queue or the port opens, saying what the fd is
/// not; nothing is adopted.
#[test]
fn fds_that_are_not_what_the_reply_says_refused() {
    use std::os::fd::{AsFd, FromRawFd};
    let (_port, _srv, name) = served("sha5");
    let other = started("sha6", rtap::BackendKind::Uring, 1);
    let (_c, reply, mut fds) = raw_request(&name, "attach queues=1");
    assert!(
        reply.starts_with("ok ") && reply.contains("netns=0"),
        "{reply}"
    );
    assert_eq!(fds.len(), 2, "a tap queue and its counters: {reply}");
    let counters = fds.pop().unwrap();
    let pipe = || {
        let mut p = [0; 2];
        // SAFETY: p has room for the two fds.
        assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
        // SAFETY: fresh fds of ours; the write end is closed at once.
        unsafe {
            libc::close(p[1]);
            std::os::fd::OwnedFd::from_raw_fd(p[0])
        }
    };
    let dup = |f: &std::os::fd::OwnedFd| f.as_fd().try_clone_to_owned().unwrap();
    let other_name = format!("@rtap-test-sha6-{}", std::process::id());
    let other_srv = other
        .serve(rtap::share::ServeConfig::new(&other_name))
        .unwrap();
    let (_c2, r2, mut f2) = raw_request(&other_name, "attach queues=0");
    assert!(r2.starts_with("ok "), "{r2}");
    let other_q = f2.swap_remove(0);
    let with_ns = reply
        .replace("netns=0", "netns=1")
        .replace("fds=2", "fds=3");
    let hostile = format!("@rtap-test-sha5h-{}", std::process::id());
    let server = relaying_server(
        seqpacket_listener(&hostile),
        vec![
            (reply.clone(), vec![pipe(), dup(&counters)]),
            (reply.clone(), vec![other_q, dup(&counters)]),
            (with_ns, vec![dup(&fds[0]), dup(&counters), pipe()]),
        ],
    );
    for want in [
        "not a TAP queue",
        "it is a queue of",
        "not a network namespace",
    ] {
        let e = Port::open(SharedConfig::new(&hostile)).unwrap_err();
        assert!(e.to_string().contains(want), "{want}: {e}");
    }
    drop(server.join().unwrap());
    drop(other_srv);
}

/// The kernel's drop counts of a lent AF_PACKET queue clear when read, and
/// both processes read them: each adds what it read to the queue's shared
/// block, so the serving and the attached port report the same, exact total.
#[test]
fn lent_packet_queue_drops_counted_once_whoever_reads() {
    netns();
    let (p, k) = ("shdp", "shdk");
    ip(&["link", "add", p, "type", "veth", "peer", "name", k]);
    ip(&["link", "set", k, "up"]);
    let cfg = rtap::PacketConfig::new(p).frame_count(64);
    let port = Port::open(cfg).unwrap();
    port.start().unwrap();
    wait_oper_up(k);
    let name = format!("@rtap-test-shdp-{}", std::process::id());
    let srv = port.serve(ServeConfig::new(&name)).unwrap();
    let b = Port::open(SharedConfig::new(&name)).unwrap();
    b.start().unwrap();
    let pool = pool();
    // The attached port holds the queue and reads nothing: the ring fills.
    let _rxq = b.rx_queue(0, &pool).unwrap();
    let inj = PacketSocket::injector(if_index(k).unwrap());
    for i in 0..1000u32 {
        inj.send(&flow_frame(80, 1, i)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    // The attached port reads (and clears) the kernel's count first.
    let seen_b = b.stats().unwrap().imissed;
    assert!(seen_b > 0, "the ring overflowed");
    let seen_a = port.stats().unwrap().imissed;
    assert_eq!(
        seen_a, seen_b,
        "the serving port sees the drops the peer read"
    );
    assert_eq!(b.xstat("rx_q0_ring_drops"), Some(seen_b));
    assert_eq!(port.xstat("rx_q0_ring_drops"), Some(seen_b));
    drop(_rxq);
    drop(b);
    drop(srv);
}

/// A lent AF_PACKET queue's engine counters (its kicks, its tx ring) count
/// where the serving port reads them, while lent and after the queue came
/// back; the holder's own figures start at its attach.
#[test]
fn lent_packet_queue_engine_counts_reach_the_serving_port() {
    netns();
    let (p, k) = ("shkp", "shkk");
    ip(&["link", "add", p, "type", "veth", "peer", "name", k]);
    ip(&["link", "set", k, "up"]);
    let port = Port::open(rtap::PacketConfig::new(p)).unwrap();
    port.start().unwrap();
    wait_oper_up(k);
    let name = format!("@rtap-test-shkp-{}", std::process::id());
    let srv = port.serve(ServeConfig::new(&name)).unwrap();
    let pool = pool();
    let cap = PacketSocket::bind(if_index(k).unwrap());
    let send = |txq: &mut rtap::TxQueue, n: u32| {
        for i in 0..n {
            tx_all(txq, vec![pool.alloc_from(&test_frame(100, i)).unwrap()]);
            assert!(txq.flush(WAIT));
        }
    };
    // The serving process sends 3 first.
    let mut txq = port.tx_queue(0).unwrap();
    send(&mut txq, 3);
    drop(txq);
    let kicks_home = port.xstat("tx_q0_kicks").unwrap();
    assert!(kicks_home >= 3, "{kicks_home}");
    let b = Port::open(SharedConfig::new(&name)).unwrap();
    b.start().unwrap();
    assert_eq!(
        b.xstat("tx_q0_kicks"),
        Some(0),
        "the holder's own, from its attach"
    );
    let mut txq = b.tx_queue(0).unwrap();
    send(&mut txq, 5);
    let kicks_b = b.xstat("tx_q0_kicks").unwrap();
    assert!(kicks_b >= 5, "{kicks_b}");
    assert_eq!(b.stats().unwrap().tx_queues[0].packets, 5);
    // The serving port's figures include the peer's engine counters.
    assert_eq!(port.xstat("tx_q0_kicks"), Some(kicks_home + kicks_b));
    assert_eq!(port.stats().unwrap().tx_queues[0].packets, 8);
    assert_eq!(port.xstat("tx_q0_size_65_127_packets"), Some(8));
    drop(txq);
    drop(b);
    wait_holder(&srv, 0, &QueueHolder::Free);
    // Given back: folded into the port's own, nothing lost or counted twice.
    assert_eq!(port.xstat("tx_q0_kicks"), Some(kicks_home + kicks_b));
    assert_eq!(port.stats().unwrap().tx_queues[0].packets, 8);
    let mut txq = port.tx_queue(0).unwrap();
    send(&mut txq, 1);
    assert_eq!(port.stats().unwrap().tx_queues[0].packets, 9);
    assert_eq!(cap.recv_test_frames(9, WAIT).len(), 9);
    drop(txq);
    drop(srv);
}

/// A server whose backlog is full (it accepts no one) cannot keep a client
/// waiting: the connect gives up with the reason.
#[test]
fn server_that_never_accepts_is_not_waited_for() {
    use std::os::fd::AsRawFd;
    netns();
    let name = format!("@rtap-test-noaccept-{}", std::process::id());
    let (l, a, len) = seqpacket_socket(&name);
    // SAFETY: a is a live sockaddr_un of at least `len` bytes.
    let r = unsafe {
        libc::bind(
            l.as_raw_fd(),
            &a as *const libc::sockaddr_un as *const libc::sockaddr,
            len,
        )
    };
    assert_eq!(r, 0);
    // SAFETY: l is a bound socket. A backlog of 0: one connection fills it.
    assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
    let _first = seqpacket_connect(&name);
    let e = Port::open(SharedConfig::new(&name)).unwrap_err();
    assert!(
        matches!(&e, Error::ShareUnavailable { why, .. } if why.contains("accepted no connection")),
        "{e:?}"
    );
}
