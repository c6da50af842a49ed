//! Memory pages: their size, the whole pages within a range, and
//! populating them, for the `madvise` calls of the file mapping, the
//! allocator and the duplicate window (a page shared with a neighbouring
//! range is left alone).

/// The system's page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).unwrap_or(4096).max(1)
}

/// The whole pages of `page` bytes within `start..end`, as `first..last`
/// (empty, `last <= first`, when there are none).
pub fn whole_pages(start: usize, end: usize, page: usize) -> (usize, usize) {
    (start.div_ceil(page) * page, end / page * page)
}

/// Give `advice` on the whole pages within `[start, end)` (addresses), in
/// one call. Best effort: a refused call changes nothing.
///
/// # Safety
/// The advice must not change what any byte of the range reads as, to
/// anything that may still read it.
pub unsafe fn advise(start: usize, end: usize, advice: libc::c_int) {
    let (a, b) = whole_pages(start, end, page_size());
    if b > a {
        // SAFETY: the caller's contract; a range that is not (or no longer)
        // mapped makes the call fail, nothing more.
        unsafe {
            libc::madvise(a as *mut libc::c_void, b - a, advice);
        }
    }
}

/// Bytes one populating call takes: the call holds the process's
/// memory-map lock, and one call over a whole 16 MiB table kept the other
/// threads from mapping memory meanwhile.
const POPULATE_STEP: usize = 256 << 10;

/// Populate the whole pages inside `[start, start + len)` for writing, a
/// step at a time: the kernel gives them real memory now instead of one
/// page fault at a time later, and memory that is read before it is
/// written is not first mapped to the shared zero page (whose later
/// copy-on-write flushes every core's TLB). The pages keep what they
/// hold. Best effort: a kernel without `MADV_POPULATE_WRITE` (before
/// 5.14) refuses it, and the pages fault in as before.
pub fn populate_for_writing(start: usize, len: usize) {
    // Steps from page boundaries, so none leaves a page out between them.
    let (mut at, end) = whole_pages(start, start.saturating_add(len), page_size());
    while at < end {
        let step_end = at.saturating_add(POPULATE_STEP).min(end);
        #[cfg(target_os = "linux")]
        // SAFETY: populating changes no memory's contents.
        unsafe {
            advise(at, step_end, libc::MADV_POPULATE_WRITE);
        }
        at = step_end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_pages_keeps_whole_pages_only() {
        const PAGE: usize = 4096;
        for (start, end, want) in [
            (0, 0, (0, 0)),
            (0, PAGE, (0, PAGE)),
            (1, PAGE + 1, (PAGE, PAGE)),
            (100, 3 * PAGE + 100, (PAGE, 3 * PAGE)),
            (PAGE, 3 * PAGE + 5, (PAGE, 3 * PAGE)),
            (PAGE - 1, PAGE + 1, (PAGE, PAGE)),
        ] {
            assert_eq!(whole_pages(start, end, PAGE), want, "{start}..{end}");
        }
    }
}
