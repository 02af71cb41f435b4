//! Moore-Lewis (Moore and Lewis 2010, "Intelligent Selection of Language Model Training
//! Data"): rank documents by the cross-entropy difference per word between a model of the
//! lake and a model of the target, H_lake(x) - H_target(x), highest first. With DSIR's hashed
//! n-gram models that is DSIR's log importance weight divided by the document's word count:
//! `moore_lewis = dsir_logw / max(1, n_words)` (nats per word). Unlike DSIR's weight it does
//! not grow with a document's length, so long documents do not win for being long.
//!
//! Everything but the division is DSIR's: the settings, the fit (target and lake counts, on
//! the cluster where the lake is), the saved model (`dsir_model.json`, which `--model` and
//! `syllabus sql --dsir-model` read), the minimum of words. A selection keeps the k highest.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array};
use arrow::datatypes::{DataType, Field};

use super::dsir::{Dsir, Settings};
use super::{FitLake, FitPass, Fitted, Info, Method, Sampling};
use crate::batch::{RecordBatch, COL_N_WORDS};
use crate::error::{Error, Result};
use crate::score::Scorer;
use crate::source::{RejectWriter, SourceBatch};

/// The score column: DSIR's log importance weight per word.
pub const COL_MOORE_LEWIS: &str = "moore_lewis";

pub struct MooreLewis;

impl Method for MooreLewis {
    const INFO: Info = Info {
        name: "moorelewis",
        score_about: "Moore-Lewis cross-entropy difference per word (moore_lewis = dsir_logw / n_words) under DSIR's hashed n-gram models, and n_words",
        select_about: "The k documents with the highest Moore-Lewis cross-entropy difference per word (ties: earlier row)",
        score_command: true,
        columns: &[COL_MOORE_LEWIS, COL_N_WORDS],
        fit: FitPass::TargetAndLake,
        target_option: "target",
        sampling: Sampling::TopK,
        k_below_eligible: false,
        model_file: Some("dsir_model.json"),
        sql: Some("--dsir-model"),
        cluster: true,
    };
    type Settings = Settings;

    fn validate(s: &Settings) -> Result<()> {
        Dsir::validate(s)
    }

    fn target(s: &Settings) -> &[String] {
        Dsir::target(s)
    }

    fn model(s: &Settings) -> Option<&Path> {
        Dsir::model(s)
    }

    fn save_to(s: &Settings) -> Option<&Path> {
        Dsir::save_to(s)
    }

    fn outputs(s: &mut Settings) -> Vec<&mut Option<PathBuf>> {
        Dsir::outputs(s)
    }

    fn fit(s: &Settings, lake: &FitLake, rejects: Option<&mut RejectWriter>) -> Result<Fitted> {
        let f = Dsir::fit(s, lake, rejects)?;
        Ok(Fitted { scorer: Arc::new(PerWord(f.scorer)), target_stats: f.target_stats })
    }

    fn decode(name: &str, state: &[u8]) -> Option<Result<Arc<dyn Scorer>>> {
        (name == Self::INFO.name).then(|| {
            let dsir = Dsir::decode("dsir", state).expect("DSIR decodes its own scorer")?;
            Ok(Arc::new(PerWord(dsir)) as Arc<dyn Scorer>)
        })
    }

    fn from_model_file(path: &Path) -> Option<Result<Arc<dyn Scorer>>> {
        Dsir::from_model_file(path).map(|r| r.map(|dsir| Arc::new(PerWord(dsir)) as Arc<dyn Scorer>))
    }
}

/// DSIR's scorer (with the features its fit kept, on a lake pass), per word.
struct PerWord(Arc<dyn Scorer>);

/// DSIR's columns (dsir_logw, n_words) to this method's (moore_lewis, n_words).
fn per_word(mut columns: Vec<ArrayRef>) -> Result<Vec<ArrayRef>> {
    let bad = || Error::InvalidArgument("DSIR's scores have an unexpected shape".into());
    let [logw, words] = columns.as_mut_slice() else { return Err(bad()) };
    let (l, w) = (
        logw.as_any().downcast_ref::<Float64Array>().ok_or_else(bad)?,
        words.as_any().downcast_ref::<Int64Array>().ok_or_else(bad)?,
    );
    let v: Float64Array = (0..l.len()).map(|i| Some(l.value(i) / w.value(i).max(1) as f64)).collect();
    *logw = Arc::new(v);
    Ok(columns)
}

impl Scorer for PerWord {
    fn name(&self) -> &'static str {
        MooreLewis::INFO.name
    }

    fn output_fields(&self) -> Vec<Field> {
        vec![Field::new(COL_MOORE_LEWIS, DataType::Float64, false), Field::new(COL_N_WORDS, DataType::Int64, false)]
    }

    fn score(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        per_word(self.0.score(batch)?)
    }

    fn score_rows(&self, b: &SourceBatch) -> Result<Vec<ArrayRef>> {
        per_word(self.0.score_rows(b)?)
    }

    fn kept_lake(&self) -> Option<&crate::source::KeptLake> {
        self.0.kept_lake()
    }

    fn scoring_done(&self) {
        self.0.scoring_done()
    }

    // The word count is the second column, as DSIR's: the same minimum of words applies.
    fn eligible(&self, columns: &[ArrayRef], i: usize) -> bool {
        self.0.eligible(columns, i)
    }

    fn eligibility(&self) -> String {
        self.0.eligibility()
    }

    fn eligible_sql(&self) -> Option<(String, Option<Arc<dyn Scorer>>)> {
        self.0.eligible_sql()
    }

    fn state(&self) -> Result<Vec<u8>> {
        self.0.state()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per word, and an empty document scores 0 (not NaN).
    #[test]
    fn the_score_is_dsirs_weight_per_word() {
        let cols: Vec<ArrayRef> =
            vec![Arc::new(Float64Array::from(vec![6.0, -3.0, 0.0])), Arc::new(Int64Array::from(vec![3, 2, 0]))];
        let out = per_word(cols).unwrap();
        let s = out[0].as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(s.values().to_vec(), vec![2.0, -1.5, 0.0]);
        assert_eq!(out[1].as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec(), vec![3, 2, 0]);
    }
}
