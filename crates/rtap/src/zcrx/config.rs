//! What a zero-copy receive queue is asked to be: which kernel object it binds to,
//! how much memory it gets, and whether it may fall back to copying.

use crate::error::{Error, Result};

/// Where received TCP payload comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueKind {
    /// Device mode: a NIC writes payload straight into the area. Needs a driver
    /// with the queue API, header/data split and a flow rule steering the flows to
    /// `queue` (see the README's "zero-copy receive" section).
    Device {
        /// Interface name.
        iface: String,
        /// Hardware rx queue.
        queue: u32,
    },
    /// Device-less zcrx (`ZCRX_REG_NODEV`, Linux 7.1+): the kernel copies payload
    /// into the area. Any TCP socket works; this mode exists to use (and test) the
    /// zcrx API where no NIC supports it.
    NoDev,
    /// No zcrx: multishot `recv` into a ring of provided buffers, the same API.
    Copy,
}

impl std::fmt::Display for QueueKind {
    /// `IFACE:QUEUE`, `nodev` or `copy`, as `rtap sink` takes them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueueKind::Device { iface, queue } => write!(f, "{iface}:{queue}"),
            QueueKind::NoDev => f.write_str("nodev"),
            QueueKind::Copy => f.write_str("copy"),
        }
    }
}

/// Settings of a [`Queue`](super::Queue).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueConfig {
    /// What to bind to.
    pub kind: QueueKind,
    /// Bytes of the area buffers are carved from (zcrx). Default 32 MiB; a
    /// multiple of 4 KiB, at least 64 KiB.
    pub area_size: usize,
    /// Refill ring entries (zcrx); a power of two. Default: one per 4 KiB of area,
    /// at most 32768, so every buffer fits in the ring at once.
    pub rq_entries: Option<u32>,
    /// Buffer size asked of the kernel (zcrx, device mode, where the kernel can
    /// choose: `ZCRX_FEATURE_RX_PAGE_SIZE`); `None` for its default (4 KiB).
    pub rx_buf_len: Option<u32>,
    /// Bytes of each provided buffer in copy mode. Default 64 KiB.
    pub copy_buf_size: u32,
    /// Provided buffers per receiver in copy mode (a power of two). Default
    /// 16: 1 MiB of the default 64 KiB buffers, few enough that the kernel's
    /// copies land in buffers still in cache (the ring hands them out in
    /// turn; 256 of them, the old default, cycled through 16 MiB and cost
    /// the receiver a quarter more CPU per GB).
    pub copy_bufs: u32,
    /// Use copy mode, with the reason recorded, when zcrx cannot be set up for a
    /// reason outside the caller's control (kernel too old, device without
    /// support, no `CAP_NET_ADMIN`). Default on. Off: those are errors.
    pub fallback: bool,
}

impl QueueConfig {
    fn with(kind: QueueKind) -> QueueConfig {
        QueueConfig {
            kind,
            area_size: 32 << 20,
            rq_entries: None,
            rx_buf_len: None,
            copy_buf_size: 64 << 10,
            copy_bufs: 16,
            fallback: true,
        }
    }

    /// Device mode on `iface`'s hardware rx queue `queue`.
    pub fn device(iface: &str, queue: u32) -> QueueConfig {
        QueueConfig::with(QueueKind::Device {
            iface: iface.into(),
            queue,
        })
    }

    /// Device-less zcrx (Linux 7.1+).
    pub fn nodev() -> QueueConfig {
        QueueConfig::with(QueueKind::NoDev)
    }

    /// Copy mode only.
    pub fn copy() -> QueueConfig {
        QueueConfig::with(QueueKind::Copy)
    }

    /// Sets `area_size`.
    pub fn area_size(mut self, bytes: usize) -> Self {
        self.area_size = bytes;
        self
    }

    /// Sets `rq_entries`.
    pub fn rq_entries(mut self, n: u32) -> Self {
        self.rq_entries = Some(n);
        self
    }

    /// Sets `rx_buf_len`.
    pub fn rx_buf_len(mut self, n: u32) -> Self {
        self.rx_buf_len = Some(n);
        self
    }

    /// Sets `copy_buf_size`.
    pub fn copy_buf_size(mut self, n: u32) -> Self {
        self.copy_buf_size = n;
        self
    }

    /// Sets `copy_bufs`.
    pub fn copy_bufs(mut self, n: u32) -> Self {
        self.copy_bufs = n;
        self
    }

    /// Sets `fallback`.
    pub fn fallback(mut self, on: bool) -> Self {
        self.fallback = on;
        self
    }

    /// Refill ring entries in effect.
    pub(crate) fn rq_entries_effective(&self) -> u32 {
        self.rq_entries.unwrap_or_else(|| {
            ((self.area_size / 4096) as u32)
                .next_power_of_two()
                .min(32768)
        })
    }

    /// Checks every rule; the error names the setting and the rule.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, why: String| Err(Error::InvalidConfig { field, why });
        if self.area_size < 64 << 10 || self.area_size % 4096 != 0 {
            return bad(
                "area_size",
                format!(
                    "{} bytes: must be a multiple of 4096, at least 64 KiB",
                    self.area_size
                ),
            );
        }
        if let Some(n) = self.rq_entries {
            if !n.is_power_of_two() || !(64..=32768).contains(&n) {
                return bad(
                    "rq_entries",
                    format!("{n}: must be a power of two in 64..=32768"),
                );
            }
        }
        if let Some(n) = self.rx_buf_len {
            if !n.is_power_of_two() || n < 4096 {
                return bad("rx_buf_len", format!("{n}: must be a power of two >= 4096"));
            }
        }
        if !(4096..=1 << 20).contains(&self.copy_buf_size) {
            return bad(
                "copy_buf_size",
                format!("{}: must be 4096..=1048576 bytes", self.copy_buf_size),
            );
        }
        if !self.copy_bufs.is_power_of_two() || !(8..=32768).contains(&self.copy_bufs) {
            return bad(
                "copy_bufs",
                format!("{}: must be a power of two in 8..=32768", self.copy_bufs),
            );
        }
        if let QueueKind::Device { iface, .. } = &self.kind {
            if iface.is_empty() || iface.len() > 15 {
                return bad("iface", format!("{iface:?}: must be 1..=15 bytes"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_rules_name_the_setting() {
        for c in [
            QueueConfig::nodev(),
            QueueConfig::copy(),
            QueueConfig::device("eth0", 3),
        ] {
            c.validate().unwrap();
        }
        assert_eq!(QueueConfig::nodev().rq_entries_effective(), 8192);
        assert_eq!(
            QueueConfig::nodev()
                .area_size(1 << 30)
                .rq_entries_effective(),
            32768
        );
        let field = |c: QueueConfig| match c.validate() {
            Err(Error::InvalidConfig { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(QueueConfig::nodev().area_size(5000)), "area_size");
        assert_eq!(field(QueueConfig::nodev().rq_entries(100)), "rq_entries");
        assert_eq!(field(QueueConfig::nodev().rx_buf_len(1000)), "rx_buf_len");
        assert_eq!(field(QueueConfig::copy().copy_bufs(3)), "copy_bufs");
        assert_eq!(
            field(QueueConfig::copy().copy_buf_size(10)),
            "copy_buf_size"
        );
        assert_eq!(field(QueueConfig::device("", 0)), "iface");
        assert_eq!(QueueConfig::device("eth1", 5).kind.to_string(), "eth1:5");
    }
}
