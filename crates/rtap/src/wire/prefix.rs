//! [`IpPrefix`]: an IPv4 or IPv6 address with a prefix length, written
//! `10.0.0.1/24` or `fd00::1/64`: an interface address, or (host bits zero) a
//! route's destination.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address and a prefix length.
///
/// ```
/// use rtap::IpPrefix;
/// let a: IpPrefix = "10.0.0.1/24".parse().unwrap();
/// assert_eq!((a.addr().to_string(), a.len()), ("10.0.0.1".into(), 24));
/// assert_eq!(a.network().to_string(), "10.0.0.0/24");
/// assert!(!a.is_network() && a.network().is_network());
/// let h: IpPrefix = "fd00::1".parse().unwrap();
/// assert_eq!(h.to_string(), "fd00::1/128");
/// assert!("10.0.0.1/33".parse::<IpPrefix>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

/// Why a string is not an [`IpPrefix`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// The part before the `/` is not an IP address.
    #[error("{0:?} is not an IPv4 or IPv6 address")]
    Addr(String),
    /// The part after the `/` is not a number within the family's bits.
    #[error("prefix length {len:?} is not a number in 0..={max}")]
    Len {
        /// The length as given.
        len: String,
        /// 32 for IPv4, 128 for IPv6.
        max: u8,
    },
}

impl IpPrefix {
    /// `addr/len`; `None` if `len` exceeds the family's bits.
    pub fn new(addr: IpAddr, len: u8) -> Option<IpPrefix> {
        (len <= bits(addr)).then_some(IpPrefix { addr, len })
    }

    /// The address as given.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u8 {
        self.len
    }

    /// True for IPv6.
    pub fn is_ipv6(&self) -> bool {
        self.addr.is_ipv6()
    }

    /// The prefix with its host bits cleared (`10.0.0.1/24` -> `10.0.0.0/24`).
    pub fn network(&self) -> IpPrefix {
        let addr = match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        };
        IpPrefix {
            addr,
            len: self.len,
        }
    }

    /// True if no host bit is set (a route destination).
    pub fn is_network(&self) -> bool {
        self.network().addr == self.addr
    }
}

fn bits(a: IpAddr) -> u8 {
    if a.is_ipv4() {
        32
    } else {
        128
    }
}

impl FromStr for IpPrefix {
    type Err = PrefixError;

    /// `ADDR/LEN`, or `ADDR` alone for a host (/32, /128).
    fn from_str(s: &str) -> Result<IpPrefix, PrefixError> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| PrefixError::Addr(a.to_string()))?;
        let max = bits(addr);
        let len = match l {
            None => max,
            Some(l) => {
                l.parse::<u8>()
                    .ok()
                    .filter(|&n| n <= max)
                    .ok_or_else(|| PrefixError::Len {
                        len: l.to_string(),
                        max,
                    })?
            }
        };
        Ok(IpPrefix { addr, len })
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_and_print() {
        let p: IpPrefix = "192.168.7.9/20".parse().unwrap();
        assert_eq!(p.network().to_string(), "192.168.0.0/20");
        assert_eq!("0.0.0.0/0".parse::<IpPrefix>().unwrap().len(), 0);
        assert!("1.2.3.4/0"
            .parse::<IpPrefix>()
            .unwrap()
            .network()
            .is_network());
        assert_eq!(
            "fd12:3456::7/48"
                .parse::<IpPrefix>()
                .unwrap()
                .network()
                .to_string(),
            "fd12:3456::/48"
        );
        for bad in [
            "",
            "/24",
            "10.0.0/24",
            "10.0.0.1/",
            "10.0.0.1/x",
            "fd00::1/129",
            "10.0.0.1/24/1",
        ] {
            assert!(bad.parse::<IpPrefix>().is_err(), "{bad}");
        }
        assert_eq!(IpPrefix::new("10.0.0.1".parse().unwrap(), 33), None);
    }

    proptest! {
        #[test]
        fn display_parses_back(v6: bool, a: u128, len: u8) {
            let addr: IpAddr = if v6 { IpAddr::V6(a.into()) } else { IpAddr::V4((a as u32).into()) };
            let len = len % (bits(addr) + 1);
            let p = IpPrefix::new(addr, len).unwrap();
            prop_assert_eq!(p.to_string().parse::<IpPrefix>().unwrap(), p);
            prop_assert!(p.network().is_network());
            prop_assert_eq!(p.network().network(), p.network());
        }
    }
}
