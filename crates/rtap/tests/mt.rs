//! Queues for multi-thread async runtimes ([`rtap::mt`]): packets received on
//! a queue's driver thread, changed by tasks on tokio's worker and blocking
//! threads, sent from others; on TAP, TUN and AF_PACKET ports; futures that
//! move between threads; cancellation; a pool stopped while its packets live
//! elsewhere; the driver's pool full after every test.
#![cfg(feature = "mt")]

mod common;

use std::collections::HashSet;
use std::future::Future;
use std::net::UdpSocket;
use std::sync::{Arc, Mutex};
use std::task::Context;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use rtap::mt::{MtConfig, MtDrive, MtQueue, MtReport};
use rtap::{BackendKind, Offloads, Packet, PoolConfig, Port, TapConfig};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(3)
        .enable_all()
        .build()
        .unwrap()
}

fn small_pool() -> MtConfig {
    MtConfig::default().pool(PoolConfig::default().count(1024))
}

/// No driver thread: the tasks do the I/O.
fn tasks() -> MtConfig {
    small_pool().drive(MtDrive::Tasks)
}

/// Opens the queue pair inside `rt` (task-driven queues register their fd
/// with its reactor; driver-thread ones do not care).
fn spawn_in(rt: &tokio::runtime::Runtime, port: &Arc<Port>, cfg: MtConfig) -> MtQueue {
    let _in = rt.enter();
    let drive = cfg.drive;
    let q = MtQueue::spawn(port, 0, cfg).unwrap();
    assert_eq!(q.drive(), drive);
    q
}

#[track_caller]
fn assert_full(r: &MtReport) {
    assert_eq!(
        r.pool.available, r.pool.capacity as usize,
        "the driver's pool is full again: {r:?}"
    );
}

/// Threads that touched packets.
type Seen = Arc<Mutex<HashSet<ThreadId>>>;

fn seen(s: &Seen) {
    s.lock().unwrap().insert(std::thread::current().id());
}

/// The pipeline a VPN runs: one task receives, a pool of tasks changes each
/// packet (`change`, on a blocking thread, so the packet surely crosses
/// threads), one task sends. Returns once `n` packets went through.
fn pipeline(
    rt: &tokio::runtime::Runtime,
    q: &MtQueue,
    n: usize,
    change: fn(&mut Packet),
    s: &Seen,
) {
    let (rx, tx) = (q.rx(), q.tx());
    let s = s.clone();
    rt.block_on(async move {
        let (work_tx, mut work_rx) = tokio::sync::mpsc::channel::<Packet>(64);
        let sender = tokio::spawn({
            let s = s.clone();
            async move {
                let mut sink = tx;
                let mut done = 0;
                while let Some(p) = work_rx.recv().await {
                    seen(&s);
                    // Through the Sink (MtTx::send is the plain method).
                    SinkExt::send(&mut sink, p).await.unwrap();
                    done += 1;
                    if done == n {
                        break;
                    }
                }
                SinkExt::flush(&mut sink).await.unwrap();
            }
        });
        let mut stream = rx;
        let mut workers = Vec::new();
        for _ in 0..n {
            let p = stream.next().await.expect("the queue runs").unwrap();
            seen(&s);
            let (w, s) = (work_tx.clone(), s.clone());
            workers.push(tokio::spawn(async move {
                let p = tokio::task::spawn_blocking(move || {
                    let mut p = p;
                    seen(&s);
                    change(&mut p);
                    p
                })
                .await
                .unwrap();
                tokio::task::yield_now().await;
                w.send(p).await.unwrap();
            }));
        }
        for w in workers {
            w.await.unwrap();
        }
        sender.await.unwrap();
    });
    // Flushed: nothing left to send, counted as such on either drive; what
    // came in came in counted bursts.
    let st = q.stats();
    assert_eq!(st.tx_queued, 0, "flushed, yet {st:?}");
    assert!(st.rx_bursts >= 1, "{n} packets came in no burst: {st:?}");
}

fn flip_payload(p: &mut Packet) {
    for b in &mut p.data_mut()[18..] {
        *b ^= 0x5a;
    }
}

fn flipped(f: &[u8]) -> Vec<u8> {
    let mut v = f.to_vec();
    for b in &mut v[18..] {
        *b ^= 0x5a;
    }
    v
}

/// Test frames injected into a port's interface go through the pipeline and
/// come out of it changed, each once; the packets crossed threads and the
/// driver's pool is full after the stop.
fn frames_through_the_pipeline(port: Port, inject: PacketSocket, capture: PacketSocket) {
    frames_through_the_pipeline_with(port, inject, capture, small_pool())
}

fn frames_through_the_pipeline_with(
    port: Port,
    inject: PacketSocket,
    capture: PacketSocket,
    cfg: MtConfig,
) {
    let port = Arc::new(port);
    let rt = runtime();
    let q = spawn_in(&rt, &port, cfg);
    let n = 200;
    let frames: Vec<Vec<u8>> = (0..n as u32)
        .map(|i| test_frame(60 + (i as usize % 900), i))
        .collect();
    let sent = frames.clone();
    let injector = std::thread::spawn(move || {
        for f in &sent {
            inject.send(f).unwrap();
            if f[17] % 16 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    let s: Seen = Default::default();
    pipeline(&rt, &q, n, flip_payload, &s);
    injector.join().unwrap();
    let mut got = capture.recv_ours(n, WAIT);
    got.sort_by_key(|f| test_seq(&flipped(f)));
    let want: Vec<Vec<u8>> = frames.iter().map(|f| flipped(f)).collect();
    assert_eq!(got.len(), n, "every frame came back");
    assert_eq!(got, want);
    assert!(s.lock().unwrap().len() >= 2, "packets crossed threads");
    let st = q.stats();
    assert!(st.rx_bursts >= 1 && st.rx_bursts <= n as u64, "{st:?}");
    drop(rt);
    let r = q.stop();
    assert_full(&r);
    assert_eq!(r.tx_dropped_at_stop, 0);
}

#[test]
fn tap_frames_cross_threads_uring() {
    netns();
    let port = started("mtap0", BackendKind::Uring, 1);
    let (i, c) = (
        PacketSocket::injector(port.ifindex()),
        PacketSocket::bind(port.ifindex()),
    );
    frames_through_the_pipeline(port, i, c);
}

#[test]
fn tap_frames_cross_threads_rw() {
    netns();
    let port = started("mtap1", BackendKind::Rw, 1);
    let (i, c) = (
        PacketSocket::injector(port.ifindex()),
        PacketSocket::bind(port.ifindex()),
    );
    frames_through_the_pipeline(port, i, c);
}

#[test]
fn tap_frames_cross_threads_task_driven() {
    netns();
    let port = started("mtap8", BackendKind::Uring, 1);
    let (i, c) = (
        PacketSocket::injector(port.ifindex()),
        PacketSocket::bind(port.ifindex()),
    );
    frames_through_the_pipeline_with(port, i, c, tasks());
}

/// Task-driven queues on a device whose queues are tied to their thread
/// are refused with the reason; outside a tokio runtime too.
#[test]
fn task_driven_refusals() {
    netns();
    let (p, _k) = veth("mtrf");
    let port = Arc::new(Port::open(rtap::XdpConfig::new(&p)).unwrap());
    port.start().unwrap();
    let rt = runtime();
    let e = {
        let _in = rt.enter();
        MtQueue::spawn(&port, 0, tasks()).unwrap_err()
    };
    assert!(
        matches!(e, rtap::Error::Unsupported { .. }) && e.to_string().contains("MtDrive::Thread"),
        "{e}"
    );
    let tap = Arc::new(started("mtap9", BackendKind::Uring, 1));
    let e = MtQueue::spawn(&tap, 0, tasks()).unwrap_err();
    assert!(matches!(e, rtap::Error::NoAsyncRuntime), "{e}");
    // Neither left the queue claimed.
    let q = spawn_in(&rt, &tap, tasks());
    assert_full(&q.stop());
}

#[test]
fn packet_port_frames_cross_threads() {
    netns();
    let (p, k) = veth("mtpk");
    let port = packet_port(rtap::PacketConfig::new(&p));
    frames_through_the_pipeline(port, PacketSocket::injector(k), PacketSocket::bind(k));
}

/// AF_PACKET queues driven by the tasks: the rx ring read on whichever
/// worker polls, the tx ring kicked with send() (its io_uring kick has one
/// issuer); TPACKET_V2 slots and V3 blocks.
#[test]
fn packet_port_frames_cross_threads_task_driven() {
    packet_pipeline_task_driven("mtpt", |c| c);
}

/// V3, configured with the io_uring kick: the roaming tx queue still sends
/// (it kicks with send() instead).
#[test]
fn packet_port_v3_frames_cross_threads_task_driven() {
    packet_pipeline_task_driven("mtp3", |c| {
        c.kick(rtap::Kick::Uring).tpacket(rtap::Tpacket::V3 {
            block_timeout_ms: 1,
        })
    });
}

fn packet_pipeline_task_driven(name: &str, cfg: fn(rtap::PacketConfig) -> rtap::PacketConfig) {
    netns();
    let (p, k) = veth(name);
    let port = packet_port(cfg(rtap::PacketConfig::new(&p)));
    frames_through_the_pipeline_with(
        port,
        PacketSocket::injector(k),
        PacketSocket::bind(k),
        tasks(),
    );
}

#[test]
fn xdp_port_frames_cross_threads() {
    netns();
    let (p, k) = veth("mtxd");
    let port = Port::open(rtap::XdpConfig::new(&p)).unwrap();
    port.start().unwrap();
    wait_oper_up(&format!("{}k", "mtxd"));
    frames_through_the_pipeline_with(
        port,
        PacketSocket::injector(k),
        PacketSocket::bind(k),
        // The fill ring lends the kernel 2048 buffers of the driver's pool.
        MtConfig::default(),
    );
}

/// A TUN: datagrams the kernel routes into it are turned around (addresses
/// and ports swapped: the checksums stay right) by tasks on other threads
/// and written back; the socket gets each echo.
#[test]
fn tun_datagrams_echoed_across_threads() {
    tun_echo("mtun0", small_pool());
}

#[test]
fn tun_datagrams_echoed_across_threads_task_driven() {
    tun_echo("mtun1", tasks());
}

fn tun_echo(name: &str, cfg: MtConfig) {
    netns();
    let port = Port::open(TapConfig::tun(name).offloads(Offloads::NONE)).unwrap();
    port.start().unwrap();
    ip(&["addr", "add", "10.77.0.1/24", "dev", name]);
    let port = Arc::new(port);
    let rt = runtime();
    let q = spawn_in(&rt, &port, cfg);
    let sock = UdpSocket::bind("10.77.0.1:0").unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let n = 100;
    let s: Seen = Default::default();
    let sender = sock.try_clone().unwrap();
    let t = std::thread::spawn(move || {
        for i in 0..n as u32 {
            sender.send_to(&i.to_be_bytes(), "10.77.0.2:9000").unwrap();
        }
    });
    pipeline(&rt, &q, n, swap_udp, &s);
    t.join().unwrap();
    let mut got = HashSet::new();
    let mut buf = [0u8; 64];
    while got.len() < n {
        let (len, from) = sock.recv_from(&mut buf).expect("an echo");
        assert_eq!(from.to_string(), "10.77.0.2:9000");
        got.insert(u32::from_be_bytes(buf[..len].try_into().unwrap()));
    }
    assert_eq!(got.len(), n);
    drop(rt);
    assert_full(&q.stop());
}

/// Swaps an IPv4/UDP packet's addresses and ports (sums unchanged).
fn swap_udp(p: &mut Packet) {
    let d = p.data_mut();
    assert_eq!(d[9], 17, "UDP");
    for i in 0..4 {
        d.swap(12 + i, 16 + i);
    }
    for i in 0..2 {
        d.swap(20 + i, 22 + i);
    }
}

/// A receive future polled on one thread and finished on another (a task
/// that migrates) gets its packet; the futures are `Send`.
#[test]
fn futures_move_between_threads() {
    futures_move("mtap2", small_pool());
}

#[test]
fn futures_move_between_threads_task_driven() {
    futures_move("mtap10", tasks());
}

fn futures_move(name: &str, cfg: MtConfig) {
    netns();
    let port = Arc::new(started(name, BackendKind::Uring, 1));
    // The runtime whose reactor a task-driven queue uses; the futures run on
    // other threads (with executors of their own).
    let home = runtime();
    let q = spawn_in(&home, &port, cfg);
    let rx = q.rx();
    let fut: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>> =
        Box::pin(async move { rx.recv().await });
    let (fut_tx, fut_rx) = std::sync::mpsc::channel();
    let a = std::thread::spawn(move || {
        let mut fut = fut;
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending(), "nothing yet");
        fut_tx.send(fut).unwrap();
        std::thread::current().id()
    });
    let first = a.join().unwrap();
    let fut = fut_rx.recv().unwrap();
    PacketSocket::injector(port.ifindex())
        .send(&test_frame(80, 7))
        .unwrap();
    let (got, second) = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let p = rt.block_on(fut).unwrap().unwrap();
        (p.to_vec(), std::thread::current().id())
    })
    .join()
    .unwrap();
    assert_ne!(first, second);
    assert_eq!(got, test_frame(80, 7));
    let tx = q.tx();
    let p = rtap::mt::alloc_from(&test_frame(80, 8)).unwrap();
    let send: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>> =
        Box::pin(async move { tx.send(p).await });
    let cap = PacketSocket::bind(port.ifindex());
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(send)
            .unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(cap.recv_ours(1, WAIT), vec![test_frame(80, 8)]);
    let r = q.stop();
    assert_full(&r);
    assert!(
        r.pool.remote_returns >= 1,
        "the packet dropped on another thread came back through the remote stack: {r:?}"
    );
}

/// Cancelled futures lose nothing: a pending receive dropped leaves the
/// next packet to the next receive; a burst send dropped part way leaves
/// what it did not hand over in the caller's vector, and every buffer comes
/// back to its pool.
#[test]
fn cancelled_futures_lose_no_buffer() {
    cancelled("mtap3", small_pool());
}

#[test]
fn cancelled_futures_lose_no_buffer_task_driven() {
    cancelled("mtap11", tasks());
}

fn cancelled(name: &str, cfg: MtConfig) {
    netns();
    let port = Arc::new(started(name, BackendKind::Uring, 1));
    let rt = runtime();
    let q = spawn_in(&rt, &port, cfg.burst(4).depth(8));
    let rx = q.rx();
    rt.block_on(async {
        let r = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await;
        assert!(r.is_err(), "nothing to receive: the wait was cancelled");
    });
    PacketSocket::injector(port.ifindex())
        .send(&test_frame(90, 1))
        .unwrap();
    let p = rt.block_on(rx.recv()).unwrap().unwrap();
    assert_eq!(p.to_vec(), test_frame(90, 1));
    drop(p);
    // A burst far larger than the queue, dropped after its first poll.
    let tx = q.tx();
    let total = 3000;
    let (left, local_full) = std::thread::spawn(move || {
        let mut pkts: Vec<Packet> = (0..total)
            .map(|i| rtap::mt::alloc_from(&test_frame(64, i)).unwrap())
            .collect();
        {
            let mut fut = std::pin::pin!(tx.send_burst(&mut pkts));
            let mut cx = Context::from_waker(std::task::Waker::noop());
            let _ = fut.as_mut().poll(&mut cx);
        }
        let left = pkts.len();
        drop(pkts);
        // Give the driver time to send what it took, then look at this
        // thread's pool: every buffer is back.
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let st = rtap::mt::with_local_pool(PoolConfig::default(), |p| p.stats()).unwrap();
            if st.available == st.capacity as usize || std::time::Instant::now() > deadline {
                return (left, st.available == st.capacity as usize);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    })
    .join()
    .unwrap();
    assert!(left <= total as usize);
    assert!(local_full, "the sending thread's pool is full again");
    drop(rt);
    assert_full(&q.stop());
}

/// The queue stopped while a thread still holds packets it received: the
/// report says they are out; they are used and dropped afterwards (the pool
/// is gone by then) without harm. Handles then fail with the reason.
#[test]
fn stopped_while_packets_live_elsewhere() {
    stopped_with_packets_out("mtap4", small_pool());
}

#[test]
fn stopped_while_packets_live_elsewhere_task_driven() {
    stopped_with_packets_out("mtap12", tasks());
}

fn stopped_with_packets_out(name: &str, cfg: MtConfig) {
    netns();
    let port = Arc::new(started(name, BackendKind::Uring, 1));
    let rt = runtime();
    let q = spawn_in(&rt, &port, cfg);
    let inj = PacketSocket::injector(port.ifindex());
    for i in 0..10 {
        inj.send(&test_frame(100, i)).unwrap();
    }
    let rx = q.rx();
    let held: Vec<Packet> = rt.block_on(async {
        let mut v = Vec::new();
        while v.len() < 10 {
            rx.recv_burst(&mut v, 10).await.unwrap();
        }
        v
    });
    let tx = q.tx();
    let r = q.stop();
    assert_eq!(r.pool.capacity as usize - r.pool.available, 10, "{r:?}");
    let e = rt
        .block_on(tx.send(rtap::mt::alloc_from(&test_frame(60, 0)).unwrap()))
        .unwrap_err();
    assert!(matches!(e, rtap::Error::QueueStopped { .. }), "{e}");
    assert!(rt.block_on(rx.recv()).is_none(), "the stream ended");
    std::thread::spawn(move || {
        let seqs: Vec<u32> = held.iter().map(|p| test_seq(p.data()).unwrap()).collect();
        assert_eq!(seqs.len(), 10);
        drop(held);
    })
    .join()
    .unwrap();
}

/// A queue whose device is deleted fails its handles with the reason.
#[test]
fn a_vanished_device_fails_the_handles() {
    vanished("mtap5", small_pool().spin(0));
}

#[test]
fn a_vanished_device_fails_the_handles_task_driven() {
    vanished("mtap13", tasks());
}

fn vanished(name: &str, cfg: MtConfig) {
    netns();
    let port = Arc::new(started(name, BackendKind::Uring, 1));
    let rt = runtime();
    let q = spawn_in(&rt, &port, cfg);
    let rx = q.rx();
    ip(&["link", "del", name]);
    let r = rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), rx.recv()).await });
    match r {
        Ok(Some(Err(e))) => assert!(e.to_string().contains(name), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_full(&q.stop());
}

#[allow(dead_code)]
fn handles_are_send_sync() {
    fn ok<T: Send + Sync + Clone>() {}
    fn ok_queue<T: Send + Sync>() {}
    ok::<rtap::mt::MtRx>();
    ok::<rtap::mt::MtTx>();
    ok_queue::<MtQueue>();
    ok_queue::<Packet>();
}

/// Runs `f` to completion on the calling thread: parks until woken. No
/// reactor and no runtime: what any executor offers.
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// The handles need no runtime: a bare executor on plain threads (what smol
/// or async-std would do) receives and sends.
#[test]
fn no_runtime_needed() {
    netns();
    let port = Arc::new(started("mtap6", BackendKind::Uring, 1));
    let q = MtQueue::spawn(&port, 0, small_pool()).unwrap();
    let (rx, tx) = (q.rx(), q.tx());
    let inj = PacketSocket::injector(port.ifindex());
    let cap = PacketSocket::bind(port.ifindex());
    let echo = std::thread::spawn(move || {
        for _ in 0..5 {
            let p = block_on(rx.recv()).unwrap().unwrap();
            block_on(tx.send(p)).unwrap();
        }
    });
    std::thread::sleep(Duration::from_millis(50));
    for i in 0..5 {
        inj.send(&test_frame(70, i)).unwrap();
    }
    echo.join().unwrap();
    let mut got = cap.recv_ours(5, WAIT);
    got.sort();
    let mut want: Vec<Vec<u8>> = (0..5).map(|i| test_frame(70, i)).collect();
    want.sort();
    assert_eq!(got, want);
    assert_full(&q.stop());
}

/// Senders racing a stop: every send that said Ok was either sent (the
/// port's tx counters) or counted as dropped at the stop; none vanishes.
#[test]
fn sends_racing_a_stop_are_sent_or_counted() {
    sends_racing_a_stop("mtap7", small_pool());
}

#[test]
fn sends_racing_a_stop_are_sent_or_counted_task_driven() {
    sends_racing_a_stop("mtap14", tasks());
}

fn sends_racing_a_stop(name: &str, cfg: MtConfig) {
    netns();
    let port = Arc::new(started(name, BackendKind::Uring, 1));
    let rt = runtime();
    let q = spawn_in(&rt, &port, cfg.burst(8).depth(64));
    let ok = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let senders: Vec<_> = (0..3)
        .map(|t| {
            let (tx, ok) = (q.tx(), ok.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    let p = rtap::mt::alloc_from(&test_frame(60, t * 1_000_000 + i)).unwrap();
                    match block_on(tx.send(p)) {
                        Ok(()) => ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                        Err(_) => return,
                    };
                }
            })
        })
        .collect();
    // Stop while sends flow: after the first ones went through (a slow
    // machine may take a while to start three threads).
    let deadline = Instant::now() + WAIT;
    while ok.load(std::sync::atomic::Ordering::Relaxed) < 64 {
        assert!(Instant::now() < deadline, "no sends went through");
        std::thread::sleep(Duration::from_millis(1));
    }
    let r = q.stop();
    for s in senders {
        s.join().unwrap();
    }
    let st = port.stats().unwrap();
    let sent = st.tx.packets + st.tx.errors;
    let ok = ok.load(std::sync::atomic::Ordering::Relaxed);
    assert!(ok > 0);
    assert_eq!(sent + r.tx_dropped_at_stop, ok, "{st:?} {r:?}");
    assert_full(&r);
}
