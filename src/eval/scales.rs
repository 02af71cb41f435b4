//! `eval --scales`: every candidate trained at several model scales, and whether the scales
//! rank the candidates alike.
//!
//! DataDecide's lesson (METHODS.md): small models rank data, they do not measure its absolute
//! quality, and a small-scale ranking picks the larger-scale winner in about 80% of pairs. So
//! the question a user asks of a small eval is "would a larger model order these candidates
//! the same way?". Each scale is a whole eval of its own under `OUT/SCALE/` (its curves,
//! summary and resume state); beside them, per validation set and pair of scales, the share
//! of candidate pairs both scales order the same way and Kendall's tau-b of the two
//! rankings, and per scale the decision it makes (the candidate with the lowest final mean
//! loss, and by how much). A scale's directory is its label with `:` as `_` and without `=`.
//!
//! Outputs: `OUT/scales.csv` (one row per validation set and pair of scales), `OUT/decisions.csv`
//! (one row per validation set and scale) and `OUT/scales.json` (both, with the settings).

use std::path::Path;

use serde::Serialize;

use super::{EvalParams, EvalReport, EvalSpec};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::source::ReadOptions;

pub const SCALES_FILE: &str = "scales.csv";
pub const DECISIONS_FILE: &str = "decisions.csv";
pub const SCALES_JSON: &str = "scales.json";

/// One model scale: `WIDTHxLAYERS`, optionally `:context=N` and `:tokens=N` (eval's own
/// context and budget where left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scale {
    /// As written.
    pub label: String,
    pub width: usize,
    pub layers: usize,
    pub context: Option<usize>,
    pub tokens: Option<u64>,
}

impl Scale {
    pub fn parse(s: &str) -> std::result::Result<Scale, String> {
        let bad = |m: &str| Err(format!("scale {s:?}: {m} (expected WIDTHxLAYERS[:context=N][:tokens=N], e.g. 128x4)"));
        let mut parts = s.split(':');
        let shape = parts.next().unwrap_or("");
        let Some((w, l)) = shape.split_once('x') else { return bad("no WIDTHxLAYERS") };
        let (Ok(width), Ok(layers)) = (w.parse::<usize>(), l.parse::<usize>()) else {
            return bad("width and layers are whole numbers");
        };
        if width == 0 || layers == 0 {
            return bad("width and layers are at least 1");
        }
        let mut scale = Scale { label: s.to_string(), width, layers, context: None, tokens: None };
        for part in parts {
            match part.split_once('=') {
                Some(("context", v)) => match v.parse::<usize>() {
                    Ok(c) if c > 0 && scale.context.is_none() => scale.context = Some(c),
                    _ => return bad("context= takes a whole number of at least 1, once"),
                },
                Some(("tokens", v)) => match v.parse::<u64>() {
                    Ok(t) if t > 0 && scale.tokens.is_none() => scale.tokens = Some(t),
                    _ => return bad("tokens= takes a whole number of at least 1, once"),
                },
                _ => return bad(&format!("unknown setting {part:?}")),
            }
        }
        Ok(scale)
    }

    /// Its output directory's name: the label with `:` as `_` and without `=`
    /// (`128x4:tokens=4096` -> `128x4_tokens4096`).
    pub fn dir_name(&self) -> String {
        self.label.replace(':', "_").replace('=', "")
    }

    /// Eval's settings at this scale.
    pub fn params(&self, p: &EvalParams) -> EvalParams {
        let mut p = p.clone();
        p.model.width = Some(self.width);
        p.model.layers = Some(self.layers);
        p.model.context = self.context.or(p.model.context);
        p.tokens = self.tokens.unwrap_or(p.tokens);
        p
    }

    /// `spec` at this scale.
    pub fn apply(&self, spec: &EvalSpec) -> EvalSpec {
        EvalSpec { params: self.params(&spec.params), ..spec.clone() }
    }
}

impl<'de> serde::Deserialize<'de> for Scale {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Scale, D::Error> {
        let s = String::deserialize(d)?;
        Scale::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Whether two scales order the candidates alike, on one validation set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agreement {
    pub valid: String,
    pub a: String,
    pub b: String,
    /// Candidate pairs.
    pub pairs: usize,
    /// Pairs both scales order the same way (a tie at either scale is not agreement).
    pub agree: usize,
    /// `agree / pairs` (None with fewer than two candidates).
    pub pairwise_agreement: Option<f64>,
    /// Kendall's tau-b of the two rankings (None where one scale ties every pair).
    pub kendall_tau: Option<f64>,
    /// Whether both pick the same winner.
    pub same_winner: bool,
}

/// What one scale decides on one validation set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub valid: String,
    pub scale: String,
    /// The candidate with the lowest final mean loss (the earlier on a tie).
    pub winner: String,
    pub winner_loss: f64,
    /// The next best, and how far behind it is in seed standard deviations of the two (None
    /// with one seed or one candidate).
    pub runner_up: Option<String>,
    pub margin: Option<f64>,
    pub margin_in_sd: Option<f64>,
    /// The candidates from best to worst.
    pub ranking: Vec<String>,
}

/// What `eval --scales` found.
#[derive(Debug, Clone, Serialize)]
pub struct ScalesReport {
    pub scales: Vec<Scale>,
    pub agreement: Vec<Agreement>,
    pub decisions: Vec<Decision>,
    #[serde(skip)]
    pub reports: Vec<EvalReport>,
}

/// Counts over the pairs of two score vectors (lower is better): concordant, discordant, tied
/// in `x` only, tied in `y` only (pairs tied in both count in neither).
fn pair_counts(x: &[f64], y: &[f64]) -> (usize, usize, usize, usize) {
    let (mut c, mut d, mut tx, mut ty) = (0, 0, 0, 0);
    for i in 0..x.len() {
        for j in i + 1..x.len() {
            // NaN compares as nothing: a tie (callers rank it as +inf, see `ranked`).
            let cmp = |v: &[f64]| v[i].partial_cmp(&v[j]).or(Some(std::cmp::Ordering::Equal));
            let (sx, sy) = (cmp(x), cmp(y));
            use std::cmp::Ordering::Equal;
            match (sx, sy) {
                (Some(Equal), Some(Equal)) => {}
                (Some(Equal), _) => tx += 1,
                (_, Some(Equal)) => ty += 1,
                (a, b) if a == b => c += 1,
                _ => d += 1,
            }
        }
    }
    (c, d, tx, ty)
}

/// Kendall's tau-b: (C − D) / √((C + D + Tx)(C + D + Ty)); None where a ranking is all ties.
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> Option<f64> {
    let (c, d, tx, ty) = pair_counts(x, y);
    let denom = (((c + d + tx) * (c + d + ty)) as f64).sqrt();
    (denom > 0.0).then(|| (c as f64 - d as f64) / denom)
}

/// The share of pairs two score vectors order the same way (strictly, both).
pub fn pairwise_agreement(x: &[f64], y: &[f64]) -> (usize, usize) {
    let n = x.len();
    let pairs = n * n.saturating_sub(1) / 2;
    (pair_counts(x, y).0, pairs)
}

/// A loss as ranked: a diverged run's (NaN or infinite) ranks last, tied with the others.
fn ranked(l: f64) -> f64 {
    if l.is_finite() {
        l
    } else {
        f64::INFINITY
    }
}

/// Candidate indices from the lowest loss to the highest (stable: the earlier on a tie).
fn ranking(losses: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..losses.len()).collect();
    idx.sort_by(|&a, &b| losses[a].total_cmp(&losses[b]));
    idx
}

/// Run eval at every scale into `out/SCALE/`, then compare the scales.
pub fn run(
    spec: &EvalSpec,
    scales: &[Scale],
    read: &ReadOptions,
    out: &Path,
    progress: &Progress,
) -> Result<ScalesReport> {
    if scales.len() < 2 {
        return Err(Error::InvalidArgument("eval --scales: at least two scales to compare".into()));
    }
    for (i, s) in scales.iter().enumerate() {
        if scales[..i].iter().any(|o| o.dir_name() == s.dir_name()) {
            return Err(Error::InvalidArgument(format!("eval --scales: {} is given twice", s.label)));
        }
        // Every scale's settings, with every candidate's own, are checked before the first
        // trains.
        let r =
            s.apply(spec).params.resolve().map_err(|e| Error::InvalidArgument(format!("scale {}: {e}", s.label)))?;
        for c in &spec.candidates {
            r.for_candidate(&c.train)
                .map_err(|e| Error::InvalidArgument(format!("scale {}, candidate {}: {e}", s.label, c.name)))?;
        }
    }
    crate::sink::output_dir(out)?;
    let mut reports = Vec::with_capacity(scales.len());
    for s in scales {
        eprintln!("syllabus eval: scale {}", s.label);
        reports.push(super::run(&s.apply(spec), read, &out.join(s.dir_name()), progress)?);
    }
    let report = compare(scales, reports);
    crate::sink::write_atomic(&out.join(SCALES_FILE), agreement_csv(&report.agreement).as_bytes())?;
    crate::sink::write_atomic(&out.join(DECISIONS_FILE), decisions_csv(&report.decisions).as_bytes())?;
    let json = serde_json::to_vec_pretty(&report).map_err(|e| Error::io(out, e.into()))?;
    crate::sink::write_atomic(&out.join(SCALES_JSON), &json)?;
    Ok(report)
}

/// The agreement and decisions of finished evals, one per scale.
pub fn compare(scales: &[Scale], reports: Vec<EvalReport>) -> ScalesReport {
    let valid = reports[0].valid.clone();
    let candidates = reports[0].candidates.clone();
    // losses[scale][valid][candidate], and the seed sd beside each.
    let stat = |r: &EvalReport, v: &str, c: &str, f: fn(&super::SummaryRow) -> f64| {
        r.summary.iter().find(|row| row.valid == v && row.candidate == c).map_or(f64::NAN, f)
    };
    let mut agreement = Vec::new();
    let mut decisions = Vec::new();
    for v in &valid {
        let losses: Vec<Vec<f64>> = reports
            .iter()
            .map(|r| candidates.iter().map(|c| ranked(stat(r, v, c, |row| row.final_loss_mean))).collect())
            .collect();
        for (si, (s, r)) in scales.iter().zip(&reports).enumerate() {
            let l = &losses[si];
            let order = ranking(l);
            let (w, second) = (order[0], order.get(1).copied());
            let sd = |c: usize| stat(r, v, &candidates[c], |row| row.final_loss_sd);
            let margin = second.map(|b| l[b] - l[w]);
            let pooled = second.map(|b| ((sd(w).powi(2) + sd(b).powi(2)) / 2.0).sqrt());
            decisions.push(Decision {
                valid: v.clone(),
                scale: s.label.clone(),
                winner: candidates[w].clone(),
                winner_loss: l[w],
                runner_up: second.map(|b| candidates[b].clone()),
                margin,
                margin_in_sd: margin.zip(pooled).filter(|(_, p)| *p > 0.0).map(|(m, p)| m / p),
                ranking: order.iter().map(|&c| candidates[c].clone()).collect(),
            });
        }
        for a in 0..scales.len() {
            for b in a + 1..scales.len() {
                let (agree, pairs) = pairwise_agreement(&losses[a], &losses[b]);
                agreement.push(Agreement {
                    valid: v.clone(),
                    a: scales[a].label.clone(),
                    b: scales[b].label.clone(),
                    pairs,
                    agree,
                    pairwise_agreement: (pairs > 0).then(|| agree as f64 / pairs as f64),
                    kendall_tau: kendall_tau_b(&losses[a], &losses[b]),
                    same_winner: ranking(&losses[a])[0] == ranking(&losses[b])[0],
                });
            }
        }
    }
    ScalesReport { scales: scales.to_vec(), agreement, decisions, reports }
}

fn opt(x: Option<f64>) -> String {
    x.map_or(String::new(), |v| format!("{v:.4}"))
}

/// `scales.csv`.
pub fn agreement_csv(rows: &[Agreement]) -> String {
    let mut s = String::from("valid,scale_a,scale_b,pairs,agree,pairwise_agreement,kendall_tau,same_winner\n");
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            super::csv_field(&r.valid),
            r.a,
            r.b,
            r.pairs,
            r.agree,
            opt(r.pairwise_agreement),
            opt(r.kendall_tau),
            r.same_winner
        ));
    }
    s
}

/// `decisions.csv`.
pub fn decisions_csv(rows: &[Decision]) -> String {
    let mut s = String::from("valid,scale,winner,winner_loss,runner_up,margin,margin_in_sd,ranking\n");
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{:.6},{},{},{},{}\n",
            super::csv_field(&r.valid),
            r.scale,
            super::csv_field(&r.winner),
            r.winner_loss,
            r.runner_up.as_deref().map(super::csv_field).unwrap_or_default(),
            r.margin.map_or(String::new(), |m| format!("{m:.6}")),
            opt(r.margin_in_sd),
            super::csv_field(&r.ranking.join(" > "))
        ));
    }
    s
}

/// The comparison for the terminal.
pub fn render(report: &ScalesReport) -> String {
    let mut s = String::new();
    for d in &report.decisions {
        s.push_str(&format!("{} at {}: {}\n", d.valid, d.scale, d.ranking.join(" < ")));
    }
    for a in &report.agreement {
        s.push_str(&format!(
            "{}: {} vs {}: {}/{} pairs agree ({}), Kendall's tau {}, {}\n",
            a.valid,
            a.a,
            a.b,
            a.agree,
            a.pairs,
            a.pairwise_agreement.map_or("-".into(), |x| format!("{:.0}%", 100.0 * x)),
            a.kendall_tau.map_or("-".into(), |t| format!("{t:.3}")),
            if a.same_winner { "same winner" } else { "different winners" }
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_parse() {
        let s = Scale::parse("128x4:context=128:tokens=4096").unwrap();
        assert_eq!((s.width, s.layers, s.context, s.tokens), (128, 4, Some(128), Some(4096)));
        assert_eq!(Scale::parse("64x2").unwrap().context, None);
        for bad in ["64", "0x2", "64x", "64x2:depth=3", "64x2:tokens=0", "64x2:context=8:context=9"] {
            assert!(Scale::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kendall_tau_matches_hand_counts() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(kendall_tau_b(&x, &x), Some(1.0));
        assert_eq!(kendall_tau_b(&x, &[4.0, 3.0, 2.0, 1.0]), Some(-1.0));
        // One adjacent swap among three: 2 concordant, 1 discordant of 3 pairs.
        let t = kendall_tau_b(&[1.0, 2.0, 3.0], &[2.0, 1.0, 3.0]).unwrap();
        assert!((t - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(pairwise_agreement(&[1.0, 2.0, 3.0], &[2.0, 1.0, 3.0]), (2, 3));
        // A tie in y: C = 2, D = 0, Ty = 1: 2 / sqrt(3 · 2).
        let t = kendall_tau_b(&[1.0, 2.0, 3.0], &[1.0, 1.0, 3.0]).unwrap();
        assert!((t - 2.0 / 6f64.sqrt()).abs() < 1e-12);
        assert_eq!(kendall_tau_b(&[1.0, 2.0], &[5.0, 5.0]), None);
    }

    #[test]
    fn ranking_is_stable_and_a_diverged_run_ranks_last() {
        assert_eq!(ranking(&[2.0, 1.0, 2.0, 0.5]), [3, 1, 0, 2]);
        let l: Vec<f64> = [f64::NAN, 1.0, -f64::NAN, 0.5].into_iter().map(ranked).collect();
        assert_eq!(ranking(&l), [3, 1, 0, 2]);
        // Two diverged runs are tied, not in agreement.
        let (a, b) = ([1.0, f64::INFINITY, f64::INFINITY], [1.0, f64::INFINITY, f64::INFINITY]);
        assert_eq!(pairwise_agreement(&a, &b), (2, 3));
    }
}
