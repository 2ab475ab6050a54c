//! The few `bpf(2)` commands an XDP port needs (`include/uapi/linux/bpf.h`),
//! which no crate rtap uses wraps without a C library: create an XSKMAP, put a
//! socket into it, load a program from instructions, attach it to an
//! interface through a BPF link (which detaches when its fd closes), and open
//! a map pinned in bpffs. `union bpf_attr` is built as a zeroed 128-byte
//! block with each command's fields at the kernel's offsets; the kernel reads
//! what it knows and requires the rest to be zero.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Commands.
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_GET: libc::c_long = 7;
#[cfg(any(test, fuzzing))]
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_LINK_UPDATE: libc::c_long = 29;

/// `BPF_MAP_TYPE_XSKMAP`.
pub const MAP_TYPE_XSKMAP: u32 = 17;
/// `BPF_PROG_TYPE_XDP`.
pub const PROG_TYPE_XDP: u32 = 6;
/// `BPF_XDP`, the attach type of XDP programs and links.
pub const ATTACH_XDP: u32 = 37;
/// XDP attach modes (`XDP_FLAGS_*`).
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// A zeroed `union bpf_attr`, filled field by field.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }

    fn u32(mut self, off: usize, v: u32) -> Attr {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }

    fn u64(mut self, off: usize, v: u64) -> Attr {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }

    fn bytes(mut self, off: usize, b: &[u8]) -> Attr {
        self.0[off..off + b.len()].copy_from_slice(b);
        self
    }
}

/// `bpf(cmd, attr, size)`; the non-negative result.
///
/// # Safety
/// Every pointer `attr` carries must be valid for what `cmd` does with it for
/// the duration of the call.
unsafe fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: attr is a live 128-byte block; the caller vouches for the
    // pointers inside it.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut Attr, 128usize) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r)
}

/// Takes a new fd the kernel returned.
fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just installed fd for us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A kernel object name: at most 15 bytes, NUL-padded.
fn name16(name: &str) -> [u8; 16] {
    let mut n = [0u8; 16];
    for (d, s) in n.iter_mut().zip(name.bytes().take(15)) {
        *d = s;
    }
    n
}

/// An XSKMAP of `entries` slots (a queue index each).
pub fn xskmap_create(name: &str, entries: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new()
        .u32(0, MAP_TYPE_XSKMAP)
        .u32(4, 4) // key: the queue index
        .u32(8, 4) // value: the socket fd
        .u32(12, entries)
        .bytes(28, &name16(name));
    // SAFETY: the attribute block carries no pointers.
    owned(unsafe { bpf(BPF_MAP_CREATE, &mut a) }?)
}

/// Puts `value` (an fd) at `key` of `map`.
pub fn map_update_u32(map: BorrowedFd<'_>, key: u32, value: u32) -> io::Result<()> {
    let (k, v) = (key, value);
    let mut a = Attr::new()
        .u32(0, map.as_raw_fd() as u32)
        .u64(8, &k as *const u32 as u64)
        .u64(16, &v as *const u32 as u64);
    // SAFETY: k and v live on this stack frame across the call; the kernel
    // reads 4 bytes of each (the map's key and value sizes).
    unsafe { bpf(BPF_MAP_UPDATE_ELEM, &mut a) }.map(drop)
}

/// Loads an XDP program from raw instructions (8 bytes each). On a refusal,
/// the verifier's log, if it gave one, comes with the error.
pub fn prog_load_xdp(
    name: &str,
    insns: &[u64],
    frags: bool,
) -> Result<OwnedFd, (io::Error, String)> {
    let license = b"GPL\0";
    let mut log = vec![0u8; 64 << 10];
    let load = |log: Option<&mut [u8]>| {
        let (level, ptr, len) = match log {
            Some(l) => (1u32, l.as_mut_ptr() as u64, l.len() as u32),
            None => (0, 0, 0),
        };
        let mut a = Attr::new()
            .u32(0, PROG_TYPE_XDP)
            .u32(4, insns.len() as u32)
            .u64(8, insns.as_ptr() as u64)
            .u64(16, license.as_ptr() as u64)
            .u32(24, level)
            .u32(28, len)
            .u64(32, ptr)
            // BPF_F_XDP_HAS_FRAGS: the program handles multi-buffer frames.
            .u32(44, if frags { 1 << 5 } else { 0 })
            .bytes(48, &name16(name))
            .u32(68, ATTACH_XDP);
        // SAFETY: insns, license and log outlive the call; the kernel reads
        // insn_cnt instructions, the NUL-terminated license, and writes at
        // most log_size bytes of log.
        unsafe { bpf(BPF_PROG_LOAD, &mut a) }
    };
    match load(None) {
        Ok(fd) => owned(fd).map_err(|e| (e, String::new())),
        Err(e) => {
            // Again with the verifier's log, to say why.
            let _ = load(Some(&mut log));
            let end = log.iter().position(|&b| b == 0).unwrap_or(0);
            Err((e, String::from_utf8_lossy(&log[..end]).trim().to_string()))
        }
    }
}

/// Attaches program `prog` to interface `ifindex` in mode `flags`
/// (`XDP_FLAGS_*`, or 0 for the kernel's choice) through a BPF link: the
/// program stays attached for as long as the returned fd is open.
pub fn link_create_xdp(prog: BorrowedFd<'_>, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new()
        .u32(0, prog.as_raw_fd() as u32)
        .u32(4, ifindex)
        .u32(8, ATTACH_XDP)
        .u32(12, flags);
    // SAFETY: the attribute block carries no pointers.
    owned(unsafe { bpf(BPF_LINK_CREATE, &mut a) }?)
}

/// Puts program `prog` in the place of the one BPF link `link` keeps
/// attached, atomically (frames meet the old program or the new one).
pub fn link_update(link: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut a = Attr::new()
        .u32(0, link.as_raw_fd() as u32)
        .u32(4, prog.as_raw_fd() as u32);
    // SAFETY: the attribute block carries no pointers.
    unsafe { bpf(BPF_LINK_UPDATE, &mut a) }.map(drop)
}

/// Runs XDP program `prog` once on a copy of `frame` (14 bytes up to about a
/// page), attached to nothing (`BPF_PROG_TEST_RUN`): the action it returns.
#[cfg(any(test, fuzzing))]
pub fn prog_test_run(prog: BorrowedFd<'_>, frame: &[u8]) -> io::Result<u32> {
    let mut a = Attr::new()
        .u32(0, prog.as_raw_fd() as u32)
        .u32(8, frame.len() as u32)
        .u64(16, frame.as_ptr() as u64)
        .u32(32, 1); // repeat
                     // SAFETY: frame outlives the call; the kernel copies data_size_in bytes
                     // from it and, with no data_out, writes nothing back but the attribute
                     // block.
    unsafe { bpf(BPF_PROG_TEST_RUN, &mut a) }?;
    Ok(u32::from_ne_bytes(a.0[4..8].try_into().unwrap_or_default()))
}

/// Opens the object pinned at `path` in a bpffs.
pub fn obj_get(path: &str) -> io::Result<OwnedFd> {
    let c = CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut a = Attr::new().u64(0, c.as_ptr() as u64);
    // SAFETY: c is a NUL-terminated string that outlives the call.
    owned(unsafe { bpf(BPF_OBJ_GET, &mut a) }?)
}

/// What the kernel says of a map (`struct bpf_map_info`'s first fields).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapInfo {
    pub map_type: u32,
    pub id: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

/// The type and sizes of the map `fd` refers to.
pub fn map_info(fd: BorrowedFd<'_>) -> io::Result<MapInfo> {
    let mut info = [0u32; 20];
    let mut a = Attr::new()
        .u32(0, fd.as_raw_fd() as u32)
        .u32(4, std::mem::size_of_val(&info) as u32)
        .u64(8, info.as_mut_ptr() as u64);
    // SAFETY: info lives across the call; the kernel writes at most info_len
    // (its size) bytes into it.
    unsafe { bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a) }?;
    Ok(MapInfo {
        map_type: info[0],
        id: info[1],
        key_size: info[2],
        value_size: info[3],
        max_entries: info[4],
    })
}
