//! The AF_XDP socket ABI (`include/uapi/linux/if_xdp.h`), which neither libc
//! nor any crate rtap uses defines: the option numbers, the structures (each
//! size checked at compile time against the kernel's), and the calls that set
//! a socket up: register the UMEM, size its rings, read where they are, map
//! them, bind, read the statistics and options.
//!
//! Setup order (the kernel's): socket, UMEM registration, fill and completion
//! ring sizes, rx and/or tx ring sizes, `XDP_MMAP_OFFSETS`, mmap of each ring,
//! bind. A socket that shares another's UMEM skips the registration.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `AF_XDP`.
pub const AF_XDP: libc::c_int = 44;
/// `SOL_XDP`.
pub const SOL_XDP: libc::c_int = 283;

/// Socket options.
pub const XDP_MMAP_OFFSETS: libc::c_int = 1;
pub const XDP_RX_RING: libc::c_int = 2;
pub const XDP_TX_RING: libc::c_int = 3;
pub const XDP_UMEM_REG: libc::c_int = 4;
pub const XDP_UMEM_FILL_RING: libc::c_int = 5;
pub const XDP_UMEM_COMPLETION_RING: libc::c_int = 6;
pub const XDP_STATISTICS: libc::c_int = 7;
pub const XDP_OPTIONS: libc::c_int = 8;
/// Linux 6.17: how many tx descriptors one copy-mode send may move (32 by
/// default, at most the tx ring's size).
pub const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;
/// The copy-mode send budget of a kernel without `XDP_MAX_TX_SKB_BUDGET`
/// (`TX_BATCH_SIZE`): a send moves at most this many frames, then answers
/// `EAGAIN` if more wait.
pub const TX_BATCH_SIZE: u32 = 32;

/// Bind flags (`sxdp_flags`).
pub const XDP_SHARED_UMEM: u16 = 1 << 0;
pub const XDP_COPY: u16 = 1 << 1;
pub const XDP_ZEROCOPY: u16 = 1 << 2;
pub const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;
/// Multi-buffer frames: a frame may span several chunks, each descriptor but
/// the last with [`XDP_PKT_CONTD`] (Linux 6.6; refused, `EINVAL`, before).
pub const XDP_USE_SG: u16 = 1 << 4;

/// UMEM registration flags.
pub const XDP_UMEM_UNALIGNED_CHUNK_FLAG: u32 = 1 << 0;
/// The kernel honours `tx_metadata_len` only with this flag (Linux 6.11, and
/// 6.10.3); a kernel without it refuses the flag (`EINVAL`). Kernels before
/// 6.8 ignore `tx_metadata_len` (it was padding), so the flag is the probe.
pub const XDP_UMEM_TX_METADATA_LEN: u32 = 1 << 2;

/// Descriptor option: a [`TxMetadata`] sits right before the frame (tx, first
/// fragment only). Before Linux 6.8 the kernel takes the descriptor as invalid.
pub const XDP_TX_METADATA: u32 = 1 << 1;
/// [`TxMetadata::flags`]: the kernel finishes the checksum from `csum_start`
/// (a partial checksum, the pseudo-header sum in the field), as a device with
/// checksum offload would, or in software when the device has none.
pub const XDP_TXMD_FLAGS_CHECKSUM: u64 = 1 << 1;

/// A ring's `flags` word: the kernel wants a syscall to make progress.
pub const XDP_RING_NEED_WAKEUP: u32 = 1 << 0;

/// `XDP_OPTIONS` result: the socket is bound in zero-copy mode.
pub const XDP_OPTIONS_ZEROCOPY: u32 = 1 << 0;

/// Descriptor option: more fragments of this frame follow (multi-buffer).
pub const XDP_PKT_CONTD: u32 = 1 << 0;

/// The kernel puts received data this far past a fill address (plus the UMEM
/// headroom): `XDP_PACKET_HEADROOM`.
pub const XDP_PACKET_HEADROOM: u32 = 256;

/// In unaligned mode, the offset of a descriptor address sits above this bit.
pub const XSK_UNALIGNED_BUF_OFFSET_SHIFT: u32 = 48;

/// mmap offsets of the four rings.
pub const XDP_PGOFF_RX_RING: i64 = 0;
pub const XDP_PGOFF_TX_RING: i64 = 0x8000_0000;
pub const XDP_UMEM_PGOFF_FILL_RING: i64 = 0x1_0000_0000;
pub const XDP_UMEM_PGOFF_COMPLETION_RING: i64 = 0x1_8000_0000;

/// `struct xdp_umem_reg`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct UmemReg {
    pub addr: u64,
    pub len: u64,
    pub chunk_size: u32,
    pub headroom: u32,
    pub flags: u32,
    pub tx_metadata_len: u32,
}

/// `struct xdp_ring_offset`: byte offsets in a ring's mapping.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingOffset {
    pub producer: u64,
    pub consumer: u64,
    pub desc: u64,
    pub flags: u64,
}

/// `struct xdp_mmap_offsets`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmapOffsets {
    pub rx: RingOffset,
    pub tx: RingOffset,
    pub fr: RingOffset,
    pub cr: RingOffset,
}

/// `struct sockaddr_xdp`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SockaddrXdp {
    pub family: u16,
    pub flags: u16,
    pub ifindex: u32,
    pub queue_id: u32,
    pub shared_umem_fd: u32,
}

/// `struct xdp_desc`: an rx or tx ring entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    pub addr: u64,
    pub len: u32,
    pub options: u32,
}

/// `struct xsk_tx_metadata` (24 bytes since Linux 6.15's launch time, 16
/// before; the UMEM reserves 24 in front of every tx frame, a multiple of 8
/// as the kernel requires).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxMetadata {
    pub flags: u64,
    /// Where the checksummed area starts, from the frame's first byte.
    pub csum_start: u16,
    /// Where the checksum goes, from `csum_start`.
    pub csum_offset: u16,
    pub _pad: u32,
    pub launch_time: u64,
}

impl TxMetadata {
    /// Its bytes as the kernel reads them (native endian).
    pub fn to_bytes(self) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[..8].copy_from_slice(&self.flags.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[10..12].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b[16..].copy_from_slice(&self.launch_time.to_ne_bytes());
        b
    }
}

/// `struct xdp_statistics`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Statistics {
    /// Frames dropped: no fill buffer, or too large for a chunk.
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty_descs: u64,
    pub tx_ring_empty_descs: u64,
}

const _: () = assert!(std::mem::size_of::<UmemReg>() == 32);
const _: () = assert!(std::mem::size_of::<RingOffset>() == 32);
const _: () = assert!(std::mem::size_of::<MmapOffsets>() == 128);
const _: () = assert!(std::mem::size_of::<SockaddrXdp>() == 16);
const _: () = assert!(std::mem::size_of::<Desc>() == 16);
const _: () = assert!(std::mem::size_of::<Statistics>() == 48);
const _: () = assert!(std::mem::size_of::<TxMetadata>() == 24);

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A new XDP socket.
pub fn socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket call; the result is checked.
    let fd = unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    check(fd)?;
    // SAFETY: fd is fresh and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(SOL_XDP, opt, v)` for a plain-data `v`.
fn set<T: Copy>(fd: BorrowedFd<'_>, opt: libc::c_int, v: &T) -> io::Result<()> {
    let len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: v is a live, initialised value of `len` bytes the kernel only reads.
    check(unsafe { libc::setsockopt(fd.as_raw_fd(), SOL_XDP, opt, (v as *const T).cast(), len) })
}

/// `getsockopt(SOL_XDP, opt)` into a plain-data `T` (all-zero is valid for
/// each type used); also returns the length the kernel wrote.
fn get<T: Copy + Default>(fd: BorrowedFd<'_>, opt: libc::c_int) -> io::Result<(T, usize)> {
    let mut v = T::default();
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: v is a live `T` of `len` bytes the kernel writes at most `len` of.
    check(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            opt,
            (&mut v as *mut T).cast(),
            &mut len,
        )
    })?;
    Ok((v, len as usize))
}

/// Registers the UMEM `reg` describes. The memory must stay mapped for as long
/// as the socket (or any socket sharing it) lives: the kernel pins its pages.
pub fn umem_reg(fd: BorrowedFd<'_>, reg: &UmemReg) -> io::Result<()> {
    set(fd, XDP_UMEM_REG, reg)
}

/// Sets the size of ring `opt` (`XDP_RX_RING`, ...): a power of two, once.
pub fn set_ring_size(fd: BorrowedFd<'_>, opt: libc::c_int, entries: u32) -> io::Result<()> {
    set(fd, opt, &entries)
}

/// Where the producer, consumer, flags and entries of each ring are. An old
/// kernel that answers without the `flags` offsets is refused (`EINVAL`).
pub fn mmap_offsets(fd: BorrowedFd<'_>) -> io::Result<MmapOffsets> {
    let (off, len) = get::<MmapOffsets>(fd, XDP_MMAP_OFFSETS)?;
    if len != std::mem::size_of::<MmapOffsets>() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok(off)
}

/// Binds to `ifindex` queue `queue` with `flags`; `shared` is the socket whose
/// UMEM this one shares (with `XDP_SHARED_UMEM`).
pub fn bind(
    fd: BorrowedFd<'_>,
    ifindex: u32,
    queue: u32,
    flags: u16,
    shared: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let sa = SockaddrXdp {
        family: AF_XDP as u16,
        flags,
        ifindex,
        queue_id: queue,
        shared_umem_fd: shared.map_or(0, |s| s.as_raw_fd() as u32),
    };
    let len = std::mem::size_of::<SockaddrXdp>() as libc::socklen_t;
    // SAFETY: sa is a live sockaddr_xdp of `len` bytes the kernel only reads.
    check(unsafe { libc::bind(fd.as_raw_fd(), (&sa as *const SockaddrXdp).cast(), len) })
}

/// The socket's counters (`XDP_STATISTICS`); fields an old kernel does not
/// have read as zero.
pub fn statistics(fd: BorrowedFd<'_>) -> io::Result<Statistics> {
    get::<Statistics>(fd, XDP_STATISTICS).map(|(s, _)| s)
}

/// Lets one copy-mode send move up to `descs` tx descriptors
/// (`XDP_MAX_TX_SKB_BUDGET`, after the tx ring exists): `ENOPROTOOPT` before
/// Linux 6.17, `EACCES` outside 32..=tx ring size.
pub fn set_tx_budget(fd: BorrowedFd<'_>, descs: u32) -> io::Result<()> {
    set(fd, XDP_MAX_TX_SKB_BUDGET, &descs)
}

/// The socket's option flags (`XDP_OPTIONS`: zero-copy or not).
pub fn options(fd: BorrowedFd<'_>) -> io::Result<u32> {
    get::<u32>(fd, XDP_OPTIONS).map(|(o, _)| o)
}

/// `recvfrom(fd, NULL, 0, MSG_DONTWAIT)`: wakes a zero-copy driver to fill
/// the rx ring when the fill ring says it needs a wakeup.
pub fn wake_rx(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: a zero-length receive with a null buffer and no address: the
    // kernel writes no user memory.
    let r = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            std::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
