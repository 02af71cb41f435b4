//! Classifier selection: a fastText supervised model's probability of the wanted label(s) per
//! document, and the k highest. The model is the user's (any fastText `.bin` / `.ftz`,
//! `--model`) or one the fit trains from a target set (`--target`):
//!
//! - DCLM's recipe (the default): the target set is the positives, a seeded sample of the lake
//!   the negatives;
//! - BETR's (`--label-by dsir|zipfit`): a seeded sample of the lake is scored by its similarity
//!   to the target (DSIR or ZIP-FIT), its top `--positive-fraction` labelled positive and the
//!   rest negative; the classifier learns that labelling and scores the whole lake cheaply.
//!
//! The scorer is [`crate::classifier::ClassifierScorer`]; its saved model (`--save-model`, a
//! pipeline's `classifier.bin`) is a fastText `.bin`, its state (the cluster's) the model
//! file's bytes and the options.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{FitLake, FitPass, Fitted, Info, Method, Sampling};
use crate::classifier::train::{read_texts, sample_texts, train, Example, Hyper};
use crate::classifier::{ClassifierScorer, Loss, Newlines, ScoreOptions, Source, COL_CLF_LABEL, COL_CLF_PROB};
use crate::error::{Error, Result};
use crate::score::Scorer;
use crate::source::{expand_inputs, RejectWriter};

pub struct Classifier;

/// How BETR labels the lake sample: by a target-similarity method's score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LabelBy {
    Dsir,
    Zipfit,
}

/// The classifier's settings.
#[derive(clap::Args, Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// A fastText supervised model: .bin or quantized .ftz (fastText 0.9's format).
    #[arg(long, conflicts_with_all = ["target", "label_by"], required_unless_present = "target")]
    pub model: Option<PathBuf>,
    /// Train the classifier instead, from this target set: positives against a seeded sample of
    /// the lake (DCLM), or, with --label-by, the lake sample labelled by its similarity to it (BETR).
    #[arg(long, num_args = 1..)]
    #[serde(default)]
    pub target: Vec<String>,
    /// Lake documents drawn for training (default: DCLM as many as the target's; BETR 2000).
    #[arg(long, requires = "target")]
    pub sample: Option<u64>,
    /// BETR: label the lake sample by this method's score against the target.
    #[arg(long, value_enum, requires = "target")]
    pub label_by: Option<LabelBy>,
    /// BETR: the top fraction of the scored sample that is positive.
    #[arg(long, requires = "label_by")]
    pub positive_fraction: Option<f64>,
    /// Save the model here (fastText's .bin; a given model is copied).
    #[arg(long)]
    #[serde(skip)]
    pub save_model: Option<PathBuf>,
    /// Training: fastText's -epoch.
    #[arg(long, requires = "target")]
    pub epoch: Option<usize>,
    /// Training: learning rate.
    #[arg(long, requires = "target")]
    pub lr: Option<f64>,
    /// Training: vector dimension.
    #[arg(long, requires = "target")]
    pub dim: Option<usize>,
    /// Training: word n-grams up to this length (2, DCLM's bigrams).
    #[arg(long, requires = "target")]
    pub word_ngrams: Option<usize>,
    /// Training: words seen fewer times are left out.
    #[arg(long, requires = "target")]
    pub min_count: Option<u64>,
    /// Training: hash buckets of n-grams.
    #[arg(long, requires = "target")]
    pub bucket: Option<usize>,
    /// Training: the loss.
    #[arg(long, value_enum, requires = "target")]
    pub loss: Option<Loss>,
    /// Training: the seed of the sample, the initialisation and the example order.
    #[arg(long, requires = "target")]
    pub train_seed: Option<u64>,
    /// The label whose probability is clf_prob (with or without `__label__`; repeated: their
    /// sum). Default: the model's first label (`positive` for a trained one).
    #[arg(long = "label")]
    #[serde(default)]
    pub label: Vec<String>,
    /// Also write one clf_<label> column per label.
    #[arg(long)]
    #[serde(default)]
    pub all_labels: bool,
    /// What a newline becomes: a space (DCLM's way; fastText reads one line) or fastText's
    /// end-of-line token.
    #[arg(long, value_enum, default_value_t)]
    #[serde(default)]
    pub newlines: Newlines,
}

impl Settings {
    pub fn options(&self) -> ScoreOptions {
        ScoreOptions { labels: self.label.clone(), all_labels: self.all_labels, newlines: self.newlines }
    }

    /// fastText's defaults, DCLM's bigrams, and what the settings change.
    pub fn hyper(&self) -> Hyper {
        let d = Hyper { word_ngrams: 2, ..Hyper::default() };
        Hyper {
            lr: self.lr.unwrap_or(d.lr),
            dim: self.dim.unwrap_or(d.dim),
            epoch: self.epoch.unwrap_or(d.epoch),
            min_count: self.min_count.unwrap_or(d.min_count),
            word_ngrams: self.word_ngrams.unwrap_or(d.word_ngrams),
            bucket: self.bucket.unwrap_or(d.bucket),
            loss: self.loss.unwrap_or(d.loss),
            seed: self.train_seed.unwrap_or(d.seed),
            newlines: self.newlines,
            ..d
        }
    }

    fn positive_fraction(&self) -> f64 {
        self.positive_fraction.unwrap_or(0.1)
    }
}

impl Method for Classifier {
    const INFO: Info = Info {
        name: "classifier",
        score_about: "A fastText classifier's probability of a label (clf_prob) and its top label (clf_label): fastText 0.9's numbers; the model given, or trained on a target set (DCLM, BETR)",
        select_about: "The k documents a fastText classifier scores highest for a label (DCLM's selection; ties: earlier row); the model given, or trained on a target set",
        score_command: true,
        columns: &[COL_CLF_PROB, COL_CLF_LABEL],
        fit: FitPass::Model,
        target_option: "model",
        sampling: Sampling::TopK,
        k_below_eligible: false,
        model_file: Some("classifier.bin"),
        sql: Some("--classifier-model"),
        cluster: true,
    };
    type Settings = Settings;

    fn validate(s: &Settings) -> Result<()> {
        match (&s.model, s.target.is_empty()) {
            (Some(_), false) => {
                return Err(Error::InvalidArgument(
                    "the classifier takes a model or a target set to train on, not both".into(),
                ))
            }
            (None, true) => {
                return Err(Error::InvalidArgument(
                    "the classifier needs a model (--model, `model`) or a target set to train on (--target, `target`)"
                        .into(),
                ))
            }
            _ => {}
        }
        if s.model.is_some() && (s.label_by.is_some() || s.sample.is_some()) {
            return Err(Error::InvalidArgument(
                "--sample and --label-by train a classifier: they need --target, not --model".into(),
            ));
        }
        let f = s.positive_fraction();
        if !(f > 0.0 && f < 1.0) {
            return Err(Error::InvalidArgument(format!("positive_fraction {f}: must be between 0 and 1")));
        }
        if s.sample == Some(0) {
            return Err(Error::InvalidArgument("sample: must be at least 1".into()));
        }
        s.hyper().validate()
    }

    fn target(s: &Settings) -> &[String] {
        &s.target
    }

    fn model(s: &Settings) -> Option<&Path> {
        s.model.as_deref()
    }

    fn save_to(s: &Settings) -> Option<&Path> {
        s.save_model.as_deref()
    }

    fn outputs(s: &mut Settings) -> Vec<&mut Option<PathBuf>> {
        vec![&mut s.save_model]
    }

    fn fit(s: &Settings, lake: &FitLake, mut rejects: Option<&mut RejectWriter>) -> Result<Fitted> {
        if let Some(m) = &s.model {
            return Ok(Fitted { scorer: Arc::new(ClassifierScorer::open(m, s.options())?), target_stats: Vec::new() });
        }
        let h = s.hyper();
        let target = expand_inputs(&s.target)?;
        let labels = vec!["__label__positive".to_string(), "__label__negative".to_string()];
        let (positives, negatives) = match s.label_by {
            None => {
                let positives = read_texts(&target, lake.read, rejects.as_deref_mut())?;
                let n = s.sample.unwrap_or(positives.len() as u64);
                let negatives = sample_texts(lake.raw, lake.read, n, h.seed, rejects.as_deref_mut())?;
                (positives, negatives)
            }
            Some(by) => betr_labels(s, by, lake, rejects)?,
        };
        if positives.is_empty() || negatives.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "the classifier's training set has {} positives and {} negatives: it needs both",
                positives.len(),
                negatives.len()
            )));
        }
        let mut examples: Vec<Example> = positives.iter().map(|t| Example { labels: &[0], text: t }).collect();
        examples.extend(negatives.iter().map(|t| Example { labels: &[1], text: t }));
        let bar = lake.progress.counted("training the classifier", (examples.len() * h.epoch) as u64);
        let model = train(&examples, &labels, &h, &|d| bar.set_position(d))?;
        bar.finish_and_clear();
        let scorer = ClassifierScorer::new(Arc::new(model), Source::Trained, s.options())?;
        Ok(Fitted { scorer: Arc::new(scorer), target_stats: Vec::new() })
    }

    fn decode(name: &str, state: &[u8]) -> Option<Result<Arc<dyn Scorer>>> {
        (name == "classifier").then(|| crate::classifier::decode(state).map(|s| Arc::new(s) as Arc<dyn Scorer>))
    }

    fn from_model_file(path: &Path) -> Option<Result<Arc<dyn Scorer>>> {
        let options = ScoreOptions { labels: Vec::new(), all_labels: false, newlines: Newlines::Space };
        Some(ClassifierScorer::open(path, options).map(|s| Arc::new(s) as Arc<dyn Scorer>))
    }
}

/// BETR's training set: a seeded lake sample scored by DSIR or ZIP-FIT against the target; the
/// top fraction positive, the rest negative (ties: earlier in the sample).
fn betr_labels(
    s: &Settings,
    by: LabelBy,
    lake: &FitLake,
    mut rejects: Option<&mut RejectWriter>,
) -> Result<(Vec<String>, Vec<String>)> {
    let h = s.hyper();
    let sample = sample_texts(lake.raw, lake.read, s.sample.unwrap_or(2000), h.seed, rejects.as_deref_mut())?;
    if sample.len() < 2 {
        return Err(Error::InvalidArgument(format!(
            "BETR labels a sample of the lake: {} document(s) drawn, at least 2 needed",
            sample.len()
        )));
    }
    let settings = serde_json::json!({ "target": s.target });
    let fit = FitLake { raw: lake.raw, read: lake.read, progress: lake.progress, work: None, counts: lake.counts };
    let scorer = match by {
        LabelBy::Dsir => {
            // Only the sample is scored: the fit keeps no features for a scoring pass.
            let settings = serde_json::json!({ "target": s.target, "feature_cache_mb": 0 });
            let st = serde_json::from_value(settings).map_err(|e| Error::InvalidArgument(e.to_string()))?;
            super::dsir::Dsir::fit(&st, &fit, rejects)?.scorer
        }
        LabelBy::Zipfit => {
            let st = serde_json::from_value(settings).map_err(|e| Error::InvalidArgument(e.to_string()))?;
            super::zipfit::Zipfit::fit(&st, &fit, rejects)?.scorer
        }
    };
    let batch = crate::batch::text_batch(arrow::array::StringArray::from_iter_values(sample.iter()))?;
    let cols = scorer.score(&batch)?;
    let score = cols[0]
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .ok_or_else(|| Error::InvalidArgument("a ranking score is float64".into()))?;
    // Rows a method would never select (DSIR's short documents) rank last.
    let mut order: Vec<usize> = (0..sample.len()).collect();
    let key = |i: usize| {
        if scorer.eligible(&cols, i) && !score.value(i).is_nan() {
            score.value(i)
        } else {
            f64::NEG_INFINITY
        }
    };
    order.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b)));
    let top = ((sample.len() as f64 * s.positive_fraction()).round() as usize)
        .clamp(1, sample.len().saturating_sub(1).max(1));
    let mut positive = vec![false; sample.len()];
    for &i in &order[..top] {
        positive[i] = true;
    }
    let (mut pos, mut neg) = (Vec::new(), Vec::new());
    for (t, p) in sample.into_iter().zip(positive) {
        if p {
            pos.push(t)
        } else {
            neg.push(t)
        }
    }
    Ok((pos, neg))
}

/// Each document's domain is its top label in a `score classifier` table (`id`, `clf_label`),
/// by id: a language-id or topic model's label as the key of a curriculum's mixture
/// (`curriculum --domain-from-label`, a pipeline's `domain_field = "clf_label"`). Rows the
/// model predicted nothing for (a null label) are domain `none`. Memory: the table by id.
pub fn label_domains(table: &Path) -> Result<crate::curriculum::prepare::DomainOf> {
    use arrow::array::Array;
    let files = [crate::source::InputFile::new(table)?];
    let read = crate::source::ReadOptions { text_field: "id".into(), ..Default::default() };
    let field = arrow::datatypes::Field::new(COL_CLF_LABEL, arrow::datatypes::DataType::Utf8, true);
    let extras = crate::source::Extras { fields: vec![field] };
    let mut by_id = std::collections::HashMap::new();
    for b in crate::source::LakeReader::new(&files, &read, extras, None) {
        let b = b?;
        let ids = crate::batch::id_column(&b.batch)?;
        let col = b.batch.column_by_name(COL_CLF_LABEL).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{}: no {COL_CLF_LABEL} column (a `score classifier` table?)",
                table.display()
            ))
        })?;
        let labels = col.as_any().downcast_ref::<arrow::array::StringArray>().ok_or_else(|| {
            Error::InvalidArgument(format!("{}: {COL_CLF_LABEL} is not a string column", table.display()))
        })?;
        for i in 0..ids.len() {
            let label = if labels.is_null(i) { "none".to_string() } else { labels.value(i).to_string() };
            if by_id.insert(ids.value(i).to_string(), label).is_some() {
                return Err(Error::InvalidArgument(format!(
                    "{}: the id {:?} appears twice",
                    table.display(),
                    ids.value(i)
                )));
            }
        }
    }
    let what = format!("the classifier's labels {}", table.display());
    Ok(crate::curriculum::prepare::DomainOf::ById { what, by_id: std::sync::Arc::new(by_id) })
}
