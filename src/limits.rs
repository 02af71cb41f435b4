//! Limits on the settings that size allocations or loops. Every command and pipeline checks its
//! settings against them once, up front, and an error names the setting, the limit and why,
//! instead of an allocation failure, a hang or output without end later on.
//!
//! Single settings get a fixed bound (far above any real use); where the product of several is
//! what matters (a proxy model's memory, a curriculum's bytes on disk), the product is
//! estimated and compared with what the machine has.

use std::path::Path;

/// One setting's bound and the reason for it.
pub struct Limit {
    pub name: &'static str,
    pub max: u64,
    pub why: &'static str,
}

pub const THREADS: Limit = Limit { name: "threads", max: 1024, why: "more threads than that only add start-up time" };
pub const BATCH_ROWS: Limit = Limit { name: "batch_rows", max: 1 << 24, why: "a batch is held in memory" };
pub const MAX_RECORD_BYTES: Limit =
    Limit { name: "max_record_bytes", max: 1 << 32, why: "a record is held in memory while it is decoded" };
pub const DSIR_BUCKETS: Limit = Limit {
    name: "buckets",
    max: 1 << 27,
    why: "a DSIR model holds three f64 arrays of this length (3 GiB at the limit)",
};
pub const DSIR_NGRAMS: Limit =
    Limit { name: "ngrams", max: 16, why: "each word starts this many n-grams (the reference's default is 2)" };
pub const PROXY_WIDTH: Limit = Limit { name: "width", max: 16_384, why: "weights grow with its square" };
pub const PROXY_LAYERS: Limit = Limit { name: "layers", max: 256, why: "a proxy is a small model" };
pub const PROXY_CONTEXT: Limit = Limit { name: "context", max: 1 << 16, why: "attention grows with its square" };
pub const PROXY_BATCH: Limit =
    Limit { name: "batch_size", max: 1 << 20, why: "a batch's activations are held in memory" };
pub const PROXY_SEEDS: Limit = Limit { name: "seeds", max: 1024, why: "each seed trains a model" };
pub const MIX_RUNS: Limit = Limit { name: "runs", max: 100_000, why: "each run trains a model and is kept in memory" };
pub const EVAL_TOKENS: Limit =
    Limit { name: "tokens", max: 1 << 40, why: "each candidate and seed trains on this many tokens" };
pub const PROXY_EPOCHS: f64 = 10_000.0;
pub const PROXY_CLASSES: Limit =
    Limit { name: "classes (the largest label + 1)", max: 1 << 20, why: "the output layer has one row per class" };
pub const FOLD_PASSES: Limit = Limit { name: "passes", max: 1 << 16, why: "each pass walks every document" };
pub const REWEIGHT_WINDOW: Limit =
    Limit { name: "window", max: 1 << 26, why: "a window's documents are held in memory to normalise their weights" };
pub const SORT_MEMORY_MB: Limit = Limit { name: "sort_memory_mb", max: 1 << 20, why: "the sort buffer is allocated" };
pub const SHARD_TOKENS: Limit = Limit { name: "shard_tokens", max: 1 << 34, why: "a shard is built in memory" };
pub const VOCAB_SIZE: Limit =
    Limit { name: "vocab_size", max: 1 << 22, why: "BPE training keeps every merge and its pair counts in memory" };
/// Tokens a schedule may ask for: 10^15 (a thousand times the largest public training runs).
pub const BUDGET_TOKENS: Limit =
    Limit { name: "tokens", max: 1_000_000_000_000_000, why: "that is far beyond any training run" };

impl Limit {
    /// `value` if it is at most the limit, else a message naming the setting.
    pub fn check(&self, value: u64) -> Result<(), String> {
        if value > self.max {
            Err(format!("{} = {value}: at most {} ({})", self.name, self.max, self.why))
        } else {
            Ok(())
        }
    }
}

/// The source settings (`batch_rows`, `max_record_bytes`): the message starts with the name.
pub fn check_read(batch_rows: usize, max_record_bytes: usize) -> Result<(), String> {
    if batch_rows == 0 {
        return Err("batch_rows: must be at least 1".into());
    }
    if max_record_bytes == 0 {
        return Err("max_record_bytes: must be at least 1".into());
    }
    BATCH_ROWS.check(batch_rows as u64)?;
    MAX_RECORD_BYTES.check(max_record_bytes as u64)
}

/// Physical memory of this machine in bytes (None where it cannot be told).
pub fn physical_memory() -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let (pages, size) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    (pages > 0 && size > 0).then(|| pages as u64 * size as u64)
}

/// Free bytes on the file system that holds `dir` (or its nearest existing ancestor).
pub fn free_disk(dir: &Path) -> Option<u64> {
    let mut d = dir;
    while !d.exists() {
        d = d.parent()?;
    }
    let d = if d.as_os_str().is_empty() { Path::new(".") } else { d };
    let c = std::ffi::CString::new(d.as_os_str().as_encoded_bytes()).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid C string and s a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    Some(s.f_bavail as u64 * s.f_frsize as u64)
}

/// Human-readable bytes.
pub fn bytes(n: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// Refuse `what` when its estimated memory exceeds this machine's physical memory.
pub fn check_memory(what: &str, estimate: f64) -> Result<(), String> {
    match physical_memory() {
        Some(total) if estimate > total as f64 => Err(format!(
            "{what} needs about {} of memory, more than this machine's {}: choose smaller settings",
            bytes(estimate),
            bytes(total as f64)
        )),
        _ => Ok(()),
    }
}

/// `2GB`, `512MB`, `64KB` or a number of bytes (powers of 1024).
pub fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let (num, mult) = [
        ("GB", 1u64 << 30),
        ("G", 1 << 30),
        ("MB", 1 << 20),
        ("M", 1 << 20),
        ("KB", 1 << 10),
        ("K", 1 << 10),
        ("B", 1),
    ]
    .iter()
    .find(|(suffix, _)| upper.ends_with(suffix))
    .map_or((t, 1), |(suffix, m)| (&t[..t.len() - suffix.len()], *m));
    let n: f64 = num.trim().parse().map_err(|_| format!("{s:?}: a size in bytes, or with KB, MB, GB"))?;
    if !(n.is_finite() && n > 0.0) {
        return Err(format!("{s:?}: a positive size"));
    }
    Ok((n * mult as f64) as u64)
}

pub fn bytes_de<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Size {
        N(u64),
        S(String),
    }
    match <Size as serde::Deserialize>::deserialize(d)? {
        Size::N(n) => Ok(n),
        Size::S(s) => parse_bytes(&s).map_err(serde::de::Error::custom),
    }
}

pub fn bytes_ser<S: serde::Serializer>(n: &u64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(*n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_name_the_setting_and_the_reason() {
        assert!(DSIR_NGRAMS.check(16).is_ok());
        let e = DSIR_NGRAMS.check(1 << 40).unwrap_err();
        assert!(e.starts_with("ngrams = 1099511627776: at most 16"), "{e}");
        assert_eq!(check_read(0, 1).unwrap_err(), "batch_rows: must be at least 1");
        assert!(check_read(1 << 40, 1).unwrap_err().starts_with("batch_rows = "));
        assert!(check_memory("a model", 1e30).unwrap_err().contains("more than this machine's"));
        assert!(check_memory("a model", 1.0).is_ok());
        assert!(free_disk(Path::new("/definitely/not/here")).is_some());
        assert_eq!(bytes(1536.0), "1.5 KiB");
    }
}
