//! ZIP-FIT (Obbad et al. 2024): a document's alignment with a target set, the mean over the
//! targets of 1 - NCD under a compressor, and the k most aligned documents. The fit reads and
//! compresses the target set ([`crate::passes::zipfit`]); the scorer is
//! [`crate::score::zipfit::ZipfitScorer`], its state the settings and the target texts.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{FitLake, FitPass, Fitted, Info, Method, Sampling};
use crate::batch::COL_ZIPFIT;
use crate::error::{Error, Result};
use crate::passes::zipfit::{load_target, load_target_in};
use crate::progress::Progress;
use crate::score::zipfit::{ZipCompressor, ZipfitParams, ZipfitScorer, ZipfitState, ZipfitTarget};
use crate::score::Scorer;
use crate::source::{expand_inputs, InputFile, ReadOptions, RejectWriter};

pub struct Zipfit;

/// ZIP-FIT's settings.
#[derive(clap::Args, Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Target set: files, directories or globs.
    #[arg(long, num_args = 1.., required = true)]
    pub target: Vec<String>,
    /// gzip: CPython's gzip.compress lengths (the reference's); zstd: python-zstandard's;
    /// lz4: blocks, fast mode only. Default: gzip, or lz4 with --fast.
    #[arg(long, value_enum)]
    pub compressor: Option<ZipCompressor>,
    /// Compression level (default: gzip 6, zstd 3, zstd --fast -1; lz4: acceleration 1).
    #[arg(long, allow_negative_numbers = true)]
    pub level: Option<i32>,
    /// Each candidate loaded once as a dictionary (lz4, or zstd with --compressor zstd),
    /// C(x ++ t) taken as C(x) + C(t | x): much faster, approximate, not reference-compatible.
    #[arg(long)]
    #[serde(default)]
    pub fast: bool,
}

impl Settings {
    pub fn params(&self) -> ZipfitParams {
        ZipfitParams::with(self.compressor, self.level, self.fast)
    }
}

impl Method for Zipfit {
    const INFO: Info = Info {
        name: "zipfit",
        score_about: "ZIP-FIT alignment with a target set (zipfit: mean of 1 - NCD over the targets)",
        select_about: "The k documents most aligned with the target set by ZIP-FIT (ties: earlier row)",
        score_command: true,
        columns: &[COL_ZIPFIT],
        fit: FitPass::Target,
        target_option: "target",
        sampling: Sampling::TopK,
        k_below_eligible: false,
        model_file: None,
        sql: Some("--zipfit-target"),
        cluster: true,
    };
    type Settings = Settings;

    fn validate(s: &Settings) -> Result<()> {
        if s.target.is_empty() {
            return Err(Error::InvalidArgument("ZIP-FIT needs a target set (--target, `target`)".into()));
        }
        s.params().validate()
    }

    fn target(s: &Settings) -> &[String] {
        &s.target
    }

    fn fit(s: &Settings, lake: &FitLake, rejects: Option<&mut RejectWriter>) -> Result<Fitted> {
        let target = expand_inputs(&s.target)?;
        let (target, target_stats) = match lake.counts {
            // On a cluster the target is read here, without keeping work.
            Some(_) => load_target(&target, lake.read, s.params(), lake.progress, rejects)?,
            None => load_target_in(&target, lake.read, s.params(), lake.progress, lake.work, rejects)?,
        };
        Ok(Fitted { scorer: Arc::new(ZipfitScorer::new(Arc::new(target))), target_stats })
    }

    fn decode(name: &str, state: &[u8]) -> Option<Result<Arc<dyn Scorer>>> {
        (name == "zipfit").then(|| {
            let s: ZipfitState = serde_json::from_slice(state)
                .map_err(|e| Error::InvalidArgument(format!("decoding a ZIP-FIT target: {e}")))?;
            let target = ZipfitTarget::try_new(s.params, s.texts)?;
            Ok(Arc::new(ZipfitScorer::new(Arc::new(target))) as Arc<dyn Scorer>)
        })
    }

    fn from_target(target: &[InputFile], read: &ReadOptions, progress: &Progress) -> Option<Result<Arc<dyn Scorer>>> {
        let params = ZipfitParams::with(None, None, false);
        Some(
            load_target(target, read, params, progress, None)
                .map(|(t, _)| Arc::new(ZipfitScorer::new(Arc::new(t))) as Arc<dyn Scorer>),
        )
    }
}
