//! Memory pages: their size, and the whole pages within a range, for the
//! `madvise` calls of the file mapping and the allocator (a page shared
//! with a neighbouring range is left alone).

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
