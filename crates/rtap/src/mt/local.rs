//! A pool per thread for packets that tasks make themselves (a reply, a
//! re-encoded frame): a task on a multi-thread runtime cannot keep a
//! [`Pool`] across an `.await` (a pool stays on its thread), but the packets
//! it takes from this thread's pool are `Send` and may go anywhere.

use std::cell::RefCell;

use crate::error::{Error, Result};
use crate::pool::{Packet, Pool, PoolConfig};

thread_local! {
    static POOL: RefCell<Option<Pool>> = const { RefCell::new(None) };
}

/// Runs `f` with the calling thread's own pool, made on first use with
/// `cfg` (a later call's `cfg` is ignored). It is dropped when the thread
/// ends; packets taken from it that live on go back (and its memory goes)
/// when the last one is dropped.
pub fn with_local_pool<R>(cfg: PoolConfig, f: impl FnOnce(&Pool) -> R) -> Result<R> {
    // The pool handle is cloned out, so `f` may call this again.
    let pool = POOL
        .try_with(|slot| -> Result<Pool> {
            let mut slot = slot.borrow_mut();
            match &*slot {
                Some(p) => Ok(p.clone()),
                None => {
                    let p = Pool::new(cfg)?;
                    *slot = Some(p.clone());
                    Ok(p)
                }
            }
        })
        .map_err(|_| Error::Unsupported {
            feature: "a thread's own pool while the thread exits",
            hint: "allocate before the thread's local storage is torn down",
        })??;
    Ok(f(&pool))
}

/// A packet holding a copy of `bytes`, from the calling thread's pool (made
/// on first use with the default [`PoolConfig`]).
pub fn alloc_from(bytes: &[u8]) -> Result<Packet> {
    with_local_pool(PoolConfig::default(), |p| p.alloc_from(bytes))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_use_of_the_threads_pool() {
        let (a, b) = with_local_pool(PoolConfig::default().count(64), |p| {
            (
                p.alloc_from(b"outer").unwrap(),
                alloc_from(b"inner").unwrap(),
            )
        })
        .unwrap();
        assert_eq!((a.data(), b.data()), (&b"outer"[..], &b"inner"[..]));
        let cap = with_local_pool(PoolConfig::default(), |p| p.capacity()).unwrap();
        assert_eq!(cap, 64, "made once, with the first call's config");
    }
}
