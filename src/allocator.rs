//! The process's allocator: mimalloc, with one change to how large blocks
//! grow.
//!
//! A `Vec` made with room it has not written yet and then grown (Parquet's
//! compressed-page buffer is one: room for the page, then grown to
//! Snappy's bound before anything is written) is copied whole by the
//! reallocation, unwritten room included. Reading pages nothing has
//! written maps them to the kernel's shared zero page; when that memory is
//! reused and written, each page is copied out of the zero page and the
//! old mapping flushed from every core's TLB (an interprocessor
//! interrupt). `perf record -g` put 3.7% of a million-event run's samples
//! in those copies (`do_wp_page`). Before a large block grows, its pages
//! are populated for writing in one call (`MADV_POPULATE_WRITE`), so the
//! copy reads real pages: the samples fell to 1.1%.

use crate::pages::populate_for_writing;
use std::alloc::{GlobalAlloc, Layout};

/// mimalloc, populating a large block's pages before it grows.
pub struct Allocator;

/// Blocks from this size are populated before they grow. Below it the
/// call would cost more than the few page faults it saves (16, 64 and
/// 256 KiB measured: 64 was the fastest).
const POPULATE_MIN: usize = 64 << 10;

// SAFETY: every call goes to mimalloc with the caller's arguments
// unchanged; the only addition (populating pages) changes no memory's contents.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() && layout.size() >= POPULATE_MIN {
            // SAFETY: `ptr` is a live mimalloc block (the caller's contract).
            let usable = unsafe { libmimalloc_sys::mi_usable_size(ptr.cast()) };
            // mimalloc copies the block's usable size, not the layout's.
            populate_for_writing(ptr as usize, usable);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Growing keeps what was written, whether the block was written
    /// wholly, in part or not at all, below and above the populate size.
    #[test]
    fn growing_keeps_the_contents() {
        for size in [1 << 10, POPULATE_MIN - 1, POPULATE_MIN, 1 << 20] {
            for written in [0, size / 3, size] {
                let layout = Layout::from_size_align(size, 8).unwrap();
                // SAFETY: a non-zero layout; the block is written within
                // its size, grown once and freed with its new layout.
                unsafe {
                    let p = Allocator.alloc(layout);
                    assert!(!p.is_null());
                    for i in 0..written {
                        *p.add(i) = (i % 251) as u8;
                    }
                    let q = Allocator.realloc(p, layout, 3 * size);
                    assert!(!q.is_null());
                    for i in 0..written {
                        assert_eq!(
                            *q.add(i),
                            (i % 251) as u8,
                            "size {size} written {written} at {i}"
                        );
                    }
                    // The new room is writable.
                    q.add(3 * size - 1).write(7);
                    Allocator.dealloc(q, Layout::from_size_align(3 * size, 8).unwrap());
                }
            }
        }
    }
}
