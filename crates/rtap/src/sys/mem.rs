//! Page-aligned anonymous memory for buffer pools and kernel-shared rings.

use std::io;
use std::ptr::NonNull;

/// An anonymous, private, read-write mapping that is unmapped on drop.
///
/// The region is zero-filled by the kernel. It is handed out only as a raw base
/// pointer: callers (the buffer pool) are responsible for never creating two
/// overlapping `&mut` slices into it.
#[derive(Debug)]
pub struct Region {
    base: NonNull<u8>,
    len: usize,
}

impl Region {
    /// Maps `len` bytes (rounded up to the page size), pre-faulted with `MAP_POPULATE`.
    pub fn new(len: usize) -> io::Result<Region> {
        let page = page_size();
        let len = len.max(1).div_ceil(page) * page;
        // SAFETY: a fresh anonymous private mapping with no address hint cannot alias
        // any existing Rust object; the result is checked for MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Region { base, len })
    }

    /// Base address of the mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: base/len are exactly what mmap returned; the owner guarantees no
        // references into the region outlive it (the pool keeps the region alive until
        // every buffer, including those lent to the kernel, is back).
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

// SAFETY: the region is plain memory; synchronisation of its contents is the owner's job.
unsafe impl Send for Region {}
// SAFETY: as above, &Region only exposes the base address and the length.
unsafe impl Sync for Region {}

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 {
        v as usize
    } else {
        4096
    }
}

/// A socket's kernel-shared memory (an AF_PACKET socket's rings, an AF_XDP
/// ring) mapped `MAP_SHARED` into this process, `MAP_LOCKED` where the limit
/// allows. Unmapped on drop.
#[derive(Debug)]
pub struct SocketMap {
    base: NonNull<u8>,
    len: usize,
}

impl SocketMap {
    /// Maps `len` bytes of the socket's memory from offset 0.
    pub fn new(fd: std::os::fd::BorrowedFd<'_>, len: usize) -> io::Result<SocketMap> {
        SocketMap::at(fd, len, 0)
    }

    /// Maps `len` bytes of the socket's memory at byte offset `offset` (which
    /// selects the ring, for an AF_XDP socket).
    pub fn at(fd: std::os::fd::BorrowedFd<'_>, len: usize, offset: i64) -> io::Result<SocketMap> {
        use std::os::fd::AsRawFd;
        let map = |flags| {
            // SAFETY: a fresh shared mapping of the socket's memory, no address
            // hint, so it aliases no Rust object; the result is checked.
            unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    flags,
                    fd.as_raw_fd(),
                    offset as libc::off_t,
                )
            }
        };
        // Locked pages cannot fault on the data path; without the privilege
        // (RLIMIT_MEMLOCK) an ordinary shared mapping works the same.
        let mut p = map(libc::MAP_SHARED | libc::MAP_LOCKED | libc::MAP_POPULATE);
        if p == libc::MAP_FAILED {
            p = map(libc::MAP_SHARED | libc::MAP_POPULATE);
        }
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(SocketMap { base, len })
    }

    /// Base address of the mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.len
    }
}

impl Drop for SocketMap {
    fn drop(&mut self) {
        // SAFETY: base/len are what mmap returned; the owner drops the mapping
        // only after its last access.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

// SAFETY: the mapping is plain shared memory; access to it follows the ring
// protocol of its owner.
unsafe impl Send for SocketMap {}
// SAFETY: as above: &SocketMap only exposes the base address and the length.
unsafe impl Sync for SocketMap {}
