//! Where captured frames go: a pcapng file (the default) or classic pcap,
//! to a file or standard output (`--write -`, for `| tcpdump -r -`), the
//! bytes written counted (for `--rotate`).

use std::cell::Cell;
use std::io::{BufWriter, Write};
use std::rc::Rc;
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

/// An open output: the writer, and the bytes it has written.
pub struct Out {
    w: Writer,
    written: Rc<Cell<u64>>,
}

enum Writer {
    Pcapng(PcapngWriter<BufWriter<Counting>>),
    Pcap(PcapWriter<BufWriter<Counting>>),
}

/// A writer that counts what goes through it.
struct Counting {
    inner: Box<dyn Write>,
    n: Rc<Cell<u64>>,
}

impl Write for Counting {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let k = self.inner.write(b)?;
        self.n.set(self.n.get() + k as u64);
        Ok(k)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Opens `path` (`-`: standard output) for frames of `iface`.
pub fn open(path: &str, format: Format, iface: &Interface<'_>, comment: &str) -> Result<Out> {
    let inner: Box<dyn Write> = if path == "-" {
        Box::new(std::io::stdout())
    } else {
        Box::new(std::fs::File::create(path).with_context(|| format!("create {path}"))?)
    };
    let written = Rc::new(Cell::new(0));
    let w = BufWriter::new(Counting {
        inner,
        n: written.clone(),
    });
    let w = match format {
        Format::Pcapng => Writer::Pcapng(PcapngWriter::new(w, iface, comment)?),
        Format::Pcap => {
            let header = PcapHeader {
                datalink: match iface.link {
                    Link::Ip => pcap_file::DataLink::RAW,
                    _ => pcap_file::DataLink::ETHERNET,
                },
                snaplen: iface.snaplen,
                ..Default::default()
            };
            Writer::Pcap(PcapWriter::with_header(w, header).context("write the pcap header")?)
        }
    };
    Ok(Out { w, written })
}

impl Out {
    /// One received frame (`data` at most the snap length).
    pub fn write(&mut self, ts: Duration, data: &[u8], orig_len: u32) -> Result<()> {
        match &mut self.w {
            Writer::Pcapng(w) => w.write(ts, data, orig_len, Some(Direction::Inbound))?,
            Writer::Pcap(w) => {
                w.write_packet(&PcapPacket::new(ts, orig_len, data))?;
            }
        }
        Ok(())
    }

    /// Bytes written to the file so far (up to the buffer's last flush).
    pub fn written(&self) -> u64 {
        self.written.get()
    }

    /// Ends the file (pcapng: the statistics block) and flushes it.
    pub fn finish(self, now: Duration, totals: Totals) -> Result<()> {
        let mut w = match self.w {
            Writer::Pcapng(w) => w.finish(now, totals)?,
            Writer::Pcap(w) => w.into_writer(),
        };
        w.flush().context("flush the capture")
    }
}
