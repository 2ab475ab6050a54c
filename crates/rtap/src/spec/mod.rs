//! Port specs: a one-line description of a port, for command lines, parsed into
//! a [`PortSpec`]. A spec is `KIND:KEY=VALUE,...`; each kind has its own keys
//! plus the keys every port has:
//!
//! ```text
//! [,queues=N][,burst=N][,netns=NAME][,mtu=N][,mac=XX:XX:XX:XX:XX:XX][,promisc=on|off]
//! ```
//!
//! | key          | meaning                                                             |
//! |--------------|---------------------------------------------------------------------|
//! | `queues`     | queue pairs, 1..=128 (default 1)                                    |
//! | `burst`      | suggested burst size for applications, 1..=65535                    |
//! | `netns`      | the interface lives in this named network namespace (`/run/netns`)  |
//! | `mtu`, `mac`, `promisc` | link settings applied at open                            |
//!
//! Devices whose queues are fds read and written by the fd engines (`tap:`)
//! also take the engine keys:
//!
//! ```text
//! [,backend=uring|rw|sync][,ring=SIZE][,sqpoll=IDLE_MS][,sqpoll_cpu=C]
//! [,rx_mode=auto|posted|multishot]
//! ```
//!
//! | key          | meaning                                                             |
//! |--------------|---------------------------------------------------------------------|
//! | `backend`    | `uring` (default), or `rw` / `sync` for read/write syscalls          |
//! | `ring`       | io_uring sizes: tx ring entries and posted rx reads, 1..=32768     |
//! | `sqpoll`     | run an SQPOLL kernel thread that idles after this many ms          |
//! | `sqpoll_cpu` | pin the SQPOLL thread to this CPU (needs `sqpoll`)                  |
//! | `rx_mode`    | io_uring rx engine: `auto` (default), `posted` or `multishot`       |
//!
//! Kinds: `tap:` ([`tap`] lists its keys) and `packet:` ([`packet`]). Each key may appear once. Errors are
//! [`Error::Spec`] naming the key at fault.
//!
//! ```
//! let spec = rtap::parse_port_spec("tap:iface=tap0,queues=2,backend=rw").unwrap();
//! let tap = spec.as_tap().unwrap();
//! assert_eq!(tap.name, "tap0");
//! assert_eq!(spec.options().queues, 2);
//! assert_eq!(tap.backend, rtap::BackendKind::Rw);
//! ```

pub mod packet;
pub mod shared;
pub mod tap;

use std::str::FromStr;

use crate::backend::uring::{RingConfig, RxMode, SqPoll};
use crate::backend::BackendKind;
use crate::error::{Error, Result};
use crate::packet::PacketConfig;
use crate::port::device::{Device, Opened};
use crate::port::{Netns, PortOptions, MAX_QUEUES};
use crate::share::SharedConfig;
use crate::tap::TapConfig;
use crate::wire::mac::MacAddr;

/// A port of some kind of device, as a spec string describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PortSpec {
    /// A TAP interface.
    Tap(TapConfig),
    /// An existing interface through AF_PACKET sockets.
    Packet(PacketConfig),
    /// Queues of a port another process serves.
    Shared(SharedConfig),
}

/// The kinds a spec may start with.
pub const KINDS: &[&str] = &["tap", "tun", "packet", "shared"];

/// Keys every kind takes.
pub const COMMON_KEYS: &[&str] = &["queues", "burst", "netns", "mtu", "mac", "promisc"];

/// Keys of the kinds driven by the fd engines (read/write or io_uring on a queue fd).
pub const FD_ENGINE_KEYS: &[&str] = &["backend", "ring", "sqpoll", "sqpoll_cpu", "rx_mode"];

impl PortSpec {
    /// The device kind (`"tap"`, `"packet"`).
    pub fn kind(&self) -> &'static str {
        match self {
            PortSpec::Tap(c) if c.tun => "tun",
            PortSpec::Tap(_) => "tap",
            PortSpec::Packet(_) => "packet",
            PortSpec::Shared(_) => "shared",
        }
    }

    /// The settings every port has.
    pub fn options(&self) -> &PortOptions {
        match self {
            PortSpec::Tap(c) => &c.port,
            PortSpec::Packet(c) => &c.port,
            PortSpec::Shared(c) => &c.port,
        }
    }

    /// The settings every port has, to change.
    pub fn options_mut(&mut self) -> &mut PortOptions {
        match self {
            PortSpec::Tap(c) => &mut c.port,
            PortSpec::Packet(c) => &mut c.port,
            PortSpec::Shared(c) => &mut c.port,
        }
    }

    /// The TAP configuration, if this is a TAP port.
    pub fn as_tap(&self) -> Option<&TapConfig> {
        match self {
            PortSpec::Tap(c) => Some(c),
            _ => None,
        }
    }

    /// The AF_PACKET configuration, if this is a packet port.
    pub fn as_packet(&self) -> Option<&PacketConfig> {
        match self {
            PortSpec::Packet(c) => Some(c),
            _ => None,
        }
    }

    /// Checks everything that can be checked without the kernel.
    pub fn validate(&self) -> Result<()> {
        match self {
            PortSpec::Tap(c) => c.validate(),
            PortSpec::Packet(c) => c.validate(),
            PortSpec::Shared(c) => c.validate(),
        }
    }

    /// Creates or attaches the device (in the calling thread's namespace).
    pub(crate) fn open_device(&self) -> Result<(std::sync::Arc<dyn Device>, Opened)> {
        match self {
            PortSpec::Tap(c) => {
                let (dev, iface) = crate::tap::device::open(c)?;
                Ok((std::sync::Arc::new(dev), iface))
            }
            PortSpec::Packet(c) => {
                let (dev, iface) = crate::packet::device::open(c)?;
                Ok((std::sync::Arc::new(dev), iface))
            }
            PortSpec::Shared(c) => {
                let (dev, iface) = crate::share::device::open(c)?;
                Ok((std::sync::Arc::new(dev), iface))
            }
        }
    }
}

impl From<TapConfig> for PortSpec {
    fn from(c: TapConfig) -> PortSpec {
        PortSpec::Tap(c)
    }
}

impl From<SharedConfig> for PortSpec {
    fn from(c: SharedConfig) -> PortSpec {
        PortSpec::Shared(c)
    }
}

impl From<PacketConfig> for PortSpec {
    fn from(c: PacketConfig) -> PortSpec {
        PortSpec::Packet(c)
    }
}

impl FromStr for PortSpec {
    type Err = Error;

    /// Same as [`parse_port_spec`].
    fn from_str(s: &str) -> Result<PortSpec> {
        parse_port_spec(s)
    }
}

/// Parses a port spec string (see the [module docs](self)). Keys not given keep
/// their defaults.
pub fn parse_port_spec(spec: &str) -> Result<PortSpec> {
    let body = spec.trim();
    let example = "e.g. tap:iface=tap0,queues=2";
    match body.split_once(':') {
        Some(("tap", rest)) => tap::parse(&Parser::new(spec, rest)?).map(PortSpec::Tap),
        Some(("tun", rest)) => tap::parse_tun(&Parser::new(spec, rest)?).map(PortSpec::Tap),
        Some(("packet", rest)) => packet::parse(&Parser::new(spec, rest)?).map(PortSpec::Packet),
        Some(("shared", rest)) => shared::parse(&Parser::new(spec, rest)?).map(PortSpec::Shared),
        Some((kind, _)) if !kind.contains('=') && !kind.contains(',') => Err(spec_err(
            spec,
            "kind",
            format!(
                "unknown port kind `{kind}`: the kinds are {} ({example})",
                KINDS.join(", ")
            ),
        )),
        _ => Err(spec_err(
            spec,
            "kind",
            format!("a port spec starts with its kind and a colon ({example})"),
        )),
    }
}

fn spec_err(spec: &str, key: &str, why: String) -> Error {
    Error::Spec {
        spec: spec.to_string(),
        key: key.to_string(),
        why,
    }
}

/// Why a `backend=` value is refused.
fn bad_backend(v: &str) -> String {
    format!("unknown backend {v:?}: use uring (io_uring) or rw (read/write)")
}

/// The `KEY[=VALUE]` items of a spec body, checked for empty and repeated keys,
/// with value parsers whose errors name the key.
pub(crate) struct Parser<'a> {
    spec: &'a str,
    items: Vec<(&'a str, Option<&'a str>)>,
}

impl<'a> Parser<'a> {
    fn new(spec: &'a str, body: &'a str) -> Result<Parser<'a>> {
        let mut items: Vec<(&str, Option<&str>)> = Vec::new();
        if !body.trim().is_empty() {
            for item in body.split(',') {
                let item = item.trim();
                let (key, value) = match item.split_once('=') {
                    Some((k, v)) => (k.trim(), Some(v.trim())),
                    None => (item, None),
                };
                if key.is_empty() {
                    return Err(spec_err(
                        spec,
                        "",
                        format!("empty key in item {item:?} (a stray comma or `=`?)"),
                    ));
                }
                if items.iter().any(|(k, _)| *k == key) {
                    return Err(spec_err(spec, key, "given more than once".into()));
                }
                items.push((key, value));
            }
        }
        Ok(Parser { spec, items })
    }

    /// The items, after checking every key is one of `kind_keys` or [`COMMON_KEYS`].
    pub(crate) fn items(&self, kind_keys: &[&str]) -> Result<&[(&'a str, Option<&'a str>)]> {
        for (key, _) in &self.items {
            if !kind_keys.contains(key) && !COMMON_KEYS.contains(key) {
                let all: Vec<&str> = kind_keys.iter().chain(COMMON_KEYS).copied().collect();
                return Err(self.err(
                    key,
                    format!("unknown key; valid keys are {}", all.join(", ")),
                ));
            }
        }
        Ok(&self.items)
    }

    pub(crate) fn err(&self, key: &str, why: String) -> Error {
        spec_err(self.spec, key, why)
    }

    pub(crate) fn need(&self, key: &str, v: Option<&str>) -> Result<String> {
        match v {
            Some(v) if !v.is_empty() => Ok(v.to_string()),
            _ => Err(self.err(key, format!("needs a value ({key}=...)"))),
        }
    }

    pub(crate) fn number(&self, key: &str, v: Option<&str>, min: u64, max: u64) -> Result<u64> {
        let v = self.need(key, v)?;
        let n: u64 = v
            .parse()
            .map_err(|_| self.err(key, format!("{v:?} is not a number")))?;
        if n < min || n > max {
            return Err(self.err(key, format!("{n} is out of range {min}..={max}")));
        }
        Ok(n)
    }

    pub(crate) fn flag(&self, key: &str, v: Option<&str>) -> Result<bool> {
        match v {
            None => Ok(true),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(other) => Err(self.err(
                key,
                format!("{other:?} is not a boolean (give `{key}` alone, or {key}=0/1)"),
            )),
        }
    }

    /// Applies the common keys to `opts` (other keys are the caller's).
    pub(crate) fn common(&self, opts: &mut PortOptions) -> Result<()> {
        for &(key, value) in &self.items {
            match key {
                "queues" => opts.queues = self.number(key, value, 1, MAX_QUEUES as u64)? as u16,
                "burst" => opts.burst = self.number(key, value, 1, u16::MAX as u64)? as u16,
                "netns" => {
                    let n = self.need(key, value)?;
                    if n.contains('/') {
                        return Err(self.err(
                            key,
                            format!("{n:?}: give a name from /run/netns, not a path"),
                        ));
                    }
                    opts.netns = Some(Netns::Named(n));
                }
                "mtu" => opts.mtu = Some(self.number(key, value, 68, 65535)? as u32),
                "mac" => {
                    let v = self.need(key, value)?;
                    let mac: MacAddr = v.parse().map_err(|e| self.err(key, format!("{e}")))?;
                    opts.mac = Some(mac);
                }
                "promisc" => opts.promisc = Some(self.flag(key, value)?),
                _ => {}
            }
        }
        Ok(())
    }

    /// Applies the fd-engine keys ([`FD_ENGINE_KEYS`]) to `backend` and `ring`,
    /// then checks that `sqpoll_cpu` comes with `sqpoll`.
    pub(crate) fn fd_engine(&self, backend: &mut BackendKind, ring: &mut RingConfig) -> Result<()> {
        let (mut sqpoll_idle, mut sqpoll_cpu) = (None, None);
        for &(key, value) in &self.items {
            match key {
                "backend" => {
                    let v = self.need(key, value)?;
                    *backend = match v.as_str() {
                        "uring" => BackendKind::Uring,
                        "rw" => BackendKind::Rw,
                        _ => return Err(self.err(key, bad_backend(&v))),
                    }
                }
                "ring" => {
                    let n = self.number(key, value, 1, 32768)? as u32;
                    ring.tx_entries = n;
                    ring.rx_posted = n;
                }
                "sqpoll" => sqpoll_idle = Some(self.number(key, value, 0, u32::MAX as u64)? as u32),
                "sqpoll_cpu" => {
                    sqpoll_cpu = Some(self.number(key, value, 0, u32::MAX as u64)? as u32)
                }
                "rx_mode" => {
                    ring.rx_mode = match self.need(key, value)?.as_str() {
                        "auto" => RxMode::Auto,
                        "posted" => RxMode::Posted,
                        "multishot" => RxMode::Multishot,
                        other => {
                            return Err(self.err(
                                key,
                                format!("unknown rx mode {other:?}: use auto, posted or multishot"),
                            ))
                        }
                    }
                }
                _ => {}
            }
        }
        match (sqpoll_idle, sqpoll_cpu) {
            (Some(idle_ms), cpu) => {
                let sp = SqPoll::new(idle_ms);
                ring.sqpoll = Some(match cpu {
                    Some(c) => sp.cpu(c),
                    None => sp,
                });
            }
            (None, Some(_)) => {
                return Err(self.err(
                    "sqpoll_cpu",
                    "needs sqpoll=IDLE_MS as well (it pins the SQPOLL thread)".into(),
                ))
            }
            (None, None) => {}
        }
        Ok(())
    }
}
