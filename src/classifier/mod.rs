//! Quality classifiers: fastText-compatible supervised models, read, applied and trained by
//! syllabus itself.
//!
//! - [`fasttext`]: the `.bin` / `.ftz` format, the dictionary and prediction, with fastText 0.9's
//!   own numbers (the module doc says what has to be exact for that).
//! - [`ClassifierScorer`]: a model as a [`Scorer`]: per row `clf_prob` (the probability of the
//!   chosen labels, summed; by default the model's first label), `clf_label` (the top label,
//!   without fastText's `__label__` prefix) and, on request, `clf_<label>` for every label.
//! - [`train`]: supervised training with fastText's hyperparameters, deterministic whatever the
//!   thread count, written as a `.bin` fastText loads.
//!
//! Memory: the model (fastText's own size: `(words + buckets) x dim` floats) plus a batch.

pub mod fasttext;
pub mod train;

use std::path::{Path, PathBuf};

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Builder, StringBuilder};
use arrow::datatypes::{DataType, Field};

use crate::batch::{text_column, RecordBatch};
use crate::error::{Error, Result};
use crate::score::Scorer;
pub use fasttext::{Loss, Model, Newlines};

/// The probability of the chosen labels (float64).
pub const COL_CLF_PROB: &str = "clf_prob";
/// The top label, without `__label__` (UTF-8; null when the model predicts nothing).
pub const COL_CLF_LABEL: &str = "clf_label";

/// A label as users write it: without fastText's prefix.
pub fn label_name(label: &[u8]) -> String {
    let s = String::from_utf8_lossy(label);
    s.strip_prefix(fasttext::LABEL_PREFIX).unwrap_or(&s).to_string()
}

/// How a classifier scores.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ScoreOptions {
    /// Labels whose probabilities `clf_prob` sums (with or without `__label__`); none: the
    /// model's first label.
    pub labels: Vec<String>,
    /// One `clf_<label>` column per label.
    pub all_labels: bool,
    pub newlines: Newlines,
}

/// A fastText model as a scorer.
pub struct ClassifierScorer {
    model: Arc<Model>,
    /// Where the model came from: its file, the bytes a cluster shipped, or training.
    source: Source,
    options: ScoreOptions,
    /// `options.labels` as label indices.
    chosen: Vec<usize>,
    /// The labels without `__label__`.
    names: Vec<String>,
}

/// Where a model's bytes are when the scorer's state or saved model is asked for.
#[derive(Clone)]
pub enum Source {
    /// A file (read again when needed: a large model is not held twice).
    File(PathBuf),
    /// A file's bytes, as a cluster worker gets them.
    Bytes(PathBuf, Arc<Vec<u8>>),
    /// Trained here: written from the model (dense, fastText's `.bin`).
    Trained,
}

impl Source {
    fn name(&self) -> PathBuf {
        match self {
            Source::File(p) | Source::Bytes(p, _) => p.clone(),
            Source::Trained => PathBuf::from("trained classifier"),
        }
    }
}

impl ClassifierScorer {
    pub fn new(model: Arc<Model>, source: Source, options: ScoreOptions) -> Result<ClassifierScorer> {
        let names: Vec<String> = (0..model.nlabels()).map(|i| label_name(model.dict.label(i))).collect();
        let mut chosen = if options.labels.is_empty() {
            vec![0]
        } else {
            options
                .labels
                .iter()
                .map(|l| {
                    let l = l.strip_prefix(fasttext::LABEL_PREFIX).unwrap_or(l);
                    names.iter().position(|n| n == l).ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "{}: no label {l:?} (the model's labels: {})",
                            source.name().display(),
                            names.join(", ")
                        ))
                    })
                })
                .collect::<Result<Vec<usize>>>()?
        };
        chosen.sort_unstable();
        chosen.dedup();
        if options.all_labels {
            let mut seen: std::collections::HashSet<String> =
                [COL_CLF_PROB.to_string(), COL_CLF_LABEL.to_string()].into();
            if let Some(twice) = names.iter().map(|n| format!("clf_{n}")).find(|c| !seen.insert(c.clone())) {
                return Err(Error::InvalidArgument(format!(
                    "{}: --all-labels would write the column {twice} twice (the model's labels: {})",
                    source.name().display(),
                    names.join(", ")
                )));
            }
        }
        Ok(ClassifierScorer { model, source, options, chosen, names })
    }

    /// Read the model at `path`.
    pub fn open(path: &Path, options: ScoreOptions) -> Result<ClassifierScorer> {
        ClassifierScorer::new(Arc::new(Model::load(path)?), Source::File(path.to_path_buf()), options)
    }

    /// The model file's bytes (a trained model written as fastText's `.bin`).
    pub fn model_bytes(&self) -> Result<Vec<u8>> {
        match &self.source {
            Source::File(p) => std::fs::read(p).map_err(|e| Error::io(p, e)),
            Source::Bytes(_, b) => Ok(b.to_vec()),
            Source::Trained => self.model.to_bytes(),
        }
    }

    /// The labels' names (without `__label__`), in the model's order.
    pub fn labels(&self) -> &[String] {
        &self.names
    }
}

/// The state the cluster ships: the options and the model file's bytes.
#[derive(serde::Serialize, serde::Deserialize)]
struct State {
    options: ScoreOptions,
    name: PathBuf,
    #[serde(with = "serde_bytes_b64")]
    model: Vec<u8>,
}

/// Bytes in JSON as hex (models are small enough to ship; a JSON array of numbers is 4x larger).
mod serde_bytes_b64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(b.len() * 2);
        for x in b {
            out.push(HEX[(x >> 4) as usize] as char);
            out.push(HEX[(x & 15) as usize] as char);
        }
        s.serialize_str(&out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd hex length"));
        }
        let digit = |c: u8| (c as char).to_digit(16).ok_or_else(|| serde::de::Error::custom("not a hex digit"));
        s.as_bytes().chunks(2).map(|p| Ok((digit(p[0])? * 16 + digit(p[1])?) as u8)).collect()
    }
}

/// The scorer a cluster worker rebuilds from [`Scorer::state`].
pub fn decode(state: &[u8]) -> Result<ClassifierScorer> {
    let s: State =
        serde_json::from_slice(state).map_err(|e| Error::InvalidArgument(format!("decoding a classifier: {e}")))?;
    let model = Model::from_bytes(&s.model, &s.name)?;
    ClassifierScorer::new(Arc::new(model), Source::Bytes(s.name, Arc::new(s.model)), s.options)
}

impl Scorer for ClassifierScorer {
    fn name(&self) -> &'static str {
        "classifier"
    }

    fn output_fields(&self) -> Vec<Field> {
        let mut f =
            vec![Field::new(COL_CLF_PROB, DataType::Float64, false), Field::new(COL_CLF_LABEL, DataType::Utf8, true)];
        if self.options.all_labels {
            f.extend(self.labels().iter().map(|l| Field::new(format!("clf_{l}"), DataType::Float64, false)));
        }
        f
    }

    fn score(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        let text = text_column(batch)?;
        let n = text.len();
        let nl = self.model.nlabels();
        let names = &self.names;
        let mut prob = Float64Builder::with_capacity(n);
        let mut label = StringBuilder::with_capacity(n, n * 8);
        let mut all: Vec<Float64Builder> = if self.options.all_labels {
            (0..nl).map(|_| Float64Builder::with_capacity(n)).collect()
        } else {
            Vec::new()
        };
        let mut s = fasttext::Scratch::default();
        let mut p = vec![0f64; nl];
        for i in 0..n {
            let t = if text.is_null(i) { "" } else { text.value(i) };
            self.model.predict(t.as_bytes(), self.options.newlines, &mut s)?;
            p.iter_mut().for_each(|x| *x = 0.0);
            for &(score, l) in &s.heap {
                p[l as usize] = score.exp() as f64;
            }
            prob.append_value(self.chosen.iter().map(|&l| p[l]).sum());
            match s.heap.first() {
                Some(&(_, l)) => label.append_value(&names[l as usize]),
                None => label.append_null(),
            }
            for (b, v) in all.iter_mut().zip(&p) {
                b.append_value(*v);
            }
        }
        let mut out: Vec<ArrayRef> = vec![Arc::new(prob.finish()), Arc::new(label.finish())];
        out.extend(all.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
        Ok(out)
    }

    fn state(&self) -> Result<Vec<u8>> {
        let s = State { options: self.options.clone(), name: self.source.name(), model: self.model_bytes()? };
        serde_json::to_vec(&s).map_err(|e| Error::InvalidArgument(format!("encoding a classifier: {e}")))
    }

    fn saved(&self) -> Result<Vec<u8>> {
        self.model_bytes()
    }
}
