//! Document vectors: DSIR's hashed unigram and bigram features (the same featurizer:
//! Python's `str.lower()`, the wordpunct split, xxh3-64 of each word and each pair of words
//! mod `dims`), weighted by TF-IDF and scaled to unit length.
//!
//! `tfidf[j] = tf[j] * idf[j]` with `tf` the raw count and `idf[j] = ln((1 + N) / (1 + df[j]))
//! + 1` (scikit-learn's smoothed IDF), `N` the documents the fit read and `df[j]` how many of
//! them have feature `j`; then divided by its L2 norm. A document without words has no vector.

use crate::score::dsir::{with_featurizer, DsirParams, NgramHash};

/// A sparse vector: sorted feature indices and their values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sparse {
    pub idx: Vec<u32>,
    pub val: Vec<f32>,
}

impl Sparse {
    pub fn is_empty(&self) -> bool {
        self.idx.is_empty()
    }

    pub fn nnz(&self) -> usize {
        self.idx.len()
    }

    /// The dot product with a dense vector.
    #[inline]
    pub fn dot(&self, dense: &[f64]) -> f64 {
        self.idx.iter().zip(&self.val).map(|(&i, &v)| f64::from(v) * dense[i as usize]).sum()
    }
}

/// The featurizer's settings for `dims` buckets: unigrams and bigrams under xxh3.
pub fn feature_params(dims: u32) -> DsirParams {
    DsirParams { buckets: dims, ngrams: 2, hash: NgramHash::Fast, ..DsirParams::default() }
}

/// The feature counts of `text`: sorted bucket ids and how often each occurs. `scratch` is
/// reused between calls.
pub fn counts(params: &DsirParams, text: &str, scratch: &mut Vec<u32>) -> Sparse {
    scratch.clear();
    with_featurizer(params, |fz| fz.for_each_bucket(text, |b| scratch.push(b)));
    scratch.sort_unstable();
    let mut out = Sparse::default();
    for &b in scratch.iter() {
        match out.idx.last() {
            Some(&last) if last == b => *out.val.last_mut().expect("same length") += 1.0,
            _ => {
                out.idx.push(b);
                out.val.push(1.0);
            }
        }
    }
    out
}

/// scikit-learn's smoothed IDF of every feature, from document frequencies over `docs`.
pub fn idf(df: &[u64], docs: u64) -> Vec<f32> {
    let n = docs as f64;
    df.iter().map(|&d| (((1.0 + n) / (1.0 + d as f64)).ln() + 1.0) as f32).collect()
}

/// Weigh counts by `idf` and scale to unit length (in place); an empty vector stays empty.
pub fn tfidf(mut v: Sparse, idf: &[f32]) -> Sparse {
    let mut norm2 = 0.0f64;
    for (i, x) in v.idx.iter().zip(v.val.iter_mut()) {
        *x *= idf[*i as usize];
        norm2 += f64::from(*x) * f64::from(*x);
    }
    if norm2 > 0.0 {
        let inv = 1.0 / norm2.sqrt();
        for x in &mut v.val {
            *x = (f64::from(*x) * inv) as f32;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_the_featurizers_buckets() {
        let p = feature_params(1 << 12);
        let mut scratch = Vec::new();
        let v = counts(&p, "The cat. the CAT", &mut scratch);
        // Words: the cat . the cat -> unigrams the x2, cat x2, . x1; bigrams: "the cat" x2,
        // "cat ." x1, ". the" x1: 6 distinct features (barring collisions), 9 occurrences.
        assert_eq!(v.val.iter().sum::<f32>(), 9.0);
        assert!(v.idx.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(v.nnz(), 6);
        assert!(counts(&p, "  ", &mut scratch).is_empty());
    }

    #[test]
    fn idf_and_unit_length() {
        // N = 3: a feature in every document weighs 1, one in a single document ln(2) + 1.
        let w = idf(&[3, 1, 0], 3);
        assert!((w[0] - 1.0).abs() < 1e-7);
        assert!((w[1] - (2.0f32.ln() + 1.0)).abs() < 1e-6);
        assert!((w[2] - (4.0f32.ln() + 1.0)).abs() < 1e-6);
        let v = tfidf(Sparse { idx: vec![0, 1], val: vec![2.0, 1.0] }, &w);
        let (a, b) = (2.0 * w[0], w[1]);
        let n = (a * a + b * b).sqrt();
        assert!((v.val[0] - a / n).abs() < 1e-6 && (v.val[1] - b / n).abs() < 1e-6);
        let norm: f32 = v.val.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-6);
        assert!(tfidf(Sparse::default(), &w).is_empty());
    }
}
