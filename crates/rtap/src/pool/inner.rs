//! A pool's memory and who may touch which part of it.
//!
//! [`Shared`] is what a [`Packet`](super::Packet) points to, on any thread:
//! the buffers, one segment record per buffer, the free list and the stack of
//! buffers given back from other threads ([`Remote`]). The rules that make
//! sharing it sound:
//!
//! - a buffer's bytes and its segment record are touched only by the buffer's
//!   owner (the free list, one packet, or one queue); a packet moves to another
//!   thread only through something that synchronizes (a channel, a join, ...),
//!   and buffers come back from other threads through the `Release`/`Acquire`
//!   pair of the remote stack;
//! - the free list, `alive` and the pool's counters are touched only on the
//!   pool's thread while a pool handle lives ([`PoolInner`], which cannot leave
//!   that thread, unless a [`Roaming`](super::roaming::Roaming) moves the pool
//!   and all its handles from one thread to the next, one at a time), then
//!   only by the thread holding `RECLAIM` (see [`Remote`]);
//! - the memory is freed once the last handle is gone and every buffer is back,
//!   by whichever thread sees that last (see [`Remote`]).

use std::cell::{Cell, UnsafeCell};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::free::FreeStack;
use super::remote::Remote;
use super::{PoolConfig, Seg, NO_SEG};
use crate::sys::mem::Region;

/// A pool's memory, reachable from every packet of it.
pub(crate) struct Shared {
    region: Region,
    stride: usize,
    cfg: PoolConfig,
    segs: Box<[UnsafeCell<Seg>]>,
    free: UnsafeCell<FreeStack>,
    /// The pool's thread ([`thread_token`]); 0 while a [`Roaming`] pool
    /// waits for its next thread (see [`set_owner`](Self::set_owner)).
    ///
    /// [`Roaming`]: super::roaming::Roaming
    owner: AtomicU64,
    /// A pool handle lives (the pool's thread only).
    alive: Cell<bool>,
    remote: Remote,
    /// Allocations that found no free buffer (the pool's thread only).
    exhausted: Cell<u64>,
    /// Buffers taken back from other threads (the pool's thread only).
    returned: Cell<u64>,
}

// SAFETY: the cells and the free list follow the rules in the module docs
// (the pool's thread, or the one holding RECLAIM, alone); buffers and segment
// records are touched by their single owner; the rest is atomics or immutable.
unsafe impl Sync for Shared {}
// SAFETY: as above; the memory may be freed on whichever thread returns the
// last buffer, which only unmaps it.
unsafe impl Send for Shared {}

/// A number unique to the calling thread (never reused).
pub(crate) fn thread_token() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static TOKEN: Cell<u64> = const { Cell::new(0) };
    }
    TOKEN.with(|t| match t.get() {
        0 => {
            let v = NEXT.fetch_add(1, Relaxed);
            t.set(v);
            v
        }
        v => v,
    })
}

impl Shared {
    #[inline]
    pub(crate) fn buf_ptr(&self, idx: u32) -> *mut u8 {
        debug_assert!(idx < self.cfg.count);
        // SAFETY: idx < count, and the region holds count * stride bytes, so the
        // offset stays inside the mapping.
        unsafe { self.region.as_ptr().add(idx as usize * self.stride) }
    }

    /// Buffer `idx`'s segment record (its owner only).
    #[inline]
    pub(crate) fn seg(&self, idx: u32) -> Seg {
        // SAFETY: only the buffer's owner reads or writes its record (module
        // docs); Seg is Copy, no reference escapes.
        unsafe { *self.segs[idx as usize].get() }
    }

    #[inline]
    pub(crate) fn set_seg(&self, idx: u32, seg: Seg) {
        // SAFETY: as in `seg`.
        unsafe { *self.segs[idx as usize].get() = seg }
    }

    pub(crate) fn cfg(&self) -> &PoolConfig {
        &self.cfg
    }

    /// True on the pool's thread while a handle lives: buffers go straight
    /// back to the free list.
    #[inline]
    fn local(&self) -> bool {
        // `alive` is read only on the pool's thread (the token first).
        self.owner.load(Relaxed) == thread_token() && self.alive.get()
    }

    /// Makes `token`'s thread the pool's thread (0: none). Only a
    /// [`Roaming`](super::roaming::Roaming) calls it, as it hands the pool and
    /// every handle of it from one thread to the next: the thread giving it
    /// up stores 0 before the next takes it (through an `Acquire`/`Release`
    /// pair that orders the free list's accesses), and the next stores its
    /// own token. `Relaxed` is enough: a thread only ever compares the value
    /// with its own token, and after storing 0 it cannot read its own token
    /// back (coherence) until it stores it again.
    #[cfg(all(feature = "mt", feature = "tokio"))]
    pub(crate) fn set_owner(&self, token: u64) {
        self.owner.store(token, Relaxed);
    }

    /// The free list's operations, on the pool's thread while a handle lives;
    /// `None` elsewhere.
    #[inline]
    pub(crate) fn here(&self) -> Option<Here<'_>> {
        self.local().then_some(Here(self, PhantomData))
    }

    /// The free list. Callers: the pool's thread while a handle lives
    /// ([`local`](Self::local) or a [`PoolInner`]), or the RECLAIM holder; and
    /// no two of these borrows at once.
    #[allow(clippy::mut_from_ref)]
    #[inline]
    unsafe fn free(&self) -> &mut FreeStack {
        // SAFETY: exclusive by the caller's contract.
        unsafe { &mut *self.free.get() }
    }

    /// Gives back the chain from `head` (linked by the segment records) of a
    /// packet the caller owns. On the pool's thread onto the free list;
    /// elsewhere through the remote stack (after which `this` may be gone).
    pub(crate) fn give_back(this: NonNull<Shared>, head: u32) {
        // SAFETY: the caller owns buffers of this pool, so its memory lives
        // (it is freed only once every buffer is back).
        let sh = unsafe { this.as_ref() };
        if let Some(here) = sh.here() {
            let mut i = head;
            while i != NO_SEG {
                let next = sh.seg(i).next;
                here.put(i);
                i = next;
            }
            return;
        }
        sh.remote.enter();
        sh.remote.push(head, |i| sh.seg(i).next);
        if sh.remote.leave() {
            // SAFETY: `leave` handed this thread RECLAIM.
            unsafe { Shared::reclaim(this) }
        }
    }

    /// Holding RECLAIM of an orphaned pool: takes back what other threads
    /// gave, frees the memory if every buffer is back and nobody is inside,
    /// else lets RECLAIM go (taking it again while work is left).
    ///
    /// # Safety
    /// The caller holds RECLAIM; `this` is not used after the call.
    unsafe fn reclaim(this: NonNull<Shared>) {
        loop {
            // SAFETY: RECLAIM keeps the memory alive (only its holder frees).
            let sh = unsafe { this.as_ref() };
            // SAFETY: the RECLAIM holder owns the free list of an orphaned pool.
            let free = unsafe { sh.free() };
            sh.remote.take_all(|i| free.push(i));
            let all = free.len() == sh.cfg.count as usize;
            if all && sh.remote.finish() {
                // SAFETY: every buffer is back, no handle is left and nobody is
                // inside: nothing can reach the memory; it came from Box::leak.
                drop(unsafe { Box::from_raw(this.as_ptr()) });
                #[cfg(test)]
                tests::FREED.fetch_add(1, Relaxed);
                return;
            }
            if !sh.remote.release(all) {
                return;
            }
        }
    }
}

/// Proof of being on the pool's thread while a handle lives: the free list's
/// operations. Made by [`PoolInner::here`] or [`Shared::here`].
pub(crate) struct Here<'a>(&'a Shared, PhantomData<*const ()>);

impl Here<'_> {
    /// The free list.
    #[allow(clippy::mut_from_ref)]
    #[inline]
    fn free(&self) -> &mut FreeStack {
        // SAFETY: a `Here` exists only on the pool's thread while a handle
        // lives; every use below ends before the next begins.
        unsafe { self.0.free() }
    }

    /// Takes what other threads gave back onto the free list.
    fn take_returned(&self) -> bool {
        let sh = self.0;
        if !sh.remote.pending() {
            return false;
        }
        let free = self.free();
        let n = sh.remote.take_all(|i| free.push(i));
        sh.returned.set(sh.returned.get() + n as u64);
        n > 0
    }

    #[inline]
    pub(crate) fn put(&self, idx: u32) {
        self.free().push(idx);
    }

    #[inline]
    pub(crate) fn take(&self) -> Option<u32> {
        if let Some(i) = self.free().pop() {
            return Some(i);
        }
        if self.take_returned() {
            return self.free().pop();
        }
        self.0.exhausted.set(self.0.exhausted.get() + 1);
        None
    }

    #[inline]
    pub(crate) fn take_n(&self, out: &mut [u32]) -> bool {
        let n = out.len();
        if self.free().pop_n(n, out) {
            return true;
        }
        if self.take_returned() && self.free().pop_n(n, out) {
            return true;
        }
        self.0.exhausted.set(self.0.exhausted.get() + 1);
        false
    }

    /// Free buffers, counting those given back from other threads.
    #[inline]
    pub(crate) fn available(&self) -> usize {
        self.take_returned();
        self.free().len()
    }
}

/// The pool's own handle on its memory: what its thread allocates and frees
/// through. Neither `Send` nor `Sync` (it stays on the pool's thread).
pub(crate) struct PoolInner {
    sh: NonNull<Shared>,
    _here: PhantomData<*const ()>,
}

impl std::ops::Deref for PoolInner {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        // SAFETY: a live handle keeps the memory (it is freed only after the
        // handle is gone).
        unsafe { self.sh.as_ref() }
    }
}

impl PoolInner {
    pub(crate) fn new(region: Region, stride: usize, cfg: PoolConfig) -> PoolInner {
        let segs = (0..cfg.count)
            .map(|_| {
                UnsafeCell::new(Seg {
                    off: 0,
                    len: 0,
                    next: NO_SEG,
                })
            })
            .collect();
        let sh = Box::new(Shared {
            region,
            stride,
            cfg,
            segs,
            free: UnsafeCell::new(FreeStack::full(cfg.count)),
            owner: AtomicU64::new(thread_token()),
            alive: Cell::new(true),
            remote: Remote::new(cfg.count),
            exhausted: Cell::new(0),
            returned: Cell::new(0),
        });
        PoolInner {
            sh: NonNull::from(Box::leak(sh)),
            _here: PhantomData,
        }
    }

    /// The memory, as a packet points to it.
    pub(crate) fn shared(&self) -> NonNull<Shared> {
        self.sh
    }

    /// The pool's thread's access (always: a PoolInner stays there).
    #[inline]
    pub(crate) fn here(&self) -> Here<'_> {
        Here(self, PhantomData)
    }

    #[inline]
    pub(crate) fn put(&self, idx: u32) {
        self.here().put(idx)
    }

    #[inline]
    pub(crate) fn take(&self) -> Option<u32> {
        self.here().take()
    }

    #[inline]
    pub(crate) fn take_n(&self, out: &mut [u32]) -> bool {
        self.here().take_n(out)
    }

    /// Free buffers, counting those given back from other threads.
    #[inline]
    pub(crate) fn available(&self) -> usize {
        self.here().available()
    }

    /// Allocations that found no buffer, and buffers taken back from other
    /// threads.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (self.exhausted.get(), self.returned.get())
    }

    /// The pool's memory, as a device registers it with the kernel (an AF_XDP
    /// UMEM): base address, length, and the stride between buffers. Buffer `i`
    /// starts at `base + i * stride`.
    pub(crate) fn memory(&self) -> (*mut u8, usize, usize) {
        (
            self.region.as_ptr(),
            self.stride * self.cfg.count as usize,
            self.stride,
        )
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // From now on the pool's thread gives buffers back like any other.
        self.alive.set(false);
        if self.remote.orphan() {
            // SAFETY: `orphan` handed this thread RECLAIM; `self.sh` is not
            // used after.
            unsafe { Shared::reclaim(self.sh) }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    use std::sync::mpsc;

    use crate::error::Error;
    use crate::pool::{Packet, Pool, PoolConfig};

    /// Pools whose memory was freed by the last buffer coming back.
    pub(crate) static FREED: AtomicUsize = AtomicUsize::new(0);

    fn pool(count: u32) -> Pool {
        Pool::new(
            PoolConfig::default()
                .count(count)
                .buf_size(256)
                .headroom(32),
        )
        .unwrap()
    }

    #[test]
    fn packets_dropped_on_another_thread_come_back() {
        let p = pool(128);
        let pkts: Vec<Packet> = (0..40)
            .map(|i| p.alloc_from(&[i as u8; 600]).unwrap())
            .collect();
        let used = 128 - p.available();
        assert_eq!(used, 40 * 3, "600 bytes: three 256-byte buffers each");
        std::thread::spawn(move || drop(pkts)).join().unwrap();
        let st = p.stats();
        assert_eq!(st.available, 128);
        assert_eq!(st.remote_returns, used as u64);
    }

    #[test]
    fn the_pools_thread_takes_returns_when_it_runs_dry() {
        let p = pool(4);
        let held: Vec<Packet> = (0..4).map(|_| p.alloc().unwrap()).collect();
        assert!(matches!(p.alloc(), Err(Error::PoolExhausted { .. })));
        assert_eq!(p.stats().exhausted, 1);
        std::thread::spawn(move || drop(held)).join().unwrap();
        let again: Vec<Packet> = (0..4).map(|_| p.alloc().unwrap()).collect();
        assert_eq!(again.len(), 4);
    }

    #[test]
    fn a_packet_grows_only_on_its_pools_thread() {
        let p = pool(8);
        let mut pkt = p.alloc_from(b"abc").unwrap();
        let pkt = std::thread::spawn(move || {
            // Room in its buffer: fine anywhere.
            pkt.append(&[1; 100]).unwrap();
            let e = pkt.append(&[2; 500]).unwrap_err();
            assert!(matches!(e, Error::PoolElsewhere { need: 2 }), "{e:?}");
            assert_eq!(pkt.len(), 103, "unchanged");
            pkt.data_mut()[0] = b'x';
            pkt
        })
        .join()
        .unwrap();
        assert_eq!(&pkt.data()[..3], b"xbc");
        let mut pkt = pkt;
        pkt.append(&[2; 500]).unwrap();
        assert_eq!(pkt.nb_segs(), 3);
        // Truncated elsewhere: the trailing buffers come back.
        std::thread::spawn(move || {
            pkt.truncate(10);
            pkt
        })
        .join()
        .unwrap();
        assert_eq!(p.available(), 8);
    }

    #[test]
    fn a_pool_dropped_while_its_packets_live_elsewhere() {
        for local_last in [false, true] {
            let before = FREED.load(Relaxed);
            let p = pool(16);
            let a: Vec<Packet> = (0..5).map(|_| p.alloc_from(&[7; 300]).unwrap()).collect();
            let b = p.alloc_from(b"kept here").unwrap();
            let (tx, rx) = mpsc::channel::<Vec<Packet>>();
            let t = std::thread::spawn(move || {
                let a = rx.recv().unwrap();
                assert!(a.iter().all(|x| x.to_vec() == [7; 300]));
                drop(a);
            });
            drop(p);
            if local_last {
                tx.send(a).unwrap();
                t.join().unwrap();
                assert_eq!(FREED.load(Relaxed), before, "one packet still out");
                assert_eq!(b.data(), b"kept here");
                drop(b);
            } else {
                drop(b);
                tx.send(a).unwrap();
                t.join().unwrap();
            }
            assert!(
                FREED.load(Relaxed) > before,
                "the last buffer back freed it"
            );
        }
    }

    /// The pool's last handle and its last packets go at the same time on
    /// different threads, many times over: the memory is freed once each time
    /// (a double free aborts; a use after free would show under a sanitizer).
    #[test]
    fn pool_and_last_packets_go_at_once() {
        let before = FREED.load(Relaxed);
        let n = 2000;
        for i in 0..n {
            let p = pool(8);
            let a: Vec<Packet> = (0..3).map(|_| p.alloc().unwrap()).collect();
            let b = p.alloc_from(&[1; 300]).unwrap();
            let go = std::sync::Arc::new(std::sync::Barrier::new(2));
            let g = go.clone();
            let t = std::thread::spawn(move || {
                g.wait();
                drop(a);
            });
            go.wait();
            if i % 2 == 0 {
                drop(p);
                drop(b);
            } else {
                drop(b);
                drop(p);
            }
            t.join().unwrap();
        }
        assert!(
            FREED.load(Relaxed) - before >= n,
            "every pool's memory was freed"
        );
    }

    #[test]
    fn many_threads_return_while_the_pool_allocates() {
        let p = pool(256);
        let (tx, rx) = mpsc::sync_channel::<Packet>(64);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while let Ok(pkt) = {
                        let r = rx.lock().unwrap().recv();
                        r
                    } {
                        assert_eq!(pkt.len(), 200);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let mut sent = 0u64;
        while sent < 20_000 {
            match p.alloc_from(&[sent as u8; 200]) {
                Ok(pkt) => {
                    tx.send(pkt).unwrap();
                    sent += 1;
                }
                Err(_) => std::thread::yield_now(),
            }
        }
        drop(tx);
        let got: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
        assert_eq!(got, 20_000);
        assert_eq!(p.available(), 256, "the pool is full again");
    }
}
