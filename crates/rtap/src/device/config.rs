//! Device configurations as the port layer sees them: [`PortSpec`] holds any
//! device's configuration (a [`TapConfig`](crate::TapConfig), a
//! [`PacketConfig`](crate::PacketConfig), ...) behind one crate-private trait,
//! so [`Port::open`](crate::Port::open) never names a device; [`DeviceType`] is
//! one entry of the port layer's registry (a spec prefix, its parser, how a
//! served port of that kind is rebuilt in an attaching process).

use std::any::Any;

use super::keys::Parser;
use super::lend::Rebuild;
use super::{DeviceKind, OpenedDevice, PortOptions};
use crate::error::Result;

/// What the port layer asks of a device's configuration type.
pub(crate) trait DeviceConfig:
    Any + Clone + PartialEq + Eq + std::fmt::Debug + Send + Sync
{
    /// The kind of device it opens.
    fn kind(&self) -> DeviceKind;

    /// The settings every port has.
    fn options(&self) -> &PortOptions;

    /// The settings every port has, to change.
    fn options_mut(&mut self) -> &mut PortOptions;

    /// Checks everything that can be checked without the kernel.
    fn validate(&self) -> Result<()>;

    /// Creates or attaches the device, in the calling thread's network
    /// namespace (the port's). `reg` finds other kinds of device (a port
    /// attached to another process's rebuilds the served kind).
    fn open(&self, reg: &Registry) -> Result<OpenedDevice>;
}

/// The object-safe face of [`DeviceConfig`], for every type that has one.
trait AnyConfig: std::fmt::Debug + Send + Sync {
    fn kind(&self) -> DeviceKind;
    fn options(&self) -> &PortOptions;
    fn options_mut(&mut self) -> &mut PortOptions;
    fn validate(&self) -> Result<()>;
    fn open(&self, reg: &Registry) -> Result<OpenedDevice>;
    fn clone_box(&self) -> Box<dyn AnyConfig>;
    fn eq_any(&self, other: &dyn Any) -> bool;
    fn as_any(&self) -> &dyn Any;
}

impl<T: DeviceConfig> AnyConfig for T {
    fn kind(&self) -> DeviceKind {
        DeviceConfig::kind(self)
    }
    fn options(&self) -> &PortOptions {
        DeviceConfig::options(self)
    }
    fn options_mut(&mut self) -> &mut PortOptions {
        DeviceConfig::options_mut(self)
    }
    fn validate(&self) -> Result<()> {
        DeviceConfig::validate(self)
    }
    fn open(&self, reg: &Registry) -> Result<OpenedDevice> {
        DeviceConfig::open(self, reg)
    }
    fn clone_box(&self) -> Box<dyn AnyConfig> {
        Box::new(self.clone())
    }
    fn eq_any(&self, other: &dyn Any) -> bool {
        other.downcast_ref::<T>() == Some(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A port of some kind of device: its configuration, from a spec string
/// ([`parse_port_spec`](crate::parse_port_spec)) or a configuration value
/// (every device configuration converts into one).
///
/// ```
/// let spec = rtap::parse_port_spec("tap:iface=tap0,queues=2,backend=rw").unwrap();
/// assert_eq!(spec.kind(), rtap::DeviceKind::TAP);
/// assert_eq!(spec.options().queues, 2);
/// let tap = spec.as_tap().unwrap();
/// assert_eq!(tap.name, "tap0");
/// assert_eq!(tap.backend, rtap::BackendKind::Rw);
/// ```
pub struct PortSpec(Box<dyn AnyConfig>);

impl PortSpec {
    /// Wraps a device's configuration.
    pub(crate) fn new<T: DeviceConfig>(cfg: T) -> PortSpec {
        PortSpec(Box::new(cfg))
    }

    /// The kind of device.
    pub fn kind(&self) -> DeviceKind {
        self.0.kind()
    }

    /// The settings every port has.
    pub fn options(&self) -> &PortOptions {
        self.0.options()
    }

    /// The settings every port has, to change.
    pub fn options_mut(&mut self) -> &mut PortOptions {
        self.0.options_mut()
    }

    /// Checks everything that can be checked without the kernel.
    pub fn validate(&self) -> Result<()> {
        self.0.validate()
    }

    /// The device's configuration, if it is a `T`
    /// (`spec.config::<rtap::TapConfig>()`).
    pub fn config<T: Any>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref()
    }

    /// Creates or attaches the device (in the calling thread's namespace).
    pub(crate) fn open_device(&self, reg: &Registry) -> Result<OpenedDevice> {
        self.0.open(reg)
    }
}

impl Clone for PortSpec {
    fn clone(&self) -> PortSpec {
        PortSpec(self.0.clone_box())
    }
}

impl PartialEq for PortSpec {
    fn eq(&self, other: &PortSpec) -> bool {
        self.0.eq_any(other.0.as_any())
    }
}

impl Eq for PortSpec {}

impl std::fmt::Debug for PortSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// One kind of device as the port layer's registry lists it.
pub(crate) struct DeviceType {
    /// The kind; its name is the spec prefix (`tap:`).
    pub kind: DeviceKind,
    /// Parses a spec's body (after the prefix).
    pub parse: fn(&Parser<'_>) -> Result<PortSpec>,
    /// Rebuilds the device of a served port of this kind in an attaching
    /// process; `None`: such a port cannot be served.
    pub rebuild: Option<Rebuild>,
    /// Makes the configuration of a port on queue fds opened elsewhere
    /// ([`Port::from_fds`](crate::Port::from_fds)), checking them; `None`:
    /// this kind adopts no fds.
    pub adopt: Option<fn(Vec<std::os::fd::OwnedFd>) -> Result<PortSpec>>,
}

/// The devices the port layer knows (its registry), for code below it that
/// must find one by kind.
#[derive(Clone, Copy)]
pub(crate) struct Registry(pub &'static [DeviceType]);

impl Registry {
    /// The entry whose kind is named `name`, if the registry lists it.
    pub(crate) fn find_name(&self, name: &str) -> Option<&'static DeviceType> {
        self.0.iter().find(|d| d.kind.name() == name)
    }

    /// The first entry that adopts queue fds opened elsewhere.
    pub(crate) fn adopter(&self) -> Option<fn(Vec<std::os::fd::OwnedFd>) -> Result<PortSpec>> {
        self.0.iter().find_map(|d| d.adopt)
    }
}

// A spec is handed between threads (`Port` is `Send + Sync`).
static_assertions::assert_impl_all!(PortSpec: Send, Sync);
