//! Link control over rtnetlink, by ifindex (so a rename does not break it):
//! link flags and settings, and the interface's addresses and routes.
//!
//! Synchronous and runtime-free: one `NETLINK_ROUTE` socket per port, opened when
//! the port is created. A netlink socket stays bound to the network namespace it was
//! opened in, so control keeps working from any thread.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkHeader, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::wire::mac::MacAddr;
use crate::wire::prefix::IpPrefix;

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
    /// Smallest MTU the device takes (0 if not reported).
    pub min_mtu: u32,
    /// Largest MTU the device takes (0 if not reported; 65521 for a tap).
    pub max_mtu: u32,
    /// MAC address.
    pub mac: Option<MacAddr>,
    /// Kernel counters of the interface (`IFLA_STATS64`), in the kernel's view:
    /// its `tx_*` is what the tap handed to the application.
    pub kernel_tx_dropped: u64,
    /// Kernel's `rx_dropped`.
    pub kernel_rx_dropped: u64,
    /// Rx queues of the device (`IFLA_NUM_RX_QUEUES`; 0 if not reported).
    pub rx_queues: u32,
    /// The bus device behind the interface (`IFLA_PARENT_DEV_NAME`, e.g. a PCI
    /// address); `None` for virtual devices (veth, lo, tap, bridge).
    pub parent_dev: Option<String>,
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

    /// Sets or clears `IFF_PROMISC`.
    pub fn set_promisc(&self, ifindex: u32, on: bool) -> io::Result<()> {
        let f = if on {
            LinkFlags::Promisc
        } else {
            LinkFlags::empty()
        };
        self.set(ifindex, f, LinkFlags::Promisc, Vec::new())
    }

    /// Sets or clears `IFF_ALLMULTI`.
    pub fn set_allmulti(&self, ifindex: u32, on: bool) -> io::Result<()> {
        let f = if on {
            LinkFlags::Allmulti
        } else {
            LinkFlags::empty()
        };
        self.set(ifindex, f, LinkFlags::Allmulti, Vec::new())
    }

    /// Sets the MTU.
    pub fn set_mtu(&self, ifindex: u32, mtu: u32) -> io::Result<()> {
        self.set(
            ifindex,
            LinkFlags::empty(),
            LinkFlags::empty(),
            vec![LinkAttribute::Mtu(mtu)],
        )
    }

    /// Sets the MAC address.
    pub fn set_mac(&self, ifindex: u32, mac: MacAddr) -> io::Result<()> {
        self.set(
            ifindex,
            LinkFlags::empty(),
            LinkFlags::empty(),
            vec![LinkAttribute::Address(mac.octets().to_vec())],
        )
    }

    /// Adds `p` as an address of the interface (IPv6 without duplicate
    /// address detection: usable at once). `EEXIST` if it has it already.
    pub fn add_address(&self, ifindex: u32, p: IpPrefix) -> io::Result<()> {
        let m = address_msg(ifindex, p);
        self.request(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(|_| ())
    }

    /// Removes address `p` from the interface.
    pub fn del_address(&self, ifindex: u32, p: IpPrefix) -> io::Result<()> {
        let m = address_msg(ifindex, p);
        self.request(
            RouteNetlinkMessage::DelAddress(m),
            NLM_F_REQUEST | NLM_F_ACK,
        )
        .map(|_| ())
    }

    /// Adds a route to `dest` (a network prefix) through the interface, in
    /// the main table. `EEXIST` if that route exists already.
    pub fn add_route(&self, ifindex: u32, dest: IpPrefix) -> io::Result<()> {
        self.request(
            RouteNetlinkMessage::NewRoute(route_msg(ifindex, dest)),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(|_| ())
    }

    /// Removes the route to `dest` through the interface.
    pub fn del_route(&self, ifindex: u32, dest: IpPrefix) -> io::Result<()> {
        self.request(
            RouteNetlinkMessage::DelRoute(route_msg(ifindex, dest)),
            NLM_F_REQUEST | NLM_F_ACK,
        )
        .map(|_| ())
    }
}

fn family(p: IpPrefix) -> AddressFamily {
    if p.is_ipv6() {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    }
}

fn address_msg(ifindex: u32, p: IpPrefix) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = family(p);
    m.header.prefix_len = p.len();
    m.header.index = ifindex;
    m.header.scope = AddressScope::Universe;
    if p.is_ipv6() {
        m.header.flags = AddressHeaderFlags::Nodad;
    } else {
        // IPv4 wants the local address too (it is the one the kernel uses).
        m.attributes.push(AddressAttribute::Local(p.addr()));
    }
    m.attributes.push(AddressAttribute::Address(p.addr()));
    m
}

fn route_msg(ifindex: u32, dest: IpPrefix) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header = RouteHeader {
        address_family: family(dest),
        destination_prefix_length: dest.len(),
        table: RouteHeader::RT_TABLE_MAIN,
        protocol: RouteProtocol::Static,
        scope: RouteScope::Link,
        kind: RouteType::Unicast,
        ..RouteHeader::default()
    };
    m.attributes
        .push(RouteAttribute::Destination(match dest.addr() {
            std::net::IpAddr::V4(a) => RouteAddress::Inet(a),
            std::net::IpAddr::V6(a) => RouteAddress::Inet6(a),
        }));
    m.attributes.push(RouteAttribute::Oif(ifindex));
    m
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
            LinkAttribute::MinMtu(m) => info.min_mtu = *m,
            LinkAttribute::MaxMtu(m) => info.max_mtu = *m,
            LinkAttribute::Address(a) if a.len() == 6 => {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(a);
                info.mac = Some(MacAddr::new(mac));
            }
            LinkAttribute::Stats64(s) => {
                info.kernel_tx_dropped = s.tx_dropped;
                info.kernel_rx_dropped = s.rx_dropped;
            }
            LinkAttribute::NumRxQueues(n) => info.rx_queues = *n,
            LinkAttribute::ParentDevName(n) => info.parent_dev = Some(n.clone()),
            _ => {}
        }
    }
    info
}

/// A change seen on a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// The link became up and running.
    Up,
    /// The link is no longer up and running.
    Down,
    /// The MTU changed.
    Mtu(u32),
    /// The MAC address changed.
    Mac(MacAddr),
    /// The interface was renamed.
    Renamed(String),
    /// The interface was deleted (or left the namespace).
    Deleted,
}

/// A subscription to one link's rtnetlink events (`RTNLGRP_LINK`), turned into
/// [`LinkEvent`]s by comparing each notification with the last known state. Its
/// fd ([`AsFd`]) can go into an epoll set: readable when events are pending.
#[derive(Debug)]
pub struct LinkWatcher {
    sock: Socket,
    ifindex: u32,
    last: LinkInfo,
    gone: bool,
    buf: Vec<u8>,
}

impl AsFd for LinkWatcher {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl LinkWatcher {
    /// Subscribes in the calling thread's namespace, starting from `current`.
    pub fn new(ifindex: u32, current: LinkInfo) -> io::Result<LinkWatcher> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.add_membership(libc::RTNLGRP_LINK)?;
        sock.set_non_blocking(true)?;
        Ok(LinkWatcher {
            sock,
            ifindex,
            last: current,
            gone: false,
            buf: vec![0u8; 64 * 1024],
        })
    }

    /// Waits up to `timeout` for the socket to become readable; true if it did.
    pub fn wait(&self, timeout: std::time::Duration) -> bool {
        crate::sys::fd::poll_in(self.sock.as_fd(), timeout).unwrap_or(false)
    }

    /// Reads every pending notification and appends the resulting events to `out`.
    /// Never blocks.
    pub fn poll(&mut self, out: &mut Vec<LinkEvent>) -> io::Result<()> {
        loop {
            let n = match self.sock.recv(&mut &mut self.buf[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    tracing::warn!("link events: netlink overrun, some notifications lost");
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut off = 0;
            while off < n {
                let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[off..n])
                else {
                    break;
                };
                let len = msg.header.length as usize;
                if len == 0 {
                    break;
                }
                off += len.div_ceil(4) * 4;
                match msg.payload {
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l))
                        if l.header.index == self.ifindex =>
                    {
                        let info = link_info(&l);
                        self.diff(info, out);
                    }
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l))
                        if l.header.index == self.ifindex && !self.gone =>
                    {
                        self.gone = true;
                        out.push(LinkEvent::Deleted);
                    }
                    _ => {}
                }
            }
        }
    }

    /// Hands the watcher to a background thread that sends each event down a
    /// channel. Dropping the returned handle stops and joins the thread.
    pub fn into_channel(mut self) -> LinkEventChannel {
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut batch = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                self.wait(std::time::Duration::from_millis(100));
                batch.clear();
                if let Err(e) = self.poll(&mut batch) {
                    tracing::warn!("link events: {e}");
                    return;
                }
                for ev in batch.drain(..) {
                    if tx.send(ev).is_err() {
                        return;
                    }
                }
            }
        });
        LinkEventChannel {
            rx,
            stop,
            thread: Some(thread),
        }
    }

    fn diff(&mut self, now: LinkInfo, out: &mut Vec<LinkEvent>) {
        if now.is_up() != self.last.is_up() {
            out.push(if now.is_up() {
                LinkEvent::Up
            } else {
                LinkEvent::Down
            });
        }
        if now.mtu != 0 && now.mtu != self.last.mtu {
            out.push(LinkEvent::Mtu(now.mtu));
        }
        if let Some(mac) = now.mac {
            if Some(mac) != self.last.mac {
                out.push(LinkEvent::Mac(mac));
            }
        }
        if !now.name.is_empty() && now.name != self.last.name {
            out.push(LinkEvent::Renamed(now.name.clone()));
        }
        // Notifications may omit attributes: keep what we knew.
        let name = if now.name.is_empty() {
            std::mem::take(&mut self.last.name)
        } else {
            now.name.clone()
        };
        let mtu = if now.mtu == 0 { self.last.mtu } else { now.mtu };
        let mac = now.mac.or(self.last.mac);
        self.last = LinkInfo {
            name,
            mtu,
            mac,
            ..now
        };
    }
}

/// Link events delivered over a channel by a background thread (see
/// [`LinkWatcher::into_channel`]); the thread stops when this is dropped.
#[derive(Debug)]
pub struct LinkEventChannel {
    rx: std::sync::mpsc::Receiver<LinkEvent>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LinkEventChannel {
    /// The next event, waiting up to `timeout`.
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Option<LinkEvent> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The next event if one is pending.
    pub fn try_recv(&self) -> Option<LinkEvent> {
        self.rx.try_recv().ok()
    }
}

impl Drop for LinkEventChannel {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
