//! The serving side: a thread that accepts other processes on a Unix socket,
//! checks who they are, and lends them queue pairs of the port (their fds, the
//! counter memory, the namespace) for as long as their connection lives.
//!
//! A lent queue is claimed in both directions on the port, exactly as a queue
//! handle of the serving process would claim it, so the serving process cannot
//! open it while another process runs it, and `stop` waits for it like for
//! any handle. The claim ends when the connection closes: the holder exited,
//! crashed, or dropped its port. Each lend comes with a fresh counter block,
//! whose counts are added into the port's own when the queue comes back: a
//! former holder still maps its old block, but nothing reads it any more.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};

use super::proto::{parse_queue_sel, Msg, QueueHolder, QueueSel, MAX_MSG, VERSION};
use crate::device::netns::NsHandle;
use crate::device::{Device, DeviceKind, Offloads, Opened};
use crate::error::{Error, Result};
use crate::queue::{LendError, Lent, QueueShared};
use crate::sys::unix::MAX_FDS;
use crate::sys::{fd as sysfd, unix};

/// What serving a port needs of it: the device (which lends its queues), the
/// interface, what the reply tells about the port, the queues and their counter
/// memory, and the namespace the interface lives in if not the server's.
pub(crate) struct ServeParts {
    pub dev: Arc<dyn Device>,
    pub iface: Opened,
    pub kind: DeviceKind,
    pub name: String,
    pub offloads: Offloads,
    pub queues: Vec<Arc<QueueShared>>,
    pub netns: Option<OwnedFd>,
}

/// Who may attach, and where the socket is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeConfig {
    /// A filesystem path (the socket file is created with mode 0600, and removed
    /// when the server stops), or `@name` for the abstract namespace.
    pub name: String,
    /// Users allowed to attach. Default: this process's effective uid and root.
    pub uids: Vec<u32>,
    /// Groups allowed to attach (any member of one). Default: none.
    pub gids: Vec<u32>,
    /// Mode of the socket file. Default 0600 (only the owner can connect).
    pub mode: u32,
    /// Most connections at once; one more is answered `busy` and closed.
    /// Default 64.
    pub max_peers: usize,
    /// How long a connection holding no queue may stay without asking
    /// anything before it is closed (a peer holding queues may stay for
    /// ever). Default 5 s.
    pub request_timeout: std::time::Duration,
}

impl ServeConfig {
    /// Serves at `name` with the defaults.
    pub fn new(name: &str) -> ServeConfig {
        let me = crate::sys::fd::euid();
        let mut uids = vec![me];
        if me != 0 {
            uids.push(0);
        }
        ServeConfig {
            name: name.into(),
            uids,
            gids: Vec::new(),
            mode: 0o600,
            max_peers: 64,
            request_timeout: std::time::Duration::from_secs(5),
        }
    }

    /// Sets the most connections at once.
    pub fn max_peers(mut self, n: usize) -> Self {
        self.max_peers = n;
        self
    }

    /// Sets how long a connection may wait before asking.
    pub fn request_timeout(mut self, t: std::time::Duration) -> Self {
        self.request_timeout = t;
        self
    }

    /// Sets the allowed users.
    pub fn uids(mut self, uids: &[u32]) -> Self {
        self.uids = uids.to_vec();
        self
    }

    /// Sets the allowed groups.
    pub fn gids(mut self, gids: &[u32]) -> Self {
        self.gids = gids.to_vec();
        self
    }

    /// Sets the socket file's mode.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    fn allows(&self, uid: u32, gid: u32) -> bool {
        self.uids.contains(&uid) || self.gids.contains(&gid)
    }
}

/// What a server has done so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Attach requests granted.
    pub attached: u64,
    /// Connections that held queues and closed (released them).
    pub released: u64,
    /// Peers refused for their credentials.
    pub refused: u64,
    /// Requests answered with an error (taken or missing queues, malformed).
    pub rejected: u64,
    /// Connections closed by the server: over `max_peers`, silent past
    /// `request_timeout`, or not reading their replies (a full socket).
    pub dropped: u64,
    /// The last refusal or rejection, in words.
    pub last_error: Option<String>,
}

/// Serves a port's queues to other processes until dropped. Made by
/// [`Port::serve`](crate::Port::serve). Drop it before the port.
pub struct Server {
    name: String,
    state: Arc<Mutex<State>>,
    stop: OwnedFd,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("name", &self.name).finish()
    }
}

#[derive(Default)]
struct State {
    stats: ServerStats,
    holders: Vec<QueueHolder>,
}

/// Starts the server thread on `cfg`'s socket (made by
/// [`Port::serve`](crate::Port::serve)).
pub(crate) fn spawn(cfg: ServeConfig, parts: ServeParts) -> Result<Server> {
    if let Err(hint) = parts.dev.lend() {
        return Err(Error::Unsupported {
            feature: "serving this port to other processes",
            hint,
        });
    }
    let listener = bind(&cfg)?;
    let stop = sysfd::eventfd().map_err(|e| Error::sys("eventfd", e))?;
    let stop_r = stop.try_clone().map_err(|e| Error::sys("dup eventfd", e))?;
    let state = Arc::new(Mutex::new(State {
        stats: ServerStats::default(),
        holders: vec![QueueHolder::Free; parts.queues.len()],
    }));
    let st = state.clone();
    let name = cfg.name.clone();
    let thread = std::thread::Builder::new()
        .name("rtap-serve".into())
        .spawn(move || run(cfg, parts, listener, stop_r, st))
        .map_err(|e| Error::sys("spawn the server thread", e))?;
    Ok(Server {
        name,
        state,
        stop,
        thread: Some(thread),
    })
}

impl Server {
    /// The socket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Counters.
    pub fn stats(&self) -> ServerStats {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stats
            .clone()
    }

    /// Who holds each queue, as of the server's last look (the serving
    /// process's own handles show as [`QueueHolder::Serving`]).
    pub fn holders(&self) -> Vec<QueueHolder> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .holders
            .clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = sysfd::write(self.stop.as_fd(), &1u64.to_ne_bytes());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        unix::unlink(&self.name);
    }
}

/// Binds the socket; a stale socket file (nobody listening) is replaced.
fn bind(cfg: &ServeConfig) -> Result<OwnedFd> {
    let err = |e: std::io::Error| Error::sys("bind the serving socket", e);
    match unix::listen(&cfg.name, cfg.mode as libc::mode_t) {
        Ok(fd) => Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {
            // Only a refused connection says nobody listens (a busy server
            // may not accept in time).
            let stale = || {
                unix::connect(&cfg.name, std::time::Duration::from_secs(1))
                    .is_err_and(|e| e.raw_os_error() == Some(libc::ECONNREFUSED))
            };
            if !cfg.name.starts_with('@') && stale() {
                unix::unlink(&cfg.name);
                unix::listen(&cfg.name, cfg.mode as libc::mode_t).map_err(err)
            } else {
                Err(Error::InvalidConfig {
                    field: "serve",
                    why: format!("{} is already served by a running process", cfg.name),
                })
            }
        }
        Err(e) => Err(err(e)),
    }
}

/// One connected peer.
struct Peer {
    fd: OwnedFd,
    pid: i32,
    uid: u32,
    /// The queues it holds, each claimed in both directions with the counter
    /// block lent with it (folded back into the port's when it closes).
    queues: Vec<u16>,
    lent: Vec<Lent>,
    /// When it connected or last asked something.
    since: std::time::Instant,
    /// Turned away (credentials, too many connections): it has its answer and
    /// is closed at its first message or after [`GRACE`]. Closing it before it
    /// sent its request could lose the answer (the kernel resets a connection
    /// closed with unread data).
    turned_away: bool,
}

/// How long a connection that was turned away is kept to read its answer.
const GRACE: std::time::Duration = std::time::Duration::from_secs(1);

fn run(
    cfg: ServeConfig,
    parts: ServeParts,
    listener: OwnedFd,
    stop: OwnedFd,
    st: Arc<Mutex<State>>,
) {
    let mut peers: Vec<Peer> = Vec::new();
    let mut buf = vec![0u8; MAX_MSG];
    loop {
        publish_holders(&parts, &peers, &st);
        let mut pfds: Vec<libc::pollfd> = [stop.as_raw_fd(), listener.as_raw_fd()]
            .into_iter()
            .chain(peers.iter().map(|p| p.fd.as_raw_fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // Wake up now and then to refresh who holds what (the serving
        // process's own handles come and go without telling the server), and
        // in time for the first peer's request deadline.
        let now = std::time::Instant::now();
        let next_deadline = peers
            .iter()
            .filter_map(|p| deadline(&cfg, p))
            .map(|d| d.saturating_duration_since(now))
            .min()
            .map_or(500, |d| d.as_millis().min(500) as i32 + 1);
        if sysfd::poll_many(&mut pfds, next_deadline).is_err() {
            continue;
        }
        if pfds[0].revents != 0 {
            return;
        }
        // Peers, newest first so removal keeps the indices of those not yet seen.
        for i in (0..pfds.len() - 2).rev() {
            if pfds[i + 2].revents == 0 {
                continue;
            }
            // An error reads as a close.
            let (n, fds) = match unix::recv(peers[i].fd.as_fd(), &mut buf) {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => (0, Vec::new()),
            };
            drop(fds); // clients send none; any that came are closed
            if n == 0 || peers[i].turned_away {
                release(peers.swap_remove(i), &st);
                continue;
            }
            peers[i].since = std::time::Instant::now();
            match handle(&parts, &mut peers, i, &buf[..n], &st) {
                Sent::Ok => {}
                // Closed, its queues freed.
                Sent::Full => drop_peer(peers.swap_remove(i), &st, "it does not read its replies"),
                Sent::Gone => release(peers.swap_remove(i), &st),
            }
        }
        // Silent too long: closed.
        let now = std::time::Instant::now();
        for i in (0..peers.len()).rev() {
            if deadline(&cfg, &peers[i]).is_some_and(|d| now >= d) {
                let p = peers.swap_remove(i);
                if p.turned_away {
                    continue;
                }
                let why = format!(
                    "held no queue and asked nothing for {:?}",
                    cfg.request_timeout
                );
                drop_peer(p, &st, &why);
            }
        }
        if pfds[1].revents & libc::POLLIN != 0 {
            // Every pending connection (the listener is non-blocking).
            while let Ok(fd) = unix::accept(listener.as_fd()) {
                accept(&cfg, fd, &mut peers, &st);
            }
        }
    }
}

/// When a peer is closed if it stays silent: a peer holding queues stays.
fn deadline(cfg: &ServeConfig, p: &Peer) -> Option<std::time::Instant> {
    if p.turned_away {
        Some(p.since + GRACE)
    } else if p.queues.is_empty() {
        // Silent since its last request (or its connect) and holding nothing.
        Some(p.since + cfg.request_timeout)
    } else {
        None
    }
}

fn lock(st: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    st.lock().unwrap_or_else(|e| e.into_inner())
}

/// A peer's connection closed: its queues come back.
fn release(p: Peer, st: &Mutex<State>) {
    if !p.queues.is_empty() {
        tracing::info!(pid = p.pid, queues = ?p.queues, "shared queues released");
        lock(st).stats.released += 1;
    }
}

/// Closes a peer's connection on the server's initiative, counted.
fn drop_peer(p: Peer, st: &Mutex<State>, why: &str) {
    tracing::warn!(
        pid = p.pid,
        uid = p.uid,
        "shared port: closed a connection: {why}"
    );
    {
        let mut s = lock(st);
        s.stats.dropped += 1;
        s.stats.last_error = Some(format!("process {}: {why}", p.pid));
    }
    release(p, st);
}

/// What a send to a peer did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sent {
    Ok,
    /// Its socket is full: it does not read its replies.
    Full,
    /// The connection is gone (the peer closed or died).
    Gone,
}

/// Sends one message without waiting.
fn send(fd: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> Sent {
    match unix::send(fd, data, fds) {
        Ok(()) => Sent::Ok,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Sent::Full,
        Err(_) => Sent::Gone,
    }
}

fn accept(cfg: &ServeConfig, fd: OwnedFd, peers: &mut Vec<Peer>, st: &Mutex<State>) {
    let Ok((pid, uid, gid)) = unix::peer_cred(fd.as_fd()) else {
        return;
    };
    let turned_away = if !cfg.allows(uid, gid) {
        let why = format!(
            "process {pid} (uid {uid}, gid {gid}) is not allowed to attach (allowed uids {:?}, gids {:?})",
            cfg.uids, cfg.gids
        );
        Some(("refused", why))
    } else if peers.iter().filter(|p| !p.turned_away).count() >= cfg.max_peers {
        let why = format!(
            "too many connections ({}): process {pid} turned away; close idle ones or raise ServeConfig::max_peers",
            cfg.max_peers
        );
        Some(("full", why))
    } else {
        None
    };
    if let Some((code, why)) = &turned_away {
        tracing::warn!("{}: {why}", cfg.name);
        {
            let mut s = lock(st);
            if *code == "refused" {
                s.stats.refused += 1;
            } else {
                s.stats.dropped += 1;
            }
            s.stats.last_error = Some(why.clone());
        }
        // Answered at once; kept a moment to read it (see `Peer::turned_away`),
        // unless the connections turned away are as many again as allowed.
        send(fd.as_fd(), &Msg::err(code, why), &[]);
        if peers.iter().filter(|p| p.turned_away).count() >= cfg.max_peers {
            return;
        }
    }
    peers.push(Peer {
        fd,
        pid,
        uid,
        queues: Vec::new(),
        lent: Vec::new(),
        since: std::time::Instant::now(),
        turned_away: turned_away.is_some(),
    });
}

/// Who holds each queue now.
fn holders(parts: &ServeParts, peers: &[Peer]) -> Vec<QueueHolder> {
    parts
        .queues
        .iter()
        .enumerate()
        .map(
            |(q, qs)| match peers.iter().find(|p| p.queues.contains(&(q as u16))) {
                Some(p) => QueueHolder::Process {
                    pid: p.pid,
                    uid: p.uid,
                },
                None if qs.live() > 0 => QueueHolder::Serving,
                None => QueueHolder::Free,
            },
        )
        .collect()
}

fn publish_holders(parts: &ServeParts, peers: &[Peer], st: &Mutex<State>) {
    let h = holders(parts, peers);
    lock(st).holders = h;
}

/// Answers with an error.
fn reject(peer: &Peer, st: &Mutex<State>, code: &str, text: String) -> Sent {
    // Counted before the reply: whoever sees the reply sees the count.
    {
        let mut s = lock(st);
        s.stats.rejected += 1;
        s.stats.last_error = Some(format!("process {}: {text}", peer.pid));
    }
    send(peer.fd.as_fd(), &Msg::err(code, &text), &[])
}

/// Answers one request; anything but `Sent::Ok` closes the peer.
fn handle(parts: &ServeParts, peers: &mut [Peer], i: usize, req: &[u8], st: &Mutex<State>) -> Sent {
    let Some(m) = Msg::decode(req) else {
        return reject(&peers[i], st, "proto", "malformed request".into());
    };
    match m.verb.as_str() {
        "status" => {
            let mut r = Msg::new("status")
                .with("v", VERSION)
                .with("kind", parts.kind)
                .with("name", &parts.name)
                .with("queues", parts.queues.len());
            for (q, h) in holders(parts, peers).iter().enumerate() {
                r = r.with(&format!("q{q}"), h);
            }
            send(peers[i].fd.as_fd(), &r.encode(), &[])
        }
        "attach" => attach(parts, peers, i, &m, st),
        other => reject(&peers[i], st, "proto", format!("unknown request {other:?}")),
    }
}

fn attach(parts: &ServeParts, peers: &mut [Peer], i: usize, m: &Msg, st: &Mutex<State>) -> Sent {
    if !peers[i].queues.is_empty() {
        let why = "this connection already holds queues".to_string();
        return reject(&peers[i], st, "proto", why);
    }
    let list = match selected(parts, m) {
        Ok(l) => l,
        Err((code, why)) => return reject(&peers[i], st, code, why),
    };
    let lent = match claim(parts, peers, &list) {
        Ok(c) => c,
        Err((code, why)) => return reject(&peers[i], st, code, why),
    };
    let owned = match lend(parts, &list) {
        Ok(v) => v,
        Err(e) => {
            let why = format!("cannot share the queues: {e}");
            return reject(&peers[i], st, "proto", why);
        }
    };
    let per_queue = owned.len() / list.len().max(1);
    // Recorded before the reply: whoever sees the reply sees the holder.
    peers[i].queues = list;
    peers[i].lent = lent;
    lock(st).stats.attached += 1;
    publish_holders(parts, peers, st);
    let peer = &peers[i];
    let mut fds: Vec<BorrowedFd<'_>> = owned.iter().map(|f| f.as_fd()).collect();
    // Each lent queue's counter block (a fresh one), and no other queue's.
    fds.extend(peer.lent.iter().map(|l| l.block().mem().fd()));
    if let Some(ns) = &parts.netns {
        fds.push(ns.as_fd());
    }
    let reply = granted(parts, &peer.queues, per_queue).with("fds", fds.len());
    // The reply carries the first MAX_FDS fds, `fds` messages the rest. A
    // transfer that fails closes the peer, which frees its queues.
    let mut chunks = fds.chunks(MAX_FDS);
    let first = chunks.next().unwrap_or(&[]);
    let more = Msg::new("fds").encode();
    let mut r = send(peer.fd.as_fd(), &reply.encode(), first);
    for c in chunks {
        if r != Sent::Ok {
            return r;
        }
        r = send(peer.fd.as_fd(), &more, c);
    }
    if r == Sent::Ok {
        tracing::info!(pid = peer.pid, uid = peer.uid, queues = ?peer.queues, "shared queues attached");
    }
    r
}

/// The queues an attach asks for (`all` when it names none), each checked to
/// exist; else the error code and why.
fn selected(parts: &ServeParts, m: &Msg) -> std::result::Result<Vec<u16>, (&'static str, String)> {
    let n = parts.queues.len() as u16;
    let list: Vec<u16> = match m.get("queues").map(parse_queue_sel) {
        None | Some(Ok(QueueSel::All)) => (0..n).collect(),
        Some(Ok(QueueSel::List(l))) => l,
        Some(Err(why)) => return Err(("proto", format!("queues: {why}"))),
    };
    match list.iter().find(|&&q| q >= n) {
        Some(q) => Err((
            "nosuch",
            format!("queue {q} does not exist: the port has {n} queue(s)"),
        )),
        None => Ok(list),
    }
}

/// Lends every queue in `list` (both directions claimed, a fresh counter
/// block), or none (those taken so far drop); else the error code and why
/// (who holds the first one taken).
fn claim(
    parts: &ServeParts,
    peers: &[Peer],
    list: &[u16],
) -> std::result::Result<Vec<Lent>, (&'static str, String)> {
    let mut lent = Vec::new();
    for &q in list {
        match parts.queues[q as usize].lend() {
            Ok(l) => lent.push(l),
            Err(LendError::Busy) => {
                let holder = match peers.iter().find(|p| p.queues.contains(&q)) {
                    Some(p) => format!("held by process {} (uid {})", p.pid, p.uid),
                    None => "in use by the serving process".into(),
                };
                return Err(("busy", format!("queue {q} is {holder}")));
            }
            Err(LendError::Memory(e)) => {
                return Err(("full", format!("no memory for queue {q}'s counters: {e}")))
            }
        }
    }
    Ok(lent)
}

/// The fds of each queue in `list`, as the device lends them, made in the
/// port's namespace (a device may make sockets for the new holder there).
fn lend(parts: &ServeParts, list: &[u16]) -> Result<Vec<OwnedFd>> {
    let lender = parts.dev.lend().map_err(|hint| Error::Unsupported {
        feature: "lending this port's queues",
        hint,
    })?;
    let make = || -> Result<Vec<OwnedFd>> {
        let mut v = Vec::new();
        for &q in list {
            v.extend(lender.lend_queue(&parts.iface, &parts.queues[q as usize])?);
        }
        Ok(v)
    };
    match &parts.netns {
        Some(ns) => {
            let fd = ns.try_clone().map_err(|e| Error::sys("dup netns fd", e))?;
            NsHandle::from_fd(fd).run(make)
        }
        None => make(),
    }
}

/// The reply granting `list`: what every port tells, then the device's own words.
fn granted(parts: &ServeParts, list: &[u16], per_queue: usize) -> Msg {
    let qs: Vec<String> = list.iter().map(|q| q.to_string()).collect();
    let reply = Msg::new("ok")
        .with("v", VERSION)
        .with("kind", parts.kind)
        .with("name", &parts.name)
        .with("ifindex", parts.iface.ifindex)
        .with("queues", qs.join(","))
        .with("offloads", parts.offloads)
        .with("netns", u8::from(parts.netns.is_some()))
        .with("fds_per_queue", per_queue);
    let words = parts.dev.lend().map(|l| l.describe()).unwrap_or_default();
    words.into_iter().fold(reply, |m, (k, v)| m.with(k, v))
}
