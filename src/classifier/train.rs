//! Supervised training with fastText's model, losses and hyperparameters, deterministic
//! whatever the thread count, written as a `.bin` fastText's `load_model` reads.
//!
//! fastText trains with Hogwild: threads update the shared matrices without locks, so two runs
//! differ. syllabus keeps fastText's updates and learning-rate schedule but takes the examples
//! in rounds of [`ROUND`]: every example of a round computes its gradient against the matrices
//! as the round found them (in parallel), then the updates are applied in example order, the
//! input rows partitioned among the threads (every row still sees its updates in the same
//! order). The result depends on the seed and the data only; the speed is the threads'. Within
//! a round, an example does not see the round's earlier updates, the staleness Hogwild has
//! with [`ROUND`] threads.
//!
//! Differences from fastText that change the numbers, not the model's kind: the whole input
//! matrix starts uniform in `[-1/dim, 1/dim]` (fastText with fewer than ten threads leaves part
//! of it zero), the examples are shuffled once with the seed (fastText reads its file in
//! order, so users shuffle it), negatives are drawn by `sqrt(count)` from a seeded generator,
//! and a label of a document's own text is not a label.
//!
//! Memory: the model plus the training set's input rows (4 bytes per row of every example);
//! the training set is what the user sampled (`--sample`), not the lake.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use super::fasttext::{
    hs_paths, is_space, label_counts, prefetch, std_log, Args, Dictionary, Entry, Loss, Matrix, Model, Newlines,
    SigmoidTable, EOS, LABEL_PREFIX,
};
use crate::error::{Error, Result};
use crate::proxy::nn::Rng;

/// Examples per round (see the module doc).
pub const ROUND: usize = 32;

/// fastText's supervised hyperparameters (`train_supervised`'s defaults).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Hyper {
    pub lr: f64,
    pub dim: usize,
    pub epoch: usize,
    pub min_count: u64,
    pub word_ngrams: usize,
    /// Hash buckets of word and character n-grams (0 when there are none, as fastText sets it).
    pub bucket: usize,
    pub minn: usize,
    pub maxn: usize,
    pub loss: Loss,
    pub neg: usize,
    pub seed: u64,
    pub newlines: Newlines,
}

impl Default for Hyper {
    fn default() -> Self {
        Hyper {
            lr: 0.1,
            dim: 100,
            epoch: 5,
            min_count: 1,
            word_ngrams: 1,
            bucket: 2_000_000,
            minn: 0,
            maxn: 0,
            loss: Loss::Softmax,
            neg: 5,
            seed: 0,
            newlines: Newlines::Space,
        }
    }
}

impl Hyper {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("--lr {}: must be positive", self.lr));
        }
        if self.dim == 0 || self.dim > 1 << 12 {
            return bad(format!("--dim {}: must be 1 to 4096", self.dim));
        }
        if self.epoch == 0 {
            return bad("--epoch: must be at least 1".into());
        }
        if self.word_ngrams == 0 || self.word_ngrams > 16 {
            return bad(format!("--word-ngrams {}: must be 1 to 16", self.word_ngrams));
        }
        if self.maxn > 0 && (self.minn == 0 || self.minn > self.maxn || self.maxn > 32) {
            return bad(format!("--minn {} --maxn {}: need 1 <= minn <= maxn <= 32", self.minn, self.maxn));
        }
        if (self.word_ngrams > 1 || self.maxn > 0) && self.bucket == 0 {
            return bad("--bucket 0: word and character n-grams need buckets".into());
        }
        if self.bucket > i32::MAX as usize / 2 {
            return bad(format!("--bucket {}: too large", self.bucket));
        }
        if self.loss == Loss::Ns && self.neg == 0 {
            return bad("--neg: negative sampling needs at least 1".into());
        }
        Ok(())
    }

    /// The bucket count the model gets: none without n-grams (fastText's rule).
    fn buckets(&self) -> usize {
        if self.word_ngrams <= 1 && self.maxn == 0 {
            0
        } else {
            self.bucket
        }
    }
}

/// A labelled document: one label, or several (a fastText line may have many: softmax,
/// negative sampling and hierarchical softmax learn one of them per pass, drawn with the seed;
/// one-vs-all all of them at once).
pub struct Example<'a> {
    /// Indices into the labels, at least one.
    pub labels: &'a [u32],
    pub text: &'a str,
}

/// The seeded draws (initialisation, shuffle, negatives): the SplitMix64 stream from a state.
fn seeded(state: u64) -> Rng {
    Rng::from_state(state)
}

/// Uniform in `0..n`.
fn below(r: &mut Rng, n: usize) -> usize {
    (((r.next_u64() >> 32) * n as u64) >> 32) as usize
}

/// The examples as input rows: one flat array and offsets.
struct Encoded {
    rows: Vec<i32>,
    offsets: Vec<usize>,
    labels: Vec<u32>,
    label_offsets: Vec<usize>,
    /// fastText's token count of each line (label, words, `</s>`), for the learning rate.
    tokens: Vec<u32>,
}

/// Count the vocabulary as fastText's `readFromFile` does over the training file.
fn dictionary(examples: &[Example], labels: &[String], h: &Hyper, args: &Args) -> Result<(Dictionary, u64)> {
    // word -> (count, first seen)
    let mut words: std::collections::HashMap<&[u8], (i64, usize)> = std::collections::HashMap::new();
    let mut label_counts = vec![0i64; labels.len()];
    let mut ntokens = 0u64;
    for e in examples {
        for &l in e.labels {
            label_counts[l as usize] += 1;
        }
        ntokens += e.labels.len() as u64 + 1;
        for w in e.text.as_bytes().split(|&b| is_space(b)).filter(|w| !w.is_empty()) {
            if w.starts_with(LABEL_PREFIX.as_bytes()) {
                continue;
            }
            let n = words.len();
            words.entry(w).or_insert((0, n)).0 += 1;
            ntokens += 1;
        }
        let n = words.len();
        words.entry(EOS).or_insert((0, n)).0 += 1;
        if h.newlines == Newlines::Eos {
            let lines = e.text.bytes().filter(|&b| b == b'\n').count() as i64;
            words.get_mut(EOS).expect("counted").0 += lines;
            ntokens += lines as u64;
        }
    }
    let mut kept: Vec<(&[u8], (i64, usize))> =
        words.into_iter().filter(|(_, (c, _))| *c as u64 >= h.min_count.max(1)).collect();
    kept.sort_by_key(|&(_, (c, first))| (std::cmp::Reverse(c), first));
    let mut entries: Vec<Entry> =
        kept.into_iter().map(|(w, (count, _))| Entry { word: w.into(), count, label: false }).collect();
    for (l, &count) in labels.iter().zip(&label_counts) {
        entries.push(Entry { word: l.as_bytes().into(), count, label: true });
    }
    Ok((Dictionary::new(entries, ntokens as i64, None, args), ntokens))
}

fn encode(examples: &[Example], dict: &Dictionary, h: &Hyper) -> Encoded {
    let mut e =
        Encoded { rows: Vec::new(), offsets: vec![0], labels: Vec::new(), label_offsets: vec![0], tokens: Vec::new() };
    let (mut rows, mut hashes, mut scratch) = (Vec::new(), Vec::new(), Vec::new());
    for x in examples {
        dict.line(x.text.as_bytes(), h.newlines, &mut rows, &mut hashes, &mut scratch);
        e.rows.extend_from_slice(&rows);
        e.offsets.push(e.rows.len());
        e.labels.extend_from_slice(x.labels);
        e.label_offsets.push(e.labels.len());
        e.tokens.push((hashes.len() + x.labels.len()).min(u32::MAX as usize) as u32);
    }
    e
}

/// One example's gradient, computed against the round's matrices.
#[derive(Default, Clone)]
struct Step {
    /// The gradient every input row of the example gets (already scaled by 1/rows).
    grad: Vec<f32>,
    hidden: Vec<f32>,
    /// Output rows and their step: `W_out[row] += alpha * hidden`.
    out: Vec<(u32, f32)>,
}

/// Train a classifier on `examples` (labels index `labels`, written as they are: with their
/// prefix, `__label__positive`; the first is the model's first label, the one `clf_prob` reads
/// by default). `progress` is told the examples done.
pub fn train(examples: &[Example], labels: &[String], h: &Hyper, progress: &(dyn Fn(u64) + Sync)) -> Result<Model> {
    train_inner(examples, labels, h, progress, None).map(|(m, _)| m)
}

/// [`train`], and the model saved to `out` as [`Model::save`] saves it, byte for byte; the
/// file is written while the model trains. A small training set's time is mostly writing the
/// input matrix (a gigabyte at 2M buckets) and syncing it: so its header, dictionary and
/// initial values go to the temporary file from a thread of their own as soon as the
/// dictionary is known, the disk flushing them while the model trains, and at the end only
/// the rows training read (the only ones it changes) and the output matrix are written over
/// them before the file is synced and renamed into place. Training's own matrix holds only
/// those rows, packed (a small set's few hundred thousand rows, not the 2M buckets' gigabyte),
/// so each initial value is drawn once for the file and once more only where training reads it.
pub fn train_and_save(
    examples: &[Example],
    labels: &[String],
    h: &Hyper,
    progress: &(dyn Fn(u64) + Sync),
    out: &Path,
) -> Result<Saved> {
    let (model, data) = train_inner(examples, labels, h, progress, Some(out))?;
    // `model` holds the rows training read, packed; `data` is the examples' rows in that packing.
    let train_log_loss = mean_log_loss(examples, |i, s| {
        s.rows.clear();
        s.rows.extend_from_slice(&data.rows[data.offsets[i]..data.offsets[i + 1]]);
        model.predict_rows(s)
    })?;
    Ok(Saved { nwords: model.dict.nwords, buckets: model.args.bucket, train_log_loss })
}

/// What [`train_and_save`] says of the model it saved.
#[derive(Debug, Clone, PartialEq)]
pub struct Saved {
    pub nwords: usize,
    pub buckets: i32,
    /// [`log_loss`] on the training examples.
    pub train_log_loss: f64,
}

/// The initial values of the input matrix's row `row`: uniform in `[-a, a]`, two 24-bit
/// uniforms per draw from a seed of the row's own (so any row is drawn alone, on any thread).
fn init_row(seed: u64, row: usize, values: &mut [f32], a: f32) {
    let mut r = seeded(seed ^ (row as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
    let scale = 2.0 / (1u32 << 24) as f32;
    for pair in values.chunks_mut(2) {
        let bits = r.next_u64();
        for (x, b) in pair.iter_mut().zip([bits >> 40, (bits >> 8) & 0xFF_FFFF]) {
            *x = (b as f32 * scale - 1.0) * a;
        }
    }
}

/// Rows the file writer draws and writes at a time.
const WRITE_ROWS: usize = 1024;

/// A model file being written while its model trains ([`train_and_save`]).
struct EarlySave {
    file: crate::sink::AtomicFile,
    writer: std::thread::JoinHandle<std::io::Result<()>>,
    /// Where the input matrix's values and the output matrix's head start.
    input_at: u64,
    output_at: u64,
}

impl EarlySave {
    /// Start writing: the head, the input matrix as initialised, the output matrix's head and
    /// zeros for its values.
    fn start(
        out: &Path,
        args: &Args,
        dict: &Dictionary,
        (nin, nout, dim): (usize, usize, usize),
        seed: u64,
    ) -> Result<Self> {
        let file = crate::sink::AtomicFile::create(out)?;
        let mut head = Vec::new();
        crate::classifier::fasttext::write_head(&mut head, args, dict).map_err(|e| Error::io(file.tmp(), e))?;
        let input_at = head.len() as u64 + crate::classifier::fasttext::MATRIX_HEAD;
        let output_at = input_at + (nin * dim * 4) as u64;
        let f = file.file().try_clone().map_err(|e| Error::io(file.tmp(), e))?;
        let a = 1.0 / dim as f32;
        let writer = std::thread::spawn(move || -> std::io::Result<()> {
            use crate::classifier::fasttext::{write_floats, write_matrix_head};
            let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
            w.write_all(&head)?;
            write_matrix_head(&mut w, nin, dim)?;
            let mut chunk = vec![0f32; WRITE_ROWS * dim];
            for first in (0..nin).step_by(WRITE_ROWS) {
                let n = WRITE_ROWS.min(nin - first);
                for (i, row) in chunk[..n * dim].chunks_mut(dim).enumerate() {
                    init_row(seed, first + i, row, a);
                }
                write_floats(&mut w, &chunk[..n * dim])?;
            }
            write_matrix_head(&mut w, nout, dim)?;
            write_floats(&mut w, &vec![0f32; nout * dim])?;
            w.flush()?;
            // Start the disk on the bulk now, while the model trains: the commit's sync is
            // then left with the rows written over at the end.
            w.get_ref().sync_data()
        });
        Ok(EarlySave { file, writer, input_at, output_at })
    }

    /// Write the rows training read and the output matrix over what the thread wrote, sync,
    /// and rename into place. `packed[r]`: input row r's place in `win` (training's rows,
    /// packed), or `u32::MAX` for a row training never read (its initial values, drawn again
    /// with `seed` and `a` where a short gap between used rows is written with them).
    fn finish(self, win: &[f32], wout: &[f32], packed: &[u32], (dim, seed, a): (usize, u64, f32)) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let tmp = self.file.tmp().to_path_buf();
        let io = |e| Error::io(&tmp, e);
        self.writer
            .join()
            .map_err(|_| Error::InvalidArgument("the model writer thread panicked".into()))?
            .map_err(io)?;
        let f = self.file.file();
        // Floats at a byte offset, through a buffer of at most 1 MiB.
        let mut buf = Vec::with_capacity(1 << 20);
        let mut put = |x: &[f32], at: u64| -> std::io::Result<()> {
            for (i, piece) in x.chunks(1 << 18).enumerate() {
                buf.clear();
                crate::classifier::fasttext::write_floats(&mut buf, piece)?;
                f.write_all_at(&buf, at + (i << 20) as u64)?;
            }
            Ok(())
        };
        // Runs of used rows; a gap of a few unused rows is written too (with their initial
        // values), which saves a write per gap.
        const GAP: usize = 16;
        let used = |r: usize| packed[r] != u32::MAX;
        let mut run: Vec<f32> = Vec::new();
        let mut r = 0;
        while r < packed.len() {
            if !used(r) {
                r += 1;
                continue;
            }
            let start = r;
            let mut end = r + 1;
            while r < packed.len() && r < end + GAP {
                if used(r) {
                    end = r + 1;
                }
                r += 1;
            }
            // A run goes out WRITE_ROWS rows at a time (no copy of a whole run).
            for first in (start..end).step_by(WRITE_ROWS) {
                let last = (first + WRITE_ROWS).min(end);
                run.clear();
                run.resize((last - first) * dim, 0.0);
                for (row, values) in (first..last).zip(run.chunks_mut(dim)) {
                    match packed[row] {
                        u32::MAX => init_row(seed, row, values, a),
                        p => values.copy_from_slice(&win[p as usize * dim..(p as usize + 1) * dim]),
                    }
                }
                put(&run, self.input_at + (first * dim * 4) as u64).map_err(io)?;
            }
            r = end;
        }
        put(wout, self.output_at + crate::classifier::fasttext::MATRIX_HEAD).map_err(io)?;
        self.file.commit()
    }
}

fn train_inner(
    examples: &[Example],
    labels: &[String],
    h: &Hyper,
    progress: &(dyn Fn(u64) + Sync),
    out: Option<&Path>,
) -> Result<(Model, Encoded)> {
    h.validate()?;
    if labels.len() < 2 {
        return Err(Error::InvalidArgument("a classifier needs at least two labels".into()));
    }
    if let Some(l) = labels.iter().find(|l| l.is_empty() || l.bytes().any(is_space)) {
        return Err(Error::InvalidArgument(format!("label {l:?}: a label is one word")));
    }
    let mut seen = vec![false; labels.len()];
    for e in examples {
        if e.labels.is_empty() {
            return Err(Error::InvalidArgument("a training document without a label".into()));
        }
        for &l in e.labels {
            let bad = || Error::InvalidArgument(format!("label index {l} of {}", labels.len()));
            *seen.get_mut(l as usize).ok_or_else(bad)? = true;
        }
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        return Err(Error::InvalidArgument(format!("no training document has the label {:?}", labels[i])));
    }
    let args = Args {
        dim: h.dim as i32,
        ws: 5,
        epoch: h.epoch as i32,
        min_count: h.min_count as i32,
        neg: h.neg as i32,
        word_ngrams: h.word_ngrams as i32,
        loss: h.loss,
        bucket: h.buckets() as i32,
        minn: h.minn as i32,
        maxn: h.maxn as i32,
        lr_update_rate: 100,
        t: 1e-4,
    };
    let (dict, ntokens) = dictionary(examples, labels, h, &args)?;
    let mut data = encode(examples, &dict, h);
    let dim = h.dim;
    let nin = dict.nwords + h.buckets();
    let mut rng = seeded(h.seed ^ 0x5EED_F00D);
    let a = 1.0 / dim as f32;
    let nout = labels.len();
    let early = match out {
        Some(path) => Some(EarlySave::start(path, &args, &dict, (nin, nout, dim), h.seed)?),
        None => None,
    };
    // Writing the file, training keeps only the rows its examples read, packed in row order
    // (`packed[r]`: row r's place; `rows[p]`: the row at place p), and the examples' rows are
    // renumbered to match. Where each row's update is applied does not change its numbers.
    let (packed, rows): (Vec<u32>, Vec<u32>) = match early {
        Some(_) => {
            let mut packed = vec![u32::MAX; nin];
            for &r in &data.rows {
                packed[r as usize] = 0;
            }
            let mut rows = Vec::new();
            for (r, p) in packed.iter_mut().enumerate().filter(|(_, p)| **p == 0) {
                *p = rows.len() as u32;
                rows.push(r as u32);
            }
            for r in &mut data.rows {
                *r = packed[*r as usize] as i32;
            }
            (packed, rows)
        }
        None => (Vec::new(), Vec::new()),
    };
    let n_rows = if early.is_some() { rows.len() } else { nin };
    // Uniform in [-a, a], each row from a seed of its own: the same numbers on any number of
    // threads, and the pages touched in parallel.
    let mut win = vec![0f32; n_rows * dim];
    win.par_chunks_mut(dim).enumerate().for_each(|(p, values)| {
        let r = if early.is_some() { rows[p] as usize } else { p };
        init_row(h.seed, r, values, a);
    });
    let mut wout = vec![0f32; nout * dim];

    // One order for every epoch, seeded (fastText reads its file in order).
    let mut order: Vec<u32> = (0..examples.len() as u32).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, below(&mut rng, i + 1));
    }
    let paths = hs_paths(&label_counts(&dict));
    let sigmoid = SigmoidTable::new();
    let neg_cdf: Vec<f64> = {
        let mut acc = 0.0;
        dict.entries[dict.nwords..]
            .iter()
            .map(|e| {
                acc += (e.count as f64).sqrt();
                acc
            })
            .collect()
    };

    let total = (h.epoch as u64 * ntokens) as f64;
    let mut seen = 0u64;
    let threads = rayon::current_num_threads().max(1);
    let mut steps = vec![Step::default(); ROUND];
    let done = AtomicUsize::new(0);
    for epoch in 0..h.epoch {
        for (r, round) in order.chunks(ROUND).enumerate() {
            let lr = (h.lr * (1.0 - seen as f64 / total)).max(0.0) as f32;
            {
                let (win, wout) = (&win, &wout);
                steps[..round.len()].par_iter_mut().zip(round.par_iter()).enumerate().for_each(|(j, (st, &ex))| {
                    let ex = ex as usize;
                    let rows = &data.rows[data.offsets[ex]..data.offsets[ex + 1]];
                    let example_seed =
                        h.seed ^ ((epoch as u64) << 40) ^ ((r * ROUND + j) as u64).wrapping_mul(0x9E37_79B9);
                    let targets = &data.labels[data.label_offsets[ex]..data.label_offsets[ex + 1]];
                    // One of a line's labels per pass (fastText's uniform draw); one-vs-all takes all.
                    let target = match targets {
                        [one] => *one as usize,
                        _ => targets[below(&mut seeded(example_seed ^ 0x1ABE_1ABE), targets.len())] as usize,
                    };
                    gradient(
                        &sigmoid,
                        win,
                        wout,
                        rows,
                        Targets { target, all: targets },
                        lr,
                        &paths,
                        &neg_cdf,
                        example_seed,
                        h,
                        st,
                    );
                });
            }
            // Apply in example order: output rows (few) here, input rows partitioned by row.
            for (st, &ex) in steps.iter().zip(round) {
                let ex = ex as usize;
                if data.offsets[ex] == data.offsets[ex + 1] {
                    continue;
                }
                for &(row, alpha) in &st.out {
                    let w = &mut wout[row as usize * dim..(row as usize + 1) * dim];
                    for (x, hv) in w.iter_mut().zip(&st.hidden) {
                        *x += alpha * hv;
                    }
                }
            }
            let shared = SharedRows(win.as_mut_ptr());
            let owner = |row: i32| (((row as u32).wrapping_mul(0x9E37_79B1) as u64 * threads as u64) >> 32) as usize;
            (0..threads).into_par_iter().for_each(|t| {
                let shared = &shared;
                for (st, &ex) in steps.iter().zip(round) {
                    let ex = ex as usize;
                    let rows = &data.rows[data.offsets[ex]..data.offsets[ex + 1]];
                    for (i, &row) in rows.iter().enumerate() {
                        if let Some(&next) = rows.get(i + AHEAD) {
                            if owner(next) == t {
                                // SAFETY: a prefetch reads nothing; the address is inside `win`.
                                prefetch(unsafe { shared.0.add(next as usize * dim) }, dim);
                            }
                        }
                        if owner(row) != t {
                            continue;
                        }
                        // SAFETY: thread t alone writes the rows it owns (`owner`), and nothing
                        // reads `win` until every thread is done.
                        let w = unsafe { std::slice::from_raw_parts_mut(shared.0.add(row as usize * dim), dim) };
                        for (x, g) in w.iter_mut().zip(&st.grad) {
                            *x += g;
                        }
                    }
                }
            });
            seen += round.iter().map(|&ex| data.tokens[ex as usize] as u64).sum::<u64>();
            let d = done.fetch_add(round.len(), Ordering::Relaxed) + round.len();
            progress(d as u64);
        }
    }
    if let Some(early) = early {
        // Training changes only the rows its examples read.
        early.finish(&win, &wout, &packed, (dim, h.seed, a))?;
    }
    let input = Matrix::Dense { m: n_rows, n: dim, data: win };
    let output = Matrix::Dense { m: nout, n: dim, data: wout };
    Ok((Model::from_parts(args, dict, input, output), data))
}

/// Rows fetched ahead of their sum or update (the matrix is too large for the caches).
const AHEAD: usize = 6;

struct SharedRows(*mut f32);
// SAFETY: used only as `train` says: disjoint rows per thread.
unsafe impl Sync for SharedRows {}

/// An example's label this pass, and all of its labels (one-vs-all's positives).
#[derive(Clone, Copy)]
struct Targets<'a> {
    target: usize,
    all: &'a [u32],
}

/// fastText's forward and backward pass of one example, against fixed matrices: fills `st`.
#[allow(clippy::too_many_arguments)]
fn gradient(
    sigmoid: &SigmoidTable,
    win: &[f32],
    wout: &[f32],
    rows: &[i32],
    targets: Targets,
    lr: f32,
    paths: &[Vec<(usize, bool)>],
    neg_cdf: &[f64],
    seed: u64,
    h: &Hyper,
    st: &mut Step,
) {
    let dim = h.dim;
    let target = targets.target;
    st.grad.clear();
    st.grad.resize(dim, 0.0);
    st.hidden.clear();
    st.hidden.resize(dim, 0.0);
    st.out.clear();
    if rows.is_empty() {
        return;
    }
    for (i, &r) in rows.iter().enumerate() {
        if let Some(&next) = rows.get(i + AHEAD) {
            prefetch(win[next as usize * dim..].as_ptr(), dim);
        }
        for (x, w) in st.hidden.iter_mut().zip(&win[r as usize * dim..(r as usize + 1) * dim]) {
            *x += w;
        }
    }
    let inv = (1.0f64 / rows.len() as f64) as f32;
    st.hidden.iter_mut().for_each(|x| *x *= inv);
    let dot = |row: usize, hv: &[f32]| -> f32 {
        let mut d = 0f32;
        for (a, b) in wout[row * dim..(row + 1) * dim].iter().zip(hv) {
            d += a * b;
        }
        d
    };
    let logistic = |row: usize, positive: bool, st: &mut Step| {
        let s = sigmoid.get(dot(row, &st.hidden));
        let alpha = lr * (positive as u8 as f32 - s);
        for (g, w) in st.grad.iter_mut().zip(&wout[row * dim..(row + 1) * dim]) {
            *g += alpha * w;
        }
        st.out.push((row as u32, alpha));
    };
    let nout = paths.len();
    match h.loss {
        Loss::Softmax => {
            let mut o: Vec<f32> = (0..nout).map(|i| dot(i, &st.hidden)).collect();
            let max = o.iter().fold(o[0], |a, &b| if b > a { b } else { a });
            let mut z = 0f32;
            for x in &mut o {
                *x = ((*x - max) as f64).exp() as f32;
                z += *x;
            }
            for (i, x) in o.iter().enumerate() {
                let alpha = lr * ((i == target) as u8 as f32 - x / z);
                for (g, w) in st.grad.iter_mut().zip(&wout[i * dim..(i + 1) * dim]) {
                    *g += alpha * w;
                }
                st.out.push((i as u32, alpha));
            }
        }
        Loss::Ova => {
            for i in 0..nout {
                logistic(i, targets.all.contains(&(i as u32)), st);
            }
        }
        Loss::Ns => {
            logistic(target, true, st);
            let mut rng = seeded(seed);
            let total = *neg_cdf.last().expect("labels");
            for _ in 0..h.neg {
                let neg = loop {
                    let x = rng.uniform() * total;
                    let n = neg_cdf.partition_point(|&c| c <= x).min(nout - 1);
                    if n != target {
                        break n;
                    }
                };
                logistic(neg, false, st);
            }
        }
        Loss::Hs => {
            for &(row, right) in &paths[target] {
                logistic(row, right, st);
            }
        }
    }
    st.grad.iter_mut().for_each(|g| *g *= inv);
}

/// The log loss of a model on labelled examples (mean of `-ln(p(label) + 1e-5)`), for reports:
/// over at most 2000 of them, evenly spaced.
pub fn log_loss(m: &Model, examples: &[Example], newlines: Newlines) -> Result<f64> {
    mean_log_loss(examples, |i, s| m.predict(examples[i].text.as_bytes(), newlines, s))
}

/// [`log_loss`] with `predict(i, scratch)` predicting example i into the scratch's heap.
fn mean_log_loss(
    examples: &[Example],
    mut predict: impl FnMut(usize, &mut super::fasttext::Scratch) -> Result<()>,
) -> Result<f64> {
    let mut s = super::fasttext::Scratch::default();
    let mut sum = 0.0;
    let step = examples.len().div_ceil(2000).max(1);
    let mut n = 0usize;
    for (i, e) in examples.iter().enumerate().step_by(step) {
        predict(i, &mut s)?;
        let score = s.heap.iter().find(|p| p.1 as u32 == e.labels[0]).map(|p| p.0).unwrap_or(std_log(0.0));
        sum -= score as f64;
        n += 1;
    }
    Ok(sum / n.max(1) as f64)
}

/// Every document's text of `files` (the positives or the negatives of a training set).
pub fn read_texts(
    files: &[crate::source::InputFile],
    read: &crate::source::ReadOptions,
    rejects: Option<&mut crate::source::RejectWriter>,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let reader = crate::source::LakeReader::new(files, read, crate::source::Extras::none(), rejects);
    for b in reader {
        let b = b?;
        let t = crate::batch::text_column(&b.batch)?;
        out.extend(t.iter().map(|s| s.unwrap_or("").to_string()));
    }
    Ok(out)
}

/// A seeded sample of `n` documents of a lake (the negatives of DCLM's recipe): the `n` whose
/// hash of (seed, id) is smallest, ties by lake order, in lake order. Memory: the `n` kept.
pub fn sample_texts(
    files: &[crate::source::InputFile],
    read: &crate::source::ReadOptions,
    n: u64,
    seed: u64,
    rejects: Option<&mut crate::source::RejectWriter>,
) -> Result<Vec<String>> {
    use std::collections::BinaryHeap;
    let mut heap: BinaryHeap<(u64, u64, String)> = BinaryHeap::new();
    let mut row = 0u64;
    let reader = crate::source::LakeReader::new(files, read, crate::source::Extras::none(), rejects);
    for b in reader {
        let b = b?;
        let (ids, texts) = (crate::batch::id_column(&b.batch)?, crate::batch::text_column(&b.batch)?);
        for i in 0..b.batch.num_rows() {
            let key = xxhash_rust::xxh3::xxh3_64_with_seed(ids.value(i).as_bytes(), seed);
            if (heap.len() as u64) < n {
                heap.push((key, row, texts.value(i).to_string()));
            } else if let Some(top) = heap.peek() {
                if (key, row) < (top.0, top.1) {
                    heap.pop();
                    heap.push((key, row, texts.value(i).to_string()));
                }
            }
            row += 1;
        }
    }
    let mut kept = heap.into_vec();
    kept.sort_by_key(|k| k.1);
    Ok(kept.into_iter().map(|k| k.2).collect())
}

/// Labelled lines in fastText's training format: each line's words that start with `prefix`
/// are its labels (every one: see [`Example`]), the others its text; lines without a label are
/// skipped and counted. The labels come out in fastText's order (most frequent first, ties
/// by first appearance), written as they are in the file.
pub struct Labelled {
    pub labels: Vec<String>,
    /// (label indices, text without its labels).
    pub lines: Vec<(Vec<u32>, String)>,
    pub unlabelled: u64,
}

pub fn read_labelled(paths: &[std::path::PathBuf], prefix: &str) -> Result<Labelled> {
    use std::io::BufRead;
    if prefix.is_empty() {
        return Err(Error::InvalidArgument("--label-prefix: must not be empty".into()));
    }
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut names: Vec<String> = Vec::new();
    let mut counts: Vec<u64> = Vec::new();
    let (mut lines, mut unlabelled) = (Vec::new(), 0u64);
    for path in paths {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        for (n, line) in std::io::BufReader::new(f).split(b'\n').enumerate() {
            let line = line.map_err(|e| Error::io(path, e))?;
            let line = String::from_utf8(line).map_err(|_| Error::BadRecord {
                file: path.clone(),
                location: crate::error::Location::Line(n as u64 + 1),
                offset: None,
                reason: "invalid UTF-8".into(),
            })?;
            let mut mine: Vec<u32> = Vec::new();
            let mut text = String::with_capacity(line.len());
            for w in line.split(|c: char| c.is_ascii() && is_space(c as u8)).filter(|w| !w.is_empty()) {
                if w.starts_with(prefix) {
                    let i = *index.entry(w.to_string()).or_insert_with(|| {
                        names.push(w.to_string());
                        counts.push(0);
                        names.len() - 1
                    });
                    counts[i] += 1;
                    mine.push(i as u32);
                } else {
                    if !text.is_empty() {
                        text.push(' ');
                    }
                    text.push_str(w);
                }
            }
            if mine.is_empty() {
                unlabelled += 1;
            } else {
                lines.push((mine, text));
            }
        }
    }
    // Most frequent first, ties by first appearance.
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(counts[i]), i));
    let mut rank = vec![0; names.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r;
    }
    for l in &mut lines {
        for x in &mut l.0 {
            *x = rank[*x as usize] as u32;
        }
    }
    Ok(Labelled { labels: order.iter().map(|&i| names[i].clone()).collect(), lines, unlabelled })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file written while training is the one `save` writes after it, byte for byte, for
    /// each loss (hierarchical softmax and negative sampling touch output rows their own ways).
    #[test]
    fn a_model_saved_while_it_trains_is_the_model_saved_after() {
        // Each document also has 30 words of its own: 1,800 words, every one a row training
        // reads, so the rows it changed are longer than one write of WRITE_ROWS.
        let texts: Vec<String> = (0..60)
            .map(|i| {
                let own: Vec<String> = (0..30).map(|j| format!("w{}", i * 30 + j)).collect();
                format!(
                    "document {i} about {} and {} {}",
                    if i % 2 == 0 { "proofs lemmas" } else { "cats dogs" },
                    i % 7,
                    own.join(" ")
                )
            })
            .collect();
        let labels = vec!["__label__a".to_string(), "__label__b".to_string()];
        let tags: Vec<[u32; 1]> = (0..60).map(|i| [(i % 2) as u32]).collect();
        let examples: Vec<Example> =
            texts.iter().zip(&tags).map(|(t, l)| Example { labels: l, text: t.as_str() }).collect();
        let dir = tempfile::tempdir().unwrap();
        for loss in [Loss::Softmax, Loss::Hs, Loss::Ns, Loss::Ova] {
            let h =
                Hyper { dim: 8, epoch: 3, bucket: 5000, word_ngrams: 2, minn: 2, maxn: 4, loss, ..Hyper::default() };
            let path = dir.path().join("m.bin");
            let early = train_and_save(&examples, &labels, &h, &|_| {}, &path).unwrap();
            let after = train(&examples, &labels, &h, &|_| {}).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), after.to_bytes().unwrap(), "{loss:?}");
            let loss_after = log_loss(&after, &examples, h.newlines).unwrap();
            assert_eq!(early.train_log_loss, loss_after, "{loss:?}");
            assert_eq!((early.nwords, early.buckets), (after.dict.nwords, after.args.bucket));
            assert!(!dir.path().join("m.bin.tmp").exists());
        }
    }
}
