//! Loss-based sample reweighting (Sow et al., ICLR 2025): per-sample weights from the losses
//! of a window of samples (the paper's batch), written as a `weight` per document and carried
//! into the shards.
//!
//! With losses l_i of a window: h_i = 2δ(l_i − (l_max + l_min)/2) / max(l_max − l_min, 1e-6),
//! δ = 1, then f(h) by the strategy and w_i = softmax_i(f_i / r). Weights are positive and sum
//! to one per window; the trainer-side client applies the same functions online.

use serde::{Deserialize, Serialize};

/// How a normalised loss h in [−δ, δ] becomes a logit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// min(h + δ, δ): down-weights the easiest samples, the rest equal.
    Linupper,
    /// 1 − h²/δ²: favours the middle, down-weights both ends.
    Quadratic,
    /// |h|: favours both ends.
    Extremes,
    /// 0.5h + 0.5δ: up-weights the hardest.
    Upper,
    /// No reweighting: 1/B each.
    Uniform,
}

const DELTA: f64 = 1.0;

impl Strategy {
    pub fn logit(self, h: f64) -> f64 {
        match self {
            Strategy::Linupper => (h + DELTA).min(DELTA),
            Strategy::Quadratic => 1.0 - h * h / (DELTA * DELTA),
            Strategy::Extremes => h.abs(),
            Strategy::Upper => 0.5 * h + 0.5 * DELTA,
            Strategy::Uniform => 0.0,
        }
    }
}

/// The weights of one window of losses (empty in, empty out). Non-finite losses are the
/// caller's to reject; `temperature` must be positive.
pub fn window_weights(losses: &[f64], strategy: Strategy, temperature: f64) -> Vec<f64> {
    if losses.is_empty() {
        return Vec::new();
    }
    let (lo, hi) = losses.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &l| (lo.min(l), hi.max(l)));
    let mid = (hi + lo) / 2.0;
    let span = (hi - lo).max(1e-6);
    let logits: Vec<f64> =
        losses.iter().map(|&l| strategy.logit(2.0 * DELTA * (l - mid) / span) / temperature).collect();
    softmax(&logits)
}

/// softmax(z), shifted by max(z) so that no exp overflows.
pub fn softmax(z: &[f64]) -> Vec<f64> {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = z.iter().map(|&x| (x - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::{prop_assert, prop_assert_eq, proptest};

    fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
    }

    #[test]
    fn oracle_linupper() {
        let w = window_weights(&[1.0, 2.0, 3.0], Strategy::Linupper, 1.0);
        assert!(close(&w, &[0.1554, 0.4223, 0.4223], 5e-5), "{w:?}");
    }

    #[test]
    fn equal_losses_and_high_temperature_are_uniform() {
        for s in [Strategy::Linupper, Strategy::Quadratic, Strategy::Extremes, Strategy::Upper, Strategy::Uniform] {
            let w = window_weights(&[2.5; 4], s, 1.0);
            assert!(close(&w, &[0.25; 4], 1e-12), "{s:?} {w:?}");
            let w = window_weights(&[1.0, 5.0, 2.0, 9.0], s, 1e12);
            assert!(close(&w, &[0.25; 4], 1e-9), "{s:?} {w:?}");
        }
        assert!(close(&window_weights(&[1.0, 5.0, 2.0], Strategy::Uniform, 0.4), &[1.0 / 3.0; 3], 1e-12));
    }

    #[test]
    fn strategies_favour_what_they_say() {
        let l = [1.0, 2.0, 3.0];
        let q = window_weights(&l, Strategy::Quadratic, 1.0);
        assert!(q[1] > q[0] && (q[0] - q[2]).abs() < 1e-12);
        let e = window_weights(&l, Strategy::Extremes, 1.0);
        assert!(e[1] < e[0] && (e[0] - e[2]).abs() < 1e-12);
        let u = window_weights(&l, Strategy::Upper, 1.0);
        assert!(u[0] < u[1] && u[1] < u[2]);
    }

    proptest! {
        #[test]
        fn weights_are_positive_and_sum_to_one(
            losses in proptest::collection::vec(0.0f64..50.0, 1..64),
            r in 0.05f64..10.0,
            s in 0usize..5,
        ) {
            let s = [Strategy::Linupper, Strategy::Quadratic, Strategy::Extremes, Strategy::Upper, Strategy::Uniform][s];
            let w = window_weights(&losses, s, r);
            prop_assert_eq!(w.len(), losses.len());
            prop_assert!(w.iter().all(|&x| x > 0.0));
            prop_assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
    }
}
