//! `syllabus mix graph`: Skill-It's skills graph estimated from the data.
//!
//! For each domain i, eval's model is trained on domain i alone for `tokens` predictions (from
//! the same initialisation for every domain, per seed), and every domain's validation loss is
//! measured before and after: `A[i][j] = (L_j(before) − L_j(after training on i)) / L_j(before)`,
//! averaged over the seeds, negative entries clipped to 0 (METHODS.md). Row i is the domain
//! trained on, column j the validation set: the layout `[feedback].graph` reads, where row j
//! weighs every domain's loss into domain j's share.
//!
//! Outputs: `graph.toml` (a `[feedback]` block with `rule = "skillit"` and the graph, its rows
//! and columns in the domains' order, which must be the curriculum's), `graph.csv` (the matrix
//! with its names, and the unclipped means) and `graph.json`. Killed part way, it keeps each
//! finished (domain, seed) run in `OUT/work/`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::mixture_streams;
use crate::error::{Error, Result};
use crate::eval::data::Unit;
use crate::eval::{EvalParams, RunResult};
use crate::passes::work::Work;
use crate::progress::Progress;
use crate::source::ReadOptions;
use crate::tokenize::Tok;

pub const GRAPH_TOML: &str = "graph.toml";
pub const GRAPH_CSV: &str = "graph.csv";
pub const GRAPH_JSON: &str = "graph.json";

#[derive(Debug, Clone)]
pub struct GraphSpec {
    pub tokenizer: PathBuf,
    pub domains: Vec<(String, Vec<String>)>,
    /// One validation set per domain, by the domain's name.
    pub valid: Vec<(String, Vec<String>)>,
    pub params: EvalParams,
    pub seed: u32,
}

/// What `mix graph` found.
#[derive(Debug, Clone, Serialize)]
pub struct GraphReport {
    pub domains: Vec<String>,
    /// `graph[i][j]`: the relative loss reduction on j's validation set from training on i,
    /// clipped at 0.
    pub graph: Vec<Vec<f64>>,
    /// The same before clipping.
    pub raw: Vec<Vec<f64>>,
    /// Per validation set, the untrained loss (the same initialisation for every row).
    pub before: Vec<f64>,
    pub tokens: u64,
    pub seeds: u32,
    pub seed: u32,
    pub resumed_runs: usize,
}

/// `A[i][j]` of before and after losses: `(before_j − after_j) / before_j`.
pub fn relative_reduction(before: &[f64], after: &[f64]) -> Vec<f64> {
    before.iter().zip(after).map(|(&b, &a)| if b > 0.0 { (b - a) / b } else { 0.0 }).collect()
}

pub fn run(spec: &GraphSpec, read: &ReadOptions, out: &Path, progress: &Progress) -> Result<GraphReport> {
    let bad = |m: String| Err(Error::InvalidArgument(format!("mix graph: {m}")));
    if spec.domains.len() < 2 {
        return bad("at least two domains (--domain NAME=PATH)".into());
    }
    for (what, list) in [("domains", &spec.domains), ("validation sets", &spec.valid)] {
        if let Some(n) = crate::eval::first_repeat(list.iter().map(|(n, _)| n.as_str())) {
            return bad(format!("two {what} are named {n:?}"));
        }
    }
    // The validation sets in the domains' order, one each.
    let mut valid_paths = Vec::with_capacity(spec.domains.len());
    for (d, _) in &spec.domains {
        match spec.valid.iter().find(|(v, _)| v == d) {
            Some((_, p)) => valid_paths.push(p.clone()),
            None => return bad(format!("no validation set for domain {d:?}: give --valid {d}=PATH (one per domain)")),
        }
    }
    if let Some((v, _)) = spec.valid.iter().find(|(v, _)| !spec.domains.iter().any(|(d, _)| d == v)) {
        return bad(format!("validation set {v:?} is not a domain: the graph is square, one per domain"));
    }
    let r = spec.params.resolve()?;
    let tok = Tok::load(&spec.tokenizer)?;
    let shape = crate::eval::lm_shape(&tok, &r.model)?;
    let sets: Vec<(String, Vec<String>)> = spec.domains.iter().map(|(d, _)| d.clone()).zip(valid_paths).collect();
    let valid = crate::eval::load_valid_sets(&sets, read, &tok, r.valid_tokens, r.model.context, progress)?;
    let domains = super::load_domains("mix graph", &spec.domains, read, &tok, progress)?;
    let key = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"), "settings": r, "seed": spec.seed,
        "tokenizer": tok.hash(),
        "domains": spec.domains.iter().zip(&domains).map(|((n, _), s)| serde_json::json!([n, s.hash])).collect::<Vec<_>>(),
        "valid": valid.iter().map(|s| s.hash.clone()).collect::<Vec<_>>(),
    })
    .to_string();
    crate::sink::output_dir(out)?;
    let work = Work::at(out.join("work"), key)?;
    let backend = crate::proxy::Backend::for_device(&crate::proxy::device());
    let valid_units: Vec<&[Unit]> = valid.iter().map(|v| v.units.as_slice()).collect();
    let k = domains.len();
    let bar = progress.counted("train", k as u64 * r.seeds as u64 * r.tokens);
    let (mut resumed, mut done) = (0, 0u64);
    let mut sum = vec![vec![0.0; k]; k];
    let mut before = vec![0.0; k];
    for i in 0..k {
        let mut n = vec![0; k];
        n[i] = r.tokens;
        for s in 0..r.seeds {
            let seed = spec.seed.wrapping_add(s);
            let marker = format!("run-{i}-{s}.json");
            let res = match work.load::<RunResult>(&marker) {
                Some(kept) => {
                    resumed += 1;
                    kept
                }
                None => {
                    bar.set_message(format!("{} seed {seed}", spec.domains[i].0));
                    let stream = mixture_streams(&domains, &n, seed as u64);
                    let base = done;
                    let res = crate::eval::train::train(
                        shape,
                        &r.model,
                        &r.schedule,
                        None,
                        seed,
                        &stream,
                        &valid_units,
                        r.tokens,
                        r.every,
                        &backend,
                        |t| bar.set_position(base + t),
                    )?;
                    work.save(&marker, &res)?;
                    crate::failpoint::hit(format_args!("mix-graph-{i}-{s}"));
                    res
                }
            };
            done += r.tokens;
            bar.set_position(done);
            let (b, a) = (&res.points[0].loss, &res.points.last().expect("a final point").loss);
            if i == 0 {
                for (x, y) in before.iter_mut().zip(b) {
                    *x += y / r.seeds as f64;
                }
            }
            for (x, y) in sum[i].iter_mut().zip(relative_reduction(b, a)) {
                *x += y / r.seeds as f64;
            }
        }
    }
    bar.finish_and_clear();
    let graph: Vec<Vec<f64>> = sum.iter().map(|row| row.iter().map(|x| x.max(0.0)).collect()).collect();
    let report = GraphReport {
        domains: spec.domains.iter().map(|(n, _)| n.clone()).collect(),
        graph,
        raw: sum,
        before,
        tokens: r.tokens,
        seeds: r.seeds,
        seed: spec.seed,
        resumed_runs: resumed,
    };
    crate::sink::write_atomic(&out.join(GRAPH_TOML), graph_toml(&report).as_bytes())?;
    crate::sink::write_atomic(&out.join(GRAPH_CSV), graph_csv(&report).as_bytes())?;
    let json = serde_json::to_vec_pretty(&report).map_err(|e| Error::io(out, e.into()))?;
    crate::sink::write_atomic(&out.join(GRAPH_JSON), &json)?;
    work.finish()?;
    Ok(report)
}

/// `graph.toml`: the `[feedback]` block, fixed decimals.
pub fn graph_toml(r: &GraphReport) -> String {
    let mut s = format!(
        "# syllabus mix graph: Skill-It's graph from {} tokens per domain ({} seeds). Row i: the domain\n# trained on; column j: the relative loss reduction on j's validation set, clipped at 0.\n# Rows and columns in this order, which must be the curriculum's domain order:\n#   {}\n[feedback]\nrule = \"skillit\"\ngraph = [\n",
        r.tokens,
        r.seeds,
        r.domains.join(", ")
    );
    for (d, row) in r.domains.iter().zip(&r.graph) {
        let cells: Vec<String> = row.iter().map(|x| format!("{x:.6}")).collect();
        s.push_str(&format!("    [{}], # {d}\n", cells.join(", ")));
    }
    s.push_str("]\n");
    s
}

/// `graph.csv`: one row per trained domain; clipped and raw.
pub fn graph_csv(r: &GraphReport) -> String {
    let names: Vec<String> = r.domains.iter().map(|d| crate::eval::csv_field(d)).collect();
    let mut s = format!(
        "trained_on,{},{}\n",
        names.join(","),
        names.iter().map(|n| format!("raw_{n}")).collect::<Vec<_>>().join(",")
    );
    for ((d, row), raw) in names.iter().zip(&r.graph).zip(&r.raw) {
        let cells: Vec<String> = row.iter().chain(raw).map(|x| format!("{x:.6}")).collect();
        s.push_str(&format!("{d},{}\n", cells.join(",")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reduction_is_relative_to_the_loss_before() {
        assert_eq!(relative_reduction(&[4.0, 2.0], &[3.0, 2.5]), [0.25, -0.25]);
    }

    #[test]
    fn the_graph_block_is_what_feedback_reads() {
        let r = GraphReport {
            domains: vec!["a".into(), "b".into()],
            graph: vec![vec![0.5, 0.0], vec![0.125, 0.25]],
            raw: vec![vec![0.5, -0.1], vec![0.125, 0.25]],
            before: vec![5.0, 5.0],
            tokens: 10,
            seeds: 1,
            seed: 0,
            resumed_runs: 0,
        };
        #[derive(serde::Deserialize)]
        struct P {
            feedback: crate::loader::feedback::FeedbackConfig,
        }
        let p: P = toml::from_str(&graph_toml(&r)).unwrap();
        assert_eq!(p.feedback.graph.as_deref(), Some(r.graph.as_slice()));
        p.feedback.validate(&r.domains).unwrap();
        assert_eq!(graph_csv(&r).lines().next().unwrap(), "trained_on,a,b,raw_a,raw_b");
    }
}
