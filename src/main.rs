fn main() -> std::process::ExitCode {
    syllabus::cli::main()
}
