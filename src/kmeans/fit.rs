//! The k-means fit: document frequencies and a seeded sample (pass 0), k-means++ seeding on the
//! sample, one streaming mini-batch pass, then Lloyd passes over the whole lake.
//!
//! - Pass 0 counts each feature's document frequency over the lake (for the IDF) and keeps
//!   the `sample` documents with the smallest `xxh3(row, seed)`: a uniform sample that does not
//!   depend on how the lake is cut into batches or threads.
//! - k-means++ (Arthur and Vassilvitskii 2007): the first centre is a uniform draw from the
//!   sample; each next one is drawn with probability proportional to `D(x)^2`, the squared
//!   Euclidean distance of unit vectors to their nearest chosen centre, `2 (1 - cos)`.
//! - Pass 1, mini-batch (Sculley 2010) over runs of 1024 rows in lake order (whatever the
//!   reader's batches): each is assigned to the centres as they are at its start, then each
//!   document moves its centre by `1/n_c` towards itself, in lake order. Kept as sums, which point where the running means do; the
//!   assignment is by cosine, so only the direction matters (spherical k-means).
//! - Passes 2.. are Lloyd's: every document is assigned to the centres of the pass before, and
//!   each centre becomes the normalised sum of its documents (a centre left without any keeps
//!   its place).
//!
//! Deterministic: the sample, the draws (SplitMix64 from the seed) and every sum follow the
//! lake's row order, never the thread count. Memory: the k centre sums (`8 * dims * k` bytes,
//! twice during a Lloyd pass), the sample's vectors, and the batches in flight.

use std::collections::BinaryHeap;
use std::path::Path;

use rayon::prelude::*;

use super::model::KMeansModel;
use super::vectors::{counts, feature_params, for_each_term, idf, tfidf, Counter, Sparse, TermScratch, Terms};
use crate::batch::text_column;
use crate::error::{Error, Result};
use crate::par::{for_each_ordered, Flow};
use crate::progress::Progress;
use crate::source::{Extras, InputFile, LakeReader, ReadOptions};

/// Documents whose words name the features (the first ones of the lake).
const TERM_DOCS: u64 = 20_000;

/// What the fit needs to know.
#[derive(Debug, Clone)]
pub struct FitParams {
    pub k: usize,
    pub dims: u32,
    pub sample: usize,
    pub passes: usize,
    pub seed: u64,
}

/// What the fit saw, for the report.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FitReport {
    /// Documents with at least one word (the ones clustered).
    pub docs: u64,
    pub without_words: u64,
    /// The sample k-means++ seeded from.
    pub sample: u64,
    /// Mean cosine distance to the assigned centre, per pass (the mini-batch pass's against
    /// the centres each batch saw).
    pub mean_dist: Vec<f64>,
}

/// k-means++ on unit vectors: the indices of the k chosen centres, in the order drawn.
pub fn kmeans_pp(sample: &[Sparse], k: usize, dims: u32, seed: u64) -> Result<Vec<usize>> {
    if sample.len() < k {
        return Err(Error::InvalidArgument(format!(
            "k = {k} clusters, but only {} documents with words to seed them from",
            sample.len()
        )));
    }
    let mut rng = crate::proxy::nn::Rng::from_state(seed);
    let first = (rng.uniform() * sample.len() as f64) as usize;
    let mut chosen = vec![first.min(sample.len() - 1)];
    let mut dense = vec![0f64; dims as usize];
    let mut d2 = vec![f64::INFINITY; sample.len()];
    for _ in 1..k {
        let c = &sample[*chosen.last().expect("one chosen")];
        for (&j, &x) in c.idx.iter().zip(&c.val) {
            dense[j as usize] = f64::from(x);
        }
        // A distance within f32 rounding of 0 is 0: a copy of a chosen centre is never drawn.
        d2.par_iter_mut().zip(sample).for_each(|(d, x)| {
            let to_c = 2.0 * (1.0 - x.dot(&dense));
            *d = d.min(if to_c < 1e-6 { 0.0 } else { to_c });
        });
        for &j in &c.idx {
            dense[j as usize] = 0.0;
        }
        let total: f64 = d2.iter().sum();
        if total.is_nan() || total <= 0.0 {
            return Err(Error::InvalidArgument(format!(
                "k = {k} clusters, but the documents have only {} distinct vectors",
                chosen.len()
            )));
        }
        let target = rng.uniform() * total;
        let mut acc = 0.0;
        // The last point with weight is the fallback should rounding leave the walk short.
        let mut pick = d2.iter().rposition(|&d| d > 0.0).expect("total > 0");
        for (i, &d) in d2.iter().enumerate() {
            acc += d;
            if acc > target && d > 0.0 {
                pick = i;
                break;
            }
        }
        chosen.push(pick);
    }
    Ok(chosen)
}

/// Centre sums, feature-major (`sums[j * k + c]`), with each centre's squared norm and count.
struct Centres {
    k: usize,
    sums: Vec<f64>,
    norm2: Vec<f64>,
    count: Vec<u64>,
}

impl Centres {
    fn new(k: usize, dims: u32) -> Self {
        Centres { k, sums: vec![0.0; dims as usize * k], norm2: vec![0.0; k], count: vec![0; k] }
    }

    /// The nearest centre by cosine (ties to the lower) and the cosine distance.
    fn nearest(&self, v: &Sparse, sims: &mut Vec<f64>) -> (usize, f64) {
        super::vectors::dots(v, &self.sums, self.k, sims);
        let mut best = 0;
        let mut best_sim = f64::NEG_INFINITY;
        for (c, (&s, &n)) in sims.iter().zip(&self.norm2).enumerate() {
            let sim = if n > 0.0 { s / n.sqrt() } else { 0.0 };
            if sim > best_sim {
                best = c;
                best_sim = sim;
            }
        }
        (best, (1.0 - best_sim).clamp(0.0, 2.0))
    }

    /// Add `v` to centre `c`.
    fn add(&mut self, c: usize, v: &Sparse) {
        let k = self.k;
        let mut dot = 0.0;
        let mut vv = 0.0;
        for (&j, &x) in v.idx.iter().zip(&v.val) {
            let s = &mut self.sums[j as usize * k + c];
            let x = f64::from(x);
            dot += *s * x;
            vv += x * x;
            *s += x;
        }
        self.norm2[c] += 2.0 * dot + vv;
        self.count[c] += 1;
    }

    fn recompute_norms(&mut self) {
        self.norm2.iter_mut().for_each(|n| *n = 0.0);
        for row in self.sums.chunks_exact(self.k) {
            for (n, x) in self.norm2.iter_mut().zip(row) {
                *n += x * x;
            }
        }
    }
}

/// A lake to fit on.
pub struct FitLake<'a> {
    pub raw: &'a [InputFile],
    pub read: &'a ReadOptions,
    pub progress: &'a Progress,
}

impl FitLake<'_> {
    fn reader(&self) -> LakeReader<'_> {
        LakeReader::new(self.raw, self.read, Extras::none(), None)
    }
}

/// The fit between passes: what a killed fit resumes from.
struct FitState {
    /// Passes over the lake finished after the seeding (0: seeded only).
    passes_done: usize,
    report: FitReport,
    idf: Vec<f32>,
    terms: Vec<String>,
    /// Centre sums, feature-major.
    sums: Vec<f64>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StateHeader {
    /// The settings the state belongs to.
    params: String,
    passes_done: usize,
    report: FitReport,
    terms: Vec<String>,
}

const STATE_MAGIC: &[u8; 8] = b"SYLKMFIT";

impl FitState {
    fn save(&self, path: &Path, p: &FitParams) -> Result<()> {
        let header = StateHeader {
            params: format!("{p:?}"),
            passes_done: self.passes_done,
            report: self.report.clone(),
            terms: self.terms.clone(),
        };
        let header = serde_json::to_vec(&header).expect("plain struct");
        let mut out = Vec::with_capacity(16 + header.len() + 4 * self.idf.len() + 8 * self.sums.len());
        out.extend_from_slice(STATE_MAGIC);
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        self.idf.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
        self.sums.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
        let sum = xxhash_rust::xxh3::xxh3_64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        crate::sink::write_atomic(path, &out)
    }

    /// The state saved at `path` for these settings; None when there is none, it is damaged,
    /// or it belongs to other settings (the fit then starts over).
    fn load(path: &Path, p: &FitParams) -> Option<Self> {
        let bytes = std::fs::read(path).ok()?;
        let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(8)?)?;
        if xxhash_rust::xxh3::xxh3_64(body) != u64::from_le_bytes(sum.try_into().ok()?)
            || !body.starts_with(STATE_MAGIC)
        {
            return None;
        }
        let hlen = usize::try_from(u64::from_le_bytes(body.get(8..16)?.try_into().ok()?)).ok()?;
        let header: StateHeader = serde_json::from_slice(body.get(16..16 + hlen.min(body.len()))?).ok()?;
        if header.params != format!("{p:?}") {
            return None;
        }
        let rest = &body[16 + hlen..];
        let (dims, k) = (p.dims as usize, p.k);
        if rest.len() != 4 * dims + 8 * dims * k {
            return None;
        }
        let idf = rest[..4 * dims].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4"))).collect();
        let sums = rest[4 * dims..].chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8"))).collect();
        Some(FitState { passes_done: header.passes_done, report: header.report, idf, terms: header.terms, sums })
    }
}

/// Fit k centres on the lake. With `checkpoint`, the state after the seeding and after each
/// pass is saved there, and a fit started again with the same settings goes on from the last
/// one saved (the same model as without the interruption).
pub fn fit(lake: &FitLake, p: &FitParams, checkpoint: Option<&Path>) -> Result<(KMeansModel, FitReport)> {
    let mut state = match checkpoint.and_then(|c| FitState::load(c, p)) {
        Some(s) => {
            eprintln!("syllabus: the k-means fit resumes after {} of {} passes", s.passes_done, p.passes);
            s
        }
        None => {
            let s = seed(lake, p)?;
            if let Some(c) = checkpoint {
                s.save(c, p)?;
            }
            s
        }
    };
    while state.passes_done < p.passes {
        if state.passes_done == 0 {
            mini_batch_pass(lake, p, &mut state)?;
        } else {
            lloyd_pass(lake, p, &mut state)?;
        }
        state.passes_done += 1;
        if let Some(c) = checkpoint.filter(|_| state.passes_done < p.passes) {
            state.save(c, p)?;
            crate::failpoint::hit(format_args!("kmeans-pass-{}", state.passes_done));
        }
    }
    let FitState { report, idf, terms, sums, .. } = state;
    let mut model = KMeansModel::from_sums(p.dims, p.k, report.docs, idf, &sums);
    model.terms = terms;
    Ok((model, report))
}

/// Pass 0 and the seeding: document frequencies, the sample, readable terms, k-means++.
fn seed(lake: &FitLake, p: &FitParams) -> Result<FitState> {
    let fp = feature_params(p.dims);
    let mut report = FitReport::default();
    let mut df = vec![0u64; p.dims as usize];
    let mut heap: BinaryHeap<(u64, u64)> = BinaryHeap::new();
    let mut kept: rustc_hash::FxHashMap<u64, Sparse> = Default::default();
    // Readable terms from the lake's first documents (bounded work, whatever the lake).
    let mut terms = Terms::new(p.dims);
    let mut term_scratch = TermScratch::default();
    let bar = lake.progress.rows("cluster: idf and sample");
    let mut reader = lake.reader();
    for_each_ordered(
        &mut reader,
        |b| {
            let text = text_column(&b.batch)?;
            let mut scratch = Counter::default();
            Ok(text.iter().map(|t| counts(&fp, t.unwrap_or(""), &mut scratch)).collect::<Vec<_>>())
        },
        |b, vs| {
            bar.inc(vs.len() as u64);
            if b.first_row < TERM_DOCS {
                let text = text_column(&b.batch)?;
                for t in text.iter().take((TERM_DOCS - b.first_row) as usize) {
                    for_each_term(t.unwrap_or(""), p.dims, &mut term_scratch, |j, term| terms.see(j, term));
                }
            }
            for (i, v) in vs.into_iter().enumerate() {
                if v.is_empty() {
                    report.without_words += 1;
                    continue;
                }
                report.docs += 1;
                for &j in &v.idx {
                    df[j as usize] += 1;
                }
                let row = b.first_row + i as u64;
                let key = xxhash_rust::xxh3::xxh3_64_with_seed(&row.to_le_bytes(), p.seed);
                if heap.len() < p.sample {
                    heap.push((key, row));
                    kept.insert(row, v);
                } else if heap.peek().is_some_and(|&top| (key, row) < top) {
                    let (_, out) = heap.pop().expect("full");
                    kept.remove(&out);
                    heap.push((key, row));
                    kept.insert(row, v);
                }
            }
            Ok(Flow::Continue)
        },
    )?;
    bar.finish_and_clear();
    if (report.docs as usize) < p.k {
        return Err(Error::InvalidArgument(format!(
            "k = {} clusters, but the lake has {} documents with words",
            p.k, report.docs
        )));
    }
    let idf = idf(&df, report.docs);
    drop(df);
    let mut rows: Vec<u64> = kept.keys().copied().collect();
    rows.sort_unstable();
    let sample: Vec<Sparse> = rows.iter().map(|r| tfidf(kept.remove(r).expect("kept"), &idf)).collect();
    drop(kept);
    report.sample = sample.len() as u64;
    let chosen = kmeans_pp(&sample, p.k, p.dims, p.seed)?;
    let mut centres = Centres::new(p.k, p.dims);
    for (c, &i) in chosen.iter().enumerate() {
        centres.add(c, &sample[i]);
    }
    Ok(FitState { passes_done: 0, report, idf, terms: terms.into_terms(), sums: centres.sums })
}

/// The unit TF-IDF vectors of a batch.
fn vectors(b: &crate::source::SourceBatch, dims: u32, idf: &[f32]) -> Result<Vec<Sparse>> {
    let fp = feature_params(dims);
    let text = text_column(&b.batch)?;
    let mut scratch = Counter::default();
    Ok(text.iter().map(|t| tfidf(counts(&fp, t.unwrap_or(""), &mut scratch), idf)).collect())
}

/// Rows per mini-batch: fixed, so that the model does not depend on how the reader cuts the
/// lake into batches.
const MINI_BATCH: usize = 1024;

/// Pass 1: mini-batch updates from the seeds (each seed counts as one document), over runs of
/// [`MINI_BATCH`] rows in lake order.
fn mini_batch_pass(lake: &FitLake, p: &FitParams, state: &mut FitState) -> Result<()> {
    let mut centres = Centres::new(p.k, p.dims);
    centres.sums = std::mem::take(&mut state.sums);
    centres.recompute_norms();
    centres.count.iter_mut().for_each(|n| *n = 1);
    let bar = lake.progress.rows("cluster: mini-batch pass");
    let mut reader = lake.reader();
    let (mut dist_sum, mut n) = (0.0, 0u64);
    let idf = &state.idf;
    let mut pending: Vec<Sparse> = Vec::with_capacity(2 * MINI_BATCH);
    // Assign a mini-batch to the centres as they stand, then move them, row by row.
    let mut step = |batch: &[Sparse], centres: &mut Centres| {
        let assigned: Vec<Option<(usize, f64)>> =
            batch.par_iter().map_init(Vec::new, |sims, v| (!v.is_empty()).then(|| centres.nearest(v, sims))).collect();
        for (v, a) in batch.iter().zip(assigned) {
            if let Some((c, d)) = a {
                centres.add(c, v);
                dist_sum += d;
                n += 1;
            }
        }
    };
    for_each_ordered(
        &mut reader,
        |b| vectors(b, p.dims, idf),
        |b, vs| {
            bar.inc(b.batch.num_rows() as u64);
            pending.extend(vs);
            let full = pending.len() / MINI_BATCH * MINI_BATCH;
            for chunk in pending[..full].chunks(MINI_BATCH) {
                step(chunk, &mut centres);
            }
            pending.drain(..full);
            Ok(Flow::Continue)
        },
    )?;
    step(&pending, &mut centres);
    bar.finish_and_clear();
    state.report.mean_dist.push(dist_sum / n.max(1) as f64);
    state.sums = centres.sums;
    Ok(())
}

/// A Lloyd pass: assign to the centres as they are, then each centre is the sum of its rows.
fn lloyd_pass(lake: &FitLake, p: &FitParams, state: &mut FitState) -> Result<()> {
    let mut centres = Centres::new(p.k, p.dims);
    centres.sums = std::mem::take(&mut state.sums);
    centres.recompute_norms();
    let pass = state.passes_done + 1;
    let bar = lake.progress.rows(&format!("cluster: pass {pass}"));
    let mut next = Centres::new(p.k, p.dims);
    let (mut dist_sum, mut n) = (0.0, 0u64);
    let mut reader = lake.reader();
    let (now, idf) = (&centres, &state.idf);
    for_each_ordered(
        &mut reader,
        |b| {
            let vs = vectors(b, p.dims, idf)?;
            let mut sims = Vec::new();
            let a: Vec<Option<(usize, f64)>> =
                vs.iter().map(|v| (!v.is_empty()).then(|| now.nearest(v, &mut sims))).collect();
            Ok((vs, a))
        },
        |b, (vs, a)| {
            bar.inc(b.batch.num_rows() as u64);
            for (v, a) in vs.iter().zip(a) {
                if let Some((c, d)) = a {
                    next.add(c, v);
                    dist_sum += d;
                    n += 1;
                }
            }
            Ok(Flow::Continue)
        },
    )?;
    bar.finish_and_clear();
    state.report.mean_dist.push(dist_sum / n.max(1) as f64);
    // A centre without documents keeps its place.
    let k = p.k;
    for c in (0..k).filter(|&c| next.count[c] == 0) {
        for j in 0..p.dims as usize {
            next.sums[j * k + c] = centres.sums[j * k + c];
        }
    }
    state.sums = next.sums;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(idx: &[u32], val: &[f32]) -> Sparse {
        let n = val.iter().map(|x| x * x).sum::<f32>().sqrt();
        Sparse { idx: idx.to_vec(), val: val.iter().map(|x| x / n).collect() }
    }

    /// Two well-separated blobs, k = 2: every seed puts one centre in each.
    #[test]
    fn kmeans_pp_finds_both_blobs_for_every_seed() {
        let mut sample = Vec::new();
        for i in 0..50 {
            let e = (i % 7) as f32 * 0.01;
            sample.push(unit(&[0, 1], &[1.0, e]));
            sample.push(unit(&[5, 6], &[1.0, e]));
        }
        for seed in 0..200 {
            let c = kmeans_pp(&sample, 2, 8, seed).unwrap();
            let blob = |i: usize| sample[i].idx[0];
            assert_ne!(blob(c[0]), blob(c[1]), "seed {seed}");
        }
    }

    /// The second centre is drawn with probability proportional to D(x)^2.
    #[test]
    fn kmeans_pp_draws_by_squared_distance() {
        // x0 = e0 (first centre for the seeds counted), x1 at cos 0.5 (D^2 = 1), x2 orthogonal (D^2 = 2).
        let s3 = 3f32.sqrt() / 2.0;
        let sample = vec![unit(&[0], &[1.0]), unit(&[0, 1], &[0.5, s3]), unit(&[1, 2], &[0.0, 1.0])];
        let (mut n1, mut n2, mut runs) = (0, 0, 0);
        for seed in 0..30_000 {
            let c = kmeans_pp(&sample, 2, 4, seed).unwrap();
            if c[0] != 0 {
                continue;
            }
            runs += 1;
            match c[1] {
                1 => n1 += 1,
                2 => n2 += 1,
                other => panic!("drew the first centre again: {other}"),
            }
        }
        // P(x2) = 2/3; the binomial sd over ~10,000 runs is about 0.005.
        let share = n2 as f64 / runs as f64;
        assert!(runs > 8_000 && (share - 2.0 / 3.0).abs() < 0.025, "{n1} {n2} {share}");
    }

    #[test]
    fn too_few_distinct_documents_is_an_error() {
        let sample = vec![unit(&[0], &[1.0]); 5];
        let e = kmeans_pp(&sample, 2, 2, 0).unwrap_err().to_string();
        assert!(e.contains("only 1 distinct"), "{e}");
        let e = kmeans_pp(&sample, 6, 2, 0).unwrap_err().to_string();
        assert!(e.contains("only 5 documents"), "{e}");
    }

    /// Centre sums and their incremental norms agree with a recomputation; assignment by cosine.
    #[test]
    fn centres_add_and_assign() {
        let mut c = Centres::new(2, 3);
        c.add(0, &unit(&[0], &[1.0]));
        c.add(1, &unit(&[2], &[1.0]));
        c.add(0, &unit(&[0, 1], &[1.0, 1.0]));
        let norms = c.norm2.clone();
        c.recompute_norms();
        for (a, b) in norms.iter().zip(&c.norm2) {
            assert!((a - b).abs() < 1e-12);
        }
        let mut sims = Vec::new();
        let (best, d) = c.nearest(&unit(&[0, 1], &[1.0, 0.2]), &mut sims);
        assert_eq!(best, 0);
        assert!(d < 0.1);
        assert_eq!(c.nearest(&unit(&[2], &[1.0]), &mut sims).0, 1);
    }
}
