//! `/dev/net/tun` and its ioctls.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};

/// Flags rtap always asks for.
pub const TAP_FLAGS: libc::c_int =
    libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE | libc::IFF_VNET_HDR;
/// Flags of a TUN interface as rtap opens it: layer 3 (IP packets, no
/// Ethernet header), no packet-info prefix, multi-queue, virtio-net headers.
pub const TUN_FLAGS: libc::c_int =
    libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE | libc::IFF_VNET_HDR;

/// Opens `/dev/net/tun` (close-on-exec).
pub fn open_tun(nonblocking: bool) -> Result<OwnedFd> {
    let mut flags = libc::O_RDWR | libc::O_CLOEXEC;
    if nonblocking {
        flags |= libc::O_NONBLOCK;
    }
    // SAFETY: the path is a valid NUL-terminated C string literal.
    let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), flags) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => Error::NoTunDevice,
            // The file's mode, which no capability lifts.
            Some(libc::EACCES) => Error::PermissionDenied {
                op: "open /dev/net/tun",
                hint: "the device file's permissions refuse this user: make it readable and writable for them (it is 0666 on most systems)",
            },
            _ => Error::sys("open /dev/net/tun", e),
        });
    }
    // SAFETY: fd is a freshly opened descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifreq_with_name(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data for which all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    ifr
}

fn ifreq_name(ifr: &libc::ifreq) -> String {
    let bytes: Vec<u8> = ifr
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `TUNSETIFF`: creates the interface or attaches this fd as a new queue of it.
/// Returns the name the kernel assigned (templates like `rtap%d` are resolved).
pub fn set_iff(fd: BorrowedFd<'_>, name: &str, flags: libc::c_int) -> io::Result<String> {
    let mut ifr = ifreq_with_name(name);
    ifr.ifr_ifru.ifru_flags = flags as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one struct ifreq, which ifr is.
    let r = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TUNSETIFF,
            &mut ifr as *mut libc::ifreq,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ifreq_name(&ifr))
}

/// `TUNGETIFF`: the interface a tun/tap fd is a queue of, and its flags
/// (fails on any other fd, and on a queue detached from its interface).
pub fn get_iff(fd: BorrowedFd<'_>) -> io::Result<(String, libc::c_int)> {
    // SAFETY: ifreq is plain old data for which all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    // SAFETY: TUNGETIFF writes one struct ifreq, which ifr is.
    let r = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TUNGETIFF,
            &mut ifr as *mut libc::ifreq,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: TUNGETIFF filled the flags member of the union.
    let flags = unsafe { ifr.ifr_ifru.ifru_flags };
    Ok((ifreq_name(&ifr), libc::c_int::from(flags as u16)))
}

/// `TUNGETFEATURES`: the IFF_* flags this kernel's tun driver understands.
pub fn features(fd: BorrowedFd<'_>) -> io::Result<libc::c_uint> {
    let mut v: libc::c_uint = 0;
    // SAFETY: TUNGETFEATURES writes one unsigned int.
    let r = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TUNGETFEATURES,
            &mut v as *mut libc::c_uint,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(v)
}

fn ioctl_int(fd: BorrowedFd<'_>, req: libc::Ioctl, v: libc::c_int) -> io::Result<()> {
    // SAFETY: these requests read one int through the pointer, which is live.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req, &v as *const libc::c_int) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn ioctl_val(fd: BorrowedFd<'_>, req: libc::Ioctl, v: libc::c_ulong) -> io::Result<()> {
    // SAFETY: these requests take their argument by value, not through a pointer.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req, v) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `TUNSETVNETHDRSZ`.
pub fn set_vnet_hdr_size(fd: BorrowedFd<'_>, size: usize) -> io::Result<()> {
    ioctl_int(fd, libc::TUNSETVNETHDRSZ, size as libc::c_int)
}

/// `TUNSETOFFLOAD` with a `TUN_F_*` mask.
pub fn set_offload(fd: BorrowedFd<'_>, flags: libc::c_uint) -> io::Result<()> {
    ioctl_val(fd, libc::TUNSETOFFLOAD, flags as libc::c_ulong)
}

/// `TUNSETOWNER`: the user allowed to attach without CAP_NET_ADMIN.
pub fn set_owner(fd: BorrowedFd<'_>, uid: u32) -> io::Result<()> {
    ioctl_val(fd, libc::TUNSETOWNER, uid as libc::c_ulong)
}

/// `TUNSETGROUP`: the group allowed to attach without CAP_NET_ADMIN.
pub fn set_group(fd: BorrowedFd<'_>, gid: u32) -> io::Result<()> {
    ioctl_val(fd, libc::TUNSETGROUP, gid as libc::c_ulong)
}

/// `TUNSETPERSIST`.
pub fn set_persist(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    ioctl_val(fd, libc::TUNSETPERSIST, on as libc::c_ulong)
}

/// `TUNSETQUEUE` with `IFF_ATTACH_QUEUE` or `IFF_DETACH_QUEUE`.
pub fn set_queue_attached(fd: BorrowedFd<'_>, attached: bool) -> io::Result<()> {
    let mut ifr = ifreq_with_name("");
    ifr.ifr_ifru.ifru_flags = (if attached {
        libc::IFF_ATTACH_QUEUE
    } else {
        libc::IFF_DETACH_QUEUE
    }) as libc::c_short;
    // SAFETY: TUNSETQUEUE reads one struct ifreq.
    let r = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TUNSETQUEUE,
            &mut ifr as *mut libc::ifreq,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
