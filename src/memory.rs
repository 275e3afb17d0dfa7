//! Giving freed heap memory back to the operating system, and keeping less of it in the
//! first place; the one place in the crate allowed `unsafe` (calls into glibc with no
//! pointers; `src/lib.rs` denies `unsafe` everywhere else and `tests/layers.rs` checks no
//! other file uses it).
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
//!
//! glibc also gives each thread that allocates a heap ("arena") of its own, up to eight
//! per CPU, and each heap keeps its own free pages. A store is read on the blocking
//! pool's threads while the view is built from it on the event loop's, so one load leaves
//! free pages in several heaps at once, and the peak of a start varied by tens of MiB
//! with which thread ran what ([`choose_heaps`]).
//!
//! Elsewhere (musl, macOS) both do nothing: those allocators have no such calls and give
//! memory back on their own.

/// How many heaps this process's threads allocate from, as [`choose_heaps`] set it (the
/// "gatehouse serving" line logs it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heaps {
    /// At most this many glibc heaps.
    AtMost(usize),
    /// The operator picked the number (`MALLOC_ARENA_MAX`, or `glibc.malloc.arena_max` in
    /// `GLIBC_TUNABLES`), and it was left alone.
    Environment,
    /// The allocator's own choice (not glibc, or glibc refused the setting).
    Default,
}

impl Heaps {
    /// The log value: the number, `environment` or `default`.
    pub fn describe(self) -> String {
        match self {
            Heaps::AtMost(heaps) => heaps.to_string(),
            Heaps::Environment => "environment".to_string(),
            Heaps::Default => "default".to_string(),
        }
    }
}

static CHOSEN: std::sync::OnceLock<Heaps> = std::sync::OnceLock::new();

/// Caps glibc's heaps at one per thread serving requests (`serving_threads`: the event
/// loop's worker threads, one per CPU), where glibc would add one for each thread that
/// allocates, up to eight per CPU. A serving thread rarely waits for another to release
/// its heap, and the blocking pool's threads (store reads, password hashing) share the
/// serving threads' heaps and reuse their free pages rather than growing heaps of their
/// own. On a store of 100,000 users and 1,000,000 sessions the start's peak fell from
/// 241–291 to 185–204 MiB, and the size once idle from 190–255 to 171–182 MiB
/// (benches/RESULTS.md, issue #17 target 2).
///
/// Call before threads are spawned (a heap a thread already has stays its own). Leaves
/// the operator's choice alone ([`Heaps::Environment`]). The first call decides; later
/// ones return its answer.
pub fn choose_heaps(serving_threads: usize) -> Heaps {
    *CHOSEN.get_or_init(|| {
        let heaps = serving_threads.max(1);
        if operator_chose_heaps() {
            Heaps::Environment
        } else if limit_heaps(heaps) {
            Heaps::AtMost(heaps)
        } else {
            Heaps::Default
        }
    })
}

/// What [`choose_heaps`] decided ([`Heaps::Default`] before it is called).
pub fn heaps() -> Heaps {
    CHOSEN.get().copied().unwrap_or(Heaps::Default)
}

/// Whether the environment picks the number of glibc heaps.
fn operator_chose_heaps() -> bool {
    std::env::var_os("MALLOC_ARENA_MAX").is_some()
        || std::env::var("GLIBC_TUNABLES")
            .is_ok_and(|tunables| tunables.contains("glibc.malloc.arena_max"))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn limit_heaps(heaps: usize) -> bool {
    let Ok(heaps) = libc::c_int::try_from(heaps) else {
        return false;
    };
    // SAFETY: `mallopt` takes no pointers and reads no memory of ours; glibc takes its own
    // lock for the change, so it is sound from any thread.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, heaps) == 1 }
}

/// This allocator has no such setting.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_heaps(_heaps: usize) -> bool {
    false
}

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
