//! A plain `AF_PACKET` raw socket bound to one interface, one frame per
//! `send()`/`recv()`: how rtap's tests inject and capture frames, and the
//! one-syscall-per-frame baseline of its benchmarks. Plus the `poll(2)` helpers
//! the tool and the tests share.
//!
//! Also [`InPlaceRing`]: a bare TPACKET_V2 rx ring read in place, the floor
//! rtap's copying AF_PACKET rx path is measured against.
//!
//! Not part of the rtap library: published apart so that the `rtap` tool (its
//! benchmark contenders) and rtap's tests can share it.

mod ring;
pub use ring::InPlaceRing;

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Bytes of socket buffer the constructors ask for (forced, root only; silently
/// smaller otherwise): room for thousands of small frames.
const BUF_BYTES: libc::c_int = 16 << 20;

/// An `AF_PACKET` `SOCK_RAW` socket bound to one interface.
#[derive(Debug)]
pub struct RawSocket {
    fd: OwnedFd,
    ifindex: u32,
}

/// One frame read by [`RawSocket::recv`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes of the frame (it was cut if larger than the buffer given).
    pub len: usize,
    /// The frame's full length as the kernel had it.
    pub wire_len: usize,
    /// A frame this host sent out of the interface (`PACKET_OUTGOING`), not one it got.
    pub outgoing: bool,
}

impl RawSocket {
    /// A socket that sends and captures every frame of the interface
    /// (`ETH_P_ALL`), including the host's own outgoing ones.
    pub fn bind(ifindex: u32) -> io::Result<RawSocket> {
        Self::open(ifindex, libc::ETH_P_ALL as u16)
    }

    /// A send-only socket: bound with protocol 0 it captures nothing, so sending a
    /// flood does not fill its own receive queue with copies.
    pub fn injector(ifindex: u32) -> io::Result<RawSocket> {
        Self::open(ifindex, 0)
    }

    /// [`bind`](Self::bind) by interface name (in the calling thread's namespace).
    pub fn bind_name(name: &str) -> io::Result<RawSocket> {
        let idx = if_index(name).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("no interface {name:?}"))
        })?;
        Self::bind(idx)
    }

    fn open(ifindex: u32, proto: u16) -> io::Result<RawSocket> {
        let proto = proto.to_be();
        // SAFETY: plain socket call; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(proto),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is fresh and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain data for which all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: sll is a valid sockaddr_ll of the size passed.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        let s = RawSocket { fd, ifindex };
        // Best effort: without CAP_NET_ADMIN the defaults stay.
        let _ = s.set_int(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, BUF_BYTES);
        let _ = s.set_int(libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, BUF_BYTES);
        Ok(s)
    }

    fn set_int(&self, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
        // SAFETY: the option value is a live int of the size given.
        let r = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                opt,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// `PACKET_QDISC_BYPASS`: sent frames go straight to the driver (faster; other
    /// packet sockets no longer see them).
    pub fn set_qdisc_bypass(&self, on: bool) -> io::Result<()> {
        self.set_int(
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            on as libc::c_int,
        )
    }

    /// `SO_RCVBUFFORCE` (root), else `SO_RCVBUF`: the bytes of frames queued
    /// for reading (each frame costs its size plus the kernel's skb overhead).
    pub fn set_rcvbuf(&self, bytes: usize) -> io::Result<()> {
        let v = bytes.min(i32::MAX as usize / 2) as libc::c_int;
        self.set_int(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, v)
            .or_else(|_| self.set_int(libc::SOL_SOCKET, libc::SO_RCVBUF, v))
    }

    /// The interface it is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Sends one frame out of the interface (so a reader of the interface, e.g.
    /// a tap's, receives it). A short send is an error.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: frame is a live slice of frame.len() bytes.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != frame.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sent {n} of {} bytes", frame.len()),
            ));
        }
        Ok(())
    }

    /// Reads one frame into `buf`, waiting up to `timeout` for one; `None` if none
    /// came (or the interface went down meanwhile, which the socket reports once).
    pub fn recv(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<Received>> {
        if !wait_readable(self.fd.as_fd(), timeout)? {
            return Ok(None);
        }
        self.try_recv(buf)
    }

    /// Reads one frame into `buf` if one is queued (one `recvfrom`, no wait).
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        // SAFETY: sockaddr_ll is plain data.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut sl = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: buf and sll are live and sized as passed.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                (&mut sll as *mut libc::sockaddr_ll).cast(),
                &mut sl,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                // ENETDOWN: the interface went down since the last read. The
                // socket reports that once (its pending error) and then goes
                // on reading the frames already queued.
                Some(libc::EAGAIN) | Some(libc::EINTR) | Some(libc::ENETDOWN) => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(Received {
            len: (n as usize).min(buf.len()),
            wire_len: n as usize,
            outgoing: sll.sll_pkttype == libc::PACKET_OUTGOING,
        }))
    }

    /// Incoming frames (not the host's own outgoing ones) that `keep` accepts,
    /// until `max` of them arrived or `timeout` passed. Frames up to 64 KiB.
    pub fn recv_matching(
        &self,
        timeout: Duration,
        max: usize,
        keep: impl Fn(&[u8]) -> bool,
    ) -> io::Result<Vec<Vec<u8>>> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 70_000];
        while out.len() < max {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.recv(&mut buf, left)? {
                Some(r) if !r.outgoing && keep(&buf[..r.len]) => {
                    assert_eq!(r.len, r.wire_len, "captured frame cut short");
                    out.push(buf[..r.len].to_vec());
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

impl AsFd for RawSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Index of the interface called `name` in the calling thread's namespace.
pub fn if_index(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: c is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// Waits up to `timeout` until some of `fds` are readable (or report an error);
/// returns how many, 0 on timeout or EINTR. `revents` is left out: callers
/// simply try every fd.
pub fn wait_any_readable(fds: &[BorrowedFd<'_>], timeout: Duration) -> io::Result<usize> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    poll_fds(&mut pfds, timeout)
}

/// [`wait_any_readable`] for one fd: true if it is readable.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let mut pfd = [libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    Ok(poll_fds(&mut pfd, timeout)? > 0)
}

/// `poll(2)` over prepared pollfds (no allocation: for loops that keep their
/// array); returns the number ready, 0 on timeout or EINTR.
pub fn poll_fds(pfds: &mut [libc::pollfd], timeout: Duration) -> io::Result<usize> {
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: pfds is a live, exclusively borrowed array of pollfds of that length.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::EINTR) {
            Ok(0)
        } else {
            Err(e)
        };
    }
    Ok(n as usize)
}
