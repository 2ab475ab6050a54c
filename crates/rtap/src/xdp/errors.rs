//! The errors of an xdp port's kernel calls: what lifts a refusal (the
//! capabilities each call needs), a `bpf()` the kernel does not have, and a
//! refusal that passes (the teardown of a socket or link just closed).

use crate::error::Error;

/// What lifts a refusal to open an XDP socket.
pub(crate) const XSK_PERMISSION: &str =
    "an XDP socket needs CAP_NET_RAW: run as root or grant it (setcap cap_net_raw+ep)";

/// What lifts a refusal to load or attach an XDP program, or to use a map.
pub(crate) const BPF_PERMISSION: &str = "loading and attaching an XDP program needs CAP_BPF and CAP_NET_ADMIN (or CAP_SYS_ADMIN): run as root, or use prog=none for a port that only sends";

/// The error of BPF operation `op`: no `bpf()` at all is "unsupported", a
/// refusal names the capabilities.
pub(crate) fn bpf_error(op: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| match e.raw_os_error() {
        Some(libc::ENOSYS) => Error::Unsupported {
            feature: "BPF (the bpf() system call)",
            hint: concat!(
                "this kernel has no BPF syscall or it is disabled: ",
                "use prog=none (tx only) or a packet: port"
            ),
        },
        _ => Error::sys_or(op, BPF_PERMISSION, e),
    }
}

/// Calls `f` until it is not refused with one of `busy` (a queue or an
/// interface still held by a socket or a program link closed a moment ago:
/// the kernel tears them down after the close returns), for at most
/// `within`; the last answer is returned.
pub(crate) fn retry_busy<T>(
    within: std::time::Duration,
    busy: &[i32],
    mut f: impl FnMut() -> std::io::Result<T>,
) -> std::io::Result<T> {
    let deadline = std::time::Instant::now() + within;
    loop {
        match f() {
            Err(e)
                if e.raw_os_error().is_some_and(|n| busy.contains(&n))
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => return r,
        }
    }
}
