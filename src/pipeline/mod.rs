//! Jobs: the stages put together, for the CLI commands and for `syllabus run PIPELINE.toml`.

pub mod dsir;
pub mod scored;
pub mod zipfit;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{PipelineConfig, SelectConfig};
use crate::error::Result;
use crate::score::dsir::DsirModel;
use crate::select::Noise;
use crate::source::{expand_inputs, BadRecordPolicy, RejectWriter};

pub use dsir::{DsirJob, DsirRowScorer, FeatureCache, Fitted};
pub use scored::{Keep, RowScorer, RunReport, ScoredLake};
pub use zipfit::ZipfitRowScorer;

/// Progress bars on stderr, only when it is a terminal and not `--quiet`.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    enabled: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        Progress { enabled: !quiet && std::io::stderr().is_terminal() }
    }

    /// A counter of rows for one pass.
    pub fn rows(&self, label: &str) -> ProgressBar {
        if !self.enabled {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg:<12} {human_pos} rows  {per_sec}  {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }
}

/// What `syllabus run` produced.
#[derive(Debug, serde::Serialize)]
pub struct RunSummary {
    pub name: String,
    pub method: &'static str,
    pub report: RunReport,
    pub outputs: Vec<PathBuf>,
}

/// Run a pipeline config, writing under `out_dir` (the config's unless overridden).
pub fn run(cfg: &PipelineConfig, out_dir: Option<&Path>, progress: &Progress) -> Result<RunSummary> {
    crate::par::init_threads(cfg.threads);
    let out_dir = out_dir.unwrap_or(&cfg.out_dir);
    let read = cfg.source.read_options();
    let raw = expand_inputs(&cfg.source.paths)?;
    let lake = ScoredLake { raw: &raw, read: &read, progress };
    let rejects_path = out_dir.join("rejects.jsonl");
    let mut rejects = match read.on_bad_record {
        BadRecordPolicy::Skip => Some(RejectWriter::create(&rejects_path)?),
        BadRecordPolicy::Fail => None,
    };
    let selected = out_dir.join("selected.parquet");
    let scores = out_dir.join("scores.parquet");
    let mut outputs = vec![selected.clone(), scores.clone()];
    let (method, mut report) = match &cfg.select {
        SelectConfig::Dsir(sel) => {
            let target = if sel.target.is_empty() { Vec::new() } else { expand_inputs(&sel.target)? };
            let job = DsirJob {
                raw: &raw,
                target: &target,
                read: &read,
                params: sel.params(),
                budget: sel.budget(),
                feature_cache_bytes: sel.feature_cache_mb << 20,
                progress,
            };
            let Fitted { model, target_stats, cache } = match &sel.model {
                Some(p) => Fitted { model: DsirModel::load(p)?, target_stats: Vec::new(), cache: FeatureCache::default() },
                None => job.fit(rejects.as_mut())?,
            };
            let model_path = out_dir.join("dsir_model.json");
            model.save(&model_path)?;
            outputs.push(model_path);
            let scorer = DsirRowScorer::new(Arc::new(model), &cache);
            let noise = if sel.top_k { Noise::None } else { Noise::gumbel(cfg.seed) };
            let keep = Keep { k: sel.k, require_fewer_than_eligible: true };
            let mut report = lake.select_to(&scorer, keep, noise, &selected, Some(&scores), rejects.as_mut())?;
            report.target_files = target_stats;
            ("dsir", report)
        }
        SelectConfig::Zipfit(sel) => {
            let target = expand_inputs(&sel.target)?;
            let (target, target_stats) = zipfit::load_target(&target, &read, sel.params(), progress, rejects.as_mut())?;
            let scorer = ZipfitRowScorer::new(Arc::new(target));
            let keep = Keep { k: sel.k, require_fewer_than_eligible: false };
            let mut report = lake.select_to(&scorer, keep, Noise::None, &selected, Some(&scores), rejects.as_mut())?;
            report.target_files = target_stats;
            ("zipfit", report)
        }
    };
    if let Some(r) = rejects {
        report.rejects_written = r.finish()?;
        outputs.push(rejects_path);
    }
    let summary = RunSummary { name: cfg.name.clone(), method, report, outputs };
    let json = serde_json::to_vec_pretty(&summary).map_err(|e| crate::error::Error::io(out_dir, e.into()))?;
    crate::sink::write_atomic(&out_dir.join("summary.json"), &json)?;
    Ok(summary)
}
