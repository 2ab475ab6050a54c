//! Typed errors. Every variant says what failed and, where there is one, what to do.

use std::io;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors returned by rtap.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `/dev/net/tun` could not be opened because it does not exist.
    #[error("/dev/net/tun is missing: load the tun module (`modprobe tun`) or create the node (`mknod /dev/net/tun c 10 200`)")]
    NoTunDevice,

    /// The caller lacks a capability the operation needs (`CAP_NET_ADMIN` for
    /// link changes and creating interfaces, `CAP_NET_RAW` for AF_PACKET
    /// sockets, ...) or file permission (`/dev/net/tun`).
    #[error("{op}: permission denied: {hint}")]
    PermissionDenied {
        /// The operation that was refused.
        op: &'static str,
        /// What would allow it, for the device at hand.
        hint: &'static str,
    },

    /// The interface name (or template) does not fit in IFNAMSIZ.
    #[error(
        "interface name {name:?} is too long: at most 15 bytes, `%d` allowed once as a template"
    )]
    NameTooLong {
        /// The offending name.
        name: String,
    },

    /// The interface name has characters the kernel refuses.
    #[error("interface name {name:?} is invalid: {why}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },

    /// The interface to attach to does not exist.
    #[error("interface {name:?} does not exist: {hint}")]
    NoSuchInterface {
        /// The interface name.
        name: String,
        /// What to do, for the device at hand.
        hint: &'static str,
    },

    /// An interface of that name exists but cannot be used as a multi-queue
    /// vnet-header TAP (or TUN).
    #[error("interface {name:?} exists but is not a multi-queue {want} with vnet headers (it may be of the other kind, single-queue, or not a tun/tap at all): pick another name or delete it")]
    IncompatibleInterface {
        /// The interface name.
        name: String,
        /// What was wanted: `TAP` or `TUN`.
        want: &'static str,
    },

    /// An fd given to adopt is not a usable TUN/TAP queue.
    #[error("fd {fd} is not a usable TUN/TAP queue: {why}")]
    NotTunQueue {
        /// The fd number as given.
        fd: i32,
        /// What is wrong with it.
        why: String,
    },

    /// The kernel's tun driver lacks a feature rtap needs.
    #[error("the kernel's tun driver lacks {feature}: a newer kernel is required")]
    MissingTunFeature {
        /// The missing feature flag, by name.
        feature: &'static str,
    },

    /// Queue count is 0 or above the maximum.
    #[error("queue count {count} out of range: must be 1..={max}")]
    QueueCountOutOfRange {
        /// The requested count.
        count: u16,
        /// The maximum supported.
        max: u16,
    },

    /// A queue index beyond the configured count.
    #[error("queue {queue} does not exist: the port has {count} queue(s)")]
    NoSuchQueue {
        /// The requested index.
        queue: u16,
        /// The configured count.
        count: u16,
    },

    /// The queue is already handed out.
    #[error("{dir} queue {queue} is already in use: drop the existing handle first")]
    QueueBusy {
        /// "rx" or "tx".
        dir: &'static str,
        /// The queue index.
        queue: u16,
    },

    /// An operation that needs a stopped port (or released queues) was called on a running one.
    #[error("{op} needs the port stopped and every queue handle dropped ({live} still alive)")]
    PortBusy {
        /// The operation.
        op: &'static str,
        /// Queue handles still alive.
        live: usize,
    },

    /// An operation that needs a started port was called on a stopped one.
    #[error("{op}: the port is not started: call start() first")]
    NotStarted {
        /// The operation.
        op: &'static str,
    },

    /// The interface disappeared (deleted with `ip link del`, or its namespace went away).
    #[error("interface {name:?} (ifindex {ifindex}) vanished: it was deleted or its namespace was destroyed; close the port")]
    DeviceVanished {
        /// Last known name.
        name: String,
        /// The ifindex the port was bound to.
        ifindex: u32,
    },

    /// io_uring cannot be used.
    #[error("io_uring is unavailable ({why}): use backend=rw, or enable it (sysctl kernel.io_uring_disabled=0, allow io_uring_setup in seccomp)")]
    UringUnavailable {
        /// Why it failed.
        why: String,
    },

    /// The kernel is too old for something that was explicitly requested.
    #[error("{feature} is not supported by this kernel: {hint}")]
    Unsupported {
        /// The feature.
        feature: &'static str,
        /// What to do.
        hint: &'static str,
    },

    /// A configuration value out of its range (named by `field`).
    #[error("invalid {field}: {why}")]
    InvalidConfig {
        /// The setting at fault, as its setter or spec key is named.
        field: &'static str,
        /// The value and the rule it breaks.
        why: String,
    },

    /// The pool has too few free buffers for what a queue needs to keep in the kernel.
    #[error("{what} needs {needed} free pool buffers but the pool has {available}: enlarge the pool or lower rx_posted")]
    PoolTooSmall {
        /// What needed them.
        what: &'static str,
        /// Buffers needed.
        needed: usize,
        /// Buffers free in the pool.
        available: usize,
    },

    /// Multishot receive needs a whole frame in one pool buffer.
    #[error("rx_mode multishot needs each buffer to hold a whole frame: {room} bytes after headroom, frames up to {max_frame} bytes; use rx_mode auto or posted, or larger buffers")]
    FrameExceedsBuffer {
        /// Bytes a buffer holds after its headroom.
        room: usize,
        /// Largest frame the queue must take.
        max_frame: usize,
    },

    /// The MTU is outside what the device allows.
    #[error("MTU {mtu} is out of this device's range {min}..={max}")]
    MtuOutOfRange {
        /// The MTU asked for.
        mtu: u32,
        /// The device's minimum.
        min: u32,
        /// The device's maximum.
        max: u32,
    },

    /// A MAC address an interface cannot take (multicast or all-zero).
    #[error("{mac} is not a unicast MAC address: an interface needs one (first octet even, not all zero)")]
    NotUnicastMac {
        /// The address.
        mac: crate::wire::mac::MacAddr,
    },

    /// The interface reports no MAC address (it is not an Ethernet-like device).
    #[error("interface {name:?} has no MAC address")]
    NoMacAddress {
        /// The interface.
        name: String,
    },

    /// The network namespace to open does not exist or its name is not usable.
    #[error("network namespace {netns}: {why}")]
    BadNetns {
        /// The namespace as given.
        netns: String,
        /// What is wrong (missing: create it with `ip netns add`).
        why: &'static str,
    },

    /// A multi-thread queue handle ([`crate::mt`]) was used after its driver
    /// thread stopped: the queue was stopped, or it failed (the reason).
    #[error("the queue's driver thread stopped: {why}")]
    QueueStopped {
        /// Why: stopped, or the error that ended it (a vanished device, ...).
        why: String,
    },

    /// An async queue was made outside a tokio runtime with its I/O driver.
    #[error("async queues must be created inside a tokio runtime with its I/O driver enabled")]
    NoAsyncRuntime,

    /// A packet edit reached past the packet's bytes.
    #[error("cannot {op} {n} bytes: the packet's first segment has {len}")]
    PacketTooShort {
        /// The edit.
        op: &'static str,
        /// Bytes asked for.
        n: usize,
        /// Bytes there.
        len: usize,
    },

    /// The buffer pool ran out of buffers.
    #[error("buffer pool exhausted: all {count} buffers are in use; make the pool bigger or free packets sooner")]
    PoolExhausted {
        /// Pool size.
        count: u32,
    },

    /// A packet was to grow with new buffers on a thread other than its
    /// pool's (buffers are taken from a pool on its own thread only).
    #[error("packet needs {need} more buffer(s), taken from its pool on the pool's thread only: append there, or allocate room first (Pool::alloc_from)")]
    PoolElsewhere {
        /// Buffers it needed.
        need: usize,
    },

    /// The packet does not fit.
    #[error("packet of {len} bytes is too large: limit is {max}")]
    PacketTooLarge {
        /// Requested length.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// A netlink request failed.
    #[error("netlink {op} on ifindex {ifindex}: {source}")]
    Netlink {
        /// The operation.
        op: &'static str,
        /// The interface.
        ifindex: u32,
        /// The errno or decoding error.
        #[source]
        source: io::Error,
    },

    /// A port spec string could not be parsed.
    #[error("port spec {spec:?}: key `{key}`: {why}")]
    Spec {
        /// The whole spec.
        spec: String,
        /// The key at fault.
        key: String,
        /// What is wrong.
        why: String,
    },

    /// Zero-copy receive cannot be set up on this kernel or by this process.
    #[error("zero-copy receive (io_uring zcrx) unavailable: {why}")]
    ZcrxUnavailable {
        /// What is missing and what to do.
        why: String,
    },

    /// The device (or its queue) cannot do zero-copy receive.
    #[error("zero-copy receive on {iface} queue {queue}: {why}")]
    ZcrxDevice {
        /// The interface.
        iface: String,
        /// The hardware rx queue.
        queue: u32,
        /// What the device lacks and what to change.
        why: String,
    },

    /// No process serves a port at that socket.
    #[error("no port served at {name}: {why} (is the serving process running with that socket, e.g. `rtap fwd ... --serve {name}`?)")]
    ShareUnavailable {
        /// The socket path or `@abstract` name.
        name: String,
        /// What connecting said.
        why: String,
    },

    /// The serving process refused the request.
    #[error("the port served at {name} refused: {why}")]
    ShareRefused {
        /// The socket path or `@abstract` name.
        name: String,
        /// The server's reason (credentials, a malformed request...).
        why: String,
    },

    /// A queue of a served port is held by someone else.
    #[error("queue {queue} of the served port is taken: {holder}; attach another queue or wait until it is released")]
    SharedQueueTaken {
        /// The queue (the serving port's numbering).
        queue: u16,
        /// Who holds it.
        holder: String,
    },

    /// Giving the interface an address or a route failed (the kernel's
    /// reason: a route to a prefix another interface has, an IPv6 address
    /// where IPv6 is disabled, ...).
    #[error("{op} {prefix} on {iface}: {source}")]
    InterfaceConfig {
        /// `add address` or `add route`.
        op: &'static str,
        /// The address or route.
        prefix: crate::wire::prefix::IpPrefix,
        /// The interface.
        iface: String,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },

    /// Link control on a port attached to another process's port.
    #[error("{op}: this port is attached to another process's port (shared:), which keeps control of the link; change it there")]
    NotLinkOwner {
        /// The operation refused.
        op: &'static str,
    },

    /// Any other system call failure, with the call named.
    #[error("{op}: {source}")]
    Sys {
        /// The failing call.
        op: &'static str,
        /// The errno.
        #[source]
        source: io::Error,
    },
}

/// What lifts a refusal of a link or namespace operation.
pub(crate) const NEEDS_NET_ADMIN: &str = "run as root or grant CAP_NET_ADMIN";

impl Error {
    /// Wraps an `io::Error` from the named call, mapping EPERM/EACCES to
    /// [`Error::PermissionDenied`] (saying `CAP_NET_ADMIN` lifts it: a device
    /// whose call needs another capability maps the error itself).
    pub(crate) fn sys(op: &'static str, source: io::Error) -> Self {
        Error::sys_or(op, NEEDS_NET_ADMIN, source)
    }

    /// As [`Error::sys`], with what lifts a refusal of this call.
    pub(crate) fn sys_or(op: &'static str, hint: &'static str, source: io::Error) -> Self {
        match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => Error::PermissionDenied { op, hint },
            _ => Error::Sys { op, source },
        }
    }
}
