//! [`DeviceKind`]: the kinds of device a port can be. The only place their
//! names are spelled: a port spec's prefix, the sharing protocol's `kind=` and
//! the CLI's reports all print and parse them here.

/// The kind of device behind a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeviceKind {
    /// A TAP interface (Ethernet frames), created or attached (`tap:`).
    Tap,
    /// A TUN interface (IP packets) (`tun:`).
    Tun,
    /// An existing interface through AF_PACKET sockets (`packet:`).
    Packet,
    /// Queues of a port another process serves (`shared:`).
    Shared,
    /// An existing interface through AF_XDP sockets (`xdp:`).
    Xdp,
}

impl DeviceKind {
    /// Every kind.
    pub const ALL: [DeviceKind; 5] = [
        DeviceKind::Tap,
        DeviceKind::Tun,
        DeviceKind::Packet,
        DeviceKind::Shared,
        DeviceKind::Xdp,
    ];

    /// The kind's name: the prefix of its port specs.
    pub const fn name(self) -> &'static str {
        match self {
            DeviceKind::Tap => "tap",
            DeviceKind::Tun => "tun",
            DeviceKind::Packet => "packet",
            DeviceKind::Shared => "shared",
            DeviceKind::Xdp => "xdp",
        }
    }
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DeviceKind {
    type Err = String;

    /// A kind by its name; the error lists the names.
    fn from_str(s: &str) -> Result<DeviceKind, String> {
        DeviceKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = DeviceKind::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown port kind `{s}`: the kinds are {}",
                    names.join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::DeviceKind;

    /// `ALL` lists every kind: a kind added to the enum and not to `ALL`
    /// fails to compile here first (the match is exhaustive), then this test.
    #[test]
    fn all_is_complete() {
        for k in DeviceKind::ALL {
            match k {
                DeviceKind::Tap
                | DeviceKind::Tun
                | DeviceKind::Packet
                | DeviceKind::Shared
                | DeviceKind::Xdp => {}
            }
        }
        let listed = |k: DeviceKind| DeviceKind::ALL.contains(&k);
        assert!([
            DeviceKind::Tap,
            DeviceKind::Tun,
            DeviceKind::Packet,
            DeviceKind::Shared
        ]
        .into_iter()
        .all(listed));
    }

    #[test]
    fn names_round_trip() {
        for k in DeviceKind::ALL {
            assert_eq!(k.name().parse::<DeviceKind>(), Ok(k));
            assert_eq!(k.to_string(), k.name());
        }
        let e = "pcap".parse::<DeviceKind>().unwrap_err();
        assert!(e.contains("tap, tun, packet, shared, xdp"), "{e}");
    }
}
