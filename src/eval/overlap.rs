//! Whether a candidate holds text of a validation set. The benchmark-contamination rule
//! ([`crate::score::contamination`], 13-grams) with a validation set's documents as the
//! benchmark and a candidate's documents as the lake: a candidate that holds them learns part
//! of what it is measured on, and its loss there says less about the selection. `eval`
//! warns, and `eval.json` records each pair's count (`overlaps`).
//!
//! Candidates and validation sets that are curricula (token shards, no text) are not checked. A validation set is
//! taken whole (all its files' documents, not only the `valid_tokens` that are scored), so the
//! check errs towards warning. Memory: every validation set's index (validation sets are
//! small), and one batch of a candidate.

use std::sync::Arc;

use arrow::array::Int64Array;
use serde::Serialize;

use super::data::{is_curriculum, table_paths};
use super::EvalSpec;
use crate::error::Result;
use crate::passes::contamination::read_items;
use crate::progress::Progress;
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

/// Every (candidate, validation set) pair with at least one shared n-gram, by candidate then
/// validation set. Each candidate is read once, against every validation set's index.
pub fn find(spec: &EvalSpec, read: &ReadOptions) -> Result<Vec<Overlap>> {
    let mut found = Vec::new();
    let tables: Vec<_> = spec.candidates.iter().filter(|c| !is_curriculum(&c.path)).collect();
    if tables.is_empty() {
        return Ok(found);
    }
    let quiet = Progress::new(true);
    let mut scorers = Vec::new();
    for (valid, paths) in &spec.valid {
        // A curriculum as a validation set is token shards, not text: not checked (as a
        // curriculum candidate is not).
        if let [one] = paths.as_slice() {
            if is_curriculum(one) {
                continue;
            }
        }
        let (ids, texts, _) = read_items(&expand_inputs(paths)?, read, &quiet, None)?;
        // A validation set whose documents are all shorter than an item may be cannot match.
        if let Ok(bench) = Benchmark::new(ContamParams::default(), ids, texts) {
            scorers.push((valid, ContaminationScorer::new(Arc::new(bench))));
        }
    }
    if scorers.is_empty() {
        return Ok(found);
    }
    for c in &tables {
        let mut documents = vec![0u64; scorers.len()];
        let mut of = 0u64;
        for b in LakeReader::new(&expand_inputs(&table_paths(&c.path))?, read, Extras::none(), None) {
            let b = b?;
            of += b.batch.num_rows() as u64;
            for ((_, scorer), n) in scorers.iter().zip(&mut documents) {
                let cols = scorer.score(&b.batch)?;
                let ngrams = cols[1].as_any().downcast_ref::<Int64Array>().expect("contam_ngrams is int64");
                *n += ngrams.values().iter().filter(|&&x| x > 0).count() as u64;
            }
        }
        for ((valid, _), documents) in scorers.iter().zip(documents) {
            if documents > 0 {
                found.push(Overlap { candidate: c.name.clone(), valid: (*valid).clone(), documents, of });
            }
        }
    }
    Ok(found)
}
