fn main() -> std::process::ExitCode {
    tune_allocator();
    syllabus::cli::main()
}

/// Keep large freed blocks in the heap instead of returning them to the kernel: proxy models
/// allocate and free the same multi-MB tensors every step, and with glibc's defaults each one
/// is a fresh mmap whose pages fault in again (a third of scoring time). Memory stays bounded
/// by the largest working set.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called once before any threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
}
