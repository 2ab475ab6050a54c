//! Classic BPF as `rtap::capture::bpf` checks and runs it, against the
//! kernel: arbitrary instructions and an arbitrary packet. A program rtap
//! accepts, the kernel accepts too (`SO_ATTACH_FILTER` on an AF_UNIX
//! datagram socket), and what rtap's interpreter keeps of the packet is what
//! the kernel delivers (nothing, or the first `ret` bytes); translated into
//! rtap's XDP program (an `xdp:` port's in-kernel filter) and run by the
//! kernel on the same packet, it keeps it exactly when the interpreter does.
//! Whatever the bytes, no panic and no hang; the text form parses back to
//! the program.
#![no_main]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use libfuzzer_sys::fuzz_target;
use rtap::capture::bpf::{Insn, Program};

/// A connected AF_UNIX datagram pair.
fn pair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0i32; 2];
    // SAFETY: socketpair writes two fds into the array.
    let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) };
    assert_eq!(r, 0, "socketpair");
    // SAFETY: both fds are new and ours.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Attaches `insns` to `fd`: false if the kernel refuses the program.
fn attach(fd: &OwnedFd, insns: &[Insn]) -> bool {
    let mut raw: Vec<libc::sock_filter> = insns
        .iter()
        .map(|i| libc::sock_filter { code: i.code, jt: i.jt, jf: i.jf, k: i.k })
        .collect();
    let prog = libc::sock_fprog { len: raw.len() as u16, filter: raw.as_mut_ptr() };
    // SAFETY: prog points at `raw`, alive for the call; the kernel copies it.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &prog as *const libc::sock_fprog as *const libc::c_void,
            std::mem::size_of::<libc::sock_fprog>() as u32,
        )
    };
    r == 0
}

/// Sends `pkt` from `tx` and returns the bytes `rx` gets (None: filtered out).
fn through(tx: &OwnedFd, rx: &OwnedFd, pkt: &[u8]) -> Option<usize> {
    // SAFETY: pkt is a live buffer of its length.
    let n = unsafe { libc::send(tx.as_raw_fd(), pkt.as_ptr().cast(), pkt.len(), 0) };
    assert_eq!(n as usize, pkt.len(), "send");
    let mut buf = vec![0u8; pkt.len() + 1];
    // SAFETY: buf is a live buffer of its length.
    let n = unsafe {
        libc::recv(rx.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
    };
    (n >= 0).then_some(n as usize)
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 32) + 1;
    if rest.len() < n * 8 {
        return;
    }
    let (code, pkt) = rest.split_at(n * 8);
    let insns: Vec<Insn> = code
        .chunks(8)
        .map(|c| Insn {
            code: u16::from_le_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let Ok(p) = Program::new(insns.clone()) else {
        return;
    };
    assert_eq!(Program::from_ddd(&p.to_string()).as_ref(), Ok(&p));
    let pkt = &pkt[..pkt.len().min(1500)];
    if pkt.is_empty() {
        return; // a zero-length datagram says nothing
    }
    let keep = p.run(pkt, pkt.len() as u32);
    let (tx, rx) = pair();
    assert!(attach(&rx, &insns), "the kernel refuses a program rtap accepts: {p}");
    let got = through(&tx, &rx, pkt);
    let want = (keep != 0).then(|| (keep as usize).min(pkt.len()));
    assert_eq!(got, want, "kept {keep} of {} bytes; program:\n{p}", pkt.len());
    // XDP runs on Ethernet frames of 14 bytes or more.
    if pkt.len() >= 14 {
        let xdp = rtap::fuzzing::xdp_filter_keeps(&p, pkt);
        assert_eq!(xdp, Some(keep != 0), "XDP translation; program:\n{p}");
    }
});
