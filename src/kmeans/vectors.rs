//! Document vectors: DSIR's hashed unigram and bigram features (the same featurizer:
//! Python's `str.lower()`, the wordpunct split, xxh3-64 of each word and each pair of words
//! mod `dims`), weighted by TF-IDF and scaled to unit length.
//!
//! `tfidf[j] = tf[j] * idf[j]` with `tf` the raw count and `idf[j] = ln((1 + N) / (1 + df[j]))
//! + 1` (scikit-learn's smoothed IDF), `N` the documents the fit read and `df[j]` how many of
//! them have feature `j`; then divided by its L2 norm. A document without words has no vector.

use crate::score::dsir::{fast_bucket_with, with_featurizer, DsirParams, FastMod, NgramHash};
use crate::text::{py_lower_into, wordpunct_spans};

/// A sparse vector: distinct feature indices (in the order a document first has them, so that
/// every sum over them is the same wherever it is computed) and their values.
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

/// The dot products of `v` with k vectors stored feature-major (`table[j * k + c]`: centroids,
/// centre sums), into `sims`.
#[inline]
pub fn dots<W: Copy + Into<f64>>(v: &Sparse, table: &[W], k: usize, sims: &mut Vec<f64>) {
    sims.clear();
    sims.resize(k, 0.0);
    for (&j, &x) in v.idx.iter().zip(&v.val) {
        let row = &table[j as usize * k..(j as usize + 1) * k];
        let x = f64::from(x);
        for (s, &w) in sims.iter_mut().zip(row) {
            *s += x * w.into();
        }
    }
}

/// The featurizer's settings for `dims` buckets: unigrams and bigrams under xxh3.
pub fn feature_params(dims: u32) -> DsirParams {
    DsirParams { buckets: dims, ngrams: 2, hash: NgramHash::Fast, ..DsirParams::default() }
}

/// Scratch of [`counts`]: a counter per bucket (zero between calls) and the buckets touched.
#[derive(Default)]
pub struct Counter {
    counts: Vec<u32>,
    touched: Vec<u32>,
}

/// The feature counts of `text`: each bucket it touches, in the order first touched, and how
/// often: DSIR's featurizer with `hash = "fast"` (its word and bigram caches included).
pub fn counts(params: &DsirParams, text: &str, c: &mut Counter) -> Sparse {
    let dims = params.buckets;
    if c.counts.len() != dims as usize {
        c.counts = vec![0; dims as usize];
    }
    c.touched.clear();
    let (counts, touched) = (&mut c.counts, &mut c.touched);
    with_featurizer(params, |fz| {
        fz.for_each_bucket(text, |b| {
            let n = &mut counts[b as usize];
            if *n == 0 {
                touched.push(b);
            }
            *n += 1;
        })
    });
    let mut out = Sparse { idx: Vec::with_capacity(touched.len()), val: Vec::with_capacity(touched.len()) };
    for &b in touched.iter() {
        out.idx.push(b);
        out.val.push(counts[b as usize] as f32);
        counts[b as usize] = 0;
    }
    out
}

/// Scratch buffers of [`for_each_term`].
#[derive(Default)]
pub struct TermScratch {
    lower: String,
    spans: Vec<(u32, u32)>,
    key: String,
}

/// Every feature of `text` as the featurizer makes it (each word, then each pair of adjacent
/// words joined by a space), with its bucket: what the centroid weights are weights of.
pub fn for_each_term(text: &str, dims: u32, s: &mut TermScratch, mut f: impl FnMut(u32, &str)) {
    py_lower_into(text, &mut s.lower);
    s.spans.clear();
    wordpunct_spans(&s.lower, &mut s.spans);
    let word = |&(a, b): &(u32, u32)| &s.lower[a as usize..b as usize];
    let m = FastMod::new(dims);
    for span in &s.spans {
        let w = word(span);
        f(fast_bucket_with(w.as_bytes(), m), w);
    }
    for pair in s.spans.windows(2) {
        s.key.clear();
        s.key.push_str(word(&pair[0]));
        s.key.push(' ');
        s.key.push_str(word(&pair[1]));
        f(fast_bucket_with(s.key.as_bytes(), m), &s.key);
    }
}

/// A readable term for each bucket: the majority term among those seen there (the
/// Boyer-Moore vote: the majority one whenever there is one), or none.
pub struct Terms {
    slots: Vec<Option<(Box<str>, u32)>>,
}

impl Terms {
    pub fn new(dims: u32) -> Self {
        Terms { slots: vec![None; dims as usize] }
    }

    pub fn see(&mut self, bucket: u32, term: &str) {
        let slot = &mut self.slots[bucket as usize];
        match slot {
            Some((t, c)) if &**t == term => *c += 1,
            Some((_, c)) if *c > 1 => *c -= 1,
            _ => *slot = Some((term.into(), 1)),
        }
    }

    /// The terms, "" where a bucket saw none.
    pub fn into_terms(self) -> Vec<String> {
        self.slots.into_iter().map(|s| s.map_or_else(String::new, |(t, _)| t.into())).collect()
    }
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
        let mut c = Counter::default();
        let v = counts(&p, "The cat. the CAT", &mut c);
        // Words: the cat . the cat -> unigrams the x2, cat x2, . x1; bigrams: "the cat" x2,
        // "cat ." x1, ". the" x1: 6 distinct features (barring collisions), 9 occurrences.
        assert_eq!(v.val.iter().sum::<f32>(), 9.0);
        assert_eq!(v.nnz(), 6);
        assert!(counts(&p, "  ", &mut c).is_empty());
        // The same buckets and counts as DSIR's featurizer, for any text.
        for text in ["Ünïcödé words, and MORE words: more!", "a a a b", "x", "Σ ΟΔΟΣ. don't stop_me 42x"] {
            let mut want: Vec<u32> = Vec::new();
            crate::score::dsir::with_featurizer(&p, |fz| fz.for_each_bucket(text, |b| want.push(b)));
            want.sort_unstable();
            let v = counts(&p, text, &mut c);
            let mut got: Vec<u32> = Vec::new();
            for (&i, &n) in v.idx.iter().zip(&v.val) {
                got.extend(std::iter::repeat_n(i, n as usize));
            }
            got.sort_unstable();
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn terms_are_the_featurizers_features() {
        let p = feature_params(1 << 10);
        let text = "Ünïcödé words, and MORE words: more!";
        let mut buckets = Vec::new();
        let mut s = TermScratch::default();
        let mut terms = Vec::new();
        for_each_term(text, 1 << 10, &mut s, |b, t| {
            buckets.push(b);
            terms.push(t.to_string());
        });
        let c = counts(&p, text, &mut Counter::default());
        buckets.sort_unstable();
        let mut want: Vec<u32> = Vec::new();
        for (&i, &n) in c.idx.iter().zip(&c.val) {
            want.extend(std::iter::repeat_n(i, n as usize));
        }
        want.sort_unstable();
        assert_eq!(buckets, want);
        assert!(terms.contains(&"ünïcödé".to_string()) && terms.contains(&"more words".to_string()), "{terms:?}");
    }

    #[test]
    fn a_buckets_term_is_its_majority() {
        let mut t = Terms::new(2);
        for term in ["a", "b", "a", "c", "a", "a"] {
            t.see(0, term);
        }
        t.see(1, "x");
        t.see(1, "y");
        assert_eq!(t.into_terms(), vec!["a".to_string(), "y".to_string()]);
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
