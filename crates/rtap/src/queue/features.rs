//! What a queue's engine is and what it runs with: the vocabulary the queue
//! layer reports whatever the engine ([`Engine`], and for engines on an
//! io_uring, [`RingFeatures`]). Engines fill it in; the queue handles and the
//! port hand it to the application. Pure data: no fds, no kernel calls.

/// The data path of a port's queues: which engine moves the frames.
///
/// The set is open: an engine is declared where it is built (`Engine::URING`
/// and `Engine::RW` by the fd engines in `backend/`, `Engine::tpacket(kick)`
/// by the AF_PACKET device, `Engine::xsk(kick)` by the AF_XDP device). An
/// engine says what it is: its name, whether it runs on io_uring, and for an
/// engine whose tx ring is shared with the kernel, how that ring is kicked.
///
/// Printed as the CLI and the JSON reports show it: `uring`, `rw`,
/// `tpacket+sendto`, `tpacket+uring`, `xsk+sendto`, `xsk+uring`.
///
/// ```
/// use rtap::{Engine, Kick};
/// assert_eq!(Engine::xsk(Kick::Uring).to_string(), "xsk+uring");
/// assert!(Engine::xsk(Kick::Uring).uses_uring());
/// assert!(!Engine::tpacket(Kick::Sendto).uses_uring());
/// assert_eq!(Engine::RW.kick(), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Engine {
    name: &'static str,
    uring: bool,
    kick: Option<Kick>,
}

impl Engine {
    /// An engine that moves frames with its own system calls or io_uring
    /// requests (`uring`: it submits through io_uring).
    pub(crate) const fn direct(name: &'static str, uring: bool) -> Engine {
        Engine {
            name,
            uring,
            kick: None,
        }
    }

    /// An engine whose frames wait in rings shared with the kernel, the tx
    /// ring kicked by `kick`.
    pub(crate) const fn kicked(name: &'static str, kick: Kick) -> Engine {
        Engine {
            name,
            uring: false,
            kick: Some(kick),
        }
    }

    /// The engine's name without its kick: `uring`, `rw`, `tpacket`, `xsk`.
    pub fn name(self) -> &'static str {
        self.name
    }

    /// How the tx ring is kicked, for an engine whose tx ring is shared with
    /// the kernel.
    pub fn kick(self) -> Option<Kick> {
        self.kick
    }

    /// True if the engine submits its I/O through io_uring (the tx kick
    /// included).
    pub fn uses_uring(self) -> bool {
        self.uring || self.kick == Some(Kick::Uring)
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kick {
            Some(kick) => write!(f, "{}+{kick}", self.name),
            None => f.write_str(self.name),
        }
    }
}

/// How an engine whose tx frames wait in a ring shared with the kernel tells
/// the kernel to send them (AF_PACKET's tx ring).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kick {
    /// An `IORING_OP_SEND` of length 0 on an io_uring whose SQPOLL kernel
    /// thread issues it: no syscall on the application's thread while the SQ
    /// thread is awake, and the kernel's transmit work (the ring walk, the
    /// driver, a veth peer's receive) runs on the SQ thread. Pays where that
    /// thread has a core of its own: the application spends a quarter of the
    /// CPU per packet of [`Kick::Sendto`], but the SQ thread spins a whole core
    /// while there is traffic (BENCHMARKS.md). Falls back to [`Kick::Sendto`]
    /// when io_uring or SQPOLL is refused, and says why.
    Uring,
    /// One `send(fd, NULL, 0, MSG_DONTWAIT)` per burst (DPDK net_af_packet's
    /// way): the transmit work runs on the application's thread, no extra
    /// thread (the default: it never takes a core the application did not
    /// ask for; on 2 CPUs it moves TCP 1.6x faster than the uring kick).
    #[default]
    Sendto,
}

impl std::fmt::Display for Kick {
    /// The name port specs use (`kick=sendto|uring`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kick::Uring => "uring",
            Kick::Sendto => "sendto",
        })
    }
}

/// What a port's tx path does with a packet's transmit request
/// ([`Packet::set_tx_offload`](crate::Packet::set_tx_offload)), fixed at open
/// ([`DeviceInfo::tx_offload`](crate::DeviceInfo::tx_offload)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct TxOffload {
    /// Checksum requests go to the device as partial checksums (the
    /// pseudo-header sum in the field, where to finish it beside the frame),
    /// finished by the kernel or the device's engine; false: rtap finishes them
    /// in software before the engine sees the packet.
    pub csum: bool,
    /// Segmentation requests (TSO, USO) go to the kernel; false: they are
    /// refused, counted (`tx_offload_rejected`).
    pub gso: bool,
    /// Frames go to the device with a virtio-net header, so the header a
    /// packet carries from the port it came in on (a partial checksum, a
    /// coalesced frame) goes with it as is; false: a carried partial
    /// checksum is finished in software where `csum` is false, a carried
    /// segmentation refused where `gso` is false (counted), unless `split`.
    pub header: bool,
    /// Segmentation requests (and carried segmentation headers) the port
    /// cannot hand on are split by the engine in software: each segment is
    /// written with vectored I/O, its headers from the engine's scratch and
    /// its payload where it lies in the packet (never copied in user space),
    /// every checksum computed; counted (`sw_gso_packets`). The fd engines of
    /// a TAP or TUN whose frames go without a virtio-net header do this, for
    /// packets in one pool buffer (a chained one is refused, counted): give
    /// a pool that receives from an offloading port 64 KiB buffers.
    pub split: bool,
}

impl TxOffload {
    /// Everything in software: checksums finished by rtap, no segmentation.
    pub const NONE: TxOffload = TxOffload {
        csum: false,
        gso: false,
        header: false,
        split: false,
    };
    /// What a device with a virtio-net header takes: both, when its checksum
    /// offload (`csum`) is on, else neither; carried headers as they are.
    pub const fn vnet(csum: bool) -> TxOffload {
        TxOffload {
            csum,
            gso: csum,
            header: true,
            split: false,
        }
    }
}

/// How io_uring runs deferred completion work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TaskRun {
    /// Kernel default: completion work interrupts the task (an IPI) when it arrives.
    Default,
    /// `IORING_SETUP_COOP_TASKRUN` + `TASKRUN_FLAG`: no interrupts, work runs when the
    /// queue next enters the kernel, which it does only when the kernel flags pending work.
    #[default]
    Coop,
    /// `IORING_SETUP_DEFER_TASKRUN` (needs `SINGLE_ISSUER`): work runs only in
    /// `io_uring_enter` on the queue's own thread.
    Defer,
}

/// Rx strategy of the io_uring engine (spec key `rx_mode`); what
/// `RxMode::resolve` makes of it on the running kernel is in
/// [`RingFeatures::rx_mode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RxMode {
    /// `Multishot` when a whole frame fits one pool buffer, else `Posted` (the default).
    #[default]
    Auto,
    /// One `read`/`readv` per buffer (chain) kept posted; supports chained frames.
    /// The reads are hard-linked so the kernel issues them in order, one poll at
    /// a time (independent reads on one fd would race and reorder frames).
    Posted,
    /// One `READ_MULTISHOT` over a provided buffer ring: one poll on the fd, one
    /// request for every frame; frames must fit one buffer.
    Multishot,
}

impl std::fmt::Display for RxMode {
    /// The name port specs use (`rx_mode=auto|posted|multishot`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RxMode::Auto => "auto",
            RxMode::Posted => "posted",
            RxMode::Multishot => "multishot",
        })
    }
}

/// What an io_uring engine's ring ended up with after fallbacks
/// ([`RxQueue::ring_features`](crate::RxQueue::ring_features)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RingFeatures {
    /// SQPOLL active.
    pub sqpoll: bool,
    /// SINGLE_ISSUER active.
    pub single_issuer: bool,
    /// Task-run mode in effect.
    pub taskrun: TaskRun,
    /// The tap fd is a registered file.
    pub fixed_file: bool,
    /// SQPOLL through the port's shared SQ thread (`IORING_SETUP_ATTACH_WQ`): one
    /// kernel thread polls every ring of the port instead of one thread per ring.
    pub sqpoll_shared: bool,
    /// The rx engine of an rx queue's ring ([`RxMode::Posted`] or
    /// [`RxMode::Multishot`], never `Auto`); `None` for a tx ring.
    pub rx_mode: Option<RxMode>,
    /// Each fallback taken, with its reason.
    pub fallbacks: Vec<String>,
}
