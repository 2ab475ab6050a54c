//! [`MacAddr`]: an Ethernet (EUI-48) address, written `aa:bb:cc:dd:ee:ff`.

use std::fmt;
use std::str::FromStr;

/// An Ethernet MAC address.
///
/// ```
/// use rtap::MacAddr;
/// let m: MacAddr = "02:00:ab:cd:ef:10".parse().unwrap();
/// assert!(m.is_unicast() && m.is_local());
/// assert_eq!(m.to_string(), "02:00:ab:cd:ef:10");
/// assert_eq!(m.octets(), [0x02, 0, 0xab, 0xcd, 0xef, 0x10]);
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr([u8; 6]);

impl MacAddr {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// The address with these octets.
    pub const fn new(octets: [u8; 6]) -> MacAddr {
        MacAddr(octets)
    }

    /// The six octets, first on the wire first.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Group bit set: multicast or broadcast.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }

    /// `ff:ff:ff:ff:ff:ff`.
    pub fn is_broadcast(&self) -> bool {
        self.0 == [0xff; 6]
    }

    /// An address an interface can take: group bit clear and not all zero.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && self.0 != [0; 6]
    }

    /// Locally administered (the bit that `02:..` addresses set).
    pub const fn is_local(&self) -> bool {
        self.0[0] & 2 != 0
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(o: [u8; 6]) -> MacAddr {
        MacAddr(o)
    }
}

impl From<MacAddr> for [u8; 6] {
    fn from(m: MacAddr) -> [u8; 6] {
        m.0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

/// A string that is not six colon-separated pairs of hex digits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address (expected six hex pairs, aa:bb:cc:dd:ee:ff)")]
pub struct ParseMacError(String);

impl FromStr for MacAddr {
    type Err = ParseMacError;

    fn from_str(s: &str) -> Result<MacAddr, ParseMacError> {
        let bad = || ParseMacError(s.to_string());
        let mut m = [0u8; 6];
        let mut parts = s.split(':');
        for b in m.iter_mut() {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        match parts.next() {
            None => Ok(MacAddr(m)),
            Some(_) => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_errors() {
        let m = MacAddr::new([0x02, 0, 0xab, 0xcd, 0xef, 0x10]);
        assert_eq!(m.to_string(), "02:00:ab:cd:ef:10");
        assert_eq!("02:00:ab:cd:ef:10".parse(), Ok(m));
        assert_eq!("02:00:AB:CD:EF:10".parse(), Ok(m));
        for bad in [
            "02:00:ab:cd:ef",
            "02:00:ab:cd:ef:10:11",
            "02:00:ab:cd:ef:1",
            "zz:00:ab:cd:ef:10",
            "",
            "+2:00:ab:cd:ef:10",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn classes() {
        assert!(MacAddr::BROADCAST.is_broadcast() && MacAddr::BROADCAST.is_multicast());
        assert!(!MacAddr::BROADCAST.is_unicast());
        assert!(!MacAddr::default().is_unicast(), "all zero");
        assert!(MacAddr::new([1, 0, 0x5e, 0, 0, 1]).is_multicast());
        let oui = MacAddr::new([0x00, 0x1b, 0x21, 1, 2, 3]);
        assert!(oui.is_unicast() && !oui.is_local());
        assert!(
            MacAddr::new([0x52, 0x54, 0, 1, 2, 3]).is_local(),
            "QEMU's prefix"
        );
    }
}
