//! `TUNSETOFFLOAD`: the [`Offloads`] of a tap as `TUN_F_*` flags, and their
//! negotiation with the kernel (what it refuses is dropped, with a note).

use crate::device::Offloads;

/// The `TUN_F_*` mask of `o`. Segmentation flags need `csum`; without it they are dropped.
pub(crate) fn tun_flags(o: &Offloads) -> libc::c_uint {
    if !o.csum {
        return 0;
    }
    let mut f = libc::TUN_F_CSUM;
    for (on, bit) in [
        (o.tso4, libc::TUN_F_TSO4),
        (o.tso6, libc::TUN_F_TSO6),
        (o.tso_ecn && (o.tso4 || o.tso6), libc::TUN_F_TSO_ECN),
        (o.uso4, libc::TUN_F_USO4),
        (o.uso6, libc::TUN_F_USO6),
    ] {
        if on {
            f |= bit;
        }
    }
    f
}

/// The offloads a `TUN_F_*` mask enables.
pub(crate) fn from_tun_flags(f: libc::c_uint) -> Offloads {
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

/// Applies `want` with `set` (a `TUNSETOFFLOAD` call), dropping what the kernel
/// refuses: USO first (Linux < 6.2), then TSO_ECN. Returns what was accepted and
/// the reasons for each drop.
pub(crate) fn negotiate(
    want: Offloads,
    mut set: impl FnMut(libc::c_uint) -> std::io::Result<()>,
) -> std::io::Result<(Offloads, Vec<String>)> {
    let mut cur = from_tun_flags(tun_flags(&want));
    let mut notes = Vec::new();
    loop {
        match set(tun_flags(&cur)) {
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
        assert_eq!(tun_flags(&Offloads::NONE), 0);
        let all = tun_flags(&Offloads::ALL);
        assert_eq!(from_tun_flags(all), Offloads::ALL);
        let no_csum = Offloads {
            csum: false,
            ..Offloads::ALL
        };
        assert_eq!(
            tun_flags(&no_csum),
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
