//! DSIR: importance weights from hashed n-gram features (Xie et al. 2023).
//!
//! Features of a document: lowercase it (Python's `str.lower()`), split it with the
//! `wordpunct` tokenizer, and hash every word and every n-gram (n = 2..=ngrams, words joined by
//! one space) into `buckets` buckets: `bucket = int(SHA-256(key), big-endian) mod buckets`, as
//! the reference (`data-selection` 1.0.3, `HashedNgramDSIR`) does. Unigrams and n-grams share
//! one count vector.
//!
//! Fit: `p_raw` and `p_target` are the normalised bucket counts of the raw lake and of the
//! target set (`target_smoothing` is added to each target count first; 0 by default, as in the
//! reference), and `log_diff[b] = ln(p_target[b] + 1e-8) - ln(p_raw[b] + 1e-8)`. As in the
//! reference's default (`num_tokens_to_fit='auto'`), raw counting stops, per raw file, after the
//! first document that takes the file's count past `100_000 * buckets / n_files` n-grams;
//! the target is counted whole.
//!
//! Score: a document's log importance weight is the sum of `log_diff` over its n-gram
//! occurrences (no length normalisation), and `n_words = (features + n(n-1)/2) div n`, the
//! reference's word count. Documents with fewer than `min_words` words are never selected.
//!
//! Memory: the model is `3 * buckets` numbers; each thread keeps caches of n-gram -> bucket
//! (n-grams repeat, so SHA-256 runs about once per distinct n-gram): words up to
//! [`MAX_CACHED_NGRAMS`] entries (those of up to 15 bytes in a table that holds their bytes,
//! with fixed tables of 256 KB and 384 KB in front for words of up to 7 and of 8 to 15
//! bytes), bigrams in a fixed 1 MB table of 128K slots, longer n-grams up to
//! [`MAX_CACHED_NGRAMS`]. Bigrams the table misses are hashed four at a time
//! ([`sha256::Four`]). Counts are integers, so the fit is identical for any thread count and
//! batch size.

use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array};
use arrow::datatypes::{DataType, Field};
use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};

use super::{sha256, Scorer};
use crate::batch::{text_column, RecordBatch, COL_DSIR_LOGW, COL_N_WORDS};
use crate::error::{Error, Result};
use crate::text::{py_lower_into, wordpunct_spans};

/// Words (and, separately, longer n-grams) a thread's cache may hold before it is cleared:
/// about 50 MB each at most (the table of words of up to 15 bytes, at most half full, reaches
/// 2^21 slots of 24 bytes; while it doubles, the old half of that is alive too).
pub const MAX_CACHED_NGRAMS: usize = 1 << 20;

/// How n-grams are hashed into buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum NgramHash {
    /// SHA-256 as a big-endian integer mod buckets: the reference's buckets.
    #[default]
    Sha256,
    /// xxh3-64 mod buckets: faster, different buckets, not reference-compatible.
    Fast,
}

/// How many raw n-grams the fit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FitBudget {
    /// `100_000 * buckets` n-gram occurrences, split evenly over the raw files (the reference's default).
    Auto,
    /// Every raw document.
    All,
    /// At most this many n-gram occurrences, split evenly over the raw files.
    Tokens(u64),
}

/// DSIR's settings. The defaults are the reference's.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DsirParams {
    pub buckets: u32,
    pub ngrams: usize,
    pub min_words: u64,
    pub hash: NgramHash,
    pub target_smoothing: f64,
}

impl Default for DsirParams {
    fn default() -> Self {
        DsirParams { buckets: 10_000, ngrams: 2, min_words: 100, hash: NgramHash::Sha256, target_smoothing: 0.0 }
    }
}

impl DsirParams {
    pub fn validate(&self) -> Result<()> {
        if self.buckets == 0 {
            return Err(Error::InvalidArgument("buckets must be at least 1".into()));
        }
        if self.ngrams == 0 {
            return Err(Error::InvalidArgument("ngrams must be at least 1".into()));
        }
        crate::limits::DSIR_BUCKETS.check(u64::from(self.buckets)).map_err(Error::InvalidArgument)?;
        crate::limits::DSIR_NGRAMS.check(self.ngrams as u64).map_err(Error::InvalidArgument)?;
        if !(self.target_smoothing >= 0.0 && self.target_smoothing.is_finite()) {
            return Err(Error::InvalidArgument("target smoothing must be a finite number >= 0".into()));
        }
        Ok(())
    }

    /// The per-file raw budget of `budget` over `n_files` raw files (None: count everything).
    pub fn per_file_budget(&self, budget: FitBudget, n_files: usize) -> Option<u64> {
        let total = match budget {
            FitBudget::All => return None,
            FitBudget::Auto => 100_000 * u64::from(self.buckets),
            FitBudget::Tokens(n) => n,
        };
        Some(total / n_files.max(1) as u64)
    }

    /// The reference's word count from the number of wordpunct tokens.
    pub fn n_words(&self, words: u64) -> i64 {
        let n = self.ngrams as u64;
        let features: u64 = (1..=n).map(|i| (words + 1).saturating_sub(i)).sum();
        // (features + n(n-1)/2) // n, as Python computes it with a float remainder.
        ((features as f64 + (n * (n - 1)) as f64 / 2.0) / n as f64).floor() as i64
    }
}

/// `x mod m` for a fixed `m` by multiplication (Barrett reduction), for the hot path.
#[derive(Debug, Clone, Copy)]
pub struct FastMod {
    m: u64,
    inv: u64,
}

impl FastMod {
    pub fn new(m: u32) -> Self {
        let m = u64::from(m.max(1));
        FastMod { m, inv: u64::MAX / m }
    }

    #[inline]
    pub fn reduce(self, x: u64) -> u64 {
        // q underestimates x / m by at most 2, so at most two corrections.
        let q = ((u128::from(x) * u128::from(self.inv)) >> 64) as u64;
        let mut r = x - q * self.m;
        while r >= self.m {
            r -= self.m;
        }
        r
    }
}

/// `x mod m` of a 256-bit `x` given as eight big-endian 32-bit limbs: the limbs weighted by
/// `2^(32 (7 - i)) mod m` and summed (eight independent multiplies), then two reductions,
/// instead of Horner's rule (eight reductions, each waiting on the one before).
#[derive(Debug, Clone, Copy)]
pub struct DigestMod {
    m: FastMod,
    /// `2^(32 (7 - i)) mod m`, each below 2^32.
    weights: [u64; 8],
    /// `2^64 mod m`.
    two64: u64,
}

impl DigestMod {
    pub fn new(m: u32) -> Self {
        let fm = FastMod::new(m);
        let mut weights = [0u64; 8];
        weights[7] = fm.reduce(1);
        for i in (0..7).rev() {
            weights[i] = fm.reduce(weights[i + 1] << 32);
        }
        DigestMod { m: fm, weights, two64: fm.reduce(weights[6] << 32) }
    }

    #[inline]
    pub fn reduce(&self, limbs: &[u32; 8]) -> u32 {
        // Each product is below 2^64, so the sum of eight is below 2^67.
        let sum: u128 = limbs.iter().zip(&self.weights).map(|(&l, &w)| u128::from(u64::from(l) * w)).sum();
        let (hi, lo) = ((sum >> 64) as u64, sum as u64);
        // hi < 8 and both terms are below 2^32: no overflow.
        self.m.reduce(hi * self.two64 + self.m.reduce(lo)) as u32
    }
}

/// Bucket of a key under SHA-256: the digest as a big-endian integer, mod `buckets`.
pub fn sha256_bucket(key: &[u8], buckets: u32) -> u32 {
    sha256_bucket_with(key, &DigestMod::new(buckets))
}

/// SHA-256 of `key` as its eight big-endian 32-bit words.
#[inline]
fn sha256_words(key: &[u8]) -> [u32; 8] {
    if key.len() <= sha256::MAX_ONE_BLOCK {
        // One block: no hasher state to set up.
        sha256::digest_one(&sha256::block_of(&[key]))
    } else {
        let digest = Sha256::digest(key);
        std::array::from_fn(|i| {
            u32::from_be_bytes([digest[4 * i], digest[4 * i + 1], digest[4 * i + 2], digest[4 * i + 3]])
        })
    }
}

#[inline]
fn sha256_bucket_with(key: &[u8], m: &DigestMod) -> u32 {
    m.reduce(&sha256_words(key))
}

/// Bucket of a key under xxh3-64.
pub fn fast_bucket(key: &[u8], buckets: u32) -> u32 {
    (xxhash_rust::xxh3::xxh3_64(key) % u64::from(buckets)) as u32
}

/// [`fast_bucket`] with the modulus prepared once (no division per key).
#[inline]
pub fn fast_bucket_with(key: &[u8], m: FastMod) -> u32 {
    m.reduce(xxhash_rust::xxh3::xxh3_64(key)) as u32
}

/// Turns text into bucket ids, with the scratch buffers and n-gram caches of one thread.
///
/// Words are cached by string (id and bucket); bigrams by the pair of word ids in a small
/// direct-mapped cache ([`BigramCache`]), so a repeated bigram costs one integer-keyed lookup
/// instead of building and hashing its string. Longer n-grams are cached by string.
pub struct Featurizer {
    buckets: u32,
    ngrams: usize,
    hash: NgramHash,
    modulus: FastMod,
    digest_mod: DigestMod,
    /// Words of 16 bytes or more.
    words: FxHashMap<Box<str>, (u32, u32)>,
    /// Words of up to 15 bytes, their bytes in the table.
    inline: InlineWords,
    /// The words of at most 7 bytes, by their bytes, in front of `inline`.
    short: ShortWords,
    /// The words of 8 to 15 bytes, likewise.
    medium: MediumWords,
    next_word: u32,
    bigrams: BigramCache,
    longer: FxHashMap<Box<str>, u32>,
    /// Bigrams missing from `bigrams`, hashed four at a time.
    misses: Misses,
    /// A text's bigram buckets (or, until its misses are hashed, [`PENDING`] and a miss's
    /// number).
    out: Vec<u32>,
    /// A text's bigrams' keys (their two word ids), for the prefetch and the lookup.
    keys: Vec<u64>,
    /// A text's unigram buckets, and the positions of its words that missed the short- and
    /// medium-word caches (looked up after the others, their table slots asked for meanwhile).
    unigrams: Vec<u32>,
    slow: Vec<u32>,
    lower: String,
    spans: Vec<(u32, u32)>,
    ids: Vec<u32>,
    key: String,
    /// How often the word cache was cleared (word ids are only comparable within one epoch).
    epoch: u64,
    cache_limit: usize,
}

impl Featurizer {
    pub fn new(params: &DsirParams) -> Self {
        Featurizer {
            buckets: params.buckets,
            ngrams: params.ngrams,
            hash: params.hash,
            modulus: FastMod::new(params.buckets),
            digest_mod: DigestMod::new(params.buckets),
            words: FxHashMap::default(),
            inline: InlineWords::new(),
            short: ShortWords::new(),
            medium: MediumWords::new(),
            next_word: 0,
            bigrams: BigramCache::new(params.buckets, MAX_CACHED_NGRAMS),
            longer: FxHashMap::default(),
            misses: Misses::new(),
            out: Vec::new(),
            keys: Vec::new(),
            unigrams: Vec::new(),
            slow: Vec::new(),
            lower: String::new(),
            spans: Vec::new(),
            ids: Vec::new(),
            key: String::new(),
            epoch: 0,
            cache_limit: MAX_CACHED_NGRAMS,
        }
    }

    /// A featurizer whose caches hold at most `limit` words (for tests of cache eviction).
    pub fn with_cache_limit(params: &DsirParams, limit: usize) -> Self {
        let cache_limit = limit.max(1);
        Featurizer { cache_limit, bigrams: BigramCache::new(params.buckets, cache_limit), ..Featurizer::new(params) }
    }

    fn fits(&self, params: &DsirParams) -> bool {
        self.buckets == params.buckets && self.ngrams == params.ngrams && self.hash == params.hash
    }

    fn hash_key(&self, key: &str) -> u32 {
        match self.hash {
            NgramHash::Sha256 => sha256_bucket_with(key.as_bytes(), &self.digest_mod),
            NgramHash::Fast => fast_bucket_with(key.as_bytes(), self.modulus),
        }
    }

    /// Id and bucket of the word `text[a..b]`, which [`Featurizer::cached_word`] did not find:
    /// from the word table (which holds every word the short- and medium-word caches hold:
    /// they are filled from it and cleared with it), then put in those caches.
    #[inline(always)]
    fn missed_word(&mut self, text: &str, a: usize, b: usize) -> (u32, u32) {
        let bytes = text.as_bytes();
        if let Some(k) = ShortWords::key_in(bytes, a, b) {
            let v = self.word_inline(ShortWords::inline_key(k), &text[a..b]);
            self.short.insert(k, v);
            v
        } else if let Some(k) = MediumWords::key_in(bytes, a, b) {
            let v = self.word_inline(k, &text[a..b]);
            self.medium.insert(k, v);
            v
        } else {
            self.word_long(&text[a..b])
        }
    }

    /// Id and bucket of the word `text[a..b]` if the short- or medium-word cache has it; else
    /// None, and where the word table has a slot for it, that slot is on its way into the CPU
    /// caches (the table is megabytes, mostly out of them: [`Featurizer::missed_word`] looks
    /// such a word up later, when the slot has arrived).
    #[inline(always)]
    fn cached_word(&self, text: &str, a: usize, b: usize) -> Option<(u32, u32)> {
        let bytes = text.as_bytes();
        if let Some(k) = ShortWords::key_in(bytes, a, b) {
            let v = self.short.get(k);
            if v.is_none() {
                self.inline.prefetch(ShortWords::inline_key(k));
            }
            v
        } else if let Some(k) = MediumWords::key_in(bytes, a, b) {
            let v = self.medium.get(k);
            if v.is_none() {
                self.inline.prefetch(k);
            }
            v
        } else {
            None
        }
    }

    /// A word of up to 15 bytes, by its 16-byte key.
    #[inline(never)]
    fn word_inline(&mut self, key: (u64, u64), w: &str) -> (u32, u32) {
        if let Some(v) = self.inline.get(key) {
            return v;
        }
        let v = self.new_word(w);
        self.inline.insert(key, v);
        v
    }

    /// A word of 16 bytes or more.
    #[inline(never)]
    fn word_long(&mut self, w: &str) -> (u32, u32) {
        if let Some(&v) = self.words.get(w) {
            return v;
        }
        let v = self.new_word(w);
        self.words.insert(w.into(), v);
        v
    }

    /// The next word id (clearing the word caches first when they are full) and the word's
    /// bucket.
    fn new_word(&mut self, w: &str) -> (u32, u32) {
        if self.next_word as usize >= self.cache_limit {
            // Word ids are about to be reused: bigram and word entries keyed by or holding old
            // ids go too.
            self.words.clear();
            self.inline.clear();
            self.bigrams.clear();
            self.short.clear();
            self.medium.clear();
            self.next_word = 0;
            self.epoch += 1;
        }
        let v = (self.next_word, self.hash_key(w));
        self.next_word += 1;
        v
    }

    /// Set `self.key` to the words of `window` joined by one space.
    fn join(&mut self, window: &[(u32, u32)]) {
        join_into(&mut self.key, &self.lower, window);
    }

    /// The number of words of `text` (what [`Featurizer::for_each_bucket`] returns), without
    /// hashing anything.
    pub fn count_words(&mut self, text: &str) -> u64 {
        py_lower_into(text, &mut self.lower);
        self.spans.clear();
        wordpunct_spans(&self.lower, &mut self.spans);
        self.spans.len() as u64
    }

    /// Call `f` with the bucket of every unigram, then every bigram, ... of `text`, in the
    /// reference's order. Returns the number of words.
    pub fn for_each_bucket(&mut self, text: &str, mut f: impl FnMut(u32)) -> u64 {
        self.unigrams_and_bigrams(text);
        for &b in self.unigrams.iter().chain(&self.out) {
            f(b);
        }
        self.longer_ngrams(&mut f);
        self.spans.len() as u64
    }

    /// [`Featurizer::for_each_bucket`] appending each bucket to `buckets` (for at most 2^16
    /// buckets): the unigrams and bigrams are copied over in two runs, not handed over one
    /// call and one capacity check at a time.
    pub fn extend_buckets(&mut self, text: &str, buckets: &mut Vec<u16>) -> u64 {
        debug_assert!(self.buckets <= 1 << 16);
        self.unigrams_and_bigrams(text);
        buckets.extend(self.unigrams.iter().chain(&self.out).map(|&b| b as u16));
        self.longer_ngrams(&mut |b| buckets.push(b as u16));
        self.spans.len() as u64
    }

    /// Lowercase and split `text` (its words' spans in `self.spans`, the lowercase text in
    /// `self.lower`), and set `self.unigrams` to its words' buckets and `self.out` to its
    /// bigrams' (empty below 2-grams).
    fn unigrams_and_bigrams(&mut self, text: &str) {
        py_lower_into(text, &mut self.lower);
        self.spans.clear();
        wordpunct_spans(&self.lower, &mut self.spans);
        let spans = std::mem::take(&mut self.spans);
        let lower = std::mem::take(&mut self.lower);
        // Written by index into vectors of the text's length (pushing reloads and checks each
        // vector's length and capacity at every word).
        let n = spans.len();
        let mut ids = std::mem::take(&mut self.ids);
        let mut unigrams = std::mem::take(&mut self.unigrams);
        self.slow.clear();
        for v in [&mut ids, &mut unigrams] {
            v.clear();
            v.resize(n, 0);
        }
        let epoch = self.epoch;
        for (j, (&(a, b), (id, bucket))) in spans.iter().zip(ids.iter_mut().zip(unigrams.iter_mut())).enumerate() {
            match self.cached_word(&lower, a as usize, b as usize) {
                Some(v) => (*id, *bucket) = v,
                None => self.slow.push(j as u32),
            }
        }
        // In text order, so that a word seen twice gets its id once (and a cache cleared on
        // the way shows in `epoch`, as it would word by word).
        for i in 0..self.slow.len() {
            let j = self.slow[i] as usize;
            let (a, b) = spans[j];
            (ids[j], unigrams[j]) = self.missed_word(&lower, a as usize, b as usize);
        }
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        if self.ngrams >= 2 && n >= 2 {
            // If the word cache was cleared while this text's words were looked up, its ids
            // mix two epochs: hash its bigrams without the cache.
            let cacheable = self.epoch == epoch;
            // Each bigram's key (its two word ids), computed once for the prefetch and the lookup.
            let mut keys = std::mem::take(&mut self.keys);
            keys.clear();
            keys.extend(ids.windows(2).map(|w| (u64::from(w[0]) << 32) | u64::from(w[1])));
            // SHA-256 misses wait in `misses` and are hashed four at a time: `out` holds each
            // bigram's bucket, or PENDING and the miss's number in `misses.done`.
            let batched = self.hash == NgramHash::Sha256 && self.buckets <= PENDING;
            out.resize(n - 1, 0);
            self.misses.done.clear();
            let bytes = lower.as_bytes();
            let mut pending = false;
            for (i, (pair, (&key, b))) in spans.windows(2).zip(keys.iter().zip(out.iter_mut())).enumerate() {
                // The cache's slots are random accesses to 1 MB: ask for the slot a few
                // bigrams ahead now, so that its line is on its way while these are done.
                if let Some(&ahead) = keys.get(i + BIGRAM_PREFETCH) {
                    self.bigrams.prefetch(ahead);
                }
                if let Some(hit) = self.bigrams.get(key).filter(|_| cacheable) {
                    *b = hit;
                    continue;
                }
                let [(a0, a1), (b0, b1)] = [pair[0], pair[1]];
                let (first, second) = (&bytes[a0 as usize..a1 as usize], &bytes[b0 as usize..b1 as usize]);
                if batched && first.len() + 1 + second.len() <= sha256::MAX_ONE_BLOCK {
                    let misses = &mut self.misses;
                    // A miss still waiting (the same bigram again, soon after): its bucket.
                    let waiting = misses.keys[..misses.n].iter().position(|&k| k == key).filter(|_| cacheable);
                    *b = PENDING | (misses.done.len() + waiting.unwrap_or(misses.n)) as u32;
                    pending = true;
                    if waiting.is_none() {
                        misses.push(key, first, second);
                        if misses.n == 4 {
                            misses.hash(&self.digest_mod, cacheable.then_some(&mut self.bigrams));
                        }
                    }
                } else {
                    join_into(&mut self.key, &lower, pair);
                    *b = self.hash_key(&self.key);
                    if cacheable {
                        self.bigrams.insert(key, *b);
                    }
                }
            }
            self.misses.hash(&self.digest_mod, cacheable.then_some(&mut self.bigrams));
            if pending {
                let done = &self.misses.done;
                for b in out.iter_mut().filter(|b| **b & PENDING != 0) {
                    *b = done[(*b & !PENDING) as usize];
                }
            }
            self.keys = keys;
        }
        (self.ids, self.unigrams, self.out) = (ids, unigrams, out);
        (self.spans, self.lower) = (spans, lower);
    }

    /// Call `f` with the bucket of every n-gram of 3 and more words of the text
    /// [`Featurizer::unigrams_and_bigrams`] split, in the reference's order.
    fn longer_ngrams(&mut self, f: &mut impl FnMut(u32)) {
        let spans = std::mem::take(&mut self.spans);
        for n in 3..=self.ngrams {
            for window in spans.windows(n) {
                self.join(window);
                let bucket = match self.longer.get(self.key.as_str()) {
                    Some(&b) => b,
                    None => {
                        let b = self.hash_key(&self.key);
                        if self.longer.len() >= self.cache_limit {
                            self.longer.clear();
                        }
                        self.longer.insert(self.key.as_str().into(), b);
                        b
                    }
                };
                f(bucket);
            }
        }
        self.spans = spans;
    }
}

/// Set `key` to the words of `window` (spans of `text`) joined by one space.
fn join_into(key: &mut String, text: &str, window: &[(u32, u32)]) {
    key.clear();
    for (j, &(a, b)) in window.iter().enumerate() {
        if j > 0 {
            key.push(' ');
        }
        key.push_str(&text[a as usize..b as usize]);
    }
}

/// Marks a bigram whose bucket is a miss's, in [`Featurizer::unigrams_and_bigrams`] (buckets
/// are below it: at most `limits::DSIR_BUCKETS`, 2^27).
const PENDING: u32 = 1 << 31;

/// A text's bigrams that missed the cache, waiting to be hashed four at a time
/// ([`sha256::Four`]), and the buckets of those already hashed, in order.
struct Misses {
    four: sha256::Four,
    blocks: [[u8; 64]; 4],
    keys: [u64; 4],
    n: usize,
    done: Vec<u32>,
}

impl Misses {
    fn new() -> Self {
        Misses { four: sha256::Four::new(), blocks: [[0; 64]; 4], keys: [0; 4], n: 0, done: Vec::new() }
    }

    /// The bigram `first second` waits, its block padded in place (a block built elsewhere
    /// and copied here is read back through the CPU's store buffer, bytes into 16-byte loads:
    /// a stall each time).
    #[inline]
    fn push(&mut self, key: u64, first: &[u8], second: &[u8]) {
        sha256::pad_into(&mut self.blocks[self.n], &[first, b" ", second]);
        self.keys[self.n] = key;
        self.n += 1;
    }

    /// Hash the waiting misses (one alone on its own), append their buckets to `done`, and
    /// put them in `cache`.
    fn hash(&mut self, m: &DigestMod, mut cache: Option<&mut BigramCache>) {
        let n = self.n;
        if n == 0 {
            return;
        }
        let digests = if n == 1 {
            [sha256::digest_one(&self.blocks[0]); 4]
        } else {
            for j in n..4 {
                self.blocks[j] = self.blocks[0];
            }
            self.four.digest(&self.blocks)
        };
        for (d, &key) in digests.iter().zip(&self.keys).take(n) {
            let b = m.reduce(d);
            self.done.push(b);
            if let Some(c) = cache.as_deref_mut() {
                c.insert(key, b);
            }
        }
        self.n = 0;
    }
}

/// A direct-mapped cache of bigram (pair of word ids) -> bucket, small enough to stay in the
/// CPU caches: a miss costs one SHA-256, about what a miss of a large hash table costs in
/// memory latency, and the frequent bigrams stay. A slot is one u64: the two word ids (20 bits
/// each: ids stay below [`MAX_CACHED_NGRAMS`]) and the bucket (24 bits): 128K slots in the
/// 1 MB that 64K slots of (key, bucket) took. With more buckets than 24 bits hold (or a larger
/// word cache), it has no slots and every bigram is hashed.
struct BigramCache {
    /// `ids << 24 | bucket`, or [`BigramCache::EMPTY`].
    slots: Vec<u64>,
}

const BIGRAM_CACHE_BITS: u32 = 17;

impl BigramCache {
    /// No bucket is `2^24 - 1` (there are fewer buckets than that), so no entry is this.
    const EMPTY: u64 = u64::MAX;

    fn new(buckets: u32, max_words: usize) -> Self {
        let fits = buckets < 1 << 24 && max_words <= 1 << 20;
        BigramCache { slots: if fits { vec![Self::EMPTY; 1 << BIGRAM_CACHE_BITS] } else { Vec::new() } }
    }

    /// The key's two 20-bit ids, side by side.
    #[inline]
    fn tag(key: u64) -> u64 {
        ((key >> 32) << 20) | (key & 0xF_FFFF)
    }

    #[inline]
    fn slot(key: u64) -> usize {
        (key.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - BIGRAM_CACHE_BITS)) as usize
    }

    #[inline]
    fn get(&self, key: u64) -> Option<u32> {
        let v = *self.slots.get(Self::slot(key))?;
        (v != Self::EMPTY && v >> 24 == Self::tag(key)).then_some((v & 0xFF_FFFF) as u32)
    }

    #[inline]
    fn insert(&mut self, key: u64, bucket: u32) {
        if let Some(s) = self.slots.get_mut(Self::slot(key)) {
            *s = (Self::tag(key) << 24) | u64::from(bucket);
        }
    }

    /// Start loading `key`'s slot into the CPU caches (a hint: no effect on results).
    #[inline]
    fn prefetch(&self, key: u64) {
        if let Some(s) = self.slots.get(Self::slot(key)) {
            prefetch(s);
        }
    }

    fn clear(&mut self) {
        self.slots.fill(Self::EMPTY);
    }
}

/// How many bigrams ahead [`BigramCache::prefetch`] is asked for.
const BIGRAM_PREFETCH: usize = 16;

/// Ask the CPU to bring `x`'s cache line closer (a hint; a no-op off x86-64).
#[inline(always)]
fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of x86-64; a prefetch reads nothing and cannot fault.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((x as *const T).cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// A direct-mapped cache of the words of 1 to 7 bytes -> (id, bucket), small enough for the L2
/// cache: most of a text's words are short and frequent, and a hit costs one integer compare
/// instead of hashing the string, probing the word table and comparing bytes behind a
/// pointer.
struct ShortWords {
    /// (key, id, bucket); key 0 (no word has length 0) marks an empty slot.
    slots: Vec<(u64, u32, u32)>,
}

const SHORT_WORDS_BITS: u32 = 14;

impl ShortWords {
    fn new() -> Self {
        ShortWords { slots: vec![(0, 0, 0); 1 << SHORT_WORDS_BITS] }
    }

    /// The word's bytes and its length in one integer, for words of 1 to 7 bytes.
    #[inline]
    fn key(w: &[u8]) -> Option<u64> {
        if w.is_empty() || w.len() > 7 {
            return None;
        }
        let mut buf = [0u8; 8];
        buf[..w.len()].copy_from_slice(w);
        buf[7] = w.len() as u8;
        Some(u64::from_le_bytes(buf))
    }

    /// [`ShortWords::key`] of `bytes[a..b]`, from one 8-byte load where the text has 8 bytes
    /// from `a` on (copying the word into a zeroed buffer and loading that back stalls the
    /// load until the byte stores reach it: a quarter of the featurizer's time).
    #[inline]
    fn key_in(bytes: &[u8], a: usize, b: usize) -> Option<u64> {
        let len = b - a;
        if len == 0 || len > 7 {
            return None;
        }
        match bytes.get(a..a + 8) {
            Some(eight) => {
                let v = u64::from_le_bytes(eight.try_into().expect("8 bytes"));
                Some((v & ((1u64 << (8 * len)) - 1)) | ((len as u64) << 56))
            }
            None => Self::key(&bytes[a..b]),
        }
    }

    /// The key's bytes and length as the word table's 16-byte key.
    #[inline]
    fn inline_key(key: u64) -> (u64, u64) {
        (key & ((1 << 56) - 1), key & !((1 << 56) - 1))
    }

    #[inline]
    fn slot(key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SHORT_WORDS_BITS)) as usize
    }

    #[inline]
    fn get(&self, key: u64) -> Option<(u32, u32)> {
        let (k, id, bucket) = self.slots[Self::slot(key)];
        (k == key).then_some((id, bucket))
    }

    #[inline]
    fn insert(&mut self, key: u64, (id, bucket): (u32, u32)) {
        self.slots[Self::slot(key)] = (key, id, bucket);
    }

    fn clear(&mut self) {
        self.slots.fill((0, 0, 0));
    }
}

/// A direct-mapped cache of the words of 8 to 15 bytes -> (id, bucket), as [`ShortWords`]
/// (English has about one such word in six; the word table costs them a string hash, a probe
/// and a byte compare behind a pointer).
struct MediumWords {
    /// (the first 8 bytes, the rest with the length in the top byte, id, bucket); a second
    /// part of 0 (no such word has length 0) marks an empty slot.
    slots: Vec<(u64, u64, u32, u32)>,
}

const MEDIUM_WORDS_BITS: u32 = 14;

impl MediumWords {
    fn new() -> Self {
        MediumWords { slots: vec![(0, 0, 0, 0); 1 << MEDIUM_WORDS_BITS] }
    }

    /// The key of `bytes[a..b]` if it is 8 to 15 bytes long: its first 8 bytes, and the rest
    /// with the length in the top byte; read in place where the text has 16 bytes from `a` on.
    #[inline]
    fn key_in(bytes: &[u8], a: usize, b: usize) -> Option<(u64, u64)> {
        let len = b - a;
        if !(8..=15).contains(&len) {
            return None;
        }
        let mut sixteen = [0u8; 16];
        let rest = match bytes.get(a..a + 16) {
            Some(s) => {
                sixteen.copy_from_slice(s);
                u64::from_le_bytes(sixteen[8..].try_into().expect("8 bytes")) & ((1u64 << (8 * (len - 8))) - 1)
            }
            None => {
                sixteen[..len].copy_from_slice(&bytes[a..b]);
                u64::from_le_bytes(sixteen[8..].try_into().expect("8 bytes"))
            }
        };
        let first = u64::from_le_bytes(sixteen[..8].try_into().expect("8 bytes"));
        Some((first, rest | ((len as u64) << 56)))
    }

    #[inline]
    fn slot(key: (u64, u64)) -> usize {
        slot16(key, MEDIUM_WORDS_BITS)
    }

    #[inline]
    fn get(&self, key: (u64, u64)) -> Option<(u32, u32)> {
        let (f, r, id, bucket) = self.slots[Self::slot(key)];
        (f == key.0 && r == key.1).then_some((id, bucket))
    }

    #[inline]
    fn insert(&mut self, key: (u64, u64), (id, bucket): (u32, u32)) {
        self.slots[Self::slot(key)] = (key.0, key.1, id, bucket);
    }

    fn clear(&mut self) {
        self.slots.fill((0, 0, 0, 0));
    }
}

/// The slot of a 16-byte word key in a table of `2^bits` slots.
#[inline]
fn slot16((first, rest): (u64, u64), bits: u32) -> usize {
    ((first ^ rest.rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
}

/// The words of 1 to 15 bytes -> (id, bucket), an open-addressing table with the words' bytes
/// in its slots (the 16-byte keys of [`MediumWords`]; a short word's bytes and length likewise):
/// a lookup reads one slot and its neighbours, where a map of boxed strings also follows a
/// pointer to compare bytes. Kept at most half full.
struct InlineWords {
    /// (key, id, bucket); a second key part of 0 (no word has length 0) marks an empty slot.
    /// A power of two.
    slots: Vec<(u64, u64, u32, u32)>,
    len: usize,
}

impl InlineWords {
    const FIRST_BITS: u32 = 12;

    fn new() -> Self {
        InlineWords { slots: vec![(0, 0, 0, 0); 1 << Self::FIRST_BITS], len: 0 }
    }

    #[inline]
    fn slot(&self, key: (u64, u64)) -> usize {
        slot16(key, self.slots.len().trailing_zeros())
    }

    #[inline]
    fn get(&self, key: (u64, u64)) -> Option<(u32, u32)> {
        let mask = self.slots.len() - 1;
        let mut i = self.slot(key);
        loop {
            let (f, r, id, bucket) = self.slots[i];
            if r == 0 {
                return None;
            }
            if f == key.0 && r == key.1 {
                return Some((id, bucket));
            }
            i = (i + 1) & mask;
        }
    }

    /// Start loading `key`'s first slot into the CPU caches (a hint: no effect on results).
    #[inline]
    fn prefetch(&self, key: (u64, u64)) {
        prefetch(&self.slots[self.slot(key)]);
    }

    /// Add a key that is not in the table.
    fn insert(&mut self, key: (u64, u64), v: (u32, u32)) {
        if 2 * (self.len + 1) > self.slots.len() {
            let grown = vec![(0, 0, 0, 0); 2 * self.slots.len()];
            let old = std::mem::replace(&mut self.slots, grown);
            for (f, r, id, bucket) in old.into_iter().filter(|s| s.1 != 0) {
                self.put((f, r), (id, bucket));
            }
        }
        self.put(key, v);
        self.len += 1;
    }

    fn put(&mut self, key: (u64, u64), (id, bucket): (u32, u32)) {
        let mask = self.slots.len() - 1;
        let mut i = self.slot(key);
        while self.slots[i].1 != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = (key.0, key.1, id, bucket);
    }

    fn clear(&mut self) {
        *self = InlineWords::new();
    }
}

thread_local! {
    static FEATURIZER: RefCell<Option<Featurizer>> = const { RefCell::new(None) };
}

/// Run `f` with this thread's featurizer for `params`.
pub fn with_featurizer<R>(params: &DsirParams, f: impl FnOnce(&mut Featurizer) -> R) -> R {
    FEATURIZER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if !slot.as_ref().is_some_and(|fz| fz.fits(params)) {
            *slot = Some(Featurizer::new(params));
        }
        f(slot.as_mut().expect("featurizer was just set"))
    })
}

/// Documents that [`DsirModel::score_docs`] sums side by side.
const SCORE_LANES: usize = 8;

/// Bucket counts of a set of documents.
#[derive(Debug, Clone, PartialEq)]
pub struct Counts {
    pub counts: Vec<u64>,
}

impl Counts {
    pub fn new(buckets: u32) -> Self {
        Counts { counts: vec![0; buckets as usize] }
    }

    /// Add the features of `text`; returns the number of n-gram occurrences added.
    pub fn add_text(&mut self, params: &DsirParams, text: &str) -> u64 {
        let mut added = 0u64;
        with_featurizer(params, |fz| {
            fz.for_each_bucket(text, |b| {
                self.counts[b as usize] += 1;
                added += 1;
            })
        });
        added
    }

    /// Count each of `buckets` (bucket ids of n-grams already featurized).
    pub fn add_buckets(&mut self, buckets: &[u16]) {
        let counts = &mut self.counts[..];
        for &b in buckets {
            counts[usize::from(b)] += 1;
        }
    }

    pub fn merge(&mut self, other: &Counts) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// A fitted DSIR estimator: the counts it was fitted on and the log ratio they give.
#[derive(Debug, Clone)]
pub struct DsirModel {
    pub params: DsirParams,
    pub raw: Counts,
    pub target: Counts,
    log_diff: Vec<f64>,
}

/// On-disk form of a model: the integer counts, so a reloaded model is bit-identical.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    format: String,
    version: u32,
    params: DsirParams,
    raw_counts: Vec<u64>,
    target_counts: Vec<u64>,
}

const MODEL_FORMAT: &str = "syllabus-dsir";

impl DsirModel {
    pub fn try_new(params: DsirParams, raw: Counts, target: Counts) -> Result<Self> {
        params.validate()?;
        let n = params.buckets as usize;
        if raw.counts.len() != n || target.counts.len() != n {
            return Err(Error::InvalidArgument(format!("counts must have {n} buckets")));
        }
        let raw_total = raw.total() as f64;
        if raw_total == 0.0 {
            return Err(Error::InvalidArgument("the raw data has no words to fit DSIR on".into()));
        }
        let s = params.target_smoothing;
        let target_total = target.total() as f64 + s * n as f64;
        if target_total == 0.0 {
            return Err(Error::InvalidArgument("the target data has no words to fit DSIR on".into()));
        }
        let log_diff = raw
            .counts
            .iter()
            .zip(&target.counts)
            .map(|(&r, &t)| {
                let p_raw = r as f64 / raw_total;
                let p_target = (t as f64 + s) / target_total;
                (p_target + 1e-8).ln() - (p_raw + 1e-8).ln()
            })
            .collect();
        Ok(DsirModel { params, raw, target, log_diff })
    }

    pub fn log_diff(&self) -> &[f64] {
        &self.log_diff
    }

    /// Log importance weight of a document from its buckets in feature order (the same sum,
    /// in the same order, as [`DsirModel::score_text`]).
    pub fn score_buckets(&self, buckets: &[u16]) -> f64 {
        let mut logw = 0.0;
        for &b in buckets {
            logw += self.log_diff[usize::from(b)];
        }
        logw
    }

    /// [`DsirModel::score_buckets`] of consecutive documents, appended to `out`: document `j`'s
    /// buckets are `buckets[ends[j - 1]..ends[j]]`, the first's from `start`.
    ///
    /// One sum waits on each of its additions in turn, so [`SCORE_LANES`] documents are summed
    /// side by side, each in its own order (the same sums, bit for bit), and a lane whose
    /// document ends takes the next one: documents of very different lengths (a two-line
    /// fortune next to a long source file) keep every lane busy until the last ones.
    pub fn score_docs(&self, buckets: &[u16], start: usize, ends: &[usize], out: &mut Vec<f64>) {
        let ld = &self.log_diff[..];
        let base = out.len();
        out.resize(base + ends.len(), 0.0);
        // Per lane: the rest of its document's buckets, the document, and its sum so far.
        let mut rest: [&[u16]; SCORE_LANES] = [&[]; SCORE_LANES];
        let mut doc = [usize::MAX; SCORE_LANES];
        let mut acc = [0.0f64; SCORE_LANES];
        let mut next = 0;
        loop {
            // Lanes whose document is summed hand it in and take the next non-empty one (an
            // empty document's sum is 0).
            for l in 0..SCORE_LANES {
                if !rest[l].is_empty() {
                    continue;
                }
                if doc[l] != usize::MAX {
                    out[base + doc[l]] = acc[l];
                    doc[l] = usize::MAX;
                }
                while next < ends.len() && doc[l] == usize::MAX {
                    let from = if next == 0 { start } else { ends[next - 1] };
                    if ends[next] > from {
                        (rest[l], doc[l], acc[l]) = (&buckets[from..ends[next]], next, 0.0);
                    }
                    next += 1;
                }
            }
            let step = rest.iter().map(|r| r.len()).min().unwrap_or(0);
            if step == 0 {
                break;
            }
            // Every lane is busy for `step` more buckets: all of them side by side.
            let heads: [&[u16]; SCORE_LANES] = std::array::from_fn(|l| &rest[l][..step]);
            for k in 0..step {
                for l in 0..SCORE_LANES {
                    acc[l] += ld[usize::from(heads[l][k])];
                }
            }
            for r in &mut rest {
                *r = &r[step..];
            }
        }
        // The documents were all taken: the lanes still at work finish one by one, each in
        // its order.
        for l in 0..SCORE_LANES {
            if doc[l] != usize::MAX {
                for &b in rest[l] {
                    acc[l] += ld[usize::from(b)];
                }
                out[base + doc[l]] = acc[l];
            }
        }
    }

    /// Log importance weight and word count of one document.
    pub fn score_text(&self, text: &str) -> (f64, i64) {
        let mut logw = 0.0;
        let words = with_featurizer(&self.params, |fz| fz.for_each_bucket(text, |b| logw += self.log_diff[b as usize]));
        (logw, self.params.n_words(words))
    }

    /// The model file's bytes (JSON with the integer counts).
    pub fn to_bytes(&self) -> Vec<u8> {
        let file = ModelFile {
            format: MODEL_FORMAT.into(),
            version: 1,
            params: self.params.clone(),
            raw_counts: self.raw.counts.clone(),
            target_counts: self.target.counts.clone(),
        };
        serde_json::to_vec(&file).expect("a model serializes")
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        crate::sink::write_atomic(path, &self.to_bytes())
    }

    pub fn load(path: &Path) -> Result<Self> {
        Self::from_bytes(&crate::store::read(path)?, path)
    }

    /// A model from [`DsirModel::to_bytes`]; `path` names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let file: ModelFile = serde_json::from_slice(bytes)
            .map_err(|e| Error::Model { path: path.into(), message: format!("not a syllabus DSIR model: {e}") })?;
        if file.format != MODEL_FORMAT || file.version != 1 {
            return Err(Error::Model {
                path: path.into(),
                message: format!("unsupported model format {} v{}", file.format, file.version),
            });
        }
        DsirModel::try_new(file.params, Counts { counts: file.raw_counts }, Counts { counts: file.target_counts })
            .map_err(|e| Error::Model { path: path.into(), message: e.to_string() })
    }
}

/// [`Scorer`] adding `dsir_logw` and `n_words`; rows under `min_words` words are not eligible.
pub struct DsirScorer {
    model: Arc<DsirModel>,
}

impl DsirScorer {
    pub fn new(model: Arc<DsirModel>) -> Self {
        DsirScorer { model }
    }

    pub fn model(&self) -> &Arc<DsirModel> {
        &self.model
    }
}

impl Scorer for DsirScorer {
    fn name(&self) -> &'static str {
        "dsir"
    }

    fn output_fields(&self) -> Vec<Field> {
        vec![Field::new(COL_DSIR_LOGW, DataType::Float64, false), Field::new(COL_N_WORDS, DataType::Int64, false)]
    }

    fn score(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        let text = text_column(batch)?;
        let mut logw = Vec::with_capacity(text.len());
        let mut words = Vec::with_capacity(text.len());
        for i in 0..text.len() {
            let (w, n) = self.model.score_text(if text.is_valid(i) { text.value(i) } else { "" });
            logw.push(w);
            words.push(n);
        }
        Ok(vec![Arc::new(Float64Array::from(logw)), Arc::new(Int64Array::from(words))])
    }

    fn eligible(&self, columns: &[ArrayRef], i: usize) -> bool {
        let words = columns[1].as_any().downcast_ref::<Int64Array>().expect("n_words is int64");
        words.value(i) >= self.model.params.min_words as i64
    }

    fn eligibility(&self) -> String {
        format!("rows with at least {} words", self.model.params.min_words)
    }

    fn eligible_sql(&self) -> Option<(String, Option<Arc<dyn Scorer>>)> {
        // Counting words needs no hashing: the cluster counts eligible rows with that alone.
        let words = DsirWordsScorer { params: self.model.params.clone() };
        Some((format!("s['{COL_N_WORDS}'] >= {}", self.model.params.min_words), Some(Arc::new(words))))
    }

    fn state(&self) -> Result<Vec<u8>> {
        Ok(self.model.to_bytes())
    }
}

/// DSIR's word count alone (`n_words`): tokenization without hashing, for counting the rows
/// that may be selected.
pub struct DsirWordsScorer {
    pub params: DsirParams,
}

impl Scorer for DsirWordsScorer {
    fn name(&self) -> &'static str {
        "dsir_words"
    }

    fn output_fields(&self) -> Vec<Field> {
        vec![Field::new(COL_N_WORDS, DataType::Int64, false)]
    }

    fn score(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        let text = text_column(batch)?;
        let p = &self.params;
        let words: Vec<i64> = with_featurizer(p, |fz| {
            (0..text.len())
                .map(|i| p.n_words(fz.count_words(if text.is_valid(i) { text.value(i) } else { "" })))
                .collect()
        });
        Ok(vec![Arc::new(Int64Array::from(words))])
    }

    fn state(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(&self.params).map_err(|e| Error::InvalidArgument(format!("encoding DSIR settings: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_buckets() {
        // METHODS.md oracle: "alice" -> 6720, "alice went" -> 114 with 10000 buckets.
        assert_eq!(sha256_bucket(b"alice", 10_000), 6720);
        assert_eq!(sha256_bucket(b"alice went", 10_000), 114);
    }

    proptest::proptest! {
        #[test]
        fn bucket_is_the_digest_mod_buckets(key in ".{0,40}", buckets in 1u32..=u32::MAX) {
            // Byte-at-a-time long division of the 256-bit digest, the definition.
            let digest = Sha256::digest(key.as_bytes());
            let want = digest.iter().fold(0u128, |r, &b| ((r << 8) | u128::from(b)) % u128::from(buckets));
            proptest::prop_assert_eq!(u128::from(sha256_bucket(key.as_bytes(), buckets)), want);
        }

        #[test]
        fn digest_mod_is_mod(limbs in proptest::array::uniform8(proptest::num::u32::ANY), m in proptest::prop_oneof![1u32..=16, 1u32..=u32::MAX, (u32::MAX - 16)..=u32::MAX]) {
            let want = limbs.iter().fold(0u128, |r, &l| ((r << 32) | u128::from(l)) % u128::from(m));
            proptest::prop_assert_eq!(u128::from(DigestMod::new(m).reduce(&limbs)), want);
        }

        /// Documents side by side, each summed in its own order: the same bits as one at a
        /// time, whatever the documents' lengths (empty ones too) and however many there are
        /// for the lanes.
        #[test]
        fn score_docs_is_score_buckets(docs in proptest::collection::vec(proptest::collection::vec(0u16..16, 0..40), 0..30), start in 0usize..3) {
            let p = DsirParams { buckets: 16, ..DsirParams::default() };
            let raw = Counts { counts: (1..=16).collect() };
            let target = Counts { counts: (1..=16).rev().map(|c| c * 3 % 7).collect() };
            let m = DsirModel::try_new(p, raw, target).unwrap();
            let mut buckets = vec![0u16; start];
            let mut ends = Vec::new();
            for d in &docs {
                buckets.extend_from_slice(d);
                ends.push(buckets.len());
            }
            // Appended after what `got` holds.
            let mut got = vec![-1.5, 2.25];
            m.score_docs(&buckets, start, &ends, &mut got);
            let want: Vec<u64> = [-1.5, 2.25].iter().map(|x: &f64| x.to_bits()).chain(docs.iter().map(|d| m.score_buckets(d).to_bits())).collect();
            proptest::prop_assert_eq!(got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), want);
        }

        #[test]
        fn fast_mod_is_mod(x in proptest::num::u64::ANY, m in 1u32..=u32::MAX) {
            proptest::prop_assert_eq!(FastMod::new(m).reduce(x), x % u64::from(m));
        }
    }

    #[test]
    fn n_words_matches_reference_formula() {
        let p = DsirParams::default();
        for w in 0..50 {
            assert_eq!(p.n_words(w), w as i64);
        }
        let p3 = DsirParams { ngrams: 3, ..DsirParams::default() };
        // (0 + 3) // 3 = 1: the reference's formula gives 1 for an empty document with n = 3.
        assert_eq!(p3.n_words(0), 1);
        assert_eq!(p3.n_words(10), 10);
    }

    fn counts_of(params: &DsirParams, docs: &[&str]) -> Counts {
        let mut c = Counts::new(params.buckets);
        for d in docs {
            c.add_text(params, d);
        }
        c
    }

    #[test]
    fn counting_kept_buckets_counts_what_counting_text_counts() {
        let p = DsirParams { buckets: 97, ..DsirParams::default() };
        let docs = ["the cat sat on the mat, the cat", "", "a dog ran; a dog ran!", "x"];
        let mut kept = Vec::new();
        with_featurizer(&p, |fz| {
            for d in docs {
                fz.for_each_bucket(d, |b| kept.push(b as u16));
            }
        });
        let mut c = Counts::new(p.buckets);
        c.add_buckets(&kept);
        assert_eq!(c.counts, counts_of(&p, &docs).counts);
        // 9 + 8, 0, 8 + 7 and 1 uni- and bigrams.
        assert_eq!(c.total(), 33);
    }

    #[test]
    fn identical_distributions_give_zero_weights() {
        let p = DsirParams::default();
        let docs = ["the cat sat on the mat", "a dog ran"];
        let m = DsirModel::try_new(p.clone(), counts_of(&p, &docs), counts_of(&p, &docs)).unwrap();
        for d in docs {
            assert!(m.score_text(d).0.abs() < 1e-12);
        }
    }

    #[test]
    fn absent_ngrams_get_very_negative_weights() {
        let p = DsirParams::default();
        let raw = counts_of(&p, &["alpha beta gamma", "zeta eta theta"]);
        let target = counts_of(&p, &["alpha beta gamma"]);
        let m = DsirModel::try_new(p, raw, target).unwrap();
        let (w_absent, _) = m.score_text("zeta eta theta");
        let (w_target, _) = m.score_text("alpha beta gamma");
        assert!(w_absent < -50.0, "{w_absent}");
        assert!(w_target > 0.0);
    }

    #[test]
    fn features_are_words_then_bigrams() {
        let p = DsirParams::default();
        let mut seen = Vec::new();
        let words = with_featurizer(&p, |fz| fz.for_each_bucket("Alice went", |b| seen.push(b)));
        assert_eq!(words, 2);
        assert_eq!(seen, vec![6720, sha256_bucket(b"went", 10_000), 114]);
    }

    /// Buckets computed without any cache, straight from the definition.
    fn direct_buckets(params: &DsirParams, text: &str) -> Vec<u32> {
        let words = crate::text::wordpunct::wordpunct_tokens(text);
        let mut out: Vec<u32> = words.iter().map(|w| sha256_bucket(w.as_bytes(), params.buckets)).collect();
        for n in 2..=params.ngrams {
            for w in words.windows(n) {
                out.push(sha256_bucket(w.join(" ").as_bytes(), params.buckets));
            }
        }
        out
    }

    proptest::proptest! {
        /// Caches never change a bucket, however small they are and however often they are
        /// cleared mid-document; words of up to 7 bytes (the short-word cache's), 8 to 15
        /// (the medium-word cache's; both in front of the inline word table) and longer (the
        /// map of boxed words), bigrams missed again while waiting to be
        /// hashed (few letters: many repeats), bigrams too long for one SHA-256 block (over 55
        /// bytes: two words of 27 to 30 letters), and bucket counts or word caches too large
        /// for the bigram cache's packed slots.
        #[test]
        fn caches_are_transparent(
            docs in proptest::collection::vec("[a-e]{1,2}( [a-e]{1,2}| [a-e]{6,9}| [a-c]{10,17}| [a-e]{27,30}| ,){0,16}", 1..8),
            limit in proptest::prop_oneof![1usize..6, proptest::strategy::Just(1 << 20), proptest::strategy::Just(1 << 21)],
            ngrams in 1usize..4,
            buckets in proptest::prop_oneof![proptest::strategy::Just(10_000u32), 1u32..50, proptest::strategy::Just(1 << 24)],
        ) {
            let params = DsirParams { ngrams, buckets, ..DsirParams::default() };
            let mut fz = Featurizer::with_cache_limit(&params, limit);
            // The fit's path (`extend_buckets`, for at most 2^16 buckets) on a featurizer of
            // its own, appending after what is there.
            let mut kept = (buckets <= 1 << 16).then(|| (Featurizer::with_cache_limit(&params, limit), vec![7u16]));
            for d in &docs {
                let mut got = Vec::new();
                let words = fz.for_each_bucket(d, |b| got.push(b));
                let want = direct_buckets(&params, d);
                proptest::prop_assert_eq!(words as usize, crate::text::wordpunct::wordpunct_tokens(d).len());
                if let Some((fz16, buckets)) = kept.as_mut() {
                    let start = buckets.len();
                    proptest::prop_assert_eq!(fz16.extend_buckets(d, buckets), words);
                    let want16: Vec<u16> = want.iter().map(|&b| b as u16).collect();
                    proptest::prop_assert_eq!(&buckets[start..], &want16[..]);
                    proptest::prop_assert_eq!(buckets[0], 7);
                }
                proptest::prop_assert_eq!(got, want);
            }
        }
    }

    proptest::proptest! {
        /// The short-word key read in place is the key of the word copied out, wherever the
        /// word sits in the text (near its end too, where fewer than 8 bytes follow).
        #[test]
        fn short_word_key_in_place(text in proptest::collection::vec(proptest::num::u8::ANY, 1..24), a in 0usize..24, len in 0usize..10) {
            let a = a % text.len();
            let b = (a + len).min(text.len());
            proptest::prop_assert_eq!(ShortWords::key_in(&text, a, b), ShortWords::key(&text[a..b]));
        }

        /// Likewise the medium-word key: read in place (16 bytes from the word on) or copied
        /// out (a text with nothing after the word), the same key.
        #[test]
        fn medium_word_key_in_place(text in proptest::collection::vec(proptest::num::u8::ANY, 1..40), a in 0usize..40, len in 0usize..18) {
            let a = a % text.len();
            let b = (a + len).min(text.len());
            let alone = text[a..b].to_vec();
            proptest::prop_assert_eq!(MediumWords::key_in(&text, a, b), MediumWords::key_in(&alone, 0, alone.len()));
            proptest::prop_assert_eq!(MediumWords::key_in(&text, a, b).is_some(), (8..=15).contains(&(b - a)));
        }
    }

    /// The inline word table finds every key it was given across its growth (from 4096 slots
    /// to 32768 here) and no other, and starts over when cleared.
    #[test]
    fn inline_words_grow_and_find_their_keys() {
        let key = |i: u64| (i.wrapping_mul(0x2545_F491_4F6C_DD1D), (i % 15 + 1) << 56);
        let mut t = InlineWords::new();
        for i in 0..10_000u64 {
            assert_eq!(t.get(key(i)), None);
            t.insert(key(i), (i as u32, (i * 7) as u32));
        }
        assert_eq!(t.slots.len(), 1 << 15);
        for i in 0..10_000u64 {
            assert_eq!(t.get(key(i)), Some((i as u32, (i * 7) as u32)));
        }
        assert_eq!(t.get(key(10_000)), None);
        t.clear();
        assert_eq!((t.get(key(1)), t.len), (None, 0));
    }

    #[test]
    fn empty_raw_is_an_error() {
        let p = DsirParams::default();
        assert!(DsirModel::try_new(p.clone(), Counts::new(p.buckets), counts_of(&p, &["x"])).is_err());
    }
}
