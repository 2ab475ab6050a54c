//! Port spec strings: a one-line description of a TAP port, for command lines.
//!
//! ```text
//! tap:iface=NAME[,queues=N][,persist][,attach][,backend=uring|sync|rw][,ring=SIZE]
//!    [,burst=N][,sqpoll=IDLE_MS][,sqpoll_cpu=C][,rx_mode=posted|multishot]
//! ```
//!
//! | key          | meaning                                                             |
//! |--------------|---------------------------------------------------------------------|
//! | `iface`      | interface name or template with one `%d` (default `rtap%d`)        |
//! | `queues`     | queue pairs, 1..=128 (default 1)                                    |
//! | `persist`    | keep the interface after the port closes (`persist=0` turns it off) |
//! | `attach`     | use an existing interface, never create one                         |
//! | `backend`    | `uring` (default), or `rw` / `sync` for read/write syscalls          |
//! | `ring`       | io_uring sizes: tx ring entries and posted rx reads, 1..=32768     |
//! | `burst`      | suggested burst size for applications, 1..=65535                    |
//! | `sqpoll`     | run an SQPOLL kernel thread that idles after this many ms          |
//! | `sqpoll_cpu` | pin the SQPOLL thread to this CPU (needs `sqpoll`)                  |
//! | `rx_mode`    | io_uring rx strategy: `posted` reads (default) or `multishot`       |
//!
//! Each key may appear once. Errors are [`Error::Spec`] naming the key at fault.
//!
//! ```
//! let cfg = rtap::parse_port_spec("tap:iface=tap0,queues=2,backend=rw").unwrap();
//! assert_eq!(cfg.name, "tap0");
//! assert_eq!(cfg.rx_queues, 2);
//! assert_eq!(cfg.backend, rtap::BackendKind::Rw);
//! ```

use std::str::FromStr;

use crate::backend::uring::{RxMode, SqPoll};
use crate::backend::BackendKind;
use crate::error::{Error, Result};
use crate::tap::config::{validate_name, TapConfig, MAX_QUEUES};
use crate::tap::link::parse_mac;
use crate::tap::{Netns, Offloads};

/// The prefix every port spec starts with.
pub const SPEC_PREFIX: &str = "tap:";

/// Every key a spec may hold.
pub const SPEC_KEYS: &[&str] = &[
    "iface",
    "queues",
    "persist",
    "attach",
    "backend",
    "ring",
    "burst",
    "sqpoll",
    "sqpoll_cpu",
    "rx_mode",
    "offload",
    "netns",
    "mtu",
    "mac",
    "promisc",
    "owner",
    "group",
];

/// Parses a port spec string into a [`TapConfig`] (see the [module docs](self)).
/// Keys not given keep their [`TapConfig::default`] values.
pub fn parse_port_spec(spec: &str) -> Result<TapConfig> {
    let err = |key: &str, why: String| Error::Spec {
        spec: spec.to_string(),
        key: key.to_string(),
        why,
    };
    let body = spec.trim();
    let body = match body.strip_prefix(SPEC_PREFIX) {
        Some(b) => b,
        None => {
            let why = match body.split_once(':') {
                Some((kind, _)) if !kind.contains('=') && !kind.contains(',') => {
                    format!(
                        "unknown port type `{kind}`: only `tap:` ports exist (e.g. tap:iface=tap0)"
                    )
                }
                _ => "a port spec must start with `tap:` (e.g. tap:iface=tap0,queues=2)".into(),
            };
            return Err(err("tap", why));
        }
    };

    // Ports from specs ask for every offload unless `offload=off` (the library's
    // own default, for code that builds a TapConfig, is no offload).
    let mut cfg = TapConfig {
        offloads: Offloads::ALL,
        ..TapConfig::default()
    };
    let mut seen: Vec<&str> = Vec::new();
    let mut sqpoll_cpu: Option<u32> = None;
    let mut sqpoll_idle: Option<u32> = None;

    if body.trim().is_empty() {
        return Ok(cfg);
    }
    for item in body.split(',') {
        let item = item.trim();
        let (key, value) = match item.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (item, None),
        };
        if key.is_empty() {
            return Err(err(
                "",
                format!("empty key in item {item:?} (a stray comma or `=`?)"),
            ));
        }
        if !SPEC_KEYS.contains(&key) {
            return Err(err(
                key,
                format!("unknown key; valid keys are {}", SPEC_KEYS.join(", ")),
            ));
        }
        if seen.contains(&key) {
            return Err(err(key, "given more than once".into()));
        }
        seen.push(key);

        let need = |v: Option<&str>| -> Result<String> {
            match v {
                Some(v) if !v.is_empty() => Ok(v.to_string()),
                _ => Err(err(key, format!("needs a value ({key}=...)"))),
            }
        };
        let number = |v: Option<&str>, min: u64, max: u64| -> Result<u64> {
            let v = need(v)?;
            let n: u64 = v
                .parse()
                .map_err(|_| err(key, format!("{v:?} is not a number")))?;
            if n < min || n > max {
                return Err(err(key, format!("{n} is out of range {min}..={max}")));
            }
            Ok(n)
        };
        let flag = |v: Option<&str>| -> Result<bool> {
            match v {
                None => Ok(true),
                Some("1" | "true" | "yes" | "on") => Ok(true),
                Some("0" | "false" | "no" | "off") => Ok(false),
                Some(other) => Err(err(
                    key,
                    format!("{other:?} is not a boolean (give `{key}` alone, or {key}=0/1)"),
                )),
            }
        };

        match key {
            "iface" => {
                let name = need(value)?;
                validate_name(&name).map_err(|e| err(key, e.to_string()))?;
                cfg.name = name;
            }
            "queues" => {
                let n = number(value, 1, MAX_QUEUES as u64)? as u16;
                cfg.rx_queues = n;
                cfg.tx_queues = n;
            }
            "persist" => cfg.persist = flag(value)?,
            "netns" => {
                let n = need(value)?;
                if n.contains('/') {
                    return Err(err(
                        key,
                        format!("{n:?}: give a name from /run/netns, not a path"),
                    ));
                }
                cfg.netns = Some(Netns::Named(n));
            }
            "mtu" => cfg.mtu = Some(number(value, 68, 65535)? as u32),
            "mac" => {
                let v = need(value)?;
                let mac = parse_mac(&v).ok_or_else(|| {
                    err(
                        key,
                        format!("{v:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"),
                    )
                })?;
                cfg.mac = Some(mac);
            }
            "promisc" => cfg.promisc = Some(flag(value)?),
            "owner" => cfg.owner = Some(number(value, 0, u32::MAX as u64 - 1)? as u32),
            "group" => cfg.group = Some(number(value, 0, u32::MAX as u64 - 1)? as u32),
            "offload" => {
                cfg.offloads = if flag(value)? {
                    Offloads::ALL
                } else {
                    Offloads::NONE
                }
            }
            "attach" => cfg.attach = flag(value)?,
            "backend" => {
                cfg.backend = match need(value)?.as_str() {
                    "uring" | "io_uring" => BackendKind::Uring,
                    "rw" | "sync" => BackendKind::Rw,
                    other => {
                        return Err(err(
                            key,
                            format!("unknown backend {other:?}: use uring, rw or sync"),
                        ))
                    }
                }
            }
            "ring" => {
                let n = number(value, 1, 32768)? as u32;
                cfg.ring.tx_entries = n;
                cfg.ring.rx_posted = n;
            }
            "burst" => cfg.burst = number(value, 1, u16::MAX as u64)? as u16,
            "sqpoll" => sqpoll_idle = Some(number(value, 0, u32::MAX as u64)? as u32),
            "sqpoll_cpu" => sqpoll_cpu = Some(number(value, 0, u32::MAX as u64)? as u32),
            "rx_mode" => {
                cfg.ring.rx_mode = match need(value)?.as_str() {
                    "auto" => RxMode::Auto,
                    "posted" => RxMode::Posted,
                    "multishot" => RxMode::Multishot,
                    other => {
                        return Err(err(
                            key,
                            format!("unknown rx mode {other:?}: use auto, posted or multishot"),
                        ))
                    }
                }
            }
            _ => unreachable!("every key in SPEC_KEYS is handled"),
        }
    }

    match (sqpoll_idle, sqpoll_cpu) {
        (Some(idle_ms), cpu) => cfg.ring.sqpoll = Some(SqPoll { idle_ms, cpu }),
        (None, Some(_)) => {
            return Err(err(
                "sqpoll_cpu",
                "needs sqpoll=IDLE_MS as well (it pins the SQPOLL thread)".into(),
            ))
        }
        (None, None) => {}
    }
    // Everything was checked key by key; this catches any rule added to
    // TapConfig::validate later.
    cfg.validate().map_err(|e| err("", e.to_string()))?;
    Ok(cfg)
}

impl FromStr for TapConfig {
    type Err = Error;

    /// Same as [`parse_port_spec`].
    fn from_str(s: &str) -> Result<TapConfig> {
        parse_port_spec(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad_key(spec: &str) -> String {
        match parse_port_spec(spec) {
            Err(Error::Spec { key, spec: s, why }) => {
                assert_eq!(s, spec);
                assert!(!why.is_empty());
                key
            }
            other => panic!("{spec:?}: expected a spec error, got {other:?}"),
        }
    }

    #[test]
    fn minimal() {
        let c = parse_port_spec("tap:iface=tap0").unwrap();
        assert_eq!(
            c,
            TapConfig {
                name: "tap0".into(),
                offloads: Offloads::ALL,
                ..TapConfig::default()
            }
        );
        // No keys at all: every default, the name template included.
        assert_eq!(
            parse_port_spec("tap:").unwrap(),
            TapConfig {
                offloads: Offloads::ALL,
                ..TapConfig::default()
            }
        );
        assert_eq!(
            parse_port_spec("tap:offload=off").unwrap().offloads,
            Offloads::NONE
        );
        assert_eq!(
            parse_port_spec("tap:offload=on").unwrap().offloads,
            Offloads::ALL
        );
    }

    #[test]
    fn everything() {
        let c = parse_port_spec(
            "tap:iface=rt%d,queues=4,persist,attach,backend=sync,ring=512,burst=64,sqpoll=10,sqpoll_cpu=1,rx_mode=multishot",
        )
        .unwrap();
        assert_eq!(c.name, "rt%d");
        assert_eq!((c.rx_queues, c.tx_queues), (4, 4));
        assert!(c.persist && c.attach);
        assert_eq!(c.backend, BackendKind::Rw);
        assert_eq!((c.ring.tx_entries, c.ring.rx_posted), (512, 512));
        assert_eq!(c.burst, 64);
        assert_eq!(c.ring.rx_mode, RxMode::Multishot);
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
        let b = |s: &str| parse_port_spec(s).unwrap().backend;
        assert_eq!(b("tap:iface=a,backend=rw"), BackendKind::Rw);
        assert_eq!(b("tap:iface=a,backend=sync"), BackendKind::Rw);
        assert_eq!(b("tap:iface=a,backend=uring"), BackendKind::Uring);
        assert!(!parse_port_spec("tap:iface=a,persist=0").unwrap().persist);
        assert!(parse_port_spec("tap:iface=a,persist=yes").unwrap().persist);
        let c = parse_port_spec("tap:iface=a,sqpoll=0").unwrap();
        assert_eq!(
            c.ring.sqpoll,
            Some(SqPoll {
                idle_ms: 0,
                cpu: None
            })
        );
        // Spaces around items are tolerated, the order of keys does not matter.
        let c: TapConfig = " tap: queues=2 , iface=x ".parse().unwrap();
        assert_eq!((c.name.as_str(), c.rx_queues), ("x", 2));
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(bad_key("iface=tap0"), "tap");
        assert_eq!(bad_key("pcap:iface=tap0"), "tap");
        assert_eq!(bad_key(""), "tap");
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
