//! Benchmark contamination: each document's word n-gram overlap with the items of a
//! benchmark (`--against`), by the 13-gram rule of GPT-3's and Llama's reports
//! ([`crate::score::contamination`]). `score contamination` writes `contam_frac`,
//! `contam_ngrams` and `contam_item`; `select contamination --k K` keeps the K most
//! contaminated rows (highest `contam_frac`, ties: earlier row; only rows with a match), to
//! look at them. To drop contaminated rows from a selection, keep by the score with
//! `select --scores contam.parquet --by contam_ngrams --keep-min ...` or filter in SQL.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{FitLake, FitPass, Fitted, Info, Method, Sampling};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::score::contamination::{
    Benchmark, BenchmarkState, ContamParams, ContaminationScorer, COL_CONTAM_FRAC, COL_CONTAM_ITEM, COL_CONTAM_NGRAMS,
};
use crate::score::Scorer;
use crate::source::{expand_inputs, InputFile, ReadOptions, RejectWriter};

pub struct Contamination;

/// The benchmark and the gram rule.
#[derive(clap::Args, Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Benchmark items (files, directories or globs; one item a row, `id` and `text`).
    #[arg(long, num_args = 1.., required = true)]
    pub against: Vec<String>,
    /// Items of at least this many words match by any of their n-grams of this length.
    #[arg(long, default_value_t = 13)]
    #[serde(default = "default_ngram")]
    pub ngram: usize,
    /// Shorter items of at least this many words match as their whole word sequence; shorter
    /// ones are skipped (and counted).
    #[arg(long, default_value_t = 8)]
    #[serde(default = "default_min_item_words")]
    pub min_item_words: usize,
}

fn default_ngram() -> usize {
    ContamParams::default().n
}

fn default_min_item_words() -> usize {
    ContamParams::default().min_item_words
}

impl Settings {
    fn params(&self) -> ContamParams {
        ContamParams { n: self.ngram, min_item_words: self.min_item_words }
    }
}

/// Read the benchmark's items (id, text) in order and index them.
fn load(
    files: &[InputFile],
    read: &ReadOptions,
    params: ContamParams,
    progress: &Progress,
    rejects: Option<&mut RejectWriter>,
) -> Result<(Benchmark, Vec<crate::source::FileStats>)> {
    params.validate()?;
    let (ids, texts, stats) = crate::passes::contamination::read_items(files, read, progress, rejects)?;
    let bench = Benchmark::new(params, ids, texts)?;
    if bench.skipped > 0 {
        eprintln!(
            "syllabus: {} of the benchmark's {} items have fewer than {} words and are skipped (--min-item-words)",
            bench.skipped,
            bench.len(),
            params.min_item_words
        );
    }
    Ok((bench, stats))
}

impl Method for Contamination {
    const INFO: Info = Info {
        name: "contamination",
        score_about:
            "Overlap with benchmark items by word n-grams (contam_frac, contam_ngrams, contam_item; the 13-gram rule)",
        select_about:
            "The k most contaminated documents (highest contam_frac; rows with a match only; ties: earlier row)",
        score_command: true,
        columns: &[COL_CONTAM_FRAC, COL_CONTAM_NGRAMS, COL_CONTAM_ITEM],
        fit: FitPass::Target,
        target_option: "against",
        sampling: Sampling::TopK,
        k_below_eligible: false,
        model_file: None,
        sql: Some("--against"),
        cluster: true,
    };
    type Settings = Settings;

    fn validate(s: &Settings) -> Result<()> {
        if s.against.is_empty() {
            return Err(Error::InvalidArgument("contamination needs a benchmark (--against, `against`)".into()));
        }
        s.params().validate()
    }

    fn target(s: &Settings) -> &[String] {
        &s.against
    }

    fn fit(s: &Settings, lake: &FitLake, rejects: Option<&mut RejectWriter>) -> Result<Fitted> {
        let files = expand_inputs(&s.against)?;
        let (bench, target_stats) = load(&files, lake.read, s.params(), lake.progress, rejects)?;
        Ok(Fitted { scorer: Arc::new(ContaminationScorer::new(Arc::new(bench))), target_stats })
    }

    fn decode(name: &str, state: &[u8]) -> Option<Result<Arc<dyn Scorer>>> {
        (name == "contamination").then(|| {
            let s: BenchmarkState = serde_json::from_slice(state)
                .map_err(|e| Error::InvalidArgument(format!("decoding a benchmark: {e}")))?;
            let bench = Benchmark::new(s.params, s.ids, s.texts)?;
            Ok(Arc::new(ContaminationScorer::new(Arc::new(bench))) as Arc<dyn Scorer>)
        })
    }

    fn from_target(target: &[InputFile], read: &ReadOptions, progress: &Progress) -> Option<Result<Arc<dyn Scorer>>> {
        Some(
            load(target, read, ContamParams::default(), progress, None)
                .map(|(b, _)| Arc::new(ContaminationScorer::new(Arc::new(b))) as Arc<dyn Scorer>),
        )
    }
}
