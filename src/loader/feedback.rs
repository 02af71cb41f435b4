//! Mixtures steered by the trainer: the rules that turn reported per-domain signals into a
//! domain mixture, and the plan that deals the remaining sequences out under it.
//!
//! - DUMP (UCB over distributions): A_j = mean |advantage| over the last `window` (300)
//!   samples reported for domain j, n_j its sample count, N = Σ n_j;
//!   UCB_j = A_j + sqrt(2 ln(N + 1) / (n_j + 1)); p = softmax(UCB / τ), τ = 0.1.
//! - Skill-It: p ∝ prior · exp(η · A·L), L_j the domain's reported validation losses summed
//!   over its last `evaluations` (3) reports, recomputed from the prior every time.
//!
//! The plan: until the first decision, position i of the pass is curriculum sequence i. From a
//! decision's first position on, each domain's remaining sequences keep their curriculum order
//! and the domains are interleaved by worst-case fair weighted queueing under the mixture
//! (the same [`Mixer`] as the offline schedule), so each domain stays within one sequence of
//! its share, summed over the positions since the first decision; a domain that runs out drops out and the others share its part. Every sequence
//! is planned exactly once per pass.
//!
//! Determinism: reports are due at fixed steps (`every`), a decision applies a fixed `lag`
//! of global batches after its report, and the plan is a pure function of the reports, so a
//! replay of the log rebuilds it bit for bit.
//!
//! Memory: a cursor and a count per domain; the plan itself lives in the shared segment
//! (8 bytes per sequence); DUMP keeps `window` values per domain, Skill-It `evaluations`; and
//! the state before each of the last [`REPLACEABLE_DECISIONS`] decisions is kept to roll back
//! to. Reports' values are kept only in the (append-only) log, never in memory.

use std::collections::VecDeque;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::curriculum::reweight::softmax;
use crate::curriculum::schedule::Mixer;
use crate::error::{Error, Result};

/// How `serve` turns reports into mixtures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// The curriculum's own order; reports are refused.
    #[default]
    None,
    /// DUMP's UCB over domains, from per-sample |advantage| (or loss) values.
    Dump,
    /// Skill-It's update, from per-domain validation losses.
    Skillit,
}

/// `[feedback]` of a pipeline (recorded in the manifest; `serve` flags override it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackConfig {
    #[serde(default)]
    pub rule: Rule,
    /// Reports are due after every `every` global batches (steps every-1, 2·every-1, ...).
    #[serde(default = "d_every")]
    pub every: u64,
    /// A decision applies `lag` global batches after the step of its report, so ranks can read
    /// that far ahead without waiting.
    #[serde(default = "d_lag")]
    pub lag: u64,
    /// DUMP: the softmax temperature τ.
    #[serde(default = "d_temperature")]
    pub temperature: f64,
    /// DUMP: samples per domain that A_j averages.
    #[serde(default = "d_window")]
    pub window: usize,
    /// Skill-It: the step size η.
    #[serde(default = "d_eta")]
    pub eta: f64,
    /// Skill-It: reports per domain that L_j sums.
    #[serde(default = "d_evaluations")]
    pub evaluations: usize,
    /// Skill-It: the skill graph A (row j: how each domain's loss moves domain j's weight);
    /// the identity when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<Vec<Vec<f64>>>,
    /// Skill-It: the prior mixture; the curriculum's share of sequences per domain when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior: Option<IndexMap<String, f64>>,
}

fn d_every() -> u64 {
    1
}
fn d_lag() -> u64 {
    2
}
fn d_temperature() -> f64 {
    0.1
}
fn d_window() -> usize {
    300
}
fn d_eta() -> f64 {
    0.5
}
fn d_evaluations() -> usize {
    3
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        FeedbackConfig {
            rule: Rule::None,
            every: d_every(),
            lag: d_lag(),
            temperature: d_temperature(),
            window: d_window(),
            eta: d_eta(),
            evaluations: d_evaluations(),
            graph: None,
            prior: None,
        }
    }
}

impl FeedbackConfig {
    pub fn validate(&self, domains: &[String]) -> Result<()> {
        let bad = |key: &str, what: &str| Err(Error::Config(format!("feedback.{key}: {what}")));
        if self.every == 0 {
            return bad("every", "must be at least 1");
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return bad("temperature", "must be positive");
        }
        if self.window == 0 || self.evaluations == 0 {
            return bad(if self.window == 0 { "window" } else { "evaluations" }, "must be at least 1");
        }
        if !(self.eta.is_finite() && self.eta.abs() <= 1e3) {
            return bad("eta", "must be a number within +-1000");
        }
        if self.temperature < 1e-3 {
            return bad("temperature", "must be at least 0.001 (below, the softmax is a hard argmax)");
        }
        if self.window > 1 << 20 || self.evaluations > 1 << 14 {
            return bad(
                if self.window > 1 << 20 { "window" } else { "evaluations" },
                "at most 1048576 (window) and 16384 (evaluations): they are kept in memory per domain",
            );
        }
        if let Some(g) = &self.graph {
            if g.len() != domains.len()
                || g.iter()
                    .any(|row| row.len() != domains.len() || row.iter().any(|x| !(x.is_finite() && x.abs() <= 1e3)))
            {
                return bad(
                    "graph",
                    &format!("must be a {0} x {0} matrix of numbers within +-1000 (one row per domain)", domains.len()),
                );
            }
        }
        if let Some(p) = &self.prior {
            if let Some(k) = p.keys().find(|k| !domains.contains(k)) {
                return bad("prior", &format!("unknown domain {k:?} (domains: {})", domains.join(", ")));
            }
            if p.values().any(|&w| !(w >= 0.0 && w.is_finite())) || p.values().sum::<f64>() <= 0.0 {
                return bad("prior", "weights must be non-negative with a positive sum");
            }
        }
        Ok(())
    }
}

/// DUMP's UCB scores: A_j + sqrt(2 ln(N + 1) / (n_j + 1)).
pub fn dump_ucb(a: &[f64], n: &[u64]) -> Vec<f64> {
    let total: u64 = n.iter().sum();
    a.iter().zip(n).map(|(&a, &n)| a + (2.0 * ((total + 1) as f64).ln() / (n as f64 + 1.0)).sqrt()).collect()
}

/// DUMP's mixture: softmax(UCB / τ).
pub fn dump_mixture(a: &[f64], n: &[u64], temperature: f64) -> Vec<f64> {
    let z: Vec<f64> = dump_ucb(a, n).into_iter().map(|u| u / temperature).collect();
    softmax(&z)
}

/// Skill-It's mixture: prior · exp(η · A·L), normalised. `graph` None is the identity.
pub fn skillit_mixture(prior: &[f64], graph: Option<&[Vec<f64>]>, losses: &[f64], eta: f64) -> Vec<f64> {
    let z: Vec<f64> = (0..prior.len())
        .map(|j| {
            let al = match graph {
                Some(g) => g[j].iter().zip(losses).map(|(a, l)| a * l).sum::<f64>(),
                None => losses[j],
            };
            if prior[j] > 0.0 {
                prior[j].ln() + eta * al
            } else {
                f64::NEG_INFINITY
            }
        })
        .collect();
    softmax(&z)
}

/// One report: per domain (by name), the values of the step (per-sample |advantage| or loss
/// for DUMP; validation losses, averaged, for Skill-It).
pub type Report = IndexMap<String, Vec<f64>>;

/// One logged decision: the report it came from and the mixture it set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// 1-based.
    pub decision: u64,
    pub rule: Rule,
    pub report_step: u64,
    pub applies_from_step: u64,
    pub applies_from_sequence: u64,
    pub global_batch_size: u64,
    pub report: Report,
    /// Per domain: A_j (DUMP) or L_j (Skill-It).
    pub signal: IndexMap<String, f64>,
    /// Per domain: n_j (DUMP) or the reports L_j sums (Skill-It).
    pub count: IndexMap<String, u64>,
    pub mixture: IndexMap<String, f64>,
}

/// The step and the report of a `{"op": "report", "step": s, "stats": {domain: [values]}}`
/// request (what serve's socket receives).
pub fn parse_report(req: &serde_json::Value) -> Result<(u64, Report)> {
    let step = req
        .get("step")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| Error::InvalidArgument("report: \"step\" must be a non-negative integer".into()))?;
    let report: Report = serde_json::from_value(req.get("stats").cloned().unwrap_or(serde_json::Value::Null))
        .map_err(|e| Error::InvalidArgument(format!("report: \"stats\" must map domains to lists of numbers: {e}")))?;
    Ok((step, report))
}

/// What a report did to the decision history (and so to the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new decision, appended.
    Appended,
    /// The report of a decided step, the same as logged: nothing changed.
    Unchanged,
    /// The report of a decided step, different: that decision and the later ones were replaced.
    Replaced,
}

/// A rule's memory of past reports.
#[derive(Debug, Clone)]
struct RuleState {
    /// Per domain, the last values (DUMP: `window` samples; Skill-It: `evaluations` losses).
    recent: Vec<VecDeque<f64>>,
    counts: Vec<u64>,
}

impl RuleState {
    fn new(domains: usize) -> Self {
        RuleState { recent: vec![VecDeque::new(); domains], counts: vec![0; domains] }
    }

    fn observe(&mut self, cfg: &FeedbackConfig, values: &[Vec<f64>]) {
        for (j, v) in values.iter().enumerate() {
            match cfg.rule {
                Rule::Dump => {
                    for &x in v {
                        self.recent[j].push_back(x.abs());
                        if self.recent[j].len() > cfg.window {
                            self.recent[j].pop_front();
                        }
                    }
                    self.counts[j] += v.len() as u64;
                }
                Rule::Skillit if !v.is_empty() => {
                    self.recent[j].push_back(v.iter().sum::<f64>() / v.len() as f64);
                    if self.recent[j].len() > cfg.evaluations {
                        self.recent[j].pop_front();
                    }
                    self.counts[j] = self.recent[j].len() as u64;
                }
                _ => {}
            }
        }
    }

    /// (signal per domain, mixture).
    fn mixture(&self, cfg: &FeedbackConfig, prior: &[f64]) -> (Vec<f64>, Vec<f64>) {
        match cfg.rule {
            Rule::Dump => {
                let a: Vec<f64> = self
                    .recent
                    .iter()
                    .map(|r| if r.is_empty() { 0.0 } else { r.iter().sum::<f64>() / r.len() as f64 })
                    .collect();
                let p = dump_mixture(&a, &self.counts, cfg.temperature);
                (a, p)
            }
            Rule::Skillit => {
                let l: Vec<f64> = self.recent.iter().map(|r| r.iter().sum()).collect();
                let p = skillit_mixture(prior, cfg.graph.as_deref(), &l, cfg.eta);
                (l, p)
            }
            Rule::None => (vec![0.0; prior.len()], prior.to_vec()),
        }
    }
}

/// Deals positions of a pass out to sequences: the identity until a mixture is set, then
/// fair interleaving of each domain's remaining sequences (see the module doc).
#[derive(Debug, Clone)]
pub struct Planner {
    n_domains: usize,
    planned: u64,
    mixing: Option<Mixing>,
}

#[derive(Debug, Clone)]
struct Mixing {
    mixture: Vec<f64>,
    mixer: Mixer,
    /// Per domain: where to look for its next sequence, and how many it has left.
    cursor: Vec<u64>,
    remaining: Vec<u64>,
}

impl Planner {
    pub fn new(n_domains: usize) -> Self {
        Planner { n_domains, planned: 0, mixing: None }
    }

    /// Positions planned so far.
    pub fn planned(&self) -> u64 {
        self.planned
    }

    /// Use `mixture` from the next unplanned position on.
    pub fn set_mixture(&mut self, domains: &[u16], mixture: Vec<f64>) {
        let mixing = match self.mixing.take() {
            Some(mut m) => {
                // The mixer's targets carry over: each domain stays within one sequence of
                // the sum of its shares over all positions, across decisions.
                m.mixture = mixture;
                m
            }
            None => {
                // Identity so far: exactly the sequences before `planned` are used.
                let mut remaining = vec![0u64; self.n_domains];
                for &d in &domains[self.planned as usize..] {
                    remaining[d as usize] += 1;
                }
                Mixing {
                    mixture,
                    mixer: Mixer::new(self.n_domains),
                    cursor: vec![self.planned; self.n_domains],
                    remaining,
                }
            }
        };
        self.mixing = Some(mixing);
    }

    /// Plan positions up to `to` (capped at the pass's end) into `plan`.
    pub fn extend(&mut self, domains: &[u16], plan: &mut [u64], to: u64) {
        let to = to.min(domains.len() as u64);
        let Some(m) = &mut self.mixing else {
            for pos in self.planned..to {
                plan[pos as usize] = pos;
            }
            self.planned = self.planned.max(to);
            return;
        };
        let ones = vec![1u64; self.n_domains];
        // The live mixture changes only when a domain runs out.
        let live_mixture = |m: &Mixing| {
            let live: Vec<bool> = m.remaining.iter().map(|&r| r > 0).collect();
            let by_count: Vec<f64> = m.remaining.iter().map(|&r| r as f64).collect();
            // A mixture with no share left for the domains that remain falls back to their sizes.
            Mixer::live_mixture(&m.mixture, &live).or_else(|| Mixer::live_mixture(&by_count, &live))
        };
        let mut lm = if self.planned < to { live_mixture(m) } else { None };
        while self.planned < to {
            let lm_now = lm.as_deref().expect("positions remain, so some domain has sequences left");
            let d = m.mixer.choose(lm_now, &ones).expect("a live domain has a share");
            let mut i = m.cursor[d] as usize;
            while domains[i] as usize != d {
                i += 1;
            }
            plan[self.planned as usize] = i as u64;
            m.cursor[d] = i as u64 + 1;
            m.remaining[d] -= 1;
            m.mixer.emitted(d, 1, lm_now);
            self.planned += 1;
            if m.remaining[d] == 0 {
                lm = live_mixture(m);
            }
        }
    }
}

/// The largest |value| a report may carry: losses and advantages are far smaller, and sums
/// and means of such values stay finite, so a mixture can never become NaN.
pub const MAX_REPORT_VALUE: f64 = 1e12;

/// How many recent decisions a differing re-report may replace. Older decisions are looked up
/// in the log: the same report again is answered with the logged decision; a different one is
/// refused (ranks have long read past it).
pub const REPLACEABLE_DECISIONS: usize = 64;

/// A recent decision: what it decided (without its report's values), a digest of its
/// report, and the state before it, to roll back to.
#[derive(Debug, Clone)]
struct Recent {
    decision: Decision,
    digest: u128,
    rule: RuleState,
    planner: Planner,
}

fn digest(report: &Report) -> u128 {
    xxhash_rust::xxh3::xxh3_128(&serde_json::to_vec(report).expect("reports serialize"))
}

/// The feedback state of one served curriculum: settings, the rule's memory, the planner and
/// the last [`REPLACEABLE_DECISIONS`] decisions. Rebuilt from the log on restart.
///
/// Memory does not grow with the run: the rule keeps `window` (DUMP) or `evaluations`
/// (Skill-It) values per domain, and past reports live only in the log.
#[derive(Debug, Clone)]
pub struct Feedback {
    pub cfg: FeedbackConfig,
    pub domains: Vec<String>,
    prior: Vec<f64>,
    pub global_batch_size: Option<u64>,
    decided: u64,
    recent: VecDeque<Recent>,
    rule: RuleState,
    pub planner: Planner,
}

/// Where a decision older than the recent ones is found: the log.
pub type LookUp<'a> = &'a mut dyn FnMut(u64) -> Result<Option<Decision>>;

impl Feedback {
    /// `shares`: the curriculum's share of sequences per domain (Skill-It's default prior).
    pub fn new(cfg: FeedbackConfig, domains: Vec<String>, shares: &[f64]) -> Result<Self> {
        cfg.validate(&domains)?;
        let prior = match &cfg.prior {
            Some(p) => {
                let s: f64 = p.values().sum();
                domains.iter().map(|d| p.get(d).copied().unwrap_or(0.0) / s).collect()
            }
            None => shares.to_vec(),
        };
        let n = domains.len();
        Ok(Feedback {
            cfg,
            domains,
            prior,
            global_batch_size: None,
            decided: 0,
            recent: VecDeque::new(),
            rule: RuleState::new(n),
            planner: Planner::new(n),
        })
    }

    /// Decisions taken so far (replaced ones not counted twice).
    pub fn decided(&self) -> u64 {
        self.decided
    }

    /// The last decision, without its report's values.
    pub fn last(&self) -> Option<&Decision> {
        self.recent.back().map(|r| &r.decision)
    }

    /// The step whose report is due next.
    pub fn due_step(&self) -> u64 {
        (self.decided + 1) * self.cfg.every - 1
    }

    /// How far positions may be planned: up to where the next (not yet reported) decision
    /// would apply.
    pub fn horizon(&self) -> u64 {
        match (self.cfg.rule, self.global_batch_size) {
            (Rule::None, _) => u64::MAX,
            (_, None) => 0,
            (_, Some(g)) => (self.due_step() + 1 + self.cfg.lag).saturating_mul(g),
        }
    }

    /// Fix the global batch size (the first loader's), or check it.
    pub fn hello(&mut self, g: u64) -> Result<()> {
        if g == 0 {
            return Err(Error::InvalidArgument("global batch size must be at least 1".into()));
        }
        match self.global_batch_size {
            Some(have) if have != g && self.cfg.rule != Rule::None => Err(Error::InvalidArgument(format!(
                "this serve steers global batches of {have} sequences (batch_size x world_size of the first \
                 loader or of the decision log); this loader has {g}"
            ))),
            _ => {
                self.global_batch_size.get_or_insert(g);
                Ok(())
            }
        }
    }

    fn values(&self, report: &Report) -> Result<Vec<Vec<f64>>> {
        let mut values = vec![Vec::new(); self.domains.len()];
        for (name, v) in report {
            let j = self.domains.iter().position(|d| d == name).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "report: unknown domain {name:?} (domains: {})",
                    self.domains.join(", ")
                ))
            })?;
            if let Some(x) = v.iter().find(|x| !(x.is_finite() && x.abs() <= MAX_REPORT_VALUE)) {
                return Err(Error::InvalidArgument(format!(
                    "report: domain {name:?} has the value {x}; values must be finite and within +-{MAX_REPORT_VALUE:e} (losses or advantages)"
                )));
            }
            values[j].extend_from_slice(v);
        }
        Ok(values)
    }

    /// Take the report of `step` and decide. A report for a step already decided is answered
    /// with the logged decision when it is the same (a trainer resumed from a checkpoint);
    /// when it differs, that decision and every later one are replaced, if it is one of the
    /// last [`REPLACEABLE_DECISIONS`]. `older` finds an older decision in the log.
    pub fn report(
        &mut self,
        step: u64,
        report: Report,
        domains_of: &[u16],
        plan: &mut [u64],
        older: LookUp<'_>,
    ) -> Result<(Decision, Outcome)> {
        if self.cfg.rule == Rule::None {
            return Err(Error::InvalidArgument(
                "this serve has no feedback rule (serve --feedback dump|skillit, or [feedback] rule in the pipeline)"
                    .into(),
            ));
        }
        if self.global_batch_size.is_none() {
            return Err(Error::InvalidArgument("report before any loader said hello".into()));
        }
        let every = self.cfg.every;
        if !(step + 1).is_multiple_of(every) {
            return Err(Error::InvalidArgument(format!(
                "report for step {step}: reports are due after every {every} global batches (steps {}, {}, ...)",
                every - 1,
                2 * every - 1
            )));
        }
        let due = self.due_step();
        if step > due {
            return Err(Error::InvalidArgument(format!(
                "report for step {step}, but the report of step {due} is due first"
            )));
        }
        let values = self.values(&report)?;
        let mut rollback = None;
        if step < due {
            let k = (step + 1) / every; // 1-based decision number
            let first_recent = self.decided + 1 - self.recent.len() as u64;
            if k < first_recent {
                return match older(k)? {
                    Some(d) if d.report == report => Ok((d, Outcome::Unchanged)),
                    Some(_) => Err(Error::InvalidArgument(format!(
                        "report for step {step} differs from the logged one, but decision {k} is older than the last \
                         {REPLACEABLE_DECISIONS} and can no longer be replaced (ranks have read past it)"
                    ))),
                    None => Err(Error::InvalidArgument(format!("decision {k} is not in the log"))),
                };
            }
            let i = (k - first_recent) as usize;
            let r = &self.recent[i];
            if r.digest == digest(&report) {
                let mut d = r.decision.clone();
                d.report = report;
                return Ok((d, Outcome::Unchanged));
            }
            rollback = Some(i);
        }
        // Decide on a copy of the rule's memory first: nothing changes unless the decision is
        // sound.
        let mut rule = match rollback {
            Some(i) => self.recent[i].rule.clone(),
            None => self.rule.clone(),
        };
        rule.observe(&self.cfg, &values);
        let (signal, mixture) = rule.mixture(&self.cfg, &self.prior);
        if signal.iter().chain(&mixture).any(|x| !x.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "report for step {step}: the mixture it leads to is not finite (signal {signal:?}); refused"
            )));
        }
        let outcome = match rollback {
            Some(i) => {
                let r = self.recent.drain(i..).next().expect("a recent decision");
                self.decided = r.decision.decision - 1;
                self.rule = r.rule;
                self.planner = r.planner;
                Outcome::Replaced
            }
            None => Outcome::Appended,
        };
        Ok((self.apply(step, report, rule, signal, mixture, domains_of, plan), outcome))
    }

    /// Commit a decision: its rule memory and mixture were computed by the caller.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        step: u64,
        report: Report,
        rule: RuleState,
        signal: Vec<f64>,
        mixture: Vec<f64>,
        domains_of: &[u16],
        plan: &mut [u64],
    ) -> Decision {
        let g = self.global_batch_size.expect("checked by the caller");
        let from_step = step + 1 + self.cfg.lag;
        let from = from_step.saturating_mul(g);
        self.planner.extend(domains_of, plan, from);
        let before = (std::mem::replace(&mut self.rule, rule), self.planner.clone());
        self.planner.set_mixture(domains_of, mixture.clone());
        let named = |v: &[f64]| self.domains.iter().cloned().zip(v.iter().copied()).collect::<IndexMap<_, _>>();
        self.decided += 1;
        let d = Decision {
            decision: self.decided,
            rule: self.cfg.rule,
            report_step: step,
            applies_from_step: from_step,
            applies_from_sequence: from.min(domains_of.len() as u64),
            global_batch_size: g,
            signal: named(&signal),
            count: self.domains.iter().cloned().zip(self.rule.counts.iter().copied()).collect(),
            mixture: named(&mixture),
            report: Report::new(),
        };
        self.recent.push_back(Recent {
            decision: d.clone(),
            digest: digest(&report),
            rule: before.0,
            planner: before.1,
        });
        if self.recent.len() > REPLACEABLE_DECISIONS {
            self.recent.pop_front();
        }
        let h = self.horizon();
        self.planner.extend(domains_of, plan, h);
        Decision { report, ..d }
    }

    /// Replay logged decisions (on restart), in log order, replaced ones included; each must
    /// come out as logged. Returns how many lines were replayed.
    pub fn replay(
        &mut self,
        log: impl IntoIterator<Item = Result<Decision>>,
        domains_of: &[u16],
        plan: &mut [u64],
    ) -> Result<u64> {
        let mut n = 0;
        for d in log {
            let d = d?;
            if self.global_batch_size.is_none() {
                self.global_batch_size = Some(d.global_batch_size);
            }
            let mut no_older = |k: u64| -> Result<Option<Decision>> {
                Err(Error::InvalidArgument(format!("the log replaces decision {k}, older than serve can replace")))
            };
            let (again, _) = self.report(d.report_step, d.report.clone(), domains_of, plan, &mut no_older)?;
            if again.mixture != d.mixture
                || again.global_batch_size != d.global_batch_size
                || again.decision != d.decision
            {
                return Err(Error::InvalidArgument(format!(
                    "decision {} of the log does not replay to the same mixture (logged {:?}, replayed {:?})",
                    d.decision, d.mixture, again.mixture
                )));
            }
            n += 1;
        }
        Ok(n)
    }

    /// Plan up to the horizon (after hello or a replay).
    pub fn extend(&mut self, domains_of: &[u16], plan: &mut [u64]) {
        if self.cfg.rule == Rule::None {
            return; // no plan: the order is the curriculum's
        }
        let h = self.horizon();
        self.planner.extend(domains_of, plan, h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
    }

    #[test]
    fn dump_oracle() {
        let p = dump_mixture(&[0.5, 0.3], &[100, 100], 0.1);
        assert!(close(&p, &[0.8808, 0.1192], 5e-5), "{p:?}");
    }

    #[test]
    fn dump_explores_unseen_domains() {
        // Same A, but domain 1 has hardly been sampled: its bonus is larger.
        let p = dump_mixture(&[0.2, 0.2], &[1000, 1], 0.1);
        assert!(p[1] > p[0], "{p:?}");
    }

    #[test]
    fn skillit_eta_zero_is_the_prior() {
        let prior = [0.5, 0.3, 0.2];
        let p = skillit_mixture(&prior, None, &[3.0, 1.0, 7.0], 0.0);
        assert!(close(&p, &prior, 1e-12), "{p:?}");
        // Higher loss, more weight; and the graph mixes losses across skills.
        let p = skillit_mixture(&[0.5, 0.5], None, &[2.0, 1.0], 1.0);
        assert!(p[0] > p[1]);
        let g = vec![vec![0.0, 1.0], vec![1.0, 0.0]];
        let q = skillit_mixture(&[0.5, 0.5], Some(&g), &[2.0, 1.0], 1.0);
        assert!(close(&q, &[p[1], p[0]], 1e-12), "{q:?}");
    }

    fn report(pairs: &[(&str, Vec<f64>)]) -> Report {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    fn dump(every: u64, lag: u64) -> Feedback {
        let cfg = FeedbackConfig { rule: Rule::Dump, every, lag, ..Default::default() };
        Feedback::new(cfg, vec!["a".into(), "b".into()], &[0.5, 0.5]).unwrap()
    }

    /// A report with no log behind it (older decisions are an error).
    fn send(f: &mut Feedback, step: u64, r: Report, domains: &[u16], plan: &mut [u64]) -> Result<(Decision, Outcome)> {
        let mut no_log =
            |k: u64| -> Result<Option<Decision>> { Err(Error::InvalidArgument(format!("no log for {k}"))) };
        f.report(step, r, domains, plan, &mut no_log)
    }

    #[test]
    fn dump_report_sets_the_oracle_mixture_from_its_step() {
        let domains: Vec<u16> = (0..400).map(|i| (i % 2) as u16).collect();
        let mut plan = vec![u64::MAX; 400];
        let mut f = dump(1, 2);
        f.hello(10).unwrap();
        f.extend(&domains, &mut plan);
        assert_eq!(f.planner.planned(), 30, "steps 0..2 plannable before the report of step 0");
        let (d, outcome) =
            send(&mut f, 0, report(&[("a", vec![0.5; 100]), ("b", vec![-0.3; 100])]), &domains, &mut plan).unwrap();
        assert_eq!(outcome, Outcome::Appended);
        assert!(close(&d.mixture.values().copied().collect::<Vec<_>>(), &[0.8808, 0.1192], 5e-5));
        assert_eq!((d.applies_from_step, d.applies_from_sequence), (3, 30));
        assert_eq!(f.planner.planned(), 40);
        assert!((0..30).all(|i| plan[i] == i as u64), "the identity before the decision");
        let a = plan[30..40].iter().filter(|&&i| domains[i as usize] == 0).count();
        assert!((a as f64 - 8.808).abs() <= 1.0, "{a} of 10 sequences from a: 8.8, within one");
        // Steps must come in order, on the grid.
        assert!(send(&mut f, 2, report(&[]), &domains, &mut plan).is_err());
    }

    #[test]
    fn overflowing_or_non_finite_report_values_are_refused_and_change_nothing() {
        let domains: Vec<u16> = (0..100).map(|i| (i % 2) as u16).collect();
        let mut plan = vec![u64::MAX; 100];
        let mut f = dump(1, 0);
        f.hello(4).unwrap();
        f.extend(&domains, &mut plan);
        for bad in [1e308, f64::INFINITY, f64::NAN, -2e12] {
            let e = send(&mut f, 0, report(&[("a", vec![bad])]), &domains, &mut plan).unwrap_err().to_string();
            assert!(e.contains("values must be finite and within"), "{e}");
        }
        assert_eq!((f.decided(), f.due_step()), (0, 0));
        let (d, _) =
            send(&mut f, 0, report(&[("a", vec![1e12, 1e12]), ("b", vec![-1e12])]), &domains, &mut plan).unwrap();
        assert!(d.mixture.values().all(|p| p.is_finite()), "{:?}", d.mixture);
    }

    #[test]
    fn same_report_again_is_the_logged_decision_and_a_different_one_rolls_back() {
        let domains: Vec<u16> = (0..200).map(|i| (i % 3 == 0) as u16).collect();
        let run = |reports: &[Report]| {
            let mut plan = vec![u64::MAX; 200];
            let mut f = dump(2, 1);
            f.hello(4).unwrap();
            f.extend(&domains, &mut plan);
            let mut decisions = Vec::new();
            for (k, r) in reports.iter().enumerate() {
                decisions.push(send(&mut f, 2 * k as u64 + 1, r.clone(), &domains, &mut plan).unwrap().0);
            }
            (f, plan, decisions)
        };
        let r1 = report(&[("a", vec![1.0, 2.0]), ("b", vec![0.1])]);
        let r2 = report(&[("b", vec![3.0, 3.0])]);
        let r2x = report(&[("a", vec![3.0, 3.0])]);
        let (mut f, mut plan, decisions) = run(&[r1.clone(), r2.clone()]);
        let again = send(&mut f, 1, r1.clone(), &domains, &mut plan).unwrap();
        assert_eq!(again, (decisions[0].clone(), Outcome::Unchanged));
        assert_eq!(f.decided(), 2);
        // The last decision replaced: as many decisions as before, but history changed.
        let (d2x, outcome) = send(&mut f, 3, r2x.clone(), &domains, &mut plan).unwrap();
        assert_eq!((outcome, f.decided()), (Outcome::Replaced, 2));
        let (g, plan2, decisions2) = run(&[r1, r2x]);
        assert_eq!(d2x, decisions2[1]);
        assert_eq!(f.last(), g.last());
        let n = f.planner.planned() as usize;
        assert_eq!(&plan[..n], &plan2[..n]);
    }

    #[test]
    fn memory_stays_bounded_and_old_decisions_come_from_the_log() {
        let domains: Vec<u16> = (0..100_000).map(|i| (i % 2) as u16).collect();
        let mut plan = vec![u64::MAX; domains.len()];
        let mut f = dump(1, 0);
        f.hello(1).unwrap();
        f.extend(&domains, &mut plan);
        let mut log = Vec::new();
        for s in 0..200u64 {
            let r = report(&[("a", vec![s as f64; 1000]), ("b", vec![1.0; 1000])]);
            log.push(send(&mut f, s, r, &domains, &mut plan).unwrap().0);
        }
        assert_eq!(f.recent.len(), REPLACEABLE_DECISIONS, "only the recent decisions are kept");
        assert!(f.recent.iter().all(|r| r.decision.report.is_empty()), "no report values in memory");
        assert!(f.rule.recent.iter().all(|r| r.len() <= f.cfg.window));
        // An old step reported again: the log answers; the same report is the logged decision,
        // a different one is refused.
        let mut from_log = |k: u64| -> Result<Option<Decision>> { Ok(log.get(k as usize - 1).cloned()) };
        let (d, outcome) = f.report(9, log[9].report.clone(), &domains, &mut plan, &mut from_log).unwrap();
        assert_eq!((d.decision, outcome), (10, Outcome::Unchanged));
        let e = f.report(9, report(&[("a", vec![0.0])]), &domains, &mut plan, &mut from_log).unwrap_err();
        assert!(e.to_string().contains("can no longer be replaced"), "{e}");
        assert_eq!(f.decided(), 200);
    }

    #[test]
    fn replay_rebuilds_the_plan() {
        let domains: Vec<u16> = (0..300).map(|i| (i * 7 % 5 == 0) as u16).collect();
        let mut plan = vec![0; 300];
        let mut f = dump(1, 0);
        f.hello(8).unwrap();
        f.extend(&domains, &mut plan);
        let mut log = Vec::new();
        for s in 0..5 {
            log.push(
                send(&mut f, s, report(&[("a", vec![s as f64]), ("b", vec![1.0])]), &domains, &mut plan).unwrap().0,
            );
        }
        // A replaced decision is appended to the log; replay follows it.
        log.push(send(&mut f, 3, report(&[("a", vec![9.0])]), &domains, &mut plan).unwrap().0);
        let mut g = dump(1, 0);
        let mut plan2 = vec![0; 300];
        assert_eq!(g.replay(log.into_iter().map(Ok), &domains, &mut plan2).unwrap(), 6);
        g.extend(&domains, &mut plan2);
        assert_eq!((f.planner.planned(), f.decided()), (g.planner.planned(), g.decided()));
        assert_eq!(plan, plan2);
    }

    proptest! {
        #[test]
        fn every_sequence_is_planned_exactly_once(
            doms in proptest::collection::vec(0u16..3, 1..300),
            mixes in proptest::collection::vec(proptest::collection::vec(0.0f64..1.0, 3), 0..4),
            cut in 0usize..300,
        ) {
            let n = doms.len();
            let mut p = Planner::new(3);
            let mut plan = vec![u64::MAX; n];
            let mut at = cut.min(n) as u64;
            p.extend(&doms, &mut plan, at);
            for m in mixes {
                p.set_mixture(&doms, m);
                at += 17;
                p.extend(&doms, &mut plan, at);
            }
            p.extend(&doms, &mut plan, n as u64);
            let mut seen = plan.clone();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..n as u64).collect::<Vec<_>>());
            // Within each domain, curriculum order is kept.
            for d in 0..3u16 {
                let idx: Vec<u64> = plan.iter().copied().filter(|&i| doms[i as usize] == d).collect();
                prop_assert!(idx.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }
}
