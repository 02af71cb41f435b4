//! Whether a candidate holds text of a validation set. The benchmark-contamination rule
//! ([`crate::score::contamination`], 13-grams) with a validation set's documents as the
//! benchmark and a candidate's documents as the lake: a candidate that holds them learns part
//! of what it is measured on, and its loss there says less about the selection. `eval`
//! warns, and `eval.json` records each pair's count (`overlaps`).
//!
//! Candidates that are curricula (token shards, no text) are not checked. A validation set is
//! taken whole (all its files' documents, not only the `valid_tokens` that are scored), so the
//! check errs towards warning. Memory: one validation set's index at a time, and one batch.

use std::sync::Arc;

use arrow::array::{Array, Int64Array};
use serde::Serialize;

use super::data::{is_curriculum, table_paths};
use super::EvalSpec;
use crate::batch::{id_column, text_column};
use crate::error::Result;
use crate::score::contamination::{Benchmark, ContamParams, ContaminationScorer};
use crate::score::Scorer;
use crate::source::{expand_inputs, Extras, LakeReader, ReadOptions};

/// One candidate's documents that share an n-gram with one validation set.
#[derive(Debug, Clone, Serialize)]
pub struct Overlap {
    pub candidate: String,
    pub valid: String,
    /// Documents of the candidate with a match.
    pub documents: u64,
    /// Documents of the candidate.
    pub of: u64,
}

/// Every (candidate, validation set) pair with at least one shared n-gram.
pub fn find(spec: &EvalSpec, read: &ReadOptions) -> Result<Vec<Overlap>> {
    let mut found = Vec::new();
    let tables: Vec<_> = spec.candidates.iter().filter(|c| !is_curriculum(&c.path)).collect();
    if tables.is_empty() {
        return Ok(found);
    }
    for (valid, paths) in &spec.valid {
        let (mut ids, mut texts) = (Vec::new(), Vec::new());
        for b in LakeReader::new(&expand_inputs(paths)?, read, Extras::none(), None) {
            let b = b?;
            let (id, text) = (id_column(&b.batch)?, text_column(&b.batch)?);
            for i in 0..b.batch.num_rows() {
                ids.push(id.value(i).to_string());
                texts.push(if text.is_null(i) { String::new() } else { text.value(i).to_string() });
            }
        }
        // A validation set whose documents are all shorter than an item may be cannot match.
        let Ok(bench) = Benchmark::new(ContamParams::default(), ids, texts) else { continue };
        let scorer = ContaminationScorer::new(Arc::new(bench));
        for c in &tables {
            let (mut documents, mut of) = (0u64, 0u64);
            for b in LakeReader::new(&expand_inputs(&table_paths(&c.path))?, read, Extras::none(), None) {
                let b = b?;
                let cols = scorer.score(&b.batch)?;
                let ngrams = cols[1].as_any().downcast_ref::<Int64Array>().expect("contam_ngrams is int64");
                documents += ngrams.values().iter().filter(|&&n| n > 0).count() as u64;
                of += ngrams.len() as u64;
            }
            if documents > 0 {
                found.push(Overlap { candidate: c.name.clone(), valid: valid.clone(), documents, of });
            }
        }
    }
    Ok(found)
}
