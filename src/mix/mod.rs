//! `syllabus mix`: which mixture of the domains to train on, searched with small proxy runs.
//!
//! RegMix's recipe (Liu et al. 2024) on eval's engine: R mixtures (the natural token shares,
//! the uniform mixture, and R − 2 seeded Dirichlet draws around the natural shares whose
//! concentration varies per draw, from a tenth to ten times the domains' number, so that
//! both mixtures near the natural one and lopsided ones are tried), each trained on by eval's
//! model for exactly `tokens` predictions from one initialisation; a regression from mixture
//! to each validation loss ([`fit`]: the family chosen by its cross-validated rank
//! correlation); the mixture that minimises the target validation set's predicted loss under
//! two constraints: no domain read more than `max_passes` times in the real run's budget
//! (`budget`, the "to repeat or not to repeat" limit: a domain of D tokens under share w in a
//! budget of B tokens is read B·w/D times), and optionally a KL bound from the natural
//! mixture. Draws outside the pass cap are drawn again (up to 1,000 times, then clipped to
//! it), so the fit is made where the proposal may go. Finally the proposal, the natural and
//! the uniform mixture are trained with `seeds` seeds each, at the search's scale or a larger
//! one (`check_scale`), and their measured losses set beside the predicted ones.
//!
//! Outputs: `runs.parquet` (one row per run and validation set: phase, mixture, scale, seed,
//! tokens, loss and the shares), `summary.csv` (per checked mixture and validation set),
//! `proposal.toml` (a `[schedule]` block a pipeline uses as it is), `mix.json` (settings,
//! fits, the proposal, every run) and `mix.png` ([`plot`]). A run killed part way keeps every
//! finished run in `OUT/work/` and trains only the rest when started again with the same
//! settings and inputs (one key for all: changing the target or the check re-runs the search
//! too); it ends with the same outputs, `mix.json` differing only in its count of kept runs.
//! The same inputs and seed give byte-identical outputs whatever the thread count.
//!
//! Memory: every domain's token ids (4 bytes a token, as eval holds a candidate's) and one
//! mixture's (at most `tokens`) at a time.

pub mod fit;
pub mod graph;
pub mod plot;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};

use crate::batch::RecordBatch;
use crate::error::{Error, Result};
use crate::eval::data::{self, Kind, Streams, Unit};
use crate::eval::scales::Scale;
use crate::eval::{mean_sd, EvalParams, RunResult};
use crate::passes::work::Work;
use crate::progress::Progress;
use crate::proxy::lm::LmShape;
use crate::proxy::nn::Rng;
use crate::source::ReadOptions;
use crate::tokenize::Tok;

pub const RUNS_FILE: &str = "runs.parquet";
pub const SUMMARY_FILE: &str = "summary.csv";
pub const PROPOSAL_FILE: &str = "proposal.toml";
pub const MIX_FILE: &str = "mix.json";
pub const PLOT_FILE: &str = "mix.png";

/// Tries at a Dirichlet draw within the pass cap before it is clipped to it.
const REDRAWS: usize = 1000;
/// Draws the minimiser starts from.
const MINIMISER_DRAWS: usize = 20_000;

/// Clusters as domains: a lake split by a cluster table (`score cluster`'s, by id).
#[derive(Debug, Clone)]
pub struct ClusterDomains {
    pub table: PathBuf,
    pub lake: Vec<String>,
}

/// Everything `mix` needs.
#[derive(Debug, Clone)]
pub struct MixSpec {
    pub tokenizer: PathBuf,
    /// Domains: name and paths (none with `clusters`).
    pub domains: Vec<(String, Vec<String>)>,
    /// Or the clusters of a lake as its domains, named by their numbers ("none": documents
    /// without words).
    pub clusters: Option<ClusterDomains>,
    /// Validation sets: name and paths.
    pub valid: Vec<(String, Vec<String>)>,
    /// The validation set whose loss the proposal minimises (default: the first).
    pub target: Option<String>,
    /// Mixtures searched, the natural and uniform ones included.
    pub runs: usize,
    /// The real run's tokens, which the pass cap applies to (default: `params.tokens`).
    pub budget: Option<u64>,
    pub max_passes: f64,
    pub max_kl: Option<f64>,
    /// Eval's settings: `tokens` per run, `seeds` of each checked mixture, the model and its
    /// schedule.
    pub params: EvalParams,
    /// The scale the proposal is checked at (default: the search's).
    pub check_scale: Option<Scale>,
    pub seed: u32,
}

/// One trained mixture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixRun {
    /// `search` or `check`.
    pub phase: String,
    /// `natural`, `uniform`, `draw-N`, or `proposal`.
    pub mixture: String,
    pub scale: String,
    pub seed: u32,
    pub shares: Vec<f64>,
    /// The final loss per validation set.
    pub loss: Vec<f64>,
}

/// A checked mixture on one validation set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryRow {
    pub mixture: String,
    pub valid: String,
    pub predicted_loss: Option<f64>,
    pub loss_mean: f64,
    pub loss_sd: f64,
    pub seeds: u32,
    pub shares: Vec<f64>,
    /// The most passes over any domain this mixture makes in the budget.
    pub max_passes: f64,
}

/// The regression of one validation set.
#[derive(Debug, Clone, Serialize)]
pub struct ValidFit {
    pub valid: String,
    pub fits: Vec<fit::Fit>,
    /// The chosen family's index in `fits` (None: no family could be fitted).
    pub chosen: Option<usize>,
}

/// What `mix` found.
#[derive(Debug, Clone, Serialize)]
pub struct MixReport {
    pub domains: Vec<String>,
    /// Tokens (predictions) of each domain.
    pub domain_tokens: Vec<u64>,
    pub natural: Vec<f64>,
    pub valid: Vec<String>,
    pub target: String,
    pub tokens: u64,
    pub budget: u64,
    pub max_passes: f64,
    pub max_kl: Option<f64>,
    pub seed: u32,
    pub search_scale: String,
    pub check_scale: String,
    pub fits: Vec<ValidFit>,
    pub proposal: Vec<f64>,
    pub proposal_predicted: f64,
    pub summary: Vec<SummaryRow>,
    pub runs: Vec<MixRun>,
    /// Runs kept from an interrupted search.
    pub resumed_runs: usize,
    pub inputs: serde_json::Value,
}

/// `WIDTHxLAYERS` of resolved settings.
fn scale_label(m: &crate::proxy::Resolved) -> String {
    format!("{}x{}", m.width, m.layers)
}

/// Whole predictions per domain for `tokens` under `shares`: floors, then the largest
/// remainders (the earlier domain on a tie), so they sum to `tokens`.
pub fn allocate(shares: &[f64], tokens: u64) -> Vec<u64> {
    let exact: Vec<f64> = shares.iter().map(|w| w * tokens as f64).collect();
    let mut n: Vec<u64> = exact.iter().map(|x| x.floor() as u64).collect();
    let mut left = tokens.saturating_sub(n.iter().sum());
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())).then(a.cmp(&b)));
    for &i in order.iter().cycle().take(shares.len() * 2) {
        if left == 0 {
            break;
        }
        if shares[i] > 0.0 {
            n[i] += 1;
            left -= 1;
        }
    }
    n
}

/// A mixture's training data: `n[i]` predictions of domain i, its documents in an order
/// shuffled by the seed (afresh for each pass over the domain), the last one cut to fit. A
/// table: eval shuffles the units again, so the domains are interleaved.
pub fn mixture_streams(domains: &[Streams], n: &[u64], seed: u64) -> Streams {
    let mut units = Vec::new();
    for (d, (dom, &want)) in domains.iter().zip(n).enumerate() {
        let mut rng = Rng::new(seed ^ (d as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut left = want;
        while left > 0 {
            let before = left;
            for i in rng.permutation(dom.units.len()) {
                let u = &dom.units[i];
                let p = u.predictions();
                if p == 0 {
                    continue;
                }
                let take = p.min(left);
                units.push(Unit { tokens: u.tokens[..take as usize + 1].to_vec(), weight: u.weight });
                left -= take;
                if left == 0 {
                    break;
                }
            }
            if left == before {
                break; // a domain without predictions (refused before this point)
            }
        }
    }
    Streams {
        kind: Kind::Table,
        units,
        documents: 0,
        counts: crate::score::dsir::Counts::new(crate::eval::kl::params().buckets),
        hash: String::new(),
    }
}

/// Passes over each domain a mixture makes in `budget` tokens.
fn passes(shares: &[f64], domain_tokens: &[u64], budget: u64) -> Vec<f64> {
    shares.iter().zip(domain_tokens).map(|(w, &d)| w * budget as f64 / d as f64).collect()
}

/// The search's mixtures: natural, uniform, then seeded draws within the pass cap.
pub fn search_mixtures(natural: &[f64], space: &fit::Feasible, runs: usize, seed: u64) -> Vec<(String, Vec<f64>)> {
    let k = natural.len();
    let mut out = vec![("natural".to_string(), natural.to_vec()), ("uniform".to_string(), vec![1.0 / k as f64; k])];
    let mut rng = Rng::new(seed ^ 0x6D69_785F_7365_6172);
    for r in 2..runs {
        let mut chosen = None;
        let mut last = Vec::new();
        for _ in 0..REDRAWS {
            let w = fit::draw_around(&mut rng, natural);
            if w.iter().zip(&space.cap).all(|(x, c)| x <= c) {
                chosen = Some(w);
                break;
            }
            last = w;
        }
        let w = chosen.or_else(|| space.clip(&last)).unwrap_or_else(|| natural.to_vec());
        out.push((format!("draw-{r}"), w));
    }
    out
}

/// Check the spec before anything is read.
fn check(spec: &MixSpec) -> Result<()> {
    let bad = |m: String| Err(Error::InvalidArgument(format!("mix: {m}")));
    if spec.clusters.is_some() && !spec.domains.is_empty() {
        return bad("domains by --domain or by clusters: choose one".into());
    }
    if spec.clusters.is_none() && spec.domains.len() < 2 {
        return bad("at least two domains (--domain NAME=PATH) to mix".into());
    }
    if spec.valid.is_empty() {
        return bad("no validation set (--valid NAME=PATH)".into());
    }
    for (what, list) in [("domains", &spec.domains), ("validation sets", &spec.valid)] {
        if let Some(n) = crate::eval::first_repeat(list.iter().map(|(n, _)| n.as_str())) {
            return bad(format!("two {what} are named {n:?}"));
        }
    }
    if spec.runs < 3 {
        return bad(format!("--runs {}: at least 3 (natural, uniform and a draw) to fit anything", spec.runs));
    }
    crate::limits::MIX_RUNS.check(spec.runs as u64).map_err(|e| Error::InvalidArgument(format!("mix: {e}")))?;
    if !(spec.max_passes.is_finite() && spec.max_passes > 0.0) {
        return bad(format!("--max-passes {}: must be above 0", spec.max_passes));
    }
    if spec.max_kl.is_some_and(|b| !(b.is_finite() && b >= 0.0)) {
        return bad("--max-kl must be 0 or more".into());
    }
    if spec.budget == Some(0) {
        return bad("--budget must be at least 1".into());
    }
    if let Some(t) = &spec.target {
        if !spec.valid.iter().any(|(n, _)| n == t) {
            let names: Vec<&str> = spec.valid.iter().map(|(n, _)| n.as_str()).collect();
            return bad(format!("--target {t:?} is not a validation set ({})", names.join(", ")));
        }
    }
    Ok(())
}

/// Run the search and write its outputs under `out`.
pub fn run(spec: &MixSpec, read: &ReadOptions, out: &Path, progress: &Progress) -> Result<MixReport> {
    check(spec)?;
    let r = spec.params.resolve()?;
    let rc = match &spec.check_scale {
        Some(s) => {
            s.params(&spec.params).resolve().map_err(|e| Error::InvalidArgument(format!("--check-scale: {e}")))?
        }
        None => r,
    };
    let tok = Tok::load(&spec.tokenizer)?;
    let (search_shape, check_shape) = (crate::eval::lm_shape(&tok, &r.model)?, crate::eval::lm_shape(&tok, &rc.model)?);
    let context = r.model.context.max(rc.model.context);
    let valid = crate::eval::load_valid_sets(&spec.valid, read, &tok, r.valid_tokens, context, progress)?;
    let (names, domains) = match &spec.clusters {
        Some(c) => split_by_clusters(c, read, &tok, progress)?,
        None => (
            spec.domains.iter().map(|(n, _)| n.clone()).collect(),
            load_domains("mix", &spec.domains, read, &tok, progress)?,
        ),
    };
    let domain_tokens: Vec<u64> = domains.iter().map(Streams::predictions).collect();
    let total: u64 = domain_tokens.iter().sum();
    let natural: Vec<f64> = domain_tokens.iter().map(|&d| d as f64 / total as f64).collect();
    let budget = spec.budget.unwrap_or(r.tokens);
    let space = fit::Feasible {
        cap: domain_tokens.iter().map(|&d| spec.max_passes * d as f64 / budget as f64).collect(),
        natural: natural.clone(),
        max_kl: spec.max_kl,
    };
    if space.clip(&natural).is_none() {
        return Err(Error::InvalidArgument(format!(
            "mix: the domains hold {total} tokens; at most {} passes over each read at most {:.0} of the budget of {budget}: raise --max-passes or lower --budget",
            spec.max_passes,
            spec.max_passes * total as f64
        )));
    }
    let target = match &spec.target {
        Some(t) => spec.valid.iter().position(|(n, _)| n == t).expect("checked"),
        None => 0,
    };
    let inputs = serde_json::json!({
        "tokenizer": { "path": spec.tokenizer.display().to_string(), "hash": tok.hash() },
        "domains": names.iter().zip(&domains).map(|(n, s)| serde_json::json!({
            "name": n, "hash": s.hash, "documents": s.documents, "tokens": s.predictions(),
        })).collect::<Vec<_>>(),
        "paths": spec.domains.iter().map(|(n, p)| serde_json::json!([n, p])).collect::<Vec<_>>(),
        "clusters": spec.clusters.as_ref().map(|c| serde_json::json!({
            "table": c.table.display().to_string(), "lake": c.lake,
        })),
        "valid": spec.valid.iter().zip(&valid).map(|((n, p), s)| serde_json::json!({
            "name": n, "paths": p, "hash": s.hash, "tokens": s.predictions(),
        })).collect::<Vec<_>>(),
    });
    let key = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"), "settings": r, "check": rc, "seed": spec.seed, "runs": spec.runs,
        "budget": budget, "max_passes": spec.max_passes, "max_kl": spec.max_kl, "target": target, "inputs": inputs,
    })
    .to_string();
    crate::sink::output_dir(out)?;
    let work = Work::at(out.join("work"), key)?;
    let backend = crate::proxy::Backend::for_device(&crate::proxy::device());
    let valid_units: Vec<&[Unit]> = valid.iter().map(|v| v.units.as_slice()).collect();

    let mixtures = search_mixtures(&natural, &space, spec.runs, spec.seed as u64);
    let checks = r.seeds as u64 * 3;
    let bar = progress.counted("train", spec.runs as u64 * r.tokens + checks * rc.tokens);
    let mut resumed = 0;
    let mut done = 0u64;
    // One run: kept, or trained and kept.
    let mut train_one = |marker: String,
                         label: &str,
                         shares: &[f64],
                         seed: u32,
                         m: &crate::eval::Resolved,
                         shape: LmShape|
     -> Result<RunResult> {
        if let Some(kept) = work.load::<RunResult>(&marker) {
            resumed += 1;
            done += m.tokens;
            bar.set_position(done);
            return Ok(kept);
        }
        bar.set_message(format!("{label} seed {seed}"));
        let stream = mixture_streams(&domains, &allocate(shares, m.tokens), seed as u64);
        let base = done;
        let result = crate::eval::train::train(
            shape,
            &m.model,
            &m.schedule,
            None,
            seed,
            &stream,
            &valid_units,
            m.tokens,
            m.every,
            &backend,
            |t| bar.set_position(base + t),
        )?;
        work.save(&marker, &result)?;
        crate::failpoint::hit(format_args!("mix-{marker}"));
        done += m.tokens;
        Ok(result)
    };
    let final_loss = |res: &RunResult| res.points.last().expect("a final point").loss.clone();
    let mut runs = Vec::new();
    for (i, (label, w)) in mixtures.iter().enumerate() {
        let res = train_one(format!("search-{i}.json"), label, w, spec.seed, &r, search_shape)?;
        runs.push(MixRun {
            phase: "search".into(),
            mixture: label.clone(),
            scale: scale_label(&r.model),
            seed: spec.seed,
            shares: w.clone(),
            loss: final_loss(&res),
        });
    }
    // The fits, one per validation set, on the search runs.
    let ws: Vec<Vec<f64>> = runs.iter().map(|m| m.shares.clone()).collect();
    let fits: Vec<ValidFit> = spec
        .valid
        .iter()
        .enumerate()
        .map(|(v, (name, _))| {
            // A diverged run (a loss that is not finite) says nothing the fit can use.
            let (w, loss): (Vec<Vec<f64>>, Vec<f64>) =
                ws.iter().zip(&runs).filter(|(_, m)| m.loss[v].is_finite()).map(|(w, m)| (w.clone(), m.loss[v])).unzip();
            if loss.len() < ws.len() {
                eprintln!(
                    "syllabus mix: warning: {} of {} search runs diverged on {name} and are left out of its fit (try a lower --lr)",
                    ws.len() - loss.len(),
                    ws.len()
                );
            }
            let (fits, chosen) = fit::fit_all(&w, &loss);
            ValidFit { valid: name.clone(), fits, chosen }
        })
        .collect();
    let chosen = |v: usize| fits[v].chosen.map(|c| &fits[v].fits[c]);
    let Some(target_fit) = chosen(target) else {
        return Err(Error::InvalidArgument(format!(
            "mix: no regression could be fitted to the losses on {} (a run diverged? try a lower --lr)",
            spec.valid[target].0
        )));
    };
    let (proposal, proposal_predicted) =
        fit::minimise(|w| target_fit.predict(w), &space, spec.seed as u64, MINIMISER_DRAWS).ok_or_else(|| {
            Error::InvalidArgument("mix: no mixture satisfies --max-passes and --max-kl together".into())
        })?;
    // The check: proposal, natural and uniform, every seed.
    let checked = [
        ("proposal", proposal.clone()),
        ("natural", natural.clone()),
        ("uniform", vec![1.0 / natural.len() as f64; natural.len()]),
    ];
    let mut summary = Vec::new();
    let mut per_mixture: Vec<Vec<Vec<f64>>> = Vec::new();
    for (label, w) in &checked {
        let mut losses = Vec::new();
        for k in 0..rc.seeds {
            let seed = spec.seed.wrapping_add(k);
            let res = train_one(format!("check-{label}-{k}.json"), label, w, seed, &rc, check_shape)?;
            let loss = final_loss(&res);
            runs.push(MixRun {
                phase: "check".into(),
                mixture: label.to_string(),
                scale: scale_label(&rc.model),
                seed,
                shares: w.clone(),
                loss: loss.clone(),
            });
            losses.push(loss);
        }
        per_mixture.push(losses);
    }
    bar.finish_and_clear();
    for (v, (vname, _)) in spec.valid.iter().enumerate() {
        for ((label, w), losses) in checked.iter().zip(&per_mixture) {
            let xs: Vec<f64> = losses.iter().map(|l| l[v]).collect();
            let (m, sd) = mean_sd(&xs);
            summary.push(SummaryRow {
                mixture: label.to_string(),
                valid: vname.clone(),
                predicted_loss: chosen(v).map(|f| f.predict(w)),
                loss_mean: m,
                loss_sd: sd,
                seeds: rc.seeds,
                shares: w.clone(),
                max_passes: passes(w, &domain_tokens, budget).into_iter().fold(0.0, f64::max),
            });
        }
    }
    let report = MixReport {
        domains: names,
        domain_tokens,
        natural,
        valid: spec.valid.iter().map(|(n, _)| n.clone()).collect(),
        target: spec.valid[target].0.clone(),
        tokens: r.tokens,
        budget,
        max_passes: spec.max_passes,
        max_kl: spec.max_kl,
        seed: spec.seed,
        search_scale: scale_label(&r.model),
        check_scale: scale_label(&rc.model),
        fits,
        proposal,
        proposal_predicted,
        summary,
        runs,
        resumed_runs: resumed,
        inputs,
    };
    write_runs(&out.join(RUNS_FILE), &report, r.tokens, rc.tokens)?;
    crate::sink::write_atomic(&out.join(SUMMARY_FILE), summary_csv(&report).as_bytes())?;
    crate::sink::write_atomic(&out.join(PROPOSAL_FILE), proposal_toml(&report).as_bytes())?;
    let json = serde_json::to_vec_pretty(&report).map_err(|e| Error::io(out, e.into()))?;
    crate::sink::write_atomic(&out.join(MIX_FILE), &json)?;
    plot::draw(&out.join(PLOT_FILE), &report)?;
    work.finish()?;
    Ok(report)
}

/// Every domain (name, paths) read and tokenized as a table; one without a token is an error
/// (`what` names the command in it).
pub(crate) fn load_domains(
    what: &str,
    domains: &[(String, Vec<String>)],
    read: &ReadOptions,
    tok: &Tok,
    progress: &Progress,
) -> Result<Vec<Streams>> {
    domains
        .iter()
        .map(|(name, paths)| {
            let s = data::load_table(paths, read, tok, false, progress)
                .map_err(|e| Error::InvalidArgument(format!("domain {name}: {e}")))?;
            if s.predictions() == 0 {
                return Err(Error::InvalidArgument(format!(
                    "{what}: domain {name} ({}) has no tokens",
                    paths.join(" ")
                )));
            }
            Ok(s)
        })
        .collect()
}

/// A lake's documents as domains by their cluster (the table's numbers, in numeric order;
/// "none" last for rows without words); a document the table lacks is an error. The domains'
/// hashes cover the lake's files and the table's bytes.
fn split_by_clusters(
    c: &ClusterDomains,
    read: &ReadOptions,
    tok: &Tok,
    progress: &Progress,
) -> Result<(Vec<String>, Vec<Streams>)> {
    let crate::curriculum::prepare::DomainOf::ById { by_id, .. } = crate::kmeans::cluster_domains(&c.table)? else {
        unreachable!("cluster_domains looks domains up by id")
    };
    let table_hash = xxhash_rust::xxh3::xxh3_128(&crate::store::read(&c.table)?);
    let (all, ids) = data::load_rows(&c.lake, read, tok, false, true, progress)?;
    let mut names: Vec<String> =
        by_id.values().cloned().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    names.sort_by_key(|n| (n == "none", n.parse::<u64>().unwrap_or(u64::MAX), n.clone()));
    let index: std::collections::HashMap<&str, usize> =
        names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    let hash = format!("{}+xxh3:{table_hash:032x}", all.hash);
    let mut domains: Vec<Streams> = names
        .iter()
        .map(|_| Streams {
            kind: Kind::Table,
            units: Vec::new(),
            documents: 0,
            counts: crate::score::dsir::Counts::new(crate::eval::kl::params().buckets),
            hash: hash.clone(),
        })
        .collect();
    for (unit, id) in all.units.into_iter().zip(&ids) {
        let Some(name) = by_id.get(id) else {
            return Err(Error::InvalidArgument(format!(
                "mix: the document {id:?} is not in the cluster table {}",
                c.table.display()
            )));
        };
        let d = &mut domains[index[name.as_str()]];
        d.units.push(unit);
        d.documents += 1;
    }
    // A cluster of the table with no document of this lake, or none with a token, is no domain.
    let (names, domains): (Vec<String>, Vec<Streams>) =
        names.into_iter().zip(domains).filter(|(_, d)| d.predictions() > 0).unzip();
    if names.len() < 2 {
        return Err(Error::InvalidArgument(format!(
            "mix: the lake's documents fall in {} cluster(s) of {}: at least two to mix",
            names.len(),
            c.table.display()
        )));
    }
    Ok((names, domains))
}

/// `runs.parquet`: one row per run and validation set.
fn write_runs(path: &Path, r: &MixReport, search_tokens: u64, check_tokens: u64) -> Result<()> {
    let rows = r.runs.len() * r.valid.len();
    let (mut phase, mut mixture, mut scale, mut seed, mut tokens, mut valid, mut loss) = (
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
    );
    let mut shares: Vec<Vec<f64>> = vec![Vec::with_capacity(rows); r.domains.len()];
    for run in &r.runs {
        for (v, name) in r.valid.iter().enumerate() {
            phase.push(run.phase.as_str());
            mixture.push(run.mixture.as_str());
            scale.push(run.scale.as_str());
            seed.push(run.seed);
            tokens.push(if run.phase == "search" { search_tokens } else { check_tokens });
            valid.push(name.as_str());
            loss.push(run.loss[v]);
            for (d, s) in shares.iter_mut().enumerate() {
                s.push(run.shares[d]);
            }
        }
    }
    let mut fields = vec![
        Field::new("phase", DataType::Utf8, false),
        Field::new("mixture", DataType::Utf8, false),
        Field::new("scale", DataType::Utf8, false),
        Field::new("seed", DataType::UInt32, false),
        Field::new("tokens", DataType::UInt64, false),
        Field::new("valid", DataType::Utf8, false),
        Field::new("loss", DataType::Float64, false),
    ];
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(phase)),
        Arc::new(StringArray::from(mixture)),
        Arc::new(StringArray::from(scale)),
        Arc::new(UInt32Array::from(seed)),
        Arc::new(UInt64Array::from(tokens)),
        Arc::new(StringArray::from(valid)),
        Arc::new(Float64Array::from(loss)),
    ];
    for (name, s) in r.domains.iter().zip(shares) {
        fields.push(Field::new(format!("share_{name}"), DataType::Float64, false));
        cols.push(Arc::new(Float64Array::from(s)));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), cols).map_err(|e| Error::arrow("building runs", e))?;
    let mut w = crate::sink::TableWriter::create(path, schema)?;
    w.write(&batch)?;
    w.finish().map(|_| ())
}

fn opt(x: Option<f64>) -> String {
    x.map_or(String::new(), |v| format!("{v:.6}"))
}

/// `summary.csv`: fixed decimals, so equal results are equal bytes.
pub fn summary_csv(r: &MixReport) -> String {
    let mut s = String::from("mixture,valid,predicted_loss,loss_mean,loss_sd,seeds,max_passes");
    for d in &r.domains {
        s.push_str(&format!(",share_{}", crate::eval::csv_field(d)));
    }
    s.push('\n');
    for row in &r.summary {
        s.push_str(&format!(
            "{},{},{},{:.6},{:.6},{},{:.4}",
            row.mixture,
            crate::eval::csv_field(&row.valid),
            opt(row.predicted_loss),
            row.loss_mean,
            row.loss_sd,
            row.seeds,
            row.max_passes
        ));
        for w in &row.shares {
            s.push_str(&format!(",{w:.6}"));
        }
        s.push('\n');
    }
    s
}

/// Shares in millionths summing to exactly 1 (largest remainders), so the `[schedule]` block
/// passes the pipeline's sum check whatever the number of domains.
pub fn micro_shares(w: &[f64]) -> Vec<u64> {
    allocate(w, 1_000_000)
}

/// A TOML key: bare where TOML allows it, otherwise a basic string with TOML's own escapes.
fn toml_key(k: &str) -> String {
    if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return k.to_string();
    }
    let mut s = String::from("\"");
    for c in k.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if c.is_control() => s.push_str(&format!("\\u{:04X}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// `proposal.toml`: the proposal as a pipeline's `[schedule]`, with what backs it in comments.
pub fn proposal_toml(r: &MixReport) -> String {
    let row = |m: &str| r.summary.iter().find(|s| s.mixture == m && s.valid == r.target);
    let fit = r.fits.iter().find(|f| f.valid == r.target).and_then(|f| f.chosen.map(|c| &f.fits[c]));
    let mut s = format!(
        "# syllabus mix: the mixture that minimises the predicted loss on `{}`, at most {} passes over\n# any domain in {} tokens{}.\n",
        r.target,
        r.max_passes,
        r.budget,
        r.max_kl.map_or(String::new(), |b| format!(", within KL {b} of the natural mixture"))
    );
    if let Some(f) = fit {
        s.push_str(&format!(
            "# Fit: {} over {} search runs at {} (leave-one-out Spearman {:.3}, RMSE {:.4}).\n",
            f.family.name(),
            r.runs.iter().filter(|x| x.phase == "search").count(),
            r.search_scale,
            f.loo_spearman,
            f.loo_rmse
        ));
    }
    s.push_str(&format!(
        "# Measured at {} ({} seeds each), loss on `{}`:\n",
        r.check_scale, r.summary[0].seeds, r.target
    ));
    for m in ["proposal", "natural", "uniform"] {
        if let Some(x) = row(m) {
            s.push_str(&format!(
                "#   {m:<9} predicted {} measured {:.4} ± {:.4}\n",
                x.predicted_loss.map_or("-".into(), |p| format!("{p:.4}")),
                x.loss_mean,
                x.loss_sd
            ));
        }
    }
    s.push_str(&format!(
        "[schedule]\ntokens = {}\non_exhausted = \"repeat\"\n\n[[schedule.phases]]\nstart = 0.0\nmixture = {{ ",
        r.budget
    ));
    let micro = micro_shares(&r.proposal);
    let parts: Vec<String> = r
        .domains
        .iter()
        .zip(&micro)
        .map(|(d, &m)| format!("{} = {}.{:06}", toml_key(d), m / 1_000_000, m % 1_000_000))
        .collect();
    s.push_str(&parts.join(", "));
    s.push_str(" }\n");
    s
}

/// The report for the terminal.
pub fn render(r: &MixReport) -> String {
    let mut s = String::new();
    for f in &r.fits {
        let fams: Vec<String> = f
            .fits
            .iter()
            .enumerate()
            .map(|(i, x)| {
                format!("{}{} rho {:.3}", x.family.name(), if Some(i) == f.chosen { "*" } else { "" }, x.loo_spearman)
            })
            .collect();
        s.push_str(&format!("fit on {}: {}\n", f.valid, fams.join(", ")));
    }
    let shares =
        |w: &[f64]| r.domains.iter().zip(w).map(|(d, x)| format!("{d} {:.3}", x)).collect::<Vec<_>>().join(", ");
    s.push_str(&format!("proposal ({}): {}\n", r.target, shares(&r.proposal)));
    s.push_str(&format!("natural:            {}\n", shares(&r.natural)));
    s.push_str("mixture   valid          predicted  measured (mean ± sd)\n");
    for row in &r.summary {
        s.push_str(&format!(
            "{:<9} {:<14} {:>9}  {:.4} ± {:.4}\n",
            row.mixture,
            row.valid,
            row.predicted_loss.map_or("-".into(), |p| format!("{p:.4}")),
            row.loss_mean,
            row.loss_sd
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_sum_to_the_budget_and_follow_the_shares() {
        assert_eq!(allocate(&[0.5, 0.5], 7), [4, 3]);
        assert_eq!(allocate(&[1.0 / 3.0; 3], 10), [4, 3, 3]);
        assert_eq!(allocate(&[0.0, 1.0], 5), [0, 5]);
        let n = allocate(&[0.1234567, 0.3, 0.5765433], 1_000_000);
        assert_eq!(n.iter().sum::<u64>(), 1_000_000);
        assert_eq!(micro_shares(&[1.0 / 3.0; 3]).iter().sum::<u64>(), 1_000_000);
    }

    /// Units of these lengths, their tokens counted from `base`.
    fn streams(base: u32, lens: &[usize]) -> Streams {
        Streams {
            kind: Kind::Table,
            units: lens.iter().map(|&n| Unit { tokens: (base..base + n as u32).collect(), weight: 1.0 }).collect(),
            documents: lens.len() as u64,
            counts: crate::score::dsir::Counts::new(16),
            hash: String::new(),
        }
    }

    #[test]
    fn a_mixture_holds_exactly_its_predictions_per_domain_repeating_where_it_must() {
        let domains = || [streams(0, &[5, 5, 5]), streams(100, &[3, 1, 9])]; // 12 and 2 + 0 + 8 predictions
        let m = mixture_streams(&domains(), &[30, 7], 4);
        let from = |lo: u32, hi: u32| -> u64 {
            m.units.iter().filter(|u| (lo..hi).contains(&u.tokens[0])).map(Unit::predictions).sum()
        };
        // Domain a read two and a half times, b under once; every unit a prefix of a document.
        assert_eq!((from(0, 100), from(100, 200)), (30, 7));
        assert!(m.units.iter().all(|u| u.tokens[0] == 0 || u.tokens[0] == 100));
        assert_eq!(
            m.units.iter().filter(|u| u.tokens[0] == 0).count(),
            8,
            "seven whole documents of 4 and one cut to 2"
        );
        // The same seed, the same data.
        assert_eq!(mixture_streams(&domains(), &[30, 7], 4).units, m.units);
    }

    #[test]
    fn the_proposal_is_a_schedule_the_pipeline_accepts() {
        let toml = "[schedule]\ntokens = 100\non_exhausted = \"repeat\"\n\n[[schedule.phases]]\nstart = 0.0\nmixture = { a = 0.333334, \"b c\" = 0.333333, d = 0.333333 }\n";
        #[derive(serde::Deserialize)]
        struct P {
            schedule: crate::curriculum::ScheduleConfig,
        }
        let p: P = toml::from_str(toml).unwrap();
        assert_eq!(p.schedule.phases[0].mixture.values().sum::<f64>(), 1.0);
        assert_eq!(toml_key("b c"), "\"b c\"");
        assert_eq!(toml_key("a\"b\\c\u{1}"), "\"a\\\"b\\\\c\\u0001\"");
        let parsed: toml::Table = toml::from_str(&format!("{} = 1", toml_key("x\u{301}\"\u{7}"))).unwrap();
        assert!(parsed.contains_key("x\u{301}\"\u{7}"));
    }
}
