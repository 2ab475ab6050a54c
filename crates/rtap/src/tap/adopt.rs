//! Adopting queue fds opened elsewhere: the "a privileged helper opens the
//! interface, an unprivileged daemon runs it" setup. The helper creates (or
//! attaches to) the TUN or TAP and passes its queue fds on (inheritance,
//! `SCM_RIGHTS`); the daemon's port takes them ([`QueueFds`],
//! [`Port::from_fds`](crate::Port::from_fds), `fd=N` in a spec) instead of
//! opening `/dev/net/tun`, which needs `CAP_NET_ADMIN`.
//!
//! Every fd is checked with `TUNGETIFF` before use: a TUN/TAP queue (not any
//! fd), all of one interface, the kind the config says (TUN or TAP), and as
//! many as the port's queues. The port works on its own copies (`dup`): the
//! given fds stay the caller's. The opener must have asked for `IFF_NO_PI`
//! (no packet information in front of frames), as every TUN/TAP user but
//! the oldest does: the kernel's `TUNGETIFF` reports that flag on every
//! queue, set or not (seen on 6.18), so it cannot be checked here; a queue
//! with packet information would read its 4 bytes as the frame's first.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::sys::{fd as sysfd, tun};

/// Queue fds of a TUN or TAP interface opened elsewhere, one per queue pair,
/// for a port to adopt ([`TapConfig::fds`](super::TapConfig::fds)). Open them
/// with `IFF_NO_PI` (the kernel does not let rtap check it).
///
/// Made from fds the application owns ([`QueueFds::owned`]) or from fd
/// numbers of the process ([`QueueFds::numbers`], what `fd=N` in a spec
/// gives). Cloning it shares the fds; each port opened with it works on
/// copies of its own.
#[derive(Clone, Debug)]
pub struct QueueFds(Arc<Fds>);

#[derive(Debug)]
enum Fds {
    Owned(Vec<OwnedFd>),
    Numbers(Vec<RawFd>),
}

impl QueueFds {
    /// Fds the application owns (they close when the last clone of this goes).
    pub fn owned(fds: Vec<OwnedFd>) -> QueueFds {
        QueueFds(Arc::new(Fds::Owned(fds)))
    }

    /// Fd numbers of this process (inherited from a helper, say): checked
    /// and copied when a port opens; the numbers stay the caller's to close.
    pub fn numbers(fds: Vec<RawFd>) -> QueueFds {
        QueueFds(Arc::new(Fds::Numbers(fds)))
    }

    /// How many fds (queue pairs).
    pub fn len(&self) -> usize {
        match &*self.0 {
            Fds::Owned(v) => v.len(),
            Fds::Numbers(v) => v.len(),
        }
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The fd numbers (for messages).
    pub fn raw(&self) -> Vec<RawFd> {
        match &*self.0 {
            Fds::Owned(v) => v.iter().map(|f| f.as_raw_fd()).collect(),
            Fds::Numbers(v) => v.clone(),
        }
    }

    /// A copy of each fd, non-blocking (as every queue fd of rtap is).
    fn copies(&self) -> Result<Vec<OwnedFd>> {
        self.raw()
            .into_iter()
            .map(|n| {
                let fd = sysfd::dup_raw(n).map_err(|e| Error::NotTunQueue {
                    fd: n,
                    why: format!("not an open fd of this process ({e})"),
                })?;
                sysfd::set_nonblocking(fd.as_fd()).map_err(|e| Error::sys("O_NONBLOCK", e))?;
                Ok(fd)
            })
            .collect()
    }
}

impl PartialEq for QueueFds {
    /// The same fds: one set (clones), or the same fd numbers.
    fn eq(&self, other: &QueueFds) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.raw() == other.raw()
    }
}

impl Eq for QueueFds {}

/// What the fds turned out to be.
pub(super) struct Adopted {
    pub name: String,
    pub tun: bool,
    pub vnet_hdr: bool,
    pub fds: Vec<OwnedFd>,
}

/// A config adopting `fds`, of the kind (TUN or TAP) their interface is.
pub(super) fn config_for(fds: Vec<OwnedFd>) -> Result<super::TapConfig> {
    let first = fds.first().ok_or(Error::InvalidConfig {
        field: "fd",
        why: "no fds given".into(),
    })?;
    let (name, flags) = inspect(first.as_fd())?;
    let cfg = if flags & libc::IFF_TUN != 0 {
        super::TapConfig::tun(name)
    } else {
        super::TapConfig::new(name)
    };
    // Offloads where the fds carry the header (the spec's default).
    Ok(cfg
        .offloads(crate::device::Offloads::ALL)
        .fds(QueueFds::owned(fds)))
}

fn inspect(fd: BorrowedFd<'_>) -> Result<(String, libc::c_int)> {
    let n = fd.as_raw_fd();
    let (name, flags) = tun::get_iff(fd).map_err(|e| Error::NotTunQueue {
        fd: n,
        why: match e.raw_os_error() {
            Some(libc::EBADFD) => "a TUN/TAP fd attached to no interface (TUNSETIFF first)".into(),
            _ => format!("TUNGETIFF refused it ({e}): not a TUN/TAP queue"),
        },
    })?;
    Ok((name, flags))
}

/// Copies and checks `fds` for a port of the given kind (`tun`).
pub(super) fn adopt(fds: &QueueFds, tun_wanted: bool) -> Result<Adopted> {
    if fds.is_empty() {
        return Err(Error::InvalidConfig {
            field: "fd",
            why: "no fds given".into(),
        });
    }
    let copies = fds.copies()?;
    let (name, flags) = inspect(copies[0].as_fd())?;
    let tun = flags & libc::IFF_TUN != 0;
    if tun != tun_wanted {
        return Err(Error::IncompatibleInterface {
            name,
            want: if tun_wanted { "TUN" } else { "TAP" },
        });
    }
    for f in &copies[1..] {
        let (n, fl) = inspect(f.as_fd())?;
        if n != name || fl != flags {
            return Err(Error::NotTunQueue {
                fd: f.as_raw_fd(),
                why: format!("a queue of {n}, not of {name} as the first fd (all must be queues of one interface)"),
            });
        }
    }
    Ok(Adopted {
        name,
        tun,
        vnet_hdr: flags & libc::IFF_VNET_HDR != 0,
        fds: copies,
    })
}
