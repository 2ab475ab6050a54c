//! Link control of a port over netlink, always by ifindex (a rename by someone
//! else does not break it): status, MTU, MAC, promiscuous and all-multicast modes,
//! and link-state events.

use super::Port;
use crate::error::{Error, Result};
use crate::netlink::{LinkInfo, LinkWatcher};
use crate::wire::mac::MacAddr;

impl Port {
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
        self.control("set MTU")?;
        let l = self.link()?;
        let (min, max) = (
            if l.min_mtu == 0 { 68 } else { l.min_mtu },
            if l.max_mtu == 0 { 65535 } else { l.max_mtu },
        );
        if !(min..=max).contains(&mtu) {
            return Err(Error::MtuOutOfRange { mtu, min, max });
        }
        self.with_nl("set MTU", |nl, i| nl.set_mtu(i, mtu))
    }

    /// The MAC address.
    pub fn mac(&self) -> Result<MacAddr> {
        let l = self.link()?;
        l.mac.ok_or(Error::NoMacAddress {
            name: l.name.clone(),
        })
    }

    /// Sets the MAC address (unicast, not all-zero).
    pub fn set_mac(&self, mac: MacAddr) -> Result<()> {
        self.control("set MAC address")?;
        if !mac.is_unicast() {
            return Err(Error::NotUnicastMac { mac });
        }
        self.with_nl("set MAC address", |nl, i| nl.set_mac(i, mac))
    }

    /// True if promiscuous mode is on.
    pub fn promisc(&self) -> Result<bool> {
        Ok(self.link()?.flags & libc::IFF_PROMISC as u32 != 0)
    }

    /// Turns promiscuous mode on or off.
    pub fn set_promisc(&self, on: bool) -> Result<()> {
        self.control("set promiscuous mode")?;
        self.with_nl("set promiscuous mode", |nl, i| nl.set_promisc(i, on))
    }

    /// True if all-multicast mode is on.
    pub fn allmulti(&self) -> Result<bool> {
        Ok(self.link()?.flags & libc::IFF_ALLMULTI as u32 != 0)
    }

    /// Turns all-multicast mode on or off.
    pub fn set_allmulti(&self, on: bool) -> Result<()> {
        self.control("set all-multicast mode")?;
        self.with_nl("set all-multicast mode", |nl, i| nl.set_allmulti(i, on))
    }

    /// Subscribes to this link's state changes: up/down, MTU, MAC, rename,
    /// deletion. Poll [`LinkWatcher::poll`] (never blocks), or add the watcher's
    /// fd (it is [`AsFd`](std::os::fd::AsFd)) to an epoll set. Independent of rx
    /// interrupts.
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
