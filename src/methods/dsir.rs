//! DSIR (Xie et al. 2023): importance weights from hashed n-gram models of a target set and of
//! the lake, and Gumbel top-k importance resampling on them. The fit counts the target set and
//! the lake ([`crate::passes::dsir`]; on a cluster, the lake's counts run there); the scorer
//! is [`crate::score::dsir::DsirScorer`], its state the model file (`dsir_model.json`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize, Serializer};

use super::{FitLake, FitPass, Fitted, Info, Method, Sampling};
use crate::batch::{COL_DSIR_LOGW, COL_N_WORDS};
use crate::error::{Error, Result};
use crate::passes::dsir::{CachedDsir, DsirJob, DEFAULT_FEATURE_CACHE_MB};
use crate::score::dsir::{DsirModel, DsirParams, DsirScorer, DsirWordsScorer, FitBudget, NgramHash};
use crate::score::Scorer;
use crate::source::{expand_inputs, RejectWriter};

pub struct Dsir;

/// DSIR's settings. Unset model settings take the reference's defaults (data-selection 1.0.3),
/// or with `model` the saved model's.
#[derive(clap::Args, Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Target set: files, directories or globs.
    #[arg(long, num_args = 1..)]
    #[serde(default)]
    pub target: Vec<String>,
    /// Use a saved model (from --save-model) instead of fitting.
    #[arg(long, conflicts_with_all = ["target", "buckets", "ngrams", "hash", "target_smoothing", "fit_all"])]
    pub model: Option<PathBuf>,
    /// Save the fitted model here (JSON), to score other files or machines identically.
    #[arg(long)]
    #[serde(skip)]
    pub save_model: Option<PathBuf>,
    /// Number of hash buckets.
    #[arg(long)]
    #[serde(default, serialize_with = "buckets_or_default")]
    pub buckets: Option<u32>,
    /// Longest n-gram (2: unigrams and bigrams).
    #[arg(long)]
    #[serde(default, serialize_with = "ngrams_or_default")]
    pub ngrams: Option<usize>,
    /// Documents with fewer words are never selected.
    #[arg(long)]
    #[serde(default, serialize_with = "min_words_or_default")]
    pub min_words: Option<u64>,
    /// sha256: the reference's buckets; fast: xxh3, not reference-compatible.
    #[arg(long, value_enum)]
    #[serde(default, serialize_with = "hash_or_default")]
    pub hash: Option<NgramHash>,
    /// Pseudocount added to every target bucket count before normalising.
    #[arg(long)]
    #[serde(default, serialize_with = "smoothing_or_default")]
    pub target_smoothing: Option<f64>,
    /// Count every raw n-gram (the reference stops at 100000 * buckets).
    #[arg(long)]
    #[serde(default)]
    pub fit_all: bool,
    /// Memory for keeping documents' features between the fit and the scoring pass (MiB);
    /// 0 re-tokenizes every document. Never changes a result.
    #[arg(long, default_value_t = DEFAULT_FEATURE_CACHE_MB)]
    #[serde(default = "default_feature_cache_mb")]
    pub feature_cache_mb: usize,
}

fn default_feature_cache_mb() -> usize {
    DEFAULT_FEATURE_CACHE_MB
}

// An unset setting is written out (in a manifest's settings) as the reference's default, as
// the settings have always been recorded (with `model`, the model's own settings apply).
fn buckets_or_default<S: Serializer>(v: &Option<u32>, s: S) -> std::result::Result<S::Ok, S::Error> {
    v.unwrap_or(DsirParams::default().buckets).serialize(s)
}
fn ngrams_or_default<S: Serializer>(v: &Option<usize>, s: S) -> std::result::Result<S::Ok, S::Error> {
    v.unwrap_or(DsirParams::default().ngrams).serialize(s)
}
fn min_words_or_default<S: Serializer>(v: &Option<u64>, s: S) -> std::result::Result<S::Ok, S::Error> {
    v.unwrap_or(DsirParams::default().min_words).serialize(s)
}
fn hash_or_default<S: Serializer>(v: &Option<NgramHash>, s: S) -> std::result::Result<S::Ok, S::Error> {
    v.unwrap_or(DsirParams::default().hash).serialize(s)
}
fn smoothing_or_default<S: Serializer>(v: &Option<f64>, s: S) -> std::result::Result<S::Ok, S::Error> {
    v.unwrap_or(DsirParams::default().target_smoothing).serialize(s)
}

impl Settings {
    /// The model's settings: these, the defaults where unset.
    pub fn params(&self) -> DsirParams {
        let d = DsirParams::default();
        DsirParams {
            buckets: self.buckets.unwrap_or(d.buckets),
            ngrams: self.ngrams.unwrap_or(d.ngrams),
            min_words: self.min_words.unwrap_or(d.min_words),
            hash: self.hash.unwrap_or(d.hash),
            target_smoothing: self.target_smoothing.unwrap_or(d.target_smoothing),
        }
    }

    pub fn budget(&self) -> FitBudget {
        if self.fit_all {
            FitBudget::All
        } else {
            FitBudget::Auto
        }
    }

    /// The model of `model`, with `min_words` applied where set. A model brings its own
    /// settings: one set here that disagrees with it is an error (the command line refuses
    /// them with a model outright), one that agrees is accepted.
    fn saved_model(&self) -> Result<Option<DsirModel>> {
        let Some(p) = self.model.as_deref() else { return Ok(None) };
        let m = DsirModel::load(p)?;
        let differs = [
            ("buckets", self.buckets.is_some_and(|v| v != m.params.buckets)),
            ("ngrams", self.ngrams.is_some_and(|v| v != m.params.ngrams)),
            ("hash", self.hash.is_some_and(|v| v != m.params.hash)),
            ("target_smoothing", self.target_smoothing.is_some_and(|v| v != m.params.target_smoothing)),
        ];
        if let Some((name, _)) = differs.iter().find(|(_, d)| *d) {
            return Err(Error::Model {
                path: p.into(),
                message: format!("the model was fitted with other settings than `{name}` says: drop {name}"),
            });
        }
        let params = DsirParams { min_words: self.min_words.unwrap_or(m.params.min_words), ..m.params.clone() };
        Ok(Some(DsirModel::try_new(params, m.raw, m.target)?))
    }
}

impl Method for Dsir {
    const INFO: Info = Info {
        name: "dsir",
        score_about: "DSIR log importance weights (dsir_logw) and word counts (n_words)",
        select_about: "Importance resampling (Gumbel top-k) on DSIR weights",
        score_command: true,
        columns: &[COL_DSIR_LOGW, COL_N_WORDS],
        fit: FitPass::TargetAndLake,
        target_option: "target",
        sampling: Sampling::Gumbel { top_k_option: true },
        k_below_eligible: true,
        model_file: Some("dsir_model.json"),
        sql: Some("--dsir-model"),
        cluster: true,
    };
    type Settings = Settings;

    fn validate(s: &Settings) -> Result<()> {
        if s.model.is_none() && s.target.is_empty() {
            return Err(Error::InvalidArgument(
                "DSIR needs a target set (--target, `target`) or a saved model (--model, `model`)".into(),
            ));
        }
        s.params().validate()
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

    fn fit(s: &Settings, lake: &FitLake, rejects: Option<&mut RejectWriter>) -> Result<Fitted> {
        if let Some(model) = s.saved_model()? {
            return Ok(Fitted { scorer: Arc::new(DsirScorer::new(Arc::new(model))), target_stats: Vec::new() });
        }
        let target = expand_inputs(&s.target)?;
        let params = s.params();
        let job = DsirJob {
            raw: lake.raw,
            target: &target,
            read: lake.read,
            params: params.clone(),
            budget: s.budget(),
            feature_cache_bytes: if lake.counts.is_some() { 0 } else { s.feature_cache_mb << 20 },
            progress: lake.progress,
        };
        match lake.counts {
            // The target set here, the lake's counts where the lake is.
            Some(counts) => {
                params.validate()?;
                let (target_counts, target_stats) = job.count_target(rejects)?;
                let raw = counts.dsir_counts(&params, params.per_file_budget(s.budget(), lake.raw.len()))?;
                let model = DsirModel::try_new(params, raw, target_counts)?;
                Ok(Fitted { scorer: Arc::new(DsirScorer::new(Arc::new(model))), target_stats })
            }
            None => {
                let f = job.fit_in(lake.work, rejects)?;
                Ok(Fitted {
                    scorer: Arc::new(CachedDsir::new(Arc::new(f.model), f.cache)),
                    target_stats: f.target_stats,
                })
            }
        }
    }

    fn decode(name: &str, state: &[u8]) -> Option<Result<Arc<dyn Scorer>>> {
        match name {
            "dsir" => Some(
                DsirModel::from_bytes(state, Path::new("(the plan's DSIR model)"))
                    .map(|m| Arc::new(DsirScorer::new(Arc::new(m))) as Arc<dyn Scorer>),
            ),
            "dsir_words" => Some(
                serde_json::from_slice::<DsirParams>(state)
                    .map(|params| Arc::new(DsirWordsScorer { params }) as Arc<dyn Scorer>)
                    .map_err(|e| Error::InvalidArgument(format!("decoding DSIR settings: {e}"))),
            ),
            _ => None,
        }
    }

    fn from_model_file(path: &Path) -> Option<Result<Arc<dyn Scorer>>> {
        Some(DsirModel::load(path).map(|m| Arc::new(DsirScorer::new(Arc::new(m))) as Arc<dyn Scorer>))
    }
}
