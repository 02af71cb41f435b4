//! Benchmark contamination: which documents hold word n-grams of benchmark items
//! (`../shared/METHODS.md`, "Decontamination"; GPT-3's and Llama's 13-gram rule).
//!
//! Words are Python's `re.findall(r"\w+", text.lower())` (CPython's classes and lowercase,
//! [`crate::text::wordpunct`]). An item of at least `n` words contributes its n-grams; an item
//! of `min_item_words..n` words contributes its whole word sequence as one gram; shorter
//! items are skipped and counted. For a document, a match starts at position i when some gram
//! equals the document's words from i on; per row:
//! - `contam_frac`: `contam_ngrams / max(1, words - n + 1)`, first because it ranks
//!   (`select contamination` keeps the most contaminated rows);
//! - `contam_ngrams`: the distinct positions where a match starts;
//! - `contam_item`: the id of the item with the most distinct matching positions (ties: the
//!   earlier item in benchmark order), null when nothing matches.
//!
//! Exact: grams are found by a 64-bit hash of their words, and every hit is confirmed by
//! comparing the words themselves, so a hash collision can cost time, never a wrong count.
//!
//! Memory: the benchmark's words and one hash-table entry per distinct gram (a 1e6-word
//! benchmark: about 1e6 entries, tens of MB), whatever the lake's size; per document, its
//! lowercased text and word spans.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::batch::{text_column, RecordBatch};
use crate::error::{Error, Result};
use crate::score::Scorer;
use crate::text::wordpunct::{py_lower_into, py_word_spans};

pub const COL_CONTAM_FRAC: &str = "contam_frac";
pub const COL_CONTAM_NGRAMS: &str = "contam_ngrams";
pub const COL_CONTAM_ITEM: &str = "contam_item";

/// The gram rule.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct ContamParams {
    /// Gram length for items of at least n words (13).
    pub n: usize,
    /// Items of fewer words than n but at least this many match as a whole (8); shorter ones
    /// are skipped.
    pub min_item_words: usize,
}

impl Default for ContamParams {
    fn default() -> Self {
        ContamParams { n: 13, min_item_words: 8 }
    }
}

impl ContamParams {
    pub fn validate(&self) -> Result<()> {
        if self.n == 0 || self.n > 1000 {
            return Err(Error::InvalidArgument(format!("--ngram {}: must be between 1 and 1000", self.n)));
        }
        if self.min_item_words == 0 || self.min_item_words > self.n {
            return Err(Error::InvalidArgument(format!(
                "--min-item-words {}: must be between 1 and --ngram ({})",
                self.min_item_words, self.n
            )));
        }
        Ok(())
    }
}

/// What travels to an executor: the rule and the items.
#[derive(Serialize, Deserialize)]
pub struct BenchmarkState {
    pub params: ContamParams,
    pub ids: Vec<String>,
    pub texts: Vec<String>,
}

/// One distinct gram: where its words are, and every item that holds it.
struct Gram {
    item: u32,
    start: u32,
    items: Vec<u32>,
}

/// A benchmark's items, indexed by gram.
pub struct Benchmark {
    params: ContamParams,
    ids: Vec<String>,
    texts: Vec<String>,
    /// Each item's words, lowercased.
    words: Vec<Vec<Box<str>>>,
    /// (gram length, hash of its words) -> the distinct grams with that key.
    grams: FxHashMap<(u32, u64), Vec<Gram>>,
    /// The gram lengths present, ascending.
    lengths: Vec<usize>,
    /// BASE^0 ..= BASE^n, for [`span_hash`].
    pow: Vec<u64>,
    /// Items too short to match (fewer than `min_item_words` words).
    pub skipped: usize,
}

const BASE: u64 = 0x9E37_79B9_7F4A_7C15;

fn word_hash(w: &str) -> u64 {
    // Never 0, so that a gram's hash depends on every word.
    xxhash_rust::xxh3::xxh3_64(w.as_bytes()) | 1
}

/// The hash of words `i..i + len` from prefix sums `p` (`p[k + 1] = p[k] * BASE + h_k`).
fn span_hash(p: &[u64], pow: &[u64], i: usize, len: usize) -> u64 {
    p[i + len].wrapping_sub(p[i].wrapping_mul(pow[len]))
}

fn prefix(hashes: impl Iterator<Item = u64>, out: &mut Vec<u64>) {
    out.clear();
    out.push(0);
    let mut acc = 0u64;
    for h in hashes {
        acc = acc.wrapping_mul(BASE).wrapping_add(h);
        out.push(acc);
    }
}

impl Benchmark {
    /// Index `items` (id, text) in benchmark order. Fails when no item is long enough.
    pub fn new(params: ContamParams, ids: Vec<String>, texts: Vec<String>) -> Result<Benchmark> {
        params.validate()?;
        if texts.is_empty() {
            return Err(Error::InvalidArgument("the benchmark (--against) has no items".into()));
        }
        let pow: Vec<u64> =
            std::iter::successors(Some(1u64), |x| Some(x.wrapping_mul(BASE))).take(params.n + 1).collect();
        let mut b = Benchmark {
            params,
            ids,
            texts: Vec::new(),
            words: Vec::with_capacity(texts.len()),
            grams: FxHashMap::default(),
            lengths: Vec::new(),
            pow,
            skipped: 0,
        };
        let (mut lower, mut spans, mut p) = (String::new(), Vec::new(), Vec::new());
        for (item, text) in texts.iter().enumerate() {
            py_lower_into(text, &mut lower);
            py_word_spans(&lower, &mut spans);
            let words: Vec<Box<str>> = spans.iter().map(|&(a, z)| lower[a as usize..z as usize].into()).collect();
            let len = if words.len() >= params.n {
                params.n
            } else if words.len() >= params.min_item_words {
                words.len()
            } else {
                b.skipped += 1;
                b.words.push(Vec::new());
                continue;
            };
            prefix(words.iter().map(|w| word_hash(w)), &mut p);
            for start in 0..=words.len() - len {
                let key = (len as u32, span_hash(&p, &b.pow, start, len));
                let bucket = b.grams.entry(key).or_default();
                let same = bucket.iter_mut().find(|g| {
                    b.words.get(g.item as usize).map_or(&words, |w| w)[g.start as usize..][..len]
                        == words[start..][..len]
                });
                match same {
                    Some(g) => {
                        if g.items.last() != Some(&(item as u32)) {
                            g.items.push(item as u32);
                        }
                    }
                    None => bucket.push(Gram { item: item as u32, start: start as u32, items: vec![item as u32] }),
                }
            }
            if !b.lengths.contains(&len) {
                b.lengths.push(len);
            }
            b.words.push(words);
        }
        if b.lengths.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "no item of the benchmark (--against) has {} words or more: all {} were skipped (--min-item-words)",
                params.min_item_words, b.skipped
            )));
        }
        b.lengths.sort_unstable();
        b.texts = texts;
        Ok(b)
    }

    pub fn params(&self) -> ContamParams {
        self.params
    }

    /// Items in the benchmark.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn state(&self) -> BenchmarkState {
        BenchmarkState { params: self.params, ids: self.ids.clone(), texts: self.texts.clone() }
    }

    /// One document's (contam_ngrams, contam_frac, index of contam_item).
    pub fn score_text(&self, text: &str, buf: &mut Buffers) -> (i64, f64, Option<u32>) {
        py_lower_into(text, &mut buf.lower);
        py_word_spans(&buf.lower, &mut buf.spans);
        let (lower, spans) = (&buf.lower, &buf.spans);
        let word = |k: usize| &lower[spans[k].0 as usize..spans[k].1 as usize];
        let n_words = spans.len();
        prefix((0..n_words).map(|k| word_hash(word(k))), &mut buf.prefix);
        buf.counts.clear();
        let mut positions = 0i64;
        for i in 0..n_words {
            buf.here.clear();
            for &len in &self.lengths {
                if i + len > n_words {
                    break;
                }
                let Some(bucket) = self.grams.get(&(len as u32, span_hash(&buf.prefix, &self.pow, i, len))) else {
                    continue;
                };
                for g in bucket {
                    let item = &self.words[g.item as usize][g.start as usize..][..len];
                    if item.iter().enumerate().all(|(k, w)| **w == *word(i + k)) {
                        buf.here.extend_from_slice(&g.items);
                    }
                }
            }
            if buf.here.is_empty() {
                continue;
            }
            positions += 1;
            buf.here.sort_unstable();
            buf.here.dedup();
            for &item in &buf.here {
                *buf.counts.entry(item).or_default() += 1;
            }
        }
        let best = buf.counts.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).map(|(&item, _)| item);
        let denominator = (n_words as i64 - self.params.n as i64 + 1).max(1);
        (positions, positions as f64 / denominator as f64, best)
    }
}

/// Per-thread buffers of [`Benchmark::score_text`].
#[derive(Default)]
pub struct Buffers {
    lower: String,
    spans: Vec<(u32, u32)>,
    prefix: Vec<u64>,
    here: Vec<u32>,
    counts: FxHashMap<u32, u32>,
}

/// The scorer of `score contamination`.
pub struct ContaminationScorer {
    bench: Arc<Benchmark>,
}

impl ContaminationScorer {
    pub fn new(bench: Arc<Benchmark>) -> Self {
        ContaminationScorer { bench }
    }
}

impl Scorer for ContaminationScorer {
    fn name(&self) -> &'static str {
        "contamination"
    }

    fn output_fields(&self) -> Vec<Field> {
        vec![
            Field::new(COL_CONTAM_FRAC, DataType::Float64, false),
            Field::new(COL_CONTAM_NGRAMS, DataType::Int64, false),
            Field::new(COL_CONTAM_ITEM, DataType::Utf8, true),
        ]
    }

    fn score(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        use rayon::prelude::*;
        let text = text_column(batch)?;
        let rows: Vec<(i64, f64, Option<u32>)> = (0..text.len())
            .into_par_iter()
            .map_init(Buffers::default, |buf, i| {
                if text.is_null(i) {
                    (0, 0.0, None)
                } else {
                    self.bench.score_text(text.value(i), buf)
                }
            })
            .collect();
        let frac: Float64Array = rows.iter().map(|r| Some(r.1)).collect();
        let ngrams: Int64Array = rows.iter().map(|r| Some(r.0)).collect();
        let item: StringArray = rows.iter().map(|r| r.2.map(|i| self.bench.ids[i as usize].as_str())).collect();
        Ok(vec![Arc::new(frac), Arc::new(ngrams), Arc::new(item)])
    }

    fn eligible(&self, columns: &[ArrayRef], i: usize) -> bool {
        columns[1].as_any().downcast_ref::<Int64Array>().is_some_and(|a| a.value(i) > 0)
    }

    fn eligibility(&self) -> String {
        "contaminated rows (a match with the benchmark)".into()
    }

    fn eligible_sql(&self) -> Option<(String, Option<Arc<dyn Scorer>>)> {
        Some((format!("s['{COL_CONTAM_NGRAMS}'] > 0"), None))
    }

    fn state(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(&self.bench.state())
            .map_err(|e| Error::InvalidArgument(format!("encoding a benchmark: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bench(items: &[&str], n: usize, min: usize) -> Benchmark {
        let ids = (0..items.len()).map(|i| format!("q{i}")).collect();
        Benchmark::new(ContamParams { n, min_item_words: min }, ids, items.iter().map(|s| s.to_string()).collect())
            .unwrap()
    }

    #[test]
    fn the_oracle_of_methods_md() {
        // Item "a b c d e f g h" (8 words, n = 13), document "x a b c d e f g h a b c d e f g h".
        let b = bench(&["a b c d e f g h"], 13, 8);
        let (n, frac, item) = b.score_text("x a b c d e f g h a b c d e f g h", &mut Buffers::default());
        assert_eq!((n, item), (2, Some(0)));
        assert!((frac - 2.0 / 5.0).abs() < 1e-12, "{frac}");
    }

    #[test]
    fn long_items_match_by_any_ngram_and_counts_are_distinct_positions() {
        // n = 3: item 0 has the 3-grams (a b c), (b c d); the document matches at 0 and 1 (and 4).
        let b = bench(&["A b, c d!", "zz yy xx ww"], 3, 2);
        let (n, frac, item) = b.score_text("a b c d  q a b c", &mut Buffers::default());
        assert_eq!((n, item), (3, Some(0)));
        assert!((frac - 3.0 / 6.0).abs() < 1e-12);
        // A position matched by grams of two items counts once; the item with more positions wins.
        let b = bench(&["p q r", "p q r s t"], 3, 3);
        let (n, _, item) = b.score_text("p q r s t", &mut Buffers::default());
        assert_eq!((n, item), (3, Some(1)));
        // Ties go to the earlier item.
        let b = bench(&["x y z", "u v w"], 3, 3);
        assert_eq!(b.score_text("u v w x y z", &mut Buffers::default()).2, Some(0));
        // Nothing matches: zeros and no item.
        assert_eq!(b.score_text("nothing here at all", &mut Buffers::default()), (0, 0.0, None));
        assert_eq!(b.score_text("", &mut Buffers::default()), (0, 0.0, None));
    }

    #[test]
    fn words_are_python_re_w_over_str_lower() {
        let b = bench(&["Straße ÉCOLE naïve_1 ΟΔΟΣ"], 4, 4);
        // Punctuation and case do not matter; `_` and digits are word characters; Greek final
        // sigma lowercases as Python does.
        let (n, _, _) = b.score_text("— straße, école: NAÏVE_1 οδος!", &mut Buffers::default());
        assert_eq!(n, 1);
        assert_eq!(b.score_text("strasse ecole naive_1 οδος", &mut Buffers::default()).0, 0);
    }

    #[test]
    fn short_items_are_skipped_and_counted_and_a_useless_benchmark_is_refused() {
        let b = bench(&["one two", "a b c d e f g h i"], 13, 8);
        assert_eq!(b.skipped, 1);
        assert_eq!(b.score_text("one two", &mut Buffers::default()).0, 0);
        let e = Benchmark::new(ContamParams::default(), vec!["a".into()], vec!["too short".into()]).err().unwrap();
        assert!(e.to_string().contains("no item of the benchmark"), "{e}");
        let e = Benchmark::new(ContamParams::default(), vec![], vec![]).err().unwrap();
        assert!(e.to_string().contains("has no items"), "{e}");
        let e = Benchmark::new(ContamParams { n: 5, min_item_words: 8 }, vec![], vec![]).err().unwrap();
        assert!(e.to_string().contains("--min-item-words"), "{e}");
    }

    proptest::proptest! {
        /// Against a direct scan: every position, every gram, compared word by word.
        #[test]
        fn equals_a_direct_scan(
            items in proptest::collection::vec(proptest::collection::vec(0u8..4, 0..9), 1..5),
            doc in proptest::collection::vec(0u8..4, 0..40),
        ) {
            let (n, min) = (4, 2);
            let word = |w: &u8| ["a", "b", "c", "d"][*w as usize];
            let texts: Vec<String> = items.iter().map(|i| i.iter().map(word).collect::<Vec<_>>().join(" ")).collect();
            let ids: Vec<String> = (0..texts.len()).map(|i| i.to_string()).collect();
            let Ok(b) = Benchmark::new(ContamParams { n, min_item_words: min }, ids, texts) else {
                proptest::prop_assume!(false);
                unreachable!()
            };
            let d: Vec<&str> = doc.iter().map(word).collect();
            let mut per_item = vec![0i64; items.len()];
            let mut positions = 0;
            for i in 0..d.len() {
                let mut hit = false;
                for (j, it) in items.iter().enumerate() {
                    let w: Vec<&str> = it.iter().map(word).collect();
                    let len = if w.len() >= n { n } else if w.len() >= min { w.len() } else { continue };
                    let m = i + len <= d.len() && (0..=w.len() - len).any(|s| w[s..s + len] == d[i..i + len]);
                    if m {
                        per_item[j] += 1;
                        hit = true;
                    }
                }
                positions += hit as i64;
            }
            let best = per_item.iter().enumerate().filter(|p| *p.1 > 0).max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0))).map(|p| p.0 as u32);
            let got = b.score_text(&d.join(" "), &mut Buffers::default());
            proptest::prop_assert_eq!((got.0, got.2), (positions, best));
        }
    }
}
