//! The device registry: every kind of device a port spec can name, one line
//! each. The only place in the library that dispatches on the devices (the
//! crate root declares their modules); adding one adds its line here. Each
//! device declares its [`DeviceKind`] in its own folder; the registry is what
//! lists the kinds and finds one by name.

use crate::device::keys::{spec_err, Parser};
use crate::device::{DeviceKind, DeviceType, PortSpec, Registry};
use crate::error::{Error, Result};

/// Every device, by its spec prefix.
const DEVICES: &[DeviceType] = &[
    crate::tap::spec::TAP,
    crate::tap::spec::TUN,
    crate::afpacket::spec::PACKET,
    crate::share::spec::SHARED,
    crate::xdp::spec::XDP,
];

/// The registry as the device seam sees it.
pub(super) const REGISTRY: Registry = Registry(DEVICES);

/// Parses a port spec string: `KIND:KEY=VALUE,...`. Keys not given keep their
/// defaults; each key may appear once; errors are [`Error::Spec`] naming the
/// key at fault.
///
/// The kinds ([`DeviceKind`]) and their keys: `tap:` and `tun:`
/// ([`tap::spec`](crate::tap::spec)), `packet:` ([`afpacket::spec`](crate::afpacket::spec)),
/// `shared:` ([`share::spec`](crate::share::spec)), `xdp:`
/// ([`xdp::spec`](crate::xdp::spec)). Every kind takes the
/// keys every port has:
///
/// ```text
/// [,queues=N][,burst=N][,netns=NAME][,mtu=N][,mac=XX:XX:XX:XX:XX:XX][,promisc=on|off]
/// [,addr=IP/LEN]...[,route=NET/LEN]...[,up=on|off]
/// ```
///
/// | key          | meaning                                                             |
/// |--------------|---------------------------------------------------------------------|
/// | `queues`     | queue pairs, 1..=128 (default 1)                                    |
/// | `burst`      | suggested burst size for applications, 1..=65535                    |
/// | `netns`      | the interface lives in this named network namespace (`/run/netns`)  |
/// | `mtu`, `mac`, `promisc` | link settings applied at open                            |
/// | `addr`       | an address for the interface, IPv4 or IPv6 (`10.0.0.1/24`, `fd00::1/64`; repeatable) |
/// | `route`      | a route through the interface (`10.1.0.0/16`; repeatable), installed once the link is up |
/// | `up`         | bring the link up at open, not only at start                        |
///
/// What a port added (addresses, routes) it removes when it goes; an
/// interface rtap created takes them along anyway.
///
/// Devices whose queues are fds read and written by the fd engines (`tap:`,
/// `tun:`, `shared:`) also take the engine keys:
///
/// ```text
/// [,backend=uring|rw][,ring=SIZE][,sqpoll=IDLE_MS][,sqpoll_cpu=C][,rx_mode=auto|posted|multishot]
/// ```
///
/// | key          | meaning                                                             |
/// |--------------|---------------------------------------------------------------------|
/// | `backend`    | `uring` (default) or `rw` (read/write syscalls)                     |
/// | `ring`       | io_uring sizes: tx ring entries and posted rx reads, 1..=32768     |
/// | `sqpoll`     | run an SQPOLL kernel thread that idles after this many ms          |
/// | `sqpoll_cpu` | pin the SQPOLL thread to this CPU (needs `sqpoll`)                  |
/// | `rx_mode`    | io_uring rx engine: `auto` (default), `posted` or `multishot`       |
///
/// ```
/// let spec = rtap::parse_port_spec("packet:iface=veth0,queues=2").unwrap();
/// assert_eq!(spec.kind(), rtap::DeviceKind::PACKET);
/// assert_eq!(spec.as_packet().unwrap().iface, "veth0");
/// assert!(rtap::parse_port_spec("pcap:iface=x").is_err());
/// ```
pub fn parse_port_spec(spec: &str) -> Result<PortSpec> {
    let body = spec.trim();
    let example = "e.g. tap:iface=tap0,queues=2";
    let Some((prefix, rest)) = body.split_once(':') else {
        return Err(no_kind(spec, example));
    };
    if let Some(d) = REGISTRY.find_name(prefix) {
        return (d.parse)(&Parser::new(spec, rest)?);
    }
    if prefix.contains('=') || prefix.contains(',') {
        return Err(no_kind(spec, example));
    }
    let why = format!("{} ({example})", unknown_kind(prefix));
    Err(spec_err(spec, "kind", why))
}

/// The refusal of a kind name no device declares: it lists the names.
fn unknown_kind(name: &str) -> String {
    let names: Vec<&str> = DeviceKind::all().map(DeviceKind::name).collect();
    format!(
        "unknown port kind `{name}`: the kinds are {}",
        names.join(", ")
    )
}

impl DeviceKind {
    /// Every kind of device this build has, in the registry's order.
    pub fn all() -> impl Iterator<Item = DeviceKind> {
        DEVICES.iter().map(|d| d.kind)
    }
}

impl std::str::FromStr for DeviceKind {
    type Err = String;

    /// A kind by its name; the error lists the names.
    fn from_str(s: &str) -> std::result::Result<DeviceKind, String> {
        REGISTRY
            .find_name(s)
            .map(|d| d.kind)
            .ok_or_else(|| unknown_kind(s))
    }
}

fn no_kind(spec: &str, example: &str) -> Error {
    spec_err(
        spec,
        "kind",
        format!("a port spec starts with its kind and a colon ({example})"),
    )
}

impl std::str::FromStr for PortSpec {
    type Err = Error;

    /// Same as [`parse_port_spec`].
    fn from_str(s: &str) -> Result<PortSpec> {
        parse_port_spec(s)
    }
}

#[cfg(test)]
mod tests {
    use super::DEVICES;
    use crate::device::DeviceKind;

    /// Kinds are declared by their devices: two declaring one name would make
    /// specs ambiguous.
    #[test]
    fn kind_names_are_unique() {
        for k in DeviceKind::all() {
            let same = DEVICES.iter().filter(|d| d.kind.name() == k.name());
            assert_eq!(same.count(), 1, "{k}");
        }
        assert_eq!(DeviceKind::all().count(), DEVICES.len());
    }

    #[test]
    fn names_round_trip() {
        for k in DeviceKind::all() {
            assert_eq!(k.name().parse::<DeviceKind>(), Ok(k));
            assert_eq!(k.to_string(), k.name());
        }
        let e = "pcap".parse::<DeviceKind>().unwrap_err();
        assert!(e.contains("tap, tun, packet, shared, xdp"), "{e}");
    }

    #[test]
    fn unknown_kinds_name_the_kinds() {
        let e = super::parse_port_spec("pcap:iface=x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tap, tun, packet, shared, xdp"), "{e}");
    }
}
