//! `manifest.json`: what a curriculum is, written last, after every shard.

use std::path::Path;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const MANIFEST_FILE: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub syllabus_version: String,
    pub shard_format_version: u32,
    /// The pipeline (or command) settings that made it.
    pub config: serde_json::Value,
    /// `sha256:` of the canonical JSON of `config`.
    pub config_hash: String,
    pub seed: u32,
    pub tokenizer: String,
    pub tokenizer_hash: String,
    pub vocab_size: u32,
    pub eos_id: u32,
    pub pad_id: u32,
    pub seq_len: u32,
    pub packing: String,
    pub token_dtype: String,
    /// Domain names by id (the ids in shards).
    pub domains: Vec<String>,
    pub ordering: Ordering,
    pub reweighting: Option<serde_json::Value>,
    pub budget_tokens: u64,
    pub totals: Totals,
    pub phases: Vec<PhaseReport>,
    pub shards: Vec<ShardEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ordering {
    pub method: String,
    pub by: Option<String>,
    /// Folding's L.
    pub passes: Option<usize>,
    pub on_exhausted: String,
    /// Pair an ascending-quality curriculum with a constant or moderately decayed learning rate
    /// (Luo et al. 2025): its gain vanishes under decay to about zero.
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Rows of the document table read; `read = candidates + empty` (bad records apart).
    pub read: u64,
    /// Documents with no tokens, left out.
    pub empty: u64,
    /// Bad records skipped while reading the table (`on_bad_record = "skip"`).
    pub rejected: u64,
    /// Documents emitted (with repeats).
    pub documents: u64,
    /// Document tokens, end-of-document tokens included (padding excluded).
    pub tokens: u64,
    pub sequences: u64,
    pub padding_tokens: u64,
    pub shards: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseReport {
    pub start_token: u64,
    pub end_token: u64,
    pub mixture: IndexMap<String, f64>,
    pub tokens: IndexMap<String, u64>,
    pub documents: IndexMap<String, u64>,
    /// Passes over each domain begun by the end of the phase.
    pub passes: IndexMap<String, u32>,
    /// Domains that ran out during the phase (`on_exhausted = "stop"`).
    pub exhausted: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// Relative to the manifest's directory.
    pub path: String,
    /// `syllabus` or `megatron` (then `path` is the `.bin` and `index` the `.idx`).
    pub format: String,
    pub bytes: u64,
    pub tokens: u64,
    pub sequences: u64,
    pub first_sequence: u64,
    pub documents: u64,
    pub checksum: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub index: Option<FileEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub bytes: u64,
    pub checksum: String,
}

impl Manifest {
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::InvalidArgument(format!("{}: not a syllabus manifest: {e}", path.display())))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("a manifest serializes");
        v.push(b'\n');
        v
    }
}

/// `sha256:` of a value's canonical JSON (object keys sorted).
pub fn json_hash(v: &serde_json::Value) -> String {
    use sha2::Digest;
    let canonical = serde_json::to_vec(v).expect("JSON values serialize");
    format!("sha256:{:x}", sha2::Sha256::digest(canonical))
}
