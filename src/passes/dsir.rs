//! The DSIR job: fit on a target set and a raw lake, then score (and select) with
//! [`CachedDsir`] through the shared passes of [`super::scored`].
//!
//! Passes over the raw lake: (1) count raw n-grams (stops early per file under the fit
//! budget; skipped with a saved model), (2) score every row, (3) for `select`, read the lake
//! again and write the chosen rows with all their columns. Pass 2 is the one that reads every
//! row: its counts are the run's counts and it records the rejects (unless pass 1 kept the
//! whole lake, below: then no record was rejected and pass 1's counts are the run's).
//!
//! Feature cache: pass 1 keeps each document's bucket ids (2 bytes per n-gram) for a prefix of
//! the lake, up to `feature_cache_bytes`, so pass 2 scores those documents with a sum over
//! their buckets instead of tokenizing and hashing them again; the sums are the same, in the
//! same order, so the scores are bit-identical with or without it. When the prefix is the
//! whole lake and pass 1 rejected no record, it also keeps the rows' ids and locations and its
//! counts ([`KeptLake`]): pass 2 then does not read the lake at all.
//!
//! Memory: the model, a chunk of batches, the feature cache (at most `feature_cache_bytes`),
//! and for `select` the k chosen rows (a heap of k entries); nothing grows with the lake.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array};
use arrow::datatypes::Field;

use super::work::{rejects_at, FitCheckpoint, Prologue, Work};
use crate::batch::{text_column, RecordBatch};
use crate::error::Result;
use crate::par::{for_each_ordered, Flow};
use crate::progress::Progress;
use crate::score::dsir::{Counts, DsirModel, DsirParams, DsirScorer, FitBudget};
use crate::score::Scorer;
use crate::source::{Extras, FileStats, InputFile, KeptLake, LakeReader, ReadOptions, RejectWriter, SourceBatch};

/// Inputs and settings of a DSIR run.
pub struct DsirJob<'a> {
    pub raw: &'a [InputFile],
    pub target: &'a [InputFile],
    pub read: &'a ReadOptions,
    pub params: DsirParams,
    pub budget: FitBudget,
    /// Upper bound of the feature cache in bytes (0: no cache).
    pub feature_cache_bytes: usize,
    pub progress: &'a Progress,
}

/// Default size bound of the feature cache.
pub const DEFAULT_FEATURE_CACHE_MB: usize = 256;

/// Bucket ids of the documents of a prefix of the lake, in feature order, kept as the batches
/// pass 1 made them (appending a batch copies nothing; one growing vector would copy and
/// re-fault the whole cache at every doubling).
#[derive(Debug, Default)]
pub struct FeatureCache {
    /// The recorded batches, in row order, each with the row number of its first document
    /// (emptied by [`FeatureCache::release`]).
    chunks: std::sync::RwLock<Vec<(u64, BatchFeatures)>>,
    rows: u64,
    bytes: usize,
    limit_bytes: usize,
    closed: bool,
    /// The rows' ids and locations; with the reader's counts once the whole lake is cached.
    lake: KeptLake,
    complete: bool,
    /// Set by [`FeatureCache::release`]: the kept lake is no longer a whole scoring pass.
    released: std::sync::atomic::AtomicBool,
}

/// The features of one batch, recorded in pass 1.
#[derive(Debug, Default)]
struct BatchFeatures {
    buckets: Vec<u16>,
    /// Per document: end offset into `buckets`, and word count.
    ends: Vec<usize>,
    words: Vec<i64>,
}

impl BatchFeatures {
    fn bytes(&self) -> usize {
        self.buckets.len() * 2 + self.ends.len() * 16
    }
}

impl FeatureCache {
    fn new(limit_bytes: usize, buckets: u32) -> Self {
        // Bucket ids are kept as u16; more buckets than that: no cache.
        let usable = buckets <= u32::from(u16::MAX) + 1 && limit_bytes > 0;
        FeatureCache { limit_bytes, closed: !usable, ..Default::default() }
    }

    fn recording(&self) -> bool {
        !self.closed
    }

    /// Append the features of batch `b`, if it continues the cached prefix and fits;
    /// otherwise stop caching for good.
    fn push(&mut self, b: &SourceBatch, f: Option<BatchFeatures>) -> Result<()> {
        let first_row = b.first_row;
        let Some(f) = f.filter(|_| !self.closed && first_row == self.rows) else {
            self.close();
            return Ok(());
        };
        let before = self.lake.bytes();
        self.lake.push(b)?;
        let bytes = f.bytes() + self.lake.bytes() - before;
        if self.bytes + bytes > self.limit_bytes {
            self.close();
            return Ok(());
        }
        self.rows += f.words.len() as u64;
        self.bytes += bytes;
        if !f.words.is_empty() {
            self.chunks.get_mut().unwrap_or_else(|e| e.into_inner()).push((first_row, f));
        }
        Ok(())
    }

    fn close(&mut self) {
        self.closed = true;
        self.lake = KeptLake::default();
    }

    /// The reader read the whole lake and every row is cached: with its counts (`stats`), a
    /// scoring pass need not read the lake, unless a record was rejected (the rejects are that
    /// pass's to write).
    fn finish(&mut self, stats: Vec<FileStats>) {
        self.complete = !self.closed && stats.iter().all(|s| s.rejected == 0) && self.lake.finish(stats);
        if !self.complete {
            self.lake = KeptLake::default();
        }
    }

    /// Scores of rows `first_row..first_row + n` if they are all cached.
    fn score(&self, model: &DsirModel, first_row: u64, n: usize) -> Option<(Float64Array, Int64Array)> {
        if first_row + n as u64 > self.rows {
            return None;
        }
        let mut logw = Vec::with_capacity(n);
        let mut words = Vec::with_capacity(n);
        // The chunk holding `first_row`, then on through the following ones (none for no rows:
        // a kept lake's end-of-file batch, which has no text to score otherwise).
        let chunks = self.chunks.read().unwrap_or_else(|e| e.into_inner());
        let mut chunk = match chunks.partition_point(|(first, _)| *first <= first_row).checked_sub(1) {
            Some(c) => c,
            None if n == 0 => return Some((Float64Array::from(logw), Int64Array::from(words))),
            None => return None,
        };
        let mut row = first_row;
        while logw.len() < n {
            let (first, f) = chunks.get(chunk)?;
            let i = usize::try_from(row.checked_sub(*first)?).ok()?;
            if i >= f.ends.len() {
                chunk += 1;
                continue;
            }
            let take = (n - logw.len()).min(f.ends.len() - i);
            let from = if i == 0 { 0 } else { f.ends[i - 1] };
            model.score_docs(&f.buckets, from, &f.ends[i..i + take], &mut logw);
            words.extend_from_slice(&f.words[i..i + take]);
            row += take as u64;
        }
        Some((Float64Array::from(logw), Int64Array::from(words)))
    }

    /// Drop the recorded features: rows are featurized again if scored after this (from the
    /// lake: the kept lake, ids and locations without text, is no longer offered).
    fn release(&self) {
        self.released.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut chunks = self.chunks.write().unwrap_or_else(|e| e.into_inner());
        *chunks = Vec::new();
    }
}

/// A fitted model, the target's per-file counts, and the features pass 1 kept.
pub struct Fitted {
    pub model: DsirModel,
    pub target_stats: Vec<FileStats>,
    pub cache: FeatureCache,
}

/// Bucket counts and per-document feature totals of one batch, and with `record` its
/// features for the cache.
fn batch_counts(
    params: &DsirParams,
    batch: &RecordBatch,
    record: bool,
) -> Result<(Counts, Vec<u64>, Option<BatchFeatures>)> {
    let text = text_column(batch)?;
    let mut counts = Counts::new(params.buckets);
    let mut per_doc = Vec::with_capacity(text.len());
    // Room for the batch's n-grams at once (about 0.4 a byte in prose, uni- and bigrams): a
    // vector grown by doubling copies itself and faults in fresh pages at every step.
    let offsets = text.value_offsets();
    let text_bytes = (offsets[offsets.len() - 1] - offsets[0]) as usize;
    let mut features = record.then(|| BatchFeatures {
        buckets: Vec::with_capacity(text_bytes / 2),
        ends: Vec::with_capacity(text.len()),
        words: Vec::with_capacity(text.len()),
    });
    match features.as_mut() {
        // The buckets are kept: counted after the batch, in one pass over them, rather than
        // one by one while the featurizer waits on its lookups.
        Some(f) => crate::score::dsir::with_featurizer(params, |fz| {
            for t in text.iter() {
                let start = f.buckets.len();
                let words = fz.extend_buckets(t.unwrap_or(""), &mut f.buckets);
                f.ends.push(f.buckets.len());
                f.words.push(params.n_words(words));
                per_doc.push((f.buckets.len() - start) as u64);
            }
            counts.add_buckets(&f.buckets);
        }),
        None => {
            for t in text.iter() {
                per_doc.push(counts.add_text(params, t.unwrap_or("")));
            }
        }
    }
    if let Some(f) = features.as_mut() {
        // In place when most of the room was used (mimalloc keeps a block shrunk by less than half).
        f.buckets.shrink_to_fit();
    }
    Ok((counts, per_doc, features))
}

impl DsirJob<'_> {
    /// Count the target set (whole) and the raw lake (under the fit budget), and fit, keeping
    /// its progress in `work`: a fitted model there is loaded; else the
    /// target's counts (once read) and the raw counts at file boundaries (at most once a
    /// second) are saved, and a resumed fit goes on from the last of them.
    pub fn fit_in(&self, work: Option<&Work>, mut rejects: Option<&mut RejectWriter>) -> Result<Fitted> {
        self.params.validate()?;
        let params = &self.params;
        if let Some(w) = work {
            if let (true, Some(p)) = (w.model_path().exists(), w.prologue()) {
                let m = DsirModel::load(&w.model_path())?;
                let model = DsirModel::try_new(params.clone(), m.raw, m.target)?;
                return Ok(Fitted { model, target_stats: p.target_stats(), cache: FeatureCache::default() });
            }
        }
        let prologue = work
            .and_then(Work::prologue)
            .filter(|p| p.dsir_target.as_ref().is_some_and(|t| t.len() == params.buckets as usize));
        let (target, target_stats) = match prologue {
            Some(p) => (Counts { counts: p.dsir_target.clone().expect("checked") }, p.target_stats()),
            None => {
                let (target, stats) = self.count_target(rejects.as_deref_mut())?;
                if let Some(w) = work {
                    w.save_prologue(&Prologue::new(
                        &stats,
                        rejects_at(rejects.as_deref()),
                        Some(target.counts.clone()),
                    ))?;
                }
                (target, stats)
            }
        };
        let resume = work
            .and_then(Work::fit)
            .filter(|f| f.raw.len() == params.buckets as usize && f.next_file <= self.raw.len());
        let (raw, cache) = self.count_raw(resume, work)?;
        let model = DsirModel::try_new(params.clone(), raw, target)?;
        if let Some(w) = work {
            w.ready()?;
            model.save(&w.model_path())?;
        }
        Ok(Fitted { model, target_stats, cache })
    }

    /// The target set's counts: every row.
    pub fn count_target(&self, rejects: Option<&mut RejectWriter>) -> Result<(Counts, Vec<FileStats>)> {
        let params = &self.params;
        let bar = self.progress.rows("fit: target");
        let mut target = Counts::new(params.buckets);
        let mut reader = LakeReader::new(self.target, self.read, Extras::none(), rejects);
        for_each_ordered(
            &mut reader,
            |b| batch_counts(params, &b.batch, false),
            |b, (c, _, _)| {
                bar.inc(b.batch.num_rows() as u64);
                target.merge(&c);
                Ok(Flow::Continue)
            },
        )?;
        bar.finish_and_clear();
        Ok((target, reader.into_stats()))
    }

    /// The raw lake's counts: per file, stop after the document that takes the file past its
    /// budget. From a checkpoint, the files before it are not read (and nothing is cached:
    /// the cache holds a prefix of the lake).
    fn count_raw(&self, resume: Option<FitCheckpoint>, work: Option<&Work>) -> Result<(Counts, FeatureCache)> {
        let params = &self.params;
        let bar = self.progress.rows("fit: raw");
        let limit = params.per_file_budget(self.budget, self.raw.len());
        let mut file_totals = vec![0u64; self.raw.len()];
        let mut cache = FeatureCache::new(self.feature_cache_bytes, params.buckets);
        let (mut raw, first_file) = match resume {
            Some(f) => {
                cache.close();
                (Counts { counts: f.raw }, f.next_file)
            }
            None => (Counts::new(params.buckets), 0),
        };
        if first_file == self.raw.len() {
            return Ok((raw, cache));
        }
        // The fit pass records no counts (the scoring pass does): none for the files before.
        let reader = LakeReader::new(self.raw, self.read, Extras::none(), None);
        let mut reader = reader.starting_at_file(first_file, vec![FileStats::default(); first_file])?;
        let recording = std::sync::atomic::AtomicBool::new(cache.recording());
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        // Files before `current` are counted in full: a checkpoint can be saved when it moves.
        let (mut current, mut saved_at) = (first_file, None::<std::time::Instant>);
        for_each_ordered(
            &mut reader,
            |b| batch_counts(params, &b.batch, recording.load(relaxed)),
            |b, (c, per_doc, features)| {
                if b.file != current {
                    current = b.file;
                    if let Some(w) = work.filter(|_| saved_at.is_none_or(|t| t.elapsed().as_secs_f64() >= 1.0)) {
                        w.save_fit(&FitCheckpoint { next_file: current, raw: raw.counts.clone() })?;
                        saved_at = Some(std::time::Instant::now());
                    }
                    crate::failpoint::hit(format_args!("fit-file-{current}"));
                }
                bar.inc(b.batch.num_rows() as u64);
                let total = &mut file_totals[b.file];
                let batch_sum: u64 = per_doc.iter().sum();
                match limit {
                    Some(limit) if *total + batch_sum > limit => {
                        // Rows after a stop are numbered differently in pass 2: cache no further.
                        cache.close();
                        recording.store(false, relaxed);
                        // The stop falls inside this batch: count documents one by one up to it.
                        let text = text_column(&b.batch)?;
                        for (i, n) in per_doc.iter().enumerate() {
                            raw.add_text(params, text.value(i));
                            *total += n;
                            if *total > limit {
                                return Ok(Flow::SkipFile(b.file));
                            }
                        }
                        Ok(Flow::Continue)
                    }
                    _ => {
                        *total += batch_sum;
                        raw.merge(&c);
                        cache.push(&b, features)?;
                        if !cache.recording() {
                            recording.store(false, relaxed);
                        }
                        Ok(Flow::Continue)
                    }
                }
            },
        )?;
        bar.finish_and_clear();
        if first_file == 0 {
            cache.finish(reader.into_stats());
        }
        Ok((raw, cache))
    }
}

/// DSIR's scorer with the features its fit kept ([`FeatureCache`]): a lake pass over the rows
/// the cache holds looks their buckets up instead of featurizing them again.
pub struct CachedDsir {
    scorer: DsirScorer,
    cache: FeatureCache,
}

impl CachedDsir {
    pub fn new(model: Arc<DsirModel>, cache: FeatureCache) -> Self {
        CachedDsir { scorer: DsirScorer::new(model), cache }
    }
}

impl Scorer for CachedDsir {
    fn name(&self) -> &'static str {
        self.scorer.name()
    }

    fn output_fields(&self) -> Vec<Field> {
        self.scorer.output_fields()
    }

    fn score(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        self.scorer.score(batch)
    }

    fn score_rows(&self, b: &SourceBatch) -> Result<Vec<ArrayRef>> {
        if let Some((logw, words)) = self.cache.score(self.scorer.model(), b.first_row, b.batch.num_rows()) {
            return Ok(vec![Arc::new(logw), Arc::new(words)]);
        }
        self.scorer.score(&b.batch)
    }

    fn kept_lake(&self) -> Option<&KeptLake> {
        let released = self.cache.released.load(std::sync::atomic::Ordering::Relaxed);
        (self.cache.complete && !released).then_some(&self.cache.lake)
    }

    /// The feature cache (about 2 bytes an n-gram of the lake) is not needed to write the
    /// selection: its memory goes to that pass instead of fresh pages. (The threads'
    /// featurizers stay: freeing their word tables, hundreds of thousands of strings each,
    /// took 10 ms and lowered no peak.)
    fn scoring_done(&self) {
        self.cache.release();
    }

    fn eligible(&self, columns: &[ArrayRef], i: usize) -> bool {
        self.scorer.eligible(columns, i)
    }

    fn eligibility(&self) -> String {
        self.scorer.eligibility()
    }

    fn eligible_sql(&self) -> Option<(String, Option<Arc<dyn Scorer>>)> {
        self.scorer.eligible_sql()
    }

    fn state(&self) -> Result<Vec<u8>> {
        self.scorer.state()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(docs: &[&[u16]]) -> BatchFeatures {
        let mut f = BatchFeatures::default();
        for d in docs {
            f.buckets.extend_from_slice(d);
            f.ends.push(f.buckets.len());
            f.words.push(d.len() as i64);
        }
        f
    }

    /// A reader's batch of `n` rows of file 0 starting at `first_row`.
    fn source(first_row: u64, n: usize) -> SourceBatch {
        let ids = arrow::array::StringArray::from_iter_values((0..n).map(|i| format!("d{}", first_row + i as u64)));
        let batch = RecordBatch::try_from_iter([("id", Arc::new(ids) as ArrayRef)]).unwrap();
        SourceBatch {
            batch,
            file: 0,
            locations: (1..=n as u64).map(|l| l + first_row).collect(),
            first_row,
            end: None,
            start: None,
        }
    }

    /// A model over 4 buckets.
    fn model4() -> DsirModel {
        let params = DsirParams { buckets: 4, ..DsirParams::default() };
        DsirModel::try_new(params, Counts { counts: vec![1, 2, 3, 4] }, Counts { counts: vec![4, 3, 2, 1] }).unwrap()
    }

    fn push(cache: &mut FeatureCache, first_row: u64, docs: &[&[u16]]) {
        cache.push(&source(first_row, docs.len()), Some(batch(docs))).unwrap();
    }

    #[test]
    fn cache_scores_any_row_range_across_batches() {
        let model = model4();
        let docs: Vec<&[u16]> = vec![&[0, 1], &[], &[3, 3, 2], &[1], &[2, 0], &[0, 0, 0], &[3]];
        let mut cache = FeatureCache::new(1 << 20, 4);
        // Batches of 3, 0 and 4 documents, as pass 1 may cut them.
        push(&mut cache, 0, &docs[..3]);
        push(&mut cache, 3, &[]);
        push(&mut cache, 3, &docs[3..]);
        assert!(cache.recording());
        for first in 0..docs.len() {
            for n in 0..=docs.len() - first {
                let (logw, words) = cache.score(&model, first as u64, n).expect("cached");
                for j in 0..n {
                    let d = docs[first + j];
                    assert_eq!(logw.value(j), model.score_buckets(d), "row {}", first + j);
                    assert_eq!(words.value(j), d.len() as i64);
                }
            }
        }
        assert!(cache.score(&model, 5, 3).is_none(), "past the cached rows");
        let empty = FeatureCache::new(1 << 20, 4);
        assert_eq!(empty.score(&model, 0, 0).map(|(l, w)| (l.len(), w.len())), Some((0, 0)), "no rows: none to score");
        // A batch that does not continue the prefix closes the cache; what it held stays.
        push(&mut cache, 9, &docs[..1]);
        assert!(!cache.recording());
        assert!(cache.score(&model, 6, 1).is_some());
    }

    /// After the scoring pass (`scoring_done`) nothing is scored from the cache, and the kept
    /// lake (ids without text) is not offered: a later pass reads the lake and featurizes.
    #[test]
    fn a_released_cache_scores_nothing_and_offers_no_kept_lake() {
        let model = model4();
        let mut cache = FeatureCache::new(1 << 20, 4);
        push(&mut cache, 0, &[&[0, 1], &[2]]);
        cache.finish(vec![FileStats { read: 2, kept: 2, ..FileStats::default() }]);
        let dsir = CachedDsir::new(Arc::new(model), cache);
        assert!(dsir.kept_lake().is_some());
        assert!(dsir.cache.score(dsir.scorer.model(), 0, 2).is_some());
        dsir.scoring_done();
        assert!(dsir.kept_lake().is_none());
        assert!(dsir.cache.score(dsir.scorer.model(), 0, 2).is_none());
    }

    #[test]
    fn cache_stops_at_its_byte_limit() {
        let mut cache = FeatureCache::new(1 << 20, 4);
        push(&mut cache, 0, &[&[0, 1, 2]]);
        assert!(cache.recording());
        // Room for 10 more bytes: not for 20 buckets (40 bytes).
        cache.limit_bytes = cache.bytes + 10;
        push(&mut cache, 1, &[&[0; 20]]);
        assert!(!cache.recording());
        assert_eq!(cache.rows, 1);
    }
}
