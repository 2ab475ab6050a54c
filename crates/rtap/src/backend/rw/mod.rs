//! The read/write backend: one `read()`/`readv()` or `write()`/`writev()` syscall
//! per packet on a non-blocking tap fd. It is how DPDK's net_tap moves packets, the
//! baseline rtap's benchmarks compare against, and the fallback when io_uring is
//! unavailable. Same buffers, same packets, same counters as the io_uring backend.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use crate::backend::segment::{self, needs_split, SEG_HDR};
use crate::backend::uring::rx_posted::bufs_per_read;
use crate::backend::uring::tx::MAX_TX_SEGS;
use crate::backend::{errno_of, is_vanished};
use crate::error::Result;
use crate::pool::{Packet, Pool};
use crate::queue::engine::{RxEngine, TxEngine};
use crate::stats::QueueCounters;
use crate::sys::fd;
use crate::wire::layout::Link;
use crate::wire::vnet::VnetHdr;

/// Rx engine: reads into a staged chain of `k` buffers, which becomes the packet.
pub(crate) struct RwRx {
    pool: Pool,
    k: usize,
    /// Buffers ready for the next read (`k` of them when `staged`).
    bufs: Box<[u32]>,
    staged: bool,
    iovs: Box<[libc::iovec]>,
    vnet_len: usize,
    /// Bytes one read can take (header included). Sized for one byte more than
    /// the largest frame, so a read that fills it is a frame that was cut short.
    cap: usize,
    /// The last burst ended on `EAGAIN`: the fd had nothing more.
    drained: bool,
}

impl RwRx {
    pub(crate) fn new(pool: &Pool, vnet_len: usize, max_frame: usize) -> Result<RwRx> {
        let pc = pool.config();
        // One spare byte: the tap cuts a frame to the buffers it is given and
        // returns the bytes copied, so only a read that fills every byte shows
        // the frame did not fit.
        let k = bufs_per_read(pc.buf_size, pc.headroom, vnet_len, max_frame + 1);
        let cap = (pc.buf_size - pc.headroom) as usize + vnet_len + (k - 1) * pc.buf_size as usize;
        Ok(RwRx {
            pool: pool.clone(),
            k,
            bufs: vec![0u32; k].into_boxed_slice(),
            staged: false,
            iovs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                k
            ]
            .into_boxed_slice(),
            vnet_len,
            cap,
            drained: false,
        })
    }
}

impl RxEngine for RwRx {
    fn rx_burst(
        &mut self,
        fd: BorrowedFd<'_>,
        out: &mut Vec<Packet>,
        max: usize,
        ctr: &QueueCounters,
    ) -> Result<usize, i32> {
        let hr = self.pool.config().headroom as usize;
        let size = self.pool.config().buf_size as usize;
        let (mut pkts, mut bytes, mut errors, mut nombuf) = (0u64, 0u64, 0u64, 0u64);
        let mut truncated = 0u64;
        let mut vanished = None;
        self.drained = false;
        while (pkts as usize) < max {
            if !self.staged {
                if !self.pool.inner.take_n(&mut self.bufs) {
                    // Drain one frame into a scratch buffer so the kernel queue moves on,
                    // and count it as dropped for lack of buffers.
                    let mut scratch = [0u8; 64];
                    match fd::read(fd, &mut scratch) {
                        Ok(_) => nombuf += 1,
                        Err(e) if is_vanished(errno_of(&e)) => vanished = Some(errno_of(&e)),
                        Err(_) => {}
                    }
                    break;
                }
                self.staged = true;
            }
            let inner = &self.pool.inner;
            // SAFETY: headroom >= 16 > vnet_len keeps the start inside the first buffer.
            let start = unsafe { inner.buf_ptr(self.bufs[0]).add(hr - self.vnet_len) };
            self.iovs[0] = libc::iovec {
                iov_base: start.cast(),
                iov_len: size - hr + self.vnet_len,
            };
            for j in 1..self.k {
                self.iovs[j] = libc::iovec {
                    iov_base: inner.buf_ptr(self.bufs[j]).cast(),
                    iov_len: size,
                };
            }
            match fd::readv(fd, &mut self.iovs) {
                // Runt, or truncated (larger than the buffers): an error, never a
                // cut frame. The staged buffers are reused for the next read.
                Ok(n) if n < self.vnet_len + 14 || n >= self.cap => {
                    errors += 1;
                    truncated += (n >= self.cap) as u64;
                }
                Ok(n) => {
                    let frame_len = n - self.vnet_len;
                    // SAFETY: the read returned, the header bytes are initialised and
                    // the staged buffers are owned by this queue.
                    let hdr = unsafe { std::slice::from_raw_parts(start, self.vnet_len) };
                    let vnet = VnetHdr::decode(hdr, self.vnet_len).unwrap_or_default();
                    out.push(Packet::from_filled(
                        &self.pool.inner,
                        &self.bufs,
                        hr as u32,
                        frame_len,
                        vnet,
                    ));
                    self.staged = false;
                    pkts += 1;
                    bytes += frame_len as u64;
                }
                Err(e) => {
                    let errno = errno_of(&e);
                    if is_vanished(errno) {
                        vanished = Some(errno);
                    } else if errno == libc::EAGAIN {
                        self.drained = true;
                    } else if errno != libc::EINTR {
                        errors += 1;
                    }
                    break;
                }
            }
        }
        ctr.add(pkts, bytes, errors, nombuf);
        ctr.add_truncated(truncated);
        match vanished {
            Some(e) if pkts == 0 => Err(e),
            _ => Ok(pkts as usize),
        }
    }

    /// Buffers are only staged for the next read, never lent to the kernel.
    fn held(&self) -> usize {
        0
    }

    fn drained(&self) -> bool {
        self.drained
    }

    fn wait(&mut self, fd: BorrowedFd<'_>, timeout: Duration) -> std::io::Result<bool> {
        fd::poll_in(fd, timeout)
    }
}

impl Drop for RwRx {
    fn drop(&mut self) {
        if self.staged {
            for &b in self.bufs.iter() {
                self.pool.inner.put(b);
            }
        }
    }
}

/// Tx engine: one syscall per packet (per segment of a packet it splits).
pub(crate) struct RwTx {
    iovs: Box<[libc::iovec]>,
    hdr: [u8; 16],
    vnet_len: usize,
    link: Link,
    /// Header scratch of the segment being written (software segmentation).
    seg_hdr: Box<[u8; SEG_HDR]>,
    splits: u64,
}

/// What writing one packet came to: frames sent, their bytes, frames lost.
#[derive(Default)]
struct Wrote {
    sent: u64,
    bytes: u64,
    errors: u64,
}

impl RwTx {
    /// Writes the segments of a packet the port cannot hand on as it is (see
    /// [`segment`]), each with one `writev` of its headers and its payload
    /// slice. `Err(errno)` if the first segment found the queue full (the
    /// packet stays for later); a segment failing later is lost with the rest
    /// (counted), a split cannot resume. The errno is kept in `gone` for a
    /// vanished interface.
    fn write_split(
        &mut self,
        fd: BorrowedFd<'_>,
        pkt: &Packet,
        gone: &mut Option<i32>,
    ) -> Result<Wrote, i32> {
        let mut w = Wrote::default();
        let Some(mut sp) = segment::split(pkt, self.link) else {
            w.errors = 1;
            return Ok(w);
        };
        let count = sp.count() as u64;
        let data = pkt.data();
        while let Some(Ok(seg)) = sp.next_header(&mut self.seg_hdr[..]) {
            let body = &data[seg.payload.clone()];
            let iov = [
                libc::iovec {
                    iov_base: self.seg_hdr.as_mut_ptr().cast(),
                    iov_len: seg.hdr_len,
                },
                libc::iovec {
                    iov_base: body.as_ptr() as *mut libc::c_void,
                    iov_len: body.len(),
                },
            ];
            match fd::writev(fd, &iov[..if body.is_empty() { 1 } else { 2 }]) {
                Ok(_) => {
                    w.sent += 1;
                    w.bytes += seg.len() as u64;
                }
                Err(e) => {
                    let errno = errno_of(&e);
                    if w.sent == 0 && (errno == libc::EAGAIN || errno == libc::EINTR) {
                        return Err(errno);
                    }
                    if is_vanished(errno) {
                        *gone = Some(errno);
                    }
                    break;
                }
            }
        }
        self.splits += 1;
        // Segments not written (a failed write and those after it) are lost.
        w.errors = count - w.sent;
        Ok(w)
    }

    pub(crate) fn new(vnet_len: usize, link: Link) -> RwTx {
        RwTx {
            iovs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                MAX_TX_SEGS + 1
            ]
            .into_boxed_slice(),
            hdr: [0; 16],
            vnet_len,
            link,
            seg_hdr: Box::new([0; SEG_HDR]),
            splits: 0,
        }
    }
}

impl TxEngine for RwTx {
    /// Sends complete in the write itself: any number fits.
    fn room(&mut self, _ctr: &QueueCounters) -> usize {
        usize::MAX
    }

    /// Writes packets from the front of `pkts`, at most `max`, and removes the
    /// ones consumed.
    fn tx_burst(
        &mut self,
        fd: BorrowedFd<'_>,
        pkts: &mut Vec<Packet>,
        max: usize,
        ctr: &QueueCounters,
    ) -> Result<usize, i32> {
        let (mut sent, mut bytes, mut errors) = (0u64, 0u64, 0u64);
        let mut consumed = 0;
        let mut vanished = None;
        let vl = self.vnet_len;
        for pkt in pkts.iter().take(max) {
            if pkt.len() < 14 || pkt.nb_segs() > MAX_TX_SEGS {
                errors += 1;
                consumed += 1;
                continue;
            }
            if needs_split(pkt, vl) {
                let Ok(w) = self.write_split(fd, pkt, &mut vanished) else {
                    break; // the queue is full: the packet stays
                };
                sent += w.sent;
                bytes += w.bytes;
                errors += w.errors;
                consumed += 1;
                if vanished.is_some() {
                    break;
                }
                continue;
            }
            let (head, headroom) = pkt.head_raw();
            let r = if pkt.nb_segs() == 1 && headroom >= vl {
                // SAFETY: the headroom in front of the frame belongs to the packet, which
                // this call borrows exclusively through `pkts`.
                let start = unsafe { head.sub(vl) };
                // SAFETY: start..start+len+vl spans header room and frame, both in the buffer.
                let all = unsafe { std::slice::from_raw_parts_mut(start, pkt.len() + vl) };
                pkt.vnet_hdr().encode(&mut all[..vl], vl);
                fd::write(fd, all)
            } else {
                pkt.vnet_hdr().encode(&mut self.hdr, vl);
                self.iovs[0] = libc::iovec {
                    iov_base: self.hdr.as_mut_ptr().cast(),
                    iov_len: vl,
                };
                let mut k = 1;
                let iovs = &mut self.iovs;
                pkt.for_each_raw(|p, l| {
                    iovs[k] = libc::iovec {
                        iov_base: p.cast(),
                        iov_len: l,
                    };
                    k += 1;
                });
                fd::writev(fd, &self.iovs[..k])
            };
            match r {
                Ok(_) => {
                    sent += 1;
                    bytes += pkt.len() as u64;
                    consumed += 1;
                }
                Err(e) => {
                    let errno = errno_of(&e);
                    if errno == libc::EAGAIN || errno == libc::EINTR {
                        break;
                    }
                    errors += 1;
                    consumed += 1;
                    if is_vanished(errno) {
                        vanished = Some(errno);
                        break;
                    }
                }
            }
        }
        pkts.drain(..consumed);
        ctr.add(sent, bytes, errors, 0);
        match vanished {
            Some(e) if sent == 0 => Err(e),
            _ => Ok(consumed),
        }
    }

    fn flush(&mut self, _ctr: &QueueCounters, _timeout: Duration) -> bool {
        true
    }

    fn take_splits(&mut self) -> u64 {
        std::mem::take(&mut self.splits)
    }

    fn in_flight(&self) -> usize {
        0
    }
}
