//! Crash points for the resume tests: with `SYLLABUS_FAILPOINT=NAME` in the environment, the
//! process aborts (no unwinding, no cleanup, as `kill -9` would leave it) when it reaches the
//! point named NAME. Without the variable this is one cached check.

use std::sync::OnceLock;

fn wanted() -> Option<&'static str> {
    static FP: OnceLock<Option<String>> = OnceLock::new();
    FP.get_or_init(|| std::env::var("SYLLABUS_FAILPOINT").ok().filter(|s| !s.is_empty())).as_deref()
}

/// Abort here if this is the chosen crash point.
pub fn hit(name: std::fmt::Arguments<'_>) {
    if let Some(w) = wanted() {
        if name.to_string() == w {
            eprintln!("syllabus: failpoint {w}: aborting");
            std::process::abort();
        }
    }
}
