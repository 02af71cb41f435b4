//! Domain-mixture schedules over a token budget (Blakeney et al. 2024, generalised): phases,
//! each a mixture from a start token on, piecewise constant or linear between phases.
//!
//! Emission ([`Mixer`]): every domain has a target, the integral of its (live, renormalised)
//! share over the tokens emitted so far in the phase; the next document comes from the domain
//! furthest below its target (the lower id on a tie). With a constant mixture m this keeps
//! every domain within one document of m·t at all times, so a phase's tokens per domain match
//! its mixture to within one document.

use crate::curriculum::ScheduleConfig;
use crate::error::{Error, Result};

/// A phase with its token bounds and one share per domain id.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub start_token: u64,
    pub end_token: u64,
    pub mixture: Vec<f64>,
}

/// A resolved schedule: phases in token order.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub budget: u64,
    pub phases: Vec<Phase>,
    pub interpolate: bool,
}

impl Schedule {
    /// Resolve a `[schedule]` against the domains (names -> ids by position) and the tokens
    /// available. Mixture names that are not domains are errors that list the domains.
    pub fn resolve(cfg: &ScheduleConfig, domains: &[String], available: u64) -> Result<Schedule> {
        let budget = cfg.tokens.unwrap_or(available);
        let mut phases = Vec::with_capacity(cfg.phases.len());
        for (i, p) in cfg.phases.iter().enumerate() {
            let mut mixture = vec![0.0; domains.len()];
            for (name, &w) in &p.mixture {
                let d = domains.iter().position(|x| x == name).ok_or_else(|| {
                    Error::Config(format!(
                        "schedule.phases[{i}].mixture: {name:?} is not a domain; the domains are {domains:?}"
                    ))
                })?;
                mixture[d] = w;
            }
            let start_token = (p.start * budget as f64).round() as u64;
            phases.push(Phase { start_token, end_token: budget, mixture });
        }
        for i in 1..phases.len() {
            phases[i - 1].end_token = phases[i].start_token;
        }
        Ok(Schedule { budget, phases, interpolate: cfg.interpolate })
    }

    /// One phase over all tokens, each domain's share its share of the tokens available.
    pub fn natural(tokens_per_domain: &[u64]) -> Schedule {
        let total: u64 = tokens_per_domain.iter().sum();
        let mixture =
            tokens_per_domain.iter().map(|&t| if total == 0 { 0.0 } else { t as f64 / total as f64 }).collect();
        Schedule {
            budget: total,
            phases: vec![Phase { start_token: 0, end_token: total, mixture }],
            interpolate: false,
        }
    }

    /// The mixture at absolute token `t` within phase `i`.
    pub fn mixture_at(&self, i: usize, t: u64) -> Vec<f64> {
        let p = &self.phases[i];
        match self.phases.get(i + 1).filter(|_| self.interpolate) {
            Some(next) if p.end_token > p.start_token => {
                let a = ((t.saturating_sub(p.start_token)) as f64 / (p.end_token - p.start_token) as f64).min(1.0);
                p.mixture.iter().zip(&next.mixture).map(|(x, y)| x + (y - x) * a).collect()
            }
            _ => p.mixture.clone(),
        }
    }
}

/// Chooses the domain of the next document within one phase.
#[derive(Debug, Clone)]
pub struct Mixer {
    target: Vec<f64>,
    pub tokens: Vec<u64>,
    pub documents: Vec<u64>,
}

impl Mixer {
    pub fn new(domains: usize) -> Self {
        Mixer { target: vec![0.0; domains], tokens: vec![0; domains], documents: vec![0; domains] }
    }

    /// `mixture` restricted to live domains and renormalised; `None` if nothing live has a share.
    pub fn live_mixture(mixture: &[f64], live: &[bool]) -> Option<Vec<f64>> {
        let sum: f64 = mixture.iter().zip(live).filter(|(_, &l)| l).map(|(w, _)| w).sum();
        (sum > 0.0).then(|| mixture.iter().zip(live).map(|(w, &l)| if l { w / sum } else { 0.0 }).collect())
    }

    /// The next domain, given the length of each domain's next document (worst-case fair
    /// weighted queueing, WF2Q): among the domains with a share that are not ahead of their
    /// target, the one whose next document its target would reach first. Ties go to the
    /// lower id.
    pub fn choose(&self, live_mixture: &[f64], next_len: &[u64]) -> Option<usize> {
        let pick = |eligible_only: bool| {
            let mut best: Option<(usize, f64)> = None;
            for (d, &w) in live_mixture.iter().enumerate() {
                if w <= 0.0 {
                    continue;
                }
                let deficit = self.target[d] - self.tokens[d] as f64;
                if eligible_only && deficit < -1e-9 {
                    continue;
                }
                let finish = (next_len[d] as f64 - deficit) / w;
                if best.is_none_or(|(_, b)| finish < b) {
                    best = Some((d, finish));
                }
            }
            best.map(|(d, _)| d)
        };
        // Some domain is always at or below its target (the deficits sum to zero); the
        // fallback only guards against rounding.
        pick(true).or_else(|| pick(false))
    }

    /// Record a document of `len` tokens from domain `d`, emitted under `live_mixture`.
    pub fn emitted(&mut self, d: usize, len: u64, live_mixture: &[f64]) {
        self.tokens[d] += len;
        self.documents[d] += 1;
        for (t, &w) in self.target.iter_mut().zip(live_mixture) {
            *t += w * len as f64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curriculum::{Exhausted, PhaseConfig};
    use proptest::prelude::*;

    fn cfg(phases: &[(f64, &[(&str, f64)])], tokens: Option<u64>) -> ScheduleConfig {
        ScheduleConfig {
            tokens,
            interpolate: false,
            on_exhausted: Exhausted::Repeat,
            phases: phases
                .iter()
                .map(|(s, m)| PhaseConfig { start: *s, mixture: m.iter().map(|(k, v)| (k.to_string(), *v)).collect() })
                .collect(),
        }
    }

    #[test]
    fn resolves_the_papers_schedule() {
        // Blakeney et al.'s 7B run, scaled: a 200B-token window at 35% holds 70B tokens.
        let domains: Vec<String> = ["large_web", "small_web", "domain", "code"].iter().map(|s| s.to_string()).collect();
        let c = cfg(
            &[
                (0.0, &[("large_web", 0.3435), ("small_web", 0.3670), ("domain", 0.0717), ("code", 0.2178)]),
                (0.8, &[("small_web", 0.30), ("domain", 0.35), ("code", 0.35)]),
            ],
            Some(1_000_000_000_000),
        );
        let s = Schedule::resolve(&c, &domains, 0).unwrap();
        assert_eq!(s.phases[0].end_token, 800_000_000_000);
        let last = &s.phases[1];
        assert_eq!(last.end_token - last.start_token, 200_000_000_000);
        assert!(((last.end_token - last.start_token) as f64 * last.mixture[2] - 70e9).abs() < 1.0);
        let bad = cfg(&[(0.0, &[("web", 1.0)])], None);
        let e = Schedule::resolve(&bad, &domains, 10).unwrap_err().to_string();
        assert!(e.contains("\"web\"") && e.contains("large_web"), "{e}");
    }

    #[test]
    fn interpolation_goes_linearly_between_phases() {
        let d = vec!["a".to_string(), "b".to_string()];
        let mut c = cfg(&[(0.0, &[("a", 1.0)]), (0.5, &[("b", 1.0)])], Some(100));
        c.interpolate = true;
        let s = Schedule::resolve(&c, &d, 0).unwrap();
        let m = s.mixture_at(0, 25);
        assert!((m[0] - 0.5).abs() < 1e-12 && (m[1] - 0.5).abs() < 1e-12);
        assert_eq!(s.mixture_at(1, 75), vec![0.0, 1.0]);
    }

    proptest! {
        /// Oracle: emitted tokens per domain match the mixture to within one document.
        #[test]
        fn emission_follows_the_mixture_within_one_document(
            raw in proptest::collection::vec(0.0f64..1.0, 1..6),
            lens in proptest::collection::vec(1u64..400, 1..50),
            budget in 1u64..200_000,
        ) {
            let sum: f64 = raw.iter().sum();
            prop_assume!(sum > 0.0);
            let m: Vec<f64> = raw.iter().map(|w| w / sum).collect();
            let live = vec![true; m.len()];
            let lm = Mixer::live_mixture(&m, &live).unwrap();
            let mut mixer = Mixer::new(m.len());
            let mut next = vec![0usize; m.len()];
            let mut total = 0u64;
            let max_len = *lens.iter().max().unwrap();
            while total < budget {
                // Each domain cycles through the lengths from its own offset.
                let next_len: Vec<u64> = (0..m.len()).map(|d| lens[(next[d] + d) % lens.len()]).collect();
                let d = mixer.choose(&lm, &next_len).unwrap();
                let len = next_len[d];
                next[d] += 1;
                mixer.emitted(d, len, &lm);
                total += len;
                for (e, &w) in m.iter().enumerate() {
                    prop_assert!((mixer.tokens[e] as f64 - w * total as f64).abs() <= max_len as f64 + 1e-6);
                }
            }
        }
    }

    #[test]
    fn a_stopped_domain_leaves_its_share_to_the_others() {
        let m = [0.5, 0.25, 0.25];
        let lm = Mixer::live_mixture(&m, &[false, true, true]).unwrap();
        assert_eq!(lm, vec![0.0, 0.5, 0.5]);
        assert!(Mixer::live_mixture(&m, &[false, false, false]).is_none());
        let mut mixer = Mixer::new(3);
        for _ in 0..10 {
            let d = mixer.choose(&lm, &[10, 10, 10]).unwrap();
            assert_ne!(d, 0);
            mixer.emitted(d, 10, &lm);
        }
        assert_eq!(mixer.tokens, vec![0, 50, 50]);
    }
}
