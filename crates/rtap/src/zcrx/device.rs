//! What rtap can see of a device's zcrx prerequisites before registering, and
//! the advice given when the kernel refuses: the interface must exist, the queue
//! must be one of its rx queues, and the driver must support zcrx (a real NIC
//! with the queue API, header/data split and a flow rule steering the flows to
//! the queue). Everything is read in the calling thread's network namespace
//! (netlink and ethtool, not sysfs, which shows the namespace it was mounted in).

use crate::error::{Error, Result};

/// Drivers known to support zcrx (Linux 6.15 - 7.3).
const DRIVERS: &str = "bnxt_en, mlx5_core, gve, fbnic";

/// Checks `iface` exists and has rx queue `queue`; returns its ifindex. A
/// missing interface or queue is the caller's mistake (`InvalidConfig`), never
/// a reason to fall back.
pub(crate) fn check(iface: &str, queue: u32) -> Result<u32> {
    let Some(idx) = crate::sys::fd::if_nametoindex(iface) else {
        return Err(Error::InvalidConfig {
            field: "iface",
            why: format!("{iface:?}: no such interface in this network namespace"),
        });
    };
    let rx = crate::netlink::Netlink::open()
        .and_then(|nl| nl.get_link(idx))
        .map(|l| l.rx_queues)
        .unwrap_or(0);
    if rx > 0 && queue >= rx {
        return Err(Error::InvalidConfig {
            field: "queue",
            why: format!(
                "{iface} has no rx queue {queue}: it has {rx} (0..={}); `ethtool -L {iface} combined N` changes the count",
                rx - 1
            ),
        });
    }
    Ok(idx)
}

/// Why the kernel said EOPNOTSUPP, and what to change.
pub(crate) fn unsupported_hint(iface: &str) -> String {
    let setup = format!(
        "zcrx needs a NIC driver with the queue API ({DRIVERS}), header/data split \
         (`ethtool -G {iface} tcp-data-split on hds-thresh 0`) and a flow rule steering \
         the flows to the queue (`ethtool -N {iface} flow-type tcp6 dst-port PORT action QUEUE`); \
         or use device-less mode (nodev, Linux >= 7.1) or copy mode"
    );
    match crate::sys::ethtool::driver(iface) {
        Some((d, bus)) if !bus.is_empty() => format!(
            "the device does not support zcrx (driver {d} at {bus}, or header/data split is off); {setup}"
        ),
        Some((d, _)) => format!(
            "the device does not support zcrx: {iface} is a virtual device (driver {d}) with no DMA queue; {setup}"
        ),
        None => format!(
            "the device does not support zcrx: {iface} is a virtual device (loopback or similar) with no DMA queue; {setup}"
        ),
    }
}
