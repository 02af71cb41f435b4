//! Link the `syllabus` binary as a position-dependent executable on Linux: as a PIE it carries
//! about 290,000 relative relocations (7 MB of `.rela.dyn`) that the loader applies, touching
//! 5 MB of pages, at every start: 5 ms of each command, `syllabus --version` included.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
