//! How to attach to a port another process serves.

use super::proto::QueueSel;
use crate::backend::uring::RingConfig;
use crate::backend::BackendKind;
use crate::device::options::port_option_setters;
use crate::device::PortOptions;
use crate::error::{Error, Result};

/// A port whose queues another process serves ([`Port::serve`](crate::Port::serve)):
/// the socket, which queues, and this process's own engine settings. The queue
/// count comes from the queues granted; the link, the offloads and the
/// namespace are the serving process's.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedConfig {
    /// The serving socket: a path, or `@name` (abstract).
    pub path: String,
    /// Which of the served port's queues. Default: all.
    pub queues: QueueSel,
    /// Data-path backend of this process. Default io_uring.
    pub backend: BackendKind,
    /// io_uring options of this process's rings.
    pub ring: RingConfig,
    /// Burst size and max frame (queues, namespace and link settings are not
    /// this side's to choose).
    pub port: PortOptions,
    /// Users the serving process may run as (`SO_PEERCRED` of the socket's
    /// other end): anyone can take an abstract name, or a path in a directory
    /// they write to. Default: this process's effective uid and root.
    pub server_uids: Vec<u32>,
}

/// This process's effective uid and root.
pub(crate) fn default_server_uids() -> Vec<u32> {
    let me = crate::sys::fd::euid();
    if me == 0 {
        vec![0]
    } else {
        vec![me, 0]
    }
}

impl SharedConfig {
    /// Attaches every queue served at `path`.
    pub fn new(path: &str) -> SharedConfig {
        SharedConfig {
            path: path.into(),
            queues: QueueSel::All,
            backend: BackendKind::Uring,
            ring: RingConfig::default(),
            port: PortOptions::default(),
            server_uids: default_server_uids(),
        }
    }

    /// Sets the users the serving process may run as.
    pub fn server_uids(mut self, uids: &[u32]) -> Self {
        self.server_uids = uids.to_vec();
        self
    }

    /// Attaches these queues (the serving port's numbers).
    pub fn queue_list(mut self, q: &[u16]) -> Self {
        self.queues = QueueSel::List(q.to_vec());
        self
    }

    /// Sets the backend.
    pub fn backend(mut self, b: BackendKind) -> Self {
        self.backend = b;
        self
    }

    /// Sets the io_uring options.
    pub fn ring(mut self, r: RingConfig) -> Self {
        self.ring = r;
        self
    }

    port_option_setters!(port);

    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, why: &str| {
            Err(Error::InvalidConfig {
                field,
                why: why.into(),
            })
        };
        if self.path.is_empty() || self.path.len() > 107 {
            return bad("path", "a socket path or @name of 1..=107 bytes");
        }
        let o = &self.port;
        if o.netns.is_some() {
            return bad(
                "netns",
                "a shared port lives where the serving process put it",
            );
        }
        if o.mtu.is_some() || o.mac.is_some() || o.promisc.is_some() {
            return bad(
                "mtu",
                "the link (MTU, MAC, promiscuous mode) is the serving process's",
            );
        }
        self.ring.validate()
    }
}
