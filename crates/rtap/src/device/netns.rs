//! Running device setup inside another network namespace.
//!
//! A tap fd, and a netlink socket, stay bound to the namespace they were opened
//! in. So a port "in" another namespace only needs its setup done there: a scoped
//! helper thread enters the namespace (`setns` moves only that thread), does the
//! work and hands back the fds; the application's threads never move.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::sys::fd as sysfd;

/// Where a port's interface lives.
#[derive(Clone, Debug)]
pub enum Netns {
    /// A named namespace, `/run/netns/NAME` (as made by `ip netns add NAME`).
    Named(String),
    /// A namespace file, e.g. `/proc/PID/ns/net`.
    Path(PathBuf),
    /// An open namespace fd (see [`Netns::from_fd`]).
    Fd(Arc<OwnedFd>),
}

impl Netns {
    /// A namespace given as an open fd; the fd is duplicated, the caller keeps its own.
    pub fn from_fd(fd: BorrowedFd<'_>) -> Result<Netns> {
        let own = fd
            .try_clone_to_owned()
            .map_err(|e| Error::sys("dup netns fd", e))?;
        Ok(Netns::Fd(Arc::new(own)))
    }
}

impl PartialEq for Netns {
    fn eq(&self, other: &Netns) -> bool {
        match (self, other) {
            (Netns::Named(a), Netns::Named(b)) => a == b,
            (Netns::Path(a), Netns::Path(b)) => a == b,
            (Netns::Fd(a), Netns::Fd(b)) => a.as_raw_fd() == b.as_raw_fd(),
            _ => false,
        }
    }
}

impl Eq for Netns {}

impl std::fmt::Display for Netns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Netns::Named(n) => f.write_str(n),
            Netns::Path(p) => write!(f, "{}", p.display()),
            Netns::Fd(fd) => write!(f, "fd {}", fd.as_raw_fd()),
        }
    }
}

/// An open handle on a namespace.
#[derive(Debug)]
pub(crate) struct NsHandle(OwnedFd);

impl NsHandle {
    pub(crate) fn open(ns: &Netns) -> Result<NsHandle> {
        let fd = match ns {
            Netns::Named(n) => {
                if n.is_empty() || n.contains('/') {
                    return Err(Error::BadNetns {
                        netns: n.clone(),
                        why: "not a namespace name (empty, or has a '/')",
                    });
                }
                open_path(ns, &PathBuf::from("/run/netns").join(n))?
            }
            Netns::Path(p) => open_path(ns, p)?,
            Netns::Fd(fd) => fd.try_clone().map_err(|e| Error::sys("dup netns fd", e))?,
        };
        Ok(NsHandle(fd))
    }

    /// Wraps a namespace fd received from elsewhere.
    pub(crate) fn from_fd(fd: OwnedFd) -> NsHandle {
        NsHandle(fd)
    }

    /// The calling thread's own namespace.
    pub(crate) fn current() -> Result<NsHandle> {
        std::fs::File::open("/proc/thread-self/ns/net")
            .map(|f| NsHandle(OwnedFd::from(f)))
            .map_err(|e| Error::sys("open /proc/thread-self/ns/net", e))
    }

    /// True if the calling thread is in this namespace.
    pub(crate) fn is_current(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let id = |m: std::fs::Metadata| (m.dev(), m.ino());
        let here = std::fs::metadata("/proc/thread-self/ns/net").map(id);
        let this = self
            .0
            .try_clone()
            .and_then(|fd| std::fs::File::from(fd).metadata())
            .map(id);
        matches!((here, this), (Ok(a), Ok(b)) if a == b)
    }

    /// Runs `f` in this namespace: right here if the calling thread is in it,
    /// else on a helper thread that enters it.
    pub(crate) fn run_here_or_in<T: Send>(
        &self,
        f: impl FnOnce() -> Result<T> + Send,
    ) -> Result<T> {
        if self.is_current() {
            f()
        } else {
            self.run(f)
        }
    }

    /// The namespace fd (to hand to another process).
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }

    /// Runs `f` on a thread inside the namespace and returns its result.
    pub(crate) fn run<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        let fd = self.0.as_fd();
        std::thread::scope(|s| {
            s.spawn(|| {
                sysfd::setns_net(fd).map_err(|e| Error::sys("setns(CLONE_NEWNET)", e))?;
                f()
            })
            .join()
            .map_err(|_| {
                Error::sys(
                    "network namespace helper thread",
                    std::io::Error::other("panicked"),
                )
            })?
        })
    }
}

fn open_path(ns: &Netns, p: &std::path::Path) -> Result<OwnedFd> {
    std::fs::File::open(p)
        .map(OwnedFd::from)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::BadNetns {
                netns: ns.to_string(),
                why: "does not exist (create it with `ip netns add`)",
            },
            _ => Error::sys("open network namespace", e),
        })
}

/// Runs `f` in `ns` if given, else right here.
pub(crate) fn in_ns<T: Send>(
    ns: Option<&NsHandle>,
    f: impl FnOnce() -> Result<T> + Send,
) -> Result<T> {
    match ns {
        Some(h) => h.run(f),
        None => f(),
    }
}

impl AsRawFd for NsHandle {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}
