//! The baseline of the `tx` test: the least a program can do to write 64-byte
//! frames into a tap through io_uring. It opens the tap itself (`IFF_TAP |
//! IFF_NO_PI`, optionally `IFF_VNET_HDR` with a zeroed header in front of each
//! frame), sets up a ring with the kernel's defaults, and queues 32 writes of
//! one static frame per `io_uring_enter`, waiting for all 32. No pool, no
//! stats, no checks beyond counting the completions that wrote the whole
//! frame: what rtap's tap tx is measured against.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::time::Instant;

use io_uring::{opcode, types, IoUring};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// A tap this process created, and the ring that writes to it.
pub struct UringWriter {
    tap: File,
    name: String,
    ring: IoUring,
    /// Bytes written per frame: the vnet header (when asked) and the frame.
    buf: Vec<u8>,
}

impl UringWriter {
    /// Creates a tap named after `pattern` (`%d` numbered by the kernel) and a
    /// ring of `entries` entries. With `vnet_hdr` the tap has `IFF_VNET_HDR`
    /// and every write carries a zeroed 12-byte header, as rtap's writes do.
    pub fn open(pattern: &str, entries: u32, vnet_hdr: bool, frame: &[u8]) -> io::Result<Self> {
        let tap = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")?;
        // SAFETY: ifreq is plain data; all-zero is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        let n = pattern.len().min(libc::IFNAMSIZ - 1);
        for (d, s) in ifr.ifr_name.iter_mut().zip(&pattern.as_bytes()[..n]) {
            *d = *s as libc::c_char;
        }
        let mut flags = libc::IFF_TAP | libc::IFF_NO_PI;
        if vnet_hdr {
            flags |= libc::IFF_VNET_HDR;
        }
        ifr.ifr_ifru.ifru_flags = flags as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes the ifreq, which lives across the call.
        let r = unsafe { libc::ioctl(tap.as_raw_fd(), TUNSETIFF, &mut ifr) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let name: String = ifr
            .ifr_name
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8 as char)
            .collect();
        let mut buf = vec![0u8; if vnet_hdr { 12 } else { 0 }];
        buf.extend_from_slice(frame);
        Ok(UringWriter {
            tap,
            name,
            ring: IoUring::new(entries)?,
            buf,
        })
    }

    /// The tap's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Writes bursts of `burst` frames until `deadline`; the frames written whole.
    pub fn run(&mut self, burst: usize, deadline: Instant) -> io::Result<u64> {
        let fd = types::Fd(self.tap.as_raw_fd());
        let sqe = opcode::Write::new(fd, self.buf.as_ptr(), self.buf.len() as u32).build();
        let want = self.buf.len() as i32;
        let mut sent = 0u64;
        while Instant::now() < deadline {
            for _ in 0..64 {
                {
                    let mut sq = self.ring.submission();
                    for _ in 0..burst {
                        // SAFETY: the write reads self.buf, which is neither
                        // moved nor freed before every write of the burst has
                        // completed (submit_and_wait waits for all of them).
                        if unsafe { sq.push(&sqe) }.is_err() {
                            break;
                        }
                    }
                }
                self.ring.submit_and_wait(burst)?;
                for cqe in self.ring.completion() {
                    if cqe.result() == want {
                        sent += 1;
                    }
                }
            }
        }
        Ok(sent)
    }
}
