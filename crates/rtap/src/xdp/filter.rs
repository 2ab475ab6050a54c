//! A capture filter in rtap's XDP program: a classic BPF program
//! ([`Program`], as tcpdump compiles it) translated into eBPF that runs before
//! the redirect, so a frame the filter drops never reaches the XDP socket (it
//! goes on to the kernel's stack, as frames of a queue without a socket do).
//! An XDP socket ignores `SO_ATTACH_FILTER`; this is the in-kernel filter of
//! an `xdp:` port. Pure: the instructions are data.
//!
//! The translation keeps the interpreter's semantics
//! ([`Program::run`]) on the bytes the port would receive:
//!
//! - A (accumulator) lives in r7, X in r8, the frame's length (`ld len`) in
//!   r9, the context in r6; `M[0..16]` on the stack at `fp-64`, an 8-byte load
//!   buffer at `fp-72`. Arithmetic is 32-bit (`BPF_ALU`), compares too
//!   (`BPF_JMP32`), so constants mean what they mean in classic BPF.
//! - A load at a constant offset reads the frame's linear part directly
//!   after a bounds check the verifier understands; where that fails (past
//!   the linear part), and for loads at `X + k`, `bpf_xdp_load_bytes` reads
//!   from wherever the bytes are (the fragments of a multi-buffer frame), or
//!   fails: a load past the frame drops it, as in classic BPF. The helper
//!   reads no farther than 64 KiB: on a port whose frames may be longer
//!   (multi-buffer, an MTU above 65517) a program with loads that may reach
//!   past that stays in user space ([`check`]).
//! - Division or modulo by X = 0 drops the frame; shifts by X use its low 5
//!   bits, as the interpreter does.
//! - Instructions no path reaches are left out (the verifier refuses
//!   unreachable code; classic BPF allows it).
//!
//! XDP keeps or drops whole frames: a program whose returns would cut a frame
//! short (a constant below the largest frame the port receives, or A) stays
//! in user space ([`check`]).

use super::ebpf::{
    Asm, Label, TooFar, ADD, AND, FP, HELPER_XDP_GET_BUFF_LEN, HELPER_XDP_LOAD_BYTES, JEQ, JGT,
    JMP32, JMP64, JNE, LSH, MOV, R0, R1, R2, R3, R4, R6, R7, R8, R9, SIZE_B, SIZE_H, SIZE_W,
    XDP_MD_DATA, XDP_MD_DATA_END, XDP_PASS,
};
// Classic BPF's classes and fields (`capture::bpf` checked them).
use crate::capture::bpf::{
    Insn, Program, ABS, ALU, IND, JMP, LD, LDX, LEN, MEM as LDMEM, MSH, RET, RET_A, ST, STX,
    X as SRC_X,
};

/// What the program does with a frame the filter keeps.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Keep {
    /// Redirect to the XSKMAP with this fd (what a port loads).
    Redirect(i32),
    /// Return this XDP action (tests, with `BPF_PROG_TEST_RUN`).
    #[cfg_attr(not(any(test, fuzzing)), allow(dead_code))]
    Action(i32),
}

/// Why a filter cannot run in the XDP program (it then runs in user space).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NotInKernel {
    /// A return of A: a kept length computed per frame.
    #[error("it returns the accumulator (a length to keep, per frame), and XDP keeps or drops whole frames")]
    ReturnsA,
    /// A constant return that would cut frames short.
    #[error("it keeps the first {0} bytes of a frame, and XDP keeps or drops whole frames")]
    Truncates(u32),
    /// A load that may reach past 64 KiB on a port whose frames may be
    /// longer.
    #[error("instruction {0} may load past the first 64 KiB of a frame, which XDP's load helper cannot read, and this port's frames may be longer")]
    FarLoad(usize),
    /// The translation does not fit eBPF's 16-bit jump offsets.
    #[error("its translation is too long for eBPF's 16-bit jumps")]
    TooLarge,
}

/// `M[k]` is at `fp + MEM + 4k`.
const MEM: i16 = -64;
/// The load buffer of `bpf_xdp_load_bytes`.
const BUF: i16 = -72;
/// The largest offset the load helper takes.
const MAX_OFF: u32 = 0xffff;

/// Which instructions some path from the first reaches (jumps go forward, so
/// one pass in order sees every predecessor first).
fn reachable(insns: &[Insn]) -> Vec<bool> {
    let n = insns.len();
    let mut r = vec![false; n];
    r[0] = true;
    for (at, i) in insns.iter().enumerate() {
        if !r[at] {
            continue;
        }
        let mut mark = |to: usize| {
            if let Some(x) = r.get_mut(to) {
                *x = true;
            }
        };
        match i.code & 0x07 {
            RET => {}
            JMP if i.code & 0xf0 == 0 => mark(at + 1 + i.k as usize),
            JMP => {
                mark(at + 1 + usize::from(i.jt));
                mark(at + 1 + usize::from(i.jf));
            }
            _ => mark(at + 1),
        }
    }
    r
}

/// Whether `p` can run in the XDP program of a port whose frames are at most
/// `max_len` bytes, and longer than 64 KiB now and then if `long_frames`:
/// each return a path reaches keeps all of a frame or none, and no load
/// reaches bytes the load helper cannot read.
pub(crate) fn check(p: &Program, max_len: u32, long_frames: bool) -> Result<(), NotInKernel> {
    let reach = reachable(p.insns());
    for (at, i) in p.insns().iter().enumerate().filter(|&(at, _)| reach[at]) {
        match i.code & 0x07 {
            RET if i.code & 0x18 == RET_A => return Err(NotInKernel::ReturnsA),
            RET if i.k != 0 && i.k < max_len => return Err(NotInKernel::Truncates(i.k)),
            LD | LDX if long_frames => {
                let far = match i.code & 0xe0 {
                    IND => true,
                    ABS | MSH => i.k > MAX_OFF,
                    _ => false,
                };
                if far {
                    return Err(NotInKernel::FarLoad(at));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether a direct load of `n` bytes at frame offset `k` passes the
/// verifier: always where the CPU has efficient unaligned access (the
/// verifier checks alignment only elsewhere), else if aligned counting the
/// 2 bytes the verifier assumes in front of the frame (`NET_IP_ALIGN`).
fn aligned(k: u32, n: u32) -> bool {
    const UNALIGNED_OK: bool = cfg!(any(
        target_arch = "x86_64",
        target_arch = "x86",
        target_arch = "aarch64",
        target_arch = "powerpc64",
        target_arch = "s390x"
    ));
    UNALIGNED_OK || (k + 2) % n == 0
}

/// Where a packet load reads.
#[derive(Clone, Copy)]
enum Off {
    /// `[k]`.
    Abs(u32),
    /// `[X + k]`, 32-bit wrapping.
    Ind(u32),
}

/// The translation of one program.
struct Tr {
    a: Asm,
    keep: Keep,
}

impl Tr {
    /// `return XDP_PASS`: the frame goes on to the kernel's stack.
    fn drop_frame(&mut self) {
        self.a.alu64_k(MOV, R0, XDP_PASS);
        self.a.exit();
    }

    fn keep_frame(&mut self) {
        match self.keep {
            Keep::Redirect(map) => super::prog::redirect(&mut self.a, R6, map),
            Keep::Action(act) => {
                self.a.alu64_k(MOV, R0, act);
                self.a.exit();
            }
        }
    }

    /// `dst = frame[off..off + size]` in host order, or the frame dropped.
    fn packet_load(&mut self, size: u8, off: Off, dst: u8) {
        let n: u32 = match size {
            SIZE_W => 4,
            SIZE_H => 2,
            _ => 1,
        };
        let a = &mut self.a;
        let (slow, done) = (a.label(), a.label());
        match off {
            Off::Abs(k) if k > MAX_OFF - n || !aligned(k, n) => {
                // Past the linear part of any frame (the helper fails; the
                // code after stays reachable for the verifier), or a load
                // this kernel's verifier refuses unaligned: the helper alone.
                a.alu32_k(MOV, R2, k as i32);
            }
            Off::Abs(k) => {
                // r2 = data + k; if r2 + n > data_end: slow.
                a.load(SIZE_W, R2, R6, XDP_MD_DATA);
                a.load(SIZE_W, R3, R6, XDP_MD_DATA_END);
                a.alu64_k(ADD, R2, k as i32);
                a.alu64_x(MOV, R4, R2);
                a.alu64_k(ADD, R4, n as i32);
                a.jmp_x(JMP64, JGT, R4, R3, slow);
                a.load(size, dst, R2, 0);
                a.ja(done);
                a.bind(slow);
                a.alu32_k(MOV, R2, k as i32);
            }
            Off::Ind(k) => {
                // w2 = X + k, read by the helper: a pointer at a variable
                // offset needs bounds the verifier tracks through X, which
                // differ between kernels (a branch they cannot rule out can
                // then fail verification).
                a.alu32_x(MOV, R2, R8);
                a.alu32_k(ADD, R2, k as i32);
            }
        }
        // bpf_xdp_load_bytes(ctx, r2, fp + BUF, n): 0, or the frame is shorter.
        a.alu64_x(MOV, R1, R6);
        a.alu64_x(MOV, R3, FP);
        a.alu64_k(ADD, R3, i32::from(BUF));
        a.alu64_k(MOV, R4, n as i32);
        a.call(HELPER_XDP_LOAD_BYTES);
        let loaded = a.label();
        a.jmp_k(JMP64, JEQ, R0, 0, loaded);
        self.drop_frame();
        let a = &mut self.a;
        a.bind(loaded);
        a.load(size, dst, FP, BUF);
        a.bind(done);
        if n > 1 {
            a.be_to_host(dst, 8 * n as i32);
        }
    }

    fn one(&mut self, at: usize, i: &Insn, labels: &[Label]) {
        let target = |off: usize| labels[at + 1 + off];
        let size = match i.code & 0x18 {
            0x00 => SIZE_W,
            0x08 => SIZE_H,
            _ => SIZE_B,
        };
        let slot = |k: u32| MEM + 4 * (k % 16) as i16;
        match i.code & 0x07 {
            LD | LDX => {
                let dst = if i.code & 0x07 == LD { R7 } else { R8 };
                match i.code & 0xe0 {
                    ABS => self.packet_load(size, Off::Abs(i.k), R7),
                    IND => self.packet_load(size, Off::Ind(i.k), R7),
                    LDMEM => self.a.load(SIZE_W, dst, FP, slot(i.k)),
                    LEN => self.a.alu32_x(MOV, dst, R9),
                    MSH => {
                        self.packet_load(SIZE_B, Off::Abs(i.k), R8);
                        self.a.alu32_k(AND, R8, 0x0f);
                        self.a.alu32_k(LSH, R8, 2);
                    }
                    _ => self.a.alu32_k(MOV, dst, i.k as i32), // IMM
                }
            }
            ST => self.a.store32(FP, slot(i.k), R7),
            STX => self.a.store32(FP, slot(i.k), R8),
            ALU => {
                let op = (i.code & 0xf0) as u8;
                if op == 0x80 {
                    self.a.neg32(R7);
                } else if i.code & SRC_X == 0 {
                    self.a.alu32_k(op, R7, i.k as i32);
                } else if op == 0x30 || op == 0x90 {
                    // DIV, MOD: by X = 0 drops the frame.
                    let ok = self.a.label();
                    self.a.jmp_k(JMP32, JNE, R8, 0, ok);
                    self.drop_frame();
                    self.a.bind(ok);
                    self.a.alu32_x(op, R7, R8);
                } else if op == LSH || op == 0x70 {
                    self.a.alu32_x(MOV, R2, R8);
                    self.a.alu32_k(AND, R2, 31);
                    self.a.alu32_x(op, R7, R2);
                } else {
                    self.a.alu32_x(op, R7, R8);
                }
            }
            JMP => {
                let op = (i.code & 0xf0) as u8;
                if op == 0 {
                    if i.k != 0 {
                        self.a.ja(target(i.k as usize));
                    }
                } else if i.jt == i.jf {
                    if i.jt != 0 {
                        self.a.ja(target(usize::from(i.jt)));
                    }
                } else {
                    let t = target(usize::from(i.jt));
                    if i.code & SRC_X == 0 {
                        self.a.jmp_k(JMP32, op, R7, i.k as i32, t);
                    } else {
                        self.a.jmp_x(JMP32, op, R7, R8, t);
                    }
                    if i.jf != 0 {
                        self.a.ja(target(usize::from(i.jf)));
                    }
                }
            }
            RET => {
                if i.code & 0x18 == RET_A {
                    let zero = self.a.label();
                    self.a.jmp_k(JMP32, JEQ, R7, 0, zero);
                    self.keep_frame();
                    self.a.bind(zero);
                    self.drop_frame();
                } else if i.k == 0 {
                    self.drop_frame();
                } else {
                    self.keep_frame();
                }
            }
            _ => {
                // MISC: TXA (0x87) or TAX (0x07).
                if i.code & 0x80 != 0 {
                    self.a.alu32_x(MOV, R7, R8);
                } else {
                    self.a.alu32_x(MOV, R8, R7);
                }
            }
        }
    }
}

/// The XDP program that runs `p` on each frame: frames it keeps go where
/// `keep` says, the others on to the kernel's stack. Any program
/// [`Program::new`] accepts translates; whether the result means the same as
/// in a socket filter is [`check`]'s question.
pub(crate) fn translate(p: &Program, keep: Keep) -> Result<Vec<u64>, NotInKernel> {
    let insns = p.insns();
    let reach = reachable(insns);
    let mut t = Tr {
        a: Asm::default(),
        keep,
    };
    // Prologue: the context kept, A = X = 0, the frame's length if read.
    t.a.alu64_x(MOV, R6, R1);
    t.a.alu32_k(MOV, R7, 0);
    t.a.alu32_k(MOV, R8, 0);
    let reads_len = insns
        .iter()
        .zip(&reach)
        .any(|(i, &r)| r && matches!(i.code & 0x07, LD | LDX) && i.code & 0xe0 == LEN);
    if reads_len {
        t.a.call(HELPER_XDP_GET_BUFF_LEN); // r1 is still the context
        t.a.alu64_x(MOV, R9, R0);
    }
    let labels: Vec<Label> = insns.iter().map(|_| t.a.label()).collect();
    for (at, i) in insns.iter().enumerate() {
        if reach[at] {
            t.a.bind(labels[at]);
            t.one(at, i, &labels);
        }
    }
    t.a.finish().map_err(|TooFar| NotInKernel::TooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// tcpdump's programs (`tcpdump -ddd`, Ethernet).
    const UDP_DST_53: &str = "16\n40 0 0 12\n21 0 4 34525\n48 0 0 20\n21 0 11 17\n40 0 0 56\n21 8 9 53\n21 0 8 2048\n48 0 0 23\n21 0 6 17\n40 0 0 20\n69 4 0 8191\n177 0 0 14\n72 0 0 16\n21 0 1 53\n6 0 0 262144\n6 0 0 0\n";
    const SYN_BIG_IP: &str = "13\n40 0 0 12\n21 0 10 2048\n40 0 0 16\n37 0 8 100\n48 0 0 23\n21 0 6 6\n40 0 0 20\n69 4 0 8191\n177 0 0 14\n80 0 0 27\n69 0 1 2\n6 0 0 262144\n6 0 0 0\n";
    const IP6_OR_LONG_IP: &str =
        "7\n40 0 0 12\n21 3 0 34525\n21 0 3 2048\n128 0 0 0\n37 0 1 200\n6 0 0 262144\n6 0 0 0\n";

    fn prog(text: &str) -> Program {
        Program::from_ddd(text).unwrap()
    }

    fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
        Insn { code, jt, jf, k }
    }

    #[test]
    fn what_stays_in_user_space() {
        assert_eq!(check(&prog(UDP_DST_53), 4096, false), Ok(()));
        assert_eq!(
            check(&prog("1\n6 0 0 96\n"), 4096, false),
            Err(NotInKernel::Truncates(96))
        );
        assert_eq!(
            check(&prog("1\n22 0 0 0\n"), 4096, false),
            Err(NotInKernel::ReturnsA)
        );
        // A truncating return no path reaches does not count.
        let p = Program::new(vec![insn(0x06, 0, 0, 0), insn(0x06, 0, 0, 5)]).unwrap();
        assert_eq!(check(&p, 4096, false), Ok(()));
        // Frames longer than 64 KiB: loads at X + k, or past 64 KiB, stay
        // in user space; tcpdump's UDP port filter has one at X + k.
        assert_eq!(
            check(&prog(UDP_DST_53), 73_728, true),
            Err(NotInKernel::FarLoad(12))
        );
        let far = prog("2\n48 0 0 65536\n6 0 0 262144\n");
        assert_eq!(check(&far, 4096, false), Ok(()));
        assert_eq!(check(&far, 73_728, true), Err(NotInKernel::FarLoad(0)));
    }

    #[test]
    fn unreachable_code_is_left_out() {
        let one = Program::new(vec![insn(0x06, 0, 0, 1)]).unwrap();
        let dead = Program::new(vec![
            insn(0x06, 0, 0, 1),
            insn(0x00, 0, 0, 7),
            insn(0x06, 0, 0, 0),
        ])
        .unwrap();
        let a = translate(&one, Keep::Action(3)).unwrap();
        let b = translate(&dead, Keep::Action(3)).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn long_programs_are_refused_not_truncated() {
        // A jump over 4000 packet loads (each some 20 eBPF instructions)
        // that the other branch runs.
        let mut v = vec![insn(0x15, 0, 1, 1), insn(0x05, 0, 0, 4000)];
        v.extend((0..4000).map(|i| insn(0x30, 0, 0, i)));
        v.push(insn(0x06, 0, 0, 0));
        let p = Program::new(v).unwrap();
        assert_eq!(translate(&p, Keep::Action(3)), Err(NotInKernel::TooLarge));
    }

    /// Loads `p`'s translation (keeping frames with `XDP_TX`) and runs it on
    /// `frame` in the kernel (`BPF_PROG_TEST_RUN`): true if it kept the frame.
    struct Loaded(std::os::fd::OwnedFd);

    impl Loaded {
        fn new(p: &Program) -> Loaded {
            let insns = translate(p, Keep::Action(XDP_TX)).unwrap();
            match crate::sys::bpf::prog_load_xdp("rtap_filt_test", &insns, false) {
                Ok(fd) => Loaded(fd),
                Err((e, log)) => panic!("the verifier refuses {p}: {e}\n{}", tail(&log)),
            }
        }

        fn keeps(&self, frame: &[u8]) -> bool {
            use std::os::fd::AsFd;
            match crate::sys::bpf::prog_test_run(self.0.as_fd(), frame) {
                Ok(r) if r == XDP_TX as u32 => true,
                Ok(r) if r == XDP_PASS as u32 => false,
                r => panic!("test run: {r:?}"),
            }
        }
    }

    const XDP_TX: i32 = 3;

    fn tail(log: &str) -> &str {
        &log[log.len().saturating_sub(3000)..]
    }

    /// An Ethernet frame: IPv4 or IPv6, TCP or UDP, ports and flags as given,
    /// `pad` bytes of payload.
    fn frame(v6: bool, proto: u8, dport: u16, flags: u8, pad: usize, frag: bool) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
        let l4len = if proto == 6 { 20 } else { 8 } + pad;
        if v6 {
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(l4len as u16).to_be_bytes());
            f.extend_from_slice(&[proto, 64]);
            f.extend_from_slice(&[0xfd; 32]);
        } else {
            f.extend_from_slice(&[0x45, 0]);
            f.extend_from_slice(&((20 + l4len) as u16).to_be_bytes());
            f.extend_from_slice(&[
                0,
                0,
                if frag { 0x20 } else { 0 },
                if frag { 1 } else { 0 },
                64,
                proto,
                0,
                0,
            ]);
            f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        }
        f.extend_from_slice(&1234u16.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        if proto == 6 {
            f.extend_from_slice(&[0; 9]);
            f.push(flags);
            f.extend_from_slice(&[0; 6]);
        } else {
            f.extend_from_slice(&[0; 4]);
        }
        f.resize(f.len() + pad, 0xab);
        f
    }

    /// tcpdump's programs keep, in the kernel, exactly what the interpreter
    /// keeps (both directions of every branch taken).
    #[test]
    fn tcpdumps_programs_in_the_kernel() {
        let frames: Vec<Vec<u8>> = [false, true]
            .into_iter()
            .flat_map(|v6| {
                [
                    (17, 53, 0),
                    (17, 54, 0),
                    (6, 53, 2),
                    (6, 80, 0x12),
                    (6, 80, 0x10),
                ]
                .into_iter()
                .flat_map(move |(p, d, fl)| {
                    [0, 100, 300].into_iter().flat_map(move |pad| {
                        [false, true]
                            .into_iter()
                            .map(move |fr| frame(v6, p, d, fl, pad, fr))
                    })
                })
            })
            .collect();
        for text in [UDP_DST_53, SYN_BIG_IP, IP6_OR_LONG_IP] {
            let p = prog(text);
            let l = Loaded::new(&p);
            let mut kept = 0;
            for f in &frames {
                let want = p.matches(f, f.len() as u32);
                assert_eq!(l.keeps(f), want, "{p}on {f:02x?}");
                kept += usize::from(want);
            }
            assert!(
                kept > 0 && kept < frames.len(),
                "both verdicts seen: {kept}"
            );
        }
    }

    /// A valid instruction from four numbers, for position `at` of `n`.
    fn any_insn(at: usize, n: usize, (kind, b, c, k): (u8, u8, u8, u32)) -> Insn {
        let rest = (n - at - 1) as u32;
        let size = [0x00, 0x08, 0x10][usize::from(b % 3)];
        let off = match c % 16 {
            0..=13 => k % 64,
            14 => 0xffff - (k % 8),
            _ => k % 0xffe0_0000, // above: the kernel's ancillary data
        };
        // Constants that loaded values (from frames of small bytes) meet.
        let konst = match k % 4 {
            0 => k % 4,
            1 => k % 300,
            2 => 0x0101_0101 * (k % 3),
            _ => k,
        };
        // Half the jumps to the last return (which only jumps reach), so
        // verdicts depend on what was loaded.
        let jump = |x: u8| match rest {
            0 => 0,
            _ if x & 1 == 1 => (rest - 1).min(255) as u8,
            _ => (u32::from(x >> 1) % rest) as u8,
        };
        match kind % 16 {
            0 | 1 => insn(0x20 | size, 0, 0, off),
            2 => insn(0x40 | size, 0, 0, off),
            3 => insn(0xb1, 0, 0, off),
            4 => insn(if b & 1 == 0 { 0x80 } else { 0x81 }, 0, 0, 0),
            5 => insn([0x00, 0x01][usize::from(b & 1)], 0, 0, konst),
            6 | 7 => {
                let op = u16::from(c % 11) << 4;
                let x = if kind % 16 == 7 && op != 0x80 {
                    0x08
                } else {
                    0
                };
                let k = match op {
                    0x30 | 0x90 => konst.max(1),
                    0x60 | 0x70 => k % 32,
                    _ => konst,
                };
                insn(0x04 | op | x, 0, 0, k)
            }
            8..=10 if rest > 0 => {
                let op = u16::from(1 + c % 4) << 4;
                let x = if b & 1 == 1 { 0x08 } else { 0 };
                insn(0x05 | op | x, jump(b >> 1), jump(c ^ (b >> 1) & 1), konst)
            }
            11 if rest > 0 => insn(0x05, 0, 0, k % rest),
            12 => insn(if b & 1 == 0 { 0x07 } else { 0x87 }, 0, 0, 0),
            13 => insn(0x02 | (u16::from(b & 1)), 0, 0, k % 16),
            14 => insn(if b & 1 == 0 { 0x60 } else { 0x61 }, 0, 0, k % 2),
            // Returns in the body: rarer, or few paths reach the end.
            _ if c % 4 != 0 => insn(0x20 | size, 0, 0, k % 64),
            _ => match b % 3 {
                0 => insn(0x06, 0, 0, 0),
                1 => insn(0x06, 0, 0, 262144),
                _ => insn(0x16, 0, 0, 0),
            },
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(192))]

        /// Arbitrary programs on arbitrary frames: the kernel running the
        /// translation keeps a frame exactly when the interpreter does. The
        /// program's end keeps a frame only if A is the value the
        /// interpreter computes there for the first frame, so a wrong value
        /// anywhere shows, not just a wrong branch.
        #[test]
        fn arbitrary_programs_keep_what_the_interpreter_keeps(
            raw in proptest::collection::vec(any::<(u8, u8, u8, u32)>(), 1..32),
            frames in proptest::collection::vec(proptest::collection::vec(0u8..4, 60..400), 8),
        ) {
            // M[0] and M[1] written first, so the generated reads of them are
            // valid on every path; the body, whose jumps go at most to the
            // first instruction after it.
            let n = raw.len() + 1;
            let mut body = vec![insn(0x00, 0, 0, 7), insn(0x02, 0, 0, 0), insn(0x01, 0, 0, 9), insn(0x03, 0, 0, 1)];
            body.extend(raw.iter().enumerate().map(|(at, &r)| any_insn(at, n, r)));
            let with = |tail: &[Insn]| {
                let mut v = body.clone();
                v.extend_from_slice(tail);
                Program::new(v).expect("generated programs are valid")
            };
            let a0 = with(&[insn(0x16, 0, 0, 0)]).run(&frames[0], frames[0].len() as u32);
            let p = with(&[insn(0x15, 0, 1, a0), insn(0x06, 0, 0, 262144), insn(0x06, 0, 0, 0)]);
            let l = Loaded::new(&p);
            let mut seen = [false; 2];
            for f in &frames {
                let want = p.matches(f, f.len() as u32);
                prop_assert_eq!(l.keeps(f), want, "{}on {:02x?}", p, f);
                seen[usize::from(want)] = true;
            }
        }
    }
}
