//! Zero-copy receive (zcrx) against the real kernel: device-less `RECV_ZC` where the
//! kernel has it (Linux 7.1+: the 7.2 guest of `scripts/vm-test`), the copy
//! fallback everywhere, over loopback and over veth pairs between namespaces.
//! The kernel version is the oracle: on kernels without a feature, the tests
//! assert the fallback and its reason.

mod common;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use rtap::zcrx::{Event, Mode, Queue, QueueConfig, Receiver};

/// Device-less zcrx exists (Linux 7.1).
fn has_nodev() -> bool {
    kernel_at_least(7, 1)
}

/// Rings can share an interface queue (Linux 6.19).
fn has_import() -> bool {
    kernel_at_least(6, 19)
}

/// Period of the test stream: a prime, so a misplaced piece shows.
const PERIOD: usize = 1_048_573;

/// The deterministic stream every sender writes: byte `i` is `table[i % PERIOD]`.
struct Stream {
    table: Vec<u8>,
}

impl Stream {
    fn new(seed: u64) -> Stream {
        let mut s = seed;
        let mut table = Vec::with_capacity(2 * PERIOD);
        while table.len() < PERIOD {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            table.extend_from_slice(&(s >> 24).to_le_bytes()[..4]);
        }
        table.truncate(PERIOD);
        table.extend_from_within(..PERIOD);
        Stream { table }
    }

    /// Up to `max` bytes of the stream from `at`, contiguous.
    fn window(&self, at: u64, max: usize) -> &[u8] {
        let i = (at % PERIOD as u64) as usize;
        &self.table[i..i + max.min(PERIOD)]
    }

    fn send(&self, mut c: TcpStream, total: u64) {
        let mut at = 0u64;
        while at < total {
            let n = (total - at).min(256 << 10) as usize;
            let w = self.window(at, n);
            let k = c.write(w).expect("send");
            at += k as u64;
        }
        c.shutdown(std::net::Shutdown::Write).unwrap();
    }
}

/// What one connection delivered.
#[derive(Debug, Default)]
struct Got {
    bytes: u64,
    ok: bool,
    closed: bool,
}

/// Polls until every connection in `conns` closed; checks each byte against
/// its stream. `hold` buffers are kept (not dropped) until the end.
fn drain(
    rx: &mut Receiver,
    conns: &[(rtap::zcrx::ConnId, &Stream)],
    hold: usize,
    limit: Duration,
) -> Vec<Got> {
    let mut got: Vec<Got> = conns
        .iter()
        .map(|_| Got {
            ok: true,
            ..Default::default()
        })
        .collect();
    let mut held = Vec::new();
    let mut events = Vec::new();
    let deadline = Instant::now() + limit;
    while got.iter().any(|g| !g.closed) {
        assert!(
            Instant::now() < deadline,
            "stalled: {got:?} {:?}",
            rx.stats()
        );
        rx.poll(&mut events, Some(Duration::from_millis(100)))
            .expect("poll");
        for ev in events.drain(..) {
            match ev {
                Event::Data { conn, buf } => {
                    let k = conns.iter().position(|c| c.0 == conn).expect("known conn");
                    let g = &mut got[k];
                    let mut at = 0;
                    while at < buf.len() {
                        let w = conns[k].1.window(g.bytes + at as u64, buf.len() - at);
                        g.ok &= &buf[at..at + w.len()] == w;
                        at += w.len();
                    }
                    g.bytes += buf.len() as u64;
                    if held.len() < hold {
                        held.push(buf);
                    }
                }
                Event::Closed { conn, error } => {
                    assert!(error.is_none(), "{error:?}");
                    let k = conns.iter().position(|c| c.0 == conn).expect("known conn");
                    got[k].closed = true;
                }
                _ => {}
            }
        }
    }
    drop(held);
    got
}

/// A listener on `addr`, and a connection to it from `sender` (a closure that
/// connects and writes): returns the accepted socket.
fn accept_one(l: &TcpListener) -> TcpStream {
    let (c, _) = l.accept().expect("accept");
    c
}

/// Opens `cfg`, asserting the mode the kernel should give and, when it copies,
/// that the reason is recorded.
fn open_nodev_or_copy(cfg: QueueConfig) -> Queue {
    let q = Queue::open(&cfg).expect("open queue");
    if has_nodev() {
        assert_eq!(q.mode(), &Mode::NoDev, "{:?}", q.fallback_reason());
        assert!(q.fallback_reason().is_none());
    } else {
        assert_eq!(q.mode(), &Mode::Copy);
        let why = q.fallback_reason().expect("a reason for copying");
        assert!(why.contains("7.1"), "{why}");
    }
    q
}

/// A queue whose area holds 16 buffers (8 of 4 KiB where it copies): easy
/// to run out of.
fn tiny_area() -> QueueConfig {
    QueueConfig::nodev()
        .area_size(64 << 10)
        .copy_bufs(8)
        .copy_buf_size(4096)
}

/// After every buffer is dropped, one more poll gives them all back.
fn assert_all_back(rx: &mut Receiver) {
    let mut events = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        rx.poll(&mut events, Some(Duration::from_millis(10)))
            .unwrap();
        assert!(events.is_empty(), "{events:?}");
        let s = rx.stats();
        if s.buffers_out == 0 && rx.queue().refill_pending() == 0 {
            assert_eq!(s.refills, s.buffers, "{s:?}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "buffers not back: {s:?} pending {}",
            rx.queue().refill_pending()
        );
    }
}

#[test]
fn probe_matches_the_kernel() {
    let p = rtap::zcrx::probe();
    assert!(p.uring);
    assert_eq!(p.nodev, has_nodev(), "{p:?}");
    assert_eq!(p.recv_zc, kernel_at_least(6, 15), "{p:?}");
    if has_nodev() {
        assert!(
            p.import && p.zcrx_query && p.nodev_unavailable.is_none(),
            "{p:?}"
        );
        assert!(p.rq_hdr_size > 0 && p.ctrl_ops >= 2, "{p:?}");
    } else {
        let why = p.nodev_unavailable.as_deref().expect("reason");
        assert!(why.contains("7.1"), "{why}");
    }
}

#[test]
fn nodev_over_loopback() {
    netns();
    ip(&["link", "set", "lo", "up"]);
    let q = open_nodev_or_copy(QueueConfig::nodev());
    let mut rx = q.receiver().unwrap();
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = l.local_addr().unwrap();
    let total = scaled(64 << 20, 4 << 20);
    let st = Stream::new(1);
    std::thread::scope(|s| {
        s.spawn(|| st.send(TcpStream::connect(addr).unwrap(), total));
        let c = rx.add(accept_one(&l)).unwrap();
        let got = drain(&mut rx, &[(c, &st)], 0, Duration::from_secs(120));
        assert_eq!(got[0].bytes, total);
        assert!(got[0].ok, "payload differs");
    });
    assert_all_back(&mut rx);
    let s = rx.stats();
    assert_eq!(s.bytes, total);
    assert_eq!(
        s.copied_bytes, total,
        "device-less and copy modes copy every byte"
    );
    assert_eq!((s.conns_added, s.conns_closed), (1, 1));
    if has_nodev() {
        assert!(s.flushes > 0, "device-less refills need FLUSH_RQ: {s:?}");
        // The kernel keeps copy statistics from 7.2 on (ZCRX_FEATURE_EVENT).
        match q.kernel_stats() {
            Some(k) => assert!(k.copy_bytes > 0 && k.copy_bytes <= total, "{k:?}"),
            None => assert!(!kernel_at_least(7, 2), "no kernel stats on 7.2+"),
        }
    }
}

/// A veth pair between this test's namespace and a second one; returns the
/// second namespace and this side's address (10.77.0.1; the peer is .2).
fn veth_pair(tag: &str) -> NamedNetns {
    let ns = NamedNetns::create(tag);
    let (a, b) = (format!("{tag}a"), format!("{tag}b"));
    ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
    ip(&["link", "set", &b, "netns", ns.name()]);
    ip(&["addr", "add", "10.77.0.1/24", "dev", &a]);
    ip(&["link", "set", &a, "up"]);
    ns.ip(&["addr", "add", "10.77.0.2/24", "dev", &b]);
    ns.ip(&["link", "set", &b, "up"]);
    ns.ip(&["link", "set", "lo", "up"]);
    ip(&["link", "set", "lo", "up"]);
    wait_oper_up(&a);
    ns
}

/// Streams `total` bytes from the namespace `ns` to a listener here and
/// receives them on a receiver of `q`.
fn receive_over_veth(q: &Queue, ns: &NamedNetns, total: u64) -> rtap::zcrx::ReceiverStats {
    let mut rx = q.receiver().unwrap();
    let l = TcpListener::bind((Ipv4Addr::new(10, 77, 0, 1), 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    let st = Stream::new(7);
    std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter();
            let c = TcpStream::connect(SocketAddr::from(([10, 77, 0, 1], port))).unwrap();
            st.send(c, total)
        });
        let c = rx.add(accept_one(&l)).unwrap();
        let got = drain(&mut rx, &[(c, &st)], 0, Duration::from_secs(300));
        assert_eq!(got[0].bytes, total);
        assert!(got[0].ok, "payload differs");
    });
    assert_all_back(&mut rx);
    rx.stats()
}

/// The copy fallback (what the host kernel gets): 256 MiB over a veth pair
/// between namespaces, every byte checked, every buffer back.
#[test]
fn copy_mode_over_veth() {
    netns();
    let ns = veth_pair("zcp");
    let q = Queue::open(&QueueConfig::copy()).unwrap();
    assert_eq!(q.mode(), &Mode::Copy);
    assert!(q.fallback_reason().is_none(), "asked for, not a fallback");
    let total = scaled(256 << 20, 8 << 20);
    let s = receive_over_veth(&q, &ns, total);
    assert_eq!(s.bytes, total);
    assert!(s.buffers >= total / (64 << 10), "{s:?}");
}

/// Device-less zcrx (or, before 7.1, its fallback) over veth.
#[test]
fn nodev_over_veth() {
    netns();
    let ns = veth_pair("znv");
    let q = open_nodev_or_copy(QueueConfig::nodev());
    let total = scaled(128 << 20, 8 << 20);
    let s = receive_over_veth(&q, &ns, total);
    assert_eq!(s.bytes, total);
}

/// Two threads, each with a receiver of one shared queue and a connection of its
/// own: both streams arrive intact; the queue's buffers all come back.
#[test]
fn two_threads_share_one_queue() {
    netns();
    ip(&["link", "set", "lo", "up"]);
    let q = open_nodev_or_copy(QueueConfig::nodev().area_size(4 << 20));
    assert_eq!(q.shareable(), !has_nodev() || has_import());
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = l.local_addr().unwrap();
    let total = scaled(32 << 20, 2 << 20);
    let streams = [Stream::new(11), Stream::new(12)];
    std::thread::scope(|s| {
        for (i, st) in streams.iter().enumerate() {
            s.spawn(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                // A byte naming the stream, then the stream.
                c.write_all(&[i as u8]).unwrap();
                st.send(c, total);
            });
        }
        let mut workers = Vec::new();
        for _ in 0..2 {
            let (mut sock, _) = l.accept().unwrap();
            let mut tag = [0u8; 1];
            std::io::Read::read_exact(&mut sock, &mut tag).unwrap();
            let q = q.clone();
            let st = &streams[tag[0] as usize];
            workers.push(s.spawn(move || {
                let mut rx = q.receiver().expect("a receiver on another thread");
                let c = rx.add(sock).unwrap();
                let got = drain(&mut rx, &[(c, st)], 0, Duration::from_secs(120));
                assert_eq!(got[0].bytes, total);
                assert!(got[0].ok, "payload differs");
                assert_all_back(&mut rx);
                rx.stats()
            }));
        }
        for w in workers {
            let s = w.join().unwrap();
            assert_eq!(s.bytes, total);
        }
    });
    assert_eq!(q.refill_pending(), 0);
}

/// An area of 16 buffers: the kernel runs out, ends the receive, and rtap arms it
/// again once buffers come back; nothing is lost.
#[test]
fn tiny_area_rearms_without_loss() {
    netns();
    ip(&["link", "set", "lo", "up"]);
    let q = open_nodev_or_copy(tiny_area());
    let mut rx = q.receiver().unwrap();
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = l.local_addr().unwrap();
    let total = scaled(16 << 20, 2 << 20);
    let st = Stream::new(3);
    std::thread::scope(|s| {
        s.spawn(|| st.send(TcpStream::connect(addr).unwrap(), total));
        let c = rx.add(accept_one(&l)).unwrap();
        // Hold 8 buffers (half the area) until the end, to press harder.
        let got = drain(&mut rx, &[(c, &st)], 4, Duration::from_secs(120));
        assert_eq!(got[0].bytes, total);
        assert!(got[0].ok, "payload differs");
    });
    assert_all_back(&mut rx);
    let s = rx.stats();
    assert!(s.rearms > 0, "the kernel never ran out: {s:?}");
}

/// Many short connections one after another, on one receiver.
#[test]
fn many_short_connections() {
    netns();
    ip(&["link", "set", "lo", "up"]);
    let q = open_nodev_or_copy(QueueConfig::nodev().area_size(1 << 20));
    let mut rx = q.receiver().unwrap();
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = l.local_addr().unwrap();
    let st = Stream::new(5);
    let n = scaled(200, 20);
    for i in 0..n {
        let len = 1 + (i * 7919) % 40_000;
        std::thread::scope(|s| {
            s.spawn(|| st.send(TcpStream::connect(addr).unwrap(), len));
            let c = rx.add(accept_one(&l)).unwrap();
            let got = drain(&mut rx, &[(c, &st)], 0, Duration::from_secs(30));
            assert_eq!(got[0].bytes, len, "connection {i}");
            assert!(got[0].ok, "connection {i}: payload differs");
        });
    }
    assert_all_back(&mut rx);
    let s = rx.stats();
    assert_eq!((s.conns_added, s.conns_closed), (n, n));
    assert_eq!(rx.conns(), 0);
}

/// A receiver dropped while the application holds buffers and a connection is
/// still open: the buffers stay readable, go back when dropped, and the queue
/// keeps working for the next receiver (its small area would run dry otherwise).
#[test]
fn receiver_dropped_with_buffers_outstanding() {
    netns();
    ip(&["link", "set", "lo", "up"]);
    let q = open_nodev_or_copy(QueueConfig::nodev().area_size(64 << 10));
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = l.local_addr().unwrap();
    let st = Stream::new(9);
    let mut held = Vec::new();
    {
        let mut rx = q.receiver().unwrap();
        let mut peer = TcpStream::connect(addr).unwrap();
        let _c = rx.add(accept_one(&l)).unwrap();
        peer.write_all(st.window(0, 48 << 10)).unwrap();
        let mut events = Vec::new();
        let mut bytes = 0;
        let deadline = Instant::now() + WAIT;
        while bytes < 48 << 10 && Instant::now() < deadline {
            rx.poll(&mut events, Some(Duration::from_millis(50)))
                .unwrap();
            for ev in events.drain(..) {
                if let Event::Data { buf, .. } = ev {
                    bytes += buf.len();
                    held.push(buf);
                }
            }
        }
        assert_eq!(bytes, 48 << 10);
        // rx dropped here with the connection open and every buffer held.
    }
    let mut at = 0u64;
    for b in &held {
        assert_eq!(&b[..], st.window(at, b.len()), "held buffer still readable");
        at += b.len() as u64;
    }
    drop(held);
    if q.shareable() {
        let total = scaled(8 << 20, 1 << 20);
        let mut rx = q.receiver().unwrap();
        let st2 = Stream::new(10);
        std::thread::scope(|s| {
            s.spawn(|| st2.send(TcpStream::connect(addr).unwrap(), total));
            let c = rx.add(accept_one(&l)).unwrap();
            let got = drain(&mut rx, &[(c, &st2)], 0, Duration::from_secs(60));
            assert_eq!(got[0].bytes, total);
            assert!(got[0].ok);
        });
        assert_all_back(&mut rx);
    }
}

/// Device mode on interfaces that cannot do it: the typed error naming what is
/// missing, or with fallback on, copy mode with that reason.
#[test]
fn device_mode_on_virtual_devices_is_refused() {
    netns();
    ip(&["link", "set", "lo", "up"]);
    ip(&[
        "link", "add", "zdva", "type", "veth", "peer", "name", "zdvb",
    ]);
    ip(&["link", "set", "zdva", "up"]);
    for iface in ["lo", "zdva"] {
        let e = Queue::open(&QueueConfig::device(iface, 0).fallback(false)).unwrap_err();
        if kernel_at_least(6, 15) {
            match &e {
                rtap::Error::ZcrxDevice {
                    iface: i,
                    queue: 0,
                    why,
                } => {
                    assert_eq!(i, iface);
                    assert!(why.contains("does not support zcrx"), "{why}");
                    assert!(why.contains("virtual device"), "{why}");
                }
                other => panic!("{iface}: {other:?}"),
            }
        } else {
            assert!(matches!(e, rtap::Error::ZcrxUnavailable { .. }), "{e:?}");
        }
        let q = Queue::open(&QueueConfig::device(iface, 0)).unwrap();
        assert_eq!(q.mode(), &Mode::Copy);
        assert!(q.fallback_reason().is_some());
    }
    // The caller's mistakes are errors whatever the kernel, fallback or not.
    for fallback in [false, true] {
        let e = Queue::open(&QueueConfig::device("zdva", 7).fallback(fallback)).unwrap_err();
        match e {
            rtap::Error::InvalidConfig {
                field: "queue",
                why,
            } => {
                assert!(why.contains("no rx queue 7"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        let e = Queue::open(&QueueConfig::device("nosuch0", 0).fallback(fallback)).unwrap_err();
        assert!(e.to_string().contains("no such interface"), "{e}");
    }
}

/// Only TCP sockets are taken.
#[test]
fn udp_socket_refused() {
    let q = Queue::open(&QueueConfig::copy()).unwrap();
    let mut rx = q.receiver().unwrap();
    let u = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    match rx.add(u) {
        Err(rtap::Error::InvalidConfig {
            field: "socket", ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

/// Closing a connection with its receive armed: a Closed event, the socket
/// gone, the slot reused.
#[test]
fn close_cancels_the_receive() {
    netns();
    ip(&["link", "set", "lo", "up"]);
    let q = open_nodev_or_copy(QueueConfig::nodev());
    let mut rx = q.receiver().unwrap();
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = l.local_addr().unwrap();
    let _peer = TcpStream::connect(addr).unwrap();
    let c = rx.add(accept_one(&l)).unwrap();
    let mut events = Vec::new();
    rx.poll(&mut events, Some(Duration::from_millis(20)))
        .unwrap();
    assert!(events.is_empty());
    rx.close(c);
    let deadline = Instant::now() + WAIT;
    while events.is_empty() && Instant::now() < deadline {
        rx.poll(&mut events, Some(Duration::from_millis(50)))
            .unwrap();
    }
    match events.pop() {
        Some(Event::Closed { conn, error: None }) => assert_eq!(conn, c),
        other => panic!("{other:?}"),
    }
    assert_eq!(rx.conns(), 0);
}

/// A receiver waiting without a timeout (`poll(None)`) whose receive ran out
/// of buffers wakes when another thread sharing the area gives buffers back:
/// thread A holds every buffer of a 16-buffer area, thread B's stream then
/// starves, A drops its buffers, and B's stream completes. (Where the queue
/// copies, each receiver has buffers of its own and B never starves.)
#[test]
fn starved_receiver_without_timeout_wakes_on_returns_from_another_thread() {
    netns();
    ip(&["link", "set", "lo", "up"]);
    let q = open_nodev_or_copy(tiny_area());
    if has_nodev() && !has_import() {
        // Linux 7.1: a device-less area cannot be shared between receivers.
        assert!(!q.shareable());
        return;
    }
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = l.local_addr().unwrap();
    let (sa, sb) = (Stream::new(21), Stream::new(22));
    let total = scaled(4 << 20, 1 << 20);
    std::thread::scope(|s| {
        s.spawn(|| sa.send(TcpStream::connect(addr).unwrap(), 256 << 10));
        let ca = accept_one(&l);
        let mut ra = q.receiver().unwrap();
        let conn_a = ra.add(ca).unwrap();
        // A takes and holds buffers until the kernel has no more to give
        // (its receive ended for lack of them) or its stream is all in.
        let mut held = Vec::new();
        let mut events = Vec::new();
        let deadline = Instant::now() + WAIT;
        let mut got = 0u64;
        while ra.stats().rearms == 0 && got < 256 << 10 {
            assert!(Instant::now() < deadline, "{:?}", ra.stats());
            ra.poll(&mut events, Some(Duration::from_millis(10)))
                .unwrap();
            for ev in events.drain(..) {
                if let Event::Data { conn, buf } = ev {
                    assert_eq!(conn, conn_a);
                    got += buf.len() as u64;
                    held.push(buf);
                }
            }
        }
        let (tx, rx_done) = std::sync::mpsc::channel();
        let qb = q.clone();
        let sb = &sb;
        let l = &l;
        s.spawn(move || sb.send(TcpStream::connect(addr).unwrap(), total));
        s.spawn(move || {
            let mut rb = qb.receiver().unwrap();
            let cb = rb.add(accept_one(l)).unwrap();
            let mut events = Vec::new();
            let mut got = 0u64;
            let mut closed = false;
            while !closed {
                rb.poll(&mut events, None).unwrap();
                for ev in events.drain(..) {
                    match ev {
                        Event::Data { conn, buf } => {
                            assert_eq!(conn, cb);
                            let w = sb.window(got, buf.len());
                            assert_eq!(&buf[..w.len()], w);
                            got += buf.len() as u64;
                        }
                        Event::Closed { error, .. } => {
                            assert!(error.is_none(), "{error:?}");
                            closed = true;
                        }
                        _ => {}
                    }
                }
            }
            tx.send(got).unwrap();
        });
        // B runs into the empty area; then A gives everything back and goes
        // on as a receiver does (polling, dropping what it gets), which
        // returns buffers to the area without B's ring hearing of it.
        std::thread::sleep(Duration::from_millis(200));
        drop(held);
        let deadline = Instant::now() + Duration::from_secs(120);
        let got_b = loop {
            ra.poll(&mut events, Some(Duration::from_millis(5)))
                .unwrap();
            events.clear();
            if let Ok(n) = rx_done.try_recv() {
                break n;
            }
            assert!(
                Instant::now() < deadline,
                "B never woke after A gave its buffers back"
            );
        };
        assert_eq!(got_b, total);
        drop(ra);
    });
}
