//! Keeping freed memory in the process, so a training step does not pay the kernel to clear
//! fresh pages for every large tensor.
//!
//! A training step allocates and frees tensors of tens to hundreds of megabytes many times
//! (the answer positions' logits and their softmax, attention scores, the MLP activations of
//! the whole micro-batch). glibc serves every block above its mmap threshold (dynamic, at most
//! 32 MiB) with a fresh `mmap` and returns it with `munmap` when freed, so each such tensor
//! is page-faulted in and zeroed by the kernel again: `perf` put 7% of a 1.5B step in
//! `clear_page` (EVALUATION.md, session 11). Turning the mmap path off (`M_MMAP_MAX` 0) and
//! trimming only above 64 GiB keeps freed blocks in the heap, where the next step's tensors of
//! the same sizes reuse them. Same numbers, bit for bit; on the 0.5B the step took ~20% less
//! time for ~3% more peak memory (BENCHMARKS.md, session 14).
//!
//! This is a process-wide setting, right for a process that trains and nothing else (`sqlora
//! train`, the training benchmarks); a long-lived server keeps glibc's defaults.

/// Keeps freed memory in the heap (see the module doc). Call it before the first large
/// allocation; it is a no-op where the C library is not glibc. Returns whether it applied.
///
/// It governs the main thread's heap (glibc's main arena), where the trainer allocates its
/// tensors; another thread's arena still maps blocks above 64 MiB afresh. Tested in
/// `tests/alloc.rs`, which runs on the main thread.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes glibc's allocation parameters; it is thread-safe and
        // takes plain integers.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
                && libc::mallopt(libc::M_TOP_PAD, 64 << 20) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
