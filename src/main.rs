/// mimalloc instead of glibc malloc: tokenization allocates and frees many small strings per
/// token (about 40% of its time went to glibc's malloc and free), and proxy models allocate
/// and free the same multi-MB tensors every step (mimalloc reuses them instead of mapping
/// fresh pages each time).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h's `mi_option_t` (the same in its v2 and v3).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    #[cfg(test)]
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
}

/// For a command that runs to an end, memory freed is kept for the process's next allocations,
/// not handed back to the kernel (mimalloc's `purge_delay` -1). Passes free and allocate
/// batches of the same sizes over and over; returning those pages (`madvise`) only to fault
/// them in again, zeroed, and splitting transparent huge pages, cost `select dsir` on the bench
/// lake 0.3-0.5 s of system time in 8 of 25 runs (0 of 25 without). Peak RSS is the same.
/// `MIMALLOC_PURGE_DELAY` in the environment still wins.
fn keep_freed_memory() {
    // mimalloc reads its variables by name in any case.
    let set = |name: &str| std::env::vars_os().any(|(k, _)| k.to_str().is_some_and(|k| k.eq_ignore_ascii_case(name)));
    if !set("MIMALLOC_PURGE_DELAY") && !set("MIMALLOC_RESET_DELAY") {
        // SAFETY: sets one of mimalloc's options (any value is valid); called once the command
        // line is parsed, before any thread but this one runs.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

fn main() -> std::process::ExitCode {
    syllabus::cli::main_with(keep_freed_memory)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option index is `purge_delay`'s: its default in mimalloc v3 (options.c, the
    /// version libmimalloc-sys builds) is 1000 ms.
    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // SAFETY: reads one of mimalloc's options.
        let default = unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(default, 1000);
        }
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
        assert_eq!(unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }, -1);
    }
}
