//! Serving a TAP or TUN port to other processes: a queue is its fd (a dup),
//! and the attaching process runs its own engines on it, with its own engine
//! settings; the offloads are the serving port's (the server tells them).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use super::device::{Shape, TapDevice};
use crate::device::lend::{not_a_queue, take_fds, Description, LocalEngine};
use crate::device::{keep_fd, Device, Lend, Offloads, Opened, QueueFd};
use crate::error::{Error, Result};
use crate::queue::QueueShared;
use crate::sys::tun;
use crate::wire::layout::Link;

impl Lend for TapDevice {
    /// Whether the queues carry a virtio-net header (beyond the kind and the
    /// offloads every port sends).
    fn describe(&self) -> Vec<(&'static str, String)> {
        let v = if self.vnet_hdr() { "on" } else { "off" };
        vec![("vnet_hdr", v.to_string())]
    }

    /// The queue's fd.
    fn lend_queue(&self, _iface: &Opened, q: &QueueShared) -> Result<Vec<OwnedFd>> {
        let fd = q.fd.as_fd().try_clone_to_owned();
        Ok(vec![fd.map_err(|e| Error::sys("dup queue fd", e))?])
    }

    /// The fd is the serving process's queue too: closing it here must not
    /// detach that queue, so it is released as is.
    fn adopt_queue(&self, iface: &Opened, fds: Vec<OwnedFd>) -> Result<QueueFd> {
        let [fd] = take_fds::<1>(fds)?;
        let what = if self.info().link == Link::Ip {
            "a TUN queue"
        } else {
            "a TAP queue"
        };
        let (name, flags) = tun::get_iff(fd.as_fd())
            .map_err(|e| not_a_queue(iface, what, format!("TUNGETIFF: {e}")))?;
        let want = if self.info().link == Link::Ip {
            libc::IFF_TUN
        } else {
            libc::IFF_TAP
        };
        let hdr = if self.vnet_hdr() {
            libc::IFF_VNET_HDR
        } else {
            0
        };
        let mask = libc::IFF_TUN | libc::IFF_TAP | libc::IFF_VNET_HDR;
        if name != iface.name || flags & mask != want | hdr {
            return Err(not_a_queue(
                iface,
                what,
                format!("it is a queue of {name} (flags {flags:#x})"),
            ));
        }
        Ok(QueueFd {
            fd,
            extra: None,
            release: keep_fd,
        })
    }
}

/// A served TAP port's device in the attaching process.
pub(super) fn rebuild_tap(d: &Description, local: &LocalEngine) -> Result<Arc<dyn Device>> {
    rebuild(false, d, local)
}

/// A served TUN port's device in the attaching process.
pub(super) fn rebuild_tun(d: &Description, local: &LocalEngine) -> Result<Arc<dyn Device>> {
    rebuild(true, d, local)
}

fn rebuild(tun: bool, d: &Description, local: &LocalEngine) -> Result<Arc<dyn Device>> {
    let offloads = Offloads::from_names(d.get("offloads").unwrap_or(""));
    // Absent from an older server's description: its queues had the header.
    let vnet_hdr = d.get("vnet_hdr") != Some("off");
    let shape = Shape {
        tun,
        created: false,
        vnet_hdr,
    };
    Ok(Arc::new(TapDevice::new(
        shape,
        offloads,
        Vec::new(),
        local.backend,
        local.ring,
        None,
    )))
}
