//! An input file mapped into memory. Its chunks point into the mapping
//! instead of holding a copy: reading a file through `read` cost a kernel
//! copy of every byte (about 3% of the CPU over a million events) and page
//! faults on the blocks it copied into. Each chunk gives its pages back
//! once it is routed, so the mapping holds no more memory than the blocks
//! it replaces (peak RSS counts mapped file pages too).
//!
//! A file truncated while it is mapped makes the next read of a page past
//! its new end fault (SIGBUS); `main` reports that in one line rather than
//! crash without a word. Bytes changed in place while mapped are read as
//! they are then, as `read` would have read them.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::Arc;

/// A whole file, mapped read-only.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is read-only and owned by this value until it is
// dropped; sharing `&[u8]` views of it between threads is sound.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Map the first `len` bytes of `file`; None for an empty file (which
    /// cannot be mapped) or when the file cannot be (the caller reads it
    /// instead).
    pub fn map(file: &File, len: u64) -> Option<Mapping> {
        let len = usize::try_from(len).ok().filter(|&l| l > 0)?;
        // SAFETY: a fresh read-only private mapping of an open file; the
        // kernel picks the address. Failure is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        Some(Mapping {
            ptr: NonNull::new(p.cast())?,
            len,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// Ask the kernel to read `start..end` ahead, so the transform does not
    /// wait on the disk when the file is not cached.
    pub fn will_need(&self, start: usize, end: usize) {
        self.advise(start, end, libc::MADV_WILLNEED);
    }

    /// Give advice on the whole pages within `start..end` (pages shared
    /// with the neighbouring ranges are left alone).
    fn advise(&self, start: usize, end: usize, advice: libc::c_int) {
        let base = self.ptr.as_ptr() as usize;
        // SAFETY: the range lies within the mapping (`end` is clamped to
        // it); advice neither unmaps nor changes what the bytes read as
        // (see `MappedRange`'s `drop`).
        unsafe {
            crate::pages::advise(base + start.min(self.len), base + end.min(self.len), advice)
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping what `map` mapped; no view outlives `self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// The bytes of one chunk within a [`Mapping`].
pub struct MappedRange {
    map: Arc<Mapping>,
    start: usize,
    end: usize,
}

impl MappedRange {
    pub fn new(map: Arc<Mapping>, start: usize, end: usize) -> MappedRange {
        assert!(start <= end && end <= map.len, "a range within the mapping");
        MappedRange { map, start, end }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map.bytes()[self.start..self.end]
    }
}

impl Drop for MappedRange {
    /// The chunk is routed: its pages leave this process (they stay in
    /// the page cache). For a private read-only file mapping, a page
    /// touched again after this is read from the file again, unchanged.
    fn drop(&mut self) {
        self.map.advise(self.start, self.end, libc::MADV_DONTNEED);
    }
}

impl std::fmt::Debug for MappedRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MappedRange({}..{})", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::page_size;

    #[test]
    fn ranges_read_the_file_and_survive_release() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let content: Vec<u8> = (0..3 * page_size() + 17).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &content).unwrap();
        let f = File::open(&p).unwrap();
        assert!(Mapping::map(&f, 0).is_none(), "an empty mapping");
        let map = Arc::new(Mapping::map(&f, content.len() as u64).unwrap());
        // (start, end): within a page, across pages, the whole file
        for (a, b) in [(0, 10), (100, 2 * page_size() + 5), (0, content.len())] {
            let r = MappedRange::new(map.clone(), a, b);
            assert_eq!(r.bytes(), &content[a..b]);
            drop(r);
            // released pages read the same again
            assert_eq!(&map.bytes()[a..b], &content[a..b]);
        }
    }
}
