//! `packet:` specs: an existing interface through AF_PACKET sockets.
//!
//! ```text
//! packet:iface=NAME[,fanout=MODE][,fanout_defrag=on|off][,fanout_rollover=on|off]
//!       [,frame_size=N][,frames=N][,block_size=N][,tpacket=2|3][,block_timeout=MS]
//!       [,qdisc_bypass=on|off][,kick=sendto|uring][,sq_size=N][,sqpoll_idle=MS]
//!       [,sqpoll_cpu=C][,offload=on|off]
//!    plus the keys every port takes (see [`parse_port_spec`](crate::parse_port_spec))
//! ```
//!
//! | key            | meaning                                                              |
//! |----------------|----------------------------------------------------------------------|
//! | `iface`        | the interface's name (or `ifindex=N`)                                |
//! | `fanout`       | how a multi-queue port spreads frames: `hash` (default), `lb`, `cpu`, `rollover`, `rnd`, `qm` |
//! | `fanout_defrag`, `fanout_rollover` | group flags (defaults on, off)                   |
//! | `frame_size`   | bytes per ring slot (default 2048; 65792 with `offload=on`)         |
//! | `frames`       | slots per ring (default 512; 64 with `offload=on`)                  |
//! | `block_size`   | bytes per ring block (default: a slot rounded up to a page)          |
//! | `tpacket`      | rx ring version: `2` (default) or `3` (blocks, for capture)         |
//! | `block_timeout`| TPACKET_V3 block retire timeout in ms (default 0: the kernel's)      |
//! | `qdisc_bypass` | sent frames skip the qdisc (default off)                             |
//! | `kick`         | `sendto` (default: one send() per burst) or `uring` (an io_uring send from the SQPOLL thread) |
//! | `sq_size`      | kick ring entries (default 64)                                       |
//! | `sqpoll_idle`  | the SQ thread sleeps after this many idle ms (default 50)           |
//! | `sqpoll_cpu`   | pin the SQ thread to this CPU                                        |
//! | `offload`      | virtio-net headers: checksum/TSO/USO on tx, GRO frames on rx (default off) |

use super::config::{FanoutMode, PacketConfig, Tpacket};
use super::share::rebuild;
use crate::device::keys::Parser;
use crate::device::{validate_name, DeviceKind, DeviceType, PortSpec};
use crate::error::Result;
use crate::queue::Kick;

/// The keys of a `packet:` spec besides the common ones.
pub const KEYS: &[&str] = &[
    "iface",
    "ifindex",
    "fanout",
    "fanout_defrag",
    "fanout_rollover",
    "frame_size",
    "frames",
    "block_size",
    "tpacket",
    "block_timeout",
    "qdisc_bypass",
    "kick",
    "sq_size",
    "sqpoll_idle",
    "sqpoll_cpu",
    "offload",
];

impl DeviceKind {
    /// An existing interface through AF_PACKET sockets (`packet:`).
    pub const PACKET: DeviceKind = DeviceKind::new("packet");
}

/// The registry's entry for `packet:`.
pub(crate) const PACKET: DeviceType = DeviceType {
    kind: DeviceKind::PACKET,
    parse: |p| parse(p).map(PortSpec::new),
    rebuild: Some(rebuild),
    adopt: None,
};

/// A `packet:` spec body.
fn parse(p: &Parser<'_>) -> Result<PacketConfig> {
    let mut cfg = PacketConfig::default();
    let mut v3 = false;
    let mut timeout = None;
    let u32_key =
        |key, value, min| -> Result<u32> { Ok(p.number(key, value, min, u32::MAX as u64)? as u32) };
    for &(key, value) in p.items(KEYS)? {
        match key {
            "iface" => {
                let name = p.need(key, value)?;
                validate_name(&name).map_err(|e| p.err(key, e.to_string()))?;
                cfg.iface = name;
            }
            "ifindex" => cfg.ifindex = Some(u32_key(key, value, 1)?),
            "fanout" => {
                let v = p.need(key, value)?;
                cfg.fanout.mode = FanoutMode::ALL
                    .into_iter()
                    .find(|m| m.name() == v)
                    .ok_or_else(|| {
                        let names: Vec<&str> = FanoutMode::ALL.iter().map(|m| m.name()).collect();
                        p.err(key, format!("unknown mode {v:?}: use {}", names.join(", ")))
                    })?;
            }
            "fanout_defrag" => cfg.fanout.defrag = p.flag(key, value)?,
            "fanout_rollover" => cfg.fanout.rollover = p.flag(key, value)?,
            "frame_size" => cfg.frame_size = u32_key(key, value, 1)?,
            "frames" => cfg.frame_count = u32_key(key, value, 1)?,
            "block_size" => cfg.block_size = u32_key(key, value, 1)?,
            "tpacket" => {
                v3 = match p.need(key, value)?.as_str() {
                    "2" | "v2" => false,
                    "3" | "v3" => true,
                    other => return Err(p.err(key, format!("{other:?}: use 2 or 3"))),
                }
            }
            "block_timeout" => timeout = Some(u32_key(key, value, 0)?),
            "qdisc_bypass" => cfg.qdisc_bypass = p.flag(key, value)?,
            "kick" => {
                cfg.kick = match p.need(key, value)?.as_str() {
                    "uring" | "io_uring" => Kick::Uring,
                    "sendto" | "send" => Kick::Sendto,
                    other => {
                        return Err(
                            p.err(key, format!("unknown kick {other:?}: use uring or sendto"))
                        )
                    }
                }
            }
            "sq_size" => cfg.sq_size = u32_key(key, value, 1)?,
            "sqpoll_idle" => cfg.sqpoll.idle_ms = u32_key(key, value, 0)?,
            "sqpoll_cpu" => cfg.sqpoll.cpu = Some(u32_key(key, value, 0)?),
            "offload" => cfg.offload = p.flag(key, value)?,
            _ => {}
        }
    }
    match (v3, timeout) {
        (true, t) => {
            cfg.tpacket = Tpacket::V3 {
                block_timeout_ms: t.unwrap_or(0),
            }
        }
        (false, Some(_)) => {
            return Err(p.err(
                "block_timeout",
                "applies to TPACKET_V3 rings only: add tpacket=3".into(),
            ))
        }
        (false, None) => {}
    }
    if cfg.iface.is_empty() && cfg.ifindex.is_none() {
        return Err(p.err(
            "iface",
            "a packet port needs iface=NAME (or ifindex=N)".into(),
        ));
    }
    if !cfg.iface.is_empty() && cfg.ifindex.is_some() {
        return Err(p.err("ifindex", "give iface or ifindex, not both".into()));
    }
    p.common(&mut cfg.port)?;
    // Geometry and the rest, with the rule that broke named under its key.
    p.checked(cfg.validate(), &[("frame_count", "frames")])?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use crate::afpacket::{FanoutMode, PacketConfig, Tpacket};
    use crate::device::keys::spec_error_key as bad_key;
    use crate::device::DeviceKind;
    use crate::parse_port_spec;
    use crate::queue::Kick;

    fn packet(spec: &str) -> PacketConfig {
        let s = parse_port_spec(spec).unwrap();
        assert_eq!(s.kind(), DeviceKind::PACKET, "{spec}");
        s.as_packet().expect("a packet spec").clone()
    }

    #[test]
    fn defaults() {
        let c = packet("packet:iface=veth0");
        assert_eq!(c, PacketConfig::new("veth0"));
        assert_eq!(c.kick, Kick::Sendto);
        assert!(!c.offload);
        assert_eq!(c.port.queues, 1);
        assert_eq!(
            parse_port_spec("packet:iface=veth0").unwrap().kind(),
            DeviceKind::PACKET
        );
    }

    #[test]
    fn every_key() {
        let c = packet(
            "packet:iface=eth1,queues=4,fanout=lb,fanout_defrag=off,fanout_rollover=on,\
             frame_size=4096,frames=256,block_size=8192,tpacket=3,block_timeout=2,\
             qdisc_bypass,kick=sendto,sq_size=128,sqpoll_idle=10,sqpoll_cpu=1,offload=on,\
             netns=blue",
        );
        assert_eq!(c.iface, "eth1");
        assert_eq!(c.port.queues, 4);
        assert_eq!(c.fanout.mode, FanoutMode::Lb);
        assert!(!c.fanout.defrag && c.fanout.rollover);
        assert_eq!(
            (c.frame_size, c.frame_count, c.block_size),
            (4096, 256, 8192)
        );
        assert_eq!(
            c.tpacket,
            Tpacket::V3 {
                block_timeout_ms: 2
            }
        );
        assert!(c.qdisc_bypass && c.offload);
        assert_eq!(c.kick, Kick::Sendto);
        assert_eq!(c.sq_size, 128);
        assert_eq!((c.sqpoll.idle_ms, c.sqpoll.cpu), (10, Some(1)));
        let c = packet("packet:ifindex=7,tpacket=3");
        assert_eq!(c.ifindex, Some(7));
        assert_eq!(
            c.tpacket,
            Tpacket::V3 {
                block_timeout_ms: 0
            }
        );
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(bad_key("packet:queues=2"), "iface");
        assert_eq!(bad_key("packet:iface=a,ifindex=3"), "ifindex");
        assert_eq!(bad_key("packet:iface=a,fanout=spray"), "fanout");
        assert_eq!(bad_key("packet:iface=a,kick=ioctl"), "kick");
        assert_eq!(bad_key("packet:iface=a,tpacket=4"), "tpacket");
        assert_eq!(bad_key("packet:iface=a,block_timeout=5"), "block_timeout");
        assert_eq!(bad_key("packet:iface=a,frame_size=100"), "frame_size");
        assert_eq!(bad_key("packet:iface=a,frames=3"), "frames");
        assert_eq!(bad_key("packet:iface=a,block_size=5000"), "block_size");
        assert_eq!(bad_key("packet:iface=a,sq_size=0"), "sq_size");
        assert_eq!(bad_key("packet:iface=a,backend=rw"), "backend");
        assert_eq!(
            bad_key("packet:iface=a,fanout=rollover,fanout_rollover"),
            "fanout"
        );
        assert_eq!(bad_key("packet:iface=a%d"), "iface");
        let e = parse_port_spec("packet:iface=a,frames=3")
            .unwrap_err()
            .to_string();
        assert!(e.contains("multiple of the slots per block"), "{e}");
    }
}
