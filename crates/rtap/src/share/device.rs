//! The attaching side: a port whose queues another process serves. It
//! connects, asks for queues, and receives their fds, the counter memory and
//! (when the interface lives in another namespace) that namespace. The served
//! port's device is rebuilt here from the words its server sent (by the
//! registry entry of its kind), and that device turns the fds into queues and
//! runs its own engines on them: nothing here knows which kind it is.
//!
//! The connection stays open for the port's lifetime: closing it (the port
//! dropped, the process exiting or killed) gives the queues back.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};

use super::config::SharedConfig;
use super::proto::{Msg, QueueHolder, MAX_MSG, VERSION};
use crate::device::lend::{Description, LocalEngine};
use crate::device::{
    Attached, Device, DeviceConfig, DeviceInfo, DeviceKind, Lend, Offloads, Opened, OpenedDevice,
    PortOptions, PortSpec, QueueFd, Registry, TxOffload, MAX_QUEUES,
};
use crate::error::{Error, Result};
use crate::netlink::LinkInfo;
use crate::pool::{Pool, PoolConfig};
use crate::queue::counters::CounterMem;
use crate::queue::engine::{EngineCtx, RxEngine, TxEngine};
use crate::queue::QueueShared;
use crate::sys::unix;
use crate::xstats::XStat;

/// A port attached to another process's: the served port's device, rebuilt
/// here, behind the connection that holds its queues.
pub(crate) struct SharedDevice {
    /// Holding it open holds the queues.
    _conn: OwnedFd,
    info: DeviceInfo,
    /// The served port's device, laid out as there; it adopts the fds and its
    /// engines run the queues.
    inner: Arc<dyn Device>,
    /// Each queue's fds as received, taken when the port opens the queue.
    fds: Mutex<Vec<Option<Vec<OwnedFd>>>>,
}

/// How long a connection or a reply may take.
const REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Most fds a reply may announce: every queue's fds (a few each) and counter
/// block, and a namespace.
const MAX_REPLY_FDS: usize = 8 * MAX_QUEUES as usize + 1;

/// Connects to `name`, checking who serves it: the other end must run as one
/// of `uids`.
fn connect(name: &str, uids: &[u32]) -> Result<OwnedFd> {
    let unavailable = |e: std::io::Error| Error::ShareUnavailable {
        name: name.into(),
        why: e.to_string(),
    };
    let conn = unix::connect(name, REPLY_TIMEOUT).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock => Error::ShareUnavailable {
            name: name.into(),
            why: format!(
                "the server accepted no connection within {REPLY_TIMEOUT:?} (its backlog is full)"
            ),
        },
        _ => unavailable(e),
    })?;
    unix::set_recv_timeout(conn.as_fd(), REPLY_TIMEOUT).map_err(unavailable)?;
    let (pid, uid, _) = unix::peer_cred(conn.as_fd()).map_err(unavailable)?;
    if !uids.contains(&uid) {
        return Err(Error::ShareRefused {
            name: name.into(),
            why: format!(
                "the socket is served by process {pid} running as uid {uid}, not by an expected user (uids {uids:?}): another user may have taken the name; SharedConfig::server_uids names whom to trust"
            ),
        });
    }
    Ok(conn)
}

/// One request, one reply (with its fds).
fn ask(conn: BorrowedFd<'_>, name: &str, req: &Msg) -> Result<(Msg, Vec<OwnedFd>)> {
    let io = |e: std::io::Error| Error::ShareUnavailable {
        name: name.into(),
        why: e.to_string(),
    };
    // A server that refuses at once may have closed already: its answer is
    // still there to read.
    let sent = unix::send(conn, &req.encode(), &[]);
    let mut buf = vec![0u8; MAX_MSG];
    let timed_out = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock => Error::ShareUnavailable {
            name: name.into(),
            why: format!("the server did not answer within {REPLY_TIMEOUT:?}"),
        },
        _ => io(e),
    };
    let (n, mut fds) = match unix::recv(conn, &mut buf) {
        Ok(r) => r,
        Err(e) => return Err(sent.err().map_or_else(|| timed_out(e), io)),
    };
    if n == 0 {
        return Err(Error::ShareRefused {
            name: name.into(),
            why: "the server closed the connection".into(),
        });
    }
    let refused = |why: String| Error::ShareRefused {
        name: name.into(),
        why,
    };
    let m = Msg::decode(&buf[..n]).ok_or_else(|| refused("a malformed reply".into()))?;
    if m.verb == "err" {
        let text = m.get("text").unwrap_or("").to_string();
        return Err(match m.get("code") {
            Some("busy") => Error::SharedQueueTaken {
                queue: text
                    .split_whitespace()
                    .nth(1)
                    .and_then(|q| q.parse().ok())
                    .unwrap_or(0),
                holder: text,
            },
            Some("full") => Error::ShareUnavailable {
                name: name.into(),
                why: text,
            },
            Some("nosuch") => Error::InvalidConfig {
                field: "queues",
                why: text,
            },
            _ => refused(text),
        });
    }
    if m.get("v").and_then(|v| v.parse::<u32>().ok()) != Some(VERSION) {
        return Err(refused(format!(
            "the server speaks protocol version {:?}, this library {VERSION}",
            m.get("v")
        )));
    }
    // More fds than one message holds follow in `fds` messages.
    if let Some(total) = m.get("fds") {
        let total: usize = total
            .parse()
            .ok()
            .filter(|&t| t <= MAX_REPLY_FDS && t >= fds.len())
            .ok_or_else(|| refused(format!("a reply announcing {total} fds")))?;
        while fds.len() < total {
            let (n, more) = unix::recv(conn, &mut buf).map_err(timed_out)?;
            if n == 0 || Msg::decode(&buf[..n]).is_none_or(|c| c.verb != "fds") || more.is_empty() {
                return Err(refused("the fds of the reply did not follow".into()));
            }
            fds.extend(more);
            if fds.len() > total {
                return Err(refused("more fds than the reply announced".into()));
            }
        }
    }
    Ok((m, fds))
}

/// Who holds each queue of the port served at `name`, without attaching.
pub fn status(name: &str) -> Result<Vec<QueueHolder>> {
    let conn = connect(name, &super::config::default_server_uids())?;
    let (m, _) = ask(conn.as_fd(), name, &Msg::new("status"))?;
    let n: usize = m.get("queues").and_then(|v| v.parse().ok()).unwrap_or(0);
    if n > MAX_QUEUES as usize {
        return Err(Error::ShareRefused {
            name: name.into(),
            why: format!("the server claims {n} queues (a port has at most {MAX_QUEUES})"),
        });
    }
    Ok((0..n)
        .map(|q| {
            m.get(&format!("q{q}"))
                .and_then(|h| h.parse().ok())
                .unwrap_or(QueueHolder::Free)
        })
        .collect())
}

/// Connects and attaches the queues `cfg` asks for; `reg` rebuilds the served
/// kind of device.
pub(crate) fn open(cfg: &SharedConfig, reg: &Registry) -> Result<OpenedDevice> {
    let name = cfg.path.as_str();
    let conn = connect(name, &cfg.server_uids)?;
    let req = Msg::new("attach").with("queues", &cfg.queues);
    let (m, mut fds) = ask(conn.as_fd(), name, &req)?;
    let bad = |why: &str| Error::ShareRefused {
        name: name.into(),
        why: why.into(),
    };
    let kind = m.get("kind").unwrap_or("");
    let rebuild = reg
        .find_name(kind)
        .ok_or_else(|| bad(&format!("the served port is of an unknown kind `{kind}`")))?
        .rebuild
        .ok_or_else(|| bad(&format!("a served {kind} port cannot be attached to")))?;
    let primary: Vec<u16> = m
        .get("queues")
        .unwrap_or("")
        .split(',')
        .map(|q| q.parse::<u16>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad("a malformed queue list"))?;
    let with_ns = m.get("netns") == Some("1");
    let per: usize = m
        .get("fds_per_queue")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    // Each queue's fds, then each queue's counter block, then the namespace.
    let want = per
        .checked_add(1)
        .and_then(|k| primary.len().checked_mul(k))
        .and_then(|n| n.checked_add(usize::from(with_ns)));
    if primary.is_empty() || per == 0 || want != Some(fds.len()) {
        return Err(bad("the reply did not carry the queues' fds"));
    }
    let netns = with_ns.then(|| fds.pop()).flatten();
    if netns
        .as_ref()
        .is_some_and(|fd| !crate::sys::fd::is_net_namespace(fd.as_fd()))
    {
        return Err(bad("the namespace fd it sent is not a network namespace"));
    }
    let blocks = fds.split_off(primary.len() * per);
    let counters = blocks
        .into_iter()
        .map(|fd| CounterMem::open(fd).map(Arc::new))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| bad("a queue's counter memory is not this build's layout, or not sealed"))?;
    let ifindex = m
        .get("ifindex")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("no ifindex"))?;
    let iface = Opened {
        name: m.get("name").unwrap_or("").to_string(),
        ifindex,
    };
    let local = LocalEngine {
        backend: cfg.backend,
        ring: cfg.ring,
    };
    let inner = rebuild(&Description::new(m.kv.clone()), &local)
        .map_err(|e| bad(&format!("the served {kind} port's device: {e}")))?;
    if let Err(why) = inner.lend() {
        return Err(bad(&format!(
            "a served {kind} port cannot be attached to: {why}"
        )));
    }
    let offloads = Offloads::from_names(m.get("offloads").unwrap_or(""));
    let info = DeviceInfo {
        kind: DeviceKind::SHARED,
        created: false,
        controls_link: false,
        offloads,
        offload_notes: Vec::new(),
        // The served port's queues take what its virtio-net header does, if
        // they have one (the rebuilt device knows).
        tx_offload: TxOffload {
            header: inner.info().tx_offload.header,
            split: inner.info().tx_offload.split,
            ..TxOffload::vnet(offloads.csum)
        },
        ..inner.info().clone()
    };
    let mut it = fds.into_iter();
    let per_queue: Vec<Option<Vec<OwnedFd>>> = (0..primary.len())
        .map(|_| Some(it.by_ref().take(per).collect()))
        .collect();
    let dev = SharedDevice {
        _conn: conn,
        info,
        inner,
        fds: Mutex::new(per_queue),
    };
    Ok(OpenedDevice {
        dev: Arc::new(dev),
        iface,
        attached: Some(Attached { counters, netns }),
    })
}

impl SharedDevice {
    fn lender(&self) -> Result<&dyn Lend> {
        self.inner.lend().map_err(|hint| Error::Unsupported {
            feature: "attaching to this kind of port",
            hint,
        })
    }
}

impl Device for SharedDevice {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn lend(&self) -> std::result::Result<&dyn Lend, &'static str> {
        Err("serve the port from the process that opened it (this one is attached to another process's)")
    }

    /// The fds received for queue `id`, adopted by the served kind's device.
    /// The fds are the serving process's queue too: releasing them here does
    /// nothing to that queue.
    fn open_queue(&self, iface: &Opened, id: u16) -> Result<QueueFd> {
        let mut all = self.fds.lock().unwrap_or_else(|e| e.into_inner());
        let count = all.len() as u16;
        let fds = all
            .get_mut(id as usize)
            .and_then(Option::take)
            .ok_or(Error::NoSuchQueue { queue: id, count })?;
        self.lender()?.adopt_queue(iface, fds)
    }

    fn missed(&self, link: &LinkInfo, queues: &[Arc<QueueShared>]) -> u64 {
        self.inner.missed(link, queues)
    }

    fn extra_xstats(&self, q: &QueueShared, out: &mut Vec<XStat>) {
        self.inner.extra_xstats(q, out)
    }

    fn queue_buffers(&self, pool: &PoolConfig, max_frame: usize) -> usize {
        self.inner.queue_buffers(pool, max_frame)
    }

    fn rx_engine_name(&self, pool: &PoolConfig, max_frame: usize) -> String {
        self.inner.rx_engine_name(pool, max_frame)
    }

    fn rx_engine(&self, ctx: &EngineCtx, pool: &Pool) -> Result<Box<dyn RxEngine>> {
        self.inner.rx_engine(ctx, pool)
    }

    fn tx_engine(&self, ctx: &EngineCtx) -> Result<Box<dyn TxEngine>> {
        self.inner.tx_engine(ctx)
    }
}

impl DeviceConfig for SharedConfig {
    fn kind(&self) -> DeviceKind {
        DeviceKind::SHARED
    }

    fn options(&self) -> &PortOptions {
        &self.port
    }

    fn options_mut(&mut self) -> &mut PortOptions {
        &mut self.port
    }

    fn validate(&self) -> Result<()> {
        SharedConfig::validate(self)
    }

    fn open(&self, reg: &Registry) -> Result<OpenedDevice> {
        open(self, reg)
    }
}

impl From<SharedConfig> for PortSpec {
    fn from(c: SharedConfig) -> PortSpec {
        PortSpec::new(c)
    }
}

impl PortSpec {
    /// The configuration, if this is a port attached to another process's.
    pub fn as_shared(&self) -> Option<&SharedConfig> {
        self.config()
    }
}
