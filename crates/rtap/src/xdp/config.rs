//! Configuration of an AF_XDP port (pure): which interface and queues, copy or
//! zero-copy, ring sizes, the tx kick, and which XDP program steers frames to
//! the sockets.

use crate::backend::uring::SqPoll;
use crate::device::options::port_option_setters;
use crate::device::PortOptions;
use crate::error::{Error, Result};
use crate::queue::Kick;

/// Copy or zero-copy (`XDP_COPY` / `XDP_ZEROCOPY` at bind).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum XdpMode {
    /// Zero-copy where the driver has it, copy otherwise, with the reason (the
    /// default).
    #[default]
    Auto,
    /// The kernel copies frames between the driver and the UMEM (every driver).
    Copy,
    /// The driver puts frames in the UMEM itself; refused where it cannot.
    ZeroCopy,
}

/// Where the XDP program runs (`XDP_FLAGS_DRV_MODE` / `XDP_FLAGS_SKB_MODE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Attach {
    /// Native where the driver has it, generic otherwise, with the reason (the
    /// default).
    #[default]
    Auto,
    /// In the driver (veth, tap, most NICs).
    Native,
    /// On the kernel's skb path (every interface; slower).
    Generic,
}

/// Which XDP program sends frames to the port's sockets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Prog {
    /// rtap's own: each frame to the socket of its rx queue, frames of other
    /// queues to the kernel's stack; attached with a BPF link, so it goes away
    /// with the port (the default). An interface that already has an XDP
    /// program is refused.
    #[default]
    Builtin,
    /// A program the user already runs: rtap only puts its sockets into that
    /// program's XSKMAP, pinned at this bpffs path (key: the rx queue).
    Map(String),
    /// No program: the port sends only (receiving needs one).
    None,
}

/// Default entries of each ring (rx, tx, fill, completion).
pub const DEFAULT_RING: u32 = 1024;

/// How to open an AF_XDP port on an existing interface: one XDP socket per
/// queue, bound to that interface queue, its UMEM the pool of the queue's rx
/// (so received frames are packets without a copy).
///
/// ```
/// use rtap::xdp::{XdpConfig, XdpMode};
/// let cfg = XdpConfig::new("veth0").queues(2).mode(XdpMode::Copy);
/// assert!(cfg.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct XdpConfig {
    /// Interface name (in the port's namespace).
    pub iface: String,
    /// The interface's queue the port's queue 0 binds to (queue `i` binds to
    /// `first_queue + i`). Default 0.
    pub first_queue: u32,
    /// Copy or zero-copy. Default auto.
    pub mode: XdpMode,
    /// UMEM chunk size: `None` (default) takes the pool's buffer stride as it
    /// is (unaligned chunks, 2048 up to a page); 2048 or 4096 require the
    /// pool's stride to be that and use aligned chunks.
    pub frame: Option<u32>,
    /// Entries of each ring (a power of two). Default [`DEFAULT_RING`].
    pub ring: u32,
    /// How tx is kicked. Default [`Kick::Sendto`].
    pub kick: Kick,
    /// The SQPOLL thread of the uring kick (shared by the process).
    pub sqpoll: SqPoll,
    /// Submission-queue entries of the uring kick ring. Default 64.
    pub sq_size: u32,
    /// Make syscalls only when the kernel asks (`XDP_USE_NEED_WAKEUP`).
    /// Default on.
    pub need_wakeup: bool,
    /// The XDP program.
    pub prog: Prog,
    /// Where the program runs.
    pub attach: Attach,
    /// Frames larger than a chunk, as chains (`XDP_USE_SG`, Linux 6.6+).
    /// Default off.
    pub multibuf: bool,
    /// Queues, namespace, link settings: what every port has.
    pub port: PortOptions,
}

impl XdpConfig {
    /// Defaults on interface `iface`.
    pub fn new(iface: impl Into<String>) -> XdpConfig {
        XdpConfig {
            iface: iface.into(),
            first_queue: 0,
            mode: XdpMode::Auto,
            frame: None,
            ring: DEFAULT_RING,
            kick: Kick::Sendto,
            sqpoll: SqPoll::new(50),
            sq_size: 64,
            need_wakeup: true,
            prog: Prog::Builtin,
            attach: Attach::Auto,
            multibuf: false,
            port: PortOptions::default(),
        }
    }

    /// Sets the interface queue the port's queue 0 binds to.
    pub fn first_queue(mut self, q: u32) -> Self {
        self.first_queue = q;
        self
    }

    /// Sets copy or zero-copy.
    pub fn mode(mut self, m: XdpMode) -> Self {
        self.mode = m;
        self
    }

    /// Sets the UMEM chunk size (`None`: the pool's stride).
    pub fn frame(mut self, bytes: Option<u32>) -> Self {
        self.frame = bytes;
        self
    }

    /// Sets the ring size.
    pub fn ring(mut self, entries: u32) -> Self {
        self.ring = entries;
        self
    }

    /// Sets the tx kick.
    pub fn kick(mut self, k: Kick) -> Self {
        self.kick = k;
        self
    }

    /// Sets the SQPOLL thread of the uring kick.
    pub fn sqpoll(mut self, sp: SqPoll) -> Self {
        self.sqpoll = sp;
        self
    }

    /// Sets `need_wakeup`.
    pub fn need_wakeup(mut self, on: bool) -> Self {
        self.need_wakeup = on;
        self
    }

    /// Sets the XDP program.
    pub fn prog(mut self, p: Prog) -> Self {
        self.prog = p;
        self
    }

    /// Sets where the program runs.
    pub fn attach(mut self, a: Attach) -> Self {
        self.attach = a;
        self
    }

    /// Sets multi-buffer frames.
    pub fn multibuf(mut self, on: bool) -> Self {
        self.multibuf = on;
        self
    }

    port_option_setters!(port);

    /// Checks everything that can be checked without the kernel.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, why: String| Err(Error::InvalidConfig { field, why });
        crate::device::validate_name(&self.iface)?;
        if self.iface.contains('%') {
            return bad(
                "iface",
                format!(
                    "{:?}: an xdp port binds to an interface that exists; a template makes no sense",
                    self.iface
                ),
            );
        }
        if !self.ring.is_power_of_two() || !(64..=16384).contains(&self.ring) {
            return bad(
                "ring",
                format!("{} must be a power of two, 64..=16384", self.ring),
            );
        }
        match self.frame {
            None | Some(2048) | Some(4096) => {}
            Some(n) => return bad("frame", format!("{n}: use 2048 or 4096")),
        }
        if !(1..=4096).contains(&self.sq_size) {
            return bad("sq_size", format!("{} must be 1..=4096", self.sq_size));
        }
        self.first_queue
            .checked_add(u32::from(self.port.queues))
            .ok_or_else(|| Error::InvalidConfig {
                field: "queue",
                why: format!("{} is out of range", self.first_queue),
            })?;
        if let Prog::Map(p) = &self.prog {
            if !p.starts_with('/') {
                return bad(
                    "prog",
                    format!("map:{p}: give the pinned map's absolute path"),
                );
            }
        }
        self.port.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(XdpConfig::new("veth0").validate().is_ok());
        let field = |c: XdpConfig| match c.validate() {
            Err(Error::InvalidConfig { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(XdpConfig::new("veth0").ring(1000)), "ring");
        assert_eq!(field(XdpConfig::new("veth0").ring(32)), "ring");
        assert_eq!(field(XdpConfig::new("veth0").frame(Some(3000))), "frame");
        assert_eq!(field(XdpConfig::new("v%d")), "iface");
        assert_eq!(
            field(XdpConfig::new("v0").prog(Prog::Map("x".into()))),
            "prog"
        );
        assert_eq!(
            field(XdpConfig::new("v0").first_queue(u32::MAX).queues(2)),
            "queue"
        );
    }
}
