//! [`DeviceKind`]: which kind of device a port is. The set is open: each
//! device declares its kind in its own folder, beside its spec parser
//! (`impl DeviceKind { pub const TAP: .. }` in `tap/spec.rs`), and the port
//! layer's registry is what lists them (parsing a name, [`DeviceKind::all`]).
//! A kind is compared and printed, never matched on: the registry is the one
//! place that finds a device by its kind.

/// The kind of device behind a port: `DeviceKind::TAP`, `DeviceKind::TUN`,
/// `DeviceKind::PACKET`, `DeviceKind::SHARED`, `DeviceKind::XDP` (each
/// declared by its device). Its name is the prefix of the device's port specs
/// (`tap:`), the sharing protocol's `kind=` and what reports print.
///
/// ```
/// use rtap::DeviceKind;
/// assert_eq!(DeviceKind::TAP.name(), "tap");
/// assert_eq!("xdp".parse::<DeviceKind>(), Ok(DeviceKind::XDP));
/// assert!(DeviceKind::all().any(|k| k == DeviceKind::PACKET));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceKind(&'static str);

impl DeviceKind {
    /// A kind by its name, for the device that declares it (the name must be
    /// unique: the registry's test checks).
    pub(crate) const fn new(name: &'static str) -> DeviceKind {
        DeviceKind(name)
    }

    /// The kind's name: the prefix of its port specs.
    pub const fn name(self) -> &'static str {
        self.0
    }
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::fmt::Debug for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceKind({})", self.0)
    }
}
