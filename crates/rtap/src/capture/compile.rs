//! Filter expressions in tcpdump syntax, compiled by libpcap: in the process
//! with the `libpcap` feature (the library loaded at run time where it is
//! installed), else (or if it is not installed) by running `tcpdump -ddd`,
//! which is libpcap's compiler too. Either way the program is then checked as
//! the kernel checks it ([`Program::new`]).

use std::io::Write;

use super::bpf::{BpfError, Program};
use crate::wire::layout::Link;

/// Why an expression did not become a program.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The compiler refused the expression.
    #[error("bad filter expression {expr:?}: {why}")]
    Expression {
        /// The expression.
        expr: String,
        /// The compiler's message.
        why: String,
    },
    /// Neither libpcap (with the `libpcap` feature) nor tcpdump is installed.
    #[error("compiling {expr:?} needs libpcap's compiler: install tcpdump (Debian: apt install tcpdump), or give the output of `tcpdump -ddd EXPR` made elsewhere (Program::from_ddd, --filter-bpf)")]
    NoCompiler {
        /// The expression.
        expr: String,
    },
    /// The compiler's program is not one rtap runs (an ancillary load, say).
    #[error("the program made of {expr:?}: {source}")]
    Program {
        /// The expression.
        expr: String,
        /// What is wrong with it.
        #[source]
        source: BpfError,
    },
    /// Running tcpdump failed.
    #[error("running tcpdump: {0}")]
    Io(#[from] std::io::Error),
}

/// `LINKTYPE_*` of frames that start as `link` says (what a pcap file's
/// header holds).
fn linktype(link: Link) -> u32 {
    match link {
        Link::Ip => 101, // LINKTYPE_RAW
        _ => 1,          // LINKTYPE_ETHERNET
    }
}

/// `DLT_*` of the same (what libpcap's API takes: raw IP is `DLT_RAW`, 12 on
/// Linux, not the file format's 101).
#[cfg(feature = "libpcap")]
fn dlt(link: Link) -> i32 {
    match link {
        Link::Ip => 12, // DLT_RAW
        _ => 1,         // DLT_EN10MB
    }
}

/// Compiles `expr` (tcpdump syntax) for frames of `link`.
pub fn compile(expr: &str, link: Link) -> Result<Program, CompileError> {
    #[cfg(feature = "libpcap")]
    match crate::sys::pcap::compile(expr, dlt(link), 262_144) {
        Ok(v) => return checked(expr, v),
        Err(crate::sys::pcap::PcapError::Refused(why)) => {
            return Err(CompileError::Expression {
                expr: expr.into(),
                why,
            })
        }
        Err(crate::sys::pcap::PcapError::Missing) => {}
    }
    with_tcpdump(expr, link)
}

/// Compiles `expr` by running `tcpdump -ddd` on an empty capture of
/// `link`'s link type, given on its standard input (what tcpdump needs to
/// compile offline; no file involved).
pub fn with_tcpdump(expr: &str, link: Link) -> Result<Program, CompileError> {
    let mut hdr = Vec::with_capacity(24);
    hdr.extend_from_slice(&0xa1b2_c3d4u32.to_ne_bytes());
    hdr.extend_from_slice(&2u16.to_ne_bytes());
    hdr.extend_from_slice(&4u16.to_ne_bytes());
    hdr.extend_from_slice(&[0; 8]);
    hdr.extend_from_slice(&262_144u32.to_ne_bytes());
    hdr.extend_from_slice(&linktype(link).to_ne_bytes());
    let child = std::process::Command::new("tcpdump")
        .args(["-r", "-", "-ddd", "--", expr])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CompileError::NoCompiler { expr: expr.into() })
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A tcpdump that refused the expression may have exited already.
        let _ = stdin.write_all(&hdr);
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.starts_with("reading from file"))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(CompileError::Expression {
            expr: expr.into(),
            why,
        });
    }
    Program::from_ddd(&String::from_utf8_lossy(&out.stdout)).map_err(|source| {
        CompileError::Program {
            expr: expr.into(),
            source,
        }
    })
}

#[cfg(feature = "libpcap")]
fn checked(expr: &str, v: Vec<(u16, u8, u8, u32)>) -> Result<Program, CompileError> {
    let insns = v
        .into_iter()
        .map(|(code, jt, jf, k)| super::bpf::Insn { code, jt, jf, k })
        .collect();
    Program::new(insns).map_err(|source| CompileError::Program {
        expr: expr.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tcpdump's compiler (and, with the feature, libpcap in the process)
    /// gives a program that keeps what the expression says; a bad
    /// expression is refused with the compiler's reason. (Needs tcpdump.)
    #[test]
    fn expressions_compile_both_ways() {
        let p = with_tcpdump("udp dst port 53", Link::Ethernet).unwrap();
        let mut f = vec![0u8; 42];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[23] = 17;
        f[36..38].copy_from_slice(&53u16.to_be_bytes());
        assert!(p.matches(&f, 42));
        f[37] = 54;
        assert!(!p.matches(&f, 42));
        assert_eq!(compile("udp dst port 53", Link::Ethernet).unwrap(), p);
        // On a TUN the program starts at the IP header.
        let ip = with_tcpdump("udp dst port 53", Link::Ip).unwrap();
        f[37] = 53;
        assert!(ip.matches(&f[14..], 28) && !p.matches(&f[14..], 28));
        assert_eq!(compile("udp dst port 53", Link::Ip).unwrap(), ip);
        for e in ["udp prot 53", "tcp port 99999"] {
            match compile(e, Link::Ethernet) {
                Err(CompileError::Expression { why, .. }) => assert!(!why.is_empty()),
                other => panic!("{e}: {other:?}"),
            }
        }
    }
}
