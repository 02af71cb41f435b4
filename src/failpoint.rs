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

/// Stall points for the fault tests: with `SYLLABUS_STALL=NAME:DIR` in the environment, the
/// process creates `DIR/stalled` when it reaches the point named NAME and waits there until
/// `DIR/go` exists (the test meanwhile kills and restarts a server, say). Without the
/// variable this is one cached check.
pub fn stall(name: std::fmt::Arguments<'_>) {
    static ST: OnceLock<Option<(String, std::path::PathBuf)>> = OnceLock::new();
    let st = ST.get_or_init(|| {
        let v = std::env::var("SYLLABUS_STALL").ok()?;
        let (n, dir) = v.split_once(':')?;
        Some((n.to_string(), dir.into()))
    });
    if let Some((n, dir)) = st {
        if name.to_string() == *n {
            let _ = std::fs::write(dir.join("stalled"), b"");
            while !dir.join("go").exists() {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
}
