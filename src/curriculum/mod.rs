//! The curriculum: turn (selected, scored) documents into an ordered, weighted, tokenized
//! stream of fixed-length sequences, written as shards with a manifest.
//!
//! Stages, each resumable:
//! 1. **prepare** ([`prepare`]): one streaming pass over the document table tokenizes every
//!    document (in parallel batches, results in input order) into a token store, and appends a
//!    fixed-size record per document (score, loss, where its tokens and id are) to its domain's
//!    record file. Done once per configuration and input; a marker records it.
//! 2. **order** ([`order`]): each domain's records are sorted by the ordering's key with an
//!    external merge sort (runs of `sort_memory_mb`, spilled to disk, k-way merged), so an
//!    ordering over more documents than fit in memory works.
//! 3. **emit** ([`emit`]): the schedule picks, document by document, the domain furthest behind
//!    its share of the tokens so far ([`schedule::Mixer`]); documents are reweighted in windows,
//!    packed into sequences and cut into shards, each written atomically and journaled, so a
//!    run killed at any point resumes and ends with the same bytes. The manifest is written
//!    last.
//!
//! Memory: a chunk of batches in prepare; the sort buffer; one window of documents and one
//! shard in emit. The token store and record files are on disk in `OUT/work/`.

pub mod emit;
pub mod order;
pub mod prepare;
pub mod reweight;
pub mod schedule;

use std::path::PathBuf;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use reweight::Strategy;

/// `[reweight]`: per-sample weights from a loss column (Sow et al.).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReweightConfig {
    /// The loss column (mean token cross-entropy, e.g. `loss` from `syllabus score loss`).
    pub by: String,
    #[serde(default = "d_strategy")]
    pub strategy: Strategy,
    /// r: 1.0 for small models, about 0.4 at 700M parameters (the paper).
    #[serde(default = "d_temperature")]
    pub temperature: f64,
    /// B: documents per window (the paper's batch), in curriculum order.
    #[serde(default = "d_window")]
    pub window: usize,
}

fn d_strategy() -> Strategy {
    Strategy::Linupper
}
fn d_temperature() -> f64 {
    1.0
}
fn d_window() -> usize {
    256
}

/// When a domain has no documents left in its ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Exhausted {
    /// Another pass over the domain (reshuffled when the ordering is random, in the same
    /// order otherwise).
    Repeat,
    /// The domain stops; the others share its part of the mixture in proportion.
    #[default]
    Stop,
}

/// `[[schedule.phases]]`: a mixture from a fraction of the token budget on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseConfig {
    /// Start, as a fraction of the budget: 0 for the first phase, increasing, below 1.
    pub start: f64,
    /// Domain -> share of the phase's tokens; sums to 1. Domains left out get 0.
    pub mixture: IndexMap<String, f64>,
}

/// `[schedule]`: a domain-mixture schedule over the token budget.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// The budget T in tokens (end-of-document tokens included); default: every token of the
    /// documents once.
    pub tokens: Option<u64>,
    /// Change the mixture linearly from one phase's to the next's instead of in a step.
    #[serde(default)]
    pub interpolate: bool,
    #[serde(default)]
    pub on_exhausted: Exhausted,
    pub phases: Vec<PhaseConfig>,
}

/// How documents are ordered within their domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OrderMethod {
    /// The order of the document table.
    #[default]
    Input,
    Ascending,
    Descending,
    /// A seeded shuffle.
    Random,
    /// DELT folding: ascending, then L passes taking every L-th document.
    Folding,
    /// Related documents next to each other (In-Context Pretraining): the positions of a
    /// traversal that the caller computes (`Build::order_positions`).
    Related,
}

/// `[order]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderConfig {
    #[serde(default)]
    pub method: OrderMethod,
    /// The score column (ascending, descending, folding).
    pub by: Option<String>,
    /// L, the passes of folding.
    #[serde(default = "d_passes")]
    pub passes: usize,
    /// Memory for sorting before runs spill to disk; never changes a result.
    #[serde(default = "d_sort_memory_mb")]
    pub sort_memory_mb: usize,
}

fn d_passes() -> usize {
    3
}
fn d_sort_memory_mb() -> usize {
    256
}

impl Default for OrderConfig {
    fn default() -> Self {
        OrderConfig { method: OrderMethod::Input, by: None, passes: d_passes(), sort_memory_mb: d_sort_memory_mb() }
    }
}

/// How documents become sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Packing {
    /// Documents back to back; a document may span sequences.
    #[default]
    Concat,
    /// One document per sequence, padded; a longer one takes several.
    Pad,
}

/// `[tokenize]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizeConfig {
    /// A Hugging Face `tokenizer.json`.
    pub tokenizer: PathBuf,
    pub seq_len: u32,
    /// End-of-document token appended to every document (default: the first of
    /// `<|endoftext|>`, `</s>`, `<eos>`, `<|end_of_text|>`, `[SEP]` the vocabulary has).
    pub eos: Option<String>,
    /// Padding token (default: `<pad>`, `<|pad|>` or `[PAD]`, else the EOS token).
    pub pad: Option<String>,
    #[serde(default)]
    pub packing: Packing,
}

/// Shard file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ShardFormat {
    Syllabus,
    Megatron,
}

/// `[output]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    #[serde(default = "d_formats")]
    pub formats: Vec<ShardFormat>,
    /// Tokens per shard, rounded down to whole sequences (at least one).
    #[serde(default = "d_shard_tokens")]
    pub shard_tokens: u64,
    /// MiB of token store written between the checkpoints of the prepare stage: the most
    /// tokenization a run resumed after a kill redoes. Never changes a result.
    /// Not part of the run's key or manifest: a run may resume with another value.
    #[serde(default = "d_checkpoint_mb", skip_serializing)]
    pub checkpoint_mb: f64,
}

fn d_checkpoint_mb() -> f64 {
    16.0
}

fn d_formats() -> Vec<ShardFormat> {
    vec![ShardFormat::Syllabus]
}
fn d_shard_tokens() -> u64 {
    1 << 23
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig { formats: d_formats(), shard_tokens: d_shard_tokens(), checkpoint_mb: d_checkpoint_mb() }
    }
}

/// Everything the curriculum stages need, from a pipeline or from `syllabus curriculum`.
#[derive(Debug, Clone, Serialize)]
pub struct CurriculumSpec {
    pub seed: u32,
    pub reweight: Option<ReweightConfig>,
    pub schedule: Option<ScheduleConfig>,
    pub order: OrderConfig,
    pub tokenize: TokenizeConfig,
    pub output: OutputConfig,
}

fn cfg_err(key: &str, what: impl std::fmt::Display) -> Error {
    Error::Config(format!("{key}: {what}"))
}

impl CurriculumSpec {
    /// Check every setting that does not need the data; errors name the key.
    pub fn validate(&self) -> Result<()> {
        if let Some(r) = &self.reweight {
            if !(r.temperature.is_finite() && r.temperature > 0.0) {
                return Err(cfg_err("reweight.temperature", "must be a positive number"));
            }
            if r.window == 0 {
                return Err(cfg_err("reweight.window", "must be at least 1"));
            }
            crate::limits::REWEIGHT_WINDOW.check(r.window as u64).map_err(|e| cfg_err("reweight", e))?;
        }
        if let Some(s) = &self.schedule {
            if s.tokens == Some(0) {
                return Err(cfg_err("schedule.tokens", "must be at least 1"));
            }
            if let Some(t) = s.tokens {
                crate::limits::BUDGET_TOKENS.check(t).map_err(|e| cfg_err("schedule", e))?;
            }
            if s.phases.is_empty() {
                return Err(cfg_err("schedule.phases", "at least one phase is needed"));
            }
            for (i, p) in s.phases.iter().enumerate() {
                let key = format!("schedule.phases[{i}]");
                if i == 0 && p.start != 0.0 {
                    return Err(cfg_err(&format!("{key}.start"), "the first phase starts at 0"));
                }
                if !(0.0..1.0).contains(&p.start) || (i > 0 && p.start <= s.phases[i - 1].start) {
                    return Err(cfg_err(&format!("{key}.start"), "starts must increase, from 0 and below 1"));
                }
                if p.mixture.is_empty() {
                    return Err(cfg_err(&format!("{key}.mixture"), "is empty"));
                }
                for (d, w) in &p.mixture {
                    if !(w.is_finite() && *w >= 0.0) {
                        return Err(cfg_err(&format!("{key}.mixture.{d}"), "must be a non-negative number"));
                    }
                }
                let sum: f64 = p.mixture.values().sum();
                if (sum - 1.0).abs() > 1e-6 {
                    return Err(cfg_err(&format!("{key}.mixture"), format!("sums to {sum}, not 1")));
                }
            }
        }
        let o = &self.order;
        match o.method {
            OrderMethod::Ascending | OrderMethod::Descending | OrderMethod::Folding if o.by.is_none() => {
                return Err(cfg_err(
                    "order.by",
                    format!("{:?} ordering needs a score column", o.method).to_lowercase(),
                ));
            }
            OrderMethod::Input | OrderMethod::Random | OrderMethod::Related if o.by.is_some() => {
                return Err(cfg_err("order.by", "only ascending, descending and folding use a score column"));
            }
            _ => {}
        }
        if o.passes == 0 {
            return Err(cfg_err("order.passes", "must be at least 1"));
        }
        if o.sort_memory_mb == 0 {
            return Err(cfg_err("order.sort_memory_mb", "must be at least 1"));
        }
        crate::limits::FOLD_PASSES.check(o.passes as u64).map_err(|e| cfg_err("order", e))?;
        crate::limits::SORT_MEMORY_MB.check(o.sort_memory_mb as u64).map_err(|e| cfg_err("order", e))?;
        let t = &self.tokenize;
        if t.seq_len == 0 || t.seq_len > 1 << 24 {
            return Err(cfg_err("tokenize.seq_len", "must be between 1 and 16777216"));
        }
        let out = &self.output;
        if out.formats.is_empty() {
            return Err(cfg_err("output.formats", "at least one format is needed"));
        }
        if out.formats.iter().enumerate().any(|(i, f)| out.formats[..i].contains(f)) {
            return Err(cfg_err("output.formats", "a format is listed twice"));
        }
        if out.shard_tokens == 0 {
            return Err(cfg_err("output.shard_tokens", "must be at least 1"));
        }
        crate::limits::SHARD_TOKENS.check(out.shard_tokens).map_err(|e| cfg_err("output", e))?;
        if !(out.checkpoint_mb.is_finite() && out.checkpoint_mb > 0.0) {
            return Err(cfg_err("output.checkpoint_mb", "must be a positive number"));
        }
        Ok(())
    }

    /// Sequences per shard.
    pub fn seqs_per_shard(&self) -> u64 {
        (self.output.shard_tokens / self.tokenize.seq_len as u64).max(1)
    }
}

use std::path::Path;

use crate::progress::Progress;
use crate::shard::manifest::{json_hash, Manifest, MANIFEST_FILE};
use crate::source::{InputFile, ReadOptions};
use crate::tokenize::{Tok, PAD_CANDIDATES};
use prepare::{DomainOf, Prepare, Prepared};

/// One curriculum build: the document table, how to read it, and where to write.
pub struct Build<'a> {
    pub spec: &'a CurriculumSpec,
    /// The settings recorded in the manifest (and hashed into `config_hash`).
    pub config: serde_json::Value,
    pub files: &'a [InputFile],
    pub read: &'a ReadOptions,
    pub domains: DomainOf,
    pub out: &'a Path,
    /// The run's key (see [`begin_work`]); the work directory must already be begun with it.
    pub work: &'a Path,
    /// Where bad records of the table go (`on_bad_record = "skip"`).
    pub rejects: Option<&'a Path>,
    pub progress: &'a Progress,
    /// `order.method = "related"`: each document's position (by its row in the table).
    pub order_positions: Option<std::sync::Arc<Vec<u32>>>,
}

impl Build<'_> {
    /// With `on_exhausted = "repeat"` the budget is written whatever the lake holds: refuse a
    /// budget whose shards cannot fit on the output's file system, with the estimate.
    fn check_disk(&self, vocab_size: u32) -> Result<()> {
        let Some(s) = &self.spec.schedule else { return Ok(()) };
        let (Some(tokens), Exhausted::Repeat) = (s.tokens, s.on_exhausted) else { return Ok(()) };
        let per_token: u64 = self
            .spec
            .output
            .formats
            .iter()
            .map(|f| match f {
                ShardFormat::Syllabus => crate::shard::TokenDtype::for_vocab(vocab_size).width() as u64,
                ShardFormat::Megatron => {
                    let code = crate::shard::megatron::dtype_code(vocab_size);
                    crate::shard::megatron::width(code).expect("a token dtype") as u64
                }
            })
            .sum();
        let estimate = tokens as f64 * per_token as f64;
        match crate::limits::free_disk(self.out) {
            Some(free) if estimate > free as f64 => Err(cfg_err(
                "schedule.tokens",
                format!(
                    "{tokens} tokens with on_exhausted = \"repeat\" make about {} of shards, more than the {} free under {}",
                    crate::limits::bytes(estimate),
                    crate::limits::bytes(free as f64),
                    self.out.display()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// A shard is built in memory (u32 tokens, then its bytes) and the sort buffer fills up to
    /// its size: refuse settings whose memory is more than the machine has.
    fn check_memory(&self) -> Result<()> {
        let out = &self.spec.output;
        crate::limits::check_memory(
            &format!("a shard of {} tokens (output.shard_tokens)", out.shard_tokens),
            out.shard_tokens as f64 * 8.0,
        )
        .map_err(|e| cfg_err("output.shard_tokens", e))?;
        let sort = self.spec.order.sort_memory_mb as f64 * 1048576.0;
        crate::limits::check_memory(
            &format!("a sort buffer of {} MiB (order.sort_memory_mb)", self.spec.order.sort_memory_mb),
            sort,
        )
        .map_err(|e| cfg_err("order.sort_memory_mb", e))
    }

    /// Whether an earlier run finished the prepare pass (the table is tokenized and ordered
    /// already: what it read is not needed again).
    pub fn prepared(&self) -> bool {
        self.work.join("prepare.json").exists()
    }

    pub fn run(&self) -> Result<Manifest> {
        let spec = self.spec;
        spec.validate()?;
        let tok = Tok::load(&spec.tokenize.tokenizer)?;
        let eos = tok.eos_id(spec.tokenize.eos.as_deref())?;
        let pad = tok.special_id(spec.tokenize.pad.as_deref(), PAD_CANDIDATES, "padding")?.unwrap_or(eos);
        self.check_disk(tok.vocab_size())?;
        self.check_memory()?;
        if spec.order.method == OrderMethod::Related && self.order_positions.is_none() && !self.prepared() {
            return Err(cfg_err(
                "order.method",
                "\"related\" needs the documents' positions (a [clusters] stage, or --kmeans-model)",
            ));
        }
        let prepared: Prepared = match crate::resume::load_marker(self.work, "prepare.json") {
            Some(p) => p,
            None => {
                let p = Prepare {
                    files: self.files,
                    read: self.read,
                    domains: self.domains.clone(),
                    order_by: spec.order.by.clone(),
                    order_positions: self.order_positions.clone(),
                    loss_by: spec.reweight.as_ref().map(|r| r.by.clone()),
                    tok: &tok,
                    progress: self.progress,
                    checkpoint_bytes: (spec.output.checkpoint_mb * 1048576.0) as u64,
                }
                .run(self.work, self.rejects)?;
                crate::resume::save_marker(self.work, "prepare.json", &p)?;
                let _ = std::fs::remove_file(self.work.join(prepare::CHECKPOINT_FILE));
                crate::failpoint::hit(format_args!("prepared"));
                p
            }
        };
        if prepared.documents.iter().sum::<u64>() == 0 {
            return Err(Error::InvalidArgument(format!(
                "no documents to write: {} read, {} without tokens",
                prepared.read, prepared.empty
            )));
        }
        let emitted = emit::Emit {
            spec,
            prepared: &prepared,
            work: self.work,
            out: self.out,
            vocab_size: tok.vocab_size(),
            eos,
            pad,
        }
        .run()?;
        crate::failpoint::hit(format_args!("before-manifest"));
        let mut totals = emitted.totals;
        (totals.read, totals.empty, totals.rejected) = (prepared.read, prepared.empty, prepared.rejected);
        let o = &spec.order;
        let manifest = Manifest {
            syllabus_version: env!("CARGO_PKG_VERSION").to_string(),
            shard_format_version: crate::shard::VERSION,
            config_hash: json_hash(&self.config),
            // Paths as given, but never a credential inside a URL (a presigned query, userinfo).
            config: crate::store::redact_json(&self.config),
            seed: spec.seed,
            tokenizer: crate::store::redact(&spec.tokenize.tokenizer.display().to_string()),
            tokenizer_hash: tok.hash().to_string(),
            vocab_size: tok.vocab_size(),
            eos_id: eos,
            pad_id: pad,
            seq_len: spec.tokenize.seq_len,
            packing: format!("{:?}", spec.tokenize.packing).to_lowercase(),
            token_dtype: format!("{:?}", crate::shard::TokenDtype::for_vocab(tok.vocab_size())).to_lowercase(),
            domains: prepared.domains.clone(),
            ordering: crate::shard::manifest::Ordering {
                method: format!("{:?}", o.method).to_lowercase(),
                by: o.by.clone(),
                passes: (o.method == OrderMethod::Folding).then_some(o.passes),
                on_exhausted: format!("{:?}", spec.schedule.as_ref().map_or(Exhausted::Stop, |s| s.on_exhausted))
                    .to_lowercase(),
                note: matches!(o.method, OrderMethod::Ascending | OrderMethod::Folding).then(|| {
                    "ascending-quality curricula help under a constant or moderately decayed learning rate \
                     (final about 1/3 of peak) or with checkpoint averaging; the gain vanishes under decay to ~0 \
                     (Luo et al. 2025)"
                        .to_string()
                }),
            },
            reweighting: spec.reweight.as_ref().map(|r| serde_json::to_value(r).expect("serializes")),
            budget_tokens: emitted.budget,
            totals,
            phases: emitted.phases,
            shards: emitted.shards,
        };
        crate::sink::write_atomic(&self.out.join(MANIFEST_FILE), &manifest.to_bytes())?;
        Ok(manifest)
    }
}
