//! Configuration of an AF_PACKET port: which interface, the ring geometry, the
//! TPACKET version, fanout of several queues, and how tx frames are kicked.

use crate::backend::uring::SqPoll;
use crate::device::options::port_option_setters;
use crate::device::PortOptions;
use crate::error::{Error, Result};
use crate::queue::Kick;

/// Bytes of a TPACKET_V3 slot header plus its `sockaddr_ll` (`TPACKET3_HDRLEN`;
/// V2's is 52).
pub(crate) const V3_HDRLEN: u32 = 68;
/// Where frame data starts in a tx slot: the slot header without `sockaddr_ll`.
pub(crate) const TX_DATA_OFF: u32 = 32;

/// Default slot size without offloads: a 1518-byte frame and the slot header fit.
pub const DEFAULT_FRAME_SIZE: u32 = 2048;
/// Default slots per ring without offloads.
pub const DEFAULT_FRAME_COUNT: u32 = 512;
/// Default slot size with offloads: a 64 KiB coalesced frame (GRO on rx, TSO on
/// tx) with its virtio-net header and the slot header.
pub const DEFAULT_OFFLOAD_FRAME_SIZE: u32 = 65_536 + 256;
/// Default slots per ring with offloads.
pub const DEFAULT_OFFLOAD_FRAME_COUNT: u32 = 64;

/// How the kernel spreads incoming frames over the queues (sockets) of a port
/// (`PACKET_FANOUT`). With one queue there is no fanout group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FanoutMode {
    /// By flow hash: a flow stays on one queue (the default).
    #[default]
    Hash,
    /// Round robin.
    Lb,
    /// By the CPU the frame arrived on.
    Cpu,
    /// Fill one queue, then the next.
    Rollover,
    /// Random.
    Rnd,
    /// By the NIC's receive queue (`skb->queue_mapping`).
    Qm,
}

impl FanoutMode {
    /// The `PACKET_FANOUT_*` type.
    pub(crate) fn kernel_type(self) -> u32 {
        match self {
            FanoutMode::Hash => libc::PACKET_FANOUT_HASH,
            FanoutMode::Lb => libc::PACKET_FANOUT_LB,
            FanoutMode::Cpu => libc::PACKET_FANOUT_CPU,
            FanoutMode::Rollover => libc::PACKET_FANOUT_ROLLOVER,
            FanoutMode::Rnd => libc::PACKET_FANOUT_RND,
            FanoutMode::Qm => libc::PACKET_FANOUT_QM,
        }
    }

    /// The name spec strings use.
    pub fn name(self) -> &'static str {
        match self {
            FanoutMode::Hash => "hash",
            FanoutMode::Lb => "lb",
            FanoutMode::Cpu => "cpu",
            FanoutMode::Rollover => "rollover",
            FanoutMode::Rnd => "rnd",
            FanoutMode::Qm => "qm",
        }
    }

    /// Every mode, for parsers and help texts.
    pub const ALL: [FanoutMode; 6] = [
        FanoutMode::Hash,
        FanoutMode::Lb,
        FanoutMode::Cpu,
        FanoutMode::Rollover,
        FanoutMode::Rnd,
        FanoutMode::Qm,
    ];
}

/// The fanout group of a multi-queue port. The group id is one the kernel
/// picks unused (`PACKET_FANOUT_FLAG_UNIQUEID`), so two processes never join
/// each other's group by accident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Fanout {
    /// How frames are spread. Default [`FanoutMode::Hash`].
    pub mode: FanoutMode,
    /// Reassemble IP fragments before hashing, so a fragmented datagram stays
    /// on one queue (`PACKET_FANOUT_FLAG_DEFRAG`). Default on.
    pub defrag: bool,
    /// Send to another queue when the chosen one is full
    /// (`PACKET_FANOUT_FLAG_ROLLOVER`; not with [`FanoutMode::Rollover`]). Default off.
    pub rollover: bool,
}

impl Default for Fanout {
    fn default() -> Self {
        Fanout {
            mode: FanoutMode::Hash,
            defrag: true,
            rollover: false,
        }
    }
}

impl Fanout {
    /// A group spreading by `mode`, with the default flags.
    pub fn new(mode: FanoutMode) -> Fanout {
        Fanout {
            mode,
            ..Fanout::default()
        }
    }

    /// Sets `defrag`.
    pub fn defrag(mut self, on: bool) -> Self {
        self.defrag = on;
        self
    }

    /// Sets `rollover`.
    pub fn rollover(mut self, on: bool) -> Self {
        self.rollover = on;
        self
    }
}

/// The TPACKET version of the rx ring. The tx ring is always TPACKET_V2.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Tpacket {
    /// One frame per slot, handed over as soon as it is written: the choice for
    /// forwarding (the default).
    #[default]
    V2,
    /// Frames packed into blocks, a block handed over when full or after
    /// `block_timeout_ms` (0: the kernel's, 8 ms when it cannot tell the link
    /// speed): fewer wakeups for capture, up to that much latency. The port then
    /// uses a second socket for tx.
    V3 {
        /// Block retire timeout in ms.
        block_timeout_ms: u32,
    },
}

/// How to open an AF_PACKET port on an existing interface.
///
/// ```
/// use rtap::{Kick, PacketConfig};
/// let cfg = PacketConfig::new("veth0").queues(2).kick(Kick::Sendto).frame_count(1024);
/// assert!(cfg.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PacketConfig {
    /// Interface name (in the port's namespace), or empty with `ifindex` set.
    pub iface: String,
    /// Interface index, used when `iface` is empty.
    pub ifindex: Option<u32>,
    /// Fanout group of a multi-queue port.
    pub fanout: Fanout,
    /// Bytes per ring slot (a multiple of 16); 0: [`DEFAULT_FRAME_SIZE`], or
    /// [`DEFAULT_OFFLOAD_FRAME_SIZE`] with offloads. A received frame longer
    /// than the slot holds is counted as truncated, never delivered cut.
    pub frame_size: u32,
    /// Slots per ring (rx and tx each); 0: [`DEFAULT_FRAME_COUNT`], or
    /// [`DEFAULT_OFFLOAD_FRAME_COUNT`] with offloads.
    pub frame_count: u32,
    /// Bytes per ring block (a multiple of the page size, at least one slot);
    /// 0: the slot size rounded up to a page.
    pub block_size: u32,
    /// TPACKET version of the rx ring.
    pub tpacket: Tpacket,
    /// Sent frames skip the qdisc (`PACKET_QDISC_BYPASS`): faster, and other
    /// packet sockets on the interface no longer see them. Default off.
    pub qdisc_bypass: bool,
    /// How tx frames are kicked. Default [`Kick::Sendto`].
    pub kick: Kick,
    /// Submission-queue entries of the kick ring (one kick per burst). Default 64.
    pub sq_size: u32,
    /// The kick ring's SQPOLL thread: idle time before it sleeps, optional CPU.
    /// Ports with the same settings share one thread. Default 50 ms, unpinned.
    pub sqpoll: SqPoll,
    /// Checksum and segmentation offloads through a virtio-net header on every
    /// frame (`PACKET_VNET_HDR`): coalesced frames up to 64 KiB on rx with
    /// `rx_csum()`/`rx_gso()`, and the `TxRequest` checksum/TSO/USO requests on tx.
    /// Default off. Off, a tx queue refuses frames longer than the MTU allows
    /// (counted `oversized`), the MTU as read when the queue is taken: the
    /// kernel does not check it on send, so after an MTU change take the tx
    /// queues again.
    pub offload: bool,
    /// Queues, namespace, link settings: what every port has.
    pub port: PortOptions,
}

impl Default for PacketConfig {
    fn default() -> Self {
        PacketConfig {
            iface: String::new(),
            ifindex: None,
            fanout: Fanout::default(),
            frame_size: 0,
            frame_count: 0,
            block_size: 0,
            tpacket: Tpacket::V2,
            qdisc_bypass: false,
            kick: Kick::Sendto,
            sq_size: 64,
            sqpoll: SqPoll::new(50),
            offload: false,
            port: PortOptions::default(),
        }
    }
}

/// The ring geometry a configuration resolves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub frame_size: u32,
    pub frame_count: u32,
    pub block_size: u32,
}

impl Geometry {
    /// Slots per block.
    pub fn frames_per_block(&self) -> u32 {
        self.block_size / self.frame_size
    }

    /// Blocks per ring.
    pub fn blocks(&self) -> u32 {
        self.frame_count / self.frames_per_block()
    }

    /// Bytes of one ring.
    pub fn ring_bytes(&self) -> usize {
        self.blocks() as usize * self.block_size as usize
    }

    /// Byte offset of slot `i` in its ring.
    pub fn slot_offset(&self, i: u32) -> usize {
        let fpb = self.frames_per_block();
        (i / fpb) as usize * self.block_size as usize
            + (i % fpb) as usize * self.frame_size as usize
    }
}

impl PacketConfig {
    /// Defaults on the interface called `iface`.
    pub fn new(iface: impl Into<String>) -> PacketConfig {
        PacketConfig {
            iface: iface.into(),
            ..PacketConfig::default()
        }
    }

    /// Defaults on the interface with index `ifindex`.
    pub fn with_ifindex(ifindex: u32) -> PacketConfig {
        PacketConfig {
            ifindex: Some(ifindex),
            ..PacketConfig::default()
        }
    }

    /// Sets the fanout group.
    pub fn fanout(mut self, f: Fanout) -> Self {
        self.fanout = f;
        self
    }

    /// Sets the slot size.
    pub fn frame_size(mut self, bytes: u32) -> Self {
        self.frame_size = bytes;
        self
    }

    /// Sets the slots per ring.
    pub fn frame_count(mut self, n: u32) -> Self {
        self.frame_count = n;
        self
    }

    /// Sets the block size.
    pub fn block_size(mut self, bytes: u32) -> Self {
        self.block_size = bytes;
        self
    }

    /// Sets the rx ring's TPACKET version.
    pub fn tpacket(mut self, t: Tpacket) -> Self {
        self.tpacket = t;
        self
    }

    /// Sets `qdisc_bypass`.
    pub fn qdisc_bypass(mut self, on: bool) -> Self {
        self.qdisc_bypass = on;
        self
    }

    /// Sets the kick.
    pub fn kick(mut self, k: Kick) -> Self {
        self.kick = k;
        self
    }

    /// Sets the kick ring's submission-queue size.
    pub fn sq_size(mut self, n: u32) -> Self {
        self.sq_size = n;
        self
    }

    /// Sets the kick ring's SQPOLL thread settings.
    pub fn sqpoll(mut self, sp: SqPoll) -> Self {
        self.sqpoll = sp;
        self
    }

    /// Sets `offload`.
    pub fn offload(mut self, on: bool) -> Self {
        self.offload = on;
        self
    }

    /// Sets all the common port settings at once.
    pub fn port_options(mut self, o: PortOptions) -> Self {
        self.port = o;
        self
    }

    port_option_setters!(port);

    /// The ring geometry, defaults filled in, checked against the kernel's rules.
    pub(crate) fn geometry(&self) -> Result<Geometry> {
        let bad = |field, why: String| Err(Error::InvalidConfig { field, why });
        let frame_size = match self.frame_size {
            0 if self.offload => DEFAULT_OFFLOAD_FRAME_SIZE,
            0 => DEFAULT_FRAME_SIZE,
            n => n,
        };
        let frame_count = match self.frame_count {
            0 if self.offload => DEFAULT_OFFLOAD_FRAME_COUNT,
            0 => DEFAULT_FRAME_COUNT,
            n => n,
        };
        let page = crate::sys::mem::page_size() as u32;
        let block_size = match self.block_size {
            // A slot rounded up to a page (a size past 4 GiB is refused below).
            0 => frame_size.div_ceil(page).saturating_mul(page),
            n => n,
        };
        // Room for the slot header, the virtio-net header and a minimal frame.
        let min = V3_HDRLEN + 16 + 12 + 64;
        if frame_size % 16 != 0 {
            return bad(
                "frame_size",
                format!("{frame_size} must be a multiple of 16 (TPACKET_ALIGNMENT)"),
            );
        }
        if frame_size < min {
            return bad(
                "frame_size",
                format!("{frame_size} is too small: at least {min} (slot header, virtio-net header, a minimal frame)"),
            );
        }
        if block_size == 0 || block_size % page != 0 {
            return bad(
                "block_size",
                format!("{block_size} must be a multiple of the page size ({page})"),
            );
        }
        if block_size < frame_size {
            return bad(
                "block_size",
                format!(
                    "{block_size} is smaller than a slot ({frame_size}): a block holds whole slots"
                ),
            );
        }
        let fpb = block_size / frame_size;
        if frame_count == 0 || frame_count % fpb != 0 {
            return bad(
                "frame_count",
                format!("{frame_count} must be a positive multiple of the slots per block ({fpb} = block_size {block_size} / frame_size {frame_size})"),
            );
        }
        if frame_count / fpb > 1 << 20 {
            return bad("frame_count", format!("{frame_count} slots is too many"));
        }
        Ok(Geometry {
            frame_size,
            frame_count,
            block_size,
        })
    }

    /// Checks everything that can be checked without the kernel.
    pub fn validate(&self) -> Result<()> {
        if self.iface.is_empty() && self.ifindex.is_none() {
            return Err(Error::InvalidConfig {
                field: "iface",
                why: "give an interface name (or an ifindex)".into(),
            });
        }
        if !self.iface.is_empty() {
            crate::device::validate_name(&self.iface)?;
            if self.iface.contains('%') {
                return Err(Error::InvalidConfig {
                    field: "iface",
                    why: format!(
                        "{:?}: a packet port attaches to an existing interface; a template makes no sense",
                        self.iface
                    ),
                });
            }
        }
        self.geometry()?;
        if !(1..=4096).contains(&self.sq_size) {
            return Err(Error::InvalidConfig {
                field: "sq_size",
                why: format!("{} must be 1..=4096", self.sq_size),
            });
        }
        if self.fanout.rollover && self.fanout.mode == FanoutMode::Rollover {
            return Err(Error::InvalidConfig {
                field: "fanout",
                why: "the rollover flag goes with the other modes, not with fanout=rollover".into(),
            });
        }
        self.port.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(r: Result<()>) -> &'static str {
        match r {
            Err(Error::InvalidConfig { field, why }) => {
                assert!(!why.is_empty());
                field
            }
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn defaults_and_geometry() {
        let g = PacketConfig::new("v0").geometry().unwrap();
        assert_eq!(
            (g.frame_size, g.frame_count, g.block_size),
            (2048, 512, 4096)
        );
        assert_eq!((g.frames_per_block(), g.blocks()), (2, 256));
        assert_eq!(g.ring_bytes(), 256 * 4096);
        assert_eq!(g.slot_offset(0), 0);
        assert_eq!(g.slot_offset(1), 2048);
        assert_eq!(g.slot_offset(2), 4096);
        let g = PacketConfig::new("v0").offload(true).geometry().unwrap();
        assert_eq!(g.frame_size, 65_792);
        assert_eq!(g.block_size, 69_632, "rounded up to 17 pages");
        assert_eq!((g.frames_per_block(), g.blocks()), (1, 64));
        // A block need not be a multiple of the slot: the rest is unused.
        let g = PacketConfig::new("v0")
            .frame_size(3008)
            .block_size(8192)
            .frame_count(20)
            .geometry()
            .unwrap();
        assert_eq!(g.frames_per_block(), 2);
        assert_eq!(g.slot_offset(3), 8192 + 3008);
    }

    #[test]
    fn bad_geometry_names_the_rule() {
        let v = |c: PacketConfig| field(c.validate());
        assert_eq!(v(PacketConfig::new("v0").frame_size(2050)), "frame_size");
        assert_eq!(v(PacketConfig::new("v0").frame_size(64)), "frame_size");
        assert_eq!(v(PacketConfig::new("v0").block_size(5000)), "block_size");
        assert_eq!(
            v(PacketConfig::new("v0").frame_size(8192).block_size(4096)),
            "block_size"
        );
        assert_eq!(v(PacketConfig::new("v0").frame_count(3)), "frame_count");
        assert_eq!(v(PacketConfig::new("v0").sq_size(0)), "sq_size");
        assert_eq!(v(PacketConfig::new("")), "iface");
        assert_eq!(v(PacketConfig::new("v%d")), "iface");
        assert_eq!(
            v(PacketConfig::new("v0").fanout(Fanout::new(FanoutMode::Rollover).rollover(true))),
            "fanout"
        );
        assert!(PacketConfig::with_ifindex(3).validate().is_ok());
        let e = PacketConfig::new("v0")
            .frame_count(3)
            .validate()
            .unwrap_err();
        assert!(
            e.to_string().contains("multiple of the slots per block"),
            "{e}"
        );
    }
}
