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

/// A manifest is read whole; a larger file is not one syllabus wrote.
const MAX_MANIFEST_BYTES: u64 = 1 << 30;

impl Manifest {
    /// Read `dir/manifest.json` and refuse it when any of its fields disagree
    /// ([`Manifest::problems`]): what verify calls bad, serve and SQL refuse.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let m = Manifest::load_unchecked(dir)?;
        let problems = m.problems();
        if !problems.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{}: not a valid syllabus manifest: {}",
                dir.join(MANIFEST_FILE).display(),
                problems.join("; ")
            )));
        }
        Ok(m)
    }

    /// Read and parse `dir/manifest.json` without checking its fields (verify reports them).
    pub fn load_unchecked(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST_FILE);
        let meta = crate::store::stat(&path)?.ok_or_else(|| {
            Error::io(
                &path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file (not a complete syllabus output)"),
            )
        })?;
        if meta.len > MAX_MANIFEST_BYTES {
            return Err(Error::InvalidArgument(format!(
                "{}: not a syllabus manifest (not a regular file of at most {MAX_MANIFEST_BYTES} bytes)",
                path.display()
            )));
        }
        let mut bytes = crate::store::read_limited(&path, MAX_MANIFEST_BYTES)?;
        bytes.truncate(MAX_MANIFEST_BYTES as usize);
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::InvalidArgument(format!("{}: not a syllabus manifest: {e}", path.display())))
    }

    /// Every way the manifest's fields disagree with the format or with each other (empty
    /// when they agree). The shards themselves are checked against it by verify, serve and
    /// SQL as they read them ([`crate::shard::Shard::problems_against`]).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.shard_format_version != crate::shard::VERSION {
            p.push(format!(
                "shard_format_version {}, this build reads {}",
                self.shard_format_version,
                crate::shard::VERSION
            ));
        }
        if self.vocab_size == 0 {
            p.push("vocab_size is 0".into());
        }
        let dtype = crate::shard::TokenDtype::for_vocab(self.vocab_size).name();
        if self.token_dtype != dtype {
            p.push(format!(
                "token_dtype {:?}, but a vocabulary of {} is stored as {dtype}",
                self.token_dtype, self.vocab_size
            ));
        }
        if !matches!(self.packing.as_str(), "concat" | "pad") {
            p.push(format!("packing {:?}, expected \"concat\" or \"pad\"", self.packing));
        }
        if self.seq_len == 0 {
            p.push("seq_len is 0".into());
        }
        if self.eos_id >= self.vocab_size || self.pad_id >= self.vocab_size {
            p.push(format!(
                "eos_id {} or pad_id {} outside the vocabulary of {}",
                self.eos_id, self.pad_id, self.vocab_size
            ));
        }
        if self.domains.is_empty() || self.domains.len() > usize::from(u16::MAX) {
            p.push(format!("{} domains (a shard's domain ids are u16)", self.domains.len()));
        }
        let mut formats: IndexMap<&str, (u64, u64, u64, u64)> = IndexMap::new();
        for e in &self.shards {
            let path_ok = crate::shard::is_plain_relative;
            if !path_ok(&e.path) {
                p.push(format!("{:?}: not a relative path inside the curriculum's directory", e.path));
            }
            match (e.format.as_str(), &e.index) {
                ("syllabus", None) => {}
                ("megatron", Some(idx)) if path_ok(&idx.path) => {}
                ("megatron", Some(idx)) => {
                    p.push(format!("{:?}: not a relative path inside the curriculum's directory", idx.path))
                }
                ("megatron", None) => p.push(format!("{}: a Megatron .bin without its .idx", e.path)),
                ("syllabus", Some(_)) => p.push(format!("{}: a syllabus shard with an index file", e.path)),
                (other, _) => p.push(format!("{}: unknown format {other:?}", e.path)),
            }
            let f = formats.entry(e.format.as_str()).or_default();
            if e.first_sequence != f.1 {
                p.push(format!("{}: starts at sequence {}, expected {}", e.path, e.first_sequence, f.1));
            }
            f.0 += 1;
            f.1 = e.first_sequence.saturating_add(e.sequences);
            f.2 = f.2.saturating_add(e.tokens);
            f.3 = f.3.saturating_add(e.documents);
        }
        if self.shards.is_empty() {
            p.push("lists no shards".into());
        }
        let t = &self.totals;
        for (format, (n, seqs, tokens, _)) in &formats {
            if *seqs != t.sequences || *tokens != t.tokens {
                p.push(format!(
                    "the {format} shards hold {seqs} sequences and {tokens} tokens, the totals say {} and {}",
                    t.sequences, t.tokens
                ));
            }
            if *n != t.shards {
                p.push(format!("{n} {format} shards listed, the totals say {}", t.shards));
            }
        }
        let phase_tokens: u64 =
            self.phases.iter().flat_map(|ph| ph.tokens.values()).fold(0u64, |a, &b| a.saturating_add(b));
        let phase_docs: u64 =
            self.phases.iter().flat_map(|ph| ph.documents.values()).fold(0u64, |a, &b| a.saturating_add(b));
        if phase_tokens != t.tokens || phase_docs != t.documents {
            p.push(format!(
                "the phases add up to {phase_tokens} tokens in {phase_docs} documents, the totals say {} in {}",
                t.tokens, t.documents
            ));
        }
        let seq_tokens = t.sequences.checked_mul(u64::from(self.seq_len));
        if seq_tokens != t.tokens.checked_add(t.padding_tokens) {
            p.push(format!(
                "{} sequences of {} tokens, but the totals say {} tokens and {} padding",
                t.sequences, self.seq_len, t.tokens, t.padding_tokens
            ));
        }
        if t.empty > t.read || t.documents < t.read.saturating_sub(t.empty).min(1) {
            p.push(format!("totals: {} read, {} empty, {} documents do not add up", t.read, t.empty, t.documents));
        }
        p
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
