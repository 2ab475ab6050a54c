//! Capture for applications: classic BPF filters ([`bpf`]: checked, run in
//! user space with the kernel's semantics, or attached in the kernel on
//! AF_PACKET ports and translated into rtap's XDP program on AF_XDP ports;
//! [`compile`]: from tcpdump's syntax, by libpcap) and pcapng files
//! ([`pcapng`]).

pub mod bpf;
pub mod compile;
pub mod pcapng;

/// Where [`Port::set_rx_filter`](crate::Port::set_rx_filter) put a filter.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FilterPlace {
    /// In the kernel: frames the program drops never reach the queues.
    Kernel,
    /// Nowhere in the kernel: run the program on the received frames
    /// ([`bpf::Program::matches`]). Why, in words.
    User(String),
    /// No filter (`None` was given): whatever was in the kernel is gone.
    Removed,
}

impl FilterPlace {
    /// True for [`FilterPlace::Kernel`].
    pub fn in_kernel(&self) -> bool {
        matches!(self, FilterPlace::Kernel)
    }
}
