//! A pool per thread for packets that tasks make themselves (a reply, a
//! re-encoded frame): a task on a multi-thread runtime cannot keep a
//! [`Pool`] across an `.await` (a pool stays on its thread), but the packets
//! it takes from this thread's pool are `Send` and may go anywhere.

use std::cell::RefCell;

use crate::error::Result;
use crate::pool::{Packet, Pool, PoolConfig};

thread_local! {
    static POOL: RefCell<Option<Pool>> = const { RefCell::new(None) };
}

/// Runs `f` with the calling thread's own pool, made on first use with
/// `cfg` (a later call's `cfg` is ignored). It is dropped when the thread
/// ends; packets taken from it that live on go back (and its memory goes)
/// when the last one is dropped.
pub fn with_local_pool<R>(cfg: PoolConfig, f: impl FnOnce(&Pool) -> R) -> Result<R> {
    POOL.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            *slot = Some(Pool::new(cfg)?);
        }
        Ok(f(slot.as_ref().expect("made above")))
    })
}

/// A packet holding a copy of `bytes`, from the calling thread's pool (made
/// on first use with the default [`PoolConfig`]).
pub fn alloc_from(bytes: &[u8]) -> Result<Packet> {
    with_local_pool(PoolConfig::default(), |p| p.alloc_from(bytes))?
}
