//! Creating or attaching the kernel TAP interface and its per-queue fds.

use std::os::fd::{AsFd, OwnedFd};

use super::offloads::{negotiate, Offloads};
use crate::error::{Error, Result};
use crate::sys::{fd as sysfd, tun};
use crate::wire::vnet::VNET_HDR_LEN;

/// The interface after creation: a detached keep-alive fd plus identity.
pub(crate) struct Device {
    /// Keeps the interface alive while queues come and go; detached, so it carries no traffic.
    pub keepalive: OwnedFd,
    pub name: String,
    pub ifindex: u32,
    /// True if this port created the interface (false: attached to an existing one).
    pub created: bool,
    /// Offloads the kernel accepted.
    pub offloads: Offloads,
    /// Why some requested offloads were dropped.
    pub offload_notes: Vec<String>,
}

fn check_features(fd: &OwnedFd) -> Result<()> {
    let have =
        tun::features(fd.as_fd()).map_err(|e| Error::sys("TUNGETFEATURES", e))? as libc::c_int;
    for (flag, name) in [
        (libc::IFF_TAP, "IFF_TAP"),
        (libc::IFF_NO_PI, "IFF_NO_PI"),
        (libc::IFF_MULTI_QUEUE, "IFF_MULTI_QUEUE"),
        (libc::IFF_VNET_HDR, "IFF_VNET_HDR"),
    ] {
        if have & flag == 0 {
            return Err(Error::MissingTunFeature { feature: name });
        }
    }
    Ok(())
}

fn map_setiff(e: std::io::Error, name: &str, existed: bool) -> Error {
    match e.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::EBUSY) if existed => Error::IncompatibleInterface {
            name: name.to_string(),
        },
        Some(libc::EPERM) | Some(libc::EACCES) => Error::PermissionDenied {
            op: "TUNSETIFF (create or attach tap)",
        },
        _ => Error::sys("TUNSETIFF", e),
    }
}

/// Creates the interface (or attaches to it) and sets it up for vnet headers.
/// Who may attach later without CAP_NET_ADMIN.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Ownership {
    pub owner: Option<u32>,
    pub group: Option<u32>,
}

pub(crate) fn open(
    name: &str,
    attach: bool,
    persist: bool,
    offloads: Offloads,
    own: Ownership,
) -> Result<Device> {
    let existed = !name.contains('%') && sysfd::if_nametoindex(name).is_some();
    if attach && !existed {
        return Err(Error::NoSuchInterface {
            name: name.to_string(),
        });
    }
    let keepalive = tun::open_tun(false)?;
    check_features(&keepalive)?;
    let actual = tun::set_iff(keepalive.as_fd(), name, tun::TAP_FLAGS)
        .map_err(|e| map_setiff(e, name, existed))?;
    let fd = keepalive.as_fd();
    tun::set_vnet_hdr_size(fd, VNET_HDR_LEN).map_err(|e| Error::sys("TUNSETVNETHDRSZ", e))?;
    let (offloads, notes) = negotiate(offloads, |f| tun::set_offload(fd, f))
        .map_err(|e| Error::sys("TUNSETOFFLOAD", e))?;
    for n in &notes {
        tracing::info!("{actual}: {n}");
    }
    if let Some(uid) = own.owner {
        tun::set_owner(fd, uid).map_err(|e| Error::sys("TUNSETOWNER", e))?;
    }
    if let Some(gid) = own.group {
        tun::set_group(fd, gid).map_err(|e| Error::sys("TUNSETGROUP", e))?;
    }
    if persist {
        tun::set_persist(fd, true).map_err(|e| Error::sys("TUNSETPERSIST", e))?;
    }
    let ifindex = sysfd::if_nametoindex(&actual).ok_or_else(|| Error::DeviceVanished {
        name: actual.clone(),
        ifindex: 0,
    })?;
    tun::set_queue_attached(fd, false)
        .map_err(|e| Error::sys("TUNSETQUEUE detach keep-alive", e))?;
    Ok(Device {
        keepalive,
        name: actual,
        ifindex,
        created: !existed,
        offloads,
        offload_notes: notes,
    })
}

/// Opens one more queue fd on the interface called `name`.
///
/// Queue fds are always non-blocking, for every backend. The read/write backend
/// needs it to poll. io_uring needs it on kernels before 6.4, whose tun driver
/// does not declare `FMODE_NOWAIT`: io_uring then issues reads and writes on a
/// blocking tap fd from its io-wq worker threads, several at once, and a burst
/// of writes reaches the wire in any order. On an `O_NONBLOCK` fd io_uring
/// issues them inline, in submission order, as it does on newer kernels.
pub(crate) fn open_queue(name: &str, ifindex: u32) -> Result<OwnedFd> {
    let fd = tun::open_tun(true)?;
    let got =
        tun::set_iff(fd.as_fd(), name, tun::TAP_FLAGS).map_err(|e| match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => Error::PermissionDenied {
                op: "TUNSETIFF (attach queue)",
            },
            _ => Error::sys("TUNSETIFF (attach queue)", e),
        })?;
    // A rename by someone else between calls would make us attach to another device.
    if sysfd::if_nametoindex(&got) != Some(ifindex) {
        return Err(Error::DeviceVanished { name: got, ifindex });
    }
    Ok(fd)
}
