//! `--filter EXPR` and `--filter-bpf FILE`: a classic BPF program for the
//! capture, from tcpdump syntax (compiled by libpcap: `rtap::capture::compile`)
//! or from what `tcpdump -ddd` printed. Either is checked as the kernel checks
//! it before anything starts.

use anyhow::{Context, Result};
use rtap::capture::bpf::Program;
use rtap::wire::layout::Link;

/// The program in `path` (`tcpdump -ddd` output).
pub fn from_file(path: &str) -> Result<Program> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {path}"))?;
    Program::from_ddd(&text).with_context(|| format!("{path}: not a usable `tcpdump -ddd` program"))
}

/// `expr` compiled for frames of `link`.
pub fn compile(expr: &str, link: Link) -> Result<Program> {
    Ok(rtap::capture::compile::compile(expr, link)?)
}
