//! `tap:` specs: a TAP interface.
//!
//! ```text
//! tap:iface=NAME[,persist][,attach][,offload=on|off][,vnet_hdr=on|off][,owner=UID][,group=GID][,fd=N[+M...]]
//!    plus the keys every port takes and the fd-engine keys (see
//!    [`parse_port_spec`](crate::parse_port_spec))
//! ```
//!
//! | key       | meaning                                                                |
//! |-----------|------------------------------------------------------------------------|
//! | `iface`   | interface name or template with one `%d` (default `rtap%d`)           |
//! | `persist` | keep the interface after the port closes (`persist=0` turns it off)    |
//! | `attach`  | use an existing interface, never create one                            |
//! | `offload` | ask the kernel for every offload (`on`, the default in specs) or none  |
//! | `vnet_hdr` | the virtio-net header with `offload=off` (default: only on an interface that exists) |
//! | `owner`, `group` | who may attach later without CAP_NET_ADMIN                      |
//! | `fd`      | adopt queue fds this process has (one per queue pair, `+` between): a TUN/TAP a privileged helper opened ([`QueueFds`]) |

use super::adopt::QueueFds;
use super::config::TapConfig;
use super::share::{rebuild_tap, rebuild_tun};
use crate::device::keys::{Parser, FD_ENGINE_KEYS};
use crate::device::{validate_name, DeviceKind, DeviceType, Offloads, PortSpec};
use crate::error::Result;

/// The keys of a `tap:` spec besides the common and fd-engine ones.
pub const KEYS: &[&str] = &[
    "iface", "persist", "attach", "offload", "vnet_hdr", "owner", "group", "fd",
];

impl DeviceKind {
    /// A TAP interface (Ethernet frames), created or attached (`tap:`).
    pub const TAP: DeviceKind = DeviceKind::new("tap");
    /// A TUN interface (IP packets) (`tun:`).
    pub const TUN: DeviceKind = DeviceKind::new("tun");
}

/// The registry's entry for `tap:`.
pub(crate) const TAP: DeviceType = DeviceType {
    kind: DeviceKind::TAP,
    parse: |p| parse(p).map(PortSpec::new),
    rebuild: Some(rebuild_tap),
    // TUN and TAP alike: the fds say which.
    adopt: Some(|fds| super::adopt::config_for(fds).map(PortSpec::new)),
};

/// The registry's entry for `tun:`.
pub(crate) const TUN: DeviceType = DeviceType {
    kind: DeviceKind::TUN,
    parse: |p| parse_tun(p).map(PortSpec::new),
    rebuild: Some(rebuild_tun),
    adopt: None,
};

/// A `tap:` spec body. Ports from specs ask for every offload unless
/// `offload=off` (the library's own default, for code that builds a
/// [`TapConfig`], is no offload).
fn parse(p: &Parser<'_>) -> Result<TapConfig> {
    parse_kind(p, TapConfig::default().offloads(Offloads::ALL))
}

/// A `tun:` spec body: the same keys as `tap:`; the interface is a TUN (IP
/// packets), `rtun%d` unless `iface` names it.
fn parse_tun(p: &Parser<'_>) -> Result<TapConfig> {
    parse_kind(p, TapConfig::tun(DEFAULT_TUN_NAME).offloads(Offloads::ALL))
}

/// Default name template of a TUN port.
pub const DEFAULT_TUN_NAME: &str = "rtun%d";

fn parse_kind(p: &Parser<'_>, mut cfg: TapConfig) -> Result<TapConfig> {
    let keys: Vec<&str> = KEYS.iter().chain(FD_ENGINE_KEYS).copied().collect();
    for &(key, value) in p.items(&keys)? {
        match key {
            "iface" => {
                let name = p.need(key, value)?;
                validate_name(&name).map_err(|e| p.err(key, e.to_string()))?;
                cfg.name = name;
            }
            "persist" => cfg.persist = p.flag(key, value)?,
            "attach" => cfg.attach = p.flag(key, value)?,
            "offload" => {
                cfg.offloads = if p.flag(key, value)? {
                    Offloads::ALL
                } else {
                    Offloads::NONE
                }
            }
            "vnet_hdr" => cfg.vnet_hdr = Some(p.flag(key, value)?),
            "fd" => {
                let v = p.need(key, value)?;
                let fds = v
                    .split('+')
                    .map(|n| n.trim().parse::<i32>().ok().filter(|&n| n >= 0))
                    .collect::<Option<Vec<i32>>>()
                    .ok_or_else(|| p.err(key, format!("{v:?}: give fd numbers, N or N+M+...")))?;
                // One queue pair per fd (a `queues` given is checked against it).
                cfg = cfg.fds(QueueFds::numbers(fds));
            }
            "owner" => cfg.owner = Some(p.number(key, value, 0, u32::MAX as u64 - 1)? as u32),
            "group" => cfg.group = Some(p.number(key, value, 0, u32::MAX as u64 - 1)? as u32),
            _ => {}
        }
    }
    p.common(&mut cfg.port)?;
    p.fd_engine(&mut cfg.backend, &mut cfg.ring)?;
    // Everything was checked key by key; this catches any rule added to
    // TapConfig::validate later.
    p.checked(cfg.validate(), &[])?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use crate::backend::uring::{RxMode, SqPoll};
    use crate::backend::BackendKind;
    use crate::device::keys::spec_error_key as bad_key;
    use crate::device::{DeviceKind, Offloads, PortSpec};
    use crate::parse_port_spec;
    use crate::tap::TapConfig;

    fn tap(spec: &str) -> TapConfig {
        let s = parse_port_spec(spec).unwrap();
        assert_eq!(s.kind(), DeviceKind::TAP, "{spec}");
        s.as_tap().expect("a tap spec").clone()
    }

    #[test]
    fn minimal() {
        let c = parse_port_spec("tap:iface=tap0").unwrap();
        assert_eq!(
            c,
            PortSpec::from(TapConfig::new("tap0").offloads(Offloads::ALL))
        );
        // No keys at all: every default, the name template included.
        assert_eq!(tap("tap:"), TapConfig::default().offloads(Offloads::ALL));
        assert_eq!(tap("tap:offload=off").offloads, Offloads::NONE);
        assert_eq!(tap("tap:offload=on").offloads, Offloads::ALL);
    }

    #[test]
    fn vnet_hdr() {
        assert_eq!(tap("tap:").vnet_hdr, None);
        assert_eq!(tap("tap:offload=off,vnet_hdr=on").vnet_hdr, Some(true));
        assert_eq!(tap("tap:offload=off,vnet_hdr=off").vnet_hdr, Some(false));
        // Offloads travel in the header; an attached interface's header is its own.
        for bad in ["tap:vnet_hdr=off", "tap:offload=off,attach,vnet_hdr=off"] {
            let e = parse_port_spec(bad).unwrap_err().to_string();
            assert!(e.contains("vnet_hdr"), "{bad}: {e}");
        }
    }

    #[test]
    fn everything() {
        let c = tap(
            "tap:iface=rt%d,queues=4,persist,attach,backend=rw,ring=512,burst=64,sqpoll=10,sqpoll_cpu=1,rx_mode=multishot,mac=02:00:00:00:00:09,mtu=9000,promisc=on,owner=1000,group=100,netns=blue",
        );
        assert_eq!(c.name, "rt%d");
        assert_eq!(c.port.queues, 4);
        assert!(c.persist && c.attach);
        assert_eq!((c.owner, c.group), (Some(1000), Some(100)));
        assert_eq!(c.backend, BackendKind::Rw);
        assert_eq!((c.ring.tx_entries, c.ring.rx_posted), (512, 512));
        assert_eq!(c.port.burst, 64);
        assert_eq!(c.ring.rx_mode, RxMode::Multishot);
        assert_eq!(c.port.mac, Some(crate::MacAddr::new([2, 0, 0, 0, 0, 9])));
        assert_eq!((c.port.mtu, c.port.promisc), (Some(9000), Some(true)));
        assert_eq!(c.port.netns, Some(crate::Netns::Named("blue".into())));
        assert_eq!(
            c.ring.sqpoll,
            Some(SqPoll {
                idle_ms: 10,
                cpu: Some(1)
            })
        );
    }

    #[test]
    fn backends_and_flags() {
        let b = |s: &str| tap(s).backend;
        assert_eq!(b("tap:iface=a,backend=rw"), BackendKind::Rw);
        assert_eq!(bad_key("tap:iface=a,backend=sync"), "backend");
        assert_eq!(b("tap:iface=a,backend=uring"), BackendKind::Uring);
        assert!(!tap("tap:iface=a,persist=0").persist);
        assert!(tap("tap:iface=a,persist=yes").persist);
        let c = tap("tap:iface=a,sqpoll=0");
        assert_eq!(
            c.ring.sqpoll,
            Some(SqPoll {
                idle_ms: 0,
                cpu: None
            })
        );
        // Spaces around items are tolerated, the order of keys does not matter.
        let c: PortSpec = " tap: queues=2 , iface=x ".parse().unwrap();
        assert_eq!(
            (c.as_tap().unwrap().name.as_str(), c.options().queues),
            ("x", 2)
        );
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(bad_key("iface=tap0"), "kind");
        assert_eq!(bad_key("pcap:iface=tap0"), "kind");
        assert_eq!(bad_key(""), "kind");
        assert_eq!(bad_key("tap:iface=x,bogus=1"), "bogus");
        assert_eq!(bad_key("tap:iface=x,queues=two"), "queues");
        assert_eq!(bad_key("tap:iface=x,queues=0"), "queues");
        assert_eq!(bad_key("tap:iface=x,queues=129"), "queues");
        assert_eq!(bad_key("tap:iface=x,queues=-1"), "queues");
        assert_eq!(bad_key("tap:iface=x,queues"), "queues");
        assert_eq!(bad_key("tap:iface=x,queues=1,queues=2"), "queues");
        assert_eq!(bad_key("tap:iface=a,iface=b"), "iface");
        assert_eq!(bad_key("tap:iface="), "iface");
        assert_eq!(bad_key("tap:iface=a-very-long-name0"), "iface");
        assert_eq!(bad_key("tap:iface=a/b"), "iface");
        assert_eq!(bad_key("tap:iface=x,backend=dpdk"), "backend");
        assert_eq!(bad_key("tap:iface=x,ring=0"), "ring");
        assert_eq!(bad_key("tap:iface=x,ring=65536"), "ring");
        assert_eq!(bad_key("tap:iface=x,burst=0"), "burst");
        assert_eq!(bad_key("tap:iface=x,persist=maybe"), "persist");
        assert_eq!(bad_key("tap:iface=x,sqpoll=fast"), "sqpoll");
        assert_eq!(bad_key("tap:iface=x,sqpoll_cpu=1"), "sqpoll_cpu");
        assert_eq!(bad_key("tap:iface=x,rx_mode=lots"), "rx_mode");
        assert_eq!(bad_key("tap:iface=x,,queues=1"), "");
        assert_eq!(bad_key("tap:iface=x,mac=02:00"), "mac");
        assert_eq!(bad_key("tap:iface=x,netns=/run/netns/a"), "netns");
        assert_eq!(bad_key("tap:iface=x,owner=me"), "owner");
    }

    #[test]
    fn addresses_routes_and_adopted_fds() {
        let c = tap("tap:addr=10.0.0.1/24,addr=fd00::1/64,route=10.1.0.0/16,up,mtu=1400");
        let names: Vec<String> = c.port.addrs.iter().map(|a| a.to_string()).collect();
        assert_eq!(names, ["10.0.0.1/24", "fd00::1/64"]);
        assert_eq!(c.port.routes[0].to_string(), "10.1.0.0/16");
        assert!(c.port.up && c.port.mtu == Some(1400));
        let c = tap("tap:fd=7+9");
        assert_eq!(c.fds.as_ref().unwrap().raw(), [7, 9]);
        assert_eq!(c.port.queues, 2, "a queue pair per fd");
        assert_eq!(bad_key("tap:fd=7+9,queues=1"), "fd");
        assert_eq!(bad_key("tap:fd=7,persist"), "persist");
        assert_eq!(bad_key("tap:fd=seven"), "fd");
        assert_eq!(bad_key("tap:route=10.1.0.1/16"), "route");
        assert_eq!(bad_key("tap:up=2"), "up");
    }

    #[test]
    fn error_message_is_readable() {
        let e = parse_port_spec("tap:iface=x,bogus=1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
        assert!(e.contains("unknown key"), "{e}");
    }
}
