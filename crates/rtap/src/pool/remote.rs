//! Buffers coming back to a pool from other threads, and the end of a pool
//! whose packets outlive it.
//!
//! A packet dropped on a thread other than its pool's pushes its buffers on a
//! lock-free stack (`head`, and one link per buffer in `next`): one
//! compare-and-swap per packet, whatever its segment count. The pool's thread
//! takes the whole stack with one swap when its own free list runs dry, so the
//! pool's thread never does an atomic read-modify-write per packet, and a
//! take-all has no ABA problem (nothing is ever popped one at a time).
//!
//! The pool's memory lives until its last handle is gone *and* every buffer is
//! back. `state` decides who frees it, without a lock:
//!
//! - the low bits count threads between [`enter`](Remote::enter) and
//!   [`leave`](Remote::leave) (pushing buffers back); only a thread that holds
//!   a packet enters, so none can enter once every buffer is back;
//! - `ORPHANED`: the pool's last handle is gone (its thread no longer frees
//!   locally: every packet goes through this stack);
//! - `RECLAIM`: one thread holds the free list of an orphaned pool, takes the
//!   stack into it, and frees the memory if every buffer is back and no
//!   thread is inside ([`finish`](Remote::finish)). Whoever makes the state
//!   "orphaned, nobody inside" takes `RECLAIM` in the same step (the last
//!   thread to leave, or the pool's handle going away);
//! - `DIRTY`: a thread left while `RECLAIM` was held (its buffers may have
//!   come after the holder took the stack): the holder takes it once more
//!   before letting go ([`release`](Remote::release)).
//!
//! The holder's last touch of the memory is the compare-and-swap that lets
//! `RECLAIM` go: from then on another thread may free it.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};

use super::NO_SEG;

const ORPHANED: u64 = 1 << 63;
const RECLAIM: u64 = 1 << 62;
const DIRTY: u64 = 1 << 61;
const INSIDE: u64 = DIRTY - 1;

/// The stack of buffers given back from other threads, and the state above.
pub(crate) struct Remote {
    head: AtomicU32,
    next: Box<[AtomicU32]>,
    state: AtomicU64,
}

impl Remote {
    /// An empty stack for `count` buffers.
    pub(crate) fn new(count: u32) -> Remote {
        Remote {
            head: AtomicU32::new(NO_SEG),
            next: (0..count).map(|_| AtomicU32::new(NO_SEG)).collect(),
            state: AtomicU64::new(0),
        }
    }

    /// A thread with buffers to give back starts.
    pub(crate) fn enter(&self) {
        self.state.fetch_add(1, Acquire);
    }

    /// Pushes a chain of buffers starting at `first`, whose links the caller
    /// gives (`chain_next`: the buffer after `i`, `NO_SEG` after the last).
    /// The caller owns them until this returns, and is between `enter` and
    /// `leave`.
    pub(crate) fn push(&self, first: u32, chain_next: impl Fn(u32) -> u32) {
        let mut last = first;
        // A chain holds each buffer once: at most `next.len()` links.
        for _ in 0..self.next.len() {
            let n = chain_next(last);
            if n == NO_SEG {
                break;
            }
            self.next[last as usize].store(n, Relaxed);
            last = n;
        }
        let mut h = self.head.load(Relaxed);
        loop {
            self.next[last as usize].store(h, Relaxed);
            // Release: the links (and the buffers' contents and segment
            // records) are visible to whoever takes the stack.
            match self.head.compare_exchange_weak(h, first, Release, Relaxed) {
                Ok(_) => return,
                Err(now) => h = now,
            }
        }
    }

    /// The thread is done. `true`: the pool is orphaned and this thread was the
    /// last inside, so it now holds `RECLAIM` and must reclaim. `false`: the
    /// caller must not touch the pool again.
    pub(crate) fn leave(&self) -> bool {
        let mut s = self.state.load(Relaxed);
        loop {
            let last = s & ORPHANED != 0 && s & RECLAIM == 0 && s & INSIDE == 1;
            let new = if last {
                ORPHANED | RECLAIM
            } else if s & RECLAIM != 0 {
                // The holder may have taken the stack before this thread's
                // push: it looks again.
                (s - 1) | DIRTY
            } else {
                s - 1
            };
            match self.state.compare_exchange_weak(s, new, AcqRel, Relaxed) {
                Ok(_) => return last,
                Err(now) => s = now,
            }
        }
    }

    /// The pool's last handle is gone. `true`: nobody is inside, and the
    /// caller now holds `RECLAIM`.
    pub(crate) fn orphan(&self) -> bool {
        let mut s = self.state.load(Relaxed);
        loop {
            let idle = s & INSIDE == 0 && s & RECLAIM == 0;
            let new = if idle {
                ORPHANED | RECLAIM
            } else {
                s | ORPHANED
            };
            match self.state.compare_exchange_weak(s, new, AcqRel, Relaxed) {
                Ok(_) => return idle,
                Err(now) => s = now,
            }
        }
    }

    /// Holding `RECLAIM` with every buffer back: `true` if nobody is inside
    /// either, so the memory may be freed (nothing can reach it any more).
    pub(crate) fn finish(&self) -> bool {
        // Acquire: every thread that was inside has left, and its buffers
        // (pushed before its Release leave) are visible.
        self.state.load(Acquire) & !DIRTY == ORPHANED | RECLAIM
    }

    /// Holding `RECLAIM` after taking the stack (`all_back`: every buffer is
    /// on the free list). `true`: keep it and take the stack again (a thread
    /// left since, or everything is back and nobody is inside any more).
    /// `false`: let go (the compare-and-swap is the last touch of the
    /// memory): threads still inside take over as the last leaves, and
    /// buffers still out come back through them.
    pub(crate) fn release(&self, all_back: bool) -> bool {
        let mut s = self.state.load(Acquire);
        loop {
            let (new, again) = if s & INSIDE != 0 {
                (s & !(RECLAIM | DIRTY), false)
            } else if s & DIRTY != 0 || all_back {
                (s & !DIRTY, true)
            } else {
                (ORPHANED, false)
            };
            match self.state.compare_exchange_weak(s, new, AcqRel, Acquire) {
                Ok(_) => return again,
                Err(now) => s = now,
            }
        }
    }

    /// Takes every buffer on the stack (one swap), calling `f` on each.
    pub(crate) fn take_all(&self, mut f: impl FnMut(u32)) -> usize {
        let mut i = self.head.swap(NO_SEG, Acquire);
        let mut n = 0;
        // Each buffer is on the stack at most once: at most `next.len()` steps.
        while i != NO_SEG && n < self.next.len() {
            let after = self.next[i as usize].load(Relaxed);
            f(i);
            n += 1;
            i = after;
        }
        n
    }

    /// True if buffers wait on the stack.
    pub(crate) fn pending(&self) -> bool {
        self.head.load(Relaxed) != NO_SEG
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_pushed_and_taken_whole() {
        let r = Remote::new(8);
        // Chain 1 -> 4 -> 6.
        let links = |i: u32| match i {
            1 => 4,
            4 => 6,
            _ => NO_SEG,
        };
        r.enter();
        r.push(1, links);
        r.push(3, |_| NO_SEG);
        assert!(!r.leave());
        let mut got = Vec::new();
        assert_eq!(r.take_all(|i| got.push(i)), 4);
        got.sort_unstable();
        assert_eq!(got, vec![1, 3, 4, 6]);
        assert_eq!(r.take_all(|_| ()), 0);
    }

    #[test]
    fn reclaim_goes_to_whoever_is_last() {
        let r = Remote::new(4);
        // Not orphaned: leaving never reclaims.
        r.enter();
        assert!(!r.leave());
        // Two inside when the handle goes: the second to leave reclaims.
        r.enter();
        r.enter();
        assert!(!r.orphan());
        assert!(!r.leave());
        assert!(r.leave());
        assert!(r.finish());
    }

    #[test]
    fn a_holder_letting_go_with_work_left_takes_it_again() {
        let r = Remote::new(4);
        assert!(r.orphan(), "nobody inside: the handle's drop reclaims");
        // A thread enters while RECLAIM is held and pushes.
        r.enter();
        r.push(2, |_| NO_SEG);
        assert!(!r.finish(), "someone inside");
        assert!(!r.leave(), "RECLAIM is held: the holder goes on");
        // The holder would let go, but a thread left meanwhile (its buffer
        // may have come after the holder looked): it keeps RECLAIM and looks
        // again.
        assert!(r.release(false));
        assert_eq!(r.take_all(|_| ()), 1);
        assert!(r.finish());
    }

    #[test]
    fn a_holder_lets_go_to_a_thread_inside() {
        let r = Remote::new(4);
        r.enter();
        assert!(!r.orphan(), "someone inside: no RECLAIM for the handle");
        assert!(r.leave(), "the last to leave reclaims");
        // Not everything back, a thread inside again: let go to it.
        r.enter();
        assert!(!r.release(false));
        assert!(r.leave(), "it takes over");
        // Nothing new, nobody inside, buffers still out: let go for good.
        assert!(!r.release(false));
        assert_eq!(r.state.load(Relaxed), ORPHANED);
    }

    #[test]
    fn concurrent_pushes_lose_nothing() {
        let n = 4096u32;
        let r = std::sync::Arc::new(Remote::new(n));
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let r = r.clone();
                std::thread::spawn(move || {
                    for i in (t..n).step_by(4) {
                        r.enter();
                        r.push(i, |_| NO_SEG);
                        r.leave();
                    }
                })
            })
            .collect();
        let mut seen = vec![false; n as usize];
        let mut total = 0;
        while total < n as usize {
            total += r.take_all(|i| {
                assert!(!seen[i as usize], "{i} twice");
                seen[i as usize] = true;
            });
        }
        for t in threads {
            t.join().unwrap();
        }
        assert!(seen.iter().all(|&s| s));
    }
}
