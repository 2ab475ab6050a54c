//! Memory shared between processes: a `memfd` mapped `MAP_SHARED`, whose fd can
//! be handed to another process (over a Unix socket) and mapped there too.
//!
//! The size is sealed (`F_SEAL_SHRINK`, `F_SEAL_GROW`, then `F_SEAL_SEAL`) before
//! the fd leaves its maker: a process given the fd cannot `ftruncate` it, which
//! would make every access of the maker's mapping past the new end a `SIGBUS`.
//! Whoever maps an fd it was given checks those seals first.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

/// The seals that fix a memfd's size.
const SIZE_SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;

/// A shared mapping of a memfd; unmapped on drop (the fd closes with it).
#[derive(Debug)]
pub struct SharedMap {
    fd: OwnedFd,
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory; what is stored in it is the owner's to
// synchronise (rtap keeps only atomics there).
unsafe impl Send for SharedMap {}
// SAFETY: as above; &SharedMap only exposes the base address and the length.
unsafe impl Sync for SharedMap {}

impl SharedMap {
    /// A new zero-filled memfd of `len` bytes (rounded up to a page), mapped.
    pub fn create(name: &str, len: usize) -> io::Result<SharedMap> {
        let page = super::mem::page_size();
        let len = len.max(1).div_ceil(page) * page;
        let cname = std::ffi::CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: cname is NUL-terminated and outlives the call; the result is checked.
        let fd = unsafe {
            libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh memfd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: ftruncate takes no pointers.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fcntl with an int argument takes no pointers.
        if unsafe {
            libc::fcntl(
                fd.as_raw_fd(),
                libc::F_ADD_SEALS,
                SIZE_SEALS | libc::F_SEAL_SEAL,
            )
        } < 0
        {
            return Err(io::Error::last_os_error());
        }
        SharedMap::map(fd, len)
    }

    /// Maps a memfd someone else made; its whole size.
    pub fn open(fd: OwnedFd) -> io::Result<SharedMap> {
        // The seals first: once sealed the size cannot change, so the size read
        // next is the one mapped (read before, it could be shrunk in between).
        // SAFETY: fcntl(F_GET_SEALS) takes no pointers.
        let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
        if seals < 0 || seals & SIZE_SEALS != SIZE_SEALS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a memfd whose size is not sealed: whoever holds it could shrink it under the mapping",
            ));
        }
        // SAFETY: stat is plain data for the kernel to fill.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: st is a live stat; fd is open.
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
            return Err(io::Error::last_os_error());
        }
        if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_size <= 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a shared memory file",
            ));
        }
        SharedMap::map(fd, st.st_size as usize)
    }

    fn map(fd: OwnedFd, len: usize) -> io::Result<SharedMap> {
        // SAFETY: a new shared mapping of the whole file, no address hint, so it
        // aliases no Rust object; the result is checked for MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(SharedMap { fd, base, len })
    }

    /// Base address.
    pub fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The memfd, to hand to another process.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: base/len are what mmap returned; the owner keeps no reference
        // into the mapping past its own lifetime (readers hold an Arc of it).
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_sealed_and_unsealed_ones_refused() {
        let m = SharedMap::create("rtap-test", 100).unwrap();
        let fd = m.fd().try_clone_to_owned().unwrap();
        // SAFETY: ftruncate takes no pointers.
        assert_eq!(unsafe { libc::ftruncate(fd.as_raw_fd(), 0) }, -1);
        let again = SharedMap::open(fd).unwrap();
        assert_eq!(again.len(), m.len());
        // A memfd whose size nobody sealed is not mapped.
        // SAFETY: a literal NUL-terminated name; the result is checked.
        let raw = unsafe { libc::memfd_create(c"rtap-unsealed".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(raw >= 0);
        // SAFETY: raw is a fresh fd of ours.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: ftruncate takes no pointers.
        assert_eq!(unsafe { libc::ftruncate(fd.as_raw_fd(), 4096) }, 0);
        let e = SharedMap::open(fd).unwrap_err();
        assert!(e.to_string().contains("not sealed"), "{e}");
    }
}
