//! Prefetch hints, for loops whose next accesses are known but scattered
//! (a partition's column ends, a digest's slot in the duplicate window):
//! asking for the cache lines a few steps ahead overlaps their misses.

/// Ask for the cache lines of `len` bytes from `p`.
#[cfg(target_arch = "x86_64")]
pub fn bytes(p: *const u8, len: usize) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    let end = p as usize + len;
    let mut line = p as usize & !63;
    while line < end {
        // SAFETY: a prefetch is only a hint: it never faults, whatever the
        // address, and reads nothing the program sees.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line as *const i8) };
        line += 64;
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub fn bytes(_: *const u8, _: usize) {}
