//! Configuration of a TAP (or TUN) port: [`TapConfig`] names or templates the
//! interface, picks the engine, ring and offloads, and whether to create,
//! attach to or persist the interface. `TapConfig::tun` gives the TUN (raw IP)
//! mode.

use crate::backend::uring::RingConfig;
use crate::backend::BackendKind;
use crate::device::options::port_option_setters;
use crate::device::{validate_name, Offloads, PortOptions};
use crate::error::{Error, Result};

use super::adopt::QueueFds;

/// Default interface name template: the kernel picks the first free `rtapN`.
pub const DEFAULT_NAME: &str = "rtap%d";

/// How to open a TAP port: the interface, who owns it, the offloads to ask the
/// kernel for, and the [`PortOptions`] every port has. Build it with
/// [`TapConfig::new`] and the setters, or parse a port spec.
///
/// ```
/// use rtap::{BackendKind, Offloads, TapConfig};
/// let cfg = TapConfig::new("tap0").queues(2).offloads(Offloads::ALL).backend(BackendKind::Rw);
/// assert_eq!(cfg.port.queues, 2);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TapConfig {
    /// Interface name, or a template with one `%d`. Default `rtap%d`.
    pub name: String,
    /// Require the interface to exist already (attach, never create).
    pub attach: bool,
    /// Keep the interface after the port closes (`TUNSETPERSIST`).
    pub persist: bool,
    /// Kernel-to-port offloads to ask for. Default [`Offloads::NONE`] (plain
    /// frames); port specs and the `rtap` CLI turn them all on.
    pub offloads: Offloads,
    /// Whether queues carry a virtio-net header (`IFF_VNET_HDR`). `None`, the
    /// default: with offloads, or on an interface that exists already (the
    /// flag is the interface's; other holders rely on it: while any other
    /// queue of it is open the kernel keeps it whatever an attach asks, and
    /// the port follows what the interface has); not on one rtap
    /// creates without offloads, where it would cost the kernel a header per
    /// frame (about a tenth of a 64-byte frame's tx) and give nothing but the
    /// checksum-verified flag on rx ([`RxCsum::Good`](crate::RxCsum::Good);
    /// without the header every frame is `Unknown`). `Some(true)` keeps it
    /// for that flag; `Some(false)` is refused with offloads or `attach`.
    /// Without the header the tx path finishes checksums itself and refuses
    /// segmentation, also where a packet carries them from an offloading port
    /// (counted).
    pub vnet_hdr: Option<bool>,
    /// User allowed to attach later without CAP_NET_ADMIN (`TUNSETOWNER`); with
    /// `persist`, hands the tap to an unprivileged application. Note the kernel's
    /// rule: a persistent tap with neither owner nor group can be attached by any
    /// user who can open `/dev/net/tun`.
    pub owner: Option<u32>,
    /// Group allowed to attach later without CAP_NET_ADMIN (`TUNSETGROUP`).
    pub group: Option<u32>,
    /// Data-path backend. Default io_uring (falls back to read/write with a
    /// recorded reason when io_uring is unavailable).
    pub backend: BackendKind,
    /// io_uring options.
    pub ring: RingConfig,
    /// Queues, namespace, link settings: what every port has.
    pub port: PortOptions,
    /// A TUN interface (`IFF_TUN`: IP packets with no Ethernet header, for VPN
    /// and overlay data paths) instead of a TAP. Made by [`TapConfig::tun`].
    pub tun: bool,
    /// Queue fds opened elsewhere to adopt instead of opening the interface
    /// (see [`QueueFds`]; `fd=N` in a spec): one per queue pair. The port
    /// neither creates nor attaches; the fds say which interface it is (a
    /// `name` given must match), whether it has the virtio-net header, and
    /// the kind must be this config's (TUN or TAP). Not with `attach`,
    /// `persist`, `owner`, `group` or `vnet_hdr` (the opener's business).
    pub fds: Option<QueueFds>,
}

impl Default for TapConfig {
    fn default() -> Self {
        TapConfig {
            name: DEFAULT_NAME.to_string(),
            attach: false,
            persist: false,
            offloads: Offloads::NONE,
            vnet_hdr: None,
            owner: None,
            group: None,
            backend: BackendKind::Uring,
            ring: RingConfig::default(),
            port: PortOptions::default(),
            tun: false,
            fds: None,
        }
    }
}

impl TapConfig {
    /// Defaults with the given interface name or template.
    pub fn new(name: impl Into<String>) -> TapConfig {
        TapConfig {
            name: name.into(),
            ..TapConfig::default()
        }
    }

    /// A TUN interface with the given name or template (`rtun%d` picks a free
    /// one): IP packets, no Ethernet header; everything else as for a TAP
    /// (queues, offloads, engines, stats, link control except the MAC).
    pub fn tun(name: impl Into<String>) -> TapConfig {
        TapConfig {
            tun: true,
            ..TapConfig::new(name)
        }
    }

    /// Sets the interface name or template.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets `attach`.
    pub fn attach(mut self, on: bool) -> Self {
        self.attach = on;
        self
    }

    /// Sets `persist`.
    pub fn persist(mut self, on: bool) -> Self {
        self.persist = on;
        self
    }

    /// Sets the offloads to ask for.
    pub fn offloads(mut self, o: Offloads) -> Self {
        self.offloads = o;
        self
    }

    /// Asks for the virtio-net header, or for none (see
    /// [`vnet_hdr`](TapConfig::vnet_hdr)).
    pub fn vnet_hdr(mut self, on: bool) -> Self {
        self.vnet_hdr = Some(on);
        self
    }

    /// Sets the owner (uid) allowed to attach without CAP_NET_ADMIN.
    pub fn owner(mut self, uid: u32) -> Self {
        self.owner = Some(uid);
        self
    }

    /// Sets the group (gid) allowed to attach without CAP_NET_ADMIN.
    pub fn group(mut self, gid: u32) -> Self {
        self.group = Some(gid);
        self
    }

    /// Sets the data-path backend.
    pub fn backend(mut self, b: BackendKind) -> Self {
        self.backend = b;
        self
    }

    /// Sets the io_uring options.
    pub fn ring(mut self, r: RingConfig) -> Self {
        self.ring = r;
        self
    }

    /// Adopts queue fds opened elsewhere, one per queue pair (the queue count
    /// becomes theirs). The interface's name is the fds' own.
    pub fn fds(mut self, fds: QueueFds) -> Self {
        self.port.queues = fds.len().clamp(1, usize::from(u16::MAX)) as u16;
        self.fds = Some(fds);
        self
    }

    /// Sets all the common port settings at once.
    pub fn port_options(mut self, o: PortOptions) -> Self {
        self.port = o;
        self
    }

    port_option_setters!(port);

    /// Checks everything that can be checked without the kernel.
    pub fn validate(&self) -> Result<()> {
        validate_name(&self.name)?;
        if self.vnet_hdr == Some(false) && self.offloads != Offloads::NONE {
            return Err(Error::InvalidConfig {
                field: "vnet_hdr",
                why: "offloads travel in the virtio-net header: turn them off too, or keep the header".into(),
            });
        }
        if self.vnet_hdr == Some(false) && self.attach {
            return Err(Error::InvalidConfig {
                field: "vnet_hdr",
                why: "the header is the interface's flag, set by whoever created it: an attaching port cannot turn it off".into(),
            });
        }
        if let Some(fds) = &self.fds {
            let clash = [
                ("attach", self.attach),
                ("persist", self.persist),
                ("owner", self.owner.is_some()),
                ("group", self.group.is_some()),
                ("vnet_hdr", self.vnet_hdr.is_some()),
            ];
            if let Some((field, _)) = clash.iter().find(|c| c.1) {
                return Err(Error::InvalidConfig {
                    field,
                    why: "adopted fds come with their interface as their opener made it: drop this setting".into(),
                });
            }
            if fds.len() != usize::from(self.port.queues) {
                return Err(Error::InvalidConfig {
                    field: "fd",
                    why: format!(
                        "{} fds for {} queue pairs: one fd per queue pair",
                        fds.len(),
                        self.port.queues
                    ),
                });
            }
        }
        self.ring.validate()?;
        self.port.validate()
    }
}
