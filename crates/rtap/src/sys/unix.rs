//! Unix `SOCK_SEQPACKET` sockets for sharing a port between processes: bind
//! (with the socket file's mode set before it exists), accept, connect, peer
//! credentials, and messages that carry file descriptors (`SCM_RIGHTS`).
//!
//! A name starting with `@` is in the abstract namespace (no file; scoped to
//! the network namespace).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Most fds one message carries.
pub const MAX_FDS: usize = 64;

/// A `sockaddr_un` for `name` and its length.
fn addr(name: &str) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain data for which all-zero bytes are valid.
    let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let (bytes, abstract_) = match name.strip_prefix('@') {
        Some(rest) => (rest.as_bytes(), true),
        None => (name.as_bytes(), false),
    };
    let start = usize::from(abstract_);
    // A path needs its NUL; an abstract name has a leading NUL instead.
    if bytes.is_empty() || start + bytes.len() + usize::from(!abstract_) > a.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket name empty or longer than 107 bytes",
        ));
    }
    if bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket name contains NUL",
        ));
    }
    for (d, s) in a.sun_path[start..].iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let base = std::mem::size_of::<libc::sa_family_t>();
    let len = base + start + bytes.len() + usize::from(!abstract_);
    Ok((a, len as libc::socklen_t))
}

fn socket(flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket takes no pointers; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC | flags,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A listening socket at `name`. A path gets mode `mode` from the start (the
/// socket inode's mode is set before bind creates the file, so there is no
/// moment in which it is more open). Non-blocking: `accept` answers
/// `WouldBlock` when no connection waits.
pub fn listen(name: &str, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let (a, len) = addr(name)?;
    let fd = socket(libc::SOCK_NONBLOCK)?;
    if !name.starts_with('@') {
        // SAFETY: fchmod takes no pointers; fd is open.
        if unsafe { libc::fchmod(fd.as_raw_fd(), mode) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: a is a valid sockaddr_un of length len.
    let r = unsafe { libc::bind(fd.as_raw_fd(), (&a as *const libc::sockaddr_un).cast(), len) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: listen takes no pointers.
    if unsafe { libc::listen(fd.as_raw_fd(), 128) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// A connection to the socket at `name` (blocking).
pub fn connect(name: &str, timeout: std::time::Duration) -> io::Result<OwnedFd> {
    let (a, len) = addr(name)?;
    let fd = socket(0)?;
    // A server whose backlog is full makes connect wait for room: this long at
    // most (then EAGAIN). Sends are bounded the same way after.
    set_timeout(fd.as_fd(), libc::SO_SNDTIMEO, timeout)?;
    // SAFETY: a is a valid sockaddr_un of length len.
    let r = unsafe { libc::connect(fd.as_raw_fd(), (&a as *const libc::sockaddr_un).cast(), len) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Accepts a pending connection, if any; the connection is non-blocking (a
/// server never waits on a peer).
pub fn accept(l: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: null address pointers are allowed; the result is checked.
    let fd = unsafe {
        libc::accept4(
            l.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The peer's (pid, uid, gid), as the kernel recorded them at connect.
pub fn peer_cred(fd: BorrowedFd<'_>) -> io::Result<(i32, u32, u32)> {
    // SAFETY: ucred is plain data for the kernel to fill.
    let mut c: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: c and len are live, correctly sized out-parameters.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut c as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((c.pid, c.uid, c.gid))
}

/// Room for the control message of `MAX_FDS` descriptors, aligned for cmsghdr.
#[repr(C, align(8))]
struct Cmsg([u8; 512]);

/// Sends one message with `fds` attached.
pub fn send(fd: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "too many fds"));
    }
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut cbuf = Cmsg([0; 512]);
    // SAFETY: msghdr is plain data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let bytes = std::mem::size_of_val(fds) as u32;
        // SAFETY: CMSG_SPACE is arithmetic.
        let space = unsafe { libc::CMSG_SPACE(bytes) } as usize;
        msg.msg_control = cbuf.0.as_mut_ptr().cast();
        msg.msg_controllen = space;
        // SAFETY: msg_control points at cbuf, which has room for `space` bytes
        // (MAX_FDS fds need 280); CMSG_FIRSTHDR returns a pointer inside it.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(bytes) as usize;
            let p = libc::CMSG_DATA(c).cast::<RawFd>();
            for (i, f) in fds.iter().enumerate() {
                p.add(i).write_unaligned(f.as_raw_fd());
            }
        }
    }
    loop {
        // SAFETY: msg points at live iov and control buffers for the call.
        let r = unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if r >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Receives one message into `buf`; returns its length (0: the peer closed) and
/// the fds that came with it, owned.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = Cmsg([0; 512]);
    // SAFETY: msghdr is plain data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    msg.msg_controllen = cbuf.0.len();
    // A receive with a timeout (`SO_RCVTIMEO`) is not restarted after a
    // signal: it is, here.
    let n = loop {
        // SAFETY: msg points at live iov and control buffers for the call;
        // MSG_CMSG_CLOEXEC makes every received fd close-on-exec.
        let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: the kernel filled msg_control up to msg_controllen; the CMSG_*
    // walk stays inside it, and every fd in an SCM_RIGHTS message is a new
    // descriptor installed for us, which we take ownership of (so none leaks,
    // even when the message is refused afterwards).
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c).cast::<RawFd>();
                let n = ((*c).cmsg_len - libc::CMSG_LEN(0) as usize) / std::mem::size_of::<RawFd>();
                for i in 0..n {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "too many fds in one message",
        ));
    }
    Ok((n as usize, fds))
}

/// Gives up a blocking receive on `fd` after `t` (`SO_RCVTIMEO`): it then
/// fails with `WouldBlock`.
pub fn set_recv_timeout(fd: BorrowedFd<'_>, t: std::time::Duration) -> io::Result<()> {
    set_timeout(fd, libc::SO_RCVTIMEO, t)
}

/// Sets `SO_RCVTIMEO` or `SO_SNDTIMEO` (the latter also bounds a `connect`
/// waiting for room in the listener's backlog).
fn set_timeout(fd: BorrowedFd<'_>, opt: libc::c_int, t: std::time::Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: t.as_secs() as libc::time_t,
        tv_usec: t.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: tv is a live timeval of the size given.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Unlinks a socket path (not an abstract name); errors are ignored.
pub fn unlink(name: &str) {
    if !name.starts_with('@') {
        let _ = std::fs::remove_file(name);
    }
}
