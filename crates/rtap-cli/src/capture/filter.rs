//! `--filter EXPR` and `--filter-bpf FILE`: a classic BPF program for the
//! capture. An expression in tcpdump syntax is compiled by tcpdump itself
//! (`tcpdump -ddd`, libpcap's compiler) where it is installed, for the port's
//! link type; a file holds what `tcpdump -ddd` prints. Either is checked as
//! the kernel checks it before anything starts.

use std::io::Write;

use anyhow::{anyhow, bail, Context, Result};
use rtap::capture::bpf::Program;
use rtap::wire::layout::Link;

/// The program in `path` (`tcpdump -ddd` output).
pub fn from_file(path: &str) -> Result<Program> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {path}"))?;
    Program::from_ddd(&text).with_context(|| format!("{path}: not a usable `tcpdump -ddd` program"))
}

/// `expr` compiled by tcpdump for frames of `link`.
pub fn compile(expr: &str, link: Link) -> Result<Program> {
    // An empty pcap file of the link type: tcpdump compiles for it offline.
    let linktype: u32 = match link {
        Link::Ip => 101, // LINKTYPE_RAW
        _ => 1,          // LINKTYPE_ETHERNET
    };
    let mut hdr = Vec::with_capacity(24);
    hdr.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    hdr.extend_from_slice(&2u16.to_le_bytes());
    hdr.extend_from_slice(&4u16.to_le_bytes());
    hdr.extend_from_slice(&[0; 8]);
    hdr.extend_from_slice(&262_144u32.to_le_bytes());
    hdr.extend_from_slice(&linktype.to_le_bytes());
    let mut f = tempfile()?;
    f.1.write_all(&hdr)
        .context("write a temporary pcap header")?;
    let out = std::process::Command::new("tcpdump")
        .args(["-r", &f.0, "-ddd", "--", expr])
        .output();
    let _ = std::fs::remove_file(&f.0);
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "--filter needs tcpdump (libpcap's compiler) to compile {expr:?}: install it \
             (Debian: apt install tcpdump), or give --filter-bpf FILE with the output of \
             `tcpdump -ddd EXPR` made elsewhere"
        ),
        Err(e) => return Err(anyhow!("run tcpdump: {e}")),
    };
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why
            .lines()
            .filter(|l| !l.starts_with("reading from file"))
            .collect::<Vec<_>>()
            .join("; ");
        bail!("bad filter expression {expr:?}: {why}");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Program::from_ddd(&text).with_context(|| format!("the program tcpdump made of {expr:?}"))
}

fn tempfile() -> Result<(String, std::fs::File)> {
    let dir = std::env::temp_dir();
    for n in 0..100u32 {
        let p = dir.join(format!("rtap-filter-{}-{n}.pcap", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
        {
            Ok(f) => return Ok((p.to_string_lossy().into_owned(), f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(anyhow!("create {}: {e}", p.display())),
        }
    }
    bail!("no temporary file name free in {}", dir.display())
}
