//! What a receive completion names, checked before anything is read: the piece
//! of the area a zcrx completion points at, or the provided buffer a copy-mode
//! completion fills. Pure functions of the completion's fields and the memory's
//! geometry; a completion that names memory outside what rtap registered (a
//! kernel ABI change, a corrupt CQE) is refused and counted
//! (`ReceiverStats::bad_completions`), never read. The fuzz target `zcrx_cqe`
//! runs them on arbitrary completions.

use crate::sys::zcrx::AREA_MASK;

/// The area rtap registered for one zcrx queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AreaGeom {
    /// The area's token: its id in the top bits of an offset (what the kernel
    /// puts in completions and expects in refill entries).
    pub token: u64,
    /// Bytes in the area.
    pub len: u64,
    /// Bytes per buffer (`net_iov`); every piece lies inside one.
    pub buf_len: u32,
}

/// The (area offset, length) of the piece a zcrx completion names: `word` is
/// the completion's first extra word (`io_uring_zcrx_cqe.off`), `res` its
/// result (bytes received, when positive).
pub(crate) fn zc_piece(word: u64, res: i32, area: AreaGeom) -> Option<(u64, u32)> {
    if res <= 0 || area.buf_len == 0 || word & AREA_MASK != area.token {
        return None;
    }
    let off = word & !AREA_MASK;
    let len = res as u32;
    let end = off.checked_add(u64::from(len))?;
    // Inside the area, and inside the buffer it starts in: the kernel fills
    // one buffer per completion, and takes buffers back whole.
    (end <= area.len && off % u64::from(area.buf_len) + u64::from(len) <= u64::from(area.buf_len))
        .then_some((off, len))
}

/// The (buffer id, length) of a copy-mode completion into a provided buffer
/// ring of `count` buffers of `buf_size` bytes: `bid` the id the completion's
/// flags carry, `res` its result.
pub(crate) fn copy_piece(
    bid: Option<u16>,
    res: i32,
    count: u16,
    buf_size: u32,
) -> Option<(u16, u32)> {
    let bid = bid?;
    (res > 0 && bid < count && res as u32 <= buf_size).then_some((bid, res as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AREA: AreaGeom = AreaGeom {
        token: 1 << 48,
        len: 1 << 20,
        buf_len: 4096,
    };

    #[test]
    fn zc_pieces_inside_one_buffer_of_the_area() {
        let tok = AREA.token;
        assert_eq!(zc_piece(tok | 8192, 100, AREA), Some((8192, 100)));
        assert_eq!(zc_piece(tok | (8192 + 96), 4000, AREA), Some((8288, 4000)));
        // Across a buffer end, past the area, another area, no bytes.
        assert_eq!(zc_piece(tok | (8192 + 97), 4000, AREA), None);
        assert_eq!(zc_piece(tok | ((1 << 20) - 10), 20, AREA), None);
        assert_eq!(zc_piece(2 << 48 | 8192, 100, AREA), None);
        assert_eq!(zc_piece(8192, 100, AREA), None);
        assert_eq!(zc_piece(tok | 8192, 0, AREA), None);
        assert_eq!(zc_piece(tok | 8192, -11, AREA), None);
        assert_eq!(zc_piece(u64::MAX, i32::MAX, AREA), None);
    }

    #[test]
    fn copy_pieces_name_a_buffer_of_the_ring() {
        assert_eq!(copy_piece(Some(3), 100, 8, 2048), Some((3, 100)));
        assert_eq!(copy_piece(Some(8), 100, 8, 2048), None);
        assert_eq!(copy_piece(Some(3), 2049, 8, 2048), None);
        assert_eq!(copy_piece(None, 100, 8, 2048), None);
        assert_eq!(copy_piece(Some(3), -105, 8, 2048), None);
    }
}
