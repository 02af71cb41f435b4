//! MinHash signatures and LSH band keys (Broder 1997), and the exact-duplicate key.
//!
//! A document's shingles are its word n-grams ([`Shingler`]: syllabus's own words, or
//! datatrove's with `--compat datatrove`); each shingle is hashed once to 64 bits; the
//! signature's m = bands x rows values are, for each permutation i, the minimum over shingles
//! of `perm_i(hash)` ([`Permutations`]); a band's key is a 64-bit hash of its r values and the
//! band's index, so two documents share a key in band j exactly when (up to a 2^-64 collision)
//! their r values there agree: the LSH candidate rule.
//!
//! Native permutations are Dietzfelbinger's multiply-add-shift on the shingle hash folded to
//! 32 bits, `(a_i * x + b_i) >> 32` with a_i, b_i uniform 64-bit draws of a SplitMix64 stream
//! from the seed: a strongly universal family into 32-bit values (so signatures are u32), and
//! a loop over i the compiler vectorizes. `--compat datatrove` uses datatrove's own family
//! ([`super::datatrove`]).

use unicode_normalization_alignments::UnicodeNormalization;
use xxhash_rust::xxh3::{xxh3_128, xxh3_64, xxh3_64_with_seed};

use crate::text::wordpunct::{is_py_space, py_lower_into, py_word_spans};

/// The LSH banding: `bands` keys per document, each over `rows` signature values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Banding {
    pub bands: usize,
    pub rows: usize,
}

impl Banding {
    pub fn hashes(&self) -> usize {
        self.bands * self.rows
    }

    /// The probability that two documents of Jaccard similarity `s` share a band:
    /// `1 - (1 - s^r)^b` (the S-curve).
    pub fn candidate_probability(&self, s: f64) -> f64 {
        1.0 - (1.0 - s.powi(self.rows as i32)).powi(self.bands as i32)
    }

    /// The similarity at which the S-curve is near 1/2: `(1/b)^(1/r)`.
    pub fn threshold(&self) -> f64 {
        (1.0 / self.bands as f64).powf(1.0 / self.rows as f64)
    }

    /// Band `j`'s key from the signature (`values` are the signature's, as u64).
    pub fn band_key(&self, j: usize, values: &[u64]) -> u64 {
        let mut buf = [0u8; 8 * 32];
        let vals = &values[j * self.rows..(j + 1) * self.rows];
        if vals.len() <= 32 {
            for (k, v) in vals.iter().enumerate() {
                buf[8 * k..8 * k + 8].copy_from_slice(&v.to_le_bytes());
            }
            xxh3_64_with_seed(&buf[..8 * vals.len()], j as u64)
        } else {
            let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
            xxh3_64_with_seed(&bytes, j as u64)
        }
    }
}

/// The estimated Jaccard similarity of two signatures: the share of equal values. Its standard
/// deviation is `sqrt(J(1-J)/m)`.
pub fn jaccard_estimate(a: &[u64], b: &[u64]) -> f64 {
    if a.is_empty() {
        return 0.0;
    }
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

/// SplitMix64: the stream the native permutations are drawn from.
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The native permutations: `(a_i * fold32(h) + b_i) >> 32`.
#[derive(Debug, Clone)]
pub struct Permutations {
    a: Vec<u64>,
    b: Vec<u64>,
}

impl Permutations {
    pub fn new(m: usize, seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let (mut a, mut b) = (Vec::with_capacity(m), Vec::with_capacity(m));
        for _ in 0..m {
            a.push(rng.next_u64());
            b.push(rng.next_u64());
        }
        Permutations { a, b }
    }

    pub fn len(&self) -> usize {
        self.a.len()
    }

    pub fn is_empty(&self) -> bool {
        self.a.is_empty()
    }

    /// Fold every shingle hash into the running minima `sig` (u32 values kept as u64).
    pub fn update(&self, sig: &mut [u64], shingle_hashes: &[u64]) {
        fold_minima(&self.a, &self.b, sig, shingle_hashes);
    }
}

crate::simd::simd! {
    /// `sig[i] = min(sig[i], (a[i] * fold32(h) + b[i]) >> 32)` over the hashes h: 112 lanes of
    /// independent work per shingle, vectorised (with AVX2: 4 lanes a register).
    fn fold_minima(a: &[u64], b: &[u64], sig: &mut [u64], hashes: &[u64]) {
        let m = sig.len();
        let (a, b) = (&a[..m], &b[..m]);
        for &h in hashes {
            let x = (h ^ (h >> 32)) & 0xFFFF_FFFF;
            for i in 0..m {
                let v = a[i].wrapping_mul(x).wrapping_add(b[i]) >> 32;
                sig[i] = sig[i].min(v);
            }
        }
    }
}

/// Splits a document into shingle hashes.
pub trait Shingler: Send + Sync {
    /// The 64-bit hashes of the document's shingles (with repeats), into `out` (cleared
    /// first), using `buf` as scratch.
    fn shingles(&self, text: &str, buf: &mut Scratch, out: &mut Vec<u64>);
}

/// Reused buffers of one thread.
#[derive(Default)]
pub struct Scratch {
    pub(crate) norm: String,
    pub(crate) lower: String,
    pub(crate) spans: Vec<(u32, u32)>,
    pub(crate) words: Vec<u64>,
    pub(crate) shingles: Vec<u64>,
    pub(crate) tokens: Vec<String>,
    pub(crate) bytes: Vec<u8>,
}

/// `text` in Unicode NFC, borrowed when it already is (every ASCII text is).
fn nfc<'a>(text: &'a str, buf: &'a mut String) -> &'a str {
    if text.is_ascii()
        || unicode_normalization_alignments::is_nfc_quick(text.chars())
            == unicode_normalization_alignments::IsNormalized::Yes
    {
        return text;
    }
    buf.clear();
    buf.extend(text.nfc().map(|(c, _)| c));
    buf
}

/// syllabus's shingles: the words of `re.findall(r"\w+", nfc(text).lower())` (the featurizer
/// DSIR and the contamination rule use), each hashed once; a shingle is n consecutive words,
/// hashed from its words' hashes. A document of fewer than n words (but at least one) is one
/// shingle of all its words, so short duplicates are found too; one without words has none.
pub struct WordShingles {
    pub n: usize,
}

impl WordShingles {
    /// The shingle hashes of a text already in NFC and lowercased ([`lower_nfc`]).
    pub fn shingles_of_lower(
        &self,
        lower: &str,
        spans: &mut Vec<(u32, u32)>,
        words: &mut Vec<u64>,
        out: &mut Vec<u64>,
    ) {
        out.clear();
        py_word_spans(lower, spans);
        words.clear();
        words.extend(spans.iter().map(|&(s, e)| xxh3_64(&lower.as_bytes()[s as usize..e as usize])));
        shingle_hashes(words, self.n, out);
    }
}

impl Shingler for WordShingles {
    fn shingles(&self, text: &str, buf: &mut Scratch, out: &mut Vec<u64>) {
        let Scratch { norm, lower, spans, words, .. } = buf;
        lower_nfc(text, norm, lower);
        self.shingles_of_lower(lower, spans, words, out);
    }
}

/// `text` in NFC and lowercased as Python's `str.lower()`, into `out` (`norm`: scratch).
pub fn lower_nfc(text: &str, norm: &mut String, out: &mut String) {
    let t = nfc(text, norm);
    py_lower_into(t, out);
}

/// The hashes of the n-grams of `words` (word hashes): each hashed from its n word hashes;
/// fewer than n words give one gram of them all, none give none.
pub(crate) fn shingle_hashes(words: &[u64], n: usize, out: &mut Vec<u64>) {
    if words.is_empty() {
        return;
    }
    let n = n.min(words.len());
    let mut bytes = [0u8; 8 * 16];
    for w in words.windows(n) {
        if n <= 16 {
            for (k, h) in w.iter().enumerate() {
                bytes[8 * k..8 * k + 8].copy_from_slice(&h.to_le_bytes());
            }
            out.push(xxh3_64(&bytes[..8 * n]));
        } else {
            let v: Vec<u8> = w.iter().flat_map(|h| h.to_le_bytes()).collect();
            out.push(xxh3_64(&v));
        }
    }
}

/// The exact-duplicate key: a 128-bit hash of the normalized text (Unicode NFC, Python's
/// lowercase, runs of whitespace as one space, trimmed).
pub fn exact_key(text: &str, buf: &mut Scratch) -> u128 {
    let Scratch { norm, lower, bytes, .. } = buf;
    lower_nfc(text, norm, lower);
    key_of_lower(lower, bytes)
}

/// [`exact_key`] of a text already in NFC and lowercased.
pub fn key_of_lower(lower: &str, bytes: &mut Vec<u8>) -> u128 {
    bytes.clear();
    if lower.is_ascii() {
        let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0x1c..=0x1f);
        for run in lower.as_bytes().split(space).filter(|r| !r.is_empty()) {
            if !bytes.is_empty() {
                bytes.push(b' ');
            }
            bytes.extend_from_slice(run);
        }
        return xxh3_128(bytes);
    }
    let mut space = false;
    for c in lower.chars() {
        if is_py_space(c) {
            space = true;
            continue;
        }
        if space && !bytes.is_empty() {
            bytes.push(b' ');
        }
        space = false;
        let mut enc = [0u8; 4];
        bytes.extend_from_slice(c.encode_utf8(&mut enc).as_bytes());
    }
    xxh3_128(bytes)
}

/// The exact form [`exact_key`] hashes, for tests and docs.
pub fn normalized(text: &str) -> String {
    let mut buf = Scratch::default();
    let t = nfc(text, &mut buf.norm).to_string();
    py_lower_into(&t, &mut buf.lower);
    buf.lower.split(is_py_space).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s_curve_matches_the_oracles() {
        let b = Banding { bands: 14, rows: 8 };
        for (s, p) in [(0.5, 0.0533), (0.7, 0.5645), (0.8, 0.9235), (0.9, 0.9996)] {
            assert!((b.candidate_probability(s) - p).abs() < 5e-5, "P({s}) = {}", b.candidate_probability(s));
        }
        assert!((b.threshold() - 0.719).abs() < 1e-3);
    }

    #[test]
    fn normalization_folds_case_whitespace_and_composition() {
        assert_eq!(normalized("  Hello\t\n  WORLD  "), "hello world");
        // e + combining acute is é after NFC.
        assert_eq!(normalized("Cafe\u{301}"), "caf\u{e9}");
        let mut b = Scratch::default();
        assert_eq!(exact_key("Cafe\u{301}  au lait", &mut b), exact_key("CAF\u{c9} au\nlait ", &mut b));
        assert_ne!(exact_key("cafe au lait", &mut b), exact_key("café au lait", &mut b));
    }

    /// The estimate of a pair with known Jaccard similarity stays within its binomial bound.
    #[test]
    fn jaccard_estimate_is_within_its_binomial_bound() {
        let perms = Permutations::new(256, 1);
        // A = 0..1000, B = 500..1500 as shingle hashes: J = 500 / 1500 = 1/3.
        let ha: Vec<u64> = (0..1000u64).map(|i| xxh3_64(&i.to_le_bytes())).collect();
        let hb: Vec<u64> = (500..1500u64).map(|i| xxh3_64(&i.to_le_bytes())).collect();
        let (mut sa, mut sb) = (vec![u64::MAX; 256], vec![u64::MAX; 256]);
        perms.update(&mut sa, &ha);
        perms.update(&mut sb, &hb);
        let j = 1.0 / 3.0;
        let sd = (j * (1.0 - j) / 256.0f64).sqrt();
        let est = jaccard_estimate(&sa, &sb);
        assert!((est - j).abs() < 4.0 * sd, "estimate {est}, J {j}, sd {sd}");
        // Identical sets agree everywhere; disjoint ones almost nowhere.
        let mut sc = vec![u64::MAX; 256];
        perms.update(&mut sc, &ha);
        assert_eq!(jaccard_estimate(&sa, &sc), 1.0);
    }

    /// Over many seeds, the share of equal signature values is J on average (unbiased).
    #[test]
    fn signature_agreement_is_unbiased() {
        let ha: Vec<u64> = (0..200u64).map(|i| xxh3_64(&i.to_le_bytes())).collect();
        let hb: Vec<u64> = (100..300u64).map(|i| xxh3_64(&i.to_le_bytes())).collect();
        let (mut eq, mut n) = (0usize, 0usize);
        for seed in 0..40 {
            let perms = Permutations::new(128, seed);
            let (mut sa, mut sb) = (vec![u64::MAX; 128], vec![u64::MAX; 128]);
            perms.update(&mut sa, &ha);
            perms.update(&mut sb, &hb);
            eq += sa.iter().zip(&sb).filter(|(a, b)| a == b).count();
            n += 128;
        }
        let j = 100.0 / 300.0;
        let est = eq as f64 / n as f64;
        let sd = (j * (1.0 - j) / n as f64).sqrt();
        assert!((est - j).abs() < 4.0 * sd, "mean agreement {est} vs J {j}");
    }

    #[test]
    fn short_documents_are_one_shingle_and_empty_ones_none() {
        let s = WordShingles { n: 5 };
        let mut buf = Scratch::default();
        let mut out = Vec::new();
        s.shingles("two words", &mut buf, &mut out);
        assert_eq!(out.len(), 1);
        s.shingles("  ... !!", &mut buf, &mut out);
        assert!(out.is_empty());
        s.shingles("one two three four five six", &mut buf, &mut out);
        assert_eq!(out.len(), 2);
        let mut again = Vec::new();
        s.shingles("ONE two, three four five six", &mut buf, &mut again);
        assert_eq!(out, again);
    }
}
