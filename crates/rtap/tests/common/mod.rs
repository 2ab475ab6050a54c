//! Helpers for tests against the real kernel: a private network namespace per
//! test thread, AF_PACKET sockets to inject and capture frames, frame builders.
#![allow(dead_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use rtap::{Packet, RxQueue};

/// EtherType of the frames tests build (IEEE local experimental 1): the kernel
/// never sends it, so its own IPv6 MLD/RS frames are easy to filter out.
pub const TEST_ETHERTYPE: u16 = 0x88b5;

/// Moves the calling thread into a fresh network namespace. Each `#[test]` runs on
/// its own thread, so tests are isolated and leave nothing behind: interfaces die
/// with the namespace when the thread ends.
pub fn netns() {
    // SAFETY: unshare takes no pointers; CLONE_NEWNET only affects this thread.
    let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        r,
        0,
        "unshare(CLONE_NEWNET) failed: {} (tests must run as root)",
        io::Error::last_os_error()
    );
}

/// Runs `ip` with args in the calling thread's namespace (a child process inherits it).
pub fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A frame: broadcast dst, fixed src, TEST_ETHERTYPE, then `seq` (4 bytes) and a
/// deterministic payload up to `len` bytes total.
pub fn test_frame(len: usize, seq: u32) -> Vec<u8> {
    assert!(len >= 18);
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f.extend_from_slice(&TEST_ETHERTYPE.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    while f.len() < len {
        f.push((f.len() as u32 ^ seq) as u8);
    }
    f
}

/// Sequence number of a test frame, or None if it is not one.
pub fn test_seq(f: &[u8]) -> Option<u32> {
    (f.len() >= 18 && f[12..14] == TEST_ETHERTYPE.to_be_bytes())
        .then(|| u32::from_be_bytes([f[14], f[15], f[16], f[17]]))
}

/// An AF_PACKET raw socket bound to one interface.
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
}

impl PacketSocket {
    pub fn bind(ifindex: u32) -> PacketSocket {
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket call; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                proto as i32,
            )
        };
        assert!(fd >= 0, "AF_PACKET socket: {}", io::Error::last_os_error());
        // SAFETY: fd is fresh and ours.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain data.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: sll is a valid sockaddr_ll of the given size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(r, 0, "bind AF_PACKET: {}", io::Error::last_os_error());
        let s = PacketSocket { fd, ifindex };
        s.set_rcvbuf(8 << 20);
        s
    }

    fn set_rcvbuf(&self, bytes: i32) {
        // SAFETY: the option value is a live int.
        unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                &bytes as *const i32 as *const libc::c_void,
                4,
            );
        }
    }

    /// Sends one frame out of the interface (so the tap's reader receives it).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: frame is a live slice.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        assert_eq!(n as usize, frame.len());
        Ok(())
    }

    /// Receives the next frame the kernel got *from* the interface (not our own
    /// outgoing ones) within `timeout`.
    pub fn recv_incoming(&self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 70000];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: pfd is one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as i32) };
            if r <= 0 {
                continue;
            }
            // SAFETY: sockaddr_ll is plain data.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut sl = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: buf and sll are live and sized as passed.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    &mut sll as *mut _ as *mut libc::sockaddr,
                    &mut sl,
                )
            };
            if n < 0 {
                continue;
            }
            if sll.sll_pkttype == libc::PACKET_OUTGOING as u8 {
                continue;
            }
            return Some(buf[..n as usize].to_vec());
        }
    }

    /// Receives incoming test frames until `count` arrived or `timeout` passed.
    pub fn recv_test_frames(&self, count: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_incoming(left) {
                Some(f) if test_seq(&f).is_some() => out.push(f),
                Some(_) => {}
                None => break,
            }
        }
        out
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
}

/// Polls `rxq` until `count` test frames arrived (others are dropped) or `timeout`.
pub fn rx_test_frames(rxq: &mut RxQueue, count: usize, timeout: Duration) -> Vec<Packet> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut burst = Vec::with_capacity(64);
    while got.len() < count && Instant::now() < deadline {
        burst.clear();
        rxq.rx_burst(&mut burst, 64).expect("rx_burst");
        for p in burst.drain(..) {
            if test_seq(p.data()).is_some() {
                got.push(p);
            }
        }
        if burst.capacity() > 0 && got.len() < count {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    got
}

/// Number of open fds of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}
