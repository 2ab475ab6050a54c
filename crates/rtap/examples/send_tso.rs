//! Sends one 60 000-byte TCP/IPv4 frame through a tap and lets the kernel cut it
//! into MSS-sized segments (TSO through the virtio-net header), with the
//! checksums finished by the kernel too.
//!
//! ```sh
//! cargo run --example send_tso      # then watch: tcpdump -ni rtaptso
//! ```
//! Needs root (it creates the tap).

use rtap::{Gso, Offloads, Pool, PoolConfig, Port, TapConfig, TxRequest};

fn main() -> rtap::Result<()> {
    let port = Port::open(TapConfig::new("rtaptso").offloads(Offloads::ALL))?;
    port.start()?;
    // 2 KiB buffers: the 60 KB frame becomes a chain of them.
    let pool = Pool::new(PoolConfig::default())?;
    let mut tx = port.tx_queue(0)?;

    let frame = tcp_frame(60_000);
    let mut pkt = pool.alloc_from(&frame)?;
    pkt.set_tx_offload(TxRequest {
        l4_csum: true,
        gso: Gso::Tcp {
            mss: 1400,
            ecn: false,
        },
    });
    let mut burst = vec![pkt];
    tx.tx_burst(&mut burst)?;
    tx.flush(std::time::Duration::from_secs(1));
    println!(
        "sent one {}-byte frame as {} segments of 1400 bytes; the kernel accepted offloads {:?}",
        frame.len(),
        60_000usize.div_ceil(1400),
        port.offloads()
    );
    for x in port.xstats().into_iter().filter(|x| x.value != 0) {
        println!("  {} = {}", x.name, x.value);
    }
    Ok(())
}

/// An Ethernet/IPv4/TCP frame with `payload` bytes, from 10.0.0.1:40000 to
/// 10.0.0.2:5001. The TCP checksum is left at zero: the request asks the kernel
/// to compute it (rtap seeds the field with the pseudo-header sum).
fn tcp_frame(payload: usize) -> Vec<u8> {
    let ip_len = 20 + 20 + payload;
    let mut f = Vec::with_capacity(14 + ip_len);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]); // destination MAC
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]); // source MAC
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 6; // TCP
    ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
    ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let csum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&5001u16.to_be_bytes());
    tcp[4..8].copy_from_slice(&1u32.to_be_bytes()); // sequence number
    tcp[12] = 5 << 4; // data offset
    tcp[13] = 0x18; // PSH, ACK
    tcp[14..16].copy_from_slice(&64000u16.to_be_bytes());
    f.extend_from_slice(&tcp);
    f.extend((0..payload).map(|i| i as u8));
    f
}
