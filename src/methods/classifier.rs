//! Classifier selection (DCLM's recipe): a fastText supervised model's probability of the
//! wanted label(s) per document, and the k highest. Nothing is fitted here: the model is the
//! user's (any fastText `.bin` / `.ftz`) or one `syllabus classifier train` made. The scorer is
//! [`crate::classifier::ClassifierScorer`]; its state (the cluster's) is the model file itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{FitLake, FitPass, Fitted, Info, Method, Sampling};
use crate::classifier::{ClassifierScorer, Newlines, ScoreOptions, COL_CLF_LABEL, COL_CLF_PROB};
use crate::error::{Error, Result};
use crate::score::Scorer;
use crate::source::RejectWriter;

pub struct Classifier;

/// The classifier's settings.
#[derive(clap::Args, Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// A fastText supervised model: .bin or quantized .ftz (fastText 0.9's format).
    #[arg(long, required = true)]
    pub model: PathBuf,
    /// The label whose probability is clf_prob (with or without `__label__`; repeated: their
    /// sum). Default: the model's first label (`positive` for `syllabus classifier train`'s).
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
}

impl Method for Classifier {
    const INFO: Info = Info {
        name: "classifier",
        score_about: "A fastText classifier's probability of a label (clf_prob) and its top label (clf_label): fastText 0.9's numbers",
        select_about: "The k documents a fastText classifier scores highest for a label (DCLM's selection; ties: earlier row)",
        score_command: true,
        columns: &[COL_CLF_PROB, COL_CLF_LABEL],
        fit: FitPass::Model,
        target_option: "model",
        sampling: Sampling::TopK,
        k_below_eligible: false,
        model_file: None,
        sql: Some("--classifier-model"),
        cluster: true,
    };
    type Settings = Settings;

    fn validate(s: &Settings) -> Result<()> {
        if s.model.as_os_str().is_empty() {
            return Err(Error::InvalidArgument("the classifier needs a model (--model, `model`)".into()));
        }
        Ok(())
    }

    fn model(s: &Settings) -> Option<&Path> {
        Some(&s.model)
    }

    fn fit(s: &Settings, _: &FitLake, _: Option<&mut RejectWriter>) -> Result<Fitted> {
        Ok(Fitted { scorer: Arc::new(ClassifierScorer::open(&s.model, s.options())?), target_stats: Vec::new() })
    }

    fn decode(name: &str, state: &[u8]) -> Option<Result<Arc<dyn Scorer>>> {
        (name == "classifier").then(|| crate::classifier::decode(state).map(|s| Arc::new(s) as Arc<dyn Scorer>))
    }

    fn from_model_file(path: &Path) -> Option<Result<Arc<dyn Scorer>>> {
        let options = ScoreOptions { labels: Vec::new(), all_labels: false, newlines: Newlines::Space };
        Some(ClassifierScorer::open(path, options).map(|s| Arc::new(s) as Arc<dyn Scorer>))
    }
}
