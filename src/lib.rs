//! syllabus decides what a language model trains on, and in what order.
//!
//! ```text
//! source/  jsonl, jsonl.gz, jsonl.zst, Parquet  ->  stream of Arrow RecordBatches (id, text, ...)
//!    |
//! score/   scorers add columns               DSIR log importance weights (dsir_logw, n_words)
//!    |
//! select/  keep rows by score                Gumbel top-k (numpy-identical), top-k
//!    |
//! sink/    write tables                      Parquet, jsonl, jsonl.zst
//! ```
//!
//! `pipeline/` puts the stages together for the CLI (`cli/`) and for `syllabus run`
//! (`config.rs`). Every stage streams batches: memory is bounded by the batch size and, where
//! an algorithm needs state (DSIR's bucket counts, the k selected rows), by that state.
//! Results never depend on the thread count (`par.rs`).

pub mod batch;
pub mod cli;
pub mod config;
pub mod curriculum;
pub mod error;
pub mod failpoint;
pub mod loader;
pub mod par;
pub mod pipeline;
pub mod proxy;
pub mod score;
pub mod select;
pub mod shard;
pub mod sink;
pub mod source;
pub mod sql;
pub mod text;
pub mod tokenize;

pub use error::{Error, Result};
