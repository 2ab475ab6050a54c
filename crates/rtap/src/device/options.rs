//! [`PortOptions`]: the settings every kind of port has, whatever its device.

use super::netns::Netns;
use crate::error::{Error, Result};
use crate::pool::MAX_PACKET_LEN;
use crate::wire::mac::MacAddr;
use crate::wire::prefix::IpPrefix;

/// Most queue pairs a port may have (as DPDK's net_rtap).
pub const MAX_QUEUES: u16 = 128;

/// Settings common to every port: queues, the largest frame, the namespace the
/// interface lives in, and link settings applied at open.
/// Device configurations (e.g. [`TapConfig`](crate::TapConfig)) embed one and
/// forward their setters to it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PortOptions {
    /// Queue pairs (one rx and one tx queue each), 1..=[`MAX_QUEUES`]. Default 1.
    pub queues: u16,
    /// Largest frame the rx path must accept, link-layer header included; 0 means
    /// automatic (the device's MTU-based size, or 64 KiB with segmentation
    /// offloads). Frames that do not fit are counted as rx errors, never cut.
    pub max_frame: usize,
    /// Suggested burst size for applications (the port itself takes any size). Default 32.
    pub burst: u16,
    /// Network namespace the interface lives in (created or attached there); the
    /// application's threads stay where they are. Default: the caller's.
    pub netns: Option<Netns>,
    /// MTU to set at open.
    pub mtu: Option<u32>,
    /// MAC address to set at open.
    pub mac: Option<MacAddr>,
    /// Promiscuous mode to set at open.
    pub promisc: Option<bool>,
    /// Addresses to give the interface at open (IPv6 ones without duplicate
    /// address detection). What a VPN's tunnel interface needs.
    pub addrs: Vec<IpPrefix>,
    /// Routes through the interface (network prefixes), installed once the
    /// link is up: at open with [`up`](Self::up), else at
    /// [`start`](crate::Port::start) (again at every start: the kernel drops
    /// IPv4 routes of a link that goes down).
    pub routes: Vec<IpPrefix>,
    /// Bring the link up at open, not only at [`start`](crate::Port::start),
    /// so the addresses and routes work before the application reads.
    pub up: bool,
}

/// Setters for the common settings, each returning the config: on
/// [`PortOptions`] itself (`port_option_setters!()`) and on every device
/// configuration that embeds one in a field (`port_option_setters!(port)`).
macro_rules! port_option_setters {
    ($($f:ident)?) => {
        /// Sets the number of queue pairs (1..=[`MAX_QUEUES`](crate::port::MAX_QUEUES)).
        pub fn queues(mut self, n: u16) -> Self {
            self$(.$f)?.queues = n;
            self
        }

        /// Sets the largest frame the rx path must take (0: automatic).
        pub fn max_frame(mut self, bytes: usize) -> Self {
            self$(.$f)?.max_frame = bytes;
            self
        }

        /// Sets the suggested burst size.
        pub fn burst(mut self, n: u16) -> Self {
            self$(.$f)?.burst = n;
            self
        }

        /// Sets the network namespace the interface lives in.
        pub fn netns(mut self, ns: $crate::device::Netns) -> Self {
            self$(.$f)?.netns = Some(ns);
            self
        }

        /// Sets the MTU to apply at open.
        pub fn mtu(mut self, mtu: u32) -> Self {
            self$(.$f)?.mtu = Some(mtu);
            self
        }

        /// Sets the MAC address to apply at open.
        pub fn mac(mut self, mac: $crate::wire::mac::MacAddr) -> Self {
            self$(.$f)?.mac = Some(mac);
            self
        }

        /// Sets promiscuous mode at open.
        pub fn promisc(mut self, on: bool) -> Self {
            self$(.$f)?.promisc = Some(on);
            self
        }

        /// Adds an address to give the interface at open (call again for more).
        pub fn addr(mut self, a: $crate::wire::prefix::IpPrefix) -> Self {
            self$(.$f)?.addrs.push(a);
            self
        }

        /// Adds a route through the interface (a network prefix; call again for
        /// more).
        pub fn route(mut self, dest: $crate::wire::prefix::IpPrefix) -> Self {
            self$(.$f)?.routes.push(dest);
            self
        }

        /// Brings the link up at open (not only at start).
        pub fn up(mut self, on: bool) -> Self {
            self$(.$f)?.up = on;
            self
        }
    };
}
pub(crate) use port_option_setters;

impl Default for PortOptions {
    fn default() -> Self {
        PortOptions {
            queues: 1,
            max_frame: 0,
            burst: 32,
            netns: None,
            mtu: None,
            mac: None,
            promisc: None,
            addrs: Vec::new(),
            routes: Vec::new(),
            up: false,
        }
    }
}

impl PortOptions {
    port_option_setters!();

    /// Checks everything that can be checked without the kernel.
    pub fn validate(&self) -> Result<()> {
        validate_queues(self.queues)?;
        if self.max_frame != 0 && !(60..=MAX_PACKET_LEN).contains(&self.max_frame) {
            return Err(Error::InvalidConfig {
                field: "max_frame",
                why: format!(
                    "{} must be 0 (automatic) or 60..={MAX_PACKET_LEN}",
                    self.max_frame
                ),
            });
        }
        if self.burst == 0 {
            return Err(Error::InvalidConfig {
                field: "burst",
                why: "must be at least 1".into(),
            });
        }
        if let Some(r) = self.routes.iter().find(|r| !r.is_network()) {
            return Err(Error::InvalidConfig {
                field: "route",
                why: format!(
                    "{r} has host bits set: a route goes to a network ({}?)",
                    r.network()
                ),
            });
        }
        for (i, a) in self.addrs.iter().enumerate() {
            if self.addrs[..i].iter().any(|b| b.addr() == a.addr()) {
                return Err(Error::InvalidConfig {
                    field: "addr",
                    why: format!("{} given twice", a.addr()),
                });
            }
        }
        Ok(())
    }
}

/// Checks a queue-pair count.
pub fn validate_queues(n: u16) -> Result<()> {
    if n == 0 || n > MAX_QUEUES {
        return Err(Error::QueueCountOutOfRange {
            count: n,
            max: MAX_QUEUES,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_counts() {
        assert!(validate_queues(1).is_ok());
        assert!(validate_queues(128).is_ok());
        assert!(matches!(
            validate_queues(0),
            Err(Error::QueueCountOutOfRange { .. })
        ));
        assert!(matches!(
            validate_queues(129),
            Err(Error::QueueCountOutOfRange {
                count: 129,
                max: 128
            })
        ));
    }

    #[test]
    fn setters_and_validation() {
        let o = PortOptions::default().queues(4).burst(64).max_frame(9018);
        assert_eq!((o.queues, o.burst, o.max_frame), (4, 64, 9018));
        assert!(o.validate().is_ok());
        let e = PortOptions::default().max_frame(10).validate().unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidConfig {
                    field: "max_frame",
                    ..
                }
            ),
            "{e}"
        );
        let e = PortOptions::default().burst(0).validate().unwrap_err();
        assert!(
            matches!(e, Error::InvalidConfig { field: "burst", .. }),
            "{e}"
        );
        let p = |s: &str| s.parse::<IpPrefix>().unwrap();
        let o = PortOptions::default()
            .addr(p("10.0.0.1/24"))
            .addr(p("fd00::1/64"))
            .route(p("10.1.0.0/16"))
            .up(true);
        assert_eq!((o.addrs.len(), o.routes.len(), o.up), (2, 1, true));
        assert!(o.validate().is_ok());
        let e = o.clone().route(p("10.2.0.1/16")).validate().unwrap_err();
        assert!(e.to_string().contains("10.2.0.0/16"), "{e}");
        let e = o.addr(p("10.0.0.1/16")).validate().unwrap_err();
        assert!(
            matches!(e, Error::InvalidConfig { field: "addr", .. }),
            "{e}"
        );
    }
}
