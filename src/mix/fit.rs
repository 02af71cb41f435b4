//! The arithmetic of mixture search: Dirichlet draws, the regression from a mixture to a
//! validation loss, its cross-validation, and the constrained minimum of its prediction.
//!
//! Regression families (RegMix fits a linear model on the shares; the data mixing laws an
//! exponential of one, `L = c + k·exp(Σ t_i w_i)`):
//! - `linear`: `L = b + Σ β_i w_i`;
//! - `exp`: `ln L = b + Σ β_i w_i` (the mixing law with c = 0);
//! - `log-shares`: `L = b + Σ β_i ln(w_i + 0.01)`, diminishing returns per domain: a loss that
//!   falls like a power of a domain's share, whose minimum may lie inside the simplex rather
//!   than at a corner, as the linear and exponential families' always does.
//!
//! Each is a ridge regression with an unpenalised intercept on centred features, its penalty
//! chosen from a grid by leave-one-out error; the family is chosen by its leave-one-out
//! Spearman rank correlation between predicted and measured loss (ties: the lower
//! leave-one-out error, then the earlier family): rank, because a proxy's mixtures are
//! compared with one another, not measured absolutely (DataDecide).

use serde::Serialize;

use crate::proxy::nn::Rng;

/// A share this small of a domain counts as none in `log-shares`.
pub const LOG_FLOOR: f64 = 0.01;

/// A regression family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    Linear,
    Exp,
    LogShares,
}

pub const FAMILIES: [Family; 3] = [Family::Linear, Family::Exp, Family::LogShares];

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Linear => "linear",
            Family::Exp => "exp",
            Family::LogShares => "log-shares",
        }
    }

    fn features(self, w: &[f64]) -> Vec<f64> {
        match self {
            Family::Linear | Family::Exp => w.to_vec(),
            Family::LogShares => w.iter().map(|&x| (x + LOG_FLOOR).ln()).collect(),
        }
    }

    fn target(self, loss: f64) -> f64 {
        match self {
            Family::Exp => loss.ln(),
            _ => loss,
        }
    }

    fn untarget(self, y: f64) -> f64 {
        match self {
            Family::Exp => y.exp(),
            _ => y,
        }
    }
}

/// A fitted regression.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fit {
    pub family: Family,
    pub lambda: f64,
    pub intercept: f64,
    pub coef: Vec<f64>,
    /// Leave-one-out: Spearman's rho of predicted against measured loss, and the RMSE.
    pub loo_spearman: f64,
    pub loo_rmse: f64,
}

impl Fit {
    pub fn predict(&self, w: &[f64]) -> f64 {
        let x = self.family.features(w);
        self.family.untarget(self.intercept + x.iter().zip(&self.coef).map(|(a, b)| a * b).sum::<f64>())
    }
}

/// One Gamma(shape, 1) variate (Marsaglia and Tsang; shapes below 1 by the boost
/// `G(a) = G(a + 1) · U^(1/a)`).
pub fn gamma(rng: &mut Rng, shape: f64) -> f64 {
    if shape < 1.0 {
        let u = rng.uniform().max(f64::MIN_POSITIVE);
        return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = rng.normal();
        let v = 1.0 + c * x;
        if v <= 0.0 {
            continue;
        }
        let v = v * v * v;
        let u = rng.uniform();
        if u < 1.0 - 0.0331 * x.powi(4) || u.max(f64::MIN_POSITIVE).ln() < 0.5 * x * x + d * (1.0 - v + v.ln()) {
            return d * v;
        }
    }
}

/// One draw of Dirichlet(alpha).
pub fn dirichlet(rng: &mut Rng, alpha: &[f64]) -> Vec<f64> {
    let g: Vec<f64> = alpha.iter().map(|&a| gamma(rng, a)).collect();
    let s: f64 = g.iter().sum();
    if s > 0.0 && s.is_finite() {
        g.iter().map(|x| x / s).collect()
    } else {
        // Every variate underflowed (tiny alphas): the largest alpha's corner.
        let best = (0..alpha.len()).max_by(|&a, &b| alpha[a].total_cmp(&alpha[b])).unwrap_or(0);
        (0..alpha.len()).map(|i| if i == best { 1.0 } else { 0.0 }).collect()
    }
}

/// KL(w || q) in nats (0 · ln 0 = 0; a share where q has none is infinite).
pub fn kl(w: &[f64], q: &[f64]) -> f64 {
    w.iter()
        .zip(q)
        .map(|(&a, &b)| {
            if a <= 0.0 {
                0.0
            } else if b <= 0.0 {
                f64::INFINITY
            } else {
                a * (a / b).ln()
            }
        })
        .sum()
}

/// Solve `A x = b` (A square) by Gaussian elimination with partial pivoting; None if singular.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let p = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[p][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, p);
        b.swap(col, p);
        let (top, rest) = a.split_at_mut(col + 1);
        let pivot = &top[col];
        for (i, row) in rest.iter_mut().enumerate() {
            let f = row[col] / pivot[col];
            for (x, p) in row[col..].iter_mut().zip(&pivot[col..]) {
                *x -= f * p;
            }
            b[col + 1 + i] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|c| a[r][c] * x[c]).sum();
        x[r] = (b[r] - s) / a[r][r];
    }
    Some(x)
}

/// Ridge regression with an unpenalised intercept: (intercept, coefficients).
pub fn ridge(x: &[Vec<f64>], y: &[f64], lambda: f64) -> Option<(f64, Vec<f64>)> {
    let (n, p) = (y.len(), x.first().map_or(0, Vec::len));
    if n == 0 {
        return None;
    }
    let xm: Vec<f64> = (0..p).map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n as f64).collect();
    let ym = y.iter().sum::<f64>() / n as f64;
    let mut a = vec![vec![0.0; p]; p];
    let mut b = vec![0.0; p];
    for (r, &yi) in x.iter().zip(y) {
        for i in 0..p {
            let xi = r[i] - xm[i];
            b[i] += xi * (yi - ym);
            for j in 0..p {
                a[i][j] += xi * (r[j] - xm[j]);
            }
        }
    }
    for (i, row) in a.iter_mut().enumerate() {
        row[i] += lambda;
    }
    let coef = solve(a, b)?;
    let intercept = ym - xm.iter().zip(&coef).map(|(m, c)| m * c).sum::<f64>();
    Some((intercept, coef))
}

/// Average ranks (ties share their mean rank), 1-based.
fn ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = mean;
        }
        i = j + 1;
    }
    r
}

/// Spearman's rho: Pearson's correlation of the average ranks (0 where a side is constant).
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    let (rx, ry) = (ranks(x), ranks(y));
    let n = x.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let cov: f64 = rx.iter().zip(&ry).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = rx.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = ry.iter().map(|b| (b - my).powi(2)).sum();
    if vx > 0.0 && vy > 0.0 {
        cov / (vx * vy).sqrt()
    } else {
        0.0
    }
}

/// Leave-one-out predictions (on the loss scale) of a family at a penalty.
fn loo(family: Family, w: &[Vec<f64>], loss: &[f64], lambda: f64) -> Option<Vec<f64>> {
    let x: Vec<Vec<f64>> = w.iter().map(|r| family.features(r)).collect();
    let y: Vec<f64> = loss.iter().map(|&l| family.target(l)).collect();
    (0..y.len())
        .map(|i| {
            let xs: Vec<Vec<f64>> = x.iter().enumerate().filter(|&(k, _)| k != i).map(|(_, r)| r.clone()).collect();
            let ys: Vec<f64> = y.iter().enumerate().filter(|&(k, _)| k != i).map(|(_, v)| *v).collect();
            let (b, c) = ridge(&xs, &ys, lambda)?;
            Some(family.untarget(b + x[i].iter().zip(&c).map(|(a, b)| a * b).sum::<f64>()))
        })
        .collect()
}

/// The penalties tried, times the mean diagonal of the centred features' Gram matrix.
const LAMBDAS: [f64; 6] = [1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0];

/// Fit one family: the penalty with the lowest leave-one-out error, then the fit on all runs.
pub fn fit_family(family: Family, w: &[Vec<f64>], loss: &[f64]) -> Option<Fit> {
    if loss.iter().any(|l| !(l.is_finite() && *l > 0.0)) || loss.len() < 3 {
        return None;
    }
    let x: Vec<Vec<f64>> = w.iter().map(|r| family.features(r)).collect();
    let n = x.len() as f64;
    let p = x[0].len();
    let scale = (0..p)
        .map(|j| {
            let m = x.iter().map(|r| r[j]).sum::<f64>() / n;
            x.iter().map(|r| (r[j] - m).powi(2)).sum::<f64>()
        })
        .sum::<f64>()
        / p as f64;
    let scale = if scale > 0.0 { scale } else { 1.0 };
    let mut best: Option<(f64, f64, Vec<f64>)> = None;
    for l in LAMBDAS {
        let lambda = l * scale;
        let Some(pred) = loo(family, w, loss, lambda) else { continue };
        let rmse = (pred.iter().zip(loss).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / n).sqrt();
        if rmse.is_finite() && best.as_ref().is_none_or(|b| rmse < b.1) {
            best = Some((lambda, rmse, pred));
        }
    }
    let (lambda, rmse, pred) = best?;
    let y: Vec<f64> = loss.iter().map(|&l| family.target(l)).collect();
    let (intercept, coef) = ridge(&x, &y, lambda)?;
    Some(Fit { family, lambda, intercept, coef, loo_spearman: spearman(&pred, loss), loo_rmse: rmse })
}

/// Every family's fit, and the index of the chosen one.
pub fn fit_all(w: &[Vec<f64>], loss: &[f64]) -> (Vec<Fit>, Option<usize>) {
    let fits: Vec<Fit> = FAMILIES.iter().filter_map(|&f| fit_family(f, w, loss)).collect();
    let chosen = (0..fits.len()).max_by(|&a, &b| {
        fits[a]
            .loo_spearman
            .total_cmp(&fits[b].loo_spearman)
            .then(fits[b].loo_rmse.total_cmp(&fits[a].loo_rmse))
            .then(b.cmp(&a))
    });
    (fits, chosen)
}

/// One seeded draw around `natural`: Dirichlet(a0 · natural) with the concentration a0
/// log-uniform from a tenth to ten times the number of domains (every alpha at least 1e-3),
/// so both mixtures near the natural one and lopsided ones come up.
pub fn draw_around(rng: &mut Rng, natural: &[f64]) -> Vec<f64> {
    let a0 = natural.len() as f64 * 10f64.powf(2.0 * rng.uniform() - 1.0);
    let alpha: Vec<f64> = natural.iter().map(|n| (a0 * n).max(1e-3)).collect();
    dirichlet(rng, &alpha)
}

/// Where a mixture may go: at most `cap[i]` of domain i, and within `max_kl` of `natural`.
#[derive(Debug, Clone)]
pub struct Feasible {
    pub cap: Vec<f64>,
    pub natural: Vec<f64>,
    pub max_kl: Option<f64>,
}

impl Feasible {
    pub fn contains(&self, w: &[f64]) -> bool {
        w.iter().zip(&self.cap).all(|(&x, &c)| x >= 0.0 && x <= c + 1e-12)
            && self.max_kl.is_none_or(|b| kl(w, &self.natural) <= b + 1e-12)
    }

    /// `w` with every share over its cap cut to it and the excess spread over the others in
    /// proportion to their headroom (repeated until it fits); None where the caps sum below 1.
    pub fn clip(&self, w: &[f64]) -> Option<Vec<f64>> {
        if self.cap.iter().map(|c| c.min(1.0)).sum::<f64>() < 1.0 - 1e-12 {
            return None;
        }
        let mut w: Vec<f64> = w.iter().zip(&self.cap).map(|(&x, &c)| x.clamp(0.0, c)).collect();
        for _ in 0..64 {
            let missing = 1.0 - w.iter().sum::<f64>();
            if missing.abs() < 1e-12 {
                break;
            }
            let room: Vec<f64> = w.iter().zip(&self.cap).map(|(&x, &c)| (c - x).max(0.0)).collect();
            let total: f64 = room.iter().sum();
            if total <= 0.0 {
                return None;
            }
            for (x, r) in w.iter_mut().zip(&room) {
                *x += missing * r / total;
            }
            for (x, &c) in w.iter_mut().zip(&self.cap) {
                *x = x.clamp(0.0, c);
            }
        }
        Some(w)
    }
}

/// The feasible mixture with the lowest `f`: the best of `draws` seeded Dirichlet draws
/// (concentrations from a tenth to ten times the domains' number, around the natural shares),
/// the natural and uniform mixtures and the corners (each clipped to the caps), then pairwise
/// transfers between domains, halving the step from 0.1 to 1e-5 while one improves.
/// Deterministic for a seed. The natural mixture is feasible whenever the caps allow any, so a
/// start always exists.
pub fn minimise(f: impl Fn(&[f64]) -> f64, space: &Feasible, seed: u64, draws: usize) -> Option<(Vec<f64>, f64)> {
    let k = space.natural.len();
    let mut rng = Rng::new(seed);
    let mut starts: Vec<Vec<f64>> = vec![space.natural.clone(), vec![1.0 / k as f64; k]];
    for i in 0..k {
        starts.push((0..k).map(|j| if i == j { 1.0 } else { 0.0 }).collect());
    }
    for _ in 0..draws {
        starts.push(draw_around(&mut rng, &space.natural));
    }
    let mut best: Option<(Vec<f64>, f64)> = None;
    for s in starts {
        let Some(w) = space.clip(&s) else { continue };
        if !space.contains(&w) {
            continue;
        }
        let v = f(&w);
        if v.is_finite() && best.as_ref().is_none_or(|b| v < b.1) {
            best = Some((w, v));
        }
    }
    let (mut w, mut v) = best?;
    let mut step = 0.1;
    while step >= 1e-5 {
        let mut improved = true;
        while improved {
            improved = false;
            for i in 0..k {
                for j in 0..k {
                    if i == j || w[i] < step {
                        continue;
                    }
                    let mut t = w.clone();
                    t[i] -= step;
                    t[j] += step;
                    if !space.contains(&t) {
                        continue;
                    }
                    let tv = f(&t);
                    if tv < v - 1e-15 {
                        (w, v) = (t, tv);
                        improved = true;
                    }
                }
            }
        }
        step /= 2.0;
    }
    Some((w, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirichlet_draws_have_the_oracle_moments() {
        // E[w_i] = a_i / a_0, Var[w_i] = a_i (a_0 - a_i) / (a_0^2 (a_0 + 1)).
        let alpha = [0.5, 2.0, 4.5];
        let a0: f64 = alpha.iter().sum();
        let mut rng = Rng::new(7);
        let n = 40_000;
        let draws: Vec<Vec<f64>> = (0..n).map(|_| dirichlet(&mut rng, &alpha)).collect();
        for (i, &a) in alpha.iter().enumerate() {
            let mean = draws.iter().map(|d| d[i]).sum::<f64>() / n as f64;
            let var = draws.iter().map(|d| (d[i] - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            let (em, ev) = (a / a0, a * (a0 - a) / (a0 * a0 * (a0 + 1.0)));
            // Within four standard errors of the mean; the variance within 5%.
            assert!((mean - em).abs() < 4.0 * (ev / n as f64).sqrt(), "mean {i}: {mean} vs {em}");
            assert!((var / ev - 1.0).abs() < 0.05, "var {i}: {var} vs {ev}");
        }
        assert!(draws.iter().all(|d| (d.iter().sum::<f64>() - 1.0).abs() < 1e-12 && d.iter().all(|x| *x >= 0.0)));
    }

    #[test]
    fn ridge_recovers_a_linear_law_and_the_family_is_chosen_by_rank() {
        // L = 3 + 1.0 w0 - 0.5 w1 + 0.2 w2, exactly.
        let mut rng = Rng::new(1);
        let w: Vec<Vec<f64>> = (0..24).map(|_| dirichlet(&mut rng, &[1.0, 1.0, 1.0])).collect();
        let law = |w: &[f64]| 3.0 + 1.0 * w[0] - 0.5 * w[1] + 0.2 * w[2];
        let loss: Vec<f64> = w.iter().map(|x| law(x)).collect();
        let fit = fit_family(Family::Linear, &w, &loss).unwrap();
        for x in &w {
            assert!((fit.predict(x) - law(x)).abs() < 1e-3);
        }
        assert!(fit.loo_spearman > 0.99, "{fit:?}");
        let (fits, chosen) = fit_all(&w, &loss);
        assert_eq!(fits.len(), 3);
        assert!(fits[chosen.unwrap()].loo_spearman >= fits.iter().map(|f| f.loo_spearman).fold(-1.0, f64::max));
    }

    #[test]
    fn spearman_matches_hand_values() {
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]), 1.0);
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), -1.0);
        // d = (0, 1, -1): 1 - 6·2 / (3·8) = 0.5.
        assert!((spearman(&[1.0, 2.0, 3.0], &[1.0, 3.0, 2.0]) - 0.5).abs() < 1e-12);
        assert_eq!(ranks(&[5.0, 1.0, 5.0]), [2.5, 1.0, 2.5]);
    }

    #[test]
    fn the_minimum_respects_the_caps_and_the_kl_bound() {
        // Linear: all of domain 0 is best; its cap is 0.5, domain 1 next best.
        let f = |w: &[f64]| 3.0 - w[0] - 0.5 * w[1];
        let space = Feasible { cap: vec![0.5, 0.3, 1.0], natural: vec![0.2, 0.3, 0.5], max_kl: None };
        let (w, _) = minimise(f, &space, 0, 200).unwrap();
        assert!((w[0] - 0.5).abs() < 1e-4 && (w[1] - 0.3).abs() < 1e-4 && (w[2] - 0.2).abs() < 1e-4, "{w:?}");
        // A KL bound keeps it nearer the natural mixture.
        let near = Feasible { max_kl: Some(0.05), ..space.clone() };
        let (w2, _) = minimise(f, &near, 0, 200).unwrap();
        assert!(kl(&w2, &near.natural) <= 0.05 + 1e-9 && w2[0] > 0.2 && w2[0] < 0.5, "{w2:?}");
        // Caps that cannot hold a whole mixture.
        let none = Feasible { cap: vec![0.2, 0.3, 0.4], natural: vec![0.2, 0.3, 0.5], max_kl: None };
        assert!(minimise(f, &none, 0, 10).is_none());
        // A convex law with an interior minimum: found to within the last step.
        let g = |w: &[f64]| (w[0] - 0.25).powi(2) + (w[1] - 0.35).powi(2) + (w[2] - 0.4).powi(2);
        let free = Feasible { cap: vec![1.0; 3], natural: vec![1.0 / 3.0; 3], max_kl: None };
        let (w3, _) = minimise(g, &free, 3, 50).unwrap();
        assert!((w3[0] - 0.25).abs() < 1e-3 && (w3[1] - 0.35).abs() < 1e-3, "{w3:?}");
    }

    #[test]
    fn gamma_has_the_oracle_mean_for_small_and_large_shapes() {
        let mut rng = Rng::new(3);
        for shape in [0.3, 1.0, 7.5] {
            let n = 40_000;
            let mean = (0..n).map(|_| gamma(&mut rng, shape)).sum::<f64>() / n as f64;
            assert!((mean - shape).abs() < 4.0 * (shape / n as f64).sqrt(), "{shape}: {mean}");
        }
    }
}
