/// mimalloc instead of glibc malloc: tokenization allocates and frees many small strings per
/// token (about 40% of its time went to glibc's malloc and free), and proxy models allocate
/// and free the same multi-MB tensors every step (mimalloc reuses them instead of mapping
/// fresh pages each time).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    syllabus::cli::main()
}
