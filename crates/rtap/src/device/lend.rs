//! A device's half of sharing a port between processes. The sharing code
//! (`share/`) carries what is described here over its socket and never looks
//! inside: which fds give another process a queue, what words describe the
//! device so the other side can rebuild it, and how the rebuilt device turns
//! the fds it received back into a queue.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use super::{Device, Opened, QueueFd};
use crate::backend::uring::RingConfig;
use crate::backend::BackendKind;
use crate::error::{Error, Result};
use crate::queue::QueueShared;

/// How a device lends its queues to another process.
pub(crate) trait Lend: Send + Sync {
    /// Serving side: what the other side needs to rebuild the device, as
    /// `key=value` words (no spaces), besides what every port sends (its
    /// kind, name, ifindex and offloads).
    fn describe(&self) -> Vec<(&'static str, String)>;

    /// Serving side: the fds that give another process queue `q` (run in the
    /// port's namespace).
    fn lend_queue(&self, iface: &Opened, q: &QueueShared) -> Result<Vec<OwnedFd>>;

    /// Attaching side, on the rebuilt device: the queue from the fds
    /// received for it (their number and order as `lend_queue` made them).
    /// Each fd is checked to be what it should be, a queue of `iface`: a
    /// server that sent others is refused (`Error::ShareRefused`).
    fn adopt_queue(&self, iface: &Opened, fds: Vec<OwnedFd>) -> Result<QueueFd>;
}

/// Rebuilds, in an attaching process, the device a served port runs on, from
/// the words its server sent and this process's own engine settings.
pub(crate) type Rebuild = fn(&Description, &LocalEngine) -> Result<Arc<dyn Device>>;

/// The engine settings of the attaching process (its `shared:` spec's
/// `backend`, `ring`, `sqpoll`, `rx_mode`), for devices whose engines take them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LocalEngine {
    pub backend: BackendKind,
    pub ring: RingConfig,
}

/// The words a server sent about its port, as the attaching side reads them.
/// They come from another process: every value is checked where it is read.
#[derive(Clone, Debug, Default)]
pub(crate) struct Description {
    words: Vec<(String, String)>,
}

impl Description {
    pub(crate) fn new(words: Vec<(String, String)>) -> Description {
        Description { words }
    }

    /// The value of `key`, if sent.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.words
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The number under `key`; an error naming the key if it is missing or not
    /// a number.
    pub(crate) fn num<T: std::str::FromStr>(&self, key: &str) -> Result<T> {
        self.get(key)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::InvalidConfig {
                field: "served port",
                why: format!("the server sent no valid {key}"),
            })
    }
}

/// Takes exactly `N` fds, in order, or refuses the shape.
/// The refusal of an fd that is not what the server said it sends.
pub(crate) fn not_a_queue(iface: &Opened, what: &str, why: String) -> Error {
    Error::InvalidConfig {
        field: "queues",
        why: format!(
            "the server sent an fd that is not {what} of {} (ifindex {}): {why}",
            iface.name, iface.ifindex
        ),
    }
}

pub(crate) fn take_fds<const N: usize>(fds: Vec<OwnedFd>) -> Result<[OwnedFd; N]> {
    fds.try_into()
        .map_err(|v: Vec<OwnedFd>| Error::InvalidConfig {
            field: "queues",
            why: format!(
                "the server sent {} fd(s) for a queue where this device takes {N}",
                v.len()
            ),
        })
}
