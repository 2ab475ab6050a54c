//! A bare TPACKET_V2 rx ring read in place: each frame is looked at where the
//! kernel wrote it and its slot handed straight back. No buffers, no copies, no
//! packet objects: the least work any ring reader can do per frame, the floor
//! rtap's benchmarks compare its copying rx path with.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

/// A packet socket with a mapped TPACKET_V2 rx ring, bound to one interface.
#[derive(Debug)]
pub struct InPlaceRing {
    fd: OwnedFd,
    base: *mut u8,
    len: usize,
    frame_size: usize,
    frames: usize,
    head: usize,
}

fn setopt<T>(fd: &OwnedFd, opt: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: v is a live value of size_of::<T>() bytes, only read by the kernel.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
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

impl InPlaceRing {
    /// A ring of `frames` slots of `frame_size` bytes (a multiple of 16 dividing
    /// the page size) on interface `ifindex`.
    pub fn bind(ifindex: u32, frame_size: usize, frames: usize) -> io::Result<InPlaceRing> {
        // SAFETY: plain socket call; the result is checked.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is fresh and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        setopt(&fd, libc::PACKET_VERSION, &(1 as libc::c_int))?; // TPACKET_V2
        let req = libc::tpacket_req {
            tp_block_size: 4096,
            tp_block_nr: (frames * frame_size / 4096) as u32,
            tp_frame_size: frame_size as u32,
            tp_frame_nr: frames as u32,
        };
        setopt(&fd, libc::PACKET_RX_RING, &req)?;
        let len = frames * frame_size;
        // SAFETY: a fresh shared mapping of the socket's ring; checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ring = InPlaceRing {
            fd,
            base: p.cast(),
            len,
            frame_size,
            frames,
            head: 0,
        };
        // SAFETY: sockaddr_ll is plain data for which all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: sll is a valid sockaddr_ll of the size passed.
        let r = unsafe {
            libc::bind(
                ring.fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(ring)
    }

    /// Looks at up to `max` frames in place: `f(frame)` for each, then hands its
    /// slot back. Returns how many.
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < max {
            // SAFETY: slot `head` lies in the mapping (head < frames, frames *
            // frame_size == len); its first word is the status, 16-byte aligned.
            let slot = unsafe { self.base.add(self.head * self.frame_size) };
            // SAFETY: as above; the kernel updates the status atomically.
            let status = unsafe { &*slot.cast::<AtomicU32>() };
            if status.load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                break;
            }
            // SAFETY: tp_snaplen (u32 at 8) and tp_mac (u16 at 12) of a slot the
            // user owns; the frame lies inside the slot (the kernel cut it to fit).
            let frame = unsafe {
                let snap = slot.add(8).cast::<u32>().read() as usize;
                let mac = slot.add(12).cast::<u16>().read() as usize;
                std::slice::from_raw_parts(slot.add(mac), snap.min(self.frame_size - mac))
            };
            f(frame);
            status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
            self.head = (self.head + 1) % self.frames;
            n += 1;
        }
        n
    }
}

impl Drop for InPlaceRing {
    fn drop(&mut self) {
        // SAFETY: base/len are what mmap returned; nothing borrows the ring now.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}
