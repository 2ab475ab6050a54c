//! XDP socket descriptors as the xdp rx and tx paths check them: arbitrary rx
//! descriptors and completion addresses against a UMEM of arbitrary geometry
//! with arbitrary buffers lent. An accepted frame lies inside one chunk that
//! was lent, and is taken back exactly once; nothing else is accepted. The
//! same descriptors gathered into multi-buffer frames: every buffer taken
//! back is in one frame, given back, or pending, exactly once, and no frame
//! has more than 18 pieces. Ring layouts: whatever offsets the kernel reports,
//! an accepted layout keeps every field inside the mapping, aligned.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtap::fuzzing::{xsk_ring_layout, XskLent};

fuzz_target!(|data: &[u8]| {
    if data.len() < 12 {
        return;
    }
    let stride = 2048 + u32::from(u16::from_ne_bytes([data[0], data[1]]) % 2049);
    let count = 1 + u32::from(data[2] % 64);
    let unaligned = data[3] & 1 == 1;
    let lend: Vec<u32> = data[4..12].iter().map(|&b| u32::from(b % 80)).collect();
    let mut g = XskLent::new(stride, count, unaligned, &lend);
    let before = g.lent();
    let descs: Vec<(u64, u32, u32)> = data[12..]
        .chunks_exact(17)
        .map(|c| {
            let addr = u64::from_ne_bytes(c[0..8].try_into().unwrap());
            let len = u32::from_ne_bytes(c[8..12].try_into().unwrap());
            (addr, len, u32::from(c[12] & 3))
        })
        .collect();
    let (frames, back, pending) = g.gather(&descs);
    let mut seen: Vec<u32> = frames.iter().flatten().copied().chain(back).collect();
    assert!(frames.iter().all(|f| !f.is_empty() && f.len() <= 18));
    assert_eq!(seen.len() + pending, before - g.lent());
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len() + pending, before - g.lent(), "a buffer twice");
    let mut x = XskLent::new(stride, count, unaligned, &lend);
    for c in data[12..].chunks_exact(17) {
        let addr = u64::from_ne_bytes(c[0..8].try_into().unwrap());
        let len = u32::from_ne_bytes(c[8..12].try_into().unwrap());
        let options = u32::from_ne_bytes(c[12..16].try_into().unwrap());
        let before = x.lent();
        if c[16] & 1 == 0 {
            if let Some((buf, off, l)) = x.rx(addr, len, options, c[16] & 2 == 2) {
                assert!(buf < count && l == len && l > 0);
                assert!(u64::from(off) + u64::from(l) <= u64::from(stride));
                assert_eq!(x.lent(), before - 1);
            } else {
                assert_eq!(x.lent(), before);
            }
        } else if let Some(buf) = x.completion(addr) {
            assert!(buf < count);
            assert_eq!(x.lent(), before - 1);
        } else {
            assert_eq!(x.lent(), before);
        }
        let w = |i: usize| u64::from(u16::from_ne_bytes([c[i % 17], c[(i + 1) % 17]]));
        let (size, entry) = (1u32 << (c[3] % 16), if c[4] & 1 == 0 { 8 } else { 16 });
        let len = w(5) as usize * 64;
        if xsk_ring_layout(w(0), w(2), w(4), w(6) * 8, size, entry, len) {
            for f in [w(0), w(2), w(4)] {
                assert!(f % 4 == 0 && f + 4 <= len as u64);
            }
            assert!(w(6) * 8 + u64::from(size) * entry as u64 <= len as u64);
        }
    }
});
