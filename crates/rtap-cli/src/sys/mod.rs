//! The tool's only unsafe code: the few libc calls std has no wrapper for
//! (signal handlers, CPU affinity and CPU time, entering a network namespace, a
//! raw ICMP socket, epoll, an interface's tx checksum offload, and the io_uring
//! writer the `tx` benchmark compares rtap with), each behind a safe function. Everything else in the tool
//! is safe code over these and the rtap library.

mod uring_writer;

pub use uring_writer::UringWriter;

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Installs `handler` for `sig`, with `SA_RESTART` (blocking calls elsewhere
/// are not interrupted). The handler must be async-signal-safe.
pub fn on_signal(sig: libc::c_int, handler: extern "C" fn(libc::c_int)) -> io::Result<()> {
    // SAFETY: sigaction is plain data; all-zero is a valid starting value.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = handler as libc::sighandler_t;
    sa.sa_flags = libc::SA_RESTART;
    // SAFETY: sa.sa_mask is a live sigset_t.
    unsafe { libc::sigemptyset(&mut sa.sa_mask) };
    // SAFETY: sa is fully initialised; the old action is not wanted.
    check(unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) })
}

/// The CPUs the calling thread may run on, in increasing order.
pub fn affinity() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: set is a live cpu_set_t of the size passed; pid 0 is this thread.
    check(unsafe { libc::sched_getaffinity(0, size, &mut set) })?;
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: c < CPU_SETSIZE, inside the set.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// Restricts the calling thread to `cpu`.
pub fn pin(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: cpu < CPU_SETSIZE (checked above), inside the set.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: set is a live cpu_set_t of the size passed; pid 0 is this thread.
    check(unsafe { libc::sched_setaffinity(0, size, &set) })
}

/// CPU time (user + system) the calling thread has used, in seconds.
pub fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a live timespec for the kernel to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// CPU time (user + system) of this whole process so far, in seconds.
pub fn process_cpu_s() -> f64 {
    // SAFETY: rusage is plain data for the kernel to fill.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: ru is a live rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Clock ticks per second (`_SC_CLK_TCK`), if the system says.
pub fn clk_tck() -> Option<f64> {
    // SAFETY: sysconf takes no pointers.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (t > 0).then_some(t as f64)
}

/// Moves the calling thread into the network namespace `fd` refers to.
pub fn setns_net(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fd is a live namespace file descriptor; setns only reads it.
    check(unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) })
}

/// Moves the calling thread into a new network namespace of its own.
pub fn unshare_net() -> io::Result<()> {
    // SAFETY: unshare takes no pointers; it moves only this thread.
    check(unsafe { libc::unshare(libc::CLONE_NEWNET) })
}

/// A raw ICMP (IPv4) socket.
pub fn raw_icmp_socket() -> io::Result<OwnedFd> {
    let ty = libc::SOCK_RAW | libc::SOCK_CLOEXEC;
    // SAFETY: plain socket call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, ty, libc::IPPROTO_ICMP) };
    check(fd)?;
    // SAFETY: fd is fresh and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends `msg` to `dst` on an IPv4 datagram or raw socket.
pub fn send_to(fd: BorrowedFd<'_>, msg: &[u8], dst: Ipv4Addr) -> io::Result<()> {
    // SAFETY: sockaddr_in is plain data; all-zero is valid.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_addr.s_addr = u32::from_ne_bytes(dst.octets());
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let addr = &sa as *const libc::sockaddr_in as *const libc::sockaddr;
    // SAFETY: msg and sa are live for the call and sized as passed.
    let n = unsafe { libc::sendto(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0, addr, len) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Receives one datagram into `buf` without blocking; `None` if none waits.
pub fn recv_nowait(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<usize>> {
    let flags = libc::MSG_DONTWAIT;
    // SAFETY: buf is live and writable for its length.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(n as usize))
}

/// An epoll instance (the benchmark's epoll contender).
pub struct Epoll(OwnedFd);

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; the result is checked.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        check(ep)?;
        // SAFETY: ep is a fresh epoll fd nobody else owns.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(ep) }))
    }

    /// Watches `fd` for input.
    pub fn add_readable(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 0,
        };
        let op = libc::EPOLL_CTL_ADD;
        // SAFETY: ev is a live epoll_event; both fds are open.
        check(unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd.as_raw_fd(), &mut ev) })
    }

    /// Waits up to `timeout_ms` for events; how many arrived (0 on timeout).
    pub fn wait(&self, timeout_ms: i32) -> io::Result<usize> {
        let mut out = [libc::epoll_event { events: 0, u64: 0 }; 4];
        let fd = self.0.as_raw_fd();
        // SAFETY: out is a live array of as many events as passed.
        let r = unsafe { libc::epoll_wait(fd, out.as_mut_ptr(), out.len() as i32, timeout_ms) };
        check(r)?;
        Ok(r as usize)
    }
}

/// Turns an interface's tx checksum offload on or off (`SIOCETHTOOL`,
/// `ETHTOOL_STXCSUM`), in the calling thread's namespace.
pub fn set_tx_checksum(iface: &str, on: bool) -> io::Result<()> {
    const ETHTOOL_STXCSUM: u32 = 0x17;
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    let mut v = EthtoolValue {
        cmd: ETHTOOL_STXCSUM,
        data: u32::from(on),
    };
    // SAFETY: ifreq is plain data; all-zero is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    if iface.len() >= ifr.ifr_name.len() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(iface.bytes()) {
        *d = s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = (&mut v as *mut EthtoolValue).cast();
    // SAFETY: plain socket call; the result is checked and owned below.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    check(s)?;
    // SAFETY: s is fresh and owned by nobody else.
    let s = unsafe { OwnedFd::from_raw_fd(s) };
    // SAFETY: ifr names the interface and points at v, both live across the
    // call; the kernel reads v (a set command).
    check(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCETHTOOL, &mut ifr) })
}
