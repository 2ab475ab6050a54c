//! The interface's addresses and routes from the port's options (`addr=`,
//! `route=`, `up=`, [`PortOptions`](crate::PortOptions)): addresses at open,
//! routes once the link is up (at open with `up`, and at every start), and
//! taken away again when the port goes: exactly what the port added, never
//! what was there before (an address the interface had is left alone; a
//! route that exists already is an error unless this port added it: the
//! kernel cannot say through which interface the existing one goes).

use std::io;

use super::Port;
use crate::error::{Error, Result};
use crate::wire::prefix::IpPrefix;

/// What a port added to its interface.
#[derive(Debug, Default)]
pub(super) struct Added {
    addrs: Vec<IpPrefix>,
    routes: Vec<IpPrefix>,
}

impl Port {
    /// Gives the interface the addresses of the port's options.
    pub(super) fn add_addresses(&self) -> Result<()> {
        for &a in &self.spec.options().addrs {
            self.control("add address")?;
            match self.nl_io(|nl, i| nl.add_address(i, a)) {
                Ok(()) => self.added_mut(|d| d.addrs.push(a)),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(self.ifconfig_err("add address", a, e)),
            }
        }
        Ok(())
    }

    /// Installs the routes of the port's options (the link is up); a route
    /// the port added before and the kernel still has is kept.
    pub(super) fn add_routes(&self) -> Result<()> {
        for &r in &self.spec.options().routes {
            self.control("add route")?;
            let ours = self
                .added
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .routes
                .contains(&r);
            match self.nl_io(|nl, i| nl.add_route(i, r)) {
                Ok(()) if !ours => self.added_mut(|d| d.routes.push(r)),
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) && ours => {}
                Err(e) => return Err(self.ifconfig_err("add route", r, e)),
            }
        }
        Ok(())
    }

    /// Removes what the port added (routes first). Best effort: an interface
    /// that is gone took them with it.
    pub(super) fn remove_added(&self) {
        let d = std::mem::take(&mut *self.added.lock().unwrap_or_else(|e| e.into_inner()));
        for r in d.routes {
            if let Err(e) = self.nl_io(|nl, i| nl.del_route(i, r)) {
                tracing::debug!("remove route {r} from {}: {e}", self.iface.name);
            }
        }
        for a in d.addrs {
            if let Err(e) = self.nl_io(|nl, i| nl.del_address(i, a)) {
                tracing::debug!("remove address {a} from {}: {e}", self.iface.name);
            }
        }
    }

    fn added_mut(&self, f: impl FnOnce(&mut Added)) {
        f(&mut self.added.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A netlink request on the port's socket, the error as the kernel gave it.
    fn nl_io<T>(&self, f: impl FnOnce(&super::Netlink, u32) -> io::Result<T>) -> io::Result<T> {
        let nl = self.nl.lock().unwrap_or_else(|e| e.into_inner());
        f(&nl, self.iface.ifindex)
    }

    fn ifconfig_err(&self, op: &'static str, prefix: IpPrefix, e: io::Error) -> Error {
        match e.raw_os_error() {
            // (EACCES is the kernel's answer to an IPv6 address where IPv6 is
            // disabled, not a missing capability: it stays the kernel's error.)
            Some(libc::ENODEV) | Some(libc::EPERM) => self.nl_err(op, e),
            _ => Error::InterfaceConfig {
                op,
                prefix,
                iface: self.iface.name.clone(),
                source: e,
            },
        }
    }
}
