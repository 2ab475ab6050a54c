//! Who runs in each test: backends and rx modes for the packet-rate tests,
//! paths and offloads for TCP and latency, and how long each runs.

use std::time::Duration;

use rtap::mt::MtDrive;
use rtap::{BackendKind, RxMode};

/// One contender.
#[derive(Clone, Copy, Debug)]
pub struct Contender {
    pub name: &'static str,
    pub backend: BackendKind,
    pub rx_mode: RxMode,
    pub sqpoll: bool,
}

/// `uring` is the library default (for 64-byte frames its Auto rx mode picks
/// multishot); `uring-posted` keeps one read posted per buffer (the DPDK driver's
/// design); `uring-sqpoll` adds an SQPOLL kernel thread (it uses a second core).
pub const CONTENDERS: [Contender; 4] = [
    Contender {
        name: "uring",
        backend: BackendKind::Uring,
        rx_mode: RxMode::Auto,
        sqpoll: false,
    },
    Contender {
        name: "uring-posted",
        backend: BackendKind::Uring,
        rx_mode: RxMode::Posted,
        sqpoll: false,
    },
    Contender {
        name: "uring-sqpoll",
        backend: BackendKind::Uring,
        rx_mode: RxMode::Auto,
        sqpoll: true,
    },
    Contender {
        name: "rw",
        backend: BackendKind::Rw,
        rx_mode: RxMode::Auto,
        sqpoll: false,
    },
];

/// The `tx` test's baselines, not rtap: the least a program does to write the
/// same 64-byte frames into a tap through io_uring, 32 writes per
/// `io_uring_enter` (`min-uring`: a plain `IFF_TAP | IFF_NO_PI` tap;
/// `min-uring-vnet`: with `IFF_VNET_HDR` and a zeroed header per write, as
/// rtap's taps have). Name and whether the tap has the header.
pub const TX_BASELINES: [(&str, bool); 2] = [("min-uring", false), ("min-uring-vnet", true)];

/// How the packets of a `tcp` contender travel between the two namespaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpPath {
    /// A tap in each namespace and the io-mode forwarder between them.
    Rtap { backend: BackendKind, offload: bool },
    /// A veth pair in each namespace, an AF_PACKET port on one end of each, and
    /// the io-mode forwarder between them.
    Packet { offload: bool, uring: bool },
    /// A TUN in each namespace (IP packets, addresses on the TUNs) and the
    /// io-mode forwarder between them: a VPN's data path without the crypto.
    /// With `vpn`: the forwarder splits and merges every packet (`--mode vpn`).
    /// With `mt` too: the same on tokio's multi-thread runtime (`--mode
    /// vpn-mt`: a task per packet; the queues' I/O on a driver thread per
    /// queue, or done by the tasks themselves).
    Tun {
        backend: BackendKind,
        offload: bool,
        vpn: bool,
        mt: Option<MtDrive>,
    },
    /// A veth pair in each namespace, an AF_XDP port on one end of each (the
    /// other end's tx checksum offload off), and the io-mode forwarder between
    /// them: MTU-sized frames, moved by descriptor (one UMEM).
    Xdp { uring: bool },
    /// A TUN in each namespace made by the tun-rs crate, and `tun-async-mt`'s
    /// tunnel written with its async device (`recv_multiple`, `send_multiple`
    /// and its GRO table) on tokio's multi-thread runtime: what rtap's is
    /// compared with. Built with the `tun-rs` feature only.
    TunRs,
    /// A veth pair: the kernel alone.
    Veth,
}

impl TcpContender {
    /// Whether this build can run it (`tunrs-async-mt` needs a feature); one
    /// it cannot is left out of a run unless named with `--contenders`, which
    /// then fails saying how to build it.
    pub fn built(&self) -> bool {
        self.path != TcpPath::TunRs || cfg!(feature = "tun-rs")
    }
}

/// One contender of the `tcp` and `lat` tests.
#[derive(Clone, Copy, Debug)]
pub struct TcpContender {
    pub name: &'static str,
    pub path: TcpPath,
    /// The forwarder sleeps on rx interrupts when idle (`--idle interrupt`)
    /// instead of busy-polling.
    pub interrupt: bool,
}

/// `uring` and `rw` with every offload (64 KiB frames through the taps, partial
/// checksums), `uring-interrupt` (the same, the forwarder sleeping on rx
/// interrupts when idle), the `-nooffload` twins (MTU-sized, checksummed frames),
/// `packet`, `packet-uring` and `packet-nooffload` (AF_PACKET ports on veth
/// pairs: the default sendto kick with virtio-net headers, the SQPOLL kick,
/// no headers), `tun`, `tun-rw` and `tun-nooffload` (a TUN in each namespace:
/// io_uring and read/write with offloads, io_uring without), `tun-vpn` (the
/// forwarder splits every packet into MTU-sized ones and merges them again: a
/// VPN without the crypto), `tun-async-mt` (the same with a keystream pass,
/// on tokio's multi-thread runtime through `rtap::mt`), `tunrs-async-mt` (that
/// tunnel written with the tun-rs crate, feature `tun-rs`), `xdp` and
/// `xdp-uring` (AF_XDP ports on veth pairs, the two kicks: MTU-sized frames,
/// as `packet-nooffload`), and `veth`.
pub const TCP_CONTENDERS: [TcpContender; 18] = [
    TcpContender {
        name: "uring",
        path: TcpPath::Rtap {
            backend: BackendKind::Uring,
            offload: true,
        },
        interrupt: false,
    },
    TcpContender {
        name: "uring-interrupt",
        path: TcpPath::Rtap {
            backend: BackendKind::Uring,
            offload: true,
        },
        interrupt: true,
    },
    TcpContender {
        name: "uring-nooffload",
        path: TcpPath::Rtap {
            backend: BackendKind::Uring,
            offload: false,
        },
        interrupt: false,
    },
    TcpContender {
        name: "rw",
        path: TcpPath::Rtap {
            backend: BackendKind::Rw,
            offload: true,
        },
        interrupt: false,
    },
    TcpContender {
        name: "rw-nooffload",
        path: TcpPath::Rtap {
            backend: BackendKind::Rw,
            offload: false,
        },
        interrupt: false,
    },
    TcpContender {
        name: "packet",
        path: TcpPath::Packet {
            offload: true,
            uring: false,
        },
        interrupt: false,
    },
    TcpContender {
        name: "packet-uring",
        path: TcpPath::Packet {
            offload: true,
            uring: true,
        },
        interrupt: false,
    },
    TcpContender {
        name: "packet-nooffload",
        path: TcpPath::Packet {
            offload: false,
            uring: false,
        },
        interrupt: false,
    },
    TcpContender {
        name: "tun",
        path: TcpPath::Tun {
            backend: BackendKind::Uring,
            offload: true,
            vpn: false,
            mt: None,
        },
        interrupt: false,
    },
    TcpContender {
        name: "tun-rw",
        path: TcpPath::Tun {
            backend: BackendKind::Rw,
            offload: true,
            vpn: false,
            mt: None,
        },
        interrupt: false,
    },
    TcpContender {
        name: "tun-nooffload",
        path: TcpPath::Tun {
            backend: BackendKind::Uring,
            offload: false,
            vpn: false,
            mt: None,
        },
        interrupt: false,
    },
    TcpContender {
        name: "tun-vpn",
        path: TcpPath::Tun {
            backend: BackendKind::Uring,
            offload: true,
            vpn: true,
            mt: None,
        },
        interrupt: false,
    },
    TcpContender {
        name: "tun-async-mt",
        path: TcpPath::Tun {
            backend: BackendKind::Uring,
            offload: true,
            vpn: true,
            mt: Some(MtDrive::Thread),
        },
        interrupt: false,
    },
    TcpContender {
        name: "tun-async-mt-tasks",
        path: TcpPath::Tun {
            backend: BackendKind::Uring,
            offload: true,
            vpn: true,
            mt: Some(MtDrive::Tasks),
        },
        interrupt: false,
    },
    TcpContender {
        name: "tunrs-async-mt",
        path: TcpPath::TunRs,
        interrupt: false,
    },
    TcpContender {
        name: "xdp",
        path: TcpPath::Xdp { uring: false },
        interrupt: false,
    },
    TcpContender {
        name: "xdp-uring",
        path: TcpPath::Xdp { uring: true },
        interrupt: false,
    },
    TcpContender {
        name: "veth",
        path: TcpPath::Veth,
        interrupt: false,
    },
];

/// The contenders of the `lat` test (64-byte UDP ping-pong): offloads make no
/// difference to frames that small.
pub const LAT_CONTENDERS: [&str; 4] = ["uring", "uring-interrupt", "rw", "veth"];

/// Recorded round trips per contender and round (quick: one round of 2000).
pub const LAT_SAMPLES: u64 = 10_000;

/// Latency rounds per contender in a full run.
pub const LAT_ROUNDS: usize = 3;

/// Length of one tcp round; a full run does [`TCP_ROUNDS`] of them per contender.
pub const TCP_ROUND: Duration = Duration::from_secs(2);

/// Rounds per contender in a full run (one with `--quick`).
pub const TCP_ROUNDS: usize = 5;

/// What a `csum` contender measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsumOp {
    /// The straightforward sum (big-endian words): the reference.
    BeWords,
    /// The fast path (native-endian words in 64-bit lanes).
    Lanes,
    /// A TSO packet cut into 1448-byte segments with their checksums.
    Split,
    /// Those segments merged again in the coalescer's own vectors, each
    /// merged packet then copied into pool buffers (how the VPN path did it):
    /// the reference of `MergePool`.
    MergeVec,
    /// The same merge built in pool packets, sent as built.
    MergePool,
}

/// The contenders of the `csum` test: name, bytes one operation covers, and
/// what it does; each reference before its fast twin.
pub const CSUM_CONTENDERS: [(&str, usize, CsumOp); 7] = [
    ("be-words-1500", 1500, CsumOp::BeWords),
    ("lanes-1500", 1500, CsumOp::Lanes),
    ("be-words-64k", 65_535, CsumOp::BeWords),
    ("lanes-64k", 65_535, CsumOp::Lanes),
    ("split-64k", 65_000, CsumOp::Split),
    ("merge-vec-64k", 65_000, CsumOp::MergeVec),
    ("merge-pool-64k", 65_000, CsumOp::MergePool),
];

/// Bytes one operation of `csum` contender `name` covers.
pub fn csum_bytes(name: &str) -> f64 {
    CSUM_CONTENDERS
        .iter()
        .find(|c| c.0 == name)
        .map_or(0.0, |c| c.1 as f64)
}

/// The reference of a `csum` fast-path contender: the straightforward sum of
/// the same size, or the merge in vectors.
pub fn csum_twin(name: &str) -> Option<&'static str> {
    let &(_, len, op) = CSUM_CONTENDERS.iter().find(|c| c.0 == name)?;
    let reference = match op {
        CsumOp::Lanes => CsumOp::BeWords,
        CsumOp::MergePool => CsumOp::MergeVec,
        _ => return None,
    };
    CSUM_CONTENDERS
        .iter()
        .find(|c| c.1 == len && c.2 == reference)
        .map(|c| c.0)
}

/// The contenders of the `seg` test, the reference first.
pub const SEG_CONTENDERS: [&str; 2] = ["seg-copy", "seg-vectored"];

/// The contenders of the `handoff` test, the reference first.
pub const HANDOFF_CONTENDERS: [&str; 2] = ["local", "remote"];

/// Namespace prefix of the tcp test: `rtapbench-a-PID`, `rtapbench-b-PID`.
pub const TCP_NS_PREFIX: &str = "rtapbench-";
