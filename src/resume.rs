//! Resuming: the work directory of an output (`OUT/work`) and the markers a stage leaves
//! there when it completes, under a key made of the settings and the inputs' names, sizes and
//! modification times. Started again with the same key, a run skips what it finished; with
//! another key it starts over. The passes' per-file work ([`crate::passes::work`]) and the
//! curriculum's checkpoints build on these.

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::shard::manifest::MANIFEST_FILE;
use crate::source::InputFile;

/// The work directory of a run (`OUT/work`), kept for one key: the configuration, inputs and
/// tokenizer. A different key starts over: work, shards and manifest are removed.
pub fn begin_work(out: &Path, key: &str) -> Result<std::path::PathBuf> {
    crate::sink::output_dir(out)?;
    let work = out.join("work");
    let key_path = work.join("KEY");
    let same = std::fs::read_to_string(&key_path).is_ok_and(|k| k.trim() == key);
    if !same {
        for dir in [work.clone(), out.join("shards"), out.join("megatron")] {
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            }
        }
        for f in [MANIFEST_FILE, "curriculum.parquet"] {
            let p = out.join(f);
            if p.exists() {
                std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
        std::fs::create_dir_all(&work).map_err(|e| Error::io(&work, e))?;
        crate::sink::write_atomic(&key_path, key.as_bytes())?;
    }
    Ok(work)
}

/// A fingerprint of input files (name, size, modification time) for a run's key.
pub fn inputs_fingerprint(files: &[InputFile]) -> serde_json::Value {
    let entries: Vec<serde_json::Value> = files
        .iter()
        .map(|f| {
            // A file's size and time, or an object's (from the listing that found it).
            let meta = crate::store::stat(&f.path).ok().flatten();
            serde_json::json!([f.name, meta.map(|m| m.len), meta.and_then(|m| m.mtime_ns)])
        })
        .collect();
    serde_json::Value::Array(entries)
}

/// Load a stage's completion marker, if it is there.
pub fn load_marker<T: serde::de::DeserializeOwned>(work: &Path, name: &str) -> Option<T> {
    let bytes = std::fs::read(work.join(name)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Write a stage's completion marker (atomically).
pub fn save_marker<T: Serialize>(work: &Path, name: &str, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).expect("markers serialize");
    crate::sink::write_atomic(&work.join(name), &bytes)
}
