//! eBPF instructions as the kernel reads them (`struct bpf_insn`,
//! `include/uapi/linux/bpf.h`): the opcodes rtap's XDP programs use and a
//! small assembler with labels, for `prog.rs` and `filter.rs`. Pure.

/// Registers.
pub(crate) const R0: u8 = 0;
pub(crate) const R1: u8 = 1;
pub(crate) const R2: u8 = 2;
pub(crate) const R3: u8 = 3;
pub(crate) const R4: u8 = 4;
pub(crate) const R6: u8 = 6;
pub(crate) const R7: u8 = 7;
pub(crate) const R8: u8 = 8;
pub(crate) const R9: u8 = 9;
/// The read-only frame pointer (the stack grows down from it).
pub(crate) const FP: u8 = 10;

// Classes.
const LDX: u8 = 0x01;
const STX: u8 = 0x03;
pub(crate) const ALU32: u8 = 0x04;
pub(crate) const JMP64: u8 = 0x05;
pub(crate) const JMP32: u8 = 0x06;
const ALU64: u8 = 0x07;
// Sizes and modes.
pub(crate) const SIZE_W: u8 = 0x00;
pub(crate) const SIZE_H: u8 = 0x08;
pub(crate) const SIZE_B: u8 = 0x10;
const MEM: u8 = 0x60;
// Sources.
const K: u8 = 0x00;
const X: u8 = 0x08;
// ALU operations (the same values as classic BPF's).
pub(crate) const ADD: u8 = 0x00;
pub(crate) const AND: u8 = 0x50;
pub(crate) const LSH: u8 = 0x60;
pub(crate) const MOV: u8 = 0xb0;
const END: u8 = 0xd0;
const TO_BE: u8 = 0x08;
// Jump operations (conditions as classic BPF's, plus these).
const JA: u8 = 0x00;
pub(crate) const JEQ: u8 = 0x10;
pub(crate) const JGT: u8 = 0x20;
pub(crate) const JNE: u8 = 0x50;
const CALL: u8 = 0x80;
const EXIT: u8 = 0x90;
/// `BPF_LD | BPF_IMM | BPF_DW`: a 64-bit immediate in two slots.
const LD_IMM_DW: u8 = 0x18;
/// `BPF_PSEUDO_MAP_FD`: the immediate of a 64-bit load is a map fd.
const PSEUDO_MAP_FD: u8 = 1;

/// `struct xdp_md` offsets.
pub(crate) const XDP_MD_DATA: i16 = 0;
pub(crate) const XDP_MD_DATA_END: i16 = 4;
pub(crate) const XDP_MD_RX_QUEUE_INDEX: i16 = 16;
/// XDP actions.
pub(crate) const XDP_PASS: i32 = 2;
/// Helpers.
pub(crate) const HELPER_REDIRECT_MAP: i32 = 51;
pub(crate) const HELPER_XDP_GET_BUFF_LEN: i32 = 188;
pub(crate) const HELPER_XDP_LOAD_BYTES: i32 = 189;

/// One instruction: opcode, the destination and source registers in one byte
/// (their nibble order follows the bitfield layout of the target), a 16-bit
/// offset, a 32-bit immediate.
pub(crate) fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    let regs = if cfg!(target_endian = "little") {
        (src << 4) | (dst & 0xf)
    } else {
        (dst << 4) | (src & 0xf)
    };
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = regs;
    b[2..4].copy_from_slice(&off.to_ne_bytes());
    b[4..8].copy_from_slice(&imm.to_ne_bytes());
    u64::from_ne_bytes(b)
}

/// A place in the program a jump goes to, bound once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Label(usize);

/// A program being written: instructions, and jumps whose targets are bound
/// later.
#[derive(Default)]
pub(crate) struct Asm {
    insns: Vec<u64>,
    /// Where each label is (instruction index), once bound.
    labels: Vec<Option<usize>>,
    /// Jumps waiting for their label: (instruction index, label).
    fixups: Vec<(usize, Label)>,
}

/// A jump farther than a 16-bit offset reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TooFar;

impl Asm {
    /// A new label, not yet bound.
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Binds `l` to the next instruction.
    pub fn bind(&mut self, l: Label) {
        self.labels[l.0] = Some(self.insns.len());
    }

    fn raw(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        self.insns.push(insn(code, dst, src, off, imm));
    }

    /// `dst op= imm` in 32 bits (the upper half cleared).
    pub fn alu32_k(&mut self, op: u8, dst: u8, imm: i32) {
        self.raw(ALU32 | op | K, dst, 0, 0, imm);
    }

    /// `dst op= src` in 32 bits.
    pub fn alu32_x(&mut self, op: u8, dst: u8, src: u8) {
        self.raw(ALU32 | op | X, dst, src, 0, 0);
    }

    /// `dst op= imm` in 64 bits (the immediate sign-extended).
    pub fn alu64_k(&mut self, op: u8, dst: u8, imm: i32) {
        self.raw(ALU64 | op | K, dst, 0, 0, imm);
    }

    /// `dst op= src` in 64 bits.
    pub fn alu64_x(&mut self, op: u8, dst: u8, src: u8) {
        self.raw(ALU64 | op | X, dst, src, 0, 0);
    }

    /// `dst = -dst` in 32 bits.
    pub fn neg32(&mut self, dst: u8) {
        self.raw(ALU32 | 0x80, dst, 0, 0, 0);
    }

    /// `dst` from network to host order, `bits` (16 or 32) wide.
    pub fn be_to_host(&mut self, dst: u8, bits: i32) {
        self.raw(ALU32 | END | TO_BE, dst, 0, 0, bits);
    }

    /// `dst = *(size *)(src + off)`, zero-extended.
    pub fn load(&mut self, size: u8, dst: u8, src: u8, off: i16) {
        self.raw(LDX | MEM | size, dst, src, off, 0);
    }

    /// `*(u32 *)(dst + off) = src`.
    pub fn store32(&mut self, dst: u8, off: i16, src: u8) {
        self.raw(STX | MEM | SIZE_W, dst, src, off, 0);
    }

    /// `dst = map` (the fd of a map, two slots).
    pub fn load_map_fd(&mut self, dst: u8, map_fd: i32) {
        self.raw(LD_IMM_DW, dst, PSEUDO_MAP_FD, 0, map_fd);
        self.raw(0, 0, 0, 0, 0); // the immediate's high 32 bits
    }

    /// Calls helper `id` (arguments in r1..r5, result in r0; r1..r5 clobbered).
    pub fn call(&mut self, id: i32) {
        self.raw(JMP64 | CALL, 0, 0, 0, id);
    }

    /// Returns r0.
    pub fn exit(&mut self) {
        self.raw(JMP64 | EXIT, 0, 0, 0, 0);
    }

    /// `goto to`.
    pub fn ja(&mut self, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.raw(JMP64 | JA, 0, 0, 0, 0);
    }

    /// `if dst op imm goto to`; `class` is [`JMP64`] (64-bit compare, the
    /// immediate sign-extended) or [`JMP32`].
    pub fn jmp_k(&mut self, class: u8, op: u8, dst: u8, imm: i32, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.raw(class | op | K, dst, 0, 0, imm);
    }

    /// `if dst op src goto to`.
    pub fn jmp_x(&mut self, class: u8, op: u8, dst: u8, src: u8, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.raw(class | op | X, dst, src, 0, 0);
    }

    /// The program, every jump resolved. Panics on a label never bound (a
    /// bug of the writer, not of its input).
    pub fn finish(mut self) -> Result<Vec<u64>, TooFar> {
        for &(at, l) in &self.fixups {
            let to = self.labels[l.0].expect("a jump to a label that was never bound");
            let off = i16::try_from(to as i64 - at as i64 - 1).map_err(|_| TooFar)?;
            let mut b = self.insns[at].to_ne_bytes();
            b[2..4].copy_from_slice(&off.to_ne_bytes());
            self.insns[at] = u64::from_ne_bytes(b);
        }
        Ok(self.insns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_resolve_forward_and_back() {
        let mut a = Asm::default();
        let end = a.label();
        let top = a.label();
        a.bind(top);
        a.jmp_k(JMP32, JEQ, R7, 5, end); // 0: +2
        a.ja(top); // 1: -2
        a.exit(); // 2
        a.bind(end);
        a.exit(); // 3
        let p = a.finish().unwrap();
        let off = |i: u64| i16::from_ne_bytes(i.to_ne_bytes()[2..4].try_into().unwrap());
        assert_eq!((off(p[0]), off(p[1])), (2, -2));
    }

    #[test]
    fn a_jump_past_16_bits_is_refused() {
        let mut a = Asm::default();
        let end = a.label();
        a.ja(end);
        for _ in 0..40_000 {
            a.exit();
        }
        a.bind(end);
        a.exit();
        assert_eq!(a.finish(), Err(TooFar));
    }
}
