//! The XDP program an `xdp:` port loads when the user brings none, as BPF
//! instructions built here (no compiler, no object file): every frame goes to
//! the XDP socket in the XSKMAP slot of the rx queue it arrived on; a frame of
//! a queue with no socket there goes on to the kernel's stack
//! (`bpf_redirect_map` returns its flags' action for an empty slot, Linux
//! 5.3+). With a capture filter, `filter.rs` puts the filter's translation
//! before the redirect. Pure: the instructions are data; `sys::bpf` loads
//! them.

use super::ebpf::{
    Asm, HELPER_REDIRECT_MAP, MOV, R1, R2, R3, SIZE_W, XDP_MD_RX_QUEUE_INDEX, XDP_PASS,
};

/// Appends the redirect, with the context pointer in `ctx`:
///
/// ```text
/// r2 = *(u32 *)(ctx + rx_queue_index)  ; the key: this frame's rx queue
/// r1 = map_fd (64-bit load, 2 slots)   ; the XSKMAP
/// r3 = XDP_PASS                        ; the action when the slot is empty
/// call bpf_redirect_map
/// exit                                 ; r0: XDP_REDIRECT or XDP_PASS
/// ```
pub(crate) fn redirect(a: &mut Asm, ctx: u8, map_fd: i32) {
    a.load(SIZE_W, R2, ctx, XDP_MD_RX_QUEUE_INDEX);
    a.load_map_fd(R1, map_fd);
    a.alu64_k(MOV, R3, XDP_PASS);
    a.call(HELPER_REDIRECT_MAP);
    a.exit();
}

/// The whole program: the redirect, the context in r1 as the kernel passes it.
pub(crate) fn redirect_to_xsk(map_fd: i32) -> Vec<u64> {
    let mut a = Asm::default();
    redirect(&mut a, R1, map_fd);
    a.finish().unwrap_or_default() // no jumps: nothing to resolve
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
        assert_eq!(bytes.len(), 6);
    }
}
