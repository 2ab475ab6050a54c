//! Which offloads the kernel may use when it hands frames to the port
//! (`TUNSETOFFLOAD`), and what it accepted.

/// Kernel-to-port offloads of a tap. With `csum` the kernel may hand up frames
/// whose L4 checksum is not computed yet (the packet's virtio-net header says
/// `NEEDS_CSUM`); with `tso4`/`tso6`/`uso*` it may hand up coalesced frames of up
/// to 64 KiB (GRO/LRO-sized) instead of MTU-sized ones.
///
/// Transmit offloads (the application asking the kernel to compute a checksum or
/// segment a large frame) need no setting: a tap always accepts them through the
/// virtio-net header. With `csum` off, rtap computes requested checksums in software.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
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

    /// The `TUN_F_*` mask. Segmentation flags need `csum`; without it they are dropped.
    pub fn tun_flags(&self) -> libc::c_uint {
        if !self.csum {
            return 0;
        }
        let mut f = libc::TUN_F_CSUM;
        for (on, bit) in [
            (self.tso4, libc::TUN_F_TSO4),
            (self.tso6, libc::TUN_F_TSO6),
            (
                self.tso_ecn && (self.tso4 || self.tso6),
                libc::TUN_F_TSO_ECN,
            ),
            (self.uso4, libc::TUN_F_USO4),
            (self.uso6, libc::TUN_F_USO6),
        ] {
            if on {
                f |= bit;
            }
        }
        f
    }

    /// The offloads a `TUN_F_*` mask enables.
    pub fn from_tun_flags(f: libc::c_uint) -> Offloads {
        let has = |b| f & b != 0;
        Offloads {
            csum: has(libc::TUN_F_CSUM),
            tso4: has(libc::TUN_F_TSO4),
            tso6: has(libc::TUN_F_TSO6),
            tso_ecn: has(libc::TUN_F_TSO_ECN),
            uso4: has(libc::TUN_F_USO4),
            uso6: has(libc::TUN_F_USO6),
        }
    }
}

/// Applies `want` with `set` (a `TUNSETOFFLOAD` call), dropping what the kernel
/// refuses: USO first (Linux < 6.2), then TSO_ECN. Returns what was accepted and
/// the reasons for each drop.
pub(crate) fn negotiate(
    want: Offloads,
    mut set: impl FnMut(libc::c_uint) -> std::io::Result<()>,
) -> std::io::Result<(Offloads, Vec<String>)> {
    let mut cur = Offloads::from_tun_flags(want.tun_flags());
    let mut notes = Vec::new();
    loop {
        match set(cur.tun_flags()) {
            Ok(()) => return Ok((cur, notes)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                if cur.uso4 || cur.uso6 {
                    cur.uso4 = false;
                    cur.uso6 = false;
                    notes.push("USO refused (needs Linux >= 6.2), using TSO only".to_string());
                } else if cur.tso_ecn {
                    cur.tso_ecn = false;
                    notes.push("TSO_ECN refused".to_string());
                } else {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_roundtrip_and_csum_is_required() {
        assert_eq!(Offloads::NONE.tun_flags(), 0);
        let all = Offloads::ALL.tun_flags();
        assert_eq!(Offloads::from_tun_flags(all), Offloads::ALL);
        let no_csum = Offloads {
            csum: false,
            ..Offloads::ALL
        };
        assert_eq!(
            no_csum.tun_flags(),
            0,
            "TSO without CSUM is not a valid request"
        );
    }

    #[test]
    fn negotiation_drops_uso_then_ecn() {
        // A kernel without USO and without ECN support.
        let refuse = |f: libc::c_uint| {
            if f & (libc::TUN_F_USO4 | libc::TUN_F_USO6 | libc::TUN_F_TSO_ECN) != 0 {
                Err(std::io::Error::from_raw_os_error(libc::EINVAL))
            } else {
                Ok(())
            }
        };
        let (got, notes) = negotiate(Offloads::ALL, refuse).unwrap();
        assert_eq!(
            got,
            Offloads {
                tso_ecn: false,
                uso4: false,
                uso6: false,
                ..Offloads::ALL
            }
        );
        assert_eq!(notes.len(), 2);
        // Other errors are not negotiated away.
        let eperm = |_| Err(std::io::Error::from_raw_os_error(libc::EPERM));
        assert!(negotiate(Offloads::ALL, eperm).is_err());
    }
}
