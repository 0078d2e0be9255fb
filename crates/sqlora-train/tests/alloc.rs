//! `keep_freed_memory`: a large block freed and allocated again comes back from the heap
//! instead of a fresh mapping the kernel must clear. A test binary of its own without the
//! test harness (`harness = false`), so it runs on the main thread, in the main arena, as
//! `sqlora train` does, and its process-wide setting touches no other test.

fn main() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let n = 96 << 20;
        // Under glibc's defaults a block this large is mapped afresh each time: every page
        // faults again.
        let fresh = faults_of_second_allocation(n);
        // (With transparent huge pages always on, a fresh mapping faults in 2 MiB at a time.)
        let huge = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .is_ok_and(|s| s.contains("[always]"));
        assert!(
            huge || fresh > 20_000,
            "{fresh} page faults with glibc's defaults"
        );
        assert!(sqlora_train::alloc::keep_freed_memory());
        // Kept in the heap: the second allocation reuses pages already there.
        faults_of_second_allocation(n);
        let reused = faults_of_second_allocation(n);
        assert!(reused < 2_000, "{reused} page faults for a reused block");
        println!("alloc: {fresh} page faults before, {reused} after keep_freed_memory");
    }
}

/// Minor page faults while allocating, touching and freeing an `n`-byte block the second time.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn faults_of_second_allocation(n: usize) -> u64 {
    let once = || {
        let mut v = vec![0u8; n];
        for i in (0..n).step_by(4096) {
            v[i] = 1;
        }
        std::hint::black_box(&v);
    };
    once();
    let before = minor_faults();
    once();
    minor_faults() - before
}

/// This process's minor page faults so far (field 10 of `/proc/self/stat`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')').expect("a command name") + 2..];
    rest.split(' ')
        .nth(7)
        .and_then(|f| f.parse().ok())
        .expect("minflt")
}
