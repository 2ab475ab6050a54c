//! Two real processes on one tap: `rtap fwd --serve` leaves queues to another
//! `rtap fwd --port shared:...`; a secondary killed mid-traffic; a peer with
//! another uid; the socket file's mode. Root needed (uid switches by setpriv).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn spawn(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rtap")
}

/// `rtap info --port shared:path=NAME --json` until queue `q`'s holder
/// satisfies `ok`; returns the holder.
fn wait_holder(name: &str, q: usize, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new(BIN)
            .args(["info", "--port", &format!("shared:path={name}"), "--json"])
            .output()
            .unwrap();
        if out.status.success() {
            let j = parse_json(String::from_utf8_lossy(&out.stdout).trim());
            let h = j
                .at(&format!("queues.{q}.holder"))
                .as_str()
                .unwrap()
                .to_string();
            if ok(&h) {
                return h;
            }
        }
        assert!(
            Instant::now() < deadline,
            "queue {q} never satisfied the wait"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `rtap fwd` (`extra` arguments added) on a two-queue tap `iface`, serving
/// queue 1 at `name` until stopped ([`stop_output`]), with a JSON report;
/// returns once the tap is up and the process runs queue 0 itself.
fn serve_queue_1(iface: &str, name: &str, extra: &[&str]) -> Child {
    let port = format!("tap:iface={iface},queues=2");
    let mut args = vec!["fwd", "--port", &port];
    args.extend(extra);
    args.extend(["--serve", name, "--serve-queues", "1", "--json"]);
    let mut primary = spawn(&args);
    wait_up(&[iface], &mut primary);
    wait_holder(name, 0, |h| h == "serving");
    primary
}

/// 512 UDP frames of 256 flows into the tap; returns how many came back swapped.
fn bounce(iface: &str) -> usize {
    let s = PacketSocket::bind(iface);
    for i in 0..512u32 {
        s.send(&udp_frame((i % 256) as u16, i));
    }
    let back = s.recv_matching(Duration::from_secs(3), 512, |f| {
        is_udp_7777(f) && f[..6] == [0x02, 0, 0, 0, 0, 0xaa]
    });
    back.len()
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Two processes forward (macswap) on different queues of one tap: every frame
/// comes back, each process did part of the work, and the serving process's
/// port counters include what the other process did.
#[test]
fn two_processes_forward_on_different_queues_of_one_tap() {
    assert_root();
    private_netns();
    let name = format!("@rtapc-csh0-{}", std::process::id());
    let primary = serve_queue_1("csh0", &name, &["--mode", "macswap"]);
    let secondary = spawn(&[
        "fwd",
        "--port",
        &format!("shared:path={name},queues=1"),
        "--mode",
        "macswap",
        "--json",
    ]);
    wait_holder(&name, 1, |h| h.starts_with("pid:"));
    assert_eq!(bounce("csh0"), 512, "every frame comes back");
    let s = expect_json(&stop_output(secondary, Duration::from_secs(20)));
    let p = expect_json(&stop_output(primary, Duration::from_secs(20)));
    let mine = s.num("ports.0.rx_packets");
    assert!(
        mine > 0.0 && mine < 512.0,
        "the attached process took part: {s}"
    );
    assert_eq!(s.at("ports.0.kind"), &json!("shared"));
    assert_eq!(
        p.at("workers.0.queues"),
        &json!([0]),
        "queue 1 was left to the other"
    );
    // (Plus the few frames the kernel sends on a new link: IPv6 is on here.)
    let all = p.num("ports.0.rx_packets");
    assert!(
        (512.0..530.0).contains(&all),
        "the serving port counts both: {p}"
    );
    assert_eq!(p.num("served.0.attached"), 1.0);
    assert_eq!(p.num("served.0.released"), 1.0);
}

/// A secondary killed with SIGKILL mid-traffic: the primary keeps forwarding,
/// its fds do not grow, the queue is free again and can be attached again.
#[test]
fn secondary_killed_mid_traffic() {
    assert_root();
    private_netns();
    let name = format!("@rtapc-csh1-{}", std::process::id());
    let primary = serve_queue_1("csh1", &name, &["--mode", "macswap"]);
    // The server closes the connections of `rtap info` a moment after they
    // end: the baseline is the count once they are gone.
    let fds_before = (0..10)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(50));
            fd_count(primary.id())
        })
        .min()
        .unwrap();
    let mut secondary = spawn(&[
        "fwd",
        "--port",
        &format!("shared:path={name},queues=1"),
        "--mode",
        "macswap",
    ]);
    wait_holder(&name, 1, |h| h.starts_with("pid:"));
    // Frames flow from before the kill until a moment after it (bounded,
    // also if a step below fails): a count of frames would outlast the
    // primary's duration on a slow machine.
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|sc| {
        sc.spawn(|| {
            let s = PacketSocket::bind("csh1");
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 200_000 {
                s.send(&udp_frame((i % 256) as u16, i));
                i += 1;
            }
        });
        std::thread::sleep(Duration::from_millis(200));
        let killed = secondary.kill();
        let _ = secondary.wait();
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        killed.unwrap();
    });
    wait_holder(&name, 1, |h| h == "free");
    // (The last `rtap info` connection may take the server a moment to close.)
    let deadline = Instant::now() + Duration::from_secs(3);
    while fd_count(primary.id()) != fds_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        fd_count(primary.id()),
        fds_before,
        "no fd left in the primary"
    );
    // The primary still forwards on its own queue.
    let back = bounce("csh1");
    assert!(back > 0, "the primary stopped forwarding");
    // And queue 1 can be attached again.
    let again = spawn(&[
        "fwd",
        "--port",
        &format!("shared:path={name},queues=1"),
        "--mode",
        "macswap",
        "--duration",
        "2",
        "--json",
    ]);
    let j = expect_json(&wait_output(again, Duration::from_secs(20)));
    assert_eq!(j.at("ports.0.kind"), &json!("shared"));
    let p = expect_json(&stop_output(primary, Duration::from_secs(30)));
    assert_eq!(p.num("served.0.attached"), 2.0);
    assert_eq!(p.num("served.0.released"), 2.0);
    assert!(p.num("ports.0.rx_packets") >= back as f64);
}

/// A peer with another uid is refused, and says so; the server counts it. A
/// taken or missing queue is a clear error.
#[test]
fn other_uid_and_bad_queues_refused() {
    assert_root();
    private_netns();
    let name = format!("@rtapc-csh2-{}", std::process::id());
    let primary = serve_queue_1("csh2", &name, &[]);
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
            "fwd",
            "--port",
        ])
        .arg(format!("shared:path={name}"))
        .args(["--duration", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refused") && err.contains("uid 65534"),
        "{err}"
    );
    for (queues, want) in [("0", "serving process"), ("5", "does not exist")] {
        let out = Command::new(BIN)
            .args([
                "fwd",
                "--port",
                &format!("shared:path={name},queues={queues}"),
            ])
            .args(["--duration", "1"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "queues={queues}: {err}");
    }
    let p = expect_json(&stop_output(primary, Duration::from_secs(20)));
    assert_eq!(p.num("served.0.refused"), 1.0);
    assert_eq!(p.num("served.0.rejected"), 2.0);
}

/// A path socket is mode 0600 while served, and gone afterwards.
#[test]
fn socket_file_is_0600() {
    use std::os::unix::fs::PermissionsExt;
    assert_root();
    private_netns();
    let path = std::env::temp_dir().join(format!("rtapc-csh3-{}.sock", std::process::id()));
    let p = path.to_str().unwrap();
    let mut primary = spawn(&[
        "fwd",
        "--port",
        "tap:iface=csh3",
        "--serve",
        p,
        "--serve-queues",
        "0",
        "--duration",
        "2",
    ]);
    // With its only queue served, the forwarder has nothing of its own to run.
    let out = primary.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no queue pair"));
    primary = spawn(&[
        "fwd",
        "--port",
        "tap:iface=csh3,queues=2",
        "--serve",
        p,
        "--serve-queues",
        "1",
        "--duration",
        "2",
    ]);
    wait_up(&["csh3"], &mut primary);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !path.exists() {
        assert!(Instant::now() < deadline, "no socket file");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    assert!(stop_output(primary, Duration::from_secs(20))
        .status
        .success());
    assert!(!path.exists(), "socket file removed at exit");
}

/// A plain `SOCK_SEQPACKET` connection to the abstract socket `name`.
fn seqpacket_connect(name: &str) -> std::os::fd::OwnedFd {
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: plain socket call; the result is checked and owned below.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0);
    // SAFETY: fd is fresh and owned by nobody else.
    let conn = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_un is plain data; all-zero is valid.
    let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = name.strip_prefix('@').unwrap().as_bytes();
    for (d, s) in a.sun_path[1..].iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + 1 + bytes.len();
    // SAFETY: a is a live sockaddr_un of at least `len` bytes.
    let r = unsafe {
        libc::connect(
            conn.as_raw_fd(),
            &a as *const libc::sockaddr_un as *const libc::sockaddr,
            len as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "connect {name}");
    conn
}

/// Misbehaving peers against `rtap fwd --serve`: a hundred idle connections
/// (64 are served at once, the rest turned away), one that asks and never
/// reads its replies, garbage requests. The serving process stays up, a
/// well-behaved process attaches and forwards meanwhile, and the server exits
/// 0 with its report counting what it closed.
#[test]
fn serving_process_survives_misbehaving_peers() {
    use std::os::fd::AsRawFd;
    assert_root();
    private_netns();
    let name = format!("@rtapc-csh5-{}", std::process::id());
    let primary = serve_queue_1("csh5", &name, &[]);
    let idle: Vec<_> = (0..100).map(|_| seqpacket_connect(&name)).collect();
    let spam = seqpacket_connect(&name);
    let mut sent = 0u32;
    loop {
        // SAFETY: the request is live; MSG_NOSIGNAL: a closed socket is EPIPE.
        let n = unsafe {
            libc::send(
                spam.as_raw_fd(),
                b"status".as_ptr().cast(),
                6,
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            break;
        }
        sent += 1;
        assert!(sent < 1_000_000, "never closed");
    }
    for req in ["\u{ff}", "attach queues=99", "x"] {
        let c = seqpacket_connect(&name);
        // SAFETY: req is live; c is open.
        unsafe {
            libc::send(
                c.as_raw_fd(),
                req.as_ptr().cast(),
                req.len(),
                libc::MSG_NOSIGNAL,
            )
        };
    }
    drop(idle);
    let out = Command::new(BIN)
        .args([
            "fwd",
            "--port",
            &format!("shared:path={name},queues=1"),
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "a well-behaved peer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = expect_json(&stop_output(primary, Duration::from_secs(30)));
    assert!(p.num("served.0.dropped") >= 37.0, "{p:?}");
    assert!(p.num("served.0.attached") >= 1.0);
}
