//! The io_uring zero-copy receive (zcrx) kernel ABI, as of Linux 7.2/7.3, which the
//! `io-uring` crate (0.7) does not carry: the registration, area, region, control
//! and query structures, their constants, and the `io_uring_register(2)` calls
//! that take them.
//!
//! Layouts are checked at compile time against the sizes the kernel's uapi
//! headers give; every reserved field is zero when handed to the kernel (the
//! kernel refuses anything else). Nothing here interprets the results: that is
//! `crate::zcrx`'s job.

use std::io;
use std::os::fd::RawFd;

/// `IORING_REGISTER_ZCRX_IFQ`: register (or import) an interface queue on a ring.
pub const REGISTER_ZCRX_IFQ: u32 = 32;
/// `IORING_REGISTER_QUERY`: ask what the kernel supports (no ring needed, fd -1).
pub const REGISTER_QUERY: u32 = 35;
/// `IORING_REGISTER_ZCRX_CTRL`: control operations on a registered zcrx instance.
pub const REGISTER_ZCRX_CTRL: u32 = 36;

/// Query op: the io_uring opcodes, setup flags and features (`IO_URING_QUERY_OPCODES`).
pub const QUERY_OPCODES: u32 = 0;
/// Query op: what zcrx supports (`IO_URING_QUERY_ZCRX`).
pub const QUERY_ZCRX: u32 = 1;
/// Query op: zcrx events and statistics (`IO_URING_QUERY_ZCRX_EVENT`).
pub const QUERY_ZCRX_EVENT: u32 = 3;

/// Registration flag: attach an ifq exported from another ring (`ZCRX_REG_IMPORT`).
pub const REG_IMPORT: u32 = 1;
/// Registration flag: no network device; every byte is copied (`ZCRX_REG_NODEV`, 7.1+).
pub const REG_NODEV: u32 = 2;

/// Feature bit: the rx buffer size can be chosen (`ZCRX_FEATURE_RX_PAGE_SIZE`).
pub const FEATURE_RX_PAGE_SIZE: u32 = 1;
/// Feature bit: event descriptors and statistics (`ZCRX_FEATURE_EVENT`).
pub const FEATURE_EVENT: u32 = 2;

/// Event descriptor flag: `stats_offset` names where the kernel keeps [`ZcrxStats`].
pub const EVENT_DESC_FLAG_STATS: u32 = 1;

/// Control op: make the kernel take refill entries now (`ZCRX_CTRL_FLUSH_RQ`).
pub const CTRL_FLUSH_RQ: u32 = 0;
/// Control op: export the ifq as a file descriptor (`ZCRX_CTRL_EXPORT`).
pub const CTRL_EXPORT: u32 = 1;

/// Region type: memory the caller allocated (`IORING_MEM_REGION_TYPE_USER`).
pub const MEM_REGION_TYPE_USER: u32 = 1;

/// Bit at which a CQE's buffer offset carries the area id (`IORING_ZCRX_AREA_SHIFT`).
pub const AREA_SHIFT: u32 = 48;
/// Mask of the area-id bits of an offset.
pub const AREA_MASK: u64 = !((1u64 << AREA_SHIFT) - 1);

/// `struct io_uring_query_hdr`: one link of a query chain.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct QueryHdr {
    /// Address of the next header, or 0.
    pub next_entry: u64,
    /// Address of the op's result structure.
    pub query_data: u64,
    /// `QUERY_*`.
    pub query_op: u32,
    /// Bytes of the result structure the caller provides.
    pub size: u32,
    /// Set by the kernel: 0, or a negative errno.
    pub result: i32,
    /// Reserved, zero.
    pub resv: [u32; 3],
}

/// `struct io_uring_query_opcode`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct QueryOpcodes {
    /// Number of `IORING_OP_*` opcodes the kernel knows.
    pub nr_request_opcodes: u32,
    /// Number of `IORING_REGISTER_*` opcodes.
    pub nr_register_opcodes: u32,
    /// `IORING_FEAT_*` bits.
    pub feature_flags: u64,
    /// `IORING_SETUP_*` bits.
    pub ring_setup_flags: u64,
    /// `IORING_ENTER_*` bits.
    pub enter_flags: u64,
    /// `IOSQE_*` bits.
    pub sqe_flags: u64,
    /// Number of query ops.
    pub nr_query_opcodes: u32,
    /// Padding.
    pub pad: u32,
}

/// `struct io_uring_query_zcrx`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct QueryZcrx {
    /// `ZCRX_REG_*` bits supported.
    pub register_flags: u64,
    /// `IORING_ZCRX_AREA_*` bits supported.
    pub area_flags: u64,
    /// Number of `ZCRX_CTRL_*` ops.
    pub nr_ctrl_opcodes: u32,
    /// `ZCRX_FEATURE_*` bits.
    pub features: u32,
    /// Size of the refill ring's header.
    pub rq_hdr_size: u32,
    /// Alignment of that header.
    pub rq_hdr_alignment: u32,
    /// Reserved.
    pub resv: u64,
}

/// `struct io_uring_query_zcrx_event`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct QueryZcrxEvent {
    /// Event types supported.
    pub event_flags: u32,
    /// Size of `struct zcrx_stats`.
    pub stats_size: u32,
    /// Alignment `stats_offset` needs.
    pub stats_off_alignment: u32,
    /// Reserved.
    pub resv1: u32,
    /// Reserved.
    pub resv2: [u64; 4],
}

/// `struct io_uring_region_desc`: memory for the refill ring.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RegionDesc {
    /// Address of caller memory (with [`MEM_REGION_TYPE_USER`]).
    pub user_addr: u64,
    /// Bytes.
    pub size: u64,
    /// `IORING_MEM_REGION_TYPE_*`.
    pub flags: u32,
    /// Region id (zero here).
    pub id: u32,
    /// Set by the kernel for kernel-allocated regions.
    pub mmap_offset: u64,
    /// Reserved, zero.
    pub resv: [u64; 4],
}

/// `struct io_uring_zcrx_area_reg`: the memory buffers are carved from.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct AreaReg {
    /// Page-aligned address.
    pub addr: u64,
    /// Bytes, a multiple of the page size.
    pub len: u64,
    /// Set by the kernel: the token refill entries carry in their area bits.
    pub rq_area_token: u64,
    /// `IORING_ZCRX_AREA_*`.
    pub flags: u32,
    /// dma-buf fd with `IORING_ZCRX_AREA_DMABUF`.
    pub dmabuf_fd: u32,
    /// Reserved, zero.
    pub resv2: [u64; 2],
}

/// `struct io_uring_zcrx_offsets`: where the refill ring's parts lie in its region.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RqOffsets {
    /// Offset of the head (kernel-written).
    pub head: u32,
    /// Offset of the tail (user-written).
    pub tail: u32,
    /// Offset of the entries.
    pub rqes: u32,
    /// Reserved.
    pub resv2: u32,
    /// Reserved.
    pub resv: [u64; 2],
}

/// `struct io_uring_zcrx_ifq_reg`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IfqReg {
    /// Interface index (device mode), the exported fd (import), 0 (no device).
    pub if_idx: u32,
    /// Hardware rx queue (device mode), else 0.
    pub if_rxq: u32,
    /// Refill ring entries (a power of two; the kernel may round it).
    pub rq_entries: u32,
    /// `ZCRX_REG_*`.
    pub flags: u32,
    /// Address of an [`AreaReg`].
    pub area_ptr: u64,
    /// Address of a [`RegionDesc`].
    pub region_ptr: u64,
    /// Set by the kernel.
    pub offsets: RqOffsets,
    /// Set by the kernel: the id `RECV_ZC` and control ops name.
    pub zcrx_id: u32,
    /// Buffer size wanted (0: the default); set by the kernel to the one used.
    pub rx_buf_len: u32,
    /// Address of an [`EventDesc`], or 0.
    pub event_desc: u64,
    /// Reserved, zero.
    pub resv: [u64; 2],
}

/// `struct zcrx_event_desc`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EventDesc {
    /// user_data of event completions.
    pub user_data: u64,
    /// Event types wanted.
    pub type_mask: u32,
    /// `ZCRX_EVENT_DESC_FLAG_*`.
    pub flags: u32,
    /// Offset in the refill region where the kernel keeps [`ZcrxStats`].
    pub stats_offset: u64,
    /// Reserved, zero.
    pub resv2: [u64; 9],
}

/// `struct zcrx_stats`, kept by the kernel in the refill region.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ZcrxStats {
    /// Completions whose data was copied.
    pub copy_count: u64,
    /// Bytes copied.
    pub copy_bytes: u64,
}

/// `struct io_uring_zcrx_rqe`: one refill entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Rqe {
    /// Buffer offset within its area, with the area token in the high bits.
    pub off: u64,
    /// Length (informational).
    pub len: u32,
    /// Padding.
    pub pad: u32,
}

/// `struct zcrx_ctrl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Ctrl {
    /// The zcrx instance.
    pub zcrx_id: u32,
    /// `ZCRX_CTRL_*`.
    pub op: u32,
    /// Reserved, zero.
    pub resv: [u64; 2],
    /// The op's argument; for export, the first u32 is set to the new fd.
    pub arg: [u32; 12],
}

static_assertions::const_assert_eq!(std::mem::size_of::<QueryHdr>(), 40);
static_assertions::const_assert_eq!(std::mem::size_of::<QueryOpcodes>(), 48);
static_assertions::const_assert_eq!(std::mem::size_of::<QueryZcrx>(), 40);
static_assertions::const_assert_eq!(std::mem::size_of::<QueryZcrxEvent>(), 48);
static_assertions::const_assert_eq!(std::mem::size_of::<RegionDesc>(), 64);
static_assertions::const_assert_eq!(std::mem::size_of::<AreaReg>(), 48);
static_assertions::const_assert_eq!(std::mem::size_of::<RqOffsets>(), 32);
static_assertions::const_assert_eq!(std::mem::size_of::<IfqReg>(), 96);
static_assertions::const_assert_eq!(std::mem::size_of::<EventDesc>(), 96);
static_assertions::const_assert_eq!(std::mem::size_of::<Rqe>(), 16);
static_assertions::const_assert_eq!(std::mem::size_of::<Ctrl>(), 72);

/// `io_uring_register(fd, op, arg, nr)`, returning the non-negative result.
///
/// # Safety
/// `arg` must point to what `op` expects (`nr` of them), valid for reads and
/// writes for the duration of the call.
unsafe fn register(fd: RawFd, op: u32, arg: *mut libc::c_void, nr: u32) -> io::Result<i32> {
    // SAFETY: forwarded to the caller: arg is valid for op.
    let r = unsafe { libc::syscall(libc::SYS_io_uring_register, fd, op, arg, nr) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as i32)
    }
}

/// One query op, without a ring. `Err` when the kernel lacks `IORING_REGISTER_QUERY`
/// (EINVAL before 6.18) or the op (the header's `result`, e.g. EOPNOTSUPP).
fn query<T: Copy + Default>(op: u32) -> io::Result<T> {
    let mut out = T::default();
    let mut hdr = QueryHdr {
        query_data: std::ptr::addr_of_mut!(out) as u64,
        query_op: op,
        size: std::mem::size_of::<T>() as u32,
        ..Default::default()
    };
    // SAFETY: hdr is a lone query header (next_entry 0) pointing at `out`, whose
    // size it states; both live across the call. fd -1: no ring needed; nr 0:
    // the chain's length is given by next_entry.
    unsafe { register(-1, REGISTER_QUERY, std::ptr::addr_of_mut!(hdr).cast(), 0) }?;
    if hdr.result < 0 {
        return Err(io::Error::from_raw_os_error(-hdr.result));
    }
    Ok(out)
}

/// What the kernel's io_uring supports (`QUERY_OPCODES`).
pub fn query_opcodes() -> io::Result<QueryOpcodes> {
    query(QUERY_OPCODES)
}

/// What zcrx supports (`QUERY_ZCRX`).
pub fn query_zcrx() -> io::Result<QueryZcrx> {
    query(QUERY_ZCRX)
}

/// zcrx events and statistics (`QUERY_ZCRX_EVENT`).
pub fn query_zcrx_event() -> io::Result<QueryZcrxEvent> {
    query(QUERY_ZCRX_EVENT)
}

/// `IORING_REGISTER_ZCRX_IFQ` on ring `ring`. The kernel writes its results
/// (offsets, zcrx_id, rx_buf_len, the area token) back into `reg` and `area`.
///
/// # Safety
/// `reg.area_ptr`, `reg.region_ptr` and `reg.event_desc` (where set) must point to
/// live structures (`area` among them), and the memory they describe must stay
/// mapped for as long as the kernel may use it (until every ring holding the ifq
/// is closed).
pub unsafe fn register_ifq(ring: RawFd, reg: &mut IfqReg) -> io::Result<()> {
    // SAFETY: reg is a live, writable IfqReg; the pointers in it are the caller's promise.
    unsafe { register(ring, REGISTER_ZCRX_IFQ, (reg as *mut IfqReg).cast(), 1) }.map(drop)
}

/// `IORING_REGISTER_ZCRX_CTRL`; returns the call's result (0). Export writes the
/// new fd into `c.arg[0]`.
pub fn ctrl(ring: RawFd, c: &mut Ctrl) -> io::Result<i32> {
    // SAFETY: c is a live, writable Ctrl, the structure this op takes (nr 0: the
    // kernel reads a fixed-size struct).
    unsafe { register(ring, REGISTER_ZCRX_CTRL, (c as *mut Ctrl).cast(), 0) }
}
