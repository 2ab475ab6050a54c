//! The pool's free list: a fixed-capacity LIFO stack of buffer indices.
//!
//! Pure code: no memory, no fds. LIFO order keeps recently used (cache-warm)
//! buffers in circulation.

/// A stack of free buffer indices that never reallocates after construction.
#[derive(Debug)]
pub struct FreeStack {
    items: Vec<u32>,
    capacity: u32,
}

impl FreeStack {
    /// A full stack holding `0..capacity`, with index 0 on top.
    pub fn full(capacity: u32) -> FreeStack {
        let mut items = Vec::with_capacity(capacity as usize);
        items.extend((0..capacity).rev());
        FreeStack { items, capacity }
    }

    /// Takes one index.
    #[inline]
    pub fn pop(&mut self) -> Option<u32> {
        self.items.pop()
    }

    /// Returns one index.
    ///
    /// # Panics
    /// If more indices come back than the stack holds (a double free): that is a bug
    /// in rtap, and continuing would hand one buffer to two owners.
    #[inline]
    pub fn push(&mut self, idx: u32) {
        assert!(idx < self.capacity, "buffer index {idx} out of range");
        assert!(
            self.items.len() < self.capacity as usize,
            "buffer pool double free of index {idx}"
        );
        self.items.push(idx);
    }

    /// Takes `n` indices at once into `out`, or none if fewer than `n` are free.
    #[inline]
    pub fn pop_n(&mut self, n: usize, out: &mut [u32]) -> bool {
        if self.items.len() < n {
            return false;
        }
        let start = self.items.len() - n;
        out[..n].copy_from_slice(&self.items[start..]);
        self.items.truncate(start);
        true
    }

    /// Free indices.
    #[inline]
    pub fn len(&self) -> usize {
        self.items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn starts_full_and_pops_low_indices_first() {
        let mut s = FreeStack::full(4);
        assert_eq!(s.len(), 4);
        assert_eq!(s.pop(), Some(0));
        assert_eq!(s.pop(), Some(1));
        s.push(0);
        assert_eq!(s.pop(), Some(0));
    }

    #[test]
    fn pop_n_is_all_or_nothing() {
        let mut s = FreeStack::full(3);
        let mut out = [0u32; 4];
        assert!(!s.pop_n(4, &mut out));
        assert_eq!(s.len(), 3);
        assert!(s.pop_n(2, &mut out));
        assert_eq!(s.len(), 1);
    }

    #[test]
    #[should_panic(expected = "double free")]
    fn double_free_is_caught() {
        let mut s = FreeStack::full(2);
        s.push(1);
    }

    proptest! {
        /// Any interleaving of pops and pushes of held indices keeps every index
        /// either free or held, never both, never lost.
        #[test]
        fn conserves_indices(ops in proptest::collection::vec(any::<(bool, u8)>(), 0..400), cap in 1u32..64) {
            let mut s = FreeStack::full(cap);
            let mut held: Vec<u32> = Vec::new();
            for (take, k) in ops {
                if take {
                    if let Some(i) = s.pop() { held.push(i); }
                } else if !held.is_empty() {
                    let i = held.swap_remove(k as usize % held.len());
                    s.push(i);
                }
                prop_assert_eq!(s.len() + held.len(), cap as usize);
            }
            for i in held.drain(..) { s.push(i); }
            let mut all: Vec<u32> = std::iter::from_fn(|| s.pop()).collect();
            all.sort_unstable();
            prop_assert_eq!(all, (0..cap).collect::<Vec<_>>());
        }
    }
}
