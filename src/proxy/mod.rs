//! Proxy models trained by syllabus (candle), and the scores of "Deep Learning on a Data
//! Diet" (Paul et al. 2021) and perplexity pruning they give: EL2N, GraNd and loss.
//!
//! No weights are downloaded: each proxy is initialised from a seed ([`nn::Rng`]) and trained
//! on the candidate pool itself (as in the paper) or on a separate set (`--train-on`), for
//! `epochs` passes (fractions allowed) in a seeded batch order, then scores every row.
//! `seeds` independent proxies (seeds `seed`, `seed + 1`, ...) are averaged. Same inputs and
//! seeds give the same scores.
//!
//! - `lm` ([`lm`]): a causal transformer over token ids; a row's `loss` is its mean token
//!   cross-entropy (log perplexity), `el2n` the mean per-token EL2N, `n_tokens` the predictions
//!   scored (its tokens and its end).
//! - `mlp` ([`mlp`]): a classifier over a feature column with an integer label column.
//! - `grand`: the exact norm of the gradient of the row's loss over all parameters (one
//!   backward pass per row), or with `last_layer` the closed form over the output layer
//!   ([`metrics::last_layer_grand`]; for `lm`, the norm of Σ_t (p_t − y_t)[h_t; 1]ᵀ / n).
//!
//! Memory: the training set and the scored rows are held in memory (token ids, or feature
//! vectors), as multi-epoch training needs; a few MB of text is a few MB of ids.

pub mod cpu;
pub mod kernels;
pub mod lm;
pub mod metrics;
pub mod mlp;
pub mod nn;

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use candle_core::{DType, Device};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use serde::{Deserialize, Serialize};

use crate::batch::{id_column, text_column, RecordBatch, COL_ID};
use crate::error::{Error, Result};
use crate::par::{for_each_ordered, Flow};
use crate::progress::Progress;
use crate::source::{Extras, FileStats, InputFile, LakeReader, ReadOptions, RejectWriter, SourceBatch};
use crate::tokenize::Tok;
use lm::{Lm, LmShape};
use mlp::{Mlp, MlpShape};
use nn::{Params, Rng};

/// Score column names.
pub const COL_EL2N: &str = "el2n";
pub const COL_GRAND: &str = "grand";
pub const COL_LOSS: &str = "loss";
pub const COL_N_TOKENS: &str = "n_tokens";

/// Which proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ProxyKind {
    Lm,
    Mlp,
}

/// How a proxy is built and trained. `None` takes the kind's default.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyParams {
    /// Hidden width (lm 64, mlp 128).
    pub width: Option<usize>,
    /// Transformer blocks (lm, 2) or hidden layers (mlp, 1).
    pub layers: Option<usize>,
    /// Tokens per window (lm, 64).
    pub context: Option<usize>,
    /// Passes over the training set; fractions allowed (lm 1, mlp 10).
    pub epochs: Option<f64>,
    /// Independent initialisations averaged (3).
    pub seeds: Option<u32>,
    /// Windows (lm, 16) or rows (mlp, 64) per step.
    pub batch_size: Option<usize>,
    /// AdamW learning rate (lm 3e-3, mlp 1e-3).
    pub lr: Option<f64>,
    pub weight_decay: Option<f64>,
}

/// Settings with every default filled in.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Resolved {
    pub width: usize,
    pub layers: usize,
    pub context: usize,
    pub epochs: f64,
    pub seeds: u32,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
}

impl ProxyParams {
    pub fn resolve(&self, kind: ProxyKind) -> Result<Resolved> {
        let lm = kind == ProxyKind::Lm;
        let r = Resolved {
            width: self.width.unwrap_or(if lm { 64 } else { 128 }),
            layers: self.layers.unwrap_or(if lm { 2 } else { 1 }),
            context: self.context.unwrap_or(64),
            epochs: self.epochs.unwrap_or(if lm { 1.0 } else { 10.0 }),
            seeds: self.seeds.unwrap_or(3),
            batch_size: self.batch_size.unwrap_or(if lm { 16 } else { 64 }),
            lr: self.lr.unwrap_or(if lm { 3e-3 } else { 1e-3 }),
            weight_decay: self.weight_decay.unwrap_or(0.0),
        };
        let bad = |what: &str| Err(Error::InvalidArgument(format!("proxy: {what}")));
        if r.width == 0 || (lm && r.layers == 0) {
            return bad("width and layers must be at least 1");
        }
        if lm && !r.width.is_multiple_of((r.width / 32).max(1)) {
            return bad("width must be a multiple of 32 (heads of 32 dimensions) or below 64");
        }
        if r.context == 0 || r.batch_size == 0 || r.seeds == 0 {
            return bad("context, batch_size and seeds must be at least 1");
        }
        if !(r.epochs.is_finite() && r.epochs >= 0.0) {
            return bad("epochs must be a non-negative number");
        }
        if r.epochs > crate::limits::PROXY_EPOCHS {
            return bad(&format!(
                "epochs = {}: at most {} (a proxy is trained briefly)",
                r.epochs,
                crate::limits::PROXY_EPOCHS
            ));
        }
        use crate::limits::*;
        for (limit, v) in [
            (&PROXY_WIDTH, r.width),
            (&PROXY_LAYERS, r.layers),
            (&PROXY_CONTEXT, r.context),
            (&PROXY_BATCH, r.batch_size),
            (&PROXY_SEEDS, r.seeds as usize),
        ] {
            limit.check(v as u64).map_err(|e| Error::InvalidArgument(format!("proxy: {e}")))?;
        }
        if !(r.lr.is_finite() && r.lr > 0.0 && r.weight_decay.is_finite() && r.weight_decay >= 0.0) {
            return bad("lr must be positive and weight_decay non-negative");
        }
        Ok(r)
    }
}

/// What to compute besides EL2N and loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Grand {
    #[default]
    No,
    /// Over all parameters (autograd, one backward pass per row).
    Exact,
    /// Over the output layer, in closed form.
    LastLayer,
}

/// Per-row scores, averaged over seeds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scores {
    pub ids: Vec<String>,
    pub el2n: Vec<f64>,
    pub loss: Vec<f64>,
    pub grand: Option<Vec<f64>>,
    pub n_tokens: Option<Vec<u64>>,
    /// How long training and scoring took, over all seeds (for the summary, not the table).
    pub timing: Timing,
}

/// Work and wall time of training and scoring, summed over seeds. Examples are tokens for `lm`
/// (predictions) and rows for `mlp`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timing {
    pub train_examples: u64,
    pub train_secs: f64,
    pub score_examples: u64,
    pub score_secs: f64,
}

impl Scores {
    /// The score table: id and the score columns.
    pub fn to_batch(&self) -> Result<RecordBatch> {
        let mut fields = vec![Field::new(COL_ID, DataType::Utf8, false)];
        let mut cols: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(&self.ids))];
        let mut push = |name: &str, a: ArrayRef| {
            fields.push(Field::new(name, a.data_type().clone(), false));
            cols.push(a);
        };
        push(COL_EL2N, Arc::new(Float64Array::from(self.el2n.clone())));
        if let Some(g) = &self.grand {
            push(COL_GRAND, Arc::new(Float64Array::from(g.clone())));
        }
        push(COL_LOSS, Arc::new(Float64Array::from(self.loss.clone())));
        if let Some(n) = &self.n_tokens {
            push(COL_N_TOKENS, Arc::new(UInt64Array::from(n.clone())));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
            .map_err(|e| Error::arrow("building the score table", e))
    }

    pub fn write(&self, out: &Path) -> Result<()> {
        let batch = self.to_batch()?;
        let mut w = crate::sink::TableWriter::create(out, batch.schema())?;
        // In slices, so a large table is not one huge row group.
        let mut at = 0;
        while at < batch.num_rows() {
            let n = (batch.num_rows() - at).min(8192);
            w.write(&batch.slice(at, n))?;
            at += n;
        }
        w.finish().map(|_| ())
    }
}

fn cerr(e: candle_core::Error) -> Error {
    Error::InvalidArgument(format!("proxy model: {e}"))
}

/// The device proxies run on: the first CUDA GPU when built with the `cuda` feature and one is
/// present, else the CPU.
pub fn device() -> Device {
    #[cfg(feature = "cuda")]
    if let Ok(d) = Device::new_cuda(0) {
        return d;
    }
    Device::Cpu
}

/// The root of the squared-norm sum of the gradients of `vars`.
fn grad_norm(grads: &candle_core::backprop::GradStore, vars: &[candle_core::Var]) -> Result<f64> {
    let mut sq = 0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sq += g
                .sqr()
                .and_then(|s| s.sum_all())
                .and_then(|s| s.to_dtype(DType::F64))
                .and_then(|s| s.to_scalar::<f64>())
                .map_err(cerr)?;
        }
    }
    Ok(sq.sqrt())
}

/// Documents as token ids.
pub struct TextData {
    pub ids: Vec<String>,
    pub docs: Vec<Vec<u32>>,
}

/// Read and tokenize every row of a lake (in parallel batches, in input order).
pub fn load_text(
    files: &[InputFile],
    read: &ReadOptions,
    tok: &Tok,
    rejects: Option<&mut RejectWriter>,
    progress: &Progress,
) -> Result<(TextData, Vec<FileStats>)> {
    let mut data = TextData { ids: Vec::new(), docs: Vec::new() };
    let mut reader = LakeReader::new(files, read, Extras::none(), rejects);
    let bar = progress.rows("tokenize");
    for_each_ordered(
        &mut reader,
        |b: &SourceBatch| {
            let t = text_column(&b.batch)?;
            (0..t.len()).map(|i| tok.encode(t.value(i))).collect::<Result<Vec<_>>>()
        },
        |b, docs| {
            let ids = id_column(&b.batch)?;
            data.ids.extend(ids.iter().map(|s| s.unwrap_or("").to_string()));
            data.docs.extend(docs);
            bar.inc(b.batch.num_rows() as u64);
            Ok(Flow::Continue)
        },
    )?;
    bar.finish_and_clear();
    Ok((data, reader.into_stats()))
}

/// Rows as feature vectors with integer labels.
pub struct LabelledData {
    pub ids: Vec<String>,
    pub features: Vec<Vec<f32>>,
    pub labels: Vec<u32>,
}

/// Read a feature column (a list of numbers: a Parquet list, or a JSON array) and an integer
/// label column of every row. Rows whose vector has another length than the first are errors.
pub fn load_labelled(
    files: &[InputFile],
    read: &ReadOptions,
    features: &str,
    label: &str,
    rejects: Option<&mut RejectWriter>,
) -> Result<(LabelledData, Vec<FileStats>)> {
    let extras =
        Extras { fields: vec![Field::new(features, DataType::Utf8, true), Field::new(label, DataType::Utf8, true)] };
    let mut data = LabelledData { ids: Vec::new(), features: Vec::new(), labels: Vec::new() };
    // A labelled feature table (the Data Diet setting) has no text: only id, features and
    // label are read.
    let read = &ReadOptions { read_text: false, ..read.clone() };
    let mut reader = LakeReader::new(files, read, extras, rejects);
    for b in reader.by_ref() {
        let b = b?;
        let file = &files[b.file];
        let ids = id_column(&b.batch)?;
        let (fcol, lcol) = (b.utf8_column(features), b.utf8_column(label));
        for i in 0..b.batch.num_rows() {
            let bad = |reason: String| file.bad_record(b.locations[i], reason);
            let fv = fcol
                .as_ref()
                .filter(|c| c.is_valid(i))
                .map(|c| c.value(i))
                .ok_or_else(|| bad(format!("the feature column {features:?} is missing")))?;
            let vec: Vec<f32> = serde_json::from_str::<Vec<f64>>(fv)
                .map_err(|_| bad(format!("the feature column {features:?} is not a list of numbers")))?
                .into_iter()
                .map(|x| x as f32)
                .collect();
            if let Some(first) = data.features.first() {
                if first.len() != vec.len() {
                    return Err(bad(format!("{} features, the first row has {}", vec.len(), first.len())));
                }
            }
            let lv = lcol
                .as_ref()
                .filter(|c| c.is_valid(i))
                .map(|c| c.value(i))
                .ok_or_else(|| bad(format!("the label column {label:?} is missing")))?;
            let y: u32 = lv
                .trim()
                .trim_matches('"')
                .parse()
                .map_err(|_| bad(format!("the label {lv:?} is not a non-negative integer")))?;
            data.ids.push(ids.value(i).to_string());
            data.features.push(vec);
            data.labels.push(y);
        }
    }
    if data.ids.is_empty() {
        return Err(Error::InvalidArgument("no labelled rows to train on".into()));
    }
    Ok((data, reader.into_stats()))
}

fn optimizer(p: &Params, r: &Resolved) -> Result<AdamW> {
    AdamW::new(p.all(), ParamsAdamW { lr: r.lr, weight_decay: r.weight_decay, ..Default::default() }).map_err(cerr)
}

/// The seeded order of training examples over the steps: a fresh permutation each epoch.
fn schedule(rng: &mut Rng, n: usize, r: &Resolved) -> Vec<Vec<usize>> {
    let steps = (r.epochs * n as f64 / r.batch_size as f64).ceil() as usize;
    let mut order = Vec::new();
    let mut out = Vec::with_capacity(steps);
    for _ in 0..steps {
        let mut b = Vec::with_capacity(r.batch_size);
        while b.len() < r.batch_size.min(n) {
            if order.is_empty() {
                order = rng.permutation(n);
                order.reverse();
            }
            b.push(order.pop().expect("refilled"));
        }
        out.push(b);
    }
    out
}

/// A trained `lm` proxy: the CPU engine ([`cpu`]), or candle's model (on a GPU).
pub enum LmModel {
    Cpu(cpu::CpuLm),
    Candle(Lm, Params),
}

impl LmModel {
    pub fn shape(&self) -> LmShape {
        match self {
            LmModel::Cpu(m) => m.shape,
            LmModel::Candle(m, _) => m.shape,
        }
    }
}

/// What trains and runs an `lm`: syllabus's CPU engine, or candle's autograd on a device.
#[derive(Debug, Clone)]
pub enum Backend {
    Engine,
    Candle(Device),
}

impl Backend {
    /// The engine on the CPU, candle on a GPU.
    pub fn for_device(device: &Device) -> Self {
        if device.is_cpu() {
            Backend::Engine
        } else {
            Backend::Candle(device.clone())
        }
    }
}

/// Train an `lm` proxy from `seed`. Returns the model and the predictions it was trained on.
pub fn train_lm(
    shape: LmShape,
    r: &Resolved,
    seed: u32,
    train: &[Vec<u32>],
    eos: u32,
    backend: &Backend,
) -> Result<(LmModel, u64)> {
    let ws = lm::windows(train, shape.context);
    let mut rng = Rng::new(((seed as u64) << 32) | 0xB47C);
    let steps = schedule(&mut rng, ws.len(), r);
    let trained = steps.iter().flatten().map(|&i| ws[i].len as u64).sum();
    let mut batch = Vec::with_capacity(r.batch_size);
    let model = match backend {
        Backend::Engine => {
            let mut m = cpu::CpuLm::new(shape, seed as u64).map_err(cerr)?;
            let mut opt = cpu::AdamW::new(m.num_params(), r.lr, r.weight_decay);
            let (mut work, mut hb) = (cpu::Work::default(), lm::HostBatch::default());
            let mut grads = vec![0f32; m.num_params()];
            for step in steps {
                batch.clear();
                batch.extend(step.iter().map(|&i| ws[i]));
                hb.fill(train, &batch, eos);
                let n: usize = batch.iter().map(|w| w.len).sum();
                grads.fill(0.0);
                m.forward_unbiased(&hb.inputs, batch.len(), hb.len, &mut work);
                m.backward(&hb.targets, &hb.mask, n as f64, &mut work, &mut grads);
                opt.step(&mut m.params, &grads);
            }
            LmModel::Cpu(m)
        }
        Backend::Candle(device) => {
            let mut p = Params::new(seed as u64, device);
            let m = Lm::new(shape, &mut p).map_err(cerr)?;
            let mut opt = optimizer(&p, r)?;
            for step in steps {
                batch.clear();
                batch.extend(step.iter().map(|&i| ws[i]));
                let b = lm::batch(train, &batch, eos, device).map_err(cerr)?;
                let n: usize = batch.iter().map(|w| w.len).sum();
                let loss = m.loss(&b, n as f64).map_err(cerr)?;
                opt.backward_step(&loss).map_err(cerr)?;
            }
            LmModel::Candle(m, p)
        }
    };
    Ok((model, trained))
}

/// Positions per scoring chunk, at least (or the training batch, if larger).
const SCORE_POSITIONS: usize = 2048;

/// Score documents with a trained `lm`: per document (loss, el2n, grand).
pub fn score_lm(
    model: &LmModel,
    docs: &[Vec<u32>],
    eos: u32,
    batch_size: usize,
    grand: Grand,
) -> Result<Vec<(f64, f64, f64)>> {
    let shape = model.shape();
    let ws = lm::windows(docs, shape.context);
    let mut sums = vec![(0f64, 0f64); docs.len()];
    let d1 = shape.width + 1;
    let v = shape.vocab;
    // Last-layer GraNd: Σ over a document's predictions of (p − y)[h; 1]ᵀ, then its norm / n.
    let mut g_acc: Vec<Option<Vec<f64>>> = vec![None; docs.len()];
    let mut g_out = vec![0f64; docs.len()];
    let (mut work, mut hb) = (cpu::Work::default(), lm::HostBatch::default());
    // Scored in chunks of at least 2,048 positions (fewer, larger matrix products); a row's
    // scores do not depend on the chunk.
    let per_chunk = batch_size.max(SCORE_POSITIONS / shape.context);
    for chunk in ws.chunks(per_chunk) {
        hb.fill(docs, chunk, eos);
        let t = hb.len;
        // The CPU engine leaves the output bias to the score kernel, unless the closed form
        // needs the logits whole.
        let mut bias: &[f32] = &[];
        let (h, logits): (std::borrow::Cow<[f32]>, std::borrow::Cow<[f32]>) = match model {
            LmModel::Cpu(m) => {
                if grand == Grand::LastLayer {
                    m.forward(&hb.inputs, chunk.len(), t, &mut work);
                } else {
                    m.forward_unbiased(&hb.inputs, chunk.len(), t, &mut work);
                    bias = m.head_bias();
                }
                (work.hidden[..].into(), work.logits[..].into())
            }
            LmModel::Candle(m, p) => {
                let inputs = candle_core::Tensor::from_slice(&hb.inputs, (chunk.len(), t), &p.device).map_err(cerr)?;
                let (h, logits) = m.forward(&inputs).map_err(cerr)?;
                let flat = |t: &candle_core::Tensor| {
                    t.to_dtype(DType::F32).and_then(|t| t.flatten_all()).and_then(|t| t.to_vec1::<f32>())
                };
                let h = if grand == Grand::LastLayer { flat(&h).map_err(cerr)? } else { Vec::new() };
                (h.into(), flat(&logits).map_err(cerr)?.into())
            }
        };
        // Per position (loss, el2n), in parallel over windows, summed in order below.
        let per: Vec<Vec<(f64, f64)>> = {
            use rayon::prelude::*;
            (0..chunk.len())
                .into_par_iter()
                .map(|wi| {
                    hb.targets_of(wi, &chunk[wi])
                        .iter()
                        .enumerate()
                        .map(|(j, &y)| {
                            let at = (wi * t + j) * v;
                            kernels::loss_and_el2n(&logits[at..at + v], bias, y as usize)
                        })
                        .collect()
                })
                .collect()
        };
        for (wi, w) in chunk.iter().enumerate() {
            for (j, &(loss, e)) in per[wi].iter().enumerate() {
                sums[w.doc].0 += loss;
                sums[w.doc].1 += e;
                if grand == Grand::LastLayer {
                    let y = hb.targets_of(wi, w)[j] as usize;
                    let at = (wi * t + j) * v;
                    let pred = metrics::predict(&logits[at..at + v], y);
                    let hrow = &h[(wi * t + j) * (d1 - 1)..(wi * t + j + 1) * (d1 - 1)];
                    let g = g_acc[w.doc].get_or_insert_with(|| vec![0f64; v * d1]);
                    for (k, &pk) in pred.probs.iter().enumerate() {
                        let dk = pk - if k == y { 1.0 } else { 0.0 };
                        let row = &mut g[k * d1..(k + 1) * d1];
                        for (x, &hv) in row.iter_mut().zip(hrow) {
                            *x += dk * hv as f64;
                        }
                        row[d1 - 1] += dk;
                    }
                }
            }
            // A document's windows are consecutive: finish its accumulator after its last one.
            let n = docs[w.doc].len() + 1;
            if w.start + w.len == n {
                if let Some(g) = g_acc[w.doc].take() {
                    g_out[w.doc] = g.iter().map(|x| x * x).sum::<f64>().sqrt() / n as f64;
                }
            }
        }
    }
    if grand == Grand::Exact {
        let mut start = 0;
        let mut grads = match model {
            LmModel::Cpu(m) => vec![0f32; m.num_params()],
            LmModel::Candle(..) => Vec::new(),
        };
        for (doc, toks) in docs.iter().enumerate() {
            let n = toks.len() + 1;
            let mine: Vec<lm::Window> = ws[start..].iter().take_while(|w| w.doc == doc).copied().collect();
            start += mine.len();
            g_out[doc] = match model {
                LmModel::Cpu(m) => {
                    // Windows in batches; the document's loss is the sum over them / n, so
                    // gradients add.
                    grads.fill(0.0);
                    for chunk in mine.chunks(batch_size) {
                        hb.fill(docs, chunk, eos);
                        m.forward_unbiased(&hb.inputs, chunk.len(), hb.len, &mut work);
                        m.backward(&hb.targets, &hb.mask, n as f64, &mut work, &mut grads);
                    }
                    grads.iter().map(|&g| g as f64 * g as f64).sum::<f64>().sqrt()
                }
                LmModel::Candle(m, p) => exact_grand_candle(m, p, docs, &mine, n, eos, batch_size)?,
            };
        }
    }
    Ok(docs
        .iter()
        .zip(sums)
        .zip(g_out)
        .map(|((toks, (l, e)), g)| {
            let n = (toks.len() + 1) as f64;
            (l / n, e / n, g)
        })
        .collect())
}

/// Exact GraNd of one document (its windows `mine`, `n` predictions) with candle's autograd.
fn exact_grand_candle(
    model: &Lm,
    p: &Params,
    docs: &[Vec<u32>],
    mine: &[lm::Window],
    n: usize,
    eos: u32,
    batch_size: usize,
) -> Result<f64> {
    let vars = p.all();
    let mut grads: Option<candle_core::backprop::GradStore> = None;
    // Windows in batches; the document's loss is the sum over them / n, so gradients add.
    for chunk in mine.chunks(batch_size) {
        let b = lm::batch(docs, chunk, eos, &p.device).map_err(cerr)?;
        let g = model.loss(&b, n as f64).and_then(|l| l.backward()).map_err(cerr)?;
        grads = Some(match grads {
            None => g,
            Some(mut acc) => {
                for var in &vars {
                    if let Some(x) = g.get(var.as_tensor()) {
                        let sum = match acc.get(var.as_tensor()) {
                            Some(a) => (a + x).map_err(cerr)?,
                            None => x.clone(),
                        };
                        acc.insert(var.as_tensor(), sum);
                    }
                }
                acc
            }
        });
    }
    match grads {
        Some(g) => grad_norm(&g, &vars),
        None => Ok(0.0),
    }
}

/// Refuse token ids outside the vocabulary (a tokenizer.json whose ids are not dense).
pub fn check_ids<'a>(docs: impl IntoIterator<Item = &'a [u32]>, vocab: usize) -> Result<()> {
    match docs.into_iter().flatten().find(|&&id| id as usize >= vocab) {
        Some(id) => Err(Error::InvalidArgument(format!(
            "the tokenizer gave token id {id}, outside its vocabulary of {vocab}: its ids are not dense from 0"
        ))),
        None => Ok(()),
    }
}

/// Refuse an `lm` whose parameters, optimizer state and one batch's activations would not fit
/// in this machine's memory (an estimate, f32 throughout).
pub fn check_lm_memory(shape: LmShape, r: &Resolved) -> Result<()> {
    let (w, l, t, v, b) = (r.width as f64, r.layers as f64, r.context as f64, shape.vocab as f64, r.batch_size as f64);
    let heads = (w / 32.0).max(1.0);
    let params = 2.0 * v * w + t * w + l * (12.0 * w * w + 13.0 * w);
    // A training batch, or a scoring chunk if that is larger.
    let positions = (b * t).max(SCORE_POSITIONS as f64);
    let activations = positions * (l * (16.0 * w + 3.0 * heads * t) + 3.0 * v);
    let estimate = 4.0 * (4.0 * params + 2.0 * activations);
    crate::limits::check_memory(
        &format!(
            "an lm of width {}, {} layers, context {}, batch {}, vocabulary {}",
            r.width, r.layers, r.context, r.batch_size, shape.vocab
        ),
        estimate,
    )
    .map_err(Error::InvalidArgument)
}

/// Train an `mlp` proxy from `seed`.
pub fn train_mlp(
    shape: MlpShape,
    r: &Resolved,
    seed: u32,
    train: &LabelledData,
    device: &Device,
) -> Result<(Mlp, Params)> {
    let mut p = Params::new(seed as u64, device);
    let model = Mlp::new(shape, &mut p).map_err(cerr)?;
    let mut opt = optimizer(&p, r)?;
    let mut rng = Rng::new(((seed as u64) << 32) | 0x31F);
    for step in schedule(&mut rng, train.labels.len(), r) {
        let (x, y) = mlp::batch(&train.features, &train.labels, &step, device).map_err(cerr)?;
        let loss = model.loss(&x, &y).map_err(cerr)?;
        opt.backward_step(&loss).map_err(cerr)?;
    }
    Ok((model, p))
}

/// Score rows with a trained `mlp`: per row (loss, el2n, grand).
pub fn score_mlp(model: &Mlp, p: &Params, data: &LabelledData, grand: Grand) -> Result<Vec<(f64, f64, f64)>> {
    let device = &p.device;
    let n = data.labels.len();
    let mut out = Vec::with_capacity(n);
    let idx: Vec<usize> = (0..n).collect();
    for chunk in idx.chunks(1024) {
        let (x, _) = mlp::batch(&data.features, &data.labels, chunk, device).map_err(cerr)?;
        let (h, logits) = model.forward(&x).map_err(cerr)?;
        let h: Vec<Vec<f32>> = h.to_dtype(DType::F32).and_then(|t| t.to_vec2()).map_err(cerr)?;
        let logits: Vec<Vec<f32>> = logits.to_dtype(DType::F32).and_then(|t| t.to_vec2()).map_err(cerr)?;
        for (k, &i) in chunk.iter().enumerate() {
            let pred = metrics::predict(&logits[k], data.labels[i] as usize);
            let g = if grand == Grand::LastLayer { metrics::last_layer_grand(pred.el2n, &h[k]) } else { 0.0 };
            out.push((pred.loss, pred.el2n, g));
        }
    }
    if grand == Grand::Exact {
        let vars = p.all();
        for (i, row) in out.iter_mut().enumerate() {
            let (x, y) = mlp::batch(&data.features, &data.labels, &[i], device).map_err(cerr)?;
            let grads = model.loss(&x, &y).and_then(|l| l.backward()).map_err(cerr)?;
            row.2 = grad_norm(&grads, &vars)?;
        }
    }
    Ok(out)
}

/// Where finished seeds' scores are kept (`keep/seed-N.f64`, (loss, el2n, grand) per row as
/// little-endian f64), so a run killed part way trains only the seeds it had not finished.
#[derive(Debug, Clone, Copy)]
pub struct KeepSeeds<'a> {
    pub dir: &'a std::path::Path,
}

impl KeepSeeds<'_> {
    fn path(&self, seed: u32) -> std::path::PathBuf {
        self.dir.join(format!("seed-{seed}.f64"))
    }

    /// A finished seed's rows, if they were kept (and are `rows` long).
    fn load(&self, seed: u32, rows: usize) -> Option<Vec<(f64, f64, f64)>> {
        let bytes = std::fs::read(self.path(seed)).ok()?;
        if bytes.len() != rows * 24 {
            return None;
        }
        let f = |c: &[u8]| f64::from_le_bytes(c.try_into().expect("8 bytes"));
        Some(bytes.chunks_exact(24).map(|c| (f(&c[..8]), f(&c[8..16]), f(&c[16..]))).collect())
    }

    fn save(&self, seed: u32, run: &[(f64, f64, f64)]) -> Result<()> {
        let mut bytes = Vec::with_capacity(run.len() * 24);
        for r in run {
            for x in [r.0, r.1, r.2] {
                bytes.extend_from_slice(&x.to_le_bytes());
            }
        }
        crate::sink::write_atomic(&self.path(seed), &bytes)
    }

    /// Seeds `seed..seed + seeds` whose rows are kept.
    pub fn kept(&self, seed: u32, seeds: u32) -> u32 {
        (0..seeds).filter(|s| self.path(seed.wrapping_add(*s)).exists()).count() as u32
    }
}

/// Average `seeds` runs of `one(seed)`, each a (loss, el2n, grand) per row (`rows` of them);
/// with `keep`, finished seeds are read back instead of run again.
fn average(
    seeds: u32,
    seed: u32,
    rows: usize,
    keep: Option<KeepSeeds>,
    mut one: impl FnMut(u32) -> Result<Vec<(f64, f64, f64)>>,
) -> Result<Vec<(f64, f64, f64)>> {
    let mut acc: Vec<(f64, f64, f64)> = Vec::new();
    for s in 0..seeds {
        let this = seed.wrapping_add(s);
        let kept = keep.and_then(|k| k.load(this, rows));
        let fresh = kept.is_none();
        let run = match kept {
            Some(kept) => kept,
            None => one(this)?,
        };
        let bad = run.iter().filter(|r| !(r.0.is_finite() && r.1.is_finite() && r.2.is_finite())).count();
        if bad > 0 {
            return Err(Error::InvalidArgument(format!(
                "the proxy trained from seed {this} diverged: {bad} of {} rows score NaN or infinity; no scores were written (lower the learning rate, --lr / select.proxy.lr, or the epochs)",
                run.len()
            )));
        }
        if let Some(k) = keep.filter(|_| fresh) {
            k.save(this, &run)?;
            crate::failpoint::hit(format_args!("proxy-seed-{s}"));
        }
        if acc.is_empty() {
            acc = vec![(0.0, 0.0, 0.0); run.len()];
        }
        for (a, r) in acc.iter_mut().zip(run) {
            a.0 += r.0;
            a.1 += r.1;
            a.2 += r.2;
        }
    }
    let k = seeds as f64;
    Ok(acc.into_iter().map(|(l, e, g)| (l / k, e / k, g / k)).collect())
}

fn into_scores(
    ids: Vec<String>,
    rows: Vec<(f64, f64, f64)>,
    grand: Grand,
    n_tokens: Option<Vec<u64>>,
    timing: Timing,
) -> Scores {
    Scores {
        timing,
        ids,
        loss: rows.iter().map(|r| r.0).collect(),
        el2n: rows.iter().map(|r| r.1).collect(),
        grand: (grand != Grand::No).then(|| rows.iter().map(|r| r.2).collect()),
        n_tokens,
    }
}

/// Train `lm` proxies (on `train`, or on the pool) and score the pool.
#[allow(clippy::too_many_arguments)]
pub fn lm_scores(
    pool: TextData,
    train: Option<&[Vec<u32>]>,
    tok: &Tok,
    params: &ProxyParams,
    seed: u32,
    grand: Grand,
    progress: &Progress,
    keep: Option<KeepSeeds>,
) -> Result<Scores> {
    let r = params.resolve(ProxyKind::Lm)?;
    let eos = tok.eos_id(None)?;
    let shape = LmShape { vocab: tok.vocab_size() as usize, width: r.width, layers: r.layers, context: r.context };
    check_lm_memory(shape, &r)?;
    let backend = Backend::for_device(&device());
    let train = train.unwrap_or(&pool.docs);
    check_ids(pool.docs.iter().chain(train).map(Vec::as_slice), shape.vocab)?;
    if train.is_empty() {
        return Err(Error::InvalidArgument("no documents to train the proxy on".into()));
    }
    let bar = progress.rows("seeds");
    let mut timing = Timing::default();
    let pool_tokens: u64 = pool.docs.iter().map(|d| d.len() as u64 + 1).sum();
    let rows = average(r.seeds, seed, pool.docs.len(), keep, |s| {
        let t = std::time::Instant::now();
        let (model, trained) = train_lm(shape, &r, s, train, eos, &backend)?;
        timing.train_secs += t.elapsed().as_secs_f64();
        timing.train_examples += trained;
        let t = std::time::Instant::now();
        let out = score_lm(&model, &pool.docs, eos, r.batch_size, grand);
        timing.score_secs += t.elapsed().as_secs_f64();
        timing.score_examples += pool_tokens;
        bar.inc(1);
        out
    })?;
    bar.finish_and_clear();
    let n_tokens = pool.docs.iter().map(|d| d.len() as u64 + 1).collect();
    Ok(into_scores(pool.ids, rows, grand, Some(n_tokens), timing))
}

/// Train `mlp` proxies (on `train`, or on the pool) and score the pool.
pub fn mlp_scores(
    pool: LabelledData,
    train: Option<&LabelledData>,
    params: &ProxyParams,
    seed: u32,
    grand: Grand,
    keep: Option<KeepSeeds>,
) -> Result<Scores> {
    let r = params.resolve(ProxyKind::Mlp)?;
    let train_set = train.unwrap_or(&pool);
    let classes = pool.labels.iter().chain(&train_set.labels).max().map_or(1, |&m| m as usize + 1).max(2);
    crate::limits::PROXY_CLASSES.check(classes as u64).map_err(|e| Error::InvalidArgument(format!("proxy: {e}")))?;
    let features = pool.features[0].len();
    let (f, w, l, c, b) = (features as f64, r.width as f64, r.layers as f64, classes as f64, r.batch_size as f64);
    let params = f * w + (l - 1.0).max(0.0) * w * w + w * c + c;
    let estimate = 4.0 * (4.0 * params + 2.0 * b * (l * 4.0 * w + 3.0 * c + f));
    crate::limits::check_memory(
        &format!(
            "an mlp proxy of {features} features, width {}, {} layers, {classes} classes, batch {}",
            r.width, r.layers, r.batch_size
        ),
        estimate,
    )
    .map_err(Error::InvalidArgument)?;
    if train_set.features[0].len() != features {
        return Err(Error::InvalidArgument(format!(
            "the training set has {} features, the pool {features}",
            train_set.features[0].len()
        )));
    }
    let shape = MlpShape { features, classes, width: r.width, layers: r.layers };
    let device = device();
    let mut timing = Timing::default();
    let rows = average(r.seeds, seed, pool.labels.len(), keep, |s| {
        let t = std::time::Instant::now();
        let (model, p) = train_mlp(shape, &r, s, train_set, &device)?;
        timing.train_secs += t.elapsed().as_secs_f64();
        timing.train_examples += (r.epochs * train_set.labels.len() as f64).round() as u64;
        let t = std::time::Instant::now();
        let out = score_mlp(&model, &p, &pool, grand);
        timing.score_secs += t.elapsed().as_secs_f64();
        timing.score_examples += pool.labels.len() as u64;
        out
    })?;
    Ok(into_scores(pool.ids, rows, grand, None, timing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> LabelledData {
        let mut rng = Rng::new(3);
        let mut d = LabelledData { ids: Vec::new(), features: Vec::new(), labels: Vec::new() };
        for i in 0..60 {
            let y = (i % 3) as u32;
            let f: Vec<f32> =
                (0..5).map(|k| (if k == y as usize { 2.0 } else { 0.0 } + rng.normal() * 0.5) as f32).collect();
            d.ids.push(format!("r{i}"));
            d.features.push(f);
            d.labels.push(y);
        }
        d
    }

    #[test]
    fn closed_form_last_layer_grand_equals_autograd() {
        let data = toy();
        let r = ProxyParams { epochs: Some(2.0), ..Default::default() }.resolve(ProxyKind::Mlp).unwrap();
        let shape = MlpShape { features: 5, classes: 3, width: 16, layers: 1 };
        let (model, p) = train_mlp(shape, &r, 1, &data, &Device::Cpu).unwrap();
        let closed = score_mlp(&model, &p, &data, Grand::LastLayer).unwrap();
        let head: Vec<candle_core::Var> =
            p.vars.iter().filter(|(n, _)| n.starts_with("head")).map(|(_, v)| v.clone()).collect();
        for (i, row) in closed.iter().enumerate() {
            let (x, y) = mlp::batch(&data.features, &data.labels, &[i], &Device::Cpu).unwrap();
            let grads = model.loss(&x, &y).unwrap().backward().unwrap();
            let auto = grad_norm(&grads, &head).unwrap();
            assert!((auto - row.2).abs() < 1e-4 * (1.0 + auto), "row {i}: {auto} vs {}", row.2);
            // The exact GraNd over all parameters is at least the last layer's.
            let all = grad_norm(&grads, &p.all()).unwrap();
            assert!(all + 1e-6 >= auto);
        }
    }

    #[test]
    fn exact_grand_equals_a_finite_difference_gradient() {
        // Central differences over every parameter of a small trained mlp, independent of
        // autograd: the gradient norm they give is exact GraNd.
        let data = toy();
        let r =
            ProxyParams { epochs: Some(1.0), width: Some(4), ..Default::default() }.resolve(ProxyKind::Mlp).unwrap();
        let shape = MlpShape { features: 5, classes: 3, width: 4, layers: 1 };
        let (model, p) = train_mlp(shape, &r, 1, &data, &Device::Cpu).unwrap();
        let exact = score_mlp(&model, &p, &data, Grand::Exact).unwrap();
        for i in [0usize, 7, 31] {
            let (x, y) = mlp::batch(&data.features, &data.labels, &[i], &Device::Cpu).unwrap();
            let loss = || model.loss(&x, &y).unwrap().to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap();
            let h = 1e-2f32;
            let mut sq = 0.0;
            for v in p.all() {
                let dims = v.as_tensor().shape().clone();
                let orig = v.as_tensor().flatten_all().unwrap().to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap();
                let set = |vals: Vec<f32>| {
                    let t = candle_core::Tensor::from_vec(vals, dims.clone(), &Device::Cpu)
                        .unwrap()
                        .to_dtype(v.dtype())
                        .unwrap();
                    v.set(&t).unwrap();
                };
                for k in 0..orig.len() {
                    let mut plus = orig.clone();
                    plus[k] += h;
                    set(plus);
                    let up = loss();
                    let mut minus = orig.clone();
                    minus[k] -= h;
                    set(minus);
                    let down = loss();
                    set(orig.clone());
                    let g = (up - down) / (2.0 * h as f64);
                    sq += g * g;
                }
            }
            let fd = sq.sqrt();
            assert!(
                (fd - exact[i].2).abs() < 1e-2 * (1.0 + fd),
                "row {i}: finite differences {fd}, exact GraNd {}",
                exact[i].2
            );
        }
    }

    #[test]
    fn lm_closed_form_equals_autograd_on_the_output_layer() {
        let docs: Vec<Vec<u32>> =
            vec![vec![3, 4, 5, 6, 7, 8, 9], vec![5, 5, 5], (0..40).map(|i| (i % 11) as u32 + 2).collect()];
        let r =
            ProxyParams { width: Some(32), layers: Some(1), context: Some(8), epochs: Some(1.0), ..Default::default() }
                .resolve(ProxyKind::Lm)
                .unwrap();
        let shape = LmShape { vocab: 16, width: 32, layers: 1, context: 8 };
        let (trained, _) = train_lm(shape, &r, 2, &docs, 0, &Backend::Engine).unwrap();
        let closed = score_lm(&trained, &docs, 0, 4, Grand::LastLayer).unwrap();
        let exact = score_lm(&trained, &docs, 0, 2, Grand::Exact).unwrap();
        // The CPU engine against candle's autograd on the same weights.
        let LmModel::Cpu(engine) = &trained else { panic!("trained on the CPU engine") };
        let (cm, cp) = engine.to_candle(&Device::Cpu).unwrap();
        let on_candle = score_lm(&LmModel::Candle(cm, cp), &docs, 0, 2, Grand::Exact).unwrap();
        let (model, p) = engine.to_candle(&Device::Cpu).unwrap();
        let head: Vec<candle_core::Var> =
            p.vars.iter().filter(|(n, _)| n.starts_with("head")).map(|(_, v)| v.clone()).collect();
        for (d, toks) in docs.iter().enumerate() {
            let ws: Vec<lm::Window> = lm::windows(&docs, 8).into_iter().filter(|w| w.doc == d).collect();
            let b = lm::batch(&docs, &ws, 0, &Device::Cpu).unwrap();
            let grads = model.loss(&b, (toks.len() + 1) as f64).unwrap().backward().unwrap();
            let auto = grad_norm(&grads, &head).unwrap();
            assert!((auto - closed[d].2).abs() < 1e-4 * (1.0 + auto), "doc {d}: {auto} vs {}", closed[d].2);
            assert!(exact[d].2 + 1e-6 >= auto, "all parameters include the output layer");
            let c = on_candle[d];
            assert!(
                (c.0 - exact[d].0).abs() < 1e-5 && (c.1 - exact[d].1).abs() < 1e-5,
                "doc {d}: {c:?} vs {:?}",
                exact[d]
            );
            assert!(
                (c.2 - exact[d].2).abs() < 1e-4 * (1.0 + c.2),
                "doc {d}: exact GraNd {} (autograd) vs {}",
                c.2,
                exact[d].2
            );
            // Scores do not depend on the scoring batch size.
            assert!((exact[d].0 - closed[d].0).abs() < 1e-5 && (exact[d].1 - closed[d].1).abs() < 1e-5);
            assert!(closed[d].1 >= 0.0 && closed[d].1 <= 2f64.sqrt());
        }
    }

    #[test]
    fn the_engine_and_candle_train_and_score_alike() {
        // Candle's path (the GPU's) on the CPU: same weights, batches and optimiser, so the
        // same scores up to rounding.
        let docs: Vec<Vec<u32>> =
            (0..12).map(|d| (0..(5 + 7 * d)).map(|i| ((i * 7 + d) % 30) as u32 + 1).collect()).collect();
        let r = ProxyParams {
            width: Some(32),
            layers: Some(2),
            context: Some(16),
            epochs: Some(2.0),
            ..Default::default()
        }
        .resolve(ProxyKind::Lm)
        .unwrap();
        let shape = LmShape { vocab: 32, width: 32, layers: 2, context: 16 };
        let run = |b: Backend| {
            let (m, n) = train_lm(shape, &r, 3, &docs, 0, &b).unwrap();
            (score_lm(&m, &docs, 0, 4, Grand::LastLayer).unwrap(), n)
        };
        let ((engine, n1), (candle, n2)) = (run(Backend::Engine), run(Backend::Candle(Device::Cpu)));
        assert_eq!(n1, n2);
        for (d, (a, b)) in engine.iter().zip(&candle).enumerate() {
            assert!((a.0 - b.0).abs() < 2e-3 * b.0 && (a.1 - b.1).abs() < 2e-3, "doc {d}: {a:?} vs {b:?}");
            assert!((a.2 - b.2).abs() < 1e-2 * b.2.max(1e-3), "doc {d}: {a:?} vs {b:?}");
        }
    }

    #[test]
    fn token_ids_outside_the_vocabulary_are_an_error() {
        assert!(check_ids([&[0u32, 4, 2][..], &[]], 5).is_ok());
        let err = check_ids([&[0u32, 4][..], &[7]], 5).unwrap_err().to_string();
        assert!(err.contains("token id 7") && err.contains("vocabulary of 5"), "{err}");
    }

    #[test]
    fn seeds_are_averaged_and_runs_repeat() {
        let data = || toy();
        let params = ProxyParams { epochs: Some(1.0), width: Some(8), ..Default::default() };
        let one = |seed, seeds| {
            mlp_scores(
                data(),
                None,
                &ProxyParams { seeds: Some(seeds), ..params.clone() },
                seed,
                Grand::LastLayer,
                None,
            )
            .unwrap()
        };
        let (a, b, both) = (one(5, 1), one(6, 1), one(5, 2));
        for i in 0..a.el2n.len() {
            assert!((both.el2n[i] - (a.el2n[i] + b.el2n[i]) / 2.0).abs() < 1e-12);
            assert!((both.loss[i] - (a.loss[i] + b.loss[i]) / 2.0).abs() < 1e-12);
        }
        let again = one(5, 2);
        assert_eq!(
            (&again.el2n, &again.loss, &again.grand),
            (&both.el2n, &both.loss, &both.grand),
            "the same seeds give the same scores"
        );
        assert_ne!(a.el2n, b.el2n);
    }

    #[test]
    fn training_lowers_the_loss() {
        let data = toy();
        let base = ProxyParams { seeds: Some(1), ..Default::default() };
        let untrained =
            mlp_scores(toy(), None, &ProxyParams { epochs: Some(0.0), ..base.clone() }, 0, Grand::No, None).unwrap();
        let trained = mlp_scores(data, None, &ProxyParams { epochs: Some(20.0), ..base }, 0, Grand::No, None).unwrap();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!(
            mean(&trained.loss) < 0.5 * mean(&untrained.loss),
            "{} vs {}",
            mean(&trained.loss),
            mean(&untrained.loss)
        );
        assert!(mean(&trained.el2n) < mean(&untrained.el2n));
    }
}

/// Which proxy score a command or pipeline asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ScoreKind {
    El2n,
    Grand,
    Loss,
}

impl ScoreKind {
    pub fn column(self) -> &'static str {
        match self {
            ScoreKind::El2n => COL_EL2N,
            ScoreKind::Grand => COL_GRAND,
            ScoreKind::Loss => COL_LOSS,
        }
    }
}

/// A proxy and its data: the TOML form of `syllabus score el2n|grand|loss`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySpec {
    #[serde(rename = "kind")]
    pub proxy: ProxyKind,
    /// `lm`: the tokenizer.json.
    pub tokenizer: Option<std::path::PathBuf>,
    /// `mlp`: the feature column (a list of numbers) and the integer label column.
    pub features: Option<String>,
    pub label: Option<String>,
    /// Train on these instead of the candidate pool (files, directories, globs).
    #[serde(default)]
    pub train_on: Vec<String>,
    /// GraNd over the output layer in closed form instead of all parameters.
    #[serde(default)]
    pub last_layer: bool,
    /// The first seed (a pipeline uses its own `seed`).
    #[serde(default, skip_deserializing)]
    pub seed: u32,
    #[serde(default)]
    pub model: ProxyParams,
}

impl ProxySpec {
    pub fn validate(&self) -> Result<()> {
        match self.proxy {
            ProxyKind::Lm if self.tokenizer.is_none() => {
                Err(Error::InvalidArgument("the lm proxy needs a tokenizer".into()))
            }
            ProxyKind::Mlp if self.features.is_none() || self.label.is_none() => {
                Err(Error::InvalidArgument("the mlp proxy needs a feature column and a label column".into()))
            }
            _ => self.model.resolve(self.proxy).map(|_| ()),
        }
    }

    /// Train the proxies and score every row of `raw`; GraNd when `kind` is grand.
    pub fn score(
        &self,
        kind: ScoreKind,
        raw: &[InputFile],
        read: &ReadOptions,
        mut rejects: Option<&mut RejectWriter>,
        progress: &Progress,
        keep: Option<KeepSeeds>,
    ) -> Result<(Scores, Vec<FileStats>)> {
        self.validate()?;
        let grand = match (kind, self.last_layer) {
            (ScoreKind::Grand, false) => Grand::Exact,
            (ScoreKind::Grand, true) => Grand::LastLayer,
            _ => Grand::No,
        };
        let train_files =
            if self.train_on.is_empty() { None } else { Some(crate::source::expand_inputs(&self.train_on)?) };
        match self.proxy {
            ProxyKind::Lm => {
                let tok = Tok::load(self.tokenizer.as_deref().expect("validated"))?;
                let (pool, stats) = load_text(raw, read, &tok, rejects.as_deref_mut(), progress)?;
                let train = match &train_files {
                    Some(f) => Some(load_text(f, read, &tok, rejects.as_deref_mut(), progress)?.0.docs),
                    None => None,
                };
                Ok((lm_scores(pool, train.as_deref(), &tok, &self.model, self.seed, grand, progress, keep)?, stats))
            }
            ProxyKind::Mlp => {
                let (f, l) = (self.features.as_deref().expect("validated"), self.label.as_deref().expect("validated"));
                let (pool, stats) = load_labelled(raw, read, f, l, rejects.as_deref_mut())?;
                let train = match &train_files {
                    Some(files) => Some(load_labelled(files, read, f, l, rejects)?.0),
                    None => None,
                };
                Ok((mlp_scores(pool, train.as_ref(), &self.model, self.seed, grand, keep)?, stats))
            }
        }
    }
}
