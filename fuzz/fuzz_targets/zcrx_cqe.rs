//! zcrx completions as the receiver maps them: an arbitrary offset word
//! (area id bits included) and result, against an area of arbitrary geometry,
//! and copy-mode completions against a provided buffer ring. A piece the
//! receiver accepts lies inside the area and inside one of its buffers; a
//! buffer id names a buffer of the ring.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtap::fuzzing::{copy_piece, zc_piece};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let area_len = u64::from(u32::from_ne_bytes(data[0..4].try_into().unwrap())) << 4;
    let buf_len = u32::from(u16::from_ne_bytes(data[4..6].try_into().unwrap())) << 4;
    let token = u64::from(data[6] & 3) << 48;
    let (count, size) = (u16::from(data[7]), buf_len);
    for c in data[8..].chunks_exact(15) {
        let word = u64::from_ne_bytes(c[0..8].try_into().unwrap());
        let res = i32::from_ne_bytes(c[8..12].try_into().unwrap());
        if let Some((off, len)) = zc_piece(word, res, token, area_len, buf_len) {
            assert!(res > 0 && len as i32 == res);
            assert_eq!(word, off | token);
            assert!(off + u64::from(len) <= area_len);
            assert!(off % u64::from(buf_len) + u64::from(len) <= u64::from(buf_len));
        }
        let bid = (c[14] & 1 == 1).then(|| u16::from_ne_bytes([c[12], c[13]]));
        if let Some((b, len)) = copy_piece(bid, res, count, size) {
            assert!(Some(b) == bid && b < count && len <= size && len as i32 == res);
        }
    }
});
