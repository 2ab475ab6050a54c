//! Serving an AF_PACKET port to other processes. A queue travels as its rx
//! socket (whose ring the attached process maps again: the reader's position
//! lives in the shared counter block, and a reader that starts scans the ring
//! for the oldest frame, so a holder killed mid-burst leaves nothing stuck) plus
//! a tx socket the server makes for that process (the kernel's place in a tx
//! ring cannot be read back, so tx rings are never handed over). The ring
//! geometry travels as words; the attaching side runs the ring engines with
//! the `sendto` kick (the `shared:` spec's engine keys, `backend`, `ring`,
//! `sqpoll`, `rx_mode`, are for served TAP and TUN ports, and are ignored
//! here, with a warning). Kernel statistics that clear on read
//! (`PACKET_STATISTICS`) are read by whichever process asks, and each adds what
//! it read to the counter block lent with the queue, as the engines' own
//! counters (kicks, skipped outgoing frames, ...) are: the serving port's
//! figures are exact totals, the holder's are exact since it attached.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use super::config::{PacketConfig, Tpacket};
use super::device::PacketDevice;
use super::queue::{PacketQueue, Positions};
use super::ring::Ring;
use crate::device::lend::{not_a_queue, take_fds, Description, LocalEngine};
use crate::device::{keep_fd, Device, Lend, Opened, QueueFd};
use crate::error::{Error, Result};
use crate::queue::QueueShared;
use crate::sys::fd as sysfd;
use crate::sys::packet::{self as packet_sys, Mapping};

impl Lend for PacketDevice {
    /// The ring geometry, TPACKET version, offloads and qdisc bypass.
    fn describe(&self) -> Vec<(&'static str, String)> {
        let (tp, tov) = match self.cfg.tpacket {
            Tpacket::V2 => (2, 0),
            Tpacket::V3 { block_timeout_ms } => (3, block_timeout_ms),
        };
        vec![
            ("frame_size", self.geom.frame_size.to_string()),
            ("frames", self.geom.frame_count.to_string()),
            ("block_size", self.geom.block_size.to_string()),
            ("tpacket", tp.to_string()),
            ("block_timeout", tov.to_string()),
            ("offload", u8::from(self.cfg.offload).to_string()),
            ("qdisc_bypass", u8::from(self.cfg.qdisc_bypass).to_string()),
        ]
    }

    /// The queue's rx socket (its ring, in the fanout group) and a new tx
    /// socket for the other process.
    fn lend_queue(&self, iface: &Opened, q: &QueueShared) -> Result<Vec<OwnedFd>> {
        let rx = q.fd.as_fd().try_clone_to_owned();
        let rx = rx.map_err(|e| Error::sys("dup queue fd", e))?;
        let (tx, _map) = self.tx_socket(iface)?;
        Ok(vec![rx, tx])
    }

    /// A queue from the bound rx socket (in the port's fanout group, ring set
    /// up) and the tx socket made for this process; both rings mapped here.
    fn adopt_queue(&self, iface: &Opened, fds: Vec<OwnedFd>) -> Result<QueueFd> {
        let [rx, tx] = take_fds::<2>(fds)?;
        for (fd, what) in [
            (&rx, "an AF_PACKET rx socket"),
            (&tx, "an AF_PACKET tx socket"),
        ] {
            let kind = sysfd::socket_kind(fd.as_fd());
            if kind.as_ref().ok() != Some(&(libc::AF_PACKET, libc::SOCK_RAW)) {
                return Err(not_a_queue(
                    iface,
                    what,
                    format!("domain and type {kind:?}"),
                ));
            }
            match packet_sys::bound_ifindex(fd.as_fd()) {
                Ok(i) if i as u32 == iface.ifindex => {}
                other => {
                    return Err(not_a_queue(iface, what, format!("bound to {other:?}")));
                }
            }
        }
        let bytes = self.geom.ring_bytes();
        let map = |fd: &OwnedFd, op| {
            Mapping::new(fd.as_fd(), bytes)
                .map(Arc::new)
                .map_err(|e| Error::sys(op, e))
        };
        let rx_map = map(&rx, "mmap rx ring")?;
        let tx_map = map(&tx, "mmap tx ring")?;
        let pq = PacketQueue {
            rx: Ring::new(rx_map, 0, self.geom),
            tx: Ring::new(tx_map, 0, self.geom),
            tx_sock: tx,
            v3: matches!(self.cfg.tpacket, Tpacket::V3 { .. }),
            fanned: AtomicBool::new(true),
            saved: Mutex::new(Positions::default()),
        };
        Ok(QueueFd {
            fd: rx,
            extra: Some(Arc::new(pq)),
            release: keep_fd,
        })
    }
}

/// A served AF_PACKET port's device in the attaching process, laid out as the
/// server's words say (kick by `sendto`).
pub(super) fn rebuild(d: &Description, local: &LocalEngine) -> Result<Arc<dyn Device>> {
    if local.ring.sqpoll.is_some() {
        tracing::warn!("a served AF_PACKET port runs the sendto kick here: sqpoll ignored");
    }
    let tpacket = match d.num::<u32>("tpacket")? {
        3 => Tpacket::V3 {
            block_timeout_ms: d.num("block_timeout")?,
        },
        _ => Tpacket::V2,
    };
    let cfg = PacketConfig::new("")
        .frame_size(d.num("frame_size")?)
        .frame_count(d.num("frames")?)
        .block_size(d.num("block_size")?)
        .tpacket(tpacket)
        .offload(d.num::<u8>("offload")? == 1)
        .qdisc_bypass(d.num::<u8>("qdisc_bypass")? == 1);
    Ok(Arc::new(PacketDevice::new(&cfg)?))
}
