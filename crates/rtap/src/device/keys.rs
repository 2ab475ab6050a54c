//! The port-spec parser core: the `KEY[=VALUE]` items of a spec's body, the
//! value parsers (their errors name the key), and the keys every port takes
//! ([`COMMON_KEYS`]) or every fd-engine device takes ([`FD_ENGINE_KEYS`]). A
//! device's own keys are its spec module's; the prefix is the port layer's
//! registry's. The syntax is documented on
//! [`parse_port_spec`](crate::parse_port_spec).

use super::netns::Netns;
use super::options::{PortOptions, MAX_QUEUES};
use crate::backend::uring::{RingConfig, RxMode, SqPoll};
use crate::backend::BackendKind;
use crate::error::{Error, Result};
use crate::wire::mac::MacAddr;
use crate::wire::prefix::IpPrefix;

/// Keys every kind takes.
pub const COMMON_KEYS: &[&str] = &[
    "queues", "burst", "netns", "mtu", "mac", "promisc", "addr", "route", "up",
];

/// Keys a spec may give more than once (each adds one more).
const REPEATABLE: &[&str] = &["addr", "route"];

/// Keys of the kinds driven by the fd engines (read/write or io_uring on a queue fd).
pub const FD_ENGINE_KEYS: &[&str] = &["backend", "ring", "sqpoll", "sqpoll_cpu", "rx_mode"];

pub(crate) fn spec_err(spec: &str, key: &str, why: String) -> Error {
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

/// One `KEY[=VALUE]` item.
pub(crate) type Item<'a> = (&'a str, Option<&'a str>);

impl<'a> Parser<'a> {
    pub(crate) fn new(spec: &'a str, body: &'a str) -> Result<Parser<'a>> {
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
                if items.iter().any(|(k, _)| *k == key) && !REPEATABLE.contains(&key) {
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

    /// A parser over some of this spec's items (a device that reads a few keys
    /// its own way hands the rest on).
    pub(crate) fn with_items(&self, items: Vec<Item<'a>>) -> Parser<'a> {
        Parser {
            spec: self.spec,
            items,
        }
    }

    /// True if the spec gives `key`.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.items.iter().any(|(k, _)| *k == key)
    }

    pub(crate) fn err(&self, key: &str, why: String) -> Error {
        spec_err(self.spec, key, why)
    }

    /// A config's own check (`validate`) as a spec error, named after the key
    /// of the field it refuses (the field's name, or its key in `renamed`,
    /// `(field, key)` pairs, where the two differ) if the spec gives that
    /// key, else after none.
    pub(crate) fn checked(&self, r: Result<()>, renamed: &[(&str, &str)]) -> Result<()> {
        r.map_err(|e| {
            let key = match &e {
                Error::InvalidConfig { field, .. } => renamed
                    .iter()
                    .find(|(f, _)| f == field)
                    .map_or(*field, |(_, k)| *k),
                _ => "",
            };
            let key = if self.has(key) { key } else { "" };
            self.err(key, e.to_string())
        })
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
                "addr" | "route" => {
                    let v = self.need(key, value)?;
                    let p: IpPrefix = v.parse().map_err(|e| self.err(key, format!("{e}")))?;
                    if key == "addr" {
                        opts.addrs.push(p);
                    } else if !p.is_network() {
                        return Err(self.err(
                            key,
                            format!(
                                "{p} has host bits set: a route goes to a network ({}?)",
                                p.network()
                            ),
                        ));
                    } else {
                        opts.routes.push(p);
                    }
                }
                "up" => opts.up = self.flag(key, value)?,
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

/// The key a spec error names (a panic if `spec` parses), for the device
/// folders' spec tests.
#[cfg(test)]
pub(crate) fn spec_error_key(spec: &str) -> String {
    match crate::parse_port_spec(spec) {
        Err(Error::Spec { key, spec: s, why }) => {
            assert_eq!(s, spec);
            assert!(!why.is_empty());
            key
        }
        other => panic!("{spec:?}: expected a spec error, got {other:?}"),
    }
}
