//! The DSIR job: fit on a target set and a raw lake, score every raw row, select k rows.
//!
//! Passes over the raw lake: (1) count raw n-grams (stops early per file under the fit
//! budget; skipped with a saved model), (2) score every row, (3) for `select`, read the lake
//! again and write the chosen rows with all their columns. Pass 2 is the one that reads every
//! row: its counts are the run's counts and it records the rejects.
//!
//! Feature cache: pass 1 keeps each document's bucket ids (2 bytes per n-gram) for a prefix of
//! the lake, up to `feature_cache_bytes`, so pass 2 scores those documents with a sum over
//! their buckets instead of tokenizing and hashing them again; the sums are the same, in the
//! same order, so the scores are bit-identical with or without it.
//!
//! Memory: the model, a chunk of batches, the feature cache (at most `feature_cache_bytes`),
//! and for `select` the k chosen rows (a heap of k entries); nothing grows with the lake.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, Float64Array, Int64Array};
use arrow::datatypes::{DataType, Field};

use crate::batch::{dsir_score_schema, id_column, text_column, RecordBatch, COL_DSIR_LOGW};
use crate::error::{Error, Result};
use crate::par::{for_each_ordered, Flow};
use crate::pipeline::Progress;
use crate::score::dsir::{with_featurizer, Counts, DsirModel, DsirParams, DsirScorer, FitBudget};
use crate::score::Scorer;
use crate::select::{Noise, Ranked, TopK};
use crate::sink::TableWriter;
use crate::source::{lake_extras, Extras, FileStats, InputFile, LakeReader, ReadOptions, RejectWriter, SourceBatch};

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

/// Bucket ids of the documents of a prefix of the lake, in feature order.
#[derive(Debug, Default)]
pub struct FeatureCache {
    buckets: Vec<u16>,
    /// Per document: end offset into `buckets`, and word count.
    ends: Vec<usize>,
    words: Vec<i64>,
    limit_bytes: usize,
    closed: bool,
}

/// The features of one batch, recorded in pass 1.
struct BatchFeatures {
    buckets: Vec<u16>,
    ends: Vec<usize>,
    words: Vec<i64>,
}

impl FeatureCache {
    fn new(limit_bytes: usize, buckets: u32) -> Self {
        // Bucket ids are kept as u16; more buckets than that: no cache.
        let usable = buckets <= u32::from(u16::MAX) + 1 && limit_bytes > 0;
        FeatureCache { limit_bytes, closed: !usable, ..Default::default() }
    }

    fn rows(&self) -> u64 {
        self.words.len() as u64
    }

    fn bytes(&self) -> usize {
        self.buckets.len() * 2 + self.ends.len() * 8 + self.words.len() * 8
    }

    fn recording(&self) -> bool {
        !self.closed
    }

    /// Append the features of the batch starting at `first_row`, if it continues the cached
    /// prefix and fits; otherwise stop caching for good.
    fn push(&mut self, first_row: u64, f: Option<BatchFeatures>) {
        let Some(f) = f.filter(|_| !self.closed && first_row == self.rows()) else {
            self.close();
            return;
        };
        if self.bytes() + f.buckets.len() * 2 + f.ends.len() * 16 > self.limit_bytes {
            self.close();
            return;
        }
        let base = self.buckets.len();
        self.buckets.extend_from_slice(&f.buckets);
        self.ends.extend(f.ends.iter().map(|e| base + e));
        self.words.extend_from_slice(&f.words);
    }

    fn close(&mut self) {
        self.closed = true;
    }

    /// Scores of rows `first_row..first_row + n` if they are all cached.
    fn score(&self, model: &DsirModel, first_row: u64, n: usize) -> Option<(Float64Array, Int64Array)> {
        let start = usize::try_from(first_row).ok()?;
        if start + n > self.words.len() {
            return None;
        }
        let logw = (start..start + n).map(|i| {
            let from = if i == 0 { 0 } else { self.ends[i - 1] };
            model.score_buckets(&self.buckets[from..self.ends[i]])
        });
        Some((Float64Array::from_iter_values(logw), Int64Array::from(self.words[start..start + n].to_vec())))
    }
}

/// A fitted model, the target's per-file counts, and the features pass 1 kept.
pub struct Fitted {
    pub model: DsirModel,
    pub target_stats: Vec<FileStats>,
    pub cache: FeatureCache,
}

/// What a run read, kept and chose.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DsirReport {
    pub files: Vec<FileStats>,
    pub target_files: Vec<FileStats>,
    /// Rows with at least `min_words` words.
    pub eligible: u64,
    pub selected: u64,
    /// Selected rows per raw file, in file order.
    pub selected_per_file: Vec<u64>,
    pub rejects_written: u64,
}

impl DsirReport {
    pub fn read(&self) -> u64 {
        self.files.iter().map(|f| f.read).sum()
    }
    pub fn kept(&self) -> u64 {
        self.files.iter().map(|f| f.kept).sum()
    }
    pub fn rejected(&self) -> u64 {
        self.files.iter().chain(&self.target_files).map(|f| f.rejected).sum()
    }
}

/// `id`, `dsir_logw`, `n_words` of a scored source batch.
fn score_batch(schema: &arrow::datatypes::SchemaRef, batch: &RecordBatch, logw: &Float64Array, words: &Int64Array) -> Result<RecordBatch> {
    let ids = id_column(batch)?;
    RecordBatch::try_new(schema.clone(), vec![Arc::new(ids.clone()), Arc::new(logw.clone()), Arc::new(words.clone())])
        .map_err(|e| Error::arrow("building score batch", e))
}

/// Bucket counts and per-document feature totals of one batch, and with `record` its
/// features for the cache.
fn batch_counts(params: &DsirParams, batch: &RecordBatch, record: bool) -> Result<(Counts, Vec<u64>, Option<BatchFeatures>)> {
    let text = text_column(batch)?;
    let mut counts = Counts::new(params.buckets);
    let mut per_doc = Vec::with_capacity(text.len());
    let mut features = record.then(|| BatchFeatures { buckets: Vec::new(), ends: Vec::with_capacity(text.len()), words: Vec::with_capacity(text.len()) });
    for t in text.iter() {
        let t = t.unwrap_or("");
        let mut n = 0u64;
        let words = with_featurizer(params, |fz| {
            fz.for_each_bucket(t, |b| {
                counts.counts[b as usize] += 1;
                n += 1;
                if let Some(f) = features.as_mut() {
                    f.buckets.push(b as u16);
                }
            })
        });
        if let Some(f) = features.as_mut() {
            f.ends.push(f.buckets.len());
            f.words.push(params.n_words(words));
        }
        per_doc.push(n);
    }
    Ok((counts, per_doc, features))
}

impl DsirJob<'_> {
    /// Count the target set (whole) and the raw lake (under the fit budget), and fit.
    pub fn fit(&self, rejects: Option<&mut RejectWriter>) -> Result<Fitted> {
        self.params.validate()?;
        let params = &self.params;
        // Target: every row.
        let bar = self.progress.rows("fit: target");
        let mut target = Counts::new(params.buckets);
        let mut reader = LakeReader::new(self.target, self.read, Extras::none(), rejects);
        for_each_ordered(&mut reader, |b| batch_counts(params, &b.batch, false), |b, (c, _, _)| {
            bar.inc(b.batch.num_rows() as u64);
            target.merge(&c);
            Ok(Flow::Continue)
        })?;
        let target_stats = reader.into_stats();
        bar.finish_and_clear();

        // Raw: per file, stop after the document that takes the file past its budget.
        let bar = self.progress.rows("fit: raw");
        let limit = params.per_file_budget(self.budget, self.raw.len());
        let mut raw = Counts::new(params.buckets);
        let mut file_totals = vec![0u64; self.raw.len()];
        let mut reader = LakeReader::new(self.raw, self.read, Extras::none(), None);
        let mut cache = FeatureCache::new(self.feature_cache_bytes, params.buckets);
        let recording = std::sync::atomic::AtomicBool::new(cache.recording());
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        for_each_ordered(&mut reader, |b| batch_counts(params, &b.batch, recording.load(relaxed)), |b, (c, per_doc, features)| {
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
                    cache.push(b.first_row, features);
                    if !cache.recording() {
                        recording.store(false, relaxed);
                    }
                    Ok(Flow::Continue)
                }
            }
        })?;
        bar.finish_and_clear();
        Ok(Fitted { model: DsirModel::try_new(params.clone(), raw, target)?, target_stats, cache })
    }

    /// Score every raw row; `each` gets the batch, its first row number and the scores.
    fn score_pass(
        &self,
        model: &Arc<DsirModel>,
        cache: &FeatureCache,
        rejects: Option<&mut RejectWriter>,
        mut each: impl FnMut(&SourceBatch, &Float64Array, &Int64Array) -> Result<()>,
    ) -> Result<Vec<FileStats>> {
        let scorer = DsirScorer::new(model.clone());
        let bar = self.progress.rows("score");
        let mut reader = LakeReader::new(self.raw, self.read, Extras::none(), rejects);
        let work = |b: &SourceBatch| -> Result<(Float64Array, Int64Array)> {
            if let Some(scores) = cache.score(model, b.first_row, b.batch.num_rows()) {
                return Ok(scores);
            }
            let cols = scorer.score(&b.batch)?;
            let logw = cols[0].as_any().downcast_ref::<Float64Array>().expect("dsir_logw is float64").clone();
            let words = cols[1].as_any().downcast_ref::<Int64Array>().expect("n_words is int64").clone();
            Ok((logw, words))
        };
        for_each_ordered(&mut reader, work, |b, (logw, words)| {
            each(&b, &logw, &words)?;
            bar.inc(b.batch.num_rows() as u64);
            Ok(Flow::Continue)
        })?;
        bar.finish_and_clear();
        Ok(reader.into_stats())
    }

    /// Write `id`, `dsir_logw`, `n_words` for every raw row, in input order.
    pub fn score_to(&self, model: &Arc<DsirModel>, cache: &FeatureCache, out: &Path, rejects: Option<&mut RejectWriter>) -> Result<DsirReport> {
        let schema = dsir_score_schema();
        let mut writer = TableWriter::create(out, schema.clone())?;
        let min_words = model.params.min_words as i64;
        let mut eligible = 0u64;
        let files = self.score_pass(model, cache, rejects, |batch, logw, words| {
            eligible += words.values().iter().filter(|&&w| w >= min_words).count() as u64;
            writer.write(&score_batch(&schema, &batch.batch, logw, words)?)
        })?;
        writer.finish()?;
        Ok(DsirReport { selected_per_file: vec![0; files.len()], files, eligible, ..Default::default() })
    }

    /// Choose k rows (Gumbel top-k with `noise`, or plain top-k) and write them with all their
    /// columns plus `dsir_logw`, in input order.
    /// With `scores_out`, also write every row's scores there (as `score_to` does), at no extra pass.
    pub fn select_to(
        &self,
        model: &Arc<DsirModel>,
        cache: &FeatureCache,
        k: u64,
        mut noise: Noise,
        out: &Path,
        scores_out: Option<&Path>,
        rejects: Option<&mut RejectWriter>,
    ) -> Result<DsirReport> {
        let min_words = model.params.min_words as i64;
        let mut top = TopK::new(usize::try_from(k).map_err(|_| Error::InvalidArgument("k is too large".into()))?);
        let schema = dsir_score_schema();
        let mut scores_writer = scores_out.map(|p| TableWriter::create(p, schema.clone())).transpose()?;
        let files = self.score_pass(model, cache, rejects, |batch, logw, words| {
            if let Some(w) = scores_writer.as_mut() {
                w.write(&score_batch(&schema, &batch.batch, logw, words)?)?;
            }
            for (i, (&w, &n)) in logw.values().iter().zip(words.values()).enumerate() {
                if n >= min_words {
                    let (file, loc) = (batch.file as u32, batch.locations[i]);
                    top.offer(Ranked { key: noise.key(w), row: batch.first_row + i as u64, score: w, file, loc });
                }
            }
            Ok(())
        })?;
        let eligible = top.offered();
        if k >= eligible {
            return Err(Error::InvalidArgument(format!(
                "k = {k} must be smaller than the number of eligible rows ({eligible} rows with at least {} words)",
                model.params.min_words
            )));
        }
        if let Some(w) = scores_writer {
            w.finish()?;
        }
        let chosen = top.into_rows();
        let selected_per_file = self.write_rows(&files, &chosen, out)?;
        Ok(DsirReport { files, eligible, selected: chosen.len() as u64, selected_per_file, ..Default::default() })
    }

    /// Pass 3: write the rows in `chosen` (sorted by row) with all input columns and `dsir_logw`.
    /// Only the chosen lines are parsed, and each file is left after its last chosen row.
    fn write_rows(&self, stats: &[FileStats], chosen: &[Ranked], out: &Path) -> Result<Vec<u64>> {
        let extras = lake_extras(self.raw, stats, self.read)?;
        let mut per_file = vec![Vec::new(); self.raw.len()];
        for r in chosen {
            per_file[r.file as usize].push(r.loc);
        }
        let mut reader = LakeReader::new(self.raw, self.read, extras, None).with_selection(per_file);
        let logw_field = Field::new(COL_DSIR_LOGW, DataType::Float64, false);
        let schema = crate::batch::append_columns(&RecordBatch::new_empty(reader.schema()), vec![(logw_field.clone(), Arc::new(Float64Array::from(Vec::<f64>::new())))])?.schema();
        let mut writer = TableWriter::create(out, schema)?;
        let mut selected = vec![0u64; stats.len()];
        let bar = self.progress.rows("write");
        let mut next = 0usize;
        for b in reader.by_ref() {
            let b = b?;
            let n = b.batch.num_rows();
            // The reader returns exactly the chosen rows, in order; check that it did.
            let these = chosen.get(next..next + n).unwrap_or(&[]);
            if these.len() != n || these.iter().zip(&b.locations).any(|(r, loc)| r.file as usize != b.file || r.loc != *loc) {
                break;
            }
            next += n;
            selected[b.file] += n as u64;
            bar.inc(n as u64);
            let scores = Float64Array::from_iter_values(these.iter().map(|r| r.score));
            let batch = crate::batch::append_columns(&b.batch, vec![(logw_field.clone(), Arc::new(scores))])?;
            writer.write(&batch)?;
        }
        bar.finish_and_clear();
        if next != chosen.len() {
            return Err(Error::InvalidArgument(format!(
                "the input changed while it was being read: {} of {} chosen rows were found again",
                next,
                chosen.len()
            )));
        }
        writer.finish()?;
        Ok(selected)
    }
}
