//! `syllabus eval`: which selection trains the better model, at equal compute.
//!
//! Every candidate (a document table, a selection, or a curriculum) trains the same small
//! causal LM (the `lm` proxy's model: same shape, same initialisation for a given seed, same
//! optimizer and learning-rate schedule) on exactly `tokens` predictions of its own data, in its
//! own order ([`train`]); the mean token loss on every validation set is recorded at 0, every
//! `every` tokens and at the end. Beside the trained result, the DSIR paper's cheap data
//! metric, KL reduction ([`kl`]), of each candidate against each validation set.
//!
//! Outputs in the output directory: `curves.parquet` (candidate, seed, tokens, valid, loss),
//! `summary.csv` (per candidate and validation set), `eval.json` (settings, input hashes,
//! results) and `curves.png` ([`plot`]). The same inputs and seeds give byte-identical
//! `curves.parquet` and `summary.csv`, whatever the thread count. A run killed part way keeps
//! each finished (candidate, seed) in `OUT/work/` and trains only the others when started
//! again with the same settings and inputs.
//!
//! Memory: the candidates' and validation sets' token ids (4 bytes a token), one candidate's
//! training at a time; the raw pool only as n-gram counts.

pub mod data;
pub mod kl;
pub mod overlap;
pub mod plot;
pub mod scales;
pub mod train;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};

use crate::batch::RecordBatch;
use crate::error::{Error, Result};
use crate::passes::work::Work;
use crate::progress::Progress;
use crate::proxy::lm::LmShape;
use crate::proxy::{ProxyKind, ProxyParams};
use crate::source::ReadOptions;
use crate::tokenize::Tok;
use data::Streams;
use kl::Distribution;

pub const CURVES_FILE: &str = "curves.parquet";
pub const SUMMARY_FILE: &str = "summary.csv";
pub const EVAL_FILE: &str = "eval.json";
pub const PLOT_FILE: &str = "curves.png";

/// A point of a mean curve: tokens, mean, min and max over the seeds.
pub type CurvePoint = (u64, f64, f64, f64);

/// A `NAME=PATH` argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    pub name: String,
    pub path: String,
}

impl Named {
    pub fn parse(s: &str) -> std::result::Result<Named, String> {
        match s.split_once('=') {
            Some((n, p)) if !n.is_empty() && !p.is_empty() => Ok(Named { name: n.to_string(), path: p.to_string() }),
            _ => Err(format!("{s:?}: expected NAME=PATH")),
        }
    }
}

/// A candidate: its name, its data, and the schedule it trains under where that is its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub name: String,
    pub path: String,
    pub train: TrainOverride,
}

impl From<Named> for Candidate {
    fn from(n: Named) -> Candidate {
        Candidate { name: n.name, path: n.path, train: TrainOverride::default() }
    }
}

/// A candidate's own learning-rate schedule and averaging, in place of eval's (the model, the
/// budget, the checkpoints and the seeds stay the same for every candidate). A candidate that
/// names its own `lr_schedule` takes its `final_lr` from here too (none: the schedule's
/// default); the other settings fall back to eval's one by one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr_schedule: Option<train::LrSchedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_lr: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decay: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_last: Option<u32>,
}

impl TrainOverride {
    pub fn is_empty(&self) -> bool {
        *self == TrainOverride::default()
    }
}

/// How the candidates are trained and validated.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalParams {
    /// Predictions each candidate trains on.
    pub tokens: u64,
    /// Independent initialisations per candidate (`seed`, `seed + 1`, ...).
    #[serde(default = "default_seeds")]
    pub seeds: u32,
    /// Validate every this many tokens (rounded up to a whole number of steps); default: ten
    /// points along the budget.
    #[serde(default)]
    pub every: Option<u64>,
    /// At most this many predictions of each validation set (whole documents in file order).
    #[serde(default = "default_valid_tokens")]
    pub valid_tokens: u64,
    /// The model: the `lm` proxy's settings (width, layers, context, batch_size, lr,
    /// weight_decay); `epochs` and `seeds` do not apply.
    #[serde(default)]
    pub model: ProxyParams,
    /// The learning-rate schedule every candidate trains under.
    #[serde(default)]
    pub lr_schedule: train::LrSchedule,
    /// The learning rate at the end (cosine, linear, wsd); default: a tenth of `lr`.
    #[serde(default)]
    pub final_lr: Option<f64>,
    /// The share of the steps the learning rate warms up over, linearly from 0.
    #[serde(default = "default_warmup")]
    pub warmup: f64,
    /// wsd: the share of the steps it decays over, at the end (stable before).
    #[serde(default = "default_decay")]
    pub decay: f64,
    /// Also validate the uniform average of the last N checkpoints' weights (the validation
    /// points, the last one included): one more point per run, at the end.
    #[serde(default)]
    pub average_last: Option<u32>,
    /// Read a curriculum candidate's packed sequences in a seeded random order, afresh each
    /// pass, as a table's documents are (the packing kept: In-Context Pretraining trains on
    /// its related contexts shuffled); false: in manifest order.
    #[serde(default)]
    pub shuffle_sequences: bool,
}

pub fn default_warmup() -> f64 {
    0.05
}
pub fn default_decay() -> f64 {
    0.2
}

pub fn default_seeds() -> u32 {
    2
}
pub fn default_valid_tokens() -> u64 {
    8_192
}

/// Everything `eval` needs.
#[derive(Debug, Clone)]
pub struct EvalSpec {
    pub tokenizer: PathBuf,
    pub candidates: Vec<Candidate>,
    /// Validation sets: name and paths.
    pub valid: Vec<(String, Vec<String>)>,
    /// The raw pool for KL reduction (none: KL only).
    pub raw: Vec<String>,
    pub params: EvalParams,
    pub seed: u32,
}

/// The settings with every default filled in.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Resolved {
    pub tokens: u64,
    pub seeds: u32,
    pub every: u64,
    pub step_tokens: u64,
    pub valid_tokens: u64,
    /// The model eval trains: the proxy's shape and optimizer, without the proxy's own
    /// `epochs` and `seeds` (eval's budget is `tokens`, its seeds are `seeds`).
    #[serde(serialize_with = "model_used")]
    pub model: crate::proxy::Resolved,
    pub schedule: train::Schedule,
    /// Checkpoints averaged into one more point at the end (none: no average).
    pub average_last: Option<u32>,
    pub shuffle_sequences: bool,
}

/// What eval records of its model: only the settings it uses.
fn model_used<S: serde::Serializer>(m: &crate::proxy::Resolved, s: S) -> std::result::Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Used {
        width: usize,
        layers: usize,
        context: usize,
        batch_size: usize,
        lr: f64,
        weight_decay: f64,
    }
    let used = Used {
        width: m.width,
        layers: m.layers,
        context: m.context,
        batch_size: m.batch_size,
        lr: m.lr,
        weight_decay: m.weight_decay,
    };
    used.serialize(s)
}

impl EvalParams {
    pub fn resolve(&self) -> Result<Resolved> {
        let bad = |m: String| Err(Error::InvalidArgument(format!("eval: {m}")));
        if self.model.epochs.is_some() || self.model.seeds.is_some() {
            return bad(
                "model.epochs and model.seeds do not apply (the budget is tokens, and seeds is eval's own)".into()
            );
        }
        let model = self.model.resolve(ProxyKind::Lm)?;
        if self.tokens == 0 {
            return bad("tokens must be at least 1".into());
        }
        crate::limits::EVAL_TOKENS.check(self.tokens).map_err(|e| Error::InvalidArgument(format!("eval: {e}")))?;
        crate::limits::PROXY_SEEDS
            .check(self.seeds as u64)
            .map_err(|e| Error::InvalidArgument(format!("eval: {e}")))?;
        if self.seeds == 0 || self.valid_tokens == 0 {
            return bad("seeds and valid_tokens must be at least 1".into());
        }
        if self.valid_tokens < model.context as u64 {
            return bad(format!(
                "valid_tokens ({}) must be at least one context window ({} predictions)",
                self.valid_tokens, model.context
            ));
        }
        let step_tokens = (model.batch_size * model.context) as u64;
        let steps = self.tokens.div_ceil(step_tokens);
        let every = match self.every {
            Some(0) => return bad("every must be at least 1".into()),
            Some(k) => k.div_ceil(step_tokens) * step_tokens,
            None => steps.div_ceil(10).max(1) * step_tokens,
        };
        let schedule = train::Schedule::new(self.lr_schedule, model.lr, self.final_lr, self.warmup, self.decay)
            .map_err(|e| Error::InvalidArgument(format!("eval: {e}")))?;
        check_average_last(self.average_last, self.tokens, every)?;
        Ok(Resolved {
            tokens: self.tokens,
            seeds: self.seeds,
            every,
            step_tokens,
            valid_tokens: self.valid_tokens,
            model,
            schedule,
            average_last: self.average_last,
            shuffle_sequences: self.shuffle_sequences,
        })
    }
}

/// `average_last`: between 2 and the run's checkpoints (every `every` tokens and the end).
fn check_average_last(n: Option<u32>, tokens: u64, every: u64) -> Result<()> {
    let checkpoints = tokens.div_ceil(every);
    match n {
        Some(n) if n < 2 || n as u64 > checkpoints => Err(Error::InvalidArgument(format!(
            "eval: average_last {n}: between 2 and the {checkpoints} checkpoints of the run (validation points after 0; more with a smaller every)"
        ))),
        _ => Ok(()),
    }
}

impl Resolved {
    /// The schedule and averaging one candidate trains under: eval's, with the candidate's
    /// own settings in their place.
    pub fn for_candidate(&self, o: &TrainOverride) -> Result<(train::Schedule, Option<u32>)> {
        if o.is_empty() {
            return Ok((self.schedule, self.average_last));
        }
        let base = &self.schedule;
        let (kind, final_lr) = match o.lr_schedule {
            Some(kind) => (kind, o.final_lr),
            None if o.final_lr.is_some() => (base.kind, o.final_lr),
            None if base.kind == train::LrSchedule::Constant => (base.kind, None),
            None => (base.kind, Some(base.final_lr)),
        };
        let schedule = train::Schedule::new(
            kind,
            base.peak,
            final_lr,
            o.warmup.unwrap_or(base.warmup),
            o.decay.unwrap_or(base.decay),
        )
        .map_err(|e| Error::InvalidArgument(format!("eval: {e}")))?;
        let average_last = o.average_last.or(self.average_last);
        check_average_last(average_last, self.tokens, self.every)?;
        Ok((schedule, average_last))
    }
}

/// One point of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub tokens: u64,
    /// Loss per validation set, in their order.
    pub loss: Vec<f64>,
}

/// One run's curve: the validation losses at 0, every `every` tokens and the end. A finished
/// (candidate, seed) is kept in the work directory as this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub points: Vec<Point>,
    /// With `average_last`: the averaged weights' losses, at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub averaged: Option<Point>,
}

/// Per candidate and validation set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryRow {
    pub candidate: String,
    pub valid: String,
    pub final_loss_mean: f64,
    pub final_loss_sd: f64,
    pub seeds: u32,
    /// Predictions of the validation set each loss is the mean of.
    pub valid_predictions: u64,
    /// Tokens the seed-mean curve needs to reach the first candidate's (the baseline's) final
    /// mean loss, interpolated between points; None: not within the budget. The baseline
    /// itself reaches its final loss at its last point, by definition, even where its curve
    /// dipped below that loss earlier.
    pub tokens_to_baseline: Option<f64>,
    /// `100 · (1 − tokens_to_baseline / the baseline's budget)`: how much sooner than the
    /// baseline a candidate reaches the baseline's final loss (0 for the baseline).
    pub sooner_pct: Option<f64>,
    /// KL(p_valid || p_candidate) of hashed n-grams.
    pub kl: f64,
    /// KL(p_valid || p_raw) − KL(p_valid || p_candidate), with a raw pool.
    pub kl_reduction: Option<f64>,
    pub candidate_documents: u64,
    pub candidate_tokens: u64,
    /// Passes over the candidate the budget takes (tokens / candidate tokens).
    pub epochs: f64,
    /// Training tokens that repeat earlier ones: max(0, tokens − candidate tokens).
    pub repeated_tokens: u64,
    /// With `average_last`: the final loss of the averaged weights, mean and sd over seeds.
    pub averaged_loss_mean: Option<f64>,
    pub averaged_loss_sd: Option<f64>,
}

/// What `eval` found.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub settings: Resolved,
    pub seed: u32,
    pub valid: Vec<String>,
    pub candidates: Vec<String>,
    pub inputs: serde_json::Value,
    pub summary: Vec<SummaryRow>,
    /// Mean curves for the plot: per candidate, per valid set, (tokens, mean, min, max).
    #[serde(skip)]
    pub curves: Vec<Vec<Vec<CurvePoint>>>,
    /// Runs kept from an interrupted eval.
    pub resumed_runs: usize,
    /// Candidates that hold n-grams of a validation set ([`overlap`]).
    pub overlaps: Vec<overlap::Overlap>,
}

/// Run the evaluation and write its outputs under `out`.
pub fn run(spec: &EvalSpec, read: &ReadOptions, out: &Path, progress: &Progress) -> Result<EvalReport> {
    let r = spec.params.resolve()?;
    if spec.candidates.is_empty() {
        return Err(Error::InvalidArgument("eval: no candidates".into()));
    }
    if spec.valid.is_empty() {
        return Err(Error::InvalidArgument("eval: no validation set (--valid NAME=PATH)".into()));
    }
    if let Some(n) = first_repeat(spec.candidates.iter().map(|c| c.name.as_str())) {
        return Err(Error::InvalidArgument(format!("eval: two candidates are named {n:?}")));
    }
    if let Some(n) = first_repeat(spec.valid.iter().map(|(n, _)| n.as_str())) {
        return Err(Error::InvalidArgument(format!("eval: two validation sets are named {n:?}")));
    }
    let tok = Tok::load(&spec.tokenizer)?;
    let shape = lm_shape(&tok, &r.model)?;
    let schedules: Vec<(train::Schedule, Option<u32>)> = spec
        .candidates
        .iter()
        .map(|c| r.for_candidate(&c.train).map_err(|e| Error::InvalidArgument(format!("candidate {}: {e}", c.name))))
        .collect::<Result<_>>()?;
    let valid = load_valid_sets(&spec.valid, read, &tok, r.valid_tokens, r.model.context, progress)?;
    let raw = if spec.raw.is_empty() { None } else { Some(data::raw_counts(&spec.raw, read, progress)?) };
    let mut cands = Vec::with_capacity(spec.candidates.len());
    for c in &spec.candidates {
        let s = data::load_candidate(&c.path, read, &tok, progress)
            .map_err(|e| Error::InvalidArgument(format!("candidate {}: {e}", c.name)))?;
        if s.predictions() == 0 {
            return Err(Error::InvalidArgument(format!("candidate {} ({}): no tokens to train on", c.name, c.path)));
        }
        let mut s = s;
        if r.shuffle_sequences {
            // A curriculum's sequences, shuffled as a table's documents are.
            s.kind = data::Kind::Table;
        }
        cands.push(s);
    }
    let overlaps = overlap::find(spec, read)?;
    for o in &overlaps {
        eprintln!(
            "syllabus eval: warning: {} of the {} documents of candidate {} share a 13-gram with the validation set {} (benchmark contamination): its loss there partly measures memorisation",
            o.documents, o.of, o.candidate, o.valid
        );
    }
    let inputs = serde_json::json!({
        "tokenizer": { "path": spec.tokenizer.display().to_string(), "hash": tok.hash() },
        "candidates": spec.candidates.iter().zip(&cands).zip(&schedules).map(|((c, s), (sched, avg))| {
            let mut j = serde_json::json!({
                "name": c.name, "path": c.path, "kind": s.kind, "hash": s.hash,
                "documents": s.documents, "tokens": s.predictions(),
            });
            // A candidate's own schedule, where it has one (the settings hold eval's).
            if !c.train.is_empty() {
                j["schedule"] = serde_json::json!(sched);
                j["average_last"] = serde_json::json!(avg);
            }
            j
        }).collect::<Vec<_>>(),
        "valid": spec.valid.iter().zip(&valid).map(|((n, p), s)| serde_json::json!({
            "name": n, "paths": p, "hash": s.hash, "tokens": s.predictions(),
        })).collect::<Vec<_>>(),
        "raw": raw.as_ref().map(|(_, h)| serde_json::json!({ "paths": spec.raw, "hash": h })),
    });
    // Finished runs are kept under this key: the settings and the inputs' bytes.
    let key = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"), "settings": r, "seed": spec.seed, "inputs": inputs,
    })
    .to_string();
    crate::sink::output_dir(out)?;
    let work = Work::at(out.join("work"), key)?;
    let backend = crate::proxy::Backend::for_device(&crate::proxy::device());
    if !matches!(backend, crate::proxy::Backend::Engine) {
        if let Some(c) = spec.candidates.iter().zip(&schedules).find(|(_, s)| s.1.is_some()).map(|(c, _)| c) {
            return Err(Error::InvalidArgument(format!(
                "candidate {}: average_last needs the CPU engine (the GPU backend keeps its weights on the device)",
                c.name
            )));
        }
    }
    let valid_units: Vec<&[data::Unit]> = valid.iter().map(|v| v.units.as_slice()).collect();
    let mut runs: Vec<Vec<RunResult>> = Vec::new();
    let mut resumed = 0;
    let total = spec.candidates.len() as u64 * r.seeds as u64 * r.tokens;
    let bar = progress.counted("train", total);
    for (ci, (c, s)) in spec.candidates.iter().zip(&cands).enumerate() {
        let mut per_seed = Vec::new();
        for k in 0..r.seeds {
            let seed = spec.seed.wrapping_add(k);
            let marker = format!("run-{ci}-{k}.json");
            if let Some(kept) = work.load::<RunResult>(&marker) {
                resumed += 1;
                bar.inc(r.tokens);
                per_seed.push(kept);
                continue;
            }
            bar.set_message(format!("{} seed {seed}", c.name));
            let done = (ci as u64 * r.seeds as u64 + k as u64) * r.tokens;
            let (schedule, average_last) = &schedules[ci];
            let result = train::train(
                shape,
                &r.model,
                schedule,
                *average_last,
                seed,
                s,
                &valid_units,
                r.tokens,
                r.every,
                &backend,
                |t| bar.set_position(done + t),
            )?;
            work.save(&marker, &result)?;
            crate::failpoint::hit(format_args!("eval-run-{ci}-{k}"));
            per_seed.push(result);
        }
        runs.push(per_seed);
    }
    bar.finish_and_clear();
    let mut report = summarize(spec, &r, &cands, &valid, raw.as_ref().map(|(c, _)| c), &runs, inputs, resumed);
    report.overlaps = overlaps;
    write_curves(&out.join(CURVES_FILE), spec, &runs)?;
    crate::sink::write_atomic(&out.join(SUMMARY_FILE), summary_csv(&report.summary).as_bytes())?;
    let json = serde_json::to_vec_pretty(&report).map_err(|e| Error::io(out, e.into()))?;
    crate::sink::write_atomic(&out.join(EVAL_FILE), &json)?;
    plot::draw(&out.join(PLOT_FILE), &report)?;
    work.finish()?;
    Ok(report)
}

/// The first name that repeats an earlier one (the lists are short: a quadratic scan).
pub(crate) fn first_repeat<'a>(names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = Vec::new();
    for n in names {
        if seen.contains(&n) {
            return Some(n);
        }
        seen.push(n);
    }
    None
}

/// The `lm` model's shape for a tokenizer and settings, checked against the memory it needs.
pub fn lm_shape(tok: &Tok, m: &crate::proxy::Resolved) -> Result<LmShape> {
    let shape = LmShape { vocab: tok.vocab_size() as usize, width: m.width, layers: m.layers, context: m.context };
    crate::proxy::check_lm_memory(shape, m)?;
    Ok(shape)
}

/// Every validation set (name, paths) read and capped at `cap` predictions, each at least one
/// `context` window ([`check_valid_size`]).
pub fn load_valid_sets(
    sets: &[(String, Vec<String>)],
    read: &ReadOptions,
    tok: &Tok,
    cap: u64,
    context: usize,
    progress: &Progress,
) -> Result<Vec<Streams>> {
    sets.iter()
        .map(|(name, paths)| {
            let v = data::load_valid(paths, read, tok, cap, progress)?;
            check_valid_size(name, paths, v.predictions(), context)?;
            Ok(v)
        })
        .collect()
}

/// The smallest validation set eval accepts: one context window of predictions. A mean loss
/// over fewer tokens than the model sees at once says more about those few tokens than about
/// the data (one empty document is a single prediction).
pub fn check_valid_size(name: &str, paths: &[String], predictions: u64, context: usize) -> Result<()> {
    if predictions < context as u64 {
        return Err(Error::InvalidArgument(format!(
            "eval: the validation set {name} ({}) has {predictions} prediction{}; at least one context window ({context}) is needed for its loss to mean anything: give it more text, or a smaller --context",
            paths.join(" "),
            if predictions == 1 { "" } else { "s" }
        )));
    }
    Ok(())
}

/// Mean and sample standard deviation (0 for one value).
pub(crate) fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let sd = if xs.len() > 1 { (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { 0.0 };
    (mean, sd)
}

/// The first token count at which `curve` (tokens, loss) is at or below `target`, linearly
/// interpolated between the points around it.
pub fn tokens_to_reach(curve: &[(u64, f64)], target: f64) -> Option<f64> {
    let mut prev: Option<(u64, f64)> = None;
    for &(t, l) in curve {
        if l <= target {
            return Some(match prev {
                Some((t0, l0)) if l0 > l => t0 as f64 + (t - t0) as f64 * (l0 - target) / (l0 - l),
                _ => t as f64,
            });
        }
        prev = Some((t, l));
    }
    None
}

/// Per candidate (seed-mean curves, the baseline's first): the tokens it takes to reach the
/// baseline's final mean loss, and how much sooner than the baseline that is, in percent of the
/// baseline's budget. The baseline reaches its own final loss at its last point by definition
/// (a curve that is not monotone may have dipped below it earlier: that is noise, not speed),
/// so its row reads "the whole budget, 0% sooner".
pub fn reaches(curves: &[Vec<(u64, f64)>], baseline: f64) -> Vec<(Option<f64>, Option<f64>)> {
    let budget = curves.first().and_then(|c| c.last()).map(|p| p.0 as f64);
    curves
        .iter()
        .enumerate()
        .map(|(c, curve)| {
            let reach = if c == 0 { budget } else { tokens_to_reach(curve, baseline) };
            let sooner = match (reach, budget) {
                (Some(a), Some(b)) if b > 0.0 => Some(100.0 * (1.0 - a / b)),
                _ => None,
            };
            (reach, sooner)
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn summarize(
    spec: &EvalSpec,
    r: &Resolved,
    cands: &[Streams],
    valid: &[Streams],
    raw: Option<&crate::score::dsir::Counts>,
    runs: &[Vec<RunResult>],
    inputs: serde_json::Value,
    resumed_runs: usize,
) -> EvalReport {
    let raw = raw.map(Distribution::from_counts);
    let mut curves = Vec::new();
    for per_seed in runs {
        let mut per_valid = Vec::new();
        for v in 0..valid.len() {
            let points = per_seed[0].points.len();
            let curve: Vec<(u64, f64, f64, f64)> = (0..points)
                .map(|i| {
                    let xs: Vec<f64> = per_seed.iter().map(|run| run.points[i].loss[v]).collect();
                    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    (per_seed[0].points[i].tokens, mean_sd(&xs).0, lo, hi)
                })
                .collect();
            per_valid.push(curve);
        }
        curves.push(per_valid);
    }
    let mut summary = Vec::new();
    for (v, (vname, _)) in spec.valid.iter().enumerate() {
        let p_t = Distribution::from_counts(&valid[v].counts);
        let kl_raw = raw.as_ref().map(|d| kl::kl(&p_t, d));
        let mean_curve = |c: usize| curves[c][v].iter().map(|&(t, m, _, _)| (t, m)).collect::<Vec<_>>();
        let finals = |c: usize| {
            runs[c].iter().map(|run| run.points.last().expect("a final point").loss[v]).collect::<Vec<f64>>()
        };
        let baseline = mean_sd(&finals(0)).0;
        let reached = reaches(&(0..spec.candidates.len()).map(mean_curve).collect::<Vec<_>>(), baseline);
        for (c, cand) in spec.candidates.iter().enumerate() {
            let (m, sd) = mean_sd(&finals(c));
            let averaged: Option<Vec<f64>> =
                runs[c].iter().map(|run| run.averaged.as_ref().map(|p| p.loss[v])).collect();
            let averaged = averaged.map(|a| mean_sd(&a));
            let (reach, sooner) = reached[c];
            let kl_c = kl::kl(&p_t, &Distribution::from_counts(&cands[c].counts));
            let ctoks = cands[c].predictions();
            summary.push(SummaryRow {
                candidate: cand.name.clone(),
                valid: vname.clone(),
                final_loss_mean: m,
                final_loss_sd: sd,
                seeds: r.seeds,
                valid_predictions: valid[v].predictions(),
                tokens_to_baseline: reach,
                sooner_pct: sooner,
                kl: kl_c,
                kl_reduction: kl_raw.map(|k| k - kl_c),
                candidate_documents: cands[c].documents,
                candidate_tokens: ctoks,
                epochs: r.tokens as f64 / ctoks as f64,
                repeated_tokens: r.tokens.saturating_sub(ctoks),
                averaged_loss_mean: averaged.map(|a| a.0),
                averaged_loss_sd: averaged.map(|a| a.1),
            });
        }
    }
    EvalReport {
        settings: *r,
        seed: spec.seed,
        valid: spec.valid.iter().map(|(n, _)| n.clone()).collect(),
        candidates: spec.candidates.iter().map(|c| c.name.clone()).collect(),
        inputs,
        summary,
        curves,
        resumed_runs,
        overlaps: Vec::new(),
    }
}

/// `curves.parquet`: one row per (candidate, seed, tokens, valid set).
fn write_curves(path: &Path, spec: &EvalSpec, runs: &[Vec<RunResult>]) -> Result<()> {
    let (mut cand, mut seed, mut tokens, mut valid, mut loss, mut averaged) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (c, per_seed) in runs.iter().enumerate() {
        for (k, run) in per_seed.iter().enumerate() {
            let points = run.points.iter().map(|p| (p, false)).chain(run.averaged.iter().map(|p| (p, true)));
            for (p, avg) in points {
                for (v, (vname, _)) in spec.valid.iter().enumerate() {
                    cand.push(spec.candidates[c].name.as_str());
                    seed.push(spec.seed.wrapping_add(k as u32));
                    tokens.push(p.tokens);
                    valid.push(vname.as_str());
                    loss.push(p.loss[v]);
                    averaged.push(avg);
                }
            }
        }
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(cand)),
        Arc::new(UInt32Array::from(seed)),
        Arc::new(UInt64Array::from(tokens)),
        Arc::new(StringArray::from(valid)),
        Arc::new(Float64Array::from(loss)),
        Arc::new(arrow::array::BooleanArray::from(averaged)),
    ];
    let schema = Arc::new(Schema::new(vec![
        Field::new("candidate", DataType::Utf8, false),
        Field::new("seed", DataType::UInt32, false),
        Field::new("tokens", DataType::UInt64, false),
        Field::new("valid", DataType::Utf8, false),
        Field::new("loss", DataType::Float64, false),
        Field::new("averaged", DataType::Boolean, false),
    ]));
    let batch = RecordBatch::try_new(schema.clone(), cols).map_err(|e| Error::arrow("building curves", e))?;
    let mut w = crate::sink::TableWriter::create(path, schema)?;
    w.write(&batch)?;
    w.finish().map(|_| ())
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or(String::new(), |v| format!("{v:.digits$}"))
}

/// Quote a CSV field where it needs it.
pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `summary.csv`: fixed decimals, so equal results are equal bytes.
pub fn summary_csv(rows: &[SummaryRow]) -> String {
    let mut s = String::from(
        "candidate,valid,valid_predictions,final_loss_mean,final_loss_sd,seeds,tokens_to_baseline,sooner_pct,kl,kl_reduction,candidate_documents,candidate_tokens,epochs,repeated_tokens,averaged_loss_mean,averaged_loss_sd\n",
    );
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{:.6},{:.6},{},{},{},{:.6},{},{},{},{:.4},{},{},{}\n",
            csv_field(&r.candidate),
            csv_field(&r.valid),
            r.valid_predictions,
            r.final_loss_mean,
            r.final_loss_sd,
            r.seeds,
            opt(r.tokens_to_baseline, 0),
            opt(r.sooner_pct, 2),
            r.kl,
            opt(r.kl_reduction, 6),
            r.candidate_documents,
            r.candidate_tokens,
            r.epochs,
            r.repeated_tokens,
            opt(r.averaged_loss_mean, 6),
            opt(r.averaged_loss_sd, 6)
        ));
    }
    s
}

/// The summary as a table for the terminal.
pub fn render_table(summary: &[SummaryRow]) -> String {
    let first = summary.first().map(|r| r.candidate.as_str()).unwrap_or("");
    let header = [
        "candidate".to_string(),
        "valid (predictions)".into(),
        "final loss".into(),
        format!("tokens to {first}'s"),
        "sooner".into(),
        "KL".into(),
        "KL reduction".into(),
        "epochs".into(),
        "repeated".into(),
    ];
    // With checkpoint averaging anywhere, a column for it (blank where a candidate has none).
    let averaged = summary.iter().any(|r| r.averaged_loss_mean.is_some());
    let mut header = header.to_vec();
    if averaged {
        header.insert(3, "averaged".into());
    }
    let mut rows = vec![header];
    for r in summary {
        rows.push(vec![
            r.candidate.clone(),
            format!("{} ({})", r.valid, r.valid_predictions),
            if r.seeds > 1 {
                format!("{:.4} ± {:.4}", r.final_loss_mean, r.final_loss_sd)
            } else {
                format!("{:.4}", r.final_loss_mean)
            },
            r.tokens_to_baseline.map_or("never".into(), |t| format!("{t:.0}")),
            r.sooner_pct.map_or("-".into(), |p| format!("{p:.1}%")),
            format!("{:.4}", r.kl),
            r.kl_reduction.map_or("-".into(), |k| format!("{k:.4}")),
            format!("{:.2}", r.epochs),
            r.repeated_tokens.to_string(),
        ]);
        if averaged {
            let cell = match (r.averaged_loss_mean, r.averaged_loss_sd) {
                (Some(m), Some(sd)) if r.seeds > 1 => format!("{m:.4} ± {sd:.4}"),
                (Some(m), _) => format!("{m:.4}"),
                _ => String::new(),
            };
            rows.last_mut().expect("just pushed").insert(3, cell);
        }
    }
    let widths: Vec<usize> =
        (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut s = String::new();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, x)| {
                let pad = widths[c] - x.chars().count();
                if c < 2 {
                    format!("{x}{}", " ".repeat(pad))
                } else {
                    format!("{}{x}", " ".repeat(pad))
                }
            })
            .collect();
        s.push_str(cells.join("  ").trim_end());
        s.push('\n');
        if i == 0 {
            s.push_str(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
            s.push('\n');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reach_is_interpolated_between_points() {
        let c = [(0, 8.0), (100, 6.0), (200, 4.0), (300, 3.0)];
        assert_eq!(tokens_to_reach(&c, 5.0), Some(150.0));
        assert_eq!(tokens_to_reach(&c, 3.0), Some(300.0));
        assert_eq!(tokens_to_reach(&c, 9.0), Some(0.0));
        assert_eq!(tokens_to_reach(&c, 2.0), None);
    }

    #[test]
    fn a_baseline_that_dips_early_still_reaches_its_own_loss_at_the_end() {
        // The baseline's mean curve goes below its final loss (4.0) at 150 tokens, then back up.
        let base = vec![(0, 8.0), (100, 5.0), (200, 3.0), (300, 4.5), (400, 4.0)];
        let faster = vec![(0, 8.0), (100, 4.0), (200, 3.5), (300, 3.4), (400, 3.3)];
        let slower = vec![(0, 8.0), (100, 7.0), (200, 6.0), (300, 5.0), (400, 4.5)];
        let r = reaches(&[base, faster, slower], 4.0);
        assert_eq!(r[0], (Some(400.0), Some(0.0)), "the whole budget, 0% sooner");
        assert_eq!(r[1], (Some(100.0), Some(75.0)));
        assert_eq!(r[2], (None, None));
        // tokens_to_baseline and sooner_pct agree on every row.
        for (reach, sooner) in r.into_iter().filter_map(|(a, b)| a.zip(b)) {
            assert!((sooner - 100.0 * (1.0 - reach / 400.0)).abs() < 1e-12);
        }
    }

    /// A params value with the schedule's defaults (the rest overwritten by the caller).
    fn schedule_defaults() -> EvalParams {
        EvalParams {
            tokens: 1,
            seeds: 1,
            every: None,
            valid_tokens: 1,
            model: ProxyParams::default(),
            lr_schedule: train::LrSchedule::Cosine,
            final_lr: None,
            warmup: default_warmup(),
            decay: default_decay(),
            average_last: None,
            shuffle_sequences: false,
        }
    }

    #[test]
    fn eval_records_only_the_model_settings_it_uses() {
        let p = EvalParams {
            tokens: 4096,
            seeds: 2,
            every: None,
            valid_tokens: 100,
            model: ProxyParams::default(),
            ..schedule_defaults()
        };
        let j = serde_json::to_value(p.resolve().unwrap()).unwrap();
        let model = j["model"].as_object().unwrap();
        assert!(!model.contains_key("seeds") && !model.contains_key("epochs"), "{j}");
        assert_eq!(model["context"], 64);
        assert_eq!(j["seeds"], 2);
    }

    #[test]
    fn a_validation_set_under_one_context_window_is_refused() {
        assert!(check_valid_size("v", &["a.jsonl".into()], 64, 64).is_ok());
        let e = check_valid_size("v", &["a.jsonl".into()], 4, 64).unwrap_err().to_string();
        assert!(e.contains("v (a.jsonl) has 4 predictions") && e.contains("context window (64)"), "{e}");
        let p = EvalParams {
            tokens: 4096,
            seeds: 1,
            every: None,
            valid_tokens: 10,
            model: ProxyParams::default(),
            ..schedule_defaults()
        };
        assert!(p.resolve().unwrap_err().to_string().contains("valid_tokens (10)"));
    }

    #[test]
    fn every_is_rounded_to_whole_steps() {
        let p = |every| EvalParams {
            tokens: 10_000,
            seeds: 1,
            every,
            valid_tokens: 100,
            model: ProxyParams::default(),
            ..schedule_defaults()
        };
        let r = p(None).resolve().unwrap();
        assert_eq!(r.step_tokens, 16 * 64);
        assert_eq!(r.every, 1024, "10 steps: a point every step");
        assert_eq!(p(Some(1500)).resolve().unwrap().every, 2048);
        assert!(p(Some(0)).resolve().is_err());
        let mut e = p(None);
        e.model.epochs = Some(1.0);
        assert!(e.resolve().is_err());
    }

    #[test]
    fn a_candidate_schedule_replaces_evals_setting_by_setting() {
        let base = EvalParams {
            tokens: 10_240,
            every: Some(1024),
            valid_tokens: 100,
            final_lr: Some(1e-4),
            average_last: Some(2),
            ..schedule_defaults()
        };
        let r = base.resolve().unwrap();
        let lr = r.model.lr;
        assert_eq!(r.for_candidate(&TrainOverride::default()).unwrap(), (r.schedule, Some(2)));
        // Its own kind: its own final rate only (a constant schedule has none to inherit).
        let (s, avg) = r
            .for_candidate(&TrainOverride {
                lr_schedule: Some(train::LrSchedule::Constant),
                average_last: Some(4),
                ..Default::default()
            })
            .unwrap();
        assert_eq!((s.kind, s.final_lr, s.warmup, avg), (train::LrSchedule::Constant, lr, 0.05, Some(4)));
        let (s, _) = r
            .for_candidate(&TrainOverride { lr_schedule: Some(train::LrSchedule::Linear), ..Default::default() })
            .unwrap();
        assert_eq!(s.final_lr, lr / 10.0, "the schedule's default, not eval's 1e-4");
        // Only the warm-up: eval's kind and final rate stay.
        let (s, _) = r.for_candidate(&TrainOverride { warmup: Some(0.0), ..Default::default() }).unwrap();
        assert_eq!((s.kind, s.final_lr, s.warmup), (train::LrSchedule::Cosine, 1e-4, 0.0));
        let e = r.for_candidate(&TrainOverride { average_last: Some(11), ..Default::default() }).unwrap_err();
        assert!(e.to_string().contains("between 2 and the 10 checkpoints"), "{e}");
    }

    #[test]
    fn the_first_repeated_name_is_found() {
        assert_eq!(first_repeat(["a", "b", "a", "b"].into_iter()), Some("a"));
        assert_eq!(first_repeat(["a", "b"].into_iter()), None);
    }

    #[test]
    fn names_parse() {
        assert_eq!(Named::parse("a=b=c").unwrap(), Named { name: "a".into(), path: "b=c".into() });
        assert!(Named::parse("nopath").is_err());
        assert!(Named::parse("=x").is_err());
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("x\"y"), "\"x\"\"y\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}
