//! Capture for applications: classic BPF filters ([`bpf`]: checked, run in
//! user space with the kernel's semantics, or attached in the kernel on
//! AF_PACKET ports; [`compile`]: from tcpdump's syntax, by libpcap) and
//! pcapng files ([`pcapng`]).

pub mod bpf;
pub mod compile;
pub mod pcapng;
