//! Thin, unsafe-owning wrappers over the kernel interfaces rtap uses outside io_uring:
//! tun ioctls, packet sockets and their rings, XDP sockets and the few `bpf(2)`
//! commands an XDP port needs, anonymous and socket memory mappings and plain
//! file-descriptor I/O.
//!
//! Everything here takes and returns safe types; each `unsafe` block states the
//! invariant it relies on.

pub mod bpf;
pub mod ethtool;
pub mod fd;
pub mod mem;
pub mod packet;
#[cfg(feature = "libpcap")]
pub mod pcap;
pub mod shm;
pub mod tun;
pub mod unix;
pub mod xdp;
pub mod zcrx;

/// The running kernel's (major, minor) version, from `uname`; `None` if it
/// cannot be read. For features the kernel offers no probe for.
pub fn kernel_version() -> Option<(u32, u32)> {
    // SAFETY: utsname is plain data for which all-zero bytes are valid.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: u is a live utsname the kernel fills.
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let release: Vec<u8> = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    let s = String::from_utf8_lossy(&release);
    let mut it = s.split(['.', '-']).map(|p| p.parse::<u32>().ok());
    Some((it.next()??, it.next()??))
}
