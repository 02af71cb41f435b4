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
//! dedup/       exact and MinHash-LSH near duplicates: signatures per file, an external-sort join, components
//! kmeans/      clusters: spherical k-means over TF-IDF vectors; cluster-balanced and D4 selection
//! classifier/  fastText-compatible quality classifiers: read, apply, train (DCLM, BETR)
//! sql/         DataFusion over every output above and over raw lakes, with the scorers as UDFs
//! eval/        which selection trains the better model: equal-compute runs of the lm proxy's
//!              model per candidate, validation curves, KL reduction, curves.png; --scales
//! mix/         which mixture of domains: RegMix-style proxy runs, a fitted regression, a
//!              constrained proposal checked by training; Skill-It's graph from data
//! ```
//!
//! Every stage streams batches: memory is bounded by the batch size and, where an algorithm
//! needs state (DSIR's bucket counts, the k selected rows), by that state. Results never
//! depend on the thread count (`par.rs`).
//!
//! # Layers
//!
//! A module uses only the modules drawn below it (`tests/layers.rs` checks it on every
//! `make test`), so there are no import cycles and the reusable parts never reach up into the
//! commands that use them:
//!
//! ```text
//! cli/                          parses arguments and calls the library (main.rs runs it)
//! pipeline/                     `syllabus run`: a pipeline's stages in order; eval's candidates
//! cluster/                      Ballista jobs, the scorers as functions, the plan codec
//! mix/                          mixture search and Skill-It's graph, on eval's training runs
//! config.rs  sql/               pipelines/*.toml, parsed and checked | DataFusion sessions (a cluster plugs in as a Remote)
//! eval/  methods/  dedup/  kmeans/   equal-compute candidate training | the scoring methods and their registry | duplicates | clusters
//! passes/                       lake passes: score and keep the best, DSIR fit, ZIP-FIT target, per-file resume
//! loader/  select/  classifier/   serve and steer a curriculum | Gumbel top-k, top-k, rules over score columns | fastText classifiers
//! curriculum/  proxy/           prepare, order, schedule, reweight, emit | small models: EL2N, GraNd, loss
//! par.rs  resume.rs  score/  tokenize/  ordered parallel map | work directories and markers | the Scorer trait and scorers | tokenizers
//! shard/  source/               shard formats and manifest | lake readers, rejects
//! store/                        object stores (S3, GCS, Azure, HTTP) and staged outputs
//! sink/                         table writers, atomic files
//! batch.rs  extsort.rs          column names and batch helpers | external sort: sorted runs on disk, merged
//! error.rs  failpoint.rs  limits.rs  progress.rs  simd.rs  text/
//! ```

pub mod batch;
pub mod classifier;
pub mod cli;
#[cfg(feature = "cluster")]
pub(crate) mod cluster;
pub mod config;
pub mod curriculum;
pub mod dedup;
pub mod error;
pub mod eval;
pub mod extsort;
pub(crate) mod failpoint;
pub mod kmeans;
pub mod limits;
pub mod loader;
pub mod methods;
pub mod mix;
pub(crate) mod par;
pub(crate) mod passes;
pub mod pipeline;
pub mod progress;
pub mod proxy;
pub(crate) mod resume;
pub mod score;
pub mod select;
pub mod shard;
pub(crate) mod simd;
pub(crate) mod sink;
pub mod source;
pub mod sql;
pub(crate) mod store;
pub mod text;
pub mod tokenize;

pub use error::{Error, Result};
