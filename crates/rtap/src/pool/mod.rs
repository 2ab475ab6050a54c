//! The buffer pool and the [`Packet`] handle.
//!
//! A [`Pool`] is one anonymous mapping cut into `count` buffers of `buf_size`
//! bytes. Buffers circulate between three kinds of owner, and each buffer index
//! has exactly one at any time:
//!
//! 1. the pool's free stack;
//! 2. one [`Packet`] (a chain of one or more buffers);
//! 3. one queue, which has lent the buffer to the kernel for a posted read or a
//!    write in flight.
//!
//! A `Packet` returns its buffers when dropped; a queue returns lent buffers when
//! their operation completes or is cancelled. Nothing allocates on the heap per
//! packet: a packet is a handle of a few words and its segment links live in a
//! metadata table allocated with the pool.
//!
//! A pool belongs to the thread that made it (`!Send`), and so do the queues
//! using it: the data path takes no lock and, on that thread, does no atomic
//! read-modify-write. A [`Packet`] is `Send`: it may be read, changed in place,
//! sent or dropped on any thread. Dropped on another thread, its buffers go
//! back through a lock-free stack (one compare-and-swap per packet) that the
//! pool's thread takes whole when its free list runs dry; a packet may also
//! outlive its pool, whose memory goes when the last buffer is back
//! (`remote.rs`, `inner.rs`). Growing a packet with new buffers
//! ([`Packet::append`] past its last buffer) is done on the pool's thread only.
//! Give each worker thread its own pool and open its queues on that thread
//! (the port itself is `Sync`).

mod free;
mod inner;
mod merge;
mod packet;
mod remote;
#[cfg(all(feature = "mt", feature = "tokio"))]
pub(crate) mod roaming;

use std::rc::Rc;

pub use merge::ToPool;
pub use packet::{Packet, Segments};

use crate::error::{Error, Result};
use crate::sys::mem::Region;

pub(crate) use inner::{PoolInner, Shared};

/// Marks the end of a segment chain.
pub(crate) const NO_SEG: u32 = u32::MAX;

/// Largest frame a packet may carry: a 64 KiB IP packet (the most a coalesced
/// GSO frame holds) plus an Ethernet header and one VLAN tag.
pub const MAX_PACKET_LEN: usize = 65535 + 18;

/// Sizes of a [`Pool`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolConfig {
    /// Number of buffers. Default 4096.
    pub count: u32,
    /// Bytes per buffer, headroom included. Default 2176 (128 headroom + 2048 data).
    pub buf_size: u32,
    /// Bytes reserved in front of a packet's first segment, for the virtio-net
    /// header and for prepending headers. Default 128, at least 16.
    pub headroom: u32,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            count: 4096,
            buf_size: 2176,
            headroom: 128,
        }
    }
}

impl PoolConfig {
    /// Sets the number of buffers.
    pub fn count(mut self, n: u32) -> Self {
        self.count = n;
        self
    }

    /// Sets the bytes per buffer (headroom included).
    pub fn buf_size(mut self, bytes: u32) -> Self {
        self.buf_size = bytes;
        self
    }

    /// Sets the headroom in front of each frame.
    pub fn headroom(mut self, bytes: u32) -> Self {
        self.headroom = bytes;
        self
    }

    /// Checks limits and returns the stride (bytes between buffer starts, a multiple of 64).
    pub fn validate(&self) -> Result<usize> {
        if self.count == 0 || self.count > (1 << 24) {
            return Err(Error::InvalidConfig {
                field: "pool count",
                why: format!("{} must be 1..=16777216", self.count),
            });
        }
        if self.headroom < 16 {
            return Err(Error::InvalidConfig {
                field: "pool headroom",
                why: format!(
                    "{} must be at least 16 (room for the virtio-net header)",
                    self.headroom
                ),
            });
        }
        if self.buf_size < self.headroom + 64 || self.buf_size as usize > MAX_PACKET_LEN + 4096 {
            return Err(Error::InvalidConfig {
                field: "pool buf_size",
                why: format!(
                    "{} must be headroom+64 ({}) ..= {}",
                    self.buf_size,
                    self.headroom + 64,
                    MAX_PACKET_LEN + 4096
                ),
            });
        }
        Ok(stride_for(self.buf_size))
    }
}

/// Distance between two buffers: `buf_size` rounded up to a cache line.
pub(crate) fn stride_for(buf_size: u32) -> usize {
    (buf_size as usize).div_ceil(64) * 64
}

/// Per-buffer segment record: where the bytes are and what follows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seg {
    pub off: u32,
    pub len: u32,
    pub next: u32,
}

/// A pool's figures ([`Pool::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Buffers in the pool.
    pub capacity: u32,
    /// Buffers free now.
    pub available: usize,
    /// Allocations (a packet, a queue's refill) that found no free buffer.
    pub exhausted: u64,
    /// Buffers given back by packets dropped on other threads.
    pub remote_returns: u64,
}

/// A preallocated set of packet buffers. Cheap to clone (a reference count).
#[derive(Clone)]
pub struct Pool {
    pub(crate) inner: Rc<PoolInner>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("config", self.inner.cfg())
            .field("available", &self.available())
            .finish()
    }
}

impl Pool {
    /// Maps and pre-faults the pool's memory.
    pub fn new(cfg: PoolConfig) -> Result<Pool> {
        let stride = cfg.validate()?;
        let region = Region::new(stride * cfg.count as usize)
            .map_err(|e| Error::sys("mmap buffer pool", e))?;
        Ok(Pool {
            inner: Rc::new(PoolInner::new(region, stride, cfg)),
        })
    }

    /// The pool's sizes.
    pub fn config(&self) -> PoolConfig {
        *self.inner.cfg()
    }

    /// Total buffers.
    pub fn capacity(&self) -> u32 {
        self.inner.cfg().count
    }

    /// Buffers currently free (those given back from other threads taken in
    /// first). Equal to [`capacity`](Self::capacity) once every packet is
    /// dropped, wherever, and every queue using the pool is dropped.
    pub fn available(&self) -> usize {
        self.inner.available()
    }

    /// What the pool has seen: allocations that found no free buffer (packets
    /// away on other threads count as taken until they come back), and
    /// buffers given back from other threads.
    pub fn stats(&self) -> PoolStats {
        let available = self.available();
        let (exhausted, remote_returns) = self.inner.counts();
        PoolStats {
            capacity: self.capacity(),
            available,
            exhausted,
            remote_returns,
        }
    }

    /// True if `other` is a handle to the same pool.
    pub fn same_as(&self, other: &Pool) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    /// An empty one-segment packet with the configured headroom.
    pub fn alloc(&self) -> Result<Packet> {
        let idx = self.inner.take().ok_or(Error::PoolExhausted {
            count: self.capacity(),
        })?;
        let off = self.inner.cfg().headroom;
        self.inner.set_seg(
            idx,
            Seg {
                off,
                len: 0,
                next: NO_SEG,
            },
        );
        Ok(Packet::from_parts(&self.inner, idx, idx, 0, 1))
    }

    /// A packet holding a copy of `bytes`, chained over several buffers if needed.
    pub fn alloc_from(&self, bytes: &[u8]) -> Result<Packet> {
        let mut p = self.alloc()?;
        p.append(bytes)?;
        Ok(p)
    }

    /// A one-buffer packet that `fill` writes in place, with no copy: `fill`
    /// gets `room` bytes of the buffer (after the headroom; what they hold
    /// before is unspecified: whatever the buffer last carried) and returns
    /// how many it wrote (at most `room`), the packet's length. For a
    /// producer that writes packets itself: a segmenter, a cipher writing
    /// its output, a decoder. [`Error::PacketTooLarge`] if `room` exceeds a
    /// buffer's data room (`buf_size - headroom`).
    pub fn alloc_with(&self, room: usize, fill: impl FnOnce(&mut [u8]) -> usize) -> Result<Packet> {
        let cfg = self.inner.cfg();
        let max = (cfg.buf_size - cfg.headroom) as usize;
        if room > max {
            return Err(Error::PacketTooLarge { len: room, max });
        }
        let idx = self.inner.take().ok_or(Error::PoolExhausted {
            count: self.capacity(),
        })?;
        self.inner.set_seg(
            idx,
            Seg {
                off: cfg.headroom,
                len: room as u32,
                next: NO_SEG,
            },
        );
        let mut p = Packet::from_parts(&self.inner, idx, idx, room as u32, 1);
        let n = fill(p.data_mut()).min(room);
        p.truncate(n);
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_written_in_place() {
        let pool = Pool::new(PoolConfig::default().count(4).buf_size(256).headroom(32)).unwrap();
        let p = pool
            .alloc_with(100, |b| {
                assert_eq!(b.len(), 100);
                b[..3].copy_from_slice(b"abc");
                3
            })
            .unwrap();
        assert_eq!((p.data(), p.nb_segs(), p.headroom()), (&b"abc"[..], 1, 32));
        // A count past the room is the room.
        let q = pool.alloc_with(224, |_| 1000).unwrap();
        assert_eq!(q.len(), 224);
        let e = pool.alloc_with(225, |_| 0).unwrap_err();
        assert!(
            matches!(e, Error::PacketTooLarge { len: 225, max: 224 }),
            "{e}"
        );
        drop((p, q));
        assert_eq!(pool.available(), 4, "the refused one took no buffer");
    }

    #[test]
    fn stride_is_cache_aligned() {
        assert_eq!(stride_for(2176), 2176);
        assert_eq!(stride_for(2000), 2048);
        assert_eq!(stride_for(65), 128);
    }

    #[test]
    fn config_limits() {
        assert!(PoolConfig::default().validate().is_ok());
        assert!(PoolConfig {
            count: 0,
            ..Default::default()
        }
        .validate()
        .is_err());
        assert!(PoolConfig {
            headroom: 8,
            ..Default::default()
        }
        .validate()
        .is_err());
        assert!(PoolConfig {
            buf_size: 100,
            ..Default::default()
        }
        .validate()
        .is_err());
    }
}
