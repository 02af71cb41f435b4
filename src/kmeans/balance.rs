//! Selections that use clusters.
//!
//! - Cluster-balanced (Diversify and Conquer): k rows split into a budget per cluster by a
//!   rule — `equal`, `size` (proportional to `size^alpha`) or `mean` (proportional to the
//!   cluster's mean of a positive score column) — and, within a cluster, the rows with the
//!   highest `--by` score or a seeded uniform draw. A cluster smaller than its share gives all
//!   its rows and the rest is shared again among the others (water-filling); shares are
//!   rounded by largest remainder (ties to the lower cluster), so the budgets sum to k exactly
//!   (or to every row, when there are fewer).
//! - D4 (Tirumala et al. 2023): drop the share of each cluster nearest its centroid (the
//!   prototypical, most redundant rows: `cluster_rank <= round(drop * size)`), keep the rest.
//!
//! Rows without a cluster (no words) are never chosen. Memory: every row's cluster and key
//! (about 48 bytes a row), as any rule that ranks whole clusters needs.

use crate::error::{Error, Result};
use crate::select::Ranked;

/// How k is split over the clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BudgetRule {
    /// The same share for every cluster.
    Equal,
    /// Proportional to size^alpha (alpha 1: the lake's own proportions; 0: equal).
    Size,
    /// Proportional to the cluster's mean of the --by score (which must be positive).
    Mean,
}

/// A row that may be chosen: its cluster and what orders it within the cluster.
#[derive(Debug, Clone, Copy)]
pub struct Member {
    pub cluster: u32,
    /// Higher is chosen first within the cluster (ties to the earlier row).
    pub key: f64,
    /// The value written with the row.
    pub score: f64,
    pub row: u64,
    pub file: u32,
    pub loc: u64,
}

/// Split `k` over clusters of `sizes` rows in proportion to `weights` (water-filling, then
/// largest remainder): never more than a cluster has, summing to `min(k, rows with weight)`.
pub fn budgets(sizes: &[u64], weights: &[f64], k: u64) -> Vec<u64> {
    let n = sizes.len();
    let mut out = vec![0u64; n];
    let mut active: Vec<usize> = (0..n).filter(|&c| sizes[c] > 0 && weights[c] > 0.0).collect();
    let mut left = k.min(active.iter().map(|&c| sizes[c]).sum());
    // Fill the clusters whose share is at least their size, until none is.
    loop {
        let total: f64 = active.iter().map(|&c| weights[c]).sum();
        let full: Vec<usize> =
            active.iter().copied().filter(|&c| left as f64 * weights[c] / total >= sizes[c] as f64).collect();
        if full.is_empty() {
            break;
        }
        for &c in &full {
            out[c] = sizes[c];
            left -= sizes[c];
        }
        active.retain(|c| !full.contains(c));
    }
    if active.is_empty() {
        return out;
    }
    let total: f64 = active.iter().map(|&c| weights[c]).sum();
    let shares: Vec<(usize, f64)> = active.iter().map(|&c| (c, left as f64 * weights[c] / total)).collect();
    let mut given = 0u64;
    for &(c, s) in &shares {
        out[c] = (s.floor() as u64).min(sizes[c]);
        given += out[c];
    }
    let mut rest: Vec<(usize, f64)> = shares.iter().map(|&(c, s)| (c, s - s.floor())).collect();
    rest.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut i = 0;
    while given < left && !rest.is_empty() {
        let c = rest[i % rest.len()].0;
        if out[c] < sizes[c] {
            out[c] += 1;
            given += 1;
        }
        i += 1;
    }
    out
}

/// The cluster weights of a budget rule: `sizes` rows and `means` of the score per cluster.
pub fn weights(rule: BudgetRule, alpha: f64, sizes: &[u64], means: &[f64]) -> Result<Vec<f64>> {
    Ok(match rule {
        BudgetRule::Equal => sizes.iter().map(|&s| if s > 0 { 1.0 } else { 0.0 }).collect(),
        BudgetRule::Size => sizes.iter().map(|&s| if s > 0 { (s as f64).powf(alpha) } else { 0.0 }).collect(),
        BudgetRule::Mean => {
            if let Some((c, m)) =
                sizes.iter().zip(means).enumerate().find(|(_, (&s, &m))| s > 0 && (m.is_nan() || m <= 0.0))
            {
                return Err(Error::InvalidArgument(format!(
                    "--budget mean needs a positive score: cluster {c} has mean {}",
                    m.1
                )));
            }
            sizes.iter().zip(means).map(|(&s, &m)| if s > 0 { m } else { 0.0 }).collect()
        }
    })
}

/// Choose each cluster's budget of rows by key (highest first, ties to the earlier row); the
/// chosen rows come back sorted by row.
pub fn choose(mut rows: Vec<Member>, budgets: &[u64]) -> Vec<Ranked> {
    rows.sort_by(|a, b| a.cluster.cmp(&b.cluster).then(b.key.total_cmp(&a.key)).then(a.row.cmp(&b.row)));
    let mut taken = vec![0u64; budgets.len()];
    let mut out: Vec<Ranked> = rows
        .into_iter()
        .filter(|m| {
            let t = &mut taken[m.cluster as usize];
            *t += 1;
            *t <= budgets[m.cluster as usize]
        })
        .map(|m| Ranked { key: m.key, row: m.row, score: m.score, file: m.file, loc: m.loc })
        .collect();
    out.sort_by_key(|r| r.row);
    out
}

/// D4's rule: keep the rows whose rank in their cluster (1 = nearest the centroid) is past
/// `round(drop * size)`.
pub fn d4_keeps(rank: u64, size: u64, drop: f64) -> bool {
    rank > (drop * size as f64).round() as u64
}

/// Per-cluster sizes and means of `score` over `rows`, for `k` clusters.
pub fn cluster_stats(rows: &[Member], k: usize) -> (Vec<u64>, Vec<f64>) {
    let mut sizes = vec![0u64; k];
    let mut sums = vec![0f64; k];
    for m in rows {
        sizes[m.cluster as usize] += 1;
        sums[m.cluster as usize] += m.score;
    }
    let means = sizes.iter().zip(&sums).map(|(&n, &s)| if n > 0 { s / n as f64 } else { 0.0 }).collect();
    (sizes, means)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_sum_to_k_and_never_exceed_a_cluster() {
        // Equal over 3 clusters, one too small: it gives all 2, the others share the rest.
        assert_eq!(budgets(&[2, 100, 100], &[1.0, 1.0, 1.0], 30), vec![2, 14, 14]);
        // Largest remainder, ties to the lower cluster.
        assert_eq!(budgets(&[10, 10, 10], &[1.0, 1.0, 1.0], 10), vec![4, 3, 3]);
        // Fewer rows than k: everything.
        assert_eq!(budgets(&[3, 4], &[1.0, 1.0], 50), vec![3, 4]);
        // A cluster without weight gets nothing.
        assert_eq!(budgets(&[5, 5], &[0.0, 1.0], 4), vec![0, 4]);
        let mut rng = crate::proxy::nn::Rng::from_state(7);
        for _ in 0..500 {
            let n = 1 + (rng.next_u64() % 12) as usize;
            let sizes: Vec<u64> = (0..n).map(|_| rng.next_u64() % 40).collect();
            let w: Vec<f64> = (0..n).map(|_| rng.uniform() + 0.01).collect();
            let k = rng.next_u64() % 300;
            let b = budgets(&sizes, &w, k);
            assert_eq!(b.iter().sum::<u64>(), k.min(sizes.iter().sum()), "{sizes:?} {w:?} {k}");
            assert!(b.iter().zip(&sizes).all(|(b, s)| b <= s));
        }
    }

    #[test]
    fn size_weights_and_mean_weights() {
        assert_eq!(weights(BudgetRule::Size, 1.0, &[4, 0, 9], &[]).unwrap(), vec![4.0, 0.0, 9.0]);
        assert_eq!(weights(BudgetRule::Size, 0.5, &[4, 9], &[]).unwrap(), vec![2.0, 3.0]);
        assert_eq!(weights(BudgetRule::Equal, 0.0, &[4, 0], &[]).unwrap(), vec![1.0, 0.0]);
        assert_eq!(weights(BudgetRule::Mean, 0.0, &[1, 2], &[0.5, 2.0]).unwrap(), vec![0.5, 2.0]);
        let e = weights(BudgetRule::Mean, 0.0, &[1, 2], &[0.5, -1.0]).unwrap_err().to_string();
        assert!(e.contains("cluster 1 has mean -1"), "{e}");
    }

    #[test]
    fn choose_takes_the_best_of_each_cluster() {
        let m = |cluster, key: f64, row| Member { cluster, key, score: key, row, file: 0, loc: row };
        let rows = vec![m(0, 0.1, 0), m(1, 0.9, 1), m(0, 0.8, 2), m(1, 0.2, 3), m(0, 0.8, 4), m(1, 0.5, 5)];
        let got: Vec<u64> = choose(rows, &[2, 1]).iter().map(|r| r.row).collect();
        // Cluster 0: 0.8 (row 2) and 0.8 (row 4, the tie after it); cluster 1: 0.9 (row 1).
        assert_eq!(got, vec![1, 2, 4]);
    }

    #[test]
    fn d4_drops_the_nearest_share() {
        let kept: Vec<u64> = (1..=10).filter(|&r| d4_keeps(r, 10, 0.3)).collect();
        assert_eq!(kept, vec![4, 5, 6, 7, 8, 9, 10]);
        assert!((1..=10).all(|r| d4_keeps(r, 10, 0.0)));
    }
}
