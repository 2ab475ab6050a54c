//! Device setup of an AF_XDP port: the interface and its queues, the XDP
//! program that steers frames to the sockets (rtap's own through a BPF link,
//! a user's pinned XSKMAP, or none), the kick; the device seam's traits for
//! AF_XDP. The sockets themselves are bound by the queues' engines (`queue.rs`,
//! `xsk.rs`): their UMEM is the pool the rx queue is opened with.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};

use super::config::{Attach, Prog, XdpConfig, XdpMode};
use super::desc::MAX_FRAGS;
use super::errors::{bpf_error, retry_busy, BPF_PERMISSION};
use super::filter::{self, Keep};
use super::prog::redirect_to_xsk;
use super::queue::XdpQueue;
use super::rx::XskRx;
use super::tx::XskTx;
use super::xsk::BindReq;
use crate::backend::kick::{self, Kicker};
use crate::capture::FilterPlace;
use crate::device::netns::NsHandle;
use crate::device::{
    keep_fd, Device, DeviceConfig, DeviceInfo, DeviceKind, Lend, Offloads, Opened, OpenedDevice,
    PortOptions, PortSpec, QueueFd, Registry, TxOffload,
};
use crate::error::{Error, Result};
use crate::netlink::LinkInfo;
use crate::pool::{Pool, PoolConfig};
use crate::queue::engine::{EngineCtx, RxEngine, TxEngine};
use crate::queue::{Engine, Kick, QueueShared};
use crate::sys::{bpf, fd as sysfd, xdp as sys};
use crate::wire::layout::Link;
use crate::xstats::XStat;

/// What to do about an interface that is not there.
const NO_IFACE: &str = "an xdp port attaches to an interface that exists: check the name with `ip link` (and netns= if it lives in another namespace)";

/// Why an xdp port cannot be served.
const NOT_SERVED: &str = "an xdp port's UMEM is the memory of a pool of the process that opened it: its queues cannot be lent; serve a tap or packet port, or open the xdp port in the process that uses it";

/// An open AF_XDP port's device.
pub(crate) struct XdpDevice {
    cfg: XdpConfig,
    kick: Kick,
    info: DeviceInfo,
    /// The XSKMAP the sockets go into.
    map: Option<Arc<OwnedFd>>,
    /// The link that keeps rtap's program attached (closing it detaches the
    /// program).
    link: Option<OwnedFd>,
    /// rtap's plain program, kept so a filter goes again without a new load
    /// (which may need privileges the process has dropped).
    plain: Option<OwnedFd>,
    /// The program with a capture filter in the link's place, if any.
    filtered: Mutex<Option<OwnedFd>>,
    /// The interface's index.
    ifindex: u32,
    /// The network namespace the interface lives in: an XDP socket finds its
    /// interface's index in the namespace it was made in.
    ns: Arc<NsHandle>,
}

/// Resolves the interface, attaches the program, decides the kick. Runs in the
/// port's namespace.
pub(crate) fn open(cfg: &XdpConfig) -> Result<OpenedDevice> {
    let ifindex = sysfd::if_nametoindex(&cfg.iface).ok_or_else(|| Error::NoSuchInterface {
        name: cfg.iface.clone(),
        hint: NO_IFACE,
    })?;
    let link = crate::netlink::Netlink::open()
        .and_then(|nl| nl.get_link(ifindex))
        .map_err(|e| Error::sys("read the interface", e))?;
    let last = cfg.first_queue + u32::from(cfg.port.queues);
    if link.rx_queues > 0 && last > link.rx_queues {
        return Err(Error::InvalidConfig {
            field: "queue",
            why: format!(
                "{} has {} rx queue(s) (0..={}): queues {}..{} do not exist",
                cfg.iface,
                link.rx_queues,
                link.rx_queues - 1,
                cfg.first_queue,
                last
            ),
        });
    }
    let entries = link.rx_queues.max(last).max(1);
    let mut notes = vec![concat!(
        "AF_XDP hands up plain frames and segments nothing; checksums asked for on tx go to ",
        "the kernel as XDP tx metadata (copy mode, Linux 6.11+, pool headroom of 24 bytes or ",
        "more), else rtap finishes them (xstats tx_qN_csum_kernel, tx_qN_csum_sw)"
    )
    .to_string()];
    let (map, prog, bpf_link) = match &cfg.prog {
        Prog::None => (None, None, None),
        Prog::Map(path) => (Some(pinned_map(path)?), None, None),
        Prog::Builtin => {
            let (map, prog, link, how) = attach_builtin(cfg, ifindex, entries)?;
            notes.push(how);
            (Some(map), Some(prog), Some(link))
        }
    };
    let (kick, kick_reason) = kick::choose(cfg.kick, cfg.sqpoll);
    let info = DeviceInfo {
        kind: DeviceKind::XDP,
        link: Link::Ethernet,
        created: false,
        controls_link: true,
        offloads: Offloads::NONE,
        offload_notes: notes,
        tx_offload: TxOffload {
            csum: true,
            gso: false,
            header: false,
            split: false,
        },
        engine: Engine::xsk(kick),
        engine_reason: kick_reason,
        tx_engine: tx_engine_name(cfg, kick),
        tx_through_qdisc: false,
        sqpoll: match kick {
            Kick::Uring => Some(cfg.sqpoll),
            Kick::Sendto => None,
        },
        max_buffer: Some(crate::sys::mem::page_size()),
    };
    let dev = XdpDevice {
        cfg: cfg.clone(),
        kick,
        info,
        map: map.map(Arc::new),
        link: bpf_link,
        plain: prog,
        filtered: Mutex::new(None),
        ifindex,
        // open() runs in the port's namespace.
        ns: Arc::new(NsHandle::current()?),
    };
    Ok(OpenedDevice {
        dev: Arc::new(dev),
        iface: Opened {
            name: link.name,
            ifindex,
        },
        attached: None,
    })
}

/// The XSKMAP pinned at `path`, checked to be one.
fn pinned_map(path: &str) -> Result<OwnedFd> {
    let fd = bpf::obj_get(path).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => Error::InvalidConfig {
            field: "prog",
            why: format!("map:{path}: nothing is pinned there (is bpffs mounted at /sys/fs/bpf?)"),
        },
        _ => Error::sys_or("open the pinned XSKMAP", BPF_PERMISSION, e),
    })?;
    let info = bpf::map_info(fd.as_fd()).map_err(|e| Error::sys("BPF_OBJ_GET_INFO_BY_FD", e))?;
    if info.map_type != bpf::MAP_TYPE_XSKMAP {
        return Err(Error::InvalidConfig {
            field: "prog",
            why: format!(
                "map:{path} is a map of type {}, not an XSKMAP (17)",
                info.map_type
            ),
        });
    }
    Ok(fd)
}

/// Loads rtap's program over a new XSKMAP and attaches it through a BPF link:
/// native where the driver has it (auto), with the mode and why in words.
fn attach_builtin(
    cfg: &XdpConfig,
    ifindex: u32,
    entries: u32,
) -> Result<(OwnedFd, OwnedFd, OwnedFd, String)> {
    let map = bpf::xskmap_create("rtap_xsks", entries).map_err(bpf_error("create an XSKMAP"))?;
    let prog = load_redirect(cfg, map.as_raw_fd())?;
    // A program whose link was closed a moment ago (a port just dropped) can
    // still be attached: Linux 6.1 was seen to answer EBUSY right after. So
    // a busy interface is asked again for a moment before it is refused.
    let try_mode = |flags| {
        retry_busy(
            std::time::Duration::from_millis(500),
            &[libc::EBUSY, libc::EEXIST],
            || bpf::link_create_xdp(prog.as_fd(), ifindex, flags),
        )
    };
    let busy = |e: std::io::Error| match e.raw_os_error() {
        Some(libc::EBUSY) | Some(libc::EEXIST) => Error::InvalidConfig {
            field: "prog",
            why: format!(
                "{0} already has an XDP program: give its XSKMAP with prog=map:PATH, \
                 or detach it (ip link set dev {0} xdp off)",
                cfg.iface
            ),
        },
        _ => bpf_error("attach the XDP program (BPF_LINK_CREATE)")(e),
    };
    let (link, how) = match cfg.attach {
        Attach::Native => (
            try_mode(bpf::XDP_FLAGS_DRV_MODE).map_err(busy)?,
            "native".to_string(),
        ),
        Attach::Generic => (
            try_mode(bpf::XDP_FLAGS_SKB_MODE).map_err(busy)?,
            "generic".to_string(),
        ),
        Attach::Auto => match try_mode(bpf::XDP_FLAGS_DRV_MODE) {
            Ok(l) => (l, "native".to_string()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP) | Some(libc::EINVAL)
                ) =>
            {
                let l = try_mode(bpf::XDP_FLAGS_SKB_MODE).map_err(busy)?;
                (l, format!("generic (the driver refused native XDP: {e})"))
            }
            Err(e) => return Err(busy(e)),
        },
    };
    Ok((
        map,
        prog,
        link,
        format!("XDP program: rtap's, attached in {how} mode"),
    ))
}

/// Loads rtap's plain program (every frame to the sockets).
fn load_redirect(cfg: &XdpConfig, map_fd: i32) -> Result<OwnedFd> {
    let insns = redirect_to_xsk(map_fd);
    bpf::prog_load_xdp("rtap_xsk", &insns, cfg.multibuf).map_err(|(e, log)| {
        if !log.is_empty() {
            tracing::debug!("the verifier on rtap's XDP program: {log}");
        }
        match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => bpf_error("load the XDP program")(e),
            _ => Error::Unsupported {
                feature: "rtap's XDP program on this kernel",
                hint: "the kernel refused it (RUST_LOG=debug shows the verifier's log); use prog=map:PATH with a program of your own",
            },
        }
    })
}

fn tx_engine_name(cfg: &XdpConfig, kick: Kick) -> String {
    let kick = match kick {
        Kick::Uring => format!(
            "kick: io_uring send from the process's SQPOLL thread (idle {} ms{})",
            cfg.sqpoll.idle_ms,
            cfg.sqpoll
                .cpu
                .map(|c| format!(", CPU {c}"))
                .unwrap_or_default()
        ),
        Kick::Sendto => "kick: send() per burst".into(),
    };
    format!(
        "AF_XDP tx ring ({} entries), UMEM buffers sent as they are, {kick}{}",
        cfg.ring,
        if cfg.need_wakeup { ", need_wakeup" } else { "" }
    )
}

impl Engine {
    /// AF_XDP: an XDP socket's rings over a UMEM that is the rx pool's memory
    /// (received frames are pool packets without a copy; packets of that pool
    /// go to tx without one); the kernel sends on a `kick` (`xsk+sendto`,
    /// `xsk+uring`).
    pub const fn xsk(kick: Kick) -> Engine {
        Engine::kicked("xsk", kick)
    }
}

impl XdpDevice {
    fn queue(ctx: &EngineCtx) -> Result<Arc<XdpQueue>> {
        ctx.extra
            .clone()
            .and_then(|e| e.downcast::<XdpQueue>().ok())
            .ok_or(Error::Unsupported {
                feature: "xdp queue",
                hint: "the queue was not opened by an xdp port",
            })
    }

    /// The longest frame this port's sockets ever receive: a chunk (at most a
    /// page), or a multi-buffer frame's chunks.
    fn max_frame(&self) -> u32 {
        let page = crate::sys::mem::page_size() as u32;
        if self.cfg.multibuf {
            page * MAX_FRAGS as u32
        } else {
            page
        }
    }

    /// Whether frames longer than 64 KiB may come now: multi-buffer, and an
    /// MTU that lets them (or one that cannot be read).
    fn long_frames(&self) -> bool {
        self.cfg.multibuf
            && crate::netlink::Netlink::open()
                .and_then(|nl| nl.get_link(self.ifindex))
                .map_or(true, |l| l.mtu + 18 > 0x10000)
    }

    /// The program with capture filter `prog` translated into it, or why the
    /// filter stays in user space (`Ok(Err(why))`, said in the log too).
    fn load_filtered(
        &self,
        prog: &crate::capture::bpf::Program,
        map_fd: i32,
    ) -> Result<std::result::Result<OwnedFd, String>> {
        let iface = &self.cfg.iface;
        let user = |why: String| {
            tracing::info!("{iface}: the capture filter runs in user space: {why}");
            Ok(Err(why))
        };
        let insns = match filter::check(prog, self.max_frame(), self.long_frames())
            .and_then(|()| filter::translate(prog, Keep::Redirect(map_fd)))
        {
            Ok(i) => i,
            Err(why) => return user(why.to_string()),
        };
        match bpf::prog_load_xdp("rtap_xsk_filter", &insns, self.cfg.multibuf) {
            Ok(fd) => Ok(Ok(fd)),
            Err((e, _)) if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) => {
                Err(bpf_error("load the XDP program with the capture filter")(e))
            }
            Err((e, log)) => {
                tracing::debug!("the verifier on the filter's translation: {log}");
                user(format!(
                    "the kernel refused its translation into the XDP program ({e}; \
                     RUST_LOG=debug shows the verifier's log)"
                ))
            }
        }
    }

    fn bind_req(&self, q: &XdpQueue) -> BindReq {
        let mode = match self.cfg.mode {
            XdpMode::Auto => 0,
            XdpMode::Copy => sys::XDP_COPY,
            XdpMode::ZeroCopy => sys::XDP_ZEROCOPY,
        };
        let wakeup = if self.cfg.need_wakeup {
            sys::XDP_USE_NEED_WAKEUP
        } else {
            0
        };
        BindReq {
            ns: self.ns.clone(),
            ifindex: q.ifindex,
            queue: q.iface_queue,
            ring: self.cfg.ring,
            flags: mode
                | wakeup
                | if self.cfg.multibuf {
                    sys::XDP_USE_SG
                } else {
                    0
                },
            frame: self.cfg.frame,
        }
    }
}

impl Device for XdpDevice {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// The queue's state; its socket is made and bound by its first engine.
    /// The queue fd is a placeholder (an eventfd): readiness is the socket's.
    fn open_queue(&self, iface: &Opened, id: u16) -> Result<QueueFd> {
        let q = XdpQueue::new(
            iface.ifindex,
            self.cfg.first_queue + u32::from(id),
            self.map.clone(),
        );
        Ok(QueueFd {
            fd: sysfd::eventfd().map_err(|e| Error::sys("eventfd", e))?,
            extra: Some(Arc::new(q)),
            release: keep_fd,
        })
    }

    /// Frames the kernel dropped: no fill buffer, or the rx ring full.
    fn missed(&self, _link: &LinkInfo, queues: &[Arc<QueueShared>]) -> u64 {
        queues
            .iter()
            .filter_map(|q| q.extra.clone()?.downcast::<XdpQueue>().ok())
            .map(|x| {
                let s = x.statistics();
                s.rx_dropped + s.rx_ring_full
            })
            .sum()
    }

    fn extra_xstats(&self, q: &QueueShared, out: &mut Vec<XStat>) {
        let Some(x) = q.extra.clone().and_then(|e| e.downcast::<XdpQueue>().ok()) else {
            return;
        };
        let s = x.statistics();
        let c = &x.counters;
        let k = &q.c.kick;
        let id = q.id;
        for (dir, name, v) in [
            ("rx", "xdp_rx_dropped", s.rx_dropped),
            ("rx", "xdp_rx_ring_full", s.rx_ring_full),
            ("rx", "xdp_fill_ring_empty", s.rx_fill_ring_empty_descs),
            ("rx", "xdp_rx_invalid_descs", s.rx_invalid_descs),
            ("rx", "bad_descs", c.bad_descs.load(Relaxed)),
            ("rx", "fill_wakeups", c.rx_wakeups.load(Relaxed)),
            ("rx", "zerocopy", c.zerocopy.load(Relaxed)),
            ("tx", "xdp_tx_invalid_descs", s.tx_invalid_descs),
            ("tx", "xdp_tx_ring_empty", s.tx_ring_empty_descs),
            ("tx", "kick_budget", c.tx_budget.load(Relaxed)),
            ("tx", "metadata", c.tx_meta.load(Relaxed)),
            ("tx", "csum_kernel", c.csum_kernel.load(Relaxed)),
            ("tx", "csum_sw", c.csum_sw.load(Relaxed)),
            ("tx", "csum_refused", c.csum_refused.load(Relaxed)),
            ("tx", "kicks", k.kicks.load(Relaxed)),
            ("tx", "sq_wakeups", k.sq_wakeups.load(Relaxed)),
            ("tx", "kick_eagain", k.kick_eagain.load(Relaxed)),
            ("tx", "kick_errors", k.kick_errors.load(Relaxed)),
            ("tx", "kick_fallbacks", k.fallbacks.load(Relaxed)),
            ("tx", "copied", c.tx_copied.load(Relaxed)),
            ("tx", "nombuf", c.tx_nombuf.load(Relaxed)),
            ("tx", "oversized", c.oversized.load(Relaxed)),
        ] {
            out.push(XStat {
                name: format!("{dir}_q{id}_{name}"),
                value: v,
            });
        }
    }

    /// The fill ring and the tx ring full.
    fn queue_buffers(&self, _pool: &PoolConfig, _max_frame: usize) -> usize {
        2 * self.cfg.ring as usize
    }

    fn rx_engine_name(&self, pool: &PoolConfig, _max_frame: usize) -> String {
        let chunk = pool.buf_size.div_ceil(64) * 64;
        let frame = chunk.saturating_sub(sys::XDP_PACKET_HEADROOM);
        let frames = if self.cfg.multibuf {
            format!("frames over up to {MAX_FRAGS} chunks")
        } else {
            format!("frames up to {frame}")
        };
        format!(
            "AF_XDP rx ring ({} entries) over a UMEM of this pool ({} chunks of {chunk} bytes{}, {frames}), {}",
            self.cfg.ring,
            pool.count,
            if self.cfg.frame.is_some() { ", aligned" } else { ", unaligned" },
            match self.cfg.mode {
                XdpMode::Auto => "zero-copy where the driver has it",
                XdpMode::Copy => "copy mode",
                XdpMode::ZeroCopy => "zero-copy",
            }
        )
    }

    fn rx_engine(&self, ctx: &EngineCtx, pool: &Pool) -> Result<Box<dyn RxEngine>> {
        if matches!(self.cfg.prog, Prog::None) {
            return Err(Error::Unsupported {
                feature: "receiving on an xdp port with prog=none",
                hint: "frames reach an XDP socket only through an XDP program: use prog=builtin or prog=map:PATH",
            });
        }
        let q = Self::queue(ctx)?;
        let xsk = q.bind(Some(pool), self.bind_req(&q))?;
        let sock = xsk.borrow().socket().ok_or(Error::DeviceVanished {
            name: self.cfg.iface.clone(),
            ifindex: q.ifindex,
        })?;
        let limit = self.cfg.ring as usize;
        Ok(Box::new(XskRx::new(
            sock,
            xsk,
            q,
            limit,
            self.cfg.need_wakeup,
        )))
    }

    fn tx_engine(&self, ctx: &EngineCtx) -> Result<Box<dyn TxEngine>> {
        let q = Self::queue(ctx)?;
        let xsk = q.bind(None, self.bind_req(&q))?;
        let sock = xsk.borrow().socket().ok_or(Error::DeviceVanished {
            name: self.cfg.iface.clone(),
            ifindex: q.ifindex,
        })?;
        let kicker = Kicker::new_or_sendto(
            self.kick,
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            self.cfg.sq_size,
            self.cfg.sqpoll,
            ctx.sq_attach,
            &ctx.block.kick,
        );
        Ok(Box::new(XskTx::new(
            sock,
            xsk,
            q,
            kicker,
            ctx.block.clone(),
            self.cfg.need_wakeup,
        )))
    }

    fn lend(&self) -> std::result::Result<&dyn Lend, &'static str> {
        Err(NOT_SERVED)
    }

    /// With rtap's program: the filter translated into it (`filter.rs`), so
    /// frames it drops go on to the kernel's stack and never reach the
    /// sockets; the program is swapped through the link (`BPF_LINK_UPDATE`),
    /// so no frame meets no program. `FilterPlace::User` with the reason
    /// with a user's program (`map:`), with none, or for a filter that cannot
    /// run there (it cuts frames short, may load past what the helper reads,
    /// or the kernel refuses its translation); the plain program is then in
    /// place. A filter that fails to load (no
    /// privilege left) is an error, and the plain program is in place too.
    fn attach_filter(
        &self,
        _queues: &[Arc<QueueShared>],
        prog: Option<&crate::capture::bpf::Program>,
    ) -> Result<FilterPlace> {
        let (Some(link), Some(map), Some(plain)) = (&self.link, &self.map, &self.plain) else {
            return Ok(match prog {
                None => FilterPlace::Removed,
                Some(_) => FilterPlace::User(match self.cfg.prog {
                    Prog::None => "the port has no XDP program (prog=none)".into(),
                    _ => {
                        "the XDP program is the user's (prog=map:): rtap puts nothing in it".into()
                    }
                }),
            });
        };
        let mut cur = self.filtered.lock().unwrap_or_else(PoisonError::into_inner);
        let swap = |to: &OwnedFd| {
            bpf::link_update(link.as_fd(), to.as_fd()).map_err(|e| match e.raw_os_error() {
                Some(libc::ENOLINK) => Error::DeviceVanished {
                    name: self.cfg.iface.clone(),
                    ifindex: self.ifindex,
                },
                _ => bpf_error("replace the XDP program (BPF_LINK_UPDATE)")(e),
            })
        };
        let new = match prog {
            Some(p) => self.load_filtered(p, map.as_raw_fd()),
            None => Ok(Err(String::new())),
        };
        let fd = match new {
            Ok(Ok(fd)) => fd,
            // No filter in the kernel now: the plain program, whatever the
            // answer.
            other => {
                if cur.is_some() {
                    swap(plain)?;
                    *cur = None;
                }
                let why = other?.err().unwrap_or_default();
                return Ok(match prog {
                    Some(_) => FilterPlace::User(why),
                    None => FilterPlace::Removed,
                });
            }
        };
        // From the old filter (or none) straight to the new one.
        swap(&fd)?;
        *cur = Some(fd);
        Ok(FilterPlace::Kernel)
    }
}

impl DeviceConfig for XdpConfig {
    fn kind(&self) -> DeviceKind {
        DeviceKind::XDP
    }

    fn options(&self) -> &PortOptions {
        &self.port
    }

    fn options_mut(&mut self) -> &mut PortOptions {
        &mut self.port
    }

    fn validate(&self) -> Result<()> {
        XdpConfig::validate(self)
    }

    fn open(&self, _reg: &Registry) -> Result<OpenedDevice> {
        open(self)
    }
}

impl From<XdpConfig> for PortSpec {
    fn from(c: XdpConfig) -> PortSpec {
        PortSpec::new(c)
    }
}

impl PortSpec {
    /// The AF_XDP configuration, if this is an xdp port.
    pub fn as_xdp(&self) -> Option<&XdpConfig> {
        self.config()
    }
}
