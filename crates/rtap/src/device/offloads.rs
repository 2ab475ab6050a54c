//! [`Offloads`]: what the kernel may hand a port instead of plain frames.

/// Kernel-to-port offloads of a port. With `csum` the kernel may hand up frames
/// whose L4 checksum is not computed yet (the packet's virtio-net header says
/// `NEEDS_CSUM`); with `tso4`/`tso6`/`uso*` it may hand up coalesced frames of up
/// to 64 KiB (GRO/LRO-sized) instead of MTU-sized ones.
///
/// Transmit offloads (the application asking the kernel to compute a checksum or
/// segment a large frame) need no setting: a tap always accepts them through the
/// virtio-net header. With `csum` off, rtap computes requested checksums in software.
///
/// On a TAP device these are the `TUN_F_*` flags of `TUNSETOFFLOAD`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Offloads {
    /// `TUN_F_CSUM`: partial checksums (required by every other flag).
    pub csum: bool,
    /// `TUN_F_TSO4`: TCP over IPv4 super-frames.
    pub tso4: bool,
    /// `TUN_F_TSO6`: TCP over IPv6 super-frames.
    pub tso6: bool,
    /// `TUN_F_TSO_ECN`: TSO frames with ECN.
    pub tso_ecn: bool,
    /// `TUN_F_USO4`: UDP segmentation over IPv4 (Linux >= 6.2).
    pub uso4: bool,
    /// `TUN_F_USO6`: UDP segmentation over IPv6 (Linux >= 6.2).
    pub uso6: bool,
}

impl Offloads {
    /// Each flag with its short name (`csum`, `tso4`, ...).
    fn named(&self) -> [(bool, &'static str); 6] {
        [
            (self.csum, "csum"),
            (self.tso4, "tso4"),
            (self.tso6, "tso6"),
            (self.tso_ecn, "tso_ecn"),
            (self.uso4, "uso4"),
            (self.uso6, "uso6"),
        ]
    }

    /// The offloads a list in [`Display`](std::fmt::Display)'s form names
    /// (unknown words are ignored; `none` or an empty list is none).
    pub fn from_names(list: &str) -> Offloads {
        let has = |n: &str| list.split(',').any(|w| w == n);
        let mut o = Offloads::NONE;
        o.csum = has("csum");
        o.tso4 = has("tso4");
        o.tso6 = has("tso6");
        o.tso_ecn = has("tso_ecn");
        o.uso4 = has("uso4");
        o.uso6 = has("uso6");
        o
    }

    /// No offload: the kernel hands up plain, checksummed, MTU-sized frames.
    pub const NONE: Offloads = Offloads {
        csum: false,
        tso4: false,
        tso6: false,
        tso_ecn: false,
        uso4: false,
        uso6: false,
    };
    /// Everything (USO dropped automatically on kernels without it).
    pub const ALL: Offloads = Offloads {
        csum: true,
        tso4: true,
        tso6: true,
        tso_ecn: true,
        uso4: true,
        uso6: true,
    };

    /// True if the kernel may hand up frames larger than the MTU.
    pub fn any_gso(&self) -> bool {
        self.tso4 || self.tso6 || self.uso4 || self.uso6
    }
}

macro_rules! flag_setters {
    ($($(#[$doc:meta])* $name:ident),*) => {
        impl Offloads {
            $(
                $(#[$doc])*
                pub const fn $name(mut self, on: bool) -> Self {
                    self.$name = on;
                    self
                }
            )*
        }
    };
}

flag_setters!(
    /// Sets `csum`.
    csum,
    /// Sets `tso4`.
    tso4,
    /// Sets `tso6`.
    tso6,
    /// Sets `tso_ecn`.
    tso_ecn,
    /// Sets `uso4`.
    uso4,
    /// Sets `uso6`.
    uso6
);

impl std::fmt::Display for Offloads {
    /// The flags that are on, comma-separated (`csum,tso4,tso6`), or `none`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (on, name) in self.named() {
            if on {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod names_tests {
    use super::Offloads;

    #[test]
    fn names_round_trip() {
        assert_eq!(Offloads::NONE.to_string(), "none");
        assert_eq!(
            Offloads::ALL.to_string(),
            "csum,tso4,tso6,tso_ecn,uso4,uso6"
        );
        for o in [
            Offloads::NONE,
            Offloads::ALL,
            Offloads::ALL.uso4(false).uso6(false),
        ] {
            assert_eq!(Offloads::from_names(&o.to_string()), o);
        }
    }
}
