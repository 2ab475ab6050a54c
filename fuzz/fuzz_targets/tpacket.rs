//! TPACKET rx ring headers as the AF_PACKET rx path reads them: a V2 slot or a
//! V3 block of arbitrary bytes (a corrupt ring, or a peer process sharing it
//! that wrote over it). Every frame the reader accepts must lie inside its slot
//! or block, after its header, with the virtio-net header right in front.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtap::fuzzing::{tpacket_v2, tpacket_v2_lend, tpacket_v3, Frame};

/// V2 header + sockaddr_ll; V3 header + sockaddr_ll.
const V2_MIN: usize = 52;
const V3_MIN: usize = 68;

fn check(f: &Frame, buf: usize, min: usize, vnet_len: usize) {
    assert!(
        f.data.start >= min && f.data.start <= f.data.end && f.data.end <= buf,
        "{f:?}"
    );
    if let Some(v) = &f.vnet {
        assert_eq!((v.end, v.len()), (f.data.start, vnet_len), "{f:?}");
        assert!(v.start >= min);
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let vnet_len = [0, 10, 12, 0][usize::from(data[1] & 3)];
    let status = u32::from_ne_bytes(data[2..6].try_into().unwrap());
    let buf = &data[6..];
    if data[0] & 1 == 0 {
        let read = tpacket_v2(buf, status, vnet_len);
        if let Some(f) = &read {
            check(f, buf.len(), V2_MIN, vnet_len);
        }
        // The in-place receive lends only frames the reader accepts, no
        // longer than them plus a VLAN tag put back.
        let mut slot = buf.to_vec();
        if let Some(lent) = tpacket_v2_lend(&mut slot, status, vnet_len) {
            let f = read.expect("lent a frame the reader refused");
            assert!(lent.len() == f.data.len() || lent.len() == f.data.len() + 4);
        }
    } else {
        let frames = tpacket_v3(buf, vnet_len, usize::MAX);
        // Each header lies after the last one: the walk ends, whatever the links say.
        assert!(frames.len() <= buf.len());
        for (k, f) in frames.iter().enumerate() {
            match f {
                Some(f) => check(f, buf.len(), 32 + V3_MIN, vnet_len),
                None => assert_eq!(k + 1, frames.len(), "a corrupt header ends the block"),
            }
        }
    }
});
