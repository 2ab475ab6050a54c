//! Pool packets as the buffers a coalescer builds in
//! ([`Merger`](crate::wire::gro::Merger)): the merged packet is the one sent,
//! with no copy when it leaves the coalescer.

use super::{Packet, Pool};
use crate::wire::gro::{MergeBuf, MergeSink};
use crate::wire::vnet::VnetHdr;

/// The first buffer holds the headers; the payload grows at the end, chaining
/// buffers as needed (on the pool's thread).
impl MergeBuf for Packet {
    fn head(&self) -> &[u8] {
        self.data()
    }

    fn head_mut(&mut self) -> &mut [u8] {
        self.data_mut()
    }

    fn extend(&mut self, bytes: &[u8]) -> bool {
        self.append(bytes).is_ok()
    }
}

/// A [`MergeSink`] building in packets of `pool` and putting every packet
/// that leaves the coalescer on `out` (a packet that stayed alone too, and,
/// copied, one that could not be merged), its virtio-net header set.
/// `no_buf` counts packets dropped because the pool was dry.
///
/// Use it on the pool's thread: elsewhere a packet cannot grow
/// ([`Error::PoolElsewhere`](crate::Error::PoolElsewhere)), so no merge would
/// succeed and every packet would leave alone (a task that may move between
/// threads with packets held keeps a [`Coalescer`](crate::wire::gro::Coalescer)).
#[derive(Debug)]
pub struct ToPool<'a> {
    pool: &'a Pool,
    out: &'a mut Vec<Packet>,
    /// Packets dropped: no pool buffer for them.
    pub no_buf: u64,
}

impl<'a> ToPool<'a> {
    /// A sink over `pool` that appends to `out`.
    pub fn new(pool: &'a Pool, out: &'a mut Vec<Packet>) -> ToPool<'a> {
        ToPool {
            pool,
            out,
            no_buf: 0,
        }
    }
}

impl MergeSink for ToPool<'_> {
    type Buf = Packet;

    fn start(&mut self, first: &[u8]) -> Option<Packet> {
        self.pool.alloc_from(first).ok()
    }

    fn built(&mut self, mut buf: Packet, h: &VnetHdr) {
        buf.set_vnet_hdr(*h);
        self.out.push(buf);
    }

    fn passed(&mut self, pkt: &[u8]) {
        match self.pool.alloc_from(pkt) {
            Ok(p) => self.out.push(p),
            Err(_) => self.no_buf += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::PoolConfig;
    use crate::wire::gro::{Coalescer, Merger, Pushed};
    use proptest::prelude::*;

    /// TCP segments of one flow (payload sizes as given, sequence numbers
    /// continuous, IPv4 IDs counting up), a PSH on the last if `psh`.
    fn segments(sizes: &[usize], psh: bool, v6: bool) -> Vec<Vec<u8>> {
        let mut seq = 1000u32;
        sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let b = if v6 {
                    etherparse::PacketBuilder::ipv6([0xfd; 16], [0xfe; 16], 64)
                } else {
                    etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                };
                let mut t = b.tcp(4000, 5001, seq, 1000).ack(9);
                if psh && i + 1 == sizes.len() {
                    t = t.psh();
                }
                let payload: Vec<u8> = (0..n).map(|k| (k * 7 + i) as u8).collect();
                let mut out = Vec::new();
                t.write(&mut out, &payload).unwrap();
                if !v6 {
                    out[4..6].copy_from_slice(&(i as u16 + 1).to_be_bytes());
                    // etherparse's header checksum covered the old ID: redo it.
                    out[10..12].copy_from_slice(&[0, 0]);
                    let sum = crate::wire::checksum::internet_checksum(&out[..20]);
                    out[10..12].copy_from_slice(&sum.to_be_bytes());
                }
                seq = seq.wrapping_add(n as u32);
                out
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Built in pool packets or in the coalescer's own vectors, the same
        /// packets come out, byte for byte, with the same headers; every
        /// buffer goes back.
        #[test]
        fn pool_packets_build_what_the_vectors_build(
            sizes in proptest::collection::vec(1usize..1400, 1..60),
            psh: bool,
            v6: bool,
            buf_size in prop::sample::select(vec![2048u32, 65536 + 256]),
        ) {
            let segs = segments(&sizes, psh, v6);
            let mut want = Vec::new();
            let mut c = Coalescer::new(4);
            for s in &segs {
                c.push(s, &mut |b: &[u8], h: &VnetHdr| want.push((b.to_vec(), *h)));
            }
            c.flush(&mut |b: &[u8], h: &VnetHdr| want.push((b.to_vec(), *h)));

            let pool = Pool::new(PoolConfig::default().buf_size(buf_size).count(256)).unwrap();
            let mut m: Merger<Packet> = Merger::new(4);
            let mut out = Vec::new();
            let mut sink = ToPool::new(&pool, &mut out);
            for s in &segs {
                m.push(s, &mut sink);
            }
            m.flush(&mut sink);
            prop_assert_eq!(sink.no_buf, 0);
            let got: Vec<(Vec<u8>, VnetHdr)> =
                out.iter().map(|p| (p.to_vec(), *p.vnet_hdr())).collect();
            prop_assert_eq!(got, want);
            drop(out);
            prop_assert_eq!(pool.available(), 256);
        }
    }

    /// A pool that runs dry: nothing panics, every packet either leaves or
    /// is counted, and the buffers all come back.
    #[test]
    fn a_dry_pool_drops_and_counts() {
        let segs = segments(&[1000; 40], false, false);
        let pool = Pool::new(PoolConfig::default().buf_size(2048).count(6)).unwrap();
        let mut m: Merger<Packet> = Merger::new(2);
        let mut out = Vec::new();
        let mut sink = ToPool::new(&pool, &mut out);
        let mut passed_or_held = 0;
        for s in &segs {
            if m.push(s, &mut sink) != Pushed::Merged {
                passed_or_held += 1;
            }
        }
        m.flush(&mut sink);
        let no_buf = sink.no_buf;
        assert!(no_buf > 0, "the pool ran dry");
        assert_eq!(out.len() as u64 + no_buf, passed_or_held);
        let bytes: usize = out.iter().map(|p| p.len() - 40).sum();
        assert!(bytes <= 40 * 1000);
        drop(out);
        assert_eq!(pool.available(), 6);
    }
}
