//! A pool and what holds its handles (an rx queue), used by one thread at a
//! time, any thread: whichever task has work for the queue does it where it
//! runs. Or a value with no pool at all (a tx queue, [`Roaming::apart`]),
//! under the same one-thread-at-a-time rule.
//!
//! A [`Pool`] belongs to the thread that made it: its free list is touched
//! without atomics, and packets dropped elsewhere come back through the remote
//! stack. A [`Roaming`] keeps that rule while the thread changes: the pool's
//! thread is whoever holds the [`RoamGuard`], and nobody while nobody does.
//!
//! - [`enter`](Roaming::enter) takes the guard without waiting (a flag,
//!   `Acquire`) and makes the calling thread the pool's thread
//!   ([`Shared::set_owner`]); the guard's drop makes it nobody's again and
//!   lets the flag go (`Release`). So the free list, the pool's counters and
//!   every `!Send` part of the value are touched by one thread at a time, and
//!   each holder sees what the one before wrote.
//! - While a thread holds the guard, packets of the pool dropped on it go to
//!   the free list; dropped anywhere else (or on it once the guard is gone),
//!   they go through the remote stack, as for any pool.
//! - The guard is neither `Send` nor `Sync`, so it cannot be kept across an
//!   `.await` of a future that must be `Send`: a task holds it only inside
//!   one poll.

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering::*};

use super::inner::{thread_token, Shared};
use super::Pool;

/// A value holding handles of one pool (or of none), movable between threads
/// as a whole and used by one thread at a time ([module docs](self)).
pub(crate) struct Roaming<T> {
    busy: AtomicBool,
    /// The pool's memory; the pool's handle inside `value` keeps it alive.
    /// `None` for a value without a pool ([`apart`](Self::apart)).
    sh: Option<NonNull<Shared>>,
    value: UnsafeCell<ManuallyDrop<T>>,
}

// SAFETY: `value` is reached only through a guard, and one thread holds the
// guard at a time (`busy`, Acquire/Release); `new`'s contract makes the value
// free of ties to a thread other than its pool's, which the guard moves.
unsafe impl<T> Send for Roaming<T> {}
// SAFETY: as above; `&Roaming` gives nothing but `enter` and `busy` (a
// relaxed look at the flag).
unsafe impl<T> Sync for Roaming<T> {}

impl<T> std::fmt::Debug for Roaming<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Roaming")
            .field("busy", &self.busy.load(Relaxed))
            .finish()
    }
}

impl<T> Roaming<T> {
    /// Wraps `value`, which holds handles of `pool` (and of no other pool).
    ///
    /// # Safety
    /// Everything in `value` that is not `Send` (the pool's handles, queues,
    /// reference counts) is reachable only through `value`: no handle of
    /// `pool`, no clone of an `Rc` inside, is kept anywhere else (the caller
    /// made the pool and the queues for this and holds none back), and
    /// nothing in it depends on the thread it runs on other than through its
    /// pool (no thread-local state, no io_uring ring tied to its issuer).
    pub(crate) unsafe fn new(pool: &Pool, value: T) -> Roaming<T> {
        let sh = pool.inner.shared();
        // SAFETY: the pool's handle inside `value` keeps the memory alive.
        unsafe { sh.as_ref() }.set_owner(0);
        Roaming {
            busy: AtomicBool::new(false),
            sh: Some(sh),
            value: UnsafeCell::new(ManuallyDrop::new(value)),
        }
    }

    /// Wraps `value`, which holds no pool handle (packets, which go home
    /// from any thread, are fine): one thread at a time uses it, and no
    /// pool's thread changes with the guard.
    ///
    /// # Safety
    /// As for [`new`](Self::new), without the pool: everything in `value`
    /// that is not `Send` is reachable only through `value`, and nothing in
    /// it depends on the thread it runs on.
    pub(crate) unsafe fn apart(value: T) -> Roaming<T> {
        Roaming {
            busy: AtomicBool::new(false),
            sh: None,
            value: UnsafeCell::new(ManuallyDrop::new(value)),
        }
    }

    /// Makes the thread with `token` (0: none) the pool's thread, if the
    /// value has a pool.
    fn set_owner(&self, token: u64) {
        if let Some(sh) = self.sh {
            // SAFETY: the pool's handle inside the value keeps the memory
            // alive while the value lives, which it does while `self` does.
            unsafe { sh.as_ref() }.set_owner(token);
        }
    }

    /// The value, on this thread until the guard drops; `None` while another
    /// thread holds it.
    pub(crate) fn enter(&self) -> Option<RoamGuard<'_, T>> {
        self.busy
            .compare_exchange(false, true, Acquire, Relaxed)
            .ok()?;
        self.set_owner(thread_token());
        Some(RoamGuard {
            r: self,
            _here: PhantomData,
        })
    }

    /// Whether a thread holds the value now (a hint: it may change at once).
    pub(crate) fn busy(&self) -> bool {
        self.busy.load(Relaxed)
    }
}

impl<T> Drop for Roaming<T> {
    fn drop(&mut self) {
        // `&mut self`: no guard exists. The value (its queues, then its pool)
        // is dropped on this thread, which becomes the pool's for that.
        self.set_owner(thread_token());
        // SAFETY: dropped once, here; never used again.
        unsafe { ManuallyDrop::drop(self.value.get_mut()) }
    }
}

/// The value of a [`Roaming`], held by this thread.
pub(crate) struct RoamGuard<'a, T> {
    r: &'a Roaming<T>,
    _here: PhantomData<*const ()>,
}

impl<T> std::ops::Deref for RoamGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard is the only way to the value, and there is one.
        unsafe { &*self.r.value.get() }
    }
}

impl<T> std::ops::DerefMut for RoamGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this borrow the only one.
        unsafe { &mut *self.r.value.get() }
    }
}

impl<T> Drop for RoamGuard<'_, T> {
    fn drop(&mut self) {
        self.r.set_owner(0);
        self.r.busy.store(false, Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{Packet, PoolConfig};
    use std::sync::Arc;

    struct Held {
        pool: Pool,
        kept: Vec<Packet>,
    }

    fn roaming(count: u32) -> Roaming<Held> {
        let pool = Pool::new(
            PoolConfig::default()
                .count(count)
                .buf_size(256)
                .headroom(32),
        )
        .unwrap();
        let held = Held {
            pool: pool.clone(),
            kept: Vec::new(),
        };
        // SAFETY: `pool` is dropped right after; `held` has the only handle.
        let r = unsafe { Roaming::new(&pool, held) };
        drop(pool);
        r
    }

    #[test]
    fn one_holder_at_a_time() {
        let r = roaming(8);
        let g = r.enter().unwrap();
        assert!(r.enter().is_none());
        assert!(r.busy());
        drop(g);
        assert!(r.enter().is_some());
    }

    #[test]
    fn threads_take_turns_and_every_buffer_comes_back() {
        let r = Arc::new(roaming(64));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let r = r.clone();
                std::thread::spawn(move || {
                    let mut away = Vec::new();
                    for i in 0..2000u32 {
                        let Some(mut g) = r.enter() else {
                            std::thread::yield_now();
                            continue;
                        };
                        // Allocate on whichever thread holds it; keep some,
                        // free some here (the free list), carry some away.
                        match g.pool.alloc_from(&[t as u8; 300]) {
                            Ok(p) if i % 3 == 0 => away.push(p),
                            Ok(p) => g.kept.push(p),
                            Err(_) => {}
                        }
                        if g.kept.len() > 4 {
                            g.kept.clear();
                        }
                        drop(g);
                        // Dropped outside the guard: the remote stack.
                        if away.len() > 3 {
                            away.clear();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut g = r.enter().unwrap();
        g.kept.clear();
        assert_eq!(g.pool.available(), 64, "every buffer back");
    }

    #[test]
    fn dropped_on_another_thread_with_packets_out() {
        let r = roaming(16);
        let out = {
            let g = r.enter().unwrap();
            g.pool.alloc_from(b"lives on").unwrap()
        };
        std::thread::spawn(move || drop(r)).join().unwrap();
        assert_eq!(out.data(), b"lives on");
        drop(out);
    }

    #[test]
    fn a_side_apart_drops_the_pools_packets_while_another_thread_owns_it() {
        // The rx side (the pool) and the tx side (packets of that pool on
        // their way out) held by two threads at once, as task-driven queues
        // do: the tx holder's drops must take the remote path.
        let rx = Arc::new(roaming(32));
        // SAFETY: a vector of packets: no pool handle, nothing thread-bound.
        let tx: Arc<Roaming<Vec<Packet>>> = Arc::new(unsafe { Roaming::apart(Vec::new()) });
        let (to_tx, from_rx) = std::sync::mpsc::sync_channel::<Packet>(8);
        let reader = {
            let rx = rx.clone();
            std::thread::spawn(move || {
                for i in 0..5000u32 {
                    let Some(g) = rx.enter() else { continue };
                    if let Ok(p) = g.pool.alloc_from(&i.to_ne_bytes()) {
                        drop(g);
                        if to_tx.send(p).is_err() {
                            return;
                        }
                    }
                }
            })
        };
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        let Some(mut g) = tx.enter() else {
                            std::thread::yield_now();
                            continue;
                        };
                        g.clear();
                    }
                })
            })
            .collect();
        for p in from_rx {
            loop {
                if let Some(mut g) = tx.enter() {
                    g.push(p);
                    if g.len() > 4 {
                        g.clear();
                    }
                    break;
                }
                std::thread::yield_now();
            }
        }
        reader.join().unwrap();
        for w in writers {
            w.join().unwrap();
        }
        tx.enter().unwrap().clear();
        assert!(!tx.busy());
        assert_eq!(
            rx.enter().unwrap().pool.available(),
            32,
            "every buffer back"
        );
    }

    const _: () = {
        const fn send_sync<T: Send + Sync>() {}
        send_sync::<Roaming<Held>>();
    };
}
