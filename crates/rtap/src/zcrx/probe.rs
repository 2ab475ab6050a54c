//! What the running kernel offers for zero-copy receive, asked with
//! `IORING_REGISTER_QUERY` (no ring needed) and the io_uring opcode probe.

use crate::sys::zcrx as abi;

/// What zcrx the kernel offers; `rtap info` prints it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ZcrxProbe {
    /// io_uring can be used at all.
    pub uring: bool,
    /// `IORING_OP_RECV_ZC` exists (Linux 6.15+): device mode is possible with a
    /// NIC that supports it.
    pub recv_zc: bool,
    /// `IORING_REGISTER_QUERY` answered (Linux 6.18+).
    pub query: bool,
    /// The zcrx query answered (what the flags below come from).
    pub zcrx_query: bool,
    /// Device-less copy mode (`ZCRX_REG_NODEV`, Linux 7.1+).
    pub nodev: bool,
    /// An interface queue can be exported to other rings (`ZCRX_REG_IMPORT`).
    pub import: bool,
    /// The buffer size can be chosen (`ZCRX_FEATURE_RX_PAGE_SIZE`).
    pub rx_buf_len: bool,
    /// Kernel statistics (`ZCRX_FEATURE_EVENT`: copy counts).
    pub stats: bool,
    /// Control ops the kernel knows (`FLUSH_RQ`, `EXPORT`, ...).
    pub ctrl_ops: u32,
    /// Size of the refill ring's header (it differs between kernels).
    pub rq_hdr_size: u32,
    /// Why device-less zcrx cannot be used, if it cannot.
    pub nodev_unavailable: Option<String>,
    /// Why device-mode zcrx cannot be used, if the kernel alone rules it out.
    pub device_unavailable: Option<String>,
}

/// Asks the kernel.
pub fn probe() -> ZcrxProbe {
    let u = crate::backend::uring::probe();
    let mut p = ZcrxProbe {
        uring: u.available,
        recv_zc: u.recv_zc,
        ..Default::default()
    };
    let kernel = crate::sys::kernel_version()
        .map(|(a, b)| format!("Linux {a}.{b}"))
        .unwrap_or_else(|| "this kernel".into());
    if !u.available {
        let why = format!("io_uring is unavailable ({})", u.error.unwrap_or_default());
        p.nodev_unavailable = Some(why.clone());
        p.device_unavailable = Some(why);
        return p;
    }
    if !p.recv_zc {
        p.device_unavailable = Some(format!(
            "{kernel} has no IORING_OP_RECV_ZC: zero-copy receive needs Linux >= 6.15"
        ));
    }
    p.query = abi::query_opcodes().is_ok();
    match abi::query_zcrx() {
        Ok(z) => {
            p.zcrx_query = true;
            p.nodev = z.register_flags & u64::from(abi::REG_NODEV) != 0;
            p.import = z.register_flags & u64::from(abi::REG_IMPORT) != 0;
            p.rx_buf_len = z.features & abi::FEATURE_RX_PAGE_SIZE != 0;
            p.stats = z.features & abi::FEATURE_EVENT != 0 && abi::query_zcrx_event().is_ok();
            p.ctrl_ops = z.nr_ctrl_opcodes;
            p.rq_hdr_size = z.rq_hdr_size;
        }
        Err(e) => {
            p.nodev_unavailable = Some(if p.query {
                format!("{kernel} answers no zcrx query ({e}): device-less zcrx needs Linux >= 7.1")
            } else {
                format!(
                    "{kernel} has no IORING_REGISTER_QUERY: device-less zcrx needs Linux >= 7.1"
                )
            });
        }
    }
    if p.zcrx_query && !p.nodev {
        p.nodev_unavailable = Some(format!(
            "{kernel} does not offer ZCRX_REG_NODEV: device-less zcrx needs Linux >= 7.1"
        ));
    }
    p
}
