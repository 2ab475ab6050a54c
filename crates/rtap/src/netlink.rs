//! Link control over rtnetlink, by ifindex (so a rename does not break it).
//!
//! Synchronous and runtime-free: one `NETLINK_ROUTE` socket per port, opened when
//! the port is created. A netlink socket stays bound to the network namespace it was
//! opened in, so control keeps working from any thread.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkHeader, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// What rtap reads back about a link.
#[derive(Clone, Debug, Default)]
pub struct LinkInfo {
    /// Interface index.
    pub ifindex: u32,
    /// Current name.
    pub name: String,
    /// `IFF_*` flags.
    pub flags: u32,
    /// MTU.
    pub mtu: u32,
    /// MAC address.
    pub mac: Option<[u8; 6]>,
    /// Kernel counters of the interface (`IFLA_STATS64`), in the kernel's view:
    /// its `tx_*` is what the tap handed to the application.
    pub kernel_tx_dropped: u64,
    /// Kernel's `rx_dropped`.
    pub kernel_rx_dropped: u64,
}

impl LinkInfo {
    /// Up in the sense that matters for traffic: administratively up and running.
    pub fn is_up(&self) -> bool {
        let up = libc::IFF_UP as u32;
        let running = libc::IFF_RUNNING as u32;
        self.flags & up != 0 && self.flags & running != 0
    }
}

/// An open rtnetlink socket.
#[derive(Debug)]
pub struct Netlink {
    sock: Socket,
    seq: AtomicU32,
}

impl Netlink {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Netlink> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Netlink {
            sock,
            seq: AtomicU32::new(1),
        })
    }

    fn request(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut hdr = NetlinkHeader::default();
        hdr.flags = flags;
        hdr.sequence_number = seq;
        let mut nl = NetlinkMessage::new(hdr, NetlinkPayload::from(msg));
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        let mut out = Vec::new();
        let mut rbuf = vec![0u8; 64 * 1024];
        loop {
            let n = self.sock.recv(&mut &mut rbuf[..], 0)?;
            let mut off = 0;
            while off < n {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rbuf[off..n])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = msg.header.length as usize;
                if len == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "netlink message of length 0",
                    ));
                }
                off += len.div_ceil(4) * 4;
                if msg.header.sequence_number != seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                            None => Ok(out),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::InnerMessage(m) => {
                        out.push(m);
                        if flags & NLM_F_ACK == 0
                            && msg.header.flags & netlink_packet_core::NLM_F_MULTIPART == 0
                        {
                            return Ok(out);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Reads a link's state and counters.
    pub fn get_link(&self, ifindex: u32) -> io::Result<LinkInfo> {
        let mut m = LinkMessage::default();
        m.header.index = ifindex;
        let replies = self.request(RouteNetlinkMessage::GetLink(m), NLM_F_REQUEST)?;
        for r in replies {
            if let RouteNetlinkMessage::NewLink(l) = r {
                return Ok(link_info(&l));
            }
        }
        Err(io::Error::from_raw_os_error(libc::ENODEV))
    }

    fn set(
        &self,
        ifindex: u32,
        flags: LinkFlags,
        mask: LinkFlags,
        attrs: Vec<LinkAttribute>,
    ) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.header = LinkHeader {
            index: ifindex,
            flags,
            change_mask: mask,
            ..LinkHeader::default()
        };
        m.attributes = attrs;
        self.request(RouteNetlinkMessage::SetLink(m), NLM_F_REQUEST | NLM_F_ACK)
            .map(|_| ())
    }

    /// Sets the link administratively up or down.
    pub fn set_up(&self, ifindex: u32, up: bool) -> io::Result<()> {
        let f = if up {
            LinkFlags::Up
        } else {
            LinkFlags::empty()
        };
        self.set(ifindex, f, LinkFlags::Up, Vec::new())
    }
}

fn link_info(l: &LinkMessage) -> LinkInfo {
    let mut info = LinkInfo {
        ifindex: l.header.index,
        flags: l.header.flags.bits(),
        ..LinkInfo::default()
    };
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => info.name = n.clone(),
            LinkAttribute::Mtu(m) => info.mtu = *m,
            LinkAttribute::Address(a) if a.len() == 6 => {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(a);
                info.mac = Some(mac);
            }
            LinkAttribute::Stats64(s) => {
                info.kernel_tx_dropped = s.tx_dropped;
                info.kernel_rx_dropped = s.rx_dropped;
            }
            _ => {}
        }
    }
    info
}
