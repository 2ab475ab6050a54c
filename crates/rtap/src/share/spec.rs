//! `shared:` specs: queues of a port another process serves (`rtap fwd --serve`).
//!
//! ```text
//! shared:path=PATH[,queues=LIST][,server_uid=UID[+UID..]][,backend=..][,ring=..][,sqpoll=..][,rx_mode=..][,burst=N]
//! ```
//!
//! | key          | meaning                                                        |
//! |--------------|----------------------------------------------------------------|
//! | `path`       | the serving socket: a path, or `@name` (abstract namespace)   |
//! | `queues`     | the served port's queues to attach: `all` (default), `2`, `0+2`, `1-3` |
//! | `server_uid` | users the serving process may run as (default: this process's and root) |
//!
//! The link keys (`mtu`, `mac`, `promisc`) and `netns` are refused: the link
//! and its namespace are the serving process's.

use super::proto::parse_queue_sel;
use super::SharedConfig;
use crate::device::keys::{Parser, FD_ENGINE_KEYS};
use crate::device::{DeviceKind, DeviceType, PortSpec};
use crate::error::Result;

/// The keys of a `shared:` spec besides the common and fd-engine ones.
pub const KEYS: &[&str] = &["path", "server_uid"];

impl DeviceKind {
    /// Queues of a port another process serves (`shared:`).
    pub const SHARED: DeviceKind = DeviceKind::new("shared");
}

/// The registry's entry: a port of another process's cannot be served again.
pub(crate) const SHARED: DeviceType = DeviceType {
    kind: DeviceKind::SHARED,
    parse: |p| parse(p).map(PortSpec::new),
    rebuild: None,
    adopt: None,
};

/// A `shared:` spec body.
fn parse(p: &Parser<'_>) -> Result<SharedConfig> {
    let mut cfg = SharedConfig::new("");
    let keys: Vec<&str> = KEYS.iter().chain(FD_ENGINE_KEYS).copied().collect();
    let mut rest = Vec::new();
    for &(key, value) in p.items(&keys)? {
        match key {
            "path" => cfg.path = p.need(key, value)?,
            "server_uid" => {
                cfg.server_uids = p
                    .need(key, value)?
                    .split('+')
                    .map(|u| u.parse::<u32>())
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| p.err(key, "a uid, or uids joined by `+`".into()))?
            }
            // A list here, not a count.
            "queues" => {
                cfg.queues = parse_queue_sel(&p.need(key, value)?).map_err(|why| p.err(key, why))?
            }
            "netns" | "mtu" | "mac" | "promisc" => {
                return Err(p.err(
                    key,
                    "the serving process owns the link and its namespace".into(),
                ))
            }
            _ => rest.push((key, value)),
        }
    }
    if cfg.path.is_empty() {
        return Err(p.err("path", "required: the socket the port is served on".into()));
    }
    let q = p.with_items(rest);
    q.common(&mut cfg.port)?;
    q.fd_engine(&mut cfg.backend, &mut cfg.ring)?;
    p.checked(cfg.validate(), &[])?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use crate::parse_port_spec;
    use crate::share::{QueueSel, SharedConfig};

    fn shared(spec: &str) -> SharedConfig {
        parse_port_spec(spec)
            .unwrap()
            .as_shared()
            .expect("a shared spec")
            .clone()
    }

    #[test]
    fn shared_specs() {
        let c = shared("shared:path=/run/rtap.sock,queues=1+2,backend=rw");
        assert_eq!(c.path, "/run/rtap.sock");
        assert_eq!(c.queues, QueueSel::List(vec![1, 2]));
        assert_eq!(c.backend, crate::BackendKind::Rw);
        let c = shared("shared:path=@rtap,server_uid=1000+0");
        assert_eq!(c.server_uids, vec![1000, 0]);
        let c = shared("shared:path=@rtap");
        assert_eq!(c.queues, QueueSel::All);
        for (spec, key) in [
            ("shared:queues=1", "path"),
            ("shared:path=/x,queues=2-1", "queues"),
            ("shared:path=/x,netns=a", "netns"),
            ("shared:path=/x,mtu=1400", "mtu"),
            ("shared:path=/x,iface=t0", "iface"),
            ("shared:path=/x,server_uid=alice", "server_uid"),
        ] {
            match parse_port_spec(spec) {
                Err(crate::Error::Spec { key: k, .. }) => assert_eq!(k, key, "{spec}"),
                other => panic!("{spec}: {other:?}"),
            }
        }
    }
}
