//! syllabus decides what a language model trains on, and in what order.
//!
//! ```text
//! source/      jsonl, jsonl.gz, jsonl.zst, Parquet -> stream of Arrow RecordBatches (id, text, ...)
//!    |
//!    +--> proxy/   small models trained with candle  EL2N, GraNd, loss per document
//!    |        |
//! score/      scorers add columns                    DSIR log importance weights, ZIP-FIT alignment
//!    |        |
//! select/  <--+ keep rows by score                   Gumbel top-k (numpy-identical), top-k, bands, offsets
//!    |
//! sink/        write tables                          selected / scores: Parquet, jsonl, jsonl.zst, jsonl.gz
//!    |
//! tokenize/    Hugging Face tokenizers               token ids; BPE training
//!    |
//! curriculum/  prepare -> order -> schedule          external sort, domain-mixture phases over a budget,
//!              -> reweight -> emit                   loss-based weights, packing
//!    |
//! shard/       syllabus shards + Megatron .bin/.idx, manifest.json (the commit point), verify
//!    |
//! loader/      serve: shared-memory staging, DUMP / Skill-It steering -> Python client (python/)
//!
//! sql/         DataFusion over every output above and over raw lakes, with the scorers as UDFs
//! eval/        which selection trains the better model: equal-compute runs of the lm proxy's
//!              model per candidate, validation curves, KL reduction, curves.png
//! ```
//!
//! `pipeline/` puts the stages together for the CLI (`cli/`) and for `syllabus run`
//! (`config.rs`); `progress.rs` draws the progress bars any stage may show, and `limits.rs`
//! bounds the settings that size memory or work. Every stage streams batches: memory is
//! bounded by the batch size and, where an algorithm needs state (DSIR's bucket counts, the k
//! selected rows), by that state. Results never depend on the thread count (`par.rs`).

pub mod batch;
pub mod cli;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod config;
pub mod curriculum;
pub mod error;
pub mod eval;
pub mod failpoint;
pub mod limits;
pub mod loader;
pub mod par;
pub mod pipeline;
pub mod progress;
pub mod proxy;
pub mod score;
pub mod select;
pub mod shard;
pub mod sink;
pub mod source;
pub mod sql;
pub mod store;
pub mod text;
pub mod tokenize;

pub use error::{Error, Result};
