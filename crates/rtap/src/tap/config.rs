//! Configuration of a TAP port.

use super::netns::Netns;
use super::offloads::Offloads;
use crate::backend::uring::RingConfig;
use crate::backend::BackendKind;
use crate::error::{Error, Result};
use crate::pool::MAX_PACKET_LEN;

/// Most queue pairs a port may have (as DPDK's net_rtap).
pub const MAX_QUEUES: u16 = 128;

/// Default interface name template: the kernel picks the first free `rtapN`.
pub const DEFAULT_NAME: &str = "rtap%d";

/// How to open a TAP port. Build with [`TapConfig::new`] and the setters, or
/// parse from a port spec string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TapConfig {
    /// Interface name, or a template with one `%d`. Default `rtap%d`.
    pub name: String,
    /// Require the interface to exist already (attach, never create).
    pub attach: bool,
    /// Keep the interface after the port closes (`TUNSETPERSIST`).
    pub persist: bool,
    /// Rx queues (must equal `tx_queues`). Default 1.
    pub rx_queues: u16,
    /// Tx queues. Default 1.
    pub tx_queues: u16,
    /// Data-path backend. Default io_uring (falls back to read/write with a warning).
    pub backend: BackendKind,
    /// io_uring options.
    pub ring: RingConfig,
    /// Largest frame the rx path must accept, Ethernet header included; 0 means
    /// "the interface MTU + 18" (Ethernet header and one VLAN tag). Frames that do
    /// not fit are counted as rx errors, never silently cut.
    pub max_frame: usize,
    /// Suggested burst size for applications (the port itself takes any size). Default 32.
    pub burst: u16,
    /// Kernel-to-port offloads to ask for. Default [`Offloads::NONE`] (plain
    /// frames); the `rtap` CLI turns them all on.
    pub offloads: Offloads,
    /// Network namespace the interface lives in (created or attached there); the
    /// application's threads stay where they are. Default: the caller's.
    pub netns: Option<Netns>,
    /// User allowed to attach later without CAP_NET_ADMIN (`TUNSETOWNER`); with
    /// `persist`, hands the tap to an unprivileged application. Note the kernel's
    /// rule: a persistent tap with neither owner nor group can be attached by any
    /// user who can open `/dev/net/tun`.
    pub owner: Option<u32>,
    /// Group allowed to attach later without CAP_NET_ADMIN (`TUNSETGROUP`).
    pub group: Option<u32>,
    /// MTU to set at open.
    pub mtu: Option<u32>,
    /// MAC address to set at open.
    pub mac: Option<[u8; 6]>,
    /// Promiscuous mode to set at open.
    pub promisc: Option<bool>,
}

impl Default for TapConfig {
    fn default() -> Self {
        TapConfig {
            name: DEFAULT_NAME.to_string(),
            attach: false,
            persist: false,
            rx_queues: 1,
            tx_queues: 1,
            backend: BackendKind::Uring,
            ring: RingConfig::default(),
            max_frame: 0,
            burst: 32,
            offloads: Offloads::NONE,
            netns: None,
            owner: None,
            group: None,
            mtu: None,
            mac: None,
            promisc: None,
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

    /// Sets rx and tx queue counts to `n`.
    pub fn queues(mut self, n: u16) -> Self {
        self.rx_queues = n;
        self.tx_queues = n;
        self
    }

    /// Sets `persist`.
    pub fn persist(mut self, on: bool) -> Self {
        self.persist = on;
        self
    }

    /// Sets `attach`.
    pub fn attach(mut self, on: bool) -> Self {
        self.attach = on;
        self
    }

    /// Sets the backend.
    pub fn backend(mut self, b: BackendKind) -> Self {
        self.backend = b;
        self
    }

    /// Sets the offloads to ask for.
    pub fn offloads(mut self, o: Offloads) -> Self {
        self.offloads = o;
        self
    }

    /// Sets the io_uring options.
    pub fn ring(mut self, r: RingConfig) -> Self {
        self.ring = r;
        self
    }

    /// Checks everything that can be checked without the kernel.
    pub fn validate(&self) -> Result<()> {
        validate_name(&self.name)?;
        validate_queues(self.rx_queues, self.tx_queues)?;
        self.ring.validate()?;
        if self.max_frame != 0 && !(60..=MAX_PACKET_LEN).contains(&self.max_frame) {
            return Err(Error::Config(format!(
                "max_frame {} must be 0 (auto) or 60..={MAX_PACKET_LEN}",
                self.max_frame
            )));
        }
        if self.burst == 0 {
            return Err(Error::Config("burst must be at least 1".into()));
        }
        Ok(())
    }
}

/// Checks a queue-count request.
pub fn validate_queues(rx: u16, tx: u16) -> Result<()> {
    if rx != tx {
        return Err(Error::QueueCountMismatch { rx, tx });
    }
    if rx == 0 || rx > MAX_QUEUES {
        return Err(Error::QueueCountOutOfRange {
            count: rx,
            max: MAX_QUEUES,
        });
    }
    Ok(())
}

/// Checks an interface name or template the way the kernel will.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |why| {
        Err(Error::InvalidName {
            name: name.to_string(),
            why,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > libc::IFNAMSIZ - 1 {
        return Err(Error::NameTooLong {
            name: name.to_string(),
        });
    }
    if name == "." || name == ".." {
        return bad("`.` and `..` are reserved");
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return bad("must not contain '/', ':' or whitespace");
    }
    let pct = name.matches('%').count();
    if pct > 1 || (pct == 1 && !name.contains("%d")) {
        return bad("a template may hold one `%d` and no other `%`");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("rtap%d").is_ok());
        assert!(validate_name("tap0").is_ok());
        assert!(matches!(
            validate_name("a-very-long-name0"),
            Err(Error::NameTooLong { .. })
        ));
        assert!(validate_name("a b").is_err());
        assert!(validate_name("x%s").is_err());
        assert!(validate_name("x%d%d").is_err());
        assert!(validate_name("").is_err());
    }

    #[test]
    fn queue_counts() {
        assert!(validate_queues(1, 1).is_ok());
        assert!(validate_queues(128, 128).is_ok());
        assert!(matches!(
            validate_queues(2, 1),
            Err(Error::QueueCountMismatch { rx: 2, tx: 1 })
        ));
        assert!(matches!(
            validate_queues(0, 0),
            Err(Error::QueueCountOutOfRange { .. })
        ));
        assert!(matches!(
            validate_queues(129, 129),
            Err(Error::QueueCountOutOfRange { .. })
        ));
    }
}
