//! `xdp:` specs: an existing interface through AF_XDP sockets.
//!
//! ```text
//! xdp:iface=NAME[,queues=N|queue=Q][,mode=auto|copy|zerocopy][,frame=2048|4096]
//!    [,ring=N][,kick=sendto|uring][,sq_size=N][,sqpoll_idle=MS][,sqpoll_cpu=C]
//!    [,need_wakeup=on|off][,prog=builtin|map:PATH|none][,xdp_mode=auto|native|generic]
//!    [,multibuf=on|off]
//!    plus the keys every port takes (see [`parse_port_spec`](crate::parse_port_spec))
//! ```
//!
//! | key            | meaning                                                              |
//! |----------------|----------------------------------------------------------------------|
//! | `iface`        | the interface's name                                                 |
//! | `queue`        | bind one queue, the interface's queue `Q` (`queues=N`: its queues 0..N) |
//! | `mode`         | `auto` (zero-copy where the driver has it, the default), `copy`, `zerocopy` |
//! | `frame`        | UMEM chunk: `2048` or `4096` (aligned; the pool's stride must match); default: the pool's stride |
//! | `ring`         | entries of each ring, a power of two 64..=16384 (default 1024)      |
//! | `kick`         | `sendto` (default) or `uring` (an io_uring send from the SQPOLL thread) |
//! | `sq_size`      | kick ring entries (default 64)                                       |
//! | `sqpoll_idle`, `sqpoll_cpu` | the SQ thread's idle ms (default 50) and CPU            |
//! | `need_wakeup`  | syscalls only when the kernel asks (default on)                     |
//! | `prog`         | `builtin` (rtap's program, default), `map:PATH` (a pinned XSKMAP of the user's program), `none` (tx only) |
//! | `xdp_mode`     | where the program runs: `auto` (default), `native`, `generic`       |
//! | `multibuf`     | frames larger than a chunk (`XDP_USE_SG`, Linux 6.6+; default off)  |

use super::config::{Attach, Prog, XdpConfig, XdpMode};
use crate::device::keys::Parser;
use crate::device::{DeviceKind, DeviceType, PortSpec};
use crate::error::Result;
use crate::queue::Kick;

/// The keys of an `xdp:` spec besides the common ones.
pub const KEYS: &[&str] = &[
    "iface",
    "queue",
    "mode",
    "frame",
    "ring",
    "kick",
    "sq_size",
    "sqpoll_idle",
    "sqpoll_cpu",
    "need_wakeup",
    "prog",
    "xdp_mode",
    "multibuf",
];

impl DeviceKind {
    /// An existing interface through AF_XDP sockets (`xdp:`).
    pub const XDP: DeviceKind = DeviceKind::new("xdp");
}

/// The registry's entry for `xdp:`: an xdp port cannot be served (its UMEM is
/// a pool of the process that opened it).
pub(crate) const XDP: DeviceType = DeviceType {
    kind: DeviceKind::XDP,
    parse: |p| parse(p).map(PortSpec::new),
    rebuild: None,
    adopt: None,
};

/// An `xdp:` spec body.
fn parse(p: &Parser<'_>) -> Result<XdpConfig> {
    let mut cfg = XdpConfig::new("");
    let mut queue = None;
    let u32_key =
        |key, value, min| -> Result<u32> { Ok(p.number(key, value, min, u32::MAX as u64)? as u32) };
    let word = |key: &str, value| -> Result<String> { p.need(key, value) };
    for &(key, value) in p.items(KEYS)? {
        match key {
            "iface" => cfg.iface = word(key, value)?,
            "queue" => queue = Some(u32_key(key, value, 0)?),
            "mode" => {
                cfg.mode = match word(key, value)?.as_str() {
                    "auto" => XdpMode::Auto,
                    "copy" => XdpMode::Copy,
                    "zerocopy" | "zc" => XdpMode::ZeroCopy,
                    o => return Err(p.err(key, format!("{o:?}: use auto, copy or zerocopy"))),
                }
            }
            "frame" => cfg.frame = Some(u32_key(key, value, 1)?),
            "ring" => cfg.ring = u32_key(key, value, 1)?,
            "kick" => {
                cfg.kick = match word(key, value)?.as_str() {
                    "uring" | "io_uring" => Kick::Uring,
                    "sendto" | "send" => Kick::Sendto,
                    o => return Err(p.err(key, format!("unknown kick {o:?}: use uring or sendto"))),
                }
            }
            "sq_size" => cfg.sq_size = u32_key(key, value, 1)?,
            "sqpoll_idle" => cfg.sqpoll.idle_ms = u32_key(key, value, 0)?,
            "sqpoll_cpu" => cfg.sqpoll.cpu = Some(u32_key(key, value, 0)?),
            "need_wakeup" => cfg.need_wakeup = p.flag(key, value)?,
            "prog" => {
                let v = word(key, value)?;
                cfg.prog = match v.as_str() {
                    "builtin" => Prog::Builtin,
                    "none" => Prog::None,
                    _ => match v.strip_prefix("map:") {
                        Some(path) if !path.is_empty() => Prog::Map(path.to_string()),
                        _ => {
                            return Err(p.err(key, format!("{v:?}: use builtin, map:PATH or none")))
                        }
                    },
                }
            }
            "xdp_mode" => {
                cfg.attach = match word(key, value)?.as_str() {
                    "auto" => Attach::Auto,
                    "native" | "drv" => Attach::Native,
                    "generic" | "skb" => Attach::Generic,
                    o => return Err(p.err(key, format!("{o:?}: use auto, native or generic"))),
                }
            }
            "multibuf" => cfg.multibuf = p.flag(key, value)?,
            _ => {}
        }
    }
    if cfg.iface.is_empty() {
        return Err(p.err("iface", "an xdp port needs iface=NAME".into()));
    }
    p.common(&mut cfg.port)?;
    if let Some(q) = queue {
        if p.has("queues") {
            return Err(p.err(
                "queue",
                "give queue=Q (one queue) or queues=N (queues 0..N), not both".into(),
            ));
        }
        cfg.first_queue = q;
        cfg.port.queues = 1;
    }
    p.checked(cfg.validate(), &[])?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use crate::device::keys::spec_error_key as bad_key;
    use crate::device::DeviceKind;
    use crate::parse_port_spec;
    use crate::queue::Kick;
    use crate::xdp::{Attach, Prog, XdpConfig, XdpMode};

    fn xdp(spec: &str) -> XdpConfig {
        let s = parse_port_spec(spec).unwrap();
        assert_eq!(s.kind(), DeviceKind::XDP, "{spec}");
        s.as_xdp().expect("an xdp spec").clone()
    }

    #[test]
    fn defaults_and_every_key() {
        assert_eq!(xdp("xdp:iface=veth0"), XdpConfig::new("veth0"));
        let c = xdp(
            "xdp:iface=eth1,queues=4,mode=copy,frame=4096,ring=2048,kick=uring,sq_size=128,\
             sqpoll_idle=10,sqpoll_cpu=1,need_wakeup=off,prog=map:/sys/fs/bpf/xsks,\
             xdp_mode=generic,multibuf=off,netns=blue",
        );
        assert_eq!(c.iface, "eth1");
        assert_eq!((c.port.queues, c.first_queue), (4, 0));
        assert_eq!(c.mode, XdpMode::Copy);
        assert_eq!((c.frame, c.ring), (Some(4096), 2048));
        assert_eq!((c.kick, c.sq_size), (Kick::Uring, 128));
        assert_eq!((c.sqpoll.idle_ms, c.sqpoll.cpu), (10, Some(1)));
        assert!(!c.need_wakeup && !c.multibuf);
        assert_eq!(c.prog, Prog::Map("/sys/fs/bpf/xsks".into()));
        assert_eq!(c.attach, Attach::Generic);
        let c = xdp("xdp:iface=eth1,queue=3,prog=none,mode=zerocopy,xdp_mode=native");
        assert_eq!((c.port.queues, c.first_queue), (1, 3));
        assert_eq!(
            (c.prog, c.mode, c.attach),
            (Prog::None, XdpMode::ZeroCopy, Attach::Native)
        );
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(bad_key("xdp:queues=2"), "iface");
        assert_eq!(bad_key("xdp:iface=a,queue=1,queues=2"), "queue");
        assert_eq!(bad_key("xdp:iface=a,mode=fast"), "mode");
        assert_eq!(bad_key("xdp:iface=a,frame=3000"), "frame");
        assert_eq!(bad_key("xdp:iface=a,ring=1000"), "ring");
        assert_eq!(bad_key("xdp:iface=a,kick=ioctl"), "kick");
        assert_eq!(bad_key("xdp:iface=a,prog=map:"), "prog");
        assert_eq!(bad_key("xdp:iface=a,prog=mine"), "prog");
        assert_eq!(bad_key("xdp:iface=a,prog=map:relative"), "prog");
        assert_eq!(bad_key("xdp:iface=a,xdp_mode=hw"), "xdp_mode");
        assert_eq!(bad_key("xdp:iface=a,need_wakeup=maybe"), "need_wakeup");
        assert_eq!(bad_key("xdp:iface=a%d"), "iface");
        assert_eq!(bad_key("xdp:iface=a,multibuf=maybe"), "multibuf");
        assert!(crate::parse_port_spec("xdp:iface=a,multibuf=on").is_ok());
        assert_eq!(bad_key("xdp:iface=a,backend=rw"), "backend");
    }
}
