//! Classic BPF (cBPF): the filter programs tcpdump and libpcap compile
//! (`tcpdump -ddd EXPR` prints one), checked as the kernel checks them and run
//! in user space with the kernel's semantics, for ports whose frames no
//! kernel filter sees (TAP, TUN). On AF_PACKET ports the same program is
//! attached in the kernel (`SO_ATTACH_FILTER`), on AF_XDP ports translated
//! into rtap's XDP program, so unmatched frames never cross.
//!
//! Pure code. The program is untrusted input: [`Program::new`] refuses what
//! the kernel would refuse (unknown opcodes, jumps out of the program, scratch
//! memory read before written, a constant divisor of 0, no final return) and
//! what user space cannot run (the kernel's ancillary loads, `SKF_AD_*`);
//! [`Program::run`] then never panics and always ends (jumps go forward).

use std::fmt;

/// One instruction, as `struct sock_filter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Constant.
    pub k: u32,
}

/// A checked cBPF program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    insns: Vec<Insn>,
}

/// Why a program is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BpfError {
    /// No instructions, or more than the kernel takes (4096).
    #[error("a program has 1..=4096 instructions, not {0}")]
    Length(usize),
    /// An instruction the kernel does not know.
    #[error("instruction {at}: unknown opcode {code:#06x}")]
    Opcode {
        /// Its index.
        at: usize,
        /// The opcode.
        code: u16,
    },
    /// A jump past the end of the program.
    #[error("instruction {at}: jumps past the end of the program")]
    Jump {
        /// Its index.
        at: usize,
    },
    /// Scratch memory out of range, or read before any store to it.
    #[error("instruction {at}: scratch memory M[{k}] {why}")]
    Memory {
        /// Its index.
        at: usize,
        /// The slot.
        k: u32,
        /// `out of range (0..16)` or `read before written`.
        why: &'static str,
    },
    /// Division or modulo by the constant 0, or a shift by 32 or more.
    #[error("instruction {at}: {why}")]
    Constant {
        /// Its index.
        at: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// A load of the kernel's ancillary data (`SKF_AD_*`, negative offsets):
    /// only the kernel has it.
    #[error("instruction {at}: loads the kernel's ancillary data (offset {k:#x}), which only an in-kernel filter has")]
    Ancillary {
        /// Its index.
        at: usize,
        /// The offset.
        k: u32,
    },
    /// The last instruction is not a return.
    #[error("the last instruction must return")]
    NoReturn,
    /// A line of `tcpdump -ddd` output that is not one.
    #[error("line {line}: {why}")]
    Text {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
}

// Classes, sizes, modes, operations and sources of the opcode (the XDP
// translation reads them too).
pub(crate) const LD: u16 = 0x00;
pub(crate) const LDX: u16 = 0x01;
pub(crate) const ST: u16 = 0x02;
pub(crate) const STX: u16 = 0x03;
pub(crate) const ALU: u16 = 0x04;
pub(crate) const JMP: u16 = 0x05;
pub(crate) const RET: u16 = 0x06;
const MISC: u16 = 0x07;
const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;
const IMM: u16 = 0x00;
pub(crate) const ABS: u16 = 0x20;
pub(crate) const IND: u16 = 0x40;
pub(crate) const MEM: u16 = 0x60;
pub(crate) const LEN: u16 = 0x80;
pub(crate) const MSH: u16 = 0xa0;
pub(crate) const X: u16 = 0x08;
pub(crate) const RET_A: u16 = 0x10;
const MEMWORDS: u32 = 16;
/// Offsets from here up are the kernel's special loads (`SKF_LL_OFF` is the
/// lowest, -0x200000).
const SPECIAL: u32 = 0xffe0_0000;

/// The operation of an ALU instruction (`code & 0xf0`).
fn alu_known(op: u16) -> bool {
    op <= 0xa0
}

impl Program {
    /// Checks `insns` as the kernel's `SO_ATTACH_FILTER` does, and refuses
    /// ancillary loads.
    pub fn new(insns: Vec<Insn>) -> Result<Program, BpfError> {
        let n = insns.len();
        if n == 0 || n > 4096 {
            return Err(BpfError::Length(n));
        }
        // Scratch slots surely written on every path to each instruction (the
        // kernel's rule: a linear walk, jumps narrowing their targets).
        let mut written = vec![u16::MAX; n];
        written[0] = 0;
        for (at, i) in insns.iter().enumerate() {
            let bad = || BpfError::Opcode { at, code: i.code };
            let mem = |k: u32| {
                if k >= MEMWORDS {
                    Err(BpfError::Memory {
                        at,
                        k,
                        why: "out of range (0..16)",
                    })
                } else {
                    Ok(k)
                }
            };
            let mut here = written[at];
            let rest = (n - at - 1) as u64;
            match i.code & 0x07 {
                LD | LDX => {
                    let ld = i.code & 0x07 == LD;
                    match (i.code & 0xe0, i.code & 0x18, ld) {
                        (IMM, W, _) | (LEN, W, _) => {}
                        (MEM, W, _) => {
                            let k = mem(i.k)?;
                            if here & (1 << k) == 0 {
                                return Err(BpfError::Memory {
                                    at,
                                    k,
                                    why: "read before written",
                                });
                            }
                        }
                        (ABS | IND, W | H | B, true) => {
                            if i.code & 0xe0 == ABS && i.k >= SPECIAL {
                                return Err(BpfError::Ancillary { at, k: i.k });
                            }
                        }
                        (MSH, B, false) => {}
                        _ => return Err(bad()),
                    }
                    if i.code & !0xff != 0 {
                        return Err(bad());
                    }
                }
                ST | STX => {
                    if i.code & !0x07 != 0 {
                        return Err(bad());
                    }
                    here |= 1 << mem(i.k)?;
                }
                ALU => {
                    let op = i.code & 0xf0;
                    if !alu_known(op) || i.code & !0xff != 0 || i.code & 0x07 != ALU {
                        return Err(bad());
                    }
                    if i.code & X == 0 {
                        match op {
                            0x30 | 0x90 if i.k == 0 => {
                                return Err(BpfError::Constant {
                                    at,
                                    why: "division by the constant 0",
                                })
                            }
                            0x60 | 0x70 if i.k >= 32 => {
                                return Err(BpfError::Constant {
                                    at,
                                    why: "shift by 32 or more",
                                })
                            }
                            _ => {}
                        }
                    } else if op == 0x80 {
                        return Err(bad()); // NEG takes no source
                    }
                }
                JMP => {
                    let op = i.code & 0xf0;
                    if op > 0x40 || i.code & !0xff != 0 {
                        return Err(bad());
                    }
                    if op == 0x00 {
                        if i.code & X != 0 {
                            return Err(bad());
                        }
                        if u64::from(i.k) >= rest {
                            return Err(BpfError::Jump { at });
                        }
                        let to = at + 1 + i.k as usize;
                        written[to] &= here;
                    } else {
                        if u64::from(i.jt) >= rest || u64::from(i.jf) >= rest {
                            return Err(BpfError::Jump { at });
                        }
                        written[at + 1 + usize::from(i.jt)] &= here;
                        written[at + 1 + usize::from(i.jf)] &= here;
                    }
                    continue; // no fall-through
                }
                RET => {
                    if !matches!(i.code & 0x18, 0x00 | RET_A) || i.code & !0x1f != 0 {
                        return Err(bad());
                    }
                    // The kernel walks on past a return with what it knew
                    // before it (code after a return is checked as reached).
                }
                _ => {
                    // MISC: TAX or TXA.
                    if i.code != MISC && i.code != (MISC | 0x80) {
                        return Err(bad());
                    }
                }
            }
            if at + 1 < n {
                written[at + 1] &= here;
            }
        }
        if insns[n - 1].code & 0x07 != RET {
            return Err(BpfError::NoReturn);
        }
        Ok(Program { insns })
    }

    /// Parses `tcpdump -ddd` output (a count, then `code jt jf k` per line, in
    /// decimal) and checks the program.
    pub fn from_ddd(text: &str) -> Result<Program, BpfError> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty());
        let (line, first) = lines.next().ok_or(BpfError::Text {
            line: 1,
            why: "empty: expected the instruction count".into(),
        })?;
        let count: usize = first.parse().map_err(|_| BpfError::Text {
            line,
            why: format!("{first:?} is not the instruction count"),
        })?;
        let mut insns = Vec::with_capacity(count.min(4096));
        for (line, l) in lines {
            let f: Vec<&str> = l.split_whitespace().collect();
            let num = |s: &str| -> Option<u64> { s.parse().ok() };
            let v: Option<Vec<u64>> = f.iter().map(|s| num(s)).collect();
            match v.as_deref() {
                Some(&[code, jt, jf, k])
                    if code <= 0xffff && jt <= 0xff && jf <= 0xff && k <= 0xffff_ffff =>
                {
                    insns.push(Insn {
                        code: code as u16,
                        jt: jt as u8,
                        jf: jf as u8,
                        k: k as u32,
                    })
                }
                _ => {
                    return Err(BpfError::Text {
                        line,
                        why: format!("{l:?} is not `code jt jf k` in decimal"),
                    })
                }
            }
        }
        if insns.len() != count {
            return Err(BpfError::Text {
                line: 1,
                why: format!("says {count} instructions, {} follow", insns.len()),
            });
        }
        Program::new(insns)
    }

    /// The instructions.
    pub fn insns(&self) -> &[Insn] {
        &self.insns
    }

    /// Runs the program over a frame of which `pkt` is what is in memory (the
    /// first bytes, or all) and `wire_len` its length: the bytes to keep (0:
    /// drop), as the kernel's filter returns them. A load past `pkt` drops
    /// the frame, as in the kernel; so does a division by `X` = 0.
    pub fn run(&self, pkt: &[u8], wire_len: u32) -> u32 {
        let (mut a, mut x) = (0u32, 0u32);
        let mut m = [0u32; MEMWORDS as usize];
        let mut pc = 0usize;
        let load = |off: u64, size: u16| -> Option<u32> {
            let off = usize::try_from(off).ok()?;
            let n = match size {
                W => 4,
                H => 2,
                _ => 1,
            };
            let b = pkt.get(off..off.checked_add(n)?)?;
            Some(b.iter().fold(0u32, |v, &c| v << 8 | u32::from(c)))
        };
        // Checked at construction: every pc is in range, jumps go forward, M[k]
        // is in range; the loop ends within `insns.len()` steps.
        while let Some(i) = self.insns.get(pc) {
            pc += 1;
            match i.code & 0x07 {
                LD => {
                    a = match i.code & 0xe0 {
                        IMM => i.k,
                        LEN => wire_len,
                        MEM => m[(i.k % MEMWORDS) as usize],
                        ABS => match load(u64::from(i.k), i.code & 0x18) {
                            Some(v) => v,
                            None => return 0,
                        },
                        // The kernel adds the two as a signed 32-bit offset; a
                        // negative one (its special areas) drops the frame here.
                        _ => {
                            let off = i.k.wrapping_add(x) as i32;
                            match u64::try_from(off).ok().and_then(|o| load(o, i.code & 0x18)) {
                                Some(v) => v,
                                None => return 0,
                            }
                        }
                    }
                }
                LDX => {
                    x = match i.code & 0xe0 {
                        IMM => i.k,
                        LEN => wire_len,
                        MEM => m[(i.k % MEMWORDS) as usize],
                        _ => match load(u64::from(i.k), B) {
                            Some(v) => (v & 0x0f) << 2,
                            None => return 0,
                        },
                    }
                }
                ST => m[(i.k % MEMWORDS) as usize] = a,
                STX => m[(i.k % MEMWORDS) as usize] = x,
                ALU => {
                    let s = if i.code & X != 0 { x } else { i.k };
                    a = match i.code & 0xf0 {
                        0x00 => a.wrapping_add(s),
                        0x10 => a.wrapping_sub(s),
                        0x20 => a.wrapping_mul(s),
                        0x30 => match a.checked_div(s) {
                            Some(v) => v,
                            None => return 0,
                        },
                        0x40 => a | s,
                        0x50 => a & s,
                        0x60 => a.wrapping_shl(s & 31),
                        0x70 => a.wrapping_shr(s & 31),
                        0x80 => a.wrapping_neg(),
                        0x90 => match a.checked_rem(s) {
                            Some(v) => v,
                            None => return 0,
                        },
                        _ => a ^ s,
                    }
                }
                JMP => {
                    let s = if i.code & X != 0 { x } else { i.k };
                    let hit = match i.code & 0xf0 {
                        0x00 => {
                            pc += i.k as usize;
                            continue;
                        }
                        0x10 => a == s,
                        0x20 => a > s,
                        0x30 => a >= s,
                        _ => a & s != 0,
                    };
                    pc += usize::from(if hit { i.jt } else { i.jf });
                }
                RET => {
                    return if i.code & 0x18 == RET_A { a } else { i.k };
                }
                _ => {
                    if i.code & 0x80 != 0 {
                        a = x;
                    } else {
                        x = a;
                    }
                }
            }
        }
        0
    }

    /// True if the program keeps any of the frame.
    pub fn matches(&self, pkt: &[u8], wire_len: u32) -> bool {
        self.run(pkt, wire_len) != 0
    }
}

impl fmt::Display for Program {
    /// `tcpdump -ddd` form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.insns.len())?;
        for i in &self.insns {
            writeln!(f, "{} {} {} {}", i.code, i.jt, i.jf, i.k)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tcpdump -ddd 'udp port 53'` on Ethernet (tcpdump 4.99.3, libpcap 1.10).
    const UDP_53: &str = "20
40 0 0 12
21 0 6 34525
48 0 0 20
21 0 15 17
40 0 0 54
21 12 0 53
40 0 0 56
21 10 11 53
21 0 10 2048
48 0 0 23
21 0 8 17
40 0 0 20
69 6 0 8191
177 0 0 14
72 0 0 14
21 2 0 53
72 0 0 16
21 0 1 53
6 0 0 65535
6 0 0 0
";

    fn udp4(dport: u16, frag: bool) -> Vec<u8> {
        let mut f = vec![0u8; 42];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[23] = 17;
        if frag {
            f[20] = 0x20;
            f[21] = 1;
        }
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    #[test]
    fn tcpdumps_program_runs_as_it_should() {
        let p = Program::from_ddd(UDP_53).unwrap();
        assert_eq!(p.insns().len(), 20);
        assert_eq!(p.run(&udp4(53, false), 42), 65535);
        assert!(!p.matches(&udp4(54, false), 42));
        assert!(
            !p.matches(&udp4(53, true), 42),
            "a later fragment has no ports"
        );
        assert!(
            !p.matches(&udp4(53, false)[..30], 42),
            "load past the bytes: dropped"
        );
        assert_eq!(Program::from_ddd(&p.to_string()).unwrap(), p);
    }

    #[test]
    fn what_the_kernel_refuses_is_refused() {
        let ret = Insn {
            code: RET,
            jt: 0,
            jf: 0,
            k: 1,
        };
        let i = |code, jt, jf, k| Insn { code, jt, jf, k };
        let bad: Vec<(Vec<Insn>, &str)> = vec![
            (vec![], "1..=4096"),
            (vec![ret; 4097], "1..=4096"),
            (vec![i(0xffff, 0, 0, 0), ret], "unknown opcode"),
            (vec![i(JMP | 0x10, 5, 0, 0), ret], "past the end"),
            (vec![i(JMP, 0, 0, 1), ret], "past the end"),
            (vec![i(LD | MEM, 0, 0, 3), ret], "read before written"),
            (vec![i(ST, 0, 0, 16), ret], "out of range"),
            (vec![i(ALU | 0x30, 0, 0, 0), ret], "constant 0"),
            (vec![i(LD | W | ABS, 0, 0, 0xffff_f000), ret], "ancillary"),
            (vec![i(LD | IMM, 0, 0, 0)], "must return"),
        ];
        for (p, why) in bad {
            let e = Program::new(p).unwrap_err().to_string();
            assert!(e.contains(why), "{e} / {why}");
        }
        // A store on one path only does not make the slot readable after the join.
        let p = vec![
            i(JMP | 0x10, 0, 1, 0),
            i(ST, 0, 0, 2),
            i(LD | MEM, 0, 0, 2),
            ret,
        ];
        assert!(Program::new(p)
            .unwrap_err()
            .to_string()
            .contains("before written"));
        let p = vec![
            i(ST, 0, 0, 2),
            i(JMP | 0x10, 0, 0, 0),
            i(LD | MEM, 0, 0, 2),
            ret,
        ];
        assert!(Program::new(p).is_ok());
        // Code after a return is checked with what held before it (the
        // kernel refuses this; found by the fuzz target against the kernel).
        let p = vec![ret, i(LDX | MEM, 0, 0, 0), ret];
        assert!(Program::new(p)
            .unwrap_err()
            .to_string()
            .contains("before written"));
        for t in ["", "x", "2\n6 0 0 1\n", "1\n6 0 0\n", "1\n6 0 0 -1\n"] {
            assert!(Program::from_ddd(t).is_err(), "{t:?}");
        }
    }

    #[test]
    fn arithmetic_as_the_kernel_does_it() {
        let i = |code, jt, jf, k| Insn { code, jt, jf, k };
        let run = |v: Vec<Insn>| Program::new(v).unwrap().run(&[0xab, 0xcd], 2);
        // Division by X = 0 drops; shifts by X use the low 5 bits.
        assert_eq!(
            run(vec![
                i(LD | IMM, 0, 0, 7),
                i(ALU | 0x30 | X, 0, 0, 0),
                i(RET | RET_A, 0, 0, 0)
            ]),
            0
        );
        assert_eq!(
            run(vec![
                i(LD | IMM, 0, 0, 1),
                i(LDX | IMM, 0, 0, 33),
                i(ALU | 0x60 | X, 0, 0, 0),
                i(RET | RET_A, 0, 0, 0)
            ]),
            2
        );
        assert_eq!(
            run(vec![i(LD | H | ABS, 0, 0, 0), i(RET | RET_A, 0, 0, 0)]),
            0xabcd
        );
        assert_eq!(
            run(vec![
                i(LDX | B | MSH, 0, 0, 1),
                i(MISC | 0x80, 0, 0, 0),
                i(RET | RET_A, 0, 0, 0)
            ]),
            0x34
        );
        assert_eq!(run(vec![i(LD | LEN, 0, 0, 0), i(RET | RET_A, 0, 0, 0)]), 2);
        // An indirect offset is k + X wrapped to 32 bits, as the kernel adds it.
        assert_eq!(
            run(vec![
                i(LDX | IMM, 0, 0, 1),
                i(LD | B | IND, 0, 0, u32::MAX),
                i(RET | RET_A, 0, 0, 0)
            ]),
            0xab
        );
        // A negative one (the kernel's special areas) drops the frame.
        assert_eq!(
            run(vec![
                i(LDX | IMM, 0, 0, 0),
                i(LD | B | IND, 0, 0, 0x8000_0000),
                i(RET, 0, 0, 1)
            ]),
            0
        );
    }
}
