//! KL reduction, the DSIR paper's data metric (Xie et al. 2023, section on data metrics):
//! how much closer a selection's hashed n-gram distribution is to the target's than the raw
//! pool's is.
//!
//! With DSIR's features (unigrams and bigrams hashed into 10,000 buckets: [`DsirParams`]'s
//! defaults, the reference's hashing), `p_T` the target's bucket distribution, `p_S` the
//! selection's and `p_R` the raw pool's:
//!
//! ```text
//! KLR = KL(p_T || p_R) - KL(p_T || p_S),   KL(p || q) = Σ_b p_b ln(p_b / q_b)
//! ```
//!
//! Every distribution gets the same additive smoothing, `p_b = (c_b / N + ε) / (1 + B·ε)` with
//! `ε = 1e-8` (the constant DSIR adds before its log ratios), so an empty bucket costs a large
//! but finite amount and the metric is defined for any counts. `p_S = p_R` gives 0, `p_S = p_T`
//! gives the whole `KL(p_T || p_R)`, and no selection exceeds that.

use crate::score::dsir::{Counts, DsirParams};

/// The smoothing added to every bucket's probability.
pub const SMOOTHING: f64 = 1e-8;

/// A smoothed bucket distribution.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    pub p: Vec<f64>,
}

impl Distribution {
    pub fn from_counts(c: &Counts) -> Distribution {
        let n = c.total() as f64;
        let b = c.counts.len() as f64;
        let p = c
            .counts
            .iter()
            .map(|&x| (if n > 0.0 { x as f64 / n } else { 1.0 / b } + SMOOTHING) / (1.0 + b * SMOOTHING))
            .collect();
        Distribution { p }
    }
}

/// `KL(p || q)` in nats.
pub fn kl(p: &Distribution, q: &Distribution) -> f64 {
    assert_eq!(p.p.len(), q.p.len(), "distributions over the same buckets");
    p.p.iter().zip(&q.p).map(|(&a, &b)| a * (a / b).ln()).sum()
}

/// `KL(p_T || p_R) - KL(p_T || p_S)`.
pub fn kl_reduction(target: &Distribution, raw: &Distribution, selection: &Distribution) -> f64 {
    kl(target, raw) - kl(target, selection)
}

/// The hashed n-gram features KL reduction is measured on: DSIR's defaults.
pub fn params() -> DsirParams {
    DsirParams::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(c: &[u64]) -> Distribution {
        Distribution::from_counts(&Counts { counts: c.to_vec() })
    }

    #[test]
    fn a_hand_computed_example() {
        // p_T = (1/2, 1/2, 0), p_R = (1/4, 1/4, 1/2), p_S = (1/2, 1/4, 1/4), before smoothing.
        let (t, r, s) = (dist(&[2, 2, 0]), dist(&[1, 1, 2]), dist(&[2, 1, 1]));
        let kl_tr = 0.5 * (0.5f64 / 0.25).ln() * 2.0; // ln 2
        let kl_ts = 0.5 * (0.5f64 / 0.5).ln() + 0.5 * (0.5f64 / 0.25).ln(); // ln 2 / 2
        assert!((kl(&t, &r) - kl_tr).abs() < 1e-6, "{}", kl(&t, &r));
        assert!((kl(&t, &s) - kl_ts).abs() < 1e-6, "{}", kl(&t, &s));
        assert!((kl_reduction(&t, &r, &s) - (kl_tr - kl_ts)).abs() < 1e-6);
    }

    #[test]
    fn the_oracles_of_methods_md() {
        let t = dist(&[5, 0, 3, 9, 1]);
        let r = dist(&[1, 7, 2, 2, 8]);
        // A selection with the raw pool's distribution reduces nothing.
        assert!(kl_reduction(&t, &r, &dist(&[2, 14, 4, 4, 16])).abs() < 1e-12);
        // A selection with the target's distribution reduces all of KL(p_T || p_R).
        let full = kl(&t, &r);
        assert!((kl_reduction(&t, &r, &dist(&[10, 0, 6, 18, 2])) - full).abs() < 1e-12);
        // Nothing exceeds it.
        for s in [[1u64, 1, 1, 1, 1], [0, 0, 0, 9, 0], [5, 0, 3, 9, 2], [0, 0, 0, 0, 0]] {
            assert!(kl_reduction(&t, &r, &dist(&s)) <= full + 1e-12);
        }
        // Identical distributions: KL 0.
        assert!(kl(&t, &t).abs() < 1e-15);
    }

    #[test]
    fn text_features_are_dsirs() {
        let p = params();
        let mut a = Counts::new(p.buckets);
        a.add_text(&p, "the quick brown fox jumps over the lazy dog");
        let mut b = Counts::new(p.buckets);
        b.add_text(&p, "theorem REAL_ADD_SYM = prove (`!x y. x + y = y + x`, REAL_ARITH_TAC)");
        let (da, db) = (Distribution::from_counts(&a), Distribution::from_counts(&b));
        assert!(kl(&da, &db) > 1.0, "unrelated texts are far apart");
        assert!((da.p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }
}
