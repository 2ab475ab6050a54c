//! Where captured frames go: a pcapng file (the default) or classic pcap,
//! to a file or standard output (`--write -`, for `| tcpdump -r -`).

use std::io::{BufWriter, Write};
use std::time::Duration;

use anyhow::{Context, Result};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use rtap::capture::pcapng::{Direction, Interface, PcapngWriter, Totals};
use rtap::wire::layout::Link;

/// File format (`--format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// pcapng: nanosecond timestamps, the interface's name, direction, the
    /// drop count at the end.
    Pcapng,
    /// Classic pcap (microsecond timestamps).
    Pcap,
}

/// An open output.
pub enum Out {
    Pcapng(PcapngWriter<BufWriter<Box<dyn Write>>>),
    Pcap(PcapWriter<BufWriter<Box<dyn Write>>>),
}

/// Opens `path` (`-`: standard output) for frames of `iface`.
pub fn open(path: &str, format: Format, iface: &Interface<'_>, comment: &str) -> Result<Out> {
    let w: Box<dyn Write> = if path == "-" {
        Box::new(std::io::stdout())
    } else {
        Box::new(std::fs::File::create(path).with_context(|| format!("create {path}"))?)
    };
    let w = BufWriter::new(w);
    Ok(match format {
        Format::Pcapng => Out::Pcapng(PcapngWriter::new(w, iface, comment)?),
        Format::Pcap => {
            let header = PcapHeader {
                datalink: match iface.link {
                    Link::Ip => pcap_file::DataLink::RAW,
                    _ => pcap_file::DataLink::ETHERNET,
                },
                snaplen: iface.snaplen,
                ..Default::default()
            };
            Out::Pcap(PcapWriter::with_header(w, header).context("write the pcap header")?)
        }
    })
}

impl Out {
    /// One received frame (`data` at most the snap length).
    pub fn write(&mut self, ts: Duration, data: &[u8], orig_len: u32) -> Result<()> {
        match self {
            Out::Pcapng(w) => w.write(ts, data, orig_len, Some(Direction::Inbound))?,
            Out::Pcap(w) => {
                w.write_packet(&PcapPacket::new(ts, orig_len, data))?;
            }
        }
        Ok(())
    }

    /// Ends the file (pcapng: the statistics block) and flushes it.
    pub fn finish(self, now: Duration, totals: Totals) -> Result<()> {
        let mut w = match self {
            Out::Pcapng(w) => w.finish(now, totals)?,
            Out::Pcap(w) => w.into_writer(),
        };
        w.flush().context("flush the capture")
    }
}
