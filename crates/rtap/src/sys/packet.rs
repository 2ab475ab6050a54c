//! `AF_PACKET` sockets: creating and binding one, the socket options rtap uses,
//! ring setup (`PACKET_RX_RING`/`PACKET_TX_RING`) and the shared mapping of the
//! rings, statistics, and the `send()` that makes the kernel walk the tx ring.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A `SOCK_RAW` packet socket for `proto` (host order; 0 receives nothing),
/// non-blocking and close-on-exec, not bound yet.
pub fn socket(proto: u16) -> io::Result<OwnedFd> {
    // SAFETY: plain socket call; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            i32::from(proto.to_be()),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is fresh and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds the socket to interface `ifindex` for `proto` (host order).
pub fn bind(fd: BorrowedFd<'_>, ifindex: u32, proto: u16) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data for which all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto.to_be();
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
    Ok(())
}

/// `setsockopt` with a plain value of type `T`.
fn set<T>(fd: BorrowedFd<'_>, level: libc::c_int, opt: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: v is a live value of size_of::<T>() bytes; the kernel only reads it.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `getsockopt` into a plain value of type `T` (all-zero is a valid `T`).
fn get<T: Copy>(fd: BorrowedFd<'_>, level: libc::c_int, opt: libc::c_int) -> io::Result<T> {
    // SAFETY: every T used here (integers, tpacket_stats*) is plain data for
    // which all-zero bytes are a valid value.
    let mut v: T = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: v and len are live and sized as passed; the kernel writes at most len bytes.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&mut v as *mut T).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(v)
}

/// A `SOL_PACKET` option with an int value.
pub fn set_packet_int(fd: BorrowedFd<'_>, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
    set(fd, libc::SOL_PACKET, opt, &v)
}

/// `SO_ATTACH_FILTER`: the socket receives only what classic BPF program
/// `prog` keeps (the kernel checks it: `EINVAL` if it refuses).
pub fn attach_filter(fd: BorrowedFd<'_>, prog: &[libc::sock_filter]) -> io::Result<()> {
    let len = u16::try_from(prog.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fprog = libc::sock_fprog {
        len,
        // The kernel copies the program during the call and never writes it.
        filter: prog.as_ptr().cast_mut(),
    };
    set(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
}

/// `SO_DETACH_FILTER`: every frame again (`ENOENT` if none was attached).
pub fn detach_filter(fd: BorrowedFd<'_>) -> io::Result<()> {
    set(
        fd,
        libc::SOL_SOCKET,
        libc::SO_DETACH_FILTER,
        &0 as &libc::c_int,
    )
}

/// Reads a `SOL_PACKET` option with an int value.
pub fn get_packet_int(fd: BorrowedFd<'_>, opt: libc::c_int) -> io::Result<libc::c_int> {
    get(fd, libc::SOL_PACKET, opt)
}

/// `SO_SNDBUFFORCE` (root), else `SO_SNDBUF`: the bytes of frames in flight.
pub fn set_sndbuf(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    let v = bytes.min(i32::MAX as usize / 2) as libc::c_int;
    set(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &v)
        .or_else(|_| set(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, &v))
}

/// The geometry of one ring, as `PACKET_RX_RING`/`PACKET_TX_RING` take it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingReq {
    pub block_size: u32,
    pub block_nr: u32,
    pub frame_size: u32,
    pub frame_nr: u32,
    /// TPACKET_V3 rx only: block retire timeout in ms (0: the kernel's).
    pub v3_retire_ms: Option<u32>,
}

/// Sets up the rx (`tx == false`) or tx ring.
pub fn set_ring(fd: BorrowedFd<'_>, tx: bool, r: &RingReq) -> io::Result<()> {
    let opt = if tx {
        libc::PACKET_TX_RING
    } else {
        libc::PACKET_RX_RING
    };
    match r.v3_retire_ms {
        None => set(
            fd,
            libc::SOL_PACKET,
            opt,
            &libc::tpacket_req {
                tp_block_size: r.block_size,
                tp_block_nr: r.block_nr,
                tp_frame_size: r.frame_size,
                tp_frame_nr: r.frame_nr,
            },
        ),
        Some(tov) => set(
            fd,
            libc::SOL_PACKET,
            opt,
            &libc::tpacket_req3 {
                tp_block_size: r.block_size,
                tp_block_nr: r.block_nr,
                tp_frame_size: r.frame_size,
                tp_frame_nr: r.frame_nr,
                tp_retire_blk_tov: tov,
                tp_sizeof_priv: 0,
                tp_feature_req_word: 0,
            },
        ),
    }
}

/// `PACKET_STATISTICS` of a TPACKET_V3 socket: (frames seen, drops, queue
/// freezes); a V1/V2 socket reports 0 freezes. The kernel clears them on read.
pub fn statistics(fd: BorrowedFd<'_>, v3: bool) -> io::Result<(u32, u32, u32)> {
    if v3 {
        let s: libc::tpacket_stats_v3 = get(fd, libc::SOL_PACKET, libc::PACKET_STATISTICS)?;
        Ok((s.tp_packets, s.tp_drops, s.tp_freeze_q_cnt))
    } else {
        let s: libc::tpacket_stats = get(fd, libc::SOL_PACKET, libc::PACKET_STATISTICS)?;
        Ok((s.tp_packets, s.tp_drops, 0))
    }
}

/// The ifindex the socket is bound to: -1 once its interface was unregistered
/// (deleted, or moved to another namespace), which no link-down does.
pub fn bound_ifindex(fd: BorrowedFd<'_>) -> io::Result<i32> {
    // SAFETY: sockaddr_ll is plain data for which all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: sll and len are live and sized as passed.
    let r = unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut sll as *mut libc::sockaddr_ll).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sll.sll_ifindex)
}

pub use super::fd::take_error;

/// A packet socket's rings mapped into this process, rx ring first.
pub use super::mem::SocketMap as Mapping;
