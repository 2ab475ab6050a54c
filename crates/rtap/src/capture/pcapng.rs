//! pcapng files (what tcpdump, tshark and Wireshark read): a section header
//! with a comment saying where the timestamps come from, one interface
//! description (name, link type, snap length, nanosecond timestamps), an
//! enhanced packet block per frame (direction where known, the frame's
//! length beside what was kept), and at the end an interface statistics
//! block with the drop count. Written through the `pcap-file` crate.

use std::borrow::Cow;
use std::io::Write;
use std::time::Duration;

use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::interface_statistics::{
    InterfaceStatisticsBlock, InterfaceStatisticsOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, Endianness};

use crate::wire::layout::Link;

/// Why a capture file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("writing the capture: {0}")]
pub struct WriteError(#[from] pcap_file::PcapError);

/// Which way a frame went, as pcapng's `epb_flags` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Received by the port.
    Inbound,
    /// Sent by the port.
    Outbound,
}

/// The file's one interface.
#[derive(Clone, Debug)]
pub struct Interface<'a> {
    /// Interface name (`if_name`).
    pub name: &'a str,
    /// What the frames start with: Ethernet, or an IP header (a TUN's,
    /// `LINKTYPE_RAW`).
    pub link: Link,
    /// Most bytes kept of each frame (`if_snaplen`); longer frames are cut,
    /// their length recorded.
    pub snaplen: u32,
}

/// Counters for the closing statistics block.
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    /// Frames the port received (`isb_ifrecv`), if known.
    pub received: Option<u64>,
    /// Frames lost before the capture saw them (`isb_ifdrop`): the port's
    /// missed frames and drops.
    pub dropped: u64,
    /// Frames the filter kept (`isb_filteraccept`), if one ran.
    pub accepted: Option<u64>,
}

/// A pcapng writer of one interface's frames.
pub struct PcapngWriter<W: Write> {
    w: PcapNgWriter<W>,
    snaplen: u32,
    first: Option<Duration>,
    last: Duration,
}

impl<W: Write> std::fmt::Debug for PcapngWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapngWriter")
            .field("snaplen", &self.snaplen)
            .finish_non_exhaustive()
    }
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the section header (with `comment`, e.g. where timestamps come
    /// from) and the interface description.
    pub fn new(out: W, iface: &Interface<'_>, comment: &str) -> Result<Self, WriteError> {
        let mut shb = SectionHeaderBlock {
            endianness: Endianness::native(),
            ..SectionHeaderBlock::default()
        };
        shb.options
            .push(SectionHeaderOption::UserApplication(Cow::Owned(format!(
                "rtap {}",
                env!("CARGO_PKG_VERSION")
            ))));
        if !comment.is_empty() {
            shb.options.push(SectionHeaderOption::Comment(Cow::Owned(
                comment.to_string(),
            )));
        }
        let mut w = PcapNgWriter::with_section_header(out, shb)?;
        let idb = InterfaceDescriptionBlock {
            linktype: match iface.link {
                Link::Ip => DataLink::RAW,
                _ => DataLink::ETHERNET,
            },
            snaplen: iface.snaplen,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(iface.name.to_string())),
                // Timestamps in nanoseconds.
                InterfaceDescriptionOption::IfTsResol(9),
            ],
        };
        w.write_pcapng_block(idb)?;
        Ok(PcapngWriter {
            w,
            snaplen: iface.snaplen,
            first: None,
            last: Duration::ZERO,
        })
    }

    /// Writes one frame: `ts` since the Unix epoch, `data` the frame's bytes
    /// (cut to the snap length), `orig_len` its length.
    pub fn write(
        &mut self,
        ts: Duration,
        data: &[u8],
        orig_len: u32,
        dir: Option<Direction>,
    ) -> Result<(), WriteError> {
        let keep = data.len().min(self.snaplen as usize);
        let mut options = Vec::new();
        if let Some(d) = dir {
            options.push(EnhancedPacketOption::Flags(match d {
                Direction::Inbound => 1,
                Direction::Outbound => 2,
            }));
        }
        self.w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp: ts,
            original_len: orig_len.max(keep as u32),
            data: Cow::Borrowed(&data[..keep]),
            options,
        })?;
        self.first.get_or_insert(ts);
        self.last = self.last.max(ts);
        Ok(())
    }

    /// Writes the interface statistics (at `now`) and returns the output.
    pub fn finish(mut self, now: Duration, totals: Totals) -> Result<W, WriteError> {
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let mut options = vec![
            InterfaceStatisticsOption::IsbStartTime(ns(self.first.unwrap_or(now))),
            InterfaceStatisticsOption::IsbEndTime(ns(self.last.max(now))),
            InterfaceStatisticsOption::IsbIfDrop(totals.dropped),
        ];
        if let Some(r) = totals.received {
            options.push(InterfaceStatisticsOption::IsbIfRecv(r));
        }
        if let Some(a) = totals.accepted {
            options.push(InterfaceStatisticsOption::IsbFilterAccept(a));
        }
        self.w.write_pcapng_block(InterfaceStatisticsBlock {
            interface_id: 0,
            timestamp: ns(now),
            options,
        })?;
        Ok(self.w.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcapng::{Block, PcapNgReader};

    #[test]
    fn written_and_read_back() {
        let mut w = PcapngWriter::new(
            Vec::new(),
            &Interface {
                name: "tap0",
                link: Link::Ethernet,
                snaplen: 64,
            },
            "timestamps: read time",
        )
        .unwrap();
        let f: Vec<u8> = (0..100u8).collect();
        w.write(
            Duration::new(1_700_000_000, 123_456_789),
            &f,
            100,
            Some(Direction::Inbound),
        )
        .unwrap();
        w.write(Duration::new(1_700_000_001, 5), &f[..60], 60, None)
            .unwrap();
        let out = w
            .finish(
                Duration::new(1_700_000_002, 0),
                Totals {
                    dropped: 7,
                    ..Totals::default()
                },
            )
            .unwrap();
        let mut r = PcapNgReader::new(&out[..]).unwrap();
        let mut blocks = Vec::new();
        while let Some(b) = r.next_block() {
            blocks.push(b.unwrap().into_owned());
        }
        assert_eq!(blocks.len(), 4, "IDB, two EPBs, ISB");
        match &blocks[1] {
            Block::EnhancedPacket(e) => {
                assert_eq!(e.data.len(), 64, "cut to the snap length");
                assert_eq!(e.original_len, 100);
                assert_eq!(e.timestamp, Duration::new(1_700_000_000, 123_456_789));
                assert!(e.options.contains(&EnhancedPacketOption::Flags(1)));
            }
            other => panic!("{other:?}"),
        }
        match &blocks[3] {
            Block::InterfaceStatistics(s) => {
                assert!(s.options.contains(&InterfaceStatisticsOption::IsbIfDrop(7)));
            }
            other => panic!("{other:?}"),
        }
    }
}
