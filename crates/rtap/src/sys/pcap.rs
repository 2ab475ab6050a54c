//! libpcap's filter compiler (what tcpdump's expressions compile with),
//! loaded at run time with `dlopen` where the library is installed: no C
//! library or header is needed to build rtap, and nothing is linked. Only
//! `pcap_open_dead`, `pcap_compile`, `pcap_geterr`, `pcap_freecode` and
//! `pcap_close` are used: a "dead" handle of a link type compiles offline.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::sync::{Mutex, OnceLock};

/// `struct bpf_insn` (as `struct sock_filter`).
#[repr(C)]
#[derive(Clone, Copy)]
struct BpfInsn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

/// `struct bpf_program`.
#[repr(C)]
struct BpfProgram {
    bf_len: c_uint,
    bf_insns: *mut BpfInsn,
}

type OpenDead = unsafe extern "C" fn(c_int, c_int) -> *mut c_void;
type Compile =
    unsafe extern "C" fn(*mut c_void, *mut BpfProgram, *const c_char, c_int, u32) -> c_int;
type GetErr = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type FreeCode = unsafe extern "C" fn(*mut BpfProgram);
type Close = unsafe extern "C" fn(*mut c_void);

struct Lib {
    open_dead: OpenDead,
    compile: Compile,
    geterr: GetErr,
    freecode: FreeCode,
    close: Close,
}

/// `PCAP_NETMASK_UNKNOWN`.
const NETMASK_UNKNOWN: u32 = 0xffff_ffff;

/// The library's functions, loaded once; `None` if it is not installed.
fn lib() -> Option<&'static Lib> {
    static LIB: OnceLock<Option<Lib>> = OnceLock::new();
    LIB.get_or_init(|| {
        let handle = ["libpcap.so.1", "libpcap.so.0.8", "libpcap.so"]
            .iter()
            .find_map(|name| {
                let c = CString::new(*name).ok()?;
                // SAFETY: dlopen takes a NUL-terminated name; the handle is kept
                // for the process's life (never closed), so the functions found
                // in it stay valid.
                let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
                (!h.is_null()).then_some(h)
            })?;
        let sym = |name: &CStr| {
            // SAFETY: handle is a live dlopen handle, name NUL-terminated.
            let p = unsafe { libc::dlsym(handle, name.as_ptr()) };
            (!p.is_null()).then_some(p)
        };
        let (a, b, c, d, e) = (
            sym(c"pcap_open_dead")?,
            sym(c"pcap_compile")?,
            sym(c"pcap_geterr")?,
            sym(c"pcap_freecode")?,
            sym(c"pcap_close")?,
        );
        // SAFETY: these are libpcap's exported functions of these names, whose C
        // signatures the function types above state (pcap/pcap.h, stable ABI).
        unsafe {
            Some(Lib {
                open_dead: std::mem::transmute::<*mut c_void, OpenDead>(a),
                compile: std::mem::transmute::<*mut c_void, Compile>(b),
                geterr: std::mem::transmute::<*mut c_void, GetErr>(c),
                freecode: std::mem::transmute::<*mut c_void, FreeCode>(d),
                close: std::mem::transmute::<*mut c_void, Close>(e),
            })
        }
    })
    .as_ref()
}

/// Why libpcap did not compile an expression.
#[derive(Debug)]
pub enum PcapError {
    /// The library is not installed (or lacks the functions).
    Missing,
    /// It refused the expression, saying why.
    Refused(String),
}

/// Compiles `expr` for frames of link type `linktype` (`LINKTYPE_*`) into
/// classic BPF instructions `(code, jt, jf, k)`, optimized as tcpdump does.
pub fn compile(
    expr: &str,
    linktype: i32,
    snaplen: i32,
) -> Result<Vec<(u16, u8, u8, u32)>, PcapError> {
    let lib = lib().ok_or(PcapError::Missing)?;
    let c = CString::new(expr)
        .map_err(|_| PcapError::Refused("a NUL byte in the expression".into()))?;
    // Older libpcaps' compilers are not reentrant.
    static ONE: Mutex<()> = Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: plain arguments; the result is checked for null.
    let p = unsafe { (lib.open_dead)(linktype, snaplen) };
    if p.is_null() {
        return Err(PcapError::Refused(format!(
            "pcap_open_dead refused link type {linktype}"
        )));
    }
    let mut prog = BpfProgram {
        bf_len: 0,
        bf_insns: std::ptr::null_mut(),
    };
    // SAFETY: p is a live pcap handle, prog a bpf_program libpcap fills, c a
    // NUL-terminated string that outlives the call.
    let r = unsafe { (lib.compile)(p, &mut prog, c.as_ptr(), 1, NETMASK_UNKNOWN) };
    let out = if r != 0 {
        // SAFETY: pcap_geterr returns a NUL-terminated string owned by p, read
        // before p is closed.
        let why = unsafe { CStr::from_ptr((lib.geterr)(p)) };
        Err(PcapError::Refused(why.to_string_lossy().into_owned()))
    } else {
        let insns = if prog.bf_insns.is_null() {
            Vec::new()
        } else {
            // SAFETY: after a successful pcap_compile, bf_insns points at bf_len
            // instructions libpcap allocated, alive until pcap_freecode.
            unsafe { std::slice::from_raw_parts(prog.bf_insns, prog.bf_len as usize) }
                .iter()
                .map(|i| (i.code, i.jt, i.jf, i.k))
                .collect()
        };
        // SAFETY: prog was filled by pcap_compile and is freed once.
        unsafe { (lib.freecode)(&mut prog) };
        Ok(insns)
    };
    // SAFETY: p is a live handle, closed once, not used after.
    unsafe { (lib.close)(p) };
    out
}
