//! Running device setup inside another network namespace.
//!
//! A tap fd, and a netlink socket, stay bound to the namespace they were opened
//! in. So a port "in" another namespace only needs its setup done there: a scoped
//! helper thread enters the namespace (`setns` moves only that thread), does the
//! work and hands back the fds; the application's threads never move.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::sys::fd as sysfd;

/// Where a port's interface lives.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Netns {
    /// A named namespace, `/run/netns/NAME` (as made by `ip netns add NAME`).
    Named(String),
    /// A namespace file, e.g. `/proc/PID/ns/net`.
    Path(PathBuf),
    /// An open namespace fd; it is duplicated, the caller keeps its own.
    Fd(RawFd),
}

/// An open handle on a namespace.
#[derive(Debug)]
pub(crate) struct NsHandle(OwnedFd);

impl NsHandle {
    pub(crate) fn open(ns: &Netns) -> Result<NsHandle> {
        let fd = match ns {
            Netns::Named(n) => {
                if n.is_empty() || n.contains('/') {
                    return Err(Error::Config(format!("bad namespace name {n:?}")));
                }
                open_path(&PathBuf::from("/run/netns").join(n))?
            }
            Netns::Path(p) => open_path(p)?,
            Netns::Fd(fd) => sysfd::dup_raw(*fd).map_err(|e| Error::sys("dup netns fd", e))?,
        };
        Ok(NsHandle(fd))
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
            .map_err(|_| Error::Config("namespace helper thread panicked".into()))?
        })
    }
}

fn open_path(p: &std::path::Path) -> Result<OwnedFd> {
    std::fs::File::open(p)
        .map(OwnedFd::from)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Config(format!(
                "network namespace {} does not exist (create it with `ip netns add`)",
                p.display()
            )),
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
