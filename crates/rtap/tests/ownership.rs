//! A persistent tap handed to an unprivileged user with `owner`: that user
//! attaches and moves traffic; a tap it does not own is refused with a clear error.

mod common;
use common::*;
use rtap::*;
use std::sync::mpsc;
use std::time::Duration;

const NOBODY: u32 = 65534;

/// Drops the calling thread (only) to an unprivileged uid/gid: raw syscalls,
/// which unlike libc's wrappers do not change the other threads.
fn become_nobody() {
    // SAFETY: plain syscalls with integer arguments.
    unsafe {
        assert_eq!(
            libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()),
            0
        );
        assert_eq!(
            libc::syscall(libc::SYS_setresgid, NOBODY, NOBODY, NOBODY),
            0
        );
        assert_eq!(
            libc::syscall(libc::SYS_setresuid, NOBODY, NOBODY, NOBODY),
            0
        );
    }
}

#[test]
fn unprivileged_owner_attaches_and_moves_traffic() {
    netns();
    // Distributions ship /dev/net/tun as 0666 (the kernel checks ownership at
    // TUNSETIFF); some minimal images make it 0600.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions("/dev/net/tun", std::fs::Permissions::from_mode(0o666)).unwrap();

    let mut cfg = TapConfig::new("own0").persist(true);
    cfg.owner = Some(NOBODY);
    let owned = Port::open(cfg).unwrap();
    owned.start().unwrap();
    drop(owned);
    // Owned by another user. (A tap with neither owner nor group set is open to
    // anyone who can open /dev/net/tun: that is the kernel's rule.)
    let mut cfg = TapConfig::new("own1").persist(true);
    cfg.owner = Some(1);
    let other = Port::open(cfg).unwrap();
    other.start().unwrap();
    drop(other);
    // The administrator leaves the handed-over link up (changing link state needs
    // CAP_NET_ADMIN; start() then leaves it as it is).
    ip(&["link", "set", "dev", "own0", "up"]);
    let ifindex = if_index("own0");

    let (to_root, from_user) = mpsc::channel::<&'static str>();
    let (to_user, from_root) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let user = s.spawn(move || {
            become_nobody();
            let e = Port::open(TapConfig::new("own1").attach(true)).expect_err("not ours");
            assert!(matches!(e, Error::PermissionDenied { .. }), "{e:?}");
            assert!(e.to_string().contains("CAP_NET_ADMIN"), "{e}");

            let port = Port::open(TapConfig::new("own0").attach(true)).unwrap();
            port.start().unwrap();
            let pool = pool();
            let mut rxq = port.rx_queue(0, &pool).unwrap();
            let mut txq = port.tx_queue(0).unwrap();
            to_root.send("ready").unwrap();
            from_root.recv().unwrap();
            let got = rx_test_frames(&mut rxq, 10, Duration::from_secs(2));
            assert_eq!(got.len(), 10, "the owner receives");
            let mut out: Vec<Packet> = (0..5)
                .map(|i| pool.alloc_from(&test_frame(150, 500 + i)).unwrap())
                .collect();
            while !out.is_empty() {
                txq.tx_burst(&mut out).unwrap();
            }
            assert!(txq.flush(Duration::from_secs(2)));
            assert_eq!(txq.stats().packets, 5, "and sends");
            to_root.send("sent").unwrap();
            drop((got, rxq, txq));
            port.stop().unwrap();
        });
        assert_eq!(from_user.recv().unwrap(), "ready");
        let ps = PacketSocket::bind(ifindex);
        for i in 0..10 {
            ps.send(&test_frame(120, i)).unwrap();
        }
        to_user.send(()).unwrap();
        assert_eq!(from_user.recv().unwrap(), "sent");
        let cap = ps.recv_test_frames(5, Duration::from_secs(2));
        assert_eq!(cap.len(), 5, "the kernel saw the owner's frames");
        user.join().unwrap();
    });
    ip(&["link", "del", "dev", "own0"]);
    ip(&["link", "del", "dev", "own1"]);
}

fn if_index(name: &str) -> u32 {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: c is NUL-terminated.
    unsafe { libc::if_nametoindex(c.as_ptr()) }
}
