//! Link control of a port over netlink, always by ifindex (a rename by someone
//! else does not break it): status, MTU, MAC, promiscuous and all-multicast modes,
//! and link-state events.

use super::port::TapPort;
use crate::error::{Error, Result};
use crate::netlink::{LinkInfo, LinkWatcher};

impl TapPort {
    /// True when the link is administratively up *and* running (carrier), the
    /// only state in which it moves traffic.
    pub fn link_up(&self) -> Result<bool> {
        Ok(self.link()?.is_up())
    }

    /// The MTU.
    pub fn mtu(&self) -> Result<u32> {
        Ok(self.link()?.mtu)
    }

    /// Sets the MTU, within the device's own limits (68..=65521 for a tap: 65535
    /// less the Ethernet header). Rx queues opened afterwards size their reads for
    /// it; queues already open keep the size they were opened with and count
    /// larger frames as truncated (`rx_q{N}_truncated`), so reopen them to follow.
    pub fn set_mtu(&self, mtu: u32) -> Result<()> {
        let l = self.link()?;
        let (min, max) = (
            if l.min_mtu == 0 { 68 } else { l.min_mtu },
            if l.max_mtu == 0 { 65535 } else { l.max_mtu },
        );
        if !(min..=max).contains(&mtu) {
            return Err(Error::Config(format!(
                "MTU {mtu} out of this device's range {min}..={max}"
            )));
        }
        self.with_nl("set MTU", |nl, i| nl.set_mtu(i, mtu))
    }

    /// The MAC address.
    pub fn mac(&self) -> Result<[u8; 6]> {
        self.link()?
            .mac
            .ok_or_else(|| Error::Config("the interface reports no MAC address".into()))
    }

    /// Sets the MAC address (unicast, not all-zero).
    pub fn set_mac(&self, mac: [u8; 6]) -> Result<()> {
        if mac[0] & 1 != 0 || mac == [0; 6] {
            return Err(Error::Config(format!(
                "{} is not a unicast MAC address",
                fmt_mac(&mac)
            )));
        }
        self.with_nl("set MAC address", |nl, i| nl.set_mac(i, mac))
    }

    /// True if promiscuous mode is on.
    pub fn promisc(&self) -> Result<bool> {
        Ok(self.link()?.flags & libc::IFF_PROMISC as u32 != 0)
    }

    /// Turns promiscuous mode on or off.
    pub fn set_promisc(&self, on: bool) -> Result<()> {
        self.with_nl("set promiscuous mode", |nl, i| nl.set_promisc(i, on))
    }

    /// True if all-multicast mode is on.
    pub fn allmulti(&self) -> Result<bool> {
        Ok(self.link()?.flags & libc::IFF_ALLMULTI as u32 != 0)
    }

    /// Turns all-multicast mode on or off.
    pub fn set_allmulti(&self, on: bool) -> Result<()> {
        self.with_nl("set all-multicast mode", |nl, i| nl.set_allmulti(i, on))
    }

    /// Subscribes to this link's state changes: up/down, MTU, MAC, rename,
    /// deletion. Poll [`LinkWatcher::poll`] (never blocks), or add
    /// [`LinkWatcher::as_raw_fd`] to an epoll set. Independent of rx interrupts.
    /// The subscription is made in the port's network namespace.
    pub fn link_events(&self) -> Result<LinkWatcher> {
        let current: LinkInfo = self.link()?;
        let ifindex = self.ifindex();
        self.in_port_ns(move || {
            LinkWatcher::new(ifindex, current)
                .map_err(|e| Error::sys("netlink subscribe RTNLGRP_LINK", e))
        })
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut m = [0u8; 6];
    let mut parts = s.split(':');
    for b in m.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_text() {
        let m = [0x02, 0, 0xab, 0xcd, 0xef, 0x10];
        assert_eq!(fmt_mac(&m), "02:00:ab:cd:ef:10");
        assert_eq!(parse_mac("02:00:ab:cd:ef:10"), Some(m));
        assert_eq!(parse_mac("02:00:ab:cd:ef"), None);
        assert_eq!(parse_mac("02:00:ab:cd:ef:10:11"), None);
        assert_eq!(parse_mac("02:00:ab:cd:ef:1"), None);
        assert_eq!(parse_mac("zz:00:ab:cd:ef:10"), None);
    }
}
