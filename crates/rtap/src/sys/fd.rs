//! Plain syscalls on owned file descriptors (the read/write backend and helpers).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `readv(2)` into the given buffers. Returns bytes read.
pub fn readv(fd: BorrowedFd<'_>, iov: &mut [libc::iovec]) -> io::Result<usize> {
    // SAFETY: every iovec was built by the caller from a live, exclusively owned buffer
    // of at least iov_len bytes; the kernel writes only within them.
    let n = unsafe { libc::readv(fd.as_raw_fd(), iov.as_ptr(), iov.len() as libc::c_int) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// `writev(2)` from the given buffers. Returns bytes written.
pub fn writev(fd: BorrowedFd<'_>, iov: &[libc::iovec]) -> io::Result<usize> {
    // SAFETY: every iovec points into live memory of at least iov_len bytes; the
    // kernel only reads from it.
    let n = unsafe { libc::writev(fd.as_raw_fd(), iov.as_ptr(), iov.len() as libc::c_int) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// `write(2)` of one contiguous buffer.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is a live slice of buf.len() bytes.
    let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// `read(2)` into one contiguous buffer.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is a live, exclusively borrowed slice of buf.len() bytes.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Index of an interface by name in the calling thread's network namespace.
pub fn if_nametoindex(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: c is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// True if `poll(2)` reports an error condition on the fd right now (a tap queue
/// whose interface was deleted reports `POLLERR`).
pub fn poll_error(fd: BorrowedFd<'_>) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: 0,
        revents: 0,
    };
    // SAFETY: pfd is one valid pollfd; a zero timeout never blocks.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0 && pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0
}

/// A non-blocking, close-on-exec eventfd.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes no pointers; a non-negative result is a fresh fd we own.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is fresh and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Clears an eventfd's counter (non-blocking; nothing to clear is fine).
pub fn eventfd_clear(fd: BorrowedFd<'_>) {
    let mut v = [0u8; 8];
    let _ = read(fd, &mut v);
}

/// Waits up to `timeout` for `events` on `fd`; true if they are there.
pub fn poll_in(fd: BorrowedFd<'_>, timeout: std::time::Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: pfd is one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::EINTR) {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(n > 0)
}

/// Moves the calling thread into the network namespace `fd` refers to.
pub fn setns_net(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: setns takes an fd and a flag; CLONE_NEWNET moves only this thread.
    if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An `int` socket option of level `SOL_SOCKET`.
/// `NS_GET_NSTYPE` (`_IO(0xb7, 0x3)`): the kind of namespace an nsfs fd is.
const NS_GET_NSTYPE: libc::Ioctl = 0xb703;

/// True if `fd` is a network namespace (an nsfs fd whose type is
/// `CLONE_NEWNET`); false for anything else.
pub fn is_net_namespace(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: NS_GET_NSTYPE takes no argument; on any other fd it fails.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE) };
    r == libc::CLONE_NEWNET
}

/// A socket's domain and type (`SO_DOMAIN`, `SO_TYPE`).
pub fn socket_kind(fd: BorrowedFd<'_>) -> io::Result<(i32, i32)> {
    Ok((
        sol_socket_int(fd, libc::SO_DOMAIN)?,
        sol_socket_int(fd, libc::SO_TYPE)?,
    ))
}

fn sol_socket_int(fd: BorrowedFd<'_>, opt: libc::c_int) -> io::Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and len are live, correctly sized out-parameters for an int option.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(v)
}

/// The protocol of socket `fd` (`SO_PROTOCOL`: `IPPROTO_TCP`, ...).
pub fn socket_protocol(fd: BorrowedFd<'_>) -> io::Result<i32> {
    sol_socket_int(fd, libc::SO_PROTOCOL)
}

/// `poll(2)` on several fds; returns how many have events (0 on timeout).
pub fn poll_many(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: fds is a live, correctly sized array of pollfd for the call.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r as usize)
}

/// The calling thread's CPU time (user + system).
#[cfg(feature = "mt")]
pub fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a live timespec for the kernel to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The effective uid of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// `send(fd, NULL, 0, MSG_DONTWAIT)`: the tx kick of a socket whose frames wait
/// in a ring shared with the kernel (an AF_PACKET tx ring: every frame marked
/// `TP_STATUS_SEND_REQUEST` at its head goes). Returns the bytes sent.
pub fn send_kick(fd: BorrowedFd<'_>) -> io::Result<usize> {
    // SAFETY: a zero-length send with a null buffer: the kernel reads no user
    // memory (the ring walk reads the shared mapping).
    let n = unsafe { libc::send(fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Takes the socket's pending error (`SO_ERROR`, which clears it), if any.
pub fn take_error(fd: BorrowedFd<'_>) -> Option<i32> {
    sol_socket_int(fd, libc::SO_ERROR).ok().filter(|&v| v != 0)
}

/// A new fd (close-on-exec) for the open file that fd number `raw` of this
/// process refers to, or `EBADF` if no fd has that number. The caller owns
/// the copy; `raw` stays whoever's it was.
pub fn dup_raw(raw: std::os::fd::RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl takes any integer; the kernel checks that it is an open fd
    // of this process, and F_DUPFD_CLOEXEC touches no memory.
    let r = unsafe { libc::fcntl(raw, libc::F_DUPFD_CLOEXEC, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: r is a new fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// Sets `O_NONBLOCK` on the open file `fd` refers to (shared by its copies).
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_GETFL / F_SETFL on a valid fd; no memory passed.
    let fl = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if fl < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
