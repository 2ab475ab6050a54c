//! The XDP program an `xdp:` port loads when the user brings none, as BPF
//! instructions built here (no compiler, no object file): every frame goes to
//! the XDP socket in the XSKMAP slot of the rx queue it arrived on; a frame of
//! a queue with no socket there goes on to the kernel's stack
//! (`bpf_redirect_map` returns its flags' action for an empty slot, Linux
//! 5.3+). Pure: the instructions are data; `sys::bpf` loads them.

/// `struct xdp_md` offset of `rx_queue_index`.
const XDP_MD_RX_QUEUE_INDEX: i16 = 16;
/// `XDP_PASS`.
pub(crate) const XDP_PASS: i32 = 2;
/// Helper `bpf_redirect_map`.
const HELPER_REDIRECT_MAP: i32 = 51;
/// `BPF_PSEUDO_MAP_FD`: the immediate of a 64-bit load is a map fd.
const PSEUDO_MAP_FD: u8 = 1;

// Opcodes (class | size/op | mode/source).
const LDX_MEM_W: u8 = 0x01 | 0x60; // BPF_LDX | BPF_MEM | BPF_W
const LD_IMM_DW: u8 = 0x18; // BPF_LD | BPF_IMM | BPF_DW
const MOV64_K: u8 = 0x07 | 0xb0; // BPF_ALU64 | BPF_MOV | BPF_K
const CALL: u8 = 0x05 | 0x80; // BPF_JMP | BPF_CALL
const EXIT: u8 = 0x05 | 0x90; // BPF_JMP | BPF_EXIT

/// One `struct bpf_insn` as the kernel reads it: opcode, the destination and
/// source registers in one byte (their nibble order follows the bitfield
/// layout of the target), a 16-bit offset, a 32-bit immediate.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
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

/// The program, with the XSKMAP `map_fd` as its map:
///
/// ```text
/// r2 = *(u32 *)(r1 + rx_queue_index)   ; the key: this frame's rx queue
/// r1 = map_fd (64-bit load, 2 slots)   ; the XSKMAP
/// r3 = XDP_PASS                        ; the action when the slot is empty
/// call bpf_redirect_map
/// exit                                 ; r0: XDP_REDIRECT or XDP_PASS
/// ```
pub(crate) fn redirect_to_xsk(map_fd: i32) -> [u64; 6] {
    [
        insn(LDX_MEM_W, 2, 1, XDP_MD_RX_QUEUE_INDEX, 0),
        insn(LD_IMM_DW, 1, PSEUDO_MAP_FD, 0, map_fd),
        insn(0, 0, 0, 0, 0), // the immediate's high 32 bits
        insn(MOV64_K, 3, 0, 0, XDP_PASS),
        insn(CALL, 0, 0, 0, HELPER_REDIRECT_MAP),
        insn(EXIT, 0, 0, 0, 0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_endian = "little")]
    fn encodings_are_the_kernels() {
        let p = redirect_to_xsk(7);
        let bytes: Vec<[u8; 8]> = p.iter().map(|i| i.to_ne_bytes()).collect();
        // r2 = *(u32 *)(r1 + 16)
        assert_eq!(bytes[0], [0x61, 0x12, 16, 0, 0, 0, 0, 0]);
        // r1 = map fd 7 (src 1 = BPF_PSEUDO_MAP_FD), then the zero high half
        assert_eq!(bytes[1], [0x18, 0x11, 0, 0, 7, 0, 0, 0]);
        assert_eq!(bytes[2], [0; 8]);
        // r3 = 2
        assert_eq!(bytes[3], [0xb7, 0x03, 0, 0, 2, 0, 0, 0]);
        // call 51
        assert_eq!(bytes[4], [0x85, 0, 0, 0, 51, 0, 0, 0]);
        // exit
        assert_eq!(bytes[5], [0x95, 0, 0, 0, 0, 0, 0, 0]);
    }
}
