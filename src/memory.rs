//! Giving freed heap memory back to the operating system, and the one place in the crate
//! allowed `unsafe` (a call into glibc with no pointers; `src/lib.rs` denies `unsafe`
//! everywhere else and `tests/layers.rs` checks no other file uses it).
//!
//! Why: glibc's allocator keeps the pages of freed memory resident, and returns memory
//! only from the top of a heap. Opening a big store frees a lot at once (the records the
//! view was built from, the pages sled read and evicted while loading and purging), in
//! between allocations that stay (the view, sled's cache), so tens of MiB stay resident
//! though nothing uses them: on a store of 100,000 users and 1,000,000 sessions, 50 MiB
//! of a 318 MiB RSS (benches/RESULTS.md, issue #17 target 2). `malloc_trim(0)` hands every
//! free page inside the heaps back.
//!
//! Call it after such a burst, not on the request path: glibc walks and locks each arena
//! in turn, so threads allocating meanwhile wait (a few milliseconds on that store).
//! Elsewhere (musl, macOS) it does nothing: those allocators have no such call and give
//! memory back on their own.

/// Returns the heap's free pages to the system; true when glibc gave any back. Logs
/// how long it took at debug level.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_freed() -> bool {
    let started = std::time::Instant::now();
    let released = malloc_trim();
    tracing::debug!(released, took = ?started.elapsed(), "freed heap memory released");
    released
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn malloc_trim() -> bool {
    // SAFETY: `malloc_trim` takes no pointers and reads no memory of ours; glibc
    // serializes it with every other allocator call, so it is sound from any thread.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Returns the heap's free pages to the system; this allocator has no such call.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_freed() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_memory_goes_back_to_the_system() {
        // Many small blocks (below the mmap threshold, so they live in the heap), every
        // other one kept: the freed ones cannot be returned from the top of the heap,
        // only by the trim.
        let mut blocks: Vec<Vec<u8>> = (0..20_000).map(|_| vec![1u8; 4096]).collect();
        let kept: Vec<Vec<u8>> = blocks.iter_mut().step_by(64).map(std::mem::take).collect();
        drop(blocks);
        assert!(
            release_freed(),
            "glibc returned nothing after 80 MB were freed"
        );
        assert!(kept.iter().all(|block| block.iter().all(|&byte| byte == 1)));
    }
}
