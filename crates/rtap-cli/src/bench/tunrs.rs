//! The tcp test's `tunrs-async-mt` contender: the tunnel of `tun-async-mt`
//! (`rtap fwd --mode vpn-mt`) written with tun-rs's async device instead of
//! rtap, as a user of that crate writes it. A TUN with offloads in each
//! namespace (`IFF_VNET_HDR`, TSO, as rtap's); per direction one task that
//! reads with `recv_multiple` (one read, the GSO packet split into MTU-sized
//! pieces), a task per read that runs the same keystream pass twice over its
//! pieces on whichever worker tokio picks, and one task that takes them in
//! read order and writes with `send_multiple` (its GRO table coalescing them
//! again) whenever nothing more waits; two worker threads, `vpn-mt`'s
//! default. Buffers are recycled through a free list, not allocated per
//! piece, each with room for a 64 KiB packet (the GRO table merges only into
//! a buffer that has it). Needs the `tun-rs` feature (the crate is not a dependency of the
//! default build).

use crate::common::netns::Netns;

#[cfg(not(feature = "tun-rs"))]
pub(super) fn over<T: Send>(
    _traffic: impl FnOnce(&Netns, &Netns) -> T + Send,
) -> anyhow::Result<(T, f64)> {
    anyhow::bail!(
        "tunrs-async-mt needs rtap built with the tun-rs feature \
         (cargo build --release -p rtap-cli --features tun-rs)"
    )
}

#[cfg(feature = "tun-rs")]
pub(super) use imp::over;

#[cfg(feature = "tun-rs")]
mod imp {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, PoisonError};
    use std::time::{Duration, Instant};

    use anyhow::{anyhow, Context, Result};
    use tokio::sync::mpsc;
    use tokio::task::JoinHandle;
    use tun_rs::{AsyncDevice, DeviceBuilder, GROTable, IDEAL_BATCH_SIZE, VIRTIO_NET_HDR_LEN};

    use super::super::contenders::TCP_NS_PREFIX;
    use super::Netns;
    use crate::fwd::mt::keystream;

    /// Where a piece's IP packet starts in its buffer: room for the
    /// virtio-net header `send_multiple` writes in front.
    const OFFSET: usize = VIRTIO_NET_HDR_LEN;
    /// The TUNs' MTU (the kernel's default, as rtap's TUNs have it).
    const MTU: usize = 1500;
    /// A piece's length before it is read into.
    const PIECE: usize = OFFSET + MTU;
    /// A piece's capacity: what tun-rs's GRO table needs to coalesce a whole
    /// 64 KiB packet into the first piece of a flow (it merges nothing into
    /// a buffer without the room).
    const ROOM: usize = 2 * OFFSET + 65_535;
    /// Buffers shared by a direction's reader and writer.
    type FreeList = Arc<Mutex<Vec<Vec<u8>>>>;

    /// Runs `traffic(ns_a, ns_b)` with the two namespaces joined by the
    /// tun-rs tunnel: what it returned, and the workers' CPU per wall second
    /// (the forwarder's).
    pub(in crate::bench) fn over<T: Send>(
        traffic: impl FnOnce(&Netns, &Netns) -> T + Send,
    ) -> Result<(T, f64)> {
        crate::common::netns::sweep_stale(TCP_NS_PREFIX);
        let pid = std::process::id();
        let ns_a = Netns::create(&format!("{TCP_NS_PREFIX}a-{pid}"))?;
        let ns_b = Netns::create(&format!("{TCP_NS_PREFIX}b-{pid}"))?;
        let dev_a = open(&ns_a, "rtap-a", crate::demo::ADDR_A)?;
        let dev_b = open(&ns_b, "rtap-b", crate::demo::ADDR_B)?;
        let cpu_ns = Arc::new(AtomicU64::new(0));
        let rt = crate::fwd::mt::runtime(2, &cpu_ns)
            .enable_io()
            .build()
            .context("tokio runtime")?;
        let (a, b) = rt.block_on(async {
            Ok::<_, std::io::Error>((
                Arc::new(AsyncDevice::new(dev_a)?),
                Arc::new(AsyncDevice::new(dev_b)?),
            ))
        })?;
        let t0 = Instant::now();
        let tunnels = [
            rt.spawn(tunnel(a.clone(), b.clone())),
            rt.spawn(tunnel(b, a)),
        ];
        let out = traffic(&ns_a, &ns_b);
        let elapsed = t0.elapsed();
        for t in tunnels {
            t.abort();
        }
        // Ends every task and the workers (their CPU time counted as they end).
        rt.shutdown_timeout(Duration::from_secs(2));
        let cpu = Duration::from_nanos(cpu_ns.load(Ordering::Relaxed));
        Ok((out, cpu.as_secs_f64() / elapsed.as_secs_f64().max(1e-9)))
    }

    /// A TUN named `iface` with offloads in namespace `ns`, addressed `addr`/24
    /// and up.
    fn open(ns: &Netns, iface: &str, addr: std::net::Ipv4Addr) -> Result<tun_rs::SyncDevice> {
        let name = iface.to_string();
        let dev = ns
            .run_in(move || {
                DeviceBuilder::new()
                    .name(name)
                    .offload(true)
                    .enable(true)
                    .build_sync()
            })?
            .with_context(|| format!("tun-rs: create {iface} in {}", ns.name()))?;
        ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", iface])?;
        ns.ip(&["link", "set", "dev", iface, "up"])?;
        ns.ip(&["link", "set", "dev", "lo", "up"])?;
        Ok(dev)
    }

    fn piece() -> Vec<u8> {
        let mut b = Vec::with_capacity(ROOM);
        b.resize(PIECE, 0);
        b
    }

    /// One direction: read and split, transform on any worker (a task per
    /// read, over its pieces), write in order.
    async fn tunnel(rx: Arc<AsyncDevice>, tx: Arc<AsyncDevice>) {
        let free: FreeList = Arc::default();
        let (order_tx, order_rx) = mpsc::channel::<JoinHandle<Vec<Vec<u8>>>>(256);
        let writer = tokio::spawn(write_in_order(order_rx, tx, free.clone()));
        let mut original = vec![0u8; VIRTIO_NET_HDR_LEN + 65_535];
        let mut bufs: Vec<Vec<u8>> = (0..IDEAL_BATCH_SIZE).map(|_| piece()).collect();
        let mut sizes = vec![0usize; IDEAL_BATCH_SIZE];
        loop {
            let n = match rx
                .recv_multiple(&mut original, &mut bufs, &mut sizes, OFFSET)
                .await
            {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!("tun-rs recv_multiple: {e}");
                    break;
                }
            };
            let mut pieces = Vec::with_capacity(n);
            {
                let mut f = free.lock().unwrap_or_else(PoisonError::into_inner);
                for (b, &len) in bufs.iter_mut().zip(&sizes).take(n) {
                    let mut p = std::mem::replace(b, f.pop().unwrap_or_else(piece));
                    p.truncate(OFFSET + len);
                    pieces.push(p);
                }
            }
            let job = tokio::spawn(async move {
                for p in &mut pieces {
                    keystream(&mut p[OFFSET..]);
                    keystream(&mut p[OFFSET..]);
                }
                pieces
            });
            if order_tx.send(job).await.is_err() {
                break;
            }
        }
        drop(order_tx);
        let _ = writer.await;
    }

    /// Writes the transformed pieces in read order, coalesced by tun-rs's GRO
    /// table, whenever nothing more waits (or a batch is full); their buffers
    /// go back to the reader.
    async fn write_in_order(
        mut order: mpsc::Receiver<JoinHandle<Vec<Vec<u8>>>>,
        tx: Arc<AsyncDevice>,
        free: FreeList,
    ) {
        let mut gro = GROTable::default();
        let mut out: Vec<Vec<u8>> = Vec::with_capacity(2 * IDEAL_BATCH_SIZE);
        while let Some(job) = order.recv().await {
            let Ok(pieces) = job.await else { continue };
            out.extend(pieces);
            if order.is_empty() || out.len() >= IDEAL_BATCH_SIZE {
                if let Err(e) = tx.send_multiple(&mut gro, &mut out, OFFSET).await {
                    tracing::warn!("tun-rs send_multiple: {}", anyhow!(e));
                }
                let mut f = free.lock().unwrap_or_else(PoisonError::into_inner);
                for mut b in out.drain(..) {
                    b.resize(PIECE, 0);
                    f.push(b);
                }
            }
        }
    }
}
